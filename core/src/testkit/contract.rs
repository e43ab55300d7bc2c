//! The port contract suite. Each function panics (with the clause that
//! failed) if the adapter breaks the port's documented contract.
//!
//! Every call works on fresh order ids, so the suite can run many times
//! against one shared backend (a DynamoDB table on moto, one SQLite file).

use chrono::Duration;

use super::samples::{sample_failed_order, sample_order, sample_submission, sample_time};
use crate::error::PortError;
use crate::model::{CustomerName, FailedOrder, Money, OrderId};
use crate::ports::{
    FailedOrderStore, InsertOutcome, OrderStore, StartOutcome, TransitionOutcome, Workflow,
};
use crate::status::{OrderStatus, StatusChange};

/// How many transitions race in the concurrency clause.
pub const RACERS: usize = 8;

fn ok<T>(result: Result<T, PortError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("{what}: unexpected port error: {}", err.chain()),
    }
}

/// The [`OrderStore`] contract: [`order_store_sequential`], then exactly
/// one winner among racing transitions.
pub async fn order_store(store: &dyn OrderStore) {
    order_store_sequential(store).await;
    racing_transitions(store).await;
}

/// The [`OrderStore`] contract one call at a time: get of a missing order,
/// conditional insert, conditional transition (applied, unchanged, not
/// found), history appended in order with reasons, exact round trip. For
/// a backend that cannot itself serialise concurrent conditional writes
/// (moto's server), where a race would test the stand-in, not the adapter.
pub async fn order_store_sequential(store: &dyn OrderStore) {
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
    impostor.customer_name = CustomerName::parse("Someone Else").unwrap_or_else(|e| panic!("{e}"));
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

    // Money keeps the scale it was written with: `Decimal` equality says
    // 5.00 == 5, so the clause compares the spelling.
    let mut scaled = sample_order(OrderStatus::Received);
    scaled.items.truncate(1);
    scaled.items[0].unit_price = Money::parse_str("5.00").unwrap_or_else(|e| panic!("{e}"));
    scaled.total = scaled.request().total();
    assert_eq!(scaled.total.to_string(), "10.00", "the sample's own total");
    ok(store.insert(&scaled).await, "insert of a 5.00 price");
    let read = ok(store.get(&scaled.order_id).await, "get of a 5.00 price")
        .unwrap_or_else(|| panic!("the 5.00 order must be stored"));
    assert_eq!(
        (read.items[0].unit_price.to_string(), read.total.to_string()),
        ("5.00".to_owned(), "10.00".to_owned()),
        "prices and totals must come back at the scale they were stored with"
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

    // The workflow's first write replaces api_handler's RECEIVED record
    // (trace id included); nothing replaces the order after that.
    let received = sample_order(OrderStatus::Received)
        .with_trace_id(Some("1-5759e988-bd862e3fe1be46a994272793".to_owned()));
    ok(store.insert(&received).await, "insert received");
    let mut pending = received.clone();
    for (status, seconds) in [(OrderStatus::Validated, 1), (OrderStatus::Pending, 2)] {
        pending
            .transition(StatusChange::new(
                status,
                sample_time() + Duration::seconds(seconds),
            ))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        ok(store.insert(&pending).await, "insert pending over received"),
        InsertOutcome::Inserted,
        "the workflow's first write must replace the RECEIVED record"
    );
    assert_eq!(
        ok(store.get(&pending.order_id).await, "get pending"),
        Some(pending.clone()),
        "the replacing order must be stored exactly, trace id included"
    );
    let mut late = received.clone();
    late.transition(StatusChange::new(
        OrderStatus::Rejected,
        sample_time() + Duration::seconds(3),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(store.insert(&late).await, "insert over pending"),
        InsertOutcome::AlreadyExists(pending.clone()),
        "an order past RECEIVED must never be replaced"
    );
    assert_eq!(
        ok(store.insert(&received).await, "insert received again"),
        InsertOutcome::AlreadyExists(pending),
        "a RECEIVED order must never replace a stored one"
    );
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

/// The trace header the workflow contracts start executions with.
const SAMPLE_TRACE_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

/// The [`Workflow`] contract: describe of an unknown execution is None;
/// start records the input; the same start again is idempotent
/// (Started); the same name with another input is AlreadyExists and
/// leaves the first input in place.
pub async fn workflow(wf: &dyn Workflow) {
    let unknown = OrderId::generate();
    assert_eq!(ok(wf.describe(&unknown).await, "describe unknown"), None);

    let id = OrderId::generate();
    let submission = sample_submission(&id);
    let header = SAMPLE_TRACE_HEADER;
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

/// The trace half of the [`Workflow`] contract: `describe_traced` returns
/// the header the execution was started with (DescribeExecution's
/// `traceHeader`, "the X-Ray trace header that was passed to the
/// execution"), which an idempotent replay answers with; an unknown
/// execution is None. Not part of [`workflow`]: moto 5.2.5's StartExecution
/// handler drops `traceHeader` (it passes the backend only the ARN, name
/// and input), so its DescribeExecution never returns one and the AWS
/// adapter's reading of it cannot be checked there; the memory and local
/// adapters run this.
pub async fn workflow_trace_header(wf: &dyn Workflow) {
    assert!(ok(
        wf.describe_traced(&OrderId::generate()).await,
        "describe_traced unknown"
    )
    .is_none());
    let id = OrderId::generate();
    let submission = sample_submission(&id);
    let header = SAMPLE_TRACE_HEADER;
    assert_eq!(
        ok(wf.start(&submission, Some(header)).await, "traced start"),
        StartOutcome::Started
    );
    let (view, traced) = ok(wf.describe_traced(&id).await, "describe_traced")
        .unwrap_or_else(|| panic!("started execution {id} is not described"));
    assert_eq!(view.input, submission);
    assert_eq!(
        traced.as_deref(),
        Some(header),
        "describe_traced must return the start's trace header"
    );
    assert_eq!(
        ok(wf.describe(&id).await, "describe").map(|v| v.input),
        Some(submission),
        "describe and describe_traced describe the same execution"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::model::Order;
    use crate::testkit::{lock, MemoryOrderStore};

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
        order_store(&Unconditional(MemoryOrderStore::new())).await;
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
        failed_order_store(&LastWins::default()).await;
    }
}
