//! The seed scenarios through the official Azure MCP Server: `warden dev`
//! with azmcp (installed by `scripts/install-test-deps.sh`) behind it,
//! offline through the egress proxy against the ARM simulator; the dev
//! personas call azmcp's tools through Warden's /mcp, and each call's
//! audit intent names the resource it resolved to and that resource's
//! facts. At the end the simulator must have served every route azmcp
//! called.

mod common;

use common::{call, connect_as, records, request_id, text, wait_for_records};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::app::dev::{DevListeners, DevOptions};
use warden::azure::sim::{self, seed};
use warden::identity::dev::TokenOptions;

/// The intent record of the latest call of `tool`, once its outcome is
/// recorded.
async fn intent_of(db: &std::path::Path, tool: &str) -> Value {
    let latest = |all: &[Value]| -> Option<Value> {
        all.iter()
            .rev()
            .find(|r| r["kind"] == "intent" && r["tool"] == tool)
            .cloned()
    };
    let all = wait_for_records(db, |all| {
        latest(all).is_some_and(|intent| {
            all.iter()
                .any(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"])
        })
    })
    .await;
    latest(&all).unwrap_or_else(|| panic!("no intent for {tool}: {:?}", records(db)))
}

/// Asserts the intent's first operation resolved to `resource_id` (which
/// names its resource group) and carries that resource's facts.
fn assert_resolved(intent: &Value, resource_id: &str) {
    let operation = &intent["operations"][0];
    assert!(
        operation["resource_id"]
            .as_str()
            .is_some_and(|id| id.eq_ignore_ascii_case(resource_id)),
        "expected {resource_id}: {intent}"
    );
    assert!(
        resource_id
            .to_ascii_lowercase()
            .contains("/resourcegroups/"),
        "{resource_id}"
    );
    assert!(operation["facts"].is_object(), "no facts: {intent}");
}

fn allowed(result: &CallToolResult, what: &str) -> String {
    let body = text(result);
    assert_ne!(result.is_error, Some(true), "{what}: {body}");
    body
}

fn refused(result: &CallToolResult, what: &str) -> String {
    let body = text(result);
    assert_eq!(result.is_error, Some(true), "{what} ran: {body}");
    body
}

fn persona_token(dev_json: &Value, name: &str) -> String {
    dev_json["personas"][name]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no persona {name}: {}", dev_json["personas"]))
        .to_owned()
}

#[tokio::test]
async fn the_seed_scenarios_through_azmcp() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(azmcp) = warden::dev::azmcp::deps_path(root).filter(|p| p.is_file()) else {
        eprintln!(
            "skipped: no azmcp under .deps/ (run scripts/install-test-deps.sh, which CI always \
             runs)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let running = warden::app::dev::start(
        DevOptions {
            data_dir: dir.path().join("dev"),
            // The baseline policies.
            policies: None,
            executable: env!("CARGO_BIN_EXE_warden").into(),
            oauth: true,
            azure_mcp: Some(azmcp),
        },
        DevListeners::bind(any, any, any).await.unwrap(),
        CancellationToken::new(),
    )
    .await
    .expect("warden dev starts");
    let db = running.data_dir.join("warden.db");
    let dev_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&running.dev_json).unwrap()).unwrap();
    let dev = sim::DEV_SUBSCRIPTION;
    let prod = sim::PROD_SUBSCRIPTION;

    // 1. The reader lists the VMs of a dev group (azmcp's `compute vm get`
    // without a VM name lists them), then reads one.
    let reader = persona_token(&dev_json, "reader");
    let (client, _) = connect_as(&running.mcp_url, Some(&reader)).await;
    let listed = call(
        &client,
        "azmcp__compute_vm_get",
        json!({ "subscription": dev, "resource-group": "dev-web" }),
    )
    .await
    .expect("compute_vm_get");
    let body = allowed(&listed, "the reader's VM list");
    assert!(body.contains("web-01") && body.contains("web-02"), "{body}");
    let intent = intent_of(&db, "azmcp__compute_vm_get").await;
    assert_resolved(&intent, seed::RG_DEV_WEB);
    let got = call(
        &client,
        "azmcp__compute_vm_get",
        json!({ "subscription": dev, "resource-group": "dev-web", "vm-name": "web-01" }),
    )
    .await
    .expect("compute_vm_get");
    let body = allowed(&got, "the reader's VM get");
    assert!(body.contains("web-01"), "{body}");
    let intent = intent_of(&db, "azmcp__compute_vm_get").await;
    assert_resolved(&intent, seed::VM_WEB_01);
    drop(client);

    // 2. The developer updates a VM in a dev-* group, but does not delete
    // one.
    let developer = persona_token(&dev_json, "developer");
    let (client, recording) = connect_as(&running.mcp_url, Some(&developer)).await;
    let updated = call(
        &client,
        "azmcp__compute_vm_update",
        json!({
            "subscription": dev,
            "resource-group": "dev-web",
            "vm-name": "web-01",
            "tags": "owner=web-team,reviewed=yes",
        }),
    )
    .await
    .expect("compute_vm_update");
    allowed(&updated, "the developer's VM update");
    let intent = intent_of(&db, "azmcp__compute_vm_update").await;
    assert_resolved(&intent, seed::VM_WEB_01);
    // azmcp asked for consent by elicitation, which the client accepted.
    let elicitations = recording.seen().elicitations.clone();
    assert!(
        elicitations.iter().any(|m| m.contains("compute_vm_update")),
        "{elicitations:?}"
    );

    let deleted = call(
        &client,
        "azmcp__compute_vm_delete",
        json!({ "subscription": dev, "resource-group": "dev-web", "vm-name": "web-02" }),
    )
    .await
    .expect("compute_vm_delete");
    let body = refused(&deleted, "the developer's VM delete");
    // Denied: no baseline permit for a Developer's VM delete, and the
    // persona signed in without MFA.
    assert!(body.starts_with("Denied by Warden policy"), "{body}");
    let intent = intent_of(&db, "azmcp__compute_vm_delete").await;
    assert_resolved(&intent, seed::VM_WEB_02);
    assert_eq!(intent["decision"]["effect"], "deny", "{intent}");
    drop(client);

    // 3. A Contributor's delete of a VM in the env=prod group needs a
    // grant. No persona holds Contributor, so this one is minted.
    let contributor = running
        .issuer
        .mint(&TokenOptions {
            user: "carol.contributor@contoso.dev".into(),
            roles: vec!["Contributor".into()],
            mfa: true,
            ..TokenOptions::default()
        })
        .unwrap();
    let (client, _) = connect_as(&running.mcp_url, Some(&contributor)).await;
    let held = call(
        &client,
        "azmcp__compute_vm_delete",
        json!({ "subscription": prod, "resource-group": "prod-web", "vm-name": "prod-web-01" }),
    )
    .await
    .expect("compute_vm_delete");
    let body = refused(&held, "the prod VM delete");
    assert!(
        body.starts_with("Held for approval") && body.contains("\"prod-delete-requires-jit\""),
        "{body}"
    );
    assert!(!request_id(&body).is_empty(), "{body}");
    let intent = intent_of(&db, "azmcp__compute_vm_delete").await;
    assert_resolved(&intent, seed::VM_PROD_WEB_01);
    let facts = &intent["operations"][0]["facts"];
    assert_eq!(facts["tags"]["env"], "prod", "{facts}");
    drop(client);

    // 4. The security manager's secret read is privileged: held.
    let security = persona_token(&dev_json, "security-manager");
    let (client, _) = connect_as(&running.mcp_url, Some(&security)).await;
    let held = call(
        &client,
        "azmcp__keyvault_secret_get",
        json!({ "subscription": prod, "vault": "kv-security", "secret": seed::SECRET_DB_PASSWORD }),
    )
    .await
    .expect("keyvault_secret_get");
    let body = refused(&held, "the secret read");
    assert!(
        body.starts_with("Held for approval") && body.contains("\"privileged-requires-jit\""),
        "{body}"
    );
    assert!(!request_id(&body).is_empty(), "{body}");
    let intent = intent_of(&db, "azmcp__keyvault_secret_get").await;
    assert_resolved(
        &intent,
        &format!(
            "{}/secrets/{}",
            seed::KEY_VAULT_SECURITY,
            seed::SECRET_DB_PASSWORD
        ),
    );
    assert_eq!(intent["operations"][0]["class"], "privileged", "{intent}");
    assert_eq!(
        intent["operations"][0]["facts"]["tags"]["env"], "prod",
        "{intent}"
    );
    drop(client);

    // 5. azmcp 2.0.5 has no role assignment create (only `role assignment
    // list`), so a held privileged call is shown by 4; here the reader
    // lists the assignments of the dev subscription, a read it is allowed.
    // The subscription scope has no resource group.
    let (client, _) = connect_as(&running.mcp_url, Some(&reader)).await;
    let listed = call(
        &client,
        "azmcp__role_assignment_list",
        json!({ "subscription": dev, "scope": format!("/subscriptions/{dev}") }),
    )
    .await
    .expect("role_assignment_list");
    let body = allowed(&listed, "the reader's role assignment list");
    assert!(
        body.contains(warden::app::dev::AZMCP_ROLE_ASSIGNMENT),
        "{body}"
    );
    let intent = intent_of(&db, "azmcp__role_assignment_list").await;
    assert_eq!(
        intent["operations"][0]["azure_op"], "Microsoft.Authorization/roleAssignments/read",
        "{intent}"
    );
    assert_eq!(
        intent["operations"][0]["resource_id"],
        format!("/subscriptions/{dev}").as_str(),
        "{intent}"
    );
    assert_eq!(intent["decision"]["effect"], "allow", "{intent}");
    drop(client);

    // 6. The simulator served every route it was called for (azmcp's
    // calls, Warden's fact look-ups and warden dev's setup), listed here.
    let calls: Value = reqwest::get(format!("{}/_sim/calls", running.arm_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!("the simulator served:");
    for c in calls.as_array().into_iter().flatten() {
        eprintln!(
            "  {} {} api-version={}",
            c["method"].as_str().unwrap_or_default(),
            c["path"].as_str().unwrap_or_default(),
            c["api_version"].as_str().unwrap_or_default()
        );
    }
    let unserved: Value = reqwest::get(format!("{}/_sim/unserved", running.arm_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unserved, json!([]), "unserved: {unserved:#}");
    running.stop().await.unwrap();
}
