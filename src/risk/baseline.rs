//! What Warden remembers of each principal (a [`Baseline`], persisted in the
//! store) and of its peers and tenant (an [`Aggregate`], rebuilt from the
//! baselines at start). Everything is bounded: sets keep their heaviest
//! entries, rings keep the last hour or week, and weights decay lazily with
//! a half-life, so a baseline stays a few KB however long it lives.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The classes rates are kept for.
pub const CLASSES: usize = 5;

/// What a call does, as the risk stage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskClass {
    Read,
    /// Changes, actions (start, restart, ...) and anything unclassified.
    Write,
    Delete,
    Privileged,
    /// A write that creates a billable resource (it has a cost estimate),
    /// or a tool named for creating one.
    Create,
}

impl RiskClass {
    pub const ALL: [RiskClass; CLASSES] = [
        RiskClass::Read,
        RiskClass::Write,
        RiskClass::Delete,
        RiskClass::Privileged,
        RiskClass::Create,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::Read => "read",
            RiskClass::Write => "write",
            RiskClass::Delete => "delete",
            RiskClass::Privileged => "privileged",
            RiskClass::Create => "create",
        }
    }

    /// The noun for explanations ("14 deletes").
    pub fn plural(self) -> &'static str {
        match self {
            RiskClass::Read => "reads",
            RiskClass::Write => "writes",
            RiskClass::Delete => "deletes",
            RiskClass::Privileged => "privileged calls",
            RiskClass::Create => "creations",
        }
    }
}

/// A stable 64-bit hash (FNV-1a) of a lower-cased key. Baselines store
/// hashes, not names: they are persisted, so the hash must not change
/// between builds (std's `DefaultHasher` may).
pub fn key_hash(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Hour of the week, Monday 00:00 UTC = 0.
pub fn hour_of_week(at: i64) -> usize {
    // 1970-01-01 was a Thursday (day 3 of a Monday-based week).
    let hours = at.div_euclid(3600);
    let day = (hours.div_euclid(24) + 3).rem_euclid(7);
    (day * 24 + hours.rem_euclid(24)) as usize
}

/// `0.5^(elapsed / half_life)`.
pub fn decay_factor(elapsed_secs: i64, half_life_secs: i64) -> f32 {
    if elapsed_secs <= 0 || half_life_secs <= 0 {
        return 1.0;
    }
    0.5f64.powf(elapsed_secs as f64 / half_life_secs as f64) as f32
}

/// One remembered key: its decayed weight and when it was first and last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub k: u64,
    pub w: f32,
    pub first: i64,
    pub last: i64,
}

/// A bounded set of keys with weights. At capacity, a new key replaces the
/// lightest (and, on ties, the least recently seen) entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seen(pub Vec<Entry>);

impl Seen {
    pub fn get(&self, k: u64) -> Option<&Entry> {
        self.0.iter().find(|e| e.k == k)
    }

    pub fn contains(&self, k: u64) -> bool {
        self.get(k).is_some()
    }

    /// Adds one sighting; true if the key was new.
    pub fn add(&mut self, k: u64, at: i64, cap: usize) -> bool {
        if let Some(e) = self.0.iter_mut().find(|e| e.k == k) {
            e.w += 1.0;
            e.last = e.last.max(at);
            return false;
        }
        let entry = Entry {
            k,
            w: 1.0,
            first: at,
            last: at,
        };
        if self.0.len() < cap {
            self.0.push(entry);
        } else if let Some(lightest) = self
            .0
            .iter_mut()
            .min_by(|a, b| a.w.total_cmp(&b.w).then(a.last.cmp(&b.last)))
        {
            *lightest = entry;
        }
        true
    }

    fn decay(&mut self, factor: f32) {
        for e in &mut self.0 {
            e.w *= factor;
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Per-class rate: counts of successful calls per UTC hour in which the
/// class occurred, folded into a mean when the hour ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassRate {
    /// The hour (unix hours) being counted.
    pub hour: i64,
    pub count: u32,
    /// Mean count over earlier hours with at least one such call.
    pub mean: f32,
    /// How many such hours the mean is made of (capped, so it keeps moving).
    pub hours: f32,
    /// The busiest such hour, decaying with a 45-day half-life: recurring
    /// peaks (a month-end clean-up) stay part of normal for a while.
    #[serde(default)]
    pub peak: f32,
}

/// Half-life of a class rate's peak, in hours.
const PEAK_HALF_LIFE_HOURS: i64 = 45 * 24;

impl ClassRate {
    /// Counts one call at `at`; returns the count of an hour that ended, if
    /// one did (for the peers' rates).
    fn count(&mut self, at: i64) -> Option<u32> {
        let hour = at.div_euclid(3600);
        let mut folded = None;
        if hour != self.hour {
            folded = self.fold();
            self.peak *= decay_factor(hour - self.hour, PEAK_HALF_LIFE_HOURS);
            self.hour = hour;
            self.count = 0;
        }
        self.count += 1;
        folded
    }

    fn fold(&mut self) -> Option<u32> {
        if self.count == 0 {
            return None;
        }
        let alpha = 1.0 / (self.hours + 1.0).min(20.0);
        self.mean += alpha * (self.count as f32 - self.mean);
        self.hours = (self.hours + 1.0).min(200.0);
        self.peak = self.peak.max(self.count as f32);
        Some(self.count)
    }

    /// The usual count in an hour with such calls, counting the hour in
    /// progress once it already exceeds the mean of too few hours.
    pub fn usual(&self) -> Option<f32> {
        (self.hours >= 1.0).then_some(self.mean)
    }
}

/// Estimated monthly cost of created resources (log-normal summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostStats {
    pub n: f32,
    pub mean_log: f32,
    pub max: f32,
}

impl CostStats {
    pub fn add(&mut self, cost: f64) {
        let log = (cost.max(1.0)).ln() as f32;
        let alpha = 1.0 / (self.n + 1.0).min(30.0);
        self.mean_log += alpha * (log - self.mean_log);
        self.n = (self.n + 1.0).min(1000.0);
        self.max = self.max.max(cost as f32);
    }

    /// The typical (geometric mean) cost, once there are `min` samples.
    pub fn typical(&self, min: f32) -> Option<f64> {
        (self.n >= min).then(|| f64::from(self.mean_log).exp())
    }
}

/// A denied call, remembered for a week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Denial {
    pub at: i64,
    pub class: RiskClass,
    pub op: u64,
}

/// Bounds of a baseline.
pub const MAX_OPS: usize = 64;
pub const MAX_GROUPS: usize = 32;
pub const MAX_SUBSCRIPTIONS: usize = 8;
pub const MAX_IPS: usize = 16;
pub const MAX_COUNTRIES: usize = 8;
pub const MAX_ASNS: usize = 8;
pub const MAX_RECENT: usize = 64;
pub const MAX_DENIALS: usize = 16;
pub const DENIAL_MEMORY_SECS: i64 = 7 * 24 * 3600;

/// What Warden knows of one principal's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The peer group it is compared with (kind and app roles).
    pub peer: String,
    pub first_seen: i64,
    pub last_seen: i64,
    /// When weights were last decayed.
    pub decayed_at: i64,
    /// Came back after a dormant gap: (when, gap in seconds).
    pub resumed: Option<(i64, i64)>,
    /// Successful calls, ever.
    pub calls: u32,
    /// Distinct UTC days with a successful call (capped), and the last one.
    pub days: u16,
    pub last_day: i64,
    pub ops: Seen,
    pub groups: Seen,
    pub subscriptions: Seen,
    pub ips: Seen,
    pub countries: Seen,
    pub asns: Seen,
    /// Hour-of-week activity (decayed counts of successful calls).
    pub hours: Vec<f32>,
    pub rates: Vec<ClassRate>,
    /// Calls of each class in the last hour, any outcome (timestamps).
    pub recent: Vec<Vec<i64>>,
    pub denials: Vec<Denial>,
    pub cost: CostStats,
    /// The unix hour of the last risk alert (alerts are one per hour).
    pub alerted_hour: i64,
    /// On a shared store, the id of the last shared event this baseline
    /// has learned from ([`super::shared`]); what a restart replays after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}

impl Baseline {
    pub fn new(peer: &str, at: i64) -> Self {
        Baseline {
            peer: peer.to_owned(),
            first_seen: at,
            last_seen: at,
            decayed_at: at,
            hours: vec![0.0; 168],
            rates: vec![ClassRate::default(); CLASSES],
            recent: vec![Vec::new(); CLASSES],
            ..Baseline::default()
        }
    }

    /// Repairs a baseline read back from the store (vectors of the right length).
    pub fn normalized(mut self) -> Self {
        self.hours.resize(168, 0.0);
        self.rates.resize(CLASSES, ClassRate::default());
        self.recent.resize(CLASSES, Vec::new());
        self
    }

    /// Total weight of the hour histogram.
    pub fn hours_total(&self) -> f32 {
        self.hours.iter().sum()
    }

    /// Calls of `class` at or after `since` (any outcome).
    pub fn recent_count(&self, class: RiskClass, since: i64) -> usize {
        self.recent[class.index()]
            .iter()
            .filter(|&&t| t >= since)
            .count()
    }

    /// Applies the decay owed since the last time.
    pub fn decay(&mut self, at: i64, half_life_secs: i64) {
        let factor = decay_factor(at - self.decayed_at, half_life_secs);
        if factor >= 0.999 {
            return;
        }
        self.decayed_at = at;
        for seen in [
            &mut self.ops,
            &mut self.groups,
            &mut self.subscriptions,
            &mut self.ips,
            &mut self.countries,
            &mut self.asns,
        ] {
            seen.decay(factor);
        }
        for h in &mut self.hours {
            *h *= factor;
        }
    }

    /// Notes an attempt of `classes` at `at` (any outcome) and forgets
    /// what is older than an hour.
    pub fn attempt(&mut self, classes: &[RiskClass], at: i64) {
        for ring in &mut self.recent {
            ring.retain(|&t| t > at - 3600);
        }
        for class in classes {
            let ring = &mut self.recent[class.index()];
            if ring.len() >= MAX_RECENT {
                ring.remove(0);
            }
            ring.push(at);
        }
    }

    /// Marks activity at `at`; notes a return from a dormant gap.
    pub fn touch(&mut self, at: i64, dormant_after_secs: i64) {
        if self.last_seen > 0 && at - self.last_seen >= dormant_after_secs {
            self.resumed = Some((at, at - self.last_seen));
        }
        self.last_seen = self.last_seen.max(at);
    }

    /// Counts one successful call of `classes` for the per-class rates;
    /// returns the counts of hours that ended, per class.
    pub fn count_rates(&mut self, classes: &[RiskClass], at: i64) -> Vec<(RiskClass, u32)> {
        classes
            .iter()
            .filter_map(|&c| self.rates[c.index()].count(at).map(|n| (c, n)))
            .collect()
    }

    pub fn note_day(&mut self, at: i64) {
        let day = at.div_euclid(86_400);
        if day != self.last_day {
            self.last_day = day;
            self.days = self.days.saturating_add(1).min(365);
        }
    }

    pub fn deny(&mut self, denial: Denial) {
        self.denials
            .retain(|d| d.at > denial.at - DENIAL_MEMORY_SECS);
        if self.denials.len() >= MAX_DENIALS {
            self.denials.remove(0);
        }
        self.denials.push(denial);
    }
}

/// A peer group's (or a tenant's) combined behaviour, for cold start and
/// for how rare something is among peers.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub members: u32,
    /// How many members have used each operation / resource group / country.
    pub ops: HashMap<u64, u32>,
    pub groups: HashMap<u64, u32>,
    pub countries: HashMap<u64, u32>,
    pub hours: Vec<f32>,
    /// Per class: (sum of counts, number of class-hours).
    pub rates: Vec<(f32, f32)>,
    pub cost: CostStats,
}

/// Most distinct keys an aggregate keeps per set.
const MAX_AGGREGATE_KEYS: usize = 4096;

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            members: 0,
            ops: HashMap::new(),
            groups: HashMap::new(),
            countries: HashMap::new(),
            hours: vec![0.0; 168],
            rates: vec![(0.0, 0.0); CLASSES],
            cost: CostStats::default(),
        }
    }
}

impl Aggregate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one member's baseline (rebuilding after a load).
    pub fn absorb(&mut self, b: &Baseline) {
        self.members += 1;
        for e in &b.ops.0 {
            bump(&mut self.ops, e.k);
        }
        for e in &b.groups.0 {
            bump(&mut self.groups, e.k);
        }
        for e in &b.countries.0 {
            bump(&mut self.countries, e.k);
        }
        for (sum, h) in self.hours.iter_mut().zip(&b.hours) {
            *sum += h;
        }
        for (agg, rate) in self.rates.iter_mut().zip(&b.rates) {
            agg.0 += rate.mean * rate.hours;
            agg.1 += rate.hours;
        }
        if b.cost.n > 0.0 {
            self.cost.add(f64::from(b.cost.mean_log).exp());
        }
    }

    /// The share of members (other than one who has not used it) that used `k`.
    pub fn share(map: &HashMap<u64, u32>, k: u64, members: u32) -> f32 {
        if members == 0 {
            return 0.0;
        }
        map.get(&k).copied().unwrap_or(0) as f32 / members as f32
    }

    /// The peers' usual count of `class` calls in an hour with such calls.
    pub fn usual(&self, class: RiskClass) -> Option<f32> {
        let (sum, n) = self.rates[class.index()];
        (n >= 3.0).then(|| sum / n)
    }

    pub fn count_hour(&mut self, class: RiskClass, count: u32) {
        let r = &mut self.rates[class.index()];
        r.0 += count as f32;
        r.1 += 1.0;
        // Keep it moving: old hours weigh less once there are many.
        if r.1 > 5000.0 {
            r.0 *= 0.5;
            r.1 *= 0.5;
        }
    }

    pub fn add_hour(&mut self, how: usize, weight: f32) {
        self.hours[how] += weight;
    }
}

/// Counts a member for a key, unless the aggregate is full.
pub fn bump(map: &mut HashMap<u64, u32>, k: u64) {
    if let Some(n) = map.get_mut(&k) {
        *n += 1;
    } else if map.len() < MAX_AGGREGATE_KEYS {
        map.insert(k, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_starts_on_monday_utc() {
        // 2026-11-23 is a Monday.
        let monday = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:30:00Z")
            .unwrap()
            .timestamp();
        assert_eq!(hour_of_week(monday), 0);
        assert_eq!(hour_of_week(monday + 3600 * 27), 27);
        assert_eq!(hour_of_week(monday + 3600 * 24 * 7), 0);
        assert_eq!(hour_of_week(monday - 3600), 167);
    }

    #[test]
    fn seen_is_bounded_and_evicts_the_lightest() {
        let mut seen = Seen::default();
        for k in 0..4 {
            assert!(seen.add(k, 10, 4));
        }
        for _ in 0..3 {
            seen.add(0, 11, 4);
        }
        seen.add(1, 12, 4);
        assert!(seen.add(99, 13, 4), "a new key is new");
        assert_eq!(seen.len(), 4);
        assert!(seen.contains(99));
        assert!(seen.contains(0) && seen.contains(1), "heavy keys stay");
        assert!(!seen.contains(2), "the lightest, least recent key goes");
    }

    #[test]
    fn weights_decay_by_half_life() {
        let mut b = Baseline::new("user", 0);
        b.ops.add(1, 0, MAX_OPS);
        b.hours[3] = 8.0;
        b.decay(14 * 86_400, 14 * 86_400);
        assert!((b.ops.0[0].w - 0.5).abs() < 1e-4);
        assert!((b.hours[3] - 4.0).abs() < 1e-3);
        // Decay is owed from the last decay, not applied twice.
        b.decay(14 * 86_400, 14 * 86_400);
        assert!((b.hours[3] - 4.0).abs() < 1e-3);
    }

    #[test]
    fn class_rates_fold_hours_with_calls() {
        let mut rate = ClassRate::default();
        for _ in 0..4 {
            rate.count(3600 * 10);
        }
        assert_eq!(rate.usual(), None, "an hour in progress is not a usual yet");
        assert_eq!(rate.count(3600 * 12), Some(4));
        rate.count(3600 * 13);
        assert_eq!(rate.usual(), Some(2.5), "mean of 4 and 1");
    }

    #[test]
    fn recent_ring_keeps_the_last_hour() {
        let mut b = Baseline::new("user", 0);
        b.attempt(&[RiskClass::Delete], 100);
        b.attempt(&[RiskClass::Delete], 2000);
        b.attempt(&[RiskClass::Delete], 3800);
        assert_eq!(b.recent_count(RiskClass::Delete, 3800 - 3600), 2);
        for t in 0..(MAX_RECENT as i64 + 10) {
            b.attempt(&[RiskClass::Read], 4000 + t);
        }
        assert_eq!(b.recent[RiskClass::Read.index()].len(), MAX_RECENT);
    }

    #[test]
    fn dormancy_is_noted_on_return() {
        let mut b = Baseline::new("user", 0);
        b.touch(1000, 30 * 86_400);
        assert_eq!(b.resumed, None);
        b.touch(1000 + 40 * 86_400, 30 * 86_400);
        assert_eq!(b.resumed, Some((1000 + 40 * 86_400, 40 * 86_400)));
    }
}
