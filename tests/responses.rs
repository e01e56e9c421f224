//! Automatic responses end to end: a real Warden with the baseline
//! policies and the baseline response rules, dev tokens, and either the
//! demo upstream (whose `echo` the test catalog makes a VM delete) or the
//! built-in Azure tools against the ARM simulator.
//!
//! * a delete burst suspends the principal, and no further call of it runs;
//! * a break-glass role assignment (no approval) is revoked in the
//!   simulator, and the incident lists the call's records and the
//!   revocation's;
//! * a flood of bad tokens from one address blocks it, while another
//!   address keeps working;
//! * a block ends with its cool-down;
//! * in `notify` mode every response only records (a suspension, an
//!   incident, a block, a revocation);
//! * a suspension made on one replica (PostgreSQL store) is enforced on
//!   the other within `[response] refresh`, and so is a block.

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use common::gate::{Gate, arm_simulator, baseline_copy, shadow_policy, sim_served};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::azure::sim;
use warden::identity::dev::TokenOptions;
use warden::store::postgres::ScratchSchema;

const DELETES: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
class = "delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = sim::DEV_SUBSCRIPTION;

fn vm(name: &str) -> Value {
    json!({"text": name, "subscription": SUB, "resource-group": "dev-web", "vm": name})
}

/// Arguments of `add` (the demo's sum, a VM read here) on VM `name`.
fn read(name: &str) -> Value {
    json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": "dev-web", "vm": name})
}

fn events(seen: &Arc<Mutex<Vec<Value>>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|n| n["warden"]["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The policies of a Warden without Azure to look VMs up in: the
/// guardrail holding deletes of resources without facts is recorded, not
/// enforced (it would hold every delete before the risk stage has a say).
fn policies_without_facts(dir: &std::path::Path) -> String {
    let policies = baseline_copy(dir, None);
    shadow_policy(&policies, "delete-without-facts-requires-jit");
    format!("dir = {policies:?}\n")
}

/// The call id a tool error names: "(call ID)" at its end.
fn call_id_in(message: &str) -> String {
    message
        .rsplit_once("(call ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no call id in {message}"))
        .to_owned()
}

/// Deletes VM after VM through `client` until one is refused: the VMs that
/// ran and the refusal.
async fn delete_until_refused(client: &Client) -> (Vec<String>, String) {
    let mut ran = Vec::new();
    for i in 1..=30 {
        let name = format!("vm-{i:02}");
        let result = call(client, "echo", vm(&name)).await.unwrap();
        if result.is_error == Some(true) {
            return (ran, text(&result));
        }
        ran.push(name);
    }
    panic!("thirty deletes in a row were never refused");
}

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

fn seqs_of_call(records: &[Value], call_id: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r["call_id"] == call_id && (r["kind"] == "intent" || r["kind"] == "outcome"))
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_delete_burst_suspends_the_principal_and_no_further_call_runs() {
    let (hook, notifications) = webhook().await;
    let scratch = tempfile::tempdir().unwrap();
    let policy = policies_without_facts(scratch.path());
    let gate = Gate::start_in_process(
        DELETES,
        &policy,
        &format!("[approvals.notify]\nwebhooks = [{hook:?}]\nfirst_backoff = \"10ms\"\n"),
    )
    .await;
    let carol = gate.client("carol", &["Contributor"], true).await;
    let dave = gate.client("dave", &["Contributor"], true).await;

    // The burst runs until the delete floor (more than five times the
    // usual deletes in an hour) scores a call high: that call is held, and
    // the mass-deletion rule suspends carol.
    let (ran, refused) = delete_until_refused(&carol).await;
    assert!(ran.len() >= 2, "the first deletes run: {ran:?}");
    assert!(refused.contains("Held for approval"), "{refused}");
    // The refusal tells carol what happened to her.
    assert!(
        refused.contains("Warden has suspended carol for this"),
        "{refused}"
    );
    let trigger = call_id_in(&refused);

    // Every further call is refused, a read as much as a delete, and none
    // reaches the upstream.
    for (tool, args) in [("echo", vm("vm-90")), ("add", read("vm-91"))] {
        let next = call(&carol, tool, args).await.unwrap();
        let message = text(&next);
        assert_eq!(next.is_error, Some(true), "{message}");
        for part in [
            "carol is suspended by Warden",
            "rule mass-deletion",
            "until a security manager lifts the suspension",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
    }
    assert_eq!(
        gate.received(),
        ran,
        "nothing ran after the burst was stopped"
    );
    // Another principal is not affected.
    let answer = call(&dave, "add", read("vm-01")).await.unwrap();
    assert_ne!(answer.is_error, Some(true), "{}", text(&answer));

    // The triggering call's intent and outcome come first, then the
    // suspension, then the incident that lists both.
    let records = wait_for_records(&gate.warden.db(), |all| {
        all.iter().any(|r| r["kind"] == "incident")
            && all
                .iter()
                .filter(|r| r["kind"] == "outcome" && r["principal"]["name"] == "carol")
                .count()
                >= ran.len() + 3
    })
    .await;
    let call_seqs = seqs_of_call(&records, &trigger);
    assert_eq!(call_seqs.len(), 2, "intent and outcome of {trigger}");
    let responses = of_kind(&records, "response");
    assert_eq!(responses.len(), 1, "{responses:?}");
    let suspend = responses[0];
    assert_eq!(suspend["details"]["action"], "suspend");
    assert_eq!(suspend["details"]["mode"], "enforce");
    assert_eq!(suspend["details"]["result"], "done");
    assert_eq!(suspend["details"]["rule"], "mass-deletion");
    assert_eq!(suspend["details"]["trigger"], "floor:delete_spike");
    assert_eq!(suspend["call_id"], trigger.as_str());
    assert_eq!(suspend["principal"]["name"], "carol");
    assert_eq!(suspend["details"]["calls"][0]["seqs"], json!(call_seqs));
    let suspend_seq = suspend["seq"].as_u64().unwrap();
    assert!(
        call_seqs.iter().all(|s| *s < suspend_seq),
        "{call_seqs:?} < {suspend_seq}"
    );
    let incidents = of_kind(&records, "incident");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let incident = &incidents[0]["details"];
    assert_eq!(incident["event"], "opened");
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["principal"]["name"], "carol");
    assert_eq!(incident["calls"][0]["call_id"], trigger.as_str());
    assert_eq!(incident["calls"][0]["seqs"], json!(call_seqs));
    assert_eq!(incident["actions"][0]["action"], "suspend");
    assert_eq!(incident["actions"][0]["seq"], suspend_seq);
    assert!(incidents[0]["seq"].as_u64().unwrap() > suspend_seq);
    assert_eq!(suspend["details"]["incident_id"], incident["incident_id"]);
    // The refused calls are recorded: intents whose decision names the
    // suspension, outcomes `denied`.
    let refused_intents: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["decision"]["suspended"].is_object())
        .collect();
    assert_eq!(refused_intents.len(), 2, "{refused_intents:?}");
    for intent in refused_intents {
        let id = intent["call_id"].as_str().unwrap();
        let outcome = records
            .iter()
            .find(|r| r["kind"] == "outcome" && r["call_id"] == id)
            .unwrap_or_else(|| panic!("no outcome of {id}"));
        assert_eq!(outcome["status"], "denied");
    }

    // The security managers are told.
    eventually("the suspension and incident notifications", || {
        let seen = events(&notifications);
        seen.contains(&"response.suspended".to_owned())
            && seen.contains(&"incident.opened".to_owned())
    })
    .await;
    // /metrics counts it.
    let metrics = metric_lines(
        &gate.warden.base(),
        &["warden_responses_total", "warden_suspended_principals"],
    )
    .await;
    for line in [
        "warden_responses_total{action=\"suspend\",mode=\"enforce\"} 1",
        "warden_responses_total{action=\"incident\",mode=\"enforce\"} 1",
        "warden_suspended_principals 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

/// A Warden whose only upstream is the built-in Azure tools against the
/// ARM simulator, deciding with the baseline policies.
struct Azure {
    issuer: Issuer,
    sim: sim::Simulator,
    warden: InProcess,
    _scratch: tempfile::TempDir,
}

impl Azure {
    async fn start(tables: &str) -> Azure {
        let issuer = Issuer::start().await;
        let scratch = tempfile::tempdir().unwrap();
        let (sim, azure) = arm_simulator(&issuer, scratch.path()).await;
        let policies = baseline_copy(scratch.path(), None);
        let warden = InProcess::start_with_policy(
            "",
            &issuer.identity_toml(),
            &format!("{tables}\n{azure}[upstreams.azure]\nbuiltin = \"arm\"\n"),
            &format!("dir = {policies:?}\n"),
        );
        Azure {
            issuer,
            sim,
            warden,
            _scratch: scratch,
        }
    }

    async fn client(&self, user: &str, roles: &[&str]) -> Client {
        let token = self.issuer.mint(&TokenOptions {
            user: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa: true,
            ..TokenOptions::default()
        });
        connect_as(&self.warden.url(), Some(&token)).await.0
    }

    /// The ARM requests the simulator served: "METHOD path".
    async fn served(&self) -> Vec<String> {
        sim_served(&self.sim).await
    }
}

fn assign(scope: &str) -> Value {
    json!({
        "scope": scope,
        "role-definition-id": sim::seed::ROLE_READER,
        "principal-id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "principal-type": "User",
    })
}

#[tokio::test]
async fn a_break_glass_role_assignment_without_approval_is_revoked_and_the_incident_lists_both() {
    let azure = Azure::start("").await;
    let admin = azure.client("erin", &["BreakGlass"]).await;
    let scope = format!("/subscriptions/{SUB}/resourceGroups/dev-web");

    // Break glass lets the grant run, without an approval.
    let made = call(&admin, "arm_role_assignment_create", assign(&scope))
        .await
        .unwrap();
    assert_ne!(made.is_error, Some(true), "{}", text(&made));
    let created: Value = serde_json::from_str(&text(&made)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let name = created["name"].as_str().unwrap().to_owned();

    // Warden deleted it again with its own credential, before answering.
    let served = azure.served().await;
    let deleted = served
        .iter()
        .find(|r| r.starts_with("DELETE ") && r.to_lowercase().ends_with(&name.to_lowercase()))
        .unwrap_or_else(|| panic!("no DELETE of {name} in {served:?}"));
    assert!(deleted.contains("roleAssignments"), "{deleted}");
    let listed = call(&admin, "arm_role_assignment_list", json!({"scope": scope}))
        .await
        .unwrap();
    assert!(!text(&listed).contains(&name), "{}", text(&listed));

    let records = wait_for_records(&azure.warden.db(), |all| {
        all.iter().any(|r| r["kind"] == "incident")
    })
    .await;
    let intent = records
        .iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "arm_role_assignment_create")
        .expect("the grant's intent");
    assert_eq!(intent["risk"]["level"], "critical", "{intent}");
    let call_id = intent["call_id"].as_str().unwrap();
    let call_seqs = seqs_of_call(&records, call_id);
    assert_eq!(call_seqs.len(), 2);
    let outcome = records
        .iter()
        .find(|r| r["kind"] == "outcome" && r["call_id"] == call_id)
        .unwrap();
    assert_eq!(outcome["status"], "ok");
    let revoke = of_kind(&records, "response")
        .into_iter()
        .find(|r| r["details"]["action"] == "revoke")
        .expect("the revocation record");
    assert_eq!(revoke["details"]["result"], "done", "{revoke}");
    assert_eq!(revoke["details"]["rule"], "unapproved-privilege-grant");
    assert_eq!(
        revoke["details"]["target"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_lowercase())
            .collect::<Vec<_>>(),
        [id.to_lowercase()]
    );
    let revoke_seq = revoke["seq"].as_u64().unwrap();
    assert!(call_seqs.iter().all(|s| *s < revoke_seq));
    let incident = of_kind(&records, "incident")[0];
    let details = &incident["details"];
    assert_eq!(details["calls"][0]["call_id"], call_id);
    assert_eq!(details["calls"][0]["seqs"], json!(call_seqs));
    assert_eq!(details["actions"][0]["action"], "revoke");
    assert_eq!(details["actions"][0]["result"], "done");
    assert_eq!(details["actions"][0]["seq"], revoke_seq);
    assert!(
        details["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("without an approval")),
        "{details}"
    );
    // Break glass is not suspended by this rule: the next call runs.
    let again = call(&admin, "arm_role_assignment_list", json!({"scope": scope}))
        .await
        .unwrap();
    assert_ne!(again.is_error, Some(true), "{}", text(&again));
}

/// Initializes an MCP session at `url` from `local` with `token`: the
/// HTTP status and the `Retry-After` header.
async fn initialize_from(local: IpAddr, url: &str, token: &str) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::builder()
        .local_address(local)
        .build()
        .unwrap();
    let response = client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}
        }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

#[tokio::test]
async fn a_flood_of_bad_tokens_blocks_its_address_while_another_keeps_working() {
    let scratch = tempfile::tempdir().unwrap();
    let policy = policies_without_facts(scratch.path());
    let gate = Gate::start_in_process(
        DELETES,
        &policy,
        "[response.block]\nmin_attempts = 8\ncool_down = \"10m\"\n",
    )
    .await;
    let url = gate.warden.url();
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let good: IpAddr = "127.0.0.1".parse().unwrap();
    let valid = gate.token("dave", &["Reader"], true);

    // Refused as bad tokens (401) until the address tips the rule; then
    // refused as blocked (403), whatever the token.
    let mut unauthorized = 0;
    let blocked = loop {
        let (status, retry, body) = initialize_from(attacker, &url, "not.a.token").await;
        match status {
            401 => unauthorized += 1,
            403 => break (retry, body),
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(unauthorized < 100, "never blocked");
    };
    assert!(unauthorized >= 8, "blocked after {unauthorized} attempts");
    let (retry, body) = blocked;
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!(retry > 0 && retry <= 600, "{retry}");
    assert_eq!(body["error"]["data"]["reason"], "blocked", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("127.0.0.2/32"), "{message}");
    // A valid token does not get through from there either...
    let (status, _, _) = initialize_from(attacker, &url, &valid).await;
    assert_eq!(status, 403);
    // ... while another address works.
    let (status, _, body) = initialize_from(good, &url, &valid).await;
    assert_eq!(status, 200, "{body}");
    let dave = gate.client("dave", &["Reader"], true).await;
    let answer = call(&dave, "add", read("vm-01")).await.unwrap();
    assert_ne!(answer.is_error, Some(true), "{}", text(&answer));

    let records = wait_for_records(&gate.warden.db(), |all| {
        all.iter().any(|r| r["kind"] == "response")
    })
    .await;
    let block = of_kind(&records, "response")[0];
    assert_eq!(block["details"]["action"], "block");
    assert_eq!(block["details"]["result"], "done");
    assert_eq!(block["details"]["target"], "127.0.0.2/32");
    assert_eq!(block["details"]["rule"], "authentication-failures");
    assert!(block["details"]["failures"].as_u64().unwrap() >= 8);
}

#[tokio::test]
async fn in_notify_mode_every_response_only_records() {
    let scratch = tempfile::tempdir().unwrap();
    let policy = policies_without_facts(scratch.path());
    let notify = r#"
[response.block]
min_attempts = 5
[[response.rules]]
name = "mass-deletion"
on = "floor:delete_spike"
actions = ["suspend", "incident"]
mode = "notify"
[[response.rules]]
name = "authentication-failures"
on = "auth_failures"
actions = ["block"]
mode = "notify"
"#;
    let gate = Gate::start_in_process(DELETES, &policy, notify).await;
    let carol = gate.client("carol", &["Contributor"], true).await;
    let (ran, refused) = delete_until_refused(&carol).await;
    assert!(refused.contains("Held for approval"), "{refused}");
    assert!(!refused.contains("Warden has suspended"), "{refused}");
    let trigger = call_id_in(&refused);
    // Not suspended: the next read runs.
    let answer = call(&carol, "add", read("vm-01")).await.unwrap();
    assert_ne!(answer.is_error, Some(true), "{}", text(&answer));
    assert_eq!(gate.received().len(), ran.len());

    // Not blocked: bad tokens keep getting 401.
    let attacker: IpAddr = "127.0.0.3".parse().unwrap();
    for _ in 0..20 {
        let (status, _, body) = initialize_from(attacker, &gate.warden.url(), "bad").await;
        assert_eq!(status, 401, "{body}");
    }

    let records = wait_for_records(&gate.warden.db(), |all| {
        let responses = all.iter().filter(|r| r["kind"] == "response").count();
        responses >= 3
    })
    .await;
    let responses = of_kind(&records, "response");
    let mut seen: Vec<(String, String)> = responses
        .iter()
        .map(|r| {
            assert_eq!(r["details"]["mode"], "notify", "{r}");
            assert_eq!(r["details"]["result"], "would", "{r}");
            (
                r["details"]["action"].as_str().unwrap().to_owned(),
                r["details"]["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("block".to_owned(), "authentication-failures".to_owned()),
            ("incident".to_owned(), "mass-deletion".to_owned()),
            ("suspend".to_owned(), "mass-deletion".to_owned()),
        ]
    );
    let suspend = responses
        .iter()
        .find(|r| r["details"]["action"] == "suspend")
        .unwrap();
    assert_eq!(suspend["call_id"], trigger.as_str());
    // Nothing was opened or changed.
    assert!(of_kind(&records, "incident").is_empty());
}

/// Two replicas on one PostgreSQL schema, each reading the others'
/// suspensions and blocks every 200 ms (`tables` added to their config).
struct Two {
    issuer: Issuer,
    replicas: Vec<InProcess>,
    _schema: ScratchSchema,
    _scratch: tempfile::TempDir,
}

impl Two {
    fn start(tables: &str, issuer: Issuer) -> Two {
        let schema = ScratchSchema::create(&replicas::postgres_admin())
            .expect("PostgreSQL at 127.0.0.1:5432");
        let url = schema.url();
        let scratch = tempfile::tempdir().unwrap();
        let catalog = scratch.path().join("catalog");
        std::fs::create_dir(&catalog).unwrap();
        std::fs::write(catalog.join("demo.toml"), DELETES).unwrap();
        let upstreams = format!(
            "[response]\nrefresh = \"200ms\"\n{tables}\n[catalog]\ndir = {catalog:?}\n[upstreams.demo]\ncommand = {:?}\n",
            example("demo_upstream").display().to_string()
        );
        let identity = issuer.identity_toml();
        let mut replicas: Vec<InProcess> = Vec::new();
        for i in 0..2 {
            let policy = policies_without_facts(&scratch.path().join(format!("replica-{i}")));
            let setup = Setup {
                server_extra: "",
                identity: &identity,
                upstreams: &upstreams,
                audit_extra: "",
                policy: Some(&policy),
            };
            let first = replicas.first().map(|r| r.dir.path());
            let dir = replicas::replica_dir(&setup, &url, first);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            replicas.push(InProcess::launch_dir(listener, dir));
        }
        Two {
            issuer,
            replicas,
            _schema: schema,
            _scratch: scratch,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspension_made_on_one_replica_is_enforced_on_the_other() {
    let two = Two::start("", Issuer::start().await);
    let (issuer, replicas) = (&two.issuer, &two.replicas);
    let token = issuer.mint(&TokenOptions {
        user: "carol".into(),
        roles: vec!["Contributor".into()],
        mfa: true,
        ..TokenOptions::default()
    });
    let on_a = connect_as(&replicas[0].url(), Some(&token)).await.0;
    let on_b = connect_as(&replicas[1].url(), Some(&token)).await.0;
    // Replica B serves carol before anything happened.
    let before = call(&on_b, "add", read("vm-01")).await.unwrap();
    assert_ne!(before.is_error, Some(true), "{}", text(&before));

    // The burst, on replica A, suspends carol there...
    delete_until_refused(&on_a).await;
    let next = call(&on_a, "add", read("vm-02")).await.unwrap();
    assert!(
        text(&next).contains("is suspended by Warden"),
        "{}",
        text(&next)
    );
    // ... and replica B refuses her within its refresh interval. Each try
    // is a read, so nothing B lets through before it knows does harm.
    let mut tries = 0;
    loop {
        tries += 1;
        let result = call(&on_b, "add", read("vm-03")).await.unwrap();
        if text(&result).contains("is suspended by Warden") {
            break;
        }
        assert!(tries < 200, "replica B never enforced the suspension");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_made_on_one_replica_is_enforced_on_the_other() {
    let two = Two::start(
        "[response.block]\nmin_attempts = 5\n",
        Issuer::start().await,
    );
    let (a, b) = (two.replicas[0].url(), two.replicas[1].url());
    let from: IpAddr = "127.0.0.5".parse().unwrap();
    let valid = two.issuer.token("dave");
    // Replica B serves the address before anything happened.
    let (status, _, body) = initialize_from(from, &b, &valid).await;
    assert_eq!(status, 200, "{body}");
    // Bad tokens on replica A until A blocks it...
    let mut tries = 0;
    while initialize_from(from, &a, "not.a.token").await.0 != 403 {
        tries += 1;
        assert!(tries < 100, "replica A never blocked the address");
    }
    // ... and replica B refuses it within its refresh interval, while
    // another address is still served there.
    let mut tries = 0;
    loop {
        let (status, retry, body) = initialize_from(from, &b, &valid).await;
        if status == 403 {
            assert_eq!(body["error"]["data"]["reason"], "blocked", "{body}");
            assert!(retry.is_some());
            break;
        }
        assert_eq!(status, 200, "{body}");
        tries += 1;
        assert!(tries < 200, "replica B never enforced the block");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _, body) = initialize_from("127.0.0.1".parse().unwrap(), &b, &valid).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_block_ends_with_its_cool_down() {
    let scratch = tempfile::tempdir().unwrap();
    let policy = policies_without_facts(scratch.path());
    let gate = Gate::start_in_process(
        DELETES,
        &policy,
        "[response.block]\nmin_attempts = 4\ncool_down = \"1s\"\n",
    )
    .await;
    let url = gate.warden.url();
    let from: IpAddr = "127.0.0.4".parse().unwrap();
    let valid = gate.token("dave", &["Reader"], true);
    let mut tries = 0;
    loop {
        let (status, _, body) = initialize_from(from, &url, "not.a.token").await;
        if status == 403 {
            break;
        }
        assert_eq!(status, 401, "{body}");
        tries += 1;
        assert!(tries < 100, "never blocked");
    }
    // Once the cool-down is over, the address is served again (a valid
    // token; the failures still in the window do not block a success).
    let mut waited = 0;
    loop {
        let (status, _, body) = initialize_from(from, &url, &valid).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 403, "{body}");
        waited += 1;
        assert!(waited < 200, "the block never ended");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_revocation_in_notify_mode_only_records() {
    let azure = Azure::start(
        "[[response.rules]]\nname = \"unapproved-privilege-grant\"\n\
         on = \"floor:privilege_grant_without_approval\"\nactions = [\"revoke\", \"incident\"]\n\
         mode = \"notify\"\n",
    )
    .await;
    let admin = azure.client("erin", &["BreakGlass"]).await;
    let scope = format!("/subscriptions/{SUB}/resourceGroups/dev-web");
    let made = call(&admin, "arm_role_assignment_create", assign(&scope))
        .await
        .unwrap();
    assert_ne!(made.is_error, Some(true), "{}", text(&made));
    let created: Value = serde_json::from_str(&text(&made)).unwrap();
    let name = created["name"].as_str().unwrap().to_owned();

    // Nothing was deleted: the assignment is still there.
    assert!(
        !azure
            .served()
            .await
            .iter()
            .any(|r| r.starts_with("DELETE ")),
        "a DELETE was sent"
    );
    let listed = call(&admin, "arm_role_assignment_list", json!({"scope": scope}))
        .await
        .unwrap();
    assert!(text(&listed).contains(&name), "{}", text(&listed));

    // What would have been done is recorded, and no incident is opened.
    let records = wait_for_records(&azure.warden.db(), |all| {
        all.iter().filter(|r| r["kind"] == "response").count() >= 2
    })
    .await;
    let mut would: Vec<&str> = of_kind(&records, "response")
        .iter()
        .map(|r| {
            assert_eq!(r["details"]["mode"], "notify", "{r}");
            assert_eq!(r["details"]["result"], "would", "{r}");
            r["details"]["action"].as_str().unwrap()
        })
        .collect();
    would.sort();
    assert_eq!(would, ["incident", "revoke"]);
    let revoke = of_kind(&records, "response")
        .into_iter()
        .find(|r| r["details"]["action"] == "revoke")
        .unwrap();
    assert_eq!(
        revoke["details"]["target"][0]
            .as_str()
            .unwrap()
            .to_lowercase(),
        created["id"].as_str().unwrap().to_lowercase()
    );
    assert!(of_kind(&records, "incident").is_empty());
}
