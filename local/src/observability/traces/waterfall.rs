//! `dofs trace`'s waterfall: one line per span, indented under its parent,
//! with start offset, duration, status and the key attributes.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::Value;

use super::OrderTrace;

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
