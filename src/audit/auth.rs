//! Authentication events in the audit log (`kind = "auth"`).
//!
//! - **Accepted** sign-ins and session starts ([`Audit::auth_accepted`]):
//!   one record each, with the principal, client app, source IP, user
//!   agent and auth path.
//! - **Refused** tokens at `/mcp`, `/admin` and the OAuth endpoints
//!   ([`Audit::auth_refused`]): the reason, source IP, client app if known
//!   and a keyed hash of the token (HMAC-SHA-256 with the audit HMAC key;
//!   never the token). Refusals are aggregated per (surface, reason, source
//!   IP, client) per interval (`audit.auth_refusal_interval`, default 60 s):
//!   the first refusal of a key in an interval is recorded at once
//!   (`"count": 1`), the rest are counted and recorded as one record when
//!   the interval ends (`"count": n`, `"aggregated": true`, the interval,
//!   up to [`TOKEN_HASHES`] distinct token hashes and how many distinct
//!   tokens there were). A flood of bad tokens cannot flood the log, yet
//!   the counts of all `auth_refused` records add up to every refusal.
//!   At most [`MAX_KEYS`] keys are tallied per interval; beyond that,
//!   refusals go to one overflow key per (surface, reason) without source
//!   or client.
//! - Every refusal is also handed to the risk stage through the hook the
//!   pipeline installs ([`Audit::on_auth_refusal`]): repeated failures from
//!   an address are a finding on the next call from it.
//!
//! An accepted event, and the first refusal of a key, are durable before
//! the caller answers; the other refusals of an interval cost a counter.
//! A failure to append is logged and counted like any other write failure.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use super::Audit;
use super::record::{Actor, Kind, Record, now};
use crate::identity::Principal;

/// Distinct token hashes kept per aggregated record.
pub const TOKEN_HASHES: usize = 8;

/// Keys tallied per interval before refusals go to the overflow keys.
pub const MAX_KEYS: usize = 10_000;

/// Where a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    /// The MCP endpoint.
    Mcp,
    /// The approvals page's sign-in.
    Admin,
    /// Warden's OAuth authorization server (the facade).
    OAuth,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Mcp => "mcp",
            Surface::Admin => "admin",
            Surface::OAuth => "oauth",
        }
    }

    /// `details.auth_path` of its records: how the caller authenticates
    /// there.
    fn auth_path(self) -> &'static str {
        match self {
            Surface::Mcp => "bearer_token",
            Surface::Admin => "admin_page",
            Surface::OAuth => "oauth_facade",
        }
    }
}

/// A refused token or sign-in.
#[derive(Debug, Clone, Default)]
pub struct Refusal<'a> {
    /// `details.event`, e.g. `token_refused`, `sign_in_refused`.
    pub event: &'a str,
    /// A short, stable reason (e.g. `expired`, `bad_signature`).
    pub reason: &'a str,
    pub source_ip: Option<IpAddr>,
    /// The client app, when known (a facade client id, the token's `azp`).
    pub client: Option<&'a str>,
    /// The token or code presented, hashed before it is kept.
    pub token: Option<&'a str>,
    /// What went wrong, in words (not part of the aggregation key).
    pub detail: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// More details (e.g. the admin page's sign-in method; not part of the
    /// aggregation key).
    pub extra: Option<Value>,
}

/// An accepted sign-in or session start.
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    /// `details.event`, e.g. `session_started`, `signed_in`.
    pub event: &'a str,
    pub surface: Surface,
    pub principal: &'a Principal,
    /// The client app, when the principal does not name one.
    pub client: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// The MCP session, for a session start.
    pub session: Option<&'a str>,
    /// Anything else worth keeping (e.g. the admin page's sign-in method).
    pub extra: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    surface: Surface,
    event: String,
    reason: String,
    source_ip: Option<IpAddr>,
    client: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    /// Refusals since the one recorded at once.
    count: u64,
    first: Option<String>,
    last: Option<String>,
    tokens: BTreeSet<String>,
    distinct_tokens: u64,
    user_agent: Option<String>,
    detail: Option<String>,
    extra: Option<Value>,
}

/// What the risk stage is told of each refusal: the source address and
/// the time (Unix seconds).
pub type RefusalHook = Box<dyn Fn(Option<IpAddr>, i64) + Send + Sync>;

/// The refusals of the current interval.
#[derive(Default)]
pub(super) struct Refusals {
    tallies: Mutex<HashMap<Key, Tally>>,
    started: Mutex<Option<String>>,
    /// The risk stage's hook (source address, Unix seconds).
    hook: std::sync::OnceLock<RefusalHook>,
}

impl Refusals {
    fn tallies(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Tally>> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn refusal_record(key: &Key, details: Value, extra: Option<Value>) -> Record {
    let mut record = Record::new(Kind::Auth);
    record.source_ip = key.source_ip.map(|ip| ip.to_string());
    let mut d = json!({
        "event": key.event,
        "surface": key.surface.as_str(),
        "auth_path": key.surface.auth_path(),
        "reason": key.reason,
        "client_id": key.client,
    });
    if let Some(d) = d.as_object_mut() {
        for more in [Some(details), extra].into_iter().flatten() {
            if let Value::Object(more) = more {
                d.extend(more);
            }
        }
    }
    record.details = Some(d);
    record
}

impl Audit {
    /// The keyed hash of a presented token: `hmac-sha256:<hex>`.
    pub fn token_hash(&self, token: &str) -> String {
        self.redactor.digest(&Value::String(token.to_owned()))
    }

    /// Installs the risk stage's hook, called with every refusal's source
    /// address and time (once; later calls are ignored).
    pub fn on_auth_refusal(&self, hook: RefusalHook) {
        let _ = self.refusals.hook.set(hook);
    }

    /// Records an accepted sign-in or session start (see the module).
    pub async fn auth_accepted(&self, event: Accepted<'_>) {
        let mut record = Record::new(Kind::Auth);
        let mut actor = Actor::from(event.principal);
        if actor.client_app.is_none() {
            actor.client_app = event.client.map(str::to_owned);
        }
        let auth_path = match event.surface {
            Surface::Mcp => actor
                .auth_path
                .clone()
                .unwrap_or_else(|| "entra_token".to_owned()),
            surface => surface.auth_path().to_owned(),
        };
        record.principal = Some(actor);
        record.source_ip = event.principal.source_ip.map(|ip| ip.to_string());
        record.user_agent = event.user_agent.map(str::to_owned);
        record.session_id = event.session.map(str::to_owned);
        let mut details = json!({
            "event": event.event,
            "surface": event.surface.as_str(),
            "auth_path": auth_path,
            "client_id": event.client,
        });
        if let (Some(d), Some(Value::Object(more))) = (details.as_object_mut(), event.extra) {
            d.extend(more);
        }
        record.details = Some(details);
        self.append_auth(record, event.event).await;
    }

    /// Counts a refused token or sign-in; records it (and waits for the
    /// record) only if it is the first of its key in this interval (see
    /// the module).
    pub async fn auth_refused(&self, surface: Surface, refusal: Refusal<'_>) {
        if let Some(hook) = self.refusals.hook.get() {
            hook(refusal.source_ip, chrono::Utc::now().timestamp());
        }
        let token = refusal.token.map(|t| self.token_hash(t));
        let at = now();
        self.refusals
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| at.clone());
        let mut key = Key {
            surface,
            event: refusal.event.to_owned(),
            reason: refusal.reason.to_owned(),
            source_ip: refusal.source_ip,
            client: refusal.client.map(str::to_owned),
        };
        let first = {
            let mut tallies = self.refusals.tallies();
            if !tallies.contains_key(&key) && tallies.len() >= MAX_KEYS {
                key.source_ip = None;
                key.client = None;
            }
            match tallies.get_mut(&key) {
                Some(tally) => {
                    tally.count += 1;
                    tally.first.get_or_insert_with(|| at.clone());
                    tally.last = Some(at.clone());
                    if let Some(token) = &token
                        && !tally.tokens.contains(token)
                    {
                        tally.distinct_tokens += 1;
                        if tally.tokens.len() < TOKEN_HASHES {
                            tally.tokens.insert(token.clone());
                        }
                    }
                    tally.user_agent = refusal.user_agent.map(str::to_owned);
                    tally.detail = refusal.detail.map(str::to_owned);
                    tally.extra = refusal.extra.clone();
                    false
                }
                None => {
                    tallies.insert(key.clone(), Tally::default());
                    true
                }
            }
        };
        if first {
            let mut record = refusal_record(
                &key,
                json!({
                    "count": 1,
                    "token_hash": token,
                    "detail": refusal.detail,
                }),
                refusal.extra,
            );
            record.user_agent = refusal.user_agent.map(str::to_owned);
            self.append_auth(record, refusal.event).await;
        }
    }

    /// Ends the refusal interval: one record per key refused again since
    /// its first record, then a fresh interval. Called by the maintenance
    /// task every `audit.auth_refusal_interval` and when the log closes.
    pub async fn flush_auth_refusals(&self) {
        let started = self
            .refusals
            .started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(now());
        let tallies = std::mem::take(&mut *self.refusals.tallies());
        for (key, tally) in tallies {
            if tally.count == 0 {
                continue;
            }
            let mut record = refusal_record(
                &key,
                json!({
                    "count": tally.count,
                    "aggregated": true,
                    "interval_start": started,
                    "first": tally.first,
                    "last": tally.last,
                    "token_hashes": tally.tokens,
                    "distinct_tokens": tally.distinct_tokens,
                    "detail": tally.detail,
                }),
                tally.extra,
            );
            record.user_agent = tally.user_agent;
            if let Err(error) = self.append(record).await {
                tracing::error!(%error, event = %key.event, count = tally.count, "authentication refusals not recorded");
            }
        }
    }

    async fn append_auth(&self, record: Record, event: &str) {
        if let Err(error) = self.append(record).await {
            tracing::error!(%error, event, "authentication event not recorded");
        }
    }
}
