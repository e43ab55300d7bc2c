//! `dofs-telemetry`: observability for every DOFS function, in one call.
//!
//! Ops take one order id and see its whole journey: JSON log lines that
//! carry `order_id` and `trace_id`, one connected X-Ray trace searchable by
//! the annotation `order_id`, and EMF metrics whose lines name the order.
//!
//! ```no_run
//! # async fn handle(e: lambda_runtime::LambdaEvent<serde_json::Value>) -> Result<serde_json::Value, dofs_core::PortError> { Ok(e.payload) }
//! # async fn main_() -> Result<(), lambda_runtime::Error> {
//! let telemetry = dofs_telemetry::init(dofs_telemetry::TelemetryConfig::from_env("validator")?)?;
//! dofs_telemetry::run(telemetry, handle).await
//! # }
//! ```
//!
//! Modules:
//! - [`config`]: [`TelemetryConfig`] from the environment (`LOG_LEVEL`,
//!   `DOFS_TRACE_EXPORTER`, `AWS_XRAY_DAEMON_ADDRESS`).
//! - `logs` (private): the JSON log layer that flattens span fields;
//!   [`LogFormat::Pretty`] writes tracing-subscriber's human lines instead
//!   ([`init_with_format`]), for `dofs serve` on a terminal.
//! - [`init_scoped_with_writer`]: the same installation for one thread, for
//!   tests and benchmarks that need several configurations in one process.
//! - [`traces`]: OpenTelemetry spans flushed per invocation, and the
//!   [`SpanSink`] for custom destinations.
//! - [`xray`]: what X-Ray receives of them, [`xray::SegmentTranslation`]
//!   (used by the functions on the daemon and by `dofs trace` alike).
//! - `sampling` (private): trace ids and sampling decisions forced for one
//!   span (a header without `Parent`, api_handler's per-order decision).
//! - [`emf`]: the CloudWatch EMF metrics recorder and the [`MetricsSink`].
//! - [`context`] helpers: [`outgoing_trace_header`], [`set_parent_from_header`],
//!   [`record_order_id`], [`current_trace_id`], [`context::start_order_trace`],
//!   [`context::record_failure`], [`context::record_http`].
//! - [`aws_call`]: the span of one AWS SDK call (an X-Ray `aws` subsegment),
//!   without the SDK: `dofs-aws`'s interceptor drives it.
//! - [`invocation`]: [`run`] for Lambda, [`invoke`] for one call, the panic
//!   hook.
//! - [`metric`]: the custom metric names; [`trace_header`]: the X-Ray header.
//! - `testing` (feature `testing`): what tests of telemetry output share — a
//!   `Capture` writer for log and EMF lines and a `SpanData` builder.
//!
//! The local runtime (one process, five functions) uses [`init_with_writer`]
//! with [`TraceExport::Custom`] / [`MetricsExport::Custom`] sinks and calls
//! [`invoke`] with [`Invocation::function`] set: the function name, like the
//! order, is read from the current span, never from the process.
//!
//! OTLP export is not built: it would pull an HTTP or gRPC client stack into
//! every function for a second-choice exporter; `DOFS_TRACE_EXPORTER=otlp`
//! fails at start-up with [`TelemetryError::OtlpNotBuilt`].

pub mod aws_call;
pub mod config;
pub mod context;
pub mod emf;
pub mod error;
pub mod invocation;
mod logs;
pub mod metric;
mod sampling;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace_header;
pub mod traces;
pub mod xray;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::{Dispatch, Level, Metadata};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

pub use config::{MetricsExport, TelemetryConfig, TraceExport};
pub use context::{
    current_trace_id, outgoing_trace_header, record_order_id, set_parent_from_header,
};
pub use emf::{MetricSample, MetricsSink};
pub use error::TelemetryError;
pub use invocation::{install_panic_hook, invoke, run, Invocation};
pub use logs::LogSink;
pub use trace_header::TraceHeader;
pub use traces::{SpanData, SpanSink};

/// The installed telemetry: cheap to clone; [`Telemetry::flush`] after every
/// invocation ([`run`] and [`invoke`] do it for you).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    function_name: String,
    provider: SdkTracerProvider,
    metrics: emf::EmfRecorder,
    started: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("function_name", &self.inner.function_name)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Exports the finished spans and writes the pending metrics. Never fails:
    /// an unreachable exporter is reported once and its spans dropped.
    pub fn flush(&self) {
        // Errors are reported by the processor itself; nothing to add here.
        let _ = self.inner.provider.force_flush();
        self.inner.metrics.flush();
    }

    /// The configured function name (the default `function` of logs and metrics).
    pub fn function_name(&self) -> &str {
        &self.inner.function_name
    }

    /// True the first time `function` is invoked in this process: its cold start.
    fn first_invocation_of(&self, function: &str) -> bool {
        self.inner
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(function.to_owned())
    }
}

/// Spans, events and targets sent to OpenTelemetry: INFO+ spans and WARN+
/// events (which become span events), never the exporter's own reports nor
/// the Lambda runtime's wrapper span (our invocation span replaces it).
fn exported(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    if logs::is_telemetry_internal(target) || target.starts_with("lambda_runtime") {
        return false;
    }
    if meta.is_span() {
        *meta.level() <= Level::INFO
    } else {
        *meta.level() <= Level::WARN
    }
}

/// Builds the subscriber, tracer provider and metrics recorder without
/// installing them anywhere.
fn build(
    config: TelemetryConfig,
    format: LogFormat,
    writer: BoxMakeWriter,
) -> Result<(Telemetry, Dispatch), TelemetryError> {
    let filter = logs::parse_filter(&config.log_level)?;
    let writer = Arc::new(writer);
    let resource = Resource::builder_empty()
        .with_service_name(config.function_name.clone())
        .build();
    let mut startup_warning = None;
    let sink: Option<Arc<dyn SpanSink>> = match config.traces {
        TraceExport::XrayDaemon { addr, segment_name } => match xray::XraySink::connect(
            &addr,
            segment_name.unwrap_or_else(|| config.function_name.clone()),
        ) {
            Ok(sink) => Some(Arc::new(sink)),
            Err(reason) => {
                startup_warning = Some(format!(
                    "X-Ray daemon {addr:?} unusable ({reason}); spans are dropped"
                ));
                None
            }
        },
        TraceExport::Otlp { endpoint } => return Err(TelemetryError::OtlpNotBuilt { endpoint }),
        TraceExport::Disabled => None,
        TraceExport::Custom(sink) => Some(sink),
    };
    let provider = SdkTracerProvider::builder()
        .with_id_generator(sampling::Ids::default())
        .with_sampler(sampling::Decider::default())
        .with_resource(resource)
        .with_span_processor(traces::InvocationProcessor::new(sink))
        .build();
    let tracer = provider.tracer("dofs-telemetry");
    let metrics_output = match config.metrics {
        MetricsExport::Emf => emf::MetricsOutput::Emf(Arc::clone(&writer)),
        MetricsExport::Disabled => emf::MetricsOutput::Disabled,
        MetricsExport::Custom(sink) => emf::MetricsOutput::Sink(sink),
    };
    let metrics = emf::EmfRecorder::new(
        config.function_name.clone(),
        config.metric_dimension.clone(),
        metrics_output,
    );

    let json = logs::JsonLogLayer::new(Arc::clone(&writer), config.function_name.clone())
        .with_sink(config.log_sink.clone());
    let (json, human) = match format {
        LogFormat::Json => (json, None),
        LogFormat::Pretty { ansi } => (
            json.fields_only(),
            Some(
                tracing_subscriber::fmt::layer()
                    .with_writer(logs::SharedWriter(writer))
                    .with_ansi(ansi)
                    .with_filter(logs::LogFilter(logs::parse_filter(&config.log_level)?)),
            ),
        ),
    };
    let subscriber = Registry::default()
        .with(json.with_filter(logs::LogFilter(filter)))
        .with(human)
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_tracked_inactivity(false)
                .with_filter(filter_fn(exported)),
        );
    let dispatch = Dispatch::new(subscriber);
    if let Some(warning) = startup_warning {
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(target: "dofs_telemetry::export", "{warning}");
        });
    }
    let telemetry = Telemetry {
        inner: Arc::new(Inner {
            function_name: config.function_name,
            provider,
            metrics,
            started: Mutex::new(HashSet::new()),
        }),
    };
    Ok((telemetry, dispatch))
}

/// Installs telemetry for the process, writing logs and EMF to stdout: the
/// global `tracing` subscriber, the OpenTelemetry tracer provider, the
/// global `metrics` recorder and the panic hook ([`install_panic_hook`]).
/// Once per process.
pub fn init(config: TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    init_with_writer(config, std::io::stdout)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, span fields flattened in: what CloudWatch
    /// Logs Insights and the tests read. What every function writes.
    #[default]
    Json,
    /// tracing-subscriber's human format (level, target, span context,
    /// message, fields), for a person reading a terminal; `ansi` colours it.
    Pretty { ansi: bool },
}

/// [`init`] with logs and EMF lines going to `writer` (tests capture them).
pub fn init_with_writer<W>(config: TelemetryConfig, writer: W) -> Result<Telemetry, TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    init_with_format(config, LogFormat::Json, writer)
}

/// [`init_with_writer`] with log lines in `format`.
pub fn init_with_format<W>(
    config: TelemetryConfig,
    format: LogFormat,
    writer: W,
) -> Result<Telemetry, TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (telemetry, dispatch) = build(config, format, BoxMakeWriter::new(writer))?;
    install_panic_hook();
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|_| TelemetryError::AlreadyInitialised("tracing subscriber"))?;
    metrics::set_global_recorder(telemetry.inner.metrics.clone())
        .map_err(|_| TelemetryError::AlreadyInitialised("metrics recorder"))?;
    Ok(telemetry)
}

/// Telemetry installed for the current thread only, until the guard drops:
/// for tests and benchmarks that build several configurations in one
/// process (the global installation is once per process). Use a
/// single-threaded runtime, since the scope is the thread. The panic hook
/// is not installed (a test's failure must reach the test's output; call
/// [`install_panic_hook`] to have it).
pub fn init_scoped_with_writer<W>(
    config: TelemetryConfig,
    writer: W,
) -> Result<(Telemetry, ScopeGuard), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    init_scoped_with_format(config, LogFormat::Json, writer)
}

/// [`init_scoped_with_writer`] with log lines in `format`.
pub fn init_scoped_with_format<W>(
    config: TelemetryConfig,
    format: LogFormat,
    writer: W,
) -> Result<(Telemetry, ScopeGuard), TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let (telemetry, dispatch) = build(config, format, BoxMakeWriter::new(writer))?;
    let tracing_guard = tracing::dispatcher::set_default(&dispatch);
    // `metrics` scopes a recorder by reference; leaking one handle (a
    // pointer) per scope keeps the guard free of lifetimes.
    let recorder: &'static emf::EmfRecorder = Box::leak(Box::new(telemetry.inner.metrics.clone()));
    let metrics_guard = metrics::set_default_local_recorder(recorder);
    Ok((
        telemetry,
        ScopeGuard {
            _metrics: metrics_guard,
            _tracing: tracing_guard,
        },
    ))
}

/// Keeps [`init_scoped_with_writer`]'s telemetry installed on this thread.
pub struct ScopeGuard {
    _metrics: metrics::LocalRecorderGuard<'static>,
    _tracing: tracing::dispatcher::DefaultGuard,
}
