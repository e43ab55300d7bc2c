//! X-Ray: segments on a fake daemon, parented on the incoming header, with
//! the order annotation, delivered before the invocation returns.

use std::sync::{Arc, Mutex};

use dofs_core::PortError;
use dofs_telemetry::aws_call::{AwsCall, CallFailure};
use dofs_telemetry::context::{
    record_failure, record_http, record_outcome, record_polled_order_id, start_order_trace,
    FailureKind,
};
use dofs_telemetry::trace_header::new_segment_id;
use dofs_telemetry::{
    invoke, outgoing_trace_header, record_order_id, set_parent_from_header, Invocation,
    MetricsExport, SpanData, SpanSink, TraceExport, TraceHeader,
};
use serde_json::Value;
use tracing::field::Empty;
use tracing::{info_span, Instrument};

use crate::helpers::{setup, with_daemon, with_daemon_named, Datagram};

fn invocation(header: &TraceHeader) -> Invocation {
    Invocation {
        function: None,
        request_id: "req-1".to_owned(),
        trace_header: Some(header.clone()),
    }
}

fn sampled_header() -> TraceHeader {
    TraceHeader::new_root().with_parent(new_segment_id())
}

fn is_hex(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The daemon protocol and the fields X-Ray requires of every document.
fn assert_valid_document(d: &Datagram) {
    assert_eq!(
        d.header,
        serde_json::json!({"format": "json", "version": 1})
    );
    let s = &d.segment;
    assert!(is_hex(&s["id"], 16), "id: {s}");
    assert!(
        dofs_telemetry::trace_header::is_trace_id(s["trace_id"].as_str().unwrap()),
        "trace_id: {s}"
    );
    assert!(
        s["name"].as_str().is_some_and(|n| !n.is_empty()),
        "name: {s}"
    );
    let start = s["start_time"].as_f64().unwrap();
    let end = s["end_time"].as_f64().unwrap();
    assert!(start > 1.6e9 && end >= start, "times: {s}");
    if s["type"] == "subsegment" {
        assert!(
            is_hex(&s["parent_id"], 16),
            "a subsegment names its parent: {s}"
        );
    }
}

/// A span as the daemon received it: a document of its own, or nested in
/// its parent's `subsegments` (then its trace and parent are its container's).
#[derive(Debug)]
struct Received {
    doc: Value,
    trace_id: String,
    parent_id: Option<String>,
}

/// Every span in the datagrams, after checking each document's validity.
fn spans(received: &[Datagram]) -> Vec<Received> {
    fn walk(doc: &Value, trace_id: &str, parent_id: Option<String>, out: &mut Vec<Received>) {
        assert!(is_hex(&doc["id"], 16), "id: {doc}");
        assert!(
            doc["name"].as_str().is_some_and(|n| !n.is_empty()),
            "name: {doc}"
        );
        let start = doc["start_time"].as_f64().unwrap();
        let end = doc["end_time"].as_f64().unwrap();
        assert!(start > 1.6e9 && end >= start, "times: {doc}");
        let id = doc["id"].as_str().unwrap().to_owned();
        for child in doc["subsegments"].as_array().into_iter().flatten() {
            walk(child, trace_id, Some(id.clone()), out);
        }
        out.push(Received {
            doc: doc.clone(),
            trace_id: trace_id.to_owned(),
            parent_id,
        });
    }
    let mut out = Vec::new();
    for d in received {
        assert_valid_document(d);
        let trace_id = d.segment["trace_id"].as_str().unwrap();
        let parent_id = d.segment["parent_id"].as_str().map(str::to_owned);
        walk(&d.segment, trace_id, parent_id, &mut out);
    }
    out
}

fn named<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    spans
        .iter()
        .find(|s| s.doc["name"] == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

#[tokio::test]
async fn segments_carry_the_incoming_trace_and_the_order_annotation_before_invoke_returns() {
    let (s, daemon) = with_daemon("validator");
    let header = sampled_header();
    let mut outgoing = None;
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&header), || async {
        record_order_id(&tracing::Span::current(), "ord-1");
        async {
            outgoing = outgoing_trace_header();
        }
        .instrument(info_span!("validate"))
        .await;
        Ok(())
    })
    .await;
    // No waiting: the flush happened inside `invoke`; the child travels
    // inside the invocation's segment, so one datagram holds the invocation.
    let received = daemon.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let spans = spans(&received);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.trace_id, header.root);
        assert_eq!(
            span.doc["annotations"]["order_id"], "ord-1",
            "every span of the order: {span:?}"
        );
    }
    let segment = named(&spans, "validator");
    assert!(
        segment.doc.get("type").is_none(),
        "the invocation is a segment"
    );
    assert_eq!(segment.parent_id, header.parent);
    let child = named(&spans, "validate");
    assert_eq!(child.parent_id.as_deref(), segment.doc["id"].as_str());

    let outgoing = outgoing.expect("an outgoing header inside the invocation");
    assert_eq!(outgoing.root, header.root);
    assert_eq!(outgoing.sampled, Some(true));
    assert_eq!(
        Some(outgoing.parent.unwrap().as_str()),
        child.doc["id"].as_str()
    );
}

#[tokio::test]
async fn an_sqs_records_trace_header_is_the_parent_of_the_record_span() {
    let (s, daemon) = with_daemon("fulfill_order");
    let batch = sampled_header();
    let order_trace = sampled_header();
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&batch), || async {
        let span = info_span!("record", otel.kind = "server", message_id = "m-1");
        set_parent_from_header(&span, &order_trace);
        record_order_id(&span, "ord-5");
        async {
            let _db = info_span!("update_status").entered();
        }
        .instrument(span.clone())
        .await;
        record_outcome(&span, "fulfilled");
        Ok(())
    })
    .await;
    // Two trees: the batch's invocation segment, and the record (in the
    // order's trace, its parent elsewhere) carrying its child inside.
    let received = daemon.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    let spans = spans(&received);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let invocation_segment = spans.iter().find(|s| s.trace_id == batch.root).unwrap();
    assert_eq!(invocation_segment.doc["name"], "fulfill_order");
    assert!(
        invocation_segment.doc["annotations"]
            .get("order_id")
            .is_none(),
        "a batch is not one order"
    );
    // The record is a segment of the order's trace (X-Ray's SQS consumer
    // pattern), named after the function, the batch linking to it.
    let record = spans
        .iter()
        .find(|s| s.trace_id == order_trace.root && s.doc["name"] == "fulfill_order")
        .expect("the record's segment in the order's trace");
    assert_eq!(record.trace_id, order_trace.root);
    assert!(record.doc.get("type").is_none(), "a segment: {record:?}");
    assert_eq!(record.doc["origin"], "AWS::Lambda::Function");
    assert_eq!(record.parent_id, order_trace.parent);
    assert_eq!(record.doc["annotations"]["order_id"], "ord-5");
    assert_eq!(record.doc["annotations"]["outcome"], "fulfilled");
    assert_eq!(record.doc["metadata"]["default"]["message_id"], "m-1");
    assert_eq!(
        invocation_segment.doc["links"][0]["trace_id"],
        order_trace.root.as_str(),
        "the batch keeps its link to the record's trace"
    );
    let db = named(&spans, "update_status");
    assert_eq!(db.trace_id, order_trace.root);
    assert_eq!(db.parent_id.as_deref(), record.doc["id"].as_str());
    assert_eq!(
        db.doc["annotations"]["order_id"], "ord-5",
        "inherited from the record span"
    );
}

#[tokio::test]
async fn an_unsampled_trace_sends_nothing_but_still_propagates() {
    let (s, daemon) = with_daemon("api_handler");
    let header = TraceHeader {
        sampled: Some(false),
        ..sampled_header()
    };
    let mut outgoing = None;
    let result: Result<u8, PortError> = invoke(&s.telemetry, invocation(&header), || async {
        record_order_id(&tracing::Span::current(), "ord-2");
        outgoing = outgoing_trace_header();
        Ok(1)
    })
    .await;
    assert_eq!(result.unwrap(), 1);
    assert!(daemon.received().is_empty());
    let outgoing = outgoing.unwrap();
    assert_eq!(outgoing.root, header.root);
    assert_eq!(outgoing.sampled, Some(false));
    let logs = s.output.logs();
    assert!(logs.iter().all(|l| l["trace_id"] == header.root.as_str()));
}

#[tokio::test]
async fn without_a_header_a_new_sampled_trace_starts() {
    let (s, daemon) = with_daemon("api_handler");
    let mut outgoing = None;
    let _: Result<(), PortError> = invoke(
        &s.telemetry,
        Invocation {
            request_id: "r".to_owned(),
            ..Invocation::default()
        },
        || async {
            outgoing = outgoing_trace_header();
            Ok(())
        },
    )
    .await;
    let outgoing = outgoing.unwrap();
    let received = daemon.received();
    assert_eq!(received.len(), 1);
    assert_valid_document(&received[0]);
    assert_eq!(received[0].segment["trace_id"], outgoing.root.as_str());
    assert!(
        received[0].segment.get("parent_id").is_none(),
        "{}",
        received[0].segment
    );
}

#[tokio::test]
async fn a_bad_daemon_address_or_an_unreachable_daemon_never_fails_the_invocation() {
    // Unresolvable address: reported once at start-up, spans dropped.
    let s = setup(
        "validator",
        "info",
        TraceExport::XrayDaemon {
            addr: "no-such-host.invalid:2000".to_owned(),
            segment_name: None,
        },
        MetricsExport::Emf,
    );
    let ok: Result<u8, PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        Ok(3)
    })
    .await;
    assert_eq!(ok.unwrap(), 3);
    let logs = s.output.logs();
    assert_eq!(
        logs.iter().filter(|l| l["level"] == "WARN").count(),
        1,
        "{logs:#?}"
    );

    // A daemon that went away: the connected UDP socket gets ECONNREFUSED.
    let daemon = crate::helpers::Daemon::start();
    let addr = daemon.addr();
    drop(daemon);
    let s = setup(
        "validator",
        "info",
        TraceExport::XrayDaemon {
            addr,
            segment_name: None,
        },
        MetricsExport::Emf,
    );
    for _ in 0..3 {
        let ok: Result<u8, PortError> =
            invoke(&s.telemetry, invocation(&sampled_header()), || async {
                Ok(4)
            })
            .await;
        assert_eq!(ok.unwrap(), 4);
    }
    // Linux reports the refused datagram on the next send; the failure is
    // logged once however many invocations hit it.
    let warnings = s
        .output
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .count();
    assert_eq!(warnings, 1, "reported exactly once");
}

#[derive(Debug, Default)]
struct Store(Mutex<Vec<SpanData>>);

impl SpanSink for Store {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), dofs_telemetry::traces::SinkError> {
        self.0.lock().unwrap().extend(spans);
        Ok(())
    }
}

#[tokio::test]
async fn a_custom_sink_gets_the_spans_with_links_from_the_batch_to_the_records() {
    let store = Arc::new(Store::default());
    let s = setup(
        "fulfill_order",
        "info",
        TraceExport::Custom(store.clone()),
        MetricsExport::Disabled,
    );
    let batch = sampled_header();
    let order_trace = sampled_header();
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&batch), || async {
        let span = info_span!("record");
        set_parent_from_header(&span, &order_trace);
        record_order_id(&span, "ord-8");
        async {}.instrument(span).await;
        Ok(())
    })
    .await;
    let spans = store.0.lock().unwrap();
    assert_eq!(spans.len(), 2);
    let invocation_span = spans.iter().find(|s| s.name == "fulfill_order").unwrap();
    let link = invocation_span
        .links
        .links
        .first()
        .expect("the batch links to the record's trace");
    assert_eq!(
        dofs_telemetry::traces::xray_trace_id(link.span_context.trace_id()),
        order_trace.root
    );
}

#[tokio::test]
async fn a_panicking_handler_still_has_its_segment_flushed() {
    // What `init` installs (process-wide: from now on, a panic on a thread
    // with this crate's telemetry is a log line of its).
    dofs_telemetry::install_panic_hook();
    let (s, daemon) = with_daemon("validator");
    let header = sampled_header();
    let telemetry = s.telemetry.clone();
    let task_header = header.clone();
    // A local task: the runtime reports a panic as the invocation's error and
    // keeps the process; the scoped telemetry is this thread's.
    let joined = tokio::task::LocalSet::new()
        .run_until(async move {
            tokio::task::spawn_local(async move {
                let _: Result<(), PortError> =
                    invoke(&telemetry, invocation(&task_header), || async {
                        record_order_id(&tracing::Span::current(), "ord-3");
                        panic!("handler bug");
                    })
                    .await;
            })
            .await
        })
        .await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the panic goes on to the runtime"
    );
    let received = daemon.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    let segment = &received[0].segment;
    assert_eq!(segment["trace_id"], header.root.as_str());
    assert_eq!(segment["annotations"]["order_id"], "ord-3");
    assert_eq!(segment["fault"], true, "{segment}");
    assert_eq!(segment["cause"]["exceptions"][0]["message"], "handler bug");
    // The panic is a JSON ERROR line inside the span it happened in.
    let logs = s.output.logs();
    let line = logs
        .iter()
        .find(|l| l["message"] == "panicked")
        .unwrap_or_else(|| panic!("no panic line in {logs:#?}"));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["error"], "handler bug");
    assert_eq!(line["order_id"], "ord-3");
    assert_eq!(line["request_id"], "req-1");
    assert!(line["location"].as_str().unwrap().contains("xray.rs"));
}

/// One document per trace id, flattened.
fn in_trace<'a>(spans: &'a [Received], trace_id: &str) -> Vec<&'a Received> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

#[tokio::test]
async fn a_header_without_parent_makes_a_root_of_its_trace_without_inventing_a_parent() {
    let (s, daemon) = with_daemon("validator");
    let header = TraceHeader::new_root();
    assert!(header.parent.is_none());
    let _: Result<(), PortError> =
        invoke(&s.telemetry, invocation(&header), || async { Ok(()) }).await;
    let received = daemon.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].segment["trace_id"], header.root.as_str());
    assert!(
        received[0].segment.get("parent_id").is_none(),
        "no parent id is invented: {}",
        received[0].segment
    );

    // The same for an SQS record whose AWSTraceHeader has no Parent.
    let (s, daemon) = with_daemon("fulfill_order");
    let record_trace = TraceHeader::new_root();
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        let span = info_span!("record", otel.kind = "server");
        set_parent_from_header(&span, &record_trace);
        async {}.instrument(span).await;
        Ok(())
    })
    .await;
    let spans = spans(&daemon.received());
    let record = in_trace(&spans, &record_trace.root);
    assert_eq!(record.len(), 1, "{spans:#?}");
    assert!(record[0].parent_id.is_none(), "{:?}", record[0]);
}

/// api_handler's order span, as api_handler declares it.
fn order_span() -> tracing::Span {
    info_span!(
        "api_handler.submit_order",
        otel.kind = Empty,
        order_id = Empty,
        trace_id = Empty
    )
}

#[tokio::test]
async fn an_order_is_traced_when_sampled_even_if_lambda_said_sampled_0() {
    let (s, daemon) = with_daemon_named("api_handler", Some("dofs-test-api_handler"));
    let lambda = TraceHeader {
        sampled: Some(false),
        ..sampled_header()
    };
    let mut outgoing = None;
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&lambda), || async {
        let span = order_span();
        outgoing = start_order_trace(&span, true);
        record_order_id(&span, "ord-9");
        async {
            tracing::info!("order accepted");
        }
        .instrument(span.clone())
        .await;
        record_http(
            &span,
            "POST",
            "https://abc123.execute-api.us-east-1.amazonaws.com/orders",
            "/orders",
            202,
        );
        Ok(())
    })
    .await;
    let outgoing = outgoing.expect("a header for StartExecution");
    assert_ne!(outgoing.root, lambda.root, "a trace of its own");
    assert_eq!(outgoing.sampled, Some(true));
    let received = daemon.received();
    let spans = spans(&received);
    assert!(
        in_trace(&spans, &lambda.root).is_empty(),
        "Lambda's unsampled trace stays empty: {spans:#?}"
    );
    let order = in_trace(&spans, &outgoing.root);
    assert_eq!(order.len(), 1, "{spans:#?}");
    let segment = &order[0].doc;
    assert_eq!(segment["id"].as_str(), outgoing.parent.as_deref());
    assert!(segment.get("type").is_none() && segment.get("parent_id").is_none());
    assert_eq!(segment["name"], "dofs-test-api_handler");
    assert_eq!(segment["origin"], "AWS::Lambda::Function");
    assert_eq!(segment["annotations"]["order_id"], "ord-9");
    assert_eq!(segment["http"]["request"]["method"], "POST");
    assert_eq!(segment["http"]["response"]["status"], 202);
    assert_eq!(
        segment["http"]["request"]["url"],
        "https://abc123.execute-api.us-east-1.amazonaws.com/orders"
    );
    assert!(segment["metadata"]["default"].get("url.full").is_none());
    assert_eq!(segment["metadata"]["default"]["http.route"], "/orders");
    assert_eq!(
        segment["links"][0]["trace_id"],
        lambda.root.as_str(),
        "linked to the invocation's trace"
    );
    let accepted = s
        .output
        .logs()
        .into_iter()
        .find(|l| l["message"] == "order accepted")
        .unwrap();
    assert_eq!(accepted["trace_id"], outgoing.root.as_str());
}

#[tokio::test]
async fn an_order_continues_lambdas_trace_when_lambda_sampled_it_and_none_when_not_sampled() {
    let (s, daemon) = with_daemon("api_handler");
    let lambda = sampled_header();
    let mut outgoing = None;
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&lambda), || async {
        let span = order_span();
        outgoing = start_order_trace(&span, true);
        record_order_id(&span, "ord-10");
        async {}.instrument(span).await;
        Ok(())
    })
    .await;
    let outgoing = outgoing.unwrap();
    assert_eq!(outgoing.root, lambda.root);
    let found = spans(&daemon.received());
    let segment = named(&found, "api_handler");
    assert_eq!(segment.parent_id, lambda.parent, "under Lambda's segment");
    assert_eq!(
        segment.doc["annotations"]["order_id"], "ord-10",
        "the invocation's work is the order's"
    );
    let order = named(&found, "api_handler.submit_order");
    assert_eq!(
        Some(order.doc["id"].as_str().unwrap()),
        outgoing.parent.as_deref()
    );

    // Not sampled: nothing is sent — neither the order nor the invocation
    // whose work it was, even when Lambda sampled the request — and the
    // next hop is told so.
    for lambda_sampled in [false, true] {
        let (s, daemon) = with_daemon("api_handler");
        let lambda = TraceHeader {
            sampled: Some(lambda_sampled),
            ..sampled_header()
        };
        let mut outgoing = None;
        let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&lambda), || async {
            let span = order_span();
            outgoing = start_order_trace(&span, false);
            record_order_id(&span, "ord-11");
            async {
                let _child = info_span!("child").entered();
            }
            .instrument(span)
            .await;
            Ok(())
        })
        .await;
        let outgoing = outgoing.unwrap();
        assert_eq!(outgoing.sampled, Some(false));
        let found = spans(&daemon.received());
        assert!(
            found.is_empty(),
            "Lambda sampled {lambda_sampled}: {found:#?}"
        );
    }

    // The invocation of a sampled request that starts no order (a refusal,
    // a read) is still sent: the rate is per order.
    let (s, daemon) = with_daemon("api_handler");
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        Ok(())
    })
    .await;
    assert_eq!(spans(&daemon.received()).len(), 1);
}

#[tokio::test]
async fn failures_reads_and_sdk_calls_are_what_x_ray_shows() {
    let (s, daemon) = with_daemon("fulfill_order");
    let order_trace = sampled_header();
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        let span = info_span!("fulfill_order.record", otel.kind = "server");
        set_parent_from_header(&span, &order_trace);
        record_order_id(&span, "ord-12");
        async {
            let call = AwsCall::start("DynamoDB", "UpdateItem");
            call.table("orders");
            call.attempt();
            call.attempt();
            call.response(400, Some("REQ-1"));
            call.finish(Some(CallFailure {
                code: Some("ConditionalCheckFailedException"),
                message: "The conditional request failed",
                status: Some(400),
            }));
            drop(call);
            tracing::warn!(reason = "simulated", "fulfilment failed");
        }
        .instrument(span.clone())
        .await;
        record_failure(
            &span,
            FailureKind::Fault,
            "FulfilmentFailed",
            "simulated fulfilment failure",
        );
        let read = info_span!("api_handler.get_order");
        record_polled_order_id(&read, "ord-12");
        drop(read);
        Ok(())
    })
    .await;
    let spans = spans(&daemon.received());
    let record = spans
        .iter()
        .find(|s| s.trace_id == order_trace.root && s.doc["name"] == "fulfill_order")
        .unwrap();
    assert_eq!(record.doc["fault"], true);
    assert_eq!(
        record.doc["cause"]["exceptions"][0]["message"],
        "simulated fulfilment failure"
    );
    assert_eq!(
        record.doc["metadata"]["default"]["events"][0]["reason"],
        "simulated"
    );
    let call = named(&spans, "DynamoDB");
    assert_eq!(call.parent_id.as_deref(), record.doc["id"].as_str());
    assert_eq!(call.doc["namespace"], "aws");
    assert_eq!(call.doc["aws"]["operation"], "UpdateItem");
    assert_eq!(call.doc["aws"]["table_name"], "orders");
    assert_eq!(call.doc["aws"]["request_id"], "REQ-1");
    assert_eq!(call.doc["aws"]["retries"], 1);
    assert_eq!(call.doc["http"]["response"]["status"], 400);
    assert_eq!(call.doc["error"], true, "a 4xx is the caller's error");
    assert!(call.doc["cause"]["exceptions"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("conditional")));
    assert_eq!(call.doc["annotations"]["order_id"], "ord-12");
    let read = named(&spans, "api_handler.get_order");
    assert!(
        read.doc["annotations"].get("order_id").is_none(),
        "{read:?}"
    );
    assert_eq!(read.doc["annotations"]["polled_order_id"], "ord-12");
}

#[tokio::test]
async fn a_refused_request_is_the_clients_error_not_a_fault() {
    // api_handler's refusal of a malformed body: the failure recorded as
    // the caller's, then the HTTP exchange with its 400.
    let (s, daemon) = with_daemon("api_handler");
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        let span = tracing::Span::current();
        record_failure(
            &span,
            FailureKind::Error,
            "malformed_json",
            "the body is not valid JSON",
        );
        record_http(
            &span,
            "POST",
            "https://abc123.execute-api.us-east-1.amazonaws.com/orders",
            "/orders",
            400,
        );
        Ok(())
    })
    .await;
    let found = spans(&daemon.received());
    let segment = &named(&found, "api_handler").doc;
    assert_eq!(segment["error"], true, "{segment:#}");
    assert!(segment.get("fault").is_none(), "{segment:#}");
    assert_eq!(segment["http"]["response"]["status"], 400);
    assert_eq!(
        segment["cause"]["exceptions"][0]["message"],
        "the body is not valid JSON"
    );
}

#[tokio::test]
async fn an_error_logged_in_a_span_is_its_cause() {
    let (s, daemon) = with_daemon("order_storage");
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation(&sampled_header()), || async {
        let span = info_span!("order_storage.store");
        span.in_scope(|| {
            tracing::error!(
                error_type = "TransientError",
                error = "table unavailable",
                "could not store"
            );
        });
        Ok(())
    })
    .await;
    let found = spans(&daemon.received());
    let store = &named(&found, "order_storage.store").doc;
    assert_eq!(store["fault"], true, "{store:#}");
    assert_eq!(
        store["cause"]["exceptions"][0]["message"],
        "could not store: table unavailable"
    );
    assert_eq!(store["cause"]["exceptions"][0]["type"], "TransientError");
}
