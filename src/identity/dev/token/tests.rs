//! The user grants of the token endpoint over HTTP, their tokens checked
//! by the production [`Authenticator`].

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::super::test_support::{
    Pkce, Served, assert_entra_error, client_secret, form, payload, post_token, redeem, refresh,
    serve_with_sign_in, sign_in,
};
use super::super::{DEV_AUDIENCE, DEV_CONFIDENTIAL_CLIENT, DEV_MFA_AUTH_CONTEXT, DEV_TENANT};
use crate::identity::{Authenticator, Principal, PrincipalKind, is_guid};

const SCOPE: &str = "api://warden-dev/access_as_user openid profile offline_access";

async fn authenticator(served: &Served) -> Arc<Authenticator> {
    let auth = Authenticator::start(
        served.issuer.identity_config(&served.base_url),
        reqwest::Client::new(),
    );
    auth.refresh_keys().await;
    auth
}

async fn principal(auth: &Authenticator, token: &serde_json::Value) -> Principal {
    let bearer = format!("Bearer {}", token.as_str().expect("a token"));
    auth.authenticate(Some(&bearer), None)
        .await
        .expect("the production validator accepts the token")
}

/// A code for `persona` with PKCE, redeemed.
async fn tokens(
    served: &Served,
    persona: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let pkce = Pkce::new();
    let code = sign_in(served, persona, scope, Some(&pkce), extra).await;
    let (status, body) = redeem(served, &code, Some(&pkce), &[]).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    body
}

#[tokio::test]
async fn authorization_code_with_pkce_gives_tokens_the_authenticator_accepts() {
    let served = serve_with_sign_in().await;
    let auth = authenticator(&served).await;
    let body = tokens(&served, "developer", SCOPE, &[("nonce", "nonce-123")]).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert_eq!(
        body["scope"],
        "api://warden-dev/access_as_user openid profile offline_access"
    );
    assert!(body["refresh_token"].as_str().unwrap().len() >= 43);

    let claims = payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], DEV_AUDIENCE);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(
        claims["iss"],
        format!("{}/{DEV_TENANT}/v2.0", served.base_url)
    );
    assert_eq!(claims["scp"], "access_as_user");
    assert_eq!(claims["azp"], DEV_CONFIDENTIAL_CLIENT);
    assert_eq!(claims["azpacr"], "1");
    assert_eq!(claims["roles"], json!(["Developer"]));
    assert!(
        !claims.contains_key("acrs"),
        "no MFA, no step-up: {claims:?}"
    );

    let developer = principal(&auth, &body["access_token"]).await;
    assert_eq!(developer.kind, PrincipalKind::User);
    assert_eq!(developer.tid, DEV_TENANT);
    assert_eq!(developer.display_name, "dana.developer@contoso.dev");
    assert!(developer.roles.contains("Developer"));
    assert!(developer.scopes.contains("access_as_user"));
    assert_eq!(
        developer.client_app.as_deref(),
        Some(DEV_CONFIDENTIAL_CLIENT)
    );
    assert!(!developer.mfa);

    // The ID token: for the client, with the nonce, a pairwise subject.
    let id = payload(body["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], DEV_CONFIDENTIAL_CLIENT);
    assert_eq!(id["iss"], claims["iss"]);
    assert_eq!(id["nonce"], "nonce-123");
    assert_eq!(id["oid"], claims["oid"]);
    assert_eq!(id["preferred_username"], "dana.developer@contoso.dev");
    assert_eq!(id["roles"], json!(["Developer"]));
    assert_ne!(id["sub"], claims["sub"]);
    assert!(is_guid(id["sub"].as_str().unwrap()));
    for absent in ["azp", "scp", "email"] {
        assert!(!id.contains_key(absent), "{absent} in {id:?}");
    }

    // A persona that signs in with MFA, and one in groups.
    let manager = principal(
        &auth,
        &tokens(&served, "security-manager", SCOPE, &[]).await["access_token"],
    )
    .await;
    assert!(manager.mfa);
    assert!(manager.acrs.contains(DEV_MFA_AUTH_CONTEXT));
    assert!(manager.roles.contains("SecurityManager"));
    let auditor = principal(
        &auth,
        &tokens(&served, "auditor", SCOPE, &[]).await["access_token"],
    )
    .await;
    assert_eq!(
        auditor.roles.iter().collect::<Vec<_>>(),
        ["Auditor", "Reader"]
    );
    assert!(auditor.groups.contains("auditors"));
}

#[tokio::test]
async fn id_tokens_need_openid_and_refresh_tokens_offline_access() {
    let served = serve_with_sign_in().await;
    let body = tokens(&served, "developer", "api://warden-dev/access_as_user", &[]).await;
    assert!(body["access_token"].is_string());
    assert!(body.get("id_token").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["scope"], "api://warden-dev/access_as_user");

    let body = tokens(&served, "developer", "openid email", &[]).await;
    assert!(body.get("refresh_token").is_none(), "{body}");
    let id = payload(body["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "dana.developer@contoso.dev");
    assert!(!id.contains_key("nonce"));
    // Only sign-in scopes: the access token is Microsoft Graph's (v1, no
    // Warden roles).
    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://graph.microsoft.com");
    assert_eq!(access["ver"], "1.0");
    assert_eq!(access["scp"], "User.Read openid email");
    assert!(!access.contains_key("roles"));
    assert_eq!(body["scope"], "User.Read openid email");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_stays_valid() {
    let served = serve_with_sign_in().await;
    let auth = authenticator(&served).await;
    let first = tokens(&served, "developer", SCOPE, &[("nonce", "n")]).await;
    let old = first["refresh_token"].as_str().unwrap();

    let (status, second) = refresh(&served, old, &[]).await;
    assert_eq!(status.as_u16(), 200, "{second}");
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scope"], first["scope"]);
    let principal = principal(&auth, &second["access_token"]).await;
    assert!(principal.roles.contains("Developer"));
    // A refreshed ID token has no nonce.
    let id = payload(second["id_token"].as_str().unwrap());
    assert!(!id.contains_key("nonce"));
    assert_eq!(id["aud"], DEV_CONFIDENTIAL_CLIENT);

    // Like Entra, the old one was not revoked; the new one works too.
    let (status, third) = refresh(&served, old, &[]).await;
    assert_eq!(status.as_u16(), 200, "{third}");
    let (status, _) = refresh(&served, new, &[]).await;
    assert_eq!(status.as_u16(), 200);

    // Refresh tokens are not bound to one resource: any consented at sign-in.
    let pkce = Pkce::new();
    let code = sign_in(
        &served,
        "developer",
        "api://warden-dev/access_as_user https://management.azure.com/user_impersonation offline_access",
        Some(&pkce),
        &[],
    )
    .await;
    let (_, body) = redeem(&served, &code, Some(&pkce), &[]).await;
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["aud"],
        DEV_AUDIENCE
    );
    let rt = body["refresh_token"].as_str().unwrap();
    let (status, arm) = refresh(
        &served,
        rt,
        &[(
            "scope",
            "https://management.azure.com/.default offline_access",
        )],
    )
    .await;
    assert_eq!(status.as_u16(), 200, "{arm}");
    let claims = payload(arm["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://management.azure.com");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["scp"], "user_impersonation");
    assert_eq!(claims["upn"], "dana.developer@contoso.dev");
    assert_eq!(claims["appid"], DEV_CONFIDENTIAL_CLIENT);
    assert!(
        !claims.contains_key("roles"),
        "Warden's roles only on Warden's tokens"
    );
    assert_eq!(
        arm["scope"],
        "https://management.azure.com/user_impersonation offline_access"
    );

    // What was not consented, or two resources at once, is refused.
    assert_entra_error(
        &refresh(
            &served,
            rt,
            &[("scope", "https://graph.microsoft.com/Mail.Read")],
        )
        .await,
        400,
        "invalid_grant",
        65001,
    );
    assert_entra_error(
        &refresh(
            &served,
            rt,
            &[(
                "scope",
                "api://warden-dev/access_as_user https://management.azure.com/user_impersonation",
            )],
        )
        .await,
        400,
        "invalid_scope",
        28000,
    );
    assert_entra_error(
        &refresh(&served, rt, &[("resource", "https://management.azure.com")]).await,
        400,
        "invalid_target",
        9010010,
    );
    assert_entra_error(
        &refresh(&served, "not-a-refresh-token", &[]).await,
        400,
        "invalid_grant",
        9002313,
    );
}

#[tokio::test]
async fn disabled_users_cannot_refresh_or_redeem() {
    let served = serve_with_sign_in().await;
    let body = tokens(&served, "developer", SCOPE, &[]).await;
    let rt = body["refresh_token"].as_str().unwrap();
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;

    served.issuer.set_user_enabled("developer", false).unwrap();
    assert_entra_error(
        &refresh(&served, rt, &[]).await,
        400,
        "invalid_grant",
        50057,
    );
    assert_entra_error(
        &redeem(&served, &code, Some(&pkce), &[]).await,
        400,
        "invalid_grant",
        50057,
    );

    served.issuer.set_user_enabled("developer", true).unwrap();
    let (status, refreshed) = refresh(&served, rt, &[]).await;
    assert_eq!(status.as_u16(), 200, "{refreshed}");

    // The user is looked up again: roles changed since are in the token.
    let mut developer = served
        .issuer
        .users()
        .into_iter()
        .find(|u| u.name == "developer")
        .unwrap();
    developer.roles = vec!["Operator".into()];
    served.issuer.add_user(developer).unwrap();
    let (_, refreshed) = refresh(&served, rt, &[]).await;
    assert_eq!(
        payload(refreshed["access_token"].as_str().unwrap())["roles"],
        json!(["Operator"])
    );
}

#[tokio::test]
async fn codes_are_single_use() {
    let served = serve_with_sign_in().await;
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;
    let (status, _) = redeem(&served, &code, Some(&pkce), &[]).await;
    assert_eq!(status.as_u16(), 200);
    assert_entra_error(
        &redeem(&served, &code, Some(&pkce), &[]).await,
        400,
        "invalid_grant",
        54005,
    );
    assert_entra_error(
        &redeem(&served, "never-issued", Some(&pkce), &[]).await,
        400,
        "invalid_grant",
        9002313,
    );
}

#[tokio::test]
async fn pkce_is_verified() {
    let served = serve_with_sign_in().await;
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;
    let other = Pkce::new();
    assert_entra_error(
        &redeem(&served, &code, Some(&other), &[]).await,
        400,
        "invalid_grant",
        501481,
    );
    assert_entra_error(
        &redeem(&served, &code, None, &[]).await,
        400,
        "invalid_grant",
        50148,
    );
    // The challenge itself is not the verifier.
    assert_entra_error(
        &redeem(
            &served,
            &code,
            None,
            &[("code_verifier", pkce.challenge.as_str())],
        )
        .await,
        400,
        "invalid_grant",
        501481,
    );
    // Failed attempts did not use the code up.
    let (status, body) = redeem(&served, &code, Some(&pkce), &[]).await;
    assert_eq!(status.as_u16(), 200, "{body}");

    // A verifier for a code issued without a challenge is refused too.
    let code = sign_in(&served, "developer", SCOPE, None, &[]).await;
    assert_entra_error(
        &redeem(&served, &code, Some(&pkce), &[]).await,
        400,
        "invalid_grant",
        50148,
    );
    // Without PKCE on either side (a confidential client), it works.
    let (status, _) = redeem(&served, &code, None, &[]).await;
    assert_eq!(status.as_u16(), 200);
}

#[tokio::test]
async fn codes_are_bound_to_their_redirect_uri_and_consent() {
    let served = serve_with_sign_in().await;
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;
    // A repeated parameter is refused.
    assert_entra_error(
        &redeem(
            &served,
            &code,
            Some(&pkce),
            &[("redirect_uri", "http://127.0.0.1:4712/callback")],
        )
        .await,
        400,
        "invalid_request",
        9000411,
    );
    let secret = client_secret(&served);
    let body = |redirect: &str, scope: Option<&str>| {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_secret", secret.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        if let Some(scope) = scope {
            pairs.push(("scope", scope));
        }
        form(&pairs)
    };
    let post = |body: String| post_token(&served.base_url, DEV_TENANT, body);
    assert_entra_error(
        &post(body("http://127.0.0.1:4712/callback", None)).await,
        400,
        "invalid_grant",
        500112,
    );
    assert_entra_error(
        &post(body(
            "http://127.0.0.1:4711/callback",
            Some("api://warden-dev/admin"),
        ))
        .await,
        400,
        "invalid_grant",
        65001,
    );
    let (status, answer) = post(body(
        "http://127.0.0.1:4711/callback",
        Some("api://warden-dev/.default"),
    ))
    .await;
    assert_eq!(status.as_u16(), 200, "{answer}");
    assert_eq!(
        answer["scope"],
        "api://warden-dev/access_as_user openid profile offline_access"
    );
}

#[tokio::test]
async fn clients_authenticate_with_their_secret_in_the_body_or_basic() {
    let served = serve_with_sign_in().await;
    let secret = client_secret(&served);
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;
    let request = |client_pairs: &[(&str, &str)]| {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:4711/callback"),
            ("code_verifier", pkce.verifier.as_str()),
        ];
        pairs.extend_from_slice(client_pairs);
        form(&pairs)
    };
    let post = |body: String| post_token(&served.base_url, DEV_TENANT, body);
    assert_entra_error(
        &post(request(&[("client_id", DEV_CONFIDENTIAL_CLIENT)])).await,
        401,
        "invalid_client",
        7000218,
    );
    assert_entra_error(
        &post(request(&[
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_secret", "wrong"),
        ]))
        .await,
        401,
        "invalid_client",
        7000215,
    );
    assert_entra_error(
        &post(request(&[
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", "eyJ.eyJ.sig"),
        ]))
        .await,
        401,
        "invalid_client",
        700027,
    );
    assert_entra_error(
        &post(request(&[
            ("client_id", "44444444-5555-4666-8777-888888888888"),
            ("client_secret", &secret),
        ]))
        .await,
        400,
        "unauthorized_client",
        700016,
    );

    // HTTP Basic (client_secret_basic), as the oauth2 crate sends it.
    let basic = STANDARD.encode(format!("{DEV_CONFIDENTIAL_CLIENT}:{secret}"));
    let response = reqwest::Client::new()
        .post(format!(
            "{}/{DEV_TENANT}/oauth2/v2.0/token",
            served.base_url
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(request(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn claims_step_up_is_satisfied_and_carried_in_acrs() {
    let served = serve_with_sign_in().await;
    let auth = authenticator(&served).await;
    let claims =
        r#"{"access_token":{"acrs":{"essential":true,"value":"c1"},"xms_cc":{"values":["cp1"]}}}"#;
    let body = tokens(&served, "developer", SCOPE, &[("claims", claims)]).await;
    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["acrs"], json!(["c1"]));
    assert_eq!(access["xms_cc"], json!(["cp1"]));
    let principal = principal(&auth, &body["access_token"]).await;
    assert!(principal.mfa, "c1 is the dev tenant's MFA context");
    assert!(principal.acrs.contains("c1"));
    assert!(principal.client_capabilities.contains("cp1"));
    let id = payload(body["id_token"].as_str().unwrap());
    assert_eq!(id["acrs"], json!(["c1"]));

    // Another context than the MFA one.
    let body = tokens(
        &served,
        "developer",
        SCOPE,
        &[(
            "claims",
            r#"{"access_token":{"acrs":{"essential":true,"value":"c7"}}}"#,
        )],
    )
    .await;
    let access = payload(body["access_token"].as_str().unwrap());
    assert_eq!(access["acrs"], json!(["c7"]));
    let rt = body["refresh_token"].as_str().unwrap();

    // A refresh keeps what the sign-in satisfied, and asks for a new
    // sign-in for what it did not.
    let (status, refreshed) = refresh(&served, rt, &[]).await;
    assert_eq!(status.as_u16(), 200, "{refreshed}");
    assert_eq!(
        payload(refreshed["access_token"].as_str().unwrap())["acrs"],
        json!(["c7"])
    );
    let (status, _) = refresh(
        &served,
        rt,
        &[(
            "claims",
            r#"{"access_token":{"acrs":{"essential":true,"value":"c7"}}}"#,
        )],
    )
    .await;
    assert_eq!(status.as_u16(), 200);
    assert_entra_error(
        &refresh(
            &served,
            rt,
            &[(
                "claims",
                r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#,
            )],
        )
        .await,
        400,
        "invalid_grant",
        50076,
    );
}

/// A client assertion: `claims` signed with `generated`'s key (`alg`),
/// naming its certificate in `x5t#S256`.
fn assertion(
    generated: &crate::azure::certificate::test_support::Generated,
    alg: jsonwebtoken::Algorithm,
    claims: &serde_json::Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.x5t_s256 = Some(crate::azure::certificate::thumbprint_s256(
        &generated.certificate_der,
    ));
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(generated.key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Good claims for the served issuer's token endpoint.
fn assertion_claims(served: &Served) -> serde_json::Value {
    json!({
        "aud": format!("{}/{DEV_TENANT}/oauth2/v2.0/token", served.base_url),
        "iss": DEV_CONFIDENTIAL_CLIENT,
        "sub": DEV_CONFIDENTIAL_CLIENT,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now(),
        "iat": now(),
        "exp": now() + 300,
    })
}

/// A client-credentials request authenticated by `assertion`.
fn with_assertion(assertion: &str) -> String {
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", DEV_CONFIDENTIAL_CLIENT),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", "api://warden-dev/.default"),
    ])
}

#[tokio::test]
async fn registered_certificates_authenticate_the_client_with_assertions() {
    use crate::azure::certificate::test_support::rsa;
    use jsonwebtoken::Algorithm::{PS256, RS256};

    let served = serve_with_sign_in().await;
    let generated = rsa();
    let thumbprint = served
        .issuer
        .add_client_certificate(&generated.combined_pem())
        .unwrap();
    assert_eq!(
        thumbprint,
        crate::azure::certificate::thumbprint_s256(&generated.certificate_der)
    );
    // Registering it again changes nothing.
    served
        .issuer
        .add_client_certificate(&generated.certificate_pem)
        .unwrap();
    assert_eq!(
        served.issuer.client_certificates(),
        std::slice::from_ref(&thumbprint)
    );
    let post = |body: String| post_token(&served.base_url, DEV_TENANT, body);

    // PS256 (what Entra asks for) and RS256 are accepted; the token says
    // the client used a certificate.
    for alg in [PS256, RS256] {
        let (status, body) = post(with_assertion(&assertion(
            &generated,
            alg,
            &assertion_claims(&served),
        )))
        .await;
        assert_eq!(status.as_u16(), 200, "{alg:?}: {body}");
        let claims = payload(body["access_token"].as_str().unwrap());
        assert_eq!(claims["azp"], DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(claims["azpacr"], "2");
    }

    // The authorization-code grant too.
    let pkce = Pkce::new();
    let code = sign_in(&served, "developer", SCOPE, Some(&pkce), &[]).await;
    let signed = assertion(&generated, PS256, &assertion_claims(&served));
    let (status, body) = post(form(&[
        ("grant_type", "authorization_code"),
        ("client_id", DEV_CONFIDENTIAL_CLIENT),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &signed),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:4711/callback"),
        ("code_verifier", &pkce.verifier),
    ]))
    .await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["azpacr"],
        "2"
    );
    let auth = authenticator(&served).await;
    let user = principal(&auth, &body["access_token"]).await;
    assert_eq!(user.display_name, "dana.developer@contoso.dev");

    // A secret still works beside the certificate, and says so.
    let (status, body) = refresh(&served, body["refresh_token"].as_str().unwrap(), &[]).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_eq!(
        payload(body["access_token"].as_str().unwrap())["azpacr"],
        "1"
    );

    // Removed, the certificate is unknown.
    assert!(served.issuer.remove_client_certificate(&thumbprint));
    assert!(!served.issuer.remove_client_certificate(&thumbprint));
    assert_entra_error(
        &post(with_assertion(&assertion(
            &generated,
            PS256,
            &assertion_claims(&served),
        )))
        .await,
        401,
        "invalid_client",
        700027,
    );
}

#[tokio::test]
async fn client_assertions_are_refused_as_entra_refuses_them() {
    use crate::azure::certificate::test_support::rsa;
    use jsonwebtoken::Algorithm::PS256;

    let served = serve_with_sign_in().await;
    let registered = rsa();
    served
        .issuer
        .add_client_certificate(&registered.certificate_pem)
        .unwrap();
    let post = |body: String| post_token(&served.base_url, DEV_TENANT, body);
    let changed = |name: &str, value: serde_json::Value| {
        let mut claims = assertion_claims(&served);
        claims[name] = value;
        assertion(&registered, PS256, &claims)
    };
    let without = |name: &str| {
        let mut claims = assertion_claims(&served);
        claims.as_object_mut().unwrap().remove(name);
        assertion(&registered, PS256, &claims)
    };

    // Signed by a certificate the application does not have.
    let stranger = rsa();
    let unknown = assertion(&stranger, PS256, &assertion_claims(&served));
    // Naming the registered certificate, signed with another key.
    let forged = {
        let mut header = jsonwebtoken::Header::new(PS256);
        header.x5t_s256 = Some(crate::azure::certificate::thumbprint_s256(
            &registered.certificate_der,
        ));
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(stranger.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &assertion_claims(&served), &key).unwrap()
    };
    // A federated token: a `kid`, no certificate thumbprint.
    let federated = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("k8s-key".into());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(registered.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &assertion_claims(&served), &key).unwrap()
    };
    let hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.x5t_s256 = Some(crate::azure::certificate::thumbprint_s256(
            &registered.certificate_der,
        ));
        let key = jsonwebtoken::EncodingKey::from_secret(b"guessable");
        jsonwebtoken::encode(&header, &assertion_claims(&served), &key).unwrap()
    };
    let cases: Vec<(&str, String, u32)> = vec![
        ("unregistered certificate", unknown, 700027),
        ("wrong key", forged, 700027),
        ("federated token", federated, 700027),
        ("HS256", hs256, 700027),
        ("expired", changed("exp", json!(now() - 3600)), 700024),
        ("not yet valid", changed("nbf", json!(now() + 3600)), 700024),
        (
            "wrong audience",
            changed(
                "aud",
                json!(format!(
                    "https://login.microsoftonline.com/{DEV_TENANT}/oauth2/v2.0/token"
                )),
            ),
            700023,
        ),
        ("no audience", without("aud"), 700023),
        (
            "another issuer",
            changed("iss", json!("44444444-5555-4666-8777-888888888888")),
            700021,
        ),
        (
            "another subject",
            changed("sub", json!("44444444-5555-4666-8777-888888888888")),
            700021,
        ),
        ("no exp", without("exp"), 50012),
        ("no jti", without("jti"), 50012),
    ];
    for (name, signed, code) in cases {
        let answer = post(with_assertion(&signed)).await;
        assert_eq!(answer.0.as_u16(), 401, "{name}: {}", answer.1);
        assert_eq!(answer.1["error"], "invalid_client", "{name}: {}", answer.1);
        assert_eq!(
            answer.1["error_codes"],
            json!([code]),
            "{name}: {}",
            answer.1
        );
        assert_entra_error(&answer, 401, "invalid_client", code);
        let description = answer.1["error_description"].as_str().unwrap();
        assert!(!description.contains(&signed), "{name}: assertion echoed");
    }

    // An assertion is single use: the same one again is refused.
    let once = assertion(&registered, PS256, &assertion_claims(&served));
    let (status, body) = post(with_assertion(&once)).await;
    assert_eq!(status.as_u16(), 200, "{body}");
    assert_entra_error(
        &post(with_assertion(&once)).await,
        401,
        "invalid_client",
        50012,
    );

    // Protocol mistakes.
    let good = assertion(&registered, PS256, &assertion_claims(&served));
    assert_entra_error(
        &post(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_assertion", &good),
            ("scope", "api://warden-dev/.default"),
        ]))
        .await,
        400,
        "invalid_request",
        900144,
    );
    assert_entra_error(
        &post(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &good),
            ("scope", "api://warden-dev/.default"),
        ]))
        .await,
        400,
        "invalid_request",
        9002313,
    );
    let secret = client_secret(&served);
    assert_entra_error(
        &post(form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_secret", &secret),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &good),
            ("scope", "api://warden-dev/.default"),
        ]))
        .await,
        400,
        "invalid_request",
        9002313,
    );
    // Unused so far, the good one still works.
    let (status, body) = post(with_assertion(&good)).await;
    assert_eq!(status.as_u16(), 200, "{body}");
}
