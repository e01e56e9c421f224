//! The approvals page's Entra sign-ins in progress: what the callback needs
//! (the browser that started the sign-in, the ID token's nonce, the PKCE
//! verifier), between the "Sign in with Microsoft Entra ID" button and
//! Entra's answer.
//!
//! Each is kept in memory and in the store (namespace [`NS_PENDING`], keyed
//! by the SHA-256 of its `state`, with the verifier sealed under Warden's
//! key ring and bound to the `state`), so a sign-in started before a
//! restart finishes after it. A `state` is taken once: the entry leaves
//! memory and the store before the code is redeemed.
//!
//! On a store that replicas share (PostgreSQL) the store is the truth: the
//! callback, on whichever replica it arrives, reads the sign-in from the
//! store and takes it by a compare-and-set ([`crate::oauth::shared`]), so
//! of replicas racing on one `state` exactly one takes it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::oauth::pkce::CodeVerifier;
use crate::oauth::seal::Sealer;
use crate::oauth::shared::SharedState;
use crate::store::Store;

/// The store namespace of sign-ins in progress.
pub const NS_PENDING: &str = "admin.sign_in";

/// An Entra sign-in between the button and the callback.
pub struct Pending {
    /// The SHA-256 of the cookie of the browser that started it.
    pub browser: String,
    pub nonce: String,
    pub verifier: CodeVerifier,
    pub expires: DateTime<Utc>,
}

/// A sign-in as kept in the store.
#[derive(Serialize, Deserialize)]
struct Stored {
    browser: String,
    nonce: String,
    /// The verifier sealed with the `state` hash as associated data (base64).
    verifier: String,
    expires: DateTime<Utc>,
}

/// Why a `state` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No sign-in has this `state` (never started, or already used).
    Unknown,
    /// It was started too long ago (it is dropped).
    Expired,
    /// Another browser started it (it stays, for that browser).
    OtherBrowser,
}

impl Refused {
    /// The reason as audit records name it.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Unknown => "unknown_state",
            Refused::Expired => "expired_state",
            Refused::OtherBrowser => "other_browser",
        }
    }
}

/// Too many sign-ins are in progress.
#[derive(Debug)]
pub struct Full;

/// The sign-ins in progress.
pub struct SignIns {
    map: Mutex<HashMap<String, Pending>>,
    store: Option<Store>,
    /// With a shared store: where sign-ins are read and taken.
    shared: Option<SharedState>,
    sealer: Sealer,
    max: usize,
}

impl SignIns {
    /// The sign-ins kept in `store` that have not expired. Unreadable
    /// entries (another key ring, a damaged row) are skipped: their users
    /// start again.
    pub fn load(store: Option<Store>, sealer: Sealer, max: usize) -> SignIns {
        let now = Utc::now();
        let mut map = HashMap::new();
        if let Some(store) = &store {
            match store.reader().and_then(|r| r.state(NS_PENDING, now)) {
                Ok(rows) => {
                    for (key, value) in rows {
                        match open(&sealer, &key, &value) {
                            Some(pending) if pending.expires > now && map.len() < max => {
                                map.insert(key, pending);
                            }
                            Some(_) => {}
                            None => {
                                tracing::warn!(target: "warden::admin", "an unreadable sign-in in progress was skipped");
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(target: "warden::admin", %error, "sign-ins in progress not loaded: their users start again");
                }
            }
        }
        let shared = store
            .clone()
            .map(SharedState::new)
            .filter(SharedState::shared);
        SignIns {
            map: Mutex::new(map),
            store,
            shared,
            sealer,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a sign-in under `key` (the SHA-256 of its `state`), durable
    /// before the browser is sent to Entra. A sign-in that cannot be stored
    /// is still kept in memory: it then ends with this process.
    pub async fn hold(&self, key: String, pending: Pending) -> Result<(), Full> {
        let now = Utc::now();
        let stored = self.seal(&key, &pending);
        let expires = pending.expires;
        {
            let mut map = self.lock();
            map.retain(|_, p| p.expires > now);
            if map.len() >= self.max {
                return Err(Full);
            }
            map.insert(key.clone(), pending);
        }
        if let Some(store) = &self.store {
            let written = match stored {
                Some(value) => store
                    .put_state(NS_PENDING, &key, value, Some(expires))
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("the verifier could not be sealed".to_owned()),
            };
            if let Err(error) = written {
                tracing::warn!(target: "warden::admin", %error, "sign-in in progress not stored: it ends with this process");
            }
            let _ = store.purge_state(NS_PENDING, now).await;
        }
        Ok(())
    }

    /// Takes the sign-in `key` started by `browser` (the SHA-256 of its
    /// cookie): once, and only from that browser.
    pub async fn take(
        &self,
        key: &str,
        browser: Option<&str>,
        same: impl Fn(&str, &str) -> bool,
    ) -> Result<Pending, Refused> {
        let now = Utc::now();
        if let Some(shared) = &self.shared {
            return self.take_shared(shared, key, browser, same, now).await;
        }
        let taken = {
            let mut map = self.lock();
            match map.get(key) {
                None => Err(Refused::Unknown),
                Some(p) if p.expires <= now => {
                    map.remove(key);
                    Err(Refused::Expired)
                }
                Some(p) if browser.is_none_or(|b| !same(b, &p.browser)) => {
                    Err(Refused::OtherBrowser)
                }
                Some(_) => map.remove(key).ok_or(Refused::Unknown),
            }
        };
        if !matches!(taken, Err(Refused::Unknown) | Err(Refused::OtherBrowser))
            && let Some(store) = &self.store
            && let Err(error) = store.delete_state(NS_PENDING, key).await
        {
            tracing::warn!(target: "warden::admin", %error, "a used sign-in state was not removed from the store");
        }
        taken
    }

    /// [`SignIns::take`] on a shared store: the sign-in as the store has
    /// it, taken by a compare-and-set.
    async fn take_shared(
        &self,
        shared: &SharedState,
        key: &str,
        browser: Option<&str>,
        same: impl Fn(&str, &str) -> bool,
        now: DateTime<Utc>,
    ) -> Result<Pending, Refused> {
        self.lock().remove(key);
        let read = match shared.get(NS_PENDING, key).await {
            Ok(Some(read)) => read,
            Ok(None) => return Err(Refused::Unknown),
            Err(error) => {
                tracing::warn!(target: "warden::admin", %error, "a sign-in state could not be read");
                return Err(Refused::Unknown);
            }
        };
        let Some(pending) = open(&self.sealer, key, &read) else {
            return Err(Refused::Unknown);
        };
        if pending.expires <= now {
            let _ = shared.take(NS_PENDING, key, read).await;
            return Err(Refused::Expired);
        }
        if browser.is_none_or(|b| !same(b, &pending.browser)) {
            return Err(Refused::OtherBrowser);
        }
        match shared.take(NS_PENDING, key, read).await {
            Ok(true) => Ok(pending),
            Ok(false) => Err(Refused::Unknown),
            Err(error) => {
                tracing::warn!(target: "warden::admin", %error, "a sign-in state could not be taken");
                Err(Refused::Unknown)
            }
        }
    }

    fn seal(&self, key: &str, pending: &Pending) -> Option<Vec<u8>> {
        let sealed = self
            .sealer
            .seal(pending.verifier.expose().as_bytes(), &aad(key))
            .ok()?;
        serde_json::to_vec(&Stored {
            browser: pending.browser.clone(),
            nonce: pending.nonce.clone(),
            verifier: STANDARD.encode(sealed),
            expires: pending.expires,
        })
        .ok()
    }
}

fn aad(key: &str) -> [&[u8]; 2] {
    [b"admin-sign-in", key.as_bytes()]
}

fn open(sealer: &Sealer, key: &str, value: &[u8]) -> Option<Pending> {
    let stored: Stored = serde_json::from_slice(value).ok()?;
    let sealed = STANDARD.decode(&stored.verifier).ok()?;
    let plain = sealer.open(&sealed, &aad(key)).ok()?;
    let verifier = CodeVerifier::parse(std::str::from_utf8(&plain).ok()?).ok()?;
    Some(Pending {
        browser: stored.browser,
        nonce: stored.nonce,
        verifier,
        expires: stored.expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::seal::{KeyRing, Purpose};

    fn sealer() -> Sealer {
        let line = KeyRing::generate_line("k1").expect("key line");
        KeyRing::parse(&line, std::path::Path::new("keys"))
            .expect("key ring")
            .sealer(Purpose::UpstreamToken)
    }

    fn pending(browser: &str, minutes: i64) -> Pending {
        Pending {
            browser: browser.into(),
            nonce: "n-1".into(),
            verifier: CodeVerifier::generate(),
            expires: Utc::now() + chrono::Duration::minutes(minutes),
        }
    }

    fn same(a: &str, b: &str) -> bool {
        a == b
    }

    #[tokio::test]
    async fn a_sign_in_survives_a_restart_and_is_taken_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = crate::audit::test_audit(dir.path()).await;
        let store = audit.store().clone();
        let sealer = sealer();
        let first = SignIns::load(Some(store.clone()), sealer.clone(), 10);
        let held = pending("browser-a", 10);
        let verifier = held.verifier.expose().to_owned();
        first.hold("state-hash".into(), held).await.expect("held");
        // The verifier is sealed in the store, never in the clear.
        let rows = store
            .reader()
            .unwrap()
            .state(NS_PENDING, Utc::now())
            .unwrap();
        assert_eq!(rows.len(), 1);
        let raw = String::from_utf8_lossy(&rows[0].1).into_owned();
        assert!(!raw.contains(&verifier), "{raw}");
        drop(first);

        let second = SignIns::load(Some(store.clone()), sealer.clone(), 10);
        assert_eq!(
            second
                .take("state-hash", Some("browser-b"), same)
                .await
                .err(),
            Some(Refused::OtherBrowser),
            "another browser cannot take it"
        );
        let taken = second
            .take("state-hash", Some("browser-a"), same)
            .await
            .expect("taken after the restart");
        assert_eq!(taken.verifier.expose(), verifier);
        assert_eq!(taken.nonce, "n-1");
        assert_eq!(
            second
                .take("state-hash", Some("browser-a"), same)
                .await
                .err(),
            Some(Refused::Unknown),
            "a state is used once"
        );
        let third = SignIns::load(Some(store.clone()), sealer, 10);
        assert_eq!(
            third
                .take("state-hash", Some("browser-a"), same)
                .await
                .err(),
            Some(Refused::Unknown),
            "a used state is gone from the store too"
        );
    }

    #[tokio::test]
    async fn expired_foreign_and_excess_sign_ins_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let audit = crate::audit::test_audit(dir.path()).await;
        let store = audit.store().clone();
        let sign_ins = SignIns::load(Some(store.clone()), sealer(), 2);
        sign_ins
            .hold("old".into(), pending("b", -1))
            .await
            .expect("held");
        assert_eq!(
            sign_ins.take("old", Some("b"), same).await.err(),
            Some(Refused::Expired)
        );
        assert_eq!(
            sign_ins.take("never", Some("b"), same).await.err(),
            Some(Refused::Unknown)
        );
        assert_eq!(
            sign_ins.take("old", None, same).await.err(),
            Some(Refused::Unknown),
            "an expired state is dropped"
        );
        sign_ins.hold("s1".into(), pending("b", 5)).await.unwrap();
        sign_ins.hold("s2".into(), pending("b", 5)).await.unwrap();
        assert!(sign_ins.hold("s3".into(), pending("b", 5)).await.is_err());
        assert_eq!(
            sign_ins.take("s1", None, same).await.err(),
            Some(Refused::OtherBrowser),
            "no cookie, no sign-in"
        );

        // A store sealed under another key ring is skipped, not trusted.
        let elsewhere = SignIns::load(Some(store), sealer(), 10);
        assert_eq!(
            elsewhere.take("s2", Some("b"), same).await.err(),
            Some(Refused::Unknown)
        );
    }
}
