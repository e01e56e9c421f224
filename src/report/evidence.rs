//! The evidence of a compliance report, folded from the audit log in one
//! pass: each measure's value and the sequence numbers of the records
//! behind it, and the series the charts draw. Every figure is a count of
//! records any auditor can recount from an export (docs/COMPLIANCE.md says
//! how each is computed).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::review::Period;

/// The measures a controls file can name.
pub const MEASURES: &[&str] = &[
    "access_reviews_completed",
    "privileged_calls",
    "role_assignment_changes",
    "role_assignment_changes_unapproved",
    "log_verified",
    "checkpoints_signed",
    "checkpoints_witnessed",
    "heartbeat_gaps",
    "policy_loads",
    "policy_changes",
    "policy_changes_unapproved",
    "policy_changes_untested",
    "break_glass_calls",
    "privileged_without_jit",
    "calls_without_outcome",
    "retention_ok",
];

/// Intents this close to the log's last record may still be running: they
/// are not counted as calls without an outcome.
pub const IN_FLIGHT: chrono::Duration = chrono::Duration::minutes(10);

/// How long the log must be kept (the requirements: 365 days).
pub const RETENTION_DAYS: i64 = 365;

/// One measure: its value (None: not applicable) and its records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measure {
    pub value: Option<f64>,
    pub seqs: Vec<u64>,
    /// Why it does not apply, or a note on how it was measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Measure {
    fn count(seqs: Vec<u64>) -> Self {
        Measure {
            value: Some(seqs.len() as f64),
            seqs,
            note: None,
        }
    }
}

/// A policy set loaded in the period that differs from the one before it.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    pub seq: u64,
    pub ts: String,
    pub hash: String,
    pub trigger: String,
    /// The proposal it was approved as, if any.
    pub proposal: Option<String>,
    pub approved: bool,
    pub tested: bool,
    pub break_glass: bool,
}

/// Calls per day by decision.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DayCalls {
    pub allowed: u64,
    pub denied: u64,
}

/// JIT requests per day, and how long approvals took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Jit {
    pub requested_per_day: BTreeMap<NaiveDate, u64>,
    pub approved: u64,
    pub denied: u64,
    /// Minutes from request to approval, per approved request.
    pub minutes_to_approval: Vec<f64>,
}

/// Everything the report reads off the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    pub records: u64,
    pub records_in_period: u64,
    pub unreadable: u64,
    pub calls: u64,
    pub measures: BTreeMap<String, Measure>,
    pub policy_changes: Vec<PolicyChange>,
    pub calls_per_day: BTreeMap<NaiveDate, DayCalls>,
    /// Denied calls by the policy that denied them (`no permit applied`
    /// when none did; `rate limit` for calls a rate limit refused).
    pub denials_by_policy: BTreeMap<String, u64>,
    pub risk_alerts_by_level: BTreeMap<String, u64>,
    pub jit: Jit,
    /// Restarts in the period (a `log_start` after the first).
    pub restarts: u64,
}

fn at(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn is_role_assignment_change(op: &str) -> bool {
    let op = op.to_ascii_lowercase();
    op == "microsoft.authorization/roleassignments/write"
        || op == "microsoft.authorization/roleassignments/delete"
}

/// The fold. Feed every record of the log in order with [`Fold::add`].
pub struct Fold {
    period: Period,
    ev: Evidence,
    privileged: Vec<u64>,
    role_changes: Vec<u64>,
    role_changes_unapproved: Vec<u64>,
    break_glass: Vec<u64>,
    privileged_without_jit: Vec<u64>,
    reviews: Vec<u64>,
    policy_loads: Vec<u64>,
    /// call id → (seq, ts) of intents in the period without an outcome yet.
    open: HashMap<String, (u64, DateTime<Utc>)>,
    gaps: Vec<u64>,
    last: Option<(u64, DateTime<Utc>)>,
    heartbeat: chrono::Duration,
    first_seq: Option<u64>,
    first_ts: Option<DateTime<Utc>>,
    /// The first and the last record of the period.
    period_first: Option<u64>,
    period_last: Option<u64>,
    last_policy: Option<String>,
    log_starts: u64,
    /// Approved proposals by policy-set hash: (proposal id, tested).
    approved_sets: HashMap<String, (String, bool)>,
    requested_at: HashMap<String, DateTime<Utc>>,
}

impl Fold {
    pub fn new(period: Period) -> Self {
        Fold {
            period,
            ev: Evidence::default(),
            privileged: Vec::new(),
            role_changes: Vec::new(),
            role_changes_unapproved: Vec::new(),
            break_glass: Vec::new(),
            privileged_without_jit: Vec::new(),
            reviews: Vec::new(),
            policy_loads: Vec::new(),
            open: HashMap::new(),
            gaps: Vec::new(),
            last: None,
            heartbeat: chrono::Duration::seconds(60),
            first_seq: None,
            first_ts: None,
            period_first: None,
            period_last: None,
            last_policy: None,
            log_starts: 0,
            approved_sets: HashMap::new(),
            requested_at: HashMap::new(),
        }
    }

    pub fn add(&mut self, bytes: &[u8]) {
        self.ev.records += 1;
        let Ok(r) = serde_json::from_slice::<Value>(bytes) else {
            self.ev.unreadable += 1;
            return;
        };
        let (Some(seq), Some(ts)) = (
            r.get("seq").and_then(Value::as_u64),
            text(&r, "ts").and_then(at),
        ) else {
            self.ev.unreadable += 1;
            return;
        };
        let kind = text(&r, "kind").unwrap_or("");
        if self.first_seq.is_none() {
            self.first_seq = Some(seq);
            self.first_ts = Some(ts);
        }
        let in_period = self.period.contains(ts);
        // Silences: between two records of a running log (a restart's
        // `log_start` ends a downtime, not a silence).
        if let Some((_, last)) = self.last
            && in_period
            && kind != "log_start"
            && ts - last > self.heartbeat * 2 + chrono::Duration::seconds(5)
        {
            self.gaps.push(seq);
        }
        self.last = Some((seq, ts));
        if kind == "log_start" {
            self.log_starts += 1;
            if let Some(s) = r["details"]["heartbeat_interval_s"].as_i64() {
                self.heartbeat = chrono::Duration::seconds(s.max(1));
            }
            if in_period && self.log_starts > 1 {
                self.ev.restarts += 1;
            }
        }
        match kind {
            "outcome" => {
                if let Some(call) = text(&r, "call_id") {
                    self.open.remove(call);
                }
            }
            "policy_change" => self.policy_change(&r),
            "policy_load" => self.policy_load(&r, seq, ts, in_period),
            _ => {}
        }
        if !in_period {
            return;
        }
        self.ev.records_in_period += 1;
        self.period_first.get_or_insert(seq);
        self.period_last = Some(seq);
        match kind {
            "intent" => self.intent(&r, seq, ts),
            // A call a rate limit refused: a denial, but no policy's.
            "outcome" if r["status"] == "rate_limited" => {
                *self
                    .ev
                    .denials_by_policy
                    .entry("rate limit".into())
                    .or_default() += 1;
            }
            "risk_alert" => {
                let level = r["risk"]["level"].as_str().unwrap_or("unknown").to_owned();
                *self.ev.risk_alerts_by_level.entry(level).or_default() += 1;
            }
            "approval" => self.approval(&r, ts),
            "access_review" if r["details"]["event"] == "campaign_closed" => self.reviews.push(seq),
            _ => {}
        }
    }

    fn intent(&mut self, r: &Value, seq: u64, ts: DateTime<Utc>) {
        self.ev.calls += 1;
        if let Some(call) = text(r, "call_id") {
            self.open.insert(call.to_owned(), (seq, ts));
        }
        let decision = &r["decision"];
        let allowed = decision["effect"] == "allow";
        let day = self.ev.calls_per_day.entry(ts.date_naive()).or_default();
        // Refused before it was decided (a rate limit): denied, but by no
        // policy (its outcome names why).
        if decision.is_null() {
            day.denied += 1;
            return;
        }
        if allowed {
            day.allowed += 1;
        } else {
            day.denied += 1;
            let policies: Vec<&str> = decision["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if policies.is_empty() {
                *self
                    .ev
                    .denials_by_policy
                    .entry("no permit applied".into())
                    .or_default() += 1;
            }
            for p in policies {
                *self.ev.denials_by_policy.entry(p.to_owned()).or_default() += 1;
            }
            return;
        }
        let ops: Vec<&Value> = r["operations"].as_array().into_iter().flatten().collect();
        let privileged = ops.iter().any(|o| o["class"] == "privileged");
        let role_change = ops.iter().any(|o| {
            o["azure_op"]
                .as_str()
                .is_some_and(is_role_assignment_change)
        });
        let break_glass = decision["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["alert"] == "break_glass");
        let jit = r.get("jit").is_some_and(|j| !j.is_null());
        if privileged {
            self.privileged.push(seq);
        }
        if role_change {
            self.role_changes.push(seq);
            if !jit {
                self.role_changes_unapproved.push(seq);
            }
        }
        if break_glass {
            self.break_glass.push(seq);
        } else if privileged && !jit {
            self.privileged_without_jit.push(seq);
        }
    }

    fn approval(&mut self, r: &Value, ts: DateTime<Utc>) {
        let details = &r["details"];
        let id = details["request_id"].as_str().unwrap_or("").to_owned();
        match details["event"].as_str() {
            Some("requested") => {
                *self
                    .ev
                    .jit
                    .requested_per_day
                    .entry(ts.date_naive())
                    .or_default() += 1;
                let created = details["request"]["created"]
                    .as_str()
                    .and_then(at)
                    .unwrap_or(ts);
                self.requested_at.insert(id, created);
            }
            Some("approved") => {
                self.ev.jit.approved += 1;
                let created = self
                    .requested_at
                    .get(&id)
                    .copied()
                    .or_else(|| details["request"]["created"].as_str().and_then(at));
                if let Some(created) = created {
                    self.ev
                        .jit
                        .minutes_to_approval
                        .push((ts - created).num_milliseconds() as f64 / 60_000.0);
                }
            }
            Some("denied") => self.ev.jit.denied += 1,
            _ => {}
        }
    }

    /// `policy_change` records (proposals and their approvals) say which
    /// sets were approved, and whether their tests passed.
    fn policy_change(&mut self, r: &Value) {
        let details = &r["details"];
        if details["event"] == "approved"
            && let (Some(hash), Some(id)) =
                (details["hash"].as_str(), details["proposal_id"].as_str())
        {
            let tested = details["tests"]["failed"].as_u64() == Some(0)
                && details["tests"]["passed"].as_u64().unwrap_or(0) > 0;
            self.approved_sets
                .insert(hash.to_owned(), (id.to_owned(), tested));
        }
    }

    fn policy_load(&mut self, r: &Value, seq: u64, ts: DateTime<Utc>, in_period: bool) {
        let details = &r["details"];
        let hash = details["hash"].as_str().unwrap_or("").to_owned();
        let changed = self.last_policy.as_deref() != Some(hash.as_str());
        self.last_policy = Some(hash.clone());
        if in_period {
            self.policy_loads.push(seq);
        }
        if !(changed && in_period) {
            return;
        }
        let approval = self.approved_sets.get(&hash).cloned();
        self.ev.policy_changes.push(PolicyChange {
            seq,
            ts: ts.to_rfc3339(),
            hash,
            trigger: details["trigger"].as_str().unwrap_or("").to_owned(),
            proposal: approval.as_ref().map(|(id, _)| id.clone()),
            approved: approval.is_some(),
            tested: approval.is_some_and(|(_, tested)| tested),
            break_glass: details["break_glass"] == true,
        });
    }

    /// The evidence, given the log's checkpoints (notes), whether the log
    /// verified (None: no trusted key given) and the witnessed checkpoint
    /// notes (None: no witness given).
    pub fn finish(
        mut self,
        checkpoints: &[String],
        verified: Option<(bool, String)>,
        witnessed: Option<&[String]>,
    ) -> Evidence {
        let m = &mut self.ev.measures;
        m.insert("privileged_calls".into(), Measure::count(self.privileged));
        m.insert(
            "role_assignment_changes".into(),
            Measure::count(self.role_changes),
        );
        m.insert(
            "role_assignment_changes_unapproved".into(),
            Measure::count(self.role_changes_unapproved),
        );
        m.insert("break_glass_calls".into(), Measure::count(self.break_glass));
        m.insert(
            "privileged_without_jit".into(),
            Measure::count(self.privileged_without_jit),
        );
        m.insert(
            "access_reviews_completed".into(),
            Measure::count(self.reviews),
        );
        m.insert("heartbeat_gaps".into(), Measure::count(self.gaps));
        let changes = &self.ev.policy_changes;
        let seqs = |f: &dyn Fn(&PolicyChange) -> bool| -> Vec<u64> {
            changes.iter().filter(|c| f(c)).map(|c| c.seq).collect()
        };
        m.insert("policy_changes".into(), Measure::count(seqs(&|_| true)));
        m.insert("policy_loads".into(), Measure::count(self.policy_loads));
        m.insert(
            "policy_changes_unapproved".into(),
            Measure::count(seqs(&|c| !c.approved)),
        );
        m.insert(
            "policy_changes_untested".into(),
            Measure::count(seqs(&|c| !c.tested)),
        );
        // Calls without an outcome: not those that may still be running.
        let end = self.last.map(|(_, ts)| ts);
        let mut missing: Vec<u64> = self
            .open
            .values()
            .filter(|(_, ts)| end.is_none_or(|end| end - *ts > IN_FLIGHT))
            .map(|(seq, _)| *seq)
            .collect();
        missing.sort_unstable();
        m.insert("calls_without_outcome".into(), Measure::count(missing));
        // Checkpoints committing to the period's records.
        let sizes: Vec<(u64, &String)> = checkpoints
            .iter()
            .filter_map(|note| {
                let body = crate::audit::note::SignedNote::parse(note).ok()?;
                Some((
                    crate::audit::note::Checkpoint::parse(&body.text).ok()?.size,
                    note,
                ))
            })
            .collect();
        // Those after the period's first record, up to the first that
        // covers its last.
        let mut of_period: Vec<&(u64, &String)> = Vec::new();
        if let (Some(first), Some(last)) = (self.period_first, self.period_last) {
            let mut sorted: Vec<&(u64, &String)> =
                sizes.iter().filter(|(size, _)| *size > first).collect();
            sorted.sort_by_key(|(size, _)| *size);
            for checkpoint in sorted {
                of_period.push(checkpoint);
                if checkpoint.0 > last {
                    break;
                }
            }
        }
        m.insert(
            "checkpoints_signed".into(),
            Measure {
                value: Some(of_period.len() as f64),
                seqs: of_period.iter().map(|(size, _)| size - 1).collect(),
                note: Some("checkpoints made over the period's records, up to the first covering all of them; each listed by its last record".into()),
            },
        );
        m.insert(
            "checkpoints_witnessed".into(),
            match witnessed {
                Some(notes) => {
                    let held: BTreeSet<&str> = notes.iter().map(|n| n.trim_end()).collect();
                    let seqs: Vec<u64> = of_period
                        .iter()
                        .filter(|(_, note)| held.contains(note.trim_end()))
                        .map(|(size, _)| size - 1)
                        .collect();
                    Measure::count(seqs)
                }
                None => Measure {
                    value: None,
                    seqs: Vec::new(),
                    note: Some("no witness given (--witness DIR)".into()),
                },
            },
        );
        m.insert(
            "log_verified".into(),
            match verified {
                Some((ok, summary)) => Measure {
                    value: Some(if ok { 1.0 } else { 0.0 }),
                    seqs: Vec::new(),
                    note: Some(summary),
                },
                None => Measure {
                    value: None,
                    seqs: Vec::new(),
                    note: Some("no trusted key given (--key audit.pub)".into()),
                },
            },
        );
        // Retention: nothing before the log's first record is missing, or
        // the log reaches back the whole retention period.
        let complete = self.first_seq == Some(0);
        let deep = self
            .first_ts
            .is_some_and(|t| t <= self.period.to - chrono::Duration::days(RETENTION_DAYS));
        m.insert(
            "retention_ok".into(),
            Measure {
                value: Some(if complete || deep { 1.0 } else { 0.0 }),
                seqs: self.first_seq.into_iter().collect(),
                note: Some(format!(
                    "the log's first record is seq {} of {}",
                    self.first_seq.map_or("none".into(), |s| s.to_string()),
                    self.first_ts
                        .map_or("never".into(), |t| t.format("%Y-%m-%d").to_string())
                )),
            },
        );
        self.ev
    }
}
