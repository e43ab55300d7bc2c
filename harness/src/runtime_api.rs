//! A fake Lambda Runtime API for one function process.
//!
//! It serves the four endpoints a custom runtime uses
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//! `GET /runtime/invocation/next` long-polls until the test queues an event
//! and answers with the `Lambda-Runtime-*` headers; the response and error
//! posts resolve the test's [`RuntimeApi::invoke`]; `/runtime/init/error`
//! is recorded for [`RuntimeApi::init_error`]. It also notes when the first
//! `/next` arrived, which is where a cold start ends, and when each outcome
//! was posted ([`RuntimeApi::invoke_timed`]) and when each `/next` arrived
//! ([`RuntimeApi::wait_next_call`]). [`RuntimeApi::on_response`] and
//! [`RuntimeApi::on_next`] run a hook at those moments (the X-Ray daemon
//! stand-in drains its socket there, so "sent before the response" or
//! "sent before the next event was asked for" — when Lambda may freeze the
//! process — is checked without races).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::HarnessError;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `POST /invocation/{id}/response` with this JSON body.
    Response(Value),
    /// `POST /invocation/{id}/error`.
    Error {
        error_type: String,
        error_message: String,
        /// The `Lambda-Runtime-Function-Error-Type` header, if sent.
        header_type: Option<String>,
    },
}

impl Outcome {
    /// The response body, or a panic naming the error (for tests).
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(value) => value,
            Outcome::Error {
                error_type,
                error_message,
                ..
            } => panic!("expected a response, got error {error_type}: {error_message}"),
        }
    }

    /// The error's type and message, or a panic (for tests).
    pub fn error(self) -> (String, String) {
        match self {
            Outcome::Error {
                error_type,
                error_message,
                ..
            } => (error_type, error_message),
            Outcome::Response(value) => panic!("expected an error, got response {value}"),
        }
    }
}

/// One invocation to its end ([`RuntimeApi::invoke_settled`]).
#[derive(Debug, Clone)]
pub struct Settled {
    pub outcome: Outcome,
    /// When the outcome was posted: what the caller waited for.
    pub posted_at: Instant,
    /// When the function next asked for an event: the invocation's end.
    pub ready_at: Instant,
}

/// What the function posted to `/runtime/init/error`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    pub error_type: String,
    pub error_message: String,
    pub header_type: Option<String>,
    /// How many times it was posted (Lambda accepts one).
    pub count: usize,
}

struct Invocation {
    request_id: String,
    payload: Value,
    trace_id: String,
    deadline_ms: u128,
}

#[derive(Default)]
struct Recorded {
    /// When each `/next` arrived (after the hook ran), in order.
    next_at: Vec<Instant>,
    init_error: Option<InitError>,
}

/// Run when an outcome is posted (or a `/next` arrives), before it is recorded.
type ResponseHook = Arc<dyn Fn() + Send + Sync>;

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<(Outcome, Instant)>>>,
    on_response: Mutex<Option<ResponseHook>>,
    on_next: Mutex<Option<ResponseHook>>,
    /// Which `/next` call (1-based) handed out each request id.
    served_by: Mutex<HashMap<String, usize>>,
    recorded: Mutex<Recorded>,
    changed: watch::Sender<u64>,
    function_arn: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not hide the state from the test.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// A running fake Runtime API; stops when dropped.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    sender: mpsc::UnboundedSender<Invocation>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A fresh X-Ray trace header as Lambda passes it.
pub fn new_trace_header() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=1",
        secs as u32,
        &unique[..24],
        &parent[..16]
    )
}

impl RuntimeApi {
    /// Serves on a free 127.0.0.1 port; `function_name` goes into the
    /// invoked function ARN.
    pub async fn start(function_name: &str) -> Result<RuntimeApi, HarnessError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(receiver),
            waiting: Mutex::new(HashMap::new()),
            on_response: Mutex::new(None),
            on_next: Mutex::new(None),
            served_by: Mutex::new(HashMap::new()),
            recorded: Mutex::new(Recorded::default()),
            changed,
            function_arn: crate::moto::function_arn(function_name),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(HarnessError::io("binding the Runtime API"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("reading the Runtime API address"))?;
        let server = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("fake Runtime API stopped: {err}");
            }
        });
        Ok(RuntimeApi {
            shared,
            sender,
            addr,
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `payload` for the function and waits for its outcome.
    pub async fn invoke(&self, payload: Value) -> Result<Outcome, HarnessError> {
        self.invoke_traced(payload, &new_trace_header()).await
    }

    /// [`invoke`](Self::invoke) with a given `Lambda-Runtime-Trace-Id`.
    pub async fn invoke_traced(
        &self,
        payload: Value,
        trace_id: &str,
    ) -> Result<Outcome, HarnessError> {
        self.invoke_timed(payload, trace_id)
            .await
            .map(|(outcome, _)| outcome)
    }

    /// [`invoke_traced`](Self::invoke_traced), also returning when the
    /// outcome was posted (taken in the handler, after the
    /// [`on_response`](Self::on_response) hook ran).
    pub async fn invoke_timed(
        &self,
        payload: Value,
        trace_id: &str,
    ) -> Result<(Outcome, Instant), HarnessError> {
        self.invoke_identified(payload, trace_id)
            .await
            .map(|(outcome, posted_at, _)| (outcome, posted_at))
    }

    /// [`invoke_timed`](Self::invoke_timed), also returning the request id.
    async fn invoke_identified(
        &self,
        payload: Value,
        trace_id: &str,
    ) -> Result<(Outcome, Instant, String), HarnessError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(request_id.clone(), tx);
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
            + 60_000;
        self.sender
            .send(Invocation {
                request_id: request_id.clone(),
                payload,
                trace_id: trace_id.to_owned(),
                deadline_ms,
            })
            .map_err(|_| HarnessError::Setup("the Runtime API has stopped".into()))?;
        let seconds = 60;
        match tokio::time::timeout(Duration::from_secs(seconds), rx).await {
            Ok(Ok((outcome, posted_at))) => Ok((outcome, posted_at, request_id)),
            Ok(Err(_)) => Err(HarnessError::Setup(format!(
                "invocation {request_id} was dropped"
            ))),
            Err(_) => Err(HarnessError::Timeout {
                what: format!("invocation {request_id}"),
                seconds,
            }),
        }
    }

    /// [`invoke_timed`](Self::invoke_timed), then waits for the function to
    /// ask for its next event — the end of the invocation for Lambda, which
    /// freezes the process then (work after the response, such as a
    /// telemetry flush, happens in between). Returns the outcome, when it was
    /// posted, and when that following `/next` arrived.
    pub async fn invoke_settled(
        &self,
        payload: Value,
        trace_id: &str,
    ) -> Result<Settled, HarnessError> {
        let (outcome, posted_at, request_id) = self.invoke_identified(payload, trace_id).await?;
        let call = lock(&self.shared.served_by)
            .remove(&request_id)
            .ok_or_else(|| HarnessError::Setup(format!("{request_id} was never handed out")))?;
        let ready_at = self
            .wait_next_call(call + 1, Duration::from_secs(60))
            .await?;
        Ok(Settled {
            outcome,
            posted_at,
            ready_at,
        })
    }

    /// Runs `hook` each time a `/response` or `/error` is posted, before
    /// the outcome is recorded; replaces any earlier hook.
    pub fn on_response(&self, hook: impl Fn() + Send + Sync + 'static) {
        *lock(&self.shared.on_response) = Some(Arc::new(hook));
    }

    /// Runs `hook` each time a `/next` arrives, before it is recorded;
    /// replaces any earlier hook.
    pub fn on_next(&self, hook: impl Fn() + Send + Sync + 'static) {
        *lock(&self.shared.on_next) = Some(Arc::new(hook));
    }

    /// When the function first asked for an event.
    pub fn first_next(&self) -> Option<Instant> {
        lock(&self.shared.recorded).next_at.first().copied()
    }

    /// Waits until the function asks for its first event.
    pub async fn wait_first_next(&self, timeout: Duration) -> Result<Instant, HarnessError> {
        self.wait_next_call(1, timeout).await
    }

    /// Waits for the `n`th `/next` (1-based: the first ends the cold start,
    /// the `k + 1`th ends the `k`th invocation's post-response work) and
    /// returns when it arrived.
    pub async fn wait_next_call(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Instant, HarnessError> {
        let mut changed = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if let Some(at) = lock(&self.shared.recorded).next_at.get(n.saturating_sub(1)) {
                    return *at;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| HarnessError::Timeout {
                what: format!("/invocation/next call {n}"),
                seconds: timeout.as_secs(),
            })
    }

    /// The init error, once the function posted one.
    pub fn init_error(&self) -> Option<InitError> {
        lock(&self.shared.recorded).init_error.clone()
    }

    /// Waits for an init error.
    pub async fn wait_init_error(&self, timeout: Duration) -> Result<InitError, HarnessError> {
        let mut changed = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if let Some(error) = self.init_error() {
                    return error;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| HarnessError::Timeout {
                what: "a /runtime/init/error".into(),
                seconds: timeout.as_secs(),
            })
    }

    /// How many `/next` requests arrived.
    pub fn next_calls(&self) -> usize {
        lock(&self.shared.recorded).next_at.len()
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // Cloned out so the hook runs without the lock held.
    let hook = lock(&shared.on_next).clone();
    if let Some(hook) = hook {
        hook();
    }
    let call = {
        let mut recorded = lock(&shared.recorded);
        recorded.next_at.push(Instant::now());
        recorded.next_at.len()
    };
    shared.bump();
    let invocation = shared.queue.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    lock(&shared.served_by).insert(invocation.request_id.clone(), call);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "lambda-runtime-aws-request-id",
        header(&invocation.request_id),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        header(&invocation.deadline_ms.to_string()),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&shared.function_arn),
    );
    headers.insert("lambda-runtime-trace-id", header(&invocation.trace_id));
    (StatusCode::OK, headers, invocation.payload.to_string()).into_response()
}

fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    // Cloned out so the hook runs without the lock held.
    let hook = lock(&shared.on_response).clone();
    if let Some(hook) = hook {
        hook();
    }
    let posted_at = Instant::now();
    match lock(&shared.waiting).remove(id) {
        Some(tx) => {
            let _ = tx.send((outcome, posted_at));
            StatusCode::ACCEPTED
        }
        // Lambda answers 400 for an unknown or already-answered request id.
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    settle(&shared, &id, Outcome::Response(value))
}

fn diagnostic(headers: &HeaderMap, body: &Bytes) -> (String, String, Option<String>) {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let header_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (text("errorType"), text("errorMessage"), header_type)
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (error_type, error_message, header_type) = diagnostic(&headers, &body);
    settle(
        &shared,
        &id,
        Outcome::Error {
            error_type,
            error_message,
            header_type,
        },
    )
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (error_type, error_message, header_type) = diagnostic(&headers, &body);
    {
        let mut recorded = lock(&shared.recorded);
        let count = recorded.init_error.as_ref().map_or(0, |e| e.count) + 1;
        recorded.init_error = Some(InitError {
            error_type,
            error_message,
            header_type,
            count,
        });
    }
    shared.bump();
    StatusCode::ACCEPTED
}
