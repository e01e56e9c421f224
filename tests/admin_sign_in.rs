//! The approvals page's sign-in with Microsoft Entra ID (OpenID Connect,
//! authorization code with PKCE, through the facade's Entra client; the
//! dev issuer plays Entra over real HTTP), its page sessions kept in the
//! store across a restart, and the review rules that still apply: a real
//! MCP call held by policy, approved from the page by a security manager
//! who signed in through Entra. The "browser" follows redirects by hand.

mod common;

use common::facade::{browser, encode, hidden, location, set_cookie, set_cookie_line};
use common::gate::baseline_copy;
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::{DevUser, TokenOptions};

const SESSION: &str = "warden_admin";
const OIDC: &str = "warden_admin_oidc";

const TEST_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/runCommand/action"
class = "privileged"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const DEVELOPER_PRIVILEGED: &str = r#"
@id("test-developer-privileged")
permit (principal in AppRole::"Developer", action in Action::"privileged", resource)
when { resource has resource_group && resource.resource_group like "dev-*" };
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

struct Page {
    warden: InProcess,
    issuer: Issuer,
    base: String,
    http: reqwest::Client,
    calls: std::path::PathBuf,
    _scratch: tempfile::TempDir,
}

fn user(name: &str, roles: &[&str], mfa: bool) -> DevUser {
    DevUser {
        name: name.into(),
        user: format!("{name}@contoso.dev"),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        groups: Vec::new(),
        mfa,
        disabled: false,
    }
}

/// Warden with the facade on, the baseline policies plus a permit for
/// developers' privileged calls in `dev-*` (held for approval), and the
/// dev issuer's users `sam` (security manager, MFA) and `nora` (security
/// manager, no MFA).
async fn page() -> Page {
    let issuer = Issuer::start().await;
    issuer
        .issuer
        .add_user(user("sam", &["SecurityManager"], true))
        .unwrap();
    issuer
        .issuer
        .add_user(user("nora", &["SecurityManager"], false))
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), Some(DEVELOPER_PRIVILEGED));
    let calls = scratch.path().join("calls.log");
    let catalog = scratch.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("demo.toml"), TEST_CATALOG).unwrap();
    let upstreams = format!(
        "[catalog]\ndir = {catalog:?}\n[approvals]\n\n[upstreams.demo]\ncommand = {:?}\n\
         env = {{ DEMO_CALL_LOG = {calls:?} }}\n",
        example("demo_upstream").display().to_string()
    );
    let policy = format!("dir = {policies:?}\n");
    let warden = common::facade::start(&issuer, &upstreams, Some(&policy));
    Page {
        base: warden.base(),
        warden,
        issuer,
        http: browser(),
        calls,
        _scratch: scratch,
    }
}

/// Where Entra sent the browser back, and the browser's binding cookie.
struct Back {
    callback: String,
    oidc: String,
}

impl Page {
    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// The button, then Entra (the user picked by `login_hint`): where
    /// Entra sends the browser back.
    async fn to_entra_and_back(&self, login_hint: &str) -> Back {
        let form = self.get("/admin/", None).await;
        assert_eq!(form.status(), 200);
        let body = form.text().await.unwrap();
        assert!(
            body.contains(r#"href="/admin/sign-in/entra""#)
                && body.contains("Sign in with Microsoft Entra ID"),
            "{body}"
        );
        let start = self.get("/admin/sign-in/entra", None).await;
        assert_eq!(start.status(), 303);
        let line = set_cookie_line(&start, OIDC).expect("the binding cookie");
        assert!(
            line.contains("SameSite=Lax") && line.contains("HttpOnly"),
            "{line}"
        );
        let oidc = set_cookie(&start, OIDC).unwrap();
        let entra = location(&start);
        assert!(entra.starts_with(&self.issuer.base), "{entra}");
        let asked = common::facade::query(&entra);
        assert_eq!(
            asked["redirect_uri"],
            format!("{}/admin/callback", self.base)
        );
        assert_eq!(asked["code_challenge_method"], "S256");
        assert!(asked["scope"].contains("openid"));
        assert!(!asked["nonce"].is_empty() && !asked["state"].is_empty());
        let signed = self
            .http
            .get(format!("{entra}&login_hint={login_hint}"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        let callback = location(&signed);
        assert!(
            callback.starts_with(&format!("{}/admin/callback?", self.base)),
            "{callback}"
        );
        Back { callback, oidc }
    }

    async fn callback(&self, back: &Back, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(&back.callback);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// Signs `login_hint` in through Entra: the session cookie.
    async fn sign_in(&self, login_hint: &str) -> String {
        let back = self.to_entra_and_back(login_hint).await;
        let done = self.callback(&back, Some(&back.oidc)).await;
        assert_eq!(done.status(), 200);
        let line = set_cookie_line(&done, SESSION).expect("a session cookie");
        assert!(line.contains("SameSite=Strict"), "{line}");
        let session = set_cookie(&done, SESSION).unwrap();
        let body = done.text().await.unwrap();
        assert!(
            body.contains(r#"http-equiv="refresh" content="0; url=/admin/""#),
            "{body}"
        );
        session
    }

    /// `/admin/` with `session`: its body.
    async fn home(&self, session: &str) -> String {
        let page = self.get("/admin/", Some(session)).await;
        assert_eq!(page.status(), 200);
        page.text().await.unwrap()
    }

    /// A developer's privileged call, held for approval: the request id.
    async fn held_call(&self) -> String {
        let token = self.issuer.mint(&TokenOptions {
            user: "dave".into(),
            roles: vec!["Developer".into()],
            mfa: true,
            ..TokenOptions::default()
        });
        let (client, _) = connect_as(&self.warden.url(), Some(&token)).await;
        let held = call(&client, "echo", vm_args("restart")).await.unwrap();
        assert_eq!(held.is_error, Some(true));
        let message = text(&held);
        assert!(message.contains("Held for approval"), "{message}");
        request_id(&message)
    }

    /// Posts `action` on request `id` from its page, as the page's form
    /// does: the redirect's target.
    async fn act(&self, session: &str, id: &str, action: &str, reason: &str) -> String {
        let page = self
            .get(&format!("/admin/requests/{id}"), Some(session))
            .await;
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        let mut fields = vec![
            ("reason", reason.to_owned()),
            ("csrf", hidden(&body, "csrf")),
        ];
        if body.contains(r#"name="shown""#) {
            fields.push(("shown", hidden(&body, "shown")));
        }
        let posted = self
            .http
            .post(format!("{}/admin/requests/{id}/{action}", self.base))
            .header("cookie", session)
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&fields))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 303);
        location(&posted)
    }

    fn auth_events(&self) -> Vec<Value> {
        records(&self.warden.db())
            .into_iter()
            .filter(|r| r["kind"] == "auth" && r["details"]["auth_path"] == "admin_page")
            .collect()
    }
}

fn vm_args(text: &str) -> Value {
    json!({"text": text, "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"})
}

#[tokio::test]
async fn a_security_manager_signs_in_with_entra_and_approves_a_held_call() {
    let p = page().await;
    let id = p.held_call().await;
    let session = p.sign_in("sam@contoso.dev").await;
    let home = p.home(&session).await;
    assert!(home.contains("Signed in as"), "{home}");
    assert!(home.contains("You can review requests."), "{home}");
    assert!(home.contains(&id), "the held request is listed: {home}");

    let next = p.act(&session, &id, "approve", "restart is fine").await;
    assert_eq!(next, "/admin/");
    let home = p.home(&session).await;
    assert!(
        home.contains(&format!("Request {id} is approved")),
        "{home}"
    );

    // The developer's call now runs (once).
    let token = p.issuer.mint(&TokenOptions {
        user: "dave".into(),
        roles: vec!["Developer".into()],
        mfa: true,
        ..TokenOptions::default()
    });
    let (client, _) = connect_as(&p.warden.url(), Some(&token)).await;
    let ran = call(&client, "echo", vm_args("restart")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    eventually("the upstream received the call", || {
        std::fs::read_to_string(&p.calls).is_ok_and(|c| c.contains("restart"))
    })
    .await;

    // Recorded: the sign-in, as an auth record of the page.
    let events = p.auth_events();
    let signed = events
        .iter()
        .find(|r| r["details"]["event"] == "page_signed_in")
        .expect("a page_signed_in record");
    assert_eq!(signed["details"]["method"], "entra");
    assert!(signed["principal"].to_string().contains("sam"), "{signed}");
    // The session is in the store: a principal, never a token.
    let reader = warden::store::Reader::open(p.warden.db()).unwrap();
    let sessions = reader.state("admin.session", chrono::Utc::now()).unwrap();
    assert_eq!(sessions.len(), 1);
    let stored = String::from_utf8_lossy(&sessions[0].1).into_owned();
    assert!(stored.contains("sam@contoso.dev"), "{stored}");
    assert!(!stored.contains("eyJ"), "no token in the store: {stored}");
}

#[tokio::test]
async fn a_replayed_mismatched_or_missing_state_is_refused() {
    let p = page().await;
    // No state at all.
    let missing = p.get("/admin/callback?code=abc", None).await;
    assert_eq!(missing.status(), 400);
    assert!(set_cookie(&missing, SESSION).is_none());
    let body = missing.text().await.unwrap();
    assert!(body.contains("carries no state"), "{body}");
    assert!(
        body.contains(r#"action="/admin/sign-in""#),
        "the sign-in page"
    );

    // A state this Warden never made.
    let forged = p.get("/admin/callback?state=forged&code=abc", None).await;
    assert_eq!(forged.status(), 400);
    assert!(set_cookie(&forged, SESSION).is_none());
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("unknown, expired or already used")
    );

    // Entra's answer presented by another browser (no binding cookie, or
    // another one): refused, and the real browser can still finish.
    let back = p.to_entra_and_back("sam@contoso.dev").await;
    let other = p.to_entra_and_back("sam@contoso.dev").await;
    for cookie in [None, Some(other.oidc.as_str())] {
        let refused = p.callback(&back, cookie).await;
        assert_eq!(refused.status(), 400, "{cookie:?}");
        assert!(set_cookie(&refused, SESSION).is_none());
        let body = refused.text().await.unwrap();
        assert!(body.contains("started in another browser"), "{body}");
    }
    let done = p.callback(&back, Some(&back.oidc)).await;
    assert_eq!(done.status(), 200);
    assert!(set_cookie(&done, SESSION).is_some());

    // Replayed: the state is single use.
    let replayed = p.callback(&back, Some(&back.oidc)).await;
    assert_eq!(replayed.status(), 400);
    assert!(set_cookie(&replayed, SESSION).is_none());
    assert!(replayed.text().await.unwrap().contains("already used"));

    // Entra's own refusal is shown, on the sign-in page.
    let start = p.get("/admin/sign-in/entra", None).await;
    let oidc = set_cookie(&start, OIDC).unwrap();
    let state = common::facade::query(&location(&start))["state"].clone();
    let denied = p
        .get(
            &format!(
                "/admin/callback?{}",
                encode(&[
                    ("state", state.as_str()),
                    ("error", "access_denied"),
                    ("error_description", "AADSTS65004: <b>declined</b>"),
                ])
            ),
            Some(&oidc),
        )
        .await;
    assert_eq!(denied.status(), 401);
    let body = denied.text().await.unwrap();
    assert!(
        body.contains("Entra ID did not sign you in (access_denied"),
        "{body}"
    );
    assert!(body.contains("&lt;b&gt;declined"), "escaped: {body}");

    let reasons: Vec<String> = p
        .auth_events()
        .iter()
        .filter(|r| r["details"]["event"] == "page_sign_in_refused")
        .map(|r| {
            r["details"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for reason in [
        "missing_state",
        "unknown_state",
        "other_browser",
        "entra_error",
    ] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    assert_eq!(
        p.auth_events()
            .iter()
            .filter(|r| r["details"]["event"] == "page_signed_in")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_page_session_survives_a_restart() {
    let mut p = page().await;
    let id = p.held_call().await;
    let session = p.sign_in("sam@contoso.dev").await;
    let before = p.home(&session).await;
    let csrf = hidden(&before, "csrf");

    p.warden.restart();
    // A new connection: the old one ended with the old process.
    p.http = browser();
    let after = p.home(&session).await;
    assert!(
        after.contains("sam@contoso.dev"),
        "still signed in: {after}"
    );
    assert!(after.contains("You can review requests."));
    assert_eq!(hidden(&after, "csrf"), csrf, "the same session");
    let next = p.act(&session, &id, "deny", "not today").await;
    assert_eq!(next, "/admin/");
    assert!(p.home(&session).await.contains("is now denied"));

    // Signing out ends it in the store too.
    let out = p
        .http
        .post(format!("{}/admin/sign-out", p.base))
        .header("cookie", &session)
        .header("origin", &p.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    p.warden.restart();
    p.http = browser();
    let gone = p.get("/admin/", Some(&session)).await;
    let body = gone.text().await.unwrap();
    assert!(
        body.contains(r#"action="/admin/sign-in""#),
        "signed out: {body}"
    );
}

#[tokio::test]
async fn a_security_manager_without_mfa_is_signed_in_but_cannot_review() {
    let p = page().await;
    let id = p.held_call().await;
    let session = p.sign_in("nora@contoso.dev").await;
    let home = p.home(&session).await;
    assert!(home.contains("nora@contoso.dev"), "{home}");
    assert!(home.contains("You cannot review requests"), "{home}");

    let next = p.act(&session, &id, "approve", "looks fine").await;
    assert_eq!(next, format!("/admin/requests/{id}"));
    let page = p.get(&next, Some(&session)).await.text().await.unwrap();
    assert!(
        page.contains(&format!("Could not approve request {id}")),
        "{page}"
    );
    let status = p
        .http
        .get(format!("{}/admin/api/requests/{id}", p.base))
        .bearer_auth(p.issuer.mint(&TokenOptions {
            user: "dave".into(),
            roles: vec!["Developer".into()],
            mfa: true,
            ..TokenOptions::default()
        }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(status["status"], "pending", "{status}");
}

#[tokio::test]
async fn a_sign_in_started_before_a_restart_finishes_after_it() {
    let mut p = page().await;
    // The button and Entra's answer happen before the restart; the
    // callback reaches the new process.
    let back = p.to_entra_and_back("sam@contoso.dev").await;
    p.warden.restart();
    p.http = browser();
    let done = p.callback(&back, Some(&back.oidc)).await;
    assert_eq!(done.status(), 200, "{:?}", done.text().await);
    let session = set_cookie(&done, SESSION).expect("a session cookie");
    assert!(p.home(&session).await.contains("sam@contoso.dev"));

    // Its state was used once: the same answer again is refused, after
    // another restart too.
    p.warden.restart();
    p.http = browser();
    let again = p.callback(&back, Some(&back.oidc)).await;
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("unknown, expired or already used")
    );
}
