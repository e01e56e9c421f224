//! The built-in Azure tools end to end: a real `warden serve` whose
//! `[upstreams.azure] builtin = "arm"` calls the ARM simulator with the
//! production client-secret credential (`azure_identity`) against the dev
//! issuer's token endpoint; an rmcp client calls every tool over HTTP.

mod common;

use common::gate::sim_served;
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::azure::sim::{self, SimConfig, Simulator};
use warden::identity::dev::{DEV_TENANT, TokenOptions};

const DEV: &str = sim::DEV_SUBSCRIPTION;

struct Arm {
    issuer: Issuer,
    sim: Simulator,
    warden: InProcess,
    _dir: tempfile::TempDir,
}

/// The simulator (async operations in progress for 2 polls, throttled and
/// async answers saying `Retry-After: retry_after`) and a Warden in front of
/// it that allows every call.
async fn arm(retry_after: u64) -> Arm {
    arm_deciding(retry_after, None).await
}

/// [`arm`], deciding with the policy set the body of `[policy]` names
/// (`None`: every call allowed).
async fn arm_deciding(retry_after: u64, policy: Option<&str>) -> Arm {
    let issuer = Issuer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("arm-sim.db"),
        sim::dev_identity_config(&issuer.issuer, &issuer.base),
    );
    config.retry_after_secs = retry_after;
    let sim = Simulator::start(config).await.unwrap();
    let client = issuer.issuer.dev_client().unwrap();
    let azure = format!(
        "[azure.arm]\nendpoint = {:?}\naudience = {:?}\nlro_poll_interval = \"200ms\"\nretry_delay = \"50ms\"\n\
         [azure.credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\n\
         secret_file = {:?}\nauthority_host = {:?}\n\
         [upstreams.azure]\nbuiltin = \"arm\"\n",
        sim.base_url(),
        sim::ARM_AUDIENCE,
        client.client_id,
        client.secret_file.display().to_string(),
        issuer.base,
    );
    let warden = match policy {
        Some(policy) => InProcess::start_with_policy("", &issuer.identity_toml(), &azure, policy),
        // Every call allowed: a role assignment runs without an approval,
        // which the baseline response rules revoke at once (that is
        // tests/responses.rs); here the tools themselves are under test.
        None => InProcess::start_with_identity(
            "",
            &issuer.identity_toml(),
            &format!("[response]\nenabled = false\n{azure}"),
        ),
    };
    Arm {
        issuer,
        sim,
        warden,
        _dir: dir,
    }
}

impl Arm {
    async fn client(&self) -> Client {
        self.client_with_role("Contributor").await
    }

    async fn client_with_role(&self, role: &str) -> Client {
        let token = self.token("carol", role);
        connect_as(&self.warden.url(), Some(&token)).await.0
    }

    /// A token of `user` with `role`, signed in with MFA.
    fn token(&self, user: &str, role: &str) -> String {
        self.issuer.mint(&TokenOptions {
            user: user.into(),
            roles: vec![role.into()],
            mfa: true,
            ..TokenOptions::default()
        })
    }

    /// The paths of the ARM requests the simulator served, newest first.
    async fn served(&self) -> Vec<String> {
        sim_served(&self.sim).await
    }
}

/// The intent record of the call whose tool error is `message`.
async fn intent_of(db: &std::path::Path, message: &str) -> Value {
    let call_id = message
        .rsplit("(call ")
        .next()
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no call id in {message}"))
        .to_owned();
    let records = wait_for_records(db, |r| {
        r.iter()
            .any(|r| r["kind"] == "outcome" && r["call_id"] == call_id.as_str())
    })
    .await;
    records
        .into_iter()
        .find(|r| r["kind"] == "intent" && r["call_id"] == call_id.as_str())
        .unwrap_or_else(|| panic!("no intent for call {call_id}"))
}

/// Calls `tool`, expecting success; the result's JSON.
async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args.clone()).await.unwrap();
    assert_ne!(
        result.is_error,
        Some(true),
        "{tool} {args}: {}",
        text(&result)
    );
    serde_json::from_str(&text(&result)).unwrap_or(Value::Null)
}

/// Calls `tool`, expecting a tool error; its text.
async fn fails(client: &Client, tool: &str, args: Value) -> String {
    let result = call(client, tool, args.clone()).await.unwrap();
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} {args}: {}",
        text(&result)
    );
    text(&result)
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["value"]
        .as_array()
        .unwrap_or_else(|| panic!("no value array: {list}"))
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

fn power_state(vm: &Value) -> String {
    vm["properties"]["instanceView"]["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["code"].as_str())
        .find(|c| c.starts_with("PowerState/"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn every_built_in_tool_works_against_the_simulator() {
    let arm = arm(0).await;
    let client = arm.client().await;
    let vm =
        |name: &str| json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": name});

    let subscriptions = ok(&client, "arm_subscription_list", json!({})).await;
    let ids: Vec<&str> = subscriptions["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&DEV), "{subscriptions}");

    // Resource groups: list, get, create, delete (a Location-polled LRO).
    let groups = names(&ok(&client, "arm_group_list", json!({"subscription": DEV})).await);
    assert!(groups.contains(&"dev-web".to_owned()), "{groups:?}");
    let group = ok(
        &client,
        "arm_group_get",
        json!({"subscription": DEV, "resource-group": "dev-data"}),
    )
    .await;
    assert_eq!(group["name"], "dev-data");
    let created = ok(
        &client,
        "arm_group_create",
        json!({"subscription": DEV, "resource-group": "dev-scratch", "location": "westeurope", "tags": {"owner": "carol"}}),
    )
    .await;
    assert_eq!(created["tags"]["owner"], "carol", "{created}");
    ok(
        &client,
        "arm_group_delete",
        json!({"subscription": DEV, "resource-group": "dev-scratch"}),
    )
    .await;
    let gone = fails(
        &client,
        "arm_group_get",
        json!({"subscription": DEV, "resource-group": "dev-scratch"}),
    )
    .await;
    assert!(
        gone.contains("404") && gone.contains("ResourceGroupNotFound"),
        "{gone}"
    );

    // Resources: list with a type filter, get by id.
    let vms = ok(
        &client,
        "arm_resource_list",
        json!({"subscription": DEV, "resource-group": "dev-web", "resource-type": "Microsoft.Compute/virtualMachines"}),
    )
    .await;
    assert_eq!(names(&vms), ["web-01", "web-02"]);
    let vault = ok(
        &client,
        "arm_resource_get",
        json!({"resource-id": sim::KEY_VAULT_SECURITY}),
    )
    .await;
    assert_eq!(vault["name"], "kv-security");

    // Virtual machines: list, get, and the power operations (LROs whose
    // effect is visible only once Azure reports them done).
    let listed = names(&ok(&client, "arm_vm_list", json!({"subscription": DEV})).await);
    assert_eq!(listed, ["web-01", "web-02"]);
    assert_eq!(
        power_state(&ok(&client, "arm_vm_get", vm("web-02")).await),
        "PowerState/stopped"
    );
    ok(&client, "arm_vm_start", vm("web-02")).await;
    assert_eq!(
        power_state(&ok(&client, "arm_vm_get", vm("web-02")).await),
        "PowerState/running"
    );
    ok(&client, "arm_vm_restart", vm("web-02")).await;
    ok(&client, "arm_vm_power_off", vm("web-02")).await;
    assert_eq!(
        power_state(&ok(&client, "arm_vm_get", vm("web-02")).await),
        "PowerState/stopped"
    );
    ok(&client, "arm_vm_deallocate", vm("web-02")).await;
    assert_eq!(
        power_state(&ok(&client, "arm_vm_get", vm("web-02")).await),
        "PowerState/deallocated"
    );
    ok(&client, "arm_vm_delete", vm("web-02")).await;
    let deleted = fails(&client, "arm_vm_get", vm("web-02")).await;
    assert!(
        deleted.contains("404") && deleted.contains("ResourceNotFound"),
        "{deleted}"
    );

    let accounts = names(
        &ok(
            &client,
            "arm_storage_account_list",
            json!({"subscription": DEV}),
        )
        .await,
    );
    assert_eq!(accounts, ["devdata01"]);

    // Role assignments: list, create, a duplicate (409), delete.
    let scope = format!("/subscriptions/{DEV}/resourceGroups/dev-web");
    let principal = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let assignment = ok(
        &client,
        "arm_role_assignment_create",
        json!({"scope": scope, "role-definition-id": sim::seed::ROLE_READER, "principal-id": principal, "principal-type": "User"}),
    )
    .await;
    let name = assignment["name"].as_str().unwrap().to_owned();
    let duplicate = fails(
        &client,
        "arm_role_assignment_create",
        json!({"scope": scope, "role-definition-id": sim::seed::ROLE_READER, "principal-id": principal}),
    )
    .await;
    assert!(
        duplicate.contains("409") && duplicate.contains("RoleAssignmentExists"),
        "{duplicate}"
    );
    let listed = ok(&client, "arm_role_assignment_list", json!({"scope": scope})).await;
    assert!(names(&listed).contains(&name), "{listed}");
    ok(
        &client,
        "arm_role_assignment_delete",
        json!({"scope": scope, "assignment-name": name}),
    )
    .await;
    let listed = ok(&client, "arm_role_assignment_list", json!({"scope": scope})).await;
    assert!(!names(&listed).contains(&name), "{listed}");

    // Tags, then the generic request, then the activity log of it all.
    let tagged = ok(
        &client,
        "arm_tags_set",
        json!({"resource-id": sim::VM_WEB_01, "tags": {"cost-center": "42"}}),
    )
    .await;
    assert_eq!(
        tagged["properties"]["tags"]["cost-center"], "42",
        "{tagged}"
    );
    ok(
        &client,
        "arm_request",
        json!({"method": "POST", "path": format!("{}/powerOff", sim::VM_WEB_01), "api-version": "2024-07-01"}),
    )
    .await;
    assert_eq!(
        power_state(&ok(&client, "arm_vm_get", vm("web-01")).await),
        "PowerState/stopped"
    );
    let events = ok(
        &client,
        "arm_activity_log_query",
        json!({"subscription": DEV, "resource-group": "dev-web", "hours": 1}),
    )
    .await;
    let operations: Vec<&str> = events["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["operationName"]["value"].as_str())
        .collect();
    for op in [
        "Microsoft.Compute/virtualMachines/start/action",
        "Microsoft.Compute/virtualMachines/delete",
        "Microsoft.Compute/virtualMachines/powerOff/action",
        "Microsoft.Authorization/roleAssignments/write",
    ] {
        assert!(
            operations.iter().any(|o| o.eq_ignore_ascii_case(op)),
            "{op} not in {operations:?}"
        );
    }

    // Every outcome names the correlation id Azure recorded for the call.
    let db = arm.warden.db();
    let records = wait_for_records(&db, |r| {
        r.iter().filter(|r| r["kind"] == "outcome").count() >= 30
    })
    .await;
    let start_call = records
        .iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "arm_vm_start")
        .unwrap();
    assert_eq!(
        start_call["operations"][0]["azure_op"],
        "Microsoft.Compute/virtualMachines/start/action"
    );
    let outcome = records
        .iter()
        .find(|r| r["kind"] == "outcome" && r["call_id"] == start_call["call_id"])
        .unwrap();
    let correlation = outcome["azure_correlation_id"]
        .as_str()
        .expect("a correlation id");
    let event = events["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["operationName"]["value"].as_str().is_some_and(|o| {
                o.eq_ignore_ascii_case("Microsoft.Compute/virtualMachines/start/action")
            })
        })
        .unwrap();
    assert_eq!(event["correlationId"], correlation, "{event}");
}

#[tokio::test]
async fn throttling_is_retried_after_retry_after_and_errors_are_clear() {
    let arm = arm(1).await;
    let client = arm.client().await;
    // Two 429s with `Retry-After: 1`, then the answer.
    arm.sim.throttle(2);
    let vms = ok(
        &client,
        "arm_vm_list",
        json!({"subscription": DEV, "resource-group": "dev-web"}),
    )
    .await;
    assert_eq!(names(&vms), ["web-01", "web-02"]);
    let log = arm.warden.log();
    let retries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("retrying ARM request"))
        .collect();
    assert_eq!(retries.len(), 2, "{log}");
    assert!(
        retries.iter().all(|l| l.contains("\"wait_ms\":1000")),
        "{retries:?}"
    );

    // ARM's own errors come back as tool errors quoting code and message.
    let missing = fails(
        &client,
        "arm_vm_get",
        json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "nope"}),
    )
    .await;
    assert!(
        missing.contains("Azure answered 404 ResourceNotFound") && missing.contains("nope"),
        "{missing}"
    );
    let no_group = fails(
        &client,
        "arm_vm_start",
        json!({"subscription": DEV, "resource-group": "no-such-group", "vm-name": "x"}),
    )
    .await;
    assert!(no_group.contains("404 ResourceGroupNotFound"), "{no_group}");
    let no_version = fails(
        &client,
        "arm_resource_get",
        json!({"resource-id": format!("/subscriptions/{DEV}/resourceGroups/dev-web/providers/Microsoft.Web/sites/app")}),
    )
    .await;
    assert!(
        no_version.contains("no api-version known for Microsoft.Web/sites"),
        "{no_version}"
    );
    // Throttling that outlasts Warden's patience fails with the wait Azure asked for.
    arm.sim.throttle(100);
    let throttled = fails(&client, "arm_subscription_list", json!({})).await;
    assert!(
        throttled.contains("429") || throttled.contains("throttled"),
        "{throttled}"
    );
    arm.sim.throttle(0);
}

/// Fail closed by construction: Warden's test policy set permits every call
/// and has no `forbid` on class `unknown`, yet a call whose resources cannot
/// be resolved, or whose Cedar request cannot be built, is denied with
/// advice `deny`, recorded as such, and never reaches Azure.
#[tokio::test]
async fn calls_that_cannot_be_evaluated_are_denied_whatever_the_policies_say() {
    let arm = arm(0).await;
    let reader = arm.client_with_role("Reader").await;
    let db = arm.warden.db();

    // A name that is not one ARM segment: the resources cannot be resolved.
    let traversal = fails(
        &reader,
        "arm_vm_get",
        json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "a/../../b"}),
    )
    .await;
    assert!(
        traversal.starts_with("Denied by Warden policy.")
            && traversal.contains("cannot be resolved"),
        "{traversal}"
    );
    let intent = intent_of(&db, &traversal).await;
    let decision = &intent["decision"];
    assert_eq!(decision["effect"], "deny", "{decision}");
    assert_eq!(decision["advice"], "deny", "{decision}");
    assert!(
        decision["errors"][0]
            .as_str()
            .unwrap_or_default()
            .contains("cannot be resolved"),
        "{decision}"
    );
    assert_eq!(decision["operations"][0]["effect"], "deny", "{decision}");
    assert_eq!(intent["operations"][0]["class"], "unknown");

    // An argument policies test, of the wrong type: the request's context
    // cannot be built.
    let wrong_type = fails(
        &reader,
        "arm_group_create",
        json!({"subscription": DEV, "resource-group": "made-anyway", "location": 42}),
    )
    .await;
    assert!(
        wrong_type.starts_with("Denied by Warden policy.")
            && wrong_type.contains("context.args.location"),
        "{wrong_type}"
    );
    let intent = intent_of(&db, &wrong_type).await;
    assert_eq!(intent["decision"]["effect"], "deny", "{intent}");
    assert_eq!(intent["decision"]["advice"], "deny", "{intent}");
    let outcome = records(&db)
        .into_iter()
        .find(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"])
        .unwrap();
    assert_eq!(outcome["status"], "denied");

    // The same policy set lets a well-formed call run.
    let vm = ok(
        &reader,
        "arm_vm_get",
        json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "web-01"}),
    )
    .await;
    assert_eq!(vm["name"], "web-01");
    let served = arm.served().await;
    assert!(
        served
            .iter()
            .any(|r| r.ends_with("/virtualMachines/web-01")),
        "{served:?}"
    );
    // Warden looked the group up (a GET with its own identity, for the
    // group's facts) before deciding; the denied call itself never ran.
    assert!(
        served
            .iter()
            .all(|r| !r.ends_with("/b") && (r.starts_with("GET ") || !r.contains("made-anyway"))),
        "a denied call reached Azure: {served:?}"
    );
}

/// Issue 16, reproduced: a Contributor signed in with MFA deletes
/// `prod-web-01` (tagged env=prod, in a group tagged env=prod) through the
/// built-in `arm_vm_delete`, with the baseline policies. Warden looks the
/// VM and its group up in ARM before deciding, so the delete is held for a
/// JIT grant (`prod-delete-requires-jit`), and the intent records the
/// resolved facts. The same user's delete of a dev VM follows policy (it
/// runs), and a delete whose facts cannot be looked up is held too.
#[tokio::test]
async fn a_prod_vm_delete_is_held_for_a_grant_once_its_tags_are_looked_up() {
    let arm = arm_deciding(0, Some(&baseline_policy())).await;
    let client = arm.client().await;
    let db = arm.warden.db();
    let prod_vm = json!({"subscription": sim::PROD_SUBSCRIPTION, "resource-group": "prod-web", "vm-name": "prod-web-01"});

    let held = fails(&client, "arm_vm_delete", prod_vm.clone()).await;
    assert!(
        held.starts_with("Held for approval") && held.contains("\"prod-delete-requires-jit\""),
        "{held}"
    );
    let intent = intent_of(&db, &held).await;
    let decision = &intent["decision"];
    assert_eq!(decision["effect"], "deny", "{decision}");
    assert_eq!(decision["advice"], "require_approval", "{decision}");
    assert_eq!(decision["policies"], json!(["prod-delete-requires-jit"]));
    let op = &intent["operations"][0];
    assert_eq!(op["azure_op"], "Microsoft.Compute/virtualMachines/delete");
    assert_eq!(op["resource_id"], sim::VM_PROD_WEB_01.to_ascii_lowercase());
    assert_eq!(op["facts"]["completeness"], "complete", "{op}");
    assert_eq!(op["facts"]["tags"]["env"], "prod", "{op}");
    assert_eq!(op["facts"]["resource_group_tags"]["env"], "prod", "{op}");
    assert_eq!(op["facts"]["location"], "japaneast", "{op}");
    // Never forwarded: the VM is still there.
    let vm = ok(&client, "arm_vm_get", prod_vm.clone()).await;
    assert_eq!(vm["name"], "prod-web-01");
    let served = arm.served().await;
    assert!(
        !served
            .iter()
            .any(|r| r.starts_with("DELETE") && r.contains("prod-web-01")),
        "{served:?}"
    );

    // A security manager approves; the retry runs once, under the grant.
    let id = request_id(&held);
    let manager = arm.token("sam", "SecurityManager");
    let approved = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/requests/{id}/approve",
            arm.warden.base()
        ))
        .bearer_auth(&manager)
        .json(&json!({"reason": "decommissioning, CHG-16"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());
    ok(&client, "arm_vm_delete", prod_vm.clone()).await;
    let gone = fails(&client, "arm_vm_get", prod_vm).await;
    assert!(gone.contains("404"), "{gone}");

    // The same user deletes a VM of a group tagged env=dev: policy lets it
    // run (MFA, no prod tag, facts complete), and the intent says why.
    let dev_vm = json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "web-02"});
    ok(&client, "arm_vm_delete", dev_vm.clone()).await;
    let records = wait_for_records(&db, |r| {
        r.iter()
            .any(|r| r["kind"] == "outcome" && r["tool"] == "arm_vm_delete" && r["status"] == "ok")
    })
    .await;
    let dev_intent = records
        .iter()
        .rev()
        .find(|r| {
            r["kind"] == "intent"
                && r["operations"][0]["resource_id"]
                    .as_str()
                    .is_some_and(|id| id.ends_with("/web-02"))
        })
        .expect("the dev delete's intent");
    assert_eq!(dev_intent["decision"]["effect"], "allow", "{dev_intent}");
    let facts = &dev_intent["operations"][0]["facts"];
    assert_eq!(facts["completeness"], "complete", "{facts}");
    assert_eq!(facts["resource_group_tags"]["env"], "dev", "{facts}");

    // A VM that does not exist: partial facts (its group's), so the
    // delete needs a grant like a prod one; nothing reaches Azure.
    let missing = fails(
        &client,
        "arm_vm_delete",
        json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "no-such-vm"}),
    )
    .await;
    assert!(
        missing.starts_with("Held for approval")
            && missing.contains("\"delete-without-facts-requires-jit\""),
        "{missing}"
    );
    let intent = intent_of(&db, &missing).await;
    let facts = &intent["operations"][0]["facts"];
    assert_eq!(facts["completeness"], "partial", "{facts}");
    assert_eq!(facts["resource_group_tags"]["env"], "dev", "{facts}");
    assert!(facts["tags"].is_null(), "{facts}");

    // The lookups are counted.
    let metrics = reqwest::get(format!("{}/metrics", arm.warden.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "warden_facts_lookup_duration_seconds_count",
        "warden_facts_cache_total{result=\"hit\"}",
        "warden_facts_operations_total{completeness=\"partial\"} 1",
    ] {
        assert!(metrics.contains(family), "{family}: {metrics}");
    }

    // ARM is gone: nothing can be looked up, and a delete of an untagged
    // dev VM (never looked up before) is held rather than taken for
    // untagged.
    let Arm { sim, warden, .. } = arm;
    sim.shutdown().await;
    let unknown = fails(
        &client,
        "arm_vm_delete",
        json!({"subscription": DEV, "resource-group": "dev-web", "vm-name": "web-01"}),
    )
    .await;
    assert!(
        unknown.starts_with("Held for approval")
            && unknown.contains("\"delete-without-facts-requires-jit\""),
        "{unknown}"
    );
    let intent = intent_of(&warden.db(), &unknown).await;
    assert_eq!(intent["decision"]["advice"], "require_approval");
    let facts = &intent["operations"][0]["facts"];
    assert_eq!(facts["completeness"], "unavailable", "{facts}");
    assert!(facts["reason"].as_str().is_some(), "{facts}");
}

/// An upstream's tool that names a storage account without its resource
/// group (as the Azure MCP Server's storage tools do) is decided on the
/// same facts as a built-in tool: Warden finds the account through
/// Resource Graph, places the call at its full id (with its group), and
/// the group's env=prod tag holds the delete.
#[tokio::test]
async fn an_upstream_tool_naming_a_resource_without_its_group_is_placed_and_decided_on_its_facts() {
    const CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Storage/storageAccounts/delete"
resource = "/subscriptions/{subscription}/resourceGroups/*/providers/Microsoft.Storage/storageAccounts/{account}"
"#;
    let gate = common::gate::Gate::start_in_process_with_arm(CATALOG, &baseline_policy(), "").await;
    let carol = gate.client("carol", &["Contributor"], true).await;
    let db = gate.warden.db();

    // `prodlogs01` lives in `security` (tagged env=prod) of Contoso Prod.
    let held = call(
        &carol,
        "echo",
        json!({"text": "prod", "subscription": sim::PROD_SUBSCRIPTION, "account": "prodlogs01"}),
    )
    .await
    .unwrap();
    let message = text(&held);
    assert!(
        message.starts_with("Held for approval")
            && message.contains("\"prod-delete-requires-jit\"")
            && message.contains(&sim::STORAGE_PRODLOGS01.to_ascii_lowercase()),
        "{message}"
    );
    let intent = intent_of(&db, &message).await;
    let op = &intent["operations"][0];
    assert_eq!(
        op["resource_id"],
        sim::STORAGE_PRODLOGS01.to_ascii_lowercase(),
        "placed at its full id, with its group"
    );
    assert_eq!(op["facts"]["completeness"], "complete", "{op}");
    assert_eq!(op["facts"]["resource_group_tags"]["env"], "prod", "{op}");
    assert_eq!(
        intent["decision"]["operations"][0]["resource"],
        sim::STORAGE_PRODLOGS01.to_ascii_lowercase()
    );

    // `devdata01`, named without a subscription either: found in every
    // subscription Warden sees, in `dev-data` (env=dev), and deleted.
    let ran = call(
        &carol,
        "echo",
        json!({"text": "dev", "account": "devdata01"}),
    )
    .await
    .unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(gate.received(), ["dev"]);

    // A name nothing matches: partial facts, held rather than taken for
    // an untagged account.
    let unknown = call(
        &carol,
        "echo",
        json!({"text": "nobody", "subscription": sim::DEV_SUBSCRIPTION, "account": "nosuchacct"}),
    )
    .await
    .unwrap();
    let message = text(&unknown);
    assert!(
        message.starts_with("Held for approval")
            && message.contains("\"delete-without-facts-requires-jit\""),
        "{message}"
    );
    let intent = intent_of(&db, &message).await;
    assert_eq!(intent["operations"][0]["facts"]["completeness"], "partial");
    assert_eq!(
        gate.received(),
        ["dev"],
        "nothing held reached the upstream"
    );
    // The simulator answered Resource Graph queries for all three.
    let served: Vec<String> = gate
        .arm
        .as_ref()
        .unwrap()
        .calls()
        .into_iter()
        .map(|c| format!("{} {}", c.method, c.path).to_ascii_lowercase())
        .collect();
    assert!(
        served
            .iter()
            .any(|c| c.starts_with("post") && c.contains("microsoft.resourcegraph/resources")),
        "{served:?}"
    );
}

/// The issue's call exactly as it was made: `warden dev` (the built-in
/// tools as upstream `azure`, beside the sample upstream, so the tool is
/// `azure__arm_vm_delete`), a Contributor signed in with MFA, `prod-web-01`.
/// Held for a JIT grant, with the VM's tags in the intent.
#[tokio::test]
async fn warden_dev_holds_the_issue_s_prod_vm_delete_for_a_grant() {
    use warden::app::dev::{DevListeners, DevOptions};
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let running = warden::app::dev::start(
        DevOptions {
            data_dir: dir.path().join("dev"),
            policies: None,
            executable: env!("CARGO_BIN_EXE_warden").into(),
            oauth: false,
            azure_mcp: None,
            azure_mcp_serve: warden::dev::azmcp::Serve::Http,
        },
        DevListeners::bind(any, any, any).await.unwrap(),
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("warden dev starts");
    let token = running
        .issuer
        .mint(&TokenOptions {
            user: "carol".into(),
            roles: vec!["Contributor".into()],
            mfa: true,
            ..TokenOptions::default()
        })
        .unwrap();
    let (client, _) = connect_as(&running.mcp_url, Some(&token)).await;
    let held = fails(
        &client,
        "azure__arm_vm_delete",
        json!({"subscription": sim::PROD_SUBSCRIPTION, "resource-group": "prod-web", "vm-name": "prod-web-01"}),
    )
    .await;
    assert!(
        held.starts_with("Held for approval") && held.contains("\"prod-delete-requires-jit\""),
        "{held}"
    );
    let intent = intent_of(&running.data_dir.join("warden.db"), &held).await;
    assert_eq!(intent["tool"], "azure__arm_vm_delete");
    assert_eq!(intent["decision"]["advice"], "require_approval");
    // The roles the caller held for the decision (what access reviews
    // measure use against); no JIT grant yet, no guest.
    assert_eq!(intent["principal"]["roles"], json!(["Contributor"]));
    assert!(
        intent.get("jit").is_none() && intent["principal"].get("guest").is_none(),
        "{intent}"
    );
    let facts = &intent["operations"][0]["facts"];
    assert_eq!(facts["completeness"], "complete", "{facts}");
    assert_eq!(facts["tags"]["env"], "prod", "{facts}");
    drop(client);
    running.stop().await.unwrap();
}
