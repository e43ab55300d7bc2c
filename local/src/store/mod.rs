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
//!   where it stalled every write queued behind it (a twelfth of the
//!   writer's time under load). The writer turns it off; a checkpointer
//!   thread with its own connection copies the WAL back into the database
//!   every [`CHECKPOINT_INTERVAL`] with `PASSIVE` checkpoints, which never
//!   wait for and never block the writer or the readers. Those cannot catch
//!   up with a steady stream of commits, so once the WAL passes 64 MB the
//!   writer finishes one itself between two groups and the WAL starts over.
//! - **Commit pacing**: at most one commit per millisecond (see
//!   `writer_loop`), because every commit rewrites the hot pages.
//! - Schema versions live in `PRAGMA user_version`; a database from a newer
//!   `dofs`, or a file that is not a DOFS database, is a startup error and is
//!   never reset.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Errors from the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the data directory {path}")]
    CreateDir {
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
    #[error(
        "the database {path} has schema version {found}, newer than this dofs understands ({supported}); \
         use a newer dofs or another --data-dir"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("no DOFS database at {0} (run `dofs serve` first)")]
    Missing(PathBuf),
    #[error("SQLite error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON is invalid")]
    Json(#[from] serde_json::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("the transaction could not be committed: {0}")]
    Commit(String),
    #[error("a blocking database task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl From<DbError> for dofs_core::PortError {
    fn from(err: DbError) -> Self {
        // A busy or stopped database may recover; a corrupt row will not.
        let kind = match &err {
            DbError::Json(_) | DbError::Corrupt(_) => dofs_core::ErrorKind::Internal,
            _ => dofs_core::ErrorKind::Transient,
        };
        dofs_core::PortError::new(kind, "local database error").with_source(err)
    }
}

/// The schema, one entry per version; entry `i` migrates version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE orders (
    order_id   TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX orders_by_status ON orders(status, created_at);

CREATE TABLE failed_orders (
    order_id  TEXT PRIMARY KEY,
    doc       TEXT NOT NULL,
    failed_at TEXT NOT NULL
);

CREATE TABLE queues (
    name                  TEXT PRIMARY KEY,
    visibility_timeout_ms INTEGER NOT NULL,
    dead_letter_queue     TEXT,
    max_receive_count     INTEGER
);

CREATE TABLE messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id        TEXT NOT NULL UNIQUE,
    queue             TEXT NOT NULL,
    body              TEXT NOT NULL,
    md5_of_body       TEXT NOT NULL,
    message_attributes TEXT NOT NULL,
    trace_header      TEXT,
    sent_ms           INTEGER NOT NULL,
    visible_at_ms     INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL DEFAULT 0,
    first_receive_ms  INTEGER,
    receipt_handle    TEXT UNIQUE
);
CREATE INDEX messages_visible ON messages(queue, visible_at_ms, seq);

CREATE TABLE executions (
    name        TEXT PRIMARY KEY,
    input       TEXT NOT NULL,
    trace_header TEXT,
    status      TEXT NOT NULL,
    cursor      TEXT,
    next_run_ms INTEGER,
    started_at  TEXT NOT NULL,
    stopped_at  TEXT,
    output      TEXT,
    error       TEXT,
    cause       TEXT
);
CREATE INDEX executions_due ON executions(status, next_run_ms);

CREATE TABLE execution_events (
    execution TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    state     TEXT,
    at        TEXT NOT NULL,
    detail    TEXT NOT NULL,
    PRIMARY KEY (execution, seq)
);

CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    function      TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    order_id      TEXT,
    receive_count INTEGER NOT NULL,
    outcome       TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX deliveries_by_order ON deliveries(order_id);
"#,
    // 2: spans (crate::observability::traces). Times in Unix nanoseconds; attributes and
    // events as JSON. A rowid table (rows are appended) read by trace; only
    // trace roots are indexed by order (a trace is found by its root), which
    // keeps the cost per span to one small index entry.
    r#"
CREATE TABLE spans (
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    name           TEXT NOT NULL,
    function       TEXT NOT NULL,
    order_id       TEXT,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    status         TEXT NOT NULL,
    attributes     TEXT NOT NULL,
    events         TEXT NOT NULL
);
CREATE INDEX spans_by_trace ON spans(trace_id);
CREATE INDEX span_roots_by_order ON spans(order_id) WHERE parent_span_id IS NULL;
"#,
    // 3: metrics and alarms (crate::observability::metrics, crate::observability::alarms). One row per
    // series and second, merged by upsert; dimensions as canonical JSON.
    r#"
CREATE TABLE metric_points (
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    dimensions   TEXT NOT NULL,
    bucket_ms    INTEGER NOT NULL,
    unit         TEXT NOT NULL,
    sample_count INTEGER NOT NULL,
    sum          REAL NOT NULL,
    min          REAL NOT NULL,
    max          REAL NOT NULL,
    PRIMARY KEY (namespace, name, dimensions, bucket_ms)
) WITHOUT ROWID;
CREATE INDEX metric_points_by_time ON metric_points(bucket_ms);

CREATE TABLE alarm_states (
    name         TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    reason_data  TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    evaluated_at TEXT,
    description  TEXT NOT NULL
);

CREATE TABLE alarm_history (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT NOT NULL,
    old_state TEXT NOT NULL,
    new_state TEXT NOT NULL,
    reason    TEXT NOT NULL,
    at        TEXT NOT NULL
);
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "dofs.sqlite3";

type Reply = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
/// `None` means the group transaction could not begin: the job must not run.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// How often the checkpointer copies the WAL back into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The WAL file is truncated to this size after a checkpoint resets it, so
/// a burst does not leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Past this size the writer finishes a checkpoint itself (see
/// `writer_loop`): under steady writes the checkpointer's passive
/// checkpoints never catch up with the newest frames, so the WAL would never
/// start over, and a restart after `kill -9` reads the whole WAL.
const WAL_CATCH_UP_BYTES: u64 = 64 * 1024 * 1024;

/// How often the writer looks at the WAL's size.
const WAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The least time between the starts of two commits (see `writer_loop`).
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);

/// Most write requests committed in one transaction.
const MAX_GROUP: usize = 256;

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::UnboundedSender<Job>,
    readers: Mutex<Vec<Connection>>,
    /// Dropped with the last handle, which stops the checkpointer.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// `execute` and `query_row` through the connection's prepared-statement
/// cache. Every write runs on the one writer thread, and the profile of
/// `dofs serve` under load showed it spending an eighth of its time in
/// SQLite's parser re-preparing the same few statements; these skip that.
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
        return Err(DbError::Corrupt(format!(
            "could not switch {} to WAL (journal_mode={mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
    if found > SCHEMA_VERSION {
        return Err(DbError::TooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl Db {
    /// Opens (creating if needed) the database in `data_dir`, migrates it to
    /// [`SCHEMA_VERSION`] and starts the writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(data_dir).map_err(|source| DbError::CreateDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = open_rw(&path)?;
        migrate(&mut conn, &path)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        let checkpoint_conn = open_rw(&path)?;
        checkpoint_conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let spawn_error = |source| DbError::CreateDir {
            path: data_dir.to_owned(),
            source,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("dofs-db-writer".into())
            .spawn(move || writer_loop(conn, rx, wal_path))
            .map_err(spawn_error)?;
        let (stop_checkpoints, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dofs-db-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stopped))
            .map_err(spawn_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: tx,
                readers: Mutex::new(Vec::new()),
                _checkpointer: stop_checkpoints,
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
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| DbError::Open {
            path: path.clone(),
            source,
        })?;
        configure(&conn)?;
        let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found != SCHEMA_VERSION {
            return Err(DbError::TooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
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
        let (tx, rx) = oneshot::channel::<Result<T, DbError>>();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(DbError::Commit("the transaction could not begin".into())),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(err) => Err(DbError::Commit(err.to_string())),
                };
                // The caller may have gone away (its future dropped); the
                // write stands regardless, like any committed transaction.
                let _ = tx.send(outcome);
            });
            (ok, reply)
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| DbError::WriterGone)?;
        rx.await.map_err(|_| DbError::WriterGone)?
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
            let pooled = inner
                .readers
                .lock()
                .map_err(|_| DbError::Corrupt("reader pool poisoned".into()))?
                .pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let conn = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(|source| DbError::Open {
                        path: inner.path.clone(),
                        source,
                    })?;
                    configure(&conn)?;
                    conn
                }
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await?
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

/// Checkpoints every [`CHECKPOINT_INTERVAL`] until every [`Db`] handle is
/// gone, then once more (so a clean shutdown leaves a short WAL).
fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    loop {
        let stopping = match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => true,
        };
        // Busy (another checkpoint, e.g. the CLI's) or an I/O error: the
        // frames stay in the WAL, which remains correct; try again later.
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %err, "checkpoint did not run");
        }
        if stopping {
            return;
        }
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>, wal_path: PathBuf) {
    let mut last_commit = Instant::now();
    let mut last_wal_check = Instant::now();
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        drain(&mut rx, &mut group);
        // Commit pacing: a commit writes every page its group touched to
        // the WAL, and the hot pages (the newest rows and index entries)
        // are touched by nearly every group; committing whatever has queued
        // the moment it queued wrote each order's pages about five times
        // over. So a group waits until `COMMIT_INTERVAL` has passed since
        // the last commit began, gathering the writes in flight. Under load
        // a group takes longer than that to run and never waits; when idle
        // a write waits at most that long.
        let since = last_commit.elapsed();
        if since < COMMIT_INTERVAL && group.len() < MAX_GROUP {
            std::thread::sleep(COMMIT_INTERVAL - since);
            drain(&mut rx, &mut group);
        }
        last_commit = Instant::now();
        run_group(&conn, group);
        if last_wal_check.elapsed() >= WAL_CHECK_INTERVAL {
            last_wal_check = Instant::now();
            let size = std::fs::metadata(&wal_path).map_or(0, |m| m.len());
            if size > WAL_CATCH_UP_BYTES {
                // Between groups nothing new is written, so this checkpoint
                // completes (the checkpointer has copied most frames
                // already) and the next commit starts the WAL over.
                if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %err, "catch-up checkpoint did not run");
                }
            }
        }
    }
}

/// Moves every queued job into `group`, up to [`MAX_GROUP`].
fn drain(rx: &mut mpsc::UnboundedReceiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
}

/// One transaction-control statement, prepared once (see
/// [`CachedStatements`]; these run several times per group).
fn run(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn run_group(conn: &Connection, group: Vec<Job>) {
    if let Err(err) = run(conn, "BEGIN IMMEDIATE") {
        let err = Arc::new(err);
        for job in group {
            let (_, reply) = job(None);
            reply(Err(Arc::clone(&err)));
        }
        return;
    }
    let mut replies: Vec<(Reply, Option<rusqlite::Error>)> = Vec::with_capacity(group.len());
    for job in group {
        if let Err(err) = run(conn, "SAVEPOINT job") {
            let (_, reply) = job(None);
            replies.push((reply, Some(err)));
            continue;
        }
        let (ok, reply) = job(Some(conn));
        let end = if ok {
            run(conn, "RELEASE job")
        } else {
            run(conn, "ROLLBACK TO job").and_then(|()| run(conn, "RELEASE job"))
        };
        replies.push((reply, end.err()));
    }
    let committed = run(conn, "COMMIT").map_err(Arc::new);
    if committed.is_err() {
        let _ = run(conn, "ROLLBACK");
    }
    for (reply, own_error) in replies {
        match own_error {
            Some(err) => reply(Err(Arc::new(err))),
            None => reply(committed.clone()),
        }
    }
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
    async fn a_failed_write_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut handles = Vec::new();
        for i in 0..20 {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                db.write(move |c| {
                    c.execute(
                        "INSERT INTO failed_orders(order_id, doc, failed_at) VALUES (?1, '{}', 'now')",
                        [format!("o{i}")],
                    )?;
                    if i % 2 == 1 {
                        return Err(DbError::Corrupt("odd".into()));
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut failures = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failures += 1;
            }
        }
        assert_eq!(failures, 10);
        let n: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM failed_orders", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 10);
    }

    #[tokio::test]
    async fn refuses_a_database_from_a_newer_version() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        let err = Db::open(dir.path()).err().unwrap();
        assert!(matches!(err, DbError::TooNew { .. }), "{err}");
    }

    #[test]
    fn refuses_a_file_that_is_not_a_database() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DB_FILE),
            b"definitely not sqlite, just text",
        )
        .unwrap();
        assert!(Db::open(dir.path()).is_err());
        // Never silently reset.
        assert_eq!(
            std::fs::read(dir.path().join(DB_FILE)).unwrap(),
            b"definitely not sqlite, just text"
        );
    }
}
