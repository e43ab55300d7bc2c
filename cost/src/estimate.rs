//! Dollars per million orders, per service, for both workflow types.
//!
//! For every unit: (units / orders) × 1,000,000 × price per unit. The two
//! workflow types do the same work, so they differ only in the Step
//! Functions line (state transitions against requests plus GB-seconds) and
//! in the workflow's share of CloudWatch Logs; every other line is the same
//! in both columns.

use serde::Serialize;

use crate::pricing::{Price, Pricing};
use crate::usage::{
    Architecture, LogLevel, Usage, WhatIf, WorkflowLogLevel, STANDARD_WORKFLOW_LOG_LEVEL,
};

/// Bytes in the GB that CloudWatch Logs ingestion is billed by.
pub const BYTES_PER_GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What a run's orders would cost on AWS, scaled to a million orders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    pub region: String,
    /// The price table's date.
    pub as_of: String,
    pub currency: String,
    /// Orders the usage was measured over.
    pub orders: u64,
    pub what_if: WhatIf,
    /// In the order of the console's and the CLI's table.
    pub services: Vec<ServiceCost>,
    pub standard_total_per_million: f64,
    pub express_total_per_million: f64,
    /// Standard total over Express total (0 when Express costs nothing).
    pub standard_to_express_ratio: f64,
    /// Prices paid per month whatever the volume (not per order).
    pub fixed_monthly: Vec<FixedCost>,
}

/// One service's cost in US dollars per million orders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceCost {
    /// "API Gateway", "Step Functions", "Lambda", "DynamoDB", "SQS",
    /// "CloudWatch Logs", "X-Ray", "KMS".
    pub service: String,
    pub standard_per_million: f64,
    pub express_per_million: f64,
}

/// One price paid per month for a resource, whatever the order volume.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FixedCost {
    /// The price table's key, e.g. "kms_customer_managed_key".
    pub item: String,
    pub unit: String,
    /// US dollars per month for one of `unit`.
    pub monthly_price: f64,
    pub source: String,
}

/// GB-seconds in `mb_ms` megabyte-milliseconds (1,024 MB to the GB, as both
/// Lambda and Step Functions count).
pub fn gb_seconds(mb_ms: u64) -> f64 {
    mb_ms as f64 / 1024.0 / 1000.0
}

/// Prices `usage` per million orders under `what_if`.
pub fn estimate(usage: &Usage, pricing: &Pricing, what_if: &WhatIf) -> CostReport {
    let prices = pricing.prices();
    let scale = Scale::new(usage.orders);
    let both = |name: &str, dollars: f64| ServiceCost {
        service: name.to_owned(),
        standard_per_million: dollars,
        express_per_million: dollars,
    };

    let api = scale.cost(usage.api_requests as f64, &prices.api_gateway_http_requests);

    let standard_workflow = scale.cost(
        usage.state_transitions as f64,
        &prices.step_functions_standard_state_transitions,
    );
    let express_workflow = scale.cost(
        usage.workflow_executions as f64,
        &prices.step_functions_express_requests,
    ) + scale.cost(
        gb_seconds(usage.express_billed_mb_ms),
        &prices.step_functions_express_duration,
    );

    let lambda: f64 = usage
        .lambda
        .iter()
        .map(|function| {
            let duration_price = match function.architecture {
                Architecture::X86_64 => &prices.lambda_duration_x86_64,
                Architecture::Arm64 => &prices.lambda_duration_arm64,
            };
            let mb_ms = function
                .billed_ms
                .saturating_mul(u64::from(function.memory_mb));
            scale.cost(function.requests as f64, &prices.lambda_requests)
                + scale.cost(gb_seconds(mb_ms), duration_price)
        })
        .sum();

    let dynamodb = scale.cost(
        usage.dynamodb_write_request_units,
        &prices.dynamodb_on_demand_write_request_units,
    ) + scale.cost(
        usage.dynamodb_read_request_units,
        &prices.dynamodb_on_demand_read_request_units,
    );

    let sqs = scale.cost(usage.sqs_requests as f64, &prices.sqs_standard_requests);

    let function_log_bytes = application_log_bytes(usage, what_if.log_level)
        .saturating_add(usage.emf_bytes)
        .saturating_add(usage.platform_log_bytes);
    let function_logs = scale.cost(
        function_log_bytes as f64 / BYTES_PER_GB,
        &prices.cloudwatch_logs_ingestion_standard,
    );
    let workflow_logs = |level| {
        let bytes = match level {
            WorkflowLogLevel::All => usage.workflow_log_bytes_all,
            WorkflowLogLevel::Error => usage.workflow_log_bytes_error,
        };
        scale.cost(
            bytes as f64 / BYTES_PER_GB,
            &prices.cloudwatch_logs_ingestion_vended_step_functions,
        )
    };
    // Express keeps its history only in CloudWatch Logs: always level ALL.
    let standard_logs = function_logs + workflow_logs(STANDARD_WORKFLOW_LOG_LEVEL);
    let express_logs = function_logs + workflow_logs(WorkflowLogLevel::All);

    let xray = scale.cost(
        traces_recorded(usage, what_if.trace_sample_rate),
        &prices.xray_traces_recorded,
    );
    let kms = scale.cost(usage.kms_requests as f64, &prices.kms_requests);

    let services = vec![
        both("API Gateway", api),
        ServiceCost {
            service: "Step Functions".to_owned(),
            standard_per_million: standard_workflow,
            express_per_million: express_workflow,
        },
        both("Lambda", lambda),
        both("DynamoDB", dynamodb),
        both("SQS", sqs),
        ServiceCost {
            service: "CloudWatch Logs".to_owned(),
            standard_per_million: standard_logs,
            express_per_million: express_logs,
        },
        both("X-Ray", xray),
        both("KMS", kms),
    ];
    let standard_total: f64 = services.iter().map(|s| s.standard_per_million).sum();
    let express_total: f64 = services.iter().map(|s| s.express_per_million).sum();
    let ratio = if express_total > 0.0 {
        finite(standard_total / express_total)
    } else {
        0.0
    };

    CostReport {
        region: pricing.region().to_owned(),
        as_of: pricing.as_of().to_owned(),
        currency: pricing.currency().to_owned(),
        orders: usage.orders,
        what_if: sanitized(what_if),
        services,
        standard_total_per_million: standard_total,
        express_total_per_million: express_total,
        standard_to_express_ratio: ratio,
        fixed_monthly: pricing
            .fixed_monthly()
            .named()
            .into_iter()
            .map(|(item, price)| FixedCost {
                item: item.to_owned(),
                unit: price.unit.clone(),
                monthly_price: price.per_unit(),
                source: price.source.clone(),
            })
            .collect(),
    }
}

/// From units over the measured orders to dollars per million orders.
struct Scale {
    orders: u64,
}

impl Scale {
    fn new(orders: u64) -> Self {
        Scale { orders }
    }

    /// Dollars per million orders for `units` over the measured orders; 0
    /// when nothing was measured, so a report never carries NaN or infinity
    /// (which JSON cannot spell).
    fn cost(&self, units: f64, price: &Price) -> f64 {
        if self.orders == 0 {
            return 0.0;
        }
        finite(units / self.orders as f64 * 1_000_000.0 * price.per_unit())
    }
}

fn finite(value: f64) -> f64 {
    if value.is_finite() {
        value
    } else {
        0.0
    }
}

/// Application log bytes kept at `level`: lines below it are dropped.
///
/// Only application lines are filtered. EMF lines carry the metrics and are
/// written whatever the level (the telemetry crate's recorder bypasses the
/// level filter, so dashboards and alarms survive a quieter level), and
/// Lambda's START/END/REPORT lines come from the platform, not from the
/// function's log level. A level key that is none of the four (e.g.
/// "TRACE") is kept only when no level is asked for: it is below DEBUG.
pub fn application_log_bytes(usage: &Usage, level: Option<LogLevel>) -> u64 {
    usage
        .log_bytes_by_level
        .iter()
        .filter(|(name, _)| match level {
            None => true,
            Some(threshold) => name.parse::<LogLevel>().is_ok_and(|line| line >= threshold),
        })
        .fold(0u64, |total, (_, bytes)| total.saturating_add(*bytes))
}

/// Traces recorded at the what-if sampling rate, scaled from those recorded
/// at the measured rate.
///
/// A run that sampled nothing measured no traces to scale from: each order
/// is one trace (it enters through one API request), so the estimate is
/// then orders × rate.
pub fn traces_recorded(usage: &Usage, what_if_rate: Option<f64>) -> f64 {
    let measured = usage.xray_traces_recorded as f64;
    let Some(rate) = what_if_rate.map(clamp_rate) else {
        return measured;
    };
    let measured_rate = clamp_rate(usage.trace_sample_rate);
    if measured_rate > 0.0 {
        measured * (rate / measured_rate)
    } else {
        usage.orders as f64 * rate
    }
}

/// A sampling rate in 0..=1 (NaN counts as 0).
fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// The what-if as it was applied, so a report's JSON stays finite.
fn sanitized(what_if: &WhatIf) -> WhatIf {
    WhatIf {
        trace_sample_rate: what_if.trace_sample_rate.map(clamp_rate),
        log_level: what_if.log_level,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::pricing::tests::repository_pricing;
    use crate::units::{
        dynamodb_read_units, dynamodb_write_units, express_billed_mb_ms, sqs_requests_for_payload,
    };
    use crate::usage::LambdaUsage;

    /// Usage measured over a million orders, so that "per million orders"
    /// reads as the monthly bill of a page's example.
    fn per_million_orders() -> Usage {
        Usage {
            orders: 1_000_000,
            trace_sample_rate: 1.0,
            ..Usage::default()
        }
    }

    fn line<'a>(report: &'a CostReport, service: &str) -> &'a ServiceCost {
        report
            .services
            .iter()
            .find(|s| s.service == service)
            .unwrap()
    }

    fn cents(dollars: f64) -> i64 {
        (dollars * 100.0).round() as i64
    }

    /// Lambda pricing page, the food-ordering example: 3 million requests a
    /// month, 120 ms each, 1,536 MB on Arm: 540,000 GB-s × $0.0000133334 =
    /// $7.20 of compute, 3M × $0.20/M = $0.60 of requests, $7.80 in all (the
    /// example leaves the free tier out).
    #[test]
    fn lambda_page_example_arm_food_ordering_costs_7_80() {
        let usage = Usage {
            lambda: vec![LambdaUsage {
                function: "api_handler".into(),
                requests: 3_000_000,
                billed_ms: 3_000_000 * 120,
                memory_mb: 1536,
                architecture: Architecture::Arm64,
            }],
            ..per_million_orders()
        };
        let mb_ms = 3_000_000u64 * 120 * 1536;
        assert_eq!(gb_seconds(mb_ms), 540_000.0);
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        let lambda = line(&report, "Lambda");
        assert_eq!(cents(lambda.standard_per_million), 780);
        assert_eq!(cents(lambda.express_per_million), 780);
    }

    /// Lambda pricing page, example 1 of its earlier (100 ms billing)
    /// version: 512 MB, 3 million runs of 1 s (whole seconds, so the
    /// rounding change does not matter). Less the free tier's 400,000 GB-s
    /// and 1M requests: 1,100,000 GB-s × $0.00001667 = $18.34 and 2M ×
    /// $0.20/M = $0.40, $18.74 in all. That page priced a GB-second at
    /// $0.00001667, so the example is run at its rate, not the table's
    /// $0.0000166667 (which gives $18.33 of compute).
    #[test]
    fn lambda_page_example_x86_512_mb_costs_18_74_at_its_rate() {
        const FREE_REQUESTS: u64 = 1_000_000;
        const FREE_GB_SECONDS: u64 = 400_000;
        let memory_mb = 512u32;
        // The free GB-seconds expressed as ms at this memory.
        let free_ms = FREE_GB_SECONDS * 1024 * 1000 / u64::from(memory_mb);
        let usage = Usage {
            lambda: vec![LambdaUsage {
                function: "validator".into(),
                requests: 3_000_000 - FREE_REQUESTS,
                billed_ms: 3_000_000 * 1000 - free_ms,
                memory_mb,
                architecture: Architecture::X86_64,
            }],
            ..per_million_orders()
        };
        let mut table: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pricing/us-east-1.json"),
            )
            .unwrap(),
        )
        .unwrap();
        table["prices"]["lambda_duration_x86_64"]["price"] = serde_json::json!(0.00001667);
        let pricing = Pricing::from_json(&table.to_string()).unwrap();
        let report = estimate(&usage, &pricing, &WhatIf::default());
        assert_eq!(cents(line(&report, "Lambda").standard_per_million), 1874);
        // At the table's current rate.
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        assert_eq!(cents(line(&report, "Lambda").standard_per_million), 1873);
    }

    /// The Express tiers of the Step Functions pricing page (per GB-hour),
    /// for reproducing its example, which runs past the first tier the
    /// table keeps.
    fn express_duration_tiered(gb_hours: f64, first_tier_per_gb_hour: f64) -> f64 {
        let tiers = [
            (1_000.0, first_tier_per_gb_hour),
            (4_000.0, 0.03),
            (f64::INFINITY, 0.01642),
        ];
        let mut left = gb_hours;
        let mut dollars = 0.0;
        for (size, price) in tiers {
            let here = left.min(size);
            dollars += here * price;
            left -= here;
        }
        dollars
    }

    /// Step Functions pricing page, Express example: 100 million workflows
    /// a month of 10 s each at 64 MB billed: 62,500,000 GB-s = 17,361.11
    /// GB-hours; requests $100.00, duration $60.00 + $120.00 + $202.97 =
    /// $382.97 across the tiers, $482.97 in all.
    #[test]
    fn step_functions_page_example_express_costs_482_97() {
        let executions = 100_000_000u64;
        let usage = Usage {
            workflow_executions: executions,
            express_billed_mb_ms: express_billed_mb_ms(10_000, 64) * executions,
            ..per_million_orders()
        };
        let pricing = repository_pricing();
        let gb_s = gb_seconds(usage.express_billed_mb_ms);
        assert_eq!(gb_s, 62_500_000.0);
        let gb_hours = gb_s / 3600.0;
        assert_eq!((gb_hours * 100.0).round(), 1_736_111.0);

        let report = estimate(&usage, &pricing, &WhatIf::default());
        let express = line(&report, "Step Functions").express_per_million;
        let duration_price = &pricing.prices().step_functions_express_duration;
        let first_tier_per_gb_hour = duration_price.per_unit() * 3600.0;
        let requests = express - gb_s * duration_price.per_unit();
        assert_eq!(cents(requests), 10_000);
        let duration = express_duration_tiered(gb_hours, first_tier_per_gb_hour);
        assert_eq!(cents(duration), 38_297);
        assert_eq!(cents(requests + duration), 48_297);
    }

    /// Step Functions pricing page, Standard example: four state
    /// transitions run 100,000 times a month = 400,000 transitions; less
    /// the 4,000 free, 396,000 × $0.000025 = $9.90.
    #[test]
    fn step_functions_page_example_standard_costs_9_90() {
        const FREE_TRANSITIONS: u64 = 4_000;
        let usage = Usage {
            state_transitions: 4 * 100_000 - FREE_TRANSITIONS,
            ..per_million_orders()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        assert_eq!(
            cents(line(&report, "Step Functions").standard_per_million),
            990
        );
    }

    /// Issue #17's own figure: about five transitions per order at $0.025
    /// per 1,000 is ≈ $125 per million orders.
    #[test]
    fn five_transitions_per_order_cost_125_dollars_per_million_orders() {
        let usage = Usage {
            orders: 100,
            state_transitions: 500,
            ..Usage::default()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        assert_eq!(
            cents(line(&report, "Step Functions").standard_per_million),
            12_500
        );
    }

    /// X-Ray pricing page, example 1: 2,000 requests an hour sampled at 10%
    /// record 2,000 × 24 × 31 × 10% = 148,800 traces a month; less the
    /// 100,000 free, 48,800 × $0.000005 = $0.24.
    #[test]
    fn xray_page_example_costs_0_24() {
        const FREE_TRACES: u64 = 100_000;
        let recorded = 2_000 * 24 * 31 / 10;
        assert_eq!(recorded, 148_800);
        let usage = Usage {
            xray_traces_recorded: recorded - FREE_TRACES,
            trace_sample_rate: 0.1,
            ..per_million_orders()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        assert_eq!(cents(line(&report, "X-Ray").standard_per_million), 24);
    }

    /// The same application sampled at 100% instead of 10% records ten times
    /// the traces: 1,488,000 × $0.000005 = $7.44.
    #[test]
    fn a_trace_rate_what_if_scales_the_traces_recorded() {
        let usage = Usage {
            xray_traces_recorded: 148_800,
            trace_sample_rate: 0.1,
            ..per_million_orders()
        };
        assert_eq!(traces_recorded(&usage, Some(1.0)).round(), 1_488_000.0);
        let what_if = WhatIf {
            trace_sample_rate: Some(1.0),
            log_level: None,
        };
        let report = estimate(&usage, &repository_pricing(), &what_if);
        assert_eq!(cents(line(&report, "X-Ray").standard_per_million), 744);
        // Halving from 10% to 5%.
        assert_eq!(traces_recorded(&usage, Some(0.05)).round(), 74_400.0);
    }

    #[test]
    fn a_run_that_sampled_nothing_estimates_one_trace_per_order() {
        let usage = Usage {
            orders: 200,
            xray_traces_recorded: 0,
            trace_sample_rate: 0.0,
            ..Usage::default()
        };
        assert_eq!(traces_recorded(&usage, Some(0.5)), 100.0);
        assert_eq!(traces_recorded(&usage, None), 0.0);
        // Out-of-range and NaN rates are clamped, never propagated.
        assert_eq!(traces_recorded(&usage, Some(7.0)), 200.0);
        assert_eq!(traces_recorded(&usage, Some(f64::NAN)), 0.0);
    }

    fn usage_with_logs() -> Usage {
        let gb = 1024 * 1024 * 1024;
        Usage {
            log_bytes_by_level: BTreeMap::from([
                ("DEBUG".to_owned(), 8 * gb),
                ("INFO".to_owned(), 4 * gb),
                ("WARN".to_owned(), 2 * gb),
                ("ERROR".to_owned(), gb),
                ("TRACE".to_owned(), 16 * gb),
            ]),
            emf_bytes: gb,
            platform_log_bytes: gb,
            workflow_log_bytes_all: 2 * gb,
            workflow_log_bytes_error: gb / 4,
            ..per_million_orders()
        }
    }

    /// CloudWatch Logs at $0.50 per GB: everything measured is 31 GB of
    /// application lines + 1 GB EMF + 1 GB platform + 2 GB workflow (ALL).
    #[test]
    fn logs_are_priced_per_gb_ingested() {
        let report = estimate(
            &usage_with_logs(),
            &repository_pricing(),
            &WhatIf::default(),
        );
        let logs = line(&report, "CloudWatch Logs");
        assert_eq!(cents(logs.standard_per_million), 35 * 50);
        assert_eq!(cents(logs.express_per_million), 35 * 50);
    }

    #[test]
    fn a_log_level_what_if_drops_lower_application_lines_only() {
        let usage = usage_with_logs();
        let gb = 1024 * 1024 * 1024;
        assert_eq!(application_log_bytes(&usage, None), 31 * gb);
        assert_eq!(
            application_log_bytes(&usage, Some(LogLevel::Debug)),
            15 * gb
        );
        assert_eq!(application_log_bytes(&usage, Some(LogLevel::Info)), 7 * gb);
        assert_eq!(application_log_bytes(&usage, Some(LogLevel::Warn)), 3 * gb);
        assert_eq!(application_log_bytes(&usage, Some(LogLevel::Error)), gb);
        let what_if = WhatIf {
            trace_sample_rate: None,
            log_level: Some(LogLevel::Error),
        };
        let report = estimate(&usage, &repository_pricing(), &what_if);
        // 1 GB ERROR + 1 GB EMF + 1 GB platform + 2 GB workflow stay.
        assert_eq!(
            cents(line(&report, "CloudWatch Logs").standard_per_million),
            5 * 50
        );
    }

    /// Dollars for `amount` billed across `tiers` of (size, price per unit),
    /// the last tier unbounded: for the pages' examples that run past the
    /// first tier, the only one the table keeps.
    fn tiered(amount: f64, tiers: &[(f64, f64)]) -> f64 {
        let mut left = amount;
        let mut dollars = 0.0;
        for &(size, price) in tiers {
            let here = left.min(size);
            dollars += here * price;
            left -= here;
        }
        dollars
    }

    /// API Gateway pricing page (<https://aws.amazon.com/api-gateway/pricing/>),
    /// HTTP API example: 300 million requests at $1.00 per million and the
    /// 132 million past them at $0.90 per million: $300.00 + $118.80 =
    /// $418.80. The first tier is the table's price; the second is the
    /// page's (the table keeps only the first).
    #[test]
    fn api_gateway_page_example_http_432_million_requests_costs_418_80() {
        let pricing = repository_pricing();
        let price = &pricing.prices().api_gateway_http_requests;
        let first_tier = 300_000_000u64;
        let usage = Usage {
            api_requests: first_tier,
            ..per_million_orders()
        };
        let report = estimate(&usage, &pricing, &WhatIf::default());
        let first = line(&report, "API Gateway").standard_per_million;
        assert_eq!(cents(first), 30_000);
        let requests = (first_tier + 132_000_000) as f64;
        let total = tiered(
            requests,
            &[
                (first_tier as f64, price.per_unit()),
                (f64::INFINITY, 0.90 / 1e6),
            ],
        );
        assert_eq!(cents(total - first), 11_880);
        assert_eq!(cents(total), 41_880);
    }

    /// DynamoDB on-demand, the Developer Guide's unit examples
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadWriteCapacityMode.html>)
    /// priced at the table's rates: a million writes of a 2 KB item are 2
    /// million write request units, $1.25; a million strongly consistent
    /// reads of an 8 KB item are 2 million read request units, $0.25; read
    /// eventually consistent they are 1 million, $0.125.
    #[test]
    fn dynamodb_on_demand_examples_priced() {
        let kb = 1024;
        let million = 1_000_000.0;
        let writes = Usage {
            dynamodb_write_request_units: million * dynamodb_write_units(2 * kb) as f64,
            ..per_million_orders()
        };
        let report = estimate(&writes, &repository_pricing(), &WhatIf::default());
        assert_eq!(cents(line(&report, "DynamoDB").standard_per_million), 125);

        let reads = Usage {
            dynamodb_read_request_units: million * dynamodb_read_units(8 * kb, true),
            ..per_million_orders()
        };
        let report = estimate(&reads, &repository_pricing(), &WhatIf::default());
        assert_eq!(cents(line(&report, "DynamoDB").standard_per_million), 25);

        let eventually = Usage {
            dynamodb_read_request_units: million * dynamodb_read_units(8 * kb, false),
            ..per_million_orders()
        };
        let report = estimate(&eventually, &repository_pricing(), &WhatIf::default());
        let dollars = line(&report, "DynamoDB").express_per_million;
        assert!((dollars - 0.125).abs() < 1e-9, "{dollars}");
    }

    /// SQS pricing page (<https://aws.amazon.com/sqs/pricing/>): an API
    /// action with a 256 KB payload is billed as four requests (one per
    /// 64 KB chunk); a million of them are 4 million requests, $1.60 at
    /// $0.40 per million.
    #[test]
    fn sqs_page_example_256_kb_payload_bills_four_requests() {
        let per_call = sqs_requests_for_payload(256 * 1024);
        assert_eq!(per_call, 4);
        let usage = Usage {
            sqs_requests: 1_000_000 * per_call,
            ..per_million_orders()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        assert_eq!(cents(line(&report, "SQS").standard_per_million), 160);
    }

    /// No worked example could be retrieved from the CloudWatch pricing page
    /// (<https://aws.amazon.com/cloudwatch/pricing/>). This reproduces the
    /// Duckbill Group's example of the May 2025 change to Lambda's logs
    /// (<https://www.duckbillgroup.com/?p=9080>): 60 TB of Lambda logs a month
    /// cost $30,000 at the flat $0.50 per GB and $12,500 across the vended
    /// tiers ($0.50 to 10 TB, $0.25 to 30 TB, $0.10 to 50 TB, $0.05 past
    /// that; the example counts 1,000 GB to the TB). The first tier is the
    /// table's vended price.
    #[test]
    fn cloudwatch_vended_tiers_reproduce_60_tb_of_lambda_logs() {
        let pricing = repository_pricing();
        let gb = 1024u64 * 1024 * 1024;
        let tb_gb = 1_000.0;
        let usage = Usage {
            platform_log_bytes: 60_000 * gb,
            ..per_million_orders()
        };
        let report = estimate(&usage, &pricing, &WhatIf::default());
        let flat = line(&report, "CloudWatch Logs").standard_per_million;
        assert_eq!(cents(flat), 3_000_000);

        let vended = pricing
            .prices()
            .cloudwatch_logs_ingestion_vended_step_functions
            .per_unit();
        let tiers = [
            (10.0 * tb_gb, vended),
            (20.0 * tb_gb, 0.25),
            (20.0 * tb_gb, 0.10),
            (f64::INFINITY, 0.05),
        ];
        assert_eq!(cents(tiered(60.0 * tb_gb, &tiers)), 1_250_000);
        // Below 10 TB the tiers change nothing: the table's single price.
        assert_eq!(
            cents(tiered(35.0, &tiers)),
            cents(35.0 * vended),
            "first tier"
        );
    }

    /// Amazon SQS Developer Guide, Estimating AWS KMS costs
    /// (<https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html>):
    /// requests per queue R = B / D × (2P + C). Example 1: January
    /// (2,678,400 s), a 300 s data key reuse period, 1 producer and 1
    /// consumer: 26,784 requests. Example 2: February (2,419,200 s), a 24 h
    /// reuse period, queues of 3 producers + 1 consumer and 5 + 2: 532
    /// requests. The guide counts requests only; at the table's $0.03 per
    /// 10,000, example 1 is $0.08.
    #[test]
    fn kms_sqs_guide_examples_count_26_784_and_532_requests() {
        fn requests(billing_s: u64, reuse_s: u64, producers: u64, consumers: u64) -> u64 {
            billing_s / reuse_s * (2 * producers + consumers)
        }
        let example_1 = requests(2_678_400, 300, 1, 1);
        assert_eq!(example_1, 26_784);
        let example_2 = requests(2_419_200, 86_400, 3, 1) + requests(2_419_200, 86_400, 5, 2);
        assert_eq!(example_2, 532);

        let usage = Usage {
            kms_requests: example_1,
            ..per_million_orders()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        let dollars = line(&report, "KMS").standard_per_million;
        assert!((dollars - 0.080_352).abs() < 1e-9, "{dollars}");
        assert_eq!(cents(dollars), 8);
    }

    /// Per-million figures at the table's prices for services without a
    /// Step Functions-style transition count (the pages' own examples are
    /// the tests above): the arithmetic is (units / orders) × 1e6 × price.
    #[test]
    fn each_line_is_units_per_order_times_a_million_times_the_price() {
        let usage = Usage {
            orders: 100,
            api_requests: 100,
            dynamodb_write_request_units: 300.0,
            dynamodb_read_request_units: 150.0,
            sqs_requests: 400,
            kms_requests: 200,
            ..Usage::default()
        };
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        // 1 request/order × $1.00 per million.
        assert_eq!(
            cents(line(&report, "API Gateway").standard_per_million),
            100
        );
        // 3 WRU × $0.625 + 1.5 RRU × $0.125, per million.
        assert_eq!(cents(line(&report, "DynamoDB").standard_per_million), 206);
        // 4 requests × $0.40 per million.
        assert_eq!(cents(line(&report, "SQS").express_per_million), 160);
        // 2 requests × $0.03 per 10,000 = $6 per million orders.
        assert_eq!(cents(line(&report, "KMS").standard_per_million), 600);
    }

    #[test]
    fn express_and_standard_differ_only_in_the_workflow_lines() {
        let mut usage = usage_with_logs();
        usage.orders = 100;
        usage.api_requests = 100;
        usage.state_transitions = 520;
        usage.workflow_executions = 100;
        usage.express_billed_mb_ms = 100 * express_billed_mb_ms(250, 64);
        usage.sqs_requests = 300;
        let report = estimate(&usage, &repository_pricing(), &WhatIf::default());
        for service in &report.services {
            if service.service != "Step Functions" && service.service != "CloudWatch Logs" {
                assert_eq!(
                    service.standard_per_million, service.express_per_million,
                    "{}",
                    service.service
                );
            }
        }
        // 5.2 transitions/order: $130 per million orders; Express: $1 of
        // requests + 100 × 0.3 s × 0.0625 GB ... per order: 0.01875 GB-s.
        assert_eq!(
            cents(line(&report, "Step Functions").standard_per_million),
            13_000
        );
        let express = line(&report, "Step Functions").express_per_million;
        let expected = 1.0 + 0.018_75 * 1_000_000.0 * 0.06 / 3600.0;
        assert!((express - expected).abs() < 1e-9, "{express} vs {expected}");
        assert!(report.standard_to_express_ratio > 1.0);
        let total: f64 = report.services.iter().map(|s| s.standard_per_million).sum();
        assert_eq!(report.standard_total_per_million, total);
    }

    #[test]
    fn no_orders_reports_zeros_and_finite_json() {
        let usage = Usage {
            orders: 0,
            api_requests: 10,
            state_transitions: 50,
            trace_sample_rate: 0.0,
            ..Usage::default()
        };
        let what_if = WhatIf {
            trace_sample_rate: Some(f64::NAN),
            log_level: Some(LogLevel::Warn),
        };
        let report = estimate(&usage, &repository_pricing(), &what_if);
        assert!(report
            .services
            .iter()
            .all(|s| s.standard_per_million == 0.0 && s.express_per_million == 0.0));
        assert_eq!(report.standard_to_express_ratio, 0.0);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["orders"], 0);
        assert_eq!(json["standard_total_per_million"], 0.0);
        assert_eq!(json["what_if"]["trace_sample_rate"], 0.0);
        assert_eq!(json["what_if"]["log_level"], "WARN");
        assert_eq!(json["fixed_monthly"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn the_report_names_every_service_and_the_fixed_monthly_prices() {
        let report = estimate(
            &per_million_orders(),
            &repository_pricing(),
            &WhatIf::default(),
        );
        let names: Vec<&str> = report.services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(
            names,
            [
                "API Gateway",
                "Step Functions",
                "Lambda",
                "DynamoDB",
                "SQS",
                "CloudWatch Logs",
                "X-Ray",
                "KMS"
            ]
        );
        assert_eq!(report.region, "us-east-1");
        let key = &report.fixed_monthly[0];
        assert_eq!(key.item, "kms_customer_managed_key");
        assert_eq!(key.monthly_price, 1.0);
        let dashboard = report
            .fixed_monthly
            .iter()
            .find(|f| f.item == "cloudwatch_dashboard")
            .unwrap();
        assert_eq!(dashboard.monthly_price, 3.0);
    }
}
