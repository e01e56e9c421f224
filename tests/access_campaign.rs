//! An access review campaign end to end, over real HTTP against a real
//! Warden (the baseline policies, the demo upstream, dev tokens, a SQLite
//! store): real tool calls make the usage; a security manager starts a
//! campaign for two roles with a deadline seconds ahead and auto-removal;
//! two reviewers decide items through the API, the CLI and the approvals
//! page (a decision about oneself and one without a reason are refused, a
//! second decision needs an override, a form from another site or without
//! the session's CSRF token changes nothing); the background check removes the rest at the
//! deadline; the audit records are exactly the expected events in order;
//! and the proposal validates, its generated tests pass, and it denies the
//! removed principals what their role allowed while the others keep it.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::facade::encode;
use common::gate::{Gate, baseline_copy};
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::DEV_TENANT;
use warden::identity::{Principal, PrincipalKind};
use warden::policy::{CallContext, Engine, OperationFacts, PolicyConfig};

/// `echo` starts a VM, `add` reads one: the VM the arguments name.
const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/start/action"
class = "action"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"

[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

fn vm(group: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/web-01"
    )
}

fn start_vm(group: &str) -> Value {
    json!({"text": "start", "subscription": SUB, "resource-group": group, "vm": "web-01"})
}

fn read_vm(group: &str) -> Value {
    json!({"a": 1, "b": 2, "subscription": SUB, "resource-group": group, "vm": "web-01"})
}

/// One admin API call: status and body.
async fn api(
    gate: &Gate<InProcess>,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/admin/api/{path}", gate.warden.base()))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `warden access campaign ARGS` against the gate as `token`.
fn cli(gate: &Gate<InProcess>, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["access", "campaign"])
        .args(args)
        .env("WARDEN_URL", gate.warden.base())
        .env("WARDEN_TOKEN", token)
        .output()
        .expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A browser's session on the approvals page, signed in with a token as a
/// person pastes it: its cookie and CSRF token.
struct PageSession {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

/// The value of cookie `name` among a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no cookie {name}"))
        .to_owned()
}

/// The first `csrf` hidden field of a page.
fn csrf_field(html: &str) -> String {
    let start = html.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

impl PageSession {
    async fn sign_in(gate: &Gate<InProcess>, token: &str) -> PageSession {
        let base = gate.warden.base();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http.get(format!("{base}/admin/")).send().await.unwrap();
        let sign_in = set_cookie(&form, "warden_admin_signin");
        let signed = http
            .post(format!("{base}/admin/sign-in"))
            .header("Cookie", format!("warden_admin_signin={sign_in}"))
            .header("Origin", &base)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encode(&[("token", token), ("csrf", sign_in.as_str())]))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 303);
        let cookie = format!("warden_admin={}", set_cookie(&signed, "warden_admin"));
        let mut session = PageSession {
            base,
            http,
            cookie,
            csrf: String::new(),
        };
        session.csrf = csrf_field(&session.get("/admin/campaigns").await);
        session
    }

    async fn get(&self, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// Posts the decide form of `item` from `origin`, with the session's
    /// CSRF token or a wrong one: status and `Location`.
    async fn post_decide(
        &self,
        campaign: &str,
        item: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
        csrf: bool,
    ) -> (u16, String) {
        let token = if csrf {
            self.csrf.clone()
        } else {
            "forged".into()
        };
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf", &token));
        let mut request = self
            .http
            .post(format!(
                "{}/admin/campaigns/{campaign}/items/{item}/decide",
                self.base
            ))
            .header("Cookie", &self.cookie)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encode(&form));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let response = request.send().await.unwrap();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), location)
    }
}

fn item<'a>(campaign: &'a Value, who: &str, role: &str) -> &'a Value {
    campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["principal"]["name"] == who && i["role"] == role)
        .unwrap_or_else(|| panic!("no item for {who} / {role}: {campaign:#}"))
}

fn principal(item: &Value, roles: &[&str]) -> Principal {
    let mut p = Principal::anonymous(None);
    p.tid = item["principal"]["tid"].as_str().unwrap().to_owned();
    p.oid = item["principal"]["oid"].as_str().unwrap().to_owned();
    p.display_name = item["principal"]["name"].as_str().unwrap().to_owned();
    p.kind = PrincipalKind::User;
    p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    p
}

fn allowed(engine: &Engine, p: &Principal, op: &str, class: &str, resource: &str) -> bool {
    let facts: OperationFacts = serde_json::from_value(json!({
        "azure_op": op, "class": class, "resource_id": resource,
    }))
    .unwrap();
    let mut context = CallContext::new("t", "s", chrono::Utc::now());
    context.facts = warden::facts::Completeness::Complete;
    engine
        .authorize(p, std::slice::from_ref(&facts), &context)
        .is_allowed()
}

fn read_dir_texts(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_campaign_from_start_to_proposal() {
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), None);
    let running_files = read_dir_texts(&policies);
    let gate = Gate::start_in_process(
        TEST_CATALOG,
        &format!("dir = {policies:?}\n"),
        "[review]\ncheck_interval = \"200ms\"\n[risk]\nenabled = false\n",
    )
    .await;

    // The usage: alice starts VMs as a Developer; bob (Developer and
    // Reader) and carol only read production VMs, which only Reader
    // allows; sam, a reviewer, reads too.
    let alice = gate.client("alice", &["Developer"], false).await;
    let bob = gate.client("bob", &["Developer", "Reader"], false).await;
    let carol = gate.client("carol", &["Reader"], false).await;
    let sam_client = gate
        .client("sam", &["SecurityManager", "Reader"], true)
        .await;
    for (client, tool, args) in [
        (&alice, "echo", start_vm("dev-web")),
        (&alice, "echo", start_vm("dev-web")),
        (&bob, "add", read_vm("prod-web")),
        (&carol, "add", read_vm("prod-web")),
        (&sam_client, "add", read_vm("prod-web")),
    ] {
        let result = call(client, tool, args).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{tool}: {}", text(&result));
    }

    let grace = gate.token("grace", &["SecurityManager"], true);
    let sam = gate.token("sam", &["SecurityManager", "Reader"], true);
    let rita = gate.token("rita", &["SecurityManager"], true);

    // Only a security manager with MFA starts one.
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(8);
    let ask = json!({
        "title": "Q3 developers and readers",
        "roles": ["Developer", "Reader"],
        "deadline": deadline.to_rfc3339(),
        "auto_remove_undecided": true,
        "days": 90,
    });
    let no_mfa = gate.token("grace", &["SecurityManager"], false);
    let (status, refused) = api(
        &gate,
        &no_mfa,
        reqwest::Method::POST,
        "campaigns",
        Some(ask.clone()),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (status, campaign) =
        api(&gate, &grace, reqwest::Method::POST, "campaigns", Some(ask)).await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();

    // One item per (principal, role) in scope, with its evidence and a
    // suggestion: bob never needed Developer.
    let described: Vec<(String, String, String, String)> = campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["principal"]["name"].as_str().unwrap().to_owned(),
                i["role"].as_str().unwrap().to_owned(),
                i["suggestion"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        ("1", "alice", "Developer", "keep"),
        ("2", "bob", "Developer", "remove"),
        ("3", "bob", "Reader", "keep"),
        ("4", "carol", "Reader", "keep"),
        ("5", "sam", "Reader", "keep"),
    ]
    .iter()
    .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
    .collect();
    assert_eq!(described, expected, "{campaign:#}");
    let alice_dev = item(&campaign, "alice", "Developer");
    assert_eq!(
        alice_dev["operations"]["Microsoft.Compute/virtualMachines/start/action"],
        2
    );
    assert_eq!(alice_dev["needed"], true);
    let bob_dev = item(&campaign, "bob", "Developer");
    assert_eq!(bob_dev["needed"], false);
    assert_eq!(bob_dev["operations"], json!({}));
    assert_eq!(
        bob_dev["suggestion_reason"],
        "unused: no call in the last 90 days needed Developer"
    );
    assert_eq!(
        item(&campaign, "bob", "Reader")["operations"]["Microsoft.Compute/virtualMachines/read"],
        1
    );
    assert_eq!(bob_dev["principal"]["tid"], DEV_TENANT);

    // Decisions. A reviewer never decides about themselves, always with a
    // reason; a second decision is refused unless another reviewer
    // overrides it.
    let decide = |token: String, item: &str, decision: &str, reason: &str, overrides: bool| {
        let path = format!("campaigns/{id}/items/{item}/decide");
        let body = json!({"decision": decision, "reason": reason, "override": overrides});
        let gate = &gate;
        async move { api(gate, &token, reqwest::Method::POST, &path, Some(body)).await }
    };
    let (status, body) = decide(sam.clone(), "5", "keep", "I need it", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your own access"),
        "{body}"
    );
    let (status, body) = decide(sam.clone(), "2", "remove", "  ", false).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = decide(
        sam.clone(),
        "2",
        "remove",
        "bob moved to the data team; he only reads",
        false,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        item(&body, "bob", "Developer")["decision"]["decision"],
        "remove"
    );
    let (status, _) = decide(sam.clone(), "2", "keep", "changed my mind", true).await;
    assert_eq!(status, 409);
    let (status, body) = decide(rita.clone(), "2", "keep", "no", false).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("override"),
        "{body}"
    );

    // The second reviewer decides through the CLI.
    let (code, stdout, stderr) = cli(
        &gate,
        &rita,
        &[
            "decide",
            &id,
            "1",
            "keep",
            "--reason",
            "alice runs the web team's VMs",
        ],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("keep (rita): alice runs the web team's VMs"),
        "{stdout}"
    );
    // And on the approvals page: a form from another site, or without the
    // session's CSRF token, changes nothing; the page's own form does.
    let page = PageSession::sign_in(&gate, &rita).await;
    let form = [
        ("decision", "keep"),
        ("reason", "sam reads for incident response"),
    ];
    let (status, _) = page
        .post_decide(&id, "5", &form, Some("http://evil.example"), true)
        .await;
    assert_eq!(status, 403);
    let (status, _) = page.post_decide(&id, "5", &form, None, false).await;
    assert_eq!(status, 403);
    let campaign_page = page.get(&format!("/admin/campaigns/{id}")).await;
    assert!(
        campaign_page.contains("#5 sam · Reader") && campaign_page.contains("undecided"),
        "{campaign_page}"
    );
    let base = gate.warden.base();
    let (status, location) = page
        .post_decide(&id, "5", &form, Some(base.as_str()), true)
        .await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/admin/campaigns/{id}#item-5"));
    let campaign_page = page.get(&format!("/admin/campaigns/{id}")).await;
    assert!(
        campaign_page.contains("Item #5: keep sam Reader is recorded.")
            && campaign_page.contains("Kept by rita"),
        "{campaign_page}"
    );
    let (code, _, stderr) = cli(
        &gate,
        &sam,
        &["decide", &id, "5", "keep", "--reason", "mine"],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("403") && stderr.contains("your own access"),
        "{stderr}"
    );
    let (code, stdout, stderr) = cli(&gate, &rita, &["list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&id) && stdout.contains("decided 3/5"),
        "{stdout}"
    );
    // Not closable before the deadline while items are undecided.
    let (status, body) = api(
        &gate,
        &grace,
        reqwest::Method::POST,
        &format!("campaigns/{id}/close"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // The deadline: the background check removes the two undecided items
    // and closes the campaign, with nobody reading it.
    let wait = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(200)).await;
    let db = gate.warden.db();
    let closed = |records: &[Value]| {
        records
            .iter()
            .any(|r| r["kind"] == "access_review" && r["details"]["event"] == "campaign_closed")
    };
    let deadline_seen = std::time::Instant::now() + Duration::from_secs(20);
    let records = loop {
        let records = records(&db);
        if closed(&records) || std::time::Instant::now() > deadline_seen {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Every change is an access_review record, in order.
    let reviews: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "access_review")
        .collect();
    let events: Vec<(String, String, String, String)> = reviews
        .iter()
        .map(|r| {
            let d = &r["details"];
            (
                d["event"].as_str().unwrap_or_default().to_owned(),
                d["item"].as_str().unwrap_or_default().to_owned(),
                d["decision"].as_str().unwrap_or_default().to_owned(),
                d["reviewer"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String, String)> = [
        ("campaign_started", "", "", ""),
        ("decided", "2", "remove", "sam"),
        ("decided", "1", "keep", "rita"),
        ("decided", "5", "keep", "rita"),
        ("auto_removed", "3", "remove", ""),
        ("auto_removed", "4", "remove", ""),
        ("campaign_closed", "", "", ""),
    ]
    .iter()
    .map(|(a, b, c, d)| ((*a).into(), (*b).into(), (*c).into(), (*d).into()))
    .collect();
    assert_eq!(events, expected);
    assert!(
        reviews
            .iter()
            .all(|r| r["details"]["campaign_id"] == id.as_str())
    );
    let started = &reviews[0]["details"];
    assert_eq!(started["scope"]["roles"], json!(["Developer", "Reader"]));
    assert_eq!(started["items"].as_array().unwrap().len(), 5);
    assert_eq!(started["auto_remove_undecided"], true);
    assert_eq!(reviews[0]["principal"]["name"], "grace");
    assert_eq!(reviews[1]["principal"]["name"], "sam");
    assert_eq!(
        reviews[1]["details"]["reason"],
        "bob moved to the data team; he only reads"
    );
    assert_eq!(
        reviews[4]["details"]["reason"],
        "no decision by the deadline"
    );
    assert!(reviews[4].get("principal").is_none_or(Value::is_null));
    let closing = &reviews[6]["details"];
    assert_eq!(closing["why"], "the deadline passed");
    assert_eq!(
        closing["counts"],
        json!({"items": 5, "kept": 2, "removed": 1, "auto_removed": 2, "auto_kept": 0, "undecided": 0})
    );
    assert!(closing["proposal"]["files"].as_array().unwrap().len() > 2);

    // Closed: nothing more is decided, and closing again is refused.
    let (status, _) = decide(rita.clone(), "3", "keep", "too late", false).await;
    assert_eq!(status, 409);
    let (status, _) = api(
        &gate,
        &grace,
        reqwest::Method::POST,
        &format!("campaigns/{id}/close"),
        None,
    )
    .await;
    assert_eq!(status, 409);

    // The proposal: bob out of Developer and Reader, carol out of Reader,
    // validated, its generated tests passing.
    let (status, answer) = api(
        &gate,
        &rita,
        reqwest::Method::GET,
        &format!("campaigns/{id}/proposal"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["ok"], true, "{answer:#}");
    let proposal = &answer["proposal"];
    let removals: Vec<(&str, &str)> = proposal["removals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["principal"]["name"].as_str().unwrap(),
                r["role"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        removals,
        [("bob", "Developer"), ("bob", "Reader"), ("carol", "Reader")]
    );
    let changes: Vec<(&str, usize)> = proposal["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["permit"].as_str().unwrap(),
                c["excluded"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(changes, [("reader-read", 2), ("developer-custom-role", 1)]);
    assert!(
        proposal["tests"]["cases"].as_u64().unwrap() >= 6,
        "{proposal:#}"
    );
    assert_eq!(proposal["tests"]["passed"], proposal["tests"]["cases"]);
    assert_eq!(
        proposal["running_tests"]["passed"],
        proposal["running_tests"]["cases"]
    );
    let diff = proposal["diff"].as_str().unwrap();
    assert!(
        diff.contains("--- running/roles.cedar") && diff.contains("+++ proposed/roles.cedar"),
        "{diff}"
    );
    assert!(diff.contains("+// Access review campaign"), "{diff}");

    // Through the CLI into a directory `warden policy propose` takes.
    let out = scratch.path().join("proposed");
    let (code, stdout, stderr) = cli(
        &gate,
        &rita,
        &["proposal", &id, "--out", out.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("warden policy propose --dir"), "{stdout}");
    let cases = std::fs::read_to_string(out.join(format!("tests/campaign-{id}.toml"))).unwrap();
    assert!(cases.contains("bob removed from Developer"), "{cases}");
    for args in [
        vec![
            OsStr::new("policy"),
            OsStr::new("validate"),
            OsStr::new("--policies"),
            out.as_os_str(),
        ],
        vec![OsStr::new("policy"), OsStr::new("test"), out.as_os_str()],
    ] {
        let (code, stdout, stderr) = common::planted::warden(&args);
        assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
    }
    // ... and a security manager submits it to change management, which
    // validates and tests it again.
    let submitted = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["policy", "propose", "--note", "access review"])
        .arg("--dir")
        .arg(&out)
        .env("WARDEN_URL", gate.warden.base())
        .env("WARDEN_TOKEN", &grace)
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}{}",
        String::from_utf8_lossy(&submitted.stdout),
        String::from_utf8_lossy(&submitted.stderr)
    );
    let (status, proposals) = api(
        &gate,
        &grace,
        reqwest::Method::GET,
        "policy/proposals",
        None,
    )
    .await;
    assert_eq!(status, 200, "{proposals}");
    assert_eq!(
        proposals["proposals"][0]["note"], "access review",
        "{proposals:#}"
    );

    // The proposed set denies the removed principals what their role
    // allowed; the kept holders and any other holder keep it. The
    // running set allowed all of it, and its files are untouched.
    let ops = warden::catalog::Catalog::builtin()
        .unwrap()
        .operation_classes();
    let load = |dir: &Path| {
        Engine::load(
            &PolicyConfig {
                dir: dir.to_path_buf(),
                ..PolicyConfig::default()
            },
            &ops,
        )
        .unwrap()
    };
    let running = load(&policies);
    let proposed = load(&out);
    let read = ("Microsoft.Compute/virtualMachines/read", "read");
    let start = ("Microsoft.Compute/virtualMachines/start/action", "action");
    let dev_vm = vm("dev-web");
    let prod_vm = vm("prod-web");
    let bob_p = principal(item(&campaign, "bob", "Reader"), &["Developer", "Reader"]);
    let carol_p = principal(item(&campaign, "carol", "Reader"), &["Reader"]);
    let alice_p = principal(item(&campaign, "alice", "Developer"), &["Developer"]);
    let sam_p = principal(item(&campaign, "sam", "Reader"), &["Reader"]);
    let mut newcomer = principal(item(&campaign, "carol", "Reader"), &["Reader", "Developer"]);
    newcomer.oid = "0f000000-0000-4000-8000-00000000000f".into();
    let cases = [
        (&bob_p, read, prod_vm.as_str(), false),
        (&bob_p, start, dev_vm.as_str(), false),
        (&carol_p, read, prod_vm.as_str(), false),
        (&alice_p, start, dev_vm.as_str(), true),
        (&sam_p, read, prod_vm.as_str(), true),
        (&newcomer, read, prod_vm.as_str(), true),
        (&newcomer, start, dev_vm.as_str(), true),
    ];
    for (who, (op, class), resource, expect) in cases {
        assert!(
            allowed(&running, who, op, class, resource),
            "the running set allows {} {op}",
            who.display_name
        );
        assert_eq!(
            allowed(&proposed, who, op, class, resource),
            expect,
            "the proposed set for {} {op} on {resource}",
            who.display_name
        );
    }
    assert_eq!(
        read_dir_texts(&policies),
        running_files,
        "the running files are untouched"
    );
    // And the running Warden still lets bob read: nothing was applied.
    let result = call(&bob, "add", read_vm("prod-web")).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
}
