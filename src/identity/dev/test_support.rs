//! Test helpers shared with other modules' tests: a dev issuer in a
//! temporary directory, served on a loopback port, and the steps of an
//! authorization-code sign-in against it.
//!
//! ```ignore
//! let served = test_support::serve_with_sign_in().await;   // personas + REDIRECT_URI
//! let pkce = test_support::Pkce::new();
//! let code = test_support::sign_in(&served, "developer", "api://warden-dev/access_as_user openid", Some(&pkce), &[]).await;
//! let (status, tokens) = test_support::redeem(&served, &code, Some(&pkce)).await;
//! ```

use std::fs;
use std::sync::OnceLock;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::sha2::{Digest, Sha256};
use serde_json::{Map, Value};

use super::grants::random_secret;
use super::*;

/// The redirect URI [`serve_with_sign_in`] registers (any port: loopback).
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1/callback";

/// `application/x-www-form-urlencoded` body of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A dev issuer in a new temporary directory. RSA key generation is
/// slow, so every issuer made here loads the same key, generated once
/// per test binary through [`DevIssuer::load_or_create`].
pub(crate) async fn issuer_in_tempdir() -> (DevIssuer, tempfile::TempDir) {
    static KEY_PEM: OnceLock<String> = OnceLock::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let issuer = tokio::task::spawn_blocking(move || {
        let pem = KEY_PEM.get_or_init(|| {
            let scratch = tempfile::tempdir().expect("tempdir");
            DevIssuer::load_or_create(scratch.path()).expect("generate dev issuer key");
            fs::read_to_string(scratch.path().join(DEV_KEY_FILE)).expect("read key")
        });
        write_private(&path.join(DEV_KEY_FILE), pem.as_bytes()).expect("write key");
        DevIssuer::load_or_create(&path)
    })
    .await
    .expect("join")
    .expect("dev issuer");
    (issuer, dir)
}

/// A dev issuer served on a free loopback port; the server stops when
/// the value is dropped.
pub(crate) struct Served {
    pub(crate) issuer: DevIssuer,
    pub(crate) base_url: String,
    pub(crate) dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(crate) async fn serve() -> Served {
    let (mut issuer, dir) = issuer_in_tempdir().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    issuer.set_base_url(&base_url);
    let app = issuer.router(&base_url);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served {
        issuer,
        base_url,
        dir,
        server,
    }
}

/// Users like `warden dev`'s personas: `developer` (role Developer),
/// `security-manager` (SecurityManager, MFA), `auditor` (Reader and
/// Auditor, group `auditors`).
pub(crate) fn personas() -> Vec<DevUser> {
    let user = |name: &str, upn: &str, roles: &[&str], groups: &[&str], mfa: bool| DevUser {
        name: name.into(),
        user: upn.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        mfa,
        disabled: false,
    };
    vec![
        user(
            "developer",
            "dana.developer@contoso.dev",
            &["Developer"],
            &[],
            false,
        ),
        user(
            "security-manager",
            "sam.security@contoso.dev",
            &["SecurityManager"],
            &[],
            true,
        ),
        user(
            "auditor",
            "ava.auditor@contoso.dev",
            &["Reader", "Auditor"],
            &["auditors"],
            false,
        ),
    ]
}

/// [`serve`] with [`personas`] and [`REDIRECT_URI`] registered.
pub(crate) async fn serve_with_sign_in() -> Served {
    let served = serve().await;
    for user in personas() {
        served.issuer.add_user(user).expect("add user");
    }
    served
        .issuer
        .allow_redirect(REDIRECT_URI)
        .expect("redirect URI");
    served
}

/// The dev client's secret.
pub(crate) fn client_secret(served: &Served) -> String {
    fs::read_to_string(served.issuer.dev_client().expect("dev client").secret_file)
        .expect("secret file")
}

/// An HTTP client that does not follow redirects (a browser whose
/// `Location`s the test reads).
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A PKCE verifier and its S256 challenge.
pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

impl Pkce {
    pub(crate) fn new() -> Self {
        let verifier = random_secret();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// `{base}/{tenant}/oauth2/v2.0/authorize?{pairs}`.
pub(crate) fn authorize_url(base_url: &str, pairs: &[(&str, &str)]) -> String {
    format!(
        "{base_url}/{DEV_TENANT}/oauth2/v2.0/authorize?{}",
        form(pairs)
    )
}

/// The standard authorization request of the dev client: `client_id`,
/// `response_type=code`, `redirect_uri` ([`REDIRECT_URI`] on port 4711),
/// `scope`, `state=xyz`, and the challenge of `pkce`.
pub(crate) fn authorize_params<'a>(
    scope: &'a str,
    pkce: Option<&'a Pkce>,
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("client_id", DEV_CONFIDENTIAL_CLIENT),
        ("response_type", "code"),
        ("redirect_uri", "http://127.0.0.1:4711/callback"),
        ("scope", scope),
        ("state", "xyz"),
    ];
    if let Some(pkce) = pkce {
        pairs.push(("code_challenge", &pkce.challenge));
        pairs.push(("code_challenge_method", "S256"));
    }
    pairs
}

/// The query parameters of a redirect's `Location`.
pub(crate) fn location_params(response: &reqwest::Response) -> (String, Map<String, Value>) {
    let location = response
        .headers()
        .get("location")
        .expect("a Location")
        .to_str()
        .expect("ASCII");
    let url = url::Url::parse(location).expect("absolute Location");
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut base = url.clone();
    base.set_query(None);
    (base.to_string(), params)
}

/// Signs `login_hint` in with [`authorize_params`] plus `extra`, and
/// returns the code of the redirect (asserting a 302 to the redirect URI
/// with `state=xyz`).
pub(crate) async fn sign_in(
    served: &Served,
    login_hint: &str,
    scope: &str,
    pkce: Option<&Pkce>,
    extra: &[(&str, &str)],
) -> String {
    let mut pairs = authorize_params(scope, pkce);
    pairs.push(("login_hint", login_hint));
    pairs.extend_from_slice(extra);
    let response = browser()
        .get(authorize_url(&served.base_url, &pairs))
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        response.status().as_u16(),
        302,
        "{:?}",
        response.text().await
    );
    let (target, params) = location_params(&response);
    assert_eq!(target, "http://127.0.0.1:4711/callback");
    assert_eq!(params["state"], "xyz", "{params:?}");
    params["code"].as_str().expect("a code").to_owned()
}

/// `POST` of `body` to the token endpoint of `tenant`.
pub(crate) async fn post_token(base_url: &str, tenant: &str, body: String) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/{tenant}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.expect("JSON answer"))
}

/// Redeems `code` (redirect URI of [`authorize_params`], the verifier of
/// `pkce`, the client secret in the body) plus `extra`.
pub(crate) async fn redeem(
    served: &Served,
    code: &str,
    pkce: Option<&Pkce>,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let secret = client_secret(served);
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", DEV_CONFIDENTIAL_CLIENT),
        ("client_secret", secret.as_str()),
        ("code", code),
        ("redirect_uri", "http://127.0.0.1:4711/callback"),
    ];
    if let Some(pkce) = pkce {
        pairs.push(("code_verifier", &pkce.verifier));
    }
    pairs.extend_from_slice(extra);
    post_token(&served.base_url, DEV_TENANT, form(&pairs)).await
}

/// Redeems a refresh token with the client secret, plus `extra`.
pub(crate) async fn refresh(
    served: &Served,
    token: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let secret = client_secret(served);
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("client_id", DEV_CONFIDENTIAL_CLIENT),
        ("client_secret", secret.as_str()),
        ("refresh_token", token),
    ];
    pairs.extend_from_slice(extra);
    post_token(&served.base_url, DEV_TENANT, form(&pairs)).await
}

/// The claims of a JWT, unverified.
pub(crate) fn payload(token: &str) -> Map<String, Value> {
    let part = token.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Asserts an Entra JSON error: status, `error`, `error_codes`, and a
/// description starting with the AADSTS code.
#[track_caller]
pub(crate) fn assert_entra_error(
    answer: &(StatusCode, Value),
    status: u16,
    error: &str,
    code: u32,
) {
    let (got, body) = answer;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], serde_json::json!([code]), "{body}");
    let description = body["error_description"].as_str().expect("a description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
}
