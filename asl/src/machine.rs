//! The interpreter proper: [`StateMachine::advance`] runs one state.
//!
//! Data flow per state, in AWS order: raw input → InputPath → Parameters →
//! (task) → ResultSelector → ResultPath (merged into the *raw* input) → OutputPath.
//! Catch also merges its error output into the raw input
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html>).
//!
//! Quotas (<https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>)
//! are checked on the way: a task's input after `Parameters`, a task's
//! result and every state's output against the payload size, a Wait's delay,
//! and the history size of the whole execution (see [`crate::quotas`]).

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::definition::{FailField, Kind, Seconds, State, Task, Transition, WaitFor};
use super::path::{truncated, Path, ReferencePath};
use super::payload::json_size;
use super::retry::is_terminal;
use super::{
    errors, quotas, Cursor, ExecutionContext, HistoryEvent, HistoryEventKind, IntegrationPattern,
    Next, StateMachine, StateType, Step, TaskCall, TaskFailure, TaskInvoker,
};

/// The time now, read each time an event is recorded.
pub type StepClock<'a> = &'a (dyn Fn() -> DateTime<Utc> + Sync);

/// Collects the events of one step.
struct Recorder<'a> {
    state: &'a str,
    /// Stamps each event with the time it happened, so a task's
    /// `TaskSucceeded` comes after its `TaskScheduled` by as long as the
    /// task took.
    clock: StepClock<'a>,
    events: Vec<HistoryEvent>,
    /// History events of the execution before this step.
    base: u64,
    /// The id of the current state's `...StateEntered` event.
    entered: u64,
    /// The execution's redrive count and time, carried to the next cursor.
    redrive: (u32, Option<DateTime<Utc>>),
}

/// `{"input": ...}`, serialized from a borrow (no copy of the input).
#[derive(Serialize)]
struct InputDetail<'a> {
    input: &'a Value,
}

/// `{"output": ...}`, serialized from a borrow.
#[derive(Serialize)]
struct OutputDetail<'a> {
    output: &'a Value,
}

/// The length of `{"output":` and `}` around the output in an [`OutputDetail`].
const OUTPUT_DETAIL_OVERHEAD: usize = r#"{"output":}"#.len();

/// The `TaskScheduled` detail.
#[derive(Serialize)]
struct ScheduledDetail<'a> {
    resource: &'a str,
    parameters: &'a Value,
    attempt: u32,
    timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_seconds: Option<u64>,
}

impl Recorder<'_> {
    fn push(&mut self, kind: HistoryEventKind, detail: &impl Serialize) {
        self.events.push(HistoryEvent::new(
            kind,
            Some(self.state.to_owned()),
            (self.clock)(),
            detail,
        ));
    }

    fn execution(&mut self, kind: HistoryEventKind, detail: &impl Serialize) {
        self.events
            .push(HistoryEvent::new(kind, None, (self.clock)(), detail));
    }

    /// An error the interpreter raised while processing the state, with the
    /// cause prefixed as Step Functions prefixes it ("An error occurred while
    /// executing the state 'X' (entered at the event id #N). ...", as
    /// execution histories recorded on AWS show).
    fn in_state(&self, failure: TaskFailure) -> TaskFailure {
        TaskFailure {
            cause: format!(
                "An error occurred while executing the state '{}' (entered at the event id #{}). {}",
                self.state, self.entered, failure.cause
            ),
            ..failure
        }
    }

    /// The step's outcome, within the history quota: the execution fails
    /// when its history reaches 25,000 events, the failure being event
    /// 25,000 ("If the execution history reaches this quota, the execution
    /// will fail"; error and cause as executions on AWS report them).
    fn finish(mut self, next: Next) -> Step {
        let limit = quotas::MAX_HISTORY_EVENTS;
        let total = self.base + self.events.len() as u64;
        let ended = matches!(next, Next::Succeeded { .. } | Next::Failed { .. });
        let mut next = next;
        if total >= limit && !(ended && total <= limit) {
            let keep = usize::try_from((limit - 1).saturating_sub(self.base)).unwrap_or(0);
            self.events.truncate(keep);
            let failure = TaskFailure::new(
                errors::RUNTIME,
                format!("The execution reached the maximum number of history events ({limit})."),
            );
            next = fail_execution(&mut self, failure);
        } else {
            match &mut next {
                Next::Continue(cursor) | Next::Sleep { cursor, .. } => {
                    cursor.events = total;
                    (cursor.redrive_count, cursor.redrive_time) = self.redrive;
                }
                Next::Succeeded { .. } | Next::Failed { .. } => {}
            }
        }
        Step {
            next,
            events: self.events,
        }
    }
}

impl StateMachine {
    /// Runs exactly one state from `cursor` and says what happens next. Pure apart
    /// from the task call: the host persists the returned cursor before the next
    /// Task, so a crash resumes at the last completed Task and re-runs only pure
    /// states. `now` is the time of the step (for events, `$$.State.EnteredTime`,
    /// and retry/Wait wake-ups); `rng` drives retry jitter, task tokens,
    /// `States.UUID` and `States.MathRandom`. Every event of the step is
    /// stamped `now`; [`StateMachine::advance_timed`] stamps each with the
    /// time it happened.
    pub async fn advance(
        &self,
        cursor: Cursor,
        ctx: &ExecutionContext,
        tasks: &dyn TaskInvoker,
        now: DateTime<Utc>,
        rng: &mut (dyn RngCore + Send),
    ) -> Step {
        self.advance_timed(cursor, ctx, tasks, &move || now, rng)
            .await
    }

    /// [`StateMachine::advance`] with a clock read for each event, as a
    /// host does: a task's `TaskScheduled` is stamped before the call, its
    /// `TaskSucceeded`/`TaskFailed` after it returns, and a retry's back-off
    /// runs from the failure. The step's own time (`$$.State.EnteredTime`,
    /// a Wait's wake-up) is the clock when it begins.
    pub async fn advance_timed(
        &self,
        cursor: Cursor,
        ctx: &ExecutionContext,
        tasks: &dyn TaskInvoker,
        clock: StepClock<'_>,
        rng: &mut (dyn RngCore + Send),
    ) -> Step {
        let now = clock();
        let mut cursor = cursor;
        let Some((name, state)) = self.definition.states.get_key_value(&cursor.state) else {
            let mut rec = Recorder {
                state: &cursor.state,
                clock,
                events: Vec::new(),
                base: cursor.events,
                entered: cursor.entered_event,
                redrive: (cursor.redrive_count, cursor.redrive_time),
            };
            let failure = TaskFailure::new(
                errors::RUNTIME,
                format!("the cursor names unknown state '{}'", cursor.state),
            );
            let next = fail_execution(&mut rec, failure);
            return rec.finish(next);
        };
        let mut rec = Recorder {
            state: name,
            clock,
            events: Vec::new(),
            base: cursor.events,
            entered: cursor.entered_event,
            redrive: (cursor.redrive_count, cursor.redrive_time),
        };
        let state_type = state.kind.state_type();
        if cursor.entered_at.is_none() {
            cursor.entered_at = Some(now);
            rec.push(
                HistoryEventKind::StateEntered(state_type),
                &InputDetail {
                    input: &cursor.input,
                },
            );
            rec.entered = rec.base + rec.events.len() as u64;
            cursor.entered_event = rec.entered;
        }
        // "$$.Task.Token" exists for the callback pattern only; a new token
        // for every attempt.
        let token = match &state.kind {
            Kind::Task(task)
                if IntegrationPattern::of(&task.resource)
                    == IntegrationPattern::WaitForTaskToken =>
            {
                Some(task_token(rng))
            }
            _ => None,
        };
        let task_state = matches!(state.kind, Kind::Task(_));
        let context = self.context_object(ctx, &cursor, now, task_state, token.as_deref());
        let result = match &state.kind {
            // A Task handles its own errors (Retry, Catch).
            Kind::Task(task) => Ok(self
                .run_task(
                    task, state, cursor, ctx, &context, token, tasks, rng, &mut rec,
                )
                .await),
            Kind::Pass {
                parameters,
                result,
                result_path,
                transition,
            } => (|| {
                let effective = input_path(state, &cursor.input, &context)?;
                // Parameters is evaluated even when Result replaces it: it is
                // the input of the Pass state's "virtual task", whose output
                // Result is (ASL spec, Pass State). Unverified: whether AWS
                // evaluates it then.
                let effective = match parameters {
                    Some(template) => template.eval(&effective, &context, rng)?,
                    None => effective,
                };
                let result = result.clone().unwrap_or(effective);
                let merged = apply_result_path(result_path.as_ref(), cursor.input.clone(), result)?;
                let output = output_path(state, merged, &context)?;
                Ok(self.leave(state_type, output, transition, &mut rec))
            })(),
            Kind::Choice { choices, default } => (|| {
                let effective = input_path(state, &cursor.input, &context)?;
                let mut target = None;
                for branch in choices {
                    if branch.rule.eval(&effective, &context)? {
                        target = Some(&branch.next);
                        break;
                    }
                }
                let target = target.or(default.as_ref()).ok_or_else(|| {
                    TaskFailure::new(
                        errors::NO_CHOICE_MATCHED,
                        "No Choice rule matched the input and the state has no Default.",
                    )
                })?;
                let output = output_path(state, effective, &context)?;
                Ok(self.leave(
                    state_type,
                    output,
                    &Transition::Next(target.clone()),
                    &mut rec,
                ))
            })(),
            Kind::Wait { wait, transition } => (|| {
                let effective = input_path(state, &cursor.input, &context)?;
                if cursor.waited {
                    let output = output_path(state, effective, &context)?;
                    return Ok(self.leave(state_type, output, transition, &mut rec));
                }
                let until = wait_until(wait, &effective, &context, now)?;
                let mut sleeping = cursor.clone();
                sleeping.waited = true;
                Ok(Next::Sleep {
                    cursor: sleeping,
                    until,
                })
            })(),
            Kind::Succeed => (|| {
                let effective = input_path(state, &cursor.input, &context)?;
                let output = output_path(state, effective, &context)?;
                Ok(self.leave(state_type, output, &Transition::End, &mut rec))
            })(),
            Kind::Fail { error, cause } => (|| {
                let error = fail_field(error.as_ref(), &cursor.input, &context, "ErrorPath", rng)?;
                let cause = fail_field(cause.as_ref(), &cursor.input, &context, "CausePath", rng)?;
                rec.execution(
                    HistoryEventKind::ExecutionFailed,
                    &json!({ "error": error, "cause": cause }),
                );
                Ok(Next::Failed { error, cause })
            })(),
        };
        let next = match result {
            Ok(next) => next,
            // No state but a Task can retry or catch: an error fails the execution.
            Err(failure) => {
                let failure = rec.in_state(failure);
                fail_execution(&mut rec, failure)
            }
        };
        rec.finish(next)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_task(
        &self,
        task: &Task,
        state: &State,
        cursor: Cursor,
        ctx: &ExecutionContext,
        context: &Value,
        task_token: Option<String>,
        tasks: &dyn TaskInvoker,
        rng: &mut (dyn RngCore + Send),
        rec: &mut Recorder<'_>,
    ) -> Next {
        let prepared = (|| {
            let effective = input_path(state, &cursor.input, context)?;
            let parameters = match &task.parameters {
                Some(template) => template.eval(&effective, context, rng)?,
                None => effective.clone(),
            };
            let timeout = resolve_seconds(task.timeout.as_ref(), &effective, context)?;
            let heartbeat = resolve_seconds(task.heartbeat.as_ref(), &effective, context)?;
            let credentials = task
                .credentials
                .as_ref()
                .map(|template| template.eval(&effective, context, rng))
                .transpose()?;
            Ok((parameters, timeout, heartbeat, credentials))
        })();
        let (parameters, timeout, heartbeat, credentials) = match prepared {
            Ok(prepared) => prepared,
            Err(failure) => {
                let failure = rec.in_state(failure);
                return self.task_failed(task, cursor, failure, rng, rec);
            }
        };
        // "When, after Parameters processing, the input of a state is larger
        // than the payload size quota" (States.DataLimitExceeded). The cause
        // is our own wording, after the one AWS gives for results.
        if json_size(&parameters) > quotas::MAX_PAYLOAD_BYTES {
            let failure = TaskFailure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state/task '{}' has an input with a size exceeding the maximum number of bytes service limit.",
                    rec.state
                ),
            );
            return self.task_failed(task, cursor, failure, rng, rec);
        }
        let call = TaskCall {
            execution_name: ctx.execution_name.clone(),
            state: rec.state.to_owned(),
            attempt: cursor.retry_count() + 1,
            trace_header: ctx.trace_header.clone(),
            timeout: timeout.map(std::time::Duration::from_secs),
            heartbeat: heartbeat.map(std::time::Duration::from_secs),
            pattern: IntegrationPattern::of(&task.resource),
            task_token,
            credentials,
        };
        rec.push(
            HistoryEventKind::TaskScheduled,
            &ScheduledDetail {
                resource: &task.resource,
                parameters: &parameters,
                attempt: call.attempt,
                timeout_seconds: timeout,
                heartbeat_seconds: heartbeat,
            },
        );
        let result = match tasks.invoke(&task.resource, parameters, &call).await {
            Ok(result) => result,
            Err(failure) => {
                let kind = if failure.error == errors::TIMEOUT
                    || failure.error == errors::HEARTBEAT_TIMEOUT
                {
                    HistoryEventKind::TaskTimedOut
                } else {
                    HistoryEventKind::TaskFailed
                };
                rec.push(
                    kind,
                    &json!({ "error": failure.error, "cause": failure.cause }),
                );
                return self.task_failed(task, cursor, failure, rng, rec);
            }
        };
        rec.push(
            HistoryEventKind::TaskSucceeded,
            &OutputDetail { output: &result },
        );
        if output_size(rec) > quotas::MAX_PAYLOAD_BYTES {
            // "When the output of a connector is larger than payload size
            // quota": recorded on AWS as a TaskFailed, the cause naming the
            // integration ('lambda') or the Lambda function's ARN.
            rec.events.pop();
            let failure = TaskFailure::new(
                errors::DATA_LIMIT_EXCEEDED,
                format!(
                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                    resource_label(&task.resource)
                ),
            );
            rec.push(
                HistoryEventKind::TaskFailed,
                &json!({ "error": failure.error, "cause": failure.cause }),
            );
            return self.task_failed(task, cursor, failure, rng, rec);
        }
        match finish_task(task, state, &cursor.input, result, context, rng) {
            Ok(output) => match self.try_leave(StateType::Task, output, &task.transition, rec) {
                Ok(next) => next,
                Err(too_large) => self.task_failed(task, cursor, too_large, rng, rec),
            },
            // Unverified: a ResultSelector/ResultPath failure is an error the
            // state reports, so its retriers apply and a retry calls the task
            // again ("When a state reports an error, Step Functions scans
            // through the retriers"); States.Runtime stays terminal.
            Err(failure) => {
                let failure = rec.in_state(failure);
                self.task_failed(task, cursor, failure, rng, rec)
            }
        }
    }

    /// Error handling for a Task: the first matching retrier retries (if it has
    /// attempts left), else the first matching catcher routes, else the execution fails.
    fn task_failed(
        &self,
        task: &Task,
        mut cursor: Cursor,
        failure: TaskFailure,
        rng: &mut (dyn RngCore + Send),
        rec: &mut Recorder<'_>,
    ) -> Next {
        if is_terminal(&failure.error) {
            return fail_execution(rec, failure);
        }
        if let Some((index, retrier)) = task
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(&failure.error))
        {
            let key = index.to_string();
            let done = cursor.retries.get(&key).copied().unwrap_or(0);
            if done < retrier.max_attempts {
                let delay = retrier.delay(done, rng);
                // The back-off runs from the failure, not the step's start.
                let until = (rec.clock)() + delay;
                cursor.retries.insert(key, done + 1);
                rec.push(
                    HistoryEventKind::TaskRetryScheduled,
                    &json!({
                        "error": failure.error,
                        "retrier": index,
                        "retry": done + 1,
                        "delay_ms": delay.num_milliseconds(),
                        "until": until.to_rfc3339_opts(SecondsFormat::Millis, true),
                    }),
                );
                return Next::Sleep { cursor, until };
            }
        }
        if let Some(catcher) = task.catch.iter().find(|c| c.matches(&failure.error)) {
            let error_output = json!({ "Error": failure.error, "Cause": failure.cause });
            return match apply_result_path(catcher.result_path.as_ref(), cursor.input, error_output)
            {
                Ok(output) => self.leave(
                    StateType::Task,
                    output,
                    &Transition::Next(catcher.next.clone()),
                    rec,
                ),
                Err(failure) => {
                    let failure = rec.in_state(failure);
                    fail_execution(rec, failure)
                }
            };
        }
        fail_execution(rec, failure)
    }

    /// Leaves the current state with `output`; an output over the payload
    /// quota fails the execution ([`StateMachine::try_leave`]).
    fn leave(
        &self,
        state_type: StateType,
        output: Value,
        transition: &Transition,
        rec: &mut Recorder<'_>,
    ) -> Next {
        self.try_leave(state_type, output, transition, rec)
            .unwrap_or_else(|too_large| fail_execution(rec, too_large))
    }

    /// Leaves the current state with `output`, unless the output is over the
    /// payload quota ("When the output of a state is larger than payload
    /// size quota"): then nothing is recorded and the error is
    /// `States.DataLimitExceeded`, with the cause executions recorded on AWS
    /// show. The size is read off the `...StateExited` event, serialized
    /// anyway.
    fn try_leave(
        &self,
        state_type: StateType,
        output: Value,
        transition: &Transition,
        rec: &mut Recorder<'_>,
    ) -> Result<Next, TaskFailure> {
        rec.push(
            HistoryEventKind::StateExited(state_type),
            &OutputDetail { output: &output },
        );
        if output_size(rec) > quotas::MAX_PAYLOAD_BYTES {
            rec.events.pop();
            return Err(state_output_too_large(rec.state));
        }
        Ok(match transition {
            Transition::Next(next) => Next::Continue(Cursor::at(next, output)),
            Transition::End => {
                rec.execution(
                    HistoryEventKind::ExecutionSucceeded,
                    &OutputDetail { output: &output },
                );
                Next::Succeeded { output }
            }
        })
    }

    /// The context object (`$$`) as a state of this kind sees it
    /// (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>).
    fn context_object(
        &self,
        ctx: &ExecutionContext,
        cursor: &Cursor,
        now: DateTime<Utc>,
        task_state: bool,
        task_token: Option<&str>,
    ) -> Value {
        let time = |t: DateTime<Utc>| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true));
        let machine_name = ctx.state_machine_arn.rsplit(':').next().unwrap_or_default();
        let mut execution = Map::new();
        execution.insert("Id".into(), Value::String(ctx.execution_arn.clone()));
        execution.insert("Input".into(), ctx.input.clone());
        execution.insert("Name".into(), Value::String(ctx.execution_name.clone()));
        execution.insert(
            "RoleArn".into(),
            Value::String(
                self.role_arn()
                    .map_or_else(|| default_role_arn(&ctx.state_machine_arn), str::to_owned),
            ),
        );
        execution.insert("StartTime".into(), time(ctx.start_time));
        // "The value of the RedriveCount context object is 0, if you've not
        // yet redriven an execution. Further, the RedriveTime context object
        // is only available if you've redriven an execution."
        execution.insert("RedriveCount".into(), Value::from(cursor.redrive_count));
        if let Some(at) = cursor.redrive_time {
            execution.insert("RedriveTime".into(), time(at));
        }
        let mut state = Map::new();
        state.insert("EnteredTime".into(), time(cursor.entered_at.unwrap_or(now)));
        state.insert("Name".into(), Value::String(cursor.state.clone()));
        // Unverified: RetryCount only where Retry exists (Task states);
        // executions recorded on AWS show no RetryCount in a Pass state.
        if task_state {
            state.insert("RetryCount".into(), Value::from(cursor.retry_count()));
        }
        let mut context = Map::new();
        context.insert("Execution".into(), Value::Object(execution));
        context.insert("State".into(), Value::Object(state));
        context.insert(
            "StateMachine".into(),
            json!({ "Id": ctx.state_machine_arn, "Name": machine_name }),
        );
        // "The value for a Task field is null if the Parameters field is
        // outside of a task state"; recorded executions show no Task field
        // at all there. Unverified: absent too in a Task state without
        // `.waitForTaskToken`, the only pattern with a token.
        if let Some(token) = task_token {
            context.insert("Task".into(), json!({ "Token": token }));
        }
        Value::Object(context)
    }
}

/// The size of the output in the last event pushed (an [`OutputDetail`]).
fn output_size(rec: &Recorder<'_>) -> usize {
    rec.events.last().map_or(0, |e| {
        e.detail.get().len().saturating_sub(OUTPUT_DETAIL_OVERHEAD)
    })
}

fn state_output_too_large(state: &str) -> TaskFailure {
    TaskFailure::new(
        errors::DATA_LIMIT_EXCEEDED,
        format!(
            "The state/task '{state}' returned a result with a size exceeding the maximum number of bytes service limit."
        ),
    )
}

/// How Step Functions names a task in a DataLimitExceeded cause: the service
/// of an optimized integration (`arn:aws:states:::lambda:invoke` → `lambda`),
/// else the resource itself (a Lambda function's ARN), as recorded on AWS.
fn resource_label(resource: &str) -> &str {
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    match parts[..] {
        ["arn", _, "states", _, _, service, _] if !service.is_empty() && service != "activity" => {
            service
        }
        _ => resource,
    }
}

/// `arn:<partition>:iam::<account>:role/<state machine name>-role`, the
/// role shown when the host names none (unverified: a local stand-in).
fn default_role_arn(state_machine_arn: &str) -> String {
    let parts: Vec<&str> = state_machine_arn.split(':').collect();
    let partition = parts
        .get(1)
        .copied()
        .filter(|p| !p.is_empty())
        .unwrap_or("aws");
    let account = parts
        .get(4)
        .copied()
        .filter(|a| !a.is_empty())
        .unwrap_or("000000000000");
    let name = parts.last().copied().unwrap_or("state-machine");
    format!("arn:{partition}:iam::{account}:role/{name}-role")
}

/// A task token: 48 random bytes in Base64, opaque like Step Functions'.
fn task_token(rng: &mut (dyn RngCore + Send)) -> String {
    let mut bytes = [0u8; 48];
    rng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// ResultSelector → ResultPath → OutputPath on a task's result.
fn finish_task(
    task: &Task,
    state: &State,
    input: &Value,
    result: Value,
    context: &Value,
    rng: &mut (dyn RngCore + Send),
) -> Result<Value, TaskFailure> {
    let selected = match &task.result_selector {
        Some(template) => template.eval(&result, context, rng)?,
        None => result,
    };
    let merged = apply_result_path(task.result_path.as_ref(), input.clone(), selected)?;
    output_path(state, merged, context)
}

fn fail_execution(rec: &mut Recorder<'_>, failure: TaskFailure) -> Next {
    rec.execution(
        HistoryEventKind::ExecutionFailed,
        &json!({ "error": failure.error, "cause": failure.cause }),
    );
    Next::Failed {
        error: failure.error,
        cause: failure.cause,
    }
}

/// `InputPath`: `null` gives `{}`.
fn input_path(state: &State, input: &Value, context: &Value) -> Result<Value, TaskFailure> {
    match &state.input_path {
        None => Ok(Value::Object(Map::new())),
        Some(path) if path.text() == "$" => Ok(input.clone()),
        Some(path) => path.select_path_field(input, context),
    }
}

/// `OutputPath`: `null` gives `{}`.
fn output_path(state: &State, value: Value, context: &Value) -> Result<Value, TaskFailure> {
    match &state.output_path {
        None => Ok(Value::Object(Map::new())),
        Some(path) if path.text() == "$" => Ok(value),
        Some(path) => path.select_path_field(&value, context),
    }
}

/// `ResultPath`: `None` (`null`) keeps the input unchanged.
fn apply_result_path(
    path: Option<&ReferencePath>,
    input: Value,
    result: Value,
) -> Result<Value, TaskFailure> {
    match path {
        None => Ok(input),
        Some(path) => path.write(input, result),
    }
}

/// A Task's `TimeoutSeconds`/`HeartbeatSeconds`, or the value its `...Path`
/// selects from the state's input after InputPath (unverified: the page says
/// "from the state input"), which must be a positive integer.
fn resolve_seconds(
    seconds: Option<&Seconds>,
    effective: &Value,
    context: &Value,
) -> Result<Option<u64>, TaskFailure> {
    match seconds {
        None => Ok(None),
        Some(Seconds::Fixed(n)) => Ok(Some(*n)),
        Some(Seconds::Path(path, field)) => {
            let value = path.select_path_field(effective, context)?;
            value.as_u64().filter(|n| *n >= 1).map(Some).ok_or_else(|| {
                TaskFailure::new(
                    errors::RUNTIME,
                    format!(
                        "The {field} parameter does not reference a positive integer: {} == {}",
                        path.text(),
                        plain(&value)
                    ),
                )
            })
        }
    }
}

/// A value in a Wait parameter cause: a string as it is, anything else as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => truncated(other),
    }
}

/// When a Wait state wakes up. The causes are worded as executions recorded
/// on AWS word them.
fn wait_until(
    wait: &WaitFor,
    effective: &Value,
    context: &Value,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, TaskFailure> {
    let runtime = |cause: String| TaskFailure::new(errors::RUNTIME, cause);
    let missing = |field: &str, path: &Path| {
        runtime(format!(
            "The {field} parameter does not reference an input value: {}",
            path.text()
        ))
    };
    let until = match wait {
        WaitFor::Seconds(n) => now + chrono::Duration::seconds(*n),
        WaitFor::SecondsPath(path) => {
            let value = path
                .lookup(effective, context)
                .ok_or_else(|| missing("SecondsPath", path))?;
            let seconds = value
                .as_i64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    runtime(format!(
                        "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                        path.text(),
                        plain(&value)
                    ))
                })?;
            if seconds < 0 {
                return Err(runtime(format!(
                    "The SecondsPath parameter references a negative value: {} == {}",
                    path.text(),
                    plain(&value)
                )));
            }
            if seconds > quotas::MAX_WAIT_SECONDS {
                return Err(runtime("Wait state delay is too long.".to_owned()));
            }
            now + chrono::Duration::seconds(seconds)
        }
        WaitFor::Timestamp(at) => *at,
        WaitFor::TimestampPath(path) => {
            let value = path
                .lookup(effective, context)
                .ok_or_else(|| missing("TimestampPath", path))?;
            value
                .as_str()
                .and_then(super::choice::timestamp)
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    runtime(format!(
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                        path.text(),
                        plain(&value)
                    ))
                })?
        }
    };
    if (until - now).num_seconds() > quotas::MAX_WAIT_SECONDS {
        return Err(runtime("Wait state delay is too long.".to_owned()));
    }
    Ok(until)
}

fn fail_field(
    field: Option<&FailField>,
    input: &Value,
    context: &Value,
    name: &str,
    rng: &mut (dyn RngCore + Send),
) -> Result<String, TaskFailure> {
    match field {
        None => Ok(String::new()),
        Some(FailField::Literal(text)) => Ok(text.clone()),
        Some(FailField::Dynamic(expr)) => match expr.eval(input, context, name, rng)? {
            Value::String(text) => Ok(text),
            other => Err(TaskFailure::new(
                errors::RUNTIME,
                format!(
                    "The {name} of the Fail state must select a string, got {}",
                    truncated(&other)
                ),
            )),
        },
    }
}
