//! Client ID Metadata Documents: a `client_id` that is an HTTPS URL names a
//! JSON document describing the client, which Warden fetches.
//!
//! Fetching a URL an anonymous client chose is a server-side request
//! forgery risk, so every step is constrained:
//!
//! 1. [`DocumentUrl::parse`]: `https` only, a domain name (no IP literal)
//!    on the allowlist (exact or, with `include_subdomains`, a subdomain;
//!    or any domain with `allow_any_domain`), port 443, a path, no query,
//!    fragment, user information or dot segments, in normal form.
//! 2. [`HttpsSource`] (production): the name is resolved once, **every**
//!    address must be public ([`is_public_ip`]: no loopback, private,
//!    link-local, CGNAT, multicast, unspecified, documentation, benchmark,
//!    reserved, 6to4/Teredo/NAT64 or IPv4-mapped forms of those), and the
//!    connection is pinned to those addresses (no second lookup that could
//!    answer differently). Names under `localhost` are loopback without
//!    asking DNS (RFC 6761), so they are refused like any other loopback
//!    answer. No proxy, no redirects, HTTPS only, the body read in chunks
//!    and abandoned past `max_bytes`, the whole fetch within `timeout`.
//!
//!    Two operator settings widen where a document may come from, never
//!    which URLs are accepted: `oauth.cimd.ca_file` adds root CAs (a
//!    corporate CA) to the web roots the certificate is checked against,
//!    and `oauth.cimd.connect_to` pins an allowlisted host to an
//!    `ip:port` of the operator's choosing, instead of DNS. A pinned
//!    destination is the only one that may be a non-public address; the
//!    URL is still `https://host/...` on the default port, and the
//!    certificate is still checked for `host`.
//! 3. [`validate_document`]: a JSON object whose `client_id` equals the URL
//!    exactly, with a `client_name` and `redirect_uris` that pass the
//!    registration rules of [`crate::oauth::redirect`]; public clients only.
//! 4. [`CimdFetcher`] caches valid documents for `Cache-Control: max-age`
//!    clamped to 5 minutes ..= 24 hours ([`cache_ttl`]), in a bounded map.
//!
//! The network is reached only through the [`DocumentSource`] trait:
//! production passes [`HttpsSource`] ([`HttpsSource::from_config`]); tests
//! pass their own source with canned responses. `HttpsSource` takes a
//! [`Resolve`] so tests can feed it private addresses, which it refuses
//! before connecting: a resolver cannot widen what it accepts (only the
//! configured pins can).
//!
//! Documents that fail are not cached (a client retries after fixing its
//! document); failed fetches are cheap to refuse again because of step 1.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use url::{Host, Url};

use super::client::{Client, ClientSource, display_safe_name};
use super::config::{CimdConfig, OAuthConfigError};
use super::redirect::{RedirectError, validate_registration};

/// Shortest time a document is cached.
pub const MIN_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Longest time a document is cached.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most documents kept in the cache.
pub const MAX_CACHE_ENTRIES: usize = 1000;
/// Longest document URL accepted.
pub const MAX_URL_LEN: usize = 2000;

/// Why a metadata document could not be used. The authorization endpoint
/// shows it on a local error page (never a redirect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    /// The `client_id` is not an acceptable document URL.
    #[error("client_id URL is not acceptable: {0}")]
    InvalidUrl(String),
    /// The host is not on `oauth.cimd.allowed_domains`.
    #[error("client metadata documents from {0} are not allowed (oauth.cimd.allowed_domains)")]
    DomainNotAllowed(String),
    /// DNS resolution failed.
    #[error("could not resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        reason: String,
    },
    /// DNS answered with no address.
    #[error("{0} has no address")]
    NoAddress(String),
    /// An address of the host is not public.
    #[error("{host} resolves to {address}, which is not a public address")]
    NonPublicAddress {
        /// The host.
        host: String,
        /// The refused address.
        address: IpAddr,
    },
    /// The connection or the request failed.
    #[error("fetching the client metadata document failed: {0}")]
    Fetch(String),
    /// The server answered with a redirect (not followed).
    #[error("the client metadata document URL redirects (HTTP {0}); redirects are not followed")]
    Redirect(u16),
    /// The server answered with another status than 200.
    #[error("the client metadata document URL answered HTTP {0}")]
    Status(u16),
    /// The body is larger than `oauth.cimd.max_bytes`.
    #[error("the client metadata document is larger than {0} bytes")]
    TooLarge(usize),
    /// The fetch took longer than `oauth.cimd.timeout`.
    #[error("fetching the client metadata document took longer than {0:?}")]
    Timeout(Duration),
    /// The body is not a usable document.
    #[error("the client metadata document is invalid: {0}")]
    InvalidDocument(String),
    /// The document's `client_id` is not its URL.
    #[error("the client metadata document's client_id is not its own URL")]
    ClientIdMismatch,
    /// A redirect URI in the document breaks the registration rules.
    #[error("the client metadata document's redirect_uris are invalid: {0}")]
    RedirectUris(RedirectError),
}

/// The constraints of `[oauth.cimd]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CimdPolicy {
    /// Allowed domains (lower case).
    pub allowed_domains: Vec<String>,
    /// A domain also allows its subdomains.
    pub include_subdomains: bool,
    /// Any domain is allowed (address checks remain).
    pub allow_any_domain: bool,
    /// Body cap, in bytes.
    pub max_bytes: usize,
    /// Whole-fetch time cap.
    pub timeout: Duration,
}

impl From<&CimdConfig> for CimdPolicy {
    fn from(config: &CimdConfig) -> Self {
        Self {
            allowed_domains: config.allowed_domains.clone(),
            include_subdomains: config.include_subdomains,
            allow_any_domain: config.allow_any_domain,
            max_bytes: config.max_bytes,
            timeout: config.timeout,
        }
    }
}

impl CimdPolicy {
    /// Whether `host` (lower case) is allowed.
    pub fn allows_host(&self, host: &str) -> bool {
        self.allow_any_domain
            || self.allowed_domains.iter().any(|domain| {
                host == domain
                    || (self.include_subdomains
                        && host.len() > domain.len()
                        && host.ends_with(domain.as_str())
                        && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
            })
    }
}

/// A `client_id` that passed the URL rules and the domain policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentUrl {
    url: Url,
    host: String,
}

impl DocumentUrl {
    /// Checks `client_id` as a document URL under `policy`.
    pub fn parse(client_id: &str, policy: &CimdPolicy) -> Result<Self, CimdError> {
        let invalid = |reason: &str| Err(CimdError::InvalidUrl(reason.to_owned()));
        if client_id.len() > MAX_URL_LEN {
            return invalid("too long");
        }
        if client_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return invalid("contains whitespace, a control character or a backslash");
        }
        if client_id.contains('#') {
            return invalid("contains a fragment");
        }
        if client_id.contains('?') {
            return invalid("contains a query");
        }
        let url = match Url::parse(client_id) {
            Ok(url) => url,
            Err(e) => return invalid(&e.to_string()),
        };
        if url.scheme() != "https" {
            return invalid("must use https");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return invalid("contains user information");
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.to_owned(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => return invalid("host is an IP address"),
            None => return invalid("no host"),
        };
        if host.ends_with('.') || !host.contains('.') {
            return invalid("host is not a fully qualified domain name without trailing dot");
        }
        if url.port().is_some() {
            return invalid("only the default port 443 is allowed");
        }
        if url.path() == "/" {
            return invalid("must have a path");
        }
        if url.as_str() != client_id {
            return invalid("not in normal form (case, dot segments, encoding)");
        }
        if !policy.allows_host(&host) {
            return Err(CimdError::DomainNotAllowed(host));
        }
        Ok(Self { url, host })
    }

    /// The URL (equal to the `client_id`).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The host, for the consent page.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The parsed URL.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// Whether an address is publicly routable. Everything special-purpose is
/// refused, including IPv6 forms that embed an IPv4 address (IPv4-mapped
/// are judged by the embedded address; 6to4, Teredo, NAT64 and
/// IPv4-compatible ones are refused outright).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network", 0.0.0.0
        || a == 10 // private
        || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10 shared address space (CGNAT)
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local
        || (a == 172 && (b & 0xf0) == 16) // private 172.16.0.0/12
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved 240/4, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Only global unicast 2000::/3; this excludes ::, ::1, IPv4-compatible
    // ::/96, NAT64 64:ff9b::/96, discard 100::/64, ULA fc00::/7,
    // link-local fe80::/10, site-local fec0::/10 and multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let special = match s[0] {
        // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...) and
        // 2001:db8::/32 documentation
        0x2001 => s[1] < 0x0200 || s[1] == 0x0db8,
        // 6to4
        0x2002 => true,
        // 3fff::/20 documentation
        0x3fff => s[1] < 0x1000,
        _ => false,
    };
    !special
}

/// Checks that an answer has addresses and that all of them are public.
pub fn check_addresses(host: &str, addresses: &[SocketAddr]) -> Result<(), CimdError> {
    if addresses.is_empty() {
        return Err(CimdError::NoAddress(host.to_owned()));
    }
    match addresses.iter().find(|a| !is_public_ip(a.ip())) {
        Some(bad) => Err(CimdError::NonPublicAddress {
            host: host.to_owned(),
            address: bad.ip(),
        }),
        None => Ok(()),
    }
}

/// Checks a fetched document for `url` and builds the client.
///
/// Required: a JSON object of at most `max_bytes`, `client_id` equal to the
/// URL, `client_name` (1 to 100 characters, no control characters),
/// `redirect_uris` (registration rules). Refused: client secrets and any
/// `token_endpoint_auth_method` but `none`; `grant_types`, if given, must
/// include `authorization_code` (others Warden does not support are
/// ignored, since a document is written for every server) and decide
/// whether refresh tokens are issued; absent, they are. `response_types`,
/// if given, must include `code`.
pub fn validate_document(
    url: &DocumentUrl,
    body: &[u8],
    max_bytes: usize,
) -> Result<Client, CimdError> {
    if body.len() > max_bytes {
        return Err(CimdError::TooLarge(max_bytes));
    }
    let invalid = |reason: &str| CimdError::InvalidDocument(reason.to_owned());
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("not JSON: {e}")))?;
    let doc = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object"))?;
    match doc.get("client_id") {
        Some(serde_json::Value::String(id)) if id == url.as_str() => {}
        Some(serde_json::Value::String(_)) => return Err(CimdError::ClientIdMismatch),
        Some(_) => return Err(invalid("client_id is not a string")),
        None => return Err(invalid("client_id is missing")),
    }
    let name = match doc.get("client_name") {
        Some(serde_json::Value::String(name)) => display_safe_name(name).ok_or_else(|| {
            invalid(
                "client_name must be 1 to 100 characters without control or invisible characters",
            )
        })?,
        Some(_) => return Err(invalid("client_name is not a string")),
        None => return Err(invalid("client_name is missing")),
    };
    let redirect_uris =
        string_array(doc, "redirect_uris")?.ok_or_else(|| invalid("redirect_uris is missing"))?;
    let redirect_uris = validate_registration(&redirect_uris).map_err(CimdError::RedirectUris)?;
    match doc.get("token_endpoint_auth_method") {
        None => {}
        Some(serde_json::Value::String(method)) if method == "none" => {}
        Some(_) => {
            return Err(invalid(
                "token_endpoint_auth_method must be \"none\": Warden accepts public clients only",
            ));
        }
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(invalid(
            "a metadata document must not contain a client secret",
        ));
    }
    let refresh_allowed = match string_array(doc, "grant_types")? {
        None => true,
        Some(grants) => {
            if !grants.iter().any(|g| g == "authorization_code") {
                return Err(invalid("grant_types does not include authorization_code"));
            }
            grants.iter().any(|g| g == "refresh_token")
        }
    };
    if let Some(types) = string_array(doc, "response_types")?
        && !types.iter().any(|t| t == "code")
    {
        return Err(invalid("response_types does not include code"));
    }
    Ok(Client {
        id: url.as_str().to_owned(),
        name: Some(name),
        redirect_uris,
        refresh_allowed,
        source: ClientSource::MetadataDocument {
            host: url.host().to_owned(),
        },
    })
}

/// A member that, if present, must be an array of strings.
fn string_array(
    doc: &serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<Vec<String>>, CimdError> {
    let Some(value) = doc.get(key) else {
        return Ok(None);
    };
    let not_strings = || CimdError::InvalidDocument(format!("{key} is not an array of strings"));
    let array = value.as_array().ok_or_else(not_strings)?;
    array
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(not_strings))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// How long to cache a document: `max-age` of `Cache-Control`, clamped to
/// [`MIN_CACHE_TTL`] ..= [`MAX_CACHE_TTL`]. No header, `no-store`,
/// `no-cache`, a malformed or repeated `max-age`: the minimum (Warden does
/// not fetch a document on every request).
pub fn cache_ttl(cache_control: Option<&str>) -> Duration {
    let Some(header) = cache_control else {
        return MIN_CACHE_TTL;
    };
    let mut max_age: Option<u64> = None;
    for directive in header.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return MIN_CACHE_TTL;
        }
        if name.eq_ignore_ascii_case("max-age") {
            let seconds = value
                .map(|v| v.trim_matches('"'))
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
            match (seconds, max_age) {
                (Some(seconds), None) => max_age = Some(seconds),
                _ => return MIN_CACHE_TTL,
            }
        }
    }
    max_age
        .map(Duration::from_secs)
        .unwrap_or(MIN_CACHE_TTL)
        .clamp(MIN_CACHE_TTL, MAX_CACHE_TTL)
}

/// Limits a source must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Body cap, in bytes.
    pub max_bytes: usize,
    /// Whole-fetch time cap.
    pub timeout: Duration,
}

/// A fetched document, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedDocument {
    /// The body (at most `max_bytes`).
    pub body: Vec<u8>,
    /// The `Cache-Control` header, if any.
    pub cache_control: Option<String>,
}

/// Where documents come from: [`HttpsSource`] in production.
#[async_trait]
pub trait DocumentSource: Send + Sync {
    /// Fetches `url` within `limits`.
    async fn fetch(
        &self,
        url: &DocumentUrl,
        limits: FetchLimits,
    ) -> Result<FetchedDocument, CimdError>;
}

/// Name resolution for [`HttpsSource`].
#[async_trait]
pub trait Resolve: Send + Sync {
    /// The addresses of `host`, with `port`.
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver, except that `localhost` and the names
/// under it are the loopback addresses without a lookup (RFC 6761 6.3:
/// they always name this machine, whatever a DNS server would answer).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

/// Whether `host` is `localhost` or a name under it (RFC 6761).
pub fn is_localhost_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let tail = host.len().saturating_sub("localhost".len());
    host.get(tail..)
        .is_some_and(|end| end.eq_ignore_ascii_case("localhost"))
        && (tail == 0 || host.as_bytes()[tail - 1] == b'.')
}

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        if is_localhost_name(host) {
            return Ok(vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
            ]);
        }
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// The production source: HTTPS to public addresses only, resolved once
/// and pinned; no proxy, no redirects; capped body and time. The
/// operator may add root CAs and pin hosts to chosen addresses
/// ([`HttpsSource::from_config`]).
#[derive(Clone)]
pub struct HttpsSource {
    resolver: Arc<dyn Resolve>,
    /// Root CAs trusted beside the system's (`oauth.cimd.ca_file`).
    extra_roots: Vec<reqwest::Certificate>,
    /// Host → the address its connections go to (`oauth.cimd.connect_to`).
    pins: HashMap<String, SocketAddr>,
}

impl std::fmt::Debug for HttpsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsSource")
            .field("extra_roots", &self.extra_roots.len())
            .field("pins", &self.pins)
            .finish_non_exhaustive()
    }
}

impl Default for HttpsSource {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpsSource {
    /// With the system resolver.
    pub fn new() -> Self {
        Self::with_resolver(Arc::new(SystemResolver))
    }

    /// With another resolver; its answers are checked like the system's.
    pub fn with_resolver(resolver: Arc<dyn Resolve>) -> Self {
        Self {
            resolver,
            extra_roots: Vec::new(),
            pins: HashMap::new(),
        }
    }

    /// The source `[oauth.cimd]` describes: the system resolver, the web
    /// roots plus those of `ca_file` (read now), and the `connect_to` pins.
    /// The error names the key.
    pub fn from_config(config: &CimdConfig) -> Result<Self, OAuthConfigError> {
        let mut source = Self::new();
        if let Some(path) = &config.ca_file {
            let fail = |message: String| OAuthConfigError {
                key: "cimd.ca_file".into(),
                message: format!("{}: {message}", path.display()),
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            source = source.with_root_certificates(&pem).map_err(fail)?;
        }
        for (host, address) in config.pins()? {
            source = source.with_pin(&host, address);
        }
        Ok(source)
    }

    /// Also trusts the root CAs of a PEM bundle, beside the system's.
    /// Refused: a bundle without certificates, or one that is no usable
    /// root.
    pub fn with_root_certificates(mut self, pem: &[u8]) -> Result<Self, String> {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not a PEM certificate bundle: {}", error_chain(&e)))?;
        if certificates.is_empty() {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        // A client is built for every fetch; building one now parses the
        // roots, so a bad file stops the start instead of every fetch.
        reqwest::Client::builder()
            .tls_certs_merge(certificates.iter().cloned())
            .build()
            .map_err(|e| format!("not usable as root certificates: {}", error_chain(&e)))?;
        self.extra_roots.extend(certificates);
        Ok(self)
    }

    /// Connections to `host` go to `address`, without a lookup; the
    /// address may be non-public (the operator chose it). The URL, the
    /// certificate check for `host` and every other rule stay the same.
    pub fn with_pin(mut self, host: &str, address: SocketAddr) -> Self {
        self.pins.insert(host.to_ascii_lowercase(), address);
        self
    }

    /// The addresses `host` is fetched from: its pin, or its public
    /// addresses from the resolver.
    async fn addresses(&self, host: &str) -> Result<Vec<SocketAddr>, CimdError> {
        if let Some(pinned) = self.pins.get(host) {
            return Ok(vec![*pinned]);
        }
        let addresses = self
            .resolver
            .resolve(host, 443)
            .await
            .map_err(|e| CimdError::Resolve {
                host: host.to_owned(),
                reason: e.to_string(),
            })?;
        check_addresses(host, &addresses)?;
        Ok(addresses)
    }

    async fn fetch_inner(
        &self,
        url: &DocumentUrl,
        limits: FetchLimits,
    ) -> Result<FetchedDocument, CimdError> {
        if url.url().scheme() != "https" {
            return Err(CimdError::InvalidUrl("must use https".into()));
        }
        let host = url.host();
        let addresses = self.addresses(host).await?;
        // The addresses' ports are used: the URL names none (443 implied),
        // so a pin's port is where the connection goes.
        let client = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tls_certs_merge(self.extra_roots.iter().cloned())
            .resolve_to_addrs(host, &addresses)
            .connect_timeout(limits.timeout)
            .timeout(limits.timeout)
            .user_agent(concat!(
                "warden/",
                env!("CARGO_PKG_VERSION"),
                " (client metadata)"
            ))
            .build()
            .map_err(|e| CimdError::Fetch(e.to_string()))?;
        let mut response = client
            .get(url.url().clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| CimdError::Fetch(error_chain(&e.without_url())))?;
        if let Some(remote) = response.remote_addr()
            && !addresses.iter().any(|a| a.ip() == remote.ip())
        {
            return Err(CimdError::Fetch(format!(
                "connected to {}, which is not an address {host} resolved to",
                remote.ip()
            )));
        }
        let status = response.status();
        if status.is_redirection() {
            return Err(CimdError::Redirect(status.as_u16()));
        }
        if status != reqwest::StatusCode::OK {
            return Err(CimdError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > limits.max_bytes as u64)
        {
            return Err(CimdError::TooLarge(limits.max_bytes));
        }
        let cache_control = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = CappedBody::new(limits.max_bytes);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CimdError::Fetch(error_chain(&e.without_url())))?
        {
            body.push(&chunk)?;
        }
        Ok(FetchedDocument {
            body: body.into_inner(),
            cache_control,
        })
    }
}

#[async_trait]
impl DocumentSource for HttpsSource {
    async fn fetch(
        &self,
        url: &DocumentUrl,
        limits: FetchLimits,
    ) -> Result<FetchedDocument, CimdError> {
        tokio::time::timeout(limits.timeout, self.fetch_inner(url, limits))
            .await
            .map_err(|_| CimdError::Timeout(limits.timeout))?
    }
}

/// An error and its sources, for messages (reqwest's own says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// A body buffer that refuses to grow past its cap.
#[derive(Debug)]
pub struct CappedBody {
    buffer: Vec<u8>,
    max: usize,
}

impl CappedBody {
    /// An empty buffer holding at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buffer: Vec::new(),
            max,
        }
    }

    /// Appends a chunk; [`CimdError::TooLarge`] once the total passes the
    /// cap (the caller stops reading).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CimdError> {
        if chunk.len() > self.max - self.buffer.len() {
            return Err(CimdError::TooLarge(self.max));
        }
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes read.
    pub fn into_inner(self) -> Vec<u8> {
        self.buffer
    }
}

struct CacheEntry {
    client: Client,
    expires: Instant,
}

/// Resolves metadata-document clients: policy, fetch, validation, cache.
pub struct CimdFetcher {
    policy: CimdPolicy,
    source: Arc<dyn DocumentSource>,
    cache: Mutex<HashMap<String, CacheEntry>>,
    max_entries: usize,
}

impl std::fmt::Debug for CimdFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CimdFetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl CimdFetcher {
    /// A fetcher with `source` ([`HttpsSource`] in production).
    pub fn new(policy: CimdPolicy, source: Arc<dyn DocumentSource>) -> Self {
        Self {
            policy,
            source,
            cache: Mutex::new(HashMap::new()),
            max_entries: MAX_CACHE_ENTRIES,
        }
    }

    /// The client a document URL describes, from the cache or fetched.
    pub async fn client(&self, client_id: &str) -> Result<Client, CimdError> {
        self.client_at(client_id, Instant::now()).await
    }

    async fn client_at(&self, client_id: &str, now: Instant) -> Result<Client, CimdError> {
        let url = DocumentUrl::parse(client_id, &self.policy)?;
        if let Some(entry) = self.lock().get(client_id)
            && entry.expires > now
        {
            return Ok(entry.client.clone());
        }
        let limits = FetchLimits {
            max_bytes: self.policy.max_bytes,
            timeout: self.policy.timeout,
        };
        let fetched = self.source.fetch(&url, limits).await?;
        let client = validate_document(&url, &fetched.body, limits.max_bytes)?;
        let expires = now + cache_ttl(fetched.cache_control.as_deref());
        let mut cache = self.lock();
        if cache.len() >= self.max_entries && !cache.contains_key(client_id) {
            cache.retain(|_, e| e.expires > now);
        }
        if cache.len() >= self.max_entries
            && !cache.contains_key(client_id)
            && let Some(soonest) = cache
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        {
            cache.remove(&soonest);
        }
        cache.insert(
            client_id.to_owned(),
            CacheEntry {
                client: client.clone(),
                expires,
            },
        );
        Ok(client)
    }

    /// Drops a cached document (e.g. after the client reports a change).
    pub fn forget(&self, client_id: &str) {
        self.lock().remove(client_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CacheEntry>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn policy() -> CimdPolicy {
        CimdPolicy::from(&CimdConfig::default())
    }

    const VSCODE: &str = "https://vscode.dev/oauth/client-metadata.json";

    fn url(s: &str) -> DocumentUrl {
        DocumentUrl::parse(s, &policy()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn doc(client_id: &str) -> serde_json::Value {
        serde_json::json!({
            "client_id": client_id,
            "client_name": "Visual Studio Code",
            "redirect_uris": ["https://vscode.dev/redirect", "http://127.0.0.1/"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "logo_uri": "https://vscode.dev/logo.png"
        })
    }

    // ---- URLs and the domain policy ----

    #[test]
    fn accepts_allowlisted_document_urls() {
        for ok in [
            VSCODE,
            "https://insiders.vscode.dev/oauth/client-metadata.json",
            "https://claude.ai/oauth/claude-code-client-metadata",
            "https://chatgpt.com/x",
        ] {
            assert_eq!(url(ok).as_str(), ok);
        }
        assert_eq!(url(VSCODE).host(), "vscode.dev");
    }

    #[test]
    fn refuses_hosts_off_the_allowlist() {
        for (bad, host) in [
            ("https://evil.example/doc", "evil.example"),
            ("https://evilvscode.dev/doc", "evilvscode.dev"),
            (
                "https://vscode.dev.evil.example/doc",
                "vscode.dev.evil.example",
            ),
            (
                "https://claude.ai.evil.example/doc",
                "claude.ai.evil.example",
            ),
        ] {
            assert_eq!(
                DocumentUrl::parse(bad, &policy()),
                Err(CimdError::DomainNotAllowed(host.into())),
                "{bad}"
            );
        }
        let exact = CimdPolicy {
            include_subdomains: false,
            ..policy()
        };
        assert!(DocumentUrl::parse(VSCODE, &exact).is_ok());
        assert_eq!(
            DocumentUrl::parse("https://insiders.vscode.dev/doc", &exact),
            Err(CimdError::DomainNotAllowed("insiders.vscode.dev".into()))
        );
        let any = CimdPolicy {
            allowed_domains: Vec::new(),
            allow_any_domain: true,
            ..policy()
        };
        assert!(DocumentUrl::parse("https://evil.example/doc", &any).is_ok());
        let none = CimdPolicy {
            allowed_domains: Vec::new(),
            ..policy()
        };
        assert!(DocumentUrl::parse(VSCODE, &none).is_err());
    }

    #[test]
    fn refuses_bad_document_urls_even_when_any_domain_is_allowed() {
        let any = CimdPolicy {
            allow_any_domain: true,
            ..policy()
        };
        for bad in [
            "http://vscode.dev/doc",
            "ftp://vscode.dev/doc",
            "https://vscode.dev",
            "https://vscode.dev/",
            "https://vscode.dev/doc?x=1",
            "https://vscode.dev/doc?",
            "https://vscode.dev/doc#x",
            "https://user@vscode.dev/doc",
            "https://vscode.dev:8443/doc",
            "https://vscode.dev:443/doc",
            "https://VSCODE.dev/doc",
            "https://vscode.dev/a/../doc",
            "https://vscode.dev/a/%2e%2e/doc",
            "https://vscode.dev/./doc",
            "https://vscode.dev./doc",
            "https://localhost/doc",
            "https://127.0.0.1/doc",
            "https://[::1]/doc",
            "https://2130706433/doc",
            "https://vscode.dev/d oc",
            "https://vscode.dev\\@evil/doc",
            "vscode.dev/doc",
            "",
        ] {
            assert!(
                matches!(DocumentUrl::parse(bad, &any), Err(CimdError::InvalidUrl(_))),
                "{bad}: {:?}",
                DocumentUrl::parse(bad, &any)
            );
        }
        let long = format!("https://vscode.dev/{}", "a".repeat(MAX_URL_LEN));
        assert!(DocumentUrl::parse(&long, &any).is_err());
    }

    // ---- addresses ----

    fn ip(s: &str) -> IpAddr {
        IpAddr::from_str(s).unwrap()
    }

    #[test]
    fn public_addresses_are_accepted() {
        for ok in [
            "1.1.1.1",
            "8.8.8.8",
            "13.107.246.40",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a01:111:f100::1",
            "2001:4860:4860::8888",
            "3ffe::1",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public_ip(ip(ok)), "{ok}");
        }
    }

    #[test]
    fn special_addresses_are_refused() {
        for bad in [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254", // cloud metadata service
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "2001:1ff::1",
            "2001:db8::1",
            "2002:a00:1::1", // 6to4 of 10.0.0.1
            "2002:808:808::1",
            "3fff::1",
            "3fff:fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::1:3",
            "5f00::1",
        ] {
            assert!(!is_public_ip(ip(bad)), "{bad}");
        }
    }

    #[test]
    fn every_address_of_an_answer_must_be_public() {
        let public = SocketAddr::new(ip("1.1.1.1"), 443);
        let private = SocketAddr::new(ip("10.0.0.1"), 443);
        assert_eq!(check_addresses("h.example", &[public]), Ok(()));
        assert_eq!(
            check_addresses("h.example", &[public, private]),
            Err(CimdError::NonPublicAddress {
                host: "h.example".into(),
                address: ip("10.0.0.1")
            })
        );
        assert_eq!(
            check_addresses("h.example", &[]),
            Err(CimdError::NoAddress("h.example".into()))
        );
    }

    // ---- documents ----

    fn validate(value: &serde_json::Value) -> Result<Client, CimdError> {
        validate_document(&url(VSCODE), value.to_string().as_bytes(), 5120)
    }

    #[test]
    fn valid_document_gives_a_client() {
        let client = validate(&doc(VSCODE)).unwrap();
        assert_eq!(client.id, VSCODE);
        assert_eq!(client.display_name(), "Visual Studio Code");
        assert_eq!(client.redirect_uris.len(), 2);
        assert!(client.refresh_allowed);
        assert_eq!(
            client.source,
            ClientSource::MetadataDocument {
                host: "vscode.dev".into()
            }
        );
        assert!(client.find_redirect("http://127.0.0.1:40000/").is_ok());
    }

    #[test]
    fn client_id_must_be_the_url_exactly() {
        for other in [
            "https://vscode.dev/oauth/client-metadata.json/",
            "https://VSCODE.dev/oauth/client-metadata.json",
            "https://evil.example/oauth/client-metadata.json",
            "https://vscode.dev/oauth/other.json",
            "",
        ] {
            assert_eq!(
                validate(&doc(other)),
                Err(CimdError::ClientIdMismatch),
                "{other}"
            );
        }
        let mut d = doc(VSCODE);
        d["client_id"] = serde_json::json!(1);
        assert!(matches!(validate(&d), Err(CimdError::InvalidDocument(_))));
    }

    #[test]
    fn missing_or_malformed_fields_are_refused() {
        type Change = fn(&mut serde_json::Value);
        let cases: Vec<(Change, &str)> = vec![
            (
                |d| drop(d.as_object_mut().unwrap().remove("client_id")),
                "client_id is missing",
            ),
            (
                |d| drop(d.as_object_mut().unwrap().remove("client_name")),
                "client_name is missing",
            ),
            (
                |d| d["client_name"] = serde_json::json!(""),
                "client_name must be",
            ),
            (
                |d| d["client_name"] = serde_json::json!("   "),
                "client_name must be",
            ),
            (
                |d| d["client_name"] = serde_json::json!("a\u{7}b"),
                "client_name must be",
            ),
            (
                |d| d["client_name"] = serde_json::json!("VS\u{202e}Code"),
                "client_name must be",
            ),
            (
                |d| d["client_name"] = serde_json::json!("x".repeat(101)),
                "client_name must be",
            ),
            (
                |d| d["client_name"] = serde_json::json!(["x"]),
                "client_name is not a string",
            ),
            (
                |d| drop(d.as_object_mut().unwrap().remove("redirect_uris")),
                "redirect_uris is missing",
            ),
            (
                |d| d["redirect_uris"] = serde_json::json!("https://a.example/cb"),
                "not an array",
            ),
            (
                |d| d["redirect_uris"] = serde_json::json!([1]),
                "not an array of strings",
            ),
            (
                |d| d["token_endpoint_auth_method"] = serde_json::json!("private_key_jwt"),
                "public clients only",
            ),
            (
                |d| d["token_endpoint_auth_method"] = serde_json::json!("client_secret_basic"),
                "public clients only",
            ),
            (
                |d| d["client_secret"] = serde_json::json!("s"),
                "client secret",
            ),
            (
                |d| d["client_secret_expires_at"] = serde_json::json!(0),
                "client secret",
            ),
            (
                |d| d["grant_types"] = serde_json::json!(["refresh_token"]),
                "authorization_code",
            ),
            (
                |d| d["grant_types"] = serde_json::json!("authorization_code"),
                "not an array",
            ),
            (
                |d| d["response_types"] = serde_json::json!(["token"]),
                "include code",
            ),
        ];
        for (change, needle) in cases {
            let mut d = doc(VSCODE);
            change(&mut d);
            match validate(&d) {
                Err(CimdError::InvalidDocument(reason)) => {
                    assert!(reason.contains(needle), "{reason} / {needle}")
                }
                other => panic!("{d}: {other:?}"),
            }
        }
    }

    #[test]
    fn redirect_uris_follow_the_registration_rules() {
        for uris in [
            serde_json::json!([]),
            serde_json::json!(["http://evil.example/cb"]),
            serde_json::json!(["https://vscode.dev/cb#x"]),
            serde_json::json!(["https://*.vscode.dev/cb"]),
            serde_json::json!(
                (0..11)
                    .map(|i| format!("https://a.example/{i}"))
                    .collect::<Vec<_>>()
            ),
        ] {
            let mut d = doc(VSCODE);
            d["redirect_uris"] = uris.clone();
            assert!(
                matches!(validate(&d), Err(CimdError::RedirectUris(_))),
                "{uris}"
            );
        }
    }

    #[test]
    fn grant_types_decide_refresh_and_unknown_ones_are_ignored() {
        let mut d = doc(VSCODE);
        d["grant_types"] = serde_json::json!(["authorization_code"]);
        assert!(!validate(&d).unwrap().refresh_allowed);
        d["grant_types"] = serde_json::json!([
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ]);
        assert!(validate(&d).unwrap().refresh_allowed);
        d.as_object_mut().unwrap().remove("grant_types");
        d.as_object_mut().unwrap().remove("response_types");
        d.as_object_mut()
            .unwrap()
            .remove("token_endpoint_auth_method");
        assert!(validate(&d).unwrap().refresh_allowed);
    }

    #[test]
    fn non_objects_and_oversize_bodies_are_refused() {
        for body in ["", "null", "[]", "\"x\"", "{", "{\"client_id\":"] {
            assert!(
                matches!(
                    validate_document(&url(VSCODE), body.as_bytes(), 5120),
                    Err(CimdError::InvalidDocument(_))
                ),
                "{body}"
            );
        }
        let body = doc(VSCODE).to_string();
        assert!(validate_document(&url(VSCODE), body.as_bytes(), body.len()).is_ok());
        assert_eq!(
            validate_document(&url(VSCODE), body.as_bytes(), body.len() - 1),
            Err(CimdError::TooLarge(body.len() - 1))
        );
    }

    // ---- caching ----

    #[test]
    fn cache_ttl_clamps_max_age() {
        let min = MIN_CACHE_TTL;
        let max = MAX_CACHE_TTL;
        for (header, expected) in [
            (None, min),
            (Some(""), min),
            (Some("max-age=600"), Duration::from_secs(600)),
            (Some("public, max-age=3600"), Duration::from_secs(3600)),
            (Some("MAX-AGE = 3600"), Duration::from_secs(3600)),
            (Some("max-age=\"3600\""), Duration::from_secs(3600)),
            (Some("max-age=0"), min),
            (Some("max-age=60"), min),
            (Some("max-age=31536000"), max),
            (Some("max-age=99999999999999999999999"), max),
            (Some("max-age=-5"), min),
            (Some("max-age=abc"), min),
            (Some("max-age="), min),
            (Some("max-age"), min),
            (Some("max-age=600, max-age=7200"), min),
            (Some("no-store"), min),
            (Some("no-cache, max-age=7200"), min),
            (Some("max-age=7200, no-cache"), min),
            (Some("s-maxage=7200"), min),
            (Some("private"), min),
        ] {
            assert_eq!(cache_ttl(header), expected, "{header:?}");
        }
    }

    #[test]
    fn capped_body_stops_at_the_cap() {
        let mut body = CappedBody::new(10);
        body.push(b"12345").unwrap();
        body.push(b"").unwrap();
        body.push(b"67890").unwrap();
        assert_eq!(body.push(b"1"), Err(CimdError::TooLarge(10)));
        assert_eq!(body.into_inner(), b"1234567890");
        let mut body = CappedBody::new(4);
        assert_eq!(body.push(b"12345"), Err(CimdError::TooLarge(4)));
    }

    /// A source answering from a table, counting calls.
    struct Canned {
        answers: HashMap<String, Result<FetchedDocument, CimdError>>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl DocumentSource for Canned {
        async fn fetch(
            &self,
            url: &DocumentUrl,
            limits: FetchLimits,
        ) -> Result<FetchedDocument, CimdError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(limits.max_bytes, 5120);
            self.answers
                .get(url.as_str())
                .cloned()
                .unwrap_or(Err(CimdError::Status(404)))
        }
    }

    fn canned(answers: Vec<(&str, Result<FetchedDocument, CimdError>)>) -> Arc<Canned> {
        Arc::new(Canned {
            answers: answers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            calls: AtomicUsize::new(0),
        })
    }

    fn fetched(value: serde_json::Value, cache_control: Option<&str>) -> FetchedDocument {
        FetchedDocument {
            body: value.to_string().into_bytes(),
            cache_control: cache_control.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn fetcher_validates_and_caches_for_the_ttl() {
        let source = canned(vec![(
            VSCODE,
            Ok(fetched(doc(VSCODE), Some("max-age=3600"))),
        )]);
        let fetcher = CimdFetcher::new(policy(), source.clone());
        let t0 = Instant::now();
        let client = fetcher.client_at(VSCODE, t0).await.unwrap();
        assert_eq!(client.display_name(), "Visual Studio Code");
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        // cached
        let again = fetcher
            .client_at(VSCODE, t0 + Duration::from_secs(3599))
            .await
            .unwrap();
        assert_eq!(again, client);
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        // expired
        fetcher
            .client_at(VSCODE, t0 + Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        // forgotten
        fetcher.forget(VSCODE);
        fetcher
            .client_at(VSCODE, t0 + Duration::from_secs(3601))
            .await
            .unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);
        // the public entry point works the same
        assert!(fetcher.client(VSCODE).await.is_ok());
    }

    #[tokio::test]
    async fn short_max_age_is_raised_to_the_minimum() {
        let source = canned(vec![(VSCODE, Ok(fetched(doc(VSCODE), Some("max-age=1"))))]);
        let fetcher = CimdFetcher::new(policy(), source.clone());
        let t0 = Instant::now();
        fetcher.client_at(VSCODE, t0).await.unwrap();
        fetcher
            .client_at(VSCODE, t0 + Duration::from_secs(299))
            .await
            .unwrap();
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn fetcher_refuses_before_fetching_when_not_allowlisted() {
        let evil = "https://evil.example/doc";
        let source = canned(vec![(evil, Ok(fetched(doc(evil), None)))]);
        let fetcher = CimdFetcher::new(policy(), source.clone());
        assert_eq!(
            fetcher.client(evil).await,
            Err(CimdError::DomainNotAllowed("evil.example".into()))
        );
        assert_eq!(
            fetcher.client("http://vscode.dev/doc").await,
            Err(CimdError::InvalidUrl("must use https".into()))
        );
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn fetcher_does_not_cache_failures() {
        let mismatched = doc("https://vscode.dev/other.json");
        let source = canned(vec![(
            VSCODE,
            Ok(fetched(mismatched, Some("max-age=3600"))),
        )]);
        let fetcher = CimdFetcher::new(policy(), source.clone());
        assert_eq!(
            fetcher.client(VSCODE).await,
            Err(CimdError::ClientIdMismatch)
        );
        assert_eq!(
            fetcher.client(VSCODE).await,
            Err(CimdError::ClientIdMismatch)
        );
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn fetcher_passes_source_errors_and_checks_size_itself() {
        let claude = "https://claude.ai/oauth/claude-code-client-metadata";
        let big = FetchedDocument {
            body: vec![b' '; 5121],
            cache_control: None,
        };
        let source = canned(vec![
            (VSCODE, Err(CimdError::Redirect(302))),
            (claude, Ok(big)),
        ]);
        let fetcher = CimdFetcher::new(policy(), source);
        assert_eq!(fetcher.client(VSCODE).await, Err(CimdError::Redirect(302)));
        assert_eq!(fetcher.client(claude).await, Err(CimdError::TooLarge(5120)));
        assert_eq!(
            fetcher.client("https://chatgpt.com/missing").await,
            Err(CimdError::Status(404))
        );
    }

    #[tokio::test]
    async fn cache_is_bounded() {
        let ids: Vec<String> = (0..5)
            .map(|i| format!("https://vscode.dev/doc{i}"))
            .collect();
        let source = canned(
            ids.iter()
                .map(|id| (id.as_str(), Ok(fetched(doc(id), Some("max-age=3600")))))
                .collect(),
        );
        let mut fetcher = CimdFetcher::new(policy(), source.clone());
        fetcher.max_entries = 3;
        let t0 = Instant::now();
        for (i, id) in ids.iter().enumerate() {
            fetcher
                .client_at(id, t0 + Duration::from_secs(i as u64))
                .await
                .unwrap();
            assert!(fetcher.lock().len() <= 3);
        }
        // the oldest entries were evicted, the newest kept
        let cache = fetcher.lock();
        assert!(!cache.contains_key(&ids[0]));
        assert!(cache.contains_key(&ids[4]));
    }

    // ---- the production source's gates (no network needed) ----

    struct FixedResolver(std::io::Result<Vec<SocketAddr>>, Duration);

    #[async_trait]
    impl Resolve for FixedResolver {
        async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            assert_eq!(port, 443);
            tokio::time::sleep(self.1).await;
            match &self.0 {
                Ok(addresses) => Ok(addresses.clone()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            }
        }
    }

    fn https_source(answer: std::io::Result<Vec<&str>>, delay: Duration) -> HttpsSource {
        let answer = answer.map(|ips| {
            ips.into_iter()
                .map(|s| SocketAddr::new(ip(s), 443))
                .collect()
        });
        HttpsSource::with_resolver(Arc::new(FixedResolver(answer, delay)))
    }

    const LIMITS: FetchLimits = FetchLimits {
        max_bytes: 5120,
        timeout: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn https_source_refuses_non_public_answers_before_connecting() {
        for answer in [
            vec!["127.0.0.1"],
            vec!["169.254.169.254"],
            vec!["10.1.2.3"],
            vec!["::1"],
            vec!["::ffff:192.168.0.1"],
            vec!["fd00::1"],
            vec!["1.1.1.1", "192.168.0.1"],
            vec!["2606:4700:4700::1111", "fe80::1"],
        ] {
            let source = https_source(Ok(answer.clone()), Duration::ZERO);
            let err = source.fetch(&url(VSCODE), LIMITS).await.unwrap_err();
            assert!(
                matches!(err, CimdError::NonPublicAddress { .. }),
                "{answer:?}: {err:?}"
            );
        }
        let source = https_source(Ok(vec![]), Duration::ZERO);
        assert_eq!(
            source.fetch(&url(VSCODE), LIMITS).await,
            Err(CimdError::NoAddress("vscode.dev".into()))
        );
        let source = https_source(
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "nxdomain",
            )),
            Duration::ZERO,
        );
        assert!(matches!(
            source.fetch(&url(VSCODE), LIMITS).await,
            Err(CimdError::Resolve { .. })
        ));
    }

    #[tokio::test]
    async fn https_source_time_cap_covers_resolution() {
        let source = https_source(Ok(vec!["1.1.1.1"]), Duration::from_secs(30));
        let limits = FetchLimits {
            max_bytes: 5120,
            timeout: Duration::from_millis(50),
        };
        assert_eq!(
            source.fetch(&url(VSCODE), limits).await,
            Err(CimdError::Timeout(Duration::from_millis(50)))
        );
    }

    // ---- localhost names, pins and extra roots ----

    #[test]
    fn localhost_names_are_recognised() {
        for name in [
            "localhost",
            "LOCALHOST",
            "docs.localhost",
            "a.b.localhost",
            "docs.localhost.",
        ] {
            assert!(is_localhost_name(name), "{name}");
        }
        for name in [
            "notlocalhost",
            "localhost.example",
            "mylocalhost.dev",
            "localhos",
            "",
            ".",
        ] {
            assert!(!is_localhost_name(name), "{name}");
        }
    }

    fn policy_allowing(domains: &[&str]) -> CimdPolicy {
        CimdPolicy {
            allowed_domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            ..policy()
        }
    }

    #[tokio::test]
    async fn localhost_names_are_loopback_and_refused_without_a_lookup() {
        let addresses = SystemResolver.resolve("docs.localhost", 443).await.unwrap();
        assert_eq!(
            addresses,
            vec![
                "127.0.0.1:443".parse::<SocketAddr>().unwrap(),
                "[::1]:443".parse().unwrap()
            ]
        );
        let url = DocumentUrl::parse(
            "https://docs.localhost/client.json",
            &policy_allowing(&["docs.localhost"]),
        )
        .unwrap();
        assert_eq!(
            HttpsSource::new().fetch(&url, LIMITS).await,
            Err(CimdError::NonPublicAddress {
                host: "docs.localhost".into(),
                address: ip("127.0.0.1"),
            })
        );
    }

    /// A resolver answering private addresses, counting lookups.
    struct PrivateResolver(AtomicUsize);

    #[async_trait]
    impl Resolve for PrivateResolver {
        async fn resolve(&self, _host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![SocketAddr::new(ip("10.0.0.1"), port)])
        }
    }

    #[tokio::test]
    async fn a_pinned_host_connects_to_its_pin_without_a_lookup() {
        // Something that accepts one connection and closes it (no TLS).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pin = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move { listener.accept().await.map(|(_, peer)| peer) });
        let resolver = Arc::new(PrivateResolver(AtomicUsize::new(0)));
        let source = HttpsSource::with_resolver(resolver.clone()).with_pin("VSCode.dev", pin);
        match source.fetch(&url(VSCODE), LIMITS).await {
            Err(CimdError::Fetch(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(accepted.await.unwrap().is_ok(), "connected to the pin");
        assert_eq!(resolver.0.load(Ordering::SeqCst), 0, "no lookup");
        // Another host is looked up and checked as before.
        let claude = "https://claude.ai/oauth/claude-code-client-metadata";
        assert_eq!(
            source.fetch(&url(claude), LIMITS).await,
            Err(CimdError::NonPublicAddress {
                host: "claude.ai".into(),
                address: ip("10.0.0.1"),
            })
        );
        assert_eq!(resolver.0.load(Ordering::SeqCst), 1);
    }

    /// A throwaway self-signed CA, in PEM.
    fn ca_pem() -> String {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Warden unit test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn root_certificates_must_be_pem_certificates() {
        let pem = ca_pem();
        let source = HttpsSource::new()
            .with_root_certificates(pem.as_bytes())
            .unwrap();
        assert_eq!(source.extra_roots.len(), 1);
        let two = format!("{pem}{}", ca_pem());
        let source = HttpsSource::new()
            .with_root_certificates(two.as_bytes())
            .unwrap();
        assert_eq!(source.extra_roots.len(), 2);
        for (bad, needle) in [
            ("", "no PEM certificate"),
            ("not a certificate\n", "no PEM certificate"),
            (
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no PEM certificate",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not usable as root certificates",
            ),
            (
                "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "not a PEM certificate bundle",
            ),
        ] {
            let err = HttpsSource::new()
                .with_root_certificates(bad.as_bytes())
                .unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn from_config_reads_the_ca_file_and_the_pins() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_pem()).unwrap();
        let mut config = CimdConfig {
            ca_file: Some(ca.clone()),
            ..CimdConfig::default()
        };
        config
            .connect_to
            .insert("vscode.dev".into(), "10.0.0.5:8443".into());
        let source = HttpsSource::from_config(&config).unwrap();
        assert_eq!(source.extra_roots.len(), 1);
        assert_eq!(
            source.pins,
            HashMap::from([("vscode.dev".to_owned(), "10.0.0.5:8443".parse().unwrap())])
        );
        // The defaults: no extra roots, no pins.
        let source = HttpsSource::from_config(&CimdConfig::default()).unwrap();
        assert!(source.extra_roots.is_empty() && source.pins.is_empty());
        // Errors name the key (and the file).
        config
            .connect_to
            .insert("vscode.dev".into(), "10.0.0.5".into());
        let err = HttpsSource::from_config(&config).unwrap_err();
        assert_eq!(err.key, "cimd.connect_to.\"vscode.dev\"");
        config.connect_to.clear();
        for (contents, needle) in [
            (None, "No such file"),
            (Some("nothing here"), "no PEM certificate"),
        ] {
            let path = dir.path().join("other.pem");
            if let Some(contents) = contents {
                std::fs::write(&path, contents).unwrap();
            }
            config.ca_file = Some(path.clone());
            let err = HttpsSource::from_config(&config).unwrap_err();
            assert_eq!(err.key, "cimd.ca_file");
            assert!(
                err.to_string().starts_with("oauth.cimd.ca_file: ")
                    && err.message.contains(&path.display().to_string())
                    && err.message.contains(needle),
                "{err}"
            );
        }
    }
}
