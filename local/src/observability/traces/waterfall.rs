//! `dofs trace`'s text: the X-Ray view ([`render_xray`]: one line per
//! segment and subsegment, as X-Ray holds them) and the full waterfall
//! ([`render_waterfall`], `--full`: one line per span, indented under its
//! parent, with start offset, duration, status and the key attributes).

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::xray_view::{document_flags, document_kind};
use super::{OrderTrace, XrayView};

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
    let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    for (span, &depth) in trace.spans.iter().zip(&trace.depths) {
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
            span.component,
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

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One document's line: kind, name, origin or namespace, flags, what X-Ray
/// shows of it (http, aws, annotations, cause, metadata keys).
fn document_line(doc: &Value, start: f64, depth: usize, ids: &HashSet<String>) -> String {
    let at = doc["start_time"].as_f64().unwrap_or(start);
    let end = doc["end_time"].as_f64().unwrap_or(at);
    let flags = document_flags(doc);
    let kind = document_kind(doc, depth);
    let indent = if depth == 0 {
        String::new()
    } else {
        format!("{}└─ ", "   ".repeat(depth - 1))
    };
    let mut line = format!(
        "{:>10} {:>10}  {:<6} {indent}{kind} {}",
        format!("+{}", format_duration((at - start) * 1000.0)),
        format_duration((end - at) * 1000.0),
        if flags.is_empty() {
            "ok".to_owned()
        } else {
            flags.join(",")
        },
        text(&doc["name"]),
    );
    if let Some(origin) = doc["origin"].as_str() {
        let _ = write!(line, " ({origin})");
    }
    if let Some(namespace) = doc["namespace"].as_str() {
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
    if let Some(cause) = doc["cause"]["exceptions"][0]["message"].as_str() {
        let _ = write!(line, " cause={cause:?}");
    }
    if let Some(metadata) = doc["metadata"]["default"].as_object() {
        let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
        let _ = write!(line, " metadata[{}]", keys.join(","));
    }
    if depth == 0 {
        if let Some(parent) = doc["parent_id"].as_str() {
            if !ids.contains(parent) {
                let _ = write!(line, " (parent {parent}: AWS's own segment)");
            }
        }
        if let Some(links) = doc["links"].as_array() {
            let _ = write!(line, " links={}", links.len());
        }
    }
    line
}

fn collect_ids(doc: &Value, ids: &mut HashSet<String>) {
    if let Some(id) = doc["id"].as_str() {
        ids.insert(id.to_owned());
    }
    for child in doc["subsegments"].as_array().into_iter().flatten() {
        collect_ids(child, ids);
    }
}

fn push_document(out: &mut String, doc: &Value, start: f64, depth: usize, ids: &HashSet<String>) {
    out.push_str(document_line(doc, start, depth, ids).trim_end());
    out.push('\n');
    for child in doc["subsegments"].as_array().into_iter().flatten() {
        push_document(out, child, start, depth + 1, ids);
    }
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
    for doc in &view.documents {
        push_document(&mut out, doc, start, 0, &ids);
    }
    out
}
