//! The web console of `dofs serve`, under `/_dofs/` on the API's own
//! listener (API Gateway routes never start with `_`, so it cannot collide
//! with the API): orders with a status filter, one order with its status
//! history, workflow events, queue deliveries and trace waterfall, the
//! metrics, and the alarms with their history. Every page has a JSON twin
//! under `/_dofs/api/`.
//!
//! Server-rendered HTML with a few lines of inline CSS: no frontend build,
//! nothing to download, and every value from the data directory goes
//! through [`escape`] (order ids, customer-provided text and error messages
//! are data, never markup).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::observability::alarms;
use crate::observability::metrics;
use crate::services::dynamodb::Listing;
use crate::store::{Db, DbError};

/// Where the console lives.
pub const PREFIX: &str = "/_dofs";

/// Most orders a list shows (newest first).
const ORDER_LIMIT: usize = 500;
/// The metrics page covers this much recent time.
const METRICS_WINDOW_MS: i64 = 15 * 60 * 1000;

/// The console's routes, to merge into the gateway's router.
pub fn router(db: Db) -> Router {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::to("/_dofs/") }))
        .route("/_dofs/", get(overview))
        .route("/_dofs/orders", get(orders_page))
        .route("/_dofs/orders/{order_id}", get(order_page))
        .route("/_dofs/metrics", get(metrics_page))
        .route("/_dofs/alarms", get(alarms_page))
        .route("/_dofs/api/orders", get(orders_json))
        .route("/_dofs/api/orders/{order_id}", get(order_json))
        .route("/_dofs/api/metrics", get(metrics_json))
        .route("/_dofs/api/alarms", get(alarms_json))
        .with_state(db)
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment or query value.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A database problem, shown without internals.
struct ConsoleError(DbError);

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

type Page = Result<Response, ConsoleError>;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}\
nav{background:#232f3e;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}\
main{padding:16px}table{border-collapse:collapse;margin:8px 0 16px}\
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
code,.mono{font-family:ui-monospace,monospace;font-size:12px}\
.s-OK,.s-FULFILLED,.s-SUCCEEDED,.s-ok{color:#1d8102}.s-ALARM,.s-FAILED,.s-error{color:#d13212;font-weight:bold}\
.s-INSUFFICIENT_DATA,.s-warn,.s-REJECTED{color:#b7791f}\
.wf{position:relative;height:14px;background:#f3f3f3;min-width:400px}\
.bar{position:absolute;height:14px;background:#0073bb}.bar.error{background:#d13212}.bar.warn{background:#ec7211}";

fn page(title: &str, refresh: bool, body: &str) -> Response {
    let refresh = if refresh {
        r#"<meta http-equiv="refresh" content="5">"#
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{} · dofs</title>\
         <style>{STYLE}</style></head><body><nav><a href=\"/_dofs/\"><b>dofs</b></a>\
         <a href=\"/_dofs/orders\">Orders</a><a href=\"/_dofs/metrics\">Metrics</a>\
         <a href=\"/_dofs/alarms\">Alarms</a></nav><main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

fn status_span(status: &str) -> String {
    format!(
        "<span class=\"s-{}\">{}</span>",
        escape(status),
        escape(status)
    )
}

// ---------------------------------------------------------------- queries

fn status_counts(conn: &Connection) -> Result<BTreeMap<String, i64>, DbError> {
    let mut stmt = conn.prepare("SELECT status, count(*) FROM orders GROUP BY status")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn alarm_report(conn: &Connection) -> Result<Value, DbError> {
    Ok(json!({
        "alarms": alarms::load_states(conn)?,
        "history": alarms::load_history(conn, 50)?,
    }))
}

fn metrics_report(conn: &Connection) -> Result<Vec<metrics::SeriesSummary>, DbError> {
    let since = chrono::Utc::now().timestamp_millis() - METRICS_WINDOW_MS;
    metrics::recent(conn, since)
}

/// The order as `dofs order --json` shows it, plus its trace with depths.
fn order_detail(conn: &Connection, order_id: &str) -> Result<Option<Value>, DbError> {
    let report = crate::inspect::order_report(conn, order_id)?;
    if !report.exists() {
        return Ok(None);
    }
    let trace = report.trace.as_ref().map(|trace| {
        let spans: Vec<Value> = trace
            .spans
            .iter()
            .zip(&trace.depths)
            .map(|(span, depth)| {
                let mut v = serde_json::to_value(span).unwrap_or(Value::Null);
                v["depth"] = json!(depth);
                v["start_ns"] = json!(span.start);
                v["end_ns"] = json!(span.end);
                v
            })
            .collect();
        json!({"trace_id": trace.trace_id, "spans": spans, "other_traces": trace.other_traces})
    });
    let mut report = serde_json::to_value(&report)?;
    report["trace"] = trace.unwrap_or(Value::Null);
    Ok(Some(report))
}

// ---------------------------------------------------------------- JSON

#[derive(Debug, Deserialize)]
struct OrdersQuery {
    status: Option<String>,
}

fn normalised_status(q: &OrdersQuery) -> Option<String> {
    q.status
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_uppercase)
}

async fn orders_json(State(db): State<Db>, Query(q): Query<OrdersQuery>) -> Page {
    let status = normalised_status(&q);
    let rows = db
        .read(move |c| {
            crate::services::dynamodb::order_summaries(
                c,
                status.as_deref(),
                Listing::Newest(ORDER_LIMIT),
            )
        })
        .await?;
    Ok(Json(rows).into_response())
}

async fn order_json(State(db): State<Db>, Path(order_id): Path<String>) -> Page {
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

async fn metrics_json(State(db): State<Db>) -> Page {
    Ok(Json(db.read(metrics_report).await?).into_response())
}

async fn alarms_json(State(db): State<Db>) -> Page {
    Ok(Json(db.read(alarm_report).await?).into_response())
}

// ---------------------------------------------------------------- HTML

async fn overview(State(db): State<Db>) -> Page {
    let (counts, alarm_states) = db
        .read(|c| Ok((status_counts(c)?, alarms::load_states(c)?)))
        .await?;
    let mut body =
        String::from("<h2>Orders by status</h2><table><tr><th>Status</th><th>Orders</th></tr>");
    for (status, n) in &counts {
        let _ = write!(
            body,
            "<tr><td><a href=\"/_dofs/orders?status={}\">{}</a></td><td>{n}</td></tr>",
            url_encode(status),
            status_span(status)
        );
    }
    body.push_str(
        "</table><h2>Alarms</h2><table><tr><th>Alarm</th><th>State</th><th>Since</th></tr>",
    );
    for a in &alarm_states {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            escape(&a.name),
            status_span(a.state.as_str()),
            escape(&a.changed_at)
        );
    }
    body.push_str("</table>");
    Ok(page("Overview", true, &body))
}

async fn orders_page(State(db): State<Db>, Query(q): Query<OrdersQuery>) -> Page {
    let status = normalised_status(&q);
    let filter = status.clone();
    let (rows, counts) = db
        .read(move |c| {
            Ok((
                crate::services::dynamodb::order_summaries(
                    c,
                    filter.as_deref(),
                    Listing::Newest(ORDER_LIMIT),
                )?,
                status_counts(c)?,
            ))
        })
        .await?;
    let mut body = String::from("<p>Status: <a href=\"/_dofs/orders\">all</a>");
    for (s, n) in &counts {
        let _ = write!(
            body,
            " · <a href=\"/_dofs/orders?status={}\">{}</a> ({n})",
            url_encode(s),
            escape(s)
        );
    }
    let _ = write!(
        body,
        "</p><p>{} order(s){}, newest first (at most {ORDER_LIMIT}).</p>\
         <table><tr><th>Order</th><th>Status</th><th>Created</th><th>Updated</th></tr>",
        rows.len(),
        status
            .as_deref()
            .map(|s| format!(" in {}", escape(s)))
            .unwrap_or_default()
    );
    for o in &rows {
        let id = str_of(o, "order_id");
        let _ = write!(
            body,
            "<tr><td class=\"mono\"><a href=\"/_dofs/orders/{}\">{}</a></td><td>{}</td>\
             <td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            url_encode(id),
            escape(id),
            status_span(str_of(o, "status")),
            escape(str_of(o, "created_at")),
            escape(str_of(o, "updated_at"))
        );
    }
    body.push_str("</table>");
    Ok(page("Orders", true, &body))
}

async fn order_page(State(db): State<Db>, Path(order_id): Path<String>) -> Page {
    let id = order_id.clone();
    let Some(report) = db.read(move |c| order_detail(c, &id)).await? else {
        let body = format!("<p>No order <code>{}</code>.</p>", escape(&order_id));
        let mut response = page("Order not found", false, &body);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    };
    let order = &report["order"];
    let mut body = format!(
        "<p>Order <code>{}</code>: {}</p>",
        escape(&order_id),
        status_span(
            order
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("(not stored yet)")
        )
    );
    if let Some(history) = order["history"].as_array() {
        body.push_str(
            "<h2>Status history</h2><table><tr><th>At</th><th>Status</th><th>Detail</th></tr>",
        );
        for h in history {
            let mut detail = h.clone();
            if let Some(map) = detail.as_object_mut() {
                map.remove("at");
                map.remove("status");
            }
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                escape(str_of(h, "at")),
                status_span(str_of(h, "status")),
                escape(&compact(&detail))
            );
        }
        body.push_str("</table>");
    }
    if let Some(items) = order["items"].as_array() {
        body.push_str(
            "<h2>Items</h2><table><tr><th>SKU</th><th>Quantity</th><th>Unit price</th></tr>",
        );
        for item in items {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(str_of(item, "sku")),
                escape(&compact(&item["quantity"])),
                escape(&compact(&item["unit_price"]))
            );
        }
        body.push_str("</table>");
    }
    if let Some(trace) = report["trace"].as_object() {
        render_trace(&mut body, trace);
    }
    if let Some(execution) = report["execution"].as_object() {
        let _ = write!(
            body,
            "<h2>Workflow execution: {}</h2><table><tr><th>At</th><th>Event</th><th>State</th></tr>",
            status_span(execution.get("status").and_then(Value::as_str).unwrap_or_default())
        );
        for e in execution
            .get("events")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                escape(str_of(e, "timestamp")),
                escape(str_of(e, "type")),
                escape(str_of(e, "state"))
            );
        }
        body.push_str("</table>");
    }
    if let Some(deliveries) = report["deliveries"].as_array().filter(|d| !d.is_empty()) {
        body.push_str("<h2>Queue deliveries</h2><table><tr><th>At</th><th>Queue</th><th>Function</th><th>Receive #</th><th>Outcome</th></tr>");
        for d in deliveries {
            let _ = write!(
                body,
                "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(str_of(d, "at")),
                escape(str_of(d, "queue")),
                escape(str_of(d, "function")),
                escape(&compact(&d["receive_count"])),
                escape(str_of(d, "outcome"))
            );
        }
        body.push_str("</table>");
    }
    if let Some(failed) = report["failed_order"].as_object() {
        let _ = write!(
            body,
            "<h2>Dead-lettered</h2><pre class=\"mono\">{}</pre>",
            escape(&serde_json::to_string_pretty(failed).unwrap_or_default())
        );
    }
    Ok(page(&format!("Order {order_id}"), false, &body))
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(m) if m.is_empty() => String::new(),
        other => other.to_string(),
    }
}

fn render_trace(body: &mut String, trace: &serde_json::Map<String, Value>) {
    let spans = trace
        .get("spans")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let start = spans
        .iter()
        .filter_map(|s| s["start_ns"].as_i64())
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .filter_map(|s| s["end_ns"].as_i64())
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1) as f64;
    let _ = write!(
        body,
        "<h2>Trace <code>{}</code></h2><p>{} span(s) over {:.1} ms.</p>\
         <table><tr><th>Span</th><th>Function</th><th>Start</th><th>Duration</th><th>Status</th><th>Waterfall</th></tr>",
        escape(trace.get("trace_id").and_then(Value::as_str).unwrap_or_default()),
        spans.len(),
        total / 1e6
    );
    for s in &spans {
        let depth = s["depth"].as_u64().unwrap_or(0) as usize;
        let s_start = s["start_ns"].as_i64().unwrap_or(start);
        let s_end = s["end_ns"].as_i64().unwrap_or(s_start);
        let left = (s_start - start) as f64 / total * 100.0;
        let width = ((s_end - s_start) as f64 / total * 100.0).max(0.3);
        let status = str_of(s, "status");
        let class = match status {
            "error" => "bar error",
            "warn" => "bar warn",
            _ => "bar",
        };
        let _ = write!(
            body,
            "<tr><td style=\"padding-left:{}px\">{}</td><td>{}</td><td class=\"mono\">+{:.1} ms</td>\
             <td class=\"mono\">{:.1} ms</td><td>{}</td>\
             <td><div class=\"wf\"><div class=\"{class}\" style=\"left:{left:.2}%;width:{width:.2}%\"></div></div></td></tr>",
            8 + depth * 16,
            escape(str_of(s, "name")),
            escape(str_of(s, "function")),
            (s_start - start) as f64 / 1e6,
            s["duration_ms"].as_f64().unwrap_or_default(),
            status_span(status)
        );
    }
    body.push_str("</table>");
}

async fn metrics_page(State(db): State<Db>) -> Page {
    let rows = db.read(metrics_report).await?;
    let mut body = format!(
        "<p>Series with data in the last {} minutes: sum, average, minimum and maximum over the window, \
         and the latest second with data.</p><table><tr><th>Namespace</th><th>Metric</th><th>Dimensions</th>\
         <th>Unit</th><th>Samples</th><th>Sum</th><th>Avg</th><th>Min</th><th>Max</th><th>Last</th></tr>",
        METRICS_WINDOW_MS / 60_000
    );
    for s in &rows {
        let dims: Vec<String> = s
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.2}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            escape(&s.namespace),
            escape(&s.name),
            escape(&dims.join(", ")),
            escape(&s.unit),
            s.window.sample_count,
            s.window.sum,
            s.average,
            s.window.min,
            s.window.max,
            escape(&s.last_at)
        );
    }
    body.push_str("</table>");
    Ok(page("Metrics", true, &body))
}

async fn alarms_page(State(db): State<Db>) -> Page {
    let (states, history) = db
        .read(|c| Ok((alarms::load_states(c)?, alarms::load_history(c, 50)?)))
        .await?;
    let mut body = String::from(
        "<table><tr><th>Alarm</th><th>State</th><th>Since</th><th>Reason</th><th>Description</th></tr>",
    );
    for a in &states {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&a.name),
            status_span(a.state.as_str()),
            escape(&a.changed_at),
            escape(&a.reason),
            escape(&a.description)
        );
    }
    body.push_str("</table><h2>History</h2><table><tr><th>At</th><th>Alarm</th><th>Change</th><th>Reason</th></tr>");
    for t in &history {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            escape(&t.at),
            escape(&t.name),
            status_span(t.old_state.as_str()),
            status_span(t.new_state.as_str()),
            escape(&t.reason)
        );
    }
    body.push_str("</table>");
    Ok(page("Alarms", true, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_encode("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[tokio::test]
    async fn pages_render_escaped_data_and_unknown_orders_are_404() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.write(|c| {
            c.execute(
                "INSERT INTO orders(order_id, status, doc, created_at, updated_at)
                 VALUES ('<b>evil</b>', 'PENDING', '{}', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let app = router(db);
        let get = |uri: &str| {
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let response = app
            .clone()
            .oneshot(get("/_dofs/orders?status=pending"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>evil</b>"));
        for uri in [
            "/_dofs/",
            "/_dofs/metrics",
            "/_dofs/alarms",
            "/_dofs/api/alarms",
            "/_dofs/api/metrics",
        ] {
            let response = app.clone().oneshot(get(uri)).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{uri}");
        }
        let response = app
            .clone()
            .oneshot(get("/_dofs/orders/nope"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = app.oneshot(get("/_dofs/api/orders/nope")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
