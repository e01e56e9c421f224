//! The facts cache: ARM's answers kept for a short time, "not found" for a
//! shorter one, at most `max_entries` of them; failures are never kept.
//! Concurrent lookups of one key share one request, which runs to its end
//! (and fills the cache) even if every caller gave up waiting.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use super::{FactsConfig, Find, Found, Subscription};

/// What was asked of ARM.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A GET of a lower-cased id.
    Get(String),
    /// A Resource Graph search.
    Find(Find),
    /// The subscriptions visible.
    Subscriptions,
}

/// What ARM answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Get(Option<Found>),
    Find(Vec<Found>),
    Subscriptions(Vec<Subscription>),
}

impl Value {
    /// "Not found", kept for the shorter time.
    fn negative(&self) -> bool {
        matches!(self, Value::Get(None)) || matches!(self, Value::Find(found) if found.is_empty())
    }
}

type Pending = Shared<BoxFuture<'static, Result<Value, String>>>;

struct Entry {
    value: Value,
    expires: Instant,
}

struct Inner {
    entries: Mutex<HashMap<Key, Entry>>,
    in_flight: Mutex<HashMap<Key, Pending>>,
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn get(&self, key: &Key) -> Option<Value> {
        let entries = lock(&self.entries);
        entries
            .get(key)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.clone())
    }

    fn insert(&self, key: Key, value: Value) {
        let now = Instant::now();
        let ttl = if value.negative() {
            self.negative_ttl
        } else {
            self.ttl
        };
        if ttl.is_zero() {
            return;
        }
        let mut entries = lock(&self.entries);
        if !entries.contains_key(&key) && entries.len() >= self.max_entries {
            entries.retain(|_, e| e.expires > now);
            while entries.len() >= self.max_entries {
                let Some(first) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&first);
            }
        }
        entries.insert(
            key,
            Entry {
                value,
                expires: now + ttl,
            },
        );
    }
}

/// Cheap to clone; clones share the entries.
#[derive(Clone)]
pub(crate) struct Cache {
    inner: Arc<Inner>,
}

impl Cache {
    pub fn new(config: &FactsConfig) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                entries: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                ttl: config.ttl,
                negative_ttl: config.negative_ttl,
                max_entries: config.max_entries.max(1),
            }),
        }
    }

    /// The unexpired answer for `key`.
    pub fn get(&self, key: &Key) -> Option<Value> {
        self.inner.get(key)
    }

    /// Entries held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        lock(&self.inner.entries).len()
    }

    /// The answer of the identical request in flight, or of the one
    /// `request` makes. The request runs on a task of its own; an answer
    /// (not a failure) is cached.
    pub async fn fetch<F>(&self, key: Key, request: impl FnOnce() -> F) -> Result<Value, String>
    where
        F: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let pending = {
            let mut in_flight = lock(&self.inner.in_flight);
            if let Some(hit) = self.inner.get(&key) {
                return Ok(hit);
            }
            match in_flight.get(&key) {
                Some(pending) => pending.clone(),
                None => {
                    let inner = self.inner.clone();
                    let done = key.clone();
                    let request = request();
                    // The in-flight lock is held until the entry is in the
                    // map, so the task cannot remove it before it is there.
                    let task = tokio::spawn(async move {
                        let answer = request.await;
                        if let Ok(value) = &answer {
                            inner.insert(done.clone(), value.clone());
                        }
                        lock(&inner.in_flight).remove(&done);
                        answer
                    });
                    let pending: Pending = async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("the lookup failed: {e}")))
                    }
                    .boxed()
                    .shared();
                    in_flight.insert(key, pending.clone());
                    pending
                }
            }
        };
        pending.await
    }

    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.in_flight).len()
    }
}
