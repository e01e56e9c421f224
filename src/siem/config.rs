//! `[siem]` and its `[[siem.sink]]` tables: what the feed ships, where, and
//! how patiently. Validation names the key (`siem.sink[1].address: ...`);
//! a key that does not belong to a sink's `kind` is refused by name.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::delivery::receiver_url;

/// The largest body the Logs Ingestion API takes in one call (1 MB).
pub const LOGS_INGESTION_MAX_BYTES: usize = 1_000_000;

/// The token scope of the Logs Ingestion API (Azure Monitor).
pub const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";

/// The Logs Ingestion API version Warden speaks.
pub const LOGS_INGESTION_API_VERSION: &str = "2023-01-01";

/// `[siem]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemConfig {
    /// Records per batch (at most; a batch is also bounded by `max_bytes`).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Bytes per batch, as encoded for the sink (the Logs Ingestion API
    /// takes at most 1 MB per call).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// How often the store is read for new records while the feed is idle.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// One attempt's time limit (connect, send, answer), unless the sink
    /// sets its own.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The first wait after a failed attempt; doubled per retry, with
    /// jitter, at most 5 minutes (a receiver's `Retry-After` is honoured).
    #[serde(default = "default_first_backoff", with = "humantime_serde")]
    pub first_backoff: Duration,
    /// The name this Warden reports as the device (ASIM `Dvc`, the syslog
    /// `HOSTNAME`); default: the machine's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The receivers, each with its own cursor.
    #[serde(default, rename = "sink")]
    pub sinks: Vec<SinkConfig>,
}

fn default_batch() -> usize {
    500
}

fn default_max_bytes() -> usize {
    LOGS_INGESTION_MAX_BYTES
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_first_backoff() -> Duration {
    Duration::from_secs(1)
}

impl Default for SiemConfig {
    fn default() -> Self {
        SiemConfig {
            batch: default_batch(),
            max_bytes: default_max_bytes(),
            poll_interval: default_poll_interval(),
            timeout: default_timeout(),
            first_backoff: default_first_backoff(),
            hostname: None,
            sinks: Vec::new(),
        }
    }
}

/// What a sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Microsoft Sentinel / Log Analytics through the Azure Monitor Logs
    /// Ingestion API, rows in the ASIM Audit Event schema.
    LogAnalytics,
    /// RFC 5424 syslog over TCP (RFC 6587 octet counting), optionally TLS,
    /// with a CEF message.
    Syslog,
    /// OCSF 1.3 JSON events POSTed in batches over HTTPS.
    Ocsf,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::LogAnalytics => "log_analytics",
            SinkKind::Syslog => "syslog",
            SinkKind::Ocsf => "ocsf",
        }
    }
}

/// Where a sink without a cursor starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// At the first record of the log: the whole log is shipped.
    #[default]
    Beginning,
    /// After the newest record when the sink first starts.
    End,
}

/// One `[[siem.sink]]`. The keys of every kind share one table; a key
/// that does not belong to `kind` is refused by [`SiemConfig::validate`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// The sink's name: the key of its cursor in the store and its label
    /// in metrics and logs. Default: the kind. Renaming a sink starts it
    /// again from `start`.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the sink starts when the store holds no cursor for it.
    #[serde(default)]
    pub start: Start,
    /// One attempt's time limit for this sink (default `[siem] timeout`).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// PEM root certificates trusted besides the system's, for the
    /// receiver's TLS certificate.
    #[serde(default)]
    pub ca: Option<PathBuf>,

    // log_analytics
    /// The data collection endpoint (or a DCR's own logs ingestion
    /// endpoint): `https://<dce>.<region>.ingest.monitor.azure.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The data collection rule's immutable id (`dcr-<32 hex digits>`).
    #[serde(default)]
    pub dcr_immutable_id: Option<String>,
    /// The DCR's input stream (`Custom-WardenAudit_CL`).
    #[serde(default)]
    pub stream: Option<String>,
    /// The token scope (default `https://monitor.azure.com/.default`;
    /// sovereign clouds have their own).
    #[serde(default)]
    pub scope: Option<String>,

    // syslog
    /// `host:port` of the syslog receiver.
    #[serde(default)]
    pub address: Option<String>,
    /// TLS (RFC 5425) instead of plain TCP.
    #[serde(default)]
    pub tls: bool,
    /// The name the receiver's certificate must carry (default: the host
    /// of `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// The syslog facility, 0 to 23 (default 13, "log audit").
    #[serde(default)]
    pub facility: Option<u8>,

    // ocsf
    /// The HTTPS URL batches are POSTed to.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding a bearer token sent with every batch (read at
    /// start; the token itself never goes in the config).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

/// The default syslog facility: 13, "log audit" (RFC 5424).
pub const DEFAULT_FACILITY: u8 = 13;

impl SinkConfig {
    /// A sink of `kind` with no other key set.
    pub fn new(kind: SinkKind) -> Self {
        SinkConfig {
            kind,
            name: None,
            start: Start::Beginning,
            timeout: None,
            ca: None,
            endpoint: None,
            dcr_immutable_id: None,
            stream: None,
            scope: None,
            address: None,
            tls: false,
            server_name: None,
            facility: None,
            url: None,
            bearer_token_file: None,
        }
    }

    /// The name of the sink's cursor and metrics label.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.as_str().to_owned())
    }

    /// The keys set that belong to another kind.
    fn foreign_keys(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        let mut note = |present: bool, key: &'static str, kinds: &[SinkKind]| {
            if present && !kinds.contains(&self.kind) {
                set.push(key);
            }
        };
        use SinkKind::*;
        note(self.endpoint.is_some(), "endpoint", &[LogAnalytics]);
        note(
            self.dcr_immutable_id.is_some(),
            "dcr_immutable_id",
            &[LogAnalytics],
        );
        note(self.stream.is_some(), "stream", &[LogAnalytics]);
        note(self.scope.is_some(), "scope", &[LogAnalytics]);
        note(self.address.is_some(), "address", &[Syslog]);
        note(self.tls, "tls", &[Syslog]);
        note(self.server_name.is_some(), "server_name", &[Syslog]);
        note(self.facility.is_some(), "facility", &[Syslog]);
        note(self.url.is_some(), "url", &[Ocsf]);
        note(
            self.bearer_token_file.is_some(),
            "bearer_token_file",
            &[Ocsf],
        );
        set
    }

    /// Checks the sink at `index` (from 0). Messages never repeat a URL,
    /// which may carry a secret.
    pub fn validate(&self, index: usize) -> Result<(), String> {
        let key = format!("siem.sink[{index}]");
        if let Some(name) = &self.name
            && !valid_name(name)
        {
            return Err(format!(
                "{key}.name: {name:?} must be 1 to 64 lower-case letters, digits, '-' or '_'"
            ));
        }
        if let Some(foreign) = self.foreign_keys().first() {
            return Err(format!(
                "{key}.{foreign}: not a key of kind = {:?}",
                self.kind.as_str()
            ));
        }
        if self.timeout.is_some_and(|t| t < Duration::from_millis(100)) {
            return Err(format!("{key}.timeout: must be at least 100ms"));
        }
        let required = |value: &Option<String>, field: &str, example: &str| match value
            .as_deref()
            .map(str::trim)
        {
            Some(v) if !v.is_empty() => Ok(v.to_owned()),
            _ => Err(format!(
                "{key}.{field}: required for kind = {:?}, e.g. {field} = {example:?}",
                self.kind.as_str()
            )),
        };
        match self.kind {
            SinkKind::LogAnalytics => {
                let endpoint = required(
                    &self.endpoint,
                    "endpoint",
                    "https://dce-xyz.westeurope-1.ingest.monitor.azure.com",
                )?;
                let url = receiver_url(&format!("{key}.endpoint"), &endpoint)?;
                if url.path() != "/" || url.query().is_some() {
                    return Err(format!(
                        "{key}.endpoint: the data collection endpoint only (scheme and host), \
                         without a path or query; Warden adds /dataCollectionRules/..."
                    ));
                }
                let dcr = required(
                    &self.dcr_immutable_id,
                    "dcr_immutable_id",
                    "dcr-00000000000000000000000000000000",
                )?;
                let valid_dcr = dcr.strip_prefix("dcr-").is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
                });
                if !valid_dcr {
                    return Err(format!(
                        "{key}.dcr_immutable_id: {dcr:?} is not a data collection rule's immutable \
                         id (dcr- and 32 hex digits, shown as immutableId in the rule's JSON view)"
                    ));
                }
                let stream = required(&self.stream, "stream", "Custom-WardenAudit_CL")?;
                let valid_stream = (stream.starts_with("Custom-")
                    || stream.starts_with("Microsoft-"))
                    && stream.len() > "Custom-".len()
                    && stream
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid_stream {
                    return Err(format!(
                        "{key}.stream: {stream:?} is not a stream name of a data collection rule \
                         (Custom-<name> for a custom table, e.g. Custom-WardenAudit_CL)"
                    ));
                }
                if let Some(scope) = &self.scope
                    && !(scope.starts_with("https://") && scope.ends_with("/.default"))
                {
                    return Err(format!(
                        "{key}.scope: {scope:?} must be an https resource followed by /.default, \
                         e.g. {MONITOR_SCOPE:?}"
                    ));
                }
            }
            SinkKind::Syslog => {
                let address = required(&self.address, "address", "siem.example.com:6514")?;
                let (host, _) = split_address(&address)
                    .map_err(|reason| format!("{key}.address: {address:?} {reason}"))?;
                if !self.tls {
                    if self.ca.is_some() {
                        return Err(format!("{key}.ca: only with tls = true"));
                    }
                    if self.server_name.is_some() {
                        return Err(format!("{key}.server_name: only with tls = true"));
                    }
                } else if let Some(name) = &self.server_name {
                    if tokio_rustls::rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
                    {
                        return Err(format!("{key}.server_name: {name:?} is not a DNS name"));
                    }
                } else if tokio_rustls::rustls::pki_types::ServerName::try_from(host.as_str())
                    .is_err()
                {
                    return Err(format!(
                        "{key}.address: the host {host:?} cannot name a TLS certificate; set server_name"
                    ));
                }
                if let Some(facility) = self.facility
                    && facility > 23
                {
                    return Err(format!("{key}.facility: 0 to 23, not {facility}"));
                }
            }
            SinkKind::Ocsf => {
                let url = required(&self.url, "url", "https://ocsf.example.com/ingest")?;
                receiver_url(&format!("{key}.url"), &url)?;
            }
        }
        Ok(())
    }

    fn resolve(&mut self, base: &Path) {
        for path in [&mut self.ca, &mut self.bearer_token_file]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// `host:port` (a name, an IPv4 address, or an IPv6 address in brackets):
/// the host (without brackets) and the port.
pub fn split_address(address: &str) -> Result<(String, u16), String> {
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return Ok((socket.ip().to_string(), socket.port()));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err("must be host:port".into());
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("must end with a port from 1 to 65535")?;
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_host {
        return Err("must be host:port with a DNS name or an IP address".into());
    }
    Ok((host.to_owned(), port))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl SiemConfig {
    /// Checks the values (keys named as in `warden.toml`).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.batch) {
            return Err("siem.batch: 1 to 10000 records".into());
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_bytes) {
            return Err("siem.max_bytes: 1024 to 16777216 bytes".into());
        }
        if self.poll_interval < Duration::from_millis(10) {
            return Err("siem.poll_interval: must be at least 10ms".into());
        }
        if self.timeout < Duration::from_millis(100) {
            return Err("siem.timeout: must be at least 100ms".into());
        }
        if self.first_backoff < Duration::from_millis(10) {
            return Err("siem.first_backoff: must be at least 10ms".into());
        }
        if let Some(hostname) = &self.hostname {
            let valid = (1..=255).contains(&hostname.len())
                && hostname.bytes().all(|b| b.is_ascii_graphic());
            if !valid {
                return Err(format!(
                    "siem.hostname: {hostname:?} must be 1 to 255 printable ASCII characters"
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (index, sink) in self.sinks.iter().enumerate() {
            sink.validate(index)?;
            let name = sink.name();
            if !names.insert(name.clone()) {
                return Err(format!(
                    "siem.sink[{index}].name: {name:?} is already the name of another sink \
                     (each sink has its own cursor: give sinks of one kind names)"
                ));
            }
            if sink.kind == SinkKind::LogAnalytics && self.max_bytes > LOGS_INGESTION_MAX_BYTES {
                return Err(format!(
                    "siem.max_bytes: at most {LOGS_INGESTION_MAX_BYTES} with a log_analytics sink \
                     (siem.sink[{index}]): the Logs Ingestion API takes 1 MB per call"
                ));
            }
        }
        Ok(())
    }

    /// Makes the sinks' files relative to `base` (the config file's folder).
    pub fn resolve(&mut self, base: &Path) {
        for sink in &mut self.sinks {
            sink.resolve(base);
        }
    }

    /// The sink's attempt time limit.
    pub fn timeout_of(&self, sink: &SinkConfig) -> Duration {
        sink.timeout.unwrap_or(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SiemConfig, String> {
        let config: SiemConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn the_example_parses_with_defaults() {
        let config = parse(
            r#"
batch = 200
[[sink]]
kind = "log_analytics"
endpoint = "https://dce-xyz.westeurope-1.ingest.monitor.azure.com"
dcr_immutable_id = "dcr-0123456789abcdef0123456789abcdef"
stream = "Custom-WardenAudit_CL"
[[sink]]
kind = "syslog"
address = "siem.example.com:6514"
tls = true
ca = "ca.pem"
[[sink]]
kind = "ocsf"
url = "https://ocsf.example.com/ingest"
"#,
        )
        .unwrap();
        assert_eq!(config.batch, 200);
        assert_eq!(config.max_bytes, LOGS_INGESTION_MAX_BYTES);
        let names: Vec<String> = config.sinks.iter().map(SinkConfig::name).collect();
        assert_eq!(names, ["log_analytics", "syslog", "ocsf"]);
        assert_eq!(config.sinks[1].start, Start::Beginning);
        let mut config = config;
        config.resolve(Path::new("/etc/warden"));
        assert_eq!(
            config.sinks[1].ca.as_deref(),
            Some(Path::new("/etc/warden/ca.pem"))
        );
    }

    #[test]
    fn errors_name_the_sink_and_key() {
        let cases = [
            (
                "[[sink]]\nkind = \"syslog\"\n",
                "siem.sink[0].address: required for kind = \"syslog\"",
            ),
            (
                "[[sink]]\nkind = \"ocsf\"\nurl = \"https://a.example/x\"\n\
                 [[sink]]\nkind = \"syslog\"\naddress = \"siem.example.com\"\n",
                "siem.sink[1].address: \"siem.example.com\" must be host:port",
            ),
            (
                "[[sink]]\nkind = \"syslog\"\naddress = \"h:514\"\nurl = \"https://x.example/\"\n",
                "siem.sink[0].url: not a key of kind = \"syslog\"",
            ),
            (
                "[[sink]]\nkind = \"syslog\"\naddress = \"h:514\"\nca = \"ca.pem\"\n",
                "siem.sink[0].ca: only with tls = true",
            ),
            (
                "[[sink]]\nkind = \"syslog\"\naddress = \"h:514\"\nfacility = 24\n",
                "siem.sink[0].facility: 0 to 23",
            ),
            (
                "[[sink]]\nkind = \"ocsf\"\nurl = \"http://ocsf.example.com/ingest?key=secret\"\n",
                "siem.sink[0].url: must be an https URL",
            ),
            (
                "[[sink]]\nkind = \"log_analytics\"\nendpoint = \"https://dce.example\"\n\
                 dcr_immutable_id = \"my-rule\"\nstream = \"Custom-X\"\n",
                "siem.sink[0].dcr_immutable_id: \"my-rule\" is not",
            ),
            (
                "[[sink]]\nkind = \"log_analytics\"\nendpoint = \"https://dce.example\"\n\
                 dcr_immutable_id = \"dcr-abc\"\nstream = \"WardenAudit_CL\"\n",
                "siem.sink[0].stream: \"WardenAudit_CL\" is not",
            ),
            (
                "[[sink]]\nkind = \"log_analytics\"\nendpoint = \"https://dce.example/x\"\n\
                 dcr_immutable_id = \"dcr-abc\"\nstream = \"Custom-X\"\n",
                "siem.sink[0].endpoint: the data collection endpoint only",
            ),
            (
                "[[sink]]\nkind = \"ocsf\"\nurl = \"https://a.example/\"\n\
                 [[sink]]\nkind = \"ocsf\"\nurl = \"https://b.example/\"\n",
                "siem.sink[1].name: \"ocsf\" is already the name of another sink",
            ),
            (
                "[[sink]]\nkind = \"ocsf\"\nname = \"Main Feed\"\nurl = \"https://a.example/\"\n",
                "siem.sink[0].name: \"Main Feed\" must be",
            ),
            ("batch = 0\n", "siem.batch: 1 to 10000"),
            (
                "max_bytes = 2000000\n[[sink]]\nkind = \"log_analytics\"\n\
                 endpoint = \"https://dce.example\"\ndcr_immutable_id = \"dcr-abc\"\n\
                 stream = \"Custom-X\"\n",
                "siem.max_bytes: at most 1000000 with a log_analytics sink (siem.sink[0])",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text}\n→ {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused_by_serde() {
        let error = parse("[[sink]]\nkind = \"syslog\"\nadress = \"h:514\"\n").unwrap_err();
        assert!(error.contains("unknown field `adress`"), "{error}");
        let error = parse("[[sink]]\nkind = \"splunk\"\n").unwrap_err();
        assert!(error.contains("unknown variant `splunk`"), "{error}");
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("siem.example.com:6514").unwrap(),
            ("siem.example.com".into(), 6514)
        );
        assert_eq!(
            split_address("127.0.0.1:514").unwrap(),
            ("127.0.0.1".into(), 514)
        );
        assert_eq!(split_address("[::1]:514").unwrap(), ("::1".into(), 514));
        assert!(split_address("siem.example.com").is_err());
        assert!(split_address("siem.example.com:0").is_err());
        assert!(split_address("a b:514").is_err());
    }
}
