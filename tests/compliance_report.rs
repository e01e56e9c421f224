//! `warden report compliance` on a store with known facts: it finds
//! exactly what was planted (an unapproved and a break-glass policy load
//! beside an approved one, break-glass use, a role assignment without
//! approval, a call without an outcome, no access review), judges each
//! control by the built-in controls file, and every number it reports is
//! recomputed here, independently, from the exported log.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::path::Path;

use common::planted::{self, Call, FRANK, GRACE, days_ago, system_record};
use serde_json::{Value, json};
use warden::audit::record::Kind;

const HASH_A: &str = "aaaa000000000000000000000000000000000000000000000000000000000000";
const HASH_B: &str = "bbbb000000000000000000000000000000000000000000000000000000000000";
const HASH_C: &str = "cccc000000000000000000000000000000000000000000000000000000000000";
const HASH_D: &str = "dddd000000000000000000000000000000000000000000000000000000000000";

fn plant(dir: &Path) -> std::path::PathBuf {
    let engine = planted::engine();
    let mut calls = planted::calls();
    // A security manager reads a Key Vault secret under a JIT grant.
    calls.push(Call {
        who: &GRACE,
        op: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        class: "privileged",
        resource: format!(
            "{}/providers/microsoft.keyvault/vaults/kv-prod",
            planted::PROD_RG
        ),
        tags: vec![("env", "dev")],
        days_ago: 12,
        jit: true,
    });
    let policy_load = |days: i64, hash: &str, trigger: &str, break_glass: bool| {
        let mut d =
            json!({"hash": hash, "trigger": trigger, "files": ["roles.cedar"], "policies": []});
        if break_glass {
            d["break_glass"] = json!(true);
        }
        system_record(Kind::PolicyLoad, days_ago(days), d)
    };
    let mut extra = vec![
        // Before the period: the set A; in it, A again (a restart, not a
        // change), B unapproved, C approved and tested, D with break glass.
        policy_load(100, HASH_A, "start", false),
        policy_load(50, HASH_A, "start", false),
        policy_load(45, HASH_B, "sighup", false),
        system_record(
            Kind::PolicyChange,
            days_ago(26),
            json!({
            "event": "approved", "proposal_id": "prop-1", "hash": HASH_C,
            "tests": {"passed": 42, "failed": 0}, "proposer": "sec-1", "approver": "sec-2"}),
        ),
        policy_load(25, HASH_C, "sighup", false),
        policy_load(15, HASH_D, "break_glass", true),
        // The JIT request behind Grace's call: approved 12 minutes later.
        system_record(
            Kind::Approval,
            days_ago(12) - chrono::Duration::minutes(20),
            json!({
            "event": "requested", "request_id": "req-x",
            "request": {"created": days_ago(12) - chrono::Duration::minutes(20), "requester": {"tid": GRACE.tid, "oid": GRACE.oid, "name": GRACE.name}}}),
        ),
        system_record(
            Kind::Approval,
            days_ago(12) - chrono::Duration::minutes(8),
            json!({
            "event": "approved", "request_id": "req-x",
            "request": {"created": days_ago(12) - chrono::Duration::minutes(20), "requester": {"tid": GRACE.tid, "oid": GRACE.oid, "name": GRACE.name}}}),
        ),
    ];
    // Risk alerts: Frank's break glass (high), and a medium one.
    let mut alert = system_record(
        Kind::RiskAlert,
        days_ago(2) + chrono::Duration::seconds(1),
        json!({"alert": "break_glass"}),
    );
    alert.risk = Some(json!({"score": 80, "level": "high"}));
    alert.principal = Some(warden::audit::record::Actor::from(&planted::principal(
        &FRANK,
    )));
    alert.call_id = Some("call-bg".into());
    alert.tool = Some("planted-tool".into());
    extra.push(alert);
    let mut alert = system_record(
        Kind::RiskAlert,
        days_ago(9),
        json!({"alert": "unusual_hour"}),
    );
    alert.risk = Some(json!({"score": 45, "level": "medium"}));
    extra.push(alert);
    // A call whose outcome never came (Warden stopped mid-call and the
    // abandoned outcome was lost).
    let lost = Call {
        days_ago: 33,
        ..planted::calls().remove(0)
    };
    let mut records = planted::call_records(&engine, &lost, days_ago(33), 900);
    records.truncate(1);
    extra.extend(records);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(planted::write_store(dir, &engine, &calls, extra))
}

fn report(args: &[&OsStr]) -> String {
    let (code, stdout, stderr) = planted::warden(args);
    assert_eq!(code, 0, "warden report failed: {stderr}\n{stdout}");
    stdout
}

fn check<'a>(report: &'a Value, control: &str, measure: &str) -> &'a Value {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == control)
        .unwrap_or_else(|| panic!("no control {control}"))["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["measure"] == measure)
        .unwrap_or_else(|| panic!("no check {measure} in {control}"))
}

fn status(report: &Value, control: &str) -> String {
    report["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == control)
        .unwrap()["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_report_finds_the_planted_facts_and_every_number_is_recomputable() {
    let tmp = tempfile::tempdir().unwrap();
    let db = plant(tmp.path());
    let key = tmp.path().join("audit.pub");
    let bundle = tmp.path().join("bundle");
    let (code, _, stderr) = planted::warden(&[
        "audit".as_ref(),
        "export".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        bundle.as_os_str(),
        "--format".as_ref(),
        "bundle".as_ref(),
    ]);
    assert_eq!(code, 0, "{stderr}");

    let args = |source: &[&OsStr]| -> Value {
        let mut a: Vec<&OsStr> = vec![
            "report".as_ref(),
            "compliance".as_ref(),
            "--standard".as_ref(),
            "sox".as_ref(),
            "--period".as_ref(),
            "2026-Q4".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--format".as_ref(),
            "json".as_ref(),
        ];
        a.extend_from_slice(source);
        serde_json::from_str(&report(&a)).expect("JSON")
    };
    let witness = tmp.path().join("witness");
    let from_store = args(&["--db".as_ref(), db.as_os_str()]);
    let from_bundle = args(&["--bundle".as_ref(), bundle.as_os_str()]);
    // The same evidence from the store and from its export.
    assert_eq!(from_store["controls"], from_bundle["controls"]);
    assert_eq!(from_store["evidence"], from_bundle["evidence"]);
    let r = &from_bundle;
    let value = |control: &str, measure: &str| check(r, control, measure)["value"].as_f64();
    let seqs = |control: &str, measure: &str| -> Vec<u64> {
        check(r, control, measure)["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect()
    };

    // The planted facts.
    assert_eq!(value("IT-001", "access_reviews_completed"), Some(0.0));
    assert_eq!(value("IT-001", "role_assignment_changes"), Some(1.0));
    assert_eq!(
        value("IT-001", "role_assignment_changes_unapproved"),
        Some(1.0)
    );
    assert_eq!(
        value("IT-001", "privileged_calls"),
        Some(2.0),
        "Frank's role assignment and Grace's secret"
    );
    assert_eq!(
        value("IT-002", "log_verified"),
        Some(1.0),
        "{:#}",
        check(r, "IT-002", "log_verified")
    );
    assert!(value("IT-002", "checkpoints_signed").unwrap() >= 1.0);
    assert_eq!(
        value("IT-002", "checkpoints_witnessed"),
        None,
        "no witness given: not applicable"
    );
    // With the witness, the period's checkpoints are found there.
    let witnessed = args(&[
        "--db".as_ref(),
        db.as_os_str(),
        "--witness".as_ref(),
        witness.as_os_str(),
    ]);
    let witnessed_seqs = &check(&witnessed, "IT-002", "checkpoints_witnessed")["seqs"];
    assert_eq!(
        witnessed_seqs,
        &check(r, "IT-002", "checkpoints_signed")["seqs"],
        "every checkpoint of the period is held by the witness"
    );
    assert!(!witnessed_seqs.as_array().unwrap().is_empty());
    assert_eq!(status(&witnessed, "IT-002"), "met");
    assert_eq!(value("IT-002", "heartbeat_gaps"), Some(0.0));
    assert_eq!(
        value("IT-003", "policy_changes_unapproved"),
        Some(2.0),
        "B and D"
    );
    assert_eq!(value("IT-003", "policy_changes_untested"), Some(2.0));
    assert_eq!(value("IT-003", "break_glass_calls"), Some(1.0));
    assert_eq!(
        value("IT-003", "privileged_without_jit"),
        Some(0.0),
        "break glass is counted as such"
    );
    assert_eq!(value("IT-004", "calls_without_outcome"), Some(1.0));
    assert_eq!(value("IT-004", "retention_ok"), Some(1.0));
    let changes = r["evidence"]["policy_changes"].as_array().unwrap();
    let hashes: Vec<&str> = changes
        .iter()
        .map(|c| c["hash"].as_str().unwrap())
        .collect();
    assert_eq!(
        hashes,
        [HASH_B, HASH_C, HASH_D],
        "A loaded again is not a change"
    );
    assert_eq!(changes[1]["proposal"], "prop-1");
    assert_eq!(changes[2]["break_glass"], true);

    // Statuses, findings and the rate, by the documented formula.
    assert_eq!(status(r, "IT-001"), "not_met");
    assert_eq!(status(r, "IT-002"), "met");
    assert_eq!(status(r, "IT-003"), "partly_met");
    assert_eq!(status(r, "IT-004"), "partly_met");
    assert_eq!(r["rate"], json!((0.0 + 1.0 + 0.5 + 0.5) / 4.0));
    let findings: Vec<String> = r["controls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        findings.contains(&"2 policy changes were loaded without a recorded approval.".to_owned()),
        "{findings:?}"
    );
    assert!(
        findings.contains(&"Break glass was used for 1 calls; each needs a review.".to_owned()),
        "{findings:?}"
    );
    assert!(
        findings.contains(&"1 calls have an intent but no outcome.".to_owned()),
        "{findings:?}"
    );
    assert!(
        findings.contains(
            &"No access review was completed in the period (0 campaigns closed).".to_owned()
        ),
        "{findings:?}"
    );

    // Every number again, from the exported records, by other code.
    let records: Vec<Value> = std::fs::read_to_string(bundle.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_q4 = |r: &Value| {
        let ts = r["ts"].as_str().unwrap();
        ("2026-10-01".."2027-01-01").contains(&ts)
    };
    let allowed_intents: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "intent" && in_q4(r) && r["decision"]["effect"] == "allow")
        .collect();
    let seq = |r: &Value| r["seq"].as_u64().unwrap();
    let has_op =
        |r: &Value, f: &dyn Fn(&Value) -> bool| r["operations"].as_array().unwrap().iter().any(f);
    let privileged: Vec<u64> = allowed_intents
        .iter()
        .filter(|r| has_op(r, &|o| o["class"] == "privileged"))
        .map(|r| seq(r))
        .collect();
    assert_eq!(seqs("IT-001", "privileged_calls"), privileged);
    let role_changes: Vec<u64> = allowed_intents
        .iter()
        .filter(|r| {
            has_op(r, &|o| {
                o["azure_op"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .starts_with("microsoft.authorization/roleassignments/w")
            })
        })
        .map(|r| seq(r))
        .collect();
    assert_eq!(seqs("IT-001", "role_assignment_changes"), role_changes);
    let break_glass: Vec<u64> = allowed_intents
        .iter()
        .filter(|r| {
            r["decision"]["alerts"]
                .to_string()
                .contains("\"break_glass\"")
        })
        .map(|r| seq(r))
        .collect();
    assert_eq!(seqs("IT-003", "break_glass_calls"), break_glass);
    assert_eq!(break_glass.len(), 1);
    let outcomes: HashSet<&str> = records
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    let without: Vec<u64> = records
        .iter()
        .filter(|r| {
            r["kind"] == "intent" && in_q4(r) && !outcomes.contains(r["call_id"].as_str().unwrap())
        })
        .map(seq)
        .collect();
    assert_eq!(seqs("IT-004", "calls_without_outcome"), without);
    let loads: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "policy_load")
        .collect();
    let mut changed = Vec::new();
    for (i, l) in loads.iter().enumerate() {
        if (i == 0 || loads[i - 1]["details"]["hash"] != l["details"]["hash"]) && in_q4(l) {
            changed.push(seq(l));
        }
    }
    assert_eq!(
        seqs("IT-003", "policy_changes_unapproved").len() + 1,
        changed.len()
    );
    let intents_q4 = records
        .iter()
        .filter(|r| r["kind"] == "intent" && in_q4(r))
        .count();
    assert_eq!(r["evidence"]["calls"], intents_q4);
    let mut per_day: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut denials: BTreeMap<String, u64> = BTreeMap::new();
    for i in records.iter().filter(|r| r["kind"] == "intent" && in_q4(r)) {
        let day = i["ts"].as_str().unwrap()[..10].to_owned();
        let e = per_day.entry(day).or_default();
        if i["decision"]["effect"] == "allow" {
            e.0 += 1
        } else {
            e.1 += 1;
            for p in i["decision"]["policies"].as_array().unwrap() {
                *denials.entry(p.as_str().unwrap().to_owned()).or_default() += 1;
            }
        }
    }
    let reported_days: BTreeMap<String, (u64, u64)> = r["evidence"]["calls_per_day"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, v)| {
            (
                d.clone(),
                (
                    v["allowed"].as_u64().unwrap(),
                    v["denied"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(reported_days, per_day);
    let reported_denials: BTreeMap<String, u64> =
        serde_json::from_value(r["evidence"]["denials_by_policy"].clone()).unwrap();
    assert_eq!(reported_denials, denials);
    let alerts_q4: BTreeMap<String, u64> = records
        .iter()
        .filter(|r| r["kind"] == "risk_alert" && in_q4(r))
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r["risk"]["level"].as_str().unwrap().to_owned())
                .or_default() += 1;
            m
        });
    assert_eq!(
        serde_json::to_value(&alerts_q4).unwrap(),
        r["evidence"]["risk_alerts_by_level"]
    );
    assert_eq!(r["evidence"]["jit"]["minutes_to_approval"], json!([12.0]));

    // The same store under ISO 27001, as text: the controls map to both.
    let text = report(&[
        "report".as_ref(),
        "compliance".as_ref(),
        "--standard".as_ref(),
        "iso27001".as_ref(),
        "--period".as_ref(),
        "2026-Q4".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
    ]);
    assert!(
        text.contains("ISO/IEC 27001:2022 (Annex A) compliance report, 2026-Q4"),
        "{text}"
    );
    assert!(
        text.contains("not applicable: no trusted key given"),
        "{text}"
    );

    // Tampering shows: a record edited in the bundle fails IT-002.
    let path = bundle.join("records.jsonl");
    let edited = std::fs::read_to_string(&path).unwrap().replacen(
        "\"effect\":\"deny\"",
        "\"effect\":\"allow\"",
        1,
    );
    std::fs::write(&path, edited).unwrap();
    let tampered = args(&["--bundle".as_ref(), bundle.as_os_str()]);
    assert_eq!(
        check(&tampered, "IT-002", "log_verified")["value"],
        json!(0.0)
    );
    assert_eq!(status(&tampered, "IT-002"), "partly_met");
}

#[test]
fn bad_arguments_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut a: Vec<&OsStr> = vec!["report".as_ref(), "compliance".as_ref()];
        a.extend(args.iter().map(OsStr::new));
        planted::warden(&a)
    };
    let db = tmp.path().join("none.db");
    let db = db.to_str().unwrap();
    let (code, _, err) = run(&["--standard", "pci", "--period", "2026-Q4", "--db", db]);
    assert_ne!(code, 0);
    assert!(
        err.contains("\"pci\" is not in the controls file (it has: iso27001, sox)"),
        "{err}"
    );
    let (code, _, err) = run(&["--standard", "sox", "--period", "2026-Q9", "--db", db]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--period: \"2026-Q9\" is not a period"),
        "{err}"
    );
    let controls = tmp.path().join("controls.toml");
    std::fs::write(&controls, "[standards]\nsox = \"SOX\"\n[[control]]\nid = \"X-1\"\nname = \"n\"\nrefs = { sox = \"r\" }\n[[control.check]]\nmeasure = \"made_up\"\nevidence = \"e\"\n").unwrap();
    let (code, _, err) = run(&[
        "--standard",
        "sox",
        "--period",
        "2026-Q4",
        "--db",
        db,
        "--controls",
        controls.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown measure \"made_up\""), "{err}");
}
