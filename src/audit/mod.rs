//! The append-only, tamper-evident audit log (docs/ARCHITECTURE.md, the audit log).
//!
//! Every tool call writes an `intent` record that is durable (fsync'd by
//! the store's group commit) before the call is forwarded, and an `outcome`
//! record after. Records are redacted before they are hashed, stored as
//! RFC 8785 canonical bytes, and form an RFC 6962 Merkle tree whose heads
//! are signed as C2SP checkpoints with Ed25519 at an interval, on shutdown
//! and on demand (SIGUSR1). `warden audit verify` checks all of it offline.
//!
//! Failing closed: if an intent cannot be written the call is refused; if an
//! outcome cannot be written it is kept in memory and retried, and every new
//! call is refused until it has been written.

pub mod auth;
pub mod export;
/// The Merkle tree, proofs and signed notes live in the standalone
/// `warden-tlog` crate, which auditors can build on its own.
pub use warden_tlog::{merkle, note, proof};
pub mod record;
pub mod redact;
mod seal;
pub mod source;
mod subset;
pub mod trusted;
pub mod verify;
pub mod witness;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::call::ToolCall;
use crate::metrics::Metrics;
use crate::store::{CheckpointRow, Store, StoreError};
use merkle::{Frontier, Hash, leaf_hash};
use note::{Checkpoint, Signature, SignedNote, Signer, VerifierKey};
use record::{Actor, Kind, Record, Status};
use redact::{RedactionConfig, Redactor};
use seal::sealer;
use witness::{Publication, WitnessConfig, Witnesses};

/// How long shutdown waits for witnesses to take the last checkpoints.
const WITNESS_FLUSH: Duration = Duration::from_secs(5);

/// `[audit]` in warden.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The Ed25519 checkpoint signing key (`warden audit keygen` makes one).
    /// Its name is the log's origin.
    pub signing_key: PathBuf,
    /// The key that signed the log so far, when rotating to `signing_key`.
    #[serde(default)]
    pub previous_signing_key: Option<PathBuf>,
    /// The HMAC key that redacts argument values.
    pub hmac_key: PathBuf,
    /// How often a checkpoint is signed when records were added.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// A heartbeat record is written after this long without records.
    #[serde(default = "default_heartbeat_interval", with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// How long refused tokens of one (surface, reason, source, client)
    /// are counted before their tally is recorded (see [`auth`]).
    #[serde(default = "default_auth_refusal_interval", with = "humantime_serde")]
    pub auth_refusal_interval: Duration,
    /// Where signed checkpoints are also published (`[[audit.witness]]`).
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<WitnessConfig>,
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_auth_refusal_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_heartbeat_interval() -> Duration {
    Duration::from_secs(60)
}

impl AuditConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.checkpoint_interval < Duration::from_millis(100) {
            return Err("audit.checkpoint_interval: must be at least 100ms".into());
        }
        if self.heartbeat_interval < Duration::from_secs(1) {
            return Err("audit.heartbeat_interval: must be at least 1s".into());
        }
        if self.auth_refusal_interval < Duration::from_secs(1) {
            return Err("audit.auth_refusal_interval: must be at least 1s".into());
        }
        for (i, witness) in self.witnesses.iter().enumerate() {
            witness.validate(i)?;
        }
        Ok(())
    }

    /// The keys `files` with no timed checkpoints or heartbeats (an hour
    /// apart): for tools and tests that checkpoint when they choose.
    pub fn quiet(files: &KeyFiles) -> AuditConfig {
        AuditConfig {
            signing_key: files.signing_key.clone(),
            previous_signing_key: None,
            hmac_key: files.hmac_key.clone(),
            checkpoint_interval: Duration::from_secs(3600),
            heartbeat_interval: Duration::from_secs(3600),
            redaction: RedactionConfig::default(),
            auth_refusal_interval: default_auth_refusal_interval(),
            witnesses: Vec::new(),
        }
    }

    /// Makes relative key paths relative to `base` (the config file's folder).
    pub fn resolve(&mut self, base: &Path) {
        for path in [&mut self.signing_key, &mut self.hmac_key] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if let Some(path) = &mut self.previous_signing_key
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
        for witness in &mut self.witnesses {
            witness.resolve(base);
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit log cannot start: {0}")]
    Start(String),
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
}

fn read_key_file(path: &Path) -> Result<String, AuditError> {
    std::fs::read_to_string(path).map_err(|e| AuditError::Key {
        path: path.to_owned(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "no such key file (create keys with `warden audit keygen`)".into()
        } else {
            e.to_string()
        },
    })
}

pub fn load_signer(path: &Path) -> Result<Signer, AuditError> {
    Signer::parse(&read_key_file(path)?).map_err(|e| AuditError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub fn load_verifier(path: &Path) -> Result<VerifierKey, AuditError> {
    VerifierKey::parse(&read_key_file(path)?).map_err(|e| AuditError::Key {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

pub fn load_hmac_key(path: &Path) -> Result<Vec<u8>, AuditError> {
    let text = read_key_file(path)?;
    match hex::decode(text.trim()) {
        Ok(key) if key.len() >= 32 => Ok(key),
        _ => Err(AuditError::Key {
            path: path.to_owned(),
            reason: "an HMAC key is at least 32 bytes in hex".into(),
        }),
    }
}

/// The files `warden audit keygen` writes.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub signing_key: PathBuf,
    pub public_key: PathBuf,
    pub hmac_key: PathBuf,
}

impl KeyFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            signing_key: dir.join("audit-signing.key"),
            public_key: dir.join("audit.pub"),
            hmac_key: dir.join("audit-hmac.key"),
        }
    }
}

fn write_new(path: &Path, text: &str, secret: bool) -> Result<(), AuditError> {
    use std::io::Write;
    let key_error = |reason: String| AuditError::Key {
        path: path.to_owned(),
        reason,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| {
        key_error(if e.kind() == std::io::ErrorKind::AlreadyExists {
            "already exists; keys are never overwritten".into()
        } else {
            e.to_string()
        })
    })?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| key_error(e.to_string()))
}

/// Creates a signing key named `origin`, its public key, and an HMAC key
/// (any that is named and missing; existing files are never overwritten).
pub fn keygen(origin: &str, files: &KeyFiles, hmac: bool) -> Result<VerifierKey, AuditError> {
    let signer = Signer::generate(origin).map_err(|e| AuditError::Start(e.to_string()))?;
    for path in [&files.signing_key, &files.public_key, &files.hmac_key] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::Key {
                path: dir.to_owned(),
                reason: e.to_string(),
            })?;
        }
    }
    write_new(&files.signing_key, &format!("{}\n", signer.encode()), true)?;
    write_new(
        &files.public_key,
        &format!("{}\n", signer.verifier().encode()),
        false,
    )?;
    if hmac {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        write_new(&files.hmac_key, &format!("{}\n", hex::encode(key)), true)?;
    }
    Ok(signer.verifier())
}

/// The log's health as `/readyz` and the pipeline see it.
#[derive(Default)]
struct Health {
    /// Outcomes that could not be written yet (retried; calls are refused
    /// until they are written).
    pending: Vec<Record>,
    /// The last write failure, until a write succeeds.
    error: Option<String>,
}

/// The audit log of one Warden process.
pub struct Audit {
    store: Store,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    signer: Signer,
    redactor: Redactor,
    config: AuditConfig,
    frontier: Arc<Mutex<Frontier>>,
    /// Serialises checkpoints so their sizes never go down.
    checkpointing: tokio::sync::Mutex<u64>,
    health: Mutex<Health>,
    last_append: Mutex<Instant>,
    outcomes: TaskTracker,
    witnesses: Witnesses,
    refusals: auth::Refusals,
    metrics: Metrics,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit")
            .field("store", &self.store)
            .field("origin", &self.signer.name())
            .finish_non_exhaustive()
    }
}

fn frontier_bytes(f: &Frontier) -> Vec<u8> {
    f.peaks().concat()
}

impl Audit {
    /// Opens the log: loads the keys, opens the store, restores the Merkle
    /// frontier, rotates the signing key if configured, closes the calls a
    /// crash interrupted, and writes `log_start` and a checkpoint.
    pub async fn open(
        store: impl Into<crate::store::Location>,
        config: AuditConfig,
        metrics: Metrics,
    ) -> Result<Arc<Self>, AuditError> {
        let signer = load_signer(&config.signing_key)?;
        let hmac_key = load_hmac_key(&config.hmac_key)?;
        let previous = match &config.previous_signing_key {
            Some(path) => Some(load_signer(path)?),
            None => None,
        };
        let frontier = Arc::new(Mutex::new(Frontier::new()));
        let hook_frontier = frontier.clone();
        let hook_metrics = metrics.clone();
        let opened = Store::open(
            store,
            Box::new(move |_, leaves: &[Hash], own: usize| {
                let mut f = hook_frontier.lock().expect("frontier lock");
                for leaf in leaves {
                    f.push(*leaf);
                }
                hook_metrics.audit_tree_size.set(f.size() as i64);
                if own > 0 {
                    hook_metrics.audit_commit_batch.observe(own as f64);
                }
            }),
        )?;
        let redactor = Redactor::new(hmac_key.clone(), &config.redaction);
        let witnesses = Witnesses::start(&config.witnesses, metrics.clone());
        let audit = Arc::new(Self {
            store: opened.store,
            writer: Mutex::new(Some(opened.writer)),
            signer,
            redactor,
            config,
            frontier,
            checkpointing: tokio::sync::Mutex::new(0),
            health: Mutex::new(Health::default()),
            last_append: Mutex::new(Instant::now()),
            outcomes: TaskTracker::new(),
            witnesses,
            refusals: auth::Refusals::default(),
            metrics,
        });
        match audit
            .start(previous.as_ref(), opened.next_seq, &hmac_key)
            .await
        {
            Ok(()) => Ok(audit),
            Err(e) => {
                // Release the store (and its lock) before saying why.
                audit.join_writer();
                Err(e)
            }
        }
    }

    /// Everything `open` does once the store is open.
    async fn start(
        &self,
        previous: Option<&Signer>,
        records: u64,
        hmac_key: &[u8],
    ) -> Result<(), AuditError> {
        let reader = self.store.reader()?;
        let last = reader.last_checkpoint()?;
        let restored = restore_frontier(&reader, last.as_ref(), records)?;
        *self.checkpointing.lock().await = last.as_ref().map_or(0, |c| c.size);
        self.metrics.audit_tree_size.set(restored.size() as i64);
        *self.frontier.lock().expect("frontier lock") = restored;
        metrics_writable(&self.metrics, true);

        // The key that signed the log so far must be ours, or the one we
        // rotate from.
        if let Some(last) = &last {
            self.check_signer(last, previous).await?;
        }
        // Calls a crash interrupted get an `abandoned` outcome.
        let open = reader.open_intents_since_last(Kind::LogStart.as_str())?;
        self.abandon_interrupted(open).await?;
        let hmac_id = hex::encode(&Sha256::digest(hmac_key)[..8]);
        let mut start = Record::new(Kind::LogStart);
        start.details = Some(json!({
            "origin": self.signer.name(),
            "key": self.signer.verifier().encode(),
            "hmac_key_id": hmac_id,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            // How often an idle log proves it is alive: a longer silence
            // while it runs is a gap (the compliance report counts them).
            "heartbeat_interval_s": self.config.heartbeat_interval.as_secs(),
        }));
        self.append(start).await?;
        self.checkpoint().await?;
        Ok(())
    }

    /// Gives every interrupted call in `open` (intents, as
    /// `Reader::open_intents_since_last` finds them: on SQLite the calls
    /// open since this log's last start, on PostgreSQL those of replicas
    /// that are gone) an `abandoned` outcome. Each outcome is guarded by its call id, so
    /// replicas reaping together write it once.
    async fn abandon_interrupted(&self, open: Vec<Vec<u8>>) -> Result<usize, AuditError> {
        let mut abandoned = 0;
        for bytes in open {
            let Ok(intent) = serde_json::from_slice::<Record>(&bytes) else {
                continue;
            };
            let Some(call_id) = intent.call_id.clone() else {
                continue;
            };
            let mut outcome = Record::new(Kind::Outcome);
            outcome.call_id = intent.call_id;
            outcome.principal = intent.principal;
            outcome.session_id = intent.session_id;
            outcome.tool = intent.tool;
            outcome.upstream = intent.upstream;
            outcome.status = Some(Status::Abandoned);
            outcome.error = Some("Warden stopped before the call ended".into());
            let guard = crate::store::Guard {
                ns: "audit.abandoned".into(),
                key: call_id,
                expected: None,
                new: b"abandoned".to_vec(),
            };
            match self.append_guarded(outcome, guard).await {
                Ok(_) => abandoned += 1,
                // Another replica wrote it.
                Err(AuditError::Store(StoreError::Conflict(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(abandoned)
    }

    /// On a store replicas share, gives the calls of replicas that stopped
    /// their `abandoned` outcomes (the maintenance task does this every
    /// checkpoint interval); returns how many. Nothing to do on SQLite,
    /// where a Warden does it for its own log when it starts.
    pub async fn reap_interrupted(&self) -> Result<usize, AuditError> {
        if self.store.location().sqlite_path().is_some() {
            return Ok(0);
        }
        let open = self
            .store
            .reader()?
            .open_intents_since_last(Kind::LogStart.as_str())?;
        let reaped = self.abandon_interrupted(open).await?;
        if reaped > 0 {
            tracing::warn!(
                calls = reaped,
                "calls of a stopped replica recorded as abandoned"
            );
        }
        Ok(reaped)
    }

    async fn check_signer(
        &self,
        last: &CheckpointRow,
        previous: Option<&Signer>,
    ) -> Result<(), AuditError> {
        let note = SignedNote::parse(&last.note)
            .map_err(|e| AuditError::Start(format!("the last checkpoint is unreadable: {e}")))?;
        let ours = self.signer.verifier();
        if note.signed_by(&ours) == Signature::Valid {
            return Ok(());
        }
        let Some(old) = previous.filter(|p| note.signed_by(&p.verifier()) == Signature::Valid)
        else {
            return Err(AuditError::Start(format!(
                "the log's last checkpoint is not signed by {} ({}); to rotate keys set \
                 audit.previous_signing_key to the key that signed it (signed by {})",
                self.config.signing_key.display(),
                ours.encode(),
                note.signers().join(", ")
            )));
        };
        if old.name() != self.signer.name() {
            return Err(AuditError::Start(format!(
                "a rotated key keeps the log's origin: the new key is named {:?}, the log {:?}",
                self.signer.name(),
                old.name()
            )));
        }
        // The rotation record, endorsed by the old key, then a checkpoint
        // the old key signs over it; from then on the new key signs.
        let new_key = ours.encode();
        let endorsement = old.sign_bytes(verify::rotation_message(old.name(), &new_key).as_bytes());
        let mut rotation = Record::new(Kind::KeyRotation);
        rotation.details = Some(json!({
            "old_key": old.verifier().encode(),
            "new_key": new_key,
            "endorsement": B64.encode(endorsement),
        }));
        self.append(rotation).await?;
        self.checkpoint_with(old, true).await?;
        tracing::info!(old = %old.verifier().encode(), new = %new_key, "audit signing key rotated");
        Ok(())
    }

    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    pub fn public_key(&self) -> VerifierKey {
        self.signer.verifier()
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The store the log is written to, for the other state it keeps (risk
    /// baselines) through the same writer.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Why the log cannot take calls right now, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let health = self.health.lock().expect("health lock");
        if !health.pending.is_empty() {
            return Some(format!(
                "{} outcome record(s) could not be written ({}); calls are refused until the \
                 audit log is writable again",
                health.pending.len(),
                health.error.as_deref().unwrap_or("unknown error")
            ));
        }
        health.error.clone()
    }

    fn failed(&self, error: &StoreError) {
        self.health.lock().expect("health lock").error = Some(error.to_string());
        metrics_writable(&self.metrics, false);
    }

    fn succeeded(&self) {
        let mut health = self.health.lock().expect("health lock");
        if health.pending.is_empty() {
            health.error = None;
            metrics_writable(&self.metrics, true);
        }
    }

    /// Appends one record durably; returns its sequence number.
    pub async fn append(&self, record: Record) -> Result<u64, AuditError> {
        let kind = record.kind;
        let result = self.store.append(vec![sealer(record)]).await;
        match result {
            Ok(seqs) => {
                *self.last_append.lock().expect("clock lock") = Instant::now();
                self.metrics.audit_record(kind.as_str());
                self.succeeded();
                Ok(seqs[0])
            }
            Err(e) => {
                self.metrics.audit_write_failure(kind.as_str());
                self.failed(&e);
                Err(e.into())
            }
        }
    }

    /// Appends one record durably if `guard` holds (see
    /// [`Store::append_guarded`]); a guard another writer changed first is
    /// `AuditError::Store(StoreError::Conflict(_))`, not a failure of the
    /// log.
    pub async fn append_guarded(
        &self,
        record: Record,
        guard: crate::store::Guard,
    ) -> Result<u64, AuditError> {
        let kind = record.kind;
        match self.store.append_guarded(vec![sealer(record)], guard).await {
            Ok(seqs) => {
                *self.last_append.lock().expect("clock lock") = Instant::now();
                self.metrics.audit_record(kind.as_str());
                self.succeeded();
                Ok(seqs[0])
            }
            Err(e @ StoreError::Conflict(_)) => Err(e.into()),
            Err(e) => {
                self.metrics.audit_write_failure(kind.as_str());
                self.failed(&e);
                Err(e.into())
            }
        }
    }

    /// The intent record of a call, durable when this returns `Ok`.
    pub async fn intent(&self, call: &ToolCall, assessed: Assessment) -> Result<u64, AuditError> {
        if let Some(problem) = self.pending_problem() {
            return Err(AuditError::Unavailable(problem));
        }
        let started = Instant::now();
        let mut r = Record::new(Kind::Intent);
        fill_call(&mut r, call);
        if let Some(actor) = &mut r.principal {
            actor.roles = assessed.roles;
            actor.groups = assessed.role_groups;
        }
        r.operations = assessed.operations;
        r.decision = assessed.decision;
        r.risk = assessed.risk;
        r.jit = assessed.jit;
        r.arguments = call
            .arguments
            .as_ref()
            .map(|args| self.redactor.arguments(&call.tool, args));
        let result = self.append(r).await;
        self.metrics
            .audit_intent_latency
            .observe(started.elapsed().as_secs_f64());
        result.map_err(|e| AuditError::Unavailable(e.to_string()))
    }

    fn pending_problem(&self) -> Option<String> {
        let has_pending = !self.health.lock().expect("health lock").pending.is_empty();
        if has_pending { self.problem() } else { None }
    }

    /// Writes a call's outcome in the background (the client is not kept
    /// waiting), lingering for the next append to share its commit (see
    /// [`Store::append_lingering`]); a failure holds the record for retry
    /// and fails closed.
    pub fn outcome(
        self: &Arc<Self>,
        call: &ToolCall,
        status: Status,
        error: Option<&str>,
        duration: Duration,
        azure_correlation_id: Option<String>,
    ) {
        let r = self.outcome_record(call, status, error, duration, azure_correlation_id);
        let audit = self.clone();
        self.outcomes.spawn(async move {
            let kind = r.kind;
            if let Err(e) = audit.store.append_lingering(vec![sealer(r.clone())]).await {
                tracing::error!(error = %e, call_id = ?r.call_id, "outcome record not written; refusing new calls until it is");
                audit.metrics.audit_write_failure(kind.as_str());
                audit.failed(&e);
                audit.health.lock().expect("health lock").pending.push(r);
            } else {
                *audit.last_append.lock().expect("clock lock") = Instant::now();
                audit.metrics.audit_record(kind.as_str());
                audit.succeeded();
            }
        });
    }

    fn outcome_record(
        &self,
        call: &ToolCall,
        status: Status,
        error: Option<&str>,
        duration: Duration,
        azure_correlation_id: Option<String>,
    ) -> Record {
        let mut r = Record::new(Kind::Outcome);
        fill_call(&mut r, call);
        r.status = Some(status);
        r.error = error.map(|e| self.redactor.message(e));
        r.duration_us = Some(duration.as_micros() as u64);
        r.azure_correlation_id = azure_correlation_id;
        r
    }

    /// The outcome record of a call, durable when this returns `Ok` (for
    /// a call that records follow: an automatic response). A failure is
    /// handled as [`Audit::outcome`] does: the record is kept and retried,
    /// and new calls are refused until it is written.
    pub async fn outcome_now(
        &self,
        call: &ToolCall,
        status: Status,
        error: Option<&str>,
        duration: Duration,
        azure_correlation_id: Option<String>,
    ) -> Result<u64, AuditError> {
        let r = self.outcome_record(call, status, error, duration, azure_correlation_id);
        match self.store.append(vec![sealer(r.clone())]).await {
            Ok(seqs) => {
                *self.last_append.lock().expect("clock lock") = Instant::now();
                self.metrics.audit_record(Kind::Outcome.as_str());
                self.succeeded();
                Ok(seqs[0])
            }
            Err(e) => {
                tracing::error!(error = %e, call_id = ?r.call_id, "outcome record not written; refusing new calls until it is");
                self.metrics.audit_write_failure(Kind::Outcome.as_str());
                self.failed(&e);
                self.health.lock().expect("health lock").pending.push(r);
                Err(e.into())
            }
        }
    }

    /// Retries outcomes that could not be written.
    async fn retry_pending(&self) {
        let pending = std::mem::take(&mut self.health.lock().expect("health lock").pending);
        if pending.is_empty() {
            return;
        }
        let sealers = pending.iter().cloned().map(sealer).collect();
        match self.store.append(sealers).await {
            Ok(_) => {
                tracing::info!(
                    records = pending.len(),
                    "pending outcome records written; accepting calls again"
                );
                for r in &pending {
                    self.metrics.audit_record(r.kind.as_str());
                }
                self.succeeded();
            }
            Err(e) => {
                self.failed(&e);
                let mut health = self.health.lock().expect("health lock");
                let newer = std::mem::replace(&mut health.pending, pending);
                health.pending.extend(newer);
            }
        }
    }

    /// Signs and stores a checkpoint of the current tree unless the last
    /// one already has this size.
    pub async fn checkpoint(&self) -> Result<Option<CheckpointRow>, AuditError> {
        self.checkpoint_with(&self.signer, false).await
    }

    async fn checkpoint_with(
        &self,
        signer: &Signer,
        force: bool,
    ) -> Result<Option<CheckpointRow>, AuditError> {
        let mut last_size = self.checkpointing.lock().await;
        let (size, root, peaks) = {
            let f = self.frontier.lock().expect("frontier lock");
            (f.size(), f.root(), frontier_bytes(&f))
        };
        if size == *last_size && !force && size > 0 {
            return Ok(None);
        }
        let body = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
        };
        let row = CheckpointRow {
            id: 0,
            size,
            root: root.to_vec(),
            frontier: peaks,
            note: signer.sign_note(&body.text()),
            created: record::now(),
        };
        match self.store.append_checkpoint(row.clone()).await {
            Ok(()) => {
                *last_size = size;
                self.metrics.audit_checkpoints.inc();
                self.witnesses.publish(Publication {
                    origin: body.origin,
                    size,
                    root,
                    note: row.note.clone(),
                });
                Ok(Some(row))
            }
            Err(e) => {
                self.failed(&e);
                Err(e.into())
            }
        }
    }

    /// Checkpoints at the configured interval, writes heartbeats when idle,
    /// retries failed outcomes, and checkpoints on SIGUSR1; until `stop`.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let audit = self.clone();
        tokio::spawn(async move {
            let tick = audit.config.checkpoint_interval.min(Duration::from_secs(1));
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_checkpoint = Instant::now();
            let mut last_refusals = Instant::now();
            #[cfg(unix)]
            let mut usr1 =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()).ok();
            loop {
                #[cfg(unix)]
                let on_demand = async {
                    match usr1.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let on_demand = std::future::pending::<Option<()>>();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = interval.tick() => {}
                    _ = on_demand => {
                        if let Err(e) = audit.checkpoint().await {
                            tracing::error!(error = %e, "on-demand checkpoint failed");
                        }
                        continue;
                    }
                }
                audit.retry_pending().await;
                let idle = audit.last_append.lock().expect("clock lock").elapsed();
                let broken = audit.health.lock().expect("health lock").error.is_some();
                if idle >= audit.config.heartbeat_interval || broken {
                    // A heartbeat also probes a log that failed a write.
                    let _ = audit.append(Record::new(Kind::Heartbeat)).await;
                }
                if last_refusals.elapsed() >= audit.config.auth_refusal_interval {
                    last_refusals = Instant::now();
                    audit.flush_auth_refusals().await;
                }
                if last_checkpoint.elapsed() >= audit.config.checkpoint_interval {
                    last_checkpoint = Instant::now();
                    if let Err(e) = audit.checkpoint().await {
                        tracing::error!(error = %e, "checkpoint failed");
                    }
                    if let Err(e) = audit.reap_interrupted().await {
                        tracing::error!(error = %e, "interrupted calls of stopped replicas not recorded yet");
                    }
                }
            }
        })
    }

    /// Waits for outcome writes, retries what is pending, signs a final
    /// checkpoint and stops the writer.
    pub async fn close(&self) {
        self.outcomes.close();
        self.outcomes.wait().await;
        self.flush_auth_refusals().await;
        self.retry_pending().await;
        if let Err(e) = self.checkpoint().await {
            tracing::error!(error = %e, "final checkpoint failed");
        }
        if !self.witnesses.flush(WITNESS_FLUSH).await {
            tracing::warn!("audit witnesses: checkpoints still unpublished at shutdown");
        }
    }

    /// Stops the writer thread once every handle is gone (for tests and
    /// tools that reopen the same file in one process).
    pub fn join_writer(self: Arc<Self>) {
        if let Ok(audit) = Arc::try_unwrap(self) {
            let writer = audit.writer.lock().expect("writer lock").take();
            // All of it, not just its store: what it holds (the refusal
            // hook's risk stage, with its journal) may hold store handles
            // too, and the writer stops only when the last one is gone.
            drop(audit);
            if let Some(w) = writer {
                let _ = w.join();
            }
        }
    }
}

fn metrics_writable(metrics: &Metrics, writable: bool) {
    metrics.audit_writable.set(i64::from(writable));
}

fn fill_call(r: &mut Record, call: &ToolCall) {
    r.call_id = Some(call.call_id.clone());
    r.principal = Some(Actor::from(call.principal.as_ref()));
    r.source_ip = call.principal.source_ip.map(|ip| ip.to_string());
    r.user_agent = call.user_agent.clone();
    r.session_id = Some(call.session.clone());
    r.tool = Some(call.tool.clone());
    r.upstream = Some(call.upstream.clone());
    r.upstream_tool = Some(call.upstream_tool.clone());
}

/// What the stages before execution found out about a call: its intent
/// record carries it.
#[derive(Debug, Clone, Default)]
pub struct Assessment {
    /// The Azure operations the call performs (resolve stage).
    pub operations: Vec<record::Operation>,
    /// The authorization decision (authorize stage).
    pub decision: Option<serde_json::Value>,
    /// The risk assessment (score stage).
    pub risk: Option<serde_json::Value>,
    /// The app roles the caller held for the decision (authorize stage).
    pub roles: Vec<String>,
    /// The caller's groups that conferred some of them.
    pub role_groups: Vec<String>,
    /// The JIT grant the call runs under (approvals stage): request id,
    /// grant id and approvers.
    pub jit: Option<serde_json::Value>,
}

/// The frontier at the last checkpoint, then the records after it.
fn restore_frontier(
    reader: &crate::store::Reader,
    last: Option<&CheckpointRow>,
    records: u64,
) -> Result<Frontier, AuditError> {
    let mut frontier = match last {
        None => Frontier::new(),
        Some(c) => {
            if c.size > records {
                return Err(AuditError::Start(format!(
                    "the store holds {records} records but its last checkpoint covers {}: \
                     records were removed (run `warden audit verify`)",
                    c.size
                )));
            }
            let peaks: Vec<Hash> = c
                .frontier
                .chunks(32)
                .filter_map(|p| p.try_into().ok())
                .collect();
            let f = Frontier::from_peaks(c.size, peaks).ok_or_else(|| {
                AuditError::Start("the last checkpoint's frontier is malformed".into())
            })?;
            if f.root()[..] != c.root[..] {
                return Err(AuditError::Start(
                    "the last checkpoint's frontier does not match its root".into(),
                ));
            }
            f
        }
    };
    let mut broken = None;
    reader.for_each_record(frontier.size() as i64, |row| {
        if row.seq as u64 != frontier.size() && broken.is_none() {
            broken = Some(row.seq);
        }
        frontier.push(leaf_hash(&row.bytes));
        Ok(())
    })?;
    if let Some(seq) = broken {
        return Err(AuditError::Start(format!(
            "the store's sequence numbers are not contiguous at {seq} (run `warden audit verify`)"
        )));
    }
    Ok(frontier)
}

/// An audit log with fresh keys in `dir` (for unit tests elsewhere).
#[cfg(test)]
pub(crate) async fn test_audit(dir: &Path) -> Arc<Audit> {
    let files = KeyFiles::in_dir(dir);
    keygen("warden.test/audit", &files, true).unwrap();
    let config = AuditConfig {
        signing_key: files.signing_key,
        previous_signing_key: None,
        hmac_key: files.hmac_key,
        checkpoint_interval: default_checkpoint_interval(),
        heartbeat_interval: default_heartbeat_interval(),
        redaction: RedactionConfig::default(),
        auth_refusal_interval: Duration::from_secs(60),
        witnesses: Vec::new(),
    };
    Audit::open(&dir.join("warden.db"), config, Metrics::new())
        .await
        .unwrap()
}
