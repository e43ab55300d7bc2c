//! The host-facing API of the step interpreter: an unknown cursor state, `Send`
//! futures, error display. These pin the Rust interface, not a Step Functions
//! behaviour; the one AWS fact used (a bad cursor is `States.Runtime`) comes from
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>.

use super::helpers::*;
use dofs_asl::{Cursor, Next, TaskFailure};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;

#[tokio::test]
async fn unknown_cursor_state_fails_instead_of_panicking() {
    let m = machine(json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}));
    let mut rng = StdRng::seed_from_u64(1);
    let step = m
        .advance(
            Cursor::at("Gone", json!({})),
            &context(&json!({})),
            &ScriptedTasks::new(),
            t0(),
            &mut rng,
        )
        .await;
    assert!(matches!(step.next, Next::Failed { ref error, .. } if error == "States.Runtime"));
}

#[test]
fn machine_is_shareable_and_advance_can_be_spawned() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>(_: &T) {}
    let m = order_workflow();
    is_send_sync(&m);
    let ctx = context(&json!({}));
    let tasks = ScriptedTasks::new();
    let mut rng = StdRng::seed_from_u64(1);
    let future = m.advance(m.start(json!({})), &ctx, &tasks, t0(), &mut rng);
    is_send(&future);
}

#[test]
fn task_failure_displays_error_and_cause() {
    assert_eq!(TaskFailure::new("E", "c").to_string(), "E: c");
}

#[test]
fn task_failure_with_an_empty_cause_displays_the_error_alone() {
    assert_eq!(TaskFailure::new("E", "").to_string(), "E");
}

#[test]
fn unsupported_definitions_say_so_and_where() {
    let err = dofs_asl::StateMachine::from_json(
        &json!({"StartAt": "Fan", "States": {"Fan": {"Type": "Parallel", "End": true}}})
            .to_string(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "not supported by dofs-asl at States.Fan.Type: `Parallel` states are not supported by this interpreter, which runs Task, Pass, Choice, Wait, Succeed and Fail states"
    );
}
