//! The HTML pages: overview, orders (with search), one order, metrics and
//! alarms. Each reads the same model as its JSON twin in [`super::api`] and
//! renders it with `maud` through [`super::html`], which escapes every
//! value from the data directory.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::{DateTime, Utc};
use dofs_core::{Clock, FailedOrder, LineItem, OrderStatus, StatusChange};
use maud::{html, Markup};

use super::alarm_view;
use super::api::{
    alarms_report, metrics_report, order_rows, xray_trace_id, ConsoleError, OrdersQuery, Page,
    METRICS_WINDOW_MS,
};
use super::dashboard::{self, Widget};
use super::html::{ago, ago_text, fields, page, scroll, status, url_encode, with_unit};
use super::trace_view;
use super::workflow_view;
use crate::inspect::{order_report, AlarmsReport, Delivery, ExecutionReport, OrderReport};
use crate::observability::alarms::{self, Alarm};
use crate::observability::usage::CostSummary;
use crate::services::dynamodb;
use crate::services::step_functions::status_name;
use crate::store::{Db, DbError};
use dofs_cost::WhatIf;

/// How often a page of changing data reloads itself, in seconds.
const REFRESH: u32 = 5;
/// How often an order's page reloads while the order is in flight.
const ORDER_REFRESH: u32 = 2;

/// `GET /_dofs/`: orders by status and the alarms, the two things to glance
/// at while the pipeline runs.
pub(super) async fn overview(State(db): State<Db>, State(clock): State<Arc<dyn Clock>>) -> Page {
    let now = clock.now();
    let (counts, alarm_states) = db
        .read(|c| Ok((dynamodb::status_counts(c)?, alarms::load_states(c)?)))
        .await?;
    let body = html! {
        div.card {
            h2 { "Orders by status" }
            table {
                tr { th { "Status" } th.num { "Orders" } }
                @for (s, n) in &counts {
                    tr {
                        td { a href={ "/_dofs/orders?status=" (url_encode(s)) } { (status(s)) } }
                        td.num { (n) }
                    }
                }
            }
        }
        div.card {
            h2 { "Alarms" }
            (scroll(html! {
                table {
                    tr { th { "Alarm" } th { "State" } th { "Since" } }
                    @for a in &alarm_states {
                        tr {
                            td data-label="Alarm" { a href={ "/_dofs/alarms#" (url_encode(&a.name)) } { (a.name) } }
                            td data-label="State" { (status(a.state.as_str())) }
                            td data-label="Since" { (ago_text(&a.changed_at, now)) }
                        }
                    }
                }
            }))
        }
    };
    Ok(page("Overview", Some(REFRESH), body))
}

/// `GET /_dofs/orders[?status=][&q=]`: the newest orders, with one filter
/// link per status that has orders; `q` searches by order id (an exact one
/// opens the order), id prefix or trace id.
pub(super) async fn orders_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
    Query(q): Query<OrdersQuery>,
) -> Page {
    let now = clock.now();
    let (filter, search) = (q.status(), q.search());
    let (f, s) = (filter.clone(), search.clone());
    let (rows, counts) = db
        .read(move |c| {
            Ok((
                order_rows(c, f.as_deref(), s.as_deref())?,
                dynamodb::status_counts(c)?,
            ))
        })
        .await?;
    if let (Some(q), [only]) = (&search, rows.as_slice()) {
        if &only.order_id == q {
            return Ok(Redirect::to(&format!("/_dofs/orders/{}", url_encode(q))).into_response());
        }
    }
    let searched = search.as_deref().map(|q| {
        if xray_trace_id(q).is_some() {
            format!("touched by trace {q}")
        } else {
            format!("whose id starts with “{q}”")
        }
    });
    let body = html! {
        p {
            "Status: " a href="/_dofs/orders" { "all" }
            @for (s, n) in &counts {
                " · " a href={ "/_dofs/orders?status=" (url_encode(s)) } { (s) } " (" (n) ")"
            }
        }
        p.muted {
            (rows.len()) " order(s)"
            @if let Some(s) = &filter { " in " (s) }
            @if let Some(s) = &searched { " " (s) }
            ", newest first (at most " (super::api::ORDER_LIMIT) ")."
        }
        (scroll(html! {
            table.orders {
                tr { th { "Order" } th { "Status" } th { "Customer" } th.num { "Total" }
                     th { "Age" } th { "Updated" } }
                @for o in &rows {
                    tr {
                        td.mono.id data-label="Order" { a href={ "/_dofs/orders/" (url_encode(&o.order_id)) } { (o.order_id) } }
                        td data-label="Status" { (status(o.status.as_str())) }
                        td data-label="Customer" { (o.customer.as_deref().unwrap_or("")) }
                        td.num data-label="Total" { (o.total.as_deref().unwrap_or("")) }
                        td data-label="Age" { (ago_text(&o.created_at, now)) }
                        td data-label="Updated" { (ago_text(&o.updated_at, now)) }
                    }
                }
            }
        }))
    };
    Ok(page("Orders", Some(REFRESH), body))
}

/// Whether the order still has work ahead (so its page keeps refreshing).
fn in_flight(report: &OrderReport) -> bool {
    match &report.order {
        Some(o) => !o.status.is_terminal(),
        None => true,
    }
}

/// The order's outcome in words, and its class: what a person asks first.
/// It comes from the order's status, not the execution's: the workflow
/// succeeds when it has *recorded* a failure, so "SUCCEEDED" is no answer
/// to "did my order go through?".
fn outcome(report: &OrderReport) -> (String, Option<String>, &'static str) {
    let Some(order) = &report.order else {
        return ("Accepted".into(), None, "s-RUNNING");
    };
    let reason = order.history.last().and_then(|c| c.reason.clone());
    match order.status {
        OrderStatus::Fulfilled => ("Fulfilled".into(), None, "s-FULFILLED"),
        OrderStatus::Failed => ("Failed".into(), reason, "s-FAILED"),
        OrderStatus::Rejected => ("Rejected".into(), reason, "s-REJECTED"),
        s => (format!("In flight ({})", s.as_str()), None, "s-RUNNING"),
    }
}

/// Where an order that is not finished is waiting, in words, from the
/// latest thing that happened to it and what is true of the function that
/// should take it on (its mapping disabled, an injected fault).
fn whereabouts(
    report: &OrderReport,
    queued: Option<&Queued>,
    functions: &super::FunctionsView,
) -> Option<String> {
    use crate::identity::FunctionName;
    if !in_flight(report) {
        return None;
    }
    if let Some(q) = queued {
        let state = if q.in_flight {
            "received, being worked on"
        } else {
            "waiting to be received"
        };
        let dead_lettered = q.queue == crate::identity::DEAD_LETTER_QUEUE;
        let handler = if dead_lettered {
            FunctionName::DlqHandler
        } else {
            FunctionName::FulfillOrder
        };
        let place = if dead_lettered {
            format!(
                "In the dead-letter queue {} ({state}; received {} time(s) there)",
                q.queue, q.receive_count
            )
        } else {
            format!(
                "In the queue {} ({state}; received {} time(s))",
                q.queue, q.receive_count
            )
        };
        let next = match (functions.trouble(handler), dead_lettered) {
            (Some(t), true) => format!(
                "; {}, so it stays here until that is fixed or the Queues page redrives it.",
                t.words
            ),
            (None, true) => {
                ": dlq_handler records it as failed, or the Queues page redrives it.".to_owned()
            }
            (Some(t), false) if !t.polled => {
                format!("; {}, so it waits here until that is fixed.", t.words)
            }
            (Some(t), false) => format!(
                "; {}: each attempt fails and is retried after the visibility timeout, up to \
                 the maximum receive count, then it goes to the dead-letter queue.",
                t.words
            ),
            (None, false) => ": fulfill_order works on it; a failed attempt is retried after the \
                 visibility timeout, up to the maximum receive count, then it goes to the \
                 dead-letter queue."
                .to_owned(),
        };
        return Some(place + &next);
    }
    if report.failed_order.is_some() {
        return Some(
            "In the dead-letter queue's handler: recorded as failed, being marked so.".into(),
        );
    }
    if let Some(d) = report.deliveries.last() {
        if d.outcome != "deleted" {
            let trouble = FunctionName::resolve(&d.function)
                .and_then(|f| functions.trouble(f))
                .map(|t| format!(" ({})", t.words))
                .unwrap_or_default();
            return Some(format!(
                "In the queue {}: delivery #{} to {} ended “{}”{trouble}; it is redelivered \
                 after the visibility timeout, and goes to the dead-letter queue once the \
                 receive count reaches the maximum.",
                d.queue, d.receive_count, d.function, d.outcome
            ));
        }
        return Some(format!(
            "Processed from the queue {} by {} (receive #{}); the workflow records the result.",
            d.queue, d.function, d.receive_count
        ));
    }
    if let Some(e) = &report.execution {
        let step = e.events.iter().rev().find_map(|e| e.state.clone());
        return Some(match step {
            Some(step) => format!("In the workflow, at the step {step}."),
            None => "In the workflow, starting.".into(),
        });
    }
    Some("Stored, waiting for the workflow to start.".into())
}

/// Where the order's queue message is now, if it is in a queue.
struct Queued {
    queue: String,
    receive_count: i64,
    in_flight: bool,
}

fn queued_message(
    conn: &rusqlite::Connection,
    order_id: &str,
    now_ms: i64,
) -> Result<Option<Queued>, DbError> {
    use rusqlite::OptionalExtension as _;
    Ok(conn
        .query_row(
            "SELECT queue, receive_count, visible_at_ms FROM messages
             WHERE json_valid(body) AND json_extract(body, '$.order_id') = ?1
             ORDER BY seq DESC LIMIT 1",
            [order_id],
            |r| {
                Ok(Queued {
                    queue: r.get(0)?,
                    receive_count: r.get(1)?,
                    in_flight: r.get::<_, i64>(2)? > now_ms && r.get::<_, i64>(1)? > 0,
                })
            },
        )
        .optional()?)
}

/// `GET /_dofs/orders/{order_id}`: everything known about one order, one
/// section per source. A section whose source has nothing is left out
/// (most orders are never dead-lettered), so the page shows only what
/// happened. While the order is in flight the page reloads itself.
pub(super) async fn order_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
    State(functions): State<super::FunctionsView>,
    Path(order_id): Path<String>,
    Query(zoom): Query<trace_view::ZoomQuery>,
) -> Page {
    let now = clock.now();
    let id = order_id.clone();
    let now_ms = now.timestamp_millis();
    let (report, queued) = db
        .read(move |c| Ok((order_report(c, &id)?, queued_message(c, &id, now_ms)?)))
        .await?;
    if !report.exists() {
        let body = html! { p { "No order " code { (order_id) } "." } };
        let mut response = page("Order not found", None, body);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let (words, why, class) = outcome(&report);
    let live = in_flight(&report);
    let body = html! {
        div.card {
            p.outcome class=(class) { (words) }
            @if let Some(why) = &why { p.why { (why) } }
            @if let Some(place) = whereabouts(&report, queued.as_ref(), &functions) { p.place { (place) } }
            dl.kv {
                dt { "Order" } dd.mono { (order_id) }
                @if let Some(o) = &report.order {
                    dt { "Status" } dd { (status(o.status.as_str())) }
                    dt { "Customer" } dd { (o.customer_name.as_str()) }
                    dt { "Total" } dd { (o.total.to_string()) }
                    dt { "Created" } dd { (ago(o.created_at, now)) }
                    dt { "Updated" } dd { (ago(o.updated_at, now)) }
                }
                @if let Some(t) = report.trace.as_ref().map(|t| &t.trace_id) {
                    dt { "Trace" } dd.mono { a href={ "/_dofs/orders?q=" (url_encode(t)) } { (t) } }
                }
                dt { "Last updated" }
                dd {
                    (ago(now, now))
                    @if live { " · this page reloads every " (ORDER_REFRESH) " s while the order is in flight" }
                }
            }
        }
        @if let Some(order) = &report.order {
            (history(&order.history, now)?)
            (items(&order.items))
        }
        @if let Some(execution) = &report.execution { (execution_section(execution, &step_times(&report), now)) }
        @if !report.deliveries.is_empty() { (deliveries(&report.deliveries, now)) }
        @if let Some(failed) = &report.failed_order { (failed_section(failed)?) }
        @if let Some(view) = &report.xray { (trace_view::xray(view)) }
        @if let Some(trace) = &report.trace { (trace_view::waterfall(trace, &zoom, &format!("/_dofs/orders/{}", url_encode(&order_id)))) }
    };
    let refresh = live.then_some(ORDER_REFRESH);
    Ok(page(&format!("Order {order_id}"), refresh, body))
}

/// One row per status change. The entry's other fields (a rejection or
/// failure reason) are listed by name, so a field added to `StatusChange`
/// shows up without a change here.
fn history(history: &[StatusChange], now: DateTime<Utc>) -> Result<Markup, DbError> {
    let mut rows = Vec::with_capacity(history.len());
    for change in history {
        let mut detail = serde_json::to_value(change)?;
        if let Some(map) = detail.as_object_mut() {
            map.remove("at");
            map.remove("status");
            map.retain(|_, v| !v.is_null());
        }
        rows.push((change, detail));
    }
    Ok(html! {
        h2 { "Status history" }
        (scroll(html! {
            table {
                tr { th { "At" } th { "Status" } th { "Detail" } }
                @for (change, detail) in &rows {
                    tr {
                        td data-label="At" { (ago(change.at, now)) }
                        td data-label="Status" { (status(change.status.as_str())) }
                        td data-label="Detail" { (fields(detail)) }
                    }
                }
            }
        }))
    })
}

/// A time as the JSON twin writes it (chrono's serde form: RFC 3339 in
/// UTC, with as many fractional digits as the value needs).
#[cfg(test)]
fn json_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn items(items: &[LineItem]) -> Markup {
    html! {
        h2 { "Items" }
        table {
            tr { th { "SKU" } th.num { "Quantity" } th.num { "Unit price" } }
            @for item in items {
                tr {
                    td { (item.sku.as_str()) }
                    td.num { (item.quantity.get()) }
                    td.num { (item.unit_price.to_string()) }
                }
            }
        }
    }
}

/// The Step Functions execution and its history events. Its status is
/// said plainly, small: the order's outcome above is the headline.
/// Each workflow step's duration from its span (the Step Functions
/// stand-in's spans are named after the states).
fn step_times(report: &OrderReport) -> std::collections::BTreeMap<String, f64> {
    report
        .trace
        .iter()
        .flat_map(|t| &t.spans)
        .filter(|s| s.component == "step_functions")
        .map(|s| (s.name.clone(), s.duration_ms))
        .collect()
}

fn execution_section(
    execution: &ExecutionReport,
    step_ms: &std::collections::BTreeMap<String, f64>,
    now: DateTime<Utc>,
) -> Markup {
    // The file Terraform deploys, compiled in (its placeholders sit inside
    // strings, so it parses as it is).
    let asl: Option<serde_json::Value> =
        serde_json::from_str(crate::definitions::WORKFLOW_ASL).ok();
    let elapsed = execution
        .stopped_at
        .unwrap_or(now)
        .signed_duration_since(execution.started_at);
    html! {
        h2 { "Workflow execution" }
        @if let Some(asl) = &asl { (workflow_view::render(asl, execution, step_ms)) }
        p {
            // Plain, not coloured: a workflow that recorded a failure
            // SUCCEEDED, and the order's outcome above is the answer.
            "The execution is " b { (status_name(execution.status)) }
            " (the order's outcome is above), started " (ago(execution.started_at, now))
            ", " (super::html::duration_ms(elapsed.num_milliseconds() as f64))
            @if execution.stopped_at.is_none() { " so far" }
            "."
            @if let Some(e) = &execution.error { " Error " code { (e) } }
            @if let Some(c) = &execution.cause { ": " (c) }
        }
        details {
            summary { "Every history event" }
        (scroll(html! {
            table {
                tr { th.num { "After" } th { "Event" } th { "State" } }
                @for e in &execution.events {
                    tr {
                        td.num data-label="After" { (since_start(&e.timestamp, execution.started_at)) }
                        td data-label="Event" { (e.kind) }
                        td data-label="State" { (e.state.as_deref().unwrap_or_default()) }
                    }
                }
            }
        }))
        }
    }
}

/// An event's time as an offset from the execution's start, the exact
/// time on hover: the offsets are what tell the steps apart.
fn since_start(at: &str, started: DateTime<Utc>) -> Markup {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => {
            let ns = (t.with_timezone(&Utc) - started)
                .num_nanoseconds()
                .unwrap_or(i64::MAX);
            html! { span title=(at) { "+" (super::html::duration_ms(ns as f64 / 1e6)) } }
        }
        Err(_) => html! { span.mono { (at) } },
    }
}

/// Each time a queue handed the order to a function, and what came of it:
/// the receive count is what shows a retry on its way to the DLQ.
fn deliveries(deliveries: &[Delivery], now: DateTime<Utc>) -> Markup {
    html! {
        h2 { "Queue deliveries" }
        (scroll(html! {
            table {
                tr { th { "At" } th { "Queue" } th { "Function" } th.num { "Receive #" }
                     th { "Outcome" } th { "Message" } }
                @for d in deliveries {
                    tr {
                        td data-label="At" { (ago_text(&d.at, now)) }
                        td data-label="Queue" { (d.queue) }
                        td data-label="Function" { (d.function) }
                        td.num data-label="Receive #" { (d.receive_count) }
                        td data-label="Outcome" { (d.outcome) }
                        td.mono data-label="Message" { (d.message_id) }
                    }
                }
            }
        }))
    }
}

/// The `failed_orders` record, shown whole (keys sorted, as the JSON twin
/// has them): it is what an operator reads before a redrive, and its
/// payload has no fixed shape.
fn failed_section(failed: &FailedOrder) -> Result<Markup, DbError> {
    let record = serde_json::to_value(failed)?;
    let text = serde_json::to_string_pretty(&record)?;
    Ok(html! {
        h2 { "Dead-lettered" }
        details.card {
            summary { "The failed_orders record" }
            pre.mono { (text) }
        }
    })
}

/// `?range=` and `?period=` of the dashboard.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RangeQuery {
    range: Option<String>,
    period: Option<String>,
}

/// The time ranges the picker offers, as CloudWatch's does: (label, s).
const RANGES: [(&str, i64); 5] = [
    ("15m", 900),
    ("1h", 3600),
    ("3h", 10_800),
    ("12h", 43_200),
    ("1d", 86_400),
];
/// Periods besides each widget's own (the default, as deployed): a short
/// one makes a local run of a few minutes readable.
const PERIODS: [(&str, i64); 2] = [("1m", 60), ("10s", 10)];
/// Most datapoints a line has: a longer range gets a longer period.
const MAX_POINTS: i64 = 360;

/// `GET /_dofs/metrics`: the deployed CloudWatch dashboard's widgets as
/// charts over the picked range, then every series as a table.
pub(super) async fn metrics_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
    Query(q): Query<RangeQuery>,
) -> Page {
    let now = clock.now();
    let now_ms = now.timestamp_millis();
    let range = q.range.as_deref().unwrap_or("1h");
    let range_s = RANGES
        .iter()
        .find(|(l, _)| *l == range)
        .map_or(3600, |r| r.1);
    let period_override = PERIODS
        .iter()
        .find(|(l, _)| Some(*l) == q.period.as_deref())
        .map(|p| p.1);
    let widgets = dashboard::widgets().map_err(ConsoleError::from)?;
    let pricing =
        crate::observability::usage::pricing("us-east-1", None).map_err(ConsoleError::from)?;
    let charts = db
        .read(move |c| {
            let mut out = Vec::new();
            for w in &widgets {
                let Widget::Chart {
                    period_s, lines, ..
                } = w
                else {
                    out.push(None);
                    continue;
                };
                let period_s = period_override
                    .unwrap_or(*period_s)
                    .max(range_s / MAX_POINTS)
                    .max(1);
                let period_ms = period_s * 1000;
                let count = usize::try_from(range_s / period_s).unwrap_or(1).max(1);
                // Periods aligned to the period, the last one holding now.
                let from_ms = (now_ms / period_ms + 1 - count as i64) * period_ms;
                let mut points = Vec::with_capacity(lines.len());
                for l in lines {
                    points.push(dashboard::datapoints(
                        c, &l.key, &l.stat, from_ms, period_ms, count,
                    )?);
                }
                out.push(Some((from_ms, period_ms, points)));
            }
            Ok((
                widgets,
                out,
                alarms::load_states(c)?,
                metrics_report(c, now_ms)?,
                CostSummary::read(c, &pricing, &WhatIf::default())?,
            ))
        })
        .await?;
    let (widgets, data, alarm_states, rows, cost) = charts;
    let link = |r: &str, p: Option<&str>| match p {
        Some(p) => format!("/_dofs/metrics?range={r}&period={p}"),
        None => format!("/_dofs/metrics?range={r}"),
    };
    let period = q
        .period
        .as_deref()
        .filter(|p| period_override.is_some() && !p.is_empty());
    let body = html! {
        p.picker {
            "Range: "
            @for (label, _) in RANGES {
                a class=[(label == range).then_some("on")] href=(link(label, period)) { (label) }
            }
            " · Period: "
            a class=[period.is_none().then_some("on")] href=(link(range, None)) { "as deployed" }
            @for (label, _) in PERIODS {
                a class=[(Some(label) == period).then_some("on")] href=(link(range, Some(label))) { (label) }
            }
        }
        div.grid {
            (super::cost_view::cost_card(&cost))
            @for (w, d) in widgets.iter().zip(&data) {
                @match (w, d) {
                    (Widget::Text(text), _) => {
                        div.card.text {
                            @for line in text.lines() {
                                @if let Some(h) = line.strip_prefix("# ") { h2 { (h) } }
                                @else { p.muted.small { (line) } }
                            }
                        }
                    }
                    (Widget::Chart { title, lines, .. }, Some((from_ms, period_ms, points))) => {
                        @let drawn: Vec<dashboard::Drawn<'_>> = lines.iter().zip(points)
                            .map(|(line, p)| dashboard::Drawn::new(line, p)).collect();
                        div.card.widget data-title=(title) {
                            h2 { (title) }
                            (dashboard::chart(&drawn, *from_ms, *period_ms, None))
                            p.muted.small { "Period " (super::html::duration_ms(*period_ms as f64)) }
                        }
                    }
                    (Widget::Alarms { title }, _) => {
                        div.card {
                            h2 { (title) }
                            table {
                                @for a in &alarm_states {
                                    tr {
                                        td { a href={ "/_dofs/alarms#" (url_encode(&a.name)) } { (a.name) } }
                                        td { (status(a.state.as_str())) }
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        details {
            summary { "Every series with data in the last " (METRICS_WINDOW_MS / 60_000) " minutes" }
            (scroll(html! {
                table {
                    tr { th { "Namespace" } th { "Metric" } th { "Dimensions" } th { "Unit" }
                         th.num { "Samples" } th.num { "Sum" } th.num { "Avg" } th.num { "Min" }
                         th.num { "Max" } th { "Last" } }
                    @for s in &rows {
                        tr {
                            td data-label="Namespace" { (s.namespace) }
                            td data-label="Metric" { (s.name) }
                            td.mono data-label="Dimensions" {
                                @for (k, v) in &s.dimensions { (k) "=" (v) " " }
                            }
                            td data-label="Unit" { (s.unit) }
                            td.num data-label="Samples" { (s.window.sample_count) }
                            td.num data-label="Sum" { (with_unit(s.window.sum, &s.unit)) }
                            td.num data-label="Avg" { (with_unit(s.average, &s.unit)) }
                            td.num data-label="Min" { (with_unit(s.window.min, &s.unit)) }
                            td.num data-label="Max" { (with_unit(s.window.max, &s.unit)) }
                            td data-label="Last" { (ago_text(&s.last_at, now)) }
                        }
                    }
                }
            }))
        }
    };
    Ok(page("Metrics", Some(REFRESH * 2), body))
}

/// `GET /_dofs/alarms`: every alarm with its state, its condition in
/// words and its chart with the threshold line, then the latest changes.
pub(super) async fn alarms_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
    State(definitions): State<Arc<Vec<Alarm>>>,
) -> Page {
    let now = clock.now();
    let now_ms = now.timestamp_millis();
    let defs = Arc::clone(&definitions);
    let (report, charts) = db
        .read(move |c| {
            let mut charts = Vec::with_capacity(defs.len());
            for alarm in defs.iter() {
                charts.push(alarm_view::recent(c, alarm, now_ms)?);
            }
            Ok((alarms_report(c)?, charts))
        })
        .await?;
    let AlarmsReport {
        alarms: mut states,
        history,
    } = report;
    // Firing alarms first, as the CloudWatch console lists them.
    states.sort_by_key(|a| a.state != alarms::AlarmState::Alarm);
    let body = html! {
        div.grid {
            @for a in &states {
                @let def = definitions.iter().position(|d| d.name == a.name);
                div.card.alarm id=(a.name) data-state=(a.state.as_str()) {
                    h2 { (a.name) " " (status(a.state.as_str())) }
                    p.small { "Since " (ago_text(&a.changed_at, now)) ". " (a.reason) }
                    @if let Some(i) = def {
                        p { (alarm_view::condition(&definitions[i])) }
                        @let (from_ms, period_ms, values) = &charts[i];
                        (alarm_view::chart(&definitions[i], *from_ms, *period_ms, values))
                    }
                    details {
                        summary { "Description" }
                        p.small { (a.description) }
                    }
                }
            }
        }
        h2 { "History" }
        (scroll(html! {
            table {
                tr { th { "At" } th { "Alarm" } th { "Change" } th { "Reason" } }
                @for t in &history {
                    tr {
                        td data-label="At" { (ago_text(&t.at, now)) }
                        td data-label="Alarm" { (t.name) }
                        td.nowrap data-label="Change" { (status(t.old_state.as_str())) " → " (status(t.new_state.as_str())) }
                        td data-label="Reason" { (t.reason) }
                    }
                }
            }
        }))
    };
    Ok(page("Alarms", Some(REFRESH), body))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use chrono::{DateTime, Utc};

    use super::super::testing::{get, seeded, EVIL};
    use super::json_time;

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
        assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;"), "{html}");
        assert!(!html.contains(EVIL));
        assert!(html.contains(r#"name="viewport""#), "{html}");
        for uri in ["/_dofs/", "/_dofs/metrics", "/_dofs/alarms"] {
            let (status, _) = get(&app, uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
        }
        let (status, _) = get(&app, "/_dofs/orders/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn search_finds_orders_by_prefix_and_opens_an_exact_id() {
        let (_dir, app, order_id) = seeded().await;
        let (status, html) = get(&app, &format!("/_dofs/orders?q={}", &order_id[..6])).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!("/_dofs/orders/{order_id}")),
            "{html}"
        );
        let (status, _) = get(&app, &format!("/_dofs/orders?q={order_id}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, html) = get(&app, "/_dofs/orders?q=zzzz-none").await;
        assert!(
            !html.contains(&format!("/_dofs/orders/{order_id}")),
            "{html}"
        );
    }
}
