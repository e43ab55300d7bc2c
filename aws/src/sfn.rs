//! The order workflow on Step Functions.
//!
//! One execution per order, named after the order id, which makes
//! `StartExecution` idempotent: a retried `POST /orders` with the same
//! `Idempotency-Key` cannot start the workflow twice. `describe` derives the
//! execution ARN from the state machine ARN and the order id instead of
//! listing executions.
//!
//! The order's trace header goes in the request twice: as the `traceHeader`
//! body field and as the `X-Amzn-Trace-Id` HTTP header. The StartExecution
//! reference says of `traceHeader`: "If both sources are provided, Step
//! Functions will use the header value (preferred) over the value in the
//! request body" (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>),
//! and inside Lambda the SDK's recursion-detection interceptor sets that
//! header from `_X_AMZN_TRACE_ID` — Lambda's trace, not the order's — unless
//! the request already has one (`aws-runtime`'s `recursion_detection.rs`:
//! "if request.headers().contains_key(TRACE_ID_HEADER) return"). So the
//! header is set here, explicitly, to the order's trace.

use async_trait::async_trait;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionError;
use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use aws_sdk_sfn::Client;
use chrono::{DateTime, Utc};
use dofs_core::{
    ExecutionStatus, ExecutionView, OrderId, OrderSubmission, PortError, StartOutcome,
    StateMachineArn, Workflow,
};

use crate::error::{corrupt, port_error};

/// The HTTP header Step Functions takes the trace from, before the body.
pub const TRACE_ID_HEADER: &str = "x-amzn-trace-id";

/// [`Workflow`] on a Step Functions state machine.
#[derive(Debug, Clone)]
pub struct StepFunctionsWorkflow {
    client: Client,
    state_machine: StateMachineArn,
}

impl StepFunctionsWorkflow {
    pub fn new(client: Client, state_machine: StateMachineArn) -> Self {
        Self {
            client,
            state_machine,
        }
    }

    pub fn state_machine(&self) -> &StateMachineArn {
        &self.state_machine
    }
}

fn status_from_sfn(status: &SfnStatus) -> Option<ExecutionStatus> {
    Some(match status {
        SfnStatus::Running => ExecutionStatus::Running,
        SfnStatus::Succeeded => ExecutionStatus::Succeeded,
        SfnStatus::Failed => ExecutionStatus::Failed,
        SfnStatus::TimedOut => ExecutionStatus::TimedOut,
        SfnStatus::Aborted => ExecutionStatus::Aborted,
        // A failed execution waiting to be redriven will run again: for a
        // client polling its order that is "still in progress".
        SfnStatus::PendingRedrive => ExecutionStatus::Running,
        _ => return None,
    })
}

fn to_chrono(at: &aws_sdk_sfn::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at.secs(), at.subsec_nanos())
}

#[async_trait]
impl Workflow for StepFunctionsWorkflow {
    async fn start(
        &self,
        submission: &OrderSubmission,
        trace_header: Option<&str>,
    ) -> Result<StartOutcome, PortError> {
        let order_id = &submission.order_id;
        let input = serde_json::to_string(submission)
            .map_err(|e| corrupt(format!("submission {order_id} is not serialisable"), e))?;
        let header = trace_header.map(str::to_owned);
        let result = self
            .client
            .start_execution()
            .state_machine_arn(self.state_machine.as_str())
            .name(order_id.as_str())
            .input(input)
            .set_trace_header(header.clone())
            .customize()
            .mutate_request(move |request| {
                if let Some(header) = &header {
                    // A header Step Functions would refuse is refused in
                    // the body too; nothing to add then.
                    let _ = request
                        .headers_mut()
                        .try_insert(TRACE_ID_HEADER, header.clone());
                }
            })
            .send()
            .await;
        match result {
            Ok(_) => Ok(StartOutcome::Started),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(StartExecutionError::is_execution_already_exists) =>
            {
                // Step Functions only forgives a repeated name with the same
                // input while the first execution runs; for us the same
                // submission is the same order whatever the execution's state.
                match self.describe(order_id).await? {
                    Some(existing) if existing.input == *submission => Ok(StartOutcome::Started),
                    _ => Ok(StartOutcome::AlreadyExists),
                }
            }
            Err(err) => Err(port_error(
                format!("starting the workflow for order {order_id}"),
                err,
            )),
        }
    }

    async fn describe_traced(
        &self,
        order_id: &OrderId,
    ) -> Result<Option<(ExecutionView, Option<String>)>, PortError> {
        let arn = self.state_machine.execution_arn(order_id.as_str());
        let output = match self
            .client
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(DescribeExecutionError::is_execution_does_not_exist) =>
            {
                return Ok(None);
            }
            Err(err) => {
                return Err(port_error(
                    format!("describing the workflow execution of order {order_id}"),
                    err,
                ))
            }
        };
        let status = status_from_sfn(output.status()).ok_or_else(|| {
            PortError::internal(format!(
                "execution {arn} has an unknown status {:?}",
                output.status()
            ))
        })?;
        let input: OrderSubmission = serde_json::from_str(output.input().unwrap_or("null"))
            .map_err(|e| {
                corrupt(
                    format!("execution {arn} has an input that is not an order"),
                    e,
                )
            })?;
        let started_at = to_chrono(output.start_date()).ok_or_else(|| {
            PortError::internal(format!("execution {arn} has an out-of-range start date"))
        })?;
        let view = ExecutionView {
            status,
            input,
            started_at,
        };
        Ok(Some((view, output.trace_header().map(str::to_owned))))
    }
}
