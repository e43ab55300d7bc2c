//! The routes under `/_dofs/` that exist whether or not the console is
//! served: `GET /_dofs/health`, for a script or a process supervisor to
//! ask whether `dofs serve` is up and where, and a JSON 404 for every other
//! path under the prefix. Both sit outside the API Gateway stand-in, so
//! they never count as API traffic (its metrics layer wraps only its own
//! routes): a health check every second must not move `Count` or `4xx`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
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
