//! `warden risk eval`: how well the risk stage separates attacks from
//! ordinary work, measured on a synthetic month.
//!
//! The generator builds a tenant of `principals` (developers, operators,
//! administrators, auditors, deployment and automation service principals),
//! each with its own working hours and time zone, volume, resource groups,
//! subscription and addresses. Four weeks of the same traffic come first
//! (a deployed Warden has history), then `days` are measured. The measured
//! days carry benign surprises — travel, new projects, release-day deploy
//! bursts, month-end clean-up, joiners, on-call nights, a new home address
//! — and one injection of each incident:
//!
//! - `dormant_mass_delete`: a departed employee's account deletes VMs at night;
//! - `foreign_admin_role_assignment`: an administrator's account is used from
//!   a country the tenant never saw, then assigns a role without an approval;
//! - `expensive_resource`: a VM about 100x the usual cost (an M64s, ~$7,000 a
//!   month, where the principal creates ~$70 ones);
//! - `slow_denied_role_assignments`: role assignments tried every few hours,
//!   each denied;
//! - `sp_mass_create`: a service principal creates dozens of VMs in an hour;
//! - `defence_evasion`: diagnostic settings and a policy assignment deleted.
//!
//! Every call is replayed in time order through [`Risk::assess`] and
//! [`Risk::learn`] (the code the pipeline runs), with a real [`GeoTable`].
//! A call scored high is held and one scored critical denied, as the
//! baseline policies do; otherwise it ends as generated.
//!
//! Then the same stream is replayed once more through the response rules
//! (the baseline rules, or `[response]` of `--config`) with
//! [`super::replay::Engine`], the engine of `warden risk replay`: the
//! rules are in force from the first measured day, and the policies' risk
//! holds are left out, so what each response does is measured alone
//! (calls end as generated unless a suspension stopped them). The report
//! says per incident what the responses did, and which principals with no
//! incident they suspended or whose grants they revoked.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::baseline::RiskClass;
use super::geo::{GeoTable, Place, cidr};
use super::replay::{self, Engine, Step, Stop};
use super::{Level, Observation, ObservedOp, Outcome, Risk, RiskConfig};
use crate::response::config::{Action, Mode, ResponseConfig};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    pub seed: u64,
    /// Measured days (after four weeks of history).
    pub days: u32,
    /// At least [`MIN_PRINCIPALS`].
    pub principals: u32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            seed: 1,
            days: 30,
            principals: 50,
        }
    }
}

/// Fewest principals that hold every role and incident.
pub const MIN_PRINCIPALS: u32 = 14;
/// Fewest measured days that fit every incident and surprise.
pub const MIN_DAYS: u32 = 7;
/// Days of history before the measured days.
const WARM_UP_DAYS: i64 = 28;
/// The first measured day: Monday 2026-11-02 00:00 UTC.
const START: i64 = 1_793_577_600;
const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

/// The targets (issue: anomaly scoring; BENCHMARKS.md).
pub const TARGET_PRECISION: f64 = 0.8;
pub const TARGET_FALSE_PER_DAY: f64 = 0.2;
pub const TARGET_MASS_DELETE_CALLS: usize = 3;
pub const TARGET_P99_MICROS: f64 = 50.0;
pub const TARGET_STATE_BYTES: usize = 16 * 1024;

/// How one injected incident went.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    pub principal: String,
    /// Calls the incident made.
    pub calls: usize,
    /// Reached high or critical.
    pub detected: bool,
    /// Incident calls before the first one scored high or above.
    pub calls_before_high: Option<usize>,
    /// Seconds from the incident's first call to that call.
    pub seconds_to_detect: Option<i64>,
    /// Highest level any of its calls reached.
    pub max_level: Level,
    /// The reasons of the first call at high or above.
    pub reasons: Vec<String>,
}

/// An alert no incident explains (for tuning and for the reader).
#[derive(Debug, Clone, Serialize)]
pub struct FalseAlert {
    pub principal: String,
    pub role: String,
    pub at: String,
    pub level: Level,
    pub summary: String,
}

/// What the response rules did about one incident.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResponse {
    pub name: String,
    pub principal: String,
    /// Calls the incident made.
    pub calls: usize,
    /// Of them, calls a response stopped (the rest ran).
    pub stopped: usize,
    /// The responses its calls triggered: `suspend (enforce)`, ...
    pub actions: Vec<String>,
    /// In words: "stopped after 3 calls, principal suspended".
    pub summary: String,
}

/// A suspension or revocation of ordinary work.
#[derive(Debug, Clone, Serialize)]
pub struct FalseResponse {
    pub principal: String,
    pub role: String,
    pub at: String,
    pub action: String,
    pub rule: String,
    pub mode: String,
    pub operation: String,
    /// The principal's calls stopped afterwards (an enforced suspension).
    pub calls_stopped: usize,
}

/// The response rules over the month.
#[derive(Debug, Clone, Serialize)]
pub struct Responses {
    /// The rules run: `name: trigger → actions (mode)`.
    pub rules: Vec<String>,
    pub scenarios: Vec<ScenarioResponse>,
    /// Suspensions and revocations triggered by calls of no incident.
    pub false_responses: usize,
    pub false_list: Vec<FalseResponse>,
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub days: u32,
    pub principals: u32,
    /// Calls replayed in the measured days (history not counted).
    pub calls: usize,
    pub scenarios: Vec<Scenario>,
    /// Alerts, de-duplicated per principal-hour, in the measured days.
    pub alerts: usize,
    pub true_alerts: usize,
    pub precision: f64,
    /// False alerts per day, by the highest level in the principal-hour.
    pub false_high_per_day: f64,
    pub false_critical_per_day: f64,
    /// Benign calls per level (how often ordinary work is medium, say).
    pub benign_levels: BTreeMap<String, usize>,
    pub score_p50_micros: f64,
    pub score_p99_micros: f64,
    pub state_bytes_mean: usize,
    pub state_bytes_max: usize,
    pub false_alerts: Vec<FalseAlert>,
    /// What the response rules would have done.
    pub responses: Responses,
    /// Targets missed (empty: every target met).
    pub missed: Vec<String>,
    pub targets_met: bool,
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = format!(
            "seed {}: {} days after 4 weeks of history, {} principals, {} calls\n",
            self.seed, self.days, self.principals, self.calls
        );
        out.push_str(
            "scenario                          detected  calls  before-high  time-to-detect  max\n",
        );
        for s in &self.scenarios {
            out.push_str(&format!(
                "{:<33} {:<9} {:>5}  {:>11}  {:>14}  {}\n",
                s.name,
                if s.detected { "yes" } else { "NO" },
                s.calls,
                s.calls_before_high.map_or("-".into(), |n| n.to_string()),
                s.seconds_to_detect
                    .map_or("-".into(), |t| format!("{}m{:02}s", t / 60, t % 60)),
                s.max_level.as_str(),
            ));
        }
        out.push_str(&format!(
            "alerts (per principal-hour): {} of which {} true; precision {:.0}%\n",
            self.alerts,
            self.true_alerts,
            self.precision * 100.0
        ));
        out.push_str(&format!(
            "false alerts per day: high {:.2}, critical {:.2}\n",
            self.false_high_per_day, self.false_critical_per_day
        ));
        out.push_str(&format!(
            "benign calls by level: {}\n",
            self.benign_levels
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str(&format!(
            "score latency p50 {:.1} µs, p99 {:.1} µs; state per principal mean {} B, max {} B\n",
            self.score_p50_micros,
            self.score_p99_micros,
            self.state_bytes_mean,
            self.state_bytes_max
        ));
        for f in &self.false_alerts {
            out.push_str(&format!(
                "false alert: {} ({}) at {} {}: {}\n",
                f.principal,
                f.role,
                f.at,
                f.level.as_str(),
                f.summary
            ));
        }
        let r = &self.responses;
        out.push_str(&format!(
            "responses (from the first measured day, alone: the policies' risk holds left out): {}\n",
            if r.rules.is_empty() {
                "none (responses off)".to_owned()
            } else {
                r.rules.join("; ")
            }
        ));
        for s in &r.scenarios {
            out.push_str(&format!("  {}: {}\n", s.name.replace('_', " "), s.summary));
        }
        out.push_str(&format!(
            "false responses on normal traffic (suspensions, revocations): {}\n",
            r.false_responses
        ));
        for f in &r.false_list {
            out.push_str(&format!(
                "false response: {} ({}) at {} {} (rule {}, {}) on {}{}\n",
                f.principal,
                f.role,
                f.at,
                f.action,
                f.rule,
                f.mode,
                f.operation,
                if f.calls_stopped > 0 {
                    format!("; {} later calls stopped", f.calls_stopped)
                } else {
                    String::new()
                }
            ));
        }
        if self.missed.is_empty() {
            out.push_str("targets: all met\n");
        } else {
            out.push_str(&format!("targets missed: {}\n", self.missed.join("; ")));
        }
        out
    }
}

/// Generates the traffic and replays it, with the baseline response rules.
pub fn run(options: &EvalOptions) -> Result<Report, String> {
    run_with(options, &ResponseConfig::default())
}

/// [`run`], with the response rules (and block settings) of `response`.
pub fn run_with(options: &EvalOptions, response: &ResponseConfig) -> Result<Report, String> {
    if options.principals < MIN_PRINCIPALS {
        return Err(format!(
            "--principals: at least {MIN_PRINCIPALS} (one of each role and incident)"
        ));
    }
    if options.days < MIN_DAYS {
        return Err(format!("--days: at least {MIN_DAYS}"));
    }
    let mut world = World::new(options);
    world.generate();
    let responses = world.responses(response);
    let mut report = world.replay();
    report.responses = responses;
    Ok(report)
}

// ------------------------------------------------------------------ the tenant

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Developer,
    Operator,
    Admin,
    Auditor,
    Deployer,
    Automation,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Developer => "Developer",
            Role::Operator => "Operator",
            Role::Admin => "Admin",
            Role::Auditor => "Auditor",
            Role::Deployer => "Deployer",
            Role::Automation => "Automation",
        }
    }

    fn peer(self) -> String {
        match self {
            Role::Deployer | Role::Automation => super::peer_group("application", [self.name()]),
            _ => super::peer_group("user", [self.name()]),
        }
    }
}

/// A network of the synthetic geo table.
#[derive(Debug, Clone, Copy)]
struct Net {
    country: &'static str,
    asn: u32,
    /// Second octet of 10.x.0.0/16.
    octet: u8,
}

const OFFICE: Net = Net {
    country: "NL",
    asn: 1136,
    octet: 0,
};
const HOMES: [Net; 5] = [
    Net {
        country: "NL",
        asn: 33915,
        octet: 1,
    },
    Net {
        country: "DE",
        asn: 3320,
        octet: 2,
    },
    Net {
        country: "FR",
        asn: 3215,
        octet: 3,
    },
    Net {
        country: "US",
        asn: 7922,
        octet: 4,
    },
    Net {
        country: "JP",
        asn: 2516,
        octet: 5,
    },
];
const CLOUD: Net = Net {
    country: "NL",
    asn: 8075,
    octet: 6,
};
const TRAVEL: [Net; 3] = [
    Net {
        country: "ES",
        asn: 3352,
        octet: 7,
    },
    Net {
        country: "GB",
        asn: 2856,
        octet: 8,
    },
    Net {
        country: "SG",
        asn: 9506,
        octet: 9,
    },
];
const HOSTILE: Net = Net {
    country: "BR",
    asn: 28573,
    octet: 10,
};
/// Time zones (hours east of UTC) of the home networks.
const HOME_TZ: [i64; 5] = [1, 1, 1, -5, 9];

fn ip(net: Net, host: u16) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, net.octet, (host >> 8) as u8, host as u8))
}

fn geo_table() -> GeoTable {
    let mut table = GeoTable::default();
    let all = [OFFICE, CLOUD, HOSTILE]
        .into_iter()
        .chain(HOMES)
        .chain(TRAVEL);
    for net in all {
        let (start, end) = cidr(&format!("10.{}.0.0/16", net.octet)).unwrap_or((0, 0));
        table.insert(
            start,
            end,
            Place {
                country: net.country.to_owned(),
                asn: Some(net.asn),
            },
        );
    }
    table.finish();
    table
}

#[derive(Debug, Clone)]
struct Persona {
    id: String,
    role: Role,
    /// Hours east of UTC.
    tz: i64,
    home: Net,
    /// Host part of the home address (changes once for some).
    home_host: u16,
    subscription: String,
    groups: Vec<String>,
    /// Working hours, local.
    hours: (i64, i64),
    /// Calls on a working day (mean).
    volume: f64,
    /// First and last day with activity (relative to START, in days).
    joins: i64,
    leaves: i64,
}

/// Operations by class, for the generator.
const READS: [&str; 8] = [
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.Web/sites/read",
    "Microsoft.Sql/servers/databases/read",
    "Microsoft.Insights/metrics/read",
    "Microsoft.KeyVault/vaults/read",
];
const WRITES: [&str; 5] = [
    "Microsoft.Web/sites/write",
    "Microsoft.Storage/storageAccounts/write",
    "Microsoft.Resources/tags/write",
    "Microsoft.Sql/servers/databases/write",
    "Microsoft.Web/sites/config/write",
];
const ACTIONS: [&str; 3] = [
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Compute/virtualMachines/restart/action",
    "Microsoft.Compute/virtualMachines/deallocate/action",
];
const DELETES: [&str; 3] = [
    "Microsoft.Compute/virtualMachines/delete",
    "Microsoft.Compute/disks/delete",
    "Microsoft.Web/sites/delete",
];
const VM_WRITE: &str = "Microsoft.Compute/virtualMachines/write";
const ROLE_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const POLICY_WRITE: &str = "Microsoft.Authorization/policyAssignments/write";
const SECRET_READ: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
const AUDIT_READS: [&str; 3] = [
    "Microsoft.Insights/eventtypes/values/read",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/policyAssignments/read",
];

/// One generated call.
#[derive(Debug, Clone)]
struct Event {
    at: i64,
    who: usize,
    ip: IpAddr,
    ops: Vec<(&'static str, RiskClass, String)>,
    cost: Option<f64>,
    /// How it ends if the risk stage lets it through.
    outcome: Outcome,
    /// It runs under an approved JIT grant (a held call's retry).
    approved: bool,
    /// Index of the incident it belongs to.
    incident: Option<usize>,
}

struct World {
    options: EvalOptions,
    rng: StdRng,
    people: Vec<Persona>,
    events: Vec<Event>,
    incidents: Vec<(String, usize)>,
}

/// The measured window: days `0..days`.
impl World {
    fn new(options: &EvalOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let n = options.principals as usize;
        // Fixed shares, so every role exists at any size.
        let roles: Vec<Role> = (0..n)
            .map(|i| match i % 10 {
                0..=3 => Role::Developer,
                4 | 5 => Role::Operator,
                6 => Role::Admin,
                7 => Role::Auditor,
                8 => Role::Deployer,
                _ => {
                    if i % 20 == 9 {
                        Role::Automation
                    } else {
                        Role::Developer
                    }
                }
            })
            .collect();
        let subscriptions = ["sub-prod", "sub-dev", "sub-shared"];
        let people = roles
            .iter()
            .enumerate()
            .map(|(i, &role)| {
                let h = if rng.gen_bool(0.7) {
                    0
                } else {
                    rng.gen_range(0..HOMES.len())
                };
                let team = i % 6;
                let (subscription, groups) = match role {
                    Role::Developer => (
                        subscriptions[1],
                        vec![format!("rg-team{team}-dev"), format!("rg-team{team}-test")],
                    ),
                    Role::Operator => (
                        subscriptions[0],
                        (0..4)
                            .map(|g| format!("rg-prod-{}", (team + g) % 6))
                            .collect(),
                    ),
                    Role::Admin => (
                        subscriptions[2],
                        vec![
                            "rg-platform".into(),
                            "rg-identity".into(),
                            format!("rg-prod-{team}"),
                        ],
                    ),
                    Role::Auditor => (subscriptions[2], vec!["rg-platform".into()]),
                    Role::Deployer => (
                        subscriptions[0],
                        (0..3)
                            .map(|g| format!("rg-prod-{}", (team + g) % 6))
                            .collect(),
                    ),
                    Role::Automation => (subscriptions[1], vec![format!("rg-team{team}-dev")]),
                };
                let (hours, volume) = match role {
                    Role::Developer => (
                        (rng.gen_range(7..10), rng.gen_range(16..19)),
                        rng.gen_range(20.0..50.0),
                    ),
                    Role::Operator => (
                        (rng.gen_range(6..9), rng.gen_range(17..20)),
                        rng.gen_range(30.0..70.0),
                    ),
                    Role::Admin => ((8, 18), rng.gen_range(10.0..30.0)),
                    Role::Auditor => ((9, 17), rng.gen_range(10.0..30.0)),
                    Role::Deployer | Role::Automation => ((0, 24), 0.0),
                };
                let app = matches!(role, Role::Deployer | Role::Automation);
                Persona {
                    id: format!("{}-{i:02}", role.name().to_ascii_lowercase()),
                    role,
                    tz: if app { 0 } else { HOME_TZ[h] },
                    home: if app { CLOUD } else { HOMES[h] },
                    home_host: (i as u16) * 4 + 1,
                    subscription: subscription.to_owned(),
                    groups,
                    hours,
                    volume,
                    joins: -WARM_UP_DAYS,
                    leaves: i64::MAX,
                }
            })
            .collect();
        World {
            options: *options,
            rng,
            people,
            events: Vec::new(),
            incidents: Vec::new(),
        }
    }

    fn days(&self) -> i64 {
        i64::from(self.options.days)
    }

    /// Picks a principal of `role` not yet used by an incident or surprise
    /// (none left: the surprise is skipped).
    fn pick(&mut self, role: Role, taken: &mut Vec<usize>) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].role == role && !taken.contains(&i))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = candidates[self.rng.gen_range(0..candidates.len())];
        taken.push(i);
        Some(i)
    }

    fn generate(&mut self) {
        let days = self.days();
        let mut taken = Vec::new();

        // Incidents' principals first: every run has each incident.
        let mut cast = [
            Role::Developer,
            Role::Admin,
            Role::Developer,
            Role::Developer,
            Role::Deployer,
            Role::Operator,
        ]
        .map(|role| self.pick(role, &mut taken));
        let [
            Some(leaver),
            Some(admin),
            Some(spender),
            Some(climber),
            Some(sp),
            Some(operator),
        ] = cast.as_mut()
        else {
            unreachable!("MIN_PRINCIPALS holds every role an incident needs")
        };
        let (leaver, admin, spender, climber, sp, operator) =
            (*leaver, *admin, *spender, *climber, *sp, *operator);

        // Surprises that change who is around: a departed employee, joiners.
        // Left six weeks before the month, after a month of work.
        self.people[leaver].joins = -WARM_UP_DAYS - 45;
        self.people[leaver].leaves = -WARM_UP_DAYS - 14;
        for _ in 0..(self.people.len() / 12).max(2) {
            let role = if self.rng.gen_bool(0.5) {
                Role::Developer
            } else {
                Role::Operator
            };
            if let Some(j) = self.pick(role, &mut taken) {
                self.people[j].joins = self.rng.gen_range(1..days - 2);
            }
        }

        // Ordinary work, every day, for everyone.
        for who in 0..self.people.len() {
            for day in self.people[who].joins.min(-WARM_UP_DAYS)..days {
                self.workday(who, day);
            }
        }

        // Benign surprises in the measured days.
        for _ in 0..(self.people.len() / 15).max(1) {
            if let Some(t) = self.pick(Role::Developer, &mut taken) {
                let from = self.rng.gen_range(0..days - 4);
                let net = TRAVEL[self.rng.gen_range(0..TRAVEL.len())];
                let shift = self.rng.gen_range(0..3);
                let len = self.rng.gen_range(3..6);
                self.travel(t, from, len, net, shift);
            }
        }
        for _ in 0..(self.people.len() / 12).max(1) {
            if let Some(p) = self.pick(Role::Developer, &mut taken) {
                let from = self.rng.gen_range(0..days - 3);
                self.new_project(p, from);
            }
        }
        if let Some(mover) = self.pick(Role::Developer, &mut taken) {
            let day = self.rng.gen_range(1..days);
            self.new_home_address(mover, day);
        }
        let deployers: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].role == Role::Deployer)
            .collect();
        let release = self.rng.gen_range(0..days);
        for &d in &deployers {
            self.release_day(d, release);
        }
        let operators: Vec<usize> = (0..self.people.len())
            .filter(|&i| self.people[i].role == Role::Operator)
            .collect();
        for &o in &operators {
            self.month_end_clean_up(o);
            // On call about one night in ten.
            for day in -WARM_UP_DAYS..days {
                if self.active(o, day) && self.rng.gen_bool(0.1) {
                    self.on_call_night(o, day);
                }
            }
        }

        // One of each incident, on a measured day.
        let mut day = || self.rng.gen_range(2..days - 1);
        let days_of = [day(), day(), day(), day().min(days - 3), day(), day()];
        self.dormant_mass_delete(leaver, days_of[0]);
        self.foreign_admin(admin, days_of[1]);
        self.expensive_resource(spender, days_of[2]);
        self.slow_denied_role_assignments(climber, days_of[3]);
        self.sp_mass_create(sp, days_of[4]);
        self.defence_evasion(operator, days_of[5]);

        self.events.sort_by_key(|e| e.at);
    }

    /// A UTC timestamp for `local_hour` (fractional) on `day` for `who`.
    fn at(&self, who: usize, day: i64, local_hour: f64) -> i64 {
        START + day * DAY + (local_hour * 3600.0) as i64 - self.people[who].tz * HOUR
    }

    fn active(&self, who: usize, day: i64) -> bool {
        let p = &self.people[who];
        day >= p.joins && day <= p.leaves
    }

    fn weekday(&self, who: usize, day: i64) -> bool {
        // START is a Monday (UTC); local days are close enough to it.
        let _ = who;
        day.rem_euclid(7) < 5
    }

    fn op(
        &mut self,
        who: usize,
        azure_op: &'static str,
        class: RiskClass,
    ) -> (&'static str, RiskClass, String) {
        let p = &self.people[who];
        let g = if self.rng.gen_bool(0.7) {
            0
        } else {
            self.rng.gen_range(0..p.groups.len())
        };
        (azure_op, class, p.groups[g].clone())
    }

    fn push(
        &mut self,
        who: usize,
        at: i64,
        ip: IpAddr,
        op: (&'static str, RiskClass, String),
        cost: Option<f64>,
        outcome: Outcome,
    ) {
        self.events.push(Event {
            at,
            who,
            ip,
            ops: vec![op],
            cost,
            outcome,
            approved: false,
            incident: None,
        });
    }

    /// Marks the last call pushed as run under an approved grant.
    fn approved(&mut self) {
        if let Some(e) = self.events.last_mut() {
            e.approved = true;
        }
    }

    fn user_ip(&mut self, who: usize) -> IpAddr {
        let p = &self.people[who];
        if p.home.country == "NL" && self.rng.gen_bool(0.6) {
            ip(OFFICE, 1 + (who as u16 % 4))
        } else {
            ip(p.home, p.home_host)
        }
    }

    /// One ordinary day of `who`.
    fn workday(&mut self, who: usize, day: i64) {
        if !self.active(who, day) {
            return;
        }
        match self.people[who].role {
            Role::Deployer => self.deploys(who, day, 1.0),
            Role::Automation => self.schedule(who, day),
            _ => {
                if !self.weekday(who, day) || self.rng.gen_bool(0.05) {
                    return;
                }
                let p = self.people[who].clone();
                let calls = (p.volume * self.rng.gen_range(0.6..1.4)) as usize;
                let sessions = self.rng.gen_range(2..6);
                for s in 0..sessions {
                    let start = self
                        .rng
                        .gen_range(p.hours.0 as f64..(p.hours.1 as f64 - 0.5));
                    let mut t = self.at(who, day, start);
                    for _ in 0..calls / sessions {
                        t += self.rng.gen_range(20..240);
                        let ip = self.user_ip(who);
                        self.ordinary_call(who, t, ip);
                    }
                    // Some sessions end by tearing something down.
                    let teardown = match p.role {
                        Role::Developer => s == 0 && self.rng.gen_bool(0.3),
                        Role::Operator => s == 0 && self.rng.gen_bool(0.5),
                        Role::Admin => s == 0 && self.rng.gen_bool(0.05),
                        _ => false,
                    };
                    if teardown {
                        let n = match p.role {
                            Role::Operator => self.rng.gen_range(2..6),
                            _ => self.rng.gen_range(1..4),
                        };
                        for _ in 0..n {
                            t += self.rng.gen_range(30..200);
                            let op = DELETES[self.rng.gen_range(0..DELETES.len())];
                            let op = self.op(who, op, RiskClass::Delete);
                            let ip = self.user_ip(who);
                            self.push(who, t, ip, op, None, Outcome::Succeeded);
                        }
                    }
                }
            }
        }
    }

    /// One call of a user's ordinary mix.
    fn ordinary_call(&mut self, who: usize, at: i64, ip: IpAddr) {
        let role = self.people[who].role;
        let roll: f64 = self.rng.r#gen();
        let ok = if self.rng.gen_bool(0.03) {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        let pick = |rng: &mut StdRng, list: &[&'static str]| list[rng.gen_range(0..list.len())];
        match role {
            Role::Auditor => {
                let op = if roll < 0.5 {
                    pick(&mut self.rng, &AUDIT_READS)
                } else {
                    pick(&mut self.rng, &READS)
                };
                let op = self.op(who, op, RiskClass::Read);
                self.push(who, at, ip, op, None, ok);
            }
            Role::Admin if roll < 0.04 => {
                // Privileged work goes through JIT: held, then run once approved.
                let op = if self.rng.gen_bool(0.6) {
                    ROLE_WRITE
                } else {
                    POLICY_WRITE
                };
                let first = self.op(who, op, RiskClass::Privileged);
                self.push(who, at, ip, first.clone(), None, Outcome::Held);
                let later = at + self.rng.gen_range(300..1800);
                self.push(who, later, ip, first, None, Outcome::Succeeded);
                self.approved();
            }
            Role::Developer if roll < 0.01 => {
                let op = self.op(who, SECRET_READ, RiskClass::Privileged);
                self.push(who, at, ip, op.clone(), None, Outcome::Held);
                let later = at + self.rng.gen_range(300..1800);
                self.push(who, later, ip, op, None, Outcome::Succeeded);
                self.approved();
            }
            _ if roll < 0.03 && role == Role::Developer => {
                let size = ["Standard_B2ms", "Standard_D2s_v5", "Standard_D4s_v5"]
                    [self.rng.gen_range(0..3)];
                let op = self.op(who, VM_WRITE, RiskClass::Create);
                let cost = super::cost::estimate(Some(&serde_json::json!({ "vmSize": size })));
                self.push(who, at, ip, op, cost, ok);
            }
            _ if roll < 0.2 && role == Role::Operator => {
                let op = pick(&mut self.rng, &ACTIONS);
                let op = self.op(who, op, RiskClass::Write);
                self.push(who, at, ip, op, None, ok);
            }
            _ if roll < 0.4 => {
                let op = pick(&mut self.rng, &WRITES);
                let op = self.op(who, op, RiskClass::Write);
                self.push(who, at, ip, op, None, ok);
            }
            _ => {
                let op = pick(&mut self.rng, &READS);
                let op = self.op(who, op, RiskClass::Read);
                self.push(who, at, ip, op, None, ok);
            }
        }
    }

    /// A deployment pipeline: a few deployments a day at any hour, each a
    /// burst of writes and a couple of VMs.
    fn deploys(&mut self, who: usize, day: i64, intensity: f64) {
        let n = (self.rng.gen_range(2.0..6.0) * intensity) as usize;
        let ip = ip(CLOUD, 10 + who as u16);
        for _ in 0..n {
            // Mostly in European working hours, some at any time.
            let hour = if self.rng.gen_bool(0.8) {
                self.rng.gen_range(7.0..19.0)
            } else {
                self.rng.gen_range(0.0..24.0)
            };
            let mut t = START + day * DAY + (hour * 3600.0) as i64;
            for _ in 0..self.rng.gen_range(4..12) {
                t += self.rng.gen_range(5..60);
                let op = WRITES[self.rng.gen_range(0..WRITES.len())];
                let op = self.op(who, op, RiskClass::Write);
                self.push(who, t, ip, op, None, Outcome::Succeeded);
            }
            for _ in 0..self.rng.gen_range(0..3) {
                t += self.rng.gen_range(5..60);
                let op = self.op(who, VM_WRITE, RiskClass::Create);
                let cost = super::cost::estimate(Some(
                    &serde_json::json!({ "vmSize": "Standard_D4s_v5" }),
                ));
                self.push(who, t, ip, op, cost, Outcome::Succeeded);
            }
            for _ in 0..self.rng.gen_range(3..8) {
                t += self.rng.gen_range(5..60);
                let op = READS[self.rng.gen_range(0..READS.len())];
                let op = self.op(who, op, RiskClass::Read);
                self.push(who, t, ip, op, None, Outcome::Succeeded);
            }
        }
    }

    /// Start VMs at 07:00 and stop them at 19:00 on weekdays.
    fn schedule(&mut self, who: usize, day: i64) {
        if day.rem_euclid(7) >= 5 {
            return;
        }
        let ip = ip(CLOUD, 10 + who as u16);
        for (hour, action) in [(7, ACTIONS[0]), (19, ACTIONS[2])] {
            let mut t = START + day * DAY + hour * HOUR;
            for _ in 0..8 {
                t += self.rng.gen_range(2..20);
                let op = self.op(who, action, RiskClass::Write);
                self.push(who, t, ip, op, None, Outcome::Succeeded);
            }
        }
    }

    // ------------------------------------------------------------ surprises

    /// Works from abroad for `len` days: another country's network, hours
    /// shifted by the time difference.
    fn travel(&mut self, who: usize, from: i64, len: i64, net: Net, shift: i64) {
        for e in self.events.iter_mut().filter(|e| e.who == who) {
            let day = (e.at - START).div_euclid(DAY);
            if (from..from + len).contains(&day) {
                e.ip = ip(net, 100 + who as u16);
                e.at -= shift * HOUR;
            }
        }
    }

    /// Starts working in a new resource group (and sometimes subscription).
    fn new_project(&mut self, who: usize, from: i64) {
        let group = format!("rg-project-{who}");
        let new_sub = self.rng.gen_bool(0.3);
        for e in self
            .events
            .iter_mut()
            .filter(|e| e.who == who && e.at >= START + from * DAY)
        {
            if e.at % 2 == 0 {
                for op in &mut e.ops {
                    op.2 = group.clone();
                }
            }
        }
        if new_sub {
            self.people[who].subscription = "sub-project".into();
        }
    }

    /// The home router gets a new address (same provider).
    fn new_home_address(&mut self, who: usize, from: i64) {
        let p = &self.people[who];
        let (old, new) = (ip(p.home, p.home_host), ip(p.home, p.home_host + 1));
        for e in self
            .events
            .iter_mut()
            .filter(|e| e.who == who && e.at >= START + from * DAY && e.ip == old)
        {
            e.ip = new;
        }
    }

    fn release_day(&mut self, who: usize, day: i64) {
        self.deploys(who, day, 3.0);
    }

    /// The last two weekdays of the window, and of the month before (in
    /// the history): an hour of deleting what is no longer needed.
    fn month_end_clean_up(&mut self, who: usize) {
        let days = self.days();
        let mut last: Vec<i64> = (0..days)
            .rev()
            .filter(|d| d.rem_euclid(7) < 5)
            .take(2)
            .collect();
        last.extend([-4, -3]);
        for day in last {
            if !self.active(who, day) || self.rng.gen_bool(0.3) {
                continue;
            }
            let mut t = {
                let h = self.rng.gen_range(10.0..16.0);
                self.at(who, day, h)
            };
            let ip = self.user_ip(who);
            for _ in 0..self.rng.gen_range(6..14) {
                t += self.rng.gen_range(60..300);
                let op = DELETES[self.rng.gen_range(0..DELETES.len())];
                let op = self.op(who, op, RiskClass::Delete);
                self.push(who, t, ip, op, None, Outcome::Succeeded);
            }
        }
    }

    /// Paged at night: reads and restarts for half an hour.
    fn on_call_night(&mut self, who: usize, day: i64) {
        let mut t = {
            let h = self.rng.gen_range(0.0..5.0);
            self.at(who, day, h)
        };
        let ip = ip(self.people[who].home, self.people[who].home_host);
        for i in 0..self.rng.gen_range(5..15) {
            t += self.rng.gen_range(30..240);
            let (op, class) = if i % 4 == 3 {
                (ACTIONS[1], RiskClass::Write)
            } else {
                (READS[0], RiskClass::Read)
            };
            let op = self.op(who, op, class);
            self.push(who, t, ip, op, None, Outcome::Succeeded);
        }
    }

    // ------------------------------------------------------------ incidents

    fn incident(&mut self, name: &str, who: usize, events: Vec<Event>) {
        let index = self.incidents.len();
        self.incidents.push((name.to_owned(), who));
        self.events.extend(events.into_iter().map(|mut e| {
            e.incident = Some(index);
            e
        }));
    }

    fn event(
        &mut self,
        who: usize,
        at: i64,
        ip: IpAddr,
        op: (&'static str, RiskClass, String),
        outcome: Outcome,
    ) -> Event {
        Event {
            at,
            who,
            ip,
            ops: vec![op],
            cost: None,
            outcome,
            approved: false,
            incident: None,
        }
    }

    fn dormant_mass_delete(&mut self, who: usize, day: i64) {
        let mut t = START + day * DAY + self.rng.gen_range(1..4) * HOUR;
        let ip = ip(self.people[who].home, self.people[who].home_host);
        let mut events = Vec::new();
        for _ in 0..self.rng.gen_range(12..20) {
            t += self.rng.gen_range(20..120);
            let op = self.op(who, DELETES[0], RiskClass::Delete);
            events.push(self.event(who, t, ip, op, Outcome::Succeeded));
        }
        self.incident("dormant_mass_delete", who, events);
    }

    fn foreign_admin(&mut self, who: usize, day: i64) {
        let mut t = START + day * DAY + self.rng.gen_range(0..24) * HOUR;
        let ip = ip(HOSTILE, 66);
        let mut events = Vec::new();
        for _ in 0..self.rng.gen_range(2..6) {
            t += self.rng.gen_range(30..300);
            let op = READS[self.rng.gen_range(0..READS.len())];
            let op = self.op(who, op, RiskClass::Read);
            events.push(self.event(who, t, ip, op, Outcome::Succeeded));
        }
        t += self.rng.gen_range(60..600);
        // Nobody approved it: it runs unless the risk stage stops it.
        let op = self.op(who, ROLE_WRITE, RiskClass::Privileged);
        events.push(self.event(who, t, ip, op, Outcome::Succeeded));
        self.incident("foreign_admin_role_assignment", who, events);
    }

    fn expensive_resource(&mut self, who: usize, day: i64) {
        let t = {
            let h = self.rng.gen_range(10.0..16.0);
            self.at(who, day, h)
        };
        let ip = self.user_ip(who);
        let op = self.op(who, VM_WRITE, RiskClass::Create);
        let mut e = self.event(who, t, ip, op, Outcome::Succeeded);
        e.cost = super::cost::estimate(Some(&serde_json::json!({ "vmSize": "Standard_M64s" })));
        self.incident("expensive_resource", who, vec![e]);
    }

    fn slow_denied_role_assignments(&mut self, who: usize, day: i64) {
        let mut t = self.at(who, day, 10.0);
        let mut events = Vec::new();
        for _ in 0..self.rng.gen_range(4..7) {
            t += self.rng.gen_range(2 * HOUR..6 * HOUR);
            let ip = self.user_ip(who);
            let op = self.op(who, ROLE_WRITE, RiskClass::Privileged);
            events.push(self.event(who, t, ip, op, Outcome::Denied));
        }
        self.incident("slow_denied_role_assignments", who, events);
    }

    fn sp_mass_create(&mut self, who: usize, day: i64) {
        let mut t = START + day * DAY + self.rng.gen_range(0..24) * HOUR;
        let ip = ip(CLOUD, 10 + who as u16);
        let cost =
            super::cost::estimate(Some(&serde_json::json!({ "vmSize": "Standard_D16s_v5" })));
        let mut events = Vec::new();
        for _ in 0..self.rng.gen_range(30..50) {
            t += self.rng.gen_range(10..90);
            let op = self.op(who, VM_WRITE, RiskClass::Create);
            let mut e = self.event(who, t, ip, op, Outcome::Succeeded);
            e.cost = cost;
            events.push(e);
        }
        self.incident("sp_mass_create", who, events);
    }

    fn defence_evasion(&mut self, who: usize, day: i64) {
        let mut t = {
            let h = self.rng.gen_range(0.0..24.0);
            self.at(who, day, h)
        };
        let ip = self.user_ip(who);
        let mut events = Vec::new();
        for op in [
            "Microsoft.Insights/diagnosticSettings/delete",
            "Microsoft.Insights/diagnosticSettings/delete",
            "Microsoft.Authorization/policyAssignments/delete",
        ] {
            t += self.rng.gen_range(30..300);
            let op = self.op(who, op, RiskClass::Privileged);
            events.push(self.event(who, t, ip, op, Outcome::Succeeded));
        }
        self.incident("defence_evasion", who, events);
    }

    // ------------------------------------------------------------ replay

    /// The same stream through the response rules (see the module): what
    /// they did per incident, and to ordinary work.
    fn responses(&self, response: &ResponseConfig) -> Responses {
        let off = ResponseConfig {
            enabled: false,
            ..response.clone()
        };
        let mut engine = Engine::new(Risk::with_geo(RiskConfig::default(), geo_table()), &off);
        let mut on = false;
        let mut steps: Vec<Step> = Vec::with_capacity(self.events.len());
        for (i, e) in self.events.iter().enumerate() {
            if !on && e.at >= START {
                engine.respond_with(response);
                on = true;
            }
            let p = &self.people[e.who];
            let grants = e
                .ops
                .iter()
                .any(|(op, _, _)| super::features::is_privilege_grant(op));
            let ran = matches!(e.outcome, Outcome::Succeeded | Outcome::Failed);
            let event = replay::Event {
                at_ms: e.at * 1000,
                origin: replay::Origin {
                    input: 0,
                    place: replay::Place::Index(i as u64),
                },
                what: replay::What::Call(replay::Call {
                    tenant: "tenant".into(),
                    principal: p.id.clone(),
                    name: p.id.clone(),
                    kind: if matches!(p.role, Role::Deployer | Role::Automation) {
                        "application".into()
                    } else {
                        "user".into()
                    },
                    roles: vec![p.role.name().to_owned()],
                    source_ip: Some(e.ip),
                    operations: e
                        .ops
                        .iter()
                        .map(|(op, class, group)| replay::CallOp {
                            azure_op: (*op).to_owned(),
                            class: *class,
                            resource: None,
                            subscription: Some(p.subscription.clone()),
                            resource_group: Some(group.clone()),
                        })
                        .collect(),
                    cost: e.cost,
                    outcome: e.outcome,
                    unapproved_grant: grants && ran && !e.approved,
                }),
            };
            steps.push(engine.step(&event));
        }
        let rules = engine
            .rules()
            .iter()
            .map(|r| {
                let actions: Vec<&str> = r.actions.iter().map(|a| a.as_str()).collect();
                format!(
                    "{}: {} → {} ({})",
                    r.name,
                    r.on.as_string(),
                    actions.join(", "),
                    r.mode.as_str()
                )
            })
            .collect();
        let fired = |step: &Step| -> Vec<(Action, Mode, String)> {
            match step {
                Step::Call { fired, .. } | Step::Auth { fired, .. } => fired
                    .iter()
                    .map(|f| (f.planned.action, f.planned.mode, f.planned.rule.clone()))
                    .collect(),
                Step::Stopped(_) => Vec::new(),
            }
        };
        let scenarios = self
            .incidents
            .iter()
            .enumerate()
            .map(|(n, (name, who))| {
                let mine: Vec<usize> = (0..self.events.len())
                    .filter(|&i| self.events[i].incident == Some(n))
                    .collect();
                let stopped = mine
                    .iter()
                    .filter(|&&i| matches!(steps[i], Step::Stopped(_)))
                    .count();
                let mut actions = Vec::new();
                let mut parts = Vec::new();
                let mut ran = 0;
                for &i in &mine {
                    if !matches!(steps[i], Step::Stopped(_)) {
                        ran += 1;
                    }
                    for (action, mode, _) in fired(&steps[i]) {
                        // A notify-mode rule answers each call it sees; say it once.
                        let named = format!("{} ({})", action.as_str(), mode.as_str());
                        if actions.contains(&named) {
                            continue;
                        }
                        actions.push(named);
                        let op = self.events[i].ops.first().map_or("", |o| o.0);
                        let grant = if op == ROLE_WRITE {
                            "the role assignment".to_owned()
                        } else {
                            format!("the privilege grant ({op})")
                        };
                        parts.push(match (action, mode) {
                            (Action::Suspend, Mode::Enforce) if stopped > 0 => format!(
                                "stopped after {}, principal suspended ({stopped} more stopped)",
                                calls(ran)
                            ),
                            (Action::Suspend, Mode::Enforce) => {
                                format!("principal suspended after {}, its last", calls(ran))
                            }
                            (Action::Suspend, Mode::Notify) => {
                                format!("would have suspended the principal after {}", calls(ran))
                            }
                            (Action::Revoke, Mode::Enforce) => format!("{grant} was revoked"),
                            (Action::Revoke, Mode::Notify) => {
                                format!("would have revoked {grant}")
                            }
                            (Action::Incident, Mode::Enforce) => "an incident was opened".into(),
                            (Action::Incident, Mode::Notify) => {
                                "would have opened an incident".into()
                            }
                            (Action::Block, Mode::Enforce) => "its network was blocked".into(),
                            (Action::Block, Mode::Notify) => {
                                "would have blocked its network".into()
                            }
                        });
                    }
                }
                let summary = if parts.is_empty() {
                    match mine.len() {
                        1 => "no response: its call ran".to_owned(),
                        n => format!("no response: all {n} calls ran"),
                    }
                } else {
                    parts.join("; ")
                };
                ScenarioResponse {
                    name: name.clone(),
                    principal: self.people[*who].id.clone(),
                    calls: mine.len(),
                    stopped,
                    actions,
                    summary,
                }
            })
            .collect();
        let mut false_list = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            if e.incident.is_some() || e.at < START {
                continue;
            }
            for (action, mode, rule) in fired(&steps[i]) {
                if !matches!(action, Action::Suspend | Action::Revoke) {
                    continue;
                }
                let calls_stopped = if action == Action::Suspend {
                    (i + 1..self.events.len())
                        .filter(|&j| {
                            self.events[j].who == e.who
                                && steps[j] == Step::Stopped(Stop::Suspended)
                        })
                        .count()
                } else {
                    0
                };
                let p = &self.people[e.who];
                false_list.push(FalseResponse {
                    principal: p.id.clone(),
                    role: p.role.name().to_owned(),
                    at: chrono::DateTime::from_timestamp(e.at, 0)
                        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_default(),
                    action: action.as_str().to_owned(),
                    rule,
                    mode: mode.as_str().to_owned(),
                    operation: e.ops.first().map_or("", |o| o.0).to_owned(),
                    calls_stopped,
                });
            }
        }
        Responses {
            rules,
            scenarios,
            false_responses: false_list.len(),
            false_list,
        }
    }

    fn replay(self) -> Report {
        let risk = Risk::with_geo(RiskConfig::default(), geo_table());
        let days = self.days();
        let mut latencies = Vec::with_capacity(self.events.len());
        let mut buckets: HashMap<(usize, i64), (Level, bool, String, i64)> = HashMap::new();
        let mut firsts: Vec<Option<(usize, i64, Vec<String>)>> = vec![None; self.incidents.len()];
        let mut counts = vec![0usize; self.incidents.len()];
        let mut starts = vec![None; self.incidents.len()];
        let mut max_levels = vec![Level::Low; self.incidents.len()];
        let mut benign_levels: BTreeMap<String, usize> = BTreeMap::new();
        let mut measured = 0;
        for e in &self.events {
            let p = &self.people[e.who];
            let obs = Observation {
                tenant: "tenant".into(),
                principal: p.id.clone(),
                peer: p.role.peer(),
                at: e.at,
                source_ip: Some(e.ip),
                operations: e
                    .ops
                    .iter()
                    .map(|(op, class, group)| ObservedOp {
                        azure_op: (*op).to_owned(),
                        class: *class,
                        subscription: Some(p.subscription.clone()),
                        resource_group: Some(group.clone()),
                    })
                    .collect(),
                cost: e.cost,
            };
            let started = Instant::now();
            let assessment = risk.assess(&obs);
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
            let _ = risk.alert_due(&obs, &assessment);
            let outcome = match assessment.level {
                Level::Critical => Outcome::Denied,
                Level::High => Outcome::Held,
                _ => e.outcome,
            };
            risk.learn(&obs, outcome);
            if e.at < START {
                continue;
            }
            measured += 1;
            if let Some(i) = e.incident {
                counts[i] += 1;
                let start = *starts[i].get_or_insert(e.at);
                max_levels[i] = max_levels[i].max(assessment.level);
                if assessment.level >= Level::High && firsts[i].is_none() {
                    firsts[i] = Some((
                        counts[i] - 1,
                        e.at - start,
                        assessment.reasons.iter().map(|r| r.text.clone()).collect(),
                    ));
                }
            } else {
                *benign_levels
                    .entry(assessment.level.as_str().to_owned())
                    .or_default() += 1;
            }
            if assessment.level >= Level::High {
                let bucket = buckets.entry((e.who, e.at.div_euclid(HOUR))).or_insert((
                    assessment.level,
                    false,
                    assessment.summary(),
                    e.at,
                ));
                bucket.0 = bucket.0.max(assessment.level);
                bucket.1 |= e.incident.is_some();
            }
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        let sizes = risk.state_sizes();
        let alerts = buckets.len();
        let true_alerts = buckets.values().filter(|b| b.1).count();
        let false_by = |level: Level| {
            buckets.values().filter(|b| !b.1 && b.0 == level).count() as f64 / days as f64
        };
        let mut false_alerts: Vec<FalseAlert> = buckets
            .iter()
            .filter(|(_, b)| !b.1)
            .map(|(&(who, _), b)| FalseAlert {
                principal: self.people[who].id.clone(),
                role: self.people[who].role.name().to_owned(),
                at: chrono::DateTime::from_timestamp(b.3, 0)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                level: b.0,
                summary: b.2.clone(),
            })
            .collect();
        false_alerts.sort_by(|a, b| a.at.cmp(&b.at));
        let scenarios: Vec<Scenario> = self
            .incidents
            .iter()
            .enumerate()
            .map(|(i, (name, who))| Scenario {
                name: name.clone(),
                principal: self.people[*who].id.clone(),
                calls: counts[i],
                detected: firsts[i].is_some(),
                calls_before_high: firsts[i].as_ref().map(|f| f.0),
                seconds_to_detect: firsts[i].as_ref().map(|f| f.1),
                max_level: max_levels[i],
                reasons: firsts[i].as_ref().map(|f| f.2.clone()).unwrap_or_default(),
            })
            .collect();
        let precision = if alerts == 0 {
            0.0
        } else {
            true_alerts as f64 / alerts as f64
        };
        let false_high = false_by(Level::High);
        let false_critical = false_by(Level::Critical);
        let mut report = Report {
            seed: self.options.seed,
            days: self.options.days,
            principals: self.options.principals,
            calls: measured,
            scenarios,
            alerts,
            true_alerts,
            precision,
            false_high_per_day: false_high,
            false_critical_per_day: false_critical,
            benign_levels,
            score_p50_micros: pct(0.5),
            score_p99_micros: pct(0.99),
            state_bytes_mean: if sizes.is_empty() {
                0
            } else {
                sizes.iter().sum::<usize>() / sizes.len()
            },
            state_bytes_max: sizes.iter().copied().max().unwrap_or(0),
            false_alerts,
            responses: Responses {
                rules: Vec::new(),
                scenarios: Vec::new(),
                false_responses: 0,
                false_list: Vec::new(),
            },
            missed: Vec::new(),
            targets_met: false,
        };
        report.missed = missed(&report);
        report.targets_met = report.missed.is_empty();
        report
    }
}

/// "1 call", "3 calls".
fn calls(n: usize) -> String {
    if n == 1 {
        "1 call".into()
    } else {
        format!("{n} calls")
    }
}

/// The targets a report misses.
fn missed(r: &Report) -> Vec<String> {
    let mut missed = Vec::new();
    for s in r.scenarios.iter().filter(|s| !s.detected) {
        missed.push(format!("{} not detected", s.name));
    }
    if r.precision < TARGET_PRECISION {
        missed.push(format!(
            "precision {:.0}% < {:.0}%",
            r.precision * 100.0,
            TARGET_PRECISION * 100.0
        ));
    }
    let false_per_day = r.false_high_per_day + r.false_critical_per_day;
    if false_per_day > TARGET_FALSE_PER_DAY {
        missed.push(format!(
            "{false_per_day:.2} false high-or-critical alerts per day > {TARGET_FALSE_PER_DAY}"
        ));
    }
    if let Some(s) = r.scenarios.iter().find(|s| s.name == "dormant_mass_delete")
        && s.calls_before_high
            .is_none_or(|n| n >= TARGET_MASS_DELETE_CALLS)
    {
        missed.push(format!(
            "mass deletion not held within its first {TARGET_MASS_DELETE_CALLS} deletes"
        ));
    }
    if r.score_p99_micros > TARGET_P99_MICROS {
        missed.push(format!(
            "scoring p99 {:.1} µs > {TARGET_P99_MICROS} µs",
            r.score_p99_micros
        ));
    }
    if r.state_bytes_max > TARGET_STATE_BYTES {
        missed.push(format!(
            "state {} B per principal > {TARGET_STATE_BYTES} B",
            r.state_bytes_max
        ));
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_detects_every_incident_kind() {
        let report = run(&EvalOptions {
            seed: 7,
            days: 10,
            principals: 20,
        })
        .expect("run");
        let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dormant_mass_delete",
                "foreign_admin_role_assignment",
                "expensive_resource",
                "slow_denied_role_assignments",
                "sp_mass_create",
                "defence_evasion"
            ]
        );
        for s in &report.scenarios {
            assert!(s.calls > 0, "{} made no calls", s.name);
            assert!(s.detected, "{} not detected:\n{}", s.name, report.text());
            assert!(!s.reasons.is_empty(), "{} detected without reasons", s.name);
        }
        let mass = &report.scenarios[0];
        assert!(
            mass.calls_before_high.is_some_and(|n| n < 3),
            "{}",
            report.text()
        );
        assert!(report.calls > 1000, "{}", report.text());
    }

    #[test]
    fn the_baseline_responses_stop_the_mass_deletion_and_revoke_the_foreign_grant() {
        let report = run(&EvalOptions {
            seed: 7,
            days: 10,
            principals: 20,
        })
        .expect("run");
        let r = &report.responses;
        assert_eq!(r.rules.len(), 3, "{}", report.text());
        let by_name = |name: &str| {
            r.scenarios
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let mass = by_name("dormant_mass_delete");
        assert!(
            mass.summary.contains("principal suspended"),
            "{}",
            report.text()
        );
        assert!(mass.stopped > 0 && mass.stopped < mass.calls, "{mass:?}");
        assert!(mass.actions.contains(&"suspend (enforce)".to_owned()));
        let admin = by_name("foreign_admin_role_assignment");
        assert!(
            admin.summary.contains("the role assignment was revoked"),
            "{}",
            report.text()
        );
        let denied = by_name("slow_denied_role_assignments");
        assert!(
            denied.actions.is_empty(),
            "denied grants never ran: {denied:?}"
        );
        assert_eq!(r.false_responses, r.false_list.len());
        let text = report.text();
        assert!(text.contains("  dormant mass delete: "), "{text}");
        assert!(text.contains("false responses on normal traffic"), "{text}");
    }

    #[test]
    fn notify_rules_say_what_they_would_have_done_and_stop_nothing() {
        let config: ResponseConfig = toml::from_str(
            r#"
            [[rules]]
            name = "mass-deletion"
            on = "floor:delete_spike"
            actions = ["suspend"]
            mode = "notify"
            "#,
        )
        .unwrap();
        let report = run_with(
            &EvalOptions {
                seed: 7,
                days: 10,
                principals: 20,
            },
            &config,
        )
        .expect("run");
        let mass = &report.responses.scenarios[0];
        assert_eq!(mass.stopped, 0, "{mass:?}");
        assert_eq!(mass.actions, ["suspend (notify)"]);
        assert!(
            mass.summary
                .starts_with("would have suspended the principal after"),
            "{mass:?}"
        );
        assert!(
            report.responses.scenarios[1]
                .summary
                .starts_with("no response"),
            "{}",
            report.text()
        );
    }

    #[test]
    fn same_seed_same_report() {
        let options = EvalOptions {
            seed: 3,
            days: 7,
            principals: 14,
        };
        let a = run(&options).expect("run");
        let b = run(&options).expect("run");
        assert_eq!(a.calls, b.calls);
        assert_eq!(a.alerts, b.alerts);
        assert_eq!(
            serde_json::to_value(&a.scenarios).unwrap(),
            serde_json::to_value(&b.scenarios).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&a.responses).unwrap(),
            serde_json::to_value(&b.responses).unwrap()
        );
    }

    #[test]
    fn too_small_a_world_is_refused() {
        let e = run(&EvalOptions {
            seed: 1,
            days: 30,
            principals: 5,
        })
        .unwrap_err();
        assert!(e.contains("--principals"), "{e}");
        let e = run(&EvalOptions {
            seed: 1,
            days: 3,
            principals: 50,
        })
        .unwrap_err();
        assert!(e.contains("--days"), "{e}");
    }
}
