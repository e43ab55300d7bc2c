//! Retention: what each stand-in would have expired on AWS is removed once
//! it is older than `dofs serve --retention` (default seven days), and the
//! space it held goes back to the file system.
//!
//! Removed, for orders that ended: the workflow's history events (Step
//! Functions keeps a closed execution's history for a limited time), the
//! spans (X-Ray keeps a trace for a limited time) and the queue delivery
//! records. Kept: the orders and failed orders themselves (DynamoDB items
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

use crate::observability::traces::prune_spans;
use crate::services::sqs::event_source_mapping::prune_deliveries;
use crate::services::step_functions::prune_history;
use crate::shutdown::Shutdown;
use crate::store::{Db, DbError};

/// Rows deleted by one write.
const BATCH: usize = 2_000;

/// How often old data is looked for.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub history_events: usize,
    pub spans: usize,
    pub deliveries: usize,
}

impl Pruned {
    fn any(&self) -> bool {
        self.history_events + self.spans + self.deliveries > 0
    }
}

type Prune = fn(&rusqlite::Connection, DateTime<Utc>, usize) -> Result<usize, DbError>;
/// Which count of [`Pruned`] a kind of row adds to.
type Counter = fn(&mut Pruned) -> &mut usize;

/// Removes everything older than `before`, batch by batch, then gives the
/// freed pages back.
pub async fn prune(db: &Db, before: DateTime<Utc>) -> Result<Pruned, DbError> {
    let mut pruned = Pruned::default();
    let kinds: [(Prune, Counter); 3] = [
        (prune_history, |p| &mut p.history_events),
        (prune_spans, |p| &mut p.spans),
        (prune_deliveries, |p| &mut p.deliveries),
    ];
    for (prune_kind, count) in kinds {
        loop {
            let deleted = db
                .write(move |conn| prune_kind(conn, before, BATCH))
                .await?;
            *count(&mut pruned) += deleted;
            if deleted < BATCH {
                break;
            }
        }
    }
    if pruned.any() {
        db.write(|conn| {
            // SQLite frees one page per step of this pragma: step to the end.
            let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = vacuum.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .await?;
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
                spans = pruned.spans,
                deliveries = pruned.deliveries,
                before = %before.to_rfc3339(),
                "retention removed old data"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention could not remove old data"),
        }
    }
}
