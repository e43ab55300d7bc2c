//! The rows both trace views are drawn from, and `dofs trace`'s text.
//!
//! - [`Waterfall`]: one row per span of an order's trace, in tree order,
//!   with its depth and where its bar sits in the trace;
//! - [`document_rows`]: X-Ray's segment documents flattened, each
//!   subsegment after its parent with its depth.
//!
//! `dofs trace` formats them as text here (the X-Ray view,
//! [`render_xray`]: one line per segment and subsegment; the full
//! waterfall, [`render_waterfall`], `--full`: one line per span, indented
//! under its parent, with start offset, duration, status and the key
//! attributes); the console formats the same rows as HTML.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::xray_view::{document_flags, document_kind};
use super::{OrderTrace, SpanRecord, XrayView};

/// An order's trace laid out as a waterfall.
#[derive(Debug, Clone, PartialEq)]
pub struct Waterfall<'a> {
    /// The earliest start of any span, in ns since the epoch (0 when the
    /// trace has no spans).
    pub start_ns: i64,
    /// From that start to the latest end of any span.
    pub duration_ns: i64,
    /// One per span, in the trace's (tree) order.
    pub rows: Vec<WaterfallRow<'a>>,
}

/// One span's row of a [`Waterfall`].
#[derive(Debug, Clone, PartialEq)]
pub struct WaterfallRow<'a> {
    pub span: &'a SpanRecord,
    /// Its depth in the tree (0 for a root).
    pub depth: usize,
    /// From the trace's start to the span's.
    pub offset_ns: i64,
    /// Where its bar starts and how long it is, as fractions of the
    /// trace's duration (taken as at least 1 ns, so a trace of instant
    /// spans does not divide by zero).
    pub left: f64,
    pub width: f64,
    /// Its parent, when that is not in this trace.
    pub missing_parent: Option<&'a str>,
}

impl<'a> Waterfall<'a> {
    /// The waterfall of `trace`, whose spans are already in tree order
    /// beside their depths.
    pub fn of(trace: &'a OrderTrace) -> Self {
        let start_ns = trace.spans.iter().map(|s| s.start).min().unwrap_or(0);
        let end_ns = trace.spans.iter().map(|s| s.end).max().unwrap_or(start_ns);
        let total = (end_ns - start_ns).max(1) as f64;
        let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
        let rows = trace
            .spans
            .iter()
            .zip(&trace.depths)
            .map(|(span, &depth)| WaterfallRow {
                span,
                depth,
                offset_ns: span.start - start_ns,
                left: (span.start - start_ns) as f64 / total,
                width: (span.end - span.start) as f64 / total,
                missing_parent: span
                    .parent_span_id
                    .as_deref()
                    .filter(|parent| !ids.contains(parent)),
            })
            .collect();
        Self {
            start_ns,
            duration_ns: end_ns - start_ns,
            rows,
        }
    }
}

/// One X-Ray document (a segment or a subsegment) as a row of the X-Ray
/// views. What only one view shows (http, aws, annotations, metadata,
/// links) it reads from `doc`.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRow<'a> {
    pub doc: &'a Value,
    /// 0 for a top-level document, one more per subsegment level.
    pub depth: usize,
    /// `segment` or `subsegment` ([`document_kind`]).
    pub kind: &'static str,
    pub name: &'a str,
    /// `fault`, `error`, `throttle` as X-Ray sets them ([`document_flags`]).
    pub flags: Vec<&'static str>,
    /// From the earliest top-level document's start to this one's, in ms.
    pub offset_ms: f64,
    pub duration_ms: f64,
    /// `AWS::Lambda::Function` for a function's segment.
    pub origin: Option<&'a str>,
    /// `aws` or `remote` for a subsegment that calls out.
    pub namespace: Option<&'a str>,
    /// The first exception's message.
    pub cause: Option<&'a str>,
    /// A top-level document's parent outside these documents: a segment
    /// AWS owns (Lambda's, Step Functions').
    pub foreign_parent: Option<&'a str>,
}

/// The view's documents flattened depth first, each subsegment after its
/// parent; empty when the order was not sampled.
pub fn document_rows(view: &XrayView) -> Vec<DocumentRow<'_>> {
    let start = view
        .documents
        .iter()
        .filter_map(|d| d["start_time"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let start = if start.is_finite() { start } else { 0.0 };
    let mut ids = HashSet::new();
    for doc in &view.documents {
        collect_ids(doc, &mut ids);
    }
    let mut rows = Vec::new();
    for doc in &view.documents {
        push_rows(&mut rows, doc, start, 0, &ids);
    }
    rows
}

fn collect_ids<'a>(doc: &'a Value, ids: &mut HashSet<&'a str>) {
    if let Some(id) = doc["id"].as_str() {
        ids.insert(id);
    }
    for child in doc["subsegments"].as_array().into_iter().flatten() {
        collect_ids(child, ids);
    }
}

fn push_rows<'a>(
    rows: &mut Vec<DocumentRow<'a>>,
    doc: &'a Value,
    start: f64,
    depth: usize,
    ids: &HashSet<&str>,
) {
    let at = doc["start_time"].as_f64().unwrap_or(start);
    let end = doc["end_time"].as_f64().unwrap_or(at);
    rows.push(DocumentRow {
        doc,
        depth,
        kind: document_kind(doc, depth),
        name: doc["name"].as_str().unwrap_or_default(),
        flags: document_flags(doc),
        offset_ms: (at - start) * 1000.0,
        duration_ms: (end - at) * 1000.0,
        origin: doc["origin"].as_str(),
        namespace: doc["namespace"].as_str(),
        cause: doc["cause"]["exceptions"][0]["message"].as_str(),
        foreign_parent: doc["parent_id"]
            .as_str()
            .filter(|parent| depth == 0 && !ids.contains(parent)),
    });
    for child in doc["subsegments"].as_array().into_iter().flatten() {
        push_rows(rows, child, start, depth + 1, ids);
    }
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
    let waterfall = Waterfall::of(trace);
    let _ = writeln!(
        out,
        "order {}  trace {}  {} span(s) over {}",
        trace.order_id,
        trace.trace_id,
        trace.spans.len(),
        format_duration(waterfall.duration_ns as f64 / 1e6)
    );
    let _ = writeln!(
        out,
        "{:>10} {:>10}  {:<6} SPAN",
        "START", "DURATION", "STATUS"
    );
    for row in &waterfall.rows {
        let span = row.span;
        let mut line = format!(
            "{:>10} {:>10}  {:<6} {}{} [{}]",
            format!("+{}", format_duration(row.offset_ns as f64 / 1e6)),
            format_duration(span.duration_ms),
            span.status,
            indent(row.depth),
            span.name,
            span.component,
        );
        for key in KEY_ATTRIBUTES {
            if let Some(value) = span.attributes.get(*key) {
                let _ = write!(line, " {key}={}", text(value));
            }
        }
        if span.attributes.get("cold_start") == Some(&Value::Bool(true)) {
            line.push_str(" cold_start");
        }
        if let Some(parent) = row.missing_parent {
            let _ = write!(line, " (parent {parent} not in this trace)");
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

/// A child's place under its parent in the text views.
fn indent(depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!("{}└─ ", "   ".repeat(depth - 1))
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One document's line: kind, name, origin or namespace, flags, what X-Ray
/// shows of it (http, aws, annotations, cause, metadata keys).
fn document_line(row: &DocumentRow<'_>) -> String {
    let doc = row.doc;
    let mut line = format!(
        "{:>10} {:>10}  {:<6} {}{} {}",
        format!("+{}", format_duration(row.offset_ms)),
        format_duration(row.duration_ms),
        if row.flags.is_empty() {
            "ok".to_owned()
        } else {
            row.flags.join(",")
        },
        indent(row.depth),
        row.kind,
        row.name,
    );
    if let Some(origin) = row.origin {
        let _ = write!(line, " ({origin})");
    }
    if let Some(namespace) = row.namespace {
        let _ = write!(line, " (namespace {namespace})");
    }
    if let Some(request) = doc["http"]["request"].as_object() {
        let method = request.get("method").map(text).unwrap_or_default();
        let _ = write!(line, " http={method}");
    }
    if let Some(status) = doc["http"]["response"].get("status") {
        let _ = write!(line, " status={}", text(status));
    }
    if let Some(aws) = doc["aws"].as_object() {
        for key in ["operation", "table_name", "queue_url", "retries"] {
            if let Some(value) = aws.get(key) {
                let _ = write!(line, " aws.{key}={}", text(value));
            }
        }
    }
    if let Some(annotations) = doc["annotations"].as_object() {
        for (key, value) in annotations {
            let _ = write!(line, " annotation.{key}={}", text(value));
        }
    }
    if let Some(cause) = row.cause {
        let _ = write!(line, " cause={cause:?}");
    }
    if let Some(metadata) = doc["metadata"]["default"].as_object() {
        let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
        let _ = write!(line, " metadata[{}]", keys.join(","));
    }
    if let Some(parent) = row.foreign_parent {
        let _ = write!(line, " (parent {parent}: AWS's own segment)");
    }
    if row.depth == 0 {
        if let Some(links) = doc["links"].as_array() {
            let _ = write!(line, " links={}", links.len());
        }
    }
    line
}

/// `dofs trace`'s default text: what X-Ray would hold of the order, one
/// line per segment (and, indented, per subsegment), or that it holds
/// nothing because the order was not sampled.
pub fn render_xray(view: &XrayView) -> String {
    let mut out = String::new();
    if !view.sampled {
        let _ = writeln!(
            out,
            "order {}  trace {}  not sampled: X-Ray holds no trace of this order (`dofs trace --full` shows the local spans)",
            view.order_id, view.trace_id
        );
        return out;
    }
    let _ = writeln!(
        out,
        "order {}  X-Ray trace {}  {} document(s), as X-Ray would hold them (`--full`: every local span)",
        view.order_id,
        view.trace_id,
        view.documents.len()
    );
    let _ = writeln!(
        out,
        "{:>10} {:>10}  {:<6} DOCUMENT",
        "START", "DURATION", "FLAGS"
    );
    for row in document_rows(view) {
        out.push_str(document_line(&row).trim_end());
        out.push('\n');
    }
    out
}
