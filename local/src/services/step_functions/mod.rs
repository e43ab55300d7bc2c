//! The Step Functions stand-in: executions persisted in SQLite and driven
//! one state at a time by the [`dofs_asl`] interpreter.
//!
//! - [`LocalWorkflow`] is the `Workflow` port (`StartExecution` /
//!   `DescribeExecution`), keyed by execution name (= order id).
//! - [`Engine`] runs due executions: it calls `StateMachine::advance` for one
//!   state at a time and persists the cursor, the next run time and the
//!   history events in one transaction before every Task, when the
//!   execution sleeps and when it ends. The pure states in between (Pass,
//!   Choice, Succeed, Fail) ride along with the next commit: running them
//!   again changes nothing anyone saw, and a commit per state was a writer
//!   round trip per state. A restart therefore resumes every RUNNING
//!   execution at its last completed Task; a task that was running when the
//!   process died is run again, which is the at-least-once behaviour Step
//!   Functions' own retries give and why every task is idempotent.
//! - Each state attempt runs inside its own span (name = the state,
//!   [`state_spans::state_span`]), child of the execution's trace header;
//!   the task it calls gets Root + Parent = that span, as Step Functions
//!   passes its trace on to Lambda and SQS.
//! - [`LocalTasks`] is the `TaskInvoker`: `arn:aws:states:::lambda:invoke`
//!   and `arn:aws:states:::sqs:sendMessage`, shaped like the Step Functions
//!   service integrations
//!   (<https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html>,
//!   <https://docs.aws.amazon.com/step-functions/latest/dg/connect-sqs.html>).

pub mod state_spans;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dofs_core::{
    Clock, ExecutionStatus, ExecutionView, OrderId, OrderSubmission, PortError, StartOutcome,
    Workflow,
};
use dofs_telemetry::TraceHeader;
use rand::SeedableRng;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

use crate::identity::{execution_arn, state_machine_arn};
use crate::observability::metrics::{ExecutionMetric, ServiceMetrics};
use crate::services::lambda::{FunctionName, Functions};
use crate::services::sqs::{MessageAttribute, OutgoingMessage, QueueError, Queues};
use crate::shutdown::Shutdown;
use crate::store::{CachedStatements, Db, DbError};
use dofs_asl::{
    Cursor, ExecutionContext, HistoryEvent, HistoryEventKind, Next, StateMachine, TaskCall,
    TaskFailure, TaskInvoker,
};

/// The `${...}` placeholders of the workflow file and their local values,
/// for a `dofs serve` at `base_url`.
pub fn template_vars(base_url: &str) -> BTreeMap<String, String> {
    use crate::identity::{queue_arn, queue_url, DEAD_LETTER_QUEUE, ORDER_QUEUE};
    let mut vars: BTreeMap<String, String> = FunctionName::ALL
        .into_iter()
        .map(|f| (format!("{}_function_arn", f.as_str()), f.arn()))
        .collect();
    vars.extend([
        (
            "order_queue_url".to_owned(),
            queue_url(base_url, ORDER_QUEUE),
        ),
        ("order_queue_arn".to_owned(), queue_arn(ORDER_QUEUE)),
        (
            "dead_letter_queue_url".to_owned(),
            queue_url(base_url, DEAD_LETTER_QUEUE),
        ),
        (
            "dead_letter_queue_arn".to_owned(),
            queue_arn(DEAD_LETTER_QUEUE),
        ),
    ]);
    vars
}

/// The status as Step Functions names it (`RUNNING`, `TIMED_OUT`, ...).
pub fn status_name(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "RUNNING",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
    }
}

fn parse_status(text: &str) -> Result<ExecutionStatus, DbError> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(DbError::from)
}

/// One execution as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExecutionRecord {
    pub name: String,
    pub status: ExecutionStatus,
    pub input: Value,
    pub trace_header: Option<String>,
    pub started_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    #[serde(skip)]
    pub cursor: Option<Cursor>,
    /// When a RUNNING execution is due to run its cursor (Unix ms).
    #[serde(skip)]
    pub next_run_ms: Option<i64>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DbError::Corrupt(format!("bad timestamp {text:?}: {e}")))
}

/// The X-Ray trace header execution `name` was started with (the order's
/// trace), if it was started with one.
pub fn trace_header(conn: &Connection, name: &str) -> Result<Option<String>, DbError> {
    let header: Option<Option<String>> = conn
        .query_row(
            "SELECT trace_header FROM executions WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(header.flatten())
}

/// Reads one execution.
pub fn load_execution(conn: &Connection, name: &str) -> Result<Option<ExecutionRecord>, DbError> {
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let row: Option<Row> = conn.query_row_cached(
            "SELECT status, input, trace_header, cursor, started_at, stopped_at, output, error, cause,
                    next_run_ms
             FROM executions WHERE name = ?1",
            [name],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .optional()?;
    let Some((
        status,
        input,
        trace_header,
        cursor,
        started_at,
        stopped_at,
        output,
        error,
        cause,
        next_run_ms,
    )) = row
    else {
        return Ok(None);
    };
    Ok(Some(ExecutionRecord {
        name: name.to_owned(),
        status: parse_status(&status)?,
        input: serde_json::from_str(&input)?,
        trace_header,
        started_at: parse_time(&started_at)?,
        stopped_at: stopped_at.as_deref().map(parse_time).transpose()?,
        output: output.as_deref().map(serde_json::from_str).transpose()?,
        error,
        cause,
        cursor: cursor.as_deref().map(serde_json::from_str).transpose()?,
        next_run_ms,
    }))
}

/// The history events of one execution, oldest first.
pub fn load_events(conn: &Connection, name: &str) -> Result<Vec<Value>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT seq, kind, state, at, detail FROM execution_events WHERE execution = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(seq, kind, state, at, detail)| {
            Ok(json!({
                "id": seq,
                "type": kind,
                "state": state,
                "timestamp": at,
                "detail": serde_json::from_str::<Value>(&detail)?,
            }))
        })
        .collect()
}

/// A history event ready for its row. The JSON is made by the caller, off
/// the writer thread: every write waits for that thread, so nothing that
/// can be done before it is done on it.
struct EventRow {
    kind: HistoryEventKind,
    state: Option<String>,
    at: String,
    detail: String,
}

impl EventRow {
    fn all(events: Vec<HistoryEvent>) -> Vec<Self> {
        events
            .into_iter()
            .map(|event| Self {
                at: event.at.to_rfc3339(),
                kind: event.kind,
                state: event.state,
                detail: String::from(Box::<str>::from(event.detail)),
            })
            .collect()
    }
}

fn append_events(conn: &Connection, name: &str, events: &[EventRow]) -> Result<(), DbError> {
    let mut seq: i64 = conn.query_row_cached(
        "SELECT coalesce(max(seq), 0) FROM execution_events WHERE execution = ?1",
        [name],
        |r| r.get(0),
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO execution_events(execution, seq, kind, state, at, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for event in events {
        seq += 1;
        insert.execute(params![
            name,
            seq,
            event.kind.as_str(),
            event.state,
            event.at,
            event.detail
        ])?;
    }
    Ok(())
}

/// The `Workflow` port on the executions table.
#[derive(Clone)]
pub struct LocalWorkflow {
    db: Db,
    clock: Arc<dyn Clock>,
    machine: Arc<StateMachine>,
    handoff: Arc<Handoff>,
    metrics: ServiceMetrics,
}

/// Executions started since the engine last looked, and the engine's wake-up
/// call. A start hands its execution to the engine here, after the commit,
/// so the engine need not scan the executions table to find new work; the
/// table stays the truth (see [`Engine::run`]).
#[derive(Default)]
struct Handoff {
    started: Mutex<Queued>,
    wake: Notify,
}

/// Execution names waiting for a worker, oldest first, each at most once:
/// a scan during a backlog finds the queued executions again, and queuing
/// them twice made every second drive a wasted read.
#[derive(Default)]
struct Queued {
    order: VecDeque<String>,
    names: HashSet<String>,
}

impl Queued {
    fn push(&mut self, name: String) {
        if self.names.insert(name.clone()) {
            self.order.push_back(name);
        }
    }

    fn pop(&mut self) -> Option<String> {
        let name = self.order.pop_front()?;
        self.names.remove(&name);
        Some(name)
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Handoff {
    fn started(&self) -> std::sync::MutexGuard<'_, Queued> {
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
            self.handoff.started().push(started);
            self.handoff.wake.notify_one();
        }
        Ok(outcome)
    }

    async fn describe(&self, order_id: &OrderId) -> Result<Option<ExecutionView>, PortError> {
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
                Ok(ExecutionView {
                    status: r.status,
                    input,
                    started_at: r.started_at,
                })
            })
            .transpose()
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Executions advanced concurrently.
    pub workers: usize,
    /// How often due executions are looked for when nothing wakes the engine.
    pub poll_interval: Duration,
}

/// Runs the executions of one state machine.
pub struct Engine {
    db: Db,
    clock: Arc<dyn Clock>,
    machine: Arc<StateMachine>,
    tasks: Arc<dyn TaskInvoker>,
    handoff: Arc<Handoff>,
    metrics: ServiceMetrics,
    config: EngineConfig,
    running: Mutex<HashSet<String>>,
    /// The earliest wake-up (Unix ms) of an execution that went to sleep
    /// since the scheduler last looked; `i64::MAX` for none.
    earliest_sleep_ms: AtomicI64,
}

/// What one scan of the executions table found.
struct Scan {
    due: Vec<String>,
    /// More were due than asked for.
    more: bool,
    /// When the next sleeping execution is due, if any.
    next_at_ms: Option<i64>,
}

/// Why driving an execution stopped early.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Engine {
    fn new(
        workflow: &LocalWorkflow,
        tasks: Arc<dyn TaskInvoker>,
        config: EngineConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            db: workflow.db.clone(),
            clock: Arc::clone(&workflow.clock),
            machine: Arc::clone(&workflow.machine),
            tasks,
            handoff: Arc::clone(&workflow.handoff),
            metrics: workflow.metrics.clone(),
            config,
            running: Mutex::new(HashSet::new()),
            earliest_sleep_ms: AtomicI64::new(i64::MAX),
        })
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        match self.running.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// RUNNING executions due now (oldest first, at most `limit`, none that
    /// is being driven) and when the next sleeping one is due, in one read.
    async fn scan(&self, limit: usize) -> Result<Scan, DbError> {
        let now = self.clock.now().timestamp_millis();
        let busy: Vec<String> = self.running().iter().cloned().collect();
        self.db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT name FROM executions WHERE status = 'RUNNING' AND next_run_ms <= ?1
                     ORDER BY next_run_ms LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![now, (limit + busy.len() + 1) as i64], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                let mut due: Vec<String> = rows.into_iter().filter(|n| !busy.contains(n)).collect();
                let more = due.len() > limit;
                due.truncate(limit);
                let next_at_ms: Option<i64> = conn.query_row_cached(
                    "SELECT min(next_run_ms) FROM executions WHERE status = 'RUNNING' AND next_run_ms > ?1",
                    [now],
                    |r| r.get(0),
                )?;
                Ok(Scan { due, more, next_at_ms })
            })
            .await
    }

    /// Takes `name` for driving unless it is being driven already.
    fn claim(&self, name: &str) -> bool {
        self.running().insert(name.to_owned())
    }

    /// The scheduler: drives executions, each in its own task, at most
    /// `workers` at a time, until `shutdown` turns true; then waits for the
    /// running ones to reach their next commit.
    ///
    /// New executions come from [`LocalWorkflow::start`]'s handoff queue.
    /// The executions table is scanned only for the rest — executions left
    /// RUNNING by an earlier process, retries and Waits coming due — at
    /// start, when a sleeping execution comes due, every `poll_interval`
    /// regardless (so nothing depends on the handoff alone), and at once
    /// again while a scan finds more than `workers` and nothing else is
    /// queued. What a scan finds joins the same queue, where no execution
    /// waits twice; one driven again anyway (a scan reads the table while
    /// it finishes) is driven from its last commit, which is always correct.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let slots = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let mut handles = tokio::task::JoinSet::new();
        let mut next_scan = tokio::time::Instant::now();
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let now = tokio::time::Instant::now();
            let sleeper = self.earliest_sleep_ms.swap(i64::MAX, Ordering::SeqCst);
            if sleeper != i64::MAX {
                next_scan = next_scan.min(now + self.until(sleeper));
            }
            if now >= next_scan {
                next_scan = now + self.config.poll_interval;
                // Found executions queue behind the started ones. While
                // that queue is long, the engine is busy anyway: a scan
                // for more waits for the interval (a scan per finished
                // execution made a backlog feed on itself).
                match self.scan(self.config.workers.max(1)).await {
                    Ok(scan) => {
                        let mut started = self.handoff.started();
                        if scan.more && started.is_empty() {
                            next_scan = now;
                        } else if let Some(at) = scan.next_at_ms {
                            next_scan = next_scan.min(now + self.until(at));
                        }
                        for name in scan.due {
                            started.push(name);
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "could not list due executions"),
                }
            }
            let mut ready: Vec<String> = Vec::new();
            {
                let mut started = self.handoff.started();
                while ready.len() < slots.available_permits() {
                    let Some(name) = started.pop() else {
                        break;
                    };
                    // Already being driven (found by a scan while its start
                    // was being queued): that drive takes it on.
                    if self.claim(&name) {
                        ready.push(name);
                    }
                }
            }
            for name in ready {
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    // Cannot happen (one task takes permits); if it did,
                    // the next scan finds the execution again.
                    self.running().remove(&name);
                    continue;
                };
                let engine = Arc::clone(&self);
                let stop = shutdown.clone();
                handles.spawn(async move {
                    match engine.drive(&name, Some(&stop)).await {
                        Ok(Some(until)) => {
                            engine
                                .earliest_sleep_ms
                                .fetch_min(until.timestamp_millis(), Ordering::SeqCst);
                        }
                        Ok(None) => {}
                        Err(err) => {
                            tracing::error!(execution = %name, error = %err, "execution step failed; will retry");
                        }
                    }
                    engine.running().remove(&name);
                    drop(permit);
                    engine.handoff.wake.notify_one();
                });
            }
            while handles.try_join_next().is_some() {}
            // With every slot taken, only a finishing drive (which wakes
            // this loop) can make room; a due scan waits for it.
            let wait = if slots.available_permits() == 0 {
                self.config.poll_interval
            } else {
                next_scan.saturating_duration_since(tokio::time::Instant::now())
            };
            tokio::select! {
                _ = self.handoff.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.triggered() => {}
            }
        }
        while handles.join_next().await.is_some() {}
    }

    /// How long from now until the Unix time `at_ms`, by the engine's clock.
    fn until(&self, at_ms: i64) -> Duration {
        let now = self.clock.now().timestamp_millis();
        Duration::from_millis(at_ms.saturating_sub(now).max(0) as u64)
    }

    /// Runs every execution that is due now until each sleeps or ends, one
    /// after the other; returns how many were driven (for tests and tools).
    pub async fn run_due_once(&self) -> Result<usize, EngineError> {
        let due = self.scan(usize::MAX / 4).await?.due;
        for name in &due {
            self.drive(name, None).await?;
        }
        Ok(due.len())
    }

    /// Advances one execution state by state until it sleeps, ends, or
    /// `stop` turns true. The cursor and history are committed before every
    /// Task (a completed Task's result is durable before the next Task
    /// starts), when the execution sleeps, and when it ends; pure states
    /// (Pass, Choice, Succeed, Fail) ride along with the next commit.
    /// Returns when the execution is due again if it went to sleep.
    pub async fn drive(
        &self,
        name: &str,
        stop: Option<&Shutdown>,
    ) -> Result<Option<DateTime<Utc>>, EngineError> {
        let owned = name.to_owned();
        let Some(record) = self
            .db
            .read(move |conn| load_execution(conn, &owned))
            .await?
        else {
            return Ok(None);
        };
        if record.status != ExecutionStatus::Running {
            return Ok(None);
        }
        // Queued twice and put to sleep (a retry back-off, a Wait) by the
        // other drive: not due yet.
        if let Some(due) = record.next_run_ms {
            if due > self.clock.now().timestamp_millis() {
                return Ok(DateTime::from_timestamp_millis(due));
            }
        }
        let Some(mut cursor) = record.cursor.clone() else {
            return Err(DbError::Corrupt(format!("running execution {name} has no cursor")).into());
        };
        let ctx = ExecutionContext {
            execution_name: name.to_owned(),
            execution_arn: execution_arn(name),
            state_machine_arn: state_machine_arn(),
            start_time: record.started_at,
            trace_header: record.trace_header.clone(),
            input: record.input.clone(),
        };
        let mut rng = rand::rngs::StdRng::from_os_rng();
        // History events of the steps run since the last commit.
        let mut pending: Vec<HistoryEvent> = Vec::new();
        loop {
            if stop.is_some_and(Shutdown::is_triggered) && pending.is_empty() {
                return Ok(None);
            }
            let now = self.clock.now();
            if let Some(deadline) = self.machine.deadline(record.started_at) {
                if now >= deadline {
                    let update = Update::Failed(
                        "States.Timeout".into(),
                        format!(
                            "the execution did not finish within {:?}",
                            self.machine.timeout().unwrap_or_default()
                        ),
                        ExecutionStatus::TimedOut,
                        now,
                    );
                    let event = HistoryEvent::new(
                        HistoryEventKind::ExecutionTimedOut,
                        None,
                        now,
                        &json!({"error": "States.Timeout"}),
                    );
                    pending.push(event);
                    self.persist(name, update, pending).await?;
                    return Ok(None);
                }
            }
            let span = state_spans::state_span(
                name,
                &cursor.state,
                cursor.retry_count() + 1,
                record.trace_header.as_deref(),
            );
            let step_ctx = ExecutionContext {
                trace_header: state_spans::task_trace_header(&span)
                    .or_else(|| child_header(record.trace_header.as_deref())),
                ..ctx.clone()
            };
            let step = self
                .machine
                .advance(cursor, &step_ctx, self.tasks.as_ref(), now, &mut rng)
                .instrument(span.clone())
                .await;
            state_spans::finish_state_span(&span, &step.events);
            drop(span);
            let at = self.clock.now();
            pending.extend(step.events);
            let mut sleeps_until = None;
            let (update, again) = match step.next {
                // A pure state next: run it before committing, so the
                // cursor after it is written together with this one's events.
                // A crash in between re-runs this step from the last commit,
                // exactly as for a crash during the step itself.
                Next::Continue(next) if !self.machine.has_side_effects(&next.state) => {
                    cursor = next;
                    continue;
                }
                Next::Continue(next) => (Update::Cursor(next.clone(), at), Some(next)),
                Next::Sleep {
                    cursor: next,
                    until,
                } => {
                    sleeps_until = Some(until);
                    (Update::Cursor(next, until), None)
                }
                Next::Succeeded { output } => (Update::Succeeded(output, at), None),
                Next::Failed { error, cause } => (
                    Update::Failed(error, cause, ExecutionStatus::Failed, at),
                    None,
                ),
            };
            self.persist(name, update, std::mem::take(&mut pending))
                .await?;
            match again {
                Some(next) => cursor = next,
                None => return Ok(sleeps_until),
            }
        }
    }

    async fn persist(
        &self,
        name: &str,
        update: Update,
        mut events: Vec<HistoryEvent>,
    ) -> Result<(), DbError> {
        let name = name.to_owned();
        // The JSON is made here, off the writer thread (see `EventRow`).
        let change = match update {
            Update::Cursor(cursor, due) => {
                Change::Cursor(serde_json::to_string(&cursor)?, due.timestamp_millis())
            }
            Update::Succeeded(output, at) => {
                if !events
                    .iter()
                    .any(|e| e.kind == HistoryEventKind::ExecutionSucceeded)
                {
                    events.push(HistoryEvent::new(
                        HistoryEventKind::ExecutionSucceeded,
                        None,
                        at,
                        &json!({"output": output}),
                    ));
                }
                Change::Succeeded(serde_json::to_string(&output)?, at.to_rfc3339())
            }
            Update::Failed(error, cause, status, at) => {
                if !events.iter().any(|e| e.kind.ends_in_failure()) {
                    events.push(HistoryEvent::new(
                        HistoryEventKind::ExecutionFailed,
                        None,
                        at,
                        &json!({"error": error, "cause": cause}),
                    ));
                }
                Change::Failed(error, cause, status, at.to_rfc3339())
            }
        };
        let rows = EventRow::all(events);
        let closed = self
            .db
            .write(move |conn| {
                match change {
                    Change::Cursor(cursor, due_ms) => {
                        conn.execute_cached(
                            "UPDATE executions SET cursor = ?2, next_run_ms = ?3 WHERE name = ?1 AND status = 'RUNNING'",
                            params![name, cursor, due_ms],
                        )?;
                        append_events(conn, &name, &rows)?;
                        Ok(None)
                    }
                    Change::Succeeded(output, at) => {
                        let closed = conn.execute_cached(
                            "UPDATE executions SET status = 'SUCCEEDED', cursor = NULL, next_run_ms = NULL,
                                 output = ?2, stopped_at = ?3 WHERE name = ?1 AND status = 'RUNNING'",
                            params![name, output, at],
                        )?;
                        append_events(conn, &name, &rows)?;
                        Ok((closed > 0).then_some(ExecutionMetric::Succeeded))
                    }
                    Change::Failed(error, cause, status, at) => {
                        let closed = conn.execute_cached(
                            "UPDATE executions SET status = ?4, cursor = NULL, next_run_ms = NULL,
                                 error = ?2, cause = ?3, stopped_at = ?5 WHERE name = ?1 AND status = 'RUNNING'",
                            params![name, error, cause, status_name(status), at],
                        )?;
                        append_events(conn, &name, &rows)?;
                        let metric = match status {
                            ExecutionStatus::TimedOut => ExecutionMetric::TimedOut,
                            ExecutionStatus::Aborted => ExecutionMetric::Aborted,
                            _ => ExecutionMetric::Failed,
                        };
                        Ok((closed > 0).then_some(metric))
                    }
                }
            })
            .await?;
        // Counted once committed, as CloudWatch counts what happened.
        if let Some(metric) = closed {
            self.metrics.execution(metric);
        }
        Ok(())
    }
}

/// What a drive step learned about an execution.
enum Update {
    Cursor(Cursor, DateTime<Utc>),
    Succeeded(Value, DateTime<Utc>),
    Failed(String, String, ExecutionStatus, DateTime<Utc>),
}

/// An [`Update`] as the row change it makes, JSON already serialized.
enum Change {
    /// The next cursor and when it is due (Unix ms).
    Cursor(String, i64),
    /// The output and the stop time.
    Succeeded(String, String),
    Failed(String, String, ExecutionStatus, String),
}

/// The task integrations the workflow uses, on the local functions and
/// queues.
pub struct LocalTasks {
    functions: Arc<Functions>,
    queues: Queues,
}

impl LocalTasks {
    pub fn new(functions: Arc<Functions>, queues: Queues) -> Self {
        Self { functions, queues }
    }

    async fn lambda_invoke(
        &self,
        mut parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        let target = parameters
            .get("FunctionName")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                failure(
                    "States.Runtime",
                    "lambda:invoke needs a FunctionName string",
                )
            })?;
        let function = FunctionName::resolve(target).ok_or_else(|| {
            failure(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {target}"),
            )
        })?;
        // Taken, not copied: the parameters are this call's own.
        let payload = parameters
            .get_mut("Payload")
            .map(Value::take)
            .unwrap_or_else(|| json!({}));
        match self
            .functions
            .invoke(function, payload, call.trace_header.clone())
            .await
        {
            Ok(output) => Ok(Value::Object(serde_json::Map::from_iter([
                ("Payload".to_owned(), output),
                ("StatusCode".to_owned(), Value::from(200)),
                ("ExecutedVersion".to_owned(), Value::from("$LATEST")),
            ]))),
            Err(err) => Err(TaskFailure {
                error: err.error_type.clone(),
                cause: err.to_json().to_string(),
            }),
        }
    }

    async fn sqs_send(&self, mut parameters: Value, call: &TaskCall) -> Result<Value, TaskFailure> {
        let url = parameters
            .get("QueueUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| failure("States.Runtime", "sqs:sendMessage needs a QueueUrl string"))?;
        let queue = Queues::name_from_url(url)
            .map(str::to_owned)
            .ok_or_else(|| {
                failure(
                    "SQS.QueueDoesNotExistException",
                    format!("bad QueueUrl {url}"),
                )
            })?;
        // A JSON object or array is sent as its JSON text; a string as is.
        let body = match parameters.get_mut("MessageBody").map(Value::take) {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => {
                return Err(failure(
                    "States.Runtime",
                    "sqs:sendMessage needs a MessageBody",
                ))
            }
        };
        let attributes: BTreeMap<String, MessageAttribute> =
            match parameters.get("MessageAttributes") {
                Some(value) => serde_json::from_value(value.clone())
                    .map_err(|e| failure("SQS.InvalidParameterValueException", e.to_string()))?,
                None => BTreeMap::new(),
            };
        let delay = parameters
            .get("DelaySeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        let sent = self
            .queues
            .send(
                &queue,
                OutgoingMessage {
                    body,
                    attributes,
                    trace_header: call.trace_header.clone(),
                    delay,
                },
            )
            .await
            .map_err(|err| match err {
                QueueError::NonExistentQueue(q) => failure(
                    "SQS.QueueDoesNotExistException",
                    format!("The specified queue does not exist: {q}"),
                ),
                QueueError::Db(db) => failure("SQS.AmazonSQSException", db.to_string()),
            })?;
        Ok(json!({"MessageId": sent.message_id, "MD5OfMessageBody": sent.md5_of_body}))
    }
}

fn failure(error: &str, cause: impl Into<String>) -> TaskFailure {
    TaskFailure {
        error: error.to_owned(),
        cause: cause.into(),
    }
}

/// The execution's trace with a fresh parent segment for one state, when
/// spans are not traced (no telemetry): the tasks still pass a header on.
fn child_header(header: Option<&str>) -> Option<String> {
    let header = header?;
    match header.parse::<TraceHeader>() {
        Ok(parsed) => Some(
            parsed
                .with_parent(dofs_telemetry::trace_header::new_segment_id())
                .to_string(),
        ),
        Err(_) => Some(header.to_owned()),
    }
}

#[async_trait]
impl TaskInvoker for LocalTasks {
    async fn invoke(
        &self,
        resource: &str,
        parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        let work = async {
            match resource {
                "arn:aws:states:::lambda:invoke" => self.lambda_invoke(parameters, call).await,
                "arn:aws:states:::sqs:sendMessage" => self.sqs_send(parameters, call).await,
                other => Err(failure(
                    "States.Runtime",
                    format!("resource {other} is not supported by the local runtime"),
                )),
            }
        };
        match call.timeout {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(failure(
                    "States.Timeout",
                    format!("Task timed out after {} seconds", limit.as_secs_f64()),
                ))
            }),
            None => work.await,
        }
    }
}
