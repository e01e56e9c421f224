//! Stage 1 at the HTTP front: every `/mcp` request is authenticated before
//! the MCP transport sees it, and a session is bound to the principal that
//! opened it.
//!
//! - No or bad token: the status of the [`AuthError`] (401/403/503) with a
//!   `WWW-Authenticate` challenge naming the protected-resource metadata
//!   (RFC 9728), and a JSON-RPC error body so SDK clients can show why.
//!   The challenge, its `scope` included, is the identity stage's
//!   ([`crate::identity::Authenticator::challenge`]).
//! - A token of a facade grant that policy marked for a step-up: `403`
//!   with MCP's step-up challenge, once per mark
//!   ([`crate::identity::Authenticator::take_step_up`]).
//! - A request on a session opened by another `tid`/`oid`: 403, logged and
//!   counted.
//! - Before all of these, a request from an address over its rate limit
//!   (`[limits] source_address`): 429 with `Retry-After`, counted, logged
//!   at most once a minute per address, not recorded.
//! - Otherwise the verified [`Principal`] travels in the request extensions
//!   to the session and the pipeline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;

use super::Gateway;
use crate::audit::auth::{Accepted, Refusal, Surface};
use crate::identity::{AuthError, UNAUTHORIZED};

pub(super) const SESSION_HEADER: &str = "mcp-session-id";
const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Who owns a session: the principal (`tid`, `oid`) and, for Warden's own
/// tokens, the grant that opened it. A token of another grant of the same
/// user does not take the session over.
type Owner = (String, String, Option<String>);

fn owner_of(principal: &crate::identity::Principal) -> Owner {
    (
        principal.tid.clone(),
        principal.oid.clone(),
        principal.grant.clone(),
    )
}

/// Which principal (`tid`, `oid`) opened each live session.
pub struct Bindings {
    sessions: Arc<LocalSessionManager>,
    owners: Mutex<HashMap<String, Owner>>,
    /// Prune owners of ended sessions when the map grows beyond this.
    prune_above: usize,
}

impl Bindings {
    pub fn new(sessions: Arc<LocalSessionManager>, max_sessions: usize) -> Self {
        Self {
            sessions,
            owners: Mutex::new(HashMap::new()),
            prune_above: max_sessions.saturating_mul(2).max(16),
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owner(&self, session: &str) -> Option<Owner> {
        self.owners().get(session).cloned()
    }

    async fn bind(&self, session: String, owner: Owner) {
        let prune = {
            let mut owners = self.owners();
            owners.insert(session, owner);
            owners.len() > self.prune_above
        };
        if prune {
            let live = self.sessions.sessions.read().await;
            self.owners().retain(|id, _| live.contains_key(id.as_str()));
        }
    }

    fn unbind(&self, session: &str) {
        self.owners().remove(session);
    }
}

/// Where a client finds the protected-resource metadata and what the
/// resource is called: from `identity.resource` when configured, else from
/// the request's `Host`.
pub fn resource_urls(gateway: &Gateway, headers: &HeaderMap) -> (String, String) {
    let resource = match &gateway.config.identity.resource {
        Some(resource) => resource.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}/mcp")
        }
    };
    let (origin, path) = split_origin(&resource);
    (resource.clone(), format!("{origin}{METADATA_PATH}{path}"))
}

/// `https://h:1/a/b` → (`https://h:1`, `/a/b`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url.split_at(after_scheme + slash),
        None => (url, ""),
    }
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn metadata(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let (resource, _) = resource_urls(&gateway, &headers);
    axum::Json(gateway.identity.protected_resource_metadata(&resource)).into_response()
}

fn refusal(status: StatusCode, challenge: Option<String>, message: &str, reason: &str) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": UNAUTHORIZED, "message": message, "data": {"reason": reason}},
    });
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(challenge) = challenge.and_then(|c| c.parse().ok()) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The `/mcp` middleware.
pub async fn guard(
    State((gateway, bindings)): State<(Arc<Gateway>, Arc<Bindings>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let source_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    // The source address's rate limit comes first, so a flood costs a
    // lookup: 429, counted and logged (once a minute), no audit record.
    if let Some(ip) = source_ip
        && let Err(limited) = gateway.pipeline.limits().admit_address(ip)
    {
        return too_many_requests(request, &limited).await;
    }
    // An address (or network) a response blocked is refused for its
    // cool-down, before its token is looked at.
    if let Some(ip) = source_ip
        && let Some(block) = gateway.pipeline.responses().block_of(ip)
    {
        let response = blocked(&block);
        return after_draining(request, &gateway, response).await;
    }
    let authenticated = match crate::identity::authorization(request.headers()) {
        Ok(authorization) => {
            gateway
                .identity
                .authenticate(authorization, source_ip)
                .await
        }
        Err(error) => Err(error),
    };
    // Every attempt counts toward the `auth_failures` response rule; a
    // request without a token is a client discovering where to sign in.
    if let Some(ip) = source_ip
        && !matches!(authenticated, Err(AuthError::Missing(_)))
    {
        gateway
            .pipeline
            .responses()
            .auth_attempt(ip, authenticated.is_ok());
    }
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(error) => {
            let response = refuse(&gateway, request.headers(), &error, source_ip);
            // A request without a token is how a client discovers where to
            // sign in: counted, not recorded as a refused token.
            if !matches!(error, AuthError::Missing(_)) {
                let detail = error.to_string();
                let refusal = ("token_refused", error.reason(), None, detail.as_str());
                record_refusal(&gateway, request.headers(), source_ip, refusal).await;
            }
            return after_draining(request, &gateway, response).await;
        }
    };
    if let Some(step_up) = gateway.identity.take_step_up(&principal).await {
        let response = refuse(&gateway, request.headers(), &step_up, source_ip);
        return after_draining(request, &gateway, response).await;
    }
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &session
        && let Some(owner) = bindings.owner(session)
        && owner != owner_of(&principal)
    {
        gateway.metrics.session_binding_violations.inc();
        tracing::warn!(
            session = %session,
            owner_tid = %owner.0,
            owner_oid = %owner.1,
            tid = %principal.tid,
            oid = %principal.oid,
            source_ip = ?source_ip,
            "request on a session opened by another principal refused"
        );
        let response = refusal(
            StatusCode::FORBIDDEN,
            None,
            "this MCP session belongs to another principal; open your own session",
            "session_binding",
        );
        let detail = format!(
            "{} ({}) used a session opened by another principal",
            principal.display_name, principal.oid
        );
        let client = principal.client_app.as_deref();
        let refusal = (
            "session_refused",
            "session_binding",
            client,
            detail.as_str(),
        );
        record_refusal(&gateway, request.headers(), source_ip, refusal).await;
        return after_draining(request, &gateway, response).await;
    }
    let key = owner_of(&principal);
    let method = request.method().clone();
    let agent = user_agent(request.headers()).map(str::to_owned);
    let principal = Arc::new(principal);
    request.extensions_mut().insert(principal.clone());
    let response = next.run(request).await;
    match (&session, &method) {
        (None, &Method::POST) => {
            if let Some(opened) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                bindings.bind(opened.to_owned(), key).await;
                gateway
                    .pipeline
                    .audit()
                    .auth_accepted(Accepted {
                        event: "session_started",
                        surface: Surface::Mcp,
                        principal: &principal,
                        client: None,
                        user_agent: agent.as_deref(),
                        session: Some(opened),
                        extra: None,
                    })
                    .await;
            }
        }
        (Some(session), &Method::DELETE) if response.status().is_success() => {
            bindings.unbind(session);
        }
        _ => {}
    }
    response
}

/// `response` to a refused request, sent once the request's body has been
/// read (up to `server.max_body_bytes`). A server that answers before the
/// body has arrived must close the connection, and a client that already
/// put its next request (typically the retry with a fresh token) on that
/// connection sees it dropped. A body over the limit is not read; the
/// answer then says `Connection: close`.
async fn after_draining(request: Request, gateway: &Gateway, mut response: Response) -> Response {
    let limit = gateway.config.server.max_body_bytes;
    if axum::body::to_bytes(request.into_body(), limit)
        .await
        .is_err()
    {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// `403 Forbidden` to a request from a blocked network, with
/// `Retry-After` set to the rest of the cool-down.
fn blocked(block: &crate::response::state::Block) -> Response {
    let left = chrono::DateTime::parse_from_rfc3339(&block.until)
        .map(|until| (until.timestamp() - chrono::Utc::now().timestamp()).max(1))
        .unwrap_or(60);
    let message = format!(
        "requests from {} are blocked until {}: {} of {} authentication attempts from it failed",
        block.network, block.until, block.failures, block.attempts
    );
    let mut response = refusal(StatusCode::FORBIDDEN, None, &message, "blocked");
    if let Ok(value) = header::HeaderValue::from_str(&left.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `429 Too Many Requests` to a request over its address's rate limit. A
/// small body is read first, so the connection can carry the client's next
/// request; a larger one is not, and the connection closes.
async fn too_many_requests(request: Request, limited: &crate::limits::Limited) -> Response {
    let mut response = limited.http_response();
    if axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .is_err()
    {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Records a refusal at `/mcp` in the audit log (counted, aggregated):
/// `(event, reason, client, detail)`, with the request's token (hashed)
/// and user agent.
async fn record_refusal(
    gateway: &Gateway,
    headers: &HeaderMap,
    source_ip: Option<std::net::IpAddr>,
    (event, reason, client, detail): (&str, &str, Option<&str>, &str),
) {
    let refusal = Refusal {
        event,
        reason,
        source_ip,
        client,
        token: bearer(headers),
        detail: Some(detail),
        user_agent: user_agent(headers),
        extra: None,
    };
    gateway
        .pipeline
        .audit()
        .auth_refused(Surface::Mcp, refusal)
        .await;
}

/// The bearer token of the `Authorization` header, if there is one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT)?.to_str().ok()
}

fn refuse(
    gateway: &Gateway,
    headers: &HeaderMap,
    error: &AuthError,
    source_ip: Option<std::net::IpAddr>,
) -> Response {
    let reason = error.reason();
    gateway.metrics.auth_failure(reason);
    if matches!(error, AuthError::StepUpRequired(_)) {
        tracing::info!(source_ip = ?source_ip, "step-up: the client is asked to authorize again");
    } else {
        tracing::warn!(reason, source_ip = ?source_ip, error = %error, "authentication failed");
    }
    let (_, metadata_url) = resource_urls(gateway, headers);
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    // The header as sent (a duplicate or non-ASCII one counts as none).
    let authorization = crate::identity::authorization(headers).ok().flatten();
    let challenge = gateway
        .identity
        .challenge(error, authorization, &metadata_url);
    refusal(status, Some(challenge), &error.to_string(), reason)
}

#[cfg(test)]
mod tests {
    use super::split_origin;

    #[test]
    fn splits_origin_and_path() {
        assert_eq!(
            split_origin("https://w.example.com/mcp"),
            ("https://w.example.com", "/mcp")
        );
        assert_eq!(
            split_origin("http://127.0.0.1:8787"),
            ("http://127.0.0.1:8787", "")
        );
    }
}
