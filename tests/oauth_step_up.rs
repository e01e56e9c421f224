//! MCP's step-up authorization through Warden's OAuth facade, over real
//! HTTP (the dev issuer plays Entra ID): a user signed in without MFA calls
//! a tool a policy allows only with MFA (a forbid with `@advice("step_up")`),
//! gets a tool error, and the next request with the grant's token is
//! refused `403 insufficient_scope` naming the step-up scope; the client
//! authorizes again with that scope, Warden asks Entra for the MFA
//! authentication context with a `claims` request, and the retry, on the
//! same MCP session, is allowed.
//!
//! The MCP client here is raw HTTP, so every request's token and status
//! can be seen; `tests/oauth_clients.rs` has the official Python SDK do the
//! same on its own.

mod common;

use common::facade::pkce;

use common::facade::{
    STEP_UP_CATALOG, STEP_UP_POLICIES, encode, hidden, location, query, set_cookie,
};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::{DEV_MFA_AUTH_CONTEXT, DevUser};

const SUB: &str = "00000000-0000-4000-8000-000000000001";
const REDIRECT: &str = "http://127.0.0.1:43210/callback";

fn vm_args(text: &str) -> Value {
    json!({"text": text, "subscription": SUB, "resource-group": "dev-web", "vm": "vm1"})
}

struct StepUpFacade {
    warden: InProcess,
    issuer: Issuer,
    base: String,
    http: reqwest::Client,
    calls: std::path::PathBuf,
    _scratch: tempfile::TempDir,
}

/// Warden with the facade on, [`STEP_UP_POLICIES`] and the test catalog, in front
/// of the demo upstream; user `bob` signs in without MFA.
async fn start() -> StepUpFacade {
    let issuer = Issuer::start().await;
    issuer
        .issuer
        .add_user(DevUser {
            name: "bob".into(),
            user: "bob@contoso.dev".into(),
            roles: vec!["Reader".into()],
            groups: Vec::new(),
            mfa: false,
            disabled: false,
        })
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let catalog = scratch.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("demo.toml"), STEP_UP_CATALOG).unwrap();
    let calls = scratch.path().join("calls.log");
    let policies = scratch.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("step-up.cedar"), STEP_UP_POLICIES).unwrap();
    let upstreams = format!(
        "[catalog]\ndir = {catalog:?}\n[upstreams.demo]\ncommand = {:?}\n\
         env = {{ DEMO_CALL_LOG = {calls:?} }}\n",
        example("demo_upstream").display().to_string()
    );
    let policy = format!("dir = {policies:?}\n");
    let warden = common::facade::start(&issuer, &upstreams, Some(&policy));
    StepUpFacade {
        base: warden.base(),
        warden,
        issuer,
        http: common::facade::browser(),
        calls,
        _scratch: scratch,
    }
}

/// What one authorization gave: the token answer, the browser cookie, and
/// the URL the browser was sent to at Entra.
struct Authorized {
    tokens: Value,
    browser: String,
    entra: String,
}

impl StepUpFacade {
    async fn register(&self, name: &str) -> String {
        let response = self
            .http
            .post(format!("{}/register", self.base))
            .json(&json!({"client_name": name, "redirect_uris": [REDIRECT]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// An authorization of `user` through `client_id` asking for `scope`,
    /// in a browser holding `browser` (a remembered consent skips the
    /// page), redeemed at `/token`.
    async fn authorize(
        &self,
        client_id: &str,
        user: &str,
        scope: Option<&str>,
        browser: Option<&str>,
    ) -> Authorized {
        let pkce = pkce();
        let mcp = format!("{}/mcp", self.base);
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "s"),
            ("resource", &mcp),
        ];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        let mut asked = self
            .http
            .get(format!("{}/authorize?{}", self.base, encode(&params)));
        if let Some(browser) = browser {
            asked = asked.header("cookie", browser);
        }
        let asked = asked.send().await.unwrap();
        let (entra, browser) = if asked.status() == 200 {
            let csrf = set_cookie(&asked, "warden_oauth_csrf").expect("csrf cookie");
            let page = asked.text().await.unwrap();
            let decided = self
                .http
                .post(format!("{}/authorize/decision", self.base))
                .header("cookie", &csrf)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(&[
                    ("consent", hidden(&page, "consent")),
                    ("csrf", hidden(&page, "csrf")),
                    ("decision", "approve".into()),
                ]))
                .send()
                .await
                .unwrap();
            assert_eq!(decided.status(), 302);
            let browser = set_cookie(&decided, "warden_oauth_browser").expect("browser cookie");
            (location(&decided), browser)
        } else {
            assert_eq!(asked.status(), 302, "a remembered consent goes to Entra");
            let browser = set_cookie(&asked, "warden_oauth_browser")
                .or_else(|| browser.map(str::to_owned))
                .expect("browser cookie");
            (location(&asked), browser)
        };
        assert!(entra.starts_with(&self.issuer.base), "{entra}");
        let signed = self
            .http
            .get(format!("{entra}&login_hint={user}"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        let back = self
            .http
            .get(location(&signed))
            .header("cookie", &browser)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 302);
        let answer = query(&location(&back));
        let code = answer
            .get("code")
            .unwrap_or_else(|| panic!("no code: {answer:?}"));
        let tokens = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", client_id),
                ("code_verifier", &pkce.verifier),
                ("resource", &mcp),
            ])
            .await;
        Authorized {
            tokens,
            browser,
            entra,
        }
    }

    async fn token(&self, form: &[(&str, &str)]) -> Value {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// What the upstream's `echo` received, one text per line.
    fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A raw Streamable HTTP MCP session: each request names its token.
struct Session {
    url: String,
    id: String,
    next: u64,
}

/// One `/mcp` answer: status, `WWW-Authenticate`, and the JSON-RPC
/// message answering the request.
struct Answer {
    status: u16,
    challenge: Option<String>,
    message: Value,
}

async fn post(url: &str, token: &str, session: Option<&str>, body: &Value) -> Answer {
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await.unwrap();
    let message = messages(&text)
        .into_iter()
        .find(|m| m.get("id") == body.get("id") || m.get("error").is_some())
        .unwrap_or(Value::Null);
    Answer {
        status,
        challenge,
        message,
    }
}

impl Session {
    async fn open(url: &str, token: &str) -> Session {
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "step-up test", "version": "1"}}});
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_owned();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let answer = post(url, token, Some(&id), &initialized).await;
        assert_eq!(answer.status, 202);
        Session {
            url: url.to_owned(),
            id,
            next: 2,
        }
    }

    async fn request(&mut self, token: &str, method: &str, params: Value) -> Answer {
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        self.next += 1;
        post(&self.url, token, Some(&self.id), &body).await
    }

    async fn call(&mut self, token: &str, tool: &str, arguments: Value) -> Answer {
        self.request(
            token,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
        .await
    }
}

fn tool_text(answer: &Answer) -> (bool, String) {
    let result = &answer.message["result"];
    (
        result["isError"].as_bool().unwrap_or(false),
        result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The grant id in a Warden token (`wdn_at_<grant>.<secret>`).
fn grant_of(token: &str) -> &str {
    token
        .split_once('_')
        .and_then(|(_, rest)| rest.split_once('_'))
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(grant, _)| grant)
        .unwrap()
}

#[tokio::test]
async fn a_facade_user_steps_up_to_mfa_when_policy_asks_and_the_retry_is_allowed() {
    let f = start().await;
    let mcp = f.warden.url();

    // The step-up scope is advertised, and the 401 names Warden's scope.
    let resource: Value = f
        .http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            f.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["scopes_supported"], json!(["mcp", "mfa"]));
    let server: Value = f
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        server["scopes_supported"],
        json!(["mcp", "mfa", "offline_access"])
    );
    let anonymous = reqwest::Client::new().post(&mcp).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");

    // Bob signs in without MFA and opens a session.
    let client_id = f.register("Step-up client").await;
    let first = f.authorize(&client_id, "bob", None, None).await;
    assert!(
        !query(&first.entra).contains_key("claims"),
        "no step-up asked"
    );
    assert_eq!(first.tokens["scope"], "mcp");
    let weak = access(&first.tokens);
    let mut session = Session::open(&mcp, &weak).await;

    // The delete needs MFA: a tool error that says what happens next.
    let denied = session.call(&weak, "echo", vm_args("no-mfa")).await;
    assert_eq!(denied.status, 200);
    let (is_error, text) = tool_text(&denied);
    assert!(is_error, "{}", denied.message);
    assert!(
        text.contains("\"mfa-required\"")
            && text.contains("multi-factor authentication")
            && text.contains("sign in again with MFA (scope \"mfa\") at its next request"),
        "{text}"
    );

    // The next request with the grant's token: MCP's step-up challenge.
    let refused = session.request(&weak, "tools/list", json!({})).await;
    assert_eq!(refused.status, 403, "{}", refused.message);
    assert_eq!(
        refused.challenge.as_deref().unwrap_or_default(),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp mfa\", \
             resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\", \
             error_description=\"A call needs multi-factor authentication: authorize again with \
             this scope.\"",
            f.base
        )
    );
    assert_eq!(refused.message["error"]["data"]["reason"], "step_up");
    // The mark is taken once: a client that cannot step up goes on.
    let listed = session.request(&weak, "tools/list", json!({})).await;
    assert_eq!(listed.status, 200);
    assert!(listed.message["result"]["tools"].is_array());
    // While the step-up is awaited, a denial asks for nothing new.
    let again = session.call(&weak, "echo", vm_args("still-no-mfa")).await;
    let (is_error, text) = tool_text(&again);
    assert!(
        is_error && text.contains("has asked your MCP client"),
        "{text}"
    );
    let not_refused = session.request(&weak, "tools/list", json!({})).await;
    assert_eq!(not_refused.status, 200, "one 403 per step-up");

    // The client authorizes again with the challenged scopes. The consent
    // for `mcp` covers the step-up scope, so the browser goes straight to
    // Entra, with a claims request for the MFA authentication context.
    let stepped = f
        .authorize(
            &client_id,
            "bob",
            Some("mcp mfa offline_access"),
            Some(&first.browser),
        )
        .await;
    let claims: Value = serde_json::from_str(
        query(&stepped.entra)
            .get("claims")
            .expect("a claims request to Entra"),
    )
    .unwrap();
    assert_eq!(
        claims,
        json!({"access_token": {"acrs": {"essential": true, "value": DEV_MFA_AUTH_CONTEXT}}})
    );
    assert_eq!(stepped.tokens["scope"], "mcp mfa");
    let strong = access(&stepped.tokens);
    // The same grant, stepped up in place: its session goes on, and the
    // tokens of the weaker sign-in stop working.
    assert_eq!(grant_of(&strong), grant_of(&weak));
    let stale = session.request(&weak, "tools/list", json!({})).await;
    assert_eq!(stale.status, 401);

    // The retry, on the same session, is allowed and runs.
    let allowed = session.call(&strong, "echo", vm_args("with-mfa")).await;
    assert_eq!(allowed.status, 200);
    let (is_error, text) = tool_text(&allowed);
    assert!(!is_error, "{text}");
    assert_eq!(text, "with-mfa");

    // A refresh keeps the context: Entra's refreshed token carries it.
    let refreshed = f
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                stepped.tokens["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", &client_id),
        ])
        .await;
    let after_refresh = session
        .call(&access(&refreshed), "echo", vm_args("after-refresh"))
        .await;
    let (is_error, text) = tool_text(&after_refresh);
    assert!(!is_error, "{text}");
    assert_eq!(f.received(), ["with-mfa", "after-refresh"]);

    // Another grant of the same user, without the step-up: still denied.
    let other_client = f.register("Other client").await;
    let other = f.authorize(&other_client, "bob", None, None).await;
    let other_token = access(&other.tokens);
    let mut other_session = Session::open(&mcp, &other_token).await;
    let denied = other_session
        .call(&other_token, "echo", vm_args("other-grant"))
        .await;
    assert!(tool_text(&denied).0, "{}", denied.message);
    assert_eq!(f.received(), ["with-mfa", "after-refresh"]);

    // The audit log: the denials asked for a step-up, the step-up sign-in
    // is an authentication record, and the retry was allowed, all through
    // the facade.
    let all = wait_for_records(&f.warden.db(), |r| {
        r.iter()
            .filter(|r| r["kind"] == "outcome" && r["status"] == "ok")
            .count()
            >= 2
    })
    .await;
    let echo: Vec<(&str, Option<&str>, &str)> = all
        .iter()
        .filter(|r| r["kind"] == "intent" && r["tool"] == "echo")
        .map(|r| {
            assert_eq!(r["principal"]["auth_path"], "oauth_facade");
            (
                r["decision"]["effect"].as_str().unwrap(),
                r["decision"]["advice"].as_str(),
                r["principal"]["client_app"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        echo,
        [
            ("deny", Some("step_up"), client_id.as_str()),
            ("deny", Some("step_up"), client_id.as_str()),
            ("allow", None, client_id.as_str()),
            ("allow", None, client_id.as_str()),
            ("deny", Some("step_up"), other_client.as_str()),
        ]
    );
    let events: Vec<&str> = all
        .iter()
        .filter(|r| r["kind"] == "auth")
        .filter_map(|r| r["details"]["event"].as_str())
        .collect();
    assert!(events.contains(&"stepped_up"), "{events:?}");
}

/// A client may ask for the step-up scope on its own: the grant carries
/// the context from the start.
#[tokio::test]
async fn asking_for_the_step_up_scope_up_front_signs_in_with_mfa() {
    let f = start().await;
    let client_id = f.register("Up-front client").await;
    let authorized = f.authorize(&client_id, "bob", Some("mfa"), None).await;
    assert!(query(&authorized.entra).contains_key("claims"));
    assert_eq!(authorized.tokens["scope"], "mcp mfa");
    let token = access(&authorized.tokens);
    let mut session = Session::open(&f.warden.url(), &token).await;
    let allowed = session.call(&token, "echo", vm_args("up-front")).await;
    let (is_error, text) = tool_text(&allowed);
    assert!(!is_error, "{text}");
    assert_eq!(f.received(), ["up-front"]);
}

/// The official Python SDK (`mcp.client.auth.OAuthClientProvider`) steps
/// up on its own: `tests/interop/oauth_step_up_client.py` only calls the
/// tool twice, and the SDK answers the `403 insufficient_scope` by
/// authorizing again with the challenged scopes and retrying.
#[tokio::test]
async fn the_python_sdk_steps_up_on_the_403_by_itself() {
    let f = start().await;
    let arguments = vm_args("sdk-step-up").to_string();
    let report = common::facade::python_json(
        "oauth_step_up_client.py",
        &[
            f.warden.url().as_str(),
            "--persona",
            "bob",
            "--tool",
            "echo",
            "--arguments",
            &arguments,
        ],
    )
    .await;

    // The first call: denied, asking for MFA; the second: allowed, and run.
    assert_eq!(report["first"]["is_error"], true, "{report}");
    assert!(
        report["first"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("multi-factor authentication")),
        "{report}"
    );
    assert_eq!(report["second"]["is_error"], false, "{report}");
    assert_eq!(report["second"]["text"], "sdk-step-up", "{report}");
    assert_eq!(f.received(), ["sdk-step-up"]);
    // What the SDK was told: the first 401, then the step-up 403 on the
    // second call's request.
    let errors: Vec<(u64, String)> = report["http_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_u64().unwrap(), e[2].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(errors.len(), 2, "{report}");
    assert_eq!(errors[0].0, 401);
    assert_eq!(errors[1].0, 403);
    assert!(
        errors[1]
            .1
            .starts_with("Bearer error=\"insufficient_scope\", scope=\"mcp mfa\""),
        "{report}"
    );
    // Two authorizations: the second asked Warden for the step-up scope,
    // and Warden asked Entra for the MFA authentication context.
    let authorizations = report["authorizations"].as_array().unwrap();
    assert_eq!(authorizations.len(), 2, "{report}");
    assert!(authorizations[0]["entra_query"].get("claims").is_none());
    let asked: Vec<&str> = authorizations[1]["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert!(
        asked.contains(&"mcp") && asked.contains(&"mfa"),
        "{asked:?}"
    );
    let claims: Value = serde_json::from_str(
        authorizations[1]["entra_query"]["claims"]
            .as_str()
            .expect("a claims request to Entra"),
    )
    .unwrap();
    assert_eq!(
        claims["access_token"]["acrs"]["value"],
        DEV_MFA_AUTH_CONTEXT
    );
    assert_eq!(report["scope"], "mcp mfa", "{report}");

    // The audit log: a denial asking for a step-up, then the allowed retry;
    // the step-up sign-in is an authentication record.
    let all = wait_for_records(&f.warden.db(), |r| {
        r.iter()
            .any(|r| r["kind"] == "outcome" && r["status"] == "ok")
    })
    .await;
    let decisions: Vec<(&str, Option<&str>)> = all
        .iter()
        .filter(|r| r["kind"] == "intent" && r["tool"] == "echo")
        .map(|r| {
            (
                r["decision"]["effect"].as_str().unwrap(),
                r["decision"]["advice"].as_str(),
            )
        })
        .collect();
    assert_eq!(decisions, [("deny", Some("step_up")), ("allow", None)]);
    assert!(
        all.iter()
            .any(|r| r["kind"] == "auth" && r["details"]["event"] == "stepped_up"),
        "the step-up sign-in is recorded"
    );
}
