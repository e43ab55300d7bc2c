//! Retriers and catchers
//! (<https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>).
//!
//! Error-name matching: names match exactly (case-sensitive), except for the
//! wildcards and two errors the page singles out:
//! - `States.Runtime` is never matched, not even by name: "A States.Runtime
//!   error isn't retriable, and will always cause the execution to fail. A
//!   retry or catch on States.ALL won't catch States.Runtime errors."
//! - `States.DataLimitExceeded` is matched only by its own name: "This is a
//!   terminal error that can't be caught by the States.ALL error type"
//!   (unverified: the page does not say that naming it works, nor that
//!   `States.TaskFailed` leaves it out as `States.ALL` does).
//! - `States.ALL` matches everything else; `States.TaskFailed` everything
//!   but `States.Timeout` ("acts as a wildcard that matches any known error
//!   name except for States.Timeout") and `States.HeartbeatTimeout`.
//! - `States.Timeout` also matches `States.HeartbeatTimeout` ("A Task state
//!   either ran longer than the TimeoutSeconds value, or failed to send a
//!   heartbeat for a period longer than the HeartbeatSeconds value";
//!   unverified).
//!
//! The first retrier whose `ErrorEquals` matches decides: once its `MaxAttempts`
//! are spent, later retriers are not consulted and the catchers take over.

use chrono::Duration;
use rand::{Rng, RngCore};
use serde_json::{Map, Value};

use super::errors;
use super::path::ReferencePath;

/// True for errors no retrier or catcher may handle.
pub(crate) fn is_terminal(error: &str) -> bool {
    error == errors::RUNTIME
}

/// Whether an `ErrorEquals` entry matches `error`.
pub(crate) fn error_matches(pattern: &str, error: &str) -> bool {
    if is_terminal(error) {
        return false;
    }
    if error == errors::DATA_LIMIT_EXCEEDED {
        return pattern == errors::DATA_LIMIT_EXCEEDED;
    }
    let timeout = error == errors::TIMEOUT || error == errors::HEARTBEAT_TIMEOUT;
    match pattern {
        errors::ALL => true,
        errors::TASK_FAILED => !timeout,
        errors::TIMEOUT => timeout,
        _ => pattern == error,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Jitter {
    None,
    Full,
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub(crate) error_equals: Vec<String>,
    pub(crate) interval_seconds: u64,
    pub(crate) max_attempts: u32,
    pub(crate) backoff_rate: f64,
    pub(crate) max_delay_seconds: Option<u64>,
    pub(crate) jitter: Jitter,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub(crate) error_equals: Vec<String>,
    pub(crate) next: String,
    /// `None` is `"ResultPath": null`: the error output is discarded.
    pub(crate) result_path: Option<ReferencePath>,
}

impl Retrier {
    pub(crate) fn matches(&self, error: &str) -> bool {
        self.error_equals
            .iter()
            .any(|pattern| error_matches(pattern, error))
    }

    /// The wait before retry number `done + 1`:
    /// `IntervalSeconds × BackoffRate^done`, capped at `MaxDelaySeconds`, then with
    /// `FULL` jitter a uniformly random delay in `[0, that)`.
    pub(crate) fn delay(&self, done: u32, rng: &mut (dyn RngCore + Send)) -> Duration {
        let exponent = i32::try_from(done).unwrap_or(i32::MAX);
        let mut seconds = self.interval_seconds as f64 * self.backoff_rate.powi(exponent);
        if let Some(cap) = self.max_delay_seconds {
            seconds = seconds.min(cap as f64);
        }
        // Bounded by ASL's own limit on IntervalSeconds (99999999) when uncapped.
        seconds = seconds.min(99_999_999.0);
        if self.jitter == Jitter::Full {
            seconds *= rng.random::<f64>();
        }
        Duration::milliseconds((seconds * 1000.0).round() as i64)
    }

    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or("a retrier must be an object")?;
        check_fields(
            map,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
        )?;
        let interval_seconds = optional_int(map, "IntervalSeconds", 1, 99_999_999)?.unwrap_or(1);
        let max_attempts = optional_int(map, "MaxAttempts", 0, 99_999_999)?.unwrap_or(3);
        let backoff_rate = match map.get("BackoffRate") {
            None => 2.0,
            Some(v) => v
                .as_f64()
                .filter(|rate| *rate >= 1.0)
                .ok_or("`BackoffRate` must be a number of at least 1.0")?,
        };
        let max_delay_seconds = optional_int(map, "MaxDelaySeconds", 1, 31_622_400)?;
        let jitter = match map.get("JitterStrategy") {
            None => Jitter::None,
            Some(v) => match v.as_str() {
                Some("FULL") => Jitter::Full,
                Some("NONE") => Jitter::None,
                _ => return Err("`JitterStrategy` must be \"FULL\" or \"NONE\"".to_owned()),
            },
        };
        Ok(Self {
            error_equals: error_equals(map)?,
            interval_seconds,
            max_attempts: u32::try_from(max_attempts).map_err(|_| "`MaxAttempts` is too large")?,
            backoff_rate,
            max_delay_seconds,
            jitter,
        })
    }
}

impl Catcher {
    pub(crate) fn matches(&self, error: &str) -> bool {
        self.error_equals
            .iter()
            .any(|pattern| error_matches(pattern, error))
    }

    pub(crate) fn parse(value: &Value) -> Result<Self, String> {
        let map = value.as_object().ok_or("a catcher must be an object")?;
        check_fields(map, &["ErrorEquals", "Next", "ResultPath", "Comment"])?;
        let next = map
            .get("Next")
            .and_then(Value::as_str)
            .ok_or("a catcher needs a string `Next`")?
            .to_owned();
        Ok(Self {
            error_equals: error_equals(map)?,
            next,
            result_path: parse_result_path(map.get("ResultPath"))?,
        })
    }
}

/// Checks the rule that `States.ALL` must stand alone, in the last retrier or catcher.
pub(crate) fn check_all_is_last<'a>(
    lists: impl ExactSizeIterator<Item = &'a [String]>,
) -> Result<(), String> {
    let count = lists.len();
    for (index, names) in lists.enumerate() {
        if names.iter().any(|n| n == errors::ALL) && (names.len() > 1 || index + 1 != count) {
            return Err(
                "`States.ALL` must appear alone, in the last retrier or catcher".to_owned(),
            );
        }
    }
    Ok(())
}

/// ResultPath: absent means `$`, `null` means "discard the result".
pub(crate) fn parse_result_path(value: Option<&Value>) -> Result<Option<ReferencePath>, String> {
    match value {
        None => Ok(ReferencePath::parse("$")),
        Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let path = ReferencePath::parse(text).ok_or_else(|| {
                format!("ResultPath `{text}` must be a reference path such as `$.a.b`")
            })?;
            if text.starts_with("$$") {
                return Err("ResultPath cannot write to the context object".to_owned());
            }
            if path
                .segments()
                .iter()
                .any(|s| matches!(s, super::path::Segment::Index(i) if *i < 0))
            {
                return Err(format!("ResultPath `{text}` cannot use a negative index"));
            }
            Ok(Some(path))
        }
        Some(other) => Err(format!("ResultPath must be a string or null, not {other}")),
    }
}

fn error_equals(map: &Map<String, Value>) -> Result<Vec<String>, String> {
    let names = map
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|names| !names.is_empty())
        .ok_or("`ErrorEquals` must be a non-empty array of error names")?;
    names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_owned)
                .ok_or_else(|| "error names must be strings".to_owned())
        })
        .collect()
}

pub(crate) fn check_fields(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(format!("unsupported field `{field}`")),
        None => Ok(()),
    }
}

fn optional_int(
    map: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, String> {
    match map.get(field) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| format!("`{field}` must be an integer from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    #[test]
    fn wildcards_follow_the_aws_rules() {
        assert!(error_matches("States.ALL", "TransientError"));
        assert!(error_matches("States.ALL", "States.Timeout"));
        assert!(!error_matches("States.ALL", "States.Runtime"));
        assert!(!error_matches("States.ALL", "States.DataLimitExceeded"));
        assert!(error_matches(
            "States.TaskFailed",
            "Lambda.ServiceException"
        ));
        assert!(!error_matches("States.TaskFailed", "States.Timeout"));
        assert!(!error_matches("States.Runtime", "States.Runtime"));
        assert!(!error_matches("transienterror", "TransientError"));
        assert!(error_matches(
            "States.DataLimitExceeded",
            "States.DataLimitExceeded"
        ));
        assert!(!error_matches(
            "States.TaskFailed",
            "States.DataLimitExceeded"
        ));
        assert!(error_matches("States.Timeout", "States.HeartbeatTimeout"));
        assert!(error_matches(
            "States.HeartbeatTimeout",
            "States.HeartbeatTimeout"
        ));
        assert!(!error_matches(
            "States.TaskFailed",
            "States.HeartbeatTimeout"
        ));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let r = Retrier::parse(&json!({"ErrorEquals": ["X"]})).unwrap();
        assert_eq!(
            (r.interval_seconds, r.max_attempts, r.backoff_rate),
            (1, 3, 2.0)
        );
        assert_eq!((r.max_delay_seconds, r.jitter), (None, Jitter::None));
    }

    #[test]
    fn delay_backs_off_and_is_capped() {
        let r = Retrier::parse(&json!({"ErrorEquals": ["X"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxDelaySeconds": 5})).unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let secs: Vec<i64> = (0..5)
            .map(|n| r.delay(n, &mut rng).num_milliseconds())
            .collect();
        assert_eq!(secs, [1000, 2000, 4000, 5000, 5000]);
    }

    #[test]
    fn full_jitter_stays_below_the_backoff() {
        let r = Retrier::parse(
            &json!({"ErrorEquals": ["X"], "IntervalSeconds": 4, "JitterStrategy": "FULL"}),
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let delays: Vec<i64> = (0..200)
            .map(|_| r.delay(1, &mut rng).num_milliseconds())
            .collect();
        assert!(delays.iter().all(|d| (0..=8000).contains(d)));
        assert!(
            delays
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 100,
            "jitter varies"
        );
    }

    #[test]
    fn invalid_retriers_are_rejected() {
        for bad in [
            json!({"ErrorEquals": []}),
            json!({"ErrorEquals": ["X"], "BackoffRate": 0.5}),
            json!({"ErrorEquals": ["X"], "IntervalSeconds": 0}),
            json!({"ErrorEquals": ["X"], "MaxAttempts": -1}),
            json!({"ErrorEquals": ["X"], "JitterStrategy": "HALF"}),
            json!({"ErrorEquals": ["X"], "Backoff": 2}),
        ] {
            assert!(Retrier::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn states_all_must_be_alone_and_last() {
        let ok = [vec!["A".to_owned()], vec!["States.ALL".to_owned()]];
        assert!(check_all_is_last(ok.iter().map(Vec::as_slice)).is_ok());
        let not_last = [vec!["States.ALL".to_owned()], vec!["A".to_owned()]];
        assert!(check_all_is_last(not_last.iter().map(Vec::as_slice)).is_err());
        let not_alone = [vec!["A".to_owned(), "States.ALL".to_owned()]];
        assert!(check_all_is_last(not_alone.iter().map(Vec::as_slice)).is_err());
    }
}
