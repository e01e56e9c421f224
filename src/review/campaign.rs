//! Access review campaigns, the model and its rules (docs/CAMPAIGNS.md): a
//! scope (roles, groups, principals), a deadline, one item per
//! (principal, role) in scope with the evidence of the audit log, and the
//! reviewers' keep or remove decisions.
//!
//! Everything here is a pure function of a campaign, the caller and the
//! time: [`items`] builds a campaign's items from an access review,
//! [`decide`] checks a decision, [`due`] says what the deadline does, and
//! [`Event::apply`] is the one way a campaign changes, live and when it is
//! rebuilt from its `access_review` records. [`super::campaigns`] records
//! the events and keeps the state.
//!
//! ```text
//! started ──decided (keep | remove, reason, reviewer)──▶ … ──close (all decided)──▶ closed
//!    └──deadline: undecided → auto_removed (or auto_kept) ──▶ closed
//! ```
//!
//! The rules of a decision:
//! - a reviewer (an `[approvals]` approver role, MFA) decides, with a
//!   reason, never about themselves;
//! - a decided item is not decided again by the same reviewer (409);
//!   another reviewer may override it, saying so (`override: true`) and
//!   why, and the earlier decision is kept in the item's history;
//! - nothing is decided once the deadline passed or the campaign closed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::usage::{Period, Sample, Usage};
use super::{PrincipalReview, Review};
use crate::identity::Principal;
use crate::policy::narrow::{Grantee, Permit};

/// The reason recorded for an item nobody decided by the deadline.
pub const NO_DECISION: &str = "no decision by the deadline";

/// Longest reason kept, in bytes.
pub const MAX_REASON: usize = 4096;

/// Why a campaign step was refused; `status()` is the HTTP status the
/// admin API answers with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CampaignError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the audit log cannot record the change: {0}")]
    Unavailable(String),
    /// Another replica changed the campaign first; nothing was recorded.
    #[error("another Warden replica changed campaign {0} at the same time; try again")]
    Raced(String),
}

impl CampaignError {
    pub fn status(&self) -> u16 {
        match self {
            CampaignError::NotFound(_) => 404,
            CampaignError::Forbidden(_) => 403,
            CampaignError::Invalid(_) => 400,
            CampaignError::Conflict(_) | CampaignError::Raced(_) => 409,
            CampaignError::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            CampaignError::NotFound(_) => "not_found",
            CampaignError::Forbidden(_) => "forbidden",
            CampaignError::Invalid(_) => "invalid",
            CampaignError::Conflict(_) | CampaignError::Raced(_) => "conflict",
            CampaignError::Unavailable(_) => "unavailable",
        }
    }
}

/// What a campaign reviews: holders of these roles, members of these
/// groups (for the roles `[policy.roles]` confers through them), and
/// these principals (object ids, or `<tid>/<oid>`; every role they hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scope {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub principals: Vec<String>,
}

impl Scope {
    /// Trimmed, without blanks or repeats; an error if nothing is left.
    pub fn cleaned(self) -> Result<Scope, CampaignError> {
        let clean = |list: Vec<String>| -> Vec<String> {
            let mut seen = BTreeSet::new();
            list.into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty() && seen.insert(s.to_ascii_lowercase()))
                .collect()
        };
        let scope = Scope {
            roles: clean(self.roles),
            groups: clean(self.groups),
            principals: clean(self.principals),
        };
        if scope.roles.is_empty() && scope.groups.is_empty() && scope.principals.is_empty() {
            return Err(CampaignError::Invalid(
                "the scope is empty: name at least one role, group or principal".into(),
            ));
        }
        Ok(scope)
    }

    fn names(&self, tid: &str, oid: &str) -> bool {
        let full = format!("{tid}/{oid}");
        self.principals
            .iter()
            .any(|p| p.eq_ignore_ascii_case(oid) || p.eq_ignore_ascii_case(&full))
    }
}

/// A person or application, as tokens name them (told apart by `tid` and
/// `oid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub tid: String,
    pub oid: String,
    pub name: String,
    /// `user` or `application`.
    pub kind: String,
}

impl Person {
    pub fn of(p: &Principal) -> Person {
        Person {
            tid: p.tid.clone(),
            oid: p.oid.clone(),
            name: p.display_name.clone(),
            kind: p.kind.as_str().to_owned(),
        }
    }

    pub fn same(&self, other: &Person) -> bool {
        self.tid == other.tid && self.oid == other.oid
    }
}

/// Keep or remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Keep,
    Remove,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Keep => "keep",
            Choice::Remove => "remove",
        }
    }

    pub fn parse(text: &str) -> Option<Choice> {
        match text.trim().to_ascii_lowercase().as_str() {
            "keep" => Some(Choice::Keep),
            "remove" => Some(Choice::Remove),
            _ => None,
        }
    }
}

/// A decision on an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDecision {
    pub decision: Choice,
    pub reason: String,
    /// The reviewer; none when the deadline decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<Person>,
    pub at: DateTime<Utc>,
    /// Made by the deadline (`auto_removed`, `auto_kept`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
}

/// A resource one of the role's permits allowed an operation on: what a
/// generated policy test replays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub azure_op: String,
    pub class: String,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_group_tags: BTreeMap<String, String>,
}

impl Example {
    fn of(op: &str, sample: &Sample) -> Example {
        Example {
            azure_op: op.to_owned(),
            class: sample.class.clone(),
            resource_id: sample.resource_id.clone(),
            location: sample.location.clone(),
            tags: sample.tags.clone(),
            resource_group_tags: sample.resource_group_tags.clone(),
        }
    }
}

/// One (principal, role) under review, with the evidence of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// `1`, `2`, ... in the campaign.
    pub id: String,
    pub principal: Person,
    pub role: String,
    /// The groups in scope through which `[policy.roles]` confers the role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// The principal's newest call or sign-in (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    /// The newest call a permit of the role allowed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    /// Operations the role's permits allowed the principal in the period,
    /// with their calls.
    #[serde(default)]
    pub operations: BTreeMap<String, u64>,
    /// The role was the narrowest grant of at least one allowed call.
    pub needed: bool,
    /// No call or sign-in in the period.
    pub dormant: bool,
    #[serde(default)]
    pub risk_factors: Vec<String>,
    /// What the evidence suggests: remove if unused or dormant, else keep.
    pub suggestion: Choice,
    pub suggestion_reason: String,
    /// A call the role allowed, for the proposal's tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Example>,
    /// The decision in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<ItemDecision>,
    /// Decisions another reviewer overrode, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<ItemDecision>,
}

/// How the items ended (at close).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub items: usize,
    /// Kept by a reviewer.
    pub kept: usize,
    /// Removed by a reviewer.
    pub removed: usize,
    /// Removed at the deadline, undecided.
    pub auto_removed: usize,
    /// Kept at the deadline, undecided (`auto_remove_undecided` off).
    pub auto_kept: usize,
    pub undecided: usize,
}

/// How a campaign closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub at: DateTime<Utc>,
    /// The security manager who closed it; none when the deadline did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Person>,
    pub why: String,
    pub counts: Counts,
    /// The policy change proposal (see [`super::proposal`]).
    pub proposal: super::proposal::Proposal,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    pub scope: Scope,
    pub deadline: DateTime<Utc>,
    /// Undecided items are removed at the deadline (else kept).
    pub auto_remove_undecided: bool,
    pub created: DateTime<Utc>,
    pub created_by: Person,
    /// The app roles whose holders may decide.
    pub reviewer_roles: Vec<String>,
    /// The days of the log the evidence covers, up to `created`.
    pub days: u32,
    pub period: Period,
    /// The hash of the policy set running when it started.
    pub policy_set: String,
    pub items: Vec<Item>,
    /// Principals the scope names that the log does not know (no items).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Closed>,
}

impl Campaign {
    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }

    /// `open`, `due` (deadline passed, not yet closed) or `closed`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        match (&self.closed, now >= self.deadline) {
            (Some(_), _) => "closed",
            (None, true) => "due",
            (None, false) => "open",
        }
    }

    /// The items' decisions so far.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            items: self.items.len(),
            ..Counts::default()
        };
        for item in &self.items {
            match &item.decision {
                None => counts.undecided += 1,
                Some(d) => match (d.decision, d.auto) {
                    (Choice::Keep, false) => counts.kept += 1,
                    (Choice::Remove, false) => counts.removed += 1,
                    (Choice::Remove, true) => counts.auto_removed += 1,
                    (Choice::Keep, true) => counts.auto_kept += 1,
                },
            }
        }
        counts
    }

    /// The items whose decision in force is `remove`.
    pub fn removals(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| i.decision.as_ref().map(|d| d.decision) == Some(Choice::Remove))
    }
}

/// What a campaign's list shows of it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    pub status: &'static str,
    pub scope: Scope,
    pub deadline: DateTime<Utc>,
    pub auto_remove_undecided: bool,
    pub created: DateTime<Utc>,
    pub created_by: Person,
    pub counts: Counts,
}

impl Summary {
    pub fn of(c: &Campaign, now: DateTime<Utc>) -> Summary {
        Summary {
            id: c.id.clone(),
            title: c.title.clone(),
            status: c.status(now),
            scope: c.scope.clone(),
            deadline: c.deadline,
            auto_remove_undecided: c.auto_remove_undecided,
            created: c.created,
            created_by: c.created_by.clone(),
            counts: c.closed.as_ref().map_or_else(|| c.counts(), |c| c.counts),
        }
    }
}

/// A change to a campaign, as its `access_review` record's `details`
/// carry it (besides `event`, `campaign_id` and `version`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `campaign_started`: the whole campaign, its items undecided.
    Started(Box<Campaign>),
    /// `decided`, `auto_removed` or `auto_kept`.
    Decided(Box<Decided>),
    /// `campaign_closed`.
    Closed(Box<Closed>),
}

/// One item's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub item: String,
    pub principal: Person,
    pub role: String,
    #[serde(flatten)]
    pub decision: ItemDecision,
    /// The decision this one overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<ItemDecision>,
}

impl Event {
    /// The record's `details.event`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Started(_) => "campaign_started",
            Event::Decided(d) => match (d.decision.auto, d.decision.decision) {
                (false, _) => "decided",
                (true, Choice::Remove) => "auto_removed",
                (true, Choice::Keep) => "auto_kept",
            },
            Event::Closed(_) => "campaign_closed",
        }
    }

    /// The record's `details` (without `campaign_id` and `version`).
    pub fn details(&self) -> serde_json::Value {
        let mut value = match self {
            Event::Started(c) => serde_json::to_value(c),
            Event::Decided(d) => serde_json::to_value(&**d),
            Event::Closed(c) => serde_json::to_value(c),
        }
        .unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("event".into(), self.name().into());
        }
        value
    }

    /// The event a record's `details` carry, if it is one.
    pub fn parse(details: &serde_json::Value) -> Option<Event> {
        let event = details.get("event")?.as_str()?;
        let payload = details.clone();
        match event {
            "campaign_started" => serde_json::from_value(payload)
                .ok()
                .map(|c| Event::Started(Box::new(c))),
            "decided" | "auto_removed" | "auto_kept" => serde_json::from_value(payload)
                .ok()
                .map(|d| Event::Decided(Box::new(d))),
            "campaign_closed" => serde_json::from_value(payload)
                .ok()
                .map(|c| Event::Closed(Box::new(c))),
            _ => None,
        }
    }

    /// The campaign after this event (`campaign` is `None` before it
    /// started).
    pub fn apply(&self, campaign: Option<&Campaign>) -> Option<Campaign> {
        match self {
            Event::Started(c) => Some((**c).clone()),
            Event::Decided(d) => {
                let mut c = campaign?.clone();
                let item = c.items.iter_mut().find(|i| i.id == d.item)?;
                if let Some(previous) = item.decision.take() {
                    item.overridden.push(previous);
                }
                item.decision = Some(d.decision.clone());
                Some(c)
            }
            Event::Closed(closed) => {
                let mut c = campaign?.clone();
                c.closed = Some((**closed).clone());
                Some(c)
            }
        }
    }
}

/// What a reviewer asks.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub item: &'a str,
    pub decision: Choice,
    pub reason: &'a str,
    /// Replaces another reviewer's decision.
    pub overrides: bool,
}

/// The decision `reviewer` asks for, if the rules allow it (the reviewer's
/// role and MFA are checked by the caller).
pub fn decide(
    campaign: &Campaign,
    reviewer: &Person,
    ask: &Ask<'_>,
    now: DateTime<Utc>,
) -> Result<Event, CampaignError> {
    if let Some(closed) = &campaign.closed {
        return Err(CampaignError::Conflict(format!(
            "campaign {} is closed ({}); nothing more can be decided",
            campaign.id, closed.why
        )));
    }
    if now >= campaign.deadline {
        return Err(CampaignError::Conflict(format!(
            "the deadline of campaign {} passed; nothing more can be decided",
            campaign.id
        )));
    }
    let item = campaign.item(ask.item).ok_or_else(|| {
        CampaignError::NotFound(format!("campaign {} has no item {}", campaign.id, ask.item))
    })?;
    let reason = ask.reason.trim();
    if reason.is_empty() {
        return Err(CampaignError::Invalid(
            "a reason is required: say why the access stays or goes".into(),
        ));
    }
    if reason.len() > MAX_REASON {
        return Err(CampaignError::Invalid(format!(
            "the reason is too long (at most {MAX_REASON} bytes)"
        )));
    }
    if item.principal.same(reviewer) {
        return Err(CampaignError::Forbidden(format!(
            "item {} is about your own access ({}); another reviewer must decide it",
            item.id, item.role
        )));
    }
    if let Some(previous) = &item.decision {
        let by = previous
            .reviewer
            .as_ref()
            .map_or("the deadline", |p| p.name.as_str());
        if previous.reviewer.as_ref().is_some_and(|p| p.same(reviewer)) {
            return Err(CampaignError::Conflict(format!(
                "you already decided item {} ({}); another reviewer may override it",
                item.id,
                previous.decision.as_str()
            )));
        }
        if !ask.overrides {
            return Err(CampaignError::Conflict(format!(
                "item {} was already decided ({}) by {by}; to override it, say so (override) with your reason",
                item.id,
                previous.decision.as_str()
            )));
        }
    }
    Ok(Event::Decided(Box::new(Decided {
        item: item.id.clone(),
        principal: item.principal.clone(),
        role: item.role.clone(),
        decision: ItemDecision {
            decision: ask.decision,
            reason: reason.to_owned(),
            reviewer: Some(reviewer.clone()),
            at: now,
            auto: false,
        },
        overrides: item.decision.clone(),
    })))
}

/// What the deadline does at `now`: the undecided items removed (or kept,
/// without `auto_remove_undecided`), in item order. Empty before the
/// deadline and once closed.
pub fn due(campaign: &Campaign, now: DateTime<Utc>) -> Vec<Event> {
    if campaign.closed.is_some() || now < campaign.deadline {
        return Vec::new();
    }
    let decision = if campaign.auto_remove_undecided {
        Choice::Remove
    } else {
        Choice::Keep
    };
    campaign
        .items
        .iter()
        .filter(|i| i.decision.is_none())
        .map(|item| {
            Event::Decided(Box::new(Decided {
                item: item.id.clone(),
                principal: item.principal.clone(),
                role: item.role.clone(),
                decision: ItemDecision {
                    decision,
                    reason: NO_DECISION.to_owned(),
                    reviewer: None,
                    at: now,
                    auto: true,
                },
                overrides: None,
            }))
        })
        .collect()
}

/// Whether the campaign can close at `now`, and why: every item decided
/// (after the deadline, [`due`] decides the rest first).
pub fn closable(campaign: &Campaign, now: DateTime<Utc>) -> Result<String, CampaignError> {
    if campaign.closed.is_some() {
        return Err(CampaignError::Conflict(format!(
            "campaign {} is already closed",
            campaign.id
        )));
    }
    let undecided = campaign.counts().undecided;
    if undecided > 0 {
        return Err(CampaignError::Conflict(format!(
            "{undecided} item{} of campaign {} {} undecided; decide {} or wait for the deadline ({})",
            if undecided == 1 { "" } else { "s" },
            campaign.id,
            if undecided == 1 { "is" } else { "are" },
            if undecided == 1 { "it" } else { "them" },
            campaign
                .deadline
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    Ok(if now >= campaign.deadline {
        "the deadline passed".to_owned()
    } else {
        "every item was decided".to_owned()
    })
}

/// The items of a campaign over `scope`: one per (principal, role) in
/// scope, from `review` (built on `usage`), with `permits` the running
/// set's and `roles_by_group` `[policy.roles]` (role → group ids).
pub fn items(
    review: &Review,
    usage: &Usage,
    permits: &[Permit],
    roles_by_group: &BTreeMap<String, Vec<String>>,
    scope: &Scope,
) -> (Vec<Item>, Vec<String>) {
    let permits_of = |role: &str| -> BTreeSet<&str> {
        permits
            .iter()
            .filter(|p| p.grantee == Grantee::Role(role.to_owned()))
            .map(|p| p.id.as_str())
            .collect()
    };
    let mut items = Vec::new();
    let mut found = BTreeSet::new();
    for p in &review.principals {
        let u = &p.usage;
        let named = scope.names(&u.tid, &u.oid);
        if named {
            found.insert(format!("{}/{}", u.tid, u.oid));
        }
        let mut roles: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for role in &u.roles {
            if named || scope.roles.iter().any(|r| r == role) {
                roles.entry(role).or_default();
            }
        }
        for group in &scope.groups {
            if !u.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                continue;
            }
            for (role, groups) in roles_by_group {
                if u.roles.contains(role) && groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                    roles.entry(role).or_default().push(group.clone());
                }
            }
        }
        for (role, via_groups) in roles {
            items.push(item(p, usage, role, via_groups, &permits_of(role), review));
        }
    }
    items.sort_by(|a, b| {
        (
            a.role.as_str(),
            a.principal.name.to_lowercase(),
            &a.principal.oid,
        )
            .cmp(&(
                b.role.as_str(),
                b.principal.name.to_lowercase(),
                &b.principal.oid,
            ))
    });
    for (n, item) in items.iter_mut().enumerate() {
        item.id = (n + 1).to_string();
    }
    let not_found = scope
        .principals
        .iter()
        .filter(|named| {
            !found.iter().any(|key| {
                key.eq_ignore_ascii_case(named)
                    || key
                        .rsplit('/')
                        .next()
                        .is_some_and(|oid| oid.eq_ignore_ascii_case(named))
            })
        })
        .cloned()
        .collect();
    (items, not_found)
}

fn item(
    p: &PrincipalReview,
    usage: &Usage,
    role: &str,
    via_groups: Vec<String>,
    permits: &BTreeSet<&str>,
    review: &Review,
) -> Item {
    let u = &p.usage;
    let mut operations: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_used: Option<String> = None;
    for ((op, determining), op_use) in &u.decisions {
        if determining.iter().any(|id| permits.contains(id.as_str())) {
            *operations.entry(op.clone()).or_default() += op_use.calls;
            if last_used
                .as_deref()
                .is_none_or(|l| op_use.last.as_str() > l)
            {
                last_used = Some(op_use.last.clone());
            }
        }
    }
    let needed = !p.unused_roles.iter().any(|r| r == role);
    let days = (review.period.to - review.period.from).num_days();
    let (suggestion, suggestion_reason) = if p.dormant {
        (
            Choice::Remove,
            format!("dormant: no call or sign-in in the last {days} days"),
        )
    } else if !needed {
        (
            Choice::Remove,
            format!("unused: no call in the last {days} days needed {role}"),
        )
    } else {
        let calls: u64 = operations.values().sum();
        (
            Choice::Keep,
            format!(
                "used: {calls} call{} through {role} in the last {days} days",
                super::plural(calls)
            ),
        )
    };
    // A call the role allowed: this principal's first, else any holder's.
    let example = operations
        .keys()
        .find_map(|op| {
            permits
                .iter()
                .find_map(|id| usage.samples.get(&((*id).to_owned(), op.clone())))
                .map(|s| Example::of(op, s))
        })
        .or_else(|| {
            usage
                .samples
                .iter()
                .find(|((id, _), _)| permits.contains(id.as_str()))
                .map(|((_, op), s)| Example::of(op, s))
        });
    Item {
        id: String::new(),
        principal: Person {
            tid: u.tid.clone(),
            oid: u.oid.clone(),
            name: u.name.clone(),
            kind: if u.kind.is_empty() {
                "user".to_owned()
            } else {
                u.kind.clone()
            },
        },
        role: role.to_owned(),
        via_groups,
        guest: u.guest,
        last_activity: u.last_activity.clone(),
        last_used,
        operations,
        needed,
        dormant: p.dormant,
        risk_factors: p.risk_factors.clone(),
        suggestion,
        suggestion_reason,
        example,
        decision: None,
        overridden: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(name: &str) -> Person {
        Person {
            tid: "t".into(),
            oid: format!("oid-{name}"),
            name: name.into(),
            kind: "user".into(),
        }
    }

    fn campaign(auto: bool) -> Campaign {
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let item = |id: &str, who: &str| Item {
            id: id.into(),
            principal: person(who),
            role: "Developer".into(),
            via_groups: Vec::new(),
            guest: false,
            last_activity: None,
            last_used: None,
            operations: BTreeMap::new(),
            needed: true,
            dormant: false,
            risk_factors: Vec::new(),
            suggestion: Choice::Keep,
            suggestion_reason: String::new(),
            example: None,
            decision: None,
            overridden: Vec::new(),
        };
        Campaign {
            id: "c1".into(),
            title: String::new(),
            scope: Scope {
                roles: vec!["Developer".into()],
                ..Scope::default()
            },
            deadline: at + chrono::Duration::days(7),
            auto_remove_undecided: auto,
            created: at,
            created_by: person("grace"),
            reviewer_roles: vec!["SecurityManager".into()],
            days: 90,
            period: Period::days_before(at, 90),
            policy_set: "h".into(),
            items: vec![item("1", "alice"), item("2", "sam"), item("3", "bob")],
            not_found: Vec::new(),
            closed: None,
        }
    }

    fn ask<'a>(item: &'a str, decision: Choice, reason: &'a str, overrides: bool) -> Ask<'a> {
        Ask {
            item,
            decision,
            reason,
            overrides,
        }
    }

    #[test]
    fn decisions_follow_the_rules() {
        let c = campaign(true);
        let now = c.created + chrono::Duration::hours(1);
        let sam = person("sam");
        let rita = person("rita");
        let refused = |r: Result<Event, CampaignError>| r.expect_err("refused").status();
        // Never about oneself, always with a reason, only known items.
        assert_eq!(
            refused(decide(&c, &sam, &ask("2", Choice::Keep, "x", false), now)),
            403
        );
        assert_eq!(
            refused(decide(&c, &sam, &ask("1", Choice::Keep, "  ", false), now)),
            400
        );
        assert_eq!(
            refused(decide(&c, &sam, &ask("9", Choice::Keep, "x", false), now)),
            404
        );
        let first = decide(&c, &sam, &ask("1", Choice::Remove, "left", false), now).unwrap();
        assert_eq!(first.name(), "decided");
        let c = first.apply(Some(&c)).unwrap();
        // The same reviewer again: refused; another without saying so: refused.
        assert_eq!(
            refused(decide(&c, &sam, &ask("1", Choice::Keep, "x", true), now)),
            409
        );
        assert_eq!(
            refused(decide(&c, &rita, &ask("1", Choice::Keep, "x", false), now)),
            409
        );
        let over = decide(
            &c,
            &rita,
            &ask("1", Choice::Keep, "still on call", true),
            now,
        )
        .unwrap();
        let Event::Decided(d) = &over else { panic!() };
        assert_eq!(
            d.overrides.as_ref().map(|o| o.decision),
            Some(Choice::Remove)
        );
        let c = over.apply(Some(&c)).unwrap();
        assert_eq!(c.items[0].overridden.len(), 1);
        assert_eq!(c.counts().kept, 1);
        // Not closable while undecided before the deadline.
        assert_eq!(closable(&c, now).unwrap_err().status(), 409);
        // Past the deadline nothing is decided; the deadline decides the rest.
        let late = c.deadline;
        assert_eq!(
            refused(decide(&c, &rita, &ask("3", Choice::Keep, "x", false), late)),
            409
        );
        assert!(due(&c, now).is_empty());
        let due_now = due(&c, late);
        assert_eq!(due_now.len(), 2);
        assert!(due_now.iter().all(|e| e.name() == "auto_removed"));
        let c = due_now.iter().fold(c, |c, e| e.apply(Some(&c)).unwrap());
        assert_eq!(c.counts().auto_removed, 2);
        assert_eq!(closable(&c, late).unwrap(), "the deadline passed");
        assert_eq!(
            c.removals().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["2", "3"]
        );
        // Without auto-removal the deadline keeps them.
        let kept = due(&campaign(false), late);
        assert!(kept.iter().all(|e| e.name() == "auto_kept"));
    }

    /// An allowed intent of `who` (roles, groups) reading a VM, decided by
    /// the permit `reader-read`.
    fn intent(oid: &str, roles: &[&str], groups: &[&str], ts: &str) -> Vec<u8> {
        let mut r = crate::audit::record::Record::new(crate::audit::record::Kind::Intent);
        r.ts = ts.into();
        r.principal = Some(crate::audit::record::Actor {
            tid: "t".into(),
            oid: oid.into(),
            name: oid.into(),
            kind: "user".into(),
            client_app: None,
            auth_path: None,
            guest: false,
            roles: roles.iter().map(|s| (*s).to_owned()).collect(),
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
        });
        r.decision = Some(serde_json::json!({
            "effect": "allow",
            "operations": [{
                "azure_op": "Microsoft.Compute/virtualMachines/read",
                "resource": "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/v",
                "policies": ["reader-read"],
            }],
        }));
        serde_json::to_vec(&r).unwrap()
    }

    #[test]
    fn the_scope_picks_roles_groups_and_principals() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.cedar"),
            r#"@id("reader-read") permit (principal in AppRole::"Reader", action in Action::"read", resource);
@id("ops") permit (principal in AppRole::"Operator", action in Action::"read", resource);"#,
        )
        .unwrap();
        let config = crate::policy::PolicyConfig {
            dir: dir.path().to_path_buf(),
            roles: BTreeMap::from([("Reader".to_owned(), vec!["g-readers".to_owned()])]),
            ..crate::policy::PolicyConfig::default()
        };
        let ops = vec![(
            "Microsoft.Compute/virtualMachines/read".to_owned(),
            "read".to_owned(),
        )];
        let engine = crate::policy::Engine::load(&config, &ops).unwrap();
        let permits = crate::policy::narrow::permits(dir.path()).unwrap();
        let at: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut usage = Usage::new(Period::days_before(at, 90));
        usage.add(&intent(
            "ann",
            &["Reader"],
            &["g-readers"],
            "2026-05-01T00:00:00Z",
        ));
        usage.add(&intent(
            "bob",
            &["Reader", "Operator"],
            &[],
            "2026-05-02T00:00:00Z",
        ));
        // Carol's only call is older than the period: dormant.
        usage.add(&intent("carol", &["Operator"], &[], "2025-01-01T00:00:00Z"));
        let review = Review::build(
            usage.clone(),
            &engine,
            &permits,
            &ops,
            &crate::review::Options {
                period: usage.period,
                home_tenants: vec!["t".into()],
            },
            "test".into(),
        );
        // (principal, role, groups, suggestion) of each item; not found.
        type Picked = (Vec<(String, String, Vec<String>, Choice)>, Vec<String>);
        let pick = |scope: Scope| -> Picked {
            let (items, not_found) = items(&review, &usage, &permits, &config.roles, &scope);
            (
                items
                    .into_iter()
                    .map(|i| (i.principal.oid, i.role, i.via_groups, i.suggestion))
                    .collect(),
                not_found,
            )
        };
        let (by_group, _) = pick(Scope {
            groups: vec!["G-READERS".into()],
            ..Scope::default()
        });
        assert_eq!(
            by_group,
            [(
                "ann".into(),
                "Reader".into(),
                vec!["G-READERS".into()],
                Choice::Keep
            )]
        );
        let (by_principal, not_found) = pick(Scope {
            principals: vec!["bob".into(), "t/carol".into(), "nobody".into()],
            ..Scope::default()
        });
        // Bob's reads needed one of his two roles, the other is unused;
        // carol is dormant.
        let suggestions: Vec<(&str, &str, Choice)> = by_principal
            .iter()
            .map(|(oid, role, _, s)| (oid.as_str(), role.as_str(), *s))
            .collect();
        assert_eq!(suggestions.len(), 3, "{suggestions:?}");
        assert!(suggestions.contains(&("carol", "Operator", Choice::Remove)));
        let bob: Vec<Choice> = suggestions
            .iter()
            .filter(|(oid, _, _)| *oid == "bob")
            .map(|(_, _, s)| *s)
            .collect();
        assert_eq!(bob.len(), 2);
        assert!(bob.contains(&Choice::Keep) && bob.contains(&Choice::Remove));
        assert_eq!(not_found, ["nobody"]);
        let (by_role, _) = pick(Scope {
            roles: vec!["Operator".into()],
            ..Scope::default()
        });
        let ids: Vec<&str> = by_role.iter().map(|(oid, ..)| oid.as_str()).collect();
        assert_eq!(ids, ["bob", "carol"]);
        assert!(Scope::default().cleaned().is_err());
    }

    #[test]
    fn events_round_trip_through_their_details() {
        let c = campaign(true);
        let started = Event::Started(Box::new(c.clone()));
        let details = started.details();
        assert_eq!(details["event"], "campaign_started");
        assert_eq!(details["items"].as_array().unwrap().len(), 3);
        assert_eq!(Event::parse(&details), Some(started));
        let decided = decide(
            &c,
            &person("rita"),
            &ask("1", Choice::Remove, "moved teams", false),
            c.created,
        )
        .unwrap();
        let details = decided.details();
        assert_eq!(
            (
                &details["item"],
                &details["decision"],
                &details["reason"],
                &details["reviewer"]["name"]
            ),
            (
                &"1".into(),
                &"remove".into(),
                &"moved teams".into(),
                &"rita".into()
            )
        );
        assert_eq!(Event::parse(&details), Some(decided));
    }
}
