//! The alarms of `dashboards/alarms.json` — the very file Terraform turns
//! into CloudWatch alarms — evaluated like CloudWatch on the local metrics
//! ([`crate::observability::metrics`]), with state and history in SQLite and a notification
//! on every state change: always a JSON log line (WARN for ALARM), and a
//! webhook POST shaped like an SNS → HTTPS delivery when one is configured.
//!
//! What is CloudWatch-like here:
//! - a datapoint is the statistic (SampleCount, Sum, Average, Minimum,
//!   Maximum) of the metric over one period; periods are aligned to the
//!   epoch and only complete periods are evaluated;
//! - the alarm breaches when `datapoints_to_alarm` of `evaluation_periods`
//!   datapoints compare true against the threshold (M of N), read from
//!   CloudWatch's *evaluation range* (`n + 2` periods): with enough real
//!   datapoints in it the most recent real ones are evaluated, even past
//!   gaps, so an alarm keeps judging its last real datapoints for a while
//!   after a metric stops; with fewer, `treat_missing_data` fills in only
//!   the shortfall (`breaching` / `notBreaching` as such, `missing` and
//!   `ignore` not counted, with CloudWatch's premature-alarm rule), and
//!   with none `missing` goes to INSUFFICIENT_DATA while `ignore` keeps the
//!   current state (see [`evaluate`] and the AWS page it cites);
//! - metric math (`expression` over `metrics` ids): arithmetic, comparisons,
//!   `AND`/`OR`/`NOT`, `IF(c, a, b)`, `ABS`, `MIN`/`MAX`; a datapoint is
//!   missing where any input is missing or the result is not finite (a
//!   division by zero), as CloudWatch drops such points.
//!
//! Written here rather than taken from a crate: no crate evaluates CloudWatch
//! alarm definitions; the expression language needed is a few operators.
//!
//! Locally, `--alarm-period-scale` multiplies every period (0.01 turns five
//! minutes into three seconds, floor one second) so that a demo alarm fires
//! in seconds; the definitions are otherwise untouched.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::observability::metrics::{SeriesKey, Stats};

mod definition;
mod evaluate;
mod evaluator;
mod math;
mod notify;
mod state;
#[cfg(test)]
mod tests;

pub use definition::{load, Bindings};
pub use evaluate::{datapoints, evaluate, Datapoint, Evaluation};
pub use evaluator::{Evaluator, RegisterError};
pub use math::{parse_expression, BinOp, Expr};
pub use notify::{alarm_message, sns_envelope, WebhookConfig};
pub use state::{load_history, load_state, load_states, StoredState, Transition};

/// Errors in an alarm definition file.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    #[error("the alarm file is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error("alarm {alarm}: {problem}")]
    Invalid { alarm: String, problem: String },
    #[error("alarm {alarm}: {source}")]
    Template {
        alarm: String,
        source: crate::definitions::TemplateError,
    },
    #[error("alarm {alarm}: bad expression {expression:?}: {problem}")]
    Expression {
        alarm: String,
        expression: String,
        problem: String,
    },
}

fn invalid(alarm: &str, problem: impl Into<String>) -> AlarmError {
    AlarmError::Invalid {
        alarm: alarm.to_owned(),
        problem: problem.into(),
    }
}

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CloudWatch `ComparisonOperator` (the static-threshold ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }

    /// How CloudWatch words it in a state reason.
    fn phrase(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => "greater than",
            Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
            Comparison::LessThanThreshold => "less than",
            Comparison::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }
}

/// The statistics a local datapoint can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statistic {
    SampleCount,
    Sum,
    Average,
    Minimum,
    Maximum,
}

impl Statistic {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "SampleCount" => Statistic::SampleCount,
            "Sum" => Statistic::Sum,
            "Average" => Statistic::Average,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Sum => "Sum",
            Statistic::Average => "Average",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
        }
    }

    pub fn of(self, stats: &Stats) -> f64 {
        match self {
            Statistic::SampleCount => stats.sample_count as f64,
            Statistic::Sum => stats.sum,
            Statistic::Average => stats.average(),
            Statistic::Minimum => stats.min,
            Statistic::Maximum => stats.max,
        }
    }
}

/// `treat_missing_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingData {
    Breaching,
    NotBreaching,
    Ignore,
    Missing,
}

impl MissingData {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "breaching" => MissingData::Breaching,
            "notBreaching" => MissingData::NotBreaching,
            "ignore" => MissingData::Ignore,
            "missing" => MissingData::Missing,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
            MissingData::Ignore => "ignore",
            MissingData::Missing => "missing",
        }
    }
}

/// One metric an alarm reads.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub key: SeriesKey,
    pub statistic: Statistic,
}

/// What an alarm watches.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmSource {
    Metric(MetricQuery),
    Math {
        expression: Expr,
        expression_text: String,
        label: Option<String>,
        metrics: BTreeMap<String, MetricQuery>,
    },
}

/// One alarm, placeholders rendered, period scaled.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// The deployed name (`dofs-dlq-depth`, `dofs-validator-lambda-error-rate`).
    pub name: String,
    /// The id in the file (`dlq-depth`).
    pub id: String,
    pub description: String,
    pub source: AlarmSource,
    /// The period of the definition, in seconds.
    pub period_seconds: u64,
    /// The period evaluated locally (scaled).
    pub period: Duration,
    pub evaluation_periods: usize,
    pub datapoints_to_alarm: usize,
    pub threshold: f64,
    pub comparison: Comparison,
    pub treat_missing_data: MissingData,
}
