//! The facade's flows, composed from the building blocks: `/authorize`
//! (client, redirect, PKCE, resource and scope checks; consent or a
//! remembered consent), the consent decision, Entra's callback (Warden
//! redeems Entra's code as a confidential client, validates Entra's access
//! token into a [`Principal`] with the production [`Authenticator`], opens
//! a grant and gives the client Warden's own code), `/token`
//! (authorization code and refresh grants), `/revoke`, and the
//! authentication of Warden's access tokens on `/mcp`.
//!
//! **Step-up.** With an MFA authentication context configured
//! (`identity.mfa_auth_contexts`), Warden offers `oauth.step_up_scope`
//! (default `mfa`): an authorization request asking for it sends Entra a
//! `claims` request for the first context, so the grant's principal
//! carries it in `acrs` (and policy sees `context.mfa`). When policy wants
//! a step-up of a facade caller, the grant is marked
//! ([`super::step_up`]); the grant's next `/mcp` request is answered
//! `403 insufficient_scope` with the grant's scopes and the step-up scope,
//! and the client's step-up authorization, once back from Entra for the
//! same user and client, steps the marked grant up in place (same grant
//! id, so its MCP sessions go on; its older tokens are forgotten). The
//! authentication facts are always those of Entra's latest token for the
//! grant: a refresh takes the principal of Entra's refreshed token, so a
//! context Entra no longer reports is gone from the grant too.
//!
//! State lives in memory ([`Book`], [`Consents`]) and is written through
//! the store's `state` table before an answer leaves; at start it is
//! loaded back. On a store that replicas share (PostgreSQL) the store is
//! the truth ([`super::shared`]): each step reads the rows it decides on
//! (the code or token, its grant, the consent form, the transaction), so
//! any replica serves any step, and each single-use row (a code, a refresh
//! token, a consent form, a transaction) and each grant changes only by a
//! compare-and-set against what was read, so of replicas racing on one
//! exactly one wins and the others decide again from the winner's row.
//! Entra's refresh token is sealed with the grant. No token, code or Entra
//! response is logged or recorded; the audit log gets an
//! `auth` record for each sign-in, consent, token issue, refresh,
//! revocation and refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;

use super::cimd::CimdFetcher;
use super::client::{Client, ClientIdKind, ClientSource};
use super::config::OAuthConfig;
use super::consent::{
    ClientRequest, ConsentError, Consents, Pending, Transaction, consent_key, handle_hash,
};
use super::dcr;
use super::grants::{Binding, Book, Change, Grant, GrantError, Issued};
use super::metadata::{Issuer, MetadataOptions, OFFLINE_ACCESS};
use super::pkce::{self, CodeChallenge, CodeVerifier};
use super::resource::{CanonicalResource, check_resource};
use super::seal::{KeyRing, Purpose};
use super::shared::SharedState;
use super::step_up::{Holder, Mark, StepUps, Wanted};
use super::tokens::{Pepper, Token, TokenKind};
use crate::audit::Audit;
use crate::audit::auth::{Accepted, Refusal, Surface};
use crate::audit::record::{Kind, Record};
use crate::call::Principal;
use crate::identity::{Authenticator, StepUpMark};
use crate::store::{Reader, Store, StoreError};

/// The path of Entra's callback on Warden.
pub const CALLBACK_PATH: &str = "/oauth/callback";

/// Tokens Entra gave Warden (never shown to a client).
pub struct UpstreamTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens").finish_non_exhaustive()
    }
}

/// Why Entra did not give tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Entra refused (a disabled user, a failed Conditional Access check,
    /// a revoked session): the grant ends.
    #[error("Entra ID refused: {0}")]
    Refused(String),
    /// Entra could not be asked (network, 5xx, an answer that does not
    /// parse): try again later.
    #[error("Entra ID is unavailable: {0}")]
    Unavailable(String),
}

/// Warden as a confidential client of Entra ID.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// Where to send the browser: Entra's authorize endpoint for Warden's
    /// `redirect_uri`, `state`, PKCE `challenge`, `nonce`, and a `claims`
    /// request (step-up) when given.
    fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &CodeChallenge,
        nonce: &str,
        claims: Option<&str>,
    ) -> String;
    /// Redeems Entra's authorization code.
    async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &CodeVerifier,
    ) -> Result<UpstreamTokens, UpstreamError>;
    /// Refreshes at Entra.
    async fn refresh(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError>;
}

/// An OAuth error as the client sees it (RFC 6749 §5.2 / §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            error,
            error_description: description.into(),
        }
    }
}

/// What `/authorize`, the consent decision and the callback lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A bad client or redirect URI: an error page, never a redirect.
    ErrorPage(String),
    /// Back to the client's redirect URI (with `code` or `error`, `state`
    /// and `iss`).
    ToClient(String),
    /// The consent page for pending request `id`, bound to `csrf`.
    Consent {
        id: String,
        csrf: String,
        request: Box<ClientRequest>,
        client: Box<ConsentClient>,
    },
    /// To Entra, with the browser cookie that binds the transaction.
    ToEntra { url: String, browser: String },
}

/// What the consent page says about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentClient {
    pub name: String,
    /// `verified by configuration`, `metadata document at HOST`, or
    /// `unverified (registered dynamically)`.
    pub provenance: String,
    pub redirect_host: String,
    /// Every redirect URI is on this computer (loopback).
    pub loopback: bool,
}

/// The answer of `/token`.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The parameters of `/authorize`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

/// The form of `/token`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenForm {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
}

const NS_GRANT: &str = "oauth.grant";
const NS_ISSUED: &str = "oauth.issued";
const NS_CONSENT: &str = "oauth.consent";
const NS_TXN: &str = "oauth.txn";
const NS_BROWSER: &str = "oauth.browser";
/// Consent forms waiting for an answer (shared stores only: one process
/// keeps them in memory).
const NS_PENDING: &str = "oauth.pending";
/// Step-up marks by grant id (shared stores only).
const NS_STEP_UP: &str = "oauth.step_up";

/// How often a step decides again after another replica changed a row it
/// read first.
const ATTEMPTS: usize = 4;

/// The rows one decision read from a shared store, with the bytes each
/// held (what a compare-and-set expects); empty on an unshared store.
#[derive(Debug, Default)]
struct Snapshot {
    rows: HashMap<(&'static str, String), Option<Vec<u8>>>,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// The facade.
pub struct OAuthService {
    config: OAuthConfig,
    issuer: Issuer,
    resource: CanonicalResource,
    pepper: Pepper,
    keys: KeyRing,
    upstream: Arc<dyn Upstream>,
    identity: Arc<Authenticator>,
    store: Store,
    /// Keyed reads and compare-and-sets on `store` (a shared store's rows
    /// are read before each decision).
    state: SharedState,
    audit: Arc<Audit>,
    cimd: Option<CimdFetcher>,
    dcr_limiter: dcr::RateLimiter,
    pre_registered: HashMap<String, Client>,
    /// The authentication context a step-up asks Entra for.
    step_up_acr: Option<String>,
    book: Mutex<Book>,
    consents: Mutex<Consents>,
    /// Browser cookie hash → the user it signed in (tid, oid), to skip a
    /// remembered consent.
    browsers: Mutex<Browsers>,
    /// Grants policy wants stepped up (in the store too when it is shared).
    step_ups: Mutex<StepUps>,
}

impl std::fmt::Debug for OAuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthService")
            .field("issuer", &self.issuer.as_str())
            .finish_non_exhaustive()
    }
}

/// What building the service needs.
pub struct Parts {
    pub config: OAuthConfig,
    /// Warden's MCP URL (`{issuer}/mcp`): the one `resource` tokens are for.
    pub mcp_url: String,
    pub pepper: Pepper,
    pub keys: KeyRing,
    pub upstream: Arc<dyn Upstream>,
    pub identity: Arc<Authenticator>,
    pub audit: Arc<Audit>,
    pub cimd: Option<CimdFetcher>,
    pub step_up_acr: Option<String>,
}

impl OAuthService {
    /// The service, with its state loaded from the store.
    pub fn open(parts: Parts) -> Result<OAuthService, String> {
        let config = parts.config;
        config.validate().map_err(|e| e.to_string())?;
        let issuer = config
            .parsed_issuer()
            .ok_or("oauth.issuer: required when mode is not off")?;
        let resource = CanonicalResource::parse(&parts.mcp_url).map_err(|e| e.to_string())?;
        let mut pre_registered = HashMap::new();
        for client in &config.pre_registered {
            let resolved = Client::pre_registered(client)
                .map_err(|e| format!("oauth.pre_registered {:?}: {e}", client.client_id))?;
            pre_registered.insert(client.client_id.clone(), resolved);
        }
        let store = parts.audit.store().clone();
        let now = Utc::now();
        let (book, consents, browsers) = match store.reader() {
            Ok(reader) => load(&reader, now).map_err(|e| e.to_string())?,
            Err(_) => (Book::default(), Consents::default(), HashMap::new()),
        };
        let step_ups = StepUps::new(config.lifetimes.transaction);
        Ok(OAuthService {
            dcr_limiter: dcr::RateLimiter::per_hour(config.dcr.rate_limit_per_hour),
            config,
            issuer,
            resource,
            pepper: parts.pepper,
            keys: parts.keys,
            upstream: parts.upstream,
            identity: parts.identity,
            state: SharedState::new(store.clone()),
            store,
            audit: parts.audit,
            cimd: parts.cimd,
            pre_registered,
            step_up_acr: parts.step_up_acr,
            book: Mutex::new(book),
            consents: Mutex::new(consents),
            browsers: Mutex::new(browsers),
            step_ups: Mutex::new(step_ups),
        })
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// Warden's callback URL registered at Entra.
    pub fn callback_url(&self) -> String {
        self.issuer.endpoint(CALLBACK_PATH)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn consents(&self) -> std::sync::MutexGuard<'_, Consents> {
        self.consents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn step_ups(&self) -> std::sync::MutexGuard<'_, StepUps> {
        self.step_ups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The step-up scope, when Warden offers a step-up (an MFA
    /// authentication context is configured to ask Entra for).
    pub fn offered_step_up_scope(&self) -> Option<&str> {
        self.step_up_acr
            .as_ref()
            .map(|_| self.config.step_up_scope.as_str())
    }

    /// What the metadata document says besides the issuer.
    pub fn metadata_options(&self) -> MetadataOptions {
        let mut options = self.config.metadata_options();
        options.step_up_scope = self.offered_step_up_scope().map(str::to_owned);
        options
    }

    /// The scopes a remembered consent is for: the step-up scope asks for
    /// a stronger sign-in, not for more access, so a consent to the other
    /// scopes covers it.
    fn consent_scopes(&self, scopes: &[String]) -> Vec<String> {
        scopes
            .iter()
            .filter(|s| Some(s.as_str()) != self.offered_step_up_scope())
            .cloned()
            .collect()
    }

    /// The client `client_id` names, or why none.
    pub async fn client(&self, client_id: &str) -> Result<Client, String> {
        match ClientIdKind::of(client_id) {
            ClientIdKind::PreRegistered => self
                .pre_registered
                .get(client_id)
                .cloned()
                .ok_or_else(|| format!("no client {client_id:?} is registered")),
            ClientIdKind::Dynamic => {
                dcr::decode_client_id(&self.keys, client_id).map_err(|e| e.to_string())
            }
            ClientIdKind::MetadataDocument => match &self.cimd {
                Some(fetcher) => fetcher.client(client_id).await.map_err(|e| e.to_string()),
                None => Err("client metadata documents are not accepted here".into()),
            },
        }
    }

    /// `/register` (RFC 7591).
    pub fn register(
        &self,
        body: &[u8],
        from: std::net::IpAddr,
    ) -> Result<dcr::RegistrationResponse, OAuthError> {
        if !self.config.dcr.enabled {
            return Err(OAuthError::new(
                "invalid_request",
                "dynamic client registration is turned off here",
            ));
        }
        self.dcr_limiter.check(from).map_err(|limited| {
            OAuthError::new(
                "invalid_request",
                format!(
                    "too many registrations from this address; try again in {} s",
                    limited.retry_after.as_secs()
                ),
            )
        })?;
        let registration = dcr::validate_request(body)
            .map_err(|e| OAuthError::new(e.error_code(), e.to_string()))?;
        let now = Utc::now().timestamp();
        let id = dcr::issue_client_id(&self.keys, &registration, now)
            .map_err(|e| OAuthError::new("server_error", e.to_string()))?;
        Ok(dcr::registration_response(id, &registration, now))
    }

    /// `/authorize`. `browser` is the value of the browser's facade
    /// cookie, if it has one.
    pub async fn authorize(&self, params: &AuthorizeParams, browser: Option<&str>) -> Step {
        let now = Utc::now();
        let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Step::ErrorPage("The request names no client (client_id is missing).".into());
        };
        let client = match self.client(client_id).await {
            Ok(client) => client,
            Err(why) => return Step::ErrorPage(format!("The client is not accepted: {why}.")),
        };
        let Some(requested) = params.redirect_uri.as_deref() else {
            return Step::ErrorPage("The request names no redirect_uri.".into());
        };
        let redirect = match client.find_redirect(requested) {
            Ok(redirect) => redirect,
            Err(why) => {
                return Step::ErrorPage(format!(
                    "The redirect URI is not one the client registered: {why}."
                ));
            }
        };
        // From here on errors go back to the (verified) redirect URI.
        let state = params.state.clone();
        let back = |error: &'static str, description: String| {
            self.answer(
                redirect.as_str(),
                state.as_deref(),
                &[("error", error), ("error_description", &description)],
            )
        };
        if params.response_type.as_deref() != Some("code") {
            return back(
                "unsupported_response_type",
                "response_type must be code".into(),
            );
        }
        let challenge = match pkce::check_challenge(
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            Ok(challenge) => challenge,
            Err(e) => return back("invalid_request", e.to_string()),
        };
        let resources: Vec<&str> = params.resource.as_deref().into_iter().collect();
        let resource = match check_resource(&resources, &self.resource) {
            Ok(resource) => resource,
            Err(e) => return back(e.error_code(), e.to_string()),
        };
        let (scopes, step_up) = match self.scopes(params.scope.as_deref(), &client) {
            Ok(asked) => asked,
            Err(e) => return back("invalid_scope", e),
        };
        let request = ClientRequest {
            client_id: client.id.clone(),
            client_label: client.display_name().to_owned(),
            redirect_uri: redirect.as_str().to_owned(),
            state: params.state.clone(),
            challenge: challenge.as_str().to_owned(),
            resource: resource.as_str().to_owned(),
            scopes,
            step_up,
        };
        // A user who approved this client, redirect and scopes before, in
        // this browser, goes straight to Entra.
        if let Some(cookie) = browser
            && let Some((tid, oid)) = self.browser_user(cookie, now).await
        {
            let key = consent_key(
                &tid,
                &oid,
                &request.client_id,
                &request.redirect_uri,
                &self.consent_scopes(&request.scopes),
            );
            if self.remembered(&key, now).await {
                return match self.to_entra(request, Some(cookie.to_owned()), now).await {
                    Ok(step) => step,
                    Err(e) => back("temporarily_unavailable", e.to_string()),
                };
            }
        }
        let id = random();
        let csrf = random();
        let consent = ConsentClient {
            name: client.display_name().to_owned(),
            provenance: match &client.source {
                ClientSource::PreRegistered => "configured by your administrators".into(),
                ClientSource::MetadataDocument { host } => {
                    format!("described by a metadata document at {host}")
                }
                ClientSource::Dynamic { .. } => {
                    "unverified: it registered itself; its name is its own claim".into()
                }
            },
            redirect_host: redirect.host().to_owned(),
            loopback: client.loopback_only(),
        };
        let expires = now + chrono(self.config.lifetimes.transaction);
        self.consents()
            .hold(id.clone(), request.clone(), csrf.clone(), expires, now);
        if self.state.shared() {
            // Another replica may take the answer.
            let held = self.consents().held(&id);
            let stored = held.and_then(|pending| serde_json::to_vec(&pending).ok());
            let kept = match stored {
                Some(bytes) => self
                    .store
                    .put_state(NS_PENDING, &handle_hash(&id), bytes, Some(expires))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("the consent form could not be encoded".to_owned()),
            };
            if let Err(e) = kept {
                tracing::error!(target: "warden::oauth", error = %e, "consent form not stored");
                return back(
                    "temporarily_unavailable",
                    "the sign-in could not be started; try again".into(),
                );
            }
        }
        Step::Consent {
            id,
            csrf,
            request: Box::new(request),
            client: Box::new(consent),
        }
    }

    /// The scopes asked, and whether they ask for a step-up: Warden's
    /// configured ones (default all of them), `offline_access` allowed for
    /// clients that may refresh, and the step-up scope when offered (last;
    /// it adds no access, so with no other scope the configured ones are
    /// granted beside it).
    fn scopes(&self, asked: Option<&str>, client: &Client) -> Result<(Vec<String>, bool), String> {
        let step_up_scope = self.offered_step_up_scope();
        let mut step_up = false;
        let mut scopes = Vec::new();
        for scope in asked.unwrap_or("").split_whitespace() {
            if scope == OFFLINE_ACCESS && client.refresh_allowed {
                continue;
            }
            if Some(scope) == step_up_scope {
                step_up = true;
                continue;
            }
            if !self.config.scopes.iter().any(|s| s == scope) {
                // No aliases: a client that cached Entra's scope for Warden
                // (`api://…/access_as_user`, from before the facade) is told
                // what to ask for and re-discovers it from the metadata.
                let mut offered = self.config.scopes.clone();
                offered.extend(step_up_scope.map(str::to_owned));
                if client.refresh_allowed {
                    offered.push(OFFLINE_ACCESS.to_owned());
                }
                return Err(format!(
                    "scope {scope:?} is not offered here; Warden's authorization server \
                     offers: {}",
                    offered.join(" ")
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            scopes = self.config.scopes.clone();
        }
        if let (true, Some(scope)) = (step_up, step_up_scope) {
            scopes.push(scope.to_owned());
        }
        Ok((scopes, step_up))
    }

    /// The user a browser cookie signed in, if still fresh (on a shared
    /// store, as the store has it).
    async fn browser_user(&self, cookie: &str, now: DateTime<Utc>) -> Option<(String, String)> {
        let hash = handle_hash(cookie);
        if self.state.shared() {
            let bytes = self.state.get(NS_BROWSER, &hash).await.ok()??;
            return serde_json::from_slice(&bytes).ok();
        }
        let browsers = self.browsers.lock().unwrap_or_else(PoisonError::into_inner);
        browsers
            .get(&hash)
            .filter(|(_, _, until)| *until > now)
            .map(|(tid, oid, _)| (tid.clone(), oid.clone()))
    }

    /// Whether consent `key` is remembered (on a shared store, also when
    /// another replica remembered it).
    async fn remembered(&self, key: &str, now: DateTime<Utc>) -> bool {
        if self.consents().remembered(key, now) {
            return true;
        }
        if !self.state.shared() {
            return false;
        }
        let Ok(Some(bytes)) = self.state.get(NS_CONSENT, key).await else {
            return false;
        };
        let until = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|until| until.with_timezone(&Utc));
        match until {
            Some(until) if until > now => {
                self.consents().remember(key.to_owned(), until);
                true
            }
            _ => false,
        }
    }

    /// On a shared store: reads the step-up mark of `grant` into memory;
    /// the bytes read.
    async fn sync_step_up(&self, grant: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let read = self.state.get(NS_STEP_UP, grant).await?;
        let mark = read
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<Mark>(bytes).ok());
        self.step_ups().put(grant, mark);
        Ok(read)
    }

    /// The grant a step-up sign-in of `holder` answers (its mark removed):
    /// on a shared store, of the marks every replica set, and taken by a
    /// compare-and-set so that one sign-in steps one grant up.
    async fn answered_step_up(&self, holder: &Holder, now: DateTime<Utc>) -> Option<String> {
        if !self.state.shared() {
            return self.step_ups().answered(holder, now);
        }
        let rows = match self.state.all(NS_STEP_UP).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(target: "warden::oauth", %error, "step-up marks not read");
                return None;
            }
        };
        let marks: HashMap<String, (Mark, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(grant, bytes)| {
                let mark = serde_json::from_slice::<Mark>(&bytes).ok()?;
                Some((grant, (mark, bytes)))
            })
            .collect();
        let grant = {
            let mut step_ups = self.step_ups();
            step_ups.put_all(marks.iter().map(|(g, (m, _))| (g.clone(), m.clone())));
            step_ups.answered(holder, now)?
        };
        let (_, read) = marks.get(&grant)?;
        match self.state.take(NS_STEP_UP, &grant, read.clone()).await {
            Ok(true) => Some(grant),
            _ => None,
        }
    }

    /// Takes the answer to consent form `id` from a browser holding
    /// `csrf`: once, on whichever replica it arrives (on a shared store the
    /// form is read from the store and taken by a compare-and-set).
    async fn answer_consent(
        &self,
        id: &str,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<ClientRequest, ConsentError> {
        if !self.state.shared() {
            return self.consents().answer(id, csrf, now);
        }
        let key = handle_hash(id);
        let read = self
            .state
            .get(NS_PENDING, &key)
            .await
            .map_err(|_| ConsentError::UnknownPending)?;
        let pending = read
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<Pending>(bytes).ok());
        self.consents().put_pending(id, pending);
        let request = self.consents().answer(id, csrf, now)?;
        let taken = match read {
            Some(read) => matches!(self.state.take(NS_PENDING, &key, read).await, Ok(true)),
            None => false,
        };
        if taken {
            Ok(request)
        } else {
            Err(ConsentError::UnknownPending)
        }
    }

    /// Takes the transaction of `state_hash` for the browser back at the
    /// callback: once, on whichever replica Entra's answer arrives (on a
    /// shared store it is read from the store and taken by a
    /// compare-and-set; a transaction that was taken stays taken whatever
    /// happens next).
    async fn finish_transaction(
        &self,
        state_hash: &str,
        browser: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Transaction, ConsentError> {
        if !self.state.shared() {
            let taken = self.consents().finish(state_hash, browser, now);
            // Single use, whatever happens next.
            let _ = self.store.delete_state(NS_TXN, state_hash).await;
            return taken;
        }
        let read = self
            .state
            .get(NS_TXN, state_hash)
            .await
            .map_err(|_| ConsentError::UnknownTransaction)?;
        let transaction = read
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<Transaction>(bytes).ok());
        self.consents().put_transaction(state_hash, transaction);
        let finished = self.consents().finish(state_hash, browser, now);
        if finished.is_ok() || finished == Err(ConsentError::OtherBrowser) {
            let taken = match read {
                Some(read) => matches!(self.state.take(NS_TXN, state_hash, read).await, Ok(true)),
                None => false,
            };
            if !taken {
                return Err(ConsentError::UnknownTransaction);
            }
        }
        finished
    }

    /// The consent page's answer.
    pub async fn decide(&self, id: &str, csrf: &str, approve: bool, browser: Option<&str>) -> Step {
        let now = Utc::now();
        let request = match self.answer_consent(id, csrf, now).await {
            Ok(request) => request,
            Err(e) => return Step::ErrorPage(e.to_string()),
        };
        if !approve {
            self.record("consent_denied", None, Some(&request.client_id), None)
                .await;
            return self.answer(
                &request.redirect_uri,
                request.state.as_deref(),
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user denied the request"),
                ],
            );
        }
        let redirect = request.redirect_uri.clone();
        let state = request.state.clone();
        match self
            .to_entra(request, browser.map(str::to_owned), now)
            .await
        {
            Ok(step) => step,
            Err(e) => {
                tracing::error!(target: "warden::oauth", error = %e, "sign-in transaction not stored");
                self.answer(
                    &redirect,
                    state.as_deref(),
                    &[
                        ("error", "temporarily_unavailable"),
                        (
                            "error_description",
                            "the sign-in could not be started; try again",
                        ),
                    ],
                )
            }
        }
    }

    /// Starts the Entra leg for an approved request: a transaction under a
    /// random `state`, bound to the browser, durable before the redirect.
    async fn to_entra(
        &self,
        request: ClientRequest,
        browser: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Step, StoreError> {
        let state = random();
        let nonce = random();
        let browser = browser.unwrap_or_else(random);
        let verifier = CodeVerifier::generate();
        let sealed = self
            .keys
            .sealer(Purpose::UpstreamToken)
            .seal(verifier.expose().as_bytes(), &[b"pkce", state.as_bytes()])
            .map_err(|e| StoreError::Seal(e.to_string()))?;
        let claims = match (&self.step_up_acr, request.step_up) {
            (Some(acr), true) => Some(step_up_claims(acr)),
            _ => None,
        };
        let transaction = Transaction {
            request,
            verifier: STANDARD.encode(sealed),
            nonce: nonce.clone(),
            browser: handle_hash(&browser),
            expires: now + chrono(self.config.lifetimes.transaction),
        };
        let state_hash = handle_hash(&state);
        let bytes = serde_json::to_vec(&transaction).unwrap_or_default();
        self.store
            .put_state(NS_TXN, &state_hash, bytes, Some(transaction.expires))
            .await?;
        self.consents().begin(state_hash, transaction);
        let url = self.upstream.authorize_url(
            &self.callback_url(),
            &state,
            &verifier.challenge(),
            &nonce,
            claims.as_deref(),
        );
        Ok(Step::ToEntra { url, browser })
    }

    /// Entra's callback: `state` and `code` (or Entra's `error`).
    pub async fn callback(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        error: Option<&str>,
        browser: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
    ) -> Step {
        let now = Utc::now();
        let Some(state) = state else {
            self.sign_in_refused(None, "no state", source_ip).await;
            return Step::ErrorPage("The sign-in answer carries no state.".into());
        };
        let state_hash = handle_hash(state);
        let taken = self
            .finish_transaction(&state_hash, browser.map(handle_hash).as_deref(), now)
            .await;
        let transaction = match taken {
            Ok(transaction) => transaction,
            Err(e) => {
                self.sign_in_refused(None, &e.to_string(), source_ip).await;
                return Step::ErrorPage(e.to_string());
            }
        };
        let request = transaction.request.clone();
        let back = |error: &'static str, description: &str| {
            self.answer(
                &request.redirect_uri,
                request.state.as_deref(),
                &[("error", error), ("error_description", description)],
            )
        };
        if let Some(error) = error {
            self.sign_in_refused(
                Some(&request.client_id),
                &format!("Entra ID answered {error}"),
                source_ip,
            )
            .await;
            return back("access_denied", "the sign-in at Entra ID did not complete");
        }
        let Some(code) = code else {
            return back("server_error", "Entra ID's answer carries no code");
        };
        let verifier = match self.open_verifier(&transaction.verifier, state) {
            Some(verifier) => verifier,
            None => return back("server_error", "the sign-in transaction cannot be read"),
        };
        let tokens = match self
            .upstream
            .redeem(code, &self.callback_url(), &verifier)
            .await
        {
            Ok(tokens) => tokens,
            Err(e) => {
                self.sign_in_refused(Some(&request.client_id), &e.to_string(), source_ip)
                    .await;
                return back("access_denied", "Entra ID did not accept the sign-in");
            }
        };
        let principal = match self
            .identity
            .authenticate(Some(&format!("Bearer {}", tokens.access_token)), source_ip)
            .await
        {
            Ok(principal) => principal,
            Err(e) => {
                self.sign_in_refused(Some(&request.client_id), &e.to_string(), source_ip)
                    .await;
                return back("access_denied", "the account cannot use Warden");
            }
        };
        let binding = Binding {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.challenge.clone(),
            resource: request.resource.clone(),
        };
        let lifetimes = self.config.lifetimes.clone();
        // A step-up sign-in answers the user's grant that policy marked for
        // a step-up through this client: that grant is stepped up in place.
        let marked = if request.step_up {
            let holder = Holder {
                tid: principal.tid.clone(),
                oid: principal.oid.clone(),
                client_id: request.client_id.clone(),
            };
            self.answered_step_up(&holder, now).await
        } else {
            None
        };
        let mut snap = Snapshot::default();
        let stepped_up = match marked {
            Some(id) => {
                if let Err(e) = self.sync_grant(&mut snap, &id).await {
                    tracing::error!(target: "warden::oauth", error = %e, "grant not read");
                    return back(
                        "temporarily_unavailable",
                        "the sign-in could not be kept; try again",
                    );
                }
                self.book().step_up(
                    &self.pepper,
                    &id,
                    principal.clone(),
                    binding.clone(),
                    request.scopes.clone(),
                    &lifetimes,
                    now,
                )
            }
            None => None,
        };
        let event = if stepped_up.is_some() {
            "stepped_up"
        } else {
            "signed_in"
        };
        let (grant, warden_code, mut changes) = match stepped_up {
            Some(stepped_up) => stepped_up,
            None => self.book().open(
                &self.pepper,
                principal.clone(),
                binding,
                request.scopes.clone(),
                None,
                &lifetimes,
                now,
            ),
        };
        // Entra's refresh token, sealed under the grant's id and client.
        match self.seal_upstream_for(
            tokens.refresh_token.as_deref(),
            &grant.id,
            &request.client_id,
        ) {
            Ok(sealed) => changes.extend(self.book().set_upstream(&grant.id, sealed)),
            Err(e) => {
                tracing::error!(target: "warden::oauth", error = %e, "Entra's token cannot be sealed");
                return back("server_error", "the sign-in could not be kept");
            }
        }
        let key = consent_key(
            &principal.tid,
            &principal.oid,
            &request.client_id,
            &request.redirect_uri,
            &self.consent_scopes(&request.scopes),
        );
        let until = now + chrono(self.config.lifetimes.consent);
        let committed = match self.commit(changes, &mut snap).await {
            Ok(true) => Ok(()),
            // The grant changed on another replica meanwhile (revoked,
            // say): the client starts again.
            Ok(false) => Err(StoreError::Conflict(format!("{NS_GRANT}/{}", grant.id))),
            Err(e) => Err(e),
        };
        if let Err(e) = committed.and(
            self.store
                .put_state(
                    NS_CONSENT,
                    &key,
                    until.to_rfc3339().into_bytes(),
                    Some(until),
                )
                .await,
        ) {
            tracing::error!(target: "warden::oauth", error = %e, "grant not stored");
            return back(
                "temporarily_unavailable",
                "the sign-in could not be kept; try again",
            );
        }
        self.consents().remember(key, until);
        if let Some(browser) = browser {
            let until = now + chrono(self.config.lifetimes.session);
            let hash = handle_hash(browser);
            let value = json!([principal.tid, principal.oid])
                .to_string()
                .into_bytes();
            if self
                .store
                .put_state(NS_BROWSER, &hash, value, Some(until))
                .await
                .is_ok()
            {
                self.browsers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(hash, (principal.tid.clone(), principal.oid.clone(), until));
            }
        }
        self.record(event, Some(&principal), Some(&request.client_id), None)
            .await;
        self.answer(
            &request.redirect_uri,
            request.state.as_deref(),
            &[("code", warden_code.expose())],
        )
    }

    /// Back to the client's `redirect_uri` with `pairs` (a code, or an
    /// error), its `state` and Warden's `iss` (RFC 9207).
    fn answer(&self, redirect_uri: &str, state: Option<&str>, pairs: &[(&str, &str)]) -> Step {
        let mut all = pairs.to_vec();
        if let Some(state) = state {
            all.push(("state", state));
        }
        all.push(("iss", self.issuer.as_str()));
        Step::ToClient(with_query(redirect_uri, &all))
    }

    fn open_verifier(&self, sealed: &str, state: &str) -> Option<CodeVerifier> {
        let bytes = STANDARD.decode(sealed).ok()?;
        let plain = self
            .keys
            .sealer(Purpose::UpstreamToken)
            .open(&bytes, &[b"pkce", state.as_bytes()])
            .ok()?;
        CodeVerifier::parse(std::str::from_utf8(&plain).ok()?).ok()
    }

    /// Entra's refresh token sealed for `grant_id` and `client_id`.
    fn seal_upstream_for(
        &self,
        token: Option<&str>,
        grant_id: &str,
        client_id: &str,
    ) -> Result<Option<String>, String> {
        let Some(token) = token else {
            return Ok(None);
        };
        self.keys
            .sealer(Purpose::UpstreamToken)
            .seal(
                token.as_bytes(),
                &[grant_id.as_bytes(), client_id.as_bytes()],
            )
            .map(|sealed| Some(STANDARD.encode(sealed)))
            .map_err(|e| e.to_string())
    }

    fn open_upstream(&self, grant: &Grant) -> Option<String> {
        let sealed = STANDARD.decode(grant.upstream.as_deref()?).ok()?;
        let plain = self
            .keys
            .sealer(Purpose::UpstreamToken)
            .open(&sealed, &[grant.id.as_bytes(), grant.client_id.as_bytes()])
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// `/token`.
    /// The token endpoint. `source_ip` is the client's address, for the
    /// record of a refusal.
    pub async fn token(
        &self,
        form: &TokenForm,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<TokenResponse, OAuthError> {
        let now = Utc::now();
        let lifetimes = self.config.lifetimes.clone();
        let Some(client_id) = form.client_id.as_deref() else {
            return Err(OAuthError::new(
                "invalid_request",
                "client_id is required (public clients)",
            ));
        };
        match form.grant_type.as_deref() {
            Some("authorization_code") => {
                let code = form
                    .code
                    .as_deref()
                    .and_then(|c| Token::parse_kind(c, TokenKind::Code).ok())
                    .ok_or_else(|| {
                        OAuthError::new("invalid_grant", "the code is malformed or missing")
                    })?;
                let redirect_uri = form.redirect_uri.as_deref().unwrap_or_default();
                let resources: Vec<&str> = form.resource.as_deref().into_iter().collect();
                let resource = check_resource(&resources, &self.resource)
                    .map_err(|e| OAuthError::new(e.error_code(), e.to_string()))?;
                let verifier = form.code_verifier.clone();
                // The code is spent by a compare-and-set: of replicas
                // redeeming one code at once, one spends it; the others
                // read it spent and treat theirs as its reuse.
                let decided = self
                    .decide_on(&code, |book| {
                        // The time of this attempt: after the rows it reads.
                        let now = Utc::now();
                        let redeemed = book.redeem_code(
                            &self.pepper,
                            &code,
                            client_id,
                            redirect_uri,
                            resource.as_str(),
                            |challenge| {
                                CodeChallenge::parse(challenge)
                                    .ok()
                                    .is_some_and(|c| pkce::verify(&c, verifier.as_deref()).is_ok())
                            },
                            &lifetimes,
                            now,
                        );
                        match redeemed {
                            Ok(mut redeemed) => {
                                let changes = std::mem::take(&mut redeemed.changes);
                                (Ok(redeemed), changes)
                            }
                            Err((error, changes)) => (Err(error), changes),
                        }
                    })
                    .await;
                let redeemed = match decided {
                    Ok((Ok(redeemed), _)) => redeemed,
                    Ok((Err(error), _)) => {
                        let presented = form.code.as_deref();
                        return Err(self
                            .refused("token_refused", client_id, error, source_ip, presented)
                            .await);
                    }
                    Err(e) => return Err(unavailable(e)),
                };
                let issued = self
                    .book()
                    .issue(&self.pepper, &redeemed.grant.id, &lifetimes, now);
                let (tokens, more) =
                    issued.map_err(|e| OAuthError::new("invalid_grant", e.to_string()))?;
                self.commit(more, &mut Snapshot::default())
                    .await
                    .map_err(unavailable)?;
                self.record(
                    "token_issued",
                    Some(&redeemed.grant.principal),
                    Some(client_id),
                    None,
                )
                .await;
                Ok(self.response(&redeemed.grant, tokens, now))
            }
            Some("refresh_token") => {
                let token = form
                    .refresh_token
                    .as_deref()
                    .and_then(|t| Token::parse_kind(t, TokenKind::Refresh).ok())
                    .ok_or_else(|| {
                        OAuthError::new(
                            "invalid_grant",
                            "the refresh token is malformed or missing",
                        )
                    })?;
                // The token is marked used by a compare-and-set: of replicas
                // refreshing with one token at once, one rotates it; the
                // others read it used and follow the reuse rules.
                let decided = self
                    .decide_on(&token, |book| {
                        // The time of this attempt: after the rows it reads
                        // (an earlier time could fall before another
                        // replica's use of the token, and pass for its
                        // grace).
                        let now = Utc::now();
                        match book.use_refresh(&self.pepper, &token, client_id, &lifetimes, now) {
                            Ok(mut redeemed) => {
                                // The grant's `refreshed` is written below,
                                // with what Entra says (a grant that another
                                // replica changed meanwhile is read again
                                // then, not the token).
                                let changes = std::mem::take(&mut redeemed.changes)
                                    .into_iter()
                                    .filter(|c| !matches!(c, Change::Grant(_)))
                                    .collect();
                                (Ok(redeemed), changes)
                            }
                            Err((error, changes)) => (Err(error), changes),
                        }
                    })
                    .await;
                let (redeemed, mut snap) = match decided {
                    Ok((Ok(redeemed), snap)) => (redeemed, snap),
                    Ok((Err(error), _)) => {
                        let presented = form.refresh_token.as_deref();
                        return Err(self
                            .refused("refresh_refused", client_id, error, source_ip, presented)
                            .await);
                    }
                    Err(e) => return Err(unavailable(e)),
                };
                let mut grant = redeemed.grant;
                let mut sealed_upstream = grant.upstream.clone();
                let mut asked_entra = false;
                // Entra first: a disabled user or a failed Conditional
                // Access check ends the grant here.
                if let Some(upstream_token) = self.open_upstream(&grant) {
                    match self.upstream.refresh(&upstream_token).await {
                        Ok(fresh) => {
                            asked_entra = true;
                            // The grant's authentication facts are those of Entra's
                            // latest token: a context (MFA) Entra no longer reports is
                            // gone from the grant too.
                            match self
                                .identity
                                .authenticate(Some(&format!("Bearer {}", fresh.access_token)), None)
                                .await
                            {
                                Ok(principal) => grant.principal = principal,
                                Err(error) => {
                                    tracing::warn!(target: "warden::oauth", %error, "Entra's refreshed token is not accepted; the grant keeps its user without MFA facts");
                                    grant.principal.mfa = false;
                                    grant.principal.acrs.clear();
                                }
                            }
                            sealed_upstream = self
                                .seal_upstream_for(
                                    fresh.refresh_token.as_deref(),
                                    &grant.id,
                                    &grant.client_id,
                                )
                                .ok()
                                .flatten()
                                .or(grant.upstream.clone());
                        }
                        Err(UpstreamError::Refused(why)) => {
                            let reason = format!("Entra ID refused the refresh: {why}");
                            let _ = self
                                .update_grant(&grant.id, &mut snap, |book| {
                                    book.revoke_grant(&grant.id, &reason, now)
                                })
                                .await;
                            self.record(
                                "refresh_refused",
                                Some(&grant.principal),
                                Some(client_id),
                                Some(&reason),
                            )
                            .await;
                            return Err(OAuthError::new(
                                "invalid_grant",
                                "Entra ID no longer signs this user in",
                            ));
                        }
                        Err(UpstreamError::Unavailable(why)) => {
                            // Nothing was issued: the same refresh token
                            // must work when the client tries again.
                            let changes = self.book().unuse_refresh(&self.pepper, &token);
                            let _ = self.commit(changes, &mut snap).await;
                            tracing::warn!(target: "warden::oauth", %why, "Entra ID unavailable for a refresh");
                            return Err(OAuthError::new(
                                "temporarily_unavailable",
                                "Entra ID cannot be reached; try again",
                            ));
                        }
                    }
                }
                self.update_grant(&grant.id, &mut snap, |book| {
                    let mut changes = book.touch(&grant.id, now);
                    if asked_entra {
                        changes.extend(book.set_principal(&grant.id, grant.principal.clone()));
                        changes.extend(book.set_upstream(&grant.id, sealed_upstream.clone()));
                    }
                    changes
                })
                .await
                .map_err(unavailable)?;
                let issued = self.book().issue(&self.pepper, &grant.id, &lifetimes, now);
                let (tokens, more) =
                    issued.map_err(|e| OAuthError::new("invalid_grant", e.to_string()))?;
                self.commit(more, &mut snap).await.map_err(unavailable)?;
                let rotated = self
                    .book()
                    .rotated_to(&self.pepper, &token, &tokens.refresh);
                // Not rotated (another replica changed the old token since)
                // leaves it used without a successor: its reuse is caught.
                if !self.commit(rotated, &mut snap).await.map_err(unavailable)? {
                    tracing::info!(target: "warden::oauth", "a used refresh token changed before its successor was noted");
                }
                self.record(
                    "token_refreshed",
                    Some(&grant.principal),
                    Some(client_id),
                    None,
                )
                .await;
                Ok(self.response(&grant, tokens, now))
            }
            Some(other) => Err(OAuthError::new(
                "unsupported_grant_type",
                format!(
                    "grant_type {other:?} is not supported: use authorization_code or refresh_token"
                ),
            )),
            None => Err(OAuthError::new("invalid_request", "grant_type is required")),
        }
    }

    /// A refused code or refresh token (what the refusal changed, a
    /// revoked grant, is durable already): the refusal recorded,
    /// `invalid_grant`.
    async fn refused(
        &self,
        event: &str,
        client_id: &str,
        error: GrantError,
        source_ip: Option<std::net::IpAddr>,
        presented: Option<&str>,
    ) -> OAuthError {
        let detail = error.to_string();
        self.audit
            .auth_refused(
                Surface::OAuth,
                Refusal {
                    event,
                    reason: &detail,
                    source_ip,
                    client: Some(client_id),
                    token: presented,
                    detail: Some(&detail),
                    user_agent: None,
                    extra: None,
                },
            )
            .await;
        OAuthError::new("invalid_grant", detail)
    }

    fn response(
        &self,
        grant: &Grant,
        tokens: super::grants::Tokens,
        now: DateTime<Utc>,
    ) -> TokenResponse {
        TokenResponse {
            access_token: tokens.access.expose().to_owned(),
            token_type: "Bearer",
            expires_in: (tokens.access_expires - now).num_seconds().max(0),
            refresh_token: Some(tokens.refresh.expose().to_owned()),
            scope: grant.scopes.join(" "),
        }
    }

    /// `/revoke` (RFC 7009): any of a grant's tokens revokes the grant; an
    /// unknown token is not an error.
    pub async fn revoke(&self, token: &str) -> Result<(), OAuthError> {
        let Ok(token) = Token::parse(token) else {
            return Ok(());
        };
        let now = Utc::now();
        let (revoked, _) = self
            .decide_on(&token, |book| {
                let changes = book.revoke_token(&self.pepper, &token, "revoked by the client", now);
                (!changes.is_empty(), changes)
            })
            .await
            .map_err(unavailable)?;
        if revoked {
            self.record("revoked", None, None, None).await;
        }
        Ok(())
    }

    /// The principal of one of Warden's access tokens, or why not. On a
    /// shared store the token and its grant are read first, so a token
    /// another replica issued is known, and one whose grant another
    /// replica revoked or ended is refused, at once.
    pub async fn authenticate(
        &self,
        bearer: &str,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, String> {
        let token = Token::parse_kind(bearer, TokenKind::Access).map_err(|e| e.to_string())?;
        self.sync_token(&token)
            .await
            .map_err(|e| format!("the token cannot be checked now: {e}"))?;
        let book = self.book();
        let grant = book
            .authenticate(&self.pepper, &token, &self.config.lifetimes, Utc::now())
            .map_err(|e: GrantError| e.to_string())?;
        let mut principal = grant.principal.clone();
        principal.source_ip = source_ip;
        principal.client_app = Some(grant.client_id.clone());
        principal.grant = Some(grant.id.clone());
        Ok(principal)
    }

    /// Makes `changes` durable. A row `snap` read from a shared store is
    /// changed only if it still holds what was read (`Ok(false)`, and
    /// nothing more written, when another replica changed it first); other
    /// rows (new ones, or any row on an unshared store) are written as they
    /// are. `snap` then holds what was written.
    async fn commit(&self, changes: Vec<Change>, snap: &mut Snapshot) -> Result<bool, StoreError> {
        // Each `Change::Grant` is a whole copy: only a grant's last counts.
        let last_of_grant: HashMap<String, usize> = changes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Change::Grant(g) => Some((g.id.clone(), i)),
                _ => None,
            })
            .collect();
        for (i, change) in changes.into_iter().enumerate() {
            let (ns, key, bytes, expires) = match change {
                Change::Grant(grant) => {
                    if last_of_grant.get(&grant.id) != Some(&i) {
                        continue;
                    }
                    let bytes = serde_json::to_vec(&*grant).unwrap_or_default();
                    let keep = grant.ends + chrono::Duration::days(1);
                    (NS_GRANT, grant.id, bytes, Some(keep))
                }
                Change::Issued(hash, issued) => {
                    let bytes = serde_json::to_vec(&issued).unwrap_or_default();
                    (NS_ISSUED, hash, bytes, Some(issued.expires))
                }
                Change::Forget(hash) => {
                    self.store.delete_state(NS_ISSUED, &hash).await?;
                    snap.rows.remove(&(NS_ISSUED, hash));
                    continue;
                }
            };
            let row = (ns, key);
            match snap.rows.get(&row) {
                Some(Some(expected)) => {
                    if !self
                        .state
                        .swap(ns, &row.1, Some(expected.clone()), bytes.clone())
                        .await?
                    {
                        return Ok(false);
                    }
                }
                _ => {
                    self.store
                        .put_state(ns, &row.1, bytes.clone(), expires)
                        .await?
                }
            }
            snap.rows.insert(row, Some(bytes));
        }
        Ok(true)
    }

    /// On a shared store: reads code or token `hash` into the book (and
    /// `snap`).
    async fn sync_issued(
        &self,
        snap: &mut Snapshot,
        hash: &str,
    ) -> Result<Option<Issued>, StoreError> {
        let bytes = self.state.get(NS_ISSUED, hash).await?;
        let issued = bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Issued>(b).ok());
        self.book().put_issued(hash, issued.clone());
        snap.rows.insert((NS_ISSUED, hash.to_owned()), bytes);
        Ok(issued)
    }

    /// On a shared store: reads grant `id` into the book (and `snap`).
    async fn sync_grant(&self, snap: &mut Snapshot, id: &str) -> Result<(), StoreError> {
        if !self.state.shared() {
            return Ok(());
        }
        let bytes = self.state.get(NS_GRANT, id).await?;
        let grant = bytes
            .as_deref()
            .and_then(|b| serde_json::from_slice::<Grant>(b).ok());
        self.book().put_grant(id, grant);
        snap.rows.insert((NS_GRANT, id.to_owned()), bytes);
        Ok(())
    }

    /// On a shared store: reads what a decision on `token` depends on into
    /// the book: the token, its grant, and its successor (a rotated
    /// refresh token's).
    async fn sync_token(&self, token: &Token) -> Result<Snapshot, StoreError> {
        let mut snap = Snapshot::default();
        if !self.state.shared() {
            return Ok(snap);
        }
        let hash = self.pepper.hash(token).as_str().to_owned();
        let issued = self.sync_issued(&mut snap, &hash).await?;
        self.sync_grant(&mut snap, token.grant_id().as_str())
            .await?;
        if let Some(Issued {
            spent: Some((_, Some(successor))),
            ..
        }) = &issued
        {
            self.sync_issued(&mut snap, successor).await?;
        }
        Ok(snap)
    }

    /// Decides on `token` with `decide` (on the book, after reading the
    /// token's rows from a shared store) and commits the changes it makes;
    /// when another replica changed one of those rows first, reads them
    /// again and decides again. The outcome, and the rows as written.
    async fn decide_on<T>(
        &self,
        token: &Token,
        mut decide: impl FnMut(&mut Book) -> (T, Vec<Change>),
    ) -> Result<(T, Snapshot), StoreError> {
        for _ in 0..ATTEMPTS {
            let mut snap = self.sync_token(token).await?;
            let (outcome, changes) = decide(&mut self.book());
            if self.commit(changes, &mut snap).await? {
                return Ok((outcome, snap));
            }
        }
        Err(StoreError::Conflict(
            "a code or token changed on every attempt".into(),
        ))
    }

    /// Changes grant `id` with `change` (book methods that set fields, so
    /// applying them again is harmless) and commits it; when another
    /// replica changed the grant first, reads it again and applies again
    /// (a revocation is never overwritten).
    async fn update_grant(
        &self,
        id: &str,
        snap: &mut Snapshot,
        change: impl Fn(&mut Book) -> Vec<Change>,
    ) -> Result<(), StoreError> {
        for _ in 0..ATTEMPTS {
            let changes = change(&mut self.book());
            if self.commit(changes, snap).await? {
                return Ok(());
            }
            self.sync_grant(snap, id).await?;
        }
        Err(StoreError::Conflict(format!("{NS_GRANT}/{id}")))
    }

    /// A sign-in through the facade refused (Entra's answer, the state,
    /// the account).
    async fn sign_in_refused(
        &self,
        client: Option<&str>,
        reason: &str,
        source_ip: Option<std::net::IpAddr>,
    ) {
        self.audit
            .auth_refused(
                Surface::OAuth,
                Refusal {
                    event: "sign_in_refused",
                    reason,
                    source_ip,
                    client,
                    token: None,
                    detail: Some(reason),
                    user_agent: None,
                    extra: None,
                },
            )
            .await;
    }

    /// An `auth` audit record (see [`crate::audit::auth`]): an accepted
    /// event with its principal, a refusal (counted, aggregated) when there
    /// is a reason, or a plain event (a consent denied, a revocation).
    /// Never a token or code.
    async fn record(
        &self,
        event: &str,
        principal: Option<&Principal>,
        client_id: Option<&str>,
        reason: Option<&str>,
    ) {
        match (principal, reason) {
            (_, Some(reason)) => {
                self.audit
                    .auth_refused(
                        Surface::OAuth,
                        Refusal {
                            event,
                            reason,
                            source_ip: principal.and_then(|p| p.source_ip),
                            client: client_id,
                            token: None,
                            detail: Some(reason),
                            user_agent: None,
                            extra: None,
                        },
                    )
                    .await
            }
            (Some(principal), None) => {
                self.audit
                    .auth_accepted(Accepted {
                        event,
                        surface: Surface::OAuth,
                        principal,
                        client: client_id,
                        user_agent: None,
                        session: None,
                        extra: None,
                    })
                    .await
            }
            (None, None) => {
                let mut record = Record::new(Kind::Auth);
                record.details = Some(json!({
                    "event": event,
                    "surface": Surface::OAuth.as_str(),
                    "auth_path": "oauth_facade",
                    "client_id": client_id,
                }));
                if let Err(error) = self.audit.append(record).await {
                    tracing::error!(target: "warden::oauth", %error, event, "authentication event not recorded");
                }
            }
        }
    }

    /// Forgets what has expired.
    pub async fn sweep(&self) {
        let now = Utc::now();
        let changes = self.book().sweep(&self.config.lifetimes, now);
        self.consents().sweep(now);
        self.step_ups().sweep(now);
        let _ = self.commit(changes, &mut Snapshot::default()).await;
        for ns in [
            NS_GRANT, NS_ISSUED, NS_CONSENT, NS_TXN, NS_BROWSER, NS_PENDING, NS_STEP_UP,
        ] {
            let _ = self.store.purge_state(ns, now).await;
        }
    }
}

fn mark_of(wanted: Wanted) -> StepUpMark {
    match wanted {
        Wanted::Marked => StepUpMark::Marked,
        Wanted::AlreadyAsked => StepUpMark::AlreadyAsked,
    }
}

/// `temporarily_unavailable`: the store could not be read or written.
fn unavailable(error: StoreError) -> OAuthError {
    tracing::error!(target: "warden::oauth", %error, "OAuth state not read or written");
    OAuthError::new("temporarily_unavailable", "try again")
}

/// The `claims` request that asks Entra for authentication context `acr`.
pub fn step_up_claims(acr: &str) -> String {
    json!({"access_token": {"acrs": {"essential": true, "value": acr}}}).to_string()
}

type Browsers = HashMap<String, (String, String, DateTime<Utc>)>;

/// The facade's state as stored.
fn load(reader: &Reader, now: DateTime<Utc>) -> Result<(Book, Consents, Browsers), StoreError> {
    let grants = reader
        .state(NS_GRANT, now)?
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<Grant>(&bytes).ok());
    let issued = reader
        .state(NS_ISSUED, now)?
        .into_iter()
        .filter_map(|(hash, bytes)| Some((hash, serde_json::from_slice::<Issued>(&bytes).ok()?)));
    let book = Book::load(grants.collect::<Vec<_>>(), issued.collect::<Vec<_>>());
    let remembered = reader
        .state(NS_CONSENT, now)?
        .into_iter()
        .filter_map(|(key, bytes)| {
            let until = DateTime::parse_from_rfc3339(std::str::from_utf8(&bytes).ok()?).ok()?;
            Some((key, until.with_timezone(&Utc)))
        });
    let transactions = reader
        .state(NS_TXN, now)?
        .into_iter()
        .filter_map(|(key, bytes)| {
            Some((key, serde_json::from_slice::<Transaction>(&bytes).ok()?))
        });
    let consents = Consents::load(
        remembered.collect::<Vec<_>>(),
        transactions.collect::<Vec<_>>(),
    );
    let browsers = reader
        .state(NS_BROWSER, now)?
        .into_iter()
        .filter_map(|(key, bytes)| {
            let (tid, oid): (String, String) = serde_json::from_slice(&bytes).ok()?;
            Some((key, (tid, oid, now + chrono::Duration::hours(8))))
        })
        .collect();
    Ok((book, consents, browsers))
}

impl From<ConsentError> for OAuthError {
    fn from(e: ConsentError) -> OAuthError {
        OAuthError::new("invalid_request", e.to_string())
    }
}

#[async_trait]
impl Upstream for super::entra::Entra {
    fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        challenge: &CodeChallenge,
        nonce: &str,
        claims: Option<&str>,
    ) -> String {
        super::entra::Entra::authorize_url(
            self,
            redirect_uri,
            state,
            challenge,
            nonce,
            claims,
            None,
        )
    }

    async fn redeem(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &CodeVerifier,
    ) -> Result<UpstreamTokens, UpstreamError> {
        super::entra::Entra::redeem(self, code, redirect_uri, verifier)
            .await
            .map(upstream_tokens)
            .map_err(upstream_error)
    }

    async fn refresh(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError> {
        super::entra::Entra::refresh(self, refresh_token)
            .await
            .map(upstream_tokens)
            .map_err(upstream_error)
    }
}

fn upstream_tokens(tokens: super::entra::EntraTokens) -> UpstreamTokens {
    UpstreamTokens {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }
}

/// Entra's answer, as the facade acts on it. Only a refusal of the *user's*
/// grant ends Warden's grant: `invalid_grant` (disabled user, revoked
/// session, expired refresh token, a Conditional Access requirement) and
/// the errors that demand a new interactive sign-in. Any other refusal
/// (`invalid_client`, `unauthorized_client`, `invalid_request`, …) is about
/// Warden's own registration or credential: the user keeps the grant and
/// gets `temporarily_unavailable` while an operator fixes `[oauth.entra]`.
fn upstream_error(error: super::entra::EntraError) -> UpstreamError {
    use super::entra::EntraError;
    const ENDS_THE_GRANT: [&str; 4] = [
        "invalid_grant",
        "interaction_required",
        "login_required",
        "consent_required",
    ];
    match error {
        EntraError::Refused {
            error: ref code, ..
        } if ENDS_THE_GRANT.contains(&code.as_str()) => UpstreamError::Refused(error.to_string()),
        EntraError::Refused { .. } => {
            tracing::error!(target: "warden::oauth", %error, "Entra ID refused Warden's own request: check [oauth.entra] (client id, credential, redirect URIs)");
            UpstreamError::Unavailable(format!(
                "{error} (Warden's own registration or credential was refused)"
            ))
        }
        EntraError::Unavailable(why) | EntraError::Config(why) => UpstreamError::Unavailable(why),
    }
}

#[async_trait]
impl crate::identity::OpaqueTokens for OAuthService {
    fn claims(&self, token: &str) -> bool {
        Token::has_warden_prefix(token)
    }

    async fn authenticate(
        &self,
        token: &str,
        source_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, String> {
        OAuthService::authenticate(self, token, source_ip).await
    }

    fn issuer(&self) -> String {
        self.issuer.as_str().to_owned()
    }

    fn keep_tenants(&self) -> bool {
        self.config.mode == super::config::OAuthMode::Both
    }

    fn scopes(&self) -> Vec<String> {
        self.config.scopes.clone()
    }

    fn step_up_scope(&self) -> Option<String> {
        self.offered_step_up_scope().map(str::to_owned)
    }

    async fn want_step_up(&self, grant: &str) -> Option<StepUpMark> {
        self.offered_step_up_scope()?;
        if self.state.shared() {
            self.sync_grant(&mut Snapshot::default(), grant)
                .await
                .ok()?;
        }
        let holder = {
            let book = self.book();
            let grant = book.grant(grant)?;
            Holder {
                tid: grant.principal.tid.clone(),
                oid: grant.principal.oid.clone(),
                client_id: grant.client_id.clone(),
            }
        };
        let now = Utc::now();
        if !self.state.shared() {
            return Some(mark_of(self.step_ups().want(grant, holder, now)));
        }
        // Shared: the mark as the store has it, and the new one written
        // back (a mark is advisory: the last writer wins).
        self.sync_step_up(grant).await.ok()?;
        let (wanted, mark) = {
            let mut step_ups = self.step_ups();
            let wanted = step_ups.want(grant, holder, now);
            (wanted, step_ups.mark(grant))
        };
        if wanted == Wanted::Marked
            && let Some(mark) = mark
        {
            let bytes = serde_json::to_vec(&mark).ok()?;
            // Kept long enough for the mark once taken (taking it extends
            // it by one lifetime; a compare-and-set keeps the row's expiry).
            let keep = mark.until() + chrono(self.config.lifetimes.transaction);
            self.store
                .put_state(NS_STEP_UP, grant, bytes, Some(keep))
                .await
                .ok()?;
        }
        Some(mark_of(wanted))
    }

    async fn take_step_up(&self, grant: &str) -> Option<Vec<String>> {
        let step_up = self.offered_step_up_scope()?.to_owned();
        let now = Utc::now();
        if self.state.shared() {
            // Taken once across replicas: by a compare-and-set.
            let read = self.sync_step_up(grant).await.ok()??;
            let taken = {
                let mut step_ups = self.step_ups();
                step_ups
                    .take(grant, now)
                    .then(|| step_ups.mark(grant))
                    .flatten()
            };
            let bytes = serde_json::to_vec(&taken?).ok()?;
            if !self
                .state
                .swap(NS_STEP_UP, grant, Some(read), bytes)
                .await
                .ok()?
            {
                return None;
            }
        } else if !self.step_ups().take(grant, now) {
            return None;
        }
        let mut scopes = self
            .book()
            .grant(grant)
            .map(|g| g.scopes.clone())
            .filter(|scopes| !scopes.is_empty())
            .unwrap_or_else(|| self.config.scopes.clone());
        if !scopes.contains(&step_up) {
            scopes.push(step_up);
        }
        Some(scopes)
    }
}

#[cfg(test)]
mod upstream_error_tests {
    use super::*;
    use crate::oauth::entra::EntraError;

    fn refused(error: &str) -> EntraError {
        EntraError::Refused {
            error: error.into(),
            description: "AADSTS00000: x".into(),
            codes: vec![0],
        }
    }

    #[test]
    fn only_a_refusal_of_the_users_grant_ends_it() {
        for error in ["invalid_grant", "interaction_required", "login_required"] {
            assert!(
                matches!(upstream_error(refused(error)), UpstreamError::Refused(_)),
                "{error}"
            );
        }
        // Warden's own credential or registration: the user keeps the grant.
        for error in ["invalid_client", "unauthorized_client", "invalid_request"] {
            let UpstreamError::Unavailable(why) = upstream_error(refused(error)) else {
                panic!("{error} must not end the grant");
            };
            assert!(why.contains(error) && why.contains("Warden's own"), "{why}");
        }
        assert!(matches!(
            upstream_error(EntraError::Unavailable("timeout".into())),
            UpstreamError::Unavailable(_)
        ));
    }
}
