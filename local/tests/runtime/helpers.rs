//! Spawning the real `dofs serve` on a free port with its own data dir, and
//! talking to it over HTTP and the CLI.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const DOFS: &str = env!("CARGO_BIN_EXE_dofs");

/// A running `dofs serve`.
pub struct Dofs {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    log: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub client: reqwest::Client,
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
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(DOFS)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("FAILURE_RATE")
            .env_remove("FAILURE_SEED")
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG_LEVEL").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn dofs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "dofs did not print its address; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let base = line
            .strip_prefix("dofs listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        Dofs {
            child: Some(child),
            base,
            data_dir: data_dir.to_owned(),
            log,
            _dir: None,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Takes ownership of the temporary directory, so that dropping this
    /// handle (e.g. to replace it after a crash) does not delete the data.
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

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

    /// Polls until every order is FULFILLED, FAILED or REJECTED, or panics
    /// at the deadline with what is still pending.
    pub async fn wait_terminal(
        &self,
        ids: &[String],
        deadline: Duration,
    ) -> HashMap<String, String> {
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
                return done;
            }
            if Instant::now() > until {
                let pending: Vec<_> = ids
                    .iter()
                    .filter(|id| !done.contains_key(*id))
                    .take(5)
                    .collect();
                panic!(
                    "{} of {} orders not terminal after {deadline:?}, e.g. {pending:?}\n{}",
                    ids.len() - done.len(),
                    ids.len(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs a `dofs` CLI command on this data dir and parses its JSON output.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        cli_json(&self.data_dir, args)
    }

    /// Everything the server wrote to stderr (its log) so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "--- dofs log (last lines) ---\n{}",
            lines[start..].join("\n")
        )
    }

    /// SIGTERM, then waits for the exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!(
                    "dofs did not stop within 30s of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, no goodbyes (a crash).
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
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
