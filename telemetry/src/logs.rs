//! JSON log lines with the invocation's and the order's context flattened in.
//!
//! One object per line: `timestamp`, `level`, `message`, the event's fields,
//! and the fields of every span the event happened in (`function`,
//! `request_id`, `cold_start`, `trace_id`, `order_id`, …), innermost span
//! winning. tracing-subscriber's own JSON formatter nests span fields under
//! `span`/`spans`, so a CloudWatch Logs Insights query `filter order_id = …`
//! would miss them; this small layer writes them at the top level instead.
//! It also keeps each span's fields in the span's extensions
//! ([`SpanFields`]), which is where the metrics recorder finds the function
//! and the order of the current invocation, and where
//! [`crate::record_order_id`] adds an `order_id` a span did not declare.

use std::io::Write;
use std::sync::Arc;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Span, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::{LookupSpan, Registry};

use crate::error::TelemetryError;

/// Parses `LOG_LEVEL` (a level or `RUST_LOG`-style directives).
///
/// Unless the directives name it, `opentelemetry_aws` is held at WARN: its
/// exporter instruments every translated span with an INFO span of its
/// own, which would cost each flush more than the export itself.
pub(crate) fn parse_filter(directives: &str) -> Result<EnvFilter, TelemetryError> {
    let invalid = |source| TelemetryError::InvalidLogLevel {
        value: directives.to_owned(),
        source,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse(directives)
        .map_err(invalid)?;
    if directives.contains("opentelemetry_aws") {
        return Ok(filter);
    }
    Ok(filter.add_directive("opentelemetry_aws=warn".parse().map_err(invalid)?))
}

/// The fields recorded on one span, kept in its extensions.
#[derive(Debug, Default, Clone)]
pub(crate) struct SpanFields(pub(crate) Map<String, Value>);

/// Span field names as they appear in logs. The Lambda runtime's own span
/// says `requestId`; the full `xrayTraceId` header is dropped because our
/// invocation span records the trace id (`trace_id`) itself.
fn log_key(name: &str) -> Option<&str> {
    match name {
        "requestId" => Some("request_id"),
        "xrayTraceId" => None,
        _ if name.starts_with("otel.")
            || name.starts_with("annotation.")
            || name.starts_with("faas.")
            || name.starts_with("exception.") =>
        {
            None
        }
        _ => Some(name),
    }
}

struct JsonVisitor<'a> {
    fields: &'a mut Map<String, Value>,
    message: Option<&'a mut Option<String>>,
}

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            if let Some(message) = self.message.as_mut() {
                **message = Some(match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                });
                return;
            }
        }
        if let Some(key) = log_key(field.name()) {
            self.fields.insert(key.to_owned(), value);
        }
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole source chain, never Debug output.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(err) = source {
            text.push_str(": ");
            text.push_str(&err.to_string());
            source = err.source();
        }
        self.put(field, Value::from(text));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// Records span fields into [`SpanFields`] and writes every event as one
/// JSON line (unless [`JsonLogLayer::fields_only`]: another layer writes
/// the lines, and the fields are still what metrics and
/// [`crate::record_order_id`] need).
pub(crate) struct JsonLogLayer {
    writer: Arc<BoxMakeWriter>,
    default_function: String,
    write_events: bool,
    sink: Option<Arc<dyn LogSink>>,
}

/// Where an order's log lines also go, besides the writer: the local
/// runtime keeps them for `dofs logs <order_id>`, as CloudWatch Logs keeps
/// them for a Logs Insights `filter order_id = …`. It gets the lines the
/// level filter lets through, in JSON whatever the terminal format, and
/// only those that name an order.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// `line` is the JSON line as written, without its newline.
    fn record(&self, order_id: &str, line: &str);

    /// Every line the level filter lets through, order or not: `function`
    /// wrote `bytes` (newline included) at `level`, for a sink that meters
    /// what CloudWatch Logs would ingest.
    fn written(&self, _function: &str, _level: &str, _bytes: usize) {}
}

impl JsonLogLayer {
    pub(crate) fn new(writer: Arc<BoxMakeWriter>, default_function: String) -> Self {
        Self {
            writer,
            default_function,
            write_events: true,
            sink: None,
        }
    }

    /// Also hands each order's lines to `sink`.
    pub(crate) fn with_sink(mut self, sink: Option<Arc<dyn LogSink>>) -> Self {
        self.sink = sink;
        self
    }

    /// Keeps the span fields and writes no line.
    pub(crate) fn fields_only(mut self) -> Self {
        self.write_events = false;
        self
    }
}

/// The log writer shared by the JSON layer and the human one: whichever
/// format is chosen, lines go where [`crate::init_with_writer`] was told.
pub(crate) struct SharedWriter(pub(crate) Arc<BoxMakeWriter>);

impl<'a> MakeWriter<'a> for SharedWriter {
    type Writer = <BoxMakeWriter as MakeWriter<'a>>::Writer;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        self.0.make_writer_for(meta)
    }
}

impl<S> Layer<S> for JsonLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor {
            fields: &mut fields.0,
            message: None,
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor {
                fields: &mut fields.0,
                message: None,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !self.write_events && self.sink.is_none() {
            return;
        }
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    for (key, value) in &span_fields.0 {
                        fields.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        let mut message = None;
        event.record(&mut JsonVisitor {
            fields: &mut fields,
            message: Some(&mut message),
        });
        let meta = event.metadata();
        let order_id = fields
            .get("order_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let function = fields
            .get("function")
            .and_then(Value::as_str)
            .unwrap_or(&self.default_function)
            .to_owned();
        let line = render_line(
            meta,
            message.as_deref().unwrap_or_default(),
            &self.default_function,
            fields,
        );
        if self.write_events {
            let mut writer = self.writer.make_writer_for(meta);
            // A log line that cannot be written has nowhere to be reported.
            let _ = writer.write_all(line.as_bytes());
        }
        if let Some(sink) = &self.sink {
            sink.written(&function, meta.level().as_str(), line.len());
            if let Some(order_id) = order_id {
                sink.record(&order_id, line.trim_end());
            }
        }
    }
}

fn render_line(
    meta: &Metadata<'_>,
    message: &str,
    default_function: &str,
    mut fields: Map<String, Value>,
) -> String {
    let mut line = String::with_capacity(256);
    line.push_str("{\"timestamp\":");
    push_json(
        &mut line,
        // The one machine spelling of a time, as Lambda's own JSON log
        // lines write it too (milliseconds, `Z`).
        &Value::from(dofs_core::timestamp::format(&chrono::Utc::now())),
    );
    line.push_str(",\"level\":");
    push_json(&mut line, &Value::from(meta.level().as_str()));
    line.push_str(",\"message\":");
    push_json(&mut line, &Value::from(message));
    let function = fields
        .remove("function")
        .unwrap_or_else(|| Value::from(default_function));
    line.push_str(",\"function\":");
    push_json(&mut line, &function);
    for (key, value) in &fields {
        if matches!(key.as_str(), "timestamp" | "level" | "message" | "target") {
            continue;
        }
        line.push(',');
        push_json(&mut line, &Value::from(key.as_str()));
        line.push(':');
        push_json(&mut line, value);
    }
    line.push_str(",\"target\":");
    push_json(&mut line, &Value::from(meta.target()));
    line.push_str("}\n");
    line
}

fn push_json(out: &mut String, value: &Value) {
    // Serialising a Value into a String cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// Targets of the exporters' own instrumentation (`opentelemetry_aws`
/// instruments every translated span) and of our export reports.
pub(crate) fn is_telemetry_internal(target: &str) -> bool {
    target.starts_with("opentelemetry") || target.starts_with("dofs_telemetry::export")
}

/// Spans whose fields the JSON layer keeps whatever `LOG_LEVEL` says.
fn always_kept_span(meta: &Metadata<'_>) -> bool {
    meta.is_span() && *meta.level() <= Level::INFO && !is_telemetry_internal(meta.target())
}

/// The per-layer filter of [`JsonLogLayer`]: events as `LOG_LEVEL` says, and
/// spans at INFO or above always, because their fields (order_id, function)
/// are needed by metrics and by WARN/ERROR lines even when INFO lines are off
/// — except the exporters' own spans, which nothing needs, so the
/// translation of a flush creates no span at all.
pub(crate) struct LogFilter(pub(crate) EnvFilter);

impl<S> Filter<S> for LogFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        always_kept_span(meta) || Filter::<S>::enabled(&self.0, meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if always_kept_span(meta) {
            tracing::subscriber::Interest::always()
        } else {
            Filter::<S>::callsite_enabled(&self.0, meta)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(
            Filter::<S>::max_level_hint(&self.0)
                .map_or(LevelFilter::TRACE, |hint| hint.max(LevelFilter::INFO)),
        )
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        Filter::<S>::on_new_span(&self.0, attrs, id, ctx);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        Filter::<S>::on_record(&self.0, id, values, ctx);
    }
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::<S>::on_enter(&self.0, id, ctx);
    }
    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        Filter::<S>::on_exit(&self.0, id, ctx);
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        Filter::<S>::on_close(&self.0, id, ctx);
    }
}

/// Runs `f` on the recorded fields of `span` (nothing if the span is disabled
/// or our subscriber is not the span's).
pub(crate) fn with_span_fields<R>(
    span: &Span,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        let fields = extensions.get_mut::<SpanFields>()?;
        Some(f(&mut fields.0))
    })
    .flatten()
}

/// The context of the current span: for each of `keys`, the value from the
/// innermost span that has it.
pub(crate) fn current_fields(keys: &[&str]) -> Vec<Option<Value>> {
    let mut found = vec![None; keys.len()];
    Span::current().with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<Registry>() else {
            return;
        };
        let Some(span) = registry.span(id) else {
            return;
        };
        for span in span.scope() {
            if let Some(fields) = span.extensions().get::<SpanFields>() {
                for (slot, key) in found.iter_mut().zip(keys) {
                    if slot.is_none() {
                        *slot = fields.0.get(*key).cloned();
                    }
                }
            }
            if found.iter().all(Option::is_some) {
                break;
            }
        }
    });
    found
}
