//! X-Ray: segments on a fake daemon, parented on the incoming header, with
//! the order annotation, delivered before the invocation returns.

use std::sync::{Arc, Mutex};

use dofs_core::PortError;
use dofs_telemetry::trace_header::new_segment_id;
use dofs_telemetry::{
    invoke, outgoing_trace_header, record_order_id, set_parent_from_header, Invocation,
    MetricsExport, SpanData, SpanSink, TraceExport, TraceHeader,
};
use serde_json::Value;
use tracing::{info_span, Instrument};

use crate::helpers::{setup, with_daemon, Datagram};

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
        let span = info_span!("record", message_id = "m-1");
        set_parent_from_header(&span, &order_trace);
        record_order_id(&span, "ord-5");
        async {
            let _db = info_span!("update_status").entered();
        }
        .instrument(span)
        .await;
        Ok(())
    })
    .await;
    // Two trees: the batch's invocation segment, and the record (in the
    // order's trace, its parent elsewhere) carrying its child inside.
    let received = daemon.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    let spans = spans(&received);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let invocation_segment = named(&spans, "fulfill_order");
    assert_eq!(invocation_segment.trace_id, batch.root);
    assert!(
        invocation_segment.doc["annotations"]
            .get("order_id")
            .is_none(),
        "a batch is not one order"
    );
    let record = named(&spans, "record");
    assert_eq!(record.trace_id, order_trace.root);
    assert_eq!(record.parent_id, order_trace.parent);
    assert_eq!(record.doc["annotations"]["order_id"], "ord-5");
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
        TraceExport::XrayDaemon { addr },
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
    assert!(joined.unwrap_err().is_panic());
    let received = daemon.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].segment["trace_id"], header.root.as_str());
    assert_eq!(received[0].segment["annotations"]["order_id"], "ord-3");
}
