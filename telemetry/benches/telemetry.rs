//! What telemetry costs per invocation: EMF serialisation, span export to a
//! (local) X-Ray daemon, and one handler invocation with telemetry on vs off.
//!
//! `cargo bench -p dofs-telemetry`; compare `invocation/telemetry_on` with
//! `invocation/telemetry_off` for the overhead (the handler parses and
//! validates an order, logs twice, opens an order span and emits two metrics,
//! like the validator).

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use dofs_core::PortError;
use dofs_telemetry::{
    init_scoped_with_writer, invoke, metric, record_order_id, Invocation, MetricsExport, SpanData,
    SpanSink, TelemetryConfig, TraceExport, TraceHeader,
};
use tracing::Instrument;

const ORDER: &str = r#"{"customer_name": "Ada Lovelace", "items": [
    {"sku": "SKU-1", "quantity": 2, "unit_price": "9.99"},
    {"sku": "SKU-2", "quantity": 1, "unit_price": "19.50"}]}"#;

/// The validator's work on one order, with the instrumentation it carries.
async fn handler(order_id: &str) -> Result<usize, PortError> {
    tracing::info!("validating order");
    let span = tracing::info_span!("validator.validate");
    record_order_id(&span, order_id);
    async {
        let body: serde_json::Value =
            serde_json::from_str(ORDER).map_err(|e| PortError::invalid_input(e.to_string()))?;
        let request = dofs_core::validation::validate_order_request(&body)
            .map_err(|e| PortError::rejected(format!("{} errors", e.errors.len())))?;
        metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
        metrics::histogram!(metric::FULFILLMENT_LATENCY).record(12.0);
        tracing::info!("order validated");
        Ok(request.items.len())
    }
    .instrument(span)
    .await
}

fn config(traces: TraceExport, metrics: MetricsExport) -> TelemetryConfig {
    TelemetryConfig {
        function_name: "validator".to_owned(),
        metric_dimension: None,
        log_level: "info".to_owned(),
        traces,
        metrics,
        log_sink: None,
    }
}

fn header() -> TraceHeader {
    TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id())
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    // The daemon: received datagrams are drained by nobody; the kernel drops
    // what does not fit, the sender never blocks (as on Lambda).
    let daemon = UdpSocket::bind("127.0.0.1:0").expect("daemon socket");
    let daemon_addr = daemon.local_addr().expect("daemon address").to_string();

    let mut group = c.benchmark_group("invocation");
    group.bench_function("telemetry_off", |b| {
        b.iter(|| runtime.block_on(async { black_box(handler(black_box("ord-1")).await) }))
    });
    {
        let (telemetry, _guard) = init_scoped_with_writer(
            config(
                TraceExport::XrayDaemon {
                    addr: daemon_addr.clone(),
                    segment_name: None,
                },
                MetricsExport::Emf,
            ),
            std::io::sink,
        )
        .expect("telemetry");
        let invocation = Invocation {
            function: None,
            request_id: "req-1".to_owned(),
            trace_header: Some(header()),
        };
        group.bench_function("telemetry_on", |b| {
            b.iter(|| {
                runtime.block_on(invoke(&telemetry, invocation.clone(), || {
                    handler(black_box("ord-1"))
                }))
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("per_invocation");
    {
        let (telemetry, _guard) = init_scoped_with_writer(
            config(TraceExport::Disabled, MetricsExport::Emf),
            std::io::sink,
        )
        .expect("telemetry");
        group.bench_function("emf_two_metrics_flush", |b| {
            b.iter(|| {
                let span = tracing::info_span!("order");
                record_order_id(&span, "ord-1");
                span.in_scope(|| {
                    metrics::counter!(metric::ORDERS_FULFILLED).increment(1);
                    metrics::histogram!(metric::FULFILLMENT_LATENCY).record(42.0);
                });
                telemetry.flush();
            })
        });
    }
    bench_three_spans(
        &mut group,
        "xray_export_three_spans",
        TraceExport::XrayDaemon {
            addr: daemon_addr,
            segment_name: None,
        },
    );
    bench_three_spans(
        &mut group,
        "spans_without_xray_three_spans",
        TraceExport::Custom(Arc::new(Discard)),
    );
    group.finish();
}

/// One invocation span with two children, exported through `traces` and
/// flushed: the per-invocation cost of span export.
fn bench_three_spans(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    traces: TraceExport,
) {
    let (telemetry, _guard) =
        init_scoped_with_writer(config(traces, MetricsExport::Disabled), std::io::sink)
            .expect("telemetry");
    let parent = header();
    group.bench_function(name, |b| {
        b.iter(|| {
            let root = tracing::info_span!(parent: None, "invocation", otel.kind = "server");
            dofs_telemetry::set_parent_from_header(&root, &parent);
            record_order_id(&root, "ord-1");
            root.in_scope(|| {
                drop(tracing::info_span!("read").entered());
                drop(tracing::info_span!("write").entered());
            });
            drop(root);
            telemetry.flush();
        })
    });
}

/// Takes the spans and drops them: the cost of the spans themselves,
/// without X-Ray translation and UDP.
#[derive(Debug)]
struct Discard;

impl SpanSink for Discard {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), dofs_telemetry::traces::SinkError> {
        black_box(spans);
        Ok(())
    }
}

criterion_group!(telemetry, benches);
criterion_main!(telemetry);
