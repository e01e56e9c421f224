//! The audit stage end to end: a real Warden, real MCP clients and upstreams,
//! the real store file. Intent before execution, outcomes after, redaction,
//! failing closed on an unwritable log, and recovery after `kill -9`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The demo upstream over Streamable HTTP, appending each echoed text to
/// `calls` (it runs apart from Warden, so it outlives a Warden crash).
fn recording_upstream(calls: &Path) -> (KillOnDrop, u16) {
    let mut command = Command::new(example("demo_upstream"));
    command.env("DEMO_CALL_LOG", calls).stderr(Stdio::null());
    let (child, url) = spawn_listening(command, "demo_upstream");
    (KillOnDrop(child), port_of(&url))
}

/// A Warden (anonymous callers, extra `[audit]` keys) in front of a
/// recording upstream, and the scratch folder with the upstream's call log.
struct Audited {
    scratch: tempfile::TempDir,
    calls: PathBuf,
    _upstream: KillOnDrop,
    warden: Warden,
}

fn audited(audit_extra: &str) -> Audited {
    let scratch = tempfile::tempdir().unwrap();
    let calls = scratch.path().join("calls.log");
    let (upstream, port) = recording_upstream(&calls);
    let warden = Warden::start_with_audit(
        "",
        "allow_anonymous = true",
        &format!("[upstreams.demo]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"),
        audit_extra,
    );
    Audited {
        scratch,
        calls,
        _upstream: upstream,
        warden,
    }
}

/// What the upstream received, one echoed text per line.
fn received(calls: &Path) -> Vec<String> {
    std::fs::read_to_string(calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify(db: &Path, key: &Path) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--json", "--db"])
        .arg(db)
        .arg("--key")
        .arg(key)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!("no report: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap(), report)
}

fn export(db: &Path, out: &Path, format: &str, filters: &[&str]) -> Vec<PathBuf> {
    let result = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", format, "--db"])
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(filters)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8(result.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

async fn readiness(base: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn wait_for_readiness(base: &str, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readiness(base).await;
        if status == want || Instant::now() > deadline {
            assert_eq!(status, want, "{body:#}");
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

#[tokio::test]
async fn every_call_has_an_intent_before_and_an_outcome_after() {
    let Audited {
        scratch,
        calls,
        _upstream,
        mut warden,
    } = audited("checkpoint_interval = \"200ms\"\n[audit.redaction.tools]\necho = [\"text\"]\n");
    let (client, _) = connect(&warden.url()).await;
    let echoed = call(&client, "echo", json!({"text": "hello audit"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "hello audit");
    assert!(call(&client, "fail", json!({})).await.is_err());
    let flagged = call(&client, "tool_error", json!({})).await.unwrap();
    assert_eq!(flagged.is_error, Some(true));
    let db = warden.db();
    let all = wait_for_records(&db, |r| of_kind(r, "outcome").len() == 3).await;
    assert_eq!(warden.terminate().code(), Some(0), "{}", warden.log());

    // The intent reached the upstream only after it was in the log, and
    // the upstream received exactly the logged call.
    assert_eq!(received(&calls), ["hello audit"]);
    assert_eq!(all[0]["kind"], "log_start");
    assert_eq!(all[0]["details"]["origin"], AUDIT_ORIGIN);
    let intents = of_kind(&all, "intent");
    let outcomes = of_kind(&all, "outcome");
    assert_eq!(intents.len(), 3);
    for (intent, status) in intents.iter().zip(["ok", "error", "tool_error"]) {
        let outcome = outcomes
            .iter()
            .find(|o| o["call_id"] == intent["call_id"])
            .expect("an outcome per intent");
        assert!(intent["seq"].as_u64() < outcome["seq"].as_u64());
        assert_eq!(outcome["status"], status);
        assert_eq!(intent["principal"]["oid"], "anonymous");
        assert_eq!(intent["upstream"], "demo");
        assert!(
            intent["source_ip"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1")
        );
        assert!(outcome["duration_us"].as_u64().is_some());
    }
    assert_eq!(intents[0]["tool"], "echo");
    assert_eq!(intents[0]["arguments"], json!({"text": "hello audit"}));
    assert!(outcomes.iter().any(|o| o["error"].as_str().is_some()));

    // Sequence numbers are the positions; every record matches the schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/audit-record.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (i, record) in all.iter().enumerate() {
        assert_eq!(record["seq"], i as u64);
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{record}: {errors:?}");
    }

    let (code, report) = verify(&db, &warden.public_key());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["records"], all.len());

    // Exports: every format, and filters that select whole calls.
    let out = scratch.path().join("export");
    let jsonl = export(&db, &out, "jsonl", &[]);
    let lines = std::fs::read_to_string(&jsonl[0]).unwrap();
    assert_eq!(lines.lines().count(), all.len());
    let csv = export(&db, &out, "csv", &[]);
    let csv = std::fs::read_to_string(&csv[0]).unwrap();
    assert!(
        csv.starts_with("seq,ts,kind,call_id,principal_oid"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), all.len() + 1);
    let ocsf = export(&db, &out, "ocsf", &[]);
    let events: Vec<Value> = std::fs::read_to_string(&ocsf[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), all.len());
    assert!(events.iter().all(|e| e["class_uid"] == 6003));
    let ok = events
        .iter()
        .find(|e| e["unmapped"]["kind"] == "outcome" && e["status_id"] == 1)
        .expect("a successful outcome event");
    assert_eq!(ok["actor"]["user"]["uid"], "anonymous");
    let only_echo = export(&db, &out, "jsonl", &["--tool", "echo"]);
    let echo: Vec<Value> = std::fs::read_to_string(&only_echo[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(echo.len(), 2, "the echo call's intent and outcome");
    assert_eq!(echo[0]["call_id"], echo[1]["call_id"]);
    let none = export(&db, &out, "jsonl", &["--from", "2999-01-01"]);
    assert_eq!(std::fs::read_to_string(&none[0]).unwrap(), "");
    // A bundle with filters is a provable subset: the echo call's two
    // records, each with its inclusion proof.
    let subset = scratch.path().join("subset");
    let files = export(&db, &subset, "bundle", &["--tool", "echo"]);
    assert!(
        files.iter().any(|f| f.ends_with("proofs.jsonl")),
        "{files:?}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(subset.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["subset"]["filter"]["tool"], "echo", "{manifest:#}");
    let covered = manifest["subset"]["records"].as_u64().unwrap();
    let after = manifest["subset"]["matched_after_checkpoint"]
        .as_u64()
        .unwrap();
    assert_eq!(covered + after, 2, "{manifest:#}");
    let out_bundle = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--json", "--bundle"])
        .arg(&subset)
        .arg("--key")
        .arg(warden.public_key())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out_bundle.stdout).unwrap();
    assert_eq!(out_bundle.status.code(), Some(0), "{report:#}");
    assert_eq!(report["proven"], covered, "{report:#}");
    let bad_time = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "audit",
            "export",
            "--format",
            "csv",
            "--from",
            "yesterday",
            "--db",
        ])
        .arg(&db)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("--from: \"yesterday\""));
}

#[tokio::test]
async fn tail_follows_new_records_and_a_second_writer_is_refused() {
    let Audited {
        scratch: _scratch,
        calls: _calls,
        _upstream,
        warden,
    } = audited("");
    // One process writes a store: a second Warden on it does not start.
    let second = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(warden.config_path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another Warden process"),
        "{stderr}"
    );
    // Follow from the current end (no race with tail's own start-up).
    let end = records(&warden.db()).len().to_string();
    let mut tail = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["audit", "tail", "--from-seq", &end, "--db"])
            .arg(warden.db())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = tail.0.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take(3)
            .collect::<Vec<_>>()
    });
    let (client, _) = connect(&warden.url()).await;
    call(&client, "echo", json!({"text": "tailed"}))
        .await
        .unwrap();
    let lines = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || lines.join().unwrap()),
    )
    .await
    .expect("tail printed the call's records")
    .unwrap();
    let kinds: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].clone())
        .collect();
    // The session's start (recorded before it is answered), then the call.
    assert_eq!(kinds, [json!("auth"), json!("intent"), json!("outcome")]);
}

#[tokio::test]
async fn secrets_never_reach_the_store_the_wal_or_an_export() {
    // Values that look like secrets: redacted whatever their argument's name.
    const SECRETS: [&str; 4] = [
        "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJ0ZXN0LXNlY3JldC1qd3QifQ.c2lnbmF0dXJlLWJ5dGVz",
        "AccountKey=dGVzdC1zZWNyZXQtYWNjb3VudC1rZXktbm90LXJlYWwtMTIzNDU2Nzg5MA==",
        "https://acct.blob.core.windows.net/c/b?sv=2024-01-01&sig=TestSecretSasSig0123%3D",
        "-----BEGIN PRIVATE KEY-----\nTESTSECRETPEMBODY\n-----END PRIVATE KEY-----",
    ];
    // A plain-looking secret: redacted because its argument is named so.
    const PASSWORD: &str = "hunter2-test-password-value";
    const VISIBLE: &str = "rg-visible-marker";
    // `text` and `name` are allowlisted: secret-looking values are still redacted.
    let Audited {
        scratch,
        calls: _calls,
        _upstream,
        mut warden,
    } = audited("[audit.redaction.tools]\necho = [\"text\"]\n");
    let (client, _) = connect(&warden.url()).await;
    for secret in SECRETS {
        let args = json!({
            "text": secret,
            "name": secret,
            "password": secret,
            "admin_password": PASSWORD,
            "resource_group": VISIBLE,
            "nested": { "value": secret, "list": [secret] },
        });
        let _ = call(&client, "echo", args).await;
    }
    let db = warden.db();
    wait_for_records(&db, |r| of_kind(r, "outcome").len() == SECRETS.len()).await;

    let search = |files: &[PathBuf]| {
        for file in files {
            let bytes = std::fs::read(file).unwrap_or_default();
            let haystack = String::from_utf8_lossy(&bytes);
            assert!(
                !haystack.contains(PASSWORD),
                "{PASSWORD} found in {}",
                file.display()
            );
            for secret in SECRETS {
                // The distinctive part of each secret, so that no encoding hides it.
                let needle = secret
                    .split(['=', '\n', '.', '&'])
                    .max_by_key(|part| part.len())
                    .unwrap();
                assert!(
                    !haystack.contains(needle),
                    "{needle} found in {}",
                    file.display()
                );
            }
        }
    };
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    assert!(wal.is_file(), "the WAL exists while Warden runs");
    search(&[db.clone(), wal.clone()]);
    // The positive control: an allowlisted value is in the clear.
    let wal_and_db = [std::fs::read(&db).unwrap(), std::fs::read(&wal).unwrap()].concat();
    assert!(String::from_utf8_lossy(&wal_and_db).contains(VISIBLE));
    let intent = of_kind(&records(&db), "intent")[0].clone();
    assert!(
        intent["arguments"]["text"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );

    assert_eq!(warden.terminate().code(), Some(0));
    search(&[db.clone(), wal]);
    let mut exported = Vec::new();
    for format in ["jsonl", "csv", "ocsf", "bundle"] {
        exported.extend(export(&db, &scratch.path().join(format), format, &[]));
    }
    assert!(exported.len() >= 6, "{exported:?}");
    search(&exported);
}

#[tokio::test]
async fn an_exhausted_disk_refuses_calls_until_it_has_room() {
    let Audited {
        scratch: _scratch,
        calls,
        _upstream,
        mut warden,
    } = audited("[audit.redaction.tools]\necho = [\"text\"]\n");
    let (client, _) = connect(&warden.url()).await;
    call(&client, "echo", json!({"text": "before"}))
        .await
        .unwrap();
    wait_for_records(&warden.db(), |r| of_kind(r, "outcome").len() == 1).await;

    // No file of Warden's may grow past 4 KiB (the soft limit, which can be
    // raised again): every WAL frame write fails, and so do writes to its
    // log file, which must not stop Warden from answering.
    let pid = warden.pid().to_string();
    let limit = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=4096:"])
        .status()
        .unwrap();
    assert!(limit.success());
    let refused = call(&client, "echo", json!({"text": "refused"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("audit log unavailable"), "{refused}");
    assert!(refused.contains("not forwarded"), "{refused}");
    let body = wait_for_readiness(&warden.base(), 503).await;
    assert_eq!(body["audit"]["ready"], false, "{body:#}");
    let metrics = metric_lines(&warden.base(), &["warden_audit_writable"]).await;
    assert_eq!(metrics, "warden_audit_writable 0");
    assert_eq!(
        received(&calls),
        ["before"],
        "the refused call never reached the upstream"
    );

    let unlimited = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:"])
        .status()
        .unwrap();
    assert!(unlimited.success());
    wait_for_readiness(&warden.base(), 200).await;
    call(&client, "echo", json!({"text": "after"}))
        .await
        .unwrap();
    assert_eq!(received(&calls), ["before", "after"]);
    assert_eq!(warden.terminate().code(), Some(0));
    let (code, report) = verify(&warden.db(), &warden.public_key());
    assert_eq!(code, 0, "{report:#}");
    let texts: Vec<Value> = of_kind(&records(&warden.db()), "intent")
        .iter()
        .map(|i| i["arguments"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!("before"), json!("after")]);
}

/// Sets or clears the immutable attribute: even root cannot write the file,
/// through descriptors opened before as well.
fn immutable(paths: &[&Path], on: bool) {
    for path in paths {
        let status = Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chattr on {}", path.display());
    }
}

#[tokio::test]
async fn a_read_only_log_refuses_calls_and_an_unwritten_outcome_fails_closed() {
    let Audited {
        scratch: _scratch,
        calls,
        _upstream,
        mut warden,
    } = audited("[audit.redaction.tools]\necho = [\"text\"]\n");
    let db = warden.db();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let (client, _) = connect(&warden.url()).await;

    // A read-only log: the call is refused and never forwarded.
    immutable(&[&db, &wal], true);
    let refused = call(&client, "echo", json!({"text": "refused"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("audit log unavailable"), "{refused}");
    assert!(received(&calls).is_empty());
    immutable(&[&db, &wal], false);
    wait_for_readiness(&warden.base(), 200).await;

    // The log turns read-only while a call runs: its outcome cannot be
    // written, so Warden refuses every new call until it can.
    let (slow_client, _) = connect(&warden.url()).await;
    let slow = tokio::spawn(async move {
        call(
            &slow_client,
            "progress",
            json!({"steps": 10, "delay_ms": 100}),
        )
        .await
    });
    wait_for_records(&db, |r| {
        r.iter()
            .any(|x| x["kind"] == "intent" && x["tool"] == "progress")
    })
    .await;
    immutable(&[&db, &wal], true);
    slow.await
        .unwrap()
        .expect("the running call still completes");
    let body = wait_for_readiness(&warden.base(), 503).await;
    let detail = body["audit"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("outcome record(s) could not be written"),
        "{detail}"
    );
    let refused = call(&client, "echo", json!({"text": "refused again"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("calls are refused until"), "{refused}");
    assert!(received(&calls).is_empty());

    immutable(&[&db, &wal], false);
    wait_for_readiness(&warden.base(), 200).await;
    call(&client, "echo", json!({"text": "after"}))
        .await
        .unwrap();
    assert_eq!(received(&calls), ["after"]);
    assert_eq!(warden.terminate().code(), Some(0));
    let (code, report) = verify(&db, &warden.public_key());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        report["open_intents"],
        json!([]),
        "the held outcome was written"
    );
    let all = records(&db);
    let progress = all
        .iter()
        .find(|r| r["kind"] == "outcome" && r["tool"] == "progress")
        .expect("the progress outcome");
    assert_eq!(progress["status"], "ok");

    // Warden does not start on a log it cannot write.
    immutable(&[&db], true);
    let start = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(warden.config_path())
        .output()
        .unwrap();
    immutable(&[&db], false);
    assert!(!start.status.success());
    let stderr = String::from_utf8_lossy(&start.stderr);
    assert!(stderr.contains("opening the audit log"), "{stderr}");
    assert!(stderr.contains("warden.db"), "{stderr}");
}

#[tokio::test]
async fn after_kill_9_under_load_the_log_verifies_and_holds_every_forwarded_call() {
    let Audited {
        scratch: _scratch,
        calls,
        _upstream,
        mut warden,
    } = audited("checkpoint_interval = \"100ms\"\n[audit.redaction.tools]\necho = [\"text\"]\n");
    let url = warden.url();
    let mut load = Vec::new();
    for worker in 0..8 {
        let url = url.clone();
        load.push(tokio::spawn(async move {
            let (client, _) = connect(&url).await;
            for i in 0.. {
                let text = format!("w{worker}-{i}");
                // A call cut off by the crash may never be answered: bound it.
                let answer = tokio::time::timeout(
                    Duration::from_secs(5),
                    call(&client, "echo", json!({ "text": text })),
                )
                .await;
                if !matches!(answer, Ok(Ok(_))) {
                    return i;
                }
            }
            unreachable!()
        }));
    }
    // Let the load run until the upstream has seen a good number of calls.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received(&calls).len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    warden.kill();
    for worker in load {
        worker.await.unwrap();
    }
    let forwarded = received(&calls);
    assert!(forwarded.len() >= 200, "{}", forwarded.len());

    warden.restart();
    assert_eq!(warden.terminate().code(), Some(0), "{}", warden.log());
    let (code, report) = verify(&warden.db(), &warden.public_key());
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["open_intents"], json!([]));

    let all = records(&warden.db());
    let intents: std::collections::HashSet<String> = of_kind(&all, "intent")
        .iter()
        .map(|i| i["arguments"]["text"].as_str().unwrap().to_owned())
        .collect();
    for text in &forwarded {
        assert!(
            intents.contains(text),
            "{text} reached the upstream without an intent"
        );
    }
    assert_eq!(of_kind(&all, "log_start").len(), 2);
    // Calls the crash interrupted were closed at the restart.
    let outcomes = of_kind(&all, "outcome");
    assert_eq!(outcomes.len(), of_kind(&all, "intent").len());
}

#[tokio::test]
async fn checkpoints_on_demand_heartbeats_when_idle_and_a_held_lock_refuses() {
    let Audited {
        scratch: _scratch,
        calls,
        _upstream,
        mut warden,
    } = audited("checkpoint_interval = \"1h\"\nheartbeat_interval = \"1s\"\n");
    let checkpoints = || {
        warden::store::Reader::open(warden.db())
            .unwrap()
            .checkpoints()
            .unwrap()
            .len()
    };
    // Idle: heartbeats follow one another.
    let all = wait_for_records(&warden.db(), |r| of_kind(r, "heartbeat").len() >= 2).await;
    assert!(of_kind(&all, "heartbeat").len() >= 2);
    // SIGUSR1 signs a checkpoint now (the interval is an hour).
    let before = checkpoints();
    let signal = Command::new("kill")
        .args(["-USR1", &warden.pid().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while checkpoints() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(checkpoints(), before + 1);

    // Another process holds the write lock past the 5 s busy timeout.
    let (client, _) = connect(&warden.url()).await;
    let holder = rusqlite::Connection::open(warden.db()).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = call(&client, "echo", json!({"text": "locked out"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("audit log unavailable"), "{refused}");
    assert!(refused.contains("locked"), "{refused}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert!(received(&calls).is_empty());
    wait_for_readiness(&warden.base(), 200).await;
    call(&client, "echo", json!({"text": "unlocked"}))
        .await
        .unwrap();
    assert_eq!(received(&calls), ["unlocked"]);
    assert_eq!(warden.terminate().code(), Some(0));
    let (code, report) = verify(&warden.db(), &warden.public_key());
    assert_eq!(code, 0, "{report:#}");
}
