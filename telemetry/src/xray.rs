//! What X-Ray receives: finished spans as X-Ray segment documents, and the
//! daemon they are sent to.
//!
//! One translation, [`SegmentTranslation::documents`], used by the functions
//! (through `XraySink`, on the UDP daemon) and by the local runtime (`dofs
//! trace` shows what X-Ray would show from the same spans). It is
//! `opentelemetry-aws`'s `SegmentTranslator` between two steps of ours:
//!
//! 1. **Before**, each span's attributes are sorted: the ones the translator
//!    maps onto X-Ray fields ([`TRANSLATED`]: `http.*` → `http`, `rpc.*` /
//!    `aws.*` → `aws` and `namespace: aws`, `service.name` and `cloud.*` →
//!    `name` and `origin`) and the `annotation.*` ones go to it; [`ANNOTATED`]
//!    ones become annotations too; the rest is kept aside for metadata. A
//!    `Server` span (a segment: the translator makes only `SpanKind::Server`
//!    spans segments) is named after the deployed function (`service.name`)
//!    and given `cloud.provider = aws`, `cloud.platform = aws_lambda`, which
//!    the translator turns into `origin: AWS::Lambda::Function`. A failed
//!    span without an `exception` event gets one, from its first ERROR
//!    event (message and `error` field), so its `fault`/`error` never
//!    comes with an empty `cause`.
//! 2. **After**, each document (and each subsegment nested in it) gets what
//!    the translator has no field for:
//!    - `metadata`, under the namespace `default`: the remaining attributes
//!      and the span's log events (a WARN line is an event). X-Ray's
//!      metadata is "an object with key-value pairs … organized by
//!      namespace" — the X-Ray SDKs' `put_metadata(key, value,
//!      namespace='default')` — while the translator would write bare
//!      values at the top level
//!      (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-metadata>);
//!    - `error: true` instead of `fault: true` for a failure recorded as the
//!      caller's ([`FAILURE_KIND_ATTRIBUTE`] = `error`), and `throttle: true`
//!      too for a throttled AWS call (`throttle`): "error – boolean
//!      indicating that a client error occurred", "fault – … a server
//!      error", "throttle – … a request was throttled" (same page, "Errors
//!      and exceptions"); the translator only knows them from HTTP codes;
//!    - `aws.retries` on an AWS SDK call (the X-Ray SDKs' field for it);
//!    - `aws.cloudwatch_logs: [{log_group}]` on segments, where the X-Ray
//!      model has it (the translator writes a top-level `cloudwatch_logs`);
//!    - `links`, the span's OpenTelemetry links (an SQS batch invocation
//!      links the traces of its records, as X-Ray links SQS-triggered
//!      invocations: <https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>),
//!      in the X-Ray segment model's shape `[{trace_id, id}]`.
//!
//! Subsegments travel nested in their segment (`always_nest_subsegments`),
//! one datagram per segment: a document "can be up to 64 kB and contain a
//! whole segment with subsegments" (segment documents page). The daemon
//! protocol is a `{"format":"json","version":1}` line and the document
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html#xray-api-daemon>).
//! Every datagram is attempted; the first failure is returned.

use std::collections::HashMap;
use std::io;
use std::net::UdpSocket;

use opentelemetry::trace::{Event, SpanId, SpanKind, Status};
use opentelemetry::{Array, KeyValue, Value as OtelValue};
use opentelemetry_aws::xray_exporter::SegmentTranslator;
use serde_json::{Map, Value};

use crate::traces::{xray_trace_id, SinkError, SpanData, SpanSink};

/// Attributes the translator maps onto X-Ray fields; they are not repeated
/// as metadata.
pub const TRANSLATED: &[&str] = &[
    "http.request.method",
    "http.response.status_code",
    "url.full",
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "aws.request_id",
    "aws.table.name",
    "aws.dynamodb.table_names",
    "aws.queue.url",
    "aws.sqs.queue.url",
    "service.name",
    "cloud.provider",
    "cloud.platform",
];

/// Attributes exported as annotations (searchable: `annotation.receive_count
/// >= 3`, `annotation.outcome = "retry"`) besides the `annotation.*` ones.
pub const ANNOTATED: &[&str] = &["receive_count", "outcome"];

/// Attributes not exported at all: the document says them already
/// (`trace_id`, the segment's name for `function`, the annotation for the
/// `order_id` log field) or another attribute does (`faas.coldstart` is
/// `cold_start`, `faas.invocation_id` is `request_id`).
pub const NOT_EXPORTED: &[&str] = &[
    "trace_id",
    "function",
    "order_id",
    "faas.coldstart",
    "faas.invocation_id",
    crate::traces::UNSENT_ATTRIBUTE,
];

/// `error` or `throttle` on a failed span, whose X-Ray flag is otherwise
/// `fault` (unless its HTTP status says).
pub const FAILURE_KIND_ATTRIBUTE: &str = "failure.kind";
/// How many times an AWS SDK call was retried; becomes `aws.retries`.
pub const RETRIES_ATTRIBUTE: &str = "aws.retries";
/// The X-Ray metadata namespace our attributes go under.
pub const METADATA_NAMESPACE: &str = "default";

/// The origin `cloud.platform = aws_lambda` translates to.
pub const LAMBDA_ORIGIN: &str = "AWS::Lambda::Function";

/// Spans → X-Ray segment documents (see the module docs).
#[derive(Debug)]
pub struct SegmentTranslation {
    translator: SegmentTranslator,
}

impl Default for SegmentTranslation {
    fn default() -> Self {
        Self::new()
    }
}

/// What a segment (a `Server` span) is named after: the deployed function,
/// and its CloudWatch log group (`AWS_LAMBDA_LOG_GROUP_NAME`), which X-Ray
/// links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName {
    pub name: String,
    pub log_group: Option<String>,
}

/// What the "after" step needs of one span.
struct Extra {
    metadata: Map<String, Value>,
    events: Vec<Value>,
    /// `error` or `throttle`: not the default `fault`.
    failure_kind: Option<String>,
    retries: Option<i64>,
    links: opentelemetry_sdk::trace::SpanLinks,
    log_group: Option<String>,
}

impl SegmentTranslation {
    pub fn new() -> Self {
        Self {
            // Timestamps are not checked against the clock: X-Ray checks
            // them itself, and `dofs trace` shows old traces too.
            translator: SegmentTranslator::new()
                .always_nest_subsegments()
                .skip_timestamp_validation(),
        }
    }

    /// The documents X-Ray receives for `spans`. A `Server` span is a
    /// segment named as `segment_name(span)` says (the deployed function).
    pub fn documents(
        &self,
        spans: &[SpanData],
        segment_name: &dyn Fn(&SpanData) -> SegmentName,
    ) -> Vec<Value> {
        self.documents_of(spans.to_vec(), segment_name)
    }

    /// [`Self::documents`] of spans it may take apart (no copy of them).
    pub fn documents_of(
        &self,
        mut spans: Vec<SpanData>,
        segment_name: &dyn Fn(&SpanData) -> SegmentName,
    ) -> Vec<Value> {
        let mut extras: HashMap<SpanId, Extra> = HashMap::with_capacity(spans.len());
        for span in &mut spans {
            let extra = prepare(span, segment_name);
            extras.insert(span.span_context.span_id(), extra);
        }
        self.translator
            .translate_spans(&spans)
            .iter()
            .filter_map(|doc| serde_json::to_value(doc).ok())
            .map(|mut doc| {
                finish(&mut doc, &mut extras, true);
                doc
            })
            .collect()
    }
}

/// An OpenTelemetry attribute value as JSON (arrays as arrays; anything
/// newer than this list as its display text).
pub fn json_value(value: &OtelValue) -> Value {
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

/// Makes `span` the translator's input, returning what it will not see.
fn prepare(span: &mut SpanData, segment_name: &dyn Fn(&SpanData) -> SegmentName) -> Extra {
    let mut attributes = Vec::with_capacity(span.attributes.len() + 3);
    let mut extra = Extra {
        metadata: Map::new(),
        events: Vec::new(),
        failure_kind: None,
        retries: None,
        links: std::mem::take(&mut span.links),
        log_group: None,
    };
    for kv in std::mem::take(&mut span.attributes) {
        let key = kv.key.as_str();
        if key.starts_with("annotation.") || TRANSLATED.contains(&key) {
            attributes.push(kv);
        } else if ANNOTATED.contains(&key) {
            attributes.push(KeyValue::new(format!("annotation.{key}"), kv.value));
        } else if key == FAILURE_KIND_ATTRIBUTE {
            extra.failure_kind = Some(kv.value.as_str().into_owned());
        } else if key == RETRIES_ATTRIBUTE {
            if let OtelValue::I64(n) = kv.value {
                extra.retries = Some(n);
            }
        } else if !NOT_EXPORTED.contains(&key) {
            extra.metadata.insert(key.to_owned(), json_value(&kv.value));
        }
    }
    if span.span_kind == SpanKind::Server {
        // Named before its attributes are replaced: the namer may read them.
        let SegmentName { name, log_group } = segment_name(span);
        extra.log_group = log_group;
        attributes.retain(|kv| kv.key.as_str() != "service.name");
        attributes.push(KeyValue::new("service.name", name));
        attributes.push(KeyValue::new("cloud.provider", "aws"));
        attributes.push(KeyValue::new("cloud.platform", "aws_lambda"));
    }
    let mut has_exception = false;
    for event in span.events.iter() {
        let is_exception = is_exception(event);
        if is_exception {
            has_exception = true;
            continue;
        }
        let mut fields = Map::new();
        fields.insert("name".into(), Value::from(event.name.as_ref()));
        for kv in &event.attributes {
            if kv.key.as_str() != "target" {
                fields.insert(kv.key.as_str().to_owned(), json_value(&kv.value));
            }
        }
        extra.events.push(Value::Object(fields));
    }
    if !has_exception && matches!(span.status, Status::Error { .. }) {
        let cause = cause_of(span);
        span.events.events.push(cause);
    }
    span.attributes = attributes;
    extra
}

/// Whether the translator takes `event` for an exception of the `cause`.
fn is_exception(event: &Event) -> bool {
    event.name == "exception"
        || event
            .attributes
            .iter()
            .any(|kv| kv.key.as_str().starts_with("exception."))
}

/// An `exception` event for a failed span that has none, so its `fault` or
/// `error` never comes with an empty `cause` (the translator writes one
/// only from exception events): from its first ERROR event — a
/// `tracing::error!` inside a span is what sets its error status, with no
/// description — its message and its `error` field (type: its `error_type`
/// field); else the status's description; else that the span failed.
fn cause_of(span: &SpanData) -> Event {
    let field = |event: &Event, key: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.as_str().into_owned())
            .filter(|v| !v.is_empty())
    };
    let error_event = span
        .events
        .iter()
        .find(|e| field(e, "level").as_deref() == Some("ERROR"));
    let (error_type, message, time) = match error_event {
        Some(event) => {
            let message = match (event.name.as_ref(), field(event, "error")) {
                ("", Some(error)) => error,
                (message, Some(error)) => format!("{message}: {error}"),
                (message, None) => message.to_owned(),
            };
            (field(event, "error_type"), message, event.timestamp)
        }
        None => {
            let message = match &span.status {
                Status::Error { description } if !description.is_empty() => description.to_string(),
                _ => format!("{} failed", span.name),
            };
            (None, message, span.end_time)
        }
    };
    let mut attributes = vec![KeyValue::new("exception.message", message)];
    if let Some(error_type) = error_type {
        attributes.push(KeyValue::new("exception.type", error_type));
    }
    Event::new("exception", time, attributes, 0)
}

/// Adds to `doc` (and the subsegments nested in it) what the translator
/// has no field for.
fn finish(doc: &mut Value, extras: &mut HashMap<SpanId, Extra>, top: bool) {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .and_then(|id| SpanId::from_hex(id).ok());
    let is_segment = doc.get("type").is_none() && top;
    let extra = id.and_then(|id| extras.remove(&id));
    let mut log_group = None;
    if let (Some(extra), Some(map)) = (extra, doc.as_object_mut()) {
        log_group = extra.log_group;
        if !extra.metadata.is_empty() || !extra.events.is_empty() {
            let mut default = extra.metadata;
            if !extra.events.is_empty() {
                default.insert("events".into(), Value::from(extra.events));
            }
            let mut metadata = Map::new();
            metadata.insert(METADATA_NAMESPACE.into(), Value::Object(default));
            map.insert("metadata".into(), Value::Object(metadata));
        }
        match extra.failure_kind.as_deref() {
            Some("error") => {
                map.remove("fault");
                map.insert("error".into(), Value::Bool(true));
            }
            Some("throttle") => {
                map.remove("fault");
                map.insert("error".into(), Value::Bool(true));
                map.insert("throttle".into(), Value::Bool(true));
            }
            _ => {}
        }
        if let (Some(retries), Some(aws)) = (extra.retries, aws_object(map)) {
            aws.insert("retries".into(), Value::from(retries));
        }
        if !extra.links.is_empty() {
            let links: Vec<Value> = extra
                .links
                .iter()
                .map(|link| {
                    serde_json::json!({
                        "trace_id": xray_trace_id(link.span_context.trace_id()),
                        "id": format!("{:016x}", link.span_context.span_id()),
                    })
                })
                .collect();
            map.insert("links".into(), Value::from(links));
        }
    }
    if let (true, Some(group), Some(map)) = (is_segment, log_group, doc.as_object_mut()) {
        if let Some(aws) = aws_object(map) {
            aws.insert(
                "cloudwatch_logs".into(),
                serde_json::json!([{ "log_group": group }]),
            );
        }
    }
    if let Some(children) = doc.get_mut("subsegments").and_then(Value::as_array_mut) {
        for child in children {
            finish(child, extras, false);
        }
    }
}

/// The document's `aws` object, made if missing.
fn aws_object(map: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let aws = map
        .entry("aws")
        .or_insert_with(|| Value::Object(Map::new()));
    if !aws.is_object() {
        *aws = Value::Object(Map::new());
    }
    aws.as_object_mut()
}

/// The daemon's protocol header line.
const DAEMON_HEADER: &[u8] = b"{\"format\":\"json\",\"version\":1}\n";

/// A UDP socket connected to the X-Ray daemon.
#[derive(Debug)]
pub(crate) struct Daemon {
    socket: UdpSocket,
}

impl Daemon {
    pub(crate) fn connect(addr: std::net::SocketAddr) -> io::Result<Self> {
        let local: std::net::SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(addr)?;
        socket.set_nonblocking(true)?;
        Ok(Self { socket })
    }

    /// Sends one datagram per document; tries them all, returns the first
    /// failure.
    pub(crate) fn send(&self, documents: &[Value]) -> io::Result<()> {
        let mut first_error = None;
        let mut buf = Vec::with_capacity(4096);
        for doc in documents {
            buf.clear();
            buf.extend_from_slice(DAEMON_HEADER);
            if let Err(err) = serde_json::to_writer(&mut buf, doc) {
                first_error.get_or_insert(io::Error::other(err));
                continue;
            }
            if let Err(err) = self.socket.send(&buf) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The X-Ray daemon as a [`SpanSink`]: [`SegmentTranslation`] then UDP.
#[derive(Debug)]
pub(crate) struct XraySink {
    translation: SegmentTranslation,
    daemon: Daemon,
    /// Every segment's: the deployed function's (one per process).
    segment_name: SegmentName,
}

impl XraySink {
    pub(crate) fn connect(addr: &str, name: String) -> Result<Self, String> {
        let addr = crate::traces::resolve_daemon_address(addr)?;
        let daemon = Daemon::connect(addr).map_err(|err| err.to_string())?;
        let log_group = std::env::var("AWS_LAMBDA_LOG_GROUP_NAME")
            .ok()
            .filter(|g| !g.is_empty());
        Ok(Self {
            translation: SegmentTranslation::new(),
            daemon,
            segment_name: SegmentName { name, log_group },
        })
    }
}

impl SpanSink for XraySink {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
        let name = |_: &SpanData| self.segment_name.clone();
        let documents = self.translation.documents_of(spans, &name);
        self.daemon
            .send(&documents)
            .map_err(|err| Box::new(err) as SinkError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::span;
    use opentelemetry::trace::{Event, Status};
    use std::time::{Duration, UNIX_EPOCH};

    fn name(_: &SpanData) -> SegmentName {
        SegmentName {
            name: "dofs-dev-fulfill_order".to_owned(),
            log_group: Some("/aws/lambda/dofs-dev-fulfill_order".into()),
        }
    }

    fn docs(spans: Vec<SpanData>) -> Vec<Value> {
        SegmentTranslation::new().documents(&spans, &name)
    }

    #[test]
    fn a_server_span_is_a_lambda_segment_with_annotations_metadata_and_nested_children() {
        let record = span(2, 0)
            .name("fulfill_order.record")
            .kind(SpanKind::Server)
            .attr("annotation.order_id", "o-1")
            .attr("receive_count", 2i64)
            .attr("outcome", "fulfilled")
            .attr("message_id", "m-1")
            .attr("function", "fulfill_order")
            .build();
        let call = span(3, 2)
            .name("aws_call")
            .kind(SpanKind::Client)
            .attr("annotation.order_id", "o-1")
            .attr("rpc.system", "aws-api")
            .attr("rpc.service", "DynamoDB")
            .attr("rpc.method", "UpdateItem")
            .attr("aws.table.name", "orders")
            .attr("aws.request_id", "REQ1")
            .attr("http.response.status_code", 200i64)
            .attr(RETRIES_ATTRIBUTE, 1i64)
            .build();
        let docs = docs(vec![call, record]);
        assert_eq!(docs.len(), 1, "the call travels in its segment: {docs:#?}");
        let seg = &docs[0];
        assert_eq!(seg["name"], "dofs-dev-fulfill_order");
        assert_eq!(seg["origin"], LAMBDA_ORIGIN);
        assert!(seg.get("type").is_none());
        assert_eq!(seg["annotations"]["order_id"], "o-1");
        assert_eq!(seg["annotations"]["receive_count"], 2);
        assert_eq!(seg["annotations"]["outcome"], "fulfilled");
        assert_eq!(seg["metadata"]["default"]["message_id"], "m-1");
        assert!(seg["metadata"]["default"].get("function").is_none());
        assert!(seg["metadata"]["default"].get("receive_count").is_none());
        assert_eq!(
            seg["aws"]["cloudwatch_logs"][0]["log_group"],
            "/aws/lambda/dofs-dev-fulfill_order"
        );
        assert!(seg.get("cloudwatch_logs").is_none());
        let sub = &seg["subsegments"][0];
        assert_eq!(sub["name"], "DynamoDB");
        assert_eq!(sub["namespace"], "aws");
        assert_eq!(sub["aws"]["operation"], "UpdateItem");
        assert_eq!(sub["aws"]["table_name"], "orders");
        assert_eq!(sub["aws"]["request_id"], "REQ1");
        assert_eq!(sub["aws"]["retries"], 1);
        assert_eq!(sub["http"]["response"]["status"], 200);
        assert!(sub["aws"].get("cloudwatch_logs").is_none());
    }

    #[test]
    fn failures_carry_fault_or_error_and_the_reason_as_cause_and_events_become_metadata() {
        let exception = Event::new(
            "exception",
            UNIX_EPOCH + Duration::from_millis(1_005),
            vec![
                KeyValue::new("exception.type", "FulfilmentFailed"),
                KeyValue::new("exception.message", "simulated fulfilment failure"),
            ],
            0,
        );
        let warn = Event::new(
            "fulfilment failed",
            UNIX_EPOCH + Duration::from_millis(1_006),
            vec![
                KeyValue::new("level", "WARN"),
                KeyValue::new("reason", "simulated"),
            ],
            0,
        );
        let fault = span(1, 0)
            .kind(SpanKind::Server)
            .status(Status::error("simulated fulfilment failure"))
            .event(exception.clone())
            .event(warn)
            .build();
        let error = span(2, 0)
            .kind(SpanKind::Server)
            .status(Status::error("body is not an order"))
            .attr(FAILURE_KIND_ATTRIBUTE, "error")
            .event(exception)
            .build();
        let docs = docs(vec![fault, error]);
        let by_id = |id: &str| docs.iter().find(|d| d["id"] == id).unwrap();
        let fault = by_id("0000000000000001");
        assert_eq!(fault["fault"], true);
        assert!(fault.get("error").is_none());
        assert_eq!(
            fault["cause"]["exceptions"][0]["message"],
            "simulated fulfilment failure"
        );
        assert_eq!(fault["cause"]["exceptions"][0]["type"], "FulfilmentFailed");
        let events = fault["metadata"]["default"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "the exception is the cause, not an event");
        assert_eq!(events[0]["name"], "fulfilment failed");
        assert_eq!(events[0]["reason"], "simulated");
        let error = by_id("0000000000000002");
        assert_eq!(error["error"], true);
        assert!(error.get("fault").is_none());
        assert!(error["cause"]["exceptions"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn a_failed_span_without_an_exception_takes_its_cause_from_its_first_error_event() {
        let event = |name: &str, at: u64, attributes: Vec<KeyValue>| {
            Event::new(
                name.to_owned(),
                UNIX_EPOCH + Duration::from_millis(at),
                attributes,
                0,
            )
        };
        // What `tracing::error!(error_type, error = %e, "request failed")`
        // inside a span leaves: error status without a description.
        let logged = span(1, 0)
            .kind(SpanKind::Server)
            .status(Status::error(""))
            .event(event(
                "retrying",
                1_001,
                vec![KeyValue::new("level", "WARN")],
            ))
            .event(event(
                "request failed",
                1_002,
                vec![
                    KeyValue::new("level", "ERROR"),
                    KeyValue::new("error_type", "TransientError"),
                    KeyValue::new("error", "table unavailable"),
                ],
            ))
            .event(event(
                "second",
                1_003,
                vec![KeyValue::new("level", "ERROR")],
            ))
            .build();
        let described = span(2, 0)
            .kind(SpanKind::Server)
            .status(Status::error("HTTP 502"))
            .build();
        // A subsegment: its parent is the segment above.
        let bare = span(3, 2)
            .name("validator.validate")
            .status(Status::error(""))
            .build();
        let docs = docs(vec![logged, described, bare]);
        let by_id = |id: &str| docs.iter().find(|d| d["id"] == id).unwrap();
        let logged = by_id("0000000000000001");
        assert_eq!(logged["fault"], true);
        let exceptions = logged["cause"]["exceptions"].as_array().unwrap();
        assert_eq!(exceptions.len(), 1, "{logged:#}");
        assert_eq!(
            exceptions[0]["message"],
            "request failed: table unavailable"
        );
        assert_eq!(exceptions[0]["type"], "TransientError");
        let events = logged["metadata"]["default"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 3, "the log events stay metadata: {logged:#}");
        assert_eq!(
            by_id("0000000000000002")["cause"]["exceptions"][0]["message"],
            "HTTP 502"
        );
        assert_eq!(
            by_id("0000000000000002")["subsegments"][0]["cause"]["exceptions"][0]["message"],
            "validator.validate failed"
        );
    }

    #[test]
    fn a_span_that_did_not_fail_gets_no_cause() {
        let ok = span(1, 0)
            .kind(SpanKind::Server)
            .event(Event::new(
                "odd",
                UNIX_EPOCH + Duration::from_millis(1_001),
                vec![KeyValue::new("level", "ERROR")],
                0,
            ))
            .build();
        let docs = docs(vec![ok]);
        assert!(docs[0].get("cause").is_none(), "{:#}", docs[0]);
        assert!(docs[0].get("fault").is_none());
    }

    #[test]
    fn links_are_kept_and_a_segment_without_parent_has_no_parent_id() {
        let linked = span(9, 0).trace(7).build();
        let mut batch = span(1, 0).kind(SpanKind::Server).build();
        batch
            .links
            .links
            .push(opentelemetry::trace::Link::with_context(
                linked.span_context.clone(),
            ));
        let docs = docs(vec![batch]);
        assert_eq!(docs[0]["links"][0]["id"], "0000000000000009");
        assert_eq!(
            docs[0]["links"][0]["trace_id"],
            xray_trace_id(linked.span_context.trace_id())
        );
        assert!(docs[0].get("parent_id").is_none());
    }

    #[test]
    fn the_daemon_gets_one_datagram_per_document_with_the_protocol_header() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let daemon = Daemon::connect(receiver.local_addr().unwrap()).unwrap();
        daemon
            .send(&[
                serde_json::json!({"id": "a"}),
                serde_json::json!({"id": "b"}),
            ])
            .unwrap();
        let mut buf = [0u8; 1024];
        for id in ["a", "b"] {
            let n = receiver.recv(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            let (header, doc) = text.split_once('\n').unwrap();
            assert_eq!(header, r#"{"format":"json","version":1}"#);
            assert_eq!(serde_json::from_str::<Value>(doc).unwrap()["id"], id);
        }
    }
}
