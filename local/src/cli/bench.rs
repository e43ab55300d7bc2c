//! `dofs bench`: a load test of `dofs serve` as a client sees it.
//!
//! It starts a `dofs serve` of its own (this same executable, a fresh data
//! directory, failure rate 0 unless told otherwise) or targets one with
//! `--url`, submits a bounded number of orders over HTTP — closed loop at a
//! given concurrency, or open loop at a fixed arrival rate — waits until every
//! accepted order is terminal, and reports:
//!
//! - accepted orders/s (first submit → last `202`) and end-to-end orders/s
//!   (first submit → last order terminal);
//! - latency percentiles of the `POST /orders` and of submit → `FULFILLED`;
//! - errors by kind (HTTP status, connection, timeout, orders that ended
//!   FAILED/REJECTED or never ended);
//! - the server's peak RSS (`VmHWM`), when its pid is known;
//! - with `--restart`: the server is killed with SIGKILL once the run is over
//!   and started again on the same data directory, and the time to its
//!   "listening" line and to its first answered request is reported — the
//!   restart cost of a crash with that many orders on disk.
//!
//! Terminal states are observed in the server's SQLite file (read-only, as
//! `dofs orders` does), not by polling `GET /orders/{id}`: polling every open
//! order over HTTP would add as much load as it measures. The submit →
//! `FULFILLED` time is the order's own `updated_at` (stamped by the server
//! when it became terminal) minus the wall-clock time the request was sent,
//! so the observation interval does not blur it. In open-loop mode latencies
//! start at the *scheduled* send time, so a server that falls behind shows up
//! in the figures instead of slowing the client down (coordinated omission).
//!
//! Percentiles come from the sorted samples (nearest rank): the run is
//! bounded, so keeping every sample is exact and cheap, and a histogram
//! crate would add approximation for nothing.
//!
//! Loopback only: `--url` must name 127.0.0.0/8, ::1 or localhost, so a
//! benchmark cannot be pointed at someone else's server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::{Args, Parser as _};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::serve_process::ServeProcess;
use crate::cli::parse_duration;
use crate::runtime::Runtime;
use crate::services::dynamodb::{status_counts, terminal_orders};
use crate::shutdown::Shutdown;
use crate::store::Db;

/// Most orders one run may submit.
pub const MAX_ORDERS: usize = 1_000_000;

/// `dofs bench` settings.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Orders to submit.
    #[arg(long, default_value_t = 2_000)]
    pub orders: usize,
    /// Requests in flight at once (closed loop); with `--rate`, the most in
    /// flight before sends start to lag their schedule.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Fixed arrival rate in orders/s (open loop) instead of a closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A running `dofs serve` to target (loopback only); its data directory
    /// is the global `--data-dir`. Without it, bench starts its own server
    /// on a fresh temporary data directory.
    #[arg(long)]
    pub url: Option<String>,
    /// The pid of the `--url` server, to report its peak RSS.
    #[arg(long, requires = "url")]
    pub server_pid: Option<u32>,
    /// Upper bound on the whole run (submit and wait for terminal states).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// `--failure-rate` of the server bench starts.
    #[arg(long, default_value_t = 0.0, conflicts_with = "url")]
    pub failure_rate: f64,
    /// More `dofs serve` arguments for the server bench starts, e.g.
    /// `--serve-arg=--pollers=4` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true, conflicts_with = "url")]
    pub serve_args: Vec<String>,
    /// Before measuring the disk per order, wait (up to 15 s) for the
    /// server's compaction to pack what the run left: the steady state of
    /// a long-running server.
    #[arg(long)]
    pub disk_settle: bool,
    /// After the run, kill the server (SIGKILL) and time its restart on the
    /// same data directory.
    #[arg(long, conflicts_with = "url")]
    pub restart: bool,
    /// Run the server inside the bench process ([`crate::runtime::Runtime`])
    /// instead of as a child `dofs serve`. No restart then, and the peak RSS
    /// is the whole process's, the client's included.
    #[arg(long, conflicts_with_all = ["url", "restart"])]
    pub in_process: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples`; `None` when empty.
    pub fn of(samples: &[Duration]) -> Option<Percentiles> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[index.clamp(1, ms.len()) - 1]
        };
        Some(Percentiles {
            count: ms.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: ms[ms.len() - 1],
            mean: ms.iter().sum::<f64>() / ms.len() as f64,
        })
    }
}

/// The restart measurement.
#[derive(Debug, Clone, Serialize)]
pub struct RestartReport {
    /// Orders in the data directory when the server was killed.
    pub orders_in_data_dir: u64,
    /// Process start → "dofs listening on …".
    pub to_listening_ms: f64,
    /// Process start → first `GET /orders/{id}` answered 200.
    pub to_first_response_ms: f64,
}

/// What `dofs bench` found.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub url: String,
    /// Whether bench started the server as a child process.
    pub spawned_server: bool,
    /// Whether the server ran inside the bench process.
    pub in_process: bool,
    pub mode: &'static str,
    pub concurrency: usize,
    pub rate: Option<f64>,
    pub submitted: usize,
    pub accepted: usize,
    /// Terminal orders by status.
    pub terminal: BTreeMap<String, usize>,
    /// Accepted orders that were not terminal when the run ended.
    pub not_terminal: usize,
    pub accepted_per_s: f64,
    pub end_to_end_per_s: f64,
    /// Of the requests the server answered (any status): a request that got
    /// no answer is an error, not a latency.
    pub post_latency_ms: Option<Percentiles>,
    pub submit_to_fulfilled_ms: Option<Percentiles>,
    /// Problems by kind: `http_<status>`, `connect`, `timeout`, `request`,
    /// `bad_response`, `order_failed`, `order_rejected`, `not_terminal`.
    pub errors: BTreeMap<String, usize>,
    pub server_peak_rss_kib: Option<u64>,
    /// The data directory's size once every order was terminal (database,
    /// WAL and all).
    pub data_dir_bytes: Option<u64>,
    /// The database's pages in use (the free ones are filled before the
    /// file grows), divided by the orders stored: what each order adds.
    pub bytes_per_order: Option<f64>,
    /// Whether compaction had packed everything it would before the disk
    /// was measured (`--disk-settle`).
    pub disk_settled: bool,
    pub duration_s: f64,
    pub timed_out: bool,
    pub restart: Option<RestartReport>,
}

/// Whether `url` is `http://` on a loopback host.
pub fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url:?}: only http:// URLs are benchmarked"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("{url:?} is not a loopback address: dofs bench only targets this machine");
    }
    Ok(())
}

/// Peak resident set size of `pid` in KiB (`VmHWM`); Linux only.
#[cfg(target_os = "linux")]
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let pid = i32::try_from(pid).ok()?;
    procfs::process::Process::new(pid)
        .ok()?
        .status()
        .ok()?
        .vmhwm
}

/// Peak resident set size: not read outside Linux.
#[cfg(not(target_os = "linux"))]
pub fn peak_rss_kib(_pid: u32) -> Option<u64> {
    None
}

/// The server a run targets.
enum Target {
    /// `--url`: someone else's.
    External,
    /// A `dofs serve` child.
    Spawned(Server),
    /// A runtime in this process.
    InProcess(InProcessServer),
}

/// A [`Runtime`] bench started in its own process; stopped when dropped.
struct InProcessServer {
    url: String,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    /// Builds the runtime on a fresh data directory in `dir` with the
    /// arguments a spawned server would get, its log in `data.log`.
    async fn start(dir: tempfile::TempDir, args: &BenchArgs) -> anyhow::Result<Self> {
        let data_dir = dir.path().join("data");
        let argv = ["dofs", "serve", "--addr", "127.0.0.1:0"]
            .into_iter()
            .map(str::to_owned)
            .chain(["--failure-rate".to_owned(), args.failure_rate.to_string()])
            .chain(args.serve_args.iter().cloned());
        let serve = match super::Cli::try_parse_from(argv)?.command {
            super::Command::Serve(serve) => serve,
            _ => bail!("--serve-arg did not parse as dofs serve arguments"),
        };
        let log_path = data_dir.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let runtime = Runtime::build(
            serve.into_config(&data_dir)?,
            Arc::new(dofs_core::SystemClock),
            move |config| dofs_telemetry::init_with_writer(config, std::sync::Mutex::new(log)),
        )
        .await?;
        let url = runtime.base_url();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(runtime.run_until(shutdown.clone()));
        Ok(Self {
            url,
            shutdown,
            task,
            _dir: dir,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.trigger();
        self.task.await?
    }
}

/// The `dofs serve` child bench started, with its temporary directory.
struct Server {
    process: ServeProcess,
    /// Kept alive so the directory outlives the server.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `dofs serve` on `data_dir` and waits for its address line;
    /// returns the server and how long that took.
    fn start(data_dir: &Path, args: &BenchArgs) -> anyhow::Result<(Server, Duration)> {
        let exe = std::env::current_exe().context("cannot find the dofs executable")?;
        let mut serve_args = vec!["--failure-rate".to_owned(), args.failure_rate.to_string()];
        serve_args.extend(args.serve_args.iter().cloned());
        let log = data_dir.with_extension("log");
        let no_env: [(&str, &str); 0] = [];
        let (process, elapsed) = ServeProcess::start(&exe, data_dir, &serve_args, &log, no_env)?;
        Ok((
            Server {
                process,
                _dir: None,
            },
            elapsed,
        ))
    }

    fn url(&self) -> String {
        self.process.url().to_owned()
    }
}

/// One submitted order.
struct Submission {
    /// When the request was sent (open loop: scheduled), wall clock.
    sent_at: SystemTime,
    order_id: Option<String>,
}

#[derive(Default)]
struct Shared {
    submissions: Vec<Submission>,
    post_latencies: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    last_accept: Option<Instant>,
}

fn order_body(i: usize) -> String {
    json!({
        "customer_name": format!("Bench Customer {i}"),
        "items": [
            {"sku": format!("SKU-{}", i % 97), "quantity": 1 + (i % 3), "unit_price": "9.99"},
            {"sku": "SKU-BENCH", "quantity": 2, "unit_price": "0.50"},
        ],
    })
    .to_string()
}

fn classify(err: &reqwest::Error) -> &'static str {
    if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else {
        "request"
    }
}

async fn submit_one(
    client: &reqwest::Client,
    url: &str,
    i: usize,
    sent_at: SystemTime,
    started: Instant,
    shared: &Mutex<Shared>,
) {
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .body(order_body(i))
        .send()
        .await;
    let outcome: Result<String, String> = match result {
        Err(err) => Err(classify(&err).to_owned()),
        Ok(response) if response.status().as_u16() == 202 => match response.json::<Value>().await {
            Ok(body) => body["order_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "bad_response".to_owned()),
            Err(err) => Err(classify(&err).to_owned()),
        },
        Ok(response) => Err(format!("http_{}", response.status().as_u16())),
    };
    let latency = started.elapsed();
    // Only a request the server answered has a latency: a refused
    // connection, a timeout or an answer broken off measures the client
    // and the network, not the server.
    let answered = !matches!(&outcome, Err(kind) if TRANSPORT_ERRORS.contains(&kind.as_str()));
    let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
    if answered {
        shared.post_latencies.push(latency);
    }
    match outcome {
        Ok(order_id) => {
            shared.last_accept = Some(Instant::now());
            shared.submissions.push(Submission {
                sent_at,
                order_id: Some(order_id),
            });
        }
        Err(kind) => {
            *shared.errors.entry(kind).or_default() += 1;
            shared.submissions.push(Submission {
                sent_at,
                order_id: None,
            });
        }
    }
}

/// Terminal orders seen so far: id → (status, when it became terminal).
type Terminal = HashMap<String, (String, DateTime<Utc>)>;

/// Reads the terminal orders of the data directory that are in `wanted`
/// and not yet in `seen` (a terminal order never changes again, so it is
/// parsed once).
fn read_terminal(
    data_dir: &Path,
    wanted: &HashSet<String>,
    seen: &Terminal,
) -> anyhow::Result<Terminal> {
    let db = Db::open_read_only(data_dir).with_context(|| {
        format!(
            "cannot read the server's data directory {}",
            data_dir.display()
        )
    })?;
    let found = terminal_orders(db.conn(), |id| {
        wanted.contains(id) && !seen.contains_key(id)
    })?;
    Ok(found
        .into_iter()
        .map(|o| (o.order_id, (o.status.to_string(), o.at)))
        .collect())
}

/// Bytes of the regular files directly in `dir` (the database, its WAL and
/// shared-memory file, the log).
fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// The bytes of the database's pages that hold data.
fn database_bytes_in_use(data_dir: &Path) -> anyhow::Result<u64> {
    let db = Db::open_read_only(data_dir)?;
    let pragma = |name: &str| -> anyhow::Result<i64> {
        Ok(db
            .conn()
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    let in_use = pragma("page_count")? - pragma("freelist_count")?;
    Ok(u64::try_from(in_use * pragma("page_size")?)?)
}

/// Waits until nothing is left for compaction to pack (no history rows of
/// a closed execution, no span rows but trace roots), up to the quiet time
/// of spans and a margin; returns whether it got there.
async fn wait_compacted(data_dir: &Path) -> bool {
    let bound = crate::services::compaction::SPAN_QUIET + Duration::from_secs(10);
    let started = Instant::now();
    while started.elapsed() < bound {
        let left = Db::open_read_only(data_dir)
            .and_then(|db| crate::services::compaction::backlog(db.conn()));
        if left.is_ok_and(|n| n == 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

fn count_orders(data_dir: &Path) -> anyhow::Result<u64> {
    let db = Db::open_read_only(data_dir)?;
    Ok(status_counts(db.conn())?.values().sum())
}

fn progress_bars(
    orders: usize,
) -> (
    indicatif::MultiProgress,
    indicatif::ProgressBar,
    indicatif::ProgressBar,
) {
    let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>9} [{bar:40}] {pos}/{len} {per_sec} {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let submitted = multi.add(indicatif::ProgressBar::new(orders as u64));
    submitted.set_style(style.clone());
    submitted.set_prefix("submitted");
    let terminal = multi.add(indicatif::ProgressBar::new(orders as u64));
    terminal.set_style(style);
    terminal.set_prefix("terminal");
    (multi, submitted, terminal)
}

/// Runs the benchmark; `data_dir` is the `--url` server's data directory.
pub async fn run(data_dir: &Path, args: BenchArgs) -> anyhow::Result<BenchReport> {
    validate(&args)?;
    let (mut target, url, data_dir) = start_target(data_dir, &args).await?;
    let server_pid = match &target {
        Target::External => args.server_pid,
        Target::Spawned(server) => server.process.pid(),
        Target::InProcess(_) => Some(std::process::id()),
    };
    let (_multi, submitted_bar, terminal_bar) = progress_bars(args.orders);
    let clocks = Clocks::start(args.timeout);
    let shared = Arc::new(Mutex::new(Shared::default()));
    let submit_timed_out = submit_all(&url, &args, &clocks, &shared, &submitted_bar).await?;
    let accepted: HashSet<String> = {
        let shared = shared.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .submissions
            .iter()
            .filter_map(|s| s.order_id.clone())
            .collect()
    };
    terminal_bar.set_length(accepted.len() as u64);
    let accepted_count = accepted.len();
    // Nothing accepted, nothing to wait for (and `--url`'s data directory
    // may not even exist: the report, not that, is what to show).
    let (terminal, wait_timed_out) = if accepted.is_empty() {
        terminal_bar.finish();
        (Terminal::new(), false)
    } else {
        wait_terminal(&data_dir, Arc::new(accepted), &clocks, &terminal_bar).await?
    };
    let duration = clocks.started.elapsed();
    let server_peak_rss_kib = server_pid.and_then(peak_rss_kib);
    let disk_settled = args.disk_settle && wait_compacted(&data_dir).await;
    let data_dir_bytes = dir_size(&data_dir).ok();
    let database_bytes = database_bytes_in_use(&data_dir).ok();
    let stored_orders = count_orders(&data_dir).ok();

    let restart = match (&mut target, args.restart) {
        (Target::Spawned(running), true) => {
            Some(measure_restart(running, &data_dir, &args, &terminal).await?)
        }
        _ => None,
    };
    let in_process = matches!(target, Target::InProcess(_));
    if let Target::InProcess(server) = target {
        server
            .stop()
            .await
            .context("the in-process server failed")?;
    }
    let shared = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    let mut report = summarise(shared, &terminal, accepted_count, &clocks);
    report.url = url;
    report.spawned_server = args.url.is_none() && !in_process;
    report.in_process = in_process;
    report.mode = if args.rate.is_some() {
        "fixed_rate"
    } else {
        "concurrency"
    };
    report.concurrency = args.concurrency;
    report.rate = args.rate;
    report.server_peak_rss_kib = server_peak_rss_kib;
    report.data_dir_bytes = data_dir_bytes;
    report.disk_settled = disk_settled;
    report.bytes_per_order = match (database_bytes, stored_orders) {
        (Some(bytes), Some(orders)) if orders > 0 => Some(bytes as f64 / orders as f64),
        _ => None,
    };
    report.duration_s = duration.as_secs_f64();
    report.timed_out = submit_timed_out || wait_timed_out;
    report.restart = restart;
    Ok(report)
}

/// The settings clap cannot check.
fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    if args.orders == 0 || args.orders > MAX_ORDERS {
        bail!("--orders must be between 1 and {MAX_ORDERS}");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if let Some(rate) = args.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of orders per second");
        }
    }
    Ok(())
}

/// When the run started (monotonic and wall clock) and when it must end.
struct Clocks {
    started: Instant,
    started_wall: SystemTime,
    deadline: Instant,
}

impl Clocks {
    fn start(timeout: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            started_wall: SystemTime::now(),
            deadline: started + timeout,
        }
    }
}

/// Submits every order, closed loop (at most `concurrency` in flight) or
/// open loop (at `rate`); returns whether the deadline cut it short.
async fn submit_all(
    url: &str,
    args: &BenchArgs,
    clocks: &Clocks,
    shared: &Arc<Mutex<Shared>>,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let post_url = format!("{url}/orders");
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut timed_out = false;
    for i in 0..args.orders {
        let scheduled = args
            .rate
            .map(|rate| clocks.started + Duration::from_secs_f64(i as f64 / rate));
        if let Some(at) = scheduled {
            tokio::time::sleep_until(at.into()).await;
        }
        let remaining = clocks.deadline.saturating_duration_since(Instant::now());
        let Ok(Ok(permit)) =
            tokio::time::timeout(remaining, Arc::clone(&limit).acquire_owned()).await
        else {
            timed_out = true;
            break;
        };
        // Open loop: the clock starts when the request was due, not when a
        // slot freed up (see the module doc).
        let (t0, sent_at) = match scheduled {
            Some(at) => (at, clocks.started_wall + at.duration_since(clocks.started)),
            None => (Instant::now(), SystemTime::now()),
        };
        let client = client.clone();
        let post_url = post_url.clone();
        let shared = Arc::clone(shared);
        let bar = bar.clone();
        tasks.spawn(async move {
            submit_one(&client, &post_url, i, sent_at, t0, &shared).await;
            bar.inc(1);
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    bar.finish();
    Ok(timed_out)
}

/// Watches the server's data directory until every accepted order is
/// terminal or the deadline passes; returns what was found and whether the
/// deadline cut it short.
async fn wait_terminal(
    data_dir: &Path,
    accepted: Arc<HashSet<String>>,
    clocks: &Clocks,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<(Terminal, bool)> {
    let mut terminal = Terminal::new();
    let timed_out = loop {
        let found = {
            let (data_dir, accepted) = (data_dir.to_owned(), Arc::clone(&accepted));
            // Only what is new is sent over; the scan itself reads the
            // index of terminal statuses.
            let known = std::mem::take(&mut terminal);
            let (found, known) = tokio::task::spawn_blocking(move || {
                read_terminal(&data_dir, &accepted, &known).map(|found| (found, known))
            })
            .await??;
            terminal = known;
            found
        };
        terminal.extend(found);
        bar.set_position(terminal.len() as u64);
        if terminal.len() == accepted.len() {
            break false;
        }
        if Instant::now() >= clocks.deadline {
            break true;
        }
        // Figures come from the server's timestamps, so a slower look
        // changes none of them; it only keeps this scan off the CPU the
        // server is being measured on.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish();
    Ok((terminal, timed_out))
}

/// The figures of a run, from what the client saw and the terminal
/// states the server stamped; the caller fills in the run's settings.
fn summarise(shared: Shared, terminal: &Terminal, accepted: usize, clocks: &Clocks) -> BenchReport {
    let mut errors = shared.errors;
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut to_fulfilled = Vec::new();
    let mut last_terminal: Option<DateTime<Utc>> = None;
    for submission in &shared.submissions {
        let Some(id) = &submission.order_id else {
            continue;
        };
        let Some((status, at)) = terminal.get(id) else {
            continue;
        };
        *by_status.entry(status.clone()).or_default() += 1;
        last_terminal = Some(last_terminal.map_or(*at, |last| last.max(*at)));
        match status.as_str() {
            "FULFILLED" => {
                let sent: DateTime<Utc> = submission.sent_at.into();
                // Clamped: the server's stamp and ours come from the same
                // clock, but a step of it must not give a negative latency.
                let ms = (*at - sent).num_microseconds().unwrap_or(0).max(0);
                to_fulfilled.push(Duration::from_micros(ms as u64));
            }
            "FAILED" => *errors.entry("order_failed".into()).or_default() += 1,
            _ => *errors.entry("order_rejected".into()).or_default() += 1,
        }
    }
    let not_terminal = accepted.saturating_sub(terminal.len());
    if not_terminal > 0 {
        errors.insert("not_terminal".into(), not_terminal);
    }
    let rate_over = |n: usize, span: Duration| {
        if n == 0 || span.is_zero() {
            0.0
        } else {
            n as f64 / span.as_secs_f64()
        }
    };
    let accept_span = shared
        .last_accept
        .map_or(Duration::ZERO, |t| t.duration_since(clocks.started));
    let terminal_span = last_terminal
        .and_then(|t| {
            let started: DateTime<Utc> = clocks.started_wall.into();
            (t - started).to_std().ok()
        })
        .unwrap_or_default();
    BenchReport {
        url: String::new(),
        spawned_server: false,
        in_process: false,
        mode: "concurrency",
        concurrency: 0,
        rate: None,
        submitted: shared.submissions.len(),
        accepted,
        terminal: by_status,
        not_terminal,
        accepted_per_s: rate_over(accepted, accept_span),
        end_to_end_per_s: rate_over(terminal.len(), terminal_span),
        post_latency_ms: Percentiles::of(&shared.post_latencies),
        submit_to_fulfilled_ms: Percentiles::of(&to_fulfilled),
        errors,
        server_peak_rss_kib: None,
        data_dir_bytes: None,
        bytes_per_order: None,
        disk_settled: false,
        duration_s: 0.0,
        timed_out: false,
        restart: None,
    }
}

/// The server to load: `--url`'s, or one bench starts on a fresh temporary
/// data directory (a child process, or in this process).
async fn start_target(
    data_dir: &Path,
    args: &BenchArgs,
) -> anyhow::Result<(Target, String, PathBuf)> {
    if let Some(url) = &args.url {
        check_loopback(url)?;
        return Ok((
            Target::External,
            url.trim_end_matches('/').to_owned(),
            data_dir.to_owned(),
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("dofs-bench-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let data_dir = dir.path().join("data");
    if args.in_process {
        let server = InProcessServer::start(dir, args).await?;
        let url = server.url.clone();
        return Ok((Target::InProcess(server), url, data_dir));
    }
    let (mut server, _) = Server::start(&data_dir, args)?;
    server._dir = Some(dir);
    let url = server.url();
    Ok((Target::Spawned(server), url, data_dir))
}

/// Kills `server` (SIGKILL, as a crash would), starts it again on the same
/// data directory and times it to its address line and first answer.
async fn measure_restart(
    server: &mut Server,
    data_dir: &Path,
    args: &BenchArgs,
    terminal: &Terminal,
) -> anyhow::Result<RestartReport> {
    server.process.kill().context("cannot kill the server")?;
    let orders_in_data_dir = count_orders(data_dir)?;
    let started = Instant::now();
    let (restarted, to_listening) = Server::start(data_dir, args)?;
    let probe = terminal.keys().next().cloned();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let get_url = match &probe {
        Some(id) => format!("{}/orders/{id}", restarted.url()),
        None => format!(
            "{}/orders/00000000-0000-0000-0000-000000000000",
            restarted.url()
        ),
    };
    let wanted = if probe.is_some() { 200 } else { 404 };
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(&get_url).send().await {
            if response.status().as_u16() == wanted {
                break;
            }
        }
        if Instant::now() > until {
            bail!("the restarted server did not answer {get_url} within 60s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let to_first_response = started.elapsed();
    let dir = server._dir.take();
    *server = restarted;
    server._dir = dir;
    Ok(RestartReport {
        orders_in_data_dir,
        to_listening_ms: to_listening.as_secs_f64() * 1e3,
        to_first_response_ms: to_first_response.as_secs_f64() * 1e3,
    })
}

fn fmt_percentiles(p: &Option<Percentiles>) -> String {
    match p {
        Some(p) => format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (n={})",
            p.p50, p.p90, p.p99, p.max, p.count
        ),
        None => "no samples".to_owned(),
    }
}

/// Writes the report as a table.
pub fn write_table(out: &mut impl Write, r: &BenchReport) -> std::io::Result<()> {
    let load = match r.rate {
        Some(rate) => format!("{rate} orders/s (max {} in flight)", r.concurrency),
        None => format!("{} concurrent", r.concurrency),
    };
    let terminal = r
        .terminal
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let errors = if r.errors.is_empty() {
        "none".to_owned()
    } else {
        r.errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rows = [
        (
            "server",
            format!(
                "{}{}",
                r.url,
                if r.spawned_server {
                    " (started by bench)"
                } else {
                    ""
                }
            ),
        ),
        ("load", load),
        (
            "submitted / accepted",
            format!("{} / {}", r.submitted, r.accepted),
        ),
        (
            "terminal",
            if terminal.is_empty() {
                "none".into()
            } else {
                terminal
            },
        ),
        ("accepted orders/s", format!("{:.0}", r.accepted_per_s)),
        ("end-to-end orders/s", format!("{:.0}", r.end_to_end_per_s)),
        ("POST latency ms", fmt_percentiles(&r.post_latency_ms)),
        (
            "submit -> FULFILLED ms",
            fmt_percentiles(&r.submit_to_fulfilled_ms),
        ),
        ("errors", errors),
        (
            "server peak RSS",
            r.server_peak_rss_kib.map_or("unknown".into(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            }),
        ),
        (
            "disk per order",
            match (r.bytes_per_order, r.data_dir_bytes) {
                (Some(per), Some(total)) => format!(
                    "{:.1} KiB{} ({:.1} MiB in the data directory, WAL included)",
                    per / 1024.0,
                    if r.disk_settled {
                        ", compacted"
                    } else {
                        " (--disk-settle waits for compaction)"
                    },
                    total as f64 / (1024.0 * 1024.0)
                ),
                _ => "unknown".into(),
            },
        ),
        (
            "duration",
            format!(
                "{:.2} s{}",
                r.duration_s,
                if r.timed_out { " (TIMED OUT)" } else { "" }
            ),
        ),
    ];
    for (name, value) in rows {
        writeln!(out, "{name:<24} {value}")?;
    }
    if let Some(restart) = &r.restart {
        writeln!(
            out,
            "{:<24} {:.1} ms to listening, {:.1} ms to first answer ({} orders on disk)",
            "restart after SIGKILL",
            restart.to_listening_ms,
            restart.to_first_response_ms,
            restart.orders_in_data_dir
        )?;
    }
    Ok(())
}

/// The error kinds of a request that got no HTTP answer (see [`classify`]).
const TRANSPORT_ERRORS: [&str; 3] = ["connect", "timeout", "request"];

/// `dofs bench`: runs, prints, and fails when an order was lost, a request
/// got no answer (a dead `--url`), nothing was accepted, or the run timed
/// out (so scripts can trust a zero exit).
pub async fn bench(data_dir: &Path, args: BenchArgs) -> anyhow::Result<()> {
    let as_json = args.json;
    let report = run(data_dir, args).await?;
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write_table(&mut out, &report)?;
    }
    out.flush()?;
    let unanswered: usize = TRANSPORT_ERRORS
        .iter()
        .filter_map(|kind| report.errors.get(*kind))
        .sum();
    if report.accepted == 0 || unanswered > 0 {
        bail!(
            "{} of {} order(s) accepted by {}; {unanswered} request(s) got no answer (errors: {:?})",
            report.accepted,
            report.submitted,
            report.url,
            report.errors
        );
    }
    if report.timed_out || report.not_terminal > 0 {
        bail!(
            "{} accepted order(s) not terminal when the run ended{}",
            report.not_terminal,
            if report.timed_out { " (timed out)" } else { "" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert!((p.mean - 50.5).abs() < 1e-9);
        let one = Percentiles::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in [
            "http://127.0.0.1:3000",
            "http://127.1.2.3:80/",
            "http://localhost:3000",
            "http://[::1]:3000",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:3000",
            "http://example.com",
            "https://127.0.0.1:3000",
            "127.0.0.1:3000",
            "http://[2001:db8::1]:80",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn table_names_every_figure() {
        let report = BenchReport {
            url: "http://127.0.0.1:1".into(),
            spawned_server: true,
            in_process: false,
            mode: "concurrency",
            concurrency: 4,
            rate: None,
            submitted: 3,
            accepted: 2,
            terminal: BTreeMap::from([("FULFILLED".into(), 2)]),
            not_terminal: 0,
            accepted_per_s: 10.0,
            end_to_end_per_s: 5.0,
            post_latency_ms: Percentiles::of(&[Duration::from_millis(3)]),
            submit_to_fulfilled_ms: None,
            errors: BTreeMap::from([("http_500".into(), 1)]),
            server_peak_rss_kib: Some(2048),
            data_dir_bytes: Some(3 * 1024 * 1024),
            bytes_per_order: Some(9_216.0),
            disk_settled: true,
            duration_s: 1.0,
            timed_out: false,
            restart: None,
        };
        let mut out = Vec::new();
        write_table(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "3 / 2",
            "FULFILLED 2",
            "http_500 1",
            "2.0 MiB",
            "9.0 KiB, compacted (3.0 MiB in the data directory, WAL included)",
            "no samples",
            "p50 3.00",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
        }
    }
}
