//! SQS event source mappings: poll a queue, invoke a function with a batch,
//! delete what succeeded.
//!
//! Like Lambda's SQS event source mapping with `ReportBatchItemFailures`
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>):
//! - a batch is up to `batch_size` messages, gathered for at most the
//!   batching window;
//! - the event is a real `SqsEvent` (messageId, receiptHandle, body,
//!   attributes, messageAttributes, md5OfBody, eventSource, eventSourceARN,
//!   awsRegion);
//! - the response's `batchItemFailures` lists the messages to keep; every
//!   other message is deleted. A function error, or a response that is not a
//!   valid `SqsBatchResponse` (including an `itemIdentifier` that is empty or
//!   not in the batch), fails the whole batch: nothing is deleted and the
//!   messages come back after their visibility timeout.
//!
//! Every delivery is also written to the `deliveries` table (queue, message,
//! order id, receive count, outcome), which is how `dofs order` can show how
//! many times an order was attempted.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use dofs_telemetry::TraceHeader;
use rusqlite::params;
use serde_json::{json, Map, Value};

use crate::faults::FaultKind;
use crate::identity::REGION;
use crate::services::backoff::FailureBackoff;
use crate::services::lambda::{FunctionName, Functions};
use crate::services::sqs::{QueueError, Queues, ReceivedMessage};
use crate::shutdown::Shutdown;
use crate::store::{Db, DbError};

/// One event source mapping.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub queue: String,
    pub function: FunctionName,
    pub batch_size: usize,
    pub batching_window: Duration,
    /// How long to wait when the queue is empty (a send wakes the poller
    /// sooner).
    pub poll_interval: Duration,
}

/// What happened to one message of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed and deleted.
    Deleted,
    /// Listed in `batchItemFailures`: left for redelivery.
    ItemFailed,
    /// The whole batch failed: left for redelivery.
    BatchFailed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deleted => "deleted",
            Outcome::ItemFailed => "item_failed",
            Outcome::BatchFailed => "batch_failed",
        }
    }
}

/// Builds the `SqsEvent` Lambda would send for `messages`.
pub fn sqs_event(
    queues: &Queues,
    messages: &[ReceivedMessage],
) -> Result<SqsEvent, serde_json::Error> {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let mut attributes = Map::new();
            attributes.insert(
                "ApproximateReceiveCount".into(),
                m.receive_count.to_string().into(),
            );
            attributes.insert("SentTimestamp".into(), m.sent_ms.to_string().into());
            attributes.insert("SenderId".into(), "AROALOCALDOFS000000000:dofs".into());
            attributes.insert(
                "ApproximateFirstReceiveTimestamp".into(),
                m.first_receive_ms.to_string().into(),
            );
            if let Some(header) = &m.trace_header {
                attributes.insert("AWSTraceHeader".into(), header.clone().into());
            }
            let message_attributes: Map<String, Value> = m
                .attributes
                .iter()
                .map(|(name, a)| {
                    (
                        name.clone(),
                        json!({
                            "stringValue": a.string_value,
                            "binaryValue": a.binary_value,
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": a.data_type,
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs",
                "eventSourceARN": queues.arn(&m.queue),
                "awsRegion": REGION,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records }))
}

/// Which message ids a function response asks to keep, or `None` when the
/// whole batch must be treated as failed.
pub fn failed_items(response: &Value, batch: &[ReceivedMessage]) -> Option<HashSet<String>> {
    let ids: HashSet<&str> = batch.iter().map(|m| m.message_id.as_str()).collect();
    // An empty response, or one without failures, means every message succeeded.
    let failures = match response {
        Value::Null => return Some(HashSet::new()),
        Value::Object(map) => match map.get("batchItemFailures") {
            None | Some(Value::Null) => return Some(HashSet::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return None,
        },
        _ => return None,
    };
    let mut keep = HashSet::new();
    for item in failures {
        let id = item.get("itemIdentifier").and_then(Value::as_str)?;
        if id.is_empty() || !ids.contains(id) {
            return None;
        }
        keep.insert(id.to_owned());
    }
    Some(keep)
}

/// Polls one queue and invokes one function until `shutdown` turns true.
/// The batch in hand when shutdown comes is finished first. `backoff` is
/// this poller's, a clone of its mapping's (see [`mapping_backoff`]).
pub async fn run_mapping(
    db: Db,
    queues: Queues,
    functions: Arc<Functions>,
    config: MappingConfig,
    mut backoff: FailureBackoff,
    shutdown: Shutdown,
) {
    let notifier = queues.notifier(&config.queue);
    loop {
        if shutdown.is_triggered() {
            return;
        }
        if functions.faults().of(config.function) == Some(FaultKind::Disabled) {
            // A disabled mapping polls nothing; re-enabled, it goes on.
            tokio::select! {
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = shutdown.triggered() => {}
            }
            continue;
        }
        // Register interest before looking, so a send in between is not missed.
        let notified = notifier.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match poll_once(&db, &queues, &functions, &config, Some(&shutdown)).await {
            Ok(n) => {
                backoff.succeeded();
                if n > 0 {
                    continue;
                }
            }
            Err(err) => {
                let error = format!("queue {}: {err}", config.queue);
                let wait = backoff.failed(&error);
                // A send's wake-up does not cut a back-off short.
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.triggered() => {}
                }
                continue;
            }
        }
        let wait = match queues.next_visible_in(&config.queue).await {
            Ok(Some(d)) => d.min(config.poll_interval),
            _ => config.poll_interval,
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.triggered() => {}
        }
    }
}

/// The back-off one mapping's pollers clone, so they log as one.
pub fn mapping_backoff(config: &MappingConfig) -> FailureBackoff {
    FailureBackoff::new("event source mapping", config.poll_interval)
}

/// Errors of one poll.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not build the SQS event")]
    Event(#[from] serde_json::Error),
}

/// Receives one batch, invokes the function, deletes the successes.
/// Returns how many messages were in the batch.
pub async fn poll_once(
    db: &Db,
    queues: &Queues,
    functions: &Arc<Functions>,
    config: &MappingConfig,
    shutdown: Option<&Shutdown>,
) -> Result<usize, PollError> {
    let batch_size = config.batch_size.max(1);
    let mut batch = queues.receive(&config.queue, batch_size).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    if batch.len() < batch_size && !config.batching_window.is_zero() {
        let window = tokio::time::sleep(config.batching_window);
        match shutdown {
            Some(shutdown) => {
                tokio::select! {
                    _ = window => {}
                    _ = shutdown.triggered() => {}
                }
            }
            None => window.await,
        }
        let more = queues
            .receive(&config.queue, batch_size - batch.len())
            .await?;
        batch.extend(more);
    }
    let event = sqs_event(queues, &batch)?;
    let payload = serde_json::to_value(&event)?;
    // The invocation starts its own trace; each record carries its
    // producer's trace in AWSTraceHeader, which the handler follows.
    let header = TraceHeader::new_root()
        .with_parent(dofs_telemetry::trace_header::new_segment_id())
        .to_string();
    let response = functions
        .invoke(config.function, payload, Some(header))
        .await;
    let keep = match &response {
        Ok(value) => failed_items(value, &batch),
        Err(_) => None,
    };
    if keep.is_none() {
        tracing::warn!(
            queue = %config.queue,
            function = %config.function,
            size = batch.len(),
            "batch failed as a whole; messages return after the visibility timeout"
        );
    }
    let outcomes: Vec<Outcome> = batch
        .iter()
        .map(|message| match &keep {
            None => Outcome::BatchFailed,
            Some(keep) if keep.contains(&message.message_id) => Outcome::ItemFailed,
            Some(_) => Outcome::Deleted,
        })
        .collect();
    settle_batch(
        db,
        &config.queue,
        config.function,
        &batch,
        &outcomes,
        queues.now(),
    )
    .await?;
    // Lambda deletes a batch's successes in one DeleteMessageBatch.
    if outcomes.contains(&Outcome::Deleted) {
        queues.usage().sqs_request(&config.queue, 0, None);
    }
    Ok(batch.len())
}

fn order_id_of(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value.get("order_id")?.as_str().map(str::to_owned)
}

/// Deletes the batch's processed messages and records every delivery, in
/// one commit: a delivery is on record exactly when its deletion is.
async fn settle_batch(
    db: &Db,
    queue: &str,
    function: FunctionName,
    batch: &[ReceivedMessage],
    outcomes: &[Outcome],
    at: DateTime<Utc>,
) -> Result<(), DbError> {
    let at = at.to_rfc3339();
    let rows: Vec<(String, String, Option<String>, u32, Outcome)> = batch
        .iter()
        .zip(outcomes)
        .map(|(m, o)| {
            (
                m.message_id.clone(),
                m.receipt_handle.clone(),
                order_id_of(&m.body),
                m.receive_count,
                *o,
            )
        })
        .collect();
    let queue = queue.to_owned();
    db.write(move |conn| {
        let mut insert = conn.prepare_cached(
            "INSERT INTO deliveries(queue, function, message_id, order_id, receive_count, outcome, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (message_id, receipt_handle, order_id, count, outcome) in rows {
            if outcome == Outcome::Deleted {
                crate::services::sqs::delete_in(conn, &queue, &receipt_handle)?;
            }
            insert.execute(params![queue, function.as_str(), message_id, order_id, count, outcome.as_str(), at])?;
        }
        Ok(())
    })
    .await
}

/// Deletes up to `batch` delivery records older than `before`; returns how
/// many went.
pub fn prune_deliveries(
    conn: &rusqlite::Connection,
    before: DateTime<Utc>,
    batch: usize,
) -> Result<usize, DbError> {
    let deleted = conn.execute(
        "DELETE FROM deliveries WHERE id IN (
             SELECT id FROM deliveries WHERE at < ?1 ORDER BY id LIMIT ?2)",
        params![before.to_rfc3339(), batch as i64],
    )?;
    Ok(deleted)
}

/// Deliveries of one order, oldest first, as JSON objects.
pub fn load_deliveries(conn: &rusqlite::Connection, order_id: &str) -> Result<Vec<Value>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT queue, function, message_id, receive_count, outcome, at FROM deliveries
         WHERE order_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map([order_id], |r| {
            Ok(json!({
                "queue": r.get::<_, String>("queue")?,
                "function": r.get::<_, String>("function")?,
                "message_id": r.get::<_, String>("message_id")?,
                "receive_count": r.get::<_, u32>("receive_count")?,
                "outcome": r.get::<_, String>("outcome")?,
                "at": r.get::<_, String>("at")?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Attempts per function for one order (for summaries).
pub fn attempts_by_function(deliveries: &[Value]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for d in deliveries {
        if let Some(f) = d.get("function").and_then(Value::as_str) {
            *counts.entry(f.to_owned()).or_default() += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> ReceivedMessage {
        ReceivedMessage {
            queue: "q".into(),
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: r#"{"order_id":"o-1"}"#.into(),
            md5_of_body: crate::services::sqs::md5_hex(r#"{"order_id":"o-1"}"#),
            attributes: BTreeMap::new(),
            trace_header: Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into()),
            sent_ms: 1,
            receive_count: 2,
            first_receive_ms: 3,
        }
    }

    #[test]
    fn partial_batch_response_rules() {
        let batch = vec![message("a"), message("b")];
        assert_eq!(
            failed_items(&json!({"batchItemFailures": []}), &batch),
            Some(HashSet::new())
        );
        assert_eq!(failed_items(&Value::Null, &batch), Some(HashSet::new()));
        assert_eq!(
            failed_items(
                &json!({"batchItemFailures": [{"itemIdentifier": "b"}]}),
                &batch
            ),
            Some(HashSet::from(["b".to_owned()]))
        );
        // Unknown or empty ids and malformed shapes fail the whole batch.
        assert_eq!(
            failed_items(
                &json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}),
                &batch
            ),
            None
        );
        assert_eq!(
            failed_items(
                &json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
                &batch
            ),
            None
        );
        assert_eq!(
            failed_items(&json!({"batchItemFailures": "b"}), &batch),
            None
        );
        assert_eq!(failed_items(&json!([1, 2]), &batch), None);
    }

    #[test]
    fn builds_a_real_sqs_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let queues = Queues::new(db, Arc::new(dofs_core::SystemClock), "http://127.0.0.1:1");
        let event = sqs_event(&queues, &[message("a")]).unwrap();
        let record = &event.records[0];
        assert_eq!(record.message_id.as_deref(), Some("a"));
        assert_eq!(record.receipt_handle.as_deref(), Some("rh-a"));
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some("arn:aws:sqs:local:000000000000:q")
        );
        assert_eq!(record.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            record.attributes["AWSTraceHeader"],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        );
        assert_eq!(
            record.md5_of_body,
            Some(crate::services::sqs::md5_hex(r#"{"order_id":"o-1"}"#))
        );
    }
}
