//! Redirect URI rules: what a client may register, and which requested
//! `redirect_uri` matches a registration.
//!
//! Registration ([`RedirectUri::parse`], [`validate_registration`]):
//!
//! - a well-formed absolute URL of at most [`MAX_REDIRECT_URI_LEN`]
//!   characters, written in normal form (what the URL parser would print:
//!   lower-case scheme and host, no default port, no `127.1` shorthands);
//!   a path-less URL such as `http://127.0.0.1:33418` is accepted as the
//!   only exception;
//! - `https`, or `http` on a loopback host written as `127.0.0.1`, `[::1]`
//!   or `localhost`;
//! - no fragment (not even an empty `#`), no user information, no `*`, no
//!   whitespace, control characters or backslashes;
//! - one to [`MAX_REDIRECT_URIS`] URIs, none listed twice.
//!
//! Matching ([`RedirectUri::matches`], [`find_match`]) is an exact string
//! comparison, except for `http` loopback registrations (RFC 8252 §7.3):
//! there any port matches as long as the host literal, the path and the
//! query are the same. `localhost` never matches `127.0.0.1` (or `[::1]`):
//! a client that registered one gets exactly that one.

use url::{Host, Url};

/// Most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;
/// Longest redirect URI accepted, in bytes.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Why a redirect URI, or a list of them, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    /// The list is empty.
    #[error("at least one redirect URI is required")]
    Empty,
    /// More than [`MAX_REDIRECT_URIS`] URIs.
    #[error("at most {MAX_REDIRECT_URIS} redirect URIs may be registered, got {0}")]
    TooMany(usize),
    /// Longer than [`MAX_REDIRECT_URI_LEN`].
    #[error("a redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters")]
    TooLong,
    /// Whitespace, a control character or a backslash.
    #[error("redirect URI {uri:?} contains whitespace, a control character or a backslash")]
    Characters {
        /// The URI as given.
        uri: String,
    },
    /// Not an absolute URL.
    #[error("redirect URI {uri:?} is not a valid absolute URL: {reason}")]
    Malformed {
        /// The URI as given.
        uri: String,
        /// The parser's complaint.
        reason: String,
    },
    /// Neither `https` nor `http` on a loopback host.
    #[error(
        "redirect URI {uri:?} must use https, or http on a loopback host (127.0.0.1, [::1], localhost)"
    )]
    Scheme {
        /// The URI as given.
        uri: String,
    },
    /// Has a fragment.
    #[error("redirect URI {uri:?} must not contain a fragment (#)")]
    Fragment {
        /// The URI as given.
        uri: String,
    },
    /// Has a `*`.
    #[error("redirect URI {uri:?} must not contain a wildcard (*)")]
    Wildcard {
        /// The URI as given.
        uri: String,
    },
    /// Has `user:password@`.
    #[error("redirect URI {uri:?} must not contain user information (user@)")]
    UserInfo {
        /// The URI as given.
        uri: String,
    },
    /// Parses, but prints differently.
    #[error("redirect URI {uri:?} is not in normal form; write it as {normal:?}")]
    NotNormal {
        /// The URI as given.
        uri: String,
        /// How the URL parser prints it.
        normal: String,
    },
    /// The same URI twice in one registration.
    #[error("redirect URI {uri:?} is listed twice")]
    Duplicate {
        /// The URI as given.
        uri: String,
    },
    /// A requested `redirect_uri` matches no registered one.
    #[error("the redirect URI is not registered for this client")]
    NotRegistered,
}

/// How a loopback host was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopbackHost {
    /// `127.0.0.1`
    Ipv4,
    /// `[::1]`
    Ipv6,
    /// `localhost`
    Localhost,
}

/// A redirect URI that passed the registration rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri {
    text: String,
    host: String,
    loopback: Option<Loopback>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Loopback {
    host: LoopbackHost,
    /// Path, then `?query` if there is one.
    path_and_query: String,
}

impl RedirectUri {
    /// Checks one URI against the registration rules.
    pub fn parse(uri: &str) -> Result<Self, RedirectError> {
        if uri.len() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectError::TooLong);
        }
        let owned = || uri.to_owned();
        if uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(RedirectError::Characters { uri: owned() });
        }
        if uri.contains('#') {
            return Err(RedirectError::Fragment { uri: owned() });
        }
        if uri.contains('*') {
            return Err(RedirectError::Wildcard { uri: owned() });
        }
        let url = Url::parse(uri).map_err(|e| RedirectError::Malformed {
            uri: owned(),
            reason: e.to_string(),
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectError::UserInfo { uri: owned() });
        }
        let loopback_host = match url.host() {
            Some(Host::Ipv4(ip)) if ip.is_loopback() && ip.octets() == [127, 0, 0, 1] => {
                Some(LoopbackHost::Ipv4)
            }
            Some(Host::Ipv6(ip)) if ip == std::net::Ipv6Addr::LOCALHOST => Some(LoopbackHost::Ipv6),
            Some(Host::Domain("localhost")) => Some(LoopbackHost::Localhost),
            _ => None,
        };
        let loopback = match (url.scheme(), loopback_host) {
            ("https", _) => None,
            ("http", Some(host)) => Some(host),
            _ => return Err(RedirectError::Scheme { uri: owned() }),
        };
        let Some(host) = url.host_str() else {
            return Err(RedirectError::Malformed {
                uri: owned(),
                reason: "no host".into(),
            });
        };
        let normal = url.as_str();
        let path_less = url.path() == "/"
            && url.query().is_none()
            && normal.len() == uri.len() + 1
            && normal.ends_with('/')
            && normal.starts_with(uri);
        if normal != uri && !path_less {
            return Err(RedirectError::NotNormal {
                uri: owned(),
                normal: normal.to_owned(),
            });
        }
        let loopback = loopback.map(|host| Loopback {
            host,
            path_and_query: match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            },
        });
        Ok(Self {
            text: uri.to_owned(),
            host: host.to_owned(),
            loopback,
        })
    }

    /// The URI exactly as registered (or requested).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host, as the consent page must show it (`claude.ai`,
    /// `127.0.0.1`, `[::1]`, `localhost`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// An `http` loopback URI: the consent page should warn that the code
    /// goes to a program on the user's own machine, and any port matches.
    pub fn is_loopback(&self) -> bool {
        self.loopback.is_some()
    }

    /// How the loopback host was written, if this is a loopback URI.
    pub fn loopback_host(&self) -> Option<LoopbackHost> {
        self.loopback.as_ref().map(|l| l.host)
    }

    /// Whether `requested` (a `redirect_uri` parameter) matches this
    /// registration. Returns the requested URI, which is where the
    /// response goes (it differs from `self` only in a loopback port).
    pub fn matches(&self, requested: &str) -> Option<RedirectUri> {
        if requested == self.text {
            return Some(self.clone());
        }
        let registered = self.loopback.as_ref()?;
        let candidate = RedirectUri::parse(requested).ok()?;
        let asked = candidate.loopback.as_ref()?;
        (asked.host == registered.host && asked.path_and_query == registered.path_and_query)
            .then_some(candidate)
    }
}

/// Checks a client's list of redirect URIs (registration, CIMD document,
/// configuration).
pub fn validate_registration<S: AsRef<str>>(uris: &[S]) -> Result<Vec<RedirectUri>, RedirectError> {
    if uris.is_empty() {
        return Err(RedirectError::Empty);
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(RedirectError::TooMany(uris.len()));
    }
    let mut out: Vec<RedirectUri> = Vec::with_capacity(uris.len());
    for uri in uris {
        let parsed = RedirectUri::parse(uri.as_ref())?;
        if out.iter().any(|seen| seen.text == parsed.text) {
            return Err(RedirectError::Duplicate { uri: parsed.text });
        }
        out.push(parsed);
    }
    Ok(out)
}

/// The first registration `requested` matches, as the URI to redirect to;
/// [`RedirectError::NotRegistered`] when none does. A mismatch must be
/// shown on a local error page, never redirected.
pub fn find_match(
    registered: &[RedirectUri],
    requested: &str,
) -> Result<RedirectUri, RedirectError> {
    registered
        .iter()
        .find_map(|r| r.matches(requested))
        .ok_or(RedirectError::NotRegistered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(uri: &str) -> RedirectUri {
        RedirectUri::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"))
    }

    fn err(uri: &str) -> RedirectError {
        match RedirectUri::parse(uri) {
            Ok(_) => panic!("{uri} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_https_and_http_loopback() {
        for uri in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://vscode.dev/redirect",
            "https://example.com/cb?x=1&y=2",
            "https://example.com:8443/cb",
            "https://10.0.0.5/cb",
            "https://localhost/cb",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
            "http://127.0.0.1:33418",
            "http://[::1]:9000/callback",
            "http://localhost:61234/callback",
            "http://localhost/cb?state=keep",
        ] {
            ok(uri);
        }
    }

    #[test]
    fn refuses_other_schemes_and_http_elsewhere() {
        for uri in [
            "http://example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "http://localhost.evil.com/cb",
            "http://127.0.0.2/cb",
            "http://10.0.0.1/cb",
            "http://[::2]/cb",
            "ftp://example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "cursor://anysphere.cursor-retrieval/oauth/callback",
        ] {
            assert!(
                matches!(err(uri), RedirectError::Scheme { .. }),
                "{uri}: {:?}",
                err(uri)
            );
        }
    }

    #[test]
    fn refuses_fragments_even_empty() {
        assert!(matches!(
            err("https://claude.ai/cb#x"),
            RedirectError::Fragment { .. }
        ));
        assert!(matches!(
            err("https://claude.ai/cb#"),
            RedirectError::Fragment { .. }
        ));
        assert!(matches!(
            err("http://127.0.0.1:1/#"),
            RedirectError::Fragment { .. }
        ));
    }

    #[test]
    fn refuses_wildcards() {
        for uri in [
            "https://*.claude.ai/cb",
            "https://claude.ai/*",
            "http://localhost:*/cb",
            "https://claude.ai/cb?x=*",
        ] {
            assert!(matches!(err(uri), RedirectError::Wildcard { .. }), "{uri}");
        }
    }

    #[test]
    fn refuses_user_info() {
        for uri in [
            "https://evil.com@claude.ai/cb",
            "https://user:pw@claude.ai/cb",
            "http://x@127.0.0.1/cb",
        ] {
            assert!(matches!(err(uri), RedirectError::UserInfo { .. }), "{uri}");
        }
    }

    #[test]
    fn refuses_whitespace_control_and_backslash() {
        for uri in [
            " https://claude.ai/cb",
            "https://claude.ai/cb ",
            "https://claude.ai/c b",
            "https://claude.ai/cb\n",
            "https://claude.ai/\tcb",
            "https://claude.ai\\@evil.com/",
            "https://claude.ai/cb\u{0}",
        ] {
            assert!(
                matches!(err(uri), RedirectError::Characters { .. }),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn refuses_malformed() {
        for uri in [
            "",
            "claude.ai/cb",
            "/cb",
            "https://",
            "https://[::1/",
            "http://",
        ] {
            assert!(
                matches!(err(uri), RedirectError::Malformed { .. }),
                "{uri:?}: {:?}",
                err(uri)
            );
        }
    }

    #[test]
    fn refuses_non_normal_forms_naming_the_normal_one() {
        for (uri, normal) in [
            ("HTTPS://claude.ai/cb", "https://claude.ai/cb"),
            ("https://Claude.AI/cb", "https://claude.ai/cb"),
            ("https://claude.ai:443/cb", "https://claude.ai/cb"),
            ("http://localhost:80/cb", "http://localhost/cb"),
            ("http://127.1/cb", "http://127.0.0.1/cb"),
            ("http://0x7f.0.0.1/cb", "http://127.0.0.1/cb"),
            ("http://2130706433/cb", "http://127.0.0.1/cb"),
            ("http://[0:0:0:0:0:0:0:1]/cb", "http://[::1]/cb"),
            ("https:claude.ai/cb", "https://claude.ai/cb"),
            ("https://claude.ai/a/../cb", "https://claude.ai/cb"),
            ("http://127.0.0.1:1?x=1", "http://127.0.0.1:1/?x=1"),
        ] {
            assert_eq!(
                err(uri),
                RedirectError::NotNormal {
                    uri: uri.into(),
                    normal: normal.into()
                },
                "{uri}"
            );
        }
    }

    #[test]
    fn refuses_overlong() {
        let uri = format!("https://claude.ai/{}", "a".repeat(MAX_REDIRECT_URI_LEN));
        assert_eq!(err(&uri), RedirectError::TooLong);
        let fits = format!(
            "https://claude.ai/{}",
            "a".repeat(MAX_REDIRECT_URI_LEN - "https://claude.ai/".len())
        );
        ok(&fits);
    }

    #[test]
    fn registration_list_rules() {
        let empty: [&str; 0] = [];
        assert_eq!(validate_registration(&empty), Err(RedirectError::Empty));
        let ten: Vec<String> = (0..10).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(validate_registration(&ten).map(|v| v.len()), Ok(10));
        let eleven: Vec<String> = (0..11).map(|i| format!("https://a.example/{i}")).collect();
        assert_eq!(
            validate_registration(&eleven),
            Err(RedirectError::TooMany(11))
        );
        assert_eq!(
            validate_registration(&["https://a.example/cb", "https://a.example/cb"]),
            Err(RedirectError::Duplicate {
                uri: "https://a.example/cb".into()
            })
        );
        assert!(matches!(
            validate_registration(&["https://a.example/cb", "http://a.example/cb"]),
            Err(RedirectError::Scheme { .. })
        ));
    }

    #[test]
    fn host_and_loopback_accessors() {
        let uri = ok("https://claude.ai/api/mcp/auth_callback");
        assert_eq!(uri.host(), "claude.ai");
        assert!(!uri.is_loopback());
        assert_eq!(ok("http://[::1]:5/").host(), "[::1]");
        assert_eq!(
            ok("http://[::1]:5/").loopback_host(),
            Some(LoopbackHost::Ipv6)
        );
        assert_eq!(
            ok("http://localhost:5/").loopback_host(),
            Some(LoopbackHost::Localhost)
        );
        assert_eq!(
            ok("http://127.0.0.1/").loopback_host(),
            Some(LoopbackHost::Ipv4)
        );
        // https on a loopback host is an ordinary, exactly matched URI.
        assert!(!ok("https://localhost/cb").is_loopback());
    }

    fn vscode() -> Vec<RedirectUri> {
        validate_registration(&[
            "https://vscode.dev/redirect",
            "https://insiders.vscode.dev/redirect",
            "http://127.0.0.1/",
            "http://127.0.0.1:33418/",
        ])
        .unwrap()
    }

    #[test]
    fn vscode_registration_matches() {
        let reg = vscode();
        for (requested, expected) in [
            ("https://vscode.dev/redirect", true),
            ("https://insiders.vscode.dev/redirect", true),
            ("http://127.0.0.1:33418/", true),
            // the random-port fallback when 33418 is busy
            ("http://127.0.0.1:54321/", true),
            ("http://127.0.0.1/", true),
            ("http://127.0.0.1:54321", true),
            // trailing-slash churn is not papered over for https
            ("https://vscode.dev/redirect/", false),
            ("https://vscode.dev/redirect?x=1", false),
            ("https://vscode.dev:444/redirect", false),
            ("https://VSCODE.dev/redirect", false),
            ("http://vscode.dev/redirect", false),
            ("https://evil.vscode.dev/redirect", false),
            // another host literal, path or query is another URI
            ("http://localhost:54321/", false),
            ("http://[::1]:54321/", false),
            ("http://127.0.0.1:54321/cb", false),
            ("http://127.0.0.1:54321/?code=x", false),
            ("http://127.0.0.1:54321/#", false),
            ("http://user@127.0.0.1:54321/", false),
            ("https://127.0.0.1:54321/", false),
            ("http://127.0.0.1:54321/ ", false),
        ] {
            let found = find_match(&reg, requested);
            assert_eq!(found.is_ok(), expected, "{requested}");
            if let Ok(found) = found {
                assert_eq!(found.as_str(), requested);
            } else {
                assert_eq!(found, Err(RedirectError::NotRegistered));
            }
        }
    }

    #[test]
    fn claude_code_and_claude_ai_registrations_match() {
        let reg = validate_registration(&["http://localhost:61234/callback"]).unwrap();
        assert!(find_match(&reg, "http://localhost:61234/callback").is_ok());
        assert!(find_match(&reg, "http://localhost:50000/callback").is_ok());
        assert!(find_match(&reg, "http://localhost/callback").is_ok());
        assert!(find_match(&reg, "http://127.0.0.1:50000/callback").is_err());
        assert!(find_match(&reg, "http://[::1]:50000/callback").is_err());
        assert!(find_match(&reg, "http://localhost:50000/callback/").is_err());
        assert!(find_match(&reg, "http://localhost:50000/Callback").is_err());
        assert!(find_match(&reg, "http://LOCALHOST:50000/callback").is_err());

        let reg = validate_registration(&["https://claude.ai/api/mcp/auth_callback"]).unwrap();
        assert!(find_match(&reg, "https://claude.ai/api/mcp/auth_callback").is_ok());
        assert!(find_match(&reg, "https://claude.ai:8443/api/mcp/auth_callback").is_err());
        assert!(find_match(&reg, "https://claude.ai/api/mcp/auth_callback?x").is_err());
        assert!(find_match(&reg, "https://claude.ai/api/mcp/").is_err());
    }

    #[test]
    fn ipv6_loopback_any_port() {
        let reg = validate_registration(&["http://[::1]/cb"]).unwrap();
        assert!(find_match(&reg, "http://[::1]:40000/cb").is_ok());
        assert!(find_match(&reg, "http://127.0.0.1:40000/cb").is_err());
        assert!(find_match(&reg, "http://localhost:40000/cb").is_err());
    }

    #[test]
    fn loopback_query_must_be_identical() {
        let reg = validate_registration(&["http://127.0.0.1/cb?a=1"]).unwrap();
        assert!(find_match(&reg, "http://127.0.0.1:7/cb?a=1").is_ok());
        assert!(find_match(&reg, "http://127.0.0.1:7/cb?a=2").is_err());
        assert!(find_match(&reg, "http://127.0.0.1:7/cb").is_err());
        assert!(find_match(&reg, "http://127.0.0.1:7/cb?a=1&b=2").is_err());
    }

    #[test]
    fn nothing_registered_matches_nothing() {
        assert_eq!(
            find_match(&[], "https://claude.ai/cb"),
            Err(RedirectError::NotRegistered)
        );
    }
}
