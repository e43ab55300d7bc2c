//! The orders and failed_orders tables on SQLite, standing in for the two
//! DynamoDB tables with the same conditional-write semantics:
//!
//! - `insert` is a put with `attribute_not_exists(order_id)`;
//! - `transition` is an update with `status = :expected`, appending to the
//!   history in the same write;
//! - `FailedOrderStore::record` keeps the first record for an order.
//!
//! Every conditional write runs on the single writer thread ([`crate::db`]),
//! so the read-check-write inside one closure is atomic.

use async_trait::async_trait;
use dofs_core::{
    FailedOrder, FailedOrderStore, InsertOutcome, Order, OrderId, OrderStatus, OrderStore,
    PortError, StatusChange, TransitionOutcome,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::db::{Db, DbError};

/// [`OrderStore`] on the `orders` table.
#[derive(Clone)]
pub struct SqliteOrderStore {
    db: Db,
}

impl SqliteOrderStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Reads one order; the row's JSON document is the whole aggregate.
pub fn load_order(conn: &Connection, order_id: &str) -> Result<Option<Order>, DbError> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        )
        .optional()?;
    doc.map(|doc| serde_json::from_str(&doc).map_err(DbError::from))
        .transpose()
}

fn save_order(conn: &Connection, order: &Order) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO orders(order_id, status, doc, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(order_id) DO UPDATE SET status = excluded.status, doc = excluded.doc,
             updated_at = excluded.updated_at",
        params![
            order.order_id.as_str(),
            order.status.as_str(),
            serde_json::to_string(order)?,
            order.created_at.to_rfc3339(),
            order.updated_at.to_rfc3339(),
        ],
    )?;
    Ok(())
}

#[async_trait]
impl OrderStore for SqliteOrderStore {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError> {
        let id = order_id.to_string();
        Ok(self.db.read(move |conn| load_order(conn, &id)).await?)
    }

    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
        let order = order.clone();
        Ok(self
            .db
            .write(move |conn| {
                if let Some(existing) = load_order(conn, order.order_id.as_str())? {
                    return Ok(InsertOutcome::AlreadyExists(existing));
                }
                save_order(conn, &order)?;
                Ok(InsertOutcome::Inserted)
            })
            .await?)
    }

    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError> {
        let id = order_id.to_string();
        Ok(self
            .db
            .write(move |conn| {
                let Some(mut order) = load_order(conn, &id)? else {
                    return Ok(TransitionOutcome::NotFound);
                };
                if order.status != expected {
                    return Ok(TransitionOutcome::Unchanged(order));
                }
                // Like a DynamoDB conditional update, the store checks only
                // the condition; the status machine is the caller's job.
                order.status = change.status;
                order.updated_at = change.at;
                order.history.push(change);
                save_order(conn, &order)?;
                Ok(TransitionOutcome::Applied(order))
            })
            .await?)
    }
}

/// [`FailedOrderStore`] on the `failed_orders` table.
#[derive(Clone)]
pub struct SqliteFailedOrderStore {
    db: Db,
}

impl SqliteFailedOrderStore {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// Reads one failed order.
pub fn load_failed_order(
    conn: &Connection,
    order_id: &str,
) -> Result<Option<FailedOrder>, DbError> {
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM failed_orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        )
        .optional()?;
    doc.map(|doc| serde_json::from_str(&doc).map_err(DbError::from))
        .transpose()
}

#[async_trait]
impl FailedOrderStore for SqliteFailedOrderStore {
    async fn record(&self, failed: &FailedOrder) -> Result<(), PortError> {
        let failed = failed.clone();
        Ok(self
            .db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO failed_orders(order_id, doc, failed_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(order_id) DO NOTHING",
                    params![
                        failed.order_id.as_str(),
                        serde_json::to_string(&failed)?,
                        failed.failed_at.to_rfc3339(),
                    ],
                )?;
                Ok(())
            })
            .await?)
    }

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
        let id = order_id.to_string();
        Ok(self
            .db
            .read(move |conn| load_failed_order(conn, &id))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use dofs_core::testkit;

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn order_store_passes_the_port_contract() {
        let (_dir, db) = open();
        testkit::contract::order_store(&SqliteOrderStore::new(db)).await;
    }

    #[tokio::test]
    async fn failed_order_store_passes_the_port_contract() {
        let (_dir, db) = open();
        testkit::contract::failed_order_store(&SqliteFailedOrderStore::new(db)).await;
    }

    #[tokio::test]
    async fn only_one_of_many_racing_transitions_applies() {
        let (_dir, db) = open();
        let store = SqliteOrderStore::new(db);
        let order = testkit::sample_order(OrderStatus::Pending);
        store.insert(&order).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            let id = order.order_id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .transition(
                        &id,
                        OrderStatus::Pending,
                        StatusChange::new(OrderStatus::Fulfilled, Utc::now()),
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut applied = 0;
        for t in tasks {
            if matches!(t.await.unwrap(), TransitionOutcome::Applied(_)) {
                applied += 1;
            }
        }
        assert_eq!(applied, 1);
        let stored = store.get(&order.order_id).await.unwrap().unwrap();
        assert_eq!(stored.status, OrderStatus::Fulfilled);
        assert_eq!(stored.history.len(), order.history.len() + 1);
    }
}
