//! The order's whole happy path on moto, with every function a real
//! bootstrap process: api_handler starts the execution; its input (read
//! back from moto) goes to validator, whose output goes to order_storage;
//! the stored order is sent to the moto queue as the workflow's
//! `sqs:sendMessage` would, with the trace header; the received message is
//! fulfill_order's batch; the order ends FULFILLED in moto's table and
//! api_handler reports it so.

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use dofs_aws::AwsClients;
use dofs_core::{OrderId, OrderStatus, OrderStore, StateMachineArn};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::runtime_api::RuntimeApi;
use serde_json::{json, Value};

struct Function {
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Function {
    async fn start(name: &str, moto: &Moto, resources: &Resources) -> Function {
        let bin_dir = build_bootstraps(Profile::Debug).unwrap_or_else(|e| panic!("{e}"));
        let mut env = moto.env();
        env.extend(resources.function_env());
        env.push(("FAILURE_RATE".into(), "0".into()));
        let api = RuntimeApi::start(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let process = FunctionProcess::start_bootstrap(&bin_dir, name, &api.host_port(), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        Function { api, process }
    }

    async fn invoke(&self, payload: Value, trace_header: &str) -> Value {
        match self.api.invoke_traced(payload, trace_header).await {
            Ok(outcome) => outcome.response(),
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        }
    }
}

#[tokio::test]
async fn an_order_goes_from_the_api_to_fulfilled_on_moto() {
    let test = "an_order_goes_from_the_api_to_fulfilled_on_moto";
    let Some((moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let aws = AwsClients::new(resources.sdk.clone());
    let api_handler = Function::start("api_handler", &moto, &resources).await;
    let validator = Function::start("validator", &moto, &resources).await;
    let order_storage = Function::start("order_storage", &moto, &resources).await;
    let fulfill_order = Function::start("fulfill_order", &moto, &resources).await;

    // 1. POST /orders.
    let api_trace = dofs_lambda_harness::runtime_api::new_trace_header();
    let reply = api_handler
        .invoke(
            events::post_order(&events::order_request(), Some("chain-test-key")),
            &api_trace,
        )
        .await;
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    let order_id = OrderId::parse(body["order_id"].as_str().unwrap()).unwrap();
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    // The trace the workflow carries on: same root, a new parent.
    let workflow_trace = format!("Root={trace_id};Parent=53995c3f42cd8ad8;Sampled=1");

    // 2. The execution input, as Step Functions hands it to ValidateOrder.
    let arn = StateMachineArn::parse(&resources.state_machine_arn).unwrap();
    let execution = resources
        .sfn()
        .describe_execution()
        .execution_arn(arn.execution_arn(order_id.as_str()))
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(execution.input().unwrap()).unwrap();

    // 3. ValidateOrder → StoreOrder, with the ASL's ResultSelector/Parameters.
    let validated = validator.invoke(input, &workflow_trace).await;
    assert_eq!(validated["order"]["status"], "VALIDATED", "{validated}");
    let stored = order_storage
        .invoke(
            json!({"action": "store", "order": validated["order"]}),
            &workflow_trace,
        )
        .await;
    assert_eq!(stored["order"]["status"], "PENDING", "{stored}");

    // 4. EnqueueOrder: the stored order on the queue, with AWSTraceHeader,
    // as the ASL's sqs:sendMessage (tracing on) sends it.
    let trace_attribute = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(&workflow_trace)
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

    // 5. The event source mapping's batch → fulfill_order.
    let received = resources
        .sqs()
        .receive_message()
        .queue_url(&resources.order_queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let records: Vec<SqsRecord> = received
        .messages()
        .iter()
        .map(SqsRecord::from_message)
        .collect();
    assert_eq!(records.len(), 1, "exactly the one order is queued");
    assert_eq!(
        records[0].trace_header.as_deref(),
        Some(workflow_trace.as_str())
    );
    let queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let batch = fulfill_order
        .invoke(events::sqs_event(&queue_arn, &records), &api_trace)
        .await;
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");

    // 6. FULFILLED in moto's table, with the whole history.
    let store = aws.order_store(&resources.orders_table);
    let final_order = store
        .get(&order_id)
        .await
        .unwrap()
        .expect("the order is stored");
    assert_eq!(final_order.status, OrderStatus::Fulfilled);
    let statuses: Vec<OrderStatus> = final_order.history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            OrderStatus::Received,
            OrderStatus::Validated,
            OrderStatus::Pending,
            OrderStatus::Fulfilled
        ]
    );

    // 7. And the client sees it.
    let reply = api_handler
        .invoke(events::get_order(order_id.as_str()), &api_trace)
        .await;
    assert_eq!(reply["statusCode"], 200, "{reply}");
    let seen: Value = serde_json::from_str(reply["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["status"], "FULFILLED", "{seen}");

    // One order, one trace: every function logged the order id next to the
    // trace id the API handed out.
    for function in [&api_handler, &validator, &order_storage, &fulfill_order] {
        let lines = function.process.json_lines();
        assert!(
            lines.iter().any(|l| {
                let text = l.to_string();
                text.contains(order_id.as_str()) && text.contains(&trace_id)
            }),
            "{} logged no line with order {order_id} and trace {trace_id}:\n{}",
            function.process.name,
            function.process.transcript()
        );
    }
}
