//! Finished OpenTelemetry spans to [`SpanRecord`]s: the component each span
//! belongs to (nearest ancestor, link, or name prefix), the order it is
//! about, attributes and events as JSON. The attributes are stored as the
//! span had them (less the ones X-Ray never exports either), with what
//! else `dofs trace`'s X-Ray view needs to rebuild the span under reserved
//! keys ([`KIND_KEY`], [`LINKS_KEY`], [`STATUS_DESCRIPTION_KEY`]); what the
//! full view adds (a failure's reason, the order of the trace) is added when
//! read, see [`enrich`].

use std::collections::{HashMap, HashSet};

use dofs_telemetry::traces::ORDER_ID_ANNOTATION;
use dofs_telemetry::xray::json_value;
use dofs_telemetry::SpanData;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use serde_json::{json, Map, Value};

use super::{rfc3339, span_hex, unix_ns, SpanRecord};
use crate::identity::FunctionName;

/// The span's kind, when not `internal` (`server`: an X-Ray segment).
pub const KIND_KEY: &str = "span.kind";
/// The span's links, `[{trace_id, span_id}]`.
pub const LINKS_KEY: &str = "span.links";
/// An error status's description.
pub const STATUS_DESCRIPTION_KEY: &str = "span.status_description";
/// The keys above: not attributes of the span.
pub const RESERVED_KEYS: [&str; 3] = [KIND_KEY, LINKS_KEY, STATUS_DESCRIPTION_KEY];

pub(super) fn kind_name(kind: &SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Internal => None,
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
    }
}

/// Attributes a record keeps in columns (trace_id, function) or under
/// another name (cold_start, request_id): not stored twice. Each is one
/// X-Ray never receives either, so the X-Ray view rebuilt from a record is
/// the one of the span.
const REDUNDANT_ATTRIBUTES: &[&str] = &[
    "trace_id",
    "function",
    "faas.coldstart",
    "faas.invocation_id",
];

/// Converts one flush's spans into records. The component of a span that
/// does not name one is its nearest local ancestor's in the batch, else the
/// span it links to (an SQS record span links its batch invocation), else
/// the `<function>.` prefix of its name. A span without an order takes the
/// order of its trace when the batch names exactly one (api_handler's
/// invocation span is the parent, not a child, of the span that learns the
/// order id).
pub fn records_from_spans(spans: Vec<SpanData>) -> Vec<SpanRecord> {
    let batch = Batch::new(&spans);
    let mut records: Vec<SpanRecord> = (0..spans.len()).map(|i| batch.record(i)).collect();
    inherit_order_ids(&mut records);
    records
}

/// What the full view shows beyond the stored attributes: the order of a
/// span that learnt it from its trace (`annotation.order_id`), and a failed
/// attempt's reason (`failure.reason`, from the WARN/ERROR event or the
/// exception that says why).
pub fn enrich(record: &mut SpanRecord) {
    if let Some(order) = &record.order_id {
        if !record.attributes.contains_key(ORDER_ID_ANNOTATION) {
            record
                .attributes
                .insert(ORDER_ID_ANNOTATION.into(), Value::from(order.as_str()));
        }
    }
    if record.attributes.contains_key("failure.reason") {
        return;
    }
    let reason = record.events.iter().find_map(|event| {
        let fields = event.get("attributes")?;
        let level = fields.get("level").and_then(Value::as_str).unwrap_or("");
        let failed = matches!(level, "WARN" | "ERROR") || event["name"] == "exception";
        if !failed {
            return None;
        }
        ["reason", "exception.message", "error", "error_type"]
            .iter()
            .find_map(|key| fields.get(*key))
            .cloned()
    });
    if let Some(reason) = reason {
        record.attributes.insert("failure.reason".into(), reason);
    }
}

/// One flush's spans, indexed by span id.
struct Batch<'a> {
    spans: &'a [SpanData],
    by_id: HashMap<SpanId, usize>,
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

impl<'a> Batch<'a> {
    fn new(spans: &'a [SpanData]) -> Self {
        let by_id = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_context.span_id(), i))
            .collect();
        Self { spans, by_id }
    }

    /// Nearest local ancestor's `function`, else a linked span's, else the
    /// name's `<function>.` prefix, else `dofs`.
    fn component_of(&self, index: usize) -> String {
        let mut at = index;
        // Bounded: a parent cycle (never produced by us) must not hang.
        for _ in 0..64 {
            let span = &self.spans[at];
            if let Some(function) = attr(span, "function") {
                return function;
            }
            match (!span.parent_span_is_remote)
                .then(|| self.by_id.get(&span.parent_span_id))
                .flatten()
            {
                Some(&parent) => at = parent,
                None => break,
            }
        }
        let span = &self.spans[index];
        if let Some(function) = span
            .links
            .iter()
            .filter_map(|link| self.by_id.get(&link.span_context.span_id()))
            .find_map(|&i| attr(&self.spans[i], "function"))
        {
            return function;
        }
        span.name
            .split_once('.')
            .and_then(|(prefix, _)| FunctionName::resolve(prefix))
            .map_or_else(|| "dofs".to_owned(), |f| f.as_str().to_owned())
    }

    fn record(&self, index: usize) -> SpanRecord {
        let span = &self.spans[index];
        let mut attributes: Map<String, Value> = span
            .attributes
            .iter()
            .filter(|kv| !REDUNDANT_ATTRIBUTES.contains(&kv.key.as_str()))
            .map(|kv| (kv.key.as_str().to_owned(), json_value(&kv.value)))
            .collect();
        if let Some(kind) = kind_name(&span.span_kind) {
            attributes.insert(KIND_KEY.into(), Value::from(kind));
        }
        if !span.links.is_empty() {
            let links: Vec<Value> = span
                .links
                .iter()
                .map(|link| {
                    json!({
                        "trace_id": dofs_telemetry::traces::xray_trace_id(link.span_context.trace_id()),
                        "span_id": span_hex(link.span_context.span_id()),
                    })
                })
                .collect();
            attributes.insert(LINKS_KEY.into(), Value::from(links));
        }
        if let Status::Error { description } = &span.status {
            if !description.is_empty() {
                attributes.insert(
                    STATUS_DESCRIPTION_KEY.into(),
                    Value::from(description.as_ref()),
                );
            }
        }
        let (events, warned) = convert_events(span);
        let status = match &span.status {
            Status::Error { .. } => "error",
            _ if warned => "warn",
            _ => "ok",
        };
        let parent = span.parent_span_id;
        let start = unix_ns(span.start_time);
        let end = unix_ns(span.end_time).max(start);
        SpanRecord {
            trace_id: dofs_telemetry::traces::xray_trace_id(span.span_context.trace_id()),
            span_id: span_hex(span.span_context.span_id()),
            parent_span_id: (parent != SpanId::INVALID).then(|| span_hex(parent)),
            name: span.name.to_string(),
            component: self.component_of(index),
            order_id: attr(span, ORDER_ID_ANNOTATION),
            start,
            end,
            duration_ms: (end - start) as f64 / 1e6,
            status: status.to_owned(),
            attributes,
            events,
        }
    }
}

/// The span's events as JSON, and whether one was a WARN or ERROR.
fn convert_events(span: &SpanData) -> (Vec<Value>, bool) {
    let mut warned = false;
    let events = span
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
            }
            json!({
                "name": event.name,
                "time": rfc3339(unix_ns(event.timestamp)),
                "time_ns": unix_ns(event.timestamp),
                "attributes": fields,
            })
        })
        .collect();
    (events, warned)
}

/// Gives the spans without an order the order of their trace, when the
/// batch names exactly one for it (the `order_id` column; [`enrich`] shows
/// it as the annotation).
fn inherit_order_ids(records: &mut [SpanRecord]) {
    let mut orders_by_trace: HashMap<String, HashSet<String>> = HashMap::new();
    for record in records.iter() {
        if let Some(order) = &record.order_id {
            orders_by_trace
                .entry(record.trace_id.clone())
                .or_default()
                .insert(order.clone());
        }
    }
    for record in records.iter_mut().filter(|r| r.order_id.is_none()) {
        let Some(orders) = orders_by_trace.get(&record.trace_id) else {
            continue;
        };
        if orders.len() == 1 {
            record.order_id = orders.iter().next().cloned();
        }
    }
}
