//! Warden as the MCP clients' authorization server in front of Entra ID
//! (the dev issuer plays Entra, over real HTTP): metadata, dynamic
//! registration, consent, the Entra leg as a confidential client, Warden's
//! own code and tokens, an MCP call with them, and the adversarial cases of
//! codes and refresh tokens. The "browser" is a reqwest client that follows
//! no redirects and keeps cookies by hand.

mod common;

use common::facade::{Pkce, pkce};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::facade::{encode, hidden, location, query, set_cookie};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::identity::dev::DevUser;

struct Facade {
    warden: InProcess,
    issuer: Issuer,
    base: String,
    http: reqwest::Client,
}

async fn facade() -> Facade {
    let issuer = Issuer::start().await;
    issuer
        .issuer
        .add_user(DevUser {
            name: "ada".into(),
            user: "ada@contoso.dev".into(),
            roles: vec!["Reader".into()],
            groups: Vec::new(),
            mfa: true,
            disabled: false,
        })
        .unwrap();
    let warden = common::facade::start(&issuer, &demo_stdio("demo", "facade"), None);
    Facade {
        base: warden.base(),
        warden,
        issuer,
        http: common::facade::browser(),
    }
}

const REDIRECT: &str = "http://127.0.0.1:43210/callback";

impl Facade {
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

    /// Drives one sign-in through consent and Entra: Warden's code and the
    /// browser's cookie.
    async fn sign_in(&self, client_id: &str, pkce: &Pkce, user: &str) -> (String, String) {
        let (callback, browser) = self.to_callback(client_id, pkce, user).await;
        let back = self
            .http
            .get(&callback)
            .header("cookie", &browser)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 302);
        let to_client = location(&back);
        assert!(to_client.starts_with(REDIRECT), "{to_client}");
        let answer = query(&to_client);
        assert_eq!(answer["state"], "client-state");
        assert_eq!(answer["iss"], self.base);
        (answer["code"].clone(), browser)
    }

    /// Consent and Entra: where Entra sends the browser back (Warden's
    /// callback with Entra's code and Warden's state), and the browser's
    /// cookie.
    async fn to_callback(&self, client_id: &str, pkce: &Pkce, user: &str) -> (String, String) {
        let authorize = format!(
            "{}/authorize?{}",
            self.base,
            encode(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("state", "client-state"),
                ("resource", &format!("{}/mcp", self.base)),
            ])
        );
        let consent = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(consent.status(), 200);
        let csrf_cookie = set_cookie(&consent, "warden_oauth_csrf").expect("csrf cookie");
        let page = consent.text().await.unwrap();
        assert!(page.contains("unverified"), "{page}");
        let decided = self
            .http
            .post(format!("{}/authorize/decision", self.base))
            .header("cookie", &csrf_cookie)
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
        let entra = location(&decided);
        assert!(entra.starts_with(&self.issuer.base), "{entra}");
        assert!(!query(&entra).contains_key("resource"));
        // The user picks their account at Entra.
        let signed = self
            .http
            .get(format!("{entra}&login_hint={user}"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        (location(&signed), browser)
    }

    /// A whole sign-in of `user` through `client_id`: the token answer.
    async fn signed_in(&self, client_id: &str, user: &str) -> Value {
        let pkce = pkce();
        let (code, _) = self.sign_in(client_id, &pkce, user).await;
        let mcp = format!("{}/mcp", self.base);
        let (status, tokens) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", client_id),
                ("code_verifier", pkce.verifier.as_str()),
                ("resource", mcp.as_str()),
            ])
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn a_client_signs_in_through_warden_and_never_holds_an_entra_token() {
    let f = facade().await;
    // Metadata, and the protected resource names Warden.
    let metadata: Value = f
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], f.base.as_str());
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    let resource: Value = f
        .http
        .get(format!("{}/.well-known/oauth-protected-resource", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resource["authorization_servers"], json!([f.base]));

    let client_id = f.register("Facade test client").await;
    let pkce = pkce();
    let (code, _) = f.sign_in(&client_id, &pkce, "ada").await;
    assert!(code.starts_with("wdn_code_"));
    let mcp = format!("{}/mcp", f.base);
    let redeem = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id.as_str()),
        ("code_verifier", pkce.verifier.as_str()),
        ("resource", mcp.as_str()),
    ];
    // A wrong verifier does not redeem it (and does not spend it).
    let mut wrong = redeem;
    wrong[4] = ("code_verifier", "x".repeat(43).leak());
    let (status, refused) = f.token(&wrong).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, tokens) = f.token(&redeem).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("wdn_at_") && refresh.starts_with("wdn_rt_"));

    // An MCP client calls with Warden's token.
    let (client, _) = connect_as(&f.warden.url(), Some(&access)).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    assert!(
        !who.contains("wdn_at_"),
        "no token reaches the upstream: {who}"
    );

    // Refresh rotates; the old refresh token used again revokes the grant.
    let (status, rotated) = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{rotated}");
    let newer = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(newer, refresh);
    let (status, _) = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", newer.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 200);
    // Code reuse: refused, and the grant is revoked with its tokens.
    let (status, reused) = f.token(&redeem).await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let refused = reqwest::Client::new()
        .post(&mcp)
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // No Warden token, code or Entra token is in the store or the log.
    let db = std::fs::read(f.warden.db()).unwrap();
    let mut wal = f.warden.db().into_os_string();
    wal.push("-wal");
    let wal = std::fs::read(wal).unwrap_or_default();
    let log = f.warden.log();
    let exported = export_everything(&f.warden.db());
    // Entra's tokens are JWTs: their header starts `{"typ":` or `{"alg":`
    // (9 whole base64url characters), which no record, column or log line
    // of Warden's carries.
    let jwt_headers: Vec<String> = [&br#"{"typ":"#[..], &br#"{"alg":"#[..]]
        .iter()
        .map(|start| URL_SAFE_NO_PAD.encode(start)[..9].to_owned())
        .collect();
    for secret in [
        access.as_str(),
        refresh.as_str(),
        newer.as_str(),
        code.as_str(),
    ]
    .into_iter()
    .chain(jwt_headers.iter().map(String::as_str))
    {
        let needle = secret.as_bytes();
        for (name, haystack) in [
            ("db", &db),
            ("wal", &wal),
            ("log", &log.as_bytes().to_vec()),
            ("audit export", &exported),
        ] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle),
                "a token ({}…) is in the {name}",
                &secret[..8]
            );
        }
    }
    // The call's records name the facade's client and the auth path.
    let intent = records(&f.warden.db())
        .into_iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "whoami")
        .expect("the whoami intent");
    assert_eq!(intent["principal"]["client_app"], client_id.as_str());
    assert_eq!(intent["principal"]["auth_path"], "oauth_facade");
    // The sign-in and token issue are authentication records.
    let events: Vec<String> = records(&f.warden.db())
        .into_iter()
        .filter(|r| r["kind"] == "auth")
        .map(|r| {
            r["details"]["event"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for event in [
        "signed_in",
        "token_issued",
        "token_refreshed",
        "token_refused",
    ] {
        assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
    }
}

#[tokio::test]
async fn a_disabled_user_loses_the_grant_at_the_next_refresh() {
    let f = facade().await;
    let client_id = f.register("Refresh test").await;
    let tokens = f.signed_in(&client_id, "ada").await;
    // Another client cannot use the refresh token.
    let other = f.register("Other client").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", other.as_str()),
        ])
        .await;
    assert_eq!(status, 400);
    f.issuer.issuer.set_user_enabled("ada", false).unwrap();
    let (status, refused) = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant")),
        "{refused}"
    );
    let (status, _) = f
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(status, 400, "the grant is over");
}

#[tokio::test]
async fn bad_clients_redirects_and_pkce_are_refused_without_redirecting() {
    let f = facade().await;
    let client_id = f.register("Strict client").await;
    let pkce = pkce();
    let get = |params: Vec<(&'static str, String)>| {
        let url = format!("{}/authorize?{}", f.base, encode(&params));
        let http = f.http.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    let base = |redirect: &str| {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", client_id.clone()),
            ("redirect_uri", redirect.to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("state", "s".to_owned()),
        ]
    };
    // A redirect URI the client did not register: an error page.
    let foreign = get(base("https://evil.example/cb")).await;
    assert_eq!(foreign.status(), 400);
    assert!(foreign.headers().get("location").is_none());
    // Any port on loopback matches (RFC 8252).
    let other_port = get(base("http://127.0.0.1:5555/callback")).await;
    assert_eq!(other_port.status(), 200);
    // An unknown or tampered client: an error page.
    let mut tampered = base(REDIRECT);
    tampered[1].1.push('x');
    assert_eq!(get(tampered).await.status(), 400);
    // PKCE missing or `plain`, or a foreign resource: back to the client
    // with the error.
    for (key, value, error) in [
        ("code_challenge_method", "plain", "invalid_request"),
        ("code_challenge", "", "invalid_request"),
        (
            "resource",
            "https://elsewhere.example/mcp",
            "invalid_target",
        ),
        // Entra's scope for Warden (what clients asked for before the
        // facade) is no alias of Warden's own.
        ("scope", "api://warden/access_as_user", "invalid_scope"),
    ] {
        let mut params = base(REDIRECT);
        params.retain(|(k, _)| *k != key);
        if !value.is_empty() {
            params.push((key, value.to_owned()));
        }
        let response = get(params).await;
        assert_eq!(response.status(), 302, "{key}");
        let back = query(&location(&response));
        assert_eq!(back["error"], error, "{key}");
        assert_eq!(back["state"], "s");
        if key == "scope" {
            assert!(
                back["error_description"].contains("offers: mcp"),
                "the refusal names the scopes to ask for: {back:?}"
            );
        }
    }
    // Consent: a forged CSRF token changes nothing; deny goes back with
    // access_denied.
    let consent = get(base(REDIRECT)).await;
    let cookie = set_cookie(&consent, "warden_oauth_csrf").unwrap();
    let page = consent.text().await.unwrap();
    let forged = f
        .http
        .post(format!("{}/authorize/decision", f.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("consent", hidden(&page, "consent")),
            ("csrf", "forged".to_owned()),
            ("decision", "approve".to_owned()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let denied = f
        .http
        .post(format!("{}/authorize/decision", f.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("consent", hidden(&page, "consent")),
            ("csrf", hidden(&page, "csrf")),
            ("decision", "deny".to_owned()),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 302);
    assert_eq!(query(&location(&denied))["error"], "access_denied");
    // A replayed callback state: refused.
    let (_, browser) = f.sign_in(&client_id, &pkce, "ada").await;
    let replay = f
        .http
        .get(format!(
            "{}/oauth/callback?state=never-issued&code=x",
            f.base
        ))
        .header("cookie", &browser)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
}

/// A remembered consent is for one client: client A, approved once, goes
/// straight to Entra in the same browser; client B is still asked.
#[tokio::test]
async fn consent_is_remembered_per_client_and_client_b_is_still_asked() {
    let f = facade().await;
    let a = f.register("Client A").await;
    let b = f.register("Client B").await;
    let pkce = pkce();
    let (_, browser) = f.sign_in(&a, &pkce, "ada").await;
    let authorize = |client: &str| {
        format!(
            "{}/authorize?{}",
            f.base,
            encode(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("state", "again"),
            ])
        )
    };
    let again = f
        .http
        .get(authorize(&a))
        .header("cookie", &browser)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 302, "client A: no second consent");
    assert!(location(&again).starts_with(&f.issuer.base));
    let other = f
        .http
        .get(authorize(&b))
        .header("cookie", &browser)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "client B: asked");
    assert!(other.text().await.unwrap().contains("Client B"));
}

/// An MCP session is bound to the grant that opened it: the same user's
/// token from another grant cannot take it over.
#[tokio::test]
async fn a_session_is_bound_to_the_grant_that_opened_it() {
    let f = facade().await;
    let client_id = f.register("Binding").await;
    let mcp = format!("{}/mcp", f.base);
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let answer = f.signed_in(&client_id, "ada").await;
        tokens.push(answer["access_token"].as_str().unwrap().to_owned());
    }
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = reqwest::Client::new()
        .post(&mcp)
        .bearer_auth(&tokens[0])
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 200);
    let session = opened
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let send = |token: &str| {
        reqwest::Client::new()
            .post(&mcp)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&list)
            .send()
    };
    let other_grant = send(&tokens[1]).await.unwrap();
    assert_eq!(other_grant.status(), 403);
    let own = send(&tokens[0]).await.unwrap();
    assert_ne!(own.status(), 403);
}

#[tokio::test]
async fn the_callbacks_state_must_be_present_this_browsers_and_unused() {
    let f = facade().await;
    let client_id = f.register("State client").await;
    let callback_with = |query: String, cookie: Option<String>| {
        let mut request = f.http.get(format!("{}/oauth/callback?{query}", f.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        async move { request.send().await.unwrap() }
    };

    // Missing: an error page, never a redirect.
    let pkce = pkce();
    let (callback, browser) = f.to_callback(&client_id, &pkce, "ada").await;
    let mut answer = query(&callback);
    let state = answer.remove("state").expect("Warden's state");
    let without = callback_with(
        encode(&answer.iter().collect::<Vec<_>>()),
        Some(browser.clone()),
    )
    .await;
    assert_eq!(without.status(), 400);
    assert!(without.headers().get("location").is_none());

    // Mismatched: another browser's cookie (or none) does not finish it.
    let other = f.to_callback(&client_id, &pkce, "ada").await.1;
    let foreign = callback_with(
        encode(&[("state", state.as_str()), ("code", answer["code"].as_str())]),
        Some(other),
    )
    .await;
    assert_eq!(foreign.status(), 400);
    assert!(foreign.headers().get("location").is_none());

    // Used once: the first answer of the right browser goes back to the
    // client; the same answer again is refused.
    let pkce = self::pkce();
    let (callback, browser) = f.to_callback(&client_id, &pkce, "ada").await;
    let first = callback_with(
        callback.split_once('?').unwrap().1.to_owned(),
        Some(browser.clone()),
    )
    .await;
    assert_eq!(first.status(), 302);
    assert!(location(&first).starts_with(REDIRECT));
    let replayed = callback_with(
        callback.split_once('?').unwrap().1.to_owned(),
        Some(browser),
    )
    .await;
    assert_eq!(replayed.status(), 400);
    assert!(replayed.headers().get("location").is_none());

    // Each refusal is an audit record.
    let refusals = records(&f.warden.db())
        .into_iter()
        .filter(|r| r["kind"] == "auth" && r["details"]["event"] == "sign_in_refused")
        .count();
    assert!(refusals >= 3, "{refusals} refused sign-ins recorded");
}

/// `warden audit export` of the whole log, JSON lines and CSV: the bytes
/// of every file it wrote.
fn export_everything(db: &std::path::Path) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for format in ["jsonl", "csv"] {
        let result = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["audit", "export", "--format", format, "--db"])
            .arg(db)
            .arg("--out")
            .arg(out.path().join(format))
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        for file in String::from_utf8(result.stdout).unwrap().lines() {
            bytes.extend(std::fs::read(file).unwrap());
        }
    }
    assert!(!bytes.is_empty(), "the export wrote records");
    bytes
}
