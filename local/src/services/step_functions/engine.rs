//! [`Engine`]: the scheduler that finds due executions (handed off at start,
//! or found by a scan after a restart, a sleep or a retry), and `drive`,
//! which advances one execution state by state and persists it before
//! every Task, when it sleeps and when it ends.

use super::state_spans;
use super::store::{append_events, load_execution, status_name, EventRow, ExecutionRecord};
use super::tasks::child_header;
use super::workflow::{Handoff, LocalWorkflow};

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dofs_core::{Clock, ExecutionStatus};
use rand::SeedableRng;
use rusqlite::params;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::identity::{execution_arn, state_machine_arn};
use crate::observability::metrics::{ExecutionMetric, ServiceMetrics};
use crate::observability::usage::HistoryUsage;
use crate::services::backoff::FailureBackoff;
use crate::shutdown::Shutdown;
use crate::store::{CachedStatements, Db, DbError};
use dofs_asl::{
    Cursor, ExecutionContext, HistoryEvent, HistoryEventKind, Next, StateMachine, TaskInvoker,
};

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
    /// Scans and drives failing on the database (a full disk): they back
    /// off together, since one store is under all of them.
    backoff: Mutex<Backoff>,
}

/// The engine's back-off and how long it holds scans back.
struct Backoff {
    failures: FailureBackoff,
    hold_until: Option<tokio::time::Instant>,
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
    pub(super) fn new(
        workflow: &LocalWorkflow,
        tasks: Arc<dyn TaskInvoker>,
        config: EngineConfig,
    ) -> Arc<Self> {
        let config_poll = config.poll_interval;
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
            backoff: Mutex::new(Backoff {
                failures: FailureBackoff::new("workflow engine", config_poll),
                hold_until: None,
            }),
        })
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a failed scan or drive; scans wait out the back-off.
    fn failed(&self, error: &dyn std::fmt::Display) -> tokio::time::Instant {
        let mut backoff = self.backoff();
        let until = tokio::time::Instant::now() + backoff.failures.failed(error);
        backoff.hold_until = Some(until);
        until
    }

    fn succeeded(&self) {
        let mut backoff = self.backoff();
        if backoff.failures.failures() > 0 {
            backoff.failures.succeeded();
            backoff.hold_until = None;
        }
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
    /// New executions come from the handoff queue that [`LocalWorkflow`]'s `start` fills.
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
            next_scan = self.schedule_scan(next_scan).await;
            self.dispatch_ready(&slots, &mut handles, &shutdown);
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

    /// Scans the executions table when a scan is due (or a sleeper came
    /// due), queues what it found behind the started executions, and
    /// returns when the next scan is due.
    async fn schedule_scan(&self, mut next_scan: tokio::time::Instant) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        if let Some(hold) = self.backoff().hold_until.filter(|hold| now < *hold) {
            return hold;
        }
        let sleeper = self.earliest_sleep_ms.swap(i64::MAX, Ordering::SeqCst);
        if sleeper != i64::MAX {
            next_scan = next_scan.min(now + self.until(sleeper));
        }
        if now < next_scan {
            return next_scan;
        }
        next_scan = now + self.config.poll_interval;
        // Found executions queue behind the started ones. While that queue
        // is long the engine is busy anyway, so a scan for more waits for
        // the interval rather than feed a backlog with rescans.
        match self.scan(self.config.workers.max(1)).await {
            Ok(scan) => {
                let mut queued = self.handoff.queue();
                if scan.more && queued.is_empty() {
                    next_scan = now;
                } else if let Some(at) = scan.next_at_ms {
                    next_scan = next_scan.min(now + self.until(at));
                }
                for name in scan.due {
                    queued.push(name);
                }
            }
            Err(err) => {
                let error = format!("could not list due executions: {err}");
                next_scan = self.failed(&error);
            }
        }
        next_scan
    }

    /// Starts a drive for each queued execution there is a free slot for.
    fn dispatch_ready(
        self: &Arc<Self>,
        slots: &Arc<Semaphore>,
        handles: &mut tokio::task::JoinSet<()>,
        shutdown: &Shutdown,
    ) {
        let mut ready: Vec<String> = Vec::new();
        {
            let mut queued = self.handoff.queue();
            while ready.len() < slots.available_permits() {
                let Some(name) = queued.pop() else {
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
            let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                // Cannot happen (one task takes permits); if it did, the
                // next scan finds the execution again.
                self.running().remove(&name);
                continue;
            };
            let engine = Arc::clone(self);
            let stop = shutdown.clone();
            handles.spawn(async move {
                match engine.drive(&name, Some(&stop)).await {
                    Ok(Some(until)) => {
                        engine.succeeded();
                        engine
                            .earliest_sleep_ms
                            .fetch_min(until.timestamp_millis(), Ordering::SeqCst);
                    }
                    Ok(None) => engine.succeeded(),
                    Err(err) => {
                        let error = format!("execution {name} step failed, will retry: {err}");
                        engine.failed(&error);
                    }
                }
                engine.running().remove(&name);
                drop(permit);
                engine.handoff.wake.notify_one();
            });
        }
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
            return Err(DbError::corrupt(format!("running execution {name} has no cursor")).into());
        };
        let ctx = execution_context(name, &record);
        let mut rng = rand::rngs::StdRng::from_os_rng();
        // History events of the steps run since the last commit.
        let mut pending: Vec<HistoryEvent> = Vec::new();
        loop {
            if stop.is_some_and(Shutdown::is_triggered) && pending.is_empty() {
                return Ok(None);
            }
            let now = self.clock.now();
            if let Some((update, event)) = self.timed_out(record.started_at, now) {
                pending.push(event);
                self.persist(name, update, pending).await?;
                return Ok(None);
            }
            // The execution timeout ends the execution when it passes, even
            // in the middle of a task, as on AWS (the Lambda invocation, its
            // own task, runs on; its result is not recorded).
            let step = match self.machine.deadline(record.started_at) {
                Some(deadline) => {
                    let left = self.until(deadline.timestamp_millis());
                    let step = tokio::time::timeout(left, self.run_state(cursor, &ctx, &mut rng));
                    match step.await {
                        Ok(step) => step,
                        Err(_) => {
                            let now = self.clock.now().max(deadline);
                            if let Some((update, event)) = self.timed_out(record.started_at, now) {
                                pending.push(event);
                                self.persist(name, update, pending).await?;
                            }
                            return Ok(None);
                        }
                    }
                }
                None => self.run_state(cursor, &ctx, &mut rng).await,
            };
            pending.extend(step.events);
            match self.plan(step.next, self.clock.now()) {
                Plan::RunPure(next) => cursor = next,
                Plan::Commit { update, then } => {
                    self.persist(name, update, std::mem::take(&mut pending))
                        .await?;
                    match then {
                        Then::Continue(next) => cursor = next,
                        Then::Sleep(until) => return Ok(Some(until)),
                        Then::End => return Ok(None),
                    }
                }
            }
        }
    }

    /// The execution-level timeout, if it has passed: the update that ends
    /// the execution and its `ExecutionTimedOut` event.
    fn timed_out(
        &self,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<(Update, HistoryEvent)> {
        let deadline = self.machine.deadline(started_at)?;
        if now < deadline {
            return None;
        }
        let update = Update::Failed(
            dofs_asl::errors::TIMEOUT.into(),
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
            &json!({"error": dofs_asl::errors::TIMEOUT}),
        );
        Some((update, event))
    }

    /// Runs the cursor's state inside its state span; the task it calls
    /// gets Root + Parent = that span. Each history event is stamped by the
    /// engine's clock when it happens, so a task's events are as far apart
    /// as the task took.
    async fn run_state(
        &self,
        cursor: Cursor,
        ctx: &ExecutionContext,
        rng: &mut rand::rngs::StdRng,
    ) -> dofs_asl::Step {
        let span = state_spans::state_span(
            &ctx.execution_name,
            &cursor.state,
            cursor.retry_count() + 1,
            ctx.trace_header.as_deref(),
        );
        let step_ctx = ExecutionContext {
            trace_header: state_spans::task_trace_header(&span)
                .or_else(|| child_header(ctx.trace_header.as_deref())),
            ..ctx.clone()
        };
        let step = self
            .machine
            .advance_timed(
                cursor,
                &step_ctx,
                self.tasks.as_ref(),
                &|| self.clock.now(),
                rng,
            )
            .instrument(span.clone())
            .await;
        state_spans::finish_state_span(&span, &step.events);
        step
    }

    /// What to do after a step. A pure state next runs before committing,
    /// so the cursor after it is written together with this step's events;
    /// a crash in between re-runs this step from the last commit, exactly as
    /// for a crash during the step itself.
    fn plan(&self, next: Next, at: DateTime<Utc>) -> Plan {
        match next {
            Next::Continue(next) if !self.machine.has_side_effects(&next.state) => {
                Plan::RunPure(next)
            }
            Next::Continue(next) => Plan::Commit {
                update: Update::Cursor(next.clone(), at),
                then: Then::Continue(next),
            },
            Next::Sleep {
                cursor: next,
                until,
            } => Plan::Commit {
                update: Update::Cursor(next, until),
                then: Then::Sleep(until),
            },
            Next::Succeeded { output } => Plan::Commit {
                update: Update::Succeeded(output, at),
                then: Then::End,
            },
            Next::Failed { error, cause } => Plan::Commit {
                update: Update::Failed(error, cause, ExecutionStatus::Failed, at),
                then: Then::End,
            },
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
        let history = HistoryUsage::of(&name, events.iter().map(|e| (e.kind, e.state.as_deref())));
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
                        closed_with(conn, &name, closed, ExecutionMetric::Succeeded)
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
                        closed_with(conn, &name, closed, metric)
                    }
                }
            })
            .await?;
        // Counted once committed, as CloudWatch counts what happened.
        let usage = self.metrics.usage();
        usage.history(&history);
        if let Some((metric, duration_ms)) = closed {
            self.metrics.execution(metric);
            usage.execution_ended(duration_ms);
        }
        Ok(())
    }
}

/// `metric` and the execution's duration in ms if this write closed it
/// (`updated` rows), for the metrics and the meter.
fn closed_with(
    conn: &rusqlite::Connection,
    name: &str,
    updated: usize,
    metric: ExecutionMetric,
) -> Result<Option<(ExecutionMetric, u64)>, DbError> {
    if updated == 0 {
        return Ok(None);
    }
    let (started, stopped): (String, String) = conn.query_row_cached(
        "SELECT started_at, stopped_at FROM executions WHERE name = ?1",
        [name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let duration_ms = match (
        DateTime::parse_from_rfc3339(&started),
        DateTime::parse_from_rfc3339(&stopped),
    ) {
        (Ok(started), Ok(stopped)) => (stopped - started).num_milliseconds().max(0) as u64,
        _ => 0,
    };
    Ok(Some((metric, duration_ms)))
}

/// The execution context of a stored execution.
fn execution_context(name: &str, record: &ExecutionRecord) -> ExecutionContext {
    ExecutionContext {
        execution_name: name.to_owned(),
        execution_arn: execution_arn(name),
        state_machine_arn: state_machine_arn(),
        start_time: record.started_at,
        trace_header: record.trace_header.clone(),
        input: record.input.clone(),
    }
}

/// After a step: run the next (pure) state first, or commit.
enum Plan {
    RunPure(Cursor),
    Commit { update: Update, then: Then },
}

/// After a commit.
enum Then {
    Continue(Cursor),
    Sleep(DateTime<Utc>),
    End,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::{render, workflow_vars, WORKFLOW_ASL};
    use dofs_asl::testing::ScriptedTasks;
    use dofs_asl::TaskFailure;
    use dofs_core::testkit::{sample_submission, ManualClock};
    use dofs_core::{OrderId, Workflow};

    /// Answers each task as the real services would.
    fn like_the_services(resource: &str, parameters: &Value) -> Result<Value, TaskFailure> {
        Ok(match resource {
            "arn:aws:states:::lambda:invoke" => {
                let payload = &parameters["Payload"];
                let order = payload
                    .get("order")
                    .cloned()
                    .unwrap_or_else(|| payload.clone());
                // Every lambda answers like the validator accepting the
                // order; the other steps ignore the extra keys.
                json!({"Payload": {"verdict": "valid", "order": order, "reason": null}, "StatusCode": 200})
            }
            _ => json!({"MessageId": "m-1", "MD5OfMessageBody": "x"}),
        })
    }

    struct Setup {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        workflow: LocalWorkflow,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(),
        ));
        let rendered = render(WORKFLOW_ASL, &workflow_vars("http://127.0.0.1:9")).unwrap();
        let machine = Arc::new(StateMachine::from_json(&rendered).unwrap());
        let workflow = LocalWorkflow::new(db, clock.clone(), machine, ServiceMetrics::off());
        Setup {
            _dir: dir,
            clock,
            workflow,
        }
    }

    fn config() -> EngineConfig {
        EngineConfig {
            workers: 4,
            poll_interval: Duration::from_millis(50),
        }
    }

    fn drain(engine: &Engine) -> Vec<String> {
        let mut queue = engine.handoff.queue();
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[tokio::test]
    async fn a_started_execution_is_queued_once_even_when_a_scan_finds_it_too() {
        let s = setup();
        let id = OrderId::generate();
        s.workflow
            .start(&sample_submission(&id), None)
            .await
            .unwrap();
        let engine = s.workflow.engine(Arc::new(ScriptedTasks::new()), config());
        let scan = engine.scan(10).await.unwrap();
        assert_eq!(scan.due, [id.to_string()], "due at once");
        assert!(!scan.more);
        for name in scan.due {
            engine.handoff.queue().push(name);
        }
        assert_eq!(drain(&engine), [id.to_string()], "queued once");
    }

    #[tokio::test]
    async fn an_execution_being_driven_is_neither_claimed_again_nor_scanned() {
        let s = setup();
        let id = OrderId::generate();
        s.workflow
            .start(&sample_submission(&id), None)
            .await
            .unwrap();
        let engine = s.workflow.engine(Arc::new(ScriptedTasks::new()), config());
        assert!(engine.claim(id.as_str()));
        assert!(!engine.claim(id.as_str()));
        assert!(engine.scan(10).await.unwrap().due.is_empty());
    }

    /// Express: no name deduplication (a start with the same name and input
    /// is a new execution), `Twice` starts two per call, and there is no
    /// DescribeExecution. Standard, on the same calls, keeps one.
    #[tokio::test]
    async fn express_starts_are_not_deduplicated_and_cannot_be_described() {
        use crate::services::step_functions::ExpressStarts;
        use dofs_cost::WorkflowType;
        let s = setup();
        let id = OrderId::generate();
        let submission = sample_submission(&id);
        let standard = s.workflow.clone();
        standard.start(&submission, None).await.unwrap();
        standard.start(&submission, None).await.unwrap();
        let engine = standard.engine(Arc::new(ScriptedTasks::new()), config());
        assert_eq!(drain(&engine), [id.to_string()], "Standard: one execution");

        let other = OrderId::generate();
        let express = s
            .workflow
            .clone()
            .with_type(WorkflowType::Express, ExpressStarts::Twice);
        let engine = express.engine(Arc::new(ScriptedTasks::new()), config());
        express
            .start(&sample_submission(&other), None)
            .await
            .unwrap();
        express
            .start(&sample_submission(&other), None)
            .await
            .unwrap();
        assert_eq!(
            drain(&engine),
            [
                other.to_string(),
                format!("{other}#2"),
                format!("{other}#3"),
                format!("{other}#4")
            ],
            "Express, started twice per call: four executions of one name"
        );
        let refused = express.describe(&other).await.unwrap_err();
        assert!(refused.to_string().contains("Express"), "{refused}");
    }

    #[tokio::test]
    async fn a_retrying_execution_sleeps_until_its_back_off_and_the_scan_knows_when() {
        let s = setup();
        let id = OrderId::generate();
        s.workflow
            .start(&sample_submission(&id), None)
            .await
            .unwrap();
        let tasks = Arc::new(
            ScriptedTasks::new()
                .fail("ValidateOrder", "TransientError", "the table is down")
                .otherwise(like_the_services),
        );
        let engine = s.workflow.engine(tasks.clone(), config());
        let until = engine
            .drive(id.as_str(), None)
            .await
            .unwrap()
            .expect("a transient failure retries after a back-off");
        let now = s.clock.now();
        // FULL jitter: the delay is drawn from [0, IntervalSeconds].
        assert!(
            until >= now && until <= now + chrono::Duration::seconds(1),
            "{until}"
        );
        let scan = engine.scan(10).await.unwrap();
        if until > now {
            assert!(scan.due.is_empty(), "not due before its back-off");
            assert_eq!(scan.next_at_ms, Some(until.timestamp_millis()));
        }
        s.clock.advance(chrono::Duration::seconds(2));
        assert_eq!(engine.run_due_once().await.unwrap(), 1);
        assert_eq!(
            tasks.states_called(),
            [
                "ValidateOrder",
                "ValidateOrder",
                "StoreOrder",
                "EnqueueOrder"
            ]
        );
        let view = s.workflow.describe(&id).await.unwrap().unwrap();
        assert_eq!(view.status, ExecutionStatus::Succeeded);
        assert_eq!(engine.run_due_once().await.unwrap(), 0, "nothing left");
    }

    /// The history as stored: (type, state, time) of each event.
    async fn history(s: &Setup, id: &OrderId) -> Vec<(String, String, DateTime<Utc>)> {
        let name = id.to_string();
        let events = s
            .workflow
            .db
            .read(move |c| super::super::store::load_events(c, &name))
            .await
            .unwrap();
        events
            .iter()
            .map(|e| {
                let at = DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["state"].as_str().unwrap_or_default().to_owned(),
                    at.with_timezone(&Utc),
                )
            })
            .collect()
    }

    fn at_of(
        history: &[(String, String, DateTime<Utc>)],
        kind: &str,
        state: &str,
    ) -> Vec<DateTime<Utc>> {
        history
            .iter()
            .filter(|(k, s, _)| k == kind && s == state)
            .map(|e| e.2)
            .collect()
    }

    #[tokio::test]
    async fn each_history_event_carries_the_time_it_happened() {
        let s = setup();
        let id = OrderId::generate();
        s.workflow
            .start(&sample_submission(&id), None)
            .await
            .unwrap();
        // Every task call takes 250 ms by the engine's clock; the first
        // ValidateOrder fails and is retried after its back-off.
        let task_clock = Arc::clone(&s.clock);
        let tasks = Arc::new(
            ScriptedTasks::new()
                .fail("ValidateOrder", "TransientError", "the table is down")
                .otherwise(like_the_services)
                .on_each_call(move |_| task_clock.advance(chrono::Duration::milliseconds(250))),
        );
        let engine = s.workflow.engine(tasks, config());
        let until = engine.drive(id.as_str(), None).await.unwrap().unwrap();
        s.clock.advance(chrono::Duration::seconds(2));
        assert_eq!(engine.run_due_once().await.unwrap(), 1);
        let h = history(&s, &id).await;
        let scheduled = at_of(&h, "TaskScheduled", "StoreOrder");
        let succeeded = at_of(&h, "TaskSucceeded", "StoreOrder");
        assert_eq!(
            succeeded[0] - scheduled[0],
            chrono::Duration::milliseconds(250),
            "{h:#?}"
        );
        assert!(
            at_of(&h, "TaskStateEntered", "StoreOrder")[0] <= scheduled[0],
            "{h:#?}"
        );
        // The failed attempt: its failure 250 ms after it was scheduled, the
        // back-off from the failure, and the retry scheduled after the wait.
        let validate = at_of(&h, "TaskScheduled", "ValidateOrder");
        let failed = at_of(&h, "TaskFailed", "ValidateOrder");
        let retry = at_of(&h, "TaskRetryScheduled", "ValidateOrder");
        assert_eq!(validate.len(), 2, "{h:#?}");
        assert_eq!(failed[0] - validate[0], chrono::Duration::milliseconds(250));
        assert_eq!(retry[0], failed[0]);
        assert!(until >= failed[0], "the back-off runs from the failure");
        assert!(
            validate[1] - failed[0] >= chrono::Duration::seconds(2),
            "{h:#?}"
        );
        let times: Vec<_> = h.iter().map(|e| e.2).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{h:#?}");
    }

    #[tokio::test]
    async fn the_scheduler_drives_a_started_execution_to_its_end_and_stops_on_shutdown() {
        let s = setup();
        let id = OrderId::generate();
        let tasks = Arc::new(ScriptedTasks::new().otherwise(like_the_services));
        let engine = s.workflow.engine(tasks.clone(), config());
        let shutdown = Shutdown::new();
        let running = tokio::spawn(Arc::clone(&engine).run(shutdown.clone()));
        s.workflow
            .start(&sample_submission(&id), None)
            .await
            .unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let view = s.workflow.describe(&id).await.unwrap().unwrap();
            if view.status == ExecutionStatus::Succeeded {
                break;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "still {:?}",
                view.status
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        shutdown.trigger();
        running.await.unwrap();
        assert_eq!(tasks.states_called().len(), 3, "each task once");
    }

    #[tokio::test]
    async fn an_interrupted_execution_resumes_in_a_new_engine_at_its_next_state() {
        let dir = tempfile::tempdir().unwrap();
        let rendered = render(WORKFLOW_ASL, &workflow_vars("http://127.0.0.1:9")).unwrap();
        let machine = Arc::new(StateMachine::from_json(&rendered).unwrap());
        let workflow = |db: &Db| {
            let clock = Arc::new(dofs_core::SystemClock);
            LocalWorkflow::new(
                db.clone(),
                clock,
                Arc::clone(&machine),
                ServiceMetrics::off(),
            )
        };
        let id = OrderId::generate();
        let submission = sample_submission(&id);
        let stop = Shutdown::new();
        {
            let db = Db::open(dir.path()).unwrap();
            let workflow = workflow(&db);
            workflow.start(&submission, None).await.unwrap();
            let stopping = stop.clone();
            let first = Arc::new(
                ScriptedTasks::new()
                    .otherwise(like_the_services)
                    .on_each_call(move |call| {
                        if call.state == "StoreOrder" {
                            stopping.trigger();
                        }
                    }),
            );
            let engine = workflow.engine(first.clone(), config());
            engine.drive(id.as_str(), Some(&stop)).await.unwrap();
            assert_eq!(first.states_called(), ["ValidateOrder", "StoreOrder"]);
            let view = workflow.describe(&id).await.unwrap().unwrap();
            assert_eq!(view.status, ExecutionStatus::Running);
        }
        // "Restart": a new handle on the same data dir, a new engine.
        let db = Db::open(dir.path()).unwrap();
        let workflow = workflow(&db);
        let second = Arc::new(ScriptedTasks::new().otherwise(like_the_services));
        let engine = workflow.engine(second.clone(), config());
        assert_eq!(engine.run_due_once().await.unwrap(), 1);
        assert_eq!(
            second.states_called(),
            ["EnqueueOrder"],
            "no completed task runs twice"
        );
        let view = workflow.describe(&id).await.unwrap().unwrap();
        assert_eq!(view.status, ExecutionStatus::Succeeded);
        assert_eq!(view.input, submission);
        assert_eq!(
            engine.run_due_once().await.unwrap(),
            0,
            "nothing left to run"
        );
    }

    #[tokio::test]
    async fn local_workflow_passes_the_port_contract() {
        let s = setup();
        dofs_core::testkit::contract::workflow(&s.workflow).await;
        dofs_core::testkit::contract::workflow(&s.workflow).await;
        dofs_core::testkit::contract::workflow_trace_header(&s.workflow).await;
    }
}
