//! Finished OpenTelemetry spans to [`SpanRecord`]s: the component each span
//! belongs to (nearest ancestor, link, or name prefix), the order it is
//! about, attributes and events as JSON, a failure's reason promoted.

use std::collections::{HashMap, HashSet};

use dofs_telemetry::traces::ORDER_ID_ANNOTATION;
use dofs_telemetry::SpanData;
use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{Array, Value as OtelValue};
use serde_json::{json, Map, Value};

use super::{rfc3339, span_hex, unix_ns, SpanRecord};
use crate::identity::FunctionName;

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
        let (events, warned) = convert_events(span, &mut attributes);
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

/// The span's events as JSON, and whether one was a WARN or ERROR. The
/// failure reason such an event logged becomes the attempt's
/// `failure.reason` attribute, where the waterfall shows it.
fn convert_events(span: &SpanData, attributes: &mut Map<String, Value>) -> (Vec<Value>, bool) {
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
    (events, warned)
}

/// Gives the spans without an order the order of their trace, when the
/// batch names exactly one for it.
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
