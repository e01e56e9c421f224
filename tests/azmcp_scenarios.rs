//! The seed scenarios through the official Azure MCP Server: `warden dev`
//! with azmcp (installed by `scripts/install-test-deps.sh`) behind it,
//! offline through the egress proxy against the ARM simulator; the dev
//! personas call azmcp's tools through Warden's /mcp, and each call's
//! audit intent names the resource it resolved to and that resource's
//! facts. At the end the simulator must have served every route azmcp
//! called; they are listed (see `common::azmcp_routes`).

mod common;

use common::{
    RecordingClient, call, connect_as, connect_with, records, request_id, text, wait_for_records,
};
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

/// The simulator's `PUT`/`PATCH`/`DELETE` requests on a path that
/// contains `name`, from its request log.
async fn changes_to(arm_url: &str, name: &str) -> Vec<Value> {
    let log: Value = reqwest::get(format!("{arm_url}/_sim/requests?limit=1000"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    log["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            matches!(r["method"].as_str(), Some("PUT" | "PATCH" | "DELETE"))
                && r["path"].as_str().is_some_and(|p| p.contains(name))
        })
        .cloned()
        .collect()
}

/// Makes the simulator throttle its next `requests` ARM requests (0 ends
/// it).
async fn throttle(arm_url: &str, requests: u32) {
    let answer = reqwest::Client::new()
        .post(format!("{arm_url}/_sim/throttle?requests={requests}"))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
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
            azure_mcp_serve: warden::dev::azmcp::Serve::Http,
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

    // A user who declines azmcp's prompt stops the change: Warden allowed
    // and recorded the call, azmcp asked, the answer was no, and nothing
    // reached Azure.
    let (declining, said_no) = connect_with(
        &running.mcp_url,
        Some(&developer),
        RecordingClient::declining(),
    )
    .await;
    let declined = call(
        &declining,
        "azmcp__compute_vm_update",
        json!({
            "subscription": dev,
            "resource-group": "dev-web",
            "vm-name": "web-02",
            "tags": "declined=yes",
        }),
    )
    .await
    .expect("compute_vm_update");
    let answer = text(&declined);
    assert!(
        said_no
            .seen()
            .elicitations
            .iter()
            .any(|m| m.contains("compute_vm_update")),
        "{:?}",
        said_no.seen().elicitations
    );
    let intent = intent_of(&db, "azmcp__compute_vm_update").await;
    assert_resolved(&intent, seed::VM_WEB_02);
    assert_eq!(intent["decision"]["effect"], "allow", "{intent}");
    let changes = changes_to(&running.arm_url, "web-02").await;
    assert!(
        changes.is_empty(),
        "declined, yet {changes:?}; azmcp said {answer}"
    );
    drop(declining);

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

    // When ARM does not answer Warden's look-up (throttled here until the
    // look-up's timeout), the facts are unavailable: a delete that might
    // be env=prod is held for a grant, not allowed as untagged. The disk
    // is in a dev group, which the Contributor could delete with facts.
    throttle(&running.arm_url, 1_000).await;
    let held = call(
        &client,
        "azmcp__compute_disk_delete",
        json!({ "subscription": dev, "resource-group": "dev-data", "disk-name": "dev-data-disk01" }),
    )
    .await
    .expect("compute_disk_delete");
    throttle(&running.arm_url, 0).await;
    let body = refused(&held, "the delete without facts");
    assert!(
        body.starts_with("Held for approval")
            && body.contains("\"delete-without-facts-requires-jit\""),
        "{body}"
    );
    let intent = intent_of(&db, "azmcp__compute_disk_delete").await;
    let facts = &intent["operations"][0]["facts"];
    assert_eq!(facts["completeness"], "unavailable", "{intent}");
    assert_eq!(
        intent["operations"][0]["resource_id"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(seed::DISK_DEV_DATA_01.to_ascii_lowercase()),
        "{intent}"
    );
    drop(client);

    // 4. The security manager's secret read is privileged: held until
    // approved.
    let security = persona_token(&dev_json, "security-manager");
    let (client, recording) = connect_as(&running.mcp_url, Some(&security)).await;
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

    // A second security manager approves; the retried read runs, and
    // azmcp, before it returns the secret, asks the user by elicitation.
    // The JIT grant and the user's consent are both needed.
    let approver = running
        .issuer
        .mint(&TokenOptions {
            user: "sol.secops@contoso.dev".into(),
            roles: vec!["SecurityManager".into()],
            mfa: true,
            ..TokenOptions::default()
        })
        .unwrap();
    let approved = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/requests/{}/approve",
            running.base_url,
            request_id(&body)
        ))
        .bearer_auth(&approver)
        .json(&json!({ "reason": "incident INC-7: rotate the database password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{:?}", approved.text().await);
    let read = call(
        &client,
        "azmcp__keyvault_secret_get",
        json!({ "subscription": prod, "vault": "kv-security", "secret": seed::SECRET_DB_PASSWORD }),
    )
    .await
    .expect("keyvault_secret_get");
    let body = allowed(&read, "the approved secret read");
    assert!(body.contains(seed::SECRET_DB_PASSWORD_VALUE), "{body}");
    assert!(
        !recording.seen().elicitations.is_empty(),
        "azmcp returned a secret without asking"
    );
    let intent = intent_of(&db, "azmcp__keyvault_secret_get").await;
    assert_eq!(intent["decision"]["effect"], "allow", "{intent}");
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

    // ... and a role assignment is privileged: without a grant it is held,
    // never run. Through Warden's own tool, since azmcp 2.0.5 has none.
    let (client, _) = connect_as(&running.mcp_url, Some(&security)).await;
    let held = call(
        &client,
        "azure__arm_role_assignment_create",
        json!({
            "scope": seed::RG_DEV_WEB,
            "principal-id": "0b8f7d1e-2c3a-4e5f-8a9b-1c2d3e4f5a6b",
            "role-definition-id": seed::ROLE_READER,
        }),
    )
    .await
    .expect("arm_role_assignment_create");
    let body = refused(&held, "the role assignment");
    assert!(body.starts_with("Held for approval"), "{body}");
    let intent = intent_of(&db, "azure__arm_role_assignment_create").await;
    assert_eq!(intent["operations"][0]["class"], "privileged", "{intent}");
    drop(client);

    // 6. The simulator served every route azmcp called; the routes are
    // listed (and scripts/test.sh prints the suite's union).
    common::azmcp_routes::check_azmcp_routes(
        &running.arm_url,
        warden::identity::dev::DEV_AZMCP_CLIENT,
        "azmcp_scenarios",
    )
    .await;
    running.stop().await.unwrap();
}
