//! The facade's HTTP endpoints on the gateway's listener:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /.well-known/oauth-authorization-server` (and the path-suffixed variants) | RFC 8414 metadata |
//! | `POST /register` | RFC 7591 dynamic registration (public clients) |
//! | `GET /authorize` | checks the request; the consent page, or Entra for a remembered consent |
//! | `POST /authorize/decision` | the consent page's answer (CSRF-checked) |
//! | `GET /oauth/callback` | Entra's answer: Warden's code to the client |
//! | `POST /token` | authorization code and refresh grants |
//! | `POST /revoke` | RFC 7009 |
//!
//! Pages carry `frame-ancestors 'none'`, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`; token answers `no-store` too. The browser
//! cookie that binds a sign-in transaction is `SameSite=Lax` (Entra's
//! redirect back is a top-level navigation from another site); the consent
//! form's CSRF cookie is `SameSite=Strict`; both are `HttpOnly` and
//! `Secure` except for plain HTTP on loopback (see [`crate::cookies`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::metadata::{REGISTER_PATH, REVOKE_PATH, TOKEN_PATH, metadata, well_known_paths};
use super::service::{AuthorizeParams, CALLBACK_PATH, OAuthError, OAuthService, Step, TokenForm};
use super::{metadata::AUTHORIZE_PATH, page};
use crate::cookies::{SameSite, cookie, plain_loopback, set_cookie};

/// The cookie that binds a sign-in to the browser that started it.
pub const BROWSER_COOKIE: &str = "warden_oauth_browser";
/// The consent form's double-submit CSRF cookie.
pub const CSRF_COOKIE: &str = "warden_oauth_csrf";
/// The consent page's answer.
pub const DECISION_PATH: &str = "/authorize/decision";

/// The facade's routes (their own state inside; mergeable into a router
/// of any state).
pub fn router<S>(service: Arc<OAuthService>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = Router::new();
    for path in well_known_paths(service.issuer(), "/mcp") {
        router = router.route(&path, get(server_metadata));
    }
    router
        .route(REGISTER_PATH, post(register))
        .route(AUTHORIZE_PATH, get(authorize))
        .route(DECISION_PATH, post(decide))
        .route(CALLBACK_PATH, get(callback))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .with_state(service)
}

async fn server_metadata(State(service): State<Arc<OAuthService>>) -> Response {
    axum::Json(metadata(service.issuer(), &service.metadata_options())).into_response()
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    no_store(response)
}

fn oauth_error(status: StatusCode, error: OAuthError) -> Response {
    no_store((status, axum::Json(error)).into_response())
}

async fn register(
    State(service): State<Arc<OAuthService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    match service.register(&body, peer.ip()) {
        Ok(registered) => no_store((StatusCode::CREATED, axum::Json(registered)).into_response()),
        Err(error) => oauth_error(StatusCode::BAD_REQUEST, error),
    }
}

/// A [`Step`] as the browser's response.
fn step(step: Step, headers: &HeaderMap, peer: SocketAddr) -> Response {
    let secure = !plain_loopback(headers, peer.ip());
    let response = match step {
        Step::ErrorPage(message) => (
            StatusCode::BAD_REQUEST,
            Html(page::error(&message).into_string()),
        )
            .into_response(),
        Step::ToClient(url) | Step::ToEntra { url, .. } if url.is_empty() => (
            StatusCode::BAD_REQUEST,
            Html(page::error("nowhere to go").into_string()),
        )
            .into_response(),
        Step::ToClient(url) => redirect(&url),
        Step::ToEntra { url, browser } => {
            let mut response = redirect(&url);
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    BROWSER_COOKIE,
                    &browser,
                    "/",
                    SameSite::Lax,
                    8 * 3600,
                    secure,
                ),
            );
            response
        }
        Step::Consent {
            id,
            csrf,
            request,
            client,
        } => {
            let mut response =
                Html(page::consent(&id, &csrf, &request, &client).into_string()).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    CSRF_COOKIE,
                    &csrf,
                    DECISION_PATH,
                    SameSite::Strict,
                    600,
                    secure,
                ),
            );
            response
        }
    };
    page_headers(response)
}

fn redirect(url: &str) -> Response {
    match HeaderValue::try_from(url) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Html(page::error("The redirect address is not valid.").into_string()),
        )
            .into_response(),
    }
}

async fn authorize(
    State(service): State<Arc<OAuthService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<AuthorizeParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return step(
            Step::ErrorPage("The authorization request is malformed.".into()),
            &headers,
            peer,
        );
    };
    let browser = cookie(&headers, BROWSER_COOKIE);
    let next = service.authorize(&params, browser).await;
    step(next, &headers, peer)
}

#[derive(Debug, Default, Deserialize)]
struct Decision {
    #[serde(default)]
    consent: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

async fn decide(
    State(service): State<Arc<OAuthService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<Decision>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return step(
            Step::ErrorPage("The consent form is malformed.".into()),
            &headers,
            peer,
        );
    };
    // Double submit: the form's token must be the cookie's, and the
    // pending request's.
    let csrf_cookie = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if csrf_cookie.is_empty() || csrf_cookie != form.csrf {
        return step(
            Step::ErrorPage(
                "The consent form did not come from this browser; nothing was approved.".into(),
            ),
            &headers,
            peer,
        );
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return step(
                Step::ErrorPage("The consent form gave no decision.".into()),
                &headers,
                peer,
            );
        }
    };
    let browser = cookie(&headers, BROWSER_COOKIE);
    let next = service
        .decide(&form.consent, &form.csrf, approve, browser)
        .await;
    step(next, &headers, peer)
}

#[derive(Debug, Default, Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

async fn callback(
    State(service): State<Arc<OAuthService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let browser = cookie(&headers, BROWSER_COOKIE);
    let next = service
        .callback(
            params.state.as_deref(),
            params.code.as_deref(),
            params.error.as_deref(),
            browser,
            Some(peer.ip()),
        )
        .await;
    step(next, &headers, peer)
}

async fn token(
    State(service): State<Arc<OAuthService>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            OAuthError {
                error: "invalid_request",
                error_description: "the token request must be application/x-www-form-urlencoded"
                    .into(),
            },
        );
    };
    match service.token(&form, Some(peer.ip())).await {
        Ok(tokens) => no_store(axum::Json(tokens).into_response()),
        Err(error) => {
            let status = if error.error == "temporarily_unavailable" {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            oauth_error(status, error)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct RevokeForm {
    #[serde(default)]
    token: String,
}

async fn revoke(
    State(service): State<Arc<OAuthService>>,
    Form(form): Form<RevokeForm>,
) -> Response {
    match service.revoke(&form.token).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => oauth_error(StatusCode::SERVICE_UNAVAILABLE, error),
    }
}
