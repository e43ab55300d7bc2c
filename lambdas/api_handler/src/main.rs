//! api_handler's Lambda bootstrap: telemetry, configuration and clients once
//! per process, then the runtime loop. All logic is in `lib.rs`.

use std::sync::Arc;

use api_handler::{ApiHandler, TraceSampling};
use dofs_aws::AwsClients;
use dofs_core::SystemClock;
use dofs_lambda::config::{ApiHandlerConfig, Env};
use dofs_lambda::startup::{because, or_exit};
use dofs_telemetry::TelemetryConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = or_exit(
        TelemetryConfig::from_env("api_handler")
            .and_then(dofs_telemetry::init)
            .map_err(because("TelemetryInitError")),
    )
    .await;
    let config = or_exit(ApiHandlerConfig::from_env(&Env::from_process())).await;
    let aws = AwsClients::load().await;
    let handler = ApiHandler::new(
        Arc::new(aws.workflow(config.state_machine)),
        Arc::new(aws.order_store(config.orders_table)),
        Arc::new(SystemClock),
    )
    .with_trace_sampling(TraceSampling::new(config.order_trace_sample_rate));
    let handler = &handler;
    dofs_telemetry::run(telemetry, move |event| handler.handle(event)).await
}
