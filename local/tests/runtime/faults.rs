//! The fault → alarm matrix of docs/runbook.md, one test per row: a real
//! runtime in process with the shared alarms (periods scaled by 0.01, age
//! thresholds by the same factor), a webhook receiving the SNS-shaped
//! notifications, a fault injected with `--fault` and traffic. Exactly the
//! row's alarms reach ALARM, each notification names its runbook section,
//! and once the fault is cleared through the console's faults API they
//! return to OK.

use std::collections::BTreeSet;
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

struct Row {
    faults: &'static [&'static str],
    extra: &'static [&'static str],
    must_alarm: &'static [&'static str],
    orders: usize,
    rejected: usize,
    scans: usize,
}

async fn traffic(dofs: &InProcess, row: &Row) {
    for i in 0..row.orders {
        let (status, body) = dofs.post_order(&order_body(i), None).await;
        assert_eq!(status, 202, "{body}");
    }
    for i in 0..row.rejected {
        // A business rule broken: the same SKU on two lines.
        let line = json!({"sku": "DUP-1", "quantity": 1, "unit_price": "1.00"});
        let body = json!({"customer_name": format!("Rejected {i}"), "items": [line, line]});
        let (status, reply) = dofs.post_order(&body, None).await;
        assert_eq!(status, 202, "{reply}");
    }
    for i in 0..row.scans {
        let response = dofs
            .client
            .get(dofs.url(&format!("/wp-admin/{i}.php")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 404);
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
    args.extend(
        row.extra
            .iter()
            .map(|s| s.replace("{dir}", dir.path().to_str().unwrap())),
    );
    let dofs = spawn_runtime(&args).await;
    traffic(&dofs, &row).await;

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
    // Nothing else fires on the same traffic.
    tokio::time::sleep(SETTLE).await;
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

    // Clearing the fault (as `dofs fault clear` does) brings them back to OK.
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
    let elapsed = started.elapsed();
    eprintln!("fault matrix row {:?}: {elapsed:?}", row.faults);
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

#[tokio::test]
async fn validator_slower_than_its_timeout_fires_workflow_failures() {
    run(Row {
        faults: &["validator=slow"],
        extra: &["--function-timeout", "300ms"],
        must_alarm: &[
            "dofs-validator-lambda-error-rate",
            "dofs-workflow-executions-failed",
            "dofs-orders-failed",
        ],
        orders: 3,
        rejected: 0,
        scans: 0,
    })
    .await;
}
