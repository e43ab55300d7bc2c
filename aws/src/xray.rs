//! Every AWS SDK call as an X-Ray subsegment: an SDK interceptor that drives
//! a [`dofs_telemetry::aws_call::AwsCall`] through the call's hooks.
//!
//! Why here and not in `dofs-telemetry`: an interceptor implements the
//! SDK's `Intercept` trait (`aws-smithy-runtime-api`), and telemetry is
//! linked by the local runtime, which compiles no AWS SDK. So telemetry
//! holds the SDK-free half (the span and its X-Ray attributes) and this
//! module the SDK half, installed on every client [`crate::AwsClients`]
//! builds.
//!
//! Per call (one *execution*, however many attempts), the hooks record what
//! the X-Ray SDKs record for AWS calls
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-aws>):
//! - `read_before_serialization` (the first hook after the operation's own
//!   configuration is in the bag — a client interceptor's
//!   `read_before_execution` runs before it): the service and operation (the
//!   operation's `Metadata`, e.g. `DynamoDB` / `PutItem`) and the table or
//!   state machine from the input; the span starts, a child of the caller's
//!   span;
//! - `read_before_attempt`: one more attempt (`aws.retries` = attempts − 1);
//! - `read_after_attempt`: the HTTP status and `x-amzn-RequestId` of the
//!   answer;
//! - `read_after_execution`: the outcome — a failed call's error code (the
//!   `x-amzn-ErrorType` header of the JSON protocols, else the error's own
//!   name) and message become the subsegment's cause — and the span ends.
//!
//! The hooks only read; a call behaves the same with or without them.

use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::interceptors::{dyn_dispatch_hint, Intercept};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use dofs_telemetry::aws_call::{AwsCall, CallFailure};

/// The interceptor; install one per client (see [`crate::AwsClients`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct XrayInterceptor;

/// The call in progress, kept in the call's config bag between hooks.
#[derive(Debug, Clone)]
struct Call(Arc<AwsCall>);

impl Storable for Call {
    type Storer = StoreReplace<Self>;
}

/// Puts on `call` the resource its input names, for the operations DOFS
/// calls (other operations are traced without one).
fn describe_input(input: &Input, call: &AwsCall) {
    use aws_sdk_dynamodb::operation as dynamodb;
    use aws_sdk_sfn::operation as sfn;
    if let Some(table) = input
        .downcast_ref::<dynamodb::get_item::GetItemInput>()
        .and_then(|i| i.table_name())
        .or_else(|| {
            input
                .downcast_ref::<dynamodb::put_item::PutItemInput>()
                .and_then(|i| i.table_name())
        })
        .or_else(|| {
            input
                .downcast_ref::<dynamodb::update_item::UpdateItemInput>()
                .and_then(|i| i.table_name())
        })
    {
        call.table(table);
    } else if let Some(arn) = input
        .downcast_ref::<sfn::start_execution::StartExecutionInput>()
        .and_then(|i| i.state_machine_arn())
    {
        call.resource("aws.state_machine_arn", arn);
    } else if let Some(arn) = input
        .downcast_ref::<sfn::describe_execution::DescribeExecutionInput>()
        .and_then(|i| i.execution_arn())
    {
        call.resource("aws.execution_arn", arn);
    }
}

/// The request id AWS answered with.
fn request_id(headers: &Headers) -> Option<&str> {
    headers
        .get("x-amzn-requestid")
        .or_else(|| headers.get("x-amz-request-id"))
}

/// `x-amzn-ErrorType: ConditionalCheckFailedException:http://…` (or
/// `namespace#Code`) → `ConditionalCheckFailedException`.
fn error_code_header(headers: &Headers) -> Option<&str> {
    let value = headers.get("x-amzn-errortype")?;
    let code = value.split(':').next().unwrap_or(value);
    let code = code.rsplit('#').next().unwrap_or(code);
    (!code.is_empty()).then_some(code)
}

/// The code an SDK error names itself by: `ConditionalCheckFailedException:
/// The conditional request failed` → `ConditionalCheckFailedException`.
fn error_code_of(message: &str) -> Option<&str> {
    let head = message.split(':').next()?.trim();
    (!head.is_empty() && head.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(head)
}

#[dyn_dispatch_hint]
impl Intercept for XrayInterceptor {
    fn name(&self) -> &'static str {
        "DofsXrayInterceptor"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_else(|| ("AWS".to_owned(), "Call".to_owned()));
        let call = AwsCall::start(&service, &operation);
        describe_input(context.input(), &call);
        cfg.interceptor_state().store_put(Call(Arc::new(call)));
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = cfg.load::<Call>() {
            call.0.attempt();
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(call), Some(response)) = (cfg.load::<Call>(), context.response()) {
            call.0
                .response(response.status().as_u16(), request_id(response.headers()));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.load::<Call>().cloned() else {
            return Ok(());
        };
        match context.output_or_error() {
            Some(Err(err)) => {
                let message = match err.as_operation_error() {
                    Some(operation) => operation.to_string(),
                    None => aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
                };
                let response = context.response();
                let code = response
                    .and_then(|r| error_code_header(r.headers()))
                    .or_else(|| error_code_of(&message));
                call.0.finish(Some(CallFailure {
                    code,
                    message: &message,
                    status: response.map(|r| r.status().as_u16()),
                }));
            }
            _ => call.0.finish(None),
        }
        // The bag's copy goes: the span ends with the call, not the bag.
        cfg.interceptor_state().unset::<Call>();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_come_from_the_header_or_the_errors_name() {
        let mut headers = Headers::new();
        headers.insert(
            "x-amzn-ErrorType",
            "ConditionalCheckFailedException:http://internal.amazon.com/coral/com.amazonaws.dynamodb.v20120810/",
        );
        assert_eq!(
            error_code_header(&headers),
            Some("ConditionalCheckFailedException")
        );
        let mut headers = Headers::new();
        headers.insert(
            "x-amzn-errortype",
            "com.amazonaws.sfn#ExecutionAlreadyExists",
        );
        assert_eq!(error_code_header(&headers), Some("ExecutionAlreadyExists"));
        assert_eq!(
            error_code_of("ResourceNotFoundException: Requested resource not found"),
            Some("ResourceNotFoundException")
        );
        assert_eq!(error_code_of("dispatch failure"), None);
    }
}
