//! The AWS stand-ins, one module per service, each with the semantics the
//! handlers see on AWS (each module's doc names the AWS behaviour it copies).

pub mod api_gateway;
pub mod backoff;
pub mod compaction;
pub mod dynamodb;
pub mod lambda;
pub mod retention;
pub mod sqs;
pub mod step_functions;
