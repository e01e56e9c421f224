//! The approvals page's markup (maud: every value escaped): the request
//! list, one request, the auditor's view, sign-in and refusals. Views take
//! plain data and the viewer; they decide nothing (the approvals engine
//! does) and only leave out actions that cannot work for this viewer.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::evidence::{Alert, PolicyInForce, Row};
use crate::approvals::{ApprovalsConfig, Ask, Facts, Filter, Listing, Request, Status, risk_score};
use crate::identity::Principal;

/// Who is looking, and what they may do.
pub(super) struct Viewer<'a> {
    pub principal: &'a Principal,
    pub csrf: &'a str,
    /// Whether they may review, or why not.
    pub review: Result<(), String>,
    /// Holds an approver role (MFA aside).
    pub reviewer: bool,
    pub auditor: bool,
}

impl Viewer<'_> {
    fn can_review(&self) -> bool {
        self.review.is_ok()
    }

    fn sees_all(&self) -> bool {
        self.reviewer || self.auditor
    }
}

/// Messages carried to the next page (post/redirect/get).
#[derive(Debug, Clone, Default)]
pub(super) struct Notes<'a> {
    pub flash: Option<&'a str>,
    pub error: Option<&'a str>,
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --muted: #5a5a5a; --line: #c8c8c8; --accent: #0b57d0; --ok: #137333; --bad: #b3261e; --warn: #8a5a00; --hi: #c5221f; }
@media (prefers-color-scheme: dark) { :root { --muted: #b0b0b0; --line: #555; --accent: #8ab4f8; --ok: #81c995; --bad: #f28b82; --warn: #fdd663; --hi: #f28b82; } }
*, *::before, *::after { box-sizing: border-box; }
figure.chart { margin: 1rem 0; } figure.chart svg { max-width: 100%; height: auto; background: #fff; } figure.chart figcaption { color: var(--muted); }
html { overflow-x: hidden; }
body { font: 16px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 80rem; padding: 0 1rem 3rem; overflow-wrap: anywhere; word-break: break-word; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; justify-content: space-between; border-bottom: 1px solid var(--line); padding: .75rem 0; }
header p, nav p { margin: 0; }
nav { display: flex; flex-wrap: wrap; gap: 1rem; padding: .5rem 0; border-bottom: 1px solid var(--line); }
nav a[aria-current=page] { font-weight: 700; text-decoration: none; }
a { color: var(--accent); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: .35rem .5rem; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th[scope=row] { width: 12rem; }
table.list th.narrow, table.list td.narrow { width: 7rem; }
@media (max-width: 48rem) {
  th[scope=row] { width: 7.5rem; }
  table.list, table.list :is(caption, thead, tbody, tr, td, th) { display: block; width: auto; }
  table.list thead { display: none; }
  table.list tr { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 .5rem; padding: .25rem 0; }
  table.list :is(td, th) { border: 0; padding: .1rem .5rem; }
  table.list td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
}
pre { overflow-x: auto; padding: .5rem; border: 1px solid var(--line); white-space: pre-wrap; overflow-wrap: anywhere; max-width: 100%; }
code, pre { font-family: ui-monospace, monospace; font-size: .92em; overflow-wrap: anywhere; }
form { margin: .75rem 0; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; }
form.filters label { font-weight: 600; display: block; }
form.filters input, form.filters select { font: inherit; padding: .25rem; max-width: 100%; }
label { font-weight: 600; }
textarea, input[type=password] { display: block; width: 100%; max-width: 40rem; font: inherit; padding: .35rem; }
a.button { display: inline-block; padding: .45rem 1rem; border-radius: 6px; border: 1px solid var(--line); text-decoration: none; }
button { font: inherit; padding: .45rem 1rem; margin: .4rem .5rem 0 0; cursor: pointer; border-radius: 6px; border: 1px solid var(--line); }
button.approve { background: var(--ok); color: #fff; border-color: var(--ok); font-weight: 700; }
button.deny, button.revoke { background: var(--bad); color: #fff; border-color: var(--bad); font-weight: 700; }
.choices { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: .75rem; max-width: 48rem; }
.choice { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
.choice p { margin: .25rem 0; }
.inline { display: inline; margin: 0; }
.muted { color: var(--muted); }
.notice { border: 2px solid var(--accent); padding: .5rem .75rem; border-radius: 6px; }
.error { border: 2px solid var(--bad); padding: .5rem .75rem; border-radius: 6px; }
.risk { display: inline-block; border-radius: 4px; padding: 0 .4rem; font-weight: 700; white-space: nowrap; border: 2px solid currentColor; }
.risk-none, .risk-low { color: var(--muted); font-weight: 400; border-width: 1px; }
.risk-medium { color: var(--warn); }
.risk-high { color: var(--hi); }
.risk-critical { color: #fff; background: var(--hi); border-color: var(--hi); }
.pager { display: flex; flex-wrap: wrap; gap: 1rem; align-items: baseline; }
"#;

/// `2026-03-01 09:00:00 UTC`.
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "in 52 min", "3 h ago", "in 2 d".
pub(super) fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let n = secs.unsigned_abs();
    if n < 5 {
        return "just now".to_owned();
    }
    let amount = if n < 60 {
        format!("{n} s")
    } else if n < 3600 {
        format!("{} min", n / 60)
    } else if n < 2 * 86_400 {
        let (h, m) = (n / 3600, (n % 3600) / 60);
        if m == 0 || h >= 10 {
            format!("{h} h")
        } else {
            format!("{h} h {m} min")
        }
    } else {
        format!("{} d", n / 86_400)
    };
    if secs >= 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// A time: relative, with the UTC time beside it.
fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(SecondsFormat::Secs, true)) title=(stamp(t)) {
            (relative(t, now)) " " span.muted { "(" (stamp(t)) ")" }
        }
    }
}

fn duration(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

pub(super) fn layout(
    title: &str,
    viewer: Option<&Viewer<'_>>,
    current: &str,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Warden approvals" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    p { strong { "Warden" } " · just-in-time approvals" }
                    @if let Some(viewer) = viewer {
                        (who_box(viewer))
                    }
                }
                @if let Some(viewer) = viewer {
                    nav aria-label="Sections" {
                        a href="/admin/" aria-current=[(current == "requests").then_some("page")] { "Requests" }
                        @if viewer.sees_all() {
                            a href="/admin/audit" aria-current=[(current == "audit").then_some("page")] { "Audit" }
                            a href="/admin/overview" aria-current=[(current == "overview").then_some("page")] { "Overview" }
                            a href="/admin/campaigns" aria-current=[(current == "campaigns").then_some("page")] { "Access reviews" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Who is signed in, whether they may review, and the sign-out button.
fn who_box(viewer: &Viewer<'_>) -> Markup {
    let p = viewer.principal;
    html! {
        div {
            p {
                "Signed in as " strong { (p.display_name) }
                " " span.muted { "(" (p.kind.as_str()) ", object " code { (p.oid) } ")" }
            }
            p {
                "MFA: " strong { @if p.mfa { "yes" } @else { "no" } }
                ". Roles: "
                @if p.roles.is_empty() { span.muted { "none" } }
                @else { (p.roles.iter().cloned().collect::<Vec<_>>().join(", ")) }
                ". "
                @match &viewer.review {
                    Ok(()) => { strong { "You can review requests." } }
                    Err(why) => {
                        @if viewer.auditor { strong { "Auditor: you see every request, read only." } }
                        @else {
                            strong { "You cannot review requests" } ": " (why) "."
                            @if !viewer.sees_all() { " You see only your own requests." }
                        }
                    }
                }
            }
            form.inline method="post" action="/admin/sign-out" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                button type="submit" { "Sign out" }
            }
        }
    }
}

pub(super) fn messages(notes: &Notes<'_>) -> Markup {
    html! {
        @if let Some(flash) = notes.flash {
            p.notice role="status" { (flash) }
        }
        @if let Some(error) = notes.error {
            p.error role="alert" { (error) }
        }
    }
}

pub(super) fn sign_in(
    csrf: &str,
    entra: bool,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    layout(
        "Sign in",
        None,
        "",
        html! {
            h1 { "Sign in" }
            @if let Some(notice) = notice {
                p.notice role="status" { (notice) }
            }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            @if entra {
                p {
                    // A link, not a form: the CSP's `form-action 'self'`
                    // would stop a form's redirect to Entra ID.
                    a.button href="/admin/sign-in/entra" { "Sign in with Microsoft Entra ID" }
                }
                p.muted {
                    "Warden signs you in with your organization's account (OpenID Connect, with PKCE) "
                    "and checks Entra ID's access token exactly as a bearer token on the API. "
                    "Or paste an access token:"
                }
            }
            p {
                "Paste an access token for Warden. It is checked exactly as a bearer token on the API "
                "(issuer, tenant, audience, signature, expiry); Warden keeps a session for "
                "at most 8 hours, never past the token's expiry, and does not keep the token."
            }
            p.muted {
                "With " code { "warden dev" } ": "
                code { "jq -r '.personas[\"security-manager\"].token' .warden-dev/dev.json" }
                @if !entra {
                    ". With " code { "[oauth]" } " on, this page offers sign-in with Microsoft Entra ID "
                    "(see the README, “Approvals web page”)."
                }
            }
            form method="post" action="/admin/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Access token" }
                input id="token" name="token" type="password" required autocomplete="off" spellcheck="false";
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// After an Entra sign-in: on to `/admin/` by a refresh from this page (a
/// same-site navigation, which carries the new `SameSite=Strict` session
/// cookie; a redirect would not).
pub(super) fn signed_in_redirect() -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0; url=/admin/";
                title { "Signed in · Warden approvals" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    p { "Signed in. " a href="/admin/" { "Continue to the approvals page" } }
                }
            }
        }
    }
}

pub(super) fn refusal(message: &str) -> Markup {
    layout(
        "Refused",
        None,
        "",
        html! {
            h1 { "Refused" }
            p.error role="alert" { (message) }
            p { a href="/admin/" { "Back to the approvals page" } }
        },
    )
}

/// The risk level of a request: `none` when it was not scored.
fn level(request: &Request) -> &str {
    request
        .risk
        .as_ref()
        .and_then(|r| r.get("level"))
        .and_then(Value::as_str)
        .unwrap_or("none")
}

fn risk_badge(request: &Request) -> Markup {
    let level = level(request);
    let class = match level {
        "low" | "medium" | "high" | "critical" => format!("risk risk-{level}"),
        _ => "risk risk-none".to_owned(),
    };
    html! {
        @if request.risk.is_some() {
            span class=(class) title="Risk score and level from the risk stage" {
                (risk_score(request)) " " (level)
            }
        } @else {
            span class=(class) title="Not scored" { "–" }
        }
    }
}

/// What is asked, in a few words: the tool, or the window.
pub(super) fn asked(request: &Request) -> String {
    match &request.ask {
        Ask::Call { tool, .. } => format!("call {tool}"),
        Ask::Window {
            operations,
            duration_secs,
            ..
        } => format!(
            "{} window: {}",
            duration(*duration_secs),
            operations.join(", ")
        ),
    }
}

/// The narrowest scope the request names (its first operation's resource).
fn scope_of(request: &Request) -> &str {
    match &request.ask {
        Ask::Window { scope, .. } => scope,
        Ask::Call { .. } => request
            .operations
            .first()
            .map(|o| o.resource.as_str())
            .unwrap_or("/"),
    }
}

fn query(filter: &Filter, offset: Option<usize>) -> String {
    let mut pairs = url_pairs(filter);
    if let Some(offset) = offset {
        pairs.retain(|(k, _)| *k != "offset");
        if offset > 0 {
            pairs.push(("offset", offset.to_string()));
        }
    }
    encode(&pairs)
}

fn url_pairs(filter: &Filter) -> Vec<(&'static str, String)> {
    // An empty status is "any" (the list's default is pending): kept, so
    // that pages and downloads show what the form chose.
    let mut pairs: Vec<(&'static str, String)> = filter
        .status
        .iter()
        .map(|status| ("status", status.clone()))
        .collect();
    let mut add = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v.to_owned()));
        }
    };
    add("requester", &filter.requester);
    add("class", &filter.class);
    add("scope", &filter.scope);
    add("sort", &filter.sort);
    if let Some(limit) = filter.limit {
        pairs.push(("limit", limit.to_string()));
    }
    if let Some(offset) = filter.offset.filter(|o| *o > 0) {
        pairs.push(("offset", offset.to_string()));
    }
    pairs
}

fn encode(pairs: &[(&str, String)]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

const STATUSES: [&str; 9] = [
    "",
    "pending",
    "approved",
    "denied",
    "consumed",
    "expired",
    "revoked",
    "cancelled",
    "lapsed",
];
const CLASSES: [&str; 6] = ["", "read", "write", "delete", "action", "privileged"];
const SORTS: [(&str, &str); 4] = [
    ("", "newest first"),
    ("risk", "risk, highest first"),
    ("lapses", "lapse time, soonest first"),
    ("requester", "requester"),
];

fn select(name: &str, label: &str, options: &[(&str, &str)], chosen: Option<&str>) -> Markup {
    let chosen = chosen.unwrap_or("");
    html! {
        div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[*value == chosen] { (text) }
                }
            }
        }
    }
}

/// `/admin/`: the filter form, a compact list and the pages.
pub(super) fn list(
    viewer: &Viewer<'_>,
    listing: &Listing,
    filter: &Filter,
    notes: &Notes<'_>,
    now: DateTime<Utc>,
) -> Markup {
    let statuses: Vec<(&str, &str)> = STATUSES
        .iter()
        .map(|s| (*s, if s.is_empty() { "any" } else { s }))
        .collect();
    let classes: Vec<(&str, &str)> = CLASSES
        .iter()
        .map(|s| (*s, if s.is_empty() { "any" } else { s }))
        .collect();
    let first = listing.offset + 1;
    let last = listing.offset + listing.requests.len();
    let q = query(filter, None);
    html! {
        h1 { "JIT requests" }
        (messages(notes))
        form.filters method="get" action="/admin/" aria-label="Filter requests" {
            (select("status", "Status", &statuses, filter.status.as_deref()))
            (select("class", "Operation class", &classes, filter.class.as_deref()))
            @if viewer.sees_all() {
                div {
                    label for="requester" { "Requester (object id)" }
                    input id="requester" name="requester" value=(filter.requester.clone().unwrap_or_default());
                }
            }
            div {
                label for="scope" { "Scope (ARM id)" }
                input id="scope" name="scope" placeholder="/subscriptions/…" value=(filter.scope.clone().unwrap_or_default());
            }
            (select("sort", "Sort by", &SORTS, filter.sort.as_deref()))
            div { button type="submit" { "Filter" } }
        }
        @if listing.requests.is_empty() {
            p.muted { "No requests match." }
        } @else {
            p.muted {
                "Showing " (first) "–" (last) " of " (listing.total) ". Download "
                a href=(format!("/admin/requests.csv?{q}")) { "CSV" } " or "
                a href=(format!("/admin/requests.json?{q}")) { "JSON" } "."
            }
            table.list {
                caption.muted { "JIT requests" }
                thead {
                    tr {
                        th.narrow scope="col" { "Risk" }
                        th scope="col" { "Request" }
                        th scope="col" { "Requester" }
                        th scope="col" { "Scope" }
                        th.narrow scope="col" { "Status" }
                        th scope="col" { "Lapses / changed" }
                        th.narrow scope="col" { "Approvals" }
                    }
                }
                tbody {
                    @for request in &listing.requests {
                        tr {
                            td.narrow data-label="Risk" { (risk_badge(request)) }
                            th scope="row" {
                                a href=(format!("/admin/requests/{}", request.id)) { (asked(request)) }
                                @if request.critical { " " strong { "critical" } }
                            }
                            td data-label="Requester" { (request.requester.name) }
                            td data-label="Scope" { code { (scope_of(request)) } }
                            td.narrow data-label="Status" { (request.status.as_str()) }
                            td data-label="Time" {
                                @if request.status == Status::Pending {
                                    "lapses " (when(request.lapses, now))
                                } @else {
                                    (when(request.updated, now))
                                }
                            }
                            td.narrow data-label="Approvals" { (request.approvals()) " of " (request.required_approvals) }
                        }
                    }
                }
            }
            (pager(listing, filter, "/admin/"))
        }
    }
}

fn pager(listing: &Listing, filter: &Filter, base: &str) -> Markup {
    let previous = listing
        .offset
        .checked_sub(listing.limit)
        .or_else(|| (listing.offset > 0).then_some(0));
    let next =
        (listing.offset + listing.limit < listing.total).then_some(listing.offset + listing.limit);
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(previous) = previous {
                a href=(format!("{base}?{}", query(filter, Some(previous)))) rel="prev" { "← Previous" }
            }
            span.muted {
                "Page " (listing.offset / listing.limit + 1) " of " (listing.total.div_ceil(listing.limit).max(1))
            }
            @if let Some(next) = next {
                a href=(format!("{base}?{}", query(filter, Some(next)))) rel="next" { "Next →" }
            }
        }
    }
}

/// Who decided a request that is no longer pending, and when: for a
/// stale tab's failure and the history.
pub(super) fn decided(request: &Request) -> String {
    let at = stamp(request.updated);
    match request.status {
        Status::Approved | Status::Consumed | Status::Expired => {
            let by: Vec<String> = request
                .reviews
                .iter()
                .filter(|r| r.approve)
                .map(|r| format!("{} ({})", r.reviewer.name, r.reason))
                .collect();
            format!(
                "{} — approved by {}{}",
                request.status.as_str(),
                by.join(" and "),
                match request.status {
                    Status::Approved => String::new(),
                    _ => format!(", {} at {at}", request.status.as_str()),
                }
            )
        }
        Status::Denied => match request.reviews.iter().find(|r| !r.approve) {
            Some(r) => format!(
                "denied by {} at {}: {}",
                r.reviewer.name,
                stamp(r.at),
                r.reason
            ),
            None => format!("denied at {at}"),
        },
        Status::Revoked | Status::Cancelled => format!(
            "{} by {} at {at}: {}",
            request.status.as_str(),
            request
                .closed_by
                .as_ref()
                .map(|p| p.name.as_str())
                .unwrap_or("someone"),
            request.closing_reason.as_deref().unwrap_or("")
        ),
        Status::Lapsed => format!("lapsed at {at}: nobody reviewed it in time"),
        Status::Pending => format!(
            "pending, {} of {} approvals",
            request.approvals(),
            request.required_approvals
        ),
    }
}

/// What approving does, in the words a reviewer needs.
fn approve_means(request: &Request, config: &ApprovalsConfig) -> String {
    let last = request.approvals() + 1 >= request.required_approvals;
    let grant = match &request.ask {
        Ask::Call { tool, .. } => format!(
            "lets this one call of {tool} run once, within {} of the final approval",
            humantime::format_duration(config.single_use_window)
        ),
        Ask::Window {
            operations,
            scope,
            duration_secs,
        } => format!(
            "opens a {} window starting now for {} at and below {scope}",
            duration((*duration_secs).min(config.max_window.as_secs())),
            operations.join(", ")
        ),
    };
    if last {
        format!("Approve: {grant}.")
    } else {
        format!(
            "Approve: your approval is {} of {}; another reviewer must approve too. Then it {grant}.",
            request.approvals() + 1,
            request.required_approvals
        )
    }
}

fn deny_means(request: &Request) -> &'static str {
    match request.ask {
        Ask::Call { .. } => {
            "Deny: ends the request; the call will not run, and retrying it stays denied."
        }
        Ask::Window { .. } => "Deny: ends the request; no window opens.",
    }
}

/// `/admin/requests/{id}`: what would happen, the request, the decision
/// forms and the audit records.
#[allow(clippy::too_many_arguments)]
pub(super) fn detail(
    viewer: &Viewer<'_>,
    request: &Request,
    facts: &Facts,
    records: &Result<Vec<Row>, String>,
    config: &ApprovalsConfig,
    draft: Option<&str>,
    notes: &Notes<'_>,
    now: DateTime<Utc>,
) -> Markup {
    html! {
        p { a href="/admin/" { "← All requests" } }
        h1 { (risk_badge(request)) " " (request.requester.name) ": " (asked(request)) }
        (messages(notes))
        p {
            strong { (request.status.as_str()) }
            @if request.status == Status::Pending {
                " · lapses " (when(request.lapses, now))
                " · " (request.approvals()) " of " (request.required_approvals) " approvals"
                @if request.critical { " " strong { "(critical operation: two-person rule)" } }
            } @else {
                " · " (decided(request))
            }
        }
        @if request.awaiting_justification {
            p.notice { "Waiting for the requester's justification; reviewers cannot decide it yet." }
        }
        section aria-labelledby="what" {
            h2 id="what" { "What it would do" }
            @if facts.is_empty() {
                p.muted { "No decoded facts for this request; see the operations below." }
            } @else {
                table {
                    tbody {
                        @for fact in &facts.0 {
                            tr {
                                th scope="row" { (fact.label) }
                                td {
                                    strong { (fact.value) }
                                    @if let Some(note) = &fact.note { br; span.muted { (note) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        (decision_forms(viewer, request, config, draft))
        section aria-labelledby="request" {
            h2 id="request" { "The request" }
            (request_table(request, now))
        }
        section aria-labelledby="records" {
            h2 id="records" { "Audit records" }
            @match records {
                Ok(rows) if rows.is_empty() => { p.muted { "No audit records found for this request." } }
                Ok(rows) => { (records_table(rows)) }
                Err(e) => { p.error { "The audit log cannot be read: " (e) } }
            }
        }
    }
}

/// The forms this viewer may use on this request. The engine decides; the
/// page only leaves out forms that cannot work.
fn decision_forms(
    viewer: &Viewer<'_>,
    request: &Request,
    config: &ApprovalsConfig,
    draft: Option<&str>,
) -> Markup {
    let me = viewer.principal;
    let own = request.requester.tid == me.tid && request.requester.oid == me.oid;
    let reviewed = request
        .reviews
        .iter()
        .any(|r| r.reviewer.tid == me.tid && r.reviewer.oid == me.oid);
    let base = format!("/admin/requests/{}", request.id);
    let pending = request.status == Status::Pending;
    let review =
        pending && viewer.can_review() && !own && !reviewed && !request.awaiting_justification;
    let revoke = request.status == Status::Approved && viewer.can_review();
    let cancel = pending && own;
    let shown = request.facts_hash.clone().unwrap_or_default();
    let draft = draft.unwrap_or("");
    html! {
        @if review {
            section aria-labelledby="decide" {
                h2 id="decide" { "Decide" }
                form method="post" action=(format!("{base}/approve")) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="shown" value=(shown);
                    label for="reason" { "Reason for your decision (required, recorded in the audit log)" }
                    textarea id="reason" name="reason" rows="3" required { (draft) }
                    div.choices {
                        div.choice {
                            p { (approve_means(request, config)) }
                            button.approve type="submit" { "Approve" }
                        }
                        div.choice {
                            p { (deny_means(request)) }
                            button.deny type="submit" formaction=(format!("{base}/deny")) { "Deny" }
                        }
                    }
                }
            }
        }
        @if pending && viewer.can_review() && own {
            p.muted { "This is your own request: another reviewer must decide it." }
        }
        @if pending && viewer.can_review() && reviewed {
            p.muted { "You have reviewed this request; it waits for another reviewer." }
        }
        @if revoke {
            form method="post" action=(format!("{base}/revoke")) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="revoke-reason" { "Reason to revoke the grant (required)" }
                textarea id="revoke-reason" name="reason" rows="2" required { (draft) }
                p { "Revoke: the grant ends now; calls it would have allowed are held again." }
                button.revoke type="submit" { "Revoke" }
            }
        }
        @if cancel {
            form method="post" action=(format!("{base}/cancel")) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label for="cancel-reason" { "Reason to cancel your request (required)" }
                textarea id="cancel-reason" name="reason" rows="2" required { (draft) }
                button type="submit" { "Cancel request" }
            }
        }
    }
}

fn request_table(request: &Request, now: DateTime<Utc>) -> Markup {
    html! {
        table {
            tbody {
                tr { th scope="row" { "Request" } td { code { (request.id) } } }
                tr {
                    th scope="row" { "Requester" }
                    td {
                        (request.requester.name)
                        " " span.muted { "(object " code { (request.requester.oid) } ", tenant " code { (request.requester.tid) } ")" }
                    }
                }
                tr {
                    th scope="row" { "Asked for" }
                    td {
                        @match &request.ask {
                            Ask::Call { tool, upstream, upstream_tool, .. } => {
                                "One call of " code { (tool) } " (upstream " code { (upstream) } ", tool " code { (upstream_tool) } "), single use"
                            }
                            Ask::Window { operations, scope, duration_secs } => {
                                "A " (duration(*duration_secs)) " window for " code { (operations.join(", ")) } " at and below " code { (scope) }
                            }
                        }
                    }
                }
                tr {
                    th scope="row" { "Operations" }
                    td {
                        ul {
                            @for op in &request.operations {
                                li {
                                    code { (op.azure_op) }
                                    @if !op.class.is_empty() { " (" (op.class) ")" }
                                    " on " code { (op.resource) }
                                }
                            }
                        }
                    }
                }
                tr {
                    th scope="row" { "Justification" }
                    td {
                        @if request.justification.is_empty() {
                            span.muted { "none given" }
                        } @else {
                            (request.justification)
                        }
                    }
                }
                @if let Some(ticket) = &request.ticket {
                    tr { th scope="row" { "Ticket" } td { (ticket) } }
                }
                @if !request.policies.is_empty() {
                    tr { th scope="row" { "Policies" } td { code { (request.policies.join(", ")) } } }
                }
                @if let Some(risk) = &request.risk {
                    tr { th scope="row" { "Risk" } td { (risk_markup(risk)) } }
                }
                tr { th scope="row" { "Created" } td { (when(request.created, now)) } }
                tr { th scope="row" { "Last change" } td { (when(request.updated, now)) } }
                @if !request.reviews.is_empty() {
                    tr {
                        th scope="row" { "Reviews" }
                        td {
                            ul {
                                @for review in &request.reviews {
                                    li {
                                        strong { (review.reviewer.name) }
                                        @if review.approve { " approved" } @else { " denied" }
                                        " " (when(review.at, now)) ": " (review.reason)
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(grant) = &request.grant {
                    tr {
                        th scope="row" { "Grant" }
                        td { code { (grant.id) } ", expires " (when(grant.expires, now)) }
                    }
                }
                @if let Some(reason) = &request.closing_reason {
                    tr { th scope="row" { "Closing reason" } td { (reason) } }
                }
                @if let Ask::Call { arguments, args_hash, .. } = &request.ask {
                    tr {
                        th scope="row" { "Arguments (as logged)" }
                        td {
                            details {
                                summary { "Redacted as in the audit log" }
                                pre { code { (pretty(arguments)) } }
                            }
                            span.muted { "SHA-256 of the exact arguments the grant is bound to: " code { (args_hash) } }
                        }
                    }
                }
            }
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The risk stage's facts: score, level and reasons, then the rest.
fn risk_markup(risk: &Value) -> Markup {
    let reasons: Vec<String> = match risk.get("reasons") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                Value::Object(reason) => match reason.get("text").and_then(Value::as_str) {
                    Some(text) => text.to_owned(),
                    None => i.to_string(),
                },
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    html! {
        "Score " strong { (risk.get("score").map(Value::to_string).unwrap_or_default()) }
        @if let Some(level) = risk.get("level").and_then(Value::as_str) { " (" (level) ")" }
        @if !reasons.is_empty() {
            ul { @for reason in &reasons { li { (reason) } } }
        }
        details {
            summary { "All risk facts" }
            pre { code { (pretty(risk)) } }
        }
    }
}

fn records_table(rows: &[Row]) -> Markup {
    html! {
        table.list {
            caption.muted { "Sequence numbers are the records' positions in the audit log (see warden audit verify and export)" }
            thead {
                tr {
                    th.narrow scope="col" { "Seq" }
                    th scope="col" { "Time" }
                    th.narrow scope="col" { "Kind" }
                    th scope="col" { "What" }
                    th scope="col" { "By" }
                    th scope="col" { "Call" }
                }
            }
            tbody {
                @for row in rows {
                    tr {
                        th.narrow scope="row" { "#" (row.seq) }
                        td data-label="Time" { (row.ts) }
                        td.narrow data-label="Kind" { (row.kind) }
                        td data-label="What" { (row.what) }
                        td data-label="By" { (row.who.clone().unwrap_or_default()) }
                        td data-label="Call" { @if let Some(call) = &row.call_id { code { (call) } } }
                    }
                }
            }
        }
    }
}

/// `/admin/audit`: every request's history, risk alerts and the policy set
/// in force, with downloads.
pub(super) fn audit(
    history: &Listing,
    filter: &Filter,
    alerts: &Result<Vec<Alert>, String>,
    policy: &Result<Option<PolicyInForce>, String>,
    now: DateTime<Utc>,
) -> Markup {
    let q = query(filter, None);
    html! {
        h1 { "Audit" }
        section aria-labelledby="policy" {
            h2 id="policy" { "Policy set in force" }
            @match policy {
                Ok(Some(p)) => {
                    table {
                        tbody {
                            tr { th scope="row" { "Hash" } td { code { (p.hash) } } }
                            tr { th scope="row" { "Loaded" } td { (p.ts) " (" (p.trigger) "), audit record #" (p.seq) } }
                            @if let Some(n) = p.policies { tr { th scope="row" { "Policies" } td { (n) } } }
                            tr {
                                th scope="row" { "Files" }
                                td { ul { @for file in &p.files { li { code { (file) } } } } }
                            }
                        }
                    }
                }
                Ok(None) => { p.muted { "No policy load is recorded." } }
                Err(e) => { p.error { "The audit log cannot be read: " (e) } }
            }
        }
        section aria-labelledby="history" {
            h2 id="history" { "Request history" }
            p.muted {
                (history.total) " requests. Download "
                a href=(format!("/admin/requests.csv?{q}")) { "CSV" } " or "
                a href=(format!("/admin/requests.json?{q}")) { "JSON" } "."
            }
            table.list {
                thead {
                    tr {
                        th scope="col" { "Request" }
                        th scope="col" { "Requester" }
                        th.narrow scope="col" { "Status" }
                        th scope="col" { "Decided (who, when, why)" }
                        th scope="col" { "Created" }
                    }
                }
                tbody {
                    @for request in &history.requests {
                        tr {
                            th scope="row" {
                                a href=(format!("/admin/requests/{}#records", request.id)) { (asked(request)) }
                            }
                            td data-label="Requester" { (request.requester.name) }
                            td.narrow data-label="Status" { (request.status.as_str()) }
                            td data-label="Decided" { (decided(request)) }
                            td data-label="Created" { (when(request.created, now)) }
                        }
                    }
                }
            }
            (pager(history, filter, "/admin/audit"))
        }
        section aria-labelledby="alerts" {
            h2 id="alerts" { "Risk alerts" }
            @match alerts {
                Ok(alerts) if alerts.is_empty() => { p.muted { "No risk alerts." } }
                Ok(alerts) => {
                    table.list {
                        thead {
                            tr {
                                th.narrow scope="col" { "Seq" }
                                th scope="col" { "Time" }
                                th scope="col" { "Principal" }
                                th scope="col" { "Tool" }
                                th.narrow scope="col" { "Risk" }
                                th scope="col" { "Why" }
                            }
                        }
                        tbody {
                            @for alert in alerts {
                                tr {
                                    th.narrow scope="row" { "#" (alert.seq) }
                                    td data-label="Time" { (alert.ts) }
                                    td data-label="Principal" { (alert.principal) }
                                    td data-label="Tool" { code { (alert.tool) } }
                                    td.narrow data-label="Risk" { (alert.risk) }
                                    td data-label="Why" { (alert.reasons.join("; ")) }
                                }
                            }
                        }
                    }
                }
                Err(e) => { p.error { "The audit log cannot be read: " (e) } }
            }
        }
    }
}

/// The CSV of a list: one row per request.
pub(super) fn csv(requests: &[Request]) -> Result<String, String> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "created",
        "requester",
        "requester_oid",
        "asked",
        "operations",
        "scope",
        "status",
        "critical",
        "approvals",
        "required_approvals",
        "risk_score",
        "risk_level",
        "justification",
        "ticket",
        "decided",
        "updated",
    ];
    out.write_record(header).map_err(|e| e.to_string())?;
    for r in requests {
        let operations = r
            .operations
            .iter()
            .map(|o| format!("{} on {}", o.azure_op, o.resource))
            .collect::<Vec<_>>()
            .join("; ");
        out.write_record([
            r.id.clone(),
            r.created.to_rfc3339_opts(SecondsFormat::Secs, true),
            r.requester.name.clone(),
            r.requester.oid.clone(),
            asked(r),
            operations,
            scope_of(r).to_owned(),
            r.status.as_str().to_owned(),
            r.critical.to_string(),
            r.approvals().to_string(),
            r.required_approvals.to_string(),
            if r.risk.is_some() {
                risk_score(r).to_string()
            } else {
                String::new()
            },
            level(r).to_owned(),
            r.justification.clone(),
            r.ticket.clone().unwrap_or_default(),
            decided(r),
            r.updated.to_rfc3339_opts(SecondsFormat::Secs, true),
        ])
        .map_err(|e| e.to_string())?;
    }
    let bytes = out.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let at = |secs: i64| now + chrono::Duration::seconds(secs);
        assert_eq!(relative(at(52 * 60), now), "in 52 min");
        assert_eq!(relative(at(-3 * 3600), now), "3 h ago");
        assert_eq!(relative(at(90 * 60), now), "in 1 h 30 min");
        assert_eq!(relative(at(5 * 86_400), now), "in 5 d");
        assert_eq!(relative(at(-20), now), "20 s ago");
        assert_eq!(relative(at(0), now), "just now");
        assert_eq!(relative(at(-4), now), "just now");
    }
}
