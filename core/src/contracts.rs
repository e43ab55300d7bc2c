//! The JSON payloads passed between the workflow steps and on the queues.
//!
//! The workflow (`terraform/workflow/order_workflow.asl.json`) moves these
//! between states:
//!
//! ```text
//! execution input        OrderSubmission
//! ValidateOrder  (λ)     OrderSubmission                  -> Validation      at $.validated
//! CheckVerdict   (Choice) $.validated.verdict: "rejected" -> RejectOrder, else StoreOrder
//! StoreOrder     (λ)     StorageRequest::Store            -> StoredOrder     at $.stored
//! EnqueueOrder   (sqs)   $.stored.order (an Order)        -> order queue message body
//! RejectOrder    (λ)     StorageRequest::Reject           -> StoredOrder     (status REJECTED)
//! DeadLetter     (sqs)   WorkflowFailure                  -> dead-letter queue message body
//! ```
//!
//! The dead-letter queue therefore carries two kinds of body, told apart by
//! [`DeadLetter`]: an [`Order`] redriven from the order queue after too many
//! receives, or a [`WorkflowFailure`] sent by the workflow's catch-all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{CustomerName, LineItem, Order, OrderId, OrderRequest};

/// The workflow's execution input: an accepted request with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSubmission {
    pub order_id: OrderId,
    pub customer_name: CustomerName,
    pub items: Vec<LineItem>,
    #[serde(with = "crate::timestamp::rfc3339_millis")]
    pub submitted_at: DateTime<Utc>,
    /// The order's trace id (see [`Order::trace_id`]), carried so the order
    /// the workflow stores keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl OrderSubmission {
    pub fn new(order_id: OrderId, request: OrderRequest, submitted_at: DateTime<Utc>) -> Self {
        Self {
            order_id,
            customer_name: request.customer_name,
            items: request.items,
            submitted_at,
            trace_id: None,
        }
    }

    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    pub fn request(&self) -> OrderRequest {
        OrderRequest {
            customer_name: self.customer_name.clone(),
            items: self.items.clone(),
        }
    }

    /// The order as it stands when received.
    pub fn to_order(&self) -> Order {
        Order::new(self.order_id.clone(), self.request(), self.submitted_at)
            .with_trace_id(self.trace_id.clone())
    }
}

/// validator's output. A business rejection is a successful invocation
/// whose verdict a Choice state routes to RejectOrder, so that Lambda's
/// `Errors` metric counts only real failures. Every field is always present
/// (`reason` is `null` when valid) because a `ResultSelector` path that
/// matches nothing fails the state with `States.Runtime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub verdict: Verdict,
    /// VALIDATED when valid; as received (RECEIVED) when rejected.
    pub order: Order,
    /// The broken rules, one sentence each joined by `; `, when rejected.
    pub reason: Option<String>,
}

impl Validation {
    pub fn valid(order: Order) -> Self {
        Self {
            verdict: Verdict::Valid,
            order,
            reason: None,
        }
    }

    pub fn rejected(order: Order, reason: String) -> Self {
        Self {
            verdict: Verdict::Rejected,
            order,
            reason: Some(reason),
        }
    }
}

/// What the validator decided; the workflow's CheckVerdict matches the
/// snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Valid,
    Rejected,
}

/// order_storage's input, tagged by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StorageRequest {
    /// Store a VALIDATED order as PENDING.
    Store { order: Order },
    /// Store a rejected submission as REJECTED, with the reason.
    Reject {
        submission: OrderSubmission,
        reason: String,
    },
}

/// order_storage's output: the order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOrder {
    pub order: Order,
}

/// What the workflow sends to the dead-letter queue when a step failed after
/// its retries. `submission` is the state at the failing step, which always
/// contains the execution input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowFailure {
    /// Always `"workflow"`; it is what tells this body from an [`Order`].
    pub source: WorkflowSource,
    pub order_id: OrderId,
    /// The Step Functions error name, e.g. `TransientError` or `States.Timeout`.
    pub error: String,
    /// The error's cause as Step Functions reports it (often JSON text).
    pub cause: String,
    pub submission: serde_json::Value,
}

/// Marker for [`WorkflowFailure::source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowSource {
    Workflow,
}

/// A dead-letter queue message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeadLetter {
    /// The workflow gave up on the order before it reached the order queue.
    Workflow(WorkflowFailure),
    /// The order queue gave up on the order after `maxReceiveCount` receives.
    Order(Box<Order>),
}

impl DeadLetter {
    pub fn order_id(&self) -> &OrderId {
        match self {
            DeadLetter::Workflow(failure) => &failure.order_id,
            DeadLetter::Order(order) => &order.order_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_json() -> serde_json::Value {
        json!({
            "order_id": "o-1",
            "customer_name": "Ada",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}],
            "total": "19.98",
            "status": "PENDING",
            "history": [{"status": "PENDING", "at": "2026-11-25T10:00:00Z"}],
            "created_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:00:00Z"
        })
    }

    #[test]
    fn dead_letter_tells_orders_from_workflow_failures() {
        let order: DeadLetter = serde_json::from_value(order_json()).unwrap();
        assert!(matches!(order, DeadLetter::Order(_)));
        let failure: DeadLetter = serde_json::from_value(json!({
            "source": "workflow",
            "order_id": "o-1",
            "error": "TransientError",
            "cause": "table unavailable",
            "submission": {"order_id": "o-1"}
        }))
        .unwrap();
        assert!(matches!(failure, DeadLetter::Workflow(_)));
        assert_eq!(failure.order_id().as_str(), "o-1");
    }

    #[test]
    fn validation_always_carries_every_field_the_workflow_selects() {
        let order: Order = serde_json::from_value(order_json()).unwrap();
        let valid = serde_json::to_value(Validation::valid(order.clone())).unwrap();
        assert_eq!(valid["verdict"], "valid");
        assert!(valid.get("reason").is_some_and(serde_json::Value::is_null));
        let rejected = serde_json::to_value(Validation::rejected(order, "too big".into())).unwrap();
        assert_eq!(rejected["verdict"], "rejected");
        assert_eq!(rejected["reason"], "too big");
        assert_eq!(rejected["order"]["order_id"], "o-1");
    }

    #[test]
    fn storage_request_is_tagged_by_action() {
        let request: StorageRequest =
            serde_json::from_value(json!({"action": "store", "order": order_json()})).unwrap();
        assert!(matches!(request, StorageRequest::Store { .. }));
        assert!(serde_json::from_value::<StorageRequest>(json!({"action": "drop"})).is_err());
    }

    #[test]
    fn submission_ignores_state_the_workflow_adds() {
        let submission: OrderSubmission = serde_json::from_value(json!({
            "order_id": "o-1",
            "customer_name": "Ada",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}],
            "submitted_at": "2026-11-25T10:00:00Z",
            "failure": {"Error": "OrderRejected", "Cause": "too big"}
        }))
        .unwrap();
        assert_eq!(submission.to_order().total.to_string(), "19.98");
    }
}
