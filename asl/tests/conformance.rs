//! Conformance of the ASL interpreter (`dofs_asl`) with Step Functions:
//! each supported state and field on small definitions, then the real
//! `terraform/order_workflow.asl.json` end to end with a scripted task invoker.

// Test support code may unwrap too: a panic is the failure report (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod helpers {
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
                "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8;Sampled=1"
                    .to_owned(),
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
    /// engine stores it.
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
}

mod states {
    use super::helpers::*;
    use dofs_asl::{Cursor, Next, TaskFailure};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::{json, Value};

    /// A Task `T` that goes on to `Done`, and to `Caught` if it has a Catch
    /// (unreachable states are a definition error).
    fn task_then(task: Value) -> Value {
        let mut definition = json!({
            "StartAt": "T",
            "States": {"T": task.clone(), "Done": {"Type": "Succeed"}}
        });
        if task.get("Catch").is_some() {
            definition["States"]["Caught"] = json!({"Type": "Pass", "End": true});
        }
        definition
    }

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

    #[tokio::test]
    async fn choice_rules_route_like_step_functions() {
        let m = machine(json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [
                {"And": [
                    {"Variable": "$.kind", "StringEquals": "book"},
                    {"Variable": "$.qty", "NumericGreaterThanEquals": 10}
                ], "Next": "BulkBooks"},
                {"Not": {"Variable": "$.qty", "IsNumeric": true}, "Next": "BadQty"},
                {"Or": [
                    {"Variable": "$.qty", "NumericLessThan": 0},
                    {"Variable": "$.qty", "NumericEqualsPath": "$.limit"}
                ], "Next": "Edge"},
                {"Variable": "$.sku", "StringMatches": "GIFT-*", "Next": "Gift"},
                {"Variable": "$.express", "BooleanEquals": true, "Next": "Express"},
                {"Variable": "$.coupon", "IsPresent": true, "Next": "Coupon"},
                {"Variable": "$.note", "IsNull": true, "Next": "NullNote"},
                {"Variable": "$.due", "TimestampLessThan": "2026-01-01T00:00:00Z", "Next": "Late"},
                {"Variable": "$.kind", "StringEqualsPath": "$.favourite", "Next": "Favourite"}
            ], "Default": "Other"},
            "BulkBooks": {"Type": "Succeed"}, "BadQty": {"Type": "Succeed"}, "Edge": {"Type": "Succeed"},
            "Gift": {"Type": "Succeed"}, "Express": {"Type": "Succeed"}, "Coupon": {"Type": "Succeed"},
            "NullNote": {"Type": "Succeed"}, "Late": {"Type": "Succeed"}, "Favourite": {"Type": "Succeed"},
            "Other": {"Type": "Succeed"}
        }}));
        let base = json!({"kind": "pen", "qty": 1, "limit": 5, "sku": "P-1", "express": false, "note": "x",
                          "due": "2027-01-01T00:00:00Z", "favourite": "ink"});
        let with = |patch: Value| {
            let mut v = base.clone();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            v
        };
        for (input, expected) in [
            (with(json!({"kind": "book", "qty": 10})), "BulkBooks"),
            (with(json!({"kind": "book", "qty": 9})), "Other"),
            (with(json!({"qty": "ten"})), "BadQty"),
            (with(json!({"qty": -1})), "Edge"),
            (with(json!({"qty": 5})), "Edge"),
            (with(json!({"sku": "GIFT-42"})), "Gift"),
            (with(json!({"express": true})), "Express"),
            (with(json!({"coupon": null})), "Coupon"),
            (with(json!({"note": null})), "NullNote"),
            (with(json!({"due": "2025-06-01T12:00:00+02:00"})), "Late"),
            (with(json!({"kind": "ink"})), "Favourite"),
            (base.clone(), "Other"),
        ] {
            let r = run(&m, input.clone(), &ScriptedTasks::new()).await;
            assert_eq!(
                r.path.last().map(String::as_str),
                Some(expected),
                "input {input}"
            );
            assert_eq!(r.end, Next::Succeeded { output: input });
        }
    }

    #[tokio::test]
    async fn choice_without_match_or_default_fails_no_choice_matched() {
        let m = machine(json!({"StartAt": "C", "States": {
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": 1, "Next": "X"}]},
            "X": {"Type": "Succeed"}
        }}));
        let r = run(&m, json!({"a": 2}), &ScriptedTasks::new()).await;
        assert!(
            matches!(r.end, Next::Failed { ref error, .. } if error == "States.NoChoiceMatched")
        );
        let missing = run(&m, json!({}), &ScriptedTasks::new()).await;
        assert!(matches!(missing.end, Next::Failed { ref error, .. } if error == "States.Runtime"));
    }

    #[tokio::test]
    async fn wait_sleeps_then_moves_on() {
        for (wait, input, expected_secs) in [
            (json!({"Seconds": 10}), json!({}), 10),
            (json!({"SecondsPath": "$.s"}), json!({"s": 3}), 3),
            (json!({"Timestamp": "2026-11-25T10:01:00Z"}), json!({}), 60),
            (
                json!({"TimestampPath": "$.at"}),
                json!({"at": "2026-11-25T11:00:00+01:00"}),
                0,
            ),
        ] {
            let mut state = json!({"Type": "Wait", "Next": "Done"});
            for (k, v) in wait.as_object().unwrap() {
                state[k] = v.clone();
            }
            let m = machine(
                json!({"StartAt": "W", "States": {"W": state, "Done": {"Type": "Succeed"}}}),
            );
            let r = run(&m, input.clone(), &ScriptedTasks::new()).await;
            assert_eq!(r.delays_ms("W"), [expected_secs * 1000], "{wait}");
            assert_eq!(r.end, Next::Succeeded { output: input });
            assert_eq!(
                r.kinds(),
                [
                    "WaitStateEntered",
                    "WaitStateExited",
                    "SucceedStateEntered",
                    "SucceedStateExited",
                    "ExecutionSucceeded"
                ]
            );
        }
        let m = machine(
            json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}}),
        );
        let r = run(&m, json!({"s": "soon"}), &ScriptedTasks::new()).await;
        assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "States.Runtime"));
    }

    #[tokio::test]
    async fn fail_state_reports_literal_or_selected_error_and_cause() {
        let m = machine(
            json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "because"}}}),
        );
        let r = run(&m, json!({}), &ScriptedTasks::new()).await;
        assert_eq!(
            r.end,
            Next::Failed {
                error: "Boom".into(),
                cause: "because".into()
            }
        );
        assert_eq!(r.kinds(), ["FailStateEntered", "ExecutionFailed"]);
        let m = machine(json!({"StartAt": "F", "States": {"F": {
            "Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.n)"
        }}}));
        let r = run(&m, json!({"e": "Custom", "n": 3}), &ScriptedTasks::new()).await;
        assert_eq!(
            r.end,
            Next::Failed {
                error: "Custom".into(),
                cause: "bad 3".into()
            }
        );
    }

    #[tokio::test]
    async fn retry_backs_off_from_a_controlled_clock_and_caps_at_max_delay() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 4, "MaxDelaySeconds": 3}]
        })));
        let tasks = (0..5).fold(ScriptedTasks::new(), |t, _| t.fail("T", "Flaky", "again"));
        let r = run(&m, json!({}), &tasks).await;
        assert_eq!(r.delays_ms("T"), [1000, 2000, 3000, 3000]);
        let attempts: Vec<u32> = tasks.calls().iter().map(|c| c.call.attempt).collect();
        assert_eq!(attempts, [1, 2, 3, 4, 5]);
        assert_eq!(
            r.end,
            Next::Failed {
                error: "Flaky".into(),
                cause: "again".into()
            }
        );
        // The clock moved to each wake-up: attempts at +0, +1, +3, +6, +9 seconds.
        let scheduled: Vec<i64> = r
            .events
            .iter()
            .filter(|e| e.kind == dofs_asl::HistoryEventKind::TaskScheduled)
            .map(|e| (e.at - t0()).num_seconds())
            .collect();
        assert_eq!(scheduled, [0, 1, 3, 6, 9]);
    }

    #[tokio::test]
    async fn full_jitter_stays_within_bounds_and_is_reproducible_from_the_seed() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}]
        })));
        let script = || {
            (0..3)
                .fold(ScriptedTasks::new(), |t, _| t.fail("T", "Flaky", ""))
                .on("T", Ok(json!({})))
        };
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let r = run_with(&m, json!({}), &script(), seed, false).await;
            let delays = r.delays_ms("T");
            assert_eq!(delays.len(), 3);
            for (delay, cap) in delays.iter().zip([2000, 4000, 8000]) {
                assert!((0..=cap).contains(delay), "seed {seed}: {delays:?}");
            }
            assert_eq!(
                r,
                run_with(&m, json!({}), &script(), seed, false).await,
                "same seed, same run"
            );
            seen.insert(delays);
        }
        assert!(seen.len() > 15, "jitter varies with the seed");
    }

    #[tokio::test]
    async fn max_attempts_zero_never_retries() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 0}],
            "Catch": [{"ErrorEquals": ["Flaky"], "Next": "Caught"}]
        })));
        let tasks = ScriptedTasks::new().fail("T", "Flaky", "x");
        let r = run(&m, json!({}), &tasks).await;
        assert!(r.sleeps.is_empty());
        assert_eq!(
            r.end,
            Next::Succeeded {
                output: json!({"Error": "Flaky", "Cause": "x"})
            }
        );
    }

    #[tokio::test]
    async fn first_matching_retrier_decides_even_when_exhausted() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Retry": [
                {"ErrorEquals": ["Flaky"], "MaxAttempts": 1},
                {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}
            ]
        })));
        let tasks = ScriptedTasks::new()
            .fail("T", "Flaky", "1")
            .fail("T", "Flaky", "2")
            .on("T", Ok(json!({})));
        let r = run(&m, json!({}), &tasks).await;
        assert_eq!(tasks.calls().len(), 2);
        assert_eq!(
            r.end,
            Next::Failed {
                error: "Flaky".into(),
                cause: "2".into()
            }
        );
    }

    #[tokio::test]
    async fn retriers_count_separately_and_reset_when_the_state_is_left() {
        let m = machine(json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "r", "Next": "U", "Retry": [
                {"ErrorEquals": ["A"], "MaxAttempts": 2, "IntervalSeconds": 1},
                {"ErrorEquals": ["B"], "MaxAttempts": 2, "IntervalSeconds": 5, "BackoffRate": 1.0}
            ]},
            "U": {"Type": "Task", "Resource": "r", "End": true, "Retry": [
                {"ErrorEquals": ["A"], "MaxAttempts": 1, "IntervalSeconds": 1}
            ]}
        }}));
        let tasks = ScriptedTasks::new()
            .fail("T", "A", "")
            .fail("T", "B", "")
            .fail("T", "A", "")
            .fail("T", "B", "")
            .on("T", Ok(json!({"t": 1})))
            .fail("U", "A", "")
            .on("U", Ok(json!({"u": 1})));
        let r = run(&m, json!({}), &tasks).await;
        assert_eq!(r.delays_ms("T"), [1000, 5000, 2000, 5000]);
        assert_eq!(r.delays_ms("U"), [1000], "U starts with fresh retry counts");
        assert_eq!(
            r.end,
            Next::Succeeded {
                output: json!({"u": 1})
            }
        );
    }

    #[tokio::test]
    async fn task_failed_matches_everything_but_timeouts() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "Caught"}]
        })));
        let caught = run(
            &m,
            json!({"in": 1}),
            &ScriptedTasks::new().fail("T", "Lambda.ServiceException", "svc"),
        )
        .await;
        assert_eq!(
            caught.end,
            Next::Succeeded {
                output: json!({"in": 1, "err": {"Error": "Lambda.ServiceException", "Cause": "svc"}})
            }
        );
        let timed_out = run(
            &m,
            json!({}),
            &ScriptedTasks::new().fail("T", "States.Timeout", "slow"),
        )
        .await;
        assert_eq!(
            timed_out.end,
            Next::Failed {
                error: "States.Timeout".into(),
                cause: "slow".into()
            }
        );
        assert!(timed_out.kinds().contains(&"TaskTimedOut".to_owned()));
    }

    #[tokio::test]
    async fn runtime_errors_are_neither_retried_nor_caught_by_states_all() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done",
            "Parameters": {"x.$": "$.missing"},
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
        })));
        let tasks = ScriptedTasks::new();
        let r = run(&m, json!({}), &tasks).await;
        assert!(tasks.calls().is_empty());
        assert!(r.sleeps.is_empty());
        let Next::Failed { error, cause } = r.end else {
            panic!()
        };
        assert_eq!(error, "States.Runtime");
        assert!(
            cause.contains("$.missing") && cause.contains("x.$"),
            "{cause}"
        );
    }

    #[tokio::test]
    async fn result_path_mismatch_is_catchable() {
        let m = machine(task_then(json!({
            "Type": "Task", "Resource": "r", "Next": "Done", "ResultPath": "$.a.b",
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Caught"}]
        })));
        let r = run(
            &m,
            json!({"a": "text"}),
            &ScriptedTasks::new().on("T", Ok(json!(1))),
        )
        .await;
        let Next::Succeeded { output } = r.end else {
            panic!("{:?}", r.end)
        };
        assert_eq!(output["err"]["Error"], "States.ResultPathMatchFailure");
        assert_eq!(output["a"], "text");
    }

    #[tokio::test]
    async fn catch_routes_by_error_name_with_exact_case() {
        let m = machine(json!({"StartAt": "T", "States": {
            "T": {"Type": "Task", "Resource": "r", "End": true, "Catch": [
                {"ErrorEquals": ["OrderRejected"], "ResultPath": "$.why", "Next": "Rejected"},
                {"ErrorEquals": ["States.ALL"], "ResultPath": null, "Next": "Other"}
            ]},
            "Rejected": {"Type": "Succeed"},
            "Other": {"Type": "Succeed"}
        }}));
        let r = run(
            &m,
            json!({"id": 1}),
            &ScriptedTasks::new().fail("T", "OrderRejected", "no"),
        )
        .await;
        assert_eq!(r.path, ["T", "Rejected"]);
        assert_eq!(
            r.end,
            Next::Succeeded {
                output: json!({"id": 1, "why": {"Error": "OrderRejected", "Cause": "no"}})
            }
        );
        let r = run(
            &m,
            json!({"id": 1}),
            &ScriptedTasks::new().fail("T", "orderrejected", "no"),
        )
        .await;
        assert_eq!(r.path, ["T", "Other"]);
        assert_eq!(
            r.end,
            Next::Succeeded {
                output: json!({"id": 1})
            },
            "ResultPath null discards the error"
        );
    }

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
}

mod validation {
    use dofs_asl::{AslError, StateMachine};
    use serde_json::json;

    #[test]
    fn structurally_invalid_definitions_are_rejected() {
        let pass_end = json!({"Type": "Pass", "End": true});
        for (why, definition) in [
            (
                "StartAt missing",
                json!({"StartAt": "X", "States": {"A": pass_end}}),
            ),
            (
                "unknown Next",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}),
            ),
            (
                "unreachable",
                json!({"StartAt": "A", "States": {"A": pass_end, "B": pass_end}}),
            ),
            (
                "Next and End",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "A", "End": true}}}),
            ),
            (
                "neither",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
            ),
            (
                "unknown field",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Bogus": 1}}}),
            ),
            (
                "unknown type",
                json!({"StartAt": "A", "States": {"A": {"Type": "Teleport", "End": true}}}),
            ),
            (
                "Map",
                json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true}}}),
            ),
            (
                "Succeed with Next",
                json!({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Next": "A"}}}),
            ),
            (
                "Fail with InputPath",
                json!({"StartAt": "A", "States": {"A": {"Type": "Fail", "InputPath": "$"}}}),
            ),
            (
                "bad path",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "a.b", "End": true}}}),
            ),
            (
                "bad ResultPath",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "ResultPath": "$.a[*]", "End": true}}}),
            ),
            (
                "catch target",
                json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Nope"}]}}}),
            ),
            (
                "ALL not last",
                json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
            ),
            (
                "ALL not alone",
                json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "r", "End": true,
                "Catch": [{"ErrorEquals": ["X", "States.ALL"], "Next": "A"}]}}}),
            ),
            (
                "no Resource",
                json!({"StartAt": "A", "States": {"A": {"Type": "Task", "End": true}}}),
            ),
            (
                "two waits",
                json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}}}),
            ),
            (
                "Choice without Choices",
                json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": []}}}),
            ),
            (
                "Choice default target",
                json!({"StartAt": "A", "States": {"A": {"Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsNull": true, "Next": "A"}], "Default": "Nope"}}}),
            ),
            (
                "bad intrinsic",
                json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"a.$": "States.Nope()"}, "End": true}}}),
            ),
            (
                "top-level field",
                json!({"StartAt": "A", "States": {"A": pass_end}, "Extra": 1}),
            ),
            (
                "JSONata",
                json!({"StartAt": "A", "States": {"A": pass_end}, "QueryLanguage": "JSONata"}),
            ),
        ] {
            let err = StateMachine::from_json(&definition.to_string());
            assert!(err.is_err(), "{why}: accepted");
        }
        assert!(matches!(
            StateMachine::from_json("{"),
            Err(AslError::Json(_))
        ));
    }

    #[test]
    fn errors_name_where_the_problem_is() {
        let err = StateMachine::from_json(
            &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}).to_string(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("States.A") && text.contains("Nope"), "{text}");
    }
}

mod order_workflow {
    use super::helpers::*;
    use dofs_asl::Next;
    use dofs_core::contracts::{OrderSubmission, StorageRequest, WorkflowFailure};
    use serde_json::{json, Value};

    fn submission() -> Value {
        json!({
            "order_id": "o-1",
            "customer_name": "Ada Lovelace",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}],
            "submitted_at": "2026-11-25T10:00:00Z"
        })
    }

    fn order(status: &str) -> Value {
        let parsed: OrderSubmission = serde_json::from_value(submission()).unwrap();
        let mut order = serde_json::to_value(parsed.to_order()).unwrap();
        order["status"] = json!(status);
        order
    }

    fn lambda_ok(order: Value) -> Value {
        json!({"Payload": {"order": order}, "StatusCode": 200, "ExecutedVersion": "$LATEST"})
    }

    fn lambda_error(error: &str, message: &str) -> String {
        json!({"errorType": error, "errorMessage": message}).to_string()
    }

    fn happy_tasks() -> ScriptedTasks {
        ScriptedTasks::new()
            .on("ValidateOrder", Ok(lambda_ok(order("VALIDATED"))))
            .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
            .on(
                "EnqueueOrder",
                Ok(json!({"MessageId": "m-1", "MD5OfMessageBody": "abc"})),
            )
    }

    #[test]
    fn renders_and_exposes_timeout_and_error_names() {
        let m = order_workflow();
        assert_eq!(m.start_at(), "ValidateOrder");
        assert_eq!(m.timeout(), Some(std::time::Duration::from_secs(300)));
        assert_eq!(
            m.deadline(t0()),
            Some(t0() + chrono::Duration::seconds(300))
        );
        let names = m.error_equals();
        for expected in [
            "TransientError",
            "OrderRejected",
            "States.ALL",
            "States.Timeout",
            "SQS.SdkClientException",
        ] {
            assert!(names.contains(expected), "{expected} in {names:?}");
        }
    }

    #[tokio::test]
    async fn happy_path_stores_and_enqueues_the_order() {
        let m = order_workflow();
        let tasks = happy_tasks();
        let r = run(&m, submission(), &tasks).await;

        let calls = tasks.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].resource, "arn:aws:states:::lambda:invoke");
        assert_eq!(
            calls[0].parameters,
            json!({"FunctionName": VALIDATOR, "Payload": submission()})
        );
        assert_eq!(
            calls[0].call.timeout,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(calls[0].call.execution_name, "o-1");
        assert!(calls[0]
            .call
            .trace_header
            .as_deref()
            .unwrap()
            .starts_with("Root=1-"));
        assert_eq!(
            calls[1].parameters,
            json!({"FunctionName": STORAGE, "Payload": {"action": "store", "order": order("VALIDATED")}})
        );
        let request: StorageRequest =
            serde_json::from_value(calls[1].parameters["Payload"].clone()).unwrap();
        assert!(matches!(request, StorageRequest::Store { .. }));
        assert_eq!(calls[2].resource, "arn:aws:states:::sqs:sendMessage");
        assert_eq!(
            calls[2].parameters,
            json!({"QueueUrl": ORDER_QUEUE, "MessageBody": order("PENDING")})
        );

        let mut expected = submission();
        expected["validated"] = json!({"order": order("VALIDATED")});
        expected["stored"] = json!({"order": order("PENDING")});
        expected["enqueued"] = json!({"message_id": "m-1"});
        assert_eq!(r.end, Next::Succeeded { output: expected });
        assert_eq!(
            r.path,
            [
                "ValidateOrder",
                "StoreOrder",
                "EnqueueOrder",
                "OrderEnqueued"
            ]
        );
        let task_events = [
            "TaskStateEntered",
            "TaskScheduled",
            "TaskSucceeded",
            "TaskStateExited",
        ];
        let mut kinds: Vec<&str> = task_events.iter().cycle().take(12).copied().collect();
        kinds.extend([
            "SucceedStateEntered",
            "SucceedStateExited",
            "ExecutionSucceeded",
        ]);
        assert_eq!(r.kinds(), kinds);
        assert!(r.sleeps.is_empty());
    }

    #[tokio::test]
    async fn rejected_order_is_stored_with_the_reason() {
        let m = order_workflow();
        let cause = lambda_error("OrderRejected", "order total exceeds the limit");
        let tasks = ScriptedTasks::new()
            .fail("ValidateOrder", "OrderRejected", &cause)
            .on("RejectOrder", Ok(lambda_ok(order("REJECTED"))));
        let r = run(&m, submission(), &tasks).await;
        assert_eq!(r.path, ["ValidateOrder", "RejectOrder", "OrderRejected"]);
        let reject = &tasks.calls_to("RejectOrder")[0];
        let mut submitted = submission();
        submitted["failure"] = json!({"Error": "OrderRejected", "Cause": cause});
        assert_eq!(
            reject.parameters,
            json!({"FunctionName": STORAGE, "Payload": {"action": "reject", "submission": submitted, "reason": cause}})
        );
        let request: StorageRequest =
            serde_json::from_value(reject.parameters["Payload"].clone()).unwrap();
        assert!(matches!(request, StorageRequest::Reject { ref reason, .. } if *reason == cause));
        let Next::Succeeded { output } = r.end else {
            panic!("{:?}", r.end)
        };
        assert_eq!(output["stored"]["order"]["status"], "REJECTED");
        assert!(r.sleeps.is_empty(), "a business rejection is not retried");
    }

    #[tokio::test]
    async fn transient_error_succeeds_on_the_third_attempt_with_the_files_backoff() {
        let m = order_workflow();
        let tasks = ScriptedTasks::new()
            .fail("ValidateOrder", "TransientError", "throttled")
            .fail("ValidateOrder", "TransientError", "throttled")
            .on("ValidateOrder", Ok(lambda_ok(order("VALIDATED"))))
            .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
            .on("EnqueueOrder", Ok(json!({"MessageId": "m-1"})));
        let r = run(&m, submission(), &tasks).await;
        let attempts: Vec<u32> = tasks
            .calls_to("ValidateOrder")
            .iter()
            .map(|c| c.call.attempt)
            .collect();
        assert_eq!(attempts, [1, 2, 3]);
        // IntervalSeconds 1, BackoffRate 2, FULL jitter: below 1 s, then below 2 s.
        let delays = r.delays_ms("ValidateOrder");
        assert_eq!(delays.len(), 2);
        assert!(
            (0..=1000).contains(&delays[0]) && (0..=2000).contains(&delays[1]),
            "{delays:?}"
        );
        assert!(
            matches!(r.end, Next::Succeeded { ref output } if output["enqueued"]["message_id"] == "m-1")
        );
        // Every attempt got the same parameters.
        let payloads: Vec<Value> = tasks
            .calls_to("ValidateOrder")
            .into_iter()
            .map(|c| c.parameters)
            .collect();
        assert!(payloads.windows(2).all(|w| w[0] == w[1]));
    }

    #[tokio::test]
    async fn timeouts_use_the_second_retrier_without_jitter() {
        let m = order_workflow();
        let tasks = (0..3).fold(ScriptedTasks::new(), |t, _| {
            t.fail("ValidateOrder", "States.Timeout", "30s")
        });
        let tasks = tasks.on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
        let r = run(&m, submission(), &tasks).await;
        assert_eq!(r.delays_ms("ValidateOrder"), [2000, 4000]);
        let body: WorkflowFailure = serde_json::from_value(
            tasks.calls_to("DeadLetter")[0].parameters["MessageBody"].clone(),
        )
        .unwrap();
        assert_eq!(body.error, "States.Timeout");
        assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "OrderFailed"));
    }

    #[tokio::test]
    async fn store_failing_permanently_goes_to_the_dead_letter_queue() {
        let m = order_workflow();
        let cause = lambda_error("TransientError", "orders table unavailable");
        let tasks = (0..4)
            .fold(
                ScriptedTasks::new().on("ValidateOrder", Ok(lambda_ok(order("VALIDATED")))),
                |t, _| t.fail("StoreOrder", "TransientError", &cause),
            )
            .on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
        let r = run(&m, submission(), &tasks).await;
        assert_eq!(
            tasks.calls_to("StoreOrder").len(),
            4,
            "first try and MaxAttempts 3 retries"
        );
        let delays = r.delays_ms("StoreOrder");
        assert_eq!(delays.len(), 3);
        for (delay, cap) in delays.iter().zip([1000, 2000, 4000]) {
            assert!((0..=cap).contains(delay), "{delays:?}");
        }
        assert_eq!(r.path.iter().filter(|s| *s == "StoreOrder").count(), 4);
        assert_eq!(r.path.last().map(String::as_str), Some("OrderFailed"));

        let dead_letter = &tasks.calls_to("DeadLetter")[0];
        assert_eq!(dead_letter.resource, "arn:aws:states:::sqs:sendMessage");
        assert_eq!(dead_letter.parameters["QueueUrl"], DLQ);
        let body = dead_letter.parameters["MessageBody"].clone();
        let failure: WorkflowFailure = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(failure.order_id.as_str(), "o-1");
        assert_eq!(failure.error, "TransientError");
        assert_eq!(failure.cause, cause);
        let mut submitted = submission();
        submitted["validated"] = json!({"order": order("VALIDATED")});
        submitted["failure"] = json!({"Error": "TransientError", "Cause": cause});
        assert_eq!(body["submission"], submitted);
        assert_eq!(body["source"], "workflow");

        assert_eq!(
            r.end,
            Next::Failed {
                error: "OrderFailed".into(),
                cause: "A workflow step failed after its retries; the order was sent to the dead-letter queue.".into()
            }
        );
        assert_eq!(
            r.kinds().last().map(String::as_str),
            Some("ExecutionFailed")
        );
    }

    #[tokio::test]
    async fn non_retried_error_goes_straight_to_the_dead_letter_queue() {
        let m = order_workflow();
        let tasks = ScriptedTasks::new()
            .on("ValidateOrder", Ok(lambda_ok(order("VALIDATED"))))
            .fail(
                "StoreOrder",
                "ConflictError",
                "order o-1 exists with other content",
            )
            .on("DeadLetter", Ok(json!({"MessageId": "d-1"})));
        let r = run(&m, submission(), &tasks).await;
        assert_eq!(tasks.calls_to("StoreOrder").len(), 1);
        assert!(r.sleeps.is_empty());
        assert_eq!(
            r.path,
            ["ValidateOrder", "StoreOrder", "DeadLetter", "OrderFailed"]
        );
    }

    #[tokio::test]
    async fn dead_letter_failure_still_ends_in_order_failed() {
        let m = order_workflow();
        let tasks = (0..4).fold(
            ScriptedTasks::new().fail("ValidateOrder", "ValidationError", "bad"),
            |t, _| t.fail("DeadLetter", "SQS.AmazonSQSException", "queue gone"),
        );
        let r = run(&m, submission(), &tasks).await;
        assert_eq!(tasks.calls_to("DeadLetter").len(), 4);
        assert!(matches!(r.end, Next::Failed { ref error, .. } if error == "OrderFailed"));
    }

    #[tokio::test]
    async fn resuming_from_a_persisted_cursor_matches_an_uninterrupted_run() {
        let m = order_workflow();
        let script = || {
            ScriptedTasks::new()
                .fail("ValidateOrder", "TransientError", "throttled")
                .on("ValidateOrder", Ok(lambda_ok(order("VALIDATED"))))
                .fail("StoreOrder", "Lambda.TooManyRequestsException", "rate")
                .fail("StoreOrder", "States.Timeout", "slow")
                .on("StoreOrder", Ok(lambda_ok(order("PENDING"))))
                .on("EnqueueOrder", Ok(json!({"MessageId": "m-1"})))
        };
        let (straight_tasks, resumed_tasks) = (script(), script());
        let straight = run_with(&m, submission(), &straight_tasks, 11, false).await;
        let resumed = run_with(&m, submission(), &resumed_tasks, 11, true).await;
        assert_eq!(straight, resumed);
        let params = |t: &ScriptedTasks| {
            t.calls()
                .into_iter()
                .map(|c| (c.parameters, c.call))
                .collect::<Vec<_>>()
        };
        assert_eq!(params(&straight_tasks), params(&resumed_tasks));
        assert!(matches!(straight.end, Next::Succeeded { .. }));
        assert_eq!(straight.sleeps.len(), 3);

        // A "crash" mid-retry: reload the definition and continue from the stored cursor.
        let ctx = context(&submission());
        let tasks = script();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
        let step = m
            .advance(m.start(submission()), &ctx, &tasks, t0(), &mut rng)
            .await;
        let Next::Sleep { cursor, until } = step.next else {
            panic!("{:?}", step.next)
        };
        assert_eq!(cursor.retries.values().sum::<u32>(), 1);
        let stored = serde_json::to_string(&cursor).unwrap();
        let reloaded = order_workflow();
        let step = reloaded
            .advance(
                serde_json::from_str(&stored).unwrap(),
                &ctx,
                &tasks,
                until,
                &mut rng,
            )
            .await;
        assert_eq!(
            step.events.first().map(|e| e.kind.as_str()),
            Some("TaskScheduled"),
            "no second StateEntered"
        );
        assert_eq!(tasks.calls_to("ValidateOrder")[1].call.attempt, 2);
        assert!(
            matches!(step.next, Next::Continue(ref c) if c.state == "StoreOrder" && c.retries.is_empty())
        );
    }
}
