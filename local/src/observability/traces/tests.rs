//! Unit tests of span conversion, queries and the waterfall.

use super::*;
use crate::services::step_functions::state_spans::{
    finish_state_span, state_span, task_trace_header,
};
use dofs_telemetry::testing::span;
use dofs_telemetry::traces::ORDER_ID_ANNOTATION;
use dofs_telemetry::TraceHeader;
use opentelemetry::trace::{Event, Status};
use opentelemetry::KeyValue;
use serde_json::json;

#[test]
fn records_inherit_function_and_order_and_promote_failure_reasons() {
    let invocation = span(1, 0)
        .name("fulfill_order")
        .attr("function", "fulfill_order")
        .build();
    let record = span(2, 1)
        .name("fulfill_order.record")
        .attr(ORDER_ID_ANNOTATION, "o-1")
        .attr("receive_count", 2i64)
        .event(Event::new(
            "fulfilment failed",
            UNIX_EPOCH + Duration::from_millis(1_005),
            vec![
                KeyValue::new("level", "WARN"),
                KeyValue::new("reason", "simulated fulfilment failure"),
            ],
            0,
        ))
        .build();
    let child = span(3, 2).name("update_status").build();
    let records = records_from_spans(vec![child, record, invocation]);
    let by_name = |n: &str| records.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("update_status").component, "fulfill_order");
    assert_eq!(by_name("update_status").order_id.as_deref(), Some("o-1"));
    assert_eq!(
        by_name("fulfill_order").order_id.as_deref(),
        Some("o-1"),
        "the trace names one order"
    );
    let record = by_name("fulfill_order.record");
    assert_eq!(record.status, "warn");
    assert_eq!(
        record.attributes["failure.reason"],
        "simulated fulfilment failure"
    );
    assert_eq!(record.attributes["receive_count"], 2);
    assert_eq!(record.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(record.parent_span_id.as_deref(), Some("0000000000000001"));
    assert_eq!(by_name("fulfill_order").parent_span_id, None);
    assert_eq!(record.duration_ms, 10.0);
}

#[test]
fn a_trace_with_two_orders_lends_neither_and_names_fall_back_to_their_prefix() {
    let records = records_from_spans(vec![
        span(1, 0).name("batch").build(),
        span(2, 1)
            .name("validator.validate")
            .attr(ORDER_ID_ANNOTATION, "a")
            .build(),
        span(3, 1).name("x").attr(ORDER_ID_ANNOTATION, "b").build(),
    ]);
    assert_eq!(records[0].order_id, None);
    assert_eq!(records[1].component, "validator");
    assert_eq!(records[2].component, "dofs");
    let error = span(4, 0).name("y").status(Status::error("boom")).build();
    assert_eq!(records_from_spans(vec![error])[0].status, "error");
}

fn rec(id: &str, parent: Option<&str>, start: i64) -> SpanRecord {
    SpanRecord {
        trace_id: "t".into(),
        span_id: id.into(),
        parent_span_id: parent.map(str::to_owned),
        name: id.into(),
        component: "f".into(),
        order_id: Some("o".into()),
        start,
        end: start + 1_000_000,
        duration_ms: 1.0,
        status: "ok".into(),
        attributes: Map::new(),
        events: Vec::new(),
    }
}

#[test]
fn waterfall_is_depth_first_with_children_by_start_and_flags_missing_parents() {
    let spans = vec![
        rec("c2", Some("r"), 30),
        rec("r", None, 0),
        rec("c1", Some("r"), 10),
        rec("g1", Some("c1"), 20),
        rec("lost", Some("gone"), 5),
    ];
    let ordered = tree_order(spans);
    let names: Vec<(usize, &str)> = ordered.iter().map(|(d, s)| (*d, s.name.as_str())).collect();
    assert_eq!(
        names,
        [(0, "r"), (1, "c1"), (2, "g1"), (1, "c2"), (0, "lost")]
    );
    let (depths, spans) = ordered.into_iter().unzip();
    let trace = OrderTrace {
        order_id: "o".into(),
        trace_id: "t".into(),
        spans,
        depths,
        other_traces: vec!["t2".to_owned()],
    };
    let text = render_waterfall(&trace);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + 5 + 1, "{text}");
    assert!(lines[3].contains("└─ c1 [f]"), "{text}");
    assert!(lines[4].contains("   └─ g1 [f]"), "{text}");
    assert!(lines[6].contains("lost") && lines[6].contains("not in this trace"));
    assert!(lines[7].contains("1 other trace"));
}

#[test]
fn state_spans_carry_type_attempt_error_and_the_execution_trace() {
    use dofs_telemetry::{MetricsExport, TelemetryConfig, TraceExport};
    let store = SpanStore::new();
    let config = TelemetryConfig {
        function_name: "dofs".into(),
        log_level: "info".into(),
        traces: TraceExport::Custom(store.clone()),
        metrics: MetricsExport::Disabled,
    };
    let (telemetry, _guard) =
        dofs_telemetry::init_scoped_with_writer(config, std::io::sink).unwrap();
    let at = Utc::now();
    let event = |kind: &str, detail: Value| {
        let kind = dofs_asl::HistoryEventKind::parse(kind).unwrap();
        dofs_asl::HistoryEvent::new(kind, Some("StoreOrder".into()), at, &detail)
    };
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let span = state_span("o-1", "StoreOrder", 2, Some(header));
    let outgoing: TraceHeader = task_trace_header(&span).unwrap().parse().unwrap();
    finish_state_span(
        &span,
        &[
            event("TaskScheduled", json!({})),
            event("TaskFailed", json!({"error": "TransientError"})),
            event("TaskRetryScheduled", json!({"delay_ms": 200})),
        ],
    );
    drop(span);
    telemetry.flush();
    let records = store.pending.lock().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.name, "StoreOrder");
    assert_eq!(r.component, crate::identity::STATES_COMPONENT);
    assert_eq!(r.trace_id, "1-5759e988-bd862e3fe1be46a994272793");
    assert_eq!(r.parent_span_id.as_deref(), Some("53995c3f42cd8ad8"));
    assert_eq!(
        Some(&r.span_id),
        outgoing.parent.as_ref(),
        "the task's parent is the state"
    );
    assert_eq!(outgoing.root, r.trace_id);
    assert_eq!(r.status, "error");
    assert_eq!(r.order_id.as_deref(), Some("o-1"));
    assert_eq!(r.attributes["state.type"], "Task");
    assert_eq!(r.attributes["attempt"], 2);
    assert_eq!(r.attributes["error"], "TransientError");
    assert_eq!(r.attributes["retry.delay_ms"], 200);
}

#[tokio::test]
async fn stored_spans_read_back_as_the_orders_trace_beside_its_status_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let store = SpanStore::new();
    let journey = records_from_spans(vec![
        span(1, 0)
            .name("api_gateway")
            .attr("function", "api_gateway")
            .build(),
        span(2, 1)
            .name("api_handler.submit_order")
            .attr(ORDER_ID_ANNOTATION, "o-1")
            .build(),
    ]);
    let mut read = records_from_spans(vec![span(9, 0)
        .name("api_handler.get_order")
        .attr(ORDER_ID_ANNOTATION, "o-1")
        .build()]);
    read[0].trace_id = "1-00000000-000000000000000000000002".into();
    store
        .pending
        .lock()
        .unwrap()
        .extend(journey.iter().cloned().chain(read));
    assert_eq!(store.write_pending(&db).await.unwrap(), 3);
    assert_eq!(store.write_pending(&db).await.unwrap(), 0, "nothing twice");
    assert_eq!(store.stored(), 3);

    let reader = Db::open_read_only(dir.path()).unwrap();
    // No execution row: the order's earliest span names its trace.
    let trace = order_trace(reader.conn(), "o-1").unwrap().unwrap();
    assert_eq!(trace.trace_id, journey[0].trace_id);
    assert_eq!(trace.spans, journey, "stored and read back unchanged");
    assert_eq!(trace.other_traces, ["1-00000000-000000000000000000000002"]);
    assert!(order_trace(reader.conn(), "o-2").unwrap().is_none());
}
