//! `dofs-aws`: the `dofs-core` ports on the AWS SDK, and the clients they
//! share.
//!
//! - [`dynamodb`]: [`DynamoOrderStore`] and [`DynamoFailedOrderStore`], the
//!   orders and failed_orders tables, with conditional writes.
//! - [`sfn`]: [`StepFunctionsWorkflow`], one execution per order, started
//!   with the order's trace as its X-Ray header.
//! - [`xray`]: [`XrayInterceptor`], which makes every SDK call an X-Ray
//!   `aws` subsegment; every client [`AwsClients`] builds has it.
//!
//! SDK errors become [`dofs_core::PortError`]s in one place (a private
//! `error` module): throttling, 5xx and timeouts are `Transient`, validation
//! errors `InvalidInput`, the rest `Internal`, always with the SDK error kept
//! as the source.
//!
//! Clients are built once per process from the standard configuration chain
//! ([`AwsClients`], [`sdk_config`]), which honours `AWS_ENDPOINT_URL` (moto in tests).
//!
//! The adapters' contract suites (`dofs_core::testkit::contract`) run on
//! moto in `harness/tests/it/contracts.rs` (package `dofs-lambda-harness`,
//! which starts and provisions moto); the unit tests here need no AWS.
//!
//! What a Lambda bootstrap needs besides the SDK (configuration from the
//! environment, init errors, SQS batch handling) is in `dofs-lambda`, so that
//! code can do without this crate.

pub mod dynamodb;
mod error;
pub mod sfn;
pub mod xray;

pub use dynamodb::{DynamoFailedOrderStore, DynamoOrderStore};
pub use sfn::StepFunctionsWorkflow;
pub use xray::XrayInterceptor;

use std::sync::OnceLock;

/// The shared SDK configuration from the standard chain: environment
/// (including `AWS_ENDPOINT_URL`), shared config files, then the Lambda
/// execution role's credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The service clients of one process, each built on first use from one
/// [`aws_config::SdkConfig`] and then shared (an SDK client owns its
/// connection pool, so two adapters on one service share one client).
#[derive(Debug)]
pub struct AwsClients {
    sdk: aws_config::SdkConfig,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    sfn: OnceLock<aws_sdk_sfn::Client>,
}

impl AwsClients {
    /// Clients on the standard configuration chain ([`sdk_config`]).
    pub async fn load() -> Self {
        Self::new(sdk_config().await)
    }

    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        Self {
            sdk,
            dynamodb: OnceLock::new(),
            sfn: OnceLock::new(),
        }
    }

    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// The DynamoDB client, its calls traced ([`XrayInterceptor`]).
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| {
                let config = aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                    .interceptor(XrayInterceptor)
                    .build();
                aws_sdk_dynamodb::Client::from_conf(config)
            })
            .clone()
    }

    /// The Step Functions client, its calls traced ([`XrayInterceptor`]).
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        self.sfn
            .get_or_init(|| {
                let config = aws_sdk_sfn::config::Builder::from(&self.sdk)
                    .interceptor(XrayInterceptor)
                    .build();
                aws_sdk_sfn::Client::from_conf(config)
            })
            .clone()
    }

    pub fn order_store(&self, table: impl Into<String>) -> DynamoOrderStore {
        DynamoOrderStore::new(self.dynamodb(), table)
    }

    pub fn failed_order_store(&self, table: impl Into<String>) -> DynamoFailedOrderStore {
        DynamoFailedOrderStore::new(self.dynamodb(), table)
    }

    pub fn workflow(&self, state_machine: dofs_core::StateMachineArn) -> StepFunctionsWorkflow {
        StepFunctionsWorkflow::new(self.sfn(), state_machine)
    }
}
