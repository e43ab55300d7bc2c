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
    // No waiting: the flush happened inside `invoke`.
    let received = daemon.received();
    assert_eq!(received.len(), 2, "{received:#?}");
    for d in &received {
        assert_valid_document(d);
        assert_eq!(d.segment["trace_id"], header.root.as_str());
        assert_eq!(
            d.segment["annotations"]["order_id"], "ord-1",
            "every span of the order: {}",
            d.segment
        );
    }
    let segment = received
        .iter()
        .find(|d| d.segment["name"] == "validator")
        .expect("the invocation segment");
    assert_eq!(
        segment.segment["parent_id"],
        header.parent.clone().unwrap().as_str()
    );
    let child = received
        .iter()
        .find(|d| d.segment["name"] == "validate")
        .expect("the child");
    assert_eq!(child.segment["type"], "subsegment");
    assert_eq!(child.segment["parent_id"], segment.segment["id"]);

    let outgoing = outgoing.expect("an outgoing header inside the invocation");
    assert_eq!(outgoing.root, header.root);
    assert_eq!(outgoing.sampled, Some(true));
    assert_eq!(
        Some(outgoing.parent.unwrap().as_str()),
        child.segment["id"].as_str()
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
    let received = daemon.received();
    assert_eq!(received.len(), 3, "{received:#?}");
    received.iter().for_each(assert_valid_document);
    let by_name = |name: &str| {
        &received
            .iter()
            .find(|d| d.segment["name"] == name)
            .unwrap()
            .segment
    };
    let invocation_segment = by_name("fulfill_order");
    assert_eq!(invocation_segment["trace_id"], batch.root.as_str());
    assert!(
        invocation_segment["annotations"].get("order_id").is_none(),
        "a batch is not one order"
    );
    let record = by_name("record");
    assert_eq!(record["trace_id"], order_trace.root.as_str());
    assert_eq!(
        record["parent_id"],
        order_trace.parent.clone().unwrap().as_str()
    );
    assert_eq!(record["annotations"]["order_id"], "ord-5");
    let db = by_name("update_status");
    assert_eq!(db["trace_id"], order_trace.root.as_str());
    assert_eq!(db["parent_id"], record["id"]);
    assert_eq!(
        db["annotations"]["order_id"], "ord-5",
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
