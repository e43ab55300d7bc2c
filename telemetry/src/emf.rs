//! A `metrics` recorder that writes CloudWatch Embedded Metric Format (EMF)
//! lines, one per order (or per invocation) and flush.
//!
//! Written here rather than taken from `metrics_cloudwatch_embedded` (0.10),
//! which was checked: its dimensions are fixed for the process and its
//! properties are process-wide, so it cannot (a) give a metric the `order_id`
//! and `trace_id` of the record it was emitted for when one invocation handles
//! a batch of orders, (b) take the `function` dimension from the current
//! invocation when one process hosts all five functions (the local runtime),
//! or (c) hand metrics to the local runtime's alarm store instead of stdout.
//!
//! How it works: `metrics` calls `register_*` at every `counter!(…)` call
//! site execution, on the emitting task; that is when the recorder reads the
//! current span's context (`function`, `order_id`, `trace_id`, `request_id`,
//! kept by `logs`) and files the value under that group.
//! `EmfRecorder::flush` (called by [`crate::Telemetry::flush`] after every
//! invocation) writes one EMF document per group: namespace
//! [`metric::NAMESPACE`], the single dimension `function` (the deployed
//! function name on Lambda, so each stack has its own metrics), ids as properties
//! (never dimensions: one metric per order would be unbounded cardinality).
//! Units come from `dashboards/metrics.json` (and `describe_*!` calls).
//! Labels on a metric become properties too, for the same reason.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{json, Map, Value};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;

use crate::metric;

/// EMF allows at most 100 metrics per document and 100 values per metric.
const EMF_MAX: usize = 100;

/// The context keys copied from the current span into every metric.
const CONTEXT_KEYS: [&str; 4] = ["function", "order_id", "trace_id", "request_id"];

/// One flushed metric value, as handed to a [`MetricsSink`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample<'a> {
    pub name: &'a str,
    /// The CloudWatch unit name (`Count`, `Milliseconds`, `None`, …).
    pub unit: &'a str,
    pub value: f64,
    /// The `function` dimension.
    pub function: &'a str,
    /// `order_id`, `trace_id`, `request_id` when known, and metric labels.
    pub properties: &'a BTreeMap<String, String>,
}

/// Receives every metric value at flush (the local runtime stores them and
/// evaluates its alarms on them). Called synchronously; keep it quick.
pub trait MetricsSink: Send + Sync {
    fn record(&self, sample: &MetricSample<'_>);

    /// The bytes of the EMF documents `function`'s metrics of one flush
    /// would be on Lambda (what CloudWatch Logs would ingest), for a sink
    /// that meters them.
    fn emf_bytes(&self, _function: &str, _bytes: usize) {}
}

pub(crate) enum MetricsOutput {
    Emf(Arc<BoxMakeWriter>),
    Sink(Arc<dyn MetricsSink>),
    Disabled,
}

/// Which function, and which order, a value belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    function: String,
    properties: BTreeMap<String, String>,
}

#[derive(Debug)]
enum Pending {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

struct Inner {
    default_function: String,
    /// Replaces the group's function as the EMF dimension value.
    dimension: Option<String>,
    units: RwLock<HashMap<String, &'static str>>,
    pending: Mutex<BTreeMap<Group, BTreeMap<String, Pending>>>,
    output: MetricsOutput,
}

/// The recorder; cheap to clone (all clones share one buffer).
#[derive(Clone)]
pub(crate) struct EmfRecorder {
    inner: Arc<Inner>,
}

impl EmfRecorder {
    pub(crate) fn new(
        default_function: String,
        dimension: Option<String>,
        output: MetricsOutput,
    ) -> Self {
        let mut units = HashMap::new();
        if let Ok(catalog) = serde_json::from_str::<Value>(metric::CATALOG_JSON) {
            for entry in catalog["metrics"].as_array().into_iter().flatten() {
                if let (Some(name), Some(unit)) = (entry["name"].as_str(), entry["unit"].as_str()) {
                    units.insert(name.to_owned(), canonical_unit(unit));
                }
            }
        }
        Self {
            inner: Arc::new(Inner {
                default_function,
                dimension,
                units: RwLock::new(units),
                pending: Mutex::new(BTreeMap::new()),
                output,
            }),
        }
    }

    fn enabled(&self) -> bool {
        !matches!(self.inner.output, MetricsOutput::Disabled)
    }

    fn handle(&self, key: &Key) -> Arc<Handle> {
        let context = crate::logs::current_fields(&CONTEXT_KEYS);
        let mut properties = BTreeMap::new();
        let mut function = self.inner.default_function.clone();
        for (name, value) in CONTEXT_KEYS.iter().zip(context) {
            let Some(value) = value else { continue };
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if *name == "function" {
                function = text;
            } else {
                properties.insert((*name).to_owned(), text);
            }
        }
        for label in key.labels() {
            properties.insert(label.key().to_owned(), label.value().to_owned());
        }
        Arc::new(Handle {
            inner: Arc::clone(&self.inner),
            group: Group {
                function,
                properties,
            },
            name: key.name().to_owned(),
        })
    }

    /// Writes (or hands to the sink) everything recorded since the last flush.
    pub(crate) fn flush(&self) {
        let pending = std::mem::take(
            &mut *self
                .inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if pending.is_empty() {
            return;
        }
        let units = self
            .inner
            .units
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let unit_of = |name: &str| units.get(name).copied().unwrap_or("None");
        match &self.inner.output {
            MetricsOutput::Disabled => {}
            MetricsOutput::Sink(sink) => {
                let timestamp = chrono::Utc::now().timestamp_millis();
                for (group, metrics) in &pending {
                    let dimension = self.inner.dimension.as_deref().unwrap_or(&group.function);
                    let bytes: usize =
                        emf_documents(timestamp, dimension, group, metrics, &unit_of)
                            .iter()
                            .map(|document| document.to_string().len() + 1)
                            .sum();
                    sink.emf_bytes(&group.function, bytes);
                }
                for (group, metrics) in &pending {
                    for (name, value) in metrics {
                        let values = match value {
                            Pending::Counter(n) => vec![*n as f64],
                            Pending::Gauge(v) => vec![*v],
                            Pending::Histogram(vs) => vs.clone(),
                        };
                        for value in values {
                            sink.record(&MetricSample {
                                name,
                                unit: unit_of(name),
                                value,
                                function: &group.function,
                                properties: &group.properties,
                            });
                        }
                    }
                }
            }
            MetricsOutput::Emf(writer) => {
                let timestamp = chrono::Utc::now().timestamp_millis();
                let mut out = String::new();
                for (group, metrics) in &pending {
                    let dimension = self.inner.dimension.as_deref().unwrap_or(&group.function);
                    for document in emf_documents(timestamp, dimension, group, metrics, &unit_of) {
                        out.push_str(&document.to_string());
                        out.push('\n');
                    }
                }
                // Metrics that cannot be written have nowhere to be reported.
                let _ = writer.make_writer().write_all(out.as_bytes());
            }
        }
    }
}

/// The EMF documents for one group: at most [`EMF_MAX`] metrics per document
/// and values per metric; longer histograms continue in further documents.
fn emf_documents(
    timestamp: i64,
    dimension: &str,
    group: &Group,
    metrics: &BTreeMap<String, Pending>,
    unit_of: &dyn Fn(&str) -> &'static str,
) -> Vec<Value> {
    let chunks: Vec<(&str, Vec<Value>)> = metrics
        .iter()
        .map(|(name, pending)| {
            let chunks = match pending {
                Pending::Counter(n) => vec![json!(n)],
                Pending::Gauge(v) => vec![json!(v)],
                Pending::Histogram(vs) => vs.chunks(EMF_MAX).map(|c| json!(c)).collect(),
            };
            (name.as_str(), chunks)
        })
        .collect();
    let rounds = chunks.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let mut documents = Vec::new();
    for round in 0..rounds {
        let present: Vec<(&str, &Value)> = chunks
            .iter()
            .filter_map(|(name, c)| c.get(round).map(|v| (*name, v)))
            .collect();
        for batch in present.chunks(EMF_MAX) {
            let mut doc = Map::new();
            doc.insert(
                "_aws".to_owned(),
                json!({
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{
                        "Namespace": metric::NAMESPACE,
                        "Dimensions": [[metric::FUNCTION_DIMENSION]],
                        "Metrics": batch.iter().map(|(name, _)| json!({"Name": name, "Unit": unit_of(name)})).collect::<Vec<_>>(),
                    }],
                }),
            );
            for (key, value) in &group.properties {
                doc.insert(key.clone(), Value::from(value.as_str()));
            }
            doc.insert(
                metric::FUNCTION_DIMENSION.to_owned(),
                Value::from(dimension),
            );
            for (name, value) in batch {
                doc.insert((*name).to_owned(), (*value).clone());
            }
            documents.push(Value::Object(doc));
        }
    }
    documents
}

/// CloudWatch's unit names for `metrics` units.
fn emf_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "Count",
        Unit::Percent => "Percent",
        Unit::Seconds => "Seconds",
        Unit::Milliseconds => "Milliseconds",
        Unit::Microseconds => "Microseconds",
        Unit::Nanoseconds => "None",
        Unit::Tebibytes => "Terabytes",
        Unit::Gibibytes => "Gigabytes",
        Unit::Mebibytes => "Megabytes",
        Unit::Kibibytes => "Kilobytes",
        Unit::Bytes => "Bytes",
        Unit::TerabitsPerSecond => "Terabits/Second",
        Unit::GigabitsPerSecond => "Gigabits/Second",
        Unit::MegabitsPerSecond => "Megabits/Second",
        Unit::KilobitsPerSecond => "Kilobits/Second",
        Unit::BitsPerSecond => "Bits/Second",
        Unit::CountPerSecond => "Count/Second",
    }
}

/// A unit name from the catalog, as one of CloudWatch's (unknown → `None`).
fn canonical_unit(name: &str) -> &'static str {
    const KNOWN: [&str; 13] = [
        "Count",
        "Percent",
        "Seconds",
        "Milliseconds",
        "Microseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits/Second",
        "Count/Second",
        "None",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or("None")
}

struct Handle {
    inner: Arc<Inner>,
    group: Group,
    name: String,
}

impl Handle {
    fn update(&self, f: impl FnOnce(&mut Option<&mut Pending>) -> Option<Pending>) {
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let metrics = pending.entry(self.group.clone()).or_default();
        let mut existing = metrics.get_mut(&self.name);
        if let Some(new) = f(&mut existing) {
            metrics.insert(self.name.clone(), new);
        }
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.update(|existing| match existing {
            Some(Pending::Counter(n)) => {
                *n = n.saturating_add(value);
                None
            }
            _ => Some(Pending::Counter(value)),
        });
    }
    fn absolute(&self, value: u64) {
        self.update(|_| Some(Pending::Counter(value)));
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.update(|existing| match existing {
            Some(Pending::Gauge(v)) => {
                *v += value;
                None
            }
            _ => Some(Pending::Gauge(value)),
        });
    }
    fn decrement(&self, value: f64) {
        GaugeFn::increment(self, -value);
    }
    fn set(&self, value: f64) {
        self.update(|_| Some(Pending::Gauge(value)));
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.update(|existing| match existing {
            Some(Pending::Histogram(vs)) => {
                vs.push(value);
                None
            }
            _ => Some(Pending::Histogram(vec![value])),
        });
    }
}

impl EmfRecorder {
    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        if let Some(unit) = unit {
            self.inner
                .units
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.as_str().to_owned(), emf_unit(unit));
        }
    }
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.describe(key, unit);
    }
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        if !self.enabled() {
            return Counter::noop();
        }
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        if !self.enabled() {
            return Gauge::noop();
        }
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        if !self.enabled() {
            return Histogram::noop();
        }
        Histogram::from_arc(self.handle(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn recorder() -> (EmfRecorder, Buffer) {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let recorder = EmfRecorder::new(
            "validator".to_owned(),
            None,
            MetricsOutput::Emf(Arc::new(BoxMakeWriter::new(move || writer.clone()))),
        );
        (recorder, buffer)
    }

    #[test]
    fn on_lambda_the_dimension_is_the_deployed_function_so_stacks_do_not_add_up() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let recorder = EmfRecorder::new(
            "validator".to_owned(),
            Some("dofs-prod-validator".to_owned()),
            MetricsOutput::Emf(Arc::new(BoxMakeWriter::new(move || writer.clone()))),
        );
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
        });
        recorder.flush();
        let doc = &lines(&buffer)[0];
        assert_eq!(doc["function"], "dofs-prod-validator");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function"]])
        );
    }

    fn lines(buffer: &Buffer) -> Vec<Value> {
        String::from_utf8(buffer.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn counters_and_histograms_become_one_emf_document_with_units_from_the_catalog() {
        let (recorder, buffer) = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
            metrics::counter!(metric::ORDERS_VALIDATED).increment(2);
            metrics::histogram!(metric::FULFILLMENT_LATENCY).record(12.5);
        });
        recorder.flush();
        let docs = lines(&buffer);
        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc["function"], "validator");
        assert_eq!(doc[metric::ORDERS_VALIDATED], 3);
        assert_eq!(doc[metric::FULFILLMENT_LATENCY], json!([12.5]));
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "DOFS");
        assert_eq!(directive["Dimensions"], json!([["function"]]));
        assert!(directive["Metrics"]
            .as_array()
            .unwrap()
            .contains(&json!({"Name": "FulfillmentLatency", "Unit": "Milliseconds"})));
        assert!(directive["Metrics"]
            .as_array()
            .unwrap()
            .contains(&json!({"Name": "OrdersValidated", "Unit": "Count"})));
        recorder.flush();
        assert_eq!(
            lines(&buffer).len(),
            1,
            "a flush with nothing new writes nothing"
        );
    }

    #[test]
    fn long_histograms_are_split_into_documents_of_at_most_100_values() {
        let (recorder, buffer) = recorder();
        metrics::with_local_recorder(&recorder, || {
            for i in 0..250 {
                metrics::histogram!("Latency").record(f64::from(i));
            }
            metrics::counter!("Things").increment(1);
        });
        recorder.flush();
        let docs = lines(&buffer);
        let sizes: Vec<usize> = docs
            .iter()
            .map(|d| d["Latency"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(docs.iter().filter(|d| d.get("Things").is_some()).count(), 1);
        for doc in &docs {
            let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap())
                .collect();
            for name in names {
                assert!(
                    doc.get(name).is_some(),
                    "every declared metric has its value"
                );
            }
        }
    }

    #[test]
    fn labels_are_properties_and_described_units_win() {
        let (recorder, buffer) = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("Payload", Unit::Bytes, "payload size");
            metrics::histogram!("Payload", "route" => "/orders").record(10.0);
        });
        recorder.flush();
        let doc = &lines(&buffer)[0];
        assert_eq!(doc["route"], "/orders");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["function"]])
        );
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Bytes"
        );
    }

    #[test]
    fn a_sink_receives_every_value_with_its_function() {
        struct Collect(Mutex<Vec<(String, String, f64)>>);
        impl MetricsSink for Collect {
            fn record(&self, s: &MetricSample<'_>) {
                self.0
                    .lock()
                    .unwrap()
                    .push((s.name.to_owned(), s.unit.to_owned(), s.value));
            }
        }
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let recorder = EmfRecorder::new("dofs".to_owned(), None, MetricsOutput::Sink(sink.clone()));
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(metric::ORDERS_STORED).increment(2);
            metrics::histogram!(metric::FULFILLMENT_LATENCY).record(3.0);
            metrics::histogram!(metric::FULFILLMENT_LATENCY).record(4.0);
        });
        recorder.flush();
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (
                    "FulfillmentLatency".to_owned(),
                    "Milliseconds".to_owned(),
                    3.0
                ),
                (
                    "FulfillmentLatency".to_owned(),
                    "Milliseconds".to_owned(),
                    4.0
                ),
                ("OrdersStored".to_owned(), "Count".to_owned(), 2.0),
            ]
        );
    }
}
