//! `[oauth]`: Warden as the MCP clients' authorization server (planned; not
//! read by `warden.toml` yet).
//!
//! ```toml
//! [oauth]
//! mode = "facade"                          # off (default) | facade | both
//! issuer = "https://warden.example.com"    # public base URL, no trailing slash
//! scopes = ["mcp"]                         # scopes_supported (offline_access is added)
//! step_up_scope = "mfa"                    # asks Entra for MFA (identity.mfa_auth_contexts)
//! key_file = "/etc/warden/oauth-keys"      # see oauth::seal for the format
//! pepper_file = "/etc/warden/oauth-pepper" # see oauth::tokens for the format
//!
//! [oauth.lifetimes]                        # all optional; defaults shown
//! code = "60s"
//! transaction = "10m"
//! session = "8h"
//! consent = "30d"
//! access_token = "60m"
//! refresh_idle = "14d"
//! refresh_absolute = "90d"
//! refresh_reuse_grace = "60s"
//!
//! [[oauth.pre_registered]]
//! client_id = "ops-cli"
//! name = "Operations CLI"
//! redirect_uris = ["http://127.0.0.1/callback"]
//!
//! [oauth.cimd]
//! enabled = true
//! allowed_domains = ["vscode.dev", "claude.ai", "chatgpt.com", "contoso.com"]
//! include_subdomains = true
//! allow_any_domain = false
//! max_bytes = 5120
//! timeout = "5s"
//! ca_file = "/etc/warden/corporate-ca.pem"   # optional: roots trusted beside the web's
//!
//! [oauth.cimd.connect_to]                  # optional: operator-pinned destinations
//! "clients.contoso.com" = "10.20.0.5:8443" # replaces DNS for that host
//!
//! [oauth.dcr]
//! enabled = true
//! rate_limit_per_hour = 20
//!
//! [oauth.entra]
//! tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
//! client_id = "00000000-0000-0000-0000-000000000001"
//! scope = "api://warden/Mcp.Access"
//! authority = "https://login.microsoftonline.com"
//!
//! [oauth.entra.credential]                 # Warden as a confidential client
//! kind = "client_secret"                   # or "client_certificate", "workload_identity"
//! tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
//! client_id = "00000000-0000-0000-0000-000000000001"
//! secret_file = "/etc/warden/entra-secret"
//! ```
//!
//! `[oauth.entra.credential]` takes the `[azure.credential]` kinds that can
//! act as a confidential client ([`crate::azure::credential`], same keys):
//!
//! * `kind = "client_secret"`: `tenant_id`, `client_id`, `secret_file`;
//! * `kind = "client_certificate"`: `tenant_id`, `client_id`,
//!   `certificate_file` (PEM: the certificate and its RSA private key) and
//!   optionally `private_key_file` (the key, when it is a file of its
//!   own); Warden signs a `private_key_jwt` client assertion with it
//!   ([`crate::azure::certificate`]);
//! * `kind = "workload_identity"`: `tenant_id`, `client_id`, `token_file`
//!   (defaults from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_FEDERATED_TOKEN_FILE`), a federated token sent as the client
//!   assertion.
//!
//! The files are read at start-up (the federated token on every request);
//! relative paths are relative to the configuration file's folder.
//!
//! Every field has a default, so an empty table deserializes;
//! [`OAuthConfig::validate`] insists on `issuer`, `key_file`,
//! `pepper_file`, the `entra` ids and its credential unless `mode = "off"`, and checks every
//! value that is present in any mode.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::client::display_safe_name;
use super::metadata::{Issuer, MetadataOptions};
use super::redirect::validate_registration;

/// Whether Warden's own authorization server is on, and beside what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuthMode {
    /// Off: clients bring Entra ID tokens, as today.
    #[default]
    Off,
    /// Warden is the authorization server in the protected-resource
    /// metadata; Entra tokens for Warden are still accepted from
    /// pre-registered apps and agents.
    Facade,
    /// Both authorization servers are listed: Warden's first, then Entra.
    Both,
}

/// A configuration error, naming the key as `oauth.<key>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("oauth.{key}: {message}")]
pub struct OAuthConfigError {
    /// The key below `oauth.` (e.g. `lifetimes.access_token`,
    /// `pre_registered[0].redirect_uris`).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn fail(key: impl Into<String>, message: impl Into<String>) -> OAuthConfigError {
    OAuthConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The `[oauth]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// `off` (default), `facade` or `both`.
    pub mode: OAuthMode,
    /// The issuer: Warden's public base URL (`https://warden.example.com`),
    /// which is also the origin of `/mcp`. Required unless off.
    pub issuer: Option<String>,
    /// Warden's scopes, published in `scopes_supported` (with
    /// `offline_access`). Default `["mcp"]`.
    pub scopes: Vec<String>,
    /// The scope a client asks for to step up to multi-factor
    /// authentication: an authorization request with it makes Warden ask
    /// Entra for the first of `identity.mfa_auth_contexts` (a `claims`
    /// request), and Warden names it in the `403 insufficient_scope`
    /// challenge when policy wants a step-up. Offered (and advertised)
    /// only when an MFA authentication context is configured. Default
    /// `"mfa"`; not one of `scopes`, not `offline_access`.
    pub step_up_scope: String,
    /// The key-encryption key file ([`crate::oauth::seal`]). Required
    /// unless off.
    pub key_file: Option<PathBuf>,
    /// The HMAC key of token hashes ([`crate::oauth::tokens::Pepper`]).
    /// Required unless off.
    pub pepper_file: Option<PathBuf>,
    /// Lifetimes of codes, transactions, sessions, consents and tokens.
    pub lifetimes: Lifetimes,
    /// Clients configured here rather than registered.
    pub pre_registered: Vec<PreRegisteredClient>,
    /// Client ID Metadata Documents.
    pub cimd: CimdConfig,
    /// Dynamic client registration.
    pub dcr: DcrConfig,
    /// Warden as a client of Entra ID.
    pub entra: EntraUpstreamConfig,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            mode: OAuthMode::Off,
            issuer: None,
            scopes: vec!["mcp".to_owned()],
            step_up_scope: "mfa".to_owned(),
            key_file: None,
            pepper_file: None,
            lifetimes: Lifetimes::default(),
            pre_registered: Vec::new(),
            cimd: CimdConfig::default(),
            dcr: DcrConfig::default(),
            entra: EntraUpstreamConfig::default(),
        }
    }
}

/// `[oauth.lifetimes]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lifetimes {
    /// Authorization code. Default `60s`; 1s ..= 10m.
    #[serde(with = "humantime_serde")]
    pub code: Duration,
    /// Authorization transaction (consent → Entra → callback). Default
    /// `10m`; 1m ..= 1h.
    #[serde(with = "humantime_serde")]
    pub transaction: Duration,
    /// Signed session cookie that lets a remembered consent skip the page.
    /// Default `8h`; 5m ..= 7d.
    #[serde(with = "humantime_serde")]
    pub session: Duration,
    /// A remembered consent for (client, redirect URI, scopes). Default
    /// `30d`; at most 365d; `0s` asks every time.
    #[serde(with = "humantime_serde")]
    pub consent: Duration,
    /// Access token (never past the grant's end). Default `60m`;
    /// 5m ..= 24h.
    #[serde(with = "humantime_serde")]
    pub access_token: Duration,
    /// A grant whose refresh token is unused this long ends. Default
    /// `14d`; at least `access_token`, at most `refresh_absolute`.
    #[serde(with = "humantime_serde")]
    pub refresh_idle: Duration,
    /// A grant ends this long after sign-in, used or not. Default `90d`;
    /// 1h ..= 365d.
    #[serde(with = "humantime_serde")]
    pub refresh_absolute: Duration,
    /// A rotated refresh token is still honoured this long if its successor
    /// is unused (a client that lost the response). Default `60s`; at most
    /// `5m`; `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub refresh_reuse_grace: Duration,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: Duration::from_secs(60),
            transaction: 10 * MINUTE,
            session: 8 * HOUR,
            consent: 30 * DAY,
            access_token: 60 * MINUTE,
            refresh_idle: 14 * DAY,
            refresh_absolute: 90 * DAY,
            refresh_reuse_grace: MINUTE,
        }
    }
}

impl Lifetimes {
    fn validate(&self) -> Result<(), OAuthConfigError> {
        let range = |key: &str, value: Duration, min: Duration, max: Duration, text: &str| {
            if value < min || value > max {
                Err(fail(format!("lifetimes.{key}"), format!("must be {text}")))
            } else {
                Ok(())
            }
        };
        range(
            "code",
            self.code,
            Duration::from_secs(1),
            10 * MINUTE,
            "between 1s and 10m",
        )?;
        range(
            "transaction",
            self.transaction,
            MINUTE,
            HOUR,
            "between 1m and 1h",
        )?;
        range(
            "session",
            self.session,
            5 * MINUTE,
            7 * DAY,
            "between 5m and 7d",
        )?;
        range(
            "consent",
            self.consent,
            Duration::ZERO,
            365 * DAY,
            "at most 365d",
        )?;
        range(
            "access_token",
            self.access_token,
            5 * MINUTE,
            DAY,
            "between 5m and 24h",
        )?;
        range(
            "refresh_absolute",
            self.refresh_absolute,
            HOUR,
            365 * DAY,
            "between 1h and 365d",
        )?;
        if self.refresh_idle < self.access_token {
            return Err(fail(
                "lifetimes.refresh_idle",
                "must be at least lifetimes.access_token",
            ));
        }
        if self.refresh_idle > self.refresh_absolute {
            return Err(fail(
                "lifetimes.refresh_idle",
                "must be at most lifetimes.refresh_absolute",
            ));
        }
        range(
            "refresh_reuse_grace",
            self.refresh_reuse_grace,
            Duration::ZERO,
            5 * MINUTE,
            "at most 5m",
        )
    }
}

/// `[[oauth.pre_registered]]`: a client known from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreRegisteredClient {
    /// The client id the client sends: 1 to 128 printable ASCII characters,
    /// not starting with `wdc_` (dynamic registrations) and not a URL
    /// (metadata documents).
    pub client_id: String,
    /// Shown on the consent page. 1 to 100 characters.
    pub name: String,
    /// Its redirect URIs ([`crate::oauth::redirect`] rules).
    pub redirect_uris: Vec<String>,
}

/// `[oauth.cimd]`: Client ID Metadata Documents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CimdConfig {
    /// Accept `client_id`s that are HTTPS URLs of a metadata document, and
    /// advertise it. Default true.
    pub enabled: bool,
    /// Hosts whose documents are fetched. Default `vscode.dev`,
    /// `claude.ai`, `chatgpt.com`.
    pub allowed_domains: Vec<String>,
    /// A listed domain also allows its subdomains (`insiders.vscode.dev`).
    /// Default true.
    pub include_subdomains: bool,
    /// Fetch documents from any public HTTPS host (the address checks
    /// remain). Default false.
    pub allow_any_domain: bool,
    /// Largest document, in bytes. Default 5120; 256 ..= 65536.
    pub max_bytes: usize,
    /// Time for the whole fetch (DNS, connect, TLS, body). Default `5s`;
    /// 1s ..= 30s.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM file of root CAs trusted for document fetches beside the web
    /// roots of the system (e.g. a corporate CA that signs an internal
    /// document host). Read at start. Default none.
    pub ca_file: Option<PathBuf>,
    /// Operator-pinned destinations: host → `"ip:port"` (like curl's
    /// `--connect-to`). A pinned host is not looked up in DNS; its
    /// connections go to that address, which may be private. The document
    /// URL stays `https://host/...` on the default port (the certificate
    /// is checked for `host`); every other host must resolve to public
    /// addresses only. A pinned host must be one the allowlist allows.
    /// Default none.
    pub connect_to: BTreeMap<String, String>,
}

/// The default CIMD domain allowlist.
pub const DEFAULT_CIMD_DOMAINS: [&str; 3] = ["vscode.dev", "claude.ai", "chatgpt.com"];

impl Default for CimdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_domains: DEFAULT_CIMD_DOMAINS
                .iter()
                .map(|d| (*d).to_owned())
                .collect(),
            include_subdomains: true,
            allow_any_domain: false,
            max_bytes: 5120,
            timeout: Duration::from_secs(5),
            ca_file: None,
            connect_to: BTreeMap::new(),
        }
    }
}

impl CimdConfig {
    /// The `connect_to` pins, parsed (only valid entries: see
    /// [`OAuthConfig::validate`]).
    pub fn pins(&self) -> Result<Vec<(String, SocketAddr)>, OAuthConfigError> {
        self.connect_to
            .iter()
            .map(|(host, target)| {
                check_pin(self, host, target).map(|address| (host.clone(), address))
            })
            .collect()
    }
}

/// Checks one `connect_to` entry: the address it pins `host` to.
fn check_pin(cimd: &CimdConfig, host: &str, target: &str) -> Result<SocketAddr, OAuthConfigError> {
    if !is_domain_name(host) {
        return Err(fail(
            "cimd.connect_to",
            format!(
                "{host:?} is not a lower-case domain name with at least two labels (no scheme, port, path or wildcard)"
            ),
        ));
    }
    let key = format!("cimd.connect_to.{host:?}");
    let address: SocketAddr = target.parse().map_err(|_| {
        fail(
            &key,
            format!(
                "{target:?} is not \"ip:port\" (e.g. \"10.20.0.5:8443\" or \"[fd00::5]:443\"; no host names)"
            ),
        )
    })?;
    if address.port() == 0 {
        return Err(fail(&key, format!("{target:?} has port 0")));
    }
    let ip = address.ip();
    let broadcast = ip == std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err(fail(
            &key,
            format!("{target:?} is not a unicast address a connection can go to"),
        ));
    }
    if !super::cimd::CimdPolicy::from(cimd).allows_host(host) {
        return Err(fail(
            &key,
            format!(
                "{host} is not allowed by oauth.cimd.allowed_domains, so no document is ever fetched from it"
            ),
        ));
    }
    Ok(address)
}

/// `[oauth.dcr]`: dynamic client registration (RFC 7591).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DcrConfig {
    /// Serve `/register` and advertise it. Default true.
    pub enabled: bool,
    /// Registrations allowed per client address (IPv6: per /64) per hour.
    /// Default 20; 1 ..= 10000.
    pub rate_limit_per_hour: u32,
}

impl Default for DcrConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_limit_per_hour: 20,
        }
    }
}

/// `[oauth.entra]`: Warden as a confidential client of Entra ID.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntraUpstreamConfig {
    /// The tenant (directory) id users sign in to. Required unless off.
    pub tenant: Option<String>,
    /// Warden's application (client) id in that tenant. Required unless
    /// off.
    pub client_id: Option<String>,
    /// The delegated scope of Warden's API asked for, e.g.
    /// `api://warden/Mcp.Access`; `openid profile offline_access` are added.
    /// Required unless off.
    pub scope: Option<String>,
    /// Base URL of the authority. Default
    /// `https://login.microsoftonline.com`; `http` only on loopback.
    pub authority: String,
    /// How Warden authenticates to Entra as a confidential client: an
    /// `[azure.credential]`-style table, `kind = "client_secret"` (with
    /// `secret_file`), `kind = "client_certificate"` (`certificate_file`
    /// and optionally `private_key_file`: a signed client assertion) or
    /// `kind = "workload_identity"` (a federated token file sent as a
    /// client assertion). Required unless off.
    pub credential: Option<crate::azure::credential::CredentialConfig>,
}

impl Default for EntraUpstreamConfig {
    fn default() -> Self {
        Self {
            tenant: None,
            client_id: None,
            scope: None,
            authority: DEFAULT_ENTRA_AUTHORITY.to_owned(),
            credential: None,
        }
    }
}

/// The public cloud's authority.
pub const DEFAULT_ENTRA_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Scopes Warden adds to the upstream request itself.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

impl EntraUpstreamConfig {
    fn validate(&self, required: bool) -> Result<(), OAuthConfigError> {
        for (key, value) in [
            ("entra.tenant", &self.tenant),
            ("entra.client_id", &self.client_id),
        ] {
            match value {
                Some(v) if !is_guid(v) => {
                    return Err(fail(key, format!("{v:?} is not a GUID")));
                }
                None if required => return Err(fail(key, "is required when mode is not off")),
                _ => {}
            }
        }
        match &self.scope {
            Some(scope) => check_upstream_scope(scope)?,
            None if required => {
                return Err(fail(
                    "entra.scope",
                    "is required when mode is not off, e.g. \"api://warden/Mcp.Access\"",
                ));
            }
            None => {}
        }
        Issuer::parse(&self.authority).map_err(|e| fail("entra.authority", e.to_string()))?;
        if required && self.credential.is_none() {
            return Err(fail(
                "entra.credential",
                "is required when mode is not off: kind = \"client_secret\" (secret_file), \
                 kind = \"client_certificate\" (certificate_file) or kind = \"workload_identity\"",
            ));
        }
        Ok(())
    }
}

fn check_upstream_scope(scope: &str) -> Result<(), OAuthConfigError> {
    let bad = |message: String| Err(fail("entra.scope", message));
    if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad(format!("{scope:?} must be one scope without spaces"));
    }
    if OIDC_SCOPES.contains(&scope) {
        return bad(format!(
            "{scope:?} is added by Warden; name the scope of Warden's API, e.g. \"api://warden/Mcp.Access\""
        ));
    }
    match scope.rsplit_once('/') {
        Some((resource, name)) if !resource.is_empty() && !name.is_empty() => Ok(()),
        _ => bad(format!(
            "{scope:?} must be <application id URI>/<scope>, e.g. \"api://warden/Mcp.Access\""
        )),
    }
}

impl OAuthConfig {
    /// Makes the key, pepper, credential and CA files relative to `base`
    /// (the configuration file's folder); an empty path stays empty, for
    /// [`OAuthConfig::validate`] to refuse.
    pub fn resolve(&mut self, base: &std::path::Path) {
        for path in [
            &mut self.key_file,
            &mut self.pepper_file,
            &mut self.cimd.ca_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
        if let Some(credential) = &mut self.entra.credential {
            credential.resolve_files(base);
        }
    }

    /// Whether Warden's authorization server is on.
    pub fn enabled(&self) -> bool {
        self.mode != OAuthMode::Off
    }

    /// What the metadata document depends on besides the issuer.
    pub fn metadata_options(&self) -> MetadataOptions {
        MetadataOptions {
            dcr_enabled: self.dcr.enabled,
            cimd_enabled: self.cimd.enabled,
            scopes: self.scopes.clone(),
            step_up_scope: None,
        }
    }

    /// The parsed issuer, if set and valid.
    pub fn parsed_issuer(&self) -> Option<Issuer> {
        self.issuer.as_deref().and_then(|i| Issuer::parse(i).ok())
    }

    /// Checks every value; the error names the key as `oauth.<key>`.
    pub fn validate(&self) -> Result<(), OAuthConfigError> {
        let required = self.enabled();
        match &self.issuer {
            Some(issuer) => {
                Issuer::parse(issuer).map_err(|e| fail("issuer", e.to_string()))?;
            }
            None if required => {
                return Err(fail(
                    "issuer",
                    "is required when mode is not off: Warden's public base URL, e.g. \"https://warden.example.com\"",
                ));
            }
            None => {}
        }
        for scope in &self.scopes {
            if !is_scope_token(scope) {
                return Err(fail(
                    "scopes",
                    format!(
                        "{scope:?} is not a scope (printable ASCII, no spaces, quotes or backslashes)"
                    ),
                ));
            }
        }
        self.validate_step_up_scope()?;
        for (key, value) in [
            ("key_file", &self.key_file),
            ("pepper_file", &self.pepper_file),
        ] {
            match value {
                Some(path) if path.as_os_str().is_empty() => {
                    return Err(fail(key, "must not be empty"));
                }
                None if required => return Err(fail(key, "is required when mode is not off")),
                _ => {}
            }
        }
        if let (Some(a), Some(b)) = (&self.key_file, &self.pepper_file)
            && a == b
        {
            return Err(fail(
                "pepper_file",
                "must be another file than oauth.key_file",
            ));
        }
        self.lifetimes.validate()?;
        self.validate_pre_registered()?;
        self.validate_cimd()?;
        if !(1..=10_000).contains(&self.dcr.rate_limit_per_hour) {
            return Err(fail(
                "dcr.rate_limit_per_hour",
                "must be between 1 and 10000",
            ));
        }
        self.entra.validate(required)
    }

    fn validate_step_up_scope(&self) -> Result<(), OAuthConfigError> {
        let scope = &self.step_up_scope;
        if !is_scope_token(scope) {
            return Err(fail(
                "step_up_scope",
                format!(
                    "{scope:?} is not a scope (printable ASCII, no spaces, quotes or backslashes)"
                ),
            ));
        }
        if scope == super::metadata::OFFLINE_ACCESS || self.scopes.contains(scope) {
            return Err(fail(
                "step_up_scope",
                format!(
                    "{scope:?} must differ from oauth.scopes and offline_access: it asks for a stronger sign-in, not for access"
                ),
            ));
        }
        Ok(())
    }

    fn validate_pre_registered(&self) -> Result<(), OAuthConfigError> {
        for (index, client) in self.pre_registered.iter().enumerate() {
            let key = |field: &str| format!("pre_registered[{index}].{field}");
            let id = &client.client_id;
            if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(fail(
                    key("client_id"),
                    format!("{id:?} must be 1 to 128 printable ASCII characters without spaces"),
                ));
            }
            if id.starts_with(super::dcr::CLIENT_ID_PREFIX) || id.contains("://") {
                return Err(fail(
                    key("client_id"),
                    format!(
                        "{id:?} is reserved: ids starting with \"wdc_\" are dynamic registrations and URLs are metadata documents"
                    ),
                ));
            }
            if self.pre_registered[..index]
                .iter()
                .any(|other| other.client_id == *id)
            {
                return Err(fail(key("client_id"), format!("{id:?} is listed twice")));
            }
            if display_safe_name(&client.name).is_none() {
                return Err(fail(
                    key("name"),
                    "must be 1 to 100 characters without control or invisible characters",
                ));
            }
            validate_registration(&client.redirect_uris)
                .map_err(|e| fail(key("redirect_uris"), e.to_string()))?;
        }
        Ok(())
    }

    fn validate_cimd(&self) -> Result<(), OAuthConfigError> {
        let cimd = &self.cimd;
        for domain in &cimd.allowed_domains {
            if !is_domain_name(domain) {
                return Err(fail(
                    "cimd.allowed_domains",
                    format!(
                        "{domain:?} is not a lower-case domain name with at least two labels (no scheme, port, path or wildcard)"
                    ),
                ));
            }
        }
        if cimd.enabled && !cimd.allow_any_domain && cimd.allowed_domains.is_empty() {
            return Err(fail(
                "cimd.allowed_domains",
                "is empty, so no document could be fetched; list domains or set cimd.enabled = false",
            ));
        }
        if !(256..=65_536).contains(&cimd.max_bytes) {
            return Err(fail("cimd.max_bytes", "must be between 256 and 65536"));
        }
        if cimd.timeout < Duration::from_secs(1) || cimd.timeout > Duration::from_secs(30) {
            return Err(fail("cimd.timeout", "must be between 1s and 30s"));
        }
        if cimd
            .ca_file
            .as_ref()
            .is_some_and(|path| path.as_os_str().is_empty())
        {
            return Err(fail("cimd.ca_file", "must not be empty"));
        }
        cimd.pins().map(drop)
    }
}

/// A lower-case DNS name of at least two labels, each 1–63 characters of
/// `a-z 0-9 -` not starting or ending with `-`.
pub(crate) fn is_domain_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && !labels
            .last()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

/// RFC 6749 `scope-token`: `%x21 / %x23-5B / %x5D-7E`, at least one.
pub(crate) fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn is_guid(value: &str) -> bool {
    uuid::Uuid::try_parse(value).is_ok() && value.len() == 36
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        oauth: OAuthConfig,
    }

    fn parse(text: &str) -> Result<OAuthConfig, toml::de::Error> {
        toml::from_str::<File>(text).map(|f| f.oauth)
    }

    const FULL: &str = r#"
        [oauth]
        mode = "facade"
        issuer = "https://warden.example.com"
        scopes = ["mcp", "warden.mfa"]
        key_file = "/etc/warden/oauth-keys"
        pepper_file = "/etc/warden/oauth-pepper"

        [oauth.lifetimes]
        code = "30s"
        access_token = "15m"
        refresh_idle = "7d"

        [[oauth.pre_registered]]
        client_id = "ops-cli"
        name = "Operations CLI"
        redirect_uris = ["http://127.0.0.1/callback", "https://ops.example.com/cb"]

        [oauth.cimd]
        allowed_domains = ["vscode.dev", "claude.ai"]
        max_bytes = 4096
        timeout = "3s"

        [oauth.dcr]
        enabled = false
        rate_limit_per_hour = 5

        [oauth.entra]
        tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        client_id = "00000000-0000-0000-0000-000000000001"
        scope = "api://warden/Mcp.Access"

        [oauth.entra.credential]
        kind = "client_secret"
        tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        client_id = "00000000-0000-0000-0000-000000000001"
        secret_file = "/etc/warden/entra-secret"
    "#;

    fn full() -> OAuthConfig {
        parse(FULL).unwrap()
    }

    #[test]
    fn empty_table_is_off_with_defaults_and_valid() {
        let config = parse("[oauth]\n").unwrap();
        assert_eq!(config, OAuthConfig::default());
        assert_eq!(config.mode, OAuthMode::Off);
        assert!(!config.enabled());
        assert_eq!(config.lifetimes.code, Duration::from_secs(60));
        assert_eq!(config.lifetimes.transaction, Duration::from_secs(600));
        assert_eq!(config.lifetimes.session, Duration::from_secs(8 * 3600));
        assert_eq!(config.lifetimes.consent, Duration::from_secs(30 * 86_400));
        assert_eq!(config.lifetimes.access_token, Duration::from_secs(3600));
        assert_eq!(
            config.lifetimes.refresh_idle,
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(
            config.lifetimes.refresh_absolute,
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            config.lifetimes.refresh_reuse_grace,
            Duration::from_secs(60)
        );
        assert_eq!(
            config.cimd.allowed_domains,
            vec!["vscode.dev", "claude.ai", "chatgpt.com"]
        );
        assert!(config.cimd.enabled && config.cimd.include_subdomains);
        assert!(!config.cimd.allow_any_domain);
        assert_eq!(config.cimd.max_bytes, 5120);
        assert_eq!(config.cimd.timeout, Duration::from_secs(5));
        assert!(config.dcr.enabled);
        assert_eq!(config.dcr.rate_limit_per_hour, 20);
        assert_eq!(config.entra.authority, "https://login.microsoftonline.com");
        assert_eq!(config.scopes, vec!["mcp"]);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn full_example_parses_and_validates() {
        let config = full();
        assert_eq!(config.mode, OAuthMode::Facade);
        assert_eq!(config.lifetimes.code, Duration::from_secs(30));
        assert_eq!(config.lifetimes.access_token, Duration::from_secs(900));
        assert_eq!(
            config.lifetimes.refresh_idle,
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(config.pre_registered.len(), 1);
        assert_eq!(config.pre_registered[0].redirect_uris.len(), 2);
        assert!(!config.dcr.enabled);
        assert_eq!(config.cimd.timeout, Duration::from_secs(3));
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.parsed_issuer().unwrap().as_str(),
            "https://warden.example.com"
        );
        assert_eq!(
            parse("[oauth]\nmode = \"both\"").unwrap().mode,
            OAuthMode::Both
        );
        let options = config.metadata_options();
        assert!(!options.dcr_enabled && options.cimd_enabled);
        assert_eq!(options.scopes, vec!["mcp", "warden.mfa"]);
    }

    #[test]
    fn the_module_documentation_example_is_valid() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.strip_prefix("//! ").unwrap_or("").to_owned() + "\n")
            .collect();
        let config = parse(&example).unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.lifetimes, Lifetimes::default());
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        for text in [
            "[oauth]\nissuer_url = \"x\"",
            "[oauth.lifetimes]\naccess = \"5m\"",
            "[oauth.cimd]\nallowlist = []",
            "[oauth.dcr]\nrate = 1",
            "[oauth.entra]\ntenant_id = \"x\"",
            "[[oauth.pre_registered]]\nclient_id = \"a\"\nname = \"A\"\nredirect_uris = []\nsecret = \"s\"",
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains("unknown field"), "{text}: {err}");
        }
    }

    #[test]
    fn bad_values_are_refused_at_parse_time() {
        for text in [
            "[oauth]\nmode = \"on\"",
            "[oauth]\nmode = \"Facade\"",
            "[oauth.lifetimes]\ncode = \"soon\"",
            "[oauth.lifetimes]\ncode = 60",
            "[oauth.dcr]\nrate_limit_per_hour = -1",
            "[[oauth.pre_registered]]\nclient_id = \"a\"\nname = \"A\"",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }

    fn key_of(config: &OAuthConfig) -> String {
        match config.validate() {
            Ok(()) => panic!("accepted: {config:?}"),
            Err(e) => {
                assert!(e.to_string().starts_with(&format!("oauth.{}: ", e.key)));
                e.key
            }
        }
    }

    #[test]
    fn required_values_when_on() {
        let mut on = OAuthConfig {
            mode: OAuthMode::Facade,
            ..OAuthConfig::default()
        };
        assert_eq!(key_of(&on), "issuer");
        on.issuer = Some("https://warden.example.com".into());
        assert_eq!(key_of(&on), "key_file");
        on.key_file = Some("/k".into());
        assert_eq!(key_of(&on), "pepper_file");
        on.pepper_file = Some("/p".into());
        assert_eq!(key_of(&on), "entra.tenant");
        on.entra.tenant = Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into());
        assert_eq!(key_of(&on), "entra.client_id");
        on.entra.client_id = Some("00000000-0000-0000-0000-000000000001".into());
        assert_eq!(key_of(&on), "entra.scope");
        on.entra.scope = Some("api://warden/Mcp.Access".into());
        assert_eq!(key_of(&on), "entra.credential");
        on.entra.credential = Some(crate::azure::credential::CredentialConfig::ClientSecret {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            secret_file: "/s".into(),
        });
        assert_eq!(on.validate(), Ok(()));
        // the same values are optional when off, but checked when present
        let off = OAuthConfig {
            mode: OAuthMode::Off,
            issuer: Some("http://warden.example.com".into()),
            ..OAuthConfig::default()
        };
        assert_eq!(key_of(&off), "issuer");
    }

    #[test]
    fn issuer_rules() {
        for bad in [
            "warden.example.com",
            "http://warden.example.com",
            "https://warden.example.com/",
            "https://warden.example.com?x",
            "https://Warden.example.com",
        ] {
            let mut config = full();
            config.issuer = Some(bad.into());
            assert_eq!(key_of(&config), "issuer", "{bad}");
        }
        let mut config = full();
        config.issuer = Some("http://127.0.0.1:8080".into());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn lifetime_bounds() {
        type Change = fn(&mut Lifetimes);
        let cases: Vec<(Change, &str)> = vec![
            (|l| l.code = Duration::ZERO, "lifetimes.code"),
            (|l| l.code = Duration::from_secs(601), "lifetimes.code"),
            (
                |l| l.transaction = Duration::from_secs(59),
                "lifetimes.transaction",
            ),
            (
                |l| l.transaction = Duration::from_secs(3601),
                "lifetimes.transaction",
            ),
            (|l| l.session = Duration::from_secs(60), "lifetimes.session"),
            (|l| l.consent = 366 * DAY, "lifetimes.consent"),
            (
                |l| l.access_token = Duration::from_secs(299),
                "lifetimes.access_token",
            ),
            (
                |l| l.access_token = DAY + Duration::from_secs(1),
                "lifetimes.access_token",
            ),
            (
                |l| l.refresh_absolute = 366 * DAY,
                "lifetimes.refresh_absolute",
            ),
            (
                |l| l.refresh_absolute = MINUTE,
                "lifetimes.refresh_absolute",
            ),
            (|l| l.refresh_idle = 10 * MINUTE, "lifetimes.refresh_idle"),
            (|l| l.refresh_idle = 91 * DAY, "lifetimes.refresh_idle"),
            (
                |l| l.refresh_reuse_grace = 6 * MINUTE,
                "lifetimes.refresh_reuse_grace",
            ),
        ];
        for (change, key) in cases {
            let mut config = full();
            change(&mut config.lifetimes);
            assert_eq!(key_of(&config), key);
        }
        // the edges themselves are fine
        let mut config = full();
        config.lifetimes = Lifetimes {
            code: Duration::from_secs(600),
            transaction: HOUR,
            session: 7 * DAY,
            consent: Duration::ZERO,
            access_token: 5 * MINUTE,
            refresh_idle: 5 * MINUTE,
            refresh_absolute: HOUR,
            refresh_reuse_grace: Duration::ZERO,
        };
        assert_eq!(config.validate(), Ok(()));
        config.lifetimes.access_token = DAY;
        config.lifetimes.refresh_idle = DAY;
        config.lifetimes.refresh_absolute = 365 * DAY;
        assert_eq!(config.validate(), Ok(()));
    }

    fn client(id: &str, name: &str, uris: &[&str]) -> PreRegisteredClient {
        PreRegisteredClient {
            client_id: id.into(),
            name: name.into(),
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
        }
    }

    #[test]
    fn pre_registered_rules() {
        let good = client("ops-cli", "Ops", &["https://ops.example.com/cb"]);
        let cases = vec![
            (
                client("", "Ops", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client("a b", "Ops", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client(&"a".repeat(129), "Ops", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client("wdc_abc", "Ops", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client("https://a.example/doc", "Ops", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client("ops-cli", "Ops 2", &["https://a.example/cb"]),
                "pre_registered[1].client_id",
            ),
            (
                client("other", "", &["https://a.example/cb"]),
                "pre_registered[1].name",
            ),
            (
                client("other", "a\nb", &["https://a.example/cb"]),
                "pre_registered[1].name",
            ),
            (
                client("other", &"n".repeat(101), &["https://a.example/cb"]),
                "pre_registered[1].name",
            ),
            (
                client("other", "Ops", &[]),
                "pre_registered[1].redirect_uris",
            ),
            (
                client("other", "Ops", &["http://a.example/cb"]),
                "pre_registered[1].redirect_uris",
            ),
            (
                client("other", "Ops", &["https://a.example/cb#x"]),
                "pre_registered[1].redirect_uris",
            ),
        ];
        for (bad, key) in cases {
            let mut config = full();
            config.pre_registered = vec![good.clone(), bad.clone()];
            assert_eq!(key_of(&config), key, "{bad:?}");
        }
        let mut config = full();
        let message = {
            config.pre_registered = vec![client("x", "X", &["http://example.com/cb"])];
            config.validate().unwrap_err().to_string()
        };
        assert!(message.contains("must use https"), "{message}");
    }

    #[test]
    fn cimd_rules() {
        for domain in [
            "https://vscode.dev",
            "*.vscode.dev",
            "VSCODE.dev",
            "dev",
            "vscode.dev.",
            ".vscode.dev",
            "vscode..dev",
            "-a.dev",
            "vscode.dev:443",
            "vscode.dev/x",
            "127.0.0.1",
            "",
        ] {
            let mut config = full();
            config.cimd.allowed_domains = vec![domain.into()];
            assert_eq!(key_of(&config), "cimd.allowed_domains", "{domain:?}");
        }
        let mut config = full();
        config.cimd.allowed_domains = Vec::new();
        assert_eq!(key_of(&config), "cimd.allowed_domains");
        config.cimd.allow_any_domain = true;
        assert_eq!(config.validate(), Ok(()));
        config.cimd.allow_any_domain = false;
        config.cimd.enabled = false;
        assert_eq!(config.validate(), Ok(()));

        let mut config = full();
        config.cimd.max_bytes = 255;
        assert_eq!(key_of(&config), "cimd.max_bytes");
        config.cimd.max_bytes = 65_537;
        assert_eq!(key_of(&config), "cimd.max_bytes");
        let mut config = full();
        config.cimd.timeout = Duration::from_millis(999);
        assert_eq!(key_of(&config), "cimd.timeout");
        config.cimd.timeout = Duration::from_secs(31);
        assert_eq!(key_of(&config), "cimd.timeout");
    }

    #[test]
    fn cimd_ca_file_and_connect_to_rules() {
        let pinned = |pins: &[(&str, &str)]| {
            let mut config = full();
            config.cimd.connect_to = pins
                .iter()
                .map(|(h, a)| ((*h).to_owned(), (*a).to_owned()))
                .collect();
            config
        };
        for (host, target, key, needle) in [
            (
                "Vscode.dev",
                "10.0.0.5:443",
                "cimd.connect_to",
                "domain name",
            ),
            (
                "vscode.dev:443",
                "10.0.0.5:443",
                "cimd.connect_to",
                "domain name",
            ),
            ("10.0.0.5", "10.0.0.5:443", "cimd.connect_to", "domain name"),
            (
                "*.vscode.dev",
                "10.0.0.5:443",
                "cimd.connect_to",
                "domain name",
            ),
            (
                "vscode.dev",
                "10.0.0.5",
                "cimd.connect_to.\"vscode.dev\"",
                "ip:port",
            ),
            (
                "vscode.dev",
                "internal.example:443",
                "cimd.connect_to.\"vscode.dev\"",
                "ip:port",
            ),
            (
                "vscode.dev",
                "https://10.0.0.5:443",
                "cimd.connect_to.\"vscode.dev\"",
                "ip:port",
            ),
            (
                "vscode.dev",
                "fd00::5:443",
                "cimd.connect_to.\"vscode.dev\"",
                "ip:port",
            ),
            (
                "vscode.dev",
                "",
                "cimd.connect_to.\"vscode.dev\"",
                "ip:port",
            ),
            (
                "vscode.dev",
                "10.0.0.5:0",
                "cimd.connect_to.\"vscode.dev\"",
                "port 0",
            ),
            (
                "vscode.dev",
                "0.0.0.0:443",
                "cimd.connect_to.\"vscode.dev\"",
                "unicast",
            ),
            (
                "vscode.dev",
                "[::]:443",
                "cimd.connect_to.\"vscode.dev\"",
                "unicast",
            ),
            (
                "vscode.dev",
                "224.0.0.1:443",
                "cimd.connect_to.\"vscode.dev\"",
                "unicast",
            ),
            (
                "vscode.dev",
                "255.255.255.255:443",
                "cimd.connect_to.\"vscode.dev\"",
                "unicast",
            ),
            (
                "chatgpt.com",
                "10.0.0.5:443",
                "cimd.connect_to.\"chatgpt.com\"",
                "allowed_domains",
            ),
            (
                "evil.example",
                "10.0.0.5:443",
                "cimd.connect_to.\"evil.example\"",
                "allowed_domains",
            ),
        ] {
            let config = pinned(&[(host, target)]);
            assert_eq!(key_of(&config), key, "{host} = {target}");
            let message = config.validate().unwrap_err().message;
            assert!(message.contains(needle), "{host} = {target}: {message}");
        }
        // Private, loopback and IPv6 destinations are fine when pinned.
        let config = pinned(&[
            ("vscode.dev", "127.0.0.1:8443"),
            ("insiders.vscode.dev", "[fd00::5]:443"),
            ("claude.ai", "10.0.0.5:443"),
        ]);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.cimd.pins().unwrap(),
            vec![
                ("claude.ai".to_owned(), "10.0.0.5:443".parse().unwrap()),
                (
                    "insiders.vscode.dev".to_owned(),
                    "[fd00::5]:443".parse().unwrap()
                ),
                ("vscode.dev".to_owned(), "127.0.0.1:8443".parse().unwrap()),
            ]
        );
        // With any domain allowed, any host may be pinned.
        let mut config = pinned(&[("docs.internal.example", "10.0.0.5:443")]);
        assert_eq!(key_of(&config), "cimd.connect_to.\"docs.internal.example\"");
        config.cimd.allow_any_domain = true;
        assert_eq!(config.validate(), Ok(()));
        // Checked whether or not CIMD is on.
        let mut config = pinned(&[("vscode.dev", "10.0.0.5")]);
        config.cimd.enabled = false;
        assert_eq!(key_of(&config), "cimd.connect_to.\"vscode.dev\"");

        let mut config = full();
        config.cimd.ca_file = Some(PathBuf::new());
        assert_eq!(key_of(&config), "cimd.ca_file");
        config.cimd.ca_file = Some("/etc/warden/corporate-ca.pem".into());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn cimd_ca_file_and_connect_to_parse_and_resolve() {
        let mut config = parse(
            "[oauth.cimd]\nca_file = \"certs/ca.pem\"\n\
             [oauth.cimd.connect_to]\n\"vscode.dev\" = \"10.0.0.5:8443\"\n",
        )
        .unwrap();
        assert_eq!(config.validate(), Ok(()));
        config.resolve(std::path::Path::new("/etc/warden"));
        assert_eq!(
            config.cimd.ca_file,
            Some(PathBuf::from("/etc/warden/certs/ca.pem"))
        );
        assert_eq!(config.cimd.connect_to["vscode.dev"], "10.0.0.5:8443");
        // Absolute and empty paths stay as they are.
        let mut config = full();
        config.cimd.ca_file = Some("/ca.pem".into());
        config.resolve(std::path::Path::new("/etc/warden"));
        assert_eq!(config.cimd.ca_file, Some(PathBuf::from("/ca.pem")));
        config.cimd.ca_file = Some(PathBuf::new());
        config.resolve(std::path::Path::new("/etc/warden"));
        assert_eq!(key_of(&config), "cimd.ca_file");
        // A pin is a string, not a table or a list.
        assert!(parse("[oauth.cimd.connect_to]\n\"vscode.dev\" = [\"10.0.0.5:443\"]").is_err());
        assert!(parse("[oauth.cimd]\nconnect_to = \"vscode.dev=10.0.0.5:443\"").is_err());
    }

    #[test]
    fn dcr_rate_limit_bounds() {
        let mut config = full();
        config.dcr.rate_limit_per_hour = 0;
        assert_eq!(key_of(&config), "dcr.rate_limit_per_hour");
        config.dcr.rate_limit_per_hour = 10_001;
        assert_eq!(key_of(&config), "dcr.rate_limit_per_hour");
        config.dcr.rate_limit_per_hour = 10_000;
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn entra_rules() {
        type Change = fn(&mut EntraUpstreamConfig);
        let cases: Vec<(Change, &str)> = vec![
            (
                |e| e.tenant = Some("contoso.onmicrosoft.com".into()),
                "entra.tenant",
            ),
            (|e| e.tenant = Some("common".into()), "entra.tenant"),
            (|e| e.client_id = Some("warden".into()), "entra.client_id"),
            (
                |e| e.client_id = Some("{00000000-0000-0000-0000-000000000001}".into()),
                "entra.client_id",
            ),
            (|e| e.scope = Some("".into()), "entra.scope"),
            (|e| e.scope = Some("Mcp.Access".into()), "entra.scope"),
            (|e| e.scope = Some("api://warden/".into()), "entra.scope"),
            (
                |e| e.scope = Some("api://warden/Mcp.Access openid".into()),
                "entra.scope",
            ),
            (|e| e.scope = Some("offline_access".into()), "entra.scope"),
            (
                |e| e.authority = "http://login.microsoftonline.com".into(),
                "entra.authority",
            ),
            (
                |e| e.authority = "login.microsoftonline.com".into(),
                "entra.authority",
            ),
        ];
        for (change, key) in cases {
            let mut config = full();
            change(&mut config.entra);
            assert_eq!(key_of(&config), key, "{:?}", config.entra);
        }
        let mut config = full();
        config.entra.scope = Some("00000000-0000-0000-0000-000000000001/.default".into());
        config.entra.authority = "http://127.0.0.1:9000".into();
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn other_top_level_rules() {
        let mut config = full();
        config.scopes = vec!["mcp tools".into()];
        assert_eq!(key_of(&config), "scopes");
        config.scopes = vec!["".into()];
        assert_eq!(key_of(&config), "scopes");
        config.scopes = vec!["say\"hi\"".into()];
        assert_eq!(key_of(&config), "scopes");
        config.scopes = Vec::new();
        assert_eq!(config.validate(), Ok(()));

        let mut config = full();
        assert_eq!(config.step_up_scope, "mfa");
        for bad in ["", "m f a", "mcp", "offline_access"] {
            config.step_up_scope = bad.into();
            assert_eq!(key_of(&config), "step_up_scope", "{bad:?}");
        }
        config.step_up_scope = "warden.stepup".into();
        assert_eq!(config.validate(), Ok(()));

        let mut config = full();
        config.pepper_file = config.key_file.clone();
        assert_eq!(key_of(&config), "pepper_file");
        config.pepper_file = Some(PathBuf::new());
        assert_eq!(key_of(&config), "pepper_file");
    }
}
