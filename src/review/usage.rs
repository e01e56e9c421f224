//! What principals actually did, folded from the audit log's records: the
//! operations their allowed calls ran (with the scopes, counts, last use
//! and the permits that allowed them), their denials, risk, alerts and
//! JIT grants, and when each was last active.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::audit::record::{Kind, Record};

/// The period reviewed: records with `from <= ts < to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The `days` days before `to`.
    pub fn days_before(to: DateTime<Utc>, days: u32) -> Self {
        Period {
            from: to - chrono::Duration::days(i64::from(days)),
            to,
        }
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// The use of one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpUse {
    pub calls: u64,
    /// RFC 3339, the newest call.
    pub last: String,
    /// The resource groups (else the narrowest scope) it ran on.
    pub scopes: BTreeSet<String>,
}

impl OpUse {
    fn add(&mut self, ts: &str, scope: String) {
        self.calls += 1;
        if ts > self.last.as_str() {
            self.last = ts.to_owned();
        }
        self.scopes.insert(scope);
    }
}

/// One resource an operation ran on, with what the facts stage knew of it
/// (a generated policy test replays it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub class: String,
    pub resource_id: String,
    pub location: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub resource_group_tags: BTreeMap<String, String>,
}

/// A principal's activity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrincipalUse {
    pub tid: String,
    pub oid: String,
    pub name: String,
    /// `user` or `application`.
    pub kind: String,
    pub guest: bool,
    /// The roles (and role-conferring groups) of its newest call.
    pub roles: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    /// Its newest call or sign-in, in the whole log up to the period's end.
    pub last_activity: Option<String>,
    /// Calls in the period.
    pub calls: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Operations its allowed calls ran in the period.
    pub operations: BTreeMap<String, OpUse>,
    /// (operation, the permits that allowed it) → use: one entry per
    /// distinct set of determining permits (Cedar lists every satisfied
    /// permit), which the review attributes to the narrowest grant.
    #[serde(skip)]
    pub decisions: BTreeMap<(String, Vec<String>), OpUse>,
    /// Calls the risk stage scored `high` or `critical`.
    pub high_risk_calls: u64,
    /// `risk_alert` records about it.
    pub risk_alerts: u64,
    /// Alerts its calls raised by `@alert` policies (`break_glass`), by name.
    pub alerts: BTreeMap<String, u64>,
    /// JIT requests of its approved, and grants used (single-call grants).
    pub jit_approved: u64,
    pub jit_used: u64,
}

/// The log folded over a [`Period`].
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub period: Period,
    /// Records read, and those that were not audit records this build reads.
    pub records: u64,
    pub unreadable: u64,
    /// By (tid, oid).
    pub principals: BTreeMap<(String, String), PrincipalUse>,
    /// (permit id, operation) → a resource it ran on.
    #[serde(skip)]
    pub samples: BTreeMap<(String, String), Sample>,
    /// The hashes of the policy sets that decided the period's calls.
    pub policy_sets: BTreeSet<String>,
}

fn at(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The resource group of an ARM id (lower-cased), else the id itself.
pub fn scope_of(resource: &str) -> String {
    let lower = resource.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('/').collect();
    // "", "subscriptions", s, "resourcegroups", rg, ...
    if parts.len() >= 5 && parts[1] == "subscriptions" && parts[3] == "resourcegroups" {
        parts[..5].join("/")
    } else {
        lower
    }
}

fn strings(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl Usage {
    pub fn new(period: Period) -> Self {
        Usage {
            period,
            records: 0,
            unreadable: 0,
            principals: BTreeMap::new(),
            samples: BTreeMap::new(),
            policy_sets: BTreeSet::new(),
        }
    }

    /// Folds one record (its bytes, as stored).
    pub fn add(&mut self, bytes: &[u8]) {
        self.records += 1;
        let Ok(record) = serde_json::from_slice::<Record>(bytes) else {
            self.unreadable += 1;
            return;
        };
        let Some(ts) = at(&record.ts) else {
            self.unreadable += 1;
            return;
        };
        if ts >= self.period.to {
            return;
        }
        let in_period = self.period.contains(ts);
        match record.kind {
            Kind::Intent => self.intent(&record, in_period),
            Kind::Auth => self.sign_in(&record),
            Kind::RiskAlert if in_period => {
                if let Some(p) = self.principal(&record) {
                    p.risk_alerts += 1;
                }
            }
            Kind::Approval if in_period => self.approval(&record),
            _ => {}
        }
    }

    fn principal(&mut self, record: &Record) -> Option<&mut PrincipalUse> {
        let actor = record.principal.as_ref()?;
        let entry = self
            .principals
            .entry((actor.tid.clone(), actor.oid.clone()))
            .or_insert_with(|| PrincipalUse {
                tid: actor.tid.clone(),
                oid: actor.oid.clone(),
                ..PrincipalUse::default()
            });
        entry.name.clone_from(&actor.name);
        entry.kind.clone_from(&actor.kind);
        entry.guest |= actor.guest;
        Some(entry)
    }

    fn active(p: &mut PrincipalUse, ts: &str) {
        if p.last_activity.as_deref().is_none_or(|last| ts > last) {
            p.last_activity = Some(ts.to_owned());
        }
    }

    /// An accepted sign-in or session start is activity; refusals are not.
    fn sign_in(&mut self, record: &Record) {
        // A refusal names its reason (and rarely a principal).
        let accepted = record
            .details
            .as_ref()
            .is_some_and(|d| d.get("reason").is_none());
        if !accepted {
            return;
        }
        let ts = record.ts.clone();
        if let Some(p) = self.principal(record) {
            Self::active(p, &ts);
        }
    }

    fn approval(&mut self, record: &Record) {
        let Some(details) = &record.details else {
            return;
        };
        let event = details.get("event").and_then(Value::as_str).unwrap_or("");
        let requester = &details["request"]["requester"];
        let (Some(tid), Some(oid)) = (
            requester.get("tid").and_then(Value::as_str),
            requester.get("oid").and_then(Value::as_str),
        ) else {
            return;
        };
        let Some(p) = self.principals.get_mut(&(tid.to_owned(), oid.to_owned())) else {
            return;
        };
        match event {
            "approved" => p.jit_approved += 1,
            "consumed" => p.jit_used += 1,
            _ => {}
        }
    }

    fn intent(&mut self, record: &Record, in_period: bool) {
        let ts = record.ts.clone();
        let Some(actor) = record.principal.clone() else {
            return;
        };
        let decision = record.decision.clone().unwrap_or(Value::Null);
        let p = self
            .principal(record)
            .expect("an intent names its principal");
        Self::active(p, &ts);
        if p.last_activity.as_deref() == Some(ts.as_str()) {
            p.roles = actor.roles.iter().cloned().collect();
            p.groups = actor.groups.iter().cloned().collect();
        }
        // Refused before it was decided (a rate limit): activity, but
        // neither allowed nor denied by policy.
        if !in_period || decision.is_null() {
            return;
        }
        p.calls += 1;
        let allowed = decision.get("effect").and_then(Value::as_str) == Some("allow");
        if allowed {
            p.allowed += 1;
        } else {
            p.denied += 1;
        }
        let level = record
            .risk
            .as_ref()
            .and_then(|r| r.get("level"))
            .and_then(Value::as_str);
        if matches!(level, Some("high" | "critical")) {
            p.high_risk_calls += 1;
        }
        for alert in decision
            .get("alerts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = alert.get("alert").and_then(Value::as_str) {
                *p.alerts.entry(name.to_owned()).or_default() += 1;
            }
        }
        if !allowed {
            return;
        }
        let key = (actor.tid.clone(), actor.oid.clone());
        if let Some(set) = decision.get("policy_set").and_then(Value::as_str) {
            self.policy_sets.insert(set.to_owned());
        }
        for op in decision
            .get("operations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(azure_op), Some(resource)) = (
                op.get("azure_op").and_then(Value::as_str),
                op.get("resource").and_then(Value::as_str),
            ) else {
                continue;
            };
            let scope = scope_of(resource);
            let p = self.principals.get_mut(&key).expect("added above");
            p.operations
                .entry(azure_op.to_owned())
                .or_default()
                .add(&ts, scope.clone());
            let permits: Vec<String> = op
                .get("policies")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let sample = record
                .operations
                .iter()
                .find(|o| o.azure_op.eq_ignore_ascii_case(azure_op));
            if let Some(sample) = sample {
                let facts = sample.facts.as_ref();
                for permit in &permits {
                    self.samples
                        .entry((permit.clone(), azure_op.to_owned()))
                        .or_insert_with(|| Sample {
                            class: sample.class.clone().unwrap_or_else(|| "unknown".into()),
                            resource_id: resource.to_owned(),
                            location: facts
                                .and_then(|f| f.get("location"))
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                            tags: strings(facts.and_then(|f| f.get("tags"))),
                            resource_group_tags: strings(
                                facts.and_then(|f| f.get("resource_group_tags")),
                            ),
                        });
                }
            }
            p.decisions
                .entry((azure_op.to_owned(), permits))
                .or_default()
                .add(&ts, scope);
        }
    }
}
