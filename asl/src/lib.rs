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
//! Supported: Task, Pass, Choice, Wait, Succeed and Fail states; InputPath,
//! Parameters (with `.$` fields, the `$$` context object and the intrinsic
//! functions listed in `intrinsic`), ResultSelector, ResultPath and OutputPath,
//! applied in the order of
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html>;
//! Retry and Catch with AWS's error-name rules
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>).
//! Parallel and Map are rejected when the definition is loaded.
//!
//! # Running a definition
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
//! - `intrinsic`: the intrinsic functions (`States.Format`, ...);
//! - `choice`: Choice rules;
//! - `retry`: retriers, catchers and error-name matching;
//! - [`errors`] (public): the `States.*` error names;
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

/// Names of the errors Step Functions itself raises
/// (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>).
pub mod errors {
    /// Wildcard: any error except the terminal ones.
    pub const ALL: &str = "States.ALL";
    /// Wildcard: any error except `States.Timeout` (and the terminal ones).
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A task ran longer than its `TimeoutSeconds`; the [`super::TaskInvoker`] reports it.
    pub const TIMEOUT: &str = "States.Timeout";
    /// Terminal: a path matched nothing, or other unprocessable data. Never retried or caught.
    pub const RUNTIME: &str = "States.Runtime";
    /// Terminal: a payload over the size quota. Never retried or caught.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// A Choice state where no rule matched and there is no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// ResultPath could not be applied to the state input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// An intrinsic function failed at run time.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
}

/// Why a definition or template could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AslError {
    #[error("the definition is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("invalid definition at {at}: {message}")]
    Definition { at: String, message: String },
}

/// A parsed and validated state machine definition.
#[derive(Debug, Clone)]
pub struct StateMachine {
    definition: definition::Definition,
}

impl StateMachine {
    /// Parses and validates a definition: known state types and fields, `StartAt`
    /// and every `Next`/`Default`/`Catch` target exist, every state is reachable,
    /// Task/Pass/Wait have exactly one of `Next`/`End`, paths and templates compile,
    /// and `States.ALL` stands alone in the last retrier/catcher.
    pub fn from_json(definition: &str) -> Result<Self, AslError> {
        Ok(Self {
            definition: definition::Definition::parse(definition)?,
        })
    }

    pub fn start_at(&self) -> &str {
        &self.definition.start_at
    }

    /// A cursor at `StartAt` with the execution input.
    pub fn start(&self, input: Value) -> Cursor {
        Cursor::at(&self.definition.start_at, input)
    }

    /// The execution-level `TimeoutSeconds`. The host enforces it: an execution
    /// still running at `start_time + timeout` fails with `States.Timeout`.
    pub fn timeout(&self) -> Option<Duration> {
        self.definition.timeout_seconds.map(Duration::from_secs)
    }

    /// When an execution started at `start_time` times out, if ever.
    pub fn deadline(&self, start_time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let seconds = i64::try_from(self.definition.timeout_seconds?).ok()?;
        start_time.checked_add_signed(chrono::Duration::seconds(seconds))
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
    /// The state's `TimeoutSeconds`; the invoker enforces it.
    pub timeout: Option<Duration>,
}

/// An error as Step Functions names it: `error` is what `ErrorEquals` matches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{error}: {cause}")]
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
