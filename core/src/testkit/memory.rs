//! In-memory adapters of the ports, with [`Faults`] to make them fail.
//!
//! They implement the ports exactly as [`crate::ports`] documents them
//! (conditional writes, first record wins, Step Functions' execution-name
//! semantics), so a handler test that passes against them means the same
//! against DynamoDB or SQLite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::lock;
use crate::contracts::OrderSubmission;
use crate::error::{ErrorKind, PortError};
use crate::model::{FailedOrder, Order, OrderId};
use crate::ports::{
    Clock, ExecutionStatus, ExecutionView, FailedOrderStore, InsertOutcome, OrderStore,
    StartOutcome, TransitionOutcome, Workflow,
};
use crate::status::{OrderStatus, StatusChange};

/// A switch that makes an in-memory adapter fail every call with a chosen
/// [`ErrorKind`], to exercise the callers' error handling.
#[derive(Debug, Default)]
pub struct Faults {
    failing: Mutex<Option<ErrorKind>>,
}

impl Faults {
    /// From now on every call fails with `kind`.
    pub fn fail_with(&self, kind: ErrorKind) {
        *lock(&self.failing) = Some(kind);
    }

    /// Calls succeed again.
    pub fn heal(&self) {
        *lock(&self.failing) = None;
    }

    fn check(&self, operation: &str) -> Result<(), PortError> {
        match *lock(&self.failing) {
            Some(kind) => Err(PortError::new(
                kind,
                format!("injected {kind} failure in {operation}"),
            )),
            None => Ok(()),
        }
    }
}

/// The orders table in memory.
#[derive(Debug, Default)]
pub struct MemoryOrderStore {
    orders: Mutex<HashMap<OrderId, Order>>,
    /// Makes every call fail while set.
    pub faults: Faults,
}

impl MemoryOrderStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store already holding `orders`.
    pub fn with_orders(orders: impl IntoIterator<Item = Order>) -> Self {
        let store = Self::new();
        lock(&store.orders).extend(orders.into_iter().map(|o| (o.order_id.clone(), o)));
        store
    }

    /// Every stored order, in no particular order.
    pub fn all(&self) -> Vec<Order> {
        lock(&self.orders).values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.orders).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl OrderStore for MemoryOrderStore {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError> {
        self.faults.check("get")?;
        Ok(lock(&self.orders).get(order_id).cloned())
    }

    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
        self.faults.check("insert")?;
        let mut orders = lock(&self.orders);
        if let Some(existing) = orders.get(&order.order_id) {
            if !order.replaces(existing) {
                return Ok(InsertOutcome::AlreadyExists(existing.clone()));
            }
        }
        orders.insert(order.order_id.clone(), order.clone());
        Ok(InsertOutcome::Inserted)
    }

    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError> {
        self.faults.check("transition")?;
        let mut orders = lock(&self.orders);
        let Some(order) = orders.get_mut(order_id) else {
            return Ok(TransitionOutcome::NotFound);
        };
        if order.status != expected {
            return Ok(TransitionOutcome::Unchanged(order.clone()));
        }
        // Like the conditional update of the real tables: the store checks
        // only `expected`; the status machine is the caller's business.
        order.status = change.status;
        order.updated_at = change.at;
        order.history.push(change);
        Ok(TransitionOutcome::Applied(order.clone()))
    }
}

/// The failed_orders table in memory.
#[derive(Debug, Default)]
pub struct MemoryFailedOrderStore {
    failed: Mutex<HashMap<OrderId, FailedOrder>>,
    /// Makes every call fail while set.
    pub faults: Faults,
}

impl MemoryFailedOrderStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every recorded failure, in no particular order.
    pub fn all(&self) -> Vec<FailedOrder> {
        lock(&self.failed).values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.failed).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl FailedOrderStore for MemoryFailedOrderStore {
    async fn record(&self, failed: &FailedOrder) -> Result<(), PortError> {
        self.faults.check("record")?;
        lock(&self.failed)
            .entry(failed.order_id.clone())
            .or_insert_with(|| failed.clone());
        Ok(())
    }

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
        self.faults.check("get")?;
        Ok(lock(&self.failed).get(order_id).cloned())
    }
}

/// An execution [`MemoryWorkflow`] started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedExecution {
    /// The execution name: the order id.
    pub name: String,
    pub input: OrderSubmission,
    pub trace_header: Option<String>,
    pub status: ExecutionStatus,
    pub started_at: DateTime<Utc>,
}

/// The order workflow in memory: records started executions with Step
/// Functions' name semantics (same name + same input is idempotent, same
/// name + other input is refused).
pub struct MemoryWorkflow {
    executions: Mutex<Vec<StartedExecution>>,
    clock: Arc<dyn Clock>,
    /// Makes every call fail while set.
    pub faults: Faults,
}

impl Default for MemoryWorkflow {
    fn default() -> Self {
        Self::new(Arc::new(crate::ports::SystemClock))
    }
}

impl MemoryWorkflow {
    /// `clock` stamps `started_at`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            executions: Mutex::new(Vec::new()),
            clock,
            faults: Faults::default(),
        }
    }

    /// Every distinct execution started, oldest first.
    pub fn started(&self) -> Vec<StartedExecution> {
        lock(&self.executions).clone()
    }

    /// Sets an execution's status, as the workflow would when it finishes.
    /// Returns false if there is no such execution.
    pub fn set_status(&self, order_id: &OrderId, status: ExecutionStatus) -> bool {
        let mut executions = lock(&self.executions);
        match executions.iter_mut().find(|e| e.name == order_id.as_str()) {
            Some(execution) => {
                execution.status = status;
                true
            }
            None => false,
        }
    }

    /// Forgets the execution of `order_id`, as if it was lost.
    pub fn forget(&self, order_id: &OrderId) {
        lock(&self.executions).retain(|e| e.name != order_id.as_str());
    }

    /// Records an execution directly, e.g. one started by "another instance"
    /// between a handler's describe and its start.
    pub fn insert(&self, input: OrderSubmission, trace_header: Option<&str>) {
        lock(&self.executions).push(StartedExecution {
            name: input.order_id.as_str().to_owned(),
            input,
            trace_header: trace_header.map(str::to_owned),
            status: ExecutionStatus::Running,
            started_at: self.clock.now(),
        });
    }
}

impl std::fmt::Debug for MemoryWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryWorkflow")
            .field("executions", &*lock(&self.executions))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Workflow for MemoryWorkflow {
    async fn start(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError> {
        self.faults.check("start")?;
        let mut executions = lock(&self.executions);
        let name = submission.order_id.as_str();
        if let Some(existing) = executions.iter().find(|e| e.name == name) {
            return Ok(if existing.input == *submission {
                StartOutcome::Started
            } else {
                StartOutcome::AlreadyExists
            });
        }
        executions.push(StartedExecution {
            name: name.to_owned(),
            input: submission.clone(),
            trace_header: trace_header.map(str::to_owned),
            status: ExecutionStatus::Running,
            started_at: self.clock.now(),
        });
        Ok(StartOutcome::Started)
    }

    async fn describe_traced(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<(ExecutionView, Option<String>)>, PortError> {
        self.faults.check("describe")?;
        Ok(lock(&self.executions)
            .iter()
            .find(|e| e.name == order_id.as_str())
            .map(|e| {
                let view = ExecutionView {
                    status: e.status,
                    input: e.input.clone(),
                    started_at: e.started_at,
                };
                (view, e.trace_header.clone())
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::contract;

    #[tokio::test]
    async fn memory_order_store_meets_the_contract() {
        let store = MemoryOrderStore::new();
        contract::order_store(&store).await;
        // Run twice against the same backend: ids must not collide.
        contract::order_store(&store).await;
    }

    #[tokio::test]
    async fn memory_failed_order_store_meets_the_contract() {
        let store = MemoryFailedOrderStore::new();
        contract::failed_order_store(&store).await;
        contract::failed_order_store(&store).await;
    }

    #[tokio::test]
    async fn memory_workflow_meets_the_contract() {
        let wf = MemoryWorkflow::default();
        contract::workflow(&wf).await;
        contract::workflow(&wf).await;
        contract::workflow_trace_header(&wf).await;
    }

    #[tokio::test]
    async fn faults_fail_every_call_until_healed() {
        let store = MemoryOrderStore::new();
        store.faults.fail_with(ErrorKind::Transient);
        let err = store
            .get(&OrderId::generate())
            .await
            .expect_err("faulty store must fail");
        assert_eq!(err.kind, ErrorKind::Transient);
        store.faults.heal();
        assert!(store.get(&OrderId::generate()).await.is_ok());
    }
}
