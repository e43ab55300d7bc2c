//! Trace-context helpers for handlers: read the current span as an X-Ray
//! header for the next hop, make an SQS record's `AWSTraceHeader` the parent
//! of the record's span, and tag a span with its order.

use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use opentelemetry::trace::TraceContextExt;
use serde_json::Value;

use crate::logs::with_span_fields;
use crate::trace_header::TraceHeader;
use crate::traces::{context_from_header, header_from_span_context, ORDER_ID_ANNOTATION};

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
/// log lines then carry the order's `trace_id`.
///
/// Call it right after creating `span`, before entering it or creating
/// children: OpenTelemetry fixes a span's parent when the span starts.
pub fn set_parent_from_header(span: &Span, header: &TraceHeader) {
    let cx = context_from_header(header);
    let remote = cx.span().span_context().clone();
    let current = Span::current();
    if !current.is_none() && current.id() != span.id() {
        current.add_link(remote);
    }
    if let Err(err) = span.set_parent(cx) {
        tracing::debug!(error = %err, "span parent not set from trace header");
    }
    with_span_fields(span, |fields| {
        fields.insert("trace_id".to_owned(), Value::from(header.root.as_str()));
    });
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
