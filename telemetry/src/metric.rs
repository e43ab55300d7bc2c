//! The names of the custom metrics DOFS emits.
//!
//! `dashboards/metrics.json` is the one list: Terraform's dashboards and
//! alarms and the local runtime read it, and the test below proves these
//! constants and that file agree, so a renamed metric cannot leave a dashboard
//! pointing at nothing.

/// CloudWatch namespace of every custom metric.
pub const NAMESPACE: &str = "DOFS";
/// The only dimension: the function's name. Never `order_id` (one metric per
/// order would be unbounded cardinality); ids ride along as EMF properties.
pub const FUNCTION_DIMENSION: &str = "function";

pub const ORDERS_ACCEPTED: &str = "OrdersAccepted";
pub const REQUESTS_INVALID: &str = "RequestsInvalid";
pub const IDEMPOTENT_REPLAYS: &str = "IdempotentReplays";
pub const ORDERS_VALIDATED: &str = "OrdersValidated";
pub const ORDERS_REJECTED: &str = "OrdersRejected";
pub const ORDERS_STORED: &str = "OrdersStored";
pub const ORDERS_FULFILLED: &str = "OrdersFulfilled";
pub const FULFILLMENT_FAILURES: &str = "FulfillmentFailures";
pub const DUPLICATE_DELIVERIES: &str = "DuplicateDeliveries";
/// Milliseconds from submission to FULFILLED (a histogram).
pub const FULFILLMENT_LATENCY: &str = "FulfillmentLatency";
pub const ORDERS_DEAD_LETTERED: &str = "OrdersDeadLettered";
pub const DEAD_LETTER_FAILURES: &str = "DeadLetterFailures";
pub const COLD_START: &str = "ColdStart";

/// Every custom metric name, in the order of `dashboards/metrics.json`.
pub const ALL: [&str; 13] = [
    ORDERS_ACCEPTED,
    REQUESTS_INVALID,
    IDEMPOTENT_REPLAYS,
    ORDERS_VALIDATED,
    ORDERS_REJECTED,
    ORDERS_STORED,
    ORDERS_FULFILLED,
    FULFILLMENT_FAILURES,
    DUPLICATE_DELIVERIES,
    FULFILLMENT_LATENCY,
    ORDERS_DEAD_LETTERED,
    DEAD_LETTER_FAILURES,
    COLD_START,
];

/// `dashboards/metrics.json`, compiled in.
pub const CATALOG_JSON: &str = include_str!("../../dashboards/metrics.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_shared_catalog() {
        let catalog: serde_json::Value = serde_json::from_str(CATALOG_JSON).unwrap();
        assert_eq!(catalog["namespace"], NAMESPACE);
        assert_eq!(catalog["dimension"], FUNCTION_DIMENSION);
        let names: Vec<&str> = catalog["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ALL);
    }
}
