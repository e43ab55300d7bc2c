//! In-memory adapters and the port contract suite (feature `testkit`).
//!
//! - Adapters: [`MemoryOrderStore`], [`MemoryFailedOrderStore`],
//!   [`MemoryOrderQueue`], [`MemoryWorkflow`], [`FixedClock`], [`ManualClock`].
//!   They implement the ports exactly as [`crate::ports`] documents them, so a
//!   handler test that passes against them means the same against DynamoDB or
//!   SQLite. Each store can be told to fail ([`Faults`]) so handlers' error
//!   paths (503s, SQS item failures, Lambda errors) can be tested too.
//! - [`contract`]: one async function per port that runs the whole contract
//!   against any adapter. The SQLite and AWS adapters call these from their own
//!   tests; every call uses fresh order ids, so the functions can run against a
//!   shared, long-lived backend.
//! - Sample builders ([`sample_request`], [`sample_submission`],
//!   [`sample_order`], ...) that every crate's tests use, so a change to the
//!   model is fixed in one place.
//!
//! Written here rather than taken from a mocking crate because the fakes must
//! *behave* like the real tables (conditional writes, first-record-wins), not
//! merely record calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::contracts::OrderSubmission;
use crate::error::{ErrorKind, PortError};
use crate::model::{
    CustomerName, FailedOrder, LineItem, Money, Order, OrderId, OrderRequest, Quantity, Sku,
};
use crate::ports::{
    Clock, ExecutionStatus, ExecutionView, FailedOrderStore, InsertOutcome, OrderQueue, OrderStore,
    StartOutcome, TransitionOutcome, Workflow,
};
use crate::status::{OrderStatus, StatusChange};

/// Locks a mutex, recovering the data if a panicking test poisoned it: the
/// fakes' state is always consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
            return Ok(InsertOutcome::AlreadyExists(existing.clone()));
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

/// A message [`MemoryOrderQueue`] was asked to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
    pub order: Order,
    pub trace_header: Option<String>,
}

/// The order queue in memory: records what was sent.
#[derive(Debug, Default)]
pub struct MemoryOrderQueue {
    sent: Mutex<Vec<SentMessage>>,
    /// Makes every call fail while set.
    pub faults: Faults,
}

impl MemoryOrderQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.sent).clone()
    }
}

#[async_trait]
impl OrderQueue for MemoryOrderQueue {
    async fn send(&self, order: &Order, trace_header: Option<&str>) -> Result<String, PortError> {
        self.faults.check("send")?;
        let mut sent = lock(&self.sent);
        let message_id = format!("msg-{}", sent.len() + 1);
        sent.push(SentMessage {
            message_id: message_id.clone(),
            order: order.clone(),
            trace_header: trace_header.map(str::to_owned),
        });
        Ok(message_id)
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

    async fn describe(&self, order_id: &OrderId) -> Result<Option<ExecutionView>, PortError> {
        self.faults.check("describe")?;
        Ok(lock(&self.executions)
            .iter()
            .find(|e| e.name == order_id.as_str())
            .map(|e| ExecutionView {
                status: e.status,
                input: e.input.clone(),
                started_at: e.started_at,
            }))
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// A clock a test sets and advances by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *lock(&self.now) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}

/// 2026-11-25T10:00:00.250Z: a fixed instant with millisecond precision, the
/// finest every backend is required to keep.
pub fn sample_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .map(|t| t + Duration::milliseconds(250))
        .unwrap_or_else(Utc::now)
}

fn line(sku: &str, quantity: u32, unit_price: Decimal) -> LineItem {
    // The literals below are valid by construction; a failure here is a bug in
    // the testkit itself, so panicking is the right report.
    LineItem {
        sku: Sku::parse(sku).expect("sample sku"),
        quantity: Quantity::parse(quantity).expect("sample quantity"),
        unit_price: Money::parse(unit_price).expect("sample price"),
    }
}

/// A valid request: Ada, 2 × BOOK-1 at 9.99 and 1 × PEN-7 at 1.50 (total 21.48).
pub fn sample_request() -> OrderRequest {
    OrderRequest {
        customer_name: CustomerName::parse("Ada Lovelace").expect("sample name"),
        items: vec![
            line("BOOK-1", 2, Decimal::new(999, 2)),
            line("PEN-7", 1, Decimal::new(150, 2)),
        ],
    }
}

/// [`sample_request`] as the JSON body a client would POST.
pub fn sample_request_json() -> serde_json::Value {
    serde_json::json!({
        "customer_name": "Ada Lovelace",
        "items": [
            {"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"},
            {"sku": "PEN-7", "quantity": 1, "unit_price": "1.50"}
        ]
    })
}

/// [`sample_request`] submitted as `order_id` at [`sample_time`].
pub fn sample_submission(order_id: &OrderId) -> OrderSubmission {
    OrderSubmission::new(order_id.clone(), sample_request(), sample_time())
}

/// The shortest legal path from RECEIVED to `status`.
fn path_to(status: OrderStatus) -> &'static [OrderStatus] {
    use OrderStatus::*;
    match status {
        Received => &[],
        Validated => &[Validated],
        Rejected => &[Rejected],
        Pending => &[Validated, Pending],
        Fulfilled => &[Validated, Pending, Fulfilled],
        Failed => &[Validated, Pending, Failed],
    }
}

/// A sample order with id `order_id` in `status`, with a legal history (one
/// second between steps, starting at [`sample_time`]).
pub fn sample_order_with_id(order_id: &OrderId, status: OrderStatus) -> Order {
    let mut order = sample_submission(order_id).to_order();
    let mut at = sample_time();
    for next in path_to(status) {
        at += Duration::seconds(1);
        let mut change = StatusChange::new(*next, at);
        if matches!(next, OrderStatus::Rejected | OrderStatus::Failed) {
            change = change.with_reason(format!("sample reason for {next}"));
        }
        // `path_to` only yields legal steps.
        if order.transition(change).is_err() {
            unreachable!("path_to({status}) contains an illegal transition");
        }
    }
    order
}

/// A sample order with a fresh id in `status`.
pub fn sample_order(status: OrderStatus) -> Order {
    sample_order_with_id(&OrderId::generate(), status)
}

/// A sample failed_orders row for `order_id`.
pub fn sample_failed_order(order_id: &OrderId) -> FailedOrder {
    let order = sample_order_with_id(order_id, OrderStatus::Pending);
    FailedOrder {
        order_id: order_id.clone(),
        error: "FulfillmentFailed".to_owned(),
        reason: "simulated fulfilment failure after 3 receives".to_owned(),
        receive_count: 3,
        failed_at: sample_time() + Duration::minutes(5),
        payload: serde_json::to_value(&order).unwrap_or_default(),
    }
}

/// The port contract suite. Each function panics (with the clause that
/// failed) if the adapter breaks the port's documented contract.
///
/// Every call works on fresh order ids, so the suite can run many times
/// against one shared backend (a DynamoDB table on moto, one SQLite file).
pub mod contract {
    use super::*;

    /// How many transitions race in the concurrency clause.
    pub const RACERS: usize = 8;

    fn ok<T>(result: Result<T, PortError>, what: &str) -> T {
        match result {
            Ok(value) => value,
            Err(err) => panic!("{what}: unexpected port error: {}", err.chain()),
        }
    }

    /// The [`OrderStore`] contract: get of a missing order, conditional
    /// insert, conditional transition (applied, unchanged, not found),
    /// history appended in order with reasons, exact round trip, and exactly
    /// one winner among racing transitions.
    pub async fn order_store(store: &dyn OrderStore) {
        // Missing orders.
        let missing = OrderId::generate();
        assert_eq!(ok(store.get(&missing).await, "get missing"), None);
        let change = StatusChange::new(OrderStatus::Validated, sample_time());
        assert_eq!(
            ok(
                store
                    .transition(&missing, OrderStatus::Received, change)
                    .await,
                "transition missing"
            ),
            TransitionOutcome::NotFound,
            "transition of a missing order must be NotFound"
        );
        assert_eq!(
            ok(store.get(&missing).await, "get after transition"),
            None,
            "a transition must never create an order"
        );

        // Conditional insert; exact round trip.
        let order = sample_order(OrderStatus::Received);
        let id = order.order_id.clone();
        assert_eq!(
            ok(store.insert(&order).await, "first insert"),
            InsertOutcome::Inserted
        );
        assert_eq!(
            ok(store.get(&id).await, "get inserted"),
            Some(order.clone()),
            "get must return the inserted order exactly"
        );
        let mut impostor = order.clone();
        impostor.customer_name =
            CustomerName::parse("Someone Else").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(store.insert(&impostor).await, "second insert"),
            InsertOutcome::AlreadyExists(order.clone()),
            "a second insert must return the stored order unchanged"
        );
        assert_eq!(
            ok(store.get(&id).await, "get after second insert"),
            Some(order.clone()),
            "a second insert must not overwrite"
        );

        // Transition with the expected status: applied, history appended.
        let validated_at = sample_time() + Duration::seconds(1);
        let applied = ok(
            store
                .transition(
                    &id,
                    OrderStatus::Received,
                    StatusChange::new(OrderStatus::Validated, validated_at),
                )
                .await,
            "transition Received->Validated",
        );
        let TransitionOutcome::Applied(after) = applied else {
            panic!("transition from the expected status must be Applied, got {applied:?}");
        };
        assert_eq!(after.status, OrderStatus::Validated);
        assert_eq!(after.updated_at, validated_at);
        assert_eq!(after.created_at, order.created_at);
        assert_eq!(
            after.history,
            vec![
                order.history[0].clone(),
                StatusChange::new(OrderStatus::Validated, validated_at)
            ]
        );
        assert_eq!(
            ok(store.get(&id).await, "get after transition"),
            Some(after.clone())
        );

        // Transition with an unexpected status: unchanged, current order returned.
        let stale = ok(
            store
                .transition(
                    &id,
                    OrderStatus::Received,
                    StatusChange::new(OrderStatus::Rejected, validated_at),
                )
                .await,
            "stale transition",
        );
        assert_eq!(
            stale,
            TransitionOutcome::Unchanged(after.clone()),
            "transition from an unexpected status must be Unchanged with the current order"
        );

        // Reasons survive; history keeps its order.
        let pending_at = validated_at + Duration::seconds(1);
        let failed_at = pending_at + Duration::milliseconds(1500);
        ok(
            store
                .transition(
                    &id,
                    OrderStatus::Validated,
                    StatusChange::new(OrderStatus::Pending, pending_at),
                )
                .await,
            "transition Validated->Pending",
        );
        let failed_change =
            StatusChange::new(OrderStatus::Failed, failed_at).with_reason("simulated: ünïcode ✓");
        let outcome = ok(
            store
                .transition(&id, OrderStatus::Pending, failed_change.clone())
                .await,
            "transition Pending->Failed",
        );
        let TransitionOutcome::Applied(failed) = outcome else {
            panic!("Pending->Failed must be Applied, got {outcome:?}");
        };
        let statuses: Vec<OrderStatus> = failed.history.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [
                OrderStatus::Received,
                OrderStatus::Validated,
                OrderStatus::Pending,
                OrderStatus::Failed
            ]
        );
        assert_eq!(failed.history.last(), Some(&failed_change));
        assert_eq!(
            ok(store.get(&id).await, "get failed"),
            Some(failed),
            "the stored order must match what transition returned"
        );

        // Inserting an order that is already past RECEIVED keeps it as given.
        let rejected = sample_order(OrderStatus::Rejected);
        assert_eq!(
            ok(store.insert(&rejected).await, "insert rejected"),
            InsertOutcome::Inserted
        );
        assert_eq!(
            ok(store.get(&rejected.order_id).await, "get rejected"),
            Some(rejected)
        );

        racing_transitions(store).await;
    }

    /// `RACERS` concurrent `transition(Pending → Fulfilled)` on one order:
    /// exactly one is Applied, the rest see it FULFILLED, and the history
    /// has exactly one FULFILLED entry.
    async fn racing_transitions(store: &dyn OrderStore) {
        let order = sample_order(OrderStatus::Pending);
        let id = order.order_id.clone();
        ok(store.insert(&order).await, "insert pending");
        let race = |n: usize| {
            let id = id.clone();
            async move {
                let at = sample_time() + Duration::seconds(10) + Duration::milliseconds(n as i64);
                store
                    .transition(
                        &id,
                        OrderStatus::Pending,
                        StatusChange::new(OrderStatus::Fulfilled, at),
                    )
                    .await
            }
        };
        let results = tokio::join!(
            race(0),
            race(1),
            race(2),
            race(3),
            race(4),
            race(5),
            race(6),
            race(7)
        );
        let outcomes: Vec<TransitionOutcome> = [
            results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
        ]
        .into_iter()
        .map(|r| ok(r, "racing transition"))
        .collect();
        assert_eq!(outcomes.len(), RACERS);
        let applied = outcomes
            .iter()
            .filter(|o| matches!(o, TransitionOutcome::Applied(_)))
            .count();
        assert_eq!(
            applied, 1,
            "exactly one of {RACERS} racing transitions must be Applied: {outcomes:?}"
        );
        for outcome in &outcomes {
            match outcome {
                TransitionOutcome::Applied(o) | TransitionOutcome::Unchanged(o) => {
                    assert_eq!(o.status, OrderStatus::Fulfilled, "{outcome:?}")
                }
                TransitionOutcome::NotFound => panic!("racing transition saw NotFound"),
            }
        }
        let stored = ok(store.get(&id).await, "get raced")
            .unwrap_or_else(|| panic!("raced order {id} vanished"));
        let fulfilled = stored
            .history
            .iter()
            .filter(|c| c.status == OrderStatus::Fulfilled)
            .count();
        assert_eq!(fulfilled, 1, "history must show one FULFILLED: {stored:?}");
        assert_eq!(stored.history.len(), order.history.len() + 1);
    }

    /// The [`FailedOrderStore`] contract: missing is None, exact round trip,
    /// the first record wins and later ones succeed without change, also
    /// when they race.
    pub async fn failed_order_store(store: &dyn FailedOrderStore) {
        let missing = OrderId::generate();
        assert_eq!(ok(store.get(&missing).await, "get missing"), None);

        let id = OrderId::generate();
        let first = sample_failed_order(&id);
        ok(store.record(&first).await, "first record");
        assert_eq!(
            ok(store.get(&id).await, "get recorded"),
            Some(first.clone()),
            "get must return the recorded failure exactly"
        );
        let mut second = first.clone();
        second.error = "TransientError".to_owned();
        second.reason = "a later, different failure".to_owned();
        second.receive_count = 7;
        ok(
            store.record(&second).await,
            "a second record for the same order must succeed",
        );
        assert_eq!(
            ok(store.get(&id).await, "get after second record"),
            Some(first),
            "the first record must win"
        );

        // Racing records: all succeed, exactly one of them is kept.
        let raced = OrderId::generate();
        let records: Vec<FailedOrder> = (0..4u32)
            .map(|n| {
                let mut f = sample_failed_order(&raced);
                f.reason = format!("racer {n}");
                f.receive_count = n;
                f
            })
            .collect();
        let results = tokio::join!(
            store.record(&records[0]),
            store.record(&records[1]),
            store.record(&records[2]),
            store.record(&records[3])
        );
        for result in [results.0, results.1, results.2, results.3] {
            ok(result, "racing record");
        }
        let kept = ok(store.get(&raced).await, "get raced")
            .unwrap_or_else(|| panic!("no failure kept for {raced}"));
        assert!(
            records.contains(&kept),
            "the kept record must be one of those written: {kept:?}"
        );
    }

    /// The [`Workflow`] contract: describe of an unknown execution is None;
    /// start records the input; the same start again is idempotent
    /// (Started); the same name with another input is AlreadyExists and
    /// leaves the first input in place.
    pub async fn workflow(wf: &dyn Workflow) {
        let unknown = OrderId::generate();
        assert_eq!(ok(wf.describe(&unknown).await, "describe unknown"), None);

        let id = OrderId::generate();
        let submission = sample_submission(&id);
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        assert_eq!(
            ok(wf.start(&submission, Some(header)).await, "first start"),
            StartOutcome::Started
        );
        let view = ok(wf.describe(&id).await, "describe started")
            .unwrap_or_else(|| panic!("started execution {id} is not described"));
        assert_eq!(
            view.input, submission,
            "describe must return the start input"
        );

        assert_eq!(
            ok(wf.start(&submission, Some(header)).await, "repeated start"),
            StartOutcome::Started,
            "the same name with the same input is idempotent"
        );

        let mut other = submission.clone();
        other.customer_name = CustomerName::parse("Someone Else").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(wf.start(&other, None).await, "conflicting start"),
            StartOutcome::AlreadyExists,
            "the same name with another input must be AlreadyExists"
        );
        let view = ok(wf.describe(&id).await, "describe after conflict")
            .unwrap_or_else(|| panic!("execution {id} vanished"));
        assert_eq!(view.input, submission, "the first input must stay");

        // Without a trace header too.
        let plain = sample_submission(&OrderId::generate());
        assert_eq!(
            ok(wf.start(&plain, None).await, "start without header"),
            StartOutcome::Started
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    /// A store that ignores the condition must fail the suite: the suite
    /// itself is tested.
    struct Unconditional(MemoryOrderStore);

    #[async_trait]
    impl OrderStore for Unconditional {
        async fn get(&self, id: &OrderId) -> Result<Option<Order>, PortError> {
            self.0.get(id).await
        }
        async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
            self.0.insert(order).await
        }
        async fn transition(
            &self,
            id: &OrderId,
            _expected: OrderStatus,
            change: StatusChange,
        ) -> Result<TransitionOutcome, PortError> {
            let current = match self.0.get(id).await? {
                Some(order) => order.status,
                None => return Ok(TransitionOutcome::NotFound),
            };
            self.0.transition(id, current, change).await
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be Unchanged")]
    async fn contract_catches_an_unconditional_transition() {
        contract::order_store(&Unconditional(MemoryOrderStore::new())).await;
    }

    /// A failed-order store where the last record wins must fail the suite.
    #[derive(Default)]
    struct LastWins(Mutex<HashMap<OrderId, FailedOrder>>);

    #[async_trait]
    impl FailedOrderStore for LastWins {
        async fn record(&self, failed: &FailedOrder) -> Result<(), PortError> {
            lock(&self.0).insert(failed.order_id.clone(), failed.clone());
            Ok(())
        }
        async fn get(&self, id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
            Ok(lock(&self.0).get(id).cloned())
        }
    }

    #[tokio::test]
    #[should_panic(expected = "the first record must win")]
    async fn contract_catches_last_record_wins() {
        contract::failed_order_store(&LastWins::default()).await;
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

    #[test]
    fn manual_clock_advances() {
        let clock = ManualClock::new(sample_time());
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), sample_time() + Duration::seconds(90));
        clock.set(sample_time());
        assert_eq!(clock.now(), sample_time());
    }

    #[test]
    fn samples_are_valid_and_consistent() {
        let json_request = crate::validation::validate_order_request(&sample_request_json())
            .expect("sample json validates");
        assert_eq!(json_request, sample_request());
        assert_eq!(sample_request().total().to_string(), "21.48");
        for status in OrderStatus::ALL {
            let order = sample_order(status);
            assert_eq!(order.status, status);
            assert_eq!(order.history.last().map(|c| c.status), Some(status));
            assert_eq!(order.history[0].status, OrderStatus::Received);
        }
    }
}
