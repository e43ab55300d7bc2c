//! Shared support: a fixed clock and execution context, a driver that runs an
//! execution to its end (optionally persisting the cursor between steps), and
//! the rendered `terraform/order_workflow.asl.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
pub use dofs_asl::testing::ScriptedTasks;
use dofs_asl::{Cursor, ExecutionContext, HistoryEvent, Next, StateMachine};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .unwrap()
}

pub fn context(input: &Value) -> ExecutionContext {
    ExecutionContext {
        execution_name: "o-1".to_owned(),
        execution_arn: "arn:aws:states:eu-west-1:000000000000:execution:order-workflow:o-1"
            .to_owned(),
        state_machine_arn: "arn:aws:states:eu-west-1:000000000000:stateMachine:order-workflow"
            .to_owned(),
        start_time: t0(),
        trace_header: Some(
            "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
        ),
        input: input.clone(),
    }
}

/// Everything an execution did.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub end: Next,
    pub events: Vec<HistoryEvent>,
    /// Each Sleep: the state, when it was asked for, and until when.
    pub sleeps: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// The state of each step, in order.
    pub path: Vec<String>,
}

impl Run {
    pub fn kinds(&self) -> Vec<String> {
        self.events.iter().map(|e| e.kind.to_string()).collect()
    }

    /// Sleep lengths in milliseconds, for one state.
    pub fn delays_ms(&self, state: &str) -> Vec<i64> {
        self.sleeps
            .iter()
            .filter(|(s, _, _)| s == state)
            .map(|(_, at, until)| (*until - *at).num_milliseconds())
            .collect()
    }
}

/// Drives an execution to its end, with a clock that jumps to each wake-up.
/// With `persist`, the cursor goes through JSON between every step, as the
/// host stores it.
pub async fn run_with(
    machine: &StateMachine,
    input: Value,
    tasks: &ScriptedTasks,
    seed: u64,
    persist: bool,
) -> Run {
    let ctx = context(&input);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cursor = machine.start(input);
    let mut now = t0();
    let mut run = Run {
        end: Next::Failed {
            error: String::new(),
            cause: String::new(),
        },
        events: Vec::new(),
        sleeps: Vec::new(),
        path: Vec::new(),
    };
    for _ in 0..1000 {
        if persist {
            let stored = serde_json::to_string(&cursor).unwrap();
            cursor = serde_json::from_str::<Cursor>(&stored).unwrap();
        }
        run.path.push(cursor.state.clone());
        let step = machine.advance(cursor, &ctx, tasks, now, &mut rng).await;
        run.events.extend(step.events);
        match step.next {
            Next::Continue(next) => cursor = next,
            Next::Sleep {
                cursor: next,
                until,
            } => {
                run.sleeps.push((next.state.clone(), now, until));
                now = until.max(now);
                cursor = next;
            }
            end => {
                run.end = end;
                return run;
            }
        }
    }
    panic!("execution did not end within 1000 steps");
}

pub async fn run(machine: &StateMachine, input: Value, tasks: &ScriptedTasks) -> Run {
    run_with(machine, input, tasks, 7, false).await
}

pub fn machine(definition: Value) -> StateMachine {
    StateMachine::from_json(&definition.to_string()).unwrap()
}

pub fn order_workflow() -> StateMachine {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../terraform/order_workflow.asl.json"
    );
    let template = std::fs::read_to_string(path).unwrap();
    let vars: BTreeMap<String, String> = [
        ("validator_function_arn", VALIDATOR),
        ("order_storage_function_arn", STORAGE),
        ("order_queue_url", ORDER_QUEUE),
        ("dead_letter_queue_url", DLQ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // The file's placeholders are plain `${name}`s (Terraform's templatefile).
    let rendered = vars.iter().fold(template, |text, (name, value)| {
        text.replace(&format!("${{{name}}}"), value)
    });
    assert!(
        !rendered.contains("${"),
        "a placeholder is left: {rendered}"
    );
    StateMachine::from_json(&rendered).unwrap()
}

pub const VALIDATOR: &str = "arn:aws:lambda:eu-west-1:000000000000:function:validator";
pub const STORAGE: &str = "arn:aws:lambda:eu-west-1:000000000000:function:order_storage";
pub const ORDER_QUEUE: &str = "http://127.0.0.1:4566/000000000000/orders";
pub const DLQ: &str = "http://127.0.0.1:4566/000000000000/orders-dlq";

/// Runs one `.$` expression in a Pass state's Parameters (`{"r.$": expr}`)
/// on `input`: the value, or the execution's error and cause.
pub async fn eval_field(expr: &str, input: Value) -> Result<Value, (String, String)> {
    let m = machine(serde_json::json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Parameters": {"r.$": expr}, "End": true}
    }}));
    match run(&m, input, &ScriptedTasks::new()).await.end {
        Next::Succeeded { mut output } => Ok(output["r"].take()),
        Next::Failed { error, cause } => Err((error, cause)),
        other => panic!("{other:?}"),
    }
}

/// The error name of a failed [`eval_field`].
pub async fn eval_error(expr: &str, input: Value) -> String {
    match eval_field(expr, input).await {
        Ok(value) => panic!("{expr} gave {value}"),
        Err((error, _)) => error,
    }
}

/// Whether `definition` loads.
pub fn loads(definition: Value) -> Result<StateMachine, dofs_asl::AslError> {
    StateMachine::from_json(&definition.to_string())
}

/// A Pass state with `{"r.$": expr}` loads.
pub fn field_loads(expr: &str) -> bool {
    loads(serde_json::json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Parameters": {"r.$": expr}, "End": true}
    }}))
    .is_ok()
}
