//! Conformance of the ASL interpreter (`dofs_asl`) with AWS Step Functions:
//! each supported state and field on small definitions, then the real
//! `terraform/order_workflow.asl.json` end to end with a scripted task invoker
//! (`dofs_asl::testing::ScriptedTasks`) and a clock that jumps to each wake-up.
//!
//! The expected behaviour is taken from the AWS Step Functions developer guide;
//! each module names the pages it follows. The main ones:
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html>
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-input-output-filtering.html>
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html>
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html>
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>
//! - the state type pages, e.g. <https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html>
//! - <https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html>
//! - the ASL specification, <https://states-language.net/>
//!
//! By the specification's sections: structure (`definition`), state fields
//! (`fields`, `states`), input and output processing (`io_processing`), the
//! context object (`context_object`), intrinsic functions (`intrinsics`,
//! Appendix B), errors, Retry and Catch (`retry_catch`), quotas (`quotas`);
//! then the host-facing API (`stepping`) and the real workflow
//! (`order_workflow`).

// Test support code may unwrap too: a panic is the failure report (see clippy.toml).
#![allow(clippy::unwrap_used)]

mod helpers;

mod context_object;
mod definition;
mod fields;
mod intrinsics;
mod io_processing;
mod order_workflow;
mod quotas;
mod retry_catch;
mod states;
mod stepping;
