//! Orders travelling the whole pipeline in the real binary: gateway →
//! workflow → order queue → fulfill_order → (redrive) → DLQ → dlq_handler.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{fast_args, Dofs, Harness as _};

#[tokio::test(flavor = "multi_thread")]
async fn with_no_failures_every_order_is_fulfilled() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(100).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(120)).await;
    let not_fulfilled: Vec<_> = done.iter().filter(|(_, s)| *s != "FULFILLED").collect();
    assert!(not_fulfilled.is_empty(), "{not_fulfilled:?}");
    let fulfilled = dofs.cli_json(&["orders", "--status", "FULFILLED"]);
    assert_eq!(fulfilled["orders"].as_array().unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_only_failures_every_order_is_dead_lettered_after_max_receives() {
    let dofs = Dofs::spawn(&fast_args(1.0));
    let ids = dofs.submit(20).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(120)).await;
    for id in &ids {
        assert_eq!(done[id], "FAILED", "order {id}");
        let report = dofs.cli_json(&["order", id]);
        assert_eq!(
            report["attempts"]["fulfill_order"], 3,
            "exactly maxReceiveCount fulfil attempts for {id}: {}",
            report["deliveries"]
        );
        assert_eq!(
            report["attempts"]["dlq_handler"], 1,
            "{}",
            report["deliveries"]
        );
        let failed = &report["failed_order"];
        assert_eq!(failed["order_id"], id.as_str(), "{report}");
    }
    let queues = dofs.cli_json(&["queues"]);
    for q in queues["queues"].as_array().unwrap() {
        assert_eq!(q["visible"], 0, "{queues}");
        assert_eq!(q["in_flight"], 0, "{queues}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_some_failures_every_order_ends_terminal_and_counts_add_up() {
    let dofs = Dofs::spawn(&fast_args(0.3));
    let ids = dofs.submit(60).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(120)).await;
    let fulfilled = done.values().filter(|s| *s == "FULFILLED").count();
    let failed = done.values().filter(|s| *s == "FAILED").count();
    assert_eq!(fulfilled + failed, ids.len(), "{done:?}");
    // With 0.3 per attempt and 3 attempts, about 2.7% fail: some of 60
    // orders may or may not; but never more fulfil attempts than allowed.
    let mut failed_rows = 0;
    for id in &ids {
        let report = dofs.cli_json(&["order", id]);
        let attempts = report["attempts"]["fulfill_order"].as_u64().unwrap_or(0);
        assert!((1..=3).contains(&attempts), "{id}: {attempts} attempts");
        let fulfilments = report["order"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["status"] == "FULFILLED")
            .count();
        assert!(fulfilments <= 1);
        if !report["failed_order"].is_null() {
            failed_rows += 1;
            assert_eq!(report["order"]["status"], "FAILED");
        }
    }
    assert_eq!(failed_rows, failed);
    let listed: Vec<Value> = dofs.cli_json(&["orders"])["orders"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(listed.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_listening_stops_cleanly() {
    // Dofs::spawn returns as soon as the "listening" line is printed: the
    // signal lands while the pollers and the engine are still starting.
    let mut dofs = Dofs::spawn(&fast_args(0.0));
    assert_eq!(dofs.terminate(), Some(0), "{}", dofs.log_tail());
    let again = Dofs::spawn_in(&dofs.data_dir.clone(), &fast_args(0.0));
    let ids = again.submit(1).await;
    let done = again.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(done.values().all(|s| s == "FULFILLED"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_cleanly_and_a_restart_keeps_everything() {
    let mut dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(10).await;
    assert_eq!(dofs.terminate(), Some(0), "{}", dofs.log_tail());
    let data_dir = dofs.data_dir.clone();
    let again = Dofs::spawn_in(&data_dir, &fast_args(0.0));
    let done = again.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(done.values().all(|s| s == "FULFILLED"), "{done:?}");
    drop(dofs);
}
