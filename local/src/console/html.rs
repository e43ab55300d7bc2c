//! The console's HTML building blocks: the page shell every page shares and
//! the small formatters the pages use for cells (statuses, times relative
//! to now with the exact time on hover, numbers and durations for people).
//!
//! Markup is built with `maud`, whose `html!` escapes every interpolated
//! value, so text from the data directory (order ids, customer names, error
//! messages) is data and never markup without any page having to remember
//! it. Only [`url_encode`] is still needed by hand, for a value inside a
//! link's query or path.

use std::fmt::Write as _;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::assets;

/// Percent-encodes a path segment or query value. Only the RFC 3986
/// unreserved characters pass through, so a status or an order id can
/// never end a query parameter or add a path segment.
pub(super) fn url_encode(text: &str) -> String {
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

/// Wraps `body` in the shared shell: navigation with the search box, the
/// stylesheet and icon from [`assets`], and the viewport a phone needs to
/// lay the page out at its own width. Pages that show changing data pass
/// `refresh` (seconds), a `<meta http-equiv="refresh">`: it keeps them live
/// without any script, which the Content-Security-Policy forbids.
pub(super) fn page(title: &str, refresh: Option<u32>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · dofs" }
                link rel="icon" type="image/svg+xml" href=(assets::href("favicon.svg"));
                link rel="stylesheet" href=(assets::href("console.css"));
            }
            body {
                nav {
                    a.brand href="/_dofs/" { "dofs" }
                    a href="/_dofs/orders" { "Orders" }
                    a href="/_dofs/metrics" { "Metrics" }
                    a href="/_dofs/alarms" { "Alarms" }
                    a href="/_dofs/queues" { "Queues" }
                    form action="/_dofs/orders" method="get" role="search" {
                        input type="search" name="q" placeholder="Order id, prefix or trace id"
                            aria-label="Search orders";
                        button type="submit" { "Search" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A status in its colour: the stylesheet's `s-<STATUS>` classes colour
/// order, execution, alarm and span statuses alike.
pub(super) fn status(status: &str) -> Markup {
    html! { span class={ "s-" (status) } { (status) } }
}

/// A table that reflows on a phone: each row becomes a card of labelled
/// cells (the stylesheet reads each cell's `data-label`, so every `td`
/// inside needs one), so every column stays on screen without sideways
/// scrolling. On a wider screen a table still too wide scrolls inside its
/// own box rather than the page.
pub(super) fn scroll(table: Markup) -> Markup {
    html! { div.scroll { (table) } }
}

/// `at` relative to `now` ("3 min ago"), with the exact RFC 3339 time on
/// hover and in `datetime`.
pub(super) fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let exact = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    html! { time datetime=(exact) title=(exact) { (relative(at, now)) } }
}

/// [`ago`] of a stored RFC 3339 text; text that does not parse is shown as
/// it is.
pub(super) fn ago_text(at: &str, now: DateTime<Utc>) -> Markup {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => ago(t.with_timezone(&Utc), now),
        Err(_) => html! { span.mono { (at) } },
    }
}

/// How long ago, at the coarsest unit that keeps it readable.
pub(super) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = (secs.unsigned_abs(), secs < 0);
    let text = match n {
        0..=4 => return "just now".to_owned(),
        5..=59 => format!("{n} s"),
        60..=3599 => format!("{} min", n / 60),
        3600..=86_399 => format!("{} h {} min", n / 3600, n % 3600 / 60),
        _ => format!("{} d", n / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A metric value for people: no float noise (`21.313781000000002` is
/// `21.3`), thousands as `k`/`M`, and integers without decimals.
pub(super) fn number(v: f64) -> String {
    if !v.is_finite() {
        return "–".to_owned();
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// A value with its CloudWatch unit, converted where a person thinks in
/// another one (milliseconds as seconds past 1 s, fractions as %).
pub(super) fn with_unit(v: f64, unit: &str) -> String {
    match unit {
        "Milliseconds" => duration_ms(v),
        "Seconds" => duration_ms(v * 1000.0),
        "Percent" => format!("{}%", number(v)),
        "Bytes" => format!("{} B", number(v)),
        _ => number(v),
    }
}

/// A duration in milliseconds, at a unit that keeps it short.
pub(super) fn duration_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{} µs", number(ms * 1000.0))
    } else if ms < 1000.0 {
        format!("{} ms", number(ms))
    } else if ms < 120_000.0 {
        format!("{} s", number(ms / 1000.0))
    } else {
        format!("{} min", number(ms / 60_000.0))
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A free-form JSON value (an X-Ray document's annotations or metadata, a
/// status change's details) as cell text: strings without their quotes,
/// and nothing for `null` or `{}` so that absent details leave the cell
/// blank.
pub(super) fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(m) if m.is_empty() => String::new(),
        other => other.to_string(),
    }
}

/// A JSON object as a definition list (one row per key), the form people
/// read a status change's details or a span's attributes in.
pub(super) fn fields(v: &Value) -> Markup {
    html! {
        @if let Some(map) = v.as_object() {
            dl.kv {
                @for (k, v) in map {
                    dt { (k) }
                    dd.mono { (compact(v)) }
                }
            }
        } @else {
            span.mono { (compact(v)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(url_encode("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(21.313781000000002), "21.31");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.0125), "0.013");
        assert_eq!(number(12_345.0), "12.3k");
        assert_eq!(number(250.4), "250");
        assert_eq!(with_unit(1500.0, "Milliseconds"), "1.5 s");
        assert_eq!(with_unit(12.5, "Milliseconds"), "12.5 ms");
    }

    #[test]
    fn relative_times_keep_the_exact_one_on_hover() {
        let now: DateTime<Utc> = "2026-12-02T08:13:39Z".parse().unwrap();
        let at: DateTime<Utc> = "2026-12-02T08:10:30Z".parse().unwrap();
        assert_eq!(relative(at, now), "3 min ago");
        let cell = ago(at, now).into_string();
        assert!(
            cell.contains(r#"title="2026-12-02T08:10:30.000Z""#),
            "{cell}"
        );
    }

    #[test]
    fn markup_in_data_is_escaped() {
        let cell = status("<b>x</b>").into_string();
        assert!(!cell.contains("<b>"), "{cell}");
    }
}
