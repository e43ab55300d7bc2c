//! The executions and their history in SQLite (`executions`,
//! `execution_events`, and `history_archives`, where a closed execution's
//! events are packed by the compaction service): the rows, their decoding,
//! and the reads `DescribeExecution`, `GetExecutionHistory` and the trace
//! lookup need.

use chrono::{DateTime, Utc};
use dofs_core::ExecutionStatus;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::store::{archive, decoded, decoded_opt, CachedStatements, DbError};
use dofs_asl::{Cursor, HistoryEvent, HistoryEventKind};

/// Deletes the history of up to `batch` executions that closed before
/// `before` (Step Functions keeps a closed execution's history for a
/// limited time as well): their event rows and their archives. The
/// execution rows stay, so an order's final status and output can still be
/// described. Returns the event rows and the archives deleted.
pub fn prune_history(
    conn: &Connection,
    before: DateTime<Utc>,
    batch: usize,
) -> Result<(usize, usize), DbError> {
    let before = before.to_rfc3339();
    let rows = conn.execute(
        "DELETE FROM execution_events WHERE execution IN (
             SELECT name FROM executions
             WHERE status != 'RUNNING' AND stopped_at < ?1
               AND EXISTS (SELECT 1 FROM execution_events WHERE execution = name)
             LIMIT ?2)",
        params![before, batch as i64],
    )?;
    // Archives are made as executions close, so the oldest have the lowest
    // rowids and the scan meets them first.
    let archives = conn.execute(
        "DELETE FROM history_archives WHERE rowid IN (
             SELECT a.rowid FROM history_archives a JOIN executions e ON e.name = a.execution
             WHERE e.status != 'RUNNING' AND e.stopped_at < ?1
             ORDER BY a.rowid LIMIT ?2)",
        params![before, batch as i64],
    )?;
    Ok((rows, archives))
}

/// A closed execution's history rows packed into one archive, ready to
/// replace them ([`store_packed_histories`]).
pub struct PackedHistory {
    execution: String,
    first_seq: i64,
    last_seq: i64,
    events: Vec<u8>,
}

/// Packs the history rows of up to `batch` closed executions (run on a
/// reader: the compression stays off the writer thread). A closed
/// execution gets no more events, so the rows read are the rows replaced.
pub fn pack_closed_histories(
    conn: &Connection,
    batch: usize,
) -> Result<Vec<PackedHistory>, DbError> {
    // The event table holds only what is not archived yet, so this walks
    // a small index, not every execution.
    let mut closed = conn.prepare_cached(
        "SELECT ev.execution FROM (SELECT DISTINCT execution FROM execution_events) ev
         JOIN executions e ON e.name = ev.execution
         WHERE e.status != 'RUNNING' LIMIT ?1",
    )?;
    let names = closed
        .query_map([batch as i64], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    names
        .into_iter()
        .map(|execution| {
            let events = event_rows(conn, &execution)?;
            // Gone between the two reads (retention removed them): there is
            // nothing left to pack.
            let (Some(first), Some(last)) = (events.first(), events.last()) else {
                return Ok(None);
            };
            Ok(Some(PackedHistory {
                first_seq: first.seq,
                last_seq: last.seq,
                events: archive::pack(&events)?,
                execution,
            }))
        })
        .filter_map(Result::transpose)
        .collect()
}

/// History events of closed executions still waiting to be packed.
pub fn unpacked_closed_events(conn: &Connection) -> Result<u64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM execution_events ev
         JOIN executions e ON e.name = ev.execution WHERE e.status != 'RUNNING'",
        [],
        |r| r.get(0),
    )?)
}

/// Puts each archive in place of the rows it holds; returns the events
/// archived.
pub fn store_packed_histories(
    conn: &Connection,
    packed: &[PackedHistory],
) -> Result<usize, DbError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO history_archives(execution, first_seq, last_seq, events) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut delete = conn.prepare_cached(
        "DELETE FROM execution_events WHERE execution = ?1 AND seq BETWEEN ?2 AND ?3",
    )?;
    let mut archived = 0;
    for p in packed {
        let deleted = delete.execute(params![p.execution, p.first_seq, p.last_seq])?;
        // Rows retention removed meanwhile are not brought back.
        if deleted > 0 {
            insert.execute(params![p.execution, p.first_seq, p.last_seq, p.events])?;
            archived += deleted;
        }
    }
    Ok(archived)
}

/// The status as Step Functions names it (`RUNNING`, `TIMED_OUT`, ...).
pub fn status_name(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "RUNNING",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
    }
}

/// One execution as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutionRecord {
    pub name: String,
    pub status: ExecutionStatus,
    pub input: Value,
    pub trace_header: Option<String>,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    #[serde(skip)]
    pub cursor: Option<Cursor>,
    /// When a RUNNING execution is due to run its cursor (Unix ms).
    #[serde(skip)]
    pub next_run_ms: Option<i64>,
}

/// The X-Ray trace header execution `name` was started with (the order's
/// trace), if it was started with one.
pub fn trace_header(conn: &Connection, name: &str) -> Result<Option<String>, DbError> {
    let header: Option<Option<String>> = conn
        .query_row(
            "SELECT trace_header FROM executions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(header.flatten())
}

/// The execution whose `traceHeader` has `trace_id` as its `Root`: the
/// order an X-Ray trace id belongs to. A scan, for one CLI lookup.
pub fn execution_of_trace(conn: &Connection, trace_id: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .query_row(
            "SELECT name FROM executions WHERE instr(trace_header, 'Root=' || ?1) > 0 LIMIT 1",
            [trace_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The columns [`ExecutionRecord::from_row`] reads, in a `SELECT`.
const EXECUTION_COLUMNS: &str = "name, status, input, trace_header, cursor, started_at, \
     stopped_at, output, error, cause, next_run_ms";

impl ExecutionRecord {
    /// One row of `SELECT {EXECUTION_COLUMNS} FROM executions`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get("name")?,
            status: decoded(row, "status", |t| {
                serde_json::from_value(Value::String(t.to_owned()))
            })?,
            input: decoded(row, "input", |t| serde_json::from_str(t))?,
            trace_header: row.get("trace_header")?,
            started_at: decoded(row, "started_at", parse_rfc3339)?,
            stopped_at: decoded_opt(row, "stopped_at", parse_rfc3339)?,
            output: decoded_opt(row, "output", |t| serde_json::from_str(t))?,
            error: row.get("error")?,
            cause: row.get("cause")?,
            cursor: decoded_opt(row, "cursor", |t| serde_json::from_str(t))?,
            next_run_ms: row.get("next_run_ms")?,
        })
    }
}

fn parse_rfc3339(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// Reads one execution, by name (read by `dofs order`, the console and the
/// engine before each drive).
pub fn load_execution(conn: &Connection, name: &str) -> Result<Option<ExecutionRecord>, DbError> {
    Ok(conn
        .query_row_cached(
            &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE name = ?1"),
            [name],
            ExecutionRecord::from_row,
        )
        .optional()?)
}

/// The history events of one execution, oldest first: its archives, then
/// its rows.
pub fn load_events(conn: &Connection, name: &str) -> Result<Vec<Value>, DbError> {
    let mut archives = conn.prepare_cached(
        "SELECT events FROM history_archives WHERE execution = ?1 ORDER BY first_seq",
    )?;
    let blobs = archives
        .query_map([name], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut events = Vec::new();
    for blob in blobs {
        events.extend(archive::unpack::<StoredEvent>(&blob)?);
    }
    events.extend(event_rows(conn, name)?);
    events.sort_by_key(|e| e.seq);
    events.into_iter().map(StoredEvent::into_json).collect()
}

/// The history rows of one execution, oldest first.
fn event_rows(conn: &Connection, name: &str) -> Result<Vec<StoredEvent>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, kind, state, at, detail FROM execution_events WHERE execution = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([name], StoredEvent::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One history event as stored: an `execution_events` row, or one record
/// of a `history_archives` blob (the same columns).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEvent {
    seq: i64,
    kind: String,
    state: Option<String>,
    at: String,
    detail: Box<RawValue>,
}

impl StoredEvent {
    /// One row of `SELECT seq, kind, state, at, detail FROM execution_events`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get("seq")?,
            kind: row.get("kind")?,
            state: row.get("state")?,
            at: row.get("at")?,
            detail: decoded(row, "detail", |t| RawValue::from_string(t.to_owned()))?,
        })
    }

    /// The event as `GetExecutionHistory`-like JSON.
    fn into_json(self) -> Result<Value, DbError> {
        Ok(json!({
            "id": self.seq,
            "type": self.kind,
            "state": self.state,
            "timestamp": self.at,
            "detail": serde_json::from_str::<Value>(self.detail.get())?,
        }))
    }
}

/// A history event ready for its row. The JSON is made by the caller, off
/// the writer thread: every write waits for that thread, so nothing that
/// can be done before it is done on it.
pub(super) struct EventRow {
    kind: HistoryEventKind,
    state: Option<String>,
    at: String,
    detail: String,
}

impl EventRow {
    pub(super) fn all(events: Vec<HistoryEvent>) -> Vec<Self> {
        events
            .into_iter()
            .map(|event| Self {
                at: event.at.to_rfc3339(),
                kind: event.kind,
                state: event.state,
                detail: String::from(Box::<str>::from(event.detail)),
            })
            .collect()
    }
}

pub(super) fn append_events(
    conn: &Connection,
    name: &str,
    events: &[EventRow],
) -> Result<(), DbError> {
    let mut seq: i64 = conn.query_row_cached(
        "SELECT coalesce(max(seq), 0) FROM execution_events WHERE execution = ?1",
        [name],
        |r| r.get(0),
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO execution_events(execution, seq, kind, state, at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for event in events {
        seq += 1;
        insert.execute(params![
            name,
            seq,
            event.kind.as_str(),
            event.state,
            event.at,
            event.detail
        ])?;
    }
    Ok(())
}
