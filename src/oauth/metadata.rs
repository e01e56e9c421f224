//! The issuer, the RFC 8414 authorization-server metadata document and the
//! paths it is served at.
//!
//! # Where the document is served
//!
//! [`well_known_paths`] lists every path, on the issuer's origin, that
//! must answer with the same document:
//!
//! - RFC 8414 §3.1: `/.well-known/oauth-authorization-server` followed by
//!   the issuer's path (nothing for `https://warden.example.com`);
//! - the same with the issuer's path appended instead of inserted
//!   (`/warden/.well-known/oauth-authorization-server`), which some clients
//!   build for an issuer with a path;
//! - `/.well-known/oauth-authorization-server` followed by the MCP
//!   endpoint's path (`…/mcp`): clients following the 2025-03-26 revision
//!   derive the metadata URL from the MCP server URL, not from an issuer;
//! - the bare `/.well-known/oauth-authorization-server`, which 2025-03-26
//!   clients use when the MCP URL has no path, whatever the issuer.
//!
//! `/.well-known/openid-configuration` is deliberately **not** served:
//! Warden is not an OpenID provider (it issues no ID tokens, has no JWKS
//! or userinfo endpoint), and an OpenID Connect discovery document would
//! have to claim `jwks_uri`, `subject_types_supported` and
//! `id_token_signing_alg_values_supported`, inviting clients to ask for
//! and validate ID tokens that never come. Every MCP revision that allows
//! OIDC discovery (2025-11-25 on) has clients try the RFC 8414 URL first,
//! and every revision before requires RFC 8414, so nothing is lost; a
//! client that only speaks OIDC discovery would get a 404 and an honest
//! error instead of a half-valid document.

use serde::Serialize;
use url::Url;

/// Path of the authorization endpoint, below the issuer.
pub const AUTHORIZE_PATH: &str = "/authorize";
/// Path of the token endpoint, below the issuer.
pub const TOKEN_PATH: &str = "/token";
/// Path of the dynamic registration endpoint, below the issuer.
pub const REGISTER_PATH: &str = "/register";
/// Path of the revocation endpoint, below the issuer.
pub const REVOKE_PATH: &str = "/revoke";
/// The RFC 8414 well-known suffix.
pub const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// The scope that asks for a refresh token in OpenID-minded clients; always
/// listed in `scopes_supported`, never required.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// Why an issuer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// Not an absolute URL.
    #[error("{value:?} is not an absolute URL: {reason}")]
    Malformed {
        /// The value.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// `http` on something else than a loopback host, or another scheme.
    #[error("{0:?} must use https (http only on 127.0.0.1, [::1] or localhost)")]
    Scheme(String),
    /// Has a query, fragment or user information (RFC 8414 §2).
    #[error("{0:?} must not have a query, a fragment or user information")]
    Parts(String),
    /// Ends with `/`.
    #[error("{0:?} must not end with '/'; write it as {1:?}")]
    TrailingSlash(String, String),
    /// Parses, but prints differently.
    #[error("{0:?} is not in normal form; write it as {1:?}")]
    NotNormal(String, String),
}

/// Warden's issuer identifier: the public base URL of the authorization
/// server, `https` without query, fragment or trailing slash, e.g.
/// `https://warden.example.com` or `https://example.com/warden`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    text: String,
    origin: String,
    path: String,
}

impl Issuer {
    /// Checks and parses an issuer. `http` is accepted only on a loopback
    /// host (tests, `warden dev`).
    pub fn parse(value: &str) -> Result<Self, IssuerError> {
        let url = Url::parse(value).map_err(|e| IssuerError::Malformed {
            value: value.to_owned(),
            reason: e.to_string(),
        })?;
        let loopback = match url.host() {
            Some(url::Host::Domain(domain)) => domain == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(IssuerError::Scheme(value.to_owned())),
        }
        if value.contains('?')
            || value.contains('#')
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(IssuerError::Parts(value.to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(IssuerError::Malformed {
                value: value.to_owned(),
                reason: "no host".into(),
            });
        }
        let origin = url.origin().ascii_serialization();
        let path = url.path().trim_end_matches('/');
        let expected = format!("{origin}{path}");
        if value.ends_with('/') {
            return Err(IssuerError::TrailingSlash(value.to_owned(), expected));
        }
        if value != expected {
            return Err(IssuerError::NotNormal(value.to_owned(), expected));
        }
        Ok(Self {
            origin,
            path: path.to_owned(),
            text: expected,
        })
    }

    /// The issuer identifier, exactly as published in `issuer` and in the
    /// `iss` authorization-response parameter (RFC 9207).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Scheme, host and port, e.g. `https://warden.example.com`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The issuer's path, empty or starting with `/` (never ending with it).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The absolute URL of `endpoint_path` (one of the `*_PATH` constants)
    /// below the issuer.
    pub fn endpoint(&self, endpoint_path: &str) -> String {
        format!("{}{endpoint_path}", self.text)
    }
}

/// What the metadata document depends on besides the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOptions {
    /// Whether `/register` is served (`oauth.dcr.enabled`).
    pub dcr_enabled: bool,
    /// Whether metadata-document client ids are accepted
    /// (`oauth.cimd.enabled`).
    pub cimd_enabled: bool,
    /// Warden's scopes (`oauth.scopes`); `offline_access` is added.
    pub scopes: Vec<String>,
    /// The step-up scope (`oauth.step_up_scope`), when Warden offers a
    /// step-up (an MFA authentication context is configured).
    pub step_up_scope: Option<String>,
}

/// The RFC 8414 authorization-server metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier.
    pub issuer: String,
    /// `{issuer}/authorize`
    pub authorization_endpoint: String,
    /// `{issuer}/token`
    pub token_endpoint: String,
    /// `{issuer}/register`, only when dynamic registration is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// `{issuer}/revoke` (RFC 7009).
    pub revocation_endpoint: String,
    /// `["code"]`
    pub response_types_supported: Vec<&'static str>,
    /// `["query"]`
    pub response_modes_supported: Vec<&'static str>,
    /// `["authorization_code", "refresh_token"]`
    pub grant_types_supported: Vec<&'static str>,
    /// `["S256"]`
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// `["none"]`: public clients only.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// `["none"]`
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Warden's scopes, the step-up scope when offered, and
    /// `offline_access`.
    pub scopes_supported: Vec<String>,
    /// `client_id` may be an HTTPS URL of a metadata document (true unless
    /// `oauth.cimd.enabled = false`).
    pub client_id_metadata_document_supported: bool,
    /// `true`: authorization responses carry `iss` (RFC 9207).
    pub authorization_response_iss_parameter_supported: bool,
}

/// Builds the metadata document.
pub fn metadata(issuer: &Issuer, options: &MetadataOptions) -> AuthorizationServerMetadata {
    let mut scopes = options.scopes.clone();
    if let Some(step_up) = &options.step_up_scope
        && !scopes.contains(step_up)
    {
        scopes.push(step_up.clone());
    }
    if !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
        scopes.push(OFFLINE_ACCESS.to_owned());
    }
    AuthorizationServerMetadata {
        issuer: issuer.as_str().to_owned(),
        authorization_endpoint: issuer.endpoint(AUTHORIZE_PATH),
        token_endpoint: issuer.endpoint(TOKEN_PATH),
        registration_endpoint: options.dcr_enabled.then(|| issuer.endpoint(REGISTER_PATH)),
        revocation_endpoint: issuer.endpoint(REVOKE_PATH),
        response_types_supported: vec!["code"],
        response_modes_supported: vec!["query"],
        grant_types_supported: vec!["authorization_code", "refresh_token"],
        code_challenge_methods_supported: vec!["S256"],
        token_endpoint_auth_methods_supported: vec!["none"],
        revocation_endpoint_auth_methods_supported: vec!["none"],
        scopes_supported: scopes,
        client_id_metadata_document_supported: options.cimd_enabled,
        authorization_response_iss_parameter_supported: true,
    }
}

/// Every path on the issuer's origin that serves the metadata document;
/// `mcp_path` is the path of the MCP endpoint (`/mcp`). Sorted, no
/// duplicates. See the module documentation for why each is there.
pub fn well_known_paths(issuer: &Issuer, mcp_path: &str) -> Vec<String> {
    let mcp_path = mcp_path.trim_end_matches('/');
    let mut paths = vec![
        WELL_KNOWN.to_owned(),
        format!("{WELL_KNOWN}{}", issuer.path()),
        format!("{}{WELL_KNOWN}", issuer.path()),
    ];
    if mcp_path.starts_with('/') {
        paths.push(format!("{WELL_KNOWN}{mcp_path}"));
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The URL clients following RFC 8414 fetch for this issuer.
pub fn metadata_url(issuer: &Issuer) -> String {
    format!("{}{WELL_KNOWN}{}", issuer.origin(), issuer.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(value: &str) -> Issuer {
        Issuer::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    #[test]
    fn accepts_issuers() {
        for (value, origin, path) in [
            (
                "https://warden.example.com",
                "https://warden.example.com",
                "",
            ),
            (
                "https://warden.example.com:8443",
                "https://warden.example.com:8443",
                "",
            ),
            (
                "https://example.com/warden",
                "https://example.com",
                "/warden",
            ),
            ("https://example.com/a/b", "https://example.com", "/a/b"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080", ""),
            ("http://localhost:8080", "http://localhost:8080", ""),
            ("http://[::1]:8080", "http://[::1]:8080", ""),
        ] {
            let i = issuer(value);
            assert_eq!(i.as_str(), value);
            assert_eq!(i.origin(), origin);
            assert_eq!(i.path(), path);
        }
    }

    #[test]
    fn refuses_bad_issuers() {
        use IssuerError::*;
        type Check = fn(&IssuerError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("warden.example.com", |e| matches!(e, Malformed { .. })),
            ("", |e| matches!(e, Malformed { .. })),
            ("http://warden.example.com", |e| matches!(e, Scheme(_))),
            ("ftp://warden.example.com", |e| matches!(e, Scheme(_))),
            ("https://warden.example.com?x=1", |e| matches!(e, Parts(_))),
            ("https://warden.example.com?", |e| matches!(e, Parts(_))),
            ("https://warden.example.com#x", |e| matches!(e, Parts(_))),
            ("https://u@warden.example.com", |e| matches!(e, Parts(_))),
            (
                "https://warden.example.com/",
                |e| matches!(e, TrailingSlash(_, n) if n == "https://warden.example.com"),
            ),
            (
                "https://example.com/warden/",
                |e| matches!(e, TrailingSlash(_, n) if n == "https://example.com/warden"),
            ),
            (
                "https://Warden.example.com",
                |e| matches!(e, NotNormal(_, n) if n == "https://warden.example.com"),
            ),
            (
                "https://warden.example.com:443",
                |e| matches!(e, NotNormal(_, n) if n == "https://warden.example.com"),
            ),
            (
                "https://example.com/a/../warden",
                |e| matches!(e, NotNormal(_, n) if n == "https://example.com/warden"),
            ),
            ("https://example.com/war den", |e| {
                matches!(e, NotNormal(..))
            }),
        ];
        for (value, check) in cases {
            match Issuer::parse(value) {
                Ok(_) => panic!("{value:?} was accepted"),
                Err(e) => assert!(check(&e), "{value:?}: {e:?}"),
            }
        }
    }

    fn options(dcr: bool) -> MetadataOptions {
        MetadataOptions {
            dcr_enabled: dcr,
            cimd_enabled: true,
            scopes: vec!["mcp".into()],
            step_up_scope: Some("mfa".into()),
        }
    }

    #[test]
    fn document_with_dcr() {
        let doc = metadata(&issuer("https://warden.example.com"), &options(true));
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "issuer": "https://warden.example.com",
                "authorization_endpoint": "https://warden.example.com/authorize",
                "token_endpoint": "https://warden.example.com/token",
                "registration_endpoint": "https://warden.example.com/register",
                "revocation_endpoint": "https://warden.example.com/revoke",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "revocation_endpoint_auth_methods_supported": ["none"],
                "scopes_supported": ["mcp", "mfa", "offline_access"],
                "client_id_metadata_document_supported": true,
                "authorization_response_iss_parameter_supported": true,
            })
        );
    }

    #[test]
    fn document_without_dcr_has_no_registration_endpoint() {
        let doc = metadata(&issuer("https://warden.example.com"), &options(false));
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json.get("registration_endpoint").is_none());
        assert_eq!(
            json["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        let text = serde_json::to_string(&doc).unwrap();
        assert!(!text.contains("register"));
        assert!(!text.contains("plain"));
    }

    #[test]
    fn endpoints_follow_an_issuer_path_and_offline_access_is_not_doubled() {
        let doc = metadata(
            &issuer("https://example.com/warden"),
            &MetadataOptions {
                dcr_enabled: true,
                cimd_enabled: false,
                scopes: vec!["mcp".into(), "offline_access".into()],
                step_up_scope: None,
            },
        );
        assert_eq!(doc.issuer, "https://example.com/warden");
        assert_eq!(doc.token_endpoint, "https://example.com/warden/token");
        assert_eq!(
            doc.registration_endpoint.as_deref(),
            Some("https://example.com/warden/register")
        );
        assert_eq!(doc.scopes_supported, vec!["mcp", "offline_access"]);
        assert!(!doc.client_id_metadata_document_supported);
        assert!(doc.authorization_response_iss_parameter_supported);
    }

    #[test]
    fn issuer_in_document_equals_the_issuer_the_url_was_built_from() {
        // MCP clients refuse metadata whose issuer differs from the one they
        // derived the URL from.
        for value in ["https://warden.example.com", "https://example.com/warden"] {
            let i = issuer(value);
            assert_eq!(metadata(&i, &options(true)).issuer, value);
            let url = metadata_url(&i);
            let derived = url.replacen(WELL_KNOWN, "", 1);
            assert_eq!(derived, value);
        }
    }

    #[test]
    fn well_known_paths_without_issuer_path() {
        assert_eq!(
            well_known_paths(&issuer("https://warden.example.com"), "/mcp"),
            vec![
                "/.well-known/oauth-authorization-server",
                "/.well-known/oauth-authorization-server/mcp",
            ]
        );
        assert_eq!(
            well_known_paths(&issuer("https://warden.example.com"), "/"),
            vec!["/.well-known/oauth-authorization-server"]
        );
    }

    #[test]
    fn well_known_paths_with_issuer_path() {
        assert_eq!(
            well_known_paths(&issuer("https://example.com/warden"), "/warden/mcp/"),
            vec![
                "/.well-known/oauth-authorization-server",
                "/.well-known/oauth-authorization-server/warden",
                "/.well-known/oauth-authorization-server/warden/mcp",
                "/warden/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            metadata_url(&issuer("https://example.com/warden")),
            "https://example.com/.well-known/oauth-authorization-server/warden"
        );
        assert!(
            !well_known_paths(&issuer("https://example.com/warden"), "/mcp")
                .iter()
                .any(|p| p.contains("openid-configuration"))
        );
    }
}
