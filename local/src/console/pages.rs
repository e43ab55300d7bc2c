//! The HTML pages: overview, orders, one order, metrics and alarms. Each
//! reads the same model as its JSON twin in [`super::api`] and renders it
//! with [`super::html`]; every value from the data directory is escaped
//! there on its way into the markup.

use std::fmt::Write as _;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use dofs_core::{Clock, FailedOrder, LineItem, StatusChange};

use super::api::{
    alarms_report, metrics_report, OrdersQuery, Page, METRICS_WINDOW_MS, ORDER_LIMIT,
};
use super::html::{compact, escape, page, status_span, url_encode};
use crate::inspect::{self, order_report, AlarmsReport, Delivery, ExecutionReport};
use crate::observability::alarms;
use crate::observability::traces::{document_rows, OrderTrace, Waterfall, XrayView};
use crate::services::dynamodb::{self, Listing};
use crate::services::step_functions::status_name;
use crate::store::{Db, DbError};

/// `GET /_dofs/`: orders by status and the alarms, the two things to glance
/// at while the pipeline runs.
pub(super) async fn overview(State(db): State<Db>) -> Page {
    let (counts, alarm_states) = db
        .read(|c| Ok((dynamodb::status_counts(c)?, alarms::load_states(c)?)))
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

/// `GET /_dofs/orders[?status=]`: the newest orders, with one filter link
/// per status that has orders.
pub(super) async fn orders_page(State(db): State<Db>, Query(q): Query<OrdersQuery>) -> Page {
    let status = q.status();
    let filter = status.clone();
    let (rows, counts) = db
        .read(move |c| {
            Ok((
                inspect::order_summaries(c, filter.as_deref(), Listing::Newest(ORDER_LIMIT))?,
                dynamodb::status_counts(c)?,
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
        let _ = write!(
            body,
            "<tr><td class=\"mono\"><a href=\"/_dofs/orders/{}\">{}</a></td><td>{}</td>\
             <td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            url_encode(&o.order_id),
            escape(&o.order_id),
            status_span(o.status.as_str()),
            escape(&o.created_at),
            escape(&o.updated_at)
        );
    }
    body.push_str("</table>");
    Ok(page("Orders", true, &body))
}

/// `GET /_dofs/orders/{order_id}`: everything known about one order, one
/// section per source. A section whose source has nothing is left out
/// (most orders are never dead-lettered), so the page shows only what
/// happened.
pub(super) async fn order_page(State(db): State<Db>, Path(order_id): Path<String>) -> Page {
    let id = order_id.clone();
    let report = db.read(move |c| order_report(c, &id)).await?;
    if !report.exists() {
        let body = format!("<p>No order <code>{}</code>.</p>", escape(&order_id));
        let mut response = page("Order not found", false, &body);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let mut body = format!(
        "<p>Order <code>{}</code>: {}</p>",
        escape(&order_id),
        // The workflow stores the order in one of its steps, so for a
        // moment there is an execution and no order row yet.
        status_span(
            report
                .order
                .as_ref()
                .map_or("(not stored yet)", |o| o.status.as_str())
        )
    );
    if let Some(order) = &report.order {
        render_history(&mut body, &order.history)?;
        render_items(&mut body, &order.items);
    }
    if let Some(view) = &report.xray {
        render_xray(&mut body, view);
    }
    if let Some(trace) = &report.trace {
        render_trace(&mut body, trace);
    }
    if let Some(execution) = &report.execution {
        render_execution(&mut body, execution);
    }
    if !report.deliveries.is_empty() {
        render_deliveries(&mut body, &report.deliveries);
    }
    if let Some(failed) = &report.failed_order {
        render_failed(&mut body, failed)?;
    }
    Ok(page(&format!("Order {order_id}"), false, &body))
}

/// One row per status change. The entry's other fields (a rejection or
/// failure reason) go in one cell, as the JSON twin has them, so a field
/// added to `StatusChange` shows up without a change here.
fn render_history(body: &mut String, history: &[StatusChange]) -> Result<(), DbError> {
    body.push_str(
        "<h2>Status history</h2><table><tr><th>At</th><th>Status</th><th>Detail</th></tr>",
    );
    for change in history {
        let mut detail = serde_json::to_value(change)?;
        if let Some(map) = detail.as_object_mut() {
            map.remove("at");
            map.remove("status");
        }
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
            escape(&json_time(&change.at)),
            status_span(change.status.as_str()),
            escape(&compact(&detail))
        );
    }
    body.push_str("</table>");
    Ok(())
}

/// A time as the JSON twin writes it (chrono's serde form: RFC 3339 in
/// UTC, with as many fractional digits as the value needs).
fn json_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn render_items(body: &mut String, items: &[LineItem]) {
    body.push_str("<h2>Items</h2><table><tr><th>SKU</th><th>Quantity</th><th>Unit price</th></tr>");
    for item in items {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(item.sku.as_str()),
            item.quantity.get(),
            escape(&item.unit_price.to_string())
        );
    }
    body.push_str("</table>");
}

/// What X-Ray would hold of the order (the same rows as `dofs trace`),
/// each subsegment indented under its parent.
fn render_xray(body: &mut String, view: &XrayView) {
    if !view.sampled {
        let _ = write!(
            body,
            "<h2>X-Ray trace <code>{}</code></h2><p>Not sampled: X-Ray holds no trace of this order.</p>",
            escape(&view.trace_id)
        );
        return;
    }
    let _ = write!(
        body,
        "<h2>X-Ray trace <code>{}</code></h2><p>{} document(s), as X-Ray would hold them.</p>\
         <table><tr><th>Document</th><th>Origin</th><th>Duration</th><th>Flags</th>\
         <th>Annotations</th><th>Cause</th><th>Metadata</th></tr>",
        escape(&view.trace_id),
        view.documents.len()
    );
    for row in document_rows(view) {
        let _ = write!(
            body,
            "<tr><td style=\"padding-left:{}px\">{} {}</td><td>{}</td><td class=\"mono\">{:.1} ms</td>\
             <td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            8 + row.depth * 16,
            row.kind,
            escape(row.name),
            escape(row.origin.or(row.namespace).unwrap_or_default()),
            row.duration_ms,
            status_span(row.flags.first().copied().unwrap_or("ok")),
            escape(&compact(&row.doc["annotations"])),
            escape(row.cause.unwrap_or_default()),
            escape(&compact(&row.doc["metadata"]["default"])),
        );
    }
    body.push_str("</table>");
}

/// The order's trace as a waterfall (the same rows as `dofs trace
/// --full`): each span is a bar placed by its offset from the first span
/// and sized by its duration, indented by its depth in the tree.
fn render_trace(body: &mut String, trace: &OrderTrace) {
    let waterfall = Waterfall::of(trace);
    let _ = write!(
        body,
        "<h2>All local spans <code>{}</code></h2><p>{} span(s) over {:.1} ms, richer than X-Ray (`dofs trace --full`).</p>\
         <table><tr><th>Span</th><th>Function</th><th>Start</th><th>Duration</th><th>Status</th><th>Waterfall</th></tr>",
        escape(&trace.trace_id),
        waterfall.rows.len(),
        waterfall.duration_ns as f64 / 1e6
    );
    for row in &waterfall.rows {
        let s = row.span;
        let left = row.left * 100.0;
        // A minimum width keeps sub-microsecond spans visible.
        let width = (row.width * 100.0).max(0.3);
        let class = match s.status.as_str() {
            "error" => "bar error",
            "warn" => "bar warn",
            _ => "bar",
        };
        let _ = write!(
            body,
            "<tr><td style=\"padding-left:{}px\">{}</td><td>{}</td><td class=\"mono\">+{:.1} ms</td>\
             <td class=\"mono\">{:.1} ms</td><td>{}</td>\
             <td><div class=\"wf\"><div class=\"{class}\" style=\"left:{left:.2}%;width:{width:.2}%\"></div></div></td></tr>",
            8 + row.depth * 16,
            escape(&s.name),
            escape(&s.component),
            row.offset_ns as f64 / 1e6,
            s.duration_ms,
            status_span(&s.status)
        );
    }
    body.push_str("</table>");
}

/// The Step Functions execution and its history events.
fn render_execution(body: &mut String, execution: &ExecutionReport) {
    let _ = write!(
        body,
        "<h2>Workflow execution: {}</h2><table><tr><th>At</th><th>Event</th><th>State</th></tr>",
        status_span(status_name(execution.status))
    );
    for e in &execution.events {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.timestamp),
            escape(&e.kind),
            escape(e.state.as_deref().unwrap_or_default())
        );
    }
    body.push_str("</table>");
}

/// Each time a queue handed the order to a function, and what came of it:
/// the receive count is what shows a retry on its way to the DLQ.
fn render_deliveries(body: &mut String, deliveries: &[Delivery]) {
    body.push_str(
        "<h2>Queue deliveries</h2><table><tr><th>At</th><th>Queue</th><th>Function</th>\
         <th>Receive #</th><th>Outcome</th></tr>",
    );
    for d in deliveries {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.at),
            escape(&d.queue),
            escape(&d.function),
            d.receive_count,
            escape(&d.outcome)
        );
    }
    body.push_str("</table>");
}

/// The `failed_orders` record, shown whole (keys sorted, as the JSON twin
/// has them): it is what an operator reads before a redrive, and its
/// payload has no fixed shape.
fn render_failed(body: &mut String, failed: &FailedOrder) -> Result<(), DbError> {
    let record = serde_json::to_value(failed)?;
    let _ = write!(
        body,
        "<h2>Dead-lettered</h2><pre class=\"mono\">{}</pre>",
        escape(&serde_json::to_string_pretty(&record)?)
    );
    Ok(())
}

/// `GET /_dofs/metrics`: one row per series over [`METRICS_WINDOW_MS`].
pub(super) async fn metrics_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
) -> Page {
    let now_ms = clock.now().timestamp_millis();
    let rows = db.read(move |c| metrics_report(c, now_ms)).await?;
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

/// `GET /_dofs/alarms`: every alarm's state, then the latest changes.
pub(super) async fn alarms_page(State(db): State<Db>) -> Page {
    let AlarmsReport {
        alarms: states,
        history,
    } = db.read(alarms_report).await?;
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
    use axum::http::StatusCode;

    use chrono::{DateTime, Utc};

    use super::super::testing::{get, seeded, EVIL};
    use super::{escape, json_time};

    #[test]
    fn times_read_as_the_json_twin_writes_them() {
        for at in [
            "2026-12-02T08:13:39Z",
            "2026-12-02T08:13:39.600Z",
            "2026-12-02T08:13:39.608243Z",
            "2026-12-02T08:13:39.608243548Z",
        ] {
            let at: DateTime<Utc> = at.parse().unwrap();
            assert_eq!(serde_json::to_value(at).unwrap(), json_time(&at), "{at:?}");
        }
    }

    #[tokio::test]
    async fn pages_render_escaped_data_and_unknown_orders_are_404() {
        let (_dir, app, order_id) = seeded().await;
        let (status, html) = get(&app, "/_dofs/orders?status=pending").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!("/_dofs/orders/{order_id}")),
            "{html}"
        );
        let (status, html) = get(&app, &format!("/_dofs/orders/{order_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&escape(EVIL)), "{html}");
        assert!(!html.contains(EVIL));
        for uri in ["/_dofs/", "/_dofs/metrics", "/_dofs/alarms"] {
            let (status, _) = get(&app, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
        }
        let (status, _) = get(&app, "/_dofs/orders/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
