//! The OAuth facade with a certificate credential toward Entra ID (the dev
//! issuer plays Entra over real HTTP): `[oauth.entra.credential] kind =
//! "client_certificate"`, the certificate generated now and registered
//! with the issuer's confidential client, and an MCP client that signs in
//! end to end. Every request Warden makes to Entra's token endpoint (the
//! code redemption at the callback, the refresh) carries a new signed
//! client assertion, which the issuer verifies and accepts once.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::facade::{browser, encode, facade_keys, hidden, location, query, set_cookie};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use warden::identity::dev::{
    DEV_AUDIENCE, DEV_CONFIDENTIAL_CLIENT, DEV_SCOPE, DEV_TENANT, DevUser,
};

const REDIRECT: &str = "http://127.0.0.1:43210/callback";

/// A self-signed RSA certificate and its key, in one PEM text.
fn certificate_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["warden.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    format!("{}{}", certificate.pem(), key.serialize_pem())
}

/// Warden with the facade on in front of `issuer`, authenticating to it
/// with the certificate in `certificate_file` (certificate and key).
fn start(issuer: &Issuer, certificate_file: &std::path::Path) -> (InProcess, tempfile::TempDir) {
    for callback in [
        "http://127.0.0.1/oauth/callback",
        "http://127.0.0.1/admin/callback",
    ] {
        issuer.issuer.allow_redirect(callback).unwrap();
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let keys = tempfile::tempdir().unwrap();
    let (pepper, kek) = facade_keys(keys.path());
    let oauth = format!(
        "[oauth]\nmode = \"facade\"\nissuer = {base:?}\nkey_file = {kek:?}\npepper_file = {pepper:?}\n\
         [oauth.entra]\ntenant = {DEV_TENANT:?}\nclient_id = {DEV_CONFIDENTIAL_CLIENT:?}\n\
         scope = \"{DEV_AUDIENCE}/{DEV_SCOPE}\"\nauthority = {:?}\n\
         [oauth.entra.credential]\nkind = \"client_certificate\"\ntenant_id = {DEV_TENANT:?}\n\
         client_id = {DEV_CONFIDENTIAL_CLIENT:?}\ncertificate_file = {certificate_file:?}\n",
        issuer.base,
    );
    let identity = issuer.identity_toml();
    let warden = InProcess::launch_on(
        listener,
        Setup {
            server_extra: "",
            identity: &identity,
            upstreams: &format!("{}{oauth}", demo_stdio("demo", "certificate")),
            audit_extra: "",
            policy: None,
        },
    );
    (warden, keys)
}

#[tokio::test]
async fn a_client_signs_in_through_a_facade_that_uses_a_certificate() {
    let issuer = Issuer::start().await;
    issuer
        .issuer
        .add_user(DevUser {
            name: "ada".into(),
            user: "ada@contoso.dev".into(),
            roles: vec!["Reader".into()],
            groups: Vec::new(),
            mfa: false,
            disabled: false,
        })
        .unwrap();
    let pem = certificate_pem();
    let thumbprint = issuer.issuer.add_client_certificate(&pem).unwrap();
    let certificate_file = issuer.dir.path().join("warden-entra.pem");
    std::fs::write(&certificate_file, &pem).unwrap();
    let (warden, _keys) = start(&issuer, &certificate_file);
    let base = warden.base();
    let http = browser();

    // The MCP client registers (DCR) and starts the authorization.
    let registered: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"client_name": "Certificate test client", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let verifier = URL_SAFE_NO_PAD.encode(secret);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mcp = format!("{base}/mcp");
    let authorize = format!(
        "{base}/authorize?{}",
        encode(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "client-state"),
            ("resource", mcp.as_str()),
        ])
    );

    // Consent, then Entra, then Warden's callback, which redeems Entra's
    // code with a client assertion.
    let consent = http.get(&authorize).send().await.unwrap();
    assert_eq!(consent.status(), 200);
    let csrf_cookie = set_cookie(&consent, "warden_oauth_csrf").expect("csrf cookie");
    let page = consent.text().await.unwrap();
    let decided = http
        .post(format!("{base}/authorize/decision"))
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
    let browser_cookie = set_cookie(&decided, "warden_oauth_browser").expect("browser cookie");
    let entra = location(&decided);
    assert!(entra.starts_with(&issuer.base), "{entra}");
    let signed = http
        .get(format!("{entra}&login_hint=ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
    let back = http
        .get(location(&signed))
        .header("cookie", &browser_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 302, "{:?}", back.text().await);
    let to_client = location(&back);
    assert!(to_client.starts_with(REDIRECT), "{to_client}");
    let answer = query(&to_client);
    assert_eq!(answer["state"], "client-state");
    assert!(!answer.contains_key("error"), "{answer:?}");

    // Warden's tokens for the client.
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let response = http
                .post(format!("{base}/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encode(&form))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, tokens) = token(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", answer["code"].clone()),
        ("redirect_uri", REDIRECT.to_owned()),
        ("client_id", client_id.clone()),
        ("code_verifier", verifier),
        ("resource", mcp.clone()),
    ])
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("wdn_at_") && refresh.starts_with("wdn_rt_"));

    // An MCP call with Warden's token.
    let (client, _) = connect_as(&warden.url(), Some(&access)).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    assert!(!who.contains("wdn_at_"), "{who}");

    // A refresh refreshes at Entra too: another assertion, accepted.
    let (status, rotated) = token(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh.clone()),
        ("client_id", client_id.clone()),
    ])
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["refresh_token"].as_str().unwrap(), refresh);

    // The certificate is the only credential Warden has: with it removed
    // from the application, Entra refuses Warden itself (invalid_client).
    // That is Warden's configuration, not the user's sign-in: the client
    // is told to try again later and the grant stays.
    assert!(issuer.issuer.remove_client_certificate(&thumbprint));
    let refresh_with = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
            ("client_id", client_id.clone()),
        ]
    };
    let latest = rotated["refresh_token"].as_str().unwrap().to_owned();
    let (status, refused) = token(refresh_with(&latest)).await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"], "temporarily_unavailable", "{refused}");
    // With the certificate registered again, the same refresh token works.
    issuer.issuer.add_client_certificate(&pem).unwrap();
    let (status, renewed) = token(refresh_with(&latest)).await;
    assert_eq!(status, 200, "{renewed}");
}
