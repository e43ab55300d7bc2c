//! `dofs-core`: the order domain of DOFS, free of any AWS SDK.
//!
//! Everything the five functions agree on lives here, so that the Lambda
//! binaries, the AWS adapters and the local runtime cannot drift apart:
//!
//! - [`model`]: parsed value types (`OrderId`, `Sku`, `Quantity`, `Money`, ...)
//!   and the [`model::Order`] aggregate. Once one exists it is valid.
//! - [`validation`]: turns an untrusted request body into an
//!   [`model::OrderRequest`], reporting *every* offending field at once.
//! - [`status`]: order statuses and the transitions allowed between them.
//! - [`contracts`]: the JSON payloads passed between the workflow steps and on
//!   the queues.
//! - [`ports`]: the small async traits the functions are written against
//!   (`OrderStore`, `FailedOrderStore`, `Workflow`, `Clock`).
//! - [`arn`]: [`StateMachineArn`], the workflow's address, shared by the
//!   functions' configuration and the Step Functions adapter.
//! - [`timestamp`]: the one spelling of a time in machine output (RFC 3339,
//!   UTC, milliseconds, `Z`) and the serde helpers that write it.
//! - [`error`]: error types shared by ports and handlers, with the Lambda
//!   `errorType` names that the workflow's `Retry`/`Catch` match.
//! - `testkit` (feature `testkit`): in-memory adapters and the port contract
//!   suite that every adapter (SQLite, AWS) runs.
//!
//! Feature `lambda` converts [`PortError`] into a `lambda_runtime`
//! `Diagnostic`, so a handler's `errorType` is its [`ErrorKind`].

pub mod arn;
pub mod contracts;
pub mod error;
pub mod model;
pub mod ports;
pub mod status;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod timestamp;
pub mod validation;

#[cfg(feature = "lambda")]
mod lambda;

pub use arn::{InvalidStateMachineArn, StateMachineArn};
pub use contracts::{
    DeadLetter, OrderSubmission, StorageRequest, StoredOrder, Validation, Verdict, WorkflowFailure,
};
pub use error::{ErrorKind, PortError};
pub use model::{
    CustomerName, FailedOrder, LineItem, Money, Order, OrderId, OrderRequest, Quantity, Sku,
};
pub use ports::{
    Clock, ExecutionStatus, ExecutionView, FailedOrderStore, InsertOutcome, OrderStore,
    StartOutcome, SystemClock, TransitionOutcome, Workflow,
};
pub use status::{OrderStatus, StatusChange, TransitionError};
pub use validation::{FieldError, ValidationErrors};
