//! What responses leave in the store's `state` table, where every replica
//! reads it: suspended principals, blocked networks and incidents. Each
//! change is committed together with the audit record that tells of it
//! (a guarded append: a compare-and-set on the entry), so the log and the
//! state never disagree and two replicas never make the same change twice.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Suspensions by `tid/oid`.
pub const SUSPENDED: &str = "response.suspended";
/// Blocks by network (`192.0.2.0/24`), each expiring with its cool-down.
pub const BLOCKED: &str = "response.blocked";
/// Incidents by id.
pub const INCIDENTS: &str = "response.incidents";

/// Who did something by hand, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// `tid/oid` of the security manager (or `cli` for the local CLI).
    pub by: String,
    pub name: String,
    pub at: String,
    pub note: String,
}

/// A principal suspended by a response: every call is refused until a
/// security manager lifts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub tid: String,
    pub oid: String,
    pub name: String,
    pub rule: String,
    /// The finding, in a sentence.
    pub reason: String,
    /// RFC 3339.
    pub at: String,
    /// The call that triggered it.
    pub call_id: String,
    /// The `response` record that made it.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// Set when lifted: the entry stays, so the next suspension of the
    /// same principal is a compare-and-set on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted: Option<Act>,
}

impl Suspension {
    pub fn key(tid: &str, oid: &str) -> String {
        format!("{tid}/{oid}")
    }

    pub fn active(&self) -> bool {
        self.lifted.is_none()
    }
}

/// A network blocked by a response until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// `192.0.2.7/32`, `2001:db8::/64`.
    pub network: String,
    pub rule: String,
    pub attempts: u32,
    pub failures: u32,
    /// RFC 3339.
    pub at: String,
    pub until: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted: Option<Act>,
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Acknowledged,
    Closed,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Open => "open",
            IncidentStatus::Acknowledged => "acknowledged",
            IncidentStatus::Closed => "closed",
        }
    }
}

/// A call that triggered an incident, with the sequence numbers of its
/// records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggeringCall {
    pub call_id: String,
    pub tool: String,
    /// Its intent and outcome records.
    pub seqs: Vec<u64>,
    pub operations: Vec<String>,
}

/// One action an incident lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// `suspend`, `revoke`, `block`.
    pub action: String,
    /// `enforce` or `notify`.
    pub mode: String,
    /// `done`, `failed`, `already` (done before), `would` (notify mode),
    /// `skipped` (nothing to do).
    pub result: String,
    /// What was done, in a sentence.
    pub detail: String,
    /// The `response` record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// An incident: what a security manager is asked to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `INC-` and a UUIDv7.
    pub id: String,
    pub status: IncidentStatus,
    pub opened: String,
    pub rule: String,
    /// A line for lists and notifications.
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    pub calls: Vec<TriggeringCall>,
    /// The findings, in sentences.
    pub findings: Vec<String>,
    pub actions: Vec<Taken>,
    /// The `incident` record that opened it.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<Act>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Act>,
}

/// Encodes a state value (these types always serialize).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("state values serialize")
}

/// Decodes a state value; `None` (logged) if it does not parse.
pub fn decode<T: serde::de::DeserializeOwned>(ns: &str, key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::error!(ns, key, %error, "a response state entry does not parse; ignored");
            None
        }
    }
}
