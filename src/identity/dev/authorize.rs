//! The authorization endpoint of the dev issuer, `GET
//! /{tenant}/oauth2/v2.0/authorize`, and its sign-in form, `POST
//! /{tenant}/login`: Entra's authorization-code flow (OAuth 2.0 with PKCE,
//! OpenID Connect) for the confidential client
//! [`DEV_CONFIDENTIAL_CLIENT`].
//!
//! # Parameters
//!
//! `client_id`, `redirect_uri` (registered with
//! [`DevIssuer::allow_redirect`](super::DevIssuer::allow_redirect)),
//! `response_type=code`, `scope` (see `scope.rs`), `state`,
//! optional `nonce`, `code_challenge` with `code_challenge_method=S256`
//! (PKCE is optional, as Entra makes it for confidential clients, but
//! `plain` is refused), `login_hint`, `prompt` (`login`, `none`,
//! `consent`, `select_account` or `create`), `claims` (see
//! `claims_request.rs`), `response_mode=query` (the only mode).
//!
//! # Who signs in
//!
//! * `login_hint` names a user ([`DevUser`] name or user
//!   principal name): that user signs in at once, and the answer is a 302
//!   to the redirect URI with `code` and `state`. This is how tests sign
//!   in. `prompt=login` or `select_account` show the picker anyway (the
//!   hinted user first).
//! * Without `login_hint`, the answer is the persona picker page: a form
//!   listing the tenant's users that posts the chosen one to `POST
//!   /{tenant}/login`, which issues the code and redirects the same way.
//!   `prompt=none` without `login_hint` is `login_required`
//!   (AADSTS50058): there are no sessions to sign in from silently.
//!
//! # Errors
//!
//! Until the client and the redirect URI are known to be good, errors are
//! an HTML page (never a redirect): unknown tenant AADSTS90002; missing or
//! repeated `client_id` or `redirect_uri` AADSTS900144 / AADSTS9000411
//! (Entra would pick a registered URI when `redirect_uri` is absent; the
//! dev issuer asks for it); unknown client AADSTS700016; redirect URI not
//! registered AADSTS50011. After that, errors go to the redirect URI as
//! `error`, `error_description` (`AADSTSnnnnn: …`) and `state`:
//!
//! | condition | `error` | AADSTS |
//! |---|---|---|
//! | a repeated parameter | `invalid_request` | 9000411 |
//! | no `response_type` / no `scope` | `invalid_request` | 900144 |
//! | `response_type` other than `code` | `unsupported_response_type` | 700054 |
//! | `response_mode` other than `query` | `invalid_request` | 9002313 |
//! | `resource` present (RFC 8707; Entra v2 refuses it) | `invalid_target` | 9010010 |
//! | malformed scope, `.default` beside another scope of its resource, `offline_access` alone | `invalid_scope` | 70011 |
//! | `code_challenge_method` not `S256` (`plain`, or absent with a challenge) | `invalid_request` | 50149 |
//! | a method without a challenge | `invalid_request` | 900144 |
//! | a challenge that is not 43 base64url characters | `invalid_request` | 501491 |
//! | `prompt` not one of Entra's values | `invalid_request` | 90023 |
//! | `claims` not valid | `invalid_request` | 9002313 |
//! | `prompt=none` and nobody to sign in | `login_required` | 58 / 50034 / 50057 |
//!
//! A user who cannot sign in (unknown `login_hint` AADSTS50034, disabled
//! account AADSTS50057) gets the error page, as Entra shows it in its
//! sign-in UI, except under `prompt=none`.
//!
//! # The picker's form
//!
//! The page stores the validated request under a random flow id for ten
//! minutes and sets a cookie `warden_dev_signin_{flow}` (`HttpOnly`,
//! `SameSite=Strict`, path `/{tenant}/login`) holding a random CSRF token
//! that the form also carries. The post is accepted only with the flow,
//! the token in both places (constant-time comparisons), and an `Origin`,
//! when sent, that is the issuer's own; a flow is used once. The page is
//! `no-store`, unframeable (`frame-ancestors 'none'`, `X-Frame-Options:
//! DENY`), with a CSP that allows no script.

use std::collections::HashMap;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use subtle::ConstantTimeEq;
use url::Url;

use super::claims_request::ClaimsRequest;
use super::entra_error::{EntraError, redirect_with};
use super::grants::{CODE_LIFETIME, Code, Grant, PendingSignIn, is_s256_challenge, random_secret};
use super::page;
use super::scope::Scopes;
use super::{
    DEV_CONFIDENTIAL_CLIENT, DEV_CONFIDENTIAL_CLIENT_NAME, DEV_TENANT, DevUser, RouterState,
};

/// Entra's `prompt` values.
const PROMPTS: [&str; 5] = ["login", "none", "consent", "select_account", "create"];

/// Name prefix of the picker's CSRF cookie (the flow id follows).
const SIGN_IN_COOKIE: &str = "warden_dev_signin_";

/// A validated authorization request.
#[derive(Debug, Clone)]
pub(super) struct AuthorizeRequest {
    client_id: String,
    redirect_uri: Url,
    state: Option<String>,
    nonce: Option<String>,
    scope_text: String,
    scopes: Scopes,
    code_challenge: Option<String>,
    claims: ClaimsRequest,
    login_hint: Option<String>,
    prompt: Option<String>,
}

/// Why a request is refused, and where the refusal goes.
enum Refusal {
    /// The client or redirect URI is not trusted: an error page.
    Page(EntraError),
    /// To the client's redirect URI.
    Redirect(EntraError, Url, Option<String>),
}

/// The query parameters; empty values count as absent.
struct Params {
    values: HashMap<String, String>,
    repeated: Vec<String>,
}

impl Params {
    fn parse(query: &str) -> Self {
        let mut values = HashMap::new();
        let mut repeated = Vec::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
                && !repeated.contains(&name.to_string())
            {
                repeated.push(name.into_owned());
            }
        }
        Self { values, repeated }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(super) async fn authorize(
    State(state): State<RouterState>,
    UrlPath(tenant): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match validate(
        &state,
        &tenant,
        &Params::parse(query.as_deref().unwrap_or_default()),
    ) {
        Ok(request) => sign_in(&state, &tenant, request),
        Err(refusal) => match *refusal {
            Refusal::Page(error) => page::error_response(&error),
            Refusal::Redirect(error, uri, client_state) => {
                error.redirect(&uri, client_state.as_deref())
            }
        },
    }
}

fn validate(
    state: &RouterState,
    tenant: &str,
    params: &Params,
) -> Result<AuthorizeRequest, Box<Refusal>> {
    if tenant != DEV_TENANT {
        return Err(Refusal::Page(unknown_tenant(tenant)).into());
    }
    for name in ["client_id", "redirect_uri"] {
        if params.repeated.iter().any(|r| r == name) {
            return Err(Refusal::Page(EntraError::duplicated(name)).into());
        }
    }
    let client_id = params
        .get("client_id")
        .ok_or_else(|| Refusal::Page(EntraError::missing("client_id")))?;
    if !client_id.eq_ignore_ascii_case(DEV_CONFIDENTIAL_CLIENT) {
        return Err(Refusal::Page(unknown_client(client_id)).into());
    }
    let redirect_text = params
        .get("redirect_uri")
        .ok_or_else(|| Refusal::Page(EntraError::missing("redirect_uri")))?;
    let redirect_uri = Url::parse(redirect_text)
        .ok()
        .filter(|url| state.issuer.read_directory().redirect_allowed(url))
        .ok_or_else(|| {
            Refusal::Page(EntraError::new(
                "invalid_request",
                50011,
                format!(
                    "The redirect URI '{redirect_text}' specified in the request does not match \
                     the redirect URIs configured for the application \
                     '{DEV_CONFIDENTIAL_CLIENT}'. Make sure the redirect URI sent in the request \
                     matches one registered with the dev issuer (DevIssuer::allow_redirect, or \
                     `warden dev --redirect-uri`)."
                ),
            ))
        })?;

    // From here on, errors go back to the client.
    let client_state = if params.repeated.iter().any(|r| r == "state") {
        None
    } else {
        params.get("state").map(str::to_owned)
    };
    let refuse = |error: EntraError| {
        Box::new(Refusal::Redirect(
            error,
            redirect_uri.clone(),
            client_state.clone(),
        ))
    };
    if let Some(name) = params.repeated.first() {
        return Err(refuse(EntraError::duplicated(name)));
    }
    match params.get("response_type") {
        None => return Err(refuse(EntraError::missing("response_type"))),
        Some("code") => {}
        Some(other) => {
            return Err(refuse(EntraError::new(
                "unsupported_response_type",
                700054,
                format!(
                    "response_type '{other}' is not enabled for the application. The dev issuer \
                     supports the authorization code flow only (response_type=code)."
                ),
            )));
        }
    }
    if let Some(mode) = params.get("response_mode").filter(|m| *m != "query") {
        return Err(refuse(EntraError::malformed(&format!(
            "The dev issuer answers with response_mode=query only, not '{mode}'."
        ))));
    }
    let scope_text = params
        .get("scope")
        .ok_or_else(|| refuse(EntraError::missing("scope")))?;
    if params.get("resource").is_some() {
        return Err(refuse(EntraError::new(
            "invalid_target",
            9010010,
            "The resource parameter provided in the request doesn't match with the requested \
             scopes. Entra ID v2 endpoints do not accept 'resource': name the resource in \
             'scope' instead.",
        )));
    }
    let scopes = Scopes::parse(Some(scope_text)).map_err(refuse)?;
    let code_challenge = pkce(params).map_err(refuse)?;
    let prompt = params.get("prompt");
    if let Some(prompt) = prompt.filter(|p| !PROMPTS.contains(p)) {
        return Err(refuse(EntraError::new(
            "invalid_request",
            90023,
            format!(
                "Unsupported 'prompt' value '{prompt}'. Use one of login, none, consent, \
                 select_account or create."
            ),
        )));
    }
    let claims = ClaimsRequest::parse(params.get("claims")).map_err(refuse)?;
    Ok(AuthorizeRequest {
        client_id: DEV_CONFIDENTIAL_CLIENT.to_owned(),
        redirect_uri: redirect_uri.clone(),
        state: client_state.clone(),
        nonce: params.get("nonce").map(str::to_owned),
        scope_text: scope_text.to_owned(),
        scopes,
        code_challenge,
        claims,
        login_hint: params.get("login_hint").map(str::to_owned),
        prompt: prompt.map(str::to_owned),
    })
}

/// The S256 challenge, if any.
fn pkce(params: &Params) -> Result<Option<String>, EntraError> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(EntraError::missing("code_challenge")),
        (Some(_), method) if method != Some("S256") => Err(EntraError::new(
            "invalid_request",
            50149,
            format!(
                "Invalid Code_Challenge_method parameter '{}'. The dev issuer accepts S256 only \
                 (plain, the default when the method is absent, is refused).",
                method.unwrap_or("plain")
            ),
        )),
        (Some(challenge), _) if !is_s256_challenge(challenge) => Err(EntraError::new(
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter: an S256 challenge is 43 base64url \
             characters.",
        )),
        (Some(challenge), _) => Ok(Some(challenge.to_owned())),
    }
}

/// Picks the user: `login_hint`, or the picker page.
fn sign_in(state: &RouterState, tenant: &str, request: AuthorizeRequest) -> Response {
    let prompt = request.prompt.as_deref();
    let silent = prompt == Some("none");
    let picker_forced = matches!(prompt, Some("login" | "select_account" | "create"));
    let directory = state.issuer.read_directory();
    let hinted = request
        .login_hint
        .as_deref()
        .map(|hint| directory.user(hint).cloned().ok_or(hint));
    match hinted {
        Some(Ok(user)) if !picker_forced => {
            drop(directory);
            return match signed_in(&user) {
                Ok(()) => complete(state, &request, &user),
                Err(error) if silent => {
                    login_required(error).redirect(&request.redirect_uri, request.state.as_deref())
                }
                Err(error) => page::error_response(&error),
            };
        }
        Some(Err(hint)) if !picker_forced => {
            let error = unknown_user(hint);
            return if silent {
                login_required(error).redirect(&request.redirect_uri, request.state.as_deref())
            } else {
                page::error_response(&error)
            };
        }
        _ => {}
    }
    if silent {
        let error = EntraError::new(
            "login_required",
            50058,
            "A silent sign-in request was sent but no user is signed in. The dev issuer keeps \
             no sessions: send login_hint.",
        );
        return error.redirect(&request.redirect_uri, request.state.as_deref());
    }
    let users = directory.users().to_vec();
    drop(directory);
    let hint = match hinted {
        Some(Ok(user)) => Some(user.name),
        _ => None,
    };
    let csrf = random_secret();
    let flow = state.issuer.grants.start_sign_in(PendingSignIn {
        request: request.clone(),
        csrf: csrf.clone(),
    });
    let action = format!("/{tenant}/login");
    let markup = page::picker(&page::Picker {
        action: &action,
        flow: &flow,
        csrf: &csrf,
        client_name: DEV_CONFIDENTIAL_CLIENT_NAME,
        client_id: &request.client_id,
        redirect_uri: &request.redirect_uri,
        scopes: &request.scope_text,
        hint: hint.as_deref(),
        users: &users,
    });
    let mut response = page::respond(StatusCode::OK, markup, true);
    let secure = if state.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SIGN_IN_COOKIE}{flow}={csrf}; Path={action}; Max-Age=600; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /{tenant}/login`: the picker's form (`flow`, `csrf`, `persona`).
pub(super) async fn login(
    State(state): State<RouterState>,
    UrlPath(tenant): UrlPath<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if tenant != DEV_TENANT {
        return page::error_response(&unknown_tenant(&tenant));
    }
    if !origin_ok(&state.base_url, &headers) {
        return page::error_response(&csrf_refused("the form was posted from another origin"));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let Some(flow) = field("flow") else {
        return page::error_response(&flow_expired());
    };
    let Some(csrf) = field("csrf") else {
        return page::error_response(&csrf_refused("the form carries no CSRF token"));
    };
    let cookie = cookie(&headers, &format!("{SIGN_IN_COOKIE}{flow}"));
    if !cookie.is_some_and(|c| bool::from(c.as_bytes().ct_eq(csrf.as_bytes()))) {
        return page::error_response(&csrf_refused(
            "the CSRF token does not match this browser's sign-in cookie",
        ));
    }
    let request = match state.issuer.grants.finish_sign_in(flow, csrf) {
        Ok(request) => request,
        Err(true) => return page::error_response(&csrf_refused("the CSRF token is wrong")),
        Err(false) => return page::error_response(&flow_expired()),
    };
    let Some(persona) = field("persona") else {
        return page::error_response(&EntraError::missing("persona"));
    };
    let user = state.issuer.read_directory().user(persona).cloned();
    let mut response = match user {
        None => page::error_response(&unknown_user(persona)),
        Some(user) => match signed_in(&user) {
            Ok(()) => complete(&state, &request, &user),
            Err(error) => page::error_response(&error),
        },
    };
    let expired = format!(
        "{SIGN_IN_COOKIE}{flow}=; Path=/{tenant}/login; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Issues the code and sends it to the client.
fn complete(state: &RouterState, request: &AuthorizeRequest, user: &DevUser) -> Response {
    let code = Code::new(
        Grant {
            client_id: request.client_id.clone(),
            user: user.name.clone(),
            scopes: request.scopes.clone(),
            claims: request.claims.clone(),
        },
        request.redirect_uri.to_string(),
        request.code_challenge.clone(),
        request.nonce.clone(),
    );
    let code = state.issuer.grants.issue_code(code, CODE_LIFETIME);
    let mut pairs = vec![("code", code)];
    if let Some(client_state) = &request.state {
        pairs.push(("state", client_state.clone()));
    }
    redirect_with(&request.redirect_uri, &pairs)
}

/// Whether `user` may sign in.
fn signed_in(user: &DevUser) -> Result<(), EntraError> {
    if user.disabled {
        return Err(EntraError::new(
            "invalid_grant",
            50057,
            format!(
                "The user account is disabled. The account '{}' has been disabled by an \
                 administrator.",
                user.user
            ),
        ));
    }
    Ok(())
}

/// Under `prompt=none`, a user error becomes `login_required`.
fn login_required(mut error: EntraError) -> EntraError {
    error.error = "login_required";
    error
}

fn unknown_user(hint: &str) -> EntraError {
    EntraError::new(
        "invalid_request",
        50034,
        format!("The user account {hint} does not exist in the {DEV_TENANT} directory."),
    )
}

fn unknown_tenant(tenant: &str) -> EntraError {
    EntraError::new(
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and \
             are signing into the correct cloud."
        ),
    )
}

pub(super) fn unknown_client(client_id: &str) -> EntraError {
    EntraError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory \
             '{DEV_TENANT}'. The dev issuer knows one client, '{DEV_CONFIDENTIAL_CLIENT}'."
        ),
    )
}

fn flow_expired() -> EntraError {
    EntraError::new(
        "invalid_request",
        50089,
        "Authentication failed due to flow token expired: the sign-in page is unknown, used or \
         older than ten minutes. Start the sign-in again.",
    )
}

fn csrf_refused(why: &str) -> EntraError {
    EntraError::new(
        "invalid_request",
        50089,
        format!("The sign-in form was refused: {why}. Start the sign-in again."),
    )
    .with_status(StatusCode::FORBIDDEN)
}

/// An `Origin` header, when present, must be the issuer's own.
fn origin_ok(base_url: &str, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let own = Url::parse(base_url).map(|u| u.origin().ascii_serialization());
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"));
    own.as_deref() == Ok(origin) || host.as_deref() == Some(origin)
}

/// The value of cookie `name`.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
