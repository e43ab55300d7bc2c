//! Traces of the local runtime: the spans of every order stored in the data
//! directory, and `dofs trace <order_id>` reading them back — by default as
//! X-Ray would hold them ([`xray_view`]: the functions' spans through the
//! functions' own segment translation), with `--full` as every span the
//! local runtime recorded, a waterfall richer than X-Ray will ever show.
//!
//! The path of a span in the full view: the gateway span (HTTP APIs have no
//! X-Ray support, so the local gateway plays that part; it starts every
//! request sampled, so api_handler's order span continues its trace) →
//! api_handler's invocation and its submit span → the workflow's
//! `traceHeader` → one span per state attempt (`state_span`, in
//! `services::step_functions::state_spans`) → the Lambda task's invocation
//! (its `xray_trace_id` is Root + Parent = the state span) and the SQS send
//! (`AWSTraceHeader` = Root + Parent = the EnqueueOrder span) → every
//! fulfil attempt and, after the redrive, dlq_handler's record span. One
//! order, one trace id.
//!
//! Storage: [`SpanStore`] is dofs-telemetry's [`SpanSink`]
//! (`TraceExport::Custom`). Telemetry calls it synchronously at every flush,
//! inside an invocation, so it only converts the spans and appends them to a
//! memory buffer; [`SpanStore::run_writer`] moves the buffer into SQLite
//! through the group-commit writer every `interval` (sooner when a batch is
//! large), one savepoint per batch. A span is therefore never a commit of
//! its own, and a `kill -9` loses at most the last interval of spans —
//! never an order. Written here rather than with an `opentelemetry_sdk`
//! `SpanExporter` + batch processor because telemetry's per-invocation
//! processor (which Lambda needs) is what hands spans out, and the writer
//! we need is the database's own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use dofs_telemetry::traces::SinkError;
use dofs_telemetry::{SpanData, SpanSink};
use opentelemetry::trace::SpanId;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::shutdown::Shutdown;

use crate::store::{Db, DbError};

mod archive;
mod convert;
pub mod otlp;
mod query;
#[cfg(test)]
mod tests;
mod waterfall;
pub mod xray_view;

pub use archive::{pack_quiet_spans, store_packed_spans, unpacked_spans, PackedSpans};
pub use convert::{enrich, records_from_spans};
pub use query::{
    load_trace, load_trace_raw, order_of_trace, order_trace, order_trace_id, order_traces,
    tree_order, OrderTrace,
};
pub use waterfall::{
    document_rows, render_waterfall, render_xray, DocumentRow, Waterfall, WaterfallRow,
};
pub use xray_view::{order_xray_view, XrayView};

/// Spans kept in memory waiting for the writer; beyond this, new spans are
/// dropped (and counted) rather than letting a stalled disk grow memory.
const MAX_PENDING: usize = 200_000;
/// A buffer this large wakes the writer before its interval is up.
const WAKE_AT: usize = 2_048;

/// One stored span: what `dofs trace --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpanRecord {
    /// X-Ray form, `1-{8 hex}-{24 hex}`.
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a trace's root.
    pub parent_span_id: Option<String>,
    pub name: String,
    /// What did the work: a function, or the `api_gateway` or
    /// `step_functions` stand-in.
    pub component: String,
    pub order_id: Option<String>,
    #[serde(serialize_with = "as_rfc3339")]
    pub start: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub end: i64,
    pub duration_ms: f64,
    /// `ok`, `warn` (a WARN event) or `error` (the span failed: a failed
    /// attempt, an error status).
    pub status: String,
    pub attributes: Map<String, Value>,
    /// Events inside the span (WARN and ERROR log lines), with their fields.
    pub events: Vec<Value>,
}

fn as_rfc3339<S: serde::Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ns))
}

pub(super) fn rfc3339(ns: i64) -> String {
    dofs_core::timestamp::format(&DateTime::<Utc>::from_timestamp_nanos(ns))
}

pub(super) fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

pub(super) fn span_hex(id: SpanId) -> String {
    format!("{id:016x}")
}

/// dofs-telemetry's span sink for the local runtime: converts and buffers;
/// [`SpanStore::run_writer`] stores. See the module docs.
#[derive(Default)]
pub struct SpanStore {
    pending: Mutex<Vec<SpanRecord>>,
    wake: Notify,
    dropped: AtomicU64,
    stored: AtomicU64,
}

impl std::fmt::Debug for SpanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanStore")
            .field("stored", &self.stored.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SpanSink for SpanStore {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
        let records = records_from_spans(spans);
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_PENDING.saturating_sub(pending.len());
        let dropped = records.len().saturating_sub(room);
        pending.extend(records.into_iter().take(room));
        let wake = pending.len() >= WAKE_AT;
        drop(pending);
        if dropped > 0 {
            self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }
}

impl SpanStore {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Spans written so far.
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }

    /// Writes everything buffered in one group-commit job; returns how many
    /// spans were written.
    pub async fn write_pending(&self, db: &Db) -> Result<usize, DbError> {
        let batch =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "span buffer full (the database is not keeping up); spans were dropped"
            );
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let n = batch.len();
        // JSON is encoded here, not on the writer thread every write shares.
        let rows = batch
            .into_iter()
            .map(|span| {
                let attributes = serde_json::to_string(&span.attributes)?;
                let events = serde_json::to_string(&span.events)?;
                Ok((span, attributes, events))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        db.write(move |conn| insert_spans(conn, &rows)).await?;
        self.stored.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    /// Every `interval` (or as soon as a large batch is waiting): `flush`
    /// (telemetry's, which hands finished spans to this store), then write.
    /// Returns when `shutdown` turns true; the caller flushes and calls
    /// [`SpanStore::write_pending`] once more after the last work is done.
    pub async fn run_writer(
        self: Arc<Self>,
        db: Db,
        interval: Duration,
        flush: impl Fn() + Send + 'static,
        shutdown: Shutdown,
    ) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.triggered() => {}
            }
            if shutdown.is_triggered() {
                return;
            }
            flush();
            if let Err(err) = self.write_pending(&db).await {
                tracing::error!(error = %err, "could not store spans; they are dropped");
            }
        }
    }
}

/// Deletes up to `batch` spans, and up to `batch` span archives, that ended
/// before `before` (X-Ray keeps a trace for a fixed time too); returns how
/// many of each went. Spans are appended
/// roughly in time order, so the oldest sit at the lowest rowids: a binary
/// search on rowid finds how far the old ones reach without reading the
/// table, and the delete walks only that range.
pub fn prune_spans(
    conn: &Connection,
    before: DateTime<Utc>,
    batch: usize,
) -> Result<(usize, usize), DbError> {
    let cutoff_ns = before.timestamp_nanos_opt().unwrap_or(i64::MAX);
    let archives = archive::prune_span_archives(conn, cutoff_ns, batch)?;
    let rows = prune_span_rows(conn, cutoff_ns, batch)?;
    archive::clamp_mark(conn)?;
    Ok((rows, archives))
}

fn prune_span_rows(conn: &Connection, cutoff_ns: i64, batch: usize) -> Result<usize, DbError> {
    let bounds: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(rowid), max(rowid) FROM spans", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut low), Some(mut high)) = bounds else {
        return Ok(0);
    };
    let mut first_at =
        conn.prepare_cached("SELECT end_ns FROM spans WHERE rowid >= ?1 ORDER BY rowid LIMIT 1")?;
    // The last rowid whose span (or the next one after a gap) is old.
    let mut reach = None;
    while low <= high {
        let middle = low + (high - low) / 2;
        let end_ns: Option<i64> = first_at.query_row([middle], |r| r.get(0)).optional()?;
        if end_ns.is_some_and(|end| end < cutoff_ns) {
            reach = Some(middle);
            low = middle + 1;
        } else {
            high = middle - 1;
        }
    }
    let Some(reach) = reach else {
        return Ok(0);
    };
    let deleted = conn.execute(
        "DELETE FROM spans WHERE rowid IN (
             SELECT rowid FROM spans WHERE rowid <= ?1 AND end_ns < ?2 ORDER BY rowid LIMIT ?3)",
        params![reach, cutoff_ns, batch as i64],
    )?;
    Ok(deleted)
}

fn insert_spans(conn: &Connection, spans: &[(SpanRecord, String, String)]) -> Result<(), DbError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO spans(trace_id, span_id, parent_span_id, name, component, order_id,
             start_ns, end_ns, status, attributes, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (s, attributes, events) in spans {
        insert.execute(params![
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.name,
            s.component,
            s.order_id,
            s.start,
            s.end,
            s.status,
            attributes,
            events,
        ])?;
    }
    Ok(())
}
