//! Back-off for the stand-ins' long-running loops (the event source
//! mappings' pollers, the workflow engine's scheduler) when the database
//! fails under them: a full disk, a damaged page, a stopped writer.
//!
//! Without it each loop retried at its poll interval and logged every
//! failure (a full disk gave ~1,900 ERROR lines a second). Now the wait
//! doubles from the poll interval up to [`MAX_WAIT`], the first failure is
//! logged at once and later ones once per [`LOG_EVERY`] with a count, and
//! the first success after failures says how long it took to recover.
//!
//! Written here rather than taken from a crate: `backon` and
//! `exponential-backoff` retry one operation, while these loops keep
//! running and only need the next wait and the logging decision.

use std::fmt::Display;
use std::time::Duration;

use tokio::time::Instant;

/// The longest wait between two tries of a failing loop.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// How often a loop that keeps failing logs again.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The failure state of one loop.
#[derive(Debug)]
pub struct FailureBackoff {
    what: &'static str,
    base: Duration,
    failures: u32,
    first_failure: Option<Instant>,
    last_logged: Option<Instant>,
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
            last_logged: None,
        }
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
        let due = self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due {
            self.last_logged = Some(now);
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

    /// Records a success: logs the recovery if the loop had been failing.
    pub fn succeeded(&mut self) {
        if let Some(since) = self.first_failure.take() {
            tracing::info!(
                component = self.what,
                failures = self.failures,
                failing_ms = since.elapsed().as_millis() as u64,
                "{} recovered",
                self.what
            );
        }
        self.failures = 0;
        self.last_logged = None;
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
        assert_eq!(backoff.failed(&"again").as_millis(), 250);
    }
}
