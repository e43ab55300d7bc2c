//! An Infracost usage file (version 0.1) with measured monthly figures, so
//! `infracost breakdown --usage-file` prices this repository's Terraform
//! from what the local runtime measured instead of guesses.
//!
//! Keys are the Terraform resource addresses in `terraform/`; the figures
//! are the measured units per order times `monthly_orders`. No YAML crate
//! is among the runtime's dependencies, so the file is written by hand: a
//! fixed two-level shape, every address single-quoted (they contain `[`, `"`
//! and `.`), every value a plain number.
//!
//! Counts are already metered in billing increments, so sizes are given as
//! one increment (64 KB for SQS, 512 KB for the HTTP API): Infracost then
//! bills each counted request once instead of re-chunking it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::estimate::BYTES_PER_GB;
use crate::usage::{Usage, WorkflowType};

const API: &str = "aws_apigatewayv2_api.orders";
const STATE_MACHINE: &str = "aws_sfn_state_machine.order_workflow";
const WORKFLOW_LOG_GROUP: &str = "aws_cloudwatch_log_group.workflow";
const KMS_KEY: &str = "aws_kms_key.stack";
const MAIN_TABLE: &str = "orders";
const MAIN_QUEUE: &str = "main";

/// One value of the file.
enum Value {
    Count(u64),
    Amount(f64),
}

/// The usage file for `monthly_orders` orders a month of the work measured
/// in `usage`, for a state machine of `workflow_type`.
pub fn infracost_usage(usage: &Usage, monthly_orders: u64, workflow_type: WorkflowType) -> String {
    let scale = if usage.orders == 0 {
        0.0
    } else {
        monthly_orders as f64 / usage.orders as f64
    };
    let monthly = |units: f64| -> f64 {
        let value = units * scale;
        if value.is_finite() {
            value
        } else {
            0.0
        }
    };
    let monthly_count = |units: u64| Value::Count(monthly(units as f64).round() as u64);

    let mut resources: BTreeMap<String, Vec<(&'static str, Value)>> = BTreeMap::new();

    resources.insert(
        API.to_owned(),
        vec![
            ("monthly_requests", monthly_count(usage.api_requests)),
            ("request_size_kb", Value::Count(512)),
        ],
    );

    let workflow = match workflow_type {
        WorkflowType::Standard => vec![(
            "monthly_transitions",
            monthly_count(usage.state_transitions),
        )],
        WorkflowType::Express => {
            let (duration_ms, memory_mb) = express_average(usage);
            vec![
                ("monthly_requests", monthly_count(usage.workflow_executions)),
                ("workflow_duration_ms", Value::Amount(round6(duration_ms))),
                ("memory_mb", Value::Amount(round6(memory_mb))),
            ]
        }
    };
    resources.insert(STATE_MACHINE.to_owned(), workflow);

    for function in &usage.lambda {
        let key = function_key(&function.function);
        let average_ms = if function.requests == 0 {
            0.0
        } else {
            function.billed_ms as f64 / function.requests as f64
        };
        resources.insert(
            format!("module.functions[\"{key}\"].aws_lambda_function.this"),
            vec![
                ("monthly_requests", monthly_count(function.requests)),
                ("request_duration_ms", Value::Amount(round6(average_ms))),
            ],
        );
    }

    for (key, bytes) in function_log_bytes(usage) {
        let monthly_gb = round6(monthly(bytes) / BYTES_PER_GB);
        resources.insert(
            format!("module.functions[\"{key}\"].aws_cloudwatch_log_group.this"),
            log_group(monthly_gb),
        );
    }
    let workflow_gb = round6(monthly(usage.workflow_log_bytes_all as f64) / BYTES_PER_GB);
    resources.insert(WORKFLOW_LOG_GROUP.to_owned(), log_group(workflow_gb));

    let tables: Vec<(String, f64, f64)> = if usage.dynamodb_by_table.is_empty() {
        vec![(
            MAIN_TABLE.to_owned(),
            usage.dynamodb_write_request_units,
            usage.dynamodb_read_request_units,
        )]
    } else {
        usage
            .dynamodb_by_table
            .iter()
            .map(|(table, units)| {
                (
                    table.clone(),
                    units.write_request_units,
                    units.read_request_units,
                )
            })
            .collect()
    };
    for (table, writes, reads) in tables {
        resources.insert(
            format!(
                "module.{}_table.aws_dynamodb_table.this",
                terraform_key(&table)
            ),
            vec![
                (
                    "monthly_write_request_units",
                    Value::Count(monthly(writes).ceil() as u64),
                ),
                (
                    "monthly_read_request_units",
                    Value::Count(monthly(reads).ceil() as u64),
                ),
            ],
        );
    }

    let queues: Vec<(String, u64)> = if usage.sqs_requests_by_queue.is_empty() {
        vec![(MAIN_QUEUE.to_owned(), usage.sqs_requests)]
    } else {
        usage
            .sqs_requests_by_queue
            .iter()
            .map(|(queue, requests)| (queue.clone(), *requests))
            .collect()
    };
    for (queue, requests) in queues {
        resources.insert(
            format!("module.order_queue.aws_sqs_queue.{}", terraform_key(&queue)),
            vec![
                ("monthly_requests", monthly_count(requests)),
                ("request_size_kb", Value::Count(64)),
            ],
        );
    }

    resources.insert(
        KMS_KEY.to_owned(),
        vec![("monthly_requests", monthly_count(usage.kms_requests))],
    );

    render(&resources, usage, monthly_orders, workflow_type)
}

/// A log group's usage: one month of ingestion, and as much stored, since
/// every group keeps 30 days (`var.log_retention_days`).
fn log_group(monthly_gb: f64) -> Vec<(&'static str, Value)> {
    vec![
        ("monthly_data_ingested_gb", Value::Amount(monthly_gb)),
        ("storage_gb", Value::Amount(monthly_gb)),
    ]
}

/// Average billed duration and memory of one Express execution. Without a
/// measured billed duration the memory is taken as one 64 MB chunk, which
/// keeps the product (what is billed) right.
fn express_average(usage: &Usage) -> (f64, f64) {
    if usage.workflow_executions == 0 {
        return (0.0, 0.0);
    }
    let executions = usage.workflow_executions as f64;
    let mb_ms = usage.express_billed_mb_ms as f64;
    if usage.express_billed_duration_ms > 0 {
        let duration_ms = usage.express_billed_duration_ms as f64;
        (duration_ms / executions, mb_ms / duration_ms)
    } else {
        (mb_ms / 64.0 / executions, 64.0)
    }
}

/// Lambda log bytes per function key: as measured per function, or else the
/// total split by each function's share of requests.
fn function_log_bytes(usage: &Usage) -> Vec<(String, f64)> {
    if !usage.log_bytes_by_function.is_empty() {
        return usage
            .log_bytes_by_function
            .iter()
            .map(|(function, bytes)| (function_key(function), *bytes as f64))
            .collect();
    }
    let total_bytes = usage
        .log_bytes_by_level
        .values()
        .fold(0u64, |sum, bytes| sum.saturating_add(*bytes))
        .saturating_add(usage.emf_bytes)
        .saturating_add(usage.platform_log_bytes) as f64;
    let total_requests: u64 = usage.lambda.iter().map(|f| f.requests).sum();
    usage
        .lambda
        .iter()
        .map(|function| {
            let share = if total_requests == 0 {
                1.0 / usage.lambda.len() as f64
            } else {
                function.requests as f64 / total_requests as f64
            };
            (function_key(&function.function), total_bytes * share)
        })
        .collect()
}

/// A function's key in `terraform/functions.tf` (`order-storage` and
/// `order_storage` both name `order_storage`).
fn function_key(name: &str) -> String {
    terraform_key(name)
}

fn terraform_key(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// Six decimals: finer than any price makes a difference for.
fn round6(value: f64) -> f64 {
    if value.is_finite() {
        (value * 1e6).round() / 1e6
    } else {
        0.0
    }
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn render(
    resources: &BTreeMap<String, Vec<(&'static str, Value)>>,
    usage: &Usage,
    monthly_orders: u64,
    workflow_type: WorkflowType,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "# Written by `dofs cost --infracost-usage`: {monthly_orders} orders a month \
         ({workflow_type} workflow), scaled from {} measured orders.",
        usage.orders
    );
    let _ = writeln!(
        out,
        "# Counts are already in billing increments. Use: infracost breakdown --path terraform --usage-file <this file>"
    );
    out.push_str("version: 0.1\nresource_usage:\n");
    for (address, values) in resources {
        let _ = writeln!(out, "  {}:", quoted(address));
        for (key, value) in values {
            let _ = match value {
                Value::Count(count) => writeln!(out, "    {key}: {count}"),
                Value::Amount(amount) => writeln!(out, "    {key}: {amount}"),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::usage::{Architecture, LambdaUsage, TableUnits};

    const FUNCTIONS: [&str; 5] = [
        "api_handler",
        "validator",
        "order_storage",
        "fulfill_order",
        "dlq_handler",
    ];

    fn measured() -> Usage {
        Usage {
            orders: 100,
            api_requests: 100,
            state_transitions: 520,
            workflow_executions: 100,
            express_billed_mb_ms: 100 * 300 * 64,
            express_billed_duration_ms: 100 * 300,
            lambda: FUNCTIONS
                .iter()
                .map(|function| LambdaUsage {
                    function: (*function).to_owned(),
                    requests: 100,
                    billed_ms: 100 * 12,
                    memory_mb: 256,
                    architecture: Architecture::Arm64,
                })
                .collect(),
            dynamodb_write_request_units: 300.0,
            dynamodb_read_request_units: 50.0,
            dynamodb_by_table: BTreeMap::from([
                (
                    "orders".to_owned(),
                    TableUnits {
                        write_request_units: 280.0,
                        read_request_units: 50.0,
                    },
                ),
                (
                    "failed_orders".to_owned(),
                    TableUnits {
                        write_request_units: 20.0,
                        read_request_units: 0.0,
                    },
                ),
            ]),
            sqs_requests: 330,
            sqs_requests_by_queue: BTreeMap::from([
                ("main".to_owned(), 300),
                ("dlq".to_owned(), 30),
            ]),
            log_bytes_by_level: BTreeMap::from([("INFO".to_owned(), 500 * 1024)]),
            emf_bytes: 0,
            platform_log_bytes: 0,
            workflow_log_bytes_all: 1024 * 1024,
            trace_sample_rate: 1.0,
            kms_requests: 200,
            ..Usage::default()
        }
    }

    fn parse(yaml: &str) -> serde_norway::Value {
        serde_norway::from_str(yaml).unwrap()
    }

    fn resource<'a>(doc: &'a serde_norway::Value, address: &str) -> &'a serde_norway::Value {
        doc["resource_usage"]
            .get(address)
            .unwrap_or_else(|| panic!("no {address} in the usage file"))
    }

    #[test]
    fn standard_file_parses_and_scales_to_the_monthly_volume() {
        let yaml = infracost_usage(&measured(), 1_000_000, WorkflowType::Standard);
        let doc = parse(&yaml);
        assert_eq!(doc["version"].as_f64(), Some(0.1));
        let machine = resource(&doc, "aws_sfn_state_machine.order_workflow");
        assert_eq!(machine["monthly_transitions"].as_u64(), Some(5_200_000));
        assert!(machine.get("monthly_requests").is_none());

        let api = resource(&doc, "aws_apigatewayv2_api.orders");
        assert_eq!(api["monthly_requests"].as_u64(), Some(1_000_000));
        assert_eq!(api["request_size_kb"].as_u64(), Some(512));

        for function in FUNCTIONS {
            let lambda = resource(
                &doc,
                &format!("module.functions[\"{function}\"].aws_lambda_function.this"),
            );
            assert_eq!(lambda["monthly_requests"].as_u64(), Some(1_000_000));
            assert_eq!(lambda["request_duration_ms"].as_f64(), Some(12.0));
            let logs = resource(
                &doc,
                &format!("module.functions[\"{function}\"].aws_cloudwatch_log_group.this"),
            );
            // 500 KB per 100 orders, a fifth each, over 10,000 × 100 orders.
            let expected = 500.0 * 1024.0 / 5.0 * 10_000.0 / BYTES_PER_GB;
            let ingested = logs["monthly_data_ingested_gb"].as_f64().unwrap();
            assert!(
                (ingested - expected).abs() < 1e-6,
                "{ingested} vs {expected}"
            );
        }

        let orders = resource(&doc, "module.orders_table.aws_dynamodb_table.this");
        assert_eq!(
            orders["monthly_write_request_units"].as_u64(),
            Some(2_800_000)
        );
        assert_eq!(orders["monthly_read_request_units"].as_u64(), Some(500_000));
        let failed = resource(&doc, "module.failed_orders_table.aws_dynamodb_table.this");
        assert_eq!(
            failed["monthly_write_request_units"].as_u64(),
            Some(200_000)
        );

        let main = resource(&doc, "module.order_queue.aws_sqs_queue.main");
        assert_eq!(main["monthly_requests"].as_u64(), Some(3_000_000));
        assert_eq!(main["request_size_kb"].as_u64(), Some(64));
        let dlq = resource(&doc, "module.order_queue.aws_sqs_queue.dlq");
        assert_eq!(dlq["monthly_requests"].as_u64(), Some(300_000));

        let workflow_logs = resource(&doc, "aws_cloudwatch_log_group.workflow");
        let expected = 10_000.0 * 1024.0 * 1024.0 / BYTES_PER_GB;
        let ingested = workflow_logs["monthly_data_ingested_gb"].as_f64().unwrap();
        assert!((ingested - expected).abs() < 1e-6);

        let key = resource(&doc, "aws_kms_key.stack");
        assert_eq!(key["monthly_requests"].as_u64(), Some(2_000_000));
    }

    #[test]
    fn express_file_gives_requests_duration_and_memory() {
        let yaml = infracost_usage(&measured(), 1_000_000, WorkflowType::Express);
        let doc = parse(&yaml);
        let machine = resource(&doc, "aws_sfn_state_machine.order_workflow");
        assert_eq!(machine["monthly_requests"].as_u64(), Some(1_000_000));
        assert_eq!(machine["workflow_duration_ms"].as_f64(), Some(300.0));
        assert_eq!(machine["memory_mb"].as_f64(), Some(64.0));
        assert!(machine.get("monthly_transitions").is_none());

        // Without the billed duration, 64 MB is assumed and the product kept.
        let mut usage = measured();
        usage.express_billed_duration_ms = 0;
        usage.express_billed_mb_ms = 100 * 300 * 128;
        let doc = parse(&infracost_usage(&usage, 1_000_000, WorkflowType::Express));
        let machine = resource(&doc, "aws_sfn_state_machine.order_workflow");
        assert_eq!(machine["workflow_duration_ms"].as_f64(), Some(600.0));
        assert_eq!(machine["memory_mb"].as_f64(), Some(64.0));
    }

    #[test]
    fn unsplit_tables_and_queues_fall_to_the_main_resource() {
        let mut usage = measured();
        usage.dynamodb_by_table.clear();
        usage.sqs_requests_by_queue.clear();
        let doc = parse(&infracost_usage(&usage, 100, WorkflowType::Standard));
        let orders = resource(&doc, "module.orders_table.aws_dynamodb_table.this");
        assert_eq!(orders["monthly_write_request_units"].as_u64(), Some(300));
        assert!(doc["resource_usage"]
            .get("module.failed_orders_table.aws_dynamodb_table.this")
            .is_none());
        let main = resource(&doc, "module.order_queue.aws_sqs_queue.main");
        assert_eq!(main["monthly_requests"].as_u64(), Some(330));
    }

    #[test]
    fn addresses_are_quoted_and_the_shape_is_two_levels() {
        let yaml = infracost_usage(&measured(), 10, WorkflowType::Standard);
        assert!(yaml.contains("\nversion: 0.1\nresource_usage:\n"));
        assert!(
            yaml.contains("\n  'module.functions[\"api_handler\"].aws_lambda_function.this':\n")
        );
        for line in yaml.lines().filter(|l| !l.starts_with('#')) {
            let ok = line == "version: 0.1"
                || line == "resource_usage:"
                || (line.starts_with("  '") && line.ends_with("':"))
                || (line.starts_with("    ") && line.trim().split_once(": ").is_some());
            assert!(ok, "unexpected line {line:?}");
        }
    }

    #[test]
    fn no_orders_gives_zeros_not_nan() {
        let mut usage = measured();
        usage.orders = 0;
        let yaml = infracost_usage(&usage, 1_000_000, WorkflowType::Standard);
        let values: Vec<&str> = yaml.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(
            values
                .iter()
                .all(|l| !l.contains("NaN") && !l.contains("inf")),
            "{yaml}"
        );
        let doc = parse(&yaml);
        let key = resource(&doc, "aws_kms_key.stack");
        assert_eq!(key["monthly_requests"].as_u64(), Some(0));
    }

    #[test]
    fn the_addresses_exist_in_the_terraform() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform");
        let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();
        assert!(read("api.tf").contains("resource \"aws_apigatewayv2_api\" \"orders\""));
        let workflow = read("workflow.tf");
        assert!(workflow.contains("resource \"aws_sfn_state_machine\" \"order_workflow\""));
        assert!(workflow.contains("resource \"aws_cloudwatch_log_group\" \"workflow\""));
        assert!(read("kms.tf").contains("resource \"aws_kms_key\" \"stack\""));
        let tables = read("tables.tf");
        assert!(tables.contains("module \"orders_table\""));
        assert!(tables.contains("module \"failed_orders_table\""));
        assert!(read("queues.tf").contains("module \"order_queue\""));
        let functions = read("functions.tf");
        assert!(functions.contains("module \"functions\""));
        for function in FUNCTIONS {
            assert!(functions.contains(&format!("{function} ")), "{function}");
        }
        let queue = read("modules/queue_with_dlq/main.tf");
        assert!(queue.contains("resource \"aws_sqs_queue\" \"main\""));
        assert!(queue.contains("resource \"aws_sqs_queue\" \"dlq\""));
        assert!(read("modules/dynamodb_table/main.tf")
            .contains("resource \"aws_dynamodb_table\" \"this\""));
        let lambda = read("modules/lambda_function/main.tf");
        assert!(lambda.contains("resource \"aws_lambda_function\" \"this\""));
        assert!(lambda.contains("resource \"aws_cloudwatch_log_group\" \"this\""));
    }
}
