//! The approvals web page for security managers, under `/admin/` on the
//! gateway's listener: server-rendered HTML (maud templates, every value
//! escaped), no JavaScript, no external assets.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin/?status=&class=&requester=&scope=&sort=&offset=` | signed in: a compact, filtered, sorted list of requests, a page at a time (pending first by default); else the sign-in form |
//! | `GET /admin/requests/{id}` | one request: what it would do (decoded facts), the request, the decision forms, its audit records |
//! | `GET /admin/audit` | reviewers and auditors: every request's history, risk alerts, the policy set in force |
//! | `GET /admin/requests.csv`, `/admin/requests.json` | the list as shown (same filters and page), to download |
//! | `POST /admin/sign-in` | form `token`, `csrf`: a bearer token, validated exactly as on the API |
//! | `GET /admin/sign-in/entra` | with `[oauth]` on: to Entra ID (OpenID Connect, code flow with PKCE) |
//! | `GET /admin/callback?state=&code=` | Entra ID's answer: a session, or the sign-in page with the reason |
//! | `POST /admin/sign-out` | form `csrf`: ends the session |
//! | `POST /admin/requests/{id}/approve\|deny\|revoke\|cancel` | form `reason`, `csrf`, `shown` (the facts' hash the page showed); always 303 (post/redirect/get): to `/admin/` with a notice, or back to the request with the error and the typed reason kept |
//! | `POST /admin/incidents/{id}/acknowledge\|close`, `/admin/suspensions/lift`, `/admin/blocks/unblock` | automatic responses, listed on `/admin/` for security managers and auditors: see [`super::response_page`] |
//!
//! Who sees what is [`Approvals::listing`] and [`Approvals::get`]:
//! reviewers and auditors (app role `Auditor`, read only) every request,
//! others their own. Markup is in [`super::views`]; what the auditor's view
//! reads from the log, in [`super::evidence`].
//!
//! # Sign-in
//!
//! Two ways, one session. **With Microsoft Entra ID** (when `[oauth]` is
//! on, [`SignInOptions::entra`]): `GET /admin/sign-in/entra` makes a random
//! `state`, `nonce` and PKCE verifier, keeps them in memory for 10 minutes
//! (by the state's SHA-256) bound to the browser by the cookie
//! `warden_admin_oidc` (`SameSite=Lax`, so that Entra's redirect back
//! carries it), and redirects to [`Entra::authorize_url`] with the callback
//! `{issuer}/admin/callback` (a redirect URI of the facade's Entra app).
//! `GET /admin/callback` takes the state (single use; an answer brought by
//! another browser is refused without spending it), shows Entra's error if
//! it sent one, redeems the code with the verifier ([`Entra::redeem`], the
//! facade's confidential client), checks the ID token's nonce
//! ([`crate::oauth::entra::EntraTokens::nonce_matches`]), and validates
//! Entra's *access token* with [`Authenticator::authenticate`], exactly as
//! a pasted one. Every failure is the sign-in page with the reason, never
//! a redirect elsewhere. The success answer is not a redirect but a page
//! that refreshes to `/admin/`: the navigation started at Entra (another
//! site), and a browser does not send a `SameSite=Strict` cookie on the
//! redirects of a cross-site navigation, so `/admin/` would not see the new
//! session; a refresh from Warden's own page is a same-site navigation.
//! The tokens are dropped once validated.
//!
//! **A pasted token** (with `warden dev`, a persona's token from
//! `.warden-dev/dev.json`) is checked by [`Authenticator::authenticate`]
//! exactly as a bearer token on `/mcp` or `/admin/api` is (issuer, tenant,
//! audience, signature, expiry, scopes, MFA claims), with the connection's
//! peer address.
//!
//! On success Warden keeps a server-side session: a random 32-byte id
//! (base64url) in the cookie `warden_admin`, mapped (by the id's SHA-256)
//! to the token's [`Principal`], a per-session CSRF token and an expiry of
//! the token's `exp` or 8 hours, whichever comes first. The token itself is
//! not kept. Sessions are kept in memory and, with [`SignInOptions::audit`],
//! in the store's `state` table (namespace `admin.session`, the same key,
//! the principal, CSRF token and expiry as JSON), read back at start: a
//! restart signs nobody out, and signing out removes the row. On a store
//! that replicas share (PostgreSQL) each request reads its session's row,
//! so a session started on one replica works on all of them and signing
//! out on one ends it on all of them at once (the one-time notes a page
//! shows stay with the replica that made them). Expired sessions are
//! pruned on every sign-in; at most 10 000 live at once.
//! Every sign-in and refusal is an `auth` audit record (`event`
//! `page_signed_in` or `page_sign_in_refused`, `auth_path` `admin_page`,
//! `method` `entra` or `token`, `reason`).
//!
//! What a session sees is what its principal may see through
//! [`Approvals::list`] and [`Approvals::get`] (reviewers everything, others
//! their own requests), and every action goes through [`Approvals`], which
//! enforces the review rules (approver role, MFA from the token's
//! `amr`/`acrs`, never one's own request, a reason): a security manager
//! who signed in without MFA sees the page but cannot review.
//!
//! Behind an auth proxy instead (oauth2-proxy, Easy Auth), reading the
//! proxy's access-token header is not implemented; the Entra sign-in above
//! makes it unnecessary.
//!
//! # Cookies and CSRF
//!
//! Cookies are `HttpOnly; SameSite=Strict; Path=/admin; Secure`. `Secure`
//! is left out only when the request came over plain HTTP from a loopback
//! peer (`127.0.0.0/8`, `::1`) without `X-Forwarded-Proto: https` (or
//! `Forwarded: proto=https`): `warden dev` on `http://127.0.0.1`, where a
//! browser would otherwise drop the cookie. Warden itself speaks plain HTTP,
//! so anything else is taken to be behind a TLS-terminating proxy.
//!
//! Every state-changing request is a POST, checked three ways:
//! 1. an `Origin` header, when present, must be the page's own origin
//!    (`https://` + `Host`, or `http://` + `Host` under the loopback rule
//!    above); anything else, `null` included, is refused with 403;
//! 2. the form's `csrf` field must equal the session's random CSRF token
//!    (constant-time comparison), else 403; the sign-in form, which has no
//!    session yet, carries a random token that must equal the
//!    `warden_admin_signin` cookie set with it (double submit), so another
//!    site cannot sign a browser in as someone else;
//! 3. the cookies are `SameSite=Strict`: a browser does not send them on
//!    requests started by another site (`warden_admin_oidc` is `Lax` but
//!    only binds a sign-in in progress; it authorizes nothing).
//!
//! Every response carries `Content-Security-Policy: default-src 'none';
//! style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none';
//! base-uri 'none'`, `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin` and `Cache-Control: no-store`.
//!
//! # Why `Referrer-Policy: same-origin`, not `no-referrer`
//!
//! The referrer policy also decides the `Origin` header a browser sends.
//! Per the Fetch standard ("serializing a request origin"), a request whose
//! referrer policy is `no-referrer` carries `Origin: null`, even a POST from
//! a form to its own origin; and the check above refuses `null` (sandboxed
//! frames, `data:` documents and other opaque origins send it too, so it
//! proves nothing). Under `no-referrer` no real browser could sign in or
//! send a form. Under `same-origin` the browser sends the page's real
//! origin (and a `Referer`) on same-origin requests, and `Origin: null` and
//! no `Referer` on cross-origin ones, so nothing about the page (request
//! ids in its URLs) leaks to another site; the page links to no other site
//! anyway, and its CSP allows forms to post only to itself.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Form;
use axum::Router;
use axum::extract::Query;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use maud::Markup;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::evidence;
use super::sign_in::{Full, Pending, Refused, SignIns};
use super::views::{self, Notes, Viewer};
use crate::approvals::{ApprovalError, Approvals, Filter, Status, Verdict};
use crate::audit::Audit;
use crate::audit::auth::{Accepted, Refusal, Surface};
use crate::cookies::{SameSite, cookie, plain_loopback};
use crate::identity::{Authenticator, Principal};
use crate::oauth::entra::Entra;
use crate::oauth::pkce::CodeVerifier;
use crate::oauth::seal::Sealer;
use crate::oauth::shared::SharedState;
use crate::store::Store;

/// The session cookie.
const SESSION_COOKIE: &str = "warden_admin";
/// The sign-in form's double-submit CSRF cookie.
const SIGNIN_COOKIE: &str = "warden_admin_signin";
/// Binds an Entra sign-in in progress to the browser that started it
/// (`SameSite=Lax`: sent on Entra's redirect back).
const OIDC_COOKIE: &str = "warden_admin_oidc";
/// How long an Entra sign-in may take, from the button to the callback.
const OIDC_TTL: Duration = Duration::from_secs(600);
/// Entra sign-ins in progress at once.
const MAX_PENDING: usize = 10_000;
/// The store namespace of the page's sessions.
const NS_SESSION: &str = "admin.session";
/// The longest text of Entra's error shown on the page.
const MAX_ENTRA_ERROR: usize = 300;
/// The longest session, whatever the token's expiry.
const MAX_SESSION: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once.
const MAX_SESSIONS: usize = 10_000;
/// The longest reason accepted from the form.
const MAX_REASON: usize = 4096;
/// The longest token accepted from the sign-in form (the authenticator has
/// its own, usually smaller, limit).
const MAX_TOKEN: usize = 64 * 1024;
/// A session shorter than this is not worth starting: the token is about
/// to expire (or expired within the allowed clock skew).
const MIN_SESSION: Duration = Duration::from_secs(60);
/// Requests a page lists by default.
const PAGE_SIZE: usize = 50;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// See "Why `Referrer-Policy: same-origin`" in the module docs.
const REFERRER_POLICY: &str = "same-origin";

/// What the page's sign-in may use besides pasted tokens.
#[derive(Clone, Default)]
pub struct SignInOptions {
    /// The audit log: every sign-in (and refusal) as an `auth` record, and
    /// its store, where sessions are kept across restarts. Without it,
    /// sessions live in this process only and nothing is recorded.
    pub audit: Option<Arc<Audit>>,
    /// "Sign in with Microsoft Entra ID", when `[oauth]` is on.
    pub entra: Option<EntraSignIn>,
    /// The running policy set and the catalog: what the overview measures
    /// roles' use against.
    pub policy: Option<(Arc<crate::policy::Engine>, Arc<crate::catalog::Catalog>)>,
    /// Access review campaigns: their pages under `/admin/campaigns`.
    pub campaigns: Option<Arc<crate::review::campaigns::Campaigns>>,
    /// Automatic responses: incidents, suspensions and blocks on `/admin/`
    /// (see [`super::response_page`]).
    pub responses: Option<Arc<crate::response::Responses>>,
}

/// The page's OpenID Connect sign-in: Warden's Entra client (the facade's
/// confidential client) and where Entra sends the user back.
#[derive(Clone)]
pub struct EntraSignIn {
    pub entra: Arc<Entra>,
    /// `{issuer}/admin/callback`, a redirect URI of the Entra application.
    pub callback: String,
    /// Seals the PKCE verifiers of sign-ins in progress kept in the store.
    pub sealer: Sealer,
}

/// The page's routes (their own state inside; mergeable into a router of
/// any state).
pub fn router<S>(
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
    options: SignInOptions,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let store = options.audit.as_ref().map(|audit| audit.store().clone());
    let sign_ins = options.entra.as_ref().map(|entra| {
        Arc::new(SignIns::load(
            store.clone(),
            entra.sealer.clone(),
            MAX_PENDING,
        ))
    });
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/audit", get(audit))
        .route("/admin/overview", get(overview))
        .route("/admin/requests.csv", get(download_csv))
        .route("/admin/requests.json", get(download_json))
        .route("/admin/requests/{id}", get(show))
        .route("/admin/sign-in", post(sign_in))
        .route("/admin/sign-in/entra", get(entra_start))
        .route("/admin/callback", get(entra_callback))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/requests/{id}/{action}", post(act))
        .route("/admin/campaigns", get(super::campaign_page::list))
        .route("/admin/campaigns/{id}", get(super::campaign_page::show))
        .route(
            "/admin/campaigns/{id}/items/{item}/decide",
            post(super::campaign_page::decide),
        )
        .route(
            "/admin/campaigns/{id}/close",
            post(super::campaign_page::close),
        )
        .route("/approvals", get(super::response_page::approvals))
        .route(
            "/admin/incidents/{id}/{action}",
            post(super::response_page::incident),
        )
        .route("/admin/suspensions/lift", post(super::response_page::lift))
        .route("/admin/blocks/unblock", post(super::response_page::unblock))
        .with_state(Page {
            identity,
            approvals,
            sessions: Arc::new(Sessions::load(store)),
            audit: options.audit,
            entra: options.entra,
            policy: options.policy,
            campaigns: options.campaigns,
            responses: options.responses,
            sign_ins,
        })
        .layer(axum::middleware::map_response(security_headers))
}

#[derive(Clone)]
pub(super) struct Page {
    identity: Arc<Authenticator>,
    pub(super) approvals: Arc<Approvals>,
    pub(super) sessions: Arc<Sessions>,
    audit: Option<Arc<Audit>>,
    entra: Option<EntraSignIn>,
    /// Entra sign-ins in progress, by the SHA-256 of their `state` (with
    /// `entra`).
    sign_ins: Option<Arc<SignIns>>,
    policy: Option<(Arc<crate::policy::Engine>, Arc<crate::catalog::Catalog>)>,
    pub(super) campaigns: Option<Arc<crate::review::campaigns::Campaigns>>,
    pub(super) responses: Option<Arc<crate::response::Responses>>,
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends
    // `Origin: null` even on the page's own form posts (Fetch standard,
    // "serializing a request origin"), which `origin_ok` must refuse. With
    // `same-origin` same-origin posts carry the real origin, and requests to
    // other sites get no `Referer` and `Origin: null` (see the module docs).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(REFERRER_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// ---------------------------------------------------------------- sessions

struct Session {
    principal: Principal,
    expires: Instant,
    csrf: String,
    /// Shown once, on the next page.
    flash: Option<String>,
    /// An action's error, shown once on the next page.
    error: Option<String>,
    /// The reason typed into a form whose action failed: (request id,
    /// text), put back into the form on the next page.
    draft: Option<(String, String)>,
}

/// A session as kept in the store (namespace [`NS_SESSION`], key the
/// SHA-256 of the cookie value): never a token.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    principal: Principal,
    csrf: String,
    /// Unix seconds.
    expires: u64,
}

/// Server-side sessions, keyed by the SHA-256 of the cookie value; kept in
/// the store too, when there is one, so that they survive a restart.
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    store: Option<Store>,
    /// With a store that replicas share: where each request's session is
    /// read, so that one started on another replica works here and one
    /// ended on another replica ends here too.
    shared: Option<SharedState>,
    /// Sessions that ended because their token expired, kept (bounded) so
    /// that the next page can say why the user has to sign in again.
    ended: Mutex<HashMap<String, Instant>>,
}

/// A live session, as a request sees it.
pub(super) struct Signed {
    pub(super) id: String,
    pub(super) principal: Principal,
    pub(super) csrf: String,
    pub(super) flash: Option<String>,
    pub(super) error: Option<String>,
    pub(super) draft: Option<(String, String)>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn session_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

pub(super) fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Sessions {
    /// The sessions kept in `store` that have not expired.
    fn load(store: Option<Store>) -> Sessions {
        let mut map = HashMap::new();
        if let Some(store) = &store {
            let rows = store
                .reader()
                .and_then(|reader| reader.state(NS_SESSION, Utc::now()));
            match rows {
                Ok(rows) => {
                    let (now, wall) = (Instant::now(), unix_now());
                    for (key, value) in rows {
                        let Ok(stored) = serde_json::from_slice::<StoredSession>(&value) else {
                            tracing::warn!(target: "warden::admin", "an unreadable approvals page session was skipped");
                            continue;
                        };
                        if stored.expires <= wall || map.len() >= MAX_SESSIONS {
                            continue;
                        }
                        map.insert(
                            key,
                            Session {
                                principal: stored.principal,
                                expires: now + Duration::from_secs(stored.expires - wall),
                                csrf: stored.csrf,
                                flash: None,
                                error: None,
                                draft: None,
                            },
                        );
                    }
                    tracing::info!(target: "warden::admin", sessions = map.len(), "approvals page sessions loaded");
                }
                Err(error) => {
                    tracing::warn!(target: "warden::admin", %error, "approvals page sessions not loaded: everyone signs in again");
                }
            }
        }
        let shared = store
            .clone()
            .map(SharedState::new)
            .filter(SharedState::shared);
        Sessions {
            map: Mutex::new(map),
            store,
            shared,
            ended: Mutex::default(),
        }
    }

    /// Keeps the session `id` in the store (principal, CSRF token,
    /// expiry), and forgets the expired ones there.
    async fn save(&self, id: &str) {
        let Some(store) = &self.store else { return };
        let key = session_key(id);
        let stored = {
            let map = self.lock();
            let Some(session) = map.get(&key) else { return };
            let left = session.expires.saturating_duration_since(Instant::now());
            StoredSession {
                principal: session.principal.clone(),
                csrf: session.csrf.clone(),
                expires: unix_now() + left.as_secs(),
            }
        };
        let expires = chrono::DateTime::from_timestamp(stored.expires as i64, 0);
        let Ok(value) = serde_json::to_vec(&stored) else {
            return;
        };
        if let Err(error) = store.put_state(NS_SESSION, &key, value, expires).await {
            tracing::warn!(target: "warden::admin", %error, "approvals page session not stored: it ends with this process");
        }
        let _ = store.purge_state(NS_SESSION, Utc::now()).await;
    }

    /// Ends the session `id`, here and in the store.
    async fn end(&self, id: &str) {
        self.remove(id);
        if let Some(store) = &self.store
            && let Err(error) = store.delete_state(NS_SESSION, &session_key(id)).await
        {
            tracing::warn!(target: "warden::admin", %error, "approvals page session not removed from the store");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new session for `principal`; `None` when too many are live.
    fn create(&self, principal: Principal, ttl: Duration) -> Option<String> {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        let id = random_token();
        map.insert(
            session_key(&id),
            Session {
                principal,
                expires: now + ttl,
                csrf: random_token(),
                flash: None,
                error: None,
                draft: None,
            },
        );
        Some(id)
    }

    /// On a shared store: this process's copy of session `id` made the
    /// store's (added when another replica started it, dropped when it
    /// ended there). A store that cannot be read ends nothing but lets
    /// nothing in: the request is refused.
    async fn sync(&self, shared: &SharedState, id: &str) -> bool {
        let key = session_key(id);
        let stored = match shared.get(NS_SESSION, &key).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(target: "warden::admin", %error, "approvals page session not read");
                return false;
            }
        };
        let stored = stored.and_then(|bytes| serde_json::from_slice::<StoredSession>(&bytes).ok());
        let mut map = self.lock();
        match stored {
            None => {
                map.remove(&key);
            }
            Some(stored) => {
                if !map.contains_key(&key) {
                    let wall = unix_now();
                    let left = Duration::from_secs(stored.expires.saturating_sub(wall));
                    map.retain(|_, s| s.expires > Instant::now());
                    if map.len() >= MAX_SESSIONS {
                        return false;
                    }
                    map.insert(
                        key,
                        Session {
                            principal: stored.principal,
                            expires: Instant::now() + left,
                            csrf: stored.csrf,
                            flash: None,
                            error: None,
                            draft: None,
                        },
                    );
                }
            }
        }
        true
    }

    /// The live session `id`; with `take_notes`, its one-time messages
    /// and draft are handed over (and cleared). On a shared store, as the
    /// store has it now.
    async fn open(&self, id: &str, take_notes: bool) -> Option<Signed> {
        if let Some(shared) = &self.shared
            && !self.sync(shared, id).await
        {
            return None;
        }
        self.open_here(id, take_notes)
    }

    fn open_here(&self, id: &str, take_notes: bool) -> Option<Signed> {
        let key = session_key(id);
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        let now = Instant::now();
        if session.expires <= now {
            map.remove(&key);
            let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
            ended.retain(|_, at| now.duration_since(*at) < MAX_SESSION);
            if ended.len() < MAX_SESSIONS {
                ended.insert(key, now);
            }
            return None;
        }
        let take = |field: &mut Option<String>| if take_notes { field.take() } else { None };
        Some(Signed {
            id: id.to_owned(),
            principal: session.principal.clone(),
            csrf: session.csrf.clone(),
            flash: take(&mut session.flash),
            error: take(&mut session.error),
            draft: if take_notes {
                session.draft.take()
            } else {
                None
            },
        })
    }

    /// Whether the session `id` ended because its token expired (said once).
    fn expired(&self, id: &str) -> bool {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        ended.remove(&session_key(id)).is_some()
    }

    pub(super) fn flash(&self, id: &str, message: String) {
        if let Some(session) = self.lock().get_mut(&session_key(id)) {
            session.flash = Some(message);
        }
    }

    /// An action failed: its error and the reason typed, for the next page.
    pub(super) fn failed(&self, id: &str, message: String, draft: Option<(String, String)>) {
        if let Some(session) = self.lock().get_mut(&session_key(id)) {
            session.error = Some(message);
            session.draft = draft;
        }
    }

    fn remove(&self, id: &str) {
        self.lock().remove(&session_key(id));
    }
}

/// How long a session for `principal` may last: until the token expires,
/// at most [`MAX_SESSION`].
fn session_ttl(principal: &Principal) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    match principal.expires_at {
        Some(exp) => Duration::from_secs(exp.saturating_sub(now)).min(MAX_SESSION),
        None => MAX_SESSION,
    }
}

// ------------------------------------------------------ request plumbing

/// The page's cookies: `SameSite=Strict`, path `/admin`.
fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    crate::cookies::set_cookie(name, value, "/admin", SameSite::Strict, max_age, secure)
}

/// The host the browser addressed (`Host`, or the HTTP/2 authority).
fn own_host(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
}

/// `Origin`, when present, must be this page's own origin.
pub(super) fn origin_ok(headers: &HeaderMap, uri: &Uri, plain: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (origin.to_str(), own_host(headers, uri)) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let same = |scheme: &str, default_port: &str| {
        let host = host.strip_suffix(default_port).unwrap_or(&host);
        origin
            .strip_prefix(scheme)
            .map(|o| o.strip_suffix(default_port).unwrap_or(o))
            .is_some_and(|o| o == host)
    };
    same("https://", ":443") || (plain && same("http://", ":80"))
}

/// The session of the request, if live.
pub(super) async fn signed_in(
    page: &Page,
    headers: &HeaderMap,
    take_notes: bool,
) -> Option<Signed> {
    let id = cookie(headers, SESSION_COOKIE)?;
    page.sessions.open(id, take_notes).await
}

/// Why a request without a live session must sign in, if there is more to
/// say than "sign in": its token expired.
pub(super) fn ended_notice(page: &Page, headers: &HeaderMap) -> Option<&'static str> {
    cookie(headers, SESSION_COOKIE)
        .filter(|id| page.sessions.expired(id))
        .map(|_| "Your session ended because your access token expired. Sign in again with a fresh token.")
}

pub(super) fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// 303 to `/admin/`.
fn see_other() -> Response {
    see("/admin/")
}

/// 303 to `location` (a path of this page).
pub(super) fn see(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/admin/")),
        )],
    )
        .into_response()
}

/// The viewer of a signed-in session.
pub(super) fn viewer<'a>(page: &Page, signed: &'a Signed) -> Viewer<'a> {
    let p = &signed.principal;
    Viewer {
        principal: p,
        csrf: &signed.csrf,
        review: page.approvals.check_reviewer(p).map_err(|e| e.to_string()),
        reviewer: page.approvals.is_reviewer(p),
        auditor: page.approvals.is_auditor(p),
    }
}

/// A full page for a signed-in session.
pub(super) fn signed_page(
    page: &Page,
    signed: &Signed,
    title: &str,
    current: &str,
    body: Markup,
) -> Response {
    let viewer = viewer(page, signed);
    html_response(
        StatusCode::OK,
        views::layout(title, Some(&viewer), current, body),
    )
}

/// The list's filter as the query gave it: pending requests by default
/// (`status=` for any), a page of [`PAGE_SIZE`].
fn list_filter(mut filter: Filter) -> Filter {
    if filter.status.is_none() {
        filter.status = Some(Status::Pending.as_str().to_owned());
    }
    filter.limit = Some(filter.limit.unwrap_or(PAGE_SIZE).clamp(1, 1000));
    filter
}

fn status_of(e: &ApprovalError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal page (bad origin, CSRF, malformed form).
pub(super) fn refusal(status: StatusCode, message: &str) -> Response {
    html_response(status, views::refusal(message))
}

pub(super) fn bad_origin() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "This form was sent from another site (its Origin is not this page's). Nothing was changed.",
    )
}

pub(super) fn bad_csrf() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "This form is stale or did not come from this page (its CSRF token does not match your session). \
         Nothing was changed: reload the page and try again.",
    )
}

// ------------------------------------------------------------- handlers

#[derive(Debug, Default, Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
    /// The hash of the decoded facts the page showed.
    #[serde(default)]
    shown: String,
}

async fn index(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    let (filter, bad_filter) = match filter {
        Ok(Query(filter)) => (list_filter(filter), None),
        Err(e) => (
            list_filter(Filter::default()),
            Some(format!(
                "The filter was not understood ({e}); showing pending requests."
            )),
        ),
    };
    page.approvals.refresh().await;
    let listing = page.approvals.listing(&signed.principal, &filter);
    let error = signed.error.clone().or(bad_filter);
    let notes = Notes {
        flash: signed.flash.as_deref(),
        error: error.as_deref(),
    };
    let viewer = viewer(&page, &signed);
    let body = views::list(&viewer, &listing, &filter, &notes, Utc::now());
    // Incidents, suspensions and blocks below, for managers and auditors.
    let body = super::response_page::below(&page, &signed, &viewer, body).await;
    signed_page(&page, &signed, "Requests", "requests", body)
}

async fn show(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    page.approvals.refresh().await;
    let request = match page.approvals.get(&signed.principal, &id) {
        Ok(request) => request,
        Err(e) => {
            let notes = Notes {
                flash: None,
                error: Some(&e.to_string()),
            };
            let viewer = viewer(&page, &signed);
            let body = views::layout(
                "Not found",
                Some(&viewer),
                "",
                maud::html! {
                    p { a href="/admin/" { "← All requests" } }
                    (views::messages(&notes))
                },
            );
            return html_response(status_of(&e), body);
        }
    };
    let facts = page.approvals.facts(&id);
    let records =
        evidence::of_request(page.approvals.store_location(), &request).map_err(|e| e.to_string());
    let draft = signed
        .draft
        .as_ref()
        .filter(|(for_id, _)| *for_id == id)
        .map(|(_, text)| text.as_str());
    let notes = Notes {
        flash: signed.flash.as_deref(),
        error: signed.error.as_deref(),
    };
    let viewer = viewer(&page, &signed);
    let body = views::detail(
        &viewer,
        &request,
        &facts,
        &records,
        page.approvals.config(),
        draft,
        &notes,
        Utc::now(),
    );
    signed_page(&page, &signed, &format!("Request {id}"), "requests", body)
}

/// `/admin/audit`: reviewers and auditors.
async fn audit(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    let who = &signed.principal;
    if !page.approvals.is_reviewer(who) && !page.approvals.is_auditor(who) {
        return refusal(
            StatusCode::FORBIDDEN,
            "The audit view is for auditors (app role Auditor) and security managers.",
        );
    }
    let mut filter = filter.map(|Query(f)| f).unwrap_or_default();
    // The history is every request (`status=`, any), also in its links:
    // without it, the downloads would get the list's default, pending.
    filter.status.get_or_insert_with(String::new);
    filter.limit = Some(filter.limit.unwrap_or(PAGE_SIZE).clamp(1, 1000));
    page.approvals.refresh().await;
    let history = page.approvals.listing(who, &filter);
    let db = page.approvals.store_location();
    let alerts = evidence::risk_alerts(db, 100).map_err(|e| e.to_string());
    let policy = evidence::policy_in_force(db).map_err(|e| e.to_string());
    let body = views::audit(&history, &filter, &alerts, &policy, Utc::now());
    signed_page(&page, &signed, "Audit", "audit", body)
}

/// The overview: the compliance report's pictures over the last days, for
/// security managers and auditors.
async fn overview(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    let who = &signed.principal;
    if !page.approvals.is_reviewer(who) && !page.approvals.is_auditor(who) {
        return refusal(
            StatusCode::FORBIDDEN,
            "The overview is for auditors (app role Auditor) and security managers.",
        );
    }
    let db = page.approvals.store_location().clone();
    let policy = page.policy.clone();
    let body = tokio::task::spawn_blocking(move || super::overview::body(&db, policy.as_ref()))
        .await
        .map_err(|e| e.to_string())
        .and_then(|b| b);
    let body = match body {
        Ok(body) => body,
        Err(error) => maud::html! {
            h1 { "Overview" }
            p { "The audit log could not be read: " (error) }
        },
    };
    signed_page(&page, &signed, "Overview", "overview", body)
}

/// A download of the list as shown (the same filter and page as
/// `/admin/`): CSV or JSON. Without a session, the sign-in page.
async fn download(
    page: &Page,
    peer: SocketAddr,
    headers: &HeaderMap,
    filter: Filter,
    csv: bool,
) -> Response {
    let Some(signed) = signed_in(page, headers, false).await else {
        return sign_in_page(
            page,
            headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            None,
            None,
        );
    };
    page.approvals.refresh().await;
    let listing = page
        .approvals
        .listing(&signed.principal, &list_filter(filter));
    if !csv {
        let body = serde_json::json!({
            "requests": listing.requests,
            "total": listing.total,
            "offset": listing.offset,
            "limit": listing.limit,
        });
        let disposition = "attachment; filename=\"warden-requests.json\"";
        return (
            [(header::CONTENT_DISPOSITION, disposition)],
            axum::Json(body),
        )
            .into_response();
    }
    match views::csv(&listing.requests) {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"warden-requests.csv\"",
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("The CSV could not be written: {e}"),
        ),
    }
}

async fn download_csv(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    download(&page, peer, &headers, filter, true).await
}

async fn download_json(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    download(&page, peer, &headers, filter, false).await
}

/// The sign-in form, with a fresh (or the current) double-submit token.
pub(super) fn sign_in_page(
    page: &Page,
    headers: &HeaderMap,
    peer: IpAddr,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let csrf = cookie(headers, SIGNIN_COOKIE)
        .filter(|v| v.len() == 43 && URL_SAFE_NO_PAD.decode(v).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let secure = !plain_loopback(headers, peer);
    let mut response = html_response(
        status,
        views::sign_in(&csrf, page.entra.is_some(), error, notice),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGNIN_COOKIE, &csrf, 3600, secure),
    );
    response
}

async fn sign_in(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let plain = plain_loopback(&headers, peer.ip());
    if !origin_ok(&headers, &uri, plain) {
        return bad_origin();
    }
    let Ok(Form(form)) = form else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "The sign-in form must be sent as application/x-www-form-urlencoded.",
        );
    };
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    if !same_secret(&form.csrf, expected) {
        return sign_in_page(
            &page,
            &headers,
            peer.ip(),
            StatusCode::FORBIDDEN,
            Some("The sign-in form is stale or did not come from this page. Try again."),
            None,
        );
    }
    let token = form.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return sign_in_page(
            &page,
            &headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            Some("Paste an access token for Warden."),
            None,
        );
    }
    let principal = match page
        .identity
        .authenticate(Some(&format!("Bearer {token}")), Some(peer.ip()))
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(target: "warden::admin", reason = e.reason(), peer = %peer.ip(), "approvals page sign-in refused");
            record_refusal(&page, "token", e.reason(), Some(peer.ip()), Some(token)).await;
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return sign_in_page(
                &page,
                &headers,
                peer.ip(),
                status,
                Some(&format!("Sign-in refused: {e}.")),
                None,
            );
        }
    };
    let (id, ttl) = match open_session(&page, principal, "token").await {
        Ok(opened) => opened,
        Err((status, message)) => {
            return sign_in_page(&page, &headers, peer.ip(), status, Some(&message), None);
        }
    };
    let mut response = see_other();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, ttl.as_secs(), !plain),
    );
    headers.append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", 0, !plain));
    response
}

/// A session for `principal`, authenticated `via` (`token`, `entra`):
/// recorded, kept in the store, and its id and lifetime; or why not (a
/// token about to expire, too many sessions).
async fn open_session(
    page: &Page,
    principal: Principal,
    via: &str,
) -> Result<(String, Duration), (StatusCode, String)> {
    let ttl = session_ttl(&principal);
    if ttl < MIN_SESSION {
        record_refusal(page, via, "token_expiring", principal.source_ip, None).await;
        let message = match via {
            "token" => format!(
                "This token expires in {} s (or has just expired, within the clock skew Warden allows): \
                 get a fresh token and sign in with it.",
                ttl.as_secs()
            ),
            _ => format!(
                "The access token Entra ID issued expires in {} s (or has just expired, within the clock \
                 skew Warden allows): check this machine's clock, then sign in again.",
                ttl.as_secs()
            ),
        };
        return Err((StatusCode::UNAUTHORIZED, message));
    }
    page.approvals.saw(&principal);
    let who = principal.display_name.clone();
    let oid = principal.oid.clone();
    let Some(id) = page.sessions.create(principal.clone(), ttl) else {
        record_refusal(page, via, "too_many_sessions", principal.source_ip, None).await;
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sessions are open; try again later.".to_owned(),
        ));
    };
    page.sessions.save(&id).await;
    record_sign_in(page, &principal, via).await;
    tracing::info!(target: "warden::admin", user = %who, oid = %oid, secs = ttl.as_secs(), via, "approvals page sign-in");
    page.sessions.flash(&id, format!("Signed in as {who}."));
    Ok((id, ttl))
}

/// A page sign-in as an `auth` record (see [`crate::audit::auth`]).
async fn record_sign_in(page: &Page, principal: &Principal, via: &str) {
    let Some(audit) = &page.audit else { return };
    audit
        .auth_accepted(Accepted {
            event: "page_signed_in",
            surface: Surface::Admin,
            principal,
            client: None,
            user_agent: None,
            session: None,
            extra: Some(json!({ "method": via })),
        })
        .await;
}

/// A refused page sign-in, counted and aggregated (see
/// [`crate::audit::auth`]); `token` is the pasted token, hashed before it
/// is kept.
async fn record_refusal(
    page: &Page,
    via: &str,
    reason: &str,
    source_ip: Option<IpAddr>,
    token: Option<&str>,
) {
    let Some(audit) = &page.audit else { return };
    audit
        .auth_refused(
            Surface::Admin,
            Refusal {
                event: "page_sign_in_refused",
                reason,
                source_ip,
                client: None,
                token,
                detail: None,
                user_agent: None,
                extra: Some(json!({ "method": via })),
            },
        )
        .await;
}

/// `GET /admin/sign-in/entra`: a fresh `state`, `nonce` and PKCE verifier,
/// kept for [`OIDC_TTL`] and bound to this browser, and off to Entra.
async fn entra_start(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(sign_in) = &page.entra else {
        return refusal(
            StatusCode::NOT_FOUND,
            "Sign-in with Microsoft Entra ID is not configured here ([oauth] is off): paste a token.",
        );
    };
    let plain = plain_loopback(&headers, peer.ip());
    // One binding per browser, so that two tabs signing in at once both work.
    let browser = cookie(&headers, OIDC_COOKIE)
        .filter(|v| v.len() == 43 && URL_SAFE_NO_PAD.decode(v).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let (state, nonce, verifier) = (random_token(), random_token(), CodeVerifier::generate());
    let location = sign_in.entra.authorize_url(
        &sign_in.callback,
        &state,
        &verifier.challenge(),
        &nonce,
        None,
        None,
    );
    let pending = Pending {
        browser: session_key(&browser),
        nonce,
        verifier,
        expires: Utc::now() + chrono::Duration::seconds(OIDC_TTL.as_secs() as i64),
    };
    let held = match &page.sign_ins {
        Some(sign_ins) => sign_ins.hold(session_key(&state), pending).await,
        None => Err(Full),
    };
    if held.is_err() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins are in progress; try again later.",
        );
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::try_from(location).unwrap_or(HeaderValue::from_static("/admin/")),
        )],
    )
        .into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::cookies::set_cookie(
            OIDC_COOKIE,
            &browser,
            "/admin",
            SameSite::Lax,
            OIDC_TTL.as_secs(),
            !plain,
        ),
    );
    response
}

#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /admin/callback`: Entra sends the user back. The `state` must be
/// one this browser started (single use); the code is redeemed with its
/// verifier, the ID token's nonce checked, and Entra's access token
/// validated exactly as a pasted one.
async fn entra_callback(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let plain = plain_loopback(&headers, peer.ip());
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let refuse = |status: StatusCode, message: String| {
        let mut response = sign_in_page(&page, &headers, peer.ip(), status, Some(&message), None);
        response.headers_mut().append(
            header::SET_COOKIE,
            crate::cookies::set_cookie(OIDC_COOKIE, "", "/admin", SameSite::Lax, 0, !plain),
        );
        response
    };
    let Some(sign_in) = page.entra.clone() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "Sign-in with Microsoft Entra ID is not configured here.".to_owned(),
        );
    };
    let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        record_refusal(&page, "entra", "missing_state", Some(peer.ip()), None).await;
        return refuse(
            StatusCode::BAD_REQUEST,
            "Sign-in refused: the answer from Entra ID carries no state. Start again with \
             “Sign in with Microsoft Entra ID”."
                .to_owned(),
        );
    };
    let browser = cookie(&headers, OIDC_COOKIE).map(session_key);
    let pending = match &page.sign_ins {
        Some(sign_ins) => {
            sign_ins
                .take(&session_key(state), browser.as_deref(), same_secret)
                .await
        }
        None => Err(Refused::Unknown),
    };
    let pending = match pending {
        Ok(pending) => pending,
        Err(refused) => {
            record_refusal(&page, "entra", refused.reason(), Some(peer.ip()), None).await;
            let message = match refused {
                Refused::OtherBrowser => {
                    "Sign-in refused: this sign-in was started in another browser (or its cookie is gone). \
                     Start again here with “Sign in with Microsoft Entra ID”."
                }
                Refused::Expired => {
                    "Sign-in refused: it took more than 10 minutes. Start again with \
                     “Sign in with Microsoft Entra ID”."
                }
                Refused::Unknown => {
                    "Sign-in refused: this answer from Entra ID is unknown, expired or already used. \
                     Start again with “Sign in with Microsoft Entra ID”."
                }
            };
            return refuse(StatusCode::BAD_REQUEST, message.to_owned());
        }
    };
    if let Some(error) = &query.error {
        record_refusal(&page, "entra", "entra_error", Some(peer.ip()), None).await;
        let mut text = format!(
            "{error}: {}",
            query.error_description.as_deref().unwrap_or("")
        );
        if text.len() > MAX_ENTRA_ERROR {
            let mut cut = MAX_ENTRA_ERROR;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            format!("Entra ID did not sign you in ({text})."),
        );
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        record_refusal(&page, "entra", "missing_code", Some(peer.ip()), None).await;
        return refuse(
            StatusCode::BAD_REQUEST,
            "Sign-in refused: the answer from Entra ID carries no code.".to_owned(),
        );
    };
    let tokens = match sign_in
        .entra
        .redeem(code, &sign_in.callback, &pending.verifier)
        .await
    {
        Ok(tokens) => tokens,
        Err(e) => {
            tracing::info!(target: "warden::admin", error = %e, peer = %peer.ip(), "approvals page: Entra code not redeemed");
            let (status, reason) = if e.is_invalid_grant() {
                (StatusCode::UNAUTHORIZED, "code_refused")
            } else {
                (StatusCode::BAD_GATEWAY, "entra_unavailable")
            };
            record_refusal(&page, "entra", reason, Some(peer.ip()), None).await;
            return refuse(
                status,
                format!(
                    "Sign-in failed: Warden could not redeem Entra ID's code ({e}). Start again."
                ),
            );
        }
    };
    if tokens.id_token.is_some() && !tokens.nonce_matches(&pending.nonce) {
        record_refusal(&page, "entra", "nonce_mismatch", Some(peer.ip()), None).await;
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Sign-in refused: Entra ID's ID token is not for this sign-in (its nonce does not match)."
                .to_owned(),
        );
    }
    let principal = match page
        .identity
        .authenticate(
            Some(&format!("Bearer {}", tokens.access_token)),
            Some(peer.ip()),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(target: "warden::admin", reason = e.reason(), peer = %peer.ip(), "approvals page Entra sign-in refused");
            record_refusal(&page, "entra", e.reason(), Some(peer.ip()), None).await;
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return refuse(status, format!("Sign-in refused: {e}."));
        }
    };
    drop(tokens);
    let (id, ttl) = match open_session(&page, principal, "entra").await {
        Ok(opened) => opened,
        Err((status, message)) => return refuse(status, message),
    };
    // Not a 303: this navigation started at Entra (another site), and a
    // browser does not send a `SameSite=Strict` cookie on a redirect of a
    // cross-site navigation, so `/admin/` would not see the new session.
    // A refresh from this page is a same-site navigation.
    let mut response = html_response(StatusCode::OK, views::signed_in_redirect());
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, ttl.as_secs(), !plain),
    );
    headers.append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", 0, !plain));
    headers.append(
        header::SET_COOKIE,
        crate::cookies::set_cookie(OIDC_COOKIE, "", "/admin", SameSite::Lax, 0, !plain),
    );
    response
}

async fn sign_out(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let plain = plain_loopback(&headers, peer.ip());
    if !origin_ok(&headers, &uri, plain) {
        return bad_origin();
    }
    if let Some(signed) = signed_in(&page, &headers, false).await {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if !same_secret(&csrf, &signed.csrf) {
            return bad_csrf();
        }
        page.sessions.end(&signed.id).await;
    }
    let mut response = see_other();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, !plain),
    );
    response
}

async fn act(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let plain = plain_loopback(&headers, peer.ip());
    if !origin_ok(&headers, &uri, plain) {
        return bad_origin();
    }
    let Some(signed) = signed_in(&page, &headers, false).await else {
        return sign_in_page(
            &page,
            &headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            Some(
                "Your session has ended (or you were not signed in): sign in again. Nothing was changed.",
            ),
            None,
        );
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => {
            return refusal(
                e.status(),
                "The form must be sent as application/x-www-form-urlencoded with the fields reason and csrf.",
            );
        }
    };
    if !same_secret(&form.csrf, &signed.csrf) {
        return bad_csrf();
    }
    let reason = form.reason.trim();
    let approvals = &page.approvals;
    let principal = &signed.principal;
    let verdict = |approve| Verdict {
        approve,
        reason,
        shown: Some(form.shown.as_str()).filter(|s| !s.is_empty()),
    };
    let result = if reason.len() > MAX_REASON {
        Err(ApprovalError::Invalid(format!(
            "the reason is too long (at most {MAX_REASON} bytes)"
        )))
    } else {
        match action.as_str() {
            "approve" => approvals.review_with(&id, principal, verdict(true)).await,
            "deny" => approvals.review_with(&id, principal, verdict(false)).await,
            "revoke" => approvals.revoke(&id, principal, reason).await,
            "cancel" => approvals.cancel(&id, principal, reason).await,
            _ => {
                return refusal(
                    StatusCode::NOT_FOUND,
                    "No such action: approve, deny, revoke or cancel.",
                );
            }
        }
    };
    match result {
        Ok(request) => {
            let message = match (action.as_str(), request.status) {
                ("approve", Status::Pending) => format!(
                    "Your approval of request {} is recorded: {} of {} approvals so far.",
                    request.id,
                    request.approvals(),
                    request.required_approvals
                ),
                ("approve", Status::Approved) => format!(
                    "Request {} is approved: the grant expires {}.",
                    request.id,
                    request
                        .grant
                        .as_ref()
                        .map(|g| views::stamp(g.expires))
                        .unwrap_or_default()
                ),
                (_, status) => format!("Request {} is now {}.", request.id, status.as_str()),
            };
            page.sessions.flash(&signed.id, message);
            see_other()
        }
        Err(e) => {
            // Post/redirect/get: the error and the typed reason go to the
            // request's page, so a reload does not send the form again.
            let mut message = format!("Could not {action} request {id}: {e}.");
            if let (ApprovalError::Conflict(_), Ok(now)) = (&e, approvals.get(principal, &id))
                && now.status != Status::Pending
            {
                // A stale tab: say who decided it.
                message = format!(
                    "Could not {action} request {id}: it is already {}.",
                    views::decided(&now)
                );
            }
            let draft = (!reason.is_empty()).then(|| (id.clone(), reason.to_owned()));
            page.sessions.failed(&signed.id, message, draft);
            match approvals.get(principal, &id) {
                Ok(_) => see(&format!("/admin/requests/{id}")),
                Err(_) => see_other(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;
    use serde_json::json;

    use super::*;
    use crate::approvals::engine::CallFacts;
    use crate::approvals::{ApprovalsConfig, Gate, OperationRef, Request};
    use crate::identity::dev::TokenOptions;
    use crate::identity::dev::test_support::{Served, serve};

    const SCRIPT: &str = "<script>alert(1)</script>";

    /// The page over real HTTP, with a real authenticator trusting a served
    /// dev issuer, and a real approvals service on a fresh audit log.
    struct Harness {
        issuer: Served,
        identity: Arc<Authenticator>,
        approvals: Arc<Approvals>,
        base: String,
        http: reqwest::Client,
        server: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    /// A signed-in browser: the session cookie and the page's CSRF token.
    struct Browser {
        session: String,
        csrf: String,
    }

    impl Browser {
        fn cookie(&self) -> String {
            format!("{SESSION_COOKIE}={}", self.session)
        }
    }

    struct Reply {
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: String,
    }

    impl Reply {
        fn set_cookie(&self, name: &str) -> Option<String> {
            self.headers
                .get_all(reqwest::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| v.starts_with(&format!("{name}=")))
                .map(str::to_owned)
        }
    }

    fn cookie_value(set_cookie: &str) -> String {
        let first = set_cookie.split(';').next().unwrap_or_default();
        first
            .split_once('=')
            .map(|(_, v)| v)
            .unwrap_or_default()
            .to_owned()
    }

    /// The first hidden `csrf` field of a page.
    fn csrf_field(body: &str) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).expect("a csrf field") + marker.len();
        body[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    async fn harness() -> Harness {
        let issuer = serve().await;
        let identity = Authenticator::start(
            issuer.issuer.identity_config(&issuer.base_url),
            reqwest::Client::new(),
        );
        identity.refresh_keys().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = crate::audit::test_audit(dir.path()).await;
        let approvals = Arc::new(
            Approvals::open(
                ApprovalsConfig::default(),
                audit.clone(),
                crate::metrics::Metrics::new(),
            )
            .expect("approvals"),
        );
        let app = router(
            identity.clone(),
            approvals.clone(),
            SignInOptions {
                audit: Some(audit.clone()),
                entra: None,
                policy: None,
                campaigns: None,
                responses: None,
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Harness {
            issuer,
            identity,
            approvals,
            base,
            http,
            server,
            _dir: dir,
        }
    }

    impl Harness {
        fn token(&self, user: &str, roles: &[&str], mfa: bool) -> String {
            self.issuer
                .issuer
                .mint(&TokenOptions {
                    user: user.into(),
                    roles: roles.iter().map(|r| (*r).to_owned()).collect(),
                    mfa,
                    ..TokenOptions::default()
                })
                .expect("mint")
        }

        async fn principal(&self, token: &str) -> Principal {
            self.identity
                .authenticate(Some(&format!("Bearer {token}")), None)
                .await
                .expect("a valid token")
        }

        /// A held call of `requester`, with `<script>` in its arguments.
        async fn hold(&self, requester: &Principal, vm: &str) -> Request {
            let arguments = json!({ "vm": vm, "note": SCRIPT, "vm-size": "Standard_D64s_v5" });
            let call_id = format!("call-{vm}-{}", requester.oid);
            let resource = format!(
                "/subscriptions/00000000-0000-4000-8000-000000000001/resourcegroups/prod-rg/providers/microsoft.compute/virtualmachines/{vm}"
            );
            let gate = self
                .approvals
                .gate(
                    requester,
                    CallFacts {
                        call_id: &call_id,
                        tool: "demo_vm_delete",
                        upstream: "demo",
                        upstream_tool: "vm_delete",
                        arguments: Some(&arguments),
                        redacted: arguments.clone(),
                        operations: vec![OperationRef {
                            azure_op: "Microsoft.Compute/virtualMachines/delete".into(),
                            class: "delete".into(),
                            resource,
                        }],
                        policies: vec!["baseline-prod-delete".into()],
                        decision_inputs: Vec::new(),
                        risk: Some(json!({
                            "score": 72,
                            "level": "high",
                            "reasons": [{
                                "code": "delete_spike",
                                "score": 60,
                                "text": "14 deletes in the last hour; usually 1.0 in an hour with any"
                            }]
                        })),
                    },
                )
                .await
                .expect("gate");
            match gate {
                Gate::Held { request, .. } => request,
                Gate::Granted { .. } => panic!("a new call must be held"),
            }
        }

        async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
            let mut request = self.http.get(format!("{}{path}", self.base));
            if let Some(cookie) = cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            let response = request.send().await.expect("GET");
            Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.text().await.unwrap_or_default(),
            }
        }

        async fn post(
            &self,
            path: &str,
            cookie: Option<&str>,
            origin: Option<&str>,
            fields: &[(&str, &str)],
        ) -> Reply {
            let mut request = self
                .http
                .post(format!("{}{path}", self.base))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(crate::identity::dev::test_support::form(fields));
            if let Some(cookie) = cookie {
                request = request.header(reqwest::header::COOKIE, cookie);
            }
            if let Some(origin) = origin {
                request = request.header(reqwest::header::ORIGIN, origin);
            }
            let response = request.send().await.expect("POST");
            Reply {
                status: response.status().as_u16(),
                headers: response.headers().clone(),
                body: response.text().await.unwrap_or_default(),
            }
        }

        /// Loads the sign-in form and posts `token` with its CSRF token.
        async fn sign_in_with(&self, token: &str) -> Reply {
            let form = self.get("/admin/", None).await;
            assert_eq!(form.status, 200);
            assert!(form.body.contains(r#"action="/admin/sign-in""#));
            let signin = cookie_value(&form.set_cookie(SIGNIN_COOKIE).expect("sign-in cookie"));
            let csrf = csrf_field(&form.body);
            assert_eq!(signin, csrf);
            self.post(
                "/admin/sign-in",
                Some(&format!("{SIGNIN_COOKIE}={signin}")),
                Some(&self.base),
                &[("token", token), ("csrf", csrf.as_str())],
            )
            .await
        }

        async fn browser(&self, token: &str) -> Browser {
            let reply = self.sign_in_with(token).await;
            assert_eq!(reply.status, 303, "{}", reply.body);
            let session = cookie_value(&reply.set_cookie(SESSION_COOKIE).expect("session cookie"));
            let page = self
                .get("/admin/", Some(&format!("{SESSION_COOKIE}={session}")))
                .await;
            assert_eq!(page.status, 200);
            Browser {
                session,
                csrf: csrf_field(&page.body),
            }
        }

        async fn act(&self, browser: &Browser, id: &str, action: &str, reason: &str) -> Reply {
            self.post(
                &format!("/admin/requests/{id}/{action}"),
                Some(&browser.cookie()),
                Some(&self.base),
                &[("reason", reason), ("csrf", browser.csrf.as_str())],
            )
            .await
        }

        /// [`Harness::act`], then the page it redirects to (post/redirect/get).
        async fn act_and_follow(
            &self,
            browser: &Browser,
            id: &str,
            action: &str,
            reason: &str,
        ) -> (Reply, Reply) {
            let posted = self.act(browser, id, action, reason).await;
            assert_eq!(posted.status, 303, "{}", posted.body);
            let location = posted
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .expect("a redirect")
                .to_owned();
            let page = self.get(&location, Some(&browser.cookie())).await;
            (posted, page)
        }

        async fn status_of(&self, who: &Principal, id: &str) -> Status {
            self.approvals.get(who, id).expect("request").status
        }
    }

    fn assert_security_headers(reply: &Reply) {
        let h = &reply.headers;
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(
            get("content-security-policy"),
            CSP,
            "status {}",
            reply.status
        );
        assert_eq!(get("x-content-type-options"), "nosniff");
        assert_eq!(get("referrer-policy"), "same-origin");
        assert_eq!(get("cache-control"), "no-store");
    }

    #[tokio::test]
    async fn sign_in_with_a_bad_token_is_refused() {
        let h = harness().await;
        let reply = h.sign_in_with("not-a-token").await;
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("Sign-in refused"), "{}", reply.body);
        assert!(reply.body.contains(r#"role="alert""#));
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());

        // A real token for another audience is refused the same way.
        let other = h
            .issuer
            .issuer
            .mint(&TokenOptions {
                audience: Some("api://someone-else".into()),
                ..TokenOptions::default()
            })
            .expect("mint");
        let reply = h.sign_in_with(&other).await;
        assert_eq!(reply.status, 401);
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());

        // A good token without the sign-in form's CSRF token is refused.
        let good = h.token("ada", &["SecurityManager"], true);
        let reply = h
            .post(
                "/admin/sign-in",
                None,
                Some(&h.base),
                &[("token", good.as_str()), ("csrf", "forged")],
            )
            .await;
        assert_eq!(reply.status, 403);
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());

        // ... and from another site.
        let form = h.get("/admin/", None).await;
        let signin = cookie_value(&form.set_cookie(SIGNIN_COOKIE).expect("cookie"));
        let reply = h
            .post(
                "/admin/sign-in",
                Some(&format!("{SIGNIN_COOKIE}={signin}")),
                Some("https://evil.example"),
                &[("token", good.as_str()), ("csrf", signin.as_str())],
            )
            .await;
        assert_eq!(reply.status, 403);
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    }

    #[tokio::test]
    async fn security_manager_sees_the_escaped_request_and_approves_it() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let request = h.hold(&developer, "vm1").await;
        let token = h.token("ada", &["SecurityManager"], true);

        let reply = h.sign_in_with(&token).await;
        assert_eq!(reply.status, 303);
        assert_eq!(
            reply.headers.get("location").and_then(|v| v.to_str().ok()),
            Some("/admin/")
        );
        let set = reply.set_cookie(SESSION_COOKIE).expect("session cookie");
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        assert!(set.contains("Path=/admin"), "{set}");
        // Plain HTTP from a loopback peer: no Secure (the browser would drop it).
        assert!(!set.contains("Secure"), "{set}");
        let session = cookie_value(&set);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&session).expect("base64url").len(),
            32
        );

        let cookie = format!("{SESSION_COOKIE}={session}");
        let page = h.get("/admin/", Some(&cookie)).await;
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(body.contains("Signed in as"), "{body}");
        assert!(body.contains("You can review requests."));
        // The list: a compact row linking to the request.
        assert!(body.contains(&format!(r#"href="/admin/requests/{}""#, request.id)));
        assert!(body.contains("dev1"));
        assert!(body.contains("virtualmachines/vm1"));
        assert!(body.contains("0 of 1"));
        assert!(body.contains("risk risk-high"), "risk with visual weight");
        assert!(
            body.contains(">in 59 min ") || body.contains(">in 1 h "),
            "a relative lapse time: {body}"
        );
        assert!(body.contains("Showing 1–1 of 1"), "{body}");

        // The request's page: what it would do, decoded; the risk; the forms.
        let page = h
            .get(&format!("/admin/requests/{}", request.id), Some(&cookie))
            .await;
        assert_eq!(page.status, 200);
        let body = &page.body;
        assert!(body.contains("VM size"), "{body}");
        assert!(body.contains("Standard_D64s_v5"), "{body}");
        assert!(body.contains("Microsoft.Compute/virtualMachines/delete"));
        assert!(body.contains("72"), "risk score");
        assert!(
            body.contains("lets this one call of demo_vm_delete run once, within 15m"),
            "what approving does: {body}"
        );
        assert!(body.contains("Deny: ends the request"), "{body}");
        assert!(body.contains(&format!(
            r#"name="shown" value="{}""#,
            request.facts_hash.clone().expect("facts")
        )));
        assert!(
            body.contains("<li>14 deletes in the last hour; usually 1.0 in an hour with any</li>"),
            "risk reason, as its text"
        );
        // The argument is shown, escaped, never as markup.
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
        assert!(!body.contains(SCRIPT));
        assert!(body.contains(&format!(
            r#"action="/admin/requests/{}/approve""#,
            request.id
        )));

        let browser = Browser {
            session,
            csrf: csrf_field(body),
        };
        // A reason is required: the error comes back on the request's page
        // (post/redirect/get), once.
        let (_, page) = h
            .act_and_follow(&browser, &request.id, "approve", "   ")
            .await;
        assert!(page.body.contains("a reason is required"), "{}", page.body);
        assert!(page.body.contains(r#"role="alert""#));
        let reload = h
            .get(&format!("/admin/requests/{}", request.id), Some(&cookie))
            .await;
        assert!(!reload.body.contains("a reason is required"));
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Pending);

        let reply = h
            .act(&browser, &request.id, "approve", "change CHG-1 <b>ok</b>")
            .await;
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(
            reply.headers.get("location").and_then(|v| v.to_str().ok()),
            Some("/admin/")
        );
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Approved);

        // The flash says so once; the request's page shows the reviewer and
        // reason, escaped, and the audit records with their numbers.
        let page = h.get("/admin/", Some(&cookie)).await;
        assert!(
            page.body
                .contains(&format!("Request {} is approved", request.id))
        );
        assert!(page.body.contains("No requests match."), "none pending");
        let detail = h
            .get(&format!("/admin/requests/{}", request.id), Some(&cookie))
            .await;
        assert!(detail.body.contains("change CHG-1 &lt;b&gt;ok&lt;/b&gt;"));
        assert!(
            detail.body.contains("approved (request approved)"),
            "{}",
            detail.body
        );
        assert!(detail.body.contains("requested (request pending)"));
        let again = h.get("/admin/", Some(&cookie)).await;
        assert!(
            !again
                .body
                .contains(&format!("Request {} is approved", request.id))
        );

        // The request's own page, with the revoke form.
        let detail = h
            .get(&format!("/admin/requests/{}", request.id), Some(&cookie))
            .await;
        assert_eq!(detail.status, 200);
        assert!(detail.body.contains("approved"));
        assert!(detail.body.contains(&format!(
            r#"action="/admin/requests/{}/revoke""#,
            request.id
        )));
        let missing = h.get("/admin/requests/nope", Some(&cookie)).await;
        assert_eq!(missing.status, 404);
    }

    #[tokio::test]
    async fn posts_without_or_with_a_wrong_csrf_token_are_refused() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let request = h.hold(&developer, "vm1").await;
        let browser = h.browser(&h.token("ada", &["SecurityManager"], true)).await;
        let path = format!("/admin/requests/{}/approve", request.id);

        let none = h
            .post(
                &path,
                Some(&browser.cookie()),
                Some(&h.base),
                &[("reason", "ok")],
            )
            .await;
        assert_eq!(none.status, 403);
        let wrong = h
            .post(
                &path,
                Some(&browser.cookie()),
                Some(&h.base),
                &[
                    ("reason", "ok"),
                    ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ],
            )
            .await;
        assert_eq!(wrong.status, 403);
        assert!(wrong.body.contains("CSRF"));
        // Another session's token does not fit either.
        let other = h.browser(&h.token("bob", &["SecurityManager"], true)).await;
        let crossed = h
            .post(
                &path,
                Some(&browser.cookie()),
                Some(&h.base),
                &[("reason", "ok"), ("csrf", other.csrf.as_str())],
            )
            .await;
        assert_eq!(crossed.status, 403);
        // Without the session cookie: sign in again.
        let anonymous = h
            .post(
                &path,
                None,
                Some(&h.base),
                &[("reason", "ok"), ("csrf", browser.csrf.as_str())],
            )
            .await;
        assert_eq!(anonymous.status, 401);
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Pending);
        // Sign-out needs the token too.
        let out = h
            .post(
                "/admin/sign-out",
                Some(&browser.cookie()),
                Some(&h.base),
                &[],
            )
            .await;
        assert_eq!(out.status, 403);
    }

    #[tokio::test]
    async fn a_post_from_a_foreign_origin_is_refused() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let request = h.hold(&developer, "vm1").await;
        let browser = h.browser(&h.token("ada", &["SecurityManager"], true)).await;
        let path = format!("/admin/requests/{}/approve", request.id);
        let fields = [("reason", "ok"), ("csrf", browser.csrf.as_str())];
        let https_self = h.base.replacen("http://", "https://", 1);
        for origin in ["https://evil.example", "null", "http://localhost:1"] {
            let reply = h
                .post(&path, Some(&browser.cookie()), Some(origin), &fields)
                .await;
            assert_eq!(reply.status, 403, "{origin}");
            assert!(reply.body.contains("another site"), "{}", reply.body);
            assert_security_headers(&reply);
        }
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Pending);
        // The own origin (and no Origin at all) pass; https:// + Host too.
        let reply = h
            .post(&path, Some(&browser.cookie()), Some(&https_self), &fields)
            .await;
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Approved);
    }

    #[tokio::test]
    async fn a_non_reviewer_sees_only_their_own_requests_and_cannot_approve() {
        let h = harness().await;
        let token1 = h.token("dev1", &["Developer"], true);
        let token2 = h.token("dev2", &["Developer"], true);
        let dev1 = h.principal(&token1).await;
        let dev2 = h.principal(&token2).await;
        let theirs = h.hold(&dev1, "vm1").await;
        let mine = h.hold(&dev2, "vm2").await;

        let browser = h.browser(&token2).await;
        let page = h.get("/admin/", Some(&browser.cookie())).await;
        assert!(
            page.body.contains("You cannot review requests"),
            "{}",
            page.body
        );
        assert!(page.body.contains("You see only your own requests."));
        assert!(page.body.contains(&mine.id));
        assert!(!page.body.contains(&theirs.id));
        assert!(!page.body.contains("/approve"), "no review forms");
        let own = h
            .get(
                &format!("/admin/requests/{}", mine.id),
                Some(&browser.cookie()),
            )
            .await;
        assert!(!own.body.contains("/approve"), "no review forms");
        assert!(
            own.body
                .contains(&format!("/admin/requests/{}/cancel", mine.id))
        );
        let hidden = h
            .get(
                &format!("/admin/requests/{}", theirs.id),
                Some(&browser.cookie()),
            )
            .await;
        assert_eq!(hidden.status, 404);

        for id in [&theirs.id, &mine.id] {
            let (_, page) = h
                .act_and_follow(&browser, id, "approve", "looks fine")
                .await;
            assert!(
                page.body.contains("needs the app role SecurityManager"),
                "{}",
                page.body
            );
            assert!(page.body.contains(r#"role="alert""#));
            assert!(
                !page.body.contains("virtualmachines/vm1"),
                "nothing of theirs is shown"
            );
        }
        assert_eq!(h.status_of(&dev1, &theirs.id).await, Status::Pending);

        // Their own request they may cancel.
        let reply = h.act(&browser, &mine.id, "cancel", "not needed").await;
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(h.status_of(&dev2, &mine.id).await, Status::Cancelled);
    }

    #[tokio::test]
    async fn nobody_reviews_their_own_request_and_sign_out_ends_the_session() {
        let h = harness().await;
        let token = h.token("ada", &["SecurityManager"], true);
        let ada = h.principal(&token).await;
        let request = h.hold(&ada, "vm1").await;
        let browser = h.browser(&token).await;
        let page = h
            .get(
                &format!("/admin/requests/{}", request.id),
                Some(&browser.cookie()),
            )
            .await;
        assert!(page.body.contains("This is your own request"));
        let (_, page) = h
            .act_and_follow(&browser, &request.id, "approve", "me")
            .await;
        assert!(page.body.contains("nobody may review their own request"));
        // The reason typed is kept in the form.
        assert!(page.body.contains(">me</textarea>"), "{}", page.body);

        // Without MFA a security manager sees everything but reviews nothing.
        let no_mfa = h
            .browser(&h.token("bob", &["SecurityManager"], false))
            .await;
        let page = h.get("/admin/", Some(&no_mfa.cookie())).await;
        assert!(page.body.contains("multi-factor"), "{}", page.body);
        assert!(page.body.contains(&request.id));
        let (_, page) = h.act_and_follow(&no_mfa, &request.id, "deny", "no").await;
        assert!(page.body.contains("multi-factor"), "{}", page.body);
        assert_eq!(h.status_of(&ada, &request.id).await, Status::Pending);

        let out = h
            .post(
                "/admin/sign-out",
                Some(&browser.cookie()),
                Some(&h.base),
                &[("csrf", browser.csrf.as_str())],
            )
            .await;
        assert_eq!(out.status, 303);
        assert!(
            out.set_cookie(SESSION_COOKIE)
                .is_some_and(|c| c.contains("Max-Age=0"))
        );
        let after = h.get("/admin/", Some(&browser.cookie())).await;
        assert!(after.body.contains(r#"action="/admin/sign-in""#));
        assert!(!after.body.contains(&request.id));
    }

    #[tokio::test]
    async fn security_headers_are_on_every_page_response() {
        let h = harness().await;
        let sign_in = h.get("/admin/", None).await;
        assert_security_headers(&sign_in);
        assert!(
            sign_in
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/html"))
        );
        let body = &sign_in.body;
        assert!(body.starts_with("<!DOCTYPE html>"));
        assert!(body.contains(r#"<html lang="en">"#));
        assert!(body.contains(r#"<meta name="viewport""#));
        assert!(body.contains("<main>"));
        assert!(body.contains(r#"<label for="token">"#));
        assert!(!body.contains("<script"));
        let refused = h.sign_in_with("bad").await;
        assert_security_headers(&refused);
        let redirect = h
            .sign_in_with(&h.token("ada", &["SecurityManager"], true))
            .await;
        assert_eq!(redirect.status, 303);
        assert_security_headers(&redirect);
        assert_security_headers(&h.get("/admin", None).await);
        assert_security_headers(&h.get("/admin/requests/x", None).await);
    }

    /// What a browser sends under the page's referrer policy: its own
    /// origin on a same-origin form post (`same-origin`), where
    /// `no-referrer` would have made it send `null`. The real origin signs
    /// in; `null` and another site's origin do not, even with the right
    /// double-submit token.
    #[tokio::test]
    async fn sign_in_needs_the_pages_own_origin_which_the_referrer_policy_lets_browsers_send() {
        let h = harness().await;
        let form = h.get("/admin/", None).await;
        assert_eq!(
            form.headers
                .get("referrer-policy")
                .and_then(|v| v.to_str().ok()),
            Some("same-origin"),
            "no-referrer would make browsers send Origin: null on this form"
        );
        let signin = cookie_value(&form.set_cookie(SIGNIN_COOKIE).expect("cookie"));
        let csrf = csrf_field(&form.body);
        let token = h.token("ada", &["SecurityManager"], true);
        let fields = [("token", token.as_str()), ("csrf", csrf.as_str())];
        let cookie = format!("{SIGNIN_COOKIE}={signin}");
        for origin in ["null", "https://evil.example", "http://127.0.0.1:1"] {
            let reply = h
                .post("/admin/sign-in", Some(&cookie), Some(origin), &fields)
                .await;
            assert_eq!(reply.status, 403, "{origin}");
            assert!(reply.body.contains("another site"), "{}", reply.body);
            assert!(reply.set_cookie(SESSION_COOKIE).is_none(), "{origin}");
        }
        // The origin a browser sends for the page's own form: signed in.
        let reply = h
            .post("/admin/sign-in", Some(&cookie), Some(&h.base), &fields)
            .await;
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert!(reply.set_cookie(SESSION_COOKIE).is_some());
        // The right origin does not stand in for the CSRF token.
        let reply = h
            .post(
                "/admin/sign-in",
                Some(&cookie),
                Some(&h.base),
                &[("token", token.as_str()), ("csrf", "forged")],
            )
            .await;
        assert_eq!(reply.status, 403);
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn secure_is_left_out_only_for_plain_http_from_loopback() {
        let loopback: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let remote: IpAddr = "10.1.2.3".parse().expect("ip");
        assert!(plain_loopback(&HeaderMap::new(), loopback));
        assert!(plain_loopback(&HeaderMap::new(), mapped));
        assert!(plain_loopback(
            &HeaderMap::new(),
            "::1".parse().expect("ip")
        ));
        assert!(!plain_loopback(&HeaderMap::new(), remote));
        assert!(!plain_loopback(
            &headers(&[("x-forwarded-proto", "https")]),
            loopback
        ));
        assert!(!plain_loopback(
            &headers(&[("forwarded", "for=1.2.3.4;proto=https")]),
            loopback
        ));
        let cookie = set_cookie(SESSION_COOKIE, "abc", 60, true);
        assert_eq!(
            cookie.to_str().expect("ascii"),
            "warden_admin=abc; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=60; Secure"
        );
    }

    #[test]
    fn the_origin_must_be_the_page_itself() {
        let uri = Uri::from_static("/admin/sign-in");
        let host = |origin: &str, host: &str| headers(&[("origin", origin), ("host", host)]);
        assert!(origin_ok(&headers(&[("host", "w.example")]), &uri, false));
        assert!(origin_ok(
            &host("https://w.example", "w.example"),
            &uri,
            false
        ));
        assert!(origin_ok(
            &host("https://W.example", "w.example:443"),
            &uri,
            false
        ));
        assert!(!origin_ok(
            &host("http://w.example", "w.example"),
            &uri,
            false
        ));
        assert!(origin_ok(
            &host("http://127.0.0.1:8787", "127.0.0.1:8787"),
            &uri,
            true
        ));
        assert!(!origin_ok(
            &host("http://127.0.0.1:8788", "127.0.0.1:8787"),
            &uri,
            true
        ));
        assert!(!origin_ok(
            &host("https://w.example.evil", "w.example"),
            &uri,
            false
        ));
        assert!(!origin_ok(&host("null", "w.example"), &uri, false));
        assert!(!origin_ok(
            &headers(&[("origin", "https://w.example")]),
            &uri,
            false
        ));
    }

    /// A reviewer acting from a stale tab is told who decided, and when.
    #[tokio::test]
    async fn a_stale_tab_names_who_decided() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let request = h.hold(&developer, "vm1").await;
        let ada = h.browser(&h.token("ada", &["SecurityManager"], true)).await;
        let bob = h.browser(&h.token("bob", &["SecurityManager"], true)).await;
        let (_, _) = h
            .act_and_follow(&ada, &request.id, "deny", "not in the freeze")
            .await;
        let (posted, page) = h
            .act_and_follow(&bob, &request.id, "approve", "fine by me")
            .await;
        assert_eq!(
            posted.headers.get("location").and_then(|v| v.to_str().ok()),
            Some(format!("/admin/requests/{}", request.id).as_str())
        );
        assert!(
            page.body.contains("it is already denied by ada at"),
            "{}",
            page.body
        );
        assert!(page.body.contains("not in the freeze"));
        assert_eq!(h.status_of(&developer, &request.id).await, Status::Denied);
    }

    /// A token inside the clock skew past its expiry is accepted by the
    /// authenticator but makes no session: the page says so.
    #[tokio::test]
    async fn a_just_expired_token_gets_a_message_not_a_silent_bounce() {
        let h = harness().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut extra = serde_json::Map::new();
        extra.insert("exp".into(), json!(now - 30));
        let token = h
            .issuer
            .issuer
            .mint(&TokenOptions {
                user: "ada".into(),
                roles: vec!["SecurityManager".into()],
                mfa: true,
                extra,
                ..TokenOptions::default()
            })
            .expect("mint");
        let reply = h.sign_in_with(&token).await;
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.body.contains("get a fresh token"), "{}", reply.body);
        assert!(reply.set_cookie(SESSION_COOKIE).is_none());
    }

    /// Auditors see every request read-only, the audit view with the
    /// policy in force and risk alerts, and download what is shown; others
    /// get no audit view.
    #[tokio::test]
    async fn an_auditor_reads_everything_and_downloads_it() {
        let h = harness().await;
        let dev1 = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let dev2 = h.principal(&h.token("dev2", &["Developer"], true)).await;
        let first = h.hold(&dev1, "vm1").await;
        let second = h.hold(&dev2, "vm2").await;
        let auditor = h.browser(&h.token("aud", &["Auditor"], true)).await;
        let list = h.get("/admin/?status=", Some(&auditor.cookie())).await;
        assert!(
            list.body
                .contains("Auditor: you see every request, read only.")
        );
        for id in [&first.id, &second.id] {
            assert!(list.body.contains(id.as_str()), "{}", list.body);
            let page = h
                .get(&format!("/admin/requests/{id}"), Some(&auditor.cookie()))
                .await;
            assert_eq!(page.status, 200);
            assert!(!page.body.contains("/approve"), "read only");
            assert!(page.body.contains("Audit records"));
        }
        let (_, page) = h
            .act_and_follow(&auditor, &first.id, "approve", "auditing")
            .await;
        assert!(page.body.contains("needs the app role SecurityManager"));
        assert_eq!(h.status_of(&dev1, &first.id).await, Status::Pending);

        let audit = h.get("/admin/audit", Some(&auditor.cookie())).await;
        assert_eq!(audit.status, 200, "{}", audit.body);
        assert!(audit.body.contains("Request history"));
        assert!(audit.body.contains("Policy set in force"));
        assert!(audit.body.contains("Risk alerts"));
        assert!(audit.body.contains(&first.id));
        // The history's downloads are the history: every status.
        assert!(
            audit.body.contains("/admin/requests.csv?status=&amp;"),
            "{}",
            audit.body
        );

        let csv = h
            .get("/admin/requests.csv?status=", Some(&auditor.cookie()))
            .await;
        assert_eq!(csv.status, 200);
        assert!(
            csv.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/csv"))
        );
        let mut rows = csv::Reader::from_reader(csv.body.as_bytes());
        let ids: Vec<String> = rows
            .records()
            .map(|r| r.expect("a CSV row")[0].to_owned())
            .collect();
        assert_eq!(ids.len(), 2, "{}", csv.body);
        assert!(ids.contains(&first.id) && ids.contains(&second.id));
        let json = h
            .get("/admin/requests.json?status=", Some(&auditor.cookie()))
            .await;
        let json: serde_json::Value = serde_json::from_str(&json.body).expect("JSON");
        assert_eq!(json["total"], 2);

        // A developer has no audit view and downloads only their own.
        let developer = h.browser(&h.token("dev1", &["Developer"], true)).await;
        let refused = h.get("/admin/audit", Some(&developer.cookie())).await;
        assert_eq!(refused.status, 403);
        let own = h
            .get("/admin/requests.json?status=", Some(&developer.cookie()))
            .await;
        let own: serde_json::Value = serde_json::from_str(&own.body).expect("JSON");
        assert_eq!(own["total"], 1);
        assert_eq!(own["requests"][0]["id"], first.id.as_str());
        // Without a session, no download.
        let anonymous = h.get("/admin/requests.csv", None).await;
        assert_eq!(anonymous.status, 401);
    }

    /// The list pages instead of capping silently, and filters and sorts.
    #[tokio::test]
    async fn the_list_pages_filters_and_sorts() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(h.hold(&developer, &format!("vm{n}")).await.id);
        }
        let ada = h.browser(&h.token("ada", &["SecurityManager"], true)).await;
        let first = h.get("/admin/?limit=2", Some(&ada.cookie())).await;
        assert!(first.body.contains("Showing 1–2 of 5"), "{}", first.body);
        assert!(first.body.contains("Page 1 of 3"));
        assert!(first.body.contains("offset=2"), "a next link");
        let last = h.get("/admin/?limit=2&offset=4", Some(&ada.cookie())).await;
        assert!(last.body.contains("Showing 5–5 of 5"), "{}", last.body);
        assert!(
            last.body.contains(&ids[0]),
            "newest first: the oldest is last"
        );
        let by_scope = h
            .get(
                "/admin/?scope=/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachines/vm3",
                Some(&ada.cookie()),
            )
            .await;
        assert!(
            by_scope.body.contains("Showing 1–1 of 1"),
            "{}",
            by_scope.body
        );
        assert!(by_scope.body.contains(&ids[3]));
        let by_class = h.get("/admin/?class=privileged", Some(&ada.cookie())).await;
        assert!(by_class.body.contains("No requests match."));
        let deletes = h
            .get("/admin/?class=delete&sort=lapses", Some(&ada.cookie()))
            .await;
        assert!(deletes.body.contains("Showing 1–5 of 5"));
        // "Any status" stays chosen in the next page's link and the downloads.
        let any = h.get("/admin/?status=&limit=2", Some(&ada.cookie())).await;
        assert!(
            any.body
                .contains("/admin/?status=&amp;limit=2&amp;offset=2")
                && any.body.contains("/admin/requests.csv?status=&amp;limit=2"),
            "{}",
            any.body
        );
        let bad = h.get("/admin/?limit=lots", Some(&ada.cookie())).await;
        assert_eq!(bad.status, 200);
        assert!(
            bad.body.contains("The filter was not understood"),
            "{}",
            bad.body
        );
    }

    /// A window's risk and its two-person rule are on its page.
    #[tokio::test]
    async fn a_windows_risk_and_its_approvals_are_shown() {
        let h = harness().await;
        let developer = h.principal(&h.token("dev1", &["Developer"], true)).await;
        let members = vec![(
            "Microsoft.Authorization/roleAssignments/write".to_owned(),
            "privileged".to_owned(),
        )];
        let window = h
            .approvals
            .request_window(
                &developer,
                crate::approvals::WindowAsk {
                    operations: vec!["privileged".into()],
                    scope: "/subscriptions/00000000-0000-4000-8000-000000000001".into(),
                    duration: Duration::from_secs(2 * 3600),
                    justification: "rotate keys".into(),
                    ticket: Some("CHG-9".into()),
                },
                &members,
                Some(json!({"score": 64, "level": "medium", "reasons": []})),
            )
            .await
            .expect("a window request");
        let ada = h.browser(&h.token("ada", &["SecurityManager"], true)).await;
        let page = h
            .get(
                &format!("/admin/requests/{}", window.id),
                Some(&ada.cookie()),
            )
            .await;
        let body = &page.body;
        assert!(body.contains("risk risk-medium"), "{body}");
        assert!(body.contains("Score <strong>64</strong>"), "{body}");
        assert!(body.contains("two-person rule"), "{body}");
        assert!(body.contains("your approval is 1 of 2"), "{body}");
        assert!(
            body.contains("opens a 2h window starting now for privileged"),
            "{body}"
        );
        assert!(body.contains("Group privileged"), "{body}");
        assert!(body.contains("CHG-9"));
    }
}
