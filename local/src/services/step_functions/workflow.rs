//! [`LocalWorkflow`], the `Workflow` port: `StartExecution` (with Step
//! Functions' execution-name rule) and `DescribeExecution`, and the hand-off
//! of each new execution to the [`Engine`] made from it.

use super::engine::{Engine, EngineConfig};
use super::store::{append_events, load_execution, EventRow};

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dofs_core::{
    Clock, ExecutionView, OrderId, OrderSubmission, PortError, StartOutcome, Workflow,
};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::observability::metrics::{ExecutionMetric, ServiceMetrics};
use crate::store::{CachedStatements, Db};
use dofs_asl::{HistoryEvent, HistoryEventKind, StateMachine, TaskInvoker};

/// The `Workflow` port on the executions table.
#[derive(Clone)]
pub struct LocalWorkflow {
    pub(super) db: Db,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) machine: Arc<StateMachine>,
    pub(super) handoff: Arc<Handoff>,
    pub(super) metrics: ServiceMetrics,
}

/// Executions started since the engine last looked, and the engine's wake-up
/// call. A start hands its execution to the engine here, after the commit,
/// so the engine need not scan the executions table to find new work; the
/// table stays the truth (see [`Engine::run`]).
#[derive(Default)]
pub(super) struct Handoff {
    pub(super) started: Mutex<Queued>,
    pub(super) wake: Notify,
}

/// Execution names waiting for a worker, oldest first, each at most once:
/// a scan during a backlog finds the queued executions again, and queuing
/// them twice made every second drive a wasted read.
#[derive(Default)]
pub(super) struct Queued {
    order: VecDeque<String>,
    names: HashSet<String>,
}

impl Queued {
    pub(super) fn push(&mut self, name: String) {
        if self.names.insert(name.clone()) {
            self.order.push_back(name);
        }
    }

    pub(super) fn pop(&mut self) -> Option<String> {
        let name = self.order.pop_front()?;
        self.names.remove(&name);
        Some(name)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Handoff {
    pub(super) fn queue(&self) -> std::sync::MutexGuard<'_, Queued> {
        match self.started.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl LocalWorkflow {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        machine: Arc<StateMachine>,
        metrics: ServiceMetrics,
    ) -> Self {
        Self {
            db,
            clock,
            machine,
            handoff: Arc::default(),
            metrics,
        }
    }

    /// The engine that runs this workflow's executions. The two share the
    /// hand-off of newly started executions, so an engine belongs to the
    /// workflow it was made from.
    pub fn engine(&self, tasks: Arc<dyn TaskInvoker>, config: EngineConfig) -> Arc<Engine> {
        Engine::new(self, tasks, config)
    }
}

#[async_trait]
impl Workflow for LocalWorkflow {
    /// Step Functions' `StartExecution` name rule: same name and same input
    /// is idempotent, same name with another input is
    /// `ExecutionAlreadyExists`. (AWS also refuses the same input once the
    /// execution has closed; the port asks for idempotency throughout, which
    /// is what a client retrying a finished order needs.)
    async fn start(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError> {
        let input = serde_json::to_value(submission).map_err(|e| {
            PortError::internal("could not serialize the submission").with_source(e)
        })?;
        let name = submission.order_id.to_string();
        let started = name.clone();
        let now = self.clock.now();
        let cursor = self.machine.start(input.clone());
        let trace_header = trace_header.map(str::to_owned);
        let serialized = (|| -> Result<_, serde_json::Error> {
            let started = HistoryEvent::new(
                HistoryEventKind::ExecutionStarted,
                None,
                now,
                &json!({"input": input, "traceHeader": trace_header}),
            );
            Ok((
                serde_json::to_string(&input)?,
                serde_json::to_string(&cursor)?,
                started,
            ))
        })();
        let (input_json, cursor_json, started_event) = serialized
            .map_err(|e| PortError::internal("could not serialize the execution").with_source(e))?;
        let events = EventRow::all(vec![started_event]);
        let created = self
            .db
            .write(move |conn| {
                let existing: Option<String> = conn.query_row_cached("SELECT input FROM executions WHERE name = ?1", [&name], |r| r.get(0))
                    .optional()?;
                if let Some(existing) = existing {
                    let existing: Value = serde_json::from_str(&existing)?;
                    let input: Value = serde_json::from_str(&input_json)?;
                    return Ok(if existing == input {
                        (StartOutcome::Started, false)
                    } else {
                        (StartOutcome::AlreadyExists, false)
                    });
                }
                conn.execute_cached(
                    "INSERT INTO executions(name, input, trace_header, status, cursor, next_run_ms, started_at)
                     VALUES (?1, ?2, ?3, 'RUNNING', ?4, ?5, ?6)",
                    params![
                        name,
                        input_json,
                        trace_header,
                        cursor_json,
                        now.timestamp_millis(),
                        now.to_rfc3339(),
                    ],
                )?;
                append_events(conn, &name, &events)?;
                Ok((StartOutcome::Started, true))
            })
            .await?;
        let (outcome, created) = created;
        if created {
            self.metrics.execution(ExecutionMetric::Started);
            self.handoff.queue().push(started);
            self.handoff.wake.notify_one();
        }
        Ok(outcome)
    }

    /// DescribeExecution with its `traceHeader`: the header the execution
    /// was started with, so an idempotent replay names the order's trace.
    async fn describe_traced(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<(ExecutionView, Option<String>)>, PortError> {
        let name = order_id.to_string();
        let record = self
            .db
            .read(move |conn| load_execution(conn, &name))
            .await?;
        record
            .map(|r| {
                let input: OrderSubmission = serde_json::from_value(r.input).map_err(|e| {
                    PortError::internal("stored execution input is not a submission").with_source(e)
                })?;
                let view = ExecutionView {
                    status: r.status,
                    input,
                    started_at: r.started_at,
                };
                Ok((view, r.trace_header))
            })
            .transpose()
    }
}
