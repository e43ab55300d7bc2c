//! SQS standard queues on SQLite: every message is a durable row, so nothing
//! sent or in flight is lost when the process dies.
//!
//! The semantics follow Amazon SQS (standard queues):
//! - **Send** stores the body, its MD5, message attributes, the system
//!   attribute `AWSTraceHeader` and an optional `DelaySeconds`
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html>).
//! - **Receive** returns up to N visible messages and hides them for the
//!   queue's visibility timeout; each receive increments
//!   `ApproximateReceiveCount`, sets `ApproximateFirstReceiveTimestamp` on the
//!   first one and mints a *new* receipt handle
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html>).
//! - **Delete** needs the most recent receipt handle: an older one "succeeds"
//!   but deletes nothing, so a slow consumer cannot delete a message that was
//!   since handed to another
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html>).
//! - **Redrive policy**: a message whose receive count already reached
//!   `maxReceiveCount` is moved to the dead-letter queue instead of being
//!   delivered again. Its message id, body, attributes and enqueue timestamp
//!   are kept, and so is its receive count (which is why a DLQ consumer sees
//!   `maxReceiveCount + 1` on its first receive)
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html>).
//! - Delivery is at least once: a message whose visibility timeout expires
//!   before it is deleted is delivered again (duplicates are the consumer's
//!   problem, exactly as on AWS).

pub mod event_source_mapping;

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dofs_core::{Clock, PortError};
use md5::{Digest, Md5};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::observability::metrics::{MetricsStore, SeriesKey};
use crate::observability::monitor::Gauges;
use crate::observability::usage::UsageMeter;
use crate::store::{CachedStatements, Db, DbError};

/// Errors of the queue service.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the specified queue does not exist: {0}")]
    NonExistentQueue(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<QueueError> for PortError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Db(db) => db.into(),
            other => PortError::internal("local queue error").with_source(other),
        }
    }
}

/// How a queue is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub name: String,
    pub visibility_timeout: Duration,
    /// `(dead-letter queue name, maxReceiveCount)`.
    pub redrive: Option<(String, u32)>,
}

/// A message attribute (`DataType` String, Number or Binary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageAttribute {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Base64 text of the binary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub trace_header: Option<String>,
    pub delay: Option<Duration>,
}

/// What `SendMessage` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
    pub md5_of_body: String,
}

/// A message as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub queue: String,
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub trace_header: Option<String>,
    pub sent_ms: i64,
    pub receive_count: u32,
    pub first_receive_ms: i64,
}

/// Message counts of one queue, as `GetQueueAttributes` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub name: String,
    /// `ApproximateNumberOfMessages`: visible now.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`: received, not yet deleted.
    pub in_flight: u64,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: u64,
    /// When the oldest message `ApproximateAgeOfOldestMessage` counts
    /// entered the queue (see [`AGE_RECEIVE_LIMIT`]).
    #[serde(skip)]
    pub oldest_sent_ms: Option<i64>,
}

impl QueueCounts {
    /// One row of [`queue_counts`]'s query.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get("name")?,
            visible: row.get::<_, i64>("visible")? as u64,
            in_flight: row.get::<_, i64>("in_flight")? as u64,
            delayed: row.get::<_, i64>("delayed")? as u64,
            oldest_sent_ms: row.get("oldest_sent_ms")?,
        })
    }
}

/// The MD5 hex digest SQS reports as `MD5OfMessageBody`.
pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The queue service: all queues of the data directory.
#[derive(Clone)]
pub struct Queues {
    db: Db,
    clock: Arc<dyn Clock>,
    base_url: String,
    notify: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
    usage: UsageMeter,
}

impl Queues {
    /// `base_url` is what queue URLs start with, e.g. `http://127.0.0.1:3000`.
    pub fn new(db: Db, clock: Arc<dyn Clock>, base_url: impl Into<String>) -> Self {
        Self {
            db,
            clock,
            base_url: base_url.into(),
            notify: Arc::default(),
            usage: UsageMeter::off(),
        }
    }

    /// The queues, metering the requests each call would be on SQS.
    pub fn with_usage(mut self, usage: UsageMeter) -> Self {
        self.usage = usage;
        self
    }

    /// The meter the queues count into (the event source mapping's deletes
    /// are counted there too).
    pub fn usage(&self) -> &UsageMeter {
        &self.usage
    }

    /// The queue's URL, `{base}/000000000000/{name}` as SQS shapes it.
    pub fn url(&self, name: &str) -> String {
        crate::identity::queue_url(&self.base_url, name)
    }

    /// The queue's ARN.
    pub fn arn(&self, name: &str) -> String {
        crate::identity::queue_arn(name)
    }

    /// The queue name in a queue URL (its last path segment) or ARN.
    pub fn name_from_url(url: &str) -> Option<&str> {
        let name = url.rsplit(['/', ':']).next()?;
        (!name.is_empty()).then_some(name)
    }

    /// Woken whenever a message is sent to (or becomes visible in) `queue`.
    pub fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = match self.notify.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(map.entry(queue.to_owned()).or_default())
    }

    /// Creates the queue or updates its settings (like `CreateQueue` +
    /// `SetQueueAttributes`).
    pub async fn declare(&self, config: &QueueConfig) -> Result<(), QueueError> {
        let config = config.clone();
        self.db
            .write(move |conn| {
                conn.execute_cached(
                    "INSERT INTO queues(name, visibility_timeout_ms, dead_letter_queue, max_receive_count)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(name) DO UPDATE SET visibility_timeout_ms = excluded.visibility_timeout_ms,
                         dead_letter_queue = excluded.dead_letter_queue,
                         max_receive_count = excluded.max_receive_count",
                    params![
                        config.name,
                        config.visibility_timeout.as_millis() as i64,
                        config.redrive.as_ref().map(|(dlq, _)| dlq.clone()),
                        config.redrive.as_ref().map(|(_, max)| *max),
                    ],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The queues' clock's now (what receive and delete times are).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// `SendMessage`.
    pub async fn send(
        &self,
        queue: &str,
        message: OutgoingMessage,
    ) -> Result<SentMessage, QueueError> {
        let now = self.now_ms();
        let queue_name = queue.to_owned();
        let message_id = uuid::Uuid::new_v4().to_string();
        let md5_of_body = md5_hex(&message.body);
        let sent = SentMessage {
            message_id: message_id.clone(),
            md5_of_body: md5_of_body.clone(),
        };
        let delay_ms = message.delay.map_or(0, |d| d.as_millis() as i64);
        self.usage
            .sqs_request(queue, message.body.len(), Some("GenerateDataKey"));
        let attributes = serde_json::to_string(&message.attributes).map_err(DbError::from)?;
        let exists = self
            .db
            .write(move |conn| {
                if !queue_exists(conn, &queue_name)? {
                    return Ok(false);
                }
                conn.execute_cached(
                    "INSERT INTO messages(message_id, queue, body, md5_of_body, message_attributes,
                         trace_header, sent_ms, visible_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        message_id,
                        queue_name,
                        message.body,
                        md5_of_body,
                        attributes,
                        message.trace_header,
                        now,
                        now + delay_ms,
                    ],
                )?;
                Ok(true)
            })
            .await?;
        if !exists {
            return Err(QueueError::NonExistentQueue(queue.to_owned()));
        }
        self.notifier(queue).notify_waiters();
        Ok(sent)
    }

    /// `ReceiveMessage` for up to `max` messages, moving any message that
    /// already reached `maxReceiveCount` to the dead-letter queue instead.
    pub async fn receive(
        &self,
        queue: &str,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = self.now_ms();
        let queue_name = queue.to_owned();
        let (received, redriven) = self
            .db
            .write(move |conn| receive_in(conn, &queue_name, max, now))
            .await?
            .ok_or_else(|| QueueError::NonExistentQueue(queue.to_owned()))?;
        if let Some(dlq) = redriven {
            self.notifier(&dlq).notify_waiters();
        }
        if !received.is_empty() {
            let bytes = received.iter().map(|m| m.body.len()).sum();
            self.usage.sqs_request(queue, bytes, Some("Decrypt"));
        }
        Ok(received)
    }

    /// `ChangeMessageVisibility`: the message becomes visible `timeout` from
    /// now. Only the latest receipt handle of an in-flight message counts.
    pub async fn change_visibility(
        &self,
        queue: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<bool, QueueError> {
        let now = self.now_ms();
        let queue_name = queue.to_owned();
        let handle = receipt_handle.to_owned();
        let changed = self
            .db
            .write(move |conn| {
                let n = conn.execute_cached(
                    "UPDATE messages SET visible_at_ms = ?3
                     WHERE queue = ?1 AND receipt_handle = ?2 AND visible_at_ms > ?4",
                    params![queue_name, handle, now + timeout.as_millis() as i64, now],
                )?;
                Ok(n > 0)
            })
            .await?;
        if changed && timeout.is_zero() {
            self.notifier(queue).notify_waiters();
        }
        Ok(changed)
    }

    /// Counts for every queue, by name.
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, QueueError> {
        let now = self.now_ms();
        Ok(self.db.read(move |conn| queue_counts(conn, now)).await?)
    }

    /// Moves every message of `from` back to `to` as fresh messages (receive
    /// count 0), like an SQS `StartMessageMoveTask` from a DLQ to its source.
    /// Returns how many were moved.
    pub async fn move_messages(&self, from: &str, to: &str) -> Result<u64, QueueError> {
        self.move_where(from, to, None).await
    }

    /// [`Queues::move_messages`] of one message (the console's "redrive
    /// this one"); 0 when `message_id` is not in `from`.
    pub async fn move_message(
        &self,
        from: &str,
        to: &str,
        message_id: &str,
    ) -> Result<u64, QueueError> {
        self.move_where(from, to, Some(message_id.to_owned())).await
    }

    /// `PurgeQueue`: deletes every message of `queue`, received or not.
    /// Returns how many were deleted.
    pub async fn purge(&self, queue: &str) -> Result<u64, QueueError> {
        let name = queue.to_owned();
        let n = self
            .db
            .write(move |conn| {
                Ok(conn.execute_cached("DELETE FROM messages WHERE queue = ?1", [name])? as u64)
            })
            .await?;
        Ok(n)
    }

    async fn move_where(
        &self,
        from: &str,
        to: &str,
        message_id: Option<String>,
    ) -> Result<u64, QueueError> {
        let now = self.now_ms();
        let (from_name, to_name) = (from.to_owned(), to.to_owned());
        let moved = self
            .db
            .write(move |conn| {
                if !queue_exists(conn, &to_name)? || !queue_exists(conn, &from_name)? {
                    return Ok(None);
                }
                let n = conn.execute_cached(
                    "UPDATE messages SET queue = ?2, receive_count = 0, first_receive_ms = NULL,
                         receipt_handle = NULL, visible_at_ms = ?3, sent_ms = ?3,
                         entered_ms = NULL, receives_here = 0
                     WHERE queue = ?1 AND (?4 IS NULL OR message_id = ?4)",
                    params![from_name, to_name, now, message_id],
                )?;
                Ok(Some(n as u64))
            })
            .await?
            .ok_or_else(|| QueueError::NonExistentQueue(format!("{from} or {to}")))?;
        self.notifier(to).notify_waiters();
        Ok(moved)
    }

    /// How long until the next message of `queue` becomes visible, if any
    /// is waiting (so a poller can sleep exactly that long).
    pub async fn next_visible_in(&self, queue: &str) -> Result<Option<Duration>, QueueError> {
        let now = self.now_ms();
        let queue = queue.to_owned();
        let next: Option<i64> = self
            .db
            .read(move |conn| {
                Ok(conn.query_row_cached(
                    "SELECT min(visible_at_ms) FROM messages WHERE queue = ?1",
                    [queue],
                    |row| row.get(0),
                )?)
            })
            .await?;
        Ok(next.map(|at| Duration::from_millis((at - now).max(0) as u64)))
    }
}

/// `DeleteMessage`, inside a caller's write, so that a consumer deletes a
/// whole batch and records what it did in one commit (as
/// `DeleteMessageBatch` does in one request). Returns whether a message was
/// deleted: `false` for a stale receipt handle (which SQS also accepts
/// without error).
pub fn delete_in(conn: &Connection, queue: &str, receipt_handle: &str) -> Result<bool, DbError> {
    let n = conn.execute_cached(
        "DELETE FROM messages WHERE queue = ?1 AND receipt_handle = ?2",
        params![queue, receipt_handle],
    )?;
    Ok(n > 0)
}

fn queue_exists(conn: &Connection, name: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row_cached("SELECT 1 FROM queues WHERE name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

type ReceiveResult = Option<(Vec<ReceivedMessage>, Option<String>)>;

fn receive_in(
    conn: &Connection,
    queue: &str,
    max: usize,
    now: i64,
) -> Result<ReceiveResult, DbError> {
    let settings: Option<(i64, Option<String>, Option<u32>)> = conn.query_row_cached(
            "SELECT visibility_timeout_ms, dead_letter_queue, max_receive_count FROM queues WHERE name = ?1",
            [queue],
            |row| {
                Ok((
                    row.get("visibility_timeout_ms")?,
                    row.get("dead_letter_queue")?,
                    row.get("max_receive_count")?,
                ))
            },
        )
        .optional()?;
    let Some((visibility_ms, dlq, max_receive)) = settings else {
        return Ok(None);
    };
    let redrive = dlq.zip(max_receive);
    let mut received = Vec::new();
    let mut redriven = None;
    // Oldest-visible first, in the order of the `messages_visible` index
    // (queue, visible_at_ms, seq): SQLite walks the index and stops after
    // `LIMIT` rows, where `ORDER BY seq` alone would sort every visible
    // message on each receive, on the writer thread. A standard queue
    // promises no order; messages sent in the same millisecond still come
    // out in send order.
    let mut select = conn.prepare_cached(&format!(
        "SELECT {VISIBLE_COLUMNS} FROM messages WHERE queue = ?1 AND visible_at_ms <= ?2
         ORDER BY visible_at_ms, seq LIMIT ?3"
    ))?;
    loop {
        let wanted = max.saturating_sub(received.len());
        if wanted == 0 {
            break;
        }
        let rows: Vec<VisibleRow> = select
            .query_map(params![queue, now, wanted as i64], VisibleRow::from_row)?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            match &redrive {
                Some((dlq, max_receive)) if row.receive_count >= *max_receive => {
                    redrive_row(conn, row.seq, dlq, now)?;
                    redriven = Some(dlq.clone());
                }
                _ => received.push(hand_out_row(conn, queue, row, now, visibility_ms)?),
            }
        }
    }
    Ok(Some((received, redriven)))
}

/// The columns [`VisibleRow::from_row`] reads.
const VISIBLE_COLUMNS: &str = "seq, message_id, body, md5_of_body, message_attributes, \
     trace_header, sent_ms, receive_count, first_receive_ms";

/// A visible message as `receive_in` finds it.
struct VisibleRow {
    seq: i64,
    message_id: String,
    body: String,
    md5_of_body: String,
    attributes: String,
    trace_header: Option<String>,
    sent_ms: i64,
    receive_count: u32,
    first_receive_ms: Option<i64>,
}

impl VisibleRow {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get("seq")?,
            message_id: row.get("message_id")?,
            body: row.get("body")?,
            md5_of_body: row.get("md5_of_body")?,
            attributes: row.get("message_attributes")?,
            trace_header: row.get("trace_header")?,
            sent_ms: row.get("sent_ms")?,
            receive_count: row.get("receive_count")?,
            first_receive_ms: row.get("first_receive_ms")?,
        })
    }
}

/// Moves a message that was received `maxReceiveCount` times to its
/// dead-letter queue, visible there at once (SQS's redrive policy).
fn redrive_row(conn: &Connection, seq: i64, dlq: &str, now: i64) -> Result<(), DbError> {
    conn.execute_cached(
        "UPDATE messages SET queue = ?2, receipt_handle = NULL, visible_at_ms = ?3,
             entered_ms = ?3, receives_here = 0
         WHERE seq = ?1",
        params![seq, dlq, now],
    )?;
    Ok(())
}

/// Hands a message out: one more receive, a new receipt handle, invisible
/// for the visibility timeout.
fn hand_out_row(
    conn: &Connection,
    queue: &str,
    row: VisibleRow,
    now: i64,
    visibility_ms: i64,
) -> Result<ReceivedMessage, DbError> {
    let handle = uuid::Uuid::new_v4().to_string();
    let count = row.receive_count + 1;
    let first = row.first_receive_ms.unwrap_or(now);
    conn.execute_cached(
        "UPDATE messages SET receive_count = ?2, first_receive_ms = ?3, receipt_handle = ?4,
             visible_at_ms = ?5, receives_here = receives_here + 1 WHERE seq = ?1",
        params![row.seq, count, first, handle, now + visibility_ms],
    )?;
    Ok(ReceivedMessage {
        queue: queue.to_owned(),
        message_id: row.message_id,
        receipt_handle: handle,
        body: row.body,
        md5_of_body: row.md5_of_body,
        attributes: serde_json::from_str(&row.attributes)?,
        trace_header: row.trace_header,
        sent_ms: row.sent_ms,
        receive_count: count,
        first_receive_ms: first,
    })
}

/// `ApproximateAgeOfOldestMessage` as SQS computes it: the age of the
/// oldest message not deleted (visible, in flight or delayed), except that
/// a message received this many times in its queue is moved "to the back"
/// and no longer counted (a poison pill would otherwise hold the metric up),
/// and a dead letter's age starts when it was moved to the dead-letter
/// queue, not when it was sent
/// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html>).
pub const AGE_RECEIVE_LIMIT: i64 = 3;

/// Counts per queue at `now_ms`: what `GetQueueAttributes` answers, and
/// what the SQS gauges sample.
pub fn queue_counts(conn: &Connection, now_ms: i64) -> Result<Vec<QueueCounts>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT q.name AS name,
                coalesce(sum(m.visible_at_ms <= ?1), 0) AS visible,
                coalesce(sum(m.visible_at_ms > ?1 AND m.receive_count > 0), 0) AS in_flight,
                coalesce(sum(m.visible_at_ms > ?1 AND m.receive_count = 0), 0) AS delayed,
                min(CASE WHEN m.receives_here < ?2 THEN coalesce(m.entered_ms, m.sent_ms) END)
                    AS oldest_sent_ms
         FROM queues q LEFT JOIN messages m ON m.queue = q.name
         GROUP BY q.name ORDER BY q.name",
    )?;
    let rows = stmt
        .query_map(params![now_ms, AGE_RECEIVE_LIMIT], QueueCounts::from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Samples the `AWS/SQS` gauges of every queue into `store`, as the SQS
/// service publishes them: visible, in flight, and the age in seconds of
/// the oldest message (0 when the queue is empty).
async fn publish_gauges(db: &Db, store: &MetricsStore, now: DateTime<Utc>) -> Result<(), DbError> {
    let now = now.timestamp_millis();
    let queues = db.read(move |conn| queue_counts(conn, now)).await?;
    for queue in queues {
        let dims = [("QueueName", queue.name.as_str())];
        let age_s = queue
            .oldest_sent_ms
            .map_or(0.0, |sent| ((now - sent).max(0) / 1000) as f64);
        for (metric, unit, value) in [
            (
                "ApproximateNumberOfMessagesVisible",
                "Count",
                queue.visible as f64,
            ),
            (
                "ApproximateNumberOfMessagesNotVisible",
                "Count",
                queue.in_flight as f64,
            ),
            (
                "ApproximateNumberOfMessagesDelayed",
                "Count",
                queue.delayed as f64,
            ),
            ("ApproximateAgeOfOldestMessage", "Seconds", age_s),
        ] {
            store.record_at(SeriesKey::new("AWS/SQS", metric, &dims), unit, value, now);
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Gauges for Queues {
    async fn sample(&self, store: &MetricsStore, now: DateTime<Utc>) -> Result<(), DbError> {
        publish_gauges(&self.db, store, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::testkit::ManualClock;

    /// Moves the clock by a std duration.
    trait Advance {
        fn advance_by(&self, d: Duration);
    }

    impl Advance for ManualClock {
        fn advance_by(&self, d: Duration) {
            self.advance(chrono::Duration::from_std(d).unwrap());
        }
    }

    async fn setup(max_receive: u32) -> (tempfile::TempDir, Arc<ManualClock>, Queues) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let start = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let queues = Queues::new(db, clock.clone(), "http://127.0.0.1:1");
        queues
            .declare(&QueueConfig {
                name: "dlq".into(),
                visibility_timeout: Duration::from_secs(30),
                redrive: None,
            })
            .await
            .unwrap();
        queues
            .declare(&QueueConfig {
                name: "q".into(),
                visibility_timeout: Duration::from_secs(10),
                redrive: Some(("dlq".into(), max_receive)),
            })
            .await
            .unwrap();
        (dir, clock, queues)
    }

    fn msg(body: &str) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            ..OutgoingMessage::default()
        }
    }

    #[tokio::test]
    async fn received_message_is_hidden_until_the_visibility_timeout_expires() {
        let (_d, clock, q) = setup(3).await;
        let sent = q.send("q", msg("hello")).await.unwrap();
        assert_eq!(sent.md5_of_body, "5d41402abc4b2a76b9719d911017c592");
        let first = q.receive("q", 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].receive_count, 1);
        assert_eq!(first[0].body, "hello");
        assert!(q.receive("q", 10).await.unwrap().is_empty());
        clock.advance_by(Duration::from_millis(9_999));
        assert!(q.receive("q", 10).await.unwrap().is_empty());
        clock.advance_by(Duration::from_millis(1));
        let again = q.receive("q", 10).await.unwrap();
        assert_eq!(again.len(), 1, "duplicate delivery after the timeout");
        assert_eq!(again[0].message_id, sent.message_id);
        assert_eq!(again[0].receive_count, 2);
        assert_eq!(again[0].first_receive_ms, first[0].first_receive_ms);
        assert_ne!(again[0].receipt_handle, first[0].receipt_handle);
    }

    #[tokio::test]
    async fn a_stale_receipt_handle_deletes_nothing() {
        let (_d, clock, q) = setup(5).await;
        q.send("q", msg("x")).await.unwrap();
        let old = q.receive("q", 1).await.unwrap().remove(0);
        clock.advance_by(Duration::from_secs(10));
        let new = q.receive("q", 1).await.unwrap().remove(0);
        let delete = |handle: String| q.db.write(move |conn| delete_in(conn, "q", &handle));
        assert!(!delete(old.receipt_handle).await.unwrap());
        assert!(delete(new.receipt_handle).await.unwrap());
        clock.advance_by(Duration::from_secs(60));
        assert!(q.receive("q", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn moves_to_the_dlq_after_max_receive_count() {
        let (_d, clock, q) = setup(3).await;
        let sent = q.send("q", msg("poison")).await.unwrap();
        for attempt in 1..=3 {
            let got = q.receive("q", 10).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, attempt);
            clock.advance_by(Duration::from_secs(10));
        }
        // The fourth receive finds the message at maxReceiveCount: redrive.
        assert!(q.receive("q", 10).await.unwrap().is_empty());
        let dead = q.receive("dlq", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, sent.message_id);
        assert_eq!(dead[0].body, "poison");
        assert_eq!(dead[0].receive_count, 4);
    }

    #[tokio::test]
    async fn receive_returns_at_most_max_and_keeps_order() {
        let (_d, _clock, q) = setup(3).await;
        for i in 0..5 {
            q.send("q", msg(&format!("m{i}"))).await.unwrap();
        }
        let batch = q.receive("q", 3).await.unwrap();
        let bodies: Vec<_> = batch.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["m0", "m1", "m2"]);
        let counts = q.counts().await.unwrap();
        let qc = counts.iter().find(|c| c.name == "q").unwrap();
        assert_eq!((qc.visible, qc.in_flight, qc.delayed), (2, 3, 0));
    }

    #[tokio::test]
    async fn delay_and_change_visibility() {
        let (_d, clock, q) = setup(3).await;
        q.send(
            "q",
            OutgoingMessage {
                delay: Some(Duration::from_secs(5)),
                trace_header: Some("Root=1-5759e988-bd862e3fe1be46a994272793".into()),
                ..msg("later")
            },
        )
        .await
        .unwrap();
        assert!(q.receive("q", 1).await.unwrap().is_empty());
        clock.advance_by(Duration::from_secs(5));
        let m = q.receive("q", 1).await.unwrap().remove(0);
        assert_eq!(
            m.trace_header.as_deref(),
            Some("Root=1-5759e988-bd862e3fe1be46a994272793")
        );
        assert!(q
            .change_visibility("q", &m.receipt_handle, Duration::ZERO)
            .await
            .unwrap());
        assert_eq!(q.receive("q", 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn unknown_queue_is_an_error() {
        let (_d, _clock, q) = setup(3).await;
        assert!(matches!(
            q.send("nope", msg("x")).await,
            Err(QueueError::NonExistentQueue(_))
        ));
        assert_eq!(
            Queues::name_from_url("http://127.0.0.1:3000/000000000000/dofs-order-queue"),
            Some("dofs-order-queue")
        );
    }
}
