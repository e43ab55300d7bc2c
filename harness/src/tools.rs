//! Finding the outside tools the harness needs.
//!
//! `scripts/tools.sh` installs them into `target/tools/venv`; a tool on
//! `PATH` is accepted too. When one is missing, a test must not pass
//! silently: under `CI=true` it fails, otherwise it says why it skips.

use std::path::{Path, PathBuf};

use crate::target_dir;

/// The venv's `bin/` directory.
pub fn venv_bin() -> PathBuf {
    std::env::var_os("DOFS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("tools").join("venv"))
        .join("bin")
}

/// `name` from the venv, else from `PATH`.
pub fn find(name: &str) -> Option<PathBuf> {
    let in_venv = venv_bin().join(name);
    if is_executable(&in_venv) {
        return Some(in_venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether tests run under CI (`CI=true`), where a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// `name`, or `None` after printing why `test` is skipped; panics under CI.
pub fn require(name: &str, test: &str) -> Option<PathBuf> {
    match find(name) {
        Some(path) => Some(path),
        None => {
            skip_or_fail(
                test,
                &format!(
                    "{name} not found in {} or on PATH (run `. scripts/tools.sh`)",
                    venv_bin().display()
                ),
            );
            None
        }
    }
}

/// Fails under CI, else prints a loud skip notice.
pub fn skip_or_fail(test: &str, why: &str) {
    assert!(!in_ci(), "{test}: {why} (CI=true, so this is a failure)");
    eprintln!("SKIPPED {test}: {why}");
}
