//! Test support for what telemetry writes (feature `testing`; no function
//! enables it).
//!
//! - [`Capture`]: a writer for [`crate::init_with_writer`] and
//!   [`crate::init_scoped_with_writer`] that keeps the log and EMF lines, so
//!   a test asserts on what ops would read.
//! - [`span`]: a [`SpanData`] builder, for tests of span processors and
//!   [`crate::SpanSink`]s that need finished spans without running a tracer.
//!   Times are fixed (not the clock), so durations are exact.
//!
//! ```
//! use dofs_telemetry::testing::span;
//! use dofs_telemetry::traces::ORDER_ID_ANNOTATION;
//!
//! let root = span(1, 0).name("fulfill_order").build();
//! let record = span(2, 1)
//!     .name("fulfill_order.record")
//!     .attr(ORDER_ID_ANNOTATION, "o-1")
//!     .attr("receive_count", 2i64)
//!     .build();
//! assert_eq!(record.parent_span_id, root.span_context.span_id());
//! ```

use std::borrow::Cow;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

use crate::SpanData;

/// Everything written as logs or EMF, line by line. Cheap to clone: clones
/// share one buffer, so the test keeps one and hands telemetry another.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    pub fn new() -> Self {
        Self::default()
    }

    fn buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        // A test that panicked mid-write leaves whole lines behind.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything written, as text (for a format that is not JSON).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer()).into_owned()
    }

    /// Every line, parsed; panics (the test's failure report) on a line
    /// that is not one JSON object. With `TEST_LOG` set, also prints them.
    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.buffer()).into_owned();
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("{text}");
        }
        text.lines()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(value) if value.is_object() => value,
                Ok(_) => panic!("not a JSON object: {line}"),
                Err(e) => panic!("not JSON ({e}): {line}"),
            })
            .collect()
    }

    /// The log lines (EMF lines are the ones with `_aws`).
    pub fn logs(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_none())
            .collect()
    }

    /// The EMF lines.
    pub fn emf(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l.get("_aws").is_some())
            .collect()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The trace [`span`] puts spans in unless told otherwise; in X-Ray form
/// `1-5759e988-bd862e3fe1be46a994272793`.
pub const TRACE_ID: u128 = 0x5759e988bd862e3fe1be46a994272793;

/// A finished span `id` whose parent is `parent` (`0`: none), sampled, in
/// trace [`TRACE_ID`], kind `Internal`, named `"s"`, with no attributes; it
/// starts `1_000 + id` ms after the Unix epoch and lasts 10 ms. Change any
/// of that with the [`TestSpan`] methods, then [`TestSpan::build`].
pub fn span(id: u64, parent: u64) -> TestSpan {
    let start = UNIX_EPOCH + Duration::from_millis(1_000 + id);
    TestSpan(SpanData {
        span_context: SpanContext::new(
            TraceId::from(TRACE_ID),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: Cow::Borrowed("s"),
        start_time: start,
        end_time: start + Duration::from_millis(10),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: Default::default(),
    })
}

/// A [`SpanData`] being built by [`span`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestSpan(SpanData);

impl TestSpan {
    pub fn name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.0.name = name.into();
        self
    }

    /// Adds one attribute (`annotation.order_id`, `function`, ...).
    pub fn attr(mut self, key: impl Into<Key>, value: impl Into<opentelemetry::Value>) -> Self {
        self.0.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Moves the span to another trace (same span id and flags).
    pub fn trace(mut self, trace_id: u128) -> Self {
        let cx = &self.0.span_context;
        self.0.span_context = SpanContext::new(
            TraceId::from(trace_id),
            cx.span_id(),
            cx.trace_flags(),
            false,
            TraceState::default(),
        );
        self
    }

    /// Makes the span unsampled (exporters must skip it).
    pub fn unsampled(mut self) -> Self {
        let cx = &self.0.span_context;
        self.0.span_context = SpanContext::new(
            cx.trace_id(),
            cx.span_id(),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        self
    }

    /// `Server` makes X-Ray export the span as a segment.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.0.span_kind = kind;
        self
    }

    pub fn status(mut self, status: Status) -> Self {
        self.0.status = status;
        self
    }

    /// Adds an event (a log line at WARN or above becomes one).
    pub fn event(mut self, event: Event) -> Self {
        self.0.events.events.push(event);
        self
    }

    /// Sets when the span started and ended.
    pub fn times(mut self, start: SystemTime, end: SystemTime) -> Self {
        self.0.start_time = start;
        self.0.end_time = end;
        self
    }

    pub fn build(self) -> SpanData {
        self.0
    }
}

impl From<TestSpan> for SpanData {
    fn from(span: TestSpan) -> Self {
        span.build()
    }
}
