//! A `dofs serve` child process: this same executable started on a data
//! directory with extra arguments, its stderr appended to a log file, its
//! address read from the [`LISTENING_LINE`] it prints. `dofs bench` starts
//! its server (and the restart) this way, and so do the end-to-end tests,
//! which drive the binary as a user would.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::LISTENING_LINE;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `dofs serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: Option<Child>,
    url: String,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts `exe --data-dir <data_dir> serve --addr 127.0.0.1:0 <args>`
    /// with `envs` set (and the settings that `args` give explicitly taken
    /// out of the inherited environment), and waits for its address line.
    /// Returns the process and how long it took to listen.
    pub fn start<I, K, V>(
        exe: &Path,
        data_dir: &Path,
        args: &[String],
        log: &Path,
        envs: I,
    ) -> anyhow::Result<(Self, Duration)>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let started = Instant::now();
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("FAILURE_RATE")
            .env_remove("FAILURE_SEED")
            .env_remove("DOFS_ADDR")
            .envs(envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let stdout = child
            .stdout
            .take()
            .context("dofs serve has no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Drain, so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(START_TIMEOUT).ok().flatten();
        let elapsed = started.elapsed();
        let mut process = Self {
            child: Some(child),
            url: String::new(),
            log: log.to_owned(),
        };
        let Some(url) = line.as_deref().and_then(|l| l.strip_prefix(LISTENING_LINE)) else {
            bail!(
                "dofs serve did not start (first line {line:?}); log tail:\n{}",
                process.log_tail(20)
            );
        };
        process.url = url.trim().to_owned();
        Ok((process, elapsed))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file (the server's stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL, no goodbyes (a crash), and reaps the process.
    pub fn kill(&mut self) -> std::io::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then waits up to `grace` for the exit; returns its code
    /// (`None` if it died by a signal). Kills it after the grace period.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<Option<i32>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("cannot run kill")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", child.id());
        let until = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                bail!("dofs serve did not stop within {grace:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
