//! The embedded backend: one SQLite file in WAL mode with
//! `synchronous=FULL`, written by one process (a lock file says which).
//! The audit tables are append-only at the store: triggers abort any UPDATE
//! or DELETE.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::queue::{Handle, Queue};
use super::wal::Checkpointer;
use super::writer::{Backend, Writer};
use super::{
    CheckpointRow, Columns, CommitHook, Guard, Location, Opened, RecordRow, Sealed, StateChange,
    Store, StoreError, now_text,
};
use super::{SeqVisitor, per_call_kind};

/// How long a write waits for another process's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, made or brought up to date at every open. Every index of
/// `audit_records` is a page a call's commit writes and fsyncs, so the log
/// keeps only those its queries use: by call id (time-ordered ids: the
/// newest leaf), and by kind for the kinds other than the two every call
/// appends (`rare_kinds!`, which the queries by kind repeat). Earlier versions indexed `ts` (no query reads
/// by it) and every kind; those indexes are dropped.
const SCHEMA: &str = concat!(
    "
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
DROP INDEX IF EXISTS audit_records_ts;
DROP INDEX IF EXISTS audit_records_kind;
CREATE INDEX IF NOT EXISTS audit_records_rare_kind ON audit_records(kind, seq)
    WHERE ",
    rare_kinds!(),
    ";
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
CREATE TABLE IF NOT EXISTS risk_events (
    id    INTEGER PRIMARY KEY,
    at    INTEGER NOT NULL,
    event BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS risk_events_at ON risk_events (at);
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
"
);

/// What a query by `kind` adds to its `WHERE` clause for SQLite to use the
/// partial kind index (nothing for the kinds that index leaves out).
fn kind_index(kind: &str) -> &'static str {
    if per_call_kind(kind) {
        ""
    } else {
        concat!(" AND ", rare_kinds!())
    }
}

/// The newest records of `kind`, newest first (`?2` of them).
fn latest_of_kind_sql(kind: &str) -> String {
    format!(
        "SELECT seq, record FROM audit_records WHERE kind = ?1{} ORDER BY seq DESC LIMIT ?2",
        kind_index(kind)
    )
}

/// The records of `kind` from `?2` on, in order.
fn records_of_kind_sql(kind: &str) -> String {
    format!(
        "SELECT seq, record FROM audit_records WHERE kind = ?1{} AND seq >= ?2 ORDER BY seq",
        kind_index(kind)
    )
}

/// The intents with no outcome after the last record of `kind`.
fn open_intents_sql(kind: &str) -> String {
    format!(
        "SELECT i.record FROM audit_records i
         WHERE i.kind = 'intent'
           AND i.seq > coalesce((SELECT max(seq) FROM audit_records WHERE kind = ?1{}), -1)
           AND NOT EXISTS (SELECT 1 FROM audit_records o
                           WHERE o.call_id = i.call_id AND o.kind = 'outcome')
         ORDER BY i.seq",
        kind_index(kind)
    )
}

fn open_error(path: &Path, reason: String) -> StoreError {
    StoreError::Open {
        store: path.display().to_string(),
        reason,
    }
}

fn write_error(e: rusqlite::Error) -> StoreError {
    StoreError::Write(e.to_string())
}

fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Read(e.to_string())
}

fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let open_error = |reason: String| open_error(path, reason);
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
    let open_error = |reason: String| open_error(path, reason);
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
                "the store is in use by another Warden process (pid {}); one process writes a SQLite store: \
                 replicas share a PostgreSQL store ([store] url)",
                holder.trim()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(open_error(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

pub(super) fn open_writer(path: &Path, hook: CommitHook) -> Result<Opened, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| open_error(path, format!("cannot create {}: {e}", dir.display())))?;
    }
    let lock = lock_exclusively(path)?;
    let conn = open_connection(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let open_error = |reason: String| open_error(path, reason);
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
    let checkpointer = Checkpointer::start(
        &conn,
        open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?,
    )
    .map_err(|e| open_error(e.to_string()))?;
    // Callers commit their own jobs when the writer is idle (`queue`).
    let queue = Arc::new(Queue::new(true));
    queue.install(Box::new(Writer {
        backend: Sqlite { conn, checkpointer },
        next_seq,
        hook,
    }));
    let runs = queue.clone();
    let writer = std::thread::Builder::new()
        .name("warden-store-writer".into())
        .spawn(move || {
            runs.run();
            // The lock is held for as long as the writer runs; `run`
            // dropped the writer's connection.
            drop(lock);
        })
        .map_err(|e| open_error(format!("cannot start the writer thread: {e}")))?;
    Ok(Opened {
        store: Store {
            jobs: Arc::new(Handle(queue)),
            location: Location::Sqlite(path.to_owned()),
            readers: None,
        },
        next_seq,
        writer,
    })
}

/// The SQLite writer's connection, and the thread that checkpoints what
/// it commits.
struct Sqlite {
    conn: Connection,
    checkpointer: Checkpointer,
}

impl Backend for Sqlite {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(write_error)
    }

    /// One writer per file (the lock): nobody else appends.
    fn lock_log(&mut self, known: u64) -> Result<(u64, Vec<[u8; 32]>), StoreError> {
        Ok((known, Vec::new()))
    }

    fn insert_records(&mut self, first: u64, records: &[Sealed]) -> Result<(), StoreError> {
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO audit_records
                 (seq, ts, kind, call_id, principal_oid, tool, decision, leaf_hash, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(write_error)?;
        for (seq, r) in (first..).zip(records) {
            insert
                .execute(params![
                    seq as i64,
                    r.columns.ts,
                    r.columns.kind,
                    r.columns.call_id,
                    r.columns.principal_oid,
                    r.columns.tool,
                    r.columns.decision,
                    &r.leaf_hash[..],
                    r.bytes
                ])
                .map_err(write_error)?;
        }
        Ok(())
    }

    fn move_head(&mut self, _next: u64) -> Result<(), StoreError> {
        Ok(())
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

    fn upsert_baselines(&mut self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let updated = now_text();
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
    }

    fn insert_risk_events(&mut self, events: &[(i64, Vec<u8>)]) -> Result<(), StoreError> {
        // One writer: ids are handed out in commit order.
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO risk_events (at, event) VALUES (?1, ?2)")
            .map_err(write_error)?;
        for (at, event) in events {
            insert.execute(params![at, event]).map_err(write_error)?;
        }
        Ok(())
    }

    fn prune_risk_events(&mut self, before: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM risk_events WHERE at < ?1")
            .and_then(|mut s| s.execute(params![before]))
            .map(drop)
            .map_err(write_error)
    }

    fn insert_facts(&mut self, request_id: &str, facts: &[u8]) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO approval_facts (request_id, facts, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT(request_id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![request_id, facts, now_text()]))
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

    fn compare_and_set(&mut self, guard: &Guard) -> Result<(), StoreError> {
        let changed = match &guard.expected {
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO state (ns, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT(ns, key) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![guard.ns, guard.key, guard.new])),
            Some(expected) => self
                .conn
                .prepare_cached(
                    "UPDATE state SET value = ?3 WHERE ns = ?1 AND key = ?2 AND value = ?4",
                )
                .and_then(|mut s| s.execute(params![guard.ns, guard.key, guard.new, expected])),
        }
        .map_err(write_error)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{}/{}", guard.ns, guard.key)))
        }
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(write_error)
    }

    fn release(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("RELEASE job").map_err(write_error)
    }

    fn rollback_to_savepoint(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK TO job; RELEASE job");
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").map_err(write_error)?;
        self.checkpointer.committed();
        Ok(())
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
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

/// Read-only access to a store file. Never writes (a verifier must not
/// change what it checks).
pub(super) struct SqliteReader {
    conn: Connection,
}

impl SqliteReader {
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        if !path.is_file() {
            return Err(open_error(path, "no such file".into()));
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
            .map_err(|e| open_error(path, e.to_string()))?;
        if tables != 2 {
            return Err(open_error(
                path,
                "not a Warden store (no audit tables)".into(),
            ));
        }
        Ok(SqliteReader { conn })
    }

    /// Calls `each` for every record with `seq >= from`, in `seq` order,
    /// with its indexed columns if `columns`.
    pub fn for_each_record(
        &self,
        from: i64,
        columns: bool,
        each: &mut dyn FnMut(RecordRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare(if columns {
                "SELECT seq, leaf_hash, record, ts, kind, call_id, principal_oid, tool, decision
                 FROM audit_records WHERE seq >= ?1 ORDER BY seq"
            } else {
                "SELECT seq, leaf_hash, record FROM audit_records WHERE seq >= ?1 ORDER BY seq"
            })
            .map_err(read_error)?;
        let mut rows = stmt.query([from]).map_err(read_error)?;
        while let Some(row) = rows.next().map_err(read_error)? {
            each(RecordRow {
                seq: row.get(0).map_err(read_error)?,
                leaf_hash: row.get(1).map_err(read_error)?,
                bytes: row.get(2).map_err(read_error)?,
                columns: if columns {
                    Some(Columns {
                        ts: row.get(3).map_err(read_error)?,
                        kind: row.get(4).map_err(read_error)?,
                        call_id: row.get(5).map_err(read_error)?,
                        principal_oid: row.get(6).map_err(read_error)?,
                        tool: row.get(7).map_err(read_error)?,
                        decision: row.get(8).map_err(read_error)?,
                    })
                } else {
                    None
                },
            })?;
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
            .prepare(&latest_of_kind_sql(kind))
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
        from: i64,
        each: &mut SeqVisitor<'_>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&records_of_kind_sql(kind))
            .map_err(read_error)?;
        let mut rows = stmt.query(params![kind, from]).map_err(read_error)?;
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
            .prepare(&open_intents_sql(kind))
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
        self.pairs(
            "risk_baselines",
            "SELECT principal, state FROM risk_baselines ORDER BY principal",
        )
    }

    /// Risk events with `id > after`, in `id` order, at most `limit`.
    pub fn risk_events_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        if !self.has_table("risk_events")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, event FROM risk_events WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(read_error)?;
        let rows = stmt
            .query_map(params![after, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(read_error)?;
        rows.collect::<Result<_, _>>().map_err(read_error)
    }

    /// The decoded facts of every JIT request (request id, serialized
    /// facts); none in a store written before facts were kept.
    pub fn approval_facts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.pairs(
            "approval_facts",
            "SELECT request_id, facts FROM approval_facts",
        )
    }

    /// The `(text, blob)` rows `sql` selects from `table`; none when an
    /// older store has no such table.
    fn pairs(&self, table: &str, sql: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if !self.has_table(table)? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(sql).map_err(read_error)?;
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

    /// The value of `(ns, key)` if present and unexpired at `now`.
    pub fn state_entry(
        &self,
        ns: &str,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.has_table("state")? {
            return Ok(None);
        }
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT value FROM state WHERE ns = ?1 AND key = ?2
                 AND (expires IS NULL OR expires >= ?3)",
            )
            .map_err(read_error)?;
        let mut rows = stmt
            .query_map(params![ns, key, now], |r| r.get(0))
            .map_err(read_error)?;
        rows.next().transpose().map_err(read_error)
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

    /// `sql` with `?1` the kind and `?2` a number.
    fn bound(sql: &str, kind: &str, n: i64) -> String {
        sql.replace("?1", &format!("'{kind}'"))
            .replace("?2", &n.to_string())
    }

    /// How SQLite would run `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
    }

    #[test]
    fn an_older_store_loses_the_indexes_no_query_uses_and_the_kind_queries_use_the_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A store as earlier versions made it: `ts` and every kind indexed.
            let old = Connection::open(&path).unwrap();
            old.execute_batch(SCHEMA).unwrap();
            old.execute_batch(
                "CREATE INDEX audit_records_ts ON audit_records(ts);
                 CREATE INDEX audit_records_kind ON audit_records(kind, seq);",
            )
            .unwrap();
        }
        let opened = open_writer(&path, Box::new(|_, _, _| {})).unwrap();
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT name FROM sqlite_master
                 WHERE type = 'index' AND tbl_name = 'audit_records' AND sql IS NOT NULL
                 ORDER BY name",
            )
            .unwrap();
        let indexes: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["audit_records_call", "audit_records_rare_kind"]);

        // Every query by a kind other than intent and outcome reads the
        // partial index, not the whole log.
        for sql in [
            bound(&latest_of_kind_sql("approval"), "approval", 10),
            bound(&records_of_kind_sql("approval"), "approval", 0),
            bound(&open_intents_sql("startup"), "startup", 0),
        ] {
            let plan = plan(&conn, &sql);
            assert!(plan.contains("audit_records_rare_kind"), "{sql}: {plan}");
        }
        drop(opened.store);
        opened.writer.join().unwrap();
    }

    #[test]
    fn queries_by_kind_find_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for (seq, kind) in ["intent", "approval", "outcome", "approval", "intent"]
            .iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO audit_records (seq, ts, kind, leaf_hash, record)
                 VALUES (?1, 't', ?2, x'00', x'00')",
                params![seq as i64, kind],
            )
            .unwrap();
        }
        let seqs = |sql: String, kind: &str| -> Vec<i64> {
            let mut stmt = conn.prepare(&bound(&sql, kind, 0)).unwrap();
            stmt.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(seqs(records_of_kind_sql("approval"), "approval"), [1, 3]);
        assert_eq!(seqs(records_of_kind_sql("intent"), "intent"), [0, 4]);
        assert_eq!(seqs(records_of_kind_sql("outcome"), "outcome"), [2]);
        let latest = |kind: &str| seqs(latest_of_kind_sql(kind).replace("?2", "1"), kind);
        assert_eq!(latest("outcome"), [2]);
        assert_eq!(latest("approval"), [3]);
        assert_eq!(latest("intent"), [4]);
    }
}
