//! The audit record (schema: `schemas/audit-record.schema.json`) and its
//! canonical bytes (RFC 8785 JSON Canonicalization Scheme).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Principal;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A tool call about to be executed (committed before it is).
    Intent,
    /// How a call ended.
    Outcome,
    /// The log (re)opened by a Warden process.
    LogStart,
    /// A policy set was loaded.
    PolicyLoad,
    /// The checkpoint signing key changed.
    KeyRotation,
    /// Proof of life while idle.
    Heartbeat,
    /// A JIT approval state change.
    Approval,
    /// A high-risk call was seen.
    RiskAlert,
    /// An authentication event: a sign-in, consent, token issue, refresh,
    /// revocation or refusal (`details.event`).
    Auth,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Intent => "intent",
            Kind::Outcome => "outcome",
            Kind::LogStart => "log_start",
            Kind::PolicyLoad => "policy_load",
            Kind::KeyRotation => "key_rotation",
            Kind::Heartbeat => "heartbeat",
            Kind::Approval => "approval",
            Kind::RiskAlert => "risk_alert",
            Kind::Auth => "auth",
        }
    }
}

/// Who made the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub tid: String,
    pub oid: String,
    pub name: String,
    /// `user` or `app`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_app: Option<String>,
    /// How the caller signed in, when through Warden's OAuth facade
    /// (`oauth_facade`: `client_app` is then the facade's client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_path: Option<String>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self {
            tid: p.tid.clone(),
            oid: p.oid.clone(),
            name: p.display_name.clone(),
            kind: p.kind.as_str().to_owned(),
            client_app: p.client_app.clone(),
            auth_path: p.grant.as_ref().map(|_| "oauth_facade".to_owned()),
        }
    }
}

/// An Azure operation a call performs, when resolution knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// e.g. `Microsoft.Compute/virtualMachines/delete`.
    pub azure_op: String,
    /// `read`, `write`, `delete`, `action`, `privileged` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Lower-cased ARM id of the narrowest known scope (the full id the
    /// facts stage placed the resource at, when it found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// What the facts stage looked up about the resource before the call
    /// was decided: `completeness`, and the `location`, `tags`,
    /// `resource_group_tags` and `reason` it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<serde_json::Value>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The tool returned a result.
    Ok,
    /// The tool returned a result flagged `isError`.
    ToolError,
    /// The call failed (upstream error, refused, transport failure).
    Error,
    /// The client or the upstream cancelled the call.
    Cancelled,
    /// The upstream did not answer within its call timeout (the call was
    /// cancelled upstream).
    Timeout,
    /// Warden stopped (crashed) before the call ended; written at the next start.
    Abandoned,
    /// Policy denied the call; it was not executed.
    Denied,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ToolError => "tool_error",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
            Status::Timeout => "timeout",
            Status::Abandoned => "abandoned",
            Status::Denied => "denied",
        }
    }
}

/// One audit record. Optional fields are left out when empty so that the
/// canonical bytes hold only what is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 0, contiguous; equals the Merkle leaf index.
    pub seq: u64,
    /// UUIDv7.
    pub event_id: String,
    /// RFC 3339 UTC with microseconds.
    pub ts: String,
    pub kind: Kind,
    /// Shared by a call's intent and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The tool as the client named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The tool as the upstream names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tool: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    /// The authorization decision (policy stage), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Value>,
    /// The risk assessment (risk stage), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Value>,
    /// Tool arguments after redaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_correlation_id: Option<String>,
    /// Kind-specific facts of system records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl Record {
    /// A record of `kind` stamped now; the log assigns `seq` when it is stored.
    pub fn new(kind: Kind) -> Self {
        Self {
            seq: 0,
            event_id: uuid::Uuid::now_v7().to_string(),
            ts: now(),
            kind,
            call_id: None,
            principal: None,
            source_ip: None,
            user_agent: None,
            session_id: None,
            tool: None,
            upstream: None,
            upstream_tool: None,
            operations: Vec::new(),
            decision: None,
            risk: None,
            arguments: None,
            status: None,
            error: None,
            duration_us: None,
            azure_correlation_id: None,
            details: None,
        }
    }

    /// RFC 8785 canonical bytes: what is stored, hashed and exported.
    pub fn canonical(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json_canonicalizer::to_vec(self)
    }

    /// The decision's effect (`allow`/`deny`), for indexing and filters.
    pub fn decision_effect(&self) -> Option<String> {
        self.decision
            .as_ref()
            .and_then(|d| d.get("effect"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// The current time as the log writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Whether `bytes` are exactly the canonical form of the JSON they hold.
pub fn is_canonical(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| serde_json_canonicalizer::to_vec(&v).ok())
        .is_some_and(|c| c == bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_sort_keys_and_drop_empty_fields() {
        let mut r = Record::new(Kind::Heartbeat);
        r.seq = 7;
        r.event_id = "e".into();
        r.ts = "t".into();
        r.details = Some(serde_json::json!({"b": 1, "a": [true, null, 1.5e300]}));
        let bytes = r.canonical().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"details":{"a":[true,null,1.5e+300],"b":1},"event_id":"e","kind":"heartbeat","seq":7,"ts":"t"}"#
        );
        assert!(is_canonical(&bytes));
        assert!(!is_canonical(br#"{"seq":7, "kind":"heartbeat"}"#));
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
    }
}
