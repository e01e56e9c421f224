//! A proposal's life: proposed (checked, diffed, kept), approved by a
//! second security manager or rejected, applied. Each change is recorded
//! (`policy_change`) in the same transaction as the proposal's new state,
//! and only if the proposal is still as it was read (a compare-and-set on
//! its row), so two replicas never both approve or apply one.

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::files::FileSet;
use super::kept::{self, PROPOSALS};
use super::model::{Decided, Proposal, Status};
use super::{ChangeError, PolicyChanges, check, diff};
use crate::approvals::Party;
use crate::audit::AuditError;
use crate::audit::record::{Actor, Kind, Record};
use crate::identity::Principal;
use crate::policy::Engine;
use crate::store::{Guard, StoreError};

/// The longest note or reason.
const MAX_TEXT: usize = 2000;

/// What a security manager proposes (`POST /admin/api/policy/proposals`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposed {
    /// `*.cedar` files by name.
    pub files: std::collections::BTreeMap<String, String>,
    /// `tests/*.toml` files by name.
    #[serde(default)]
    pub tests: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub note: String,
}

fn party(p: &Principal) -> Party {
    Party {
        tid: p.tid.clone(),
        oid: p.oid.clone(),
        name: p.display_name.clone(),
    }
}

fn bounded(what: &str, text: &str) -> Result<String, ChangeError> {
    if text.chars().count() > MAX_TEXT {
        return Err(ChangeError::BadRequest(format!(
            "{what}: at most {MAX_TEXT} characters"
        )));
    }
    Ok(text.trim().to_owned())
}

impl PolicyChanges {
    /// Checks `proposed` against the running set's configuration and the
    /// catalog's `operations` (strict validation, then its tests), diffs
    /// it against the running set and keeps it, recorded as `proposed`.
    /// An invalid set is refused and nothing is kept.
    pub async fn propose(
        &self,
        by: &Principal,
        proposed: Proposed,
        engine: &Engine,
        operations: Vec<(String, String)>,
    ) -> Result<Proposal, ChangeError> {
        let note = bounded("note", &proposed.note)?;
        let set = FileSet {
            files: proposed.files,
            tests: proposed.tests,
        };
        let config = engine.config().clone();
        let checking = set.clone();
        let checked =
            tokio::task::spawn_blocking(move || check::check(&checking, &config, &operations))
                .await
                .map_err(|e| ChangeError::Failed(format!("checking the set failed: {e}")))?
                .map_err(ChangeError::Invalid)?;
        let base = engine.hash();
        // The running set as it was loaded (kept), else as it is on disk.
        let running = match self.kept(&base).await? {
            Some(files) => files,
            None => FileSet::read(&engine.config().dir).unwrap_or_default(),
        };
        let (diff, diff_summary) = diff::diff(&running, &set);
        let proposal = Proposal {
            id: uuid::Uuid::now_v7().to_string(),
            status: Status::Proposed,
            created: Utc::now(),
            proposer: party(by),
            note,
            hash: checked.hash,
            base,
            set,
            test_results: checked.tally,
            test_failures: checked.failures,
            warnings: checked.warnings,
            diff,
            diff_summary,
            approved: None,
            rejected: None,
            applied: None,
        };
        let details = json!({
            "event": "proposed",
            "proposal_id": proposal.id,
            "hash": proposal.hash,
            "files": proposal.set.files.keys().collect::<Vec<_>>(),
            "tests": proposal.test_results,
            "diff_summary": proposal.diff_summary,
            "proposer": by.oid,
            "note": proposal.note,
        });
        self.change(by, None, &proposal, details).await?;
        tracing::info!(target: "warden::policy_change", event = "proposed", proposal = %proposal.id, hash = %proposal.hash, passed = proposal.test_results.passed, failed = proposal.test_results.failed, "policy set proposed");
        Ok(proposal)
    }

    /// Every proposal, newest first.
    pub async fn list(&self) -> Result<Vec<Proposal>, ChangeError> {
        Ok(self.audit.store().read(kept::proposals).await?)
    }

    /// Proposal `id`.
    pub async fn get(&self, id: &str) -> Result<Proposal, ChangeError> {
        Ok(self.read(id).await?.0)
    }

    async fn read(&self, id: &str) -> Result<(Proposal, Vec<u8>), ChangeError> {
        let key = id.to_owned();
        self.audit
            .store()
            .read(move |reader| kept::proposal(reader, &key))
            .await?
            .ok_or_else(|| ChangeError::NotFound(id.to_owned()))
    }

    /// A second security manager approves: never the proposer, only a
    /// proposed set whose tests all passed.
    pub async fn approve(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<Proposal, ChangeError> {
        let reason = bounded("reason", reason)?;
        let (mut proposal, read) = self.read(id).await?;
        if proposal.status != Status::Proposed {
            return Err(ChangeError::conflict(
                "not_proposed",
                format!(
                    "proposal {id} is {}: only a proposed set can be approved",
                    proposal.status.as_str()
                ),
            ));
        }
        if proposal.proposer.same(&party(by)) {
            return Err(ChangeError::Forbidden(format!(
                "two-person rule: proposal {id} must be approved by another security manager than its proposer"
            )));
        }
        let tests = proposal.test_results;
        if !tests.passed_all() {
            return Err(ChangeError::conflict(
                "tests_failed",
                format!(
                    "proposal {id} cannot be approved: its tests did not pass ({} passed, {} failed); \
                     fix the set or its tests and propose it again",
                    tests.passed, tests.failed
                ),
            ));
        }
        proposal.status = Status::Approved;
        proposal.approved = Some(Decided {
            by: party(by),
            at: Utc::now(),
            reason,
        });
        let details = json!({
            "event": "approved",
            "proposal_id": proposal.id,
            "hash": proposal.hash,
            "tests": { "passed": tests.passed, "failed": tests.failed },
            "proposer": proposal.proposer.oid,
            "approver": by.oid,
        });
        self.change(by, Some(read), &proposal, details).await?;
        tracing::info!(target: "warden::policy_change", event = "approved", proposal = %id, hash = %proposal.hash, approver = %by.oid, "policy set approved");
        Ok(proposal)
    }

    /// A security manager (the proposer included, withdrawing it) turns a
    /// proposed set down, with a reason.
    pub async fn reject(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<Proposal, ChangeError> {
        let reason = bounded("reason", reason)?;
        if reason.is_empty() {
            return Err(ChangeError::BadRequest(
                "a rejection needs a reason: {\"reason\": \"...\"}".into(),
            ));
        }
        let (mut proposal, read) = self.read(id).await?;
        if proposal.status != Status::Proposed {
            return Err(ChangeError::conflict(
                "not_proposed",
                format!(
                    "proposal {id} is {}: only a proposed set can be rejected",
                    proposal.status.as_str()
                ),
            ));
        }
        proposal.status = Status::Rejected;
        proposal.rejected = Some(Decided {
            by: party(by),
            at: Utc::now(),
            reason: reason.clone(),
        });
        let details = json!({
            "event": "rejected",
            "proposal_id": proposal.id,
            "hash": proposal.hash,
            "proposer": proposal.proposer.oid,
            "rejected_by": by.oid,
            "reason": reason,
        });
        self.change(by, Some(read), &proposal, details).await?;
        tracing::info!(target: "warden::policy_change", event = "rejected", proposal = %id, "policy set rejected");
        Ok(proposal)
    }

    /// Notes that proposal `id` was applied (its load is recorded).
    pub async fn mark_applied(&self, id: &str, by: &Principal) -> Result<Proposal, ChangeError> {
        let (mut proposal, read) = self.read(id).await?;
        if !matches!(proposal.status, Status::Approved | Status::Applied) {
            return Err(ChangeError::conflict(
                "not_approved",
                format!("proposal {id} is {}", proposal.status.as_str()),
            ));
        }
        proposal.status = Status::Applied;
        proposal.applied = Some(Decided {
            by: party(by),
            at: Utc::now(),
            reason: String::new(),
        });
        let details = json!({
            "event": "applied",
            "proposal_id": proposal.id,
            "hash": proposal.hash,
            "by": by.oid,
        });
        self.change(by, Some(read), &proposal, details).await?;
        Ok(proposal)
    }

    /// Records `details` and stores `proposal`, both or neither, if its
    /// row still holds `expected` (`None`: no such proposal yet).
    async fn change(
        &self,
        by: &Principal,
        expected: Option<Vec<u8>>,
        proposal: &Proposal,
        details: Value,
    ) -> Result<(), ChangeError> {
        let bytes = serde_json::to_vec(proposal)
            .map_err(|e| ChangeError::Failed(format!("proposal {}: {e}", proposal.id)))?;
        let mut record = Record::new(Kind::PolicyChange);
        record.principal = Some(Actor::from(by));
        record.details = Some(details);
        let guard = Guard {
            ns: PROPOSALS.into(),
            key: proposal.id.clone(),
            expected,
            new: bytes,
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(_) => Ok(()),
            Err(AuditError::Store(StoreError::Conflict(_))) => Err(ChangeError::conflict(
                "raced",
                format!(
                    "proposal {} was changed by someone else meanwhile: look again",
                    proposal.id
                ),
            )),
            Err(e) => Err(ChangeError::Unavailable(e.to_string())),
        }
    }
}
