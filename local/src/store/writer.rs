//! The group-commit writer: one thread owns the read-write connection, and
//! every write is a closure sent to it. The thread takes everything queued,
//! runs each closure inside its own `SAVEPOINT` of one transaction and
//! commits them together (see the module doc of [`super`] for why).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::WAL_SIZE_LIMIT;
use super::DbError;

/// Tells a write's caller how its group's commit went.
type Reply = Box<dyn FnOnce(Result<(), Arc<rusqlite::Error>>) + Send>;
/// One write: runs on the writer thread and says whether it succeeded.
/// `None` means the group transaction could not begin: the job must not run.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// Past this size the writer finishes a checkpoint itself (see
/// [`writer_loop`]): under steady writes the checkpointer's passive
/// checkpoints never catch up with the newest frames, so the WAL would never
/// start over, and a restart after `kill -9` reads the whole WAL.
const WAL_CATCH_UP_BYTES: u64 = 32 * 1024 * 1024;

/// How often the writer looks at the WAL's size.
const WAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The least time between the starts of two commits (see [`writer_loop`]).
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);

/// Most write requests committed in one transaction.
const MAX_GROUP: usize = 256;

const THREAD: &str = "dofs-db-writer";

/// The way into the writer thread. The thread runs until this is dropped
/// (with the last [`super::Db`] handle), then finishes what is queued.
pub(super) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`, the migrated read-write
    /// connection to the database at `db_path`. SQLite's automatic
    /// checkpoint is turned off on it: it would run inside a commit, on
    /// this thread, and stall every write queued behind it.
    pub(super) fn start(conn: Connection, db_path: &Path) -> Result<Self, DbError> {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let wal_path = PathBuf::from(format!("{}-wal", db_path.display()));
        let (jobs, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || writer_loop(conn, rx, wal_path))
            .map_err(|source| DbError::Spawn {
                thread: THREAD,
                source,
            })?;
        Ok(Self { jobs })
    }

    /// See [`super::Db::write`].
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, DbError>>();
        let job: Job = Box::new(move |conn| {
            // Without a connection the write does not run; its reply
            // always carries the BEGIN or SAVEPOINT error that stopped it.
            let Some(conn) = conn else {
                let reply: Reply = Box::new(move |committed| {
                    let error = committed.err().map_or(DbError::WriterGone, DbError::Commit);
                    let _ = tx.send(Err(error));
                });
                return (false, reply);
            };
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |committed| {
                let outcome = match committed {
                    Ok(()) => result,
                    Err(err) => Err(DbError::Commit(err)),
                };
                // The caller may have gone away (its future dropped); the
                // write stands regardless, like any committed transaction.
                let _ = tx.send(outcome);
            });
            (ok, reply)
        });
        self.jobs.send(job).map_err(|_| DbError::WriterGone)?;
        rx.await.map_err(|_| DbError::WriterGone)?
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
        // are touched by nearly every group: committing whatever has queued
        // the moment it queued writes the same pages again and again (see
        // BENCHMARKS.md, "How the throughput was found"). So a group
        // waits until `COMMIT_INTERVAL` has passed since the last commit
        // began, gathering the writes in flight. Under load a group takes
        // longer than that to run and never waits; when idle a write waits
        // at most that long.
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
/// [`super::CachedStatements`]; these run several times per group).
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
    use super::super::{Db, DbError};

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
                        return Err(DbError::corrupt("odd"));
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
}
