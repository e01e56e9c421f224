//! Tampering with a real audit log (the SQLite file, or an export bundle)
//! and the exact verdicts of `warden audit verify`.
//!
//! Every test builds the same log with the library (the real store, writer
//! thread and signer on a real file): record 0 is `log_start`, records 1..=20
//! are calls (intent, outcome), and checkpoints #1..#5 cover sizes 1, 6, 11,
//! 16 and 21. Then it edits the file the way an attacker with write access
//! would (dropping the append-only triggers first) and runs the CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use warden::audit::merkle::{Frontier, leaf_hash};
use warden::audit::note::{Checkpoint, Signer};
use warden::audit::record::{Actor, Kind, Record, Status};
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen, load_signer};
use warden::metrics::Metrics;

const ORIGIN: &str = "warden.test/tamper";

struct Log {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
    key: PathBuf,
}

fn config(files: &KeyFiles) -> AuditConfig {
    AuditConfig::quiet(files)
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

async fn build() -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let files = KeyFiles::in_dir(&dir);
    keygen(ORIGIN, &files, true).unwrap();
    let db = dir.join("warden.db");
    let audit = Audit::open(&db, config(&files), Metrics::new())
        .await
        .unwrap();
    fill(&audit).await;
    audit.close().await;
    audit.join_writer();
    Log {
        _dir: tmp,
        key: files.public_key,
        dir,
        db,
    }
}

impl Log {
    /// A connection without the append-only triggers, as an attacker would make.
    fn attacker(&self) -> Connection {
        let conn = Connection::open(&self.db).unwrap();
        for t in warden::store::APPEND_ONLY_TRIGGERS {
            conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
        }
        conn
    }

    fn signer(&self) -> Signer {
        load_signer(&KeyFiles::in_dir(&self.dir).signing_key).unwrap()
    }

    fn record(&self, conn: &Connection, seq: i64) -> Value {
        let bytes: Vec<u8> = conn
            .query_row(
                "SELECT record FROM audit_records WHERE seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Stores `value` (canonicalised) as the record at `seq`, with its leaf hash.
    fn rewrite(&self, conn: &Connection, seq: i64, value: &Value) {
        let bytes = serde_json_canonicalizer::to_vec(value).unwrap();
        conn.execute(
            "UPDATE audit_records SET record = ?1, leaf_hash = ?2 WHERE seq = ?3",
            params![bytes, &leaf_hash(&bytes)[..], seq],
        )
        .unwrap();
    }

    /// The genuine tree head at `size`.
    fn root(&self, conn: &Connection, size: i64) -> [u8; 32] {
        let mut f = Frontier::new();
        let mut stmt = conn
            .prepare("SELECT record FROM audit_records WHERE seq < ?1 ORDER BY seq")
            .unwrap();
        let rows = stmt.query_map([size], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        for bytes in rows {
            f.push(leaf_hash(&bytes.unwrap()));
        }
        f.root()
    }

    fn add_checkpoint(&self, conn: &Connection, note: &str, size: u64, root: &[u8]) {
        conn.execute(
            "INSERT INTO audit_checkpoints (size, root, frontier, note, created)
             VALUES (?1, ?2, x'', ?3, '2026-01-01T00:00:00.000000Z')",
            params![size as i64, root, note],
        )
        .unwrap();
    }
}

/// Runs `warden audit verify --json`; returns the exit code and the report.
fn verify(args: &[&Path], key: &Path) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.args(["audit", "verify", "--json"]);
    for pair in args.chunks(2) {
        cmd.arg(pair[0]).arg(pair[1]);
    }
    let out = cmd.arg("--key").arg(key).output().unwrap();
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
    verify(&[Path::new("--db"), &log.db], &log.key)
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

#[tokio::test]
async fn an_untouched_log_verifies() {
    let log = build().await;
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], 21);
    assert_eq!(report["checkpoints"], 5);
    assert_eq!(report["verified_size"], 21);
    assert_eq!(report["origin"], ORIGIN);
    assert_eq!(report["open_intents"], json!([]));
    // The text report says so too.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(&log.db)
        .arg("--key")
        .arg(&log.key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("OK: origin warden.test/tamper, 21 records, 5 checkpoints"),
        "{text}"
    );
}

#[tokio::test]
async fn an_edited_byte_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let bytes: Vec<u8> = conn
        .query_row("SELECT record FROM audit_records WHERE seq = 8", [], |r| {
            r.get(0)
        })
        .unwrap();
    let edited = String::from_utf8(bytes)
        .unwrap()
        .replace("\"echo\"", "\"echp\"");
    conn.execute(
        "UPDATE audit_records SET record = ?1 WHERE seq = 8",
        [edited.as_bytes()],
    )
    .unwrap();
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![
            p("INVALID", Some((8, 8)), None),
            p("INVALID", Some((6, 10)), Some("#3")),
            p("INVALID", Some((6, 15)), Some("#4")),
            p("INVALID", Some((6, 20)), Some("#5")),
            p("UNVERIFIED-TAIL", Some((6, 20)), None),
        ],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("leaf hash"));
}

#[tokio::test]
async fn an_edit_with_a_recomputed_leaf_hash_is_still_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let mut record = log.record(&conn, 8);
    record["tool"] = json!("delete_everything");
    log.rewrite(&conn, 8, &record);
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

#[tokio::test]
async fn a_deleted_record_leaves_a_gap() {
    let log = build().await;
    let conn = log.attacker();
    conn.execute("DELETE FROM audit_records WHERE seq = 8", [])
        .unwrap();
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

#[tokio::test]
async fn a_deletion_hidden_by_renumbering_and_rehashing_is_found() {
    let log = build().await;
    let conn = log.attacker();
    conn.execute("DELETE FROM audit_records WHERE seq = 8", [])
        .unwrap();
    for seq in 9..=20 {
        let mut record = log.record(&conn, seq);
        record["seq"] = json!(seq - 1);
        conn.execute(
            "UPDATE audit_records SET seq = ?1 WHERE seq = ?2",
            [seq - 1, seq],
        )
        .unwrap();
        log.rewrite(&conn, seq - 1, &record);
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

#[tokio::test]
async fn an_inserted_record_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    for seq in (8..=20).rev() {
        let mut record = log.record(&conn, seq);
        record["seq"] = json!(seq + 1);
        conn.execute(
            "UPDATE audit_records SET seq = ?1 WHERE seq = ?2",
            [seq + 1, seq],
        )
        .unwrap();
        log.rewrite(&conn, seq + 1, &record);
    }
    let mut forged = serde_json::to_value(call_record(Kind::Intent, 99)).unwrap();
    forged["seq"] = json!(8);
    let bytes = serde_json_canonicalizer::to_vec(&forged).unwrap();
    conn.execute(
        "INSERT INTO audit_records (seq, ts, kind, leaf_hash, record) VALUES (8, 't', 'intent', ?1, ?2)",
        params![&leaf_hash(&bytes)[..], bytes],
    )
    .unwrap();
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

#[tokio::test]
async fn reordered_records_are_invalid() {
    let log = build().await;
    let conn = log.attacker();
    // Swap rows 8 and 9 whole (bytes and leaf hashes).
    conn.execute_batch(
        "UPDATE audit_records SET seq = -1 WHERE seq = 8;
         UPDATE audit_records SET seq = 8 WHERE seq = 9;
         UPDATE audit_records SET seq = 9 WHERE seq = -1;",
    )
    .unwrap();
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

#[tokio::test]
async fn a_truncated_tail_is_missing() {
    let log = build().await;
    let conn = log.attacker();
    conn.execute("DELETE FROM audit_records WHERE seq >= 18", [])
        .unwrap();
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

#[tokio::test]
async fn records_after_the_last_checkpoint_are_an_unverified_tail() {
    let log = build().await;
    let files = KeyFiles::in_dir(&log.dir);
    let audit = Audit::open(&log.db, config(&files), Metrics::new())
        .await
        .unwrap();
    // Open writes log_start and a checkpoint; two more records get none:
    // an intent without its outcome, and a heartbeat.
    audit.append(call_record(Kind::Intent, 40)).await.unwrap();
    audit.append(Record::new(Kind::Heartbeat)).await.unwrap();
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

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let forger = Signer::generate(ORIGIN).unwrap();
    let root = log.root(&conn, 21);
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 21,
        root,
    };
    log.add_checkpoint(&conn, &forger.sign_note(&body.text()), 21, &root);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("not signed by the trusted key"));
}

#[tokio::test]
async fn an_altered_checkpoint_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let note: String = conn
        .query_row("SELECT note FROM audit_checkpoints WHERE id = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(note.contains("\n11\n"));
    conn.execute(
        "UPDATE audit_checkpoints SET note = ?1, size = 12 WHERE id = 3",
        [note.replace("\n11\n", "\n12\n")],
    )
    .unwrap();
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

#[tokio::test]
async fn an_unknown_key_verifies_nothing() {
    let log = build().await;
    let other = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(other.path());
    keygen(ORIGIN, &files, false).unwrap();
    let (code, report) = verify(&[Path::new("--db"), &log.db], &files.public_key);
    assert_eq!(code, 1);
    let mut expected: Vec<_> = (1..=5)
        .map(|i| p("INVALID", None, Some(&format!("#{i}"))))
        .collect();
    expected.push(p("UNVERIFIED-TAIL", Some((0, 20)), None));
    assert_eq!(problems(&report), expected, "{report:#}");
}

#[tokio::test]
async fn a_log_re_signed_with_another_key_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let mut record = log.record(&conn, 8);
    record["tool"] = json!("delete_everything");
    log.rewrite(&conn, 8, &record);
    // Every checkpoint replaced by the attacker's, over the edited records.
    let forger = Signer::generate(ORIGIN).unwrap();
    let sizes: Vec<i64> = conn
        .prepare("SELECT size FROM audit_checkpoints ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    conn.execute("DELETE FROM audit_checkpoints", []).unwrap();
    for size in sizes {
        let root = log.root(&conn, size);
        let body = Checkpoint {
            origin: ORIGIN.into(),
            size: size as u64,
            root,
        };
        log.add_checkpoint(&conn, &forger.sign_note(&body.text()), size as u64, &root);
    }
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    let mut expected: Vec<_> = (1..=5)
        .map(|i| p("INVALID", None, Some(&format!("#{i}"))))
        .collect();
    expected.push(p("UNVERIFIED-TAIL", Some((0, 20)), None));
    assert_eq!(problems(&report), expected, "{report:#}");
}

#[tokio::test]
async fn a_checkpoint_of_another_origin_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let root = log.root(&conn, 21);
    let body = Checkpoint {
        origin: "warden.test/other-replica".into(),
        size: 21,
        root,
    };
    log.add_checkpoint(&conn, &log.signer().sign_note(&body.text()), 21, &root);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("is not this log's origin"));
}

#[tokio::test]
async fn conflicting_checkpoints_are_a_split_view() {
    let log = build().await;
    let conn = log.attacker();
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 21,
        root: [9; 32],
    };
    log.add_checkpoint(&conn, &log.signer().sign_note(&body.text()), 21, &[9; 32]);
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

#[tokio::test]
async fn a_checkpoint_whose_size_goes_down_is_invalid() {
    let log = build().await;
    let conn = log.attacker();
    let root = log.root(&conn, 11);
    let body = Checkpoint {
        origin: ORIGIN.into(),
        size: 11,
        root,
    };
    log.add_checkpoint(&conn, &log.signer().sign_note(&body.text()), 11, &root);
    let (code, report) = verify_db(&log);
    assert_eq!(code, 1);
    assert_eq!(
        problems(&report),
        vec![p("INVALID", None, Some("#6"))],
        "{report:#}"
    );
    assert!(reason(&report, 0).contains("goes down, from 21 to 11"));
}

#[tokio::test]
async fn a_rotated_key_chains_from_the_old_one_and_a_forged_rotation_does_not() {
    let log = build().await;
    // Rotate: a new key, the old one configured as previous.
    let next = tempfile::tempdir().unwrap();
    let new_files = KeyFiles::in_dir(next.path());
    keygen(ORIGIN, &new_files, false).unwrap();
    let old_files = KeyFiles::in_dir(&log.dir);
    let mut rotated = config(&old_files);
    rotated.signing_key = new_files.signing_key.clone();
    // Without the previous key, Warden refuses to sign over the old log.
    let refused = Audit::open(&log.db, rotated.clone(), Metrics::new()).await;
    let error = refused.unwrap_err().to_string();
    assert!(error.contains("previous_signing_key"), "{error}");
    rotated.previous_signing_key = Some(old_files.signing_key.clone());
    let audit = Audit::open(&log.db, rotated, Metrics::new()).await.unwrap();
    audit.append(call_record(Kind::Intent, 60)).await.unwrap();
    audit.append(call_record(Kind::Outcome, 61)).await.unwrap();
    audit.close().await;
    audit.join_writer();
    // The old key is the root of trust; the rotation record hands over.
    let (code, report) = verify_db(&log);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], 25);

    // A rotation to the attacker's key, not endorsed by the key in effect.
    let conn = log.attacker();
    let forger = Signer::generate(ORIGIN).unwrap();
    let mut forged = Record::new(Kind::KeyRotation);
    forged.seq = 25;
    forged.details = Some(json!({
        "old_key": load_signer(&new_files.signing_key).unwrap().verifier().encode(),
        "new_key": forger.verifier().encode(),
        "endorsement": "AAAA",
    }));
    let bytes = forged.canonical().unwrap();
    conn.execute(
        "INSERT INTO audit_records (seq, ts, kind, leaf_hash, record) VALUES (25, 't', 'key_rotation', ?1, ?2)",
        params![&leaf_hash(&bytes)[..], bytes],
    )
    .unwrap();
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

#[tokio::test]
async fn a_bundle_verifies_and_an_edited_bundle_does_not() {
    let log = build().await;
    let out = log.dir.join("bundle");
    let status = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", "bundle", "--db"])
        .arg(&log.db)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let (code, report) = verify(&[Path::new("--bundle"), &out], &log.key);
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
    let (code, report) = verify(&[Path::new("--bundle"), &out], &log.key);
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

#[tokio::test]
async fn a_missing_or_wrong_key_file_cannot_verify() {
    let log = build().await;
    let (code, _) = {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["audit", "verify", "--db"])
            .arg(&log.db)
            .arg("--key")
            .arg(KeyFiles::in_dir(&log.dir).signing_key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.contains("private signing key"), "{stderr}");
        (out.status.code().unwrap(), stderr)
    };
    assert_eq!(code, 2);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db", "/nonexistent.db", "--key"])
        .arg(&log.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.db"));
}
