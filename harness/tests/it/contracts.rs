//! The dofs-core port contract suites, run on the dofs-aws DynamoDB and
//! Step Functions adapters against moto (`aws/src/lib.rs` points here).

use std::time::Duration;

use dofs_aws::AwsClients;
use dofs_core::testkit::{contract, sample_order};
use dofs_core::{ErrorKind, OrderId, OrderStatus, OrderStore, StateMachineArn, Workflow};
use dofs_lambda_harness::moto::Moto;

#[tokio::test]
async fn dynamodb_and_step_functions_adapters_meet_the_port_contracts() {
    let test = "dynamodb_and_step_functions_adapters_meet_the_port_contracts";
    let Some((_moto, resources)) = Moto::provisioned_or_skip(test).await else {
        return;
    };
    let aws = AwsClients::new(resources.sdk.clone());

    let orders = aws.order_store(&resources.orders_table);
    // Not the racing-transitions case: moto's server handles requests on
    // concurrent threads and does not serialise conditional updates of one
    // item as DynamoDB does, so two of eight racers can both win there. The
    // adapter's part of that promise — it sends the ConditionExpression and
    // maps ConditionalCheckFailed to Unchanged — is what the sequential
    // cases check; the race itself is checked on the SQLite and memory stores.
    contract::order_store_sequential(&orders).await;
    // Fresh ids every run: the suite holds on a table that already has data.
    contract::order_store_sequential(&orders).await;

    let failed = aws.failed_order_store(&resources.failed_orders_table);
    contract::failed_order_store(&failed).await;

    let arn = StateMachineArn::parse(&resources.state_machine_arn).unwrap();
    let workflow = aws.workflow(arn);
    contract::workflow(&workflow).await;
    // Not `contract::workflow_trace_header`: moto 5.2.5's StartExecution
    // handler drops `traceHeader` (only the ARN, name and input reach its
    // backend), so DescribeExecution never returns one and the adapter
    // reads None here. The memory and local adapters run it; the header
    // StartExecution sends is checked at the HTTP layer in `xray.rs`.
}

#[tokio::test]
async fn sdk_errors_keep_their_kind_and_source() {
    let test = "sdk_errors_keep_their_kind_and_source";
    let Some(moto) = Moto::start_or_skip(test).await else {
        return;
    };
    let sdk = moto.sdk_config().await;
    let aws = AwsClients::new(sdk.clone());

    // A table that does not exist is a misconfiguration: not retryable.
    let missing = aws.order_store("no-such-table");
    let err = missing.get(&OrderId::generate()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{}", err.chain());
    assert!(
        err.chain().contains("ResourceNotFoundException"),
        "{}",
        err.chain()
    );

    // An execution input the service refuses (bad name) is invalid input.
    let resources = moto.provision().await.unwrap();
    let wf = aws.workflow(StateMachineArn::parse(&resources.state_machine_arn).unwrap());
    let not_a_machine = aws.workflow(
        StateMachineArn::parse("arn:aws:states:us-east-1:123456789012:stateMachine:missing")
            .unwrap(),
    );
    let submission = dofs_core::testkit::sample_submission(&OrderId::generate());
    let err = not_a_machine.start(&submission, None).await.unwrap_err();
    assert!(!err.kind.is_retryable(), "{:?}: {}", err.kind, err.chain());
    assert!(wf.start(&submission, None).await.is_ok());

    // Nobody listening: a dispatch failure, which is transient.
    let closed_port = dofs_lambda_harness::moto::free_port().unwrap();
    let unreachable = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "x", "y", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await;
    let store = AwsClients::new(unreachable).order_store("orders");
    let err = store
        .insert(&sample_order(OrderStatus::Received))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transient, "{}", err.chain());
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK error is kept"
    );
}
