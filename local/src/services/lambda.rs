//! The five Lambda functions, wired to the local adapters and invoked the
//! way Lambda invokes them: the payload goes through JSON (as it does over
//! the Runtime API), the handler gets a real `lambda_runtime::Context`
//! (request id, deadline, function ARN, X-Ray trace header), and an error
//! comes back as Lambda reports it, `{"errorType", "errorMessage"}`.
//!
//! Each invocation runs in its own task, so a panicking handler is reported
//! as a function error instead of taking the runtime down, and under the
//! function's timeout, as Lambda would enforce it. Each function has its
//! own timeout, as each `aws_lambda_function` has its own `timeout`
//! (`dofs serve --function-timeout 30s,validator=300ms`): "the maximum
//! amount of time … a function can run before Lambda terminates it"
//! (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>),
//! reported as `Sandbox.Timedout` "Task timed out after N seconds".
//!
//! Concurrency is counted per function as Lambda counts it: an invocation
//! holds one unit of its function's concurrency from start to end,
//! `AWS/Lambda ConcurrentExecutions` (statistic Maximum) is the count each
//! one starts at, and a function with reserved concurrency
//! (`dofs serve --reserved-concurrency fn=N`) refuses an invocation beyond N
//! with `Lambda.TooManyRequestsException`, counted in `Throttles` and not in
//! `Invocations` (<https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html>,
//! <https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html>).
//! The `throttled` fault is reserved concurrency 0, which AWS allows to stop
//! a function altogether.
//!
//! With telemetry attached ([`Functions::with_telemetry`]) an invocation goes
//! through `dofs_telemetry::invoke`, exactly as the Lambda bootstraps do:
//! the invocation span is named after the function and parented on the
//! trace header, and its spans and metrics are flushed when it returns.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use api_handler::ApiHandler;
use dlq_handler::DlqHandler;
use dofs_core::{Clock, FailedOrderStore, OrderStore, PortError, Workflow};
use fulfill_order::{FailureSimulator, FulfillOrder};
use lambda_runtime::{Context, LambdaEvent};
use order_storage::OrderStorage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;
use validator::Validator;

use crate::faults::{FaultKind, Faults, FaultyFailedOrderStore, FaultyOrderStore};
pub use crate::identity::FunctionName;
use crate::observability::metrics::ServiceMetrics;

/// A function error, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {error_message}")]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
}

impl FunctionError {
    fn new(error_type: &str, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            error_message: error_message.into(),
        }
    }

    /// `{"errorType": .., "errorMessage": ..}`: the body of a failed
    /// invocation, and what Step Functions puts in a task failure's Cause.
    pub fn to_json(&self) -> Value {
        json!({"errorType": self.error_type, "errorMessage": self.error_message})
    }
}

impl From<PortError> for FunctionError {
    fn from(err: PortError) -> Self {
        Self::new(err.error_type(), err.chain())
    }
}

/// What the functions are wired to.
pub struct FunctionDeps {
    pub orders: Arc<dyn OrderStore>,
    pub failed_orders: Arc<dyn FailedOrderStore>,
    pub workflow: Arc<dyn Workflow>,
    pub clock: Arc<dyn Clock>,
    pub failures: FailureSimulator,
    /// The Lambda timeout of each function.
    pub timeouts: FunctionTimeouts,
    /// Where the `AWS/Lambda` metrics of each invocation go.
    pub metrics: ServiceMetrics,
    /// Injected faults (`dofs serve --fault`, the console's faults API).
    pub faults: Faults,
    /// Reserved concurrency of the functions that have one.
    pub reserved_concurrency: BTreeMap<FunctionName, u32>,
}

/// Each function's Lambda timeout: one for all, and the functions that
/// have their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTimeouts {
    default: Duration,
    own: BTreeMap<FunctionName, Duration>,
}

impl FunctionTimeouts {
    /// `default` for every function.
    pub fn all(default: Duration) -> Self {
        Self {
            default,
            own: BTreeMap::new(),
        }
    }

    /// `function` gets `timeout` instead of the default.
    pub fn with(mut self, function: FunctionName, timeout: Duration) -> Self {
        self.own.insert(function, timeout);
        self
    }

    /// The timeout `function` runs under.
    pub fn of(&self, function: FunctionName) -> Duration {
        self.own.get(&function).copied().unwrap_or(self.default)
    }
}

impl Default for FunctionTimeouts {
    /// 30 s, the Terraform module's `timeout` of every function.
    fn default() -> Self {
        Self::all(Duration::from_secs(30))
    }
}

/// Each function's invocations in flight, and the reserved concurrency
/// that caps them.
#[derive(Debug)]
struct Concurrency {
    in_flight: BTreeMap<FunctionName, AtomicU32>,
    reserved: BTreeMap<FunctionName, u32>,
}

/// One unit of a function's concurrency, given back on drop.
struct Slot<'a> {
    counter: &'a AtomicU32,
    /// Invocations in flight, this one included, when it started.
    concurrent: u32,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Concurrency {
    fn new(reserved: BTreeMap<FunctionName, u32>) -> Self {
        Self {
            in_flight: FunctionName::ALL
                .into_iter()
                .map(|f| (f, AtomicU32::new(0)))
                .collect(),
            reserved,
        }
    }

    /// A unit of `function`'s concurrency, or `None` when `limit` (its
    /// reserved concurrency) is used up.
    fn acquire(&self, function: FunctionName, limit: Option<u32>) -> Option<Slot<'_>> {
        let counter = &self.in_flight[&function];
        let limit = limit.unwrap_or(u32::MAX);
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|before| Slot {
                counter,
                concurrent: before + 1,
            })
    }
}

/// The five functions, ready to invoke.
pub struct Functions {
    api_handler: Arc<ApiHandler>,
    validator: Arc<Validator>,
    order_storage: Arc<OrderStorage>,
    fulfill_order: Arc<FulfillOrder>,
    dlq_handler: Arc<DlqHandler>,
    timeouts: FunctionTimeouts,
    clock: Arc<dyn Clock>,
    metrics: ServiceMetrics,
    faults: Faults,
    concurrency: Concurrency,
    telemetry: Option<dofs_telemetry::Telemetry>,
}

impl Functions {
    pub fn new(deps: FunctionDeps) -> Self {
        let FunctionDeps {
            orders,
            failed_orders,
            workflow,
            clock,
            failures,
            timeouts,
            metrics,
            faults,
            reserved_concurrency,
        } = deps;
        // Each function sees the tables through its own fault switch, so
        // one function's table can be unavailable while the others work.
        let orders_of =
            |f| -> Arc<dyn OrderStore> { FaultyOrderStore::wrap(Arc::clone(&orders), f, &faults) };
        Self {
            api_handler: Arc::new(ApiHandler::new(
                workflow,
                orders_of(FunctionName::ApiHandler),
                Arc::clone(&clock),
            )),
            validator: Arc::new(Validator::new(Arc::clone(&clock))),
            order_storage: Arc::new(OrderStorage::new(
                orders_of(FunctionName::OrderStorage),
                Arc::clone(&clock),
            )),
            fulfill_order: Arc::new(FulfillOrder::new(
                orders_of(FunctionName::FulfillOrder),
                Arc::clone(&clock),
                failures,
            )),
            dlq_handler: Arc::new(DlqHandler::new(
                orders_of(FunctionName::DlqHandler),
                FaultyFailedOrderStore::wrap(failed_orders, FunctionName::DlqHandler, &faults),
                Arc::clone(&clock),
            )),
            timeouts,
            clock,
            metrics,
            faults,
            concurrency: Concurrency::new(reserved_concurrency),
            telemetry: None,
        }
    }

    /// The faults the functions run under (set and cleared at run time).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Runs every invocation under `telemetry` (see the module docs).
    pub fn with_telemetry(mut self, telemetry: dofs_telemetry::Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Invokes `function` with a JSON payload, as `Invoke` with
    /// `RequestResponse` would. `trace_header` becomes the context's
    /// `xray_trace_id` (what Lambda sets in `_X_AMZN_TRACE_ID`).
    ///
    /// The invocation runs in its own task, to its end, even when the caller
    /// stops waiting (an execution that timed out mid-task, a client gone),
    /// as a Lambda invocation does: its errors and duration are counted all
    /// the same.
    pub async fn invoke(
        self: &Arc<Self>,
        function: FunctionName,
        payload: Value,
        trace_header: Option<String>,
    ) -> Result<Value, FunctionError> {
        let this = Arc::clone(self);
        let invocation = tokio::spawn(
            async move { this.invoke_here(function, payload, trace_header).await }
                .in_current_span(),
        );
        match invocation.await {
            Ok(result) => result,
            Err(join) => Err(FunctionError::new("Runtime.ExitError", join.to_string())),
        }
    }

    async fn invoke_here(
        &self,
        function: FunctionName,
        payload: Value,
        trace_header: Option<String>,
    ) -> Result<Value, FunctionError> {
        let context = self.context(function, trace_header);
        if let Some(telemetry) = &self.telemetry {
            let invocation = dofs_telemetry::Invocation {
                function: Some(function.as_str().to_owned()),
                request_id: context.request_id.clone(),
                trace_header: context
                    .xray_trace_id
                    .as_deref()
                    .and_then(|h| h.parse().ok()),
            };
            // The handler's task is spawned on the first poll, inside the
            // invocation span, so the handler's spans are its children.
            return dofs_telemetry::invoke(telemetry, invocation, || {
                self.run(function, payload, context)
            })
            .await;
        }
        let span = tracing::info_span!(
            "invoke",
            function = function.as_str(),
            request_id = %context.request_id,
            trace_id = context.xray_trace_id.as_deref().unwrap_or_default(),
        );
        async {
            let result = self.run(function, payload, context).await;
            match &result {
                Ok(_) => tracing::debug!("invocation succeeded"),
                Err(err) => tracing::warn!(
                    error_type = %err.error_type,
                    error = %err.error_message,
                    "invocation failed"
                ),
            }
            result
        }
        .instrument(span)
        .await
    }

    /// The invocation itself, counted in the `AWS/Lambda` metrics
    /// (Invocations, Errors, Duration) as Lambda counts it.
    async fn run(
        &self,
        function: FunctionName,
        payload: Value,
        context: Context,
    ) -> Result<Value, FunctionError> {
        let fault_throttled = self.faults.of(function) == Some(FaultKind::Throttled);
        let limit = if fault_throttled {
            Some(0)
        } else {
            self.concurrency.reserved.get(&function).copied()
        };
        let Some(slot) = self.concurrency.acquire(function, limit) else {
            // Lambda refuses a throttled invocation before running it: it is
            // counted in Throttles, not in Invocations or Errors, and Step
            // Functions sees the service error under its `Lambda.` name.
            self.metrics.lambda_throttle(&function.deployed_name());
            const THROTTLED: &str = "Lambda.TooManyRequestsException";
            if fault_throttled {
                return Err(injected(
                    THROTTLED,
                    format!(
                        "fault injected: {} is throttled (Rate Exceeded.)",
                        function.as_str()
                    ),
                ));
            }
            let message = format!(
                "Rate Exceeded.: {} has reserved concurrency {}",
                function.as_str(),
                limit.unwrap_or_default()
            );
            tracing::warn!(error_type = THROTTLED, error = %message, "invocation throttled");
            return Err(FunctionError::new(THROTTLED, message));
        };
        self.metrics
            .lambda_concurrency(&function.deployed_name(), slot.concurrent);
        let started = std::time::Instant::now();
        let result = self.run_handler(function, payload, context).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.metrics
            .lambda_invocation(&function.deployed_name(), result.is_err(), duration_ms);
        self.metrics
            .usage()
            .lambda_invocation(function, duration_ms);
        drop(slot);
        result
    }

    /// The handler in its own task, under the timeout.
    async fn run_handler(
        &self,
        function: FunctionName,
        payload: Value,
        context: Context,
    ) -> Result<Value, FunctionError> {
        let timeout = self.timeouts.of(function);
        match self.faults.of(function) {
            Some(FaultKind::Failing) => {
                return Err(injected(
                    "InjectedFault",
                    format!(
                        "fault injected: {} fails every invocation",
                        function.as_str()
                    ),
                ))
            }
            Some(FaultKind::Slow) => {
                tracing::warn!(fault = "slow", "fault injected: slower than the timeout");
                // Sleeps past the deadline, as a hung handler would.
                if tokio::time::timeout(timeout, tokio::time::sleep(timeout * 2))
                    .await
                    .is_err()
                {
                    return Err(injected(
                        "Sandbox.Timedout",
                        format!(
                            "Task timed out after {:.2} seconds (fault injected: {} is slow)",
                            timeout.as_secs_f64(),
                            function.as_str()
                        ),
                    ));
                }
            }
            _ => {}
        }
        let task = match function {
            FunctionName::ApiHandler => {
                let h = Arc::clone(&self.api_handler);
                spawn_typed(payload, context, move |e| async move { h.handle(e).await })
            }
            FunctionName::Validator => {
                let h = Arc::clone(&self.validator);
                spawn_typed(payload, context, move |e| async move { h.handle(e).await })
            }
            FunctionName::OrderStorage => {
                let h = Arc::clone(&self.order_storage);
                spawn_typed(payload, context, move |e| async move { h.handle(e).await })
            }
            FunctionName::FulfillOrder => {
                let h = Arc::clone(&self.fulfill_order);
                spawn_typed(payload, context, move |e| async move { h.handle(e).await })
            }
            FunctionName::DlqHandler => {
                let h = Arc::clone(&self.dlq_handler);
                spawn_typed(payload, context, move |e| async move { h.handle(e).await })
            }
        };
        let task = task?;
        let abort = task.abort_handle();
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => Err(FunctionError::new(
                "Runtime.ExitError",
                "the function panicked; see the log",
            )),
            Ok(Err(join)) => Err(FunctionError::new("Runtime.ExitError", join.to_string())),
            Err(_) => {
                abort.abort();
                Err(FunctionError::new(
                    "Sandbox.Timedout",
                    format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                ))
            }
        }
    }

    fn context(&self, function: FunctionName, trace_header: Option<String>) -> Context {
        let deadline = self.clock.now().timestamp_millis() as u64
            + self.timeouts.of(function).as_millis() as u64;
        let config = lambda_runtime::Config {
            function_name: function.deployed_name(),
            memory: 128,
            version: "$LATEST".into(),
            log_group: format!("/aws/lambda/{}", function.deployed_name()),
            log_stream: format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
        };
        let mut context = Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = deadline;
        context.invoked_function_arn = function.arn();
        context.xray_trace_id = trace_header;
        context.env_config = Arc::new(config);
        context
    }
}

/// An injected failure: logged at WARN and recorded as a fault on the
/// invocation span, so logs, traces and `dofs order` all show it.
fn injected(error_type: &str, message: String) -> FunctionError {
    let span = tracing::Span::current();
    dofs_telemetry::context::record_failure(
        &span,
        dofs_telemetry::context::FailureKind::Fault,
        error_type,
        &message,
    );
    tracing::warn!(fault = true, error_type, error = %message, "fault injected");
    FunctionError::new(error_type, message)
}

type Invocation = tokio::task::JoinHandle<Result<Value, FunctionError>>;

/// Deserializes the payload into the handler's event type (Lambda's runtime
/// does the same, and reports a mismatch as `Runtime.UnmarshalError`) and
/// runs the handler in its own task.
fn spawn_typed<E, O, F, Fut>(
    payload: Value,
    context: Context,
    handler: F,
) -> Result<Invocation, FunctionError>
where
    E: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: FnOnce(LambdaEvent<E>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<O, PortError>> + Send + 'static,
{
    let event: E = serde_json::from_value(payload)
        .map_err(|e| FunctionError::new("Runtime.UnmarshalError", e.to_string()))?;
    let event = LambdaEvent::new(event, context);
    Ok(tokio::spawn(
        async move {
            let output = handler(event).await.map_err(FunctionError::from)?;
            serde_json::to_value(output)
                .map_err(|e| FunctionError::new("Runtime.MarshalError", e.to_string()))
        }
        .in_current_span(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_concurrency_caps_the_invocations_in_flight() {
        let concurrency = Concurrency::new(BTreeMap::from([(FunctionName::FulfillOrder, 2)]));
        let limit = concurrency
            .reserved
            .get(&FunctionName::FulfillOrder)
            .copied();
        let first = concurrency
            .acquire(FunctionName::FulfillOrder, limit)
            .unwrap();
        let second = concurrency
            .acquire(FunctionName::FulfillOrder, limit)
            .unwrap();
        assert_eq!((first.concurrent, second.concurrent), (1, 2));
        assert!(concurrency
            .acquire(FunctionName::FulfillOrder, limit)
            .is_none());
        drop(first);
        assert_eq!(
            concurrency
                .acquire(FunctionName::FulfillOrder, limit)
                .map(|s| s.concurrent),
            Some(2)
        );
        // Without a reservation a function is not capped; zero stops it.
        assert!(concurrency.acquire(FunctionName::Validator, None).is_some());
        assert!(concurrency
            .acquire(FunctionName::Validator, Some(0))
            .is_none());
    }

    #[test]
    fn function_errors_serialize_like_lambda() {
        let err: FunctionError = PortError::transient("table busy").into();
        assert_eq!(
            err.to_json(),
            json!({"errorType": "TransientError", "errorMessage": "table busy"})
        );
    }
}
