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

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn retention_removes_ended_orders_history_and_gives_the_space_back() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let ids = dofs.submit(40).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(done.values().all(|s| s == "FULFILLED"), "{done:?}");
    // Let the last spans reach the store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tables = |db: dofs_local::store::Db| async move {
        db.read(|c| {
            Ok([
                count(c, "SELECT count(*) FROM execution_events"),
                count(c, "SELECT count(*) FROM spans"),
                count(c, "SELECT count(*) FROM deliveries"),
                count(c, "PRAGMA page_count"),
                count(c, "PRAGMA auto_vacuum"),
            ])
        })
        .await
    };
    let before = tables(dofs.db.clone()).await.unwrap();
    assert!(before[..3].iter().all(|n| *n > 0), "{before:?}");
    assert_eq!(before[4], 2, "created with auto_vacuum = INCREMENTAL");

    // Nothing is old yet: a pass a day back removes nothing.
    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    let none = dofs_local::services::retention::prune(&dofs.db, yesterday)
        .await
        .unwrap();
    assert_eq!(none, Default::default());

    // Everything so far is older than a minute from now.
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let pruned = dofs_local::services::retention::prune(&dofs.db, later)
        .await
        .unwrap();
    let after = tables(dofs.db.clone()).await.unwrap();
    assert_eq!(after[..3], [0, 0, 0], "{pruned:?}");
    assert_eq!(pruned.history_events as i64, before[0]);
    assert!(
        after[3] < before[3] / 2,
        "pages {} → {}: the space went back",
        before[3],
        after[3]
    );
    // The orders themselves are kept, with their final status.
    for id in &ids {
        let (status, body) = dofs.get_order(id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "FULFILLED", "{body}");
    }
    eprintln!(
        "retention: {} history events, {} spans, {} deliveries removed; {} → {} pages",
        pruned.history_events, pruned.spans, pruned.deliveries, before[3], after[3]
    );
}
