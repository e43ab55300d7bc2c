//! What to export and where: [`TelemetryConfig`], read from the environment
//! once at start-up ([`TelemetryConfig::from_env`]) so a bad value fails the
//! cold start with a clear message instead of every invocation.

use std::fmt;
use std::sync::Arc;

use crate::emf::MetricsSink;
use crate::error::TelemetryError;
use crate::traces::SpanSink;

/// `LOG_LEVEL`: a level (`info`) or `RUST_LOG`-style directives (`info,aws_smithy_runtime=warn`).
pub const LOG_LEVEL_ENV: &str = "LOG_LEVEL";
/// Lambda's application log level, used when `LOG_LEVEL` is not set.
pub const LAMBDA_LOG_LEVEL_ENV: &str = "AWS_LAMBDA_LOG_LEVEL";
/// The X-Ray daemon's UDP address; Lambda sets it when tracing is active.
pub const XRAY_DAEMON_ADDRESS_ENV: &str = "AWS_XRAY_DAEMON_ADDRESS";
/// `xray` (default), `otlp` or `none`.
pub const TRACE_EXPORTER_ENV: &str = "DOFS_TRACE_EXPORTER";
/// The collector endpoint for `DOFS_TRACE_EXPORTER=otlp`.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The deployed function's name, which Lambda sets: X-Ray segments are named
/// after it and it is the `function` dimension of EMF metrics, so two stacks'
/// `validator`s are two nodes and two metrics.
pub const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";
/// The X-Ray daemon address when Lambda does not give one (the daemon's default).
pub const DEFAULT_XRAY_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// Where spans go.
pub enum TraceExport {
    /// X-Ray segment documents over UDP to the daemon at `addr` (`host:port`),
    /// segments named `segment_name` (the deployed function,
    /// `AWS_LAMBDA_FUNCTION_NAME`; the function name when `None`).
    XrayDaemon {
        addr: String,
        segment_name: Option<String>,
    },
    /// OpenTelemetry collector over OTLP. Not built (it would pull in an HTTP
    /// or gRPC stack); `init` refuses it with [`TelemetryError::OtlpNotBuilt`].
    Otlp { endpoint: String },
    /// Spans are still created (trace context still propagates to the next
    /// hop) but nothing is exported.
    Disabled,
    /// Spans are handed to this sink at every flush: the local runtime stores
    /// them in SQLite, tests collect them.
    Custom(Arc<dyn SpanSink>),
}

impl fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceExport::XrayDaemon { addr, segment_name } => f
                .debug_struct("XrayDaemon")
                .field("addr", addr)
                .field("segment_name", segment_name)
                .finish(),
            TraceExport::Otlp { endpoint } => {
                f.debug_struct("Otlp").field("endpoint", endpoint).finish()
            }
            TraceExport::Disabled => f.write_str("Disabled"),
            TraceExport::Custom(sink) => f.debug_tuple("Custom").field(sink).finish(),
        }
    }
}

/// Where metrics go.
pub enum MetricsExport {
    /// CloudWatch Embedded Metric Format lines on the log writer (stdout on Lambda).
    Emf,
    /// Metrics are discarded.
    Disabled,
    /// Every flushed metric is handed to this sink (the local runtime's alarms).
    Custom(Arc<dyn MetricsSink>),
}

impl fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExport::Emf => f.write_str("Emf"),
            MetricsExport::Disabled => f.write_str("Disabled"),
            MetricsExport::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Everything [`crate::init`] needs.
#[derive(Debug)]
pub struct TelemetryConfig {
    /// The function's logical name (`api_handler`, …): the `function` field of
    /// every log line and the `function` metric dimension. In the local
    /// runtime this is only the default; each invocation names its function.
    pub function_name: String,
    /// The value of the `function` dimension of EMF metrics when set: the
    /// deployed function name (`AWS_LAMBDA_FUNCTION_NAME`, e.g.
    /// `dofs-prod-validator`), so that two stacks in one account and region
    /// publish two metrics instead of adding up in one. `None` (the local
    /// runtime, tests) keeps each invocation's function name.
    pub metric_dimension: Option<String>,
    /// A level or `RUST_LOG`-style directives; `info` by default.
    pub log_level: String,
    pub traces: TraceExport,
    pub metrics: MetricsExport,
    /// Where each order's log lines also go (the local runtime's log
    /// store); `None` on Lambda, where CloudWatch Logs keeps the output.
    pub log_sink: Option<std::sync::Arc<dyn crate::logs::LogSink>>,
}

impl TelemetryConfig {
    /// Logs at `info`, X-Ray daemon on its default address, EMF metrics.
    pub fn new(function_name: impl Into<String>) -> Self {
        Self {
            function_name: function_name.into(),
            metric_dimension: None,
            log_level: "info".to_owned(),
            traces: TraceExport::XrayDaemon {
                addr: DEFAULT_XRAY_DAEMON_ADDRESS.to_owned(),
                segment_name: None,
            },
            metrics: MetricsExport::Emf,
            log_sink: None,
        }
    }

    /// Reads `LOG_LEVEL`, `DOFS_TRACE_EXPORTER` (`xray` default, `otlp`,
    /// `none`), `AWS_XRAY_DAEMON_ADDRESS`, `AWS_LAMBDA_FUNCTION_NAME` and
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(function_name: &str) -> Result<Self, TelemetryError> {
        Self::from_lookup(function_name, |name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any variable lookup (tests pass a map).
    pub fn from_lookup(
        function_name: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TelemetryError> {
        let non_empty = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // Lambda's own application log level (advanced logging controls) is
        // the fallback; it knows FATAL, which tracing calls ERROR.
        let log_level = non_empty(LOG_LEVEL_ENV)
            .or_else(|| {
                non_empty(LAMBDA_LOG_LEVEL_ENV).map(|level| {
                    match level.to_ascii_lowercase().as_str() {
                        "fatal" => "error".to_owned(),
                        other => other.to_owned(),
                    }
                })
            })
            .unwrap_or_else(|| "info".to_owned());
        crate::logs::parse_filter(&log_level)?;
        let exporter = non_empty(TRACE_EXPORTER_ENV).unwrap_or_else(|| "xray".to_owned());
        let traces = match exporter.to_ascii_lowercase().as_str() {
            "xray" => {
                let addr = non_empty(XRAY_DAEMON_ADDRESS_ENV)
                    .unwrap_or_else(|| DEFAULT_XRAY_DAEMON_ADDRESS.to_owned());
                crate::traces::resolve_daemon_address(&addr).map_err(|reason| {
                    TelemetryError::InvalidEnv {
                        name: XRAY_DAEMON_ADDRESS_ENV,
                        value: addr.clone(),
                        reason,
                    }
                })?;
                TraceExport::XrayDaemon {
                    addr,
                    segment_name: non_empty(FUNCTION_NAME_ENV),
                }
            }
            "otlp" => {
                let endpoint = non_empty(OTLP_ENDPOINT_ENV)
                    .unwrap_or_else(|| "http://127.0.0.1:4318".to_owned());
                return Err(TelemetryError::OtlpNotBuilt { endpoint });
            }
            "none" | "off" | "disabled" => TraceExport::Disabled,
            _ => {
                return Err(TelemetryError::InvalidEnv {
                    name: TRACE_EXPORTER_ENV,
                    value: exporter,
                    reason: "expected xray, otlp or none".to_owned(),
                })
            }
        };
        Ok(Self {
            function_name: function_name.to_owned(),
            metric_dimension: non_empty(FUNCTION_NAME_ENV),
            log_level,
            traces,
            metrics: MetricsExport::Emf,
            log_sink: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TelemetryConfig::from_lookup("validator", |name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_to_info_xray_on_the_default_daemon_and_emf() {
        let config = config(&[]).unwrap();
        assert_eq!(config.function_name, "validator");
        assert_eq!(config.log_level, "info");
        assert!(
            matches!(&config.traces, TraceExport::XrayDaemon { addr, segment_name: None } if addr == DEFAULT_XRAY_DAEMON_ADDRESS)
        );
        assert!(matches!(config.metrics, MetricsExport::Emf));
    }

    #[test]
    fn reads_level_daemon_address_and_exporter() {
        let config = config(&[
            ("LOG_LEVEL", "debug,h2=warn"),
            ("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.129:2000"),
            ("AWS_LAMBDA_FUNCTION_NAME", "dofs-prod-validator"),
        ])
        .unwrap();
        assert_eq!(config.log_level, "debug,h2=warn");
        assert!(
            matches!(&config.traces, TraceExport::XrayDaemon { addr, segment_name: Some(name) }
                if addr == "169.254.79.129:2000" && name == "dofs-prod-validator")
        );
        let config = super::TelemetryConfig::from_lookup("x", |n| {
            (n == TRACE_EXPORTER_ENV).then(|| "none".to_owned())
        })
        .unwrap();
        assert!(matches!(config.traces, TraceExport::Disabled));
    }

    #[test]
    fn falls_back_to_lambdas_log_level() {
        assert_eq!(
            config(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")])
                .unwrap()
                .log_level,
            "error"
        );
        assert_eq!(
            config(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])
                .unwrap()
                .log_level,
            "debug"
        );
        let both = config(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("LOG_LEVEL", "warn")]).unwrap();
        assert_eq!(both.log_level, "warn");
    }

    #[test]
    fn rejects_bad_values_at_start_up() {
        assert!(matches!(
            config(&[("LOG_LEVEL", "loud=[")]),
            Err(TelemetryError::InvalidLogLevel { .. })
        ));
        assert!(matches!(
            config(&[("DOFS_TRACE_EXPORTER", "jaeger")]),
            Err(TelemetryError::InvalidEnv {
                name: TRACE_EXPORTER_ENV,
                ..
            })
        ));
        assert!(matches!(
            config(&[("AWS_XRAY_DAEMON_ADDRESS", "no port")]),
            Err(TelemetryError::InvalidEnv {
                name: XRAY_DAEMON_ADDRESS_ENV,
                ..
            })
        ));
        assert!(matches!(
            config(&[("DOFS_TRACE_EXPORTER", "otlp")]),
            Err(TelemetryError::OtlpNotBuilt { .. })
        ));
    }
}
