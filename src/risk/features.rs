//! The per-call features. Each looks at one kind of surprise, gives it a
//! sub-score (0..100) and says in words what it saw; [`super::Risk`]
//! combines them. A principal with little history is judged against its
//! peers (same kind and app roles) and its tenant, not flagged for being new.

use super::baseline::{Aggregate, Baseline, RiskClass, hour_of_week, key_hash};
use super::{Observation, Reason};

/// What a feature looks at besides the call.
pub struct Context<'a> {
    pub baseline: &'a Baseline,
    /// Whether the baseline is the principal's (false: first call ever).
    pub known: bool,
    pub peers: &'a Aggregate,
    pub tenant: &'a Aggregate,
    pub obs: &'a Observation,
    pub at: i64,
    pub dormant_after: i64,
    /// Country and ASN of the source address, when the lookup knows it.
    pub country: Option<&'a str>,
    pub asn: Option<u32>,
    /// Tokens refused from the call's source address in the last
    /// [`super::refusals::WINDOW_SECS`].
    pub refused: usize,
}

impl Context<'_> {
    /// 0..1: how much the principal's own history counts for operations
    /// and scopes (successful calls).
    fn maturity(&self) -> f32 {
        if !self.known {
            return 0.0;
        }
        (self.baseline.calls as f32 / 30.0).min(1.0)
    }

    /// 0..1: how much its own activity hours count (distinct days).
    fn hour_maturity(&self) -> f32 {
        if !self.known {
            return 0.0;
        }
        (f32::from(self.baseline.days) / 5.0).min(1.0) * self.maturity()
    }

    /// The peers to compare with: the peer group once it has a few
    /// members, else the tenant.
    fn peers(&self) -> (&Aggregate, &'static str) {
        if self.peers.members >= 3 {
            (self.peers, "peers")
        } else {
            (self.tenant, "principals in the tenant")
        }
    }

    fn classes(&self) -> impl Iterator<Item = RiskClass> + '_ {
        let mut seen = [false; super::baseline::CLASSES];
        self.obs.operations.iter().filter_map(move |op| {
            let first = !seen[op.class.index()];
            seen[op.class.index()] = true;
            first.then_some(op.class)
        })
    }

    fn has(&self, class: RiskClass) -> bool {
        self.obs.operations.iter().any(|op| op.class == class)
    }
}

/// First use of an operation, weighed by its class and by how many peers
/// use it.
pub fn new_operation(cx: &Context<'_>) -> Option<Reason> {
    let (peers, who) = cx.peers();
    let m = cx.maturity();
    let mut best: Option<Reason> = None;
    for op in &cx.obs.operations {
        let k = key_hash(&op.azure_op);
        if cx.known && cx.baseline.ops.contains(k) {
            continue;
        }
        let base = match op.class {
            RiskClass::Read => 8.0,
            RiskClass::Write => 16.0,
            RiskClass::Create => 20.0,
            RiskClass::Delete => 30.0,
            RiskClass::Privileged => 50.0,
        };
        let share = Aggregate::share(&peers.ops, k, peers.members);
        let rarity = match share {
            s if s >= 0.5 => 0.25,
            s if s >= 0.2 => 0.5,
            s if s >= 0.05 => 0.85,
            _ => 1.2,
        };
        // New principals use new operations all the time; their peers
        // say whether it is unusual.
        let score = base * rarity * (0.4 + 0.6 * m);
        let used = match peers.ops.get(&k).copied().unwrap_or(0) {
            0 => format!("none of {} {who} has used it", peers.members),
            n => format!("{n} of {} {who} have used it", peers.members),
        };
        let reason = Reason::new(
            "new_operation",
            score,
            format!("first {} by this principal; {used}", op.azure_op),
        );
        if best.as_ref().is_none_or(|b| reason.score > b.score) {
            best = Some(reason);
        }
    }
    best
}

/// First call in a resource group or subscription.
pub fn new_scope(cx: &Context<'_>) -> Option<Reason> {
    let (peers, _) = cx.peers();
    let m = cx.maturity();
    let mut best: Option<Reason> = None;
    for op in &cx.obs.operations {
        let candidate = if let Some(sub) = op.subscription.as_deref()
            && !(cx.known && cx.baseline.subscriptions.contains(key_hash(sub)))
        {
            let known_to_tenant = cx.tenant.groups.keys().next().is_some()
                && op
                    .resource_group
                    .as_deref()
                    .is_some_and(|g| cx.tenant.groups.contains_key(&group_key(sub, g)));
            let score = if known_to_tenant { 10.0 } else { 22.0 } * (0.3 + 0.7 * m);
            Some(Reason::new(
                "new_subscription",
                score,
                format!("first call by this principal in subscription {sub}"),
            ))
        } else if let (Some(sub), Some(group)) =
            (op.subscription.as_deref(), op.resource_group.as_deref())
            && !(cx.known && cx.baseline.groups.contains(group_key(sub, group)))
        {
            let share = Aggregate::share(&peers.groups, group_key(sub, group), peers.members);
            let score = if share > 0.0 { 5.0 } else { 10.0 } * (0.3 + 0.7 * m);
            Some(Reason::new(
                "new_resource_group",
                score,
                format!("first call by this principal in resource group {group}"),
            ))
        } else {
            None
        };
        if let Some(reason) = candidate
            && best.as_ref().is_none_or(|b| reason.score > b.score)
        {
            best = Some(reason);
        }
    }
    best
}

/// The key of a resource group in a baseline.
pub fn group_key(subscription: &str, group: &str) -> u64 {
    key_hash(&format!("{subscription}/{group}"))
}

/// A country (or, less so, a network) the principal has not called from,
/// weighed up for deletes and privileged calls. A country stays "new" for
/// a day after its first call: an intruder's first calls teach Warden
/// nothing that excuses the next ones.
pub fn new_network(cx: &Context<'_>) -> Option<Reason> {
    let ip = cx.obs.source_ip?;
    const FRESH: i64 = 24 * 3600;
    let b = cx.baseline;
    let settled = cx.known && b.days >= 2 && b.calls >= 10;
    if let Some(country) = cx.country {
        let k = key_hash(country);
        // Granting access (or weakening defences) from a country just seen
        // is the takeover signature (the anomaly rules: administrator access
        // from abroad); other privileged calls and deletes weigh more than reads.
        let grants = cx
            .obs
            .operations
            .iter()
            .any(|op| is_privilege_grant(&op.azure_op) || is_defence_change(&op.azure_op));
        let sensitive = cx.has(RiskClass::Privileged) || cx.has(RiskClass::Delete);
        let escalate = |score: f32| {
            if grants {
                score.max(75.0)
            } else if sensitive {
                score.max(50.0)
            } else {
                score
            }
        };
        let what = if grants {
            " (granting access or weakening defences)"
        } else if cx.has(RiskClass::Privileged) {
            " (a privileged call)"
        } else if cx.has(RiskClass::Delete) {
            " (a delete)"
        } else {
            ""
        };
        if settled {
            match b.countries.get(k) {
                None => {
                    return Some(Reason::new(
                        "new_country",
                        escalate(40.0),
                        format!(
                            "first call from {country} ({ip}){what}; this principal has called only from {}",
                            countries(b)
                        ),
                    ));
                }
                Some(e) if e.first > cx.at - FRESH && e.first > b.first_seen + FRESH => {
                    let hours = (cx.at - e.first) / 3600;
                    return Some(Reason::new(
                        "new_country",
                        escalate(25.0),
                        format!(
                            "call from {country} ({ip}){what}, first seen for this principal {hours} h ago"
                        ),
                    ));
                }
                Some(_) => {}
            }
        } else if !cx.tenant.countries.is_empty() && !cx.tenant.countries.contains_key(&k) {
            return Some(Reason::new(
                "new_country",
                escalate(35.0),
                format!(
                    "call from {country} ({ip}){what}; no principal in the tenant has called from it"
                ),
            ));
        }
    }
    if !settled {
        return None;
    }
    if let Some(asn) = cx.asn
        && !b.asns.contains(u64::from(asn))
    {
        return Some(Reason::new(
            "new_network",
            12.0,
            format!("first call from network AS{asn} ({ip})"),
        ));
    }
    if !b.ips.contains(ip_key(ip)) && b.calls >= 30 {
        return Some(Reason::new("new_ip", 5.0, format!("first call from {ip}")));
    }
    None
}

fn countries(b: &Baseline) -> String {
    format!(
        "{} known countr{}",
        b.countries.len(),
        if b.countries.len() == 1 { "y" } else { "ies" }
    )
}

/// The key of an address in a baseline: IPv4 addresses whole, IPv6 by /64.
pub fn ip_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => (u128::from(v6) >> 64) as u64 ^ 0x6000_0000_0000_0000,
    }
}

/// A call in an hour of the week the principal (or, when new, its peers)
/// is rarely active in.
pub fn unusual_hour(cx: &Context<'_>) -> Option<Reason> {
    let how = hour_of_week(cx.at);
    let own = cx.hour_maturity();
    let (peers, _) = cx.peers();
    let rel_own = relative_activity(&cx.baseline.hours, how);
    let rel_peers = relative_activity(&peers.hours, how);
    let rel = match (rel_own, rel_peers) {
        (Some(o), Some(p)) => own * o + (1.0 - own) * p,
        (Some(o), None) => o,
        (None, Some(p)) => p,
        (None, None) => return None,
    };
    // Relative to an even spread over the week: 1.0 is average, so a
    // 40-hour week is ~4 in working hours and ~0 at night.
    if rel >= 0.25 {
        return None;
    }
    let weight = own + (1.0 - own) * 0.6;
    let score = 35.0 * (1.0 - rel / 0.25) * weight;
    let day = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ][how / 24];
    let whose = if own >= 0.5 {
        "this principal"
    } else {
        "its peers"
    };
    Some(Reason::new(
        "unusual_hour",
        score,
        format!(
            "at {:02}:00 UTC on a {day}, when {whose} {} active",
            how % 24,
            if rel < 0.02 {
                "are almost never"
            } else {
                "are rarely"
            }
        )
        .replace("this principal are", "this principal is"),
    ))
}

/// Activity in hour-of-week `how` relative to an even spread: the hour
/// itself and, with less weight, its neighbours and the same hour on other
/// days. `None` without history.
fn relative_activity(hours: &[f32], how: usize) -> Option<f32> {
    let total: f32 = hours.iter().sum();
    if total < 5.0 {
        return None;
    }
    let at = |h: usize| hours[h % 168];
    let week = (at(how) + 0.5 * (at(how + 167) + at(how + 1))) / 2.0;
    let day: f32 = (0..7).map(|d| at(how % 24 + d * 24)).sum::<f32>() / 7.0;
    Some((week.max(0.5 * day)) * 168.0 / total)
}

/// More calls of a class in the last hour than the principal (or its peers)
/// makes in an hour with such calls. Returns the reason and, for deletes
/// above five times normal, that the floor applies.
pub fn rate_spike(cx: &Context<'_>) -> (Option<Reason>, bool) {
    let mut best: Option<Reason> = None;
    let mut floor = false;
    for class in cx.classes() {
        if class == RiskClass::Read {
            continue;
        }
        // This call and the attempts of the last hour.
        let n = cx.baseline.recent_count(class, cx.at - 3600) as f32 + 1.0;
        if n < 3.0 {
            continue;
        }
        let (peers, _) = cx.peers();
        let own = cx.known.then(|| &cx.baseline.rates[class.index()]);
        let peak = own.map_or(0.0, |r| r.peak);
        let usual = match (
            own.and_then(|r| r.usual().map(|u| (u, r.hours))),
            peers.usual(class),
        ) {
            (Some((u, h)), Some(p)) if h < 5.0 => (u * h + p * (5.0 - h)) / 5.0,
            (Some((u, _)), _) => u,
            (None, Some(p)) => p,
            // Nobody in the tenant has a history yet: generous defaults,
            // so a new deployment does not flag its first busy hour.
            (None, None) => default_usual(class),
        }
        .max(1.0);
        // Normal includes the principal's recurring busy hours: a third of
        // its busiest recent hour.
        let normal = usual.max(peak / 3.0);
        let ratio = n / normal;
        if class == RiskClass::Delete && ratio > 5.0 {
            floor = true;
        }
        if ratio <= 2.0 {
            continue;
        }
        // Plain writes are the least dangerous class: their spikes alone
        // stay medium.
        let cap = if class == RiskClass::Write {
            45.0
        } else {
            85.0
        };
        let score = (20.0 + 28.0 * (ratio / 2.0).log2()).min(cap);
        let busiest = if peak / 3.0 > usual {
            format!(" (busiest recent hour {peak:.0})")
        } else {
            String::new()
        };
        let reason = Reason::new(
            &format!("{}_spike", class.as_str()),
            score,
            format!(
                "{n:.0} {} in the last hour; usually {usual:.1} in an hour with any{busiest}",
                class.plural()
            ),
        );
        if best.as_ref().is_none_or(|b| reason.score > b.score) {
            best = Some(reason);
        }
    }
    (best, floor)
}

/// The usual count per hour of a class when neither the principal nor
/// its peers have any history.
fn default_usual(class: RiskClass) -> f32 {
    match class {
        RiskClass::Read => 100.0,
        RiskClass::Write => 10.0,
        RiskClass::Create => 5.0,
        RiskClass::Delete | RiskClass::Privileged => 2.0,
    }
}

/// Denied privileged calls in the last week: someone trying doors.
pub fn repeated_denials(cx: &Context<'_>) -> Option<Reason> {
    if !cx.known {
        return None;
    }
    let since = cx.at - super::baseline::DENIAL_MEMORY_SECS;
    let denials: Vec<_> = cx
        .baseline
        .denials
        .iter()
        .filter(|d| d.at >= since)
        .collect();
    let privileged = denials
        .iter()
        .filter(|d| d.class == RiskClass::Privileged)
        .count();
    let score = if cx.has(RiskClass::Privileged) {
        match privileged {
            0 => return None,
            1 => 30.0,
            2 => 55.0,
            _ => 80.0,
        }
    } else if privileged >= 3 {
        30.0
    } else if denials.iter().filter(|d| d.at >= cx.at - 86_400).count() >= 5 {
        20.0
    } else {
        return None;
    };
    let latest = denials.iter().map(|d| d.at).max().unwrap_or(cx.at);
    Some(Reason::new(
        "repeated_denials",
        score,
        format!(
            "{privileged} privileged call(s) and {} call(s) in all denied in the last 7 days, the latest {} ago",
            denials.len(),
            ago(cx.at - latest)
        ),
    ))
}

/// Tokens refused from the address this call comes from, in the last 15
/// minutes: someone trying tokens, then getting one through. Three are a
/// finding (30), each more adds 5, up to 70.
pub fn refused_tokens(cx: &Context<'_>) -> Option<Reason> {
    if cx.refused < 3 {
        return None;
    }
    let score = (30.0 + 5.0 * (cx.refused - 3) as f32).min(70.0);
    let from = cx
        .obs
        .source_ip
        .map_or_else(|| "this address".to_owned(), |ip| ip.to_string());
    Some(Reason::new(
        "refused_tokens",
        score,
        format!(
            "{} refused token(s) from {from} in the last 15 minutes",
            cx.refused
        ),
    ))
}

/// A created resource far costlier than what the principal (or its peers)
/// usually creates.
pub fn cost_outlier(cx: &Context<'_>) -> Option<Reason> {
    let cost = cx.obs.cost?;
    let (peers, _) = cx.peers();
    let (typical, whose) = match (cx.baseline.cost.typical(3.0), peers.cost.typical(3.0)) {
        (Some(t), _) if cx.known => (t, "this principal's"),
        (_, Some(t)) => (t, "its peers'"),
        _ => (150.0, "a default"),
    };
    let ratio = cost / typical.max(10.0);
    let score = match ratio {
        r if r >= 50.0 && cost >= 2000.0 => 85.0,
        r if r >= 20.0 && cost >= 1000.0 => 65.0,
        r if r >= 8.0 && cost >= 500.0 => 40.0,
        _ => return None,
    };
    Some(Reason::new(
        "cost_outlier",
        score,
        format!(
            "creates resources estimated at ${cost:.0}/month, {ratio:.0}x {whose} typical ${typical:.0}"
        ),
    ))
}

/// Activity after a long silence (the former employee's account).
pub fn dormant(cx: &Context<'_>) -> Option<Reason> {
    if !cx.known {
        return None;
    }
    let b = cx.baseline;
    // The gap: to this call if it ends one, or the one that ended in the last day.
    let (resumed, gap) = if b.last_seen > 0 && cx.at - b.last_seen >= cx.dormant_after {
        (cx.at, cx.at - b.last_seen)
    } else {
        match b.resumed {
            Some((at, gap)) if cx.at - at < 86_400 => (at, gap),
            _ => return None,
        }
    };
    let score = if cx.has(RiskClass::Delete) || cx.has(RiskClass::Privileged) {
        60.0
    } else {
        35.0
    };
    let since = if resumed == cx.at {
        "this is its first call".to_owned()
    } else {
        format!("it resumed {} ago", ago(cx.at - resumed))
    };
    Some(Reason::new(
        "dormant_account",
        score,
        format!("account inactive for {} days before; {since}", gap / 86_400),
    ))
}

/// Operations that switch off what would see an attack: diagnostic
/// settings, policy assignments and exemptions, locks, alert rules,
/// Defender settings.
pub fn weakens_defences(cx: &Context<'_>) -> Option<Reason> {
    let op = cx
        .obs
        .operations
        .iter()
        .find(|op| is_defence_change(&op.azure_op))?;
    let known = cx.known && cx.baseline.ops.contains(key_hash(&op.azure_op));
    Some(Reason::new(
        "weakens_defences",
        if known { 35.0 } else { 60.0 },
        format!(
            "{} weakens monitoring or guardrails{}",
            op.azure_op,
            if known {
                " (this principal has done it before)"
            } else {
                ""
            }
        ),
    ))
}

/// Whether `azure_op` removes or exempts a defence (see [`weakens_defences`]).
pub fn is_defence_change(azure_op: &str) -> bool {
    let op = azure_op.to_ascii_lowercase();
    const DELETES: [&str; 7] = [
        "microsoft.insights/diagnosticsettings/",
        "microsoft.authorization/policyassignments/",
        "microsoft.authorization/locks/",
        "microsoft.insights/activitylogalerts/",
        "microsoft.insights/metricalerts/",
        "microsoft.security/",
        "microsoft.operationalinsights/workspaces/",
    ];
    (op.ends_with("/delete") && DELETES.iter().any(|p| op.starts_with(p)))
        || op.starts_with("microsoft.authorization/policyexemptions/") && op.ends_with("/write")
}

/// Whether `azure_op` grants privileges (role assignments and definitions,
/// elevated access): the anomaly rules' "administrator permission granted".
pub fn is_privilege_grant(azure_op: &str) -> bool {
    let op = azure_op.to_ascii_lowercase();
    matches!(
        op.as_str(),
        "microsoft.authorization/roleassignments/write"
            | "microsoft.authorization/roledefinitions/write"
            | "microsoft.authorization/elevateaccess/action"
            | "microsoft.authorization/roleassignmentschedulerequests/write"
            | "microsoft.authorization/roleeligibilityschedulerequests/write"
    )
}

fn ago(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
