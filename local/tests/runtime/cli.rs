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
