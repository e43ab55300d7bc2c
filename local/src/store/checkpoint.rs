//! The checkpointer: a thread with its own connection that copies the WAL
//! back into the database, so that the writer never has to (see the module
//! doc of [`super`] for why).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use rusqlite::Connection;

use super::DbError;

/// How often the checkpointer copies the WAL back into the database.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// The WAL file is truncated to this size after a checkpoint resets it, so
/// a burst does not leave a large file behind. Set on every connection
/// that checkpoints: this one and the writer's.
pub(super) const WAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

const THREAD: &str = "dofs-db-checkpoint";

/// The running checkpointer. Dropping it (with the last [`super::Db`]
/// handle) stops the thread after one last checkpoint.
pub(super) struct Checkpointer {
    _stop: Sender<()>,
}

impl Checkpointer {
    /// Starts the checkpointer thread on `conn`, a read-write connection of
    /// its own.
    pub(super) fn start(conn: Connection) -> Result<Self, DbError> {
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(THREAD.into())
            .spawn(move || checkpoint_loop(conn, stopped))
            .map_err(|source| DbError::Spawn {
                thread: THREAD,
                source,
            })?;
        Ok(Self { _stop: stop })
    }
}

/// Checkpoints every [`CHECKPOINT_INTERVAL`] until the [`Checkpointer`] is
/// dropped, then once more (so a clean shutdown leaves a short WAL).
/// `PASSIVE` checkpoints never wait for, and never block, the writer or the
/// readers.
fn checkpoint_loop(conn: Connection, stop: Receiver<()>) {
    loop {
        let stopping = match stop.recv_timeout(CHECKPOINT_INTERVAL) {
            Err(RecvTimeoutError::Timeout) => false,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
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
