//! `dofs-cost`: what an order costs on AWS, from units measured by the local
//! runtime and a dated price table kept in the repository
//! (`pricing/<region>.json`), never from prices written in code.
//!
//! The local runtime meters every billable unit while it runs (issue #17);
//! this crate is the pure arithmetic behind `dofs cost`. It turns a
//! [`Usage`] measured over some number of orders into US dollars per million
//! orders, per service, for a Standard and an Express workflow side by side,
//! with what-ifs for the trace sampling rate and the log level.
//!
//! Billing rules it implements (us-east-1 list prices, first tier, on-demand,
//! free tiers not deducted):
//!
//! - API Gateway HTTP APIs bill per request, metered in 512 KB increments
//!   (<https://aws.amazon.com/api-gateway/pricing/>).
//! - Step Functions Standard bills per state transition, retries included;
//!   Express bills per request plus duration rounded up to 100 ms times
//!   memory billed in 64 MB chunks, as GB-seconds
//!   (<https://aws.amazon.com/step-functions/pricing/>).
//! - Lambda bills per request plus duration rounded up to 1 ms times the
//!   configured memory, as GB-seconds, at a price per architecture
//!   (<https://aws.amazon.com/lambda/pricing/>).
//! - DynamoDB on-demand bills write request units (1 KB each) and read
//!   request units (4 KB strongly consistent, half that eventually
//!   consistent) (<https://aws.amazon.com/dynamodb/pricing/on-demand/>).
//! - SQS bills per request, each 64 KB chunk of a payload being one request
//!   (<https://aws.amazon.com/sqs/pricing/>).
//! - CloudWatch Logs bills per GB ingested (custom and vended logs)
//!   (<https://aws.amazon.com/cloudwatch/pricing/>).
//! - X-Ray bills per trace recorded (<https://aws.amazon.com/xray/pricing/>).
//! - KMS bills per API request and per customer managed key per month
//!   (<https://aws.amazon.com/kms/pricing/>).
//!
//! Modules:
//!
//! - [`pricing`]: the price table ([`Pricing`]), loaded and checked.
//! - [`usage`]: the measured units ([`Usage`]) and the settings a report is
//!   asked for ([`WorkflowType`], [`WhatIf`], [`LogLevel`]).
//! - [`units`]: how AWS rounds a payload, an item or a duration into billable
//!   units; the meter calls these so that it rounds as AWS bills.
//! - [`mod@estimate`]: [`estimate()`], dollars per million orders ([`CostReport`]).
//! - [`infracost`]: [`infracost_usage()`], an Infracost usage file with the
//!   measured monthly figures for the repository's Terraform resources.

pub mod estimate;
pub mod infracost;
pub mod pricing;
pub mod units;
pub mod usage;

pub use estimate::{estimate, CostReport, FixedCost, ServiceCost};
pub use infracost::infracost_usage;
pub use pricing::{Price, Pricing, PricingError};
pub use units::{
    api_requests_for_payload, dynamodb_read_units, dynamodb_write_units,
    express_billed_duration_ms, express_billed_mb_ms, sqs_requests_for_payload,
};
pub use usage::{
    Architecture, LambdaUsage, LogLevel, ParseSettingError, TableUnits, Usage, WhatIf,
    WorkflowLogLevel, WorkflowType, STANDARD_WORKFLOW_LOG_LEVEL,
};
