//! dlq_handler's Lambda bootstrap: telemetry, configuration and one
//! DynamoDB client (shared by both tables) once per process, then the
//! runtime loop. All logic is in `lib.rs`.

use std::sync::Arc;

use dlq_handler::DlqHandler;
use dofs_aws::AwsClients;
use dofs_core::SystemClock;
use dofs_lambda::config::{DlqHandlerConfig, Env};
use dofs_lambda::startup::{because, or_exit};
use dofs_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = or_exit(
        TelemetryConfig::from_env("dlq_handler")
            .and_then(dofs_telemetry::init)
            .map_err(because("TelemetryInitError")),
    )
    .await;
    let config = or_exit(DlqHandlerConfig::from_env(&Env::from_process())).await;
    let aws = AwsClients::load().await;
    let handler = DlqHandler::new(
        Arc::new(aws.order_store(config.orders_table)),
        Arc::new(aws.failed_order_store(config.failed_orders_table)),
        Arc::new(SystemClock),
    );
    let handler = &handler;
    dofs_telemetry::run(telemetry, move |event| handler.handle(event)).await
}
