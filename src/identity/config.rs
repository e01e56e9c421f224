//! `[identity]`: which Entra tenants, audiences and clients are trusted.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

/// Microsoft Entra ID bearer-token validation settings (`[identity]`).
///
/// Every field has a default, so an empty table deserializes; [`validate`]
/// then insists on the values that have no safe default (`tenants`,
/// `audiences`).
///
/// [`validate`]: IdentityConfig::validate
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Tenant ids (GUIDs) whose tokens are accepted. At least one is
    /// required unless `allow_anonymous`. `common` / `organizations` are not
    /// tenant ids and are refused. Default: empty.
    pub tenants: Vec<String>,
    /// Accepted `aud` values: the API's client id and/or its App ID URI
    /// (e.g. `api://warden`). At least one is required. Default: empty.
    pub audiences: Vec<String>,
    /// Base URL of the authority. For tenant `T` the discovery document is
    /// `{authority}/{T}/v2.0/.well-known/openid-configuration` and the v2
    /// issuer is `{authority}/{T}/v2.0`.
    /// Default: `https://login.microsoftonline.com`.
    pub authority: String,
    /// Base of v1 issuers: tokens with `iss = {v1_issuer_base}/{T}/` are
    /// accepted for tenant `T`. Only a dev issuer needs to change it.
    /// Default: `https://sts.windows.net`.
    pub v1_issuer_base: String,
    /// Client application ids (`azp` in v2 tokens, `appid` in v1 tokens)
    /// allowed to call. Empty (the default) allows any client.
    pub client_apps: Vec<String>,
    /// Authentication-context ids (`c1` … `c99`) whose presence in the `acrs`
    /// claim counts as multi-factor authentication. Default: empty.
    pub mfa_auth_contexts: Vec<String>,
    /// Delegated scopes; a user token must carry at least one of them in
    /// `scp`. Short names (`access_as_user`) or full URIs
    /// (`api://warden/access_as_user`) are both accepted. Empty (the
    /// default) skips the check.
    pub required_scopes: Vec<String>,
    /// App roles; an app-only token must carry at least one of them in
    /// `roles`. Empty (the default) accepts app-only tokens without a role
    /// check, so set it (or `client_apps`) when app-only callers matter.
    pub required_app_roles: Vec<String>,
    /// Accept app-only tokens that carry no app role at all. Off by
    /// default: Entra lets any application in the tenant obtain an app-only
    /// token for an API that defines no app roles (or when assignment is
    /// not required), so such a token says nothing about who may call.
    pub allow_app_tokens_without_roles: bool,
    /// Leeway for `exp` and `nbf`. Default `2m`; at most `5m`.
    #[serde(with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Background refresh interval of the signing keys. Default `1h`; at
    /// least `1m`.
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// A token signed with an unknown `kid` triggers a key refresh at most
    /// once per this interval, across all requests. Default `5m`; at least
    /// `1s`.
    #[serde(with = "humantime_serde")]
    pub unknown_kid_cooldown: Duration,
    /// Largest accepted token, in bytes. Default 16384; 1024 ..= 262144.
    pub max_token_bytes: usize,
    /// Tokens remembered after they passed every check, until their `exp`
    /// (`identity::cache`). Default 10000; 0 turns the cache off; at most
    /// 1000000.
    pub token_cache: usize,
    /// The protected resource identifier published in the RFC 9728
    /// metadata: the public URL of the MCP endpoint, e.g.
    /// `https://warden.example.com/mcp`. Default: none, in which case the
    /// caller passes the URL derived from the request.
    pub resource: Option<String>,
    /// Only for local experiments; every request then gets an anonymous
    /// principal. Default: false.
    pub allow_anonymous: bool,
    /// What to do with a token whose group list was replaced by an overage
    /// indicator (`_claim_names.groups` or `hasgroups`). Default: `deny`.
    pub groups_overage: GroupsOveragePolicy,
}

/// Treatment of a token whose `groups` claim was omitted because the user
/// is in too many groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupsOveragePolicy {
    /// Refuse the token (403, reason `groups_overage`).
    #[default]
    Deny,
    /// Accept it; the principal has `groups_overage = true` and an empty
    /// group set that policy must treat as unknown.
    Allow,
}

/// Default authority (public cloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Default base of v1 issuers (public cloud).
pub const DEFAULT_V1_ISSUER_BASE: &str = "https://sts.windows.net";

const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
const MIN_JWKS_REFRESH: Duration = Duration::from_secs(60);
const MIN_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(1);
const MIN_TOKEN_BYTES: usize = 1024;
const MAX_TOKEN_BYTES: usize = 256 * 1024;

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            tenants: Vec::new(),
            audiences: Vec::new(),
            authority: DEFAULT_AUTHORITY.to_owned(),
            v1_issuer_base: DEFAULT_V1_ISSUER_BASE.to_owned(),
            client_apps: Vec::new(),
            mfa_auth_contexts: Vec::new(),
            required_scopes: Vec::new(),
            required_app_roles: Vec::new(),
            allow_app_tokens_without_roles: false,
            clock_skew: Duration::from_secs(120),
            jwks_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(300),
            max_token_bytes: 16384,
            token_cache: 10_000,
            resource: None,
            allow_anonymous: false,
            groups_overage: GroupsOveragePolicy::Deny,
        }
    }
}

impl IdentityConfig {
    /// Check the values; the error names the key as `identity.<key>`.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenants.is_empty() && !self.allow_anonymous {
            return Err(
                "identity.tenants: at least one tenant id (GUID) is required, e.g. tenants = [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]"
                    .into(),
            );
        }
        for tenant in &self.tenants {
            if !is_guid(tenant) {
                return Err(format!(
                    "identity.tenants: {tenant:?} is not a tenant id; use the directory (tenant) GUID, not a domain name or \"common\""
                ));
            }
        }
        if self.audiences.is_empty() && !self.allow_anonymous {
            return Err(
                "identity.audiences: at least one audience is required (the API's client id and/or App ID URI)"
                    .into(),
            );
        }
        check_words("identity.audiences", &self.audiences)?;
        check_base_url("identity.authority", &self.authority)?;
        check_base_url("identity.v1_issuer_base", &self.v1_issuer_base)?;
        for app in &self.client_apps {
            if !is_guid(app) {
                return Err(format!(
                    "identity.client_apps: {app:?} is not an application (client) id GUID"
                ));
            }
        }
        for context in &self.mfa_auth_contexts {
            if !is_auth_context(context) {
                return Err(format!(
                    "identity.mfa_auth_contexts: {context:?} is not an authentication context id (c1 … c99)"
                ));
            }
        }
        check_words("identity.required_scopes", &self.required_scopes)?;
        check_words("identity.required_app_roles", &self.required_app_roles)?;
        if self.clock_skew > MAX_CLOCK_SKEW {
            return Err("identity.clock_skew: must be at most 5m".into());
        }
        if self.jwks_refresh < MIN_JWKS_REFRESH {
            return Err("identity.jwks_refresh: must be at least 1m".into());
        }
        if self.unknown_kid_cooldown < MIN_UNKNOWN_KID_COOLDOWN {
            return Err("identity.unknown_kid_cooldown: must be at least 1s".into());
        }
        if self.token_cache > 1_000_000 {
            return Err("identity.token_cache: at most 1000000 tokens".into());
        }
        if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&self.max_token_bytes) {
            return Err(format!(
                "identity.max_token_bytes: must be between {MIN_TOKEN_BYTES} and {MAX_TOKEN_BYTES}"
            ));
        }
        if let Some(resource) = &self.resource {
            check_url("identity.resource", resource)?;
        }
        Ok(())
    }

    /// `authority` without a trailing slash.
    pub(crate) fn authority_base(&self) -> &str {
        self.authority.trim_end_matches('/')
    }

    /// The discovery document of `tenant`.
    pub(crate) fn discovery_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}/v2.0/.well-known/openid-configuration",
            self.authority_base()
        )
    }

    /// The v2 issuer (and authorization server) of `tenant`.
    pub(crate) fn v2_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.authority_base())
    }

    /// The v1 issuer of `tenant` (note the trailing slash, as Entra writes it).
    pub(crate) fn v1_issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/", self.v1_issuer_base.trim_end_matches('/'))
    }
}

/// `8-4-4-4-12` hexadecimal digits: a tenant, object or subscription id.
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `c1` … `c99`.
fn is_auth_context(value: &str) -> bool {
    value
        .strip_prefix('c')
        .and_then(|n| n.parse::<u8>().ok())
        .is_some_and(|n| (1..=99).contains(&n) && !value[1..].starts_with('0'))
}

fn check_words(key: &str, values: &[String]) -> Result<(), String> {
    for value in values {
        if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(format!(
                "{key}: {value:?} must be non-empty, without spaces or quotes"
            ));
        }
    }
    Ok(())
}

/// An absolute URL; `http` only for loopback hosts.
fn check_url(key: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{key}: {value:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{key}: {value:?} must use https (http is only allowed for localhost)"
            ));
        }
        _ => return Err(format!("{key}: {value:?} must be an https URL")),
    }
    if url.host().is_none() {
        return Err(format!("{key}: {value:?} has no host"));
    }
    Ok(url)
}

/// A URL that paths are appended to: no query or fragment.
fn check_base_url(key: &str, value: &str) -> Result<(), String> {
    let url = check_url(key, value)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{key}: {value:?} must not have a query or fragment"
        ));
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> IdentityConfig {
        IdentityConfig {
            tenants: vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".into()],
            audiences: vec!["api://warden".into()],
            ..IdentityConfig::default()
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let config: IdentityConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(config.authority, "https://login.microsoftonline.com");
        assert_eq!(config.v1_issuer_base, "https://sts.windows.net");
        assert_eq!(config.clock_skew, Duration::from_secs(120));
        assert_eq!(config.jwks_refresh, Duration::from_secs(3600));
        assert_eq!(config.unknown_kid_cooldown, Duration::from_secs(300));
        assert_eq!(config.max_token_bytes, 16384);
        assert_eq!(config.groups_overage, GroupsOveragePolicy::Deny);
        assert!(!config.allow_anonymous);
        assert!(config.resource.is_none());
    }

    #[test]
    fn deserializes_humantime_and_policy() {
        let config: IdentityConfig = serde_json::from_value(serde_json::json!({
            "tenants": ["72f988bf-86f1-41af-91ab-2d7cd011db47"],
            "audiences": ["api://warden"],
            "clock_skew": "30s",
            "jwks_refresh": "2h",
            "unknown_kid_cooldown": "1m",
            "groups_overage": "allow",
        }))
        .unwrap();
        assert_eq!(config.clock_skew, Duration::from_secs(30));
        assert_eq!(config.jwks_refresh, Duration::from_secs(7200));
        assert_eq!(config.unknown_kid_cooldown, Duration::from_secs(60));
        assert_eq!(config.groups_overage, GroupsOveragePolicy::Allow);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let result: Result<IdentityConfig, _> =
            serde_json::from_value(serde_json::json!({ "tenant": "x" }));
        assert!(result.is_err());
        let result: Result<IdentityConfig, _> =
            serde_json::from_value(serde_json::json!({ "groups_overage": "ignore" }));
        assert!(result.is_err());
    }

    type Change = Box<dyn FnOnce(&mut IdentityConfig)>;

    fn error_of(change: impl FnOnce(&mut IdentityConfig)) -> String {
        let mut config = valid();
        change(&mut config);
        config.validate().unwrap_err()
    }

    #[test]
    fn validation_names_the_key() {
        let cases: Vec<(&str, Change)> = vec![
            ("identity.tenants", Box::new(|c| c.tenants.clear())),
            (
                "identity.tenants",
                Box::new(|c| c.tenants = vec!["common".into()]),
            ),
            ("identity.audiences", Box::new(|c| c.audiences.clear())),
            (
                "identity.audiences",
                Box::new(|c| c.audiences = vec!["a b".into()]),
            ),
            (
                "identity.authority",
                Box::new(|c| c.authority = "http://login.example.com".into()),
            ),
            (
                "identity.authority",
                Box::new(|c| c.authority = "not a url".into()),
            ),
            (
                "identity.v1_issuer_base",
                Box::new(|c| c.v1_issuer_base = "ftp://x".into()),
            ),
            (
                "identity.client_apps",
                Box::new(|c| c.client_apps = vec!["app".into()]),
            ),
            (
                "identity.mfa_auth_contexts",
                Box::new(|c| c.mfa_auth_contexts = vec!["c0".into()]),
            ),
            (
                "identity.mfa_auth_contexts",
                Box::new(|c| c.mfa_auth_contexts = vec!["c100".into()]),
            ),
            (
                "identity.required_scopes",
                Box::new(|c| c.required_scopes = vec!["".into()]),
            ),
            (
                "identity.required_app_roles",
                Box::new(|c| c.required_app_roles = vec!["a\"b".into()]),
            ),
            (
                "identity.clock_skew",
                Box::new(|c| c.clock_skew = Duration::from_secs(301)),
            ),
            (
                "identity.jwks_refresh",
                Box::new(|c| c.jwks_refresh = Duration::from_secs(59)),
            ),
            (
                "identity.unknown_kid_cooldown",
                Box::new(|c| c.unknown_kid_cooldown = Duration::ZERO),
            ),
            (
                "identity.max_token_bytes",
                Box::new(|c| c.max_token_bytes = 100),
            ),
            (
                "identity.resource",
                Box::new(|c| c.resource = Some("/mcp".into())),
            ),
        ];
        for (key, change) in cases {
            let error = error_of(change);
            assert!(error.starts_with(key), "{error:?} should name {key}");
        }
    }

    #[test]
    fn anonymous_needs_no_tenant_and_loopback_http_is_allowed() {
        let config = IdentityConfig {
            allow_anonymous: true,
            tenants: Vec::new(),
            authority: "http://127.0.0.1:8080/".into(),
            resource: Some("http://localhost:8787/mcp".into()),
            mfa_auth_contexts: vec!["c1".into(), "c99".into()],
            ..valid()
        };
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.discovery_url("t"),
            "http://127.0.0.1:8080/t/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn issuers_follow_entra_formats() {
        let config = valid();
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_eq!(
            config.v1_issuer(tenant),
            "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"
        );
        assert_eq!(
            config.v2_issuer(tenant),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
        );
    }

    #[test]
    fn guid_shapes() {
        assert!(is_guid("11111111-2222-4333-8444-555555555555"));
        assert!(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        assert!(!is_guid("00000000-0000-4000-8000-00000000dev0"));
        assert!(!is_guid("11111111222243338444555555555555"));
    }
}
