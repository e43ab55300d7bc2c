//! fulfill_order's Lambda bootstrap: telemetry, configuration (including
//! the simulated failure rate) and the DynamoDB client once per process,
//! then the runtime loop. All logic is in `lib.rs`.

use std::sync::Arc;

use dofs_aws::AwsClients;
use dofs_core::SystemClock;
use dofs_lambda::config::{Env, FulfillOrderConfig};
use dofs_lambda::startup::{because, or_exit};
use dofs_telemetry::TelemetryConfig;
use fulfill_order::{FailureSimulator, FulfillOrder};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = or_exit(
        TelemetryConfig::from_env("fulfill_order")
            .and_then(dofs_telemetry::init)
            .map_err(because("TelemetryInitError")),
    )
    .await;
    let config = or_exit(FulfillOrderConfig::from_env(&Env::from_process())).await;
    let failures = or_exit(
        FailureSimulator::new(config.failure_rate, config.failure_seed)
            .map_err(because("InvalidConfiguration")),
    )
    .await;
    let aws = AwsClients::load().await;
    let handler = FulfillOrder::new(
        Arc::new(aws.order_store(config.orders_table)),
        Arc::new(SystemClock),
        failures,
    );
    let handler = &handler;
    dofs_telemetry::run(telemetry, move |event| handler.handle(event)).await
}
