//! The text and JSON output of the commands that read a data directory
//! (`orders`, `order`, `trace`, `queues`, `metrics`, `alarms`) and of
//! `redrive`. They open the database read-only (never creating one) and
//! work beside a running `dofs serve`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dofs_core::SystemClock;

use crate::identity::{DEAD_LETTER_QUEUE, ORDER_QUEUE};
use crate::inspect::{alarms_report, order_report, order_summaries};
use crate::inspect::{order_trace, order_xray_view};
use crate::observability::traces::{render_waterfall, render_xray};
use crate::services::dynamodb::Listing;
use crate::services::sqs::{queue_counts, Queues};
use crate::services::step_functions::status_name;
use crate::store::Db;

pub(super) fn open_read(data_dir: &Path) -> anyhow::Result<crate::store::ReadOnlyDb> {
    Db::open_read_only(data_dir).with_context(|| format!("cannot read {}", data_dir.display()))
}

pub(super) fn print_orders(
    data_dir: &Path,
    status: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let status = status.map(str::to_ascii_uppercase);
    let orders = order_summaries(db.conn(), status.as_deref(), Listing::OldestFirst)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&orders)?)?;
        return Ok(());
    }
    writeln!(out, "{:<38} {:<10} UPDATED_AT", "ORDER_ID", "STATUS")?;
    for o in &orders {
        writeln!(
            out,
            "{:<38} {:<10} {}",
            o.order_id,
            o.status.as_str(),
            o.updated_at
        )?;
    }
    writeln!(out, "{} order(s)", orders.len())?;
    Ok(())
}

fn stamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(super) fn print_order(data_dir: &Path, order_id: &str, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let report = order_report(db.conn(), order_id)?;
    if !report.exists() {
        anyhow::bail!("no order {order_id} in {}", data_dir.display());
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    match &report.order {
        Some(order) => {
            writeln!(out, "order {order_id}: {}", order.status)?;
            writeln!(out, "status history:")?;
            for change in &order.history {
                writeln!(out, "  {}  {}", stamp(&change.at), change.status)?;
            }
        }
        None => writeln!(out, "order {order_id}: (not stored yet)")?,
    }
    if let Some(execution) = &report.execution {
        writeln!(out, "execution: {}", status_name(execution.status))?;
        for event in &execution.events {
            writeln!(
                out,
                "  {}  {:<28} {}",
                event.timestamp,
                event.kind,
                event.state.as_deref().unwrap_or_default()
            )?;
        }
    }
    if !report.deliveries.is_empty() {
        writeln!(out, "queue deliveries:")?;
        for d in &report.deliveries {
            writeln!(
                out,
                "  {}  {:<18} receive #{} -> {}",
                d.at, d.function, d.receive_count, d.outcome
            )?;
        }
    }
    if let Some(trace) = &report.trace {
        writeln!(out, "trace:")?;
        for line in render_waterfall(trace).lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if let Some(failed) = &report.failed_order {
        writeln!(out, "failed: {} ({})", failed.error, failed.reason)?;
    }
    Ok(())
}

pub(super) fn print_queues(data_dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let counts = queue_counts(db.conn(), chrono::Utc::now().timestamp_millis())?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&counts)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:>8} {:>10} {:>8}",
        "QUEUE", "VISIBLE", "IN_FLIGHT", "DELAYED"
    )?;
    for c in counts {
        writeln!(
            out,
            "{:<20} {:>8} {:>10} {:>8}",
            c.name, c.visible, c.in_flight, c.delayed
        )?;
    }
    Ok(())
}

/// `dofs trace`: by default what X-Ray would hold of the order (the
/// functions' spans through the functions' own segment translation); with
/// `--full`, every span the local runtime stored.
pub(super) fn print_trace(
    data_dir: &Path,
    order_id: &str,
    as_json: bool,
    full: bool,
) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let shown = if full {
        order_trace(db.conn(), order_id)?.map(|trace| shown_as(&trace, as_json, render_waterfall))
    } else {
        order_xray_view(db.conn(), order_id)?.map(|view| shown_as(&view, as_json, render_xray))
    };
    let Some(text) = shown.transpose()? else {
        anyhow::bail!(
            "no trace of order {order_id} in {} (unknown order, or served with --traces off)",
            data_dir.display()
        );
    };
    write!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// `value` as pretty JSON (one line feed after) or through `render`.
fn shown_as<T: serde::Serialize>(
    value: &T,
    as_json: bool,
    render: fn(&T) -> String,
) -> serde_json::Result<String> {
    if as_json {
        serde_json::to_string_pretty(value).map(|json| json + "\n")
    } else {
        Ok(render(value))
    }
}

pub(super) fn print_metrics(data_dir: &Path, since: Duration, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let from = chrono::Utc::now().timestamp_millis() - since.as_millis() as i64;
    let series = crate::observability::metrics::recent(db.conn(), from)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&series)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<15} {:<38} {:<44} {:>8} {:>12} {:>10} {:>10}  LAST",
        "NAMESPACE", "METRIC", "DIMENSIONS", "SAMPLES", "SUM", "AVG", "MAX"
    )?;
    for s in &series {
        let dims: Vec<String> = s
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            out,
            "{:<15} {:<38} {:<44} {:>8} {:>12.2} {:>10.2} {:>10.2}  {}",
            s.namespace,
            s.name,
            dims.join(","),
            s.window.sample_count,
            s.window.sum,
            s.average,
            s.window.max,
            s.last_at
        )?;
    }
    writeln!(
        out,
        "{} series with data in the last {:?}",
        series.len(),
        since
    )?;
    Ok(())
}

/// How many of the newest alarm state changes `dofs alarms` lists: a
/// screenful (the console's page shows more).
const ALARM_HISTORY: usize = 20;

pub(super) fn print_alarms(data_dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let report = alarms_report(db.conn(), ALARM_HISTORY)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json()?)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<40} {:<18} {:<25} REASON",
        "ALARM", "STATE", "SINCE"
    )?;
    for a in &report.alarms {
        writeln!(
            out,
            "{:<40} {:<18} {:<25} {}",
            a.name, a.state, a.changed_at, a.reason
        )?;
    }
    if !report.history.is_empty() {
        writeln!(out, "recent transitions:")?;
        for t in &report.history {
            writeln!(
                out,
                "  {}  {:<40} {} -> {}",
                t.at, t.name, t.old_state, t.new_state
            )?;
        }
    }
    Ok(())
}

pub(super) async fn redrive(data_dir: &Path) -> anyhow::Result<()> {
    // Read-only first: never create a data directory by accident.
    drop(open_read(data_dir)?);
    let db = Db::open(data_dir)?;
    let queues = Queues::new(db, Arc::new(SystemClock), "http://127.0.0.1");
    let moved = queues.move_messages(DEAD_LETTER_QUEUE, ORDER_QUEUE).await?;
    println!("moved {moved} message(s) from {DEAD_LETTER_QUEUE} to {ORDER_QUEUE}");
    Ok(())
}
