//! The queues page, as the SQS console and LocalStack's show them: each
//! queue with its visible, in-flight and delayed counts, its messages (body,
//! receive count, age, the order and trace they carry), and the actions on
//! the dead-letter queue: redrive one message or all of them to the order
//! queue, and purge it.
//!
//! The actions change state, so they are `POST`s guarded against
//! cross-site requests twice: the request must come from the console's own
//! origin (`Sec-Fetch-Site: same-origin` and an `Origin` naming this host,
//! when the browser sends them) and carry the per-process token the page
//! put in a hidden field, which another site cannot read. Each form also
//! has a required confirmation checkbox, a confirmation that needs no
//! script.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use dofs_core::Clock;
use maud::html;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::Value;

use super::api::{ConsoleError, Page};
use super::html::{ago, page, scroll, url_encode};
use super::ConsoleState;
use crate::identity::{DEAD_LETTER_QUEUE, ORDER_QUEUE};
use crate::services::sqs::queue_counts;
use crate::store::{Db, DbError};

/// Most messages the page lists per queue.
const MESSAGE_LIMIT: i64 = 200;

/// The per-process token the action forms carry.
#[derive(Clone)]
pub struct CsrfToken(pub Arc<str>);

impl CsrfToken {
    /// A fresh random token (128 bits), made once per process.
    pub fn new() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()).into())
    }
}

impl Default for CsrfToken {
    fn default() -> Self {
        Self::new()
    }
}

/// One message as the page lists it.
struct MessageRow {
    queue: String,
    message_id: String,
    body: String,
    receive_count: i64,
    sent_ms: i64,
    in_flight: bool,
    trace: Option<String>,
}

fn messages(conn: &Connection, now_ms: i64) -> Result<Vec<MessageRow>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT queue, message_id, body, receive_count, sent_ms, visible_at_ms, trace_header
         FROM messages m WHERE seq IN
           (SELECT seq FROM messages WHERE queue = m.queue ORDER BY seq LIMIT ?1)
         ORDER BY queue, seq",
    )?;
    let rows = stmt
        .query_map([MESSAGE_LIMIT], |r| {
            let header: Option<String> = r.get(6)?;
            Ok(MessageRow {
                queue: r.get(0)?,
                message_id: r.get(1)?,
                body: r.get(2)?,
                receive_count: r.get(3)?,
                sent_ms: r.get(4)?,
                in_flight: r.get::<_, i64>(5)? > now_ms && r.get::<_, i64>(3)? > 0,
                trace: header.as_deref().and_then(root_of),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The `Root=` of an X-Ray trace header.
fn root_of(header: &str) -> Option<String> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .map(str::to_owned)
}

fn order_of(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v["order_id"].as_str().map(str::to_owned)
}

/// `GET /_dofs/queues`.
pub(super) async fn queues_page(
    State(db): State<Db>,
    State(clock): State<Arc<dyn Clock>>,
    State(token): State<CsrfToken>,
    axum::extract::Query(q): axum::extract::Query<DoneQuery>,
) -> Page {
    let now = clock.now();
    let now_ms = now.timestamp_millis();
    let (counts, rows) = db
        .read(move |c| Ok((queue_counts(c, now_ms)?, messages(c, now_ms)?)))
        .await?;
    let form = |action: &str, label: &str, message_id: Option<&str>, confirm: &str| {
        html! {
            form.action method="post" action=(action) {
                input type="hidden" name="token" value=(token.0);
                @if let Some(id) = message_id { input type="hidden" name="message_id" value=(id); }
                label.small { input type="checkbox" name="confirm" value="yes" required; " " (confirm) }
                " "
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        @if let Some(done) = &q.done { p.card.done { (done) } }
        (scroll(html! {
            table {
                tr { th { "Queue" } th.num { "Visible" } th.num { "In flight" } th.num { "Delayed" } }
                @for c in &counts {
                    tr {
                        td data-label="Queue" { a href={ "#" (c.name) } { (c.name) } }
                        td.num data-label="Visible" { (c.visible) }
                        td.num data-label="In flight" { (c.in_flight) }
                        td.num data-label="Delayed" { (c.delayed) }
                    }
                }
            }
        }))
        @for c in &counts {
            div.card.queue id=(c.name) {
                h2 { (c.name) }
                @if c.name == DEAD_LETTER_QUEUE {
                    div.actions {
                        (form("/_dofs/queues/redrive", "Redrive all to the order queue", None,
                              "move every message back to the order queue"))
                        (form("/_dofs/queues/purge", "Purge", None, "delete every message for good"))
                    }
                }
                @let here: Vec<&MessageRow> = rows.iter().filter(|m| m.queue == c.name).collect();
                @if here.is_empty() {
                    p.muted { "No messages." }
                } @else {
                    (scroll(html! {
                        table {
                            tr { th { "Message" } th { "Order" } th.num { "Receives" } th { "Age" }
                                 th { "State" } th { "Trace" } @if c.name == DEAD_LETTER_QUEUE { th { "" } } }
                            @for m in &here {
                                tr.message data-message-id=(m.message_id) {
                                    td data-label="Message" {
                                        details {
                                            summary.mono { (m.message_id) }
                                            pre.mono.small { (m.body) }
                                        }
                                    }
                                    td.mono.id data-label="Order" {
                                        @if let Some(id) = order_of(&m.body) {
                                            a href={ "/_dofs/orders/" (url_encode(&id)) } { (id) }
                                        }
                                    }
                                    td.num data-label="Receives" { (m.receive_count) }
                                    td data-label="Age" { (ago(from_ms(m.sent_ms), now)) }
                                    td data-label="State" { @if m.in_flight { "in flight" } @else { "visible" } }
                                    td.mono.id data-label="Trace" {
                                        @if let Some(t) = &m.trace {
                                            a href={ "/_dofs/orders?q=" (url_encode(t)) } { (t) }
                                        }
                                    }
                                    @if c.name == DEAD_LETTER_QUEUE {
                                        td data-label="Redrive" { (form("/_dofs/queues/redrive", "Redrive", Some(&m.message_id), "sure")) }
                                    }
                                }
                            }
                        }
                    }))
                }
            }
        }
    };
    Ok(page("Queues", None, body))
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `?done=` of the page an action redirects to.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

/// The fields of an action form.
#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    token: String,
    confirm: Option<String>,
    message_id: Option<String>,
}

/// Whether the request comes from a page of this console: a browser's
/// `Sec-Fetch-Site` and `Origin`, when present, must say same origin.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let site = text(header::HeaderName::from_static("sec-fetch-site"));
    let site_ok = site.is_none_or(|s| s == "same-origin");
    let origin_ok = match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
    };
    site_ok && origin_ok
}

/// Refuses an action that is cross-site, lacks the token or the
/// confirmation; `None` when it may go ahead.
fn refuse(token: &CsrfToken, headers: &HeaderMap, form: &ActionForm) -> Option<Response> {
    if !same_origin(headers) || form.token != *token.0 {
        return Some(
            (
                StatusCode::FORBIDDEN,
                "refused: not a request from this console's own page",
            )
                .into_response(),
        );
    }
    if form.confirm.as_deref() != Some("yes") {
        return Some((StatusCode::BAD_REQUEST, "refused: not confirmed").into_response());
    }
    None
}

fn done(text: &str) -> Response {
    Redirect::to(&format!("/_dofs/queues?done={}", url_encode(text))).into_response()
}

/// `POST /_dofs/queues/redrive`: one message (`message_id`) or all of the
/// DLQ back to the order queue, as fresh messages.
pub(super) async fn redrive(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Page {
    if let Some(refused) = refuse(&state.token, &headers, &form) {
        return Ok(refused);
    }
    let moved = match form.message_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => {
            state
                .queues
                .move_message(DEAD_LETTER_QUEUE, ORDER_QUEUE, id)
                .await
        }
        None => {
            state
                .queues
                .move_messages(DEAD_LETTER_QUEUE, ORDER_QUEUE)
                .await
        }
    }
    .map_err(ConsoleError::from)?;
    tracing::info!(moved, "console redrive from the DLQ");
    Ok(done(&format!(
        "Moved {moved} message(s) from {DEAD_LETTER_QUEUE} to {ORDER_QUEUE}."
    )))
}

/// `POST /_dofs/queues/purge`: empties the DLQ.
pub(super) async fn purge(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Page {
    if let Some(refused) = refuse(&state.token, &headers, &form) {
        return Ok(refused);
    }
    let purged = state
        .queues
        .purge(DEAD_LETTER_QUEUE)
        .await
        .map_err(ConsoleError::from)?;
    tracing::warn!(purged, "console purged the DLQ");
    Ok(done(&format!(
        "Purged {purged} message(s) from {DEAD_LETTER_QUEUE}."
    )))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::same_origin;

    #[test]
    fn only_same_origin_requests_may_act() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        assert!(same_origin(&h), "a script (no browser headers)");
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:3000"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h));
    }
}
