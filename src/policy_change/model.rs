//! What a policy change is: a proposal and where it is in its life, the
//! tally of its tests, the summary of its diff, and the approval a load of
//! an approved set carries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::files::FileSet;
use crate::approvals::Party;

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Validated, tested, waiting for a second security manager.
    Proposed,
    /// Approved: may be applied.
    Approved,
    /// Turned down; never loaded.
    Rejected,
    /// Written into the policy directory and loaded (at least once).
    Applied,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Applied => "applied",
        }
    }
}

/// How a proposed set's policy tests went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
}

impl Tally {
    /// Every case passed, and there was at least one: what approval needs.
    pub fn passed_all(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

/// What a proposal changes, file by file (tests as `tests/<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub lines_added: usize,
    pub lines_removed: usize,
}

/// Who decided, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub by: Party,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// A proposed policy set, as kept in the store (namespace
/// `policy.proposal`, by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: String,
    pub status: Status,
    pub created: DateTime<Utc>,
    pub proposer: Party,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The set's hash (`policy::hash_files` over its `*.cedar` files).
    pub hash: String,
    /// The hash of the set running when it was proposed: the diff's base.
    /// It is applied only over that set (or over itself).
    pub base: String,
    /// The `*.cedar` files and the `tests/*.toml` files.
    #[serde(flatten)]
    pub set: FileSet,
    pub test_results: Tally,
    /// One line per failed case: `file: case: what failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_failures: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Unified diff of the base set's files against the proposed ones.
    pub diff: String,
    pub diff_summary: DiffSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<Decided>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Decided>,
    /// The last time it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Decided>,
}

impl Proposal {
    /// The proposal without its files and diff: what a list shows.
    pub fn summary(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            for heavy in ["files", "tests", "diff"] {
                map.remove(heavy);
            }
            map.insert(
                "files".into(),
                Value::from(self.set.files.keys().cloned().collect::<Vec<_>>()),
            );
        }
        value
    }
}

/// The approval an approved set's loads carry (`policy_load`
/// `details.approval`): the proposal it was approved as, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub proposal_id: String,
    /// Object ids of the approvers.
    pub approvers: Vec<String>,
    /// Object id of the proposer.
    pub proposer: String,
}
