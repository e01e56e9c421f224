//! Rate limits (`[limits]`): token buckets in front of the pipeline and at
//! the HTTP front (docs/LIMITS.md is the user's reference).
//!
//! Four limits, each a bucket per key:
//!
//! | limit | key | checked |
//! |---|---|---|
//! | `principal` | `tid`, `oid` | every `tools/call`, first thing in the pipeline |
//! | `principal_tool` | `tid`, `oid`, the tool as the client named it | every `tools/call` |
//! | `client_app` | `tid`, the client application (`azp` / `appid`), when the token names one | every `tools/call` |
//! | `source_address` | the connection's address (an IPv6 address by its /64) | every `/mcp` request, before authentication |
//!
//! A bucket is a GCRA (generic cell rate algorithm) cell: one number, the
//! theoretical arrival time `tat` of the next token, in nanoseconds of a
//! monotonic [`Clock`]. Tokens come every `interval = per / rate`; a
//! request is admitted while `tat - now <= (burst - 1) * interval`, and
//! takes one token (`tat += interval`). A bucket whose `tat` is in the past
//! is full, the same as no bucket, so it is forgotten. Consumption other
//! replicas report ([`shared`]) is *debited*: `tat` moves on without a
//! check, so a bucket may go into debt, which lengthens the wait.
//!
//! A call is admitted only if every limit that applies to it has a token,
//! and then takes one from each (under one lock): a refused call takes
//! nothing. The refusal names the limit with the longest wait.
//!
//! Keys are SHA-256 digests (truncated to 16 bytes) of the limit and its
//! parts, so a bucket's size does not depend on what a client sent, and
//! the shared table holds no principal ids, tool names or addresses.
//! Each of the two tables (calls; addresses) holds at most
//! `max_buckets`; when one is full, full buckets are forgotten first, then
//! the eighth of them closest to full (a forgotten bucket starts full).

pub mod shared;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::call::Principal;
use crate::metrics::Metrics;
use crate::store::Location;

/// The JSON-RPC error code of a rate-limited request (in the range
/// JSON-RPC leaves to servers, -32000 to -32099).
pub const RATE_LIMITED: i32 = -32029;

/// A refused request is logged at most this often per key (the front's
/// floods): once a minute.
const NOTE_EVERY: u64 = 60_000_000_000;

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `false`: no limit is checked (and nothing is shared).
    pub enabled: bool,
    /// `tools/call`s of one principal (`tid`, `oid`).
    pub principal: Rate,
    /// `tools/call`s of one tool by one principal.
    pub principal_tool: Rate,
    /// `tools/call`s from one client application (`azp` / `appid`) in one
    /// tenant.
    pub client_app: Rate,
    /// `/mcp` requests from one address (an IPv6 address by its /64),
    /// before authentication.
    pub source_address: Rate,
    /// On PostgreSQL: how often a replica publishes what it admitted and
    /// debits what the others did.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Most buckets of each table (calls; addresses).
    pub max_buckets: usize,
}

/// One limit: `rate` tokens every `per`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added every `per` (at least 1).
    #[serde(default)]
    pub rate: u64,
    /// Default one minute.
    #[serde(default = "one_minute", with = "humantime_serde")]
    pub per: Duration,
    /// The bucket's size: how many requests may come at once. Default
    /// `rate`.
    #[serde(default)]
    pub burst: Option<u64>,
    /// `false`: this limit is not checked.
    #[serde(default = "on")]
    pub enabled: bool,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

fn on() -> bool {
    true
}

impl Rate {
    const fn per_minute(rate: u64, burst: u64) -> Rate {
        Rate {
            rate,
            per: Duration::from_secs(60),
            burst: Some(burst),
            enabled: true,
        }
    }

    /// The bucket's size.
    pub fn burst(&self) -> u64 {
        self.burst.unwrap_or(self.rate)
    }

    fn validate(&self, key: &str) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.rate == 0 {
            return Err(format!(
                "limits.{key}.rate: must be at least 1 (or set enabled = false), \
                 e.g. {key} = {{ rate = 600, per = \"1m\", burst = 100 }}"
            ));
        }
        if self.per < Duration::from_secs(1) || self.per > Duration::from_secs(86_400) {
            return Err(format!(
                "limits.{key}.per: from 1s to 24h (got {})",
                humantime::format_duration(self.per)
            ));
        }
        if self.per.as_nanos() / u128::from(self.rate) < 1_000 {
            return Err(format!(
                "limits.{key}.rate: at most 1000000 per second (got {} per {})",
                self.rate,
                humantime::format_duration(self.per)
            ));
        }
        if !(1..=1_000_000).contains(&self.burst()) {
            return Err(format!(
                "limits.{key}.burst: from 1 to 1000000 (got {})",
                self.burst()
            ));
        }
        let refill = self.per.as_secs_f64() * self.burst() as f64 / self.rate as f64;
        if refill > 366.0 * 86_400.0 {
            return Err(format!(
                "limits.{key}.burst: an empty bucket must refill within a year \
                 (burst x per / rate; got {} days)",
                (refill / 86_400.0).round()
            ));
        }
        Ok(())
    }
}

impl Default for LimitsConfig {
    /// Limits a quiet tenant never meets: a person's agent makes a few
    /// calls a second at most; a script an order of magnitude more.
    fn default() -> Self {
        Self {
            enabled: true,
            principal: Rate::per_minute(3_000, 1_000),
            principal_tool: Rate::per_minute(1_200, 600),
            client_app: Rate::per_minute(30_000, 6_000),
            source_address: Rate::per_minute(12_000, 3_000),
            sync_interval: Duration::from_secs(1),
            max_buckets: 100_000,
        }
    }
}

impl LimitsConfig {
    /// Checks every key, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for limit in Limit::ALL {
            self.rate(limit).validate(limit.as_str())?;
        }
        if self.sync_interval < Duration::from_millis(100)
            || self.sync_interval > Duration::from_secs(60)
        {
            return Err(format!(
                "limits.sync_interval: from 100ms to 60s (got {})",
                humantime::format_duration(self.sync_interval)
            ));
        }
        if !(100..=10_000_000).contains(&self.max_buckets) {
            return Err(format!(
                "limits.max_buckets: from 100 to 10000000 (got {})",
                self.max_buckets
            ));
        }
        Ok(())
    }

    /// The configuration of `limit`.
    pub fn rate(&self, limit: Limit) -> &Rate {
        match limit {
            Limit::Principal => &self.principal,
            Limit::PrincipalTool => &self.principal_tool,
            Limit::ClientApp => &self.client_app,
            Limit::SourceAddress => &self.source_address,
        }
    }
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Principal,
    PrincipalTool,
    ClientApp,
    SourceAddress,
}

impl Limit {
    pub const ALL: [Limit; 4] = [
        Limit::Principal,
        Limit::PrincipalTool,
        Limit::ClientApp,
        Limit::SourceAddress,
    ];

    /// The name in `[limits]`, in metrics and in refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Principal => "principal",
            Limit::PrincipalTool => "principal_tool",
            Limit::ClientApp => "client_app",
            Limit::SourceAddress => "source_address",
        }
    }

    /// What the limit counts, for people.
    fn counts(self) -> &'static str {
        match self {
            Limit::Principal => "tool calls by this principal",
            Limit::PrincipalTool => "calls of this tool by this principal",
            Limit::ClientApp => "tool calls from this client application",
            Limit::SourceAddress => "requests from this address",
        }
    }

    fn code(self) -> u8 {
        match self {
            Limit::Principal => 1,
            Limit::PrincipalTool => 2,
            Limit::ClientApp => 3,
            Limit::SourceAddress => 4,
        }
    }

    fn from_code(code: u8) -> Option<Limit> {
        Limit::ALL.into_iter().find(|l| l.code() == code)
    }
}

/// A bucket's key: the limit and a digest of what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    limit: Limit,
    digest: [u8; 16],
}

impl Key {
    /// The key of `limit` for `parts` (each length-prefixed, so no two
    /// lists of parts share a key).
    pub fn new(limit: Limit, parts: &[&str]) -> Key {
        let mut hash = Sha256::new();
        hash.update([limit.code()]);
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&hash.finalize()[..16]);
        Key { limit, digest }
    }

    /// The key of an address: an IPv4 address (also one mapped into IPv6)
    /// on its own, an IPv6 address by its /64 (what one host is usually
    /// given).
    pub fn address(ip: IpAddr) -> Key {
        let text = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                format!("{}/64", std::net::Ipv6Addr::from(octets))
            }
        };
        Key::new(Limit::SourceAddress, &[&text])
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// 17 bytes: the limit's code, then the digest (the shared table's
    /// `key`).
    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(17);
        bytes.push(self.limit.code());
        bytes.extend_from_slice(&self.digest);
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Key> {
        let (&code, digest) = bytes.split_first()?;
        Some(Key {
            limit: Limit::from_code(code)?,
            digest: digest.try_into().ok()?,
        })
    }
}

/// Nanoseconds on a monotonic clock (from an arbitrary origin).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> u64;
}

/// The process's monotonic clock, from when it was made.
pub struct Monotonic(Instant);

impl Default for Monotonic {
    fn default() -> Self {
        Monotonic(Instant::now())
    }
}

impl Clock for Monotonic {
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A limit's arithmetic (GCRA), in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Time between two tokens: `per / rate`.
    interval: u64,
    /// How far ahead of now `tat` may be for a request to be admitted:
    /// `(burst - 1) * interval`.
    tolerance: u64,
}

impl Spec {
    pub fn new(rate: &Rate) -> Spec {
        let interval = u64::try_from(rate.per.as_nanos() / u128::from(rate.rate.max(1)))
            .unwrap_or(u64::MAX)
            .max(1);
        Spec {
            interval,
            tolerance: interval.saturating_mul(rate.burst().max(1) - 1),
        }
    }

    /// How long until a request is admitted, or `None` if one is now.
    pub fn wait(&self, tat: u64, now: u64) -> Option<u64> {
        let ahead = tat.max(now) - now;
        (ahead > self.tolerance).then(|| ahead - self.tolerance)
    }

    /// `tat` after `tokens` are taken at `now` (without a check: a debit
    /// may go into debt).
    pub fn take(&self, tat: u64, now: u64, tokens: u64) -> u64 {
        tat.max(now)
            .saturating_add(self.interval.saturating_mul(tokens))
    }
}

/// One bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tat: u64,
    /// Tokens taken here that the other replicas have not been told of.
    unpublished: u64,
    /// When a refusal was last logged.
    noted: Option<u64>,
}

/// Buckets of one kind of request, bounded.
struct Table {
    buckets: HashMap<Key, Bucket>,
    cap: usize,
    /// Buckets evicted (not full) since last reported, by limit.
    evicted: [u64; 4],
}

impl Table {
    fn new(cap: usize) -> Table {
        Table {
            buckets: HashMap::new(),
            cap,
            evicted: [0; 4],
        }
    }

    fn tat(&self, key: &Key, now: u64) -> u64 {
        self.buckets.get(key).map_or(now, |b| b.tat)
    }

    /// The bucket of `key`, made (full) if there is none; room is made
    /// first when the table is full.
    fn slot(&mut self, key: Key, now: u64) -> &mut Bucket {
        if self.buckets.len() >= self.cap && !self.buckets.contains_key(&key) {
            self.make_room(now);
        }
        self.buckets.entry(key).or_insert(Bucket {
            tat: now,
            unpublished: 0,
            noted: None,
        })
    }

    /// Forgets full buckets; if that is not enough, the eighth closest to
    /// full (counted in `evicted`).
    fn make_room(&mut self, now: u64) {
        self.sweep(now);
        if self.buckets.len() < self.cap {
            return;
        }
        let mut by_tat: Vec<(u64, Key)> = self.buckets.iter().map(|(k, b)| (b.tat, *k)).collect();
        let n = (by_tat.len() / 8).max(1);
        by_tat.select_nth_unstable_by_key(n - 1, |(tat, _)| *tat);
        for (_, key) in &by_tat[..n] {
            self.buckets.remove(key);
            self.evicted[index(key.limit)] += 1;
        }
    }

    /// Forgets full buckets with nothing left to publish.
    fn sweep(&mut self, now: u64) {
        self.buckets.retain(|_, b| b.tat > now || b.unpublished > 0);
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    pub limit: Limit,
    /// How long until the request would be admitted.
    pub retry_after: Duration,
    /// The limit's configuration, for the message.
    pub rate: Rate,
}

impl Limited {
    /// Whole seconds to wait, rounded up, at least 1 (`Retry-After`,
    /// `retry_after_s`).
    pub fn retry_after_s(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// What the client is told.
    pub fn message(&self) -> String {
        format!(
            "Rate limited by Warden: too many {} (limit \"{}\": {} per {}, {} at once). \
             Retry after {} s.",
            self.limit.counts(),
            self.limit.as_str(),
            self.rate.rate,
            humantime::format_duration(self.rate.per),
            self.rate.burst(),
            self.retry_after_s()
        )
    }

    /// The JSON-RPC error's `data`.
    pub fn data(&self) -> Value {
        json!({
            "reason": "rate_limited",
            "limit": self.limit.as_str(),
            "retry_after_s": self.retry_after_s(),
        })
    }

    /// The front's answer: `429 Too Many Requests` with `Retry-After` and
    /// a JSON-RPC error body.
    pub fn http_response(&self) -> axum::response::Response {
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::IntoResponse;
        let body = json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": RATE_LIMITED, "message": self.message(), "data": self.data()},
        });
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_s()));
        response
    }
}

/// The rate limits of one replica.
pub struct Limits {
    config: LimitsConfig,
    /// Per limit (by [`Limit::ALL`]'s order), `None` when it is off.
    specs: [Option<Spec>; 4],
    calls: Mutex<Table>,
    addresses: Mutex<Table>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// Whether what is admitted is published to other replicas.
    shared: AtomicBool,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn index(limit: Limit) -> usize {
    match limit {
        Limit::Principal => 0,
        Limit::PrincipalTool => 1,
        Limit::ClientApp => 2,
        Limit::SourceAddress => 3,
    }
}

impl Limits {
    /// The limits `config` sets, on the process's monotonic clock.
    pub fn new(config: LimitsConfig, metrics: Metrics) -> Limits {
        Self::with_clock(config, metrics, Arc::new(Monotonic::default()))
    }

    /// The limits `config` sets, on `clock`.
    pub fn with_clock(config: LimitsConfig, metrics: Metrics, clock: Arc<dyn Clock>) -> Limits {
        let specs = Limit::ALL.map(|limit| {
            let rate = config.rate(limit);
            (config.enabled && rate.enabled).then(|| Spec::new(rate))
        });
        Limits {
            calls: Mutex::new(Table::new(config.max_buckets)),
            addresses: Mutex::new(Table::new(config.max_buckets)),
            specs,
            config,
            clock,
            metrics,
            shared: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    fn spec(&self, limit: Limit) -> Option<Spec> {
        self.specs[index(limit)]
    }

    fn table(&self, limit: Limit) -> MutexGuard<'_, Table> {
        let table = match limit {
            Limit::SourceAddress => &self.addresses,
            _ => &self.calls,
        };
        table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a `tools/call` of `tool` by `principal` (taking a token from
    /// each limit that applies), or says which limit refuses it and for
    /// how long. A refused call takes nothing.
    pub fn admit_call(&self, principal: &Principal, tool: &str) -> Result<(), Limited> {
        let (tid, oid) = (principal.tid.as_str(), principal.oid.as_str());
        let keys = [
            Some(Key::new(Limit::Principal, &[tid, oid])),
            Some(Key::new(Limit::PrincipalTool, &[tid, oid, tool])),
            principal
                .client_app
                .as_deref()
                .map(|app| Key::new(Limit::ClientApp, &[tid, app])),
        ];
        let keys: Vec<(Key, Spec)> = keys
            .into_iter()
            .flatten()
            .filter_map(|key| Some((key, self.spec(key.limit)?)))
            .collect();
        self.admit(&keys).map_err(|(limited, _)| limited)
    }

    /// Admits one `/mcp` request from `ip`, or says for how long it is
    /// refused. A refusal is logged at most once a minute per address.
    pub fn admit_address(&self, ip: IpAddr) -> Result<(), Limited> {
        let Some(spec) = self.spec(Limit::SourceAddress) else {
            return Ok(());
        };
        let refused = self.admit(&[(Key::address(ip), spec)]);
        if let Err((limited, true)) = &refused {
            tracing::warn!(
                target: "warden::limits",
                source_ip = %ip,
                retry_after_s = limited.retry_after_s(),
                "requests from this address are over the source_address rate limit and refused \
                 with 429 (logged once a minute per address)"
            );
        }
        refused.map_err(|(limited, _)| limited)
    }

    /// Every bucket in `keys` gives a token, or none does: the refusal
    /// names the longest wait, and whether it is time to log it.
    fn admit(&self, keys: &[(Key, Spec)]) -> Result<(), (Limited, bool)> {
        let Some((first, _)) = keys.first() else {
            return Ok(());
        };
        let now = self.clock.now();
        let shared = self.shared.load(Ordering::Relaxed);
        let mut table = self.table(first.limit);
        let worst = keys
            .iter()
            .filter_map(|(key, spec)| Some((*key, spec.wait(table.tat(key, now), now)?)))
            .max_by_key(|(_, wait)| *wait);
        if let Some((key, wait)) = worst {
            let mut noted = false;
            if let Some(bucket) = table.buckets.get_mut(&key)
                && bucket
                    .noted
                    .is_none_or(|at| now.saturating_sub(at) >= NOTE_EVERY)
            {
                bucket.noted = Some(now);
                noted = true;
            }
            drop(table);
            self.metrics.limits.limited(key.limit.as_str());
            return Err((
                Limited {
                    limit: key.limit,
                    retry_after: Duration::from_nanos(wait),
                    rate: *self.config.rate(key.limit),
                },
                noted,
            ));
        }
        for (key, spec) in keys {
            let bucket = table.slot(*key, now);
            bucket.tat = spec.take(bucket.tat, now, 1);
            if shared {
                bucket.unpublished += 1;
            }
        }
        self.report_evictions(table);
        Ok(())
    }

    /// Counts the buckets `table` evicted since it was last asked.
    fn report_evictions(&self, mut table: MutexGuard<'_, Table>) {
        let evicted = std::mem::take(&mut table.evicted);
        drop(table);
        for limit in Limit::ALL {
            if evicted[index(limit)] > 0 {
                self.metrics
                    .limits
                    .evicted(limit.as_str(), evicted[index(limit)]);
            }
        }
    }

    /// Takes what other replicas admitted from this replica's buckets
    /// (making a bucket, in debt, for a key this replica has not seen).
    pub fn debit(&self, debits: &[(Key, u64)]) {
        let now = self.clock.now();
        for (key, tokens) in debits {
            let Some(spec) = self.spec(key.limit) else {
                continue;
            };
            let mut table = self.table(key.limit);
            let bucket = table.slot(*key, now);
            bucket.tat = spec.take(bucket.tat, now, *tokens);
            self.report_evictions(table);
            self.metrics.limits.debited(key.limit.as_str(), *tokens);
        }
    }

    /// The tokens taken since the last call, by key, to be published; they
    /// count as published from now on (see [`Limits::restore`]).
    pub fn drain(&self) -> Vec<(Key, u64)> {
        let mut taken = Vec::new();
        for table in [&self.calls, &self.addresses] {
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, bucket) in &mut table.buckets {
                if bucket.unpublished > 0 {
                    taken.push((*key, std::mem::take(&mut bucket.unpublished)));
                }
            }
        }
        taken
    }

    /// Gives back tokens [`Limits::drain`] returned that could not be
    /// published, so the next attempt includes them.
    pub fn restore(&self, taken: Vec<(Key, u64)>) {
        let now = self.clock.now();
        for (key, tokens) in taken {
            let mut table = self.table(key.limit);
            table.slot(key, now).unpublished += tokens;
            self.report_evictions(table);
        }
    }

    /// Forgets the buckets that are full (and have nothing to publish),
    /// and reports how many are tracked.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let mut counts = [0i64; 4];
        for table in [&self.calls, &self.addresses] {
            let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
            table.sweep(now);
            for key in table.buckets.keys() {
                counts[index(key.limit)] += 1;
            }
        }
        for limit in Limit::ALL {
            self.metrics
                .limits
                .set_buckets(limit.as_str(), counts[index(limit)]);
        }
    }

    /// How many buckets are tracked.
    pub fn buckets(&self) -> usize {
        [&self.calls, &self.addresses]
            .iter()
            .map(|t| {
                t.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .buckets
                    .len()
            })
            .sum()
    }

    /// The background work until `stop`: every `sync_interval`, full
    /// buckets are forgotten; on PostgreSQL (`store`), a thread also
    /// exchanges consumption with the other replicas ([`shared`]).
    pub fn spawn(self: &Arc<Self>, store: &Location, stop: CancellationToken) -> JoinHandle<()> {
        let sync = match store {
            Location::Postgres(url) if self.config.enabled => {
                self.shared.store(true, Ordering::Relaxed);
                Some(shared::Sync::start(self.clone(), url.clone()))
            }
            _ => None,
        };
        let limits = self.clone();
        tokio::spawn(async move {
            let every = limits.config.sync_interval;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                limits.sweep();
            }
            // Stops the exchange (the thread ends after its round).
            drop(sync);
        })
    }
}

#[cfg(test)]
mod tests;
