//! Just-in-time approvals end to end: a real Warden with the baseline
//! policies plus one permit (developers may run privileged operations in
//! `dev-*` resource groups, under the baseline's JIT and MFA guardrails),
//! the demo upstream (whose `echo` records every call it receives), dev
//! tokens, and the admin API over HTTP.
//!
//! The test catalog makes `echo` a privileged operation on the VM its
//! arguments name, and `add` a role assignment (a critical operation: two
//! approvals).

mod common;

use common::gate::{Gate, baseline_copy};
use common::*;
use serde_json::{Value, json};

const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/runCommand/action"
class = "privileged"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Authorization/roleAssignments/write"
class = "privileged"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const DEVELOPER_PRIVILEGED: &str = r#"
@id("test-developer-privileged")
permit (principal in AppRole::"Developer", action in Action::"privileged", resource)
when { resource has resource_group && resource.resource_group like "dev-*" };
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

struct Jit {
    gate: Gate<InProcess>,
    _policies: tempfile::TempDir,
}

impl std::ops::Deref for Jit {
    type Target = Gate<InProcess>;
    fn deref(&self) -> &Gate<InProcess> {
        &self.gate
    }
}

async fn jit(approvals: &str) -> Jit {
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), Some(DEVELOPER_PRIVILEGED));
    let gate = Gate::start_in_process(
        TEST_CATALOG,
        &format!("dir = {policies:?}\n"),
        &format!("[approvals]\n{approvals}\n"),
    )
    .await;
    Jit {
        gate,
        _policies: scratch,
    }
}

impl Jit {
    /// A client signed in with MFA.
    async fn mfa_client(&self, user: &str, roles: &[&str]) -> Client {
        self.gate.client(user, roles, true).await
    }

    /// `POST /admin/api/requests/{id}/{action}` with `token`: status and body.
    async fn act(&self, token: &str, id: &str, action: &str, reason: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/admin/api/requests/{id}/{action}",
                self.warden.base()
            ))
            .bearer_auth(token)
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/admin/api/{path}", self.warden.base()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn vm_args(text: &str) -> Value {
    json!({"text": text, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"})
}

#[tokio::test]
async fn a_held_call_runs_once_after_approval_and_revocation_stops_the_next() {
    let jit = jit("").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let manager = jit.token("sam", &["SecurityManager"], true);

    // Held: a tool error a person and a model can act on; never forwarded.
    let held = call(&developer, "echo", vm_args("one")).await.unwrap();
    assert_eq!(held.is_error, Some(true));
    let message = text(&held);
    for part in [
        "Held for approval",
        "\"privileged-requires-jit\"",
        "Microsoft.Compute/virtualMachines/runCommand/action",
        "is pending",
        "SecurityManager",
        "lapses at",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let id = request_id(&message);
    // Retrying while pending finds the same request (idempotent).
    let again = call(&developer, "echo", vm_args("one")).await.unwrap();
    assert_eq!(request_id(&text(&again)), id);
    assert!(jit.received().is_empty());

    // The requester sees it, pending.
    let dev_token = jit.token("dave", &["Developer"], true);
    let (status, mine) = jit.get(&dev_token, "requests").await;
    assert_eq!(status, 200);
    assert_eq!(mine["requests"].as_array().unwrap().len(), 1);
    assert_eq!(mine["requests"][0]["status"], "pending");
    assert_eq!(mine["requests"][0]["requester"]["name"], "dave");

    // Approved by a security manager: the retried call runs, once.
    let (status, approved) = jit.act(&manager, &id, "approve", "ticket OPS-42").await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let ran = call(&developer, "echo", vm_args("one")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(jit.received(), ["one"]);
    let (_, used) = jit.get(&manager, &format!("requests/{id}")).await;
    assert_eq!(used["status"], "consumed");
    // A second retry is held again, as a new request.
    let held = call(&developer, "echo", vm_args("one")).await.unwrap();
    let second = request_id(&text(&held));
    assert_ne!(second, id);
    assert_eq!(jit.received(), ["one"]);

    // Approved, then revoked: the next call is held, not run.
    let (status, _) = jit.act(&manager, &second, "approve", "again").await;
    assert_eq!(status, 200);
    let (status, revoked) = jit
        .act(&manager, &second, "revoke", "changed my mind")
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    let held = call(&developer, "echo", vm_args("one")).await.unwrap();
    assert_eq!(held.is_error, Some(true));
    assert!(text(&held).contains("Held for approval"));
    let third = request_id(&text(&held));

    // Denied: the retry reports the denial and its reason.
    let (status, _) = jit
        .act(&manager, &third, "deny", "not during the freeze")
        .await;
    assert_eq!(status, 200);
    let denied = call(&developer, "echo", vm_args("one")).await.unwrap();
    let message = text(&denied);
    assert!(
        message.contains(&third) && message.contains("was denied by sam: not during the freeze"),
        "{message}"
    );
    assert_eq!(jit.received(), ["one"]);

    // The intent of the call that ran carries the grant's decision; every
    // state change is an approval record.
    let records = records(&jit.warden.db());
    let ran_intent = records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["decision"]["effect"] == "allow")
        .collect::<Vec<_>>();
    assert_eq!(ran_intent.len(), 1);
    // ... and names the grant it ran under, with its approver.
    assert_eq!(
        ran_intent[0]["jit"]["request_id"],
        id.as_str(),
        "{}",
        ran_intent[0]
    );
    assert_eq!(
        ran_intent[0]["jit"]["approvers"].as_array().map(Vec::len),
        Some(1)
    );
    let events: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| r["details"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "requested",
            "approved",
            "consumed",
            "requested",
            "approved",
            "revoked",
            "requested",
            "denied"
        ]
    );
    let approver = records
        .iter()
        .find(|r| r["kind"] == "approval" && r["details"]["event"] == "approved")
        .unwrap();
    assert_eq!(approver["principal"]["name"], "sam");
    assert_eq!(
        approver["details"]["request"]["reviews"][0]["reason"],
        "ticket OPS-42"
    );

    // A restarted Warden rebuilds the state from the log.
    let mut jit = jit;
    let warden = &mut jit.gate.warden;
    warden.stop().unwrap();
    warden.restart();
    let response = reqwest::Client::new()
        .get(format!("{}/admin/api/requests/{third}", warden.base()))
        .bearer_auth(&manager)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "denied", "{body}");
}

#[tokio::test]
async fn reviews_keep_separation_of_duties() {
    let jit = jit("").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let held = call(&developer, "echo", vm_args("x")).await.unwrap();
    let id = request_id(&text(&held));

    // No approver role, no MFA, no reason: refused, and said why.
    let operator = jit.token("otto", &["Operator"], true);
    let (status, body) = jit.act(&operator, &id, "approve", "ok").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SecurityManager")
    );
    let no_mfa = jit.token("sam", &["SecurityManager"], false);
    let (status, body) = jit.act(&no_mfa, &id, "approve", "ok").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multi-factor")
    );
    let manager = jit.token("sam", &["SecurityManager"], true);
    let (status, body) = jit.act(&manager, &id, "approve", "  ").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reason")
    );
    // No token: 401.
    let unauthenticated = reqwest::Client::new()
        .post(format!(
            "{}/admin/api/requests/{id}/approve",
            jit.warden.base()
        ))
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    // Someone else's request is invisible to a non-reviewer.
    let other = jit.token("eve", &["Developer"], true);
    let (status, _) = jit.get(&other, &format!("requests/{id}")).await;
    assert_eq!(status, 404);

    // A security manager's own request: never self-approved.
    let manager_client = jit
        .mfa_client("sam", &["SecurityManager", "Developer"])
        .await;
    let own = call(&manager_client, "echo", vm_args("mine"))
        .await
        .unwrap();
    let own_id = request_id(&text(&own));
    let (status, body) = jit.act(&manager, &own_id, "approve", "I trust me").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own request")
    );

    // A critical operation (a role assignment) needs two approvers.
    let critical = call(
        &developer,
        "add",
        json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}),
    )
    .await
    .unwrap();
    let critical_id = request_id(&text(&critical));
    let (status, first) = jit.act(&manager, &critical_id, "approve", "first").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            first["status"].as_str(),
            first["required_approvals"].as_u64()
        ),
        (Some("pending"), Some(2))
    );
    let (status, again) = jit.act(&manager, &critical_id, "approve", "twice").await;
    assert_eq!(status, 409, "one review per reviewer: {again}");
    let second_manager = jit.token("sue", &["SecurityManager"], true);
    let (status, second) = jit
        .act(&second_manager, &critical_id, "approve", "second")
        .await;
    assert_eq!(status, 200);
    assert_eq!(second["status"], "approved");
    let ran = call(
        &developer,
        "add",
        json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"}),
    )
    .await
    .unwrap();
    assert_eq!(text(&ran), "3");
}

#[tokio::test]
async fn pending_requests_lapse_and_grants_expire_by_configured_times() {
    let jit = jit("pending_lapse = \"2s\"\nsingle_use_window = \"2s\"\n").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let manager = jit.token("sam", &["SecurityManager"], true);
    let lapsing = request_id(&text(
        &call(&developer, "echo", vm_args("late")).await.unwrap(),
    ));
    let expiring = request_id(&text(
        &call(&developer, "echo", vm_args("slow")).await.unwrap(),
    ));
    let (status, _) = jit.act(&manager, &expiring, "approve", "ok").await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (_, lapsed) = jit.get(&manager, &format!("requests/{lapsing}")).await;
    assert_eq!(lapsed["status"], "lapsed");
    let (status, body) = jit.act(&manager, &lapsing, "approve", "too late").await;
    assert_eq!(status, 409, "{body}");
    let (_, expired) = jit.get(&manager, &format!("requests/{expiring}")).await;
    assert_eq!(expired["status"], "expired");
    // The expired grant no longer runs the call: a new request is made.
    let held = call(&developer, "echo", vm_args("slow")).await.unwrap();
    assert_eq!(held.is_error, Some(true));
    assert_ne!(request_id(&text(&held)), expiring);
    assert!(jit.received().is_empty());
}

#[tokio::test]
async fn a_time_window_grant_allows_calls_in_its_scope_until_revoked() {
    let jit = jit("").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let manager = jit.token("sam", &["SecurityManager"], true);
    let tools: Vec<String> = developer
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.iter().any(|t| t == "request_access") && tools.iter().any(|t| t == "access_status"),
        "{tools:?}"
    );
    let scope = format!("/subscriptions/{SUB}/resourceGroups/dev-web");
    let ask = |justification: &str, duration: &str| json!({"operations": ["privileged"], "scope": scope, "duration": duration, "justification": justification});
    // A justification is required, and the window is bounded.
    let refused = call(&developer, "request_access", ask(" ", "1h"))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("justification is required"),
        "{}",
        text(&refused)
    );
    let too_long = call(&developer, "request_access", ask("incident 7", "5h"))
        .await
        .unwrap();
    assert!(
        text(&too_long).contains("at most 4h"),
        "{}",
        text(&too_long)
    );

    let asked = call(&developer, "request_access", ask("incident 7", "1h"))
        .await
        .unwrap();
    assert_ne!(asked.is_error, Some(true), "{}", text(&asked));
    let asked: Value = serde_json::from_str(&text(&asked)).unwrap();
    let id = asked["request"].as_str().unwrap().to_owned();
    assert_eq!(asked["status"], "pending");
    // The group `privileged` reaches role assignments, a critical
    // operation: the window needs two approvers, and it was scored.
    assert_eq!(asked["critical"], true, "{asked}");
    assert_eq!(asked["required_approvals"], 2, "{asked}");
    assert!(asked["risk"]["score"].is_u64(), "{asked}");
    let (status, once) = jit
        .act(&manager, &id, "approve", "incident 7 confirmed")
        .await;
    assert_eq!(status, 200, "{once}");
    assert_eq!(once["status"], "pending", "{once}");
    let held = call(&developer, "echo", vm_args("w0")).await.unwrap();
    assert!(text(&held).contains("Held for approval"), "{}", text(&held));
    let second = jit.token("sue", &["SecurityManager"], true);
    let (status, approved) = jit
        .act(&second, &id, "approve", "second look: incident 7")
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved", "{approved}");

    // In scope: calls run, and keep running (the window is not used up).
    for text_in in ["w1", "w2"] {
        let ran = call(&developer, "echo", vm_args(text_in)).await.unwrap();
        assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    }
    assert_eq!(jit.received(), ["w1", "w2"]);
    // Outside the scope: held.
    let outside = call(
        &developer,
        "echo",
        json!({"text": "w3", "subscription": SUB, "resource-group": "dev-data", "vm": "db-01"}),
    )
    .await
    .unwrap();
    assert!(
        text(&outside).contains("Held for approval"),
        "{}",
        text(&outside)
    );
    let status_now = call(&developer, "access_status", json!({})).await.unwrap();
    let mine: Value = serde_json::from_str(&text(&status_now)).unwrap();
    let window = mine["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap();
    assert_eq!(window["status"], "approved");
    assert_eq!(window["ask"]["kind"], "window");

    // Revoked: the very next call is held.
    let (status, _) = jit.act(&manager, &id, "revoke", "incident closed").await;
    assert_eq!(status, 200);
    let held = call(&developer, "echo", vm_args("w4")).await.unwrap();
    assert!(text(&held).contains("Held for approval"), "{}", text(&held));
    assert_eq!(jit.received(), ["w1", "w2"]);
}

#[tokio::test]
async fn the_jit_cli_lists_shows_and_reviews_through_the_admin_api() {
    let jit = jit("").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let id = request_id(&text(
        &call(&developer, "echo", vm_args("cli")).await.unwrap(),
    ));
    let manager = jit.token("sam", &["SecurityManager"], true);
    let cli = |token: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("jit")
            .args(args)
            .args(["--url", &jit.warden.base(), "--token", token])
            .output()
            .unwrap()
    };
    let listed = cli(&manager, &["list", "--status", "pending"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        out.contains(&id) && out.contains("pending") && out.contains("dave"),
        "{out}"
    );
    let shown = cli(&manager, &["show", &id]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["ask"]["upstream_tool"], "echo");

    // The requester cannot approve: the API's refusal is the CLI's error.
    let dev_token = jit.token("dave", &["Developer"], true);
    let refused = cli(&dev_token, &["approve", &id, "--reason", "me"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("SecurityManager"),
        "{stderr}"
    );

    let approved = cli(&manager, &["approve", &id, "--reason", "looks right"]);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let approved: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(approved["status"], "approved");
    let ran = call(&developer, "echo", vm_args("cli")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(jit.received(), ["cli"]);

    // No token at all: a clear error, not a request.
    let no_token = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["jit", "list", "--url", &jit.warden.base()])
        .env_remove("WARDEN_TOKEN")
        .output()
        .unwrap();
    assert!(!no_token.status.success());
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("a token is needed"));
}

const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

/// The two-person rule holds for windows: a window for the action group
/// `privileged` reaches role assignments, so one approval is not enough,
/// and an Owner assignment stays held until a second reviewer approves.
/// Reviewers see the held assignment decoded (role by name, assignee by
/// name and type) while the audit log keeps its arguments redacted.
#[tokio::test]
async fn an_owner_assignment_through_a_privileged_window_needs_two_approvers() {
    let jit = jit("").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let sam = jit.token("sam", &["SecurityManager"], true);
    let sue = jit.token("sue", &["SecurityManager"], true);
    let scope = format!("/subscriptions/{SUB}/resourceGroups/dev-web");
    let asked = call(
        &developer,
        "request_access",
        json!({"operations": ["privileged"], "scope": scope, "duration": "1h",
               "justification": "rotate the deploy identity", "ticket": "CHG-7"}),
    )
    .await
    .unwrap();
    let asked: Value = serde_json::from_str(&text(&asked)).unwrap();
    let window = asked["request"].as_str().unwrap().to_owned();
    assert_eq!(
        (&asked["critical"], &asked["required_approvals"]),
        (&json!(true), &json!(2))
    );
    let (status, once) = jit.act(&sam, &window, "approve", "looks right").await;
    assert_eq!((status, once["status"].as_str()), (200, Some("pending")));
    let sam_oid = once["reviews"][0]["reviewer"]["oid"]
        .as_str()
        .unwrap()
        .to_owned();

    // The window does not cover the assignment yet: it is held on its own.
    let owner = json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "dev-web",
        "vm": "web-01", "role-definition-id": OWNER, "principal-id": sam_oid,
        "principal-type": "User"});
    let held = call(&developer, "add", owner.clone()).await.unwrap();
    assert!(
        text(&held).starts_with("Held for approval"),
        "{}",
        text(&held)
    );
    let held_id = request_id(&text(&held));
    let (_, shown) = jit.get(&sue, &format!("requests/{held_id}")).await;
    let fact = |label: &str| {
        shown["facts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["label"] == label)
            .unwrap_or_else(|| panic!("no {label} in {shown}"))
            .clone()
    };
    assert_eq!(fact("Role")["value"], "Owner");
    assert_eq!(fact("Assignee")["value"], "sam", "{shown}");
    assert_eq!(fact("Assignee type")["value"], "User");
    assert!(shown["facts_hash"].is_string(), "{shown}");
    // ... and the log keeps the arguments redacted.
    let records = records(&jit.warden.db());
    let logged = records
        .iter()
        .filter(|r| r["kind"] == "approval" && r["details"]["request_id"] == held_id.as_str())
        .map(|r| r["details"]["request"]["ask"]["arguments"].clone())
        .next()
        .unwrap();
    for secret in ["role-definition-id", "principal-id"] {
        assert!(
            logged[secret].as_str().unwrap().starts_with("hmac-sha256:"),
            "{logged}"
        );
    }
    assert!(!records.iter().any(|r| r.to_string().contains(OWNER)));

    // A second reviewer approves the window: the assignment now runs.
    let (status, approved) = jit
        .act(&sue, &window, "approve", "second pair of eyes")
        .await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    let ran = call(&developer, "add", owner).await.unwrap();
    assert_eq!(text(&ran), "3");
}

/// A held call can be justified after the fact (Warden's own tool), and
/// with `require_justification` its request reaches the reviewers only
/// then.
#[tokio::test]
async fn held_calls_are_justified_and_the_rule_holds_them_back_until_then() {
    let jit = jit("require_justification = true").await;
    let developer = jit.mfa_client("dave", &["Developer"]).await;
    let other = jit.mfa_client("erin", &["Developer"]).await;
    let manager = jit.token("sam", &["SecurityManager"], true);
    let held = call(&developer, "echo", vm_args("why")).await.unwrap();
    let message = text(&held);
    assert!(message.contains("justify_request"), "{message}");
    let id = request_id(&message);

    // Not shown to reviewers, and not reviewable, until justified.
    let (_, listed) = jit.get(&manager, "requests?status=pending").await;
    assert!(
        !listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "{listed}"
    );
    let (status, _) = jit.get(&manager, &format!("requests/{id}")).await;
    assert_eq!(status, 404);
    let (status, body) = jit.act(&manager, &id, "approve", "ok").await;
    assert_eq!(status, 409, "{body}");

    // Only the requester may justify it.
    let stranger = call(
        &other,
        "justify_request",
        json!({"request": id, "justification": "mine now"}),
    )
    .await
    .unwrap();
    assert_eq!(stranger.is_error, Some(true));
    let justified = call(
        &developer,
        "justify_request",
        json!({"request": id, "justification": "restart the hung agent", "ticket": "INC-42"}),
    )
    .await
    .unwrap();
    assert_ne!(justified.is_error, Some(true), "{}", text(&justified));

    let (status, shown) = jit.get(&manager, &format!("requests/{id}")).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["justification"], "restart the hung agent");
    assert_eq!(shown["ticket"], "INC-42");
    let (status, approved) = jit.act(&manager, &id, "approve", "justified").await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    let ran = call(&developer, "echo", vm_args("why")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(jit.received(), ["why"]);
}
