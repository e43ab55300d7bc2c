//! `dofs-asl`: an Amazon States Language interpreter that runs a state
//! machine one state at a time. DOFS runs `terraform/order_workflow.asl.json`
//! with it locally, so the local workflow is exactly the one Terraform deploys;
//! any other ASL file runs the same way with a [`TaskInvoker`] of your own.
//!
//! Why our own: the `asl` crate (0.2) calls tasks and waits by blocking, parses
//! `Retry` without executing it and cannot resume an execution; the `fakecloud-*`
//! crates are AGPL. What a durable host needs is different anyway: a *step*
//! function, [`StateMachine::advance`], that runs exactly one state and returns a
//! serializable [`Cursor`]. The host persists the cursor before calling again,
//! so a crash resumes at the last completed state, and retry back-off and `Wait`
//! come back as [`Next::Sleep`] with a wake-up time instead of a sleeping task.
//!
//! # What it runs
//!
//! The JSONPath-based core of the Amazon States Language
//! (<https://states-language.net/>, and the Step Functions developer guide
//! pages cited in each module):
//! - the state types Task, Pass, Choice, Wait, Succeed and Fail, each with
//!   every field the specification defines for it in JSONPath mode: `Type`,
//!   `Comment`, `InputPath`, `OutputPath`, `Next`/`End`; Task's `Resource`,
//!   `Parameters`, `ResultSelector`, `ResultPath`, `TimeoutSeconds`,
//!   `TimeoutSecondsPath`, `HeartbeatSeconds`, `HeartbeatSecondsPath`,
//!   `Credentials`, `Retry` and `Catch`; Pass's `Parameters`, `Result` and
//!   `ResultPath`; Choice's `Choices` (every comparison operator, `And`,
//!   `Or`, `Not`) and `Default`; Wait's `Seconds`, `SecondsPath`,
//!   `Timestamp` and `TimestampPath`; Fail's `Error`, `ErrorPath`, `Cause`
//!   and `CausePath`; the top level's `StartAt`, `States`, `TimeoutSeconds`,
//!   `Version`, `Comment` and `QueryLanguage` (`"JSONPath"`);
//! - input and output processing in the order of
//!   <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html>,
//!   `.$` fields, the context object `$$` as Step Functions exposes it (see
//!   below) and all eighteen intrinsic functions (module `intrinsic`);
//! - Retry and Catch with AWS's error-name rules
//!   (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>);
//! - the quotas that change what an execution does ([`quotas`]): payload
//!   size (`States.DataLimitExceeded`), the longest Wait, the maximum
//!   execution time and the 25,000-event history.
//!
//! Not supported, and rejected when the definition is loaded with
//! [`AslError::Unsupported`] naming the state and the field: `Map` and
//! `Parallel` states, the JSONata query language (`"QueryLanguage":
//! "JSONata"` and its `Arguments`/`Output` fields) and variables (`Assign`).
//!
//! ## Task resources and integration patterns
//!
//! `Resource` is handed to the [`TaskInvoker`] as written. The interpreter
//! reads the integration pattern from its suffix ([`IntegrationPattern`]):
//! for `.waitForTaskToken` it makes a task token, exposes it as
//! `$$.Task.Token` to that state's `Parameters`, and passes it in
//! [`TaskCall::task_token`]; the invoker then returns only when the token
//! is answered (SendTaskSuccess/SendTaskFailure) or its heartbeat or timeout
//! runs out ([`TaskCall::heartbeat`], [`TaskCall::timeout`]) — waiting for
//! the answer is the host's job, as is `.sync`. `Credentials` is evaluated
//! (paths and intrinsic functions work in it) and passed in
//! [`TaskCall::credentials`]; a local host ignores it, having no IAM roles
//! to assume.
//!
//! ## The context object
//!
//! As executions on AWS show it
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>):
//! `Execution` (`Id`, `Input`, `Name`, `RoleArn`, `StartTime`,
//! `RedriveCount`, and `RedriveTime` only once redriven), `State`
//! (`EnteredTime`, `Name`, and `RetryCount` in Task states), `StateMachine`
//! (`Id`, `Name`), and `Task` (`Token`) only in a Task state whose resource
//! ends in `.waitForTaskToken`. `RoleArn` is the one given to
//! [`StateMachine::with_role_arn`]; the redrive fields come from the
//! [`Cursor`] ([`Cursor::redrive`]).
//!
//! ## Where the AWS documentation is silent
//!
//! Each of these is a choice, marked in the code with the passage it rests
//! on, and *unverified* against Step Functions:
//! 1. `States.DataLimitExceeded` is matched only by a retrier or catcher
//!    that names it; `States.ALL` and `States.TaskFailed` do not match it
//!    ("This is a terminal error that can't be caught by the States.ALL
//!    error type"). Executions recorded on AWS by third parties show
//!    `States.ALL` catching an oversized Lambda result; we follow the page.
//! 2. A task result over the quota is reported as a task failure
//!    (`TaskFailed`) and goes through Retry/Catch; a state's input after
//!    `Parameters` or its output over the quota likewise in a Task state,
//!    and fails the execution in any other state.
//! 3. After a task succeeded, a `ResultSelector`/`ResultPath` failure other
//!    than `States.Runtime` (i.e. `States.ResultPathMatchFailure` or
//!    `States.IntrinsicFailure`) is an error the state reports, so its
//!    retriers apply and a retry invokes the task again ("When a state
//!    reports an error, Step Functions scans through the retriers");
//!    `States.Runtime` there is terminal as everywhere.
//! 4. `States.HeartbeatTimeout` (reported by the invoker) is matched by
//!    `States.Timeout` ("States.Timeout: A Task state either ran longer than
//!    the TimeoutSeconds value, or failed to send a heartbeat for a period
//!    longer than the HeartbeatSeconds value") and not by
//!    `States.TaskFailed`.
//! 5. `State.RetryCount` exists only in Task states and `Task` only in
//!    `.waitForTaskToken` Task states (recorded executions show neither in a
//!    Pass state; the page says "The value for a Task field is null if the
//!    Parameters field is outside of a task state").
//! 6. `$$.Execution.RoleArn` defaults, when the host gives none, to
//!    `arn:aws:iam::<account>:role/<state machine name>-role`.
//! 7. `TimeoutSecondsPath`/`HeartbeatSecondsPath` are read from the state's
//!    input after `InputPath`, like a Wait state's `SecondsPath`.
//! 8. A Pass state with both `Parameters` and `Result` evaluates
//!    `Parameters` (so its errors fail the state) and outputs `Result`:
//!    Parameters is the input of the Pass state's "virtual task" and
//!    `Result` its output (ASL spec, Pass State).
//! 9. The maximum execution time is 365 days when the definition sets no
//!    smaller `TimeoutSeconds` ("Maximum execution time: 1 year"); a Wait
//!    longer than 2,147,483,647 seconds fails with `States.Runtime` "Wait
//!    state delay is too long." (the page says a wait can be at most a year,
//!    which the execution time enforces; the wording and the 2^31-1 bound
//!    are those of executions recorded on AWS).
//! 10. The history limit counts the events this interpreter records, plus
//!     the host's `ExecutionStarted`: the execution fails with
//!     `States.Runtime` "The execution reached the maximum number of history
//!     events (25000)." as its 25,000th event. Step Functions records some
//!     events this interpreter does not (`TaskStarted`), so the same
//!     execution reaches the limit a little later here.
//! 11. Error causes: where executions recorded on AWS show Step Functions'
//!     wording (paths that match nothing, Wait parameters, payload size, the
//!     history limit), it is used, prefixed as AWS prefixes it: "An error
//!     occurred while executing the state 'X' (entered at the event id #N).".
//!     The wording of `States.IntrinsicFailure`, `States.NoChoiceMatched`
//!     and `States.ResultPathMatchFailure` causes is our own.
//! 12. The intrinsic functions' unstated corners, each marked in module
//!     `intrinsic`: how halves round (up, as Java's `Math.round`), the index
//!     of `ArrayGetItem` rounded too, `ArrayRange` with an increment pointing
//!     away from the end (empty), `MathRandom` with start ≥ end (fails),
//!     `MathAdd`'s sum (not wrapped), `StringToJson` of a blank string
//!     (`null`), `Base64Encode` without MIME line breaks, `Base64Decode` of
//!     non-UTF-8 data (fails), `Hash` of a non-string (fails), `Format` of an
//!     object or array (Java's rendering, as recorded on AWS), a `Format`
//!     template read from a path (no escapes), and "up to 10 nested
//!     intrinsic functions" read as 10 calls per field.
//!
//! //! # Running a definition
//!
//! Parse it with [`StateMachine::from_json`], start a [`Cursor`] with
//! [`StateMachine::start`], and call [`StateMachine::advance`] until it returns
//! [`Next::Succeeded`] or [`Next::Failed`]. Task states call your
//! [`TaskInvoker`]; [`Next::Sleep`] asks you to call again at `until`.
//!
//! ```rust
//! use async_trait::async_trait;
//! use chrono::Utc;
//! use dofs_asl::{ExecutionContext, Next, StateMachine, TaskCall, TaskFailure, TaskInvoker};
//! use rand::SeedableRng;
//! use serde_json::{json, Value};
//!
//! /// Answers the one resource the definition below uses.
//! struct Greeter;
//!
//! #[async_trait]
//! impl TaskInvoker for Greeter {
//!     async fn invoke(
//!         &self,
//!         resource: &str,
//!         parameters: Value,
//!         _call: &TaskCall,
//!     ) -> Result<Value, TaskFailure> {
//!         match resource {
//!             "greet" => {
//!                 let name = parameters["name"].as_str().unwrap_or("you");
//!                 Ok(json!(format!("Hello, {name}!")))
//!             }
//!             // `error` is what the state's Retry/Catch `ErrorEquals` match on.
//!             other => Err(TaskFailure::new("UnknownResource", other)),
//!         }
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let machine = StateMachine::from_json(
//!         r#"{
//!             "StartAt": "Greet",
//!             "States": {
//!                 "Greet": {"Type": "Task", "Resource": "greet",
//!                           "Parameters": {"name.$": "$.name"},
//!                           "ResultPath": "$.greeting", "Next": "Pause"},
//!                 "Pause": {"Type": "Wait", "Seconds": 0, "Next": "Done"},
//!                 "Done": {"Type": "Succeed"}
//!             }
//!         }"#,
//!     )?;
//!     let input = json!({"name": "Ada"});
//!     let ctx = ExecutionContext {
//!         execution_name: "example".to_owned(),
//!         execution_arn: "arn:aws:states:eu-west-1:000000000000:execution:greeter:example".into(),
//!         state_machine_arn: "arn:aws:states:eu-west-1:000000000000:stateMachine:greeter".into(),
//!         start_time: Utc::now(),
//!         trace_header: None,
//!         input: input.clone(),
//!     };
//!
//!     // `advance` is async but needs no particular executor: a current-thread
//!     // tokio runtime (with timers, for the sleeps) is enough here.
//!     let runtime = tokio::runtime::Builder::new_current_thread()
//!         .enable_time()
//!         .build()?;
//!     let result = runtime.block_on(async {
//!         // Drives retry jitter, States.UUID and States.MathRandom.
//!         let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//!         let mut cursor = machine.start(input);
//!         loop {
//!             // A durable host persists `cursor` here (it is Serialize), at
//!             // least before states where `machine.has_side_effects(..)`, and
//!             // records `step.events` as the execution history.
//!             let step = machine
//!                 .advance(cursor, &ctx, &Greeter, Utc::now(), &mut rng)
//!                 .await;
//!             match step.next {
//!                 Next::Continue(next) => cursor = next,
//!                 Next::Sleep { cursor: next, until } => {
//!                     // `until` may already be past: sleep for what is left, if anything.
//!                     let left = (until - Utc::now()).to_std().unwrap_or_default();
//!                     tokio::time::sleep(left).await;
//!                     cursor = next;
//!                 }
//!                 Next::Succeeded { output } => break Ok(output),
//!                 Next::Failed { error, cause } => break Err(TaskFailure::new(error, cause)),
//!             }
//!         }
//!     });
//!
//!     assert_eq!(result?, json!({"name": "Ada", "greeting": "Hello, Ada!"}));
//!     Ok(())
//! }
//! ```
//!
//! # Modules
//!
//! The public API is re-exported at the crate root; the modules behind it are:
//! - `history`: [`HistoryEvent`], [`HistoryEventKind`] and [`StateType`], the
//!   execution history as Step Functions names it;
//! - `definition`: loading a definition and its structural validation;
//! - `machine`: the interpreter proper, [`StateMachine::advance`];
//! - `path`: JSONPath reads (InputPath, OutputPath, `.$` fields) and ResultPath writes;
//! - `payload`: Parameters and ResultSelector templates;
//! - `intrinsic`: the intrinsic functions (`States.Format`, ...; the
//!   `States.Hash` digests are RustCrypto's `md-5`, `sha1` and `sha2`);
//! - `choice`: Choice rules;
//! - `retry`: retriers, catchers and error-name matching;
//! - [`errors`] (public): the `States.*` error names;
//! - [`quotas`] (public): the Step Functions quotas the interpreter enforces;
//! - `testing` (public, behind the feature `testing`): `ScriptedTasks`, a
//!   [`TaskInvoker`] that answers from a script, for tests of anything that
//!   drives a [`StateMachine`].

mod choice;
mod definition;
mod history;
mod intrinsic;
mod machine;
mod path;
mod payload;
mod retry;
#[cfg(feature = "testing")]
pub mod testing;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use history::{HistoryEvent, HistoryEventKind, StateType};
pub use machine::StepClock;

/// Names of the errors Step Functions itself raises
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>).
pub mod errors {
    /// Wildcard: any error except `States.Runtime` and `States.DataLimitExceeded`.
    pub const ALL: &str = "States.ALL";
    /// Wildcard: any error except `States.Timeout` (and those `States.ALL` leaves out).
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A task ran longer than its `TimeoutSeconds`; the [`super::TaskInvoker`] reports it.
    pub const TIMEOUT: &str = "States.Timeout";
    /// A task sent no heartbeat for longer than its `HeartbeatSeconds`; the
    /// [`super::TaskInvoker`] reports it. `States.Timeout` matches it too.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// Terminal: a path matched nothing, or other unprocessable data. Never
    /// retried or caught, even when named ("A States.Runtime error isn't
    /// retriable, and will always cause the execution to fail").
    pub const RUNTIME: &str = "States.Runtime";
    /// A payload over the size quota ([`super::quotas::MAX_PAYLOAD_BYTES`]):
    /// "a terminal error that can't be caught by the States.ALL error type";
    /// a retrier or catcher that names it handles it.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// A Choice state where no rule matched and there is no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// ResultPath could not be applied to the state input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// An intrinsic function failed at run time.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
}

/// The Step Functions quotas that change what an execution does
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>,
/// "Quotas related to state machine executions" and "... task executions").
pub mod quotas {
    /// "Maximum input or output size for a task, state, or execution: 262,144
    /// bytes of data as a UTF-8 encoded string." Over it: `States.DataLimitExceeded`.
    pub const MAX_PAYLOAD_BYTES: usize = 262_144;
    /// "Maximum execution history size: 25,000 events in a single state
    /// machine execution history. If the execution history reaches this
    /// quota, the execution will fail."
    pub const MAX_HISTORY_EVENTS: u64 = 25_000;
    /// "Maximum execution time: 1 year" (Standard workflows), taken as 365
    /// days; an execution still running then fails with `States.Timeout`.
    pub const MAX_EXECUTION_SECONDS: u64 = 365 * 24 * 60 * 60;
    /// The longest wait a Wait state can schedule: 2^31 - 1 seconds, the
    /// bound executions recorded on AWS show ("Wait state delay is too
    /// long."). The developer guide's "the maximum wait time ... is one
    /// year" is the execution time limit above.
    pub const MAX_WAIT_SECONDS: i64 = i32::MAX as i64;
    /// Task `TimeoutSeconds`/`HeartbeatSeconds` and Wait `Seconds` may be
    /// at most this (the ASL spec's and the validator's bound).
    pub const MAX_SECONDS_FIELD: u64 = 99_999_999;
}

/// Why a definition or template could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AslError {
    #[error("the definition is not valid JSON")]
    Json(#[from] serde_json::Error),
    /// The definition breaks a rule of the Amazon States Language.
    #[error("invalid definition at {at}: {message}")]
    Definition { at: String, message: String },
    /// Valid ASL that this interpreter does not run (Map and Parallel
    /// states, JSONata, variables); `at` names the state and the field,
    /// e.g. `States.Fan.Type`.
    #[error("not supported by dofs-asl at {at}: {message}")]
    Unsupported { at: String, message: String },
}

/// A parsed and validated state machine definition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    definition: definition::Definition,
    /// The execution role (`$$.Execution.RoleArn`); see [`StateMachine::with_role_arn`].
    role_arn: Option<String>,
    /// See [`StateMachine::with_timeout`].
    timeout_override: Option<Duration>,
}

impl StateMachine {
    /// Parses and validates a definition: known state types and fields, `StartAt`
    /// and every `Next`/`Default`/`Catch` target exist, every state is reachable,
    /// Task/Pass/Wait have exactly one of `Next`/`End`, paths and templates compile,
    /// and `States.ALL` stands alone in the last retrier/catcher.
    pub fn from_json(definition: &str) -> Result<Self, AslError> {
        Ok(Self {
            definition: definition::Definition::parse(definition)?,
            role_arn: None,
            timeout_override: None,
        })
    }

    /// The IAM role executions run with, `$$.Execution.RoleArn` (on AWS the
    /// state machine's `roleArn`). Without it the context object shows
    /// `arn:aws:iam::<account>:role/<state machine name>-role`, made from the
    /// state machine ARN of the [`ExecutionContext`].
    pub fn with_role_arn(mut self, role_arn: impl Into<String>) -> Self {
        self.role_arn = Some(role_arn.into());
        self
    }

    /// Executions time out after `timeout` instead of the definition's
    /// `TimeoutSeconds` (a host's setting, e.g. to rehearse a timeout in
    /// less than a second; still capped at the maximum execution time).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_override = Some(timeout);
        self
    }

    /// The role given to [`StateMachine::with_role_arn`], if any.
    pub fn role_arn(&self) -> Option<&str> {
        self.role_arn.as_deref()
    }

    pub fn start_at(&self) -> &str {
        &self.definition.start_at
    }

    /// A cursor at `StartAt` with the execution input. Its history count
    /// starts at 1: the host records `ExecutionStarted` itself.
    pub fn start(&self, input: Value) -> Cursor {
        let mut cursor = Cursor::at(&self.definition.start_at, input);
        cursor.events = 1;
        cursor
    }

    /// How long an execution may run: the definition's `TimeoutSeconds`,
    /// capped at (or, without it, equal to) the maximum execution time of
    /// [`quotas::MAX_EXECUTION_SECONDS`]. The host enforces it: an execution
    /// still running at `start_time + timeout` fails with `States.Timeout`.
    /// Always `Some` (kept an `Option` for the hosts written against the
    /// version that returned `None` without `TimeoutSeconds`).
    pub fn timeout(&self) -> Option<Duration> {
        let max = Duration::from_secs(quotas::MAX_EXECUTION_SECONDS);
        let defined = self
            .definition
            .timeout_seconds
            .map_or(max, Duration::from_secs);
        Some(self.timeout_override.unwrap_or(defined).min(max))
    }

    /// When an execution started at `start_time` times out ([`StateMachine::timeout`]).
    pub fn deadline(&self, start_time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timeout = chrono::Duration::from_std(self.timeout()?).ok()?;
        start_time.checked_add_signed(timeout)
    }

    /// Every Task state's name, resource and integration pattern, in state
    /// name order, so a host can reject at load time the resources it cannot
    /// call (e.g. a `.waitForTaskToken` it has no callback API for).
    pub fn task_resources(&self) -> Vec<(&str, &str, IntegrationPattern)> {
        self.definition
            .states
            .iter()
            .filter_map(|(name, state)| match &state.kind {
                definition::Kind::Task(task) => Some((
                    name.as_str(),
                    task.resource.as_str(),
                    IntegrationPattern::of(&task.resource),
                )),
                _ => None,
            })
            .collect()
    }

    /// Whether running `state` reaches outside the execution (a Task calls
    /// a service). Every other state is a pure function of the cursor (and
    /// the clock and random numbers): running it again after a crash changes
    /// nothing anyone saw, so the host need not persist the cursor before it.
    pub fn has_side_effects(&self, state: &str) -> bool {
        self.definition
            .states
            .get(state)
            .is_none_or(|s| matches!(s.kind, definition::Kind::Task(_)))
    }

    /// The state names, in name order.
    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.definition.states.keys().map(String::as_str)
    }

    /// Every error name that some `Retry` or `Catch` matches on, so a test can
    /// check each is an error the code can actually raise.
    pub fn error_equals(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for state in self.definition.states.values() {
            if let definition::Kind::Task(task) = &state.kind {
                for retrier in &task.retry {
                    names.extend(retrier.error_equals.iter().cloned());
                }
                for catcher in &task.catch {
                    names.extend(catcher.error_equals.iter().cloned());
                }
            }
        }
        names
    }
}

/// Where an execution stands: the state to run next and that state's input.
/// Serializable so the host can persist it between steps.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    pub state: String,
    pub input: Value,
    /// Retries already made by each retrier of the current state (keyed by the
    /// retrier's index); empty whenever a state is entered.
    #[serde(default)]
    pub retries: BTreeMap<String, u32>,
    /// When the current state was entered (`$$.State.EnteredTime`); `None` until
    /// the state first runs. Kept across retries, so a resumed retry does not
    /// record a second `...StateEntered`.
    #[serde(default)]
    pub entered_at: Option<DateTime<Utc>>,
    /// Set on a Wait state's cursor once its wait has been scheduled: the next
    /// `advance` leaves the state instead of waiting again.
    #[serde(default)]
    pub waited: bool,
    /// History events of the execution so far, the host's `ExecutionStarted`
    /// included (see [`StateMachine::start`]): the 25,000-event quota, and
    /// the event ids error causes name. Carried from state to state.
    #[serde(default)]
    pub events: u64,
    /// The id of the current state's `...StateEntered` event (0 until entered).
    #[serde(default)]
    pub entered_event: u64,
    /// `$$.Execution.RedriveCount`: how often the execution was redriven.
    #[serde(default)]
    pub redrive_count: u32,
    /// `$$.Execution.RedriveTime`: when it was last redriven, if ever.
    #[serde(default)]
    pub redrive_time: Option<DateTime<Utc>>,
}

impl Cursor {
    /// A cursor entering `state` with `input`.
    pub fn at(state: &str, input: Value) -> Self {
        Self {
            state: state.to_owned(),
            input,
            retries: BTreeMap::new(),
            entered_at: None,
            waited: false,
            events: 0,
            entered_event: 0,
            redrive_count: 0,
            redrive_time: None,
        }
    }

    /// The cursor of a redrive at `at` (RedriveExecution: "it continues the
    /// failed execution from the unsuccessful step"): the same state entered
    /// afresh with the same input, `RedriveCount` one higher and
    /// `RedriveTime` set. For hosts that keep the cursor of a failed state;
    /// the interpreter itself never redrives.
    pub fn redrive(self, at: DateTime<Utc>) -> Self {
        Self {
            retries: BTreeMap::new(),
            entered_at: None,
            waited: false,
            entered_event: 0,
            redrive_count: self.redrive_count + 1,
            redrive_time: Some(at),
            ..self
        }
    }

    /// Retries made so far in the current state, over all its retriers
    /// (`$$.State.RetryCount`).
    pub fn retry_count(&self) -> u32 {
        self.retries.values().sum()
    }
}

/// What the interpreter knows about the execution (the `$$.Execution` and
/// `$$.StateMachine` parts of the context object).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExecutionContext {
    pub execution_name: String,
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub start_time: DateTime<Utc>,
    /// The X-Ray trace header the execution was started with; passed to tasks.
    pub trace_header: Option<String>,
    /// The execution input (`$$.Execution.Input`).
    pub input: Value,
}

/// The result of one [`StateMachine::advance`].
#[derive(Clone, Debug)]
pub struct Step {
    pub next: Next,
    /// History events produced by the step, in order.
    pub events: Vec<HistoryEvent>,
}

/// What happens after a step.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Run the next state now.
    Continue(Cursor),
    /// Retry back-off or Wait: persist the cursor and call `advance` again at `until`
    /// (which may already be past).
    Sleep {
        cursor: Cursor,
        until: DateTime<Utc>,
    },
    Succeeded {
        output: Value,
    },
    Failed {
        error: String,
        cause: String,
    },
}

/// Calls a Task's resource. Implemented by the host (which knows how to reach
/// its Lambda functions, queues, ...) and by test fakes such as
/// `testing::ScriptedTasks`.
#[async_trait]
pub trait TaskInvoker: Send + Sync {
    /// `resource` as written (e.g. "arn:aws:states:::lambda:invoke",
    /// "arn:aws:states:::sqs:sendMessage"); `parameters` already evaluated. Returns
    /// the task result (for lambda:invoke `{"Payload": <fn output>, "StatusCode": 200, ...}`).
    /// A timeout is reported as [`errors::TIMEOUT`].
    async fn invoke(
        &self,
        resource: &str,
        parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure>;
}

/// Facts about a task call that are not part of its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskCall {
    pub execution_name: String,
    pub state: String,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    pub trace_header: Option<String>,
    /// The state's `TimeoutSeconds` (or `TimeoutSecondsPath`, resolved); the
    /// invoker enforces it and reports [`errors::TIMEOUT`].
    pub timeout: Option<Duration>,
    /// The state's `HeartbeatSeconds` (or `HeartbeatSecondsPath`, resolved);
    /// the invoker enforces it and reports [`errors::HEARTBEAT_TIMEOUT`].
    pub heartbeat: Option<Duration>,
    /// How the resource is called, from its suffix.
    pub pattern: IntegrationPattern,
    /// For [`IntegrationPattern::WaitForTaskToken`]: this attempt's task
    /// token (`$$.Task.Token`), which SendTaskSuccess/SendTaskFailure/
    /// SendTaskHeartbeat name. A new one for every attempt.
    pub task_token: Option<String>,
    /// The state's `Credentials`, evaluated (e.g. `{"RoleArn": "..."}`).
    /// A local host has no roles to assume and ignores it.
    pub credentials: Option<Value>,
}

/// How a Task calls its resource, read from the resource's suffix
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrationPattern {
    /// No suffix: call the API and go on with its response.
    RequestResponse,
    /// `.sync` or `.sync:2`: run a job and wait for it to finish.
    RunJob,
    /// `.waitForTaskToken`: call with a task token and wait until the token
    /// is answered.
    WaitForTaskToken,
}

impl IntegrationPattern {
    /// The pattern of `resource`.
    pub fn of(resource: &str) -> Self {
        if resource.ends_with(".waitForTaskToken") {
            Self::WaitForTaskToken
        } else if resource.ends_with(".sync") || resource.ends_with(".sync:2") {
            Self::RunJob
        } else {
            Self::RequestResponse
        }
    }
}

/// An error as Step Functions names it: `error` is what `ErrorEquals` matches.
/// Displays as `error: cause`, or just `error` when the cause is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

impl std::fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cause.is_empty() {
            f.write_str(&self.error)
        } else {
            write!(f, "{}: {}", self.error, self.cause)
        }
    }
}

impl std::error::Error for TaskFailure {}
