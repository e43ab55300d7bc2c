//! Metrics and alarms in the real `dofs serve`: at failure rate 1 with the
//! DLQ's event source mapping disabled, the DLQ-depth alarm of
//! `dashboards/alarms.json` goes to ALARM and a webhook receives an
//! SNS-shaped notification; after a restart with the mapping enabled the
//! DLQ drains and the alarm returns to OK.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::helpers::{cli_json, fast_args, Dofs, Harness as _};

/// Notifications received: (SNS message type header, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook on 127.0.0.1:0 that records every POST.
async fn webhook() -> (String, Received, tokio::task::JoinHandle<()>) {
    async fn receive(State(seen): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
        let kind = headers
            .get("x-amz-sns-message-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        seen.lock().unwrap().push((kind, body));
        StatusCode::OK
    }
    let seen: Received = Arc::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, server)
}

/// The alarm messages (SNS `Message`, parsed) received so far for `alarm`.
fn messages(seen: &Received, alarm: &str) -> Vec<Value> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|(kind, envelope)| {
            assert_eq!(kind, "Notification");
            assert_eq!(envelope["Type"], "Notification", "{envelope}");
            assert!(
                envelope["TopicArn"]
                    .as_str()
                    .unwrap()
                    .starts_with("arn:aws:sns:"),
                "{envelope}"
            );
            serde_json::from_str::<Value>(envelope["Message"].as_str().unwrap()).unwrap()
        })
        .filter(|m| m["AlarmName"] == alarm)
        .collect()
}

/// Waits for a notification of `alarm` going from `old` to `new`.
async fn wait_for_transition(
    dofs: &Dofs,
    seen: &Received,
    alarm: &str,
    old: Option<&str>,
    state: &str,
) -> Value {
    let until = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(m) = messages(seen, alarm).into_iter().find(|m| {
            m["NewStateValue"] == state && old.is_none_or(|old| m["OldStateValue"] == old)
        }) {
            return m;
        }
        if Instant::now() > until {
            let alarms = dofs.cli_json(&["alarms"]);
            panic!(
                "no {state} notification for {alarm} within 90 s; alarms: {alarms:#}\n{}",
                dofs.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn alarm_args(hook: &str, disable_dlq: bool) -> Vec<String> {
    let mut args = fast_args(1.0);
    args.extend(
        [
            "--alarm-period-scale",
            "0.01",
            "--metrics-interval",
            "250ms",
            "--alarm-webhook",
            hook,
        ]
        .map(String::from),
    );
    if disable_dlq {
        args.extend(["--disable-mapping", "dlq_handler"].map(String::from));
    }
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_depth_alarm_fires_notifies_and_recovers_after_the_dlq_drains() {
    let (hook, seen, _server) = webhook().await;
    let mut dofs = Dofs::spawn(&alarm_args(&hook, true));
    let ids = dofs.submit(3).await;

    let alarm = wait_for_transition(&dofs, &seen, "dofs-dlq-depth", None, "ALARM").await;
    assert_ne!(alarm["OldStateValue"], "ALARM");
    assert!(
        alarm["NewStateReason"]
            .as_str()
            .unwrap()
            .starts_with("Threshold Crossed: 2 out of the last 2 datapoints"),
        "{alarm:#}"
    );
    let trigger = &alarm["Trigger"];
    // Metric math: messages waiting plus in flight (a failing dlq_handler
    // keeps them in flight, invisible to the Visible count alone).
    let metrics = trigger["Metrics"]
        .as_array()
        .expect("a metric-math trigger");
    assert_eq!(
        metrics[0]["Expression"], "visible + in_flight",
        "{trigger:#}"
    );
    let mut names: Vec<&str> = metrics[1..]
        .iter()
        .map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesVisible"
        ]
    );
    for metric in &metrics[1..] {
        let metric = &metric["MetricStat"]["Metric"];
        assert_eq!(metric["Namespace"], "AWS/SQS");
        assert_eq!(metric["Dimensions"][0]["name"], "QueueName");
        assert_eq!(
            metric["Dimensions"][0]["value"],
            dofs_local::identity::DEAD_LETTER_QUEUE
        );
    }
    assert_eq!(trigger["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(trigger["EvaluationPeriods"], 2);
    assert_eq!(trigger["Threshold"], 0.0);
    assert_eq!(trigger["TreatMissingData"], "notBreaching");
    assert!(alarm["StateChangeTime"].as_str().unwrap().len() >= 20);
    assert!(!alarm["AlarmDescription"].as_str().unwrap().is_empty());

    // The CLI and the log agree with the webhook.
    let report = dofs.cli_json(&["alarms"]);
    let state = report["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "dofs-dlq-depth")
        .unwrap();
    assert_eq!(state["state"], "ALARM", "{report:#}");
    assert!(report["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "dofs-dlq-depth" && t["new_state"] == "ALARM"));
    let log = std::fs::read_to_string(
        dofs.data_dir
            .with_extension(format!("{}.log", std::process::id())),
    )
    .unwrap();
    let warned = log.lines().any(|line| {
        let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        v["level"] == "WARN" && line.contains("dofs-dlq-depth") && line.contains("\"ALARM\"")
    });
    assert!(warned, "no WARN log line for the ALARM transition");

    // The metrics the alarms read are there, with AWS names and dimensions,
    // and so are the functions' own EMF metrics.
    let metrics = dofs.cli_json(&["metrics", "--since", "10m"]);
    let has = |ns: &str, name: &str, dim: &str, value: &str| {
        metrics["series"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["namespace"] == ns && s["name"] == name && s["dimensions"][dim] == value)
    };
    assert!(
        has(
            "AWS/Lambda",
            "Invocations",
            "FunctionName",
            "dofs-fulfill_order"
        ),
        "{metrics:#}"
    );
    assert!(has(
        "AWS/Lambda",
        "Errors",
        "FunctionName",
        "dofs-validator"
    ));
    assert!(has("AWS/ApiGateway", "Count", "ApiId", "local"));
    assert!(has("AWS/ApiGateway", "4xx", "ApiId", "local"));
    assert!(has(
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "QueueName",
        dofs_local::identity::ORDER_QUEUE
    ));
    assert!(has(
        "AWS/States",
        "ExecutionsStarted",
        "StateMachineArn",
        "arn:aws:states:local:000000000000:stateMachine:dofs-order-workflow"
    ));
    assert!(
        has("DOFS", "OrdersAccepted", "function", "dofs-api_handler"),
        "{metrics:#}"
    );
    assert!(has(
        "DOFS",
        "FulfillmentFailures",
        "function",
        "dofs-fulfill_order"
    ));
    let accepted = metrics["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["namespace"] == "DOFS" && s["name"] == "OrdersAccepted")
        .unwrap();
    assert_eq!(accepted["window"]["sum"], 3.0, "{accepted}");

    // Enable the mapping again (a restart without the flag): dlq_handler
    // drains the DLQ and the alarm goes back to OK.
    assert_eq!(dofs.terminate(), Some(0));
    let dir = dofs.take_dir();
    let data_dir = dofs.data_dir.clone();
    drop(dofs);
    let dofs = Dofs::spawn_in(&data_dir, &alarm_args(&hook, false));
    let done = dofs.wait_terminal(&ids, Duration::from_secs(60)).await;
    assert!(done.values().all(|s| s == "FAILED"), "{done:?}");
    let ok = wait_for_transition(&dofs, &seen, "dofs-dlq-depth", Some("ALARM"), "OK").await;
    assert!(
        ok["NewStateReason"]
            .as_str()
            .unwrap()
            .contains("were not greater than the threshold"),
        "{ok:#}"
    );
    let report = cli_json(&data_dir, &["alarms"]);
    let transitions: Vec<&Value> = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "dofs-dlq-depth")
        .collect();
    assert!(transitions.len() >= 2, "{report:#}");
    drop(dir);
}
