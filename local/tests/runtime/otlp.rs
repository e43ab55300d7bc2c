//! `dofs serve --otlp-endpoint`: an OTLP/HTTP receiver, decoding the
//! requests with the OTLP protobuf definitions (`opentelemetry-proto`'s
//! messages, as a Collector decodes them), gets every span of an order in
//! the trace id the API answered, with parent links that hold together and
//! one service per function.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

use crate::helpers::{fast_args, order_body, spawn_runtime};

/// One received span: its service, ids and name.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// A receiver on 127.0.0.1:0 answering `POST /v1/traces` as a Collector
/// does; the first request gets a 503, which the exporter must retry.
async fn receiver() -> (String, Spans) {
    async fn traces(
        State((spans, refused_once)): State<(Spans, Arc<Mutex<bool>>)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        assert_eq!(headers["content-type"], "application/x-protobuf");
        let mut first = refused_once.lock().unwrap();
        if !*first {
            *first = true;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let request = ExportTraceServiceRequest::decode(body).unwrap();
        let mut spans = spans.lock().unwrap();
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        name: span.name,
                    });
                }
            }
        }
        StatusCode::OK
    }
    let spans: Spans = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state((Arc::clone(&spans), Arc::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn every_span_of_an_order_reaches_an_otlp_receiver_in_its_trace() {
    let (endpoint, received) = receiver().await;
    let mut args = fast_args(0.0);
    args.extend(["--otlp-endpoint".to_owned(), endpoint]);
    let dofs = spawn_runtime(&args).await;
    let (status, body) = dofs.post_order(&order_body(1), None).await;
    assert_eq!(status, 202, "{body}");
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    let xray_trace = body["trace_id"].as_str().unwrap().to_owned();
    dofs.poll_terminal(&[order_id], Duration::from_secs(30))
        .await
        .unwrap();
    // The X-Ray id's 128 bits: `1-{8 hex}-{24 hex}` without the dashes.
    let otlp_trace = xray_trace.trim_start_matches("1-").replace('-', "");

    let expected = [
        "api_gateway",
        "api_handler",
        "ValidateOrder",
        "validator",
        "StoreOrder",
        "order_storage",
        "EnqueueOrder",
        "fulfill_order.record",
    ];
    let until = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let spans: Vec<Received> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == otlp_trace)
            .cloned()
            .collect();
        let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        if expected.iter().all(|n| names.contains(n)) {
            break spans;
        }
        assert!(
            Instant::now() < until,
            "the receiver has {names:?} of trace {otlp_trace}\n{}",
            dofs.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // One root, and every other span's parent is a span of the trace.
    let ids: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(ids.len(), spans.len(), "no span twice: {spans:#?}");
    let roots: Vec<&str> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(roots, ["api_gateway"], "{spans:#?}");
    for span in &spans {
        if !span.parent_span_id.is_empty() {
            assert!(
                ids.contains_key(span.parent_span_id.as_str()),
                "{} has a parent outside the trace: {spans:#?}",
                span.name
            );
        }
    }
    // One service per function, as X-Ray names its segments.
    let service_of = |name: &str| &ids.values().find(|s| s.name == name).unwrap().service;
    assert_eq!(service_of("api_gateway"), "dofs-api_gateway");
    assert_eq!(service_of("validator"), "dofs-validator");
    assert_eq!(service_of("fulfill_order.record"), "dofs-fulfill_order");
}
