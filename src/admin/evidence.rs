//! What the auditor's view reads from the audit log, read-only: the
//! records of a JIT request and of its calls (with their sequence numbers,
//! to look up in an export or `warden audit verify`), recent risk alerts,
//! and the policy set in force.

use serde::Serialize;
use serde_json::Value;

use crate::approvals::{Ask, Request};
use crate::store::{Location, Reader, StoreError};

/// One audit record, as the auditor's view lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub seq: i64,
    pub ts: String,
    pub kind: String,
    /// What happened: the approval event, the decision or the outcome.
    pub what: String,
    /// Who acted, when a principal did.
    pub who: Option<String>,
    pub call_id: Option<String>,
}

/// A risk alert record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub seq: i64,
    pub ts: String,
    pub principal: String,
    pub tool: String,
    /// `82 (high)`.
    pub risk: String,
    pub reasons: Vec<String>,
    pub call_id: Option<String>,
}

/// The last policy set loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInForce {
    pub seq: i64,
    pub ts: String,
    pub hash: String,
    pub files: Vec<String>,
    pub policies: Option<u64>,
    /// What loaded it: `start`, `sighup`, `file_change`.
    pub trigger: String,
}

fn text(value: &Value, path: &[&str]) -> String {
    let mut at = value;
    for key in path {
        at = match at.get(key) {
            Some(v) => v,
            None => return String::new(),
        };
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn row(seq: i64, bytes: &[u8]) -> Option<Row> {
    let record: Value = serde_json::from_slice(bytes).ok()?;
    let kind = text(&record, &["kind"]);
    let what = match kind.as_str() {
        "approval" => {
            let event = text(&record, &["details", "event"]);
            let status = text(&record, &["details", "request", "status"]);
            format!("{event} (request {status})")
        }
        "intent" => format!(
            "intent: {} ({})",
            text(&record, &["decision", "effect"]),
            text(&record, &["decision", "advice"])
        ),
        "outcome" => format!("outcome: {}", text(&record, &["status"])),
        other => other.to_owned(),
    };
    let who = record
        .get("principal")
        .and_then(|p| p.get("name").or_else(|| p.get("oid")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(Row {
        seq,
        ts: text(&record, &["ts"]),
        kind,
        what,
        who,
        call_id: record
            .get("call_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The records of `request`: its approval records and those of the call
/// that asked and the call that used it, in log order.
pub fn of_request(db: &Location, request: &Request) -> Result<Vec<Row>, StoreError> {
    let reader = Reader::open(db)?;
    let mut rows = Vec::new();
    let calls = [&request.call_id, &request.used_by];
    for call in calls.into_iter().flatten() {
        for (seq, bytes) in reader.records_of_call(call)? {
            rows.extend(row(seq, &bytes));
        }
    }
    if matches!(request.ask, Ask::Window { .. }) || request.call_id.is_none() {
        // Not filed under a call: find its records by request id.
        let mut seqs = Vec::new();
        reader.records_of_kind_seq("approval", |seq, bytes| {
            let record: Value = serde_json::from_slice(bytes).unwrap_or_default();
            if record["details"]["request_id"] == request.id.as_str() {
                seqs.extend(row(seq, bytes));
            }
            Ok(())
        })?;
        rows.extend(seqs);
    }
    rows.sort_by_key(|r| r.seq);
    rows.dedup_by_key(|r| r.seq);
    Ok(rows)
}

/// The newest risk alerts, newest first.
pub fn risk_alerts(db: &Location, limit: usize) -> Result<Vec<Alert>, StoreError> {
    let reader = Reader::open(db)?;
    Ok(reader
        .latest_of_kind("risk_alert", limit)?
        .into_iter()
        .filter_map(|(seq, bytes)| {
            let record: Value = serde_json::from_slice(&bytes).ok()?;
            let risk = record.get("risk").cloned().unwrap_or_default();
            Some(Alert {
                seq,
                ts: text(&record, &["ts"]),
                principal: record
                    .get("principal")
                    .and_then(|p| p.get("name").or_else(|| p.get("oid")))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                tool: text(&record, &["tool"]),
                risk: format!("{} ({})", text(&risk, &["score"]), text(&risk, &["level"])),
                reasons: risk
                    .get("reasons")
                    .and_then(Value::as_array)
                    .map(|reasons| {
                        reasons
                            .iter()
                            .map(|r| text(r, &["text"]))
                            .filter(|t| !t.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                call_id: record
                    .get("call_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect())
}

/// The policy set loaded last.
pub fn policy_in_force(db: &Location) -> Result<Option<PolicyInForce>, StoreError> {
    let reader = Reader::open(db)?;
    Ok(reader
        .latest_of_kind("policy_load", 1)?
        .into_iter()
        .find_map(|(seq, bytes)| {
            let record: Value = serde_json::from_slice(&bytes).ok()?;
            let details = record.get("details").cloned().unwrap_or_default();
            Some(PolicyInForce {
                seq,
                ts: text(&record, &["ts"]),
                hash: text(&details, &["hash"]),
                files: details
                    .get("files")
                    .and_then(Value::as_array)
                    .map(|files| {
                        files
                            .iter()
                            .map(|f| match f {
                                Value::String(s) => s.clone(),
                                other => text(other, &["path"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                policies: details
                    .get("policies")
                    .and_then(Value::as_array)
                    .map(|p| p.len() as u64),
                trigger: text(&details, &["trigger"]),
            })
        }))
}
