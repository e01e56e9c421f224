//! Warden's confidential-client leg toward Entra ID (v2 endpoints): the
//! facade's `/authorize` sends the user to Entra with
//! [`Entra::authorize_url`], its callback redeems Entra's code with
//! [`Entra::redeem`], and each Warden refresh refreshes the Entra grant with
//! [`Entra::refresh`].
//!
//! **Requests.** The authorization request is
//! `{authority}/{tenant}/oauth2/v2.0/authorize` with `client_id`,
//! `response_type=code`, `redirect_uri`, `response_mode=query`, `scope`,
//! `state`, `nonce`, `code_challenge` and `code_challenge_method=S256`, and
//! optionally `claims` (step-up: [`Entra::step_up_claims`]) and
//! `login_hint`. `scope` is always `oauth.entra.scope` (the delegated scope
//! of Warden's API) followed by `openid profile offline_access`, on the
//! token requests too: Entra wants a scope on every request, one resource
//! per token, `.default` never beside another scope of its resource, and no
//! `resource` parameter at all (AADSTS9010010); the facade binds its own
//! tokens to the MCP resource itself. Token requests are form posts to
//! `{authority}/{tenant}/oauth2/v2.0/token` carrying the client credential,
//! each bounded by a timeout ([`DEFAULT_TIMEOUT`],
//! [`Entra::with_timeout`]) and a size cap on the answer.
//!
//! **Client credential** ([`ClientCredential::from_config`], from the
//! `CredentialConfig` kinds of [`crate::azure::credential`]):
//!
//! * `client_secret`: the secret file is read once, when the credential is
//!   built, and sent as `client_secret` (`client_secret_post`). Its
//!   `client_id` must be `oauth.entra.client_id`: a secret belongs to one
//!   application.
//! * `client_certificate`: the certificate and its RSA private key
//!   (`certificate_file`, `private_key_file`) are read once, when the
//!   credential is built, and checked to belong together
//!   ([`crate::azure::certificate`]). Every request carries a new
//!   `client_assertion` (`private_key_jwt`, with
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`)
//!   signed PS256 with the key: header `x5t#S256`, `aud` = the token
//!   endpoint, `iss` = `sub` = `oauth.entra.client_id`, a random `jti`, five
//!   minutes of validity. Like a secret, its `client_id` must be
//!   `oauth.entra.client_id`.
//! * `workload_identity`: the federated token file (`token_file`, else
//!   `AZURE_FEDERATED_TOKEN_FILE`) is read **on every request**, since
//!   Kubernetes rotates it, and sent as `client_assertion` with
//!   `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
//!   The facade's application (`oauth.entra.client_id`) needs a federated
//!   credential that trusts the service account; it may be another
//!   application than the one `AZURE_CLIENT_ID` names.
//! * `managed_identity`, `azure_cli` and `chain` cannot act as the facade's
//!   confidential client.
//!
//! **Answers.** A token answer becomes [`EntraTokens`] (its `Debug` shows
//! no token). A refusal with Entra's JSON error is
//! [`EntraError::Refused`], keeping `error`, the description and the AADSTS
//! codes: `invalid_grant` (disabled or deleted user, revoked session,
//! expired refresh token, a Conditional Access requirement) ends the
//! facade's grant ([`EntraError::is_invalid_grant`]). Everything else (no
//! connection, timeout, 5xx, 429, `temporarily_unavailable`, an answer
//! that is not the expected JSON, an unreadable token file) is
//! [`EntraError::Unavailable`]: try again later, keep the grant.
//!
//! Nothing here logs a token, code, verifier, secret or assertion, and no
//! error text contains one: Entra's descriptions are cut short and every
//! value this request sent is replaced by `<redacted>` in them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use subtle::ConstantTimeEq as _;

use super::config::EntraUpstreamConfig;
use super::metadata::Issuer;
use super::pkce::{CodeChallenge, CodeVerifier, S256};
use crate::azure::certificate::ClientCertificate;
use crate::azure::credential::CredentialConfig;

/// Time allowed for one token request, connection to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenID Connect scopes added to the API scope on every request.
pub const OIDC_SCOPES: &str = "openid profile offline_access";

/// `client_assertion_type` of a client assertion: a certificate's signed
/// JWT or a federated (workload identity) token.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Largest token answer read (access, refresh and ID token with many
/// groups fit in a few tens of kilobytes).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Longest part of Entra's `error_description` kept in an error.
const MAX_DESCRIPTION_CHARS: usize = 600;

/// The kinds the facade can use, for messages.
const SUPPORTED_KINDS: &str =
    "kind = \"client_secret\", kind = \"client_certificate\" or kind = \"workload_identity\"";

/// A failure of the Entra leg.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntraError {
    /// The configuration or the credential cannot be used (at start-up).
    #[error("{0}")]
    Config(String),
    /// Entra answered with an OAuth error: the request was understood and
    /// refused. `invalid_grant` ends the facade's grant.
    #[error("Entra ID refused the request: {error}: {description}")]
    Refused {
        /// The OAuth `error` (`invalid_grant`, `invalid_client`, …).
        error: String,
        /// `error_description`, starting with `AADSTSnnnnn:`; shortened,
        /// and with every value the request sent redacted.
        description: String,
        /// `error_codes` (the AADSTS numbers), or the one in the
        /// description when the list is absent.
        codes: Vec<u32>,
    },
    /// No usable answer: network, timeout, 5xx, throttling, bad JSON, or
    /// the workload-identity token file could not be read. Try again
    /// later; the grant stays.
    #[error("Entra ID is unavailable: {0}")]
    Unavailable(String),
}

impl EntraError {
    /// Whether Entra refused the grant itself (`invalid_grant`): the user
    /// was disabled or deleted, the session revoked, the refresh token
    /// expired, or a policy requires a new sign-in. The facade's grant ends.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, EntraError::Refused { error, .. } if error == "invalid_grant")
    }

    /// The first AADSTS code of a refusal.
    pub fn aadsts(&self) -> Option<u32> {
        match self {
            EntraError::Refused { codes, .. } => codes.first().copied(),
            _ => None,
        }
    }
}

/// How Warden authenticates to Entra ID as a confidential client.
#[derive(Clone)]
pub struct ClientCredential {
    kind: CredentialKind,
    /// The application the credential belongs to, when known and binding
    /// (a client secret or certificate).
    client_id: Option<String>,
}

#[derive(Clone)]
enum CredentialKind {
    /// `client_secret`, read at build time.
    Secret(String),
    /// A certificate and its key, read at build time; signs a new
    /// assertion for every request.
    Certificate(Arc<ClientCertificate>),
    /// A federated token (workload identity), read on every request.
    FederatedTokenFile(PathBuf),
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            CredentialKind::Secret(_) => f
                .debug_struct("ClientCredential::ClientSecret")
                .field("client_id", &self.client_id)
                .field("secret", &"<redacted>")
                .finish(),
            CredentialKind::Certificate(certificate) => f
                .debug_struct("ClientCredential::ClientCertificate")
                .field("client_id", &self.client_id)
                .field("certificate", certificate)
                .finish(),
            CredentialKind::FederatedTokenFile(path) => f
                .debug_struct("ClientCredential::WorkloadIdentity")
                .field("token_file", path)
                .finish(),
        }
    }
}

impl ClientCredential {
    /// Builds the credential of a `CredentialConfig` (the
    /// `[azure.credential]` kinds): `client_secret` reads its secret file
    /// now, `client_certificate` its certificate and private key (blocking
    /// file I/O: call at start-up or from `spawn_blocking`);
    /// `workload_identity` resolves its token file (`token_file`, else
    /// `AZURE_FEDERATED_TOKEN_FILE`) and reads it on every request. Other
    /// kinds are refused, naming the kinds that work.
    pub fn from_config(config: &CredentialConfig) -> Result<ClientCredential, EntraError> {
        Self::from_config_with_env(config, |name| std::env::var_os(name).map(PathBuf::from))
    }

    fn from_config_with_env(
        config: &CredentialConfig,
        env: impl Fn(&str) -> Option<PathBuf>,
    ) -> Result<ClientCredential, EntraError> {
        match config {
            CredentialConfig::ClientSecret {
                client_id,
                secret_file,
                ..
            } => Ok(ClientCredential {
                kind: CredentialKind::Secret(read_secret_file(secret_file)?),
                client_id: bound_client_id(client_id),
            }),
            CredentialConfig::ClientCertificate {
                client_id,
                certificate_file,
                private_key_file,
                ..
            } => {
                let certificate =
                    ClientCertificate::load(certificate_file, private_key_file.as_deref())
                        .map_err(|e| EntraError::Config(format!("Entra client credential {e}")))?;
                Ok(ClientCredential {
                    kind: CredentialKind::Certificate(Arc::new(certificate)),
                    client_id: bound_client_id(client_id),
                })
            }
            CredentialConfig::WorkloadIdentity { token_file, .. } => {
                let path = token_file
                    .clone()
                    .filter(|p| !p.as_os_str().is_empty())
                    .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE"))
                    .filter(|p| !p.as_os_str().is_empty())
                    .ok_or_else(|| {
                        EntraError::Config(
                            "Entra client credential kind = \"workload_identity\": no token_file \
                             configured and AZURE_FEDERATED_TOKEN_FILE is not set"
                                .to_owned(),
                        )
                    })?;
                Ok(ClientCredential::federated_token_file(path))
            }
            other => Err(EntraError::Config(format!(
                "Entra client credential kind = {:?} cannot sign Warden in to Entra ID as a \
                 confidential client; the OAuth facade uses {SUPPORTED_KINDS}",
                other.kind()
            ))),
        }
    }

    /// A client secret given directly (not bound to a client id).
    pub fn secret(secret: impl Into<String>) -> ClientCredential {
        ClientCredential {
            kind: CredentialKind::Secret(secret.into()),
            client_id: None,
        }
    }

    /// A certificate credential (not bound to a client id).
    pub fn certificate(certificate: ClientCertificate) -> ClientCredential {
        ClientCredential {
            kind: CredentialKind::Certificate(Arc::new(certificate)),
            client_id: None,
        }
    }

    /// A federated token file, read on every request.
    pub fn federated_token_file(path: impl Into<PathBuf>) -> ClientCredential {
        ClientCredential {
            kind: CredentialKind::FederatedTokenFile(path.into()),
            client_id: None,
        }
    }

    /// `client_secret`, `client_certificate` or `workload_identity`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            CredentialKind::Secret(_) => "client_secret",
            CredentialKind::Certificate(_) => "client_certificate",
            CredentialKind::FederatedTokenFile(_) => "workload_identity",
        }
    }

    /// The form fields that authenticate `client_id` to the token endpoint
    /// `token_endpoint`, made or read now.
    async fn fields(
        &self,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<Vec<(&'static str, String)>, EntraError> {
        match &self.kind {
            CredentialKind::Secret(secret) => Ok(vec![("client_secret", secret.clone())]),
            CredentialKind::Certificate(certificate) => {
                let assertion = certificate
                    .assertion(client_id, token_endpoint)
                    .map_err(EntraError::Unavailable)?;
                Ok(vec![
                    ("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()),
                    ("client_assertion", assertion),
                ])
            }
            CredentialKind::FederatedTokenFile(path) => {
                let assertion = read_token_file(path).await?;
                Ok(vec![
                    ("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()),
                    ("client_assertion", assertion),
                ])
            }
        }
    }
}

/// The `client_id` of a secret or certificate credential, if set.
fn bound_client_id(client_id: &str) -> Option<String> {
    let client_id = client_id.trim();
    (!client_id.is_empty()).then(|| client_id.to_owned())
}

/// The secret in `path`, surrounding whitespace removed.
fn read_secret_file(path: &Path) -> Result<String, EntraError> {
    let fail = |what: String| {
        EntraError::Config(format!(
            "Entra client credential secret_file {}: {what}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail("the file does not exist".to_owned()),
        _ => fail(format!("cannot read it: {e}")),
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(fail("the file is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

/// The federated token in `path`, surrounding whitespace removed.
async fn read_token_file(path: &Path) -> Result<String, EntraError> {
    let fail = |what: String| {
        EntraError::Unavailable(format!(
            "workload identity token file {}: {what}",
            path.display()
        ))
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail("the file does not exist".to_owned()),
            _ => fail(format!("cannot read it: {e}")),
        })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("the file is empty".to_owned()));
    }
    Ok(token.to_owned())
}

/// Tokens from Entra's token endpoint. `Debug` shows which tokens are
/// present, the lifetime and the scope, never a token.
#[derive(Clone, PartialEq, Eq)]
pub struct EntraTokens {
    /// The access token for Warden's API (`aud` = Warden): the facade
    /// validates it with the `Authenticator` into a `Principal`, and it is
    /// the user assertion of on-behalf-of requests.
    pub access_token: String,
    /// The refresh token (Entra sends one because `offline_access` is
    /// asked for); replaced on every refresh.
    pub refresh_token: Option<String>,
    /// The ID token (OpenID Connect).
    pub id_token: Option<String>,
    /// `expires_in` of the access token.
    pub expires_in: Duration,
    /// `scope`: what was granted, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for EntraTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |present: bool| if present { "<redacted>" } else { "<none>" };
        f.debug_struct("EntraTokens")
            .field("access_token", &shown(true))
            .field("refresh_token", &shown(self.refresh_token.is_some()))
            .field("id_token", &shown(self.id_token.is_some()))
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

impl EntraTokens {
    /// Whether the ID token's `nonce` is `expected` (the one sent with
    /// [`Entra::authorize_url`]); false without an ID token or nonce. The
    /// ID token's signature is not checked: it came straight from the
    /// token endpoint over TLS (OpenID Connect Core §3.1.3.7), and the
    /// access token is what the facade validates.
    pub fn nonce_matches(&self, expected: &str) -> bool {
        let Some(nonce) = self.id_token.as_deref().and_then(id_token_nonce) else {
            return false;
        };
        bool::from(nonce.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// The `nonce` claim of a JWT, unverified.
fn id_token_nonce(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}

/// Warden as a confidential client of one Entra tenant.
pub struct Entra {
    authorize_endpoint: String,
    token_endpoint: String,
    client_id: String,
    scope: String,
    credential: ClientCredential,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entra")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Entra {
    /// The Entra leg of `config` (`[oauth.entra]`: tenant, client id, API
    /// scope, authority) with `credential`, sending requests with `http`
    /// (each bounded by [`DEFAULT_TIMEOUT`]). Refuses a configuration
    /// without tenant, client id or scope, a scope that is not one
    /// `<application id URI>/<scope>`, an authority that is not `https`
    /// (or `http` on loopback), and a client secret of another application.
    /// Give it a client that follows no redirects (Entra's token endpoint
    /// never redirects; a 3xx answer is [`EntraError::Unavailable`]) so a
    /// redirect cannot carry the credential elsewhere.
    pub fn new(
        config: &EntraUpstreamConfig,
        credential: ClientCredential,
        http: reqwest::Client,
    ) -> Result<Entra, EntraError> {
        let required = |key: &str, value: &Option<String>| -> Result<String, EntraError> {
            let value = value.as_deref().map(str::trim).unwrap_or_default();
            if value.is_empty() {
                return Err(EntraError::Config(format!(
                    "oauth.entra.{key} is required for the Entra sign-in"
                )));
            }
            if !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            {
                return Err(EntraError::Config(format!(
                    "oauth.entra.{key} {value:?} must be an id (letters, digits, '-', '.', '_')"
                )));
            }
            Ok(value.to_owned())
        };
        let tenant = required("tenant", &config.tenant)?;
        let client_id = required("client_id", &config.client_id)?;
        let api_scope = config.scope.as_deref().map(str::trim).unwrap_or_default();
        let one_api_scope = !api_scope.is_empty()
            && !api_scope.contains(|c: char| c.is_whitespace() || c.is_control())
            && !OIDC_SCOPES.split(' ').any(|s| s == api_scope)
            && api_scope
                .rsplit_once('/')
                .is_some_and(|(resource, name)| !resource.is_empty() && !name.is_empty());
        if !one_api_scope {
            return Err(EntraError::Config(format!(
                "oauth.entra.scope {api_scope:?} must be the one scope of Warden's API, \
                 <application id URI>/<scope>, e.g. \"api://warden/Mcp.Access\""
            )));
        }
        let authority = Issuer::parse(config.authority.trim_end_matches('/'))
            .map_err(|e| EntraError::Config(format!("oauth.entra.authority: {e}")))?;
        if let Some(bound) = &credential.client_id
            && !bound.eq_ignore_ascii_case(&client_id)
        {
            return Err(EntraError::Config(format!(
                "the Entra client credential (kind = {:?}) belongs to application {bound}, \
                 but oauth.entra.client_id is {client_id}: use a credential of Warden's facade \
                 application",
                credential.kind()
            )));
        }
        let base = format!("{}/{tenant}/oauth2/v2.0", authority.as_str());
        Ok(Entra {
            authorize_endpoint: format!("{base}/authorize"),
            token_endpoint: format!("{base}/token"),
            client_id,
            scope: format!("{api_scope} {OIDC_SCOPES}"),
            credential,
            http,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Entra {
        self.timeout = timeout;
        self
    }

    /// The `scope` sent on every request: the API scope, then
    /// `openid profile offline_access`.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// The URL that sends the user to Entra: `client_id`,
    /// `response_type=code`, `redirect_uri` (Warden's callback),
    /// `response_mode=query`, `scope`, `state`, `nonce`, `code_challenge`
    /// with `code_challenge_method=S256`, then `claims` (a JSON claims
    /// request, e.g. [`step_up_claims`](Self::step_up_claims)) and
    /// `login_hint` when given. Never `resource`.
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &CodeChallenge,
        nonce: &str,
        claims: Option<&str>,
        login_hint: Option<&str>,
    ) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", &self.scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", S256);
        if let Some(claims) = claims {
            query.append_pair("claims", claims);
        }
        if let Some(hint) = login_hint {
            query.append_pair("login_hint", hint);
        }
        format!("{}?{}", self.authorize_endpoint, query.finish())
    }

    /// The `claims` request that asks Entra for authentication context
    /// `acr` in the access token (step-up):
    /// `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`.
    pub fn step_up_claims(acr: &str) -> String {
        serde_json::json!({
            "access_token": { "acrs": { "essential": true, "value": acr } }
        })
        .to_string()
    }

    /// Redeems Entra's authorization `code` (grant `authorization_code`),
    /// with the `redirect_uri` of the authorization request and Warden's
    /// PKCE `verifier`.
    pub async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &CodeVerifier,
    ) -> Result<EntraTokens, EntraError> {
        self.token_request(
            "authorization_code",
            vec![
                ("code", code.to_owned()),
                ("redirect_uri", redirect_uri.to_owned()),
                ("code_verifier", verifier.expose().to_owned()),
            ],
            &[code, verifier.expose()],
        )
        .await
    }

    /// Refreshes the Entra grant (grant `refresh_token`) with the same
    /// `scope`. Entra answers with a new refresh token; the caller stores
    /// it in place of the old one.
    pub async fn refresh(&self, refresh_token: &str) -> Result<EntraTokens, EntraError> {
        self.token_request(
            "refresh_token",
            vec![("refresh_token", refresh_token.to_owned())],
            &[refresh_token],
        )
        .await
    }

    /// Posts one token request. `sent` are the request's secret values,
    /// redacted from any error text.
    async fn token_request(
        &self,
        grant_type: &'static str,
        grant_fields: Vec<(&'static str, String)>,
        sent: &[&str],
    ) -> Result<EntraTokens, EntraError> {
        let credential = self
            .credential
            .fields(&self.client_id, &self.token_endpoint)
            .await?;
        // The serializer is not `Send`: build the body before any await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", grant_type)
                .append_pair("client_id", &self.client_id);
            for (name, value) in &grant_fields {
                form.append_pair(name, value);
            }
            form.append_pair("scope", &self.scope);
            for (name, value) in &credential {
                form.append_pair(name, value);
            }
            form.finish()
        };
        let mut secrets: Vec<&str> = sent.to_vec();
        secrets.extend(credential.iter().map(|(_, v)| v.as_str()));

        let result = self.post(body).await;
        let outcome = match result {
            Ok((status, body)) => interpret(status, &body, &secrets),
            Err(message) => Err(EntraError::Unavailable(message)),
        };
        match &outcome {
            Ok(_) => tracing::debug!(grant_type, "Entra ID token request succeeded"),
            Err(EntraError::Refused { error, codes, .. }) => {
                tracing::debug!(grant_type, %error, ?codes, "Entra ID refused a token request");
            }
            Err(e) => tracing::debug!(grant_type, error = %e, "Entra ID token request failed"),
        }
        outcome
    }

    /// Sends `body`; the status and at most [`MAX_ANSWER_BYTES`] of the
    /// answer, or why there is none.
    async fn post(&self, body: String) -> Result<(u16, Vec<u8>), String> {
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                return format!(
                    "no answer from {} within {:?}",
                    self.token_endpoint, self.timeout
                );
            }
            let mut text = format!("request to {} failed", self.token_endpoint);
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        };
        let mut response = self
            .http
            .post(&self.token_endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .body(body)
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!(
                    "the answer of {} is larger than {MAX_ANSWER_BYTES} bytes",
                    self.token_endpoint
                ));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, answer))
    }
}

/// Turns a token endpoint answer into tokens or an error. Success bodies
/// hold tokens: nothing of them goes into an error.
fn interpret(status: u16, body: &[u8], secrets: &[&str]) -> Result<EntraTokens, EntraError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let Some(Value::Object(answer)) = json else {
            return Err(EntraError::Unavailable(format!(
                "the token answer (HTTP {status}) is not a JSON object"
            )));
        };
        return tokens(&answer).map_err(|missing| {
            EntraError::Unavailable(format!(
                "the token answer (HTTP {status}) has no valid {missing}"
            ))
        });
    }
    let oauth_error = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .filter(|e| is_error_code(e));
    let Some(error) = oauth_error else {
        return Err(EntraError::Unavailable(format!(
            "HTTP {status} without an OAuth error"
        )));
    };
    let json = json.as_ref().unwrap_or(&Value::Null);
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let description = scrub(description, secrets);
    let mut codes: Vec<u32> = json
        .get("error_codes")
        .and_then(Value::as_array)
        .map(|codes| {
            codes
                .iter()
                .filter_map(Value::as_u64)
                .filter_map(|c| u32::try_from(c).ok())
                .collect()
        })
        .unwrap_or_default();
    if codes.is_empty()
        && let Some(code) = description_code(&description)
    {
        codes.push(code);
    }
    let transient = status >= 500
        || status == 429
        || matches!(error, "temporarily_unavailable" | "server_error");
    if transient {
        let codes = codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(EntraError::Unavailable(format!(
            "HTTP {status}, {error}{}{codes}",
            if codes.is_empty() { "" } else { " " }
        )));
    }
    Err(EntraError::Refused {
        error: error.to_owned(),
        description,
        codes,
    })
}

/// The tokens of a success answer, or the name of what is missing.
fn tokens(answer: &serde_json::Map<String, Value>) -> Result<EntraTokens, &'static str> {
    let text = |name: &str| {
        answer
            .get(name)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let access_token = text("access_token").ok_or("access_token")?;
    if let Some(kind) = text("token_type")
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err("token_type (Bearer)");
    }
    let expires_in = match answer.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        // v1 endpoints sent numbers as strings; accept both.
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("expires_in")?;
    Ok(EntraTokens {
        access_token,
        refresh_token: text("refresh_token"),
        id_token: text("id_token"),
        expires_in: Duration::from_secs(expires_in),
        scope: text("scope").unwrap_or_default(),
    })
}

/// An OAuth error code: `%x20-21 / %x23-5B / %x5D-7E` (RFC 6749 §5.2),
/// short.
fn is_error_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// `nnnnn` of a description starting with `AADSTSnnnnn`.
fn description_code(description: &str) -> Option<u32> {
    let digits: String = description
        .strip_prefix("AADSTS")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// `text` without control characters, cut to [`MAX_DESCRIPTION_CHARS`],
/// with every sent secret replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        clean = clean.replace(secret, "<redacted>");
    }
    if clean.chars().count() > MAX_DESCRIPTION_CHARS {
        clean = clean.chars().take(MAX_DESCRIPTION_CHARS).collect();
        clean.push('…');
    }
    clean
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::azure::certificate::test_support as certificate_support;
    use crate::identity::dev::test_support::{
        Served, browser, location_params, payload, serve_with_sign_in,
    };
    use crate::identity::dev::{DEV_AUDIENCE, DEV_CONFIDENTIAL_CLIENT, DEV_SCOPE, DEV_TENANT};
    use crate::identity::{Authenticator, PrincipalKind};

    /// A loopback callback; the dev issuer has `http://127.0.0.1/callback`
    /// registered, any port.
    const CALLBACK: &str = "http://127.0.0.1:4711/callback";

    // `..default()` keeps these literals valid as `[oauth.entra]` gains
    // fields.
    #[allow(clippy::needless_update)]
    fn upstream(authority: &str) -> EntraUpstreamConfig {
        EntraUpstreamConfig {
            tenant: Some(DEV_TENANT.to_owned()),
            client_id: Some(DEV_CONFIDENTIAL_CLIENT.to_owned()),
            scope: Some(format!("{DEV_AUDIENCE}/{DEV_SCOPE}")),
            authority: authority.to_owned(),
            ..EntraUpstreamConfig::default()
        }
    }

    /// The facade's Entra leg toward the served dev issuer, with the dev
    /// client's secret file as `[azure.credential]` gives it.
    fn entra_for(served: &Served) -> Entra {
        let client = served.issuer.dev_client().unwrap();
        let credential = ClientCredential::from_config(&CredentialConfig::ClientSecret {
            tenant_id: DEV_TENANT.to_owned(),
            client_id: client.client_id,
            secret_file: client.secret_file,
        })
        .unwrap();
        Entra::new(
            &upstream(&served.base_url),
            credential,
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn query(url: &str) -> Vec<(String, String)> {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn form_of(body: &[u8]) -> HashMap<String, String> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    struct SignIn {
        code: String,
        verifier: CodeVerifier,
        nonce: String,
    }

    /// Sends `hint` through Entra's (the dev issuer's) authorization
    /// endpoint as a browser would, following nothing: a 302 to the
    /// callback with the code and our state.
    async fn sign_in(entra: &Entra, hint: &str, claims: Option<&str>) -> SignIn {
        let verifier = CodeVerifier::generate();
        let state = CodeVerifier::generate().expose().to_owned();
        let nonce = CodeVerifier::generate().expose().to_owned();
        let url = entra.authorize_url(
            CALLBACK,
            &state,
            &verifier.challenge(),
            &nonce,
            claims,
            Some(hint),
        );
        let response = browser().get(url).send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            302,
            "{:?}",
            response.text().await
        );
        let (target, params) = location_params(&response);
        assert_eq!(target, CALLBACK);
        assert_eq!(params["state"], state.as_str(), "{params:?}");
        assert!(params.get("error").is_none(), "{params:?}");
        SignIn {
            code: params["code"].as_str().unwrap().to_owned(),
            verifier,
            nonce,
        }
    }

    async fn authenticator(served: &Served) -> Arc<Authenticator> {
        let config = served.issuer.identity_config(&served.base_url);
        let auth = Authenticator::start(config, reqwest::Client::new());
        auth.refresh_keys().await;
        auth
    }

    #[test]
    #[allow(clippy::needless_update)]
    fn authorize_url_has_every_parameter_and_no_resource() {
        let entra = Entra::new(
            &EntraUpstreamConfig {
                tenant: Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into()),
                client_id: Some("00000000-0000-0000-0000-000000000001".into()),
                scope: Some("api://warden/Mcp.Access".into()),
                authority: "https://login.microsoftonline.com".into(),
                ..EntraUpstreamConfig::default()
            },
            ClientCredential::secret("s3cret-value"),
            reqwest::Client::new(),
        )
        .unwrap();
        let verifier = CodeVerifier::generate();
        let claims = Entra::step_up_claims("c1");
        let url = entra.authorize_url(
            "https://warden.example.com/oauth/callback",
            "state-123",
            &verifier.challenge(),
            "nonce-456",
            Some(&claims),
            Some("dana@contoso.com"),
        );
        assert!(
            url.starts_with(
                "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/authorize?"
            ),
            "{url}"
        );
        let scope = "api://warden/Mcp.Access openid profile offline_access";
        assert_eq!(
            query(&url),
            [
                ("client_id", "00000000-0000-0000-0000-000000000001"),
                ("response_type", "code"),
                ("redirect_uri", "https://warden.example.com/oauth/callback"),
                ("response_mode", "query"),
                ("scope", scope),
                ("state", "state-123"),
                ("nonce", "nonce-456"),
                ("code_challenge", verifier.challenge().as_str()),
                ("code_challenge_method", "S256"),
                (
                    "claims",
                    r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#
                ),
                ("login_hint", "dana@contoso.com"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(!url.contains("resource"), "{url}");
        assert!(!url.contains("s3cret-value"), "{url}");
        assert!(!url.contains(verifier.expose()), "{url}");
        assert_eq!(entra.scope(), scope);

        // Without the optional ones, they are absent (not empty).
        let plain = entra.authorize_url(
            "https://warden.example.com/oauth/callback",
            "s",
            &verifier.challenge(),
            "n",
            None,
            None,
        );
        let names: Vec<String> = query(&plain).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            names,
            [
                "client_id",
                "response_type",
                "redirect_uri",
                "response_mode",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method"
            ]
        );

        // A `.default` API scope goes alone with the OpenID Connect scopes.
        let mut config = upstream("https://login.microsoftonline.us");
        config.scope = Some("api://warden/.default".into());
        let entra = Entra::new(
            &config,
            ClientCredential::secret("x"),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(
            entra.scope(),
            "api://warden/.default openid profile offline_access"
        );
        assert_eq!(
            entra.token_endpoint(),
            format!("https://login.microsoftonline.us/{DEV_TENANT}/oauth2/v2.0/token")
        );
    }

    #[test]
    fn step_up_claims_is_an_entra_claims_request() {
        assert_eq!(
            Entra::step_up_claims("c1"),
            r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#
        );
        // Whatever the value, it stays a JSON string.
        let odd: Value = serde_json::from_str(&Entra::step_up_claims("c\"1}")).unwrap();
        assert_eq!(odd["access_token"]["acrs"]["value"], "c\"1}");
    }

    #[test]
    fn new_refuses_incomplete_or_unsafe_configuration() {
        let message = |config: &EntraUpstreamConfig, credential: ClientCredential| {
            Entra::new(config, credential, reqwest::Client::new())
                .unwrap_err()
                .to_string()
        };
        let good = upstream("https://login.microsoftonline.com");
        type Change = fn(&mut EntraUpstreamConfig);
        let cases: Vec<(Change, &str)> = vec![
            (|c| c.tenant = None, "oauth.entra.tenant is required"),
            (
                |c| c.client_id = Some(" ".into()),
                "oauth.entra.client_id is required",
            ),
            (
                |c| c.tenant = Some("a/b".into()),
                "oauth.entra.tenant \"a/b\"",
            ),
            (|c| c.scope = None, "oauth.entra.scope"),
            (
                |c| c.scope = Some("api://w/x openid".into()),
                "oauth.entra.scope",
            ),
            (
                |c| c.scope = Some("offline_access".into()),
                "oauth.entra.scope",
            ),
            (|c| c.scope = Some("Mcp.Access".into()), "oauth.entra.scope"),
            (
                |c| c.authority = "http://login.example.com".into(),
                "oauth.entra.authority",
            ),
            (
                |c| c.authority = "login.example.com".into(),
                "oauth.entra.authority",
            ),
        ];
        for (change, expected) in cases {
            let mut config = good.clone();
            change(&mut config);
            let error = message(&config, ClientCredential::secret("x"));
            assert!(error.contains(expected), "{expected}: {error}");
        }
        // A trailing slash on the authority is harmless.
        let mut config = good.clone();
        config.authority = "https://login.microsoftonline.com/".into();
        let entra = Entra::new(
            &config,
            ClientCredential::secret("x"),
            reqwest::Client::new(),
        )
        .unwrap();
        assert!(
            entra
                .token_endpoint()
                .starts_with("https://login.microsoftonline.com/1111")
        );

        // A client secret is another application's.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let credential = ClientCredential::from_config(&CredentialConfig::ClientSecret {
            tenant_id: DEV_TENANT.into(),
            client_id: "44444444-5555-4666-8777-888888888888".into(),
            secret_file: file,
        })
        .unwrap();
        let error = message(&good, credential);
        assert!(
            error.contains("belongs to application 44444444-5555-4666-8777-888888888888")
                && !error.contains("s3cret"),
            "{error}"
        );
    }

    #[test]
    fn credential_kinds_from_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let secret_config = |path: &Path| CredentialConfig::ClientSecret {
            tenant_id: DEV_TENANT.into(),
            client_id: DEV_CONFIDENTIAL_CLIENT.into(),
            secret_file: path.to_owned(),
        };
        let no_env = |_: &str| None;
        let message = |config: &CredentialConfig| {
            ClientCredential::from_config_with_env(config, no_env)
                .unwrap_err()
                .to_string()
        };

        let missing = dir.path().join("absent");
        assert_eq!(
            message(&secret_config(&missing)),
            format!(
                "Entra client credential secret_file {}: the file does not exist",
                missing.display()
            )
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        assert_eq!(
            message(&secret_config(&empty)),
            format!(
                "Entra client credential secret_file {}: the file is empty",
                empty.display()
            )
        );
        let error = message(&secret_config(dir.path()));
        assert!(error.contains("cannot read it"), "{error}");

        let good = dir.path().join("secret");
        std::fs::write(&good, "  s3cret-value\n").unwrap();
        let credential = ClientCredential::from_config(&secret_config(&good)).unwrap();
        assert_eq!(credential.kind(), "client_secret");
        let shown = format!("{credential:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");

        // Workload identity: the configured file, else the environment's;
        // nothing is read yet.
        let token_file = dir.path().join("not-yet-there");
        let configured = CredentialConfig::WorkloadIdentity {
            tenant_id: None,
            client_id: None,
            token_file: Some(token_file.clone()),
        };
        let credential = ClientCredential::from_config_with_env(&configured, no_env).unwrap();
        assert_eq!(credential.kind(), "workload_identity");
        assert!(format!("{credential:?}").contains("not-yet-there"));
        let from_env = CredentialConfig::WorkloadIdentity {
            tenant_id: None,
            client_id: None,
            token_file: None,
        };
        let credential = ClientCredential::from_config_with_env(&from_env, |name| {
            (name == "AZURE_FEDERATED_TOKEN_FILE").then(|| PathBuf::from("/var/run/token"))
        })
        .unwrap();
        assert!(format!("{credential:?}").contains("/var/run/token"));
        let error = message(&from_env);
        assert!(error.contains("AZURE_FEDERATED_TOKEN_FILE"), "{error}");

        for other in [
            CredentialConfig::ManagedIdentity { client_id: None },
            CredentialConfig::AzureCli { tenant_id: None },
            CredentialConfig::Chain {},
        ] {
            let error = message(&other);
            assert!(
                error.contains(&format!("kind = {:?}", other.kind()))
                    && error.contains("\"client_secret\"")
                    && error.contains("\"client_certificate\"")
                    && error.contains("\"workload_identity\""),
                "{error}"
            );
        }

        // A certificate: loaded now; its errors name the setting and file.
        let certificate_config = |certificate_file: &Path, private_key_file: Option<&Path>| {
            CredentialConfig::ClientCertificate {
                tenant_id: DEV_TENANT.into(),
                client_id: DEV_CONFIDENTIAL_CLIENT.into(),
                certificate_file: certificate_file.to_owned(),
                private_key_file: private_key_file.map(Path::to_owned),
            }
        };
        let absent = dir.path().join("absent.pem");
        assert_eq!(
            message(&certificate_config(&absent, None)),
            format!(
                "Entra client credential certificate_file {}: the file does not exist",
                absent.display()
            )
        );
        let generated = certificate_support::rsa();
        let cert_only = dir.path().join("cert.pem");
        std::fs::write(&cert_only, &generated.certificate_pem).unwrap();
        let error = message(&certificate_config(&cert_only, None));
        assert!(
            error.starts_with(&format!(
                "Entra client credential certificate_file {}: no private key",
                cert_only.display()
            )),
            "{error}"
        );
        let other_key = dir.path().join("other-key.pem");
        std::fs::write(&other_key, certificate_support::rsa().key_pem).unwrap();
        let error = message(&certificate_config(&cert_only, Some(&other_key)));
        assert!(
            error.starts_with(&format!(
                "Entra client credential private_key_file {}: the private key does not belong",
                other_key.display()
            )),
            "{error}"
        );
        let key = dir.path().join("key.pem");
        std::fs::write(&key, &generated.key_pem).unwrap();
        let credential =
            ClientCredential::from_config(&certificate_config(&cert_only, Some(&key))).unwrap();
        assert_eq!(credential.kind(), "client_certificate");
        let shown = format!("{credential:?}");
        assert!(
            shown.contains("x5t#S256") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        // Bound to its application, like a secret.
        let mut config = upstream("https://login.microsoftonline.com");
        config.client_id = Some("44444444-5555-4666-8777-888888888888".into());
        let error = Entra::new(&config, credential, reqwest::Client::new())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("(kind = \"client_certificate\") belongs to application"),
            "{error}"
        );
    }

    /// The whole upstream leg against the dev issuer: authorize (the
    /// persona is signed in at once), redeem with Warden's verifier, and
    /// the access token validated by the production `Authenticator`.
    #[tokio::test]
    async fn sign_in_redeem_and_validate_against_the_dev_issuer() {
        let served = serve_with_sign_in().await;
        let entra = entra_for(&served);
        let signed_in = sign_in(&entra, "developer", None).await;
        let tokens = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap();

        assert!(tokens.refresh_token.is_some());
        assert!(tokens.id_token.is_some());
        assert_eq!(tokens.expires_in, Duration::from_secs(3599));
        assert_eq!(
            tokens.scope,
            format!("{DEV_AUDIENCE}/{DEV_SCOPE} openid profile offline_access")
        );
        assert!(tokens.nonce_matches(&signed_in.nonce));
        assert!(!tokens.nonce_matches("another-nonce"));
        let shown = format!("{tokens:?}");
        assert!(!shown.contains(&tokens.access_token), "{shown}");
        assert!(
            !shown.contains(tokens.refresh_token.as_deref().unwrap()),
            "{shown}"
        );
        assert!(
            !shown.contains(tokens.id_token.as_deref().unwrap()),
            "{shown}"
        );

        let auth = authenticator(&served).await;
        let principal = auth
            .authenticate(Some(&format!("Bearer {}", tokens.access_token)), None)
            .await
            .unwrap();
        assert_eq!(principal.kind, PrincipalKind::User);
        assert_eq!(principal.tid, DEV_TENANT);
        assert_eq!(principal.display_name, "dana.developer@contoso.dev");
        assert!(principal.roles.contains("Developer"), "{principal:?}");
        assert!(principal.scopes.contains(DEV_SCOPE), "{principal:?}");
        assert_eq!(
            principal.client_app.as_deref(),
            Some(DEV_CONFIDENTIAL_CLIENT)
        );
        assert!(!principal.mfa);
        assert!(principal.acrs.is_empty());

        // The code was single use.
        let again = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap_err();
        assert!(again.is_invalid_grant(), "{again}");
        assert_eq!(again.aadsts(), Some(54005));
        assert!(!again.to_string().contains(&signed_in.code), "{again}");
    }

    #[tokio::test]
    async fn a_wrong_verifier_is_refused_as_invalid_grant() {
        let served = serve_with_sign_in().await;
        let entra = entra_for(&served);
        let signed_in = sign_in(&entra, "developer", None).await;
        let wrong = CodeVerifier::generate();
        let error = entra
            .redeem(&signed_in.code, CALLBACK, &wrong)
            .await
            .unwrap_err();
        let EntraError::Refused {
            error: code,
            description,
            codes,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(code, "invalid_grant");
        assert_eq!(codes, &[501481]);
        assert!(description.starts_with("AADSTS501481: "), "{description}");
        let text = error.to_string();
        for secret in [signed_in.code.as_str(), wrong.expose()] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[tokio::test]
    async fn refresh_gives_new_tokens() {
        let served = serve_with_sign_in().await;
        let entra = entra_for(&served);
        let signed_in = sign_in(&entra, "auditor", None).await;
        let first = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap();
        let refreshed = entra
            .refresh(first.refresh_token.as_deref().unwrap())
            .await
            .unwrap();
        assert_ne!(refreshed.access_token, first.access_token);
        let (new_rt, old_rt) = (
            refreshed.refresh_token.as_deref().unwrap(),
            first.refresh_token.as_deref().unwrap(),
        );
        assert_ne!(new_rt, old_rt);
        assert_eq!(refreshed.scope, first.scope);

        let auth = authenticator(&served).await;
        let principal = auth
            .authenticate(Some(&format!("Bearer {}", refreshed.access_token)), None)
            .await
            .unwrap();
        assert_eq!(principal.display_name, "ava.auditor@contoso.dev");
        assert!(principal.roles.contains("Auditor"), "{principal:?}");
        assert!(principal.groups.contains("auditors"), "{principal:?}");
    }

    #[tokio::test]
    async fn refresh_for_a_disabled_user_is_invalid_grant() {
        let served = serve_with_sign_in().await;
        let entra = entra_for(&served);
        let signed_in = sign_in(&entra, "developer", None).await;
        let tokens = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap();
        let refresh_token = tokens.refresh_token.unwrap();
        served.issuer.set_user_enabled("developer", false).unwrap();
        let error = entra.refresh(&refresh_token).await.unwrap_err();
        assert!(
            matches!(&error, EntraError::Refused { error, codes, .. }
                if error == "invalid_grant" && codes == &[50057]),
            "{error:?}"
        );
        assert!(error.is_invalid_grant());
        assert!(!error.to_string().contains(&refresh_token), "{error}");

        // Enabled again, the same refresh token works (Entra does not
        // revoke it).
        served.issuer.set_user_enabled("developer", true).unwrap();
        entra.refresh(&refresh_token).await.unwrap();
    }

    /// The facade's Entra leg with a certificate credential (certificate
    /// and key in one PEM file, as `[azure.credential]` gives it).
    fn entra_with_certificate(
        served: &Served,
        generated: &certificate_support::Generated,
    ) -> Entra {
        let file = served.dir.path().join(format!(
            "warden-{}.pem",
            crate::azure::certificate::thumbprint_s256(&generated.certificate_der)
        ));
        std::fs::write(&file, generated.combined_pem()).unwrap();
        let credential = ClientCredential::from_config(&CredentialConfig::ClientCertificate {
            tenant_id: DEV_TENANT.to_owned(),
            client_id: DEV_CONFIDENTIAL_CLIENT.to_owned(),
            certificate_file: file,
            private_key_file: None,
        })
        .unwrap();
        Entra::new(
            &upstream(&served.base_url),
            credential,
            reqwest::Client::new(),
        )
        .unwrap()
    }

    /// Sign-in, redemption and refresh with a registered certificate: the
    /// dev issuer verifies each assertion (signature, `aud`, `iss`/`sub`,
    /// time, single-use `jti`), so a new one goes with every request; the
    /// tokens say the client used a certificate (`azpacr` = 2). An
    /// unregistered certificate is refused as Entra refuses it.
    #[tokio::test]
    async fn a_certificate_credential_signs_in_and_refreshes() {
        let served = serve_with_sign_in().await;
        let generated = certificate_support::rsa();
        served
            .issuer
            .add_client_certificate(&generated.certificate_pem)
            .unwrap();
        let entra = entra_with_certificate(&served, &generated);
        let signed_in = sign_in(&entra, "developer", None).await;
        let tokens = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap();
        assert!(tokens.nonce_matches(&signed_in.nonce));
        assert_eq!(payload(&tokens.access_token)["azpacr"], "2");
        let refreshed = entra
            .refresh(tokens.refresh_token.as_deref().unwrap())
            .await
            .unwrap();
        let auth = authenticator(&served).await;
        let principal = auth
            .authenticate(Some(&format!("Bearer {}", refreshed.access_token)), None)
            .await
            .unwrap();
        assert_eq!(principal.display_name, "dana.developer@contoso.dev");
        assert_eq!(
            principal.client_app.as_deref(),
            Some(DEV_CONFIDENTIAL_CLIENT)
        );

        // A certificate the application does not have.
        let stranger = entra_with_certificate(&served, &certificate_support::rsa());
        let error = stranger
            .refresh(tokens.refresh_token.as_deref().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, EntraError::Refused { error, codes, .. }
                if error == "invalid_client" && codes == &[700027]),
            "{error:?}"
        );
        assert!(!error.is_invalid_grant());
    }

    #[tokio::test]
    async fn a_certificate_sends_a_new_assertion_for_the_token_endpoint_each_time() {
        let (capture, base, _server) = capture_server().await;
        let generated = certificate_support::rsa();
        let dir = tempfile::tempdir().unwrap();
        let (certificate_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&certificate_file, &generated.certificate_pem).unwrap();
        std::fs::write(&key_file, &generated.key_pem).unwrap();
        let credential = ClientCredential::from_config(&CredentialConfig::ClientCertificate {
            tenant_id: DEV_TENANT.into(),
            client_id: DEV_CONFIDENTIAL_CLIENT.into(),
            certificate_file,
            private_key_file: Some(key_file),
        })
        .unwrap();
        let entra = Entra::new(&upstream(&base), credential, reqwest::Client::new()).unwrap();
        let verifier = CodeVerifier::generate();
        entra.redeem("code-1", CALLBACK, &verifier).await.unwrap();
        entra.refresh("rt-1").await.unwrap();

        let forms = capture.forms();
        assert_eq!(forms.len(), 2);
        let mut jtis = Vec::new();
        for form in &forms {
            assert_eq!(form["client_assertion_type"], JWT_BEARER_ASSERTION);
            assert_eq!(form["client_id"], DEV_CONFIDENTIAL_CLIENT);
            assert!(!form.contains_key("client_secret"));
            let assertion = &form["client_assertion"];
            let header = payload(&format!("x.{}", assertion.split('.').next().unwrap()));
            assert_eq!(header["alg"], "PS256");
            assert_eq!(
                header["x5t#S256"],
                crate::azure::certificate::thumbprint_s256(&generated.certificate_der)
            );
            let claims = payload(assertion);
            assert_eq!(claims["aud"], entra.token_endpoint());
            assert_eq!(
                claims["aud"],
                format!("{base}/{DEV_TENANT}/oauth2/v2.0/token")
            );
            assert_eq!(claims["iss"], DEV_CONFIDENTIAL_CLIENT);
            assert_eq!(claims["sub"], DEV_CONFIDENTIAL_CLIENT);
            jtis.push(claims["jti"].clone());
        }
        assert_ne!(jtis[0], jtis[1]);
    }

    #[tokio::test]
    async fn a_wrong_client_secret_is_refused() {
        let served = serve_with_sign_in().await;
        let good = entra_for(&served);
        let signed_in = sign_in(&good, "developer", None).await;
        let entra = Entra::new(
            &upstream(&served.base_url),
            ClientCredential::secret("not-the-secret"),
            reqwest::Client::new(),
        )
        .unwrap();
        for error in [
            entra
                .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
                .await
                .unwrap_err(),
            entra.refresh("some-refresh-token").await.unwrap_err(),
        ] {
            assert!(
                matches!(&error, EntraError::Refused { error, codes, .. }
                    if error == "invalid_client" && codes == &[7000215]),
                "{error:?}"
            );
            assert!(!error.is_invalid_grant());
            let text = error.to_string();
            assert!(!text.contains("not-the-secret"), "{text}");
            assert!(!text.contains(&signed_in.code), "{text}");
        }
    }

    #[tokio::test]
    async fn step_up_claims_give_an_access_token_with_the_context() {
        let served = serve_with_sign_in().await;
        let entra = entra_for(&served);
        let claims = Entra::step_up_claims("c1");
        let signed_in = sign_in(&entra, "developer", Some(&claims)).await;
        let tokens = entra
            .redeem(&signed_in.code, CALLBACK, &signed_in.verifier)
            .await
            .unwrap();
        let acrs = payload(&tokens.access_token)["acrs"].clone();
        assert!(acrs.as_array().unwrap().contains(&json!("c1")), "{acrs}");
        let auth = authenticator(&served).await;
        let principal = auth
            .authenticate(Some(&format!("Bearer {}", tokens.access_token)), None)
            .await
            .unwrap();
        assert!(principal.acrs.contains("c1"), "{principal:?}");
        assert!(principal.mfa, "c1 is the dev tenant's MFA context");

        // The refreshed token keeps the context.
        let refreshed = entra
            .refresh(tokens.refresh_token.as_deref().unwrap())
            .await
            .unwrap();
        let acrs = payload(&refreshed.access_token)["acrs"].clone();
        assert!(acrs.as_array().unwrap().contains(&json!("c1")), "{acrs}");
    }

    /// A token endpoint that records each request's form and answers from
    /// a script (then with tokens).
    #[derive(Clone, Default)]
    struct Capture {
        forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
        script: Arc<Mutex<VecDeque<(u16, String, Duration)>>>,
    }

    impl Capture {
        fn answer(&self, status: u16, body: &str) {
            self.script
                .lock()
                .unwrap()
                .push_back((status, body.to_owned(), Duration::ZERO));
        }

        fn forms(&self) -> Vec<HashMap<String, String>> {
            self.forms.lock().unwrap().clone()
        }
    }

    const TOKENS: &str = r#"{"token_type":"Bearer","expires_in":"3599","scope":"api://w/x openid","access_token":"AT","refresh_token":"RT"}"#;

    async fn token_endpoint(
        State(capture): State<Capture>,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        capture.forms.lock().unwrap().push(form_of(&body));
        let next = capture.script.lock().unwrap().pop_front();
        let (status, body, delay) = next.unwrap_or((200, TOKENS.to_owned(), Duration::ZERO));
        tokio::time::sleep(delay).await;
        (StatusCode::from_u16(status).unwrap(), body)
    }

    /// A capturing token endpoint on a loopback port, and its base URL.
    async fn capture_server() -> (Capture, String, tokio::task::JoinHandle<()>) {
        let capture = Capture::default();
        let app = axum::Router::new()
            .route(
                "/{tenant}/oauth2/v2.0/token",
                axum::routing::post(token_endpoint),
            )
            .with_state(capture.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (capture, base, server)
    }

    #[tokio::test]
    async fn workload_identity_reads_the_assertion_on_every_request() {
        let (capture, base, _server) = capture_server().await;
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("azure-identity-token");
        let credential = ClientCredential::from_config(&CredentialConfig::WorkloadIdentity {
            tenant_id: Some(DEV_TENANT.into()),
            client_id: Some("99999999-2222-4333-8444-555555555555".into()),
            token_file: Some(token_file.clone()),
        })
        .unwrap();
        let entra = Entra::new(&upstream(&base), credential, reqwest::Client::new()).unwrap();

        // No file yet: unavailable, naming the file, nothing sent.
        let error = entra.refresh("rt-1").await.unwrap_err();
        assert!(
            matches!(&error, EntraError::Unavailable(m) if m.contains(&token_file.display().to_string())
                && m.contains("does not exist")),
            "{error:?}"
        );
        assert!(capture.forms().is_empty());

        std::fs::write(&token_file, "assertion-one\n").unwrap();
        let verifier = CodeVerifier::generate();
        let tokens = entra.redeem("code-1", CALLBACK, &verifier).await.unwrap();
        assert_eq!(tokens.access_token, "AT");
        assert_eq!(tokens.expires_in, Duration::from_secs(3599));
        // Kubernetes rotates the projected token.
        std::fs::write(&token_file, "assertion-two").unwrap();
        entra.refresh("rt-1").await.unwrap();

        let forms = capture.forms();
        assert_eq!(forms.len(), 2);
        let scope = format!("{DEV_AUDIENCE}/{DEV_SCOPE} openid profile offline_access");
        let expected = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            forms[0],
            expected(&[
                ("grant_type", "authorization_code"),
                ("client_id", DEV_CONFIDENTIAL_CLIENT),
                ("code", "code-1"),
                ("redirect_uri", CALLBACK),
                ("code_verifier", verifier.expose()),
                ("scope", &scope),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", "assertion-one"),
            ])
        );
        assert_eq!(
            forms[1],
            expected(&[
                ("grant_type", "refresh_token"),
                ("client_id", DEV_CONFIDENTIAL_CLIENT),
                ("refresh_token", "rt-1"),
                ("scope", &scope),
                ("client_assertion_type", JWT_BEARER_ASSERTION),
                ("client_assertion", "assertion-two"),
            ])
        );
    }

    #[tokio::test]
    async fn client_secret_is_sent_in_the_body_without_resource() {
        let (capture, base, _server) = capture_server().await;
        let entra = Entra::new(
            &upstream(&base),
            ClientCredential::secret("s3cret"),
            reqwest::Client::new(),
        )
        .unwrap();
        entra.refresh("rt").await.unwrap();
        let form = &capture.forms()[0];
        assert_eq!(form["client_secret"], "s3cret");
        assert!(!form.contains_key("resource"));
        assert!(!form.contains_key("client_assertion"));
    }

    #[tokio::test]
    async fn answers_are_refusals_or_unavailability() {
        let (capture, base, _server) = capture_server().await;
        let entra = Entra::new(
            &upstream(&base),
            ClientCredential::secret("s3cret-value"),
            reqwest::Client::new(),
        )
        .unwrap()
        .with_timeout(Duration::from_millis(300));
        let unavailable = |result: Result<EntraTokens, EntraError>, needle: &str| {
            let error = result.unwrap_err();
            assert!(
                matches!(&error, EntraError::Unavailable(m) if m.contains(needle)),
                "{needle}: {error:?}"
            );
            let text = error.to_string();
            for secret in ["s3cret-value", "rt-secret-1", "AT-LEAK", "RT-LEAK"] {
                assert!(!text.contains(secret), "{text}");
            }
        };

        // Entra's JSON error: refused, codes kept, what was sent redacted.
        capture.answer(
            400,
            r#"{"error":"invalid_grant","error_description":"AADSTS70008: The refresh token rt-secret-1 has expired.\r\nTrace ID: x","error_codes":[70008],"timestamp":"t"}"#,
        );
        let error = entra.refresh("rt-secret-1").await.unwrap_err();
        assert_eq!(
            error,
            EntraError::Refused {
                error: "invalid_grant".into(),
                description: "AADSTS70008: The refresh token <redacted> has expired.  Trace ID: x"
                    .into(),
                codes: vec![70008],
            }
        );
        // Codes from the description when the list is absent.
        capture.answer(
            401,
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys are expired."}"#,
        );
        let error = entra.refresh("rt-secret-1").await.unwrap_err();
        assert_eq!(error.aadsts(), Some(7000222));
        assert!(!error.is_invalid_grant());

        capture.answer(500, r#"{"error":"server_error","error_codes":[50000]}"#);
        unavailable(
            entra.refresh("rt-secret-1").await,
            "HTTP 500, server_error AADSTS50000",
        );
        capture.answer(503, "<html>busy</html>");
        unavailable(
            entra.refresh("rt-secret-1").await,
            "HTTP 503 without an OAuth error",
        );
        capture.answer(429, r#"{"error":"invalid_request"}"#);
        unavailable(entra.refresh("rt-secret-1").await, "HTTP 429");
        capture.answer(
            400,
            r#"{"error":"temporarily_unavailable","error_description":"AADSTS90033: busy"}"#,
        );
        unavailable(
            entra.refresh("rt-secret-1").await,
            "temporarily_unavailable",
        );
        capture.answer(400, "not json");
        unavailable(
            entra.refresh("rt-secret-1").await,
            "HTTP 400 without an OAuth error",
        );
        capture.answer(200, "{\"access_token\":\"AT-LEAK\"");
        unavailable(entra.refresh("rt-secret-1").await, "not a JSON object");
        capture.answer(200, r#"{"refresh_token":"RT-LEAK","expires_in":3599}"#);
        unavailable(entra.refresh("rt-secret-1").await, "no valid access_token");
        capture.answer(
            200,
            r#"{"access_token":"AT-LEAK","refresh_token":"RT-LEAK"}"#,
        );
        unavailable(entra.refresh("rt-secret-1").await, "no valid expires_in");
        capture.answer(
            200,
            r#"{"access_token":"AT-LEAK","token_type":"pop","expires_in":1}"#,
        );
        unavailable(entra.refresh("rt-secret-1").await, "token_type");
        capture.answer(
            200,
            &format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_ANSWER_BYTES)),
        );
        unavailable(entra.refresh("rt-secret-1").await, "larger than");

        // Too slow: the timeout ends it.
        capture
            .script
            .lock()
            .unwrap()
            .push_back((200, TOKENS.to_owned(), Duration::from_secs(5)));
        unavailable(entra.refresh("rt-secret-1").await, "within 300ms");

        // Nobody listening.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let nobody = Entra::new(
            &upstream(&closed),
            ClientCredential::secret("s3cret-value"),
            reqwest::Client::new(),
        )
        .unwrap();
        unavailable(nobody.refresh("rt-secret-1").await, "failed");

        // And the scripted answers are used up: tokens again.
        let tokens = entra.refresh("rt-secret-1").await.unwrap();
        assert_eq!(tokens.refresh_token.as_deref(), Some("RT"));
        assert_eq!(tokens.id_token, None);
        assert_eq!(tokens.scope, "api://w/x openid");
    }

    #[test]
    fn scrub_redacts_sent_values_and_bounds_length() {
        let long = "x".repeat(2 * MAX_DESCRIPTION_CHARS);
        let cut = scrub(&long, &[]);
        assert_eq!(cut.chars().count(), MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(scrub("a\u{7}b secret!", &["secret", ""]), "a b <redacted>!");
        assert_eq!(description_code("AADSTS50057: disabled"), Some(50057));
        assert_eq!(description_code("disabled"), None);
        assert!(!is_error_code("a\"b"));
        assert!(is_error_code("invalid_grant"));
    }

    /// The facade awaits these inside axum handlers and spawned tasks.
    #[test]
    fn requests_are_send() {
        fn send<T: Send>(_: T) {}
        let entra = Entra::new(
            &upstream("https://login.microsoftonline.com"),
            ClientCredential::federated_token_file("/nonexistent"),
            reqwest::Client::new(),
        )
        .unwrap();
        let verifier = CodeVerifier::generate();
        send(entra.redeem("code", CALLBACK, &verifier));
        send(entra.refresh("rt"));
        send(entra);
    }

    #[test]
    fn entra_debug_hides_the_credential() {
        let entra = Entra::new(
            &upstream("https://login.microsoftonline.com"),
            ClientCredential::secret("s3cret-value"),
            reqwest::Client::new(),
        )
        .unwrap();
        let shown = format!("{entra:?}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
        assert!(shown.contains(DEV_CONFIDENTIAL_CLIENT), "{shown}");
    }
}
