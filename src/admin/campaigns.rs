//! The admin API of access review campaigns (docs/CAMPAIGNS.md):
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `POST /admin/api/campaigns` `{"roles", "groups", "principals", "deadline", "auto_remove_undecided", "days", "title"}` | security managers (`[review] manager_roles` + MFA) | starts a campaign: 201 with it and its items |
//! | `GET /admin/api/campaigns` | managers, reviewers, auditors | `{campaigns}`, newest first (summaries) |
//! | `GET /admin/api/campaigns/{id}` | managers, reviewers, auditors | one campaign with its items, decisions and, once closed, its proposal |
//! | `POST /admin/api/campaigns/{id}/items/{item}/decide` `{"decision": "keep"\|"remove", "reason", "override"}` | reviewers (`[approvals] approver_roles` + MFA), never about themselves | the campaign after the decision |
//! | `POST /admin/api/campaigns/{id}/close` | security managers | closes a campaign whose items are all decided (or whose deadline passed): the campaign with its proposal |
//! | `GET /admin/api/campaigns/{id}/proposal` | managers, reviewers, auditors | the proposal of a closed campaign: its files, diff and test results |
//!
//! A read after a campaign's deadline applies the deadline first. Bearer
//! tokens as on the rest of `/admin/api/` (no cookies); bodies are
//! `application/json`. Errors are `{"error": {"code", "message"}}` with
//! 400, 401, 403, 404, 409, 415 or 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{authenticate, error, json_body as body};
use crate::identity::{Authenticator, Principal};
use crate::review::campaign::{Ask, CampaignError, Choice};
use crate::review::campaigns::{Campaigns, StartAsk};

#[derive(Clone)]
struct CampaignsAdmin {
    identity: Arc<Authenticator>,
    campaigns: Arc<Campaigns>,
}

/// The `/admin/api/campaigns` routes.
pub fn router(identity: Arc<Authenticator>, campaigns: Arc<Campaigns>) -> Router {
    Router::new()
        .route("/admin/api/campaigns", get(list).post(start))
        .route("/admin/api/campaigns/{id}", get(show))
        .route("/admin/api/campaigns/{id}/proposal", get(proposal))
        .route("/admin/api/campaigns/{id}/close", post(close))
        .route(
            "/admin/api/campaigns/{id}/items/{item}/decide",
            post(decide),
        )
        .with_state(CampaignsAdmin {
            identity,
            campaigns,
        })
}

fn refused(e: &CampaignError) -> Response {
    super::refusal(e.status(), e.code(), &e.to_string())
}

async fn caller(
    admin: &CampaignsAdmin,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Principal, Response> {
    authenticate(&admin.identity, headers, peer).await
}

async fn start(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    // The role and MFA first: a body is read only from those who may start.
    if let Err(e) = admin.campaigns.check_manager(&principal) {
        return refused(&e);
    }
    let ask: StartAsk = match body(&headers, &bytes) {
        Ok(ask) => ask,
        Err(r) => return *r,
    };
    match admin.campaigns.start(&principal, ask).await {
        Ok(campaign) => (StatusCode::CREATED, axum::Json(campaign)).into_response(),
        Err(e) => refused(&e),
    }
}

async fn list(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match admin.campaigns.list(&principal).await {
        Ok(campaigns) => axum::Json(json!({ "campaigns": campaigns })).into_response(),
        Err(e) => refused(&e),
    }
}

async fn show(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match admin.campaigns.get(&principal, &id).await {
        Ok(campaign) => axum::Json(campaign).into_response(),
        Err(e) => refused(&e),
    }
}

async fn proposal(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match admin.campaigns.proposal(&principal, &id).await {
        Ok(proposal) => axum::Json(json!({
            "campaign_id": id,
            "ok": proposal.ok(),
            "proposal": proposal,
        }))
        .into_response(),
        Err(e) => refused(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    decision: String,
    #[serde(default)]
    reason: String,
    /// Replaces another reviewer's decision.
    #[serde(default, rename = "override")]
    overrides: bool,
}

async fn decide(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, item)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let asked: Decision = match body(&headers, &bytes) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let Some(decision) = Choice::parse(&asked.decision) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "decision: \"keep\" or \"remove\"",
        );
    };
    let ask = Ask {
        item: &item,
        decision,
        reason: &asked.reason,
        overrides: asked.overrides,
    };
    match admin.campaigns.decide(&principal, &id, ask).await {
        Ok(campaign) => axum::Json(campaign).into_response(),
        Err(e) => refused(&e),
    }
}

async fn close(
    State(admin): State<CampaignsAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let principal = match caller(&admin, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match admin.campaigns.close(&principal, &id).await {
        Ok(campaign) => axum::Json(campaign).into_response(),
        Err(e) => refused(&e),
    }
}
