//! The console's HTML building blocks: escaping, the page shell every page
//! shares, and the small formatters the pages use for cells. Pages build
//! their markup with `format!`, so everything that comes from the data
//! directory must pass through [`escape`] (or [`url_encode`] in a link) on
//! its way in.

use std::fmt::Write as _;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// HTML-escapes text for element content and quoted attribute values.
/// Quotes are escaped too, so one function is safe in both places and no
/// page has to know which one it is writing into.
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

/// Inline, so a page is one response with nothing else to fetch. The
/// `s-<STATUS>` classes colour order, execution, alarm and span statuses
/// alike, because [`status_span`] names its class after the value.
const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:0;color:#222}\
nav{background:#232f3e;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}\
main{padding:16px}table{border-collapse:collapse;margin:8px 0 16px}\
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}\
code,.mono{font-family:ui-monospace,monospace;font-size:12px}\
.s-OK,.s-FULFILLED,.s-SUCCEEDED,.s-ok{color:#1d8102}.s-ALARM,.s-FAILED,.s-error{color:#d13212;font-weight:bold}\
.s-INSUFFICIENT_DATA,.s-warn,.s-REJECTED{color:#b7791f}\
.wf{position:relative;height:14px;background:#f3f3f3;min-width:400px}\
.bar{position:absolute;height:14px;background:#0073bb}.bar.error{background:#d13212}.bar.warn{background:#ec7211}";

/// Wraps `body` (already escaped markup) in the shared shell: navigation,
/// style and title. Pages that show changing data `refresh` every five
/// seconds, which keeps the console live without any script; a single
/// order does not, so its page stays put while someone reads it.
pub(super) fn page(title: &str, refresh: bool, body: &str) -> Response {
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

/// A status in its colour (see [`STYLE`]).
pub(super) fn status_span(status: &str) -> String {
    format!(
        "<span class=\"s-{}\">{}</span>",
        escape(status),
        escape(status)
    )
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
}
