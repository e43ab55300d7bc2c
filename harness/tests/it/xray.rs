//! X-Ray from the built bootstraps: each runs under the fake Runtime API with
//! a UDP stand-in for the X-Ray daemon (`AWS_XRAY_DAEMON_ADDRESS`), and the
//! segments it sends are checked as X-Ray would take them: valid documents,
//! in the trace Lambda (or the SQS record's `AWSTraceHeader`) named, with
//! the `order_id` annotation, and on the daemon before the response was
//! posted (the daemon is drained the moment `/response` arrives, see
//! `dofs_lambda_harness::xray`).

use std::path::PathBuf;
use std::time::Instant;

use dofs_aws::AwsClients;
use dofs_core::testkit::{sample_order, sample_submission};
use dofs_core::{OrderId, OrderStatus, OrderStore};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile};
use dofs_lambda_harness::moto::{Moto, Resources};
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
        api.on_response(move || drain.drain());
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
        let mut env = moto.env();
        env.extend(resources.function_env());
        env.push(("FAILURE_RATE".to_owned(), "0".to_owned()));
        Traced::start(name, env).await
    }

    /// Invokes with `header`; the outcome, when it was posted, and the
    /// segments this invocation sent (validated).
    async fn invoke(&self, payload: Value, header: &str) -> (Outcome, Instant, Vec<Segment>) {
        self.daemon.clear();
        let (outcome, posted_at) = match self.api.invoke_timed(payload, header).await {
            Ok(done) => done,
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        };
        let found = segments(&self.daemon.received())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.process.transcript()));
        (outcome, posted_at, found)
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

fn assert_sent_before_the_response(found: &[Segment], posted_at: Instant) {
    for segment in found {
        assert!(
            segment.received_at <= posted_at,
            "{} reached the daemon after the response was posted",
            segment.name()
        );
    }
}

#[tokio::test]
async fn api_handler_sends_the_order_segments_in_lambdas_trace_before_responding() {
    let test = "api_handler_sends_the_order_segments_in_lambdas_trace_before_responding";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let traced = Traced::on_moto("api_handler", &moto, &resources).await;
    let trace = Trace::new();
    let (outcome, posted_at, found) = traced
        .invoke(
            events::post_order(&events::order_request(), None),
            &trace.header(true),
        )
        .await;
    let reply = outcome.response();
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap_or_default()).unwrap();
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
    // The invocation is the segment, a child of Lambda's own segment.
    let invocation = named(&found, "api_handler");
    assert!(invocation.top_level && invocation.doc.get("type").is_none());
    assert_eq!(invocation.parent_id.as_deref(), Some(trace.parent.as_str()));
    // The order's span and everything under it are searchable by order_id.
    let submit = named(&found, "api_handler.submit_order");
    assert_eq!(submit.order_id(), Some(order_id.as_str()), "{submit:#?}");
    for segment in descendants(&found, submit) {
        assert_eq!(segment.order_id(), Some(order_id.as_str()), "{segment:#?}");
    }
    assert_sent_before_the_response(&found, posted_at);
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
    let (outcome, posted_at, found) = traced
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
    let invocation = named(&found, "fulfill_order");
    assert_eq!(invocation.trace_id, batch.root);
    assert!(invocation.top_level);
    assert_eq!(invocation.parent_id.as_deref(), Some(batch.parent.as_str()));
    assert_eq!(invocation.order_id(), None, "{invocation:#?}");

    // The record's work joins the order's trace under the sender's segment,
    // in a document of its own, with the order annotation (inherited by its
    // children).
    let record = named(&found, "fulfill_order.record");
    assert_eq!(record.trace_id, order_trace.root);
    assert!(record.top_level, "{record:#?}");
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
    assert_sent_before_the_response(&found, posted_at);
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
    let (outcome, posted_at, found) = traced.invoke(submission, &sampled.header(true)).await;
    assert_eq!(outcome.response()["order"]["status"], "VALIDATED");
    let invocation = named(&found, "validator");
    assert_eq!(invocation.trace_id, sampled.root);
    assert!(found.iter().all(|s| s.trace_id == sampled.root));
    assert!(
        found.iter().any(|s| s.order_id() == Some(id.as_str())),
        "{found:#?}"
    );
    assert_sent_before_the_response(&found, posted_at);
}
