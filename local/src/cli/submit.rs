//! `dofs submit`: orders sent to a running `dofs serve` as a client sends
//! them (`POST /orders`), to try the pipeline without writing a request by
//! hand: sample orders, or orders from a JSON file or stdin.
//!
//! Each order is sent as it is; the server validates it. An accepted order
//! prints its id and trace id; a refused one (any answer but 202) prints
//! the server's JSON error body, and the command then exits non-zero.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use super::style::{self, colour_on, Tone};

/// `dofs submit` settings.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// The `dofs serve` to send the orders to.
    #[arg(long, env = "DOFS_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// How many sample orders to send.
    #[arg(long, default_value_t = 1, conflicts_with = "file",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
    /// Send the order in this JSON file instead (an object, or an array of
    /// them); `-` reads stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print `{"orders": [...], "rejected": [...]}` as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An order the server accepted (its `202` body).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub order_id: String,
    pub status: String,
    pub trace_id: Option<String>,
}

/// An order the server refused: its place in the input, the HTTP status
/// and the error body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub index: usize,
    pub http_status: u16,
    pub error: Value,
}

/// What `dofs submit --json` prints.
#[derive(Debug, Default, Serialize)]
pub struct SubmitReport {
    pub orders: Vec<Accepted>,
    pub rejected: Vec<Rejected>,
}

/// Sample order `i`: valid for the API's schema (decimal-string prices with
/// two decimals), and different for each `i`.
pub fn sample_order(i: usize) -> Value {
    const CUSTOMERS: [&str; 4] = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
    ];
    json!({
        "customer_name": format!("{} (sample {})", CUSTOMERS[i % CUSTOMERS.len()], i + 1),
        "items": [
            {"sku": "BOOK-1", "quantity": 1 + (i % 3), "unit_price": "9.99"},
            {"sku": format!("PEN-{}", i % 5), "quantity": 2, "unit_price": "1.50"},
        ],
    })
}

/// The orders of `--file` (`-`: stdin): one JSON object, or an array.
fn orders_from_file(path: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the orders from stdin")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let what = if path.as_os_str() == "-" {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    match serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))? {
        Value::Array(orders) if orders.is_empty() => {
            bail!("{what} holds no order (an empty array)")
        }
        Value::Array(orders) => Ok(orders),
        order @ Value::Object(_) => Ok(vec![order]),
        _ => bail!("{what} is neither an order (a JSON object) nor an array of orders"),
    }
}

/// Sends every order, one after the other, and sorts the answers.
async fn send_all(url: &str, orders: &[Value]) -> anyhow::Result<SubmitReport> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let post_url = format!("{}/orders", url.trim_end_matches('/'));
    let mut report = SubmitReport::default();
    for (index, order) in orders.iter().enumerate() {
        let response = client
            .post(&post_url)
            .json(order)
            .send()
            .await
            .with_context(|| format!("no dofs serve answering at {url}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .with_context(|| format!("{post_url} broke off its answer"))?;
        // An error body that is not JSON (a proxy's page) is kept as text.
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status == 202 {
            let field = |name: &str| body[name].as_str().map(str::to_owned);
            let order_id = field("order_id")
                .with_context(|| format!("{post_url} answered 202 without an order_id: {body}"))?;
            report.orders.push(Accepted {
                order_id,
                status: field("status").unwrap_or_default(),
                trace_id: field("trace_id"),
            });
        } else {
            report.rejected.push(Rejected {
                index,
                http_status: status,
                error: body,
            });
        }
    }
    Ok(report)
}

/// `dofs submit`: sends, prints, and fails when the server refused any.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let orders = match &args.file {
        Some(path) => orders_from_file(path)?,
        None => (0..args.count as usize).map(sample_order).collect(),
    };
    let report = send_all(&args.url, &orders).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let colour = colour_on();
        for order in &report.orders {
            let trace = order
                .trace_id
                .as_deref()
                .map_or(String::new(), |t| format!("  trace {t}"));
            writeln!(
                out,
                "{}  {}{trace}",
                order.order_id,
                style::status(&order.status, colour)
            )?;
        }
        out.flush()?;
        let colour = style::stderr_colour_on();
        for rejected in &report.rejected {
            let refused = style::paint("refused", Some(Tone::Bad), colour);
            eprintln!(
                "order #{} {refused} ({}): {}",
                rejected.index + 1,
                rejected.http_status,
                rejected.error
            );
        }
    }
    out.flush()?;
    if !report.rejected.is_empty() {
        bail!(
            "the server refused {} of {} order(s)",
            report.rejected.len(),
            orders.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample orders are what the API accepts: the validation the
    /// workflow runs takes them.
    #[test]
    fn sample_orders_are_valid_orders() {
        for i in 0..8 {
            let body = sample_order(i);
            let parsed = dofs_core::validation::validate_order_request(&body);
            assert!(parsed.is_ok(), "sample {i}: {body}: {parsed:?}");
        }
        assert_ne!(sample_order(0), sample_order(1));
    }
}
