//! `warden risk replay`, run as a process: weeks of generated Azure
//! Activity Log history (both export shapes) with planted incidents give
//! exactly the planted alerts and responses; the replay's own format gives
//! the same; bad input names its file, line and field; and replaying the
//! audit export of a live Warden reproduces the live run's alerts (and
//! responses).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::gate::{Gate, baseline_copy, shadow_policy};
use common::*;
use serde_json::{Value, json};

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

fn run(args: &[&str]) -> Output {
    warden().args(args).output().expect("run warden")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `warden audit export --db DB --out OUT --format FORMAT`, which must succeed.
fn export(db: &std::path::Path, out: &std::path::Path, format: &str) {
    let done = run(&[
        "audit",
        "export",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        format,
    ]);
    assert!(done.status.success(), "{}", stderr(&done));
}

/// Runs a replay with `--json` and parses its report.
fn replay_json(args: &[&str]) -> Value {
    let mut all = vec!["risk", "replay", "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `(subject, hour, level)` of every alert of a report.
fn alerts(report: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for p in report["principals"].as_array().unwrap() {
        for h in p["hours"].as_array().unwrap() {
            for a in h["alerts"].as_array().unwrap() {
                out.insert((
                    p["name"].as_str().unwrap().to_owned(),
                    h["hour"].as_str().unwrap().to_owned(),
                    a["level"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

/// `(subject, hour, action)` of every response of a report: principals by
/// name, networks by network.
fn responses(report: &Value) -> BTreeSet<(String, String, String)> {
    response_list(report).into_iter().collect()
}

fn response_list(report: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let subjects = report["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .chain(
            report["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| (n["network"].as_str().unwrap(), n)),
        );
    for (subject, s) in subjects {
        for h in s["hours"].as_array().unwrap() {
            for r in h["responses"].as_array().unwrap() {
                out.push((
                    subject.to_owned(),
                    h["hour"].as_str().unwrap().to_owned(),
                    r["action"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    out
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

// ------------------------------------------------------------ generated history

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SUBSCRIPTION: &str = "5c1a2b3d-0000-4000-8000-00000000c0de";
const OID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
const TID: &str = "http://schemas.microsoft.com/identity/claims/tenantid";
const UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";

/// A principal of the generated tenant.
#[derive(Clone, Copy)]
struct Person {
    name: &'static str,
    oid: &'static str,
    app: bool,
    ip: &'static str,
    /// Minutes its working day is shifted by.
    shift: i64,
    /// Written to the `az monitor activity-log list` file (else the
    /// diagnostic-settings one).
    az: bool,
}

const ALICE: Person = Person {
    name: "alice@contoso.com",
    oid: "0a11ce00-0000-4000-8000-000000000001",
    app: false,
    ip: "10.0.1.11",
    shift: 0,
    az: true,
};
const BOB: Person = Person {
    name: "bob@contoso.com",
    oid: "0b0b0000-0000-4000-8000-000000000002",
    app: false,
    ip: "10.0.1.12",
    shift: 7,
    az: false,
};
const CAROL: Person = Person {
    name: "carol@contoso.com",
    oid: "0ca10100-0000-4000-8000-000000000003",
    app: false,
    ip: "10.0.1.13",
    shift: 13,
    az: true,
};
const DAVE: Person = Person {
    name: "dave@contoso.com",
    oid: "0da0e000-0000-4000-8000-000000000004",
    app: false,
    ip: "10.0.1.14",
    shift: 19,
    az: false,
};
const DEPLOYER: Person = Person {
    name: "deploy-pipeline",
    oid: "0de00000-0000-4000-8000-000000000005",
    app: true,
    ip: "10.6.0.5",
    shift: 0,
    az: true,
};
const PEOPLE: [Person; 5] = [ALICE, BOB, CAROL, DAVE, DEPLOYER];

/// Where the intruder granted a role from (a country the tenant never saw).
const FOREIGN_IP: &str = "10.10.0.66";
/// Where the token spray came from.
const SPRAY_IP: &str = "203.0.113.50";

const GEO: &str = "network,country,asn\n10.0.0.0/16,NL,1136\n10.0.1.0/24,NL,1136\n\
                   10.6.0.0/16,NL,8075\n10.10.0.0/16,BR,28573\n";

/// One planted call.
#[derive(Clone)]
struct Planted {
    at: DateTime<Utc>,
    who: Person,
    op: &'static str,
    resource: String,
    ip: &'static str,
    /// `Succeeded` or `Failed`.
    status: &'static str,
}

fn group_id(who: &Person) -> String {
    let group = who.name.split('@').next().unwrap();
    format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{group}")
}

fn resource(who: &Person, kind: &str, name: &str) -> String {
    format!("{}/providers/{kind}/{name}", group_id(who))
}

/// The first day of history (a Monday) and the first incident day.
fn day(n: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0).unwrap() + Duration::days(n)
}

/// Incident days: Tuesday 3 to Thursday 5 November 2026 (days 29 to 31).
const INCIDENT_DAY: i64 = 29;

/// Four weeks and three days of ordinary work, every principal, and the
/// planted incidents: alice deletes 15 VMs in a quarter of an hour on day
/// 29 at 14:05; bob assigns a role from abroad on day 30 at 11:00.
fn history() -> Vec<Planted> {
    let mut calls = Vec::new();
    for d in 0..=INCIDENT_DAY + 2 {
        let date = day(d);
        let weekday = d.rem_euclid(7) < 5;
        for who in PEOPLE {
            let at = |h: i64, m: i64| date + Duration::minutes(h * 60 + m + who.shift);
            let mut push = |at: DateTime<Utc>, op: &'static str, resource: String| {
                calls.push(Planted {
                    at,
                    who,
                    op,
                    resource,
                    ip: who.ip,
                    status: "Succeeded",
                })
            };
            if who.app {
                // Deployments at 02:00 and 14:00, every day.
                for h in [2, 14] {
                    for (k, op, kind) in [
                        (0, "Microsoft.Web/sites/write", "Microsoft.Web/sites"),
                        (1, "Microsoft.Web/sites/config/write", "Microsoft.Web/sites"),
                        (
                            2,
                            "Microsoft.Compute/virtualMachines/write",
                            "Microsoft.Compute/virtualMachines",
                        ),
                        (3, "Microsoft.Web/sites/write", "Microsoft.Web/sites"),
                    ] {
                        push(at(h, k), op, resource(&who, kind, &format!("app-{k}")));
                    }
                }
                continue;
            }
            if !weekday {
                continue;
            }
            let vm = |n: &str| {
                resource(
                    &who,
                    "Microsoft.Compute/virtualMachines",
                    &format!("vm-{d}-{n}"),
                )
            };
            push(
                at(9, 10),
                "Microsoft.Web/sites/write",
                resource(&who, "Microsoft.Web/sites", "web"),
            );
            push(
                at(9, 40),
                "Microsoft.Storage/storageAccounts/write",
                resource(&who, "Microsoft.Storage/storageAccounts", "st"),
            );
            push(
                at(10, 20),
                "Microsoft.Compute/virtualMachines/start/action",
                vm("a"),
            );
            push(
                at(11, 0),
                "Microsoft.Compute/virtualMachines/delete",
                vm("b"),
            );
            push(
                at(13, 30),
                "Microsoft.Web/sites/config/write",
                resource(&who, "Microsoft.Web/sites", "web"),
            );
            push(
                at(15, 0),
                "Microsoft.Compute/virtualMachines/deallocate/action",
                vm("a"),
            );
            if d % 2 == 0 {
                push(
                    at(16, 0),
                    "Microsoft.Compute/disks/delete",
                    resource(&who, "Microsoft.Compute/disks", &format!("disk-{d}")),
                );
            }
        }
    }
    // Alice's mass deletion.
    for i in 0..15 {
        calls.push(Planted {
            at: day(INCIDENT_DAY) + Duration::minutes(14 * 60 + 5) + Duration::seconds(60 * i),
            who: ALICE,
            op: "Microsoft.Compute/virtualMachines/delete",
            resource: resource(
                &ALICE,
                "Microsoft.Compute/virtualMachines",
                &format!("prod-{i:02}"),
            ),
            ip: ALICE.ip,
            status: "Succeeded",
        });
    }
    // Bob's account grants a role from abroad.
    calls.push(Planted {
        at: day(INCIDENT_DAY + 1) + Duration::hours(11),
        who: BOB,
        op: "Microsoft.Authorization/roleAssignments/write",
        resource: format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/7c1d0e55-0000-4000-8000-000000000009",
            group_id(&BOB)
        ),
        ip: FOREIGN_IP,
        status: "Succeeded",
    });
    calls.sort_by_key(|c| c.at);
    calls
}

fn claims(who: &Person, ip: &str) -> Value {
    if who.app {
        json!({OID: who.oid, TID: TENANT, "appid": "3f0b1c2d-0000-4000-8000-0000000000a1", "idtyp": "app", "ipaddr": ip})
    } else {
        json!({OID: who.oid, TID: TENANT, UPN: who.name, "name": who.name, "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "idtyp": "user", "ipaddr": ip})
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// An event as `az monitor activity-log list` writes it.
fn az_event(c: &Planted, n: usize, status: &str, at: DateTime<Utc>) -> Value {
    let started = status == "Started";
    let mut event = json!({
        "authorization": {"action": c.op, "scope": c.resource},
        "caller": if c.who.app { c.who.oid } else { c.who.name },
        "category": {"localizedValue": "Administrative", "value": "Administrative"},
        "claims": claims(&c.who, c.ip),
        "correlationId": format!("c0e1a7e0-0000-4000-8000-{n:012}"),
        "description": "",
        "eventDataId": format!("{n}-{status}"),
        "eventName": {"localizedValue": if started { "Begin request" } else { "End request" }, "value": if started { "BeginRequest" } else { "EndRequest" }},
        "eventTimestamp": rfc3339(at),
        "id": format!("{}/events/{n}-{status}", c.resource),
        "level": "Informational",
        "operationId": format!("op-{n}"),
        "operationName": {"localizedValue": c.op, "value": c.op},
        "resourceGroupName": group_id(&c.who).rsplit('/').next().unwrap(),
        "resourceId": c.resource,
        "resourceProviderName": {"value": c.op.split('/').next().unwrap()},
        "status": {"localizedValue": status, "value": status},
        "subStatus": {"localizedValue": "", "value": if started { "" } else { "OK" }},
        "submissionTimestamp": rfc3339(at + Duration::seconds(20)),
        "subscriptionId": SUBSCRIPTION,
        "tenantId": TENANT
    });
    if started {
        event["httpRequest"] =
            json!({"clientIpAddress": c.ip, "clientRequestId": format!("r{n}"), "method": "PUT"});
    }
    event
}

/// A record of a diagnostic setting's export (storage account, event hub).
fn diagnostic_record(c: &Planted, n: usize, result: &str, at: DateTime<Utc>) -> Value {
    json!({
        "time": rfc3339(at),
        "resourceId": c.resource.to_uppercase(),
        "operationName": c.op.to_uppercase(),
        "category": "Administrative",
        "resultType": result,
        "resultSignature": if result == "Start" { "Started." } else { "Succeeded.OK" },
        "durationMs": "0",
        "callerIpAddress": c.ip,
        "correlationId": format!("d1a90000-0000-4000-8000-{n:012}"),
        "identity": {"authorization": {"scope": c.resource, "action": c.op,
                      "evidence": {"role": "Contributor", "principalType": if c.who.app { "ServicePrincipal" } else { "User" }}},
                     "claims": claims(&c.who, c.ip)},
        "level": "Information",
        "location": "global",
        "properties": {"statusCode": "OK", "serviceRequestId": null, "eventCategory": "Administrative"}
    })
}

/// The history written as an `az monitor activity-log list` array
/// (newest first) and a diagnostic-settings JSON Lines file; the paths.
fn write_activity_log(dir: &Path, calls: &[Planted]) -> (PathBuf, PathBuf) {
    let mut az = Vec::new();
    let mut diagnostic = String::new();
    for (n, c) in calls.iter().enumerate() {
        let end = c.at + Duration::seconds(3);
        if c.who.az {
            az.push(az_event(c, n, "Started", c.at));
            az.push(az_event(c, n, c.status, end));
        } else {
            diagnostic.push_str(&diagnostic_record(c, n, "Start", c.at).to_string());
            diagnostic.push('\n');
            diagnostic.push_str(&diagnostic_record(c, n, "Success", end).to_string());
            diagnostic.push('\n');
        }
    }
    // A policy evaluation: not a call.
    az.push(json!({
        "category": {"value": "Policy"}, "caller": "Microsoft.PolicyInsights",
        "eventTimestamp": rfc3339(day(3)), "operationName": {"value": "Microsoft.Authorization/policies/audit/action"},
        "status": {"value": "Succeeded"}, "resourceId": group_id(&ALICE), "correlationId": "p-1"
    }));
    az.sort_by_key(|e| std::cmp::Reverse(e["eventTimestamp"].as_str().unwrap().to_owned()));
    let az_path = dir.join("activity-log.json");
    std::fs::write(&az_path, serde_json::to_string_pretty(&az).unwrap()).unwrap();
    let diagnostic_path = dir.join("PT1H.json");
    std::fs::write(&diagnostic_path, diagnostic).unwrap();
    (az_path, diagnostic_path)
}

/// Authentication attempts in the replay's own format: a daily sign-in
/// from the office, and a spray of 25 refused tokens from one address on
/// day 31 at 03:00, 5 more inside the block's cool-down, one after it.
fn write_attempts(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for d in 0..=INCIDENT_DAY + 2 {
        lines.push(json!({"time": rfc3339(day(d) + Duration::hours(9)), "kind": "auth", "source_ip": "10.0.1.11", "outcome": "ok"}));
    }
    let spray = day(INCIDENT_DAY + 2) + Duration::hours(3);
    for i in 0..25 {
        lines.push(json!({"time": rfc3339(spray + Duration::seconds(10 * i)), "kind": "auth", "source_ip": SPRAY_IP, "outcome": "failed"}));
    }
    for i in 0..5 {
        lines.push(json!({"time": rfc3339(spray + Duration::minutes(10) + Duration::seconds(i)), "kind": "auth", "source_ip": SPRAY_IP, "outcome": "failed"}));
    }
    lines.push(json!({"time": rfc3339(spray + Duration::minutes(40)), "kind": "auth", "source_ip": SPRAY_IP, "outcome": "failed"}));
    let path = dir.join("auth.jsonl");
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
    path
}

/// The same calls in the replay's own format.
fn write_own(dir: &Path, calls: &[Planted]) -> PathBuf {
    let mut text = String::new();
    for c in calls {
        let line = json!({
            "time": rfc3339(c.at),
            "kind": if c.who.app { "app" } else { "user" },
            "principal": {"tid": TENANT, "oid": c.who.oid, "name": c.who.name},
            "operation": c.op,
            "resource": c.resource,
            "source_ip": c.ip,
            "outcome": c.status.to_lowercase(),
        });
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let path = dir.join("calls.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn planted_alerts() -> BTreeSet<(String, String, String)> {
    set(&[
        (ALICE.name, "2026-11-03T14:00:00Z", "high"),
        (BOB.name, "2026-11-04T11:00:00Z", "critical"),
    ])
}

fn planted_responses() -> BTreeSet<(String, String, String)> {
    set(&[
        (ALICE.name, "2026-11-03T14:00:00Z", "suspend"),
        (ALICE.name, "2026-11-03T14:00:00Z", "incident"),
        (BOB.name, "2026-11-04T11:00:00Z", "revoke"),
        (BOB.name, "2026-11-04T11:00:00Z", "incident"),
        ("203.0.113.50/32", "2026-11-05T03:00:00Z", "block"),
    ])
}

/// Checks a report of the planted history (from any input format).
fn check_planted(report: &Value, calls: &[Planted]) {
    assert_eq!(report["version"], 1);
    assert_eq!(alerts(report), planted_alerts(), "{report:#}");
    // Exactly these, each once.
    let list = response_list(report);
    assert_eq!(list.len(), 5, "{list:?}");
    assert_eq!(responses(report), planted_responses(), "{report:#}");
    let s = &report["summary"];
    assert_eq!(s["calls"], calls.len());
    assert_eq!(s["alerts"], 2);
    assert_eq!(s["responses"], 5);
    assert_eq!(s["principals_suspended"], 1);
    assert_eq!(s["networks_blocked"], 1);
    assert_eq!(s["responses_by_action"]["incident"]["enforce"], 2);
    // Alice's later calls are stopped: the rest of the burst and the days after.
    let alice = report["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == ALICE.name)
        .unwrap();
    let suspended_at = alice["hours"][0]["responses"][0]["time"].as_str().unwrap();
    assert_eq!(alice["hours"][0]["responses"][0]["action"], "suspend");
    assert_eq!(alice["hours"][0]["responses"][0]["mode"], "enforce");
    let suspended_at: DateTime<Utc> = suspended_at.parse().unwrap();
    let later = calls
        .iter()
        .filter(|c| c.who.oid == ALICE.oid && c.at > suspended_at)
        .count();
    assert!(later > 10, "{later}");
    assert_eq!(s["calls_stopped_by_suspension"], later);
    assert_eq!(alice["stopped_by_suspension"], later);
    assert_eq!(
        s["scored"].as_u64().unwrap() + later as u64,
        calls.len() as u64
    );
    // The burst reached the floor within its first deletes.
    let first_burst = day(INCIDENT_DAY) + Duration::minutes(14 * 60 + 5);
    assert!(
        suspended_at - first_burst <= Duration::minutes(8),
        "{suspended_at}"
    );
    let alert = &alice["hours"][0]["alerts"][0];
    assert_eq!(alert["floor"], "delete_spike");
    // Bob's grant: critical, revoked, from a country never seen.
    let bob = report["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == BOB.name)
        .unwrap();
    let alert = &bob["hours"][0]["alerts"][0];
    assert_eq!(alert["floor"], "privilege_grant_without_approval");
    let codes: Vec<&str> = alert["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"new_country"), "{codes:?}");
    assert_eq!(
        alert["operation"],
        "Microsoft.Authorization/roleAssignments/write"
    );
    let revoke = &bob["hours"][0]["responses"][0];
    assert_eq!(revoke["action"], "revoke");
    assert_eq!(revoke["rule"], "unapproved-privilege-grant");
    // The spray: blocked at its 20th refusal; its last 5 and the 5 ten
    // minutes later are stopped in the cool-down, the one after it is not.
    let network = &report["networks"][0];
    assert_eq!(network["network"], "203.0.113.50/32");
    let block = &network["hours"][0]["responses"][0];
    assert_eq!(block["attempts"], 20);
    assert_eq!(block["failures"], 20);
    assert_eq!(network["stopped_by_block"], 10);
    assert_eq!(s["events_stopped_by_blocks"], 10);
    assert_eq!(s["auth_attempts"], 32 + 25 + 5 + 1);
}

#[test]
fn a_months_activity_log_gives_exactly_the_planted_alerts_and_responses() {
    let dir = tempfile::tempdir().unwrap();
    let calls = history();
    let (az, diagnostic) = write_activity_log(dir.path(), &calls);
    let attempts = write_attempts(dir.path());
    let geo = dir.path().join("geo.csv");
    std::fs::write(&geo, GEO).unwrap();
    let report = replay_json(&[
        "--events",
        az.to_str().unwrap(),
        "--events",
        diagnostic.to_str().unwrap(),
        "--events",
        attempts.to_str().unwrap(),
        "--geo",
        geo.to_str().unwrap(),
    ]);
    let formats: Vec<&str> = report["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["activity-log", "activity-log", "jsonl"]);
    // Two events per call, collapsed into one; the policy event skipped.
    assert_eq!(report["sources"][0]["skipped"], 1);
    let az_calls = calls.iter().filter(|c| c.who.az).count();
    assert_eq!(report["sources"][0]["events"], az_calls);
    assert_eq!(report["sources"][0]["records"], 2 * az_calls + 1);
    assert_eq!(
        report["sources"][1]["records"],
        2 * (calls.len() - az_calls)
    );
    check_planted(&report, &calls);
    assert_eq!(report["first"], "2026-10-05T02:00:00Z");

    // The text report says the same for people.
    let out = run(&[
        "risk",
        "replay",
        "--events",
        az.to_str().unwrap(),
        diagnostic.to_str().unwrap(),
        attempts.to_str().unwrap(),
        "--geo",
        geo.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "alice@contoso.com (72f988bf-86f1-41af-91ab-2d7cd011db47/0a11ce00-0000-4000-8000-000000000001)",
        "  2026-11-03 14:00 UTC",
        "suspend (rule mass-deletion, enforce)",
        "revoke (rule unapproved-privilege-grant, enforce) at 11:00:00 on Microsoft.Authorization/roleAssignments/write",
        "network 203.0.113.50/32: 10 events stopped by its block",
        "block (rule authentication-failures, enforce) at 03:03:10 203.0.113.50/32: 20 attempts, 20 failed",
        "  alerts: 2 (critical 1, high 1)",
    ] {
        assert!(text.contains(part), "{part}:\n{text}");
    }

    // In notify mode nothing is stopped, and the report says what
    // enforcing would have stopped.
    let config = dir.path().join("warden.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:1\"\n\
         [[response.rules]]\nname = \"mass-deletion\"\non = \"floor:delete_spike\"\nactions = [\"suspend\"]\nmode = \"notify\"\n\
         [[response.rules]]\nname = \"spray\"\non = \"auth_failures\"\nactions = [\"block\"]\nmode = \"notify\"\n",
    )
    .unwrap();
    let report = replay_json(&[
        "--events",
        az.to_str().unwrap(),
        "--events",
        diagnostic.to_str().unwrap(),
        "--events",
        attempts.to_str().unwrap(),
        "--geo",
        geo.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let s = &report["summary"];
    assert_eq!(s["calls_stopped_by_suspension"], 0);
    assert_eq!(s["events_stopped_by_blocks"], 0);
    assert_eq!(s["scored"], calls.len());
    assert!(
        s["calls_after_notify_suspension"].as_u64().unwrap() > 10,
        "{s}"
    );
    assert_eq!(s["events_after_notify_block"], 10);
    assert_eq!(s["principals_suspended"], 0);
    assert!(
        s["responses_by_action"]["suspend"]["notify"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(s["responses_by_action"]["block"]["notify"], 1);
    assert!(s["responses_by_action"].get("revoke").is_none(), "{s}");
}

#[test]
fn the_own_format_round_trips_the_same_history_also_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let calls = history();
    let own = write_own(dir.path(), &calls);
    let attempts = write_attempts(dir.path());
    let geo = dir.path().join("geo.csv");
    std::fs::write(&geo, GEO).unwrap();
    let report = replay_json(&[
        "--format",
        "jsonl",
        "--events",
        own.to_str().unwrap(),
        "--events",
        attempts.to_str().unwrap(),
        "--geo",
        geo.to_str().unwrap(),
    ]);
    assert_eq!(report["sources"][0]["records"], calls.len());
    check_planted(&report, &calls);

    // From standard input, merged with a file.
    let mut child = warden()
        .args([
            "risk",
            "replay",
            "--json",
            "--events",
            "-",
            "--events",
            attempts.to_str().unwrap(),
            "--geo",
            geo.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(&own).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&input).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let piped: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(piped["sources"][0]["file"], "<stdin>");
    assert_eq!(piped["summary"], report["summary"]);
    assert_eq!(alerts(&piped), planted_alerts());
}

#[test]
fn bad_input_names_the_file_line_and_field_and_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o", "operation": "Microsoft.Web/sites/write"}).to_string();
    let cases = [
        (
            json!({"time": "2026-11-02 09:00", "kind": "user", "principal": "t/o", "operation": "Microsoft.Web/sites/write"}).to_string(),
            "bad-time.jsonl:3: field `time`: \"2026-11-02 09:00\" is not an RFC 3339 time",
        ),
        (
            json!({"time": "2026-11-02T09:00:00Z", "kind": "robot", "principal": "t/o", "operation": "Microsoft.Web/sites/write"}).to_string(),
            "bad-kind.jsonl:3: field `kind`: unknown kind \"robot\": one of user, app, auth",
        ),
        (
            "{\"time\": \"2026-11-02T09:00:00Z\", \"kind\": ".to_owned(),
            "bad-json.jsonl:3: malformed JSON",
        ),
    ];
    for (bad, expected) in cases {
        let name = expected.split(':').next().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{good}\n\n{bad}\n{good}\n")).unwrap();
        let out = run(&["risk", "replay", "--events", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(out.stdout.is_empty(), "nothing is half-reported");
        let err = stderr(&out);
        assert!(err.contains(expected), "{expected}:\n{err}");
    }

    // An Activity Log array names the index of the bad event.
    let path = dir.path().join("activity.json");
    std::fs::write(
        &path,
        json!([
            {"eventTimestamp": "2026-11-02T09:00:00Z", "operationName": {"value": "Microsoft.Web/sites/write"}, "caller": "a@b.c", "category": {"value": "Administrative"}},
            {"eventTimestamp": "2026-11-02T09:00:00Z", "caller": "a@b.c", "category": {"value": "Administrative"}},
        ])
        .to_string(),
    )
    .unwrap();
    let out = run(&["risk", "replay", "--events", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("activity.json[1]: field `operationName`: missing"),
        "{}",
        stderr(&out)
    );

    // A file that is not there, a format the data is not in, a bad config.
    let out = run(&["risk", "replay", "--events", "/nonexistent/x.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/x.json: cannot read"),
        "{}",
        stderr(&out)
    );
    let path = dir.path().join("calls.jsonl");
    std::fs::write(&path, format!("{good}\n")).unwrap();
    let out = run(&[
        "risk",
        "replay",
        "--format",
        "warden",
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("calls.jsonl:1: field `principal`: invalid type"),
        "{}",
        stderr(&out)
    );
    let config = dir.path().join("warden.toml");
    std::fs::write(&config, "[risk]\nhigh = 500\n").unwrap();
    let out = run(&[
        "risk",
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--events",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("warden.toml:2:"), "{}", stderr(&out));
}

// ------------------------------------------------------------ a live Warden

const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
class = "delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

/// Levels low enough that a burst of deletes by a new principal reaches
/// `high` (as in tests/risk.rs), and a rule that says, for every call at
/// high, what it would have done (records, stops nothing).
const TABLES: &str = "[risk]\nmedium = 25\nhigh = 40\ncritical = 90\n\
     [[response.rules]]\nname = \"watch-high\"\non = \"level:high\"\nactions = [\"suspend\", \"incident\"]\nmode = \"notify\"\n";

fn vm(name: &str) -> Value {
    json!({"text": name, "subscription": SUB, "resource-group": "dev-web", "vm": name})
}

/// Posts an MCP `initialize` with a token that is no token.
async fn refused_token(url: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("authorization", "Bearer not-a-jwt")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn hour_of(ts: &str) -> String {
    let t: DateTime<Utc> = ts.parse().unwrap();
    let hour = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(hour, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn replaying_a_live_wardens_export_reproduces_its_alerts_and_responses() {
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), None);
    // No resource of this catalog is in the simulator's estate: the
    // guardrail for deletes of unknown resources is recorded, not enforced
    // (the test is about the risk stage).
    shadow_policy(&policies, "delete-without-facts-requires-jit");
    let mut gate =
        Gate::start_in_process_with_arm(TEST_CATALOG, &format!("dir = {policies:?}\n"), TABLES)
            .await;
    let carol = gate.client("carol", &["Contributor"], true).await;
    let dave = gate.client("dave", &["Contributor"], true).await;
    for i in 0..3 {
        let read = call(&dave, "add", json!({"a": i, "b": 1, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}))
            .await
            .unwrap();
        assert_ne!(read.is_error, Some(true), "{}", text(&read));
    }
    // Carol deletes VM after VM until the burst is held for approval.
    let mut ran = 0;
    let mut held = None;
    for i in 1..=15 {
        let name = format!("vm-{i:02}");
        let result = call(&carol, "echo", vm(&name)).await.unwrap();
        if result.is_error == Some(true) {
            held = Some((name, text(&result)));
            break;
        }
        ran += 1;
    }
    let (held_vm, message) = held.expect("a burst of 15 deletes is held");
    assert!(ran >= 3, "the first deletes run");
    // Tokens refused from the same address (a finding on the next calls),
    // a second attempt, held too; then a security manager approves and the
    // retry runs under the grant.
    for _ in 0..3 {
        assert_eq!(refused_token(&gate.warden.url()).await, 401);
    }
    let again = call(&carol, "echo", vm("vm-99")).await.unwrap();
    assert!(
        text(&again).contains("Held for approval"),
        "{}",
        text(&again)
    );
    let manager = gate.token("sam", &["SecurityManager"], true);
    let approved = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/requests/{}/approve",
            gate.warden.base(),
            request_id(&message)
        ))
        .bearer_auth(&manager)
        .json(&json!({ "reason": "planned cleanup" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let retried = call(&carol, "echo", vm(&held_vm)).await.unwrap();
    assert_ne!(retried.is_error, Some(true), "{}", text(&retried));
    drop((carol, dave));
    gate.warden.stop().expect("a clean stop");

    let db = gate.warden.db();
    let records = records(&db);
    let live_alerts: BTreeSet<(String, String, String)> = records
        .iter()
        .filter(|r| r["kind"] == "risk_alert")
        .map(|r| {
            (
                r["principal"]["name"].as_str().unwrap().to_owned(),
                hour_of(r["ts"].as_str().unwrap()),
                r["risk"]["level"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(!live_alerts.is_empty(), "the burst raised a risk alert");
    let mut live_responses: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| {
            r["kind"] == "response"
                && r["details"]["action"] != "incident"
                && matches!(r["details"]["result"].as_str(), Some("done" | "would"))
        })
        .map(|r| {
            (
                r["principal"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                hour_of(r["ts"].as_str().unwrap()),
                r["details"]["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    live_responses.sort();

    let out_dir = scratch.path().join("export");
    export(&db, &out_dir, "jsonl");
    let exported = out_dir.join("audit.jsonl");
    let config = gate.warden.config_path();
    let report = replay_json(&[
        "--events",
        exported.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(report["sources"][0]["format"], "warden");
    assert_eq!(alerts(&report), live_alerts, "{report:#}");
    if !live_responses.is_empty() {
        let mut replayed: Vec<(String, String, String)> = response_list(&report)
            .into_iter()
            .filter(|r| r.2 != "incident")
            .collect();
        replayed.sort();
        assert_eq!(replayed, live_responses, "{report:#}");
    }
    // A whole-log bundle directory replays the same.
    let bundle = scratch.path().join("bundle");
    export(&db, &bundle, "bundle");
    let from_bundle = replay_json(&[
        "--events",
        bundle.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(from_bundle["summary"], report["summary"]);
    assert_eq!(alerts(&from_bundle), live_alerts);
    // Carol's calls all scored (none stopped: the rule only notifies).
    let s = &report["summary"];
    assert_eq!(s["calls_stopped_by_suspension"], 0);
    assert!(s["auth_attempts"].as_u64().unwrap() >= 3 + 2, "{s}");
}
