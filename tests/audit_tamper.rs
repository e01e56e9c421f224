//! Tampering with a real audit log (the store, or an export bundle) and the
//! exact verdicts of `warden audit verify`, on both store backends.
//!
//! Every scenario builds the same log with the library (the real store,
//! writer thread and signer): record 0 is `log_start`, records 1..=20 are
//! calls (intent, outcome), and checkpoints #1..#5 cover sizes 1, 6, 11, 16
//! and 21. Then it edits the store the way an attacker with write access
//! would and runs the CLI. On SQLite the attacker opens the file and drops
//! the append-only triggers; on PostgreSQL the attacker is a superuser who
//! disables them (`ALTER TABLE ... DISABLE TRIGGER USER`) and edits rows
//! with SQL. Each scenario is written once, against [`Attacker`], and runs
//! as `sqlite::<scenario>` and `postgres::<scenario>` with the same
//! expected verdicts.

mod common;

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use warden::audit::merkle::{Frontier, leaf_hash};
use warden::audit::note::{Checkpoint, Signer};
use warden::audit::proof::verify_consistency;
use warden::audit::record::{Actor, Kind, Record, Status, columns_of};
use warden::audit::witness::WitnessConfig;
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen, load_signer};
use warden::metrics::Metrics;
use warden::store::postgres::ScratchSchema;
use warden::store::{APPEND_ONLY_TRIGGERS, Location};

const ORIGIN: &str = "warden.test/tamper";

/// Runs each scenario (a `fn(Backend)`) as a test on each backend:
/// `sqlite::<scenario>` and `postgres::<scenario>`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(super::Backend::Postgres)
                }
            )*
        }
    };
}

on_both_backends!(
    an_untouched_log_verifies,
    an_edited_byte_is_invalid,
    an_edit_with_a_recomputed_leaf_hash_is_still_invalid,
    an_edit_behind_restored_triggers_is_still_invalid,
    a_deleted_record_leaves_a_gap,
    a_deletion_hidden_by_renumbering_and_rehashing_is_found,
    an_inserted_record_is_invalid,
    reordered_records_are_invalid,
    a_truncated_tail_is_missing,
    records_after_the_last_checkpoint_are_an_unverified_tail,
    a_checkpoint_signed_by_another_key_is_invalid,
    an_altered_checkpoint_is_invalid,
    an_unknown_key_verifies_nothing,
    a_log_re_signed_with_another_key_is_invalid,
    a_checkpoint_of_another_origin_is_invalid,
    conflicting_checkpoints_are_a_split_view,
    a_checkpoint_whose_size_goes_down_is_invalid,
    a_rotated_key_chains_from_the_old_one_and_a_forged_rotation_does_not,
    a_bundle_verifies_and_an_edited_bundle_does_not,
    a_missing_or_wrong_key_file_cannot_verify,
    an_edited_indexed_column_is_invalid,
    a_forged_record_with_matching_columns_is_still_invalid,
    a_rollback_passes_alone_and_is_missing_against_the_witness,
    a_rollback_grown_again_is_inconsistent_with_the_witness,
    an_intact_log_is_proven_to_extend_a_trusted_checkpoint,
    a_trusted_checkpoint_of_another_log_or_key_is_refused,
    a_subset_bundle_proves_each_record_and_tampering_is_found,
);

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A store that is not there: a file that does not exist, or a schema
    /// that does not exist in the test database.
    fn missing_store(self) -> String {
        match self {
            Backend::Sqlite => "/nonexistent.db".into(),
            Backend::Postgres => {
                let admin = common::replicas::postgres_admin();
                let separator = if admin.contains('?') { '&' } else { '?' };
                format!("{admin}{separator}options=-c%20search_path%3Dwarden_nonexistent")
            }
        }
    }
}

/// Where a log's records and checkpoints are kept.
enum Store {
    Sqlite(PathBuf),
    /// Dropped with the log.
    Postgres(ScratchSchema),
}

struct Log {
    store: Store,
    _dir: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
}

/// The test audit config: checkpoints only when asked, each also published
/// to a directory witness beside the keys (`<dir>/witness`).
fn config(files: &KeyFiles) -> AuditConfig {
    let mut config = AuditConfig::quiet(files);
    let witness = files.signing_key.parent().unwrap().join("witness");
    config.witnesses = vec![WitnessConfig::directory(witness)];
    config
}

/// Runs `future` to completion on a runtime of its own (the scenarios are
/// synchronous, as the attacker's PostgreSQL client is blocking).
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn call_record(kind: Kind, i: u32) -> Record {
    let mut r = Record::new(kind);
    r.call_id = Some(format!("call-{}", i / 2));
    r.principal = Some(Actor {
        tid: "11111111-2222-4333-8444-555555555555".into(),
        oid: "aaaaaaaa-0000-4000-8000-000000000001".into(),
        name: "alice@contoso.com".into(),
        kind: "user".into(),
        client_app: None,
        auth_path: None,
        guest: false,
        roles: Vec::new(),
        groups: Vec::new(),
    });
    r.session_id = Some("s-1".into());
    r.tool = Some("echo".into());
    r.upstream = Some("demo".into());
    if kind == Kind::Outcome {
        r.status = Some(Status::Ok);
        r.duration_us = Some(1000 + u64::from(i));
    }
    r
}

/// Appends records 1..=20 with a checkpoint after every fifth.
async fn fill(audit: &Arc<Audit>) {
    for i in 0..20u32 {
        let kind = if i % 2 == 0 {
            Kind::Intent
        } else {
            Kind::Outcome
        };
        audit.append(call_record(kind, i)).await.unwrap();
        if i % 5 == 4 {
            audit.checkpoint().await.unwrap();
        }
    }
}

fn build(backend: Backend) -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let files = KeyFiles::in_dir(&dir);
    keygen(ORIGIN, &files, true).unwrap();
    let store = match backend {
        Backend::Sqlite => Store::Sqlite(dir.join("warden.db")),
        Backend::Postgres => Store::Postgres(
            ScratchSchema::create(&common::replicas::postgres_admin())
                .expect("PostgreSQL at 127.0.0.1:5432 (database test)"),
        ),
    };
    let log = Log {
        store,
        _dir: tmp,
        key: files.public_key.clone(),
        dir,
    };
    let audit = block_on(async {
        let audit = Audit::open(log.location(), config(&files), Metrics::new())
            .await
            .unwrap();
        fill(&audit).await;
        audit.close().await;
        audit
    });
    audit.join_writer();
    log
}

impl Log {
    fn location(&self) -> Location {
        match &self.store {
            Store::Sqlite(path) => Location::Sqlite(path.clone()),
            Store::Postgres(schema) => Location::Postgres(schema.url()),
        }
    }

    /// The store as `--db` takes it: the file's path, or the URL.
    fn db(&self) -> OsString {
        match &self.store {
            Store::Sqlite(path) => path.clone().into(),
            Store::Postgres(schema) => schema.url().into(),
        }
    }

    /// A connection to the store with the append-only triggers out of the
    /// way, as an attacker would make.
    fn attacker(&self) -> Box<dyn Attacker> {
        match &self.store {
            Store::Sqlite(path) => Box::new(SqliteAttacker::open(path)),
            Store::Postgres(schema) => Box::new(PostgresAttacker::open(&schema.url())),
        }
    }

    fn signer(&self) -> Signer {
        load_signer(&KeyFiles::in_dir(&self.dir).signing_key).unwrap()
    }
}

/// What an attacker with write access does to the store's rows. The
/// backends implement the row edits; the rest is shared.
trait Attacker {
    /// The stored bytes of the record at `seq`.
    fn record_bytes(&mut self, seq: i64) -> Vec<u8>;

    /// Replaces the bytes of the record at `seq`, keeping its stored leaf hash.
    fn set_record_bytes(&mut self, seq: i64, bytes: &[u8]);

    /// Replaces the stored leaf hash of the record at `seq`.
    fn set_leaf_hash(&mut self, seq: i64, hash: &[u8]);

    /// The bytes of the records below `size`, in order.
    fn records_below(&mut self, size: i64) -> Vec<Vec<u8>>;

    fn delete_records(&mut self, seqs: RangeInclusive<i64>);

    /// Files the row at `from` (bytes and leaf hash unchanged) under `to`.
    fn move_record(&mut self, from: i64, to: i64);

    /// Adds a row for `bytes` at `seq`, with their leaf hash and the
    /// indexed columns they imply (a careful forger).
    fn insert_record(&mut self, seq: i64, bytes: &[u8]);

    /// Sets one indexed column of the record at `seq`, leaving its bytes.
    fn set_column(&mut self, seq: i64, column: &str, value: Option<&str>);

    /// The stored checkpoints, oldest first: (row id, size, note).
    fn checkpoints(&mut self) -> Vec<(i64, i64, String)>;

    fn set_checkpoint(&mut self, id: i64, size: i64, note: &str);

    fn delete_checkpoints(&mut self);

    fn add_checkpoint(&mut self, note: &str, size: u64, root: &[u8]);

    /// Puts the append-only triggers back as the store made them.
    fn restore_triggers(&mut self);

    fn record(&mut self, seq: i64) -> Value {
        serde_json::from_slice(&self.record_bytes(seq)).unwrap()
    }

    /// Stores `value` (canonicalised) as the record at `seq`, with its leaf
    /// hash and the indexed columns it implies (a careful forger).
    fn rewrite(&mut self, seq: i64, value: &Value) {
        let bytes = serde_json_canonicalizer::to_vec(value).unwrap();
        self.set_record_bytes(seq, &bytes);
        self.set_leaf_hash(seq, &leaf_hash(&bytes));
        let c = columns_of(&bytes).expect("a record");
        self.set_column(seq, "ts", Some(&c.ts));
        self.set_column(seq, "kind", Some(&c.kind));
        self.set_column(seq, "call_id", c.call_id.as_deref());
        self.set_column(seq, "principal_oid", c.principal_oid.as_deref());
        self.set_column(seq, "tool", c.tool.as_deref());
        self.set_column(seq, "decision", c.decision.as_deref());
    }

    /// The tree head at `size` of the records as stored.
    fn root(&mut self, size: i64) -> [u8; 32] {
        let mut f = Frontier::new();
        for bytes in self.records_below(size) {
            f.push(leaf_hash(&bytes));
        }
        f.root()
    }

    /// Adds a checkpoint of `origin` at `size` over the stored records,
    /// signed by `signer`.
    fn sign_checkpoint(&mut self, signer: &Signer, origin: &str, size: i64) {
        let root = self.root(size);
        let body = Checkpoint {
            origin: origin.into(),
            size: size as u64,
            root,
        };
        self.add_checkpoint(&signer.sign_note(&body.text()), size as u64, &root);
    }
}

/// The SQLite file opened directly, its triggers dropped (SQLite cannot
/// disable them).
struct SqliteAttacker {
    conn: Connection,
    /// The `CREATE TRIGGER` statements of the dropped triggers.
    dropped: Vec<String>,
}

impl SqliteAttacker {
    fn open(path: &Path) -> SqliteAttacker {
        let conn = Connection::open(path).unwrap();
        let mut dropped = Vec::new();
        for t in APPEND_ONLY_TRIGGERS {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                    [t],
                    |r| r.get(0),
                )
                .unwrap();
            conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
            dropped.push(sql);
        }
        SqliteAttacker { conn, dropped }
    }
}

impl Attacker for SqliteAttacker {
    fn record_bytes(&mut self, seq: i64) -> Vec<u8> {
        self.conn
            .query_row(
                "SELECT record FROM audit_records WHERE seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn set_record_bytes(&mut self, seq: i64, bytes: &[u8]) {
        let n = self
            .conn
            .execute(
                "UPDATE audit_records SET record = ?1 WHERE seq = ?2",
                params![bytes, seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn set_leaf_hash(&mut self, seq: i64, hash: &[u8]) {
        let n = self
            .conn
            .execute(
                "UPDATE audit_records SET leaf_hash = ?1 WHERE seq = ?2",
                params![hash, seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn records_below(&mut self, size: i64) -> Vec<Vec<u8>> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM audit_records WHERE seq < ?1 ORDER BY seq")
            .unwrap();
        stmt.query_map([size], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn delete_records(&mut self, seqs: RangeInclusive<i64>) {
        let n = self
            .conn
            .execute(
                "DELETE FROM audit_records WHERE seq BETWEEN ?1 AND ?2",
                [seqs.start(), seqs.end()],
            )
            .unwrap();
        assert_eq!(n as i64, seqs.end() - seqs.start() + 1);
    }

    fn move_record(&mut self, from: i64, to: i64) {
        let n = self
            .conn
            .execute(
                "UPDATE audit_records SET seq = ?1 WHERE seq = ?2",
                [to, from],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn insert_record(&mut self, seq: i64, bytes: &[u8]) {
        let c = columns_of(bytes).expect("a record");
        self.conn
            .execute(
                "INSERT INTO audit_records
                 (seq, ts, kind, call_id, principal_oid, tool, decision, leaf_hash, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    seq,
                    c.ts,
                    c.kind,
                    c.call_id,
                    c.principal_oid,
                    c.tool,
                    c.decision,
                    &leaf_hash(bytes)[..],
                    bytes
                ],
            )
            .unwrap();
    }

    fn set_column(&mut self, seq: i64, column: &str, value: Option<&str>) {
        let n = self
            .conn
            .execute(
                &format!("UPDATE audit_records SET {column} = ?1 WHERE seq = ?2"),
                params![value, seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn checkpoints(&mut self) -> Vec<(i64, i64, String)> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, size, note FROM audit_checkpoints ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn set_checkpoint(&mut self, id: i64, size: i64, note: &str) {
        let n = self
            .conn
            .execute(
                "UPDATE audit_checkpoints SET size = ?1, note = ?2 WHERE id = ?3",
                params![size, note, id],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn delete_checkpoints(&mut self) {
        self.conn
            .execute("DELETE FROM audit_checkpoints", [])
            .unwrap();
    }

    fn add_checkpoint(&mut self, note: &str, size: u64, root: &[u8]) {
        self.conn
            .execute(
                "INSERT INTO audit_checkpoints (size, root, frontier, note, created)
                 VALUES (?1, ?2, x'', ?3, '2026-01-01T00:00:00.000000Z')",
                params![size as i64, root, note],
            )
            .unwrap();
    }

    fn restore_triggers(&mut self) {
        for sql in self.dropped.drain(..) {
            self.conn.execute_batch(&sql).unwrap();
        }
    }
}

/// A superuser's connection to the PostgreSQL schema, with the append-only
/// triggers on both audit tables disabled.
struct PostgresAttacker {
    client: ::postgres::Client,
}

impl PostgresAttacker {
    fn open(url: &str) -> PostgresAttacker {
        let mut client = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
        let superuser: bool = client
            .query_one(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(superuser, "the attacker is meant to be a superuser");
        client
            .batch_execute(
                "ALTER TABLE audit_records DISABLE TRIGGER USER;
                 ALTER TABLE audit_checkpoints DISABLE TRIGGER USER;",
            )
            .unwrap();
        PostgresAttacker { client }
    }
}

impl Attacker for PostgresAttacker {
    fn record_bytes(&mut self, seq: i64) -> Vec<u8> {
        self.client
            .query_one("SELECT record FROM audit_records WHERE seq = $1", &[&seq])
            .unwrap()
            .get(0)
    }

    fn set_record_bytes(&mut self, seq: i64, bytes: &[u8]) {
        let n = self
            .client
            .execute(
                "UPDATE audit_records SET record = $1 WHERE seq = $2",
                &[&bytes, &seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn set_leaf_hash(&mut self, seq: i64, hash: &[u8]) {
        let n = self
            .client
            .execute(
                "UPDATE audit_records SET leaf_hash = $1 WHERE seq = $2",
                &[&hash, &seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn records_below(&mut self, size: i64) -> Vec<Vec<u8>> {
        self.client
            .query(
                "SELECT record FROM audit_records WHERE seq < $1 ORDER BY seq",
                &[&size],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn delete_records(&mut self, seqs: RangeInclusive<i64>) {
        let n = self
            .client
            .execute(
                "DELETE FROM audit_records WHERE seq BETWEEN $1 AND $2",
                &[seqs.start(), seqs.end()],
            )
            .unwrap();
        assert_eq!(n as i64, seqs.end() - seqs.start() + 1);
    }

    fn move_record(&mut self, from: i64, to: i64) {
        let n = self
            .client
            .execute(
                "UPDATE audit_records SET seq = $1 WHERE seq = $2",
                &[&to, &from],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    /// The row's `writer` (outside the hash) is copied from the row before
    /// it, as a replica that wrote its neighbour.
    fn insert_record(&mut self, seq: i64, bytes: &[u8]) {
        let c = columns_of(bytes).expect("a record");
        let n = self
            .client
            .execute(
                "INSERT INTO audit_records
                 (seq, ts, kind, call_id, principal_oid, tool, decision, leaf_hash, record, writer)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, writer FROM audit_records
                 WHERE seq < $1 ORDER BY seq DESC LIMIT 1",
                &[
                    &seq,
                    &c.ts,
                    &c.kind,
                    &c.call_id,
                    &c.principal_oid,
                    &c.tool,
                    &c.decision,
                    &&leaf_hash(bytes)[..],
                    &bytes,
                ],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn set_column(&mut self, seq: i64, column: &str, value: Option<&str>) {
        let n = self
            .client
            .execute(
                &format!("UPDATE audit_records SET {column} = $1 WHERE seq = $2"),
                &[&value, &seq],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn checkpoints(&mut self) -> Vec<(i64, i64, String)> {
        self.client
            .query(
                "SELECT id, size, note FROM audit_checkpoints ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn set_checkpoint(&mut self, id: i64, size: i64, note: &str) {
        let n = self
            .client
            .execute(
                "UPDATE audit_checkpoints SET size = $1, note = $2 WHERE id = $3",
                &[&size, &note, &id],
            )
            .unwrap();
        assert_eq!(n, 1);
    }

    fn delete_checkpoints(&mut self) {
        self.client
            .execute("DELETE FROM audit_checkpoints", &[])
            .unwrap();
    }

    fn add_checkpoint(&mut self, note: &str, size: u64, root: &[u8]) {
        self.client
            .execute(
                "INSERT INTO audit_checkpoints (size, root, frontier, note, created)
                 VALUES ($1, $2, '', $3, '2026-01-01T00:00:00.000000Z')",
                &[&(size as i64), &root, &note],
            )
            .unwrap();
    }

    fn restore_triggers(&mut self) {
        self.client
            .batch_execute(
                "ALTER TABLE audit_records ENABLE TRIGGER USER;
                 ALTER TABLE audit_checkpoints ENABLE TRIGGER USER;",
            )
            .unwrap();
    }
}

/// Runs `warden audit verify --json <source_flag> <source>`; returns the
/// exit code and the report.
fn verify(source_flag: &str, source: &OsStr, key: &Path) -> (i32, Value) {
    verify_with(source_flag, source, key, &[])
}

/// [`verify`] with more arguments (trusted checkpoints, witnesses).
fn verify_with(source_flag: &str, source: &OsStr, key: &Path, extra: &[&OsStr]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--json", source_flag])
        .arg(source)
        .arg("--key")
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

fn verify_db(log: &Log) -> (i32, Value) {
    verify("--db", &log.db(), &log.key)
}

/// `verify --db` with more arguments (trusted checkpoints, witnesses).
fn verify_db_with(log: &Log, extra: &[&OsStr]) -> (i32, Value) {
    verify_with("--db", &log.db(), &log.key, extra)
}

impl Log {
    /// The directory witness every checkpoint was published to.
    fn witness(&self) -> PathBuf {
        self.dir.join("witness")
    }

    /// The witness's copy of the checkpoint of `size`.
    fn witnessed(&self, size: u64) -> PathBuf {
        self.witness().join(format!("{size:020}.checkpoint"))
    }
}

/// Rolls the store back to its first `size` records: deletes the newer
/// records and every checkpoint that covers them, as someone with write
/// access to the store would.
fn roll_back(attacker: &mut dyn Attacker, size: i64) {
    let kept: Vec<(i64, i64, String)> = attacker
        .checkpoints()
        .into_iter()
        .filter(|(_, s, _)| *s <= size)
        .collect();
    attacker.delete_records(size..=20);
    attacker.delete_checkpoints();
    for (_, s, note) in kept {
        let root = attacker.root(s);
        attacker.add_checkpoint(&note, s as u64, &root);
    }
}

/// A problem as (verdict, first seq, last seq, checkpoint), compared exactly.
type Found = (String, Option<u64>, Option<u64>, Option<String>);

fn problems(report: &Value) -> Vec<Found> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["verdict"].as_str().unwrap().to_owned(),
                p["seq_from"].as_u64(),
                p["seq_to"].as_u64(),
                p["checkpoint"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn p(verdict: &str, seqs: Option<(u64, u64)>, checkpoint: Option<&str>) -> Found {
    (
        verdict.to_owned(),
        seqs.map(|s| s.0),
        seqs.map(|s| s.1),
        checkpoint.map(str::to_owned),
    )
}

fn reason(report: &Value, i: usize) -> String {
    report["problems"][i]["reason"].as_str().unwrap().to_owned()
}

/// The warnings of a store whose append-only triggers are dropped or
/// disabled.
fn triggers_missing() -> Value {
    APPEND_ONLY_TRIGGERS
        .iter()
        .map(|t| format!("the append-only trigger {t} is missing from the store"))
        .collect()
}

fn an_untouched_log_verifies(backend: Backend) {
    let log = build(backend);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], 21);
    assert_eq!(report["checkpoints"], 5);
    assert_eq!(report["verified_size"], 21);
    assert_eq!(report["origin"], ORIGIN);
    assert_eq!(report["open_intents"], json!([]));
    assert_eq!(report["warnings"], json!([]), "{report:#}");
    // The text report says so too.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(log.db())
        .arg("--key")
        .arg(&log.key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("OK: origin warden.test/tamper, 21 records, 5 checkpoints"),
        "{text}"
    );
    // Without trusted checkpoints, the report says what it cannot prove.
    assert!(
        text.contains("note: no trusted checkpoint was given"),
        "{text}"
    );
}

fn an_edited_byte_is_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let edited = String::from_utf8(attacker.record_bytes(8))
        .unwrap()
        .replace("\"echo\"", "\"echp\"");
    attacker.set_record_bytes(8, edited.as_bytes());
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((8, 8)), None),
            p("INVALID", Some((8, 8)), None),
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("leaf hash"));
    // The tool column still says what the record said before the edit.
    assert!(reason(&report, 1).contains("column(s) tool"), "{report:#}");
    // The triggers the attacker dropped or disabled are reported too.
    assert_eq!(report["warnings"], triggers_missing(), "{report:#}");
}

fn an_edit_with_a_recomputed_leaf_hash_is_still_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let mut record = attacker.record(8);
    record["tool"] = json!("delete_everything");
    attacker.rewrite(8, &record);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
}

/// An attacker who puts the triggers back leaves no warning, and the
/// signed checkpoints still find the edit.
fn an_edit_behind_restored_triggers_is_still_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let mut record = attacker.record(8);
    record["tool"] = json!("delete_everything");
    attacker.rewrite(8, &record);
    attacker.restore_triggers();
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(report["warnings"], json!([]), "{report:#}");
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
}

fn a_deleted_record_leaves_a_gap(backend: Backend) {
    let log = build(backend);
    log.attacker().delete_records(8..=8);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("GAP", Some((8, 8)), None),
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("MISSING", Some((20, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 19)), None),
        ],
        "{report:#}"
    );
}

fn a_deletion_hidden_by_renumbering_and_rehashing_is_found(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    attacker.delete_records(8..=8);
    for seq in 9..=20 {
        let mut record = attacker.record(seq);
        record["seq"] = json!(seq - 1);
        attacker.move_record(seq, seq - 1);
        attacker.rewrite(seq - 1, &record);
    }
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("MISSING", Some((20, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 19)), None),
        ],
        "{report:#}"
    );
}

fn an_inserted_record_is_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    for seq in (8..=20).rev() {
        let mut record = attacker.record(seq);
        record["seq"] = json!(seq + 1);
        attacker.move_record(seq, seq + 1);
        attacker.rewrite(seq + 1, &record);
    }
    let mut forged = serde_json::to_value(call_record(Kind::Intent, 99)).unwrap();
    forged["seq"] = json!(8);
    attacker.insert_record(8, &serde_json_canonicalizer::to_vec(&forged).unwrap());
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 21)), None),
        ],
        "{report:#}"
    );
}

fn reordered_records_are_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    // Swap rows 8 and 9 whole (bytes and leaf hashes).
    attacker.move_record(8, -1);
    attacker.move_record(9, 8);
    attacker.move_record(-1, 9);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((8, 8)), None),
            p("INVALID", Some((9, 9)), None),
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("says seq 9 but is filed as 8"));
}

fn a_truncated_tail_is_missing(backend: Backend) {
    let log = build(backend);
    log.attacker().delete_records(18..=20);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("MISSING", Some((18, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((16, 17)), None),
        ],
        "{report:#}"
    );
}

fn records_after_the_last_checkpoint_are_an_unverified_tail(backend: Backend) {
    let log = build(backend);
    let files = KeyFiles::in_dir(&log.dir);
    let audit = block_on(async {
        let audit = Audit::open(log.location(), config(&files), Metrics::new())
            .await
            .unwrap();
        // Open writes log_start and a checkpoint; two more records get none:
        // an intent without its outcome, and a heartbeat.
        audit.append(call_record(Kind::Intent, 40)).await.unwrap();
        audit.append(Record::new(Kind::Heartbeat)).await.unwrap();
        audit
    });
    audit.join_writer();
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("UNVERIFIED-TAIL", Some((22, 23)), None)],
        "{report:#}"
    );
    assert_eq!(
        report["open_intents"],
        json!([{ "seq": 22, "call_id": "call-20" }])
    );
}

fn a_checkpoint_signed_by_another_key_is_invalid(backend: Backend) {
    let log = build(backend);
    let forger = Signer::generate(ORIGIN).unwrap();
    log.attacker().sign_checkpoint(&forger, ORIGIN, 21);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("not signed by the trusted key"));
}

fn an_altered_checkpoint_is_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let (id, size, note) = attacker.checkpoints().swap_remove(2);
    assert_eq!(size, 11);
    assert!(note.contains("\n11\n"));
    attacker.set_checkpoint(id, 12, &note.replace("\n11\n", "\n12\n"));
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", None, Some("#3")),
            p("INVALID", Some((6, 11)), Some("#3")),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("does not verify"));
}

fn an_unknown_key_verifies_nothing(backend: Backend) {
    let log = build(backend);
    let other = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(other.path());
    keygen(ORIGIN, &files, false).unwrap();
    let (code, report) = verify("--db", &log.db(), &files.public_key);
    assert_eq!(code, 1);
    let mut expected: Vec<_> = (1..=5)
        .map(|i| p("INVALID", None, Some(&format!("#{i}"))))
        .collect();
    expected.push(p("UNVERIFIED-TAIL", Some((0, 20)), None));
    assert_eq!(problems(&report), expected, "{report:#}");
}

fn a_log_re_signed_with_another_key_is_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let mut record = attacker.record(8);
    record["tool"] = json!("delete_everything");
    attacker.rewrite(8, &record);
    // Every checkpoint replaced by the attacker's, over the edited records.
    let forger = Signer::generate(ORIGIN).unwrap();
    let sizes: Vec<i64> = attacker
        .checkpoints()
        .into_iter()
        .map(|(_, size, _)| size)
        .collect();
    assert_eq!(sizes, [1, 6, 11, 16, 21]);
    attacker.delete_checkpoints();
    for size in sizes {
        attacker.sign_checkpoint(&forger, ORIGIN, size);
    }
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    let mut expected: Vec<_> = (1..=5)
        .map(|i| p("INVALID", None, Some(&format!("#{i}"))))
        .collect();
    expected.push(p("UNVERIFIED-TAIL", Some((0, 20)), None));
    assert_eq!(problems(&report), expected, "{report:#}");
}

fn a_checkpoint_of_another_origin_is_invalid(backend: Backend) {
    let log = build(backend);
    log.attacker()
        .sign_checkpoint(&log.signer(), "warden.test/other-replica", 21);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("is not this log's origin"));
}

fn conflicting_checkpoints_are_a_split_view(backend: Backend) {
    let log = build(backend);
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 21,
        root: [9; 32],
    };
    log.attacker()
        .add_checkpoint(&log.signer().sign_note(&body.text()), 21, &[9; 32]);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", None, Some("#6")),
            p("INVALID", Some((20, 20)), Some("#6")),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("split view"));
}

fn a_checkpoint_whose_size_goes_down_is_invalid(backend: Backend) {
    let log = build(backend);
    log.attacker().sign_checkpoint(&log.signer(), ORIGIN, 11);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("goes down, from 21 to 11"));
}

fn a_rotated_key_chains_from_the_old_one_and_a_forged_rotation_does_not(backend: Backend) {
    let log = build(backend);
    // Rotate: a new key, the old one configured as previous.
    let next = tempfile::tempdir().unwrap();
    let new_files = KeyFiles::in_dir(next.path());
    keygen(ORIGIN, &new_files, false).unwrap();
    let old_files = KeyFiles::in_dir(&log.dir);
    let mut rotated = config(&old_files);
    rotated.signing_key = new_files.signing_key.clone();
    let audit = block_on(async {
        // Without the previous key, Warden refuses to sign over the old log.
        let refused = Audit::open(log.location(), rotated.clone(), Metrics::new()).await;
        let error = refused.unwrap_err().to_string();
        assert!(error.contains("previous_signing_key"), "{error}");
        rotated.previous_signing_key = Some(old_files.signing_key.clone());
        let audit = Audit::open(log.location(), rotated, Metrics::new())
            .await
            .unwrap();
        audit.append(call_record(Kind::Intent, 60)).await.unwrap();
        audit.append(call_record(Kind::Outcome, 61)).await.unwrap();
        audit.close().await;
        audit
    });
    audit.join_writer();
    // The old key is the root of trust; the rotation record hands over.
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 25);

    // A rotation to the attacker's key, not endorsed by the key in effect.
    let forger = Signer::generate(ORIGIN).unwrap();
    let mut forged = Record::new(Kind::KeyRotation);
    forged.seq = 25;
    forged.details = Some(json!({
        "old_key": load_signer(&new_files.signing_key).unwrap().verifier().encode(),
        "new_key": forger.verifier().encode(),
        "endorsement": "AAAA",
    }));
    log.attacker()
        .insert_record(25, &forged.canonical().unwrap());
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((25, 25)), None),
            p("UNVERIFIED-TAIL", Some((25, 25)), None),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("not endorsed"));
}

fn a_bundle_verifies_and_an_edited_bundle_does_not(backend: Backend) {
    let log = build(backend);
    let out = log.dir.join("bundle");
    let status = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", "bundle", "--db"])
        .arg(log.db())
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, report) = verify("--bundle", out.as_os_str(), &log.key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 21);
    assert_eq!(report["checkpoints"], 5);
    assert_eq!(
        std::fs::read_to_string(out.join("public-key.txt")).unwrap(),
        std::fs::read_to_string(&log.key).unwrap()
    );

    let records = out.join("records.jsonl");
    let text = std::fs::read_to_string(&records).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let edited = text.replacen(lines[8], &lines[8].replace("\"echo\"", "\"echp\""), 1);
    std::fs::write(&records, edited).unwrap();
    let (code, report) = verify("--bundle", out.as_os_str(), &log.key);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", None, None),
            p("INVALID", Some((6, 10)), Some("checkpoints/00000003.txt")),
            p("INVALID", Some((6, 15)), Some("checkpoints/00000004.txt")),
            p("INVALID", Some((6, 20)), Some("checkpoints/00000005.txt")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("records.jsonl does not match the manifest"));
}

fn a_missing_or_wrong_key_file_cannot_verify(backend: Backend) {
    let log = build(backend);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(log.db())
        .arg("--key")
        .arg(KeyFiles::in_dir(&log.dir).signing_key)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("private signing key"), "{stderr}");
    assert_eq!(out.status.code(), Some(2));

    let missing = backend.missing_store();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db", &missing, "--key"])
        .arg(&log.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Named as the CLI names stores (a URL without its password).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot open the store {}",
            Location::parse(&missing)
        )),
        "{stderr}"
    );
}

/// The columns `export --principal/--tool/--decision` filter on and calls
/// are looked up by are copies of the signed record: edited, the bytes and
/// the tree are intact, and each edited record is named.
fn an_edited_indexed_column_is_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    // Hide record 8 from a filtered export, and change what 9, 10, 11
    // and 12 are indexed as.
    attacker.set_column(8, "principal_oid", Some("someone-else"));
    attacker.set_column(9, "tool", None);
    attacker.set_column(10, "kind", Some("heartbeat"));
    attacker.set_column(11, "ts", Some("2020-01-01T00:00:00.000000Z"));
    attacker.set_column(12, "call_id", Some("call-99"));
    attacker.restore_triggers();
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        problems(&report),
        (8..=12)
            .map(|seq| p("INVALID", Some((seq, seq)), None))
            .collect::<Vec<_>>(),
        "{report:#}"
    );
    for (i, column) in ["principal_oid", "tool", "kind", "ts", "call_id"]
        .iter()
        .enumerate()
    {
        let said = reason(&report, i);
        assert!(
            said.contains(column) && said.contains("signed record"),
            "{said}"
        );
    }
    // Bytes, leaves and checkpoints are intact: every checkpoint verifies.
    assert_eq!(report["verified_size"], json!(21), "{report:#}");
}

/// The decision column too; and a record whose columns match its forged
/// bytes is still caught by the tree.
fn a_forged_record_with_matching_columns_is_still_invalid(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    let mut record = attacker.record(4);
    record["decision"] = json!({"effect": "allow"});
    attacker.rewrite(4, &record);
    attacker.set_column(4, "decision", Some("allow"));
    attacker.set_column(6, "decision", Some("deny"));
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    let found = problems(&report);
    let at = found
        .iter()
        .position(|f| *f == p("INVALID", Some((6, 6)), None))
        .unwrap_or_else(|| panic!("record 6 is named: {report:#}"));
    assert!(reason(&report, at).contains("decision"), "{report:#}");
    assert!(
        !found.contains(&p("INVALID", Some((4, 4)), None)),
        "record 4's columns match its bytes: {report:#}"
    );
    assert!(
        found.contains(&p("INVALID", Some((1, 5)), Some("#2"))),
        "{report:#}"
    );
}

fn a_rollback_passes_alone_and_is_missing_against_the_witness(backend: Backend) {
    let log = build(backend);
    // The witness holds every checkpoint Warden signed.
    let mut held: Vec<String> = std::fs::read_dir(log.witness())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    held.sort();
    assert_eq!(
        held,
        [1, 6, 11, 16, 21].map(|s| format!("{s:020}.checkpoint")),
        "the witness's files"
    );
    let mut attacker = log.attacker();
    roll_back(attacker.as_mut(), 16);
    attacker.restore_triggers();
    // On its own, the rolled-back log verifies: nothing in it says more
    // was ever there, and the report says it cannot tell.
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 16);
    assert_eq!(report["trusted_given"], false);
    // Against the witness it is missing what the newest witnessed
    // checkpoint vouches for.
    let (code, report) =
        verify_db_with(&log, &[OsStr::new("--witness"), log.witness().as_os_str()]);
    assert_eq!(code, 1, "{report:#}");
    let label = format!("trusted {}", log.witnessed(21).display());
    assert_eq!(
        problems(&report),
        vec![p("MISSING", Some((16, 20)), Some(&label))],
        "{report:#}"
    );
    assert!(
        reason(&report, 0).contains("vouches for 21 records and the log holds 16"),
        "{report:#}"
    );
    let statuses: Vec<(u64, String)> = report["trusted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["size"].as_u64().unwrap(),
                t["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (1, "consistent".to_owned()),
            (6, "consistent".to_owned()),
            (11, "consistent".to_owned()),
            (16, "consistent".to_owned()),
            (21, "missing".to_owned()),
        ]
    );
}

fn a_rollback_grown_again_is_inconsistent_with_the_witness(backend: Backend) {
    let log = build(backend);
    let mut attacker = log.attacker();
    // The attacker holds the signing key: records 16..=20 are rewritten
    // (one call's tool changed), and a new checkpoint at 21 is signed.
    let mut forged = attacker.record(18);
    forged["tool"] = json!("echo-forged");
    attacker.rewrite(18, &forged);
    attacker.delete_checkpoints();
    for size in [1, 6, 11, 16, 21] {
        attacker.sign_checkpoint(&log.signer(), ORIGIN, size);
    }
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "alone, the re-signed log verifies: {report:#}");
    let trusted = log.witnessed(21);
    let (code, report) = verify_db_with(
        &log,
        &[OsStr::new("--trusted-checkpoint"), trusted.as_os_str()],
    );
    assert_eq!(code, 1, "{report:#}");
    let label = format!("trusted {}", trusted.display());
    assert_eq!(
        problems(&report),
        vec![p("INVALID", Some((0, 20)), Some(&label))],
        "{report:#}"
    );
    assert!(
        reason(&report, 0).contains("rewritten behind it"),
        "{report:#}"
    );
    assert_eq!(report["trusted"][0]["status"], "inconsistent");
}

fn an_intact_log_is_proven_to_extend_a_trusted_checkpoint(backend: Backend) {
    let log = build(backend);
    let trusted = log.witnessed(11);
    let (code, report) = verify_db_with(
        &log,
        &[OsStr::new("--trusted-checkpoint"), trusted.as_os_str()],
    );
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["trusted_given"], true);
    let result = &report["trusted"][0];
    assert_eq!(result["status"], "consistent");
    // The report carries the consistency proof from 11 to 21; it checks
    // on its own, with nothing but the two tree heads.
    let proof = &result["proof"];
    assert_eq!(
        (proof["old_size"].as_u64(), proof["new_size"].as_u64()),
        (Some(11), Some(21))
    );
    let hash = |v: &Value| -> [u8; 32] {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let hashes: Vec<[u8; 32]> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    let mut attacker = log.attacker();
    assert_eq!(hash(&proof["old_root"]), attacker.root(11));
    assert_eq!(hash(&proof["new_root"]), attacker.root(21));
    verify_consistency(
        11,
        21,
        &hash(&proof["old_root"]),
        &hash(&proof["new_root"]),
        &hashes,
    )
    .unwrap();
    let mut bent = hashes.clone();
    bent[0][0] ^= 1;
    assert!(
        verify_consistency(
            11,
            21,
            &hash(&proof["old_root"]),
            &hash(&proof["new_root"]),
            &bent
        )
        .is_err()
    );
    // The text report names it.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(log.db())
        .arg("--key")
        .arg(&log.key)
        .arg("--trusted-checkpoint")
        .arg(&trusted)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "trusted checkpoint {} (size 11): consistent, proven an append-only prefix of \
             checkpoint size 21 by a consistency proof of",
            trusted.display()
        )),
        "{text}"
    );
}

fn a_trusted_checkpoint_of_another_log_or_key_is_refused(backend: Backend) {
    let log = build(backend);
    let other = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(other.path());
    keygen(ORIGIN, &files, false).unwrap();
    let impostor = load_signer(&files.signing_key).unwrap();
    let root = log.attacker().root(11);
    let forged = other.path().join("forged.checkpoint");
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 11,
        root,
    };
    std::fs::write(&forged, impostor.sign_note(&body.text())).unwrap();
    let elsewhere = other.path().join("elsewhere.checkpoint");
    let body = Checkpoint {
        origin: "warden.test/elsewhere".into(),
        size: 11,
        root,
    };
    std::fs::write(&elsewhere, log.signer().sign_note(&body.text())).unwrap();
    let garbage = other.path().join("garbage.checkpoint");
    std::fs::write(&garbage, "not a note").unwrap();
    let (code, report) = verify_db_with(
        &log,
        &[
            OsStr::new("--trusted-checkpoint"),
            forged.as_os_str(),
            OsStr::new("--trusted-checkpoint"),
            elsewhere.as_os_str(),
            OsStr::new("--trusted-checkpoint"),
            garbage.as_os_str(),
        ],
    );
    assert_eq!(code, 1, "{report:#}");
    let found = problems(&report);
    assert_eq!(found.len(), 3, "{report:#}");
    assert!(found.iter().all(|f| f.0 == "INVALID"), "{report:#}");
    let reasons: Vec<String> = (0..3).map(|i| reason(&report, i)).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("origin \"warden.test/elsewhere\"")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("not signed by the log's key")),
        "{reasons:?}"
    );
    // A witness directory that holds nothing cannot be trusted: an error.
    let empty = other.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(log.db())
        .arg("--key")
        .arg(&log.key)
        .arg("--witness")
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds no *.checkpoint files"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces a bundle file's SHA-256 in the manifest, as someone who edits
/// the file would (the manifest is not signed).
fn reseal(bundle: &Path, name: &str) {
    use sha2::Digest;
    let manifest_path = bundle.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let bytes = std::fs::read(bundle.join(name)).unwrap();
    manifest["files"][name] = json!(hex::encode(sha2::Sha256::digest(&bytes)));
    std::fs::write(
        &manifest_path,
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

/// Edits line `n` of a bundle file with `edit` (given it as JSON, giving
/// the new line), reseals the manifest, verifies the bundle (which must
/// fail), and puts the file back; the line's `seq` and the report.
fn edit_line(
    bundle: &Path,
    name: &str,
    n: usize,
    key: &Path,
    edit: impl FnOnce(&mut Value) -> String,
) -> (u64, Value) {
    let path = bundle.join(name);
    let original = std::fs::read_to_string(&path).unwrap();
    let line = original.lines().nth(n).unwrap();
    let mut value: Value = serde_json::from_str(line).unwrap();
    let seq = value["seq"].as_u64().unwrap();
    let edited = edit(&mut value);
    std::fs::write(&path, original.replacen(line, &edited, 1)).unwrap();
    reseal(bundle, name);
    let (code, report) = verify("--bundle", bundle.as_os_str(), key);
    assert_eq!(code, 1, "{report:#}");
    std::fs::write(&path, &original).unwrap();
    reseal(bundle, name);
    (seq, report)
}

fn a_subset_bundle_proves_each_record_and_tampering_is_found(backend: Backend) {
    let log = build(backend);
    let out = log.dir.join("subset");
    let export = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", "bundle", "--db"])
        .arg(log.db())
        .arg("--out")
        .arg(&out)
        .args(["--principal", "aaaaaaaa-0000-4000-8000-000000000001"])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["subset"]["of"], ORIGIN);
    assert_eq!(manifest["subset"]["tree_size"], 21);
    assert_eq!(manifest["subset"]["records"], 20);
    assert_eq!(
        manifest["subset"]["filter"]["principal"],
        "aaaaaaaa-0000-4000-8000-000000000001"
    );
    let (code, report) = verify("--bundle", out.as_os_str(), &log.key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 20);
    assert_eq!(report["proven"], 20);
    assert!(
        report["subset"]
            .as_str()
            .unwrap()
            .contains("a subset of warden.test/tamper")
    );

    // A record edited (and the manifest resealed): its proof fails.
    let (seq, report) = edit_line(&out, "records.jsonl", 7, &log.key, |record| {
        record["tool"] = json!("echp");
        String::from_utf8(serde_json_canonicalizer::to_vec(record).unwrap()).unwrap()
    });
    assert_eq!(
        problems(&report),
        vec![p("INVALID", Some((seq, seq)), None)],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("not included"), "{report:#}");
    assert_eq!(report["proven"], 19);

    // One proof hash bent: that record is unproven.
    let (seq, report) = edit_line(&out, "proofs.jsonl", 3, &log.key, |line| {
        line["proof"][0] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        line.to_string()
    });
    assert_eq!(
        problems(&report),
        vec![p("INVALID", Some((seq, seq)), None)],
        "{report:#}"
    );

    // A record's proof moved to another record: refused.
    let proofs = std::fs::read_to_string(out.join("proofs.jsonl")).unwrap();
    let other_proof =
        serde_json::from_str::<Value>(proofs.lines().nth(5).unwrap()).unwrap()["proof"].clone();
    let (seq, report) = edit_line(&out, "proofs.jsonl", 4, &log.key, |line| {
        line["proof"] = other_proof.clone();
        line.to_string()
    });
    assert_eq!(
        problems(&report),
        vec![p("INVALID", Some((seq, seq)), None)],
        "{report:#}"
    );

    // A checkpoint signed by another key proves nothing.
    let other = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(other.path());
    keygen(ORIGIN, &files, false).unwrap();
    let (code, report) = verify("--bundle", out.as_os_str(), &files.public_key);
    assert_eq!(code, 1);
    assert_eq!(report["proven"], 0, "{report:#}");
    assert!(
        reason(&report, 0).contains("not signed by the trusted key"),
        "{report:#}"
    );

    // Untouched again, it verifies.
    let (code, report) = verify("--bundle", out.as_os_str(), &log.key);
    assert_eq!(code, 0, "{report:#}");
}
