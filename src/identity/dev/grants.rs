//! What the dev issuer remembers between requests of a sign-in, in memory:
//! pending persona-picker sign-ins, authorization codes and refresh
//! tokens, and the `jti`s of the client assertions it accepted (each is
//! single use). Each secret is random and handed out once; only its
//! SHA-256 is kept (of a `jti`, too). Every store is bounded (the oldest
//! entries go first) and forgets entries when they expire; a restart
//! forgets everything, so refresh tokens of an earlier run are refused
//! like unknown ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rsa::sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::claims_request::ClaimsRequest;
use super::scope::Scopes;

/// Lifetime of an authorization code (Entra: about 10 minutes).
pub(super) const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Lifetime of a refresh token (Entra: 90 days).
pub(super) const REFRESH_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Time to pick a persona on the sign-in page.
pub(super) const SIGN_IN_LIFETIME: Duration = Duration::from_secs(600);

const MAX_PENDING: usize = 1_000;
const MAX_CODES: usize = 10_000;
const MAX_REFRESH_TOKENS: usize = 10_000;
const MAX_USED_ASSERTIONS: usize = 10_000;

/// What a user authorized a client to do: every token of the sign-in
/// (codes, refreshes) is minted from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    pub(super) client_id: String,
    /// The user's [`DevUser::name`](super::DevUser::name), looked up again
    /// at every redemption (disabled users are refused, roles are current).
    pub(super) user: String,
    /// The scopes consented to at the authorization endpoint.
    pub(super) scopes: Scopes,
    /// What the `claims` parameter asked for: satisfied authentication
    /// contexts and client capabilities.
    pub(super) claims: ClaimsRequest,
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub(super) struct Code {
    pub(super) grant: Grant,
    /// The `redirect_uri` of the authorization request, as sent.
    pub(super) redirect_uri: String,
    /// The S256 `code_challenge`, if PKCE was used.
    pub(super) code_challenge: Option<String>,
    pub(super) nonce: Option<String>,
    redeemed: bool,
}

impl Code {
    pub(super) fn new(
        grant: Grant,
        redirect_uri: String,
        code_challenge: Option<String>,
        nonce: Option<String>,
    ) -> Self {
        Self {
            grant,
            redirect_uri,
            code_challenge,
            nonce,
            redeemed: false,
        }
    }
}

/// A persona-picker page waiting for its form: the validated
/// authorization request, and the CSRF token the form must carry.
#[derive(Debug, Clone)]
pub(super) struct PendingSignIn<R> {
    pub(super) request: R,
    pub(super) csrf: String,
}

/// Why a code cannot be redeemed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redeem<E> {
    Unknown,
    Expired,
    AlreadyRedeemed,
    /// The caller's check refused it (the code stays unused).
    Refused(E),
}

/// Secrets with an expiry, keyed by the SHA-256 of the secret.
struct Expiring<T> {
    entries: HashMap<[u8; 32], (Instant, T)>,
    capacity: usize,
}

impl<T> Expiring<T> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// Stores `value` under a new random secret and returns the secret.
    fn insert(&mut self, value: T, lifetime: Duration, now: Instant) -> String {
        self.entries.retain(|_, (expires, _)| *expires > now);
        while self.entries.len() >= self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (expires, _))| *expires)
                .map(|(key, _)| *key)
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let secret = random_secret();
        self.entries
            .insert(digest(&secret), (now + lifetime, value));
        secret
    }

    /// The entry of `secret`: `Err(true)` if it expired (and is now
    /// forgotten), `Err(false)` if unknown.
    fn get_mut(&mut self, secret: &str, now: Instant) -> Result<&mut T, bool> {
        let key = digest(secret);
        match self.entries.get(&key) {
            None => return Err(false),
            Some((expires, _)) if *expires <= now => {
                self.entries.remove(&key);
                return Err(true);
            }
            Some(_) => {}
        }
        self.entries.get_mut(&key).map(|(_, v)| v).ok_or(false)
    }

    fn remove(&mut self, secret: &str) -> Option<T> {
        self.entries.remove(&digest(secret)).map(|(_, v)| v)
    }
}

/// The stores, shared by the clones of a [`DevIssuer`].
pub(super) struct Grants<R> {
    pending: Mutex<Expiring<PendingSignIn<R>>>,
    codes: Mutex<Expiring<Code>>,
    refresh_tokens: Mutex<Expiring<Grant>>,
    /// Digests of (client id, `jti`) of accepted client assertions, and
    /// until when each could still be presented.
    used_assertions: Mutex<HashMap<[u8; 32], Instant>>,
}

impl<R> Default for Grants<R> {
    fn default() -> Self {
        Self {
            pending: Mutex::new(Expiring::new(MAX_PENDING)),
            codes: Mutex::new(Expiring::new(MAX_CODES)),
            refresh_tokens: Mutex::new(Expiring::new(MAX_REFRESH_TOKENS)),
            used_assertions: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Clone> Grants<R> {
    /// Remembers a sign-in page; returns its id (the form's `flow`).
    pub(super) fn start_sign_in(&self, pending: PendingSignIn<R>) -> String {
        lock(&self.pending).insert(pending, SIGN_IN_LIFETIME, Instant::now())
    }

    /// The sign-in page `flow`, if it is known, unexpired and `csrf` is its
    /// token; it is forgotten then (a form posts once). `Err(true)`: the
    /// flow exists but the CSRF token is wrong (the flow stays).
    pub(super) fn finish_sign_in(&self, flow: &str, csrf: &str) -> Result<R, bool> {
        let mut pending = lock(&self.pending);
        let entry = pending.get_mut(flow, Instant::now()).map_err(|_| false)?;
        if !bool::from(entry.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
            return Err(true);
        }
        let request = entry.request.clone();
        pending.remove(flow);
        Ok(request)
    }

    /// Issues an authorization code.
    pub(super) fn issue_code(&self, code: Code, lifetime: Duration) -> String {
        lock(&self.codes).insert(code, lifetime, Instant::now())
    }

    /// Redeems `code` once: `check` decides on the unredeemed code (client,
    /// redirect URI, PKCE) under the lock; if it accepts, the code is
    /// marked used, and kept until it expires so that a second redemption
    /// is told so.
    pub(super) fn redeem_code<E>(
        &self,
        code: &str,
        check: impl FnOnce(&Code) -> Result<(), E>,
    ) -> Result<Code, Redeem<E>> {
        let mut codes = lock(&self.codes);
        let entry = codes.get_mut(code, Instant::now()).map_err(|expired| {
            if expired {
                Redeem::Expired
            } else {
                Redeem::Unknown
            }
        })?;
        if entry.redeemed {
            return Err(Redeem::AlreadyRedeemed);
        }
        check(entry).map_err(Redeem::Refused)?;
        entry.redeemed = true;
        Ok(entry.clone())
    }

    /// Issues a refresh token for `grant`.
    pub(super) fn issue_refresh_token(&self, grant: Grant) -> String {
        lock(&self.refresh_tokens).insert(grant, REFRESH_LIFETIME, Instant::now())
    }

    /// Records the `jti` of `client_id`'s client assertion, which could be
    /// presented for `valid_for` more: true the first time, false if it
    /// was already presented (a replay). Bounded: when full, the entry
    /// closest to its end goes first.
    pub(super) fn use_assertion_once(
        &self,
        client_id: &str,
        jti: &str,
        valid_for: Duration,
    ) -> bool {
        let now = Instant::now();
        let key = digest(&format!("{}\n{jti}", client_id.to_ascii_lowercase()));
        let mut used = lock(&self.used_assertions);
        used.retain(|_, until| *until > now);
        if used.contains_key(&key) {
            return false;
        }
        while used.len() >= MAX_USED_ASSERTIONS {
            let Some(soonest) = used
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| *k)
            else {
                break;
            };
            used.remove(&soonest);
        }
        used.insert(key, now + valid_for);
        true
    }

    /// The grant of a refresh token. Like Entra, using a refresh token
    /// does not revoke it: the caller issues a new one beside it.
    /// `Err(true)`: expired; `Err(false)`: unknown.
    pub(super) fn refresh_grant(&self, token: &str) -> Result<Grant, bool> {
        lock(&self.refresh_tokens)
            .get_mut(token, Instant::now())
            .map(|grant| grant.clone())
    }
}

/// Whether `verifier` is the PKCE verifier of the S256 `challenge` (RFC
/// 7636: 43 to 128 unreserved characters, `BASE64URL(SHA256(verifier))`),
/// compared in constant time.
pub(super) fn pkce_s256_matches(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

/// Whether `challenge` has the shape of an S256 challenge (43 base64url
/// characters, a SHA-256 digest).
pub(super) fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 32 random bytes, base64url.
pub(super) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            client_id: "client".into(),
            user: "ada".into(),
            scopes: Scopes::parse(Some("openid")).unwrap(),
            claims: ClaimsRequest::default(),
        }
    }

    fn code() -> Code {
        Code::new(grant(), "http://127.0.0.1/cb".into(), None, None)
    }

    #[test]
    fn codes_redeem_once_and_only_when_the_check_passes() {
        let grants = Grants::<()>::default();
        let secret = grants.issue_code(code(), CODE_LIFETIME);
        assert_eq!(secret.len(), 43);
        let refused = grants.redeem_code(&secret, |_| Err("wrong verifier"));
        assert_eq!(refused.unwrap_err(), Redeem::Refused("wrong verifier"));
        let redeemed = grants.redeem_code::<()>(&secret, |_| Ok(())).unwrap();
        assert_eq!(redeemed.grant, grant());
        assert_eq!(
            grants.redeem_code::<()>(&secret, |_| Ok(())).unwrap_err(),
            Redeem::AlreadyRedeemed
        );
        assert_eq!(
            grants.redeem_code::<()>("nope", |_| Ok(())).unwrap_err(),
            Redeem::Unknown
        );
    }

    #[test]
    fn expired_codes_are_told_apart_and_forgotten() {
        let grants = Grants::<()>::default();
        let secret = grants.issue_code(code(), Duration::ZERO);
        assert_eq!(
            grants.redeem_code::<()>(&secret, |_| Ok(())).unwrap_err(),
            Redeem::Expired
        );
        assert_eq!(
            grants.redeem_code::<()>(&secret, |_| Ok(())).unwrap_err(),
            Redeem::Unknown
        );
    }

    #[test]
    fn stores_are_bounded_oldest_first() {
        let mut store = Expiring::new(2);
        let now = Instant::now();
        let first = store.insert(1, Duration::from_secs(10), now);
        let second = store.insert(2, Duration::from_secs(20), now);
        let third = store.insert(3, Duration::from_secs(30), now);
        assert_eq!(store.get_mut(&first, now), Err(false));
        assert_eq!(store.get_mut(&second, now).copied(), Ok(2));
        assert_eq!(store.get_mut(&third, now).copied(), Ok(3));
        assert_eq!(store.entries.len(), 2);
    }

    #[test]
    fn sign_ins_finish_once_with_their_csrf_token() {
        let grants = Grants::<u8>::default();
        let flow = grants.start_sign_in(PendingSignIn {
            request: 7,
            csrf: "token".into(),
        });
        assert_eq!(grants.finish_sign_in(&flow, "wrong"), Err(true));
        assert_eq!(grants.finish_sign_in(&flow, ""), Err(true));
        assert_eq!(grants.finish_sign_in(&flow, "token"), Ok(7));
        assert_eq!(grants.finish_sign_in(&flow, "token"), Err(false));
    }

    #[test]
    fn refresh_tokens_stay_valid_after_use() {
        let grants = Grants::<()>::default();
        let token = grants.issue_refresh_token(grant());
        assert_eq!(grants.refresh_grant(&token), Ok(grant()));
        assert_eq!(grants.refresh_grant(&token), Ok(grant()));
        assert_eq!(grants.refresh_grant("unknown"), Err(false));
    }

    #[test]
    fn assertion_ids_are_single_use_per_client_until_they_lapse() {
        let grants = Grants::<()>::default();
        let minute = Duration::from_secs(60);
        assert!(grants.use_assertion_once("client-a", "jti-1", minute));
        assert!(!grants.use_assertion_once("client-a", "jti-1", minute));
        assert!(!grants.use_assertion_once("CLIENT-A", "jti-1", minute));
        assert!(grants.use_assertion_once("client-a", "jti-2", minute));
        assert!(grants.use_assertion_once("client-b", "jti-1", minute));
        // One whose assertion has lapsed is forgotten (the assertion
        // itself is refused as expired by then).
        assert!(grants.use_assertion_once("client-c", "jti-1", Duration::ZERO));
        assert!(grants.use_assertion_once("client-c", "jti-1", minute));
    }

    #[test]
    fn pkce_s256() {
        // BASE64URL(SHA256(verifier)), computed independently.
        let verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r7wW1gFWFOEjXk";
        let challenge = "6uJB66H-5WprmeoV-wc7KyBIDnresberjsJ43M5w340";
        assert!(is_s256_challenge(challenge));
        assert!(pkce_s256_matches(challenge, verifier));
        assert!(!pkce_s256_matches(challenge, &verifier[1..]));
        assert!(!pkce_s256_matches(challenge, challenge));
        assert!(!is_s256_challenge("short"));
        assert!(!is_s256_challenge(&format!("{}=", &challenge[..42])));
    }
}
