//! The `dofs` command line itself, as a shell sees it: what it refuses and
//! how it says so.

use std::process::Command;

use crate::helpers::DOFS;

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
