//! `dofs trace`'s default view: what X-Ray would hold of an order's trace.
//!
//! The local runtime stores every span, richer than X-Ray will ever see
//! them (a gateway span an HTTP API cannot produce, Step Functions states
//! as our own spans, every attribute). This view rebuilds the spans our
//! code would have sent — the functions', not those of the stand-ins for
//! API Gateway and Step Functions, whose X-Ray segments AWS records itself
//! — and runs them through the very translation the functions use on
//! Lambda ([`dofs_telemetry::xray::SegmentTranslation`]): segments named
//! after the deployed function with origin `AWS::Lambda::Function`,
//! subsegments, annotations, metadata, `fault`/`error` and their cause. A
//! parent outside these documents is a segment AWS owns (Lambda's, Step
//! Functions').
//!
//! An order api_handler did not sample (its execution's trace header says
//! `Sampled=0`) has no X-Ray trace, and the view says so.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use dofs_telemetry::traces::{SpanEvents, SpanLinks};
use dofs_telemetry::xray::{SegmentName, SegmentTranslation};
use dofs_telemetry::{SpanData, TraceHeader};
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, KeyValue, StringValue, Value as OtelValue};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;

use super::convert::{KIND_KEY, LINKS_KEY, RESERVED_KEYS, STATUS_DESCRIPTION_KEY};
use super::query::{load_trace_raw, order_trace_id};
use super::SpanRecord;
use crate::identity::{FunctionName, GATEWAY_COMPONENT, STATES_COMPONENT};
use crate::store::DbError;

/// What X-Ray would hold of one order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XrayView {
    pub order_id: String,
    pub trace_id: String,
    /// False when api_handler did not sample the order: X-Ray holds nothing.
    pub sampled: bool,
    /// The segment documents (subsegments nested), by start time.
    pub documents: Vec<Value>,
}

/// The order's X-Ray view; `None` when nothing about the order was traced.
/// `execution_header` is the execution's `traceHeader` (its `Sampled` says
/// whether X-Ray holds anything), as for [`super::order_trace_id`].
pub fn order_xray_view(
    conn: &Connection,
    order_id: &str,
    execution_header: Option<&str>,
) -> Result<Option<XrayView>, DbError> {
    let trace_id = order_trace_id(conn, order_id, execution_header)?;
    let records = match &trace_id {
        Some(trace_id) => load_trace_raw(conn, trace_id)?,
        None => Vec::new(),
    };
    Ok(xray_view_of(
        order_id,
        execution_header,
        trace_id.as_deref(),
        &records,
    ))
}

/// [`order_xray_view`] of spans already loaded: `records` are the stored
/// spans of `trace_id`, the order's trace.
pub fn xray_view_of(
    order_id: &str,
    execution_header: Option<&str>,
    trace_id: Option<&str>,
    records: &[SpanRecord],
) -> Option<XrayView> {
    let header = execution_header.and_then(|h| h.parse::<TraceHeader>().ok());
    if let Some(header) = header.filter(|h| h.sampled == Some(false)) {
        return Some(XrayView {
            order_id: order_id.to_owned(),
            trace_id: header.root,
            sampled: false,
            documents: Vec::new(),
        });
    }
    let trace_id = trace_id?;
    if records.is_empty() {
        return None;
    }
    Some(XrayView {
        order_id: order_id.to_owned(),
        trace_id: trace_id.to_owned(),
        sampled: true,
        documents: documents_of(records),
    })
}

/// The segment of a function's span: its deployed name and log group, as
/// on Lambda (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_LOG_GROUP_NAME`).
pub fn segment_name(component: &str) -> SegmentName {
    let name = FunctionName::resolve(component)
        .map(FunctionName::deployed_name)
        .unwrap_or_else(|| component.to_owned());
    SegmentName {
        log_group: Some(format!("/aws/lambda/{name}")),
        name,
    }
}

/// The X-Ray documents of `spans` (with their components), by start time
/// then id: what the functions' translation makes of them.
pub fn translate(spans: &[SpanData], components: &HashMap<SpanId, String>) -> Vec<Value> {
    let name = |span: &SpanData| {
        segment_name(
            components
                .get(&span.span_context.span_id())
                .map_or("dofs", String::as_str),
        )
    };
    let mut documents = SegmentTranslation::new().documents(spans, &name);
    documents.sort_by(|a, b| {
        let start = |d: &Value| d["start_time"].as_f64().unwrap_or_default();
        start(a)
            .total_cmp(&start(b))
            .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
    });
    documents
}

/// The X-Ray documents of stored spans: the functions' spans rebuilt and
/// translated; the AWS stand-ins' spans left out.
pub fn documents_of(records: &[SpanRecord]) -> Vec<Value> {
    let ours: Vec<&SpanRecord> = records
        .iter()
        .filter(|r| r.component != GATEWAY_COMPONENT && r.component != STATES_COMPONENT)
        .collect();
    let spans: Vec<SpanData> = ours.iter().filter_map(|r| span_data(r)).collect();
    let components: HashMap<SpanId, String> = ours
        .iter()
        .filter_map(|r| Some((SpanId::from_hex(&r.span_id).ok()?, r.component.clone())))
        .collect();
    translate(&spans, &components)
}

fn trace_id_of(xray: &str) -> Option<TraceId> {
    TraceId::from_hex(&xray.strip_prefix("1-")?.replace('-', "")).ok()
}

fn otel_value(value: &Value) -> Option<OtelValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => OtelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OtelValue::I64(i),
            None => OtelValue::F64(n.as_f64()?),
        },
        Value::String(s) => OtelValue::from(s.clone()),
        Value::Array(items) => {
            if let Some(v) = items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
                OtelValue::Array(Array::I64(v))
            } else if let Some(v) = items.iter().map(Value::as_f64).collect::<Option<Vec<_>>>() {
                OtelValue::Array(Array::F64(v))
            } else if let Some(v) = items.iter().map(Value::as_bool).collect::<Option<Vec<_>>>() {
                OtelValue::Array(Array::Bool(v))
            } else {
                let strings = items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => StringValue::from(s.clone()),
                        other => StringValue::from(other.to_string()),
                    })
                    .collect();
                OtelValue::Array(Array::String(strings))
            }
        }
        Value::Object(_) => OtelValue::from(value.to_string()),
    })
}

fn kind_of(name: Option<&str>) -> SpanKind {
    match name {
        Some("server") => SpanKind::Server,
        Some("client") => SpanKind::Client,
        Some("producer") => SpanKind::Producer,
        Some("consumer") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

fn at(ns: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or_default())
}

/// A stored span as the span it was (what the translation reads of it).
pub fn span_data(record: &SpanRecord) -> Option<SpanData> {
    let trace_id = trace_id_of(&record.trace_id)?;
    let span_id = SpanId::from_hex(&record.span_id).ok()?;
    let attr = |key: &str| record.attributes.get(key);
    let attributes = record
        .attributes
        .iter()
        .filter(|(key, _)| !RESERVED_KEYS.contains(&key.as_str()))
        .filter_map(|(key, value)| Some(KeyValue::new(key.clone(), otel_value(value)?)))
        .collect();
    let mut events = SpanEvents::default();
    for event in &record.events {
        let time = event["time_ns"]
            .as_i64()
            .map(at)
            .unwrap_or(at(record.start));
        let fields = event["attributes"]
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .filter_map(|(k, v)| Some(KeyValue::new(k.clone(), otel_value(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let name = event["name"].as_str().unwrap_or_default().to_owned();
        events.events.push(Event::new(name, time, fields, 0));
    }
    let mut links = SpanLinks::default();
    for link in attr(LINKS_KEY)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(trace), Some(span)) = (
            link["trace_id"].as_str().and_then(trace_id_of),
            link["span_id"]
                .as_str()
                .and_then(|s| SpanId::from_hex(s).ok()),
        ) else {
            continue;
        };
        let cx = SpanContext::new(
            trace,
            span,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        links.links.push(Link::with_context(cx));
    }
    let status = match record.status.as_str() {
        "error" => Status::error(
            attr(STATUS_DESCRIPTION_KEY)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Status::Unset,
    };
    let parent = record
        .parent_span_id
        .as_deref()
        .and_then(|p| SpanId::from_hex(p).ok())
        .unwrap_or(SpanId::INVALID);
    Some(SpanData {
        span_context: SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: kind_of(attr(KIND_KEY).and_then(Value::as_str)),
        name: record.name.clone().into(),
        start_time: at(record.start),
        end_time: at(record.end),
        attributes,
        dropped_attributes_count: 0,
        events,
        links,
        status,
        instrumentation_scope: Default::default(),
    })
}

/// The flags X-Ray sets on a document (`fault`, `error`, `throttle`), in
/// that order.
pub fn document_flags(doc: &Value) -> Vec<&'static str> {
    ["fault", "error", "throttle"]
        .into_iter()
        .filter(|flag| doc[*flag] == true)
        .collect()
}

/// `segment` for a top-level document (one without `type`), else
/// `subsegment`.
pub fn document_kind(doc: &Value, depth: usize) -> &'static str {
    if depth == 0 && doc.get("type").is_none() {
        "segment"
    } else {
        "subsegment"
    }
}
