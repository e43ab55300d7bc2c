//! Reading traces back: an order's trace (the one its execution was
//! started with), every span of a trace, and the tree order the waterfall
//! and the console show.

use std::collections::{HashMap, HashSet};

use dofs_telemetry::TraceHeader;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Map;

use super::SpanRecord;
use crate::store::DbError;

/// An order's trace as stored.
#[derive(Debug, Clone, Serialize)]
pub struct OrderTrace {
    pub order_id: String,
    pub trace_id: String,
    /// Ordered as the waterfall prints them: depth first, children by start.
    pub spans: Vec<SpanRecord>,
    /// The depth of each of `spans` in the tree (0 for a root).
    #[serde(skip)]
    pub depths: Vec<usize>,
    /// Other traces that touched the order (status reads, idempotent
    /// replays), by their root spans.
    pub other_traces: Vec<String>,
}

/// The columns [`SpanRow::from_row`] reads, in a `SELECT`.
const SPAN_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, component, order_id, start_ns, end_ns, status, attributes, events";

/// One `spans` row: the span, and its attributes and events still as the
/// JSON text they are stored as.
struct SpanRow {
    span: SpanRecord,
    attributes: String,
    events: String,
}

impl SpanRow {
    /// One row of `SELECT {SPAN_COLUMNS} FROM spans`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let start: i64 = row.get("start_ns")?;
        let end: i64 = row.get("end_ns")?;
        Ok(Self {
            span: SpanRecord {
                trace_id: row.get("trace_id")?,
                span_id: row.get("span_id")?,
                parent_span_id: row.get("parent_span_id")?,
                name: row.get("name")?,
                component: row.get("component")?,
                order_id: row.get("order_id")?,
                start,
                end,
                duration_ms: (end - start) as f64 / 1e6,
                status: row.get("status")?,
                attributes: Map::new(),
                events: Vec::new(),
            },
            attributes: row.get("attributes")?,
            events: row.get("events")?,
        })
    }

    /// The span with its attributes and events parsed.
    fn into_span(self) -> Result<SpanRecord, DbError> {
        let mut span = self.span;
        span.attributes = serde_json::from_str(&self.attributes)?;
        span.events = serde_json::from_str(&self.events)?;
        Ok(span)
    }
}

/// The order a stored span of `trace_id` names (the spans' own
/// `order_id`), for a trace id given without its order.
pub fn order_of_trace(conn: &Connection, trace_id: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .query_row(
            "SELECT order_id FROM spans WHERE trace_id = ?1 AND order_id IS NOT NULL LIMIT 1",
            [trace_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// The trace an order's journey belongs to: the one its workflow execution
/// was started with (`execution_header`, the execution's `traceHeader`,
/// which the caller reads: traces know nothing of Step Functions), else the
/// trace of its earliest stored span.
pub fn order_trace_id(
    conn: &Connection,
    order_id: &str,
    execution_header: Option<&str>,
) -> Result<Option<String>, DbError> {
    if let Some(root) = execution_header
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

/// Every stored span of `trace_id`, by start time, as the full view shows
/// them ([`super::convert::enrich`]).
pub fn load_trace(conn: &Connection, trace_id: &str) -> Result<Vec<SpanRecord>, DbError> {
    let mut spans = load_trace_raw(conn, trace_id)?;
    spans.iter_mut().for_each(super::convert::enrich);
    Ok(spans)
}

/// Every stored span of `trace_id` (rows and archives), by start time, as
/// stored.
pub fn load_trace_raw(conn: &Connection, trace_id: &str) -> Result<Vec<SpanRecord>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ?1"
    ))?;
    let rows = stmt
        .query_map([trace_id], SpanRow::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut spans = rows
        .into_iter()
        .map(SpanRow::into_span)
        .collect::<Result<Vec<_>, _>>()?;
    spans.extend(super::archive::archived_spans(conn, trace_id)?);
    spans.sort_by(|a, b| (a.start, &a.span_id).cmp(&(b.start, &b.span_id)));
    Ok(spans)
}

/// The order's trace, `None` when nothing about the order was traced
/// (`execution_header` as for [`order_trace_id`]).
pub fn order_trace(
    conn: &Connection,
    order_id: &str,
    execution_header: Option<&str>,
) -> Result<Option<OrderTrace>, DbError> {
    let Some(trace_id) = order_trace_id(conn, order_id, execution_header)? else {
        return Ok(None);
    };
    let raw = load_trace_raw(conn, &trace_id)?;
    order_trace_of(conn, order_id, trace_id, raw)
}

/// Both views of the order's trace from one read of its spans: the full
/// one ([`order_trace`]) and X-Ray's ([`super::order_xray_view`]).
pub fn order_traces(
    conn: &Connection,
    order_id: &str,
    execution_header: Option<&str>,
) -> Result<(Option<OrderTrace>, Option<super::XrayView>), DbError> {
    let Some(trace_id) = order_trace_id(conn, order_id, execution_header)? else {
        let xray = super::xray_view::xray_view_of(order_id, execution_header, None, &[]);
        return Ok((None, xray));
    };
    let raw = load_trace_raw(conn, &trace_id)?;
    let xray = super::xray_view::xray_view_of(order_id, execution_header, Some(&trace_id), &raw);
    Ok((order_trace_of(conn, order_id, trace_id, raw)?, xray))
}

/// [`order_trace`] of `raw`, the stored spans of `trace_id`.
fn order_trace_of(
    conn: &Connection,
    order_id: &str,
    trace_id: String,
    mut spans: Vec<SpanRecord>,
) -> Result<Option<OrderTrace>, DbError> {
    spans.iter_mut().for_each(super::convert::enrich);
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
    let (depths, spans) = tree_order(spans).into_iter().unzip();
    Ok(Some(OrderTrace {
        order_id: order_id.to_owned(),
        trace_id,
        spans,
        depths,
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
