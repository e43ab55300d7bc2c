//! Unit tests of the alarm definitions, math, evaluation and notifications.

use super::*;
use crate::observability::metrics::MetricsStore;
use crate::store::Db;
use chrono::{DateTime, Utc};
use serde_json::Value;

fn alarm(
    comparison: Comparison,
    threshold: f64,
    n: usize,
    m: usize,
    missing: MissingData,
) -> Alarm {
    Alarm {
        name: "dofs-test".into(),
        id: "test".into(),
        description: String::new(),
        source: AlarmSource::Metric(MetricQuery {
            key: SeriesKey::new(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                &[("QueueName", "q")],
            ),
            statistic: Statistic::Maximum,
        }),
        period_seconds: 60,
        period: Duration::from_secs(60),
        evaluation_periods: n,
        datapoints_to_alarm: m,
        threshold,
        comparison,
        treat_missing_data: missing,
    }
}

fn points(values: &[Option<f64>]) -> Vec<Datapoint> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Datapoint {
            at_ms: 1_700_000_000_000 + 60_000 * i as i64,
            value: *v,
        })
        .collect()
}

fn state(a: &Alarm, values: &[Option<f64>], current: AlarmState) -> AlarmState {
    evaluate(a, &points(values), current, Utc::now()).state
}

#[test]
fn each_comparison_breaches_on_its_side_of_the_threshold() {
    use Comparison::*;
    let cases = [
        (
            GreaterThanThreshold,
            [(6.0, true), (5.0, false), (4.0, false)],
        ),
        (
            GreaterThanOrEqualToThreshold,
            [(6.0, true), (5.0, true), (4.0, false)],
        ),
        (LessThanThreshold, [(6.0, false), (5.0, false), (4.0, true)]),
        (
            LessThanOrEqualToThreshold,
            [(6.0, false), (5.0, true), (4.0, true)],
        ),
    ];
    for (cmp, values) in cases {
        let a = alarm(cmp, 5.0, 1, 1, MissingData::Missing);
        for (v, breach) in values {
            let expected = if breach {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
            assert_eq!(
                state(&a, &[Some(v)], AlarmState::Ok),
                expected,
                "{cmp:?} {v}"
            );
        }
        assert_eq!(Comparison::parse(cmp.as_str()), Some(cmp));
    }
    assert_eq!(
        Comparison::parse("LessThanLowerOrGreaterThanUpperThreshold"),
        None
    );
}

#[test]
fn m_of_n_needs_m_breaching_datapoints_in_the_window() {
    let a = alarm(
        Comparison::GreaterThanThreshold,
        300.0,
        5,
        3,
        MissingData::NotBreaching,
    );
    let v = |x: f64| Some(x);
    assert_eq!(
        state(
            &a,
            &[v(400.0), v(0.0), v(400.0), v(0.0), v(0.0)],
            AlarmState::Ok
        ),
        AlarmState::Ok
    );
    assert_eq!(
        state(
            &a,
            &[v(400.0), v(0.0), v(400.0), v(0.0), v(301.0)],
            AlarmState::Ok
        ),
        AlarmState::Alarm
    );
    // Only the last N count: an older breach has aged out.
    assert_eq!(
        state(
            &a,
            &[v(900.0), v(900.0), v(0.0), v(0.0), v(0.0), v(400.0)],
            AlarmState::Alarm
        ),
        AlarmState::Ok
    );
    let e = evaluate(
        &a,
        &points(&[v(400.0), v(0.0), v(400.0), v(0.0), v(301.0)]),
        AlarmState::Ok,
        Utc::now(),
    );
    assert!(
        e.reason.contains("3 out of the last 5 datapoints"),
        "{}",
        e.reason
    );
    assert!(
        e.reason.contains("greater than the threshold (300.0)"),
        "{}",
        e.reason
    );
}

#[test]
fn missing_data_treatments() {
    let all_missing = [None, None, None];
    let cases = [
        (MissingData::Missing, AlarmState::InsufficientData),
        (MissingData::Ignore, AlarmState::Alarm), // keeps the current state
        (MissingData::Breaching, AlarmState::Alarm),
        (MissingData::NotBreaching, AlarmState::Ok),
    ];
    for (treatment, expected) in cases {
        let a = alarm(Comparison::GreaterThanThreshold, 0.0, 3, 2, treatment);
        assert_eq!(
            state(&a, &all_missing, AlarmState::Alarm),
            expected,
            "{treatment:?}"
        );
    }
    let a = alarm(
        Comparison::GreaterThanThreshold,
        0.0,
        3,
        2,
        MissingData::Ignore,
    );
    assert_eq!(state(&a, &all_missing, AlarmState::Ok), AlarmState::Ok);

    // Two present breaching points alarm whatever the treatment.
    for treatment in [
        MissingData::Missing,
        MissingData::Ignore,
        MissingData::NotBreaching,
    ] {
        let a = alarm(Comparison::GreaterThanThreshold, 0.0, 3, 2, treatment);
        assert_eq!(
            state(&a, &[Some(1.0), None, Some(2.0)], AlarmState::Ok),
            AlarmState::Alarm
        );
    }
}

/// The two worked examples of "Configuring how CloudWatch alarms treat
/// missing data" (evaluation range 5, three evaluation periods; 3 of 3 and
/// 2 of 3), row by row: `0` not breaching, `X` breaching, `-` missing, the
/// most recent on the right. `Keep` is "retain current state".
#[test]
fn the_documented_evaluation_range_tables_hold() {
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        Ok,
        Alarm,
        Insufficient,
        Keep,
    }
    use Want::*;
    let rows: [(usize, &str, [Want; 4]); 10] = [
        (3, "0 - X - X", [Ok, Ok, Ok, Ok]),
        (3, "0 - - - -", [Ok, Ok, Ok, Ok]),
        (3, "- - - - -", [Insufficient, Keep, Alarm, Ok]),
        (3, "0 X X - X", [Alarm, Alarm, Alarm, Alarm]),
        (3, "- - X - -", [Alarm, Keep, Alarm, Ok]),
        (2, "0 - X - X", [Alarm, Alarm, Alarm, Alarm]),
        (2, "0 0 X 0 X", [Alarm, Alarm, Alarm, Alarm]),
        (2, "0 - X - -", [Ok, Ok, Alarm, Ok]),
        (2, "- - - - 0", [Ok, Ok, Alarm, Ok]),
        (2, "- - - X -", [Alarm, Keep, Alarm, Ok]),
    ];
    let treatments = [
        MissingData::Missing,
        MissingData::Ignore,
        MissingData::Breaching,
        MissingData::NotBreaching,
    ];
    for (m, row, wants) in rows {
        let values: Vec<Option<f64>> = row
            .split(' ')
            .map(|c| match c {
                "X" => Some(1.0),
                "0" => Some(0.0),
                _ => None,
            })
            .collect();
        for (treatment, want) in treatments.into_iter().zip(wants) {
            let a = alarm(Comparison::GreaterThanThreshold, 0.5, 3, m, treatment);
            for current in [AlarmState::Ok, AlarmState::Alarm] {
                let expected = match want {
                    Ok => AlarmState::Ok,
                    Alarm => AlarmState::Alarm,
                    Insufficient => AlarmState::InsufficientData,
                    Keep => current,
                };
                assert_eq!(
                    state(&a, &values, current),
                    expected,
                    "{m} of 3, [{row}], {treatment:?}, from {current:?}"
                );
            }
        }
    }
    // Beyond the range nothing counts: a breach six periods back is gone.
    let a = alarm(
        Comparison::GreaterThanThreshold,
        0.5,
        1,
        1,
        MissingData::NotBreaching,
    );
    let mut values = vec![Some(1.0)];
    assert_eq!(state(&a, &values, AlarmState::Ok), AlarmState::Alarm);
    values.extend([None, None]);
    assert_eq!(state(&a, &values, AlarmState::Alarm), AlarmState::Alarm);
    values.push(None);
    assert_eq!(state(&a, &values, AlarmState::Alarm), AlarmState::Ok);
}

#[test]
fn metric_math_parses_and_evaluates_like_cloudwatch() {
    let e = parse_expression("IF(invocations > 0, 100 * errors / invocations, 0)").unwrap();
    assert_eq!(e.identifiers(), ["errors", "invocations"]);
    let env = |e: Option<f64>, i: Option<f64>| {
        BTreeMap::from([("errors".to_owned(), e), ("invocations".to_owned(), i)])
    };
    assert_eq!(e.eval(&env(Some(1.0), Some(10.0))), Some(10.0));
    assert_eq!(e.eval(&env(Some(0.0), Some(0.0))), Some(0.0));
    assert_eq!(e.eval(&env(Some(1.0), None)), None);
    let p = parse_expression("1 + 2 * 3 - -4 / 2").unwrap();
    assert_eq!(p.eval(&BTreeMap::new()), Some(9.0));
    let p = parse_expression("(1 + 2) * 3 >= 9 AND NOT 0 || 0").unwrap();
    assert_eq!(p.eval(&BTreeMap::new()), Some(1.0));
    assert_eq!(
        parse_expression("1 / 0").unwrap().eval(&BTreeMap::new()),
        None
    );
    assert_eq!(
        parse_expression("MAX(1, ABS(-7), 3)")
            .unwrap()
            .eval(&BTreeMap::new()),
        Some(7.0)
    );
    assert_eq!(
        parse_expression("IF(0, 1)").unwrap().eval(&BTreeMap::new()),
        None
    );
    for bad in ["1 +", "IF(1)", "FOO(1)", "(1", "1 2", "a $ b"] {
        assert!(parse_expression(bad).is_err(), "{bad}");
    }
}

#[test]
fn fill_gives_a_missing_input_a_value_as_cloudwatch_does() {
    let e =
        parse_expression("IF(FILL(ok, 0) + bad > 0, 100 * bad / (FILL(ok, 0) + bad), 0)").unwrap();
    let env = |ok: Option<f64>, bad: Option<f64>| {
        BTreeMap::from([("ok".to_owned(), ok), ("bad".to_owned(), bad)])
    };
    // Every attempt failed and nothing was fulfilled: 100 %, not missing.
    assert_eq!(e.eval(&env(None, Some(4.0))), Some(100.0));
    assert_eq!(e.eval(&env(Some(3.0), Some(1.0))), Some(25.0));
    assert_eq!(e.eval(&env(Some(3.0), None)), None);
    assert!(parse_expression("FILL(a)").is_err());
}

#[test]
fn the_shared_alarm_file_loads_with_local_names() {
    let alarms = load(crate::definitions::ALARMS_JSON, &Bindings::local(), 1.0).unwrap();
    let names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"dofs-dlq-depth"), "{names:?}");
    assert!(
        names.contains(&"dofs-fulfill_order-lambda-error-rate"),
        "{names:?}"
    );
    let dlq = alarms.iter().find(|a| a.id == "dlq-depth").unwrap();
    // Waiting and in flight: a dead letter dlq_handler keeps failing on is
    // in flight most of the time, which Visible alone never shows; each at
    // its Minimum, so a dead letter handled within the minute never counts.
    match &dlq.source {
        AlarmSource::Math { metrics, .. } => {
            let names: Vec<&str> = metrics.values().map(|q| q.key.name.as_str()).collect();
            assert!(names.contains(&"ApproximateNumberOfMessagesVisible"));
            assert!(names.contains(&"ApproximateNumberOfMessagesNotVisible"));
            for q in metrics.values() {
                assert_eq!(
                    q.key.dimensions["QueueName"],
                    crate::identity::DEAD_LETTER_QUEUE
                );
                assert_eq!(q.statistic, Statistic::Minimum);
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dlq.period, Duration::from_secs(300));
    // DOFS metrics are selected by deployed function name, as EMF writes them.
    let failed = alarms.iter().find(|a| a.id == "orders-failed").unwrap();
    match &failed.source {
        AlarmSource::Metric(q) => {
            assert_eq!(q.key.namespace, "DOFS");
            assert_eq!(q.key.dimensions["function"], "dofs-dlq_handler");
        }
        other => panic!("{other:?}"),
    }
    let throttles = alarms.iter().filter(|a| a.id == "lambda-throttles").count();
    assert_eq!(throttles, crate::services::lambda::FunctionName::ALL.len());
    let per_function = alarms
        .iter()
        .filter(|a| a.id == "lambda-error-rate")
        .count();
    assert_eq!(
        per_function,
        crate::services::lambda::FunctionName::ALL.len()
    );
    let order_age = alarms
        .iter()
        .find(|a| a.id == "order-queue-oldest-message-age")
        .unwrap();
    assert_eq!(
        (order_age.evaluation_periods, order_age.datapoints_to_alarm),
        (5, 3)
    );

    let scaled = load(crate::definitions::ALARMS_JSON, &Bindings::local(), 0.01).unwrap();
    let dlq = scaled.iter().find(|a| a.id == "dlq-depth").unwrap();
    assert_eq!(dlq.period, Duration::from_secs(3));
    let order_age = scaled
        .iter()
        .find(|a| a.id == "order-queue-oldest-message-age")
        .unwrap();
    assert_eq!(
        order_age.period,
        Duration::from_secs(1),
        "floor of one second"
    );
}

#[test]
fn every_placeholder_the_file_declares_is_bound_locally() {
    let file: Value = serde_json::from_str(crate::definitions::ALARMS_JSON).unwrap();
    let bindings = Bindings::local();
    for name in file["placeholders"].as_object().unwrap().keys() {
        assert!(
            name == "function_name" || bindings.placeholders.contains_key(name),
            "${{{name}}} has no local value"
        );
    }
}

#[test]
fn bad_definitions_are_refused_with_the_alarm_named() {
    let file = |body: &str| format!(r#"{{"alarms": [{body}]}}"#);
    let base = r#""name": "x", "namespace": "N", "metric_name": "M", "statistic": "Sum", "period": 60, "evaluation_periods": 1, "threshold": 0, "comparison": "GreaterThanThreshold""#;
    assert!(load(&file(&format!("{{{base}}}")), &Bindings::local(), 1.0).is_ok());
    let broken = [
        base.replace("Sum", "p99"),
        base.replace("GreaterThanThreshold", "Sideways"),
        format!(r#"{base}, "dimensions": {{"Q": "${{nope}}"}}"#),
        format!(r#"{base}, "datapoints_to_alarm": 2"#),
        base.replace(r#""metric_name": "M", "#, r#""expression": "a +", "#),
    ];
    for body in broken {
        let err = load(&file(&format!("{{{body}}}")), &Bindings::local(), 1.0).unwrap_err();
        assert!(err.to_string().contains("alarm x"), "{err}");
    }
}

#[tokio::test]
async fn metric_math_datapoints_come_from_the_store_and_drive_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let alarms = load(crate::definitions::ALARMS_JSON, &Bindings::local(), 0.01).unwrap();
    let rate = alarms
        .iter()
        .find(|a| a.name == "dofs-validator-lambda-error-rate")
        .unwrap()
        .clone();
    let period_ms = rate.period.as_millis() as i64;
    let now = 1_700_000_000_000 - 1_700_000_000_000 % period_ms + 10;
    let store = MetricsStore::with_clock(std::sync::Arc::new(dofs_core::testkit::FixedClock(
        DateTime::from_timestamp_millis(now).unwrap(),
    )));
    let in_last_period = now - period_ms;
    let dims = [("FunctionName", "dofs-validator")];
    for i in 0..10 {
        store.record_at(
            SeriesKey::new("AWS/Lambda", "Invocations", &dims),
            "Count",
            1.0,
            in_last_period,
        );
        store.record_at(
            SeriesKey::new("AWS/Lambda", "Errors", &dims),
            "Count",
            if i < 2 { 1.0 } else { 0.0 },
            in_last_period,
        );
    }
    store.flush(&db, None).await.unwrap();
    let a = rate.clone();
    let points = db.read(move |c| datapoints(c, &a, now)).await.unwrap();
    // The evaluation range: three periods for one evaluation period.
    assert_eq!(points.len(), 3);
    assert_eq!(points[2].value, Some(20.0));
    assert!(points[..2].iter().all(|p| p.value.is_none()), "{points:?}");
    assert_eq!(
        evaluate(&rate, &points, AlarmState::Ok, Utc::now()).state,
        AlarmState::Alarm
    );

    let evaluator = Evaluator::register(
        db.clone(),
        vec![rate.clone()],
        None,
        std::sync::Arc::new(dofs_core::SystemClock),
    )
    .await
    .unwrap();
    let at = DateTime::<Utc>::from_timestamp_millis(now).unwrap();
    let transitions = evaluator.evaluate_all(at).await.unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].old_state, AlarmState::InsufficientData);
    assert_eq!(transitions[0].new_state, AlarmState::Alarm);
    // Same data, same state: no second transition.
    assert!(evaluator.evaluate_all(at).await.unwrap().is_empty());
    let (states, history) = db
        .read(|c| Ok((load_states(c)?, load_history(c, 10)?)))
        .await
        .unwrap();
    assert_eq!(states[0].state, AlarmState::Alarm);
    assert_eq!(history.len(), 1);
    // Periods with no invocations after it: as on AWS, the alarm goes on
    // judging its last real datapoint while it is in the evaluation range…
    let later = DateTime::<Utc>::from_timestamp_millis(now + 2 * period_ms).unwrap();
    assert!(evaluator.evaluate_all(later).await.unwrap().is_empty());
    // …and once it has left the range, every datapoint is missing, treated
    // as not breaching.
    let later = DateTime::<Utc>::from_timestamp_millis(now + 3 * period_ms).unwrap();
    let back = evaluator.evaluate_all(later).await.unwrap();
    assert_eq!(back[0].new_state, AlarmState::Ok);
}

#[test]
fn the_notification_looks_like_cloudwatch_through_sns() {
    let alarms = load(crate::definitions::ALARMS_JSON, &Bindings::local(), 1.0).unwrap();
    let dlq = alarms
        .iter()
        .find(|a| a.id == "dlq-oldest-message-age")
        .unwrap();
    let eval = evaluate(
        dlq,
        &points(&[Some(400.0), Some(500.0), Some(600.0), None, None]),
        AlarmState::Ok,
        Utc::now(),
    );
    let at = Utc::now();
    let message = alarm_message(dlq, AlarmState::Ok, &eval, at);
    assert_eq!(message["AlarmName"], "dofs-dlq-oldest-message-age");
    assert_eq!(message["NewStateValue"], "ALARM");
    assert_eq!(message["OldStateValue"], "OK");
    assert!(
        message["AlarmDescription"]
            .as_str()
            .is_some_and(|d| d.contains("Runbook: docs/runbook.md#dlq-oldest-message-age.")),
        "{message}"
    );
    assert_eq!(
        message["Trigger"]["MetricName"],
        "ApproximateAgeOfOldestMessage"
    );
    assert_eq!(
        message["Trigger"]["Dimensions"][0]["value"],
        crate::identity::DEAD_LETTER_QUEUE
    );
    assert_eq!(message["Trigger"]["Statistic"], "MAXIMUM");
    let envelope = sns_envelope(
        &message,
        "dofs-dlq-oldest-message-age",
        AlarmState::Alarm,
        at,
    );
    assert_eq!(envelope["Type"], "Notification");
    let inner: Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(inner, message);

    let rate = alarms.iter().find(|a| a.id == "lambda-error-rate").unwrap();
    let eval = evaluate(rate, &points(&[Some(50.0)]), AlarmState::Ok, Utc::now());
    let message = alarm_message(rate, AlarmState::Ok, &eval, at);
    let list = message["Trigger"]["Metrics"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        list[0]["Expression"],
        "IF(invocations > 0, 100 * errors / invocations, 0)"
    );
}
