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

/// The rows and archives retention and compaction deal in: history event
/// rows, history archives, span rows, trace roots among them, span
/// archives, delivery rows.
async fn stored_counts(db: &dofs_local::store::Db) -> [i64; 6] {
    db.read(|c| {
        Ok([
            count(c, "SELECT count(*) FROM execution_events"),
            count(c, "SELECT count(*) FROM history_archives"),
            count(c, "SELECT count(*) FROM spans"),
            count(c, "SELECT count(*) FROM spans WHERE parent_span_id IS NULL"),
            count(c, "SELECT count(*) FROM span_archives"),
            count(c, "SELECT count(*) FROM deliveries"),
        ])
    })
    .await
    .unwrap()
}

async fn pages(db: &dofs_local::store::Db) -> [i64; 3] {
    db.read(|c| {
        Ok([
            count(c, "PRAGMA page_count"),
            count(c, "PRAGMA freelist_count"),
            count(c, "PRAGMA auto_vacuum"),
        ])
    })
    .await
    .unwrap()
}

/// Every accepted order's whole report (`dofs order --json`: item,
/// execution history, deliveries, both trace views).
async fn reports(db: &dofs_local::store::Db, ids: &[String]) -> Vec<serde_json::Value> {
    let ids = ids.to_vec();
    db.read(move |c| {
        ids.iter()
            .map(|id| {
                let report = dofs_local::inspect::order_report(c, id)?;
                Ok(serde_json::to_value(report)?)
            })
            .collect()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn compaction_packs_ended_orders_and_every_read_is_unchanged() {
    let mut args = fast_args(0.5);
    args.extend(["--compaction".to_owned(), "off".to_owned()]);
    let dofs = spawn_runtime(&args).await;
    let ids = dofs.submit(30).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(
        done.values().any(|s| s == "FAILED") && done.values().any(|s| s == "FULFILLED"),
        "both endings, retries and dead letters among them: {done:?}"
    );
    // Let the last spans reach the store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = reports(&dofs.db, &ids).await;
    let [events, no_archives, spans, roots, no_span_archives, _] = stored_counts(&dofs.db).await;
    assert_eq!((no_archives, no_span_archives), (0, 0), "compaction is off");
    let traces = dofs
        .db
        .read(|c| {
            Ok(count(
                c,
                "SELECT count(DISTINCT trace_id) FROM spans WHERE parent_span_id IS NOT NULL",
            ))
        })
        .await
        .unwrap();
    let pages_before = pages(&dofs.db).await;

    let quiet_before = chrono::Utc::now() + chrono::Duration::minutes(1);
    let compacted = dofs_local::services::compaction::compact(&dofs.db, quiet_before)
        .await
        .unwrap();
    assert_eq!(compacted.history_events as i64, events);
    assert_eq!(compacted.spans as i64, spans - roots);
    let [events_left, history_archives, spans_left, _, span_archives, _] =
        stored_counts(&dofs.db).await;
    assert_eq!(
        (events_left, spans_left),
        (0, roots),
        "only the roots stay rows"
    );
    assert_eq!(history_archives, ids.len() as i64, "one per execution");
    // One per trace (the orders' and the status reads'), two where a trace
    // straddled two batches.
    assert!(
        (traces..=traces * 2).contains(&span_archives),
        "{span_archives} archives for {traces} traces"
    );

    assert_eq!(
        reports(&dofs.db, &ids).await,
        before,
        "every read unchanged"
    );
    let again = dofs_local::services::compaction::compact(&dofs.db, quiet_before)
        .await
        .unwrap();
    assert_eq!(again, Default::default(), "nothing is packed twice");

    // The space: the pages in use, which new rows fill before the file grows.
    let pages_after = pages(&dofs.db).await;
    let in_use = |p: [i64; 3]| p[0] - p[1];
    assert!(
        in_use(pages_after) * 2 < in_use(pages_before),
        "pages in use {} → {}",
        in_use(pages_before),
        in_use(pages_after)
    );
    eprintln!(
        "compaction: {events} history events into {history_archives} archives, {} spans into \
         {span_archives} archives; pages in use {} → {}",
        spans - roots,
        in_use(pages_before),
        in_use(pages_after)
    );
}

#[tokio::test]
async fn retention_removes_ended_orders_history_and_gives_the_space_back() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let ids = dofs.submit(40).await;
    let done = dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(done.values().all(|s| s == "FULFILLED"), "{done:?}");
    // Let the last spans reach the store, and pack what is quiet, so that
    // both rows and archives are there and the background pass has nothing
    // left to move while the counts are taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    dofs_local::services::compaction::compact(&dofs.db, chrono::Utc::now())
        .await
        .unwrap();
    let before = stored_counts(&dofs.db).await;
    let [_, history_archives, spans, _, span_archives, deliveries] = before;
    assert!(
        history_archives > 0 && spans > 0 && span_archives > 0 && deliveries > 0,
        "{before:?}"
    );
    let pages_before = pages(&dofs.db).await;
    assert_eq!(pages_before[2], 2, "created with auto_vacuum = INCREMENTAL");

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
    let after = stored_counts(&dofs.db).await;
    assert_eq!(after, [0; 6], "{pruned:?}");
    assert_eq!(
        [
            pruned.history_events,
            pruned.history_archives,
            pruned.spans,
            pruned.span_archives,
            pruned.deliveries
        ]
        .map(|n| n as i64),
        [before[0], before[1], before[2], before[4], before[5]]
    );
    let pages_after = pages(&dofs.db).await;
    assert!(
        pages_after[0] < pages_before[0],
        "pages {} → {}: the space went back",
        pages_before[0],
        pages_after[0]
    );
    assert_eq!(pages_after[1], 0, "no free pages left in the file");
    // The orders themselves are kept, with their final status.
    for id in &ids {
        let (status, body) = dofs.get_order(id).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "FULFILLED", "{body}");
    }
    eprintln!(
        "retention: {pruned:?} removed; {} → {} pages",
        pages_before[0], pages_after[0]
    );
}
