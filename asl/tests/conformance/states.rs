//! The flow-control state types (Choice, Wait, Fail) on small definitions,
//! following <https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html> and
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html>.
//! Task and Pass are covered by `io_processing` and `retry_catch`.

use super::helpers::*;
use dofs_asl::Next;
use serde_json::{json, Value};

#[tokio::test]
async fn choice_rules_route_like_step_functions() {
    let m = machine(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"And": [
                {"Variable": "$.kind", "StringEquals": "book"},
                {"Variable": "$.qty", "NumericGreaterThanEquals": 10}
            ], "Next": "BulkBooks"},
            {"Not": {"Variable": "$.qty", "IsNumeric": true}, "Next": "BadQty"},
            {"Or": [
                {"Variable": "$.qty", "NumericLessThan": 0},
                {"Variable": "$.qty", "NumericEqualsPath": "$.limit"}
            ], "Next": "Edge"},
            {"Variable": "$.sku", "StringMatches": "GIFT-*", "Next": "Gift"},
            {"Variable": "$.express", "BooleanEquals": true, "Next": "Express"},
            {"Variable": "$.coupon", "IsPresent": true, "Next": "Coupon"},
            {"Variable": "$.note", "IsNull": true, "Next": "NullNote"},
            {"Variable": "$.due", "TimestampLessThan": "2026-01-01T00:00:00Z", "Next": "Late"},
            {"Variable": "$.kind", "StringEqualsPath": "$.favourite", "Next": "Favourite"}
        ], "Default": "Other"},
        "BulkBooks": {"Type": "Succeed"}, "BadQty": {"Type": "Succeed"}, "Edge": {"Type": "Succeed"},
        "Gift": {"Type": "Succeed"}, "Express": {"Type": "Succeed"}, "Coupon": {"Type": "Succeed"},
        "NullNote": {"Type": "Succeed"}, "Late": {"Type": "Succeed"}, "Favourite": {"Type": "Succeed"},
        "Other": {"Type": "Succeed"}
    }}));
    let base = json!({"kind": "pen", "qty": 1, "limit": 5, "sku": "P-1", "express": false, "note": "x",
                      "due": "2027-01-01T00:00:00Z", "favourite": "ink"});
    let with = |patch: Value| {
        let mut v = base.clone();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    for (input, expected) in [
        (with(json!({"kind": "book", "qty": 10})), "BulkBooks"),
        (with(json!({"kind": "book", "qty": 9})), "Other"),
        (with(json!({"qty": "ten"})), "BadQty"),
        (with(json!({"qty": -1})), "Edge"),
        (with(json!({"qty": 5})), "Edge"),
        (with(json!({"sku": "GIFT-42"})), "Gift"),
        (with(json!({"express": true})), "Express"),
        (with(json!({"coupon": null})), "Coupon"),
        (with(json!({"note": null})), "NullNote"),
        (with(json!({"due": "2025-06-01T12:00:00+02:00"})), "Late"),
        (with(json!({"kind": "ink"})), "Favourite"),
        (base.clone(), "Other"),
    ] {
        let r = run(&m, input.clone(), &ScriptedTasks::new()).await;
        assert_eq!(
            r.path.last().map(String::as_str),
            Some(expected),
            "input {input}"
        );
        assert_eq!(r.end, Next::Succeeded { output: input });
    }
}

#[tokio::test]
async fn choice_without_match_or_default_fails_no_choice_matched() {
    let m = machine(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "X"}]},
        "X": {"Type": "Succeed"}
    }}));
    let r = run(&m, json!({"a": 2}), &ScriptedTasks::new()).await;
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "States.NoChoiceMatched"));
    let missing = run(&m, json!({}), &ScriptedTasks::new()).await;
    assert!(matches!(missing.end, Next::Failed { ref error, .. } if error == "States.Runtime"));
}

#[tokio::test]
async fn wait_sleeps_then_moves_on() {
    for (wait, input, expected_secs) in [
        (json!({"Seconds": 10}), json!({}), 10),
        (json!({"SecondsPath": "$.s"}), json!({"s": 3}), 3),
        (json!({"Timestamp": "2026-11-25T10:01:00Z"}), json!({}), 60),
        (
            json!({"TimestampPath": "$.at"}),
            json!({"at": "2026-11-25T11:00:00+01:00"}),
            0,
        ),
    ] {
        let mut state = json!({"Type": "Wait", "Next": "Done"});
        for (k, v) in wait.as_object().unwrap() {
            state[k] = v.clone();
        }
        let m =
            machine(json!({"StartAt": "W", "States": {"W": state, "Done": {"Type": "Succeed"}}}));
        let r = run(&m, input.clone(), &ScriptedTasks::new()).await;
        assert_eq!(r.delays_ms("W"), [expected_secs * 1000], "{wait}");
        assert_eq!(r.end, Next::Succeeded { output: input });
        assert_eq!(
            r.kinds(),
            [
                "WaitStateEntered",
                "WaitStateExited",
                "SucceedStateEntered",
                "SucceedStateExited",
                "ExecutionSucceeded"
            ]
        );
    }
    let m = machine(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
    );
    let r = run(&m, json!({"s": "soon"}), &ScriptedTasks::new()).await;
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "States.Runtime"));
}

#[tokio::test]
async fn fail_state_reports_literal_or_selected_error_and_cause() {
    let m = machine(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "because"}}}),
    );
    let r = run(&m, json!({}), &ScriptedTasks::new()).await;
    assert_eq!(
        r.end,
        Next::Failed {
            error: "Boom".into(),
            cause: "because".into()
        }
    );
    assert_eq!(r.kinds(), ["FailStateEntered", "ExecutionFailed"]);
    let m = machine(json!({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.n)"
    }}}));
    let r = run(&m, json!({"e": "Custom", "n": 3}), &ScriptedTasks::new()).await;
    assert_eq!(
        r.end,
        Next::Failed {
            error: "Custom".into(),
            cause: "bad 3".into()
        }
    );
}
