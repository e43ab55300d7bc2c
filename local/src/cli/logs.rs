//! `dofs logs <order_id> [--follow] [--json]`: the order's log lines from
//! every function, oldest first, from the log store
//! ([`crate::observability::logs`]): what a Logs Insights query
//! `filter order_id = "…"` over the five log groups shows on AWS.
//!
//! People get one line per log event (time, level, function, message, the
//! other fields as `key=value`); `--json` prints the stored JSON lines as
//! they are (JSON Lines, one object per line, so `--follow` can stream
//! them into `jq`). `--follow` goes on printing lines as they are stored,
//! until interrupted.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::print::open_read;
use super::style::{colour_on, paint, Tone};
use crate::observability::logs::lines_of;

/// Fields a person following one order does not need: the order asked
/// for, and the Rust module that logged.
const OMITTED: [&str; 2] = ["order_id", "target"];

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

/// Fields every line has, printed in their own columns.
const COLUMNS: [&str; 4] = ["timestamp", "level", "function", "message"];

pub(super) async fn print_logs(
    data_dir: &Path,
    order_id: &str,
    follow: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let db = open_read(data_dir)?;
    let colour = colour_on();
    let mut last = 0;
    let mut printed = 0usize;
    loop {
        let lines = lines_of(db.conn(), order_id, last)?;
        let mut out = std::io::stdout().lock();
        for stored in &lines {
            if as_json {
                writeln!(out, "{}", stored.line)?;
            } else {
                writeln!(out, "{}", human_line(&stored.line, colour))?;
            }
            last = stored.id;
        }
        out.flush()?;
        drop(out);
        printed += lines.len();
        if !follow {
            anyhow::ensure!(
                printed > 0,
                "no log lines for order {order_id} in {} (a mistyped id, or older than --retention)",
                data_dir.display()
            );
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `12:00:01.234 INFO  validator  order validated  key=value …`, from a
/// stored JSON line (shown as it is if it is not JSON).
fn human_line(line: &str, colour: bool) -> String {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).unwrap_or_default();
    // RFC 3339: the time of day is what a person follows an order by; the
    // date is in --json.
    let time = text("timestamp")
        .split_once('T')
        .map_or(text("timestamp"), |(_, time)| time.trim_end_matches('Z'));
    let level = text("level");
    let tone = match level {
        "ERROR" => Some(Tone::Bad),
        "WARN" => Some(Tone::Warn),
        _ => None,
    };
    let mut out = format!(
        "{time} {} {:<14} {}",
        paint(&format!("{level:<5}"), tone, colour),
        text("function"),
        text("message"),
    );
    for (key, value) in &fields {
        if COLUMNS.contains(&key.as_str()) || OMITTED.contains(&key.as_str()) {
            continue;
        }
        let value = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("  {key}={value}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_as_time_level_function_message_and_fields() {
        let line = r#"{"timestamp":"2026-12-02T12:00:01.234Z","level":"WARN","message":"attempt failed","function":"fulfill_order","order_id":"o-1","receive_count":2}"#;
        assert_eq!(
            human_line(line, false),
            "12:00:01.234 WARN  fulfill_order  attempt failed  receive_count=2"
        );
        assert_eq!(human_line("not json", false), "not json");
    }
}
