//! What a Lambda bootstrap does when it cannot start.
//!
//! `lambda_runtime` 1.5 posts to `/runtime/init/error` only for SnapStart
//! hook failures; an error *before* `lambda_runtime::run` (a missing
//! variable, a telemetry pipeline that cannot be built) would just end the
//! process, and Lambda would report a bare `Runtime.ExitError`. So the
//! bootstraps go through [`or_exit`]: it logs the error, posts it once to
//! `/runtime/init/error` with a clear `errorType` and message, and exits
//! non-zero.

use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, Ordering};

use lambda_runtime_api_client::body::Body;
use lambda_runtime_api_client::{build_request, PooledClient};

use crate::config::ConfigError;

/// The Runtime API path for initialisation errors.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// A startup failure as Lambda should see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitFailure {
    /// The `errorType` Lambda shows, e.g. `InvalidConfiguration`.
    pub error_type: String,
    /// The error and its whole source chain.
    pub message: String,
}

impl InitFailure {
    pub fn new(error_type: impl Into<String>, err: &(dyn StdError + 'static)) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            error_type: error_type.into(),
            message,
        }
    }

    fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "errorType": self.error_type,
            "errorMessage": self.message,
        })
    }
}

/// `map_err(because("TelemetryInitError"))`: turns any error into an
/// [`InitFailure`] of that type.
pub fn because<E>(error_type: &'static str) -> impl FnOnce(E) -> InitFailure
where
    E: StdError + 'static,
{
    move |err| InitFailure::new(error_type, &err)
}

impl From<ConfigError> for InitFailure {
    fn from(err: ConfigError) -> Self {
        Self::new("InvalidConfiguration", &err)
    }
}

/// Why the init error could not be delivered (it is logged, never fatal on
/// top of the failure being reported).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("AWS_LAMBDA_RUNTIME_API is not set: not running under a Lambda Runtime API")]
    NoRuntimeApi,
    #[error("AWS_LAMBDA_RUNTIME_API={0:?} is not host:port")]
    BadRuntimeApi(String),
    #[error("could not build the init error request")]
    Request(#[source] http::Error),
    #[error("could not reach the Runtime API")]
    Transport(#[source] Box<dyn StdError + Send + Sync>),
    #[error("the Runtime API answered {0} to the init error")]
    Status(http::StatusCode),
    #[error("an init error was already reported by this process")]
    AlreadyReported,
}

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Posts `failure` to `/runtime/init/error` on the Runtime API at
/// `runtime_api` (`host:port`, as in `AWS_LAMBDA_RUNTIME_API`). Lambda
/// accepts one init error per environment, so later calls do nothing.
pub async fn report_init_error(
    runtime_api: &str,
    failure: &InitFailure,
) -> Result<(), ReportError> {
    if REPORTED.swap(true, Ordering::SeqCst) {
        return Err(ReportError::AlreadyReported);
    }
    let base: http::Uri = format!("http://{runtime_api}")
        .parse()
        .ok()
        .filter(|uri: &http::Uri| uri.authority().is_some())
        .ok_or_else(|| ReportError::BadRuntimeApi(runtime_api.to_owned()))?;
    let client = PooledClient::builder().with_endpoint(base).build();
    let request = build_request()
        .method(http::Method::POST)
        .uri(INIT_ERROR_PATH)
        .header("content-type", "application/json")
        .header("lambda-runtime-function-error-type", &failure.error_type)
        .body(Body::from(failure.body().to_string()))
        .map_err(ReportError::Request)?;
    let response = client.call(request).await.map_err(ReportError::Transport)?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(ReportError::Status(response.status()))
    }
}

/// Logs `failure`, reports it to the Runtime API named by
/// `AWS_LAMBDA_RUNTIME_API` and exits with status 1.
pub async fn fail_init(failure: InitFailure) -> ! {
    // Logging may not be set up yet (its own setup may be what failed):
    // then stderr, which Lambda also sends to CloudWatch.
    if tracing::dispatcher::has_been_set() {
        tracing::error!(error_type = %failure.error_type, error = %failure.message, "function could not start");
    } else {
        eprintln!(
            "{}",
            serde_json::json!({"level": "ERROR", "message": "function could not start", "errorType": failure.error_type, "error": failure.message})
        );
    }
    let reported = match std::env::var("AWS_LAMBDA_RUNTIME_API") {
        Ok(api) if !api.trim().is_empty() => report_init_error(api.trim(), &failure).await,
        _ => Err(ReportError::NoRuntimeApi),
    };
    if let Err(err) = reported {
        eprintln!("could not report the init error to Lambda: {err}");
    }
    std::process::exit(1)
}

/// The value, or — on error — [`fail_init`]. For the few fallible steps of a
/// bootstrap's `main`.
pub async fn or_exit<T, E: Into<InitFailure>>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => fail_init(err.into()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn message_carries_the_whole_chain() {
        let err = Outer(std::io::Error::other("inner"));
        let failure = InitFailure::new("TelemetryInitError", &err);
        assert_eq!(failure.message, "outer: inner");
        assert_eq!(failure.body()["errorType"], "TelemetryInitError");
    }

    #[test]
    fn config_errors_become_invalid_configuration() {
        let err =
            crate::config::OrdersTableConfig::from_env(&crate::config::Env::default()).unwrap_err();
        let failure = InitFailure::from(err);
        assert_eq!(failure.error_type, "InvalidConfiguration");
        assert!(failure.message.contains("ORDERS_TABLE"));
    }
}
