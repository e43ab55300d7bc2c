//! The JSON twins of the pages, under `/_dofs/api/`, and the console's
//! choice of read models behind them (from [`crate::inspect`], with the
//! console's limits and windows). The HTML pages ([`super::pages`]) render
//! these same typed read models, so a page and its twin agree; the
//! dependency points from the pages to here, never back.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dofs_core::Clock;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::inspect::{self, AlarmsReport, MetricsReport, OrderDetail, OrderList, OrderSummary};
use crate::observability::metrics;
use crate::services::dynamodb;
use crate::store::{Db, DbError};

/// Most orders a list shows (newest first), so the page size is bounded
/// however many orders the data directory holds; `dofs orders` lists all.
pub(super) const ORDER_LIMIT: usize = 500;
/// How far back the metrics views look, so the summary is about what is
/// happening now rather than about the data directory's whole life.
pub(super) const METRICS_WINDOW_MS: i64 = 15 * 60 * 1000;
/// How many of the newest alarm state changes the alarm views show (a
/// page has room for more than `dofs alarms`' terminal).
const ALARM_HISTORY: usize = 50;

/// A problem reading the data directory (or, for an action, changing a
/// queue). The response says only that it happened: the error (SQL,
/// paths) goes to the log, never into a body a browser shows.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConsoleError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] crate::services::sqs::QueueError),
    #[error(transparent)]
    Dashboard(#[from] super::dashboard::DashboardError),
    #[error(transparent)]
    Pricing(#[from] dofs_cost::PricingError),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "console request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the console could not read the data directory; see the log",
        )
            .into_response()
    }
}

/// What every console handler, HTML or JSON, returns.
pub(super) type Page = Result<Response, ConsoleError>;

/// `?status=` and `?q=` (an order id, an id prefix or a trace id) of the
/// order lists.
#[derive(Debug, Default, Deserialize)]
pub(super) struct OrdersQuery {
    status: Option<String>,
    q: Option<String>,
}

impl OrdersQuery {
    /// The filter as stored: statuses are upper case in the table, but a
    /// person typing the URL writes `?status=pending`; blank means no
    /// filter.
    pub(super) fn status(&self) -> Option<String> {
        self.status
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_uppercase)
    }

    /// The search text, trimmed; blank means no search.
    pub(super) fn search(&self) -> Option<String> {
        self.q
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// A trace id in X-Ray form (`1-{8 hex}-{24 hex}`), from that form or from
/// the 32 hex digits of W3C/OpenTelemetry; `None` for anything else.
pub(super) fn xray_trace_id(text: &str) -> Option<String> {
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_prefix("root=").unwrap_or(&text);
    if let Some(rest) = text.strip_prefix("1-") {
        let (time, id) = rest.split_once('-')?;
        return (time.len() == 8 && id.len() == 24 && hex(time) && hex(id))
            .then(|| format!("1-{time}-{id}"));
    }
    (text.len() == 32 && hex(text)).then(|| format!("1-{}-{}", &text[..8], &text[8..]))
}

/// The newest orders (at most [`ORDER_LIMIT`]) in `status`, or those
/// `search` finds: the orders a trace id touched when it is one, else those
/// whose id starts with it.
pub(super) fn order_rows(
    conn: &Connection,
    status: Option<&str>,
    search: Option<&str>,
) -> Result<Vec<OrderSummary>, DbError> {
    const COLUMNS: &str = dynamodb::ORDER_SUMMARY_COLUMNS;
    let limit = i64::try_from(ORDER_LIMIT).unwrap_or(i64::MAX);
    let trace = search.and_then(xray_trace_id);
    let (sql, key) = match (&trace, search) {
        (Some(trace), _) => (
            format!(
                "SELECT {COLUMNS} FROM orders o WHERE o.order_id IN \
                 (SELECT order_id FROM spans WHERE trace_id = ?1 AND order_id IS NOT NULL) \
                 AND (?2 IS NULL OR o.status = ?2) ORDER BY o.created_at DESC LIMIT ?3"
            ),
            Some(trace.clone()),
        ),
        (None, Some(prefix)) => (
            format!(
                "SELECT {COLUMNS} FROM orders o WHERE o.order_id LIKE ?1 ESCAPE '\\' \
                 AND (?2 IS NULL OR o.status = ?2) ORDER BY o.created_at DESC LIMIT ?3"
            ),
            Some(format!("{}%", like_escape(prefix))),
        ),
        (None, None) => (
            format!(
                "SELECT {COLUMNS} FROM orders o WHERE ?1 IS NULL \
                 AND (?2 IS NULL OR o.status = ?2) ORDER BY o.created_at DESC LIMIT ?3"
            ),
            None,
        ),
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(
            rusqlite::params![key, status, limit],
            dynamodb::order_summary_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    inspect::typed_rows(rows)
}

/// `text` as a literal inside a `LIKE` pattern (escape character `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every alarm's current state and its latest [`ALARM_HISTORY`] changes:
/// what both alarm views show.
pub(super) fn alarms_report(conn: &Connection) -> Result<AlarmsReport, DbError> {
    inspect::alarms_report(conn, ALARM_HISTORY)
}

/// Every series with data inside [`METRICS_WINDOW_MS`].
pub(super) fn metrics_report(
    conn: &Connection,
    now_ms: i64,
) -> Result<Vec<metrics::SeriesSummary>, DbError> {
    metrics::recent(conn, now_ms - METRICS_WINDOW_MS)
}

/// The order as `dofs order --json` shows it ([`OrderDetail`]). `None`
/// when neither the order nor its execution exists.
pub(super) fn order_detail(conn: &Connection, order_id: &str) -> Result<Option<Value>, DbError> {
    let report = inspect::order_report(conn, order_id)?;
    if !report.exists() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_value(OrderDetail::from(&report))?))
}

pub(super) async fn orders_json(State(db): State<Db>, Query(q): Query<OrdersQuery>) -> Page {
    let (status, search) = (q.status(), q.search());
    let rows = db
        .read(move |c| order_rows(c, status.as_deref(), search.as_deref()))
        .await?;
    Ok(Json(OrderList { orders: rows }).into_response())
}

/// Even the 404 has a JSON body, so a script can parse every answer of
/// the twins as JSON.
pub(super) async fn order_json(State(db): State<Db>, Path(order_id): Path<String>) -> Page {
    let detail = db.read(move |c| order_detail(c, &order_id)).await?;
    Ok(match detail {
        Some(d) => Json(d).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "no such order"})),
        )
            .into_response(),
    })
}

pub(super) async fn metrics_json(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
) -> Page {
    let from_ms = clock.now().timestamp_millis() - METRICS_WINDOW_MS;
    Ok(Json(db.read(move |c| MetricsReport::read(c, from_ms)).await?).into_response())
}

pub(super) async fn alarms_json(State(db): State<Db>) -> Page {
    let report = db.read(alarms_report).await?;
    Ok(Json(report.to_json().map_err(DbError::from)?).into_response())
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::super::testing::{get, seeded};

    #[test]
    fn trace_ids_in_either_form_read_as_xray_ones() {
        let xray = "1-5759e988-bd862e3fe1be46a994272793";
        assert_eq!(super::xray_trace_id(xray).as_deref(), Some(xray));
        assert_eq!(
            super::xray_trace_id("5759e988bd862e3fe1be46a994272793").as_deref(),
            Some(xray)
        );
        assert_eq!(
            super::xray_trace_id("Root=1-5759E988-bd862e3fe1be46a994272793").as_deref(),
            Some(xray)
        );
        assert_eq!(super::xray_trace_id("01J0ABC"), None);
        assert_eq!(super::like_escape("a%_b"), "a\\%\\_b");
    }

    #[tokio::test]
    async fn json_twins_answer_and_unknown_orders_are_404() {
        let (_dir, app, order_id) = seeded().await;
        for uri in ["/_dofs/api/alarms", "/_dofs/api/metrics"] {
            let (status, _) = get(&app, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
        }
        let (status, body) = get(&app, "/_dofs/api/orders?status=pending").await;
        assert_eq!(status, StatusCode::OK);
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(rows["orders"][0]["order_id"], order_id, "{body}");
        let (status, body) = get(&app, &format!("/_dofs/api/orders/{order_id}")).await;
        assert_eq!(status, StatusCode::OK);
        let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(detail["order"]["status"], "PENDING", "{body}");
        let (status, _) = get(&app, "/_dofs/api/orders/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
