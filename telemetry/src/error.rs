//! The one error type of `dofs-telemetry`: everything that can go wrong while
//! setting telemetry up. Nothing after start-up returns an error: a failing
//! exporter or writer is logged once and its data dropped, so telemetry can
//! never fail an invocation.

/// Why telemetry could not be configured or installed.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An environment variable holds a value we cannot use.
    #[error("invalid {name}={value:?}: {reason}")]
    InvalidEnv {
        name: &'static str,
        value: String,
        reason: String,
    },
    /// `LOG_LEVEL` is not a level or a list of `RUST_LOG`-style directives.
    #[error("invalid log level {value:?}")]
    InvalidLogLevel {
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The OTLP exporter was asked for but is not compiled in (see the crate docs).
    #[error("OTLP trace export (endpoint {endpoint}) is not built into dofs-telemetry; use DOFS_TRACE_EXPORTER=xray or none")]
    OtlpNotBuilt { endpoint: String },
    /// A global tracing subscriber or metrics recorder is already installed.
    #[error("telemetry is already initialised in this process ({0})")]
    AlreadyInitialised(&'static str),
}
