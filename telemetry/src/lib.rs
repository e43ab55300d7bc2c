//! `dofs-telemetry`: observability for every DOFS function.
//!
//! - [`metric`]: the custom metric names (shared with dashboards and alarms).
//! - [`trace_header`]: the X-Ray trace header carried between hops.
pub mod metric;
pub mod trace_header;

pub use trace_header::TraceHeader;
