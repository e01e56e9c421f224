//! Learning shared by replicas on one store (PostgreSQL).
//!
//! A principal's calls may land on any replica, so no replica's memory
//! alone knows its last hour. On a shared store, learning is a journal:
//! each replica appends what it would have learned (an [`Event`]: the
//! observation and how the call ended) to the store's `risk_events` table
//! before it answers the call, and every replica applies the journal in id
//! order, its own events included, before it scores a call. Ids become
//! visible in order (they are handed out under a row lock held to commit),
//! so "applied up to N" never misses an event below N, and a call answered
//! by one replica counts on every replica for the next call it scores.
//!
//! Baselines are still written to the store behind the calls, each with the
//! id of the last event it learned from; a replica that starts loads them
//! and replays the journal after each one's id. Events are pruned an hour
//! after their call, once the baselines are stored (nothing in the last
//! hour's rates is older).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Observation, Outcome};
use crate::store::{Reader, Store, StoreError};

/// Events read per query.
const PAGE: i64 = 1000;

/// How long events are kept after their call (the rate window).
pub const KEEP_SECS: i64 = 3600;

/// One call, as the journal carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub observation: Observation,
    pub outcome: Outcome,
}

/// The journal on a shared store: where events go, and where replicas
/// catch up from.
pub struct Journal {
    store: Store,
    /// When the last successful catch-up query began: a call that arrived
    /// before it needs no query of its own.
    caught_up: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Journal {
    pub fn new(store: Store) -> Journal {
        Journal {
            store,
            caught_up: tokio::sync::Mutex::new(None),
        }
    }

    /// Appends `event`; returns once it is durable.
    pub async fn write(&self, event: &Event) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(event).map_err(|e| StoreError::Write(e.to_string()))?;
        self.store
            .save_risk_events(vec![(event.observation.at, bytes)])
            .await
    }

    /// Forgets events of calls more than [`KEEP_SECS`] before `now`.
    pub async fn prune(&self, now: i64) -> Result<(), StoreError> {
        self.store.prune_risk_events(now - KEEP_SECS).await
    }

    /// Every event after `after`, in id order, read off the runtime's
    /// threads (the store's readers block).
    pub async fn since(&self, after: i64) -> Result<Read, StoreError> {
        self.store
            .read(move |reader| read_since(reader, after))
            .await
    }

    /// Applies, through `apply`, the events after `applied()` unless a
    /// catch-up that began after this call arrived has already done so.
    pub async fn catch_up(
        &self,
        applied: impl Fn() -> i64,
        apply: impl FnOnce(Read),
    ) -> Result<(), StoreError> {
        let arrived = Instant::now();
        let mut caught_up = self.caught_up.lock().await;
        if caught_up.is_some_and(|began| began >= arrived) {
            return Ok(());
        }
        let began = Instant::now();
        let events = self.since(applied()).await?;
        apply(events);
        *caught_up = Some(began);
        Ok(())
    }
}

/// Events read from the journal.
#[derive(Debug, Default)]
pub struct Read {
    /// The last id read (events that could not be read included).
    pub last: i64,
    pub events: Vec<(i64, Event)>,
}

/// Reads every event after `after`, a page at a time. An event that cannot
/// be read is skipped with a warning (its id still counts as read).
pub fn read_since(reader: &Reader, mut after: i64) -> Result<Read, StoreError> {
    let mut events = Vec::new();
    loop {
        let page = reader.risk_events_since(after, PAGE)?;
        let full = page.len() as i64 == PAGE;
        for (id, bytes) in page {
            after = id;
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => events.push((id, event)),
                Err(error) => {
                    tracing::warn!(target: "warden::risk", id, %error, "an unreadable risk event was skipped")
                }
            }
        }
        if !full {
            return Ok(Read {
                last: after,
                events,
            });
        }
    }
}
