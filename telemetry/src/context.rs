//! Trace-context helpers for handlers: read the current span as an X-Ray
//! header for the next hop, make an SQS record's `AWSTraceHeader` the parent
//! of the record's span, start an order's trace, and tag a span with its
//! order, its outcome, its failure or its HTTP exchange.

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::logs::with_span_fields;
use crate::trace_header::TraceHeader;
use crate::traces::{header_from_span_context, join_header, ORDER_ID_ANNOTATION, UNSENT_ATTRIBUTE};
use crate::xray::FAILURE_KIND_ATTRIBUTE;

/// The annotation a status read (`GET /orders/{id}`) carries instead of
/// `order_id`: a search on `annotation.order_id` finds the order's journey,
/// not one trace per poll.
pub const POLLED_ORDER_ID_ANNOTATION: &str = "annotation.polled_order_id";

/// The current span as an X-Ray header (`Root`, `Parent` = this span,
/// `Sampled`), to pass as StartExecution's `traceHeader` or an SQS message's
/// `AWSTraceHeader`. `None` outside any traced span.
pub fn outgoing_trace_header() -> Option<TraceHeader> {
    header_from_span_context(Span::current().context().span().span_context())
}

/// The X-Ray trace id (`1-…-…`) of the current span, e.g. for the API's
/// `trace_id` response field. `None` outside any traced span.
pub fn current_trace_id() -> Option<String> {
    outgoing_trace_header().map(|header| header.root)
}

/// Makes `header` (an SQS record's `AWSTraceHeader`) the parent of `span`,
/// so the record's work joins the order's trace, and links the current span
/// (the invocation, which belongs to the batch's own trace) to it. The span's
/// log lines then carry the order's `trace_id`. A header without `Parent`
/// makes `span` a root of the header's trace, with no parent id.
///
/// Call it right after creating `span`, before entering it or creating
/// children: OpenTelemetry fixes a span's parent when the span starts.
pub fn set_parent_from_header(span: &Span, header: &TraceHeader) {
    let current = Span::current();
    if !current.is_none() && current.id() != span.id() {
        if let Some(remote) = crate::traces::span_context_from_header(header) {
            current.add_link(remote);
        }
    }
    join_header(span, header);
    with_span_fields(span, |fields| {
        fields.insert("trace_id".to_owned(), Value::from(header.root.as_str()));
    });
}

/// Links `span` to the trace `header` names, without joining it: for a
/// header a client sent, which must not decide whose trace a request's
/// spans land in (it could name another order's trace).
pub fn link_to_header(span: &Span, header: &TraceHeader) {
    if let Some(remote) = crate::traces::span_context_from_header(header) {
        span.add_link(remote);
    }
}

/// Links `span` to the trace a W3C `traceparent` (and `tracestate`) names,
/// as OpenTelemetry's W3C propagator reads them
/// (<https://www.w3.org/TR/trace-context/>), without joining it, for the
/// reason [`link_to_header`] gives. Returns whether the header was valid.
pub fn link_to_traceparent(span: &Span, traceparent: &str, tracestate: Option<&str>) -> bool {
    use opentelemetry::propagation::TextMapPropagator as _;
    let mut carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let context = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let remote = context.span().span_context().clone();
    let valid = remote.is_valid();
    if valid {
        span.add_link(remote);
    }
    valid
}

/// Starts the trace of one order on `span` (created, not entered, with an
/// `otel.kind = Empty` field), as api_handler's per-order sampling decided:
///
/// - `sampled`, and the invocation's own trace is sampled (Lambda chose to
///   trace this request): `span` is a child of the current span, in
///   Lambda's trace, so the order's trace holds Lambda's segments too;
/// - `sampled`, and the invocation's trace is not (Lambda samples a function
///   behind an HTTP API at its default rule, 1 request per second and 5 %,
///   and says `Sampled=0` for the rest): `span` becomes the root segment of
///   a new, sampled trace (`otel.kind = server`), linked to the invocation;
/// - not `sampled`: `span` is not sampled, and so nothing under it, nor any
///   hop it is passed to, is recorded (`Sampled=0`). Nor is the
///   invocation's own segment sent, even when Lambda sampled the request
///   (`Sampled=1`): its work was this order's, and an order not sampled
///   sends nothing. Lambda still sends its own two segments
///   (`AWS::Lambda` and `AWS::Lambda::Function`) for a request it
///   sampled — that is Lambda's decision, taken before ours, and they do
///   not depend on ours (ours would only be their child).
///
/// Returns the header to pass on (Root, Parent = `span`, Sampled), `None`
/// when spans are not traced (no telemetry installed). The span's log
/// lines carry the returned trace id.
pub fn start_order_trace(span: &Span, sampled: bool) -> Option<TraceHeader> {
    if span.is_disabled() {
        return None;
    }
    let invocation = Span::current().context().span().span_context().clone();
    if !sampled {
        crate::sampling::start_span_with(span, None, Some(false));
        if invocation.is_valid() && invocation.is_sampled() {
            Span::current().set_attribute(UNSENT_ATTRIBUTE, true);
        }
    } else if invocation.is_valid() && invocation.is_sampled() {
        crate::sampling::start_span_with(span, None, None);
    } else {
        span.record("otel.kind", "server");
        if let Err(err) = span.set_parent(Context::new()) {
            tracing::debug!(error = %err, "order span not made a root");
        }
        if invocation.is_valid() {
            span.add_link(invocation);
        }
        crate::sampling::start_span_with(span, None, Some(true));
    }
    let header = header_from_span_context(span.context().span().span_context())?;
    with_span_fields(span, |fields| {
        fields.insert("trace_id".to_owned(), Value::from(header.root.as_str()));
    });
    Some(header)
}

/// Tags `span` with its order: every log line inside carries `order_id`, and
/// the span (and, at export, its descendants) carries the X-Ray annotation
/// `order_id` (attribute `annotation.order_id`). Works whether or not the
/// span declared an `order_id` field.
pub fn record_order_id(span: &Span, order_id: &str) {
    span.set_attribute(ORDER_ID_ANNOTATION, order_id.to_owned());
    with_span_fields(span, |fields| {
        fields.insert("order_id".to_owned(), Value::from(order_id));
    });
}

/// Tags a status read of an order: its log lines carry `order_id`, but its
/// X-Ray annotation is [`POLLED_ORDER_ID_ANNOTATION`], so the order's journey
/// stays the only trace `annotation.order_id` finds.
pub fn record_polled_order_id(span: &Span, order_id: &str) {
    span.set_attribute(POLLED_ORDER_ID_ANNOTATION, order_id.to_owned());
    with_span_fields(span, |fields| {
        fields.insert("order_id".to_owned(), Value::from(order_id));
    });
}

/// Whose failure a failed span is, as X-Ray tells them apart: `fault` for a
/// server error, `error` for a client's
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-errors>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The work failed on our side (a simulated fulfilment failure, an
    /// unavailable table, a panic).
    Fault,
    /// The input was at fault (a message that is not an order, a request
    /// the API refuses).
    Error,
}

/// Marks `span` failed: error status, and an `exception` event whose type
/// and message X-Ray shows as the segment's `cause`; `fault` or `error` as
/// `kind` says.
pub fn record_failure(span: &Span, kind: FailureKind, error_type: &str, reason: &str) {
    span.set_status(Status::error(reason.to_owned()));
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", error_type.to_owned()),
            KeyValue::new("exception.message", reason.to_owned()),
        ],
    );
    if kind == FailureKind::Error {
        span.set_attribute(FAILURE_KIND_ATTRIBUTE, "error");
    }
}

/// Tags `span` with what became of its work (`fulfilled`, `retry`, …): the
/// X-Ray annotation `outcome`.
pub fn record_outcome(span: &Span, outcome: &str) {
    span.set_attribute("outcome", outcome.to_owned());
}

/// Puts the HTTP exchange on `span`, which X-Ray shows as the segment's
/// `http` block — `request.method`, `request.url` ("the full URL of the
/// request, compiled from the protocol, hostname, and path of the
/// request"), `response.status`
/// (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-http>)
/// — and, for a status of 400 or more, as `error` (4xx) or `fault` (5xx).
/// `url` goes to the translator as `url.full`; the route template
/// (`/orders/{order_id}`, which X-Ray has no field for) is metadata.
pub fn record_http(span: &Span, method: &str, url: &str, route: &str, status: u16) {
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("url.full", url.to_owned());
    span.set_attribute("http.route", route.to_owned());
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 400 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
}
