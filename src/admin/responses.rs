//! The admin API of automatic responses (docs/RESPONSES.md): the incidents
//! Warden opened, the principals it suspended and the networks it blocked,
//! and what a security manager does about them.
//!
//! | method and path | who | what |
//! |---|---|---|
//! | `GET /admin/api/incidents[?status=open\|acknowledged\|closed]` | security managers (`[approvals] approver_roles`), auditors (`auditor_roles`) | `{incidents}`, newest first |
//! | `GET /admin/api/incidents/{id}` | the same | one incident: its triggering calls with their record numbers, findings and the actions taken |
//! | `POST /admin/api/incidents/{id}/acknowledge` `{"note"}` | security managers with MFA | the incident, acknowledged |
//! | `POST /admin/api/incidents/{id}/close` `{"note"}` | security managers with MFA | the incident, closed |
//! | `GET /admin/api/suspensions` | managers, auditors | `{suspensions}` in force, newest first |
//! | `POST /admin/api/suspensions/lift` `{"principal": "tid/oid", "reason"}` | security managers with MFA | the suspension, lifted: the principal's next call runs |
//! | `GET /admin/api/blocks` | managers, auditors | `{blocks}` in force, newest first |
//! | `POST /admin/api/blocks/unblock` `{"network": "192.0.2.7/32", "reason"}` | security managers with MFA | the block, ended |
//!
//! Every change is a `response` (lift, unblock) or `incident`
//! (acknowledged, closed) audit record naming who did it (`tid/oid` and
//! display name) and why. Bearer tokens as on the rest of `/admin/api/`
//! (no cookies); bodies are `application/json`. Errors are
//! `{"error": {"code", "message"}}`: 400 (no note or reason, a malformed
//! network or principal), 401, 403, 404, 409 (already closed, not
//! suspended, changed meanwhile), 415, 503 (the store).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{authenticate, json_body as body, refusal};
use crate::approvals::Approvals;
use crate::identity::{Authenticator, Principal};
use crate::response::Responses;
use crate::response::service::ResponseError;
use crate::response::state::{Act, IncidentStatus};

/// The longest note or reason taken (the page's limit too).
pub(super) const MAX_NOTE: usize = 4096;

#[derive(Clone)]
struct ResponsesAdmin {
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
    responses: Arc<Responses>,
}

/// The `/admin/api/incidents`, `/suspensions` and `/blocks` routes. Who is
/// a security manager or an auditor is `[approvals]`'s roles.
pub fn router(
    identity: Arc<Authenticator>,
    approvals: Arc<Approvals>,
    responses: Arc<Responses>,
) -> Router {
    Router::new()
        .route("/admin/api/incidents", get(incidents))
        .route("/admin/api/incidents/{id}", get(incident))
        .route("/admin/api/incidents/{id}/acknowledge", post(acknowledge))
        .route("/admin/api/incidents/{id}/close", post(close))
        .route("/admin/api/suspensions", get(suspensions))
        .route("/admin/api/suspensions/lift", post(lift))
        .route("/admin/api/blocks", get(blocks))
        .route("/admin/api/blocks/unblock", post(unblock))
        .with_state(ResponsesAdmin {
            identity,
            approvals,
            responses,
        })
}

// ------------------------------------------------------------ shared rules

/// Whether `principal` may read incidents, suspensions and blocks: a
/// security manager or an auditor; else why not.
pub(super) fn may_read(approvals: &Approvals, principal: &Principal) -> Result<(), String> {
    if approvals.is_reviewer(principal) || approvals.is_auditor(principal) {
        return Ok(());
    }
    let config = approvals.config();
    Err(format!(
        "incidents, suspensions and blocks are for security managers (app role {}) and auditors (app role {})",
        config.approver_roles.join(" or "),
        config.auditor_roles.join(" or ")
    ))
}

/// Whether `principal` may acknowledge and close incidents, lift
/// suspensions and end blocks: an approver role and a multi-factor
/// sign-in; else why not.
pub(super) fn may_act(approvals: &Approvals, principal: &Principal) -> Result<(), String> {
    if !approvals.is_reviewer(principal) {
        return Err(format!(
            "acting on automatic responses needs the app role {}",
            approvals.config().approver_roles.join(" or ")
        ));
    }
    if !principal.mfa {
        return Err("acting on automatic responses needs a multi-factor sign-in".into());
    }
    Ok(())
}

/// What `principal` did, now, and why.
pub(super) fn act_of(principal: &Principal, note: &str) -> Act {
    Act {
        by: format!("{}/{}", principal.tid, principal.oid),
        name: principal.display_name.clone(),
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        note: note.trim().to_owned(),
    }
}

/// A note or reason longer than [`MAX_NOTE`] is refused.
pub(super) fn check_note(what: &str, note: &str) -> Result<(), ResponseError> {
    if note.len() > MAX_NOTE {
        return Err(ResponseError::Invalid(format!(
            "the {what} is too long (at most {MAX_NOTE} bytes)"
        )));
    }
    Ok(())
}

/// `tid/oid`, each part non-empty.
pub(super) fn check_principal(key: &str) -> Result<(), ResponseError> {
    match key.split_once('/') {
        Some((tid, oid)) if !tid.is_empty() && !oid.is_empty() && !oid.contains('/') => Ok(()),
        _ => Err(ResponseError::Invalid(format!(
            "principal: {key:?} is not tid/oid (the tenant and object id of the suspended principal)"
        ))),
    }
}

/// The HTTP status and error code of a refusal.
pub(super) fn status_of(e: &ResponseError) -> (u16, &'static str) {
    match e {
        ResponseError::NotFound(_) => (404, "not_found"),
        ResponseError::State(_) => (409, "conflict"),
        ResponseError::Invalid(_) => (400, "invalid"),
        ResponseError::Audit(_) | ResponseError::Store(_) => (503, "unavailable"),
    }
}

fn refused(e: &ResponseError) -> Response {
    let (status, code) = status_of(e);
    refusal(status, code, &e.to_string())
}

fn forbidden(why: &str) -> Response {
    refusal(403, "forbidden", why)
}

/// Answers a read: the caller must be a security manager or an auditor;
/// `read` gives what is answered as JSON.
async fn answer_read<T: Serialize>(
    admin: &ResponsesAdmin,
    headers: &HeaderMap,
    peer: SocketAddr,
    read: impl AsyncFnOnce(&Responses) -> Result<T, ResponseError>,
) -> Response {
    let principal = match authenticate(&admin.identity, headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(why) = may_read(&admin.approvals, &principal) {
        return forbidden(&why);
    }
    match read(&admin.responses).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => refused(&e),
    }
}

/// Answers a change: the caller must be a security manager with MFA
/// (checked before the body is read); then its JSON body `B` is read and
/// `change` makes the change, whose result is answered as JSON.
async fn answer_change<B: DeserializeOwned, T: Serialize>(
    admin: &ResponsesAdmin,
    headers: &HeaderMap,
    peer: SocketAddr,
    bytes: &[u8],
    change: impl AsyncFnOnce(&Responses, &Principal, B) -> Result<T, ResponseError>,
) -> Response {
    let principal = match authenticate(&admin.identity, headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(why) = may_act(&admin.approvals, &principal) {
        return forbidden(&why);
    }
    let asked: B = match body(headers, bytes) {
        Ok(asked) => asked,
        Err(r) => return *r,
    };
    match change(&admin.responses, &principal, asked).await {
        Ok(done) => axum::Json(done).into_response(),
        Err(e) => refused(&e),
    }
}

// ------------------------------------------------------------ incidents

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentFilter {
    status: Option<String>,
}

/// `open`, `acknowledged`, `closed`; empty: any.
pub(super) fn parse_status(text: &str) -> Result<Option<IncidentStatus>, ResponseError> {
    match text.trim() {
        "" => Ok(None),
        "open" => Ok(Some(IncidentStatus::Open)),
        "acknowledged" => Ok(Some(IncidentStatus::Acknowledged)),
        "closed" => Ok(Some(IncidentStatus::Closed)),
        other => Err(ResponseError::Invalid(format!(
            "status: {other:?} is not open, acknowledged or closed"
        ))),
    }
}

async fn incidents(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    filter: Result<Query<IncidentFilter>, QueryRejection>,
) -> Response {
    answer_read(&admin, &headers, peer, async |responses| {
        let Ok(Query(filter)) = filter else {
            return Err(ResponseError::Invalid(
                "the query takes only status=open|acknowledged|closed".into(),
            ));
        };
        let status = parse_status(filter.status.as_deref().unwrap_or(""))?;
        Ok(json!({ "incidents": responses.incidents(status).await? }))
    })
    .await
}

async fn incident(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer_read(&admin, &headers, peer, async |responses| {
        responses.incident(&id).await
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    #[serde(default)]
    note: String,
}

async fn update(
    admin: ResponsesAdmin,
    peer: SocketAddr,
    headers: HeaderMap,
    id: String,
    to: IncidentStatus,
    bytes: axum::body::Bytes,
) -> Response {
    answer_change(
        &admin,
        &headers,
        peer,
        &bytes,
        async |responses, principal, Note { note }| {
            check_note("note", &note)?;
            responses
                .update_incident(&id, to, act_of(principal, &note))
                .await
        },
    )
    .await
}

async fn acknowledge(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    update(
        admin,
        peer,
        headers,
        id,
        IncidentStatus::Acknowledged,
        bytes,
    )
    .await
}

async fn close(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Response {
    update(admin, peer, headers, id, IncidentStatus::Closed, bytes).await
}

// ------------------------------------------------------------ suspensions

async fn suspensions(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    answer_read(&admin, &headers, peer, async |responses| {
        Ok(json!({ "suspensions": responses.suspensions().await? }))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lift {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    reason: String,
}

async fn lift(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    answer_change(
        &admin,
        &headers,
        peer,
        &bytes,
        async |responses, principal, asked: Lift| {
            let key = asked.principal.trim();
            check_principal(key)?;
            check_note("reason", &asked.reason)?;
            responses.lift(key, act_of(principal, &asked.reason)).await
        },
    )
    .await
}

// ------------------------------------------------------------ blocks

async fn blocks(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    answer_read(&admin, &headers, peer, async |responses| {
        Ok(json!({ "blocks": responses.blocks().await? }))
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unblock {
    #[serde(default)]
    network: String,
    #[serde(default)]
    reason: String,
}

async fn unblock(
    State(admin): State<ResponsesAdmin>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Response {
    answer_change(
        &admin,
        &headers,
        peer,
        &bytes,
        async |responses, principal, asked: Unblock| {
            check_note("reason", &asked.reason)?;
            responses
                .unblock(asked.network.trim(), act_of(principal, &asked.reason))
                .await
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn principals_are_tid_slash_oid() {
        assert!(check_principal("t-1/o-1").is_ok());
        for bad in ["", "o-1", "/o-1", "t-1/", "t/o/x"] {
            let e = check_principal(bad).unwrap_err();
            assert_eq!(status_of(&e), (400, "invalid"), "{bad}");
            assert!(e.to_string().contains("tid/oid"), "{e}");
        }
    }

    #[test]
    fn statuses_parse_and_errors_name_their_status() {
        assert_eq!(parse_status("").unwrap(), None);
        assert_eq!(
            parse_status("acknowledged").unwrap(),
            Some(IncidentStatus::Acknowledged)
        );
        assert!(
            parse_status("pending")
                .unwrap_err()
                .to_string()
                .contains("open, acknowledged or closed")
        );
        assert_eq!(
            status_of(&ResponseError::NotFound("x".into())),
            (404, "not_found")
        );
        assert_eq!(
            status_of(&ResponseError::State("x".into())),
            (409, "conflict")
        );
        assert_eq!(
            status_of(&ResponseError::Store(StoreError::Read("x".into()))),
            (503, "unavailable")
        );
        assert!(check_note("note", &"x".repeat(MAX_NOTE)).is_ok());
        assert!(check_note("note", &"x".repeat(MAX_NOTE + 1)).is_err());
    }
}
