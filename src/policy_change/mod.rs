//! Change management for policy sets (docs/POLICY-CHANGES.md): a set is
//! proposed, checked (strict validation against the schema and catalog,
//! its `policy test` cases run), shown as a diff, approved by a second
//! security manager, then applied; every loaded set's files are kept so
//! that a rollback restores the one before; with `[policy]
//! require_approval` an unapproved set loads only by break glass.
//!
//! # API
//!
//! - [`PolicyChanges`]: the service the pipeline holds. Proposals
//!   ([`PolicyChanges::propose`], `approve`, `reject`, `get`, `list`,
//!   `mark_applied`), what the log says of sets ([`PolicyChanges::approval_of`],
//!   `previous`, ...), the files of loaded sets ([`PolicyChanges::keep`],
//!   `kept`), who may do what ([`PolicyChanges::check_manager`], ...), and
//!   the lock every load of the policy directory takes.
//! - [`FileSet`]: a set as files (`*.cedar` and `tests/*.toml`), read,
//!   hashed, written into a directory.
//! - [`check`](check::check): a proposed set loaded and tested in a
//!   scratch directory; [`diff`](diff::diff): its diff against the running
//!   set.
//!
//! The loads themselves (apply, rollback, break glass, and the gate on
//! reloads and at start) are composed in `src/pipeline/policies.rs`.
//!
//! # Records
//!
//! `policy_change` records, `details.event`:
//!
//! | event | details |
//! |---|---|
//! | `proposed` | `proposal_id`, `hash`, `files` (names), `tests` `{passed, failed}`, `diff_summary`, `proposer` (oid), `note` |
//! | `approved` | `proposal_id`, `hash`, `tests` `{passed, failed}`, `proposer`, `approver` |
//! | `rejected` | `proposal_id`, `hash`, `proposer`, `rejected_by`, `reason` |
//! | `applied` | `proposal_id`, `hash`, `by` |
//! | `refused` | `hash`, `reason`, `trigger`: a load of an unapproved set refused under `require_approval` |
//!
//! The actor is the record's `principal`. Approvals are read back from
//! these records ([`ledger`]), so the log is the store of record of what
//! was approved; proposals (with their files) live in the store's `state`
//! table ([`kept`]).

pub mod check;
pub mod diff;
pub mod files;
pub mod kept;
pub mod ledger;
pub mod model;
mod proposals;

use std::sync::{Arc, Mutex, PoisonError};

pub use check::{Checked, Refused};
pub use files::FileSet;
pub use model::{Approval, Decided, DiffSummary, Proposal, Status, Tally};
pub use proposals::Proposed;

use crate::audit::Audit;
use crate::audit::record::{Actor, Kind, Record};
use crate::identity::Principal;
use crate::policy::Problem;
use crate::store::StoreError;
use ledger::Ledger;

/// The app role that may load an unapproved set (break glass), as the
/// baseline policies name it.
pub const BREAK_GLASS_ROLE: &str = "BreakGlass";

/// Why a change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The caller may not do this (role, MFA, the two-person rule).
    #[error("{0}")]
    Forbidden(String),
    #[error("no policy proposal {0}")]
    NotFound(String),
    /// The change does not fit the state: a proposal in another status,
    /// failed tests, a running set that moved on, nothing to roll back to.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The set does not load: each problem with its file and line.
    #[error("{0}")]
    Invalid(Refused),
    #[error("{0}")]
    BadRequest(String),
    /// Writing the policy directory failed.
    #[error("{0}")]
    Failed(String),
    /// The store (the audit log) cannot be read or written.
    #[error("{0}")]
    Unavailable(String),
}

impl ChangeError {
    pub fn status(&self) -> u16 {
        match self {
            ChangeError::Forbidden(_) => 403,
            ChangeError::NotFound(_) => 404,
            ChangeError::Conflict { .. } => 409,
            ChangeError::Invalid(_) => 422,
            ChangeError::BadRequest(_) => 400,
            ChangeError::Failed(_) => 500,
            ChangeError::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ChangeError::Forbidden(_) => "forbidden",
            ChangeError::NotFound(_) => "not_found",
            ChangeError::Conflict { code, .. } => code,
            ChangeError::Invalid(_) => "invalid_policy_set",
            ChangeError::BadRequest(_) => "invalid",
            ChangeError::Failed(_) => "failed",
            ChangeError::Unavailable(_) => "unavailable",
        }
    }

    /// The problems of an invalid set, each with its file and line.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ChangeError::Invalid(Refused::Invalid(problems)) => problems,
            _ => &[],
        }
    }

    pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ChangeError::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ChangeError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ChangeError::conflict(
                "raced",
                format!("{what} was changed by someone else meanwhile: look again and retry"),
            ),
            other => ChangeError::Unavailable(other.to_string()),
        }
    }
}

/// Change management's service: shared by the pipeline (which composes
/// the loads) and the admin API.
pub struct PolicyChanges {
    audit: Arc<Audit>,
    require_approval: bool,
    /// App roles of security managers (`[approvals] approver_roles`).
    managers: Vec<String>,
    /// App roles of auditors (`[approvals] auditor_roles`): may read.
    auditors: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    /// One load (and write of the policy directory) at a time.
    loading: tokio::sync::Mutex<()>,
    /// The fingerprint of the policy files as last loaded or refused
    /// (`policy::fingerprint`): the file watcher reloads when it differs.
    seen: Mutex<String>,
}

impl std::fmt::Debug for PolicyChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyChanges")
            .field("require_approval", &self.require_approval)
            .finish_non_exhaustive()
    }
}

impl PolicyChanges {
    pub fn new(
        audit: Arc<Audit>,
        require_approval: bool,
        managers: Vec<String>,
        auditors: Vec<String>,
    ) -> Self {
        PolicyChanges {
            audit,
            require_approval,
            managers,
            auditors,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            loading: tokio::sync::Mutex::new(()),
            seen: Mutex::new(String::new()),
        }
    }

    /// `[policy] require_approval`.
    pub fn require_approval(&self) -> bool {
        self.require_approval
    }

    /// The lock every load of the policy set takes, with any write of the
    /// policy directory before it: no reload reads half of a set being
    /// written.
    pub fn loading(&self) -> &tokio::sync::Mutex<()> {
        &self.loading
    }

    /// The policy files' fingerprint when they were last loaded or
    /// refused (empty: look again).
    pub fn seen(&self) -> String {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set_seen(&self, fingerprint: String) {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = fingerprint;
    }

    /// A security manager (an approver role of `[approvals]`, held by the
    /// token or conferred by `[policy.roles]`: `roles`) signed in with MFA.
    pub fn check_manager(
        &self,
        principal: &Principal,
        roles: &[String],
    ) -> Result<(), ChangeError> {
        if !self.managers.iter().any(|r| roles.contains(r)) {
            return Err(ChangeError::Forbidden(format!(
                "changing policy sets needs the app role {}",
                self.managers.join(" or ")
            )));
        }
        if !principal.mfa {
            return Err(ChangeError::Forbidden(
                "changing policy sets needs a multi-factor sign-in".into(),
            ));
        }
        Ok(())
    }

    /// A security manager or an auditor: may read proposals.
    pub fn check_reader(&self, roles: &[String]) -> Result<(), ChangeError> {
        if self
            .managers
            .iter()
            .chain(&self.auditors)
            .any(|r| roles.contains(r))
        {
            return Ok(());
        }
        Err(ChangeError::Forbidden(format!(
            "reading policy proposals needs the app role {}",
            self.managers
                .iter()
                .chain(&self.auditors)
                .cloned()
                .collect::<Vec<_>>()
                .join(" or ")
        )))
    }

    /// The break-glass role, signed in with MFA.
    pub fn check_break_glass(
        &self,
        principal: &Principal,
        roles: &[String],
    ) -> Result<(), ChangeError> {
        if !roles.iter().any(|r| r == BREAK_GLASS_ROLE) {
            return Err(ChangeError::Forbidden(format!(
                "loading an unapproved policy set needs the app role {BREAK_GLASS_ROLE}"
            )));
        }
        if !principal.mfa {
            return Err(ChangeError::Forbidden(
                "break glass needs a multi-factor sign-in".into(),
            ));
        }
        Ok(())
    }

    /// The approval of set `hash`, after reading what was recorded since
    /// the last look (by any replica).
    pub async fn approval_of(&self, hash: &str) -> Result<Option<Approval>, StoreError> {
        let ledger = self.ledger.clone();
        let hash = hash.to_owned();
        self.audit
            .store()
            .read(move |reader| {
                let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                ledger.catch_up(reader)?;
                Ok(ledger.approval(&hash).cloned())
            })
            .await
    }

    /// Whether any set was ever approved.
    pub async fn any_approved(&self) -> Result<bool, StoreError> {
        let ledger = self.ledger.clone();
        self.audit
            .store()
            .read(move |reader| {
                let mut ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
                ledger.catch_up(reader)?;
                Ok(ledger.any_approved())
            })
            .await
    }

    /// The set loaded before `current` (the newest load of another set).
    pub async fn previous(&self, current: &str) -> Result<Option<String>, StoreError> {
        let current = current.to_owned();
        self.audit
            .store()
            .read(move |reader| ledger::previous(reader, &current))
            .await
    }

    /// Whether set `hash` has run since break glass loaded it.
    pub async fn running_since_break_glass(&self, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        self.audit
            .store()
            .read(move |reader| ledger::running_since_break_glass(reader, &hash))
            .await
    }

    /// Keeps the files of a loaded set under its hash.
    pub async fn keep(&self, hash: &str, files: &FileSet) -> Result<(), StoreError> {
        kept::keep_set(self.audit.store(), hash, files).await
    }

    /// The kept files of set `hash`.
    pub async fn kept(&self, hash: &str) -> Result<Option<FileSet>, StoreError> {
        let hash = hash.to_owned();
        self.audit
            .store()
            .read(move |reader| kept::set(reader, &hash))
            .await
    }

    /// Records that a load of set `hash` was refused (`trigger` says which).
    pub async fn record_refused(
        &self,
        hash: &str,
        reason: &str,
        trigger: &str,
        by: Option<&Principal>,
    ) -> Result<u64, crate::audit::AuditError> {
        let mut record = Record::new(Kind::PolicyChange);
        record.principal = by.map(Actor::from);
        record.details = Some(serde_json::json!({
            "event": "refused",
            "hash": hash,
            "reason": reason,
            "trigger": trigger,
        }));
        self.audit.append(record).await
    }
}
