//! The dev tenant's administration over HTTP, for a running `warden dev`:
//! list the users, disable or enable one.
//!
//! * `GET /_dev/users`: `{"users":[{"name","user","roles","groups","mfa","disabled"}]}`
//! * `POST /_dev/users/{name}/disable`, `POST /_dev/users/{name}/enable`:
//!   the user afterwards; 404 for an unknown user.
//!
//! Every request must carry `Authorization: Bearer <client secret>`, the
//! contents of the issuer directory's `dev-client-secret` file (mode
//! 0600): only someone who can read `warden dev`'s data directory can
//! administer its tenant, wherever the issuer listens. Anything else is
//! 401. In code, use [`DevIssuer::set_user_enabled`](super::DevIssuer::set_user_enabled).

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::entra_error::server_error;
use super::{DevUser, RouterState};

/// `GET /_dev/users`.
pub(super) async fn list_users(State(state): State<RouterState>, headers: HeaderMap) -> Response {
    if let Err(refusal) = authorize(&state, &headers).await {
        return refusal;
    }
    let users: Vec<Value> = state.issuer.users().iter().map(user_json).collect();
    no_store(StatusCode::OK, json!({ "users": users }))
}

/// `POST /_dev/users/{name}/{enable|disable}`.
pub(super) async fn set_enabled(
    State(state): State<RouterState>,
    UrlPath((name, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = authorize(&state, &headers).await {
        return refusal;
    }
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if state.issuer.set_user_enabled(&name, enabled).is_err() {
        return no_store(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no user named {name:?}") }),
        );
    }
    let user = state.issuer.read_directory().user(&name).cloned();
    match user {
        Some(user) => no_store(StatusCode::OK, user_json(&user)),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn user_json(user: &DevUser) -> Value {
    json!({
        "name": user.name,
        "user": user.user,
        "roles": user.roles,
        "groups": user.groups,
        "mfa": user.mfa,
        "disabled": user.disabled,
    })
}

fn no_store(status: StatusCode, body: Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// The bearer must be the dev client secret.
async fn authorize(state: &RouterState, headers: &HeaderMap) -> Result<(), Response> {
    let issuer = state.issuer.clone();
    let expected = match tokio::task::spawn_blocking(move || issuer.client_secret()).await {
        Ok(Ok(secret)) => secret,
        Ok(Err(e)) => return Err(server_error(&e.to_string())),
        Err(e) => return Err(server_error(&e.to_string())),
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err((
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            Json(json!({
                "error": "send Authorization: Bearer <the dev-client-secret file of the issuer's directory>"
            })),
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{client_secret, serve_with_sign_in};

    #[tokio::test]
    async fn users_are_listed_disabled_and_enabled_with_the_client_secret() {
        let served = serve_with_sign_in().await;
        let secret = client_secret(&served);
        let http = reqwest::Client::new();
        let url = |path: &str| format!("{}{path}", served.base_url);
        let call = |method: reqwest::Method, path: &str, bearer: Option<&str>| {
            let mut request = http.request(method, url(path));
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            request.send()
        };

        for bearer in [None, Some("wrong"), Some("")] {
            let response = call(reqwest::Method::GET, "/_dev/users", bearer)
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 401, "{bearer:?}");
            let response = call(
                reqwest::Method::POST,
                "/_dev/users/developer/disable",
                bearer,
            )
            .await
            .unwrap();
            assert_eq!(response.status().as_u16(), 401, "{bearer:?}");
        }
        assert!(served.issuer.users().iter().all(|u| !u.disabled));

        let list: serde_json::Value = call(reqwest::Method::GET, "/_dev/users", Some(&secret))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["users"][0]["name"], "developer");
        assert_eq!(list["users"][0]["user"], "dana.developer@contoso.dev");
        assert_eq!(list["users"][1]["mfa"], true);

        let response = call(
            reqwest::Method::POST,
            "/_dev/users/developer/disable",
            Some(&secret),
        )
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let user: serde_json::Value = response.json().await.unwrap();
        assert_eq!(user["disabled"], true);
        assert!(served.issuer.users()[0].disabled);

        let response = call(
            reqwest::Method::POST,
            "/_dev/users/developer/enable",
            Some(&secret),
        )
        .await
        .unwrap();
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["disabled"],
            false
        );
        assert!(!served.issuer.users()[0].disabled);

        for path in ["/_dev/users/nobody/disable", "/_dev/users/developer/delete"] {
            let response = call(reqwest::Method::POST, path, Some(&secret))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 404, "{path}");
        }
    }
}
