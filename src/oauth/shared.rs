//! State that several replicas share through the store's `state` table
//! (docs/ARCHITECTURE.md §6, "OAuth and approvals-page state across
//! replicas"): keyed reads, and compare-and-sets that commit through the
//! store's writer ([`Store::append_guarded`] with no records).
//!
//! On a **shared** store (PostgreSQL, several replicas) the store is the
//! truth: an owner reads the rows a decision depends on before it decides,
//! and changes a row it read only if the row still holds what it read. On
//! the embedded SQLite store one process holds the file, so its memory is
//! the store's exact mirror: owners decide from memory and write through,
//! as before, and nothing here is read per request.

use chrono::Utc;

use crate::store::{Guard, Location, Reader, Store, StoreError};

/// What a single-use entry holds once it was used: it stays (so that a
/// replay finds it used, not merely absent) until its expiry purges it.
pub const TAKEN: &[u8] = b"taken";

/// Keyed access to the `state` table for an owner of shared state.
pub struct SharedState {
    store: Store,
    shared: bool,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl SharedState {
    pub fn new(store: Store) -> SharedState {
        let shared = matches!(store.location(), Location::Postgres(_));
        SharedState { store, shared }
    }

    /// Whether other processes (replicas) write the same store.
    pub fn shared(&self) -> bool {
        self.shared
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The value of `(ns, key)` now, if present and unexpired.
    pub async fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.read(move |r| r.state_entry(&ns, &key, Utc::now()))
            .await
    }

    /// Every unexpired entry of `ns` now (for a small namespace).
    pub async fn all(&self, ns: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let ns = ns.to_owned();
        self.read(move |r| r.state(&ns, Utc::now())).await
    }

    /// Runs `read` on one of the store's readers, off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.store.read(read).await
    }

    /// Sets `(ns, key)` to `new` if it holds `expected` (`None`: absent);
    /// `false` when another writer changed it first (nothing written). The
    /// entry keeps its expiry (a new one has none).
    pub async fn swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let guard = Guard {
            ns: ns.to_owned(),
            key: key.to_owned(),
            expected,
            new,
        };
        match self.store.append_guarded(Vec::new(), guard).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Takes the single-use entry `(ns, key)` that held `read`: `true` for
    /// exactly one of several takers (replicas) of the same entry.
    pub async fn take(&self, ns: &str, key: &str, read: Vec<u8>) -> Result<bool, StoreError> {
        if read == TAKEN {
            return Ok(false);
        }
        self.swap(ns, key, Some(read), TAKEN.to_vec()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_entry_is_read_swapped_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Store::open(dir.path().join("s.db"), Box::new(|_, _, _| {})).unwrap();
        let state = SharedState::new(opened.store.clone());
        assert!(!state.shared(), "SQLite is one process's");
        assert_eq!(state.get("ns", "k").await.unwrap(), None);
        opened
            .store
            .put_state("ns", "k", b"one".to_vec(), None)
            .await
            .unwrap();
        assert_eq!(state.get("ns", "k").await.unwrap(), Some(b"one".to_vec()));
        // Only from what it holds.
        assert!(
            !state
                .swap("ns", "k", Some(b"two".to_vec()), b"three".to_vec())
                .await
                .unwrap()
        );
        assert!(
            state
                .swap("ns", "k", Some(b"one".to_vec()), b"two".to_vec())
                .await
                .unwrap()
        );
        let (a, b) = tokio::join!(
            state.take("ns", "k", b"two".to_vec()),
            state.take("ns", "k", b"two".to_vec())
        );
        assert!(a.unwrap() ^ b.unwrap(), "exactly one takes it");
        assert_eq!(state.get("ns", "k").await.unwrap(), Some(TAKEN.to_vec()));
        assert!(!state.take("ns", "k", TAKEN.to_vec()).await.unwrap());
        // An absent entry is created by a swap from `None`, once.
        assert!(state.swap("ns", "new", None, b"x".to_vec()).await.unwrap());
        assert!(!state.swap("ns", "new", None, b"y".to_vec()).await.unwrap());
    }

    #[tokio::test]
    async fn two_replicas_racing_on_one_entry_take_it_once() {
        let admin = std::env::var("WARDEN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = crate::store::postgres::ScratchSchema::create(&admin)
            .expect("PostgreSQL at 127.0.0.1:5432 (database test)");
        let open = || {
            Store::open(Location::Postgres(schema.url()), Box::new(|_, _, _| {}))
                .unwrap()
                .store
        };
        let (a, b) = (SharedState::new(open()), SharedState::new(open()));
        assert!(a.shared() && b.shared());
        for round in 0..20 {
            let key = format!("code-{round}");
            a.store()
                .put_state("ns", &key, b"unused".to_vec(), None)
                .await
                .unwrap();
            // Each replica reads it, then takes what it read.
            let (read_a, read_b) = tokio::join!(a.get("ns", &key), b.get("ns", &key));
            let (read_a, read_b) = (read_a.unwrap().unwrap(), read_b.unwrap().unwrap());
            let (took_a, took_b) =
                tokio::join!(a.take("ns", &key, read_a), b.take("ns", &key, read_b));
            assert!(took_a.unwrap() ^ took_b.unwrap(), "round {round}");
            // What one replica wrote, the other reads at once.
            assert_eq!(b.get("ns", &key).await.unwrap(), Some(TAKEN.to_vec()));
            assert_eq!(a.get("ns", &key).await.unwrap(), Some(TAKEN.to_vec()));
        }
    }
}
