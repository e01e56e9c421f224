//! What the audit log says of policy sets: which hashes were approved, as
//! which proposal and by whom (`policy_change` records, read
//! incrementally, so an approval made through any replica counts on every
//! replica at its next look), and which sets were loaded, newest first
//! (`policy_load` records).

use std::collections::HashMap;

use serde_json::Value;

use super::model::Approval;
use crate::audit::record::Kind;
use crate::store::{Reader, StoreError};

/// The approvals found in the log so far.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The sequence number after the last `policy_change` record read.
    next: i64,
    /// Hash → its latest approval.
    approved: HashMap<String, Approval>,
}

impl Ledger {
    /// Reads the `policy_change` records appended since the last look.
    pub fn catch_up(&mut self, reader: &Reader) -> Result<(), StoreError> {
        let mut next = self.next;
        reader.records_of_kind_since(Kind::PolicyChange.as_str(), self.next, |seq, bytes| {
            next = seq + 1;
            let Ok(record) = serde_json::from_slice::<Value>(bytes) else {
                return Ok(());
            };
            let details = &record["details"];
            if details["event"] != "approved" {
                return Ok(());
            }
            let (Some(hash), Some(proposal_id)) =
                (details["hash"].as_str(), details["proposal_id"].as_str())
            else {
                return Ok(());
            };
            self.approved.insert(
                hash.to_owned(),
                Approval {
                    proposal_id: proposal_id.to_owned(),
                    approvers: details["approver"]
                        .as_str()
                        .map(str::to_owned)
                        .into_iter()
                        .collect(),
                    proposer: details["proposer"].as_str().unwrap_or_default().to_owned(),
                },
            );
            Ok(())
        })?;
        self.next = next;
        Ok(())
    }

    /// The approval of the set `hash`, if it was ever approved.
    pub fn approval(&self, hash: &str) -> Option<&Approval> {
        self.approved.get(hash)
    }

    /// Whether any set was ever approved (none: a first deployment).
    pub fn any_approved(&self) -> bool {
        !self.approved.is_empty()
    }
}

/// One `policy_load` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub seq: i64,
    pub hash: String,
    pub break_glass: bool,
}

/// The newest `policy_load` records, newest first, until `stop` says
/// enough (it sees each one in turn; `true` ends the walk with that one
/// included), or the log's first.
pub fn loads_until(
    reader: &Reader,
    mut stop: impl FnMut(&Load) -> bool,
) -> Result<Vec<Load>, StoreError> {
    let mut limit = 64;
    loop {
        let rows = reader.latest_of_kind(Kind::PolicyLoad.as_str(), limit)?;
        let mut out = Vec::new();
        for (seq, bytes) in &rows {
            let Ok(record) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            let details = &record["details"];
            let load = Load {
                seq: *seq,
                hash: details["hash"].as_str().unwrap_or_default().to_owned(),
                break_glass: details["break_glass"] == true,
            };
            let done = stop(&load);
            out.push(load);
            if done {
                return Ok(out);
            }
        }
        if rows.len() < limit {
            return Ok(out);
        }
        limit *= 4;
    }
}

/// The set loaded before `current`: the newest load of another set.
pub fn previous(reader: &Reader, current: &str) -> Result<Option<String>, StoreError> {
    let loads = loads_until(reader, |load| load.hash != current)?;
    Ok(loads
        .last()
        .filter(|load| load.hash != current)
        .map(|load| load.hash.clone()))
}

/// Whether `hash` has been running since break glass loaded it: among the
/// newest loads, all of `hash`, one was by break glass.
pub fn running_since_break_glass(reader: &Reader, hash: &str) -> Result<bool, StoreError> {
    let loads = loads_until(reader, |load| load.hash != hash || load.break_glass)?;
    Ok(loads
        .last()
        .is_some_and(|load| load.hash == hash && load.break_glass))
}
