//! `dofs reset`: empties a data directory (orders, queues, executions,
//! spans, metrics: everything is in it), to start again from nothing.
//!
//! Three guards, because what it deletes cannot be brought back:
//! - it takes the data directory's lock, the one `dofs serve` holds
//!   ([`lock_data_dir`]), and keeps it while it deletes: a running server
//!   is refused, and none can start half-way through;
//! - a directory that is not empty and holds no DOFS database is refused,
//!   so a mistyped `--data-dir ~` deletes nothing;
//! - it asks first, unless `--yes`; with no terminal to ask on and no
//!   `--yes` it refuses (exit 2), so a script must say `--yes`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{bail, Context as _};

use super::UsageError;
use crate::runtime::lock_data_dir;
use crate::store::DB_FILE;

/// `dofs reset [--yes]` on `data_dir`.
pub fn reset(data_dir: &Path, yes: bool) -> anyhow::Result<()> {
    let shown = data_dir.display();
    if !data_dir.exists() {
        println!("{shown} does not exist: nothing to reset");
        return Ok(());
    }
    if !data_dir.is_dir() {
        bail!("{shown} is not a directory");
    }
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(data_dir)
        .with_context(|| format!("cannot list {shown}"))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list {shown}"))?;
    if entries.is_empty() {
        println!("{shown} is empty: nothing to reset");
        return Ok(());
    }
    if !data_dir.join(DB_FILE).exists() {
        bail!("{shown} holds no {DB_FILE}: it is not a DOFS data directory, nothing deleted");
    }
    // Held until the end: no `dofs serve` can start on a half-deleted
    // directory.
    let _lock = lock_data_dir(data_dir).with_context(|| format!("cannot reset {shown}"))?;
    if !yes {
        confirm(data_dir, entries.len())?;
    }
    for entry in &entries {
        let path = entry.path();
        // `file_type` does not follow links: a link is removed, never what
        // it points to.
        let removed = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot delete {}", path.display()))?;
    }
    println!(
        "reset {shown}: deleted {} entr{}",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// Asks on the terminal; an answer other than y/yes deletes nothing.
fn confirm(data_dir: &Path, entries: usize) -> anyhow::Result<()> {
    let shown = data_dir.display();
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "dofs reset deletes everything in {shown}: pass --yes to confirm (stdin is not a terminal to ask on)"
        ))
        .into());
    }
    let mut stderr = std::io::stderr().lock();
    write!(
        stderr,
        "Delete everything in {shown} ({entries} entr{}: orders, queues, executions, traces, metrics)? [y/N] ",
        if entries == 1 { "y" } else { "ies" }
    )?;
    stderr.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        bail!("not confirmed: nothing deleted");
    }
    Ok(())
}
