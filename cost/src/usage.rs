//! What was measured, and the settings a report is asked for.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Billable units measured by the local runtime over `orders` orders. Every
/// count is already rounded as AWS bills it (see [`crate::units`]), so the
/// arithmetic only multiplies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Orders the units were measured over; results are scaled from these.
    pub orders: u64,
    /// HTTP API requests, already metered in 512 KB increments.
    pub api_requests: u64,
    /// Standard workflow: every state entered, retries included.
    pub state_transitions: u64,
    /// Workflow executions started, which Express bills as requests.
    pub workflow_executions: u64,
    /// Σ over executions of the 64 MB-rounded memory times the 100 ms-rounded
    /// duration, in MB·ms ([`crate::express_billed_mb_ms`]).
    pub express_billed_mb_ms: u64,
    /// Σ over executions of the 100 ms-rounded duration. Optional: it splits
    /// `express_billed_mb_ms` into duration and memory for the Infracost
    /// file; 0 means unknown (then 64 MB is assumed there).
    #[serde(default)]
    pub express_billed_duration_ms: u64,
    /// One entry per function.
    pub lambda: Vec<LambdaUsage>,
    pub dynamodb_write_request_units: f64,
    pub dynamodb_read_request_units: f64,
    /// Optional split of the two totals above by table ("orders",
    /// "failed_orders"), for the Infracost file; empty puts everything on
    /// the orders table.
    #[serde(default)]
    pub dynamodb_by_table: BTreeMap<String, TableUnits>,
    /// SQS requests, already metered in 64 KB chunks, a batch counted once
    /// per chunk.
    pub sqs_requests: u64,
    /// Optional split of `sqs_requests` by queue ("main", "dlq"), for the
    /// Infracost file; empty puts everything on the main queue.
    #[serde(default)]
    pub sqs_requests_by_queue: BTreeMap<String, u64>,
    /// Application log lines' bytes by level: "DEBUG", "INFO", "WARN",
    /// "ERROR" (and "TRACE", below DEBUG).
    pub log_bytes_by_level: BTreeMap<String, u64>,
    /// EMF lines' bytes; they are kept at any log level.
    pub emf_bytes: u64,
    /// Lambda's own START/END/REPORT lines' bytes.
    pub platform_log_bytes: u64,
    /// Optional split of every Lambda log byte (application, EMF, platform)
    /// by function, for the Infracost file's log groups; empty splits the
    /// total by each function's share of requests.
    #[serde(default)]
    pub log_bytes_by_function: BTreeMap<String, u64>,
    /// Step Functions execution log events at level ALL, execution data
    /// excluded.
    pub workflow_log_bytes_all: u64,
    /// The same events at level ERROR.
    pub workflow_log_bytes_error: u64,
    pub xray_traces_recorded: u64,
    /// The sampling rate the run used (0..=1).
    pub trace_sample_rate: f64,
    pub kms_requests: u64,
}

/// DynamoDB request units of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TableUnits {
    pub write_request_units: f64,
    pub read_request_units: f64,
}

/// One function's invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LambdaUsage {
    /// The function's key in `terraform/functions.tf` ("api_handler",
    /// "validator", "order_storage", "fulfill_order", "dlq_handler").
    pub function: String,
    pub requests: u64,
    /// Σ per-invocation duration rounded up to 1 ms.
    pub billed_ms: u64,
    /// The configured memory (what Lambda bills, not what was used).
    pub memory_mb: u32,
    pub architecture: Architecture,
}

/// Lambda's instruction set, which sets its duration price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    X86_64,
    Arm64,
}

/// The state machine's type (the Terraform variable `workflow_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WorkflowType {
    Standard,
    Express,
}

/// A setting given as text that is none of the accepted spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what} (expected one of: {expected})")]
pub struct ParseSettingError {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for WorkflowType {
    type Err = ParseSettingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "STANDARD" => Ok(Self::Standard),
            "EXPRESS" => Ok(Self::Express),
            _ => Err(ParseSettingError {
                what: "workflow type",
                value: text.to_owned(),
                expected: "STANDARD, EXPRESS",
            }),
        }
    }
}

impl fmt::Display for WorkflowType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Standard => "STANDARD",
            Self::Express => "EXPRESS",
        })
    }
}

/// An application log level, lowest first, so that `>=` means "kept at".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The spelling used as a key of [`Usage::log_bytes_by_level`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

impl FromStr for LogLevel {
    type Err = ParseSettingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(Self::Debug),
            "INFO" => Ok(Self::Info),
            "WARN" | "WARNING" => Ok(Self::Warn),
            "ERROR" => Ok(Self::Error),
            _ => Err(ParseSettingError {
                what: "log level",
                value: text.to_owned(),
                expected: "DEBUG, INFO, WARN, ERROR",
            }),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Step Functions logging level of a state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WorkflowLogLevel {
    All,
    Error,
}

/// The level `terraform/workflow.tf` configures for the Standard state
/// machine (`logging_configuration { level = "ALL" }`, execution data off).
/// Express must log ALL too: its history exists only in CloudWatch Logs.
/// So both modes price [`Usage::workflow_log_bytes_all`] today; change this
/// if the Terraform does.
pub const STANDARD_WORKFLOW_LOG_LEVEL: WorkflowLogLevel = WorkflowLogLevel::All;

/// Settings to price other than as measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WhatIf {
    /// X-Ray sampling rate (0..=1) instead of [`Usage::trace_sample_rate`].
    pub trace_sample_rate: Option<f64>,
    /// Application log level instead of everything measured.
    pub log_level: Option<LogLevel>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_type_parses_either_case_and_serialises_upper_case() {
        assert_eq!("express".parse(), Ok(WorkflowType::Express));
        assert_eq!(" STANDARD ".parse(), Ok(WorkflowType::Standard));
        let err = "fast".parse::<WorkflowType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"fast\" is not a workflow type (expected one of: STANDARD, EXPRESS)"
        );
        assert_eq!(
            serde_json::to_string(&WorkflowType::Express).unwrap(),
            "\"EXPRESS\""
        );
        assert_eq!(WorkflowType::Standard.to_string(), "STANDARD");
    }

    #[test]
    fn log_level_parses_case_insensitively_and_orders_lowest_first() {
        assert_eq!("warn".parse(), Ok(LogLevel::Warn));
        assert_eq!("Warning".parse(), Ok(LogLevel::Warn));
        assert_eq!("info".parse(), Ok(LogLevel::Info));
        assert!("verbose".parse::<LogLevel>().is_err());
        assert!(LogLevel::Debug < LogLevel::Info);
        assert!(LogLevel::Warn < LogLevel::Error);
        assert_eq!(
            serde_json::to_string(&LogLevel::Error).unwrap(),
            "\"ERROR\""
        );
    }

    #[test]
    fn architecture_serialises_as_terraform_spells_it() {
        assert_eq!(
            serde_json::to_string(&Architecture::X86_64).unwrap(),
            "\"x86_64\""
        );
        assert_eq!(
            serde_json::to_string(&Architecture::Arm64).unwrap(),
            "\"arm64\""
        );
    }

    #[test]
    fn usage_without_the_optional_splits_deserialises() {
        let json = r#"{"orders":1,"api_requests":1,"state_transitions":5,
            "workflow_executions":1,"express_billed_mb_ms":6400,"lambda":[],
            "dynamodb_write_request_units":1.0,"dynamodb_read_request_units":0.5,
            "sqs_requests":3,"log_bytes_by_level":{"INFO":100},"emf_bytes":10,
            "platform_log_bytes":20,"workflow_log_bytes_all":30,
            "workflow_log_bytes_error":0,"xray_traces_recorded":1,
            "trace_sample_rate":1.0,"kms_requests":0}"#;
        let usage: Usage = serde_json::from_str(json).unwrap();
        assert!(usage.dynamodb_by_table.is_empty());
        assert!(usage.sqs_requests_by_queue.is_empty());
        assert_eq!(usage.express_billed_duration_ms, 0);
    }
}
