//! A recording HTTP proxy in front of moto: a bootstrap pointed at it
//! (`AWS_ENDPOINT_URL`) talks to moto as before, and the test reads back
//! every request exactly as the SDK sent it — method, path, headers, body —
//! after every interceptor of the SDK's (recursion detection among them)
//! and of ours has run. That is where "StartExecution carries the order's
//! trace in `X-Amzn-Trace-Id`" can be checked: the header is what Step
//! Functions reads first, and no port-level fake sees it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use crate::HarnessError;

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `X-Amz-Target` of the JSON protocols (`AWSStepFunctions.StartExecution`).
    pub fn target(&self) -> Option<&str> {
        self.header("x-amz-target")
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    recorded: Mutex<Vec<RecordedRequest>>,
}

/// The proxy; stops when dropped.
pub struct RecordingProxy {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Headers that belong to one hop, not to the request.
const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
];

impl RecordingProxy {
    /// Serves on a free 127.0.0.1 port, forwarding to `upstream`
    /// (`http://127.0.0.1:<moto port>`).
    pub async fn start(upstream: &str) -> Result<RecordingProxy, HarnessError> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            recorded: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(HarnessError::io("binding the recording proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("reading the recording proxy's address"))?;
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("recording proxy stopped: {err}");
            }
        });
        Ok(RecordingProxy {
            shared,
            addr,
            server,
        })
    }

    /// `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The requests whose `X-Amz-Target` ends with `.operation`.
    pub fn calls(&self, operation: &str) -> Vec<RecordedRequest> {
        let suffix = format!(".{operation}");
        self.requests()
            .into_iter()
            .filter(|r| r.target().is_some_and(|t| t.ends_with(&suffix)))
            .collect()
    }
}

fn bad_gateway(what: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_GATEWAY, format!("recording proxy: {what}")).into_response()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, 16 * 1024 * 1024).await {
        Ok(body) => body,
        Err(err) => return bad_gateway(err),
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    shared
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return bad_gateway("unknown method");
    };
    let mut upstream = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(err) => return bad_gateway(err),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if HOP_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(err) => return bad_gateway(err),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
