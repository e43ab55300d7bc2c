//! The API does what `openapi.yaml` says, and only that: Schemathesis,
//! pinned and installed by `scripts/tools.sh`, runs every check it has —
//! server errors, status codes, headers, content types and schemas of the
//! responses, positive data accepted and negative data refused, missing
//! headers, unsupported methods — against a runtime in this process, with a
//! fixed seed and a time bound.
//!
//! Without Schemathesis the test fails under `CI=true` and skips loudly
//! elsewhere (run `. scripts/tools.sh` to install it).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{fast_args, spawn_runtime};

/// Cases per operation in the fuzzing phase; the examples, coverage and
/// stateful phases add theirs (about 1,100 cases in all, some 50 s here).
const MAX_EXAMPLES: &str = "130";
/// The run is stopped, and the test failed, past this. Not `--max-time`:
/// with it Schemathesis repeats fuzzing until the time is spent.
const TIME_BOUND: Duration = Duration::from_secs(240);
const SEED: &str = "15";
/// The fewest cases a run must have made to count.
const MIN_CASES: u64 = 1_000;

fn schemathesis() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("DOFS_SCHEMATHESIS")
        .map(PathBuf::from)
        .into_iter()
        .chain([repo.join("target/tools/schemathesis-venv/bin/st")])
        .find(|path| path.is_file())
}

/// Runs `command` to its end, or kills it past `bound`.
fn run_bounded(mut command: Command, bound: Duration) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdout(log.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > bound {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(log.path()).unwrap();
    match status {
        Some(status) => (status.success(), output),
        None => (false, format!("stopped after {bound:?}:\n{output}")),
    }
}

#[tokio::test]
async fn schemathesis_finds_nothing_with_every_check() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "schemathesis is not installed (scripts/tools.sh installs it)"
        );
        eprintln!("--- SKIPPED: schemathesis not found; install it with `. scripts/tools.sh` (this would fail under CI=true)");
        return;
    };
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let spec =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lambdas/api_handler/openapi.yaml");
    let reports = tempfile::tempdir().unwrap();
    let report_path = reports.path().join("report.json");
    let mut command = Command::new(st);
    command.args([
        "run",
        spec.to_str().unwrap(),
        "--url",
        &dofs.base,
        "--checks",
        "all",
        "--mode",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--no-shrink",
        "--report",
        "json",
        "--report-json-path",
        report_path.to_str().unwrap(),
    ]);
    // A blocking thread: the runtime serves on this test's own thread.
    let (success, output) = tokio::task::spawn_blocking(move || run_bounded(command, TIME_BOUND))
        .await
        .unwrap();
    assert!(
        success,
        "schemathesis found failures:\n{output}\n{}",
        dofs.log_tail()
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let cases = report["test_cases"]["generated"].as_u64().unwrap();
    assert_eq!(report["test_cases"]["with_failures"], 0, "{output}");
    assert_eq!(report["test_cases"]["errored"], 0, "{output}");
    eprintln!("schemathesis: {cases} cases, 0 failures (seed {SEED})");
    assert!(
        cases >= MIN_CASES,
        "schemathesis ran only {cases} cases (at least {MIN_CASES} wanted):\n{output}"
    );
}
