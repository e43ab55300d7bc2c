//! Unit tests: the business rules and their rejections, malformed input,
//! and the error names and verdicts the workflow matches.

use super::*;
use dofs_core::testkit::{sample_submission, sample_time, FixedClock};
use dofs_core::{ErrorKind, OrderId};
use lambda_runtime::Context;
use serde_json::{json, Value};

fn validator() -> Validator {
    Validator::new(Arc::new(FixedClock(
        sample_time() + chrono::Duration::seconds(2),
    )))
}

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

fn submission_with(items: Value) -> Value {
    let mut value = serde_json::to_value(sample_submission(&OrderId::generate())).unwrap();
    value["items"] = items;
    value
}

#[tokio::test]
async fn validates_a_good_order() {
    let submission = sample_submission(&OrderId::generate());
    let mut state = serde_json::to_value(&submission).unwrap();
    // The workflow's state may carry more than the submission.
    state["validated"] = json!({"stale": true});
    let validated = validator().handle(event(state)).await.unwrap();
    assert_eq!(validated.verdict, dofs_core::Verdict::Valid);
    assert_eq!(validated.reason, None);
    let order = validated.order;
    assert_eq!(order.order_id, submission.order_id);
    assert_eq!(order.status, OrderStatus::Validated);
    assert_eq!(order.history.len(), 2);
    assert_eq!(order.history[0].status, OrderStatus::Received);
    assert_eq!(order.history[0].at, submission.submitted_at);
    assert_eq!(
        order.history[1].at,
        sample_time() + chrono::Duration::seconds(2)
    );
    assert_eq!(order.total.to_string(), "21.48");
}

#[tokio::test]
async fn malformed_input_is_invalid_input() {
    for payload in [
        json!({}),
        json!({"order_id": "o-1"}),
        json!("text"),
        submission_with(json!([{"sku": "A", "quantity": 0, "unit_price": "1"}])),
    ] {
        let err = validator().handle(event(payload)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert_eq!(err.error_type(), "InvalidInput");
    }
}

/// A rejection is a successful result (so not counted in `AWS/Lambda
/// Errors`) with the verdict the workflow's Choice matches and the order as
/// received.
async fn rejection(items: Value) -> String {
    let submission = submission_with(items);
    let validation = validator().handle(event(submission.clone())).await.unwrap();
    assert_eq!(validation.verdict, dofs_core::Verdict::Rejected);
    assert_eq!(validation.order.status, OrderStatus::Received);
    assert_eq!(
        validation.order.order_id.as_str(),
        submission["order_id"].as_str().unwrap()
    );
    validation.reason.unwrap()
}

/// The Choice state routes on `$.validated.verdict` with the literal names
/// the validator serialises: a rename on either side would send every
/// rejected order to StoreOrder.
#[test]
fn the_workflow_routes_on_the_verdicts_the_validator_writes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../terraform/order_workflow.asl.json"
    );
    let asl: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(asl["States"]["ValidateOrder"]["Next"], "CheckVerdict");
    let choice = &asl["States"]["CheckVerdict"];
    assert_eq!(choice["Type"], "Choice");
    assert_eq!(choice["Default"], "StoreOrder");
    let rule = &choice["Choices"][0];
    assert_eq!(rule["Variable"], "$.validated.verdict");
    assert_eq!(
        rule["StringEquals"],
        serde_json::to_value(dofs_core::Verdict::Rejected).unwrap()
    );
    assert_eq!(rule["Next"], "RejectOrder");
}

#[tokio::test]
async fn total_up_to_the_limit_is_accepted_and_above_is_rejected() {
    let at_limit = json!([{"sku": "GOLD", "quantity": 5, "unit_price": "10000.00"}]);
    assert!(validator()
        .handle(event(submission_with(at_limit)))
        .await
        .is_ok());
    let reason = rejection(json!([
        {"sku": "GOLD", "quantity": 5, "unit_price": "10000.00"},
        {"sku": "PIN", "quantity": 1, "unit_price": "0.01"}
    ]))
    .await;
    assert_eq!(
        reason,
        "the order total may be at most 50000.00; it is 50000.01"
    );
}

#[tokio::test]
async fn duplicate_skus_are_rejected() {
    let reason = rejection(json!([
        {"sku": "A", "quantity": 1, "unit_price": "1"},
        {"sku": "B", "quantity": 1, "unit_price": "1"},
        {"sku": "A", "quantity": 2, "unit_price": "1"},
        {"sku": "A", "quantity": 3, "unit_price": "1"}
    ]))
    .await;
    assert_eq!(reason, "each SKU may appear on one line only; repeated: A");
}

#[tokio::test]
async fn more_than_a_thousand_units_are_rejected() {
    let ok = json!([
        {"sku": "A", "quantity": 600, "unit_price": "1"},
        {"sku": "B", "quantity": 400, "unit_price": "1"}
    ]);
    assert!(validator().handle(event(submission_with(ok))).await.is_ok());
    let reason = rejection(json!([
        {"sku": "A", "quantity": 600, "unit_price": "1"},
        {"sku": "B", "quantity": 401, "unit_price": "1"}
    ]))
    .await;
    assert_eq!(
        reason,
        "an order may have at most 1000 units in total; it has 1001"
    );
}

#[tokio::test]
async fn every_violation_is_listed() {
    let reason = rejection(json!([
        {"sku": "A", "quantity": 1000, "unit_price": "1000000.00"},
        {"sku": "A", "quantity": 1, "unit_price": "1"}
    ]))
    .await;
    assert_eq!(
        reason,
        "each SKU may appear on one line only; repeated: A; \
         an order may have at most 1000 units in total; it has 1001; \
         the order total may be at most 50000.00; it is 1000000001.00"
    );
    assert_eq!(
        rejection(json!([])).await,
        "an order must have at least one item"
    );
}

/// Every `ErrorEquals` name in the workflow is one Step Functions raises
/// itself or one our handlers can raise: a typo in the ASL would
/// otherwise silently never match.
#[test]
fn every_asl_error_name_is_raisable() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../terraform/order_workflow.asl.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let asl: Value = serde_json::from_str(&text).unwrap();
    let ours: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.error_type()).collect();
    let mut names = Vec::new();
    for state in asl["States"].as_object().unwrap().values() {
        for key in ["Retry", "Catch"] {
            for rule in state[key].as_array().into_iter().flatten() {
                for name in rule["ErrorEquals"].as_array().unwrap() {
                    names.push(name.as_str().unwrap().to_owned());
                }
            }
        }
    }
    assert!(
        names.len() > 10,
        "the ASL should have Retry/Catch everywhere: {names:?}"
    );
    for name in &names {
        let runtime = ["States.", "Lambda.", "SQS."]
            .iter()
            .any(|prefix| name.starts_with(prefix));
        assert!(
            runtime || ours.contains(&name.as_str()),
            "ErrorEquals {name:?} is neither a runtime error nor an ErrorKind"
        );
    }
    // And the names the workflow relies on exist.
    // A rejection is not an error any more (see `rejection`).
    assert!(!names.iter().any(|n| n == ErrorKind::Rejected.error_type()));
    assert!(names.iter().any(|n| n == ErrorKind::Transient.error_type()));
}
