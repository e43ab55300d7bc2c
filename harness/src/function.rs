//! The bootstrap binaries: building them, and running one as Lambda would.
//!
//! Integration tests cannot name another package's binaries
//! (`CARGO_BIN_EXE_*` is per package), so [`build_bootstraps`] runs
//! `cargo build --bins` for the five function packages once per test
//! process; when `cargo test` already built them this is a no-op check.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::{target_dir, workspace_root, HarnessError};

/// The five functions, as named everywhere (package, binary, Lambda).
pub const FUNCTIONS: [&str; 5] = [
    "api_handler",
    "validator",
    "order_storage",
    "fulfill_order",
    "dlq_handler",
];

/// Which cargo profile to build and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    Debug,
    /// `lambda-release`: the profile the deployed zips are built with.
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "lambda-release",
        }
    }
}

type BuildResults = Mutex<HashMap<Profile, Result<PathBuf, String>>>;

fn builds() -> &'static BuildResults {
    static BUILDS: OnceLock<BuildResults> = OnceLock::new();
    BUILDS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Builds the five bootstraps for `profile` (once per process) and returns
/// the directory that holds them.
pub fn build_bootstraps(profile: Profile) -> Result<PathBuf, HarnessError> {
    // Holding the lock while building makes parallel tests wait for one build.
    let mut builds = builds().lock().unwrap_or_else(|p| p.into_inner());
    let result = builds
        .entry(profile)
        .or_insert_with(|| run_cargo_build(profile))
        .clone();
    result.map_err(HarnessError::Setup)
}

fn run_cargo_build(profile: Profile) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        // The same command as scripts/test runs before `cargo test`, so the
        // feature set (and the artifacts) are the same and this is a no-op
        // there; a `-p` subset would resolve features differently and rebuild.
        .args(["build", "--bins", "--locked", "--quiet"]);
    match profile {
        Profile::Debug => {
            command.arg("--workspace");
        }
        Profile::Release => {
            // Only the functions: `dofs` under whole-program LTO would take
            // many minutes for nothing the benchmark measures.
            command.args(["--profile", "lambda-release"]);
            for function in FUNCTIONS {
                command.args(["-p", function]);
            }
        }
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build of the bootstraps failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let dir = target_dir().join(profile.dir());
    for function in FUNCTIONS {
        if !dir.join(function).is_file() {
            return Err(format!("{} was not built", dir.join(function).display()));
        }
    }
    Ok(dir)
}

/// A function process under a fake Runtime API.
pub struct FunctionProcess {
    child: Child,
    pub name: String,
    pub started_at: Instant,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// The environment Lambda gives every function, for `name` under the
/// Runtime API at `runtime_api` (`host:port`).
pub fn lambda_env(name: &str, runtime_api: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/11/25/[$LATEST]harness".to_owned(),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
        ("TZ", ":UTC".to_owned()),
        // Spans go to the X-Ray daemon over UDP, as on Lambda; nothing
        // listens on this port, and a lost datagram is what UDP allows.
        ("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000".to_owned()),
        ("LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn capture(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>, echo: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("  | {line}");
            }
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
}

impl FunctionProcess {
    /// Starts `program` (with `args`) with an empty environment plus `env`,
    /// capturing its output. With `TEST_LOG=1` the output is echoed.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<FunctionProcess, HarnessError> {
        let echo = std::env::var("TEST_LOG").is_ok_and(|v| v == "1");
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started_at = Instant::now();
        let mut child = command
            .spawn()
            .map_err(HarnessError::io(format!("starting {}", program.display())))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, stdout.clone(), echo);
        }
        if let Some(err) = child.stderr.take() {
            capture(err, stderr.clone(), echo);
        }
        Ok(FunctionProcess {
            child,
            name: name.to_owned(),
            started_at,
            stdout,
            stderr,
        })
    }

    /// Starts the bootstrap `name` from `bin_dir` under the Runtime API at
    /// `runtime_api`, with Lambda's environment plus `extra_env`.
    pub fn start_bootstrap(
        bin_dir: &Path,
        name: &str,
        runtime_api: &str,
        extra_env: &[(String, String)],
    ) -> Result<FunctionProcess, HarnessError> {
        let mut env = lambda_env(name, runtime_api);
        env.extend(extra_env.iter().cloned());
        Self::spawn(name, &bin_dir.join(name), &[], &env)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The stdout lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(serde_json::Value::is_object)
            .collect()
    }

    /// Peak resident set size in KiB (`VmHWM` in `/proc/<pid>/status`).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status()?.vmhwm
    }

    /// Resident set size now in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status()?.vmrss
    }

    #[cfg(target_os = "linux")]
    fn status(&self) -> Option<ProcStatus> {
        let pid = i32::try_from(self.pid()).ok()?;
        let status = procfs::process::Process::new(pid).ok()?.status().ok()?;
        Some(ProcStatus {
            vmhwm: status.vmhwm,
            vmrss: status.vmrss,
        })
    }

    /// No `/proc` outside Linux: nothing is read.
    #[cfg(not(target_os = "linux"))]
    fn status(&self) -> Option<ProcStatus> {
        None
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(HarnessError::io("waiting for the function"))?
            {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                return Err(HarnessError::Timeout {
                    what: format!("{} to exit", self.name),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the process wrote, for assertion messages.
    pub fn transcript(&self) -> String {
        let mut text = format!("--- {} stdout ---\n", self.name);
        for line in self.stdout() {
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str(&format!("--- {} stderr ---\n", self.name));
        for line in self.stderr() {
            text.push_str(&line);
            text.push('\n');
        }
        text
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The memory figures of `/proc/<pid>/status`, in KiB.
struct ProcStatus {
    vmhwm: Option<u64>,
    vmrss: Option<u64>,
}
