//! fulfill_order: consumes the order queue and fulfils each order, with
//! simulated failures.
//!
//! Each SQS record is one stored PENDING order. Fulfilment is the
//! conditional transition PENDING → FULFILLED, so a duplicate delivery (SQS is
//! at-least-once) finds the order already FULFILLED and is acknowledged
//! without fulfilling twice. A record that fails (bad body, simulated failure,
//! order missing, table unavailable) is reported in the
//! [`SqsBatchResponse`]'s `batch_item_failures`, so SQS redelivers only that
//! message and, after `maxReceiveCount` receives, moves it to the dead-letter
//! queue. One bad record never fails the batch.
//!
//! [`FailureSimulator`] decides the simulated failures (`FAILURE_RATE`); with
//! a seed its decisions are a pure function of (seed, order id, receive
//! count), so tests and demos are reproducible across processes.
//!
//! In X-Ray each attempt is a segment of the order's trace (see
//! `dofs_lambda::sqs`) annotated with `order_id`, `receive_count` and
//! `outcome` (`fulfilled`, `duplicate`, `retry`); a failed attempt is a
//! `fault` (ours: simulated, table unavailable) or an `error` (the message
//! is not an order) whose cause is the reason.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use dofs_core::{
    Clock, Order, OrderId, OrderStatus, OrderStore, PortError, StatusChange, TransitionOutcome,
};
use dofs_lambda::sqs::{handle_records, join_record_trace, receive_count};
use dofs_telemetry::context::{record_failure, record_outcome, FailureKind};
use dofs_telemetry::metric;
use lambda_runtime::LambdaEvent;
use tracing::Instrument as _;

/// A `FAILURE_RATE` outside `[0, 1]` (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("failure rate must be a number between 0 and 1, got {0}")]
pub struct InvalidFailureRate(pub f64);

/// Decides whether a fulfilment attempt fails, to exercise retries and the
/// dead-letter path. Rate 0 never fails, 1 always does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureSimulator {
    rate: f64,
    seed: Option<u64>,
}

impl FailureSimulator {
    /// `seed` makes decisions deterministic; without one they are random.
    pub fn new(rate: f64, seed: Option<u64>) -> Result<Self, InvalidFailureRate> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(InvalidFailureRate(rate));
        }
        Ok(Self { rate, seed })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Whether the `receive_count`-th attempt at `order_id` fails.
    pub fn should_fail(&self, order_id: &OrderId, receive_count: u32) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if self.rate >= 1.0 {
            return true;
        }
        let draw = match self.seed {
            Some(seed) => unit_interval(seed, order_id.as_str(), receive_count),
            None => rand::random::<f64>(),
        };
        draw < self.rate
    }
}

/// A uniform draw in `[0, 1)` from (seed, order id, receive count).
///
/// Hand-written (FNV-1a, then the SplitMix64 finaliser) rather than a seeded
/// `rand` RNG or `std`'s hasher: neither promises the same output across
/// versions, and a seeded run must fail the same orders in every process —
/// the local runtime, a Lambda, a test — today and after an upgrade.
fn unit_interval(seed: u64, order_id: &str, receive_count: u32) -> f64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(order_id.bytes())
        .chain(receive_count.to_le_bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // The top 53 bits fill an f64 mantissa exactly.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Fulfilled,
    /// Already FULFILLED or FAILED: a duplicate delivery, acknowledged.
    Duplicate(OrderStatus),
    /// Must be redelivered; the reason is logged and traced.
    Retry(Retry),
}

/// Why a record must be redelivered, as X-Ray shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Retry {
    kind: FailureKind,
    error_type: &'static str,
    reason: String,
}

impl Retry {
    /// Our failure (simulated, or the table's).
    fn fault(error_type: &'static str, reason: String) -> Outcome {
        Outcome::Retry(Self {
            kind: FailureKind::Fault,
            error_type,
            reason,
        })
    }

    /// The message's.
    fn error(reason: String) -> Outcome {
        Outcome::Retry(Self {
            kind: FailureKind::Error,
            error_type: "UnreadableMessage",
            reason,
        })
    }
}

/// The queue consumer.
pub struct FulfillOrder {
    orders: Arc<dyn OrderStore>,
    clock: Arc<dyn Clock>,
    failures: FailureSimulator,
}

impl FulfillOrder {
    pub fn new(
        orders: Arc<dyn OrderStore>,
        clock: Arc<dyn Clock>,
        failures: FailureSimulator,
    ) -> Self {
        Self {
            orders,
            clock,
            failures,
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
            let order = record.body.as_deref().map(serde_json::from_str::<Order>);
            let order_id = match &order {
                Some(Ok(order)) => order.order_id.as_str().to_owned(),
                _ => String::new(),
            };
            let order_id = order_id.as_str();
            // A segment of the order's trace (`dofs_lambda::sqs`).
            let span = tracing::info_span!(
                "fulfill_order.record",
                otel.kind = "server",
                order_id,
                message_id = %message_id,
                // i64: tracing-opentelemetry records unsigned fields as text.
                receive_count = i64::from(receive_count),
            );
            join_record_trace(&span, record, order_id, self.clock.now().into());
            let outcome = async {
                match &order {
                    Some(Ok(order)) => self.fulfil(order, receive_count).await,
                    Some(Err(err)) => Retry::error(format!("body is not an order: {err}")),
                    None => Retry::error("message has no body".to_owned()),
                }
            }
            .instrument(span.clone())
            .await;

            span.in_scope(|| match outcome {
                Outcome::Fulfilled => {
                    record_outcome(&span, "fulfilled");
                    false
                }
                Outcome::Duplicate(status) => {
                    record_outcome(&span, "duplicate");
                    metrics::counter!(metric::DUPLICATE_DELIVERIES).increment(1);
                    tracing::info!(order_id, %status, "duplicate delivery acknowledged");
                    false
                }
                Outcome::Retry(retry) => {
                    record_outcome(&span, "retry");
                    record_failure(&span, retry.kind, retry.error_type, &retry.reason);
                    metrics::counter!(metric::FULFILLMENT_FAILURES).increment(1);
                    tracing::warn!(order_id, message_id = %message_id, receive_count, reason = %retry.reason, "fulfilment failed; the message will be redelivered");
                    true
                }
            })
        })
        .await
    }

    async fn fulfil(&self, order: &Order, receive_count: u32) -> Outcome {
        if self.failures.should_fail(&order.order_id, receive_count) {
            return Retry::fault(
                "SimulatedFailure",
                format!(
                    "simulated fulfilment failure (rate {})",
                    self.failures.rate()
                ),
            );
        }
        let now = self.clock.now();
        let change = StatusChange::new(OrderStatus::Fulfilled, now);
        match self
            .orders
            .transition(&order.order_id, OrderStatus::Pending, change)
            .await
        {
            Ok(TransitionOutcome::Applied(fulfilled)) => {
                let latency = (now - fulfilled.created_at).num_milliseconds().max(0);
                metrics::counter!(metric::ORDERS_FULFILLED).increment(1);
                metrics::histogram!(metric::FULFILLMENT_LATENCY).record(latency as f64);
                tracing::info!(order_id = %order.order_id, latency_ms = latency, "order fulfilled");
                Outcome::Fulfilled
            }
            Ok(TransitionOutcome::Unchanged(current))
                if matches!(current.status, OrderStatus::Fulfilled | OrderStatus::Failed) =>
            {
                Outcome::Duplicate(current.status)
            }
            Ok(TransitionOutcome::Unchanged(current)) => Retry::fault(
                "OrderNotPending",
                format!("order is {}, not PENDING", current.status),
            ),
            Ok(TransitionOutcome::NotFound) => Retry::fault(
                "OrderNotFound",
                "order is not in the orders table".to_owned(),
            ),
            Err(err) => Retry::fault(
                err.error_type(),
                format!("{}: {}", err.error_type(), err.chain()),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
