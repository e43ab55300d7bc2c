//! In-memory adapters and the port contract suite (feature `testkit`).
//!
//! - `memory`: [`MemoryOrderStore`], [`MemoryFailedOrderStore`] and
//!   [`MemoryWorkflow`]. They implement the ports exactly as
//!   [`crate::ports`] documents them, so a handler test that passes against
//!   them means the same against DynamoDB or SQLite. Each can be told to fail
//!   ([`Faults`]) so handlers' error paths (503s, SQS item failures, Lambda
//!   errors) can be tested too.
//! - `clock`: [`FixedClock`] and [`ManualClock`].
//! - `samples`: sample builders ([`sample_request`], [`sample_submission`],
//!   [`sample_order`], ...) that every crate's tests use, so a change to the
//!   model is fixed in one place.
//! - [`contract`]: one async function per port that runs the whole contract
//!   against any adapter. The SQLite and AWS adapters call these from their own
//!   tests; every call uses fresh order ids, so the functions can run against a
//!   shared, long-lived backend.
//!
//! Everything is re-exported here (`dofs_core::testkit::MemoryOrderStore`),
//! so users need not know the files.
//!
//! Written here rather than taken from a mocking crate because the fakes must
//! *behave* like the real tables (conditional writes, first-record-wins), not
//! merely record calls.

use std::sync::{Mutex, MutexGuard};

mod clock;
pub mod contract;
mod memory;
mod samples;

pub use clock::{FixedClock, ManualClock};
pub use memory::{
    Faults, MemoryFailedOrderStore, MemoryOrderStore, MemoryWorkflow, StartedExecution,
};
pub use samples::{
    sample_failed_order, sample_order, sample_order_with_id, sample_request, sample_request_json,
    sample_submission, sample_time,
};

/// Locks a mutex, recovering the data if a panicking test poisoned it: the
/// fakes' state is always consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
