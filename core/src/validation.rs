//! Turns an untrusted JSON body into an [`OrderRequest`], reporting every
//! offending field at once (a client fixes its request in one round trip).
//!
//! The body is walked as a `serde_json::Value` rather than deserialized
//! straight into the model, because serde stops at the first error and its
//! messages name Rust types, not the API's fields.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{CustomerName, LineItem, Money, OrderRequest, Quantity, Sku};

/// One offending field: a JSON path such as `items[1].quantity` and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a request body. Never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("invalid order: {}", summary(.errors))]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Default)]
struct Collector(Vec<FieldError>);

impl Collector {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Validates a parsed JSON body. Unknown fields are errors too: a typo such
/// as `quantitiy` must not be silently dropped.
pub fn validate_order_request(body: &Value) -> Result<OrderRequest, ValidationErrors> {
    let mut errors = Collector::default();
    let Some(object) = body.as_object() else {
        errors.push("$", "request body must be a JSON object");
        return Err(ValidationErrors { errors: errors.0 });
    };
    reject_unknown(object, &["customer_name", "items"], "", &mut errors);

    let customer_name = match object.get("customer_name") {
        None | Some(Value::Null) => {
            errors.push("customer_name", "is required");
            None
        }
        Some(Value::String(s)) => CustomerName::parse(s)
            .map_err(|e| errors.push("customer_name", e.to_string()))
            .ok(),
        Some(_) => {
            errors.push("customer_name", "must be a string");
            None
        }
    };

    let items = match object.get("items") {
        None | Some(Value::Null) => {
            errors.push("items", "is required");
            None
        }
        Some(Value::Array(items)) if items.is_empty() => {
            errors.push("items", "must contain at least one item");
            None
        }
        Some(Value::Array(items)) if items.len() > OrderRequest::MAX_ITEMS => {
            errors.push(
                "items",
                format!("must contain at most {} items", OrderRequest::MAX_ITEMS),
            );
            None
        }
        Some(Value::Array(items)) => {
            let parsed: Vec<Option<LineItem>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_item(item, &format!("items[{i}]"), &mut errors))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
        Some(_) => {
            errors.push("items", "must be an array");
            None
        }
    };

    match (customer_name, items) {
        (Some(customer_name), Some(items)) if errors.0.is_empty() => Ok(OrderRequest {
            customer_name,
            items,
        }),
        _ => Err(ValidationErrors { errors: errors.0 }),
    }
}

fn reject_unknown(
    object: &Map<String, Value>,
    known: &[&str],
    prefix: &str,
    errors: &mut Collector,
) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(format!("{prefix}{key}"), "is not a known field");
    }
}

fn parse_item(item: &Value, path: &str, errors: &mut Collector) -> Option<LineItem> {
    let Some(object) = item.as_object() else {
        errors.push(path, "must be an object");
        return None;
    };
    reject_unknown(
        object,
        &["sku", "quantity", "unit_price"],
        &format!("{path}."),
        errors,
    );

    let sku = match object.get("sku") {
        None | Some(Value::Null) => {
            errors.push(format!("{path}.sku"), "is required");
            None
        }
        Some(Value::String(s)) => Sku::parse(s)
            .map_err(|e| errors.push(format!("{path}.sku"), e.to_string()))
            .ok(),
        Some(_) => {
            errors.push(format!("{path}.sku"), "must be a string");
            None
        }
    };

    let quantity = match object.get("quantity") {
        None | Some(Value::Null) => {
            errors.push(format!("{path}.quantity"), "is required");
            None
        }
        Some(Value::Number(n)) => match n.as_u64() {
            Some(q) => u32::try_from(q)
                .map_err(|_| format!("must be at most {}", Quantity::MAX))
                .and_then(|q| Quantity::parse(q).map_err(|e| e.to_string()))
                .map_err(|msg| errors.push(format!("{path}.quantity"), msg))
                .ok(),
            None if n.as_i64().is_some() => {
                errors.push(format!("{path}.quantity"), "must be greater than 0");
                None
            }
            None => {
                errors.push(format!("{path}.quantity"), "must be a whole number");
                None
            }
        },
        Some(_) => {
            errors.push(format!("{path}.quantity"), "must be a whole number");
            None
        }
    };

    // A decimal string is the contract ("9.99"); a JSON number is accepted
    // too, read from its shortest round-trip text so 9.99 stays 9.99.
    let unit_price = match object.get("unit_price") {
        None | Some(Value::Null) => {
            errors.push(format!("{path}.unit_price"), "is required");
            None
        }
        Some(Value::String(s)) => parse_price(s, path, errors),
        Some(Value::Number(n)) => parse_price(&n.to_string(), path, errors),
        Some(_) => {
            errors.push(
                format!("{path}.unit_price"),
                "must be a decimal string such as \"9.99\"",
            );
            None
        }
    };

    Some(LineItem {
        sku: sku?,
        quantity: quantity?,
        unit_price: unit_price?,
    })
}

fn parse_price(text: &str, path: &str, errors: &mut Collector) -> Option<Money> {
    let field = format!("{path}.unit_price");
    match Money::parse_str(text) {
        Ok(price) if price.amount().is_zero() => {
            errors.push(field, "must be greater than 0");
            None
        }
        Ok(price) if price.amount() > Money::MAX_UNIT_PRICE => {
            errors.push(field, format!("must be at most {}", Money::MAX_UNIT_PRICE));
            None
        }
        Ok(price) => Some(price),
        Err(e) => {
            errors.push(field, e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(result: Result<OrderRequest, ValidationErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_well_formed_order() {
        let request = validate_order_request(&json!({
            "customer_name": "Ada",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price": "9.99"}]
        }))
        .unwrap();
        assert_eq!(request.total().to_string(), "19.98");
    }

    #[test]
    fn accepts_a_numeric_price_exactly() {
        let request = validate_order_request(&json!({
            "customer_name": "Ada",
            "items": [{"sku": "BOOK-1", "quantity": 3, "unit_price": 0.1}]
        }))
        .unwrap();
        assert_eq!(request.total().to_string(), "0.30");
    }

    #[test]
    fn rejects_a_body_that_is_not_an_object() {
        assert_eq!(fields(validate_order_request(&json!([1, 2]))), ["$"]);
    }

    #[test]
    fn rejects_order_without_customer_or_items() {
        assert_eq!(
            fields(validate_order_request(&json!({}))),
            ["customer_name", "items"]
        );
    }

    #[test]
    fn rejects_order_without_items() {
        assert_eq!(
            fields(validate_order_request(
                &json!({"customer_name": "Ada", "items": []})
            )),
            ["items"]
        );
    }

    #[test]
    fn rejects_too_many_items() {
        let item = json!({"sku": "A", "quantity": 1, "unit_price": "1"});
        let items = vec![item; OrderRequest::MAX_ITEMS + 1];
        assert_eq!(
            fields(validate_order_request(
                &json!({"customer_name": "Ada", "items": items})
            )),
            ["items"]
        );
    }

    #[test]
    fn reports_every_bad_field_at_once() {
        let result = validate_order_request(&json!({
            "customer_name": "",
            "colour": "blue",
            "items": [
                {"sku": "", "quantity": 0, "unit_price": "-1"},
                {"sku": "OK", "quantity": 1.5, "unit_price": "1.001", "extra": true},
                {"sku": 7, "quantity": -2, "unit_price": "0"},
                {"quantity": 1},
                "not an object"
            ]
        }));
        assert_eq!(
            fields(result),
            [
                "colour",
                "customer_name",
                "items[0].sku",
                "items[0].quantity",
                "items[0].unit_price",
                "items[1].extra",
                "items[1].quantity",
                "items[1].unit_price",
                "items[2].sku",
                "items[2].quantity",
                "items[2].unit_price",
                "items[3].sku",
                "items[3].unit_price",
                "items[4]",
            ]
        );
    }

    #[test]
    fn rejects_wrong_types() {
        assert_eq!(
            fields(validate_order_request(
                &json!({"customer_name": 5, "items": {}})
            )),
            ["customer_name", "items"]
        );
        assert_eq!(
            fields(validate_order_request(&json!({
                "customer_name": "Ada",
                "items": [{"sku": "A", "quantity": "2", "unit_price": true}]
            }))),
            ["items[0].quantity", "items[0].unit_price"]
        );
    }

    #[test]
    fn rejects_quantity_over_the_limit_and_huge_prices() {
        assert_eq!(
            fields(validate_order_request(&json!({
                "customer_name": "Ada",
                "items": [{"sku": "A", "quantity": 5_000_000_000u64, "unit_price": "1000000.01"}]
            }))),
            ["items[0].quantity", "items[0].unit_price"]
        );
    }

    #[test]
    fn error_message_lists_fields() {
        let err = validate_order_request(&json!({"customer_name": "Ada"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid order: items is required");
    }
}
