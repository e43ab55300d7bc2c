//! Integration tests of the AWS side of DOFS, all against moto and the
//! fake Lambda Runtime API from `dofs-lambda-harness`:
//!
//! - `contracts`: the port contract suites on the dofs-aws adapters;
//! - `bootstraps`: each built bootstrap binary run as Lambda runs it;
//! - `chain`: api_handler → validator → order_storage → queue →
//!   fulfill_order, with the state carried between them as the workflow
//!   carries it;
//! - `iam`: every AWS request each bootstrap makes, recorded under its own
//!   credentials, for the Terraform IAM cross-check;
//! - `lambda_bench`: the cold-start/memory benchmark run tiny, its report's
//!   shape;
//! - `xray`: the segments each bootstrap sends to a stand-in X-Ray daemon.

mod bootstraps;
mod chain;
mod contracts;
mod iam;
mod lambda_bench;
mod xray;
