//! The one seam for state (docs/ARCHITECTURE.md, storage). The embedded default is one SQLite
//! file in WAL mode with `synchronous=FULL`; every write goes through one
//! writer thread that **group-commits**: appends that arrive while a
//! transaction is being made durable share the next one, and each caller is
//! released only once its batch has been fsync'd.
//!
//! The audit tables are append-only at the store: triggers abort any UPDATE
//! or DELETE. Sequence numbers are assigned here, by the writer, in commit
//! order (not by a database sequence), so they are contiguous by
//! construction; the [`Sealer`] that a caller hands in turns its sequence
//! number into the record's bytes.
//!
//! Risk baselines (`risk_baselines`, one row per principal) are state, not
//! audit: they are replaced as principals are learned, through the same
//! writer and its group commit ([`Store::save_baselines`]).
//!
//! The decoded facts reviewers are shown of a JIT request
//! (`approval_facts`, one row per request, written once before the
//! request's first record) are kept beside the log, not in it: the log
//! keeps arguments redacted and records only the facts' hash.
//!
//! Other mutable state that must survive a restart (sign-in sessions, OAuth
//! clients, consents, grants and token hashes) is kept in `state`, keyed by
//! a namespace and a key, with an optional expiry: [`Store::put_state`],
//! [`Store::delete_state`], [`Store::purge_state`] and
//! [`Reader::state`]. Its owners keep it in memory and write it through
//! here, durably, before they answer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

/// Most jobs one transaction takes (bounds the latency of the first caller).
const MAX_BATCH: usize = 4096;
/// How long a write waits for another process's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    seq           INTEGER PRIMARY KEY,
    ts            TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    call_id       TEXT,
    principal_oid TEXT,
    tool          TEXT,
    decision      TEXT,
    leaf_hash     BLOB    NOT NULL,
    record        BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_call ON audit_records(call_id) WHERE call_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS audit_records_ts ON audit_records(ts);
CREATE INDEX IF NOT EXISTS audit_records_kind ON audit_records(kind, seq);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id       INTEGER PRIMARY KEY,
    size     INTEGER NOT NULL,
    root     BLOB    NOT NULL,
    frontier BLOB    NOT NULL,
    note     TEXT    NOT NULL,
    created  TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS risk_baselines (
    principal TEXT PRIMARY KEY,
    state     BLOB NOT NULL,
    updated   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approval_facts (
    request_id TEXT PRIMARY KEY,
    facts      BLOB NOT NULL,
    created    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    ns      TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   BLOB NOT NULL,
    expires TEXT,
    PRIMARY KEY (ns, key)
);
CREATE TRIGGER IF NOT EXISTS audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
";

/// The four append-only triggers, by name (the verifier warns if one is gone).
pub const APPEND_ONLY_TRIGGERS: [&str; 4] = [
    "audit_records_no_update",
    "audit_records_no_delete",
    "audit_checkpoints_no_update",
    "audit_checkpoints_no_delete",
];

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the store is not writable: {0}")]
    Write(String),
    #[error("a record could not be sealed: {0}")]
    Seal(String),
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("reading the store failed: {0}")]
    Read(String),
}

fn write_error(e: rusqlite::Error) -> StoreError {
    StoreError::Write(e.to_string())
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

/// A record ready to be stored: its bytes and the columns it is indexed by.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub ts: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub principal_oid: Option<String>,
    pub tool: Option<String>,
    pub decision: Option<String>,
    pub leaf_hash: [u8; 32],
    pub bytes: Vec<u8>,
}

/// Turns the sequence number the writer assigns into the record to store.
pub type Sealer = Box<dyn FnOnce(u64) -> Result<Sealed, String> + Send>;

/// Called by the writer after every durable commit with the first sequence
/// number and the leaf hashes of the records it made durable, in order.
pub type CommitHook = Box<dyn FnMut(u64, &[[u8; 32]]) + Send>;

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub id: i64,
    pub size: u64,
    pub root: Vec<u8>,
    /// The Merkle frontier at `size` (concatenated 32-byte peaks), so a
    /// restart need not re-read the whole log.
    pub frontier: Vec<u8>,
    pub note: String,
    pub created: String,
}

/// A stored record as read back.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub seq: i64,
    pub leaf_hash: Vec<u8>,
    pub bytes: Vec<u8>,
}

enum Job {
    Append {
        sealers: Vec<Sealer>,
        reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
    },
    Checkpoint {
        row: CheckpointRow,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SaveBaselines {
        rows: Vec<(String, Vec<u8>)>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    SaveFacts {
        request_id: String,
        facts: Vec<u8>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    State {
        change: StateChange,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A change to the `state` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Inserts or replaces `(ns, key)`.
    Put {
        ns: String,
        key: String,
        value: Vec<u8>,
        /// RFC 3339; `None` keeps it until deleted.
        expires: Option<String>,
    },
    Delete {
        ns: String,
        key: String,
    },
    /// Deletes every entry of `ns` that expired before `now` (RFC 3339).
    Purge {
        ns: String,
        now: String,
    },
}

/// Handle to the store (cheap to clone). Dropping the last handle stops the
/// writer after it has committed everything queued.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// What [`Store::open`] found in the file.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    /// The next sequence number (the number of records).
    pub next_seq: u64,
    pub writer: std::thread::JoinHandle<()>,
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_error(e.to_string()))?;
    Ok(conn)
}

/// One writer per store: the log's sequence numbers and Merkle frontier live
/// in the writing process, so a second process appending to the same file
/// would fork the log. `<db>.lock` is held (flock) while the writer runs;
/// readers (verify, export, tail) do not take it.
fn lock_exclusively(path: &Path) -> Result<std::fs::File, StoreError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let open_error = |reason: String| StoreError::Open {
        path: path.to_owned(),
        reason,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| open_error(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::{Seek, Write};
            // Best effort: say who holds it, for the next one's message.
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = writeln!(file, "{}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            Err(open_error(format!(
                "the store is in use by another Warden process (pid {}); one process writes a store: \
                 give each instance its own store and signing key (origin)",
                holder.trim()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(open_error(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite file, sets and reads back WAL
    /// and `synchronous=FULL`, creates the schema, and starts the writer.
    pub fn open(path: &Path, hook: CommitHook) -> Result<Opened, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let lock = lock_exclusively(path)?;
        let conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let open_error = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| open_error(e.to_string()))?;
        conn.execute_batch("PRAGMA synchronous=FULL")
            .map_err(|e| open_error(e.to_string()))?;
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(|e| open_error(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") || sync != 2 {
            return Err(open_error(format!(
                "expected journal_mode=wal and synchronous=FULL(2), got {mode} and {sync}"
            )));
        }
        conn.execute_batch(SCHEMA)
            .map_err(|e| open_error(e.to_string()))?;
        let next_seq: u64 = conn
            .query_row(
                "SELECT coalesce(max(seq) + 1, 0) FROM audit_records",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| open_error(e.to_string()))? as u64;
        let (jobs, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("warden-store-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    next_seq,
                    hook,
                }
                .run(queue);
                // The lock is held for as long as the writer runs.
                drop(lock);
            })
            .map_err(|e| open_error(format!("cannot start the writer thread: {e}")))?;
        Ok(Opened {
            store: Store {
                jobs,
                path: path.to_owned(),
            },
            next_seq,
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records; returns their sequence numbers once durable.
    pub async fn append(&self, sealers: Vec<Sealer>) -> Result<Vec<u64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Append { sealers, reply })
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores a checkpoint; returns once durable.
    pub async fn append_checkpoint(&self, row: CheckpointRow) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Checkpoint { row, reply })
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Inserts or replaces risk baselines (principal key, serialized
    /// state); returns once durable.
    pub async fn save_baselines(&self, rows: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::SaveBaselines { rows, reply })
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores the decoded facts of JIT request `request_id` (kept if they
    /// were stored before); returns once durable.
    pub async fn save_facts(&self, request_id: String, facts: Vec<u8>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::SaveFacts {
                request_id,
                facts,
                reply,
            })
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Applies a change to the `state` table; returns once durable.
    pub async fn change_state(&self, change: StateChange) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::State { change, reply })
            .map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores `value` under `(ns, key)`, replacing what was there.
    pub async fn put_state(
        &self,
        ns: &str,
        key: &str,
        value: Vec<u8>,
        expires: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        self.change_state(StateChange::Put {
            ns: ns.to_owned(),
            key: key.to_owned(),
            value,
            expires: expires.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        })
        .await
    }

    /// Removes `(ns, key)` (nothing if absent).
    pub async fn delete_state(&self, ns: &str, key: &str) -> Result<(), StoreError> {
        self.change_state(StateChange::Delete {
            ns: ns.to_owned(),
            key: key.to_owned(),
        })
        .await
    }

    /// Removes the entries of `ns` that expired before `now`.
    pub async fn purge_state(
        &self,
        ns: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        self.change_state(StateChange::Purge {
            ns: ns.to_owned(),
            now: now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })
        .await
    }

    /// A read-only connection to the same file (for startup recovery).
    pub fn reader(&self) -> Result<Reader, StoreError> {
        Reader::open(&self.path)
    }
}

struct Writer {
    conn: Connection,
    next_seq: u64,
    hook: CommitHook,
}

enum Done {
    Append(
        oneshot::Sender<Result<Vec<u64>, StoreError>>,
        Result<Vec<u64>, StoreError>,
    ),
    /// A checkpoint or saved baselines.
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    /// One transaction for the whole batch; a job that fails alone is rolled
    /// back to its savepoint and the others still commit.
    fn commit(&mut self, batch: Vec<Job>) {
        let mut done = Vec::with_capacity(batch.len());
        let mut leaves = Vec::new();
        let first_seq = self.next_seq;
        let mut next_seq = self.next_seq;
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            let error = write_error(e);
            for job in batch {
                fail(job, error.clone());
            }
            return;
        }
        for job in batch {
            match job {
                Job::Append { sealers, reply } => {
                    let before = (next_seq, leaves.len());
                    let result = self.insert_records(sealers, &mut next_seq, &mut leaves);
                    if result.is_err() {
                        (next_seq, _) = before;
                        leaves.truncate(before.1);
                    }
                    done.push(Done::Append(reply, result));
                }
                Job::Checkpoint { row, reply } => {
                    let result = self.insert_checkpoint(&row);
                    done.push(Done::Unit(reply, result));
                }
                Job::SaveBaselines { rows, reply } => {
                    let result = self.upsert_baselines(&rows);
                    done.push(Done::Unit(reply, result));
                }
                Job::SaveFacts {
                    request_id,
                    facts,
                    reply,
                } => {
                    let result = self.insert_facts(&request_id, &facts);
                    done.push(Done::Unit(reply, result));
                }
                Job::State { change, reply } => {
                    let result = self.apply_state(&change);
                    done.push(Done::Unit(reply, result));
                }
            }
        }
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            let error = write_error(e);
            for d in done {
                match d {
                    Done::Append(reply, _) => drop(reply.send(Err(error.clone()))),
                    Done::Unit(reply, _) => drop(reply.send(Err(error.clone()))),
                }
            }
            return;
        }
        self.next_seq = next_seq;
        if !leaves.is_empty() {
            (self.hook)(first_seq, &leaves);
        }
        for d in done {
            match d {
                Done::Append(reply, result) => drop(reply.send(result)),
                Done::Unit(reply, result) => drop(reply.send(result)),
            }
        }
    }

    fn insert_records(
        &mut self,
        sealers: Vec<Sealer>,
        next_seq: &mut u64,
        leaves: &mut Vec<[u8; 32]>,
    ) -> Result<Vec<u64>, StoreError> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(write_error)?;
        let result = (|| {
            let mut seqs = Vec::with_capacity(sealers.len());
            let mut insert = self
                .conn
                .prepare_cached(
                    "INSERT INTO audit_records
                     (seq, ts, kind, call_id, principal_oid, tool, decision, leaf_hash, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(write_error)?;
            let mut seq = *next_seq;
            let mut mine = Vec::with_capacity(sealers.len());
            for seal in sealers {
                let r = seal(seq).map_err(StoreError::Seal)?;
                insert
                    .execute(params![
                        seq as i64,
                        r.ts,
                        r.kind,
                        r.call_id,
                        r.principal_oid,
                        r.tool,
                        r.decision,
                        &r.leaf_hash[..],
                        r.bytes
                    ])
                    .map_err(write_error)?;
                seqs.push(seq);
                mine.push(r.leaf_hash);
                seq += 1;
            }
            Ok((seqs, mine, seq))
        })();
        match result {
            Ok((seqs, mine, seq)) => {
                self.conn
                    .execute_batch("RELEASE job")
                    .map_err(write_error)?;
                *next_seq = seq;
                leaves.extend(mine);
                Ok(seqs)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }

    fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit_checkpoints (size, root, frontier, note, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.size as i64,
                    row.root,
                    row.frontier,
                    row.note,
                    row.created
                ])
            })
            .map(drop)
            .map_err(write_error)
    }

    fn apply_state(&mut self, change: &StateChange) -> Result<(), StoreError> {
        let result = match change {
            StateChange::Put {
                ns,
                key,
                value,
                expires,
            } => self
                .conn
                .prepare_cached(
                    "INSERT INTO state (ns, key, value, expires) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                )
                .and_then(|mut s| s.execute(params![ns, key, value, expires])),
            StateChange::Delete { ns, key } => self
                .conn
                .prepare_cached("DELETE FROM state WHERE ns = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![ns, key])),
            StateChange::Purge { ns, now } => self
                .conn
                .prepare_cached(
                    "DELETE FROM state WHERE ns = ?1 AND expires IS NOT NULL AND expires < ?2",
                )
                .and_then(|mut s| s.execute(params![ns, now])),
        };
        result.map(drop).map_err(write_error)
    }

    fn insert_facts(&mut self, request_id: &str, facts: &[u8]) -> Result<(), StoreError> {
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.conn
            .prepare_cached(
                "INSERT INTO approval_facts (request_id, facts, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT(request_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![request_id, facts, created]))
            .map(drop)
            .map_err(write_error)
    }

    /// One job's baselines, all or none (a savepoint, like appends).
    fn upsert_baselines(&mut self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(write_error)?;
        let updated = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let result = (|| {
            let mut upsert = self
                .conn
                .prepare_cached(
                    "INSERT INTO risk_baselines (principal, state, updated) VALUES (?1, ?2, ?3)
                     ON CONFLICT(principal) DO UPDATE
                     SET state = excluded.state, updated = excluded.updated",
                )
                .map_err(write_error)?;
            for (principal, state) in rows {
                upsert
                    .execute(params![principal, state, updated])
                    .map_err(write_error)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.conn.execute_batch("RELEASE job").map_err(write_error),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
                Err(e)
            }
        }
    }
}

fn fail(job: Job, error: StoreError) {
    match job {
        Job::Append { reply, .. } => drop(reply.send(Err(error))),
        Job::Checkpoint { reply, .. }
        | Job::SaveBaselines { reply, .. }
        | Job::SaveFacts { reply, .. }
        | Job::State { reply, .. } => drop(reply.send(Err(error))),
    }
}

/// A `SELECT id, size, root, frontier, note, created` row.
fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CheckpointRow> {
    Ok(CheckpointRow {
        id: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        root: r.get(2)?,
        frontier: r.get(3)?,
        note: r.get(4)?,
        created: r.get(5)?,
    })
}

/// Read-only access to a store file: for verification, export, tail and
/// recovery. Never writes (a verifier must not change what it checks).
pub struct Reader {
    conn: Connection,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Open {
                path: path.to_owned(),
                reason: "no such file".into(),
            });
        }
        let conn = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type='table'
                 AND name IN ('audit_records','audit_checkpoints')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        if tables != 2 {
            return Err(StoreError::Open {
                path: path.to_owned(),
                reason: "not a Warden store (no audit tables)".into(),
            });
        }
        Ok(Self { conn })
    }

    /// Calls `each` for every record with `seq >= from`, in `seq` order.
    pub fn for_each_record(
        &self,
        from: i64,
        mut each: impl FnMut(RecordRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, leaf_hash, record FROM audit_records WHERE seq >= ?1 ORDER BY seq",
            )
            .map_err(read_error)?;
        let mut rows = stmt.query([from]).map_err(read_error)?;
        while let Some(row) = rows.next().map_err(read_error)? {
            each(RecordRow {
                seq: row.get(0).map_err(read_error)?,
                leaf_hash: row.get(1).map_err(read_error)?,
                bytes: row.get(2).map_err(read_error)?,
            })?;
        }
        Ok(())
    }

    /// The bytes of every record of `kind`, in `seq` order.
    pub fn records_of_kind(
        &self,
        kind: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM audit_records WHERE kind = ?1 ORDER BY seq")
            .map_err(read_error)?;
        let mut rows = stmt.query([kind]).map_err(read_error)?;
        while let Some(row) = rows.next().map_err(read_error)? {
            let bytes: Vec<u8> = row.get(0).map_err(read_error)?;
            each(&bytes)?;
        }
        Ok(())
    }

    /// The newest records of `kind`, newest first, at most `limit`:
    /// `(seq, bytes)`.
    pub fn latest_of_kind(
        &self,
        kind: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, record FROM audit_records WHERE kind = ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(read_error)?;
        let rows = stmt
            .query_map(params![kind, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// Every record of call `call_id`, in order: `(seq, bytes)`.
    pub fn records_of_call(&self, call_id: &str) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, record FROM audit_records WHERE call_id = ?1 ORDER BY seq")
            .map_err(read_error)?;
        let rows = stmt
            .query_map([call_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// Calls `each` with the sequence number and bytes of every record of
    /// `kind`, in order.
    pub fn records_of_kind_seq(
        &self,
        kind: &str,
        mut each: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, record FROM audit_records WHERE kind = ?1 ORDER BY seq")
            .map_err(read_error)?;
        let mut rows = stmt.query([kind]).map_err(read_error)?;
        while let Some(row) = rows.next().map_err(read_error)? {
            let seq: i64 = row.get(0).map_err(read_error)?;
            let bytes: Vec<u8> = row.get(1).map_err(read_error)?;
            each(seq, &bytes)?;
        }
        Ok(())
    }

    /// Every checkpoint, in the order they were stored.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, size, root, frontier, note, created FROM audit_checkpoints ORDER BY id",
            )
            .map_err(read_error)?;
        let rows = stmt.query_map([], checkpoint_row).map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    pub fn last_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, size, root, frontier, note, created FROM audit_checkpoints
                 ORDER BY id DESC LIMIT 1",
            )
            .map_err(read_error)?;
        let row = stmt
            .query_row([], checkpoint_row)
            .optional()
            .map_err(read_error)?;
        Ok(row)
    }

    /// Record bytes of intents after the last record of `kind` that have no
    /// outcome (calls a crash interrupted).
    pub fn open_intents_since_last(&self, kind: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT i.record FROM audit_records i
                 WHERE i.kind = 'intent'
                   AND i.seq > coalesce((SELECT max(seq) FROM audit_records WHERE kind = ?1), -1)
                   AND NOT EXISTS (SELECT 1 FROM audit_records o
                                   WHERE o.call_id = i.call_id AND o.kind = 'outcome')
                 ORDER BY i.seq",
            )
            .map_err(read_error)?;
        let rows = stmt
            .query_map([kind], |r| r.get::<_, Vec<u8>>(0))
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// The names of the append-only triggers present.
    pub fn triggers(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .map_err(read_error)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// Every stored risk baseline (principal key, serialized state); none
    /// in a store written before baselines were kept.
    pub fn baselines(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !self.has_table("risk_baselines")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT principal, state FROM risk_baselines ORDER BY principal")
            .map_err(read_error)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// The decoded facts of every JIT request (request id, serialized
    /// facts); none in a store written before facts were kept.
    pub fn approval_facts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !self.has_table("approval_facts")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT request_id, facts FROM approval_facts")
            .map_err(read_error)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// Every unexpired entry of namespace `ns` at `now`: `(key, value)`.
    pub fn state(
        &self,
        ns: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !self.has_table("state")? {
            return Ok(Vec::new());
        }
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, value FROM state WHERE ns = ?1 AND (expires IS NULL OR expires >= ?2)
                 ORDER BY key",
            )
            .map_err(read_error)?;
        let rows = stmt
            .query_map(params![ns, now], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(read_error)
    }

    /// The highest stored sequence number, if any.
    pub fn max_seq(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row("SELECT max(seq) FROM audit_records", [], |r| r.get(0))
            .map_err(read_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn sealer(text: &'static str) -> Sealer {
        Box::new(move |seq| {
            Ok(Sealed {
                ts: "2026-01-01T00:00:00Z".into(),
                kind: "heartbeat".into(),
                call_id: None,
                principal_oid: None,
                tool: None,
                decision: None,
                leaf_hash: [seq as u8; 32],
                bytes: format!("{seq}:{text}").into_bytes(),
            })
        })
    }

    #[tokio::test]
    async fn appends_are_numbered_in_commit_order_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hook_seen = seen.clone();
        let opened = Store::open(
            &path,
            Box::new(move |first, leaves| hook_seen.lock().unwrap().push((first, leaves.len()))),
        )
        .unwrap();
        assert_eq!(opened.next_seq, 0);
        let store = opened.store.clone();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.append(vec![sealer("a"), sealer("b")]).await.unwrap()
            }));
        }
        let mut all: Vec<u64> = Vec::new();
        for t in tasks {
            let seqs = t.await.unwrap();
            assert_eq!(seqs[1], seqs[0] + 1, "one caller's records are adjacent");
            all.extend(seqs);
        }
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let hooked: usize = seen.lock().unwrap().iter().map(|(_, n)| n).sum();
        assert_eq!(hooked, 100);
        drop(store);
        drop(opened.store);
        opened.writer.join().unwrap();
        let again = Store::open(&path, Box::new(|_, _| {})).unwrap();
        assert_eq!(again.next_seq, 100);
    }

    #[tokio::test]
    async fn a_second_writer_is_refused_until_the_first_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let first = Store::open(&path, Box::new(|_, _| {})).unwrap();
        let error = Store::open(&path, Box::new(|_, _| {}))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("in use by another Warden process"),
            "{error}"
        );
        assert!(error.contains(&std::process::id().to_string()), "{error}");
        // Readers are welcome meanwhile.
        Reader::open(&path).unwrap();
        drop(first.store);
        first.writer.join().unwrap();
        Store::open(&path, Box::new(|_, _| {})).unwrap();
    }

    #[tokio::test]
    async fn a_failing_sealer_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(&dir.path().join("w.db"), Box::new(|_, _| {})).unwrap();
        let bad: Sealer = Box::new(|_| Err("cannot encode".into()));
        let (a, b) = tokio::join!(
            opened.store.append(vec![sealer("x"), bad]),
            opened.store.append(vec![sealer("y")])
        );
        assert!(matches!(a, Err(StoreError::Seal(_))));
        let b = b.unwrap();
        let reader = opened.store.reader().unwrap();
        assert_eq!(reader.max_seq().unwrap(), Some(b[0] as i64));
        assert_eq!(b, vec![0], "the failed job's number is reused");
    }

    #[tokio::test]
    async fn sql_update_and_delete_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opened = Store::open(&path, Box::new(|_, _| {})).unwrap();
        opened.store.append(vec![sealer("x")]).await.unwrap();
        let conn = Connection::open(&path).unwrap();
        for sql in [
            "UPDATE audit_records SET record = x'00'",
            "DELETE FROM audit_records",
        ] {
            let error = conn.execute(sql, []).unwrap_err().to_string();
            assert!(error.contains("append-only"), "{sql}: {error}");
        }
        let reader = Reader::open(&path).unwrap();
        assert_eq!(reader.triggers().unwrap().len(), 4);
    }

    #[tokio::test]
    async fn baselines_are_upserted_alongside_appends_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opened = Store::open(&path, Box::new(|_, _| {})).unwrap();
        let store = opened.store.clone();
        let (appended, saved) = tokio::join!(
            store.append(vec![sealer("x")]),
            store.save_baselines(vec![
                ("t/alice".into(), b"a1".to_vec()),
                ("t/bob".into(), b"b1".to_vec()),
            ])
        );
        assert_eq!(appended.unwrap(), vec![0]);
        saved.unwrap();
        // A principal learned again replaces its row; the others stay.
        store
            .save_baselines(vec![("t/alice".into(), b"a2".to_vec())])
            .await
            .unwrap();
        let reader = store.reader().unwrap();
        assert_eq!(
            reader.baselines().unwrap(),
            vec![
                ("t/alice".to_owned(), b"a2".to_vec()),
                ("t/bob".to_owned(), b"b1".to_vec())
            ]
        );
        // State, not audit: no trigger guards it, and the audit tables keep theirs.
        assert_eq!(reader.triggers().unwrap(), {
            let mut names = APPEND_ONLY_TRIGGERS.map(str::to_owned).to_vec();
            names.sort();
            names
        });
        let updated: String = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT updated FROM risk_baselines WHERE principal = 't/alice'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(updated.ends_with('Z'), "{updated}");
        drop(reader);
        drop(store);
        drop(opened.store);
        opened.writer.join().unwrap();
        let again = Store::open(&path, Box::new(|_, _| {})).unwrap();
        assert_eq!(again.next_seq, 1);
        assert_eq!(again.store.reader().unwrap().baselines().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_store_without_the_baselines_table_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE audit_records (seq INTEGER PRIMARY KEY, record BLOB);
             CREATE TABLE audit_checkpoints (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
        drop(conn);
        assert!(Reader::open(&path).unwrap().baselines().unwrap().is_empty());
    }

    #[tokio::test]
    async fn saving_baselines_after_the_writer_stopped_fails() {
        // The writer has gone: the job cannot be queued.
        let (jobs, queue) = mpsc::channel::<Job>();
        drop(queue);
        let stopped = Store {
            jobs,
            path: PathBuf::from("gone.db"),
        };
        let error = stopped
            .save_baselines(vec![("t/a".into(), b"x".to_vec())])
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Stopped), "{error}");
    }

    #[tokio::test]
    async fn state_is_put_replaced_deleted_and_purged_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let opened = Store::open(&path, Box::new(|_, _| {})).unwrap();
        let store = opened.store;
        let now = chrono::Utc::now();
        let past = now - chrono::Duration::seconds(10);
        let later = now + chrono::Duration::seconds(3600);
        store
            .put_state("s", "a", b"1".to_vec(), None)
            .await
            .unwrap();
        store
            .put_state("s", "a", b"2".to_vec(), Some(later))
            .await
            .unwrap();
        store
            .put_state("s", "b", b"x".to_vec(), Some(past))
            .await
            .unwrap();
        store
            .put_state("other", "a", b"y".to_vec(), None)
            .await
            .unwrap();
        let reader = Reader::open(&path).unwrap();
        // Expired entries are not read, even before they are purged.
        assert_eq!(
            reader.state("s", now).unwrap(),
            vec![("a".to_owned(), b"2".to_vec())]
        );
        store.purge_state("s", now).await.unwrap();
        store.delete_state("s", "a").await.unwrap();
        assert!(
            reader
                .state("s", past - chrono::Duration::seconds(1))
                .unwrap()
                .is_empty()
        );
        assert_eq!(reader.state("other", now).unwrap().len(), 1);
    }
}
