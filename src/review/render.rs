//! An access review as text for a terminal or a ticket.

use std::fmt::Write;

use super::recommend::Recommendation;
use super::{Review, plural};
use crate::policy::narrow::Change;

/// Operations listed by name per section at most (the rest are counted).
const LISTED: usize = 12;

fn list(ops: &[String]) -> String {
    let mut out = ops
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if ops.len() > LISTED {
        let _ = write!(out, " and {} more", ops.len() - LISTED);
    }
    out
}

/// The review as text.
pub fn text(review: &Review) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Access review of {} from {} to {} ({} records; policy set {})",
        review.source,
        review.period.from.format("%Y-%m-%d %H:%M"),
        review.period.to.format("%Y-%m-%d %H:%M"),
        review.records,
        review.policy_set
    );
    let others: Vec<&String> = review
        .policy_sets_seen
        .iter()
        .filter(|h| **h != review.policy_set)
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "note: calls in the period were also decided by other policy sets ({}); permits are matched by id",
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if review.unreadable > 0 {
        let _ = writeln!(
            out,
            "note: {} record{} could not be read and were left out",
            review.unreadable,
            plural(review.unreadable)
        );
    }
    let _ = writeln!(out, "\nWhat the policies allow, and what was used:");
    for e in &review.entitlements {
        let used = e.allowed - e.unused.len();
        let _ = writeln!(
            out,
            "\n  {} (permits: {}){}",
            e.grantee,
            e.permits.join(", "),
            e.high_risk
                .as_ref()
                .map(|why| format!(" - high-risk: {why}"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "    action groups: {}", e.action_groups.join(", "));
        let _ = writeln!(
            out,
            "    allows {} operation{}, used {} in the period",
            e.allowed,
            plural(e.allowed as u64),
            used
        );
        for (kind, (allowed, used)) in &e.by_type {
            if *used > 0 {
                let _ = writeln!(out, "      {kind}: {used} of {allowed} used");
            }
        }
        for (op, u) in &e.used {
            let _ = writeln!(
                out,
                "    used {op}: {} call{}, last {}, on {}",
                u.calls,
                plural(u.calls),
                &u.last[..10.min(u.last.len())],
                u.scopes.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if !e.unused.is_empty() {
            let _ = writeln!(out, "    unused: {}", list(&e.unused));
        }
        for h in &e.holders {
            let _ = writeln!(
                out,
                "    held by {} ({}): {}",
                h.name,
                h.oid,
                if h.used == 0 {
                    "never used in the period: remove".to_owned()
                } else {
                    format!("{} operation{} used", h.used, plural(h.used as u64))
                }
            );
        }
    }
    let _ = writeln!(out, "\nPrincipals:");
    for p in &review.principals {
        let u = &p.usage;
        let _ = writeln!(
            out,
            "\n  {} ({}/{}, {}){}",
            u.name,
            u.tid,
            u.oid,
            u.kind,
            if p.dormant { " - DORMANT" } else { "" }
        );
        let _ = writeln!(
            out,
            "    roles: {}; calls {} ({} allowed, {} denied); last activity {}",
            if u.roles.is_empty() {
                "none".to_owned()
            } else {
                u.roles.iter().cloned().collect::<Vec<_>>().join(", ")
            },
            u.calls,
            u.allowed,
            u.denied,
            u.last_activity.as_deref().unwrap_or("never")
        );
        if !p.unused_roles.is_empty() {
            let _ = writeln!(
                out,
                "    unused roles (remove): {}",
                p.unused_roles.join(", ")
            );
        }
        for factor in &p.risk_factors {
            let _ = writeln!(out, "    risk: {factor}");
        }
    }
    out
}

/// A recommendation's summary as text.
pub fn recommendation(r: &Recommendation) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nRecommended least-privilege set in {} (validated: set {})",
        r.dir.display(),
        r.policy_set
    );
    for change in &r.changes {
        match change {
            Change::Narrowed { permit, operations } => {
                let _ = writeln!(
                    out,
                    "  {} ({}): narrowed to {} operation{}: {}",
                    permit.id,
                    permit.grantee,
                    operations.len(),
                    plural(operations.len() as u64),
                    list(operations)
                );
            }
            Change::Removed { permit } => {
                let _ = writeln!(
                    out,
                    "  {} ({}): removed, it allowed nothing in the period",
                    permit.id, permit.grantee
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "  tests/recommended.toml: {} case{}, {} passed{}",
        r.cases,
        plural(r.cases as u64),
        r.passed,
        if r.failed.is_empty() {
            String::new()
        } else {
            format!(", FAILED: {}", r.failed.join(" | "))
        }
    );
    if r.used_not_shown + r.unused_not_shown > 0 {
        let _ = writeln!(
            out,
            "  not shown by a case: {} used and {} unused operation{}",
            r.used_not_shown,
            r.unused_not_shown,
            plural(r.unused_not_shown as u64)
        );
    }
    let _ = writeln!(out, "  diff against the running set: diff.patch");
    out
}
