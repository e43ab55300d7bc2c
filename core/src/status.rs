//! Order statuses and the transitions allowed between them.
//!
//! ```text
//! RECEIVED ─▶ VALIDATED ─▶ PENDING ─▶ FULFILLED
//!    │            │           │
//!    ├─▶ REJECTED └───────────┴──────▶ FAILED
//!    └──────────────────────────────▶ FAILED
//! ```
//!
//! `FAILED` is reachable from every non-terminal status because the workflow
//! dead-letters an order whose step failed after its retries, whatever step
//! it was in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Received,
    Validated,
    Rejected,
    Pending,
    Fulfilled,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Received,
        OrderStatus::Validated,
        OrderStatus::Rejected,
        OrderStatus::Pending,
        OrderStatus::Fulfilled,
        OrderStatus::Failed,
    ];

    /// The wire name, e.g. `"FULFILLED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Received => "RECEIVED",
            OrderStatus::Validated => "VALIDATED",
            OrderStatus::Rejected => "REJECTED",
            OrderStatus::Pending => "PENDING",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Failed => "FAILED",
        }
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrderStatus::Rejected | OrderStatus::Fulfilled | OrderStatus::Failed
        )
    }

    /// Whether `self → next` is an allowed transition.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Received, Validated)
                | (Received, Rejected)
                | (Received, Failed)
                | (Validated, Pending)
                | (Validated, Failed)
                | (Pending, Fulfilled)
                | (Pending, Failed)
        )
    }

    /// Checks `self → next`, returning a typed error when it is not allowed.
    pub fn transition(self, next: OrderStatus) -> Result<OrderStatus, TransitionError> {
        if self.can_become(next) {
            Ok(next)
        } else {
            Err(TransitionError {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// A status name that is not one of [`OrderStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order status {0:?} (expected one of RECEIVED, VALIDATED, REJECTED, PENDING, FULFILLED, FAILED)")]
pub struct UnknownStatus(pub String);

/// A transition the status machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("order status cannot change from {from} to {to}")]
pub struct TransitionError {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// One entry of an order's status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    #[serde(with = "crate::timestamp::rfc3339_millis")]
    pub at: DateTime<Utc>,
    /// Why the status changed, when there is more to say than the status
    /// itself (a rejection reason, the failure that dead-lettered the order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StatusChange {
    pub fn new(status: OrderStatus, at: DateTime<Utc>) -> Self {
        Self {
            status,
            at,
            reason: None,
        }
    }

    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn allows_exactly_the_documented_transitions() {
        let allowed = [
            (Received, Validated),
            (Received, Rejected),
            (Received, Failed),
            (Validated, Pending),
            (Validated, Failed),
            (Pending, Fulfilled),
            (Pending, Failed),
        ];
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for from in OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in OrderStatus::ALL {
                assert!(from.transition(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn fulfilled_twice_is_an_error() {
        let err = Fulfilled.transition(Fulfilled).unwrap_err();
        assert_eq!(
            err.to_string(),
            "order status cannot change from FULFILLED to FULFILLED"
        );
    }

    #[test]
    fn status_names_round_trip_on_the_wire() {
        for status in OrderStatus::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<OrderStatus>(&json).unwrap(), status);
            assert_eq!(status.as_str().parse::<OrderStatus>().unwrap(), status);
        }
        assert!("SHIPPED".parse::<OrderStatus>().is_err());
    }
}
