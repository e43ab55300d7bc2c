//! The web console of `dofs serve`, under `/_dofs/` on the API's own
//! listener (API Gateway routes never start with `_`, so it cannot collide
//! with the API): orders with a status filter, one order with its status
//! history, workflow events, queue deliveries and trace waterfall, the
//! metrics, and the alarms with their history. Every page has a JSON twin
//! under `/_dofs/api/`.
//!
//! Server-rendered HTML through `maud`, which escapes every value from the
//! data directory (order ids, customer-provided text and error messages are
//! data, never markup); one stylesheet and an icon compiled into the binary;
//! no script, no frontend build, nothing to download. The
//! Content-Security-Policy ([`crate::http_guard`]) allows only those files.
//!
//! - `alarm_view`: an alarm's condition in words and its chart with the
//!   threshold line;
//! - `html`: the page shell and the cell formatters;
//! - `assets`: the static files under `/_dofs/static/`;
//! - `dashboard`: `dashboards/dashboard.json` as SVG charts;
//! - `cost_view`: what an order costs on AWS, beside the dashboard;
//! - `pages`: the HTML pages;
//! - `queues`: the queues page and its DLQ actions (redrive, purge),
//!   guarded against cross-site requests;
//! - `workflow_view`: the workflow graph from the ASL with the execution's
//!   path coloured, and its steps;
//! - `trace_view`: an order's X-Ray view and its waterfall with the idle
//!   gaps collapsed;
//! - `api`: the JSON twins and the read models the pages render too;
//! - [`health`]: `GET /_dofs/health` and the 404 of the rest of the prefix,
//!   served with the console on or off.

mod alarm_view;
mod api;
mod assets;
mod cost_view;
mod dashboard;
pub mod health;
mod html;
mod pages;
mod queues;
mod trace_view;
mod workflow_view;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use std::sync::Arc;

use axum::extract::FromRef;
use dofs_core::Clock;

use crate::observability::alarms::Alarm;
use crate::services::sqs::Queues;
use crate::store::Db;

/// Where the console lives. API Gateway paths never start with `_`, so
/// nothing under it can shadow a route of the API it shares a listener with.
pub const PREFIX: &str = "/_dofs";

/// What the console's handlers read: the data directory, the runtime's
/// clock (the metric windows end at its "now") and the alarms it evaluates
/// (their definitions, for the alarm charts).
#[derive(Clone)]
pub struct ConsoleState {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub alarms: Arc<Vec<Alarm>>,
    /// For the queue actions.
    pub queues: Queues,
    pub token: queues::CsrfToken,
    pub functions: FunctionsView,
}

/// What the console can see of the functions at run time: which event
/// source mappings are off and which faults are injected. A waiting
/// order's page says from it why the order waits, instead of guessing.
#[derive(Debug, Clone, Default)]
pub struct FunctionsView {
    pub faults: crate::faults::Faults,
    /// The mappings `dofs serve --disable-mapping` left off for the run.
    pub disabled_mappings: Vec<crate::identity::FunctionName>,
}

/// Why a function is not doing its work, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Trouble {
    pub words: String,
    /// Whether its queue is still polled (a failing function still
    /// receives, fails and is retried; a disabled mapping receives nothing).
    pub polled: bool,
}

impl FunctionsView {
    /// What keeps `function` from working, if anything does: a mapping
    /// disabled at start or by a fault, or the injected fault by name.
    pub(super) fn trouble(&self, function: crate::identity::FunctionName) -> Option<Trouble> {
        use crate::faults::FaultKind;
        let name = function.as_str();
        if self.disabled_mappings.contains(&function) {
            return Some(Trouble {
                words: format!(
                    "the {name} mapping is disabled (dofs serve --disable-mapping {name})"
                ),
                polled: false,
            });
        }
        let kind = self.faults.of(function)?;
        let what = match kind {
            FaultKind::Disabled => format!("the {name} mapping is disabled"),
            FaultKind::Failing => format!("{name} is failing"),
            FaultKind::Unavailable => format!("{name}'s tables are unavailable"),
            FaultKind::Slow => format!("{name} times out"),
            FaultKind::Throttled => format!("{name} is throttled"),
        };
        Some(Trouble {
            words: format!("{what} (injected fault: {name}={})", kind.as_str()),
            polled: kind != FaultKind::Disabled,
        })
    }
}

impl FromRef<ConsoleState> for FunctionsView {
    fn from_ref(state: &ConsoleState) -> FunctionsView {
        state.functions.clone()
    }
}

impl FromRef<ConsoleState> for queues::CsrfToken {
    fn from_ref(state: &ConsoleState) -> queues::CsrfToken {
        state.token.clone()
    }
}

impl FromRef<ConsoleState> for Arc<Vec<Alarm>> {
    fn from_ref(state: &ConsoleState) -> Arc<Vec<Alarm>> {
        Arc::clone(&state.alarms)
    }
}

impl FromRef<ConsoleState> for Db {
    fn from_ref(state: &ConsoleState) -> Db {
        state.db.clone()
    }
}

impl FromRef<ConsoleState> for Arc<dyn Clock> {
    fn from_ref(state: &ConsoleState) -> Arc<dyn Clock> {
        Arc::clone(&state.clock)
    }
}

/// The console's routes, to merge into the gateway's router.
pub fn router(
    db: Db,
    clock: Arc<dyn Clock>,
    alarms: Arc<Vec<Alarm>>,
    queues: Queues,
    functions: FunctionsView,
) -> Router {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::to("/_dofs/") }))
        .route("/_dofs/", get(pages::overview))
        .route("/_dofs/orders", get(pages::orders_page))
        .route("/_dofs/orders/{order_id}", get(pages::order_page))
        .route("/_dofs/metrics", get(pages::metrics_page))
        .route("/_dofs/alarms", get(pages::alarms_page))
        .route("/_dofs/static/{name}", get(assets::static_file))
        .route("/_dofs/queues", get(queues::queues_page))
        .route("/_dofs/queues/redrive", post(queues::redrive))
        .route("/_dofs/queues/purge", post(queues::purge))
        .route("/_dofs/api/orders", get(api::orders_json))
        .route("/_dofs/api/orders/{order_id}", get(api::order_json))
        .route("/_dofs/api/metrics", get(api::metrics_json))
        .route("/_dofs/api/alarms", get(api::alarms_json))
        .with_state(ConsoleState {
            db,
            clock,
            alarms,
            queues,
            token: queues::CsrfToken::new(),
            functions,
        })
}

/// The fixture the page and API tests share: a fresh data directory
/// behind the whole [`router`], so a test goes through the route table as
/// a browser would.
#[cfg(test)]
mod testing {
    use axum::http::{Request, StatusCode};
    use axum::Router;
    use dofs_core::{testkit, OrderStatus, OrderStore as _};
    use tower::ServiceExt as _;

    use crate::services::dynamodb::SqliteOrderStore;
    use crate::store::Db;

    /// Markup in stored text, which every page must show as text.
    pub(super) const EVIL: &str = "<b>evil</b>";

    /// A router over a data directory holding one `PENDING` order whose
    /// latest status change has [`EVIL`] as its reason (order ids cannot
    /// hold markup, free text can). Returns the directory to keep it alive.
    pub(super) async fn seeded() -> (tempfile::TempDir, Router, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut order = testkit::sample_order(OrderStatus::Pending);
        order.history.last_mut().unwrap().reason = Some(EVIL.to_owned());
        SqliteOrderStore::new(db.clone())
            .insert(&order)
            .await
            .unwrap();
        (
            dir,
            super::router(
                db.clone(),
                std::sync::Arc::new(dofs_core::SystemClock),
                std::sync::Arc::new(
                    crate::observability::alarms::load(
                        crate::definitions::ALARMS_JSON,
                        &crate::observability::alarms::Bindings::local(),
                        1.0,
                    )
                    .unwrap(),
                ),
                crate::services::sqs::Queues::new(
                    db,
                    std::sync::Arc::new(dofs_core::SystemClock),
                    "http://127.0.0.1",
                ),
                super::FunctionsView::default(),
            ),
            order.order_id.to_string(),
        )
    }

    pub(super) async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri).body(axum::body::Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}
