//! The usage meter: every unit AWS would bill for the work the runtime
//! does, counted as it happens, for `dofs cost` (which prices them with
//! `dofs-cost` and `pricing/<region>.json`).
//!
//! Counted where the work happens, by the rules each pricing page states:
//! - **API Gateway** (HTTP API): every request to the API, in 512 KB
//!   increments (<https://aws.amazon.com/api-gateway/pricing/>); console and
//!   tool traffic is not API traffic and is not counted.
//! - **Step Functions** (<https://aws.amazon.com/step-functions/pricing/>):
//!   Standard bills state transitions, "including retries", so every state
//!   entered plus every retry of a Task; Express bills each execution and
//!   its duration rounded up to 100 ms at its memory in 64 MB chunks (a
//!   workflow whose state is a few KB fits the first chunk). Both are
//!   counted whatever type runs, so one run prices both side by side.
//! - **Execution logs**: the CloudWatch Logs events Step Functions would
//!   write with `includeExecutionData = false`
//!   (<https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html>),
//!   each built as its JSON line (id, type, details without input or
//!   output, previous id, timestamp, the express execution ARN of a real
//!   region and account) and measured, at level ALL and at level ERROR.
//! - **Lambda** (<https://aws.amazon.com/lambda/pricing/>): requests, and
//!   each invocation's measured duration rounded up to 1 ms at the
//!   configured memory (`--function-memory-mb`, Terraform's
//!   `function_memory_mb`); the functions run on arm64.
//! - **Lambda logs**: every line a function writes that its log level lets
//!   through, by level; the EMF documents its metrics would be on Lambda;
//!   and Lambda's own `platform.start` / `platform.report` lines, built as
//!   Lambda writes them in the JSON log format
//!   (<https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html>)
//!   and measured.
//! - **DynamoDB** on demand (<https://aws.amazon.com/dynamodb/pricing/on-demand/>):
//!   a write is one unit per KB of the larger of the item before and after
//!   (a failed conditional write too), a strongly consistent read one unit
//!   per 4 KB (at least one, an absent item included). The item's size is
//!   its stored JSON document's, a little over DynamoDB's own measure.
//! - **SQS** (<https://aws.amazon.com/sqs/pricing/>): each send, each
//!   receive that returns messages and each delete batch, in 64 KB chunks.
//!   Empty receives are left out: Lambda's pollers long-poll at a rate that
//!   does not depend on orders, so they are a fixed monthly sum, not a cost
//!   per order (the local pollers' rate is not AWS's anyway).
//! - **KMS** (<https://aws.amazon.com/kms/pricing/>): the queues are
//!   encrypted with the stack's key and `kms_data_key_reuse_period_seconds
//!   = 300`, so a producer calls `GenerateDataKey` and a consumer `Decrypt`
//!   once per queue per reuse period
//!   (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html>).
//! - **X-Ray**: one trace recorded per traced order.
//!
//! Counters are kept in memory and added to the `usage_counters` table at
//! each metrics flush (and at shutdown), so the figures outlive restarts;
//! a crash loses at most one flush interval of counts.
//!
//! Written here: no crate meters AWS billing units.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use dofs_asl::HistoryEventKind;
use dofs_core::Clock;
use dofs_cost::{
    Architecture, CostReport, LambdaUsage, Pricing, PricingError, TableUnits, Usage, WhatIf,
};
use rusqlite::{params, Connection};
use serde_json::json;

use crate::identity::{FunctionName, DEAD_LETTER_QUEUE, ORDER_QUEUE};
use crate::store::{Db, DbError};

/// Terraform's default `function_memory_mb`.
pub const DEFAULT_FUNCTION_MEMORY_MB: u32 = 256;
/// The queues' `kms_data_key_reuse_period_seconds`.
const KMS_DATA_KEY_REUSE_MS: i64 = 300_000;
/// The memory an Express execution of this workflow is billed for.
const EXPRESS_MEMORY_MB: u64 = 64;

/// Counts billable units; cheap to clone. [`UsageMeter::off`] counts
/// nothing.
#[derive(Clone, Default)]
pub struct UsageMeter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    pending: Mutex<BTreeMap<String, f64>>,
    /// When each (queue, operation) last called KMS.
    kms_calls: Mutex<HashMap<(String, &'static str), i64>>,
    memory_mb: u32,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMeter")
            .field("on", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

/// One step's history, measured before the write that stores it and added
/// once the write has committed (a failed write is retried and must not
/// count twice).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct HistoryUsage {
    transitions: u64,
    log_bytes_all: u64,
    log_bytes_error: u64,
}

impl HistoryUsage {
    /// The transitions and execution-log bytes of `events` of execution
    /// `name`, each event given as (kind, state name).
    pub fn of<'a>(
        name: &str,
        events: impl IntoIterator<Item = (HistoryEventKind, Option<&'a str>)>,
    ) -> Self {
        let arn = format!(
            "arn:aws:states:us-east-1:123456789012:express:{}:{name}:{}",
            crate::identity::STATE_MACHINE_NAME,
            uuid::Uuid::nil()
        );
        let mut usage = HistoryUsage::default();
        for (id, (kind, state)) in events.into_iter().enumerate() {
            usage.transitions += u64::from(matches!(
                kind,
                HistoryEventKind::StateEntered(_) | HistoryEventKind::TaskRetryScheduled
            ));
            // Ours alone: Step Functions shows a retry as a gap.
            if kind == HistoryEventKind::TaskRetryScheduled {
                continue;
            }
            let details = match (kind, state) {
                (
                    HistoryEventKind::StateEntered(_) | HistoryEventKind::StateExited(_),
                    Some(state),
                ) => {
                    json!({"name": state, "inputDetails": {"truncated": false}})
                }
                (HistoryEventKind::TaskScheduled, _) => json!({
                    "resourceType": "lambda", "resource": "invoke", "region": "us-east-1",
                    "timeoutInSeconds": 30,
                }),
                (kind, _) if is_error_event(kind) => {
                    json!({"error": "States.TaskFailed", "cause": ""})
                }
                _ => json!({"resourceType": "lambda", "resource": "invoke"}),
            };
            let line = json!({
                "id": (id + 2).to_string(),
                "type": kind.as_str(),
                "details": details,
                "previous_event_id": (id + 1).to_string(),
                "event_timestamp": "1764717630402",
                "execution_arn": arn,
                "redrive_count": "0",
            })
            .to_string();
            let bytes = line.len() as u64 + 1;
            usage.log_bytes_all += bytes;
            if is_error_event(kind) {
                usage.log_bytes_error += bytes;
            }
        }
        usage
    }
}

/// The events Step Functions logs at level ERROR: the failures of tasks and
/// of the execution.
fn is_error_event(kind: HistoryEventKind) -> bool {
    use HistoryEventKind::*;
    matches!(
        kind,
        TaskFailed | TaskTimedOut | ExecutionFailed | ExecutionTimedOut | ExecutionAborted
    )
}

impl UsageMeter {
    /// Counts nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// A meter whose functions have `memory_mb` each.
    pub fn new(memory_mb: u32, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                pending: Mutex::default(),
                kms_calls: Mutex::default(),
                memory_mb,
                clock,
            })),
        }
    }

    fn add(&self, key: &str, amount: f64) {
        if let Some(inner) = &self.inner {
            *inner
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.to_owned())
                .or_default() += amount;
        }
    }

    /// One request to the API with a body of `bytes`.
    pub fn api_request(&self, bytes: usize) {
        self.add(
            "api.requests",
            dofs_cost::api_requests_for_payload(bytes as u64) as f64,
        );
    }

    /// A new order accepted (a 202 that is not a replay), traced or not.
    pub fn order_accepted(&self, traced: bool) {
        self.add("orders", 1.0);
        if traced {
            self.add("xray.traces", 1.0);
        }
    }

    /// One invocation of `function` that ran `duration_ms`, with Lambda's
    /// platform lines for it.
    pub fn lambda_invocation(&self, function: FunctionName, duration_ms: f64) {
        let Some(inner) = &self.inner else { return };
        let billed_ms = duration_ms.max(0.0).ceil().max(1.0);
        let name = function.as_str();
        self.add(&format!("lambda.{name}.requests"), 1.0);
        self.add(&format!("lambda.{name}.billed_ms"), billed_ms);
        self.add(
            &format!("lambda.{name}.mb_ms"),
            billed_ms * f64::from(inner.memory_mb),
        );
        self.add(
            &format!("logs.{name}.platform"),
            platform_line_bytes(duration_ms, billed_ms, inner.memory_mb) as f64,
        );
    }

    /// A log line of `bytes` a function wrote at `level`.
    pub fn log_line(&self, function: &str, level: &str, bytes: usize) {
        if let Some(function) = FunctionName::resolve(function) {
            self.add(
                &format!("logs.{}.{}", function.as_str(), level.to_ascii_uppercase()),
                bytes as f64,
            );
        }
    }

    /// The EMF documents of `bytes` a function's metrics would be on Lambda.
    pub fn emf(&self, function: &str, bytes: usize) {
        if let Some(function) = FunctionName::resolve(function) {
            self.add(&format!("logs.{}.emf", function.as_str()), bytes as f64);
        }
    }

    /// A committed step's history.
    pub fn history(&self, usage: &HistoryUsage) {
        self.add("sfn.transitions", usage.transitions as f64);
        self.add("sfn.log_bytes_all", usage.log_bytes_all as f64);
        self.add("sfn.log_bytes_error", usage.log_bytes_error as f64);
    }

    /// An execution started.
    pub fn execution_started(&self) {
        self.add("sfn.executions", 1.0);
    }

    /// An execution ended after `duration_ms`: what Express would bill.
    pub fn execution_ended(&self, duration_ms: u64) {
        self.add(
            "sfn.express_billed_ms",
            dofs_cost::express_billed_duration_ms(duration_ms) as f64,
        );
        self.add(
            "sfn.express_mb_ms",
            dofs_cost::express_billed_mb_ms(duration_ms, EXPRESS_MEMORY_MB) as f64,
        );
    }

    /// A write to `table` of an item whose larger size (before, after) is
    /// `bytes`.
    pub fn dynamodb_write(&self, table: &str, bytes: usize) {
        self.add(
            &format!("ddb.{table}.wru"),
            dofs_cost::dynamodb_write_units(bytes as u64) as f64,
        );
    }

    /// A strongly consistent read from `table` of `bytes` (0: absent).
    pub fn dynamodb_read(&self, table: &str, bytes: usize) {
        self.add(
            &format!("ddb.{table}.rru"),
            dofs_cost::dynamodb_read_units(bytes as u64, true),
        );
    }

    /// One SQS request on `queue` carrying `bytes` of messages; `kms` is
    /// the KMS call a request of its kind needs once per reuse period
    /// (`GenerateDataKey` to send, `Decrypt` to receive), if any.
    pub fn sqs_request(&self, queue: &str, bytes: usize, kms: Option<&'static str>) {
        let Some(inner) = &self.inner else { return };
        let queue_key = match queue {
            ORDER_QUEUE => "main",
            DEAD_LETTER_QUEUE => "dlq",
            other => other,
        };
        self.add(
            &format!("sqs.{queue_key}.requests"),
            dofs_cost::sqs_requests_for_payload(bytes as u64) as f64,
        );
        if let Some(operation) = kms {
            let now = inner.clock.now().timestamp_millis();
            let mut calls = inner
                .kms_calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let last = calls
                .entry((queue.to_owned(), operation))
                .or_insert(i64::MIN);
            if now.saturating_sub(*last) >= KMS_DATA_KEY_REUSE_MS {
                *last = now;
                drop(calls);
                self.add("kms.requests", 1.0);
            }
        }
    }

    /// Adds what was counted since the last flush to the stored counters.
    /// On error the counts are put back.
    pub async fn flush(&self, db: &Db) -> Result<(), DbError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let taken =
            std::mem::take(&mut *inner.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(());
        }
        let rows = Arc::new(taken);
        let writing = Arc::clone(&rows);
        let result = db
            .write(move |conn| {
                let mut upsert = conn.prepare_cached(
                    "INSERT INTO usage_counters(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                )?;
                for (key, value) in writing.iter() {
                    upsert.execute(params![key, value])?;
                }
                Ok(())
            })
            .await;
        if result.is_err() {
            let mut pending = inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, value) in rows.iter() {
                *pending.entry(key.clone()).or_default() += value;
            }
        }
        result
    }
}

/// The bytes of Lambda's `platform.start` and `platform.report` lines for
/// one invocation, in the JSON log format.
fn platform_line_bytes(duration_ms: f64, billed_ms: f64, memory_mb: u32) -> usize {
    let request_id = uuid::Uuid::nil().to_string();
    let time = "2026-12-02T23:40:30.402Z";
    let start = json!({
        "time": time, "type": "platform.start",
        "record": {"requestId": request_id, "version": "$LATEST"},
    });
    let report = json!({
        "time": time, "type": "platform.report",
        "record": {
            "requestId": request_id,
            "metrics": {
                "durationMs": (duration_ms * 100.0).round() / 100.0,
                "billedDurationMs": billed_ms as u64,
                "memorySizeMB": memory_mb,
                "maxMemoryUsedMB": 20,
            },
            "status": "success",
        },
    });
    start.to_string().len() + report.to_string().len() + 2
}

/// Every stored counter.
pub fn counters(conn: &Connection) -> Result<BTreeMap<String, f64>, DbError> {
    let mut statement = conn.prepare("SELECT key, value FROM usage_counters")?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The counters as [`dofs_cost::Usage`], with `trace_sample_rate` the rate
/// the runtime traced orders at.
pub fn usage_of(counters: &BTreeMap<String, f64>, trace_sample_rate: f64) -> Usage {
    let get = |key: &str| counters.get(key).copied().unwrap_or(0.0);
    let count = |key: &str| get(key).round().max(0.0) as u64;
    let mut usage = Usage {
        orders: count("orders"),
        api_requests: count("api.requests"),
        state_transitions: count("sfn.transitions"),
        workflow_executions: count("sfn.executions"),
        express_billed_mb_ms: count("sfn.express_mb_ms"),
        express_billed_duration_ms: count("sfn.express_billed_ms"),
        workflow_log_bytes_all: count("sfn.log_bytes_all"),
        workflow_log_bytes_error: count("sfn.log_bytes_error"),
        xray_traces_recorded: count("xray.traces"),
        trace_sample_rate,
        kms_requests: count("kms.requests"),
        ..Usage::default()
    };
    for function in FunctionName::ALL {
        let name = function.as_str();
        let requests = count(&format!("lambda.{name}.requests"));
        let billed_ms = count(&format!("lambda.{name}.billed_ms"));
        if requests > 0 {
            let mb_ms = get(&format!("lambda.{name}.mb_ms"));
            usage.lambda.push(LambdaUsage {
                function: name.to_owned(),
                requests,
                billed_ms,
                memory_mb: (mb_ms / billed_ms.max(1) as f64).round() as u32,
                architecture: Architecture::Arm64,
            });
        }
        let mut function_bytes = 0;
        for (key, value) in counters.range(format!("logs.{name}.")..) {
            let Some(kind) = key.strip_prefix(&format!("logs.{name}.")) else {
                break;
            };
            let bytes = value.round().max(0.0) as u64;
            function_bytes += bytes;
            match kind {
                "emf" => usage.emf_bytes += bytes,
                "platform" => usage.platform_log_bytes += bytes,
                level => {
                    *usage
                        .log_bytes_by_level
                        .entry(level.to_owned())
                        .or_default() += bytes
                }
            }
        }
        if function_bytes > 0 {
            usage
                .log_bytes_by_function
                .insert(name.to_owned(), function_bytes);
        }
    }
    for table in ["orders", "failed_orders"] {
        let units = TableUnits {
            write_request_units: get(&format!("ddb.{table}.wru")),
            read_request_units: get(&format!("ddb.{table}.rru")),
        };
        usage.dynamodb_write_request_units += units.write_request_units;
        usage.dynamodb_read_request_units += units.read_request_units;
        usage.dynamodb_by_table.insert(table.to_owned(), units);
    }
    for queue in ["main", "dlq"] {
        let requests = count(&format!("sqs.{queue}.requests"));
        usage.sqs_requests += requests;
        usage
            .sqs_requests_by_queue
            .insert(queue.to_owned(), requests);
    }
    usage
}

/// What `dofs cost` and the console show: the units measured, the orders
/// still in flight (whose units are partly counted), and their price.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CostSummary {
    pub measured: Usage,
    pub orders_in_flight: u64,
    pub report: CostReport,
}

impl CostSummary {
    /// The summary of everything metered in `conn`'s data directory.
    pub fn read(conn: &Connection, pricing: &Pricing, what_if: &WhatIf) -> Result<Self, DbError> {
        let counters = counters(conn)?;
        let orders = counters.get("orders").copied().unwrap_or(0.0);
        let rate = if orders > 0.0 {
            counters.get("xray.traces").copied().unwrap_or(0.0) / orders
        } else {
            1.0
        };
        let measured = usage_of(&counters, rate);
        let orders_in_flight: i64 = conn.query_row(
            "SELECT count(*) FROM orders WHERE status NOT IN ('FULFILLED', 'FAILED', 'REJECTED')",
            [],
            |r| r.get(0),
        )?;
        let report = dofs_cost::estimate(&measured, pricing, what_if);
        Ok(Self {
            measured,
            orders_in_flight: orders_in_flight.max(0) as u64,
            report,
        })
    }
}

/// The price table of `region`: from `dir` when given, else the built-in
/// us-east-1 table, else `pricing/<region>.json` under the working
/// directory (the repository's tables).
pub fn pricing(region: &str, dir: Option<&std::path::Path>) -> Result<Pricing, PricingError> {
    match dir {
        Some(dir) => Pricing::load_region(dir, region),
        None if region == "us-east-1" => Pricing::from_json(crate::definitions::PRICING_US_EAST_1),
        None => Pricing::load_region(std::path::Path::new("pricing"), region),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_asl::StateType;

    #[test]
    fn transitions_are_states_entered_and_retries() {
        let events = [
            (
                HistoryEventKind::StateEntered(StateType::Task),
                Some("ValidateOrder"),
            ),
            (HistoryEventKind::TaskScheduled, None),
            (HistoryEventKind::TaskFailed, None),
            (HistoryEventKind::TaskRetryScheduled, None),
            (HistoryEventKind::TaskScheduled, None),
            (HistoryEventKind::TaskSucceeded, None),
            (
                HistoryEventKind::StateExited(StateType::Task),
                Some("ValidateOrder"),
            ),
            (
                HistoryEventKind::StateEntered(StateType::Choice),
                Some("CheckVerdict"),
            ),
        ];
        let usage = HistoryUsage::of("o-1", events);
        assert_eq!(usage.transitions, 3, "two states and one retry");
        assert!(usage.log_bytes_error > 0 && usage.log_bytes_error < usage.log_bytes_all);
    }

    #[test]
    fn an_invocation_bills_whole_milliseconds_at_its_memory() {
        let meter = UsageMeter::new(256, Arc::new(dofs_core::SystemClock));
        meter.lambda_invocation(FunctionName::Validator, 1.2);
        meter.lambda_invocation(FunctionName::Validator, 0.0);
        let pending = meter
            .inner
            .as_ref()
            .unwrap()
            .pending
            .lock()
            .unwrap()
            .clone();
        assert_eq!(pending["lambda.validator.requests"], 2.0);
        assert_eq!(
            pending["lambda.validator.billed_ms"], 3.0,
            "2 ms + the 1 ms minimum"
        );
        assert_eq!(pending["lambda.validator.mb_ms"], 3.0 * 256.0);
        let usage = usage_of(&pending, 1.0);
        assert_eq!(usage.lambda[0].memory_mb, 256);
        assert_eq!(usage.lambda[0].billed_ms, 3);
        assert!(
            usage.platform_log_bytes > 200,
            "{}",
            usage.platform_log_bytes
        );
    }

    #[test]
    fn kms_is_called_once_per_queue_and_operation_per_reuse_period() {
        let clock = Arc::new(dofs_core::testkit::ManualClock::new(chrono::Utc::now()));
        let meter = UsageMeter::new(256, clock.clone());
        for _ in 0..5 {
            meter.sqs_request(ORDER_QUEUE, 100, Some("GenerateDataKey"));
            meter.sqs_request(ORDER_QUEUE, 100, Some("Decrypt"));
            meter.sqs_request(ORDER_QUEUE, 100, None);
        }
        clock.advance(chrono::Duration::milliseconds(KMS_DATA_KEY_REUSE_MS));
        meter.sqs_request(ORDER_QUEUE, 100, Some("Decrypt"));
        let pending = meter
            .inner
            .as_ref()
            .unwrap()
            .pending
            .lock()
            .unwrap()
            .clone();
        assert_eq!(pending["kms.requests"], 3.0);
        assert_eq!(pending["sqs.main.requests"], 16.0);
    }
}
