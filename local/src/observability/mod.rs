//! What ops see: metrics (the functions' EMF and the stand-ins' AWS service
//! metrics), the monitor loop that samples, stores and evaluates them, the
//! alarms, the traces, each order's log lines, the Prometheus scrape endpoint over the same
//! metrics, and the meter of billable units behind `dofs cost`.

pub mod alarms;
pub mod histogram;
pub mod logs;
pub mod metrics;
pub mod monitor;
pub mod prometheus;
pub mod traces;
pub mod usage;
