//! Test support (feature `testing`): [`ScriptedTasks`], a [`TaskInvoker`]
//! that answers each state's calls from a script and records every call, for
//! tests of the interpreter and of hosts that drive it.

// Test support: a poisoned lock is a failed test already.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::{TaskCall, TaskFailure, TaskInvoker};

/// One recorded task call.
#[derive(Debug, Clone)]
pub struct Call {
    pub resource: String,
    pub parameters: Value,
    pub call: TaskCall,
}

type Answer = Box<dyn Fn(&str, &Value) -> Result<Value, TaskFailure> + Send + Sync>;
type Hook = Box<dyn Fn(&TaskCall) + Send + Sync>;

/// A TaskInvoker that answers from a per-state script (then from an
/// optional fallback) and records every call.
#[derive(Default)]
pub struct ScriptedTasks {
    script: Mutex<HashMap<String, VecDeque<Result<Value, TaskFailure>>>>,
    fallback: Option<Answer>,
    hook: Option<Hook>,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedTasks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn on(self, state: &str, answer: Result<Value, TaskFailure>) -> Self {
        self.script
            .lock()
            .unwrap()
            .entry(state.to_owned())
            .or_default()
            .push_back(answer);
        self
    }

    pub fn fail(self, state: &str, error: &str, cause: &str) -> Self {
        self.on(state, Err(TaskFailure::new(error, cause)))
    }

    /// Answers every call the script has no answer for, from the resource
    /// and the parameters.
    pub fn otherwise(
        mut self,
        answer: impl Fn(&str, &Value) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Box::new(answer));
        self
    }

    /// Runs `hook` on every call, before answering (e.g. to stop a driver
    /// after a given state).
    pub fn on_each_call(mut self, hook: impl Fn(&TaskCall) + Send + Sync + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }

    /// The states called, in order.
    pub fn states_called(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.call.state).collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, state: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.call.state == state)
            .collect()
    }
}

#[async_trait]
impl TaskInvoker for ScriptedTasks {
    async fn invoke(
        &self,
        resource: &str,
        parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        if let Some(hook) = &self.hook {
            hook(call);
        }
        self.calls.lock().unwrap().push(Call {
            resource: resource.to_owned(),
            parameters: parameters.clone(),
            call: call.clone(),
        });
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&call.state)
            .and_then(VecDeque::pop_front);
        match (scripted, &self.fallback) {
            (Some(answer), _) => answer,
            (None, Some(fallback)) => fallback(resource, &parameters),
            (None, None) => Err(TaskFailure::new(
                "Test.Unscripted",
                format!("no answer scripted for {}", call.state),
            )),
        }
    }
}
