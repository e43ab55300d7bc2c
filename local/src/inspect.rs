//! Read models: what the CLI (`dofs order`) and the console show about one
//! order, assembled in one place from every stand-in that touched it, so
//! both views read the same facts and load each (the trace above all) once.
//! Readers only: every function here takes a read connection. The trace
//! reads start here too: which trace is the order's is the execution's
//! `traceHeader`, read from Step Functions and handed to `traces`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dofs_core::{ExecutionStatus, FailedOrder, Order};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;

use crate::observability::traces::{self, OrderTrace, XrayView};
use crate::services::dynamodb;
use crate::services::sqs::event_source_mapping;
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
    pub deliveries: Vec<Value>,
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
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub trace_header: Option<String>,
    /// The history, as `GetExecutionHistory` would list it.
    pub events: Vec<Value>,
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
            events: step_functions::load_events(conn, order_id)?,
        }),
        None => None,
    };
    let execution_header = execution.as_ref().and_then(|e| e.trace_header.clone());
    let deliveries = event_source_mapping::load_deliveries(conn, order_id)?;
    let (trace, xray) = traces::order_traces(conn, order_id, execution_header.as_deref())?;
    Ok(OrderReport {
        order_id: order_id.to_owned(),
        order: dynamodb::load_order(conn, order_id)?,
        failed_order: dynamodb::load_failed_order(conn, order_id)?,
        execution,
        attempts: event_source_mapping::attempts_by_function(&deliveries),
        deliveries,
        trace,
        xray,
    })
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
