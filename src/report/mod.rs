//! Compliance reports from the audit log (docs/COMPLIANCE.md): per
//! control of a standard, its status, the evidence (counts and the
//! sequence numbers of the records behind them) and findings in plain
//! sentences; an overall compliance rate; and charts.
//!
//! - [`controls`]: the controls file, which maps controls to measures.
//! - [`evidence`]: the measures, folded from the log in one pass.
//! - [`charts`] and [`html`]: the pictures and the printable page.

pub mod charts;
pub mod controls;
pub mod evidence;
pub mod html;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;

use crate::audit::source::{Source, SourceError};
use crate::policy::Engine;
use crate::policy::narrow::Permit;
use crate::review::{Operations, Options, Period, Review, Usage};
pub use controls::{Controls, Expect};
pub use evidence::{Evidence, Fold, MEASURES, Measure};

/// How the compliance rate is computed (the report prints it).
pub const RATE_FORMULA: &str =
    "rate = (controls met + 0.5 x controls partly met) / controls with an applicable check";

/// Reads `source` once: the evidence fold over `period`, and with
/// `with_usage` an access review's fold of the same records.
pub fn read(
    source: &Source,
    period: Period,
    with_usage: bool,
) -> Result<(Fold, Option<Usage>), SourceError> {
    let mut fold = Fold::new(period);
    let mut usage = with_usage.then(|| Usage::new(period));
    source.for_each(|bytes| {
        fold.add(bytes);
        if let Some(usage) = &mut usage {
            usage.add(bytes);
        }
        Ok(())
    })?;
    Ok((fold, usage))
}

/// Each grantee's allowed and used operations: an access review of
/// `usage` against the set `engine` runs (its enforced `permits`).
pub fn role_use(
    usage: Usage,
    engine: &Engine,
    permits: &[Permit],
    ops: &Operations,
    source: &Source,
) -> Vec<RoleUse> {
    let options = Options {
        period: usage.period,
        home_tenants: Vec::new(),
    };
    Review::build(usage, engine, permits, ops, &options, source.to_string())
        .entitlements
        .iter()
        .map(|e| RoleUse {
            grantee: e.grantee.to_string(),
            allowed: e.allowed,
            used: e.allowed - e.unused.len(),
        })
        .collect()
}

/// A period as people name it: `2026-Q4`, `2026-11`, `2026`, or
/// `FROM..TO` (dates or RFC 3339 times; a date `TO` is inclusive).
pub fn parse_period(text: &str) -> Result<(Period, String), String> {
    let bad = || {
        format!("{text:?} is not a period: write 2026-Q4, 2026-11, 2026 or 2026-10-01..2026-12-31")
    };
    let day = |y: i32, m: u32| -> Result<DateTime<Utc>, String> {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .ok_or_else(bad)
    };
    let label = text.trim().to_owned();
    if let Some((from, to)) = label.split_once("..") {
        let from =
            crate::audit::export::parse_time(from.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        let to_text = to.trim();
        let mut to =
            crate::audit::export::parse_time(to_text).map_err(|e| format!("{text:?}: {e}"))?;
        if NaiveDate::parse_from_str(to_text, "%Y-%m-%d").is_ok() {
            to += chrono::Duration::days(1);
        }
        if to <= from {
            return Err(format!("{text:?}: the period ends before it starts"));
        }
        return Ok((Period { from, to }, label));
    }
    let parts: Vec<&str> = label.split('-').collect();
    let year: i32 = parts
        .first()
        .and_then(|y| y.parse().ok())
        .filter(|y| (1970..=9999).contains(y))
        .ok_or_else(bad)?;
    let (from, to) = match parts.as_slice() {
        [_] => (day(year, 1)?, day(year + 1, 1)?),
        [_, q] if q.len() == 2 && (q.starts_with('Q') || q.starts_with('q')) => {
            let q: u32 = q[1..]
                .parse()
                .ok()
                .filter(|q| (1..=4).contains(q))
                .ok_or_else(bad)?;
            let from = day(year, 3 * q - 2)?;
            let to = if q == 4 {
                day(year + 1, 1)?
            } else {
                day(year, 3 * q + 1)?
            };
            (from, to)
        }
        [_, m] => {
            let m: u32 = m
                .parse()
                .ok()
                .filter(|m| (1..=12).contains(m))
                .ok_or_else(bad)?;
            let from = day(year, m)?;
            let to = if m == 12 {
                day(year + 1, 1)?
            } else {
                day(year, m + 1)?
            };
            (from, to)
        }
        _ => return Err(bad()),
    };
    debug_assert!(from.year() == year);
    Ok((Period { from, to }, label))
}

/// A control's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    PartlyMet,
    NotMet,
    /// No check of the control applies (no data to judge it by).
    NotApplicable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::PartlyMet => "partly met",
            Status::NotMet => "not met",
            Status::NotApplicable => "not applicable",
        }
    }
}

/// A check as measured.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub measure: String,
    pub evidence: String,
    pub expect: Option<String>,
    pub value: Option<f64>,
    /// None: evidence only, or not applicable.
    pub passed: Option<bool>,
    /// The records behind the value.
    pub seqs: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A control as reported.
#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    pub id: String,
    pub name: String,
    pub description: String,
    /// What it means under the standard reported.
    pub reference: String,
    pub status: Status,
    pub checks: Vec<CheckResult>,
    pub findings: Vec<String>,
}

/// Unused permissions of a role (from an access review of the period).
#[derive(Debug, Clone, Serialize)]
pub struct RoleUse {
    pub grantee: String,
    pub allowed: usize,
    pub used: usize,
}

/// A compliance report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub standard: String,
    pub standard_name: String,
    pub period: Period,
    pub period_label: String,
    pub source: String,
    pub generated: String,
    pub controls: Vec<ControlResult>,
    /// Between 0 and 1; None when no control applies.
    pub rate: Option<f64>,
    pub formula: &'static str,
    pub evidence: Evidence,
    /// Allowed and used operations per role, when a policy set was given.
    pub roles: Vec<RoleUse>,
}

impl Report {
    /// Judges `evidence` by the controls of `standard`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        controls: &Controls,
        standard: &str,
        period: Period,
        period_label: String,
        source: String,
        evidence: Evidence,
        roles: Vec<RoleUse>,
    ) -> Result<Report, String> {
        let standard_name = controls.standards.get(standard).cloned().ok_or_else(|| {
            format!(
                "standard {standard:?} is not in the controls file (it has: {})",
                controls
                    .standards
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let mut results = Vec::new();
        for control in controls
            .controls
            .iter()
            .filter(|c| c.refs.contains_key(standard))
        {
            let mut checks = Vec::new();
            let mut findings = Vec::new();
            for check in &control.checks {
                let measure = evidence
                    .measures
                    .get(&check.measure)
                    .cloned()
                    .unwrap_or_default();
                let passed = match (&check.expect, measure.value) {
                    (Some(expect), Some(value)) => {
                        let holds = Expect::parse(expect)?.holds(value);
                        if !holds && !check.finding.is_empty() {
                            findings.push(check.finding.replace("{value}", &number(value)));
                        }
                        Some(holds)
                    }
                    _ => None,
                };
                checks.push(CheckResult {
                    measure: check.measure.clone(),
                    evidence: check.evidence.clone(),
                    expect: check.expect.clone(),
                    value: measure.value,
                    passed,
                    seqs: measure.seqs,
                    note: measure.note,
                });
            }
            let judged: Vec<bool> = checks.iter().filter_map(|c| c.passed).collect();
            let status = if judged.is_empty() {
                Status::NotApplicable
            } else if judged.iter().all(|p| *p) {
                Status::Met
            } else if judged.iter().any(|p| *p) {
                Status::PartlyMet
            } else {
                Status::NotMet
            };
            results.push(ControlResult {
                id: control.id.clone(),
                name: control.name.clone(),
                description: control.description.clone(),
                reference: control.refs[standard].clone(),
                status,
                checks,
                findings,
            });
        }
        let applicable: Vec<Status> = results
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::NotApplicable)
            .collect();
        let rate = (!applicable.is_empty()).then(|| {
            let score: f64 = applicable
                .iter()
                .map(|s| match s {
                    Status::Met => 1.0,
                    Status::PartlyMet => 0.5,
                    _ => 0.0,
                })
                .sum();
            score / applicable.len() as f64
        });
        Ok(Report {
            standard: standard.to_owned(),
            standard_name,
            period,
            period_label,
            source,
            generated: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            controls: results,
            rate,
            formula: RATE_FORMULA,
            evidence,
            roles,
        })
    }

    /// The report as text for a terminal.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} compliance report, {} ({} to {}), from {}",
            self.standard_name,
            self.period_label,
            self.period.from.format("%Y-%m-%d"),
            self.period.to.format("%Y-%m-%d"),
            self.source
        );
        let _ = writeln!(
            out,
            "compliance rate: {} ({})",
            self.rate
                .map_or("n/a".to_owned(), |r| format!("{:.1} %", r * 100.0)),
            self.formula
        );
        for c in &self.controls {
            let _ = writeln!(
                out,
                "\n{} {}: {}  [{}]",
                c.id,
                c.name,
                c.status.as_str().to_uppercase(),
                c.reference
            );
            for check in &c.checks {
                let mark = match check.passed {
                    Some(true) => "ok  ",
                    Some(false) => "FAIL",
                    None => "    ",
                };
                let _ = writeln!(
                    out,
                    "  {mark} {}: {}{}{}",
                    check.evidence,
                    check.value.map_or("n/a".into(), number),
                    check
                        .expect
                        .as_ref()
                        .map(|e| format!(" (expected {e})"))
                        .unwrap_or_default(),
                    seq_list(&check.seqs)
                );
                if check.value.is_none()
                    && let Some(note) = &check.note
                {
                    let _ = writeln!(out, "       not applicable: {note}");
                }
            }
            for f in &c.findings {
                let _ = writeln!(out, "  finding: {f}");
            }
        }
        out
    }
}

/// A measured value as people write it.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// ` (records 12, 14, 19 and 3 more)`, or nothing.
pub fn seq_list(seqs: &[u64]) -> String {
    if seqs.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = seqs.iter().take(10).map(u64::to_string).collect();
    let more = if seqs.len() > 10 {
        format!(" and {} more", seqs.len() - 10)
    } else {
        String::new()
    };
    format!(" (records {}{more})", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(text: &str) -> (String, String) {
        let (p, _) = parse_period(text).unwrap();
        (p.from.to_rfc3339(), p.to.to_rfc3339())
    }

    #[test]
    fn periods_as_people_name_them() {
        assert_eq!(
            period("2026-Q4"),
            (
                "2026-10-01T00:00:00+00:00".into(),
                "2027-01-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            period("2026-q1"),
            (
                "2026-01-01T00:00:00+00:00".into(),
                "2026-04-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            period("2026-11"),
            (
                "2026-11-01T00:00:00+00:00".into(),
                "2026-12-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            period("2026-12"),
            (
                "2026-12-01T00:00:00+00:00".into(),
                "2027-01-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            period("2026"),
            (
                "2026-01-01T00:00:00+00:00".into(),
                "2027-01-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            period("2026-10-01..2026-10-31"),
            (
                "2026-10-01T00:00:00+00:00".into(),
                "2026-11-01T00:00:00+00:00".into()
            )
        );
        for bad in [
            "2026-Q5",
            "2026-13",
            "Q4",
            "",
            "2026-11..2026-10",
            "2026-10-01..2026-09-01",
        ] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }
}
