//! Automatic responses on the approvals page, with its sessions and its
//! rules for forms (see [`super::page`]: the `Origin` check, the session's
//! CSRF token, post/redirect/get). `/admin/` lists, below the requests,
//! the incidents, suspended principals and blocked networks to security
//! managers and auditors ([`below`]; markup in [`super::response_views`]).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /approvals` | 303 to `/admin/` (the webhooks' links, `/approvals#INC-…`, keep their anchor) |
//! | `POST /admin/incidents/{id}/acknowledge\|close` | form `note`, `csrf`: 303 back to the incident with a notice, or with the error and the typed note kept |
//! | `POST /admin/suspensions/lift` | form `principal` (`tid/oid`), `reason`, `csrf`: 303 to `#suspensions` |
//! | `POST /admin/blocks/unblock` | form `network`, `reason`, `csrf`: 303 to `#blocks` |
//!
//! Reading is for security managers (`[approvals] approver_roles`) and
//! auditors; acting for security managers signed in with MFA
//! ([`super::responses::may_act`], as on the API).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::campaign_page::form_session;
use super::page::{Page, Signed, refusal, see};
use super::response_views::{self, Rights, Shown};
use super::responses::{act_of, check_note, check_principal, may_act, may_read};
use super::views::Viewer;
use crate::response::Responses;
use crate::response::service::ResponseError;
use crate::response::state::IncidentStatus;

/// Closed incidents listed after the open and acknowledged ones.
const CLOSED_SHOWN: usize = 10;

/// `/approvals`: on to the page, whose anchor the browser keeps.
pub(super) async fn approvals() -> Redirect {
    Redirect::to("/admin/")
}

/// `body` with the responses' sections below it, for a viewer who may
/// read them (else `body` alone).
pub(super) async fn below(
    page: &Page,
    signed: &Signed,
    viewer: &Viewer<'_>,
    body: Markup,
) -> Markup {
    let Some(responses) = page.responses.as_deref() else {
        return body;
    };
    if may_read(&page.approvals, &signed.principal).is_err() {
        return body;
    }
    let shown = load(responses).await;
    let rights = Rights {
        act: may_act(&page.approvals, &signed.principal),
        csrf: viewer.csrf,
        draft: signed
            .draft
            .as_ref()
            .map(|(key, text)| (key.as_str(), text.as_str())),
    };
    html! {
        (body)
        (response_views::sections(&shown, &rights, Utc::now()))
    }
}

/// The incidents (open, acknowledged, then the last closed), suspensions
/// and blocks in force.
async fn load(responses: &Responses) -> Result<Shown, String> {
    let all = responses.incidents(None).await.map_err(|e| e.to_string())?;
    let of = |status: IncidentStatus| all.iter().filter(move |i| i.status == status).cloned();
    let mut incidents: Vec<_> = of(IncidentStatus::Open)
        .chain(of(IncidentStatus::Acknowledged))
        .collect();
    let closed: Vec<_> = of(IncidentStatus::Closed).collect();
    let closed_hidden = closed.len().saturating_sub(CLOSED_SHOWN);
    incidents.extend(closed.into_iter().take(CLOSED_SHOWN));
    Ok(Shown {
        incidents,
        closed_hidden,
        suspensions: responses.suspensions().await.map_err(|e| e.to_string())?,
        blocks: responses.blocks().await.map_err(|e| e.to_string())?,
    })
}

/// The page saying there is no responses service.
fn no_service() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "Automatic responses are not available on this Warden.",
    )
}

/// The first steps of every form: its session (the `Origin` check and
/// the CSRF token `csrf` reads from the form), the form (empty fields if
/// it did not parse), and the responses service.
async fn opened<'p, F: Default>(
    page: &'p Page,
    peer: SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
    form: Result<Form<F>, FormRejection>,
    csrf: fn(&F) -> &str,
) -> Result<(Signed, F, &'p Responses), Response> {
    let form = form.ok().map(|Form(f)| f);
    let signed = form_session(page, peer, headers, uri, form.as_ref().map(csrf)).await?;
    let responses = page.responses.as_deref().ok_or_else(no_service)?;
    Ok((signed, form.unwrap_or_default(), responses))
}

/// Carries out one form's action for `signed` and goes back to `back`
/// with a notice, or with the error and the typed text kept (`draft`).
fn finish(
    page: &Page,
    signed: &Signed,
    back: &str,
    failing: String,
    draft: (String, &str),
    result: Result<String, ResponseError>,
) -> Response {
    match result {
        Ok(notice) => page.sessions.flash(&signed.id, notice),
        Err(e) => {
            let (key, text) = draft;
            let draft = (!text.is_empty()).then(|| (key, text.to_owned()));
            page.sessions
                .failed(&signed.id, format!("{failing}: {e}."), draft);
        }
    }
    see(back)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NoteForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn incident(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<NoteForm>, FormRejection>,
) -> Response {
    let (signed, form, responses) =
        match opened(&page, peer, &headers, &uri, form, |f: &NoteForm| {
            f.csrf.as_str()
        })
        .await
        {
            Ok(opened) => opened,
            Err(r) => return r,
        };
    let (to, done) = match action.as_str() {
        "acknowledge" => (IncidentStatus::Acknowledged, "acknowledged"),
        "close" => (IncidentStatus::Closed, "closed"),
        _ => {
            return refusal(
                StatusCode::NOT_FOUND,
                "No such action: acknowledge or close.",
            );
        }
    };
    let note = form.note.trim();
    let result = async {
        may_act(&page.approvals, &signed.principal).map_err(ResponseError::Invalid)?;
        check_note("note", note)?;
        responses
            .update_incident(&id, to, act_of(&signed.principal, note))
            .await?;
        Ok(format!("Incident {id} is {done}."))
    }
    .await;
    let draft = (response_views::incident_key(&id, &action), note);
    let failing = format!("Could not {action} incident {id}");
    finish(
        &page,
        &signed,
        &format!("/admin/#{id}"),
        failing,
        draft,
        result,
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct LiftForm {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn lift(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<LiftForm>, FormRejection>,
) -> Response {
    let (signed, form, responses) =
        match opened(&page, peer, &headers, &uri, form, |f: &LiftForm| {
            f.csrf.as_str()
        })
        .await
        {
            Ok(opened) => opened,
            Err(r) => return r,
        };
    let key = form.principal.trim();
    let reason = form.reason.trim();
    let result = async {
        may_act(&page.approvals, &signed.principal).map_err(ResponseError::Invalid)?;
        check_principal(key)?;
        check_note("reason", reason)?;
        let lifted = responses
            .lift(key, act_of(&signed.principal, reason))
            .await?;
        Ok(format!(
            "The suspension of {} is lifted: their calls run again.",
            lifted.name
        ))
    }
    .await;
    let draft = (response_views::lift_key(key), reason);
    let failing = format!("Could not lift the suspension of {key}");
    finish(
        &page,
        &signed,
        "/admin/#suspensions",
        failing,
        draft,
        result,
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct UnblockForm {
    #[serde(default)]
    network: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn unblock(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<UnblockForm>, FormRejection>,
) -> Response {
    let (signed, form, responses) =
        match opened(&page, peer, &headers, &uri, form, |f: &UnblockForm| {
            f.csrf.as_str()
        })
        .await
        {
            Ok(opened) => opened,
            Err(r) => return r,
        };
    let network = form.network.trim();
    let reason = form.reason.trim();
    let result = async {
        may_act(&page.approvals, &signed.principal).map_err(ResponseError::Invalid)?;
        check_note("reason", reason)?;
        let ended = responses
            .unblock(network, act_of(&signed.principal, reason))
            .await?;
        Ok(format!("The block of {} is ended.", ended.network))
    }
    .await;
    let draft = (response_views::unblock_key(network), reason);
    let failing = format!("Could not end the block of {network}");
    finish(&page, &signed, "/admin/#blocks", failing, draft, result)
}
