//! The compliance report as one self-contained HTML page: inline style and
//! SVG charts, nothing fetched, printable to PDF from a browser. Every
//! value is escaped (maud); the charts are plotters' SVG, whose text is
//! escaped by plotters.

use std::collections::BTreeMap;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

use super::charts::{self, BLUE, GREEN, GREY, ORANGE, Series, VERMILION};
use super::{Report, Status, number};

/// What the appendix says of a record a check points to.
#[derive(Debug, Clone, Serialize)]
pub struct Brief {
    pub ts: String,
    pub kind: String,
    pub who: String,
    pub what: String,
}

/// The page's style: readable on screen, clean on paper.
pub const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e3e3;vertical-align:top}
.status{font-weight:600;padding:.1rem .45rem;border-radius:.3rem;white-space:nowrap}
.met{background:#d7f0e5;color:#00583f}.partly_met{background:#fdefd1;color:#6b4a00}.not_met{background:#f9dcd0;color:#7a2600}.not_applicable{background:#eee;color:#444}
.rate{font-size:2.4rem;font-weight:700}.muted{color:#555}.findings li{margin:.2rem 0}
figure{margin:1rem 0;break-inside:avoid}figure svg{max-width:100%;height:auto}figcaption{font-size:.9rem;color:#444}
a{color:#0b5394}code{font-size:.9em}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}section.control,figure,table{break-inside:avoid}a{color:inherit;text-decoration:none}details{display:block}details>summary{display:none}}
"#;

fn seq_links(seqs: &[u64], listed: &BTreeMap<u64, Brief>) -> Markup {
    html! {
        @for (i, seq) in seqs.iter().take(20).enumerate() {
            @if i > 0 { ", " }
            @if listed.contains_key(seq) { a href={ "#seq-" (seq) } { (seq) } } @else { (seq) }
        }
        @if seqs.len() > 20 { " and " (seqs.len() - 20) " more" }
    }
}

/// The charts of a report's evidence, as (title, caption, SVG).
pub fn charts(report: &Report) -> Vec<(String, String, String)> {
    let ev = &report.evidence;
    let days: Vec<String> = ev
        .calls_per_day
        .keys()
        .map(|d| d.format("%m-%d").to_string())
        .collect();
    let calls = charts::stacked_bars(
        "Calls per day by decision",
        &days,
        &[
            Series {
                name: "allowed",
                color: BLUE,
                values: ev
                    .calls_per_day
                    .values()
                    .map(|d| d.allowed as f64)
                    .collect(),
            },
            Series {
                name: "denied",
                color: VERMILION,
                values: ev.calls_per_day.values().map(|d| d.denied as f64).collect(),
            },
        ],
    );
    let mut denials: Vec<(String, f64)> = ev
        .denials_by_policy
        .iter()
        .map(|(p, n)| (p.clone(), *n as f64))
        .collect();
    denials.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    denials.truncate(12);
    let denials_svg = charts::horizontal_bars("Denials by policy", &denials, ORANGE);
    let jit_days: Vec<String> = ev
        .jit
        .requested_per_day
        .keys()
        .map(|d| d.format("%m-%d").to_string())
        .collect();
    let jit = charts::stacked_bars(
        "JIT requests per day",
        &jit_days,
        &[Series {
            name: "requested",
            color: GREEN,
            values: ev
                .jit
                .requested_per_day
                .values()
                .map(|n| *n as f64)
                .collect(),
        }],
    );
    let mut minutes = ev.jit.minutes_to_approval.clone();
    minutes.sort_by(f64::total_cmp);
    let median = minutes.get(minutes.len() / 2).copied();
    let levels = ["low", "medium", "high", "critical"];
    let alerts: Vec<(String, f64)> = levels
        .iter()
        .map(|l| {
            (
                (*l).to_owned(),
                ev.risk_alerts_by_level.get(*l).copied().unwrap_or(0) as f64,
            )
        })
        .chain(
            ev.risk_alerts_by_level
                .iter()
                .filter(|(l, _)| !levels.contains(&l.as_str()))
                .map(|(l, n)| (l.clone(), *n as f64)),
        )
        .collect();
    let alerts_svg = charts::horizontal_bars("Risk alerts by level", &alerts, VERMILION);
    let role_labels: Vec<String> = report.roles.iter().map(|r| r.grantee.clone()).collect();
    let roles = charts::stacked_bars(
        "Permissions per role: used and unused in the period",
        &role_labels,
        &[
            Series {
                name: "used",
                color: BLUE,
                values: report.roles.iter().map(|r| r.used as f64).collect(),
            },
            Series {
                name: "unused",
                color: GREY,
                values: report
                    .roles
                    .iter()
                    .map(|r| (r.allowed - r.used) as f64)
                    .collect(),
            },
        ],
    );
    vec![
        (
            "calls".into(),
            format!(
                "{} calls in the period: {} allowed, {} denied.",
                ev.calls,
                ev.calls_per_day.values().map(|d| d.allowed).sum::<u64>(),
                ev.calls_per_day.values().map(|d| d.denied).sum::<u64>()
            ),
            calls,
        ),
        (
            "denials".into(),
            format!(
                "Denied calls by the policy that decided them ({} policies).",
                ev.denials_by_policy.len()
            ),
            denials_svg,
        ),
        (
            "jit".into(),
            format!(
                "{} JIT requests; {} approved, {} denied; median time to approval {}.",
                ev.jit.requested_per_day.values().sum::<u64>(),
                ev.jit.approved,
                ev.jit.denied,
                median.map_or("n/a".to_owned(), |m| format!("{m:.1} minutes"))
            ),
            jit,
        ),
        (
            "alerts".into(),
            format!(
                "{} risk alerts.",
                ev.risk_alerts_by_level.values().sum::<u64>()
            ),
            alerts_svg,
        ),
        (
            "roles".into(),
            if report.roles.is_empty() {
                "No policy set given: unused permissions not measured.".into()
            } else {
                "Operations the policy set allows each role, and how many were used in the period."
                    .into()
            },
            roles,
        ),
    ]
}

/// The whole page. `listed` are the records the checks point to.
pub fn page(report: &Report, listed: &BTreeMap<u64, Brief>) -> String {
    let title = format!(
        "{} compliance report, {}",
        report.standard_name, report.period_label
    );
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.muted {
                    "Period " (report.period.from.format("%Y-%m-%d")) " to " (report.period.to.format("%Y-%m-%d"))
                    " (end exclusive). Evidence from " code { (report.source) } ", generated " (report.generated) "."
                }
                p {
                    span.rate { (report.rate.map_or("n/a".to_owned(), |r| format!("{:.1} %", r * 100.0))) }
                    " compliance rate"
                    br;
                    span.muted { (report.formula) }
                }
                table {
                    thead { tr { th { "Control" } th { "Status" } th { "Findings" } } }
                    tbody {
                        @for c in &report.controls {
                            tr {
                                td { a href={ "#" (c.id) } { (c.id) " " (c.name) } }
                                td { span class={ "status " (status_class(c.status)) } { (c.status.as_str()) } }
                                td { (c.findings.len()) }
                            }
                        }
                    }
                }
                h2 { "Pictures" }
                @for (id, caption, svg) in charts(report) {
                    figure id={ "chart-" (id) } {
                        (PreEscaped(svg))
                        figcaption { (caption) }
                    }
                }
                @for c in &report.controls {
                    section.control id=(c.id) {
                        h2 { (c.id) " " (c.name) " " span class={ "status " (status_class(c.status)) } { (c.status.as_str()) } }
                        p { (c.description) }
                        p.muted { (report.standard_name) ": " (c.reference) }
                        @if !c.findings.is_empty() {
                            ul.findings { @for f in &c.findings { li { (f) } } }
                        }
                        table {
                            thead { tr { th { "Evidence" } th { "Value" } th { "Expected" } th { "Result" } th { "Records" } } }
                            tbody {
                                @for check in &c.checks {
                                    tr {
                                        td { (check.evidence) @if let Some(note) = &check.note { br; span.muted { (note) } } }
                                        td { (check.value.map_or("n/a".to_owned(), number)) }
                                        td { (check.expect.clone().unwrap_or_default()) }
                                        td { (match check.passed { Some(true) => "holds", Some(false) => "fails", None => "evidence" }) }
                                        td { (seq_links(&check.seqs, listed)) }
                                    }
                                }
                            }
                        }
                    }
                }
                h2 { "Records referred to" }
                p.muted { "Sequence numbers are positions in the audit log; " code { "warden audit export" } " and " code { "warden audit verify" } " show the same records." }
                table {
                    thead { tr { th { "Seq" } th { "Time" } th { "Kind" } th { "Who" } th { "What" } } }
                    tbody {
                        @for (seq, b) in listed {
                            tr id={ "seq-" (seq) } { td { (seq) } td { (b.ts) } td { (b.kind) } td { (b.who) } td { (b.what) } }
                        }
                    }
                }
            }
        }
    };
    markup.into_string()
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Met => "met",
        Status::PartlyMet => "partly_met",
        Status::NotMet => "not_met",
        Status::NotApplicable => "not_applicable",
    }
}

/// A record's brief for the appendix.
pub fn brief(record: &serde_json::Value) -> Brief {
    let s = |path: &[&str]| -> String {
        let mut v = record;
        for k in path {
            v = &v[*k];
        }
        v.as_str().map(str::to_owned).unwrap_or_default()
    };
    let ops: Vec<String> = record["operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["azure_op"].as_str().map(str::to_owned))
        .collect();
    let what = match s(&["kind"]).as_str() {
        "intent" => format!(
            "{} {} ({})",
            s(&["tool"]),
            ops.join(", "),
            s(&["decision", "effect"])
        ),
        "policy_load" => format!(
            "policy set {} ({})",
            s(&["details", "hash"]),
            s(&["details", "trigger"])
        ),
        "access_review" => format!("access review {}", s(&["details", "event"])),
        other => other.to_owned(),
    };
    Brief {
        ts: s(&["ts"]),
        kind: s(&["kind"]),
        who: s(&["principal", "name"]),
        what,
    }
}
