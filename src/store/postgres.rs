//! The PostgreSQL backend (`[store] url = "postgres://..."`): one database
//! that several Warden replicas share.
//!
//! * **Driver**: `postgres`, the blocking face of `tokio-postgres`. The
//!   store's writer is a dedicated thread that group-commits on one
//!   connection (`writer.rs`), and readers are synchronous like SQLite's,
//!   so each owns one connection on its own thread; a pool would add
//!   nothing. Each such thread runs the driver's own small runtime, never
//!   the gateway's.
//! * **Schema**: versioned migrations (`migrations/postgres/`, embedded,
//!   applied by `refinery` at start under an advisory lock, so replicas
//!   starting together migrate once). A schema other than `public` is
//!   chosen the PostgreSQL way, in the URL:
//!   `?options=-c%20search_path%3Dwarden`.
//! * **Durability**: the writer's session runs with `synchronous_commit =
//!   on`, so a commit returns only once PostgreSQL has flushed it (and, with
//!   synchronous standbys configured, once they have it).
//! * **One log for all replicas**: a transaction that appends or
//!   checkpoints locks the `audit_head` row (`SELECT ... FOR UPDATE`),
//!   takes the next sequence numbers from it and moves it before commit.
//!   Replicas therefore append one contiguous sequence; each learns the
//!   others' leaves under the same lock. A checkpoint smaller than one
//!   already stored is not stored (a replica that appended nothing lately
//!   signs an older tree; the newer checkpoint covers it).
//! * **Failing closed**: a lost connection fails the transaction in flight
//!   (its callers get the error, nothing is half-written) and the next
//!   transaction connects again.
//! * **TLS**: `sslmode=require` in the URL; the server's certificate is
//!   verified (see [`connect`]).

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};

use super::queue::{Handle, Queue};
use super::writer::{Backend, Writer};
use super::{
    CheckpointRow, Columns, CommitHook, Guard, Location, Opened, RecordRow, Sealed, StateChange,
    Store, StoreError, now_text,
};
use super::{SeqVisitor, per_call_kind};

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// Connecting gives up after this long unless the URL says otherwise
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The advisory lock replicas take while migrating.
const MIGRATION_LOCK: i64 = 0x5761_7264_656e; // "Warden"
/// Rows a reader fetches per round trip when it walks the log.
const PAGE: i64 = 5_000;

/// `url` without its password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "a PostgreSQL URL that does not parse".into(),
    }
}

fn open_error(url: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Open {
        store: redacted(url),
        reason: reason.to_string(),
    }
}

fn write_error(e: postgres::Error) -> StoreError {
    StoreError::Write(describe(&e))
}

fn read_error(e: postgres::Error) -> StoreError {
    StoreError::Read(describe(&e))
}

/// The server's message when there is one, else the driver's.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("PostgreSQL: {}", db.message()),
        None if e.is_closed() => "PostgreSQL: the connection is closed".into(),
        None => {
            // The driver's own words, then why (a TLS certificate error,
            // a refused connection).
            let mut text = format!("PostgreSQL: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(&format!(": {cause_text}"));
                }
                source = cause.source();
            }
            text
        }
    }
}

/// Connects. With `sslmode=require` the connection is TLS and the server's
/// certificate is verified (chain and host name) against the system's
/// roots, or the roots in `SSL_CERT_FILE` / `SSL_CERT_DIR` when set;
/// without it (or with `prefer` or `disable`) there is no TLS. (The rate
/// limits' exchange between replicas, `src/limits/shared.rs`, connects
/// with it too.)
pub(crate) fn connect(url: &str) -> Result<Client, String> {
    let mut config = postgres::Config::from_str(url).map_err(|e| format!("bad URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let connected = match config.get_ssl_mode() {
        postgres::config::SslMode::Require => config.connect(tls()?),
        _ => config.connect(NoTls),
    };
    connected.map_err(|e| format!("cannot connect: {}", describe(&e)))
}

/// TLS for `sslmode=require`: rustls (aws-lc) with the native roots.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "sslmode=require, but no trusted root certificates were found (errors: {:?}); \
             set SSL_CERT_FILE to the server's CA",
            found.errors
        ));
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Applies the embedded migrations, one replica at a time.
fn migrate(client: &mut Client) -> Result<(), String> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| describe(&e))?;
    let result = embedded::migrations::runner()
        .run(client)
        .map(drop)
        .map_err(|e| {
            let mut reason = format!("migrating the schema failed: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                reason.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            reason
        });
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    result
}

/// Starts the writer thread: it connects, migrates and reads the log's head
/// before this returns.
pub(super) fn open_writer(url: &str, hook: CommitHook) -> Result<Opened, StoreError> {
    let (ready, started) = mpsc::sync_channel(1);
    // Only the writer thread commits: the client blocks on a runtime of
    // its own, which a caller's async task must not do.
    let queue = Arc::new(Queue::new(false));
    let runs = queue.clone();
    let writer_url = url.to_owned();
    let writer = std::thread::Builder::new()
        .name("warden-store-writer".into())
        .spawn(move || {
            let mut backend = Pg::new(writer_url);
            let head = backend.connect_and_migrate().and_then(|()| backend.head());
            let next_seq = match head {
                Ok(next_seq) => {
                    let _ = ready.send(Ok(next_seq));
                    next_seq
                }
                Err(reason) => {
                    let _ = ready.send(Err(reason));
                    return;
                }
            };
            runs.install(Box::new(Writer {
                backend,
                next_seq,
                hook,
            }));
            runs.run();
        })
        .map_err(|e| open_error(url, format!("cannot start the writer thread: {e}")))?;
    let next_seq = started
        .recv()
        .map_err(|_| open_error(url, "the writer thread stopped"))?
        .map_err(|reason| open_error(url, reason))?;
    Ok(Opened {
        store: Store {
            jobs: Arc::new(Handle(queue)),
            location: Location::Postgres(url.to_owned()),
            readers: Some(Arc::new(PgReaders::new(url))),
        },
        next_seq,
        writer,
    })
}

/// The writer's connection and its prepared statements.
struct Pg {
    url: String,
    /// Which process appended a record (`audit_records.writer`).
    instance: String,
    connection: Option<(Client, Statements)>,
}

struct Statements {
    lock_head: Statement,
    leaves: Statement,
    insert: Statement,
    move_head: Statement,
    checkpoint: Statement,
    baseline: Statement,
    lock_risk_head: Statement,
    risk_events: Statement,
    prune_risk_events: Statement,
    facts: Statement,
    put_state: Statement,
    delete_state: Statement,
    purge_state: Statement,
    insert_guard: Statement,
    update_guard: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Statements, postgres::Error> {
        Ok(Statements {
            lock_head: client.prepare("SELECT next_seq FROM audit_head WHERE id = 1 FOR UPDATE")?,
            leaves: client.prepare(
                "SELECT leaf_hash FROM audit_records WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            )?,
            insert: client.prepare(
                "INSERT INTO audit_records
                 (seq, ts, kind, call_id, principal_oid, tool, decision, leaf_hash, record, writer)
                 SELECT *, $10 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::text[], $8::bytea[],
                                          $9::bytea[])",
            )?,
            move_head: client.prepare("UPDATE audit_head SET next_seq = $1 WHERE id = 1")?,
            checkpoint: client.prepare(
                "INSERT INTO audit_checkpoints (size, root, frontier, note, created)
                 SELECT $1, $2, $3, $4, $5
                 WHERE NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE size > $1)",
            )?,
            baseline: client.prepare(
                "INSERT INTO risk_baselines (principal, state, updated) VALUES ($1, $2, $3)
                 ON CONFLICT (principal) DO UPDATE
                 SET state = excluded.state, updated = excluded.updated",
            )?,
            lock_risk_head: client
                .prepare("SELECT next_id FROM risk_head WHERE id = 1 FOR UPDATE")?,
            risk_events: client.prepare(
                "WITH added AS (
                     INSERT INTO risk_events (id, at, event)
                     SELECT $1 + ordinality - 1, at, event
                     FROM unnest($2::bigint[], $3::bytea[]) WITH ORDINALITY AS e(at, event)
                 )
                 UPDATE risk_head SET next_id = $1 + cardinality($2::bigint[]) WHERE id = 1",
            )?,
            prune_risk_events: client.prepare("DELETE FROM risk_events WHERE at < $1")?,
            facts: client.prepare(
                "INSERT INTO approval_facts (request_id, facts, created) VALUES ($1, $2, $3)
                 ON CONFLICT (request_id) DO NOTHING",
            )?,
            put_state: client.prepare(
                "INSERT INTO state (ns, key, value, expires) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires = excluded.expires",
            )?,
            delete_state: client.prepare("DELETE FROM state WHERE ns = $1 AND key = $2")?,
            purge_state: client.prepare(
                "DELETE FROM state WHERE ns = $1 AND expires IS NOT NULL AND expires < $2",
            )?,
            insert_guard: client.prepare(
                "INSERT INTO state (ns, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (ns, key) DO NOTHING",
            )?,
            update_guard: client.prepare(
                "UPDATE state SET value = $3 WHERE ns = $1 AND key = $2 AND value = $4",
            )?,
        })
    }
}

impl Pg {
    fn new(url: String) -> Pg {
        Pg {
            url,
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            connection: None,
        }
    }

    fn connect_and_migrate(&mut self) -> Result<(), String> {
        let mut client = connect(&self.url)?;
        migrate(&mut client)?;
        self.connection = Some(self.prepared(client)?);
        Ok(())
    }

    /// Sets the session up: durable commits, and this writer's liveness
    /// lock (a session advisory lock on its instance id, held while the
    /// connection lives; see [`PgReader::open_intents_since_last`]).
    fn prepared(&self, mut client: Client) -> Result<(Client, Statements), String> {
        client
            .batch_execute("SET synchronous_commit = on")
            .map_err(|e| describe(&e))?;
        client
            .execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))",
                &[&self.instance],
            )
            .map_err(|e| describe(&e))?;
        let statements = Statements::prepare(&mut client).map_err(|e| describe(&e))?;
        Ok((client, statements))
    }

    /// The log's next sequence number.
    fn head(&mut self) -> Result<u64, String> {
        let (client, _) = self.connection.as_mut().ok_or("not connected")?;
        let row = client
            .query_one("SELECT next_seq FROM audit_head WHERE id = 1", &[])
            .map_err(|e| describe(&e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn live(&mut self) -> Result<&mut (Client, Statements), StoreError> {
        if self
            .connection
            .as_ref()
            .is_none_or(|(client, _)| client.is_closed())
        {
            self.connection = None;
            let client = connect(&self.url).map_err(StoreError::Write)?;
            self.connection = Some(self.prepared(client).map_err(StoreError::Write)?);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Runs `work` on a live connection; an error that means the
    /// connection is gone drops it, so the next transaction connects again.
    fn run<T>(
        &mut self,
        work: impl FnOnce(&mut Client, &Statements) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let (client, statements) = self.live()?;
        let result = work(client, statements);
        if let Err(e) = &result
            && connection_lost(e)
        {
            self.connection = None;
        }
        result.map_err(write_error)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.run(|client, _| client.batch_execute(sql))
    }

    fn execute(
        &mut self,
        statement: impl FnOnce(&Statements) -> &Statement,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.run(|client, statements| client.execute(statement(statements), params))
    }
}

/// Whether `e` means the session is over (the server went away, shut the
/// session down, or the network failed), as opposed to one statement
/// failing.
fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => {
            let class = &db.code().code()[..2];
            matches!(db.severity(), "FATAL" | "PANIC") || class == "08" || class == "57"
        }
        // Not the server's answer: I/O or protocol trouble.
        None => true,
    }
}

impl Backend for Pg {
    fn begin(&mut self) -> Result<(), StoreError> {
        self.batch("BEGIN")
    }

    fn lock_log(&mut self, known: u64) -> Result<(u64, Vec<[u8; 32]>), StoreError> {
        let head = self
            .run(|client, statements| client.query_one(&statements.lock_head, &[]))?
            .get::<_, i64>(0) as u64;
        if head < known {
            return Err(StoreError::Write(format!(
                "the log's head is at {head} but this replica has seen {known} records: \
                 records were removed from the store"
            )));
        }
        if head == known {
            return Ok((head, Vec::new()));
        }
        let rows = self.run(|client, statements| {
            client.query(&statements.leaves, &[&(known as i64), &(head as i64)])
        })?;
        if rows.len() as u64 != head - known {
            return Err(StoreError::Write(format!(
                "records {known}..{head} should be in the store, {} are",
                rows.len()
            )));
        }
        let mut leaves = Vec::with_capacity(rows.len());
        for row in rows {
            let hash: &[u8] = row.get(0);
            leaves.push(
                hash.try_into()
                    .map_err(|_| StoreError::Write("a stored leaf hash is not 32 bytes".into()))?,
            );
        }
        Ok((head, leaves))
    }

    fn insert_records(&mut self, first: u64, records: &[Sealed]) -> Result<(), StoreError> {
        let seqs: Vec<i64> = (first..).take(records.len()).map(|s| s as i64).collect();
        let column = |f: fn(&Sealed) -> Option<&str>| -> Vec<Option<&str>> {
            records.iter().map(f).collect()
        };
        let ts = column(|r| Some(r.columns.ts.as_str()));
        let kind = column(|r| Some(r.columns.kind.as_str()));
        let call_id = column(|r| r.columns.call_id.as_deref());
        let principal = column(|r| r.columns.principal_oid.as_deref());
        let tool = column(|r| r.columns.tool.as_deref());
        let decision = column(|r| r.columns.decision.as_deref());
        let leaves: Vec<&[u8]> = records.iter().map(|r| &r.leaf_hash[..]).collect();
        let bytes: Vec<&[u8]> = records.iter().map(|r| &r.bytes[..]).collect();
        let instance = self.instance.clone();
        self.execute(
            |s| &s.insert,
            &[
                &seqs, &ts, &kind, &call_id, &principal, &tool, &decision, &leaves, &bytes,
                &instance,
            ],
        )
        .map(drop)
    }

    fn move_head(&mut self, next: u64) -> Result<(), StoreError> {
        self.execute(|s| &s.move_head, &[&(next as i64)]).map(drop)
    }

    fn insert_checkpoint(&mut self, row: &CheckpointRow) -> Result<(), StoreError> {
        self.execute(
            |s| &s.checkpoint,
            &[
                &(row.size as i64),
                &row.root,
                &row.frontier,
                &row.note,
                &row.created,
            ],
        )
        .map(drop)
    }

    fn upsert_baselines(&mut self, rows: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        let updated = now_text();
        for (principal, state) in rows {
            self.execute(|s| &s.baseline, &[principal, state, &updated])?;
        }
        Ok(())
    }

    fn insert_risk_events(&mut self, events: &[(i64, Vec<u8>)]) -> Result<(), StoreError> {
        // The head row's lock, held until commit, makes replicas' events
        // visible in id order.
        let next: i64 = self
            .run(|client, statements| client.query_one(&statements.lock_risk_head, &[]))?
            .get(0);
        let at: Vec<i64> = events.iter().map(|(at, _)| *at).collect();
        let bytes: Vec<&[u8]> = events.iter().map(|(_, e)| &e[..]).collect();
        self.execute(|s| &s.risk_events, &[&next, &at, &bytes])
            .map(drop)
    }

    fn prune_risk_events(&mut self, before: i64) -> Result<(), StoreError> {
        self.execute(|s| &s.prune_risk_events, &[&before]).map(drop)
    }

    fn insert_facts(&mut self, request_id: &str, facts: &[u8]) -> Result<(), StoreError> {
        self.execute(|s| &s.facts, &[&request_id, &facts, &now_text()])
            .map(drop)
    }

    fn apply_state(&mut self, change: &StateChange) -> Result<(), StoreError> {
        match change {
            StateChange::Put {
                ns,
                key,
                value,
                expires,
            } => self.execute(|s| &s.put_state, &[ns, key, value, expires]),
            StateChange::Delete { ns, key } => self.execute(|s| &s.delete_state, &[ns, key]),
            StateChange::Purge { ns, now } => self.execute(|s| &s.purge_state, &[ns, now]),
        }
        .map(drop)
    }

    fn compare_and_set(&mut self, guard: &Guard) -> Result<(), StoreError> {
        // Under READ COMMITTED a racing UPDATE waits for the row and
        // re-checks `value`; a racing INSERT waits and then does nothing.
        let changed = match &guard.expected {
            None => self.execute(|s| &s.insert_guard, &[&guard.ns, &guard.key, &guard.new])?,
            Some(expected) => self.execute(
                |s| &s.update_guard,
                &[&guard.ns, &guard.key, &guard.new, expected],
            )?,
        };
        if changed == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{}/{}", guard.ns, guard.key)))
        }
    }

    fn savepoint(&mut self) -> Result<(), StoreError> {
        self.batch("SAVEPOINT job")
    }

    fn release(&mut self) -> Result<(), StoreError> {
        self.batch("RELEASE SAVEPOINT job")
    }

    fn rollback_to_savepoint(&mut self) {
        let _ = self.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job");
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) {
        if let Some((client, _)) = self.connection.as_mut()
            && !client.is_closed()
        {
            let _ = client.batch_execute("ROLLBACK");
        }
    }
}

type Work = Box<dyn FnOnce(&mut Client) + Send>;

/// A connection for reading only.
fn read_only(url: &str) -> Result<Client, String> {
    let mut client = connect(url)?;
    client
        .batch_execute("SET default_transaction_read_only = on")
        .map_err(|e| describe(&e))?;
    Ok(client)
}

/// Readers a writer's process shares on PostgreSQL (`[store] readers`,
/// default [`DEFAULT_READERS`]): each a connection on its own thread, opened
/// when first needed; [`Store::reader`] hands them out in turn, so reading
/// never opens a connection per query and a replica holds at most this
/// many reading connections (plus its writer's).
pub(super) struct PgReaders {
    url: String,
    size: AtomicUsize,
    open: Mutex<Vec<PgReader>>,
    next: AtomicUsize,
}

/// Reading connections per replica unless `[store] readers` says otherwise.
pub const DEFAULT_READERS: usize = 4;

impl PgReaders {
    pub(super) fn new(url: &str) -> PgReaders {
        PgReaders {
            url: url.to_owned(),
            size: AtomicUsize::new(DEFAULT_READERS),
            open: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    pub(super) fn set_size(&self, size: usize) {
        self.size.store(size.max(1), Ordering::Relaxed);
    }

    /// A reader: a new connection while fewer than the pool's size are
    /// open, else the next open one in turn.
    pub(super) fn get(&self) -> Result<PgReader, StoreError> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.len() < self.size.load(Ordering::Relaxed) {
            let reader = PgReader::open(&self.url)?;
            open.push(reader.clone());
            return Ok(reader);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % open.len();
        Ok(open[i].clone())
    }
}

/// A read-only view of a PostgreSQL store: one connection on its own thread
/// (the driver must not run inside the gateway's runtime), asked one query
/// at a time. It runs every query in a read-only transaction.
#[derive(Clone)]
pub(super) struct PgReader {
    work: mpsc::Sender<Work>,
}

impl PgReader {
    pub(super) fn open(url: &str) -> Result<PgReader, StoreError> {
        let (ready, opened) = mpsc::sync_channel(1);
        let (work, queue) = mpsc::channel::<Work>();
        let reader_url = url.to_owned();
        std::thread::Builder::new()
            .name("warden-store-reader".into())
            .spawn(move || {
                let client = read_only(&reader_url).and_then(|mut client| {
                    let found: i64 = client
                        .query_one(
                            "SELECT count(*) FROM information_schema.tables
                             WHERE table_schema = current_schema()
                               AND table_name IN ('audit_records', 'audit_checkpoints', 'audit_head')",
                            &[],
                        )
                        .map_err(|e| describe(&e))?
                        .get(0);
                    if found != 3 {
                        return Err("not a Warden store (no audit tables in the current schema; \
                                    start a Warden on it first, which creates them)"
                            .to_owned());
                    }
                    Ok(client)
                });
                let mut client = match client {
                    Ok(client) => {
                        let _ = ready.send(Ok(()));
                        client
                    }
                    Err(reason) => {
                        let _ = ready.send(Err(reason));
                        return;
                    }
                };
                while let Ok(work) = queue.recv() {
                    // A connection the server closed (a restart, a
                    // failover) is made again before the next query; if
                    // that fails, the query's caller gets an error.
                    if client.is_closed() {
                        match read_only(&reader_url) {
                            Ok(again) => client = again,
                            Err(reason) => {
                                tracing::warn!(target: "warden::store", %reason, "a store reader cannot reconnect");
                                continue;
                            }
                        }
                    }
                    work(&mut client);
                }
            })
            .map_err(|e| open_error(url, format!("cannot start a reader thread: {e}")))?;
        opened
            .recv()
            .map_err(|_| open_error(url, "the reader thread stopped"))?
            .map_err(|reason| open_error(url, reason))?;
        Ok(PgReader { work })
    }

    /// Runs `query` on the reader's connection and waits for its answer.
    fn ask<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.work
            .send(Box::new(move |client| {
                let _ = reply.send(query(client).map_err(read_error));
            }))
            .map_err(|_| StoreError::Read("the reader's connection has closed".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Read("the reader's connection has closed".into()))?
    }

    fn rows<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn postgres::types::ToSql + Sync + Send>>,
        map: fn(&postgres::Row) -> T,
    ) -> Result<Vec<T>, StoreError> {
        self.ask(move |client| {
            let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as _).collect();
            let mut rows = client.query_raw(sql, refs)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(map(&row));
            }
            Ok(out)
        })
    }

    /// Walks `(seq, ...)` rows with `seq >= from` a page at a time.
    fn paged<T: Send + 'static>(
        &self,
        sql: &'static str,
        mut from: i64,
        key: Option<String>,
        map: fn(&postgres::Row) -> (i64, T),
        each: &mut dyn FnMut(i64, T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        loop {
            let mut params: Vec<Box<dyn postgres::types::ToSql + Sync + Send>> =
                vec![Box::new(from), Box::new(PAGE)];
            if let Some(key) = &key {
                params.push(Box::new(key.clone()));
            }
            let page = self.rows(sql, params, map)?;
            let done = (page.len() as i64) < PAGE;
            for (seq, item) in page {
                from = seq + 1;
                each(seq, item)?;
            }
            if done {
                return Ok(());
            }
        }
    }

    pub(super) fn for_each_record(
        &self,
        from: i64,
        columns: bool,
        each: &mut dyn FnMut(RecordRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        type Item = (Vec<u8>, Vec<u8>, Option<Columns>);
        type Map = fn(&postgres::Row) -> (i64, Item);
        let (sql, map): (&'static str, Map) = if columns {
            (
                "SELECT seq, leaf_hash, record, ts, kind, call_id, principal_oid, tool, decision
                 FROM audit_records WHERE seq >= $1 ORDER BY seq LIMIT $2",
                |r| {
                    let columns = Columns {
                        ts: r.get(3),
                        kind: r.get(4),
                        call_id: r.get(5),
                        principal_oid: r.get(6),
                        tool: r.get(7),
                        decision: r.get(8),
                    };
                    (r.get(0), (r.get(1), r.get(2), Some(columns)))
                },
            )
        } else {
            (
                "SELECT seq, leaf_hash, record FROM audit_records
                 WHERE seq >= $1 ORDER BY seq LIMIT $2",
                |r| (r.get(0), (r.get(1), r.get(2), None)),
            )
        };
        self.paged(
            sql,
            from,
            None,
            map,
            &mut |seq, (leaf_hash, bytes, columns)| {
                each(RecordRow {
                    seq,
                    leaf_hash,
                    bytes,
                    columns,
                })
            },
        )
    }

    pub(super) fn records_of_kind_seq(
        &self,
        kind: &str,
        from: i64,
        each: &mut SeqVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.paged(
            records_of_kind_sql(kind),
            from,
            Some(kind.to_owned()),
            |r| (r.get(0), r.get::<_, Vec<u8>>(1)),
            &mut |seq, bytes: Vec<u8>| each(seq, &bytes),
        )
    }

    pub(super) fn latest_of_kind(
        &self,
        kind: &str,
        limit: usize,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.rows(
            latest_of_kind_sql(kind),
            vec![Box::new(kind.to_owned()), Box::new(limit as i64)],
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn records_of_call(&self, call_id: &str) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.rows(
            "SELECT seq, record FROM audit_records WHERE call_id = $1 ORDER BY seq",
            vec![Box::new(call_id.to_owned())],
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        self.rows(
            "SELECT id, size, root, frontier, note, created FROM audit_checkpoints ORDER BY id",
            Vec::new(),
            checkpoint_row,
        )
    }

    pub(super) fn last_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        Ok(self
            .rows(
                "SELECT id, size, root, frontier, note, created FROM audit_checkpoints
                 ORDER BY id DESC LIMIT 1",
                Vec::new(),
                checkpoint_row,
            )?
            .pop())
    }

    /// On a log replicas share, "since the last start" is no test: another
    /// replica's calls may be in flight. An intent is interrupted when it
    /// has no outcome and the process that appended it (`writer`) no
    /// longer holds its liveness lock: it stopped, or lost its connection
    /// (`_kind` is not needed).
    pub(super) fn open_intents_since_last(&self, _kind: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.rows(
            "SELECT i.record FROM audit_records i
             WHERE i.kind = 'intent'
               AND NOT EXISTS (SELECT 1 FROM audit_records o
                               WHERE o.call_id = i.call_id AND o.kind = 'outcome')
               AND NOT EXISTS (
                   SELECT 1 FROM pg_locks l
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                     AND l.classid::bigint = ((hashtextextended(i.writer, 0) >> 32) & 4294967295)
                     AND l.objid::bigint = (hashtextextended(i.writer, 0) & 4294967295))
             ORDER BY i.seq",
            Vec::new(),
            |r| r.get(0),
        )
    }

    /// The append-only triggers present and enabled.
    pub(super) fn triggers(&self) -> Result<Vec<String>, StoreError> {
        self.rows(
            "SELECT t.tgname::text FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND c.relname IN ('audit_records', 'audit_checkpoints')
               AND t.tgname::text = ANY($1)
             ORDER BY 1",
            vec![Box::new(
                super::APPEND_ONLY_TRIGGERS.map(str::to_owned).to_vec(),
            )],
            |r| r.get(0),
        )
    }

    pub(super) fn baselines(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rows(
            "SELECT principal, state FROM risk_baselines ORDER BY principal",
            Vec::new(),
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn risk_events_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.rows(
            "SELECT id, event FROM risk_events WHERE id > $1 ORDER BY id LIMIT $2",
            vec![Box::new(after), Box::new(limit)],
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn approval_facts(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.rows(
            "SELECT request_id, facts FROM approval_facts",
            Vec::new(),
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn state(
        &self,
        ns: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.rows(
            "SELECT key, value FROM state WHERE ns = $1 AND (expires IS NULL OR expires >= $2)
             ORDER BY key",
            vec![Box::new(ns.to_owned()), Box::new(now)],
            |r| (r.get(0), r.get(1)),
        )
    }

    pub(super) fn state_entry(
        &self,
        ns: &str,
        key: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let now = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        Ok(self
            .rows(
                "SELECT value FROM state WHERE ns = $1 AND key = $2
                 AND (expires IS NULL OR expires >= $3)",
                vec![
                    Box::new(ns.to_owned()),
                    Box::new(key.to_owned()),
                    Box::new(now),
                ],
                |r| r.get(0),
            )?
            .pop())
    }

    pub(super) fn max_seq(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .rows("SELECT max(seq) FROM audit_records", Vec::new(), |r| {
                r.get(0)
            })?
            .pop()
            .flatten())
    }
}

fn checkpoint_row(r: &postgres::Row) -> CheckpointRow {
    CheckpointRow {
        id: r.get(0),
        size: r.get::<_, i64>(1) as u64,
        root: r.get(2),
        frontier: r.get(3),
        note: r.get(4),
        created: r.get(5),
    }
}

/// Records of `kind` from `$1` on, in order, `$2` at most (`$3` the kind).
fn records_of_kind_sql(kind: &str) -> &'static str {
    if per_call_kind(kind) {
        "SELECT seq, record FROM audit_records
         WHERE seq >= $1 AND kind = $3 ORDER BY seq LIMIT $2"
    } else {
        concat!(
            "SELECT seq, record FROM audit_records
             WHERE seq >= $1 AND kind = $3 AND ",
            rare_kinds!(),
            " ORDER BY seq LIMIT $2"
        )
    }
}

/// The newest records of `kind` (`$1`), newest first, `$2` at most.
fn latest_of_kind_sql(kind: &str) -> &'static str {
    if per_call_kind(kind) {
        "SELECT seq, record FROM audit_records WHERE kind = $1 ORDER BY seq DESC LIMIT $2"
    } else {
        concat!(
            "SELECT seq, record FROM audit_records WHERE kind = $1 AND ",
            rare_kinds!(),
            " ORDER BY seq DESC LIMIT $2"
        )
    }
}

/// A schema of its own in a PostgreSQL database, dropped (with everything
/// in it) when this is dropped: for tests and benchmarks that must not
/// share state. `url()` is the store URL that uses it.
pub struct ScratchSchema {
    admin: String,
    name: String,
}

impl ScratchSchema {
    /// Creates `warden_<random>` in the database at `admin` (a
    /// `postgres://` URL whose user may create schemas).
    pub fn create(admin: &str) -> Result<ScratchSchema, String> {
        let name = format!("warden_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE SCHEMA {name}");
        on_own_thread(admin, sql)?;
        Ok(ScratchSchema {
            admin: admin.to_owned(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store URL: `admin` with the schema first on the search path,
    /// and the schema's name as the connections' `application_name` (so
    /// that a test can find them in `pg_stat_activity`).
    pub fn url(&self) -> String {
        let separator = if self.admin.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{name}&application_name={name}",
            self.admin,
            name = self.name
        )
    }

    /// Runs `sql` (one or more statements) in the schema, as the admin
    /// user: what an operator with `psql` could do.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        on_own_thread(&self.url(), sql.to_owned())
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(error) = on_own_thread(&self.admin, sql) {
            tracing::warn!(schema = %self.name, %error, "could not drop a scratch schema");
        }
    }
}

/// Runs `sql` on a new connection on a thread of its own (callable from
/// inside an async runtime).
fn on_own_thread(url: &str, sql: String) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = connect(&url)?;
        client.batch_execute(&sql).map_err(|e| describe(&e))
    })
    .join()
    .map_err(|_| "the thread running SQL panicked".to_owned())?
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::{APPEND_ONLY_TRIGGERS, Reader, Sealer, Store};

    /// The local server (tests here create and drop their own schemas).
    pub(crate) fn admin_url() -> String {
        std::env::var("WARDEN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    fn scratch() -> ScratchSchema {
        ScratchSchema::create(&admin_url()).expect("PostgreSQL at 127.0.0.1:5432 (database test)")
    }

    fn sealer(text: &'static str) -> Sealer {
        Box::new(move |seq| {
            Ok(Sealed {
                columns: Columns {
                    ts: "2026-01-01T00:00:00Z".into(),
                    kind: if text == "intent" {
                        "intent"
                    } else {
                        "heartbeat"
                    }
                    .into(),
                    call_id: Some(format!("call-{seq}")),
                    ..Columns::default()
                },
                leaf_hash: [seq as u8; 32],
                bytes: format!("{seq}:{text}").into_bytes(),
            })
        })
    }

    type Seen = Arc<Mutex<Vec<(u64, Vec<[u8; 32]>)>>>;

    fn open(url: &str) -> (crate::store::Opened, Seen) {
        let seen: Seen = Arc::default();
        let hook_seen = seen.clone();
        let opened = Store::open(
            Location::Postgres(url.to_owned()),
            Box::new(move |first, leaves, _| {
                hook_seen.lock().unwrap().push((first, leaves.to_vec()))
            }),
        )
        .unwrap();
        (opened, seen)
    }

    /// The leaves a hook saw, checked to be contiguous from `from`.
    fn contiguous(seen: &Seen, from: u64) -> Vec<[u8; 32]> {
        let mut next = from;
        let mut all = Vec::new();
        for (first, leaves) in seen.lock().unwrap().iter() {
            assert_eq!(*first, next, "the hook skipped or repeated records");
            next += leaves.len() as u64;
            all.extend_from_slice(leaves);
        }
        all
    }

    #[tokio::test]
    async fn replicas_append_one_contiguous_log_and_each_sees_all_of_it() {
        let schema = scratch();
        let (a, seen_a) = open(&schema.url());
        let (b, seen_b) = open(&schema.url());
        assert_eq!((a.next_seq, b.next_seq), (0, 0));
        let mut tasks = Vec::new();
        for i in 0..40 {
            let store = if i % 2 == 0 { &a.store } else { &b.store }.clone();
            tasks.push(tokio::spawn(async move {
                store.append(vec![sealer("x"), sealer("y")]).await.unwrap()
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let seqs = task.await.unwrap();
            assert_eq!(seqs[1], seqs[0] + 1, "one caller's records are adjacent");
            all.extend(seqs);
        }
        all.sort();
        assert_eq!(all, (0..80).collect::<Vec<_>>());
        // Each replica's hook saw every leaf once the other appended after it.
        b.store.append(vec![sealer("last")]).await.unwrap();
        a.store.append(vec![sealer("last")]).await.unwrap();
        let expected: Vec<[u8; 32]> = (0..82u64).map(|s| [s as u8; 32]).collect();
        assert_eq!(contiguous(&seen_a, 0), expected);
        assert_eq!(contiguous(&seen_b, 0)[..81], expected[..81]);
        let reader = Reader::open(Location::Postgres(schema.url())).unwrap();
        assert_eq!(reader.max_seq().unwrap(), Some(81));
        let mut walked = 0;
        reader
            .for_each_record(10, |row| {
                assert_eq!(row.seq, 10 + walked);
                walked += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(walked, 72);
        for opened in [a, b] {
            drop(opened.store);
            opened.writer.join().unwrap();
        }
        let (again, _) = open(&schema.url());
        assert_eq!(again.next_seq, 82);
    }

    #[tokio::test]
    async fn a_failing_sealer_fails_alone_and_its_numbers_are_reused() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        let bad: Sealer = Box::new(|_| Err("cannot encode".into()));
        let (a, b) = tokio::join!(
            opened.store.append(vec![sealer("x"), bad]),
            opened.store.append(vec![sealer("y")])
        );
        assert!(matches!(a, Err(StoreError::Seal(_))));
        assert_eq!(b.unwrap(), vec![0]);
        let reader = opened.store.reader().unwrap();
        assert_eq!(reader.max_seq().unwrap(), Some(0));
    }

    #[tokio::test]
    async fn sql_cannot_update_delete_or_truncate_the_log_unless_triggers_are_disabled() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        opened.store.append(vec![sealer("x")]).await.unwrap();
        for sql in [
            "UPDATE audit_records SET record = '\\x00'",
            "DELETE FROM audit_records",
            "TRUNCATE audit_records",
            "TRUNCATE audit_checkpoints",
        ] {
            let error = schema.execute(sql).unwrap_err();
            assert!(error.contains("append-only"), "{sql}: {error}");
        }
        let reader = opened.store.reader().unwrap();
        let mut expected = APPEND_ONLY_TRIGGERS.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(reader.triggers().unwrap(), expected);
        // A superuser can disable a trigger; the reader no longer counts it.
        schema
            .execute("ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update")
            .unwrap();
        assert!(
            !reader
                .triggers()
                .unwrap()
                .contains(&"audit_records_no_update".to_owned())
        );
    }

    /// The first column (text) of each row `sql` returns, on a connection
    /// of its own whose planner avoids sequential scans where it can (the
    /// tables here are too small for an index to pay otherwise).
    fn texts(url: &str, sql: String) -> Vec<String> {
        let url = url.to_owned();
        std::thread::spawn(move || {
            let mut client = connect(&url).unwrap();
            client.batch_execute("SET enable_seqscan = off").unwrap();
            let rows = client.query(sql.as_str(), &[]).unwrap();
            rows.iter().map(|r| r.get::<_, String>(0)).collect()
        })
        .join()
        .unwrap()
    }

    #[tokio::test]
    async fn the_log_keeps_only_the_indexes_its_queries_read_and_they_read_them() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        opened.store.append(vec![sealer("intent")]).await.unwrap();
        let indexes = texts(
            &schema.url(),
            format!(
                "SELECT indexname::text FROM pg_indexes
                 WHERE schemaname = '{}' AND tablename = 'audit_records' ORDER BY indexname",
                schema.name()
            ),
        );
        assert_eq!(
            indexes,
            [
                "audit_records_call",
                "audit_records_pkey",
                "audit_records_rare_kind"
            ]
        );
        for sql in [
            records_of_kind_sql("approval")
                .replace("$1", "0")
                .replace("$2", "100")
                .replace("$3", "'approval'"),
            latest_of_kind_sql("approval")
                .replace("$1", "'approval'")
                .replace("$2", "10"),
        ] {
            let plan = texts(&schema.url(), format!("EXPLAIN {sql}")).join("\n");
            assert!(plan.contains("audit_records_rare_kind"), "{sql}:\n{plan}");
        }
        // The kinds the index leaves out are still found.
        let reader = opened.store.reader().unwrap();
        let mut intents = Vec::new();
        reader
            .records_of_kind_seq("intent", |seq, _| {
                intents.push(seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(intents, [0]);
        assert_eq!(reader.latest_of_kind("intent", 5).unwrap().len(), 1);
        assert!(reader.latest_of_kind("approval", 5).unwrap().is_empty());
    }

    #[tokio::test]
    async fn risk_events_of_two_writers_share_one_order_and_old_ones_are_pruned() {
        let schema = scratch();
        let (a, _) = open(&schema.url());
        let (b, _) = open(&schema.url());
        let store = |i: i32| if i % 2 == 0 { &a.store } else { &b.store };
        // Ten old events one after another, then the two writers append
        // thirty concurrently, several to a batch.
        for i in 0..10 {
            store(i)
                .save_risk_events(vec![(100, format!("e{i}").into_bytes())])
                .await
                .unwrap();
        }
        let writes =
            (10..40).map(|i| store(i).save_risk_events(vec![(5000, format!("e{i}").into_bytes())]));
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
        let reader = a.store.reader().unwrap();
        let all = reader.risk_events_since(-1, 1000).unwrap();
        let ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (0..40).collect::<Vec<_>>(), "one gapless order");
        let mut bodies: Vec<String> = all
            .iter()
            .map(|(_, e)| String::from_utf8(e.clone()).unwrap())
            .collect();
        bodies.sort();
        let mut expected: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
        expected.sort();
        assert_eq!(bodies, expected);
        // Paging: after an id, at most a limit.
        let page = reader.risk_events_since(9, 5).unwrap();
        assert_eq!(
            page.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [10, 11, 12, 13, 14]
        );
        // Events of calls before 1000 go; ids are never reused.
        b.store.prune_risk_events(1000).await.unwrap();
        b.store
            .save_risk_events(vec![(6000, b"late".to_vec())])
            .await
            .unwrap();
        let left = reader.risk_events_since(-1, 1000).unwrap();
        assert_eq!(left.len(), 31);
        assert_eq!(left.first().unwrap().0, 10);
        assert_eq!(left.last().unwrap(), &(40, b"late".to_vec()));
    }

    /// Runs `sql` returning one bigint on a connection of `url`'s own.
    fn count(url: &str, sql: &str) -> i64 {
        let (url, sql) = (url.to_owned(), sql.to_owned());
        std::thread::spawn(move || connect(&url).unwrap().query_one(&sql, &[]).unwrap().get(0))
            .join()
            .unwrap()
    }

    #[tokio::test]
    async fn readers_are_pooled_and_reconnect_after_the_server_drops_them() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        let store = opened.store;
        store.set_readers(2);
        let readers: Vec<Reader> = (0..5).map(|_| store.reader().unwrap()).collect();
        for reader in &readers {
            assert_eq!(reader.max_seq().unwrap(), None);
        }
        let mine = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{}'",
            schema.name()
        );
        // The writer's connection and two readers', however many handles.
        assert_eq!(count(&admin_url(), &mine), 3);

        // The server ends every session of the schema but the writer's (it
        // holds its liveness lock): a reader's next query may fail, and the
        // one after it reconnects.
        let terminate = format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE application_name = '{}'
               AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')",
            schema.name()
        );
        assert_eq!(count(&admin_url(), &terminate), 2);
        for reader in &readers[..2] {
            let mut tries = 0;
            while reader.max_seq().is_err() {
                tries += 1;
                assert!(tries < 3, "the reader never reconnected");
            }
        }
        assert_eq!(count(&admin_url(), &mine), 3);
    }

    #[tokio::test]
    async fn state_baselines_and_facts_round_trip() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        let store = opened.store;
        let now = chrono::Utc::now();
        let past = now - chrono::Duration::seconds(10);
        store
            .put_state("s", "a", b"1".to_vec(), None)
            .await
            .unwrap();
        store
            .put_state(
                "s",
                "a",
                b"2".to_vec(),
                Some(now + chrono::Duration::hours(1)),
            )
            .await
            .unwrap();
        store
            .put_state("s", "b", b"x".to_vec(), Some(past))
            .await
            .unwrap();
        store
            .save_baselines(vec![("t/alice".into(), b"a1".to_vec())])
            .await
            .unwrap();
        store
            .save_baselines(vec![("t/alice".into(), b"a2".to_vec())])
            .await
            .unwrap();
        store.save_facts("r1".into(), b"f1".to_vec()).await.unwrap();
        store.save_facts("r1".into(), b"f2".to_vec()).await.unwrap();
        let reader = store.reader().unwrap();
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
        assert_eq!(
            reader.baselines().unwrap(),
            vec![("t/alice".to_owned(), b"a2".to_vec())]
        );
        assert_eq!(
            reader.approval_facts().unwrap(),
            vec![("r1".to_owned(), b"f1".to_vec())]
        );
    }

    #[tokio::test]
    async fn an_older_checkpoint_than_one_stored_is_not_stored() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        let row = |size: u64| CheckpointRow {
            id: 0,
            size,
            root: vec![size as u8],
            frontier: Vec::new(),
            note: format!("size {size}"),
            created: "2026-01-01T00:00:00Z".into(),
        };
        for size in [3, 5, 4, 5] {
            opened.store.append_checkpoint(row(size)).await.unwrap();
        }
        let sizes: Vec<u64> = opened
            .store
            .reader()
            .unwrap()
            .checkpoints()
            .unwrap()
            .iter()
            .map(|c| c.size)
            .collect();
        assert_eq!(sizes, [3, 5, 5]);
    }

    #[tokio::test]
    async fn a_lost_connection_fails_the_batch_in_flight_then_reconnects() {
        let schema = scratch();
        let (opened, _) = open(&schema.url());
        opened.store.append(vec![sealer("before")]).await.unwrap();
        // Every other connection to the schema's store is killed, as a
        // failover would.
        schema
            .execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = '{}' AND pid <> pg_backend_pid()",
                schema.name()
            ))
            .unwrap();
        let lost = opened.store.append(vec![sealer("lost")]).await;
        let error = lost.expect_err("the connection was killed").to_string();
        assert!(error.contains("PostgreSQL"), "{error}");
        // Nothing half-written, and the next append connects again.
        assert_eq!(
            opened.store.append(vec![sealer("after")]).await.unwrap(),
            vec![1]
        );
        let reader = opened.store.reader().unwrap();
        let mut bytes = Vec::new();
        reader
            .for_each_record(0, |row| {
                bytes.push(String::from_utf8(row.bytes).unwrap());
                Ok(())
            })
            .unwrap();
        assert_eq!(bytes, ["0:before", "1:after"]);
    }

    #[test]
    fn a_store_without_warden_tables_is_refused_by_readers_and_urls_are_redacted() {
        let schema = scratch();
        let error = Reader::open(Location::Postgres(schema.url()))
            .err()
            .expect("no tables")
            .to_string();
        assert!(error.contains("not a Warden store"), "{error}");
        assert_eq!(
            redacted("postgres://warden:s3cret@db.example:5432/warden"),
            "postgres://warden:***@db.example:5432/warden"
        );
        let unreachable = Reader::open(Location::Postgres(
            "postgres://postgres@127.0.0.1:1/test?connect_timeout=2".into(),
        ))
        .err()
        .expect("nothing listens on port 1")
        .to_string();
        assert!(unreachable.contains("cannot connect"), "{unreachable}");
    }
}
