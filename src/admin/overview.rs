//! The overview for security managers and auditors (`/admin/overview`):
//! the compliance report's pictures over the last days, drawn from the
//! audit log of the store this Warden runs on, with the headline counts
//! beside them. Read-only.

use chrono::Utc;
use maud::{Markup, PreEscaped, html};

use crate::audit::source::Source;
use crate::catalog::Catalog;
use crate::policy::Engine;
use crate::report::{Controls, MEASURES, Report, html as report_html};
use crate::review::Period;
use crate::store::Location;

/// Days the overview covers.
pub const DAYS: u32 = 30;

/// The overview's body, or why it could not be read. With the running
/// policy set, it also shows each role's used and unused permissions.
pub fn body(
    db: &Location,
    policy: Option<&(std::sync::Arc<Engine>, std::sync::Arc<Catalog>)>,
) -> Result<Markup, String> {
    let period = Period::days_before(Utc::now(), DAYS);
    let source = Source::Store(db.clone());
    let (fold, usage) =
        crate::report::read(&source, period, policy.is_some()).map_err(|e| e.to_string())?;
    let roles = match (policy, usage) {
        (Some((engine, catalog)), Some(usage)) => {
            let permits =
                crate::policy::narrow::permits(&engine.config().dir).map_err(|e| e.to_string())?;
            crate::report::role_use(
                usage,
                engine,
                &permits,
                &catalog.operation_classes(),
                &source,
            )
        }
        _ => Vec::new(),
    };
    let checkpoints = source.checkpoints().map_err(|e| e.to_string())?;
    let evidence = fold.finish(&checkpoints, None, None);
    let controls = Controls::parse(crate::report::controls::BUILTIN, MEASURES)?;
    let report = Report::build(
        &controls,
        "iso27001",
        period,
        format!("last {DAYS} days"),
        "this Warden's audit log".into(),
        evidence,
        roles,
    )?;
    let ev = &report.evidence;
    let count = |measure: &str| {
        ev.measures
            .get(measure)
            .and_then(|m| m.value)
            .map_or("n/a".to_owned(), crate::report::number)
    };
    let charts = report_html::charts(&report);
    Ok(html! {
        h1 { "Overview" }
        p.muted {
            "The last " (DAYS) " days of the audit log, from " (period.from.format("%Y-%m-%d %H:%M")) " UTC. "
            "The full, printable report for a period and a standard: "
            code { "warden report compliance --standard sox --period 2026-Q4 --format html" } "."
        }
        table.overview {
            tbody {
                tr { th { "Calls" } td { (ev.calls) } }
                tr { th { "Privileged operations" } td { (count("privileged_calls")) } }
                tr { th { "Break-glass calls" } td { (count("break_glass_calls")) } }
                tr { th { "Policy changes (unapproved)" } td { (count("policy_changes")) " (" (count("policy_changes_unapproved")) ")" } }
                tr { th { "Calls with an intent and no outcome" } td { (count("calls_without_outcome")) } }
                tr { th { "Silences longer than twice the heartbeat" } td { (count("heartbeat_gaps")) } }
            }
        }
        @for (id, caption, svg) in charts {
            figure.chart id={ "chart-" (id) } {
                (PreEscaped(svg))
                figcaption { (caption) }
            }
        }
    })
}
