//! The token endpoint of the dev issuer, `POST /{tenant}/oauth2/v2.0/token`:
//! Entra's grants for the confidential client
//! [`DEV_CONFIDENTIAL_CLIENT`], and the client-credentials grant for the
//! Azure MCP Server's [`DEV_AZMCP_CLIENT`] (its own secret; it has no
//! certificates, and no codes or refresh tokens are ever issued to it).
//!
//! The request is `application/x-www-form-urlencoded` (anything else has
//! no parameters, as far as Entra is concerned; a repeated parameter is
//! AADSTS9000411). The client authenticates with its secret, in the body
//! (`client_id`, `client_secret`: `client_secret_post`) or as HTTP Basic
//! (`client_secret_basic`, RFC 6749 §2.3.1), or with a client assertion
//! signed by one of its registered certificates
//! ([`DevIssuer::add_client_certificate`](super::DevIssuer::add_client_certificate);
//! `private_key_jwt`). No secret nor assertion 401 `invalid_client`
//! AADSTS7000218; unknown client 400 `unauthorized_client` AADSTS700016;
//! wrong secret 401 `invalid_client` AADSTS7000215.
//!
//! # Client assertions
//!
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//! (absent: AADSTS900144) and `client_assertion`: a JWT signed PS256 or
//! RS256 whose header's `x5t#S256` names a registered certificate, checked
//! as Entra checks it, each refusal 401 `invalid_client`:
//!
//! * AADSTS700027 (signature validation failed): not a JWT, another
//!   algorithm, no `x5t#S256`, a certificate that is not registered (a
//!   federated token, which the dev issuer has no federation policy for,
//!   ends here too), or a signature its key does not verify;
//! * AADSTS700024 (not within its valid time range): `exp` passed, or
//!   `nbf` still ahead, beyond five minutes of clock skew;
//! * AADSTS700023 (audience does not match): `aud` is not this token
//!   endpoint, `{base}/{tenant}/oauth2/v2.0/token`;
//! * AADSTS700021 (application identifier does not match): `iss` or `sub`
//!   is not the `client_id`;
//! * AADSTS50012 (authentication failed): no `exp` or `jti`, or a `jti`
//!   already presented (an assertion is single use).
//!
//! Tokens of a client that authenticated with a certificate carry
//! `azpacr`/`appidacr = "2"` (a secret: `"1"`).
//!
//! * `client_credentials`: `scope = {resource}/.default`; an app-only
//!   token for the resource (see [`DevIssuer::router`](super::DevIssuer::router)).
//! * `authorization_code`: `code`, `redirect_uri` (the authorization
//!   request's), `code_verifier` (when the request had a challenge),
//!   optional `scope` (one resource, within what was consented) and
//!   `claims`. The code is single use (a second redemption is
//!   `invalid_grant` AADSTS54005), lives ten minutes (AADSTS70008), and is
//!   bound to the client (AADSTS70000), the redirect URI (AADSTS500112)
//!   and the PKCE challenge (a missing verifier AADSTS50148, a wrong one
//!   AADSTS501481; a verifier for a code without a challenge is refused
//!   too). Answer: `token_type`, `scope`, `expires_in`, `ext_expires_in`,
//!   `access_token`; `id_token` when the sign-in asked for `openid` (with
//!   the authorization request's `nonce`); `refresh_token` when it asked
//!   for `offline_access`.
//! * `refresh_token`: `refresh_token`, optional `scope` (any resource
//!   consented at sign-in: Entra's refresh tokens are not bound to one)
//!   and `claims`. The user is looked up again: a disabled account is
//!   `invalid_grant` AADSTS50057, a removed one AADSTS50034. The answer is
//!   the same shape with a new refresh token; the one used stays valid, as
//!   in Entra. An unknown token is `invalid_grant` AADSTS9002313.
//!
//! Both user grants refuse `resource` (`invalid_target` AADSTS9010010),
//! scopes not consented at sign-in (`invalid_grant` AADSTS65001), and a
//! `claims` request for an authentication context the sign-in did not
//! satisfy (`invalid_grant` AADSTS50076: sign in again with the `claims`
//! parameter on the authorization request).
//!
//! # Tokens for users
//!
//! The access token is for the first resource of the scope (Microsoft
//! Graph when only OpenID Connect scopes were asked for), in the format
//! [`DevIssuer::mint`](super::DevIssuer::mint) makes: v2 for
//! [`DEV_AUDIENCE`] (the tokens Warden validates), v1 for other resources.
//! `scp` holds the permissions (`.default` expanded), `azp`/`appid` the
//! client, `azpacr`/`appidacr` `"1"` (secret) or `"2"` (certificate), `roles` the user's app
//! roles (on [`DEV_AUDIENCE`] only: they are Warden's roles), `groups`,
//! `acrs` the authentication contexts the `claims` request asked for
//! (plus [`DEV_MFA_AUTH_CONTEXT`] for an MFA
//! user), `xms_cc` the client capabilities it declared. The ID token is
//! v2, `aud` = the client, a pairwise `sub`, `nonce`, the user's `roles`
//! and `groups`, and `email` with the `email` scope.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use super::authorize::unknown_client;
use super::claims_request::ClaimsRequest;
use super::entra_error::{EntraError, server_error};
use super::grants::{Grant, Redeem, pkce_s256_matches};
use super::scope::{GRAPH, Scopes};
use super::{
    DEV_AUDIENCE, DEV_AZMCP_CLIENT, DEV_AZMCP_CLIENT_NAME, DEV_AZMCP_CLIENT_SECRET_FILE,
    DEV_CONFIDENTIAL_CLIENT, DEV_CONFIDENTIAL_CLIENT_NAME, DEV_MFA_AUTH_CONTEXT, DEV_TENANT,
    DEV_TOKEN_LIFETIME_SECS, DevError, DevIssuer, DevUser, RouterState, TokenOptions, TokenVersion,
    derived_guid, service_principal_id,
};

/// A failed token request.
enum Failure {
    Entra(EntraError),
    /// The issuer's own failure (500).
    Server(String),
}

impl From<EntraError> for Failure {
    fn from(error: EntraError) -> Self {
        Self::Entra(error)
    }
}

type Answer = Result<Value, Failure>;

/// The form's parameters; empty values count as absent.
struct Params(HashMap<String, String>);

impl Params {
    /// The body as a form, or no parameters at all when it is not one.
    /// A repeated parameter is refused.
    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, EntraError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let mut values = HashMap::new();
        if is_form {
            for (name, value) in url::form_urlencoded::parse(body) {
                if value.is_empty() {
                    continue;
                }
                if values
                    .insert(name.to_string(), value.into_owned())
                    .is_some()
                {
                    return Err(EntraError::duplicated(&name));
                }
            }
        }
        Ok(Self(values))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&str, EntraError> {
        self.get(name).ok_or_else(|| EntraError::missing(name))
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(super) async fn token_endpoint(
    State(state): State<RouterState>,
    UrlPath(tenant): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match answer(&state, &tenant, &headers, &body).await {
        Ok(body) => (
            [
                (header::CACHE_CONTROL, "no-store, no-cache"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(body),
        )
            .into_response(),
        Err(Failure::Entra(error)) => error.json(&state.base_url),
        Err(Failure::Server(message)) => server_error(&message),
    }
}

async fn answer(state: &RouterState, tenant: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    if tenant != DEV_TENANT {
        return Err(EntraError::new(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud."
            ),
        )
        .into());
    }
    let params = Params::parse(headers, body)?;
    match params.require("grant_type")? {
        "client_credentials" => client_credentials(state, headers, &params).await,
        "authorization_code" => authorization_code(state, headers, &params).await,
        "refresh_token" => refresh_token(state, headers, &params).await,
        other => Err(EntraError::new(
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{other}'. The Warden dev issuer \
                 supports 'client_credentials', 'authorization_code' and 'refresh_token'."
            ),
        )
        .into()),
    }
}

/// `client_assertion_type` of a JWT client assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on a client assertion's `exp` and `nbf`.
const ASSERTION_SKEW_SECS: u64 = 300;

/// How the client authenticated: `azpacr` / `appidacr` of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAcr {
    /// A client secret: `"1"`.
    Secret,
    /// A certificate (a signed client assertion): `"2"`.
    Certificate,
}

impl ClientAcr {
    fn claim(self) -> &'static str {
        match self {
            ClientAcr::Secret => "1",
            ClientAcr::Certificate => "2",
        }
    }
}

/// The dev tenant's confidential clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    /// [`DEV_CONFIDENTIAL_CLIENT`]: Warden's own identity; signs users in
    /// too, and may authenticate with a registered certificate.
    Warden,
    /// [`DEV_AZMCP_CLIENT`]: the Azure MCP Server's service principal;
    /// client credentials with its secret only.
    AzureMcp,
}

impl App {
    fn of(client_id: &str) -> Option<App> {
        if client_id.eq_ignore_ascii_case(DEV_CONFIDENTIAL_CLIENT) {
            Some(App::Warden)
        } else if client_id.eq_ignore_ascii_case(DEV_AZMCP_CLIENT) {
            Some(App::AzureMcp)
        } else {
            None
        }
    }

    fn id(self) -> &'static str {
        match self {
            App::Warden => DEV_CONFIDENTIAL_CLIENT,
            App::AzureMcp => DEV_AZMCP_CLIENT,
        }
    }

    fn display_name(self) -> &'static str {
        match self {
            App::Warden => DEV_CONFIDENTIAL_CLIENT_NAME,
            App::AzureMcp => DEV_AZMCP_CLIENT_NAME,
        }
    }

    /// Its client secret (blocking: file I/O).
    fn secret(self, issuer: &DevIssuer) -> Result<String, DevError> {
        match self {
            App::Warden => issuer.client_secret(),
            App::AzureMcp => issuer.secret_in(DEV_AZMCP_CLIENT_SECRET_FILE),
        }
    }
}

/// How the client says who it is.
struct ClientAuth {
    client_id: String,
    secret: Option<String>,
    /// `client_assertion`.
    assertion: Option<String>,
    /// `client_assertion_type`.
    assertion_type: Option<String>,
}

impl ClientAuth {
    /// From the body and the `Authorization: Basic` header; no client id
    /// at all is AADSTS900144.
    fn of(headers: &HeaderMap, params: &Params) -> Result<Self, EntraError> {
        let basic = basic_credentials(headers)?;
        let body_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        let assertion = params.get("client_assertion").map(str::to_owned);
        let assertion_type = params.get("client_assertion_type").map(str::to_owned);
        match basic {
            Some((id, secret)) => {
                if body_secret.is_some() || assertion.is_some() {
                    return Err(EntraError::malformed(
                        "The client authenticated with more than one method (HTTP Basic and \
                         the request body).",
                    ));
                }
                if body_id.is_some_and(|b| b != id) {
                    return Err(EntraError::malformed(
                        "The client_id of the body is not the one of the Authorization header.",
                    ));
                }
                Ok(Self {
                    client_id: id,
                    secret: Some(secret),
                    assertion: None,
                    assertion_type: None,
                })
            }
            None => {
                if body_secret.is_some() && assertion.is_some() {
                    return Err(EntraError::malformed(
                        "The client authenticated with more than one method (client_secret and \
                         client_assertion).",
                    ));
                }
                Ok(Self {
                    client_id: body_id
                        .ok_or_else(|| EntraError::missing("client_id"))?
                        .to_owned(),
                    secret: body_secret.map(str::to_owned),
                    assertion,
                    assertion_type,
                })
            }
        }
    }

    /// Checks the secret, or the client assertion, of a registered client;
    /// which client it is and how it authenticated.
    async fn verify(&self, state: &RouterState) -> Result<(ClientAcr, App), Failure> {
        if self.secret.is_none() && self.assertion.is_none() {
            return Err(EntraError::new(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or \
                 'client_secret'.",
            )
            .with_status(StatusCode::UNAUTHORIZED)
            .into());
        }
        let Some(app) = App::of(&self.client_id) else {
            return Err(unknown_client(&self.client_id).into());
        };
        let Some(secret) = &self.secret else {
            if app != App::Warden {
                return Err(EntraError::new(
                    "invalid_client",
                    700027,
                    format!(
                        "Client assertion failed signature validation. [Reason - The key was \
                         not found: application '{}' has no certificate credentials; \
                         authenticate with its client secret.]",
                        app.id()
                    ),
                )
                .with_status(StatusCode::UNAUTHORIZED)
                .into());
            }
            let assertion = self.assertion.as_deref().unwrap_or_default();
            verify_assertion(
                state,
                &self.client_id,
                self.assertion_type.as_deref(),
                assertion,
            )?;
            return Ok((ClientAcr::Certificate, app));
        };
        let issuer = state.issuer.clone();
        let expected = match tokio::task::spawn_blocking(move || app.secret(&issuer)).await {
            Ok(Ok(secret)) => secret,
            Ok(Err(e)) => return Err(Failure::Server(e.to_string())),
            Err(e) => return Err(Failure::Server(e.to_string())),
        };
        if !bool::from(secret.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(EntraError::new(
                "invalid_client",
                7000215,
                format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request \
                     is the client secret value, not the client secret ID, for a secret added to \
                     app '{}'.",
                    app.id()
                ),
            )
            .with_status(StatusCode::UNAUTHORIZED)
            .into());
        }
        Ok((ClientAcr::Secret, app))
    }
}

/// Checks a client assertion of `client_id` (see the module
/// documentation): the certificate it names is registered and verifies
/// it, it is within its time range, addressed to this token endpoint,
/// issued by and about the client, and presented for the first time.
fn verify_assertion(
    state: &RouterState,
    client_id: &str,
    assertion_type: Option<&str>,
    assertion: &str,
) -> Result<(), EntraError> {
    match assertion_type {
        None => return Err(EntraError::missing("client_assertion_type")),
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(EntraError::malformed(&format!(
                "The client_assertion_type '{other}' is not supported; use '{JWT_BEARER}'."
            )));
        }
    }
    let refuse = |code: u32, message: String| {
        EntraError::new("invalid_client", code, message).with_status(StatusCode::UNAUTHORIZED)
    };
    let signature = |reason: &str| {
        refuse(
            700027,
            format!("Client assertion failed signature validation. [Reason - {reason}]"),
        )
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| signature("The assertion is not a signed JWT; no key can be identified."))?;
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Err(signature(&format!(
            "The algorithm {:?} is not accepted; sign with PS256 or RS256.",
            header.alg
        )));
    }
    let Some(thumbprint) = header.x5t_s256.as_deref() else {
        return Err(signature(
            "The key was not found: the header has no x5t#S256 naming a certificate of the \
             application.",
        ));
    };
    let Some(key) = state
        .issuer
        .read_directory()
        .client_key(thumbprint)
        .cloned()
    else {
        return Err(signature(&format!(
            "The key was not found. Thumbprint of key used by client: '{thumbprint}'. \
             Register the certificate with the application."
        )));
    };
    let decoding = DecodingKey::from_rsa_raw_components(
        &key.public.n().to_bytes_be(),
        &key.public.e().to_bytes_be(),
    );
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims = jsonwebtoken::decode::<Map<String, Value>>(assertion, &decoding, &validation)
        .map_err(|_| {
            signature(&format!(
                "The signature does not verify with the key of certificate '{thumbprint}'."
            ))
        })?
        .claims;

    let failed = |reason: &str| refuse(50012, format!("Authentication failed. {reason}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let time = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| secs.to_string())
    };
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| failed("The client assertion has no 'exp' claim."))?;
    let nbf = claims.get("nbf").and_then(Value::as_u64);
    let too_early = nbf.is_some_and(|nbf| nbf > now + ASSERTION_SKEW_SECS);
    if exp + ASSERTION_SKEW_SECS < now || too_early {
        return Err(refuse(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, \
                 assertion valid from {}, expiry time of assertion {}.",
                time(now),
                nbf.map(time).unwrap_or_else(|| "-".to_owned()),
                time(exp)
            ),
        ));
    }
    let endpoint = format!("{}/{DEV_TENANT}/oauth2/v2.0/token", state.base_url);
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == endpoint,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&endpoint)),
        _ => false,
    };
    if !audience_matches {
        return Err(refuse(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. The audience \
                 must be the token endpoint '{endpoint}'."
            ),
        ));
    }
    let names_client = |claim: &str| {
        claims
            .get(claim)
            .and_then(Value::as_str)
            .is_some_and(|v| v.eq_ignore_ascii_case(client_id))
    };
    if !names_client("iss") || !names_client("sub") {
        return Err(refuse(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. \
             'iss' and 'sub' must be the application (client) id."
                .to_owned(),
        ));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| failed("The client assertion has no valid 'jti' claim."))?;
    let remaining = Duration::from_secs((exp + ASSERTION_SKEW_SECS).saturating_sub(now));
    if !state
        .issuer
        .grants
        .use_assertion_once(client_id, jti, remaining)
    {
        return Err(failed(
            "The client assertion was already used: present a new one (with a new 'jti') on \
             every request.",
        ));
    }
    Ok(())
}

/// `Authorization: Basic base64(form-urlencoded id ":" form-urlencoded
/// secret)`, if sent.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, EntraError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        EntraError::new(
            "invalid_client",
            7000218,
            "The Authorization header is not HTTP Basic client credentials.",
        )
        .with_status(StatusCode::UNAUTHORIZED)
    };
    let value = value.to_str().map_err(|_| bad())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let (id, secret) = (form_decode(id), form_decode(secret));
    if id.is_empty() || secret.is_empty() {
        return Err(bad());
    }
    Ok(Some((id, secret)))
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={}", text.replace('&', "%26")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `grant_type=client_credentials` (see [`super::DevIssuer::router`]).
async fn client_credentials(state: &RouterState, headers: &HeaderMap, params: &Params) -> Answer {
    let client = ClientAuth::of(headers, params)?;
    let scope = params.require("scope")?;
    let (acr, app) = client.verify(state).await?;
    let resource = match scope.strip_suffix("/.default") {
        Some(resource) if !resource.is_empty() && !resource.contains(char::is_whitespace) => {
            resource
        }
        _ => {
            return Err(EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows \
                     must have a scope value with /.default suffixed to the resource identifier \
                     (application ID URI)."
                ),
            )
            .into());
        }
    };
    let sp_object_id = service_principal_id(app.id());
    let mut extra = Map::new();
    extra.insert("oid".into(), json!(sp_object_id));
    extra.insert("sub".into(), json!(sp_object_id));
    let version = version_for(resource);
    // How the client authenticated: `azpacr` / `appidacr`.
    extra.insert(client_acr_claim(version).into(), json!(acr.claim()));
    let options = TokenOptions {
        user: app.display_name().to_owned(),
        app: true,
        scopes: Vec::new(),
        audience: Some(resource.to_owned()),
        client_app: Some(app.id().to_owned()),
        version,
        ttl: Duration::from_secs(DEV_TOKEN_LIFETIME_SECS),
        extra,
        ..TokenOptions::default()
    };
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": DEV_TOKEN_LIFETIME_SECS,
        "ext_expires_in": DEV_TOKEN_LIFETIME_SECS,
        "access_token": mint(state, &options)?,
    }))
}

/// `grant_type=authorization_code`.
async fn authorization_code(state: &RouterState, headers: &HeaderMap, params: &Params) -> Answer {
    let client = ClientAuth::of(headers, params)?;
    let code = params.require("code")?;
    let redirect_uri = params.require("redirect_uri")?;
    let (acr, _) = client.verify(state).await?;
    let (requested, claims) = user_grant_params(params)?;
    let verifier = params.get("code_verifier");
    let redirect = url::Url::parse(redirect_uri).map(|u| u.to_string()).ok();
    let redeemed = state.issuer.grants.redeem_code(code, |code| {
        if !code.grant.client_id.eq_ignore_ascii_case(&client.client_id) {
            return Err(EntraError::new(
                "invalid_grant",
                70000,
                "The provided value for the 'code' parameter is not valid: the code was issued \
                 to another client.",
            ));
        }
        if redirect.as_deref() != Some(code.redirect_uri.as_str()) {
            return Err(EntraError::new(
                "invalid_grant",
                500112,
                format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' \
                     provided when requesting Authorization code.",
                    code.redirect_uri
                ),
            ));
        }
        match (&code.code_challenge, verifier) {
            (None, None) => {}
            (Some(challenge), Some(verifier)) if pkce_s256_matches(challenge, verifier) => {}
            (Some(_), Some(_)) => {
                return Err(EntraError::new(
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the \
                     authorization request.",
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(EntraError::new(
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the \
                     authorization request for PKCE.",
                ));
            }
        }
        consented(&code.grant, requested.as_ref(), &claims)
    });
    let code = match redeemed {
        Ok(code) => code,
        Err(Redeem::Refused(error)) => return Err(error.into()),
        Err(Redeem::AlreadyRedeemed) => {
            return Err(EntraError::new(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid \
                 code or use an existing refresh token.",
            )
            .into());
        }
        Err(Redeem::Expired) => {
            return Err(EntraError::new(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity. \
                 Send a new interactive authorization request for this user and resource.",
            )
            .into());
        }
        Err(Redeem::Unknown) => return Err(invalid_token("authorization code").into()),
    };
    let user = current_user(state, &code.grant)?;
    user_tokens(
        state,
        &code.grant,
        &user,
        requested,
        &claims,
        code.nonce.as_deref(),
        acr,
    )
}

/// `grant_type=refresh_token`.
async fn refresh_token(state: &RouterState, headers: &HeaderMap, params: &Params) -> Answer {
    let client = ClientAuth::of(headers, params)?;
    let token = params.require("refresh_token")?;
    let (acr, _) = client.verify(state).await?;
    let (requested, claims) = user_grant_params(params)?;
    let grant = match state.issuer.grants.refresh_grant(token) {
        Ok(grant) => grant,
        Err(true) => {
            return Err(EntraError::new(
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity.",
            )
            .into());
        }
        Err(false) => return Err(invalid_token("refresh token").into()),
    };
    if !grant.client_id.eq_ignore_ascii_case(&client.client_id) {
        return Err(EntraError::new(
            "invalid_grant",
            70000,
            "Provided grant is invalid or malformed: the refresh token was issued to another \
             client.",
        )
        .into());
    }
    let user = current_user(state, &grant)?;
    consented(&grant, requested.as_ref(), &claims)?;
    user_tokens(state, &grant, &user, requested, &claims, None, acr)
}

/// The `scope`, `resource` and `claims` of a user grant's token request.
fn user_grant_params(params: &Params) -> Result<(Option<Scopes>, ClaimsRequest), EntraError> {
    if params.get("resource").is_some() {
        return Err(EntraError::new(
            "invalid_target",
            9010010,
            "The resource parameter provided in the request doesn't match with the requested \
             scopes. Entra ID v2 endpoints do not accept 'resource': name the resource in \
             'scope' instead.",
        ));
    }
    let scopes = params
        .get("scope")
        .map(Scopes::parse_for_token)
        .transpose()?;
    Ok((scopes, ClaimsRequest::parse(params.get("claims"))?))
}

/// The token request asks for no more than the sign-in granted.
fn consented(
    grant: &Grant,
    requested: Option<&Scopes>,
    claims: &ClaimsRequest,
) -> Result<(), EntraError> {
    if let Some(requested) = requested
        && !grant.scopes.covers(requested)
    {
        return Err(EntraError::new(
            "invalid_grant",
            65001,
            format!(
                "The user or administrator has not consented to use the application with ID \
                 '{}' named '{DEV_CONFIDENTIAL_CLIENT_NAME}' for these scopes. Send an \
                 interactive authorization request for this user and resource.",
                grant.client_id
            ),
        ));
    }
    if let Some(missing) = claims.acrs.iter().find(|c| !grant.claims.acrs.contains(c)) {
        return Err(EntraError::new(
            "invalid_grant",
            50076,
            format!(
                "The sign-in did not satisfy authentication context '{missing}'. Send an \
                 interactive authorization request with the 'claims' parameter."
            ),
        ));
    }
    Ok(())
}

/// The grant's user as the directory has them now.
fn current_user(state: &RouterState, grant: &Grant) -> Result<DevUser, EntraError> {
    let directory = state.issuer.read_directory();
    let user = directory.user(&grant.user).ok_or_else(|| {
        EntraError::new(
            "invalid_grant",
            50034,
            format!(
                "The user account {} does not exist in the {DEV_TENANT} directory.",
                grant.user
            ),
        )
    })?;
    if user.disabled {
        return Err(EntraError::new(
            "invalid_grant",
            50057,
            format!(
                "The user account is disabled. The account '{}' has been disabled by an \
                 administrator.",
                user.user
            ),
        ));
    }
    Ok(user.clone())
}

/// An authorization code or refresh token the issuer never issued (or
/// forgot: it keeps them in memory).
fn invalid_token(what: &str) -> EntraError {
    EntraError::new(
        "invalid_grant",
        9002313,
        format!("Invalid request. Request is malformed or invalid: unknown {what}."),
    )
}

/// v2 tokens for Warden's API, v1 for every other resource (Microsoft's
/// own APIs get v1 tokens).
fn version_for(resource: &str) -> TokenVersion {
    if resource == DEV_AUDIENCE {
        TokenVersion::V2
    } else {
        TokenVersion::V1
    }
}

fn client_acr_claim(version: TokenVersion) -> &'static str {
    match version {
        TokenVersion::V2 => "azpacr",
        TokenVersion::V1 => "appidacr",
    }
}

/// The answer of a user grant. `requested` is the token request's scope
/// (else the sign-in's first resource); `acr` how the client
/// authenticated.
fn user_tokens(
    state: &RouterState,
    grant: &Grant,
    user: &DevUser,
    requested: Option<Scopes>,
    claims: &ClaimsRequest,
    nonce: Option<&str>,
    acr: ClientAcr,
) -> Answer {
    let scopes = requested.unwrap_or_else(|| grant.scopes.clone());
    let resource = scopes.token_resource().to_owned();
    // Client capabilities declared now or at sign-in.
    let mut grant = grant.clone();
    for capability in &claims.xms_cc {
        if !grant.claims.xms_cc.contains(capability) {
            grant.claims.xms_cc.push(capability.clone());
        }
    }
    let version = version_for(&resource);
    let mut permissions = scopes.granted_on(&resource);
    if resource == GRAPH {
        permissions.extend(
            grant
                .scopes
                .oidc
                .iter()
                .filter(|s| **s != "offline_access")
                .map(|s| (*s).to_owned()),
        );
    }
    let mut extra = Map::new();
    extra.insert(client_acr_claim(version).into(), json!(acr.claim()));
    if !grant.claims.xms_cc.is_empty() {
        extra.insert("xms_cc".into(), json!(grant.claims.xms_cc));
    }
    let mfa = user.mfa || grant.claims.acrs.iter().any(|c| c == DEV_MFA_AUTH_CONTEXT);
    let access = TokenOptions {
        user: user.user.clone(),
        groups: user.groups.clone(),
        roles: if resource == DEV_AUDIENCE {
            user.roles.clone()
        } else {
            Vec::new()
        },
        mfa,
        acrs: grant.claims.acrs.clone(),
        app: false,
        ttl: Duration::from_secs(DEV_TOKEN_LIFETIME_SECS),
        scopes: permissions,
        audience: Some(resource.clone()),
        version,
        client_app: Some(grant.client_id.clone()),
        extra,
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scopes.answer(&resource, &grant.scopes),
        "expires_in": DEV_TOKEN_LIFETIME_SECS,
        "ext_expires_in": DEV_TOKEN_LIFETIME_SECS,
        "access_token": mint(state, &access)?,
    });
    if grant.scopes.has("openid") {
        let mut extra = Map::new();
        // ID tokens have no `azp`; `sub` is pairwise (per user and client).
        extra.insert("azp".into(), Value::Null);
        extra.insert("azpacr".into(), Value::Null);
        extra.insert(
            "sub".into(),
            json!(derived_guid(
                "sub",
                &format!("{}|{}", user.user, grant.client_id)
            )),
        );
        if let Some(nonce) = nonce {
            extra.insert("nonce".into(), json!(nonce));
        }
        if grant.scopes.has("email") {
            extra.insert("email".into(), json!(user.user));
        }
        let id = TokenOptions {
            user: user.user.clone(),
            groups: user.groups.clone(),
            roles: user.roles.clone(),
            mfa,
            acrs: grant.claims.acrs.clone(),
            app: false,
            ttl: Duration::from_secs(3600),
            scopes: Vec::new(),
            audience: Some(grant.client_id.clone()),
            version: TokenVersion::V2,
            client_app: Some(grant.client_id.clone()),
            extra,
        };
        body["id_token"] = json!(mint(state, &id)?);
    }
    if grant.scopes.has("offline_access") {
        body["refresh_token"] = json!(state.issuer.grants.issue_refresh_token(grant));
    }
    Ok(body)
}

/// Mints with the router's base URL as the issuer's, whatever
/// `set_base_url` said.
fn mint(state: &RouterState, options: &TokenOptions) -> Result<String, Failure> {
    let mut issuer = state.issuer.clone();
    issuer.set_base_url(&state.base_url);
    issuer
        .mint(options)
        .map_err(|e| Failure::Server(e.to_string()))
}

#[cfg(test)]
mod tests;
