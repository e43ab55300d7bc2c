//! What every queue consumer (fulfill_order, dlq_handler) does around a
//! record: join the order's trace before working on it, and report it as a
//! batch item failure when it could not be handled.
//!
//! The sender — Step Functions' `sqs:sendMessage` with tracing on, or an SQS
//! redrive, which keeps the attribute — carries the order's trace in the
//! record's `AWSTraceHeader` system attribute
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sqs.html>),
//! so the record's span joins that trace rather than the batch invocation's.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use dofs_core::PortError;
use tracing::Span;

use crate::context::{record_order_id, set_parent_from_header};
use crate::TraceHeader;

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

/// Makes `span` (the record's span) a child of the trace the record carries,
/// if it carries a readable one, and annotates it with `order_id` when that
/// is known (empty when the body could not be read).
pub fn join_record_trace(span: &Span, record: &SqsMessage, order_id: &str) {
    if let Some(Ok(header)) = record
        .attributes
        .get(TRACE_HEADER_ATTRIBUTE)
        .map(|h| h.parse::<TraceHeader>())
    {
        set_parent_from_header(span, &header);
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
    fn item_failures_name_the_record_or_fail_the_batch() {
        let mut response = SqsBatchResponse::default();
        report_item_failure(&mut response, "m-1".to_owned()).unwrap();
        assert_eq!(response.batch_item_failures.len(), 1);
        assert_eq!(response.batch_item_failures[0].item_identifier, "m-1");
        assert!(report_item_failure(&mut response, String::new()).is_err());
        assert_eq!(response.batch_item_failures.len(), 1);
    }
}
