//! Spans → OpenTelemetry → X-Ray, flushed per invocation.
//!
//! `tracing` spans become OpenTelemetry spans (`tracing-opentelemetry`) with
//! X-Ray-compatible ids (`opentelemetry-aws`'s `XrayIdGenerator`), parented on
//! the incoming X-Ray trace header and exported as X-Ray segment documents
//! ([`crate::xray`]) over UDP to the daemon.
//!
//! The span processor is our own (`InvocationProcessor`) rather than the
//! SDK's batch or simple processor: Lambda freezes the process as soon as the
//! response is returned, so a background export thread (batch) may never run,
//! and exporting at every span end (simple) cannot see the whole invocation.
//! Ours buffers the invocation's ended spans and exports them synchronously in
//! [`crate::Telemetry::flush`], after copying `annotation.order_id` from each
//! span to its descendants (and to an ancestor in the same trace whose
//! descendants name that one order: validator's invocation segment is the
//! order's although only its `validator.validate` span says so) so every
//! span of an order is searchable in X-Ray by `annotation.order_id`, and
//! after leaving out an invocation whose work was an order not sampled
//! (with everything below it: an order not sampled sends nothing, see
//! [`crate::context::start_order_trace`]). An
//! export error is reported once and the spans are dropped: telemetry never
//! fails an invocation.
//!
//! `SpanExporter` is not object-safe (its `export` is an `async fn`), so a
//! custom destination implements the small synchronous [`SpanSink`] instead.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanProcessor};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use opentelemetry_sdk::trace::SpanData;
/// The parts of a [`SpanData`], for a sink that rebuilds spans it stored
/// (the local runtime's X-Ray view).
pub use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

use crate::trace_header::TraceHeader;

/// The attribute X-Ray indexes as the annotation `order_id`.
pub const ORDER_ID_ANNOTATION: &str = "annotation.order_id";

/// Marks a span that is not sent, nor any span below it: the invocation
/// whose work was an order not sampled (see
/// [`crate::context::start_order_trace`]). Never exported itself.
pub(crate) const UNSENT_ATTRIBUTE: &str = "dofs.unsent";

/// Why a [`SpanSink`] could not take a batch.
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A destination for finished spans, called synchronously at every flush
/// (so it must not wait on the async runtime it is called from). The local
/// runtime implements it to store spans in SQLite.
pub trait SpanSink: Send + Sync + fmt::Debug {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError>;
}

/// Spans buffered per invocation beyond which new spans are dropped (and
/// counted) rather than letting memory grow when nobody flushes.
const MAX_BUFFERED_SPANS: usize = 4096;

/// Buffers sampled spans until [`SpanProcessor::force_flush`], then hands them
/// to the sink. See the module docs for why.
pub(crate) struct InvocationProcessor {
    sink: Option<Arc<dyn SpanSink>>,
    buffer: Mutex<Vec<SpanData>>,
    /// Sampled spans started and not yet ended: a flush holds back the
    /// descendants of an open span, so a tree is exported whole (its
    /// order annotation inherited) even when concurrent invocations flush
    /// while it is still running.
    open: Mutex<HashSet<SpanId>>,
    dropped: AtomicUsize,
    reported_failure: AtomicBool,
}

impl fmt::Debug for InvocationProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvocationProcessor")
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl InvocationProcessor {
    pub(crate) fn new(sink: Option<Arc<dyn SpanSink>>) -> Self {
        Self {
            sink,
            buffer: Mutex::new(Vec::new()),
            open: Mutex::new(HashSet::new()),
            dropped: AtomicUsize::new(0),
            reported_failure: AtomicBool::new(false),
        }
    }

    fn report_once(&self, message: &str) {
        if !self.reported_failure.swap(true, Ordering::Relaxed) {
            tracing::warn!(target: "dofs_telemetry::export", error = message, "trace export failed; spans are dropped (reported once)");
        }
    }
}

impl SpanProcessor for InvocationProcessor {
    fn on_start(&self, span: &mut Span, _cx: &Context) {
        let cx = span.span_context();
        if self.sink.is_some() && cx.is_sampled() {
            let id = cx.span_id();
            self.open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id);
        }
    }

    fn on_end(&self, span: SpanData) {
        if self.sink.is_none() || !span.span_context.is_sampled() {
            return;
        }
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&span.span_context.span_id());
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len() >= MAX_BUFFERED_SPANS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.push(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let mut spans = {
            let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let (ready, held) = split_ready(std::mem::take(&mut *buffer), &open);
            *buffer = held;
            ready
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(target: "dofs_telemetry::export", dropped, "span buffer was full; spans were dropped");
        }
        drop_unsent(&mut spans);
        if spans.is_empty() {
            return Ok(());
        }
        inherit_order_ids(&mut spans);
        if let Err(err) = sink.export(spans) {
            self.report_once(&err.to_string());
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // Nothing will end any more: export what is held back too.
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.force_flush()
    }
}

/// The parent link of each span in a batch, to walk a span's local
/// ancestors.
struct LocalParents(HashMap<SpanId, (SpanId, bool)>);

impl LocalParents {
    fn of(spans: &[SpanData]) -> Self {
        Self(
            spans
                .iter()
                .map(|s| {
                    (
                        s.span_context.span_id(),
                        (s.parent_span_id, s.parent_span_is_remote),
                    )
                })
                .collect(),
        )
    }

    /// `span`'s local parent, grandparent, ...: the walk ends before a
    /// remote or invalid parent, and after one not in the batch (still open,
    /// ended and exported earlier, or never ours). Bounded: a malformed
    /// batch must not loop forever.
    fn ancestors<'a>(&'a self, span: &SpanData) -> impl Iterator<Item = SpanId> + 'a {
        let mut next = Some((span.parent_span_id, span.parent_span_is_remote));
        std::iter::from_fn(move || {
            let (parent, remote) = next.take()?;
            if remote || parent == SpanId::INVALID {
                return None;
            }
            next = self.0.get(&parent).copied();
            Some(parent)
        })
        .take(64)
    }
}

/// Splits ended spans into those ready to export and those whose local
/// ancestor is still open (they wait for it, to leave with their tree).
fn split_ready(spans: Vec<SpanData>, open: &HashSet<SpanId>) -> (Vec<SpanData>, Vec<SpanData>) {
    let parents = LocalParents::of(&spans);
    let waits = |span: &SpanData| parents.ancestors(span).any(|id| open.contains(&id));
    spans.into_iter().partition(|span| !waits(span))
}

/// Removes the spans marked [`UNSENT_ATTRIBUTE`] and every span below one
/// (through local parents, however deep). They are all in the same flush:
/// a descendant waits for its open ancestors ([`split_ready`]).
fn drop_unsent(spans: &mut Vec<SpanData>) {
    let unsent: HashSet<SpanId> = spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == UNSENT_ATTRIBUTE)
        })
        .map(|s| s.span_context.span_id())
        .collect();
    if unsent.is_empty() {
        return;
    }
    let parents = LocalParents::of(spans);
    spans.retain(|span| {
        !unsent.contains(&span.span_context.span_id())
            && !parents.ancestors(span).any(|id| unsent.contains(&id))
    });
}

/// Gives every span without `annotation.order_id` the one of its nearest
/// ancestor in the batch, so a DynamoDB call inside an order's record span is
/// found by the same X-Ray search as the record span itself; then gives a
/// span still without one the order its descendants in the same trace name,
/// when they name exactly one (an invocation segment whose work was one
/// order's). A batch of several orders, or a status read (which annotates
/// another key), lends nothing.
pub(crate) fn inherit_order_ids(spans: &mut [SpanData]) {
    let order_of = |span: &SpanData| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == ORDER_ID_ANNOTATION)
            .map(|kv| kv.value.clone())
    };
    let by_id: HashMap<SpanId, (SpanId, Option<Value>)> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), (s.parent_span_id, order_of(s))))
        .collect();
    for span in spans.iter_mut() {
        if order_of(span).is_some() {
            continue;
        }
        let mut parent = span.parent_span_id;
        // Bounded: a malformed batch must not loop forever.
        for _ in 0..64 {
            let Some((grandparent, order)) = by_id.get(&parent) else {
                break;
            };
            if let Some(order) = order {
                span.attributes
                    .push(KeyValue::new(ORDER_ID_ANNOTATION, order.clone()));
                break;
            }
            parent = *grandparent;
        }
    }
    // Upwards: the orders below each span, within its trace.
    let ids: HashSet<(TraceId, SpanId)> = spans
        .iter()
        .map(|s| (s.span_context.trace_id(), s.span_context.span_id()))
        .collect();
    let mut below: HashMap<SpanId, HashSet<String>> = HashMap::new();
    for span in spans.iter() {
        let Some(order) = order_of(span) else {
            continue;
        };
        let trace = span.span_context.trace_id();
        let mut parent = span.parent_span_id;
        for _ in 0..64 {
            if !ids.contains(&(trace, parent)) {
                break;
            }
            below
                .entry(parent)
                .or_default()
                .insert(order.as_str().into_owned());
            match by_id.get(&parent) {
                Some((next, _)) => parent = *next,
                None => break,
            }
        }
    }
    for span in spans.iter_mut() {
        if order_of(span).is_some() {
            continue;
        }
        if let Some(orders) = below.get(&span.span_context.span_id()) {
            if let (1, Some(order)) = (orders.len(), orders.iter().next()) {
                span.attributes
                    .push(KeyValue::new(ORDER_ID_ANNOTATION, order.clone()));
            }
        }
    }
}

/// Resolves `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or the SDKs'
/// `tcp:host:port udp:host:port` form (UDP is what we send).
pub(crate) fn resolve_daemon_address(text: &str) -> Result<SocketAddr, String> {
    let udp = text
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(text.trim());
    udp.to_socket_addrs()
        .map_err(|err| err.to_string())?
        .next()
        .ok_or_else(|| "address resolves to nothing".to_owned())
}

/// The OpenTelemetry parent context an X-Ray header describes: its
/// `Parent` in its `Root`, sampled unless `Sampled=0` (a missing `Sampled`
/// means the decision is ours, and we sample). A header without `Parent`
/// describes no parent: the empty context. `join_header` puts a span in
/// that trace anyway.
pub fn context_from_header(header: &TraceHeader) -> Context {
    match span_context_from_header(header) {
        Some(cx) => Context::new().with_remote_span_context(cx),
        None => Context::new(),
    }
}

/// The header's trace id as OpenTelemetry's.
pub(crate) fn trace_id_of(header: &TraceHeader) -> TraceId {
    TraceId::from_hex(&header.root.replacen("1-", "", 1).replace('-', ""))
        .unwrap_or(TraceId::INVALID)
}

/// The remote parent a header names; `None` without `Parent`.
pub(crate) fn span_context_from_header(header: &TraceHeader) -> Option<SpanContext> {
    let parent = SpanId::from_hex(header.parent.as_deref()?).ok()?;
    let flags = if header.sampled == Some(false) {
        TraceFlags::default()
    } else {
        TraceFlags::SAMPLED
    };
    Some(SpanContext::new(
        trace_id_of(header),
        parent,
        flags,
        true,
        TraceState::default(),
    ))
}

/// Makes `span` (created, not started) join the trace `header` names: the
/// child of its `Parent`, or, when it names none, a root of its `Root` with
/// no parent id (X-Ray would otherwise look for a segment that never
/// exists), sampled as `Sampled` says.
pub(crate) fn join_header(span: &tracing::Span, header: &TraceHeader) {
    match span_context_from_header(header) {
        Some(parent) => {
            if let Err(err) = span.set_parent(Context::new().with_remote_span_context(parent)) {
                tracing::debug!(error = %err, "span parent not set from trace header");
            }
        }
        None => {
            if let Err(err) = span.set_parent(Context::new()) {
                tracing::debug!(error = %err, "span not made a root");
            }
            let trace_id = Some(trace_id_of(header)).filter(|id| *id != TraceId::INVALID);
            crate::sampling::start_span_with(span, trace_id, Some(header.sampled != Some(false)));
        }
    }
}

/// The X-Ray header naming `cx` as the parent of the next hop.
pub fn header_from_span_context(cx: &SpanContext) -> Option<TraceHeader> {
    if !cx.is_valid() {
        return None;
    }
    Some(TraceHeader {
        root: xray_trace_id(cx.trace_id()),
        parent: Some(format!("{:016x}", cx.span_id())),
        sampled: Some(cx.is_sampled()),
        lineage: None,
    })
}

/// An OpenTelemetry trace id in X-Ray form, `1-{8 hex}-{24 hex}`.
pub fn xray_trace_id(trace_id: TraceId) -> String {
    let hex = format!("{trace_id:032x}");
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{span, TRACE_ID};

    fn order(span: &SpanData) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == ORDER_ID_ANNOTATION)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn descendants_inherit_the_nearest_order_id() {
        let mut spans = vec![
            span(3, 2).build(),
            span(2, 1).attr(ORDER_ID_ANNOTATION, "o-1").build(),
            span(4, 1).build(),
            span(1, 0).build(),
            span(5, 3).attr(ORDER_ID_ANNOTATION, "o-2").build(),
        ];
        inherit_order_ids(&mut spans);
        assert_eq!(order(&spans[0]).as_deref(), Some("o-1"));
        assert_eq!(order(&spans[1]).as_deref(), Some("o-1"));
        assert_eq!(
            order(&spans[2]),
            None,
            "a sibling of the order's span is not the order's"
        );
        assert_eq!(
            order(&spans[3]),
            None,
            "the root's descendants name two orders"
        );
        assert_eq!(order(&spans[4]).as_deref(), Some("o-2"));
    }

    #[test]
    fn an_ancestor_takes_the_one_order_its_descendants_in_its_trace_name() {
        let mut spans = vec![
            span(1, 0).name("validator").build(),
            span(2, 1).attr(ORDER_ID_ANNOTATION, "o-1").build(),
            span(3, 2).build(),
            // A record in another trace does not lend its order to the batch.
            span(5, 0).name("fulfill_order").trace(9).build(),
            span(6, 4).attr(ORDER_ID_ANNOTATION, "o-2").build(),
        ];
        inherit_order_ids(&mut spans);
        assert_eq!(order(&spans[0]).as_deref(), Some("o-1"));
        assert_eq!(order(&spans[2]).as_deref(), Some("o-1"));
        assert_eq!(order(&spans[3]), None);
    }

    #[test]
    fn header_and_span_context_round_trip() {
        let header: TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .parse()
                .unwrap();
        let cx = span_context_from_header(&header).unwrap();
        assert!(cx.is_valid() && cx.is_sampled() && cx.is_remote());
        assert_eq!(header_from_span_context(&cx), Some(header));
        let unsampled: TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                .parse()
                .unwrap();
        assert!(!span_context_from_header(&unsampled).unwrap().is_sampled());
        let no_parent: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793".parse().unwrap();
        assert!(
            span_context_from_header(&no_parent).is_none(),
            "no parent id is invented"
        );
        assert_eq!(xray_trace_id(trace_id_of(&no_parent)), no_parent.root);
    }

    #[test]
    fn daemon_address_forms() {
        assert_eq!(
            resolve_daemon_address("127.0.0.1:2000").unwrap().port(),
            2000
        );
        assert_eq!(
            resolve_daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001").unwrap(),
            "127.0.0.2:2001".parse().unwrap()
        );
        assert!(resolve_daemon_address("nonsense").is_err());
    }

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<SpanData>>);
    impl SpanSink for Collect {
        fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
            self.0.lock().unwrap().extend(spans);
            Ok(())
        }
    }

    #[test]
    fn children_of_an_open_span_wait_for_it_and_then_inherit_its_order() {
        let sink = Arc::new(Collect::default());
        let processor = InvocationProcessor::new(Some(sink.clone()));
        processor.open.lock().unwrap().insert(SpanId::from(1u64));
        processor.on_end(span(2, 1).build());
        processor.on_end(span(9, 0).trace(8).build());
        processor.force_flush().unwrap();
        let ids: Vec<SpanId> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.span_context.span_id())
            .collect();
        assert_eq!(
            ids,
            [SpanId::from(9u64)],
            "another invocation's finished tree leaves; the child waits"
        );
        processor.on_end(span(1, 0).attr(ORDER_ID_ANNOTATION, "o-1").build());
        processor.force_flush().unwrap();
        let exported = sink.0.lock().unwrap();
        assert_eq!(exported.len(), 3);
        assert!(exported
            .iter()
            .filter(|s| s.span_context.trace_id() == TraceId::from(TRACE_ID))
            .all(|s| order(s).as_deref() == Some("o-1")));
        assert!(processor.buffer.lock().unwrap().is_empty());
    }

    #[test]
    fn an_unsent_span_and_everything_below_it_are_not_exported() {
        let sink = Arc::new(Collect::default());
        let processor = InvocationProcessor::new(Some(sink.clone()));
        processor.on_end(span(3, 2).build());
        processor.on_end(span(2, 1).build());
        processor.on_end(span(1, 0).attr(UNSENT_ATTRIBUTE, true).build());
        // Another invocation's tree, and a record in another trace whose
        // parent is remote: sent.
        processor.on_end(span(9, 0).trace(8).build());
        processor.force_flush().unwrap();
        let ids: Vec<SpanId> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.span_context.span_id())
            .collect();
        assert_eq!(ids, [SpanId::from(9u64)]);
    }

    #[derive(Debug)]
    struct Failing;
    impl SpanSink for Failing {
        fn export(&self, _spans: Vec<SpanData>) -> Result<(), SinkError> {
            Err("collector is down".into())
        }
    }

    #[test]
    fn a_failing_sink_never_fails_the_flush_and_unsampled_spans_are_skipped() {
        let processor = InvocationProcessor::new(Some(Arc::new(Failing)));
        processor.on_end(span(1, 0).build());
        processor.on_end(span(2, 0).unsampled().build());
        assert_eq!(processor.buffer.lock().unwrap().len(), 1);
        assert!(processor.force_flush().is_ok());
        assert!(processor.force_flush().is_ok());
        assert!(processor.reported_failure.load(Ordering::Relaxed));
    }
}
