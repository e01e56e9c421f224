//! SQLite's WAL checkpoints, off the commit path.
//!
//! A commit is durable once its frames are in the write-ahead log and the
//! log is fsync'd; copying those pages back into the database file (the
//! checkpoint) can come later. SQLite by default runs that copy inside the
//! commit that takes the log past 1,000 pages, so one call in a hundred or
//! so waited for it: hundreds of page writes and an fsync of the database
//! file, the tail of the latency a gateway adds.
//!
//! The writer's connection therefore never checkpoints
//! (`wal_autocheckpoint=0`). A thread of its own, with its own connection,
//! runs a `PASSIVE` checkpoint a moment after commits, which copies what is
//! committed without ever blocking the writer or the readers. Under a load
//! that never pauses, the writer may always be mid-commit when a passive
//! checkpoint ends, and SQLite starts the log over only once it has been
//! copied whole; so when the log passes [`RESTART_FRAMES`] the checkpoint
//! is a `RESTART`, which waits for the writer between two transactions,
//! copies what is left and has the next commit start the log over. The
//! log therefore stays bounded, as it was with SQLite's own checkpoints.
//!
//! Durability does not depend on this thread: a checkpoint that fails (a
//! full disk, say) leaves every commit in the log, is logged, and is tried
//! again after the next commit.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// How long commits gather before a checkpoint copies them.
const GATHER: Duration = Duration::from_millis(250);

/// Log size (pages) past which the checkpoint waits for the writer
/// (`RESTART`) so that the log starts over.
pub(super) const RESTART_FRAMES: i64 = 16_384;

/// Tells the checkpointer that a transaction committed. Dropping it (the
/// writer stops) stops the checkpointer once it has copied what it was
/// told of.
pub(super) struct Checkpointer {
    nudge: mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Turns off the writer connection's own checkpoints and starts the
    /// thread that runs them on `own`, a connection of its own to the file.
    pub(super) fn start(writer: &Connection, own: Connection) -> Result<Self, StoreError> {
        writer
            .execute_batch("PRAGMA wal_autocheckpoint=0")
            .map_err(|e| StoreError::Write(e.to_string()))?;
        let (nudge, nudges) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("warden-store-checkpointer".into())
            .spawn(move || run(&own, &nudges))
            .map_err(|e| StoreError::Write(format!("cannot start the checkpointer thread: {e}")))?;
        Ok(Checkpointer { nudge })
    }

    /// A transaction committed: a checkpoint is due soon.
    pub(super) fn committed(&self) {
        // A nudge already waiting says the same.
        let _ = self.nudge.try_send(());
    }
}

fn run(conn: &Connection, nudges: &mpsc::Receiver<()>) {
    while nudges.recv().is_ok() {
        // Let commits gather, then copy them all at once. The nudges of
        // those commits find the channel full and wake nobody.
        std::thread::sleep(GATHER);
        if let Err(error) = checkpoint(conn) {
            tracing::warn!(%error, "WAL checkpoint failed; the commits stay in the log and are copied later");
        }
    }
}

/// One checkpoint: `PASSIVE`, or `RESTART` when the log is long. Returns
/// the log's size in pages and how many of them are now copied.
pub(super) fn checkpoint(conn: &Connection) -> Result<(i64, i64), rusqlite::Error> {
    let (log, copied) = run_checkpoint(conn, "PASSIVE")?;
    if log >= RESTART_FRAMES {
        return run_checkpoint(conn, "RESTART");
    }
    Ok((log, copied))
}

fn run_checkpoint(conn: &Connection, mode: &str) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A database in WAL mode with one table `t`, and its connection.
    fn wal_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); PRAGMA synchronous=FULL")
            .unwrap();
        conn
    }

    #[test]
    fn the_writer_connection_never_checkpoints_and_the_thread_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let writer = wal_db(&path);
        let checkpointer = Checkpointer::start(&writer, Connection::open(&path).unwrap()).unwrap();
        // Well past SQLite's own 1,000-page trigger, in one connection
        // whose checkpoints are off: the log keeps every page.
        for _ in 0..1_500 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        let pages = |suffix: &str| {
            let file = format!("{}{suffix}", path.display());
            std::fs::metadata(file).unwrap().len() / 4096
        };
        let db_pages_before = pages("");
        assert!(pages("-wal") >= 1_500, "the log holds the commits");
        assert!(
            db_pages_before < 100,
            "the file does not: {db_pages_before} pages"
        );

        // A commit nudges the thread, which copies the log into the file.
        checkpointer.committed();
        let copied = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            pages("") > db_pages_before + 1_000
        });
        assert!(
            copied,
            "the checkpointer copied the log into the database file"
        );
        let count: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1_500);
    }

    #[test]
    fn a_long_log_is_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = wal_db(&path);
        writer.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        writer.execute_batch("BEGIN").unwrap();
        for _ in 0..(RESTART_FRAMES + 100) {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        writer.execute_batch("COMMIT").unwrap();
        let other = Connection::open(&path).unwrap();
        let (log, copied) = checkpoint(&other).unwrap();
        assert!(log >= RESTART_FRAMES);
        assert_eq!(log, copied, "everything copied");
        // The next commit starts the log over: it is short again.
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        let (log, _) = run_checkpoint(&other, "PASSIVE").unwrap();
        assert!(log < 10, "the log started over: {log} pages");
    }
}
