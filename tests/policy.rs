//! The resolve and authorize stages end to end: a real `warden serve`
//! trusting a real dev issuer, deciding with the repository's baseline
//! policies (or a copy the test edits), in front of the demo upstream,
//! whose `echo` records every call it receives.
//!
//! A test catalog maps demo tools onto Azure operations, so that the
//! baseline roles apply to them as they do to the Azure MCP Server's tools:
//! `echo` deletes the virtual machine its arguments name, `add` writes a
//! scale set. The other demo tools resolve from their MCP annotations
//! (`Warden/tools/<tool>/<class>`).
//!
//! Warden's Azure is the ARM simulator, where it looks up the facts of the
//! VM the arguments name (`web-01` of the simulator's `dev-web`, tagged
//! env=dev) before deciding, as it would in production: the baseline holds
//! a delete whose facts it could not look up (tests/arm.rs shows that).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::gate::{Gate, baseline_copy};
use common::*;
use rmcp::model::ErrorCode;
use serde_json::{Value, json};
use warden::azure::sim;
use warden::identity::dev::TokenOptions;

const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachineScaleSets/write"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachineScaleSets/{scale-set}"
"#;

const SUB: &str = sim::DEV_SUBSCRIPTION;

/// A Warden deciding with the policies in `policies`, looking resource
/// facts up in the ARM simulator.
async fn gate(policies: &Path, policy_extra: &str) -> Gate<InProcess> {
    Gate::start_in_process_with_arm(
        TEST_CATALOG,
        &format!("dir = {policies:?}\n{policy_extra}"),
        "",
    )
    .await
}

/// [`gate`] as a process of its own (to send it signals).
async fn process_gate(policies: &Path, policy_extra: &str) -> Gate {
    Gate::start(
        TEST_CATALOG,
        &format!("dir = {policies:?}\n{policy_extra}"),
        "",
    )
    .await
}

fn vm_args(text: &str, resource_group: &str) -> Value {
    json!({
        "text": text,
        "subscription": SUB,
        "resource-group": resource_group,
        "vm": "web-01",
    })
}

async fn tool_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// The intent records of the log, in order.
fn intents(db: &Path) -> Vec<Value> {
    records(db)
        .into_iter()
        .filter(|r| r["kind"] == "intent")
        .collect()
}

fn outcome_of(db: &Path, call_id: &Value) -> Option<Value> {
    records(db)
        .into_iter()
        .find(|r| r["kind"] == "outcome" && &r["call_id"] == call_id)
}

fn repo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[tokio::test]
async fn denied_calls_never_reach_the_upstream_and_name_the_policy() {
    let gate = gate(&repo_policies(), "").await;
    let db = gate.warden.db();
    let vm = format!(
        "/subscriptions/{SUB}/resourcegroups/dev-web/providers/microsoft.compute/virtualmachines/web-01"
    );

    // A contributor without MFA: the MFA guardrail denies the delete and
    // asks for a step-up; the client cannot take a claims challenge, so it
    // gets a tool error naming the policy.
    let contributor = gate.client("carol", &["Contributor"], false).await;
    let denied = call(&contributor, "echo", vm_args("no-mfa", "dev-web"))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    let message = text(&denied);
    assert!(
        message.contains("\"mfa-for-delete-and-privileged\"")
            && message.contains("Microsoft.Compute/virtualMachines/delete")
            && message.contains(&vm)
            && message.contains("multi-factor"),
        "{message}"
    );

    // A developer: the custom role's NotActions leave no permit.
    let developer = gate.client("dave", &["Developer"], true).await;
    let denied = call(&developer, "echo", vm_args("developer-delete", "dev-web"))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("no policy permits it"),
        "{}",
        text(&denied)
    );

    // The same contributor with MFA: allowed, and it runs.
    let contributor_mfa = gate.client("carol", &["Contributor"], true).await;
    let allowed = call(&contributor_mfa, "echo", vm_args("with-mfa", "dev-web"))
        .await
        .unwrap();
    assert_ne!(allowed.is_error, Some(true), "{}", text(&allowed));
    assert_eq!(text(&allowed), "with-mfa");

    assert_eq!(gate.received(), ["with-mfa"], "only the allowed call ran");

    // The log holds all three intents, with operations and decisions; the
    // denied ones end `denied`.
    let all = wait_for_records(&db, |r| {
        r.iter().filter(|r| r["kind"] == "outcome").count() >= 3
    })
    .await;
    let intents: Vec<&Value> = all.iter().filter(|r| r["kind"] == "intent").collect();
    assert_eq!(intents.len(), 3);
    let load = all
        .iter()
        .find(|r| r["kind"] == "policy_load")
        .expect("a policy_load record");
    let hash = load["details"]["hash"].as_str().unwrap();
    assert_eq!(load["details"]["trigger"], "start");
    for intent in &intents {
        assert_eq!(
            intent["operations"],
            json!([{
                "azure_op": "Microsoft.Compute/virtualMachines/delete",
                "class": "delete",
                "resource_id": vm,
                "facts": {
                    "completeness": "complete",
                    "location": "westeurope",
                    "tags": {"env": "dev", "role": "web"},
                    "resource_group_tags": {"env": "dev", "owner": "web-team"},
                },
            }])
        );
        assert_eq!(intent["decision"]["policy_set"], hash);
    }
    let decisions: Vec<(&str, Option<&str>, Vec<&str>)> = intents
        .iter()
        .map(|i| {
            let d = &i["decision"];
            (
                d["effect"].as_str().unwrap(),
                d["advice"].as_str(),
                d["policies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (
                "deny",
                Some("step_up"),
                vec!["mfa-for-delete-and-privileged"]
            ),
            ("deny", Some("deny"), vec![]),
            ("allow", None, vec!["contributor"]),
        ]
    );
    let statuses: Vec<Value> = intents
        .iter()
        .map(|i| outcome_of(&db, &i["call_id"]).unwrap()["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("denied"), json!("denied"), json!("ok")]);
    let denied_outcome = outcome_of(&db, &intents[0]["call_id"]).unwrap();
    assert!(
        denied_outcome["error"]
            .as_str()
            .unwrap()
            .contains("mfa-for-delete-and-privileged")
    );

    // Decisions are counted.
    let metrics = metric_lines(&gate.warden.base(), &["warden_policy_decisions_total"]).await;
    assert!(
        metrics.contains(r#"warden_policy_decisions_total{effect="deny",advice="step_up"} 1"#)
            && metrics.contains(r#"warden_policy_decisions_total{effect="deny",advice="deny"} 1"#)
            && metrics.contains(r#"warden_policy_decisions_total{effect="allow",advice="none"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_step_up_for_a_client_that_takes_claims_challenges_is_a_challenge() {
    let gate = gate(&repo_policies(), "").await;
    let token = gate.issuer.mint(&TokenOptions {
        user: "carol".into(),
        roles: vec!["Contributor".into()],
        extra: json!({ "xms_cc": ["cp1"] }).as_object().cloned().unwrap(),
        ..TokenOptions::default()
    });
    let (client, _) = connect_as(&gate.warden.url(), Some(&token)).await;
    let error = call(&client, "echo", vm_args("cp1", "dev-web"))
        .await
        .unwrap_err();
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("expected a JSON-RPC error, got {error:?}");
    };
    assert_eq!(error.code, ErrorCode(-32001));
    let data = error.data.expect("challenge data");
    assert_eq!(data["reason"], "insufficient_claims");
    let challenge = data["www_authenticate"].as_str().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_claims\"")
            && challenge.contains("claims=\"")
            && challenge.contains("/.well-known/oauth-protected-resource"),
        "{challenge}"
    );
    assert_eq!(data["policies"], json!(["mfa-for-delete-and-privileged"]));
    assert!(gate.received().is_empty());
}

#[tokio::test]
async fn tools_list_shows_each_caller_only_what_it_could_be_allowed_to_call() {
    let gate = gate(&repo_policies(), "").await;
    let reader = tool_names(&gate.client("rita", &["Reader"], false).await).await;
    let operator = tool_names(&gate.client("otto", &["Operator"], false).await).await;
    let contributor = tool_names(&gate.client("carol", &["Contributor"], false).await).await;
    let nobody = tool_names(&gate.client("nobody", &[], false).await).await;

    // Read-only demo tools (by their annotations) are readable by all three
    // roles; `add` writes a scale set, which operators may (scale), readers
    // not; `echo` deletes a VM, which only a contributor may (after a
    // step-up, so it is listed even without MFA); `crash` is destructive by
    // its annotations.
    for read_only in ["whoami", "progress", "list_roots"] {
        assert!(reader.iter().any(|t| t == read_only), "{reader:?}");
    }
    assert!(!reader.iter().any(|t| t == "add"), "{reader:?}");
    assert!(operator.iter().any(|t| t == "add"), "{operator:?}");
    assert!(!operator.iter().any(|t| t == "echo"), "{operator:?}");
    assert!(contributor.iter().any(|t| t == "echo"), "{contributor:?}");
    assert!(!reader.iter().any(|t| t == "crash"), "{reader:?}");
    assert_ne!(reader, operator);
    assert_eq!(
        nobody,
        ["access_status", "justify_request", "request_access"],
        "no role: only Warden's own tools"
    );

    // What is listed is what the same policies allow: a reader's call of a
    // listed tool runs, an unlisted one is denied.
    let reader_client = gate.client("rita", &["Reader"], false).await;
    let whoami = call(&reader_client, "whoami", json!({})).await.unwrap();
    assert_ne!(whoami.is_error, Some(true), "{}", text(&whoami));
    let add = call(
        &reader_client,
        "add",
        json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "ops", "scale-set": "ss"}),
    )
    .await
    .unwrap();
    assert_eq!(add.is_error, Some(true), "{}", text(&add));
}

#[tokio::test]
async fn a_call_without_listing_first_still_resolves_from_annotations() {
    // `whoami` is not in the catalog: its class comes from the annotations,
    // which the gateway fetches when the client did not list tools.
    let gate = gate(&repo_policies(), "").await;
    let reader = gate.client("rita", &["Reader"], false).await;
    let whoami = call(&reader, "whoami", json!({})).await.unwrap();
    assert_ne!(whoami.is_error, Some(true), "{}", text(&whoami));
    let crash = call(&reader, "crash", json!({})).await.unwrap();
    assert_eq!(crash.is_error, Some(true));
    assert!(
        text(&crash).contains("Warden/tools/crash/delete"),
        "{}",
        text(&crash)
    );
    let intents = intents(&gate.warden.db());
    assert_eq!(
        intents[0]["operations"],
        json!([{"azure_op": "Warden/tools/whoami/read", "class": "read", "resource_id": "/",
                "facts": {"completeness": "complete"}}])
    );
}

/// Copies the baseline policies into a directory the test may edit.
fn editable_policies() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let policies = baseline_copy(dir.path(), None);
    (dir, policies)
}

/// Polls `/metrics` until it has the line `line` (10 s at most).
async fn wait_for_metric_line(base: &str, line: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let lines = metric_lines(base, &["warden_"]).await;
        if lines.split(',').any(|l| l == line) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {line} in /metrics: {lines}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn policy_loads(db: &Path) -> Vec<Value> {
    records(db)
        .into_iter()
        .filter(|r| r["kind"] == "policy_load")
        .collect()
}

#[tokio::test]
async fn reloads_keep_the_running_set_when_the_new_one_is_invalid() {
    let (_dir, policies) = editable_policies();
    let gate = process_gate(&policies, "watch_interval = \"100ms\"\n").await;
    let db = gate.warden.db();
    let base = gate.warden.base();
    let reader = gate.client("rita", &["Reader"], false).await;
    let whoami = call(&reader, "whoami", json!({})).await.unwrap();
    assert_ne!(whoami.is_error, Some(true));

    // An invalid file (an undeclared action) is refused with its file and
    // line; the running set still decides.
    std::fs::write(
        policies.join("zz-bad.cedar"),
        "// a typo\n\n@id(\"typo\")\npermit (principal, action == Action::\"Microsoft.Compute/virtualMachinez/read\", resource);\n",
    )
    .unwrap();
    wait_for_metric_line(&base, r#"warden_policy_loads_total{result="invalid"} 1"#).await;
    let log = gate.warden.log();
    assert!(log.contains("zz-bad.cedar:3"), "{log}");
    let whoami = call(&reader, "whoami", json!({})).await.unwrap();
    assert_ne!(whoami.is_error, Some(true), "{}", text(&whoami));
    assert_eq!(policy_loads(&db).len(), 1, "a refused set is not recorded");

    // A valid change replaces it: readers lose `whoami`.
    std::fs::remove_file(policies.join("zz-bad.cedar")).unwrap();
    std::fs::write(
        policies.join("zz-no-whoami.cedar"),
        "@id(\"no-whoami\")\nforbid (principal, action, resource) when { context.tool == \"whoami\" };\n",
    )
    .unwrap();
    wait_for_metric_line(&base, r#"warden_policy_loads_total{result="ok"} 2"#).await;
    let whoami = call(&reader, "whoami", json!({})).await.unwrap();
    assert_eq!(whoami.is_error, Some(true));
    assert!(text(&whoami).contains("\"no-whoami\""), "{}", text(&whoami));

    // SIGHUP reloads too; each load is recorded with its hash, and the
    // decisions name the set that made them.
    Command::new("kill")
        .args(["-HUP", &gate.warden.pid().to_string()])
        .status()
        .unwrap();
    let loads = wait_for_records(&db, |r| {
        r.iter().filter(|r| r["kind"] == "policy_load").count() >= 3
    })
    .await;
    let loads: Vec<&Value> = loads
        .iter()
        .filter(|r| r["kind"] == "policy_load")
        .collect();
    let triggers: Vec<&str> = loads
        .iter()
        .map(|l| l["details"]["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers, ["start", "file_change", "sighup"]);
    assert_ne!(loads[0]["details"]["hash"], loads[1]["details"]["hash"]);
    assert_eq!(loads[1]["details"]["hash"], loads[2]["details"]["hash"]);
    let intents = intents(&db);
    assert_eq!(
        intents.last().unwrap()["decision"]["policy_set"],
        loads[1]["details"]["hash"]
    );
    assert_eq!(
        intents[0]["decision"]["policy_set"],
        loads[0]["details"]["hash"]
    );
}

#[tokio::test]
async fn a_policy_that_fails_to_evaluate_denies() {
    // The forbid overflows on a large `a`: Cedar skips a policy that
    // errors, which would let the permit through; Warden denies instead.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        "@id(\"everyone\")\npermit (principal, action, resource);\n\
         @id(\"overflowing\")\nforbid (principal, action, resource)\n\
         when { context.args has capacity && context.args.capacity * 4611686018427387904 > 10 };\n",
    )
    .unwrap();
    let gate = gate(dir.path(), "").await;
    let client = gate.client("eve", &[], false).await;
    let denied = call(&client, "echo", json!({"text": "boom", "capacity": 8}))
        .await
        .unwrap();
    assert_eq!(denied.is_error, Some(true));
    let message = text(&denied);
    assert!(
        message.contains("\"overflowing\" could not be evaluated") && message.contains("overflow"),
        "{message}"
    );
    let ok = call(&client, "echo", json!({"text": "fine", "capacity": 0}))
        .await
        .unwrap();
    assert_ne!(ok.is_error, Some(true), "{}", text(&ok));
    assert_eq!(gate.received(), ["fine"]);
    let intents = intents(&gate.warden.db());
    assert_eq!(intents[0]["decision"]["effect"], "deny");
    assert!(
        intents[0]["decision"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("overflow")
    );
}

#[tokio::test]
async fn global_shadow_mode_records_the_decision_but_enforces_nothing() {
    let gate = gate(&repo_policies(), "shadow = true\n").await;
    let developer = gate.client("dave", &["Developer"], false).await;
    let ran = call(&developer, "echo", vm_args("shadowed", "prod-web"))
        .await
        .unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(gate.received(), ["shadowed"]);
    let intents = intents(&gate.warden.db());
    let decision = &intents[0]["decision"];
    assert_eq!(decision["effect"], "allow");
    assert_eq!(decision["shadow"]["global"], true);
    assert_eq!(decision["shadow"]["effect"], "deny");
    assert_eq!(decision["shadow"]["differs"], true);
}

#[tokio::test]
async fn break_glass_is_allowed_and_always_alerted() {
    let gate = gate(&repo_policies(), "").await;
    let admin = gate.client("bea", &["BreakGlass"], true).await;
    let ran = call(&admin, "echo", vm_args("emergency", "prod-web"))
        .await
        .unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(gate.received(), ["emergency"]);
    let intents = intents(&gate.warden.db());
    assert_eq!(
        intents[0]["decision"]["alerts"],
        json!([{"policy": "break-glass", "alert": "break_glass"}])
    );
    wait_for_metric_line(
        &gate.warden.base(),
        r#"warden_policy_alerts_total{alert="break_glass"} 1"#,
    )
    .await;
    assert!(gate.warden.log().contains("policy alert"));
}
