//! `dofs logs <order_id>`: the order's log lines from every function, from
//! the binary as a user runs it, on a running runtime's data directory;
//! `--follow` prints a line stored after it started.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{dofs_text, fast_args, order_body, spawn_runtime, DOFS};

#[tokio::test]
async fn an_orders_log_lines_come_from_every_function_it_went_through() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let ids = dofs.submit(2).await;
    dofs.poll_terminal(&ids, Duration::from_secs(30))
        .await
        .unwrap();
    let order = &ids[0];

    // Lines reach the store a flush after they are logged.
    let until = Instant::now() + Duration::from_secs(10);
    let lines: Vec<Value> = loop {
        let (ok, stdout, stderr) = dofs_text(&dofs, &["logs", order, "--json"]);
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if ok && lines.iter().any(|l| l["message"] == "order fulfilled") {
            break lines;
        }
        assert!(Instant::now() < until, "{stdout}\n{stderr}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for line in &lines {
        assert_eq!(line["order_id"], order.as_str(), "only this order: {line}");
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let functions: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["function"].as_str())
        .collect();
    for function in ["api_handler", "validator", "order_storage", "fulfill_order"] {
        assert!(functions.contains(&function), "{function} in {functions:?}");
    }

    // Packed into the order's archive (the order has ended), the lines
    // read back the same; the one order's lines are no longer rows.
    let (_, before_packing, _) = dofs_text(&dofs, &["logs", order, "--json"]);
    let packed = dofs_local::services::compaction::compact(
        &dofs.db,
        chrono::Utc::now() + chrono::Duration::minutes(1),
    )
    .await
    .unwrap();
    let (ok, after_packing, _) = dofs_text(&dofs, &["logs", order, "--json"]);
    assert!(ok);
    assert_eq!(
        after_packing, before_packing,
        "packed lines read back as they were"
    );
    let rows_left: i64 = dofs
        .db
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM log_lines l JOIN orders o USING (order_id)
                 WHERE o.status = 'FULFILLED'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap();
    assert_eq!(rows_left, 0, "ended orders' lines packed ({packed:?})");

    // For people: one line per event, time, level, function, message.
    let (ok, text, _) = dofs_text(&dofs, &["logs", order]);
    assert!(ok);
    assert_eq!(text.lines().count(), lines.len(), "{text}");
    let fulfilled = text
        .lines()
        .find(|l| l.contains("order fulfilled"))
        .unwrap();
    assert!(fulfilled.contains(" INFO  fulfill_order "), "{fulfilled}");
    assert!(!fulfilled.contains('{'), "not JSON: {fulfilled}");

    let (ok, _, stderr) = dofs_text(&dofs, &["logs", "no-such-order"]);
    assert!(!ok);
    assert!(
        stderr.contains("no log lines for order no-such-order"),
        "{stderr}"
    );
}

#[tokio::test]
async fn follow_prints_the_lines_stored_after_it_started() {
    // Nothing polls the order queue: the order waits there, stored but not
    // fulfilled, until the fault is cleared.
    let mut args = fast_args(0.0);
    args.extend(["--fault".to_owned(), "fulfill_order=disabled".to_owned()]);
    let dofs = spawn_runtime(&args).await;
    let (status, body) = dofs.post_order(&order_body(1), None).await;
    assert_eq!(status, 202, "{body}");
    let order = body["order_id"].as_str().unwrap().to_owned();

    let mut follow = KilledOnDrop(
        Command::new(DOFS)
            .arg("--data-dir")
            .arg(&dofs.data_dir)
            .args(["logs", &order, "--follow", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = follow.0.stdout.take().unwrap();
    // Read on a thread of its own, waited for without blocking this
    // runtime, which the in-process dofs runs on too.
    let (seen, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if seen.send(line).is_err() {
                break;
            }
        }
    });
    let mut next = async |deadline: Duration| {
        tokio::time::timeout(deadline, lines.recv())
            .await
            .ok()
            .flatten()
    };
    // The lines so far: at least the acceptance (the workflow starts
    // before api_handler records the order, so validator may log first).
    let mut so_far = Vec::new();
    while !so_far
        .iter()
        .any(|l: &Value| l["message"] == "order accepted")
    {
        let line = next(Duration::from_secs(10)).await;
        let line = line.unwrap_or_else(|| panic!("no acceptance among {so_far:?}"));
        so_far.push(serde_json::from_str(&line).unwrap());
    }

    let cleared = dofs
        .client
        .delete(dofs.url("/_dofs/api/faults"))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let line = next(Duration::from_millis(500)).await;
        if line
            .as_deref()
            .is_some_and(|l| l.contains("order fulfilled"))
        {
            break;
        }
        assert!(Instant::now() < until, "no 'order fulfilled' line followed");
    }
}

/// A child process that does not outlive a failed test.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
