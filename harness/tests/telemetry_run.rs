//! `dofs_telemetry::run` inside the real `lambda_runtime` loop, in this
//! process, against the harness's fake Runtime API: the spans and EMF lines
//! of an invocation are out after its response reached the Runtime API
//! (the caller does not wait for them) and before the runtime asks for the
//! next event (when Lambda freezes the process), and errors keep their ASL
//! names.
//!
//! `tests/it/xray.rs` checks the same of the built bootstraps; this test
//! runs dofs-telemetry's loop around a handler of its own, so a failure
//! points at the telemetry crate rather than at a function. It is its own
//! test binary: the runtime reads its configuration from process
//! environment variables, and this installs telemetry globally.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use dofs_core::PortError;
use dofs_lambda_harness::function::lambda_env;
use dofs_lambda_harness::runtime_api::{Outcome, RuntimeApi};
use dofs_lambda_harness::xray::{segments, Segment, XrayDaemon};
use dofs_telemetry::testing::Capture;
use dofs_telemetry::{
    metric, record_order_id, MetricsExport, TelemetryConfig, TraceExport, TraceHeader,
};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, PortError> {
    let order_id = event.payload["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    record_order_id(&tracing::Span::current(), &order_id);
    tracing::info!("validating");
    if event.payload["reject"] == true {
        return Err(PortError::rejected("total exceeds the limit"));
    }
    metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
    Ok(json!({"order_id": order_id, "status": "VALIDATED"}))
}

/// The invocation segment of `trace`, which must have reached the daemon
/// before the runtime asked for its next event.
fn invocation_segment(
    daemon: &XrayDaemon,
    trace: &TraceHeader,
    ready: std::time::Instant,
) -> Segment {
    let segment = segments(&daemon.received())
        .unwrap()
        .into_iter()
        .find(|s| s.name() == "validator" && s.trace_id == trace.root)
        .expect("an invocation segment in the invocation's trace");
    assert!(
        segment.received_at <= ready,
        "the segment was sent after the runtime asked for its next event"
    );
    segment
}

#[tokio::test]
async fn run_flushes_spans_and_metrics_before_the_next_event_and_reports_errors_by_name() {
    let daemon = XrayDaemon::start().unwrap();
    let output = Capture::new();
    let api = RuntimeApi::start("validator").await.unwrap();
    // The output lines written by the time of each `/next` (the first
    // before any invocation, then one at the end of each).
    let written: Arc<Mutex<Vec<Vec<Value>>>> = Arc::default();
    {
        let (daemon, output, written) = (daemon.clone(), output.clone(), written.clone());
        api.on_next(move || {
            daemon.drain();
            written.lock().unwrap().push(output.lines());
        });
    }
    for (name, value) in lambda_env("validator", &api.host_port()) {
        std::env::set_var(name, value);
    }
    let telemetry = dofs_telemetry::init_with_writer(
        TelemetryConfig {
            function_name: "validator".to_owned(),
            metric_dimension: None,
            log_level: "info".to_owned(),
            traces: TraceExport::XrayDaemon {
                addr: daemon.address(),
                segment_name: None,
            },
            metrics: MetricsExport::Emf,
            log_sink: None,
        },
        output.clone(),
    )
    .unwrap();

    let first = TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let second =
        TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let invocations = async {
        let ok = api
            .invoke_settled(json!({"order_id": "ord-1"}), &first.to_string())
            .await
            .unwrap();
        let failed = api
            .invoke_settled(
                json!({"order_id": "ord-2", "reject": true}),
                &second.to_string(),
            )
            .await
            .unwrap();
        (ok, failed)
    };
    // The loop never ends by itself: it runs until both invocations ended.
    let (ok, failed) = tokio::select! {
        outcomes = invocations => outcomes,
        ended = dofs_telemetry::run(telemetry, handler) => panic!("the runtime loop ended: {ended:?}"),
    };
    let (ok, ok_ready) = (ok.outcome, ok.ready_at);
    let (failed, failed_ready) = (failed.outcome, failed.ready_at);
    let written = written.lock().unwrap()[1..].to_vec();
    assert_eq!(written.len(), 2, "one snapshot per invocation's end");

    assert_eq!(
        ok,
        Outcome::Response(json!({"order_id": "ord-1", "status": "VALIDATED"}))
    );
    let segment = invocation_segment(&daemon, &first, ok_ready);
    assert_eq!(segment.parent_id, first.parent);
    assert_eq!(segment.order_id(), Some("ord-1"));
    let emf = written[0]
        .iter()
        .find(|l| l.get(metric::ORDERS_VALIDATED).is_some())
        .expect("EMF before the next event");
    assert_eq!(emf["order_id"], "ord-1");
    assert_eq!(emf["trace_id"], first.root.as_str());
    assert_eq!(emf["function"], "validator");
    let log = written[0]
        .iter()
        .find(|l| l["message"] == "validating")
        .expect("the handler's log line before the next event");
    assert_eq!(log["order_id"], "ord-1");
    assert_eq!(log["cold_start"], true);
    assert!(log["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    let (error_type, error_message) = failed.error();
    assert_eq!(error_type, "OrderRejected");
    assert_eq!(error_message, "total exceeds the limit");
    let segment = invocation_segment(&daemon, &second, failed_ready);
    assert!(
        segment.doc["fault"] == true || segment.doc["error"] == true,
        "the failed invocation is marked: {}",
        segment.doc
    );
    let error_log = written[1]
        .iter()
        .find(|l| l["level"] == "ERROR" && l["order_id"] == "ord-2")
        .expect("the error's log line before the next event");
    assert_eq!(error_log["cold_start"], false);
    assert_ne!(error_log["request_id"], log["request_id"]);
}
