//! dlq_handler: consumes the dead-letter queue, records each dead-lettered
//! order in failed_orders and marks the order FAILED. It never drops a
//! message: what it cannot handle is reported as a batch item failure and
//! stays in the queue (and in the DLQ depth alarm).
//!
//! A message body is a [`DeadLetter`]: an [`Order`] the order queue redrove
//! after `maxReceiveCount` receives, or a [`WorkflowFailure`] the workflow
//! sent when a step failed after its retries (possibly before the order was
//! stored; then the order is created from the submission, then FAILED).
//!
//! Invariant: a failed_orders row exists exactly for the FAILED orders. So an
//! order that is already FULFILLED (a late success) or REJECTED gets no row:
//! the message is acknowledged with a warning. The status change is made
//! *before* the row is written, because the conditional transition is what
//! decides; the row write is idempotent (first record wins), so a redelivery
//! after a crash between the two finds the order FAILED and writes the row.
//!
//! In X-Ray each dead letter's handling is a segment of the order's trace
//! (see `dofs_lambda::sqs`), annotated with `order_id`, `receive_count` and
//! `outcome`; one that stays in the queue is a `fault` (or an `error`, for
//! a body that names no order) whose cause is the reason.
//!
//! [`WorkflowFailure`]: dofs_core::WorkflowFailure

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use dofs_core::{
    Clock, DeadLetter, FailedOrder, FailedOrderStore, InsertOutcome, Order, OrderId, OrderStatus,
    OrderStore, OrderSubmission, PortError, StatusChange, TransitionOutcome,
};
use dofs_lambda::sqs::{handle_records, join_record_trace, receive_count};
use dofs_telemetry::context::{record_failure, record_outcome, FailureKind};
use dofs_telemetry::metric;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use tracing::Instrument as _;

/// `FailedOrder::error` for an order the order queue gave up on.
pub const FULFILLMENT_FAILED: &str = "FulfillmentFailed";
/// `FailedOrder::error` for a message whose body could not be read.
pub const UNREADABLE_MESSAGE: &str = "UnreadableMessage";

/// How often a status that changed under us is re-read before giving up (the
/// message is then redelivered).
const MAX_ATTEMPTS: usize = 3;

/// What became of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The order is now FAILED and recorded.
    MarkedFailed,
    /// It already was FAILED; the record was (re)written idempotently.
    AlreadyFailed,
    /// No such order and none could be created: only the record was written.
    RecordedWithoutOrder,
    /// FULFILLED or REJECTED: not a failure, acknowledged without a record.
    Skipped(OrderStatus),
}

/// The dead-letter queue consumer.
pub struct DlqHandler {
    orders: Arc<dyn OrderStore>,
    failed: Arc<dyn FailedOrderStore>,
    clock: Arc<dyn Clock>,
}

/// A Lambda error as Step Functions reports it in a Catch's `Cause`.
#[derive(Deserialize)]
struct LambdaErrorCause {
    #[serde(rename = "errorMessage")]
    error_message: String,
}

/// The human reason inside a workflow failure's `Cause`, which for a Lambda
/// error is the JSON text `{"errorType":..,"errorMessage":..}`.
fn cause_message(cause: &str) -> String {
    match serde_json::from_str::<LambdaErrorCause>(cause) {
        Ok(parsed) if !parsed.error_message.trim().is_empty() => parsed.error_message,
        _ => cause.to_owned(),
    }
}

/// One dead letter, understood as far as its body allows.
struct Plan {
    order_id: OrderId,
    failed: FailedOrder,
    /// The order to create if the table does not have it.
    seed: Option<Order>,
}

impl DlqHandler {
    pub fn new(
        orders: Arc<dyn OrderStore>,
        failed: Arc<dyn FailedOrderStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            orders,
            failed,
            clock,
        }
    }

    /// Processes every record (several at once); fails only the records
    /// that failed.
    pub async fn handle(
        &self,
        event: LambdaEvent<SqsEvent>,
    ) -> Result<SqsBatchResponse, PortError> {
        handle_records(&event.payload.records, |record| async move {
            let message_id = record.message_id.clone().unwrap_or_default();
            let receive_count = receive_count(record);
            let plan = self.plan(record.body.as_deref().unwrap_or_default(), receive_count);
            let order_id = plan
                .as_ref()
                .map(|p| p.order_id.as_str().to_owned())
                .unwrap_or_default();
            let order_id = order_id.as_str();
            // A segment of the order's trace (`dofs_lambda::sqs`).
            let span = tracing::info_span!(
                "dlq_handler.record",
                otel.kind = "server",
                order_id,
                message_id = %message_id,
                // i64: tracing-opentelemetry records unsigned fields as text.
                receive_count = i64::from(receive_count),
            );
            join_record_trace(&span, record, order_id, self.clock.now().into());
            let result = match plan {
                Ok(plan) => self.process(plan).instrument(span.clone()).await,
                Err(reason) => Err(PortError::invalid_input(reason)),
            };
            span.in_scope(|| match result {
                Ok(Outcome::MarkedFailed) => {
                    record_outcome(&span, "marked_failed");
                    metrics::counter!(metric::ORDERS_DEAD_LETTERED).increment(1);
                    tracing::warn!(order_id, "order dead-lettered and marked FAILED");
                    false
                }
                Ok(Outcome::AlreadyFailed) => {
                    record_outcome(&span, "already_failed");
                    tracing::info!(order_id, "order was already FAILED; failure recorded");
                    false
                }
                Ok(Outcome::RecordedWithoutOrder) => {
                    record_outcome(&span, "recorded_without_order");
                    metrics::counter!(metric::ORDERS_DEAD_LETTERED).increment(1);
                    tracing::error!(order_id, "dead letter recorded, but no order could be stored for it");
                    false
                }
                Ok(Outcome::Skipped(status)) => {
                    record_outcome(&span, "skipped");
                    tracing::warn!(order_id, %status, "dead letter for an order that did not fail; acknowledged without a failure record");
                    false
                }
                Err(err) => {
                    record_outcome(&span, "retry");
                    // A batch item failure is not a Lambda error: without this
                    // count nothing sees dlq_handler failing.
                    metrics::counter!(metric::DEAD_LETTER_FAILURES).increment(1);
                    let kind = match err.kind {
                        dofs_core::ErrorKind::InvalidInput => FailureKind::Error,
                        _ => FailureKind::Fault,
                    };
                    record_failure(&span, kind, err.error_type(), &err.chain());
                    tracing::error!(order_id, message_id = %message_id, error_type = err.error_type(), error = %err.chain(), "dead letter not handled; it stays in the queue");
                    true
                }
            })
        })
        .await
    }

    /// Reads a body into a plan. `Err` only when not even an order id can be
    /// read: such a message cannot be attributed to an order and stays queued.
    fn plan(&self, body: &str, receive_count: u32) -> Result<Plan, String> {
        let now = self.clock.now();
        let payload = serde_json::from_str::<serde_json::Value>(body)
            .unwrap_or_else(|_| serde_json::Value::String(body.to_owned()));
        let failed = |order_id: &OrderId, error: &str, reason: String| FailedOrder {
            order_id: order_id.clone(),
            error: error.to_owned(),
            reason,
            receive_count,
            failed_at: now,
            payload: payload.clone(),
        };
        match serde_json::from_value::<DeadLetter>(payload.clone()) {
            Ok(DeadLetter::Order(order)) => Ok(Plan {
                order_id: order.order_id.clone(),
                failed: failed(
                    &order.order_id,
                    FULFILLMENT_FAILED,
                    "every fulfilment attempt failed; the order queue dead-lettered the order"
                        .to_owned(),
                ),
                seed: Some(*order),
            }),
            Ok(DeadLetter::Workflow(failure)) => {
                let seed = serde_json::from_value::<OrderSubmission>(failure.submission.clone())
                    .ok()
                    .filter(|s| s.order_id == failure.order_id)
                    .map(|s| s.to_order());
                Ok(Plan {
                    order_id: failure.order_id.clone(),
                    failed: failed(
                        &failure.order_id,
                        &failure.error,
                        cause_message(&failure.cause),
                    ),
                    seed,
                })
            }
            Err(err) => {
                let order_id = payload
                    .get("order_id")
                    .and_then(|v| v.as_str())
                    .and_then(|id| OrderId::parse(id).ok())
                    .ok_or_else(|| {
                        format!("body is not a dead letter and has no order_id: {err}")
                    })?;
                Ok(Plan {
                    failed: failed(
                        &order_id,
                        UNREADABLE_MESSAGE,
                        format!("unreadable dead letter: {err}"),
                    ),
                    order_id,
                    seed: None,
                })
            }
        }
    }

    async fn process(&self, plan: Plan) -> Result<Outcome, PortError> {
        let Plan {
            order_id,
            failed,
            seed,
        } = plan;
        for _ in 0..MAX_ATTEMPTS {
            let Some(order) = self.orders.get(&order_id).await? else {
                match &seed {
                    // Not stored (the workflow failed before storing it):
                    // create it, then fail it on the next pass.
                    Some(seed) => {
                        if let InsertOutcome::AlreadyExists(_) = self.orders.insert(seed).await? {
                            tracing::info!(order_id = %order_id, "order appeared while handling its dead letter");
                        }
                        continue;
                    }
                    None => {
                        self.failed.record(&failed).await?;
                        return Ok(Outcome::RecordedWithoutOrder);
                    }
                }
            };
            match order.status {
                OrderStatus::Fulfilled | OrderStatus::Rejected => {
                    return Ok(Outcome::Skipped(order.status))
                }
                OrderStatus::Failed => {
                    self.failed.record(&failed).await?;
                    return Ok(Outcome::AlreadyFailed);
                }
                current => {
                    let change = StatusChange::new(OrderStatus::Failed, failed.failed_at)
                        .with_reason(format!("{}: {}", failed.error, failed.reason));
                    match self.orders.transition(&order_id, current, change).await? {
                        TransitionOutcome::Applied(_) => {
                            self.failed.record(&failed).await?;
                            return Ok(Outcome::MarkedFailed);
                        }
                        // Changed under us: look again.
                        TransitionOutcome::Unchanged(_) | TransitionOutcome::NotFound => continue,
                    }
                }
            }
        }
        Err(PortError::conflict(format!(
            "order {order_id} kept changing while being marked FAILED"
        )))
    }
}

#[cfg(test)]
mod tests;
