//! validator: the workflow's `ValidateOrder` step. It checks a submitted
//! order against the business rules, which the API's shape validation does
//! not know about, and marks it VALIDATED.
//!
//! Input: the execution state, an [`OrderSubmission`] (extra keys that the
//! workflow adds are ignored). Output: a [`Validation`]. A rule violation is
//! a *successful* invocation with the verdict `rejected`, which the
//! workflow's Choice state routes to RejectOrder (stored as REJECTED): a
//! rejection is a correct outcome, and Lambda counts "invocations that result
//! in a function error" in `AWS/Lambda Errors`
//! (<https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html>),
//! so returning it as an error would page on-call for customers' mistakes.
//! An input that does not match the contract is the error `InvalidInput`,
//! which no retry can fix.

use std::collections::HashSet;
use std::sync::Arc;

use dofs_core::{Clock, OrderStatus, OrderSubmission, PortError, StatusChange, Validation};
use dofs_telemetry::metric;
use lambda_runtime::LambdaEvent;
use rust_decimal::Decimal;

/// Largest order total accepted: 50,000.00. Above it an order needs a
/// manual sale, not this pipeline.
pub const MAX_ORDER_TOTAL: Decimal = Decimal::from_parts(5_000_000, 0, 0, false, 2);
/// Most units (sum of quantities over all lines) one order may have.
pub const MAX_TOTAL_UNITS: u64 = 1_000;

/// The business rules an order breaks, each as a sentence; empty if none.
/// Every rule is checked so that the rejection reason lists them all.
pub fn rule_violations(submission: &OrderSubmission) -> Vec<String> {
    let mut violations = Vec::new();
    if submission.items.is_empty() {
        violations.push("an order must have at least one item".to_owned());
    }

    let mut seen = HashSet::new();
    let mut duplicates = Vec::new();
    for item in &submission.items {
        if !seen.insert(item.sku.as_str()) && !duplicates.contains(&item.sku.as_str()) {
            duplicates.push(item.sku.as_str());
        }
    }
    if !duplicates.is_empty() {
        violations.push(format!(
            "each SKU may appear on one line only; repeated: {}",
            duplicates.join(", ")
        ));
    }

    let units: u64 = submission
        .items
        .iter()
        .map(|item| u64::from(item.quantity.get()))
        .sum();
    if units > MAX_TOTAL_UNITS {
        violations.push(format!(
            "an order may have at most {MAX_TOTAL_UNITS} units in total; it has {units}"
        ));
    }

    // Summed in Decimal rather than Money so an overflow cannot hide a total
    // above the limit.
    let total = submission
        .items
        .iter()
        .try_fold(Decimal::ZERO, |acc, item| {
            item.unit_price
                .amount()
                .checked_mul(Decimal::from(item.quantity.get()))
                .and_then(|line| acc.checked_add(line))
        });
    match total {
        Some(total) if total > MAX_ORDER_TOTAL => violations.push(format!(
            "the order total may be at most {MAX_ORDER_TOTAL:.2}; it is {total:.2}"
        )),
        Some(_) => {}
        None => violations.push(format!(
            "the order total may be at most {MAX_ORDER_TOTAL:.2}; it is larger than can be computed"
        )),
    }
    violations
}

/// The `ValidateOrder` step.
pub struct Validator {
    clock: Arc<dyn Clock>,
}

impl Validator {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<serde_json::Value>,
    ) -> Result<Validation, PortError> {
        let submission: OrderSubmission = serde_json::from_value(event.payload).map_err(|e| {
            tracing::error!(error = %e, "validator input is not an order submission");
            PortError::invalid_input(format!("input is not an order submission: {e}"))
                .with_source(e)
        })?;
        let order_id = submission.order_id.clone();
        let span = tracing::info_span!(
            "validator.validate",
            order_id = %order_id,
            verdict = tracing::field::Empty
        );
        dofs_telemetry::context::record_order_id(&span, order_id.as_str());
        let _entered = span.enter();

        let violations = rule_violations(&submission);
        if !violations.is_empty() {
            metrics::counter!(metric::ORDERS_REJECTED).increment(1);
            let reason = violations.join("; ");
            // A correct outcome: no fault or error on the span, the verdict
            // as an attribute so a trace still shows why.
            span.record("verdict", "rejected");
            tracing::info!(order_id = %order_id, reason = %reason, "order rejected");
            return Ok(Validation::rejected(submission.to_order(), reason));
        }

        let mut order = submission.to_order();
        order
            .transition(StatusChange::new(OrderStatus::Validated, self.clock.now()))
            .map_err(|e| PortError::internal("a new order cannot be validated").with_source(e))?;
        metrics::counter!(metric::ORDERS_VALIDATED).increment(1);
        span.record("verdict", "valid");
        tracing::info!(order_id = %order_id, "order validated");
        Ok(Validation::valid(order))
    }
}

#[cfg(test)]
mod tests;
