//! The spans of the Step Functions stand-in: one per state attempt, child
//! of the execution's trace header, with what the step's history says
//! (state type, the error of a failed attempt, the retry back-off) — what
//! Step Functions' own X-Ray subsegments show per state.

use dofs_asl::{HistoryEvent, HistoryEventKind};
use dofs_telemetry::TraceHeader;
use serde_json::Value;
use tracing::field::Empty;
use tracing::Span;

/// The span of one state attempt of an execution: named after the state,
/// child of the execution's trace header, tagged with the order (the
/// execution name is the order id). Record the outcome with
/// [`finish_state_span`].
pub fn state_span(execution: &str, state: &str, attempt: u32, trace_header: Option<&str>) -> Span {
    let span = tracing::info_span!(
        parent: None,
        "state",
        otel.name = %state,
        otel.status_code = Empty,
        function = crate::identity::STATES_COMPONENT,
        execution = %execution,
        state = %state,
        state.type = Empty,
        // i64: tracing-opentelemetry turns unsigned fields into strings.
        attempt = i64::from(attempt),
        error = Empty,
        retry.delay_ms = Empty,
    );
    if let Some(header) = trace_header.and_then(|h| h.parse::<TraceHeader>().ok()) {
        dofs_telemetry::set_parent_from_header(&span, &header);
    }
    dofs_telemetry::record_order_id(&span, execution);
    span
}

/// The header the state's task passes on (Root + Parent = the state span),
/// or `None` when spans are not traced (no telemetry installed).
pub fn task_trace_header(state_span: &Span) -> Option<String> {
    state_span
        .in_scope(dofs_telemetry::outgoing_trace_header)
        .map(|h| h.to_string())
}

/// Records on a state span what the step's history says: the state type,
/// the error of a failed attempt (and the span's error status), the retry
/// back-off.
pub fn finish_state_span(span: &Span, events: &[HistoryEvent]) {
    if let Some(state_type) = events.iter().find_map(|e| e.kind.state_type()) {
        span.record("state.type", state_type.as_str());
    }
    for event in events {
        match event.kind {
            kind if kind.is_task_failure() || kind.ends_in_failure() => {
                if let Some(error) = event.detail_value().get("error").and_then(Value::as_str) {
                    span.record("error", error);
                    span.record("otel.status_code", "ERROR");
                }
            }
            HistoryEventKind::TaskRetryScheduled => {
                if let Some(delay) = event.detail_value().get("delay_ms").and_then(Value::as_i64) {
                    span.record("retry.delay_ms", delay);
                }
            }
            _ => {}
        }
    }
}
