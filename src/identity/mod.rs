//! Microsoft Entra ID bearer-token validation, and a local dev issuer.
//!
//! [`Authenticator`] turns the `Authorization` header of an HTTP request
//! into a [`Principal`] or an [`AuthError`]. It trusts the tenants listed in
//! [`IdentityConfig`], whose signing keys it fetches (discovery document,
//! then JWKS) in the background. [`dev::DevIssuer`] serves the same
//! discovery and JWKS endpoints as Entra over HTTP and mints tokens, so local
//! runs and tests exercise the production path unchanged.
//!
//! # Rules
//!
//! A token is accepted only if every check passes, in this order (the first
//! failure decides the [`AuthError`]):
//!
//! 1. the header is `Authorization: Bearer <token>` (scheme
//!    case-insensitive); the token is never read from anywhere else;
//! 2. the token is at most `max_token_bytes` long;
//! 3. it is three base64url segments;
//! 4. its header `alg` is exactly `RS256` (`none`, `HS256` — including HMAC
//!    keyed with the public key, i.e. algorithm confusion — and every other
//!    algorithm are refused before any key is touched); a `crit` header is
//!    refused; `jku`, `jwk`, `x5u` and `x5c` headers are ignored;
//! 5. it has a `kid`, and a key with that `kid` was published in the JWKS of
//!    a configured tenant. An unknown `kid` triggers one key refresh, at
//!    most once per `unknown_kid_cooldown` across all requests;
//! 6. the RS256 signature verifies;
//! 7. `exp` is present and not past, `nbf` (if present) is not in the
//!    future, both with `clock_skew` leeway;
//! 8. `iss` is exactly `{v1_issuer_base}/{T}/` or `{authority}/{T}/v2.0`
//!    for a configured tenant `T`, the `tid` claim equals `T`, and the
//!    signing key was published in `T`'s JWKS;
//! 9. `aud` is one of `audiences`;
//! 10. `oid` is present;
//! 11. if `client_apps` is set, the client (`azp`, or `appid` in v1) is in it;
//! 12. a user token carries one of `required_scopes` in `scp` (if any are
//!     configured); an app-only token (no `scp`, or `idtyp = "app"`)
//!     carries one of `required_app_roles` in `roles` (if any are
//!     configured);
//! 13. the groups-overage rule below.
//!
//! Failures of 1–10 are `401`, of 11–13 `403`; `503` when no signing keys
//! could be loaded at all. The token itself is never logged.
//!
//! **MFA.** `Principal::mfa` is true when `amr` contains `mfa` (v1 tokens)
//! or `acrs` contains one of `mfa_auth_contexts`.
//!
//! **Groups overage.** When a user is in too many groups, Entra omits
//! `groups` and writes `_claim_names: {"groups": …}` (with `_claim_sources`)
//! or `hasgroups: true` instead. With `groups_overage = "deny"` (the
//! default) such a token is refused with `403`, reason `groups_overage`,
//! and a message telling the administrator to configure group filtering
//! ("groups assigned to the application") or use app roles. With `"allow"`
//! the token is accepted with `Principal::groups_overage = true` and an empty
//! group set, which policy must treat as *unknown*, never as "no groups".
//!
//! **Anonymous.** `allow_anonymous` is only for local experiments: no keys
//! are fetched and every request gets [`Principal::anonymous`], whatever
//! its `Authorization` header says.
//!
//! **Keys.** Keys are cached by `kid` (RSA, `use` absent or `sig`, at least
//! 2048 bits). Each distinct JWKS URL is fetched once per refresh; a failed
//! refresh keeps the last good key set and is logged. [`Authenticator::ready`]
//! is `Ok` once every tenant has a key set.
//!
//! **Verified tokens.** A token that passed every check is remembered by
//! the SHA-256 of its bytes until its `exp` (`token_cache` entries at most),
//! and its next uses skip the checks: see `cache` for why that is as strict
//! (no leeway past `exp`, and only while the key that verified it is still
//! published under its `kid`; failures are never remembered).
//!
//! **Challenges.** [`Authenticator::challenge`] builds the
//! `WWW-Authenticate` value (RFC 6750 and RFC 9728 `resource_metadata`),
//! naming the scopes of the authorization server the client is sent to;
//! [`Authenticator::step_up`] asks for an authentication context, as an
//! Entra claims challenge when the client declared `xms_cc = cp1`, else as a
//! tool error that tells the user what sign-in is needed. A caller signed
//! in through Warden's OAuth facade never talks to Entra:
//! [`Authenticator::step_up_mfa`] marks its grant instead, and
//! [`Authenticator::take_step_up`] turns the mark into MCP's step-up
//! challenge (`403 insufficient_scope`) on the grant's next request.

mod cache;
mod challenge;
mod config;
pub mod dev;
mod jwks;
mod principal;
mod validate;

use std::net::IpAddr;
use std::sync::Arc;

use tracing::{error, warn};

pub use config::{
    DEFAULT_AUTHORITY, DEFAULT_V1_ISSUER_BASE, GroupsOveragePolicy, IdentityConfig, is_guid,
};
pub use principal::{ANONYMOUS, Principal, PrincipalKind};

use jwks::KeyCache;

/// Why a request was not authenticated. [`AuthError::reason`] is a stable
/// label for metrics, [`AuthError::status`] the HTTP status to answer with,
/// and `Display` a message for humans (it never contains the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token: {0}")]
    Missing(&'static str),
    /// Not a well-formed JWT, or a required claim is absent or mistyped.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Longer than `max_token_bytes`.
    #[error("token of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    /// Header `alg` is not `RS256`.
    #[error("token algorithm {0:?} is not accepted (only RS256)")]
    BadAlg(String),
    /// Header has no `kid`.
    #[error("token header has no key id (kid)")]
    MissingKid,
    /// No published key has this `kid`, even after a refresh.
    #[error("token is signed with unknown key id {0:?}")]
    UnknownKid(String),
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond the clock-skew leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the clock-skew leeway).
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not an issuer of a configured tenant.
    #[error("token issuer {0:?} is not trusted")]
    BadIssuer(String),
    /// `tid` does not match the issuer's tenant, or the key is not the tenant's.
    #[error("token tenant does not match: {0}")]
    BadTenant(String),
    /// `aud` is not one of the configured audiences.
    #[error("token audience is not accepted: {0}")]
    BadAudience(String),
    /// The client application is not in `client_apps`.
    #[error("client application {0:?} is not allowed")]
    ClientNotAllowed(String),
    /// Neither a required scope (user) nor a required app role (app-only).
    #[error("insufficient scope: {0}")]
    InsufficientScope(String),
    /// Groups overage under `groups_overage = "deny"`.
    #[error(
        "the token does not list the user's groups because there are too many (groups overage); \
         an Entra administrator should configure the application to emit only groups assigned \
         to it (group filtering) or use app roles"
    )]
    GroupsOverage,
    /// No signing keys could be loaded.
    #[error("signing keys are unavailable: {0}")]
    KeysUnavailable(String),
    /// More than one `Authorization` header: which one counts would depend
    /// on who reads the request (a proxy in front may take the last).
    #[error("the request carries {0} Authorization headers; send exactly one")]
    DuplicateHeader(usize),
    /// Policy wants a step-up of the facade grant the token stands for:
    /// authorize again with these scopes (the grant's and the step-up
    /// scope). See [`Authenticator::take_step_up`].
    #[error(
        "a call needs multi-factor authentication: authorize again with scope \"{}\"",
        .0.join(" ")
    )]
    StepUpRequired(Vec<String>),
}

/// The request's one `Authorization` header value, if any. Several headers,
/// or one that is not visible ASCII, are refused.
pub fn authorization(headers: &http::HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let count = 1 + values.count();
    if count > 1 {
        return Err(AuthError::DuplicateHeader(count));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| AuthError::Malformed("the Authorization header is not visible ASCII".into()))
}

impl AuthError {
    /// Short stable label, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing",
            Self::Malformed(_) => "malformed",
            Self::Oversized { .. } => "oversized",
            Self::BadAlg(_) => "bad_alg",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid(_) => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadIssuer(_) => "bad_issuer",
            Self::BadTenant(_) => "bad_tenant",
            Self::BadAudience(_) => "bad_audience",
            Self::ClientNotAllowed(_) => "client_not_allowed",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::GroupsOverage => "groups_overage",
            Self::KeysUnavailable(_) => "keys_unavailable",
            Self::DuplicateHeader(_) => "duplicate_authorization",
            Self::StepUpRequired(_) => "step_up",
        }
    }

    /// HTTP status: 400 a malformed request, 401 authentication failed,
    /// 403 authenticated but not allowed, 503 keys unavailable.
    pub fn status(&self) -> u16 {
        match self {
            Self::DuplicateHeader(_) => 400,
            Self::InsufficientScope(_)
            | Self::ClientNotAllowed(_)
            | Self::GroupsOverage
            | Self::StepUpRequired(_) => 403,
            Self::KeysUnavailable(_) => 503,
            _ => 401,
        }
    }
}

/// JSON-RPC error code of authentication refusals: a bad token at the HTTP
/// front, a session opened by another principal, and a step-up claims
/// challenge answered to a tool call.
pub const UNAUTHORIZED: i64 = -32001;

/// How to ask the caller for a stronger sign-in (see [`Authenticator::step_up`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUp {
    /// The client handles claims challenges (`xms_cc` contains `cp1`):
    /// answer HTTP 401 with this `WWW-Authenticate` value.
    Challenge { www_authenticate: String },
    /// The caller signed in through Warden's OAuth facade and its grant is
    /// marked for a step-up: fail the tool call with this message; the
    /// grant's next request gets MCP's step-up challenge
    /// ([`Authenticator::take_step_up`]).
    Reauthorize { message: String },
    /// The client cannot: fail the tool call with this message.
    ToolError { message: String },
}

/// What marking a grant for a step-up did
/// ([`OpaqueTokens::want_step_up`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpMark {
    /// Marked: the grant's next request gets the step-up challenge.
    Marked,
    /// The challenge was sent already and the step-up sign-in is awaited.
    AlreadyAsked,
}

/// Validates Entra ID bearer tokens. Create it once with
/// [`Authenticator::start`] and share the `Arc`.
pub struct Authenticator {
    config: IdentityConfig,
    keys: Arc<KeyCache>,
    /// Tokens that passed every check, until their `exp` ([`cache`]).
    verified: cache::TokenCache,
    refresher: Option<tokio::task::AbortHandle>,
    /// Warden's own tokens, when it is also the clients' authorization
    /// server (set once the facade is built, which itself validates
    /// Entra's tokens with this authenticator). Held weakly: the facade
    /// holds this authenticator, and a strong reference back would keep
    /// both, and the audit log the facade writes to, alive for good (a
    /// stopped Warden could not release its store).
    opaque: std::sync::OnceLock<std::sync::Weak<dyn OpaqueTokens>>,
}

/// Warden's own (opaque) access tokens: told apart from Entra's JWTs by
/// their prefix, validated by whoever issued them.
#[async_trait::async_trait]
pub trait OpaqueTokens: Send + Sync {
    /// Whether `token` is one of these (by its shape alone).
    fn claims(&self, token: &str) -> bool;
    /// The principal of `token`, or why it is refused (it may read the
    /// store: another replica may have issued or revoked it).
    async fn authenticate(
        &self,
        token: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Principal, String>;
    /// The authorization server clients are sent to for these tokens.
    fn issuer(&self) -> String;
    /// Whether Entra's tenants stay listed as authorization servers too
    /// (mode `both`).
    fn keep_tenants(&self) -> bool;
    /// The scopes clients ask this issuer for: named in the challenges of
    /// requests sent to it, and in the protected-resource metadata.
    fn scopes(&self) -> Vec<String>;
    /// The scope that asks this issuer for a step-up to multi-factor
    /// authentication, when it offers one.
    fn step_up_scope(&self) -> Option<String>;
    /// Policy wants grant `grant` stepped up to multi-factor
    /// authentication: marks it. `None` when no step-up is offered (or
    /// the grant is unknown).
    async fn want_step_up(&self, grant: &str) -> Option<StepUpMark>;
    /// Takes `grant`'s step-up mark, once per mark: the scopes to name in
    /// the challenge (the grant's and the step-up scope).
    async fn take_step_up(&self, grant: &str) -> Option<Vec<String>>;
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tenants", &self.config.tenants)
            .field("audiences", &self.config.audiences)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Starts fetching the signing keys of every tenant in the background
    /// and returns at once, without waiting for the network. Call it inside
    /// a Tokio runtime (otherwise keys are only fetched on demand, and
    /// [`ready`](Self::ready) says so). `config` should have passed
    /// [`IdentityConfig::validate`].
    pub fn start(mut config: IdentityConfig, http: reqwest::Client) -> Arc<Self> {
        normalize_tenants(&mut config.tenants);
        let keys = Arc::new(KeyCache::new(&config, http));
        if config.allow_anonymous {
            warn!(
                "identity.allow_anonymous is set: every request gets an anonymous principal; \
                 bearer tokens are not checked"
            );
            return Arc::new(Self {
                verified: cache::TokenCache::new(0),
                config,
                keys,
                refresher: None,
                opaque: std::sync::OnceLock::new(),
            });
        }
        let refresher = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let task = runtime.spawn(jwks::refresh_loop(
                    Arc::downgrade(&keys),
                    config.jwks_refresh,
                ));
                Some(task.abort_handle())
            }
            Err(_) => {
                error!("identity: no Tokio runtime; signing keys will only be fetched on demand");
                keys.note_no_runtime();
                None
            }
        };
        Arc::new(Self {
            verified: cache::TokenCache::new(config.token_cache),
            config,
            keys,
            refresher,
            opaque: std::sync::OnceLock::new(),
        })
    }

    /// Accepts Warden's own tokens beside Entra's (once; a second call is
    /// ignored), for as long as the caller keeps `tokens` alive (the
    /// facade's routes do while Warden serves).
    pub fn accept_opaque(&self, tokens: &Arc<dyn OpaqueTokens>) {
        let _ = self.opaque.set(Arc::downgrade(tokens));
    }

    fn opaque(&self) -> Option<Arc<dyn OpaqueTokens>> {
        self.opaque.get().and_then(std::sync::Weak::upgrade)
    }

    /// The issuer of Warden's own tokens, when they are accepted, and
    /// whether the tenants stay listed too.
    pub fn opaque_issuer(&self) -> Option<(String, bool)> {
        self.opaque().map(|o| (o.issuer(), o.keep_tenants()))
    }

    /// For a caller signed in through Warden's OAuth facade whose grant
    /// policy marked for a step-up ([`step_up_mfa`](Self::step_up_mfa)):
    /// the refusal to answer this request with, MCP's step-up challenge
    /// (`403`, `error="insufficient_scope"`, the grant's scopes and the
    /// step-up scope). Each mark is taken once, so a client that cannot
    /// step up loses one request, not the grant. Called by the `/mcp`
    /// front only, after [`authenticate`](Self::authenticate).
    pub async fn take_step_up(&self, principal: &Principal) -> Option<AuthError> {
        let grant = principal.grant.as_deref()?;
        self.opaque()?
            .take_step_up(grant)
            .await
            .map(AuthError::StepUpRequired)
    }

    /// `Ok` once a key set has been loaded for every tenant (always `Ok`
    /// under `allow_anonymous`); else which tenants lack keys and why.
    pub fn ready(&self) -> Result<(), String> {
        if self.config.allow_anonymous {
            return Ok(());
        }
        self.keys.ready()
    }

    /// Validates the `Authorization` header value. `source_ip` is the peer
    /// address of the HTTP connection, copied into the principal.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        source_ip: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        if self.config.allow_anonymous {
            return Ok(Principal::anonymous(source_ip));
        }
        if let (Some(opaque), Some(value)) = (self.opaque(), authorization) {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or("")
                .trim();
            if opaque.claims(token) {
                return opaque
                    .authenticate(token, source_ip)
                    .await
                    .map_err(AuthError::Malformed);
            }
        }
        validate::authenticate(
            &self.config,
            &self.keys,
            &self.verified,
            authorization,
            source_ip,
        )
        .await
    }

    /// Refreshes the signing keys of every tenant now, ignoring the
    /// unknown-kid cooldown, and returns when done (for an operator's
    /// "reload", and for tests). Failures keep the last good keys and are
    /// visible in [`ready`](Self::ready) until a key set was loaded.
    pub async fn refresh_keys(&self) {
        if !self.config.allow_anonymous {
            self.keys.refresh_all().await;
        }
    }

    /// How many JWKS documents were requested so far (successful or not),
    /// across background, on-demand and explicit refreshes.
    pub fn jwks_fetches(&self) -> u64 {
        self.keys.jwks_fetches()
    }

    /// The configuration in effect (tenant ids lower-cased).
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }
}

impl Drop for Authenticator {
    fn drop(&mut self) {
        if let Some(task) = &self.refresher {
            task.abort();
        }
    }
}

/// Tenant ids are GUIDs; Entra writes them in lower case.
fn normalize_tenants(tenants: &mut Vec<String>) {
    for tenant in tenants.iter_mut() {
        *tenant = tenant.to_ascii_lowercase();
    }
    tenants.sort();
    tenants.dedup();
}

#[cfg(test)]
mod tests;
