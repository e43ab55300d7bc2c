//! Clocks a test controls: [`FixedClock`] and [`ManualClock`].

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::lock;
use crate::ports::Clock;

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// A clock a test sets and advances by hand.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *lock(&self.now) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *lock(&self.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sample_time;

    #[test]
    fn manual_clock_advances() {
        let clock = ManualClock::new(sample_time());
        clock.advance(Duration::seconds(90));
        assert_eq!(clock.now(), sample_time() + Duration::seconds(90));
        clock.set(sample_time());
        assert_eq!(clock.now(), sample_time());
    }
}
