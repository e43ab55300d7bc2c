//! The EXPRESS workflow type, with every execution started twice (the worst
//! at-least-once allows) and so every order enqueued twice: DOFS' promises
//! rest on its conditional writes and idempotent steps, not on execution
//! names (docs/architecture.md, "Express workflows").

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{fast_args, order_body, spawn_runtime, Harness as _};

const TERMINAL: [&str; 3] = ["FULFILLED", "FAILED", "REJECTED"];

#[tokio::test]
async fn started_twice_every_order_still_ends_terminal_exactly_once() {
    let mut args = fast_args(0.3);
    args.extend(["--workflow-type", "EXPRESS", "--express-start-twice"].map(String::from));
    let dofs = spawn_runtime(&args).await;

    let mut ids = dofs.submit(30).await;
    // A rejected one too: the second execution's RejectOrder must agree.
    let mut rejected = order_body(99);
    let line = rejected["items"][0].clone();
    rejected["items"] = serde_json::json!([line.clone(), line]);
    let (status, body) = dofs.post_order(&rejected, None).await;
    assert_eq!(status, 202, "{body}");
    ids.push(body["order_id"].as_str().unwrap().to_owned());
    // Idempotent retries, and a GET while the executions run: Express has
    // no DescribeExecution, so both are answered from the orders table.
    for i in 0..8 {
        let key = format!("express-retry-{i}");
        let body = order_body(100 + i);
        let (status, first) = dofs.post_order(&body, Some(&key)).await;
        assert_eq!(status, 202, "{first}");
        let id = first["order_id"].as_str().unwrap().to_owned();
        let (status, read) = dofs.get_order(&id).await;
        assert_eq!(status, 200, "GET right after the 202: {read}");
        assert_eq!(read["order_id"], id.as_str());
        let (status, again) = dofs.post_order(&body, Some(&key)).await;
        assert_eq!(status, 202, "{again}");
        assert_eq!(again["order_id"], first["order_id"]);
        assert_eq!(again["trace_id"], first["trace_id"], "the order's trace");
        ids.push(id);
    }

    let done = dofs.wait_terminal(&ids, Duration::from_secs(120)).await;
    assert_eq!(done.len(), ids.len());
    let mut fulfilled = 0;
    for id in &ids {
        let report = dofs.cli_json(&["order", id]);
        let history: Vec<&str> = report["order"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["status"].as_str().unwrap())
            .collect();
        let endings = history.iter().filter(|s| TERMINAL.contains(s)).count();
        assert_eq!(endings, 1, "{id} ended more than once: {history:?}");
        assert_eq!(
            history.iter().filter(|s| **s == "RECEIVED").count(),
            1,
            "{id}: {history:?}"
        );
        let status = report["order"]["status"].as_str().unwrap();
        assert_eq!(
            report["failed_order"].is_null(),
            status != "FAILED",
            "a failure record exactly for a FAILED order: {report}"
        );
        fulfilled += usize::from(status == "FULFILLED");
    }
    assert!(fulfilled > 0, "{done:?}");
    assert_eq!(
        done.values().filter(|s| *s == "REJECTED").count(),
        1,
        "{done:?}"
    );

    // Two executions per start (the retries started none), each enqueued
    // an order that went on to be fulfilled: the queue saw duplicates.
    let executions: i64 = dofs
        .db
        .read(|c| Ok(c.query_row("SELECT count(*) FROM executions", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(executions, 2 * ids.len() as i64);
    // The metric of the last fulfilment is stored at the next flush (each
    // second): wait for it, then no more than one per order may be there.
    let counted = |metrics: &Value, name: &str| -> usize {
        metrics["series"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"] == name)
            .map(|m| m["window"]["sum"].as_f64().unwrap_or(0.0))
            .sum::<f64>() as usize
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut metrics: Value = dofs.cli_json(&["metrics"]);
    while counted(&metrics, "OrdersFulfilled") < fulfilled && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        metrics = dofs.cli_json(&["metrics"]);
    }
    assert_eq!(
        counted(&metrics, "OrdersFulfilled"),
        fulfilled,
        "fulfilled exactly once each, though every order was enqueued twice: {metrics}"
    );
}
