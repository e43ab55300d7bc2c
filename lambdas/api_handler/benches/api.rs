//! api_handler's work per request, without the network: an API Gateway v2
//! event in, the response out, against the in-memory ports (so the figure
//! is the handler's own cost: routing, content checks, parsing, validation,
//! id assignment, the start of the workflow, the JSON response).
//!
//! `cargo bench -p api_handler`.

use std::hint::black_box;
use std::sync::Arc;

use api_handler::ApiHandler;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dofs_core::testkit::{
    sample_order, sample_request_json, sample_time, FixedClock, MemoryOrderStore, MemoryWorkflow,
};
use dofs_core::{OrderStatus, OrderStore};
use http::header::{HeaderName, HeaderValue};
use http::Method;
use lambda_runtime::{Context, LambdaEvent};

const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn handler() -> (ApiHandler, Arc<MemoryOrderStore>) {
    let clock = Arc::new(FixedClock(sample_time()));
    let workflow = Arc::new(MemoryWorkflow::new(clock.clone()));
    let orders = Arc::new(MemoryOrderStore::new());
    (ApiHandler::new(workflow, orders.clone(), clock), orders)
}

fn event(method: Method, path: &str, body: Option<String>) -> LambdaEvent<ApiGatewayV2httpRequest> {
    let mut request = ApiGatewayV2httpRequest::default();
    request.request_context.http.method = method;
    request.request_context.http.path = Some(path.to_owned());
    request.raw_path = Some(path.to_owned());
    request.route_key = Some("$default".into());
    request.headers.insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json"),
    );
    request.body = body;
    let mut context = Context::default();
    context.request_id = "bench-request".into();
    context.xray_trace_id = Some(TRACE.to_owned());
    LambdaEvent::new(request, context)
}

fn api_event_to_response(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("api_handler");
    let body = sample_request_json().to_string();

    // A fresh handler per iteration: the in-memory workflow would otherwise
    // grow by one execution per iteration and the figure would drift.
    group.bench_function("post_order_202", |b| {
        b.iter_batched(
            || {
                (
                    handler().0,
                    event(Method::POST, "/orders", Some(body.clone())),
                )
            },
            |(handler, event)| runtime.block_on(handler.handle(event)).expect("a response"),
            BatchSize::SmallInput,
        )
    });

    let (get_handler, orders) = handler();
    let stored = sample_order(OrderStatus::Fulfilled);
    runtime
        .block_on(orders.insert(&stored))
        .expect("stored sample order");
    let path = format!("/orders/{}", stored.order_id);
    group.bench_function("get_order_200", |b| {
        b.iter_batched(
            || event(Method::GET, &path, None),
            |event| {
                runtime
                    .block_on(get_handler.handle(black_box(event)))
                    .expect("a response")
            },
            BatchSize::SmallInput,
        )
    });

    let (bad_handler, _) = handler();
    let invalid = serde_json::json!({"customer_name": "", "items": [{"sku": "", "quantity": 0, "unit_price": "x"}]})
        .to_string();
    group.bench_function("post_invalid_400", |b| {
        b.iter_batched(
            || event(Method::POST, "/orders", Some(invalid.clone())),
            |event| {
                runtime
                    .block_on(bad_handler.handle(black_box(event)))
                    .expect("a response")
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, api_event_to_response);
criterion_main!(benches);
