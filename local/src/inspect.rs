//! Read models: what the CLI (`dofs order`) and the console show about one
//! order, assembled in one place from every stand-in that touched it, so
//! both views read the same facts and load each (the trace above all) once.
//! Also the typed top-level objects of their JSON outputs ([`OrderList`],
//! [`OrderDetail`], [`QueueList`], [`MetricsReport`], [`AlarmsReport`]):
//! one type wherever a `--json` output and a console twin show the same
//! thing, and always an object, so a field can be added without breaking
//! a reader.
//! Readers only: every function here takes a read connection. The trace
//! reads start here too: which trace is the order's is the execution's
//! `traceHeader`, read from Step Functions and handed to `traces`.
//!
//! The rows the stand-ins hand out as JSON objects (order summaries, queue
//! deliveries, history events) are parsed here once into typed rows, so
//! the views read fields rather than keys. Their fields are declared in
//! alphabetical order: that is the order in which the JSON output
//! (`--json`, `/_dofs/api/`) has always listed them (a `serde_json` map
//! sorts its keys), and scripts read that output. Their times are stored
//! in whatever spelling the stand-in wrote; they are read in
//! [`dofs_core::timestamp`]'s, the one every machine output uses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dofs_core::{ExecutionStatus, FailedOrder, Order, OrderStatus};
use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observability::alarms::{self, StoredState, Transition};
use crate::observability::metrics;
use crate::observability::traces::{self, OrderTrace, SpanRecord, XrayView};
use crate::services::dynamodb::{self, Listing};
use crate::services::sqs::{event_source_mapping, QueueCounts};
use crate::services::step_functions;
use crate::store::DbError;

/// Everything known about one order.
#[derive(Debug, Clone, Serialize)]
pub struct OrderReport {
    pub order_id: String,
    /// The orders table's item (`None` before StoreOrder ran).
    pub order: Option<Order>,
    /// The failed_orders item, once dlq_handler wrote it.
    pub failed_order: Option<FailedOrder>,
    /// The workflow execution named after the order.
    pub execution: Option<ExecutionReport>,
    /// Every queue delivery of the order's messages, oldest first.
    pub deliveries: Vec<Delivery>,
    /// Deliveries per function.
    pub attempts: BTreeMap<String, u64>,
    /// The order's trace, when spans were stored.
    pub trace: Option<OrderTrace>,
    /// What X-Ray would hold of it (read with `trace`, from the same
    /// spans; the console shows it, `--json` leaves it to `dofs trace`).
    #[serde(skip)]
    pub xray: Option<XrayView>,
}

/// The execution part of an [`OrderReport`].
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionReport {
    pub status: ExecutionStatus,
    #[serde(with = "dofs_core::timestamp::rfc3339_millis")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "dofs_core::timestamp::rfc3339_millis_option")]
    pub stopped_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub trace_header: Option<String>,
    /// The history, as `GetExecutionHistory` would list it.
    pub events: Vec<ExecutionEvent>,
}

/// One row of the order lists (`dofs orders`, the console's orders page
/// and its JSON twin). Fields in alphabetical order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    #[serde(with = "dofs_core::timestamp::normalized")]
    pub created_at: String,
    /// Who ordered (the stored document's `customer_name`).
    pub customer: Option<String>,
    pub order_id: String,
    pub status: OrderStatus,
    /// The order's total as stored, its scale kept (`"10.00"`).
    pub total: Option<String>,
    #[serde(with = "dofs_core::timestamp::normalized")]
    pub updated_at: String,
}

/// One time a queue handed one of the order's messages to a function, and
/// what came of it: the receive count is what shows a retry on its way to
/// the DLQ. Fields in alphabetical order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(with = "dofs_core::timestamp::normalized")]
    pub at: String,
    pub function: String,
    pub message_id: String,
    /// `deleted`, `item_failed` or `batch_failed`.
    pub outcome: String,
    pub queue: String,
    pub receive_count: u32,
}

/// One event of an execution's history. Fields in alphabetical order of
/// their JSON names (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionEvent {
    /// The event's own fields (an error, a task's output), shaped per kind
    /// as `GetExecutionHistory` shapes them.
    pub detail: Value,
    /// Its place in the history, from 1.
    pub id: i64,
    /// The state it belongs to, if any.
    pub state: Option<String>,
    #[serde(with = "dofs_core::timestamp::normalized")]
    pub timestamp: String,
    /// `TaskScheduled`, `ExecutionSucceeded`, …
    #[serde(rename = "type")]
    pub kind: String,
}

/// What `dofs alarms` and the console's alarm views show.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmsReport {
    /// Every alarm's current state, by name.
    pub alarms: Vec<StoredState>,
    /// The latest state changes, newest first.
    pub history: Vec<Transition>,
}

impl AlarmsReport {
    /// The report as `dofs alarms --json` and `/_dofs/api/alarms` print it:
    /// every object's keys sorted, as they always were.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// `dofs orders --json` and `/_dofs/api/orders`: the order rows under
/// `orders`, so the output is an object a later field can join.
#[derive(Debug, Clone, Serialize)]
pub struct OrderList {
    pub orders: Vec<OrderSummary>,
}

/// `dofs queues --json`: every queue's counts under `queues`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueList {
    pub queues: Vec<QueueCounts>,
}

/// `dofs metrics --json` and `/_dofs/api/metrics`: the series with data
/// since `since` (a time in [`dofs_core::timestamp`]'s spelling).
#[derive(Debug, Clone, Serialize)]
pub struct MetricsReport {
    pub since: String,
    pub series: Vec<metrics::SeriesSummary>,
}

impl MetricsReport {
    /// The series with data from `from_ms` on.
    pub fn read(conn: &Connection, from_ms: i64) -> Result<Self, DbError> {
        Ok(Self {
            since: dofs_core::timestamp::format_millis(from_ms).unwrap_or_default(),
            series: metrics::recent(conn, from_ms)?,
        })
    }
}

/// `dofs order --json` and `/_dofs/api/orders/{id}`: the [`OrderReport`]
/// with each trace span's depth and nanosecond bounds inlined, so a
/// waterfall (the console's, or a script's) needs nothing but the list.
#[derive(Debug, Clone, Serialize)]
pub struct OrderDetail<'a> {
    pub order_id: &'a str,
    pub order: Option<&'a Order>,
    pub failed_order: Option<&'a FailedOrder>,
    pub execution: Option<&'a ExecutionReport>,
    pub deliveries: &'a [Delivery],
    pub attempts: &'a BTreeMap<String, u64>,
    pub trace: Option<TraceDetail<'a>>,
}

/// The trace part of an [`OrderDetail`].
#[derive(Debug, Clone, Serialize)]
pub struct TraceDetail<'a> {
    pub trace_id: &'a str,
    pub spans: Vec<SpanDetail<'a>>,
    pub other_traces: &'a [String],
}

/// One span of a [`TraceDetail`]: the stored span and its place in the
/// tree.
#[derive(Debug, Clone, Serialize)]
pub struct SpanDetail<'a> {
    #[serde(flatten)]
    pub span: &'a SpanRecord,
    /// 0 for a root.
    pub depth: usize,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl<'a> From<&'a OrderReport> for OrderDetail<'a> {
    fn from(report: &'a OrderReport) -> Self {
        let trace = report.trace.as_ref().map(|trace| TraceDetail {
            trace_id: &trace.trace_id,
            spans: trace
                .spans
                .iter()
                .zip(&trace.depths)
                .map(|(span, &depth)| SpanDetail {
                    span,
                    depth,
                    start_ns: span.start,
                    end_ns: span.end,
                })
                .collect(),
            other_traces: &trace.other_traces,
        });
        Self {
            order_id: &report.order_id,
            order: report.order.as_ref(),
            failed_order: report.failed_order.as_ref(),
            execution: report.execution.as_ref(),
            deliveries: &report.deliveries,
            attempts: &report.attempts,
            trace,
        }
    }
}

/// Every alarm's state and its latest `history_limit` changes.
pub fn alarms_report(conn: &Connection, history_limit: usize) -> Result<AlarmsReport, DbError> {
    Ok(AlarmsReport {
        alarms: alarms::load_states(conn)?,
        history: alarms::load_history(conn, history_limit)?,
    })
}

/// The orders, optionally only those in `status` (as stored: upper case).
pub fn order_summaries(
    conn: &Connection,
    status: Option<&str>,
    listing: Listing,
) -> Result<Vec<OrderSummary>, DbError> {
    typed_rows(dynamodb::order_summaries(conn, status, listing)?)
}

/// JSON rows as typed rows; a row of another shape is an error, as any
/// column that does not decode is.
pub fn typed_rows<T: DeserializeOwned>(rows: Vec<Value>) -> Result<Vec<T>, DbError> {
    rows.into_iter()
        .map(|row| serde_json::from_value(row).map_err(DbError::from))
        .collect()
}

impl OrderReport {
    /// Whether anything at all is known (an order never accepted has
    /// neither a stored item nor an execution).
    pub fn exists(&self) -> bool {
        self.order.is_some() || self.execution.is_some()
    }
}

/// Everything known about `order_id`.
pub fn order_report(conn: &Connection, order_id: &str) -> Result<OrderReport, DbError> {
    let execution = match step_functions::load_execution(conn, order_id)? {
        Some(e) => Some(ExecutionReport {
            status: e.status,
            started_at: e.started_at,
            stopped_at: e.stopped_at,
            error: e.error,
            cause: e.cause,
            trace_header: e.trace_header,
            events: typed_rows(step_functions::load_events(conn, order_id)?)?,
        }),
        None => None,
    };
    let execution_header = execution.as_ref().and_then(|e| e.trace_header.clone());
    let deliveries = event_source_mapping::load_deliveries(conn, order_id)?;
    let attempts = event_source_mapping::attempts_by_function(&deliveries);
    let (trace, xray) = traces::order_traces(conn, order_id, execution_header.as_deref())?;
    Ok(OrderReport {
        order_id: order_id.to_owned(),
        order: dynamodb::load_order(conn, order_id)?,
        failed_order: dynamodb::load_failed_order(conn, order_id)?,
        execution,
        attempts,
        deliveries: typed_rows(deliveries)?,
        trace,
        xray,
    })
}

/// `text` if it is an X-Ray trace id (`1-`, 8 hex, `-`, 24 hex). Order
/// ids are UUIDs, generated or derived from an `Idempotency-Key`, and
/// never have that shape, so such a value is read as a trace id.
fn xray_trace_id(text: &str) -> Option<&str> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = text.splitn(3, '-');
    let shaped = parts.next() == Some("1")
        && parts.next().is_some_and(|p| hex(p, 8))
        && parts.next().is_some_and(|p| hex(p, 24));
    shaped.then_some(text)
}

/// The order `id` names: an order id as it is, or the order whose trace an
/// X-Ray trace id is (the `trace_id` of the API's 202 answer, the `Root=`
/// of an `X-Amzn-Trace-Id` header, which may be passed whole). The trace
/// is the execution's (its `traceHeader` root), else any stored span of
/// that trace that names an order (a status read's own trace). `None`
/// for a trace id no order has.
pub fn resolve_order_id(conn: &Connection, id: &str) -> Result<Option<String>, DbError> {
    let id = id.trim();
    let root = id
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(id);
    let Some(trace_id) = xray_trace_id(root) else {
        return Ok(Some(id.to_owned()));
    };
    if let Some(order_id) = step_functions::execution_of_trace(conn, trace_id)? {
        return Ok(Some(order_id));
    }
    traces::order_of_trace(conn, trace_id)
}

/// The order's trace (the full view), `None` when nothing was traced.
pub fn order_trace(conn: &Connection, order_id: &str) -> Result<Option<OrderTrace>, DbError> {
    let header = step_functions::trace_header(conn, order_id)?;
    traces::order_trace(conn, order_id, header.as_deref())
}

/// What X-Ray would hold of the order, `None` when nothing was traced.
pub fn order_xray_view(conn: &Connection, order_id: &str) -> Result<Option<XrayView>, DbError> {
    let header = step_functions::trace_header(conn, order_id)?;
    traces::order_xray_view(conn, order_id, header.as_deref())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A typed row written out again is the JSON object it was read from,
    /// byte for byte: what `--json` and `/_dofs/api/` printed before the
    /// rows were typed.
    fn round_trips<T: Serialize + DeserializeOwned>(row: Value) {
        let typed: Vec<T> = typed_rows(vec![row.clone()]).unwrap();
        assert_eq!(
            serde_json::to_string(&typed[0]).unwrap(),
            serde_json::to_string(&row).unwrap()
        );
    }

    #[test]
    fn typed_rows_serialize_as_the_json_rows_they_replace() {
        round_trips::<OrderSummary>(json!({
            "order_id": "o-1",
            "status": "FULFILLED",
            "created_at": "2026-12-02T08:13:39.608Z",
            "updated_at": "2026-12-02T08:13:40.001Z",
            "customer": "Ada",
            "total": "10.00",
        }));
        round_trips::<Delivery>(json!({
            "queue": "dofs-order-queue",
            "function": "fulfill_order",
            "message_id": "m-1",
            "receive_count": 2,
            "outcome": "item_failed",
            "at": "2026-12-02T08:13:39.608Z",
        }));
        round_trips::<ExecutionEvent>(json!({
            "id": 3,
            "type": "TaskFailed",
            "state": "StoreOrder",
            "timestamp": "2026-12-02T08:13:39.608Z",
            "detail": {"error": "TransientError", "cause": "boom"},
        }));
        round_trips::<ExecutionEvent>(json!({
            "id": 1,
            "type": "ExecutionStarted",
            "state": null,
            "timestamp": "2026-12-02T08:13:39.608Z",
            "detail": {},
        }));
    }

    #[test]
    fn trace_ids_are_told_from_order_ids() {
        assert!(xray_trace_id("1-5759e988-bd862e3fe1be46a994272793").is_some());
        assert!(xray_trace_id("0190f7a2-8c1d-7cde-9f00-1234567890ab").is_none());
        assert!(xray_trace_id("1-5759e988-bd862e3fe1be46a99427279").is_none());
        assert!(xray_trace_id("1-5759e98g-bd862e3fe1be46a994272793").is_none());
        assert!(xray_trace_id("order-1").is_none());
    }

    /// Columns written in an older spelling (nanoseconds, `+00:00`) come
    /// out in the one machine format.
    #[test]
    fn stored_times_are_read_in_the_machine_format() {
        let rows: Vec<OrderSummary> = typed_rows(vec![json!({
            "order_id": "o-1",
            "status": "FULFILLED",
            "created_at": "2026-12-02T08:13:39.608123456+00:00",
            "updated_at": "2026-12-02T08:13:40+00:00",
        })])
        .unwrap();
        assert_eq!(rows[0].created_at, "2026-12-02T08:13:39.608Z");
        assert_eq!(rows[0].updated_at, "2026-12-02T08:13:40.000Z");
    }

    #[test]
    fn a_row_of_another_shape_is_an_error() {
        let row = json!({"order_id": "o-1", "status": "NOT_A_STATUS"});
        assert!(typed_rows::<OrderSummary>(vec![row]).is_err());
    }
}
