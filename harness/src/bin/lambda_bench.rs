//! Cold start, memory and package size of the five Rust bootstraps next to
//! a Python 3 + boto3 bootstrap doing the same client setup
//! (`harness/python/bootstrap.py`), measured in the same run on the
//! same machine, under the fake Runtime API with AWS on moto.
//!
//! ```text
//! scripts/package-lambdas.sh            # optional: measure the shipped zips
//! cargo run -p dofs-lambda-harness --release --bin lambda_bench -- [runs]
//! ```
//!
//! `lambda_bench [--runs N] [--invocations N] [--json] [--debug] [--env K=V]... [--only FN]...`
//!
//! Per function and runtime it starts a fresh process `--runs` times (20 by
//! default) and reports the median and max of the cold start (process spawn
//! → first `GET /invocation/next`) and of the first invocation (which pays
//! for the first AWS connection). Then one more process serves
//! `--invocations` warm invocations (1,000 by default): their p50/p99
//! latency, the resident set (`VmRSS`) after invocation 100 and after the
//! last one — the difference is the growth, which must stay about zero —
//! and the peak RSS (`VmHWM`) at the end. The zip is
//! `target/lambda/<fn>/bootstrap.zip` when packaged (its binary is the one
//! measured), else a `lambda-release` build (`--debug`: a debug build, for the shape
//! test only) is measured and the zip column is empty. Last, the ratios
//! Python / Rust. Warm latencies include moto's own time for the AWS call
//! each invocation makes, the same for both runtimes. This prints numbers;
//! it asserts nothing. `--env K=V` (repeatable) adds a variable to every
//! process, last.
//!
//! The cost of telemetry is measured in the same run: every Rust bootstrap
//! is measured twice, as deployed (spans exported to an X-Ray daemon
//! stand-in, a real UDP socket drained between invocations) and with
//! `DOFS_TRACE_EXPORTER=none` (spans still made, nothing translated or
//! sent); the report's `telemetry_cost` gives per function the cold-start
//! difference in ms and the warm p50 overhead in percent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dofs_aws::AwsClients;
use dofs_core::testkit::{sample_order, sample_submission};
use dofs_core::{OrderId, OrderStatus, OrderStore};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile, FUNCTIONS};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::runtime_api::{new_trace_header, Outcome, RuntimeApi};
use dofs_lambda_harness::xray::XrayDaemon;
use dofs_lambda_harness::{target_dir, tools, workspace_root, HarnessError};
use serde::Serialize;
use serde_json::{json, Value};

/// One measured start of one process.
struct Sample {
    cold_start: Duration,
    first_invoke: Duration,
    peak_rss_kib: u64,
}

/// What to run for one function under one runtime.
struct Candidate {
    runtime: &'static str,
    program: PathBuf,
    args: Vec<String>,
    zip_bytes: Option<u64>,
    /// Added to the environment, last.
    env: Vec<(String, String)>,
}

/// The runtime label of the Rust bootstraps with trace export off.
const TRACES_OFF: &str = "rust (traces off)";

/// Median and max of a set of samples (NaN when empty).
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    median: f64,
    max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let max = values.last().copied().unwrap_or(f64::NAN);
        let mid = values.len() / 2;
        let median = if values.is_empty() {
            f64::NAN
        } else if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Spread { median, max }
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The warm process's figures.
#[derive(Debug, Clone, Serialize)]
struct Warm {
    invocations: usize,
    errors: usize,
    /// Event handed in → response posted: what the caller waits for.
    p50_ms: f64,
    p99_ms: f64,
    /// Event handed in → the function's next `/next`: the whole
    /// invocation, as Lambda bills it (work after the response included).
    billed_p50_ms: f64,
    billed_p99_ms: f64,
    rss_at_100_kib: Option<u64>,
    rss_at_end_kib: Option<u64>,
    /// `rss_at_end_kib - rss_at_100_kib`.
    rss_growth_kib: Option<i64>,
    peak_rss_kib: Option<u64>,
}

/// One row: one function under one runtime.
#[derive(Debug, Clone, Serialize)]
struct Row {
    function: &'static str,
    runtime: &'static str,
    zip_bytes: Option<u64>,
    starts: usize,
    cold_start_ms: Spread,
    first_invoke_ms: Spread,
    peak_rss_after_first_kib: Spread,
    warm: Warm,
}

/// Python / Rust for one function.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    function: &'static str,
    cold_start: f64,
    first_invoke: f64,
    warm_p50: f64,
    peak_rss: f64,
}

/// What exporting traces costs one function: the same bootstrap with and
/// without `DOFS_TRACE_EXPORTER=none`, in the same run.
#[derive(Debug, Clone, Serialize)]
struct TelemetryCost {
    function: &'static str,
    cold_start_ms: f64,
    cold_start_traces_off_ms: f64,
    /// `cold_start_ms - cold_start_traces_off_ms` (medians).
    cold_start_delta_ms: f64,
    warm_p50_ms: f64,
    warm_p50_traces_off_ms: f64,
    /// `(warm_p50_ms / warm_p50_traces_off_ms - 1) * 100`.
    warm_p50_overhead_pct: f64,
    /// The same for the billed duration (the export runs after the
    /// response, before the next event).
    billed_p50_ms: f64,
    billed_p50_traces_off_ms: f64,
    billed_p50_overhead_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    host_arch: &'static str,
    zip_arch: String,
    starts_per_row: usize,
    warm_invocations: usize,
    rows: Vec<Row>,
    python_over_rust: Vec<Ratio>,
    telemetry_cost: Vec<TelemetryCost>,
}

/// A fresh event for `function`, with whatever it needs already in moto.
async fn event_for(function: &str, resources: &Resources) -> Result<Value, HarnessError> {
    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let pending = || async {
        let order = sample_order(OrderStatus::Pending);
        store
            .insert(&order)
            .await
            .map_err(|e| HarnessError::Setup(e.chain()))?;
        Ok::<_, HarnessError>(order)
    };
    Ok(match function {
        "api_handler" => events::get_order(OrderId::generate().as_str()),
        "validator" => json!(sample_submission(&OrderId::generate())),
        "order_storage" => {
            json!({"action": "store", "order": sample_order(OrderStatus::Validated)})
        }
        "fulfill_order" => {
            let order = pending().await?;
            let record = SqsRecord::synthetic(json!(order).to_string(), 1);
            events::sqs_event(
                &events::queue_arn_from_url(&resources.order_queue_url),
                &[record],
            )
        }
        _ => {
            let order = pending().await?;
            let record = SqsRecord::synthetic(json!(order).to_string(), 3);
            events::sqs_event(
                &events::queue_arn_from_url(&resources.dead_letter_queue_url),
                &[record],
            )
        }
    })
}

async fn measure_once(
    function: &str,
    candidate: &Candidate,
    env: &[(String, String)],
    resources: &Resources,
    daemon: &XrayDaemon,
) -> Result<Sample, HarnessError> {
    let api = RuntimeApi::start(function).await?;
    let mut full_env = dofs_lambda_harness::function::lambda_env(function, &api.host_port());
    full_env.push(daemon.env());
    full_env.extend(env.iter().cloned());
    full_env.extend(candidate.env.iter().cloned());
    let args: Vec<&str> = candidate.args.iter().map(String::as_str).collect();
    let process = FunctionProcess::spawn(function, &candidate.program, &args, &full_env)?;
    let first_next = api
        .wait_first_next(Duration::from_secs(60))
        .await
        .map_err(|e| HarnessError::Setup(format!("{e}\n{}", process.transcript())))?;
    let cold_start = first_next.saturating_duration_since(process.started_at);
    let event = event_for(function, resources).await?;
    let started = Instant::now();
    api.invoke(event)
        .await
        .map_err(|e| HarnessError::Setup(format!("{e}\n{}", process.transcript())))?;
    let first_invoke = started.elapsed();
    daemon.clear();
    // After the response the process is back in /next, its peak reached.
    let peak_rss_kib = process.peak_rss_kib().unwrap_or(0);
    Ok(Sample {
        cold_start,
        first_invoke,
        peak_rss_kib,
    })
}

/// One process, `invocations` warm invocations after a first one.
async fn measure_warm(
    function: &str,
    candidate: &Candidate,
    env: &[(String, String)],
    resources: &Resources,
    daemon: &XrayDaemon,
    invocations: usize,
) -> Result<Warm, HarnessError> {
    let api = RuntimeApi::start(function).await?;
    let mut full_env = dofs_lambda_harness::function::lambda_env(function, &api.host_port());
    full_env.push(daemon.env());
    full_env.extend(env.iter().cloned());
    full_env.extend(candidate.env.iter().cloned());
    let args: Vec<&str> = candidate.args.iter().map(String::as_str).collect();
    let process = FunctionProcess::spawn(function, &candidate.program, &args, &full_env)?;
    api.wait_first_next(Duration::from_secs(60))
        .await
        .map_err(|e| HarnessError::Setup(format!("{e}\n{}", process.transcript())))?;
    let mut latencies = Vec::with_capacity(invocations);
    let mut billed = Vec::with_capacity(invocations);
    let mut errors = 0;
    let mut rss_at_100 = None;
    for i in 1..=invocations {
        // The event (and what it needs in moto) is made outside the timing.
        let event = event_for(function, resources).await?;
        let started = Instant::now();
        let settled = api
            .invoke_settled(event, &new_trace_header())
            .await
            .map_err(|e| HarnessError::Setup(format!("{e}\n{}", process.transcript())))?;
        let ms = |at: Instant| at.saturating_duration_since(started).as_secs_f64() * 1e3;
        latencies.push(ms(settled.posted_at));
        billed.push(ms(settled.ready_at));
        let outcome = settled.outcome;
        // The daemon's socket is emptied outside the timing.
        daemon.clear();
        if matches!(outcome, Outcome::Error { .. }) {
            errors += 1;
        }
        if i == 100 {
            rss_at_100 = process.rss_kib();
        }
    }
    let rss_at_end = process.rss_kib();
    latencies.sort_by(f64::total_cmp);
    billed.sort_by(f64::total_cmp);
    Ok(Warm {
        invocations,
        errors,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        billed_p50_ms: percentile(&billed, 50.0),
        billed_p99_ms: percentile(&billed, 99.0),
        rss_at_100_kib: rss_at_100,
        rss_at_end_kib: rss_at_end,
        rss_growth_kib: rss_at_100.zip(rss_at_end).map(|(a, b)| b as i64 - a as i64),
        peak_rss_kib: process.peak_rss_kib(),
    })
}

/// The bootstrap inside the packaged zip, extracted to `scratch`, if the
/// zip exists.
fn packaged_bootstrap(
    function: &str,
    scratch: &Path,
) -> Result<Option<(PathBuf, u64)>, HarnessError> {
    let zip = target_dir()
        .join("lambda")
        .join(function)
        .join("bootstrap.zip");
    let Ok(meta) = zip.metadata() else {
        return Ok(None);
    };
    let python = tools::find("python3")
        .ok_or_else(|| HarnessError::Setup("python3 is needed to unpack the zips".into()))?;
    let dir = scratch.join(function);
    std::fs::create_dir_all(&dir).map_err(HarnessError::io("creating the scratch dir"))?;
    let status = std::process::Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(&zip)
        .arg(&dir)
        .status()
        .map_err(HarnessError::io("unpacking a zip"))?;
    if !status.success() {
        return Err(HarnessError::Setup(format!(
            "could not unpack {}",
            zip.display()
        )));
    }
    let bootstrap = dir.join("bootstrap");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
        .map_err(HarnessError::io("making the bootstrap executable"))?;
    Ok(Some((bootstrap, meta.len())))
}

/// The Python handler zipped as it would be deployed (boto3 comes with the
/// managed runtime, so it is not in the zip).
fn python_zip_bytes(scratch: &Path, python: &Path, handler: &Path) -> Option<u64> {
    let zip = scratch.join("python-bootstrap.zip");
    let status = std::process::Command::new(python)
        .args(["-m", "zipfile", "-c"])
        .arg(&zip)
        .arg(handler)
        .status()
        .ok()?;
    status
        .success()
        .then(|| zip.metadata().ok().map(|m| m.len()))?
}

/// Command-line options.
struct Options {
    runs: usize,
    invocations: usize,
    json: bool,
    profile: Profile,
    /// `--env K=V`: appended to every process's environment.
    extra_env: Vec<(String, String)>,
    /// `--only FN` (repeatable): measure these functions alone.
    only: Vec<String>,
}

async fn run(options: &Options) -> Result<Report, HarnessError> {
    let Some(moto_bin) = tools::find("moto_server") else {
        return Err(HarnessError::Setup(
            "moto_server not found (run `. scripts/tools.sh`)".into(),
        ));
    };
    let python = tools::find("python3")
        .ok_or_else(|| HarnessError::Setup("python3 (with boto3) not found".into()))?;
    let moto = Moto::start(&moto_bin).await?;
    let resources = moto.provision().await?;
    let daemon = XrayDaemon::start()?;
    let mut env = moto.env();
    env.extend(resources.function_env());
    env.push(("FAILURE_RATE".into(), "0".into()));
    env.extend(options.extra_env.iter().cloned());
    for (key, value) in &options.extra_env {
        eprintln!("extra environment: {key}={value}");
    }

    let scratch = std::env::temp_dir().join(format!("dofs-lambda-bench-{}", std::process::id()));
    let handler = workspace_root().join("harness/python/bootstrap.py");
    let python_zip = python_zip_bytes(&scratch_dir(&scratch)?, &python, &handler);
    let mut build_dir = None;
    let zip_arch = std::fs::read_to_string(target_dir().join("lambda/ARCH"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_owned());

    let mut rows = Vec::new();
    for function in FUNCTIONS
        .into_iter()
        .filter(|f| options.only.is_empty() || options.only.iter().any(|o| o == f))
    {
        let packaged = if options.profile == Profile::Release {
            packaged_bootstrap(function, &scratch)?
        } else {
            None
        };
        let rust = match packaged {
            Some((program, bytes)) => Candidate {
                runtime: "rust (zip)",
                program,
                args: vec![],
                zip_bytes: Some(bytes),
                env: vec![],
            },
            None => {
                let dir = match &build_dir {
                    Some(dir) => dir,
                    None => build_dir.insert(build_bootstraps(options.profile)?),
                };
                Candidate {
                    runtime: match options.profile {
                        Profile::Release => "rust (lambda-release)",
                        Profile::Debug => "rust (debug)",
                    },
                    program: dir.join(function),
                    args: vec![],
                    zip_bytes: None,
                    env: vec![],
                }
            }
        };
        let rust_off = Candidate {
            runtime: TRACES_OFF,
            program: rust.program.clone(),
            args: vec![],
            zip_bytes: rust.zip_bytes,
            env: vec![("DOFS_TRACE_EXPORTER".to_owned(), "none".to_owned())],
        };
        let py = Candidate {
            runtime: "python+boto3",
            program: python.clone(),
            args: vec![handler.display().to_string(), function.to_owned()],
            zip_bytes: python_zip,
            env: vec![],
        };
        for candidate in [&rust, &rust_off, &py] {
            let mut samples = Vec::new();
            for _ in 0..options.runs {
                samples.push(measure_once(function, candidate, &env, &resources, &daemon).await?);
            }
            let warm = measure_warm(
                function,
                candidate,
                &env,
                &resources,
                &daemon,
                options.invocations,
            )
            .await?;
            let spread = |f: &dyn Fn(&Sample) -> f64| Spread::of(samples.iter().map(f).collect());
            rows.push(Row {
                function,
                runtime: candidate.runtime,
                zip_bytes: candidate.zip_bytes,
                starts: samples.len(),
                cold_start_ms: spread(&|s| s.cold_start.as_secs_f64() * 1e3),
                first_invoke_ms: spread(&|s| s.first_invoke.as_secs_f64() * 1e3),
                peak_rss_after_first_kib: spread(&|s| s.peak_rss_kib as f64),
                warm,
            });
            if !options.json {
                eprintln!("measured {function} on {}", candidate.runtime);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let python_over_rust = rows
        .chunks(3)
        .filter_map(|group| match group {
            [rust, _, py] => Some(Ratio {
                function: rust.function,
                cold_start: py.cold_start_ms.median / rust.cold_start_ms.median,
                first_invoke: py.first_invoke_ms.median / rust.first_invoke_ms.median,
                warm_p50: py.warm.p50_ms / rust.warm.p50_ms,
                peak_rss: py.warm.peak_rss_kib.unwrap_or(0) as f64
                    / rust.warm.peak_rss_kib.unwrap_or(0) as f64,
            }),
            _ => None,
        })
        .collect();
    let telemetry_cost = rows
        .chunks(3)
        .filter_map(|group| match group {
            [on, off, _] => Some(TelemetryCost {
                function: on.function,
                cold_start_ms: on.cold_start_ms.median,
                cold_start_traces_off_ms: off.cold_start_ms.median,
                cold_start_delta_ms: on.cold_start_ms.median - off.cold_start_ms.median,
                warm_p50_ms: on.warm.p50_ms,
                warm_p50_traces_off_ms: off.warm.p50_ms,
                warm_p50_overhead_pct: (on.warm.p50_ms / off.warm.p50_ms - 1.0) * 100.0,
                billed_p50_ms: on.warm.billed_p50_ms,
                billed_p50_traces_off_ms: off.warm.billed_p50_ms,
                billed_p50_overhead_pct: (on.warm.billed_p50_ms / off.warm.billed_p50_ms - 1.0)
                    * 100.0,
            }),
            _ => None,
        })
        .collect();
    Ok(Report {
        host_arch: std::env::consts::ARCH,
        zip_arch,
        starts_per_row: options.runs,
        warm_invocations: options.invocations,
        rows,
        python_over_rust,
        telemetry_cost,
    })
}

fn print_table(report: &Report) {
    println!(
        "{} cold starts per row (median / max), {} warm invocations on one more process; host {}, zips for {}",
        report.starts_per_row, report.warm_invocations, report.host_arch, report.zip_arch
    );
    println!(
        "{:<14} {:<21} {:>8} {:>15} {:>15} {:>15} {:>13} {:>10} {:>12}",
        "function",
        "runtime",
        "zip KiB",
        "cold start ms",
        "1st invoke ms",
        "warm p50/p99",
        "peak RSS MiB",
        "RSS +KiB",
        "(100->end)"
    );
    let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    for row in &report.rows {
        let zip = row
            .zip_bytes
            .map_or("-".to_owned(), |b| format!("{:.0}", b as f64 / 1024.0));
        println!(
            "{:<14} {:<21} {:>8} {:>15} {:>15} {:>15} {:>13} {:>10} {:>12}",
            row.function,
            row.runtime,
            zip,
            format!(
                "{:.1} / {:.1}",
                row.cold_start_ms.median, row.cold_start_ms.max
            ),
            format!(
                "{:.1} / {:.1}",
                row.first_invoke_ms.median, row.first_invoke_ms.max
            ),
            format!("{:.2} / {:.2}", row.warm.p50_ms, row.warm.p99_ms),
            row.warm
                .peak_rss_kib
                .map_or("-".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
            row.warm
                .rss_growth_kib
                .map_or("-".to_owned(), |g| g.to_string()),
            format!(
                "{}->{}",
                kib(row.warm.rss_at_100_kib),
                kib(row.warm.rss_at_end_kib)
            ),
        );
    }
    println!(
        "telemetry (X-Ray export on vs DOFS_TRACE_EXPORTER=none, same run; medians; warm p50 to the response, billed p50 to the next /next):"
    );
    for t in &report.telemetry_cost {
        println!(
            "  {:<14} cold start {:>6.2} vs {:>6.2} ms ({:+.2} ms)   warm p50 {:>6.3} vs {:>6.3} ms ({:+.1} %)   billed p50 {:>6.3} vs {:>6.3} ms ({:+.1} %)",
            t.function,
            t.cold_start_ms,
            t.cold_start_traces_off_ms,
            t.cold_start_delta_ms,
            t.warm_p50_ms,
            t.warm_p50_traces_off_ms,
            t.warm_p50_overhead_pct,
            t.billed_p50_ms,
            t.billed_p50_traces_off_ms,
            t.billed_p50_overhead_pct
        );
    }
    println!("python+boto3 / rust (median cold start, median first invoke, warm p50, peak RSS):");
    for r in &report.python_over_rust {
        println!(
            "  {:<14} cold start {:>6.1}x   first invoke {:>5.1}x   warm p50 {:>5.1}x   peak RSS {:>5.1}x",
            r.function, r.cold_start, r.first_invoke, r.warm_p50, r.peak_rss
        );
    }
}

fn scratch_dir(dir: &Path) -> Result<PathBuf, HarnessError> {
    std::fs::create_dir_all(dir).map_err(HarnessError::io("creating the scratch dir"))?;
    Ok(dir.to_path_buf())
}

const USAGE: &str = "usage: lambda_bench [--runs N>0] [--invocations N>=1] [--json] [--debug] [--env K=V]... [--only FN]...";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        runs: 20,
        invocations: 1000,
        json: false,
        profile: Profile::Release,
        extra_env: Vec::new(),
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{name} needs a positive number\n{USAGE}"))
        };
        match arg.as_str() {
            "--runs" => options.runs = number("--runs")?,
            "--invocations" => options.invocations = number("--invocations")?,
            "--json" => options.json = true,
            "--debug" => options.profile = Profile::Debug,
            "--only" => {
                let function = args
                    .next()
                    .filter(|f| FUNCTIONS.contains(&f.as_str()))
                    .ok_or_else(|| format!("--only needs one of {FUNCTIONS:?}\n{USAGE}"))?;
                options.only.push(function);
            }
            "--env" => {
                let pair = args
                    .next()
                    .and_then(|v| {
                        v.split_once('=')
                            .filter(|(k, _)| !k.is_empty())
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    })
                    .ok_or_else(|| format!("--env needs K=V\n{USAGE}"))?;
                options.extra_env.push(pair);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(report) => {
            if options.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(err) => {
                        eprintln!("lambda_bench: {err}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print_table(&report);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("lambda_bench: {err}");
            ExitCode::FAILURE
        }
    }
}
