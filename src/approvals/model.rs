//! The JIT approval model: requests, reviews and grants, as the admin API
//! returns them, the web page shows them and the audit log records their
//! changes.
//!
//! Lifecycle (see the module documentation of [`super`]):
//!
//! ```text
//! pending ──approve (enough reviews)──▶ approved ──use──▶ consumed   (single-use)
//!    │                                     │   └──time──▶ expired
//!    │                                     └──revoke──▶ revoked
//!    ├──deny (any one review)──▶ denied
//!    ├──cancel (the requester)──▶ cancelled
//!    └──time──▶ lapsed
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Cancelled,
    Lapsed,
    Consumed,
    Expired,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Cancelled => "cancelled",
            Status::Lapsed => "lapsed",
            Status::Consumed => "consumed",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// No further change is possible.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::Approved)
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Approved,
            Status::Denied,
            Status::Cancelled,
            Status::Lapsed,
            Status::Consumed,
            Status::Expired,
            Status::Revoked,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A person or application, as tokens name them (decide on `tid`+`oid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub tid: String,
    pub oid: String,
    /// Display only.
    pub name: String,
}

impl Party {
    pub fn same(&self, other: &Party) -> bool {
        self.tid == other.tid && self.oid == other.oid
    }
}

/// One Azure operation a request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationRef {
    pub azure_op: String,
    pub class: String,
    /// Lower-cased ARM id of the narrowest known scope.
    pub resource: String,
}

/// What is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ask {
    /// One tool call, exactly as it was made (bound to its argument hash):
    /// a single-use grant.
    Call {
        /// The tool as the client called it.
        tool: String,
        upstream: String,
        upstream_tool: String,
        /// SHA-256 (hex) of the arguments' canonical JSON.
        args_hash: String,
        /// The arguments, redacted as in the audit log.
        arguments: Value,
    },
    /// A time window: operations (or action groups) at a scope.
    Window {
        /// Operation names or action groups (`read`, `privileged`,
        /// `Microsoft.Compute/virtualMachines/*`).
        operations: Vec<String>,
        /// Lower-cased ARM id the grant covers (and everything below it).
        scope: String,
        /// Requested length, in seconds.
        duration_secs: u64,
    },
}

/// One reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: Party,
    pub approve: bool,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// SHA-256 (hex) of the decoded facts the reviewer was shown
    /// ([`Facts::hash`]), so the log says what the decision was based on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
}

/// One fact a reviewer is shown about what a request would do, decoded
/// from the call's arguments: `Role` = `Owner (8e3af657-…)`, `Assignee`,
/// `VM size`, `Method and path`, ... Facts are kept beside the request in
/// the store, not in the audit log: the log keeps the arguments redacted
/// and records only [`Facts::hash`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
    /// Where the value comes from or what it means, when that matters
    /// ("built-in role", "name as Warden has seen it sign in").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Fact {
    pub fn new(label: &str, value: impl Into<String>) -> Fact {
        Fact {
            label: label.to_owned(),
            value: value.into(),
            note: None,
        }
    }

    pub fn noted(mut self, note: impl Into<String>) -> Fact {
        self.note = Some(note.into());
        self
    }
}

/// The decoded facts of one request, in the order they are shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts(pub Vec<Fact>);

impl Facts {
    /// SHA-256 (hex) of the facts' canonical JSON: what a review records
    /// as `shown` and a request as `facts_hash`.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json_canonicalizer::to_vec(&self.0).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What an approval gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub expires: DateTime<Utc>,
    /// Object ids of the approvers.
    pub approvers: Vec<String>,
}

/// A JIT request and, once approved, its grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub created: DateTime<Utc>,
    pub requester: Party,
    pub ask: Ask,
    /// The operations the request is about (for a call, as resolved).
    pub operations: Vec<OperationRef>,
    pub justification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// The rule `approvals.require_justification` holds this request back
    /// from reviewers until its requester gives a justification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_justification: bool,
    /// The call that asked (a held call's id in the audit log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The call that used a single-call grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
    /// [`Facts::hash`] of the decoded facts reviewers are shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts_hash: Option<String>,
    /// The policies that asked for approval.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Risk facts when the risk stage scored the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Value>,
    /// Approvals needed (1, or 2 for critical operations).
    pub required_approvals: u32,
    pub critical: bool,
    pub status: Status,
    /// When a pending request lapses.
    pub lapses: DateTime<Utc>,
    #[serde(default)]
    pub reviews: Vec<Review>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// When the status last changed.
    pub updated: DateTime<Utc>,
    /// Who cancelled or revoked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<Party>,
    /// Why the last change was made (deny, cancel, revoke reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closing_reason: Option<String>,
}

impl Request {
    /// Approvals given so far.
    pub fn approvals(&self) -> u32 {
        self.reviews.iter().filter(|r| r.approve).count() as u32
    }
}
