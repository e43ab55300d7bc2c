//! Unit tests of span conversion, queries and the waterfall.

use std::collections::HashMap;

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
    let mut records = records_from_spans(vec![child, record, invocation]);
    assert!(
        records
            .iter()
            .all(|r| !r.attributes.contains_key("failure.reason")),
        "stored as the span had them"
    );
    records.iter_mut().for_each(enrich);
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
        metric_dimension: None,
        log_level: "info".into(),
        traces: TraceExport::Custom(store.clone()),
        metrics: MetricsExport::Disabled,
        log_sink: None,
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
    // No execution header: the order's earliest span names its trace.
    let trace = order_trace(reader.conn(), "o-1", None).unwrap().unwrap();
    assert_eq!(trace.trace_id, journey[0].trace_id);
    let mut shown = journey.clone();
    shown.iter_mut().for_each(enrich);
    assert_eq!(trace.spans, shown, "stored and read back unchanged");
    assert_eq!(
        load_trace_raw(reader.conn(), &journey[0].trace_id).unwrap(),
        journey
    );
    assert_eq!(trace.other_traces, ["1-00000000-000000000000000000000002"]);
    assert!(order_trace(reader.conn(), "o-2", None).unwrap().is_none());
}

/// A sink that keeps the spans and hands them to the store, as telemetry
/// hands them to the store in `dofs serve`.
#[derive(Debug)]
struct Tee(Arc<SpanStore>, Mutex<Vec<SpanData>>);

impl SpanSink for Tee {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
        self.1.lock().unwrap().extend(spans.iter().cloned());
        self.0.export(spans)
    }
}

#[tokio::test]
async fn the_default_view_is_the_functions_translation_of_the_same_spans() {
    use dofs_telemetry::aws_call::{AwsCall, CallFailure};
    use dofs_telemetry::context::{record_failure, record_outcome, FailureKind};
    use dofs_telemetry::{invoke, Invocation, MetricsExport, TelemetryConfig, TraceExport};
    use tracing::Instrument;

    let store = SpanStore::new();
    let tee = Arc::new(Tee(store.clone(), Mutex::new(Vec::new())));
    let config = TelemetryConfig {
        function_name: "fulfill_order".into(),
        metric_dimension: None,
        log_level: "info".into(),
        traces: TraceExport::Custom(tee.clone()),
        metrics: MetricsExport::Disabled,
        log_sink: None,
    };
    let (telemetry, _guard) =
        dofs_telemetry::init_scoped_with_writer(config, std::io::sink).unwrap();
    let order: TraceHeader =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            .parse()
            .unwrap();
    let batch = TraceHeader::new_root().with_parent("1111111111111111");
    let invocation = Invocation {
        function: Some("fulfill_order".into()),
        request_id: "req-1".into(),
        trace_header: Some(batch),
    };
    let _: Result<(), dofs_core::PortError> = invoke(&telemetry, invocation, || async {
        let record = tracing::info_span!(
            "fulfill_order.record",
            otel.kind = "server",
            order_id = "o-1",
            message_id = "m-1",
            receive_count = 2i64,
        );
        dofs_telemetry::set_parent_from_header(&record, &order);
        dofs_telemetry::record_order_id(&record, "o-1");
        async {
            let call = AwsCall::start("DynamoDB", "UpdateItem");
            call.table("orders");
            call.attempt();
            call.response(500, Some("REQ"));
            call.finish(Some(CallFailure {
                code: Some("InternalServerError"),
                message: "boom",
                status: Some(500),
            }));
            drop(call);
            tracing::warn!(reason = "table unavailable", "fulfilment failed");
        }
        .instrument(record.clone())
        .await;
        record_outcome(&record, "retry");
        record_failure(
            &record,
            FailureKind::Fault,
            "TransientError",
            "table unavailable",
        );
        Ok(())
    })
    .await;
    telemetry.flush();
    let spans = tee.1.lock().unwrap().clone();
    assert!(spans.len() >= 3, "{spans:#?}");

    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let records = store.pending.lock().unwrap().clone();
    store.write_pending(&db).await.unwrap();
    // The execution api_handler started carries the order's trace.
    let header = order.to_string();
    let components: HashMap<SpanId, String> = records
        .iter()
        .map(|r| (SpanId::from_hex(&r.span_id).unwrap(), r.component.clone()))
        .collect();
    let direct = xray_view::translate(&spans, &components);

    let reader = Db::open_read_only(dir.path()).unwrap();
    let trace_id = order_trace_id(reader.conn(), "o-1", Some(&header))
        .unwrap()
        .unwrap();
    assert_eq!(trace_id, order.root);
    let view = order_xray_view(reader.conn(), "o-1", Some(&header))
        .unwrap()
        .unwrap();
    assert!(view.sampled);
    let mut stored = Vec::new();
    for trace in spans
        .iter()
        .map(|s| dofs_telemetry::traces::xray_trace_id(s.span_context.trace_id()))
        .collect::<std::collections::BTreeSet<_>>()
    {
        stored.extend(xray_view::documents_of(
            &load_trace_raw(reader.conn(), &trace).unwrap(),
        ));
    }
    // By id, without the exceptions' ids, which the translator draws at
    // random every time it translates.
    fn without_exception_ids(doc: &mut Value) {
        if let Some(exceptions) = doc["cause"]["exceptions"].as_array_mut() {
            for exception in exceptions {
                if let Some(e) = exception.as_object_mut() {
                    e.remove("id");
                }
            }
        }
        if let Some(children) = doc["subsegments"].as_array_mut() {
            children.iter_mut().for_each(without_exception_ids);
        }
    }
    let by_id = |docs: &[Value]| {
        let mut docs = docs.to_vec();
        docs.iter_mut().for_each(without_exception_ids);
        docs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        docs
    };
    assert_eq!(
        by_id(&stored),
        by_id(&direct),
        "the view is the translation"
    );
    let record = view
        .documents
        .iter()
        .find(|d| d["name"] == "dofs-fulfill_order")
        .unwrap();
    assert_eq!(record["origin"], "AWS::Lambda::Function");
    assert_eq!(record["fault"], true);
    assert_eq!(
        record["cause"]["exceptions"][0]["message"],
        "table unavailable"
    );
    assert_eq!(record["annotations"]["outcome"], "retry");
    assert_eq!(record["subsegments"][0]["aws"]["operation"], "UpdateItem");
    assert_eq!(record["subsegments"][0]["fault"], true);
    let text = render_xray(&view);
    assert!(
        text.contains("segment dofs-fulfill_order (AWS::Lambda::Function)"),
        "{text}"
    );
    assert!(
        text.contains("fault") && text.contains("cause=\"table unavailable\""),
        "{text}"
    );
    assert!(
        text.contains("└─ subsegment DynamoDB (namespace aws)"),
        "{text}"
    );
    assert!(
        text.contains("AWS's own segment"),
        "the parent is Step Functions': {text}"
    );
}

#[tokio::test]
async fn the_stand_ins_spans_are_left_out_and_an_unsampled_order_says_so() {
    let records = records_from_spans(vec![
        span(1, 0)
            .name("api_gateway")
            .kind(opentelemetry::trace::SpanKind::Server)
            .attr("function", crate::identity::GATEWAY_COMPONENT)
            .build(),
        span(2, 1)
            .name("api_handler")
            .kind(opentelemetry::trace::SpanKind::Server)
            .attr("function", "api_handler")
            .build(),
    ]);
    let docs = xray_view::documents_of(&records);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0]["name"], "dofs-api_handler");
    assert_eq!(
        docs[0]["aws"]["cloudwatch_logs"][0]["log_group"],
        "/aws/lambda/dofs-api_handler"
    );

    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path()).unwrap();
    let reader = Db::open_read_only(dir.path()).unwrap();
    let conn = reader.conn();
    // The execution's traceHeader: api_handler did not sample the order.
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
    let view = order_xray_view(conn, "o-9", Some(header)).unwrap().unwrap();
    assert!(!view.sampled && view.documents.is_empty());
    let text = render_xray(&view);
    assert!(text.contains("not sampled"), "{text}");
}

#[test]
fn waterfall_rows_place_each_span_in_the_trace_and_name_lost_parents() {
    let spans = vec![rec("r", None, 0), rec("c", Some("r"), 1_000_000)];
    let (depths, mut spans): (Vec<usize>, Vec<SpanRecord>) = tree_order(spans).into_iter().unzip();
    spans.push(rec("lost", Some("gone"), 3_000_000));
    let trace = OrderTrace {
        order_id: "o".into(),
        trace_id: "t".into(),
        spans,
        depths: depths.into_iter().chain([0]).collect(),
        other_traces: Vec::new(),
    };
    let waterfall = Waterfall::of(&trace);
    assert_eq!(waterfall.start_ns, 0);
    assert_eq!(waterfall.duration_ns, 4_000_000);
    let rows: Vec<_> = waterfall
        .rows
        .iter()
        .map(|r| {
            let name = r.span.name.as_str();
            (
                name,
                r.depth,
                r.offset_ns,
                r.left,
                r.width,
                r.missing_parent,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("r", 0, 0, 0.0, 0.25, None),
            ("c", 1, 1_000_000, 0.25, 0.25, None),
            ("lost", 0, 3_000_000, 0.75, 0.25, Some("gone")),
        ]
    );
    let empty = OrderTrace {
        spans: Vec::new(),
        depths: Vec::new(),
        ..trace
    };
    let waterfall = Waterfall::of(&empty);
    assert_eq!((waterfall.start_ns, waterfall.duration_ns), (0, 0));
}

#[test]
fn document_rows_flatten_subsegments_after_their_parent() {
    let view = XrayView {
        order_id: "o".into(),
        trace_id: "t".into(),
        sampled: true,
        documents: vec![
            json!({
                "id": "a", "name": "dofs-api_handler", "origin": "AWS::Lambda::Function",
                "parent_id": "aws", "start_time": 10.0, "end_time": 10.5,
                "subsegments": [{
                    "id": "b", "name": "DynamoDB", "namespace": "aws", "parent_id": "a",
                    "start_time": 10.1, "end_time": 10.2, "fault": true,
                    "cause": {"exceptions": [{"message": "boom"}]},
                }],
            }),
            json!({"id": "c", "name": "dofs-validator", "parent_id": "a", "start_time": 11.0, "end_time": 11.0}),
        ],
    };
    let rows = document_rows(&view);
    let shown: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.name,
                r.depth,
                r.kind,
                r.flags.clone(),
                r.origin,
                r.namespace,
                r.cause,
                r.foreign_parent,
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "dofs-api_handler",
                0,
                "segment",
                vec![],
                Some("AWS::Lambda::Function"),
                None,
                None,
                Some("aws")
            ),
            (
                "DynamoDB",
                1,
                "subsegment",
                vec!["fault"],
                None,
                Some("aws"),
                Some("boom"),
                None
            ),
            (
                "dofs-validator",
                0,
                "segment",
                vec![],
                None,
                None,
                None,
                None
            ),
        ]
    );
    assert!(
        (rows[1].offset_ms - 100.0).abs() < 1e-6,
        "{}",
        rows[1].offset_ms
    );
    assert!((rows[1].duration_ms - 100.0).abs() < 1e-6);
    assert_eq!(rows[2].offset_ms, 1000.0);
    let unsampled = XrayView {
        sampled: false,
        documents: Vec::new(),
        ..view
    };
    assert!(document_rows(&unsampled).is_empty());
}

#[tokio::test]
async fn packed_spans_read_back_with_the_rows_that_came_later() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let store = SpanStore::new();
    let store_spans = |spans: Vec<SpanRecord>| {
        store.pending.lock().unwrap().extend(spans);
        store.write_pending(&db)
    };
    let mut root = rec("a", None, 1_000);
    root.attributes.insert("http.status".into(), json!(202));
    let mut child = rec("b", Some("a"), 2_000);
    child
        .events
        .push(json!({"name": "fulfilment failed", "level": "WARN"}));
    let early = vec![root, child, rec("c", Some("b"), 3_000)];
    store_spans(early.clone()).await.unwrap();
    let late = rec("d", Some("a"), 900_000_000);
    store_spans(vec![late.clone()]).await.unwrap();

    // Quiet: the early spans, not the late one.
    let packed = db
        .read(|c| pack_quiet_spans(c, 500_000_000, 100))
        .await
        .unwrap();
    assert_eq!(packed.len(), 2, "the two children; the root stays a row");
    assert_eq!(
        db.write(move |c| store_packed_spans(c, &packed))
            .await
            .unwrap(),
        2
    );
    let all: Vec<SpanRecord> = early.iter().cloned().chain([late.clone()]).collect();
    let read = |db: Db| async move { db.read(|c| load_trace_raw(c, "t")).await.unwrap() };
    assert_eq!(
        read(db.clone()).await,
        all,
        "archive and rows merged, by start"
    );

    // A later pass packs the late span into a second archive, and skips
    // what the first one passed.
    let packed = db
        .read(|c| pack_quiet_spans(c, i64::MAX, 100))
        .await
        .unwrap();
    assert_eq!(packed.len(), 1);
    db.write(move |c| store_packed_spans(c, &packed))
        .await
        .unwrap();
    assert_eq!(read(db.clone()).await, all);
    let counts = db
        .read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM span_archives)",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(counts, (1, 2), "the root row and two archives");
    let nothing = db
        .read(|c| pack_quiet_spans(c, i64::MAX, 100))
        .await
        .unwrap();
    assert!(!nothing.moved() && nothing.is_empty());

    // The late span had the highest rowid and is gone: the next span
    // takes a rowid the mark had passed, and is packed all the same.
    let mut later = rec("e", Some("a"), 950_000_000);
    later.trace_id = "t".into();
    store_spans(vec![later.clone()]).await.unwrap();
    let packed = db
        .read(|c| pack_quiet_spans(c, i64::MAX, 100))
        .await
        .unwrap();
    assert_eq!(packed.len(), 1, "the span after the top rows went");
    db.write(move |c| store_packed_spans(c, &packed))
        .await
        .unwrap();
    let all: Vec<SpanRecord> = all.into_iter().chain([later]).collect();
    assert_eq!(read(db.clone()).await, all);

    // Retention takes the archives with the rows.
    let pruned = db
        .write(|c| prune_spans(c, DateTime::<Utc>::MAX_UTC, 100))
        .await
        .unwrap();
    assert_eq!(pruned, (1, 3));
    assert!(read(db.clone()).await.is_empty());
}
