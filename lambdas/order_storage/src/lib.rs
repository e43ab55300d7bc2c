//! order_storage: the workflow's `StoreOrder` and `RejectOrder` steps, which
//! write an order to the orders table.
//!
//! - `{"action": "store", "order": ...}`: a VALIDATED order is stored as
//!   PENDING, ready to be enqueued.
//! - `{"action": "reject", "submission": ..., "reason": ...}`: a submission
//!   the validator refused is stored as REJECTED with the reason.
//!
//! Both are conditional inserts, and idempotent: Step Functions may run a
//! task twice (a retry after a timeout whose first attempt did write), and
//! the second run must return the stored order rather than fail. Port errors
//! keep their kind, so a transient one is retried by the workflow.

use std::sync::Arc;

use dofs_core::{
    Clock, InsertOutcome, Order, OrderStatus, OrderStore, PortError, StatusChange, StorageRequest,
    StoredOrder,
};
use dofs_telemetry::metric;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use tracing::Instrument as _;

/// The `StoreOrder`/`RejectOrder` steps.
pub struct OrderStorage {
    orders: Arc<dyn OrderStore>,
    clock: Arc<dyn Clock>,
}

/// A Lambda error as Step Functions reports it in a Catch's `Cause`.
#[derive(Deserialize)]
struct LambdaErrorCause {
    #[serde(rename = "errorMessage")]
    error_message: String,
}

/// The human reason of a rejection. The validator's verdict carries it as
/// plain text; an execution started under the previous workflow definition
/// (which caught an `OrderRejected` Lambda error) passes the error's cause as
/// the JSON text `{"errorType":..,"errorMessage":..}`, and the stored order
/// should say why, not carry an envelope.
pub fn rejection_reason(cause: &str) -> String {
    match serde_json::from_str::<LambdaErrorCause>(cause) {
        Ok(parsed) if !parsed.error_message.trim().is_empty() => parsed.error_message,
        _ => cause.to_owned(),
    }
}

impl OrderStorage {
    pub fn new(orders: Arc<dyn OrderStore>, clock: Arc<dyn Clock>) -> Self {
        Self { orders, clock }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<StoredOrder, PortError> {
        let request: StorageRequest = serde_json::from_value(event.payload).map_err(|e| {
            tracing::error!(error = %e, "order_storage input is not a storage request");
            PortError::invalid_input(format!("input is not a storage request: {e}")).with_source(e)
        })?;
        match request {
            StorageRequest::Store { order } => self.store(order).await,
            StorageRequest::Reject { submission, reason } => {
                let mut order = submission.to_order();
                let reason = rejection_reason(&reason);
                order
                    .transition(
                        StatusChange::new(OrderStatus::Rejected, self.clock.now())
                            .with_reason(reason),
                    )
                    .map_err(|e| {
                        PortError::internal("a new order cannot be rejected").with_source(e)
                    })?;
                self.insert(order).await
            }
        }
    }

    async fn store(&self, mut order: Order) -> Result<StoredOrder, PortError> {
        if order.status != OrderStatus::Validated {
            return Err(PortError::invalid_input(format!(
                "only a VALIDATED order can be stored; order {} is {}",
                order.order_id, order.status
            )));
        }
        order
            .transition(StatusChange::new(OrderStatus::Pending, self.clock.now()))
            .map_err(|e| {
                PortError::internal("a validated order cannot become pending").with_source(e)
            })?;
        self.insert(order).await
    }

    /// Inserts `order`; an order already stored by an earlier attempt of the
    /// same step is success, anything else under that id is a conflict.
    async fn insert(&self, order: Order) -> Result<StoredOrder, PortError> {
        let order_id = order.order_id.clone();
        let span = tracing::info_span!("order_storage.insert", order_id = %order_id, status = %order.status);
        dofs_telemetry::context::record_order_id(&span, order_id.as_str());
        match self.orders.insert(&order).instrument(span.clone()).await {
            Ok(InsertOutcome::Inserted) => {
                if order.status == OrderStatus::Pending {
                    metrics::counter!(metric::ORDERS_STORED).increment(1);
                }
                tracing::info!(order_id = %order_id, status = %order.status, "order stored");
                Ok(StoredOrder { order })
            }
            Ok(InsertOutcome::AlreadyExists(existing)) if same_step(&order, &existing) => {
                tracing::info!(order_id = %order_id, status = %existing.status, "order already stored; repeated step");
                Ok(StoredOrder { order: existing })
            }
            Ok(InsertOutcome::AlreadyExists(existing)) => {
                tracing::error!(order_id = %order_id, existing = %existing.status, wanted = %order.status, "another order is stored under this id");
                Err(PortError::conflict(format!(
                    "order {order_id} is already stored as {}, cannot store it as {}",
                    existing.status, order.status
                )))
            }
            Err(err) => {
                dofs_telemetry::context::record_failure(
                    &span,
                    dofs_telemetry::context::FailureKind::Fault,
                    err.error_type(),
                    &err.chain(),
                );
                tracing::warn!(order_id = %order_id, error_type = err.error_type(), error = %err.chain(), "could not store the order");
                Err(err)
            }
        }
    }
}

/// Whether `existing` is what an earlier run of the step that wants to store
/// `order` left behind: stored as PENDING (perhaps since fulfilled or failed),
/// or stored as REJECTED.
fn same_step(order: &Order, existing: &Order) -> bool {
    match order.status {
        OrderStatus::Pending => {
            matches!(
                existing.status,
                OrderStatus::Pending | OrderStatus::Fulfilled | OrderStatus::Failed
            ) && existing
                .history
                .iter()
                .any(|c| c.status == OrderStatus::Pending)
        }
        OrderStatus::Rejected => existing.status == OrderStatus::Rejected,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
