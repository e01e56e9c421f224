//! Risk scoring end to end: a real Warden with the baseline policies, dev
//! tokens, the demo upstream (whose `echo` records every call it
//! receives), a webhook receiver, and the store's records and baselines.
//!
//! The test catalog makes `echo` a VM delete, `add` a VM read and `whoami`
//! a VM restart, on the VM their arguments name.

mod common;

use common::gate::{Gate, baseline_copy, shadow_policy};
use common::*;
use serde_json::{Value, json};

const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
class = "delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.whoami]
op = "Microsoft.Compute/virtualMachines/restart/action"
class = "action"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

/// Levels low enough that a burst of a dozen deletes by a new principal
/// reaches `high` before the delete floor (more than five times the usual
/// deletes in an hour) would.
const RISK: &str = "[risk]\nmedium = 25\nhigh = 40\ncritical = 90\n";

fn vm(text: &str, vm: &str) -> Value {
    json!({"text": text, "subscription": SUB, "resource-group": "dev-web", "vm": vm})
}

fn intent<'a>(records: &'a [Value], call_id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["kind"] == "intent" && r["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no intent for call {call_id}"))
}

/// The call id a tool error names: "(call ID)" at its end.
fn call_id_in(message: &str) -> String {
    message
        .rsplit_once("(call ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no call id in {message}"))
        .to_owned()
}

#[tokio::test]
async fn a_delete_burst_is_held_alerted_once_and_remembered_across_a_restart() {
    let (hook, notifications) = webhook().await;
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), None);
    // This Warden has no Azure to look the VMs up in, so the baseline would
    // hold every delete for its unknown tags before the risk stage has a
    // say; the test is about the risk stage, so that guardrail is recorded,
    // not enforced.
    shadow_policy(&policies, "delete-without-facts-requires-jit");
    let mut gate = Gate::start_in_process(
        TEST_CATALOG,
        &format!("dir = {policies:?}\n"),
        &format!("{RISK}[approvals.notify]\nwebhooks = [{hook:?}]\nfirst_backoff = \"10ms\"\n"),
    )
    .await;
    let carol = gate.client("carol", &["Contributor"], true).await;

    // (a) One principal deletes VM after VM: the first run, until the
    // burst scores high and the baseline policy holds the next one.
    let mut ran = Vec::new();
    let mut held = None;
    for i in 1..=15 {
        let name = format!("vm-{i:02}");
        let result = call(&carol, "echo", vm(&name, &name)).await.unwrap();
        if result.is_error == Some(true) {
            held = Some((name, text(&result)));
            break;
        }
        ran.push(name);
    }
    let (held_vm, message) = held.expect("a burst of 15 deletes is never held");
    assert!(ran.len() >= 3, "the first deletes run: {ran:?}");
    assert_eq!(
        gate.received(),
        ran,
        "the held delete never reached the upstream"
    );
    for part in [
        "Held for approval",
        "\"high-risk-requires-jit\"",
        "Microsoft.Compute/virtualMachines/delete",
        "is pending",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    // Two more in the same hour: held too, and no second alert.
    for name in ["vm-98", "vm-99"] {
        let again = call(&carol, "echo", vm(name, name)).await.unwrap();
        assert!(
            text(&again).contains("Held for approval"),
            "{}",
            text(&again)
        );
    }

    let held_call = call_id_in(&message);
    let records = wait_for_records(&gate.warden.db(), |all| {
        all.iter().filter(|r| r["kind"] == "outcome").count() >= ran.len() + 3
    })
    .await;
    let risk = &intent(&records, &held_call)["risk"];
    assert_eq!(risk["level"], "high", "{risk}");
    assert!(risk["score"].as_u64().unwrap() >= 40, "{risk}");
    let spike = risk["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "delete_spike")
        .unwrap_or_else(|| panic!("no delete_spike in {risk}"));
    let spike_text = spike["text"].as_str().unwrap();
    assert!(
        spike_text.contains("deletes in the last hour"),
        "{spike_text}"
    );
    // The earlier deletes were scored too; the first, of a new principal, low.
    let carol_intents: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["principal"]["name"] == "carol")
        .collect();
    assert_eq!(carol_intents.len(), ran.len() + 3);
    assert!(carol_intents.iter().all(|r| r["risk"]["score"].is_u64()));
    assert_eq!(
        carol_intents[0]["risk"]["level"], "low",
        "{}",
        carol_intents[0]
    );
    // The JIT request shows the risk to its reviewers.
    let requested = records
        .iter()
        .find(|r| {
            r["kind"] == "approval"
                && r["details"]["event"] == "requested"
                && r["details"]["request_id"] == request_id(&message).as_str()
        })
        .expect("the held call's JIT request");
    assert_eq!(
        requested["details"]["request"]["risk"]["level"], "high",
        "{requested}"
    );
    // One alert for the principal in this hour, not one per call.
    let alerts: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "risk_alert")
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = alerts[0];
    assert_eq!(alert["call_id"], held_call.as_str());
    assert_eq!(alert["principal"]["name"], "carol");
    assert_eq!(alert["tool"], "echo");
    assert_eq!(alert["risk"]["level"], "high");
    assert_eq!(alert["details"]["decision"], "held for approval");
    assert!(
        alert["details"]["summary"]
            .as_str()
            .unwrap()
            .contains(spike_text),
        "{alert}"
    );
    assert_eq!(
        alert["operations"][0]["azure_op"],
        "Microsoft.Compute/virtualMachines/delete"
    );
    // ... and one `risk.alert` notification, with the facts a reviewer reads.
    eventually("the risk.alert notification", || {
        notifications
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["warden"]["event"] == "risk.alert")
    })
    .await;
    let risk_alerts: Vec<Value> = notifications
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["warden"]["event"] == "risk.alert")
        .cloned()
        .collect();
    assert_eq!(risk_alerts.len(), 1, "{risk_alerts:?}");
    let facts: Vec<(String, String)> = risk_alerts[0]["sections"][0]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let fact = |name: &str| {
        facts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {facts:?}"))
    };
    assert!(fact("Principal").starts_with("carol"));
    assert_eq!(fact("Tool"), "echo");
    assert_eq!(
        fact("Operation"),
        "Microsoft.Compute/virtualMachines/delete"
    );
    assert!(fact("Resource").ends_with(&format!("virtualmachines/{held_vm}")));
    assert_eq!(
        fact("Risk"),
        format!("{} (high)", risk["score"].as_u64().unwrap())
    );
    assert!(fact("Reasons").contains(spike_text), "{facts:?}");

    // A security manager approves the held delete: the retry runs under the
    // grant (still scored high; the grant is what lets it through).
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
    let retried = call(&carol, "echo", vm(&held_vm, &held_vm)).await.unwrap();
    assert_ne!(retried.is_error, Some(true), "{}", text(&retried));
    let mut expected = ran.clone();
    expected.push(held_vm.clone());
    assert_eq!(gate.received(), expected);

    // (b) Another principal's routine reads and restarts stay low.
    let dave = gate.client("dave", &["Contributor"], false).await;
    for i in 0..4 {
        let read = call(&dave, "add", json!({"a": i, "b": 1, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}))
            .await
            .unwrap();
        assert_ne!(read.is_error, Some(true), "{}", text(&read));
    }
    for _ in 0..2 {
        let restart = call(
            &dave,
            "whoami",
            json!({"subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}),
        )
        .await
        .unwrap();
        assert_ne!(restart.is_error, Some(true), "{}", text(&restart));
    }
    let records = wait_for_records(&gate.warden.db(), |all| {
        all.iter()
            .filter(|r| r["kind"] == "outcome" && r["principal"]["name"] == "dave")
            .count()
            >= 6
    })
    .await;
    let dave_intents: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["principal"]["name"] == "dave")
        .collect();
    assert_eq!(dave_intents.len(), 6);
    for r in &dave_intents {
        assert_eq!(r["risk"]["level"], "low", "{r}");
    }
    assert_eq!(
        records.iter().filter(|r| r["kind"] == "risk_alert").count(),
        1
    );
    // Intents with their risk and the alert match the audit record schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/audit-record.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for record in &records {
        let errors: Vec<String> = validator
            .iter_errors(record)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{record}: {errors:?}");
    }
    assert_eq!(
        metric_lines(&gate.warden.base(), &["warden_risk_alerts_total"]).await,
        "warden_risk_alerts_total 1"
    );

    // (c) Baselines survive a restart: written to the store at shutdown,
    // loaded at start. Carol's burst is remembered, so her next delete is
    // held at once; dave's reads are still routine.
    let (tid, carol_oid) = {
        let p = &carol_intents[0]["principal"];
        (
            p["tid"].as_str().unwrap().to_owned(),
            p["oid"].as_str().unwrap().to_owned(),
        )
    };
    drop((carol, dave));
    gate.warden.stop().expect("a clean shutdown");
    let stored = warden::store::Reader::open(gate.warden.db())
        .unwrap()
        .baselines()
        .unwrap();
    let keys: Vec<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.contains(&format!("{tid}/{carol_oid}").as_str()),
        "{keys:?}"
    );
    gate.warden.restart();
    assert!(
        gate.warden.log().contains("risk baselines loaded"),
        "{}",
        gate.warden.log()
    );
    let carol = gate.client("carol", &["Contributor"], true).await;
    let after = call(&carol, "echo", vm("vm-after", "vm-after"))
        .await
        .unwrap();
    assert!(
        text(&after).contains("\"high-risk-requires-jit\""),
        "{}",
        text(&after)
    );
    assert!(!gate.received().contains(&"vm-after".to_owned()));
    let dave = gate.client("dave", &["Contributor"], false).await;
    let read = call(
        &dave,
        "add",
        json!({"a": 1, "b": 1, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}),
    )
    .await
    .unwrap();
    assert_ne!(read.is_error, Some(true), "{}", text(&read));
}

/// A policy set without the JIT guardrail: any call is allowed, unless
/// risk is critical.
const PERMISSIVE: &str = r#"
@id("test-allow-all")
permit (principal, action, resource);

@id("critical-risk-denied")
@advice("deny")
forbid (principal, action, resource)
when { context has risk && context.risk.level == "critical" };
"#;

#[tokio::test]
async fn a_privilege_grant_that_would_run_unapproved_is_critical_and_denied() {
    let scratch = tempfile::tempdir().unwrap();
    let policies = scratch.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("test.cedar"), PERMISSIVE).unwrap();
    let catalog = r#"
[tools.echo]
op = "Microsoft.Authorization/roleAssignments/write"
class = "privileged"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}"
"#;
    let gate = Gate::start_in_process(catalog, &format!("dir = {policies:?}\n"), "").await;
    let erin = gate.client("erin", &["Developer"], true).await;
    let denied = call(&erin, "echo", vm("grant-owner", "x")).await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    let message = text(&denied);
    assert!(message.contains("\"critical-risk-denied\""), "{message}");
    assert!(gate.received().is_empty(), "never forwarded");

    let call_id = call_id_in(&message);
    let records = wait_for_records(&gate.warden.db(), |all| {
        all.iter()
            .any(|r| r["kind"] == "outcome" && r["call_id"] == call_id.as_str())
    })
    .await;
    let risk = &intent(&records, &call_id)["risk"];
    assert_eq!(risk["level"], "critical", "{risk}");
    assert_eq!(risk["floor"], "privilege_grant_without_approval", "{risk}");
    assert_eq!(
        risk["reasons"][0]["code"], "privilege_grant_without_approval",
        "{risk}"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["kind"] == "risk_alert" && r["call_id"] == call_id.as_str())
            .count(),
        1
    );
}

#[test]
fn risk_eval_runs_each_seed_and_exits_by_the_targets() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "risk", "eval", "--seed", "7", "--seeds", "2", "--days", "7", "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let reports: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{stderr}", String::from_utf8_lossy(&out.stdout)));
    let reports = reports.as_array().expect("an array for several seeds");
    let seeds: Vec<u64> = reports
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [7, 8]);
    let all_met = reports.iter().all(|r| r["targets_met"] == true);
    assert_eq!(out.status.success(), all_met, "{stderr}");
    if !all_met {
        assert!(stderr.contains("missed its targets"), "{stderr}");
    }

    let text = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["risk", "eval", "--seed", "7", "--days", "7"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("seed 7"));

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["risk", "eval", "--principals", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--principals"));
}
