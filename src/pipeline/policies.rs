//! Loading the policy set, the only way a set starts deciding: at start,
//! on SIGHUP and when its files change, and by change management (apply,
//! rollback, break glass; docs/POLICY-CHANGES.md). Every load is
//! recorded (`policy_load`, with the set's files kept by hash) before the
//! set is installed. With `[policy] require_approval`, a set no security
//! manager approved is refused (a `policy_change` `refused` record, the
//! running set stays) unless break glass loads it.
//!
//! Loads take one lock, and so does any write of the policy directory
//! before its load: no reload ever reads half of a set being written.

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::Pipeline;
use crate::approvals::notify::Notification;
use crate::audit::record::{Actor, Kind, Record};
use crate::identity::Principal;
use crate::metrics::AlertLabel;
use crate::policy::{self, PolicyError, Staged, Summary};
use crate::policy_change::{ChangeError, FileSet, Proposal, Refused, Status};

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The new set was recorded and runs.
    Loaded,
    /// The files had not changed since they were last loaded or refused.
    Unchanged,
    /// The new set is invalid; the running set stays.
    Invalid,
    /// The new set was not approved (`[policy] require_approval`); the
    /// running set stays.
    Unapproved,
    /// The new set is valid but its `policy_load` record could not be
    /// written; the running set stays.
    Unrecorded,
}

/// Why a set is loaded, who asked, and what the load carries.
#[derive(Debug, Clone, Default)]
pub struct LoadRequest<'a> {
    /// `start`, `sighup`, `file_change`, `apply`, `rollback`,
    /// `break_glass`.
    pub trigger: &'a str,
    /// The person who asked (the record's `principal`).
    pub by: Option<&'a Principal>,
    pub reason: Option<&'a str>,
    /// Loaded whatever its approval (and alerted).
    pub break_glass: bool,
    /// The hash of the set a rollback replaces.
    pub rollback_of: Option<&'a str>,
    /// Files written into `policy.dir` before the load (put back as they
    /// were if the load fails).
    pub write: Option<&'a FileSet>,
    /// The load happens only while one of these sets runs (empty: any).
    pub expect_running: &'a [String],
}

/// Why a set was not loaded; the running set stays.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the running policy set changed meanwhile (it is now {running})")]
    Stale { running: String },
    #[error("the policy files could not be written into {dir}: {error}")]
    Write { dir: String, error: String },
    #[error(transparent)]
    Invalid(PolicyError),
    #[error("policy set {hash} is not approved ([policy] require_approval): {reason}")]
    Unapproved { hash: String, reason: String },
    #[error("policy set {hash} was not loaded: its load could not be recorded: {error}")]
    Unrecorded { hash: String, error: String },
}

impl From<LoadError> for ChangeError {
    fn from(error: LoadError) -> Self {
        match error {
            LoadError::Stale { .. } => ChangeError::conflict("stale", error.to_string()),
            LoadError::Write { .. } => ChangeError::Failed(error.to_string()),
            LoadError::Invalid(PolicyError::Invalid(problems)) => {
                ChangeError::Invalid(Refused::Invalid(problems))
            }
            LoadError::Invalid(other) => ChangeError::Invalid(Refused::Other(other.to_string())),
            LoadError::Unapproved { .. } => ChangeError::conflict("unapproved", error.to_string()),
            LoadError::Unrecorded { .. } => ChangeError::Unavailable(error.to_string()),
        }
    }
}

const UNAPPROVED: &str = "no security manager approved it: propose it (warden policy propose) \
                          and have another security manager approve it, or load it by break glass";

impl Pipeline {
    /// Reloads the policy set (`trigger` says why: `sighup`,
    /// `file_change`). A valid set is recorded in the audit log (a
    /// `policy_load` record with its hash) and then installed; an invalid
    /// one, an unapproved one under `require_approval`, or one the log
    /// cannot record leaves the running set in place.
    pub async fn reload_policies(&self, trigger: &str) -> Reload {
        let _one_at_a_time = self.changes.loading().lock().await;
        reload_of(self.load_locked(&LoadRequest::reload(trigger)).await)
    }

    /// Loads the set `request` asks for (writing its files first, if any).
    pub async fn load_policies(&self, request: LoadRequest<'_>) -> Result<Summary, LoadError> {
        let _one_at_a_time = self.changes.loading().lock().await;
        let config = self.policy.config();
        if !request.expect_running.is_empty() {
            let running = self.policy.hash();
            if !request.expect_running.contains(&running) {
                return Err(LoadError::Stale { running });
            }
        }
        let Some(files) = request.write else {
            return self.load_locked(&request).await;
        };
        let write = |error: std::io::Error| LoadError::Write {
            dir: config.dir.display().to_string(),
            error: error.to_string(),
        };
        let before = FileSet::read(&config.dir).map_err(write)?;
        files.write_into(&config.dir).map_err(write)?;
        let loaded = self.load_locked(&request).await;
        if loaded.is_err() {
            // The directory goes back to the set that runs.
            match before.write_into(&config.dir) {
                Ok(()) => self.changes.set_seen(policy::fingerprint(config)),
                Err(error) => {
                    tracing::error!(%error, dir = %config.dir.display(), "the policy files could not be put back after a failed load: the directory no longer holds the running set")
                }
            }
        }
        loaded
    }

    /// The load itself, under the load lock.
    async fn load_locked(&self, request: &LoadRequest<'_>) -> Result<Summary, LoadError> {
        let changes = &self.changes;
        let trigger = request.trigger;
        let fingerprint = policy::fingerprint(self.policy.config());
        let (staged, files) = match self.stage_with_files() {
            Ok(staged) => staged,
            Err(error) => {
                self.metrics.policy_load("invalid");
                tracing::error!(trigger, %error, running = %self.policy.hash(), "policy set refused; the running set stays");
                changes.set_seen(fingerprint);
                return Err(LoadError::Invalid(error));
            }
        };
        let hash = staged.summary().hash.clone();
        let approval = match changes.approval_of(&hash).await {
            Ok(approval) => approval,
            Err(error) if changes.require_approval() => {
                self.metrics.policy_load("unrecorded");
                tracing::error!(trigger, %error, %hash, "policy set not loaded: its approval cannot be looked up");
                changes.set_seen(String::new());
                return Err(LoadError::Unrecorded {
                    hash,
                    error: error.to_string(),
                });
            }
            Err(error) => {
                tracing::warn!(trigger, %error, %hash, "the policy set's approval cannot be looked up; loaded without");
                None
            }
        };
        if changes.require_approval()
            && approval.is_none()
            && !request.break_glass
            && hash != self.policy.hash()
        {
            self.refuse_unapproved(&hash, UNAPPROVED, trigger, request.by)
                .await;
            changes.set_seen(fingerprint);
            return Err(LoadError::Unapproved {
                hash,
                reason: UNAPPROVED.into(),
            });
        }
        let mut extra = Map::new();
        if let Some(approval) = approval {
            extra.insert("approval".into(), json!(approval));
        }
        if request.break_glass {
            extra.insert("break_glass".into(), Value::Bool(true));
        }
        if let Some(reason) = request.reason {
            extra.insert("reason".into(), Value::from(reason));
        }
        if let Some(replaced) = request.rollback_of {
            extra.insert("rollback_of".into(), Value::from(replaced));
        }
        if let Err(error) = self
            .record_load(staged.summary(), Some(&files), trigger, extra, request.by)
            .await
        {
            self.metrics.policy_load("unrecorded");
            tracing::error!(trigger, %error, %hash, "policy set not installed: its load could not be recorded");
            changes.set_seen(String::new());
            return Err(LoadError::Unrecorded { hash, error });
        }
        let summary = self.policy.install(staged);
        self.metrics.policy_load("ok");
        for warning in &summary.warnings {
            tracing::warn!(trigger, warning = %warning, "policy warning");
        }
        tracing::info!(trigger, hash = %summary.hash, policies = summary.policies.len(), "policy set loaded");
        changes.set_seen(fingerprint);
        if request.break_glass {
            self.break_glass_alert(request.by, request.reason.unwrap_or_default(), &hash);
        }
        Ok(summary)
    }

    /// Stages the set in `policy.dir` with its files as they were staged
    /// (read again until the two agree: a set being edited is not kept
    /// with other bytes than it was loaded with).
    fn stage_with_files(&self) -> Result<(Staged, FileSet), PolicyError> {
        let dir = &self.policy.config().dir;
        for _ in 0..3 {
            let staged = self.policy.stage()?;
            let files = FileSet::read(dir).map_err(|source| PolicyError::Io {
                path: dir.clone(),
                source,
            })?;
            if files.hash() == staged.summary().hash {
                return Ok((staged, files));
            }
        }
        Err(PolicyError::Io {
            path: dir.clone(),
            source: std::io::Error::other("the policy files kept changing while they were read"),
        })
    }

    /// The `policy_load` record of the set the engine was created with.
    /// Under `require_approval` an unapproved set is refused (recorded),
    /// unless no set was ever approved (a first deployment: loaded, noted
    /// `first_deployment`, and a finding of the compliance report) or it
    /// has run since break glass loaded it.
    pub async fn record_initial_policies(&self) -> Result<(), LoadError> {
        let changes = self.changes.clone();
        let _one_at_a_time = changes.loading().lock().await;
        let config = self.policy.config();
        let fingerprint = policy::fingerprint(config);
        let summary = self.policy.summary();
        let hash = summary.hash.clone();
        let unrecorded = |error: String| LoadError::Unrecorded {
            hash: hash.clone(),
            error,
        };
        let approval = changes
            .approval_of(&hash)
            .await
            .map_err(|e| unrecorded(e.to_string()))?;
        let mut extra = Map::new();
        if changes.require_approval() && approval.is_none() {
            if !changes
                .any_approved()
                .await
                .map_err(|e| unrecorded(e.to_string()))?
            {
                tracing::warn!(%hash, "policy set not approved, loaded as a first deployment (no set was ever approved): a finding until an approved set replaces it");
                extra.insert("first_deployment".into(), Value::Bool(true));
            } else if changes
                .running_since_break_glass(&hash)
                .await
                .map_err(|e| unrecorded(e.to_string()))?
            {
                tracing::warn!(%hash, "policy set not approved, loaded by break glass before this start: it runs on");
            } else {
                let reason = format!(
                    "no security manager approved it, and sets were approved before: put back \
                     the approved files in {}, or start once with [policy] require_approval = \
                     false and propose it (warden policy propose)",
                    config.dir.display()
                );
                self.refuse_unapproved(&hash, &reason, "start", None).await;
                return Err(LoadError::Unapproved { hash, reason });
            }
        }
        if let Some(approval) = approval {
            extra.insert("approval".into(), json!(approval));
        }
        // The files as loaded, unless they changed since (then the watcher
        // loads them again at once).
        let files = FileSet::read(&config.dir)
            .ok()
            .filter(|files| files.hash() == hash);
        self.record_load(&summary, files.as_ref(), "start", extra, None)
            .await
            .map_err(unrecorded)?;
        self.metrics.policy_load("ok");
        changes.set_seen(if files.is_some() {
            fingerprint
        } else {
            String::new()
        });
        Ok(())
    }

    /// Keeps the set's files (by hash) and writes its `policy_load`
    /// record: the summary, `trigger`, and `extra`.
    async fn record_load(
        &self,
        summary: &Summary,
        files: Option<&FileSet>,
        trigger: &str,
        extra: Map<String, Value>,
        by: Option<&Principal>,
    ) -> Result<u64, String> {
        if let Some(files) = files {
            self.changes
                .keep(&summary.hash, files)
                .await
                .map_err(|e| format!("its files could not be kept: {e}"))?;
        }
        let mut details = serde_json::to_value(summary).unwrap_or_else(|_| json!({}));
        if let Value::Object(map) = &mut details {
            map.insert("trigger".into(), Value::from(trigger));
            map.extend(extra);
        }
        let mut r = Record::new(Kind::PolicyLoad);
        r.principal = by.map(Actor::from);
        r.details = Some(details);
        self.audit.append(r).await.map_err(|e| e.to_string())
    }

    /// Counts, logs and records a refused unapproved set.
    async fn refuse_unapproved(
        &self,
        hash: &str,
        reason: &str,
        trigger: &str,
        by: Option<&Principal>,
    ) {
        self.metrics.policy_load("unapproved");
        tracing::error!(trigger, %hash, running = %self.policy.hash(), reason, "policy set refused: not approved; the running set stays");
        if let Err(error) = self.changes.record_refused(hash, reason, trigger, by).await {
            tracing::error!(%error, %hash, "the refusal of an unapproved policy set could not be recorded");
        }
    }

    /// Raises the `break_glass` alert of a set loaded by break glass: the
    /// policy alert counter, a `warden::alert` log line and a notification
    /// to the security managers' webhooks.
    fn break_glass_alert(&self, by: Option<&Principal>, reason: &str, hash: &str) {
        self.metrics
            .policy_alerts
            .get_or_create(&AlertLabel {
                alert: "break_glass".into(),
            })
            .inc();
        let (tid, oid, name) = by.map_or(("", "", "someone"), |p| {
            (p.tid.as_str(), p.oid.as_str(), p.display_name.as_str())
        });
        tracing::warn!(target: "warden::alert", alert = "break_glass", tid, oid, principal = name, hash, reason, "policy set loaded by break glass");
        self.approvals.notify_security(Notification {
            event: "policy.break_glass".into(),
            title: format!("Break glass: {name} loaded a policy set"),
            text: format!(
                "{name} loaded policy set {hash} by break glass, without approval. Reason: {reason}"
            ),
            facts: vec![
                ("Principal".into(), format!("{name} ({oid})")),
                ("Policy set".into(), hash.to_owned()),
                ("Reason".into(), reason.to_owned()),
            ],
            link: None,
            details: json!({
                "principal": { "tid": tid, "oid": oid, "name": name },
                "hash": hash,
                "reason": reason,
            }),
        });
    }

    /// Writes approved proposal `id` into `policy.dir` and loads it; its
    /// `policy_load` record carries the approval. Only over the set it was
    /// proposed against (or itself).
    pub async fn apply_policy_proposal(
        &self,
        id: &str,
        by: &Principal,
    ) -> Result<(Proposal, Summary), ChangeError> {
        let proposal = self.changes.get(id).await?;
        if !matches!(proposal.status, Status::Approved | Status::Applied) {
            return Err(ChangeError::conflict(
                "not_approved",
                format!(
                    "proposal {id} is {}: only an approved set can be applied",
                    proposal.status.as_str()
                ),
            ));
        }
        let expect = [proposal.base.clone(), proposal.hash.clone()];
        let running = self.policy.hash();
        if !expect.contains(&running) {
            return Err(ChangeError::conflict(
                "stale",
                format!(
                    "proposal {id} was made against set {}, but set {running} runs now: \
                     propose the change again against the running set",
                    proposal.base
                ),
            ));
        }
        let summary = self
            .load_policies(LoadRequest {
                trigger: "apply",
                by: Some(by),
                write: Some(&proposal.set),
                expect_running: &expect,
                ..LoadRequest::default()
            })
            .await?;
        match self.changes.mark_applied(id, by).await {
            Ok(applied) => Ok((applied, summary)),
            Err(error) => {
                tracing::warn!(%error, proposal = %id, "proposal applied and recorded, but not marked applied");
                Ok((proposal, summary))
            }
        }
    }

    /// Restores the set loaded before the running one (its kept files
    /// written into `policy.dir`) and loads it, recorded with `trigger`
    /// `rollback` and `rollback_of`. Under `require_approval` only a set
    /// that was approved.
    pub async fn rollback_policies(
        &self,
        by: &Principal,
        reason: &str,
    ) -> Result<Summary, ChangeError> {
        let reason = required_reason(reason)?;
        let current = self.policy.hash();
        let previous = self.changes.previous(&current).await?.ok_or_else(|| {
            ChangeError::conflict(
                "nothing_to_roll_back",
                format!("no other set was loaded before the running one ({current})"),
            )
        })?;
        let files = self.changes.kept(&previous).await?.ok_or_else(|| {
            ChangeError::conflict(
                "not_kept",
                format!(
                    "the files of set {previous} were not kept (it was loaded before Warden kept \
                     loaded sets): propose it again"
                ),
            )
        })?;
        if self.changes.require_approval() && self.changes.approval_of(&previous).await?.is_none() {
            return Err(ChangeError::conflict(
                "unapproved",
                format!(
                    "set {previous}, loaded before {current}, was never approved \
                     ([policy] require_approval): propose it, or load it by break glass"
                ),
            ));
        }
        let expect = [current.clone()];
        Ok(self
            .load_policies(LoadRequest {
                trigger: "rollback",
                by: Some(by),
                reason: Some(&reason),
                rollback_of: Some(&current),
                write: Some(&files),
                expect_running: &expect,
                ..LoadRequest::default()
            })
            .await?)
    }

    /// Loads the set in `policy.dir` whatever its approval (break glass),
    /// recorded with `break_glass: true` and the reason, and alerted.
    pub async fn break_glass_policies(
        &self,
        by: &Principal,
        reason: &str,
    ) -> Result<Summary, ChangeError> {
        let reason = required_reason(reason)?;
        Ok(self
            .load_policies(LoadRequest {
                trigger: "break_glass",
                by: Some(by),
                reason: Some(&reason),
                break_glass: true,
                ..LoadRequest::default()
            })
            .await?)
    }

    /// Reloads the policy set on SIGHUP, and when its files change (checked
    /// every `policy.watch_interval`), until `stop`. A set refused (invalid
    /// or unapproved) is reported once, until its files change again; one
    /// that could not be recorded is tried again at the next check.
    pub fn spawn_policy_watch(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pipeline = self.clone();
        tokio::spawn(async move {
            let config = pipeline.policy.config().clone();
            let interval = config.watch_interval;
            let mut hangups = hangup_signals();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    Some(()) = recv(&mut hangups) => {
                        pipeline.reload_policies("sighup").await;
                    }
                    () = tokio::time::sleep(interval), if !interval.is_zero() => {
                        if policy::fingerprint(&config) != pipeline.changes.seen() {
                            pipeline.reload_if_changed().await;
                        }
                    }
                }
            }
        })
    }

    /// A reload by the file watcher: only if the files still differ from
    /// what was last loaded or refused once the load lock is held (a
    /// change management load may just have written and loaded them).
    async fn reload_if_changed(&self) -> Reload {
        let _one_at_a_time = self.changes.loading().lock().await;
        if policy::fingerprint(self.policy.config()) == self.changes.seen() {
            return Reload::Unchanged;
        }
        reload_of(self.load_locked(&LoadRequest::reload("file_change")).await)
    }
}

impl LoadRequest<'_> {
    fn reload(trigger: &str) -> LoadRequest<'_> {
        LoadRequest {
            trigger,
            ..LoadRequest::default()
        }
    }
}

fn reload_of(result: Result<Summary, LoadError>) -> Reload {
    match result {
        Ok(_) => Reload::Loaded,
        Err(LoadError::Unapproved { .. }) => Reload::Unapproved,
        Err(LoadError::Unrecorded { .. }) => Reload::Unrecorded,
        Err(LoadError::Invalid(_) | LoadError::Stale { .. } | LoadError::Write { .. }) => {
            Reload::Invalid
        }
    }
}

fn required_reason(reason: &str) -> Result<String, ChangeError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ChangeError::BadRequest(
            "a reason is required: {\"reason\": \"...\"}".into(),
        ));
    }
    if reason.chars().count() > 2000 {
        return Err(ChangeError::BadRequest(
            "reason: at most 2000 characters".into(),
        ));
    }
    Ok(reason.to_owned())
}

/// SIGHUP, where there are signals.
fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

async fn recv(signals: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signals {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
