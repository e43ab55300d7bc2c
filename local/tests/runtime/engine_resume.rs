//! The engine persists every state: an execution stopped between states (as
//! by a crash) resumes in a new engine at the next state, and no completed
//! task runs twice.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dofs_core::{ExecutionStatus, OrderId, SystemClock, Workflow};
use dofs_local::asl::{StateMachine, TaskCall, TaskFailure, TaskInvoker};
use dofs_local::db::Db;
use dofs_local::engine::{self, Engine, EngineConfig, LocalWorkflow};
use dofs_local::queue::Queues;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Answers each task like the real services would, records which states
/// called, and raises `stop` when a given state runs.
struct Scripted {
    calls: Mutex<Vec<String>>,
    stop_after: Option<(String, watch::Sender<bool>)>,
}

#[async_trait]
impl TaskInvoker for Scripted {
    async fn invoke(
        &self,
        resource: &str,
        parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        self.calls.lock().unwrap().push(call.state.clone());
        if let Some((state, stop)) = &self.stop_after {
            if *state == call.state {
                stop.send_replace(true);
            }
        }
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
}

fn machine(db: &Db) -> Arc<StateMachine> {
    let queues = Queues::new(db.clone(), Arc::new(SystemClock), "http://127.0.0.1:9");
    let rendered = engine::render_workflow(
        engine::WORKFLOW_ASL,
        &engine::template_vars(&queues, "dofs-order-queue", "dofs-order-dlq"),
    )
    .unwrap();
    Arc::new(StateMachine::from_json(&rendered).unwrap())
}

#[tokio::test]
async fn an_interrupted_execution_resumes_at_its_next_state() {
    let dir = tempfile::tempdir().unwrap();
    let id = OrderId::generate();
    let submission = dofs_core::testkit::sample_submission(&id);

    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let db = Db::open(dir.path()).unwrap();
        let workflow = LocalWorkflow::new(db.clone(), Arc::new(SystemClock), machine(&db));
        workflow.start(&submission, None).await.unwrap();
        let first = Arc::new(Scripted {
            calls: Mutex::default(),
            stop_after: Some(("StoreOrder".into(), stop_tx)),
        });
        let engine = Engine::new(&workflow, first.clone(), config());
        engine.drive(id.as_str(), Some(&stop_rx)).await.unwrap();
        assert_eq!(
            *first.calls.lock().unwrap(),
            ["ValidateOrder", "StoreOrder"]
        );
        let view = workflow.describe(&id).await.unwrap().unwrap();
        assert_eq!(view.status, ExecutionStatus::Running);
    }

    // "Restart": a new handle on the same data dir, a new engine.
    let db = Db::open(dir.path()).unwrap();
    let workflow = LocalWorkflow::new(db.clone(), Arc::new(SystemClock), machine(&db));
    let second = Arc::new(Scripted {
        calls: Mutex::default(),
        stop_after: None,
    });
    let engine = Engine::new(&workflow, second.clone(), config());
    assert_eq!(engine.run_due_once().await.unwrap(), 1);
    assert_eq!(*second.calls.lock().unwrap(), ["EnqueueOrder"]);
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
    let workflow = LocalWorkflow::new(db.clone(), Arc::new(SystemClock), machine(&db));
    dofs_core::testkit::contract::workflow(&workflow).await;
    dofs_core::testkit::contract::workflow(&workflow).await;
}

fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        poll_interval: std::time::Duration::from_millis(50),
    }
}
