//! `dofs-aws`: the `dofs-core` ports on AWS, and what the Lambda bootstraps
//! share.
//!
//! - [`dynamodb`]: [`DynamoOrderStore`] and [`DynamoFailedOrderStore`], the
//!   orders and failed_orders tables, with conditional writes.
//! - [`sqs`]: [`SqsOrderQueue`], sending orders with an `AWSTraceHeader`.
//! - [`sfn`]: [`StepFunctionsWorkflow`], one execution per order.
//! - [`config`]: each function's configuration from the environment,
//!   validated at startup with every problem named.
//! - [`startup`]: reporting a failed start to `/runtime/init/error`, which
//!   `lambda_runtime` does not do for errors raised before `run`.
//!
//! SDK errors become [`dofs_core::PortError`]s in one place (a private
//! `error` module): throttling, 5xx and timeouts are `Transient`, validation
//! errors `InvalidInput`, the rest `Internal`, always with the SDK error kept
//! as the source.
//!
//! Clients are built once per process from the standard configuration chain
//! ([`sdk_config`]), which honours `AWS_ENDPOINT_URL` (moto in tests).

pub mod config;
pub mod dynamodb;
mod error;
pub mod sfn;
pub mod sqs;
pub mod startup;

pub use dynamodb::{DynamoFailedOrderStore, DynamoOrderStore};
pub use sfn::{StateMachineArn, StepFunctionsWorkflow};
pub use sqs::SqsOrderQueue;

/// The shared SDK configuration from the standard chain: environment
/// (including `AWS_ENDPOINT_URL`), shared config files, then the Lambda
/// execution role's credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
