//! What keeps a local `dofs serve` a local one: it answers only requests
//! addressed to it by a loopback name, and tells browsers not to sniff,
//! frame or script its pages.
//!
//! Nothing authenticates a local API, so a web page the developer visits
//! could reach it by DNS rebinding: the page's own host name re-resolves to
//! 127.0.0.1, and the browser then sends the page's requests, same-origin,
//! to `dofs serve` — with the page's host name in `Host`. Checking `Host`
//! refuses them: only `localhost`, `*.localhost`, `127.0.0.0/8` and `[::1]`
//! (and the names given with `--allow-host`) are accepted, as
//! <https://www.rfc-editor.org/rfc/rfc6761#section-6.3> reserves
//! `localhost` for loopback. Others get 421 Misdirected Request
//! (<https://www.rfc-editor.org/rfc/rfc9110#section-15.5.20>) with the API's
//! JSON error body.
//!
//! Every response carries `X-Content-Type-Options: nosniff`,
//! `X-Frame-Options: DENY` and a `Content-Security-Policy` that allows the
//! console's own stylesheet and images and nothing else (no script, no
//! inline style, no frame ancestor, no form target but itself).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The console's stylesheet and icon (served from `/_dofs/static/`), and
/// nothing else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Which `Host` names requests may carry.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Names accepted besides the loopback ones (lower case, no port).
    extra: Vec<String>,
}

impl HostPolicy {
    /// The loopback names and `extra` (a port, if given, is ignored).
    pub fn new(extra: &[String]) -> Self {
        Self {
            extra: extra
                .iter()
                .map(|name| host_name(name).to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether a request whose `Host` (or absolute-form authority) is `host`
    /// is for this server.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.extra.contains(&name)
    }
}

/// `host[:port]` or `[v6][:port]` without the port (and a trailing dot).
fn host_name(host: &str) -> &str {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

fn misdirected(host: &str) -> Response {
    let body = json!({"error": {
        "code": "misdirected_request",
        "message": "this server answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]) or one given with --allow-host",
        "details": [{"field": "Host", "message": format!("{host:?} is not a name of this server")}],
    }});
    (
        StatusCode::MISDIRECTED_REQUEST,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Refuses a request not addressed to this server, and adds the browser
/// protections to every response.
pub async fn guard(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        })
        .unwrap_or_default();
    let mut response = if policy.allows(&host) {
        next.run(request).await
    } else {
        tracing::warn!(host = %host, "refused a request for another host name (DNS rebinding?)");
        misdirected(&host)
    };
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_configured_ones_only() {
        let policy = HostPolicy::new(&["dofs.test:8080".to_owned()]);
        for host in [
            "localhost",
            "localhost:3000",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1:3000",
            "127.1.2.3",
            "[::1]:3000",
            "[::1]",
            "dofs.test",
            "DOFS.test:9",
        ] {
            assert!(policy.allows(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:3000",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!policy.allows(host), "{host}");
        }
    }
}
