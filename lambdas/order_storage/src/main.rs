//! order_storage's Lambda bootstrap: telemetry, configuration and the
//! DynamoDB client once per process, then the runtime loop. All logic is in
//! `lib.rs`.

use std::sync::Arc;

use dofs_aws::AwsClients;
use dofs_core::SystemClock;
use dofs_lambda::config::{Env, OrdersTableConfig};
use dofs_lambda::startup::{because, or_exit};
use dofs_telemetry::TelemetryConfig;
use order_storage::OrderStorage;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = or_exit(
        TelemetryConfig::from_env("order_storage")
            .and_then(dofs_telemetry::init)
            .map_err(because("TelemetryInitError")),
    )
    .await;
    let config = or_exit(OrdersTableConfig::from_env(&Env::from_process())).await;
    let aws = AwsClients::load().await;
    let handler = OrderStorage::new(
        Arc::new(aws.order_store(config.orders_table)),
        Arc::new(SystemClock),
    );
    let handler = &handler;
    dofs_telemetry::run(telemetry, move |event| handler.handle(event)).await
}
