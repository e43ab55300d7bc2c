//! X-Ray from the built bootstraps: each runs under the fake Runtime API with
//! a UDP stand-in for the X-Ray daemon (`AWS_XRAY_DAEMON_ADDRESS`), and the
//! segments it sends are checked as X-Ray would take them: valid documents,
//! in the trace Lambda (or the SQS record's `AWSTraceHeader`) named, with
//! the `order_id` annotation, and on the daemon before the function asked
//! for its next event, when Lambda freezes it (the daemon is drained the
//! moment that `/next` arrives, see `dofs_lambda_harness::runtime_api`). api_handler's sampling is its own (rate
//! from `ORDER_TRACE_SAMPLE_RATE`), whatever Lambda's header says, and the
//! StartExecution request it sends (recorded by a proxy in front of moto)
//! carries the order's trace in `X-Amzn-Trace-Id`. The whole chain is in
//! `chain.rs`.

// Test code (helpers outside `#[test]` too): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

use dofs_aws::AwsClients;
use dofs_core::testkit::{sample_order, sample_submission};
use dofs_core::{OrderId, OrderStatus, OrderStore};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::recorder::RecordingProxy;
use dofs_lambda_harness::runtime_api::{new_trace_header, Outcome, RuntimeApi};
use dofs_lambda_harness::xray::{segments, Segment, XrayDaemon};
use serde_json::{json, Value};

/// A trace header as Lambda passes it, and its parts.
struct Trace {
    root: String,
    parent: String,
}

impl Trace {
    fn new() -> Trace {
        let header = new_trace_header();
        let part = |key: &str| {
            header
                .split(';')
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} in {header}"))
                .to_owned()
        };
        Trace {
            root: part("Root="),
            parent: part("Parent="),
        }
    }

    fn header(&self, sampled: bool) -> String {
        format!(
            "Root={};Parent={};Sampled={}",
            self.root,
            self.parent,
            u8::from(sampled)
        )
    }
}

/// A bootstrap under its own Runtime API, tracing to its own daemon.
struct Traced {
    api: RuntimeApi,
    daemon: XrayDaemon,
    process: FunctionProcess,
}

impl Traced {
    async fn start(name: &str, mut env: Vec<(String, String)>) -> Traced {
        let bin_dir: PathBuf = build_bootstraps(Profile::Debug).unwrap_or_else(|e| panic!("{e}"));
        let daemon = XrayDaemon::start().unwrap_or_else(|e| panic!("{e}"));
        let api = RuntimeApi::start(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let drain = daemon.clone();
        api.on_next(move || drain.drain());
        env.push(daemon.env());
        let process = FunctionProcess::start_bootstrap(&bin_dir, name, &api.host_port(), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        Traced {
            api,
            daemon,
            process,
        }
    }

    async fn on_moto(name: &str, moto: &Moto, resources: &Resources) -> Traced {
        Traced::on_endpoint(name, &moto.endpoint(), resources, &[]).await
    }

    /// On moto through `endpoint` (moto itself or a proxy), with `extra`.
    async fn on_endpoint(
        name: &str,
        endpoint: &str,
        resources: &Resources,
        extra: &[(&str, &str)],
    ) -> Traced {
        let mut env = dofs_lambda_harness::moto::client_env(endpoint);
        env.extend(resources.function_env());
        env.push(("FAILURE_RATE".to_owned(), "0".to_owned()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Traced::start(name, env).await
    }

    /// Invokes with `header`; the outcome, when the function next asked for
    /// an event (the invocation's end, when Lambda freezes it), and the
    /// segments this invocation sent (validated).
    async fn invoke(&self, payload: Value, header: &str) -> (Outcome, Instant, Vec<Segment>) {
        self.daemon.clear();
        let settled = match self.api.invoke_settled(payload, header).await {
            Ok(done) => done,
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        };
        let found = segments(&self.daemon.received())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.process.transcript()));
        (settled.outcome, settled.ready_at, found)
    }
}

fn named<'a>(found: &'a [Segment], name: &str) -> &'a Segment {
    found
        .iter()
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no segment named {name} in {found:#?}"))
}

/// Every segment below `ancestor`, however deep.
fn descendants<'a>(found: &'a [Segment], ancestor: &Segment) -> Vec<&'a Segment> {
    let mut ids = vec![ancestor.id().to_owned()];
    let mut out: Vec<&Segment> = Vec::new();
    while let Some(id) = ids.pop() {
        for child in found
            .iter()
            .filter(|s| s.parent_id.as_deref() == Some(id.as_str()))
        {
            ids.push(child.id().to_owned());
            out.push(child);
        }
    }
    out
}

/// Lambda freezes the process once it asks for the next event: whatever
/// was not sent by then may never be.
fn assert_sent_before_the_next_event(found: &[Segment], ready_at: Instant) {
    for segment in found {
        assert!(
            segment.received_at <= ready_at,
            "{} reached the daemon after the function asked for its next event",
            segment.name()
        );
    }
}

#[tokio::test]
async fn api_handler_sends_the_order_segments_in_lambdas_trace_before_its_next_event() {
    let test = "api_handler_sends_the_order_segments_in_lambdas_trace_before_its_next_event";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let traced = Traced::on_moto("api_handler", &moto, &resources).await;
    let (trace, body, ready_at, found) = submit_order(&traced, true).await;
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(
        body["trace_id"].as_str(),
        Some(trace.root.as_str()),
        "{body}"
    );

    assert!(
        !found.is_empty(),
        "no segments reached the daemon\n{}",
        traced.process.transcript()
    );
    for segment in &found {
        assert_eq!(segment.trace_id, trace.root, "{segment:#?}");
    }
    // The invocation is the segment, a child of Lambda's own segment, named
    // after the deployed function, with the HTTP exchange.
    let invocation = named(&found, "api_handler");
    assert!(invocation.top_level && invocation.doc.get("type").is_none());
    assert_eq!(invocation.parent_id.as_deref(), Some(trace.parent.as_str()));
    assert_eq!(invocation.doc["origin"], "AWS::Lambda::Function");
    assert_eq!(invocation.doc["http"]["request"]["method"], "POST");
    assert_eq!(invocation.doc["http"]["response"]["status"], 202);
    assert_eq!(invocation.order_id(), Some(order_id.as_str()));
    assert!(
        invocation.doc["metadata"]["default"]["cold_start"].is_boolean(),
        "{invocation:#?}"
    );
    // StartExecution is an `aws` subsegment of the order's span.
    let start = named(&found, "SFN");
    assert_eq!(start.doc["namespace"], "aws");
    assert_eq!(start.doc["aws"]["operation"], "StartExecution");
    // The order's span and everything under it are searchable by order_id.
    let submit = named(&found, "api_handler.submit_order");
    assert_eq!(submit.order_id(), Some(order_id.as_str()), "{submit:#?}");
    for segment in descendants(&found, submit) {
        assert_eq!(segment.order_id(), Some(order_id.as_str()), "{segment:#?}");
    }
    assert_sent_before_the_next_event(&found, ready_at);

    // A request the API refuses (400) is the client's error, not our fault,
    // with the reason as the cause and the URL it was sent to.
    let refused = Trace::new();
    let (outcome, _, found) = traced
        .invoke(
            events::http_request(
                "POST",
                "/orders",
                &[("content-type", "application/json")],
                Some("{not json"),
            ),
            &refused.header(true),
        )
        .await;
    assert_eq!(outcome.response()["statusCode"], 400);
    let invocation = named(&found, "api_handler");
    assert_eq!(invocation.trace_id, refused.root);
    assert_eq!(invocation.doc["error"], true, "{invocation:#?}");
    assert!(invocation.doc.get("fault").is_none(), "{invocation:#?}");
    assert_eq!(invocation.doc["http"]["response"]["status"], 400);
    assert_eq!(
        invocation.doc["http"]["request"]["url"],
        "https://abc123.execute-api.us-east-1.amazonaws.com/orders"
    );
    assert!(
        invocation.doc["cause"]["exceptions"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{invocation:#?}"
    );
}

#[tokio::test]
async fn fulfill_order_sends_each_record_in_its_orders_trace_and_the_batch_in_lambdas() {
    let test = "fulfill_order_sends_each_record_in_its_orders_trace_and_the_batch_in_lambdas";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let traced = Traced::on_moto("fulfill_order", &moto, &resources).await;
    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let order = sample_order(OrderStatus::Pending);
    store.insert(&order).await.unwrap();

    let batch = Trace::new();
    let order_trace = Trace::new();
    let mut record = SqsRecord::synthetic(serde_json::to_string(&order).unwrap(), 1);
    record.trace_header = Some(order_trace.header(true));
    let queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let (outcome, ready_at, found) = traced
        .invoke(
            events::sqs_event(&queue_arn, &[record]),
            &batch.header(true),
        )
        .await;
    let reply = outcome.response();
    assert_eq!(reply["batchItemFailures"], json!([]), "{reply}");
    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Fulfilled);

    // The invocation is the batch's segment, in Lambda's trace; a batch is
    // not one order, so it has no order annotation.
    let invocation = found
        .iter()
        .find(|s| s.trace_id == batch.root && s.top_level)
        .expect("the batch's segment");
    assert_eq!(invocation.name(), "fulfill_order");
    assert!(invocation.top_level);
    assert_eq!(invocation.parent_id.as_deref(), Some(batch.parent.as_str()));
    assert_eq!(invocation.order_id(), None, "{invocation:#?}");

    // The record's work is a segment of the order's trace under the
    // sender's segment (X-Ray's SQS consumer pattern), named after the
    // function, with the order annotation (inherited by its children) and
    // its outcome; the batch links to it.
    let record = found
        .iter()
        .find(|s| s.trace_id == order_trace.root && s.top_level)
        .expect("the record's segment");
    assert_eq!(record.name(), "fulfill_order");
    assert!(record.doc.get("type").is_none(), "a segment: {record:#?}");
    assert_eq!(record.doc["origin"], "AWS::Lambda::Function");
    assert_eq!(record.doc["annotations"]["outcome"], "fulfilled");
    assert_eq!(record.doc["annotations"]["receive_count"], 1);
    assert_eq!(
        invocation.doc["links"][0]["trace_id"],
        order_trace.root.as_str()
    );
    let update = named(&found, "DynamoDB");
    assert_eq!(update.doc["aws"]["operation"], "UpdateItem");
    assert_eq!(update.trace_id, order_trace.root);
    assert_eq!(
        record.parent_id.as_deref(),
        Some(order_trace.parent.as_str())
    );
    assert_eq!(record.order_id(), Some(order.order_id.as_str()));
    let in_order_trace: Vec<&Segment> = found
        .iter()
        .filter(|s| s.trace_id == order_trace.root)
        .collect();
    for segment in &in_order_trace {
        assert_eq!(
            segment.order_id(),
            Some(order.order_id.as_str()),
            "{segment:#?}"
        );
    }
    // Nothing else: every span is in one of the two traces.
    assert!(
        found
            .iter()
            .all(|s| s.trace_id == batch.root || s.trace_id == order_trace.root),
        "{found:#?}"
    );
    assert_sent_before_the_next_event(&found, ready_at);
}

#[tokio::test]
async fn an_unsampled_invocation_sends_no_segments_and_still_succeeds() {
    // The validator needs no AWS, so this runs without moto too.
    let traced = Traced::start("validator", vec![]).await;
    let id = OrderId::generate();
    let submission = serde_json::to_value(sample_submission(&id)).unwrap();

    let unsampled = Trace::new();
    let (outcome, _, found) = traced
        .invoke(submission.clone(), &unsampled.header(false))
        .await;
    assert_eq!(outcome.response()["order"]["status"], "VALIDATED");
    assert!(found.is_empty(), "Sampled=0 sent {found:#?}");

    // The same process does send a sampled one: the silence above is the
    // sampling decision, not a daemon nobody reaches.
    let sampled = Trace::new();
    let (outcome, ready_at, found) = traced.invoke(submission, &sampled.header(true)).await;
    assert_eq!(outcome.response()["order"]["status"], "VALIDATED");
    let invocation = named(&found, "validator");
    assert_eq!(invocation.trace_id, sampled.root);
    assert!(found.iter().all(|s| s.trace_id == sampled.root));
    assert!(
        found.iter().any(|s| s.order_id() == Some(id.as_str())),
        "{found:#?}"
    );
    assert_sent_before_the_next_event(&found, ready_at);
}

#[tokio::test]
async fn a_record_without_a_trace_header_is_a_segment_in_the_batch_trace() {
    let test = "a_record_without_a_trace_header_is_a_segment_in_the_batch_trace";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let traced = Traced::on_moto("fulfill_order", &moto, &resources).await;
    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let order = sample_order(OrderStatus::Pending);
    store.insert(&order).await.unwrap();
    let batch = Trace::new();
    let record = SqsRecord::synthetic(serde_json::to_string(&order).unwrap(), 1);
    let queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let (outcome, _, found) = traced
        .invoke(
            events::sqs_event(&queue_arn, &[record]),
            &batch.header(true),
        )
        .await;
    assert_eq!(outcome.response()["batchItemFailures"], json!([]));
    assert!(found.iter().all(|s| s.trace_id == batch.root), "{found:#?}");
    let top: Vec<&Segment> = found.iter().filter(|s| s.top_level).collect();
    assert_eq!(top.len(), 2, "the batch and the record: {top:#?}");
    let invocation = top
        .iter()
        .find(|s| s.parent_id.as_deref() == Some(batch.parent.as_str()))
        .unwrap();
    let record = top.iter().find(|s| s.id() != invocation.id()).unwrap();
    assert!(record.doc.get("type").is_none(), "a segment: {record:#?}");
    assert_eq!(record.parent_id.as_deref(), Some(invocation.id()));
    assert_eq!(record.order_id(), Some(order.order_id.as_str()));
    assert_eq!(
        invocation.order_id(),
        Some(order.order_id.as_str()),
        "the batch's only order"
    );

    // A poisoned record (its body is not even JSON), without a header: a
    // failed segment in the batch trace, with the reason as its cause.
    let batch = Trace::new();
    let poison = SqsRecord::synthetic("{not json", 1);
    let poison_id = poison.message_id.clone();
    let (outcome, _, found) = traced
        .invoke(
            events::sqs_event(&queue_arn, &[poison]),
            &batch.header(true),
        )
        .await;
    assert_eq!(
        outcome.response()["batchItemFailures"],
        json!([{ "itemIdentifier": poison_id }])
    );
    assert!(found.iter().all(|s| s.trace_id == batch.root), "{found:#?}");
    let invocation = found
        .iter()
        .find(|s| s.top_level && s.parent_id.as_deref() == Some(batch.parent.as_str()))
        .expect("the batch's segment");
    let record = found
        .iter()
        .find(|s| s.top_level && s.id() != invocation.id())
        .expect("the poisoned record's segment");
    assert!(record.doc.get("type").is_none(), "a segment: {record:#?}");
    assert_eq!(record.parent_id.as_deref(), Some(invocation.id()));
    assert!(
        record.doc["error"] == true || record.doc["fault"] == true,
        "{record:#?}"
    );
    assert!(
        record.doc["cause"]["exceptions"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{record:#?}"
    );
}

/// The one StartExecution request recorded for `order_id`: its
/// `X-Amzn-Trace-Id` and its body's `traceHeader`.
fn start_execution_headers(proxy: &RecordingProxy, order_id: &str) -> (String, String) {
    let starts: Vec<_> = proxy
        .calls("StartExecution")
        .into_iter()
        .filter(|r| r.json().is_some_and(|b| b["name"] == order_id))
        .collect();
    assert_eq!(starts.len(), 1, "{starts:#?}");
    let header = starts[0]
        .header("x-amzn-trace-id")
        .expect("X-Amzn-Trace-Id on StartExecution")
        .to_owned();
    let body = starts[0].json().unwrap()["traceHeader"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (header, body)
}

/// `POST /orders` with a header where Lambda did not sample the request.
/// Submits one order under a Lambda trace whose header says `Sampled=1`
/// when `lambda_sampled`; returns that trace, the 202's body, when the
/// bootstrap asked for its next event, and the segments sent.
async fn submit_order(
    traced: &Traced,
    lambda_sampled: bool,
) -> (Trace, Value, Instant, Vec<Segment>) {
    let lambda = Trace::new();
    let (outcome, ready_at, found) = traced
        .invoke(
            events::post_order(&events::order_request(), None),
            &lambda.header(lambda_sampled),
        )
        .await;
    let reply = outcome.response();
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap_or_default()).unwrap();
    (lambda, body, ready_at, found)
}

#[tokio::test]
async fn api_handler_traces_orders_at_its_own_rate_whatever_lambda_sampled() {
    let test = "api_handler_traces_orders_at_its_own_rate_whatever_lambda_sampled";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let proxy = RecordingProxy::start(&moto.endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Rate 1 (the default): traced although Lambda said Sampled=0, in a
    // trace of its own whose root is api_handler's order segment; the
    // StartExecution HTTP header is that trace, not Lambda's.
    let every = Traced::on_endpoint("api_handler", &proxy.endpoint(), &resources, &[]).await;
    let (lambda, body, ready_at, found) = submit_order(&every, false).await;
    let trace_id = body["trace_id"].as_str().expect("a trace id").to_owned();
    assert_ne!(trace_id, lambda.root);
    assert!(found.iter().all(|s| s.trace_id == trace_id), "{found:#?}");
    let root = found
        .iter()
        .find(|s| s.top_level)
        .expect("the order's segment");
    assert!(root.parent_id.is_none(), "the trace's root: {root:#?}");
    assert_eq!(root.name(), "api_handler");
    assert_eq!(root.doc["origin"], "AWS::Lambda::Function");
    assert_eq!(root.doc["http"]["response"]["status"], 202);
    assert_eq!(root.order_id(), body["order_id"].as_str());
    assert_eq!(root.doc["links"][0]["trace_id"], lambda.root.as_str());
    assert_sent_before_the_next_event(&found, ready_at);
    let (header, in_body) = start_execution_headers(&proxy, body["order_id"].as_str().unwrap());
    assert_eq!(header, in_body);
    let header: dofs_telemetry::TraceHeader = header.parse().unwrap();
    assert_eq!(header.root, trace_id);
    assert_eq!(
        header.parent.as_deref(),
        Some(root.id()),
        "the execution's parent"
    );
    assert_eq!(header.sampled, Some(true));

    // Rate 0: not traced, nothing sent, no trace id handed out, and Step
    // Functions is told Sampled=0.
    let none = Traced::on_endpoint(
        "api_handler",
        &proxy.endpoint(),
        &resources,
        &[("ORDER_TRACE_SAMPLE_RATE", "0")],
    )
    .await;
    let (_, body, _, found) = submit_order(&none, false).await;
    assert!(body.get("trace_id").is_none(), "{body}");
    assert!(found.is_empty(), "rate 0 sent {found:#?}");
    let (header, in_body) = start_execution_headers(&proxy, body["order_id"].as_str().unwrap());
    assert_eq!(header, in_body);
    assert!(header.ends_with("Sampled=0"), "{header}");

    // Rate 0 when Lambda sampled the request (Sampled=1): still nothing of
    // ours is sent, not even the invocation's segment — its work was the
    // order's (Lambda's own segments are Lambda's) — and Step Functions is
    // told Sampled=0 in Lambda's trace.
    let (lambda, body, _, found) = submit_order(&none, true).await;
    assert!(body.get("trace_id").is_none(), "{body}");
    assert!(found.is_empty(), "rate 0, Lambda sampled, sent {found:#?}");
    let (header, _) = start_execution_headers(&proxy, body["order_id"].as_str().unwrap());
    let header: dofs_telemetry::TraceHeader = header.parse().unwrap();
    assert_eq!(header.root, lambda.root);
    assert_eq!(header.sampled, Some(false));
}
