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

use crate::inspect::{self, AlarmsReport, MetricsReport, OrderDetail, OrderList};
use crate::observability::metrics;
use crate::services::dynamodb::Listing;
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

/// A database problem. The response says only that it happened: the error
/// (SQL, paths) goes to the log, never into a body a browser shows.
pub(super) struct ConsoleError(DbError);

impl From<DbError> for ConsoleError {
    fn from(err: DbError) -> Self {
        Self(err)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "console query failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the console could not read the data directory; see the log",
        )
            .into_response()
    }
}

/// What every console handler, HTML or JSON, returns.
pub(super) type Page = Result<Response, ConsoleError>;

/// `?status=` of the order lists.
#[derive(Debug, Deserialize)]
pub(super) struct OrdersQuery {
    status: Option<String>,
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
    let status = q.status();
    let rows = db
        .read(move |c| inspect::order_summaries(c, status.as_deref(), Listing::Newest(ORDER_LIMIT)))
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
