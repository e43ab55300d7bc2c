//! The Step Functions quotas that change what an execution does, following
//! <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>
//! ("Maximum input or output size for a task, state, or execution: 262,144
//! bytes of data as a UTF-8 encoded string"; "Maximum execution history
//! size: 25,000 events"; "Maximum execution time: 1 year"), the
//! `States.DataLimitExceeded` entry of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
//! and the Wait state's "the maximum wait time that you can specify ... is
//! one year" (<https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html>).

use super::helpers::*;
use dofs_asl::{quotas, Cursor, Next};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

/// `{"x": "aaa…"}` of exactly `bytes` bytes as JSON text.
fn payload_of(bytes: usize) -> Value {
    json!({"x": "a".repeat(bytes - r#"{"x":""}"#.len())})
}

fn pass_result(result: Value) -> dofs_asl::StateMachine {
    machine(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": true}}}),
    )
}

#[tokio::test]
async fn a_state_output_may_have_up_to_262144_bytes() {
    assert_eq!(quotas::MAX_PAYLOAD_BYTES, 262_144);
    let at_limit = payload_of(262_144);
    let r = run(
        &pass_result(at_limit.clone()),
        json!({}),
        &ScriptedTasks::new(),
    )
    .await;
    assert_eq!(r.end, Next::Succeeded { output: at_limit });
}

#[tokio::test]
async fn a_larger_state_output_fails_with_data_limit_exceeded() {
    // "When the output of a state is larger than payload size quota."
    let r = run(
        &pass_result(payload_of(262_145)),
        json!({}),
        &ScriptedTasks::new(),
    )
    .await;
    assert_eq!(
        r.end,
        Next::Failed {
            error: "States.DataLimitExceeded".into(),
            cause: "The state/task 'P' returned a result with a size exceeding the maximum number of bytes service limit.".into()
        }
    );
    assert_eq!(r.kinds(), ["PassStateEntered", "ExecutionFailed"]);
}

#[tokio::test]
async fn sizes_count_utf8_bytes_not_characters() {
    // "262,144 bytes of data as a UTF-8 encoded string": 'é' is two bytes.
    let wide = json!({"x": "é".repeat(131_070)});
    let r = run(&pass_result(wide), json!({}), &ScriptedTasks::new()).await;
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "States.DataLimitExceeded"));
}

fn task_with(catch: Value, retry: Value) -> dofs_asl::StateMachine {
    machine(json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": retry,
              "Catch": catch, "End": true},
        "Caught": {"Type": "Pass", "End": true},
        "Other": {"Type": "Pass", "End": true}
    }}))
}

#[tokio::test]
async fn an_oversized_task_result_is_a_task_failure_states_all_does_not_catch() {
    // "When the output of a connector is larger than payload size quota";
    // "This is a terminal error that can't be caught by the States.ALL error
    // type" — nor retried by it.
    let m = task_with(
        json!([
            {"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"},
            {"ErrorEquals": ["States.ALL"], "Next": "Other"}
        ]),
        json!([{"ErrorEquals": ["States.ALL"]}]),
    );
    let tasks = ScriptedTasks::new().on("T", Ok(payload_of(300_000)));
    let r = run(&m, json!({}), &tasks).await;
    assert_eq!(tasks.calls().len(), 1);
    assert_eq!(
        r.end,
        Next::Failed {
            error: "States.DataLimitExceeded".into(),
            cause: "The state/task 'lambda' returned a result with a size exceeding the maximum number of bytes service limit.".into()
        }
    );
    assert_eq!(
        r.kinds(),
        [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskFailed",
            "ExecutionFailed"
        ]
    );
}

#[tokio::test]
async fn a_catcher_naming_data_limit_exceeded_handles_it() {
    // Only States.ALL is said not to catch it: a catcher that names it does.
    let m = task_with(
        json!([
            {"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"},
            {"ErrorEquals": ["States.ALL"], "Next": "Other"}
        ]),
        json!([]),
    );
    let tasks = ScriptedTasks::new().on("T", Ok(payload_of(300_000)));
    let r = run(&m, json!({"in": 1}), &tasks).await;
    assert_eq!(r.path, ["T", "Caught"]);
    let Next::Succeeded { output } = r.end else {
        panic!("{:?}", r.end)
    };
    assert_eq!(output["Error"], "States.DataLimitExceeded");
}

#[tokio::test]
async fn a_legacy_lambda_resource_is_named_by_its_arn() {
    let arn = "arn:aws:lambda:eu-west-1:000000000000:function:big";
    let m = machine(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": arn, "End": true}}}),
    );
    let tasks = ScriptedTasks::new().on("T", Ok(payload_of(300_000)));
    let Next::Failed { cause, .. } = run(&m, json!({}), &tasks).await.end else {
        panic!()
    };
    assert_eq!(
        cause,
        format!("The state/task '{arn}' returned a result with a size exceeding the maximum number of bytes service limit.")
    );
}

#[tokio::test]
async fn an_oversized_input_after_parameters_is_not_sent() {
    // "When, after Parameters processing, the input of a state is larger
    // than the payload size quota."
    let m = machine(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "r", "Parameters": {"a.$": "$.x", "b.$": "$.x"}, "End": true}}}));
    let tasks = ScriptedTasks::new();
    let r = run(&m, json!({"x": "a".repeat(200_000)}), &tasks).await;
    assert!(tasks.calls().is_empty());
    assert!(
        matches!(r.end, Next::Failed { ref error, .. } if error == "States.DataLimitExceeded"),
        "{:?}",
        r.end
    );
}

#[tokio::test]
async fn a_task_output_over_the_limit_after_result_path_fails() {
    let m = machine(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "r", "ResultPath": "$.result", "End": true}}}));
    let tasks = ScriptedTasks::new().on("T", Ok(json!("a".repeat(150_000))));
    let r = run(&m, json!({"x": "a".repeat(150_000)}), &tasks).await;
    assert!(
        matches!(r.end, Next::Failed { ref error, ref cause } if error == "States.DataLimitExceeded" && cause.contains("'T'")),
        "{:?}",
        r.end
    );
}

#[tokio::test]
async fn a_wait_longer_than_the_quota_fails() {
    // A timestamp 70 years ahead is more than any wait allowed.
    let m = machine(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Timestamp": "2096-11-25T10:00:00Z", "End": true}}}),
    );
    let r = run(&m, json!({}), &ScriptedTasks::new()).await;
    let Next::Failed { error, cause } = r.end else {
        panic!("{:?}", r.end)
    };
    assert_eq!(error, "States.Runtime");
    assert!(cause.ends_with("Wait state delay is too long."), "{cause}");
    // The largest `Seconds` a definition may hold (99999999) still waits.
    let m = machine(
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 99_999_999, "End": true}}}),
    );
    let r = run(&m, json!({}), &ScriptedTasks::new()).await;
    assert_eq!(r.delays_ms("W"), [99_999_999_000]);
    assert!(loads(json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100_000_000, "End": true}}})).is_err());
}

#[test]
fn an_execution_runs_at_most_a_year() {
    // "Maximum execution time: 1 year. If an execution runs for more than
    // the 1-year maximum, it will fail with a States.Timeout error."
    let year = chrono::Duration::days(365);
    let m = machine(json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}));
    assert_eq!(m.deadline(t0()), Some(t0() + year));
    let long = machine(
        json!({"StartAt": "P", "TimeoutSeconds": 99_999_999, "States": {"P": {"Type": "Pass", "End": true}}}),
    );
    assert_eq!(long.deadline(t0()), Some(t0() + year));
    assert_eq!(
        long.timeout(),
        Some(std::time::Duration::from_secs(365 * 86_400))
    );
}

/// Drives a never-ending loop to its end, counting the events as the host
/// numbers them (its ExecutionStarted is event 1).
async fn run_loop(m: &dofs_asl::StateMachine, mut cursor: Cursor) -> (Next, u64) {
    let ctx = context(&json!({}));
    let mut rng = StdRng::seed_from_u64(3);
    let mut recorded = cursor.events;
    for _ in 0..100_000 {
        let step = m
            .advance(cursor, &ctx, &ScriptedTasks::new(), t0(), &mut rng)
            .await;
        recorded += step.events.len() as u64;
        match step.next {
            Next::Continue(next) => cursor = next,
            end => return (end, recorded),
        }
    }
    panic!("the loop did not end");
}

#[tokio::test]
async fn an_execution_fails_when_its_history_reaches_25000_events() {
    // "If the execution history reaches this quota, the execution will fail."
    // The failure is the 25,000th event.
    let m = machine(json!({"StartAt": "Loop", "States": {
        "Loop": {"Type": "Pass", "Next": "Choose"},
        "Choose": {"Type": "Choice", "Choices": [{"Variable": "$.spin", "BooleanEquals": true, "Next": "Loop"}], "Default": "Done"},
        "Done": {"Type": "Succeed"}
    }}));
    let (end, recorded) = run_loop(&m, m.start(json!({"spin": true}))).await;
    assert_eq!(
        end,
        Next::Failed {
            error: "States.Runtime".into(),
            cause: "The execution reached the maximum number of history events (25000).".into()
        }
    );
    assert_eq!(recorded, quotas::MAX_HISTORY_EVENTS);
}

#[tokio::test]
async fn an_execution_that_ends_at_event_25000_succeeds() {
    let m = machine(json!({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}));
    // Succeed records three events: entered, exited, ExecutionSucceeded.
    let mut cursor = m.start(json!({}));
    cursor.events = quotas::MAX_HISTORY_EVENTS - 3;
    let (end, recorded) = run_loop(&m, cursor).await;
    assert_eq!(end, Next::Succeeded { output: json!({}) });
    assert_eq!(recorded, quotas::MAX_HISTORY_EVENTS);
}
