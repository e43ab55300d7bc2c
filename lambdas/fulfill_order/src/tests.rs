//! Unit tests: fulfilment, duplicates, partial batch failures, and the
//! failure simulator.

use super::*;
use aws_lambda_events::sqs::SqsMessage;
use dofs_core::testkit::{sample_order, sample_time, FixedClock, MemoryOrderStore};
use dofs_core::ErrorKind;
use dofs_lambda::sqs::RECEIVE_COUNT_ATTRIBUTE;
use lambda_runtime::Context;

fn now() -> chrono::DateTime<chrono::Utc> {
    sample_time() + chrono::Duration::milliseconds(1_500)
}

fn consumer(store: Arc<MemoryOrderStore>, failures: FailureSimulator) -> FulfillOrder {
    FulfillOrder::new(store, Arc::new(FixedClock(now())), failures)
}

fn never() -> FailureSimulator {
    FailureSimulator::new(0.0, None).unwrap()
}

fn record(message_id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(message_id.to_owned());
    message.body = Some(body.to_owned());
    message.attributes.insert(
        RECEIVE_COUNT_ATTRIBUTE.to_owned(),
        receive_count.to_string(),
    );
    message
}

fn order_record(message_id: &str, order: &Order) -> SqsMessage {
    record(message_id, &serde_json::to_string(order).unwrap(), 1)
}

fn batch(records: Vec<SqsMessage>) -> LambdaEvent<SqsEvent> {
    let mut event = SqsEvent::default();
    event.records = records;
    LambdaEvent::new(event, Context::default())
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

async fn status_of(store: &MemoryOrderStore, order: &Order) -> OrderStatus {
    store.get(&order.order_id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn fulfils_a_pending_order() {
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    let response = consumer(store.clone(), never())
        .handle(batch(vec![order_record("m1", &order)]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Fulfilled);
    assert_eq!(
        stored.history.last(),
        Some(&StatusChange::new(OrderStatus::Fulfilled, now()))
    );
}

#[tokio::test]
async fn a_duplicate_delivery_does_not_fulfil_twice() {
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    let handler = consumer(store.clone(), never());
    // The same message twice in one batch, then again in a later batch.
    let response = handler
        .handle(batch(vec![
            order_record("m1", &order),
            order_record("m1-dup", &order),
        ]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let response = handler
        .handle(batch(vec![order_record("m1", &order)]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    let fulfilled = stored
        .history
        .iter()
        .filter(|c| c.status == OrderStatus::Fulfilled)
        .count();
    assert_eq!(fulfilled, 1);
}

#[tokio::test]
async fn concurrent_duplicates_fulfil_once() {
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    let handler = Arc::new(consumer(store.clone(), never()));
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let handler = handler.clone();
            let record = order_record(&format!("m{n}"), &order);
            tokio::spawn(async move { handler.handle(batch(vec![record])).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().unwrap().batch_item_failures.is_empty());
    }
    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.history.len(), order.history.len() + 1);
    assert_eq!(stored.status, OrderStatus::Fulfilled);
}

#[tokio::test]
async fn a_failed_order_redelivered_is_acknowledged_not_fulfilled() {
    let order = sample_order(OrderStatus::Failed);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    let response = consumer(store.clone(), never())
        .handle(batch(vec![order_record("m1", &order)]))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_of(&store, &order).await, OrderStatus::Failed);
}

#[tokio::test]
async fn only_the_poisoned_records_fail_in_a_batch() {
    let good = sample_order(OrderStatus::Pending);
    let other = sample_order(OrderStatus::Pending);
    let missing = sample_order(OrderStatus::Pending);
    let validated = sample_order(OrderStatus::Validated);
    let store = Arc::new(MemoryOrderStore::with_orders([
        good.clone(),
        other.clone(),
        validated.clone(),
    ]));
    let mut no_body = record("no-body", "", 1);
    no_body.body = None;
    let response = consumer(store.clone(), never())
        .handle(batch(vec![
            order_record("good", &good),
            record("garbage", "{not json", 2),
            record("wrong-shape", r#"{"order_id":"x"}"#, 1),
            order_record("missing", &missing),
            order_record("not-pending", &validated),
            no_body,
            order_record("other", &other),
        ]))
        .await
        .unwrap();
    assert_eq!(
        failed_ids(&response),
        [
            "garbage",
            "wrong-shape",
            "missing",
            "not-pending",
            "no-body"
        ]
    );
    assert_eq!(status_of(&store, &good).await, OrderStatus::Fulfilled);
    assert_eq!(status_of(&store, &other).await, OrderStatus::Fulfilled);
    assert_eq!(status_of(&store, &validated).await, OrderStatus::Validated);
}

#[tokio::test]
async fn port_errors_fail_the_record_not_the_batch() {
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    store.faults.fail_with(ErrorKind::Transient);
    let response = consumer(store.clone(), never())
        .handle(batch(vec![order_record("m1", &order)]))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m1"]);
    store.faults.heal();
    assert_eq!(status_of(&store, &order).await, OrderStatus::Pending);
}

#[tokio::test]
async fn simulated_failures_fail_the_record_and_leave_the_order_pending() {
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    let always = FailureSimulator::new(1.0, None).unwrap();
    let response = consumer(store.clone(), always)
        .handle(batch(vec![order_record("m1", &order)]))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response), ["m1"]);
    assert_eq!(status_of(&store, &order).await, OrderStatus::Pending);
}

#[test]
fn failure_rate_must_be_between_zero_and_one() {
    for rate in [0.0, 0.3, 1.0] {
        assert_eq!(FailureSimulator::new(rate, None).unwrap().rate(), rate);
    }
    for rate in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
        assert!(FailureSimulator::new(rate, Some(1)).is_err(), "{rate}");
    }
}

#[test]
fn rate_zero_never_fails_and_rate_one_always_fails() {
    let never = FailureSimulator::new(0.0, None).unwrap();
    let always = FailureSimulator::new(1.0, Some(9)).unwrap();
    for n in 0..200 {
        let id = OrderId::generate();
        assert!(!never.should_fail(&id, n));
        assert!(always.should_fail(&id, n));
    }
}

#[test]
fn a_seed_makes_decisions_deterministic() {
    let a = FailureSimulator::new(0.5, Some(42)).unwrap();
    let b = FailureSimulator::new(0.5, Some(42)).unwrap();
    let other_seed = FailureSimulator::new(0.5, Some(43)).unwrap();
    let ids: Vec<OrderId> = (0..500)
        .map(|n| OrderId::parse(&format!("order-{n}")).unwrap())
        .collect();
    let decisions = |sim: &FailureSimulator, count: u32| -> Vec<bool> {
        ids.iter().map(|id| sim.should_fail(id, count)).collect()
    };
    assert_eq!(decisions(&a, 1), decisions(&b, 1));
    assert_ne!(decisions(&a, 1), decisions(&other_seed, 1));
    // The receive count is an input: a retry may succeed.
    assert_ne!(decisions(&a, 1), decisions(&a, 2));
    // Pinned values: the function must not change across versions.
    let pinned: Vec<bool> = (0..8)
        .map(|n| a.should_fail(&OrderId::parse(&format!("order-{n}")).unwrap(), 1))
        .collect();
    assert_eq!(pinned, PINNED_SEED_42);
}

/// `should_fail` of `order-0`..`order-7`, receive count 1, seed 42, rate 0.5.
const PINNED_SEED_42: [bool; 8] = [true, true, false, false, true, false, true, false];

#[test]
fn seeded_rate_is_respected_over_many_orders() {
    for rate in [0.1, 0.3, 0.7] {
        let sim = FailureSimulator::new(rate, Some(7)).unwrap();
        let failures = (0..10_000)
            .filter(|n| sim.should_fail(&OrderId::parse(&format!("o-{n}")).unwrap(), 1))
            .count();
        let observed = failures as f64 / 10_000.0;
        assert!(
            (observed - rate).abs() < 0.03,
            "rate {rate}: observed {observed}"
        );
    }
}

/// Captures metrics emitted on this thread (`#[tokio::test]` runs on one).
mod capture {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    #[derive(Default, Clone)]
    pub struct Captured(Arc<Mutex<HashMap<String, Vec<f64>>>>);

    struct Handle {
        name: String,
        sink: Captured,
    }

    impl Handle {
        fn push(&self, value: f64) {
            let mut map = self.sink.0.lock().unwrap();
            map.entry(self.name.clone()).or_default().push(value);
        }
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.push(value as f64);
        }
        fn absolute(&self, value: u64) {
            self.push(value as f64);
        }
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.push(value);
        }
    }

    impl Captured {
        fn handle(&self, key: &Key) -> Arc<Handle> {
            assert_eq!(key.labels().count(), 0, "metrics carry no labels: {key:?}");
            Arc::new(Handle {
                name: key.name().to_owned(),
                sink: self.clone(),
            })
        }

        pub fn values(&self, name: &str) -> Vec<f64> {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .cloned()
                .unwrap_or_default()
        }
    }

    impl Recorder for Captured {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.handle(key))
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn emits_fulfilment_metrics_without_labels() {
    let captured = capture::Captured::default();
    let _guard = metrics::set_default_local_recorder(&captured);
    let order = sample_order(OrderStatus::Pending);
    let store = Arc::new(MemoryOrderStore::with_orders([order.clone()]));
    consumer(store, never())
        .handle(batch(vec![
            order_record("m1", &order),
            order_record("m2", &order),
            record("bad", "{", 1),
        ]))
        .await
        .unwrap();
    assert_eq!(captured.values(metric::ORDERS_FULFILLED), [1.0]);
    assert_eq!(captured.values(metric::DUPLICATE_DELIVERIES), [1.0]);
    assert_eq!(captured.values(metric::FULFILLMENT_FAILURES), [1.0]);
    // Submitted at sample_time (created_at), fulfilled 1.5 s later.
    let created = order.created_at;
    let expected = (now() - created).num_milliseconds() as f64;
    assert_eq!(captured.values(metric::FULFILLMENT_LATENCY), [expected]);
}
