//! `dofs-local`: the whole DOFS system in one process, no Docker, no AWS
//! account — the binary `dofs`.
//!
//! Each module stands in for one AWS service, with the same semantics the
//! handlers see in the cloud, and all state in one SQLite file so that a
//! crash loses no accepted order and a restart resumes in-flight work:
//!
//! - [`db`]: the data directory's SQLite database (WAL, schema versions, a
//!   group-commit writer thread and pooled readers).
//! - [`tables`]: the orders and failed_orders tables (DynamoDB stand-in,
//!   conditional writes).
//! - [`queue`]: SQS standard queues (visibility timeout, receive counts,
//!   redrive to the dead-letter queue).
//! - [`functions`]: the five Lambda functions wired to the local adapters and
//!   invoked the way Lambda invokes them.
//! - [`asl`]: the Amazon States Language interpreter (one state at a time).
//! - [`engine`]: the Step Functions stand-in: persisted executions driven by
//!   [`asl`], resumed after a restart.
//! - [`pollers`]: the SQS event source mappings (batches, partial batch
//!   failures).
//! - [`gateway`]: the API Gateway HTTP API stand-in (payload format 2.0).
//! - [`traces`]: the spans of every order stored in SQLite (a
//!   dofs-telemetry span sink) and `dofs trace`'s waterfall.
//! - [`metrics`]: CloudWatch-style metrics (the functions' EMF metrics and
//!   the AWS service metrics of the stand-ins) in one-second buckets.
//! - [`alarms`]: `dashboards/alarms.json` evaluated like CloudWatch on those
//!   metrics; state, history, webhook and log notifications.
//! - [`console`]: the web console under `/_dofs/` (orders, traces,
//!   metrics, alarms).
//! - [`cli`]: the `dofs` command line (`serve`, `orders`, `order`, `queues`,
//!   `redrive`, `bench`).
//! - [`bench`]: `dofs bench`, the load test of a `dofs serve`.
//!
//! Why our own implementation: no crate emulates SQS, Step Functions and API
//! Gateway in-process with durable state (the `fakecloud-*` crates are AGPL,
//! LocalStack needs Docker), and the point is to run the *same* handler code
//! against the same event shapes.

pub mod alarms;
pub mod asl;
pub mod bench;
pub mod cli;
pub mod console;
pub mod db;
pub mod engine;
pub mod functions;
pub mod gateway;
pub mod metrics;
pub mod pollers;
pub mod queue;
pub mod tables;
pub mod traces;
