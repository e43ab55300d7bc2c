//! Parsed value types and the `Order` aggregate.
//!
//! Each newtype has a `parse` that returns a typed error; serde goes through
//! the same `parse` (`try_from`), so a value read back from a table or a queue
//! is exactly as valid as one that came through the API.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contracts::OrderSubmission;
use crate::status::{OrderStatus, StatusChange, TransitionError};

/// Why a single value failed to parse. The field path is added by the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn invalid(msg: impl Into<String>) -> InvalidValue {
    InvalidValue(msg.into())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// An order's identifier. It is also the Step Functions execution name,
    /// so it obeys that name's rules: 1–80 characters of `[A-Za-z0-9_-]`.
    OrderId
);

/// Namespace for deriving order ids from `Idempotency-Key` headers (UUIDv5).
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6b1d_0f5e_4c1a_4e8e_9d6b_2f0a_d0f5_0001);

impl OrderId {
    pub const MAX_LEN: usize = 80;

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "must be 1 to {} characters long",
                Self::MAX_LEN
            )));
        }
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(invalid("may only contain letters, digits, '-' and '_'"));
        }
        Ok(Self(value.to_owned()))
    }

    /// A fresh id: a UUIDv7, 74 random bits behind a millisecond
    /// timestamp. Ids made one after the other sort one after the other, so
    /// every table and index keyed by order id (locally: orders, executions,
    /// their history) grows at its end instead of at a random page, which
    /// keeps the pages an order touches few and hot. DynamoDB hashes the
    /// partition key, so the shared prefix does not make a hot partition.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    /// The id an `Idempotency-Key` maps to: the same key always gives the
    /// same order id, and therefore the same execution name.
    pub fn from_idempotency_key(key: &str) -> Self {
        Self(Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes()).to_string())
    }
}

string_newtype!(
    /// The customer's display name. It is customer data, so it is never
    /// logged at INFO. The rule (also `openapi.yaml`'s pattern):
    ///
    /// - at most 200 characters as sent, surrounding white space included;
    /// - no control characters (Unicode category Cc) anywhere;
    /// - no bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E,
    ///   U+2066–U+2069): they reorder what a clerk sees on screen, so a name
    ///   could display as something else (Trojan Source, CVE-2021-42574);
    /// - not empty once white space and the invisible format characters of
    ///   the Basic Multilingual Plane (category Cf: soft hyphen, zero-width
    ///   space and joiners, word joiner, BOM, …) are left out — a name of
    ///   only zero-width characters is empty. Those characters are kept
    ///   inside a name that has visible ones (a zero-width joiner belongs to
    ///   many names and emoji);
    /// - stored trimmed of surrounding white space.
    CustomerName
);

impl CustomerName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.chars().count() > Self::MAX_CHARS {
            return Err(invalid(format!(
                "must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        if value.chars().any(is_bidi_control) {
            return Err(invalid(
                "must not contain bidirectional control characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)",
            ));
        }
        let trimmed = value.trim();
        if !trimmed.chars().any(|c| !c.is_whitespace() && !is_format(c)) {
            return Err(invalid(
                "must not be empty (white space and invisible format characters do not count)",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

/// The bidirectional formatting characters of Unicode's UAX #9 (§2): the
/// embeddings, overrides and isolates, and the implicit marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The Basic Multilingual Plane's characters of general category Cf
/// (Unicode 15, `DerivedGeneralCategory.txt`).
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

string_newtype!(
    /// A stock-keeping unit: 1–64 characters of `[A-Za-z0-9._-]`, starting
    /// with a letter or digit.
    Sku
);

impl Sku {
    pub const MAX_LEN: usize = 64;

    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "must be 1 to {} characters long",
                Self::MAX_LEN
            )));
        }
        let mut bytes = value.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
        let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !first_ok || !rest_ok {
            return Err(invalid(
                "must start with a letter or digit and contain only letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Self(value.to_owned()))
    }
}

/// How many units of a SKU: 1 to 1,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    pub const MAX: u32 = 1_000;

    pub fn parse(value: u32) -> Result<Self, InvalidValue> {
        match value {
            0 => Err(invalid("must be greater than 0")),
            v if v > Self::MAX => Err(invalid(format!("must be at most {}", Self::MAX))),
            v => Ok(Self(v)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = InvalidValue;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> u32 {
        value.0
    }
}

/// An exact amount of money (never `f64`), kept at the scale it was written
/// with: `"5.00"` stays `"5.00"` and `"5"` stays `"5"`, and a product or sum
/// has the larger scale of its inputs (`rust_decimal` arithmetic), so a
/// total reads as its prices do. On the wire and in storage it is a decimal
/// string matching `^[0-9]+(\.[0-9]{1,2})?$` (leading zeros are dropped);
/// nothing else is read as money: no sign, exponent, separator, blank or
/// JSON number, which could only be taken by rounding or guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);
    /// The largest unit price accepted: 1,000,000.00.
    pub const MAX_UNIT_PRICE: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 2);
    /// Most digits before the point: far above any total the limits allow
    /// (100 lines × 1,000 units × 1,000,000.00), far below `Decimal`'s 28.
    const MAX_INTEGER_DIGITS: usize = 15;

    /// An amount from a `Decimal`: positive or zero with at most two
    /// decimal places, at the scale given.
    pub fn parse(value: Decimal) -> Result<Self, InvalidValue> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(invalid("must not be negative"));
        }
        if value.scale() > 2 {
            return Err(invalid("must have at most 2 decimal places"));
        }
        Ok(Self(value.abs()))
    }

    /// Parses a decimal string such as `"9.99"`: digits, then optionally a
    /// point and one or two digits, and nothing else (not even blanks).
    pub fn parse_str(value: &str) -> Result<Self, InvalidValue> {
        let shape = || {
            invalid(
                "must be a decimal string such as \"9.99\" (digits, then at most 2 decimal places)",
            )
        };
        let (integer, fraction) = match value.split_once('.') {
            Some((integer, fraction)) => (integer, Some(fraction)),
            None => (value, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(integer) || fraction.is_some_and(|f| !digits(f)) {
            return Err(shape());
        }
        if fraction.is_some_and(|f| f.len() > 2) {
            return Err(invalid("must have at most 2 decimal places"));
        }
        let integer = integer.trim_start_matches('0');
        if integer.len() > Self::MAX_INTEGER_DIGITS {
            return Err(invalid(format!(
                "must have at most {} digits before the decimal point",
                Self::MAX_INTEGER_DIGITS
            )));
        }
        let integer = if integer.is_empty() { "0" } else { integer };
        let text = match fraction {
            Some(fraction) => format!("{integer}.{fraction}"),
            None => integer.to_owned(),
        };
        // Exact by construction: at most 17 digits, which Decimal holds.
        Decimal::from_str_exact(&text)
            .map(Self)
            .map_err(|_| shape())
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    pub fn checked_mul(self, quantity: Quantity) -> Option<Money> {
        self.0.checked_mul(Decimal::from(quantity.get())).map(Money)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl TryFrom<String> for Money {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_str(&value)
    }
}

impl From<Money> for String {
    fn from(value: Money) -> String {
        value.to_string()
    }
}

impl From<Money> for Decimal {
    fn from(value: Money) -> Decimal {
        value.0
    }
}

impl fmt::Display for Money {
    /// At the amount's own scale (`Decimal`'s `Display` keeps it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: Sku,
    pub quantity: Quantity,
    pub unit_price: Money,
}

impl LineItem {
    /// `quantity × unit_price`; `None` only on decimal overflow, which the
    /// per-field limits make impossible.
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.checked_mul(self.quantity)
    }
}

/// A request that passed shape validation: what a client asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub customer_name: CustomerName,
    pub items: Vec<LineItem>,
}

impl OrderRequest {
    /// Most lines one order may have.
    pub const MAX_ITEMS: usize = 100;

    /// The sum of all lines, at the largest scale among the prices (an
    /// order of `"5.00"` and `"1"` totals `"6.00"`; of `"5"` alone, `"5"`).
    pub fn total(&self) -> Money {
        self.items
            .iter()
            .filter_map(LineItem::line_total)
            .fold(Money::ZERO, |acc, line| {
                acc.checked_add(line).unwrap_or(acc)
            })
    }
}

/// The order aggregate, as stored in the orders table and sent on the order
/// queue. Its status only changes through [`Order::transition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub customer_name: CustomerName,
    pub items: Vec<LineItem>,
    pub total: Money,
    pub status: OrderStatus,
    /// Every status the order has had, oldest first; the last entry is `status`.
    pub history: Vec<StatusChange>,
    #[serde(with = "crate::timestamp::rfc3339_millis")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::timestamp::rfc3339_millis")]
    pub updated_at: DateTime<Utc>,
    /// The X-Ray trace id of the order's journey, when the order is traced.
    /// Kept on the order itself, not only on the execution, so an
    /// idempotent replay can name it under Express workflows too, which
    /// have no `DescribeExecution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Order {
    /// A new order in `status`, with a history that starts at RECEIVED.
    pub fn new(order_id: OrderId, request: OrderRequest, received_at: DateTime<Utc>) -> Self {
        let total = request.total();
        Self {
            order_id,
            customer_name: request.customer_name,
            items: request.items,
            total,
            status: OrderStatus::Received,
            history: vec![StatusChange::new(OrderStatus::Received, received_at)],
            created_at: received_at,
            updated_at: received_at,
            trace_id: None,
        }
    }

    /// Whether [`crate::OrderStore::insert`] writes this order over
    /// `stored`: only the workflow's first write over api_handler's
    /// RECEIVED record.
    pub fn replaces(&self, stored: &Order) -> bool {
        stored.status == OrderStatus::Received && self.status != OrderStatus::Received
    }

    /// The order with the id of the trace its journey is recorded in.
    pub fn with_trace_id(mut self, trace_id: Option<String>) -> Self {
        self.trace_id = trace_id;
        self
    }

    /// The execution input that accepted this order: what api_handler
    /// started the workflow with, rebuilt from the RECEIVED record so that a
    /// retry can restart a workflow that never ran.
    pub fn submission(&self) -> OrderSubmission {
        OrderSubmission::new(self.order_id.clone(), self.request(), self.created_at)
            .with_trace_id(self.trace_id.clone())
    }

    /// Moves the order to `change.status` if the status machine allows it.
    pub fn transition(&mut self, change: StatusChange) -> Result<(), TransitionError> {
        self.status = self.status.transition(change.status)?;
        self.updated_at = change.at;
        self.history.push(change);
        Ok(())
    }

    pub fn request(&self) -> OrderRequest {
        OrderRequest {
            customer_name: self.customer_name.clone(),
            items: self.items.clone(),
        }
    }
}

/// A row of the failed_orders table: an order that could not be fulfilled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedOrder {
    pub order_id: OrderId,
    /// Short machine-readable cause, e.g. `FulfillmentFailed` or the
    /// workflow error name.
    pub error: String,
    /// Human-readable detail.
    pub reason: String,
    /// How many times the order queue delivered the order before it was
    /// dead-lettered (0 when the workflow failed before enqueueing it).
    pub receive_count: u32,
    #[serde(with = "crate::timestamp::rfc3339_millis")]
    pub failed_at: DateTime<Utc>,
    /// The dead-lettered message body, kept verbatim for replays.
    pub payload: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn order_id_accepts_execution_name_characters_only() {
        assert!(OrderId::parse("a1-B2_c3").is_ok());
        assert!(OrderId::parse("").is_err());
        assert!(OrderId::parse("has space").is_err());
        assert!(OrderId::parse("slash/no").is_err());
        assert!(OrderId::parse(&"x".repeat(81)).is_err());
        assert!(OrderId::parse(&"x".repeat(80)).is_ok());
    }

    #[test]
    fn idempotency_key_maps_to_a_stable_valid_order_id() {
        let a = OrderId::from_idempotency_key("retry-me");
        let b = OrderId::from_idempotency_key("retry-me");
        let c = OrderId::from_idempotency_key("another");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(OrderId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn customer_name_is_trimmed_and_bounded() {
        assert_eq!(CustomerName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(CustomerName::parse("   ").is_err());
        assert!(CustomerName::parse("bell\u{7}").is_err());
        assert!(CustomerName::parse(&"é".repeat(200)).is_ok());
        assert!(CustomerName::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn customer_name_of_only_invisible_characters_is_empty() {
        assert!(CustomerName::parse("\u{200B}\u{200C}\u{FEFF}").is_err());
        assert!(CustomerName::parse(" \u{2060} \u{00A0}").is_err());
        let joined = CustomerName::parse("Zo\u{200D}e").unwrap();
        assert_eq!(joined.as_str(), "Zo\u{200D}e");
    }

    #[test]
    fn customer_name_refuses_bidi_controls_and_counts_what_was_sent() {
        for name in [
            "Ada\u{202E}cod.exe",
            "\u{2066}Ada",
            "Ada\u{200F}",
            "\u{061C}x",
        ] {
            assert!(CustomerName::parse(name).is_err(), "{name:?}");
        }
        assert!(CustomerName::parse("Ada\n").is_err());
        // The limit applies to the name as sent, as the contract's maxLength does.
        assert!(CustomerName::parse(&format!(" {}", "a".repeat(200))).is_err());
        assert_eq!(CustomerName::parse("  Ada ").unwrap().as_str(), "Ada");
    }

    #[test]
    fn sku_rules() {
        assert!(Sku::parse("BOOK-1").is_ok());
        assert!(Sku::parse("a.b_c-9").is_ok());
        assert!(Sku::parse("-LEADING").is_err());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("sp ace").is_err());
        assert!(Sku::parse(&"A".repeat(65)).is_err());
    }

    #[test]
    fn quantity_must_be_positive_and_bounded() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(1).is_ok());
        assert!(Quantity::parse(1000).is_ok());
        assert!(Quantity::parse(1001).is_err());
    }

    #[test]
    fn money_is_exact_with_two_places() {
        let price = Money::parse_str("9.99").unwrap();
        let line = price.checked_mul(Quantity::parse(3).unwrap()).unwrap();
        assert_eq!(line.amount(), dec("29.97"));
        assert_eq!(Money::parse_str("0.10").unwrap().to_string(), "0.10");
        assert!(Money::parse_str("1.001").is_err());
        assert!(Money::parse_str("-1").is_err());
        assert!(Money::parse_str("abc").is_err());
        assert_eq!(serde_json::to_string(&price).unwrap(), "\"9.99\"");
    }

    #[test]
    fn money_refuses_every_other_spelling_instead_of_rounding() {
        for text in [
            "1.000000000000000000000000000001",
            "9.999",
            "1_000",
            "1e2",
            "+9.99",
            ".5",
            "5.",
            " 9.99 ",
            "9,99",
            "",
            "0x10",
            "\u{661}",
            "1234567890123456",
        ] {
            assert!(Money::parse_str(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(Money::parse_str("0009.99").unwrap().to_string(), "9.99");
        assert_eq!(
            Money::parse_str("123456789012345").unwrap().to_string(),
            "123456789012345"
        );
    }

    #[test]
    fn money_keeps_the_scale_it_was_written_with() {
        assert_eq!(Money::parse_str("5.00").unwrap().to_string(), "5.00");
        assert_eq!(Money::parse_str("5").unwrap().to_string(), "5");
        assert_eq!(Money::parse_str("5.5").unwrap().to_string(), "5.5");
        let json = serde_json::to_string(&Money::parse_str("5.00").unwrap()).unwrap();
        assert_eq!(json, "\"5.00\"");
        assert_eq!(
            serde_json::from_str::<Money>(&json).unwrap().to_string(),
            "5.00"
        );
        // Numbers are not money, whatever their value.
        assert!(serde_json::from_str::<Money>("9.99").is_err());
        // Equal amounts are equal whatever their scale (a retry that writes
        // "5" for "5.00" is the same order).
        assert_eq!(
            Money::parse_str("5").unwrap(),
            Money::parse_str("5.00").unwrap()
        );
    }

    #[test]
    fn totals_keep_the_scale_of_their_prices() {
        let order = |prices: &[&str]| OrderRequest {
            customer_name: CustomerName::parse("Ada").unwrap(),
            items: prices
                .iter()
                .map(|p| LineItem {
                    sku: Sku::parse("A").unwrap(),
                    quantity: Quantity::parse(2).unwrap(),
                    unit_price: Money::parse_str(p).unwrap(),
                })
                .collect(),
        };
        assert_eq!(order(&["5.00"]).total().to_string(), "10.00");
        assert_eq!(order(&["5"]).total().to_string(), "10");
        assert_eq!(order(&["5", "0.5"]).total().to_string(), "11.0");
    }

    #[test]
    fn order_total_sums_lines_exactly() {
        let request = OrderRequest {
            customer_name: CustomerName::parse("Ada").unwrap(),
            items: vec![
                LineItem {
                    sku: Sku::parse("A").unwrap(),
                    quantity: Quantity::parse(3).unwrap(),
                    unit_price: Money::parse_str("0.10").unwrap(),
                },
                LineItem {
                    sku: Sku::parse("B").unwrap(),
                    quantity: Quantity::parse(1).unwrap(),
                    unit_price: Money::parse_str("0.20").unwrap(),
                },
            ],
        };
        assert_eq!(request.total().amount(), dec("0.5"));
    }

    #[test]
    fn order_transition_appends_history_and_refuses_illegal_moves() {
        let now = Utc::now();
        let request = OrderRequest {
            customer_name: CustomerName::parse("Ada").unwrap(),
            items: vec![],
        };
        let mut order = Order::new(OrderId::generate(), request, now);
        order
            .transition(StatusChange::new(OrderStatus::Validated, now))
            .unwrap();
        assert!(order
            .transition(StatusChange::new(OrderStatus::Fulfilled, now))
            .is_err());
        assert_eq!(order.status, OrderStatus::Validated);
        assert_eq!(order.history.len(), 2);
    }

    #[test]
    fn deserializing_runs_the_same_parsers() {
        let bad = r#"{"sku":"BOOK-1","quantity":0,"unit_price":"9.99"}"#;
        assert!(serde_json::from_str::<LineItem>(bad).is_err());
        let good = r#"{"sku":"BOOK-1","quantity":2,"unit_price":"9.99"}"#;
        assert!(serde_json::from_str::<LineItem>(good).is_ok());
    }
}
