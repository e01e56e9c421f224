//! Signing keys: discovery, JWKS fetch, cache by `kid`, refresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::AuthError;
use super::config::IdentityConfig;

/// Per-request limit for discovery and JWKS fetches.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Smallest accepted RSA modulus.
const MIN_RSA_BITS: usize = 2048;
/// First retry delay while some tenant has no keys; doubles up to
/// `MAX_RETRY` (and never beyond `jwks_refresh`).
const FIRST_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// A published key, with the tenants whose JWKS published it.
pub(crate) struct KeyEntry {
    pub(crate) key: DecodingKey,
    pub(crate) tenants: BTreeSet<String>,
}

/// Result of a cache lookup.
enum Lookup {
    Found(Arc<KeyEntry>),
    Unknown,
    NoKeys,
}

/// RSA public key material of one JWKS entry.
#[derive(Clone, PartialEq, Eq)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Default)]
struct TenantState {
    jwks_uri: Option<String>,
    /// A key set was loaded at least once.
    loaded: bool,
    last_error: Option<String>,
}

#[derive(Default)]
struct State {
    tenants: BTreeMap<String, TenantState>,
    /// Last good key set per JWKS URL.
    sets: BTreeMap<String, BTreeMap<String, RsaKey>>,
    /// `kid` → key, merged from `sets`.
    index: HashMap<String, Arc<KeyEntry>>,
}

/// The key cache shared by the authenticator and its refresh task.
pub(crate) struct KeyCache {
    http: reqwest::Client,
    tenants: Vec<String>,
    /// (discovery URL, expected v2 issuer) per tenant.
    discovery: BTreeMap<String, (String, String)>,
    /// Whether discovery may point at plain-http JWKS (loopback dev issuer).
    allow_http: bool,
    cooldown: Duration,
    state: RwLock<State>,
    /// Serializes refreshes (background, on-demand, explicit).
    refreshing: tokio::sync::Mutex<()>,
    /// Time of the last refresh caused by an unknown `kid`; holding it
    /// makes concurrent unknown-kid requests wait for one refresh.
    unknown_kid_gate: tokio::sync::Mutex<Option<Instant>>,
    jwks_fetches: AtomicU64,
}

impl KeyCache {
    pub(crate) fn new(config: &IdentityConfig, http: reqwest::Client) -> Self {
        let discovery = config
            .tenants
            .iter()
            .map(|t| (t.clone(), (config.discovery_url(t), config.v2_issuer(t))))
            .collect();
        let state = State {
            tenants: config
                .tenants
                .iter()
                .map(|t| (t.clone(), TenantState::default()))
                .collect(),
            ..State::default()
        };
        Self {
            http,
            tenants: config.tenants.clone(),
            discovery,
            allow_http: config.authority_base().starts_with("http://"),
            cooldown: config.unknown_kid_cooldown,
            state: RwLock::new(state),
            refreshing: tokio::sync::Mutex::new(()),
            unknown_kid_gate: tokio::sync::Mutex::new(None),
            jwks_fetches: AtomicU64::new(0),
        }
    }

    pub(crate) fn jwks_fetches(&self) -> u64 {
        self.jwks_fetches.load(Ordering::Relaxed)
    }

    pub(crate) fn note_no_runtime(&self) {
        self.update(|state| {
            for tenant in state.tenants.values_mut() {
                tenant.last_error = Some("no Tokio runtime for the background refresh".into());
            }
        });
    }

    pub(crate) fn ready(&self) -> Result<(), String> {
        let state = self.read();
        let problems: Vec<String> = self
            .tenants
            .iter()
            .filter_map(|tenant| {
                let status = state.tenants.get(tenant);
                if status.is_some_and(|s| s.loaded) {
                    return None;
                }
                Some(match status.and_then(|s| s.last_error.as_deref()) {
                    Some(reason) => format!("JWKS for tenant {tenant} not loaded: {reason}"),
                    None => format!("JWKS for tenant {tenant} not loaded yet"),
                })
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn all_loaded(&self) -> bool {
        self.read().tenants.values().all(|t| t.loaded)
    }

    fn lookup(&self, kid: &str) -> Lookup {
        let state = self.read();
        match state.index.get(kid) {
            Some(entry) => Lookup::Found(Arc::clone(entry)),
            None if state.index.is_empty() => Lookup::NoKeys,
            None => Lookup::Unknown,
        }
    }

    /// The key published under `kid` now, if any (no refresh).
    pub(crate) fn current(&self, kid: &str) -> Option<Arc<KeyEntry>> {
        match self.lookup(kid) {
            Lookup::Found(entry) => Some(entry),
            Lookup::Unknown | Lookup::NoKeys => None,
        }
    }

    /// The key for `kid`. An unknown `kid` refreshes the keys, at most once
    /// per cooldown across all callers; callers arriving during that
    /// refresh wait for it instead of starting their own.
    pub(crate) async fn key_for(&self, kid: &str) -> Result<Arc<KeyEntry>, AuthError> {
        if let Lookup::Found(entry) = self.lookup(kid) {
            return Ok(entry);
        }
        {
            let mut last = self.unknown_kid_gate.lock().await;
            if let Lookup::Found(entry) = self.lookup(kid) {
                return Ok(entry);
            }
            let due = last.is_none_or(|at| at.elapsed() >= self.cooldown);
            if due {
                *last = Some(Instant::now());
                debug!("identity: unknown signing key id; refreshing keys");
                self.refresh_all().await;
            }
        }
        match self.lookup(kid) {
            Lookup::Found(entry) => Ok(entry),
            Lookup::Unknown => Err(AuthError::UnknownKid(printable(kid, 64))),
            Lookup::NoKeys => Err(AuthError::KeysUnavailable(match self.ready() {
                Err(reason) => reason,
                Ok(()) => "no signing keys published".into(),
            })),
        }
    }

    /// Discovers missing JWKS URLs, then fetches every distinct JWKS URL
    /// once. A failure keeps the last good key set of that URL.
    pub(crate) async fn refresh_all(&self) {
        let _serial = self.refreshing.lock().await;

        let undiscovered: Vec<String> = {
            let state = self.read();
            self.tenants
                .iter()
                .filter(|t| state.tenants.get(*t).is_none_or(|s| s.jwks_uri.is_none()))
                .cloned()
                .collect()
        };
        for tenant in undiscovered {
            let result = self.discover(&tenant).await;
            self.update(|state| {
                let status = state.tenants.entry(tenant.clone()).or_default();
                match result {
                    Ok(uri) => status.jwks_uri = Some(uri),
                    Err(reason) => {
                        warn!(tenant = %tenant, "identity: discovery failed: {reason}");
                        status.last_error = Some(format!("discovery failed: {reason}"));
                    }
                }
            });
        }

        let by_uri: BTreeMap<String, Vec<String>> = {
            let state = self.read();
            let mut by_uri: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (tenant, status) in &state.tenants {
                if let Some(uri) = &status.jwks_uri {
                    by_uri.entry(uri.clone()).or_default().push(tenant.clone());
                }
            }
            by_uri
        };
        let mut results = Vec::with_capacity(by_uri.len());
        for (uri, tenants) in by_uri {
            let result = self.fetch_jwks(&uri).await;
            results.push((uri, tenants, result));
        }
        // Apply every result and rebuild the index under one lock, so that
        // `ready()` never reports keys the index does not have yet.
        self.update(|state| {
            for (uri, tenants, result) in results {
                match result {
                    Ok(keys) => {
                        info!(jwks_uri = %uri, keys = keys.len(), "identity: signing keys loaded");
                        state.sets.insert(uri, keys);
                        for tenant in tenants {
                            let status = state.tenants.entry(tenant).or_default();
                            status.loaded = true;
                            status.last_error = None;
                        }
                    }
                    Err(reason) => {
                        let kept = if state.sets.contains_key(&uri) {
                            "keeping the last good keys"
                        } else {
                            "no keys loaded yet"
                        };
                        warn!(jwks_uri = %uri, "identity: JWKS refresh failed ({kept}): {reason}");
                        for tenant in tenants {
                            let status = state.tenants.entry(tenant).or_default();
                            status.last_error = Some(reason.clone());
                        }
                    }
                }
            }
            rebuild_index(state);
        });
    }

    async fn discover(&self, tenant: &str) -> Result<String, String> {
        let Some((url, expected_issuer)) = self.discovery.get(tenant) else {
            return Err("tenant is not configured".into());
        };
        let document = self.get_json(url).await?;
        let Some(jwks_uri) = document.get("jwks_uri").and_then(Value::as_str) else {
            return Err(format!("{url}: no jwks_uri in the discovery document"));
        };
        let parsed = Url::parse(jwks_uri).map_err(|e| format!("{url}: bad jwks_uri: {e}"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(format!("{url}: jwks_uri {jwks_uri:?} is not https")),
        }
        let issuer = document.get("issuer").and_then(Value::as_str);
        if issuer != Some(expected_issuer.as_str()) {
            warn!(
                tenant = %tenant,
                "identity: discovery issuer {issuer:?} differs from the expected {expected_issuer:?}"
            );
        }
        Ok(jwks_uri.to_owned())
    }

    async fn fetch_jwks(&self, uri: &str) -> Result<BTreeMap<String, RsaKey>, String> {
        self.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        let document = self.get_json(uri).await?;
        let keys = parse_jwks(&document);
        if keys.is_empty() {
            return Err(format!("{uri}: no usable RSA signing keys"));
        }
        Ok(keys)
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let mut response = self
            .http
            .get(url)
            .timeout(FETCH_TIMEOUT)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(format!(
                "{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(format!(
                    "{url}: document larger than {MAX_DOCUMENT_BYTES} bytes"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-updated
        // in a way that matters (every update replaces whole entries).
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
    }
}

/// Background refresh: every `interval` once all tenants have keys; sooner
/// (with backoff) while some do not. Ends when the cache is dropped.
pub(crate) async fn refresh_loop(cache: Weak<KeyCache>, interval: Duration) {
    let mut retry = FIRST_RETRY;
    loop {
        let delay = {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            cache.refresh_all().await;
            if cache.all_loaded() {
                retry = FIRST_RETRY;
                interval
            } else {
                let delay = retry.min(interval);
                retry = (retry * 2).min(MAX_RETRY);
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// Usable keys of a JWKS document: `kty = RSA`, `use` absent or `sig`,
/// `alg` absent or `RS256`, a `kid`, and a modulus of at least 2048 bits.
fn parse_jwks(document: &Value) -> BTreeMap<String, RsaKey> {
    let Some(keys) = document.get("keys").and_then(Value::as_array) else {
        return BTreeMap::new();
    };
    keys.iter()
        .filter_map(|jwk| {
            let field = |name: &str| jwk.get(name).and_then(Value::as_str);
            if field("kty") != Some("RSA") {
                return None;
            }
            if !matches!(jwk.get("use"), None | Some(Value::Null)) && field("use") != Some("sig") {
                return None;
            }
            if !matches!(jwk.get("alg"), None | Some(Value::Null)) && field("alg") != Some("RS256")
            {
                return None;
            }
            let kid = field("kid").filter(|k| !k.is_empty())?;
            let n = URL_SAFE_NO_PAD.decode(field("n")?).ok()?;
            let e = URL_SAFE_NO_PAD.decode(field("e")?).ok()?;
            let n_bits = modulus_bits(&n);
            if n_bits < MIN_RSA_BITS || e.is_empty() {
                debug!(kid, n_bits, "identity: ignoring unusable JWKS key");
                return None;
            }
            Some((kid.to_owned(), RsaKey { n, e }))
        })
        .collect()
}

fn modulus_bits(n: &[u8]) -> usize {
    let Some(first) = n.iter().position(|b| *b != 0) else {
        return 0;
    };
    (n.len() - first) * 8 - n[first].leading_zeros() as usize
}

/// Merges the key sets into the `kid` index, remembering which tenants
/// published each key. A `kid` published with different material by two
/// URLs keeps the first and is logged.
fn rebuild_index(state: &mut State) {
    let mut merged: HashMap<String, (RsaKey, BTreeSet<String>)> = HashMap::new();
    for (uri, keys) in &state.sets {
        let tenants: BTreeSet<String> = state
            .tenants
            .iter()
            .filter(|(_, s)| s.jwks_uri.as_deref() == Some(uri.as_str()))
            .map(|(t, _)| t.clone())
            .collect();
        for (kid, key) in keys {
            match merged.get_mut(kid) {
                None => {
                    merged.insert(kid.clone(), (key.clone(), tenants.clone()));
                }
                Some((existing, owners)) if existing == key => {
                    owners.extend(tenants.iter().cloned());
                }
                Some(_) => {
                    warn!(kid = %kid, jwks_uri = %uri, "identity: conflicting keys share a kid; ignoring this one");
                }
            }
        }
    }
    state.index = merged
        .into_iter()
        .map(|(kid, (key, tenants))| {
            let entry = KeyEntry {
                key: DecodingKey::from_rsa_raw_components(&key.n, &key.e),
                tenants,
            };
            (kid, Arc::new(entry))
        })
        .collect();
}

/// An error with its causes ("…: connection refused").
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Attacker-controlled text made safe for messages: printable ASCII only,
/// at most `max` characters.
pub(crate) fn printable(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwks_filter_keeps_rsa_signing_keys_only() {
        let mut n = vec![0xC5u8; 256];
        n.insert(0, 0);
        let small = vec![0xC5u8; 128];
        let document = json!({ "keys": [
            { "kty": "RSA", "kid": "a", "n": b64(&n), "e": "AQAB" },
            { "kty": "RSA", "kid": "b", "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB" },
            { "kty": "RSA", "kid": "c", "use": "enc", "n": b64(&n), "e": "AQAB" },
            { "kty": "EC", "kid": "d", "crv": "P-256", "x": "AA", "y": "AA" },
            { "kty": "RSA", "kid": "e", "n": b64(&small), "e": "AQAB" },
            { "kty": "RSA", "n": b64(&n), "e": "AQAB" },
            { "kty": "RSA", "kid": "g", "alg": "RS512", "n": b64(&n), "e": "AQAB" },
            { "kty": "RSA", "kid": "h", "n": "!!", "e": "AQAB" },
        ]});
        let keys = parse_jwks(&document);
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(parse_jwks(&json!({ "nokeys": [] })).is_empty());
    }

    #[test]
    fn modulus_bit_length() {
        assert_eq!(modulus_bits(&[0, 0]), 0);
        assert_eq!(modulus_bits(&[0, 1]), 1);
        assert_eq!(modulus_bits(&[0x80, 0]), 16);
    }

    #[test]
    fn printable_strips_control_and_quotes_survive_only_as_text() {
        assert_eq!(printable("a\u{7}b\nc\u{e9}d", 10), "abcd");
        assert_eq!(printable("abcdef", 3), "abc");
    }

    #[test]
    fn index_binds_keys_to_publishing_tenants() {
        let key = RsaKey {
            n: vec![1; 256],
            e: vec![1, 0, 1],
        };
        let mut state = State::default();
        for (tenant, uri) in [("t1", "u1"), ("t2", "u2"), ("t3", "u1")] {
            state.tenants.insert(
                tenant.into(),
                TenantState {
                    jwks_uri: Some(uri.into()),
                    loaded: true,
                    last_error: None,
                },
            );
        }
        state
            .sets
            .insert("u1".into(), BTreeMap::from([("k".to_owned(), key.clone())]));
        state.sets.insert(
            "u2".into(),
            BTreeMap::from([
                ("k".to_owned(), key.clone()),
                (
                    "x".to_owned(),
                    RsaKey {
                        n: vec![2; 256],
                        e: vec![3],
                    },
                ),
            ]),
        );
        rebuild_index(&mut state);
        let k = state.index.get("k").map(|e| e.tenants.clone());
        assert_eq!(
            k,
            Some(BTreeSet::from(["t1".into(), "t2".into(), "t3".into()]))
        );
        let x = state.index.get("x").map(|e| e.tenants.clone());
        assert_eq!(x, Some(BTreeSet::from(["t2".into()])));
    }
}
