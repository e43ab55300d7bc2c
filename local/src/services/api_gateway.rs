//! The API Gateway HTTP API stand-in: every request, whatever its method and
//! path, becomes an `ApiGatewayV2httpRequest` (payload format 2.0) for
//! api_handler, and its response goes back out as HTTP.
//!
//! The event follows
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>:
//! `routeKey` is the matched route (`POST /orders`, `GET /orders/{order_id}`)
//! or `$default`; header names are lower-cased and repeated headers joined
//! with commas; cookies move to `cookies`; a body is text when it is valid
//! UTF-8 with a textual content type, otherwise base64 with
//! `isBase64Encoded`. Like API Gateway, the gateway itself refuses bodies over
//! its limit before the function runs (413, JSON), and answers 500
//! `{"message":"Internal Server Error"}` when the integration fails.
//!
//! HTTP APIs have no X-Ray support, so the gateway mints the trace header
//! for each request, in a trace of its own, and passes it as the
//! invocation's trace id, where api_handler starts the order's trace. A
//! client's `X-Amzn-Trace-Id` or W3C `traceparent` (what an OpenTelemetry
//! client sends) is only linked, never continued: it could name
//! another order's trace, and a new order must not join it because a client
//! said so.
//! With telemetry installed, the gateway's own span (`api_gateway`, with
//! method, route, status and, once known, the order) is that header's
//! parent, so the trace's root is stored with the rest of it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use dofs_core::Clock;
use dofs_telemetry::TraceHeader;
use serde_json::{json, Map, Value};
use tower_http::limit::RequestBodyLimitLayer;
use tracing::field::Empty;
use tracing::Instrument;

use crate::observability::metrics::ServiceMetrics;
use crate::observability::usage::UsageMeter;
use crate::services::lambda::{FunctionError, FunctionName, Functions};

/// Largest request body the gateway passes on: API Gateway's HTTP API
/// payload quota, 10 MB
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html>).
/// api_handler refuses far less (64 KiB), and on AWS its 413 is the one a
/// client sees; here too.
pub const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// API Gateway's quota on the request line and the header values taken
/// together: 10,240 bytes (same quotas page). The status AWS answers past it
/// is not documented; the gateway answers 414 `uri_too_long` when the
/// request line alone is over it, else 431 `request_header_fields_too_large`,
/// both with the API's JSON error body (chosen by the codes' HTTP meaning).
pub const HEAD_LIMIT: usize = 10_240;

/// The gateway's state.
pub struct Gateway {
    functions: Arc<Functions>,
    clock: Arc<dyn Clock>,
    usage: UsageMeter,
}

/// The axum router of the gateway.
pub fn router(functions: Arc<Functions>, metrics: ServiceMetrics, clock: Arc<dyn Clock>) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(Gateway {
            functions,
            clock,
            usage: metrics.usage(),
        }))
        // Outermost last: the JSON rewrite must wrap the limit layer to see
        // its plain-text 413.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::middleware::map_response(json_payload_too_large))
        .layer(axum::middleware::from_fn(head_quota))
        // Outermost: counts every response, the 413s included.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::observability::metrics::api_gateway_layer,
        ))
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    // The same shape as api_handler's errors (`details` always present).
    let body = json!({"error": {"code": code, "message": message, "details": []}});
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// Refuses a request whose request line and header values exceed
/// [`HEAD_LIMIT`], before anything reads it.
async fn head_quota(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // "GET /path?q HTTP/1.1": method, target and version with two spaces.
    let target = request
        .uri()
        .path_and_query()
        .map_or(1, |target| target.as_str().len());
    let line = request.method().as_str().len() + target + " HTTP/1.1".len() + 1;
    let values: usize = request.headers().values().map(HeaderValue::len).sum();
    if line > HEAD_LIMIT {
        return error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("the request line is {line} bytes; at most {HEAD_LIMIT} are accepted"),
        );
    }
    if line + values > HEAD_LIMIT {
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            &format!(
                "the request line and header values are {} bytes; at most {HEAD_LIMIT} are accepted",
                line + values
            ),
        );
    }
    next.run(request).await
}

/// How long the gateway waits for a whole request body (an extension set
/// by the runtime; none: no bound beyond the server's idle timeout).
#[derive(Debug, Clone, Copy)]
pub struct BodyReadTimeout(pub std::time::Duration);

fn payload_too_large() -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("the request body exceeds {BODY_LIMIT} bytes"),
    )
}

/// tower-http answers an over-long `Content-Length` with a plain-text 413
/// before any handler runs; clients of this API get JSON errors only.
async fn json_payload_too_large(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        payload_too_large()
    } else {
        response
    }
}

/// Whether reading a body failed on the size limit (tower-http's or
/// `to_bytes`'), as opposed to a broken or malformed body.
fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// API Gateway's route key for this request, and its path parameters.
pub fn route(method: &Method, path: &str) -> (String, Map<String, Value>) {
    let mut params = Map::new();
    if method == Method::POST && path == "/orders" {
        return ("POST /orders".into(), params);
    }
    if method == Method::GET {
        if let Some(id) = path.strip_prefix("/orders/") {
            if !id.is_empty() && !id.contains('/') {
                params.insert("order_id".into(), Value::String(id.to_owned()));
                return ("GET /orders/{order_id}".into(), params);
            }
        }
    }
    ("$default".into(), params)
}

fn is_textual(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return true;
    };
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.starts_with("application/x-www-form-urlencoded")
}

/// What the gateway knows of one request when it builds the event.
pub struct GatewayRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
    pub request_id: &'a str,
    /// When the request arrived (`requestContext.time` / `timeEpoch`).
    pub at: DateTime<Utc>,
}

/// Builds the payload-2.0 event for one request
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>).
pub fn build_event(request: &GatewayRequest<'_>) -> Value {
    let (headers, cookies) = header_map_and_cookies(request.headers);
    let query_params = query_parameters(request.query);
    let (route_key, path_params) = route(request.method, request.path);
    let (body, is_base64) = body_field(request.headers, request.body);
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": request_context(request, &route_key),
        "isBase64Encoded": is_base64,
    });
    if let Some(map) = event.as_object_mut() {
        if !cookies.is_empty() {
            map.insert("cookies".into(), json!(cookies));
        }
        if !query_params.is_empty() {
            map.insert("queryStringParameters".into(), Value::Object(query_params));
        }
        if !path_params.is_empty() {
            map.insert("pathParameters".into(), Value::Object(path_params));
        }
        if !body.is_null() {
            map.insert("body".into(), body);
        }
    }
    event
}

/// Headers as payload 2.0 has them: lower-case names, repeated headers
/// joined with commas, and `Cookie` moved to its own `cookies` list.
fn header_map_and_cookies(headers: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut header_map = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        match header_map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                header_map.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    (header_map, cookies)
}

/// `queryStringParameters`: repeated keys joined with commas.
fn query_parameters(query: &str) -> Map<String, Value> {
    let mut params = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match params.get_mut(k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(v);
            }
            _ => {
                params.insert(k.to_owned(), Value::String(v.to_owned()));
            }
        }
    }
    params
}

/// The body as text when the content type is textual, else base64.
fn body_field(headers: &HeaderMap, body: &[u8]) -> (Value, bool) {
    if body.is_empty() {
        return (Value::Null, false);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match std::str::from_utf8(body) {
        Ok(text) if is_textual(content_type) => (Value::String(text.to_owned()), false),
        _ => (Value::String(BASE64.encode(body)), true),
    }
}

fn request_context(request: &GatewayRequest<'_>, route_key: &str) -> Value {
    let header_text = |name: header::HeaderName| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    json!({
        "accountId": crate::identity::ACCOUNT_ID,
        "apiId": crate::identity::API_ID,
        "domainName": header_text(header::HOST).unwrap_or_else(|| "localhost".to_owned()),
        "domainPrefix": crate::identity::API_ID,
        "stage": "$default",
        "requestId": request.request_id,
        "routeKey": route_key,
        "time": request.at.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": request.at.timestamp_millis(),
        "http": {
            "method": request.method.as_str(),
            "path": request.path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": header_text(header::USER_AGENT).unwrap_or_default(),
        },
    })
}

/// A header's value, if it is text.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The caller's trace, if it sent a valid `X-Amzn-Trace-Id`.
fn incoming_trace(headers: &HeaderMap) -> Option<TraceHeader> {
    header_str(headers, "x-amzn-trace-id").and_then(|v| v.parse::<TraceHeader>().ok())
}

/// Puts the response status and the order (from an accepted order's body,
/// or the path of a status read) on the gateway span.
fn record_outcome(span: &tracing::Span, path: &str, result: &Result<Value, FunctionError>) {
    let Ok(response) = result else {
        span.record("http.status", 500);
        span.record("otel.status_code", "ERROR");
        return;
    };
    let status = response.get("statusCode").and_then(Value::as_i64);
    if let Some(status) = status {
        span.record("http.status", status);
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    let from_body = response
        .get("body")
        .and_then(Value::as_str)
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| body.get("order_id")?.as_str().map(str::to_owned));
    let from_path = path
        .strip_prefix("/orders/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(str::to_owned);
    if let Some(order_id) = from_body
        .or(from_path)
        .filter(|_| status.is_some_and(|s| s < 400))
    {
        dofs_telemetry::record_order_id(span, &order_id);
    }
}

/// The trace header for one request when spans are not traced: a new trace
/// (never the caller's, see the module doc) with a fresh gateway segment as
/// parent.
pub fn trace_header_for() -> TraceHeader {
    let mut header =
        TraceHeader::new_root().with_parent(dofs_telemetry::trace_header::new_segment_id());
    header.sampled = Some(true);
    header
}

/// Turns api_handler's `ApiGatewayV2httpResponse` (as JSON) into HTTP.
pub fn to_http(response: &Value, request_id: &str) -> Option<Response> {
    let status =
        StatusCode::from_u16(u16::try_from(response.get("statusCode")?.as_i64()?).ok()?).ok()?;
    let mut builder = Response::builder().status(status);
    let mut has_content_type = false;
    for key in ["headers", "multiValueHeaders"] {
        if let Some(Value::Object(headers)) = response.get(key) {
            for (name, value) in headers {
                let values: Vec<&str> = match value {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                for v in values {
                    has_content_type |= name.eq_ignore_ascii_case("content-type");
                    builder = builder.header(name.as_str(), v);
                }
            }
        }
    }
    if let Some(Value::Array(cookies)) = response.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            builder = builder.header(header::SET_COOKIE, cookie);
        }
    }
    if !has_content_type {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder = builder.header("apigw-requestid", request_id);
    let body = match response.get("body") {
        Some(Value::String(text)) => {
            if response.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                Bytes::from(BASE64.decode(text).ok()?)
            } else {
                Bytes::from(text.clone())
            }
        }
        _ => Bytes::new(),
    };
    builder.body(Body::from(body)).ok()
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json!({"message": "Internal Server Error"}).to_string(),
    )
        .into_response()
}

async fn handle(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body_timeout: Option<axum::Extension<BodyReadTimeout>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // Refuse early on the declared length; the limit layer also stops a
    // body that lies about (or omits) its length while it is read.
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT) {
        return payload_too_large();
    }
    let read = axum::body::to_bytes(body, BODY_LIMIT);
    let read = match body_timeout {
        Some(axum::Extension(BodyReadTimeout(limit))) => {
            match tokio::time::timeout(limit, read).await {
                Ok(read) => read,
                Err(_) => {
                    return error_response(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        &format!("the request body did not arrive within {limit:?}"),
                    )
                }
            }
        }
        None => read.await,
    };
    let body = match read {
        Ok(body) => body,
        // Only the limit is a 413; a body that broke off or whose chunked
        // framing is malformed is the client's malformed request.
        Err(err) if is_length_limit(&err) => return payload_too_large(),
        Err(err) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                &format!("the request body could not be read: {err}"),
            )
        }
    };
    gateway.usage.api_request(body.len());
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        parent: None,
        "gateway",
        otel.name = crate::identity::GATEWAY_COMPONENT,
        otel.kind = "server",
        otel.status_code = Empty,
        function = crate::identity::GATEWAY_COMPONENT,
        http.method = %parts.method,
        http.route = Empty,
        http.status = Empty,
        path = parts.uri.path(),
        request_id = %request_id,
        trace_id = Empty,
    );
    if let Some(incoming) = incoming_trace(&parts.headers) {
        dofs_telemetry::context::link_to_header(&span, &incoming);
    }
    if let Some(traceparent) = header_str(&parts.headers, "traceparent") {
        let tracestate = header_str(&parts.headers, "tracestate");
        dofs_telemetry::context::link_to_traceparent(&span, traceparent, tracestate);
    }
    // The span's own context when spans are traced; else a minted header.
    let trace = span
        .in_scope(dofs_telemetry::outgoing_trace_header)
        .unwrap_or_else(trace_header_for);
    span.record("trace_id", trace.root.as_str());
    let event = build_event(&GatewayRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip: &peer.ip().to_string(),
        request_id: &request_id,
        at: gateway.clock.now(),
    });
    if let Some(route) = event.get("routeKey").and_then(Value::as_str) {
        span.record("http.route", route);
    }
    let result = gateway
        .functions
        .invoke(FunctionName::ApiHandler, event, Some(trace.to_string()))
        .instrument(span.clone())
        .await;
    record_outcome(&span, parts.uri.path(), &result);
    if let Ok(response) = &result {
        meter_acceptance(&gateway.usage, &parts.method, response);
    }
    match result {
        Ok(response) => to_http(&response, &request_id).unwrap_or_else(|| {
            tracing::error!(request_id = %request_id, "api_handler returned an invalid response");
            internal_error()
        }),
        Err(err) => {
            tracing::error!(request_id = %request_id, error_type = %err.error_type, "api_handler failed");
            internal_error()
        }
    }
}

/// A new order accepted: a `POST` answered 202 that is not an idempotent
/// replay; traced when the answer names its trace.
fn meter_acceptance(usage: &UsageMeter, method: &Method, response: &Value) {
    let accepted = *method == Method::POST
        && response.get("statusCode").and_then(Value::as_i64) == Some(202)
        && response
            .get("headers")
            .and_then(|h| h.get(api_handler::IDEMPOTENT_REPLAY))
            .is_none();
    if accepted {
        let traced = response
            .get("body")
            .and_then(Value::as_str)
            .and_then(|body| serde_json::from_str::<Value>(body).ok())
            .is_some_and(|body| body.get("trace_id").is_some_and(Value::is_string));
        usage.order_accepted(traced);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;

    #[test]
    fn route_keys_match_the_api_routes() {
        assert_eq!(route(&Method::POST, "/orders").0, "POST /orders");
        let (key, params) = route(&Method::GET, "/orders/abc");
        assert_eq!(key, "GET /orders/{order_id}");
        assert_eq!(params["order_id"], "abc");
        assert_eq!(route(&Method::GET, "/orders").0, "$default");
        assert_eq!(route(&Method::DELETE, "/orders/abc").0, "$default");
        assert_eq!(route(&Method::GET, "/orders/a/b").0, "$default");
    }

    fn request<'a>(
        method: &'a Method,
        path: &'a str,
        query: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> GatewayRequest<'a> {
        GatewayRequest {
            method,
            path,
            query,
            headers,
            body,
            source_ip: "127.0.0.1",
            request_id: "req-1",
            at: Utc::now(),
        }
    }

    #[test]
    fn builds_a_payload_v2_event_that_deserializes() {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", HeaderValue::from_static("application/json"));
        headers.append("X-Multi", HeaderValue::from_static("a"));
        headers.append("X-Multi", HeaderValue::from_static("b"));
        headers.insert("Cookie", HeaderValue::from_static("a=1; b=2"));
        let event = build_event(&request(
            &Method::GET,
            "/orders/o-1",
            "x=1&x=2&y=",
            &headers,
            b"",
        ));
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(event.clone()).unwrap();
        assert_eq!(typed.route_key.as_deref(), Some("GET /orders/{order_id}"));
        assert_eq!(typed.raw_path.as_deref(), Some("/orders/o-1"));
        assert_eq!(typed.headers.get("x-multi").unwrap(), "a,b");
        assert_eq!(typed.cookies, Some(vec!["a=1".into(), "b=2".into()]));
        assert_eq!(
            typed.path_parameters.get("order_id").map(String::as_str),
            Some("o-1")
        );
        assert_eq!(typed.request_context.http.method, Method::GET);
        assert_eq!(typed.request_context.request_id.as_deref(), Some("req-1"));
        assert!(typed.body.is_none());
        assert_eq!(event["queryStringParameters"]["x"], "1,2");
    }

    #[test]
    fn binary_bodies_are_base64() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let event = build_event(&request(
            &Method::POST,
            "/orders",
            "",
            &headers,
            &[0xff, 0x00],
        ));
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], BASE64.encode([0xff, 0x00]));
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let event = build_event(&request(&Method::POST, "/orders", "", &headers, b"{}"));
        assert_eq!(event["isBase64Encoded"], false);
        assert_eq!(event["body"], "{}");
    }

    #[test]
    fn every_request_gets_a_trace_of_its_own() {
        let one = trace_header_for();
        let two = trace_header_for();
        assert_ne!(one.root, two.root);
        assert!(one.parent.is_some());
        assert_eq!(one.sampled, Some(true));
    }

    #[test]
    fn converts_responses() {
        let response = to_http(
            &json!({"statusCode": 202, "headers": {"location": "/orders/x", "content-type": "application/json"},
                    "body": "{\"ok\":true}", "isBase64Encoded": false, "cookies": []}),
            "r",
        )
        .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["location"], "/orders/x");
        assert!(to_http(&json!({"statusCode": "nope"}), "r").is_none());
    }
}
