//! Integration tests of the local runtime: one binary, modules by concern.
//! The end-to-end ones run the real `dofs` binary and drive it over HTTP and
//! its CLI, as a user would.

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

mod alarms;
mod api;
mod bench;
mod browser;
mod cli;
mod console;
mod contract;
mod cost;
mod crash;
mod express;
mod faults;
mod helpers;
mod logs;
mod otlp;
mod pipeline;
mod prometheus;
mod storage;
mod trace;
mod webdriver;
