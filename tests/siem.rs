//! The SIEM feed end to end: a Warden in this process (anonymous callers,
//! the demo upstream over stdio) makes audit records through real MCP
//! calls, and its feed ships them over real HTTP and TCP to
//!
//! - the ARM simulator's Logs Ingestion API, with a token from the dev
//!   issuer through Warden's production `client_secret` credential;
//! - a real rsyslogd (Debian's, started by the test) over TCP and TLS;
//! - an OCSF receiver over HTTP or HTTPS that the test makes refuse, hang
//!   or take.
//!
//! Each test checks what arrived against the store: every record once, in
//! order, with its sequence number.

mod common;
#[path = "common/siem.rs"]
mod siem_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use siem_support::*;
use warden::azure::sim::{self, DEV_DCR_IMMUTABLE_ID, DEV_DCR_STREAM, SimConfig, Simulator};
use warden::identity::dev::DEV_TENANT;

/// The `[siem]` table of the tests: quick polls and retries.
const SIEM: &str = "[siem]\npoll_interval = \"50ms\"\nfirst_backoff = \"100ms\"\n";

/// No heartbeat records while a test runs: the records are the test's.
const QUIET: &str = "heartbeat_interval = \"1h\"\n";

/// A Warden (anonymous callers, the demo upstream) with `tables` after
/// its upstream (`[siem]`, `[azure]`, ...).
fn warden(tables: &str) -> InProcess {
    InProcess::start_with_audit(
        "",
        "allow_anonymous = true",
        &format!("{}{tables}", demo_stdio("demo", "siem")),
        QUIET,
    )
}

/// `n` echo calls on one session, each answered.
async fn echo_calls(warden: &InProcess, n: usize) {
    let (client, _) = connect(&warden.url()).await;
    for i in 0..n {
        let result = call(&client, "echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{}", text(&result));
    }
    let _ = client.cancel().await;
}

/// The store's records once every call made so far has its outcome.
async fn settled(warden: &InProcess, calls: usize) -> Vec<Value> {
    let records = wait_for_records(&warden.db(), |records| {
        records.iter().filter(|r| r["kind"] == "outcome").count() >= calls
    })
    .await;
    let outcomes = records.iter().filter(|r| r["kind"] == "outcome").count();
    assert!(outcomes >= calls, "{outcomes} outcomes of {calls} calls");
    records
}

/// Asserts `shipped` (in arrival order) is exactly `0..shipped.len()`,
/// each once, and covers `stored`.
fn assert_once_in_order(shipped: &[u64], stored: &[u64]) {
    let expected: Vec<u64> = (0..shipped.len() as u64).collect();
    assert_eq!(shipped, expected, "shipped out of order or twice");
    assert!(
        shipped.len() >= stored.len() && shipped[..stored.len()] == *stored,
        "shipped {shipped:?}, stored {stored:?}"
    );
}

/// Runs `command` until it exits (60 s at most): its status and stderr.
fn run_to_exit(command: &mut Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Microsoft Sentinel / Log Analytics (the simulator's Logs Ingestion API)

/// The dev issuer, the simulator (whose answers say `Retry-After: 0`), and
/// the `[azure]` tables that give Warden its production credential
/// (client secret) against the issuer.
async fn azure() -> (Issuer, Simulator, String, tempfile::TempDir) {
    let issuer = Issuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("arm-sim.db"),
        sim::dev_identity_config(&issuer.issuer, &issuer.base),
    );
    config.retry_after_secs = 0;
    let sim = Simulator::start(config).await.unwrap();
    let client = issuer.issuer.dev_client().unwrap();
    let tables = format!(
        "[azure.arm]\nendpoint = {:?}\naudience = {:?}\n\
         [azure.credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\n\
         secret_file = {:?}\nauthority_host = {:?}\n",
        sim.base_url(),
        sim::ARM_AUDIENCE,
        client.client_id,
        client.secret_file.display().to_string(),
        issuer.base,
    );
    (issuer, sim, tables, dir)
}

fn log_analytics_sink(sim: &Simulator, dcr: &str) -> String {
    format!(
        "[[siem.sink]]\nkind = \"log_analytics\"\nendpoint = {:?}\ndcr_immutable_id = {dcr:?}\n\
         stream = {DEV_DCR_STREAM:?}\n",
        sim.base_url()
    )
}

/// Every row the simulator took, in order.
fn rows(sim: &Simulator) -> Vec<Value> {
    sim.ingested().into_iter().flat_map(|b| b.rows).collect()
}

fn row_seqs(rows: &[Value]) -> Vec<u64> {
    rows.iter()
        .map(|r| r["WardenSeq"].as_u64().expect("WardenSeq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_analytics_gets_every_record_once_in_order_as_asim_rows() {
    let (issuer, sim, azure, _dir) = azure().await;
    let warden = warden(&format!(
        "{azure}{SIEM}{}",
        log_analytics_sink(&sim, DEV_DCR_IMMUTABLE_ID)
    ));
    echo_calls(&warden, 3).await;
    let records = settled(&warden, 3).await;
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let last = *stored.last().unwrap();
    let rows = poll("every record in Log Analytics", || {
        let rows = rows(&sim);
        row_seqs(&rows).contains(&last).then_some(rows)
    })
    .await;
    assert_once_in_order(&row_seqs(&rows), &stored);

    // Each row carries its record exactly as signed.
    let reader = warden::store::Reader::open(warden.db()).unwrap();
    let mut bytes = std::collections::BTreeMap::new();
    reader
        .for_each_record(0, |row| {
            bytes.insert(row.seq as u64, row.bytes);
            Ok(())
        })
        .unwrap();
    for row in &rows {
        let seq = row["WardenSeq"].as_u64().unwrap();
        let Some(stored) = bytes.get(&seq) else {
            continue;
        };
        assert_eq!(
            row["WardenRecord"].as_str().unwrap().as_bytes(),
            stored.as_slice(),
            "row {seq}"
        );
        assert_eq!(row["EventSchema"], "AuditEvent");
        assert_eq!(row["EventSchemaVersion"], "0.1");
        assert_eq!(row["EventVendor"], "Warden");
        assert_eq!(row["EventProduct"], "Warden");
    }
    let intent = rows
        .iter()
        .find(|r| r["WardenKind"] == "intent")
        .expect("an intent row");
    assert_eq!(intent["WardenTool"], "echo");
    assert_eq!(intent["TargetAppName"], "demo");
    assert_eq!(intent["DvcAction"], "Allow");
    assert_eq!(intent["EventResult"], "Success");
    assert_eq!(intent["ActorUsername"], "anonymous");
    assert!(intent["WardenCallId"].is_string());
    let outcome = rows
        .iter()
        .find(|r| r["WardenKind"] == "outcome")
        .expect("an outcome row");
    assert_eq!(outcome["WardenStatus"], "ok");
    assert_eq!(outcome["EventResult"], "Success");
    assert_eq!(outcome["WardenCallId"], intent["WardenCallId"]);

    // Every batch was authenticated as Warden's own identity, for the
    // rule and stream configured.
    let client = issuer.issuer.dev_client().unwrap();
    for batch in sim.ingested() {
        assert_eq!(batch.caller, client.client_id);
        assert_eq!(batch.dcr_immutable_id, DEV_DCR_IMMUTABLE_ID);
        assert_eq!(batch.stream, DEV_DCR_STREAM);
        assert_eq!(batch.api_version, "2023-01-01");
    }
    assert!(sim.unserved().is_empty(), "{:?}", sim.unserved());
    wait_for_metric(
        &warden.base(),
        "warden_siem_shipped_records_total{sink=\"log_analytics\"}",
        |v| v >= stored.len() as f64,
    )
    .await;
    assert_eq!(
        metric(
            &warden.base(),
            "warden_siem_failures_total{sink=\"log_analytics\"}"
        )
        .await,
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_azure_does_not_know_is_retried_until_it_exists_and_calls_go_on() {
    let (_issuer, sim, azure, _dir) = azure().await;
    let missing = "dcr-0000000000000000000000000000dead";
    let warden = warden(&format!(
        "{azure}{SIEM}{}",
        log_analytics_sink(&sim, missing)
    ));
    let base = warden.base();
    wait_for_metric(
        &base,
        "warden_siem_failures_total{sink=\"log_analytics\"}",
        |v| v >= 2.0,
    )
    .await;
    // Calls are answered while the feed cannot ship.
    echo_calls(&warden, 2).await;
    let records = settled(&warden, 2).await;
    assert!(sim.ingested().is_empty());
    let log = warden.log();
    assert!(
        log.contains(&format!(
            "answered 404 Not Found: {{\\\"error\\\":{{\\\"code\\\":\\\"NotFound\\\",\\\"message\\\":\\\"Data collection rule with immutable Id '{missing}' not found.\\\"}}}}"
        )),
        "{log}"
    );
    // The rule is created; the endpoint is down for two more requests.
    sim.fail_ingestion(2);
    sim.add_data_collection_rule(missing, &[DEV_DCR_STREAM]);
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let last = *stored.last().unwrap();
    let shipped = poll("every record once the rule exists", || {
        let seqs = row_seqs(&rows(&sim));
        seqs.contains(&last).then_some(seqs)
    })
    .await;
    assert_once_in_order(&shipped, &stored);
    assert!(warden.log().contains("answered 503 Service Unavailable"));
    let retries = metric(&base, "warden_siem_retries_total{sink=\"log_analytics\"}")
        .await
        .unwrap();
    assert!(retries >= 3.0, "{retries} retries");
}

// ---------------------------------------------------------------------------
// OCSF over HTTP(S)

fn ocsf_sink(receiver: &Receiver, extra: &str) -> String {
    format!(
        "[[siem.sink]]\nkind = \"ocsf\"\nurl = {:?}\n{extra}",
        receiver.url
    )
}

/// The OCSF events' sequence numbers once the receiver has `last`.
async fn ocsf_until(receiver: &Receiver, last: u64) -> Vec<Option<u64>> {
    poll("every record at the OCSF receiver", || {
        let seqs = ocsf_seqs(&receiver.events());
        seqs.contains(&Some(last)).then_some(seqs)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_then_hung_receiver_is_retried_and_calls_never_wait() {
    let receiver = Receiver::start(Mode::Refuse(503), None).await;
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "s3cret-token\n").unwrap();
    let warden = warden(&format!(
        "{SIEM}{}",
        ocsf_sink(
            &receiver,
            &format!(
                "timeout = \"1s\"\nbearer_token_file = {:?}\n",
                token.path().display().to_string()
            )
        )
    ));
    let base = warden.base();
    echo_calls(&warden, 2).await;
    wait_for_metric(&base, "warden_siem_retries_total{sink=\"ocsf\"}", |v| {
        v >= 2.0
    })
    .await;
    assert!(receiver.events().is_empty());
    // The receiver stops answering at all: attempts time out and are
    // retried, and calls are still answered meanwhile.
    receiver.set_mode(Mode::Hang);
    poll("a request left without an answer", || {
        (receiver.hung() >= 1).then_some(())
    })
    .await;
    echo_calls(&warden, 2).await;
    poll("a retry after a timed-out attempt", || {
        (receiver.hung() >= 2).then_some(())
    })
    .await;
    let records = settled(&warden, 4).await;
    let lag = metric(&base, "warden_siem_lag_records{sink=\"ocsf\"}")
        .await
        .unwrap();
    assert!(lag >= 1.0, "lag {lag}");
    // Back: everything arrives, once, in order.
    receiver.set_mode(Mode::Take);
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let shipped = ocsf_until(&receiver, *stored.last().unwrap()).await;
    let shipped: Vec<u64> = shipped.into_iter().map(Option::unwrap).collect();
    assert_once_in_order(&shipped, &stored);
    assert!(warden.log().contains("answered 503 Service Unavailable"));
    assert!(warden.log().contains("timed out"), "{}", warden.log());
    let authorization = receiver.authorization();
    assert!(!authorization.is_empty());
    assert!(authorization.iter().all(|a| a == "Bearer s3cret-token"));
    assert!(!warden.log().contains("s3cret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_survives_a_restart_nothing_lost_nothing_shipped_again() {
    let pki = Pki::new("Warden SIEM test CA");
    let receiver = Receiver::start(Mode::Take, Some(&pki)).await;
    let mut warden = warden(&format!(
        "{SIEM}{}",
        ocsf_sink(
            &receiver,
            &format!("ca = {:?}\n", pki.ca_file().display().to_string())
        )
    ));
    echo_calls(&warden, 2).await;
    let records = settled(&warden, 2).await;
    let last = records.last().unwrap()["seq"].as_u64().unwrap();
    ocsf_until(&receiver, last).await;
    // The cursor is saved once the receiver took the batch.
    wait_for_metric(&warden.base(), "warden_siem_cursor{sink=\"ocsf\"}", |v| {
        v >= last as f64
    })
    .await;
    let before = receiver.events().len();
    warden.restart();
    echo_calls(&warden, 2).await;
    let records = settled(&warden, 4).await;
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let shipped = ocsf_until(&receiver, *stored.last().unwrap()).await;
    let shipped: Vec<u64> = shipped.into_iter().map(Option::unwrap).collect();
    assert!(shipped.len() > before);
    assert_once_in_order(&shipped, &stored);
    // The record's own fields, in OCSF.
    let events = receiver.events();
    let outcome = events
        .iter()
        .find(|e| e["unmapped"]["kind"] == "outcome")
        .unwrap();
    assert_eq!(outcome["class_uid"], 6003);
    assert_eq!(outcome["status"], "Success");
    assert_eq!(outcome["api"]["operation"], "echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_sequence_is_reported_and_shipped_in_its_place() {
    let receiver = Receiver::start(Mode::Take, None).await;
    let mut warden = warden("");
    echo_calls(&warden, 3).await;
    settled(&warden, 3).await;
    warden.stop().unwrap();
    // Two records removed behind the store's triggers.
    {
        let conn = rusqlite::Connection::open(warden.db()).unwrap();
        conn.execute_batch(
            "DROP TRIGGER audit_records_no_delete;
             DELETE FROM audit_records WHERE seq IN (3, 4);",
        )
        .unwrap();
    }
    let mut config = std::fs::read_to_string(warden.config_path()).unwrap();
    config.push_str(&format!("{SIEM}{}", ocsf_sink(&receiver, "")));
    std::fs::write(warden.config_path(), config).unwrap();
    warden.restart();
    let stored = stored_seqs(&warden.db());
    assert!(!stored.contains(&3) && !stored.contains(&4));
    let shipped = ocsf_until(&receiver, *stored.last().unwrap()).await;
    assert_eq!(
        shipped[..6],
        [Some(0), Some(1), Some(2), None, Some(5), Some(6)]
    );
    let records: Vec<u64> = shipped.iter().flatten().copied().collect();
    assert_eq!(records[..stored.len()], *stored);
    assert_eq!(shipped.iter().filter(|s| s.is_none()).count(), 1);
    let gap = &receiver.events()[3];
    assert_eq!(
        gap["unmapped"]["gap"],
        json!({"first": 3, "last": 4, "count": 2})
    );
    assert_eq!(gap["status"], "Failure");
    let base = warden.base();
    assert_eq!(
        metric(&base, "warden_siem_gaps_total{sink=\"ocsf\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(&base, "warden_siem_missing_records_total{sink=\"ocsf\"}").await,
        Some(2.0)
    );
    assert!(
        warden
            .log()
            .contains("siem: the audit log has no records with sequence numbers 3 to 4 (2)"),
        "{}",
        warden.log()
    );
}

// ---------------------------------------------------------------------------
// syslog (CEF) to a real rsyslogd

/// The sequence numbers (`cn1`, labelled `seq`) of rsyslogd's lines.
fn syslog_seqs(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .map(|line| {
            let cef = cef_of(line);
            assert_eq!(cef_field(cef, "cn1Label").as_deref(), Some("seq"), "{line}");
            cef_field(cef, "cn1").unwrap().parse().unwrap()
        })
        .collect()
}

/// rsyslogd's lines once they hold `last`.
async fn syslog_until(rsyslog: &Rsyslog, last: u64) -> Vec<String> {
    poll("every record at rsyslogd", || {
        let lines = rsyslog.lines();
        syslog_seqs(&lines).contains(&last).then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tcp_reaches_rsyslog_as_cef_once_it_listens() {
    // A port rsyslogd will listen on; nothing does yet.
    let port = free_port();
    let warden = warden(&format!(
        "{SIEM}hostname = \"warden-test\"\n[[siem.sink]]\nkind = \"syslog\"\naddress = \"127.0.0.1:{port}\"\ntimeout = \"2s\"\n"
    ));
    wait_for_metric(
        &warden.base(),
        "warden_siem_failures_total{sink=\"syslog\"}",
        |v| v >= 1.0,
    )
    .await;
    assert!(
        warden
            .log()
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{}",
        warden.log()
    );
    echo_calls(&warden, 2).await;
    let records = settled(&warden, 2).await;
    let rsyslog = Rsyslog::start(Some(port), None);
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let lines = syslog_until(&rsyslog, *stored.last().unwrap()).await;
    assert_once_in_order(&syslog_seqs(&lines), &stored);
    for line in &lines {
        // RFC 5424: PRI, version 1, timestamp, host, app, pid, msgid, no SD.
        let fields: Vec<&str> = line.splitn(8, ' ').collect();
        assert!(
            fields[0].starts_with('<') && fields[0].ends_with(">1"),
            "{line}"
        );
        assert_eq!(fields[2], "warden-test");
        assert_eq!(fields[3], "warden");
        assert_eq!(fields[6], "-");
        assert!(fields[7].starts_with("CEF:0|Warden|Warden|"), "{line}");
    }
    let intent = lines
        .iter()
        .map(|l| cef_of(l))
        .find(|cef| cef_field(cef, "cat").as_deref() == Some("intent"))
        .expect("an intent");
    assert_eq!(cef_field(intent, "cs2").as_deref(), Some("echo"));
    assert_eq!(cef_field(intent, "cs2Label").as_deref(), Some("tool"));
    assert_eq!(cef_field(intent, "act").as_deref(), Some("allow"));
    assert_eq!(cef_field(intent, "suser").as_deref(), Some("anonymous"));
    assert_eq!(cef_field(intent, "dvchost").as_deref(), Some("warden-test"));
    let header = warden::siem::cef::parse(intent).unwrap().header;
    assert_eq!(header[4], "intent");
    assert_eq!(header[5], "Tool call allowed");
    assert!(rsyslog.output().is_empty() || !rsyslog.output().contains("error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_reaches_rsyslog_and_an_untrusted_receiver_holds_up_only_its_sink() {
    let pki = Pki::new("Warden syslog test CA");
    let other = Pki::new("Some other CA");
    let rsyslog = Rsyslog::start(None, Some(&pki));
    let sink = |name: &str, ca: &std::path::Path| {
        format!(
            "[[siem.sink]]\nkind = \"syslog\"\nname = {name:?}\naddress = \"localhost:{}\"\n\
             tls = true\nca = {:?}\ntimeout = \"2s\"\n",
            rsyslog.port,
            ca.display().to_string()
        )
    };
    let warden = warden(&format!(
        "{SIEM}{}{}",
        sink("trusted", &pki.ca_file()),
        sink("untrusted", &other.ca_file())
    ));
    echo_calls(&warden, 2).await;
    let records = settled(&warden, 2).await;
    let stored: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let lines = syslog_until(&rsyslog, *stored.last().unwrap()).await;
    // Only the trusted sink got through: each record once.
    assert_once_in_order(&syslog_seqs(&lines), &stored);
    let base = warden.base();
    wait_for_metric(
        &base,
        "warden_siem_failures_total{sink=\"untrusted\"}",
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(
        metric(&base, "warden_siem_cursor{sink=\"untrusted\"}").await,
        Some(-1.0)
    );
    assert_eq!(
        metric(&base, "warden_siem_failures_total{sink=\"trusted\"}").await,
        Some(0.0)
    );
    assert!(
        warden
            .log()
            .contains(&format!("TLS with localhost:{}", rsyslog.port)),
        "{}",
        warden.log()
    );
}

// ---------------------------------------------------------------------------
// Configuration

#[test]
fn bad_siem_configuration_is_named() {
    let dir = Setup {
        server_extra: "",
        identity: "allow_anonymous = true",
        upstreams: &demo_stdio("demo", "siem"),
        audit_extra: "",
        policy: None,
    }
    .write();
    let config = dir.path().join("warden.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let check = |siem: &str| {
        std::fs::write(&config, format!("{base}{siem}")).unwrap();
        let (status, stderr) = run_to_exit(
            Command::new(env!("CARGO_BIN_EXE_warden"))
                .arg("check-config")
                .arg(&config),
        );
        assert!(!status.success(), "{siem}: accepted");
        stderr
    };
    let stderr = check(
        "[[siem.sink]]\nkind = \"ocsf\"\nurl = \"https://ocsf.example.com/ingest\"\n\
         [[siem.sink]]\nkind = \"syslog\"\naddress = \"siem.example.com\"\n",
    );
    assert!(
        stderr.contains("siem.sink[1].address: \"siem.example.com\" must be host:port"),
        "{stderr}"
    );
    let stderr = check("[[siem.sink]]\nkind = \"syslog\"\nadress = \"siem.example.com:514\"\n");
    assert!(stderr.contains("unknown field `adress`"), "{stderr}");
    let stderr = check(
        "[[siem.sink]]\nkind = \"log_analytics\"\nendpoint = \"http://dce.example.com\"\n\
         dcr_immutable_id = \"dcr-abc\"\nstream = \"Custom-WardenAudit_CL\"\n",
    );
    assert!(
        stderr.contains("siem.sink[0].endpoint: must be an https URL"),
        "{stderr}"
    );

    // A file the sink needs is read at start: a missing one stops it.
    std::fs::write(
        &config,
        format!(
            "{base}[[siem.sink]]\nkind = \"syslog\"\naddress = \"siem.example.com:6514\"\n\
             tls = true\nca = \"missing-ca.pem\"\n"
        ),
    )
    .unwrap();
    let (status, stderr) = run_to_exit(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("serve")
            .arg("--config")
            .arg(&config),
    );
    assert!(!status.success());
    assert!(
        stderr.contains("siem.sink[0].ca: cannot read") && stderr.contains("missing-ca.pem"),
        "{stderr}"
    );
}
