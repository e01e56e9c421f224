//! End-to-end tests: a real [`DevIssuer`] served over HTTP on 127.0.0.1, a
//! real [`Authenticator`] fetching its discovery document and JWKS.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::dev::{
    DEV_AUDIENCE, DEV_CLIENT_APP, DEV_KEY_FILE, DEV_TENANT, DevIssuer, TokenOptions, TokenVersion,
};
use super::*;

/// The key every test but the rotation test signs with. It is created once
/// (key generation is slow in debug builds) through the real
/// `DevIssuer::load_or_create` path, whose results are kept for
/// `dev_issuer_key_file_is_private_and_reused`.
struct SharedKey {
    pem: String,
    mode: u32,
    kid: String,
}

fn shared_key() -> &'static SharedKey {
    static KEY: OnceLock<SharedKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested");
        let issuer = DevIssuer::load_or_create(&path).unwrap();
        let file = path.join(DEV_KEY_FILE);
        #[cfg(unix)]
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777
        };
        #[cfg(not(unix))]
        let mode = 0o600;
        SharedKey {
            pem: std::fs::read_to_string(&file).unwrap(),
            mode,
            kid: issuer.kid(),
        }
    })
}

struct Harness {
    issuer: DevIssuer,
    base_url: String,
    auth: Arc<Authenticator>,
    /// JWKS requests the server received.
    jwks_hits: Arc<AtomicU64>,
    /// When set, the server answers 503 to everything.
    down: Arc<AtomicBool>,
    server: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn issuer_in_tempdir() -> (DevIssuer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().to_owned();
    let issuer = tokio::task::spawn_blocking(move || {
        std::fs::write(path.join(DEV_KEY_FILE), &shared_key().pem).unwrap();
        DevIssuer::load_or_create(&path)
    })
    .await
    .unwrap()
    .unwrap();
    (issuer, dir)
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

async fn harness_with(change: impl FnOnce(&mut IdentityConfig)) -> Harness {
    let (mut issuer, dir) = issuer_in_tempdir().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    issuer.set_base_url(&base_url);

    let jwks_hits = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let (hits, is_down) = (Arc::clone(&jwks_hits), Arc::clone(&down));
    let app =
        issuer
            .router(&base_url)
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let (hits, is_down) = (Arc::clone(&hits), Arc::clone(&is_down));
                async move {
                    if request.uri().path().ends_with("/discovery/v2.0/keys") {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                    if is_down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    next.run(request).await
                }
            }));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut config = issuer.identity_config(&base_url);
    change(&mut config);
    assert_eq!(config.validate(), Ok(()));
    let auth = Authenticator::start(config, reqwest::Client::new());
    wait_ready(&auth).await;
    Harness {
        issuer,
        base_url,
        auth,
        jwks_hits,
        down,
        server,
        _dir: dir,
    }
}

/// Waits for the background task's first load, so that no background fetch
/// is still pending when a test starts counting.
async fn wait_ready(auth: &Authenticator) {
    for _ in 0..3000 {
        if auth.ready().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("authenticator never became ready: {:?}", auth.ready());
}

impl Harness {
    fn mint(&self, options: TokenOptions) -> String {
        self.issuer.mint(&options).unwrap()
    }

    fn claims(&self, options: TokenOptions) -> Map<String, Value> {
        self.issuer.claims(&options).unwrap()
    }

    async fn check(&self, token: &str) -> Result<Principal, AuthError> {
        self.auth
            .authenticate(Some(&format!("Bearer {token}")), Some(loopback()))
            .await
    }

    async fn reason(&self, token: &str) -> (&'static str, u16) {
        match self.check(token).await {
            Ok(p) => panic!("token unexpectedly accepted for {}", p.display_name),
            Err(e) => (e.reason(), e.status()),
        }
    }

    /// Signs `claims` with the current private key under `header`.
    fn sign_with_header(&self, header: &Header, claims: &Map<String, Value>) -> String {
        let private = self.issuer.current_private_key().unwrap();
        let der = private.to_pkcs1_der().unwrap();
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        jsonwebtoken::encode(header, claims, &key).unwrap()
    }
}

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn extra(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn accepts_v2_user_token() {
    let h = harness().await;
    let token = h.mint(TokenOptions {
        user: "ada@contoso.dev".into(),
        groups: vec!["g-ops".into()],
        roles: vec!["Tools.Read".into()],
        ..TokenOptions::default()
    });
    let p = h.check(&token).await.unwrap();
    assert_eq!(p.tid, DEV_TENANT);
    assert_eq!(p.kind, PrincipalKind::User);
    assert_eq!(p.display_name, "ada@contoso.dev");
    assert_eq!(p.scopes, set(&["access_as_user"]));
    assert_eq!(p.groups, set(&["g-ops"]));
    assert_eq!(p.roles, set(&["Tools.Read"]));
    assert_eq!(p.client_app.as_deref(), Some(DEV_CLIENT_APP));
    assert_eq!(p.source_ip, Some(loopback()));
    assert!(p.token_id.is_some());
    assert!(!p.mfa && !p.groups_overage);
    assert!(p.expires_at.unwrap() > now());
    // The oid is stable per user name, and is the identity key.
    let again = h
        .check(&h.mint(TokenOptions {
            user: "ada@contoso.dev".into(),
            ..TokenOptions::default()
        }))
        .await
        .unwrap();
    assert_eq!(again.key(), p.key());
    assert_ne!(again.token_id, p.token_id);
}

#[tokio::test]
async fn accepts_v1_user_token() {
    let h = harness().await;
    let token = h.mint(TokenOptions {
        user: "bob@contoso.dev".into(),
        version: TokenVersion::V1,
        mfa: true,
        ..TokenOptions::default()
    });
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["iss"],
        json!(format!("{}/sts/{DEV_TENANT}/", h.base_url))
    );
    let p = h.check(&token).await.unwrap();
    assert_eq!(p.display_name, "bob@contoso.dev");
    assert_eq!(p.client_app.as_deref(), Some(DEV_CLIENT_APP));
    assert_eq!(p.kind, PrincipalKind::User);
    assert!(p.mfa);
}

#[tokio::test]
async fn accepts_app_only_token_and_enforces_app_roles() {
    let h = harness_with(|c| c.required_app_roles = vec!["Tools.Run".into()]).await;
    let app = |roles: Vec<String>| TokenOptions {
        user: "nightly-job".into(),
        app: true,
        roles,
        ..TokenOptions::default()
    };
    let p = h
        .check(&h.mint(app(vec!["Tools.Run".into()])))
        .await
        .unwrap();
    assert_eq!(p.kind, PrincipalKind::Application);
    assert_eq!(p.display_name, "nightly-job");
    assert!(p.scopes.is_empty());
    assert_eq!(
        h.reason(&h.mint(app(vec!["Other".into()]))).await,
        ("insufficient_scope", 403)
    );
    // Without required app roles, an app-only token needs some role...
    let open = harness().await;
    let p = open
        .check(&open.mint(app(vec!["Other".into()])))
        .await
        .unwrap();
    assert_eq!(p.kind, PrincipalKind::Application);
    // ...and one with none at all is refused: any app in the tenant can get it.
    let error = open.check(&open.mint(app(Vec::new()))).await.unwrap_err();
    assert_eq!(
        (error.reason(), error.status()),
        ("insufficient_scope", 403)
    );
    assert!(error.to_string().contains("allow_app_tokens_without_roles"));
    let allowing = harness_with(|c| c.allow_app_tokens_without_roles = true).await;
    let p = allowing
        .check(&allowing.mint(app(Vec::new())))
        .await
        .unwrap();
    assert!(p.roles.is_empty());
}

#[tokio::test]
async fn user_token_without_required_scope_is_forbidden() {
    let h = harness().await;
    let token = h.mint(TokenOptions {
        scopes: vec!["something_else".into()],
        ..TokenOptions::default()
    });
    let error = h.check(&token).await.unwrap_err();
    assert_eq!(
        (error.reason(), error.status()),
        ("insufficient_scope", 403)
    );
    assert!(error.to_string().contains("access_as_user"));
}

#[tokio::test]
async fn key_rotation_is_picked_up_through_the_unknown_kid_refresh() {
    let h = harness().await;
    let old_token = h.mint(TokenOptions::default());
    let old_kid = h.issuer.kid();
    let mut issuer = h.issuer.clone();
    let new_kid = tokio::task::spawn_blocking(move || issuer.rotate())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(new_kid, old_kid);
    assert_eq!(h.issuer.kids(), vec![old_kid, new_kid.clone()]);
    let new_token = h.mint(TokenOptions::default());
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(new_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], json!(new_kid));

    let (hits, fetches) = (h.jwks_hits.load(Ordering::SeqCst), h.auth.jwks_fetches());
    h.check(&new_token).await.unwrap();
    assert_eq!(h.jwks_hits.load(Ordering::SeqCst), hits + 1);
    assert_eq!(h.auth.jwks_fetches(), fetches + 1);
    // The old key is still published, so its tokens remain valid.
    h.check(&old_token).await.unwrap();
    h.check(&new_token).await.unwrap();
    assert_eq!(h.jwks_hits.load(Ordering::SeqCst), hits + 1);
}

#[tokio::test]
async fn rejects_alg_none() {
    let h = harness().await;
    let header = json!({ "alg": "none", "typ": "JWT" }).to_string();
    let claims = Value::Object(h.claims(TokenOptions::default())).to_string();
    let token = format!(
        "{}.{}.",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    );
    assert_eq!(h.reason(&token).await, ("bad_alg", 401));
    let with_kid = json!({ "alg": "none", "kid": h.issuer.kid() }).to_string();
    let token = format!(
        "{}.{}.",
        b64url(with_kid.as_bytes()),
        b64url(claims.as_bytes())
    );
    assert_eq!(h.reason(&token).await, ("bad_alg", 401));
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_public_key() {
    let h = harness().await;
    let public_pem = h
        .issuer
        .current_private_key()
        .unwrap()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let claims = h.claims(TokenOptions::default());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(h.issuer.kid());
    let secret = EncodingKey::from_secret(public_pem.as_bytes());
    let token = jsonwebtoken::encode(&header, &claims, &secret).unwrap();
    assert_eq!(h.reason(&token).await, ("bad_alg", 401));
    // The same HMAC under a header that claims RS256 is just a bad signature.
    let segments: Vec<&str> = token.split('.').collect();
    let rs_header = b64url(
        json!({ "alg": "RS256", "kid": h.issuer.kid() })
            .to_string()
            .as_bytes(),
    );
    let forged = format!("{rs_header}.{}.{}", segments[1], segments[2]);
    assert_eq!(h.reason(&forged).await, ("bad_signature", 401));
    // Other algorithms are refused outright.
    for alg in [Algorithm::HS512, Algorithm::RS512, Algorithm::PS256] {
        let mut header = Header::new(alg);
        header.kid = Some(h.issuer.kid());
        let signed = match alg {
            Algorithm::HS512 => jsonwebtoken::encode(&header, &claims, &secret).unwrap(),
            _ => h.sign_with_header(&header, &claims),
        };
        assert_eq!(h.reason(&signed).await, ("bad_alg", 401), "{alg:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_fetches_at_most_once_per_cooldown() {
    let h = harness().await;
    let claims = h.claims(TokenOptions::default());
    let hits = h.jwks_hits.load(Ordering::SeqCst);
    let fetches = h.auth.jwks_fetches();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("unknown-{i}"));
        let token = h.sign_with_header(&header, &claims);
        let auth = Arc::clone(&h.auth);
        tasks.spawn(async move {
            auth.authenticate(Some(&format!("Bearer {token}")), None)
                .await
                .map_err(|e| (e.reason(), e.status()))
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap_err(), ("unknown_kid", 401));
    }
    assert!(h.jwks_hits.load(Ordering::SeqCst) <= hits + 1);
    assert!(h.auth.jwks_fetches() <= fetches + 1);
    // A later unknown kid inside the cooldown causes no fetch at all.
    let before = h.auth.jwks_fetches();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("unknown-late".into());
    assert_eq!(
        h.reason(&h.sign_with_header(&header, &claims)).await,
        ("unknown_kid", 401)
    );
    assert_eq!(h.auth.jwks_fetches(), before);
    // Known keys keep working.
    h.check(&h.mint(TokenOptions::default())).await.unwrap();
}

#[tokio::test]
async fn rejects_expired_and_not_yet_valid_tokens() {
    let h = harness().await;
    let t = now();
    let expired = h.mint(TokenOptions {
        extra: extra(json!({ "iat": t - 7200, "nbf": t - 7200, "exp": t - 3600 })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&expired).await, ("expired", 401));
    let future = h.mint(TokenOptions {
        extra: extra(json!({ "iat": t, "nbf": t + 3600, "exp": t + 7200 })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&future).await, ("not_yet_valid", 401));
    // Within the 2m clock-skew leeway both are accepted.
    let skewed = h.mint(TokenOptions {
        extra: extra(json!({ "iat": t - 600, "nbf": t + 30, "exp": t - 30 })),
        ..TokenOptions::default()
    });
    h.check(&skewed).await.unwrap();
    let no_exp = h.mint(TokenOptions {
        extra: extra(json!({ "exp": null })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&no_exp).await, ("malformed", 401));
}

#[tokio::test]
async fn rejects_wrong_audience_issuer_and_tenant() {
    let h = harness().await;
    let wrong_aud = h.mint(TokenOptions {
        audience: Some("api://someone-else".into()),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&wrong_aud).await, ("bad_audience", 401));
    let array_aud = h.mint(TokenOptions {
        extra: extra(json!({ "aud": ["api://someone-else", DEV_AUDIENCE] })),
        ..TokenOptions::default()
    });
    h.check(&array_aud).await.unwrap();

    for iss in [
        format!("https://evil.example.com/{DEV_TENANT}/v2.0"),
        format!("https://login.microsoftonline.com/{DEV_TENANT}/v2.0"),
        format!("https://sts.windows.net/{DEV_TENANT}/"),
        format!("{}/{DEV_TENANT}/v2.0/", h.base_url),
        format!("{}/{DEV_TENANT}", h.base_url),
    ] {
        let token = h.mint(TokenOptions {
            extra: extra(json!({ "iss": iss })),
            ..TokenOptions::default()
        });
        assert_eq!(h.reason(&token).await, ("bad_issuer", 401), "{iss}");
    }

    let other = "99999999-8888-4777-8666-555555555555";
    let foreign_tid = h.mint(TokenOptions {
        extra: extra(json!({ "tid": other })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&foreign_tid).await, ("bad_tenant", 401));
    let foreign_tenant = h.mint(TokenOptions {
        extra: extra(json!({ "tid": other, "iss": format!("{}/{other}/v2.0", h.base_url) })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&foreign_tenant).await, ("bad_issuer", 401));
    let no_tid = h.mint(TokenOptions {
        extra: extra(json!({ "tid": null })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&no_tid).await, ("bad_tenant", 401));
    let no_oid = h.mint(TokenOptions {
        extra: extra(json!({ "oid": null })),
        ..TokenOptions::default()
    });
    assert_eq!(h.reason(&no_oid).await, ("malformed", 401));
}

#[tokio::test]
async fn rejects_payload_altered_after_signing() {
    let h = harness().await;
    let token = h.mint(TokenOptions::default());
    let segments: Vec<&str> = token.split('.').collect();
    let mut claims = h.claims(TokenOptions::default());
    claims.insert("roles".into(), json!(["Global.Admin"]));
    let altered = b64url(Value::Object(claims).to_string().as_bytes());
    let forged = format!("{}.{altered}.{}", segments[0], segments[2]);
    assert_eq!(h.reason(&forged).await, ("bad_signature", 401));
    // A flipped signature byte, too.
    let mut signature = URL_SAFE_NO_PAD.decode(segments[2]).unwrap();
    signature[10] ^= 1;
    let flipped = format!("{}.{}.{}", segments[0], segments[1], b64url(&signature));
    assert_eq!(h.reason(&flipped).await, ("bad_signature", 401));
}

#[tokio::test]
async fn rejects_missing_kid_garbage_and_oversized_tokens() {
    let h = harness().await;
    let claims = h.claims(TokenOptions::default());
    let no_kid = h.sign_with_header(&Header::new(Algorithm::RS256), &claims);
    assert_eq!(h.reason(&no_kid).await, ("missing_kid", 401));
    for garbage in [
        "not-a-jwt",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJSUzI1NiJ9.%%%.sig",
        "bm90IGpzb24.e30.c2ln",
        "\u{1F600}.\u{1F600}.\u{1F600}",
    ] {
        assert_eq!(h.reason(garbage).await, ("malformed", 401), "{garbage:?}");
    }
    let huge = "a".repeat(16385);
    assert_eq!(h.reason(&huge).await, ("oversized", 401));
    let big_claims = h.mint(TokenOptions {
        groups: (0..400)
            .map(|i| format!("group-{i:04}-{}", "x".repeat(30)))
            .collect(),
        ..TokenOptions::default()
    });
    assert!(big_claims.len() > 16384);
    assert_eq!(h.reason(&big_claims).await, ("oversized", 401));
}

#[tokio::test]
async fn missing_header_and_other_schemes() {
    let h = harness().await;
    let token = h.mint(TokenOptions::default());
    for header in [
        None,
        Some(String::new()),
        Some(format!("Basic {token}")),
        Some(token.clone()),
        Some("Bearer ".into()),
    ] {
        let error = h
            .auth
            .authenticate(header.as_deref(), None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.reason(), error.status()),
            ("missing", 401),
            "{header:?}"
        );
    }
    for scheme in ["bearer", "BEARER", "Bearer"] {
        h.auth
            .authenticate(Some(&format!("{scheme} {token}")), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn jwks_down_at_start_reports_not_ready_and_keys_unavailable() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (mut issuer, _dir) = issuer_in_tempdir().await;
    issuer.set_base_url(&base_url);
    let auth = Authenticator::start(issuer.identity_config(&base_url), reqwest::Client::new());
    auth.refresh_keys().await;
    let message = auth.ready().unwrap_err();
    assert!(
        message.starts_with(&format!("JWKS for tenant {DEV_TENANT} not loaded: ")),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    let error = auth
        .authenticate(
            Some(&format!(
                "Bearer {}",
                issuer.mint(&TokenOptions::default()).unwrap()
            )),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!((error.reason(), error.status()), ("keys_unavailable", 503));
    assert!(error.to_string().contains("not loaded"), "{error}");
}

#[tokio::test]
async fn jwks_down_later_keeps_the_last_good_keys() {
    let h = harness().await;
    let token = h.mint(TokenOptions::default());
    h.down.store(true, Ordering::SeqCst);
    let fetches = h.auth.jwks_fetches();
    h.auth.refresh_keys().await;
    assert_eq!(h.auth.jwks_fetches(), fetches + 1);
    assert_eq!(h.auth.ready(), Ok(()));
    h.check(&token).await.unwrap();
    // An unknown kid while the JWKS is down is still "unknown", not 503.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rotated-away".into());
    let token = h.sign_with_header(&header, &h.claims(TokenOptions::default()));
    assert_eq!(h.reason(&token).await, ("unknown_kid", 401));
    h.down.store(false, Ordering::SeqCst);
    h.check(&h.mint(TokenOptions::default())).await.unwrap();
}

#[tokio::test]
async fn mfa_from_amr_and_auth_contexts() {
    let h = harness_with(|c| c.mfa_auth_contexts = vec!["c1".into()]).await;
    let mfa = |options: TokenOptions| async { h.check(&h.mint(options)).await.unwrap().mfa };
    assert!(
        mfa(TokenOptions {
            version: TokenVersion::V1,
            mfa: true,
            ..TokenOptions::default()
        })
        .await
    );
    assert!(
        !mfa(TokenOptions {
            version: TokenVersion::V1,
            ..TokenOptions::default()
        })
        .await
    );
    let with_c1 = h
        .check(&h.mint(TokenOptions {
            acrs: vec!["c1".into()],
            ..TokenOptions::default()
        }))
        .await
        .unwrap();
    assert!(with_c1.mfa);
    assert_eq!(with_c1.acrs, set(&["c1"]));
    assert!(
        !mfa(TokenOptions {
            acrs: vec!["c2".into()],
            ..TokenOptions::default()
        })
        .await
    );
    assert!(!mfa(TokenOptions::default()).await);
}

#[tokio::test]
async fn groups_overage_denied_by_default_and_flagged_when_allowed() {
    let overage = || {
        extra(json!({
            "_claim_names": { "groups": "src1" },
            "_claim_sources": { "src1": { "endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects" } },
        }))
    };
    let deny = harness().await;
    let error = deny
        .check(&deny.mint(TokenOptions {
            extra: overage(),
            ..TokenOptions::default()
        }))
        .await
        .unwrap_err();
    assert_eq!((error.reason(), error.status()), ("groups_overage", 403));
    assert!(error.to_string().contains("group filtering"), "{error}");
    let hasgroups = deny.mint(TokenOptions {
        extra: extra(json!({ "hasgroups": true })),
        ..TokenOptions::default()
    });
    assert_eq!(deny.reason(&hasgroups).await, ("groups_overage", 403));

    let allow = harness_with(|c| c.groups_overage = GroupsOveragePolicy::Allow).await;
    let p = allow
        .check(&allow.mint(TokenOptions {
            groups: vec!["g-visible".into()],
            extra: overage(),
            ..TokenOptions::default()
        }))
        .await
        .unwrap();
    assert!(p.groups_overage);
    assert!(p.groups.is_empty());
}

#[tokio::test]
async fn client_app_allowlist() {
    let allowed = "33333333-4444-4555-8666-777777777777";
    let h = harness_with(|c| c.client_apps = vec![allowed.to_uppercase()]).await;
    let error = h.check(&h.mint(TokenOptions::default())).await.unwrap_err();
    assert_eq!(
        (error.reason(), error.status()),
        ("client_not_allowed", 403)
    );
    for version in [TokenVersion::V1, TokenVersion::V2] {
        let p = h
            .check(&h.mint(TokenOptions {
                client_app: Some(allowed.into()),
                version,
                ..TokenOptions::default()
            }))
            .await
            .unwrap();
        assert_eq!(p.client_app.as_deref(), Some(allowed));
    }
}

#[tokio::test]
async fn anonymous_mode_ignores_tokens() {
    let config = IdentityConfig {
        allow_anonymous: true,
        audiences: vec![DEV_AUDIENCE.into()],
        ..IdentityConfig::default()
    };
    assert_eq!(config.validate(), Ok(()));
    let auth = Authenticator::start(config, reqwest::Client::new());
    assert_eq!(auth.ready(), Ok(()));
    for header in [None, Some("Bearer garbage")] {
        let p = auth.authenticate(header, Some(loopback())).await.unwrap();
        assert!(p.is_anonymous());
        assert_eq!(p.source_ip, Some(loopback()));
    }
    assert_eq!(auth.jwks_fetches(), 0);
}

/// An authenticator for the pure functions (challenges, metadata, step-up);
/// its key fetches fail quietly against a closed port.
async fn offline_authenticator(change: impl FnOnce(&mut IdentityConfig)) -> Arc<Authenticator> {
    let mut config = IdentityConfig {
        tenants: vec![
            "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            DEV_TENANT.into(),
        ],
        audiences: vec![
            "6e1b8f52-0a4b-4f0e-9d6c-1f2e3d4c5b6a".into(),
            "api://warden".into(),
        ],
        required_scopes: vec!["access_as_user".into()],
        authority: "http://127.0.0.1:9".into(),
        mfa_auth_contexts: vec!["c1".into()],
        ..IdentityConfig::default()
    };
    change(&mut config);
    assert_eq!(config.validate(), Ok(()));
    Authenticator::start(config, reqwest::Client::new())
}

const META: &str = "https://warden.example.com/.well-known/oauth-protected-resource/mcp";

#[tokio::test]
async fn challenge_header_values() {
    let auth = offline_authenticator(|_| {}).await;
    assert_eq!(
        auth.challenge(&AuthError::Missing("no Authorization header"), None, META),
        format!("Bearer resource_metadata=\"{META}\", scope=\"api://warden/access_as_user\"")
    );
    assert_eq!(
        auth.challenge(&AuthError::Expired, None, META),
        format!(
            "Bearer resource_metadata=\"{META}\", scope=\"api://warden/access_as_user\", \
             error=\"invalid_token\", error_description=\"token has expired\""
        )
    );
    assert_eq!(
        auth.challenge(&AuthError::InsufficientScope("x".into()), None, META),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"api://warden/access_as_user\", \
             resource_metadata=\"{META}\""
        )
    );
    // Attacker-influenced text cannot break out of the quoted string.
    let value = auth.challenge(&AuthError::BadIssuer("x\", evil=\"1\\".into()), None, META);
    assert!(
        value.ends_with("error_description=\"token issuer 'x', evil='1' is not trusted\""),
        "{value}"
    );
    assert!(http::HeaderValue::from_str(&value).is_ok());
    let forbidden = auth.challenge(&AuthError::GroupsOverage, None, META);
    assert!(forbidden.starts_with(&format!(
        "Bearer resource_metadata=\"{META}\", error_description="
    )));
    assert!(!forbidden.contains("invalid_token"));

    // Without required scopes there is no scope parameter.
    let no_scopes = offline_authenticator(|c| c.required_scopes.clear()).await;
    assert_eq!(
        no_scopes.challenge(&AuthError::Missing("no Authorization header"), None, META),
        format!("Bearer resource_metadata=\"{META}\"")
    );
}

#[tokio::test]
async fn protected_resource_metadata_document() {
    let auth = offline_authenticator(|c| {
        c.required_scopes = vec!["access_as_user".into(), "api://other/Tools.Read".into()];
    })
    .await;
    assert_eq!(
        auth.protected_resource_metadata("https://warden.example.com/mcp"),
        json!({
            "resource": "https://warden.example.com/mcp",
            "authorization_servers": [
                format!("http://127.0.0.1:9/{DEV_TENANT}/v2.0"),
                "http://127.0.0.1:9/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
            ],
            "scopes_supported": ["api://warden/access_as_user", "api://other/Tools.Read"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Warden",
        })
    );
    let fixed =
        offline_authenticator(|c| c.resource = Some("https://gw.example.com/mcp".into())).await;
    assert_eq!(
        fixed.protected_resource_metadata("http://internal:8080/mcp")["resource"],
        json!("https://gw.example.com/mcp")
    );
    // Real Entra layout for the public cloud.
    let entra = offline_authenticator(|c| c.authority = DEFAULT_AUTHORITY.into()).await;
    assert_eq!(
        entra.protected_resource_metadata("https://w/mcp")["authorization_servers"][1],
        json!("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0")
    );
}

#[tokio::test]
async fn step_up_claims_challenge_or_tool_error() {
    let auth = offline_authenticator(|_| {}).await;
    let mut principal = Principal::anonymous(None);
    principal.client_capabilities.insert("cp1".into());
    let StepUp::Challenge { www_authenticate } = auth.step_up(&principal, "c1", META) else {
        panic!("a cp1 client gets a claims challenge");
    };
    assert!(
        www_authenticate
            .starts_with("Bearer realm=\"\", error=\"insufficient_claims\", error_description=\"")
    );
    assert!(www_authenticate.ends_with(&format!("resource_metadata=\"{META}\"")));
    assert!(http::HeaderValue::from_str(&www_authenticate).is_ok());
    let claims = www_authenticate
        .split("claims=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let decoded: Value = serde_json::from_slice(&STANDARD.decode(claims).unwrap()).unwrap();
    assert_eq!(
        decoded,
        json!({ "access_token": { "acrs": { "essential": true, "value": "c1" } } })
    );

    principal.client_capabilities.clear();
    assert_eq!(
        auth.step_up(&principal, "c1", META),
        StepUp::ToolError {
            message: "This call requires multi-factor authentication (Microsoft Entra \
                      authentication context c1). Sign in again with MFA and retry; your client \
                      does not support claims challenges, so it must acquire a new token itself."
                .into()
        }
    );
    let StepUp::ToolError { message } = auth.step_up(&principal, "c7", META) else {
        panic!("no cp1, no challenge");
    };
    assert!(message.contains("authentication context c7"), "{message}");
}

/// Warden's own tokens as the OAuth facade hands them to the
/// authenticator (the facade's real marks are tested in `oauth::step_up`).
struct Facade {
    both: bool,
    step_up: Option<&'static str>,
    wanted: std::sync::Mutex<BTreeSet<String>>,
    asked: std::sync::Mutex<BTreeSet<String>>,
}

impl Facade {
    fn start(auth: &Authenticator, both: bool, step_up: Option<&'static str>) -> Arc<Facade> {
        let facade = Arc::new(Facade {
            both,
            step_up,
            wanted: Default::default(),
            asked: Default::default(),
        });
        let opaque: Arc<dyn OpaqueTokens> = facade.clone();
        auth.accept_opaque(&opaque);
        facade
    }
}

#[async_trait::async_trait]
impl OpaqueTokens for Facade {
    fn claims(&self, token: &str) -> bool {
        token.starts_with("wdn_at_")
    }

    async fn authenticate(&self, _: &str, _: Option<IpAddr>) -> Result<Principal, String> {
        Err("unknown".into())
    }

    fn issuer(&self) -> String {
        "https://warden.example.com".into()
    }

    fn keep_tenants(&self) -> bool {
        self.both
    }

    fn scopes(&self) -> Vec<String> {
        vec!["mcp".into()]
    }

    fn step_up_scope(&self) -> Option<String> {
        self.step_up.map(str::to_owned)
    }

    async fn want_step_up(&self, grant: &str) -> Option<StepUpMark> {
        self.step_up?;
        if self.asked.lock().unwrap().contains(grant) {
            return Some(StepUpMark::AlreadyAsked);
        }
        self.wanted.lock().unwrap().insert(grant.to_owned());
        Some(StepUpMark::Marked)
    }

    async fn take_step_up(&self, grant: &str) -> Option<Vec<String>> {
        let step_up = self.step_up?;
        if !self.wanted.lock().unwrap().remove(grant) {
            return None;
        }
        self.asked.lock().unwrap().insert(grant.to_owned());
        Some(vec!["mcp".into(), step_up.into()])
    }
}

fn scope_of(challenge: &str) -> Option<&str> {
    challenge
        .split("scope=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
}

#[tokio::test]
async fn with_the_facade_challenges_name_the_scopes_of_the_server_the_client_asks() {
    let entra_token = "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    // Mode facade: Warden is the only server, so always Warden's scopes.
    let auth = offline_authenticator(|_| {}).await;
    let _facade = Facade::start(&auth, false, Some("mfa"));
    for header in [None, Some(entra_token), Some("Bearer wdn_at_x.y")] {
        for error in [AuthError::Missing("none"), AuthError::Expired] {
            assert_eq!(
                scope_of(&auth.challenge(&error, header, META)),
                Some("mcp"),
                "{header:?} {error:?}"
            );
        }
    }
    let document = auth.protected_resource_metadata("https://warden.example.com/mcp");
    assert_eq!(
        document["authorization_servers"],
        json!(["https://warden.example.com"])
    );
    assert_eq!(document["scopes_supported"], json!(["mcp", "mfa"]));

    // Mode both: a client that brought an Entra token renews it at Entra,
    // with Entra's scopes; the others ask Warden, the first server.
    let auth = offline_authenticator(|_| {}).await;
    let _facade = Facade::start(&auth, true, None);
    let challenge =
        |header| scope_of(&auth.challenge(&AuthError::Expired, header, META)).map(str::to_owned);
    assert_eq!(
        challenge(Some(entra_token)).as_deref(),
        Some("api://warden/access_as_user")
    );
    assert_eq!(
        scope_of(&auth.challenge(
            &AuthError::InsufficientScope("x".into()),
            Some(entra_token),
            META
        )),
        Some("api://warden/access_as_user")
    );
    assert_eq!(challenge(Some("bearer wdn_at_x.y")).as_deref(), Some("mcp"));
    assert_eq!(challenge(None).as_deref(), Some("mcp"));
    assert_eq!(challenge(Some("Basic eA==")).as_deref(), Some("mcp"));
    let document = auth.protected_resource_metadata("https://warden.example.com/mcp");
    assert_eq!(
        document["authorization_servers"][0],
        "https://warden.example.com"
    );
    assert_eq!(
        document["authorization_servers"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        document["scopes_supported"],
        json!(["mcp"]),
        "no step-up offered"
    );
}

#[tokio::test]
async fn a_facade_caller_steps_up_through_its_grant() {
    let auth = offline_authenticator(|_| {}).await;
    let _facade = Facade::start(&auth, false, Some("mfa"));
    let mut principal = Principal::anonymous(None);
    principal.grant = Some("g1".into());
    // Even if Entra's token said cp1, the client never talks to Entra.
    principal.client_capabilities.insert("cp1".into());
    assert_eq!(
        auth.take_step_up(&principal).await,
        None,
        "nothing wanted yet"
    );

    let StepUp::Reauthorize { message } = auth.step_up_mfa(&principal, META).await else {
        panic!("a facade caller is asked through its grant");
    };
    assert!(
        message.contains("authentication context c1")
            && message.contains("sign in again with MFA (scope \"mfa\") at its next request"),
        "{message}"
    );
    // The next request is refused with MCP's step-up challenge, once.
    let refusal = auth
        .take_step_up(&principal)
        .await
        .expect("the step-up challenge");
    assert_eq!(
        refusal,
        AuthError::StepUpRequired(vec!["mcp".into(), "mfa".into()])
    );
    assert_eq!((refusal.status(), refusal.reason()), (403, "step_up"));
    let challenge = auth.challenge(&refusal, Some("Bearer wdn_at_g1.x"), META);
    assert!(
        challenge.starts_with(&format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp mfa\", resource_metadata=\"{META}\", \
             error_description=\""
        )),
        "{challenge}"
    );
    assert!(http::HeaderValue::from_str(&challenge).is_ok());
    assert_eq!(
        auth.take_step_up(&principal).await,
        None,
        "the mark is taken once"
    );
    // While the step-up is awaited, another denial says so and marks nothing.
    let StepUp::Reauthorize { message } = auth.step_up_mfa(&principal, META).await else {
        panic!("still through the grant");
    };
    assert!(message.contains("has asked your MCP client"), "{message}");
    assert_eq!(auth.take_step_up(&principal).await, None);

    // A caller with an Entra token has no grant to mark.
    let mut entra = principal.clone();
    entra.grant = None;
    assert!(matches!(
        auth.step_up_mfa(&entra, META).await,
        StepUp::Challenge { .. }
    ));
    assert_eq!(auth.take_step_up(&entra).await, None);
    // Another context than the MFA one: a tool error, never a claims
    // challenge, for a facade caller.
    let StepUp::ToolError { message } = auth.step_up(&principal, "c7", META) else {
        panic!("no claims challenge through the facade");
    };
    assert!(
        message.contains("context c7") && !message.contains("claims"),
        "{message}"
    );

    // A facade that offers no step-up: a tool error asking for MFA.
    let auth = offline_authenticator(|_| {}).await;
    let _facade = Facade::start(&auth, false, None);
    let StepUp::ToolError { message } = auth.step_up_mfa(&principal, META).await else {
        panic!("no step-up offered");
    };
    assert!(
        message.contains("Sign in again with MFA and retry."),
        "{message}"
    );
    assert_eq!(auth.take_step_up(&principal).await, None);
}

#[tokio::test]
async fn dev_issuer_key_file_is_private_and_reused() {
    let (issuer, _dir) = issuer_in_tempdir().await;
    let created = shared_key();
    assert_eq!(created.mode, 0o600);
    assert!(created.pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    // Loading the same file gives the same key id.
    assert_eq!(issuer.kid(), created.kid);
    assert_eq!(issuer.kid().len(), 16);
    let jwks = issuer.jwks();
    assert_eq!(jwks["keys"][0]["kty"], json!("RSA"));
    assert_eq!(jwks["keys"][0]["use"], json!("sig"));
    assert_eq!(jwks["keys"][0]["alg"], json!("RS256"));
    assert_eq!(jwks["keys"][0]["e"], json!("AQAB"));
    assert_eq!(jwks["keys"][0]["kid"], json!(issuer.kid()));
    assert!(matches!(
        issuer.mint(&TokenOptions::default()),
        Err(dev::DevError::NoBaseUrl)
    ));
    // A damaged key file is an error, not a silent new key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let result = tokio::task::spawn_blocking(move || {
        std::fs::write(path.join(DEV_KEY_FILE), "not a key").unwrap();
        DevIssuer::load_or_create(&path)
    })
    .await
    .unwrap();
    assert!(matches!(result, Err(dev::DevError::BadKey { .. })));
}

#[tokio::test]
async fn dev_issuer_serves_entra_shaped_discovery() {
    let h = harness().await;
    let client = reqwest::Client::new();
    let discovery: Value = client
        .get(format!(
            "{}/{DEV_TENANT}/v2.0/.well-known/openid-configuration",
            h.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = &h.base_url;
    assert_eq!(
        discovery["issuer"],
        json!(format!("{base}/{DEV_TENANT}/v2.0"))
    );
    assert_eq!(
        discovery["jwks_uri"],
        json!(format!("{base}/{DEV_TENANT}/discovery/v2.0/keys"))
    );
    assert_eq!(
        discovery["token_endpoint"],
        json!(format!("{base}/{DEV_TENANT}/oauth2/v2.0/token"))
    );
    assert_eq!(
        discovery["authorization_endpoint"],
        json!(format!("{base}/{DEV_TENANT}/oauth2/v2.0/authorize"))
    );
    let other = client
        .get(format!(
            "{base}/99999999-8888-4777-8666-555555555555/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), reqwest::StatusCode::NOT_FOUND);
}

#[test]
fn auth_error_reasons_and_statuses() {
    let cases: Vec<(AuthError, &str, u16)> = vec![
        (AuthError::Missing("x"), "missing", 401),
        (AuthError::Malformed("x".into()), "malformed", 401),
        (AuthError::Oversized { size: 2, limit: 1 }, "oversized", 401),
        (AuthError::BadAlg("HS256".into()), "bad_alg", 401),
        (AuthError::MissingKid, "missing_kid", 401),
        (AuthError::UnknownKid("k".into()), "unknown_kid", 401),
        (AuthError::BadSignature, "bad_signature", 401),
        (AuthError::Expired, "expired", 401),
        (AuthError::NotYetValid, "not_yet_valid", 401),
        (AuthError::BadIssuer("i".into()), "bad_issuer", 401),
        (AuthError::BadTenant("t".into()), "bad_tenant", 401),
        (AuthError::BadAudience("a".into()), "bad_audience", 401),
        (
            AuthError::ClientNotAllowed("c".into()),
            "client_not_allowed",
            403,
        ),
        (
            AuthError::InsufficientScope("s".into()),
            "insufficient_scope",
            403,
        ),
        (AuthError::GroupsOverage, "groups_overage", 403),
        (
            AuthError::KeysUnavailable("k".into()),
            "keys_unavailable",
            503,
        ),
    ];
    for (error, reason, status) in cases {
        assert_eq!(
            (error.reason(), error.status()),
            (reason, status),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_verified_token_is_served_from_the_cache_and_a_forged_twin_is_not() {
    let h = harness().await;
    let token = h.mint(TokenOptions::default());
    let first = h.check(&token).await.unwrap();
    let again = h.check(&token).await.unwrap();
    assert_eq!(again, first);
    // The same claims and header under another signature: other bytes,
    // checked in full, refused (and not cached: refused again).
    let (head, rest) = token.split_once('.').unwrap();
    let (body, _) = rest.split_once('.').unwrap();
    let forged = format!("{head}.{body}.{}", b64url(&[7u8; 256]));
    assert_eq!(h.reason(&forged).await, ("bad_signature", 401));
    assert_eq!(h.reason(&forged).await, ("bad_signature", 401));
    // The genuine token is still served.
    assert_eq!(h.check(&token).await.unwrap(), first);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_the_clock_passes_its_exp() {
    // No leeway, so that `exp` is the end for the uncached check too.
    let h = harness_with(|c| c.clock_skew = Duration::ZERO).await;
    let exp = now() + 2;
    let token = h.mint(TokenOptions {
        extra: extra(json!({ "iat": now(), "nbf": now(), "exp": exp })),
        ..TokenOptions::default()
    });
    h.check(&token).await.unwrap();
    h.check(&token).await.unwrap();
    // Past it (a token is still valid in the second of its `exp`).
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.reason(&token).await, ("expired", 401));
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_is_retired() {
    let h = harness().await;
    let old_token = h.mint(TokenOptions::default());
    let old_kid = h.issuer.kid();
    h.check(&old_token).await.unwrap();
    let mut issuer = h.issuer.clone();
    tokio::task::spawn_blocking(move || {
        issuer.rotate().unwrap();
        assert!(issuer.retire(&old_kid));
    })
    .await
    .unwrap();
    h.auth.refresh_keys().await;
    assert_eq!(h.reason(&old_token).await, ("unknown_kid", 401));
    h.check(&h.mint(TokenOptions::default())).await.unwrap();
}
