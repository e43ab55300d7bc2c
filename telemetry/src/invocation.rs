//! One invocation with telemetry: the invocation span, cold start, error
//! status, and the flush of spans and metrics — on Lambda ([`run`]) right
//! after the response is posted and before the next event is asked for,
//! elsewhere ([`invoke`]) before the result is returned.
//!
//! A handler that fails marks the invocation's segment `fault` with the
//! error as its `cause`; one that panics too (the panic is caught, recorded,
//! flushed, then resumed, so the runtime reports it as before), and the
//! panic hook ([`install_panic_hook`]) logs it as a JSON ERROR line inside
//! the span it happened in: Rust's default hook writes plain text to
//! stderr, which Lambda's JSON log format rates INFO and drops under a WARN
//! level (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html>).
//!
//! [`run`] is the Lambda entry point; [`invoke`] is the same thing for a
//! single call, used by `run`, by the local runtime (which names the
//! function per call: one process hosts all five) and by tests.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context as TaskContext, Poll};

use lambda_runtime::{service_fn, tower, Diagnostic, LambdaEvent, LambdaInvocation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use opentelemetry::trace::TraceContextExt;

use crate::context::{record_failure, FailureKind};
use crate::trace_header::TraceHeader;
use crate::traces::{join_header, xray_trace_id};
use crate::{metric, Telemetry};

/// What is known about an invocation before it runs.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The function invoked; `None` means the configured function name.
    pub function: Option<String>,
    pub request_id: String,
    /// The caller's trace (Lambda's `_X_AMZN_TRACE_ID`); `None` starts a new trace.
    pub trace_header: Option<TraceHeader>,
}

/// Runs `handler` as one invocation: inside a root span named after the
/// function (an X-Ray segment, child of `trace_header`'s parent, honouring
/// its `Sampled`), with `function`, `request_id`, `cold_start` and
/// `trace_id` on every log line; counts the cold start; marks the span as an
/// error if the handler fails; closes the span and flushes spans and metrics
/// before returning the handler's result.
pub async fn invoke<R, E, Fut>(
    telemetry: &Telemetry,
    invocation: Invocation,
    handler: impl FnOnce() -> Fut,
) -> Result<R, E>
where
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    invoke_then(telemetry, invocation, handler, Some(FlushOnExit(telemetry))).await
}

/// [`invoke`]; `flush_on_exit` (dropped once the span has closed, also when
/// the handler panics) flushes, or `None` leaves the flush to the caller.
async fn invoke_then<'a, R, E, Fut>(
    telemetry: &'a Telemetry,
    invocation: Invocation,
    handler: impl FnOnce() -> Fut,
    flush_on_exit: Option<FlushOnExit<'a>>,
) -> Result<R, E>
where
    Fut: Future<Output = Result<R, E>>,
    E: fmt::Display,
{
    let function = invocation
        .function
        .unwrap_or_else(|| telemetry.function_name().to_owned());
    let cold_start = telemetry.first_invocation_of(&function);
    let span = tracing::info_span!(
        parent: None,
        "invocation",
        otel.name = %function,
        otel.kind = "server",
        otel.status_code = Empty,
        faas.invocation_id = %invocation.request_id,
        faas.coldstart = cold_start,
        function = %function,
        request_id = %invocation.request_id,
        cold_start,
        trace_id = Empty,
    );
    if let Some(header) = &invocation.trace_header {
        join_header(&span, header);
    }
    let otel_trace = span.context().span().span_context().clone();
    let trace_id = if otel_trace.is_valid() {
        Some(xray_trace_id(otel_trace.trace_id()))
    } else {
        invocation.trace_header.as_ref().map(|h| h.root.clone())
    };
    if let Some(trace_id) = &trace_id {
        span.record("trace_id", trace_id.as_str());
    }

    let future = span.in_scope(|| {
        if cold_start {
            metrics::counter!(metric::COLD_START).increment(1);
        }
        handler()
    });
    let outcome = CatchUnwind(Box::pin(future.instrument(span.clone()))).await;
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            // The hook has logged it; the segment says it too.
            record_failure(&span, FailureKind::Fault, "panic", &panic_message(&*panic));
            drop(span);
            drop(flush_on_exit);
            std::panic::resume_unwind(panic);
        }
    };
    if let Err(err) = &result {
        let reason = err.to_string();
        record_failure(&span, FailureKind::Fault, "InvocationError", &reason);
        span.in_scope(|| tracing::error!(error = %reason, "invocation failed"));
    }
    drop(span);
    drop(flush_on_exit);
    result
}

/// Polls a future inside `catch_unwind`, so a panicking handler can be
/// recorded before the panic goes on to the runtime.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// A panic payload's message (`panic!` with a literal or a format).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}

/// Installs, once per process, a panic hook that logs a panic as a JSON
/// ERROR line (`message`, `error`, `location`, and the fields of the span
/// it happened in, `order_id` among them) and marks that span failed with
/// the panic as its cause. Where no DOFS telemetry is installed on the
/// panicking thread, the previous hook runs instead.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = tracing::dispatcher::get_default(|dispatch| {
                dispatch
                    .downcast_ref::<tracing_subscriber::Registry>()
                    .is_some()
            });
            if !ours {
                previous(info);
                return;
            }
            let message = panic_message(info.payload());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            tracing::error!(
                target: "dofs_telemetry::panic",
                error = %message,
                location = %location,
                exception.type = "panic",
                exception.message = %message,
                "panicked"
            );
        }));
    });
}

/// Flushes when dropped: at the end of [`invoke`], or while unwinding from a
/// panicking handler (the runtime reports the panic as the invocation's error
/// and keeps the process, so its spans must not wait for the next invocation).
struct FlushOnExit<'a>(&'a Telemetry);

impl Drop for FlushOnExit<'_> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// A handler error as the Lambda error it will be reported as.
struct Failure(Diagnostic);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.error_type, self.0.error_message)
    }
}

/// Runs a Lambda handler with telemetry: the `lambda_runtime` loop, with
/// every invocation going through [`invoke`] (trace header from the
/// runtime's context, or `_X_AMZN_TRACE_ID`). The handler's error type
/// converts into a `Diagnostic` (`PortError` does, with the ASL's error
/// names).
///
/// Spans and metrics are flushed after the response has been posted to the
/// Runtime API and before the next `GET /invocation/next` (`FlushLayer`):
/// the caller has its answer without waiting for the export, and Lambda
/// freezes the environment only when the runtime asks for the next event
/// ("the Invoke phase ends after the runtime and all extensions signal that
/// they are done by sending a Next API request",
/// <https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-invoke>),
/// so the export still completes inside the invocation, billed in its
/// duration.
pub async fn run<E, R, Err, F, Fut>(
    telemetry: Telemetry,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send,
    R: Serialize + Send,
    Err: Into<Diagnostic>,
    F: Fn(LambdaEvent<E>) -> Fut,
    Fut: Future<Output = Result<R, Err>>,
{
    let flush = FlushLayer(telemetry.clone());
    let telemetry = &telemetry;
    let handler = &handler;
    let service = service_fn(move |event: LambdaEvent<E>| async move {
        let trace_header = event
            .context
            .xray_trace_id
            .clone()
            .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok())
            .and_then(|text| text.parse::<TraceHeader>().ok());
        let invocation = Invocation {
            function: None,
            request_id: event.context.request_id.clone(),
            trace_header,
        };
        let handler = || async move { handler(event).await.map_err(|err| Failure(err.into())) };
        invoke_then(telemetry, invocation, handler, None)
            .await
            .map_err(|failure| failure.0)
    });
    lambda_runtime::Runtime::new(service)
        .layer(flush)
        .run()
        .await
}

/// Wraps the runtime's whole invocation — the handler and the post of its
/// response (the service `Runtime::layer` wraps answers `()` once the
/// Runtime API has the response) — and flushes [`Telemetry`] when it is
/// done, also when it failed (a panicking handler is reported by the
/// runtime's own panic layer, inside this one). Ours, not lambda_runtime's
/// `OpenTelemetryLayer`: that one opens a second invocation span, which
/// X-Ray would show as a second segment of every function.
#[derive(Clone)]
struct FlushLayer(Telemetry);

impl<S> tower::Layer<S> for FlushLayer {
    type Service = FlushService<S>;

    fn layer(&self, inner: S) -> FlushService<S> {
        FlushService {
            inner,
            telemetry: self.0.clone(),
        }
    }
}

struct FlushService<S> {
    inner: S,
    telemetry: Telemetry,
}

impl<S> tower::Service<LambdaInvocation> for FlushService<S>
where
    S: tower::Service<LambdaInvocation, Response = ()>,
{
    type Response = ();
    type Error = S::Error;
    type Future = FlushAfter<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        FlushAfter {
            posted: self.inner.call(invocation),
            telemetry: Some(self.telemetry.clone()),
        }
    }
}

pin_project_lite::pin_project! {
    /// The runtime's invocation future, then the flush.
    struct FlushAfter<F> {
        #[pin]
        posted: F,
        telemetry: Option<Telemetry>,
    }
}

impl<F: Future> Future for FlushAfter<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.posted.poll(cx));
        if let Some(telemetry) = this.telemetry.take() {
            telemetry.flush();
        }
        Poll::Ready(output)
    }
}
