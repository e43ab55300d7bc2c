//! `dofs-lambda`: what every DOFS function shares at runtime, without the
//! AWS SDK.
//!
//! A function is its handler library (`lambdas/<fn>/src/lib.rs`, written
//! against the `dofs-core` ports) plus a bootstrap (`src/main.rs`) that
//! builds the configuration, the SDK adapters (`dofs-aws`) and telemetry
//! (`dofs-telemetry`) once. This crate holds the parts of that which need no
//! SDK, so that a handler library — and the local runtime, which links all
//! five — compiles without it:
//!
//! - [`config`]: each function's configuration from the environment
//!   ([`config::Env`], [`config::ApiHandlerConfig`], ...), validated at
//!   startup with every problem named.
//! - [`startup`]: reporting a failed start to `/runtime/init/error`
//!   ([`startup::or_exit`], [`startup::because`], [`startup::InitFailure`]),
//!   which `lambda_runtime` does not do for errors raised before `run`.
//! - [`sqs`]: what a queue consumer does around each record of a batch
//!   ([`sqs::handle_records`], [`sqs::join_record_trace`],
//!   [`sqs::report_item_failure`], [`sqs::receive_count`]) and the SQS
//!   attribute names it reads.

pub mod config;
pub mod sqs;
pub mod startup;
