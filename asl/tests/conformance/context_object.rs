//! The context object (`$$`): its fields, which of them each state type
//! sees, and the fields it can be read from, following
//! <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>
//! ("Context object fields", "Accessing the Context object") and, for the
//! callback token, <https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html>.

use super::helpers::*;
use chrono::TimeZone;
use dofs_asl::{IntegrationPattern, Next, StateMachine};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const EXECUTION_ARN: &str = "arn:aws:states:eu-west-1:000000000000:execution:order-workflow:o-1";
const MACHINE_ARN: &str = "arn:aws:states:eu-west-1:000000000000:stateMachine:order-workflow";

async fn output_of(m: &StateMachine, input: Value, tasks: &ScriptedTasks) -> Value {
    match run(m, input, tasks).await.end {
        Next::Succeeded { output } => output,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_pass_state_sees_execution_state_and_state_machine() {
    // "Context object fields": Execution {Id, Input, Name, RoleArn,
    // StartTime, RedriveCount, RedriveTime}, State {EnteredTime, Name,
    // RetryCount}, StateMachine {Id, Name}, Task {Token}. "The value of the
    // RedriveCount context object is 0, if you've not yet redriven an
    // execution. Further, the RedriveTime context object is only available
    // if you've redriven an execution." A Pass state has no retries and no
    // task token, so neither RetryCount nor Task.
    let m = machine(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$$", "End": true}}}),
    );
    let input = json!({"key": "value"});
    let out = output_of(&m, input.clone(), &ScriptedTasks::new()).await;
    assert_eq!(
        out,
        json!({
            "Execution": {
                "Id": EXECUTION_ARN,
                "Input": input,
                "Name": "o-1",
                "RoleArn": "arn:aws:iam::000000000000:role/order-workflow-role",
                "StartTime": "2026-11-25T10:00:00.000Z",
                "RedriveCount": 0
            },
            "State": {"EnteredTime": "2026-11-25T10:00:00.000Z", "Name": "P"},
            "StateMachine": {"Id": MACHINE_ARN, "Name": "order-workflow"}
        })
    );
}

#[tokio::test]
async fn a_task_state_sees_its_retry_count() {
    // "RetryCount": the example shows `"RetryCount": 3` for a Task.
    let m = machine(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "r", "Parameters": {"retry.$": "$$.State.RetryCount", "entered.$": "$$.State.EnteredTime"},
        "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 5}], "End": true
    }}}));
    let tasks = ScriptedTasks::new()
        .fail("T", "Flaky", "")
        .fail("T", "Flaky", "")
        .on("T", Ok(json!({})));
    run(&m, json!({}), &tasks).await;
    let seen: Vec<Value> = tasks.calls().into_iter().map(|c| c.parameters).collect();
    // EnteredTime is the time the state was entered, not the time of the retry.
    assert_eq!(
        seen,
        [0, 1, 2].map(|n| json!({"retry": n, "entered": "2026-11-25T10:00:00.000Z"}))
    );
}

#[tokio::test]
async fn the_task_token_exists_for_wait_for_task_token_tasks() {
    // The callback pattern: "$$.Task.Token" passed in the Parameters of a
    // `.waitForTaskToken` resource; a new token for each attempt.
    let m = machine(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token"}},
        "Retry": [{"ErrorEquals": ["States.Timeout"]}], "HeartbeatSeconds": 60, "End": true
    }}}));
    let tasks = ScriptedTasks::new()
        .fail("T", "States.HeartbeatTimeout", "no heartbeat")
        .on("T", Ok(json!({"approved": true})));
    let out = output_of(&m, json!({}), &tasks).await;
    assert_eq!(out, json!({"approved": true}));
    let calls = tasks.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.call.pattern, IntegrationPattern::WaitForTaskToken);
        let token = call.call.task_token.clone().unwrap();
        assert!(token.len() >= 32, "{token}");
        assert_eq!(call.parameters["MessageBody"]["token"], token);
        assert_eq!(
            call.call.heartbeat,
            Some(std::time::Duration::from_secs(60))
        );
    }
    assert_ne!(calls[0].call.task_token, calls[1].call.task_token);
}

#[tokio::test]
async fn there_is_no_task_token_outside_a_callback_task() {
    // "The value for a Task field is null if the Parameters field is outside
    // of a task state": $$.Task.Token selects nothing there.
    for state in [
        json!({"Type": "Pass", "Parameters": {"t.$": "$$.Task.Token"}, "End": true}),
        json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"t.$": "$$.Task.Token"}, "End": true}),
    ] {
        let m = machine(json!({"StartAt": "S", "States": {"S": state}}));
        let tasks = ScriptedTasks::new();
        let r = run(&m, json!({}), &tasks).await;
        assert!(tasks.calls().is_empty());
        assert!(
            matches!(r.end, Next::Failed { ref error, .. } if error == "States.Runtime"),
            "{:?}",
            r.end
        );
    }
}

#[tokio::test]
async fn role_arn_is_the_state_machines_role() {
    let m = machine(json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"role.$": "$$.Execution.RoleArn"}, "End": true}}}))
        .with_role_arn("arn:aws:iam::123456789012:role/dofs-order-workflow-role");
    assert_eq!(
        output_of(&m, json!({}), &ScriptedTasks::new()).await,
        json!({"role": "arn:aws:iam::123456789012:role/dofs-order-workflow-role"})
    );
}

#[tokio::test]
async fn a_redriven_execution_shows_its_redrive_count_and_time() {
    let m = machine(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {
        "count.$": "$$.Execution.RedriveCount", "time.$": "$$.Execution.RedriveTime"}, "Next": "Q"},
        "Q": {"Type": "Pass", "Parameters": {"count.$": "$$.Execution.RedriveCount", "time.$": "$$.Execution.RedriveTime"}, "End": true}}}),
    );
    let at = chrono::Utc
        .with_ymd_and_hms(2026, 11, 26, 8, 0, 0)
        .single()
        .unwrap();
    let ctx = context(&json!({}));
    let mut rng = StdRng::seed_from_u64(1);
    let cursor = m.start(json!({})).redrive(at);
    let step = m
        .advance(cursor, &ctx, &ScriptedTasks::new(), at, &mut rng)
        .await;
    let Next::Continue(next) = step.next else {
        panic!("{:?}", step.next)
    };
    // Carried to the next state.
    let step = m
        .advance(next, &ctx, &ScriptedTasks::new(), at, &mut rng)
        .await;
    assert_eq!(
        step.next,
        Next::Succeeded {
            output: json!({"count": 1, "time": "2026-11-26T08:00:00.000Z"})
        }
    );
}

#[tokio::test]
async fn the_context_object_is_readable_from_the_fields_the_page_lists() {
    // "JSONPath states can refer to the context ($$.) from the following
    // JSONPath fields: InputPath, OutputPath, ItemsPath (in Map states),
    // Variable (in Choice states), ResultSelector, Parameters, Variable to
    // variable comparison operators".
    let m = machine(json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [
            {"Variable": "$$.State.Name", "StringEquals": "C", "Next": "D"}
        ]},
        "D": {"Type": "Choice", "Choices": [
            {"Variable": "$.name", "StringEqualsPath": "$$.Execution.Name", "Next": "T"}
        ]},
        "T": {"Type": "Task", "Resource": "r",
              "ResultSelector": {"machine.$": "$$.StateMachine.Name"},
              "ResultPath": "$.selected", "Next": "O"},
        "O": {"Type": "Pass", "OutputPath": "$$.Execution.Input", "End": true}
    }}));
    let tasks = ScriptedTasks::new().on("T", Ok(json!({})));
    let r = run(&m, json!({"name": "o-1"}), &tasks).await;
    assert_eq!(r.path, ["C", "D", "T", "O"]);
    assert_eq!(
        r.end,
        Next::Succeeded {
            output: json!({"name": "o-1"})
        }
    );
    let exited = r
        .events
        .iter()
        .find(|e| e.kind.as_str() == "TaskStateExited")
        .unwrap();
    assert_eq!(
        exited.detail_value()["output"]["selected"],
        json!({"machine": "order-workflow"})
    );
}

#[tokio::test]
async fn fail_state_paths_read_the_context_object() {
    // ErrorPath/CausePath are paths too ("ErrorPath: a path to ... the
    // error"), and may read $$.
    let m = machine(json!({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "ErrorPath": "$$.State.Name", "CausePath": "$$.StateMachine.Name"}}}));
    let r = run(&m, json!({}), &ScriptedTasks::new()).await;
    assert_eq!(
        r.end,
        Next::Failed {
            error: "F".into(),
            cause: "order-workflow".into()
        }
    );
}
