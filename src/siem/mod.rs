//! The SIEM feed: the audit log shipped, record by record and in order, to
//! security information and event management systems (docs/SIEM.md).
//!
//! Sinks (`[[siem.sink]]`, [`config`]):
//!
//! - `log_analytics`: Microsoft Sentinel / Log Analytics through the
//!   Azure Monitor Logs Ingestion API (`POST
//!   {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`,
//!   a JSON array), with a token for `https://monitor.azure.com/.default`
//!   from Warden's own `[azure.credential]`; rows in the ASIM Audit Event
//!   schema plus Warden's columns ([`asim`]).
//! - `syslog`: RFC 5424 over TCP, or TLS, framed by octet counting (RFC
//!   6587), the message in CEF ([`cef`]).
//! - `ocsf`: OCSF 1.3 events POSTed as JSON arrays over HTTPS ([`ocsf`]).
//!
//! How it runs ([`feed`]): a task per sink reads committed records from
//! the store (off the runtime, on a reader of its own), ships them in
//! batches (`[siem] batch` records, at most `max_bytes`), retries a batch
//! the receiver did not take with backoff (honouring `Retry-After`) until
//! it does, and then moves the sink's cursor, kept in the store, so a
//! restart resumes after it. Calls never wait for the feed: it only reads
//! what the audit log already committed, and writes one small state row
//! per batch. Gaps in the sequence numbers are logged, counted and
//! shipped as events of their own. On PostgreSQL one replica ships each
//! sink at a time (the cursor row names it).

pub mod asim;
pub mod cef;
pub mod config;
pub mod event;
pub mod feed;
pub mod ocsf;
pub mod transport;

use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{SiemConfig, SinkConfig, SinkKind, Start};

use event::{Device, Item};
use transport::{Auth, Http, Syslog, Transport};

use crate::metrics::Metrics;
use crate::store::Store;

/// How a sink's events are written and batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// ASIM rows in a JSON array (Logs Ingestion API).
    Asim,
    /// Octet-counted RFC 5424 frames with a CEF message, back to back.
    Cef { facility: u8 },
    /// OCSF events in a JSON array.
    Ocsf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Asim => "asim",
            Format::Cef { .. } => "cef",
            Format::Ocsf => "ocsf",
        }
    }

    /// One event. `whole` false: without the record's bulk.
    pub fn encode(self, item: &Item, device: &Device, whole: bool) -> Vec<u8> {
        match self {
            Format::Asim => asim::row(item, device, whole).to_string().into_bytes(),
            Format::Ocsf => ocsf::event(item, whole).to_string().into_bytes(),
            Format::Cef { facility } => cef::frame(&cef::syslog_message(item, device, facility)),
        }
    }

    /// The bytes a batch has besides its events (`[` and `]`).
    pub fn overhead(self) -> usize {
        match self {
            Format::Cef { .. } => 0,
            _ => 2,
        }
    }

    /// What `event` adds to a batch (a comma between JSON events).
    pub fn separated_size(self, event: &[u8]) -> usize {
        match self {
            Format::Cef { .. } => event.len(),
            _ => event.len() + 1,
        }
    }

    /// The batch's body.
    pub fn assemble(self, events: Vec<Vec<u8>>) -> Vec<u8> {
        match self {
            Format::Cef { .. } => events.concat(),
            _ => {
                let mut body =
                    Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
                body.push(b'[');
                for (i, event) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(event);
                }
                body.push(b']');
                body
            }
        }
    }
}

/// The feed, its sinks built (files read, credentials made), not running
/// yet.
pub struct Feed {
    sinks: Vec<feed::Sink>,
    settings: Arc<feed::Settings>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sinks.iter().map(|s| s.name.as_str()).collect();
        f.debug_struct("Feed").field("sinks", &names).finish()
    }
}

impl Feed {
    /// The feed `config.siem` describes; `None` without sinks. Reads the
    /// sinks' files (`ca`, `bearer_token_file`) and builds the Azure
    /// credential of `log_analytics` sinks now, so a bad one stops the
    /// start; errors name the key.
    pub fn prepare(config: &crate::config::Config) -> anyhow::Result<Option<Feed>> {
        let siem = &config.siem;
        if siem.sinks.is_empty() {
            return Ok(None);
        }
        let mut credential = None;
        let mut sinks = Vec::new();
        for (index, sink) in siem.sinks.iter().enumerate() {
            let key = format!("siem.sink[{index}]");
            let timeout = siem.timeout_of(sink);
            let roots = match &sink.ca {
                Some(path) => Some(
                    std::fs::read(path)
                        .with_context(|| format!("{key}.ca: cannot read {}", path.display()))?,
                ),
                None => None,
            };
            let (format, transport): (Format, Box<dyn Transport>) = match sink.kind {
                SinkKind::LogAnalytics => {
                    if credential.is_none() {
                        let settings = config
                            .azure
                            .as_ref()
                            .map(|a| a.credential.clone())
                            .unwrap_or_default();
                        credential =
                            Some(crate::azure::credential::build(&settings).with_context(
                                || format!("{key}: Warden's Azure credential ([azure.credential])"),
                            )?);
                    }
                    let url =
                        logs_ingestion_url(sink).with_context(|| format!("{key}.endpoint"))?;
                    let auth = Auth::Azure {
                        credential: credential.clone().expect("built above"),
                        scope: sink
                            .scope
                            .clone()
                            .unwrap_or_else(|| config::MONITOR_SCOPE.to_owned()),
                    };
                    let http = Http::new(url, auth, timeout, roots.as_deref())
                        .map_err(|e| anyhow::anyhow!("{key}{}: {e}", ca_key(&roots)))?;
                    (Format::Asim, Box::new(http))
                }
                SinkKind::Ocsf => {
                    let url = crate::delivery::receiver_url(
                        &format!("{key}.url"),
                        sink.url.as_deref().unwrap_or_default(),
                    )
                    .map_err(anyhow::Error::msg)?;
                    let auth = match &sink.bearer_token_file {
                        Some(path) => {
                            let token = std::fs::read_to_string(path).with_context(|| {
                                format!("{key}.bearer_token_file: cannot read {}", path.display())
                            })?;
                            let token = token.trim();
                            if token.is_empty() {
                                anyhow::bail!(
                                    "{key}.bearer_token_file: {} is empty",
                                    path.display()
                                );
                            }
                            Auth::Bearer(token.to_owned())
                        }
                        None => Auth::None,
                    };
                    let http = Http::new(url, auth, timeout, roots.as_deref())
                        .map_err(|e| anyhow::anyhow!("{key}{}: {e}", ca_key(&roots)))?;
                    (Format::Ocsf, Box::new(http))
                }
                SinkKind::Syslog => {
                    let address = sink.address.as_deref().unwrap_or_default();
                    let (host, port) = config::split_address(address)
                        .map_err(|e| anyhow::anyhow!("{key}.address: {address:?} {e}"))?;
                    let facility = sink.facility.unwrap_or(config::DEFAULT_FACILITY);
                    let transport = if sink.tls {
                        let name = sink.server_name.clone().unwrap_or_else(|| host.clone());
                        Syslog::tls(host, port, &name, roots.as_deref(), timeout)
                            .map_err(|e| anyhow::anyhow!("{key}{}: {e}", ca_key(&roots)))?
                    } else {
                        Syslog::tcp(host, port, timeout)
                    };
                    (Format::Cef { facility }, Box::new(transport))
                }
            };
            sinks.push(feed::Sink {
                name: sink.name(),
                format,
                transport,
                start: sink.start,
                lease: feed::Lease::for_timeout(timeout),
            });
        }
        Ok(Some(Feed {
            sinks,
            settings: Arc::new(feed::Settings {
                batch: siem.batch,
                max_bytes: siem.max_bytes,
                poll_interval: siem.poll_interval,
                first_backoff: siem.first_backoff,
                device: Device::new(siem.hostname.as_deref()),
            }),
        }))
    }

    /// Runs every sink on its own task until `stop` is cancelled; the
    /// handle ends when they all have (each lets go of its claim first).
    pub fn spawn(self, store: Store, metrics: Metrics, stop: CancellationToken) -> JoinHandle<()> {
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let tasks: Vec<JoinHandle<()>> = self
            .sinks
            .into_iter()
            .map(|sink| {
                tokio::spawn(feed::run(
                    sink,
                    self.settings.clone(),
                    store.clone(),
                    metrics.clone(),
                    holder.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
        })
    }
}

/// `.ca` when the sink names a CA file (what an error of its TLS setup is
/// about), else nothing.
fn ca_key(roots: &Option<Vec<u8>>) -> &'static str {
    if roots.is_some() { ".ca" } else { "" }
}

/// `{endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`.
fn logs_ingestion_url(sink: &SinkConfig) -> anyhow::Result<reqwest::Url> {
    let endpoint = sink.endpoint.as_deref().unwrap_or_default();
    let mut url =
        crate::delivery::receiver_url("endpoint", endpoint).map_err(anyhow::Error::msg)?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("the URL cannot take a path"))?
        .clear()
        .extend([
            "dataCollectionRules",
            sink.dcr_immutable_id.as_deref().unwrap_or_default(),
            "streams",
            sink.stream.as_deref().unwrap_or_default(),
        ]);
    url.set_query(Some(&format!(
        "api-version={}",
        config::LOGS_INGESTION_API_VERSION
    )));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logs_ingestion_url_is_built_from_its_parts() {
        let mut sink = SinkConfig::new(SinkKind::LogAnalytics);
        sink.endpoint = Some("https://dce-1.westeurope-1.ingest.monitor.azure.com/".into());
        sink.dcr_immutable_id = Some("dcr-0123".into());
        sink.stream = Some("Custom-WardenAudit_CL".into());
        assert_eq!(
            logs_ingestion_url(&sink).unwrap().as_str(),
            "https://dce-1.westeurope-1.ingest.monitor.azure.com/dataCollectionRules/dcr-0123/streams/Custom-WardenAudit_CL?api-version=2023-01-01"
        );
    }

    #[test]
    fn json_batches_are_arrays_and_syslog_batches_are_frames() {
        let events = vec![b"{\"a\":1}".to_vec(), b"{\"b\":2}".to_vec()];
        assert_eq!(
            Format::Asim.assemble(events.clone()),
            b"[{\"a\":1},{\"b\":2}]"
        );
        assert_eq!(Format::Ocsf.assemble(Vec::new()), b"[]");
        assert_eq!(
            Format::Cef { facility: 13 }.assemble(vec![b"1 a".to_vec(), b"1 b".to_vec()]),
            b"1 a1 b"
        );
        let sizes: usize = events.iter().map(|e| Format::Asim.separated_size(e)).sum();
        // One comma fewer than events: the sum over-counts by one, never under.
        assert!(sizes + Format::Asim.overhead() >= Format::Asim.assemble(events).len());
    }
}
