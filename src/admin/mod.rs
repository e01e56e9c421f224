//! The admin HTTP API (JSON) for JIT approvals, on the gateway's listener
//! under `/admin/api/`:
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /admin/api/requests?status=&requester=&class=&scope=&sort=&offset=&limit=` | anyone signed in | reviewers and auditors see every request, others their own; `{requests, total, offset, limit}` |
//! | `GET /admin/api/requests/{id}` | the requester, reviewers, auditors | one request, with the decoded `facts` reviewers are shown |
//! | `POST /admin/api/requests/{id}/approve` `{"reason"}` | reviewers (approver role + MFA), never the requester | an approval |
//! | `POST /admin/api/requests/{id}/deny` `{"reason"}` | reviewers | ends the request |
//! | `POST /admin/api/requests/{id}/revoke` `{"reason"}` | reviewers | ends a grant (or a pending request) |
//! | `POST /admin/api/requests/{id}/cancel` `{"reason"}` | the requester, reviewers | withdraws a pending request |
//!
//! Policy change management (proposals, approval, apply, rollback, break
//! glass) is under `/admin/api/policy/` (`policy.rs`); automatic responses
//! (incidents, suspensions, blocks) under `/admin/api/incidents`,
//! `/suspensions` and `/blocks` (`responses.rs`).
//!
//! Every request carries `Authorization: Bearer <token>`, validated exactly
//! as on `/mcp`. The API never reads cookies, so a browser cannot be made to
//! call it with ambient credentials (CSRF-safe by construction); bodies must
//! be `application/json`. Errors are `{"error": {"code", "message"}}` with
//! 400, 401, 403, 404, 409 or 503.

mod campaign_page;
mod campaign_views;
mod campaigns;
mod evidence;
mod overview;
mod page;
mod policy;
mod response_page;
mod response_views;
mod responses;
mod sign_in;
mod views;

pub use campaigns::router as campaigns_router;
pub use page::{EntraSignIn, SignInOptions};
pub use policy::router as policy_router;
pub use responses::router as responses_router;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::approvals::{ApprovalError, Approvals, Filter};
use crate::identity::{Authenticator, Principal};

#[derive(Clone)]
struct Admin {
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
}

/// The `/admin/api` routes and the approvals page, whose sign-in uses
/// `sign_in` besides pasted tokens.
pub fn router(
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
    sign_in: SignInOptions,
) -> Router {
    Router::new()
        .route("/admin/api/requests", get(list))
        .route("/admin/api/requests/{id}", get(show))
        .route("/admin/api/requests/{id}/{action}", post(act))
        .merge(page::router(identity.clone(), approvals.clone(), sign_in))
        .with_state(Admin {
            identity,
            approvals,
        })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

/// A JSON body (an empty one is `{}`), or the refusal to answer.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, Box<Response>> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(Box::new(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid",
                "send the body as application/json",
            )));
        }
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("the body is not what this endpoint takes: {e}"),
        ))
    })
}

/// The JSON refusal of an error that names its HTTP status and code
/// (approvals, campaigns, policy changes).
pub(super) fn refusal(status: u16, code: &str, message: &str) -> Response {
    error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        code,
        message,
    )
}

fn refused(e: &ApprovalError) -> Response {
    refusal(e.status(), e.code(), &e.to_string())
}

/// The caller, from the bearer token.
async fn caller(
    admin: &Admin,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Principal, Response> {
    authenticate(&admin.identity, headers, peer).await
}

/// The principal of the bearer token of a request from `peer`, validated
/// as on `/mcp`; else the refusal to answer.
async fn authenticate(
    identity: &Authenticator,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Principal, Response> {
    let authenticated = match crate::identity::authorization(headers) {
        Ok(authorization) => identity.authenticate(authorization, Some(peer.ip())).await,
        Err(error) => Err(error),
    };
    authenticated.map_err(|e| {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        error(status, e.reason(), &e.to_string())
    })
}

async fn list(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    admin.approvals.refresh().await;
    let listing = admin.approvals.listing(&principal, &filter);
    axum::Json(json!({
        "requests": listing.requests,
        "total": listing.total,
        "offset": listing.offset,
        "limit": listing.limit,
    }))
    .into_response()
}

async fn show(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    admin.approvals.refresh().await;
    match admin.approvals.get(&principal, &id) {
        Ok(request) => {
            // The request as recorded, with the decoded facts reviewers
            // are shown (kept beside the log, not in it).
            let mut shown = serde_json::to_value(&request).unwrap_or_default();
            shown["facts"] = json!(admin.approvals.facts(&id).0);
            axum::Json(shown).into_response()
        }
        Err(e) => refused(&e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

async fn act(
    State(admin): State<Admin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid",
            "send the reason as application/json: {\"reason\": \"...\"}",
        );
    }
    let Reason { reason } = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("the body must be {{\"reason\": \"...\"}}: {e}"),
            );
        }
    };
    let approvals = &admin.approvals;
    let result = match action.as_str() {
        "approve" => approvals.review(&id, &principal, true, &reason).await,
        "deny" => approvals.review(&id, &principal, false, &reason).await,
        "revoke" => approvals.revoke(&id, &principal, &reason).await,
        "cancel" => approvals.cancel(&id, &principal, &reason).await,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no action {other:?}: approve, deny, revoke or cancel"),
            );
        }
    };
    match result {
        Ok(request) => axum::Json(request).into_response(),
        Err(e) => refused(&e),
    }
}
