//! Two ways to run DOFS for a test, each on a free port with its own data
//! dir: [`spawn_runtime`] builds the [`Runtime`] in this process (the
//! default: fast, and its logs are captured); [`Dofs::spawn`] starts the
//! real `dofs serve` binary, for what only a process shows (crashes,
//! signals, the CLI against a live server). Both deref to [`Served`]: the
//! HTTP API and the data directory.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use dofs_core::Clock;
use dofs_local::cli::serve_process::ServeProcess;
use dofs_local::cli::{Cli, Command as CliCommand};
use dofs_local::runtime::Runtime;
use dofs_local::shutdown::Shutdown;
use dofs_telemetry::testing::Capture;
use serde_json::{json, Value};

pub const DOFS: &str = env!("CARGO_BIN_EXE_dofs");

/// A running DOFS, seen from outside: its HTTP API and its data directory.
pub struct Served {
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

/// A running DOFS a test drives: its API and its log.
pub(crate) trait Harness: Deref<Target = Served> {
    /// The last lines of the server's log, for failure messages.
    fn log_tail(&self) -> String;

    /// Polls until every order is terminal (see [`Served::poll_terminal`]);
    /// at the deadline the test fails with what is pending and the log.
    async fn wait_terminal(&self, ids: &[String], deadline: Duration) -> HashMap<String, String> {
        self.deref()
            .poll_terminal(ids, deadline)
            .await
            .unwrap_or_else(|pending| panic!("{pending}\n{}", self.log_tail()))
    }
}

impl Harness for Dofs {
    fn log_tail(&self) -> String {
        Dofs::log_tail(self)
    }
}

impl Harness for InProcess {
    fn log_tail(&self) -> String {
        InProcess::log_tail(self)
    }
}

/// A `dofs serve` process.
pub struct Dofs {
    served: Served,
    process: Option<ServeProcess>,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for Dofs {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

/// A [`Runtime`] in this process, on the test's (current-thread) tokio
/// runtime, with its telemetry installed for this thread only, so tests in
/// parallel keep their spans, metrics and logs apart.
pub struct InProcess {
    served: Served,
    shutdown: Shutdown,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    logs: Capture,
    /// The runtime's database, for tests that reach under the API.
    pub db: dofs_local::store::Db,
    _telemetry: dofs_telemetry::ScopeGuard,
    _dir: tempfile::TempDir,
}

impl Deref for InProcess {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Builds and starts a runtime in this process with `dofs serve`'s
/// arguments (parsed by the same clap definition as the binary's).
pub async fn spawn_runtime(args: &[String]) -> InProcess {
    spawn_runtime_with_clock(args, Arc::new(dofs_core::SystemClock)).await
}

/// [`spawn_runtime`] with `clock` as every part's "now".
pub async fn spawn_runtime_with_clock(args: &[String], clock: Arc<dyn Clock>) -> InProcess {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::CurrentThread,
        "spawn_runtime needs #[tokio::test] (current thread): its telemetry is this thread's"
    );
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let argv = [
        "dofs",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "serve",
        "--addr",
        "127.0.0.1:0",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).unwrap();
    let CliCommand::Serve(serve) = cli.command else {
        unreachable!("parsed a serve command line")
    };
    let mut config = serve.into_config(&cli.data_dir).unwrap();
    config.log_level = std::env::var("TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let logs = Capture::new();
    let mut guard = None;
    let runtime = Runtime::build(config, clock, |telemetry| {
        let (telemetry, scope) = dofs_telemetry::init_scoped_with_writer(telemetry, logs.clone())?;
        guard = Some(scope);
        Ok(telemetry)
    })
    .await
    .unwrap();
    let served = Served {
        base: runtime.base_url(),
        data_dir,
        client: client(),
    };
    let shutdown = Shutdown::new();
    let db = runtime.db().clone();
    let task = tokio::spawn(runtime.run_until(shutdown.clone()));
    InProcess {
        served,
        shutdown,
        task: Some(task),
        logs,
        db,
        _telemetry: guard.unwrap(),
        _dir: dir,
    }
}

impl InProcess {
    /// The log lines written so far, each parsed (a line that is not one
    /// JSON object fails the test).
    pub fn logs(&self) -> Vec<Value> {
        self.logs.logs()
    }

    pub fn log_tail(&self) -> String {
        let logs = self.logs();
        let start = logs.len().saturating_sub(40);
        let lines: Vec<String> = logs[start..].iter().map(Value::to_string).collect();
        format!("--- dofs log (last lines) ---\n{}", lines.join("\n"))
    }

    /// Stops as SIGTERM would and returns the runtime's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if std::env::var("TEST_LOG").is_ok() {
            eprintln!("{}", self.log_tail());
        }
        self.shutdown.trigger();
    }
}

/// Settings that keep the tests short.
pub fn fast_args(failure_rate: f64) -> Vec<String> {
    [
        "--failure-rate",
        &failure_rate.to_string(),
        "--failure-seed",
        "7",
        "--visibility-timeout",
        "300ms",
        "--poll-interval",
        "50ms",
        "--max-receive-count",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_order(&self, body: &Value, idempotency_key: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .post(self.url("/orders"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_order(&self, id: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(&format!("/orders/{id}")))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Submits `n` valid orders and returns their ids.
    pub async fn submit(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let (status, body) = self.post_order(&order_body(i), None).await;
            assert_eq!(status, 202, "POST /orders #{i}: {body}");
            ids.push(body["order_id"].as_str().unwrap().to_owned());
        }
        ids
    }

    /// Polls until every order is FULFILLED, FAILED or REJECTED; at the
    /// deadline, says what is still pending.
    pub async fn poll_terminal(
        &self,
        ids: &[String],
        deadline: Duration,
    ) -> Result<HashMap<String, String>, String> {
        let until = Instant::now() + deadline;
        let mut done = HashMap::new();
        loop {
            for id in ids {
                if done.contains_key(id) {
                    continue;
                }
                let (status, body) = self.get_order(id).await;
                if status == 200 {
                    let s = body["status"].as_str().unwrap_or_default().to_owned();
                    if matches!(s.as_str(), "FULFILLED" | "FAILED" | "REJECTED") {
                        done.insert(id.clone(), s);
                    }
                }
            }
            if done.len() == ids.len() {
                return Ok(done);
            }
            if Instant::now() > until {
                let pending: Vec<_> = ids
                    .iter()
                    .filter(|id| !done.contains_key(*id))
                    .take(5)
                    .collect();
                return Err(format!(
                    "{} of {} orders not terminal after {deadline:?}, e.g. {pending:?}",
                    ids.len() - done.len(),
                    ids.len(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a `dofs` CLI command on this data dir and parses its JSON output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        cli_json(&self.data_dir, args)
    }
}

impl Dofs {
    /// Starts `dofs serve` with a fresh data directory.
    pub fn spawn(args: &[String]) -> Dofs {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut dofs = Self::spawn_in(&data_dir, args);
        dofs._dir = Some(dir);
        dofs
    }

    /// Starts `dofs serve` on an existing data directory (a restart).
    pub fn spawn_in(data_dir: &Path, args: &[String]) -> Dofs {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_extension(format!("{}.log", std::process::id()));
        let level = std::env::var("TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        let (process, _) =
            ServeProcess::start(Path::new(DOFS), data_dir, args, &log, [("RUST_LOG", level)])
                .unwrap_or_else(|e| panic!("{e:#}"));
        Dofs {
            served: Served {
                base: process.url().to_owned(),
                data_dir: data_dir.to_owned(),
                client: client(),
            },
            process: Some(process),
            _dir: None,
        }
    }

    /// Takes ownership of the temporary directory, so that dropping this
    /// handle (e.g. to replace it after a crash) does not delete the data.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    pub fn log_tail(&self) -> String {
        let tail = self
            .process
            .as_ref()
            .map(|p| p.log_tail(40))
            .unwrap_or_default();
        format!("--- dofs log (last lines) ---\n{tail}")
    }

    /// SIGTERM, then waits for the exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut process = self.process.take()?;
        let tail = process.log_tail(40);
        process
            .terminate(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e:#}\n{tail}"))
    }

    /// SIGKILL, no goodbyes (a crash).
    pub fn crash(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
        }
    }
}

impl Drop for Dofs {
    fn drop(&mut self) {
        if std::env::var("TEST_LOG").is_ok() {
            eprintln!("{}", self.log_tail());
        }
        self.crash();
    }
}

/// Runs a `dofs` command on `dofs`'s data dir: whether it succeeded, its
/// stdout and its stderr.
pub fn dofs_text(dofs: &Served, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(&dofs.data_dir)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub fn cli_json(data_dir: &Path, args: &[&str]) -> Value {
    let output = Command::new(DOFS)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dofs {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A valid order; `i` varies the customer so no two are alike.
pub fn order_body(i: usize) -> Value {
    json!({
        "customer_name": format!("Customer {i}"),
        "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}]
    })
}
