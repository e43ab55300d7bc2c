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

mod engine;
mod store;
mod tasks;
mod workflow;

pub use engine::{Engine, EngineConfig, EngineError};
pub use store::{
    execution_of_trace, load_events, load_execution, pack_closed_histories, prune_history,
    status_name, store_packed_histories, trace_header, unpacked_closed_events, ExecutionRecord,
    PackedHistory,
};
pub use tasks::{check_resources, LocalTasks};
pub use workflow::{ExpressStarts, LocalWorkflow};
