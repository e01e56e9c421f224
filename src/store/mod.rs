//! The one seam for state (docs/ARCHITECTURE.md, storage). Two backends
//! keep the same tables with the same guarantees:
//!
//! * **SQLite** (`sqlite.rs`, the embedded default): one file in WAL mode
//!   with `synchronous=FULL`, written by one process.
//! * **PostgreSQL** (`postgres.rs`, `[store] url = "postgres://..."`): one
//!   database shared by several Warden replicas, its schema migrated at
//!   start, every commit flushed (`synchronous_commit = on`).
//!
//! Every write goes through one writer thread per process that
//! **group-commits** (`writer.rs`): appends that arrive while a transaction
//! is being made durable share the next one, and each caller is released
//! only once its batch has committed.
//!
//! The audit tables are append-only at the store (triggers abort any UPDATE
//! or DELETE). Sequence numbers are assigned by the writer in commit order
//! (not by a database sequence), so they are contiguous by construction;
//! the [`Sealer`] that a caller hands in turns its sequence number into the
//! record's bytes. On PostgreSQL the replicas share one sequence: each
//! transaction that appends locks the log's head row first.
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

/// The condition of the log's partial kind index, on both backends: every
/// kind but the two each call appends (an intent and an outcome), so that a
/// call's commit writes no page of it. Queries by another kind repeat it
/// (see [`per_call_kind`]): SQLite and PostgreSQL use a partial index only
/// when the query's own condition implies the index's.
macro_rules! rare_kinds {
    () => {
        "kind NOT IN ('intent', 'outcome')"
    };
}

/// True for the kinds the partial kind index leaves out.
fn per_call_kind(kind: &str) -> bool {
    matches!(kind, "intent" | "outcome")
}

pub mod postgres;
mod queue;
mod sqlite;
mod wal;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

/// Where the store is: a SQLite file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    /// A `postgres://` (or `postgresql://`) URL, as libpq takes it.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL is a PostgreSQL store;
    /// anything else is a SQLite file's path.
    pub fn parse(text: &str) -> Location {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Location::Postgres(text.to_owned())
        } else {
            Location::Sqlite(PathBuf::from(text))
        }
    }

    /// The SQLite file, if it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }
}

/// The path, or the URL without its password.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&postgres::redacted(url)),
        }
    }
}

impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Sqlite(path.clone())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Sqlite(path)
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

/// What walks `(seq, record bytes)` rows for a backend's reader.
type SeqVisitor<'a> = dyn FnMut(i64, &[u8]) -> Result<(), StoreError> + 'a;

/// Now, as the stores' `updated`/`created` columns keep it.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The four append-only triggers, by name (the verifier warns if one is gone).
pub const APPEND_ONLY_TRIGGERS: [&str; 4] = [
    "audit_records_no_update",
    "audit_records_no_delete",
    "audit_checkpoints_no_update",
    "audit_checkpoints_no_delete",
];

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store {store}: {reason}")]
    Open { store: String, reason: String },
    #[error("the store is not writable: {0}")]
    Write(String),
    #[error("a record could not be sealed: {0}")]
    Seal(String),
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("reading the store failed: {0}")]
    Read(String),
    /// A guarded append found its guard changed: another writer (another
    /// replica) got there first. Nothing was written.
    #[error("changed by another writer: {0}")]
    Conflict(String),
}

/// A compare-and-set on the `state` table that a guarded append commits
/// with its records, or not at all ([`Store::append_guarded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub ns: String,
    pub key: String,
    /// The value `(ns, key)` must hold now (`None`: absent).
    pub expected: Option<Vec<u8>>,
    /// The value it holds after.
    pub new: Vec<u8>,
}

/// The columns a record is stored and looked up by (`export` filters on
/// them). They are copies of what the signed record says: verification
/// reads them back and compares (see `Record::columns`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns {
    pub ts: String,
    pub kind: String,
    pub call_id: Option<String>,
    pub principal_oid: Option<String>,
    pub tool: Option<String>,
    /// The decision's effect.
    pub decision: Option<String>,
}

/// A record ready to be stored: its bytes and the columns it is indexed by.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub columns: Columns,
    pub leaf_hash: [u8; 32],
    pub bytes: Vec<u8>,
}

/// Turns the sequence number the writer assigns into the record to store.
pub type Sealer = Box<dyn FnOnce(u64) -> Result<Sealed, String> + Send>;

/// Called by the writer after every durable commit with the first sequence
/// number and the leaf hashes from there on, in order: first those other
/// writers (replicas) appended since this writer's last commit, then the
/// last `own` ones, which this commit made durable.
pub type CommitHook = Box<dyn FnMut(u64, &[[u8; 32]], usize) + Send>;

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
    /// The columns stored beside the bytes, when asked for.
    pub columns: Option<Columns>,
}

pub(crate) enum Job {
    Append {
        sealers: Vec<Sealer>,
        guard: Option<Guard>,
        /// Whether the append may wait a moment for the next job to share
        /// its commit ([`Store::append_lingering`]).
        linger: bool,
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
    RiskEvents {
        /// `(unix seconds, event)`.
        events: Vec<(i64, Vec<u8>)>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    PruneRiskEvents {
        before: i64,
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
    jobs: Arc<queue::Handle>,
    location: Location,
    /// On PostgreSQL, the reading connections this process shares.
    readers: Option<Arc<postgres::PgReaders>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location.to_string())
            .finish()
    }
}

/// What [`Store::open`] found.
#[derive(Debug)]
pub struct Opened {
    pub store: Store,
    /// The next sequence number (the number of records).
    pub next_seq: u64,
    pub writer: std::thread::JoinHandle<()>,
}

impl Store {
    /// Opens the store and starts its writer. A SQLite file is created if
    /// missing, set to WAL and `synchronous=FULL` (read back), and locked
    /// to this process; a PostgreSQL database has its schema migrated.
    pub fn open(location: impl Into<Location>, hook: CommitHook) -> Result<Opened, StoreError> {
        match location.into() {
            Location::Sqlite(path) => sqlite::open_writer(&path, hook),
            Location::Postgres(url) => postgres::open_writer(&url, hook),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    async fn send<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.0.submit(job(reply))?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Appends records; returns their sequence numbers once durable.
    pub async fn append(&self, sealers: Vec<Sealer>) -> Result<Vec<u64>, StoreError> {
        self.send(|reply| Job::Append {
            sealers,
            guard: None,
            linger: false,
            reply,
        })
        .await
    }

    /// Appends records no one waits on (a call's outcome, written after
    /// its answer); returns their sequence numbers once durable. When the
    /// writer has nothing else to commit, they wait up to
    /// `LINGER` (2 ms) for the next job and share its commit: the
    /// append right behind them (the next call's intent) then costs one
    /// fsync instead of waiting for theirs first.
    pub async fn append_lingering(&self, sealers: Vec<Sealer>) -> Result<Vec<u64>, StoreError> {
        self.send(|reply| Job::Append {
            sealers,
            guard: None,
            linger: true,
            reply,
        })
        .await
    }

    /// Appends records only if `guard` holds, and sets it in the same
    /// transaction: of several writers (replicas) that guard one key with
    /// the same expected value, exactly one appends; the others get
    /// [`StoreError::Conflict`] and write nothing.
    pub async fn append_guarded(
        &self,
        sealers: Vec<Sealer>,
        guard: Guard,
    ) -> Result<Vec<u64>, StoreError> {
        self.send(|reply| Job::Append {
            sealers,
            guard: Some(guard),
            linger: false,
            reply,
        })
        .await
    }

    /// Stores a checkpoint; returns once durable.
    pub async fn append_checkpoint(&self, row: CheckpointRow) -> Result<(), StoreError> {
        self.send(|reply| Job::Checkpoint { row, reply }).await
    }

    /// Inserts or replaces risk baselines (principal key, serialized
    /// state); returns once durable.
    pub async fn save_baselines(&self, rows: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        self.send(|reply| Job::SaveBaselines { rows, reply }).await
    }

    /// Stores the decoded facts of JIT request `request_id` (kept if they
    /// were stored before); returns once durable.
    /// Appends risk events (`(unix seconds, event)`) to the journal
    /// replicas learn from, numbered after every event already committed;
    /// returns once durable.
    pub async fn save_risk_events(&self, events: Vec<(i64, Vec<u8>)>) -> Result<(), StoreError> {
        self.send(|reply| Job::RiskEvents { events, reply }).await
    }

    /// Forgets risk events of calls before `before` (unix seconds).
    pub async fn prune_risk_events(&self, before: i64) -> Result<(), StoreError> {
        self.send(|reply| Job::PruneRiskEvents { before, reply })
            .await
    }

    pub async fn save_facts(&self, request_id: String, facts: Vec<u8>) -> Result<(), StoreError> {
        self.send(|reply| Job::SaveFacts {
            request_id,
            facts,
            reply,
        })
        .await
    }

    /// Applies a change to the `state` table; returns once durable.
    pub async fn change_state(&self, change: StateChange) -> Result<(), StoreError> {
        self.send(|reply| Job::State { change, reply }).await
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

    /// A read-only connection to the same store.
    pub fn reader(&self) -> Result<Reader, StoreError> {
        match &self.readers {
            Some(pool) => Ok(Reader {
                backend: ReadBackend::Postgres(pool.get()?),
            }),
            None => Reader::open(&self.location),
        }
    }

    /// Runs `read` on a reader of the store, off the async runtime (the
    /// readers block); on PostgreSQL on one of the pool's connections.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || read(&store.reader()?))
            .await
            .map_err(|e| StoreError::Read(format!("a store read failed: {e}")))?
    }

    /// How many reading connections this process may hold on PostgreSQL
    /// (`[store] readers`); nothing to set on SQLite, whose readers open
    /// the file.
    pub fn set_readers(&self, size: usize) {
        if let Some(pool) = &self.readers {
            pool.set_size(size);
        }
    }
}

/// Read-only access to a store: for verification, export, tail and
/// recovery. Never writes (a verifier must not change what it checks).
pub struct Reader {
    backend: ReadBackend,
}

enum ReadBackend {
    Sqlite(sqlite::SqliteReader),
    Postgres(postgres::PgReader),
}

/// Forwards a call to the backend's reader.
macro_rules! read {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &$self.backend {
            ReadBackend::Sqlite(r) => r.$method($($arg),*),
            ReadBackend::Postgres(r) => r.$method($($arg),*),
        }
    };
}

impl Reader {
    /// Opens a store to read. A SQLite file must exist and hold the audit
    /// tables; a PostgreSQL database must have been migrated by a Warden.
    pub fn open(location: impl Into<Location>) -> Result<Self, StoreError> {
        let backend = match location.into() {
            Location::Sqlite(path) => ReadBackend::Sqlite(sqlite::SqliteReader::open(&path)?),
            Location::Postgres(url) => ReadBackend::Postgres(postgres::PgReader::open(&url)?),
        };
        Ok(Reader { backend })
    }

    /// Calls `each` for every record with `seq >= from`, in `seq` order
    /// (without its indexed columns).
    pub fn for_each_record(
        &self,
        from: i64,
        mut each: impl FnMut(RecordRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read!(self.for_each_record(from, false, &mut each))
    }

    /// [`Reader::for_each_record`] with each record's indexed columns
    /// (verification compares them with the record).
    pub fn for_each_record_with_columns(
        &self,
        from: i64,
        mut each: impl FnMut(RecordRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read!(self.for_each_record(from, true, &mut each))
    }

    /// The bytes of every record of `kind`, in `seq` order.
    pub fn records_of_kind(
        &self,
        kind: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read!(self.records_of_kind_seq(kind, 0, &mut |_, bytes: &[u8]| each(bytes)))
    }

    /// The newest records of `kind`, newest first, at most `limit`:
    /// `(seq, bytes)`.
    pub fn latest_of_kind(
        &self,
        kind: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        read!(self.latest_of_kind(kind, limit))
    }

    /// Every record of call `call_id`, in order: `(seq, bytes)`.
    pub fn records_of_call(&self, call_id: &str) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        read!(self.records_of_call(call_id))
    }

    /// Calls `each` with the sequence number and bytes of every record of
    /// `kind`, in order.
    pub fn records_of_kind_seq(
        &self,
        kind: &str,
        each: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.records_of_kind_since(kind, 0, each)
    }

    /// Like [`Reader::records_of_kind_seq`], from sequence number `from`
    /// on (what another replica appended since).
    pub fn records_of_kind_since(
        &self,
        kind: &str,
        from: i64,
        mut each: impl FnMut(i64, &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        read!(self.records_of_kind_seq(kind, from, &mut each))
    }

    /// Every checkpoint, in the order they were stored.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        read!(self.checkpoints())
    }

    pub fn last_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        read!(self.last_checkpoint())
    }

    /// Record bytes of intents after the last record of `kind` that have no
    /// outcome (calls a crash interrupted).
    pub fn open_intents_since_last(&self, kind: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        read!(self.open_intents_since_last(kind))
    }

    /// The names of the append-only triggers present.
    pub fn triggers(&self) -> Result<Vec<String>, StoreError> {
        read!(self.triggers())
    }

    /// Every stored risk baseline (principal key, serialized state); none
    /// in a store written before baselines were kept.
    pub fn baselines(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        read!(self.baselines())
    }

    /// Risk events with `id > after`, in `id` order, at most `limit`:
    /// `(id, event)`.
    pub fn risk_events_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        read!(self.risk_events_since(after, limit))
    }

    /// The decoded facts of every JIT request (request id, serialized
    /// facts); none in a store written before facts were kept.
    pub fn approval_facts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        read!(self.approval_facts())
    }

    /// Every unexpired entry of namespace `ns` at `now`: `(key, value)`.
    pub fn state(
        &self,
        ns: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        read!(self.state(ns, now))
    }

    /// The value of `(ns, key)`, if present and unexpired at `now` (one
    /// keyed read: what a replica checks before it trusts shared state).
    pub fn state_entry(
        &self,
        ns: &str,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        read!(self.state_entry(ns, key, now))
    }

    /// The highest stored sequence number, if any.
    pub fn max_seq(&self) -> Result<Option<i64>, StoreError> {
        read!(self.max_seq())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use std::sync::{Arc, Mutex};

    fn sealer(text: &'static str) -> Sealer {
        Box::new(move |seq| {
            Ok(Sealed {
                columns: Columns {
                    ts: "2026-01-01T00:00:00Z".into(),
                    kind: "heartbeat".into(),
                    ..Columns::default()
                },
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
            Box::new(move |first, leaves, _| hook_seen.lock().unwrap().push((first, leaves.len()))),
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
        let again = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
        assert_eq!(again.next_seq, 100);
    }

    #[tokio::test]
    async fn a_lingering_append_is_durable_alone_and_numbered_before_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let opened = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
        let store = opened.store.clone();
        // Alone, it is committed once it has waited: its caller is answered.
        let alone = store.append_lingering(vec![sealer("outcome")]).await;
        assert_eq!(alone.unwrap(), vec![0]);
        // Followed by an append, it keeps its place in the log.
        let lingering = {
            let store = store.clone();
            tokio::spawn(async move { store.append_lingering(vec![sealer("outcome")]).await })
        };
        tokio::task::yield_now().await;
        let next = store.append(vec![sealer("intent")]).await.unwrap();
        let lingered = lingering.await.unwrap().unwrap();
        assert_eq!((lingered, next), (vec![1], vec![2]));
        drop(store);
        drop(opened.store);
        opened.writer.join().unwrap();
        let again = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
        assert_eq!(again.next_seq, 3);
    }

    #[tokio::test]
    async fn a_second_writer_is_refused_until_the_first_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let first = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
        let error = Store::open(&path, Box::new(|_, _, _| {}))
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
        Store::open(&path, Box::new(|_, _, _| {})).unwrap();
    }

    #[tokio::test]
    async fn a_failing_sealer_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path().join("w.db"), Box::new(|_, _, _| {})).unwrap();
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
        let opened = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
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
        let opened = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
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
        let again = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
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
        let stopped = Store {
            jobs: Arc::new(queue::Handle(Arc::new(queue::Queue::stopped()))),
            location: Location::Sqlite(PathBuf::from("gone.db")),
            readers: None,
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
        let opened = Store::open(&path, Box::new(|_, _, _| {})).unwrap();
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
        assert_eq!(
            reader.state_entry("s", "a", now).unwrap(),
            Some(b"2".to_vec())
        );
        assert_eq!(reader.state_entry("s", "b", now).unwrap(), None, "expired");
        assert_eq!(reader.state_entry("s", "c", now).unwrap(), None);
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
