//! validator's Lambda bootstrap: telemetry and configuration once per
//! process, then the runtime loop. All logic is in `lib.rs`; the validator
//! touches no AWS service, so no clients are built.

use std::sync::Arc;

use dofs_core::SystemClock;
use dofs_lambda::config::{Env, ValidatorConfig};
use dofs_lambda::startup::{because, or_exit};
use dofs_telemetry::TelemetryConfig;
use validator::Validator;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let telemetry = or_exit(
        TelemetryConfig::from_env("validator")
            .and_then(dofs_telemetry::init)
            .map_err(because("TelemetryInitError")),
    )
    .await;
    let ValidatorConfig {} = or_exit(ValidatorConfig::from_env(&Env::from_process())).await;
    let handler = Validator::new(Arc::new(SystemClock));
    let handler = &handler;
    dofs_telemetry::run(telemetry, move |event| handler.handle(event)).await
}
