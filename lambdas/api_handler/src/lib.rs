//! api_handler: the HTTP face of DOFS, behind an API Gateway HTTP API
//! (payload format 2.0).
//!
//! - `POST /orders`: checks the request (content type, size, JSON, schema),
//!   assigns the order id (random, or derived from an `Idempotency-Key`),
//!   starts the order workflow with the trace header and records the order
//!   as RECEIVED (a conditional put), answering `202`. Idempotency and the
//!   `GET` of a just-accepted order rest on that record, not on execution
//!   names, so they hold for Express workflows too.
//! - `GET /orders/{order_id}`: the stored order with its status history
//!   (from the RECEIVED record `POST` writes before it starts the workflow).
//!
//! API Gateway sends both routes *and* its `$default` route here, so this
//! module routes on method + `raw_path` itself and answers unknown routes
//! (404) and wrong methods (405 with `Allow`). Client mistakes always get a
//! JSON error body `{"error": {"code", "message", "details"}}`, never a 5xx;
//! `openapi.yaml` beside this crate describes every response, and the
//! crate's tests check the handler against it.
//!
//! **Tracing.** HTTP APIs do not support X-Ray
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-vs-rest.html>),
//! so Lambda samples this function at its default rule (1 request per
//! second and 5 % of the rest) and says `Sampled=0` for the others. The
//! order's trace is therefore decided here, per order ([`TraceSampling`]:
//! `ORDER_TRACE_SAMPLE_RATE`, every order by default) and started here
//! ([`dofs_telemetry::context::start_order_trace`]): in Lambda's trace when
//! Lambda sampled the request, else as the root of a trace of its own. The
//! execution is started with it, and the 202's `trace_id` names it — a
//! trace that will exist — or is absent when the order is not sampled. An
//! idempotent replay answers with the order's trace (kept on the order as
//! `trace_id`), not the retry's. A status read is annotated
//! `polled_order_id`, never `order_id`, so `annotation.order_id` finds the
//! journey alone. The invocation's segment carries the HTTP exchange
//! (method, URL, status; the route as metadata).

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use dofs_core::validation::{parse_json_body, validate_order_request};
use dofs_core::{
    Clock, ErrorKind, FieldError, InsertOutcome, Order, OrderId, OrderRequest, OrderStatus,
    OrderStore, PortError, StartOutcome, Workflow,
};
use dofs_telemetry::context::{
    record_failure, record_http, record_order_id, record_polled_order_id, start_order_trace,
    FailureKind,
};
use dofs_telemetry::{metric, TraceHeader};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::Method;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use tracing::field::Empty;
use tracing::Instrument as _;

/// Largest accepted request body, after base64 decoding.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
/// How long an order may stay RECEIVED before an idempotent retry starts
/// its workflow again: past an Express execution's 5-minute limit, so a
/// live execution is never doubled by a retry.
pub const RESTART_STUCK_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(6);
/// The request header that makes `POST /orders` idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header set when a retry returns an existing order.
pub const IDEMPOTENT_REPLAY: &str = "idempotent-replay";

/// The API's handler: routes a request and turns every outcome, good or bad,
/// into a JSON response.
pub struct ApiHandler {
    workflow: Arc<dyn Workflow>,
    orders: Arc<dyn OrderStore>,
    clock: Arc<dyn Clock>,
    sampling: TraceSampling,
}

/// Which orders are traced in X-Ray: a share `rate` of them, decided from
/// the order id (so a retry of the same order gets the same decision).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraceSampling {
    rate: f64,
}

impl Default for TraceSampling {
    /// Every order.
    fn default() -> Self {
        Self { rate: 1.0 }
    }
}

impl TraceSampling {
    /// `rate` in `[0, 1]` (outside, it is clamped; NaN traces nothing).
    pub fn new(rate: f64) -> Self {
        Self {
            rate: if rate.is_nan() {
                0.0
            } else {
                rate.clamp(0.0, 1.0)
            },
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether `order_id`'s journey is traced.
    pub fn traces(&self, order_id: &OrderId) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        if self.rate <= 0.0 {
            return false;
        }
        // FNV-1a: stable across processes and versions, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in order_id.as_str().bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        ((hash >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }
}

/// `202` body of `POST /orders`. `trace_id` is the order's X-Ray trace, and
/// absent when the order is not traced.
#[derive(Debug, Serialize)]
struct Accepted<'a> {
    order_id: &'a OrderId,
    status: OrderStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

/// The routes this API knows, by path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Orders,
    Order(&'a str),
}

impl Route<'_> {
    fn allowed(&self) -> &'static str {
        match self {
            Route::Orders => "POST",
            Route::Order(_) => "GET, HEAD",
        }
    }

    /// The route as the API declares it (`http.route`).
    fn template(&self) -> &'static str {
        match self {
            Route::Orders => "/orders",
            Route::Order(_) => "/orders/{order_id}",
        }
    }
}

fn route(path: &str) -> Option<Route<'_>> {
    // API Gateway passes the path as sent; tolerate one trailing slash.
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    match path.strip_prefix("/orders") {
        Some("") => Some(Route::Orders),
        Some(rest) => rest
            .strip_prefix('/')
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .map(Route::Order),
        None => None,
    }
}

/// Every way a request can fail, mapped to an HTTP status in one place
/// ([`ApiError::status`]).
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}; allowed: {allow}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("request body is not valid JSON: {}", .0.message)]
    MalformedJson(FieldError),
    #[error("the order is invalid")]
    Validation(Vec<FieldError>),
    #[error("the Idempotency-Key header is invalid")]
    InvalidIdempotencyKey(String),
    #[error("this Idempotency-Key was already used for a different order")]
    IdempotencyConflict,
    #[error("invalid order id")]
    InvalidOrderId(String),
    #[error("order {0} not found")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl ApiError {
    fn status(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::OrderNotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::UnsupportedMediaType => 415,
            ApiError::PayloadTooLarge => 413,
            ApiError::MalformedJson(_)
            | ApiError::Validation(_)
            | ApiError::InvalidIdempotencyKey(_)
            | ApiError::InvalidOrderId(_) => 400,
            ApiError::IdempotencyConflict => 409,
            ApiError::Port(err) if err.kind == ErrorKind::Transient => 503,
            ApiError::Port(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Validation(_) => "validation_failed",
            ApiError::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            ApiError::IdempotencyConflict => "idempotency_conflict",
            ApiError::InvalidOrderId(_) => "invalid_order_id",
            ApiError::OrderNotFound(_) => "order_not_found",
            ApiError::Port(err) if err.kind == ErrorKind::Transient => "service_unavailable",
            ApiError::Port(err) if err.kind == ErrorKind::DataCorrupt => "storage_corrupt",
            ApiError::Port(_) => "internal_error",
        }
    }

    /// Field-level details; single-field errors name their field too, so a
    /// client can always point at what to fix.
    fn details(&self) -> Vec<FieldError> {
        let one = |field: &str, message: &str| {
            vec![FieldError {
                field: field.to_owned(),
                message: message.to_owned(),
            }]
        };
        match self {
            ApiError::Validation(errors) => errors.clone(),
            ApiError::InvalidIdempotencyKey(why) => one("Idempotency-Key", why),
            ApiError::InvalidOrderId(why) => one("order_id", why),
            ApiError::MalformedJson(error) => vec![error.clone()],
            _ => Vec::new(),
        }
    }

    /// Whether the request, rather than the service, was at fault.
    fn is_client_error(&self) -> bool {
        self.status() < 500
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    code: &'a str,
    message: String,
    details: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

/// A response being built.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(status: u16, body: &impl Serialize) -> Self {
        // Our own response types always serialize; if one ever does not,
        // that is a bug worth a 500 rather than a panic.
        let (status, body) = match serde_json::to_string(body) {
            Ok(text) => (status, text),
            Err(err) => {
                tracing::error!(error = %err, "could not serialize a response body");
                (
                    500,
                    r#"{"error":{"code":"internal_error","message":"internal error","details":[]}}"#
                        .to_owned(),
                )
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), value);
        }
        self
    }

    fn into_response(self) -> ApiGatewayV2httpResponse {
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = i64::from(self.status);
        response.headers = self.headers;
        response.body = Some(Body::Text(self.body));
        response.is_base64_encoded = false;
        response
    }
}

fn error_reply(err: &ApiError, request_id: &str) -> Reply {
    let message = match err {
        // Never leak internals: the details are in the log, under the request id.
        ApiError::Port(_) if err.status() == 503 => {
            "the service is temporarily unavailable; retry later".to_owned()
        }
        ApiError::Port(port) if port.kind == ErrorKind::DataCorrupt => {
            "stored data is damaged; retrying cannot help".to_owned()
        }
        ApiError::Port(_) => "internal error".to_owned(),
        other => other.to_string(),
    };
    let request_id = (!err.is_client_error() && !request_id.is_empty()).then_some(request_id);
    let reply = Reply::json(
        err.status(),
        &ErrorBody {
            error: ErrorObject {
                code: err.code(),
                message,
                details: err.details(),
                request_id,
            },
        },
    );
    match err {
        ApiError::MethodNotAllowed { allow, .. } => reply.header("allow", allow),
        ApiError::Port(_) if err.status() == 503 => reply.header("retry-after", "1"),
        _ => reply,
    }
}

/// Whether a `Content-Type` value is JSON: `application/json`, any case,
/// with or without parameters such as `charset=utf-8`.
fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The `Idempotency-Key`, if sent once: 1–255 printable ASCII characters,
/// no comma, not starting or ending with a space.
///
/// API Gateway joins a repeated header's values with commas
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>),
/// and so does the local gateway: two keys would arrive as one key `a,b`
/// naming neither order. A comma is therefore refused, and so the repeat.
/// HTTP drops a value's surrounding blanks
/// (<https://www.rfc-editor.org/rfc/rfc9110#section-5.5>), so a key that
/// had them could not arrive as written.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey("must be sent once".into()));
    }
    let key = value.to_str().map_err(|_| {
        ApiError::InvalidIdempotencyKey("must contain printable ASCII characters only".into())
    })?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(ApiError::InvalidIdempotencyKey(format!(
            "must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters long"
        )));
    }
    if !key.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(ApiError::InvalidIdempotencyKey(
            "must contain printable ASCII characters only".into(),
        ));
    }
    if key.contains(',') {
        return Err(ApiError::InvalidIdempotencyKey(
            "must be sent once and contain no comma (repeated headers arrive joined by commas)"
                .into(),
        ));
    }
    if key.starts_with(' ') || key.ends_with(' ') {
        return Err(ApiError::InvalidIdempotencyKey(
            "must not start or end with a space".into(),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// The request body as bytes, decoded from base64 when API Gateway encoded it.
fn body_bytes(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
    let Some(body) = request.body.as_deref() else {
        return Ok(Vec::new());
    };
    if !request.is_base64_encoded {
        return Ok(body.as_bytes().to_vec());
    }
    // 4 base64 characters carry 3 bytes: refuse oversized bodies before
    // decoding them.
    if body.len() / 4 * 3 > MAX_BODY_BYTES + 3 {
        return Err(ApiError::PayloadTooLarge);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| {
            ApiError::MalformedJson(FieldError {
                field: "$".to_owned(),
                message: format!("body is not valid base64: {e}"),
            })
        })
}

/// The request's URL as X-Ray's `http.request.url` wants it: the
/// protocol, the host API Gateway was called on (`domainName`) and the
/// path — no query string. HTTP APIs serve HTTPS only. Without a
/// `domainName` (a hand-made event), the path alone.
fn request_url(request: &ApiGatewayV2httpRequest, path: &str) -> String {
    match request.request_context.domain_name.as_deref() {
        Some(domain) if !domain.is_empty() => format!("https://{domain}{path}"),
        _ => path.to_owned(),
    }
}

/// The order's trace when spans are not traced at all (no telemetry
/// installed): Lambda's header when Lambda sampled it and so do we, else a
/// header saying what we decided — in Lambda's trace, or a new one, since
/// HTTP APIs start none.
fn untraced_header(xray_trace_id: Option<&str>, sampled: bool) -> TraceHeader {
    let lambda = match xray_trace_id.map(str::parse::<TraceHeader>) {
        Some(Ok(header)) => Some(header),
        Some(Err(err)) => {
            tracing::warn!(error = %err, "ignoring a malformed trace header; starting a new trace");
            None
        }
        None => None,
    };
    match lambda {
        Some(header) if sampled && header.sampled != Some(false) => header,
        Some(header) if !sampled => TraceHeader {
            sampled: Some(false),
            ..header
        },
        _ => TraceHeader {
            sampled: Some(sampled),
            ..TraceHeader::new_root()
        },
    }
}

/// The header a restarted workflow continues: the order's own trace (with
/// no parent, the request that began it being gone), or a new unsampled one.
fn restart_header(trace_id: Option<&str>) -> String {
    match trace_id {
        Some(root) => TraceHeader {
            root: root.to_owned(),
            parent: None,
            sampled: Some(true),
            lineage: None,
        },
        None => TraceHeader {
            sampled: Some(false),
            ..TraceHeader::new_root()
        },
    }
    .to_string()
}

/// The trace id a client may look up: the header's root when it is sampled.
fn traced_root(header: &TraceHeader) -> Option<&str> {
    (header.sampled != Some(false)).then_some(header.root.as_str())
}

impl ApiHandler {
    pub fn new(
        workflow: Arc<dyn Workflow>,
        orders: Arc<dyn OrderStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            workflow,
            orders,
            clock,
            sampling: TraceSampling::default(),
        }
    }

    /// Traces the share of orders `sampling` says (every order by default).
    pub fn with_trace_sampling(mut self, sampling: TraceSampling) -> Self {
        self.sampling = sampling;
        self
    }

    /// Never fails for client input: every error becomes a JSON HTTP
    /// response. `Err` would mean a bug; today there is none that reaches here.
    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayV2httpRequest>,
    ) -> Result<ApiGatewayV2httpResponse, PortError> {
        let request = &event.payload;
        let method = request.request_context.http.method.clone();
        let path = request
            .raw_path
            .as_deref()
            .or(request.request_context.http.path.as_deref())
            .unwrap_or("/");
        let request_id = event.context.request_id.as_str();
        let invocation = tracing::Span::current();
        let reply = match self
            .dispatch(
                &method,
                path,
                request,
                event.context.xray_trace_id.as_deref(),
            )
            .await
        {
            Ok(reply) => reply,
            Err(err) => {
                if err.is_client_error() {
                    if matches!(err.status(), 400 | 409 | 413 | 415) {
                        metrics::counter!(metric::REQUESTS_INVALID).increment(1);
                    }
                    tracing::info!(status = err.status(), code = err.code(), %method, path, "request refused");
                } else if let ApiError::Port(port) = &err {
                    tracing::error!(
                        status = err.status(),
                        error_type = port.error_type(),
                        error = %port.chain(),
                        "request failed"
                    );
                }
                record_failure_of(&invocation, &err);
                error_reply(&err, request_id)
            }
        };
        let route_template = route(path)
            .map(|r| r.template())
            .or(request.route_key.as_deref())
            .unwrap_or("$default");
        let url = request_url(request, path);
        record_http(
            &invocation,
            method.as_str(),
            &url,
            route_template,
            reply.status,
        );
        Ok(reply.into_response())
    }

    async fn dispatch(
        &self,
        method: &Method,
        path: &str,
        request: &ApiGatewayV2httpRequest,
        xray_trace_id: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let Some(route) = route(path) else {
            return Err(ApiError::NotFound {
                method: method.to_string(),
                path: path.to_owned(),
            });
        };
        match (&route, method) {
            (Route::Orders, &Method::POST) => self.submit(request, xray_trace_id).await,
            // HEAD is GET without the body (RFC 9110 §9.3.2); the HTTP
            // layer drops the body.
            (Route::Order(id), &Method::GET | &Method::HEAD) => self.get_order(id).await,
            _ => Err(ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_owned(),
                allow: route.allowed(),
            }),
        }
    }

    /// `POST /orders`: checks the request, then replays an existing order or
    /// starts one in a trace of its own deciding (see the crate docs).
    async fn submit(
        &self,
        request: &ApiGatewayV2httpRequest,
        xray_trace_id: Option<&str>,
    ) -> Result<Reply, ApiError> {
        if !is_json_content_type(&request.headers) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let key = idempotency_key(&request.headers)?;
        let bytes = body_bytes(request)?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        let body = parse_json_body(&bytes).map_err(ApiError::MalformedJson)?;
        let order_request =
            validate_order_request(&body).map_err(|e| ApiError::Validation(e.errors))?;

        let order_id = match &key {
            Some(key) => OrderId::from_idempotency_key(key),
            None => OrderId::generate(),
        };
        // A retry is a read of an order that has its trace already.
        if key.is_some() {
            if let Some(existing) = self.orders.get(&order_id).await? {
                return self.replay(existing, &order_request).await;
            }
        }
        let sampled = self.sampling.traces(&order_id);
        let span = tracing::info_span!(
            "api_handler.submit_order",
            otel.kind = Empty,
            order_id = %order_id,
            trace_id = Empty,
        );
        // The workflow's parent: this span, in the trace it starts. Sent in
        // place of Lambda's header, so it carries on Lambda's `Lineage`.
        let lambda = xray_trace_id.and_then(|h| h.parse::<TraceHeader>().ok());
        let trace = start_order_trace(&span, sampled)
            .unwrap_or_else(|| untraced_header(xray_trace_id, sampled))
            .with_lineage_of(lambda.as_ref());
        record_order_id(&span, order_id.as_str());
        let result = self
            .accept(order_id, order_request, key.is_some(), &trace)
            .instrument(span.clone())
            .await;
        let status = match &result {
            Ok(reply) => reply.status,
            Err(err) => {
                record_failure_of(&span, err);
                err.status()
            }
        };
        record_http(
            &span,
            "POST",
            &request_url(request, Route::Orders.template()),
            Route::Orders.template(),
            status,
        );
        result
    }

    /// Starts the order's workflow, then records the order as RECEIVED (a
    /// conditional put), then answers 202. In that order so that nothing is
    /// recorded for a workflow that never started (a failed start, or a
    /// crash between the two calls leaves no RECEIVED order that nothing
    /// would ever settle), and the order is readable before the 202 whatever
    /// the workflow type: an Express execution cannot be described, may be
    /// started more than once, and its name is not deduplicated (see
    /// docs/architecture.md, "Express workflows"). The workflow's first write
    /// may land before the record; the record then finds the order stored.
    async fn accept(
        &self,
        order_id: OrderId,
        request: OrderRequest,
        idempotent: bool,
        trace: &TraceHeader,
    ) -> Result<Reply, ApiError> {
        let order = Order::new(order_id.clone(), request.clone(), self.clock.now())
            .with_trace_id(traced_root(trace).map(str::to_owned));
        match self
            .workflow
            .start(&order.submission(), Some(&trace.to_string()))
            .await?
        {
            StartOutcome::Started => {}
            // A Standard execution of this name runs with another input: a
            // rival request with the same key started it; its record decides.
            StartOutcome::AlreadyExists if idempotent => {}
            StartOutcome::AlreadyExists => {
                return Err(PortError::internal(format!(
                    "a freshly generated order id {order_id} already names an execution"
                ))
                .into())
            }
        }
        match self.orders.insert(&order).await? {
            InsertOutcome::Inserted => {}
            // Our own workflow stored the order first: same order, our trace.
            InsertOutcome::AlreadyExists(existing)
                if existing.trace_id == order.trace_id
                    && existing.created_at == order.created_at => {}
            // A rival request with the same key recorded first.
            InsertOutcome::AlreadyExists(existing) if idempotent => {
                return self.replay(existing, &request).await;
            }
            InsertOutcome::AlreadyExists(_) => {
                return Err(PortError::internal(format!(
                    "a freshly generated order id {order_id} is already stored"
                ))
                .into())
            }
        }
        metrics::counter!(metric::ORDERS_ACCEPTED).increment(1);
        tracing::info!(order_id = %order_id, trace_id = %trace.root, sampled = trace.sampled != Some(false), "order accepted");
        Ok(accepted(&order_id, traced_root(trace)))
    }

    /// An idempotent request for an order already recorded: the same order
    /// again (a replay, answered with the order's trace id), or a conflict.
    /// An order still RECEIVED after [`RESTART_STUCK_AFTER`] has lost its
    /// execution (an Express execution ends within 5 minutes, and no step
    /// ran), so the retry starts the workflow again; a Standard execution of
    /// that name absorbs the start if it still runs.
    async fn replay(&self, existing: Order, request: &OrderRequest) -> Result<Reply, ApiError> {
        let order_id = existing.order_id.clone();
        let span = tracing::info_span!("api_handler.replay", order_id = %order_id);
        record_polled_order_id(&span, order_id.as_str());
        if existing.request() != *request {
            let _entered = span.enter();
            tracing::info!(order_id = %order_id, "idempotency key reused for a different order");
            return Err(ApiError::IdempotencyConflict);
        }
        if existing.status == OrderStatus::Received
            && self.clock.now() - existing.created_at >= RESTART_STUCK_AFTER
        {
            let header = restart_header(existing.trace_id.as_deref());
            self.workflow
                .start(&existing.submission(), Some(&header))
                .instrument(span.clone())
                .await?;
            let _entered = span.enter();
            tracing::warn!(order_id = %order_id, "an order RECEIVED for too long: its workflow was started again");
        }
        let _entered = span.enter();
        metrics::counter!(metric::IDEMPOTENT_REPLAYS).increment(1);
        tracing::info!(order_id = %order_id, "idempotent replay");
        Ok(accepted(&order_id, existing.trace_id.as_deref()).header(IDEMPOTENT_REPLAY, "true"))
    }

    /// `GET /orders/{order_id}`: the orders table alone, which has every
    /// accepted order from its RECEIVED record on.
    async fn get_order(&self, raw_id: &str) -> Result<Reply, ApiError> {
        let order_id =
            OrderId::parse(raw_id).map_err(|e| ApiError::InvalidOrderId(e.to_string()))?;
        let span = tracing::info_span!("api_handler.get_order", order_id = %order_id);
        // Not `order_id`: a poll is not the order's journey.
        record_polled_order_id(&span, order_id.as_str());
        async {
            match self.orders.get(&order_id).await? {
                Some(order) => Ok(Reply::json(200, &order)),
                None => Err(ApiError::OrderNotFound(order_id.clone())),
            }
        }
        .instrument(span)
        .await
    }
}

/// Marks `span` failed as X-Ray should show it: the service's fault for a
/// 5xx, the client's error for a 4xx, the error as the cause.
fn record_failure_of(span: &tracing::Span, err: &ApiError) {
    match err {
        ApiError::Port(port) if !err.is_client_error() => {
            record_failure(span, FailureKind::Fault, port.error_type(), &port.chain());
        }
        _ => record_failure(span, FailureKind::Error, err.code(), &err.to_string()),
    }
}

fn accepted(order_id: &OrderId, trace_id: Option<&str>) -> Reply {
    Reply::json(
        202,
        &Accepted {
            order_id,
            status: OrderStatus::Received,
            trace_id,
        },
    )
    .header("location", &format!("/orders/{order_id}"))
}

#[cfg(test)]
mod tests;
