//! Turns an untrusted JSON body into an [`OrderRequest`], reporting every
//! offending field at once (a client fixes its request in one round trip).
//!
//! The body is walked as a `serde_json::Value` rather than deserialized
//! straight into the model, because serde stops at the first error and its
//! messages name Rust types, not the API's fields. It is read with
//! [`parse_json_body`], which refuses what `serde_json::Value` would resolve
//! silently: a key repeated in one object (RFC 8259 §4 leaves the meaning
//! open, and serde keeps the last one, so a second `items` could replace a
//! refused first one).

use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

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

/// Parses a request body as JSON, refusing a key repeated within one
/// object (the error names it, as a field path such as `items[0].sku`).
///
/// Numbers are read from their text: an integer written with a zero
/// fraction or an exponent (`33.0`, `1e2`) is that integer, as JSON Schema
/// counts it; any other fraction stays a float, which no field of the API
/// accepts (a price is a string; see [`Money`]).
pub fn parse_json_body(bytes: &[u8]) -> Result<Value, FieldError> {
    let syntax = |e: serde_json::Error| FieldError {
        field: "$".to_owned(),
        message: e.to_string(),
    };
    let raw: &RawValue = serde_json::from_slice(bytes).map_err(syntax)?;
    strict_value(raw, "")
}

/// The path of `key` inside the object at `path` (`""` is the body).
fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn strict_value(raw: &RawValue, path: &str) -> Result<Value, FieldError> {
    let text = raw.get();
    let at = |message: String| FieldError {
        field: if path.is_empty() {
            "$".to_owned()
        } else {
            path.to_owned()
        },
        message,
    };
    match text.as_bytes().first() {
        Some(b'{') => {
            let Entries(entries) = serde_json::from_str(text).map_err(|e| at(e.to_string()))?;
            let mut map = Map::new();
            for (key, value) in entries {
                let field = key_path(path, &key);
                if map.contains_key(&key) {
                    return Err(FieldError {
                        field,
                        message: "appears more than once in the same object".to_owned(),
                    });
                }
                let value = strict_value(value, &field)?;
                map.insert(key, value);
            }
            Ok(Value::Object(map))
        }
        Some(b'[') => {
            let items: Vec<&RawValue> =
                serde_json::from_str(text).map_err(|e| at(e.to_string()))?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| strict_value(item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Some(b'-' | b'0'..=b'9') => exact_number(text).map_err(at),
        _ => serde_json::from_str(text).map_err(|e| at(e.to_string())),
    }
}

fn exact_number(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !value.as_number().is_some_and(Number::is_f64) {
        return Ok(value);
    }
    let whole = Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
        .filter(|d| d.fract().is_zero());
    Ok(
        match whole.and_then(|d| {
            d.to_u64()
                .map(Number::from)
                .or_else(|| d.to_i64().map(Number::from))
        }) {
            Some(integer) => Value::Number(integer),
            None => value,
        },
    )
}

/// An object's members in order, duplicates included, values unparsed.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer
            .deserialize_map(Members(std::marker::PhantomData))
            .map_err(D::Error::custom)
    }
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

    // A decimal string only: a JSON number is refused, since serde_json
    // (like most JSON libraries) reads it through f64, and
    // 9.999999999999999999 would become 10.
    let unit_price = match object.get("unit_price") {
        None | Some(Value::Null) => {
            errors.push(format!("{path}.unit_price"), "is required");
            None
        }
        Some(Value::String(s)) => parse_price(s, path, errors),
        Some(Value::Number(_)) => {
            errors.push(
                format!("{path}.unit_price"),
                "must be a decimal string such as \"9.99\", not a JSON number",
            );
            None
        }
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
            errors.push(
                field,
                format!("must be at most {:.2}", Money::MAX_UNIT_PRICE),
            );
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
    fn refuses_a_numeric_price_instead_of_rounding_it() {
        for body in [
            r#"{"customer_name":"Ada","items":[{"sku":"A","quantity":1,"unit_price":9.999999999999999999}]}"#,
            r#"{"customer_name":"Ada","items":[{"sku":"A","quantity":1,"unit_price":0.1}]}"#,
            r#"{"customer_name":"Ada","items":[{"sku":"A","quantity":1,"unit_price":5}]}"#,
        ] {
            let value = parse_json_body(body.as_bytes()).unwrap();
            assert_eq!(
                fields(validate_order_request(&value)),
                ["items[0].unit_price"]
            );
        }
    }

    #[test]
    fn refuses_prices_outside_the_pattern_or_bounds_naming_the_field() {
        for price in [
            "1.000000000000000000000000000001",
            "1_000",
            "1e2",
            "+9.99",
            ".5",
            " 9.99 ",
            "0",
            "0.00",
            "1000000.01",
            "99999999",
        ] {
            let result = validate_order_request(&json!({
                "customer_name": "Ada",
                "items": [{"sku": "A", "quantity": 1, "unit_price": price}]
            }));
            assert_eq!(fields(result), ["items[0].unit_price"], "{price:?}");
        }
        let request = validate_order_request(&json!({
            "customer_name": "Ada",
            "items": [{"sku": "A", "quantity": 2, "unit_price": "1000000.00"},
                      {"sku": "B", "quantity": 1, "unit_price": "0.01"}]
        }))
        .unwrap();
        assert_eq!(request.total().to_string(), "2000000.01");
    }

    #[test]
    fn a_repeated_key_is_refused_and_named() {
        let err = parse_json_body(
            br#"{"customer_name":"Ada","items":[],"items":[{"sku":"A","quantity":1,"unit_price":"1"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "items");
        let err = parse_json_body(
            br#"{"customer_name":"Ada","items":[{"sku":"A","sku":"B","quantity":1,"unit_price":"1"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "items[0].sku");
        // The same key in sibling objects is not a repeat.
        assert!(parse_json_body(br#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn whole_numbers_are_integers_however_written() {
        let value =
            parse_json_body(br#"[33.0, 1e2, 1.5, -2, 33.000000000000000000000000000001]"#).unwrap();
        assert_eq!(value[0], json!(33));
        assert_eq!(value[1], json!(100));
        assert!(value[2].is_f64());
        assert_eq!(value[3], json!(-2));
        assert!(value[4].is_f64());
        assert_eq!(parse_json_body(b"{").unwrap_err().field, "$");
        assert_eq!(
            parse_json_body(b" {\"a\" : [ 1 ] } ").unwrap(),
            json!({"a": [1]})
        );
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
