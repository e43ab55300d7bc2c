//! The interpreter proper: [`StateMachine::advance`] runs one state.
//!
//! Data flow per state, in AWS order: raw input → InputPath → Parameters →
//! (task) → ResultSelector → ResultPath (merged into the *raw* input) → OutputPath.
//! Catch also merges its error output into the raw input
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html>).

use chrono::{DateTime, SecondsFormat, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::definition::{FailField, Kind, State, Task, Transition, WaitFor};
use super::path::{truncated, Path, ReferencePath};
use super::retry::is_terminal;
use super::{
    errors, Cursor, ExecutionContext, HistoryEvent, HistoryEventKind, Next, StateMachine,
    StateType, Step, TaskCall, TaskFailure, TaskInvoker,
};

/// Collects the events of one step.
struct Recorder<'a> {
    state: &'a str,
    now: DateTime<Utc>,
    events: Vec<HistoryEvent>,
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

/// The `TaskScheduled` detail.
#[derive(Serialize)]
struct ScheduledDetail<'a> {
    resource: &'a str,
    parameters: &'a Value,
    attempt: u32,
    timeout_seconds: Option<u64>,
}

impl Recorder<'_> {
    fn push(&mut self, kind: HistoryEventKind, detail: &impl Serialize) {
        self.events.push(HistoryEvent::new(
            kind,
            Some(self.state.to_owned()),
            self.now,
            detail,
        ));
    }

    fn execution(&mut self, kind: HistoryEventKind, detail: &impl Serialize) {
        self.events
            .push(HistoryEvent::new(kind, None, self.now, detail));
    }

    fn finish(self, next: Next) -> Step {
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
    /// and retry/Wait wake-ups); `rng` drives retry jitter, `States.UUID` and
    /// `States.MathRandom`.
    pub async fn advance(
        &self,
        cursor: Cursor,
        ctx: &ExecutionContext,
        tasks: &dyn TaskInvoker,
        now: DateTime<Utc>,
        rng: &mut (dyn RngCore + Send),
    ) -> Step {
        let mut cursor = cursor;
        let Some((name, state)) = self.definition.states.get_key_value(&cursor.state) else {
            let mut rec = Recorder {
                state: &cursor.state,
                now,
                events: Vec::new(),
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
            now,
            events: Vec::new(),
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
        }
        let context = context_object(ctx, &cursor, now);
        let next = match &state.kind {
            Kind::Task(task) => {
                self.run_task(task, state, cursor, ctx, &context, tasks, rng, &mut rec)
                    .await
            }
            _ => match self.run_local(state, &cursor, &context, rng, &mut rec) {
                Ok(next) => next,
                Err(failure) => fail_execution(&mut rec, failure),
            },
        };
        rec.finish(next)
    }

    /// Every state but Task: none can retry or catch, so an error fails the execution.
    fn run_local(
        &self,
        state: &State,
        cursor: &Cursor,
        context: &Value,
        rng: &mut (dyn RngCore + Send),
        rec: &mut Recorder<'_>,
    ) -> Result<Next, TaskFailure> {
        let state_type = state.kind.state_type();
        match &state.kind {
            Kind::Task(_) => Err(TaskFailure::new(
                errors::RUNTIME,
                "a Task state must run through run_task",
            )),
            Kind::Pass {
                parameters,
                result,
                result_path,
                transition,
            } => {
                let effective = input_path(state, &cursor.input, context)?;
                let effective = match parameters {
                    Some(template) => template.eval(&effective, context, rng)?,
                    None => effective,
                };
                let result = result.clone().unwrap_or(effective);
                let merged = apply_result_path(result_path.as_ref(), cursor.input.clone(), result)?;
                let output = output_path(state, merged, context)?;
                Ok(self.leave(state_type, output, transition, rec))
            }
            Kind::Choice { choices, default } => {
                let effective = input_path(state, &cursor.input, context)?;
                let mut target = None;
                for branch in choices {
                    if branch.rule.eval(&effective, context)? {
                        target = Some(&branch.next);
                        break;
                    }
                }
                let target = target.or(default.as_ref()).ok_or_else(|| {
                    TaskFailure::new(
                        errors::NO_CHOICE_MATCHED,
                        format!(
                            "No Choice rule matched in state '{}' and it has no Default",
                            rec.state
                        ),
                    )
                })?;
                let output = output_path(state, effective, context)?;
                Ok(self.leave(state_type, output, &Transition::Next(target.clone()), rec))
            }
            Kind::Wait { wait, transition } => {
                let effective = input_path(state, &cursor.input, context)?;
                if cursor.waited {
                    let output = output_path(state, effective, context)?;
                    return Ok(self.leave(state_type, output, transition, rec));
                }
                let until = wait_until(wait, &effective, context, rec.now)?;
                let mut sleeping = cursor.clone();
                sleeping.waited = true;
                Ok(Next::Sleep {
                    cursor: sleeping,
                    until,
                })
            }
            Kind::Succeed => {
                let effective = input_path(state, &cursor.input, context)?;
                let output = output_path(state, effective, context)?;
                Ok(self.leave(state_type, output, &Transition::End, rec))
            }
            Kind::Fail { error, cause } => {
                let error = fail_field(error.as_ref(), &cursor.input, context, "ErrorPath", rng)?;
                let cause = fail_field(cause.as_ref(), &cursor.input, context, "CausePath", rng)?;
                rec.execution(
                    HistoryEventKind::ExecutionFailed,
                    &json!({ "error": error, "cause": cause }),
                );
                Ok(Next::Failed { error, cause })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_task(
        &self,
        task: &Task,
        state: &State,
        cursor: Cursor,
        ctx: &ExecutionContext,
        context: &Value,
        tasks: &dyn TaskInvoker,
        rng: &mut (dyn RngCore + Send),
        rec: &mut Recorder<'_>,
    ) -> Next {
        let parameters =
            input_path(state, &cursor.input, context).and_then(|effective| {
                match &task.parameters {
                    Some(template) => template.eval(&effective, context, rng),
                    None => Ok(effective),
                }
            });
        let parameters = match parameters {
            Ok(parameters) => parameters,
            Err(failure) => return self.task_failed(task, cursor, failure, rng, rec),
        };
        let call = TaskCall {
            execution_name: ctx.execution_name.clone(),
            state: rec.state.to_owned(),
            attempt: cursor.retry_count() + 1,
            trace_header: ctx.trace_header.clone(),
            timeout: task.timeout_seconds.map(std::time::Duration::from_secs),
        };
        rec.push(
            HistoryEventKind::TaskScheduled,
            &ScheduledDetail {
                resource: &task.resource,
                parameters: &parameters,
                attempt: call.attempt,
                timeout_seconds: task.timeout_seconds,
            },
        );
        let result = match tasks.invoke(&task.resource, parameters, &call).await {
            Ok(result) => result,
            Err(failure) => {
                let kind = if failure.error == errors::TIMEOUT {
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
        match finish_task(task, state, &cursor.input, result, context, rng) {
            Ok(output) => self.leave(StateType::Task, output, &task.transition, rec),
            Err(failure) => self.task_failed(task, cursor, failure, rng, rec),
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
                let until = rec.now + delay;
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
                Err(failure) => fail_execution(rec, failure),
            };
        }
        fail_execution(rec, failure)
    }

    /// Leaves the current state with `output`.
    fn leave(
        &self,
        state_type: StateType,
        output: Value,
        transition: &Transition,
        rec: &mut Recorder<'_>,
    ) -> Next {
        rec.push(
            HistoryEventKind::StateExited(state_type),
            &OutputDetail { output: &output },
        );
        match transition {
            Transition::Next(next) => Next::Continue(Cursor::at(next, output)),
            Transition::End => {
                rec.execution(
                    HistoryEventKind::ExecutionSucceeded,
                    &OutputDetail { output: &output },
                );
                Next::Succeeded { output }
            }
        }
    }
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
        Some(path) => path.select(input, context, "InputPath"),
    }
}

/// `OutputPath`: `null` gives `{}`.
fn output_path(state: &State, value: Value, context: &Value) -> Result<Value, TaskFailure> {
    match &state.output_path {
        None => Ok(Value::Object(Map::new())),
        Some(path) if path.text() == "$" => Ok(value),
        Some(path) => path.select(&value, context, "OutputPath"),
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

fn wait_until(
    wait: &WaitFor,
    effective: &Value,
    context: &Value,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, TaskFailure> {
    let seconds = |path: &Path| -> Result<i64, TaskFailure> {
        let value = path.select(effective, context, "SecondsPath")?;
        value
            .as_u64()
            .filter(|n| *n <= 99_999_999)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| {
                TaskFailure::new(
                    errors::RUNTIME,
                    format!(
                        "The SecondsPath '{}' did not select a non-negative integer: {}",
                        path.text(),
                        truncated(&value)
                    ),
                )
            })
    };
    match wait {
        WaitFor::Seconds(n) => {
            Ok(now + chrono::Duration::seconds(i64::try_from(*n).unwrap_or(i64::MAX / 1000)))
        }
        WaitFor::SecondsPath(path) => Ok(now + chrono::Duration::seconds(seconds(path)?)),
        WaitFor::Timestamp(at) => Ok(*at),
        WaitFor::TimestampPath(path) => {
            let value = path.select(effective, context, "TimestampPath")?;
            value
                .as_str()
                .and_then(super::choice::timestamp)
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| {
                    TaskFailure::new(
                        errors::RUNTIME,
                        format!(
                            "The TimestampPath '{}' did not select an RFC 3339 timestamp: {}",
                            path.text(),
                            truncated(&value)
                        ),
                    )
                })
        }
    }
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

/// The context object (`$$`)
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>).
fn context_object(ctx: &ExecutionContext, cursor: &Cursor, now: DateTime<Utc>) -> Value {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let machine_name = ctx.state_machine_arn.rsplit(':').next().unwrap_or_default();
    json!({
        "Execution": {
            "Id": ctx.execution_arn,
            "Input": ctx.input,
            "Name": ctx.execution_name,
            "StartTime": time(ctx.start_time),
            "RedriveCount": 0,
        },
        "State": {
            "EnteredTime": time(cursor.entered_at.unwrap_or(now)),
            "Name": cursor.state,
            "RetryCount": cursor.retry_count(),
        },
        "StateMachine": {
            "Id": ctx.state_machine_arn,
            "Name": machine_name,
        },
    })
}
