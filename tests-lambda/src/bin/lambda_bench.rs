//! Cold start, memory and package size of the five Rust bootstraps next to
//! a Python 3 + boto3 bootstrap doing the same client setup
//! (`tests-lambda/python/bootstrap.py`), measured in the same run on the
//! same machine, under the fake Runtime API with AWS on moto.
//!
//! ```text
//! scripts/package-lambdas.sh            # optional: measure the shipped zips
//! cargo run -p dofs-lambda-tests --release --bin lambda_bench -- [runs]
//! ```
//!
//! Per function and runtime it starts a fresh process `runs` times (5 by
//! default) and reports the median and range of: cold start (process spawn
//! → first `GET /invocation/next`), the first invocation (which pays for
//! the first AWS connection), and peak RSS (`VmHWM`) after it. The zip is
//! `target/lambda/<fn>/bootstrap.zip` when packaged (its binary is the one
//! measured), else a release build is measured and the zip column is
//! empty. This prints numbers; it asserts nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dofs_aws::AwsClients;
use dofs_core::testkit::{sample_order, sample_submission};
use dofs_core::{OrderId, OrderStatus, OrderStore};
use dofs_lambda_tests::events::{self, SqsRecord};
use dofs_lambda_tests::function::{build_bootstraps, FunctionProcess, Profile, FUNCTIONS};
use dofs_lambda_tests::moto::{Moto, Resources};
use dofs_lambda_tests::runtime_api::RuntimeApi;
use dofs_lambda_tests::{target_dir, tools, workspace_root, HarnessError};
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
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(|a, b| a.total_cmp(b));
    let min = values.first().copied().unwrap_or(f64::NAN);
    let max = values.last().copied().unwrap_or(f64::NAN);
    let mid = values.len() / 2;
    let median = if values.is_empty() {
        f64::NAN
    } else if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    };
    (median, min, max)
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
) -> Result<Sample, HarnessError> {
    let api = RuntimeApi::start(function).await?;
    let mut full_env = dofs_lambda_tests::function::lambda_env(function, &api.host_port());
    full_env.extend(env.iter().cloned());
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
    // After the response the process is back in /next, its peak reached.
    let peak_rss_kib = process.peak_rss_kib().unwrap_or(0);
    Ok(Sample {
        cold_start,
        first_invoke,
        peak_rss_kib,
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

async fn run(runs: usize) -> Result<(), HarnessError> {
    let Some(moto_bin) = tools::find("moto_server") else {
        return Err(HarnessError::Setup(
            "moto_server not found (run `. scripts/tools.sh`)".into(),
        ));
    };
    let python = tools::find("python3")
        .ok_or_else(|| HarnessError::Setup("python3 (with boto3) not found".into()))?;
    let moto = Moto::start(&moto_bin).await?;
    let resources = moto.provision().await?;
    let mut env = moto.env();
    env.extend(resources.function_env());
    env.push(("FAILURE_RATE".into(), "0".into()));

    let scratch = std::env::temp_dir().join(format!("dofs-lambda-bench-{}", std::process::id()));
    let handler = workspace_root().join("tests-lambda/python/bootstrap.py");
    let python_zip = python_zip_bytes(&scratch_dir(&scratch)?, &python, &handler);
    let mut release_dir = None;
    let arch = std::fs::read_to_string(target_dir().join("lambda/ARCH"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| std::env::consts::ARCH.to_owned());

    println!(
        "{runs} cold starts per row, median (min–max); host {}, zips for {arch}",
        std::env::consts::ARCH
    );
    println!(
        "{:<14} {:<16} {:>10} {:>24} {:>24} {:>22}",
        "function", "runtime", "zip KiB", "cold start ms", "first invoke ms", "peak RSS MiB"
    );
    for function in FUNCTIONS {
        let rust = match packaged_bootstrap(function, &scratch)? {
            Some((program, bytes)) => Candidate {
                runtime: "rust (zip)",
                program,
                args: vec![],
                zip_bytes: Some(bytes),
            },
            None => {
                let dir = match &release_dir {
                    Some(dir) => dir,
                    None => release_dir.insert(build_bootstraps(Profile::Release)?),
                };
                Candidate {
                    runtime: "rust (release)",
                    program: dir.join(function),
                    args: vec![],
                    zip_bytes: None,
                }
            }
        };
        let py = Candidate {
            runtime: "python+boto3",
            program: python.clone(),
            args: vec![handler.display().to_string(), function.to_owned()],
            zip_bytes: python_zip,
        };
        for candidate in [&rust, &py] {
            let mut samples = Vec::new();
            for _ in 0..runs {
                samples.push(measure_once(function, candidate, &env, &resources).await?);
            }
            let cold = median(
                samples
                    .iter()
                    .map(|s| s.cold_start.as_secs_f64() * 1e3)
                    .collect(),
            );
            let first = median(
                samples
                    .iter()
                    .map(|s| s.first_invoke.as_secs_f64() * 1e3)
                    .collect(),
            );
            let rss = median(
                samples
                    .iter()
                    .map(|s| s.peak_rss_kib as f64 / 1024.0)
                    .collect(),
            );
            let zip = candidate
                .zip_bytes
                .map(|b| format!("{:.0}", b as f64 / 1024.0))
                .unwrap_or_else(|| "-".into());
            let cell = |(m, lo, hi): (f64, f64, f64)| format!("{m:.1} ({lo:.1}–{hi:.1})");
            println!(
                "{:<14} {:<16} {:>10} {:>24} {:>24} {:>22}",
                function,
                candidate.runtime,
                zip,
                cell(cold),
                cell(first),
                cell(rss)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn scratch_dir(dir: &Path) -> Result<PathBuf, HarnessError> {
    std::fs::create_dir_all(dir).map_err(HarnessError::io("creating the scratch dir"))?;
    Ok(dir.to_path_buf())
}

#[tokio::main]
async fn main() -> ExitCode {
    let runs = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: lambda_bench [runs > 0]");
            return ExitCode::from(2);
        }
    };
    match run(runs).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lambda_bench: {err}");
            ExitCode::FAILURE
        }
    }
}
