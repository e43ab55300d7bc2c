//! [`LocalTasks`], the `TaskInvoker` of the local Step Functions: the
//! `lambda:invoke` and `sqs:sendMessage` service integrations, shaped as
//! Step Functions shapes them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dofs_telemetry::TraceHeader;
use serde_json::{json, Value};

use crate::services::lambda::{FunctionName, Functions};
use crate::services::sqs::{MessageAttribute, OutgoingMessage, QueueError, Queues};
use dofs_asl::{TaskCall, TaskFailure, TaskInvoker};

/// The task integrations the workflow uses, on the local functions and
/// queues.
pub struct LocalTasks {
    functions: Arc<Functions>,
    queues: Queues,
}

impl LocalTasks {
    pub fn new(functions: Arc<Functions>, queues: Queues) -> Self {
        Self { functions, queues }
    }

    async fn lambda_invoke(
        &self,
        mut parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        let target = parameters
            .get("FunctionName")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                failure(
                    "States.Runtime",
                    "lambda:invoke needs a FunctionName string",
                )
            })?;
        let function = FunctionName::resolve(target).ok_or_else(|| {
            failure(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {target}"),
            )
        })?;
        // Taken, not copied: the parameters are this call's own.
        let payload = parameters
            .get_mut("Payload")
            .map(Value::take)
            .unwrap_or_else(|| json!({}));
        match self
            .functions
            .invoke(function, payload, call.trace_header.clone())
            .await
        {
            Ok(output) => Ok(Value::Object(serde_json::Map::from_iter([
                ("Payload".to_owned(), output),
                ("StatusCode".to_owned(), Value::from(200)),
                ("ExecutedVersion".to_owned(), Value::from("$LATEST")),
            ]))),
            Err(err) => Err(TaskFailure {
                error: err.error_type.clone(),
                cause: err.to_json().to_string(),
            }),
        }
    }

    async fn sqs_send(&self, mut parameters: Value, call: &TaskCall) -> Result<Value, TaskFailure> {
        let url = parameters
            .get("QueueUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| failure("States.Runtime", "sqs:sendMessage needs a QueueUrl string"))?;
        let queue = Queues::name_from_url(url)
            .map(str::to_owned)
            .ok_or_else(|| {
                failure(
                    "SQS.QueueDoesNotExistException",
                    format!("bad QueueUrl {url}"),
                )
            })?;
        // A JSON object or array is sent as its JSON text; a string as is.
        let body = match parameters.get_mut("MessageBody").map(Value::take) {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => {
                return Err(failure(
                    "States.Runtime",
                    "sqs:sendMessage needs a MessageBody",
                ))
            }
        };
        let attributes: BTreeMap<String, MessageAttribute> =
            match parameters.get("MessageAttributes") {
                Some(value) => serde_json::from_value(value.clone())
                    .map_err(|e| failure("SQS.InvalidParameterValueException", e.to_string()))?,
                None => BTreeMap::new(),
            };
        let delay = parameters
            .get("DelaySeconds")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        let sent = self
            .queues
            .send(
                &queue,
                OutgoingMessage {
                    body,
                    attributes,
                    trace_header: call.trace_header.clone(),
                    delay,
                },
            )
            .await
            .map_err(|err| match err {
                QueueError::NonExistentQueue(q) => failure(
                    "SQS.QueueDoesNotExistException",
                    format!("The specified queue does not exist: {q}"),
                ),
                QueueError::Db(db) => failure("SQS.AmazonSQSException", db.to_string()),
            })?;
        Ok(json!({"MessageId": sent.message_id, "MD5OfMessageBody": sent.md5_of_body}))
    }
}

fn failure(error: &str, cause: impl Into<String>) -> TaskFailure {
    TaskFailure {
        error: error.to_owned(),
        cause: cause.into(),
    }
}

/// The execution's trace with a fresh parent segment for one state, when
/// spans are not traced (no telemetry): the tasks still pass a header on.
pub(super) fn child_header(header: Option<&str>) -> Option<String> {
    let header = header?;
    match header.parse::<TraceHeader>() {
        Ok(parsed) => Some(
            parsed
                .with_parent(dofs_telemetry::trace_header::new_segment_id())
                .to_string(),
        ),
        Err(_) => Some(header.to_owned()),
    }
}

/// The service integrations [`LocalTasks`] runs (request-response only).
pub const SUPPORTED_RESOURCES: [&str; 2] = [
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::sqs:sendMessage",
];

/// Refuses, at load, a workflow whose Tasks call anything [`LocalTasks`]
/// cannot run (another service, `.sync` or `.waitForTaskToken`), naming
/// the state, rather than failing its executions one by one.
pub fn check_resources(machine: &dofs_asl::StateMachine) -> Result<(), String> {
    let unsupported: Vec<String> = machine
        .task_resources()
        .into_iter()
        .filter(|(_, resource, _)| !SUPPORTED_RESOURCES.contains(resource))
        .map(|(state, resource, _)| format!("state {state:?} calls {resource}"))
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}; the local runtime runs only {}",
        unsupported.join(", "),
        SUPPORTED_RESOURCES.join(" and ")
    ))
}

#[async_trait]
impl TaskInvoker for LocalTasks {
    async fn invoke(
        &self,
        resource: &str,
        parameters: Value,
        call: &TaskCall,
    ) -> Result<Value, TaskFailure> {
        let work = async {
            match resource {
                r if r == SUPPORTED_RESOURCES[0] => self.lambda_invoke(parameters, call).await,
                r if r == SUPPORTED_RESOURCES[1] => self.sqs_send(parameters, call).await,
                other => Err(failure(
                    "States.Runtime",
                    format!("resource {other} is not supported by the local runtime"),
                )),
            }
        };
        match call.timeout {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(failure(
                    "States.Timeout",
                    format!("Task timed out after {} seconds", limit.as_secs_f64()),
                ))
            }),
            None => work.await,
        }
    }
}
