//! The ports: one small async trait per capability, so a handler takes only
//! what it uses and a test fake is a few lines.
//!
//! Implementations: `dofs-aws` (DynamoDB, Step Functions) and `dofs-local`
//! (SQLite); in-memory fakes for tests live in
//! [`crate::testkit`] behind the `testkit` feature, with the contract suite
//! every adapter must pass.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contracts::OrderSubmission;
use crate::error::PortError;
use crate::model::{FailedOrder, Order, OrderId};
use crate::status::{OrderStatus, StatusChange};

/// Result of [`OrderStore::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The order was not there and now is.
    Inserted,
    /// An order with that id was already stored; it is returned unchanged.
    AlreadyExists(Order),
}

/// Result of [`OrderStore::transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The status was `expected` and is now the new one; the updated order.
    Applied(Order),
    /// The status was not `expected`, so nothing changed; the current order.
    /// This is how a duplicate delivery is recognised.
    Unchanged(Order),
    /// No order with that id.
    NotFound,
}

/// The orders table.
#[async_trait]
pub trait OrderStore: Send + Sync {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError>;

    /// Writes `order` only if no order with its id exists, or — when
    /// `order` is past RECEIVED — the stored one is still RECEIVED (a
    /// conditional put: `attribute_not_exists(order_id)`, or that `OR
    /// status = RECEIVED`).
    ///
    /// api_handler records every accepted order as RECEIVED before it starts
    /// the workflow; the workflow's first write (PENDING, REJECTED, FAILED)
    /// replaces that record, and any later write finds the order advanced
    /// and is told `AlreadyExists`. So a RECEIVED record is never
    /// overwritten by another RECEIVED one (an idempotency key reused for
    /// another order is seen), and a repeated step (a duplicate Express
    /// execution) never moves an order backwards.
    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError>;

    /// Atomically appends `change` to the history and sets the status, but
    /// only if the current status is `expected` (a conditional update).
    /// Callers check the status machine before calling.
    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError>;
}

/// The failed_orders table.
#[async_trait]
pub trait FailedOrderStore: Send + Sync {
    /// Records a failure. Idempotent: the first record for an order wins and
    /// later ones are accepted without change (a redelivered DLQ message
    /// must not fail).
    async fn record(&self, failed: &FailedOrder) -> Result<(), PortError>;

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError>;
}

/// Result of [`Workflow::start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new execution was started (or the very same one already existed:
    /// Step Functions treats same name + same input as idempotent).
    Started,
    /// An execution with that name exists with a different input.
    AlreadyExists,
}

/// Status of a workflow execution, as Step Functions reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// What [`Workflow::describe`] tells about an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionView {
    pub status: ExecutionStatus,
    pub input: OrderSubmission,
    pub started_at: DateTime<Utc>,
}

/// The order workflow (a Step Functions state machine).
#[async_trait]
pub trait Workflow: Send + Sync {
    /// Starts the workflow for one order; the execution name is the order id.
    /// `trace_header` (`Root=...;Parent=...;Sampled=...`) continues the trace.
    async fn start(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError>;

    /// The execution named after `order_id`, if any, with the trace header
    /// it was started with (DescribeExecution's `traceHeader`), when it has
    /// one: an idempotent replay answers with the order's trace, not the
    /// retry's.
    async fn describe_traced(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<(ExecutionView, Option<String>)>, PortError>;

    /// [`Workflow::describe_traced`] without the header.
    async fn describe(&self, order_id: &OrderId) -> Result<Option<ExecutionView>, PortError> {
        Ok(self.describe_traced(order_id).await?.map(|(view, _)| view))
    }
}

/// The time source, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock, at millisecond precision: the finest every backend
/// keeps and [`crate::timestamp`] writes, so a time read back from any
/// store equals the one written.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        use chrono::DurationRound as _;
        let now = Utc::now();
        now.duration_trunc(chrono::TimeDelta::milliseconds(1))
            .unwrap_or(now)
    }
}
