//! `dofs-lambda-harness`: runs the five DOFS Lambda bootstraps the way Lambda
//! runs them, without AWS.
//!
//! - [`tools`]: finds the outside tools (moto, python) in `target/tools/venv`
//!   or on `PATH`; missing ones fail under `CI=true` and skip loudly
//!   otherwise.
//! - [`moto`]: a moto server on a free 127.0.0.1 port, with the DOFS tables,
//!   queues and state machine created in it; stopped when dropped.
//! - [`runtime_api`]: a fake Lambda Runtime API (`/invocation/next`,
//!   `/response`, `/error`, `/init/error`) written with axum. The
//!   aws-lambda-rust-runtime's own tests mock single requests; here a real
//!   bootstrap process has to loop against it, which needs a long-polling
//!   `/next` and per-invocation outcomes.
//! - [`function`]: builds the bootstrap binaries with cargo and runs one as a
//!   child process with Lambda's environment, capturing stdout/stderr and
//!   reading its peak RSS.
//! - [`events`]: Lambda event fixtures (API Gateway HTTP API v2, SQS).
//! - [`xray`]: a UDP stand-in for the X-Ray daemon, a validator of the
//!   segment documents it receives, and the assembly of a trace from them
//!   and the segments AWS records itself (which the harness plays).
//! - [`recorder`]: a recording HTTP proxy in front of moto, to check the
//!   requests the SDK really sends.
//!
//! The integration tests are in `tests/it/` (among them the `dofs-aws`
//! adapters' contract suites on moto, `tests/it/contracts.rs`) and
//! `tests/telemetry_run.rs` (dofs-telemetry's runtime loop against
//! [`runtime_api`], in-process, so it has a binary of its own);
//! `src/bin/lambda_bench.rs` measures cold start and memory against a
//! Python + boto3 bootstrap.

pub mod events;
pub mod function;
pub mod moto;
pub mod recorder;
pub mod runtime_api;
pub mod tools;
pub mod xray;

use std::path::PathBuf;

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// Errors of the harness itself (not of the code under test).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

impl HarnessError {
    /// `map_err(HarnessError::io("doing what"))` for I/O errors.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }

    /// A setup step that failed, with its error's text.
    pub fn setup(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        HarnessError::Setup(format!("{what}: {err}"))
    }
}
