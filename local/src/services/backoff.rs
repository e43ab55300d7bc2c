//! Back-off for the stand-ins' long-running loops (the event source
//! mappings' pollers, the workflow engine's scheduler) when the database
//! fails under them: a full disk, a damaged page, a stopped writer.
//!
//! Without it each loop retried at its poll interval and logged every
//! failure (a full disk gave ~1,900 ERROR lines a second). Now the wait
//! doubles from the poll interval up to [`MAX_WAIT`], a failure is logged at
//! most once per [`LOG_EVERY`] (shared by the clones of one back-off, e.g. a
//! mapping's pollers), and the first success after a logged failure says
//! how long it took to recover.
//!
//! Written here rather than taken from a crate: `backon` and
//! `exponential-backoff` retry one operation, while these loops keep
//! running and only need the next wait and the logging decision.

use std::fmt::Display;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between two tries of a failing loop.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// How often a loop that keeps failing logs again.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The failure state of one loop. Clones share the logging (one mapping's
/// pollers are one component to whoever reads the log) but each counts and
/// waits for itself.
#[derive(Debug, Clone)]
pub struct FailureBackoff {
    what: &'static str,
    base: Duration,
    failures: u32,
    first_failure: Option<Instant>,
    log: Arc<Mutex<LogGate>>,
}

/// What the clones of one back-off have logged.
#[derive(Debug, Default)]
struct LogGate {
    last_failure_logged: Option<Instant>,
    /// A failure was logged and no recovery since.
    reported: bool,
}

impl FailureBackoff {
    /// `what` names the loop in the log lines; `base` is its poll interval,
    /// the first wait.
    pub fn new(what: &'static str, base: Duration) -> Self {
        Self {
            what,
            base: base.max(Duration::from_millis(10)),
            failures: 0,
            first_failure: None,
            log: Arc::default(),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, LogGate> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failure and returns how long to wait before trying again.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        let now = Instant::now();
        self.failures = self.failures.saturating_add(1);
        self.first_failure.get_or_insert(now);
        let wait = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures - 1))
            .min(MAX_WAIT);
        let mut gate = self.gate();
        let due = gate
            .last_failure_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due {
            gate.last_failure_logged = Some(now);
            gate.reported = true;
            tracing::error!(
                component = self.what,
                error = %error,
                failures = self.failures,
                retry_in_ms = wait.as_millis() as u64,
                "{} failing; backing off",
                self.what
            );
        }
        wait
    }

    /// Records a success: logs the recovery if a failure was logged.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.first_failure.take() {
            let mut gate = self.gate();
            if std::mem::take(&mut gate.reported) {
                tracing::info!(
                    component = self.what,
                    failures = self.failures,
                    failing_ms = since.elapsed().as_millis() as u64,
                    "{} recovered",
                    self.what
                );
            }
        }
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_cap_and_logging_is_rate_limited() {
        let capture = dofs_telemetry::testing::Capture::new();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(capture.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let lines = |text: &str| {
            capture
                .lines()
                .iter()
                .filter(|l| {
                    l["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(text))
                })
                .count()
        };
        let mut backoff = FailureBackoff::new("poller", Duration::from_millis(250));
        let waits: Vec<Duration> = (0..8).map(|_| backoff.failed(&"disk full")).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(lines("backing off"), 1, "one line, not eight");
        tokio::time::advance(LOG_EVERY).await;
        backoff.failed(&"disk full");
        assert_eq!(lines("backing off"), 2);
        backoff.succeeded();
        assert_eq!(lines("poller recovered"), 1);
        assert_eq!(backoff.failures(), 0);
        // Flapping does not flood: within LOG_EVERY of the last logged
        // failure, a new one (and its recovery) stays quiet.
        assert_eq!(backoff.failed(&"again").as_millis(), 250);
        backoff.succeeded();
        assert_eq!(lines("backing off"), 2);
        assert_eq!(lines("poller recovered"), 1);
        // Clones (a mapping's other pollers) share the logging.
        let mut other = backoff.clone();
        other.failed(&"disk full");
        assert_eq!(lines("backing off"), 2);
        tokio::time::advance(LOG_EVERY).await;
        other.failed(&"disk full");
        backoff.failed(&"disk full");
        assert_eq!(lines("backing off"), 3);
    }
}
