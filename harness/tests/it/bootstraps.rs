//! Each built bootstrap binary, run as a child process under the fake
//! Runtime API with AWS at moto: real event fixtures in, responses, side
//! effects in moto and stdout (JSON logs, EMF metrics) checked.

use std::path::PathBuf;
use std::time::Duration;

use dofs_aws::AwsClients;
use dofs_core::testkit::{sample_order, sample_submission};
use dofs_core::{OrderId, OrderStatus, OrderStore};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::runtime_api::RuntimeApi;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn bin_dir() -> PathBuf {
    build_bootstraps(Profile::Debug).unwrap_or_else(|e| panic!("{e}"))
}

/// A function process under its own Runtime API.
struct Running {
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Running {
    async fn start(name: &str, env: Vec<(String, String)>) -> Running {
        let api = RuntimeApi::start(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let process = FunctionProcess::start_bootstrap(&bin_dir(), name, &api.host_port(), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        Running { api, process }
    }

    async fn on_moto(
        name: &str,
        moto: &Moto,
        resources: &Resources,
        extra: &[(&str, &str)],
    ) -> Running {
        let mut env = moto.env();
        env.extend(resources.function_env());
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Running::start(name, env).await
    }

    /// The outcome, once the function asked for its next event: its logs
    /// and EMF are flushed after the response, before that `/next`.
    async fn invoke(&self, payload: Value) -> dofs_lambda_harness::runtime_api::Outcome {
        let trace = dofs_lambda_harness::runtime_api::new_trace_header();
        match self.api.invoke_settled(payload, &trace).await {
            Ok(settled) => settled.outcome,
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        }
    }

    /// Asserts that stdout is only JSON objects (logs and EMF), and returns
    /// them.
    fn json_stdout(&self) -> Vec<Value> {
        let lines = self.process.stdout();
        for line in &lines {
            assert!(
                serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()),
                "stdout line is not a JSON object: {line}\n{}",
                self.process.transcript()
            );
        }
        self.process.json_lines()
    }

    /// The EMF lines that carry `metric` (an `_aws` block naming it).
    fn emf_with(&self, metric: &str) -> Vec<Value> {
        self.json_stdout()
            .into_iter()
            .filter(|line| {
                line.pointer("/_aws/CloudWatchMetrics/0/Metrics")
                    .and_then(Value::as_array)
                    .is_some_and(|metrics| metrics.iter().any(|m| m["Name"] == metric))
            })
            .collect()
    }
}

#[tokio::test]
async fn bad_configuration_is_reported_to_init_error_and_exits() {
    // (function, its environment, the variables the error must name)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static [&'static str],
    );
    let cases: [Case; 4] = [
        (
            "api_handler",
            vec![("ORDERS_TABLE", "orders")],
            &["STATE_MACHINE_ARN"],
        ),
        (
            "dlq_handler",
            vec![],
            &["ORDERS_TABLE", "FAILED_ORDERS_TABLE"],
        ),
        (
            "fulfill_order",
            vec![("ORDERS_TABLE", "orders"), ("FAILURE_RATE", "1.5")],
            &["FAILURE_RATE"],
        ),
        (
            "order_storage",
            vec![("ORDERS_TABLE", "no spaces please")],
            &["ORDERS_TABLE"],
        ),
    ];
    for (name, env, named) in cases {
        let env = env
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut running = Running::start(name, env).await;
        let error = match running.api.wait_init_error(WAIT).await {
            Ok(error) => error,
            Err(err) => panic!("{name}: {err}\n{}", running.process.transcript()),
        };
        assert_eq!(error.error_type, "InvalidConfiguration", "{name}");
        for variable in named {
            assert!(
                error.error_message.contains(variable),
                "{name}: the message must name {variable}: {}",
                error.error_message
            );
        }
        let status = running.process.wait_exit(WAIT).await.unwrap();
        assert!(!status.success(), "{name} must exit non-zero, got {status}");
        assert_eq!(
            running.api.next_calls(),
            0,
            "{name} must not ask for events"
        );
        assert_eq!(
            running.api.init_error().map(|e| e.count),
            Some(1),
            "{name} reports its init error once"
        );
        // The log line says the same, as JSON.
        let logged = running.process.json_lines();
        assert!(
            logged
                .iter()
                .any(|l| l["level"] == "ERROR" && l.to_string().contains(named[0])),
            "{name}: no JSON error log naming {}:\n{}",
            named[0],
            running.process.transcript()
        );
    }
}

#[tokio::test]
async fn api_handler_serves_http_api_events() {
    let Some((moto, resources)) =
        Moto::provisioned_or_skip("api_handler_serves_http_api_events").await
    else {
        return;
    };
    let running = Running::on_moto("api_handler", &moto, &resources, &[]).await;

    // POST /orders → 202, and the workflow execution exists in moto.
    let reply = running
        .invoke(events::post_order(&events::order_request(), None))
        .await
        .response();
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    let order_id = body["order_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "RECEIVED");
    assert_eq!(
        reply["headers"]["location"].as_str(),
        Some(format!("/orders/{order_id}").as_str()),
        "{reply}"
    );
    let execution = resources
        .sfn()
        .describe_execution()
        .execution_arn(
            dofs_core::StateMachineArn::parse(&resources.state_machine_arn)
                .unwrap()
                .execution_arn(&order_id),
        )
        .send()
        .await
        .expect("the execution named after the order exists");
    let input: Value = serde_json::from_str(execution.input().unwrap()).unwrap();
    assert_eq!(input["order_id"], order_id.as_str());
    assert_eq!(input["customer_name"], "Ada Lovelace");

    // GET of an accepted order that is not stored yet: from the execution.
    let reply = running
        .invoke(events::get_order(&order_id))
        .await
        .response();
    assert_eq!(reply["statusCode"], 200, "{reply}");

    // GET of an unknown order → 404; bad bodies → 4xx, never 5xx.
    let reply = running
        .invoke(events::get_order(OrderId::generate().as_str()))
        .await
        .response();
    assert_eq!(reply["statusCode"], 404, "{reply}");
    let malformed = events::http_request(
        "POST",
        "/orders",
        &[("content-type", "application/json")],
        Some("{\"customer_name\": "),
    );
    assert_eq!(
        running.invoke(malformed).await.response()["statusCode"],
        400
    );
    let invalid = events::post_order(&json!({"customer_name": "", "items": []}), None);
    let reply = running.invoke(invalid).await.response();
    assert_eq!(reply["statusCode"], 400, "{reply}");
    let text = events::http_request(
        "POST",
        "/orders",
        &[("content-type", "text/plain")],
        Some("hello"),
    );
    assert_eq!(running.invoke(text).await.response()["statusCode"], 415);

    // Logs are JSON with the order id; the accepted order was counted.
    let logs = running.json_stdout();
    assert!(
        logs.iter()
            .any(|l| l.to_string().contains(&order_id) && l.get("level").is_some()),
        "no log line carries the order id:\n{}",
        running.process.transcript()
    );
    let emf = running.emf_with("OrdersAccepted");
    assert!(
        !emf.is_empty(),
        "no EMF line with OrdersAccepted:\n{}",
        running.process.transcript()
    );
    assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "DOFS");
}

#[tokio::test]
async fn validator_returns_the_verdicts_and_error_types_the_workflow_matches() {
    let running = Running::start("validator", vec![]).await;
    let id = OrderId::generate();
    let submission = serde_json::to_value(sample_submission(&id)).unwrap();

    let reply = running.invoke(submission.clone()).await.response();
    assert_eq!(reply["order"]["order_id"], id.as_str());
    assert_eq!(reply["order"]["status"], "VALIDATED");
    assert_eq!(reply["verdict"], "valid");
    assert!(reply["reason"].is_null(), "{reply}");

    // A business rule broken: a successful reply with the verdict the
    // workflow's CheckVerdict routes to RejectOrder (not a Lambda error,
    // which AWS/Lambda Errors would count).
    let mut duplicate = submission.clone();
    let line = duplicate["items"][0].clone();
    duplicate["items"].as_array_mut().unwrap().push(line);
    let rejected = running.invoke(duplicate).await.response();
    assert_eq!(rejected["verdict"], "rejected", "{rejected}");
    assert_eq!(rejected["order"]["status"], "RECEIVED", "{rejected}");
    assert!(
        rejected["reason"]
            .as_str()
            .is_some_and(|r| r.contains("repeated")),
        "{rejected}"
    );

    // Not a submission at all: InvalidInput (not retried).
    let (error_type, _) = running.invoke(json!({"hello": "world"})).await.error();
    assert_eq!(error_type, "InvalidInput");

    // Still warm after errors.
    let again = running.invoke(submission).await.response();
    assert_eq!(again["order"]["status"], "VALIDATED");
}

#[tokio::test]
async fn order_storage_writes_the_order_to_the_table() {
    let Some((moto, resources)) =
        Moto::provisioned_or_skip("order_storage_writes_the_order_to_the_table").await
    else {
        return;
    };
    let running = Running::on_moto("order_storage", &moto, &resources, &[]).await;
    let order = sample_order(OrderStatus::Validated);
    let reply = running
        .invoke(json!({"action": "store", "order": order}))
        .await
        .response();
    assert_eq!(reply["order"]["status"], "PENDING", "{reply}");

    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let stored = store
        .get(&order.order_id)
        .await
        .unwrap()
        .expect("the item is written");
    assert_eq!(stored.status, OrderStatus::Pending);

    // The Step Functions retry of the same step is idempotent.
    let again = running
        .invoke(json!({"action": "store", "order": order}))
        .await
        .response();
    assert_eq!(again["order"]["status"], "PENDING");

    let (error_type, _) = running.invoke(json!({"action": "drop"})).await.error();
    assert_eq!(error_type, "InvalidInput");
    assert!(
        !running.emf_with("OrdersStored").is_empty(),
        "{}",
        running.process.transcript()
    );
}

#[tokio::test]
async fn fulfill_order_fails_only_the_poisoned_record() {
    let Some((moto, resources)) =
        Moto::provisioned_or_skip("fulfill_order_fails_only_the_poisoned_record").await
    else {
        return;
    };
    let running =
        Running::on_moto("fulfill_order", &moto, &resources, &[("FAILURE_RATE", "0")]).await;
    let store = AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let order = sample_order(OrderStatus::Pending);
    store.insert(&order).await.unwrap();

    let good = SqsRecord::synthetic(serde_json::to_string(&order).unwrap(), 1);
    let poisoned = SqsRecord::synthetic("{not an order", 1);
    let queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let reply = running
        .invoke(events::sqs_event(
            &queue_arn,
            &[good.clone(), poisoned.clone()],
        ))
        .await
        .response();
    assert_eq!(
        reply["batchItemFailures"],
        json!([{"itemIdentifier": poisoned.message_id}]),
        "only the poisoned record fails: {reply}"
    );
    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Fulfilled);

    // A redelivery of the fulfilled order is acknowledged, not failed.
    let reply = running
        .invoke(events::sqs_event(&queue_arn, &[good]))
        .await
        .response();
    assert_eq!(reply["batchItemFailures"], json!([]), "{reply}");
    assert!(
        !running.emf_with("OrdersFulfilled").is_empty(),
        "{}",
        running.process.transcript()
    );
}

#[tokio::test]
async fn dlq_handler_records_the_failure_and_marks_the_order_failed() {
    let Some((moto, resources)) =
        Moto::provisioned_or_skip("dlq_handler_records_the_failure_and_marks_the_order_failed")
            .await
    else {
        return;
    };
    let running = Running::on_moto("dlq_handler", &moto, &resources, &[]).await;
    let aws = AwsClients::new(resources.sdk.clone());
    let store = aws.order_store(&resources.orders_table);
    let order = sample_order(OrderStatus::Pending);
    store.insert(&order).await.unwrap();

    let record = SqsRecord::synthetic(serde_json::to_string(&order).unwrap(), 3);
    let queue_arn = events::queue_arn_from_url(&resources.dead_letter_queue_url);
    let reply = running
        .invoke(events::sqs_event(&queue_arn, &[record]))
        .await
        .response();
    assert_eq!(reply["batchItemFailures"], json!([]), "{reply}");

    let stored = store.get(&order.order_id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Failed);
    let failed = dofs_core::FailedOrderStore::get(
        &aws.failed_order_store(&resources.failed_orders_table),
        &order.order_id,
    )
    .await
    .unwrap()
    .expect("a failed_orders row");
    assert_eq!(failed.receive_count, 3);
    assert!(
        !running.emf_with("OrdersDeadLettered").is_empty(),
        "{}",
        running.process.transcript()
    );
}
