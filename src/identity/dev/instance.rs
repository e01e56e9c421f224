//! Entra's instance discovery, `GET /common/discovery/instance`: MSAL asks
//! it before its first token (`api-version=1.1&authorization_endpoint=
//! https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize`) to
//! learn the cloud's host aliases. The dev issuer answers as Entra does for
//! the public cloud, so an MSAL client reaching this issuer as
//! `login.microsoftonline.com` (through `warden dev`'s egress proxy) goes
//! straight on to the token endpoint.
//!
//! The answer: `tenant_discovery_endpoint` (the authorization endpoint's
//! host and tenant, with the v2.0 or v1 OpenID configuration path),
//! `api-version` `1.1`, and `metadata`, the known clouds with their
//! preferred network and cache hosts and aliases. An authorization
//! endpoint that is not on a public-cloud Entra host, or is missing, is
//! refused as Entra refuses it: 400 `invalid_instance` AADSTS50049.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::RouterState;
use super::entra_error::EntraError;

/// The public cloud's Entra hosts (the first entry of [`metadata`]).
const PUBLIC_CLOUD_ALIASES: [&str; 4] = [
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "sts.windows.net",
];

/// `metadata` of Entra's answer: every cloud's hosts.
fn metadata() -> Value {
    json!([
        {
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": PUBLIC_CLOUD_ALIASES,
        },
        {
            "preferred_network": "login.partner.microsoftonline.cn",
            "preferred_cache": "login.partner.microsoftonline.cn",
            "aliases": ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
        },
        {
            "preferred_network": "login.microsoftonline.de",
            "preferred_cache": "login.microsoftonline.de",
            "aliases": ["login.microsoftonline.de"],
        },
        {
            "preferred_network": "login.microsoftonline.us",
            "preferred_cache": "login.microsoftonline.us",
            "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"],
        },
        {
            "preferred_network": "login-us.microsoftonline.com",
            "preferred_cache": "login-us.microsoftonline.com",
            "aliases": ["login-us.microsoftonline.com"],
        },
    ])
}

/// `GET /common/discovery/instance`.
pub(super) async fn instance_discovery(
    State(state): State<RouterState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match tenant_discovery_endpoint(params.get("authorization_endpoint").map(String::as_str)) {
        Some(endpoint) => (
            [(header::CACHE_CONTROL, "max-age=86400, private")],
            Json(json!({
                "tenant_discovery_endpoint": endpoint,
                "api-version": "1.1",
                "metadata": metadata(),
            })),
        )
            .into_response(),
        None => EntraError::new(
            "invalid_instance",
            50049,
            "Unknown or invalid instance. The authorization_endpoint parameter must be an \
             https URL on a public-cloud Entra host (login.microsoftonline.com).",
        )
        .json(&state.base_url),
    }
}

/// The OpenID configuration URL of the tenant an authorization endpoint
/// names (`https://{host}/{tenant}/oauth2/v2.0/authorize` → `…/{tenant}/v2.0/
/// .well-known/openid-configuration`; the v1 `…/oauth2/authorize` →
/// `…/{tenant}/.well-known/openid-configuration`), if it is on a
/// public-cloud host.
fn tenant_discovery_endpoint(authorization_endpoint: Option<&str>) -> Option<String> {
    let url = url::Url::parse(authorization_endpoint?).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    if url.scheme() != "https" || !PUBLIC_CLOUD_ALIASES.contains(&host.as_str()) {
        return None;
    }
    let mut segments = url.path_segments()?.filter(|s| !s.is_empty());
    let tenant = segments.next().unwrap_or("common");
    let rest: Vec<&str> = segments.collect();
    let version = if rest.first() == Some(&"oauth2") && rest.get(1) != Some(&"v2.0") {
        ""
    } else {
        "/v2.0"
    };
    Some(format!(
        "https://{host}/{tenant}{version}/.well-known/openid-configuration"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenant_discovery_endpoint_follows_the_authorization_endpoint() {
        let tenant = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            tenant_discovery_endpoint(Some(&format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
            ))),
            Some(format!(
                "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
            ))
        );
        assert_eq!(
            tenant_discovery_endpoint(Some(
                "https://LOGIN.windows.net/organizations/oauth2/authorize"
            )),
            Some(
                "https://login.windows.net/organizations/.well-known/openid-configuration"
                    .to_owned()
            )
        );
        for refused in [
            None,
            Some("not a url"),
            Some("http://login.microsoftonline.com/common/oauth2/v2.0/authorize"),
            Some("https://login.example.com/common/oauth2/v2.0/authorize"),
            Some("https://127.0.0.1:8788/common/oauth2/v2.0/authorize"),
        ] {
            assert_eq!(tenant_discovery_endpoint(refused), None, "{refused:?}");
        }
    }

    #[tokio::test]
    async fn msal_gets_entras_answer_and_unknown_instances_are_refused() {
        let served = super::super::test_support::serve().await;
        let tenant = super::super::DEV_TENANT;
        let http = reqwest::Client::new();
        let url = |authorization_endpoint: &str| {
            url::Url::parse_with_params(
                &format!("{}/common/discovery/instance", served.base_url),
                [
                    ("api-version", "1.1"),
                    ("authorization_endpoint", authorization_endpoint),
                ],
            )
            .unwrap()
        };
        let answer = http
            .get(url(&format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(
            body["tenant_discovery_endpoint"],
            format!(
                "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
            )
        );
        assert_eq!(body["api-version"], "1.1");
        assert_eq!(
            body["metadata"][0]["preferred_network"],
            "login.microsoftonline.com"
        );
        assert_eq!(body["metadata"][0]["preferred_cache"], "login.windows.net");
        assert_eq!(body["metadata"].as_array().unwrap().len(), 5);

        let refused = http
            .get(url(
                "https://login.example.com/common/oauth2/v2.0/authorize",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_instance");
        assert_eq!(body["error_codes"], json!([50049]));
    }
}
