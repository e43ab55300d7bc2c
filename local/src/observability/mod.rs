//! What ops see: metrics (the functions' EMF and the stand-ins' AWS service
//! metrics), the monitor loop that samples, stores and evaluates them, the
//! alarms, and the traces.

pub mod alarms;
pub mod metrics;
pub mod monitor;
pub mod traces;
