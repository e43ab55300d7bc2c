//! Retention: what each stand-in would have expired on AWS is removed once
//! it is older than `dofs serve --retention` (default seven days), and the
//! space it held goes back to the file system.
//!
//! Removed, for orders that ended: the workflow's history events (Step
//! Functions keeps a closed execution's history for a limited time), the
//! spans (X-Ray keeps a trace for a limited time), the queue delivery
//! records and the log lines (a log group's retention); for the first two, their rows and their archives (see
//! `services::compaction`). Kept: the orders and failed orders themselves (DynamoDB items
//! never expire unless told to), the executions' status and output, and
//! metrics, which have their own `--metrics-retention`. The database is
//! created with `auto_vacuum = INCREMENTAL` (see `store`), so the pages
//! freed are handed back with `PRAGMA incremental_vacuum`.
//!
//! The work is done in batches, each its own write, so a large backlog
//! (the first run on an old data directory) never holds the writer long.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dofs_core::Clock;

use crate::observability::logs::prune_log_lines;
use crate::observability::traces::prune_spans;
use crate::services::sqs::event_source_mapping::prune_deliveries;
use crate::services::step_functions::prune_history;
use crate::shutdown::Shutdown;
use crate::store::{give_back_free_pages, Db, DbError};

/// Rows deleted by one write.
const BATCH: usize = 2_000;

/// How often old data is looked for.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub history_events: usize,
    /// Archives of history events (`store::archive`), each several events.
    pub history_archives: usize,
    pub spans: usize,
    /// Archives of spans, each several spans of one trace.
    pub span_archives: usize,
    pub deliveries: usize,
    /// Log lines (`observability::logs`).
    pub log_lines: usize,
    /// Archives of log lines, each one ended order's.
    pub log_archives: usize,
}

impl Pruned {
    fn any(&self) -> bool {
        self.history_events
            + self.history_archives
            + self.spans
            + self.span_archives
            + self.deliveries
            + self.log_lines
            + self.log_archives
            > 0
    }

    fn add(&mut self, other: Pruned) {
        self.history_events += other.history_events;
        self.history_archives += other.history_archives;
        self.spans += other.spans;
        self.span_archives += other.span_archives;
        self.deliveries += other.deliveries;
        self.log_lines += other.log_lines;
        self.log_archives += other.log_archives;
    }
}

/// One kind of old data: deletes a batch of it and adds what went to
/// [`Pruned`]; returns whether the batch was full (more may be left).
type Prune = fn(&rusqlite::Connection, DateTime<Utc>, &mut Pruned) -> Result<bool, DbError>;

fn history(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
    p: &mut Pruned,
) -> Result<bool, DbError> {
    let (rows, archives) = prune_history(conn, before, BATCH)?;
    p.history_events += rows;
    p.history_archives += archives;
    Ok(rows == BATCH || archives == BATCH)
}

fn spans(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
    p: &mut Pruned,
) -> Result<bool, DbError> {
    let (rows, archives) = prune_spans(conn, before, BATCH)?;
    p.spans += rows;
    p.span_archives += archives;
    Ok(rows == BATCH || archives == BATCH)
}

fn deliveries(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
    p: &mut Pruned,
) -> Result<bool, DbError> {
    let rows = prune_deliveries(conn, before, BATCH)?;
    p.deliveries += rows;
    Ok(rows == BATCH)
}

fn log_lines(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
    p: &mut Pruned,
) -> Result<bool, DbError> {
    let (rows, archives) = prune_log_lines(conn, before, BATCH)?;
    p.log_lines += rows;
    p.log_archives += archives;
    Ok(rows == BATCH || archives == BATCH)
}

/// Removes everything older than `before`, batch by batch, then gives the
/// freed pages back.
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<Pruned, DbError> {
    let mut pruned = Pruned::default();
    let kinds: [Prune; 4] = [history, spans, deliveries, log_lines];
    for prune_kind in kinds {
        loop {
            let (full, batch) = db
                .write(move |conn| {
                    let mut batch = Pruned::default();
                    Ok((prune_kind(conn, before, &mut batch)?, batch))
                })
                .await?;
            pruned.add(batch);
            if !full {
                break;
            }
        }
    }
    if pruned.any() {
        db.write(|conn| give_back_free_pages(conn, None)).await?;
    }
    Ok(pruned)
}

/// Prunes every [`INTERVAL`] what is older than `age`, until `shutdown`.
pub async fn run(db: Db, clock: Arc<dyn Clock>, age: Duration, shutdown: Shutdown) {
    // Past chrono's range: nothing is ever old.
    let Ok(age) = chrono::Duration::from_std(age) else {
        return;
    };
    let mut ticker = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.triggered() => return,
        }
        // Before the start of time: nothing is old yet.
        let Some(before) = clock.now().checked_sub_signed(age) else {
            continue;
        };
        match prune(&db, before).await {
            Ok(pruned) if pruned.any() => tracing::info!(
                history_events = pruned.history_events,
                history_archives = pruned.history_archives,
                spans = pruned.spans,
                span_archives = pruned.span_archives,
                deliveries = pruned.deliveries,
                log_lines = pruned.log_lines,
                log_archives = pruned.log_archives,
                before = %before.to_rfc3339(),
                "retention removed old data"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention could not remove old data"),
        }
    }
}
