//! The data directory's SQLite database: schema, migrations and the two ways
//! in — a single writer thread with group commit, and a pool of readers.
//!
//! Why these settings:
//! - **WAL** lets the CLI and the HTTP reads see committed data while the
//!   writer keeps writing.
//! - **`synchronous=NORMAL`** in WAL mode never corrupts the database and
//!   loses nothing on a *process* crash (`kill -9`): a commit is in the WAL
//!   file, in the OS page cache, once `COMMIT` returns. Only a power loss or a
//!   kernel crash can drop the last transactions, which a local runtime may
//!   accept (<https://www.sqlite.org/pragma.html#pragma_synchronous>).
//! - **One writer thread with group commit**: SQLite allows one writer at a
//!   time, so instead of many connections fighting over the lock, every write
//!   is a closure sent to one thread, which takes everything queued, runs each
//!   closure inside its own `SAVEPOINT` (one failing closure does not undo the
//!   others) and commits them in one transaction. Durability then costs one
//!   commit per batch, not per request.
//! - **Checkpoints off the writer**: SQLite's automatic checkpoint runs
//!   inside the commit that crosses the threshold, on the writer thread,
//!   where it stalls every write queued behind it (see BENCHMARKS.md). The
//!   writer turns it off; a checkpointer thread with its own connection
//!   copies the WAL back into the database every [`CHECKPOINT_INTERVAL`]
//!   with `PASSIVE` checkpoints, which never wait for and never block the
//!   writer or the readers. Those cannot catch up with a steady stream of
//!   commits, so once the WAL passes 32 MiB the writer finishes one itself
//!   between two groups and the WAL starts over.
//! - **Commit pacing**: at most one commit per millisecond (see
//!   `writer.rs`), because every commit rewrites the hot pages.
//! - Schema versions live in `PRAGMA user_version`. [`Db::open`] migrates an
//!   older database; a database from a newer `dofs`, or a file that is not a
//!   DOFS database, is a startup error and is never reset. The read-only
//!   open ([`Db::open_read_only`]) never migrates, so it refuses any version
//!   but [`SCHEMA_VERSION`].
//!
//! Files: this one holds the handles ([`Db`], [`ReadOnlyDb`]), the errors
//! and the reader pool; `writer.rs` the writer thread (group commit, commit
//! pacing, the catch-up checkpoint); `checkpoint.rs` the checkpointer
//! thread; `schema.rs` the migrations and the version check; `archive.rs`
//! the compressed blobs closed histories and quiet spans are kept in.

pub mod archive;
mod checkpoint;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use checkpoint::Checkpointer;
pub use checkpoint::CHECKPOINT_INTERVAL;
pub use schema::SCHEMA_VERSION;
use writer::Writer;

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the data directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A new database could not be built and put in place.
    #[error("could not create the database {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Raised by [`Db::open`] and [`Db::open_read_only`].
    #[error(
        "the database {path} has schema version {found}, but this dofs supports versions up to \
         {supported}: a newer dofs wrote it; use that dofs, or give this one another --data-dir"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// Raised by [`Db::open_read_only`] only: [`Db::open`] migrates.
    #[error(
        "the database {path} has schema version {found}, older than this dofs's {supported}, \
         and reading never migrates; start this dofs's `dofs serve` on the data directory once \
         to upgrade it"
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("no DOFS database at {0} (run `dofs serve` first)")]
    Missing(PathBuf),
    /// The file is there but cannot be this system's data: empty, not
    /// SQLite, another program's database, or damaged. Never reset.
    #[error(
        "{path} {problem}; dofs will not start on it (that would hide the loss of every order): \
         restore it from a backup, or move it away to start with an empty system"
    )]
    Unusable { path: PathBuf, problem: String },
    /// A thread of the database (the writer or the checkpointer) could not
    /// be started.
    #[error(
        "could not start the database thread {thread}: the system is short of threads or \
         memory; free some (or raise `ulimit -u`) and start dofs again"
    )]
    Spawn {
        thread: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("SQLite error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON is invalid")]
    Json(#[from] serde_json::Error),
    /// A stored value that cannot be what its column says (`source`: the
    /// decoding error, when there was one).
    #[error("stored data is inconsistent: {what}")]
    Corrupt {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    #[error("the database writer has stopped")]
    WriterGone,
    /// The group transaction failed (BEGIN, the write's savepoint, or
    /// COMMIT): nothing of the write is stored.
    #[error("the transaction could not be committed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("a blocking database task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl DbError {
    /// [`DbError::Corrupt`] with nothing underneath.
    pub fn corrupt(what: impl Into<String>) -> Self {
        DbError::Corrupt {
            what: what.into(),
            source: None,
        }
    }

    /// [`DbError::Corrupt`] because decoding failed with `source`.
    pub fn corrupt_because(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        DbError::Corrupt {
            what: what.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Whether the data itself is damaged (a bad row, a bad page): retrying
    /// cannot help, unlike a busy, full or stopped database.
    pub fn is_damage(&self) -> bool {
        match self {
            DbError::Json(_) | DbError::Corrupt { .. } | DbError::Unusable { .. } => true,
            DbError::Sqlite(err) => is_damage_code(err) || is_undecodable(err),
            DbError::Commit(err) => is_damage_code(err),
            _ => false,
        }
    }
}

/// A column that holds what its type cannot be (see [`decoded`]): a
/// damaged row, not a busy database.
fn is_undecodable(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
    )
}

fn is_damage_code(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl From<DbError> for dofs_core::PortError {
    fn from(err: DbError) -> Self {
        // A busy, full or stopped database may recover; damage will not,
        // and a client told "retry later" would retry forever.
        let (kind, message) = if err.is_damage() {
            (dofs_core::ErrorKind::DataCorrupt, "local database damaged")
        } else {
            (dofs_core::ErrorKind::Transient, "local database error")
        };
        dofs_core::PortError::new(kind, message).with_source(err)
    }
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "dofs.sqlite3";

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: ReaderPool,
    /// Dropped with the last handle, which stops the checkpointer.
    _checkpointer: Checkpointer,
}

/// `execute` and `query_row` through the connection's prepared-statement
/// cache. Every write runs on the one writer thread, so the writer should
/// not spend its time in SQLite's parser re-preparing the same few
/// statements; these prepare each statement once per connection.
pub trait CachedStatements {
    /// [`Connection::execute`] with the statement from the cache.
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    /// [`Connection::query_row`] with the statement from the cache.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl CachedStatements for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// Distinct statements the writer and readers keep prepared (rusqlite's
/// default of 16 is fewer than the statements one order's journey uses).
const STATEMENT_CACHE: usize = 128;

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn open_rw(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path).map_err(|source| DbError::Open {
        path: path.to_owned(),
        source,
    })?;
    configure(&conn)?;
    // WAL is persistent in the file; NORMAL is per connection.
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::corrupt(format!(
            "could not switch {} to WAL (journal_mode={mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// [`open_rw`] on a file that must already be a SQLite database: the
/// errors for an empty, foreign or damaged file say so.
fn open_existing_rw(path: &Path) -> Result<Connection, DbError> {
    let unusable = |problem: String| DbError::Unusable {
        path: path.to_owned(),
        problem,
    };
    let size = std::fs::metadata(path)
        .map_err(|err| unusable(format!("cannot be read ({err})")))?
        .len();
    if size == 0 {
        return Err(unusable("is empty (0 bytes)".into()));
    }
    let conn = open_rw(path).map_err(|err| match err {
        DbError::Sqlite(ref e) if is_damage_code(e) => {
            unusable(format!("is not a readable SQLite database ({e})"))
        }
        other => other,
    })?;
    let check: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| {
            if is_damage_code(&e) {
                unusable(format!("is damaged (SQLite quick_check: {e})"))
            } else {
                unusable(format!("cannot be checked ({e})"))
            }
        })?;
    if check != ["ok"] {
        return Err(unusable(format!(
            "is damaged (SQLite quick_check: {})",
            check.join("; ")
        )));
    }
    Ok(conn)
}

fn open_read_only_conn(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| DbError::Open {
        path: path.to_owned(),
        source,
    })?;
    configure(&conn)?;
    Ok(conn)
}

impl Db {
    /// Opens (creating if needed) the database in `data_dir`, checks it,
    /// migrates it to [`SCHEMA_VERSION`] and starts the writer and
    /// checkpointer threads.
    ///
    /// A new database is built under a temporary name and renamed into
    /// place once its schema is committed, so `dofs.sqlite3` exists only as
    /// a whole DOFS database: an existing file that is empty, not SQLite,
    /// someone else's, or fails SQLite's `quick_check` is refused
    /// ([`DbError::Unusable`]), never silently replaced by an empty system.
    pub fn open(data_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            schema::create(&path)?;
        }
        let mut conn = open_existing_rw(&path)?;
        schema::migrate(&mut conn, &path)?;
        schema::enable_incremental_vacuum(&conn)?;
        let checkpoint_conn = open_rw(&path)?;
        let writer = Writer::start(conn, &path)?;
        let checkpointer = Checkpointer::start(checkpoint_conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: ReaderPool::default(),
                _checkpointer: checkpointer,
            }),
        })
    }

    /// Opens an existing database for reading only (the CLI next to a
    /// running `serve`). Never creates or migrates anything.
    pub fn open_read_only(data_dir: &Path) -> Result<ReadOnlyDb, DbError> {
        let path = data_dir.join(DB_FILE);
        if !path.exists() {
            return Err(DbError::Missing(path));
        }
        let conn = open_read_only_conn(&path)?;
        schema::require_current(&conn, &path)?;
        Ok(ReadOnlyDb { conn })
    }

    /// Where the database file is.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on the writer thread inside its own savepoint of the current
    /// group transaction. An `Err` from `f` rolls back only `f`'s changes.
    /// The result is returned once the group has been committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }

    /// Runs `f` on a pooled read connection off the async runtime. Reads see
    /// the last committed state (WAL snapshot), never a half-done group.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = match inner.readers.take() {
                Some(conn) => conn,
                None => open_read_only_conn(&inner.path)?,
            };
            // If `f` panics, the connection is dropped with the unwinding
            // task and never goes back to the pool.
            let result = f(&conn);
            inner.readers.put(conn);
            result
        })
        .await?
    }
}

/// The idle read connections.
///
/// A poisoned lock is used as if it were not: the lock is held only for one
/// `Vec::pop` or `Vec::push`, never while a read runs, so no panic can
/// leave the list half-changed, and every connection in it is a whole
/// connection whose last read returned. Refusing all later reads because of
/// the poison flag would gain nothing.
#[derive(Default)]
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn take(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

/// A read-only view of a data directory, for the CLI.
pub struct ReadOnlyDb {
    conn: Connection,
}

impl ReadOnlyDb {
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Hands free pages back to the file system (`PRAGMA incremental_vacuum`;
/// the database is created with `auto_vacuum = INCREMENTAL`): up to
/// `pages` of them, or every one. Runs on the writer.
pub fn give_back_free_pages(conn: &Connection, pages: Option<i64>) -> Result<(), DbError> {
    let pragma = match pages {
        Some(pages) => format!("PRAGMA incremental_vacuum({pages})"),
        None => "PRAGMA incremental_vacuum".to_owned(),
    };
    // SQLite frees one page per step of this pragma: step to the end.
    let mut vacuum = conn.prepare(&pragma)?;
    let mut rows = vacuum.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// A text column decoded by `decode` (JSON, a timestamp, an enum), for the
/// `from_row` of each record type: a failure is the column's conversion
/// error, so a damaged row reads as what it is.
pub fn decoded<T, E>(
    row: &rusqlite::Row<'_>,
    column: &str,
    decode: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text: String = row.get(column)?;
    decode(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// [`decoded`] for a nullable column.
pub fn decoded_opt<T, E>(
    row: &rusqlite::Row<'_>,
    column: &str,
    decode: impl FnOnce(&str) -> Result<T, E>,
) -> rusqlite::Result<Option<T>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = row.get(column)?;
    text.map(|text| {
        decode(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            db.write(|c| {
                c.execute(
                    "INSERT INTO failed_orders(order_id, doc, failed_at) VALUES ('a', '{}', 'now')",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM failed_orders", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_column_that_does_not_decode_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let err = db
            .read(|c| {
                Ok(c.query_row("SELECT 'not json' AS doc", [], |row| {
                    decoded(row, "doc", |t| serde_json::from_str::<serde_json::Value>(t))
                })?)
            })
            .await
            .unwrap_err();
        assert!(err.is_damage(), "{err:?}");
        let err = db
            .read(|c| Ok(c.query_row("SELECT 'text'", [], |row| row.get::<_, i64>(0))?))
            .await
            .unwrap_err();
        assert!(err.is_damage(), "{err:?}");
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DB_FILE),
            b"definitely not sqlite, just text",
        )
        .unwrap();
        let err = Db::open(dir.path()).err().unwrap();
        assert!(
            err.to_string()
                .contains("is not a readable SQLite database"),
            "{err}"
        );
        // Never silently reset.
        assert_eq!(
            std::fs::read(dir.path().join(DB_FILE)).unwrap(),
            b"definitely not sqlite, just text"
        );
    }

    #[tokio::test]
    async fn reads_go_on_after_the_reader_pool_was_poisoned() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let count = |c: &Connection| -> Result<i64, DbError> {
            Ok(c.query_row("SELECT count(*) FROM failed_orders", [], |r| r.get(0))?)
        };
        assert_eq!(db.read(count).await.unwrap(), 0);
        let poisoner = db.clone();
        let panicked = std::thread::spawn(move || {
            let _held = poisoner.inner.readers.idle.lock();
            panic!("poison the reader pool on purpose");
        })
        .join();
        assert!(panicked.is_err());
        assert!(db.inner.readers.idle.is_poisoned());
        assert_eq!(db.read(count).await.unwrap(), 0);
        assert_eq!(db.read(count).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_read_that_panics_does_not_break_later_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let failed = db
            .read(|_| -> Result<(), DbError> { panic!("a read panics on purpose") })
            .await;
        assert!(matches!(failed, Err(DbError::Join(_))));
        let one: i64 = db
            .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
