//! The log store: every function's log lines that name an order, kept in
//! the data directory for `dofs logs <order_id> [--follow]`, as CloudWatch
//! Logs keeps them for a Logs Insights `filter order_id = "…"` across the
//! functions' log groups.
//!
//! The lines are the JSON lines the functions write (the same text as on
//! stderr in `--log-format json`, and kept in JSON whatever the terminal
//! shows), handed over by `dofs_telemetry`'s [`LogSink`] hook. Like spans,
//! they are buffered in memory and written in one job of the group-commit
//! writer per flush, never a write per line; beyond [`MAX_PENDING`] lines
//! waiting, new ones are dropped and counted rather than letting memory
//! grow. Once an order has ended, compaction (`services::compaction`)
//! packs its lines into one deflated archive ([`pack_ended_orders_lines`]),
//! as it packs histories and spans; a line logged later is a row again
//! until a later pass. Reads merge both. Retention (`services::retention`)
//! removes rows and archives with the rest of an ended order's data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dofs_core::Clock;
use dofs_telemetry::LogSink;
use rusqlite::{params, Connection};

use crate::observability::usage::UsageMeter;
use crate::shutdown::Shutdown;
use crate::store::{archive, Db, DbError};

/// Lines waiting for a flush beyond which new ones are dropped.
pub const MAX_PENDING: usize = 50_000;
/// How often waiting lines are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    /// Increases with every line stored: where `--follow` goes on from.
    pub id: i64,
    pub line: String,
}

/// Lines waiting for the writer.
pub struct LogStore {
    pending: Mutex<Vec<(String, i64, String)>>,
    clock: Arc<dyn Clock>,
    dropped: AtomicU64,
    usage: UsageMeter,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            pending: Mutex::default(),
            clock,
            dropped: AtomicU64::new(0),
            usage: UsageMeter::off(),
        }
    }

    /// The store, also metering every line's bytes into `usage`.
    pub fn with_usage(mut self, usage: UsageMeter) -> Self {
        self.usage = usage;
        self
    }

    /// Lines dropped because too many were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is waiting in one job; on error puts it back.
    pub async fn flush(&self, db: &Db) -> Result<usize, DbError> {
        let taken =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(0);
        }
        let rows = Arc::new(taken);
        let writing = Arc::clone(&rows);
        let result = db
            .write(move |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO log_lines(order_id, at_ms, line) VALUES (?1, ?2, ?3)",
                )?;
                for (order_id, at_ms, line) in writing.iter() {
                    insert.execute(params![order_id, at_ms, line])?;
                }
                Ok(writing.len())
            })
            .await;
        if result.is_err() {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let rows = Arc::try_unwrap(rows).unwrap_or_else(|shared| (*shared).clone());
            pending.splice(0..0, rows);
        }
        result
    }

    /// Flushes every [`FLUSH_INTERVAL`] until `shutdown`, then once more.
    pub async fn run(self: Arc<Self>, db: Db, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(FLUSH_INTERVAL) => {}
                () = shutdown.triggered() => break,
            }
            if let Err(err) = self.flush(&db).await {
                tracing::warn!(error = %err, "could not store log lines; they are kept for the next flush");
            }
        }
        if let Err(err) = self.flush(&db).await {
            tracing::error!(error = %err, "could not store the last log lines");
        }
    }
}

impl LogSink for LogStore {
    fn written(&self, function: &str, level: &str, bytes: usize) {
        self.usage.log_line(function, level, bytes);
    }

    fn record(&self, order_id: &str, line: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let at_ms = self.clock.now().timestamp_millis();
        pending.push((order_id.to_owned(), at_ms, line.to_owned()));
    }
}

/// One line as an archive keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ArchivedLine {
    id: i64,
    at_ms: i64,
    line: String,
}

/// An ended order's lines, packed on a reader, to put in place of the rows.
#[derive(Debug)]
pub struct PackedLines {
    order_id: String,
    last_id: i64,
    at_ms: i64,
    lines: Vec<u8>,
}

/// The lines of `order_id` stored after `after_id`, oldest first: the
/// archived ones and the rows.
pub fn lines_of(
    conn: &Connection,
    order_id: &str,
    after_id: i64,
) -> Result<Vec<StoredLine>, DbError> {
    let mut archives = conn.prepare_cached(
        "SELECT lines FROM log_archives WHERE order_id = ?1 AND last_id > ?2 ORDER BY last_id",
    )?;
    let blobs = archives
        .query_map(params![order_id, after_id], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut lines = Vec::new();
    for blob in blobs {
        for archived in archive::unpack::<ArchivedLine>(&blob)? {
            if archived.id > after_id {
                lines.push(StoredLine {
                    id: archived.id,
                    line: archived.line,
                });
            }
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, line FROM log_lines WHERE order_id = ?1 AND id > ?2 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![order_id, after_id], |row| {
        Ok(StoredLine {
            id: row.get("id")?,
            line: row.get("line")?,
        })
    })?;
    for row in rows {
        lines.push(row?);
    }
    lines.sort_by_key(|l| l.id);
    Ok(lines)
}

/// Packs the line rows of up to `batch` orders that have ended (run on a
/// reader: the compression stays off the writer thread).
pub fn pack_ended_orders_lines(
    conn: &Connection,
    batch: usize,
) -> Result<Vec<PackedLines>, DbError> {
    let mut ended = conn.prepare_cached(
        "SELECT l.order_id FROM (SELECT DISTINCT order_id FROM log_lines) l
         JOIN orders o ON o.order_id = l.order_id
         WHERE o.status IN ('FULFILLED', 'FAILED', 'REJECTED') LIMIT ?1",
    )?;
    let orders = ended
        .query_map([batch as i64], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = conn
        .prepare_cached("SELECT id, at_ms, line FROM log_lines WHERE order_id = ?1 ORDER BY id")?;
    let mut packed = Vec::with_capacity(orders.len());
    for order_id in orders {
        let lines = rows
            .query_map([&order_id], |r| {
                Ok(ArchivedLine {
                    id: r.get("id")?,
                    at_ms: r.get("at_ms")?,
                    line: r.get("line")?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // Gone between the two reads (retention): nothing to pack.
        let Some(last) = lines.last() else { continue };
        packed.push(PackedLines {
            last_id: last.id,
            at_ms: lines.iter().map(|l| l.at_ms).max().unwrap_or(last.at_ms),
            lines: archive::pack(&lines)?,
            order_id,
        });
    }
    Ok(packed)
}

/// Puts each archive in place of the rows it holds (those still there);
/// returns the lines archived.
pub fn store_packed_lines(conn: &Connection, packed: &[PackedLines]) -> Result<usize, DbError> {
    let mut delete =
        conn.prepare_cached("DELETE FROM log_lines WHERE order_id = ?1 AND id <= ?2")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO log_archives(order_id, last_id, at_ms, lines) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut archived = 0;
    for p in packed {
        let deleted = delete.execute(params![p.order_id, p.last_id])?;
        // Rows retention removed meanwhile are not brought back.
        if deleted > 0 {
            insert.execute(params![p.order_id, p.last_id, p.at_ms, p.lines])?;
            archived += deleted;
        }
    }
    Ok(archived)
}

/// Line rows of ended orders waiting to be packed.
pub fn unpacked_ended_lines(conn: &Connection) -> Result<u64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM log_lines l JOIN orders o ON o.order_id = l.order_id
         WHERE o.status IN ('FULFILLED', 'FAILED', 'REJECTED')",
        [],
        |r| r.get(0),
    )?)
}

/// Deletes up to `batch` line rows and `batch` archives recorded before
/// `before`; returns how many of each.
pub fn prune_log_lines(
    conn: &Connection,
    before: DateTime<Utc>,
    batch: usize,
) -> Result<(usize, usize), DbError> {
    let before = before.timestamp_millis();
    let rows = conn.execute(
        "DELETE FROM log_lines WHERE id IN (
             SELECT id FROM log_lines WHERE at_ms < ?1 ORDER BY id LIMIT ?2)",
        params![before, batch as i64],
    )?;
    let archives = conn.execute(
        "DELETE FROM log_archives WHERE rowid IN (
             SELECT rowid FROM log_archives WHERE at_ms < ?1 LIMIT ?2)",
        params![before, batch as i64],
    )?;
    Ok((rows, archives))
}
