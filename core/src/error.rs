//! Errors shared by the ports and the handlers.
//!
//! A handler error becomes a Lambda error whose `errorType` is
//! [`ErrorKind::error_type`]; the workflow's `Retry`/`Catch` blocks match on
//! exactly these names (a test checks every `ErrorEquals` in the ASL against
//! [`ErrorKind::ALL`]).

use std::error::Error as StdError;
use std::fmt;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A dependency was unavailable or throttled: retrying may succeed.
    Transient,
    /// The order breaks a business rule: it is REJECTED, not retried.
    Rejected,
    /// The step's input does not match its contract: retrying cannot help.
    InvalidInput,
    /// A conditional write found the item in an unexpected state.
    Conflict,
    /// Anything else: a bug or a misconfiguration.
    Internal,
    /// Stored data is damaged: retrying cannot help, an operator must
    /// restore it.
    DataCorrupt,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Transient,
        ErrorKind::Rejected,
        ErrorKind::InvalidInput,
        ErrorKind::Conflict,
        ErrorKind::Internal,
        ErrorKind::DataCorrupt,
    ];

    /// The Lambda `errorType` this kind is reported as.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorKind::Transient => "TransientError",
            ErrorKind::Rejected => "OrderRejected",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Conflict => "ConflictError",
            ErrorKind::Internal => "InternalError",
            ErrorKind::DataCorrupt => "DataCorruptError",
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error_type())
    }
}

/// An error from a port (a table, a queue, the workflow) or a handler, with
/// its kind and its source chain intact.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub kind: ErrorKind,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl PortError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Rejected, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The Lambda `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        self.kind.error_type()
    }

    /// The message followed by every source in the chain, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.message.clone();
        let mut source = self.source();
        while let Some(err) = source {
            text.push_str(": ");
            text.push_str(&err.to_string());
            source = err.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_distinct() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.error_type()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn chain_keeps_the_source() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "socket timed out");
        let err = PortError::transient("could not reach the orders table").with_source(io);
        assert_eq!(
            err.chain(),
            "could not reach the orders table: socket timed out"
        );
        assert!(err.kind.is_retryable());
    }
}
