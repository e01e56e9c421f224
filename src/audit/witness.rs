//! Publishing signed checkpoints to witnesses: places outside the store
//! that keep every checkpoint Warden signs, so that a later rollback of the
//! store (deleting the newest records and the checkpoints that cover them)
//! is caught by `warden audit verify --witness` or `--trusted-checkpoint`.
//!
//! A witness is one of:
//!
//! - `directory`: one file per checkpoint, `<size, 20 digits>.checkpoint`,
//!   created once and never overwritten (written beside its name, fsynced,
//!   then hard-linked into place, which fails if the name exists). Point
//!   it at a mounted immutable (WORM) Azure Blob container or any
//!   append-only share.
//! - `put`: an HTTPS base URL; each checkpoint is `PUT` to
//!   `<base>/<size>.checkpoint` (the base's query kept) with
//!   `If-None-Match: *` and `x-ms-blob-type: BlockBlob`, so an Azure Blob
//!   container URL with a SAS token (create permission) works as is, and a
//!   container with a version-level immutability policy keeps every
//!   checkpoint for its retention period.
//! - `webhook`: an HTTPS URL that receives each checkpoint as JSON:
//!   `{"origin", "size", "root" (base64), "checkpoint" (the signed note)}`.
//!
//! A witness that already holds the same checkpoint (a retry after a lost
//! answer, two replicas of one log) counts as published; one that holds a
//! *different* checkpoint of the same size is a conflict (two views of the
//! log), logged as an error and counted `failed`.
//!
//! Publishing never blocks a call: checkpoints go onto each witness's
//! bounded queue ([`Lanes`]); a full queue refuses the new checkpoint
//! (counted `dropped`), and the next one that gets through covers it, since
//! each checkpoint extends the last. Network errors, timeouts, `429` and `5xx`
//! are retried up to `max_attempts` with backoff (honouring
//! `Retry-After`); other answers fail at once. Metrics:
//! `warden_audit_witness_checkpoints_total{witness, result}` and
//! `warden_audit_witness_retries_total{witness}`.
//!
//! ```toml
//! [[audit.witness]]
//! directory = "/mnt/worm/warden-checkpoints"
//!
//! [[audit.witness]]
//! put = "https://evidence.blob.core.windows.net/checkpoints?sv=...&sig=..."
//! timeout = "10s"        # one attempt
//! max_attempts = 8       # in all, the first included
//! first_backoff = "1s"   # doubled per retry, with jitter, at most 5m
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use serde::Deserialize;
use tracing::{debug, error, warn};

use super::merkle::Hash;
use crate::delivery::{Lanes, check_attempts, next_wait, read_some, receiver_url, retry_after};
use crate::metrics::Metrics;

/// Checkpoints waiting per witness; at the default interval (10 s) about
/// 40 minutes of a witness being unreachable.
const QUEUE: usize = 256;

/// One `[[audit.witness]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// A directory that keeps one file per checkpoint.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// An HTTPS base URL each checkpoint is `PUT` under.
    #[serde(default)]
    pub put: Option<String>,
    /// An HTTPS URL each checkpoint is `POST`ed to as JSON.
    #[serde(default)]
    pub webhook: Option<String>,
    /// One attempt's time limit.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per checkpoint, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first wait before a retry; doubled each retry, with jitter.
    #[serde(default = "default_first_backoff", with = "humantime_serde")]
    pub first_backoff: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_attempts() -> u32 {
    8
}

fn default_first_backoff() -> Duration {
    Duration::from_secs(1)
}

impl WitnessConfig {
    /// A directory witness with the default limits.
    pub fn directory(path: impl Into<PathBuf>) -> Self {
        Self {
            directory: Some(path.into()),
            put: None,
            webhook: None,
            timeout: default_timeout(),
            max_attempts: default_max_attempts(),
            first_backoff: default_first_backoff(),
        }
    }

    /// Checks the witness at `index` (from 0) of `[[audit.witness]]`.
    /// Messages never repeat a URL, which may carry a secret.
    pub fn validate(&self, index: usize) -> Result<(), String> {
        let key = format!("audit.witness[{index}]");
        let kinds = [
            self.directory.is_some(),
            self.put.is_some(),
            self.webhook.is_some(),
        ];
        if kinds.iter().filter(|set| **set).count() != 1 {
            return Err(format!(
                "{key}: set exactly one of directory, put or webhook"
            ));
        }
        if let Some(url) = &self.put {
            let url = receiver_url(&format!("{key}.put"), url)?;
            if url.cannot_be_a_base() {
                return Err(format!("{key}.put: the URL cannot take a path"));
            }
        }
        if let Some(url) = &self.webhook {
            receiver_url(&format!("{key}.webhook"), url)?;
        }
        check_attempts(&key, self.timeout, self.max_attempts, self.first_backoff)?;
        Ok(())
    }

    /// Makes a relative directory relative to `base` (the config's folder).
    pub fn resolve(&mut self, base: &Path) {
        if let Some(dir) = &mut self.directory
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
    }

    /// How logs name the witness: its kind and host or path, never a URL's
    /// path or query.
    fn label(&self, index: usize) -> String {
        let host = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default()
        };
        match (&self.directory, &self.put, &self.webhook) {
            (Some(dir), _, _) => format!("#{} directory {}", index + 1, dir.display()),
            (_, Some(url), _) => format!("#{} put {}", index + 1, host(url)),
            (_, _, Some(url)) => format!("#{} webhook {}", index + 1, host(url)),
            _ => format!("#{}", index + 1),
        }
    }
}

/// The file name a checkpoint of `size` has in a directory witness (and
/// under a `put` base): sizes sort as names.
pub fn file_name(size: u64) -> String {
    format!("{size:020}.checkpoint")
}

/// A signed checkpoint to publish.
#[derive(Debug, Clone)]
pub struct Publication {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The signed note, exactly as stored.
    pub note: String,
}

struct Target {
    config: WitnessConfig,
    label: String,
}

struct Shared {
    targets: Vec<Target>,
    client: Result<reqwest::Client, String>,
    metrics: Metrics,
}

/// The configured witnesses; publishing to none does nothing.
pub struct Witnesses {
    lanes: Option<Lanes<Arc<Publication>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Witnesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witnesses")
            .field("count", &self.lanes.as_ref().map_or(0, Lanes::len))
            .finish()
    }
}

/// How one attempt ended.
enum Attempt {
    Published,
    /// Worth another attempt, after the wait given (else the backoff).
    Retry(Option<Duration>, String),
    /// Refused, or a conflicting checkpoint: another attempt would fare no
    /// better.
    Failed(String),
}

impl Witnesses {
    /// Starts one publishing task per witness (validated configs). Must be
    /// called within a Tokio runtime when witnesses are configured.
    pub fn start(configs: &[WitnessConfig], metrics: Metrics) -> Self {
        if configs.is_empty() {
            return Self {
                lanes: None,
                metrics,
            };
        }
        let timeout = configs.iter().map(|c| c.timeout).max().unwrap_or_default();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("no HTTP client: {e}"));
        let targets: Vec<Target> = configs
            .iter()
            .enumerate()
            .map(|(i, config)| {
                metrics.witness_configured(i + 1);
                Target {
                    config: config.clone(),
                    label: config.label(i),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            targets,
            client,
            metrics: metrics.clone(),
        });
        let lanes = Lanes::start(
            configs.len(),
            QUEUE,
            move |lane, publication: Arc<Publication>| {
                let shared = shared.clone();
                async move {
                    let published = publish(&shared, lane, &publication).await;
                    shared
                        .metrics
                        .witness(lane + 1, if published { "published" } else { "failed" });
                }
            },
        );
        Self {
            lanes: Some(lanes),
            metrics,
        }
    }

    /// Offers a signed checkpoint to every witness; never blocks.
    pub fn publish(&self, publication: Publication) {
        let Some(lanes) = &self.lanes else {
            return;
        };
        let publication = Arc::new(publication);
        for lane in 0..lanes.len() {
            if !lanes.offer(lane, publication.clone()) {
                warn!(
                    size = publication.size,
                    witness = lane + 1,
                    "audit witness: queue full, checkpoint not published"
                );
                self.metrics.witness(lane + 1, "dropped");
            }
        }
    }

    /// Waits for the queues to drain, for at most `within` (shutdown, tests).
    pub async fn flush(&self, within: Duration) -> bool {
        match &self.lanes {
            Some(lanes) => lanes.flush(within).await,
            None => true,
        }
    }
}

/// Publishes one checkpoint to one witness, retrying; true when it holds it.
async fn publish(shared: &Shared, lane: usize, publication: &Publication) -> bool {
    let target = &shared.targets[lane];
    let config = &target.config;
    let max_attempts = config.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let outcome = if let Some(dir) = &config.directory {
            let (dir, publication) = (dir.clone(), publication.clone());
            tokio::task::spawn_blocking(move || write_once(&dir, &publication))
                .await
                .unwrap_or_else(|e| Attempt::Retry(None, format!("the writer stopped: {e}")))
        } else {
            match &shared.client {
                Ok(client) => http_attempt(client, config, publication).await,
                Err(e) => Attempt::Failed(e.clone()),
            }
        };
        match outcome {
            Attempt::Published => {
                debug!(witness = %target.label, size = publication.size, attempt, "audit witness: published");
                return true;
            }
            Attempt::Failed(reason) => {
                error!(witness = %target.label, size = publication.size, "audit witness: not published: {reason}");
                return false;
            }
            Attempt::Retry(_, reason) if attempt >= max_attempts => {
                error!(
                    witness = %target.label,
                    size = publication.size,
                    attempts = attempt,
                    "audit witness: not published, giving up: {reason}"
                );
                return false;
            }
            Attempt::Retry(after, reason) => {
                let wait = next_wait(after, config.first_backoff, attempt);
                warn!(witness = %target.label, size = publication.size, attempt, "audit witness: retrying in {wait:?}: {reason}");
                tokio::time::sleep(wait).await;
                shared
                    .metrics
                    .audit_witness_retries
                    .get_or_create(&crate::metrics::WitnessLabel {
                        witness: (lane + 1).to_string(),
                    })
                    .inc();
                attempt += 1;
            }
        }
    }
}

/// The conflict message: the witness holds another checkpoint of this size.
fn conflict(size: u64) -> Attempt {
    Attempt::Failed(format!(
        "the witness holds a different checkpoint of size {size}: two views of the log \
         (a rollback, or another log with this origin)"
    ))
}

/// Creates `<dir>/<size>.checkpoint` unless it exists; an existing file
/// with the same bytes is success, with other bytes a conflict.
fn write_once(dir: &Path, publication: &Publication) -> Attempt {
    let path = dir.join(file_name(publication.size));
    let retry = |what: &str, e: std::io::Error| {
        Attempt::Retry(None, format!("{what} {}: {e}", path.display()))
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return retry("cannot create the directory of", e);
    }
    let tmp = dir.join(format!(
        ".{}.{}.partial",
        file_name(publication.size),
        uuid::Uuid::new_v4().simple()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(publication.note.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return retry("cannot write", e);
    }
    // A hard link creates the name only if it is free: never overwrites.
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Attempt::Published
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match std::fs::read(&path) {
            Ok(held) if held == publication.note.as_bytes() => Attempt::Published,
            Ok(_) => conflict(publication.size),
            Err(e) => retry("cannot read", e),
        },
        Err(e) => retry("cannot create", e),
    }
}

/// `<base>/<name>` with the base's query (a SAS token) kept.
fn put_url(base: &str, size: u64) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("not a URL: {e}"))?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{path}/{}", file_name(size)));
    Ok(url)
}

/// The attempt's verdict from an HTTP status: 2xx published, 429 and 5xx
/// worth retrying, the rest refused.
async fn judge(answer: reqwest::Response) -> Attempt {
    let status = answer.status();
    if status.is_success() {
        return Attempt::Published;
    }
    let after = retry_after(answer.headers());
    let body = read_some(answer).await;
    let reason = format!("answered {status}: {}", body.trim());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Attempt::Retry(after, reason)
    } else {
        Attempt::Failed(reason)
    }
}

fn network(e: reqwest::Error, timeout: Duration) -> Attempt {
    if e.is_builder() {
        Attempt::Failed(e.without_url().to_string())
    } else if e.is_timeout() {
        Attempt::Retry(None, format!("no answer within {timeout:?}"))
    } else {
        Attempt::Retry(None, e.without_url().to_string())
    }
}

async fn http_attempt(
    client: &reqwest::Client,
    config: &WitnessConfig,
    publication: &Publication,
) -> Attempt {
    if let Some(base) = &config.put {
        let url = match put_url(base, publication.size) {
            Ok(url) => url,
            Err(e) => return Attempt::Failed(e),
        };
        let answer = client
            .put(url.clone())
            .timeout(config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(reqwest::header::IF_NONE_MATCH, "*")
            .header("x-ms-blob-type", "BlockBlob")
            .body(publication.note.clone())
            .send()
            .await;
        return match answer {
            Ok(a)
                if matches!(
                    a.status(),
                    StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
                ) =>
            {
                // Already there: the same checkpoint, or another view.
                match client.get(url).timeout(config.timeout).send().await {
                    Ok(held) if held.status().is_success() => match held.bytes().await {
                        Ok(bytes) if bytes == publication.note.as_bytes() => Attempt::Published,
                        Ok(_) => conflict(publication.size),
                        Err(e) => network(e, config.timeout),
                    },
                    Ok(held) => judge(held).await,
                    Err(e) => network(e, config.timeout),
                }
            }
            Ok(a) => judge(a).await,
            Err(e) => network(e, config.timeout),
        };
    }
    let url = config.webhook.as_deref().unwrap_or_default();
    let body = serde_json::json!({
        "origin": publication.origin,
        "size": publication.size,
        "root": B64.encode(publication.root),
        "checkpoint": publication.note,
    });
    match client
        .post(url)
        .timeout(config.timeout)
        .json(&body)
        .send()
        .await
    {
        Ok(a) => judge(a).await,
        Err(e) => network(e, config.timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(size: u64, note: &str) -> Publication {
        Publication {
            origin: "warden.test/log".into(),
            size,
            root: [7; 32],
            note: note.into(),
        }
    }

    #[test]
    fn a_directory_witness_writes_once_and_names_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let first = publication(12, "note 12\n");
        assert!(matches!(write_once(dir.path(), &first), Attempt::Published));
        let path = dir.path().join("00000000000000000012.checkpoint");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "note 12\n");
        // The same checkpoint again (a retry, another replica): published.
        assert!(matches!(write_once(dir.path(), &first), Attempt::Published));
        // Another checkpoint of the same size is refused and not written.
        match write_once(dir.path(), &publication(12, "other 12\n")) {
            Attempt::Failed(reason) => assert!(reason.contains("size 12"), "{reason}"),
            _ => panic!("a conflicting checkpoint was accepted"),
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "note 12\n");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn put_urls_keep_the_query() {
        let url = put_url("https://a.blob.core.windows.net/cps?sv=1&sig=x%2B", 5).unwrap();
        assert_eq!(
            url.as_str(),
            "https://a.blob.core.windows.net/cps/00000000000000000005.checkpoint?sv=1&sig=x%2B"
        );
        let url = put_url("https://w.example.com/", 5).unwrap();
        assert_eq!(url.path(), "/00000000000000000005.checkpoint");
    }

    #[test]
    fn config_needs_one_kind_and_names_the_key() {
        let parse = |text: &str| toml::from_str::<WitnessConfig>(text).unwrap();
        assert!(parse("directory = \"w\"").validate(0).is_ok());
        let c = parse("put = \"https://a.blob.core.windows.net/c?sig=secret\"");
        assert!(c.validate(0).is_ok());
        assert_eq!(c.label(0), "#1 put a.blob.core.windows.net");
        let error = parse("").validate(2).unwrap_err();
        assert!(
            error.starts_with("audit.witness[2]: set exactly one"),
            "{error}"
        );
        let error = parse("directory = \"w\"\nwebhook = \"https://h.example.com/\"")
            .validate(0)
            .unwrap_err();
        assert!(error.contains("exactly one"), "{error}");
        let error = parse("webhook = \"http://h.example.com/secret\"")
            .validate(1)
            .unwrap_err();
        assert!(
            error.starts_with("audit.witness[1].webhook: must be an https URL"),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
        let error = parse("directory = \"w\"\nmax_attempts = 0")
            .validate(0)
            .unwrap_err();
        assert!(
            error.starts_with("audit.witness[0].max_attempts"),
            "{error}"
        );
        let unknown = toml::from_str::<WitnessConfig>("path = \"w\"").unwrap_err();
        assert!(unknown.to_string().contains("path"), "{unknown}");
    }
}
