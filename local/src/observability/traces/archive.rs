//! Span archives: the spans of a trace that have been quiet for a while,
//! moved out of their rows into one deflated blob per trace and pass
//! ([`crate::store::archive`]), by the compaction service. A row costs
//! ~400 bytes with its index entry; a trace's dozen spans pack into
//! ~1 KB.
//!
//! The roots stay rows, because an order's traces are found by their root
//! (`span_roots_by_order`). A span that arrives after its trace was
//! packed (a redriven order's dlq_handler, minutes later) is a row again
//! until a later pass packs it into a second archive of the same trace;
//! [`archived_spans`] reads them all.
//!
//! The pass walks the table in rowid order from where the last one
//! stopped (`compaction_marks`, never above the highest rowid left: see
//! [`clamp_mark`]), and stops at the first span that is not quiet yet: spans are appended as they end, so what lies beyond it is
//! newer still. A span passed over that way stays a row; it is read, and
//! pruned by retention, like any other.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;

use super::SpanRecord;
use crate::store::{archive, decoded, DbError};

/// The `compaction_marks` row of this pass.
const MARK: &str = "spans";

/// One span in an archive: the row's columns but the trace id, which is
/// the archive's.
#[derive(serde::Serialize, serde::Deserialize)]
struct ArchivedSpan {
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    component: String,
    order_id: Option<String>,
    start_ns: i64,
    end_ns: i64,
    status: String,
    attributes: Box<RawValue>,
    events: Box<RawValue>,
}

impl ArchivedSpan {
    fn into_record(self, trace_id: &str) -> Result<SpanRecord, DbError> {
        Ok(SpanRecord {
            trace_id: trace_id.to_owned(),
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: self.name,
            component: self.component,
            order_id: self.order_id,
            start: self.start_ns,
            end: self.end_ns,
            duration_ms: (self.end_ns - self.start_ns) as f64 / 1e6,
            status: self.status,
            attributes: serde_json::from_str(self.attributes.get())?,
            events: serde_json::from_str(self.events.get())?,
        })
    }
}

/// One trace's quiet spans, packed, with the rows they replace.
struct PackedTrace {
    trace_id: String,
    end_ns: i64,
    spans: Vec<u8>,
    rowids: Vec<i64>,
}

/// The quiet spans of one pass, packed per trace: what
/// [`store_packed_spans`] puts in place of their rows.
pub struct PackedSpans {
    traces: Vec<PackedTrace>,
    /// The rowid the pass got to: every span row up to it is packed here,
    /// a root, or was not quiet.
    upto: i64,
    /// Where the pass started.
    from: i64,
    /// The rows the pass read, roots included.
    scanned: usize,
}

impl PackedSpans {
    /// How many spans this pass packs.
    pub fn len(&self) -> usize {
        self.traces.iter().map(|t| t.rowids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the pass got anywhere (packed spans, or passed roots).
    pub fn moved(&self) -> bool {
        self.upto != self.from
    }

    /// Whether the pass stopped at `batch` rows, not at the first span
    /// that was not quiet: more may be waiting.
    pub fn reached(&self, batch: usize) -> bool {
        self.scanned >= batch
    }
}

/// Span rows that a pass will pack once they are quiet (every span but
/// the roots, which stay rows).
pub fn unpacked_spans(conn: &Connection) -> Result<u64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM spans WHERE parent_span_id IS NOT NULL",
        [],
        |r| r.get(0),
    )?)
}

/// Packs up to `batch` span rows that ended before `quiet_before_ns` (run
/// on a reader: the compression stays off the writer thread).
pub fn pack_quiet_spans(
    conn: &Connection,
    quiet_before_ns: i64,
    batch: usize,
) -> Result<PackedSpans, DbError> {
    let mark: i64 = conn
        .query_row(
            "SELECT upto FROM compaction_marks WHERE name = ?1",
            [MARK],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, trace_id, span_id, parent_span_id, name, component, order_id, start_ns,
             end_ns, status, attributes, events
         FROM spans WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![mark, batch as i64])?;
    let mut upto = mark;
    let mut scanned = 0;
    let mut by_trace: BTreeMap<String, (Vec<ArchivedSpan>, Vec<i64>)> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get("rowid")?;
        let end_ns: i64 = row.get("end_ns")?;
        if end_ns >= quiet_before_ns {
            break;
        }
        upto = rowid;
        scanned += 1;
        let parent_span_id: Option<String> = row.get("parent_span_id")?;
        if parent_span_id.is_none() {
            continue;
        }
        let (spans, rowids) = by_trace.entry(row.get("trace_id")?).or_default();
        rowids.push(rowid);
        spans.push(ArchivedSpan {
            span_id: row.get("span_id")?,
            parent_span_id,
            name: row.get("name")?,
            component: row.get("component")?,
            order_id: row.get("order_id")?,
            start_ns: row.get("start_ns")?,
            end_ns,
            status: row.get("status")?,
            attributes: decoded(row, "attributes", |t| RawValue::from_string(t.to_owned()))?,
            events: decoded(row, "events", |t| RawValue::from_string(t.to_owned()))?,
        });
    }
    let traces = by_trace
        .into_iter()
        .map(|(trace_id, (spans, rowids))| {
            Ok(PackedTrace {
                end_ns: spans.iter().map(|s| s.end_ns).max().unwrap_or_default(),
                spans: archive::pack(&spans)?,
                trace_id,
                rowids,
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok(PackedSpans {
        traces,
        upto,
        from: mark,
        scanned,
    })
}

/// Puts each trace's archive in place of its rows and moves the mark on;
/// returns the spans archived.
pub fn store_packed_spans(conn: &Connection, packed: &PackedSpans) -> Result<usize, DbError> {
    let mut insert = conn
        .prepare_cached("INSERT INTO span_archives(trace_id, end_ns, spans) VALUES (?1, ?2, ?3)")?;
    let mut delete = conn.prepare_cached("DELETE FROM spans WHERE rowid = ?1")?;
    let mut archived = 0;
    for trace in &packed.traces {
        insert.execute(params![trace.trace_id, trace.end_ns, trace.spans])?;
        for rowid in &trace.rowids {
            archived += delete.execute([rowid])?;
        }
    }
    conn.execute(
        "INSERT INTO compaction_marks(name, upto) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET upto = excluded.upto",
        params![MARK, packed.upto],
    )?;
    clamp_mark(conn)?;
    Ok(archived)
}

/// Keeps the mark at or below the highest span rowid left. SQLite gives a
/// new row the highest rowid in the table plus one, so once the rows at
/// the top are gone (packed here, or pruned by retention) new spans take
/// rowids the mark has passed, and a pass starting after the mark would
/// never see them. Called after every delete of span rows.
pub(super) fn clamp_mark(conn: &Connection) -> Result<(), DbError> {
    conn.execute(
        "UPDATE compaction_marks
         SET upto = min(upto, coalesce((SELECT max(rowid) FROM spans), 0))
         WHERE name = ?1",
        [MARK],
    )?;
    Ok(())
}

/// The archived spans of `trace_id`, in no particular order.
pub fn archived_spans(conn: &Connection, trace_id: &str) -> Result<Vec<SpanRecord>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT spans FROM span_archives WHERE trace_id = ?1")?;
    let blobs = stmt
        .query_map([trace_id], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut spans = Vec::new();
    for blob in blobs {
        for span in archive::unpack::<ArchivedSpan>(&blob)? {
            spans.push(span.into_record(trace_id)?);
        }
    }
    Ok(spans)
}

/// Deletes up to `batch` archives whose spans all ended before
/// `before_ns`; returns how many went.
pub fn prune_span_archives(
    conn: &Connection,
    before_ns: i64,
    batch: usize,
) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM span_archives WHERE rowid IN (
             SELECT rowid FROM span_archives WHERE end_ns < ?1 LIMIT ?2)",
        params![before_ns, batch as i64],
    )?)
}
