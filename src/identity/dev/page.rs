//! The dev issuer's HTML: the persona picker (its sign-in page) and the
//! error page shown when an authorization request cannot be answered on
//! the client's redirect URI. Server-rendered with maud (every value
//! escaped), no script, and headers that keep it out of frames and caches.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::DevUser;
use super::entra_error::EntraError;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;\
padding:0 1rem;color:#1b1b1b}h1{font-size:1.4rem}.muted{color:#555}\
ul{list-style:none;padding:0}li{margin:.5rem 0}button{width:100%;text-align:left;\
padding:.6rem .8rem;border:1px solid #888;border-radius:.4rem;background:#fff;cursor:pointer;\
font:inherit}button:hover{background:#eef}button:disabled{cursor:not-allowed;color:#777;\
background:#f3f3f3}code{overflow-wrap:anywhere}.error{border-left:.3rem solid #b00;\
padding-left:1rem}";

/// What the persona picker shows and posts.
pub(super) struct Picker<'a> {
    /// The form's target, `/{tenant}/login`.
    pub(super) action: &'a str,
    pub(super) flow: &'a str,
    pub(super) csrf: &'a str,
    pub(super) client_name: &'a str,
    pub(super) client_id: &'a str,
    pub(super) redirect_uri: &'a url::Url,
    pub(super) scopes: &'a str,
    /// The user `login_hint` named, shown first and marked.
    pub(super) hint: Option<&'a str>,
    pub(super) users: &'a [DevUser],
}

/// The persona picker: one button per user (disabled users are listed,
/// not selectable); the chosen user's name is posted with the flow id and
/// the CSRF token.
pub(super) fn picker(picker: &Picker<'_>) -> Markup {
    let mut users: Vec<&DevUser> = picker.users.iter().collect();
    if let Some(hint) = picker.hint {
        users.sort_by_key(|u| u.name != hint);
    }
    let redirect_host = picker.redirect_uri.host_str().unwrap_or_default();
    page(
        "Pick an account",
        html! {
            h1 { "Sign in to the Warden dev tenant" }
            p {
                strong { (picker.client_name) } " "
                span.muted { "(" code { (picker.client_id) } ")" }
                " asks you to sign in. You will be sent back to "
                strong { (redirect_host) } " ("
                code { (picker.redirect_uri.as_str()) } ")."
            }
            p.muted { "Requested: " code { (picker.scopes) } }
            @if users.is_empty() {
                p.error { "The dev tenant has no users. Add some with DevIssuer::add_user." }
            } @else {
                form method="post" action=(picker.action) {
                    input type="hidden" name="flow" value=(picker.flow);
                    input type="hidden" name="csrf" value=(picker.csrf);
                    ul {
                        @for user in users {
                            li {
                                button type="submit" name="persona" value=(user.name)
                                    disabled[user.disabled]
                                    autofocus[picker.hint == Some(user.name.as_str())] {
                                    strong { (user.name) } " · " (user.user)
                                    br;
                                    span.muted {
                                        @if user.roles.is_empty() { "no app roles" }
                                        @else { "roles: " (user.roles.join(", ")) }
                                        @if !user.groups.is_empty() {
                                            " · groups: " (user.groups.join(", "))
                                        }
                                        @if user.mfa { " · signs in with MFA" }
                                        @if user.disabled { " · account disabled" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Local dev issuer: no password is asked; anyone who can reach this page can sign in as any persona." }
        },
    )
}

/// An error that cannot go to the client (unknown client, redirect URI not
/// registered, a user who cannot sign in): the AADSTS code and message.
pub(super) fn error(error: &EntraError) -> Markup {
    page(
        "Sign-in error",
        html! {
            h1 { "Sorry, but we're having trouble signing you in." }
            div.error {
                p { code { (error.error) } }
                p { (error.description()) }
            }
            p.muted { "Warden dev issuer" }
        },
    )
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden dev issuer" }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// A page response: `status`, the markup, and the headers every page of
/// the issuer carries. `form_redirects` is true for a page whose form is
/// answered by a redirect to the client: its CSP then has no `form-action`,
/// because a browser checks `form-action` on every redirect of the form's
/// navigation, and the client's redirect URI (Warden's callback) redirects
/// on to wherever its own client asked (any origin, or a custom scheme),
/// which the issuer cannot know. Other pages get `form-action 'self'`.
pub(super) fn respond(status: StatusCode, markup: Markup, form_redirects: bool) -> Response {
    let form_action = if form_redirects {
        ""
    } else {
        "form-action 'self'; "
    };
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; {form_action}\
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut headers = HeaderMap::new();
    let mut set = |name, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(header::CONTENT_SECURITY_POLICY, &csp);
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::CACHE_CONTROL, "no-store");
    set(header::PRAGMA, "no-cache");
    // `same-origin`: the picker's own post carries its real `Origin` (it is
    // checked); other sites get no `Referer`.
    set(header::REFERRER_POLICY, "same-origin");
    (status, headers, markup.into_string()).into_response()
}

/// The error page as a response (status of the error).
pub(super) fn error_response(error: &EntraError) -> Response {
    respond(error.status, self::error(error), false)
}
