//! The approvals page (`/admin/`) in a real browser: Debian's Chromium,
//! driven by playwright-core scripts (`tests/browser/*.mjs`, installed by
//! `scripts/install-test-deps.sh`), against `warden dev` started in this
//! process (`warden::app::dev::start`: the dev issuer, the ARM simulator,
//! and the gateway with the baseline policies in front of the built-in
//! Azure tools).
//!
//! The JIT requests the page shows are made by real MCP tool calls through
//! Warden that the baseline policies hold: role assignments created
//! (critical: two approvals) or deleted (one approval) by a security
//! manager, and `request_access` windows. Each scenario signs in by pasting
//! a token into the sign-in form, as a person would, saves screenshots under
//! `target/browser-screenshots/`, and prints what it saw as JSON; the test
//! asserts on its exit status and report, on the `Origin` every form post
//! carried, and on the server's state through the admin API.
//!
//! | test | script | what a person does |
//! |---|---|---|
//! | signs in | `sign_in.mjs` | a security manager signs in and sees the pending list |
//! | filters, approves, denies, revokes | `review.mjs` | filters by class and status, opens requests, a refused try keeps the typed reason, approves, denies, revokes |
//! | critical | `critical.mjs` | an Owner assignment, shown by name, needs a second approver (run once per approver) |
//! | stale tab | `stale.mjs` | two managers on one request: the second is told who denied it |
//! | reader | `own_requests.mjs` | only their own requests (list, filter, download), a cancel form, 404 for others', no audit view |
//! | auditor | `auditor.mjs` | reads everything, decides nothing, downloads the history as CSV |
//! | phone | `narrow.mjs` | at 390 px nothing scrolls sideways: list, request, audit view |
//! | consent | `consent.mjs` | an MCP client's sign-in through the OAuth facade: the consent page (client unverified, redirect host), Allow, the dev issuer's persona picker, back at the client's redirect URI with a code the test redeems; Deny sends `access_denied` |
//! | Entra sign-in | `entra_sign_in.mjs` | a security manager signs in on the approvals page with "Sign in with Microsoft Entra ID" (the callback's page refreshes to `/admin/` so the `SameSite=Strict` cookie is sent) |
//! | access review | `campaign.mjs` | a reviewer opens an access review campaign under "Access reviews", reads an item's evidence and removes it with a reason; the decision is shown and recorded; the campaign's page fits a phone |
//! | automatic responses | `responses.mjs` | a security manager follows an incident's link (`/approvals#INC-…`), reads the incident (triggering call and its records, actions taken) and the suspension, acknowledges and closes the incident with notes and lifts the suspension; no console errors. Against an in-process Warden whose test catalog makes `echo` a VM delete (`tests/common/suspension.rs`), where a burst of deletes suspends the principal for real |

mod common;
#[path = "common/suspension.rs"]
mod suspension;

use common::facade::{Pkce, pkce};

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::facade::encode;
use common::{Client, call, connect_as, dep, free_port, request_id, text};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::app::dev::{DevListeners, DevOptions, RunningDev};
use warden::azure::sim::DEV_SUBSCRIPTION;
use warden::identity::dev::TokenOptions;

/// The role the critical requests assign: the built-in Owner role, by its
/// definition GUID (the real Azure one); the page shows it by name.
const ROLE_OWNER: (&str, &str) = ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635");

/// The resource group every request is about.
const RESOURCE_GROUP: &str = "dev-web";

/// The longest a scenario may run before it is killed and the test fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(90);

/// The phone width the layout must fit.
const NARROW_WIDTH: u32 = 390;

// ---------------------------------------------------------------- Warden

/// `warden dev` in this process, on ports the system picks, with its state
/// in a temporary directory.
struct Dev {
    running: Option<RunningDev>,
    http: reqwest::Client,
    clients: Vec<Client>,
    _dir: tempfile::TempDir,
}

/// Someone holding a token.
#[derive(Clone)]
struct Person {
    user: String,
    token: String,
}

impl Dev {
    async fn start() -> Dev {
        let dir = tempfile::tempdir().unwrap();
        let any = "127.0.0.1:0".parse().unwrap();
        let listeners = DevListeners::bind(any, any, any).await.unwrap();
        let running = warden::app::dev::start(
            DevOptions {
                data_dir: dir.path().join("dev"),
                policies: None,
                executable: env!("CARGO_BIN_EXE_warden").into(),
                oauth: true,
                azure_mcp: None,
                azure_mcp_serve: warden::dev::azmcp::Serve::Http,
            },
            listeners,
            CancellationToken::new(),
        )
        .await
        .expect("warden dev starts");
        Dev {
            running: Some(running),
            http: reqwest::Client::new(),
            clients: Vec::new(),
            _dir: dir,
        }
    }

    fn running(&self) -> &RunningDev {
        self.running.as_ref().expect("running")
    }

    fn base(&self) -> &str {
        &self.running().base_url
    }

    /// A persona of `dev.json` (`security-manager`, `reader`, `auditor`, ...).
    fn persona(&self, name: &str) -> Person {
        let (persona, token) = self
            .running()
            .personas
            .iter()
            .find(|(p, _)| p.name == name)
            .unwrap_or_else(|| panic!("no persona {name}"));
        Person {
            user: persona.user.to_owned(),
            token: token.clone(),
        }
    }

    /// A token from the dev issuer, as `warden dev token` mints it.
    fn mint(&self, user: &str, roles: &[&str], mfa: bool) -> Person {
        let token = self
            .running()
            .issuer
            .mint(&TokenOptions {
                user: user.to_owned(),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                mfa,
                ..TokenOptions::default()
            })
            .expect("mint");
        Person {
            user: user.to_owned(),
            token,
        }
    }

    /// Calls `tool` through Warden's `/mcp` as `who`; the result's text and
    /// whether it is a tool error.
    async fn call(&mut self, who: &Person, tool: &str, args: Value) -> (bool, String) {
        let (client, _) = connect_as(&self.running().mcp_url, Some(&who.token)).await;
        let result = call(&client, tool, args).await.expect("tools/call answers");
        self.clients.push(client);
        (result.is_error == Some(true), text(&result))
    }

    /// A call the baseline policies hold for approval: the JIT request id.
    async fn held(&mut self, who: &Person, tool: &str, args: Value) -> String {
        let (is_error, message) = self.call(who, tool, args).await;
        assert!(
            is_error && message.starts_with("Held for approval"),
            "{tool} by {} should be held: {message}",
            who.user
        );
        request_id(&message)
    }

    /// A security manager (`who`, signed in with MFA) assigning the Owner
    /// role in `dev-web` to a new principal: privileged and critical, so
    /// held for two approvals. The request id and the assignee's object id.
    async fn hold_role_assignment(&mut self, who: &Person) -> (String, String) {
        let assignee = uuid::Uuid::new_v4().to_string();
        let id = self
            .held(
                who,
                "azure__arm_role_assignment_create",
                json!({
                    "scope": scope(),
                    "role-definition-id": ROLE_OWNER.1,
                    "principal-id": assignee,
                }),
            )
            .await;
        (id, assignee)
    }

    /// A security manager removing role assignment `name` in `dev-web`:
    /// privileged, held for one approval.
    async fn hold_role_removal(&mut self, who: &Person, name: &str) -> String {
        self.held(who, ROLE_REMOVAL, role_removal(name)).await
    }

    /// `request_access` (Warden's own tool) for a 1 h window of
    /// `operations` in `dev-web`, with `justification`: the request id.
    async fn request_access(
        &mut self,
        who: &Person,
        operations: &[&str],
        justification: &str,
    ) -> String {
        let (is_error, message) = self
            .call(
                who,
                "request_access",
                json!({
                    "operations": operations,
                    "scope": scope(),
                    "duration": "1h",
                    "justification": justification,
                }),
            )
            .await;
        assert!(!is_error, "request_access by {}: {message}", who.user);
        let answer: Value = serde_json::from_str(&message).expect("request_access answers JSON");
        answer["request"].as_str().expect("a request id").to_owned()
    }

    /// `GET /admin/api/requests/{id}` as `who`.
    async fn request(&self, who: &Person, id: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/admin/api/requests/{id}", self.base()))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET request {id} as {}", who.user);
        response.json().await.unwrap()
    }

    /// The ids `GET /admin/api/requests?status=pending` lists for `who`.
    async fn pending_ids(&self, who: &Person) -> Vec<String> {
        let response = self
            .http
            .get(format!("{}/admin/api/requests?status=pending", self.base()))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `POST /admin/api/requests/{id}/{action}` as `who`; the request after.
    async fn act(&self, who: &Person, id: &str, action: &str, reason: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/admin/api/requests/{id}/{action}", self.base()))
            .bearer_auth(&who.token)
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "{action} {id} as {}: {body}", who.user);
        body
    }

    /// Runs `tests/browser/{script}` against this Warden as `who`, with
    /// `extra` merged into its input.
    async fn scenario(&self, script: &str, who: &Person, extra: Value) -> Report {
        let mut input = json!({
            "base": self.base(),
            "screenshots": screenshots_dir(),
            "token": who.token,
            "user": who.user,
        });
        if let (Some(input), Value::Object(extra)) = (input.as_object_mut(), extra) {
            input.extend(extra);
        }
        run_scenario(script, &input).await
    }

    /// Runs `tests/browser/{script}` against this Warden with no token:
    /// the script signs in through the browser.
    async fn scenario_without_token(&self, script: &str, extra: Value) -> Report {
        let mut input = json!({ "base": self.base(), "screenshots": screenshots_dir() });
        if let (Some(input), Value::Object(extra)) = (input.as_object_mut(), extra) {
            input.extend(extra);
        }
        run_scenario(script, &input).await
    }

    /// `POST /register` (dynamic client registration) of a client named
    /// `name` with the one redirect URI `redirect`: its client id.
    async fn register(&self, name: &str, redirect: &str) -> String {
        let response = self
            .http
            .post(format!("{}/register", self.base()))
            .json(&json!({ "client_name": name, "redirect_uris": [redirect] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "register {name}");
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().expect("a client id").to_owned()
    }

    /// Warden's `/authorize` URL for `client_id`: PKCE S256 with `pkce`'s
    /// challenge, `state`, Warden's `/mcp` as the resource.
    fn authorize_url(&self, client_id: &str, redirect: &str, pkce: &Pkce, state: &str) -> String {
        format!(
            "{}/authorize?{}",
            self.base(),
            encode(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("resource", &format!("{}/mcp", self.base())),
            ])
        )
    }

    /// `POST /token` redeeming `code` with `pkce`'s verifier: the status
    /// and the answer.
    async fn redeem(
        &self,
        client_id: &str,
        redirect: &str,
        code: &str,
        pkce: &Pkce,
    ) -> (u16, Value) {
        let mcp = format!("{}/mcp", self.base());
        let response = self
            .http
            .post(format!("{}/token", self.base()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", client_id),
                ("code_verifier", &pkce.verifier),
                ("resource", &mcp),
            ]))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(mut self) {
        for client in self.clients.drain(..) {
            let _ = client.cancel().await;
        }
        if let Some(running) = self.running.take() {
            running.stop().await.expect("warden dev stops cleanly");
        }
    }
}

/// 32 random bytes, base64url.
fn random_text() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------- scenarios

/// `target/browser-screenshots/`.
fn screenshots_dir() -> PathBuf {
    let warden = PathBuf::from(env!("CARGO_BIN_EXE_warden"));
    // target/<profile>/warden
    let target = warden
        .parent()
        .and_then(|profile| profile.parent())
        .expect("the target directory");
    target.join("browser-screenshots")
}

/// What a scenario reported.
struct Report {
    script: String,
    exit: Option<i32>,
    json: Value,
    stderr: String,
}

impl Report {
    fn ok(&self) -> bool {
        self.exit == Some(0) && self.json["ok"] == true
    }

    fn fact(&self, name: &str) -> &Value {
        &self.json["facts"][name]
    }

    /// Every form post the browser sent: it carried the page's own origin
    /// (not `null`) and was answered with a redirect (303), not refused.
    fn assert_posts_from(&self, base: &str, at_least: usize) {
        let posts = self.json["posts"].as_array().expect("posts");
        assert!(posts.len() >= at_least, "{self}");
        for post in posts {
            assert_eq!(post["origin"], base, "Origin of {post}: {self}");
            assert_eq!(post["status"], 303, "{post}: {self}");
        }
    }

    fn assert_ok(&self) {
        assert!(self.ok(), "{self}");
        for screenshot in self.json["screenshots"].as_array().expect("screenshots") {
            let path = PathBuf::from(screenshot.as_str().unwrap());
            let bytes = std::fs::read(&path).unwrap_or_default();
            assert!(
                bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{} is not a PNG",
                path.display()
            );
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "browser scenario {} exited {:?}", self.script, self.exit)?;
        if let Some(error) = self.json["error"].as_str() {
            writeln!(f, "error: {error}")?;
        }
        writeln!(
            f,
            "report: {}",
            serde_json::to_string_pretty(&self.json).unwrap_or_default()
        )?;
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// Runs one script with Node, within [`SCENARIO_TIMEOUT`]; its report is
/// the last line it printed.
async fn run_scenario(script: &str, input: &Value) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let child = tokio::process::Command::new(dep("WARDEN_TEST_BROWSER_NODE"))
        .arg(&path)
        .env("WARDEN_BROWSER_INPUT", input.to_string())
        .env(
            "WARDEN_TEST_PLAYWRIGHT_CORE",
            dep("WARDEN_TEST_PLAYWRIGHT_CORE"),
        )
        .env("WARDEN_TEST_CHROMIUM", dep("WARDEN_TEST_CHROMIUM"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran longer than {SCENARIO_TIMEOUT:?}"))
        .expect("the scenario's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .unwrap_or(Value::Null);
    Report {
        script: script.to_owned(),
        exit: output.status.code(),
        json,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The tool that removes a role assignment.
const ROLE_REMOVAL: &str = "azure__arm_role_assignment_delete";

/// The ARM id of `dev-web`.
fn scope() -> String {
    format!("/subscriptions/{DEV_SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}")
}

/// The arguments of `azure__arm_role_assignment_delete` for assignment
/// `name` in `dev-web`.
fn role_removal(name: &str) -> Value {
    json!({
        "scope": scope(),
        "assignment-name": name,
    })
}

/// A fresh role assignment name (a GUID).
fn assignment_name() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The reasons of a request's reviews, and who gave them.
fn reviews(request: &Value) -> Vec<(String, bool, String)> {
    request["reviews"]
        .as_array()
        .map(|reviews| {
            reviews
                .iter()
                .map(|r| {
                    (
                        r["reviewer"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        r["approve"].as_bool().unwrap_or_default(),
                        r["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_manager_signs_in_and_sees_the_pending_requests() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let sue = dev.mint("sue.security@contoso.dev", &["SecurityManager"], true);
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let reader = dev.persona("reader");
    let pending = vec![
        dev.hold_role_assignment(&carol).await.0,
        dev.request_access(&reader, &["privileged"], "Quarterly access review")
            .await,
    ];
    let decided = dev.hold_role_removal(&carol, &assignment_name()).await;
    dev.act(&sue, &decided, "deny", "Use a group assignment instead")
        .await;
    assert_eq!(dev.pending_ids(&sam).await.len(), pending.len());

    let report = dev
        .scenario(
            "sign_in.mjs",
            &sam,
            json!({ "pending": pending, "decided": [decided] }),
        )
        .await;
    report.assert_ok();
    // The sign-in form's post carried the page's origin: a real browser
    // signs in.
    report.assert_posts_from(dev.base(), 1);
    assert_eq!(report.fact("status_filter"), "pending", "{report}");
    assert_eq!(report.fact("shown").as_array().map(Vec::len), Some(2));
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_manager_filters_opens_approves_denies_and_revokes_requests() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let sue = dev.mint("sue.security@contoso.dev", &["SecurityManager"], true);
    let developer = dev.persona("developer");
    let requesters = [
        dev.mint("carol.security@contoso.dev", &["SecurityManager"], true),
        dev.mint("chris.security@contoso.dev", &["SecurityManager"], true),
        dev.mint("casey.security@contoso.dev", &["SecurityManager"], true),
    ];
    let names = [assignment_name(), assignment_name(), assignment_name()];
    let approve = dev.hold_role_removal(&requesters[0], &names[0]).await;
    let deny = dev.hold_role_removal(&requesters[1], &names[1]).await;
    let revoke = dev.hold_role_removal(&requesters[2], &names[2]).await;
    let granted = dev
        .act(&sue, &revoke, "approve", "Approved by the on-call manager")
        .await;
    assert_eq!(granted["status"], "approved", "{granted}");
    // Something pending that is not privileged, for the filter to drop.
    let window = dev
        .request_access(&developer, &["write"], "Deploy the hotfix")
        .await;

    let report = dev
        .scenario(
            "review.mjs",
            &sam,
            json!({
                "approve": approve,
                "deny": deny,
                "revoke": revoke,
                "window": window,
                "tool": ROLE_REMOVAL,
            }),
        )
        .await;
    report.assert_ok();
    // Sign-in, the refused approval, approve, deny, revoke.
    report.assert_posts_from(dev.base(), 5);

    // What the browser did is what the server recorded; the refused first
    // try left no trace.
    let approved = dev.request(&sam, &approve).await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(
        reviews(&approved),
        [(
            sam.user.clone(),
            true,
            "Change CHG-101 approved in the CAB".to_owned()
        )]
    );
    let denied = dev.request(&sam, &deny).await;
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(
        reviews(&denied),
        [(
            sam.user.clone(),
            false,
            "Not during the change freeze".to_owned()
        )]
    );
    let revoked = dev.request(&sam, &revoke).await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    assert_eq!(
        revoked["closing_reason"], "Incident closed; the grant is no longer needed",
        "{revoked}"
    );
    let untouched = dev.request(&sam, &window).await;
    assert_eq!(untouched["status"], "pending", "{untouched}");

    // Retried, the approved call runs (once: its grant is used up); the
    // denied one says who denied it and why; the revoked one is held anew.
    dev.call(&requesters[0], ROLE_REMOVAL, role_removal(&names[0]))
        .await;
    let used = dev.request(&sam, &approve).await;
    assert_eq!(used["status"], "consumed", "{used}");
    let (is_error, message) = dev
        .call(&requesters[1], ROLE_REMOVAL, role_removal(&names[1]))
        .await;
    assert!(is_error, "{message}");
    assert!(
        message.contains(&format!("was denied by {}", sam.user))
            && message.contains("Not during the change freeze"),
        "{message}"
    );
    let again = dev
        .held(&requesters[2], ROLE_REMOVAL, role_removal(&names[2]))
        .await;
    assert_ne!(again, revoke);
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_request_needs_a_second_security_managers_approval() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let sue = dev.mint("sue.security@contoso.dev", &["SecurityManager"], true);
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let (id, assignee) = dev.hold_role_assignment(&carol).await;
    let before = dev.request(&sam, &id).await;
    assert_eq!(before["required_approvals"], 2, "{before}");
    assert_eq!(before["critical"], true, "{before}");
    let input = |step: &str| {
        json!({
            "id": id,
            "step": step,
            "tool": "azure__arm_role_assignment_create",
            "role": ROLE_OWNER.0,
            "role_id": ROLE_OWNER.1,
            "assignee": assignee,
            "scope": scope(),
        })
    };

    let first = dev.scenario("critical.mjs", &sam, input("first")).await;
    first.assert_ok();
    first.assert_posts_from(dev.base(), 2);
    let halfway = dev.request(&sam, &id).await;
    assert_eq!(halfway["status"], "pending", "{halfway}");
    assert_eq!(reviews(&halfway).len(), 1, "{halfway}");

    let second = dev.scenario("critical.mjs", &sue, input("second")).await;
    second.assert_ok();
    second.assert_posts_from(dev.base(), 2);
    let approved = dev.request(&sam, &id).await;
    assert_eq!(approved["status"], "approved", "{approved}");
    let approvers: Vec<String> = reviews(&approved)
        .into_iter()
        .map(|(who, approve, _)| {
            assert!(approve);
            who
        })
        .collect();
    assert_eq!(approvers, [sam.user.clone(), sue.user.clone()]);
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_tab_is_told_who_decided_and_changes_nothing() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let sue = dev.mint("sue.security@contoso.dev", &["SecurityManager"], true);
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let id = dev.hold_role_removal(&carol, &assignment_name()).await;

    let report = dev
        .scenario(
            "stale.mjs",
            &sam,
            json!({ "id": id, "other": { "token": sue.token, "user": sue.user } }),
        )
        .await;
    report.assert_ok();
    // Two sign-ins, the denial, the stale approval.
    report.assert_posts_from(dev.base(), 4);
    let denied = dev.request(&sam, &id).await;
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(
        reviews(&denied),
        [(
            sam.user.clone(),
            false,
            "Not during the change freeze".to_owned()
        )]
    );
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_only_their_own_requests() {
    let mut dev = Dev::start().await;
    let reader = dev.persona("reader");
    let auditor = dev.persona("auditor");
    let sam = dev.persona("security-manager");
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let pending = dev
        .request_access(&reader, &["privileged"], "Read the Key Vault audit")
        .await;
    let denied = dev
        .request_access(&reader, &["privileged"], "Read every secret")
        .await;
    dev.act(&sam, &denied, "deny", "Too broad").await;
    let auditors = dev
        .request_access(&auditor, &["privileged"], "Sample the role assignments")
        .await;
    let carols = dev.hold_role_assignment(&carol).await.0;
    assert_eq!(
        dev.pending_ids(&reader).await,
        std::slice::from_ref(&pending)
    );

    let report = dev
        .scenario(
            "own_requests.mjs",
            &reader,
            json!({
                "pending": pending,
                "own": [pending, denied],
                "hidden": [carols, auditors],
            }),
        )
        .await;
    report.assert_ok();
    // Sign-in, the cancellation.
    report.assert_posts_from(dev.base(), 2);
    assert_eq!(report.fact("other_status"), 404, "{report}");
    assert_eq!(report.fact("audit_status"), 403, "{report}");
    let cancelled = dev.request(&reader, &pending).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    for id in [&auditors, &carols] {
        let status = dev.request(&sam, id).await["status"].clone();
        assert_eq!(status, "pending", "nothing else changed: {id}");
    }
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_the_history_and_downloads_it_but_decides_nothing() {
    let mut dev = Dev::start().await;
    let auditor = dev.persona("auditor");
    let reader = dev.persona("reader");
    let sam = dev.persona("security-manager");
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let critical = dev.hold_role_assignment(&carol).await.0;
    let window = dev
        .request_access(&reader, &["privileged"], "Read the Key Vault audit")
        .await;
    let denied = dev.hold_role_removal(&carol, &assignment_name()).await;
    dev.act(&sam, &denied, "deny", "Not during the change freeze")
        .await;
    let approved = dev.hold_role_removal(&carol, &assignment_name()).await;
    dev.act(&sam, &approved, "approve", "Change CHG-202").await;
    let pending = [critical.clone(), window.clone()];
    let all = [critical, window, denied.clone(), approved.clone()];

    let report = dev
        .scenario(
            "auditor.mjs",
            &auditor,
            json!({
                "pending": pending,
                "all": all,
                "denied": { "id": denied, "by": sam.user },
                "approved": { "id": approved, "by": sam.user },
            }),
        )
        .await;
    report.assert_ok();
    // Only the sign-in: an auditor sends no decision.
    report.assert_posts_from(dev.base(), 1);
    assert_eq!(report.json["posts"].as_array().map(Vec::len), Some(1));
    for id in &pending {
        let status = dev.request(&sam, id).await["status"].clone();
        assert_eq!(status, "pending", "nothing was decided: {id}");
    }
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_unbroken_justification_does_not_scroll_sideways_on_a_phone() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let developer = dev.persona("developer");
    let carol = dev.mint("carol.security@contoso.dev", &["SecurityManager"], true);
    let justification: String = "INC4711-restore-the-web-tier-after-the-failed-deployment-"
        .chars()
        .cycle()
        .take(300)
        .collect::<String>()
        .replace('-', "_");
    assert_eq!(justification.len(), 300);
    assert!(!justification.contains(char::is_whitespace));
    let long = dev
        .request_access(&developer, &["privileged"], &justification)
        .await;
    // Something in the history too (its table is the widest part).
    let decided = dev.hold_role_assignment(&carol).await.0;
    dev.act(&sam, &decided, "deny", "Use a group assignment instead")
        .await;
    let pending = dev.hold_role_removal(&carol, &assignment_name()).await;
    assert_ne!(pending, long);

    let report = dev
        .scenario(
            "narrow.mjs",
            &sam,
            json!({ "id": long, "justification": justification, "width": NARROW_WIDTH }),
        )
        .await;
    report.assert_ok();
    for page in ["list", "detail", "audit"] {
        let measured = report.fact(page);
        assert_eq!(measured["innerWidth"], NARROW_WIDTH, "{report}");
        assert!(
            measured["scrollWidth"].as_u64() <= measured["innerWidth"].as_u64(),
            "{page}: {report}"
        );
    }
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_is_allowed_on_the_consent_page_and_redeems_the_code() {
    let dev = Dev::start().await;
    // The client's loopback listener; nothing needs to listen there: the
    // browser scenario answers the redirect itself.
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let name = "Browser Test Client";
    let client = dev.register(name, &redirect).await;
    let denied_client = dev.register(name, &redirect).await;
    let pkce = pkce();
    let state = random_text();
    let denied_state = random_text();

    let report = dev
        .scenario_without_token(
            "consent.mjs",
            json!({
                "client": name,
                "redirect": redirect,
                "persona": "developer",
                "allow": dev.authorize_url(&client, &redirect, &pkce, &state),
                "deny": dev.authorize_url(&denied_client, &redirect, &pkce, &denied_state),
            }),
        )
        .await;
    report.assert_ok();
    // Where the browser ended: the client's redirect URI, with the state
    // the client sent and Warden as the issuer (RFC 9207).
    let allowed = report.fact("allowed");
    assert!(
        allowed["url"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&redirect),
        "{report}"
    );
    assert_eq!(allowed["state"], state.as_str(), "{report}");
    assert_eq!(allowed["iss"], dev.base(), "{report}");
    let denied = report.fact("denied");
    assert_eq!(denied["error"], "access_denied", "{report}");
    assert_eq!(denied["state"], denied_state.as_str(), "{report}");
    assert_eq!(denied["iss"], dev.base(), "{report}");

    // The client redeems the code with its verifier: Warden's own tokens.
    let code = allowed["code"].as_str().expect("a code");
    let (status, tokens) = dev.redeem(&client, &redirect, code, &pkce).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap_or_default();
    assert!(access.starts_with("wdn_at_"), "{tokens}");
    assert!(
        tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .starts_with("wdn_rt_"),
        "{tokens}"
    );
    assert_eq!(
        tokens["token_type"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );
    // The token is the persona's and opens an MCP session.
    let (mcp, _) = connect_as(&dev.running().mcp_url, Some(access)).await;
    let _ = mcp.cancel().await;
    // The code works once only.
    let (again, _) = dev.redeem(&client, &redirect, code, &pkce).await;
    assert_eq!(again, 400);
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_manager_signs_in_with_entra_id_in_a_real_browser() {
    let dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let report = dev
        .scenario_without_token(
            "entra_sign_in.mjs",
            json!({ "persona": "security-manager", "user": sam.user }),
        )
        .await;
    report.assert_ok();
    // The only post is the picker's, to the issuer: Warden's part is GETs
    // (the link, the callback, the refresh).
    let posts = report.json["posts"].as_array().expect("posts");
    assert_eq!(posts.len(), 1, "{report}");
    assert!(
        !posts[0]["url"]
            .as_str()
            .unwrap_or_default()
            .starts_with(dev.base()),
        "{report}"
    );
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_report_and_the_overview_render_in_a_browser_with_nothing_fetched() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let reader = dev.persona("reader");
    // Some traffic in this Warden's own log: an allowed read, a held role
    // assignment (privileged, JIT), a denied call.
    let (is_error, message) = dev
        .call(
            &reader,
            "azure__arm_group_list",
            json!({"subscription": DEV_SUBSCRIPTION}),
        )
        .await;
    assert!(!is_error, "{message}");
    dev.hold_role_assignment(&sam).await;
    let (is_error, _) = dev
        .call(&reader, ROLE_REMOVAL, role_removal(&assignment_name()))
        .await;
    assert!(is_error, "a reader may not remove role assignments");

    // The report over the same store, as a file.
    let data = dev.running().data_dir.clone();
    let out = tempfile::tempdir().unwrap();
    let report_file = out.path().join("report.html");
    let period = format!(
        "{}..{}",
        chrono::Utc::now().date_naive(),
        chrono::Utc::now().date_naive()
    );
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "report",
            "compliance",
            "--standard",
            "sox",
            "--period",
            &period,
            "--format",
            "html",
        ])
        .arg("--db")
        .arg(data.join("warden.db"))
        .arg("--key")
        .arg(data.join("audit.pub"))
        .arg("--policies")
        .arg(&dev.running().policies)
        .arg("--out")
        .arg(&report_file)
        .status()
        .unwrap();
    assert!(status.success());
    let html = std::fs::read_to_string(&report_file).unwrap();
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));

    let report = dev
        .scenario(
            "report.mjs",
            &sam,
            json!({
                "report_file": report_file,
                "pdf_file": out.path().join("report.pdf"),
            }),
        )
        .await;
    report.assert_ok();
    assert_eq!(report.fact("console_errors"), &json!([]), "{report}");
    assert!(
        report.fact("pdf_bytes").as_u64().unwrap() > 10_000,
        "{report}"
    );
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_removes_an_access_review_item_on_the_page() {
    let mut dev = Dev::start().await;
    let sam = dev.persona("security-manager");
    let reader = dev.persona("reader");
    let developer = dev.persona("developer");
    // The evidence: each reads the resource group through Warden.
    for who in [&reader, &developer] {
        let (is_error, message) = dev
            .call(
                who,
                "azure__arm_group_get",
                json!({"subscription": DEV_SUBSCRIPTION, "resource-group": RESOURCE_GROUP}),
            )
            .await;
        assert!(!is_error, "{}: {message}", who.user);
    }
    // A security manager starts a campaign over both roles.
    let deadline = chrono::Utc::now() + chrono::Duration::hours(1);
    let response = dev
        .http
        .post(format!("{}/admin/api/campaigns", dev.base()))
        .bearer_auth(&sam.token)
        .json(&json!({
            "title": "Readers and developers",
            "roles": ["Reader", "Developer"],
            "deadline": deadline.to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let campaign: Value = response.json().await.unwrap();
    let id = campaign["id"].as_str().unwrap().to_owned();
    let item = campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["principal"]["name"] == reader.user.as_str() && i["role"] == "Reader")
        .unwrap_or_else(|| panic!("no item for the reader: {campaign:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let reason = "Rui moved to the finance team; <b>no</b> Azure access needed";
    let report = dev
        .scenario(
            "campaign.mjs",
            &sam,
            json!({
                "campaign": id,
                "item": item,
                "who": reader.user,
                "role": "Reader",
                "reason": reason,
                "width": NARROW_WIDTH,
            }),
        )
        .await;
    report.assert_ok();
    // Two sign-ins and the decision, each from the page's own origin.
    report.assert_posts_from(dev.base(), 3);

    // The API tells the same: removed by the security manager, with the
    // reason as typed (the page escaped it, the log keeps it).
    let response = dev
        .http
        .get(format!("{}/admin/api/campaigns/{id}", dev.base()))
        .bearer_auth(&sam.token)
        .send()
        .await
        .unwrap();
    let campaign: Value = response.json().await.unwrap();
    let decided = campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == item.as_str())
        .unwrap();
    assert_eq!(decided["decision"]["decision"], "remove", "{decided:#}");
    assert_eq!(decided["decision"]["reviewer"]["name"], sam.user.as_str());
    assert_eq!(decided["decision"]["reason"], reason);
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_security_manager_closes_an_incident_and_lifts_a_suspension_on_the_page() {
    let warden = suspension::Responding::start("").await;
    let gate = &warden.gate;
    let base = gate.warden.base();
    let carol = warden.contributor("carol").await;
    let burst = suspension::delete_until_suspended(&carol, "vm", 30).await;
    let sam = gate.token("sam", &["SecurityManager"], true);
    let http = reqwest::Client::new();
    let api = |path: String| {
        http.get(format!("{base}/admin/api/{path}"))
            .bearer_auth(&sam)
    };
    let listed: Value = api("incidents".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incident = listed["incidents"][0].clone();
    let id = incident["id"].as_str().expect("an incident").to_owned();
    assert!(burst.refusal.contains(&id), "{}", burst.refusal);

    let close = "Cleanup of a <b>test</b> environment & nothing else";
    let input = json!({
        "base": base,
        "screenshots": screenshots_dir(),
        "token": sam,
        "user": "sam",
        "incident": id,
        "title": incident["title"],
        "principal": "carol",
        "seqs": incident["calls"][0]["seqs"],
        "ack": "Looking into the burst of deletes",
        "close": close,
        "lift": "Confirmed with Carol's lead",
    });
    let report = run_scenario("responses.mjs", &input).await;
    report.assert_ok();
    // The sign-in and the three forms, each from the page's own origin.
    report.assert_posts_from(&base, 4);

    // The API tells the same, and Carol's next call runs.
    let after: Value = api(format!("incidents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["status"], "closed", "{after:#}");
    assert_eq!(after["acknowledged"]["name"], "sam");
    assert_eq!(after["closed"]["note"], close);
    let suspensions: Value = api("suspensions".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(suspensions["suspensions"], json!([]));
    let ran = call(&carol, "add", suspension::read("vm-01"))
        .await
        .unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
}
