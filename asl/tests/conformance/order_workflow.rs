//! The real `terraform/order_workflow.asl.json` end to end with a scripted task
//! invoker: the happy path, business rejection, retries, dead-lettering and
//! resuming from a persisted cursor, with the retry and catch semantics of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
//! and the data flow of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html>.

use super::helpers::*;
use dofs_asl::Next;
use dofs_core::contracts::{OrderSubmission, StorageRequest, WorkflowFailure};
use serde_json::{json, Value};

fn submission() -> Value {
    json!({
        "order_id": "o-1",
        "customer_name": "Ada Lovelace",
        "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}],
        "submitted_at": "2026-11-25T10:00:00Z"
    })
}

fn order(status: &str) -> Value {
    let parsed: OrderSubmission = serde_json::from_value(submission()).unwrap();
    let mut order = serde_json::to_value(parsed.to_order()).unwrap();
    order["status"] = json!(status);
    order
}

fn lambda_ok(order: Value) -> Value {
    json!({"Payload": {"order": order}, "StatusCode": 200, "ExecutedVersion": "$LATEST"})
}

/// The validator's successful result: a verdict, the order and the reason.
fn validation(verdict: &str, order: Value, reason: Option<&str>) -> Value {
    lambda_ok(order)
        .as_object()
        .map(|o| {
            let mut o = o.clone();
            o["Payload"]["verdict"] = json!(verdict);
            o["Payload"]["reason"] = json!(reason);
            Value::Object(o)
        })
        .unwrap()
}

fn valid() -> Value {
    validation("valid", order("VALIDATED"), None)
}

fn validated() -> Value {
    json!({"verdict": "valid", "order": order("VALIDATED"), "reason": null})
}

fn lambda_error(error: &str, message: &str) -> String {
    json!({"errorType": error, "errorMessage": message}).to_string()
}

fn happy_tasks() -> ScriptedTasks {
    ScriptedTasks::new()
        .on("ValidateOrder", Ok(valid()))
        .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
        .on(
            "EnqueueOrder",
            Ok(json!({"MessageId": "m-1", "MD5OfMessageBody": "abc"})),
        )
}

#[test]
fn renders_and_exposes_timeout_and_error_names() {
    let m = order_workflow();
    assert_eq!(m.start_at(), "ValidateOrder");
    assert_eq!(m.timeout(), Some(std::time::Duration::from_secs(300)));
    assert_eq!(
        m.deadline(t0()),
        Some(t0() + chrono::Duration::seconds(300))
    );
    let names = m.error_equals();
    for expected in [
        "TransientError",
        "States.ALL",
        "States.Timeout",
        "SQS.SdkClientException",
    ] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    assert!(
        !names.contains("OrderRejected"),
        "a rejection is a verdict, not an error"
    );
}

#[tokio::test]
async fn happy_path_stores_and_enqueues_the_order() {
    let m = order_workflow();
    let tasks = happy_tasks();
    let r = run(&m, submission(), &tasks).await;

    let calls = tasks.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].resource, "arn:aws:states:::lambda:invoke");
    assert_eq!(
        calls[0].parameters,
        json!({"FunctionName": VALIDATOR, "Payload": submission()})
    );
    assert_eq!(
        calls[0].call.timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(calls[0].call.execution_name, "o-1");
    assert!(calls[0]
        .call
        .trace_header
        .as_deref()
        .unwrap()
        .starts_with("Root=1-"));
    assert_eq!(
        calls[1].parameters,
        json!({"FunctionName": STORAGE, "Payload": {"action": "store", "order": order("VALIDATED")}})
    );
    let request: StorageRequest =
        serde_json::from_value(calls[1].parameters["Payload"].clone()).unwrap();
    assert!(matches!(request, StorageRequest::Store { .. }));
    assert_eq!(calls[2].resource, "arn:aws:states:::sqs:sendMessage");
    assert_eq!(
        calls[2].parameters,
        json!({"QueueUrl": ORDER_QUEUE, "MessageBody": order("PENDING")})
    );

    let mut expected = submission();
    expected["validated"] = validated();
    expected["stored"] = json!({"order": order("PENDING")});
    expected["enqueued"] = json!({"message_id": "m-1"});
    assert_eq!(r.end, Next::Succeeded { output: expected });
    assert_eq!(
        r.path,
        [
            "ValidateOrder",
            "CheckVerdict",
            "StoreOrder",
            "EnqueueOrder",
            "OrderEnqueued"
        ]
    );
    let task_events = [
        "TaskStateEntered",
        "TaskScheduled",
        "TaskSucceeded",
        "TaskStateExited",
    ];
    let mut kinds: Vec<&str> = task_events.to_vec();
    kinds.extend(["ChoiceStateEntered", "ChoiceStateExited"]);
    kinds.extend(task_events.iter().cycle().take(8).copied());
    kinds.extend([
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]);
    assert_eq!(r.kinds(), kinds);
    assert!(r.sleeps.is_empty());
}

#[tokio::test]
async fn rejected_order_is_stored_with_the_reason() {
    let m = order_workflow();
    let reason = "order total exceeds the limit";
    let tasks = ScriptedTasks::new()
        .on(
            "ValidateOrder",
            Ok(validation("rejected", order("RECEIVED"), Some(reason))),
        )
        .on("RejectOrder", Ok(lambda_ok(order("REJECTED"))));
    let r = run(&m, submission(), &tasks).await;
    assert_eq!(
        r.path,
        [
            "ValidateOrder",
            "CheckVerdict",
            "RejectOrder",
            "OrderRejected"
        ]
    );
    let reject = &tasks.calls_to("RejectOrder")[0];
    let mut submitted = submission();
    submitted["validated"] =
        json!({"verdict": "rejected", "order": order("RECEIVED"), "reason": reason});
    assert_eq!(
        reject.parameters,
        json!({"FunctionName": STORAGE, "Payload": {"action": "reject", "submission": submitted, "reason": reason}})
    );
    let request: StorageRequest =
        serde_json::from_value(reject.parameters["Payload"].clone()).unwrap();
    assert!(matches!(request, StorageRequest::Reject { reason: ref r, .. } if r == reason));
    let Next::Succeeded { output } = r.end else {
        panic!("{:?}", r.end)
    };
    assert_eq!(output["stored"]["order"]["status"], "REJECTED");
    assert!(r.sleeps.is_empty(), "a business rejection is not retried");
    assert!(
        tasks.calls_to("StoreOrder").is_empty(),
        "a rejected order is never stored as PENDING"
    );
}

#[tokio::test]
async fn transient_error_succeeds_on_the_third_attempt_with_the_files_backoff() {
    let m = order_workflow();
    let tasks = ScriptedTasks::new()
        .fail("ValidateOrder", "TransientError", "throttled")
        .fail("ValidateOrder", "TransientError", "throttled")
        .on("ValidateOrder", Ok(valid()))
        .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
        .on("EnqueueOrder", Ok(json!({"MessageId": "m-1"})));
    let r = run(&m, submission(), &tasks).await;
    let attempts: Vec<u32> = tasks
        .calls_to("ValidateOrder")
        .iter()
        .map(|c| c.call.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    // IntervalSeconds 1, BackoffRate 2, FULL jitter: below 1 s, then below 2 s.
    let delays = r.delays_ms("ValidateOrder");
    assert_eq!(delays.len(), 2);
    assert!(
        (0..=1000).contains(&delays[0]) && (0..=2000).contains(&delays[1]),
        "{delays:?}"
    );
    assert!(
        matches!(r.end, Next::Succeeded { ref output } if output["enqueued"]["message_id"] == "m-1")
    );
    // Every attempt got the same parameters.
    let payloads: Vec<Value> = tasks
        .calls_to("ValidateOrder")
        .into_iter()
        .map(|c| c.parameters)
        .collect();
    assert!(payloads.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test]
async fn timeouts_use_the_second_retrier_without_jitter() {
    let m = order_workflow();
    let tasks = (0..3).fold(ScriptedTasks::new(), |t, _| {
        t.fail("ValidateOrder", "States.Timeout", "30s")
    });
    let tasks = tasks.on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
    let r = run(&m, submission(), &tasks).await;
    assert_eq!(r.delays_ms("ValidateOrder"), [2000, 4000]);
    let body: WorkflowFailure =
        serde_json::from_value(tasks.calls_to("DeadLetter")[0].parameters["MessageBody"].clone())
            .unwrap();
    assert_eq!(body.error, "States.Timeout");
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "OrderFailed"));
}

#[tokio::test]
async fn store_failing_permanently_goes_to_the_dead_letter_queue() {
    let m = order_workflow();
    let cause = lambda_error("TransientError", "orders table unavailable");
    let tasks = (0..4)
        .fold(
            ScriptedTasks::new().on("ValidateOrder", Ok(valid())),
            |t, _| t.fail("StoreOrder", "TransientError", &cause),
        )
        .on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
    let r = run(&m, submission(), &tasks).await;
    assert_eq!(
        tasks.calls_to("StoreOrder").len(),
        4,
        "first try and MaxAttempts 3 retries"
    );
    let delays = r.delays_ms("StoreOrder");
    assert_eq!(delays.len(), 3);
    for (delay, cap) in delays.iter().zip([1000, 2000, 4000]) {
        assert!((0..=cap).contains(delay), "{delays:?}");
    }
    assert_eq!(r.path.iter().filter(|s| *s == "StoreOrder").count(), 4);
    assert_eq!(r.path.last().map(String::as_str), Some("OrderFailed"));

    let dead_letter = &tasks.calls_to("DeadLetter")[0];
    assert_eq!(dead_letter.resource, "arn:aws:states:::sqs:sendMessage");
    assert_eq!(dead_letter.parameters["QueueUrl"], DLQ);
    let body = dead_letter.parameters["MessageBody"].clone();
    let failure: WorkflowFailure = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(failure.order_id.as_str(), "o-1");
    assert_eq!(failure.error, "TransientError");
    assert_eq!(failure.cause, cause);
    let mut submitted = submission();
    submitted["validated"] = validated();
    submitted["failure"] = json!({"Error": "TransientError", "Cause": cause});
    assert_eq!(body["submission"], submitted);
    assert_eq!(body["source"], "workflow");

    assert_eq!(
        r.end,
        Next::Failed {
            error: "OrderFailed".into(),
            cause: "A workflow step failed after its retries; the order was sent to the dead-letter queue.".into()
        }
    );
    assert_eq!(
        r.kinds().last().map(String::as_str),
        Some("ExecutionFailed")
    );
}

#[tokio::test]
async fn non_retried_error_goes_straight_to_the_dead_letter_queue() {
    let m = order_workflow();
    let tasks = ScriptedTasks::new()
        .on("ValidateOrder", Ok(valid()))
        .fail(
            "StoreOrder",
            "ConflictError",
            "order o-1 exists with other content",
        )
        .on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
    let r = run(&m, submission(), &tasks).await;
    assert_eq!(tasks.calls_to("StoreOrder").len(), 1);
    assert!(r.sleeps.is_empty());
    assert_eq!(
        r.path,
        [
            "ValidateOrder",
            "CheckVerdict",
            "StoreOrder",
            "DeadLetter",
            "OrderFailed"
        ]
    );
}

#[tokio::test]
async fn dead_letter_failure_still_ends_in_order_failed() {
    let m = order_workflow();
    let tasks = (0..4).fold(
        ScriptedTasks::new().fail("ValidateOrder", "ValidationError", "bad"),
        |t, _| t.fail("DeadLetter", "SQS.AmazonSQSException", "queue gone"),
    );
    let r = run(&m, submission(), &tasks).await;
    assert_eq!(tasks.calls_to("DeadLetter").len(), 4);
    assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "OrderFailed"));
}

#[tokio::test]
async fn resuming_from_a_persisted_cursor_matches_an_uninterrupted_run() {
    let m = order_workflow();
    let script = || {
        ScriptedTasks::new()
            .fail("ValidateOrder", "TransientError", "throttled")
            .on("ValidateOrder", Ok(valid()))
            .fail("StoreOrder", "Lambda.TooManyRequestsException", "rate")
            .fail("StoreOrder", "States.Timeout", "slow")
            .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
            .on("EnqueueOrder", Ok(json!({"MessageId": "m-1"})))
    };
    let (straight_tasks, resumed_tasks) = (script(), script());
    let straight = run_with(&m, submission(), &straight_tasks, 11, false).await;
    let resumed = run_with(&m, submission(), &resumed_tasks, 11, true).await;
    assert_eq!(straight, resumed);
    let params = |t: &ScriptedTasks| {
        t.calls()
            .into_iter()
            .map(|c| (c.parameters, c.call))
            .collect::<Vec<_>>()
    };
    assert_eq!(params(&straight_tasks), params(&resumed_tasks));
    assert!(matches!(straight.end, Next::Succeeded { .. }));
    assert_eq!(straight.sleeps.len(), 3);

    // A "crash" mid-retry: reload the definition and continue from the stored cursor.
    let ctx = context(&submission());
    let tasks = script();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
    let step = m
        .advance(m.start(submission()), &ctx, &tasks, t0(), &mut rng)
        .await;
    let Next::Sleep { cursor, until } = step.next else {
        panic!("{:?}", step.next)
    };
    assert_eq!(cursor.retries.values().sum::<u32>(), 1);
    let stored = serde_json::to_string(&cursor).unwrap();
    let reloaded = order_workflow();
    let step = reloaded
        .advance(
            serde_json::from_str(&stored).unwrap(),
            &ctx,
            &tasks,
            until,
            &mut rng,
        )
        .await;
    assert_eq!(
        step.events.first().map(|e| e.kind.as_str()),
        Some("TaskScheduled"),
        "no second StateEntered"
    );
    assert_eq!(tasks.calls_to("ValidateOrder")[1].call.attempt, 2);
    assert!(
        matches!(step.next, Next::Continue(ref c) if c.state == "CheckVerdict" && c.retries.is_empty())
    );
}
