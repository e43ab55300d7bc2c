//! One order, one trace, end to end on the real `dofs serve`: a fulfilled
//! order, one whose fulfilment fails twice and then succeeds, and one that
//! is dead-lettered each leave exactly one trace, covering every step they
//! passed through, with every parent link resolving inside it; `dofs trace
//! --full` prints it as a waterfall and as JSON, and `dofs trace` as X-Ray
//! would hold it (segments named after the deployed functions, the failed
//! attempts' faults and causes); every log line is JSON and the lines of an
//! order's work carry its order_id and trace_id.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dofs_core::OrderId;
use fulfill_order::FailureSimulator;
use serde_json::Value;

use crate::helpers::{dofs_text, fast_args, order_body, spawn_runtime, Harness as _, InProcess};

const FAILURE_RATE: f64 = 0.5;
/// `fast_args` runs the server with this seed.
const SEED: u64 = 7;

/// What the seeded failure simulator will do to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Fulfilled at the first attempt.
    Fulfilled,
    /// Fails twice, fulfilled at the third (last) receive.
    Retried,
    /// Fails all three receives: dead-lettered.
    DeadLettered,
}

/// An idempotency key whose order id meets `fate` under the server's seed:
/// the simulator is a pure function of (seed, order id, receive count).
fn key_for(fate: Fate) -> String {
    let simulator = FailureSimulator::new(FAILURE_RATE, Some(SEED)).unwrap();
    let fails = |key: &str, attempt: u32| {
        simulator.should_fail(&OrderId::from_idempotency_key(key), attempt)
    };
    (0..100_000)
        .map(|i| format!("trace-{fate:?}-{i}"))
        .find(|key| match fate {
            Fate::Fulfilled => !fails(key, 1),
            Fate::Retried => fails(key, 1) && fails(key, 2) && !fails(key, 3),
            Fate::DeadLettered => fails(key, 1) && fails(key, 2) && fails(key, 3),
        })
        .unwrap()
}

fn names(trace: &Value) -> Vec<String> {
    spans(trace)
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn spans(trace: &Value) -> &Vec<Value> {
    trace["spans"].as_array().unwrap()
}

/// Polls `dofs trace --json` until the trace holds every span in `expected`
/// (a name may be repeated: that many spans) — spans reach the disk a
/// flush interval after they end.
async fn wait_for_trace(dofs: &InProcess, order_id: &str, expected: &[&str]) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, stdout, stderr) = dofs_text(dofs, &["trace", order_id, "--full", "--json"]);
        let trace: Option<Value> = ok.then(|| serde_json::from_str(&stdout).unwrap());
        let missing: Vec<&str> = match &trace {
            Some(trace) => {
                let mut have: HashMap<String, usize> = HashMap::new();
                for name in names(trace) {
                    *have.entry(name).or_default() += 1;
                }
                expected
                    .iter()
                    .filter(|name| {
                        let left = have.entry((**name).to_owned()).or_default();
                        if *left > 0 {
                            *left -= 1;
                            false
                        } else {
                            true
                        }
                    })
                    .copied()
                    .collect()
            }
            None => expected.to_vec(),
        };
        if missing.is_empty() {
            return trace.unwrap();
        }
        if Instant::now() > until {
            panic!(
                "trace of {order_id} still misses {missing:?}\n{}\n{stderr}\n{}",
                trace.map(|t| names(&t).join(", ")).unwrap_or_default(),
                dofs.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The checks every order's trace passes, whatever its fate.
fn assert_one_connected_trace(trace: &Value, order_id: &str, trace_id: &str) {
    assert_eq!(trace["order_id"], order_id);
    assert_eq!(
        trace["trace_id"], trace_id,
        "the trace the API answered with"
    );
    let spans = spans(trace);
    let ids: HashSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    let mut roots = Vec::new();
    for span in spans {
        for key in [
            "trace_id",
            "span_id",
            "name",
            "component",
            "start",
            "end",
            "status",
        ] {
            assert!(span[key].is_string(), "{key} of {span}");
        }
        assert!(span["attributes"].is_object(), "{span}");
        assert_eq!(span["trace_id"], trace_id, "one trace: {span}");
        assert_eq!(span["order_id"], order_id, "{span}");
        assert_eq!(
            span["attributes"]["annotation.order_id"], order_id,
            "every span is searchable by the order: {span}"
        );
        assert!(
            span["start"].as_str().unwrap() <= span["end"].as_str().unwrap(),
            "{span}"
        );
        match span["parent_span_id"].as_str() {
            None => roots.push(span["name"].as_str().unwrap()),
            Some(parent) => assert!(
                ids.contains(parent),
                "parent of {} resolves inside the trace",
                span["name"]
            ),
        }
    }
    assert_eq!(roots, ["api_gateway"], "the gateway is the only root");
}

/// A count attribute: tracing-opentelemetry records unsigned fields (the
/// handlers' `receive_count: u32`) as strings, signed ones as numbers.
fn count(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

fn by_name<'a>(trace: &'a Value, name: &str) -> Vec<&'a Value> {
    spans(trace).iter().filter(|s| s["name"] == name).collect()
}

fn parent_name<'a>(trace: &'a Value, span: &Value) -> &'a str {
    let parent = span["parent_span_id"].as_str().unwrap();
    spans(trace)
        .iter()
        .find(|s| s["span_id"] == parent)
        .and_then(|s| s["name"].as_str())
        .unwrap()
}

const SUBMIT_AND_STORE: &[&str] = &[
    "api_gateway",
    "api_handler",
    "api_handler.submit_order",
    "ValidateOrder",
    "validator",
    "validator.validate",
    "StoreOrder",
    "order_storage",
    "order_storage.insert",
    "EnqueueOrder",
];

#[tokio::test]
async fn fulfilled_retried_and_dead_lettered_orders_each_leave_one_connected_trace() {
    let dofs = spawn_runtime(&fast_args(FAILURE_RATE)).await;
    let mut orders = Vec::new();
    for (i, fate) in [Fate::Fulfilled, Fate::Retried, Fate::DeadLettered]
        .into_iter()
        .enumerate()
    {
        let key = key_for(fate);
        let (status, body) = dofs.post_order(&order_body(i), Some(&key)).await;
        assert_eq!(status, 202, "{body}");
        let order_id = body["order_id"].as_str().unwrap().to_owned();
        let trace_id = body["trace_id"].as_str().unwrap().to_owned();
        orders.push((fate, order_id, trace_id));
    }
    let ids: Vec<String> = orders.iter().map(|(_, id, _)| id.clone()).collect();
    let terminal = dofs.wait_terminal(&ids, Duration::from_secs(60)).await;

    let mut journeys = Vec::new();
    for (fate, order_id, trace_id) in &orders {
        let (attempts, expected_status) = match fate {
            Fate::Fulfilled => (1, "FULFILLED"),
            Fate::Retried => (3, "FULFILLED"),
            Fate::DeadLettered => (3, "FAILED"),
        };
        assert_eq!(terminal[order_id], expected_status, "{fate:?}");
        let mut expected: Vec<&str> = SUBMIT_AND_STORE.to_vec();
        expected.extend(std::iter::repeat_n("fulfill_order.record", attempts));
        if *fate == Fate::DeadLettered {
            expected.push("dlq_handler.record");
        }
        let trace = wait_for_trace(&dofs, order_id, &expected).await;
        assert_one_connected_trace(&trace, order_id, trace_id);

        // The workflow's states hang under api_handler's submit span, and
        // each task's invocation under its state.
        for state in ["ValidateOrder", "StoreOrder", "EnqueueOrder"] {
            let spans = by_name(&trace, state);
            assert_eq!(spans.len(), 1, "{state} ran once");
            let span = spans[0];
            assert_eq!(parent_name(&trace, span), "api_handler.submit_order");
            assert_eq!(span["component"], "step_functions");
            assert_eq!(span["attributes"]["state.type"], "Task");
            assert_eq!(span["attributes"]["attempt"], 1);
            assert_eq!(span["status"], "ok");
        }
        assert_eq!(
            parent_name(&trace, by_name(&trace, "validator")[0]),
            "ValidateOrder"
        );
        assert_eq!(
            parent_name(&trace, by_name(&trace, "order_storage")[0]),
            "StoreOrder"
        );
        assert_eq!(
            parent_name(&trace, by_name(&trace, "api_handler")[0]),
            "api_gateway"
        );

        // Each fulfil attempt: a child of the SQS send (EnqueueOrder), in
        // fulfill_order, with its receive count and, when it failed, why.
        let records = by_name(&trace, "fulfill_order.record");
        assert_eq!(records.len(), attempts, "{fate:?}: {:#?}", names(&trace));
        let mut counts: Vec<i64> = records
            .iter()
            .map(|r| count(&r["attributes"]["receive_count"]))
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=attempts as i64).collect::<Vec<_>>());
        for record in &records {
            assert_eq!(parent_name(&trace, record), "EnqueueOrder");
            assert_eq!(record["component"], "fulfill_order");
            let receives = count(&record["attributes"]["receive_count"]);
            let should_fail = match fate {
                Fate::Fulfilled => false,
                Fate::Retried => receives < 3,
                Fate::DeadLettered => true,
            };
            if should_fail {
                assert_eq!(record["status"], "error", "{record}");
                assert!(
                    record["attributes"]["failure.reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("simulated")),
                    "{record}"
                );
            } else {
                assert_eq!(record["status"], "ok", "{record}");
                assert!(record["attributes"].get("failure.reason").is_none());
            }
        }
        // The DLQ hop stays in the trace.
        let dead = by_name(&trace, "dlq_handler.record");
        if *fate == Fate::DeadLettered {
            assert_eq!(dead.len(), 1);
            assert_eq!(parent_name(&trace, dead[0]), "EnqueueOrder");
            assert_eq!(dead[0]["component"], "dlq_handler");
            assert!(count(&dead[0]["attributes"]["receive_count"]) >= 1);
        } else {
            assert!(dead.is_empty());
        }
        journeys.push((*fate, order_id.clone(), trace_id.clone(), trace));
    }

    // `dofs trace --full` as ops read it: one line per span, indented by
    // parent, the retries and the DLQ hop visible.
    for (fate, order_id, trace_id, trace) in &journeys {
        let (ok, text, stderr) = dofs_text(&dofs, &["trace", order_id, "--full"]);
        assert!(ok, "{stderr}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains(order_id) && lines[0].contains(trace_id.as_str()));
        assert!(lines[1].contains("START") && lines[1].contains("DURATION"));
        let span_lines: Vec<&str> = lines[2..]
            .iter()
            .copied()
            .filter(|l| !l.starts_with("also in"))
            .collect();
        assert_eq!(span_lines.len(), spans(trace).len(), "{text}");
        let line = |name: &str| {
            *span_lines
                .iter()
                .find(|l| l.contains(&format!(" {name} [")))
                .unwrap_or_else(|| panic!("no {name} line in\n{text}"))
        };
        let column = |l: &str, name: &str| l.find(&format!(" {name} [")).unwrap();
        assert!(line("api_gateway").starts_with(' '));
        assert!(
            column(line("validator.validate"), "validator.validate")
                > column(line("ValidateOrder"), "ValidateOrder"),
            "children are indented under their parent:\n{text}"
        );
        assert!(line("ValidateOrder").contains("state.type=Task attempt=1"));
        let attempts: Vec<&&str> = span_lines
            .iter()
            .filter(|l| l.contains("fulfill_order.record"))
            .collect();
        match fate {
            Fate::Fulfilled => assert_eq!(attempts.len(), 1),
            _ => {
                assert_eq!(attempts.len(), 3, "{text}");
                assert!(attempts[0].contains("receive_count=1"));
                assert!(attempts[0].contains("error") && attempts[0].contains("failure.reason="));
            }
        }
        assert_eq!(
            span_lines.iter().any(|l| l.contains("dlq_handler.record")),
            *fate == Fate::DeadLettered,
            "{text}"
        );
    }

    // `dofs trace` (the default view) as X-Ray would hold it: the
    // functions' segments under their deployed names, every one annotated
    // with the order, the failed attempts as faults with their cause; the
    // gateway and Step Functions stand-ins are AWS's, not in it.
    for (fate, order_id, trace_id, _) in &journeys {
        let view = dofs.cli_json(&["trace", order_id]);
        assert_eq!(view["trace_id"], trace_id.as_str());
        assert_eq!(view["sampled"], true);
        let documents = view["documents"].as_array().unwrap();
        let mut names: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["name"].as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut expected = vec![
            "dofs-api_handler",
            "dofs-fulfill_order",
            "dofs-order_storage",
            "dofs-validator",
        ];
        if *fate == Fate::DeadLettered {
            expected.insert(1, "dofs-dlq_handler");
        }
        assert_eq!(names, expected, "{view:#}");
        for doc in documents {
            assert!(doc.get("type").is_none(), "segments at the top: {doc}");
            assert_eq!(doc["origin"], "AWS::Lambda::Function", "{doc}");
            assert_eq!(doc["annotations"]["order_id"], order_id.as_str(), "{doc}");
        }
        let failed: Vec<&Value> = documents.iter().filter(|d| d["fault"] == true).collect();
        let expected_failures = match fate {
            Fate::Fulfilled => 0,
            Fate::Retried => 2,
            Fate::DeadLettered => 3,
        };
        assert_eq!(failed.len(), expected_failures, "{view:#}");
        for doc in failed {
            assert_eq!(doc["name"], "dofs-fulfill_order");
            assert_eq!(doc["annotations"]["outcome"], "retry");
            assert!(doc["cause"]["exceptions"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("simulated")));
        }
        let (ok, text, stderr) = dofs_text(&dofs, &["trace", order_id]);
        assert!(ok, "{stderr}");
        assert!(
            text.lines().next().unwrap().contains(trace_id.as_str()),
            "{text}"
        );
        assert!(
            text.contains("segment dofs-validator (AWS::Lambda::Function)"),
            "{text}"
        );
        assert!(
            !text.contains("api_gateway"),
            "the gateway is AWS's: {text}"
        );
    }

    // `dofs order` shows the trace too.
    let (ok, text, _) = dofs_text(&dofs, &["order", &journeys[2].1]);
    assert!(ok);
    assert!(
        text.contains("trace:") && text.contains("dlq_handler.record"),
        "{text}"
    );
    let report = dofs.cli_json(&["order", &journeys[0].1]);
    assert_eq!(report["trace"]["trace_id"], journeys[0].2.as_str());

    // An unknown order has no trace, and says so.
    let (ok, _, stderr) = dofs_text(&dofs, &["trace", "00000000-0000-0000-0000-000000000000"]);
    assert!(!ok);
    assert!(stderr.contains("no trace of order"), "{stderr}");

    // Logs: every line is one JSON object; inside an order's work each
    // line names the order and its trace.
    // (Captured in process: `logs()` fails on a line that is not one JSON object.)
    let mut order_lines = 0;
    for entry in dofs.logs() {
        let line = entry.to_string();
        for key in ["timestamp", "level", "message", "function"] {
            assert!(entry[key].is_string(), "{key} in {line}");
        }
        let Some(order_id) = entry["order_id"].as_str() else {
            continue;
        };
        order_lines += 1;
        let trace_id = entry["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("an order's log line without trace_id: {line}"));
        if let Some((_, _, order_trace, _)) = journeys.iter().find(|j| j.1 == order_id) {
            // Status reads are traces of their own; the order's work is not.
            if entry["function"] != "api_handler" || entry["message"] == "order accepted" {
                assert_eq!(trace_id, order_trace, "{line}");
            }
        }
    }
    assert!(
        order_lines >= 3 * 4,
        "accepted, validated, stored, fulfilled/failed per order: {order_lines}"
    );
}

/// A client's W3C `traceparent` (what an OpenTelemetry SDK sends) and its
/// `X-Amzn-Trace-Id` are linked from the gateway span, never continued:
/// the order keeps a trace of its own.
#[tokio::test]
async fn a_client_traceparent_is_linked_from_the_gateway_span() {
    let dofs = spawn_runtime(&fast_args(0.0)).await;
    let w3c_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = dofs
        .client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{w3c_trace}-b7ad6b7169203331-01"))
        .header("tracestate", "vendor=opaque")
        .body(order_body(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    let order_id = body["order_id"].as_str().unwrap();
    let trace_id = body["trace_id"].as_str().unwrap();
    // The same 128 bits, as X-Ray writes them (1-{8 hex}-{24 hex}).
    let linked = format!("1-{}-{}", &w3c_trace[..8], &w3c_trace[8..]);
    assert_ne!(trace_id, linked, "the order's trace is its own");

    let trace = wait_for_trace(&dofs, order_id, SUBMIT_AND_STORE).await;
    let gateway = by_name(&trace, "api_gateway");
    assert_eq!(gateway.len(), 1, "{trace}");
    assert_eq!(
        gateway[0]["attributes"]["span.links"],
        serde_json::json!([{"trace_id": linked, "span_id": "b7ad6b7169203331"}]),
        "{}",
        gateway[0]
    );

    // A malformed traceparent is ignored (the W3C rule), not an error.
    let response = dofs
        .client
        .post(dofs.url("/orders"))
        .header("content-type", "application/json")
        .header("traceparent", "00-not-a-trace-01")
        .body(order_body(2).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

/// `dofs trace` takes the `trace_id` the API answered, or the whole
/// `X-Amzn-Trace-Id` value, as well as the order id, and shows the same
/// order; a trace id no order has is refused and named.
#[tokio::test(flavor = "multi_thread")]
async fn trace_takes_the_trace_id_the_api_answered() {
    let dofs = crate::helpers::Dofs::spawn(&fast_args(0.0));
    let (status, accepted) = dofs.post_order(&order_body(1), None).await;
    assert_eq!(status, 202, "{accepted}");
    let order_id = accepted["order_id"].as_str().unwrap().to_owned();
    let trace_id = accepted["trace_id"].as_str().unwrap().to_owned();
    dofs.wait_terminal(std::slice::from_ref(&order_id), Duration::from_secs(60))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let by_order = loop {
        let (ok, stdout, stderr) = dofs_text(&dofs, &["trace", &order_id, "--json"]);
        if ok {
            break stdout;
        }
        assert!(Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let header = format!("Root={trace_id};Parent=53995c3f42cd8ad8;Sampled=1");
    for id in [trace_id.as_str(), header.as_str()] {
        let (ok, stdout, stderr) = dofs_text(&dofs, &["trace", id, "--json"]);
        assert!(ok, "dofs trace {id}: {stderr}");
        assert_eq!(stdout, by_order, "dofs trace {id}");
        let shown: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(shown["trace_id"], trace_id.as_str());
        assert_eq!(shown["order_id"], order_id.as_str());
    }
    let (ok, _, _) = dofs_text(&dofs, &["trace", &trace_id, "--full"]);
    assert!(ok);
    let unknown = "1-00000000-000000000000000000000000";
    let (ok, _, stderr) = dofs_text(&dofs, &["trace", unknown]);
    assert!(!ok);
    assert!(stderr.contains(unknown), "{stderr}");
}
