//! Sample values every crate's tests use, so a change to the model is fixed
//! in one place.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use crate::contracts::OrderSubmission;
use crate::model::{
    CustomerName, FailedOrder, LineItem, Money, Order, OrderId, OrderRequest, Quantity, Sku,
};
use crate::status::{OrderStatus, StatusChange};

/// 2026-11-25T10:00:00.250Z: a fixed instant with millisecond precision, the
/// finest every backend is required to keep.
pub fn sample_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .map(|t| t + Duration::milliseconds(250))
        .unwrap_or_else(Utc::now)
}

fn line(sku: &str, quantity: u32, unit_price: Decimal) -> LineItem {
    // The literals below are valid by construction; a failure here is a bug in
    // the testkit itself, so panicking is the right report.
    LineItem {
        sku: Sku::parse(sku).expect("sample sku"),
        quantity: Quantity::parse(quantity).expect("sample quantity"),
        unit_price: Money::parse(unit_price).expect("sample price"),
    }
}

/// A valid request: Ada, 2 × BOOK-1 at 9.99 and 1 × PEN-7 at 1.50 (total 21.48).
pub fn sample_request() -> OrderRequest {
    OrderRequest {
        customer_name: CustomerName::parse("Ada Lovelace").expect("sample name"),
        items: vec![
            line("BOOK-1", 2, Decimal::new(999, 2)),
            line("PEN-7", 1, Decimal::new(150, 2)),
        ],
    }
}

/// [`sample_request`] as the JSON body a client would POST.
pub fn sample_request_json() -> serde_json::Value {
    serde_json::json!({
        "customer_name": "Ada Lovelace",
        "items": [
            {"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"},
            {"sku": "PEN-7", "quantity": 1, "unit_price": "1.50"}
        ]
    })
}

/// [`sample_request`] submitted as `order_id` at [`sample_time`].
pub fn sample_submission(order_id: &OrderId) -> OrderSubmission {
    OrderSubmission::new(order_id.clone(), sample_request(), sample_time())
}

/// The shortest legal path from RECEIVED to `status`.
fn path_to(status: OrderStatus) -> &'static [OrderStatus] {
    use OrderStatus::*;
    match status {
        Received => &[],
        Validated => &[Validated],
        Rejected => &[Rejected],
        Pending => &[Validated, Pending],
        Fulfilled => &[Validated, Pending, Fulfilled],
        Failed => &[Validated, Pending, Failed],
    }
}

/// A sample order with id `order_id` in `status`, with a legal history (one
/// second between steps, starting at [`sample_time`]).
pub fn sample_order_with_id(order_id: &OrderId, status: OrderStatus) -> Order {
    let mut order = sample_submission(order_id).to_order();
    let mut at = sample_time();
    for next in path_to(status) {
        at += Duration::seconds(1);
        let mut change = StatusChange::new(*next, at);
        if matches!(next, OrderStatus::Rejected | OrderStatus::Failed) {
            change = change.with_reason(format!("sample reason for {next}"));
        }
        // `path_to` only yields legal steps.
        if order.transition(change).is_err() {
            unreachable!("path_to({status}) contains an illegal transition");
        }
    }
    order
}

/// A sample order with a fresh id in `status`.
pub fn sample_order(status: OrderStatus) -> Order {
    sample_order_with_id(&OrderId::generate(), status)
}

/// A sample failed_orders row for `order_id`.
pub fn sample_failed_order(order_id: &OrderId) -> FailedOrder {
    let order = sample_order_with_id(order_id, OrderStatus::Pending);
    FailedOrder {
        order_id: order_id.clone(),
        error: "FulfillmentFailed".to_owned(),
        reason: "simulated fulfilment failure after 3 receives".to_owned(),
        receive_count: 3,
        failed_at: sample_time() + Duration::minutes(5),
        payload: serde_json::to_value(&order).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_and_consistent() {
        let json_request = crate::validation::validate_order_request(&sample_request_json())
            .expect("sample json validates");
        assert_eq!(json_request, sample_request());
        assert_eq!(sample_request().total().to_string(), "21.48");
        for status in OrderStatus::ALL {
            let order = sample_order(status);
            assert_eq!(order.status, status);
            assert_eq!(order.history.last().map(|c| c.status), Some(status));
            assert_eq!(order.history[0].status, OrderStatus::Received);
        }
    }
}
