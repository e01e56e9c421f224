//! RFC 8707 `resource` indicators: canonicalisation and the check against
//! Warden's own MCP URL.
//!
//! Clients must send `resource` in the authorization and token requests;
//! Entra ID refuses it, so Warden binds its own tokens to the resource and
//! never forwards the parameter. The canonical form lower-cases the scheme
//! and the host, drops a default port, resolves dot segments and trims one
//! trailing slash from the path (`https://Warden.example.com:443/mcp/` →
//! `https://warden.example.com/mcp`), because clients disagree on the slash
//! (vscode #262278, claude-code #52871). Anything else (path case, query,
//! percent-encoding) must match exactly.

use url::Url;

/// Longest `resource` value looked at.
pub const MAX_RESOURCE_LEN: usize = 2000;

/// Why a `resource` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Not an absolute `http`/`https` URL without fragment and user
    /// information.
    #[error("resource {value:?} is not an absolute http(s) URL without fragment: {reason}")]
    Malformed {
        /// The value as given (cut to 200 characters).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A well-formed URL, but not Warden's MCP endpoint.
    #[error("resource {value:?} is not this server's MCP endpoint")]
    InvalidTarget {
        /// The canonical form of the value.
        value: String,
    },
}

impl ResourceError {
    /// The OAuth error code for the response: always `invalid_target`
    /// (RFC 8707 §2), whether the value was malformed or foreign.
    pub fn error_code(&self) -> &'static str {
        "invalid_target"
    }
}

/// A resource URL in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalResource(String);

impl CanonicalResource {
    /// Canonicalises `value`; see the module documentation.
    pub fn parse(value: &str) -> Result<Self, ResourceError> {
        let malformed = |reason: &str| ResourceError::Malformed {
            value: value.chars().take(200).collect(),
            reason: reason.to_owned(),
        };
        if value.len() > MAX_RESOURCE_LEN {
            return Err(malformed("too long"));
        }
        if value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(malformed(
                "contains whitespace, a control character or a backslash",
            ));
        }
        if value.contains('#') {
            return Err(malformed("contains a fragment"));
        }
        let url = Url::parse(value).map_err(|e| malformed(&e.to_string()))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(malformed("scheme is not http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(malformed("contains user information"));
        }
        let Some(host) = url.host_str() else {
            return Err(malformed("no host"));
        };
        let mut out = format!("{}://{host}", url.scheme());
        if let Some(port) = url.port() {
            out.push_str(&format!(":{port}"));
        }
        let path = url.path();
        out.push_str(path.strip_suffix('/').unwrap_or(path));
        if let Some(query) = url.query() {
            out.push('?');
            out.push_str(query);
        }
        Ok(Self(out))
    }

    /// The canonical string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CanonicalResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the `resource` parameters of a request (zero or more; RFC 8707
/// allows several) against Warden's canonical MCP URL. None → Warden's URL
/// (the default resource); every value must canonicalise to it, otherwise
/// `invalid_target`.
pub fn check_resource(
    values: &[&str],
    ours: &CanonicalResource,
) -> Result<CanonicalResource, ResourceError> {
    for value in values {
        let canonical = CanonicalResource::parse(value)?;
        if canonical != *ours {
            return Err(ResourceError::InvalidTarget { value: canonical.0 });
        }
    }
    Ok(ours.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(value: &str) -> String {
        CanonicalResource::parse(value)
            .unwrap_or_else(|e| panic!("{value}: {e}"))
            .0
    }

    #[test]
    fn canonicalises() {
        for (value, expected) in [
            (
                "https://warden.example.com/mcp",
                "https://warden.example.com/mcp",
            ),
            (
                "https://warden.example.com/mcp/",
                "https://warden.example.com/mcp",
            ),
            (
                "HTTPS://Warden.Example.COM/mcp",
                "https://warden.example.com/mcp",
            ),
            (
                "https://warden.example.com:443/mcp",
                "https://warden.example.com/mcp",
            ),
            (
                "https://warden.example.com:8443/mcp",
                "https://warden.example.com:8443/mcp",
            ),
            ("http://127.0.0.1:80/mcp/", "http://127.0.0.1/mcp"),
            ("https://warden.example.com", "https://warden.example.com"),
            ("https://warden.example.com/", "https://warden.example.com"),
            (
                "https://warden.example.com/a/../mcp",
                "https://warden.example.com/mcp",
            ),
            (
                "https://warden.example.com/mcp?x=1",
                "https://warden.example.com/mcp?x=1",
            ),
            ("http://[::1]:8080/mcp", "http://[::1]:8080/mcp"),
        ] {
            assert_eq!(canon(value), expected, "{value}");
        }
    }

    #[test]
    fn only_one_trailing_slash_is_trimmed() {
        assert_eq!(
            canon("https://warden.example.com/mcp//"),
            "https://warden.example.com/mcp/"
        );
    }

    #[test]
    fn refuses_malformed() {
        for value in [
            "",
            "warden.example.com/mcp",
            "/mcp",
            "urn:warden",
            "ftp://warden.example.com/mcp",
            "https://warden.example.com/mcp#frag",
            "https://warden.example.com/mcp#",
            "https://user@warden.example.com/mcp",
            "https://warden.example.com/ mcp",
            "https://warden.example.com\\@evil/mcp",
            "https://",
        ] {
            let err = CanonicalResource::parse(value).unwrap_err();
            assert!(
                matches!(err, ResourceError::Malformed { .. }),
                "{value}: {err:?}"
            );
            assert_eq!(err.error_code(), "invalid_target");
        }
        let long = format!("https://w.example/{}", "a".repeat(MAX_RESOURCE_LEN));
        assert!(CanonicalResource::parse(&long).is_err());
    }

    fn ours() -> CanonicalResource {
        CanonicalResource::parse("https://warden.example.com/mcp").unwrap()
    }

    #[test]
    fn absent_means_ours() {
        assert_eq!(check_resource(&[], &ours()), Ok(ours()));
    }

    #[test]
    fn equal_after_canonicalisation_is_accepted() {
        for value in [
            "https://warden.example.com/mcp",
            "https://warden.example.com/mcp/",
            "https://WARDEN.example.com:443/mcp",
        ] {
            assert_eq!(check_resource(&[value], &ours()), Ok(ours()), "{value}");
        }
        assert_eq!(
            check_resource(
                &[
                    "https://warden.example.com/mcp",
                    "https://warden.example.com/mcp/"
                ],
                &ours()
            ),
            Ok(ours())
        );
    }

    #[test]
    fn anything_else_is_invalid_target() {
        for value in [
            "https://warden.example.com",
            "https://warden.example.com/MCP",
            "https://warden.example.com/mcp/x",
            "https://warden.example.com/mcp?x=1",
            "http://warden.example.com/mcp",
            "https://warden.example.com:8443/mcp",
            "https://warden.example.com.evil.com/mcp",
            "https://management.azure.com",
            "https://warden.example.com/mcp%2F",
        ] {
            let err = check_resource(&[value], &ours()).unwrap_err();
            assert!(
                matches!(err, ResourceError::InvalidTarget { .. }),
                "{value}: {err:?}"
            );
            assert_eq!(err.error_code(), "invalid_target");
        }
        // one foreign value among good ones spoils the request
        assert!(
            check_resource(
                &["https://warden.example.com/mcp", "https://evil.example/mcp"],
                &ours()
            )
            .is_err()
        );
    }
}
