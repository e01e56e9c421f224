//! `warden.toml` → a typed, validated [`Config`].
//!
//! Validation is strict: an unknown key, a wrong type or a missing required
//! value is an error that names the key and, where TOML can tell, the line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audit::AuditConfig;
use crate::identity::IdentityConfig;
use crate::policy::PolicyConfig;

/// `[store]`: the embedded SQLite file (`path`), or a PostgreSQL database
/// that replicas share (`url`); exactly one of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file (created if missing; relative to the config file).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `postgres://user@host:port/db` (libpq's URL form; a schema is chosen
    /// with `?options=-c%20search_path%3D<schema>`).
    #[serde(default)]
    pub url: Option<String>,
    /// With `url`: how many reading connections a replica may hold (besides
    /// its writer's), shared by everything that reads the store. Default 4.
    #[serde(default)]
    pub readers: Option<usize>,
}

impl StoreConfig {
    /// A SQLite store at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: Some(path.into()),
            url: None,
            readers: None,
        }
    }

    /// Where the store is (after [`Config::validate`], exactly one is set).
    pub fn location(&self) -> crate::store::Location {
        match (&self.url, &self.path) {
            (Some(url), _) => crate::store::Location::Postgres(url.clone()),
            (None, Some(path)) => crate::store::Location::Sqlite(path.clone()),
            (None, None) => crate::store::Location::Sqlite(PathBuf::new()),
        }
    }

    fn validate(&self) -> Result<(), String> {
        match (self.readers, &self.url) {
            (Some(_), None) => {
                return Err("store.readers: only with store.url (PostgreSQL)".into());
            }
            (Some(n), Some(_)) if !(1..=64).contains(&n) => {
                return Err("store.readers: 1 to 64 connections".into());
            }
            _ => {}
        }
        match (&self.path, &self.url) {
            (Some(_), Some(_)) => {
                Err("store: set path (SQLite) or url (PostgreSQL), not both".into())
            }
            (None, None) => Err("store: set path (a SQLite file) or url (postgres://...)".into()),
            (Some(path), None) if path.as_os_str().is_empty() => {
                Err("store.path: must name a file".into())
            }
            (None, Some(url))
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) =>
            {
                Err("store.url: must be a postgres:// or postgresql:// URL".into())
            }
            _ => Ok(()),
        }
    }
}

/// `[catalog]`: tool → Azure operations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// A directory of catalog files (`*.toml`, format in
    /// `schemas/catalog/README.md`) replacing the built-in catalog of the
    /// official Azure MCP Server's tools. Relative to the config file.
    pub dir: Option<PathBuf>,
}

/// Everything Warden needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    /// Who may call: Microsoft Entra ID tenants, audiences, scopes, MFA facts.
    /// Required; `allow_anonymous = true` is an explicit opt-out for local
    /// experiments.
    pub identity: IdentityConfig,
    /// Where state lives: the audit log (which approvals are rebuilt from)
    /// and the risk baselines.
    pub store: StoreConfig,
    /// The tamper-evident audit log: keys, checkpoint cadence, redaction.
    pub audit: AuditConfig,
    /// The Cedar policy set every tool call is authorized against. Required:
    /// Warden does not run without one.
    pub policy: PolicyConfig,
    /// Which Azure operations each tool performs.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Just-in-time approvals: who reviews, how long requests and grants last.
    #[serde(default)]
    pub approvals: crate::approvals::ApprovalsConfig,
    /// Anomaly scoring of tool calls: levels, alerts, how baselines learn
    /// and are saved.
    #[serde(default)]
    pub risk: crate::risk::RiskConfig,
    /// Automatic responses to findings: suspend, revoke, block, incidents
    /// (docs/RESPONSES.md).
    #[serde(default)]
    pub response: crate::response::ResponseConfig,
    /// Azure Resource Manager and Warden's own credential, for the built-in
    /// Azure tools.
    #[serde(default)]
    pub azure: Option<crate::azure::AzureConfig>,
    /// Resource facts for policy (tags, location, resource group), looked
    /// up through `[azure]`: cache lifetimes, size, lookup timeout.
    #[serde(default)]
    pub facts: crate::facts::FactsConfig,
    /// Upstream MCP servers by name. Names are part of the namespacing scheme
    /// (see `gateway::names`), so they are restricted to `[a-z0-9-]`.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Warden as the MCP clients' OAuth authorization server in front of
    /// Entra ID (default off).
    #[serde(default)]
    pub oauth: crate::oauth::config::OAuthConfig,
    /// The SIEM feed: the audit log shipped to Microsoft Sentinel / Log
    /// Analytics, syslog (CEF) or an OCSF receiver (default: no sinks).
    #[serde(default)]
    pub siem: crate::siem::SiemConfig,
    /// Access review campaigns: who starts them, how often deadlines are
    /// applied.
    #[serde(default)]
    pub review: crate::review::campaigns::ReviewConfig,
    /// Rate limits: token buckets per principal, principal and tool,
    /// client application, and source address (docs/LIMITS.md).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
}

/// The MCP front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP listener (`/mcp`, `/healthz`, `/readyz`, `/metrics`).
    pub listen: SocketAddr,
    /// Accepted `Host` header values (`name` or `name:port`). Defaults to
    /// loopback names only, which defeats DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin` values accepted besides same-origin ones
    /// (`scheme://host:port`, `:*` for any port, `null`). A request with an
    /// `Origin` is accepted when it is same-origin for an allowed host (the
    /// origin's host and port are the request's `Host`, one of
    /// `allowed_hosts`) or listed here; any other origin is refused (403).
    pub allowed_origins: Vec<String>,
    /// Largest accepted POST body, in bytes.
    pub max_body_bytes: usize,
    /// Most concurrent MCP sessions; `initialize` beyond it is refused.
    pub max_sessions: usize,
    /// A session with no traffic for this long is closed (and its upstream
    /// children stopped).
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// How long an upstream may take to start and answer `initialize`.
    #[serde(with = "humantime_serde")]
    pub upstream_init_timeout: Duration,
    /// How long a client may take to send a request's head (request line
    /// and headers), counted from when the connection waits for it (so it
    /// also bounds a keep-alive connection's wait for its next request).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which nothing is read or written for this long is
    /// closed. Open SSE streams carry a keep-alive every 15 s, so keep it
    /// above that.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Most open HTTP connections; more are closed at accept.
    pub max_connections: usize,
    /// Most open HTTP connections from one address. Behind a reverse proxy
    /// every connection comes from the proxy: raise it to `max_connections`.
    pub max_connections_per_address: usize,
    /// Largest request head (request line and headers), in bytes; larger
    /// gets 431.
    pub max_header_bytes: usize,
    /// Most headers in one request; more gets 431.
    pub max_headers: usize,
    /// Answer a plain `tools/call` with one JSON body, without the MCP
    /// SDK's session worker (see `src/gateway/lane.rs`); `false` sends
    /// every request through the SDK.
    pub fast_lane: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            max_sessions: 256,
            session_idle_timeout: Duration::from_secs(300),
            upstream_init_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 1024,
            max_connections_per_address: 256,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            fast_lane: true,
        }
    }
}

/// One upstream MCP server: a child process over stdio, or a remote
/// Streamable HTTP endpoint. Exactly one of `command` and `url` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Program to start (stdio upstream); looked up on `PATH` when relative.
    pub command: Option<PathBuf>,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment for the child. The child does not inherit Warden's
    /// environment except `PATH`, `HOME`, `LANG`, `TMPDIR` and `USER`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the child.
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint (remote upstream).
    pub url: Option<String>,
    /// Static headers sent with every request to a remote upstream.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A server built into Warden: `"arm"`, the Azure Resource Manager
    /// tools (needs `[azure]`).
    pub builtin: Option<String>,
    /// How a `command` upstream is run. `"stdio"` (the default): a child
    /// per client session, MCP over its stdin and stdout. `"http"`: one
    /// child for every session, started with Warden and supervised by it,
    /// serving MCP Streamable HTTP on a private address Warden picks
    /// (`listen`); each client session opens its own MCP session on it.
    #[serde(default)]
    pub serve: Serve,
    /// With `serve = "http"`: where the child listens. `"unix"` (the
    /// default): a Unix socket in a directory only Warden's user may
    /// open, named to the child by `{socket}` in `args` or `env`. `"tcp"`:
    /// a free port on 127.0.0.1, named by `{addr}` (`127.0.0.1:PORT`).
    #[serde(default)]
    pub listen: Option<Listen>,
    /// With `serve = "http"`: the path of the child's MCP endpoint
    /// (default `/mcp`).
    #[serde(default)]
    pub mcp_path: Option<String>,
    /// Longest wait for the upstream's answer to one request (a tool call
    /// included). When it passes, the request is cancelled upstream and the
    /// client gets an error naming the upstream; the call's audit outcome is
    /// `timeout`. Default: [`DEFAULT_CALL_TIMEOUT`]; for the built-in ARM
    /// tools, as long as they may wait for an operation.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// `upstreams.<name>.serve`: a child per session, or one shared child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Serve {
    #[default]
    Stdio,
    Http,
}

/// `upstreams.<name>.listen`: where a shared child serves HTTP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listen {
    /// A Unix socket in a private directory (`{socket}`).
    #[default]
    Unix,
    /// A free port on 127.0.0.1 (`{addr}`).
    Tcp,
}

impl Listen {
    /// The placeholder that names the address to the child.
    pub fn placeholder(self) -> &'static str {
        match self {
            Listen::Unix => SOCKET_PLACEHOLDER,
            Listen::Tcp => ADDR_PLACEHOLDER,
        }
    }
}

/// In a shared child's `args` and `env` values: the Unix socket's path.
pub const SOCKET_PLACEHOLDER: &str = "{socket}";
/// In a shared child's `args` and `env` values: `127.0.0.1:PORT`.
pub const ADDR_PLACEHOLDER: &str = "{addr}";
/// The default `upstreams.<name>.mcp_path`.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

/// The default `upstreams.<name>.timeout`: long enough for an Azure
/// operation that a tool waits out (a VM create takes minutes), short
/// enough that a lost answer does not hold a client for good.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The name of Warden's built-in ARM tools in `[upstreams.NAME] builtin = "..."`.
pub const BUILTIN_ARM: &str = "arm";

/// How to reach an upstream, after validation.
#[derive(Debug, Clone)]
pub enum UpstreamKind {
    Stdio {
        command: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
    /// A server inside Warden (see `executor::Builtins`).
    Builtin { builtin: String },
    /// One child for every session, serving Streamable HTTP on a private
    /// address (`serve = "http"`; see `executor::SharedServers`).
    Shared {
        command: PathBuf,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
        listen: Listen,
        mcp_path: String,
    },
}

impl UpstreamConfig {
    /// The validated transport of this upstream. Only valid after
    /// [`Config::validate`] succeeded.
    pub fn kind(&self) -> UpstreamKind {
        if let Some(builtin) = &self.builtin {
            return UpstreamKind::Builtin {
                builtin: builtin.clone(),
            };
        }
        match (&self.command, &self.url) {
            (Some(command), _) if self.serve == Serve::Http => UpstreamKind::Shared {
                command: command.clone(),
                args: self.args.clone(),
                env: self.env.clone(),
                cwd: self.cwd.clone(),
                listen: self.listen.unwrap_or_default(),
                mcp_path: self
                    .mcp_path
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MCP_PATH.to_owned()),
            },
            (Some(command), _) => UpstreamKind::Stdio {
                command: command.clone(),
                args: self.args.clone(),
                env: self.env.clone(),
                cwd: self.cwd.clone(),
            },
            (None, url) => UpstreamKind::Http {
                url: url.clone().unwrap_or_default(),
                headers: self.headers.clone(),
            },
        }
    }
}

/// A configuration problem, always naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((0, 0));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        // Files named in the config are relative to the config file.
        let base = path.parent().unwrap_or(Path::new(""));
        if let Some(store) = &mut config.store.path
            && store.is_relative()
        {
            *store = base.join(&*store);
        }
        config.audit.resolve(base);
        config.policy.resolve(base);
        config.oauth.resolve(base);
        config.siem.resolve(base);
        if let Some(azure) = &mut config.azure {
            azure.resolve(base);
        }
        if let Some(dir) = &mut config.catalog.dir
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
        if let Some(geo) = &mut config.risk.geo
            && geo.is_relative()
        {
            *geo = base.join(&*geo);
        }
        Ok(config)
    }

    /// The call timeout of upstream `name` (see [`UpstreamConfig::timeout`]).
    pub fn call_timeout(&self, name: &str) -> Duration {
        let Some(upstream) = self.upstreams.get(name) else {
            return DEFAULT_CALL_TIMEOUT;
        };
        if let Some(timeout) = upstream.timeout {
            return timeout;
        }
        match (&upstream.builtin, &self.azure) {
            // The ARM tools wait for a long-running operation up to
            // `lro_timeout`, after requests of up to `timeout` each.
            (Some(_), Some(azure)) => {
                DEFAULT_CALL_TIMEOUT.max(azure.arm.lro_timeout + azure.arm.timeout * 2)
            }
            _ => DEFAULT_CALL_TIMEOUT,
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.identity.validate()?;
        self.audit.validate()?;
        self.policy.validate()?;
        self.approvals.validate()?;
        self.risk.validate()?;
        self.facts.validate()?;
        self.oauth.validate().map_err(|e| e.to_string())?;
        self.siem.validate()?;
        self.review.validate()?;
        self.response.validate()?;
        self.limits.validate()?;
        if let Some(azure) = &self.azure {
            azure.validate()?;
        }
        self.store.validate()?;
        let server = &self.server;
        if server.max_body_bytes < 1024 {
            return Err("server.max_body_bytes: must be at least 1024".into());
        }
        if server.max_sessions == 0 {
            return Err("server.max_sessions: must be at least 1".into());
        }
        if server.session_idle_timeout < Duration::from_secs(1) {
            return Err("server.session_idle_timeout: must be at least 1s".into());
        }
        if server.upstream_init_timeout < Duration::from_millis(100) {
            return Err("server.upstream_init_timeout: must be at least 100ms".into());
        }
        if server.header_read_timeout < Duration::from_millis(100) {
            return Err("server.header_read_timeout: must be at least 100ms".into());
        }
        if server.idle_timeout < Duration::from_secs(1) {
            return Err("server.idle_timeout: must be at least 1s (and should exceed the 15s between SSE keep-alives)".into());
        }
        if server.max_connections == 0 || server.max_connections_per_address == 0 {
            return Err(
                "server.max_connections and server.max_connections_per_address: must be at least 1"
                    .into(),
            );
        }
        if server.max_header_bytes < 8192 {
            return Err("server.max_header_bytes: must be at least 8192".into());
        }
        if server.max_headers == 0 {
            return Err("server.max_headers: must be at least 1".into());
        }
        for origin in &server.allowed_origins {
            if origin != "null" && !origin.contains("://") {
                return Err(format!(
                    "server.allowed_origins: {origin:?} must include a scheme, e.g. \"https://{origin}\""
                ));
            }
        }
        if self.upstreams.is_empty() {
            return Err("upstreams: at least one upstream is required, e.g. [upstreams.azure] command = \"azmcp\"".into());
        }
        for (name, upstream) in &self.upstreams {
            let key = format!("upstreams.{name}");
            if upstream
                .timeout
                .is_some_and(|t| t < Duration::from_millis(100))
            {
                return Err(format!("{key}.timeout: must be at least 100ms"));
            }
            if !valid_upstream_name(name) {
                return Err(format!(
                    "{key}: upstream names use lower-case letters, digits and single '-' (e.g. \"azure\"), starting with a letter"
                ));
            }
            upstream.validate_serve(&key)?;
            if let Some(builtin) = &upstream.builtin {
                if upstream.command.is_some()
                    || upstream.url.is_some()
                    || !upstream.args.is_empty()
                    || !upstream.env.is_empty()
                    || upstream.cwd.is_some()
                    || !upstream.headers.is_empty()
                {
                    return Err(format!(
                        "{key}: a `builtin` upstream takes no `command`, `url`, `args`, `env`, `cwd` or `headers`"
                    ));
                }
                if builtin != BUILTIN_ARM {
                    return Err(format!(
                        "{key}.builtin: {builtin:?} is not a built-in server (known: \"arm\")"
                    ));
                }
                if self.azure.is_none() {
                    return Err(format!(
                        "{key}.builtin: the built-in Azure tools need an [azure] table (ARM endpoint and credential)"
                    ));
                }
                continue;
            }
            match (&upstream.command, &upstream.url) {
                (Some(_), Some(_)) => {
                    return Err(format!("{key}: set either `command` or `url`, not both"));
                }
                (None, None) => {
                    return Err(format!(
                        "{key}: missing `command` (stdio child), `url` (Streamable HTTP) or `builtin` (in Warden)"
                    ));
                }
                (Some(command), None) => {
                    if command.as_os_str().is_empty() {
                        return Err(format!("{key}.command: must not be empty"));
                    }
                    if !upstream.headers.is_empty() {
                        return Err(format!("{key}.headers: only valid with `url`"));
                    }
                }
                (None, Some(url)) => {
                    let parsed = reqwest::Url::parse(url)
                        .map_err(|e| format!("{key}.url: {url:?} is not a URL: {e}"))?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(format!("{key}.url: scheme must be http or https"));
                    }
                    if !upstream.args.is_empty()
                        || !upstream.env.is_empty()
                        || upstream.cwd.is_some()
                    {
                        return Err(format!(
                            "{key}: `args`, `env` and `cwd` are only valid with `command`"
                        ));
                    }
                    for (header, value) in &upstream.headers {
                        http::HeaderName::try_from(header.as_str()).map_err(|_| {
                            format!("{key}.headers: {header:?} is not a header name")
                        })?;
                        http::HeaderValue::try_from(value.as_str()).map_err(|_| {
                            format!("{key}.headers.{header}: value is not a valid header value")
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl UpstreamConfig {
    /// `serve`, `listen` and `mcp_path`: a shared child is started by
    /// `command` and told where to listen by a placeholder.
    fn validate_serve(&self, key: &str) -> Result<(), String> {
        if self.serve == Serve::Stdio {
            if self.listen.is_some() || self.mcp_path.is_some() {
                return Err(format!(
                    "{key}: `listen` and `mcp_path` are only valid with serve = \"http\" (one child \
                     serving every session over HTTP)"
                ));
            }
            return Ok(());
        }
        if self.command.is_none() || self.url.is_some() || self.builtin.is_some() {
            return Err(format!(
                "{key}.serve: serve = \"http\" needs `command` (the child Warden starts and \
                 shares), not `url` or `builtin`"
            ));
        }
        if !self.headers.is_empty() {
            return Err(format!("{key}.headers: only valid with `url`"));
        }
        let listen = self.listen.unwrap_or_default();
        if listen == Listen::Unix && !cfg!(unix) {
            return Err(format!(
                "{key}.listen: \"unix\" needs a Unix system; use listen = \"tcp\""
            ));
        }
        if let Some(path) = &self.mcp_path
            && (!path.starts_with('/') || path.contains(['?', '#', ' ']))
        {
            return Err(format!(
                "{key}.mcp_path: {path:?} must be a URL path starting with '/' (e.g. \"/mcp\")"
            ));
        }
        let values = || self.args.iter().chain(self.env.values());
        let (wanted, other) = match listen {
            Listen::Unix => (SOCKET_PLACEHOLDER, ADDR_PLACEHOLDER),
            Listen::Tcp => (ADDR_PLACEHOLDER, SOCKET_PLACEHOLDER),
        };
        if values().any(|v| v.contains(other)) {
            return Err(format!(
                "{key}: {other} is not known with listen = \"{}\"; use {wanted}",
                if listen == Listen::Unix {
                    "unix"
                } else {
                    "tcp"
                }
            ));
        }
        if !values().any(|v| v.contains(wanted)) {
            let example = match listen {
                Listen::Unix => {
                    "env = { Kestrel__Endpoints__warden__Url = \"http://unix:{socket}\" }"
                }
                Listen::Tcp => "args = [\"--http\", \"{addr}\"]",
            };
            return Err(format!(
                "{key}: with serve = \"http\", tell the child where to listen: put {wanted} in \
                 `args` or an `env` value (e.g. {example})"
            ));
        }
        Ok(())
    }
}

/// `[a-z][a-z0-9]*(-[a-z0-9]+)*`: safe in tool names and as a URI scheme prefix.
fn valid_upstream_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 32
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANONYMOUS: &str = "[identity]\nallow_anonymous = true\n[store]\npath = \"w.db\"\n[audit]\nsigning_key = \"keys/s.key\"\nhmac_key = \"/etc/warden/h.key\"\n[policy]\ndir = \"policies\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(&format!("{text}{ANONYMOUS}"), Path::new("warden.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_uses_safe_defaults() {
        let config = parse("[upstreams.azure]\ncommand = \"azmcp\"\n").unwrap();
        assert_eq!(config.server.listen.ip().to_string(), "127.0.0.1");
        assert!(
            config
                .server
                .allowed_hosts
                .contains(&"localhost".to_owned())
        );
        assert!(config.server.allowed_origins.is_empty());
        assert!(matches!(
            config.upstreams["azure"].kind(),
            UpstreamKind::Stdio { .. }
        ));
    }

    #[test]
    fn store_readers_go_with_a_url_and_are_bounded() {
        let with = |store: &str| {
            let text = format!("[upstreams.a]\ncommand = \"x\"\n{ANONYMOUS}")
                .replace("[store]\npath = \"w.db\"\n", store);
            Config::parse(&text, Path::new("warden.toml")).map_err(|e| e.to_string())
        };
        let ok = with("[store]\nurl = \"postgres://h/db\"\nreaders = 8\n").unwrap();
        assert_eq!(ok.store.readers, Some(8));
        let err = with("[store]\npath = \"w.db\"\nreaders = 8\n").unwrap_err();
        assert!(err.contains("store.readers: only with store.url"), "{err}");
        let err = with("[store]\nurl = \"postgres://h/db\"\nreaders = 0\n").unwrap_err();
        assert!(err.contains("store.readers: 1 to 64"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(err.contains("warden.toml:3:"), "{err}");
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse("[server]\nmax_sessions = \"many\"\n[upstreams.a]\ncommand = \"x\"\n")
            .unwrap_err();
        assert!(err.contains("warden.toml:2:"), "{err}");
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn upstream_needs_exactly_one_transport() {
        let err = parse("[upstreams.a]\nargs = []\n").unwrap_err();
        assert!(err.contains("upstreams.a: missing `command`"), "{err}");
        let err = parse("[upstreams.a]\ncommand = \"x\"\nurl = \"http://h/mcp\"\n").unwrap_err();
        assert!(err.contains("either `command` or `url`"), "{err}");
    }

    #[test]
    fn upstream_names_are_restricted() {
        for bad in ["Azure", "a__b", "a--b", "1a", "a_b", "a-"] {
            let err = parse(&format!("[upstreams.\"{bad}\"]\ncommand = \"x\"\n")).unwrap_err();
            assert!(err.contains("upstream names"), "{bad}: {err}");
        }
        assert!(parse("[upstreams.azure-prod]\ncommand = \"x\"\n").is_ok());
    }

    #[test]
    fn bad_url_and_durations_are_named() {
        let err = parse("[upstreams.a]\nurl = \"ftp://h/x\"\n").unwrap_err();
        assert!(err.contains("upstreams.a.url"), "{err}");
        let err =
            parse("[server]\nsession_idle_timeout = \"soon\"\n[upstreams.a]\ncommand = \"x\"\n")
                .unwrap_err();
        assert!(err.contains("warden.toml:2:"), "{err}");
    }

    #[test]
    fn identity_is_required_and_validated() {
        let err = Config::parse("[upstreams.a]\ncommand = \"x\"\n", Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `identity`"), "{err}");
        let err = Config::parse(
            "[upstreams.a]\ncommand = \"x\"\n[identity]\ntenants = [\"contoso.com\"]\naudiences = [\"api://w\"]\n[store]\npath = \"w.db\"\n[audit]\nsigning_key = \"s\"\nhmac_key = \"h\"\n[policy]\n",
            Path::new("w.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("identity.tenants"), "{err}");
    }

    #[test]
    fn store_and_audit_are_required_and_paths_are_relative_to_the_file() {
        let err = Config::parse(
            "[upstreams.a]\ncommand = \"x\"\n[identity]\nallow_anonymous = true\n",
            Path::new("w.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `store`"), "{err}");
        let config = Config::parse(
            &format!("[upstreams.a]\ncommand = \"x\"\n{ANONYMOUS}"),
            Path::new("/etc/warden/warden.toml"),
        )
        .unwrap();
        assert_eq!(
            config.store.path.as_deref(),
            Some(Path::new("/etc/warden/w.db"))
        );
        assert_eq!(
            config.audit.signing_key,
            Path::new("/etc/warden/keys/s.key")
        );
        assert_eq!(config.audit.hmac_key, Path::new("/etc/warden/h.key"));
        let err =
            parse("[upstreams.a]\ncommand = \"x\"\n[audit.redaction]\nplane = []\n").unwrap_err();
        assert!(err.contains("plane"), "{err}");
    }

    #[test]
    fn a_policy_set_is_required_and_its_paths_are_relative_to_the_file() {
        let without = ANONYMOUS.replace("[policy]\ndir = \"policies\"\n", "");
        let err = Config::parse(
            &format!("[upstreams.a]\ncommand = \"x\"\n{without}"),
            Path::new("w.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `policy`"), "{err}");
        let config = Config::parse(
            &format!(
                "[upstreams.a]\ncommand = \"x\"\n[catalog]\ndir = \"cat\"\n{without}\
                 [policy]\ndir = \"rules\"\nschema = \"s.cedarschema\"\nwatch_interval = \"0s\"\n"
            ),
            Path::new("/etc/warden/warden.toml"),
        )
        .unwrap();
        assert_eq!(config.policy.dir, Path::new("/etc/warden/rules"));
        assert_eq!(
            config.policy.schema.as_deref(),
            Some(Path::new("/etc/warden/s.cedarschema"))
        );
        assert!(config.policy.watch_interval.is_zero());
        assert_eq!(
            config.catalog.dir.as_deref(),
            Some(Path::new("/etc/warden/cat"))
        );
        let err = Config::parse(
            &format!(
                "[upstreams.a]\ncommand = \"x\"\n{without}[policy]\nwatch_interval = \"1ms\"\n"
            ),
            Path::new("w.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("policy.watch_interval"), "{err}");
    }

    #[test]
    fn risk_is_on_by_default_and_its_keys_are_validated_by_name() {
        let config = parse("[upstreams.a]\ncommand = \"x\"\n").unwrap();
        assert_eq!(config.risk, crate::risk::RiskConfig::default());
        assert!(config.risk.enabled);
        let err = parse("[risk]\nhigh = 30\n[upstreams.a]\ncommand = \"x\"\n").unwrap_err();
        assert!(
            err.contains("risk.medium, risk.high, risk.critical"),
            "{err}"
        );
        let err =
            parse("[risk]\nflush_interval = \"0s\"\n[upstreams.a]\ncommand = \"x\"\n").unwrap_err();
        assert!(err.contains("risk.flush_interval"), "{err}");
        let err = parse("[risk]\nalert_level = \"severe\"\n[upstreams.a]\ncommand = \"x\"\n")
            .unwrap_err();
        assert!(err.contains("warden.toml:2:"), "{err}");
        let err = parse("[risk]\nthreshold = 3\n[upstreams.a]\ncommand = \"x\"\n").unwrap_err();
        assert!(err.contains("threshold"), "{err}");
        let config = Config::parse(
            &format!(
                "[upstreams.a]\ncommand = \"x\"\n[risk]\ngeo = \"geo.csv\"\nhigh = 60\n\
                 alert_level = \"medium\"\n{ANONYMOUS}"
            ),
            Path::new("/etc/warden/warden.toml"),
        )
        .unwrap();
        assert_eq!(
            config.risk.geo.as_deref(),
            Some(Path::new("/etc/warden/geo.csv"))
        );
        assert_eq!(config.risk.high, 60);
        assert_eq!(config.risk.alert_level, crate::risk::Level::Medium);
    }

    #[test]
    fn a_shared_http_child_is_validated() {
        let config = parse(
            "[upstreams.a]\ncommand = \"x\"\nserve = \"http\"\n\
             env = { URL = \"http://unix:{socket}\" }\nmcp_path = \"/\"\n",
        )
        .unwrap();
        match config.upstreams["a"].kind() {
            UpstreamKind::Shared {
                listen, mcp_path, ..
            } => {
                assert_eq!(listen, Listen::Unix);
                assert_eq!(mcp_path, "/");
            }
            other => panic!("{other:?}"),
        }
        let config = parse(
            "[upstreams.a]\ncommand = \"x\"\nserve = \"http\"\nlisten = \"tcp\"\n\
             args = [\"--http\", \"{addr}\"]\n",
        )
        .unwrap();
        assert!(matches!(
            config.upstreams["a"].kind(),
            UpstreamKind::Shared { listen: Listen::Tcp, ref mcp_path, .. } if mcp_path == "/mcp"
        ));

        let err = parse("[upstreams.a]\ncommand = \"x\"\nserve = \"http\"\n").unwrap_err();
        assert!(
            err.contains("upstreams.a: with serve = \"http\", tell the child where to listen")
                && err.contains("{socket}"),
            "{err}"
        );
        let err = parse(
            "[upstreams.a]\ncommand = \"x\"\nserve = \"http\"\nlisten = \"tcp\"\n\
             args = [\"{socket}\"]\n",
        )
        .unwrap_err();
        assert!(
            err.contains("{socket} is not known with listen = \"tcp\""),
            "{err}"
        );
        let err = parse("[upstreams.a]\nurl = \"http://h/mcp\"\nserve = \"http\"\n").unwrap_err();
        assert!(
            err.contains("upstreams.a.serve: serve = \"http\" needs `command`"),
            "{err}"
        );
        let err = parse("[upstreams.a]\ncommand = \"x\"\nlisten = \"tcp\"\n").unwrap_err();
        assert!(err.contains("only valid with serve = \"http\""), "{err}");
        let err = parse(
            "[upstreams.a]\ncommand = \"x\"\nserve = \"http\"\nargs = [\"{socket}\"]\n\
             mcp_path = \"mcp\"\n",
        )
        .unwrap_err();
        assert!(err.contains("upstreams.a.mcp_path"), "{err}");
        let err = parse("[upstreams.a]\ncommand = \"x\"\nserve = \"sse\"\n").unwrap_err();
        assert!(
            err.contains("warden.toml:3:") && err.contains("expected `stdio` or `http`"),
            "{err}"
        );
    }

    #[test]
    fn no_upstream_is_an_error() {
        let err = parse("[server]\n").unwrap_err();
        assert!(err.contains("at least one upstream"), "{err}");
    }
}
