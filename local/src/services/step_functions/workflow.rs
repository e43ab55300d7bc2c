//! [`LocalWorkflow`], the `Workflow` port: `StartExecution` (with Step
//! Functions' execution-name rule) and `DescribeExecution`, and the hand-off
//! of each new execution to the [`Engine`] made from it.
//!
//! **Standard or Express**, as the state machine's `type`
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html>):
//! an Express workflow's asynchronous executions are *at-least-once* and
//! their names are not deduplicated, so here an Express start never looks
//! for an execution of that name, and [`ExpressStarts::Twice`] starts every
//! execution twice — the worst AWS allows, for tests of the idempotent
//! steps. Express has no `DescribeExecution` (its history goes only to
//! CloudWatch Logs), so `describe_traced` refuses. The runtime still keeps
//! every execution's history: that is what the execution log would hold.

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
use crate::observability::usage::HistoryUsage;
use crate::store::{CachedStatements, Db};
use dofs_asl::{HistoryEvent, HistoryEventKind, StateMachine, TaskInvoker};
use dofs_cost::WorkflowType;

/// The `Workflow` port on the executions table.
#[derive(Clone)]
pub struct LocalWorkflow {
    pub(super) db: Db,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) machine: Arc<StateMachine>,
    pub(super) handoff: Arc<Handoff>,
    pub(super) metrics: ServiceMetrics,
    pub(super) workflow_type: WorkflowType,
    pub(super) express_starts: ExpressStarts,
}

/// How many executions an Express `StartExecution` starts: AWS promises at
/// least one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExpressStarts {
    #[default]
    Once,
    Twice,
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
            workflow_type: WorkflowType::Standard,
            express_starts: ExpressStarts::Once,
        }
    }

    /// The workflow as a state machine of `workflow_type`; `express_starts`
    /// applies to Express only.
    pub fn with_type(mut self, workflow_type: WorkflowType, express_starts: ExpressStarts) -> Self {
        self.workflow_type = workflow_type;
        self.express_starts = express_starts;
        self
    }

    pub fn workflow_type(&self) -> WorkflowType {
        self.workflow_type
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
    /// `StartExecution`: once, or for [`ExpressStarts::Twice`] twice.
    async fn start(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError> {
        let starts = match (self.workflow_type, self.express_starts) {
            (WorkflowType::Standard, _) | (WorkflowType::Express, ExpressStarts::Once) => 1,
            (WorkflowType::Express, ExpressStarts::Twice) => 2,
        };
        let mut outcome = StartOutcome::Started;
        for _ in 0..starts {
            outcome = self.start_one(submission, trace_header).await?;
        }
        Ok(outcome)
    }

    /// DescribeExecution with its `traceHeader`: the header the execution
    /// was started with. Standard only: Express has no DescribeExecution.
    async fn describe_traced(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<(ExecutionView, Option<String>)>, PortError> {
        if self.workflow_type == WorkflowType::Express {
            return Err(PortError::invalid_input(
                "DescribeExecution is not supported for Express executions",
            ));
        }
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

impl LocalWorkflow {
    /// One `StartExecution`. Standard: same name and same input is
    /// idempotent, same name with another input is `ExecutionAlreadyExists`.
    /// (AWS also refuses the same input once the execution has closed; the
    /// port asks for idempotency throughout, which is what a client
    /// retrying a finished order needs.) Express: always a new execution,
    /// named after the order, then `<order>#2`, `#3`, … as the runtime keys
    /// executions by name.
    async fn start_one(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError> {
        let express = self.workflow_type == WorkflowType::Express;
        let input = serde_json::to_value(submission).map_err(|e| {
            PortError::internal("could not serialize the submission").with_source(e)
        })?;
        let order_name = submission.order_id.to_string();
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
                let name = if express {
                    free_express_name(conn, &order_name)?
                } else {
                    order_name
                };
                let existing: Option<String> = conn.query_row_cached("SELECT input FROM executions WHERE name = ?1", [&name], |r| r.get(0))
                    .optional()?;
                if let Some(existing) = existing {
                    let existing: Value = serde_json::from_str(&existing)?;
                    let input: Value = serde_json::from_str(&input_json)?;
                    return Ok(if existing == input {
                        (StartOutcome::Started, None)
                    } else {
                        (StartOutcome::AlreadyExists, None)
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
                Ok((StartOutcome::Started, Some(name)))
            })
            .await?;
        let (outcome, created) = created;
        if let Some(name) = created {
            self.metrics.execution(ExecutionMetric::Started);
            let usage = self.metrics.usage();
            usage.execution_started();
            usage.history(&HistoryUsage::of(
                &name,
                [(HistoryEventKind::ExecutionStarted, None)],
            ));
            self.handoff.queue().push(name);
            self.handoff.wake.notify_one();
        }
        Ok(outcome)
    }
}

/// The first of `order`, `order#2`, `order#3`, … that names no execution.
fn free_express_name(conn: &rusqlite::Connection, order: &str) -> Result<String, rusqlite::Error> {
    let taken: i64 = conn.query_row_cached(
        "SELECT count(*) FROM executions
         WHERE name = ?1 OR substr(name, 1, length(?1) + 1) = ?1 || '#'",
        [order],
        |r| r.get(0),
    )?;
    Ok(match taken {
        0 => order.to_owned(),
        n => format!("{order}#{}", n + 1),
    })
}
