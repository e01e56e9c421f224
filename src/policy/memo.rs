//! Bounded tables of what a decision builds from its inputs alone.
//!
//! A principal's entities depend only on its identity facts, and a
//! request's entity store only on the principal, the operation and the
//! resource facts; yet building a store (its entities, their transitive
//! closure, see [`closed`](super::closed)) costs more than evaluating the
//! policies. A set keeps what it built, keyed by an injective encoding of
//! every input ([`Key`]), so a hit is exactly what building again would
//! give. Each table keeps two generations of at most its limit (see
//! [`Memo`]); a reload makes a new set with empty tables. Failures are not kept: the
//! next call builds again and fails the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A bounded memo table from [`Key`] bytes to built values: two
/// generations of at most `limit` entries each. When the current one is
/// full it becomes the previous one and the one before is dropped; a value
/// found in the previous generation moves to the current one, so what is
/// in use survives the turn and only what went unused is built again.
pub(crate) struct Memo<V> {
    limit: usize,
    tables: Mutex<Generations<V>>,
}

struct Generations<V> {
    current: HashMap<Box<[u8]>, Arc<V>>,
    previous: HashMap<Box<[u8]>, Arc<V>>,
}

impl<V> Generations<V> {
    /// Puts `value` in the current generation; returns the generation this
    /// turned out, if any (for the caller to drop outside the lock).
    fn insert(
        &mut self,
        limit: usize,
        key: Box<[u8]>,
        value: Arc<V>,
    ) -> Option<HashMap<Box<[u8]>, Arc<V>>> {
        // A new generation is made at its full size: growing it would
        // rehash every key several times per generation, inside calls.
        let dropped = (self.current.len() >= limit).then(|| {
            let full = std::mem::replace(&mut self.current, HashMap::with_capacity(limit));
            std::mem::replace(&mut self.previous, full)
        });
        self.current.insert(key, value);
        dropped
    }
}

impl<V: Send + Sync + 'static> Memo<V> {
    pub fn new(limit: usize) -> Self {
        Memo {
            limit,
            tables: Mutex::new(Generations {
                current: HashMap::with_capacity(limit),
                previous: HashMap::new(),
            }),
        }
    }

    /// The value built for `key`, building it with `build` if this table
    /// does not hold it. The lock is not held while building, and a
    /// generation turned out is dropped after it is released: other
    /// decisions do not wait for either.
    pub fn get_or_build(
        &self,
        key: &Key,
        build: impl FnOnce() -> Result<V, String>,
    ) -> Result<Arc<V>, String> {
        {
            let mut tables = self.lock();
            if let Some(found) = tables.current.get(key.bytes()) {
                return Ok(found.clone());
            }
            if let Some((key, found)) = tables.previous.remove_entry(key.bytes()) {
                let dropped = tables.insert(self.limit, key, found.clone());
                drop(tables);
                retire(dropped);
                return Ok(found);
            }
        }
        let value = Arc::new(build()?);
        let dropped = self
            .lock()
            .insert(self.limit, key.bytes().into(), value.clone());
        retire(dropped);
        Ok(value)
    }

    /// Entries held, both generations.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let tables = self.lock();
        tables.current.len() + tables.previous.len()
    }

    fn lock(&self) -> MutexGuard<'_, Generations<V>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops a generation turned out, on a thread of its own: freeing a
/// thousand entity stores takes a millisecond or more, which the decision
/// that turned the generation would otherwise wait for. Dropped here if no
/// thread can be made.
fn retire<V: Send + Sync + 'static>(dropped: Option<HashMap<Box<[u8]>, Arc<V>>>) {
    if let Some(dropped) = dropped.filter(|d| !d.is_empty()) {
        // On failure the closure, and the generation with it, is dropped
        // by `spawn` itself.
        let spawned = std::thread::Builder::new()
            .name("warden-memo-drop".into())
            .spawn(move || drop(dropped));
        if let Err(e) = spawned {
            tracing::debug!("policy memo: dropped a generation in the call: {e}");
        }
    }
}

/// The inputs of a build, written as tagged, length-prefixed fields: two
/// keys are equal only if every input was.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// This key followed by `other`'s fields.
    pub fn join(&self, other: &Key) -> Key {
        let mut joined = Vec::with_capacity(self.0.len() + other.0.len());
        joined.extend_from_slice(&self.0);
        joined.extend_from_slice(&other.0);
        Key(joined)
    }

    fn tag(&mut self, tag: u8, len: usize) {
        self.0.push(tag);
        self.0.extend_from_slice(&(len as u64).to_le_bytes());
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.tag(b's', s.len());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    pub fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.str(s),
            None => {
                self.tag(b'-', 0);
                self
            }
        }
    }

    /// How many fields follow (of a list written field by field).
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.tag(b'n', n);
        self
    }

    /// Another key's fields, as one field.
    pub fn key(&mut self, inner: &Key) -> &mut Self {
        self.tag(b'k', inner.0.len());
        self.0.extend_from_slice(&inner.0);
        self
    }

    pub fn flag(&mut self, b: bool) -> &mut Self {
        self.tag(b'b', usize::from(b));
        self
    }

    pub fn strs<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a String>) -> &mut Self {
        self.tag(b'l', items.len());
        for item in items {
            self.str(item);
        }
        self
    }

    pub fn map(&mut self, map: &BTreeMap<String, String>) -> &mut Self {
        self.tag(b'm', map.len());
        for (k, v) in map {
            self.str(k).str(v);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> Key {
        let mut k = Key::default();
        for part in parts {
            k.str(part);
        }
        k
    }

    #[test]
    fn keys_differ_when_any_input_does_even_where_bytes_would_run_together() {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut none = Key::default();
        none.opt(None);
        let mut empty = Key::default();
        empty.opt(Some(""));
        let mut off = Key::default();
        off.flag(false);
        let mut on = Key::default();
        on.flag(true);
        let mut list_ab_c = Key::default();
        list_ab_c.strs(strings(&["a", "b"]).iter()).str("c");
        let mut list_a_b_c = Key::default();
        list_a_b_c.strs(strings(&["a"]).iter()).str("b").str("c");
        let mut map_ab = Key::default();
        map_ab.map(&BTreeMap::from([("a".into(), "b".into())]));
        let mut map_then_ab = Key::default();
        map_then_ab.map(&BTreeMap::new()).str("a").str("b");
        let pairs = [
            (key(&["ab", "c"]), key(&["a", "bc"])),
            (none, empty),
            (off, on),
            (list_ab_c, list_a_b_c),
            (map_ab, map_then_ab),
            (key(&["a"]), key(&["a"]).join(&key(&[""]))),
        ];
        for (a, b) in pairs {
            assert_ne!(a, b);
        }
        assert_eq!(key(&["x", "y"]), key(&["x"]).join(&key(&["y"])));
    }

    #[test]
    fn a_hit_returns_what_was_built_and_failures_are_not_kept() {
        let memo: Memo<String> = Memo::new(2);
        let a = key(&["a"]);
        let built = memo.get_or_build(&a, || Ok("first".into())).unwrap();
        let again = memo
            .get_or_build(&a, || panic!("a hit must not build"))
            .unwrap();
        assert!(Arc::ptr_eq(&built, &again));
        let b = key(&["b"]);
        assert_eq!(
            memo.get_or_build(&b, || Err("no".into())).unwrap_err(),
            "no"
        );
        assert_eq!(memo.len(), 1, "a failure is not kept");
    }

    #[test]
    fn what_is_in_use_survives_a_turn_and_the_rest_is_dropped() {
        let memo: Memo<String> = Memo::new(2);
        let build = |name: &str| {
            let name = name.to_owned();
            move || Ok::<_, String>(name)
        };
        let hit = |name: &str| memo.get_or_build(&key(&[name]), || panic!("{name} must be held"));
        memo.get_or_build(&key(&["a"]), build("a")).unwrap();
        memo.get_or_build(&key(&["b"]), build("b")).unwrap();
        // Full: c starts a new generation; a and b are the previous one.
        memo.get_or_build(&key(&["c"]), build("c")).unwrap();
        assert_eq!(memo.len(), 3);
        assert_eq!(*hit("a").unwrap(), "a", "moved to the current generation");
        // Full again: d turns {c, a} into the previous generation and
        // drops b, which went unused.
        memo.get_or_build(&key(&["d"]), build("d")).unwrap();
        assert_eq!(memo.len(), 3);
        assert_eq!(*hit("a").unwrap(), "a");
        assert_eq!(*hit("c").unwrap(), "c");
        let rebuilt = memo.get_or_build(&key(&["b"]), build("b again")).unwrap();
        assert_eq!(*rebuilt, "b again");
        assert!(memo.len() <= 4, "never more than two generations");
    }

    #[test]
    fn a_new_generation_is_made_at_its_full_size_and_the_old_one_is_freed() {
        let memo: Memo<String> = Memo::new(64);
        let first = Arc::downgrade(&memo.get_or_build(&key(&["0"]), || Ok("0".into())).unwrap());
        // Two turns: the generation holding "0" is turned out whole.
        for i in 1..=128 {
            let name = i.to_string();
            memo.get_or_build(&key(&[&name]), || Ok(name.clone()))
                .unwrap();
        }
        assert!(memo.lock().current.capacity() >= 64);
        // Freed on a thread of its own: wait for it (the bound only keeps a
        // failure from hanging the suite).
        let waited = std::time::Instant::now();
        while first.upgrade().is_some() {
            assert!(
                waited.elapsed() < std::time::Duration::from_secs(60),
                "the turned-out generation was never freed"
            );
            std::thread::yield_now();
        }
        assert_eq!(memo.len(), 64 + 1, "the previous generation and one more");
    }
}
