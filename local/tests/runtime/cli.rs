//! The `dofs` command line itself, as a shell sees it: what it refuses and
//! how it says so, and what its output looks like piped.

use std::process::Command;
use std::time::Duration;

use crate::helpers::{fast_args, Dofs, Harness as _, DOFS};

/// Runs `dofs <args>` on a fresh data directory with `LOG_LEVEL` set; its
/// success and stderr.
fn dofs_with_log_level(level: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DOFS)
        .env_remove("RUST_LOG")
        .env("LOG_LEVEL", level)
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A read command and `serve` refuse an invalid `LOG_LEVEL` alike, and say
/// it once (not once per logging set-up, nor a silent fall back to info).
#[test]
fn an_invalid_log_level_is_refused_with_one_message() {
    for args in [&["queues"][..], &["serve", "--addr", "127.0.0.1:0"]] {
        let (ok, stderr) = dofs_with_log_level("loud=[", args);
        assert!(!ok, "dofs {args:?} accepted LOG_LEVEL=loud=[: {stderr}");
        for part in ["invalid log level", "expected one of"] {
            assert_eq!(stderr.matches(part).count(), 1, "dofs {args:?}: {stderr}");
        }
    }
}

/// Bad values are usage errors: exit 2, said once, and nothing created.
#[test]
fn bad_values_are_usage_errors_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    for args in [
        &["serve", "--failure-rate", "2"][..],
        &["serve", "--failure-rate", "NaN"][..],
        &["orders", "--status", "BOGUS"][..],
    ] {
        let output = Command::new(DOFS)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "dofs {args:?}: {stderr}");
        assert!(
            stderr.contains("error: invalid value"),
            "dofs {args:?}: {stderr}"
        );
        assert!(!data_dir.exists(), "dofs {args:?} created the data dir");
    }
}

/// `dofs orders | head -1`: the reader closing the pipe is not an error.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    drop(dofs_local::store::Db::open(&data_dir).unwrap());
    let mut child = Command::new(DOFS)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["orders"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before the command writes.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

/// Runs `dofs <args>` on `data_dir` with `envs` set (and the colour
/// variables of the test's own environment removed); its stdout.
fn dofs_stdout(data_dir: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = Command::new(DOFS)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .envs(envs.iter().copied())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dofs {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Colour is for a person at a terminal: piped output and `NO_COLOR` get
/// none (even when `CLICOLOR_FORCE` asks), while the same output forced
/// on does have it, so the words to colour are there.
#[tokio::test(flavor = "multi_thread")]
async fn piped_output_and_no_color_get_no_escape_codes() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(2).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let order = ["order", ids[0].as_str()];
    let commands: [&[&str]; 4] = [&["orders"], &["alarms"], &["queues"], &order];
    for args in commands {
        let piped = dofs_stdout(&dofs.data_dir, args, &[]);
        assert!(!piped.contains('\u{1b}'), "dofs {args:?} piped:\n{piped}");
        let no_color = dofs_stdout(
            &dofs.data_dir,
            args,
            &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
        );
        assert!(!no_color.contains('\u{1b}'), "dofs {args:?}:\n{no_color}");
        assert_eq!(no_color, piped, "dofs {args:?}");
    }
    for args in [&["orders"][..], &order] {
        let forced = dofs_stdout(&dofs.data_dir, args, &[("CLICOLOR_FORCE", "1")]);
        assert!(
            forced.contains("\u{1b}[3"),
            "dofs {args:?} forced:\n{forced}"
        );
    }
}

/// Piped, a table is as wide as its content: one whole line per order,
/// so `dofs orders | grep FULFILLED` finds every order.
#[tokio::test(flavor = "multi_thread")]
async fn piped_tables_keep_one_line_per_row() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(3).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let text = dofs_stdout(&dofs.data_dir, &["orders"], &[("COLUMNS", "20")]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 3 + 1, "{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ORDER_ID", "STATUS", "UPDATED_AT"], "{text}");
    for id in &ids {
        let line = lines.iter().find(|l| l.contains(id.as_str())).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[..2], [id.as_str(), "FULFILLED"], "{text}");
        // Columns line up under their headers.
        assert_eq!(line.find("FULFILLED"), lines[0].find("STATUS"), "{text}");
    }
    assert_eq!(lines[4], "3 order(s)");
    assert!(lines.iter().all(|l| l == &l.trim_end()), "{text:?}");
}

/// `dofs completions <shell>`: a script naming the commands, which bash
/// at least can parse.
#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let dir = tempfile::tempdir().unwrap();
        let script = dofs_stdout(dir.path(), &["completions", shell], &[]);
        for command in ["serve", "orders", "completions"] {
            assert!(
                script.contains(command),
                "{shell} lacks {command}:\n{script}"
            );
        }
        if shell == "bash" {
            let path = dir.path().join("dofs.bash");
            std::fs::write(&path, &script).unwrap();
            let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(
                check.status.success(),
                "bash -n: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DOFS)
        .args(["completions", "powerpoint"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// `dofs submit --count 3` against a running server: three accepted ids
/// with their traces, and `dofs orders` lists exactly them.
#[tokio::test(flavor = "multi_thread")]
async fn submit_sends_sample_orders_to_a_running_server() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let output = Command::new(DOFS)
        .env_remove("DOFS_URL")
        .args(["submit", "--count", "3", "--json", "--url", &dofs.base])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(keys(&report), ["orders", "rejected"], "{report}");
    assert_eq!(report["rejected"], serde_json::json!([]), "{report}");
    let orders = report["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 3, "{report}");
    assert_eq!(keys(&orders[0]), ["order_id", "status", "trace_id"]);
    let mut ids: Vec<String> = orders
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "RECEIVED", "{o}");
            assert!(o["trace_id"].as_str().unwrap().starts_with("1-"), "{o}");
            o["order_id"].as_str().unwrap().to_owned()
        })
        .collect();
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let listed = dofs.cli_json(&["orders"]);
    let mut listed: Vec<String> = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    listed.sort();
    assert_eq!(listed, ids);
}

/// Orders from stdin are sent as they are: the valid one is accepted and
/// printed, the invalid one is reported with the server's JSON error body,
/// and the command fails.
#[tokio::test(flavor = "multi_thread")]
async fn submit_reports_a_refused_order_with_its_error_body() {
    use std::io::Write as _;
    let dofs = Dofs::spawn(&fast_args(0.0));
    let orders = serde_json::json!([
        {"customer_name": "Ada", "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}]},
        {"customer_name": "Ada", "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.999"}]},
    ]);
    let mut child = Command::new(DOFS)
        .env("DOFS_URL", &dofs.base)
        .args(["submit", "--file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(orders.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let id = lines[0].split_whitespace().next().unwrap();
    let (status, _) = dofs.get_order(id).await;
    assert_eq!(status, 200, "{stdout}");
    assert!(stderr.contains("order #2 refused (400): {"), "{stderr}");
    assert!(
        stderr.contains("\"code\":\"validation_failed\""),
        "{stderr}"
    );
    assert!(stderr.contains("items[0].unit_price"), "{stderr}");
    assert!(
        stderr.contains("the server refused 1 of 2 order(s)"),
        "{stderr}"
    );
}

/// Runs `dofs --data-dir <data_dir> reset <args>` with stdin not a
/// terminal; its exit code and stderr.
fn reset(data_dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("reset")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// While `dofs serve` holds the data directory, `dofs reset --yes` is
/// refused and the server goes on with its data.
#[tokio::test(flavor = "multi_thread")]
async fn reset_is_refused_while_serve_runs() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(1).await;
    let (code, stderr) = reset(&dofs.data_dir, &["--yes"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot reset"), "{stderr}");
    assert!(
        stderr.contains("already using the data directory"),
        "{stderr}"
    );
    assert!(dofs.data_dir.join("dofs.sqlite3").exists());
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let (status, body) = dofs.get_order(&ids[0]).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("FULFILLED")));
}

/// On a stopped data directory: without `--yes` and no terminal to ask
/// on, exit 2 and nothing deleted; with `--yes`, the directory is emptied
/// and the next `serve` starts with no orders.
#[tokio::test(flavor = "multi_thread")]
async fn reset_empties_a_stopped_data_dir_for_a_fresh_start() {
    let mut dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(2).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert_eq!(dofs.terminate(), Some(0));
    let dir = dofs.take_dir().unwrap();
    let data_dir = dofs.data_dir.clone();
    drop(dofs);

    let (code, stderr) = reset(&data_dir, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(data_dir.join("dofs.sqlite3").exists());

    let (code, stderr) = reset(&data_dir, &["--yes"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(data_dir.is_dir());
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);

    let dofs = Dofs::spawn_in(&data_dir, &fast_args(0.0));
    assert_eq!(
        dofs.cli_json(&["orders"]),
        serde_json::json!({"orders": []})
    );
    assert_eq!(dofs.get_order(&ids[0]).await.0, 404);
    drop(dofs);
    drop(dir);
}

/// A directory that holds files but no DOFS database is not emptied.
#[test]
fn reset_refuses_a_directory_that_is_not_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thesis.tex"), "precious").unwrap();
    let (code, stderr) = reset(dir.path(), &["--yes"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a DOFS data directory"), "{stderr}");
    assert!(dir.path().join("thesis.tex").exists());
}

/// `dofs serve` logs to a file (not a terminal): JSON lines unless
/// `--log-format pretty` (or `DOFS_LOG_FORMAT=pretty`) asks for the human
/// format, which then has no colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_json_to_a_file_unless_pretty_is_asked_for() {
    // The log up to "dofs is serving", which may come just after the
    // listening line the spawn waited for.
    let log_lines = |dofs: &Dofs| -> Vec<String> {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let tail = dofs.log_tail();
            let lines: Vec<String> = tail.lines().skip(1).map(str::to_owned).collect();
            if lines.iter().any(|l| l.contains("dofs is serving")) {
                return lines;
            }
            assert!(std::time::Instant::now() < until, "{tail}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let json = Dofs::spawn(&fast_args(0.0));
    let lines = log_lines(&json);
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    let mut pretty_flag = fast_args(0.0);
    pretty_flag.extend(["--log-format".to_owned(), "pretty".to_owned()]);
    let pretty = Dofs::spawn(&pretty_flag);
    let lines = log_lines(&pretty);
    let serving = lines
        .iter()
        .find(|l| l.contains("dofs is serving"))
        .unwrap();
    assert!(serving.contains(" INFO "), "{serving}");
    assert!(serving.contains("dofs_local::runtime"), "{serving}");
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
}

/// `DOFS_LOG_FORMAT` is read like the flag, and a bad value is a usage
/// error.
#[test]
fn the_log_format_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DOFS)
        .env("DOFS_LOG_FORMAT", "xml")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'xml'"), "{stderr}");
    assert!(
        stderr.contains("json") && stderr.contains("pretty"),
        "{stderr}"
    );
}

/// The keys of a JSON object, sorted.
fn keys(value: &serde_json::Value) -> Vec<&str> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Every string in `value` that reads as an RFC 3339 time is in the one
/// machine spelling: UTC, milliseconds, `Z`.
fn assert_times_in_one_format(what: &str, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {
            let shape = text.len() == 24
                && text.ends_with('Z')
                && text.as_bytes()[19] == b'.'
                && text[20..23].bytes().all(|b| b.is_ascii_digit());
            assert!(shape, "{what}: time {text:?} is not RFC 3339 UTC ms with Z");
        }
        serde_json::Value::Array(items) => {
            for item in items {
                assert_times_in_one_format(what, item);
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values() {
                assert_times_in_one_format(what, item);
            }
        }
        _ => {}
    }
}

/// Every read command's `--json` is one object with pinned keys (never a
/// bare array), its times in one format, and the console's JSON twin of
/// the same view has the same shape.
#[tokio::test(flavor = "multi_thread")]
async fn every_json_output_is_an_object_of_a_pinned_shape() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let ids = dofs.submit(1).await;
    dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    let id = ids[0].as_str();
    let twin = |path: &str| {
        let url = dofs.url(path);
        let client = dofs.client.clone();
        async move {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{url}");
            response.json::<serde_json::Value>().await.unwrap()
        }
    };

    let orders = dofs.cli_json(&["orders"]);
    assert_eq!(keys(&orders), ["orders"]);
    assert_eq!(
        keys(&orders["orders"][0]),
        [
            "created_at",
            "customer",
            "order_id",
            "status",
            "total",
            "updated_at"
        ]
    );
    let orders_twin = twin("/_dofs/api/orders").await;
    assert_eq!(keys(&orders_twin), keys(&orders));
    assert_eq!(keys(&orders_twin["orders"][0]), keys(&orders["orders"][0]));

    let order = dofs.cli_json(&["order", id]);
    let order_keys = [
        "attempts",
        "deliveries",
        "execution",
        "failed_order",
        "order",
        "order_id",
        "trace",
    ];
    assert_eq!(keys(&order), order_keys);
    assert_eq!(
        keys(&order["order"]),
        [
            "created_at",
            "customer_name",
            "history",
            "items",
            "order_id",
            "status",
            "total",
            "trace_id",
            "updated_at"
        ]
    );
    assert_eq!(
        keys(&order["deliveries"][0]),
        [
            "at",
            "function",
            "message_id",
            "outcome",
            "queue",
            "receive_count"
        ]
    );
    assert!(order["deliveries"][0]["receive_count"].is_u64(), "{order}");
    assert_eq!(keys(&order["trace"]), ["other_traces", "spans", "trace_id"]);
    let span_keys = [
        "attributes",
        "component",
        "depth",
        "duration_ms",
        "end",
        "end_ns",
        "events",
        "name",
        "order_id",
        "parent_span_id",
        "span_id",
        "start",
        "start_ns",
        "status",
        "trace_id",
    ];
    assert_eq!(keys(&order["trace"]["spans"][0]), span_keys);
    let order_twin = twin(&format!("/_dofs/api/orders/{id}")).await;
    assert_eq!(keys(&order_twin), order_keys);
    assert_eq!(keys(&order_twin["trace"]["spans"][0]), span_keys);

    let queues = dofs.cli_json(&["queues"]);
    assert_eq!(keys(&queues), ["queues"]);
    assert_eq!(
        keys(&queues["queues"][0]),
        ["delayed", "in_flight", "name", "visible"]
    );

    let metrics = dofs.cli_json(&["metrics", "--since", "10m"]);
    assert_eq!(keys(&metrics), ["series", "since"]);
    let series_keys = [
        "average",
        "dimensions",
        "last",
        "last_at",
        "name",
        "namespace",
        "unit",
        "window",
    ];
    assert_eq!(keys(&metrics["series"][0]), series_keys);
    let metrics_twin = twin("/_dofs/api/metrics").await;
    assert_eq!(keys(&metrics_twin), keys(&metrics));
    assert_eq!(keys(&metrics_twin["series"][0]), series_keys);

    let alarms = dofs.cli_json(&["alarms"]);
    assert_eq!(keys(&alarms), ["alarms", "history"]);
    assert_eq!(
        keys(&alarms["alarms"][0]),
        [
            "changed_at",
            "description",
            "evaluated_at",
            "name",
            "reason",
            "reason_data",
            "state"
        ]
    );
    let alarms_twin = twin("/_dofs/api/alarms").await;
    assert_eq!(keys(&alarms_twin), keys(&alarms));

    let xray = dofs.cli_json(&["trace", id]);
    assert_eq!(
        keys(&xray),
        ["documents", "order_id", "sampled", "trace_id"]
    );
    let full = dofs.cli_json(&["trace", id, "--full"]);
    assert_eq!(
        keys(&full),
        ["order_id", "other_traces", "spans", "trace_id"]
    );

    let (_, api_order) = dofs.get_order(id).await;
    for (what, value) in [
        ("GET /orders/{id}", &api_order),
        ("orders", &orders),
        ("order", &order),
        ("order twin", &order_twin),
        ("queues", &queues),
        ("metrics", &metrics),
        ("alarms", &alarms),
        ("trace", &xray),
        ("trace --full", &full),
    ] {
        assert_times_in_one_format(what, value);
    }
}
