//! The admin API of policy change management (docs/POLICY-CHANGES.md):
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /admin/api/policy/proposals` | security managers, auditors | `{running: {hash, approval}, require_approval, proposals}` (newest first, without files and diffs) |
//! | `POST /admin/api/policy/proposals` `{"files", "tests", "note"}` | security managers (approver role + MFA) | validates, tests and diffs the set; 201 with the proposal, 422 with `problems` (file, line) when it does not load |
//! | `GET /admin/api/policy/proposals/{id}` | security managers, auditors | one proposal, with its files and diff |
//! | `POST /admin/api/policy/proposals/{id}/approve` `{"reason"}` | security managers, never the proposer | only a proposed set whose tests passed |
//! | `POST /admin/api/policy/proposals/{id}/reject` `{"reason"}` | security managers | a reason is required |
//! | `POST /admin/api/policy/proposals/{id}/apply` | security managers | writes the approved set into `policy.dir` and loads it; `{proposal, loaded}` |
//! | `POST /admin/api/policy/rollback` `{"reason"}` | security managers | restores and loads the set loaded before the running one |
//! | `POST /admin/api/policy/load` `{"reason"}` | the `BreakGlass` role + MFA | loads the set in `policy.dir` whatever its approval (break glass) |
//!
//! Roles are the token's and those `[policy.roles]` confers on its
//! groups. Errors are `{"error": {"code", "message", "problems"?}}` with
//! 400, 401, 403, 404, 409, 415, 422, 500 or 503.

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
use crate::pipeline::Pipeline;
use crate::policy::Summary;
use crate::policy_change::{ChangeError, Proposed};

#[derive(Clone)]
struct PolicyAdmin {
    identity: Arc<Authenticator>,
    pipeline: Pipeline,
}

/// The `/admin/api/policy/` routes.
pub fn router(identity: Arc<Authenticator>, pipeline: Pipeline) -> Router {
    Router::new()
        .route("/admin/api/policy/proposals", get(list).post(propose))
        .route("/admin/api/policy/proposals/{id}", get(show))
        .route("/admin/api/policy/proposals/{id}/{action}", post(act))
        .route("/admin/api/policy/rollback", post(rollback))
        .route("/admin/api/policy/load", post(load))
        .with_state(PolicyAdmin { identity, pipeline })
}

fn refused(e: &ChangeError) -> Response {
    let problems = e.problems();
    if problems.is_empty() {
        return super::refusal(e.status(), e.code(), &e.to_string());
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({ "error": {
            "code": e.code(),
            "message": e.to_string(),
            "problems": problems,
        }})),
    )
        .into_response()
}

/// The caller and the roles it holds for decisions.
async fn caller(
    admin: &PolicyAdmin,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(Principal, Vec<String>), Response> {
    let principal = authenticate(&admin.identity, headers, peer).await?;
    let roles = admin.pipeline.policy().entitlements(&principal).roles;
    Ok((principal, roles))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    #[serde(default)]
    reason: String,
}

/// What a load answers: the set that now runs.
fn loaded(summary: &Summary) -> serde_json::Value {
    json!({
        "hash": summary.hash,
        "files": summary.files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy()).collect::<Vec<_>>(),
        "policies": summary.policies.len(),
        "warnings": summary.warnings,
    })
}

async fn list(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (_, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = admin.pipeline.policy_changes();
    if let Err(e) = changes.check_reader(&roles) {
        return refused(&e);
    }
    let hash = admin.pipeline.policy().hash();
    let listed = async {
        let proposals = changes.list().await?;
        let approval = changes.approval_of(&hash).await?;
        Ok::<_, ChangeError>((proposals, approval))
    };
    match listed.await {
        Ok((proposals, approval)) => axum::Json(json!({
            "running": { "hash": hash, "approval": approval },
            "require_approval": changes.require_approval(),
            "proposals": proposals.iter().map(|p| p.summary()).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => refused(&e),
    }
}

async fn propose(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let (principal, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = admin.pipeline.policy_changes();
    if let Err(e) = changes.check_manager(&principal, &roles) {
        return refused(&e);
    }
    let proposed: Proposed = match body(&headers, &bytes) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let pipeline = &admin.pipeline;
    let operations = pipeline.catalog().operation_classes();
    match changes
        .propose(&principal, proposed, pipeline.policy(), operations)
        .await
    {
        Ok(proposal) => (StatusCode::CREATED, axum::Json(proposal)).into_response(),
        Err(e) => refused(&e),
    }
}

async fn show(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (_, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = admin.pipeline.policy_changes();
    if let Err(e) = changes.check_reader(&roles) {
        return refused(&e);
    }
    match changes.get(&id).await {
        Ok(proposal) => axum::Json(proposal).into_response(),
        Err(e) => refused(&e),
    }
}

async fn act(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    bytes: axum::body::Bytes,
) -> Response {
    let (principal, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let changes = admin.pipeline.policy_changes();
    if let Err(e) = changes.check_manager(&principal, &roles) {
        return refused(&e);
    }
    let Reason { reason } = match body(&headers, &bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let result = match action.as_str() {
        "approve" => changes
            .approve(&id, &principal, &reason)
            .await
            .map(|p| json!(p)),
        "reject" => changes
            .reject(&id, &principal, &reason)
            .await
            .map(|p| json!(p)),
        "apply" => admin
            .pipeline
            .apply_policy_proposal(&id, &principal)
            .await
            .map(|(proposal, summary)| json!({ "proposal": proposal, "loaded": loaded(&summary) })),
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no action {other:?}: approve, reject or apply"),
            );
        }
    };
    match result {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => refused(&e),
    }
}

async fn rollback(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let (principal, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = admin
        .pipeline
        .policy_changes()
        .check_manager(&principal, &roles)
    {
        return refused(&e);
    }
    let Reason { reason } = match body(&headers, &bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match admin.pipeline.rollback_policies(&principal, &reason).await {
        Ok(summary) => axum::Json(json!({ "loaded": loaded(&summary) })).into_response(),
        Err(e) => refused(&e),
    }
}

async fn load(
    State(admin): State<PolicyAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    let (principal, roles) = match caller(&admin, &headers, peer).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = admin
        .pipeline
        .policy_changes()
        .check_break_glass(&principal, &roles)
    {
        tracing::warn!(target: "warden::policy_change", tid = %principal.tid, oid = %principal.oid, principal = %principal.display_name, error = %e, "break-glass policy load refused");
        return refused(&e);
    }
    let Reason { reason } = match body(&headers, &bytes) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match admin
        .pipeline
        .break_glass_policies(&principal, &reason)
        .await
    {
        Ok(summary) => {
            axum::Json(json!({ "loaded": loaded(&summary), "break_glass": true })).into_response()
        }
        Err(e) => refused(&e),
    }
}
