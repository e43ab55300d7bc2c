//! The fault → alarm matrix of docs/runbook.md, several rows at once: a real
//! runtime in process with the shared alarms (periods scaled by 0.01, age
//! thresholds by the same factor), a webhook receiving the SNS-shaped
//! notifications, a fault injected with `--fault` and traffic. Exactly the
//! row's alarms reach ALARM, each notification names its runbook section,
//! and once the fault is cleared through the console's faults API they
//! return to OK.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::helpers::{fast_args, order_body, spawn_runtime, InProcess};

/// The scale of the alarm periods (and of thresholds that are durations).
const SCALE: f64 = 0.01;

/// Every local alarm name of dashboards/alarms.json.
fn all_alarms() -> BTreeSet<String> {
    let file: Value = serde_json::from_str(dofs_local::definitions::ALARMS_JSON).unwrap();
    let mut names = BTreeSet::new();
    for alarm in file["alarms"].as_array().unwrap() {
        let name = alarm["name"].as_str().unwrap();
        if alarm["scope"] == "function" {
            for f in dofs_local::identity::FunctionName::ALL {
                names.insert(format!("{}-{name}", f.deployed_name()));
            }
        } else {
            names.insert(format!("dofs-{name}"));
        }
    }
    names
}

/// The shared alarms with their age thresholds (seconds) scaled like the
/// periods, so "older than five minutes" is "older than three seconds".
fn scaled_alarms_file(dir: &std::path::Path) -> String {
    let mut file: Value = serde_json::from_str(dofs_local::definitions::ALARMS_JSON).unwrap();
    for alarm in file["alarms"].as_array_mut().unwrap() {
        if alarm["metric_name"] == "ApproximateAgeOfOldestMessage" {
            let t = alarm["threshold"].as_f64().unwrap();
            alarm["threshold"] = json!(t * SCALE);
        }
    }
    let path = dir.join("alarms.json");
    std::fs::write(&path, file.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

type Received = Arc<Mutex<Vec<Value>>>;

/// A webhook on 127.0.0.1:0 keeping every SNS `Message` (checked SNS-shaped).
async fn webhook() -> (String, Received) {
    async fn receive(State(seen): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
        let envelope: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            headers
                .get("x-amz-sns-message-type")
                .and_then(|v| v.to_str().ok()),
            Some("Notification")
        );
        assert_eq!(envelope["Type"], "Notification", "{envelope}");
        let message: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
        seen.lock().unwrap().push(message);
        StatusCode::OK
    }
    let seen: Received = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Alarms whose latest notification is `state`.
fn in_state(seen: &Received, state: &str) -> BTreeSet<String> {
    let mut latest = std::collections::BTreeMap::new();
    for m in seen.lock().unwrap().iter() {
        latest.insert(
            m["AlarmName"].as_str().unwrap().to_owned(),
            m["NewStateValue"].as_str().unwrap().to_owned(),
        );
    }
    latest
        .into_iter()
        .filter(|(_, s)| s == state)
        .map(|(name, _)| name)
        .collect()
}

/// Every alarm that ever went to ALARM.
fn ever_alarmed(seen: &Received) -> BTreeSet<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|m| m["NewStateValue"] == "ALARM")
        .map(|m| m["AlarmName"].as_str().unwrap().to_owned())
        .collect()
}

/// Two of the longest scaled evaluation windows (2 × 5 min → 6 s): after
/// this, an alarm that was going to fire on the traffic so far has fired.
const SETTLE: Duration = Duration::from_secs(7);

/// One row of the matrix.
struct Row {
    faults: &'static [&'static str],
    extra: &'static [&'static str],
    must_alarm: &'static [&'static str],
    /// Every how many orders one breaks a business rule (0: none).
    rejected_every: usize,
    /// Whether scanners probe the API (404s through `$default`).
    scans: bool,
    /// Every how many orders one is invalid (a 400; 0: none).
    invalid_every: usize,
    /// Whether the API accepts the orders (202); else any status goes.
    accepted: bool,
}

impl Row {
    /// A row of valid orders only, all accepted.
    const fn orders(
        faults: &'static [&'static str],
        extra: &'static [&'static str],
        must_alarm: &'static [&'static str],
    ) -> Self {
        Self {
            faults,
            extra,
            must_alarm,
            rejected_every: 0,
            scans: false,
            invalid_every: 0,
            accepted: true,
        }
    }
}

/// The switches of a row's traffic.
struct Traffic {
    /// Ends the traffic.
    stop: Arc<AtomicBool>,
    /// The clients stop sending invalid orders: for a row whose fault is
    /// the clients' own, this is what clearing it means.
    clients_fixed: Arc<AtomicBool>,
    sender: tokio::task::JoinHandle<usize>,
}

/// Traffic as an outage sees it: an order every 200 ms (some rejected,
/// some scans beside) from the start of the row until it ends, so every
/// scaled period has traffic, before, during and after the fault.
fn traffic(dofs: &InProcess, row: &Row) -> Traffic {
    let stop = Arc::new(AtomicBool::new(false));
    let clients_fixed = Arc::new(AtomicBool::new(false));
    let fixed = Arc::clone(&clients_fixed);
    let (client, base) = (dofs.client.clone(), dofs.url(""));
    let (rejected_every, invalid_every, scans, accepted) = (
        row.rejected_every,
        row.invalid_every,
        row.scans,
        row.accepted,
    );
    let stopping = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut sent = 0;
        while !stopping.load(Ordering::Relaxed) {
            let nth = |every: usize| every > 0 && sent % every == every - 1;
            let invalid = !fixed.load(Ordering::Relaxed) && nth(invalid_every);
            let body = if invalid {
                json!({"customer_name": "", "items": []})
            } else if nth(rejected_every) {
                // A business rule broken: the same SKU on two lines.
                let line = json!({"sku": "DUP-1", "quantity": 1, "unit_price": "1.00"});
                json!({"customer_name": format!("Rejected {sent}"), "items": [line, line]})
            } else {
                order_body(sent)
            };
            let response = client
                .post(format!("{base}/orders"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let expected = if invalid { 400 } else { 202 };
            assert!(
                !accepted || response.status().as_u16() == expected,
                "{} for {body}",
                response.status()
            );
            if scans {
                let response = client
                    .get(format!("{base}/wp-admin/{sent}.php"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 404);
            }
            sent += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        sent
    });
    Traffic {
        stop,
        clients_fixed,
        sender: task,
    }
}

/// Runs one row and returns how long it took.
async fn run(row: Row) -> Duration {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (hook, seen) = webhook().await;
    let mut args = fast_args(0.0);
    args.extend(
        [
            "--alarm-period-scale",
            &SCALE.to_string(),
            "--metrics-interval",
            "250ms",
            "--alarm-webhook",
            &hook,
            "--alarms-file",
            &scaled_alarms_file(dir.path()),
        ]
        .map(String::from),
    );
    for fault in row.faults {
        args.extend(["--fault".to_owned(), (*fault).to_owned()]);
    }
    args.extend(row.extra.iter().map(|s| (*s).to_owned()));
    let dofs = spawn_runtime(&args).await;
    let traffic = traffic(&dofs, &row);

    let must: BTreeSet<String> = row.must_alarm.iter().map(|s| (*s).to_owned()).collect();
    assert!(must.is_subset(&all_alarms()), "{must:?} are not all alarms");
    let until = Instant::now() + Duration::from_secs(60);
    while !must.is_subset(&in_state(&seen, "ALARM")) {
        assert!(
            Instant::now() < until,
            "expected {must:?} in ALARM; got {:?}\n{}",
            in_state(&seen, "ALARM"),
            dofs.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing else fires on the same traffic (healthy traffic: for two
    // of the longest windows after the first has filled).
    tokio::time::sleep(SETTLE).await;
    if must.is_empty() {
        tokio::time::sleep(SETTLE).await;
    }
    assert_eq!(ever_alarmed(&seen), must, "exactly the row's alarms");
    for m in seen.lock().unwrap().iter() {
        let name = m["AlarmName"].as_str().unwrap();
        let id = all_alarms_id(name);
        assert!(
            m["AlarmDescription"]
                .as_str()
                .unwrap()
                .contains(&format!("Runbook: docs/runbook.md#{id}.")),
            "{m}"
        );
        assert!(m["AlarmArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:cloudwatch:"));
    }

    // Clearing the fault (as `dofs fault clear` does, or the clients
    // fixing their requests) brings them back to OK, with the traffic
    // going on.
    traffic.clients_fixed.store(true, Ordering::Relaxed);
    let cleared: Value = dofs
        .client
        .delete(dofs.url("/_dofs/api/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["faults"], json!([]));
    let until = Instant::now() + Duration::from_secs(60);
    while !must.is_subset(&in_state(&seen, "OK")) {
        assert!(
            Instant::now() < until,
            "expected {must:?} back to OK; still ALARM: {:?}\n{}",
            in_state(&seen, "ALARM"),
            dofs.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    traffic.stop.store(true, Ordering::Relaxed);
    let sent = traffic.sender.await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "fault matrix row {:?}: {} alarm(s), {sent} orders, {elapsed:.1?}",
        row.faults,
        must.len()
    );
    elapsed
}

/// The alarm id (the file's `name`) of a local alarm name.
fn all_alarms_id(name: &str) -> String {
    let file: Value = serde_json::from_str(dofs_local::definitions::ALARMS_JSON).unwrap();
    file["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .filter(|id| name.ends_with(&format!("-{id}")))
        .max_by_key(String::len)
        .unwrap()
}

/// Rows run at once: a row waits on alarm periods, not on the CPU, and as
/// one test each libtest ran them two at a time on a 2-core machine, 120 s
/// for the matrix instead of the longest row's ~30. Bounded, because
/// eleven runtimes at once on two cores (beside the rest of the suite)
/// slow invocations enough to matter to the rows that time them.
const ROWS_AT_ONCE: usize = 6;

/// The matrix, [`ROWS_AT_ONCE`] rows at a time, each on a thread with its
/// own runtime (the runtime's telemetry is per thread).
#[test]
fn each_fault_fires_exactly_its_alarms_and_they_clear_with_it() {
    let rows: Vec<(&str, Row)> = vec![
        (
            "healthy_traffic_with_rejections_and_scans_fires_nothing",
            Row {
                rejected_every: 5,
                scans: true,
                ..Row::orders(&[], &[], &[])
            },
        ),
        (
            "fulfill_order_table_unavailable_fires_the_failure_rate_and_orders_failed",
            Row::orders(
                &["fulfill_order=unavailable"],
                &[],
                &["dofs-fulfilment-failure-rate", "dofs-orders-failed"],
            ),
        ),
        (
            "dlq_handler_table_unavailable_fires_its_failures_and_dlq_depth",
            Row::orders(
                &["fulfill_order=unavailable", "dlq_handler=unavailable"],
                &[],
                &[
                    "dofs-fulfilment-failure-rate",
                    "dofs-dlq-handler-failures",
                    "dofs-dlq-depth",
                ],
            ),
        ),
        (
            "dlq_handler_failing_fires_its_error_rate_and_dlq_depth",
            Row::orders(
                &["fulfill_order=unavailable", "dlq_handler=failing"],
                &[],
                &[
                    "dofs-fulfilment-failure-rate",
                    "dofs-dlq_handler-lambda-error-rate",
                    "dofs-dlq-depth",
                ],
            ),
        ),
        (
            "validator_slower_than_its_timeout_fires_workflow_failures",
            Row::orders(
                &["validator=slow"],
                &["--function-timeout", "validator=300ms"],
                &[
                    "dofs-validator-lambda-error-rate",
                    "dofs-workflow-executions-failed",
                    "dofs-orders-failed",
                ],
            ),
        ),
        // Throttled deliveries count as receives: after max-receive-count of
        // them an order is dead-lettered without fulfill_order ever running.
        (
            "fulfill_order_throttled_fires_throttles_and_dead_letters_orders",
            Row::orders(
                &["fulfill_order=throttled"],
                &[],
                &["dofs-fulfill_order-lambda-throttles", "dofs-orders-failed"],
            ),
        ),
        // The execution times out (400 ms) while the validator still runs; the
        // invocation goes on to its own timeout (1 s) and errors, as on AWS.
        (
            "workflow_timeout_fires_executions_timed_out",
            Row::orders(
                &["validator=slow"],
                &[
                    "--function-timeout",
                    "validator=1s",
                    "--workflow-timeout",
                    "400ms",
                ],
                &[
                    "dofs-workflow-executions-timed-out",
                    "dofs-validator-lambda-error-rate",
                ],
            ),
        ),
        // Nothing polls the order queue: orders wait, and the oldest one ages
        // past the threshold; re-enabled, the mapping drains the queue.
        (
            "fulfill_order_mapping_disabled_fires_the_order_queue_age",
            Row::orders(
                &["fulfill_order=disabled"],
                &[],
                &["dofs-order-queue-oldest-message-age"],
            ),
        ),
        (
            "dlq_handler_mapping_disabled_fires_the_dlq_age_and_depth",
            Row::orders(
                &["fulfill_order=unavailable", "dlq_handler=disabled"],
                &[],
                &[
                    "dofs-fulfilment-failure-rate",
                    "dofs-dlq-depth",
                    "dofs-dlq-oldest-message-age",
                ],
            ),
        ),
        (
            "clients_sending_invalid_orders_fire_the_api_4xx_rate",
            Row {
                invalid_every: 2,
                ..Row::orders(&[], &[], &["dofs-api-4xx-rate"])
            },
        ),
        (
            "api_handler_failing_fires_api_5xx_and_its_error_rate",
            Row {
                accepted: false,
                ..Row::orders(
                    &["api_handler=failing"],
                    &[],
                    &["dofs-api-5xx", "dofs-api_handler-lambda-error-rate"],
                )
            },
        ),
    ];
    let queue = Arc::new(Mutex::new(rows));
    let workers: Vec<_> = (0..ROWS_AT_ONCE)
        .map(|n| {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("fault-matrix-{n}"))
                .spawn(move || {
                    let mut failed = Vec::new();
                    loop {
                        let Some((name, row)) = queue.lock().unwrap().pop() else {
                            return failed;
                        };
                        // A runtime per row, dropped with whatever a
                        // panicking row left running; the row fails alone.
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                runtime.block_on(run(row))
                            }));
                        match outcome {
                            Ok(took) => eprintln!("row {name}: {:.1} s", took.as_secs_f64()),
                            Err(panic) => {
                                let message = panic
                                    .downcast_ref::<String>()
                                    .map(String::as_str)
                                    .or_else(|| panic.downcast_ref::<&str>().copied())
                                    .unwrap_or("(no message)");
                                failed.push(format!("{name}: {message}"));
                            }
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    let failed: Vec<String> = workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect();
    assert!(failed.is_empty(), "rows failed:\n{}", failed.join("\n\n"));
}
