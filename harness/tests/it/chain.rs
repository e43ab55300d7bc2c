//! Two orders through the whole chain on moto, every function a real
//! bootstrap process tracing to one X-Ray daemon stand-in, the harness
//! playing Lambda's and Step Functions' parts: api_handler starts the
//! execution (through a recording proxy, so the StartExecution request is
//! checked as sent); its input, read back from moto, goes to validator,
//! whose output goes to order_storage; the stored order is sent to the moto
//! queue as the workflow's `sqs:sendMessage` would, with the trace header;
//! the received message is fulfill_order's batch. One order is fulfilled;
//! the other fails every attempt, is redriven by moto to the dead-letter
//! queue and handled by dlq_handler.
//!
//! Then the assembly: per order, the documents the bootstraps sent and the
//! segments AWS would record itself (`dofs_lambda_harness::xray::AwsSegments`)
//! form one tree rooted at api_handler's order segment, every parent
//! resolving inside the trace; every function is a segment named after its
//! deployed name with origin `AWS::Lambda::Function` and the `order_id`
//! annotation; failed attempts carry `fault` and a cause; the SDK calls are
//! `aws` subsegments; the batches' own traces link to the order's; the
//! status read is not found by `annotation.order_id`.

// Test code (helpers outside `#[test]` too): a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use dofs_aws::AwsClients;
use dofs_core::{OrderId, OrderStatus, OrderStore, StateMachineArn};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::recorder::RecordingProxy;
use dofs_lambda_harness::runtime_api::RuntimeApi;
use dofs_lambda_harness::xray::{
    new_segment_id, new_trace_id, segments, AssembledTrace, AwsSegments, Segment, XrayDaemon,
};
use serde_json::{json, Value};

/// The stack the functions are "deployed" in: their names are `dofs-it-<fn>`.
const STACK: &str = "dofs-it";

fn deployed(function: &str) -> String {
    format!("{STACK}-{function}")
}

struct Function {
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Function {
    /// `function` under its own Runtime API, tracing to `daemon`, its AWS
    /// calls going to `endpoint`, with `extra` variables.
    async fn start(
        function: &str,
        resources: &Resources,
        endpoint: &str,
        daemon: &XrayDaemon,
        extra: &[(&str, &str)],
    ) -> Function {
        let bin_dir = build_bootstraps(Profile::Debug).unwrap_or_else(|e| panic!("{e}"));
        let mut env: Vec<(String, String)> = dofs_lambda_harness::moto::client_env(endpoint);
        env.extend(resources.function_env());
        env.push(("FAILURE_RATE".into(), "0".into()));
        env.push(("AWS_LAMBDA_FUNCTION_NAME".into(), deployed(function)));
        env.push(daemon.env());
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let api = RuntimeApi::start(function)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let drain = daemon.clone();
        api.on_next(move || drain.drain());
        let process = FunctionProcess::start_bootstrap(&bin_dir, function, &api.host_port(), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        Function { api, process }
    }

    /// The response, once the function asked for its next event (its
    /// spans are sent after the response, before that).
    async fn invoke(&self, payload: Value, trace_header: &str) -> Value {
        match self.api.invoke_settled(payload, trace_header).await {
            Ok(settled) => settled.outcome.response(),
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        }
    }
}

/// The six processes of one chain (fulfill_order twice: one never fails,
/// one always does).
struct Chain {
    api_handler: Function,
    validator: Function,
    order_storage: Function,
    fulfill_order: Function,
    failing_fulfill_order: Function,
    dlq_handler: Function,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Fulfilled,
    DeadLettered,
}

/// What one order left behind.
struct Journey {
    fate: Fate,
    order_id: OrderId,
    trace_id: String,
    /// The batches' own traces (one per fulfill_order / dlq_handler invocation).
    batch_traces: Vec<String>,
}

/// A header Lambda gives a function it did not sample (the default rule
/// leaves most requests of an HTTP API unsampled).
fn unsampled_lambda_header() -> String {
    format!(
        "Root={};Parent={};Sampled=0",
        new_trace_id(),
        new_segment_id()
    )
}

async fn receive(resources: &Resources, queue_url: &str, wait_seconds: i32) -> Vec<SqsRecord> {
    let received = resources
        .sqs()
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
        .unwrap();
    received
        .messages()
        .iter()
        .map(SqsRecord::from_message)
        .collect()
}

/// One order from `POST /orders` to its terminal status, the harness playing
/// Step Functions, SQS's event source mapping and Lambda.
async fn run_order(
    chain: &Chain,
    resources: &Resources,
    proxy: &RecordingProxy,
    aws: &AwsSegments,
    fate: Fate,
    key: &str,
) -> Journey {
    // 1. POST /orders: Lambda did not sample it; the order is traced anyway.
    let reply = chain
        .api_handler
        .invoke(
            events::post_order(&events::order_request(), Some(key)),
            &unsampled_lambda_header(),
        )
        .await;
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    let order_id = OrderId::parse(body["order_id"].as_str().unwrap()).unwrap();
    let trace_id = body["trace_id"]
        .as_str()
        .expect("every order is traced at the default rate")
        .to_owned();

    // 2. StartExecution as sent: the order's trace in the HTTP header,
    // which Step Functions prefers to the body's traceHeader.
    let start = proxy
        .calls("StartExecution")
        .into_iter()
        .find(|r| r.json().is_some_and(|b| b["name"] == order_id.as_str()))
        .expect("a recorded StartExecution for the order");
    let header = start
        .header("x-amzn-trace-id")
        .expect("X-Amzn-Trace-Id on StartExecution")
        .to_owned();
    assert_eq!(
        start.json().unwrap()["traceHeader"],
        header.as_str(),
        "body and header agree"
    );
    let parsed: dofs_telemetry::TraceHeader = header.parse().unwrap();
    assert_eq!(parsed.root, trace_id, "the 202's trace is the execution's");
    assert_eq!(parsed.sampled, Some(true));
    let order_segment = parsed
        .parent
        .expect("a Parent: api_handler's order segment");

    // 3. Step Functions: its execution segment, child of the header's Parent.
    let execution = aws.add(
        &trace_id,
        Some(&order_segment),
        &deployed("order-workflow"),
        "AWS::StepFunctions::StateMachine",
    );
    let arn = StateMachineArn::parse(&resources.state_machine_arn).unwrap();
    let described = resources
        .sfn()
        .describe_execution()
        .execution_arn(arn.execution_arn(order_id.as_str()))
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(described.input().unwrap()).unwrap();

    // 4. ValidateOrder → StoreOrder, each a Lambda invocation under its state.
    let state = aws.add(
        &trace_id,
        Some(&execution),
        "ValidateOrder",
        "AWS::StepFunctions::State",
    );
    let validated = chain
        .validator
        .invoke(
            input,
            &aws.lambda_invoke(&trace_id, Some(&state), &deployed("validator")),
        )
        .await;
    assert_eq!(validated["order"]["status"], "VALIDATED", "{validated}");
    let state = aws.add(
        &trace_id,
        Some(&execution),
        "StoreOrder",
        "AWS::StepFunctions::State",
    );
    let stored = chain
        .order_storage
        .invoke(
            json!({"action": "store", "order": validated["order"]}),
            &aws.lambda_invoke(&trace_id, Some(&state), &deployed("order_storage")),
        )
        .await;
    assert_eq!(stored["order"]["status"], "PENDING", "{stored}");

    // 5. EnqueueOrder: sqs:sendMessage with tracing on stores the caller's
    // header as the message's AWSTraceHeader.
    let enqueue = aws.add(&trace_id, Some(&execution), "EnqueueOrder", "AWS::SQS");
    let trace_attribute = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(format!("Root={trace_id};Parent={enqueue};Sampled=1"))
        .build()
        .unwrap();
    resources
        .sqs()
        .send_message()
        .queue_url(&resources.order_queue_url)
        .message_body(stored["order"].to_string())
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            trace_attribute,
        )
        .send()
        .await
        .unwrap();

    // 6. The event source mapping: each batch invocation starts a trace.
    let order_queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let mut batch_traces = Vec::new();
    let mut batch = |function: &str| {
        let batch_trace = new_trace_id();
        let header = aws.lambda_invoke(&batch_trace, None, &deployed(function));
        batch_traces.push(batch_trace);
        header
    };
    match fate {
        Fate::Fulfilled => {
            let records = receive(resources, &resources.order_queue_url, 2).await;
            assert_eq!(records.len(), 1);
            let outcome = chain
                .fulfill_order
                .invoke(
                    events::sqs_event(&order_queue_arn, &records),
                    &batch("fulfill_order"),
                )
                .await;
            assert_eq!(outcome["batchItemFailures"], json!([]), "{outcome}");
            delete(resources, &resources.order_queue_url, &records).await;
        }
        Fate::DeadLettered => {
            // maxReceiveCount is 3: three failed receives, then the redrive.
            for attempt in 1..=3 {
                let records = receive(resources, &resources.order_queue_url, 2).await;
                assert_eq!(records.len(), 1, "attempt {attempt}");
                assert_eq!(records[0].receive_count, attempt);
                let outcome = chain
                    .failing_fulfill_order
                    .invoke(
                        events::sqs_event(&order_queue_arn, &records),
                        &batch("fulfill_order"),
                    )
                    .await;
                assert_eq!(
                    outcome["batchItemFailures"][0]["itemIdentifier"],
                    records[0].message_id.as_str()
                );
                // Visible again at once, as after its visibility timeout.
                resources
                    .sqs()
                    .change_message_visibility()
                    .queue_url(&resources.order_queue_url)
                    .receipt_handle(&records[0].receipt_handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .unwrap();
            }
            assert!(
                receive(resources, &resources.order_queue_url, 0)
                    .await
                    .is_empty(),
                "redriven to the dead-letter queue"
            );
            let records = receive(resources, &resources.dead_letter_queue_url, 2).await;
            assert_eq!(records.len(), 1);
            let outcome = chain
                .dlq_handler
                .invoke(
                    events::sqs_event(
                        &events::queue_arn_from_url(&resources.dead_letter_queue_url),
                        &records,
                    ),
                    &batch("dlq_handler"),
                )
                .await;
            assert_eq!(outcome["batchItemFailures"], json!([]), "{outcome}");
        }
    }
    Journey {
        fate,
        order_id,
        trace_id,
        batch_traces,
    }
}

async fn delete(resources: &Resources, queue_url: &str, records: &[SqsRecord]) {
    for record in records {
        resources
            .sqs()
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(&record.receipt_handle)
            .send()
            .await
            .unwrap();
    }
}

fn annotation<'a>(segment: &'a Segment, key: &str) -> Option<&'a Value> {
    segment.doc.get("annotations").and_then(|a| a.get(key))
}

/// The checks of one order's trace as X-Ray would assemble it.
fn assert_assembled(journey: &Journey, found: &[Segment], aws: &AwsSegments) {
    let order = journey.order_id.as_str();
    let trace = AssembledTrace::assemble(&journey.trace_id, found, aws);
    let root = trace
        .check_one_tree()
        .unwrap_or_else(|e| panic!("{:?}: {e}\n{found:#?}", journey.fate));
    let root_segment = trace
        .ours
        .iter()
        .find(|s| s.id() == root)
        .expect("the root is ours: api_handler started the trace");
    assert_eq!(root_segment.name(), deployed("api_handler"));

    let segments = trace.segments();
    let mut functions = vec!["api_handler", "validator", "order_storage", "fulfill_order"];
    if journey.fate == Fate::DeadLettered {
        functions.push("dlq_handler");
    }
    let names: HashSet<&str> = segments.iter().map(|s| s.name()).collect();
    for function in &functions {
        assert!(
            names.contains(deployed(function).as_str()),
            "{:?}: no {function} segment among {names:?}",
            journey.fate
        );
    }
    for segment in &segments {
        assert_eq!(
            segment.doc["origin"], "AWS::Lambda::Function",
            "{segment:#?}"
        );
        assert!(
            segment.name().starts_with(STACK),
            "named after the deployed function: {segment:#?}"
        );
        assert_eq!(
            annotation(segment, "order_id"),
            Some(&json!(order)),
            "every segment of the order is found by annotation.order_id: {segment:#?}"
        );
    }

    // Each fulfilment attempt and the dead letter, with its outcome.
    let attempts: Vec<&&Segment> = segments
        .iter()
        .filter(|s| s.name() == deployed("fulfill_order"))
        .collect();
    match journey.fate {
        Fate::Fulfilled => {
            assert_eq!(attempts.len(), 1);
            assert_eq!(
                annotation(attempts[0], "outcome"),
                Some(&json!("fulfilled"))
            );
            assert!(attempts[0].doc.get("fault").is_none());
        }
        Fate::DeadLettered => {
            assert_eq!(attempts.len(), 3, "{attempts:#?}");
            let mut counts: Vec<i64> = attempts
                .iter()
                .map(|s| {
                    annotation(s, "receive_count")
                        .and_then(Value::as_i64)
                        .unwrap()
                })
                .collect();
            counts.sort_unstable();
            assert_eq!(counts, [1, 2, 3]);
            for attempt in &attempts {
                assert_eq!(annotation(attempt, "outcome"), Some(&json!("retry")));
                assert_eq!(attempt.doc["fault"], true, "{attempt:#?}");
                let cause = attempt.doc["cause"]["exceptions"][0]["message"]
                    .as_str()
                    .unwrap_or_default();
                assert!(cause.contains("simulated"), "{attempt:#?}");
            }
            let dead = segments
                .iter()
                .find(|s| s.name() == deployed("dlq_handler"))
                .unwrap();
            assert_eq!(annotation(dead, "outcome"), Some(&json!("marked_failed")));
        }
    }

    // The SDK calls are `aws` subsegments, in the order's trace.
    let calls: Vec<(&str, &str)> = trace
        .ours
        .iter()
        .filter(|s| s.doc["namespace"] == "aws")
        .map(|s| {
            assert!(!s.top_level, "a call travels in its segment: {s:#?}");
            assert_eq!(annotation(s, "order_id"), Some(&json!(order)), "{s:#?}");
            assert!(s.doc["http"]["response"]["status"].is_u64(), "{s:#?}");
            assert!(
                s.doc["aws"]["request_id"]
                    .as_str()
                    .is_some_and(|id| !id.is_empty()),
                "the answer's request id: {s:#?}"
            );
            assert_eq!(s.doc["aws"]["retries"], 0, "moto answers at once: {s:#?}");
            (
                s.name(),
                s.doc["aws"]["operation"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    for call in [("SFN", "StartExecution"), ("DynamoDB", "PutItem")] {
        assert!(calls.contains(&call), "no {call:?} in {calls:?}");
    }
    let fulfilment = match journey.fate {
        Fate::Fulfilled => ("DynamoDB", "UpdateItem"),
        Fate::DeadLettered => ("DynamoDB", "GetItem"),
    };
    assert!(
        calls.contains(&fulfilment),
        "no {fulfilment:?} in {calls:?}"
    );
    for table_call in trace.ours.iter().filter(|s| s.name() == "DynamoDB") {
        assert!(
            table_call.doc["aws"]["table_name"].is_string(),
            "{table_call:#?}"
        );
    }

    // Each batch's own trace holds its invocation segment, linked to the
    // order's trace, and nothing of the order.
    for batch in &journey.batch_traces {
        let batch_docs: Vec<&Segment> = found.iter().filter(|s| s.trace_id == *batch).collect();
        assert_eq!(batch_docs.len(), 1, "{batch_docs:#?}");
        let link = &batch_docs[0].doc["links"][0];
        assert_eq!(
            link["trace_id"],
            journey.trace_id.as_str(),
            "{batch_docs:#?}"
        );
        let assembled = AssembledTrace::assemble(batch, found, aws);
        assembled
            .check_one_tree()
            .unwrap_or_else(|e| panic!("batch trace: {e}"));
    }
}

#[tokio::test]
async fn each_order_is_one_x_ray_tree_from_the_api_to_fulfilled_or_dead_lettered() {
    let test = "each_order_is_one_x_ray_tree_from_the_api_to_fulfilled_or_dead_lettered";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let proxy = RecordingProxy::start(&moto.endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let daemon = XrayDaemon::start().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = moto.endpoint();
    let chain = Chain {
        api_handler: Function::start("api_handler", &resources, &proxy.endpoint(), &daemon, &[])
            .await,
        validator: Function::start("validator", &resources, &endpoint, &daemon, &[]).await,
        order_storage: Function::start("order_storage", &resources, &endpoint, &daemon, &[]).await,
        fulfill_order: Function::start("fulfill_order", &resources, &endpoint, &daemon, &[]).await,
        failing_fulfill_order: Function::start(
            "fulfill_order",
            &resources,
            &endpoint,
            &daemon,
            &[("FAILURE_RATE", "1")],
        )
        .await,
        dlq_handler: Function::start("dlq_handler", &resources, &endpoint, &daemon, &[]).await,
    };
    let aws = AwsSegments::default();
    let fulfilled = run_order(&chain, &resources, &proxy, &aws, Fate::Fulfilled, "chain-a").await;
    let dead = run_order(
        &chain,
        &resources,
        &proxy,
        &aws,
        Fate::DeadLettered,
        "chain-b",
    )
    .await;

    // The tables say how each journey ended.
    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let a = store.get(&fulfilled.order_id).await.unwrap().unwrap();
    let statuses: Vec<OrderStatus> = a.history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            OrderStatus::Received,
            OrderStatus::Validated,
            OrderStatus::Pending,
            OrderStatus::Fulfilled
        ]
    );
    let b = store.get(&dead.order_id).await.unwrap().unwrap();
    assert_eq!(b.status, OrderStatus::Failed);

    // The client reads the status: a trace of its own, not the journey's.
    let read_trace = new_trace_id();
    let reply = chain
        .api_handler
        .invoke(
            events::get_order(fulfilled.order_id.as_str()),
            &format!("Root={read_trace};Parent={};Sampled=1", new_segment_id()),
        )
        .await;
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let seen: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["status"], "FULFILLED", "{seen}");
    // Money keeps the scale the client sent, through DynamoDB on moto and
    // back (`events::order_request`: 2 × 9.99 + 1.50).
    assert_eq!(seen["items"][1]["unit_price"], "1.50", "{seen}");
    assert_eq!(seen["total"], "21.48", "{seen}");

    let found = segments(&daemon.received()).unwrap_or_else(|e| panic!("{e}"));
    assert_assembled(&fulfilled, &found, &aws);
    assert_assembled(&dead, &found, &aws);
    let read: Vec<&Segment> = found.iter().filter(|s| s.trace_id == read_trace).collect();
    assert!(!read.is_empty());
    assert!(
        read.iter().all(|s| annotation(s, "order_id").is_none()),
        "a status read is not the journey: {read:#?}"
    );
    assert!(read
        .iter()
        .any(|s| annotation(s, "polled_order_id") == Some(&json!(fulfilled.order_id.as_str()))));
    let invocation = read.iter().find(|s| s.top_level).unwrap();
    assert_eq!(invocation.doc["http"]["request"]["method"], "GET");
    assert_eq!(
        invocation.doc["http"]["request"]["url"],
        format!(
            "https://abc123.execute-api.us-east-1.amazonaws.com/orders/{}",
            fulfilled.order_id
        ),
        "{invocation:#?}"
    );
    assert_eq!(invocation.doc["http"]["response"]["status"], 200);
    assert_eq!(
        invocation.doc["metadata"]["default"]["http.route"],
        "/orders/{order_id}"
    );

    // One order, one trace in the logs too: every function logged the
    // order id next to the trace id the API handed out.
    for function in [
        &chain.api_handler,
        &chain.validator,
        &chain.order_storage,
        &chain.fulfill_order,
    ] {
        let lines = function.process.json_lines();
        assert!(
            lines.iter().any(|l| {
                let text = l.to_string();
                text.contains(fulfilled.order_id.as_str()) && text.contains(&fulfilled.trace_id)
            }),
            "{} logged no line with order {} and trace {}:\n{}",
            function.process.name,
            fulfilled.order_id,
            fulfilled.trace_id,
            function.process.transcript()
        );
    }
}
