//! Input and output processing: InputPath, Parameters, ResultSelector,
//! ResultPath and OutputPath in AWS's order, `null` paths, the `$$` context
//! object and intrinsic functions, following
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html> and
//! <https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html>.

use super::helpers::*;
use dofs_asl::Next;
use serde_json::json;

#[tokio::test]
async fn task_applies_input_path_parameters_result_selector_result_path_output_path_in_order() {
    let m = machine(json!({
        "StartAt": "T",
        "States": {"T": {
            "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
            "InputPath": "$.a",
            "Parameters": {"v.$": "$.b", "exec.$": "$$.Execution.Name", "state.$": "$$.State.Name", "fixed": [1, {"n.$": "$.b"}]},
            "ResultSelector": {"y.$": "$.y", "all.$": "$.items[*].id"},
            "ResultPath": "$.res.inner",
            "OutputPath": "$.res",
            "End": true
        }}
    }));
    let tasks = ScriptedTasks::new().on(
        "T",
        Ok(json!({"x": 1, "y": 2, "items": [{"id": "a"}, {"id": "b"}]})),
    );
    let run = run(&m, json!({"a": {"b": 1}, "keep": true}), &tasks).await;
    assert_eq!(
        tasks.calls()[0].parameters,
        json!({"v": 1, "exec": "o-1", "state": "T", "fixed": [1, {"n": 1}]})
    );
    // ResultPath merged into the raw input (not the InputPath view), then OutputPath.
    assert_eq!(
        run.end,
        Next::Succeeded {
            output: json!({"inner": {"y": 2, "all": ["a", "b"]}})
        }
    );
}

#[tokio::test]
async fn result_path_null_keeps_input_and_default_replaces_it() {
    for (result_path, expected) in [
        (json!(null), json!({"in": 1})),
        (json!("$"), json!({"r": true})),
        (json!("$.in"), json!({"in": {"r": true}})),
    ] {
        let m = machine(json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": "r", "ResultPath": result_path, "End": true
        }}}));
        let tasks = ScriptedTasks::new().on("T", Ok(json!({"r": true})));
        assert_eq!(
            run(&m, json!({"in": 1}), &tasks).await.end,
            Next::Succeeded { output: expected }
        );
    }
}

#[tokio::test]
async fn input_and_output_path_null_give_empty_objects() {
    let m = machine(json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "InputPath": null, "Next": "Q"},
        "Q": {"Type": "Pass", "Result": {"a": 1}, "OutputPath": null, "End": true}
    }}));
    let tasks = ScriptedTasks::new();
    let r = run(&m, json!({"x": 1}), &tasks).await;
    assert_eq!(r.end, Next::Succeeded { output: json!({}) });
    assert_eq!(
        r.events[1].detail_value(),
        json!({"output": {}}),
        "P outputs {{}}"
    );
}

#[tokio::test]
async fn pass_result_parameters_and_intrinsics() {
    let m = machine(json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Result": {"fixed": true}, "ResultPath": "$.r", "Next": "Q"},
        "Q": {"Type": "Pass", "Parameters": {
            "msg.$": "States.Format('Hello {}, order {}', $.name, $$.Execution.Name)",
            "parsed.$": "States.StringToJson($.json)",
            "text.$": "States.JsonToString($.r)",
            "pair.$": "States.Array($.name, 2)",
            "sum.$": "States.MathAdd($.n, 1)",
            "id.$": "States.UUID()"
        }, "End": true}
    }}));
    let r = run(
        &m,
        json!({"name": "Ada", "json": "{\"k\":[1]}", "n": 41}),
        &ScriptedTasks::new(),
    )
    .await;
    let Next::Succeeded { output } = r.end else {
        panic!("{:?}", r.end)
    };
    assert_eq!(output["msg"], "Hello Ada, order o-1");
    assert_eq!(output["parsed"], json!({"k": [1]}));
    assert_eq!(output["text"], "{\"fixed\":true}");
    assert_eq!(output["pair"], json!(["Ada", 2]));
    assert_eq!(output["sum"], 42);
    assert_eq!(
        uuid::Uuid::parse_str(output["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        4
    );
}
