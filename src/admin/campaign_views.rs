//! The markup of the access review pages (maud: every value escaped): the
//! campaigns, and one campaign with each item's evidence, its decision
//! and the keep or remove form, and once closed its proposal. Views decide
//! nothing (the campaigns service does); they leave out forms that cannot
//! work for this viewer.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::views::{Notes, Viewer, messages, relative, stamp};
use crate::review::campaign::{Campaign, Choice, Item, ItemDecision, Summary};
use crate::review::proposal::{Proposal, Tests};

/// What the viewer may do on the campaign pages.
pub(super) struct Rights {
    /// May decide items, or why not.
    pub decide: Result<(), String>,
    /// May close campaigns (a security manager with MFA).
    pub close: bool,
}

fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) title=(stamp(t)) {
            (stamp(t)) " (" (relative(t, now)) ")"
        }
    }
}

fn name(c: &Campaign) -> String {
    if c.title.is_empty() {
        format!("Campaign {}", c.id)
    } else {
        format!("{} ({})", c.title, c.id)
    }
}

fn scope_text(scope: &crate::review::campaign::Scope) -> String {
    let mut parts = Vec::new();
    if !scope.roles.is_empty() {
        parts.push(format!("roles {}", scope.roles.join(", ")));
    }
    if !scope.groups.is_empty() {
        parts.push(format!("groups {}", scope.groups.join(", ")));
    }
    if !scope.principals.is_empty() {
        parts.push(format!("principals {}", scope.principals.join(", ")));
    }
    parts.join("; ")
}

/// `/admin/campaigns`: every campaign, newest first.
pub(super) fn list(campaigns: &[Summary], notes: &Notes<'_>, now: DateTime<Utc>) -> Markup {
    html! {
        h1 { "Access reviews" }
        (messages(notes))
        p.muted {
            "Security managers start campaigns with "
            code { "warden access campaign start" } " (or the API). Reviewers decide each "
            "principal's role here: keep or remove, with a reason. Every decision is an audit record; "
            "a closed campaign proposes a policy change, which a security manager applies."
        }
        @if campaigns.is_empty() {
            p.muted { "No campaigns yet." }
        } @else {
            table.list {
                caption.muted { "Campaigns" }
                thead {
                    tr {
                        th scope="col" { "Campaign" }
                        th scope="col" { "Scope" }
                        th scope="col" { "Deadline" }
                        th.narrow scope="col" { "Status" }
                        th scope="col" { "Decided" }
                    }
                }
                tbody {
                    @for c in campaigns {
                        tr {
                            th scope="row" {
                                a href=(format!("/admin/campaigns/{}", c.id)) {
                                    @if c.title.is_empty() { "Campaign " (c.id) } @else { (c.title) }
                                }
                            }
                            td data-label="Scope" { (scope_text(&c.scope)) }
                            td data-label="Deadline" { (when(c.deadline, now)) }
                            td.narrow data-label="Status" { (c.status) }
                            td data-label="Decided" {
                                (c.counts.items - c.counts.undecided) " of " (c.counts.items)
                                @if c.counts.removed + c.counts.auto_removed > 0 {
                                    " · " (c.counts.removed + c.counts.auto_removed) " removed"
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/admin/campaigns/{id}`.
pub(super) fn detail(
    viewer: &Viewer<'_>,
    rights: &Rights,
    campaign: &Campaign,
    draft: Option<(&str, &str)>,
    notes: &Notes<'_>,
    now: DateTime<Utc>,
) -> Markup {
    let counts = campaign.counts();
    let open = campaign.is_open() && now < campaign.deadline;
    html! {
        p { a href="/admin/campaigns" { "← All access reviews" } }
        h1 { "Access review: " (name(campaign)) }
        (messages(notes))
        table {
            tbody {
                tr { th scope="row" { "Status" } td { strong { (campaign.status(now)) } " · " (counts.items - counts.undecided) " of " (counts.items) " items decided" } }
                tr { th scope="row" { "Scope" } td { (scope_text(&campaign.scope)) } }
                tr { th scope="row" { "Deadline" } td { (when(campaign.deadline, now)) } }
                tr {
                    th scope="row" { "Undecided at the deadline" }
                    td { @if campaign.auto_remove_undecided { "removed" } @else { "kept" } }
                }
                tr { th scope="row" { "Started" } td { (when(campaign.created, now)) " by " (campaign.created_by.name) } }
                tr {
                    th scope="row" { "Evidence" }
                    td {
                        "The audit log's last " (campaign.days) " days ("
                        (campaign.period.from.format("%Y-%m-%d")) " to " (campaign.period.to.format("%Y-%m-%d"))
                        "), against policy set " code { (short(&campaign.policy_set)) }
                    }
                }
                tr { th scope="row" { "Reviewers" } td { "holders of " (campaign.reviewer_roles.join(" or ")) ", with MFA; never about themselves" } }
                @if !campaign.not_found.is_empty() {
                    tr { th scope="row" { "Not in the log" } td { (campaign.not_found.join(", ")) } }
                }
            }
        }
        @if campaign.is_open() && rights.close && counts.undecided == 0 {
            form method="post" action=(format!("/admin/campaigns/{}/close", campaign.id)) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                p { "Every item is decided: close the campaign to make its policy change proposal." }
                button type="submit" { "Close the campaign" }
            }
        }
        @if open {
            @if let Err(why) = &rights.decide {
                p.muted { "You cannot decide items: " (why) "." }
            }
        }
        @if let Some(closed) = &campaign.closed {
            section aria-labelledby="outcome" {
                h2 id="outcome" { "Outcome" }
                p {
                    "Closed " (when(closed.at, now)) ": " (closed.why)
                    @if let Some(by) = &closed.by { " (" (by.name) ")" }
                    ". Kept " (closed.counts.kept) ", removed " (closed.counts.removed)
                    ", removed at the deadline " (closed.counts.auto_removed)
                    ", kept at the deadline " (closed.counts.auto_kept) "."
                }
                (proposal_view(campaign, &closed.proposal))
            }
        }
        section aria-labelledby="items" {
            h2 id="items" { "Items (" (campaign.items.len()) ")" }
            @if campaign.items.is_empty() {
                p.muted { "Nobody in the log holds what the scope names." }
            }
            @for item in &campaign.items {
                (item_view(viewer, rights, campaign, item, open, draft, now))
            }
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

fn decision_text(d: &ItemDecision) -> String {
    let what = match d.decision {
        Choice::Keep => "Kept",
        Choice::Remove => "Removed",
    };
    match &d.reviewer {
        Some(r) => format!("{what} by {} at {}: {}", r.name, stamp(d.at), d.reason),
        None => format!("{what} at the deadline ({}): {}", stamp(d.at), d.reason),
    }
}

fn item_view(
    viewer: &Viewer<'_>,
    rights: &Rights,
    campaign: &Campaign,
    item: &Item,
    open: bool,
    draft: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Markup {
    let me = viewer.principal;
    let own = item.principal.tid == me.tid && item.principal.oid == me.oid;
    let mine = item
        .decision
        .as_ref()
        .and_then(|d| d.reviewer.as_ref())
        .is_some_and(|r| r.tid == me.tid && r.oid == me.oid);
    let anchor = format!("item-{}", item.id);
    let reason_id = format!("reason-{}", item.id);
    let draft = draft
        .filter(|(for_item, _)| *for_item == item.id)
        .map(|(_, text)| text)
        .unwrap_or("");
    html! {
        section.item id=(anchor) aria-labelledby=(format!("{anchor}-h")) {
            h3 id=(format!("{anchor}-h")) {
                "#" (item.id) " " (item.principal.name) " · " (item.role)
            }
            table {
                tbody {
                    tr {
                        th scope="row" { "Principal" }
                        td {
                            (item.principal.name) " " span.muted { "(" (item.principal.kind) ", object " code { (item.principal.oid) } ")" }
                            @if item.guest { " " strong { "guest" } }
                        }
                    }
                    tr {
                        th scope="row" { "Role" }
                        td {
                            (item.role)
                            @if !item.via_groups.is_empty() { span.muted { " through group " (item.via_groups.join(", ")) } }
                        }
                    }
                    tr {
                        th scope="row" { "Last activity" }
                        td { (item.last_activity.as_deref().map_or("none in the log", |t| &t[..t.len().min(19)])) }
                    }
                    tr {
                        th scope="row" { "Role last used" }
                        td { (item.last_used.as_deref().map_or("never in the period", |t| &t[..t.len().min(19)])) }
                    }
                    tr {
                        th scope="row" { "Operations used" }
                        td {
                            @if item.operations.is_empty() { span.muted { "none through this role" } }
                            @else {
                                ul {
                                    @for (op, calls) in &item.operations {
                                        li { code { (op) } " × " (calls) }
                                    }
                                }
                            }
                        }
                    }
                    tr {
                        th scope="row" { "Needed" }
                        td { @if item.needed { "yes" } @else { strong { "no" } ": no call needed this role" } }
                    }
                    tr { th scope="row" { "Dormant" } td { @if item.dormant { strong { "yes" } } @else { "no" } } }
                    tr {
                        th scope="row" { "Risk factors" }
                        td {
                            @if item.risk_factors.is_empty() { span.muted { "none" } }
                            @else { ul { @for f in &item.risk_factors { li { (f) } } } }
                        }
                    }
                    tr {
                        th scope="row" { "Suggestion" }
                        td { strong { (item.suggestion.as_str()) } ": " (item.suggestion_reason) }
                    }
                    tr {
                        th scope="row" { "Decision" }
                        td {
                            @match &item.decision {
                                Some(d) => { strong.decision { (decision_text(d)) } }
                                None => { span.muted { "undecided" } }
                            }
                            @for old in &item.overridden {
                                br; span.muted { "Overridden: " (decision_text(old)) }
                            }
                        }
                    }
                }
            }
            @if open && rights.decide.is_ok() {
                @if own {
                    p.muted { "This item is about your own access: another reviewer decides it." }
                } @else if mine {
                    p.muted { "You decided this item; another reviewer may override it." }
                } @else {
                    form method="post" action=(format!("/admin/campaigns/{}/items/{}/decide", campaign.id, item.id)) {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        label for=(reason_id) { "Reason (required, recorded in the audit log)" }
                        textarea id=(reason_id) name="reason" rows="2" required { (draft) }
                        @if item.decision.is_some() {
                            p {
                                input type="checkbox" id=(format!("override-{}", item.id)) name="override" value="true";
                                " "
                                label for=(format!("override-{}", item.id)) { "Override the decision above" }
                            }
                        }
                        div.choices {
                            div.choice {
                                p { "Keep: " (item.principal.name) " keeps " (item.role) "." }
                                button.approve type="submit" name="decision" value="keep" { "Keep" }
                            }
                            div.choice {
                                p { "Remove: the proposal takes " (item.principal.name) " out of " (item.role) "'s permits." }
                                button.deny type="submit" name="decision" value="remove" { "Remove" }
                            }
                        }
                    }
                }
            }
            @if !open && item.decision.is_none() && campaign.is_open() {
                p.muted { "The deadline passed: this item is decided when the campaign is next read." }
            }
            @if now < campaign.deadline && !campaign.is_open() {
                p.muted { "The campaign is closed." }
            }
        }
    }
}

fn tests_text(tests: &Tests) -> String {
    if tests.cases == 0 {
        "none".to_owned()
    } else {
        format!("{} of {} passed", tests.passed, tests.cases)
    }
}

fn proposal_view(campaign: &Campaign, p: &Proposal) -> Markup {
    html! {
        h3 { "Policy change proposal" }
        @if p.removals.is_empty() {
            p { "Nothing was removed: the running set stands, no change is proposed." }
        } @else {
            @if let Some(error) = &p.error {
                p.error role="alert" { "The proposal is not a valid policy set: " (error) }
            } @else if p.ok() {
                p.notice { "The proposed set validates and its tests pass." }
            } @else {
                p.error role="alert" { "Some tests fail on the proposed set; see below." }
            }
            table {
                tbody {
                    tr { th scope="row" { "Changes" } td {
                        ul {
                            @for c in &p.changes {
                                li {
                                    code { (c.permit) } " (" (c.file) ", role " (c.role) "): no longer for "
                                    (c.excluded.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                                }
                            }
                        }
                    } }
                    tr { th scope="row" { "Generated tests" } td { (tests_text(&p.tests)) } }
                    tr { th scope="row" { "The running set's tests" } td { (tests_text(&p.running_tests)) } }
                    tr { th scope="row" { "Base set" } td { code { (short(&p.base_policy_set)) } } }
                    @if let Some(hash) = &p.policy_set {
                        tr { th scope="row" { "Proposed set" } td { code { (short(hash)) } } }
                    }
                }
            }
            @if !p.tests.failed.is_empty() || !p.running_tests.failed.is_empty() {
                ul { @for f in p.tests.failed.iter().chain(&p.running_tests.failed) { li { (f) } } }
            }
            @if !p.not_shown.is_empty() {
                ul.muted { @for n in &p.not_shown { li { (n) } } }
            }
            p {
                "Nothing is applied by the campaign. Write the proposed set to a directory with "
                code { "warden access campaign proposal " (campaign.id) " --out DIR" }
                ", then submit it with " code { "warden policy propose --dir DIR" } "."
            }
            details {
                summary { "Diff against the running set" }
                pre { (p.diff) }
            }
        }
    }
}
