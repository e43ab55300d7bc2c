//! Load-time validation: definitions `StateMachine::from_json` must reject, and
//! where its errors point, following
//! <https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html>
//! and the state type pages it links to.

use dofs_asl::{AslError, StateMachine};
use serde_json::json;

#[test]
fn structurally_invalid_definitions_are_rejected() {
    let pass_end = json!({"Type": "Pass", "End": true});
    for (why, definition) in [
        (
            "StartAt missing",
            json!({"StartAt": "X", "States": {"A": pass_end}}),
        ),
        (
            "unknown Next",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}),
        ),
        (
            "unreachable",
            json!({"StartAt": "A", "States": {"A": pass_end, "B": pass_end}}),
        ),
        (
            "Next and End",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A", "End": true}}}),
        ),
        (
            "neither",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
        ),
        (
            "unknown field",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Bogus": 1}}}),
        ),
        (
            "unknown type",
            json!({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": true}}}),
        ),
        (
            "Map",
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true}}}),
        ),
        (
            "Succeed with Next",
            json!({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Next": "A"}}}),
        ),
        (
            "Fail with InputPath",
            json!({"StartAt": "A", "States": {"A": {"Type": "Fail", "InputPath": "$"}}}),
        ),
        (
            "bad path",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "a.b", "End": true}}}),
        ),
        (
            "bad ResultPath",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}}),
        ),
        (
            "catch target",
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nope"}]}}}),
        ),
        (
            "ALL not last",
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
        ),
        (
            "ALL not alone",
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
            "Catch": [{"ErrorEquals": ["X", "States.ALL"], "Next": "A"}]}}}),
        ),
        (
            "no Resource",
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "End": true}}}),
        ),
        (
            "two waits",
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}}}),
        ),
        (
            "Choice without Choices",
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": []}}}),
        ),
        (
            "Choice default target",
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice",
            "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "A"}], "Default": "Nope"}}}),
        ),
        (
            "bad intrinsic",
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"a.$": "States.Nope()"}, "End": true}}}),
        ),
        (
            "top-level field",
            json!({"StartAt": "A", "States": {"A": pass_end}, "Extra": 1}),
        ),
        (
            "JSONata",
            json!({"StartAt": "A", "States": {"A": pass_end}, "QueryLanguage": "JSONata"}),
        ),
    ] {
        let err = StateMachine::from_json(&definition.to_string());
        assert!(err.is_err(), "{why}: accepted");
    }
    assert!(matches!(
        StateMachine::from_json("{"),
        Err(AslError::Json(_))
    ));
}

#[test]
fn errors_name_where_the_problem_is() {
    let err = StateMachine::from_json(
        &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}).to_string(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("States.A") && text.contains("Nope"), "{text}");
}
