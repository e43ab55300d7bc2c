//! Loading a definition: JSON → typed states, with the structural checks Step
//! Functions makes at `CreateStateMachine` time (and statelint makes in CI), so a
//! broken workflow fails when it is loaded, not halfway through an order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::choice::{self, Branch};
use super::path::{Path, ReferencePath};
use super::payload::{Expr, Template};
use super::retry::{check_all_is_last, check_fields, parse_result_path, Catcher, Retrier};
use super::{quotas, AslError, StateType};

#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub(crate) start_at: String,
    pub(crate) timeout_seconds: Option<u64>,
    pub(crate) states: BTreeMap<String, State>,
}

#[derive(Debug, Clone)]
pub(crate) struct State {
    /// `None` is `"InputPath": null` (the state sees `{}`).
    pub(crate) input_path: Option<Path>,
    /// `None` is `"OutputPath": null` (the state outputs `{}`).
    pub(crate) output_path: Option<Path>,
    pub(crate) kind: Kind,
}

#[derive(Debug, Clone)]
pub(crate) enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Task(Box<Task>),
    Pass {
        parameters: Option<Template>,
        result: Option<Value>,
        result_path: Option<ReferencePath>,
        transition: Transition,
    },
    Choice {
        choices: Vec<Branch>,
        default: Option<String>,
    },
    Wait {
        wait: WaitFor,
        transition: Transition,
    },
    Succeed,
    Fail {
        error: Option<FailField>,
        cause: Option<FailField>,
    },
}

impl Kind {
    /// The prefix of the history events (`TaskStateEntered`, `PassStateExited`, ...).
    pub(crate) fn state_type(&self) -> StateType {
        match self {
            Kind::Task(_) => StateType::Task,
            Kind::Pass { .. } => StateType::Pass,
            Kind::Choice { .. } => StateType::Choice,
            Kind::Wait { .. } => StateType::Wait,
            Kind::Succeed => StateType::Succeed,
            Kind::Fail { .. } => StateType::Fail,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub(crate) resource: String,
    pub(crate) parameters: Option<Template>,
    pub(crate) result_selector: Option<Template>,
    pub(crate) result_path: Option<ReferencePath>,
    /// `TimeoutSeconds` or `TimeoutSecondsPath`.
    pub(crate) timeout: Option<Seconds>,
    /// `HeartbeatSeconds` or `HeartbeatSecondsPath`.
    pub(crate) heartbeat: Option<Seconds>,
    /// `Credentials`, a template like `Parameters`.
    pub(crate) credentials: Option<Template>,
    pub(crate) retry: Vec<Retrier>,
    pub(crate) catch: Vec<Catcher>,
    pub(crate) transition: Transition,
}

/// A Task's timeout or heartbeat: fixed, or read from the input.
#[derive(Debug, Clone)]
pub(crate) enum Seconds {
    Fixed(u64),
    /// The path and the field's name (`TimeoutSecondsPath`, ...).
    Path(Path, &'static str),
}

#[derive(Debug, Clone)]
pub(crate) enum WaitFor {
    Seconds(i64),
    SecondsPath(Path),
    Timestamp(chrono::DateTime<chrono::Utc>),
    TimestampPath(Path),
}

#[derive(Debug, Clone)]
pub(crate) enum FailField {
    Literal(String),
    Dynamic(Expr),
}

const IO_FIELDS: [&str; 5] = [
    "Type",
    "Comment",
    "QueryLanguage",
    "InputPath",
    "OutputPath",
];

/// Fields of valid ASL that this interpreter does not run, and why.
const UNSUPPORTED_FIELDS: [(&str, &str); 3] = [
    (
        "Assign",
        "variables (`Assign`) are not supported by this interpreter",
    ),
    (
        "Arguments",
        "`Arguments` belongs to the JSONata query language, which this interpreter does not run",
    ),
    (
        "Output",
        "`Output` belongs to the JSONata query language, which this interpreter does not run",
    ),
];

impl Definition {
    pub(crate) fn parse(text: &str) -> Result<Self, AslError> {
        let root: Value = serde_json::from_str(text)?;
        let root = root
            .as_object()
            .ok_or_else(|| invalid("definition", "must be a JSON object"))?;
        check_fields(
            root,
            &[
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ],
        )
        .map_err(|m| invalid("definition", m))?;
        query_language(root.get("QueryLanguage"), "QueryLanguage")?;
        let start_at = root
            .get("StartAt")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("StartAt", "must be a string"))?
            .to_owned();
        let timeout_seconds = match root.get("TimeoutSeconds") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| invalid("TimeoutSeconds", "must be a positive integer"))?,
            ),
        };
        let states_json = root
            .get("States")
            .and_then(Value::as_object)
            .filter(|states| !states.is_empty())
            .ok_or_else(|| invalid("States", "must be a non-empty object"))?;
        let mut states = BTreeMap::new();
        for (name, value) in states_json {
            if name.is_empty() || name.chars().count() > 80 {
                return Err(invalid(
                    &format!("States.{name}"),
                    "state names must have 1 to 80 characters",
                ));
            }
            let state = parse_state(name, value)?;
            states.insert(name.clone(), state);
        }
        let definition = Self {
            start_at,
            timeout_seconds,
            states,
        };
        definition.check_transitions()?;
        Ok(definition)
    }

    /// Every target exists, and every state can be reached from `StartAt`.
    fn check_transitions(&self) -> Result<(), AslError> {
        if !self.states.contains_key(&self.start_at) {
            return Err(invalid(
                "StartAt",
                format!("no state is named `{}`", self.start_at),
            ));
        }
        for (name, state) in &self.states {
            for target in state.targets() {
                if !self.states.contains_key(target) {
                    return Err(invalid(
                        &format!("States.{name}"),
                        format!("transition to unknown state `{target}`"),
                    ));
                }
            }
        }
        let mut reached = BTreeSet::from([self.start_at.as_str()]);
        let mut todo = vec![self.start_at.as_str()];
        while let Some(name) = todo.pop() {
            for target in self.states[name].targets() {
                if reached.insert(target) {
                    todo.push(target);
                }
            }
        }
        if let Some(unreachable) = self
            .states
            .keys()
            .find(|name| !reached.contains(name.as_str()))
        {
            return Err(invalid(
                &format!("States.{unreachable}"),
                "state is not reachable from StartAt",
            ));
        }
        Ok(())
    }
}

impl State {
    fn targets(&self) -> Vec<&str> {
        fn next(transition: &Transition) -> Option<&str> {
            match transition {
                Transition::Next(next) => Some(next),
                Transition::End => None,
            }
        }
        match &self.kind {
            Kind::Task(task) => next(&task.transition)
                .into_iter()
                .chain(task.catch.iter().map(|c| c.next.as_str()))
                .collect(),
            Kind::Pass { transition, .. } | Kind::Wait { transition, .. } => {
                next(transition).into_iter().collect()
            }
            Kind::Choice { choices, default } => choices
                .iter()
                .map(|b| b.next.as_str())
                .chain(default.as_deref())
                .collect(),
            Kind::Succeed | Kind::Fail { .. } => Vec::new(),
        }
    }
}

fn invalid(at: &str, message: impl Into<String>) -> AslError {
    AslError::Definition {
        at: at.to_owned(),
        message: message.into(),
    }
}

fn unsupported(at: &str, message: impl Into<String>) -> AslError {
    AslError::Unsupported {
        at: at.to_owned(),
        message: message.into(),
    }
}

/// `QueryLanguage`, at the top level or in a state: `"JSONPath"` (the
/// default) runs, `"JSONata"` is valid ASL this interpreter does not run.
fn query_language(value: Option<&Value>, at: &str) -> Result<(), AslError> {
    match value.map(|v| v.as_str()) {
        None | Some(Some("JSONPath")) => Ok(()),
        Some(Some("JSONata")) => Err(unsupported(
            at,
            "the JSONata query language is not supported by this interpreter; use \"JSONPath\"",
        )),
        Some(_) => Err(invalid(at, "must be \"JSONPath\" or \"JSONata\"")),
    }
}

/// A state, or where and why it cannot be run.
fn parse_state(name: &str, value: &Value) -> Result<State, AslError> {
    let at = format!("States.{name}");
    let map = value
        .as_object()
        .ok_or_else(|| invalid(&at, "a state must be an object"))?;
    let kind_name = map
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&at, "`Type` must be a string"))?;
    if matches!(kind_name, "Parallel" | "Map") {
        return Err(unsupported(
            &format!("{at}.Type"),
            format!(
                "`{kind_name}` states are not supported by this interpreter, which runs Task, Pass, Choice, Wait, Succeed and Fail states"
            ),
        ));
    }
    query_language(map.get("QueryLanguage"), &format!("{at}.QueryLanguage"))?;
    for (field, why) in UNSUPPORTED_FIELDS {
        if map.contains_key(field) {
            return Err(unsupported(&format!("{at}.{field}"), why));
        }
    }
    parse_state_fields(kind_name, map).map_err(|m| invalid(&at, m))
}

fn parse_state_fields(kind_name: &str, map: &Map<String, Value>) -> Result<State, String> {
    let allowed: Vec<&str> = match kind_name {
        "Task" => [
            "Resource",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
            "Retry",
            "Catch",
            "Next",
            "End",
        ]
        .to_vec(),
        "Pass" => ["Parameters", "Result", "ResultPath", "Next", "End"].to_vec(),
        "Choice" => ["Choices", "Default"].to_vec(),
        "Wait" => [
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
            "Next",
            "End",
        ]
        .to_vec(),
        "Succeed" => Vec::new(),
        "Fail" => ["Error", "ErrorPath", "Cause", "CausePath"].to_vec(),
        other => return Err(format!("unknown state type `{other}`")),
    };
    let io: &[&str] = if kind_name == "Fail" {
        &IO_FIELDS[..3]
    } else {
        &IO_FIELDS
    };
    let all: Vec<&str> = io.iter().copied().chain(allowed).collect();
    if let Some(field) = map.keys().find(|k| !all.contains(&k.as_str())) {
        return Err(format!(
            "field `{field}` is not allowed in a {kind_name} state"
        ));
    }
    let kind = match kind_name {
        "Task" => Kind::Task(Box::new(parse_task(map)?)),
        "Pass" => Kind::Pass {
            parameters: optional_template(map, "Parameters")?,
            result: map.get("Result").cloned(),
            result_path: parse_result_path(map.get("ResultPath"))?,
            transition: transition(map)?,
        },
        "Choice" => {
            let choices = map
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|c| !c.is_empty())
                .ok_or("`Choices` must be a non-empty array")?
                .iter()
                .enumerate()
                .map(|(i, c)| Branch::parse(c).map_err(|m| format!("Choices[{i}]: {m}")))
                .collect::<Result<_, _>>()?;
            let default = match map.get("Default") {
                None => None,
                Some(v) => Some(v.as_str().ok_or("`Default` must be a string")?.to_owned()),
            };
            Kind::Choice { choices, default }
        }
        "Wait" => Kind::Wait {
            wait: parse_wait(map)?,
            transition: transition(map)?,
        },
        "Succeed" => Kind::Succeed,
        _ => Kind::Fail {
            error: fail_field(map, "Error", "ErrorPath")?,
            cause: fail_field(map, "Cause", "CausePath")?,
        },
    };
    Ok(State {
        input_path: io_path(map, "InputPath")?,
        output_path: io_path(map, "OutputPath")?,
        kind,
    })
}

fn parse_task(map: &Map<String, Value>) -> Result<Task, String> {
    let resource = map
        .get("Resource")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .ok_or("a Task needs a string `Resource`")?
        .to_owned();
    let timeout = seconds_field(map, "TimeoutSeconds", "TimeoutSecondsPath")?;
    let heartbeat = seconds_field(map, "HeartbeatSeconds", "HeartbeatSecondsPath")?;
    // HeartbeatSeconds: "Must be a positive, non-zero integer less than the
    // number of seconds specified in the TimeoutSeconds field. If not
    // provided, the default value is 99999999" (of TimeoutSeconds too).
    if let Some(Seconds::Fixed(beat)) = heartbeat {
        let limit = match timeout {
            Some(Seconds::Fixed(limit)) => limit,
            Some(Seconds::Path(..)) => u64::MAX,
            None => quotas::MAX_SECONDS_FIELD,
        };
        if beat >= limit {
            return Err(format!(
                "`HeartbeatSeconds` ({beat}) must be less than `TimeoutSeconds` ({limit})"
            ));
        }
    }
    let credentials = match map.get("Credentials") {
        None => None,
        Some(value @ Value::Object(_)) => {
            Some(Template::compile(value).map_err(|m| format!("`Credentials`: {m}"))?)
        }
        Some(_) => {
            return Err("`Credentials` must be an object (e.g. {\"RoleArn\": ...})".to_owned())
        }
    };
    let retry = list(map, "Retry")?
        .iter()
        .enumerate()
        .map(|(i, r)| Retrier::parse(r).map_err(|m| format!("Retry[{i}]: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    let catch = list(map, "Catch")?
        .iter()
        .enumerate()
        .map(|(i, c)| Catcher::parse(c).map_err(|m| format!("Catch[{i}]: {m}")))
        .collect::<Result<Vec<_>, _>>()?;
    check_all_is_last(retry.iter().map(|r| r.error_equals.as_slice()))
        .map_err(|m| format!("Retry: {m}"))?;
    check_all_is_last(catch.iter().map(|c| c.error_equals.as_slice()))
        .map_err(|m| format!("Catch: {m}"))?;
    Ok(Task {
        resource,
        parameters: optional_template(map, "Parameters")?,
        result_selector: optional_template(map, "ResultSelector")?,
        result_path: parse_result_path(map.get("ResultPath"))?,
        timeout,
        heartbeat,
        credentials,
        retry,
        catch,
        transition: transition(map)?,
    })
}

fn parse_wait(map: &Map<String, Value>) -> Result<WaitFor, String> {
    let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
        .into_iter()
        .filter(|f| map.contains_key(*f))
        .collect();
    let [field] = given[..] else {
        return Err(
            "a Wait needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath".to_owned(),
        );
    };
    let value = &map[field];
    let text = || {
        value
            .as_str()
            .ok_or_else(|| format!("`{field}` must be a string"))
    };
    Ok(match field {
        "Seconds" => WaitFor::Seconds(
            value
                .as_u64()
                .filter(|n| *n <= quotas::MAX_SECONDS_FIELD)
                .and_then(|n| i64::try_from(n).ok())
                .ok_or("`Seconds` must be an integer from 0 to 99999999")?,
        ),
        "SecondsPath" => WaitFor::SecondsPath(Path::parse(text()?)?),
        "Timestamp" => WaitFor::Timestamp(
            choice::timestamp(text()?)
                .ok_or("`Timestamp` must be an RFC 3339 timestamp")?
                .with_timezone(&chrono::Utc),
        ),
        _ => WaitFor::TimestampPath(Path::parse(text()?)?),
    })
}

/// `TimeoutSeconds`/`TimeoutSecondsPath` (or the heartbeat pair): at most
/// one, a positive integer up to 99999999 or a reference path ("When
/// resolved, the reference path must select fields whose values are
/// positive integers").
fn seconds_field(
    map: &Map<String, Value>,
    fixed: &str,
    dynamic: &'static str,
) -> Result<Option<Seconds>, String> {
    match (map.get(fixed), map.get(dynamic)) {
        (Some(_), Some(_)) => Err(format!(
            "a Task state cannot include both `{fixed}` and `{dynamic}`"
        )),
        (Some(v), None) => v
            .as_u64()
            .filter(|n| (1..=quotas::MAX_SECONDS_FIELD).contains(n))
            .map(|n| Some(Seconds::Fixed(n)))
            .ok_or_else(|| format!("`{fixed}` must be an integer from 1 to 99999999")),
        (None, Some(v)) => {
            let text = v
                .as_str()
                .ok_or_else(|| format!("`{dynamic}` must be a string"))?;
            let local = text
                .strip_prefix("$$")
                .map_or_else(|| text.to_owned(), |rest| format!("${rest}"));
            if ReferencePath::parse(&local).is_none() {
                return Err(format!(
                    "`{dynamic}` must be a reference path such as `$.a.b`"
                ));
            }
            Path::parse(text)
                .map(|p| Some(Seconds::Path(p, dynamic)))
                .map_err(|m| format!("`{dynamic}`: {m}"))
        }
        (None, None) => Ok(None),
    }
}

fn fail_field(
    map: &Map<String, Value>,
    literal: &str,
    dynamic: &str,
) -> Result<Option<FailField>, String> {
    match (map.get(literal), map.get(dynamic)) {
        (Some(_), Some(_)) => Err(format!(
            "`{literal}` and `{dynamic}` are mutually exclusive"
        )),
        (Some(v), None) => Ok(Some(FailField::Literal(
            v.as_str()
                .ok_or_else(|| format!("`{literal}` must be a string"))?
                .to_owned(),
        ))),
        (None, Some(v)) => {
            let text = v
                .as_str()
                .ok_or_else(|| format!("`{dynamic}` must be a string"))?;
            Ok(Some(FailField::Dynamic(Expr::parse(text)?)))
        }
        (None, None) => Ok(None),
    }
}

fn transition(map: &Map<String, Value>) -> Result<Transition, String> {
    match (map.get("Next"), map.get("End")) {
        (Some(Value::String(next)), None) => Ok(Transition::Next(next.clone())),
        (None, Some(Value::Bool(true))) => Ok(Transition::End),
        (Some(_), Some(_)) => Err("`Next` and `End` are mutually exclusive".to_owned()),
        _ => Err("needs either a string `Next` or `\"End\": true`".to_owned()),
    }
}

fn io_path(map: &Map<String, Value>, field: &str) -> Result<Option<Path>, String> {
    match map.get(field) {
        None => Path::parse("$").map(Some),
        Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Path::parse(text)
            .map(Some)
            .map_err(|m| format!("`{field}`: {m}")),
        Some(_) => Err(format!("`{field}` must be a string or null")),
    }
}

fn optional_template(map: &Map<String, Value>, field: &str) -> Result<Option<Template>, String> {
    map.get(field)
        .map(|v| Template::compile(v).map_err(|m| format!("`{field}`: {m}")))
        .transpose()
}

fn list<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a [Value], String> {
    match map.get(field) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("`{field}` must be an array")),
    }
}
