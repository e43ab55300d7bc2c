//! The AWS calls each function's bootstrap really makes, recorded where
//! IAM would see them.
//!
//! IAM authorises a call by the credentials that signed it, so here each
//! function is given credentials of its own (an access key id naming it)
//! and moto runs behind `terraform/tests/moto_wrapper.py --record`, which
//! logs every request with the access key of its SigV4 signature. One
//! scenario takes every function through each branch of its code that
//! calls AWS: an idempotent `POST /orders` (the replay lookup in the orders
//! table, the start, the RECEIVED record), a `GET` before and after the
//! workflow stores the order, validation, a
//! store and its duplicate, fulfilment, and a dead letter for an order that
//! was never stored (read, create, fail, record).
//!
//! With `DOFS_IAM_RECORD_OUT=<file>` the test writes what it saw there:
//! which access key is which function, the environment the functions were
//! given, and every request they signed. `terraform/tests/check_iam.py`
//! (run by `scripts/terraform-test.sh`, which runs this test for it) turns
//! the requests into IAM actions and holds them against the roles Terraform
//! creates: each function's recorded calls must be among the calls derived
//! from its code, which must equal its role's grants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dofs_core::testkit::sample_order;
use dofs_core::{OrderId, OrderStatus, StateMachineArn};
use dofs_lambda_harness::events::{self, SqsRecord};
use dofs_lambda_harness::function::{build_bootstraps, FunctionProcess, Profile, FUNCTIONS};
use dofs_lambda_harness::moto::{Moto, Resources};
use dofs_lambda_harness::runtime_api::RuntimeApi;
use dofs_lambda_harness::{tools, workspace_root};
use serde_json::{json, Value};

/// The access key id a function signs with: IAM's principal, as moto logs it.
fn access_key(function: &str) -> String {
    format!("AKIADOFS{}", function.replace('_', "").to_ascii_uppercase())
}

struct Function {
    api: RuntimeApi,
    process: FunctionProcess,
}

impl Function {
    async fn start(name: &str, bin_dir: &Path, moto: &Moto, resources: &Resources) -> Function {
        let mut env = moto.env();
        env.extend(resources.function_env());
        env.push(("FAILURE_RATE".into(), "0".into()));
        // Later entries win: this function's own credentials.
        env.push(("AWS_ACCESS_KEY_ID".into(), access_key(name)));
        let api = RuntimeApi::start(name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let process = FunctionProcess::start_bootstrap(bin_dir, name, &api.host_port(), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        Function { api, process }
    }

    async fn invoke(&self, payload: Value) -> Value {
        match self.api.invoke(payload).await {
            Ok(outcome) => outcome.response(),
            Err(err) => panic!("{err}\n{}", self.process.transcript()),
        }
    }
}

/// An executable that starts the recording moto wrapper with moto_server's
/// command line (what [`Moto::start`] runs).
fn recording_moto_launcher(python: &Path, dir: &Path, record: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = workspace_root().join("terraform/tests/moto_wrapper.py");
    let launcher = dir.join("moto_server");
    let script = format!(
        "#!/bin/sh\nexec '{}' '{}' --record '{}' \"$@\"\n",
        python.display(),
        wrapper.display(),
        record.display()
    );
    std::fs::write(&launcher, script).expect("writing the moto launcher");
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))
        .expect("making the moto launcher executable");
    launcher
}

fn body(reply: &Value) -> Value {
    serde_json::from_str(reply["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn each_function_s_aws_calls_are_recorded_under_its_own_credentials() {
    let test = "each_function_s_aws_calls_are_recorded_under_its_own_credentials";
    if tools::require("moto_server", test).is_none() {
        return;
    }
    let Some(python) = tools::require("python3", test) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("dofs-iam-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("creating the scratch directory");
    let record = dir.join("requests.jsonl");
    let launcher = recording_moto_launcher(&python, &dir, &record);
    let moto = Moto::start(&launcher)
        .await
        .unwrap_or_else(|e| panic!("{test}: the recording moto did not start: {e}"));
    let resources = moto
        .provision()
        .await
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let bin_dir = build_bootstraps(Profile::Debug).unwrap_or_else(|e| panic!("{e}"));
    let mut functions = BTreeMap::new();
    for name in FUNCTIONS {
        functions.insert(
            name,
            Function::start(name, &bin_dir, &moto, &resources).await,
        );
    }
    let f = |name: &str| &functions[name];

    // api_handler: an idempotent POST looks for an earlier order in the
    // table, starts the execution, then records the order RECEIVED; a GET
    // before the workflow stores it reads that record.
    let reply = f("api_handler")
        .invoke(events::post_order(
            &events::order_request(),
            Some("iam-key-1"),
        ))
        .await;
    assert_eq!(reply["statusCode"], 202, "{reply}");
    let order_id = OrderId::parse(body(&reply)["order_id"].as_str().unwrap()).unwrap();
    let reply = f("api_handler")
        .invoke(events::get_order(order_id.as_str()))
        .await;
    assert_eq!(reply["statusCode"], 200, "{reply}");

    // validator → order_storage (twice: the second store is the duplicate a
    // retried task makes) → fulfill_order.
    let arn = StateMachineArn::parse(&resources.state_machine_arn).unwrap();
    let execution = resources
        .sfn()
        .describe_execution()
        .execution_arn(arn.execution_arn(order_id.as_str()))
        .send()
        .await
        .unwrap();
    let input: Value = serde_json::from_str(execution.input().unwrap()).unwrap();
    let validated = f("validator").invoke(input).await;
    assert_eq!(validated["order"]["status"], "VALIDATED", "{validated}");
    let store = json!({"action": "store", "order": validated["order"]});
    let stored = f("order_storage").invoke(store.clone()).await;
    assert_eq!(stored["order"]["status"], "PENDING", "{stored}");
    let again = f("order_storage").invoke(store).await;
    assert_eq!(again["order"]["status"], "PENDING", "{again}");
    let queue_arn = events::queue_arn_from_url(&resources.order_queue_url);
    let record_in = SqsRecord::synthetic(stored["order"].to_string(), 1);
    let batch = f("fulfill_order")
        .invoke(events::sqs_event(&queue_arn, &[record_in]))
        .await;
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");
    let reply = f("api_handler")
        .invoke(events::get_order(order_id.as_str()))
        .await;
    assert_eq!(body(&reply)["status"], "FULFILLED", "{reply}");

    // dlq_handler: a dead-lettered order that was never stored is created,
    // marked FAILED and recorded in failed_orders.
    let lost = sample_order(OrderStatus::Pending);
    let dlq_arn = events::queue_arn_from_url(&resources.dead_letter_queue_url);
    let dead = SqsRecord::synthetic(serde_json::to_string(&lost).unwrap(), 3);
    let batch = f("dlq_handler")
        .invoke(events::sqs_event(&dlq_arn, &[dead]))
        .await;
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");
    let failed =
        dofs_aws::AwsClients::new(resources.sdk.clone()).order_store(&resources.orders_table);
    let failed = dofs_core::OrderStore::get(&failed, &lost.order_id)
        .await
        .unwrap()
        .expect("the dead-lettered order exists");
    assert_eq!(failed.status, OrderStatus::Failed);

    // Every request is the harness's own (unsigned readiness probes, and
    // provisioning with the "testing" key) or a function's.
    let principals: BTreeMap<String, &str> = FUNCTIONS
        .iter()
        .map(|name| (access_key(name), *name))
        .collect();
    let text = std::fs::read_to_string(&record).expect("reading the request log");
    let mut requests = Vec::new();
    for line in text.lines() {
        let request: Value = serde_json::from_str(line).expect("a JSON request line");
        let key = request["access_key"].as_str().unwrap_or_default();
        if key.is_empty() || key == dofs_lambda_harness::moto::ACCESS_KEY {
            continue;
        }
        assert!(
            principals.contains_key(key),
            "a request signed by an unknown key {key:?}: {request}"
        );
        requests.push(request);
    }
    assert!(!requests.is_empty(), "no function request was recorded");

    if let Some(out) = std::env::var_os("DOFS_IAM_RECORD_OUT") {
        let environment: BTreeMap<String, String> = resources.function_env().into_iter().collect();
        let report = json!({
            "principals": principals,
            "environment": environment,
            "requests": requests,
        });
        std::fs::write(&out, serde_json::to_string_pretty(&report).unwrap())
            .unwrap_or_else(|e| panic!("writing {}: {e}", PathBuf::from(&out).display()));
    }
    drop(functions);
    drop(moto);
    let _ = std::fs::remove_dir_all(&dir);
}
