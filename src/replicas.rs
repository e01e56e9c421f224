//! The replicas that share a store, as each one sees the others: which are
//! running and which policy set each enforces (`/readyz`, `/metrics`).
//!
//! Every replica announces itself in the store's `state` table (namespace
//! `replicas`: its id, policy-set hash, start time) every
//! [`ANNOUNCE_EVERY`], with an expiry of three announcements, so a replica
//! that stopped drops out by itself; one that stops cleanly withdraws at
//! once. The same pass reads the others' announcements. On SQLite there is
//! one replica and the list is just this one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::metrics::{HashLabel, Metrics};
use crate::policy::Engine;
use crate::store::{Store, StoreError};

/// The `state` namespace of the announcements.
const NS: &str = "replicas";
/// How often a replica announces itself and reads the others.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5);

/// One replica's announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: String,
    pub policy_hash: String,
    pub started: String,
}

/// This replica's view of the replicas on its store.
pub struct Registry {
    store: Store,
    policy: Arc<Engine>,
    metrics: Metrics,
    id: String,
    started: String,
    peers: Mutex<Vec<Peer>>,
    /// The hash the `policy_set` gauge is at 1 for.
    shown: Mutex<Option<String>>,
}

/// What `/readyz` says about the policy set across replicas.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyAgreement {
    /// This replica's policy-set hash.
    pub hash: String,
    /// Every other live replica enforces the same set.
    pub agrees: bool,
    /// Replicas seen (this one included).
    pub replicas: usize,
    pub detail: String,
}

impl Registry {
    pub fn new(store: Store, policy: Arc<Engine>, metrics: Metrics) -> Registry {
        Registry {
            store,
            policy,
            metrics,
            id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            peers: Mutex::new(Vec::new()),
            shown: Mutex::new(None),
        }
    }

    /// Announces this replica and reads the others' announcements.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let hash = self.policy.hash();
        self.show(&hash);
        let me = Peer {
            id: self.id.clone(),
            policy_hash: hash,
            started: self.started.clone(),
        };
        let expires =
            chrono::Utc::now() + chrono::Duration::from_std(ANNOUNCE_EVERY * 3).unwrap_or_default();
        let value = serde_json::to_vec(&me).unwrap_or_default();
        self.store
            .put_state(NS, &self.id, value, Some(expires))
            .await?;
        let now = chrono::Utc::now();
        let peers: Vec<Peer> = self
            .store
            .reader()?
            .state(NS, now)?
            .into_iter()
            .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .collect();
        let mismatches = peers
            .iter()
            .filter(|p| p.policy_hash != me.policy_hash)
            .count();
        self.metrics
            .replica_policy_mismatches
            .set(mismatches as i64);
        *self.peers.lock().unwrap_or_else(PoisonError::into_inner) = peers;
        Ok(())
    }

    /// Sets the `policy_set` gauge to `hash` (and the previous one to 0).
    fn show(&self, hash: &str) {
        let mut shown = self.shown.lock().unwrap_or_else(PoisonError::into_inner);
        if shown.as_deref() == Some(hash) {
            return;
        }
        if let Some(old) = shown.take() {
            self.metrics
                .policy_set
                .get_or_create(&HashLabel { hash: old })
                .set(0);
        }
        self.metrics
            .policy_set
            .get_or_create(&HashLabel {
                hash: hash.to_owned(),
            })
            .set(1);
        *shown = Some(hash.to_owned());
    }

    /// The policy set across the replicas last seen.
    pub fn agreement(&self) -> PolicyAgreement {
        let hash = self.policy.hash();
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let others: Vec<&Peer> = peers
            .iter()
            .filter(|p| p.id != self.id && p.policy_hash != hash)
            .collect();
        let replicas = peers.len().max(1);
        let detail = if others.is_empty() {
            format!("policy set {hash}; {replicas} replica(s) enforce it")
        } else {
            let differ: Vec<String> = others
                .iter()
                .map(|p| format!("replica {} enforces {}", p.id, p.policy_hash))
                .collect();
            format!(
                "this replica enforces policy set {hash}, but {}; finish the rollout \
                 (docs/ARCHITECTURE.md, policy rollout)",
                differ.join(", ")
            )
        };
        PolicyAgreement {
            hash,
            agrees: others.is_empty(),
            replicas,
            detail,
        }
    }

    /// Refreshes every [`ANNOUNCE_EVERY`] until `stop`, then withdraws.
    pub fn spawn(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(error) = registry.refresh().await {
                    tracing::warn!(%error, "replica announcement not written");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ANNOUNCE_EVERY) => {}
                }
            }
            let _ = registry.store.delete_state(NS, &registry.id).await;
        })
    }
}
