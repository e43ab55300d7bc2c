//! Integration tests of dofs-telemetry: what ops see (log lines, EMF lines,
//! X-Ray segments on a fake daemon) when an invocation runs through it.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod helpers;
mod logs;
mod metrics_emf;
mod xray;
