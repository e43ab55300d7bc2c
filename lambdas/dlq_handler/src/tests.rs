//! Unit tests: each kind of dead letter, the FULFILLED/REJECTED guard,
//! unreadable bodies and port errors.

use super::*;
use aws_lambda_events::sqs::SqsMessage;
use dofs_core::testkit::{
    sample_order, sample_submission, sample_time, FixedClock, MemoryFailedOrderStore,
    MemoryOrderStore,
};
use dofs_core::ErrorKind;
use dofs_lambda::sqs::RECEIVE_COUNT_ATTRIBUTE;
use lambda_runtime::Context;
use serde_json::{json, Value};

fn now() -> chrono::DateTime<chrono::Utc> {
    sample_time() + chrono::Duration::minutes(10)
}

struct Harness {
    handler: DlqHandler,
    orders: Arc<MemoryOrderStore>,
    failed: Arc<MemoryFailedOrderStore>,
}

fn harness(orders: impl IntoIterator<Item = Order>) -> Harness {
    let orders = Arc::new(MemoryOrderStore::with_orders(orders));
    let failed = Arc::new(MemoryFailedOrderStore::new());
    Harness {
        handler: DlqHandler::new(orders.clone(), failed.clone(), Arc::new(FixedClock(now()))),
        orders,
        failed,
    }
}

fn record(message_id: &str, body: &str) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id.to_owned());
    message.body = Some(body.to_owned());
    message
        .attributes
        .insert(RECEIVE_COUNT_ATTRIBUTE.to_owned(), "3".to_owned());
    message
}

async fn run(h: &Harness, records: Vec<SqsMessage>) -> Vec<String> {
    let mut event = SqsEvent::default();
    event.records = records;
    h.handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap()
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

async fn stored(h: &Harness, id: &OrderId) -> Order {
    h.orders.get(id).await.unwrap().unwrap()
}

fn workflow_failure(submission: &OrderSubmission, error: &str, cause: &str) -> Value {
    let mut state = serde_json::to_value(submission).unwrap();
    state["failure"] = json!({"Error": error, "Cause": cause});
    json!({
        "source": "workflow",
        "order_id": submission.order_id,
        "error": error,
        "cause": cause,
        "submission": state
    })
}

#[tokio::test]
async fn a_redriven_order_is_recorded_and_marked_failed() {
    let order = sample_order(OrderStatus::Pending);
    let h = harness([order.clone()]);
    let body = serde_json::to_string(&order).unwrap();
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());

    let failed_order = stored(&h, &order.order_id).await;
    assert_eq!(failed_order.status, OrderStatus::Failed);
    let last = failed_order.history.last().unwrap();
    assert_eq!(last.at, now());
    assert!(last
        .reason
        .as_deref()
        .unwrap()
        .starts_with(FULFILLMENT_FAILED));

    let row = h.failed.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(row.error, FULFILLMENT_FAILED);
    assert_eq!(row.receive_count, 3);
    assert_eq!(row.failed_at, now());
    assert_eq!(row.payload, serde_json::to_value(&order).unwrap());
}

#[tokio::test]
async fn a_redelivered_dead_letter_is_idempotent() {
    let order = sample_order(OrderStatus::Pending);
    let h = harness([order.clone()]);
    let body = serde_json::to_string(&order).unwrap();
    run(&h, vec![record("m1", &body)]).await;
    let first = stored(&h, &order.order_id).await;
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());
    assert_eq!(stored(&h, &order.order_id).await, first);
    assert_eq!(h.failed.len(), 1);
}

#[tokio::test]
async fn a_workflow_failure_before_storage_creates_the_order_as_failed() {
    let submission = sample_submission(&OrderId::generate());
    let h = harness([]);
    let cause = r#"{"errorType":"TransientError","errorMessage":"orders table unavailable"}"#;
    let body = workflow_failure(&submission, "TransientError", cause).to_string();
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());

    let order = stored(&h, &submission.order_id).await;
    assert_eq!(order.status, OrderStatus::Failed);
    let statuses: Vec<_> = order.history.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [OrderStatus::Received, OrderStatus::Failed]);
    assert_eq!(order.total.to_string(), "21.48");

    let row = h.failed.get(&submission.order_id).await.unwrap().unwrap();
    assert_eq!(row.error, "TransientError");
    assert_eq!(row.reason, "orders table unavailable");
}

#[tokio::test]
async fn a_workflow_failure_after_validation_fails_the_stored_order() {
    let order = sample_order(OrderStatus::Validated);
    let h = harness([order.clone()]);
    let submission =
        OrderSubmission::new(order.order_id.clone(), order.request(), order.created_at);
    let body = workflow_failure(&submission, "States.Timeout", "task timed out").to_string();
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());
    assert_eq!(
        stored(&h, &order.order_id).await.status,
        OrderStatus::Failed
    );
    assert_eq!(
        h.failed.get(&order.order_id).await.unwrap().unwrap().reason,
        "task timed out"
    );
}

#[tokio::test]
async fn fulfilled_and_rejected_orders_get_no_failure_record() {
    for status in [OrderStatus::Fulfilled, OrderStatus::Rejected] {
        let order = sample_order(status);
        let h = harness([order.clone()]);
        let body = serde_json::to_string(&order).unwrap();
        assert!(
            run(&h, vec![record("m1", &body)]).await.is_empty(),
            "{status}"
        );
        assert_eq!(stored(&h, &order.order_id).await, order, "{status}");
        assert!(h.failed.is_empty(), "{status}");
    }
}

#[tokio::test]
async fn an_unreadable_body_with_an_order_id_is_still_recorded() {
    let order = sample_order(OrderStatus::Pending);
    let h = harness([order.clone()]);
    let body = json!({"order_id": order.order_id, "what": "truncated"}).to_string();
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());
    let row = h.failed.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(row.error, UNREADABLE_MESSAGE);
    assert_eq!(row.payload["what"], "truncated");
    assert_eq!(
        stored(&h, &order.order_id).await.status,
        OrderStatus::Failed
    );

    // Unknown order: only the record can be kept.
    let unknown = OrderId::generate();
    let body = json!({"order_id": unknown, "broken": true}).to_string();
    assert!(run(&h, vec![record("m2", &body)]).await.is_empty());
    assert!(h.failed.get(&unknown).await.unwrap().is_some());
    assert!(h.orders.get(&unknown).await.unwrap().is_none());
}

#[tokio::test]
async fn a_body_without_an_order_id_is_an_item_failure() {
    let order = sample_order(OrderStatus::Pending);
    let h = harness([order.clone()]);
    let good = serde_json::to_string(&order).unwrap();
    let failures = run(
        &h,
        vec![
            record("junk", "not json at all"),
            record("good", &good),
            record("no-id", r#"{"hello": "world"}"#),
            record("bad-id", r#"{"order_id": "has space"}"#),
        ],
    )
    .await;
    assert_eq!(failures, ["junk", "no-id", "bad-id"]);
    assert_eq!(
        stored(&h, &order.order_id).await.status,
        OrderStatus::Failed
    );
    assert_eq!(h.failed.len(), 1);
}

#[tokio::test]
async fn port_errors_are_item_failures() {
    let order = sample_order(OrderStatus::Pending);
    let h = harness([order.clone()]);
    h.failed.faults.fail_with(ErrorKind::Transient);
    let body = serde_json::to_string(&order).unwrap();
    assert_eq!(run(&h, vec![record("m1", &body)]).await, ["m1"]);
    // The redelivery completes the work: the order is FAILED, now recorded.
    h.failed.faults.heal();
    assert!(run(&h, vec![record("m1", &body)]).await.is_empty());
    assert_eq!(
        stored(&h, &order.order_id).await.status,
        OrderStatus::Failed
    );
    assert_eq!(h.failed.len(), 1);

    h.orders.faults.fail_with(ErrorKind::Transient);
    let other = sample_order(OrderStatus::Pending);
    let body = serde_json::to_string(&other).unwrap();
    assert_eq!(run(&h, vec![record("m2", &body)]).await, ["m2"]);
}

#[test]
fn cause_message_unwraps_lambda_errors() {
    assert_eq!(
        cause_message(r#"{"errorType":"TransientError","errorMessage":"busy"}"#),
        "busy"
    );
    assert_eq!(cause_message("States.Timeout"), "States.Timeout");
}
