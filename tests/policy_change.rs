//! Policy change management end to end (docs/POLICY-CHANGES.md): a real
//! Warden (in this process, or `warden serve` where signals and restarts
//! matter) with the baseline policies in a directory of the test's, dev
//! tokens for security managers, an auditor and break glass, the admin API
//! over HTTP, the `warden policy` commands, and the audit log read back
//! from the store file.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::TokenOptions;
use warden::policy_change::FileSet;

/// A policy added by the proposals: auditors may read.
const AUDITOR_POLICY: &str = "// Auditors read everything.\n@id(\"test-auditor-reads\")\n\
    permit (principal in AppRole::\"Auditor\", action in Action::\"read\", resource);\n";

/// Its case, expecting `effect`.
fn auditor_case(effect: &str) -> String {
    format!(
        "[[case]]\nname = \"an auditor reads a VM\"\nprincipal = {{ roles = [\"Auditor\"] }}\n\
         operation = {{ azure_op = \"Microsoft.Compute/virtualMachines/read\", class = \"read\", \
         resource_id = \"/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/vm-1\" }}\n\
         expect = {{ effect = \"{effect}\" }}\n"
    )
}

/// The repository's baseline set: its policies and their tests.
fn baseline() -> FileSet {
    FileSet::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
}

/// The baseline with the auditor policy, and its case expecting `effect`.
fn with_auditor(effect: &str) -> FileSet {
    let mut set = baseline();
    set.files
        .insert("auditor.cedar".into(), AUDITOR_POLICY.into());
    set.tests
        .insert("auditor.toml".into(), auditor_case(effect));
    set
}

/// The admin API and tokens of a Warden deciding with a policy directory
/// of the test's.
struct Changes<W> {
    issuer: Issuer,
    warden: W,
    base: String,
    policies: PathBuf,
    _scratch: tempfile::TempDir,
}

/// No file watching: reloads come from SIGHUP and the admin API.
const UNWATCHED: &str = "watch_interval = \"0s\"\n";

/// A Warden's directory: the baseline set in `policies/`, and a config
/// whose `[policy]` has `require_approval` as asked and the `watch` keys.
fn setup(
    issuer: &Issuer,
    require_approval: bool,
    watch: &str,
) -> (tempfile::TempDir, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let policies = scratch.path().join("policies");
    baseline().write_into(&policies).unwrap();
    let policy = format!("dir = {policies:?}\n{watch}require_approval = {require_approval}\n");
    let dir = Setup {
        identity: &issuer.identity_toml(),
        // Never started: no MCP session is opened.
        upstreams: "[upstreams.idle]\ncommand = \"true\"\n",
        policy: Some(&policy),
        ..Setup::default()
    }
    .write();
    (scratch, dir)
}

async fn in_process(require_approval: bool, watch: &str) -> Changes<InProcess> {
    let issuer = Issuer::start().await;
    let (scratch, dir) = setup(&issuer, require_approval, watch);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let warden = InProcess::launch_dir(listener, dir);
    Changes {
        base: warden.base(),
        policies: scratch.path().join("policies"),
        issuer,
        warden,
        _scratch: scratch,
    }
}

async fn process(require_approval: bool) -> Changes<Warden> {
    let issuer = Issuer::start().await;
    let (scratch, dir) = setup(&issuer, require_approval, UNWATCHED);
    let warden = Warden::launch_dir(dir);
    Changes {
        base: warden.base(),
        policies: scratch.path().join("policies"),
        issuer,
        warden,
        _scratch: scratch,
    }
}

impl<W> Changes<W> {
    fn token(&self, user: &str, roles: &[&str], mfa: bool) -> String {
        self.issuer.mint(&TokenOptions {
            user: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa,
            ..TokenOptions::default()
        })
    }

    /// A security manager signed in with MFA.
    fn manager(&self, user: &str) -> String {
        self.token(user, &["SecurityManager"], true)
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/admin/api/policy/{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/admin/api/policy/{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn propose(&self, token: &str, set: &FileSet, note: &str) -> (u16, Value) {
        self.post(
            token,
            "proposals",
            json!({ "files": set.files, "tests": set.tests, "note": note }),
        )
        .await
    }

    /// The hash of the set that runs.
    async fn running(&self) -> String {
        let (status, listing) = self.get(&self.manager("reader-sec"), "proposals").await;
        assert_eq!(status, 200, "{listing}");
        listing["running"]["hash"].as_str().unwrap().to_owned()
    }

    async fn metrics(&self, prefix: &str) -> String {
        metric_lines(&self.base, &[prefix]).await
    }
}

fn db_of(dir: &Path) -> PathBuf {
    dir.join("warden.db")
}

/// The records of `kind` in the store, in order.
fn of_kind(db: &Path, kind: &str) -> Vec<Value> {
    records(db)
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn a_tested_proposal_is_approved_by_a_second_manager_applied_and_rolled_back() {
    let c = in_process(false, UNWATCHED).await;
    let db = db_of(c.warden.dir());
    let (sam, tina) = (c.manager("sam"), c.manager("tina"));
    let original = c.running().await;
    assert_eq!(original, baseline().hash());

    // A set whose tests fail is kept, but cannot be approved.
    let (status, failing) = c
        .propose(&sam, &with_auditor("deny"), "auditors read")
        .await;
    assert_eq!(status, 201, "{failing}");
    assert_eq!(failing["status"], "proposed");
    assert_eq!(failing["test_results"]["failed"], 1, "{failing}");
    assert!(
        failing["test_failures"][0]
            .as_str()
            .unwrap()
            .starts_with("tests/auditor.toml: an auditor reads a VM: effect"),
        "{failing}"
    );
    let failing_id = failing["id"].as_str().unwrap().to_owned();
    let (status, refused) = c
        .post(&tina, &format!("proposals/{failing_id}/approve"), json!({}))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "tests_failed");

    // A good set: tested, diffed against the running set, recorded.
    let good = with_auditor("allow");
    let (status, proposal) = c.propose(&sam, &good, "auditors read").await;
    assert_eq!(status, 201, "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    assert_eq!(proposal["hash"], good.hash());
    assert_eq!(proposal["base"], original);
    assert_eq!(proposal["test_results"]["failed"], 0);
    assert!(proposal["test_results"]["passed"].as_u64().unwrap() > 10);
    assert_eq!(
        proposal["diff_summary"]["added"],
        json!(["auditor.cedar", "tests/auditor.toml"])
    );
    let diff = proposal["diff"].as_str().unwrap();
    assert!(
        diff.contains("--- /dev/null\n+++ proposed/auditor.cedar\n"),
        "{diff}"
    );
    assert!(diff.contains("+@id(\"test-auditor-reads\")"), "{diff}");
    let proposed = of_kind(&db, "policy_change")
        .into_iter()
        .find(|r| r["details"]["proposal_id"] == id.as_str())
        .unwrap();
    assert_eq!(proposed["details"]["event"], "proposed");
    assert_eq!(proposed["details"]["hash"], good.hash());
    assert_eq!(proposed["details"]["note"], "auditors read");
    assert_eq!(proposed["details"]["tests"]["failed"], 0);
    assert_eq!(proposed["principal"]["name"], "sam");

    // Who may read: security managers and auditors, nobody else.
    let (status, _) = c
        .get(&c.token("dave", &["Developer"], true), "proposals")
        .await;
    assert_eq!(status, 403);
    let (status, shown) = c
        .get(
            &c.token("ann", &["Auditor"], false),
            &format!("proposals/{id}"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["diff"], proposal["diff"]);
    // Proposing takes a security manager with MFA.
    let (status, _) = c
        .propose(&c.token("sam", &["SecurityManager"], false), &good, "")
        .await;
    assert_eq!(status, 403);

    // Two people: the proposer cannot approve, nor a manager without MFA.
    let (status, own) = c
        .post(&sam, &format!("proposals/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 403, "{own}");
    assert!(
        own["error"]["message"]
            .as_str()
            .unwrap()
            .contains("two-person rule"),
        "{own}"
    );
    let (status, _) = c
        .post(
            &c.token("tina", &["SecurityManager"], false),
            &format!("proposals/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    // Not applied before it is approved.
    let (status, early) = c
        .post(&sam, &format!("proposals/{id}/apply"), json!({}))
        .await;
    assert_eq!(
        (status, early["error"]["code"].clone()),
        (409, json!("not_approved"))
    );
    let (status, approved) = c
        .post(
            &tina,
            &format!("proposals/{id}/approve"),
            json!({"reason": "reviewed"}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved"]["by"]["name"], "tina");
    let tina_oid = approved["approved"]["by"]["oid"]
        .as_str()
        .unwrap()
        .to_owned();
    let sam_oid = approved["proposer"]["oid"].as_str().unwrap().to_owned();

    // The approval record has exactly what the compliance report reads.
    let approval = of_kind(&db, "policy_change")
        .into_iter()
        .find(|r| r["details"]["event"] == "approved")
        .unwrap();
    assert_eq!(
        approval["details"],
        json!({
            "event": "approved",
            "proposal_id": id,
            "hash": good.hash(),
            "tests": {
                "passed": proposal["test_results"]["passed"],
                "failed": 0,
            },
            "proposer": sam_oid,
            "approver": tina_oid,
        })
    );

    // Applied by any security manager: written into the directory, loaded,
    // and its load carries the approval.
    let (status, applied) = c
        .post(&sam, &format!("proposals/{id}/apply"), json!({}))
        .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["loaded"]["hash"], good.hash());
    assert_eq!(applied["proposal"]["status"], "applied");
    assert_eq!(c.running().await, good.hash());
    assert_eq!(FileSet::read(&c.policies).unwrap(), good);
    let load = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(load["details"]["trigger"], "apply");
    assert_eq!(load["details"]["hash"], good.hash());
    assert_eq!(
        load["details"]["approval"],
        json!({ "proposal_id": id, "approvers": [tina_oid], "proposer": sam_oid })
    );
    assert_eq!(load["principal"]["name"], "sam");

    // A rollback needs a reason and a security manager; it restores the
    // set loaded before, files and all, and says what it replaced.
    let (status, _) = c.post(&sam, "rollback", json!({})).await;
    assert_eq!(status, 400);
    let (status, _) = c
        .post(
            &c.token("dave", &["Developer"], true),
            "rollback",
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, rolled) = c
        .post(
            &tina,
            "rollback",
            json!({"reason": "auditors read too much"}),
        )
        .await;
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["loaded"]["hash"], original);
    assert_eq!(c.running().await, original);
    assert_eq!(FileSet::read(&c.policies).unwrap(), baseline());
    let load = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(load["details"]["trigger"], "rollback");
    assert_eq!(load["details"]["rollback_of"], good.hash());
    assert_eq!(load["details"]["reason"], "auditors read too much");
    assert_eq!(load["details"]["hash"], original);

    // The set rolled back to was never approved: its load says so. Rolling
    // back again returns to the approved set, whose approval it carries.
    assert!(load["details"].get("approval").is_none(), "{load}");
    let (status, again) = c
        .post(&tina, "rollback", json!({"reason": "it was fine"}))
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(c.running().await, good.hash());
    let load = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(load["details"]["approval"]["proposal_id"], id.as_str());
    assert_eq!(load["details"]["rollback_of"], original);

    // A rejection needs a reason, and only a proposed set is rejected.
    let (status, _) = c
        .post(&tina, &format!("proposals/{failing_id}/reject"), json!({}))
        .await;
    assert_eq!(status, 400);
    let (status, rejected) = c
        .post(
            &tina,
            &format!("proposals/{failing_id}/reject"),
            json!({"reason": "its test is wrong"}),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    let (status, _) = c
        .post(
            &tina,
            &format!("proposals/{id}/reject"),
            json!({"reason": "late"}),
        )
        .await;
    assert_eq!(status, 409);
    let (_, listing) = c.get(&tina, "proposals").await;
    let statuses: Vec<&str> = listing["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "rejected"], "{listing}");
    assert!(listing["proposals"][0].get("diff").is_none());
}

#[tokio::test]
async fn a_malformed_proposal_is_refused_naming_file_and_line_and_nothing_is_kept() {
    let c = in_process(false, UNWATCHED).await;
    let db = db_of(c.warden.dir());
    let sam = c.manager("sam");

    // Bad Cedar: the statement starting on line 3 does not parse.
    let mut bad = baseline();
    bad.files.insert(
        "broken.cedar".into(),
        "// A policy with a typo.\n\n@id(\"broken\")\npermit (principal, action resource);\n"
            .into(),
    );
    let (status, refused) = c.propose(&sam, &bad, "").await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_policy_set");
    let problems = refused["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{refused}");
    assert_eq!(problems[0]["file"], "broken.cedar");
    assert_eq!(problems[0]["line"], 3);

    // An action the schema and catalog do not know, on line 2.
    let mut unknown = baseline();
    unknown.files.insert(
        "unknown.cedar".into(),
        "// Not an Azure operation.\n@id(\"typo\")\npermit (principal, action == Action::\"Microsoft.Compute/virtualMachines/explode\", resource);\n".into(),
    );
    let (status, refused) = c.propose(&sam, &unknown, "").await;
    assert_eq!(status, 422, "{refused}");
    let problems = refused["error"]["problems"].as_array().unwrap();
    assert_eq!(problems[0]["file"], "unknown.cedar");
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[0]["policy"], "typo");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown.cedar:2"),
        "{refused}"
    );

    // A name that is no plain policy file, and a body that is no set.
    let mut escaping = baseline();
    escaping
        .files
        .insert("../outside.cedar".into(), AUDITOR_POLICY.into());
    let (status, _) = c.propose(&sam, &escaping, "").await;
    assert_eq!(status, 422);
    let (status, _) = c
        .post(&sam, "proposals", json!({"files": {}, "extra": 1}))
        .await;
    assert_eq!(status, 400);

    // Nothing was kept or recorded, and the running set is untouched.
    let (_, listing) = c.get(&sam, "proposals").await;
    assert_eq!(listing["proposals"], json!([]), "{listing}");
    assert!(of_kind(&db, "policy_change").is_empty());
    assert_eq!(c.running().await, baseline().hash());
    assert!(!c.policies.join("broken.cedar").exists());
}

#[tokio::test]
async fn with_require_approval_unapproved_sets_are_refused_and_break_glass_loads_them() {
    let mut c = process(true).await;
    let db = db_of(c.warden.dir());
    let (sam, tina) = (c.manager("sam"), c.manager("tina"));
    let original = baseline().hash();

    // No set was ever approved: the first deployment starts, noted.
    let start = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(start["details"]["trigger"], "start");
    assert_eq!(start["details"]["first_deployment"], true);
    let (_, listing) = c.get(&sam, "proposals").await;
    assert_eq!(listing["require_approval"], true);
    assert_eq!(listing["running"]["approval"], Value::Null);

    // Files edited on disk and SIGHUP: refused, recorded, counted; the
    // running set stays.
    let mut edited = baseline();
    edited
        .files
        .insert("auditor.cedar".into(), AUDITOR_POLICY.into());
    std::fs::write(c.policies.join("auditor.cedar"), AUDITOR_POLICY).unwrap();
    hangup(c.warden.pid());
    let all = wait_for_records(&db, |all| {
        all.iter()
            .any(|r| r["kind"] == "policy_change" && r["details"]["event"] == "refused")
    })
    .await;
    let refusal = all
        .iter()
        .find(|r| r["kind"] == "policy_change")
        .unwrap_or_else(|| panic!("no refusal recorded: {}", c.warden.log()));
    assert_eq!(refusal["details"]["hash"], edited.hash());
    assert_eq!(refusal["details"]["trigger"], "sighup");
    assert!(
        refusal["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{refusal}"
    );
    assert_eq!(c.running().await, original);
    assert_eq!(
        c.metrics("warden_policy_loads_total{result=\"unapproved\"}")
            .await,
        "warden_policy_loads_total{result=\"unapproved\"} 1"
    );
    assert!(c.warden.log().contains("policy set refused: not approved"));

    // Break glass: only its role, with MFA, with a reason.
    let (status, _) = c.post(&sam, "load", json!({"reason": "outage"})).await;
    assert_eq!(status, 403);
    let no_mfa = c.token("bree", &["BreakGlass"], false);
    let (status, _) = c.post(&no_mfa, "load", json!({"reason": "outage"})).await;
    assert_eq!(status, 403);
    let bree = c.token("bree", &["BreakGlass"], true);
    let (status, _) = c.post(&bree, "load", json!({})).await;
    assert_eq!(status, 400);
    let (status, loaded) = c
        .post(
            &bree,
            "load",
            json!({"reason": "INC-7: auditors locked out"}),
        )
        .await;
    assert_eq!(status, 200, "{loaded}");
    assert_eq!(loaded["loaded"]["hash"], edited.hash());
    assert_eq!(c.running().await, edited.hash());
    let load = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(load["details"]["break_glass"], true);
    assert_eq!(load["details"]["trigger"], "break_glass");
    assert_eq!(load["details"]["reason"], "INC-7: auditors locked out");
    assert_eq!(load["principal"]["name"], "bree");
    assert_eq!(
        c.metrics("warden_policy_alerts_total").await,
        "warden_policy_alerts_total{alert=\"break_glass\"} 1"
    );
    assert!(c.warden.log().contains("policy set loaded by break glass"));

    // The set before was never approved: no rollback to it under
    // require_approval.
    let (status, refused) = c.post(&sam, "rollback", json!({"reason": "undo"})).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "unapproved");

    // The baseline, proposed, approved and applied over the break-glass set.
    let (status, proposal) = c.propose(&sam, &baseline(), "back to the baseline").await;
    assert_eq!(status, 201, "{proposal}");
    let id = proposal["id"].as_str().unwrap().to_owned();
    assert_eq!(
        proposal["diff_summary"]["removed"],
        json!(["auditor.cedar"])
    );
    let (status, _) = c
        .post(&tina, &format!("proposals/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, applied) = c
        .post(&tina, &format!("proposals/{id}/apply"), json!({}))
        .await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(c.running().await, original);
    assert!(!c.policies.join("auditor.cedar").exists());

    // An approved set starts.
    c.warden.terminate();
    c.warden.restart();
    c.base = c.warden.base();
    let start = of_kind(&db, "policy_load").pop().unwrap();
    assert_eq!(start["details"]["trigger"], "start");
    assert_eq!(start["details"]["approval"]["proposal_id"], id.as_str());

    // Files edited while Warden is stopped: the start is refused, clearly,
    // and recorded.
    c.warden.terminate();
    std::fs::write(c.policies.join("auditor.cedar"), AUDITOR_POLICY).unwrap();
    let (ok, log) = serve_until_exit(&c.warden.config_path());
    assert!(!ok, "an unapproved set started: {log}");
    assert!(
        log.contains(&format!("policy set {} is not approved", edited.hash())),
        "{log}"
    );
    let refusal = of_kind(&db, "policy_change").pop().unwrap();
    assert_eq!(refusal["details"]["event"], "refused");
    assert_eq!(refusal["details"]["trigger"], "start");
}

#[tokio::test]
async fn the_file_watcher_refuses_an_unapproved_edit_once_and_leaves_an_applied_set_alone() {
    let c = in_process(true, "watch_interval = \"100ms\"\n").await;
    let db = db_of(c.warden.dir());
    let (sam, tina) = (c.manager("sam"), c.manager("tina"));

    // Applied while the watcher looks every 100 ms: the files it sees
    // change are the set just loaded, so it loads nothing more.
    let good = with_auditor("allow");
    let (_, proposal) = c.propose(&sam, &good, "").await;
    let id = proposal["id"].as_str().unwrap().to_owned();
    let (status, _) = c
        .post(&tina, &format!("proposals/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 200);
    let (status, applied) = c
        .post(&sam, &format!("proposals/{id}/apply"), json!({}))
        .await;
    assert_eq!(status, 200, "{applied}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let triggers: Vec<Value> = of_kind(&db, "policy_load")
        .iter()
        .map(|l| l["details"]["trigger"].clone())
        .collect();
    assert_eq!(triggers, [json!("start"), json!("apply")]);

    // An edit nobody approved: refused once (not at every look), recorded
    // with its trigger; the applied set runs on.
    std::fs::write(
        c.policies.join("extra.cedar"),
        "@id(\"test-extra\")\npermit (principal in AppRole::\"Extra\", action in Action::\"read\", resource);\n",
    )
    .unwrap();
    wait_for_records(&db, |all| {
        all.iter()
            .any(|r| r["kind"] == "policy_change" && r["details"]["event"] == "refused")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let refusals: Vec<Value> = of_kind(&db, "policy_change")
        .into_iter()
        .filter(|r| r["details"]["event"] == "refused")
        .collect();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0]["details"]["trigger"], "file_change");
    assert_eq!(of_kind(&db, "policy_load").len(), 2);
    assert_eq!(c.running().await, good.hash());
    assert_eq!(
        c.metrics("warden_policy_loads_total{result=\"unapproved\"}")
            .await,
        "warden_policy_loads_total{result=\"unapproved\"} 1"
    );
}

/// Sends SIGHUP to `pid`.
fn hangup(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs `warden serve` on `config` until it exits (60 s at most): whether
/// it succeeded, and what it wrote to stderr.
fn serve_until_exit(config: &Path) -> (bool, String) {
    let log = config.with_file_name("refused-start.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), std::fs::read_to_string(&log).unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "warden serve did not exit: {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `warden policy ARGS` against `base` as `token`: whether it succeeded,
/// its stdout and its stderr.
async fn cli(base: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .arg("policy")
        .args(args)
        .env("WARDEN_URL", base)
        .env("WARDEN_TOKEN", token);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_policy_commands_propose_show_approve_apply_roll_back_and_refuse() {
    let c = in_process(false, UNWATCHED).await;
    let (sam, tina) = (c.manager("sam"), c.manager("tina"));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("proposed");
    let good = with_auditor("allow");
    good.write_into(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();

    let (ok, out, err) = cli(
        &c.base,
        &sam,
        &["propose", "--dir", dir_arg, "--note", "auditors read"],
    )
    .await;
    assert!(ok, "{out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("proposal  "))
        .unwrap_or_else(|| panic!("no proposal id: {out}"))
        .to_owned();
    assert!(out.contains("status    proposed"), "{out}");
    assert!(
        out.contains("added auditor.cedar, tests/auditor.toml"),
        "{out}"
    );

    let (ok, out, _) = cli(&c.base, &tina, &["proposals"]).await;
    assert!(ok);
    assert!(
        out.contains(&format!("running set {}", baseline().hash())),
        "{out}"
    );
    assert!(out.contains(&id) && out.contains("proposed"), "{out}");

    let (ok, out, _) = cli(&c.base, &tina, &["show", &id]).await;
    assert!(ok);
    assert!(out.contains("+++ proposed/auditor.cedar"), "{out}");
    assert!(out.contains("+@id(\"test-auditor-reads\")"), "{out}");

    let (ok, _, err) = cli(&c.base, &sam, &["approve", &id]).await;
    assert!(!ok);
    assert!(
        err.contains("403") && err.contains("two-person rule"),
        "{err}"
    );
    let (ok, out, err) = cli(&c.base, &tina, &["approve", &id, "--reason", "ok"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("proposal {id} is approved")), "{out}");

    let (ok, out, err) = cli(&c.base, &sam, &["apply", &id]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&good.hash()), "{out}");
    assert_eq!(c.running().await, good.hash());

    let (ok, out, err) = cli(&c.base, &sam, &["rollback", "--reason", "undo"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&baseline().hash()), "{out}");
    assert_eq!(c.running().await, baseline().hash());

    // Break glass is not a security manager's.
    let (ok, _, err) = cli(
        &c.base,
        &sam,
        &["load", "--break-glass", "--reason", "outage"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("403") && err.contains("BreakGlass"), "{err}");

    // A set whose tests fail is kept but the command fails; it is then
    // rejected.
    with_auditor("deny").write_into(&dir).unwrap();
    let (ok, out, err) = cli(&c.base, &sam, &["propose", "--dir", dir_arg]).await;
    assert!(!ok);
    assert!(out.contains("1 failed") && out.contains("FAIL"), "{out}");
    assert!(err.contains("cannot be approved"), "{err}");
    let failing = out
        .lines()
        .find_map(|l| l.strip_prefix("proposal  "))
        .unwrap()
        .to_owned();
    let (ok, out, err) = cli(
        &c.base,
        &tina,
        &["reject", &failing, "--reason", "wrong test"],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("is rejected"), "{out}");

    // A malformed set: the file and line of each problem.
    std::fs::write(
        dir.join("broken.cedar"),
        "// typo\n\n@id(\"broken\")\npermit (principal, action resource);\n",
    )
    .unwrap();
    let (ok, _, err) = cli(&c.base, &sam, &["propose", "--dir", dir_arg]).await;
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("broken.cedar:3:"),
        "{err}"
    );
}
