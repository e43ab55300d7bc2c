//! `dofs serve --otlp-endpoint URL`: every local span also goes out over
//! OTLP/HTTP (protobuf), so Jaeger, Tempo or an OpenTelemetry Collector
//! shows each order with the same trace id as `dofs trace` (the X-Ray id's
//! 128 bits) and the same attributes.
//!
//! What the OTLP specification says, and this follows
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp>,
//! <https://opentelemetry.io/docs/specs/otel/protocol/exporter/>): a POST
//! of an `ExportTraceServiceRequest` as `application/x-protobuf` to
//! `<endpoint>/v1/traces`, where the endpoint is the base URL
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names; 429, 502, 503 and 504 are
//! retryable, with back-off (honouring `Retry-After`); other failures drop
//! the batch.
//!
//! The messages and the `SpanData` conversion are `opentelemetry-proto`'s.
//! The export is not `opentelemetry-otlp`'s: that crate's HTTP client is a
//! second `reqwest` major version beside the one the runtime links, and its
//! exporter would be a second span pipeline beside the span store, where
//! this is one more [`SpanSink`] on the same flush. Each span's resource is
//! its component (`service.name` = `dofs-validator`, `dofs-api_gateway`,
//! …), as X-Ray names segments, so a trace viewer shows one service per
//! function.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dofs_telemetry::traces::{SinkError, SpanData, SpanSink};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use prost::Message as _;
use tokio::sync::mpsc;

use super::records_from_spans;
use crate::shutdown::Shutdown;

/// Encoded batches waiting to be posted; beyond this a batch is dropped
/// (and counted) rather than letting memory grow while the receiver is
/// down.
const QUEUE: usize = 256;
/// Attempts of one batch on a retryable answer.
const ATTEMPTS: u32 = 4;

/// The traces URL of an OTLP base endpoint (`http://host:4318` →
/// `http://host:4318/v1/traces`), as the specification appends it.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// The sink half: encodes each flush and queues it for [`OtlpPoster::run`].
#[derive(Debug)]
pub struct OtlpSink {
    queue: mpsc::Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// The posting half, run by the runtime until shutdown.
#[derive(Debug)]
pub struct OtlpPoster {
    url: String,
    batches: mpsc::Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// A sink and its poster for the OTLP base `endpoint`.
pub fn exporter(endpoint: &str) -> (OtlpSink, OtlpPoster) {
    let (queue, batches) = mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        OtlpSink {
            queue,
            dropped: Arc::clone(&dropped),
        },
        OtlpPoster {
            url: traces_url(endpoint),
            batches,
            dropped,
        },
    )
}

/// The request body for `spans`: one resource per component.
pub fn encode(spans: Vec<SpanData>) -> Vec<u8> {
    // The component of a span is decided over the whole batch (a span
    // inherits its invocation's), which the span store's conversion does.
    let components: Vec<String> = records_from_spans(spans.clone())
        .into_iter()
        .map(|record| record.component)
        .collect();
    let mut by_component: BTreeMap<String, Vec<SpanData>> = BTreeMap::new();
    for (span, component) in spans.into_iter().zip(components) {
        by_component.entry(component).or_default().push(span);
    }
    let resource_spans = by_component
        .into_iter()
        .flat_map(|(component, spans)| {
            let resource = opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(format!("dofs-{component}"))
                .build();
            group_spans_by_resource_and_scope(spans, &ResourceAttributesWithSchema::from(&resource))
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

impl SpanSink for OtlpSink {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
        if spans.is_empty() {
            return Ok(());
        }
        if self.queue.try_send(encode(spans)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Spans to the span store and to OTLP alike.
#[derive(Debug)]
pub struct BothSinks(pub Vec<Arc<dyn SpanSink>>);

impl SpanSink for BothSinks {
    fn export(&self, spans: Vec<SpanData>) -> Result<(), SinkError> {
        let Some((last, rest)) = self.0.split_last() else {
            return Ok(());
        };
        let mut failed = None;
        for sink in rest {
            if let Err(err) = sink.export(spans.clone()) {
                failed = Some(err);
            }
        }
        last.export(spans)?;
        failed.map_or(Ok(()), Err)
    }
}

impl OtlpPoster {
    /// Posts every queued batch until `shutdown`, then what is left.
    pub async fn run(mut self, shutdown: Shutdown) {
        let client = reqwest::Client::new();
        let mut failing = false;
        loop {
            let batch = tokio::select! {
                batch = self.batches.recv() => batch,
                () = shutdown.triggered() => None,
            };
            let Some(batch) = batch else { break };
            self.post(&client, batch, &mut failing).await;
        }
        // What the last flushes queued still goes out.
        self.batches.close();
        while let Ok(batch) = self.batches.try_recv() {
            self.post(&client, batch, &mut failing).await;
        }
    }

    async fn post(&self, client: &reqwest::Client, body: Vec<u8>, failing: &mut bool) {
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let sent = client
                .post(&self.url)
                .header("content-type", "application/x-protobuf")
                .timeout(Duration::from_secs(10))
                .body(body.clone())
                .send()
                .await;
            let outcome = match sent {
                Ok(response) if response.status().is_success() => {
                    if std::mem::take(failing) {
                        tracing::info!(url = %self.url, "OTLP export recovered");
                    }
                    return;
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retryable = matches!(status, 429 | 502 | 503 | 504);
                    if let Some(wait) = retry_after(&response) {
                        delay = wait;
                    }
                    (format!("HTTP {status}"), retryable)
                }
                Err(err) => (err.to_string(), err.is_connect() || err.is_timeout()),
            };
            let (reason, retryable) = outcome;
            if !retryable || attempt == ATTEMPTS {
                // One line per failing streak, not one per flush.
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        url = %self.url,
                        reason,
                        dropped_before = self.dropped.load(Ordering::Relaxed),
                        "OTLP export failed; spans are dropped until it recovers"
                    );
                }
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_to_the_base_endpoint() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
    }
}
