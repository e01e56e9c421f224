//! The markup of automatic responses on the approvals page (maud: every
//! value escaped): the incidents (open and acknowledged first, then the
//! last closed ones), the suspended principals and the blocked networks,
//! each with the forms a security manager acts with. Views decide
//! nothing (the responses service does); they leave out forms that cannot
//! work for this viewer.
//!
//! Anchors: each incident is `#INC-…` (the webhooks' links point there),
//! the sections are `#incidents`, `#suspensions` and `#blocks`.

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{Markup, html};
use serde_json::Value;

use super::responses::MAX_NOTE;
use super::views::{relative, stamp};
use crate::response::state::{Block, Incident, IncidentStatus, Suspension, Taken, TriggeringCall};

/// What the page shows, read from the store.
pub(super) struct Shown {
    /// In the order shown: open, acknowledged, then the last closed.
    pub incidents: Vec<Incident>,
    /// Closed incidents left out (older than those shown).
    pub closed_hidden: usize,
    pub suspensions: Vec<Suspension>,
    pub blocks: Vec<Block>,
}

/// What the viewer may do.
pub(super) struct Rights<'a> {
    /// May acknowledge, close, lift and unblock, or why not.
    pub act: Result<(), String>,
    /// The session's CSRF token, for the forms.
    pub csrf: &'a str,
    /// The text typed into a form whose action failed: (form key, text).
    pub draft: Option<(&'a str, &'a str)>,
}

impl Rights<'_> {
    fn draft(&self, key: &str) -> &str {
        self.draft
            .filter(|(k, _)| *k == key)
            .map_or("", |(_, text)| text)
    }
}

/// The key of a form's draft: the incident and action, the suspended
/// principal, the blocked network.
pub(super) fn incident_key(id: &str, action: &str) -> String {
    format!("{id}/{action}")
}

pub(super) fn lift_key(principal: &str) -> String {
    format!("lift:{principal}")
}

pub(super) fn unblock_key(network: &str) -> String {
    format!("unblock:{network}")
}

/// An RFC 3339 time: the UTC time, and how long ago or ahead.
fn when(text: &str, now: DateTime<Utc>) -> Markup {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            html! {
                time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) {
                    (stamp(t)) " " span.muted { "(" (relative(t, now)) ")" }
                }
            }
        }
        Err(_) => html! { (text) },
    }
}

fn status_badge(status: IncidentStatus) -> Markup {
    let class = match status {
        IncidentStatus::Open => "risk risk-high",
        IncidentStatus::Acknowledged => "risk risk-medium",
        IncidentStatus::Closed => "risk risk-none",
    };
    html! { span class=(class) { (status.as_str()) } }
}

fn records(seqs: &[u64]) -> String {
    seqs.iter()
        .map(|s| format!("#{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name (tid/oid)` of an incident's principal.
fn principal(p: &Value) -> Markup {
    let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    html! {
        (text("name")) " " span.muted { "(" code { (text("tid")) "/" (text("oid")) } ")" }
    }
}

/// The three sections, below the requests.
pub(super) fn sections(
    shown: &Result<Shown, String>,
    rights: &Rights<'_>,
    now: DateTime<Utc>,
) -> Markup {
    let shown = match shown {
        Ok(shown) => shown,
        Err(error) => {
            return html! {
                section id="incidents" aria-labelledby="incidents-title" {
                    h2 id="incidents-title" { "Incidents" }
                    p.error role="alert" { "Incidents, suspensions and blocks could not be read: " (error) }
                }
            };
        }
    };
    html! {
        section id="incidents" aria-labelledby="incidents-title" {
            h2 id="incidents-title" { "Incidents" }
            p.muted {
                "Warden opens an incident when a response rule answers a finding. Acknowledge it when "
                "you take it on and close it when it is dealt with; each is an audit record with your note."
            }
            @if let Err(why) = &rights.act {
                p.muted { "You cannot act on incidents, suspensions or blocks: " (why) "." }
            }
            @if shown.incidents.is_empty() {
                p.muted { "No incidents." }
            }
            @for incident in &shown.incidents {
                (incident_section(incident, rights, now))
            }
            @if shown.closed_hidden > 0 {
                p.muted {
                    (shown.closed_hidden) " older closed incident"
                    @if shown.closed_hidden != 1 { "s" }
                    " not shown: " code { "warden response incidents --status closed" } " lists them."
                }
            }
        }
        section id="suspensions" aria-labelledby="suspensions-title" {
            h2 id="suspensions-title" { "Suspended principals" }
            p.muted { "Every call of a suspended principal is refused until a security manager lifts the suspension." }
            @if shown.suspensions.is_empty() {
                p.muted { "No principal is suspended." }
            }
            @for (i, s) in shown.suspensions.iter().enumerate() {
                (suspension_section(i + 1, s, rights, now))
            }
        }
        section id="blocks" aria-labelledby="blocks-title" {
            h2 id="blocks-title" { "Blocked networks" }
            p.muted { "Every request from a blocked network is refused until its block ends or a security manager ends it." }
            @if shown.blocks.is_empty() {
                p.muted { "No network is blocked." }
            }
            @for (i, b) in shown.blocks.iter().enumerate() {
                (block_section(i + 1, b, rights, now))
            }
        }
    }
}

fn incident_section(i: &Incident, rights: &Rights<'_>, now: DateTime<Utc>) -> Markup {
    let title_id = format!("{}-title", i.id);
    html! {
        section id=(i.id) aria-labelledby=(title_id) {
            h3 id=(title_id) { (i.title) }
            table {
                tbody {
                    tr { th scope="row" { "Incident" } td { code { (i.id) } } }
                    tr {
                        th scope="row" { "Status" }
                        td {
                            (status_badge(i.status))
                            @if let Some(a) = &i.acknowledged {
                                br;
                                "Acknowledged by " strong { (a.name) } " " (when(&a.at, now)) ": " (a.note)
                            }
                            @if let Some(a) = &i.closed {
                                br;
                                "Closed by " strong { (a.name) } " " (when(&a.at, now)) ": " (a.note)
                            }
                        }
                    }
                    tr { th scope="row" { "Opened" } td { (when(&i.opened, now)) ", record #" (i.seq) } }
                    tr { th scope="row" { "Rule" } td { code { (i.rule) } } }
                    @if let Some(p) = &i.principal {
                        tr { th scope="row" { "Principal" } td { (principal(p)) } }
                    }
                    @if let Some(ip) = &i.source_ip {
                        tr { th scope="row" { "Source address" } td { code { (ip) } } }
                    }
                    tr {
                        th scope="row" { "Findings" }
                        td {
                            @if i.findings.is_empty() { span.muted { "none recorded" } }
                            @else { ul { @for f in &i.findings { li { (f) } } } }
                        }
                    }
                }
            }
            @if !i.calls.is_empty() {
                (calls_table(&i.calls))
            }
            @if !i.actions.is_empty() {
                (actions_table(&i.actions))
            }
            @if rights.act.is_ok() && i.status != IncidentStatus::Closed {
                @if i.status == IncidentStatus::Open {
                    (note_form(i, "acknowledge", "Note to acknowledge (required, recorded in the audit log)", "Acknowledge", rights))
                }
                (note_form(i, "close", "Note to close (required, recorded in the audit log)", "Close incident", rights))
            }
        }
    }
}

fn calls_table(calls: &[TriggeringCall]) -> Markup {
    html! {
        table.list {
            caption.muted { "Triggering calls" }
            thead {
                tr {
                    th scope="col" { "Call" }
                    th scope="col" { "Tool" }
                    th scope="col" { "Operations" }
                    th.narrow scope="col" { "Records" }
                }
            }
            tbody {
                @for c in calls {
                    tr {
                        td data-label="Call" { code { (c.call_id) } }
                        td data-label="Tool" { (c.tool) }
                        td data-label="Operations" { (c.operations.join(", ")) }
                        td.narrow data-label="Records" { (records(&c.seqs)) }
                    }
                }
            }
        }
    }
}

fn actions_table(actions: &[Taken]) -> Markup {
    html! {
        table.list {
            caption.muted { "Actions taken" }
            thead {
                tr {
                    th.narrow scope="col" { "Action" }
                    th.narrow scope="col" { "Mode" }
                    th.narrow scope="col" { "Result" }
                    th scope="col" { "Detail" }
                    th.narrow scope="col" { "Record" }
                }
            }
            tbody {
                @for a in actions {
                    tr {
                        td.narrow data-label="Action" { (a.action) }
                        td.narrow data-label="Mode" { (a.mode) }
                        td.narrow data-label="Result" {
                            @if a.result == "failed" { strong { (a.result) } } @else { (a.result) }
                        }
                        td data-label="Detail" { (a.detail) }
                        td.narrow data-label="Record" {
                            @if let Some(seq) = a.seq { "#" (seq) } @else { span.muted { "–" } }
                        }
                    }
                }
            }
        }
    }
}

fn note_form(i: &Incident, action: &str, label: &str, button: &str, rights: &Rights<'_>) -> Markup {
    let field = format!("{}-{action}-note", i.id);
    html! {
        form method="post" action=(format!("/admin/incidents/{}/{action}", i.id)) {
            input type="hidden" name="csrf" value=(rights.csrf);
            label for=(field) { (label) }
            textarea id=(field) name="note" rows="2" required maxlength=(MAX_NOTE) {
                (rights.draft(&incident_key(&i.id, action)))
            }
            div { button type="submit" { (button) } }
        }
    }
}

fn suspension_section(n: usize, s: &Suspension, rights: &Rights<'_>, now: DateTime<Utc>) -> Markup {
    let key = Suspension::key(&s.tid, &s.oid);
    let title_id = format!("suspension-{n}-title");
    let field = format!("suspension-{n}-reason");
    html! {
        section id=(format!("suspension-{n}")) aria-labelledby=(title_id) {
            h3 id=(title_id) { "Suspended: " (s.name) }
            table {
                tbody {
                    tr { th scope="row" { "Principal" } td { (s.name) " " span.muted { "(" code { (key) } ")" } } }
                    tr { th scope="row" { "Since" } td { (when(&s.at, now)) } }
                    tr { th scope="row" { "Rule" } td { code { (s.rule) } } }
                    tr { th scope="row" { "Why" } td { (s.reason) } }
                    tr { th scope="row" { "Triggering call" } td { code { (s.call_id) } } }
                    @if let Some(id) = &s.incident_id {
                        tr { th scope="row" { "Incident" } td { a href=(format!("#{id}")) { (id) } } }
                    }
                    @if s.seq > 0 {
                        tr { th scope="row" { "Record" } td { "#" (s.seq) } }
                    }
                }
            }
            @if rights.act.is_ok() {
                form method="post" action="/admin/suspensions/lift" {
                    input type="hidden" name="csrf" value=(rights.csrf);
                    input type="hidden" name="principal" value=(key);
                    label for=(field) { "Reason to lift the suspension (required, recorded in the audit log)" }
                    textarea id=(field) name="reason" rows="2" required maxlength=(MAX_NOTE) {
                        (rights.draft(&lift_key(&key)))
                    }
                    div { button type="submit" { "Lift suspension" } }
                }
            }
        }
    }
}

fn block_section(n: usize, b: &Block, rights: &Rights<'_>, now: DateTime<Utc>) -> Markup {
    let title_id = format!("block-{n}-title");
    let field = format!("block-{n}-reason");
    html! {
        section id=(format!("block-{n}")) aria-labelledby=(title_id) {
            h3 id=(title_id) { "Blocked: " (b.network) }
            table {
                tbody {
                    tr { th scope="row" { "Network" } td { code { (b.network) } } }
                    tr { th scope="row" { "Since" } td { (when(&b.at, now)) } }
                    tr { th scope="row" { "Until" } td { (when(&b.until, now)) } }
                    tr { th scope="row" { "Rule" } td { code { (b.rule) } } }
                    tr { th scope="row" { "Why" } td { (b.failures) " of " (b.attempts) " authentication attempts failed" } }
                    @if b.seq > 0 {
                        tr { th scope="row" { "Record" } td { "#" (b.seq) } }
                    }
                }
            }
            @if rights.act.is_ok() {
                form method="post" action="/admin/blocks/unblock" {
                    input type="hidden" name="csrf" value=(rights.csrf);
                    input type="hidden" name="network" value=(b.network);
                    label for=(field) { "Reason to end the block (required, recorded in the audit log)" }
                    textarea id=(field) name="reason" rows="2" required maxlength=(MAX_NOTE) {
                        (rights.draft(&unblock_key(&b.network)))
                    }
                    div { button type="submit" { "End block" } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::state::Act;

    const SCRIPT: &str = "<script>alert(1)</script>";

    fn incident(status: IncidentStatus) -> Incident {
        Incident {
            id: "INC-0190f0a0-0000-7000-8000-000000000001".into(),
            status,
            opened: "2026-03-01T10:00:00Z".into(),
            rule: "mass-deletion".into(),
            title: format!("mass-deletion: delete_spike by {SCRIPT}"),
            principal: Some(serde_json::json!({"tid": "t-1", "oid": "o-1", "name": SCRIPT})),
            source_ip: Some("203.0.113.7".into()),
            calls: vec![TriggeringCall {
                call_id: "c-1".into(),
                tool: "echo".into(),
                seqs: vec![41, 42],
                operations: vec!["Microsoft.Compute/virtualMachines/delete".into()],
            }],
            findings: vec!["12 deletes in the last hour".into()],
            actions: vec![Taken {
                action: "suspend".into(),
                mode: "enforce".into(),
                result: "done".into(),
                detail: "suspended".into(),
                seq: Some(43),
            }],
            seq: 44,
            acknowledged: None,
            closed: None,
        }
    }

    fn suspension() -> Suspension {
        Suspension {
            tid: "t-1".into(),
            oid: "o-1".into(),
            name: SCRIPT.into(),
            rule: "mass-deletion".into(),
            reason: "a burst of deletes".into(),
            at: "2026-03-01T10:00:00Z".into(),
            call_id: "c-1".into(),
            seq: 43,
            incident_id: Some("INC-0190f0a0-0000-7000-8000-000000000001".into()),
            lifted: None,
        }
    }

    fn render(shown: Shown, act: Result<(), String>, draft: Option<(&str, &str)>) -> String {
        let rights = Rights {
            act,
            csrf: "tok",
            draft,
        };
        let now = "2026-03-01T11:00:00Z".parse().unwrap();
        sections(&Ok(shown), &rights, now).into_string()
    }

    #[test]
    fn an_incident_shows_its_calls_records_actions_and_forms_escaped() {
        let html = render(
            Shown {
                incidents: vec![incident(IncidentStatus::Open)],
                closed_hidden: 2,
                suspensions: vec![suspension()],
                blocks: Vec::new(),
            },
            Ok(()),
            Some(("lift:t-1/o-1", "typed <b>before</b>")),
        );
        assert!(!html.contains(SCRIPT), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        for part in [
            r#"id="INC-0190f0a0-0000-7000-8000-000000000001""#,
            r#"id="incidents""#,
            r#"id="suspensions""#,
            r#"id="blocks""#,
            "#41, #42",
            "Microsoft.Compute/virtualMachines/delete",
            "203.0.113.7",
            "12 deletes in the last hour",
            "#43",
            r#"action="/admin/incidents/INC-0190f0a0-0000-7000-8000-000000000001/acknowledge""#,
            r#"action="/admin/incidents/INC-0190f0a0-0000-7000-8000-000000000001/close""#,
            r#"action="/admin/suspensions/lift""#,
            r#"name="principal" value="t-1/o-1""#,
            r#"name="csrf" value="tok""#,
            "typed &lt;b&gt;before&lt;/b&gt;",
            "2 older closed incidents not shown",
            "No network is blocked.",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
    }

    #[test]
    fn readers_get_no_forms_and_closed_incidents_none_either() {
        let mut closed = incident(IncidentStatus::Closed);
        closed.closed = Some(Act {
            by: "t-1/o-9".into(),
            name: "sam".into(),
            at: "2026-03-01T10:30:00Z".into(),
            note: "restored from backup".into(),
        });
        let html = render(
            Shown {
                incidents: vec![incident(IncidentStatus::Open)],
                closed_hidden: 0,
                suspensions: vec![suspension()],
                blocks: Vec::new(),
            },
            Err("acting on automatic responses needs the app role SecurityManager".into()),
            None,
        );
        assert!(!html.contains("<form"), "{html}");
        assert!(html.contains("needs the app role SecurityManager"));
        let html = render(
            Shown {
                incidents: vec![closed],
                closed_hidden: 0,
                suspensions: Vec::new(),
                blocks: Vec::new(),
            },
            Ok(()),
            None,
        );
        assert!(!html.contains("<form"), "{html}");
        assert!(html.contains("Closed by <strong>sam</strong>"), "{html}");
        assert!(html.contains("restored from backup"));
        assert!(html.contains("No principal is suspended."));
    }
}
