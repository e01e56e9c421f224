//! Entra's OAuth errors: an OAuth 2.0 `error` code plus an AADSTS number,
//! answered as Entra answers them: JSON from the token endpoint, query
//! parameters on the client's redirect URI, or an HTML page from the
//! sign-in endpoints when the redirect URI cannot be trusted.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One refusal: `error`, the AADSTS `code`, and the text after
/// `AADSTS{code}: ` in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EntraError {
    pub(super) status: StatusCode,
    pub(super) error: &'static str,
    pub(super) code: u32,
    pub(super) message: String,
}

impl EntraError {
    /// A 400 answer.
    pub(super) fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            message: message.into(),
        }
    }

    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// `invalid_request`, AADSTS900144: a required parameter is absent.
    pub(super) fn missing(name: &str) -> Self {
        Self::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// `invalid_request`, AADSTS9000411: a parameter given twice.
    pub(super) fn duplicated(name: &str) -> Self {
        Self::new(
            "invalid_request",
            9000411,
            format!("The parameter '{name}' is duplicated."),
        )
    }

    /// `invalid_request`, AADSTS9002313: a request Entra cannot parse.
    pub(super) fn malformed(reason: &str) -> Self {
        Self::new(
            "invalid_request",
            9002313,
            format!("Invalid request. Request is malformed or invalid. {reason}"),
        )
    }

    /// `AADSTS{code}: {message}`.
    pub(super) fn description(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The token endpoint's JSON answer (`base` is the issuer's base URL,
    /// for `error_uri`).
    pub(super) fn json(&self, base: &str) -> Response {
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        (
            self.status,
            [
                (header::CACHE_CONTROL, "no-store, no-cache"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json!({
                "error": self.error,
                "error_description": self.description(),
                "error_codes": [self.code],
                "timestamp": timestamp,
                "trace_id": uuid::Uuid::new_v4().to_string(),
                "correlation_id": uuid::Uuid::new_v4().to_string(),
                "error_uri": format!("{base}/error?code={}", self.code),
            })),
        )
            .into_response()
    }

    /// The authorization endpoint's answer once the client and its
    /// redirect URI are known to be good: a 302 to `redirect_uri` with
    /// `error`, `error_description` and the client's `state`.
    pub(super) fn redirect(&self, redirect_uri: &url::Url, state: Option<&str>) -> Response {
        let mut pairs = vec![
            ("error", self.error.to_owned()),
            ("error_description", self.description()),
        ];
        if let Some(state) = state {
            pairs.push(("state", state.to_owned()));
        }
        redirect_with(redirect_uri, &pairs)
    }
}

/// A 302 to `redirect_uri` with `pairs` appended to its query, never cached.
pub(super) fn redirect_with(redirect_uri: &url::Url, pairs: &[(&str, String)]) -> Response {
    let mut location = redirect_uri.clone();
    {
        let mut query = location.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response()
}

/// A 500 answer for the issuer's own failures (a secret file it cannot
/// read, a key that cannot sign).
pub(super) fn server_error(message: &str) -> Response {
    tracing::error!("dev issuer: {message}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": "server_error", "error_description": message })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_start_with_the_aadsts_code() {
        let error = EntraError::missing("scope");
        assert_eq!(error.error, "invalid_request");
        assert_eq!(
            error.description(),
            "AADSTS900144: The request body must contain the following parameter: 'scope'."
        );
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn redirects_append_to_the_query_and_keep_the_state() {
        let uri = url::Url::parse("https://app.example/cb?tenant=a").unwrap();
        let response =
            EntraError::new("invalid_scope", 70011, "bad & worse").redirect(&uri, Some("s 1"));
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let parsed = url::Url::parse(location).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("tenant".to_owned(), "a".to_owned()),
                ("error".to_owned(), "invalid_scope".to_owned()),
                (
                    "error_description".to_owned(),
                    "AADSTS70011: bad & worse".to_owned()
                ),
                ("state".to_owned(), "s 1".to_owned()),
            ]
        );
    }
}
