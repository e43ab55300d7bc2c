//! The data directory under stress: a full disk is survived, and nothing
//! unstored is acknowledged.

use std::time::Duration;

use crate::helpers::{fast_args, order_body, spawn_runtime, Harness as _};

/// Caps the database at its current size (SQLite's `max_page_count` on the
/// writer's connection), so the next write that needs a page fails with
/// `SQLITE_FULL`, as on a full disk; `None` lifts the cap.
async fn cap_database(dofs: &crate::helpers::InProcess, capped: bool) {
    // The pragma runs in the writer's group transaction: when another write
    // of the group fills the cap, SQLite rolls the whole group back, this
    // one too; it is tried again.
    for _ in 0..100 {
        let set = dofs
            .db
            .write(move |c| {
                let pages: i64 = if capped {
                    c.query_row("PRAGMA page_count", [], |r| r.get(0))?
                } else {
                    i64::from(u32::MAX)
                };
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
                Ok(())
            })
            .await;
        if set.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not set max_page_count");
}

#[tokio::test]
async fn a_full_disk_refuses_orders_with_retry_after_and_resumes_when_space_returns() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let mut accepted = dofs.submit(3).await;
    cap_database(&dofs, true).await;
    let mut refused = 0;
    for i in 0..200 {
        let (status, body) = dofs.post_order(&order_body(100 + i), None).await;
        match status {
            202 => accepted.push(body["order_id"].as_str().unwrap().to_owned()),
            503 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
            }
            other => panic!("{other}: {body}"),
        }
        if refused >= 5 {
            break;
        }
    }
    assert!(refused >= 5, "the cap never filled: {accepted:?}");
    // The pollers and the engine keep failing meanwhile; they back off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let backoff_lines = dofs
        .logs()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("backing off"))
        })
        .count();
    assert!(
        (1..=6).contains(&backoff_lines),
        "{backoff_lines} back-off lines\n{}",
        dofs.log_tail()
    );

    cap_database(&dofs, false).await;
    accepted.extend(dofs.submit(3).await);
    let done = dofs.wait_terminal(&accepted, Duration::from_secs(60)).await;
    assert!(
        done.values().all(|s| s == "FULFILLED"),
        "{done:?}\n{}",
        dofs.log_tail()
    );
    eprintln!(
        "full disk: {} accepted (every one FULFILLED), {refused} refused with 503, {backoff_lines} back-off log lines",
        accepted.len()
    );
}
