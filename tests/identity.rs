//! Authentication at the HTTP front, end to end: a real `warden serve`
//! trusting a real dev issuer (discovery + JWKS over HTTP), real clients
//! (rmcp, raw HTTP, the `warden dev token` CLI, the official Python SDK)
//! presenting tokens the issuer minted.
#![allow(deprecated)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::issuer::*;
use common::*;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Map, Value, json};
use warden::identity::dev::{
    DEV_SCOPE, DEV_TENANT, DEV_V1_ISSUER_PATH, TokenOptions, TokenVersion,
};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `GET /metrics` of `warden`.
async fn metrics(warden: &InProcess) -> String {
    let response = reqwest::get(format!("{}/metrics", warden.base()))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics body")
}

/// The gateway trusting `issuer`, in front of one demo upstream.
fn gateway_for(issuer: &Issuer) -> InProcess {
    InProcess::start_with_identity("", &issuer.identity_toml(), &demo_stdio("demo", "x"))
}

// ---------------------------------------------------------------------------
// Raw HTTP helpers.
// ---------------------------------------------------------------------------

fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}
    })
}

/// POSTs `body` to `url` as an MCP client would, with an optional bearer
/// token and session.
async fn post(
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(ACCEPT, ACCEPT_BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.expect("POST /mcp")
}

/// Initializes with raw HTTP and asserts the upstream answered.
async fn assert_initialize_accepted(url: &str, token: &str, what: &str) {
    let response = post(url, Some(token), None, &initialize_body()).await;
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "{what}: {body}");
    let messages = messages(&body);
    assert_eq!(
        messages.first().map(|m| &m["result"]["serverInfo"]["name"]),
        Some(&json!("demo-upstream")),
        "{what}: {body}"
    );
}

/// A refused request: status, `WWW-Authenticate` and the JSON-RPC body.
struct Refusal {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

impl Refusal {
    async fn of(response: reqwest::Response) -> Refusal {
        let status = response.status();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ascii challenge").to_owned());
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("refusal body is not JSON ({e}): {text:?}"));
        Refusal {
            status,
            challenge,
            body,
        }
    }

    /// Asserts the JSON-RPC error shape and the reason label.
    fn assert_reason(&self, status: u16, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["jsonrpc"], "2.0", "{}", self.body);
        assert!(self.body["id"].is_null(), "{}", self.body);
        assert_eq!(self.body["error"]["code"], -32001, "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert_eq!(
            self.body["error"]["data"]["reason"], reason,
            "{}",
            self.body
        );
    }

    fn challenge(&self) -> &str {
        self.challenge
            .as_deref()
            .unwrap_or_else(|| panic!("no WWW-Authenticate with {}", self.body))
    }

    /// A `name="value"` parameter of the challenge.
    fn param(&self, name: &str) -> Option<String> {
        challenge_param(self.challenge(), name)
    }
}

fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = challenge
        .match_indices(&needle)
        .find(|(i, _)| {
            *i == 0 || {
                let before = challenge.as_bytes()[i - 1];
                before == b' ' || before == b','
            }
        })?
        .0
        + needle.len();
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_owned())
}

/// The claims of a JWT (no verification).
fn payload(token: &str) -> Map<String, Value> {
    let segment = token.split('.').nth(1).expect("three segments");
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

async fn connect_with_token(url: &str, token: &str) -> (Client, RecordingClient) {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        // rmcp adds the `Bearer ` prefix itself.
        .auth_header(token.to_owned());
    let handler = RecordingClient::default();
    let client = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("client connects through warden with a token");
    (client, handler)
}

// ---------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_with_a_v2_user_token_is_served() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let (client, _) = connect_with_token(&gateway.url(), &issuer.token("alice")).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("demo-upstream")
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let echoed = call(&client, "echo", json!({"text": "héllo"}))
        .await
        .expect("tools/call echo");
    assert_eq!(text(&echoed), "héllo");
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_app_only_tokens_are_accepted() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let v1 = issuer.mint(&TokenOptions {
        user: "alice@contoso.example".into(),
        version: TokenVersion::V1,
        mfa: true,
        ..TokenOptions::default()
    });
    assert_eq!(
        payload(&v1)["iss"],
        format!("{}{DEV_V1_ISSUER_PATH}/{DEV_TENANT}/", issuer.base)
    );
    assert_initialize_accepted(&gateway.url(), &v1, "v1 user token").await;

    let app = issuer.mint(&TokenOptions {
        user: "nightly-job".into(),
        app: true,
        roles: vec!["Tools.Run".into()],
        ..TokenOptions::default()
    });
    let claims = payload(&app);
    assert!(claims.get("scp").is_none(), "app-only: {claims:?}");
    assert_eq!(claims["idtyp"], "app");
    assert_initialize_accepted(&gateway.url(), &app, "app-only token").await;

    let app_v1 = issuer.mint(&TokenOptions {
        user: "nightly-job".into(),
        app: true,
        roles: vec!["Tools.Run".into()],
        version: TokenVersion::V1,
        ..TokenOptions::default()
    });
    assert_initialize_accepted(&gateway.url(), &app_v1, "v1 app-only token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_only_tokens_without_roles_are_refused_unless_allowed() {
    let issuer = Issuer::start().await;
    let roleless = issuer.mint(&TokenOptions {
        user: "any-app-in-the-tenant".into(),
        app: true,
        ..TokenOptions::default()
    });
    assert!(
        payload(&roleless)
            .get("roles")
            .is_none_or(|r| r == &json!([]))
    );
    let gateway = gateway_for(&issuer);
    let refusal =
        Refusal::of(post(&gateway.url(), Some(&roleless), None, &initialize_body()).await).await;
    refusal.assert_reason(403, "insufficient_scope");
    let message = refusal.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("identity.allow_app_tokens_without_roles"),
        "{message}"
    );
    assert_eq!(
        refusal.param("error").as_deref(),
        Some("insufficient_scope")
    );

    let identity = format!(
        "{}\nallow_app_tokens_without_roles = true\n",
        issuer.identity_toml()
    );
    let permissive = Warden::start_with_identity("", &identity, &demo_stdio("demo", "x"));
    assert_initialize_accepted(&permissive.url(), &roleless, "role-less app token, allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_authorization_headers_are_refused() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let alice = issuer.token("alice");
    let mallory = issuer.token("mallory");
    for (first, second) in [(&alice, &mallory), (&alice, &alice)] {
        let response = reqwest::Client::new()
            .post(gateway.url())
            .header(ACCEPT, ACCEPT_BOTH)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, format!("Bearer {first}"))
            .header(AUTHORIZATION, format!("Bearer {second}"))
            .body(initialize_body().to_string())
            .send()
            .await
            .unwrap();
        let refusal = Refusal::of(response).await;
        refusal.assert_reason(400, "duplicate_authorization");
        assert_eq!(refusal.param("error").as_deref(), Some("invalid_request"));
    }
    // The admin API refuses them too.
    let response = reqwest::Client::new()
        .get(format!("{}/admin/api/requests", gateway.base()))
        .header(AUTHORIZATION, format!("Bearer {alice}"))
        .header(AUTHORIZATION, format!("Bearer {mallory}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // One header is fine.
    assert_initialize_accepted(&gateway.url(), &alice, "one Authorization header").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_gets_a_challenge_that_leads_to_the_metadata() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);

    let refusal = Refusal::of(post(&gateway.url(), None, None, &initialize_body()).await).await;
    refusal.assert_reason(401, "missing");
    let challenge = refusal.challenge().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        refusal.param("error").is_none(),
        "no error code without a token (RFC 6750 §3.1): {challenge}"
    );
    let metadata_url = refusal
        .param("resource_metadata")
        .expect("resource_metadata");
    assert_eq!(
        metadata_url,
        format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            gateway.base()
        )
    );
    let scope = refusal.param("scope").expect("scope");
    assert!(
        scope.split(' ').any(|s| s.ends_with(DEV_SCOPE)),
        "{challenge}"
    );

    // GET (the SSE stream) is guarded the same way.
    let response = reqwest::Client::new()
        .get(gateway.url())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await
        .expect("GET /mcp");
    let get_refusal = Refusal::of(response).await;
    get_refusal.assert_reason(401, "missing");

    // The metadata the challenge points at (RFC 9728), under both paths.
    let plain = format!("{}/.well-known/oauth-protected-resource", gateway.base());
    for url in [metadata_url.as_str(), plain.as_str()] {
        let response = reqwest::get(url).await.expect("GET metadata");
        assert_eq!(response.status(), 200, "{url}");
        let metadata: Value = response.json().await.expect("metadata JSON");
        assert_eq!(metadata["resource"], gateway.url(), "{url}: {metadata}");
        assert_eq!(
            metadata["authorization_servers"],
            json!([format!("{}/{DEV_TENANT}/v2.0", issuer.base)]),
            "{url}: {metadata}"
        );
        assert_eq!(
            metadata["bearer_methods_supported"],
            json!(["header"]),
            "{url}: {metadata}"
        );
        let scopes: Vec<&str> = metadata["scopes_supported"]
            .as_array()
            .expect("scopes_supported")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            scopes.contains(&scope.as_str()),
            "the challenge's scope is advertised: {scopes:?} vs {scope}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_resource_overrides_the_request_host() {
    let issuer = Issuer::start().await;
    let resource = "https://warden.example.com/mcp";
    let identity = format!("{}resource = {resource:?}\n", issuer.identity_toml());
    let gateway = InProcess::start_with_identity("", &identity, &demo_stdio("demo", "x"));

    let refusal = Refusal::of(post(&gateway.url(), None, None, &initialize_body()).await).await;
    refusal.assert_reason(401, "missing");
    assert_eq!(
        refusal.param("resource_metadata").as_deref(),
        Some("https://warden.example.com/.well-known/oauth-protected-resource/mcp")
    );
    let response = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        gateway.base()
    ))
    .await
    .expect("GET metadata");
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.expect("metadata JSON");
    assert_eq!(metadata["resource"], resource, "{metadata}");
    // A good token is unaffected.
    assert_initialize_accepted(&gateway.url(), &issuer.token("alice"), "good token").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_the_right_status_and_counted() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let good = issuer.token("alice");

    // A token in the query string is not a credential.
    let url = format!("{}?access_token={good}", gateway.url());
    let refusal = Refusal::of(post(&url, None, None, &initialize_body()).await).await;
    refusal.assert_reason(401, "missing");
    assert!(refusal.param("resource_metadata").is_some());

    // Garbage.
    let refusal =
        Refusal::of(post(&gateway.url(), Some("garbage"), None, &initialize_body()).await).await;
    refusal.assert_reason(401, "malformed");
    assert_eq!(refusal.param("error").as_deref(), Some("invalid_token"));
    assert!(refusal.param("error_description").is_some());
    assert!(refusal.param("resource_metadata").is_some());

    // Expired an hour ago (well beyond the clock skew).
    let mut extra = Map::new();
    let now = now();
    extra.insert("exp".into(), json!(now - 3600));
    extra.insert("nbf".into(), json!(now - 7200));
    extra.insert("iat".into(), json!(now - 7200));
    let expired = issuer.mint(&TokenOptions {
        user: "alice".into(),
        extra,
        ..TokenOptions::default()
    });
    let refusal =
        Refusal::of(post(&gateway.url(), Some(&expired), None, &initialize_body()).await).await;
    refusal.assert_reason(401, "expired");
    assert_eq!(refusal.param("error").as_deref(), Some("invalid_token"));
    assert!(!refusal.challenge().contains(&expired), "token not echoed");
    assert!(
        !refusal.body.to_string().contains(&expired),
        "token not echoed"
    );

    // Signed by the issuer, but without the required scope.
    let other_scope = issuer.mint(&TokenOptions {
        user: "alice".into(),
        scopes: vec!["other".into()],
        ..TokenOptions::default()
    });
    let refusal =
        Refusal::of(post(&gateway.url(), Some(&other_scope), None, &initialize_body()).await).await;
    refusal.assert_reason(403, "insufficient_scope");
    assert_eq!(
        refusal.param("error").as_deref(),
        Some("insufficient_scope")
    );
    assert!(
        refusal
            .param("scope")
            .is_some_and(|s| s.split(' ').any(|s| s.ends_with(DEV_SCOPE))),
        "{}",
        refusal.challenge()
    );
    assert!(refusal.param("resource_metadata").is_some());

    // The right token still works after all that, and the scheme is
    // case-insensitive.
    assert_initialize_accepted(&gateway.url(), &good, "good token").await;
    let response = reqwest::Client::new()
        .post(gateway.url())
        .header(ACCEPT, ACCEPT_BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("bearer {good}"))
        .body(initialize_body().to_string())
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(response.status(), 200, "lower-case scheme");

    let metrics = metrics(&gateway).await;
    for line in [
        r#"warden_auth_failures_total{reason="missing"} 1"#,
        r#"warden_auth_failures_total{reason="malformed"} 1"#,
        r#"warden_auth_failures_total{reason="expired"} 1"#,
        r#"warden_auth_failures_total{reason="insufficient_scope"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} in metrics:\n{metrics}"
        );
    }
    let log = gateway.log();
    assert!(!log.contains(&good), "the token is never logged");
    assert!(!log.contains(&expired), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_a_rotated_key_are_accepted() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let old_kid = issuer.issuer.kid();
    let before = issuer.token("alice");
    assert_initialize_accepted(&gateway.url(), &before, "token before rotation").await;

    let new_kid = issuer.rotate().await;
    assert_ne!(new_kid, old_kid);
    assert_eq!(issuer.issuer.kids(), vec![old_kid, new_kid.clone()]);
    let after = issuer.token("alice");
    assert_initialize_accepted(&gateway.url(), &after, "token signed with the new key").await;
    // The old key is still published, so its tokens still work.
    assert_initialize_accepted(&gateway.url(), &before, "token signed with the old key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_principal_that_opened_it() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let url = gateway.url();
    let alice = issuer.token("alice");
    let bob = issuer.token("bob");
    assert_ne!(payload(&alice)["oid"], payload(&bob)["oid"]);

    let response = post(&url, Some(&alice), None, &initialize_body()).await;
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .expect("session id")
        .to_str()
        .expect("ascii")
        .to_owned();
    let _ = response.text().await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post(&url, Some(&alice), Some(&session), &initialized).await;
    assert_eq!(response.status(), 202);

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let refusal = Refusal::of(post(&url, Some(&bob), Some(&session), &list).await).await;
    refusal.assert_reason(403, "session_binding");
    let message = refusal.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("another principal"), "{message}");

    // Nor may Bob listen on it or end it.
    let client = reqwest::Client::new();
    let get = client
        .get(&url)
        .header(ACCEPT, "text/event-stream")
        .header(AUTHORIZATION, format!("Bearer {bob}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("GET /mcp");
    Refusal::of(get).await.assert_reason(403, "session_binding");
    let delete = client
        .delete(&url)
        .header(AUTHORIZATION, format!("Bearer {bob}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("DELETE /mcp");
    Refusal::of(delete)
        .await
        .assert_reason(403, "session_binding");

    // The session survived; another token of the same user (a fresh `uti`)
    // may use it.
    let alice_again = issuer.token("alice");
    assert_ne!(alice_again, alice);
    let response = post(&url, Some(&alice_again), Some(&session), &list).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    let tools = messages(&body);
    assert!(
        tools.first().is_some_and(|m| m["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())),
        "{body}"
    );

    // Bob can open his own session.
    assert_initialize_accepted(&url, &bob, "bob's own session").await;

    let metrics = metrics(&gateway).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "warden_session_binding_violations_total 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_signing_keys_make_the_gateway_unready() {
    // An issuer that mints but is not served: the authority is a dead port.
    let (_dir, mut issuer) = issuer_with_shared_key().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    issuer.set_base_url(&dead);
    let gateway =
        InProcess::start_with_identity("", &identity_toml_for(&dead), &demo_stdio("demo", "x"));

    let response = reqwest::get(format!("{}/readyz", gateway.base()))
        .await
        .expect("GET /readyz");
    assert_eq!(response.status(), 503);
    let report: Value = response.json().await.expect("readyz JSON");
    assert_eq!(report["ready"], false, "{report}");
    assert_eq!(report["identity"]["ready"], false, "{report}");
    assert!(
        report["identity"]["detail"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{report}"
    );
    assert_eq!(report["upstreams"]["demo"]["ready"], true, "{report}");

    let token = issuer.mint(&TokenOptions::default()).expect("mint");
    let refusal =
        Refusal::of(post(&gateway.url(), Some(&token), None, &initialize_body()).await).await;
    refusal.assert_reason(503, "keys_unavailable");
    let metrics = metrics(&gateway).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"warden_auth_failures_total{reason="keys_unavailable"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_once_the_signing_keys_are_loaded() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    // Keys load in the background; a first request loads them on demand.
    assert_initialize_accepted(&gateway.url(), &issuer.token("alice"), "first request").await;
    let response = reqwest::get(format!("{}/readyz", gateway.base()))
        .await
        .expect("GET /readyz");
    let status = response.status();
    let report: Value = response.json().await.expect("readyz JSON");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["identity"]["ready"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_token_command_mints_tokens_the_gateway_accepts() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["dev", "token", "--user", "alice", "--group", "g-ops"])
        .args(["--role", "Tools.Read", "--data-dir"])
        .arg(issuer.dir.path())
        .args(["--issuer-url", &issuer.base])
        .output()
        .await
        .expect("run warden dev token");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "warden dev token failed: {stdout}\n{stderr}"
    );
    let token = stdout.trim();
    assert_eq!(token.split('.').count(), 3, "{stdout:?}");
    let claims = payload(token);
    assert_eq!(claims["iss"], format!("{}/{DEV_TENANT}/v2.0", issuer.base));
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["groups"], json!(["g-ops"]));
    assert_eq!(claims["roles"], json!(["Tools.Read"]));
    assert_eq!(claims["oid"], payload(&issuer.token("alice"))["oid"]);
    assert_initialize_accepted(&gateway.url(), token, "token from `warden dev token`").await;
}

/// Paths written by `scripts/install-test-deps.sh` into `.deps/paths.env`.
fn dep(name: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps/paths.env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/install-test-deps.sh (scripts/test.sh does) first",
            file.display()
        )
    });
    let deps: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    deps.get(name)
        .map(|v| (*v).to_owned())
        .unwrap_or_else(|| panic!("{name} missing from {}", file.display()))
}

async fn py_client(url: &str, headers: &[String]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/py_client.py");
    let mut command = tokio::process::Command::new(dep("WARDEN_TEST_PYTHON"));
    command.arg(script).arg(url);
    for header in headers {
        command.arg("--header").arg(header);
    }
    command.output().await.expect("run py_client.py")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_with_and_without_a_token() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);

    let header = format!("Authorization: Bearer {}", issuer.token("alice"));
    let output = py_client(&gateway.url(), &[header]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "py_client with a token failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("JSON report");
    assert_eq!(report["server_name"], "demo-upstream");
    assert_eq!(report["echo"], "from python");
    assert_eq!(report["resource"], "hello from demo");

    let output = py_client(&gateway.url(), &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "HTTP 401 exit code; stderr: {stderr}"
    );
    assert!(stderr.contains("401"), "{stderr}");
    assert!(stderr.contains("resource_metadata"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn the_clients_token_never_reaches_an_upstream() {
    let issuer = Issuer::start().await;
    let (mut upstream, port) = demo_http("remote");
    let warden = InProcess::start_with_identity(
        "",
        &issuer.identity_toml(),
        &format!(
            "[upstreams.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\nheaders = {{ X-Static = \"configured\" }}\n"
        ),
    );
    let token = issuer.token("alice");
    let (client, _) = connect_as(&warden.url(), Some(&token)).await;
    let headers = text(&call(&client, "request_headers", json!({})).await.unwrap());
    assert!(
        headers.contains("x-static"),
        "static header sent: {headers}"
    );
    assert!(
        !headers.contains("authorization"),
        "no bearer token upstream: {headers}"
    );
    let _ = upstream.kill();
    let _ = upstream.wait();
}

/// One HTTP/1.1 response read off `stream`: its head and body.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .expect("read a response");
        assert!(n > 0, "the server closed the connection: {buffer:?}");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("a content-length: {head}"));
    while buffer.len() < head_end + length {
        let n = tokio::io::AsyncReadExt::read(stream, &mut chunk)
            .await
            .expect("read the body");
        assert!(n > 0, "the server closed the connection mid-body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    (head, buffer[head_end..head_end + length].to_vec())
}

/// A client whose request is refused (no token) and whose body reaches the
/// server after the head keeps its connection: the retry (with a token, in
/// real clients) goes out on it and is answered, not dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_leaves_its_connection_usable() {
    let issuer = Issuer::start().await;
    let gateway = gateway_for(&issuer);
    let address = url::Url::parse(&gateway.url())
        .unwrap()
        .socket_addrs(|| None)
        .unwrap()[0];
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for attempt in 0..2 {
        // The head and the body as separate writes, as clients often send them.
        tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::flush(&mut stream).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, body.as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut stream).await;
        assert!(
            head.starts_with("HTTP/1.1 401"),
            "attempt {attempt}: {head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "attempt {attempt}: {head}"
        );
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["error"]["data"]["reason"], "missing", "{error}");
    }
}
