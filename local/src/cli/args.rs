//! `dofs serve`'s arguments and their parsers, and the one conversion from
//! arguments to a [`RuntimeConfig`].

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::identity::FunctionName;
use crate::observability::alarms::WebhookConfig;
use crate::runtime::RuntimeConfig;
use crate::services::lambda::FunctionTimeouts;
use crate::services::step_functions::ExpressStarts;

/// `dofs serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "DOFS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Share of fulfilment attempts that fail, 0 to 1.
    #[arg(long, env = "FAILURE_RATE", default_value_t = 0.3, value_parser = parse_failure_rate)]
    pub failure_rate: f64,
    /// Makes simulated failures deterministic.
    #[arg(long, env = "FAILURE_SEED")]
    pub failure_seed: Option<u64>,
    /// Order-queue visibility timeout (short locally, so a dead-lettered
    /// order shows up within seconds).
    #[arg(long, env = "DOFS_VISIBILITY_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub visibility_timeout: Duration,
    /// Receives before a message moves to the dead-letter queue.
    #[arg(long, env = "DOFS_MAX_RECEIVE_COUNT", default_value_t = 3)]
    pub max_receive_count: u32,
    /// Most messages per function invocation.
    #[arg(long, env = "DOFS_BATCH_SIZE", default_value_t = 10)]
    pub batch_size: usize,
    /// How often idle pollers and the engine look for work.
    #[arg(long, env = "DOFS_POLL_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// How long a poller waits to fill a batch.
    #[arg(long, env = "DOFS_BATCHING_WINDOW", default_value = "0s", value_parser = parse_duration)]
    pub batching_window: Duration,
    /// Concurrent pollers per queue (Lambda's SQS event source mapping
    /// starts with five concurrent batches).
    #[arg(long, env = "DOFS_POLLERS", default_value_t = 5)]
    pub pollers: usize,
    /// Executions advanced concurrently. Each waits on the database most of
    /// the time, so many keep the writer's group commits full.
    #[arg(long, env = "DOFS_WORKFLOW_WORKERS", default_value_t = 128)]
    pub workflow_workers: usize,
    /// Lambda timeout of every function (`30s`, the default) or of one
    /// (`validator=300ms`), as each function's Terraform `timeout` is its
    /// own. Repeatable; one function's own timeout wins over the one for all.
    #[arg(long, env = "DOFS_FUNCTION_TIMEOUT", default_value = "30s", value_delimiter = ',', value_parser = parse_function_timeout)]
    pub function_timeout: Vec<(Option<FunctionName>, Duration)>,
    /// Workflow definition to run instead of the built-in
    /// terraform/order_workflow.asl.json.
    #[arg(long, env = "DOFS_WORKFLOW_FILE")]
    pub workflow_file: Option<PathBuf>,
    /// Store spans for `dofs trace` (`off`: trace context still propagates,
    /// nothing is stored).
    // `Set`: a bool field is otherwise a flag that takes no value.
    #[arg(long, env = "DOFS_TRACES", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub traces: bool,
    /// How often finished spans are written to the data directory.
    #[arg(long, env = "DOFS_TRACE_FLUSH_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub trace_flush_interval: Duration,
    /// Also export every span over OTLP/HTTP (protobuf) to this base URL
    /// (`/v1/traces` is appended, as the OpenTelemetry spec says), e.g.
    /// `http://127.0.0.1:4318` for Jaeger or an OpenTelemetry Collector.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// POST every alarm state change here, shaped like an SNS → HTTPS
    /// notification (the CloudWatch alarm JSON in `Message`).
    #[arg(long, env = "DOFS_ALARM_WEBHOOK")]
    pub alarm_webhook: Option<String>,
    /// POST the alarm JSON itself (SNS raw message delivery).
    #[arg(long, env = "DOFS_ALARM_WEBHOOK_RAW")]
    pub alarm_webhook_raw: bool,
    /// Multiplies every alarm period (0.01: five minutes become three
    /// seconds, so a demo alarm fires in seconds). Floor one second.
    #[arg(long, env = "DOFS_ALARM_PERIOD_SCALE", default_value_t = 1.0)]
    pub alarm_period_scale: f64,
    /// Alarm definitions to use instead of the built-in dashboards/alarms.json.
    #[arg(long, env = "DOFS_ALARMS_FILE")]
    pub alarms_file: Option<PathBuf>,
    /// How often queue gauges are sampled, metrics stored and alarms evaluated.
    #[arg(long, env = "DOFS_METRICS_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub metrics_interval: Duration,
    /// How long metric points are kept.
    #[arg(long, env = "DOFS_METRICS_RETENTION", default_value = "1440m", value_parser = parse_duration)]
    pub metrics_retention: Duration,
    /// How long the workflow history, spans and queue deliveries of ended
    /// orders are kept (the orders themselves always are); 0 keeps
    /// everything.
    #[arg(long, env = "DOFS_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,
    /// Pack the workflow history of closed executions and quiet spans into
    /// compressed archives (`off`: keep every row as written, e.g. to
    /// measure what compaction costs).
    #[arg(long, env = "DOFS_COMPACTION", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub compaction: bool,
    /// Serve the web console under /_dofs/.
    #[arg(long, env = "DOFS_CONSOLE", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    pub console: bool,
    /// Disable the event source mapping of this function (`dlq_handler` or
    /// `fulfill_order`), as `update-event-source-mapping --no-enabled`
    /// would: its queue fills up (e.g. to watch the DLQ alarm fire).
    #[arg(long, env = "DOFS_DISABLE_MAPPING", value_parser = parse_mapping_function)]
    pub disable_mapping: Vec<FunctionName>,
    /// A `Host` name to accept besides the loopback ones (repeatable).
    #[arg(long, env = "DOFS_ALLOW_HOST", value_delimiter = ',')]
    pub allow_host: Vec<String>,
    /// Allow listening on a non-loopback address (the API and console have
    /// no authentication).
    #[arg(long, env = "DOFS_ALLOW_REMOTE")]
    pub allow_remote: bool,
    /// Most HTTP connections open at once (more wait to be accepted).
    #[arg(long, env = "DOFS_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// How long a request's head may take to arrive.
    #[arg(long, env = "DOFS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a request's whole body may take to arrive (then 408).
    #[arg(long, env = "DOFS_BODY_READ_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// A connection on which nothing moves this long is closed.
    #[arg(long, env = "DOFS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Inject a fault from the start, `<function>=<kind>` with kind
    /// unavailable (its tables return the transient error), failing (every
    /// invocation errors), slow (outlasts its timeout), throttled
    /// (counted in AWS/Lambda Throttles) or disabled (its event source
    /// mapping polls nothing). Repeatable (comma-separated in the
    /// environment); see `dofs fault`.
    #[arg(long = "fault", env = "DOFS_FAULT", value_delimiter = ',', value_parser = parse_fault)]
    pub faults: Vec<crate::faults::FaultSpec>,
    /// Reserve concurrency for a function, `<function>=<N>`, as
    /// `reserved_concurrent_executions` does: invocations beyond N at once
    /// are throttled (AWS/Lambda Throttles). Repeatable.
    #[arg(long = "reserved-concurrency", env = "DOFS_RESERVED_CONCURRENCY", value_delimiter = ',', value_parser = parse_reserved_concurrency)]
    pub reserved_concurrency: Vec<(FunctionName, u32)>,
    /// Log lines as `json` (what ops tools and the tests read) or `pretty`
    /// (tracing-subscriber's human format). Unset: pretty when stderr,
    /// where the logs go, is a terminal, else JSON.
    #[arg(long, env = "DOFS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,
    /// The workflow's execution timeout, instead of the definition's
    /// `TimeoutSeconds` (e.g. to rehearse executions timing out).
    #[arg(long, env = "DOFS_WORKFLOW_TIMEOUT", value_parser = parse_duration)]
    pub workflow_timeout: Option<Duration>,
    /// The state machine's type, as Terraform's `workflow_type`: `STANDARD`
    /// or `EXPRESS` (at-least-once starts, no name deduplication, no
    /// DescribeExecution, executions of at most 5 minutes).
    #[arg(long, env = "DOFS_WORKFLOW_TYPE", default_value = "STANDARD")]
    pub workflow_type: dofs_cost::WorkflowType,
    /// Memory of every function in MB, as Terraform's `function_memory_mb`:
    /// what `dofs cost` bills each invocation's duration at.
    #[arg(long, env = "DOFS_FUNCTION_MEMORY_MB", default_value_t = crate::observability::usage::DEFAULT_FUNCTION_MEMORY_MB, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub function_memory_mb: u32,
    /// Under EXPRESS, start every execution twice, the worst at-least-once
    /// allows (to watch the idempotent steps keep each order single).
    #[arg(long, env = "DOFS_EXPRESS_START_TWICE")]
    pub express_start_twice: bool,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Json,
    Pretty,
}

impl ServeArgs {
    /// The log format asked for, or the one that suits where stderr goes:
    /// a person at a terminal reads pretty lines (coloured unless
    /// `NO_COLOR`), a file or a pipe gets JSON.
    pub fn log_format(&self) -> dofs_telemetry::LogFormat {
        let terminal = std::io::stderr().is_terminal();
        let format = self.log_format.unwrap_or(if terminal {
            LogFormatArg::Pretty
        } else {
            LogFormatArg::Json
        });
        match format {
            LogFormatArg::Json => dofs_telemetry::LogFormat::Json,
            LogFormatArg::Pretty => dofs_telemetry::LogFormat::Pretty {
                ansi: super::style::stderr_colour_on(),
            },
        }
    }
}

/// `DUR` (every function) or `<function>=DUR`.
fn parse_function_timeout(text: &str) -> Result<(Option<FunctionName>, Duration), String> {
    match text.split_once('=') {
        None => Ok((None, parse_duration(text)?)),
        Some((function, duration)) => {
            let function = FunctionName::resolve(function.trim())
                .ok_or_else(|| format!("{function:?} is not a DOFS function"))?;
            Ok((Some(function), parse_duration(duration.trim())?))
        }
    }
}

/// The `--function-timeout` settings folded: the last one for all
/// functions (30 s if none), then each function's own.
fn function_timeouts(settings: &[(Option<FunctionName>, Duration)]) -> FunctionTimeouts {
    let default = settings
        .iter()
        .rev()
        .find_map(|(function, timeout)| function.is_none().then_some(*timeout));
    let all = default.map_or_else(FunctionTimeouts::default, FunctionTimeouts::all);
    settings
        .iter()
        .filter_map(|(function, timeout)| function.map(|f| (f, *timeout)))
        .fold(all, |timeouts, (function, timeout)| {
            timeouts.with(function, timeout)
        })
}

fn parse_reserved_concurrency(text: &str) -> Result<(FunctionName, u32), String> {
    let (function, n) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not <function>=<N>"))?;
    let function = FunctionName::resolve(function.trim())
        .ok_or_else(|| format!("{function:?} is not a DOFS function"))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("{n:?} is not a whole number of concurrent invocations"))?;
    Ok((function, n))
}

/// A failure rate, checked as fulfill_order checks `FAILURE_RATE`, so a bad
/// one is a usage error (exit 2) before anything is created.
fn parse_failure_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number between 0 and 1"))?;
    fulfill_order::FailureSimulator::new(rate, None)
        .map(|simulator| simulator.rate())
        .map_err(|err| err.to_string())
}

/// An order status, any case, as its canonical name (a usage error if it
/// is none of them).
pub fn parse_status(text: &str) -> Result<String, String> {
    text.parse::<dofs_core::OrderStatus>()
        .map(|status| status.as_str().to_owned())
        .map_err(|err| err.to_string())
}

fn parse_fault(text: &str) -> Result<crate::faults::FaultSpec, String> {
    text.parse()
}

fn parse_mapping_function(text: &str) -> Result<FunctionName, String> {
    match FunctionName::resolve(text) {
        Some(f @ (FunctionName::FulfillOrder | FunctionName::DlqHandler)) => Ok(f),
        _ => Err(format!(
            "{text:?} has no event source mapping (fulfill_order or dlq_handler)"
        )),
    }
}

/// Parses `on`/`off` (also true/false, 1/0, yes/no).
pub fn parse_switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        other => Err(format!("{other:?} is not on or off")),
    }
}

/// Parses a duration: a bare number of seconds (`30`, `1.5`), or what
/// [`humantime::parse_duration`] reads — `250ms`, `2s`, `5m`, `2h`, `7d`,
/// and combinations such as `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // Bare seconds came before units, and scripts still pass them.
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} must be a non-negative number of seconds"));
    }
    humantime::parse_duration(text).map_err(|err| {
        format!(
            "{text:?} is not a duration such as 30, 250ms, 2s, 5m, 2h, 7d or \"1h 30m\" ({err})"
        )
    })
}

impl ServeArgs {
    /// The runtime configuration these arguments ask for, on `data_dir`.
    /// Checks what clap cannot (the webhook URL's scheme).
    pub fn into_config(self, data_dir: &Path) -> anyhow::Result<RuntimeConfig> {
        let alarm_webhook = match self.alarm_webhook {
            Some(url) => {
                let parsed = reqwest::Url::parse(&url)
                    .with_context(|| format!("--alarm-webhook {url:?} is not a URL"))?;
                anyhow::ensure!(
                    parsed.scheme() == "http",
                    "--alarm-webhook {url:?}: only http:// is built in (put a TLS-terminating relay in front)"
                );
                Some(WebhookConfig {
                    url,
                    raw: self.alarm_webhook_raw,
                })
            }
            None => None,
        };
        Ok(RuntimeConfig {
            data_dir: data_dir.to_owned(),
            addr: self.addr,
            failure_rate: self.failure_rate,
            failure_seed: self.failure_seed,
            visibility_timeout: self.visibility_timeout,
            max_receive_count: self.max_receive_count,
            batch_size: self.batch_size,
            poll_interval: self.poll_interval,
            batching_window: self.batching_window,
            pollers: self.pollers,
            workflow_workers: self.workflow_workers,
            function_timeouts: function_timeouts(&self.function_timeout),
            workflow_file: self.workflow_file,
            traces: self.traces,
            otlp_endpoint: self.otlp_endpoint,
            trace_flush_interval: self.trace_flush_interval,
            alarm_webhook,
            alarm_period_scale: self.alarm_period_scale,
            alarms_file: self.alarms_file,
            metrics_interval: self.metrics_interval,
            metrics_retention: self.metrics_retention,
            retention: self.retention,
            compaction: self.compaction,
            console: self.console,
            disabled_mappings: self.disable_mapping,
            faults: self.faults,
            reserved_concurrency: self.reserved_concurrency.into_iter().collect(),
            workflow_timeout: self.workflow_timeout,
            workflow_type: self.workflow_type,
            function_memory_mb: self.function_memory_mb,
            express_starts: if self.express_start_twice {
                ExpressStarts::Twice
            } else {
                ExpressStarts::Once
            },
            log_level: log_level(),
            allowed_hosts: self.allow_host,
            allow_remote: self.allow_remote,
            connection_limits: crate::http_server::ConnectionLimits {
                max_connections: self.max_connections,
                header_read_timeout: self.header_read_timeout,
                body_read_timeout: self.body_read_timeout,
                idle_timeout: self.idle_timeout,
            },
        })
    }
}

/// `RUST_LOG`, else `LOG_LEVEL`, else info.
pub fn log_level() -> String {
    ["RUST_LOG", "LOG_LEVEL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned())
}
