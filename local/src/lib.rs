//! `dofs-local`: the whole DOFS system in one process, no Docker, no AWS
//! account — the binary `dofs`.
//!
//! The same handler code as on Lambda runs against stand-ins for the AWS
//! services, with the semantics the handlers see in the cloud, and all state
//! in one SQLite file, so that a crash loses no accepted order and a restart
//! resumes in-flight work. The layout says what each part is:
//!
//! - [`runtime`]: the composition root, [`runtime::Runtime`]: builds every
//!   part from a [`runtime::RuntimeConfig`] and runs them until a
//!   [`shutdown::Shutdown`]. `dofs serve`, `dofs bench` and the in-process
//!   tests all start the system through it.
//! - [`identity`]: account, region, stack and the names and ARNs of every
//!   local resource.
//! - [`definitions`]: the workflow and alarm files Terraform deploys,
//!   compiled in, and their `${...}` rendering.
//! - [`store`]: the data directory's SQLite database (WAL, schema versions,
//!   a group-commit writer thread, a checkpointer and pooled readers). Every
//!   write goes through it.
//! - [`services`]: the AWS stand-ins, one per service: `api_gateway` (HTTP
//!   API, payload 2.0), `lambda` (the five functions, invoked as Lambda
//!   invokes them), `dynamodb` (the two tables), `sqs` (queues, redrive, and
//!   the event source mappings), `step_functions` (persisted executions of
//!   the ASL file, driven by [`dofs_asl`]).
//! - [`observability`]: CloudWatch-style metrics (EMF and AWS service
//!   metrics), the monitor loop, the alarms of `dashboards/alarms.json`
//!   evaluated as CloudWatch does, and the span store behind `dofs trace`.
//! - [`inspect`]: the read models (one order's report) shared by the CLI and
//!   the console.
//! - [`console`]: the web console under `/_dofs/`.
//! - [`cli`]: the `dofs` command line (`serve`, `orders`, `order`, `trace`,
//!   `queues`, `redrive`, `metrics`, `alarms`, `bench`).
//!
//! Dependencies point one way: `cli` and `console` read through `inspect`
//! and the services; `runtime` wires services and observability; services
//! use `store` and `identity`; nothing but `main.rs` depends on `cli`.
//!
//! Why our own implementation: no crate emulates SQS, Step Functions and API
//! Gateway in-process with durable state (the `fakecloud-*` crates are AGPL,
//! LocalStack needs Docker), and the point is to run the *same* handler code
//! against the same event shapes.

pub mod cli;
pub mod console;
pub mod definitions;
pub mod http_guard;
pub mod http_server;
pub mod identity;
pub mod inspect;
pub mod observability;
pub mod runtime;
pub mod services;
pub mod shutdown;
pub mod store;
