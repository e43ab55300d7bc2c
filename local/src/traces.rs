//! Traces of the local runtime: the spans of every order stored in the data
//! directory, and `dofs trace <order_id>` reading them back as a waterfall.
//!
//! The path of a span, as on AWS: the gateway span (HTTP APIs have no X-Ray
//! support, so the local gateway plays that part) → api_handler's invocation
//! and its submit span → the workflow's `traceHeader` → one span per state
//! attempt ([`state_span`]) → the Lambda task's invocation (its
//! `xray_trace_id` is Root + Parent = the state span) and the SQS send
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

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use dofs_telemetry::traces::{SinkError, ORDER_ID_ANNOTATION};
use dofs_telemetry::{SpanData, SpanSink, TraceHeader};
use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{Array, Value as OtelValue};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{watch, Notify};
use tracing::field::Empty;
use tracing::Span;

use crate::asl::HistoryEvent;
use crate::db::{Db, DbError};
use crate::functions::FunctionName;

/// The `function` of the gateway's spans.
pub const GATEWAY_FUNCTION: &str = "api_gateway";
/// The `function` of the workflow's state spans.
pub const STATES_FUNCTION: &str = "step_functions";

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
    /// The function (or `api_gateway`, `step_functions`) that did the work.
    pub function: String,
    pub order_id: Option<String>,
    #[serde(serialize_with = "as_rfc3339")]
    pub start: i64,
    #[serde(serialize_with = "as_rfc3339")]
    pub end: i64,
    pub duration_ms: f64,
    /// `ok`, `warn` (a WARN event: a retryable failure, a dead letter) or `error`.
    pub status: String,
    pub attributes: Map<String, Value>,
    /// Events inside the span (WARN and ERROR log lines), with their fields.
    pub events: Vec<Value>,
}

fn as_rfc3339<S: serde::Serializer>(ns: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ns))
}

fn rfc3339(ns: i64) -> String {
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn unix_ns(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn span_hex(id: SpanId) -> String {
    format!("{id:016x}")
}

fn json_value(value: &OtelValue) -> Value {
    match value {
        OtelValue::Bool(b) => Value::from(*b),
        OtelValue::I64(n) => Value::from(*n),
        OtelValue::F64(f) => Value::from(*f),
        OtelValue::String(s) => Value::from(s.as_str()),
        OtelValue::Array(Array::Bool(v)) => Value::from(v.clone()),
        OtelValue::Array(Array::I64(v)) => Value::from(v.clone()),
        OtelValue::Array(Array::F64(v)) => Value::from(v.clone()),
        OtelValue::Array(Array::String(v)) => {
            Value::from(v.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>())
        }
        other => Value::from(other.to_string()),
    }
}

/// Attributes a record keeps in columns (trace_id, function) or under
/// another name (cold_start, request_id): not stored twice.
const REDUNDANT_ATTRIBUTES: &[&str] = &[
    "trace_id",
    "function",
    "faas.coldstart",
    "faas.invocation_id",
];

/// Converts one flush's spans into records. The function of a span that
/// does not name one is its nearest local ancestor's in the batch, else the
/// span it links to (an SQS record span links its batch invocation), else
/// the `<function>.` prefix of its name. A span without an order takes the
/// order of its trace when the batch names exactly one (api_handler's
/// invocation span is the parent, not a child, of the span that learns the
/// order id).
pub fn records_from_spans(spans: Vec<SpanData>) -> Vec<SpanRecord> {
    let attr = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
    };
    let by_id: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_context.span_id(), i))
        .collect();
    let function_of = |index: usize| -> String {
        let mut at = index;
        for _ in 0..64 {
            let span = &spans[at];
            if let Some(function) = attr(span, "function") {
                return function;
            }
            match (!span.parent_span_is_remote)
                .then(|| by_id.get(&span.parent_span_id))
                .flatten()
            {
                Some(&parent) => at = parent,
                None => break,
            }
        }
        let span = &spans[index];
        if let Some(function) = span
            .links
            .iter()
            .filter_map(|link| by_id.get(&link.span_context.span_id()))
            .find_map(|&i| attr(&spans[i], "function"))
        {
            return function;
        }
        span.name
            .split_once('.')
            .and_then(|(prefix, _)| FunctionName::resolve(prefix))
            .map_or_else(|| "dofs".to_owned(), |f| f.as_str().to_owned())
    };
    let mut orders_by_trace: HashMap<String, HashSet<String>> = HashMap::new();
    let mut records: Vec<SpanRecord> = Vec::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        let trace_id = dofs_telemetry::traces::xray_trace_id(span.span_context.trace_id());
        let order_id = attr(span, ORDER_ID_ANNOTATION);
        if let Some(order) = &order_id {
            orders_by_trace
                .entry(trace_id.clone())
                .or_default()
                .insert(order.clone());
        }
        let mut attributes: Map<String, Value> = span
            .attributes
            .iter()
            .filter(|kv| !REDUNDANT_ATTRIBUTES.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.as_str().to_owned(), json_value(&kv.value)))
            .collect();
        let mut warned = false;
        let events: Vec<Value> = span
            .events
            .iter()
            .map(|event| {
                let fields: Map<String, Value> = event
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.as_str().to_owned(), json_value(&kv.value)))
                    .collect();
                let level = fields.get("level").and_then(Value::as_str).unwrap_or("");
                if matches!(level, "WARN" | "ERROR") {
                    warned = true;
                    // The failure reason the handler logged becomes an
                    // attribute of the attempt, where the waterfall shows it.
                    if !attributes.contains_key("failure.reason") {
                        if let Some(reason) = fields
                            .get("reason")
                            .or_else(|| fields.get("error"))
                            .or_else(|| fields.get("error_type"))
                        {
                            attributes.insert("failure.reason".into(), reason.clone());
                        }
                    }
                }
                json!({
                    "name": event.name,
                    "time": rfc3339(unix_ns(event.timestamp)),
                    "attributes": fields,
                })
            })
            .collect();
        let status = match &span.status {
            Status::Error { .. } => "error",
            _ if warned => "warn",
            _ => "ok",
        };
        let parent = span.parent_span_id;
        let start = unix_ns(span.start_time);
        let end = unix_ns(span.end_time).max(start);
        records.push(SpanRecord {
            trace_id,
            span_id: span_hex(span.span_context.span_id()),
            parent_span_id: (parent != SpanId::INVALID).then(|| span_hex(parent)),
            name: span.name.to_string(),
            function: function_of(index),
            order_id,
            start,
            end,
            duration_ms: (end - start) as f64 / 1e6,
            status: status.to_owned(),
            attributes,
            events,
        });
    }
    for record in records.iter_mut().filter(|r| r.order_id.is_none()) {
        if let Some(orders) = orders_by_trace.get(&record.trace_id) {
            if orders.len() == 1 {
                let order = orders.iter().next().cloned();
                if let Some(order) = &order {
                    record
                        .attributes
                        .insert(ORDER_ID_ANNOTATION.into(), Value::from(order.as_str()));
                }
                record.order_id = order;
            }
        }
    }
    records
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
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            flush();
            if let Err(err) = self.write_pending(&db).await {
                tracing::error!(error = %err, "could not store spans; they are dropped");
            }
        }
    }
}

fn insert_spans(conn: &Connection, spans: &[(SpanRecord, String, String)]) -> Result<(), DbError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO spans(trace_id, span_id, parent_span_id, name, function, order_id,
             start_ns, end_ns, status, attributes, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (s, attributes, events) in spans {
        insert.execute(params![
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.name,
            s.function,
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

/// The span of one state attempt of an execution: named after the state,
/// child of the execution's trace header, tagged with the order (the
/// execution name is the order id). Record the outcome with
/// [`finish_state_span`].
pub fn state_span(execution: &str, state: &str, attempt: u32, trace_header: Option<&str>) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "state",
        otel.name = %state,
        otel.status_code = Empty,
        function = STATES_FUNCTION,
        execution = %execution,
        state = %state,
        state.type = Empty,
        // i64: tracing-opentelemetry turns unsigned fields into strings.
        attempt = i64::from(attempt),
        error = Empty,
        retry.delay_ms = Empty,
    );
    if let Some(header) = trace_header.and_then(|h| h.parse::<TraceHeader>().ok()) {
        dofs_telemetry::set_parent_from_header(&span, &header);
    }
    dofs_telemetry::record_order_id(&span, execution);
    span
}

/// The header the state's task passes on (Root + Parent = the state span),
/// or `None` when spans are not traced (no telemetry installed).
pub fn task_trace_header(state_span: &Span) -> Option<String> {
    state_span
        .in_scope(dofs_telemetry::outgoing_trace_header)
        .map(|h| h.to_string())
}

/// Records on a state span what the step's history says: the state type,
/// the error of a failed attempt (and the span's error status), the retry
/// back-off.
pub fn finish_state_span(span: &Span, events: &[HistoryEvent]) {
    let state_type = events.iter().find_map(|e| {
        if e.kind.starts_with("Task") {
            Some("Task")
        } else {
            e.kind
                .strip_suffix("StateEntered")
                .or_else(|| e.kind.strip_suffix("StateExited"))
        }
    });
    if let Some(state_type) = state_type {
        span.record("state.type", state_type);
    }
    for event in events {
        match event.kind.as_str() {
            "TaskFailed" | "TaskTimedOut" | "ExecutionFailed" | "ExecutionTimedOut" => {
                if let Some(error) = event.detail_value().get("error").and_then(Value::as_str) {
                    span.record("error", error);
                    span.record("otel.status_code", "ERROR");
                }
            }
            "TaskRetryScheduled" => {
                if let Some(delay) = event.detail_value().get("delay_ms").and_then(Value::as_i64) {
                    span.record("retry.delay_ms", delay);
                }
            }
            _ => {}
        }
    }
}

/// An order's trace as stored.
#[derive(Debug, Clone, Serialize)]
pub struct OrderTrace {
    pub order_id: String,
    pub trace_id: String,
    /// Ordered as the waterfall prints them: depth first, children by start.
    pub spans: Vec<SpanRecord>,
    /// Other traces that touched the order (status reads, idempotent
    /// replays), by their root spans.
    pub other_traces: Vec<String>,
}

const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, function, order_id, start_ns, end_ns, status, attributes, events";

fn span_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(SpanRecord, String, String)> {
    let start: i64 = r.get(6)?;
    let end: i64 = r.get(7)?;
    Ok((
        SpanRecord {
            trace_id: r.get(0)?,
            span_id: r.get(1)?,
            parent_span_id: r.get(2)?,
            name: r.get(3)?,
            function: r.get(4)?,
            order_id: r.get(5)?,
            start,
            end,
            duration_ms: (end - start) as f64 / 1e6,
            status: r.get(8)?,
            attributes: Map::new(),
            events: Vec::new(),
        },
        r.get(9)?,
        r.get(10)?,
    ))
}

/// The trace an order's journey belongs to: the one its workflow execution
/// was started with, else the trace of its earliest stored span.
pub fn order_trace_id(conn: &Connection, order_id: &str) -> Result<Option<String>, DbError> {
    let header: Option<Option<String>> = conn
        .query_row(
            "SELECT trace_header FROM executions WHERE name = ?1",
            [order_id],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(root) = header
        .flatten()
        .and_then(|h| h.parse::<TraceHeader>().ok())
        .map(|h| h.root)
    {
        return Ok(Some(root));
    }
    Ok(conn
        .query_row(
            "SELECT trace_id FROM spans WHERE order_id = ?1 AND parent_span_id IS NULL
             ORDER BY start_ns LIMIT 1",
            [order_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Every stored span of `trace_id`, by start time.
pub fn load_trace(conn: &Connection, trace_id: &str) -> Result<Vec<SpanRecord>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ?1 ORDER BY start_ns, span_id"
    ))?;
    let rows = stmt
        .query_map([trace_id], span_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(mut span, attributes, events)| {
            span.attributes = serde_json::from_str(&attributes)?;
            span.events = serde_json::from_str(&events)?;
            Ok(span)
        })
        .collect()
}

/// The order's trace, `None` when nothing about the order was traced.
pub fn order_trace(conn: &Connection, order_id: &str) -> Result<Option<OrderTrace>, DbError> {
    let Some(trace_id) = order_trace_id(conn, order_id)? else {
        return Ok(None);
    };
    let spans = load_trace(conn, &trace_id)?;
    let mut stmt = conn.prepare(
        "SELECT trace_id FROM spans
         WHERE order_id = ?1 AND parent_span_id IS NULL AND trace_id != ?2 ORDER BY start_ns",
    )?;
    let other_traces = stmt
        .query_map(params![order_id, trace_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if spans.is_empty() && other_traces.is_empty() {
        return Ok(None);
    }
    Ok(Some(OrderTrace {
        order_id: order_id.to_owned(),
        trace_id,
        spans: tree_order(spans).into_iter().map(|(_, s)| s).collect(),
        other_traces,
    }))
}

/// Depth-first order with each span's depth: roots (no parent, or a parent
/// not in the trace) and siblings by start time.
pub fn tree_order(spans: Vec<SpanRecord>) -> Vec<(usize, SpanRecord)> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<Option<String>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s
            .parent_span_id
            .as_deref()
            .filter(|p| ids.contains(p) && *p != s.span_id)
            .map(str::to_owned);
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| (spans[i].start, spans[i].end));
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push((i, depth));
        if let Some(kids) = children.get(&Some(spans[i].span_id.clone())) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    // A parent cycle (never produced by us) would leave spans unvisited.
    order.extend((0..spans.len()).filter(|&i| !seen[i]).map(|i| (i, 0)));
    let mut slots: Vec<Option<SpanRecord>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(i, depth)| slots[i].take().map(|s| (depth, s)))
        .collect()
}

/// Attributes worth a place on the waterfall line, in this order.
const KEY_ATTRIBUTES: &[&str] = &[
    "state.type",
    "attempt",
    "receive_count",
    "http.method",
    "http.route",
    "http.status",
    "error",
    "failure.reason",
    "retry.delay_ms",
];

fn format_duration(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// `dofs trace`'s text: a header, then one line per span — start offset,
/// duration, status, the span indented under its parent with its function
/// and key attributes.
pub fn render_waterfall(trace: &OrderTrace) -> String {
    let mut out = String::new();
    let start = trace
        .spans
        .iter()
        .map(|s| s.start)
        .min()
        .unwrap_or_default();
    let end = trace.spans.iter().map(|s| s.end).max().unwrap_or_default();
    let _ = writeln!(
        out,
        "order {}  trace {}  {} span(s) over {}",
        trace.order_id,
        trace.trace_id,
        trace.spans.len(),
        format_duration((end - start) as f64 / 1e6)
    );
    let _ = writeln!(
        out,
        "{:>10} {:>10}  {:<6} SPAN",
        "START", "DURATION", "STATUS"
    );
    let depths = depths(&trace.spans);
    let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    for (span, depth) in trace.spans.iter().zip(depths) {
        let indent = if depth == 0 {
            String::new()
        } else {
            format!("{}└─ ", "   ".repeat(depth - 1))
        };
        let mut line = format!(
            "{:>10} {:>10}  {:<6} {indent}{} [{}]",
            format!("+{}", format_duration((span.start - start) as f64 / 1e6)),
            format_duration(span.duration_ms),
            span.status,
            span.name,
            span.function,
        );
        for key in KEY_ATTRIBUTES {
            if let Some(value) = span.attributes.get(*key) {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(line, " {key}={text}");
            }
        }
        if span.attributes.get("cold_start") == Some(&Value::Bool(true)) {
            line.push_str(" cold_start");
        }
        if let Some(parent) = &span.parent_span_id {
            if !ids.contains(parent.as_str()) {
                let _ = write!(line, " (parent {parent} not in this trace)");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !trace.other_traces.is_empty() {
        let _ = writeln!(
            out,
            "also in {} other trace(s): status reads, replays",
            trace.other_traces.len()
        );
    }
    out
}

/// The depth of each span of a list in [`tree_order`].
fn depths(spans: &[SpanRecord]) -> Vec<usize> {
    let mut depth_of: HashMap<&str, usize> = HashMap::new();
    spans
        .iter()
        .map(|s| {
            let depth = s
                .parent_span_id
                .as_deref()
                .and_then(|p| depth_of.get(p))
                .map_or(0, |d| d + 1);
            depth_of.insert(s.span_id.as_str(), depth);
            depth
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Event, SpanContext, SpanKind, TraceFlags, TraceId, TraceState};
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::borrow::Cow;

    fn span(id: u64, parent: u64, name: &'static str, attrs: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x5759e988bd862e3fe1be46a994272793u128),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: UNIX_EPOCH + Duration::from_millis(1_000 + id),
            end_time: UNIX_EPOCH + Duration::from_millis(1_010 + id),
            attributes: attrs,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn records_inherit_function_and_order_and_promote_failure_reasons() {
        let invocation = span(
            1,
            0,
            "fulfill_order",
            vec![KeyValue::new("function", "fulfill_order")],
        );
        let mut record = span(
            2,
            1,
            "fulfill_order.record",
            vec![
                KeyValue::new(ORDER_ID_ANNOTATION, "o-1"),
                KeyValue::new("receive_count", 2i64),
            ],
        );
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "fulfilment failed",
            UNIX_EPOCH + Duration::from_millis(1_005),
            vec![
                KeyValue::new("level", "WARN"),
                KeyValue::new("reason", "simulated fulfilment failure"),
            ],
            0,
        ));
        record.events = events;
        let child = span(3, 2, "update_status", vec![]);
        let records = records_from_spans(vec![child, record, invocation]);
        let by_name = |n: &str| records.iter().find(|r| r.name == n).unwrap();
        assert_eq!(by_name("update_status").function, "fulfill_order");
        assert_eq!(by_name("update_status").order_id.as_deref(), Some("o-1"));
        assert_eq!(
            by_name("fulfill_order").order_id.as_deref(),
            Some("o-1"),
            "the trace names one order"
        );
        let record = by_name("fulfill_order.record");
        assert_eq!(record.status, "warn");
        assert_eq!(
            record.attributes["failure.reason"],
            "simulated fulfilment failure"
        );
        assert_eq!(record.attributes["receive_count"], 2);
        assert_eq!(record.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(record.parent_span_id.as_deref(), Some("0000000000000001"));
        assert_eq!(by_name("fulfill_order").parent_span_id, None);
        assert_eq!(record.duration_ms, 10.0);
    }

    #[test]
    fn a_trace_with_two_orders_lends_neither_and_names_fall_back_to_their_prefix() {
        let records = records_from_spans(vec![
            span(1, 0, "batch", vec![]),
            span(
                2,
                1,
                "validator.validate",
                vec![KeyValue::new(ORDER_ID_ANNOTATION, "a")],
            ),
            span(3, 1, "x", vec![KeyValue::new(ORDER_ID_ANNOTATION, "b")]),
        ]);
        assert_eq!(records[0].order_id, None);
        assert_eq!(records[1].function, "validator");
        assert_eq!(records[2].function, "dofs");
        let mut error = span(4, 0, "y", vec![]);
        error.status = Status::error("boom");
        assert_eq!(records_from_spans(vec![error])[0].status, "error");
    }

    fn rec(id: &str, parent: Option<&str>, start: i64) -> SpanRecord {
        SpanRecord {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_owned),
            name: id.into(),
            function: "f".into(),
            order_id: Some("o".into()),
            start,
            end: start + 1_000_000,
            duration_ms: 1.0,
            status: "ok".into(),
            attributes: Map::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn waterfall_is_depth_first_with_children_by_start_and_flags_missing_parents() {
        let spans = vec![
            rec("c2", Some("r"), 30),
            rec("r", None, 0),
            rec("c1", Some("r"), 10),
            rec("g1", Some("c1"), 20),
            rec("lost", Some("gone"), 5),
        ];
        let ordered = tree_order(spans);
        let names: Vec<(usize, &str)> =
            ordered.iter().map(|(d, s)| (*d, s.name.as_str())).collect();
        assert_eq!(
            names,
            [(0, "r"), (1, "c1"), (2, "g1"), (1, "c2"), (0, "lost")]
        );
        let trace = OrderTrace {
            order_id: "o".into(),
            trace_id: "t".into(),
            spans: ordered.into_iter().map(|(_, s)| s).collect(),
            other_traces: vec!["t2".to_owned()],
        };
        let text = render_waterfall(&trace);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 5 + 1, "{text}");
        assert!(lines[3].contains("└─ c1 [f]"), "{text}");
        assert!(lines[4].contains("   └─ g1 [f]"), "{text}");
        assert!(lines[6].contains("lost") && lines[6].contains("not in this trace"));
        assert!(lines[7].contains("1 other trace"));
    }

    #[test]
    fn state_spans_carry_type_attempt_error_and_the_execution_trace() {
        use dofs_telemetry::{MetricsExport, TelemetryConfig, TraceExport};
        let store = SpanStore::new();
        let config = TelemetryConfig {
            function_name: "dofs".into(),
            log_level: "info".into(),
            traces: TraceExport::Custom(store.clone()),
            metrics: MetricsExport::Disabled,
        };
        let (telemetry, _guard) =
            dofs_telemetry::init_scoped_with_writer(config, std::io::sink).unwrap();
        let at = Utc::now();
        let event = |kind: &str, detail: Value| {
            HistoryEvent::new(kind, Some("StoreOrder".into()), at, &detail)
        };
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let span = state_span("o-1", "StoreOrder", 2, Some(header));
        let outgoing: TraceHeader = task_trace_header(&span).unwrap().parse().unwrap();
        finish_state_span(
            &span,
            &[
                event("TaskScheduled", json!({})),
                event("TaskFailed", json!({"error": "TransientError"})),
                event("TaskRetryScheduled", json!({"delay_ms": 200})),
            ],
        );
        drop(span);
        telemetry.flush();
        let records = store.pending.lock().unwrap().clone();
        assert_eq!(records.len(), 1, "{records:#?}");
        let r = &records[0];
        assert_eq!(r.name, "StoreOrder");
        assert_eq!(r.function, STATES_FUNCTION);
        assert_eq!(r.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(r.parent_span_id.as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(
            Some(&r.span_id),
            outgoing.parent.as_ref(),
            "the task's parent is the state"
        );
        assert_eq!(outgoing.root, r.trace_id);
        assert_eq!(r.status, "error");
        assert_eq!(r.order_id.as_deref(), Some("o-1"));
        assert_eq!(r.attributes["state.type"], "Task");
        assert_eq!(r.attributes["attempt"], 2);
        assert_eq!(r.attributes["error"], "TransientError");
        assert_eq!(r.attributes["retry.delay_ms"], 200);
    }

    #[tokio::test]
    async fn stored_spans_read_back_as_the_orders_trace_beside_its_status_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let store = SpanStore::new();
        let journey = records_from_spans(vec![
            span(
                1,
                0,
                "api_gateway",
                vec![KeyValue::new("function", "api_gateway")],
            ),
            span(
                2,
                1,
                "api_handler.submit_order",
                vec![KeyValue::new(ORDER_ID_ANNOTATION, "o-1")],
            ),
        ]);
        let mut read = records_from_spans(vec![span(
            9,
            0,
            "api_handler.get_order",
            vec![KeyValue::new(ORDER_ID_ANNOTATION, "o-1")],
        )]);
        read[0].trace_id = "1-00000000-000000000000000000000002".into();
        store
            .pending
            .lock()
            .unwrap()
            .extend(journey.iter().cloned().chain(read));
        assert_eq!(store.write_pending(&db).await.unwrap(), 3);
        assert_eq!(store.write_pending(&db).await.unwrap(), 0, "nothing twice");
        assert_eq!(store.stored(), 3);

        let reader = Db::open_read_only(dir.path()).unwrap();
        // No execution row: the order's earliest span names its trace.
        let trace = order_trace(reader.conn(), "o-1").unwrap().unwrap();
        assert_eq!(trace.trace_id, journey[0].trace_id);
        assert_eq!(trace.spans, journey, "stored and read back unchanged");
        assert_eq!(trace.other_traces, ["1-00000000-000000000000000000000002"]);
        assert!(order_trace(reader.conn(), "o-2").unwrap().is_none());
    }
}
