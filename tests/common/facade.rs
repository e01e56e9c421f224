//! Warden as the clients' OAuth authorization server in front of the dev
//! issuer (playing Entra ID over real HTTP), shared by the facade tests,
//! the approvals page's sign-in tests and the SDK interop tests: Warden's
//! callbacks registered at the issuer, fresh pepper and key files, and
//! `[oauth] mode = "facade"` with the issuer's confidential client as
//! Warden's Entra credential; and the "browser" helpers (no redirects
//! followed, cookies kept by hand).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use warden::identity::dev::{DEV_AUDIENCE, DEV_SCOPE, DEV_TENANT};

use super::issuer::Issuer;
use super::{InProcess, Setup};

/// Warden with the facade on in front of `issuer`, with `upstreams` (and
/// any other tables) and the body of `[policy]` (`None`: the test default).
/// Registers Warden's callbacks (`/oauth/callback`, `/admin/callback`, any
/// loopback port) at the issuer.
pub fn start(issuer: &Issuer, upstreams: &str, policy: Option<&str>) -> InProcess {
    start_with(issuer, upstreams, policy, "")
}

/// Like [`start`], with more `[oauth.*]` tables (e.g. `[oauth.cimd]`)
/// after the facade's own.
pub fn start_with(
    issuer: &Issuer,
    upstreams: &str,
    policy: Option<&str>,
    oauth_tables: &str,
) -> InProcess {
    for callback in [
        "http://127.0.0.1/oauth/callback",
        "http://127.0.0.1/admin/callback",
    ] {
        issuer.issuer.allow_redirect(callback).unwrap();
    }
    let client = issuer.issuer.dev_client().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let keys = tempfile::tempdir().unwrap();
    let (pepper, kek) = facade_keys(keys.path());
    let oauth = format!(
        "[oauth]\nmode = \"facade\"\nissuer = {base:?}\nkey_file = {kek:?}\npepper_file = {pepper:?}\n\
         [oauth.entra]\ntenant = {DEV_TENANT:?}\nclient_id = {:?}\nscope = \"{DEV_AUDIENCE}/{DEV_SCOPE}\"\n\
         authority = {:?}\n\
         [oauth.entra.credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\nsecret_file = {:?}\n",
        client.client_id, issuer.base, client.client_id, client.secret_file,
    ) + oauth_tables;
    let identity = issuer.identity_toml();
    let warden = InProcess::launch_on(
        listener,
        Setup {
            server_extra: "",
            identity: &identity,
            upstreams: &format!("{upstreams}{oauth}"),
            audit_extra: "",
            policy,
        },
    );
    std::mem::forget(keys);
    warden
}

/// A client that follows no redirects (the tests keep cookies by hand).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location on {}", response.status()))
        .to_owned()
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The whole `Set-Cookie` line that sets `name` (with its attributes).
pub fn set_cookie_line(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// `name=value` of the cookie `response` sets, for a `Cookie` header.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_line(response, name).map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

pub fn hidden(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_owned()
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k.as_ref(), v.as_ref());
    }
    out.finish()
}

/// What the browser leg did: the hops, and where Warden sent the browser
/// last (the client's redirect URI with `code`, `state` and `iss`).
pub struct Browsed {
    pub hops: Vec<String>,
    pub to_client: String,
    /// The consent page as Warden served it.
    pub consent: String,
}

/// Plays the user's browser for `authorization_url` (Warden's `/authorize`):
/// consent page, approval, the issuer's sign-in of `persona`, Warden's
/// callback. Follows no redirects and keeps cookies by hand.
pub async fn browse(base: &str, authorization_url: &str, persona: &str) -> Browsed {
    let http = browser();
    let mut hops = Vec::new();
    let mut hop = |method: &str, url: &str, status: reqwest::StatusCode| {
        let parsed = url::Url::parse(url).unwrap();
        let who = if parsed.origin().ascii_serialization() == base {
            "warden"
        } else {
            "issuer"
        };
        hops.push(format!(
            "{method} {who} {} {}",
            parsed.path(),
            status.as_u16()
        ));
    };

    let consent = http.get(authorization_url).send().await.unwrap();
    hop("GET", authorization_url, consent.status());
    assert_eq!(consent.status(), 200, "{:?}", consent.text().await);
    let csrf_cookie = set_cookie(&consent, "warden_oauth_csrf").expect("csrf cookie");
    let page = consent.text().await.unwrap();
    let decision = format!("{base}/authorize/decision");
    let decided = http
        .post(&decision)
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
    hop("POST", &decision, decided.status());
    assert_eq!(decided.status(), 302);
    let browser_cookie = set_cookie(&decided, "warden_oauth_browser").expect("browser cookie");
    let sign_in = format!(
        "{}&{}",
        location(&decided),
        encode(&[("login_hint", persona)])
    );
    let signed = http.get(&sign_in).send().await.unwrap();
    hop("GET", &sign_in, signed.status());
    assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
    let callback = location(&signed);
    let back = http
        .get(&callback)
        .header("cookie", &browser_cookie)
        .send()
        .await
        .unwrap();
    hop("GET", &callback, back.status());
    assert_eq!(back.status(), 302, "{:?}", back.text().await);
    Browsed {
        hops,
        to_client: location(&back),
        consent: page,
    }
}

/// Runs the Python script `tests/interop/<script>` (the pinned venv's
/// interpreter) with `args`; the JSON it prints. Async, because the dev
/// issuer and other servers of the calling test run on its runtime.
pub async fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let output = tokio::process::Command::new(super::dep("WARDEN_TEST_PYTHON"))
        .arg(path)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// A PKCE pair as a client makes one: a random verifier and its S256
/// challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::{Digest, Sha256};
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// `echo` reads the virtual machine its arguments name.
pub const STEP_UP_CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

/// Everything is allowed, with MFA: the forbid asks for a step-up.
pub const STEP_UP_POLICIES: &str = r#"
@id("allow-all")
permit (principal, action, resource);

@id("mfa-required")
@advice("step_up")
forbid (principal, action, resource)
unless { context.mfa };
"#;

/// A new random pepper and key-encryption key for the facade in `dir`:
/// their paths (`oauth.pepper_file`, `oauth.key_file`).
pub fn facade_keys(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let pepper = dir.join("pepper");
    std::fs::write(&pepper, format!("{}\n", STANDARD.encode(key))).unwrap();
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let kek = dir.join("oauth.keys");
    std::fs::write(&kek, format!("k1 {}\n", STANDARD.encode(key))).unwrap();
    (pepper, kek)
}
