//! The lifecycle rules of JIT requests as pure functions of a request, the
//! rules and the time (`now` is always an argument): what a review, a
//! cancel, a revoke or a use does to a request, and what time alone does
//! to it (lapse, expiry). Nothing here reads a clock, records anything or
//! holds a lock; [`super::engine`] calls these under its lock, records the
//! result durably and only then applies it. The unit tests below walk
//! every transition at exact instants, without sleeping.
//!
//! ```text
//! pending ──approve (enough reviews)──▶ approved ──use──▶ consumed   (single-use)
//!    │                                     │   └──time──▶ expired
//!    │                                     └──revoke──▶ revoked
//!    ├──deny (any one review)──▶ denied
//!    ├──cancel / revoke──▶ cancelled / revoked
//!    └──time──▶ lapsed
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::model::{Ask, Grant, OperationRef, Party, Request, Review, Status};
use crate::azure::ArmId;

/// Why a lifecycle step was refused. `status()` is the HTTP status the
/// admin API answers with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApprovalError {
    #[error("no JIT request {0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the audit log cannot record the change: {0}")]
    Unavailable(String),
    /// Another replica changed the request first; nothing was recorded.
    #[error("another Warden replica changed JIT request {0} at the same time; try again")]
    Raced(String),
}

impl ApprovalError {
    pub fn status(&self) -> u16 {
        match self {
            ApprovalError::NotFound(_) => 404,
            ApprovalError::Forbidden(_) => 403,
            ApprovalError::Invalid(_) => 400,
            ApprovalError::Conflict(_) | ApprovalError::Raced(_) => 409,
            ApprovalError::Unavailable(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApprovalError::NotFound(_) => "not_found",
            ApprovalError::Forbidden(_) => "forbidden",
            ApprovalError::Invalid(_) => "invalid",
            ApprovalError::Conflict(_) | ApprovalError::Raced(_) => "conflict",
            ApprovalError::Unavailable(_) => "unavailable",
        }
    }
}

/// The times and counts the lifecycle follows (from `[approvals]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Approvals an ordinary request needs.
    pub approvals: u32,
    /// Approvals a request for a critical operation needs.
    pub critical_approvals: u32,
    /// A pending request lapses after this long.
    pub pending_lapse: Duration,
    /// An approved single-call request must be used within this long.
    pub single_use_window: Duration,
    /// The longest time-window grant.
    pub max_window: Duration,
}

/// What a step did, as the audit record's `event` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Requested,
    /// The requester gave a justification (or a ticket) after the fact.
    Justified,
    /// An approval that is not yet enough.
    Reviewed,
    Approved,
    Denied,
    Consumed,
    Cancelled,
    Revoked,
    Lapsed,
    Expired,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Requested => "requested",
            Event::Justified => "justified",
            Event::Reviewed => "reviewed",
            Event::Approved => "approved",
            Event::Denied => "denied",
            Event::Consumed => "consumed",
            Event::Cancelled => "cancelled",
            Event::Revoked => "revoked",
            Event::Lapsed => "lapsed",
            Event::Expired => "expired",
        }
    }

    /// Whether the security managers' webhooks hear of it.
    pub fn is_notified(self) -> bool {
        matches!(
            self,
            Event::Requested | Event::Approved | Event::Denied | Event::Revoked
        )
    }
}

pub(crate) fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A new pending request `id` of `requester`, needing the approvals its
/// criticality asks, lapsing `rules.pending_lapse` after `now`.
pub fn open(
    id: String,
    requester: Party,
    ask: Ask,
    operations: Vec<OperationRef>,
    critical: bool,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Request {
    Request {
        id,
        created: now,
        requester,
        ask,
        operations,
        justification: String::new(),
        ticket: None,
        awaiting_justification: false,
        call_id: None,
        used_by: None,
        facts_hash: None,
        policies: Vec::new(),
        risk: None,
        required_approvals: if critical {
            rules.critical_approvals
        } else {
            rules.approvals
        },
        critical,
        status: Status::Pending,
        lapses: now + to_chrono(rules.pending_lapse),
        reviews: Vec::new(),
        grant: None,
        updated: now,
        closed_by: None,
        closing_reason: None,
    }
}

/// The request as it stands at `now`: a pending one at or past its lapse
/// time has lapsed, an approved one at or past its grant's expiry has
/// expired. Decisions use this, so a request is lapsed or expired from the
/// instant it is due, whether or not the sweep has recorded it yet.
pub fn effective(request: &Request, now: DateTime<Utc>) -> Request {
    let mut r = request.clone();
    if let Some(event) = due(request, now) {
        r.status = match event {
            Event::Lapsed => Status::Lapsed,
            _ => Status::Expired,
        };
        r.updated = now;
    }
    r
}

/// The change time alone makes to `request` at `now`, if any.
pub fn due(request: &Request, now: DateTime<Utc>) -> Option<Event> {
    match request.status {
        Status::Pending if now >= request.lapses => Some(Event::Lapsed),
        Status::Approved if request.grant.as_ref().is_some_and(|g| now >= g.expires) => {
            Some(Event::Expired)
        }
        _ => None,
    }
}

/// A reviewer's decision as the form or API gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a> {
    pub approve: bool,
    pub reason: &'a str,
    /// [`super::model::Facts::hash`] of the facts the reviewer's page
    /// showed, when it says.
    pub shown: Option<&'a str>,
}

/// `reviewer` approves or denies `request` at `now`. Separation of duties:
/// never one's own request, a reason, one review per reviewer, only a
/// pending request that is not awaiting its justification, and only on
/// the facts the request has (a page that showed other facts is stale);
/// any denial ends it; enough approvals grant it, with `grant_id`, until
/// the single-use window or the asked window (at most `rules.max_window`)
/// ends. (Whether the reviewer may review at all — the approver role and
/// MFA — is the engine's check of the principal.)
pub fn review(
    request: &Request,
    reviewer: Party,
    verdict: Verdict<'_>,
    grant_id: String,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<(Request, Event), ApprovalError> {
    let Verdict {
        approve,
        reason,
        shown,
    } = verdict;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApprovalError::Invalid(
            "a reason is required to approve or deny".into(),
        ));
    }
    let mut request = effective(request, now);
    if request.requester.same(&reviewer) {
        return Err(ApprovalError::Forbidden(
            "nobody may review their own request".into(),
        ));
    }
    if request.status != Status::Pending {
        return Err(ApprovalError::Conflict(format!(
            "request {} is {}, not pending",
            request.id,
            request.status.as_str()
        )));
    }
    if request.reviews.iter().any(|r| r.reviewer.same(&reviewer)) {
        return Err(ApprovalError::Conflict(
            "you have already reviewed this request".into(),
        ));
    }
    if request.awaiting_justification {
        return Err(ApprovalError::Conflict(format!(
            "request {} is waiting for its requester's justification",
            request.id
        )));
    }
    if let (Some(shown), Some(facts)) = (shown, &request.facts_hash)
        && shown != facts
    {
        return Err(ApprovalError::Conflict(format!(
            "request {} is not what your page showed; reload it and review again",
            request.id
        )));
    }
    request.reviews.push(Review {
        reviewer,
        approve,
        reason: reason.to_owned(),
        at: now,
        shown: shown
            .map(str::to_owned)
            .or_else(|| request.facts_hash.clone()),
    });
    request.updated = now;
    let event = if !approve {
        request.status = Status::Denied;
        request.closing_reason = Some(reason.to_owned());
        Event::Denied
    } else if request.approvals() >= request.required_approvals {
        request.status = Status::Approved;
        let lasts = match &request.ask {
            Ask::Call { .. } => rules.single_use_window,
            Ask::Window { duration_secs, .. } => {
                Duration::from_secs(*duration_secs).min(rules.max_window)
            }
        };
        request.grant = Some(Grant {
            id: grant_id,
            expires: now + to_chrono(lasts),
            approvers: request
                .reviews
                .iter()
                .filter(|r| r.approve)
                .map(|r| r.reviewer.oid.clone())
                .collect(),
        });
        Event::Approved
    } else {
        Event::Reviewed
    };
    Ok((request, event))
}

/// The requester of `request` gives its justification (and a ticket) at
/// `now`, while it is pending. A request held back for want of one is
/// shown to reviewers from then on.
pub fn justify(
    request: &Request,
    requester: &Party,
    justification: &str,
    ticket: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Request, Event), ApprovalError> {
    let justification = justification.trim();
    if justification.is_empty() {
        return Err(ApprovalError::Invalid(
            "a justification is required: say why the call is needed".into(),
        ));
    }
    let mut request = effective(request, now);
    if !request.requester.same(requester) {
        return Err(ApprovalError::Forbidden(
            "only the requester may justify a request".into(),
        ));
    }
    if request.status != Status::Pending {
        return Err(ApprovalError::Conflict(format!(
            "request {} is {}, not pending",
            request.id,
            request.status.as_str()
        )));
    }
    request.justification = justification.to_owned();
    if let Some(ticket) = ticket.map(str::trim).filter(|t| !t.is_empty()) {
        request.ticket = Some(ticket.to_owned());
    }
    request.awaiting_justification = false;
    request.updated = now;
    Ok((request, Event::Justified))
}

/// Whether a time window asking for `asked` (operation names, `*`
/// patterns or action groups) reaches a critical operation: one that a
/// pattern of `critical` matches, among `members` (every operation Warden
/// knows, with its class) and the critical operations themselves. A group
/// such as `privileged` is matched by its members, not by its name.
pub fn window_is_critical(
    asked: &[String],
    critical: &[String],
    members: &[(String, String)],
) -> bool {
    let is_critical = |op: &str| critical.iter().any(|p| glob(p, op));
    asked.iter().any(|g| {
        critical.iter().any(|p| glob(p, g) || glob(g, p))
            || members.iter().any(|(op, class)| {
                (g.eq_ignore_ascii_case(class) || glob(g, op)) && is_critical(op)
            })
    })
}

/// `by` ends `request` at `now` as `to` (cancelled or revoked), if it is
/// in one of the states `from`, with a reason.
pub fn close(
    request: &Request,
    by: Party,
    to: Status,
    from: &[Status],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(Request, Event), ApprovalError> {
    let event = match to {
        Status::Cancelled => Event::Cancelled,
        Status::Revoked => Event::Revoked,
        other => {
            return Err(ApprovalError::Invalid(format!(
                "a request cannot be closed as {}",
                other.as_str()
            )));
        }
    };
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApprovalError::Invalid("a reason is required".into()));
    }
    let mut request = effective(request, now);
    if !from.contains(&request.status) {
        return Err(ApprovalError::Conflict(format!(
            "request {} is {}",
            request.id,
            request.status.as_str()
        )));
    }
    request.status = to;
    request.updated = now;
    request.closed_by = Some(by);
    request.closing_reason = Some(reason.to_owned());
    Ok((request, event))
}

/// Uses the grant of `request` for call `call_id` at `now`. A single-call
/// grant becomes consumed (the change to record); a time window serves
/// every call in it and changes nothing (`None`).
pub fn consume(
    request: &Request,
    call_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Request>, ApprovalError> {
    let mut request = effective(request, now);
    if request.status != Status::Approved {
        return Err(ApprovalError::Conflict(format!(
            "request {} is {}",
            request.id,
            request.status.as_str()
        )));
    }
    if matches!(request.ask, Ask::Window { .. }) {
        return Ok(None);
    }
    request.status = Status::Consumed;
    request.updated = now;
    request.closing_reason = Some(format!("used by call {call_id}"));
    request.used_by = Some(call_id.to_owned());
    Ok(Some(request))
}

/// Whether `request` is an approved, unexpired (at `now`) time-window
/// grant of `requester` covering every operation, by name, `*` pattern or
/// class group, on a resource at or below its scope.
pub fn covers(
    request: &Request,
    requester: &Party,
    operations: &[OperationRef],
    now: DateTime<Utc>,
) -> bool {
    let Ask::Window {
        operations: granted,
        scope,
        ..
    } = &request.ask
    else {
        return false;
    };
    if !request.requester.same(requester) || effective(request, now).status != Status::Approved {
        return false;
    }
    // A scope or resource that does not parse is covered by nothing.
    let Ok(scope) = ArmId::parse(scope) else {
        return false;
    };
    !operations.is_empty()
        && operations.iter().all(|op| {
            let within = ArmId::parse(&op.resource).is_ok_and(|r| scope.contains(&r));
            within
                && granted
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(&op.class) || glob(g, &op.azure_op))
        })
}

/// `*` patterns over operation names, ignoring case.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    crate::catalog::glob_match(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    const RULES: Rules = Rules {
        approvals: 1,
        critical_approvals: 2,
        pending_lapse: Duration::from_secs(3600),
        single_use_window: Duration::from_secs(900),
        max_window: Duration::from_secs(4 * 3600),
    };
    const SUB: &str = "/subscriptions/00000000-0000-4000-8000-000000000001";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn party(oid: &str) -> Party {
        Party {
            tid: "t".into(),
            oid: oid.into(),
            name: oid.to_uppercase(),
        }
    }

    fn op(azure_op: &str, class: &str, resource: &str) -> OperationRef {
        OperationRef {
            azure_op: azure_op.into(),
            class: class.into(),
            resource: resource.to_ascii_lowercase(),
        }
    }

    fn call_request(critical: bool) -> Request {
        open(
            "r1".into(),
            party("alice"),
            Ask::Call {
                tool: "azure__vm_delete".into(),
                upstream: "azure".into(),
                upstream_tool: "vm_delete".into(),
                args_hash: "h".into(),
                arguments: json!({}),
            },
            vec![op(
                "Microsoft.Compute/virtualMachines/delete",
                "delete",
                &format!(
                    "{SUB}/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"
                ),
            )],
            critical,
            &RULES,
            t0(),
        )
    }

    fn window_request(operations: &[&str], scope: &str, hours: u64) -> Request {
        open(
            "w1".into(),
            party("alice"),
            Ask::Window {
                operations: operations.iter().map(|s| s.to_string()).collect(),
                scope: scope.to_ascii_lowercase(),
                duration_secs: hours * 3600,
            },
            Vec::new(),
            false,
            &RULES,
            t0(),
        )
    }

    fn approve(request: &Request, by: &str, at: DateTime<Utc>) -> (Request, Event) {
        review(
            request,
            party(by),
            Verdict {
                approve: true,
                reason: "ok",
                shown: None,
            },
            "g1".into(),
            &RULES,
            at,
        )
        .unwrap()
    }

    #[test]
    fn a_pending_request_lapses_exactly_at_its_lapse_time() {
        let request = call_request(false);
        assert_eq!(request.lapses, t0() + secs(3600));
        let before = t0() + secs(3599);
        assert_eq!(due(&request, before), None);
        assert_eq!(effective(&request, before).status, Status::Pending);
        let at = t0() + secs(3600);
        assert_eq!(due(&request, at), Some(Event::Lapsed));
        let lapsed = effective(&request, at);
        assert_eq!((lapsed.status, lapsed.updated), (Status::Lapsed, at));
        // A lapsed request can no longer be reviewed.
        let error = review(
            &request,
            party("bob"),
            Verdict {
                approve: true,
                reason: "ok",
                shown: None,
            },
            "g".into(),
            &RULES,
            at,
        )
        .unwrap_err();
        assert!(error.to_string().contains("lapsed, not pending"), "{error}");
    }

    #[test]
    fn a_single_call_grant_expires_after_the_single_use_window() {
        let approved_at = t0() + secs(60);
        let (approved, event) = approve(&call_request(false), "bob", approved_at);
        assert_eq!(event, Event::Approved);
        let grant = approved.grant.clone().unwrap();
        assert_eq!(grant.expires, approved_at + secs(900));
        assert_eq!(grant.approvers, vec!["bob".to_owned()]);
        // An approved request does not lapse.
        assert_eq!(due(&approved, t0() + secs(3600 + 1)), Some(Event::Expired));
        assert_eq!(due(&approved, approved_at + secs(899)), None);
        assert_eq!(
            effective(&approved, approved_at + secs(900)).status,
            Status::Expired
        );
        // Used inside the window: consumed once, then no more.
        let used = consume(&approved, "c1", approved_at + secs(899))
            .unwrap()
            .unwrap();
        assert_eq!(used.status, Status::Consumed);
        assert_eq!(used.closing_reason.as_deref(), Some("used by call c1"));
        assert!(consume(&used, "c2", approved_at + secs(900)).is_err());
        // Too late: expired, not consumable.
        let error = consume(&approved, "c1", approved_at + secs(900)).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
    }

    #[test]
    fn a_window_grant_lasts_what_was_asked_up_to_the_maximum() {
        let asked = window_request(&["read"], SUB, 2);
        let (approved, _) = approve(&asked, "bob", t0());
        assert_eq!(approved.grant.unwrap().expires, t0() + secs(2 * 3600));
        let greedy = window_request(&["read"], SUB, 48);
        let (approved, _) = approve(&greedy, "bob", t0());
        assert_eq!(
            approved.grant.clone().unwrap().expires,
            t0() + secs(4 * 3600)
        );
        // Using a window changes nothing.
        assert_eq!(consume(&approved, "c", t0() + secs(10)).unwrap(), None);
    }

    #[test]
    fn separation_of_duties() {
        let request = call_request(false);
        let own = review(
            &request,
            party("alice"),
            Verdict {
                approve: true,
                reason: "mine",
                shown: None,
            },
            "g".into(),
            &RULES,
            t0(),
        );
        assert!(matches!(own, Err(ApprovalError::Forbidden(_))));
        let blank = review(
            &request,
            party("bob"),
            Verdict {
                approve: true,
                reason: "  ",
                shown: None,
            },
            "g".into(),
            &RULES,
            t0(),
        );
        assert!(matches!(blank, Err(ApprovalError::Invalid(_))));

        // A critical request needs two different approvers.
        let critical = call_request(true);
        assert_eq!(critical.required_approvals, 2);
        let (once, event) = approve(&critical, "bob", t0());
        assert_eq!((event, once.status), (Event::Reviewed, Status::Pending));
        let twice = review(
            &once,
            party("bob"),
            Verdict {
                approve: true,
                reason: "again",
                shown: None,
            },
            "g".into(),
            &RULES,
            t0(),
        );
        assert!(matches!(twice, Err(ApprovalError::Conflict(_))));
        let (done, event) = approve(&once, "carol", t0() + secs(5));
        assert_eq!((event, done.status), (Event::Approved, Status::Approved));
        assert_eq!(done.grant.unwrap().approvers, vec!["bob", "carol"]);
    }

    #[test]
    fn any_denial_ends_a_request() {
        let (once, _) = approve(&call_request(true), "bob", t0());
        let (denied, event) = review(
            &once,
            party("carol"),
            Verdict {
                approve: false,
                reason: "not now",
                shown: None,
            },
            "g".into(),
            &RULES,
            t0(),
        )
        .unwrap();
        assert_eq!((event, denied.status), (Event::Denied, Status::Denied));
        assert_eq!(denied.closing_reason.as_deref(), Some("not now"));
        assert!(denied.grant.is_none());
        assert_eq!(due(&denied, t0() + secs(10 * 3600)), None);
    }

    #[test]
    fn cancel_and_revoke_need_a_reason_and_a_state_they_apply_to() {
        let request = call_request(false);
        let (cancelled, event) = close(
            &request,
            party("sam"),
            Status::Cancelled,
            &[Status::Pending],
            "oops",
            t0(),
        )
        .unwrap();
        assert_eq!(
            (event, cancelled.status),
            (Event::Cancelled, Status::Cancelled)
        );
        assert!(
            close(
                &request,
                party("sam"),
                Status::Cancelled,
                &[Status::Pending],
                " ",
                t0()
            )
            .is_err()
        );
        // A lapsed request can no longer be cancelled.
        let late = close(
            &request,
            party("sam"),
            Status::Cancelled,
            &[Status::Pending],
            "oops",
            t0() + secs(3600),
        );
        assert!(matches!(late, Err(ApprovalError::Conflict(_))));
        // An approved grant can be revoked until it expires.
        let (approved, _) = approve(&request, "bob", t0());
        let from = [Status::Approved, Status::Pending];
        let (revoked, event) = close(
            &approved,
            party("sam"),
            Status::Revoked,
            &from,
            "incident",
            t0() + secs(60),
        )
        .unwrap();
        assert_eq!((event, revoked.status), (Event::Revoked, Status::Revoked));
        assert_eq!(revoked.closed_by, Some(party("sam")));
        assert!(
            close(
                &approved,
                party("sam"),
                Status::Revoked,
                &from,
                "x",
                t0() + secs(900)
            )
            .is_err()
        );
        assert!(close(&request, party("sam"), Status::Approved, &from, "x", t0()).is_err());
    }

    #[test]
    fn a_window_covers_its_operations_at_or_below_its_scope_until_it_expires() {
        let rg = format!("{SUB}/resourceGroups/dev");
        let (grant, _) = approve(
            &window_request(&["read", "Microsoft.Compute/virtualMachines/*"], &rg, 1),
            "bob",
            t0(),
        );
        let vm = format!("{rg}/providers/Microsoft.Compute/virtualMachines/web");
        let restart = op(
            "Microsoft.Compute/virtualMachines/restart/action",
            "action",
            &vm,
        );
        let read_disk = op(
            "Microsoft.Compute/disks/read",
            "read",
            &format!("{rg}/providers/Microsoft.Compute/disks/d"),
        );
        let delete_disk = op(
            "Microsoft.Compute/disks/delete",
            "delete",
            &format!("{rg}/providers/Microsoft.Compute/disks/d"),
        );
        let elsewhere = op(
            "Microsoft.Compute/virtualMachines/delete",
            "delete",
            &format!("{SUB}/resourceGroups/prod/providers/Microsoft.Compute/virtualMachines/web"),
        );
        let alice = party("alice");
        let at = t0() + secs(10);
        assert!(covers(
            &grant,
            &alice,
            &[restart.clone(), read_disk.clone()],
            at
        ));
        assert!(!covers(&grant, &alice, &[restart.clone(), delete_disk], at));
        assert!(!covers(&grant, &alice, &[elsewhere], at));
        assert!(!covers(&grant, &alice, &[], at));
        assert!(!covers(
            &grant,
            &party("mallory"),
            std::slice::from_ref(&read_disk),
            at
        ));
        assert!(!covers(&grant, &alice, &[read_disk], t0() + secs(3600)));
        // A pending window covers nothing.
        let pending = window_request(&["read"], &rg, 1);
        assert!(!covers(&pending, &alice, &[restart], at));
    }

    #[test]
    fn a_request_awaiting_its_justification_cannot_be_reviewed_until_justified() {
        let mut request = call_request(false);
        request.awaiting_justification = true;
        let yes = Verdict {
            approve: true,
            reason: "ok",
            shown: None,
        };
        let early = review(
            &request,
            party("bob"),
            yes.clone(),
            "g".into(),
            &RULES,
            t0(),
        );
        assert!(
            matches!(&early, Err(ApprovalError::Conflict(m)) if m.contains("justification")),
            "{early:?}"
        );
        let stranger = justify(&request, &party("mallory"), "because", None, t0());
        assert!(matches!(stranger, Err(ApprovalError::Forbidden(_))));
        assert!(justify(&request, &party("alice"), "  ", None, t0()).is_err());
        let (justified, event) = justify(
            &request,
            &party("alice"),
            " INC-7 outage ",
            Some(" CHG-42 "),
            t0() + secs(5),
        )
        .unwrap();
        assert_eq!(event, Event::Justified);
        assert!(!justified.awaiting_justification);
        assert_eq!(justified.justification, "INC-7 outage");
        assert_eq!(justified.ticket.as_deref(), Some("CHG-42"));
        assert_eq!(justified.updated, t0() + secs(5));
        let (_, event) = review(&justified, party("bob"), yes, "g".into(), &RULES, t0()).unwrap();
        assert_eq!(event, Event::Approved);
        // Too late once it has lapsed.
        let late = justify(&request, &party("alice"), "x", None, t0() + secs(3600));
        assert!(matches!(late, Err(ApprovalError::Conflict(_))));
    }

    #[test]
    fn a_review_records_the_facts_it_saw_and_refuses_other_facts() {
        let mut request = call_request(false);
        request.facts_hash = Some("aaaa".into());
        let stale = Verdict {
            approve: true,
            reason: "ok",
            shown: Some("bbbb"),
        };
        let error = review(&request, party("bob"), stale, "g".into(), &RULES, t0()).unwrap_err();
        assert!(
            error.to_string().contains("not what your page showed"),
            "{error}"
        );
        let seen = Verdict {
            approve: true,
            reason: "ok",
            shown: Some("aaaa"),
        };
        let (approved, _) = review(&request, party("bob"), seen, "g".into(), &RULES, t0()).unwrap();
        assert_eq!(approved.reviews[0].shown.as_deref(), Some("aaaa"));
        // The API, which shows no page, is recorded as seeing the request's facts.
        let api = Verdict {
            approve: true,
            reason: "ok",
            shown: None,
        };
        let (approved, _) = review(&request, party("bob"), api, "g".into(), &RULES, t0()).unwrap();
        assert_eq!(approved.reviews[0].shown.as_deref(), Some("aaaa"));
    }

    #[test]
    fn a_window_reaches_critical_operations_through_its_groups_members() {
        let critical = vec![
            "Microsoft.Authorization/roleAssignments/write".to_owned(),
            "Microsoft.Insights/diagnosticSettings/delete".to_owned(),
        ];
        let members = vec![
            (
                "Microsoft.Authorization/roleAssignments/write".to_owned(),
                "privileged".to_owned(),
            ),
            (
                "Microsoft.Insights/diagnosticSettings/delete".to_owned(),
                "privileged".to_owned(),
            ),
            (
                "Microsoft.Compute/virtualMachines/delete".to_owned(),
                "delete".to_owned(),
            ),
            (
                "Microsoft.Compute/virtualMachines/read".to_owned(),
                "read".to_owned(),
            ),
        ];
        let asks = |ops: &[&str]| ops.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for critical_ask in [
            asks(&["privileged"]),
            asks(&["PRIVILEGED"]),
            asks(&["read", "privileged"]),
            asks(&["Microsoft.Authorization/*"]),
            asks(&["*"]),
            asks(&["microsoft.authorization/roleassignments/write"]),
            asks(&["Microsoft.Insights/*/delete"]),
        ] {
            assert!(
                window_is_critical(&critical_ask, &critical, &members),
                "{critical_ask:?}"
            );
        }
        for ordinary in [
            asks(&["read"]),
            asks(&["delete", "write"]),
            asks(&["Microsoft.Compute/virtualMachines/*"]),
        ] {
            assert!(
                !window_is_critical(&ordinary, &critical, &members),
                "{ordinary:?}"
            );
        }
    }
}
