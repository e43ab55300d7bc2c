//! Fault injection, to rehearse an outage locally and prove which alarms it
//! fires (`dofs serve --fault SPEC`, the console's `/_dofs/api/faults`).
//!
//! A fault is set per function, as `<function>=<kind>`:
//! - `unavailable`: the function's tables answer every call with the SDK's
//!   transient error (`TransientError`, as the DynamoDB adapter maps a
//!   throttled or unreachable table), so the handler fails the way an IAM,
//!   KMS or DynamoDB outage makes it fail;
//! - `failing`: every invocation is a function error (`InjectedFault`),
//!   counted in `AWS/Lambda Errors`;
//! - `slow`: every invocation outlasts the function's timeout
//!   (`Sandbox.Timedout`);
//! - `throttled`: Lambda refuses every invocation
//!   (`Lambda.TooManyRequestsException`, the name Step Functions retries),
//!   as it does with reserved concurrency 0: counted in
//!   `AWS/Lambda Throttles`, not in Invocations
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html>).
//!   A partial limit is `dofs serve --reserved-concurrency <function>=<N>`
//!   (see `services::lambda`);
//! - `disabled`: the function's event source mapping is disabled (as
//!   `aws lambda update-event-source-mapping --no-enabled` leaves it): its
//!   queue is not polled, so messages wait and age. Only `fulfill_order`
//!   and `dlq_handler` have one; for the others it changes nothing.
//!
//! Every injected failure is logged at WARN with `fault`, recorded as a
//! fault on the invocation span, and its message starts with "fault
//! injected", which `dofs order` shows in the queue deliveries.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use dofs_core::{
    FailedOrder, FailedOrderStore, InsertOutcome, Order, OrderId, OrderStatus, OrderStore,
    PortError, StatusChange, TransitionOutcome,
};
use serde::{Deserialize, Serialize};

use crate::identity::FunctionName;

/// What goes wrong with a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Unavailable,
    Failing,
    Slow,
    Throttled,
    Disabled,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Unavailable,
        FaultKind::Failing,
        FaultKind::Slow,
        FaultKind::Throttled,
        FaultKind::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Unavailable => "unavailable",
            FaultKind::Failing => "failing",
            FaultKind::Slow => "slow",
            FaultKind::Throttled => "throttled",
            FaultKind::Disabled => "disabled",
        }
    }
}

/// `<function>=<kind>`, e.g. `fulfill_order=unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    pub function: FunctionName,
    pub kind: FaultKind,
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.function.as_str(), self.kind.as_str())
    }
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (function, kind) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not <function>=<kind>"))?;
        let function = FunctionName::resolve(function.trim())
            .ok_or_else(|| format!("{function:?} is not a DOFS function"))?;
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind.trim())
            .ok_or_else(|| {
                format!("{kind:?} is not a fault (unavailable, failing, slow, throttled, disabled)")
            })?;
        Ok(Self { function, kind })
    }
}

/// The faults in force, shared by the functions and the console; cheap to
/// clone. One fault per function at a time.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    active: Arc<RwLock<BTreeMap<FunctionName, FaultKind>>>,
}

impl Faults {
    pub fn new(specs: &[FaultSpec]) -> Self {
        let faults = Self::default();
        for spec in specs {
            faults.set(*spec);
        }
        faults
    }

    pub fn set(&self, spec: FaultSpec) {
        tracing::warn!(fault = %spec, "fault injected");
        self.active
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(spec.function, spec.kind);
    }

    /// Clears `function`'s fault, or every fault; returns what was cleared.
    pub fn clear(&self, function: Option<FunctionName>) -> Vec<FaultSpec> {
        let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
        let cleared: Vec<FaultSpec> = active
            .iter()
            .filter(|(f, _)| function.is_none_or(|wanted| wanted == **f))
            .map(|(f, k)| FaultSpec {
                function: *f,
                kind: *k,
            })
            .collect();
        for spec in &cleared {
            active.remove(&spec.function);
            tracing::warn!(fault = %spec, "fault cleared");
        }
        cleared
    }

    pub fn list(&self) -> Vec<FaultSpec> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(f, k)| FaultSpec {
                function: *f,
                kind: *k,
            })
            .collect()
    }

    pub fn of(&self, function: FunctionName) -> Option<FaultKind> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&function)
            .copied()
    }

    /// The transient error an unavailable table answers with, if `function`
    /// has that fault.
    fn unavailable(&self, function: FunctionName, table: &str) -> Result<(), PortError> {
        if self.of(function) == Some(FaultKind::Unavailable) {
            tracing::warn!(
                fault = "unavailable",
                function = function.as_str(),
                table,
                "fault injected: table unavailable"
            );
            return Err(PortError::transient(format!(
                "fault injected: the {table} table is unavailable to {}",
                function.as_str()
            )));
        }
        Ok(())
    }
}

/// `function`'s view of the orders table, failing while it is unavailable.
pub struct FaultyOrderStore {
    inner: Arc<dyn OrderStore>,
    function: FunctionName,
    faults: Faults,
}

impl FaultyOrderStore {
    pub fn wrap(inner: Arc<dyn OrderStore>, function: FunctionName, faults: &Faults) -> Arc<Self> {
        Arc::new(Self {
            inner,
            function,
            faults: faults.clone(),
        })
    }
}

#[async_trait]
impl OrderStore for FaultyOrderStore {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError> {
        self.faults.unavailable(self.function, "orders")?;
        self.inner.get(order_id).await
    }

    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
        self.faults.unavailable(self.function, "orders")?;
        self.inner.insert(order).await
    }

    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError> {
        self.faults.unavailable(self.function, "orders")?;
        self.inner.transition(order_id, expected, change).await
    }
}

/// `function`'s view of the failed_orders table, failing while it is
/// unavailable.
pub struct FaultyFailedOrderStore {
    inner: Arc<dyn FailedOrderStore>,
    function: FunctionName,
    faults: Faults,
}

impl FaultyFailedOrderStore {
    pub fn wrap(
        inner: Arc<dyn FailedOrderStore>,
        function: FunctionName,
        faults: &Faults,
    ) -> Arc<Self> {
        Arc::new(Self {
            inner,
            function,
            faults: faults.clone(),
        })
    }
}

#[async_trait]
impl FailedOrderStore for FaultyFailedOrderStore {
    async fn record(&self, failed: &FailedOrder) -> Result<(), PortError> {
        self.faults.unavailable(self.function, "failed_orders")?;
        self.inner.record(failed).await
    }

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
        self.faults.unavailable(self.function, "failed_orders")?;
        self.inner.get(order_id).await
    }
}

/// The console's faults API, what `dofs fault` calls:
/// - `GET /_dofs/api/faults`: `{"faults": ["fulfill_order=unavailable", ...]}`;
/// - `PUT /_dofs/api/faults/{spec}`: sets the fault (replacing that
///   function's previous one);
/// - `DELETE /_dofs/api/faults` clears every fault,
///   `DELETE /_dofs/api/faults/{function}` one function's.
///
/// Each answers with the faults now in force; a bad spec is a 400.
pub fn router(faults: Faults) -> axum::Router {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Json;

    fn listing(faults: &Faults) -> Json<serde_json::Value> {
        let list: Vec<String> = faults.list().iter().map(ToString::to_string).collect();
        Json(serde_json::json!({ "faults": list }))
    }
    type Reply = Result<Json<serde_json::Value>, (StatusCode, Json<serde_json::Value>)>;
    fn bad(message: String) -> (StatusCode, Json<serde_json::Value>) {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": message })),
        )
    }

    axum::Router::new()
        .route(
            "/_dofs/api/faults",
            get(|State(f): State<Faults>| async move { listing(&f) }).delete(
                |State(f): State<Faults>| async move {
                    f.clear(None);
                    listing(&f)
                },
            ),
        )
        .route(
            "/_dofs/api/faults/{spec}",
            axum::routing::put(
                |State(f): State<Faults>, Path(spec): Path<String>| async move {
                    let reply: Reply = match spec.parse::<FaultSpec>() {
                        Ok(spec) => {
                            f.set(spec);
                            Ok(listing(&f))
                        }
                        Err(e) => Err(bad(e)),
                    };
                    reply
                },
            )
            .delete(
                |State(f): State<Faults>, Path(function): Path<String>| async move {
                    let reply: Reply = match FunctionName::resolve(&function) {
                        Some(function) => {
                            f.clear(Some(function));
                            Ok(listing(&f))
                        }
                        None => Err(bad(format!("{function:?} is not a DOFS function"))),
                    };
                    reply
                },
            ),
        )
        .with_state(faults)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::testkit::{sample_order, MemoryOrderStore};
    use dofs_core::ErrorKind;

    #[test]
    fn specs_parse_and_print_as_function_equals_kind() {
        let spec: FaultSpec = "fulfill_order=unavailable".parse().unwrap();
        assert_eq!(spec.function, FunctionName::FulfillOrder);
        assert_eq!(spec.kind, FaultKind::Unavailable);
        assert_eq!(spec.to_string(), "fulfill_order=unavailable");
        assert!("fulfill_order".parse::<FaultSpec>().is_err());
        assert!("nobody=slow".parse::<FaultSpec>().is_err());
        assert!("validator=broken".parse::<FaultSpec>().is_err());
    }

    #[tokio::test]
    async fn an_unavailable_table_fails_only_its_function_and_only_while_set() {
        let inner: Arc<dyn OrderStore> = Arc::new(MemoryOrderStore::new());
        let faults = Faults::new(&["fulfill_order=unavailable".parse().unwrap()]);
        let fulfil =
            FaultyOrderStore::wrap(Arc::clone(&inner), FunctionName::FulfillOrder, &faults);
        let storage = FaultyOrderStore::wrap(inner, FunctionName::OrderStorage, &faults);
        let order = sample_order(OrderStatus::Pending);
        assert!(storage.insert(&order).await.is_ok());
        let err = fulfil.get(&order.order_id).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
        assert!(err.message.starts_with("fault injected"), "{err:?}");
        assert_eq!(faults.clear(None).len(), 1);
        assert!(fulfil.get(&order.order_id).await.unwrap().is_some());
        assert!(faults.list().is_empty());
    }
}
