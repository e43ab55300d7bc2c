//! The span of one AWS SDK call, which X-Ray shows as an `aws` subsegment
//! of the segment the call was made in: `namespace: aws`, named after the
//! service, with `aws.operation`, `aws.table_name` / `aws.queue_url`,
//! `aws.request_id`, `aws.retries` and `http.response.status`, and, for a
//! failed call, `error` (4xx), `throttle` or `fault` (5xx, or no answer)
//! with the service's error as the cause — the fields the X-Ray SDKs record
//! for AWS calls (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html#api-segmentdocuments-aws>).
//!
//! No AWS SDK here: `dofs-aws` has an SDK interceptor that drives an
//! [`AwsCall`] through a call's hooks, so this crate (which the local
//! runtime links) stays free of the SDK. The attributes are the OpenTelemetry
//! ones `opentelemetry-aws` maps onto those fields: `rpc.system = aws-api`,
//! `rpc.service`, `rpc.method`, `aws.request_id`, `aws.table.name`,
//! `aws.queue.url`, `http.response.status_code`.

use std::sync::atomic::{AtomicU32, Ordering};

use opentelemetry::trace::Status;
use opentelemetry::KeyValue;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::xray::{FAILURE_KIND_ATTRIBUTE, RETRIES_ATTRIBUTE};

/// Error codes that mean the call was throttled (X-Ray's `throttle`).
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
];

/// One AWS call in progress: a `Client` span, child of the current span.
#[derive(Debug)]
pub struct AwsCall {
    span: Span,
    attempts: AtomicU32,
}

/// How a failed call failed.
#[derive(Debug, Clone, Copy)]
pub struct CallFailure<'a> {
    /// The service's error code (`ConditionalCheckFailedException`), if it answered.
    pub code: Option<&'a str>,
    pub message: &'a str,
    /// The HTTP status of the last answer, if any.
    pub status: Option<u16>,
}

impl AwsCall {
    /// Starts the span of `service`'s `operation` (`DynamoDB`, `PutItem`).
    pub fn start(service: &str, operation: &str) -> Self {
        let span = tracing::info_span!(
            "aws_call",
            otel.name = %format_args!("{service}.{operation}"),
            otel.kind = "client",
        );
        span.set_attribute("rpc.system", "aws-api");
        span.set_attribute("rpc.service", service.to_owned());
        span.set_attribute("rpc.method", operation.to_owned());
        Self {
            span,
            attempts: AtomicU32::new(0),
        }
    }

    /// The DynamoDB table the call is about.
    pub fn table(&self, name: &str) {
        self.span.set_attribute("aws.table.name", name.to_owned());
    }

    /// The SQS queue the call is about.
    pub fn queue_url(&self, url: &str) {
        self.span.set_attribute("aws.queue.url", url.to_owned());
    }

    /// Any other resource (a state machine ARN): X-Ray metadata.
    pub fn resource(&self, key: &'static str, value: &str) {
        self.span.set_attribute(key, value.to_owned());
    }

    /// One more attempt (the SDK retries transient failures itself).
    pub fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// What the service answered to the last attempt.
    pub fn response(&self, status: u16, request_id: Option<&str>) {
        self.span
            .set_attribute("http.response.status_code", i64::from(status));
        if let Some(id) = request_id {
            self.span.set_attribute("aws.request_id", id.to_owned());
        }
    }

    /// Records how the call ended; the span closes when the call is dropped.
    pub fn finish(&self, failure: Option<CallFailure<'_>>) {
        let attempts = self.attempts.load(Ordering::Relaxed);
        self.span
            .set_attribute(RETRIES_ATTRIBUTE, i64::from(attempts.saturating_sub(1)));
        let Some(failure) = failure else {
            return;
        };
        self.span
            .set_status(Status::error(failure.message.to_owned()));
        self.span.add_event(
            "exception",
            vec![
                KeyValue::new(
                    "exception.type",
                    failure.code.unwrap_or("RequestFailed").to_owned(),
                ),
                KeyValue::new("exception.message", failure.message.to_owned()),
            ],
        );
        if failure
            .code
            .is_some_and(|code| THROTTLING_CODES.contains(&code))
            || failure.status == Some(429)
        {
            self.span.set_attribute(FAILURE_KIND_ATTRIBUTE, "throttle");
        }
    }
}
