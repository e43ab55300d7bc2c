//! The order hot path in dofs-core: a request body parsed and validated into
//! an `OrderRequest` (what api_handler and the validator do per order), and
//! the stored order document written and read back (what every table write,
//! queue message and status transition does).
//!
//! `cargo bench -p dofs-core`.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dofs_core::validation::validate_order_request;
use dofs_core::{Order, OrderId, OrderStatus, StatusChange};
use serde_json::{json, Value};

fn body(items: usize) -> String {
    let items: Vec<Value> = (0..items)
        .map(|i| json!({"sku": format!("SKU-{i}"), "quantity": 1 + i % 5, "unit_price": "19.99"}))
        .collect();
    json!({"customer_name": "Ada Lovelace", "items": items}).to_string()
}

/// A body with a mistake in every field, so every check reports.
fn invalid_body() -> String {
    json!({
        "customer_name": "",
        "items": [
            {"sku": "", "quantity": 0, "unit_price": "-1"},
            {"sku": "bad sku with spaces", "quantity": 100000, "unit_price": "abc"},
        ],
        "unexpected": true,
    })
    .to_string()
}

fn parse_and_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("order_request");
    for items in [1, 10, 100] {
        let text = body(items);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("parse_validate/{items}_items"), |b| {
            b.iter(|| {
                let value: Value = serde_json::from_str(black_box(&text)).expect("valid JSON");
                validate_order_request(&value).expect("a valid order")
            })
        });
    }
    let bad = invalid_body();
    group.throughput(Throughput::Bytes(bad.len() as u64));
    group.bench_function("parse_validate/invalid", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_str(black_box(&bad)).expect("valid JSON");
            validate_order_request(&value).expect_err("an invalid order")
        })
    });
    group.finish();
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00.123456Z")
        .expect("a timestamp")
        .with_timezone(&Utc)
}

/// A stored order as the pipeline has it when fulfill_order reads it.
fn pending_order() -> Order {
    let value: Value = serde_json::from_str(&body(2)).expect("valid JSON");
    let request = validate_order_request(&value).expect("a valid order");
    let mut order = Order::new(OrderId::from_idempotency_key("bench"), request, at());
    for status in [OrderStatus::Validated, OrderStatus::Pending] {
        order
            .transition(StatusChange::new(status, at()))
            .expect("a legal transition");
    }
    order
}

fn order_document(c: &mut Criterion) {
    let mut group = c.benchmark_group("order_document");
    let order = pending_order();
    let doc = serde_json::to_string(&order).expect("serialisable");
    group.throughput(Throughput::Bytes(doc.len() as u64));
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_string(black_box(&order)).expect("serialisable"))
    });
    group.bench_function("deserialize", |b| {
        b.iter(|| serde_json::from_str::<Order>(black_box(&doc)).expect("an order"))
    });
    // What a conditional status update does: read, transition, write back.
    group.bench_function("transition_roundtrip", |b| {
        b.iter_batched(
            || doc.clone(),
            |doc| {
                let mut order: Order = serde_json::from_str(&doc).expect("an order");
                order
                    .transition(StatusChange::new(OrderStatus::Fulfilled, at()))
                    .expect("PENDING -> FULFILLED");
                serde_json::to_string(&order).expect("serialisable")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse_and_validate, order_document);
criterion_main!(benches);
