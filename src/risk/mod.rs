//! Stage 3, score: an explainable risk score for every tool call, from
//! per-principal baselines (pipeline stage 3; docs/ARCHITECTURE.md).
//!
//! [`Risk::assess`] looks at a call with each feature of [`features`] —
//! first-time operation (and how rare among peers), first-time resource
//! group or subscription, new address/network/country, unusual hour, rate
//! spike per class, repeated denials of privileged calls, tokens refused from the same
//! address ([`refusals`]), cost outlier,
//! dormant account, weakened defences — each giving a sub-score 0..100 and
//! a sentence. Sub-scores combine like independent probabilities
//! (`1 - Π(1 - s/100)`), so one strong surprise or several weak ones make
//! a high score and a single weak one does not. Levels: low < 40 ≤ medium
//! < 70 ≤ high < 90 ≤ critical (configurable).
//!
//! Hard floors (the anomaly rules Warden answers to): more than five times
//! the usual deletes in an hour (and at least three) is at least high; a
//! privilege grant that would run without an approval is critical
//! ([`Assessment::unapproved_privilege_grant`], applied by the pipeline
//! once policy has decided).
//!
//! [`Risk::learn`] folds the outcome back in: successful calls teach what
//! is normal; denied calls are remembered as denials (and teach nothing
//! normal); failed calls count as activity only; every attempt but one
//! held for approval (its retry counts) counts toward the last hour's rates. Baselines live in memory and are written
//! to the store behind the calls (see [`Risk::take_dirty`]).

pub mod baseline;
pub mod cost;
pub mod eval;
pub mod features;
pub mod geo;
pub mod refusals;
pub mod replay;
pub mod shared;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::StoreError;

use baseline::{Aggregate, Baseline, Denial, RiskClass, bump, hour_of_week, key_hash};
pub use geo::GeoTable;

/// `[risk]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Score calls (default true). Off: `context.risk` is absent, as are
    /// risk alerts.
    pub enabled: bool,
    /// Half-life of what baselines remember (default 14 days).
    #[serde(with = "humantime_serde")]
    pub half_life: Duration,
    /// Silence after which a principal's return is "dormant account"
    /// (default 30 days).
    #[serde(with = "humantime_serde")]
    pub dormant_after: Duration,
    /// CSV of `network,country,asn` (see [`geo`]); without it, addresses
    /// are compared as addresses only.
    pub geo: Option<PathBuf>,
    /// Lowest scores of the medium, high and critical levels.
    pub medium: u8,
    pub high: u8,
    pub critical: u8,
    /// Level at and above which a `risk_alert` record and a notification
    /// are emitted (once per principal per hour).
    pub alert_level: Level,
    /// How often changed baselines are written to the store.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: true,
            half_life: Duration::from_secs(14 * 86_400),
            dormant_after: Duration::from_secs(30 * 86_400),
            geo: None,
            medium: 40,
            high: 70,
            critical: 90,
            alert_level: Level::High,
            flush_interval: Duration::from_secs(5),
        }
    }
}

impl RiskConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.medium < self.high && self.high < self.critical && self.critical <= 100) {
            return Err(
                "risk.medium, risk.high, risk.critical: increasing scores, at most 100".into(),
            );
        }
        if self.half_life < Duration::from_secs(3600) {
            return Err("risk.half_life: at least 1h".into());
        }
        if self.dormant_after < Duration::from_secs(86_400) {
            return Err("risk.dormant_after: at least 1 day".into());
        }
        if self.flush_interval.is_zero() {
            return Err("risk.flush_interval: more than 0s".into());
        }
        Ok(())
    }
}

/// How risky a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }
}

/// One feature's finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable id (`new_country`, `delete_spike`, ...); policies see these.
    pub code: String,
    /// Sub-score 0..100.
    pub score: u8,
    pub text: String,
}

impl Reason {
    pub fn new(code: &str, score: f32, text: String) -> Self {
        Reason {
            code: code.to_owned(),
            score: score.round().clamp(0.0, 100.0) as u8,
            text,
        }
    }
}

/// The risk of one call: what the intent record and `context.risk` carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub score: u8,
    pub level: Level,
    /// The findings, strongest first (at most [`MAX_REASONS`]).
    pub reasons: Vec<Reason>,
    /// A hard floor that raised the level, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
}

/// Reasons an assessment keeps.
pub const MAX_REASONS: usize = 5;

impl Assessment {
    /// `context.risk` for policy.
    pub fn facts(&self) -> crate::policy::RiskFacts {
        crate::policy::RiskFacts {
            score: i64::from(self.score),
            level: self.level.as_str().to_owned(),
            reasons: self.reasons.iter().map(|r| r.code.clone()).collect(),
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// One line for people: "82 (high): 14 deletes in the last hour; ...".
    pub fn summary(&self) -> String {
        let reasons = self
            .reasons
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if reasons.is_empty() {
            format!("{} ({})", self.score, self.level.as_str())
        } else {
            format!("{} ({}): {reasons}", self.score, self.level.as_str())
        }
    }

    /// The floor for a privilege grant (`azure_op`) that would run without
    /// an approval: critical.
    pub fn unapproved_privilege_grant(&mut self, azure_op: &str, critical: u8) {
        self.reasons.insert(
            0,
            Reason::new(
                "privilege_grant_without_approval",
                100.0,
                format!("{azure_op} would grant privileges without an approval"),
            ),
        );
        self.reasons.truncate(MAX_REASONS);
        self.score = self.score.max(critical);
        self.level = Level::Critical;
        self.floor = Some("privilege_grant_without_approval".into());
    }
}

/// One operation of a call, as scoring sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedOp {
    pub azure_op: String,
    pub class: RiskClass,
    /// Lower-cased subscription id and resource group, when known.
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
}

/// A call, as scoring sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub tenant: String,
    /// Object id.
    pub principal: String,
    /// The peer group: kind and app roles (see [`peer_group`]).
    pub peer: String,
    /// Unix seconds.
    pub at: i64,
    pub source_ip: Option<IpAddr>,
    pub operations: Vec<ObservedOp>,
    /// Estimated monthly cost of what the call creates ([`cost::estimate`]).
    pub cost: Option<f64>,
}

impl Observation {
    fn key(&self) -> String {
        format!("{}/{}", self.tenant, self.principal)
    }

    fn peer_key(&self) -> String {
        format!("{}|{}", self.tenant, self.peer)
    }

    fn classes(&self) -> Vec<RiskClass> {
        let mut classes: Vec<RiskClass> = self.operations.iter().map(|o| o.class).collect();
        classes.sort();
        classes.dedup();
        classes
    }
}

/// The peer group of a principal: its kind and app roles, e.g.
/// `user:Developer` or `application:Deployer+Reader`.
pub fn peer_group(kind: &str, roles: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut roles: Vec<String> = roles.into_iter().map(|r| r.as_ref().to_owned()).collect();
    roles.sort();
    format!("{kind}:{}", roles.join("+"))
}

/// How a scored call ended, for learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran and succeeded: what it did is normal for the principal.
    Succeeded,
    /// It ran and failed (tool error, upstream error): activity only.
    Failed,
    /// Policy (or a reviewer) refused it: remembered as a denial.
    Denied,
    /// Waiting for approval: an attempt, nothing more.
    Held,
}

#[derive(Default)]
struct State {
    principals: HashMap<String, Baseline>,
    peers: HashMap<String, Aggregate>,
    tenants: HashMap<String, Aggregate>,
    dirty: HashSet<String>,
    /// Principal → unix hour of its last alert.
    alerted: HashMap<String, i64>,
    /// On a shared store, the id of the last shared event applied.
    applied: i64,
}

/// The risk stage.
pub struct Risk {
    config: RiskConfig,
    geo: GeoTable,
    state: Mutex<State>,
    empty: (Baseline, Aggregate),
    /// Set when replicas share a store: learning goes through it.
    journal: std::sync::OnceLock<shared::Journal>,
    /// Refused tokens by source address (this replica's).
    refusals: Mutex<refusals::Refusals>,
}

impl std::fmt::Debug for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Risk")
            .field("config", &self.config)
            .finish()
    }
}

impl Risk {
    /// A risk stage with no history; reads the geo table if one is configured.
    pub fn new(config: RiskConfig) -> Result<Self, String> {
        config.validate()?;
        let geo = match &config.geo {
            Some(path) => GeoTable::load(path)?,
            None => GeoTable::default(),
        };
        Ok(Self::with_geo(config, geo))
    }

    pub fn with_geo(config: RiskConfig, geo: GeoTable) -> Self {
        Risk {
            config,
            geo,
            state: Mutex::new(State {
                applied: -1,
                ..State::default()
            }),
            empty: (Baseline::new("", 0), Aggregate::new()),
            journal: std::sync::OnceLock::new(),
            refusals: Mutex::new(refusals::Refusals::default()),
        }
    }

    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a refused token from `source_ip` at `at` (Unix seconds): the
    /// authentication stage's failures, for [`features::refused_tokens`].
    pub fn auth_refused(&self, source_ip: Option<IpAddr>, at: i64) {
        if let Some(ip) = source_ip {
            self.refusals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .note(ip, at);
        }
    }

    /// Scores a call (stage 3). Reads baselines only.
    pub fn assess(&self, obs: &Observation) -> Assessment {
        let refused = obs.source_ip.map_or(0, |ip| {
            self.refusals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recent(ip, obs.at)
        });
        let state = self.lock();
        let own = state.principals.get(&obs.key());
        let place = obs.source_ip.and_then(|ip| self.geo.lookup(ip));
        let cx = features::Context {
            baseline: own.unwrap_or(&self.empty.0),
            known: own.is_some(),
            peers: state.peers.get(&obs.peer_key()).unwrap_or(&self.empty.1),
            tenant: state.tenants.get(&obs.tenant).unwrap_or(&self.empty.1),
            obs,
            at: obs.at,
            dormant_after: self.config.dormant_after.as_secs() as i64,
            country: place.map(|p| p.country.as_str()),
            asn: place.and_then(|p| p.asn),
            refused,
        };
        let (spike, delete_floor) = features::rate_spike(&cx);
        let mut reasons: Vec<Reason> = [
            features::new_operation(&cx),
            features::new_scope(&cx),
            features::new_network(&cx),
            features::unusual_hour(&cx),
            spike,
            features::repeated_denials(&cx),
            features::refused_tokens(&cx),
            features::cost_outlier(&cx),
            features::dormant(&cx),
            features::weakens_defences(&cx),
        ]
        .into_iter()
        .flatten()
        .filter(|r| r.score > 0)
        .collect();
        drop(state);
        reasons.sort_by_key(|r| std::cmp::Reverse(r.score));
        let none_of_it: f64 = reasons
            .iter()
            .map(|r| 1.0 - f64::from(r.score) / 100.0)
            .product();
        let mut score = ((1.0 - none_of_it) * 100.0).round() as u8;
        let mut floor = None;
        if delete_floor {
            score = score.max(self.config.high);
            floor = Some("delete_spike".to_owned());
        }
        reasons.truncate(MAX_REASONS);
        Assessment {
            score,
            level: self.level_of(score),
            reasons,
            floor,
        }
    }

    pub fn level_of(&self, score: u8) -> Level {
        match score {
            s if s >= self.config.critical => Level::Critical,
            s if s >= self.config.high => Level::High,
            s if s >= self.config.medium => Level::Medium,
            _ => Level::Low,
        }
    }

    /// Whether an assessment of `obs` should raise an alert: at or above
    /// the alert level, once per principal per hour.
    pub fn alert_due(&self, obs: &Observation, assessment: &Assessment) -> bool {
        if assessment.level < self.config.alert_level {
            return false;
        }
        let hour = obs.at.div_euclid(3600);
        let mut state = self.lock();
        if state.alerted.len() > 100_000 {
            state.alerted.retain(|_, h| *h == hour);
        }
        state.alerted.insert(obs.key(), hour) != Some(hour)
    }

    /// Learns from how a scored call ended (stage 9), here and now.
    pub fn learn(&self, obs: &Observation, outcome: Outcome) {
        self.learn_event(obs, outcome, None);
    }

    /// Learns `obs` ending in `outcome`; `event` is its id in the shared
    /// journal, if it came from there. An event the principal's baseline
    /// has already learned (a restart replaying the journal) is skipped.
    fn learn_event(&self, obs: &Observation, outcome: Outcome, event: Option<i64>) {
        let half_life = self.config.half_life.as_secs() as i64;
        let dormant_after = self.config.dormant_after.as_secs() as i64;
        let key = obs.key();
        let place = obs.source_ip.and_then(|ip| self.geo.lookup(ip)).cloned();
        let classes = obs.classes();
        let mut guard = self.lock();
        let State {
            principals,
            peers,
            tenants,
            dirty,
            ..
        } = &mut *guard;
        let peers = peers.entry(obs.peer_key()).or_default();
        let tenant = tenants.entry(obs.tenant.clone()).or_default();
        if let (Some(id), Some(b)) = (event, principals.get(&key))
            && b.event.is_some_and(|learned| learned >= id)
        {
            return;
        }
        let b = principals.entry(key.clone()).or_insert_with(|| {
            peers.members += 1;
            tenant.members += 1;
            Baseline::new(&obs.peer, obs.at)
        });
        if event.is_some() {
            b.event = event;
        }
        let at = obs.at;
        b.decay(at, half_life);
        // A call held for approval counts when it is retried and runs.
        if outcome != Outcome::Held {
            b.attempt(&classes, at);
        }
        b.touch(at, dormant_after);
        match outcome {
            Outcome::Succeeded => {
                b.calls = b.calls.saturating_add(1);
                b.note_day(at);
                for op in &obs.operations {
                    let k = key_hash(&op.azure_op);
                    if b.ops.add(k, at, baseline::MAX_OPS) {
                        bump(&mut peers.ops, k);
                        bump(&mut tenant.ops, k);
                    }
                    if let Some(sub) = &op.subscription {
                        b.subscriptions
                            .add(key_hash(sub), at, baseline::MAX_SUBSCRIPTIONS);
                        if let Some(group) = &op.resource_group {
                            let k = features::group_key(sub, group);
                            if b.groups.add(k, at, baseline::MAX_GROUPS) {
                                bump(&mut peers.groups, k);
                                bump(&mut tenant.groups, k);
                            }
                        }
                    }
                }
                if let Some(ip) = obs.source_ip {
                    b.ips.add(features::ip_key(ip), at, baseline::MAX_IPS);
                }
                if let Some(place) = &place {
                    let k = key_hash(&place.country);
                    if b.countries.add(k, at, baseline::MAX_COUNTRIES) {
                        bump(&mut peers.countries, k);
                        bump(&mut tenant.countries, k);
                    }
                    if let Some(asn) = place.asn {
                        b.asns.add(u64::from(asn), at, baseline::MAX_ASNS);
                    }
                }
                let how = hour_of_week(at);
                b.hours[how] += 1.0;
                peers.add_hour(how, 1.0);
                tenant.add_hour(how, 1.0);
                for (class, count) in b.count_rates(&classes, at) {
                    peers.count_hour(class, count);
                    tenant.count_hour(class, count);
                }
                if let Some(cost) = obs.cost.filter(|_| classes.contains(&RiskClass::Create)) {
                    b.cost.add(cost);
                    peers.cost.add(cost);
                    tenant.cost.add(cost);
                }
            }
            Outcome::Failed => {
                b.hours[hour_of_week(at)] += 0.5;
            }
            Outcome::Denied => {
                let worst = classes
                    .iter()
                    .copied()
                    .max_by_key(|c| severity(*c))
                    .unwrap_or(RiskClass::Write);
                let op = obs
                    .operations
                    .iter()
                    .find(|o| o.class == worst)
                    .map_or(0, |o| key_hash(&o.azure_op));
                b.deny(Denial {
                    at,
                    class: worst,
                    op,
                });
            }
            Outcome::Held => {}
        }
        dirty.insert(key);
    }

    /// Shares learning with the other replicas of `store` from now on
    /// ([`shared`]); call once, after [`Risk::load`] and [`Risk::replay`].
    pub fn share(&self, journal: shared::Journal) {
        let _ = self.journal.set(journal);
    }

    /// The shared journal, when learning is shared.
    pub fn journal(&self) -> Option<&shared::Journal> {
        self.journal.get()
    }

    /// Learns from how a scored call ended (stage 9): here, or, when
    /// learning is shared, by writing it to the journal every replica
    /// (this one included) applies before it scores. An event that cannot
    /// be written is learned here only.
    pub async fn record(&self, obs: &Observation, outcome: Outcome) {
        let Some(journal) = self.journal.get() else {
            return self.learn(obs, outcome);
        };
        let event = shared::Event {
            observation: obs.clone(),
            outcome,
        };
        if let Err(error) = journal.write(&event).await {
            tracing::error!(target: "warden::risk", %error, "risk event not shared; learned by this replica only");
            self.learn(obs, outcome);
        }
    }

    /// Applies what every replica has learned since the last catch-up
    /// (nothing to do unless learning is shared).
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let Some(journal) = self.journal.get() else {
            return Ok(());
        };
        journal
            .catch_up(|| self.lock().applied, |read| self.replay(read))
            .await
    }

    /// Applies events read from the journal, in order; each principal
    /// skips those its stored baseline has already learned.
    pub fn replay(&self, read: shared::Read) {
        for (id, event) in &read.events {
            self.learn_event(&event.observation, event.outcome, Some(*id));
        }
        let mut state = self.lock();
        state.applied = state.applied.max(read.last);
    }

    /// The baselines changed since the last call, serialized, for the store.
    pub fn take_dirty(&self) -> Vec<(String, Vec<u8>)> {
        let mut state = self.lock();
        let keys: Vec<String> = state.dirty.drain().collect();
        keys.into_iter()
            .filter_map(|k| {
                let bytes = serde_json::to_vec(state.principals.get(&k)?).ok()?;
                Some((k, bytes))
            })
            .collect()
    }

    /// Puts back baselines that could not be written (retried next flush).
    pub fn mark_dirty(&self, keys: impl IntoIterator<Item = String>) {
        self.lock().dirty.extend(keys);
    }

    /// Loads stored baselines and rebuilds the peer and tenant aggregates
    /// from them. Returns how many were read; unreadable ones are skipped
    /// with a warning (they are relearned).
    pub fn load(&self, rows: impl IntoIterator<Item = (String, Vec<u8>)>) -> usize {
        let mut state = self.lock();
        let mut loaded = 0;
        for (key, bytes) in rows {
            match serde_json::from_slice::<Baseline>(&bytes) {
                Ok(b) => {
                    let b = b.normalized();
                    let tenant = key.split('/').next().unwrap_or_default().to_owned();
                    state
                        .peers
                        .entry(format!("{tenant}|{}", b.peer))
                        .or_default()
                        .absorb(&b);
                    state.tenants.entry(tenant).or_default().absorb(&b);
                    state.principals.insert(key, b);
                    loaded += 1;
                }
                Err(error) => {
                    tracing::warn!(principal = %key, %error, "risk baseline unreadable; it is relearned")
                }
            }
        }
        loaded
    }

    /// Serialized size of each baseline (bytes), for the eval report.
    pub fn state_sizes(&self) -> Vec<usize> {
        let state = self.lock();
        state
            .principals
            .values()
            .filter_map(|b| serde_json::to_vec(b).ok().map(|v| v.len()))
            .collect()
    }

    /// A copy of a principal's baseline (tests, the admin API).
    pub fn baseline(&self, tenant: &str, principal: &str) -> Option<Baseline> {
        self.lock()
            .principals
            .get(&format!("{tenant}/{principal}"))
            .cloned()
    }
}

fn severity(class: RiskClass) -> u8 {
    match class {
        RiskClass::Read => 0,
        RiskClass::Write => 1,
        RiskClass::Create => 2,
        RiskClass::Delete => 3,
        RiskClass::Privileged => 4,
    }
}

#[cfg(test)]
mod tests;
