//! EMF lines: valid documents, the function dimension, ids as properties.

use std::sync::{Arc, Mutex};

use dofs_core::PortError;
use dofs_telemetry::metric;
use dofs_telemetry::{
    invoke, record_order_id, set_parent_from_header, Invocation, MetricSample, MetricsExport,
    MetricsSink, TraceExport, TraceHeader,
};
use serde_json::Value;
use tracing::{info_span, Instrument};

use crate::helpers::setup;

/// Checks one line against the EMF specification's required structure and
/// returns the names of the metrics it declares.
fn assert_valid_emf(doc: &Value) -> Vec<String> {
    let aws = &doc["_aws"];
    assert!(
        aws["Timestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "Timestamp in ms: {doc}"
    );
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1);
    let directive = &directives[0];
    assert_eq!(directive["Namespace"], metric::NAMESPACE);
    assert_eq!(
        directive["Dimensions"],
        serde_json::json!([[metric::FUNCTION_DIMENSION]])
    );
    assert!(
        doc[metric::FUNCTION_DIMENSION].is_string(),
        "dimension value present: {doc}"
    );
    let mut names = Vec::new();
    for m in directive["Metrics"].as_array().unwrap() {
        let name = m["Name"].as_str().unwrap();
        assert!(m["Unit"].is_string());
        let value = &doc[name];
        assert!(
            value.is_number()
                || value
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_number)),
            "value of {name} present and numeric: {doc}"
        );
        names.push(name.to_owned());
    }
    names
}

#[tokio::test]
async fn each_order_gets_its_own_emf_line_with_order_and_trace_as_properties() {
    let s = setup(
        "fulfill_order",
        "info",
        TraceExport::Disabled,
        MetricsExport::Emf,
    );
    let batch_trace =
        TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    let orders: Vec<(String, TraceHeader)> = (0..2)
        .map(|i| {
            let header =
                TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
            (format!("ord-{i}"), header)
        })
        .collect();
    let invocation = Invocation {
        function: None,
        request_id: "req-1".to_owned(),
        trace_header: Some(batch_trace.clone()),
    };
    let _: Result<(), PortError> = invoke(&s.telemetry, invocation, || async {
        for (order_id, header) in &orders {
            let span = info_span!("record");
            set_parent_from_header(&span, header);
            record_order_id(&span, order_id);
            async {
                metrics::counter!(metric::ORDERS_FULFILLED).increment(1);
                metrics::histogram!(metric::FULFILLMENT_LATENCY).record(42.0);
            }
            .instrument(span)
            .await;
        }
        Ok(())
    })
    .await;

    let emf = s.output.emf();
    for doc in &emf {
        assert_valid_emf(doc);
        assert_eq!(doc["function"], "fulfill_order");
    }
    let cold = emf
        .iter()
        .filter(|d| d.get(metric::COLD_START).is_some())
        .collect::<Vec<_>>();
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0][metric::COLD_START], 1);
    assert_eq!(cold[0]["trace_id"], batch_trace.root.as_str());
    assert!(cold[0].get("order_id").is_none());
    for (order_id, header) in &orders {
        let doc = emf
            .iter()
            .find(|d| d["order_id"] == order_id.as_str())
            .unwrap_or_else(|| panic!("no EMF line for {order_id}: {emf:#?}"));
        let mut names = assert_valid_emf(doc);
        names.sort();
        assert_eq!(
            names,
            [metric::FULFILLMENT_LATENCY, metric::ORDERS_FULFILLED]
        );
        assert_eq!(doc[metric::ORDERS_FULFILLED], 1);
        assert_eq!(doc[metric::FULFILLMENT_LATENCY], serde_json::json!([42.0]));
        assert_eq!(
            doc["trace_id"],
            header.root.as_str(),
            "the order's trace, not the batch's"
        );
        assert_eq!(doc["request_id"], "req-1");
    }

    // A second invocation is warm: no ColdStart, and nothing left over.
    let before = s.output.emf().len();
    let _: Result<(), PortError> = invoke(
        &s.telemetry,
        Invocation {
            request_id: "req-2".to_owned(),
            ..Invocation::default()
        },
        || async { Ok(()) },
    )
    .await;
    assert_eq!(s.output.emf().len(), before);
}

/// (metric, value, function, order_id)
type Sample = (String, f64, String, Option<String>);

#[derive(Default)]
struct Collected(Mutex<Vec<Sample>>);

impl MetricsSink for Collected {
    fn record(&self, sample: &MetricSample<'_>) {
        self.0.lock().unwrap().push((
            sample.name.to_owned(),
            sample.value,
            sample.function.to_owned(),
            sample.properties.get("order_id").cloned(),
        ));
    }
}

#[tokio::test]
async fn the_local_runtime_names_the_function_per_invocation_and_gets_metrics_in_a_sink() {
    let sink = Arc::new(Collected::default());
    let s = setup(
        "dofs",
        "info",
        TraceExport::Disabled,
        MetricsExport::Custom(sink.clone()),
    );
    for (function, metric_name) in [
        ("validator", metric::ORDERS_VALIDATED),
        ("order_storage", metric::ORDERS_STORED),
    ] {
        let invocation = Invocation {
            function: Some(function.to_owned()),
            request_id: format!("{function}-1"),
            trace_header: None,
        };
        let _: Result<(), PortError> = invoke(&s.telemetry, invocation, || async move {
            record_order_id(&tracing::Span::current(), "ord-7");
            metrics::counter!(metric_name).increment(1);
            Ok(())
        })
        .await;
    }
    let mut got = sink.0.lock().unwrap().clone();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (
                metric::COLD_START.to_owned(),
                1.0,
                "validator".to_owned(),
                None
            ),
            (
                metric::COLD_START.to_owned(),
                1.0,
                "order_storage".to_owned(),
                None
            ),
            (
                metric::ORDERS_STORED.to_owned(),
                1.0,
                "order_storage".to_owned(),
                Some("ord-7".to_owned())
            ),
            (
                metric::ORDERS_VALIDATED.to_owned(),
                1.0,
                "validator".to_owned(),
                Some("ord-7".to_owned())
            ),
        ]
    );
    assert!(s.output.emf().is_empty(), "a sink replaces the EMF lines");
}
