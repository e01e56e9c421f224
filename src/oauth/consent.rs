//! Consent before Entra (the MCP spec's confused-deputy protection), as
//! pure state with the time as input:
//!
//! - a **pending** consent is the validated authorization request waiting
//!   on the consent page, found by a random id and bound to a random CSRF
//!   token the browser holds in a cookie; it is taken once;
//! - a **remembered** consent says that a user approved a client, for one
//!   redirect URI and set of scopes, until it expires: another client, or
//!   the same client with another redirect URI or more scopes, asks again;
//! - a **transaction** is created only once the user approved: it holds
//!   what the callback needs (the client's request and Warden's own PKCE
//!   verifier for the Entra leg) under the hash of the random `state` sent
//!   to Entra, bound to the browser, and is taken once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A validated authorization request of an MCP client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub client_id: String,
    /// What the consent page names the client (with "unverified" or the
    /// document's domain where that applies).
    pub client_label: String,
    pub redirect_uri: String,
    /// The client's `state`, returned to it unchanged.
    pub state: Option<String>,
    /// The client's S256 PKCE challenge.
    pub challenge: String,
    /// The canonical `resource`.
    pub resource: String,
    pub scopes: Vec<String>,
    /// Ask Entra for the configured authentication context (MFA).
    pub step_up: bool,
}

/// Why a consent step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error("the consent form is unknown, stale or was already answered; start the sign-in again")]
    UnknownPending,
    #[error(
        "the consent form did not come from this browser (CSRF token mismatch); nothing was approved"
    )]
    Csrf,
    #[error("the sign-in transaction is unknown, expired or was already completed; start again")]
    UnknownTransaction,
    #[error("the sign-in was started in another browser")]
    OtherBrowser,
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The key of a remembered consent: user, client, redirect URI and the
/// sorted scopes.
pub fn consent_key(
    tid: &str,
    oid: &str,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
) -> String {
    let mut scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let joined = scopes.join(" ");
    sha256_hex(&[tid, oid, client_id, redirect_uri, &joined])
}

/// The stored form of a secret handle (`state`, a cookie value).
pub fn handle_hash(handle: &str) -> String {
    sha256_hex(&[handle])
}

/// A request waiting on the consent page (kept in the store too when
/// replicas share it, so that another replica takes the answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub request: ClientRequest,
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

/// What the callback needs, kept under the hash of Entra's `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub request: ClientRequest,
    /// Warden's PKCE verifier toward Entra, sealed (base64).
    pub verifier: String,
    /// The nonce asked of Entra's ID token.
    pub nonce: String,
    /// The hash of the browser cookie that started it.
    pub browser: String,
    pub expires: DateTime<Utc>,
}

/// Pending, remembered and in-flight consents.
#[derive(Debug, Default)]
pub struct Consents {
    pending: HashMap<String, Pending>,
    remembered: HashMap<String, DateTime<Utc>>,
    transactions: HashMap<String, Transaction>,
}

/// Pending consents kept at once (older ones are dropped first).
const MAX_PENDING: usize = 10_000;

impl Consents {
    /// Remembered consents and transactions as stored.
    pub fn load(
        remembered: impl IntoIterator<Item = (String, DateTime<Utc>)>,
        transactions: impl IntoIterator<Item = (String, Transaction)>,
    ) -> Consents {
        Consents {
            pending: HashMap::new(),
            remembered: remembered.into_iter().collect(),
            transactions: transactions.into_iter().collect(),
        }
    }

    /// Keeps `request` for the consent page under `id`, for the browser
    /// holding `csrf`, until `expires`.
    pub fn hold(
        &mut self,
        id: String,
        request: ClientRequest,
        csrf: String,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        self.pending.retain(|_, p| p.expires > now);
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| k.clone())
        {
            self.pending.remove(&oldest);
        }
        self.pending.insert(
            id,
            Pending {
                request,
                csrf,
                expires,
            },
        );
    }

    /// The pending request `id` (for rendering the page again).
    pub fn pending(&self, id: &str, now: DateTime<Utc>) -> Option<&ClientRequest> {
        self.pending
            .get(id)
            .filter(|p| p.expires > now)
            .map(|p| &p.request)
    }

    /// Takes the pending request `id` answered by a browser holding
    /// `csrf` (constant-time compared). A wrong token leaves it pending.
    pub fn answer(
        &mut self,
        id: &str,
        csrf: &str,
        now: DateTime<Utc>,
    ) -> Result<ClientRequest, ConsentError> {
        let pending = self
            .pending
            .get(id)
            .filter(|p| p.expires > now)
            .ok_or(ConsentError::UnknownPending)?;
        use subtle::ConstantTimeEq;
        if csrf.is_empty() || !bool::from(pending.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(ConsentError::Csrf);
        }
        self.pending
            .remove(id)
            .map(|p| p.request)
            .ok_or(ConsentError::UnknownPending)
    }

    /// The pending request `id` as held (to store it).
    pub fn held(&self, id: &str) -> Option<Pending> {
        self.pending.get(id).cloned()
    }

    /// Replaces what is known of pending request `id` with the store's
    /// copy (`None`: the store has none, or it was answered).
    pub fn put_pending(&mut self, id: &str, pending: Option<Pending>) {
        match pending {
            Some(pending) => {
                self.pending.insert(id.to_owned(), pending);
            }
            None => {
                self.pending.remove(id);
            }
        }
    }

    /// Replaces what is known of the transaction of `state_hash` with the
    /// store's copy (`None`: the store has none, or it was taken).
    pub fn put_transaction(&mut self, state_hash: &str, transaction: Option<Transaction>) {
        match transaction {
            Some(transaction) => {
                self.transactions.insert(state_hash.to_owned(), transaction);
            }
            None => {
                self.transactions.remove(state_hash);
            }
        }
    }

    /// Whether `key` ([`consent_key`]) was approved and has not expired.
    pub fn remembered(&self, key: &str, now: DateTime<Utc>) -> bool {
        self.remembered.get(key).is_some_and(|until| *until > now)
    }

    /// Remembers an approval until `until`.
    pub fn remember(&mut self, key: String, until: DateTime<Utc>) {
        self.remembered.insert(key, until);
    }

    /// Starts a transaction under the hash of Entra's `state`.
    pub fn begin(&mut self, state_hash: String, transaction: Transaction) {
        self.transactions.insert(state_hash, transaction);
    }

    /// Takes the transaction of `state_hash`, once, if the browser that
    /// started it (`browser`, the hash of its cookie) is the one back.
    pub fn finish(
        &mut self,
        state_hash: &str,
        browser: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Transaction, ConsentError> {
        let transaction = self
            .transactions
            .remove(state_hash)
            .filter(|t| t.expires > now)
            .ok_or(ConsentError::UnknownTransaction)?;
        if browser != Some(transaction.browser.as_str()) {
            return Err(ConsentError::OtherBrowser);
        }
        Ok(transaction)
    }

    /// Drops what has expired.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        self.pending.retain(|_, p| p.expires > now);
        self.remembered.retain(|_, until| *until > now);
        self.transactions.retain(|_, t| t.expires > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn request(client: &str) -> ClientRequest {
        ClientRequest {
            client_id: client.into(),
            client_label: client.into(),
            redirect_uri: "http://127.0.0.1:5000/cb".into(),
            state: Some("xyz".into()),
            challenge: "c".repeat(43),
            resource: "https://warden.example/mcp".into(),
            scopes: vec!["mcp".into()],
            step_up: false,
        }
    }

    #[test]
    fn a_pending_consent_needs_its_csrf_token_and_is_answered_once() {
        let mut consents = Consents::default();
        consents.hold(
            "p1".into(),
            request("a"),
            "tok".into(),
            t0() + secs(600),
            t0(),
        );
        assert_eq!(consents.answer("p1", "", t0()), Err(ConsentError::Csrf));
        assert_eq!(
            consents.answer("p1", "other", t0()),
            Err(ConsentError::Csrf)
        );
        assert_eq!(consents.answer("p1", "tok", t0()).unwrap().client_id, "a");
        assert_eq!(
            consents.answer("p1", "tok", t0()),
            Err(ConsentError::UnknownPending)
        );
        consents.hold(
            "p2".into(),
            request("a"),
            "tok".into(),
            t0() + secs(600),
            t0(),
        );
        assert_eq!(
            consents.answer("p2", "tok", t0() + secs(600)),
            Err(ConsentError::UnknownPending)
        );
    }

    #[test]
    fn a_remembered_consent_is_for_one_client_redirect_and_scope_set() {
        let mut consents = Consents::default();
        let scopes = vec!["mcp".to_owned(), "offline_access".to_owned()];
        let key = consent_key("t", "o", "client-a", "http://127.0.0.1/cb", &scopes);
        consents.remember(key.clone(), t0() + secs(3600));
        assert!(consents.remembered(&key, t0()));
        // Order and repetition of scopes do not matter ...
        let reordered = vec![
            "offline_access".to_owned(),
            "mcp".to_owned(),
            "mcp".to_owned(),
        ];
        assert!(consents.remembered(
            &consent_key("t", "o", "client-a", "http://127.0.0.1/cb", &reordered),
            t0()
        ));
        // ... but another client, redirect, scope set or user asks again.
        for other in [
            consent_key("t", "o", "client-b", "http://127.0.0.1/cb", &scopes),
            consent_key("t", "o", "client-a", "http://127.0.0.1/other", &scopes),
            consent_key(
                "t",
                "o",
                "client-a",
                "http://127.0.0.1/cb",
                &["mcp".to_owned()],
            ),
            consent_key("t", "someone", "client-a", "http://127.0.0.1/cb", &scopes),
        ] {
            assert!(!consents.remembered(&other, t0()));
        }
        assert!(!consents.remembered(&key, t0() + secs(3600)));
        // The parts are length-prefixed: no two splits collide.
        assert_ne!(
            consent_key("ab", "c", "", "", &[]),
            consent_key("a", "bc", "", "", &[])
        );
    }

    #[test]
    fn a_transaction_is_taken_once_by_the_browser_that_started_it() {
        let mut consents = Consents::default();
        let transaction = Transaction {
            request: request("a"),
            verifier: "sealed".into(),
            nonce: "n".into(),
            browser: handle_hash("cookie"),
            expires: t0() + secs(600),
        };
        let state = handle_hash("state-1");
        consents.begin(state.clone(), transaction.clone());
        assert_eq!(
            consents.finish(&state, Some(&handle_hash("other-cookie")), t0()),
            Err(ConsentError::OtherBrowser)
        );
        // A wrong browser burns it too: no second try with the same state.
        assert_eq!(
            consents.finish(&state, Some(&handle_hash("cookie")), t0()),
            Err(ConsentError::UnknownTransaction)
        );
        consents.begin(state.clone(), transaction.clone());
        assert_eq!(
            consents
                .finish(&state, Some(&handle_hash("cookie")), t0())
                .unwrap(),
            transaction
        );
        assert_eq!(
            consents.finish(&state, Some(&handle_hash("cookie")), t0()),
            Err(ConsentError::UnknownTransaction)
        );
        consents.begin(state.clone(), transaction);
        assert_eq!(
            consents.finish(&state, Some(&handle_hash("cookie")), t0() + secs(600)),
            Err(ConsentError::UnknownTransaction)
        );
        assert_eq!(
            consents.finish(&handle_hash("never"), None, t0()),
            Err(ConsentError::UnknownTransaction)
        );
    }
}
