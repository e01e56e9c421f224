//! The audit log on the PostgreSQL store (`[store] url`): two Warden
//! replicas append one log, `warden audit verify --db postgres://...` and
//! `export` cover every replica's records, a stopped replica's interrupted
//! call is abandoned once, and `sslmode=require` checks the server's
//! certificate. A superuser's SQL edits are in `tests/audit_tamper.rs`,
//! which runs every tamper scenario on both backends. Each test creates
//! and drops its own schema in the local server's `test` database.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use warden::audit::record::{Kind, Record, Status};
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen};
use warden::metrics::Metrics;
use warden::store::Location;
use warden::store::postgres::ScratchSchema;

const ORIGIN: &str = "warden.test/replicas";

fn admin_url() -> String {
    common::replicas::postgres_admin()
}

/// The test audit config: checkpoints and heartbeats only when asked.
fn config(files: &KeyFiles) -> AuditConfig {
    warden::audit::AuditConfig::quiet(files)
}

fn call(kind: Kind, call: u32) -> Record {
    let mut r = Record::new(kind);
    r.call_id = Some(format!("call-{call}"));
    r.tool = Some("echo".into());
    if kind == Kind::Outcome {
        r.status = Some(Status::Ok);
    }
    r
}

/// `warden audit verify --json` of `db`: exit code and report.
fn verify(db: &str, key: &Path) -> (i32, Value) {
    common::replicas::verify_db(db, key)
}

struct Replicas {
    schema: ScratchSchema,
    _dir: tempfile::TempDir,
    key: std::path::PathBuf,
}

/// Two replicas (two `Audit`s, each with its own store writer) on one
/// schema append 20 calls each, interleaved, with checkpoints from both;
/// then both close.
async fn two_replicas_log() -> Replicas {
    let schema = ScratchSchema::create(&admin_url()).expect("PostgreSQL at 127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(dir.path());
    keygen(ORIGIN, &files, true).unwrap();
    let location = Location::Postgres(schema.url());
    let a = Audit::open(&location, config(&files), Metrics::new())
        .await
        .unwrap();
    let b = Audit::open(&location, config(&files), Metrics::new())
        .await
        .unwrap();
    let append = |audit: Arc<Audit>, first: u32| async move {
        for i in first..first + 20 {
            audit.append(call(Kind::Intent, i)).await.unwrap();
            audit.append(call(Kind::Outcome, i)).await.unwrap();
            if i % 5 == 4 {
                audit.checkpoint().await.unwrap();
            }
        }
    };
    tokio::join!(append(a.clone(), 0), append(b.clone(), 100));
    for audit in [a, b] {
        audit.close().await;
        audit.join_writer();
    }
    Replicas {
        schema,
        key: files.public_key,
        _dir: dir,
    }
}

#[tokio::test]
async fn two_replicas_write_one_log_that_verifies_and_exports() {
    let log = two_replicas_log().await;
    let (code, report) = verify(&log.schema.url(), &log.key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["origin"], ORIGIN);
    // Each replica's log_start and closing checkpoint, and 80 call records.
    let records = report["records"].as_u64().unwrap();
    assert!(records >= 82, "{report:#}");
    assert_eq!(report["verified_size"], records, "{report:#}");
    assert_eq!(report["open_intents"], serde_json::json!([]), "{report:#}");

    // The bundle holds both replicas' records and verifies offline.
    let out = tempfile::tempdir().unwrap();
    let exported = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", "bundle", "--db"])
        .arg(log.schema.url())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let bundle = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--json", "--bundle"])
        .arg(out.path())
        .arg("--key")
        .arg(&log.key)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&bundle.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["records"], records);
}

#[tokio::test]
async fn a_stopped_replicas_interrupted_call_is_abandoned_once_and_a_live_ones_is_not() {
    let schema = ScratchSchema::create(&admin_url()).expect("PostgreSQL at 127.0.0.1:5432");
    let dir = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(dir.path());
    keygen(ORIGIN, &files, true).unwrap();
    let location = Location::Postgres(schema.url());
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(
            Audit::open(&location, config(&files), Metrics::new())
                .await
                .unwrap(),
        );
    }
    let (d, c, b, a) = (
        replicas.pop().unwrap(),
        replicas.pop().unwrap(),
        replicas.pop().unwrap(),
        replicas.pop().unwrap(),
    );
    // A and C each start a call; A stops before its call ends (no
    // outcome, no closing checkpoint), as a process killed would.
    a.append(call(Kind::Intent, 1)).await.unwrap();
    c.append(call(Kind::Intent, 2)).await.unwrap();
    a.join_writer();

    let reader = warden::store::Reader::open(&location).unwrap();
    let outcomes = |id: &str| -> Vec<Value> {
        reader
            .records_of_call(id)
            .unwrap()
            .into_iter()
            .map(|(_, bytes)| serde_json::from_slice::<Value>(&bytes).unwrap())
            .filter(|r| r["kind"] == "outcome")
            .collect()
    };
    // B and D reap together until A's connection is gone, and a few times
    // more: A's call gets one `abandoned` outcome.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while outcomes("call-1").is_empty() {
        assert!(std::time::Instant::now() < deadline, "never reaped");
        let (rb, rd) = tokio::join!(b.reap_interrupted(), d.reap_interrupted());
        rb.unwrap();
        rd.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..3 {
        let (rb, rd) = tokio::join!(b.reap_interrupted(), d.reap_interrupted());
        assert_eq!(rb.unwrap() + rd.unwrap(), 0);
    }
    let abandoned = outcomes("call-1");
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert_eq!(abandoned[0]["status"], "abandoned");
    // C is alive: its call is still open, not abandoned.
    assert!(outcomes("call-2").is_empty());
    c.append(call(Kind::Outcome, 2)).await.unwrap();
    for audit in [b, c, d] {
        audit.close().await;
        audit.join_writer();
    }
    let (code, report) = verify(&schema.url(), &files.public_key);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["open_intents"], serde_json::json!([]), "{report:#}");
}

/// With `sslmode=require` the connection is TLS and the server's
/// certificate is checked: trusted through `SSL_CERT_FILE` it verifies,
/// otherwise (an unknown issuer, or a name the certificate does not carry)
/// the store cannot be opened and the error says why. The local server is
/// Debian's, whose TLS certificate is the `localhost` snakeoil one.
#[tokio::test]
async fn sslmode_require_uses_tls_and_checks_the_servers_certificate() {
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let log = two_replicas_log().await;
    let (_, ssl) = {
        let url = log.schema.url();
        let out = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let on: String = client.query_one("SHOW ssl", &[]).unwrap().get(0);
            on
        })
        .join()
        .unwrap();
        ((), out)
    };
    if ssl != "on" || !Path::new(SNAKEOIL).is_file() {
        eprintln!("skipped: this PostgreSQL serves no TLS (ssl = {ssl}) or {SNAKEOIL} is missing");
        return;
    }
    let tls_url = format!(
        "{}&sslmode=require",
        log.schema.url().replace("@127.0.0.1:", "@localhost:")
    );
    let verify_with = |url: &str, roots: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["audit", "verify", "--json", "--db", url, "--key"])
            .arg(&log.key)
            .env("SSL_CERT_FILE", roots)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = verify_with(&tls_url, SNAKEOIL);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // The system's roots do not vouch for the snakeoil certificate.
    let (code, stdout, stderr) = verify_with(&tls_url, "/etc/ssl/certs/ca-certificates.crt");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    // Trusted, but not for this name.
    let by_address = format!("{}&sslmode=require", log.schema.url());
    let (code, stdout, stderr) = verify_with(&by_address, SNAKEOIL);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}
