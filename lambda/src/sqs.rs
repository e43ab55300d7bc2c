//! What every queue consumer (fulfill_order, dlq_handler) does around a
//! record: join the order's trace before working on it, and report it as a
//! batch item failure when it could not be handled.
//!
//! The sender — Step Functions' `sqs:sendMessage` with tracing on, or an SQS
//! redrive, which keeps the attribute — carries the order's trace in the
//! record's `AWSTraceHeader` system attribute
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>),
//! so the record's span joins that trace rather than the batch invocation's.
//!
//! The record's work is a *segment* of the order's trace, its parent the
//! header's `Parent`: X-Ray's consumer pattern ("Retrieve the trace header
//! and recover trace context", same page) makes the consumer's segment the
//! message trace's child, and an SQS-triggered invocation "always gets a new
//! trace" that X-Ray links to the message traces
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-tracelinking.html>).
//! So the record span is declared `otel.kind = "server"` (the exporter makes
//! only server spans segments), named after the deployed function at export,
//! and the batch invocation links to it. A record without a readable header
//! is still a segment, in the batch's trace under the invocation.
//!
//! X-Ray accepts data for a trace for seven days only ("You can add data to
//! a trace for up to seven days, and query trace data going back thirty
//! days", <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-xray-tracing.html#xray-concepts-quotas>),
//! while a dead letter waits up to fourteen. A record whose order trace
//! began more than [`XRAY_TRACE_WINDOW`] ago (the time is the `Root`'s
//! first eight hex digits) does not join it — its segment would be
//! refused — and stays a segment of the batch's trace, linked to the old
//! trace and annotated with its order as usual.
//!
//! The records of one batch are independent (a standard queue promises no
//! order), so [`handle_records`] works on several at once: a batch of ten
//! costs about one DynamoDB round trip instead of ten.
//!
//! The records are `aws_lambda_events` types, the JSON shapes of the event
//! Lambda delivers, not the SQS SDK's: nothing here calls SQS (deleting the
//! handled records is the event source mapping's job).

use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use dofs_core::PortError;
use dofs_telemetry::context::link_to_header;
use dofs_telemetry::{record_order_id, set_parent_from_header, TraceHeader};
use futures_util::stream::{self, StreamExt};
use tracing::Span;

/// The SQS system attribute with the number of times a message was received.
pub const RECEIVE_COUNT_ATTRIBUTE: &str = "ApproximateReceiveCount";
/// The SQS system attribute with the X-Ray trace header of the sender.
pub const TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";

/// The record's `ApproximateReceiveCount` (1 if absent or unreadable: the
/// record is being received at least now).
pub fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get(RECEIVE_COUNT_ATTRIBUTE)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// How long after a trace began X-Ray still takes data for it: seven days
/// (see the module docs).
pub const XRAY_TRACE_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Whether a record's work, done `now`, can still join the trace `header`
/// names: one that began at most [`XRAY_TRACE_WINDOW`] ago. A `Root` whose
/// time cannot be read (or lies ahead) is joined: X-Ray decides.
pub fn joins_trace(header: &TraceHeader, now: SystemTime) -> bool {
    header
        .started_at()
        .and_then(|began| now.duration_since(began).ok())
        .is_none_or(|age| age <= XRAY_TRACE_WINDOW)
}

/// Makes `span` (the record's span, declared `otel.kind = "server"`) a child
/// of the trace the record carries, if it carries a readable one X-Ray
/// still accepts data for at `now` ([`joins_trace`]; an older one is only
/// linked, and the span stays in the batch's trace), and annotates it with
/// `order_id` when that is known (empty when the body could not be read).
pub fn join_record_trace(span: &Span, record: &SqsMessage, order_id: &str, now: SystemTime) {
    if let Some(Ok(header)) = record
        .attributes
        .get(TRACE_HEADER_ATTRIBUTE)
        .map(|h| h.parse::<TraceHeader>())
    {
        if joins_trace(&header, now) {
            set_parent_from_header(span, &header);
        } else {
            link_to_header(span, &header);
            span.in_scope(|| {
                tracing::info!(
                    order_trace = %header.root,
                    "order trace older than X-Ray takes data for; the record stays in the batch's trace"
                );
            });
        }
    }
    if !order_id.is_empty() {
        record_order_id(span, order_id);
    }
}

/// Lists the record `message_id` as failed, so that SQS keeps it (and
/// redelivers it after the visibility timeout) while the rest of the batch is
/// deleted (`ReportBatchItemFailures`). A record without an id cannot be
/// named, so the whole invocation fails instead and the batch is retried.
pub fn report_item_failure(
    response: &mut SqsBatchResponse,
    message_id: String,
) -> Result<(), PortError> {
    if message_id.is_empty() {
        return Err(PortError::invalid_input(
            "an SQS record without messageId failed",
        ));
    }
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    response.batch_item_failures.push(failure);
    Ok(())
}

/// Most records of one batch in progress at once. Ten is SQS's largest
/// batch without a batching window; a larger batch is worked through ten at
/// a time, so one invocation never floods the table it writes to.
pub const RECORD_CONCURRENCY: usize = 10;

/// Runs `handle` on every record, up to [`RECORD_CONCURRENCY`] at once, and
/// reports each record for which it returns `true` (failed) as a batch item
/// failure, in the batch's order. `Err` only when a failed record has no
/// `messageId` (see [`report_item_failure`]).
pub async fn handle_records<'a, F, Fut>(
    records: &'a [SqsMessage],
    handle: F,
) -> Result<SqsBatchResponse, PortError>
where
    F: Fn(&'a SqsMessage) -> Fut,
    Fut: Future<Output = bool>,
{
    // The futures are made up front (they do nothing until polled): a
    // closure inside the stream would make the future's type depend on a
    // higher-ranked lifetime, which `tokio::spawn` cannot prove `Send`.
    let pending: Vec<Fut> = records.iter().map(handle).collect();
    let failed: Vec<bool> = stream::iter(pending)
        .buffered(RECORD_CONCURRENCY)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for (record, failed) in records.iter().zip(failed) {
        if failed {
            report_item_failure(&mut response, record.message_id.clone().unwrap_or_default())?;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_count_defaults_to_one() {
        let mut record = SqsMessage::default();
        assert_eq!(receive_count(&record), 1);
        record
            .attributes
            .insert(RECEIVE_COUNT_ATTRIBUTE.to_owned(), "4".to_owned());
        assert_eq!(receive_count(&record), 4);
        record
            .attributes
            .insert(RECEIVE_COUNT_ATTRIBUTE.to_owned(), "many".to_owned());
        assert_eq!(receive_count(&record), 1);
    }

    #[test]
    fn a_trace_older_than_seven_days_is_not_joined() {
        // 1-5759e988-…: 2016-06-09T21:58:32Z.
        let header: TraceHeader =
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                .parse()
                .unwrap();
        let began = std::time::UNIX_EPOCH + Duration::from_secs(0x5759_e988);
        assert!(joins_trace(&header, began));
        assert!(joins_trace(&header, began + XRAY_TRACE_WINDOW));
        assert!(!joins_trace(
            &header,
            began + XRAY_TRACE_WINDOW + Duration::from_secs(1)
        ));
        assert!(!joins_trace(
            &header,
            began + Duration::from_secs(14 * 24 * 3600)
        ));
        // A clock behind the trace's own: joined, X-Ray decides.
        assert!(joins_trace(&header, began - Duration::from_secs(60)));
    }

    #[test]
    fn item_failures_name_the_record_or_fail_the_batch() {
        let mut response = SqsBatchResponse::default();
        report_item_failure(&mut response, "m-1".to_owned()).unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "m-1");
        assert!(report_item_failure(&mut response, String::new()).is_err());
        assert_eq!(response.batch_item_failures.len(), 1);
    }

    fn record(id: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.to_owned());
        record
    }

    #[tokio::test]
    async fn records_run_concurrently_and_failures_keep_batch_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let records: Vec<SqsMessage> = (0..25).map(|i| record(&format!("m-{i}"))).collect();
        let (active, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let response = handle_records(&records, |r| {
            let (active, peak) = (&active, &peak);
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                active.fetch_sub(1, Ordering::SeqCst);
                let n: usize = r.message_id.as_deref().unwrap()[2..].parse().unwrap();
                n.is_multiple_of(3)
            }
        })
        .await
        .unwrap();
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(
            failed,
            ["m-0", "m-3", "m-6", "m-9", "m-12", "m-15", "m-18", "m-21", "m-24"]
        );
        assert_eq!(peak.load(Ordering::SeqCst), RECORD_CONCURRENCY);
    }

    #[tokio::test]
    async fn a_failed_record_without_an_id_fails_the_batch() {
        let records = vec![record("m-1"), SqsMessage::default()];
        assert!(handle_records(&records, |_| async { true }).await.is_err());
        let ok = handle_records(&records, |_| async { false }).await.unwrap();
        assert!(ok.batch_item_failures.is_empty());
    }
}
