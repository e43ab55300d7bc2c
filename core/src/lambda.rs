//! `PortError` → Lambda `Diagnostic`: the `errorType` is the [`ErrorKind`]
//! name the workflow's `Retry`/`Catch` match, the message is the error chain
//! (never `Debug` output).

use lambda_runtime::Diagnostic;

use crate::error::PortError;

impl From<PortError> for Diagnostic {
    fn from(err: PortError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: err.chain(),
        }
    }
}
