//! Tokens that passed every check, remembered by the SHA-256 of their bytes
//! until their `exp`, so that a client's next requests with the same token
//! cost a hash and a lookup instead of an RSA verification.
//!
//! Rules that keep it as strict as validating every time:
//! - only a token that passed every check of the module root is stored,
//!   with the principal those checks produced (minus the source address,
//!   which is the request's);
//! - an entry is used only before the token's `exp` (no clock-skew leeway:
//!   past `exp` the token is validated again, which applies the leeway);
//! - an entry is used only while the key that verified its signature is
//!   still the one published under its `kid`: a key that rotated out of the
//!   JWKS stops its cached tokens at once, as it stops uncached ones;
//! - failures are never stored;
//! - the cache holds at most `identity.token_cache` entries; when full, the
//!   expired ones go, and if none had expired, all of them (the next
//!   requests validate again).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::Principal;
use super::jwks::KeyEntry;

/// The SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

pub(crate) fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

struct Verified {
    principal: Principal,
    /// Unix seconds.
    exp: u64,
    kid: String,
    key: Arc<KeyEntry>,
}

pub(crate) struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, Verified>>,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0: nothing is cached).
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a token verified before, if it is unexpired at
    /// `now` (unix seconds) and `current` still gives the key that verified
    /// it for its `kid`.
    pub(crate) fn get(
        &self,
        token: &TokenHash,
        now: u64,
        current: impl FnOnce(&str) -> Option<Arc<KeyEntry>>,
    ) -> Option<Principal> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(token)?;
        let usable =
            now < entry.exp && current(&entry.kid).is_some_and(|key| Arc::ptr_eq(&key, &entry.key));
        if !usable {
            entries.remove(token);
            return None;
        }
        Some(entry.principal.clone())
    }

    /// Remembers a token that passed every check.
    pub(crate) fn put(
        &self,
        token: TokenHash,
        principal: &Principal,
        exp: u64,
        kid: &str,
        key: Arc<KeyEntry>,
        now: u64,
    ) {
        if self.capacity == 0 || exp <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.exp > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        let mut principal = principal.clone();
        principal.source_ip = None;
        entries.insert(
            token,
            Verified {
                principal,
                exp,
                kid: kid.to_owned(),
                key,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use jsonwebtoken::DecodingKey;

    use super::*;

    fn key() -> Arc<KeyEntry> {
        Arc::new(KeyEntry {
            key: DecodingKey::from_secret(b"not used"),
            tenants: BTreeSet::new(),
        })
    }

    fn alice() -> Principal {
        let mut p = Principal::anonymous(Some([10, 0, 0, 1].into()));
        p.display_name = "alice".into();
        p
    }

    #[test]
    fn a_token_is_served_until_its_exp_and_never_after() {
        let cache = TokenCache::new(10);
        let k = key();
        let t = hash("token-a");
        cache.put(t, &alice(), 1000, "kid-1", k.clone(), 900);
        let found = cache.get(&t, 999, |_| Some(k.clone())).expect("cached");
        assert_eq!(found.display_name, "alice");
        assert_eq!(found.source_ip, None, "the address is the request's");
        // The clock passes exp: gone, and gone for good.
        assert!(cache.get(&t, 1000, |_| Some(k.clone())).is_none());
        assert!(cache.get(&t, 999, |_| Some(k.clone())).is_none());
        assert_eq!(cache.len(), 0);
        // A token already expired is not stored.
        cache.put(t, &alice(), 900, "kid-1", k.clone(), 900);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_token_is_served_only_while_its_key_is_published() {
        let cache = TokenCache::new(10);
        let (k, other) = (key(), key());
        let t = hash("token-b");
        cache.put(t, &alice(), 1000, "kid-1", k.clone(), 0);
        // Another key under the same kid, or none: validated again.
        assert!(cache.get(&t, 1, |_| Some(other.clone())).is_none());
        cache.put(t, &alice(), 1000, "kid-1", k.clone(), 0);
        assert!(cache.get(&t, 1, |_| None).is_none());
        cache.put(t, &alice(), 1000, "kid-1", k.clone(), 0);
        assert!(
            cache
                .get(&t, 1, |kid| (kid == "kid-1").then(|| k.clone()))
                .is_some()
        );
        // Other bytes are another token.
        assert!(
            cache
                .get(&hash("token-b "), 1, |_| Some(k.clone()))
                .is_none()
        );
    }

    #[test]
    fn the_cache_is_bounded_and_can_be_off() {
        let cache = TokenCache::new(3);
        let k = key();
        for i in 0..3 {
            cache.put(
                hash(&format!("t{i}")),
                &alice(),
                100 + i,
                "kid",
                k.clone(),
                0,
            );
        }
        assert_eq!(cache.len(), 3);
        // Full: the expired ones go first...
        cache.put(hash("t3"), &alice(), 500, "kid", k.clone(), 101);
        assert_eq!(cache.len(), 2);
        // ...and when none has expired, all of them.
        cache.put(hash("t4"), &alice(), 500, "kid", k.clone(), 101);
        cache.put(hash("t5"), &alice(), 500, "kid", k.clone(), 101);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&hash("t5"), 101, |_| Some(k.clone())).is_some());

        let off = TokenCache::new(0);
        off.put(hash("t"), &alice(), 500, "kid", k.clone(), 0);
        assert!(off.get(&hash("t"), 1, |_| Some(k.clone())).is_none());
    }
}
