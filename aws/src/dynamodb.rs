//! The orders and failed_orders tables on DynamoDB.
//!
//! Both tables are keyed by `order_id` (S). Items are the domain types
//! serialised with `serde_dynamo`, so a value read back goes through the same
//! parsers as one that came through the API. Writes are conditional: an
//! insert never overwrites, a status transition only applies when the stored
//! status is the expected one, and when a condition fails DynamoDB hands back
//! the current item (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) so no
//! second read is needed to tell a duplicate from a missing order.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use dofs_core::{
    FailedOrder, FailedOrderStore, InsertOutcome, Order, OrderId, OrderStatus, OrderStore,
    PortError, StatusChange, TransitionOutcome,
};
use serde::{Deserialize, Serialize};

use crate::error::{corrupt, port_error};

type Item = HashMap<String, AttributeValue>;

/// The partition key of both tables.
const KEY: &str = "order_id";

fn key(order_id: &OrderId) -> Item {
    HashMap::from([(KEY.to_owned(), AttributeValue::S(order_id.to_string()))])
}

/// The item a failed conditional put handed back (`ALL_OLD`), if any.
fn old_item(err: PutItemError) -> Option<Item> {
    match err {
        PutItemError::ConditionalCheckFailedException(failed) => {
            failed.item.filter(|item| !item.is_empty())
        }
        _ => None,
    }
}

fn order_from_item(item: Item, order_id: &OrderId) -> Result<Order, PortError> {
    serde_dynamo::from_item(item).map_err(|e| {
        corrupt(
            format!("order {order_id} in the orders table is malformed"),
            e,
        )
    })
}

/// [`OrderStore`] on a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: Client,
    table: String,
}

impl DynamoOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl OrderStore for DynamoOrderStore {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(order_id)))
            // GET /orders/{id} right after a write must see it.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(format!("reading order {order_id} from {}", self.table), e))?;
        output
            .item
            .map(|item| order_from_item(item, order_id))
            .transpose()
    }

    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
        let item: Item = serde_dynamo::to_item(order).map_err(|e| {
            corrupt(
                format!("order {} cannot be written as an item", order.order_id),
                e,
            )
        })?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_names("#key", KEY)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        // The port's rule: only the workflow's first write replaces the
        // RECEIVED record api_handler made (`Order::replaces`).
        let put = if order.status == OrderStatus::Received {
            put.condition_expression("attribute_not_exists(#key)")
        } else {
            put.condition_expression("attribute_not_exists(#key) OR #status = :received")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":received",
                    AttributeValue::S(OrderStatus::Received.as_str().to_owned()),
                )
        };
        let result = put.send().await;
        match result {
            Ok(_) => Ok(InsertOutcome::Inserted),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                match old_item(err.into_service_error()) {
                    Some(existing) => Ok(InsertOutcome::AlreadyExists(order_from_item(
                        existing,
                        &order.order_id,
                    )?)),
                    // The condition only fails when the item exists, so an
                    // empty ALL_OLD means a backend that ignores the option:
                    // read it instead.
                    None => match self.get(&order.order_id).await? {
                        Some(existing) => Ok(InsertOutcome::AlreadyExists(existing)),
                        None => Err(PortError::conflict(format!(
                            "order {} was reported to exist but cannot be read",
                            order.order_id
                        ))),
                    },
                }
            }
            Err(err) => Err(port_error(
                format!("writing order {} to {}", order.order_id, self.table),
                err,
            )),
        }
    }

    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError> {
        let what = || {
            format!(
                "moving order {order_id} from {expected} to {} in {}",
                change.status, self.table
            )
        };
        let change_value: AttributeValue = serde_dynamo::to_attribute_value(&change)
            .map_err(|e| corrupt(format!("{}: status change not serialisable", what()), e))?;
        // The item's own spelling of a time (its `#[serde(with)]`), not
        // chrono's default, which `to_attribute_value(change.at)` would use.
        let at = AttributeValue::S(dofs_core::timestamp::format(&change.at));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(order_id)))
            .condition_expression("#status = :expected")
            .update_expression(
                "SET #status = :next, updated_at = :at, history = list_append(history, :change)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":expected", AttributeValue::S(expected.as_str().into()))
            .expression_attribute_values(":next", AttributeValue::S(change.status.as_str().into()))
            .expression_attribute_values(":at", at)
            .expression_attribute_values(":change", AttributeValue::L(vec![change_value]))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes {
                Some(item) => Ok(TransitionOutcome::Applied(order_from_item(item, order_id)?)),
                None => Err(PortError::internal(format!(
                    "{}: DynamoDB returned no attributes for ALL_NEW",
                    what()
                ))),
            },
            // `#status = :expected` fails both when the status differs and
            // when there is no item at all; ALL_OLD tells them apart.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                let current = match err.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(failed) => failed.item,
                    _ => None,
                };
                match current {
                    Some(current) if !current.is_empty() => Ok(TransitionOutcome::Unchanged(
                        order_from_item(current, order_id)?,
                    )),
                    _ => Ok(TransitionOutcome::NotFound),
                }
            }
            Err(err) => Err(port_error(what(), err)),
        }
    }
}

/// A failed_orders item. The dead-lettered payload is kept as JSON text so
/// it comes back byte-for-byte as it went in (a DynamoDB map would reorder
/// keys and turn every number into a decimal).
#[derive(Debug, Serialize, Deserialize)]
struct FailedOrderItem {
    order_id: OrderId,
    error: String,
    reason: String,
    receive_count: u32,
    #[serde(with = "dofs_core::timestamp::rfc3339_millis")]
    failed_at: DateTime<Utc>,
    payload: String,
}

impl FailedOrderItem {
    fn from_domain(failed: &FailedOrder) -> Self {
        Self {
            order_id: failed.order_id.clone(),
            error: failed.error.clone(),
            reason: failed.reason.clone(),
            receive_count: failed.receive_count,
            failed_at: failed.failed_at,
            payload: failed.payload.to_string(),
        }
    }

    fn into_domain(self) -> Result<FailedOrder, serde_json::Error> {
        Ok(FailedOrder {
            payload: serde_json::from_str(&self.payload)?,
            order_id: self.order_id,
            error: self.error,
            reason: self.reason,
            receive_count: self.receive_count,
            failed_at: self.failed_at,
        })
    }
}

/// [`FailedOrderStore`] on a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoFailedOrderStore {
    client: Client,
    table: String,
}

impl DynamoFailedOrderStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[async_trait]
impl FailedOrderStore for DynamoFailedOrderStore {
    async fn record(&self, failed: &FailedOrder) -> Result<(), PortError> {
        let what = || {
            format!(
                "recording failed order {} in {}",
                failed.order_id, self.table
            )
        };
        let item: Item = serde_dynamo::to_item(FailedOrderItem::from_domain(failed))
            .map_err(|e| corrupt(format!("{}: not serialisable", what()), e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", KEY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // The first record wins; a redelivered DLQ message is not an error.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(PutItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(err) => Err(port_error(what(), err)),
        }
    }

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(order_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                port_error(
                    format!("reading failed order {order_id} from {}", self.table),
                    e,
                )
            })?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let stored: FailedOrderItem = serde_dynamo::from_item(item).map_err(|e| {
            corrupt(
                format!("failed order {order_id} in {} is malformed", self.table),
                e,
            )
        })?;
        stored
            .into_domain()
            .map(Some)
            .map_err(|e| corrupt(format!("failed order {order_id}: payload is not JSON"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dofs_core::{CustomerName, LineItem, Money, OrderRequest, Quantity, Sku};

    fn order() -> Order {
        let request = OrderRequest {
            customer_name: CustomerName::parse("Ada").unwrap(),
            items: vec![LineItem {
                sku: Sku::parse("BOOK-1").unwrap(),
                quantity: Quantity::parse(2).unwrap(),
                unit_price: Money::parse_str("9.99").unwrap(),
            }],
        };
        // Milliseconds, as the real clock gives and every backend keeps.
        let now = dofs_core::Clock::now(&dofs_core::SystemClock);
        Order::new(OrderId::parse("o-1").unwrap(), request, now)
    }

    #[test]
    fn an_order_round_trips_through_an_item() {
        let order = order();
        let item: Item = serde_dynamo::to_item(&order).unwrap();
        assert_eq!(item.get(KEY), Some(&AttributeValue::S("o-1".into())));
        // Money stays an exact decimal string, the status a plain string that
        // the condition expressions compare against.
        assert_eq!(item.get("total"), Some(&AttributeValue::S("19.98".into())));
        assert_eq!(
            item.get("status"),
            Some(&AttributeValue::S("RECEIVED".into()))
        );
        assert!(matches!(item.get("history"), Some(AttributeValue::L(l)) if l.len() == 1));
        // Times in the one machine spelling, as the API returns them.
        assert_eq!(
            item.get("created_at"),
            Some(&AttributeValue::S(dofs_core::timestamp::format(
                &order.created_at
            )))
        );
        assert_eq!(order_from_item(item, &order.order_id).unwrap(), order);
    }

    #[test]
    fn a_malformed_item_is_an_internal_error_not_a_panic() {
        let mut item: Item = serde_dynamo::to_item(order()).unwrap();
        item.insert("status".into(), AttributeValue::S("SHIPPED".into()));
        let err = order_from_item(item, &OrderId::parse("o-1").unwrap()).unwrap_err();
        assert_eq!(err.kind, dofs_core::ErrorKind::Internal);
        assert!(err.chain().contains("SHIPPED"), "{}", err.chain());
    }

    #[test]
    fn failed_order_payload_is_kept_verbatim() {
        let failed = FailedOrder {
            order_id: OrderId::parse("o-1").unwrap(),
            error: "FulfillmentFailed".into(),
            reason: "simulated".into(),
            receive_count: 3,
            failed_at: dofs_core::Clock::now(&dofs_core::SystemClock),
            payload: serde_json::json!({"b": 1.5, "a": [1, null, "x"]}),
        };
        let item: Item = serde_dynamo::to_item(FailedOrderItem::from_domain(&failed)).unwrap();
        assert!(matches!(item.get("payload"), Some(AttributeValue::S(_))));
        let back: FailedOrderItem = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back.into_domain().unwrap(), failed);
    }
}
