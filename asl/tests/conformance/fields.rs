//! Every field of the Task, Pass, Choice, Wait, Succeed and Fail states
//! (the ASL spec's "Table of State Fields" and its state sections), one case
//! per field at least, following the state pages of the developer guide:
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-task.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-pass.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-succeed.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html>
//! and the common fields of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html>.
//! Error causes are checked where executions on AWS show Step Functions'
//! wording (see the crate documentation).

use super::helpers::*;
use dofs_asl::{AslError, IntegrationPattern, Next};
use serde_json::{json, Value};
use std::time::Duration;

fn task(fields: Value) -> Value {
    let mut state =
        json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true});
    for (k, v) in fields.as_object().unwrap() {
        state[k] = v.clone();
    }
    json!({"StartAt": "T", "States": {"T": state}})
}

fn unsupported_at(definition: Value) -> String {
    match loads(definition) {
        Err(AslError::Unsupported { at, .. }) => at,
        other => panic!("{other:?}"),
    }
}

fn invalid(definition: Value) -> String {
    match loads(definition) {
        Err(AslError::Definition { at, message }) => format!("{at}: {message}"),
        other => panic!("{other:?}"),
    }
}

// ---- Common fields ------------------------------------------------------------

#[tokio::test]
async fn comment_and_query_language_are_accepted_on_every_state() {
    let m = machine(
        json!({"StartAt": "P", "Comment": "top", "QueryLanguage": "JSONPath", "Version": "1.0", "States": {
            "P": {"Type": "Pass", "Comment": "c", "QueryLanguage": "JSONPath", "Next": "W"},
            "W": {"Type": "Wait", "Comment": "c", "Seconds": 0, "Next": "C"},
            "C": {"Type": "Choice", "Comment": "c", "Choices": [{"Variable": "$.a", "IsPresent": true, "Comment": "rule", "Next": "S"}], "Default": "F"},
            "S": {"Type": "Succeed", "Comment": "c"},
            "F": {"Type": "Fail", "Comment": "c", "QueryLanguage": "JSONPath"}
        }}),
    );
    assert!(matches!(
        run(&m, json!({"a": 1}), &ScriptedTasks::new()).await.end,
        Next::Succeeded { .. }
    ));
}

#[test]
fn what_this_interpreter_does_not_run_is_refused_naming_state_and_field() {
    let pass = json!({"Type": "Pass", "End": true});
    for (kind, at) in [("Map", "States.X.Type"), ("Parallel", "States.X.Type")] {
        assert_eq!(
            unsupported_at(json!({"StartAt": "X", "States": {"X": {"Type": kind, "End": true}}})),
            at
        );
    }
    assert_eq!(
        unsupported_at(
            json!({"StartAt": "X", "States": {"X": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true}}})
        ),
        "States.X.QueryLanguage"
    );
    assert_eq!(
        unsupported_at(json!({"StartAt": "X", "QueryLanguage": "JSONata", "States": {"X": pass}})),
        "QueryLanguage"
    );
    for field in ["Assign", "Arguments", "Output"] {
        let mut state = pass.clone();
        state[field] = json!({});
        assert_eq!(
            unsupported_at(json!({"StartAt": "X", "States": {"X": state}})),
            format!("States.X.{field}")
        );
    }
    let err =
        loads(json!({"StartAt": "X", "States": {"X": {"Type": "Map", "End": true}}})).unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}

#[test]
fn an_unknown_field_is_invalid_and_named() {
    assert_eq!(
        invalid(json!({"StartAt": "X", "States": {"X": {"Type": "Succeed", "Next": "X"}}})),
        "States.X: field `Next` is not allowed in a Succeed state"
    );
}

// ---- Task -------------------------------------------------------------------------

#[tokio::test]
async fn task_resource_is_passed_as_written_with_its_integration_pattern() {
    for (resource, pattern) in [
        (
            "arn:aws:states:::lambda:invoke",
            IntegrationPattern::RequestResponse,
        ),
        (
            "arn:aws:states:::glue:startJobRun.sync",
            IntegrationPattern::RunJob,
        ),
        (
            "arn:aws:states:::states:startExecution.sync:2",
            IntegrationPattern::RunJob,
        ),
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            IntegrationPattern::WaitForTaskToken,
        ),
    ] {
        let m = machine(task(json!({"Resource": resource})));
        assert_eq!(m.task_resources(), [("T", resource, pattern)]);
        let tasks = ScriptedTasks::new().on("T", Ok(json!({})));
        run(&m, json!({}), &tasks).await;
        assert_eq!(tasks.calls()[0].resource, resource);
        assert_eq!(tasks.calls()[0].call.pattern, pattern);
    }
}

#[tokio::test]
async fn timeout_seconds_and_heartbeat_seconds_reach_the_invoker() {
    // "TimeoutSeconds ... Must be a positive, non-zero integer";
    // "HeartbeatSeconds ... less than the number of seconds specified in the
    // TimeoutSeconds field" (the page's example: 300 and 60).
    let m = machine(task(json!({"TimeoutSeconds": 300, "HeartbeatSeconds": 60})));
    let tasks = ScriptedTasks::new().on("T", Ok(json!({})));
    run(&m, json!({}), &tasks).await;
    let call = &tasks.calls()[0].call;
    assert_eq!(call.timeout, Some(Duration::from_secs(300)));
    assert_eq!(call.heartbeat, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn timeout_and_heartbeat_paths_are_read_from_the_input() {
    // The page's dynamic example: "TimeoutSecondsPath": "$.params.maxTime",
    // "HeartbeatSecondsPath": "$.params.heartbeat".
    let m = machine(task(json!({
        "Resource": "arn:aws:states:::glue:startJobRun.sync",
        "Parameters": {"JobName": "myGlueJob"},
        "TimeoutSecondsPath": "$.params.maxTime",
        "HeartbeatSecondsPath": "$.params.heartbeat"
    })));
    let tasks = ScriptedTasks::new().on("T", Ok(json!({})));
    run(
        &m,
        json!({"params": {"maxTime": 3600, "heartbeat": 120}}),
        &tasks,
    )
    .await;
    let call = &tasks.calls()[0];
    assert_eq!(call.parameters, json!({"JobName": "myGlueJob"}));
    assert_eq!(call.call.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(call.call.heartbeat, Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn a_timeout_path_must_select_a_positive_integer() {
    // "When resolved, the reference path must select fields whose values are
    // positive integers." A path that selects nothing is worded as on AWS.
    let m = machine(task(
        json!({"TimeoutSecondsPath": "$.NoSuchTimeoutSecondsPath"}),
    ));
    let tasks = ScriptedTasks::new();
    let Next::Failed { error, cause } = run(&m, json!({}), &tasks).await.end else {
        panic!()
    };
    assert_eq!(error, "States.Runtime");
    assert_eq!(
        cause,
        "An error occurred while executing the state 'T' (entered at the event id #2). Invalid path '$.NoSuchTimeoutSecondsPath' : No results for path: $['NoSuchTimeoutSecondsPath']"
    );
    let m = machine(task(json!({"HeartbeatSecondsPath": "$.h"})));
    for bad in [json!(0), json!(-5), json!("60"), json!(1.5)] {
        let r = run(&m, json!({"h": bad}), &tasks).await;
        assert!(
            matches!(r.end, Next::Failed { ref error, .. } if error == "States.Runtime"),
            "{bad}"
        );
    }
    assert!(tasks.calls().is_empty());
}

#[test]
fn timeout_and_heartbeat_fields_are_checked_when_loading() {
    for (fields, why) in [
        (json!({"TimeoutSeconds": 0}), "TimeoutSeconds positive"),
        (
            json!({"TimeoutSeconds": 100_000_000}),
            "TimeoutSeconds at most 99999999",
        ),
        (
            json!({"TimeoutSeconds": 10, "TimeoutSecondsPath": "$.t"}),
            "not both",
        ),
        (
            json!({"HeartbeatSeconds": 1, "HeartbeatSecondsPath": "$.h"}),
            "not both",
        ),
        (
            json!({"TimeoutSeconds": 60, "HeartbeatSeconds": 60}),
            "heartbeat below timeout",
        ),
        (
            json!({"HeartbeatSeconds": 99_999_999}),
            "below the default timeout",
        ),
        (json!({"TimeoutSecondsPath": "$.a[*]"}), "a reference path"),
        (json!({"TimeoutSecondsPath": 5}), "a string"),
    ] {
        assert!(loads(task(fields)).is_err(), "{why}");
    }
    assert!(loads(task(json!({"TimeoutSecondsPath": "$$.Execution.Input.t"}))).is_ok());
}

#[tokio::test]
async fn credentials_are_evaluated_and_passed_on() {
    // "Task state : Parameters, ResultSelector, Credentials" support
    // intrinsic functions; paths work as in Parameters.
    let m = machine(task(
        json!({"Credentials": {"RoleArn.$": "States.Format('arn:aws:iam::{}:role/worker', $.account)"}}),
    ));
    let tasks = ScriptedTasks::new().on("T", Ok(json!({})));
    run(&m, json!({"account": "123456789012"}), &tasks).await;
    assert_eq!(
        tasks.calls()[0].call.credentials,
        Some(json!({"RoleArn": "arn:aws:iam::123456789012:role/worker"}))
    );
    assert!(loads(task(json!({"Credentials": "arn:aws:iam::1:role/x"}))).is_err());
}

#[tokio::test]
async fn a_heartbeat_timeout_is_matched_by_states_timeout_not_task_failed() {
    // "States.Timeout: A Task state either ran longer than the
    // TimeoutSeconds value, or failed to send a heartbeat for a period
    // longer than the HeartbeatSeconds value"; "States.TaskFailed ...
    // matches any known error name except for States.Timeout".
    let m = machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "r", "HeartbeatSeconds": 5, "End": true, "Catch": [
            {"ErrorEquals": ["States.TaskFailed"], "Next": "Failed"},
            {"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"}
        ]},
        "Failed": {"Type": "Succeed"},
        "TimedOut": {"Type": "Succeed"}
    }}));
    let tasks = ScriptedTasks::new().fail("T", "States.HeartbeatTimeout", "no heartbeat in 5s");
    let r = run(&m, json!({}), &tasks).await;
    assert_eq!(r.path, ["T", "TimedOut"]);
    assert!(r.kinds().contains(&"TaskTimedOut".to_owned()));
}

// ---- Pass ---------------------------------------------------------------------------

#[tokio::test]
async fn pass_result_is_placed_by_result_path() {
    // The page's example: Result {"x-datum": ..., "y-datum": ...},
    // ResultPath "$.coords", input {"georefOf": "Home"}.
    let m = machine(json!({"StartAt": "No-op", "States": {"No-op": {
        "Type": "Pass",
        "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
        "ResultPath": "$.coords",
        "End": true
    }}}));
    let r = run(&m, json!({"georefOf": "Home"}), &ScriptedTasks::new()).await;
    assert_eq!(
        r.end,
        Next::Succeeded {
            output: json!({"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}})
        }
    );
}

#[tokio::test]
async fn pass_with_parameters_and_result_outputs_result() {
    // Parameters is the input of the Pass state's virtual task, Result its
    // output: Result wins, but Parameters is still evaluated.
    let m = machine(json!({"StartAt": "P", "States": {"P": {
        "Type": "Pass", "Parameters": {"a.$": "$.a"}, "Result": {"r": 1}, "End": true}}}));
    let r = run(&m, json!({"a": 0}), &ScriptedTasks::new()).await;
    assert_eq!(
        r.end,
        Next::Succeeded {
            output: json!({"r": 1})
        }
    );
    let r = run(&m, json!({}), &ScriptedTasks::new()).await;
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "States.Runtime"));
}

// ---- Choice -------------------------------------------------------------------------

#[tokio::test]
async fn choice_uses_input_path_for_its_rules_and_output_path_for_its_output() {
    let m = machine(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "InputPath": "$.order", "OutputPath": "$.id",
              "Choices": [{"Variable": "$.total", "NumericGreaterThan": 100, "Next": "Big"}],
              "Default": "Small"},
        "Big": {"Type": "Succeed"},
        "Small": {"Type": "Succeed"}
    }}));
    let r = run(
        &m,
        json!({"order": {"id": "o-1", "total": 150}}),
        &ScriptedTasks::new(),
    )
    .await;
    assert_eq!(r.path, ["C", "Big"]);
    assert_eq!(
        r.end,
        Next::Succeeded {
            output: json!("o-1")
        }
    );
}

// ---- Wait ---------------------------------------------------------------------------

#[tokio::test]
async fn wait_parameters_that_select_nothing_or_the_wrong_value_fail_as_on_aws() {
    // SecondsPath: "You must specify an integer value for this field."
    // TimestampPath: "Timestamps must conform to the RFC3339 profile of ISO
    // 8601".
    let seconds = machine(
        json!({"StartAt": "WaitState", "States": {"WaitState": {"Type": "Wait", "SecondsPath": "$.input.waitSeconds", "End": true}}}),
    );
    for (input, detail) in [
        (json!({}), "The SecondsPath parameter does not reference an input value: $.input.waitSeconds"),
        (json!({"input": {"waitSeconds": -1}}), "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1"),
        (json!({"input": {"waitSeconds": 1.5}}), "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == 1.5"),
    ] {
        let Next::Failed { error, cause } = run(&seconds, input, &ScriptedTasks::new()).await.end else { panic!() };
        assert_eq!(error, "States.Runtime");
        assert_eq!(
            cause,
            format!("An error occurred while executing the state 'WaitState' (entered at the event id #2). {detail}")
        );
    }
    let stamp = machine(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "TimestampPath": "$.at", "End": true}}}),
    );
    let Next::Failed { cause, .. } = run(
        &stamp,
        json!({"at": "2016-12-05T21:29:29"}),
        &ScriptedTasks::new(),
    )
    .await
    .end
    else {
        panic!()
    };
    assert!(cause.ends_with("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: $.at == 2016-12-05T21:29:29"), "{cause}");
    // Fractional seconds are part of RFC 3339.
    let r = run(
        &stamp,
        json!({"at": "2026-11-25T10:00:05.500Z"}),
        &ScriptedTasks::new(),
    )
    .await;
    assert_eq!(r.delays_ms("W"), [5500]);
}

#[test]
fn wait_needs_exactly_one_of_its_four_fields() {
    // "You must specify exactly one of Seconds, Timestamp, SecondsPath, or TimestampPath."
    assert!(
        loads(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "End": true}}})).is_err()
    );
    assert!(loads(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2016-03-14T01:59:00Z", "TimestampPath": "$.t", "End": true}}})).is_err());
    // "an uppercase T must separate the date and time portions".
    assert!(loads(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2016-03-14t01:59:00Z", "End": true}}})).is_err());
    assert!(loads(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": -1, "End": true}}})
    )
    .is_err());
}

// ---- Succeed and Fail ----------------------------------------------------------------

#[tokio::test]
async fn succeed_applies_input_path_and_output_path() {
    let m = machine(
        json!({"StartAt": "S", "States": {"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}}),
    );
    let r = run(&m, json!({"a": {"b": 1, "c": 2}}), &ScriptedTasks::new()).await;
    assert_eq!(r.end, Next::Succeeded { output: json!(1) });
}

#[tokio::test]
async fn fail_error_path_and_cause_path_take_paths_or_intrinsics() {
    let m = machine(json!({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.JsonToString($.detail)"}}}));
    let r = run(
        &m,
        json!({"e": "422", "detail": {"why": "bad"}}),
        &ScriptedTasks::new(),
    )
    .await;
    assert_eq!(
        r.end,
        Next::Failed {
            error: "422".into(),
            cause: "{\"why\":\"bad\"}".into()
        }
    );
    // Worded as on AWS when the path finds nothing.
    let r = run(&m, json!({"detail": {}}), &ScriptedTasks::new()).await;
    let Next::Failed { error, cause } = r.end else {
        panic!()
    };
    assert_eq!(error, "States.Runtime");
    assert_eq!(
        cause,
        "An error occurred while executing the state 'F' (entered at the event id #2). The JSONPath '$.e' specified for the field 'ErrorPath' could not be found in the input '{\"detail\":{}}'"
    );
}

// ---- Paths in InputPath/OutputPath, worded as on AWS ------------------------------------

#[tokio::test]
async fn input_and_output_paths_that_match_nothing_are_worded_as_on_aws() {
    for (field, path, detail) in [
        (
            "InputPath",
            "$.NoSuchInputPath",
            "Invalid path '$.NoSuchInputPath' : No results for path: $['NoSuchInputPath']",
        ),
        (
            "OutputPath",
            "$.no.such.result.path",
            "Invalid path '$.no.such.result.path' : Missing property in path $['no']",
        ),
    ] {
        let mut state = json!({"Type": "Pass", "End": true});
        state[field] = json!(path);
        let m = machine(json!({"StartAt": "pass", "States": {"pass": state}}));
        let Next::Failed { error, cause } = run(&m, json!({}), &ScriptedTasks::new()).await.end
        else {
            panic!()
        };
        assert_eq!(error, "States.Runtime");
        assert_eq!(
            cause,
            format!("An error occurred while executing the state 'pass' (entered at the event id #2). {detail}")
        );
    }
    let m = machine(
        json!({"StartAt": "pass", "States": {"pass": {"Type": "Pass", "Parameters": {"value.$": "$.no_such_jsonpath"}, "End": true}}}),
    );
    let Next::Failed { cause, .. } = run(&m, json!({"a": 1}), &ScriptedTasks::new()).await.end
    else {
        panic!()
    };
    assert_eq!(
        cause,
        "An error occurred while executing the state 'pass' (entered at the event id #2). The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"a\":1}'"
    );
}
