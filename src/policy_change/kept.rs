//! What change management keeps in the store's `state` table, shared by
//! the replicas: proposals (namespace `policy.proposal`, by id, the
//! proposal's JSON; every change to one is a compare-and-set on its row,
//! committed with its `policy_change` record) and the files of every set
//! ever loaded (namespace `policy.set`, by hash), which rollback restores.

use chrono::Utc;

use super::files::FileSet;
use super::model::Proposal;
use crate::store::{Reader, Store, StoreError};

/// Proposals, by id.
pub const PROPOSALS: &str = "policy.proposal";
/// The files of loaded sets, by hash.
pub const SETS: &str = "policy.set";

/// Proposal `id` and the bytes it is stored as (the guard of its next
/// change).
pub fn proposal(reader: &Reader, id: &str) -> Result<Option<(Proposal, Vec<u8>)>, StoreError> {
    let Some(bytes) = reader.state_entry(PROPOSALS, id, Utc::now())? else {
        return Ok(None);
    };
    let proposal = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Read(format!("proposal {id} is unreadable: {e}")))?;
    Ok(Some((proposal, bytes)))
}

/// Every proposal, newest first (unreadable ones left out).
pub fn proposals(reader: &Reader) -> Result<Vec<Proposal>, StoreError> {
    let mut all: Vec<Proposal> = reader
        .state(PROPOSALS, Utc::now())?
        .into_iter()
        .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
        .collect();
    all.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    Ok(all)
}

/// The files of the set `hash`, if they were kept.
pub fn set(reader: &Reader, hash: &str) -> Result<Option<FileSet>, StoreError> {
    let Some(bytes) = reader.state_entry(SETS, hash, Utc::now())? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Read(format!("the kept files of set {hash} are unreadable: {e}")))
}

/// Keeps the files of a loaded set under its hash (once: a set already
/// kept is not written again).
pub async fn keep_set(store: &Store, hash: &str, files: &FileSet) -> Result<(), StoreError> {
    let key = hash.to_owned();
    let kept = store
        .read(move |reader| reader.state_entry(SETS, &key, Utc::now()))
        .await?;
    if kept.is_some() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(files).map_err(|e| StoreError::Write(e.to_string()))?;
    store.put_state(SETS, hash, bytes, None).await
}
