//! Compaction: what has stopped changing is packed into compressed
//! archives (`store::archive`), so the data directory grows by a few KB
//! per order instead of ~30 KB.
//!
//! Three kinds of rows are packed, each once it can no longer change: the
//! history events of a closed execution (one archive per execution),
//! spans that ended more than [`SPAN_QUIET`] ago (one archive per trace
//! and pass; the roots stay rows, they index the traces), and an ended
//! order's log lines (one archive per order and pass). Everything else
//! is small, or changes (orders, messages, executions).
//!
//! Each pass reads and compresses on a reader connection, off the writer
//! thread that every request waits for, then swaps the rows for the
//! archives in one write. Reads merge rows and archives, so a crash
//! between the two, or a pass that never comes, changes nothing anyone
//! sees; a test compares an order's whole report before and after.

use std::sync::Arc;
use std::time::Duration;

use dofs_core::Clock;

use crate::observability::logs::{
    pack_ended_orders_lines, store_packed_lines, unpacked_ended_lines,
};
use crate::observability::traces::{pack_quiet_spans, store_packed_spans, unpacked_spans};
use crate::services::backoff::FailureBackoff;
use crate::services::step_functions::{
    pack_closed_histories, store_packed_histories, unpacked_closed_events,
};
use crate::shutdown::Shutdown;
use crate::store::{self, Db, DbError};

/// How often a pass runs.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long a span must have ended before it is packed: later spans of
/// the same trace (the next state, the fulfilment) mostly come within
/// this, so a trace's spans mostly land in one archive.
pub const SPAN_QUIET: Duration = Duration::from_secs(5);

/// Executions packed per write.
const HISTORY_BATCH: usize = 200;
/// Spans packed per write.
const SPAN_BATCH: usize = 4_000;
/// Orders whose log lines are packed per write.
const LOG_BATCH: usize = 200;

/// Free pages a pass leaves in the file for the next burst of rows (8 MiB
/// of 4 KiB pages): rows live a few seconds before they are packed, and
/// reusing a free page is cheaper than growing the file again.
const FREE_PAGES_KEPT: i64 = 2_048;
/// The most free pages one pass hands back to the file system: each is a
/// page moved on the writer thread, which every request waits for.
const VACUUM_STEP: i64 = 1_024;

/// What one pass packed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    pub history_events: usize,
    pub spans: usize,
    pub log_lines: usize,
}

/// Rows a pass has yet to pack: history events of closed executions and
/// span rows other than the roots (0 once compaction has caught up).
pub fn backlog(conn: &rusqlite::Connection) -> Result<u64, DbError> {
    Ok(unpacked_closed_events(conn)? + unpacked_spans(conn)? + unpacked_ended_lines(conn)?)
}

/// Packs every closed execution's history and every span that ended
/// before `quiet_before`, batch by batch.
pub async fn compact(
    db: &Db,
    quiet_before: chrono::DateTime<chrono::Utc>,
) -> Result<Compacted, DbError> {
    let mut compacted = Compacted::default();
    loop {
        let packed = db
            .read(|conn| pack_closed_histories(conn, HISTORY_BATCH))
            .await?;
        let full = packed.len() == HISTORY_BATCH;
        if packed.is_empty() {
            break;
        }
        compacted.history_events += db
            .write(move |conn| store_packed_histories(conn, &packed))
            .await?;
        if !full {
            break;
        }
    }
    let quiet_before_ns = quiet_before.timestamp_nanos_opt().unwrap_or(i64::MAX);
    loop {
        let packed = db
            .read(move |conn| pack_quiet_spans(conn, quiet_before_ns, SPAN_BATCH))
            .await?;
        let full = packed.reached(SPAN_BATCH);
        if !packed.moved() {
            break;
        }
        compacted.spans += db
            .write(move |conn| store_packed_spans(conn, &packed))
            .await?;
        if !full {
            break;
        }
    }
    loop {
        let packed = db
            .read(|conn| pack_ended_orders_lines(conn, LOG_BATCH))
            .await?;
        let full = packed.len() == LOG_BATCH;
        if packed.is_empty() {
            break;
        }
        compacted.log_lines += db
            .write(move |conn| store_packed_lines(conn, &packed))
            .await?;
        if !full {
            break;
        }
    }
    give_back_free_pages(db).await?;
    Ok(compacted)
}

/// Hands free pages beyond [`FREE_PAGES_KEPT`] back to the file system, at
/// most [`VACUUM_STEP`] a pass (the database is `auto_vacuum =
/// INCREMENTAL`, see `store`).
async fn give_back_free_pages(db: &Db) -> Result<(), DbError> {
    let free: i64 = db
        .read(|conn| Ok(conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?))
        .await?;
    let pages = (free - FREE_PAGES_KEPT).min(VACUUM_STEP);
    if pages <= 0 {
        return Ok(());
    }
    db.write(move |conn| store::give_back_free_pages(conn, Some(pages)))
        .await
}

/// Runs a pass every [`INTERVAL`] until `shutdown`.
pub async fn run(db: Db, clock: Arc<dyn Clock>, shutdown: Shutdown) {
    let quiet = chrono::Duration::from_std(SPAN_QUIET).unwrap_or(chrono::Duration::MAX);
    let mut failures = FailureBackoff::new("compaction", INTERVAL);
    let mut wait = INTERVAL;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.triggered() => return,
        }
        let Some(quiet_before) = clock.now().checked_sub_signed(quiet) else {
            continue;
        };
        // Nothing is lost when a pass fails: the rows stay rows until one
        // succeeds.
        wait = match compact(&db, quiet_before).await {
            Ok(_) => {
                failures.succeeded();
                INTERVAL
            }
            Err(err) => failures.failed(&err).max(INTERVAL),
        };
    }
}
