//! `dofs bench`, run tiny: the report has every figure, in the right shape,
//! and counts what really happened. Never a timing assertion: the numbers
//! themselves are what the benchmark is for.

use std::process::Command;

use serde_json::Value;

use crate::helpers::{fast_args, Dofs, DOFS};

fn run_bench(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(dir.path().join("unused"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dofs bench {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn assert_percentiles(report: &Value, key: &str, count: u64) {
    let p = &report[key];
    assert_eq!(p["count"], count, "{key}: {p}");
    let get = |name: &str| {
        p[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}.{name}: {p}"))
    };
    assert!(get("p50") >= 0.0, "{key}: {p}");
    assert!(get("p50") <= get("p90"), "{key}: {p}");
    assert!(get("p90") <= get("p99"), "{key}: {p}");
    assert!(get("p99") <= get("max"), "{key}: {p}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_runs_its_server_in_process_when_asked() {
    let report = run_bench(&[
        "--orders",
        "6",
        "--concurrency",
        "2",
        "--in-process",
        "--serve-arg=--poll-interval=50ms",
    ]);
    assert_eq!(report["in_process"], true, "{report}");
    assert_eq!(report["spawned_server"], false, "{report}");
    assert_eq!(report["accepted"], 6);
    assert_eq!(report["terminal"]["FULFILLED"], 6, "{report}");
    assert_eq!(report["not_terminal"], 0);
    assert!(report["restart"].is_null());
    assert!(report["server_peak_rss_kib"].as_u64().unwrap() > 0);
    assert_percentiles(&report, "post_latency_ms", 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_with_its_own_server_reports_every_figure_and_the_restart() {
    let report = run_bench(&[
        "--orders",
        "6",
        "--concurrency",
        "2",
        "--restart",
        "--serve-arg=--poll-interval=50ms",
    ]);
    assert_eq!(report["spawned_server"], true, "{report}");
    assert_eq!(report["mode"], "concurrency");
    assert_eq!(report["submitted"], 6);
    assert_eq!(report["accepted"], 6);
    assert_eq!(report["terminal"]["FULFILLED"], 6, "{report}");
    assert_eq!(report["not_terminal"], 0);
    assert_eq!(report["timed_out"], false);
    assert_eq!(report["errors"], serde_json::json!({}));
    assert!(report["accepted_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["end_to_end_per_s"].as_f64().unwrap() > 0.0);
    assert_percentiles(&report, "post_latency_ms", 6);
    assert_percentiles(&report, "submit_to_fulfilled_ms", 6);
    assert!(
        report["server_peak_rss_kib"].as_u64().unwrap() > 0,
        "{report}"
    );
    let restart = &report["restart"];
    assert_eq!(restart["orders_in_data_dir"], 6, "{report}");
    let listening = restart["to_listening_ms"].as_f64().unwrap();
    let answered = restart["to_first_response_ms"].as_f64().unwrap();
    assert!(listening > 0.0 && listening <= answered, "{restart}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_at_a_fixed_rate_counts_failed_orders_as_errors() {
    // Every fulfilment attempt fails: each order is dead-lettered and ends
    // FAILED, which the report must count, not hide.
    let report = run_bench(&[
        "--orders",
        "3",
        "--rate",
        "50",
        "--failure-rate",
        "1",
        "--serve-arg=--visibility-timeout=100ms",
        "--serve-arg=--poll-interval=50ms",
        "--serve-arg=--max-receive-count=1",
    ]);
    assert_eq!(report["mode"], "fixed_rate");
    assert_eq!(report["rate"], 50.0);
    assert_eq!(report["accepted"], 3);
    assert_eq!(report["terminal"]["FAILED"], 3, "{report}");
    assert_eq!(report["errors"]["order_failed"], 3, "{report}");
    assert!(report["submit_to_fulfilled_ms"].is_null(), "{report}");
    assert_percentiles(&report, "post_latency_ms", 3);
    assert!(report["restart"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_targets_a_running_server_by_url() {
    let dofs = Dofs::spawn(&fast_args(0.0));
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(&dofs.data_dir)
        .args([
            "bench",
            "--orders",
            "4",
            "--concurrency",
            "4",
            "--json",
            "--url",
        ])
        .arg(&dofs.base)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        dofs.log_tail()
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["spawned_server"], false);
    assert_eq!(report["url"], dofs.base.as_str());
    assert_eq!(report["terminal"]["FULFILLED"], 4, "{report}");
    // The pid of a server bench did not start is unknown unless given.
    assert!(report["server_peak_rss_kib"].is_null());
    let listed = dofs.cli_json(&["orders", "--status", "FULFILLED"]);
    assert_eq!(listed["orders"].as_array().unwrap().len(), 4);
}

#[test]
fn bench_refuses_a_non_loopback_url() {
    let output = Command::new(DOFS)
        .args(["bench", "--orders", "1", "--url", "http://192.0.2.1:3000"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

/// A `--url` nothing listens on: every request is a `connect` error, none
/// is a latency sample, and the run fails.
#[test]
fn bench_at_a_dead_port_fails_and_counts_no_latency() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(dir.path().join("unused"))
        .args(["bench", "--orders", "3", "--concurrency", "1", "--json"])
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("0 of 3 order(s) accepted"), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["submitted"], 3, "{report}");
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(report["errors"]["connect"], 3, "{report}");
    assert!(report["post_latency_ms"].is_null(), "{report}");
    assert_eq!(report["not_terminal"], 0, "{report}");
}
