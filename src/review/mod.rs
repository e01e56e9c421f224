//! Access reviews: least privilege measured from the audit log, not
//! assumed (docs/ACCESS-REVIEW.md).
//!
//! - [`usage`] folds the log's records into what each principal did.
//! - [`Review::build`] sets that beside what the policy set allows each
//!   role (and each group or principal a permit names): used and unused
//!   operations, holders who never needed a role, dormant principals, and
//!   the risk factors of each principal.
//! - [`recommend`] turns the use into a narrowed policy set with generated
//!   tests and a diff against the running set.
//!
//! The review reads the log; it does not verify it (`warden audit
//! verify` does, and the compliance report runs both).

pub mod campaign;
pub mod campaigns;
pub mod proposal;
pub mod recommend;
pub mod render;
pub mod usage;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::identity::{Principal, PrincipalKind};
use crate::policy::Engine;
use crate::policy::narrow::{Grantee, Permit};
pub use usage::{OpUse, Period, PrincipalUse, Usage};

/// Roles reviewed as high-risk whatever they allow: those the
/// requirements name and Warden's own baseline roles of the same weight.
pub const HIGH_RISK_ROLES: [&str; 5] = [
    "BreakGlass",
    "SecurityManager",
    "Contributor",
    "Owner",
    "User Access Administrator",
];

/// What a review is asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub period: Period,
    /// The organisation's own tenants; principals of others are foreign.
    /// Empty: the tenant most principals of the log belong to.
    pub home_tenants: Vec<String>,
}

/// One role (or group, or principal) a permit grants to.
#[derive(Debug, Clone, Serialize)]
pub struct EntitlementReview {
    pub grantee: Grantee,
    /// The enforced permits granting to it.
    pub permits: Vec<String>,
    /// The action groups and operations those permits name (`*`: all).
    pub action_groups: Vec<String>,
    /// Operations of the catalog the set could allow it (conditions and
    /// forbids such as MFA or JIT may still stand in the way).
    pub allowed: usize,
    /// The allowed operations, per resource type (`Microsoft.Compute/
    /// virtualMachines`): allowed and used.
    pub by_type: BTreeMap<String, (usize, usize)>,
    /// Operations attributed to its permits in the period (the narrowest
    /// grant that allowed each call), over every holder.
    pub used: BTreeMap<String, OpUse>,
    /// Allowed and never used in the period.
    pub unused: Vec<String>,
    /// Whether any allowed operation is of class `privileged`.
    pub privileged: bool,
    /// Why the role is high-risk, if it is.
    pub high_risk: Option<String>,
    /// Principals whose newest call held it (roles only).
    pub holders: Vec<Holder>,
}

/// A principal holding a role.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub tid: String,
    pub oid: String,
    pub name: String,
    /// Operations this principal needed the role for in the period (it was
    /// the narrowest grant allowing them).
    pub used: usize,
}

/// One principal.
#[derive(Debug, Clone, Serialize)]
pub struct PrincipalReview {
    #[serde(flatten)]
    pub usage: PrincipalUse,
    /// No call or sign-in in the period.
    pub dormant: bool,
    /// Its tenant is not one of the home tenants.
    pub foreign: bool,
    /// Roles it holds that it never needed in the period (no call was
    /// allowed with it as the narrowest grant).
    pub unused_roles: Vec<String>,
    /// High-risk roles it holds.
    pub high_risk_roles: Vec<String>,
    /// The risk factors, as sentences.
    pub risk_factors: Vec<String>,
}

/// An access review.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub period: Period,
    /// Where the records came from.
    pub source: String,
    pub records: u64,
    pub unreadable: u64,
    /// The hash of the policy set reviewed against, and those that decided
    /// the period's calls.
    pub policy_set: String,
    pub policy_sets_seen: BTreeSet<String>,
    pub home_tenants: Vec<String>,
    pub entitlements: Vec<EntitlementReview>,
    pub principals: Vec<PrincipalReview>,
    /// Permit id → the operations attributed to it → use: what a
    /// narrowed set must keep allowing.
    pub attributed: BTreeMap<String, BTreeMap<String, OpUse>>,
}

/// Operations of the catalog: `(azure_op, class)`.
pub type Operations = [(String, String)];

/// `Microsoft.Compute/virtualMachines/start/action` →
/// `Microsoft.Compute/virtualMachines`.
pub fn resource_type(op: &str) -> String {
    let parts: Vec<&str> = op.split('/').collect();
    if parts.len() >= 3 {
        parts[..2].join("/")
    } else {
        op.to_owned()
    }
}

/// A principal holding exactly `grantee` (and MFA, so that MFA forbids do
/// not hide what the grant allows).
pub fn holder_of(grantee: &Grantee) -> Principal {
    let mut p = Principal::anonymous(None);
    p.tid = "review".into();
    p.oid = format!("holder-of-{grantee}");
    p.display_name = p.oid.clone();
    p.kind = PrincipalKind::User;
    p.mfa = true;
    p.scopes = BTreeSet::from(["user_impersonation".to_owned()]);
    match grantee {
        Grantee::Role(role) => {
            p.roles.insert(role.clone());
        }
        Grantee::Group(group) => {
            p.groups.insert(group.clone());
        }
        Grantee::Principal(_) | Grantee::Anyone => {}
    }
    p
}

/// The operations the set could allow `grantee`, sorted.
pub fn allowed_operations(engine: &Engine, grantee: &Grantee, ops: &Operations) -> Vec<String> {
    let holder = holder_of(grantee);
    let mut allowed: Vec<String> = ops
        .iter()
        .filter(|(op, class)| engine.could_be_allowed(&holder, [(op, class)]))
        .map(|(op, _)| op.clone())
        .collect();
    allowed.sort();
    allowed.dedup();
    allowed
}

/// The first context in which the `running` set allows the principal
/// `principal(mfa)` to run `facts`: as is, with MFA, with MFA and a JIT
/// grant. `(jit, mfa)`: what a generated `policy test` case states.
pub(crate) fn first_allowed(
    running: &Engine,
    principal: impl Fn(bool) -> Principal,
    facts: &crate::policy::OperationFacts,
) -> Option<(Option<crate::policy::JitFacts>, bool)> {
    let now: DateTime<Utc> = crate::policy::DEFAULT_TEST_NOW.parse().ok()?;
    let jit = crate::policy::JitFacts {
        grant_id: "review-grant".into(),
        approver: "review-approver".into(),
        expires: now + chrono::Duration::hours(1),
        role: None,
        scope: None,
        approvers: vec!["review-approver".into()],
        operations: Vec::new(),
    };
    for (mfa, jit) in [(false, None), (true, None), (true, Some(jit))] {
        let mut context = crate::policy::CallContext::new("test-tool", "test-session", now);
        context.jit = jit.clone();
        context.facts = crate::facts::Completeness::Complete;
        let decision = running.authorize(&principal(mfa), std::slice::from_ref(facts), &context);
        if decision.is_allowed() {
            return Some((jit, mfa));
        }
    }
    None
}

impl Review {
    /// Reviews `usage` against the enforced `permits` of the set `engine`
    /// runs, over the catalog's `ops`.
    pub fn build(
        usage: Usage,
        engine: &Engine,
        permits: &[Permit],
        ops: &Operations,
        options: &Options,
        source: String,
    ) -> Review {
        let class_of: BTreeMap<&str, &str> = ops
            .iter()
            .map(|(op, class)| (op.as_str(), class.as_str()))
            .collect();
        let home_tenants = if options.home_tenants.is_empty() {
            most_common_tenant(&usage).into_iter().collect()
        } else {
            options.home_tenants.clone()
        };

        // Each grantee, with its permits and what the set allows it.
        let mut grantees: BTreeMap<Grantee, Vec<String>> = BTreeMap::new();
        for permit in permits {
            grantees
                .entry(permit.grantee.clone())
                .or_default()
                .push(permit.id.clone());
        }
        let allowance: BTreeMap<&Grantee, Vec<String>> = grantees
            .keys()
            .map(|g| (g, allowed_operations(engine, g, ops)))
            .collect();
        let grantee_of: BTreeMap<&str, &Grantee> = permits
            .iter()
            .map(|p| (p.id.as_str(), &p.grantee))
            .collect();

        // Each allowed operation is attributed to the narrowest grant that
        // allowed it: of the permits Cedar found satisfied, those of the
        // grantee allowed the fewest operations.
        let mut attributed: BTreeMap<String, BTreeMap<String, OpUse>> = BTreeMap::new();
        let mut needed: BTreeMap<(String, String), BTreeMap<Grantee, BTreeSet<String>>> =
            BTreeMap::new();
        for (key, p) in &usage.principals {
            for ((op, determining), op_use) in &p.decisions {
                let narrowest = determining
                    .iter()
                    .filter_map(|id| grantee_of.get(id.as_str()).copied())
                    .min_by_key(|g| (allowance.get(g).map_or(usize::MAX, Vec::len), (*g).clone()));
                let Some(narrowest) = narrowest else { continue };
                needed
                    .entry(key.clone())
                    .or_default()
                    .entry(narrowest.clone())
                    .or_default()
                    .insert(op.clone());
                for id in determining {
                    if grantee_of.get(id.as_str()) == Some(&narrowest) {
                        let entry = attributed
                            .entry(id.clone())
                            .or_default()
                            .entry(op.clone())
                            .or_default();
                        entry.calls += op_use.calls;
                        if op_use.last > entry.last {
                            entry.last.clone_from(&op_use.last);
                        }
                        entry.scopes.extend(op_use.scopes.iter().cloned());
                    }
                }
            }
        }

        let mut entitlements = Vec::new();
        for (grantee, ids) in &grantees {
            let allowed = &allowance[grantee];
            let mut used: BTreeMap<String, OpUse> = BTreeMap::new();
            for id in ids {
                for (op, op_use) in attributed.get(id).into_iter().flatten() {
                    let entry = used.entry(op.clone()).or_default();
                    entry.calls += op_use.calls;
                    if op_use.last > entry.last {
                        entry.last.clone_from(&op_use.last);
                    }
                    entry.scopes.extend(op_use.scopes.iter().cloned());
                }
            }
            let used_lower: BTreeSet<String> =
                used.keys().map(|op| op.to_ascii_lowercase()).collect();
            let unused: Vec<String> = allowed
                .iter()
                .filter(|op| !used_lower.contains(&op.to_ascii_lowercase()))
                .cloned()
                .collect();
            let mut by_type: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            for op in allowed {
                let entry = by_type.entry(resource_type(op)).or_default();
                entry.0 += 1;
                if used_lower.contains(&op.to_ascii_lowercase()) {
                    entry.1 += 1;
                }
            }
            let privileged = allowed
                .iter()
                .any(|op| class_of.get(op.as_str()) == Some(&"privileged"));
            let high_risk = match grantee {
                Grantee::Role(role) if HIGH_RISK_ROLES.contains(&role.as_str()) => {
                    Some(format!("{role} is a high-risk role"))
                }
                _ if privileged => Some("it allows privileged operations".to_owned()),
                _ => None,
            };
            let holders = match grantee {
                Grantee::Role(role) => usage
                    .principals
                    .iter()
                    .filter(|(_, p)| p.roles.contains(role))
                    .map(|(key, p)| Holder {
                        tid: p.tid.clone(),
                        oid: p.oid.clone(),
                        name: p.name.clone(),
                        used: needed
                            .get(key)
                            .and_then(|n| n.get(grantee))
                            .map_or(0, BTreeSet::len),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut action_groups: Vec<String> = permits
                .iter()
                .filter(|p| &p.grantee == grantee)
                .flat_map(|p| p.actions.iter().cloned())
                .collect();
            action_groups.sort();
            action_groups.dedup();
            entitlements.push(EntitlementReview {
                grantee: grantee.clone(),
                permits: ids.clone(),
                action_groups,
                allowed: allowed.len(),
                by_type,
                used,
                unused,
                privileged,
                high_risk,
                holders,
            });
        }

        let high_risk_role = |role: &str| {
            entitlements
                .iter()
                .any(|e| e.grantee == Grantee::Role(role.to_owned()) && e.high_risk.is_some())
                || HIGH_RISK_ROLES.contains(&role)
        };
        let principals = usage
            .principals
            .iter()
            .map(|(key, p)| {
                let dormant = p.calls == 0
                    && p.last_activity
                        .as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .is_none_or(|t| t.with_timezone(&Utc) < usage.period.from);
                let foreign = !home_tenants.contains(&p.tid);
                let unused_roles: Vec<String> = p
                    .roles
                    .iter()
                    .filter(|role| {
                        needed
                            .get(key)
                            .is_none_or(|n| !n.contains_key(&Grantee::Role((*role).clone())))
                    })
                    .cloned()
                    .collect();
                let high_risk_roles: Vec<String> = p
                    .roles
                    .iter()
                    .filter(|r| high_risk_role(r))
                    .cloned()
                    .collect();
                let risk_factors = risk_factors(p, dormant, foreign, &high_risk_roles, &usage);
                PrincipalReview {
                    usage: p.clone(),
                    dormant,
                    foreign,
                    unused_roles,
                    high_risk_roles,
                    risk_factors,
                }
            })
            .collect();
        Review {
            period: usage.period,
            source,
            records: usage.records,
            unreadable: usage.unreadable,
            policy_set: engine.hash(),
            policy_sets_seen: usage.policy_sets.clone(),
            home_tenants,
            entitlements,
            principals,
            attributed,
        }
    }
}

fn most_common_tenant(usage: &Usage) -> Option<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in usage.principals.values() {
        *counts.entry(p.tid.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|(tid, n)| (*n, std::cmp::Reverse(*tid)))
        .map(|(tid, _)| tid.to_owned())
}

fn risk_factors(
    p: &PrincipalUse,
    dormant: bool,
    foreign: bool,
    high_risk_roles: &[String],
    usage: &Usage,
) -> Vec<String> {
    let mut out = Vec::new();
    for role in high_risk_roles {
        out.push(format!("holds the high-risk role {role}"));
    }
    if p.guest {
        out.push("a guest (B2B) user".to_owned());
    }
    if foreign {
        out.push(format!("belongs to another tenant ({})", p.tid));
    }
    if p.high_risk_calls > 0 || p.risk_alerts > 0 {
        out.push(format!(
            "unusual access: {} call{} scored high or critical, {} risk alert{}",
            p.high_risk_calls,
            plural(p.high_risk_calls),
            p.risk_alerts,
            plural(p.risk_alerts)
        ));
    }
    for (alert, n) in &p.alerts {
        out.push(format!("{n} call{} raised the {alert} alert", plural(*n)));
    }
    if p.jit_approved > 0 || p.jit_used > 0 {
        out.push(format!(
            "JIT: {} request{} approved, {} single-call grant{} used",
            p.jit_approved,
            plural(p.jit_approved),
            p.jit_used,
            plural(p.jit_used)
        ));
    }
    if dormant {
        out.push(match &p.last_activity {
            Some(last) => format!(
                "no activity since {} (before the period from {})",
                &last[..10.min(last.len())],
                usage.period.from.format("%Y-%m-%d")
            ),
            None => "no activity in the log".to_owned(),
        });
    }
    out
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
