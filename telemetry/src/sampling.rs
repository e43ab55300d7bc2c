//! Trace ids and sampling decisions that a caller chooses for one span.
//!
//! OpenTelemetry decides a span's trace id and sampling from its parent: a
//! child continues the parent's trace and follows its `sampled` flag, a root
//! gets a fresh id and is sampled. Two hops need more than that:
//!
//! - An X-Ray header may name a trace without naming a parent (`Root=…` with
//!   no `Parent=`, <https://docs.aws.amazon.com/xray/latest/devguide/xray-concepts.html#xray-concepts-tracingheader>).
//!   The span must then be a *root of that trace*: in the given trace, with
//!   no parent id. Inventing a parent id would make X-Ray look for a segment
//!   that never exists.
//! - api_handler decides per order whether the order is traced, whatever
//!   Lambda decided for the invocation: HTTP APIs cannot start a trace
//!   (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-vs-rest.html>),
//!   so Lambda samples such functions at its default rule, and an order that
//!   must be traced is started by api_handler itself.
//!
//! [`start_span_with`] starts a `tracing` span's OpenTelemetry span right
//! away with a forced trace id and/or decision, through an [`IdGenerator`]
//! and a sampler that read a thread-local override set for exactly that
//! call (the span is started on this thread, inside the call). Without an
//! override they behave as `XrayIdGenerator` and `ParentBased(AlwaysOn)`.

use std::cell::Cell;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::XrayIdGenerator;
use opentelemetry_sdk::trace::{
    IdGenerator, Sampler, SamplingDecision, SamplingResult, ShouldSample,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

thread_local! {
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
    static NEXT_DECISION: Cell<Option<bool>> = const { Cell::new(None) };
}

/// `XrayIdGenerator`, except that a root started by [`start_span_with`]
/// gets the trace id it was given.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    xray: XrayIdGenerator,
}

impl IdGenerator for Ids {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.xray.new_trace_id())
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.xray.new_span_id()
    }
}

/// `ParentBased(AlwaysOn)`, except that a span started by
/// [`start_span_with`] with a decision gets that decision.
#[derive(Debug, Clone)]
pub(crate) struct Decider {
    default: Sampler,
}

impl Default for Decider {
    fn default() -> Self {
        Self {
            default: Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        }
    }
}

impl ShouldSample for Decider {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        match NEXT_DECISION.with(Cell::take) {
            Some(sampled) => SamplingResult {
                decision: if sampled {
                    SamplingDecision::RecordAndSample
                } else {
                    SamplingDecision::Drop
                },
                attributes: Vec::new(),
                trace_state: parent_context
                    .map(|cx| {
                        use opentelemetry::trace::TraceContextExt;
                        cx.span().span_context().trace_state().clone()
                    })
                    .unwrap_or_default(),
            },
            None => self.default.should_sample(
                parent_context,
                trace_id,
                name,
                span_kind,
                attributes,
                links,
            ),
        }
    }
}

/// Starts `span`'s OpenTelemetry span now. A root (no parent, or
/// `set_parent(Context::new())`) gets `trace_id` when given; the span is
/// sampled or not as `sampled` says, whatever its parent says, when given.
/// Call it after `set_parent` and after recording `otel.kind`, which are
/// fixed when the span starts. Does nothing to a disabled span.
pub(crate) fn start_span_with(
    span: &tracing::Span,
    trace_id: Option<TraceId>,
    sampled: Option<bool>,
) {
    NEXT_TRACE_ID.with(|cell| cell.set(trace_id));
    NEXT_DECISION.with(|cell| cell.set(sampled));
    // `context()` builds the span if it has not been built yet.
    let _ = span.context();
    // Not consumed (a child span does not ask for a trace id; a disabled
    // span asks nothing): never let it leak into another span.
    NEXT_TRACE_ID.with(|cell| cell.set(None));
    NEXT_DECISION.with(|cell| cell.set(None));
}
