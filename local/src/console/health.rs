//! The routes under `/_dofs/` that exist whether or not the console is
//! served: `GET /_dofs/health`, for a script or a process supervisor to
//! ask whether `dofs serve` is up and where, and a JSON 404 for every other
//! path under the prefix. Both sit outside the API Gateway stand-in, so
//! they never count as API traffic (its metrics layer wraps only its own
//! routes): a health check every second must not move `Count` or `4xx`.
//!
//! [`browser_files`] does the same for the paths a browser, a crawler or a
//! phone asks for on its own (`/favicon.ico`, `/robots.txt`,
//! `/apple-touch-icon*.png`): they are answered before the API's routes,
//! because a browser looking at the console once sent `/favicon.ico` to the
//! API, whose 404 counted as an API 4xx and flapped `api-4xx-rate`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::PREFIX;

/// What `GET /_dofs/health` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    /// The `dofs` version (the crate's).
    pub version: &'static str,
    pub data_dir: PathBuf,
    /// The base URL the server listens on, `http://{addr}`.
    pub listening: String,
}

impl Health {
    pub fn new(data_dir: PathBuf, listening: String) -> Self {
        Self {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            data_dir,
            listening,
        }
    }
}

/// `/_dofs/health`, and a 404 for the rest of `/_dofs/` that the console
/// (when served, merged beside this) does not route. With `console` off,
/// `/_dofs` and `/_dofs/` themselves are answered 404 here too.
pub fn router(health: Health, console: bool) -> Router {
    let health = Arc::new(health);
    let mut router = Router::new()
        .route(
            "/_dofs/health",
            get(move || {
                let health = Arc::clone(&health);
                async move { Json((*health).clone()) }
            }),
        )
        .route("/_dofs/{*rest}", get(not_found).fallback(not_found));
    if !console {
        for path in [PREFIX, "/_dofs/"] {
            router = router.route(path, get(not_found).fallback(not_found));
        }
    }
    router
}

async fn not_found() -> impl IntoResponse {
    let body = json!({"error": {
        "code": "not_found",
        "message": "nothing here under /_dofs/ (is the console off? see --console)",
        "details": [],
    }});
    (StatusCode::NOT_FOUND, Json(body))
}

/// Whether `path` is one a browser or crawler requests unprompted, never
/// an API Gateway route of ours (the API's paths are all under `/orders`).
pub fn is_browser_file(path: &str) -> bool {
    matches!(path, "/favicon.ico" | "/robots.txt")
        || (path.starts_with("/apple-touch-icon") && path.ends_with(".png"))
}

/// Middleware in front of every route: answers [`is_browser_file`] paths
/// itself, so they never reach the gateway or its metrics, console on or
/// off.
pub async fn browser_files(request: Request, next: Next) -> Response {
    match request.uri().path() {
        "/favicon.ico" => super::assets::favicon(),
        "/robots.txt" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "User-agent: *\nDisallow: /\n",
        )
            .into_response(),
        path if is_browser_file(path) => {
            (StatusCode::NOT_FOUND, "no touch icon here").into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::is_browser_file;

    #[test]
    fn browser_files_are_the_unprompted_requests_only() {
        for path in [
            "/favicon.ico",
            "/robots.txt",
            "/apple-touch-icon.png",
            "/apple-touch-icon-precomposed.png",
            "/apple-touch-icon-120x120.png",
        ] {
            assert!(is_browser_file(path), "{path}");
        }
        for path in ["/orders", "/orders/favicon.ico", "/favicon.ico/x", "/"] {
            assert!(!is_browser_file(path), "{path}");
        }
    }
}
