//! The execution history: one [`HistoryEvent`] per thing that happened, with
//! the kinds named as in Step Functions' `GetExecutionHistory`
//! (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_HistoryEvent.html>).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The type of a state, as its history events name it (`TaskStateEntered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateType {
    Task,
    Pass,
    Choice,
    Wait,
    Succeed,
    Fail,
}

impl StateType {
    /// The `Type` field of such a state.
    pub fn as_str(self) -> &'static str {
        match self {
            StateType::Task => "Task",
            StateType::Pass => "Pass",
            StateType::Choice => "Choice",
            StateType::Wait => "Wait",
            StateType::Succeed => "Succeed",
            StateType::Fail => "Fail",
        }
    }

    pub const ALL: [StateType; 6] = [
        StateType::Task,
        StateType::Pass,
        StateType::Choice,
        StateType::Wait,
        StateType::Succeed,
        StateType::Fail,
    ];
}

/// What a [`HistoryEvent`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HistoryEventKind {
    /// Recorded by the host that starts the execution, not by the interpreter.
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    /// Recorded by the host that enforces the execution's `TimeoutSeconds`.
    ExecutionTimedOut,
    ExecutionAborted,
    StateEntered(StateType),
    StateExited(StateType),
    TaskScheduled,
    TaskSucceeded,
    TaskFailed,
    TaskTimedOut,
    /// Our own: which retrier, which retry, the delay and the wake-up time,
    /// which Step Functions only shows as a gap between two `TaskScheduled`.
    TaskRetryScheduled,
}

impl HistoryEventKind {
    /// The name Step Functions gives the event type (`TaskStateEntered`).
    pub fn as_str(self) -> &'static str {
        use HistoryEventKind::*;
        use StateType::*;
        match self {
            ExecutionStarted => "ExecutionStarted",
            ExecutionSucceeded => "ExecutionSucceeded",
            ExecutionFailed => "ExecutionFailed",
            ExecutionTimedOut => "ExecutionTimedOut",
            ExecutionAborted => "ExecutionAborted",
            TaskScheduled => "TaskScheduled",
            TaskSucceeded => "TaskSucceeded",
            TaskFailed => "TaskFailed",
            TaskTimedOut => "TaskTimedOut",
            TaskRetryScheduled => "TaskRetryScheduled",
            StateEntered(Task) => "TaskStateEntered",
            StateEntered(Pass) => "PassStateEntered",
            StateEntered(Choice) => "ChoiceStateEntered",
            StateEntered(Wait) => "WaitStateEntered",
            StateEntered(Succeed) => "SucceedStateEntered",
            StateEntered(Fail) => "FailStateEntered",
            StateExited(Task) => "TaskStateExited",
            StateExited(Pass) => "PassStateExited",
            StateExited(Choice) => "ChoiceStateExited",
            StateExited(Wait) => "WaitStateExited",
            StateExited(Succeed) => "SucceedStateExited",
            StateExited(Fail) => "FailStateExited",
        }
    }

    /// Every kind, for parsing and tests.
    pub fn all() -> impl Iterator<Item = HistoryEventKind> {
        use HistoryEventKind::*;
        [
            ExecutionStarted,
            ExecutionSucceeded,
            ExecutionFailed,
            ExecutionTimedOut,
            ExecutionAborted,
            TaskScheduled,
            TaskSucceeded,
            TaskFailed,
            TaskTimedOut,
            TaskRetryScheduled,
        ]
        .into_iter()
        .chain(StateType::ALL.into_iter().map(StateEntered))
        .chain(StateType::ALL.into_iter().map(StateExited))
    }

    /// The kind called `name` (as [`HistoryEventKind::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::all().find(|kind| kind.as_str() == name)
    }

    /// The type of the state this event belongs to, if it belongs to one.
    pub fn state_type(self) -> Option<StateType> {
        use HistoryEventKind::*;
        match self {
            StateEntered(t) | StateExited(t) => Some(t),
            TaskScheduled | TaskSucceeded | TaskFailed | TaskTimedOut | TaskRetryScheduled => {
                Some(StateType::Task)
            }
            ExecutionStarted | ExecutionSucceeded | ExecutionFailed | ExecutionTimedOut
            | ExecutionAborted => None,
        }
    }

    /// Whether the execution ended unsuccessfully with this event.
    pub fn ends_in_failure(self) -> bool {
        use HistoryEventKind::*;
        matches!(self, ExecutionFailed | ExecutionTimedOut | ExecutionAborted)
    }

    /// Whether a task attempt failed with this event.
    pub fn is_task_failure(self) -> bool {
        matches!(
            self,
            HistoryEventKind::TaskFailed | HistoryEventKind::TaskTimedOut
        )
    }
}

impl fmt::Display for HistoryEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HistoryEventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HistoryEventKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown history event {name:?}")))
    }
}

/// One entry of the execution history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub kind: HistoryEventKind,
    pub state: Option<String>,
    pub at: DateTime<Utc>,
    /// The event's details, serialized when the event happens: the history
    /// carries whole inputs and outputs, and keeping them as JSON trees
    /// would copy each one three times (to keep, to store, to free). Read
    /// it with [`HistoryEvent::detail_value`].
    pub detail: Box<RawValue>,
}

impl HistoryEvent {
    /// An event of `kind` at `at`, its detail serialized from `detail`.
    pub fn new(
        kind: HistoryEventKind,
        state: Option<String>,
        at: DateTime<Utc>,
        detail: &impl Serialize,
    ) -> Self {
        Self {
            kind,
            state,
            at,
            detail: raw_detail(detail),
        }
    }

    /// The detail as a JSON tree (`null` if it were unreadable).
    pub fn detail_value(&self) -> Value {
        serde_json::from_str(self.detail.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for HistoryEvent {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.state == other.state
            && self.at == other.at
            && self.detail.get() == other.detail.get()
    }
}

/// `detail` serialized. Serializing a JSON value or one of the detail
/// structs cannot fail (all keys are strings); if it ever did, the event
/// keeps a `null` detail rather than failing the execution.
fn raw_detail(detail: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(detail).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name() {
        let kinds: Vec<_> = HistoryEventKind::all().collect();
        assert_eq!(kinds.len(), 22);
        for kind in kinds {
            assert_eq!(HistoryEventKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(
                serde_json::from_str::<HistoryEventKind>(&json).unwrap(),
                kind
            );
        }
        assert_eq!(HistoryEventKind::parse("TaskStarted"), None);
    }
}
