//! What a replay found: per principal and per hour, the alerts and the
//! responses that would have fired; per network, the blocks; and the
//! totals. `--json` prints [`Report`] as is: its structure is documented
//! in docs/REPLAY.md and versioned by [`Report::version`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::{Event, Fired, Options, Place, Step, Stop, What};
use crate::response::config::{Action, Mode, Rule};
use crate::risk::{Assessment, Reason};

/// The version of the JSON structure (bumped when a field changes
/// meaning or goes away).
pub const VERSION: u32 = 1;

/// One input, as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSummary {
    pub file: String,
    pub format: String,
    pub records: u64,
    pub events: u64,
    pub skipped: u64,
}

/// A replay's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub version: u32,
    pub sources: Vec<SourceSummary>,
    /// Time of the first and last event replayed (RFC 3339).
    pub first: Option<String>,
    pub last: Option<String>,
    /// Whether responses were simulated (`[response] enabled`).
    pub responses_enabled: bool,
    /// The rules in force (empty when responses are off).
    pub rules: Vec<Rule>,
    pub summary: Summary,
    /// Principals with an alert, a response or a stopped call, in the
    /// order their first one happened.
    pub principals: Vec<PrincipalReport>,
    /// Networks a response (block, incident) answered.
    pub networks: Vec<NetworkReport>,
}

/// Totals over the whole replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Events replayed: calls and authentication records.
    pub events: u64,
    pub calls: u64,
    /// Authentication attempts (an aggregated refusal counts its count).
    pub auth_attempts: u64,
    /// Calls scored (calls not stopped).
    pub scored: u64,
    pub alerts: u64,
    pub alerts_by_level: BTreeMap<String, u64>,
    pub responses: u64,
    /// Action → how many fired in each mode.
    pub responses_by_action: BTreeMap<String, ByMode>,
    /// Calls not made because their principal was suspended (enforce).
    pub calls_stopped_by_suspension: u64,
    /// Events (calls and attempts) refused because their network was
    /// blocked (enforce), within the cool-down.
    pub events_stopped_by_blocks: u64,
    /// Calls a notify-mode suspension would have stopped.
    pub calls_after_notify_suspension: u64,
    /// Events a notify-mode block would have stopped.
    pub events_after_notify_block: u64,
    pub principals_suspended: u64,
    pub networks_blocked: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByMode {
    pub enforce: u64,
    pub notify: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrincipalReport {
    pub tenant: String,
    pub oid: String,
    pub name: String,
    /// Calls in the stream (scored or stopped).
    pub calls: u64,
    pub stopped_by_suspension: u64,
    pub after_notify_suspension: u64,
    pub hours: Vec<Hour>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkReport {
    /// e.g. `203.0.113.9/32`.
    pub network: String,
    pub stopped_by_block: u64,
    pub after_notify_block: u64,
    pub hours: Vec<Hour>,
}

/// One hour (UTC) of a principal or network.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hour {
    /// Its start, RFC 3339 (`2026-11-02T03:00:00Z`).
    pub hour: String,
    pub alerts: Vec<AlertEntry>,
    pub responses: Vec<ResponseEntry>,
}

/// An alert: the call that raised it and its assessment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEntry {
    pub time: String,
    pub score: u8,
    pub level: String,
    pub floor: Option<String>,
    pub reasons: Vec<Reason>,
    pub operation: Option<String>,
    pub resource: Option<String>,
    /// Where the call is in the input: `file:line` or `file[index]`.
    pub source: String,
}

/// A response that fired (mode `enforce`) or would have (mode `notify`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseEntry {
    pub time: String,
    /// `suspend`, `revoke`, `block`, `incident`.
    pub action: String,
    pub rule: String,
    pub trigger: String,
    /// `enforce` or `notify`.
    pub mode: String,
    /// The triggering call's first operation and resource.
    pub operation: Option<String>,
    pub resource: Option<String>,
    /// For a block (or an incident about a network): the network and the
    /// attempts that tipped it.
    pub network: Option<String>,
    pub attempts: Option<u32>,
    pub failures: Option<u32>,
    pub source: String,
}

#[derive(Default)]
struct Subject {
    /// Tenant, oid, name (principals).
    who: Option<(String, String, String)>,
    calls: u64,
    stopped: u64,
    after_notify: u64,
    hours: BTreeMap<i64, (Vec<AlertEntry>, Vec<ResponseEntry>)>,
}

impl Subject {
    fn hour(&mut self, at: i64) -> &mut (Vec<AlertEntry>, Vec<ResponseEntry>) {
        self.hours.entry(at.div_euclid(3600)).or_default()
    }

    fn listed(&self) -> bool {
        !self.hours.is_empty() || self.stopped > 0 || self.after_notify > 0
    }

    fn first_hour(&self) -> i64 {
        self.hours.keys().next().copied().unwrap_or(i64::MAX)
    }

    fn hours(self) -> Vec<Hour> {
        self.hours
            .into_iter()
            .map(|(hour, (alerts, responses))| Hour {
                hour: rfc3339(hour * 1000 * 3600),
                alerts,
                responses,
            })
            .collect()
    }
}

/// Gathers the steps of a replay.
pub struct Builder {
    sources: Vec<SourceSummary>,
    rules: Vec<Rule>,
    enabled: bool,
    summary: Summary,
    first: Option<i64>,
    last: Option<i64>,
    principals: HashMap<String, Subject>,
    networks: HashMap<String, Subject>,
}

/// RFC 3339 (UTC, seconds) of Unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

impl Builder {
    pub fn new(sources: Vec<SourceSummary>, rules: Vec<Rule>, options: &Options) -> Builder {
        Builder {
            sources,
            rules,
            enabled: options.response.enabled,
            summary: Summary::default(),
            first: None,
            last: None,
            principals: HashMap::new(),
            networks: HashMap::new(),
        }
    }

    fn source(&self, event: &Event) -> String {
        let file = self
            .sources
            .get(event.origin.input)
            .map_or("?", |s| s.file.as_str());
        match event.origin.place {
            Place::Line(n) => format!("{file}:{n}"),
            Place::Index(i) => format!("{file}[{i}]"),
        }
    }

    fn response(&mut self, event: &Event, fired: &Fired) {
        let planned = &fired.planned;
        let (operation, resource) = match &event.what {
            What::Call(call) => call.operations.first().map_or((None, None), |op| {
                (Some(op.azure_op.clone()), op.resource.clone())
            }),
            What::Auth(_) => (None, None),
        };
        let entry = ResponseEntry {
            time: rfc3339(event.at_ms),
            action: planned.action.as_str().to_owned(),
            rule: planned.rule.clone(),
            trigger: planned.trigger.clone(),
            mode: planned.mode.as_str().to_owned(),
            operation,
            resource,
            network: fired.network.as_ref().map(|n| n.network.to_string()),
            attempts: fired.network.as_ref().map(|n| n.attempts),
            failures: fired.network.as_ref().map(|n| n.failures),
            source: self.source(event),
        };
        self.summary.responses += 1;
        let by = self
            .summary
            .responses_by_action
            .entry(entry.action.clone())
            .or_default();
        match planned.mode {
            Mode::Enforce => by.enforce += 1,
            Mode::Notify => by.notify += 1,
        }
        if planned.mode == Mode::Enforce {
            match planned.action {
                Action::Suspend => self.summary.principals_suspended += 1,
                Action::Block => self.summary.networks_blocked += 1,
                _ => {}
            }
        }
        let subject = match (&event.what, &fired.network) {
            (_, Some(network)) => self
                .networks
                .entry(network.network.to_string())
                .or_default(),
            (What::Call(call), None) => self.principals.entry(call.key()).or_default(),
            (What::Auth(_), None) => return,
        };
        subject.hour(event.at()).1.push(entry);
    }

    /// Adds one event and what became of it.
    pub fn add(&mut self, event: &Event, step: &Step) {
        self.summary.events += 1;
        self.first.get_or_insert(event.at_ms);
        self.last = Some(event.at_ms);
        if let What::Call(call) = &event.what {
            self.summary.calls += 1;
            let subject = self.principals.entry(call.key()).or_default();
            subject.calls += 1;
            // The latest name it went by (an object id says nothing new).
            if subject.who.is_none() || call.name != call.principal {
                subject.who = Some((
                    call.tenant.clone(),
                    call.principal.clone(),
                    call.name.clone(),
                ));
            }
        }
        if let What::Auth(auth) = &event.what {
            self.summary.auth_attempts += u64::from(auth.count);
        }
        let would_stop = match step {
            Step::Stopped(Stop::Suspended) => {
                self.summary.calls_stopped_by_suspension += 1;
                if let What::Call(call) = &event.what {
                    self.principals.entry(call.key()).or_default().stopped += 1;
                }
                return;
            }
            Step::Stopped(Stop::Blocked(network)) => {
                self.summary.events_stopped_by_blocks += 1;
                self.networks
                    .entry(network.to_string())
                    .or_default()
                    .stopped += 1;
                return;
            }
            Step::Call {
                assessment,
                alert,
                fired,
                would_stop,
            } => {
                self.summary.scored += 1;
                if *alert && let What::Call(call) = &event.what {
                    self.alert(event, call.key(), assessment);
                }
                for f in fired {
                    self.response(event, f);
                }
                would_stop
            }
            Step::Auth { fired, would_stop } => {
                for f in fired {
                    self.response(event, f);
                }
                would_stop
            }
        };
        match would_stop {
            Some(Stop::Suspended) => {
                self.summary.calls_after_notify_suspension += 1;
                if let What::Call(call) = &event.what {
                    self.principals.entry(call.key()).or_default().after_notify += 1;
                }
            }
            Some(Stop::Blocked(network)) => {
                self.summary.events_after_notify_block += 1;
                self.networks
                    .entry(network.to_string())
                    .or_default()
                    .after_notify += 1;
            }
            None => {}
        }
    }

    fn alert(&mut self, event: &Event, key: String, assessment: &Assessment) {
        self.summary.alerts += 1;
        *self
            .summary
            .alerts_by_level
            .entry(assessment.level.as_str().to_owned())
            .or_default() += 1;
        let (operation, resource) = match &event.what {
            What::Call(call) => call.operations.first().map_or((None, None), |op| {
                (Some(op.azure_op.clone()), op.resource.clone())
            }),
            What::Auth(_) => (None, None),
        };
        let entry = AlertEntry {
            time: rfc3339(event.at_ms),
            score: assessment.score,
            level: assessment.level.as_str().to_owned(),
            floor: assessment.floor.clone(),
            reasons: assessment.reasons.clone(),
            operation,
            resource,
            source: self.source(event),
        };
        self.principals
            .entry(key)
            .or_default()
            .hour(event.at())
            .0
            .push(entry);
    }

    pub fn finish(self) -> Report {
        let mut principals: Vec<(i64, String, Subject)> = self
            .principals
            .into_iter()
            .filter(|(_, s)| s.listed())
            .map(|(k, s)| (s.first_hour(), k, s))
            .collect();
        principals.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut networks: Vec<(i64, String, Subject)> = self
            .networks
            .into_iter()
            .map(|(k, s)| (s.first_hour(), k, s))
            .collect();
        networks.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Report {
            version: VERSION,
            sources: self.sources,
            first: self.first.map(rfc3339),
            last: self.last.map(rfc3339),
            responses_enabled: self.enabled,
            rules: self.rules,
            summary: self.summary,
            principals: principals
                .into_iter()
                .map(|(_, key, s)| {
                    let (tenant, oid, name) = s.who.clone().unwrap_or_else(|| {
                        let (t, o) = key.split_once('/').unwrap_or(("", &key));
                        (t.to_owned(), o.to_owned(), o.to_owned())
                    });
                    PrincipalReport {
                        tenant,
                        oid,
                        name,
                        calls: s.calls,
                        stopped_by_suspension: s.stopped,
                        after_notify_suspension: s.after_notify,
                        hours: s.hours(),
                    }
                })
                .collect(),
            networks: networks
                .into_iter()
                .map(|(_, network, s)| NetworkReport {
                    network,
                    stopped_by_block: s.stopped,
                    after_notify_block: s.after_notify,
                    hours: s.hours(),
                })
                .collect(),
        }
    }
}

/// "suspend" (enforced) or "would have suspended" (notify).
fn acted(action: &str, mode: &str) -> String {
    if mode == "enforce" {
        return action.to_owned();
    }
    let past = match action {
        "suspend" => "suspended the principal",
        "revoke" => "revoked the grant",
        "block" => "blocked the network",
        "incident" => "opened an incident",
        other => other,
    };
    format!("would have {past}")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2026-11-02T03:00:00Z` → `2026-11-02 03:00 UTC`.
fn hour_text(hour: &str) -> String {
    format!(
        "{} UTC",
        hour.get(..16).unwrap_or(hour).replacen('T', " ", 1)
    )
}

/// `2026-11-02T03:12:44Z` → `03:12:44`.
fn clock(time: &str) -> &str {
    time.get(11..19).unwrap_or(time)
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        for source in &self.sources {
            let _ = writeln!(
                out,
                "input {} ({}): {} records, {} events, {} skipped",
                source.file,
                source.format,
                thousands(source.records),
                thousands(source.events),
                thousands(source.skipped)
            );
        }
        if let (Some(first), Some(last)) = (&self.first, &self.last) {
            let _ = writeln!(out, "from {first} to {last}");
        }
        if !self.responses_enabled {
            let _ = writeln!(out, "responses: off ([response] enabled = false)");
        } else {
            for rule in &self.rules {
                let actions: Vec<&str> = rule.actions.iter().map(|a| a.as_str()).collect();
                let _ = writeln!(
                    out,
                    "rule {}: on {} → {} ({})",
                    rule.name,
                    rule.on.as_string(),
                    actions.join(", "),
                    rule.mode.as_str()
                );
            }
        }
        for p in &self.principals {
            let mut line = format!(
                "\n{} ({}/{}): {} calls",
                p.name,
                p.tenant,
                p.oid,
                thousands(p.calls)
            );
            if p.stopped_by_suspension > 0 {
                let _ = write!(
                    line,
                    ", {} stopped by its suspension",
                    thousands(p.stopped_by_suspension)
                );
            }
            if p.after_notify_suspension > 0 {
                let _ = write!(
                    line,
                    ", {} after a notify-mode suspension",
                    thousands(p.after_notify_suspension)
                );
            }
            out.push_str(&line);
            out.push('\n');
            hours_text(&mut out, &p.hours);
        }
        for n in &self.networks {
            let mut line = format!("\nnetwork {}", n.network);
            if n.stopped_by_block > 0 {
                let _ = write!(
                    line,
                    ": {} events stopped by its block",
                    thousands(n.stopped_by_block)
                );
            }
            if n.after_notify_block > 0 {
                let _ = write!(
                    line,
                    "; {} after a notify-mode block",
                    thousands(n.after_notify_block)
                );
            }
            out.push_str(&line);
            out.push('\n');
            hours_text(&mut out, &n.hours);
        }
        let _ = writeln!(
            out,
            "\nsummary: {} events: {} calls ({} scored), {} authentication attempts",
            thousands(s.events),
            thousands(s.calls),
            thousands(s.scored),
            thousands(s.auth_attempts)
        );
        let levels: Vec<String> = s
            .alerts_by_level
            .iter()
            .map(|(l, n)| format!("{l} {}", thousands(*n)))
            .collect();
        let _ = writeln!(
            out,
            "  alerts: {}{}",
            thousands(s.alerts),
            if levels.is_empty() {
                String::new()
            } else {
                format!(" ({})", levels.join(", "))
            }
        );
        let responses: Vec<String> = s
            .responses_by_action
            .iter()
            .map(|(action, by)| {
                let mut parts = Vec::new();
                if by.enforce > 0 {
                    parts.push(format!("{} enforced", thousands(by.enforce)));
                }
                if by.notify > 0 {
                    parts.push(format!("{} notify only", thousands(by.notify)));
                }
                format!("{action} {}", parts.join(" + "))
            })
            .collect();
        let _ = writeln!(
            out,
            "  responses: {}{}",
            thousands(s.responses),
            if responses.is_empty() {
                String::new()
            } else {
                format!(" ({})", responses.join("; "))
            }
        );
        let _ = writeln!(
            out,
            "  stopped: {} calls by suspensions, {} events by blocks",
            thousands(s.calls_stopped_by_suspension),
            thousands(s.events_stopped_by_blocks)
        );
        if s.calls_after_notify_suspension + s.events_after_notify_block > 0 {
            let _ = writeln!(
                out,
                "  notify mode: enforcing would have stopped {} calls (suspensions) and {} events (blocks)",
                thousands(s.calls_after_notify_suspension),
                thousands(s.events_after_notify_block)
            );
        }
        out
    }
}

fn hours_text(out: &mut String, hours: &[Hour]) {
    for h in hours {
        let _ = writeln!(out, "  {}", hour_text(&h.hour));
        for a in &h.alerts {
            let reasons: Vec<&str> = a.reasons.iter().map(|r| r.text.as_str()).collect();
            let _ = writeln!(
                out,
                "    alert {} ({}) at {}: {}",
                a.score,
                a.level,
                clock(&a.time),
                if reasons.is_empty() {
                    "no reasons".to_owned()
                } else {
                    reasons.join("; ")
                }
            );
            if let Some(op) = &a.operation {
                let _ = writeln!(
                    out,
                    "      {op}{} ({})",
                    a.resource
                        .as_ref()
                        .map(|r| format!(" on {r}"))
                        .unwrap_or_default(),
                    a.source
                );
            }
        }
        for r in &h.responses {
            let what = match (&r.operation, &r.network) {
                (Some(op), _) => format!(
                    " on {op}{}",
                    r.resource
                        .as_ref()
                        .map(|res| format!(" {res}"))
                        .unwrap_or_default()
                ),
                (None, Some(network)) => format!(
                    " {network}: {} attempts, {} failed",
                    r.attempts.unwrap_or(0),
                    r.failures.unwrap_or(0)
                ),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "    {} (rule {}, {}) at {}{what} ({})",
                acted(&r.action, &r.mode),
                r.rule,
                r.mode,
                clock(&r.time),
                r.source
            );
        }
    }
}
