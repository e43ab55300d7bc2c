//! Unit tests: storing validated and rejected orders, repeats, conflicts
//! and port errors.

use super::*;
use dofs_core::testkit::{
    sample_order, sample_submission, sample_time, FixedClock, MemoryOrderStore,
};
use dofs_core::{ErrorKind, OrderId};
use lambda_runtime::Context;
use serde_json::{json, Value};

fn now() -> chrono::DateTime<chrono::Utc> {
    sample_time() + chrono::Duration::seconds(5)
}

fn storage() -> (OrderStorage, Arc<MemoryOrderStore>) {
    let store = Arc::new(MemoryOrderStore::new());
    (
        OrderStorage::new(store.clone(), Arc::new(FixedClock(now()))),
        store,
    )
}

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

fn store_request(order: &Order) -> Value {
    json!({"action": "store", "order": order})
}

#[tokio::test]
async fn stores_a_validated_order_as_pending() {
    let (storage, store) = storage();
    let order = sample_order(OrderStatus::Validated);
    let stored = storage
        .handle(event(store_request(&order)))
        .await
        .unwrap()
        .order;
    assert_eq!(stored.status, OrderStatus::Pending);
    assert_eq!(stored.history.len(), 3);
    assert_eq!(
        stored.history[2],
        StatusChange::new(OrderStatus::Pending, now())
    );
    assert_eq!(stored.updated_at, now());
    assert_eq!(store.get(&order.order_id).await.unwrap(), Some(stored));
}

#[tokio::test]
async fn a_repeated_store_returns_the_stored_order() {
    let (storage, store) = storage();
    let order = sample_order(OrderStatus::Validated);
    let first = storage.handle(event(store_request(&order))).await.unwrap();
    let second = storage.handle(event(store_request(&order))).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(store.len(), 1);

    // Even after the order moved on (fulfilled before the retry landed).
    store
        .transition(
            &order.order_id,
            OrderStatus::Pending,
            StatusChange::new(OrderStatus::Fulfilled, now()),
        )
        .await
        .unwrap();
    let third = storage.handle(event(store_request(&order))).await.unwrap();
    assert_eq!(third.order.status, OrderStatus::Fulfilled);
}

#[tokio::test]
async fn storing_over_a_rejected_order_is_a_conflict() {
    let id = OrderId::generate();
    let rejected = dofs_core::testkit::sample_order_with_id(&id, OrderStatus::Rejected);
    let (storage, store) = storage();
    store.insert(&rejected).await.unwrap();
    let validated = dofs_core::testkit::sample_order_with_id(&id, OrderStatus::Validated);
    let err = storage
        .handle(event(store_request(&validated)))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(store.get(&id).await.unwrap(), Some(rejected));
}

#[tokio::test]
async fn only_validated_orders_are_stored() {
    let (storage, store) = storage();
    let err = storage
        .handle(event(store_request(&sample_order(OrderStatus::Received))))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(store.is_empty());
    let err = storage
        .handle(event(json!({"action": "ship"})))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidInput");
}

/// The payload exactly as the ASL's RejectOrder state builds it: the state
/// with the validator's verdict, and its reason.
fn reject_request(submission: &dofs_core::OrderSubmission, reason: &str) -> Value {
    let mut state = serde_json::to_value(submission).unwrap();
    state["validated"] = json!({
        "verdict": "rejected",
        "order": submission.to_order(),
        "reason": reason
    });
    json!({"action": "reject", "submission": state, "reason": reason})
}

#[tokio::test]
async fn stores_a_rejection_with_the_validators_message() {
    let (storage, store) = storage();
    let submission = sample_submission(&OrderId::generate());
    let cause = "an order may have at most 1000 units in total; it has 1001";
    let stored = storage
        .handle(event(reject_request(&submission, cause)))
        .await
        .unwrap()
        .order;
    assert_eq!(stored.status, OrderStatus::Rejected);
    assert_eq!(stored.history.len(), 2);
    assert_eq!(
        stored.history[1].reason.as_deref(),
        Some("an order may have at most 1000 units in total; it has 1001")
    );
    assert_eq!(
        store.get(&submission.order_id).await.unwrap(),
        Some(stored.clone())
    );

    // A retried RejectOrder is idempotent.
    let again = storage
        .handle(event(reject_request(&submission, cause)))
        .await
        .unwrap()
        .order;
    assert_eq!(again, stored);
}

#[test]
fn rejection_reason_unwraps_lambda_causes_only() {
    assert_eq!(
        rejection_reason(r#"{"errorType":"OrderRejected","errorMessage":"too big"}"#),
        "too big"
    );
    assert_eq!(rejection_reason("plain text"), "plain text");
    assert_eq!(
        rejection_reason(r#"{"errorMessage":""}"#),
        r#"{"errorMessage":""}"#
    );
    assert_eq!(rejection_reason(r#"{"other":1}"#), r#"{"other":1}"#);
}

#[tokio::test]
async fn port_errors_keep_their_kind() {
    let (storage, store) = storage();
    store.faults.fail_with(ErrorKind::Transient);
    let err = storage
        .handle(event(store_request(&sample_order(OrderStatus::Validated))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "TransientError");
    store.faults.fail_with(ErrorKind::Internal);
    let err = storage
        .handle(event(store_request(&sample_order(OrderStatus::Validated))))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InternalError");
}
