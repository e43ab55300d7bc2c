//! SDK errors → [`PortError`], in one place for both services.
//!
//! The kind decides what the caller does: `Transient` is retried (by the
//! workflow's `Retry`, or by SQS redelivering the message), anything else is
//! not. The SDK error itself stays attached as the source, so the log line
//! shows the service's code and message, never a flattened string.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use dofs_core::{ErrorKind, PortError};

/// Error codes that mean "slow down or try again" on DynamoDB and Step
/// Functions. The SDK already retried these with backoff before we see them;
/// reporting them as transient lets the next layer retry later.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "KMSThrottlingException",
];

/// Error codes that mean the request itself is wrong for this input.
const INVALID_INPUT_CODES: &[&str] = &[
    "ValidationException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "InvalidParameterCombination",
    "MissingParameter",
    "InvalidMessageContents",
    "InvalidAttributeValue",
    "InvalidAttributeName",
    "InvalidExecutionInput",
    "InvalidName",
    "InvalidArn",
    "ItemCollectionSizeLimitExceededException",
];

/// The SDK's HTTP response type, the same for every service client.
pub(crate) type HttpResponse = aws_sdk_dynamodb::config::http::HttpResponse;

/// The [`ErrorKind`] for an SDK error, from its shape, error code and HTTP
/// status.
pub(crate) fn kind_of<E>(err: &SdkError<E, HttpResponse>) -> ErrorKind
where
    E: ProvideErrorMetadata,
{
    match err {
        // Timeouts, connection resets, DNS: the service may be fine a moment later.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        // A response that could not be read (truncated body, proxy page): transient.
        SdkError::ResponseError(_) => ErrorKind::Transient,
        // The request could not even be built: a bug or a misconfiguration.
        SdkError::ConstructionFailure(_) => ErrorKind::Internal,
        SdkError::ServiceError(service) => {
            classify_code(service.err().code(), Some(service.raw().status().as_u16()))
        }
        _ => ErrorKind::Internal,
    }
}

/// Classifies a service error by code, then by status.
fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(code) = code {
        if TRANSIENT_CODES.contains(&code) {
            return ErrorKind::Transient;
        }
        if INVALID_INPUT_CODES.contains(&code) {
            return ErrorKind::InvalidInput;
        }
        if code == "ConditionalCheckFailedException" || code == "TransactionConflictException" {
            return ErrorKind::Conflict;
        }
    }
    match status {
        Some(500..=599) | Some(429) => ErrorKind::Transient,
        // Unknown 4xx (missing table, access denied, wrong region): retrying
        // cannot fix a misconfiguration.
        _ => ErrorKind::Internal,
    }
}

/// Converts an SDK error into a [`PortError`] whose message says what was
/// being attempted (`what`), keeping the SDK error as its source.
pub(crate) fn port_error<E>(what: impl Into<String>, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let kind = kind_of(&err);
    let mut message = what.into();
    if let Some(code) = err.code() {
        message.push_str(" (");
        message.push_str(code);
        message.push(')');
    }
    PortError::new(kind, message).with_source(err)
}

/// A value read from a table or the workflow did not have the expected shape.
pub(crate) fn corrupt(
    what: impl Into<String>,
    source: impl StdError + Send + Sync + 'static,
) -> PortError {
    PortError::internal(what).with_source(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        assert_eq!(
            classify_code(Some("ProvisionedThroughputExceededException"), Some(400)),
            ErrorKind::Transient
        );
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            ErrorKind::Transient
        );
        assert_eq!(
            classify_code(Some("SomethingNew"), Some(503)),
            ErrorKind::Transient
        );
        assert_eq!(classify_code(None, Some(500)), ErrorKind::Transient);
        assert_eq!(classify_code(None, Some(429)), ErrorKind::Transient);
    }

    #[test]
    fn validation_errors_are_invalid_input() {
        assert_eq!(
            classify_code(Some("ValidationException"), Some(400)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            classify_code(Some("InvalidExecutionInput"), Some(400)),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn misconfiguration_is_internal_and_conditions_are_conflicts() {
        assert_eq!(
            classify_code(Some("ResourceNotFoundException"), Some(400)),
            ErrorKind::Internal
        );
        assert_eq!(
            classify_code(Some("AccessDeniedException"), Some(403)),
            ErrorKind::Internal
        );
        assert_eq!(
            classify_code(Some("ConditionalCheckFailedException"), Some(400)),
            ErrorKind::Conflict
        );
    }
}
