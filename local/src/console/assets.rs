//! The console's static files, compiled into the binary and served under
//! `/_dofs/static/`: its one stylesheet and its icon. Nothing is fetched from
//! the network at run time and there is no frontend build; both files are
//! the project's own (no third-party code is vendored, so no other licence
//! applies).
//!
//! Pages link them with the crate version in the query string, so a
//! browser may cache them for a year (`immutable`) and still gets the new
//! ones after an upgrade.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The icon every page links, also answered at `/favicon.ico` (see
/// [`super::health`]) for the tools that ask there without reading a page.
pub const FAVICON_SVG: &str = include_str!("static/favicon.svg");
const CONSOLE_CSS: &str = include_str!("static/console.css");

/// `href` of a static file, with the cache-busting version.
pub(super) fn href(name: &str) -> String {
    format!("/_dofs/static/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// The icon as a response, for `/_dofs/static/favicon.svg` and `/favicon.ico`.
pub fn favicon() -> Response {
    cached("image/svg+xml", FAVICON_SVG)
}

fn cached(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// `GET /_dofs/static/{name}`.
pub(super) async fn static_file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "console.css" => cached("text/css; charset=utf-8", CONSOLE_CSS),
        "favicon.svg" => favicon(),
        _ => (StatusCode::NOT_FOUND, "no such static file").into_response(),
    }
}
