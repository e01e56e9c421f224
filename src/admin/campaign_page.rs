//! The access review pages of the approvals page, with its sessions and
//! its rules for forms (see [`super::page`]: the `Origin` check, the
//! session's CSRF token, post/redirect/get):
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin/campaigns` | security managers, reviewers, auditors: every campaign |
//! | `GET /admin/campaigns/{id}` | one campaign: each item's evidence, decision and form; once closed, its proposal |
//! | `POST /admin/campaigns/{id}/items/{item}/decide` | form `decision` (`keep` or `remove`), `reason`, `override`, `csrf`: 303 back to the campaign with a notice, or with the error and the typed reason kept |
//! | `POST /admin/campaigns/{id}/close` | form `csrf`: security managers close a campaign whose items are all decided |
//!
//! What a viewer may do is the campaigns service's rules
//! ([`crate::review::campaigns::Campaigns`]); the pages only leave out
//! forms that cannot work.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;

use super::campaign_views::{self, Rights};
use super::page::{
    Page, Signed, bad_csrf, bad_origin, ended_notice, html_response, origin_ok, refusal,
    same_secret, see, sign_in_page, signed_in, signed_page, viewer,
};
use super::views::{self, Notes};
use crate::cookies::plain_loopback;
use crate::review::campaign::{Ask, CampaignError, Choice};

fn status_of(e: &CampaignError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The page saying there is no campaigns service.
fn no_service() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "Access review campaigns are not available on this Warden.",
    )
}

/// A signed-in page saying why the campaign pages cannot be shown.
fn failed_page(page: &Page, signed: &Signed, e: &CampaignError) -> Response {
    let viewer = viewer(page, signed);
    let notes = Notes {
        flash: None,
        error: Some(&e.to_string()),
    };
    let body = views::layout(
        "Access reviews",
        Some(&viewer),
        "campaigns",
        maud::html! {
            p { a href="/admin/campaigns" { "← All access reviews" } }
            (views::messages(&notes))
        },
    );
    html_response(status_of(e), body)
}

pub(super) async fn list(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    let Some(campaigns) = page.campaigns.as_deref() else {
        return no_service();
    };
    match campaigns.list(&signed.principal).await {
        Ok(list) => {
            let notes = Notes {
                flash: signed.flash.as_deref(),
                error: signed.error.as_deref(),
            };
            let body = campaign_views::list(&list, &notes, Utc::now());
            signed_page(&page, &signed, "Access reviews", "campaigns", body)
        }
        Err(e) => failed_page(&page, &signed, &e),
    }
}

pub(super) async fn show(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some(signed) = signed_in(&page, &headers, true).await else {
        let notice = ended_notice(&page, &headers);
        return sign_in_page(&page, &headers, peer.ip(), StatusCode::OK, None, notice);
    };
    let Some(campaigns) = page.campaigns.as_deref() else {
        return no_service();
    };
    let campaign = match campaigns.get(&signed.principal, &id).await {
        Ok(c) => c,
        Err(e) => return failed_page(&page, &signed, &e),
    };
    let rights = Rights {
        decide: campaigns
            .check_reviewer(&signed.principal)
            .map_err(|e| e.to_string()),
        close: campaigns.check_manager(&signed.principal).is_ok(),
    };
    // A draft is kept as (`<campaign>/<item>`, text).
    let draft = signed.draft.as_ref().and_then(|(key, text)| {
        key.strip_prefix(&format!("{id}/"))
            .map(|item| (item, text.as_str()))
    });
    let notes = Notes {
        flash: signed.flash.as_deref(),
        error: signed.error.as_deref(),
    };
    let viewer = viewer(&page, &signed);
    let body = campaign_views::detail(&viewer, &rights, &campaign, draft, &notes, Utc::now());
    let title = format!("Access review {id}");
    signed_page(&page, &signed, &title, "campaigns", body)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DecideForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default, rename = "override")]
    overrides: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// The session of a form post whose origin and CSRF token are this
/// page's, else the refusal (the response forms' too).
pub(super) async fn form_session(
    page: &Page,
    peer: SocketAddr,
    headers: &HeaderMap,
    uri: &Uri,
    csrf: Option<&str>,
) -> Result<Signed, Response> {
    let plain = plain_loopback(headers, peer.ip());
    if !origin_ok(headers, uri, plain) {
        return Err(bad_origin());
    }
    let Some(signed) = signed_in(page, headers, false).await else {
        return Err(sign_in_page(
            page,
            headers,
            peer.ip(),
            StatusCode::UNAUTHORIZED,
            Some(
                "Your session has ended (or you were not signed in): sign in again. Nothing was changed.",
            ),
            None,
        ));
    };
    let Some(csrf) = csrf else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "The form must be sent as application/x-www-form-urlencoded.",
        ));
    };
    if !same_secret(csrf, &signed.csrf) {
        return Err(bad_csrf());
    }
    Ok(signed)
}

pub(super) async fn decide(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path((id, item)): Path<(String, String)>,
    form: Result<Form<DecideForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let csrf = form.as_ref().map(|f| f.csrf.as_str());
    let signed = match form_session(&page, peer, &headers, &uri, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form = form.unwrap_or_default();
    let Some(campaigns) = page.campaigns.as_deref() else {
        return no_service();
    };
    let back = format!("/admin/campaigns/{id}#item-{item}");
    let reason = form.reason.trim();
    let result = match Choice::parse(&form.decision) {
        Some(decision) => {
            let ask = Ask {
                item: &item,
                decision,
                reason,
                overrides: form.overrides.as_deref() == Some("true"),
            };
            campaigns.decide(&signed.principal, &id, ask).await
        }
        None => Err(CampaignError::Invalid("choose Keep or Remove".to_owned())),
    };
    match result {
        Ok(campaign) => {
            let decided = campaign
                .item(&item)
                .and_then(|i| i.decision.as_ref().map(|d| (i, d)));
            if let Some((i, d)) = decided {
                page.sessions.flash(
                    &signed.id,
                    format!(
                        "Item #{}: {} {} {} is recorded.",
                        i.id,
                        d.decision.as_str(),
                        i.principal.name,
                        i.role
                    ),
                );
            }
            see(&back)
        }
        Err(e) => {
            let draft = (!reason.is_empty()).then(|| (format!("{id}/{item}"), reason.to_owned()));
            page.sessions.failed(
                &signed.id,
                format!("Could not decide item #{item}: {e}."),
                draft,
            );
            match e {
                CampaignError::NotFound(_) | CampaignError::Forbidden(_)
                    if campaigns.get(&signed.principal, &id).await.is_err() =>
                {
                    see("/admin/campaigns")
                }
                _ => see(&back),
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CloseForm {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn close(
    State(page): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<CloseForm>, FormRejection>,
) -> Response {
    let form = form.ok().map(|Form(f)| f);
    let csrf = form.as_ref().map(|f| f.csrf.as_str());
    let signed = match form_session(&page, peer, &headers, &uri, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(campaigns) = page.campaigns.as_deref() else {
        return no_service();
    };
    match campaigns.close(&signed.principal, &id).await {
        Ok(campaign) => {
            let ok = campaign
                .closed
                .as_ref()
                .is_some_and(|c| c.proposal.removals.is_empty() || c.proposal.ok());
            page.sessions.flash(
                &signed.id,
                if ok {
                    format!("Campaign {id} is closed; its proposal is below.")
                } else {
                    format!("Campaign {id} is closed, but its proposal needs attention (below).")
                },
            );
        }
        Err(e) => {
            page.sessions.failed(
                &signed.id,
                format!("Could not close campaign {id}: {e}."),
                None,
            );
        }
    }
    see(&format!("/admin/campaigns/{id}"))
}
