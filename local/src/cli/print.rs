//! The text and JSON output of the commands that read a data directory
//! (`orders`, `order`, `trace`, `queues`, `metrics`, `alarms`) and of
//! `redrive`. Each `--json` is one object, a typed read model of
//! [`crate::inspect`] (or the trace's own), never a bare array. They open the database read-only (never creating one) and
//! work beside a running `dofs serve`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use dofs_core::SystemClock;

use super::style::{self, colour_on, Grid};
use crate::identity::{DEAD_LETTER_QUEUE, ORDER_QUEUE};
use crate::inspect::{alarms_report, order_report, order_summaries};
use crate::inspect::{order_trace, order_xray_view, resolve_order_id};
use crate::inspect::{MetricsReport, OrderDetail, OrderList, QueueList};
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
        let list = OrderList { orders };
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    let mut grid = Grid::new(&["ORDER_ID", "STATUS", "UPDATED_AT"], colour_on());
    for o in &orders {
        let cells = vec![
            Grid::text(&o.order_id),
            grid.status(o.status.as_str()),
            Grid::text(&o.updated_at),
        ];
        grid.row(cells);
    }
    write!(out, "{}", grid.render())?;
    writeln!(out, "{} order(s)", orders.len())?;
    Ok(())
}

fn stamp(at: &chrono::DateTime<chrono::Utc>) -> String {
    dofs_core::timestamp::format(at)
}

pub(super) fn print_order(data_dir: &Path, order_id: &str, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let report = order_report(db.conn(), order_id)?;
    if !report.exists() {
        anyhow::bail!("no order {order_id} in {}", data_dir.display());
    }
    let mut out = std::io::stdout().lock();
    if as_json {
        let detail = OrderDetail::from(&report);
        writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
        return Ok(());
    }
    let colour = colour_on();
    match &report.order {
        Some(order) => {
            let status = style::status(order.status.as_str(), colour);
            writeln!(out, "order {order_id}: {status}")?;
            writeln!(out, "status history:")?;
            let mut grid = Grid::new(&["AT", "STATUS"], colour);
            for change in &order.history {
                let cells = vec![
                    Grid::text(stamp(&change.at)),
                    grid.status(change.status.as_str()),
                ];
                grid.row(cells);
            }
            write!(out, "{}", indented(&grid.render()))?;
        }
        None => writeln!(out, "order {order_id}: (not stored yet)")?,
    }
    if let Some(execution) = &report.execution {
        let status = status_name(execution.status);
        writeln!(out, "execution: {}", style::status(status, colour))?;
        let mut grid = Grid::new(&["AT", "EVENT", "STATE"], colour);
        for event in &execution.events {
            grid.row(vec![
                Grid::text(&event.timestamp),
                Grid::text(&event.kind),
                Grid::text(event.state.as_deref().unwrap_or_default()),
            ]);
        }
        write!(out, "{}", indented(&grid.render()))?;
    }
    if !report.deliveries.is_empty() {
        writeln!(out, "queue deliveries:")?;
        let mut grid = Grid::new(&["AT", "FUNCTION", "RECEIVE", "OUTCOME"], colour).numeric(2);
        for d in &report.deliveries {
            let cells = vec![
                Grid::text(&d.at),
                Grid::text(&d.function),
                Grid::text(format!("#{}", d.receive_count)),
                grid.status(&d.outcome),
            ];
            grid.row(cells);
        }
        write!(out, "{}", indented(&grid.render()))?;
    }
    if let Some(trace) = &report.trace {
        writeln!(out, "trace:")?;
        for line in render_waterfall(trace).lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if let Some(failed) = &report.failed_order {
        let failed_word = style::paint("failed:", Some(style::Tone::Bad), colour);
        writeln!(out, "{failed_word} {} ({})", failed.error, failed.reason)?;
    }
    Ok(())
}

/// `text`'s lines, each indented under the heading before it.
fn indented(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

pub(super) fn print_queues(data_dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let counts = queue_counts(db.conn(), chrono::Utc::now().timestamp_millis())?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let list = QueueList { queues: counts };
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    let mut grid = Grid::new(&["QUEUE", "VISIBLE", "IN_FLIGHT", "DELAYED"], colour_on())
        .numeric(1)
        .numeric(2)
        .numeric(3);
    for c in counts {
        grid.row(vec![
            Grid::text(&c.name),
            Grid::text(c.visible),
            Grid::text(c.in_flight),
            Grid::text(c.delayed),
        ]);
    }
    write!(out, "{}", grid.render())?;
    Ok(())
}

/// `dofs trace`: by default what X-Ray would hold of the order (the
/// functions' spans through the functions' own segment translation); with
/// `--full`, every span the local runtime stored. `id` is the order's id
/// or a trace id of it (see [`resolve_order_id`]).
pub(super) fn print_trace(
    data_dir: &Path,
    id: &str,
    as_json: bool,
    full: bool,
) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let Some(order_id) = resolve_order_id(db.conn(), id)? else {
        anyhow::bail!(
            "no order has trace {id} in {} (or it was served with --traces off)",
            data_dir.display()
        );
    };
    let order_id = order_id.as_str();
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
    let report = MetricsReport::read(db.conn(), from)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let series = report.series;
    let headers = [
        "NAMESPACE",
        "METRIC",
        "DIMENSIONS",
        "SAMPLES",
        "SUM",
        "AVG",
        "MAX",
        "LAST",
    ];
    let mut grid = Grid::new(&headers, colour_on())
        .wrapping(2)
        .numeric(3)
        .numeric(4)
        .numeric(5)
        .numeric(6);
    for s in &series {
        let dims: Vec<String> = s
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        grid.row(vec![
            Grid::text(&s.namespace),
            Grid::text(&s.name),
            Grid::text(dims.join(",")),
            Grid::text(s.window.sample_count),
            Grid::text(format!("{:.2}", s.window.sum)),
            Grid::text(format!("{:.2}", s.average)),
            Grid::text(format!("{:.2}", s.window.max)),
            Grid::text(&s.last_at),
        ]);
    }
    write!(out, "{}", grid.render())?;
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
    let colour = colour_on();
    let mut grid = Grid::new(&["ALARM", "STATE", "SINCE", "REASON"], colour).wrapping(3);
    for a in &report.alarms {
        let cells = vec![
            Grid::text(&a.name),
            grid.status(&a.state.to_string()),
            Grid::text(&a.changed_at),
            Grid::text(&a.reason),
        ];
        grid.row(cells);
    }
    write!(out, "{}", grid.render())?;
    if !report.history.is_empty() {
        writeln!(out, "recent transitions:")?;
        let mut grid = Grid::new(&["AT", "ALARM", "FROM", "TO"], colour);
        for t in &report.history {
            let cells = vec![
                Grid::text(&t.at),
                Grid::text(&t.name),
                grid.status(&t.old_state.to_string()),
                grid.status(&t.new_state.to_string()),
            ];
            grid.row(cells);
        }
        write!(out, "{}", indented(&grid.render()))?;
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
