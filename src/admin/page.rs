//! The approvals web page for security managers, under `/admin/` on the
//! gateway's listener: server-rendered HTML (maud templates, every value
//! escaped), no JavaScript, no external assets.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin/` | signed in: pending requests (with approve/deny forms), then the history; else the sign-in form |
//! | `GET /admin/requests/{id}` | one request in full |
//! | `POST /admin/sign-in` | form `token`, `csrf`: a bearer token, validated exactly as on the API |
//! | `POST /admin/sign-out` | form `csrf`: ends the session |
//! | `POST /admin/requests/{id}/approve\|deny\|revoke\|cancel` | form `reason`, `csrf`; 303 back to `/admin/`, or the page again with the error |
//!
//! # Sign-in (what is implemented)
//!
//! The user pastes an access token for Warden (with `warden dev`, a
//! persona's token from `.warden-dev/dev.json`). It is checked by
//! [`Authenticator::authenticate`] exactly as a bearer token on `/mcp` or
//! `/admin/api` is (issuer, tenant, audience, signature, expiry, scopes,
//! MFA claims), with the connection's peer address. On success Warden keeps
//! a server-side session: a random 32-byte id (base64url) in the cookie
//! `warden_admin`, mapped in memory (by the id's SHA-256) to the token's
//! [`Principal`], a per-session CSRF token and an expiry of the token's
//! `exp` or 8 hours, whichever comes first. The token itself is not kept.
//! Sessions live in this process only: a restart signs everyone out.
//! Expired sessions are pruned on every sign-in; at most 10 000 live at once.
//!
//! What a session sees is what its principal may see through
//! [`Approvals::list`] and [`Approvals::get`] (reviewers everything, others
//! their own requests), and every action goes through [`Approvals`], which
//! enforces the review rules (approver role, MFA, never one's own request,
//! a reason).
//!
//! # Production sign-in (not implemented here)
//!
//! Warden runs no OpenID Connect redirect flow itself, and what is
//! implemented is the token sign-in above. The intended setup in a tenant:
//! an Entra app registration for the page (a web client whose redirect URI
//! is the auth proxy's callback, with permission to request Warden's API
//! scope); an auth proxy in front of `/admin/` (oauth2-proxy, or App
//! Service / Container Apps Easy Auth) that signs the user in with the
//! authorization code flow and PKCE, where Conditional Access enforces MFA,
//! and obtains an access token *for Warden's audience*; the proxy hands
//! that token to Warden (oauth2-proxy's `--pass-authorization-header`,
//! Easy Auth's `X-MS-TOKEN-AAD-ACCESS-TOKEN`). Reading it from such a
//! header is the missing piece; whatever carries it, the page accepts only
//! tokens that pass the same validation as the API (an ID token, or a token
//! for another audience, is refused), and the `amr`/`acrs` claims decide
//! [`Approvals::check_reviewer`] as on the API. Because a proxy attaches
//! credentials to every request, the CSRF checks below must stay in force
//! then too. The proxy must keep the original `Host` and set
//! `X-Forwarded-Proto: https`.
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
//!    requests started by another site.
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
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use rand::RngCore;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::approvals::{ApprovalError, Approvals, Ask, Filter, Request, Status};
use crate::identity::{Authenticator, Principal};

/// The session cookie.
const SESSION_COOKIE: &str = "warden_admin";
/// The sign-in form's double-submit CSRF cookie.
const SIGNIN_COOKIE: &str = "warden_admin_signin";
/// The longest session, whatever the token's expiry.
const MAX_SESSION: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once.
const MAX_SESSIONS: usize = 10_000;
/// The longest reason accepted from the form.
const MAX_REASON: usize = 4096;
/// The longest token accepted from the sign-in form (the authenticator has
/// its own, usually smaller, limit).
const MAX_TOKEN: usize = 64 * 1024;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// See "Why `Referrer-Policy: same-origin`" in the module docs.
const REFERRER_POLICY: &str = "same-origin";

const STYLE: &str = r#"
:root { color-scheme: light dark; --muted: #5a5a5a; --line: #c8c8c8; --accent: #0b57d0; }
@media (prefers-color-scheme: dark) { :root { --muted: #b0b0b0; --line: #555; --accent: #8ab4f8; } }
body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0 1rem 3rem; overflow-wrap: anywhere; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; justify-content: space-between; border-bottom: 1px solid var(--line); padding: .75rem 0; }
header p { margin: 0; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; }
th[scope=row] { width: 12rem; }
@media (max-width: 40rem) {
  th[scope=row] { width: 8rem; }
  table:has(thead), table:has(thead) :is(caption, tbody, tr, td, th[scope=row]) { display: block; width: auto; }
  table:has(thead) thead { display: none; }
  table:has(thead) tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 .5rem; padding: .25rem 0; }
  table:has(thead) :is(td, th[scope=row]) { border: 0; padding: .15rem .5rem; }
}
pre { overflow-x: auto; padding: .5rem; border: 1px solid var(--line); white-space: pre-wrap; word-break: break-word; }
code, pre { font-family: ui-monospace, monospace; font-size: .92em; }
article { border: 1px solid var(--line); border-radius: 6px; padding: 0 1rem 1rem; margin: 1rem 0; }
form { margin: .75rem 0; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
textarea, input[type=password] { width: 100%; max-width: 40rem; box-sizing: border-box; font: inherit; padding: .35rem; }
button { font: inherit; padding: .35rem .9rem; margin: .4rem .5rem 0 0; cursor: pointer; }
.inline { display: inline; margin: 0; }
.muted { color: var(--muted); }
.notice { border: 2px solid var(--accent); padding: .5rem .75rem; border-radius: 6px; }
.error { border: 2px solid #c5221f; padding: .5rem .75rem; border-radius: 6px; }
"#;

/// The page's routes (their own state inside; mergeable into a router of
/// any state).
pub fn router<S>(identity: Arc<Authenticator>, approvals: Arc<Approvals>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/requests/{id}", get(show))
        .route("/admin/sign-in", post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/requests/{id}/{action}", post(act))
        .with_state(Page {
            identity,
            approvals,
            sessions: Arc::new(Sessions::default()),
        })
        .layer(axum::middleware::map_response(security_headers))
}

#[derive(Clone)]
struct Page {
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
    sessions: Arc<Sessions>,
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
}

/// Server-side sessions, keyed by the SHA-256 of the cookie value.
#[derive(Default)]
struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A live session, as a request sees it.
struct Signed {
    id: String,
    principal: Principal,
    csrf: String,
    flash: Option<String>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn session_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
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
            },
        );
        Some(id)
    }

    fn open(&self, id: &str, take_flash: bool) -> Option<Signed> {
        let key = session_key(id);
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if session.expires <= Instant::now() {
            map.remove(&key);
            return None;
        }
        Some(Signed {
            id: id.to_owned(),
            principal: session.principal.clone(),
            csrf: session.csrf.clone(),
            flash: if take_flash {
                session.flash.take()
            } else {
                None
            },
        })
    }

    fn flash(&self, id: &str, message: String) {
        if let Some(session) = self.lock().get_mut(&session_key(id)) {
            session.flash = Some(message);
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

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request came over plain HTTP from a loopback peer: no TLS
/// proxy in front said otherwise.
fn plain_loopback(headers: &HeaderMap, peer: IpAddr) -> bool {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        || headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([';', ',']))
            .any(|p| p.trim().eq_ignore_ascii_case("proto=https"));
    peer.to_canonical().is_loopback() && !https
}

fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/admin; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
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
fn origin_ok(headers: &HeaderMap, uri: &Uri, plain: bool) -> bool {
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
fn signed_in(page: &Page, headers: &HeaderMap, take_flash: bool) -> Option<Signed> {
    cookie(headers, SESSION_COOKIE).and_then(|id| page.sessions.open(id, take_flash))
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// 303 to `/admin/`.
fn see_other() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("/admin/"))],
    )
        .into_response()
}

fn status_of(e: &ApprovalError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal page (bad origin, CSRF, malformed form).
fn refusal(status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        layout(
            "Refused",
            None,
            html! {
                h1 { "Refused" }
                p.error role="alert" { (message) }
                p { a href="/admin/" { "Back to the approvals page" } }
            },
        ),
    )
}

fn bad_origin() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "This form was sent from another site (its Origin is not this page's). Nothing was changed.",
    )
}

fn bad_csrf() -> Response {
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
}

async fn index(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match signed_in(&page, &headers, true) {
        Some(signed) => {
            let flash = signed.flash.clone();
            html_response(
                StatusCode::OK,
                overview(&page, &signed, flash.as_deref(), None),
            )
        }
        None => sign_in_page(&headers, peer.ip(), StatusCode::OK, None),
    }
}

async fn show(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, false) else {
        return sign_in_page(&headers, peer.ip(), StatusCode::OK, None);
    };
    match page.approvals.get(&signed.principal, &id) {
        Ok(request) => html_response(StatusCode::OK, detail(&page, &signed, &request)),
        Err(e) => html_response(
            status_of(&e),
            overview(&page, &signed, None, Some(&e.to_string())),
        ),
    }
}

/// The sign-in form, with a fresh (or the current) double-submit token.
fn sign_in_page(
    headers: &HeaderMap,
    peer: IpAddr,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = cookie(headers, SIGNIN_COOKIE)
        .filter(|v| v.len() == 43 && URL_SAFE_NO_PAD.decode(v).is_ok())
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let secure = !plain_loopback(headers, peer);
    let mut response = html_response(status, sign_in_markup(&csrf, error));
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
            &headers,
            peer.ip(),
            StatusCode::FORBIDDEN,
            Some("The sign-in form is stale or did not come from this page. Try again."),
        );
    }
    let token = form.token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return sign_in_page(
            &headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            Some("Paste an access token for Warden."),
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
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            return sign_in_page(
                &headers,
                peer.ip(),
                status,
                Some(&format!("Sign-in refused: {e}.")),
            );
        }
    };
    let ttl = session_ttl(&principal);
    let who = principal.display_name.clone();
    let oid = principal.oid.clone();
    let Some(id) = page.sessions.create(principal, ttl) else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sessions are open; try again later.",
        );
    };
    tracing::info!(target: "warden::admin", user = %who, oid = %oid, secs = ttl.as_secs(), "approvals page sign-in");
    page.sessions.flash(&id, format!("Signed in as {who}."));
    let mut response = see_other();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, ttl.as_secs(), !plain),
    );
    headers.append(header::SET_COOKIE, set_cookie(SIGNIN_COOKIE, "", 0, !plain));
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
    if let Some(signed) = signed_in(&page, &headers, false) {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if !same_secret(&csrf, &signed.csrf) {
            return bad_csrf();
        }
        page.sessions.remove(&signed.id);
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
    let Some(signed) = signed_in(&page, &headers, false) else {
        return sign_in_page(
            &headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            Some(
                "Your session has ended (or you were not signed in): sign in again. Nothing was changed.",
            ),
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
    let result = if reason.len() > MAX_REASON {
        Err(ApprovalError::Invalid(format!(
            "the reason is too long (at most {MAX_REASON} bytes)"
        )))
    } else {
        match action.as_str() {
            "approve" => approvals.review(&id, principal, true, reason).await,
            "deny" => approvals.review(&id, principal, false, reason).await,
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
                        .map(|g| stamp(g.expires))
                        .unwrap_or_default()
                ),
                (_, status) => format!("Request {} is now {}.", request.id, status.as_str()),
            };
            page.sessions.flash(&signed.id, message);
            see_other()
        }
        Err(e) => {
            let message = format!("Could not {action} request {id}: {e}.");
            html_response(
                status_of(&e),
                overview(&page, &signed, None, Some(&message)),
            )
        }
    }
}

// ------------------------------------------------------------- markup

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn when(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) { (stamp(t)) }
    }
}

fn layout(title: &str, who: Option<(&Page, &Signed)>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden approvals" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    p { strong { "Warden" } " · just-in-time approvals" }
                    @if let Some((page, signed)) = who {
                        (who_box(page, signed))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Who is signed in, whether they may review, and the sign-out button.
fn who_box(page: &Page, signed: &Signed) -> Markup {
    let p = &signed.principal;
    let review = page.approvals.check_reviewer(p);
    html! {
        div {
            p {
                "Signed in as " strong { (p.display_name) }
                " " span.muted { "(" (p.kind.as_str()) ", object " code { (p.oid) } ", tenant " code { (p.tid) } ")" }
            }
            p {
                "Multi-factor sign-in: " strong { @if p.mfa { "yes" } @else { "no" } }
                ". Roles: "
                @if p.roles.is_empty() { span.muted { "none" } }
                @else { (p.roles.iter().cloned().collect::<Vec<_>>().join(", ")) }
                ". "
                @match &review {
                    Ok(()) => { strong { "You can review requests." } }
                    Err(e) => {
                        strong { "You cannot review requests" } ": " (e.to_string()) "."
                        @if !page.approvals.is_reviewer(p) { " You see only your own requests." }
                    }
                }
            }
            form.inline method="post" action="/admin/sign-out" {
                input type="hidden" name="csrf" value=(signed.csrf);
                button type="submit" { "Sign out" }
            }
        }
    }
}

fn sign_in_markup(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p {
                "Paste an access token for Warden. It is checked exactly as a bearer token on the API "
                "(issuer, tenant, audience, signature, expiry); Warden keeps a session for "
                "at most 8 hours, never past the token's expiry, and does not keep the token."
            }
            p.muted {
                "With " code { "warden dev" } ": "
                code { "jq -r '.personas[\"security-manager\"].token' .warden-dev/dev.json" }
                ". In production, sign-in happens in front of Warden (see the README, “Approvals web page”)."
            }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Access token" }
                input id="token" name="token" type="password" required autocomplete="off" spellcheck="false";
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// `/admin/`: pending requests in full, then the history.
fn overview(page: &Page, signed: &Signed, flash: Option<&str>, error: Option<&str>) -> Markup {
    let all = page.approvals.list(
        &signed.principal,
        &Filter {
            limit: Some(1000),
            ..Filter::default()
        },
    );
    let (pending, history): (Vec<&Request>, Vec<&Request>) =
        all.iter().partition(|r| r.status == Status::Pending);
    let can_review = page.approvals.check_reviewer(&signed.principal).is_ok();
    layout(
        "Requests",
        Some((page, signed)),
        html! {
            h1 { "JIT requests" }
            (messages(flash, error))
            section aria-labelledby="pending" {
                h2 id="pending" { "Pending (" (pending.len()) ")" }
                @if pending.is_empty() {
                    p.muted { "No pending requests." }
                }
                @for request in &pending {
                    article aria-labelledby=(format!("r-{}", request.id)) {
                        h3 id=(format!("r-{}", request.id)) {
                            a href=(format!("/admin/requests/{}", request.id)) { (headline(request)) }
                        }
                        (facts(request))
                        (actions(request, signed, can_review))
                    }
                }
            }
            section aria-labelledby="history" {
                h2 id="history" { "History (" (history.len()) ")" }
                @if history.is_empty() {
                    p.muted { "No decided requests yet." }
                } @else {
                    (history_table(&history))
                }
            }
        },
    )
}

/// `/admin/requests/{id}`.
fn detail(page: &Page, signed: &Signed, request: &Request) -> Markup {
    let can_review = page.approvals.check_reviewer(&signed.principal).is_ok();
    layout(
        &format!("Request {}", request.id),
        Some((page, signed)),
        html! {
            p { a href="/admin/" { "← All requests" } }
            h1 { "Request " code { (request.id) } }
            p { (headline(request)) }
            (facts(request))
            (actions(request, signed, can_review))
        },
    )
}

fn messages(flash: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(flash) = flash {
            p.notice role="status" { (flash) }
        }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
    }
}

/// "Ada: Microsoft.Compute/virtualMachines/delete" and the like.
fn headline(request: &Request) -> String {
    let ops = request
        .operations
        .iter()
        .map(|o| o.azure_op.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let what = match &request.ask {
        Ask::Call { tool, .. } => format!("call {tool}"),
        Ask::Window { duration_secs, .. } => format!(
            "{} window",
            humantime::format_duration(Duration::from_secs(*duration_secs))
        ),
    };
    format!(
        "{}: {what} ({}) — {}",
        request.requester.name,
        if ops.is_empty() {
            "no operations"
        } else {
            &ops
        },
        request.status.as_str()
    )
}

/// Every fact of a request, as a table.
fn facts(request: &Request) -> Markup {
    let (asked, call) = match &request.ask {
        Ask::Call {
            tool,
            upstream,
            upstream_tool,
            arguments,
            args_hash,
        } => (
            html! {
                "One call of the tool " code { (tool) }
                " (upstream " code { (upstream) } ", tool " code { (upstream_tool) } "), single use"
            },
            Some((arguments, args_hash)),
        ),
        Ask::Window {
            operations,
            scope,
            duration_secs,
        } => (
            html! {
                "A time window of " (humantime::format_duration(Duration::from_secs(*duration_secs)).to_string())
                " for " code { (operations.join(", ")) }
                " at and below " code { (scope) }
            },
            None,
        ),
    };
    html! {
        table {
            caption.muted { "Request " code { (request.id) } }
            tbody {
                tr { th scope="row" { "Status" } td { strong { (request.status.as_str()) } } }
                tr {
                    th scope="row" { "Requester" }
                    td {
                        (request.requester.name)
                        " " span.muted { "(object " code { (request.requester.oid) } ", tenant " code { (request.requester.tid) } ")" }
                    }
                }
                tr { th scope="row" { "Asked for" } td { (asked) } }
                tr {
                    th scope="row" { "Operations and resources" }
                    td {
                        @if request.operations.is_empty() {
                            span.muted { "none resolved" }
                        } @else {
                            ul {
                                @for op in &request.operations {
                                    li {
                                        code { (op.azure_op) }
                                        @if !op.class.is_empty() { " (" (op.class) ")" }
                                        " on " code { (op.resource) }
                                    }
                                }
                            }
                        }
                    }
                }
                tr {
                    th scope="row" { "Justification" }
                    td {
                        @if request.justification.is_empty() {
                            span.muted { "none given (a held call)" }
                        } @else {
                            (request.justification)
                        }
                    }
                }
                @if let Some(ticket) = &request.ticket {
                    tr { th scope="row" { "Ticket" } td { (ticket) } }
                }
                @if !request.policies.is_empty() {
                    tr { th scope="row" { "Policies" } td { code { (request.policies.join(", ")) } } }
                }
                @if let Some(risk) = &request.risk {
                    tr { th scope="row" { "Risk" } td { (risk_markup(risk)) } }
                }
                tr { th scope="row" { "Created" } td { (when(request.created)) } }
                @if request.status == Status::Pending {
                    tr { th scope="row" { "Lapses" } td { (when(request.lapses)) } }
                } @else {
                    tr { th scope="row" { "Last change" } td { (when(request.updated)) } }
                }
                tr {
                    th scope="row" { "Approvals" }
                    td {
                        (request.approvals()) " of " (request.required_approvals) " required"
                        @if request.critical { " " strong { "(critical operation)" } }
                    }
                }
                @if !request.reviews.is_empty() {
                    tr { th scope="row" { "Reviews" } td { (reviews(request)) } }
                }
                @if let Some(grant) = &request.grant {
                    tr {
                        th scope="row" { "Grant" }
                        td {
                            code { (grant.id) } ", expires " (when(grant.expires))
                            ", approvers " code { (grant.approvers.join(", ")) }
                        }
                    }
                }
                @if let Some(reason) = &request.closing_reason {
                    tr { th scope="row" { "Closing reason" } td { (reason) } }
                }
                @if let Some((arguments, args_hash)) = call {
                    tr {
                        th scope="row" { "Arguments" }
                        td {
                            pre { code { (pretty(arguments)) } }
                            span.muted { "Redacted as in the audit log. SHA-256 of the exact arguments: " code { (args_hash) } }
                        }
                    }
                }
            }
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The risk stage's facts: score, level and reasons, then the rest.
fn risk_markup(risk: &Value) -> Markup {
    let score = risk.get("score").map(|s| match s {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let level = risk.get("level").and_then(Value::as_str);
    let reasons: Vec<String> = match risk.get("reasons") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                // The risk stage's findings: {code, score, text}.
                Value::Object(reason) => match reason.get("text").and_then(Value::as_str) {
                    Some(text) => text.to_owned(),
                    None => i.to_string(),
                },
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    html! {
        @if let Some(score) = &score {
            "Score " strong { (score) }
            @if let Some(level) = level { " (" (level) ")" }
        }
        @if !reasons.is_empty() {
            ul { @for reason in &reasons { li { (reason) } } }
        }
        details {
            summary { "All risk facts" }
            pre { code { (pretty(risk)) } }
        }
    }
}

fn reviews(request: &Request) -> Markup {
    html! {
        ul {
            @for review in &request.reviews {
                li {
                    strong { (review.reviewer.name) }
                    @if review.approve { " approved" } @else { " denied" }
                    " " (when(review.at)) ": " (review.reason)
                }
            }
        }
    }
}

/// The forms this principal may use on this request. The engine decides;
/// the page only hides buttons that cannot work.
fn actions(request: &Request, signed: &Signed, can_review: bool) -> Markup {
    let me = &signed.principal;
    let own = request.requester.tid == me.tid && request.requester.oid == me.oid;
    let reviewed = request
        .reviews
        .iter()
        .any(|r| r.reviewer.tid == me.tid && r.reviewer.oid == me.oid);
    let base = format!("/admin/requests/{}", request.id);
    let review = request.status == Status::Pending && can_review && !own && !reviewed;
    let revoke = request.status == Status::Approved && can_review;
    let cancel = request.status == Status::Pending && own;
    html! {
        @if review {
            form method="post" action=(format!("{base}/approve")) {
                input type="hidden" name="csrf" value=(signed.csrf);
                label for=(format!("review-{}", request.id)) { "Reason for your decision (required)" }
                textarea id=(format!("review-{}", request.id)) name="reason" rows="2" required {}
                div {
                    button type="submit" { "Approve" }
                    button type="submit" formaction=(format!("{base}/deny")) { "Deny" }
                }
            }
        }
        @if request.status == Status::Pending && can_review && own {
            p.muted { "This is your own request: another reviewer must decide it." }
        }
        @if request.status == Status::Pending && can_review && reviewed {
            p.muted { "You have reviewed this request; it waits for another reviewer." }
        }
        @if revoke {
            form method="post" action=(format!("{base}/revoke")) {
                input type="hidden" name="csrf" value=(signed.csrf);
                label for=(format!("revoke-{}", request.id)) { "Reason to revoke the grant (required)" }
                textarea id=(format!("revoke-{}", request.id)) name="reason" rows="2" required {}
                div { button type="submit" { "Revoke" } }
            }
        }
        @if cancel {
            form method="post" action=(format!("{base}/cancel")) {
                input type="hidden" name="csrf" value=(signed.csrf);
                label for=(format!("cancel-{}", request.id)) { "Reason to cancel your request (required)" }
                textarea id=(format!("cancel-{}", request.id)) name="reason" rows="2" required {}
                div { button type="submit" { "Cancel request" } }
            }
        }
    }
}

fn history_table(history: &[&Request]) -> Markup {
    html! {
        table {
            caption.muted { "Decided, cancelled, lapsed, used and expired requests, newest first" }
            thead {
                tr {
                    th scope="col" { "Request" }
                    th scope="col" { "Requester" }
                    th scope="col" { "Operations and resources" }
                    th scope="col" { "Status" }
                    th scope="col" { "Created" }
                    th scope="col" { "Reviews" }
                    th scope="col" { "Reason" }
                }
            }
            tbody {
                @for request in history {
                    tr {
                        th scope="row" {
                            a href=(format!("/admin/requests/{}", request.id)) { code { (request.id) } }
                        }
                        td { (request.requester.name) }
                        td {
                            @for op in &request.operations {
                                div { code { (op.azure_op) } " on " code { (op.resource) } }
                            }
                        }
                        td {
                            (request.status.as_str())
                            @if request.status == Status::Approved {
                                @if let Some(grant) = &request.grant {
                                    br; span.muted { "until " (when(grant.expires)) }
                                }
                            }
                        }
                        td { (when(request.created)) }
                        td {
                            @if request.reviews.is_empty() { span.muted { "none" } }
                            @else { (reviews(request)) }
                        }
                        td {
                            @if let Some(reason) = &request.closing_reason { (reason) }
                        }
                    }
                }
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
    use crate::approvals::{ApprovalsConfig, Gate, OperationRef};
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
                audit,
                &dir.path().join("no-such-store.db"),
                crate::metrics::Metrics::new(),
            )
            .expect("approvals"),
        );
        let app = router(identity.clone(), approvals.clone());
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
            let arguments = json!({ "vm": vm, "note": SCRIPT });
            let resource = format!(
                "/subscriptions/00000000-0000-4000-8000-000000000001/resourcegroups/prod-rg/providers/microsoft.compute/virtualmachines/{vm}"
            );
            let gate = self
                .approvals
                .gate(
                    requester,
                    CallFacts {
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
        assert!(body.contains(&request.id));
        assert!(body.contains("dev1"));
        assert!(body.contains("Microsoft.Compute/virtualMachines/delete"));
        assert!(body.contains("virtualmachines/vm1"));
        assert!(body.contains("0 of 1 required"));
        assert!(body.contains("72"), "risk score");
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
        // A reason is required.
        let reply = h.act(&browser, &request.id, "approve", "   ").await;
        assert_eq!(reply.status, 400);
        assert!(
            reply.body.contains("a reason is required"),
            "{}",
            reply.body
        );
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

        // The flash says so once; the history shows the reviewer and reason.
        let page = h.get("/admin/", Some(&cookie)).await;
        assert!(
            page.body
                .contains(&format!("Request {} is approved", request.id))
        );
        assert!(page.body.contains("Pending (0)"));
        assert!(page.body.contains("change CHG-1 &lt;b&gt;ok&lt;/b&gt;"));
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
        assert!(
            page.body
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
            let reply = h.act(&browser, id, "approve", "looks fine").await;
            assert_eq!(reply.status, 403, "{}", reply.body);
            assert!(
                reply.body.contains("needs the app role SecurityManager"),
                "{}",
                reply.body
            );
            assert!(reply.body.contains(r#"role="alert""#));
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
        let page = h.get("/admin/", Some(&browser.cookie())).await;
        assert!(page.body.contains("This is your own request"));
        let reply = h.act(&browser, &request.id, "approve", "me").await;
        assert_eq!(reply.status, 403);
        assert!(reply.body.contains("nobody may review their own request"));

        // Without MFA a security manager sees everything but reviews nothing.
        let no_mfa = h
            .browser(&h.token("bob", &["SecurityManager"], false))
            .await;
        let page = h.get("/admin/", Some(&no_mfa.cookie())).await;
        assert!(page.body.contains("multi-factor"), "{}", page.body);
        assert!(page.body.contains(&request.id));
        let reply = h.act(&no_mfa, &request.id, "deny", "no").await;
        assert_eq!(reply.status, 403);

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
}
