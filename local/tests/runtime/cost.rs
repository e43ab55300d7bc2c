//! `dofs cost`'s unit counts for a fixed set of orders equal what the ASL
//! and the code imply, in both workflow types: transitions per path (walked
//! in the very ASL Terraform deploys), one invocation per batch of one,
//! one SQS send per enqueue and a receive and a delete per delivery, one
//! DynamoDB write per write the handlers make, one trace per order. The
//! orders are watched in the database, not over the API, so the test's
//! own polling adds no API requests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{fast_args, order_body, spawn_runtime, InProcess};

/// How many states an execution enters from `StartAt`, taking a Choice's
/// `Default` or the choice that leads to `through`.
fn path_length(asl: &Value, through: Option<&str>) -> u64 {
    let states = &asl["States"];
    let mut state = asl["StartAt"].as_str().unwrap().to_owned();
    let mut entered = 0;
    loop {
        entered += 1;
        let definition = &states[&state];
        let next = match definition["Type"].as_str().unwrap() {
            "Succeed" | "Fail" => return entered,
            "Choice" => {
                let chosen = definition["Choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|c| c["Next"].as_str())
                    .find(|next| Some(*next) == through);
                chosen
                    .or(definition["Default"].as_str())
                    .unwrap()
                    .to_owned()
            }
            _ if definition["End"] == true => return entered,
            _ => definition["Next"].as_str().unwrap().to_owned(),
        };
        state = next;
    }
}

async fn counters(dofs: &InProcess) -> BTreeMap<String, f64> {
    dofs.db
        .read(dofs_local::observability::usage::counters)
        .await
        .unwrap()
}

async fn scalar(dofs: &InProcess, sql: &'static str) -> f64 {
    dofs.db
        .read(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, f64>(0))?))
        .await
        .unwrap()
}

async fn unit_counts_match_the_asl_and_the_code(workflow_type: &str) {
    // 0.6 per attempt: with three receives, about one order in five is
    // dead-lettered, so the set has retries, dead letters and fulfilments.
    // A visibility timeout no handler outlasts even on a loaded machine, so
    // a message is delivered again only because its attempt failed.
    let mut args = fast_args(0.6);
    let timeout = args
        .iter()
        .position(|a| a == "--visibility-timeout")
        .unwrap();
    args[timeout + 1] = "2s".to_owned();
    args.extend(["--batch-size", "1", "--workflow-type", workflow_type].map(String::from));
    let dofs = spawn_runtime(&args).await;
    const ACCEPTED: usize = 40;
    const REJECTED: usize = 2;
    for i in 0..ACCEPTED + REJECTED {
        let mut body = order_body(i);
        if i >= ACCEPTED {
            let line = body["items"][0].clone();
            body["items"] = serde_json::json!([line.clone(), line]);
        }
        let (status, answer) = dofs.post_order(&body, None).await;
        assert_eq!(status, 202, "{answer}");
    }
    let total = (ACCEPTED + REJECTED) as f64;
    // Every order ended, and its last units flushed (a flush each second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let ended = scalar(
            &dofs,
            "SELECT count(*) FROM orders WHERE status IN ('FULFILLED', 'FAILED', 'REJECTED')",
        )
        .await;
        let deliveries = scalar(&dofs, "SELECT count(*) FROM deliveries").await;
        let counted = counters(&dofs).await;
        let invoked = counted
            .get("lambda.fulfill_order.requests")
            .copied()
            .unwrap_or(0.0)
            + counted
                .get("lambda.dlq_handler.requests")
                .copied()
                .unwrap_or(0.0);
        if ended == total && invoked == deliveries {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ended} of {total} ended; {invoked} of {deliveries} deliveries metered\n{}",
            dofs.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = counters(&dofs).await;
    let get = |key: &str| c.get(key).copied().unwrap_or(0.0);
    let deliveries = |function: &'static str, outcome: Option<&'static str>| {
        let sql: &'static str = match (function, outcome) {
            ("fulfill_order", None) => "SELECT count(*) FROM deliveries WHERE function = 'fulfill_order'",
            ("fulfill_order", Some(_)) => "SELECT count(*) FROM deliveries WHERE function = 'fulfill_order' AND outcome = 'deleted'",
            (_, None) => "SELECT count(*) FROM deliveries WHERE function = 'dlq_handler'",
            (_, Some(_)) => "SELECT count(*) FROM deliveries WHERE function = 'dlq_handler' AND outcome = 'deleted'",
        };
        scalar(&dofs, sql)
    };
    let fulfil_attempts = deliveries("fulfill_order", None).await;
    let fulfil_deleted = deliveries("fulfill_order", Some("deleted")).await;
    let dead_letters = deliveries("dlq_handler", None).await;
    let dead_deleted = deliveries("dlq_handler", Some("deleted")).await;
    let fulfilled = scalar(
        &dofs,
        "SELECT count(*) FROM orders WHERE status = 'FULFILLED'",
    )
    .await;
    let failed = scalar(&dofs, "SELECT count(*) FROM orders WHERE status = 'FAILED'").await;
    assert_eq!(fulfilled + failed, ACCEPTED as f64);
    assert!(
        failed > 0.0 && fulfilled > 0.0,
        "{fulfilled} fulfilled, {failed} failed"
    );
    assert!(
        fulfil_attempts > ACCEPTED as f64,
        "some fulfilments retried"
    );

    let asl: Value = serde_json::from_str(dofs_local::definitions::WORKFLOW_ASL).unwrap();
    let (stored, rejected) = (
        path_length(&asl, None),
        path_length(&asl, Some("RejectOrder")),
    );
    assert_eq!((stored, rejected), (5, 4), "the ASL's two paths");
    let mut expected = BTreeMap::from([
        ("orders", total),
        ("xray.traces", total),
        ("api.requests", total),
        ("sfn.executions", total),
        (
            "sfn.transitions",
            ACCEPTED as f64 * stored as f64 + REJECTED as f64 * rejected as f64,
        ),
        ("lambda.api_handler.requests", total),
        ("lambda.validator.requests", total),
        ("lambda.order_storage.requests", total),
        ("lambda.fulfill_order.requests", fulfil_attempts),
        ("lambda.dlq_handler.requests", dead_letters),
        // One send per enqueue; a receive per delivery (batches of one); a
        // delete per batch that had a success.
        (
            "sqs.main.requests",
            ACCEPTED as f64 + fulfil_attempts + fulfil_deleted,
        ),
        ("sqs.dlq.requests", dead_letters + dead_deleted),
    ]);
    // Every document under 1 KB, so each write is one unit: api_handler's
    // record, the store (or reject), and the fulfilment or the FAILED mark.
    let largest = scalar(&dofs, "SELECT max(length(doc)) FROM orders").await;
    assert!(
        largest < 1024.0,
        "the sample orders stay under 1 KB: {largest}"
    );
    let writes = total + total + fulfilled + failed;
    if dead_letters == failed {
        expected.insert("ddb.orders.wru", writes);
        expected.insert("ddb.failed_orders.wru", failed);
    } else {
        // A dead letter delivered again (its handler outlasted the
        // visibility timeout after all) repeats its reads and its put.
        assert!(get("ddb.orders.wru") >= writes, "{c:#?}");
        let failure_records = get("ddb.failed_orders.wru");
        assert!((failed..=dead_letters).contains(&failure_records), "{c:#?}");
    }
    let mismatched: Vec<String> = expected
        .iter()
        .filter(|(key, want)| get(key) != **want)
        .map(|(key, want)| format!("{key}: counted {}, expected {want}", get(key)))
        .collect();
    assert!(
        mismatched.is_empty(),
        "{workflow_type}: {mismatched:#?}\n{c:#?}"
    );
    assert!(
        get("sfn.express_billed_ms") >= 100.0 * total,
        "at least 100 ms each"
    );
    assert_eq!(get("sfn.express_billed_ms") % 100.0, 0.0, "in 100 ms steps");
    assert_eq!(
        get("sfn.express_mb_ms"),
        get("sfn.express_billed_ms") * 64.0
    );
    assert!(get("logs.fulfill_order.INFO") > 0.0 && get("logs.fulfill_order.emf") > 0.0);

    // The CLI prices them: both types, Express the cheaper by far.
    let report = dofs.cli_json(&["cost"]);
    assert_eq!(report["measured"]["orders"], total as u64, "{report}");
    let standard = report["report"]["standard_total_per_million"]
        .as_f64()
        .unwrap();
    let express = report["report"]["express_total_per_million"]
        .as_f64()
        .unwrap();
    assert!(standard > 5.0 * express, "{report}");
}

#[tokio::test]
async fn standard_unit_counts_match_the_asl_and_the_code() {
    unit_counts_match_the_asl_and_the_code("STANDARD").await;
}

#[tokio::test]
async fn express_unit_counts_match_the_asl_and_the_code() {
    unit_counts_match_the_asl_and_the_code("EXPRESS").await;
}
