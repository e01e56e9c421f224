//! Which browser origins may call `/mcp` (DNS-rebinding and cross-site
//! protection, as the Streamable HTTP transport asks of servers).
//!
//! A request without `Origin` is not from a browser page and passes here
//! (the `Host` check and authentication still apply). A request with one is
//! accepted when it is **same-origin for an allowed host**: the origin's
//! host and port are the request's `Host`, and that host is one of
//! `server.allowed_hosts`. A page served from anywhere else (another site,
//! or a rebinding name that resolves to Warden) is refused, unless its
//! origin is listed in `server.allowed_origins` (`scheme://host:port`,
//! `:*` for any port, or `null`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderMap;
use http::uri::Authority;

use super::jsonrpc::{INVALID_REQUEST, error_response};

/// Middleware: refuses a request whose `Origin` is not allowed (403).
pub async fn guard(State(origins): State<Arc<Origins>>, request: Request, next: Next) -> Response {
    match origins.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(%reason, "request refused by the origin check");
            error_response(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                &format!("Forbidden: {reason}"),
            )
        }
    }
}

/// The origin rules of one front.
#[derive(Debug, Clone)]
pub struct Origins {
    allowed_hosts: Vec<Host>,
    listed: Vec<Listed>,
    null_listed: bool,
}

/// A host as `allowed_hosts` names it: a name, with an optional port.
#[derive(Debug, Clone, PartialEq)]
struct Host {
    name: String,
    port: Option<u16>,
}

/// An entry of `allowed_origins`.
#[derive(Debug, Clone)]
struct Listed {
    scheme: String,
    host: Host,
    any_port: bool,
}

/// A parsed `Origin` header value (not `null`).
#[derive(Debug, PartialEq)]
struct Origin {
    scheme: String,
    host: Host,
}

impl Origins {
    /// The rules for `allowed_hosts` and `allowed_origins` (entries that do
    /// not parse match nothing; config validation names them).
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let listed = allowed_origins
            .iter()
            .filter_map(|raw| {
                let (base, any_port) = match raw.strip_suffix(":*") {
                    Some(base) => (base, true),
                    None => (raw.as_str(), false),
                };
                let origin = parse_origin(base)?;
                Some(Listed {
                    scheme: origin.scheme,
                    host: origin.host,
                    any_port,
                })
            })
            .collect();
        Self {
            allowed_hosts: allowed_hosts.iter().filter_map(|h| parse_host(h)).collect(),
            listed,
            null_listed: allowed_origins.iter().any(|o| o == "null"),
        }
    }

    /// `Ok` when the request may proceed; otherwise why it is refused.
    ///
    /// Warden may sit behind a TLS-terminating proxy, so it cannot know its
    /// own scheme: same-origin compares host and port, with the port the
    /// origin's scheme implies when it names none.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .map_err(|_| "the Origin header is not valid text".to_owned())?;
        if origin == "null" {
            return if self.null_listed {
                Ok(())
            } else {
                Err("Origin `null` (an opaque origin) is not allowed".to_owned())
            };
        }
        let parsed = parse_origin(origin)
            .ok_or_else(|| format!("the Origin header {origin:?} is not scheme://host[:port]"))?;
        if self.listed.iter().any(|l| l.matches(&parsed)) {
            return Ok(());
        }
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(parse_host)
            .map(|h| h.with_default_port(&parsed.scheme));
        let same_origin = host.as_ref() == Some(&parsed.host);
        let allowed_host = host
            .as_ref()
            .is_some_and(|h| self.allowed_hosts.iter().any(|a| a.admits(h)));
        if same_origin && allowed_host {
            return Ok(());
        }
        Err(format!(
            "Origin {origin:?} is not allowed: only same-origin requests for the allowed hosts \
             and the origins listed in server.allowed_origins are accepted"
        ))
    }
}

impl Host {
    /// The port the scheme implies when none is given (RFC 6454).
    fn with_default_port(mut self, scheme: &str) -> Host {
        if self.port.is_none() {
            self.port = match scheme {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            };
        }
        self
    }

    /// Whether this `allowed_hosts` entry admits the request's host.
    fn admits(&self, host: &Host) -> bool {
        self.name == host.name && self.port.is_none_or(|port| host.port == Some(port))
    }
}

impl Listed {
    fn matches(&self, origin: &Origin) -> bool {
        self.scheme == origin.scheme
            && self.host.name == origin.host.name
            && (self.any_port || self.host.port == origin.host.port)
    }
}

/// `name[:port]`, lower-cased, without IPv6 brackets (a bare IPv6
/// address, as `allowed_hosts` may name one, is a name without a port).
fn parse_host(value: &str) -> Option<Host> {
    let value = value.trim();
    if let Ok(std::net::IpAddr::V6(ip)) = value.parse() {
        return Some(Host {
            name: ip.to_string(),
            port: None,
        });
    }
    let authority = Authority::try_from(value).ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(Host {
        name: authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port: authority.port_u16(),
    })
}

/// `scheme://host[:port]` with the scheme's default port filled in.
fn parse_origin(value: &str) -> Option<Origin> {
    let (scheme, rest) = value.split_once("://")?;
    if rest.is_empty() || rest.contains(['/', '?', '#']) {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let host = parse_host(rest)?.with_default_port(&scheme);
    Some(Origin { scheme, host })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(http::header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    fn defaults() -> Origins {
        let hosts = ["localhost", "127.0.0.1", "::1"].map(String::from);
        Origins::new(&hosts, &[])
    }

    #[test]
    fn same_origin_for_an_allowed_host_is_accepted() {
        let origins = defaults();
        for (origin, host) in [
            ("http://127.0.0.1:8787", "127.0.0.1:8787"),
            ("http://localhost:3000", "localhost:3000"),
            ("http://LOCALHOST:3000", "localhost:3000"),
            ("http://[::1]:8787", "[::1]:8787"),
            ("http://localhost", "localhost"),
            ("http://localhost", "localhost:80"),
            ("https://localhost", "localhost:443"),
        ] {
            assert_eq!(
                origins.check(&headers(Some(origin), host)),
                Ok(()),
                "{origin} {host}"
            );
        }
        assert_eq!(origins.check(&headers(None, "127.0.0.1:8787")), Ok(()));
    }

    #[test]
    fn foreign_and_rebinding_origins_are_refused() {
        let origins = defaults();
        for (origin, host) in [
            // Another site calling Warden on loopback.
            ("http://evil.example", "127.0.0.1:8787"),
            // Same host, another port: another origin.
            ("http://127.0.0.1:9999", "127.0.0.1:8787"),
            // DNS rebinding: same-origin, but the host is not allowed.
            ("http://evil.example:8787", "evil.example:8787"),
            ("null", "127.0.0.1:8787"),
            ("http://127.0.0.1:8787/path", "127.0.0.1:8787"),
            ("127.0.0.1:8787", "127.0.0.1:8787"),
            ("http://user@127.0.0.1:8787", "127.0.0.1:8787"),
        ] {
            let verdict = origins.check(&headers(Some(origin), host));
            assert!(verdict.is_err(), "{origin} {host} was accepted");
        }
    }

    #[test]
    fn listed_origins_are_accepted_from_anywhere() {
        let hosts = ["warden.contoso.com".to_owned()];
        let listed = [
            "https://app.contoso.com".to_owned(),
            "http://localhost:*".to_owned(),
            "null".to_owned(),
        ];
        let origins = Origins::new(&hosts, &listed);
        let host = "warden.contoso.com";
        for origin in [
            "https://app.contoso.com",
            "https://app.contoso.com:443",
            "http://localhost:5173",
            "null",
            "https://warden.contoso.com",
        ] {
            assert_eq!(
                origins.check(&headers(Some(origin), host)),
                Ok(()),
                "{origin}"
            );
        }
        for origin in ["http://app.contoso.com", "https://app.contoso.com:8443"] {
            assert!(
                origins.check(&headers(Some(origin), host)).is_err(),
                "{origin}"
            );
        }
    }

    #[test]
    fn an_allowed_host_entry_with_a_port_admits_only_that_port() {
        let origins = Origins::new(&["localhost:8787".to_owned()], &[]);
        let ok = headers(Some("http://localhost:8787"), "localhost:8787");
        assert_eq!(origins.check(&ok), Ok(()));
        let other = headers(Some("http://localhost:9000"), "localhost:9000");
        assert!(origins.check(&other).is_err());
    }
}
