//! The engine persists every state: an execution stopped between states (as
//! by a crash) resumes in a new engine at the next state, and no completed
//! task runs twice.

use std::sync::Arc;

use dofs_asl::testing::ScriptedTasks;
use dofs_asl::{StateMachine, TaskFailure};
use dofs_core::{ExecutionStatus, OrderId, SystemClock, Workflow};
use dofs_local::definitions::{render, WORKFLOW_ASL};
use dofs_local::observability::metrics::ServiceMetrics;
use dofs_local::services::step_functions::{template_vars, EngineConfig, LocalWorkflow};
use dofs_local::shutdown::Shutdown;
use dofs_local::store::Db;
use serde_json::{json, Value};

/// Answers each task like the real services would.
fn like_the_services(resource: &str, parameters: &Value) -> Result<Value, TaskFailure> {
    Ok(match resource {
        "arn:aws:states:::lambda:invoke" => {
            let payload = &parameters["Payload"];
            let order = payload
                .get("order")
                .cloned()
                .unwrap_or_else(|| payload.clone());
            json!({"Payload": {"order": order}, "StatusCode": 200})
        }
        _ => json!({"MessageId": "m-1", "MD5OfMessageBody": "x"}),
    })
}

fn machine() -> Arc<StateMachine> {
    let rendered = render(WORKFLOW_ASL, &template_vars("http://127.0.0.1:9")).unwrap();
    Arc::new(StateMachine::from_json(&rendered).unwrap())
}

fn workflow(db: &Db) -> LocalWorkflow {
    LocalWorkflow::new(
        db.clone(),
        Arc::new(SystemClock),
        machine(),
        ServiceMetrics::off(),
    )
}

#[tokio::test]
async fn an_interrupted_execution_resumes_at_its_next_state() {
    let dir = tempfile::tempdir().unwrap();
    let id = OrderId::generate();
    let submission = dofs_core::testkit::sample_submission(&id);

    let stop = Shutdown::new();
    {
        let db = Db::open(dir.path()).unwrap();
        let workflow = workflow(&db);
        workflow.start(&submission, None).await.unwrap();
        let stopping = stop.clone();
        let first = Arc::new(
            ScriptedTasks::new()
                .otherwise(like_the_services)
                .on_each_call(move |call| {
                    if call.state == "StoreOrder" {
                        stopping.trigger();
                    }
                }),
        );
        let engine = workflow.engine(first.clone(), config());
        engine.drive(id.as_str(), Some(&stop)).await.unwrap();
        assert_eq!(first.states_called(), ["ValidateOrder", "StoreOrder"]);
        let view = workflow.describe(&id).await.unwrap().unwrap();
        assert_eq!(view.status, ExecutionStatus::Running);
    }

    // "Restart": a new handle on the same data dir, a new engine.
    let db = Db::open(dir.path()).unwrap();
    let workflow = workflow(&db);
    let second = Arc::new(ScriptedTasks::new().otherwise(like_the_services));
    let engine = workflow.engine(second.clone(), config());
    assert_eq!(engine.run_due_once().await.unwrap(), 1);
    assert_eq!(second.states_called(), ["EnqueueOrder"]);
    let view = workflow.describe(&id).await.unwrap().unwrap();
    assert_eq!(view.status, ExecutionStatus::Succeeded);
    assert_eq!(view.input, submission);
    // Nothing left to run.
    assert_eq!(engine.run_due_once().await.unwrap(), 0);
}

#[tokio::test]
async fn local_workflow_passes_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let workflow = workflow(&db);
    dofs_core::testkit::contract::workflow(&workflow).await;
    dofs_core::testkit::contract::workflow(&workflow).await;
}

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        poll_interval: std::time::Duration::from_millis(50),
    }
}
