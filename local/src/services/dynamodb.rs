//! The orders and failed_orders tables on SQLite, standing in for the two
//! DynamoDB tables with the same conditional-write semantics:
//!
//! - `insert` is a put with `attribute_not_exists(order_id)`;
//! - `transition` is an update with `status = :expected`, appending to the
//!   history in the same write;
//! - `FailedOrderStore::record` keeps the first record for an order.
//!
//! Every conditional write runs on the single writer thread ([`crate::store`]),
//! so the read-check-write inside one closure is atomic. Documents are
//! serialized and parsed by the caller, not on that thread, which every
//! write waits for: a transition edits the stored JSON in SQLite
//! (`json_set`, like DynamoDB's `SET`/`list_append`) and hands the new
//! document back (`RETURNING`, like `ReturnValues=ALL_NEW`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dofs_core::{
    FailedOrder, FailedOrderStore, InsertOutcome, Order, OrderId, OrderStatus, OrderStore,
    PortError, StatusChange, TransitionOutcome,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::observability::usage::UsageMeter;
use crate::store::{CachedStatements, Db, DbError};

/// [`OrderStore`] on the `orders` table.
#[derive(Clone)]
pub struct SqliteOrderStore {
    db: Db,
    usage: UsageMeter,
}

/// The table names the meter bills under (Terraform's modules).
const ORDERS_TABLE: &str = "orders";
const FAILED_ORDERS_TABLE: &str = "failed_orders";

impl SqliteOrderStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            usage: UsageMeter::off(),
        }
    }

    /// The store, metering the request units each call would consume.
    pub fn with_usage(mut self, usage: UsageMeter) -> Self {
        self.usage = usage;
        self
    }
}

/// Reads one order; the row's JSON document is the whole aggregate.
pub fn load_order(conn: &Connection, order_id: &str) -> Result<Option<Order>, DbError> {
    load_order_doc(conn, order_id)?
        .as_deref()
        .map(parse_order)
        .transpose()
}

fn load_order_doc(conn: &Connection, order_id: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .query_row_cached(
            "SELECT doc FROM orders WHERE order_id = ?1",
            [order_id],
            |row| row.get(0),
        )
        .optional()?)
}

fn parse_order(doc: &str) -> Result<Order, DbError> {
    Ok(serde_json::from_str(doc)?)
}

#[async_trait]
impl OrderStore for SqliteOrderStore {
    async fn get(&self, order_id: &OrderId) -> Result<Option<Order>, PortError> {
        let id = order_id.to_string();
        let doc = self.db.read(move |conn| load_order_doc(conn, &id)).await?;
        self.usage
            .dynamodb_read(ORDERS_TABLE, doc.as_ref().map_or(0, String::len));
        Ok(doc.as_deref().map(parse_order).transpose()?)
    }

    async fn insert(&self, order: &Order) -> Result<InsertOutcome, PortError> {
        let id = order.order_id.to_string();
        let status = order.status.as_str();
        let doc = serde_json::to_string(order).map_err(DbError::from)?;
        let written = doc.len();
        let created_at = order.created_at.to_rfc3339();
        let updated_at = order.updated_at.to_rfc3339();
        let existing = self
            .db
            .write(move |conn| {
                // The port's rule (`Order::replaces`): the workflow's first
                // write replaces api_handler's RECEIVED record, nothing else
                // replaces a stored order.
                let inserted = conn.execute_cached(
                    "INSERT INTO orders(order_id, status, doc, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(order_id) DO UPDATE SET
                       status = excluded.status, doc = excluded.doc,
                       created_at = excluded.created_at, updated_at = excluded.updated_at
                     WHERE orders.status = 'RECEIVED' AND excluded.status <> 'RECEIVED'",
                    params![id, status, doc, created_at, updated_at],
                )?;
                if inserted == 1 {
                    return Ok(None);
                }
                load_order_doc(conn, &id)
            })
            .await?;
        // A failed conditional put consumes write units too.
        let stored = existing.as_ref().map_or(0, String::len);
        self.usage.dynamodb_write(ORDERS_TABLE, written.max(stored));
        Ok(match existing {
            None => InsertOutcome::Inserted,
            Some(doc) => InsertOutcome::AlreadyExists(parse_order(&doc)?),
        })
    }

    async fn transition(
        &self,
        order_id: &OrderId,
        expected: OrderStatus,
        change: StatusChange,
    ) -> Result<TransitionOutcome, PortError> {
        let id = order_id.to_string();
        let status = change.status.as_str();
        let updated_at = change.at.to_rfc3339();
        // The document's own spelling of the time and of the history entry.
        let at_json = dofs_core::timestamp::format(&change.at);
        let change_json = serde_json::to_string(&change).map_err(DbError::from)?;
        let (applied, doc) = self
            .db
            .write(move |conn| {
                // Like a DynamoDB conditional update, the store checks only
                // the condition; the status machine is the caller's job.
                let updated: Option<String> = conn
                    .query_row_cached(
                        "UPDATE orders SET status = ?3, updated_at = ?4,
                             doc = json_set(doc, '$.status', ?3, '$.updated_at', ?5,
                                            '$.history[#]', json(?6))
                         WHERE order_id = ?1 AND status = ?2
                         RETURNING doc",
                        params![
                            id,
                            expected.as_str(),
                            status,
                            updated_at,
                            at_json,
                            change_json
                        ],
                        |row| row.get(0),
                    )
                    .optional()?;
                Ok(match updated {
                    Some(doc) => (true, Some(doc)),
                    None => (false, load_order_doc(conn, &id)?),
                })
            })
            .await?;
        // An update consumes units for the larger of the item before and
        // after; the change is the difference.
        let after = doc.as_ref().map_or(0, String::len);
        self.usage.dynamodb_write(ORDERS_TABLE, after.max(1));
        Ok(match (applied, doc) {
            (_, None) => TransitionOutcome::NotFound,
            (true, Some(doc)) => TransitionOutcome::Applied(parse_order(&doc)?),
            (false, Some(doc)) => TransitionOutcome::Unchanged(parse_order(&doc)?),
        })
    }
}

/// Which end of the orders table [`order_summaries`] starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Oldest first, every order (`dofs orders`).
    OldestFirst,
    /// Newest first, at most this many (the console).
    Newest(usize),
}

/// The columns of an order summary, for every listing of orders (`o`: the
/// orders table): the customer and the total from the stored document, the
/// total as text so its scale stays.
pub const ORDER_SUMMARY_COLUMNS: &str = "o.order_id, o.status, o.created_at, o.updated_at, \
    json_extract(o.doc, '$.customer_name') AS customer, \
    CAST(json_extract(o.doc, '$.total') AS TEXT) AS total";

/// One row selected with [`ORDER_SUMMARY_COLUMNS`], as JSON.
pub fn order_summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "order_id": r.get::<_, String>("order_id")?,
        "status": r.get::<_, String>("status")?,
        "created_at": r.get::<_, String>("created_at")?,
        "updated_at": r.get::<_, String>("updated_at")?,
        "customer": r.get::<_, Option<String>>("customer")?,
        "total": r.get::<_, Option<String>>("total")?,
    }))
}

/// The orders as `{order_id, status, created_at, updated_at, customer,
/// total}` objects, optionally only those in `status`.
pub fn order_summaries(
    conn: &Connection,
    status: Option<&str>,
    listing: Listing,
) -> Result<Vec<serde_json::Value>, DbError> {
    // A negative LIMIT is no limit in SQLite.
    let (order, limit) = match listing {
        Listing::OldestFirst => ("o.created_at, o.order_id", -1),
        Listing::Newest(limit) => (
            "o.created_at DESC, o.order_id",
            i64::try_from(limit).unwrap_or(i64::MAX),
        ),
    };
    let sql = format!(
        "SELECT {ORDER_SUMMARY_COLUMNS} FROM orders o
         WHERE ?1 IS NULL OR o.status = ?1 ORDER BY {order} LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![status, limit], order_summary_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How many orders are in each status, keyed by the stored status name
/// (`"PENDING"`, …); a status with no orders is absent rather than 0.
///
/// One `GROUP BY` over the status column, so the orders' documents are
/// never parsed: the console's overview and its order filter links call it
/// on every refresh. The sum of the values is the number of rows in the
/// table, which makes it the count to use for "how many orders are on
/// disk" too (`dofs bench` after a restart).
pub fn status_counts(conn: &Connection) -> Result<BTreeMap<String, u64>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT status, count(*) FROM orders GROUP BY status")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// An order that reached a terminal status, and when (its `updated_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalOrder {
    pub order_id: String,
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

/// Every order in a terminal status (FULFILLED, FAILED, REJECTED), for
/// `dofs bench`, which watches the server's file instead of polling the
/// API. `keep` filters by id before anything is allocated for the row.
pub fn terminal_orders(
    conn: &Connection,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<Vec<TerminalOrder>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT order_id, status, updated_at FROM orders
         WHERE status IN ('FULFILLED', 'FAILED', 'REJECTED')",
    )?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let id = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
        if !keep(id) {
            continue;
        }
        let order_id = id.to_owned();
        let status: String = row.get(1)?;
        let at: String = row.get(2)?;
        let status = status
            .parse::<OrderStatus>()
            .map_err(|_| DbError::corrupt(format!("order {order_id} has status {status:?}")))?;
        let at = DateTime::parse_from_rfc3339(&at)
            .map_err(|e| {
                DbError::corrupt_because(format!("order {order_id} has updated_at {at:?}"), e)
            })?
            .with_timezone(&Utc);
        found.push(TerminalOrder {
            order_id,
            status,
            at,
        });
    }
    Ok(found)
}

/// [`FailedOrderStore`] on the `failed_orders` table.
#[derive(Clone)]
pub struct SqliteFailedOrderStore {
    db: Db,
    usage: UsageMeter,
}

impl SqliteFailedOrderStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            usage: UsageMeter::off(),
        }
    }

    /// The store, metering the request units each call would consume.
    pub fn with_usage(mut self, usage: UsageMeter) -> Self {
        self.usage = usage;
        self
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
        let id = failed.order_id.to_string();
        let doc = serde_json::to_string(failed).map_err(DbError::from)?;
        self.usage.dynamodb_write(FAILED_ORDERS_TABLE, doc.len());
        let failed_at = failed.failed_at.to_rfc3339();
        Ok(self
            .db
            .write(move |conn| {
                conn.execute_cached(
                    "INSERT INTO failed_orders(order_id, doc, failed_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(order_id) DO NOTHING",
                    params![id, doc, failed_at],
                )?;
                Ok(())
            })
            .await?)
    }

    async fn get(&self, order_id: &OrderId) -> Result<Option<FailedOrder>, PortError> {
        let id = order_id.to_string();
        let failed = self
            .db
            .read(move |conn| load_failed_order(conn, &id))
            .await?;
        let bytes = failed
            .as_ref()
            .and_then(|f| serde_json::to_string(f).ok())
            .map_or(0, |doc| doc.len());
        self.usage.dynamodb_read(FAILED_ORDERS_TABLE, bytes);
        Ok(failed)
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

    #[tokio::test]
    async fn status_counts_groups_orders_by_stored_status() {
        let (_dir, db) = open();
        let store = SqliteOrderStore::new(db.clone());
        for status in [
            OrderStatus::Pending,
            OrderStatus::Pending,
            OrderStatus::Fulfilled,
        ] {
            store.insert(&testkit::sample_order(status)).await.unwrap();
        }
        let counts = db.read(status_counts).await.unwrap();
        let expected = BTreeMap::from([("FULFILLED".to_owned(), 1), ("PENDING".to_owned(), 2)]);
        assert_eq!(counts, expected);
    }

    /// The document SQLite edits is the document serde would have written.
    #[tokio::test]
    async fn a_transition_edits_the_document_as_the_model_would() {
        let (_dir, db) = open();
        let store = SqliteOrderStore::new(db);
        let order = testkit::sample_order(OrderStatus::Pending);
        store.insert(&order).await.unwrap();
        // The store keeps milliseconds, as every backend does.
        let now = dofs_core::Clock::now(&dofs_core::SystemClock);
        let change =
            StatusChange::new(OrderStatus::Failed, now).with_reason("every attempt \"failed\"");
        let mut expected = order.clone();
        expected.status = change.status;
        expected.updated_at = change.at;
        expected.history.push(change.clone());
        let outcome = store
            .transition(&order.order_id, OrderStatus::Pending, change)
            .await
            .unwrap();
        assert_eq!(outcome, TransitionOutcome::Applied(expected.clone()));
        assert_eq!(store.get(&order.order_id).await.unwrap(), Some(expected));
    }
}
