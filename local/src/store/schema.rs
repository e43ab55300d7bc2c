//! The schema: one migration per version, and the check that a database's
//! version is one this build can use.
//!
//! The version lives in `PRAGMA user_version`. [`migrate`] (the writer's
//! open) brings an older database up to [`SCHEMA_VERSION`];
//! [`require_current`] (the read-only open) accepts only that version,
//! because a reader next to a running `serve` must never change the file.
//! Neither ever resets a database it cannot use.

use std::path::Path;

use rusqlite::Connection;

use super::DbError;

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
    // 4: a span's `function` column holds the gateway and the Step
    // Functions stand-in too: it names the component.
    "ALTER TABLE spans RENAME COLUMN function TO component;",
    // 5: what SQS's ApproximateAgeOfOldestMessage needs: when a message
    // entered its current queue (a dead letter: when it was moved there;
    // NULL: when it was sent) and how often it was received there.
    r#"
ALTER TABLE messages ADD COLUMN entered_ms INTEGER;
ALTER TABLE messages ADD COLUMN receives_here INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET receives_here = receive_count;
"#,
    // 6: archives (crate::store::archive). A closed execution's history
    // events and a trace's quiet spans, moved out of their rows into
    // deflated blobs: one per execution and compaction pass (`first_seq`
    // to `last_seq`), one per trace and pass (`end_ns`: the latest end of
    // its spans, for retention). The trace roots stay rows: they are how
    // an order's traces are found.
    r#"
CREATE TABLE history_archives (
    execution TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    events    BLOB NOT NULL
);
CREATE INDEX history_archives_by_execution ON history_archives(execution, first_seq);

CREATE TABLE span_archives (
    trace_id TEXT NOT NULL,
    end_ns   INTEGER NOT NULL,
    spans    BLOB NOT NULL
);
CREATE INDEX span_archives_by_trace ON span_archives(trace_id);
CREATE INDEX span_archives_by_end ON span_archives(end_ns);

CREATE TABLE compaction_marks (
    name TEXT PRIMARY KEY,
    upto INTEGER NOT NULL
);
"#,
    // 7: the log store (crate::observability::logs): each order's JSON log
    // lines, by order for `dofs logs`, by time for retention; an ended
    // order's lines packed by compaction into deflated archives (`at_ms`:
    // the newest line's, for retention).
    r#"
CREATE TABLE log_lines (
    id       INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    line     TEXT NOT NULL
);
CREATE INDEX log_lines_by_order ON log_lines(order_id, id);
CREATE INDEX log_lines_by_time ON log_lines(at_ms);

CREATE TABLE log_archives (
    order_id TEXT NOT NULL,
    last_id  INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    lines    BLOB NOT NULL
);
CREATE INDEX log_archives_by_order ON log_archives(order_id, last_id);
CREATE INDEX log_archives_by_time ON log_archives(at_ms);
"#,
    // 8: the billable units the runtime has counted (`observability::usage`).
    r#"
CREATE TABLE usage_counters (
    key   TEXT PRIMARY KEY,
    value REAL NOT NULL
) WITHOUT ROWID;
"#,
    // 9: the distribution of a bucket's values, for percentiles
    // (`observability::histogram`): NULL for series that are not
    // distributions and for buckets written before this migration.
    "ALTER TABLE metric_points ADD COLUMN histogram BLOB;",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Creates a new database at `path`: built and migrated under a
/// temporary name, then renamed into place, so a crash while creating it
/// leaves no half-made `path` behind (an existing empty file is damage).
pub(super) fn create(path: &Path) -> Result<(), DbError> {
    let building = path.with_extension("sqlite3.new");
    for stale in [
        building.clone(),
        building.with_extension("new-wal"),
        building.with_extension("new-shm"),
    ] {
        if let Err(err) = std::fs::remove_file(&stale) {
            if err.kind() != std::io::ErrorKind::NotFound {
                return Err(io_error(&stale, err));
            }
        }
    }
    {
        let mut conn = super::open_rw(&building)?;
        // Before the first table: pages freed by retention can be handed
        // back to the file system (`PRAGMA incremental_vacuum`).
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        migrate(&mut conn, &building)?;
        // Closing the last connection checkpoints the WAL into the file.
        conn.close().map_err(|(_, source)| DbError::Open {
            path: building.clone(),
            source,
        })?;
    }
    std::fs::File::open(&building)
        .and_then(|file| file.sync_all())
        .map_err(|err| io_error(&building, err))?;
    std::fs::rename(&building, path).map_err(|err| io_error(path, err))
}

fn io_error(path: &Path, source: std::io::Error) -> DbError {
    DbError::Create {
        path: path.to_owned(),
        source,
    }
}

/// Turns on `auto_vacuum = INCREMENTAL` in a database made before it was
/// the default: setting it on a database with tables takes a `VACUUM`,
/// which rewrites the file once.
pub(super) fn enable_incremental_vacuum(conn: &Connection) -> Result<(), DbError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
    if mode != 2 {
        tracing::info!("rewriting the database once so retention can hand freed space back");
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    }
    Ok(())
}

/// Brings the database up to [`SCHEMA_VERSION`], one transaction per
/// migration, so a crash leaves it at some whole version. A database at
/// version 0 that already has tables is another program's, and refused.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let found = user_version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(mismatch(path, found));
    }
    if found == 0 {
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
        if tables > 0 {
            return Err(DbError::Unusable {
                path: path.to_owned(),
                problem: format!(
                    "is a SQLite database with {tables} schema object(s) but no DOFS schema \
                     version, so another program's"
                ),
            });
        }
    }
    let done = usize::try_from(found).map_err(|_| mismatch(path, found))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Accepts only a database at exactly [`SCHEMA_VERSION`]: a read-only open
/// never migrates.
pub(super) fn require_current(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let found = user_version(conn, path)?;
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(mismatch(path, found))
    }
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, DbError> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })
}

/// The error for a database at schema version `found`, which is not
/// [`SCHEMA_VERSION`].
fn mismatch(path: &Path, found: i64) -> DbError {
    let path = path.to_owned();
    let supported = SCHEMA_VERSION;
    if found > supported {
        DbError::TooNew {
            path,
            found,
            supported,
        }
    } else if found < 0 {
        // No dofs writes a negative version.
        DbError::corrupt(format!(
            "{} has schema version {found}, which no dofs writes, so it is not a DOFS \
             database; move it away or use another --data-dir",
            path.display()
        ))
    } else {
        DbError::TooOld {
            path,
            found,
            supported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Db, DbError, DB_FILE};
    use super::*;

    /// A database file in `dir` at schema version `version`, with the
    /// tables of the first `migrations` migrations.
    fn database_at(dir: &Path, version: i64, migrations: usize) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        for sql in &MIGRATIONS[..migrations] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    fn version_of(dir: &Path) -> i64 {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
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
    fn a_newer_database_is_refused_with_both_versions_and_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let found = SCHEMA_VERSION + 1;
        database_at(dir.path(), found, MIGRATIONS.len());
        let expected = format!(
            "the database {} has schema version {found}, but this dofs supports versions up to \
             {SCHEMA_VERSION}: a newer dofs wrote it; use that dofs, or give this one another \
             --data-dir",
            dir.path().join(DB_FILE).display()
        );

        let read_only = Db::open_read_only(dir.path()).err().unwrap();
        assert!(matches!(read_only, DbError::TooNew { .. }), "{read_only}");
        assert_eq!(read_only.to_string(), expected);

        let writer = Db::open(dir.path()).err().unwrap();
        assert!(matches!(writer, DbError::TooNew { .. }), "{writer}");
        assert_eq!(writer.to_string(), expected);
        // Never downgraded or reset.
        assert_eq!(version_of(dir.path()), found);
    }

    #[tokio::test]
    async fn an_older_database_is_refused_by_a_reader_and_migrated_by_open() {
        let dir = tempfile::tempdir().unwrap();
        database_at(dir.path(), 1, 1);

        let read_only = Db::open_read_only(dir.path()).err().unwrap();
        assert!(matches!(read_only, DbError::TooOld { .. }), "{read_only}");
        assert_eq!(
            read_only.to_string(),
            format!(
                "the database {} has schema version 1, older than this dofs's {SCHEMA_VERSION}, \
                 and reading never migrates; start this dofs's `dofs serve` on the data \
                 directory once to upgrade it",
                dir.path().join(DB_FILE).display()
            )
        );
        assert_eq!(version_of(dir.path()), 1, "a reader must not migrate");

        let db = Db::open(dir.path()).unwrap();
        let spans: i64 = db
            .read(|c| Ok(c.query_row("SELECT count(*) FROM spans", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(spans, 0);
        assert_eq!(version_of(dir.path()), SCHEMA_VERSION);
        // Rewritten once so retention can give space back.
        let auto_vacuum: i64 = db
            .read(|c| Ok(c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(auto_vacuum, 2);
        assert!(Db::open_read_only(dir.path()).is_ok());
    }

    #[test]
    fn refuses_a_negative_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        database_at(dir.path(), -1, 0);
        let err = Db::open(dir.path()).err().unwrap();
        assert!(matches!(err, DbError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("not a DOFS database"), "{err}");
        assert_eq!(version_of(dir.path()), -1);
    }

    fn unusable(dir: &Path) -> String {
        match Db::open(dir) {
            Err(err @ DbError::Unusable { .. }) => err.to_string(),
            Err(other) => panic!("expected Unusable, got {other}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn an_empty_file_is_refused_not_replaced_by_an_empty_system() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"").unwrap();
        let err = unusable(dir.path());
        assert!(err.contains("is empty (0 bytes)"), "{err}");
        assert!(err.contains("restore it from a backup"), "{err}");
        assert_eq!(
            std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len(),
            0,
            "left as it was"
        );
    }

    #[test]
    fn another_programs_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .unwrap();
        drop(conn);
        let err = unusable(dir.path());
        assert!(err.contains("another program's"), "{err}");
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 1, "nothing added to it");
    }

    #[tokio::test]
    async fn damage_in_the_middle_of_the_file_is_found_at_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            db.write(|c| {
                for i in 0..2_000 {
                    c.execute(
                        "INSERT INTO orders (order_id, status, doc, created_at, updated_at) \
                         VALUES (?1, 'FULFILLED', ?2, '2026-01-01', '2026-01-01')",
                        rusqlite::params![format!("order-{i:05}"), "x".repeat(200)],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        }
        let path = dir.path().join(DB_FILE);
        // Whatever the WAL still holds goes into the file first (the
        // dropped handle's threads may still be closing: wait for them).
        let conn = Connection::open(&path).unwrap();
        for _ in 0..100 {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .unwrap();
            if busy == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        let pages = bytes.len() / page;
        assert!(pages > 20, "{pages} pages");
        // A run of pages from the middle on (never the first or the last).
        bytes[(pages / 2) * page..(pages - 1) * page].fill(0xA5);
        std::fs::write(&path, &bytes).unwrap();
        let err = unusable(dir.path());
        assert!(err.contains("is damaged (SQLite quick_check"), "{err}");
    }

    #[test]
    fn a_new_database_appears_only_whole() {
        let dir = tempfile::tempdir().unwrap();
        // A crash while an earlier start was creating it left a part-built
        // file under the temporary name: it is discarded, not trusted.
        std::fs::write(dir.path().join("dofs.sqlite3.new"), b"partial").unwrap();
        drop(Db::open(dir.path()).unwrap());
        assert!(!dir.path().join("dofs.sqlite3.new").exists());
        assert_eq!(version_of(dir.path()), SCHEMA_VERSION);
    }

    #[test]
    fn damage_is_not_retried_as_if_transient() {
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        let port: dofs_core::PortError = DbError::Sqlite(corrupt).into();
        assert_eq!(port.kind, dofs_core::ErrorKind::DataCorrupt);
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let port: dofs_core::PortError = DbError::Sqlite(full).into();
        assert_eq!(port.kind, dofs_core::ErrorKind::Transient);
    }
}
