//! `dofs cost`: what an order costs on AWS, from the units the runtime
//! metered (`observability::usage`) and a dated price table
//! (`pricing/<region>.json`), for STANDARD and EXPRESS side by side, with
//! what-ifs; `--infracost-usage` writes the monthly figures as an Infracost
//! usage file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use dofs_cost::{LogLevel, WhatIf, WorkflowType};

use super::print::open_read;
use super::style::{colour_on, Grid};
use crate::observability::usage::{pricing, CostSummary};

#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// The price table's region: `pricing/<region>.json`.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// Where the price tables are (default: the us-east-1 table built in,
    /// other regions from ./pricing).
    #[arg(long)]
    pub pricing_dir: Option<PathBuf>,
    /// What if X-Ray traced this share of orders (0 to 1) instead of the
    /// measured one.
    #[arg(long, value_parser = parse_rate)]
    pub trace_sample_rate: Option<f64>,
    /// What if the functions logged at this level (DEBUG, INFO, WARN,
    /// ERROR) instead of what they logged.
    #[arg(long)]
    pub log_level: Option<LogLevel>,
    #[arg(long)]
    pub json: bool,
    /// Write an Infracost usage file with the measured figures for
    /// `--monthly-orders` orders a month.
    #[arg(long, value_name = "FILE")]
    pub infracost_usage: Option<PathBuf>,
    /// Orders a month, for `--infracost-usage`.
    #[arg(long, default_value_t = 1_000_000)]
    pub monthly_orders: u64,
    /// The workflow type `--infracost-usage` describes.
    #[arg(long, default_value = "STANDARD")]
    pub workflow_type: WorkflowType,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!("{text:?} is not a rate between 0 and 1")),
    }
}

pub(super) fn cost(data_dir: &Path, args: CostArgs) -> anyhow::Result<()> {
    let pricing = pricing(&args.region, args.pricing_dir.as_deref())?;
    let what_if = WhatIf {
        trace_sample_rate: args.trace_sample_rate,
        log_level: args.log_level,
    };
    let db = open_read(data_dir)?;
    let summary = CostSummary::read(db.conn(), &pricing, &what_if)?;
    if let Some(path) = &args.infracost_usage {
        let usage =
            dofs_cost::infracost_usage(&summary.measured, args.monthly_orders, args.workflow_type);
        std::fs::write(path, usage).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
        return Ok(());
    }
    write!(out, "{}", render(&summary))?;
    if let Some(path) = &args.infracost_usage {
        writeln!(
            out,
            "\nInfracost usage for {} orders a month ({}): {}",
            thousands(args.monthly_orders),
            args.workflow_type,
            path.display()
        )?;
    }
    Ok(())
}

/// The text report.
fn render(summary: &CostSummary) -> String {
    let report = &summary.report;
    let mut text = String::new();
    if report.orders == 0 {
        text.push_str("No orders metered yet: run `dofs serve`, send orders, then ask again.\n");
        return text;
    }
    let in_flight = match summary.orders_in_flight {
        0 => String::new(),
        n => format!(" ({} still in flight, partly counted)", thousands(n)),
    };
    text.push_str(&format!(
        "What an order costs on AWS: {} list prices of {}, measured over {} orders{in_flight}.\n\n",
        report.region,
        report.as_of,
        thousands(report.orders),
    ));
    let mut grid = Grid::new(
        &["SERVICE", "STANDARD $/1M ORDERS", "EXPRESS $/1M ORDERS"],
        colour_on(),
    )
    .numeric(1)
    .numeric(2);
    for service in &report.services {
        grid.row(vec![
            Grid::text(&service.service),
            Grid::text(dollars(service.standard_per_million)),
            Grid::text(dollars(service.express_per_million)),
        ]);
    }
    grid.row(vec![
        Grid::text("Total"),
        Grid::text(dollars(report.standard_total_per_million)),
        Grid::text(dollars(report.express_total_per_million)),
    ]);
    text.push_str(&grid.render());
    if report.express_total_per_million > 0.0 {
        text.push_str(&format!(
            "\nExpress costs {:.1}× less than Standard for the same work.\n",
            report.standard_to_express_ratio
        ));
    }
    let what_ifs: Vec<String> = [
        report
            .what_if
            .trace_sample_rate
            .map(|rate| format!("X-Ray traces {:.0} % of orders", rate * 100.0)),
        report
            .what_if
            .log_level
            .map(|level| format!("functions log at {}", level.as_str())),
    ]
    .into_iter()
    .flatten()
    .collect();
    text.push_str(&match what_ifs.is_empty() {
        true => "As measured (what-ifs: --trace-sample-rate, --log-level).\n".to_owned(),
        false => format!("What if: {}.\n", what_ifs.join(", ")),
    });
    let orders = report.orders as f64;
    let measured = &summary.measured;
    let invocations: u64 = measured.lambda.iter().map(|l| l.requests).sum();
    text.push_str(&format!(
        "Per order: {:.1} state transitions, {:.2} Lambda invocations, {:.1} DynamoDB write units, {:.1} SQS requests, {:.1} KB of logs.\n",
        measured.state_transitions as f64 / orders,
        invocations as f64 / orders,
        measured.dynamodb_write_request_units / orders,
        measured.sqs_requests as f64 / orders,
        (measured.log_bytes_by_level.values().sum::<u64>()
            + measured.emf_bytes
            + measured.platform_log_bytes
            + measured.workflow_log_bytes_all) as f64
            / orders
            / 1024.0,
    ));
    if !report.fixed_monthly.is_empty() {
        let fixed: Vec<String> = report
            .fixed_monthly
            .iter()
            .map(|f| {
                format!(
                    "{} ${:.2} per {}",
                    f.item.replace('_', " "),
                    f.monthly_price,
                    f.unit
                )
            })
            .collect();
        text.push_str(&format!(
            "Monthly, whatever the volume: {}.\n",
            fixed.join("; ")
        ));
    }
    text
}

/// Dollars with cents, more digits below one cent.
fn dollars(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("{amount:.4}")
    } else {
        format!("{amount:.2}")
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_counts_read_as_people_write_them() {
        assert_eq!(dollars(125.0), "125.00");
        assert_eq!(dollars(0.004), "0.0040");
        assert_eq!(dollars(0.0), "0.00");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert!(parse_rate("0.05").is_ok());
        assert!(parse_rate("1.5").is_err());
    }
}
