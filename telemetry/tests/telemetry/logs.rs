//! JSON log lines: parseable, with the invocation's and the order's context.

use std::collections::BTreeSet;

use dofs_core::PortError;
use dofs_telemetry::{
    invoke, record_order_id, Invocation, MetricsExport, TraceExport, TraceHeader,
};
use tracing::{info, info_span, warn, Instrument};

use crate::helpers::setup;

fn invocation(request_id: &str, header: Option<TraceHeader>) -> Invocation {
    Invocation {
        function: None,
        request_id: request_id.to_owned(),
        trace_header: header,
    }
}

#[tokio::test]
async fn every_line_is_json_and_lines_inside_an_order_carry_order_id_and_trace_id() {
    let s = setup(
        "validator",
        "info",
        TraceExport::Disabled,
        MetricsExport::Emf,
    );
    let header =
        TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let result: Result<u32, PortError> = invoke(
        &s.telemetry,
        invocation("req-1", Some(header.clone())),
        || async {
            info!("invocation started");
            let span = info_span!("order", sku_count = 2);
            record_order_id(&span, "ord-42");
            async {
                info!(quantity = 3, "validating order");
            }
            .instrument(span)
            .await;
            Ok(7)
        },
    )
    .await;
    assert_eq!(result.unwrap(), 7);

    let logs = s.output.logs();
    assert_eq!(logs.len(), 2, "{logs:#?}");
    for line in &logs {
        assert_eq!(line["function"], "validator");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["cold_start"], true);
        assert_eq!(line["trace_id"], header.root.as_str());
        assert_eq!(line["level"], "INFO");
        let at = line["timestamp"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 24, "{at}: RFC 3339 ms Z");
    }
    assert_eq!(logs[0]["message"], "invocation started");
    assert!(logs[0].get("order_id").is_none());
    assert_eq!(logs[1]["message"], "validating order");
    assert_eq!(logs[1]["order_id"], "ord-42");
    assert_eq!(logs[1]["quantity"], 3);
    assert_eq!(logs[1]["sku_count"], 2);
}

#[tokio::test]
async fn info_lines_carry_only_context_fields_and_never_the_event_payload() {
    let s = setup(
        "api_handler",
        "info",
        TraceExport::Disabled,
        MetricsExport::Disabled,
    );
    let customer = "Ada Lovelace";
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation("req-2", None), || async move {
        // The payload is in the handler's hands; telemetry adds nothing of it.
        let _payload = serde_json::json!({"customer_name": customer});
        let span = info_span!("order");
        record_order_id(&span, "ord-1");
        async { info!("order accepted") }.instrument(span).await;
        Ok(())
    })
    .await;
    let allowed: BTreeSet<&str> = [
        "timestamp",
        "level",
        "message",
        "target",
        "function",
        "request_id",
        "cold_start",
        "trace_id",
        "order_id",
    ]
    .into();
    let logs = s.output.logs();
    assert!(!logs.is_empty());
    for line in logs {
        let keys: BTreeSet<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(keys.is_subset(&allowed), "unexpected keys in {line}");
        assert!(!line.to_string().contains(customer));
        // A trace is started when none came in: the line still has a well-formed id.
        assert!(dofs_telemetry::trace_header::is_trace_id(
            line["trace_id"].as_str().unwrap()
        ));
    }
}

#[tokio::test]
async fn log_level_filters_lines_but_warnings_keep_the_order_context() {
    let s = setup(
        "fulfill_order",
        "warn",
        TraceExport::Disabled,
        MetricsExport::Disabled,
    );
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation("req-3", None), || async {
        let span = info_span!("record");
        record_order_id(&span, "ord-9");
        async {
            info!("not shown at warn");
            warn!("payment slow");
        }
        .instrument(span)
        .await;
        Ok(())
    })
    .await;
    let logs = s.output.logs();
    assert_eq!(logs.len(), 1, "{logs:#?}");
    assert_eq!(logs[0]["level"], "WARN");
    assert_eq!(logs[0]["order_id"], "ord-9");
    assert_eq!(logs[0]["function"], "fulfill_order");
}

#[tokio::test]
async fn a_failed_invocation_is_logged_at_error_with_its_error_type_and_cold_start_only_once() {
    let s = setup(
        "order_storage",
        "info",
        TraceExport::Disabled,
        MetricsExport::Disabled,
    );
    let failed: Result<(), PortError> = invoke(&s.telemetry, invocation("req-4", None), || async {
        Err(PortError::transient("orders table throttled"))
    })
    .await;
    assert!(failed.is_err());
    let ok: Result<(), PortError> = invoke(&s.telemetry, invocation("req-5", None), || async {
        info!("second");
        Ok(())
    })
    .await;
    assert!(ok.is_ok());
    let logs = s.output.logs();
    let error = logs
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("an ERROR line");
    assert_eq!(error["request_id"], "req-4");
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("orders table throttled"));
    let second = logs.iter().find(|l| l["message"] == "second").unwrap();
    assert_eq!(second["cold_start"], false);
    assert_eq!(second["request_id"], "req-5");
}

#[test]
fn the_second_global_init_is_refused_not_a_panic() {
    // The global installation is once per process; this binary never made
    // one before, so the first succeeds and the second reports it.
    let config = || dofs_telemetry::TelemetryConfig {
        function_name: "validator".to_owned(),
        metric_dimension: None,
        log_level: "info".to_owned(),
        traces: TraceExport::Disabled,
        metrics: MetricsExport::Disabled,
        log_sink: None,
    };
    let first = dofs_telemetry::init_with_writer(config(), std::io::sink);
    assert!(first.is_ok(), "{first:?}");
    let second = dofs_telemetry::init_with_writer(config(), std::io::sink);
    assert!(matches!(
        second,
        Err(dofs_telemetry::TelemetryError::AlreadyInitialised(_))
    ));
}

/// `LogFormat::Pretty`: tracing-subscriber's human lines (level, span
/// context with the order, message, fields) instead of JSON, on the same
/// writer; with `ansi` off, no escape codes.
#[tokio::test]
async fn the_pretty_format_writes_human_lines_with_the_order_in_context() {
    let output = dofs_telemetry::testing::Capture::new();
    let config = dofs_telemetry::TelemetryConfig {
        function_name: "validator".to_owned(),
        metric_dimension: None,
        log_level: "info".to_owned(),
        traces: TraceExport::Disabled,
        metrics: MetricsExport::Disabled,
        log_sink: None,
    };
    let (telemetry, _guard) = dofs_telemetry::init_scoped_with_format(
        config,
        dofs_telemetry::LogFormat::Pretty { ansi: false },
        output.clone(),
    )
    .unwrap();
    let _: Result<(), PortError> = invoke(&telemetry, invocation("req-9", None), || async {
        let span = info_span!("order", order_id = "ord-7");
        async {
            info!(quantity = 3, "validating order");
            tracing::debug!("not at info");
        }
        .instrument(span)
        .await;
        Ok(())
    })
    .await;
    let text = output.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "{line}"
    );
    for part in [
        " INFO ",
        "order_id=\"ord-7\"",
        "validating order",
        "quantity=3",
    ] {
        assert!(line.contains(part), "{part:?} missing in {line}");
    }
    assert!(!line.contains('\u{1b}'), "{line:?}");
}
