//! What the rules want done, decided from findings alone: no store, no
//! clock but the one given. The live pipeline and `warden risk replay`
//! both decide here, so a backtest fires exactly what Warden would.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::config::{Action, BlockConfig, Mode, Rule, Trigger};
use crate::risk::Assessment;

/// One action a rule wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub rule: String,
    /// The rule's trigger, as configured (`delete_spike`, `level:critical`).
    pub trigger: String,
    pub action: Action,
    pub mode: Mode,
}

/// Whether a call's assessment answers `trigger`.
fn fires(trigger: &Trigger, assessment: &Assessment) -> bool {
    match trigger {
        Trigger::Floor(floor) => assessment.floor.as_deref() == Some(floor.as_str()),
        Trigger::Reason(code) => assessment.reasons.iter().any(|r| &r.code == code),
        Trigger::Level(level) => assessment.level >= *level,
        Trigger::AuthFailures => false,
    }
}

/// The actions the rules want for a scored call, in rule order. An action
/// two rules want is planned once, enforcing if either enforces (the first
/// rule that enforces names it).
pub fn for_call(rules: &[Rule], assessment: &Assessment) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    for rule in rules.iter().filter(|r| fires(&r.on, assessment)) {
        for &action in &rule.actions {
            let next = Planned {
                rule: rule.name.clone(),
                trigger: rule.on.as_string(),
                action,
                mode: rule.mode,
            };
            match planned.iter_mut().find(|p| p.action == action) {
                Some(earlier) if earlier.mode == Mode::Notify && rule.mode == Mode::Enforce => {
                    *earlier = next
                }
                Some(_) => {}
                None => planned.push(next),
            }
        }
    }
    planned
}

/// The actions the rules want when an address's authentication mostly
/// fails.
pub fn for_auth_failures(rules: &[Rule]) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    for rule in rules.iter().filter(|r| r.on == Trigger::AuthFailures) {
        for &action in &rule.actions {
            if planned.iter().all(|p| p.action != action) {
                planned.push(Planned {
                    rule: rule.name.clone(),
                    trigger: rule.on.as_string(),
                    action,
                    mode: rule.mode,
                });
            }
        }
    }
    planned
}

/// The network `ip` is blocked as: the address itself, or its `/prefix`.
pub fn network_of(ip: IpAddr, block: &BlockConfig) -> IpNet {
    let prefix = match ip {
        IpAddr::V4(_) => block.prefix_v4,
        IpAddr::V6(_) => block.prefix_v6,
    };
    IpNet::new(ip, prefix)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// Authentication attempts found mostly failing from one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailingNetwork {
    pub network: IpNet,
    pub attempts: u32,
    pub failures: u32,
}

/// Networks watched at most (the quietest are forgotten beyond it).
const NETWORKS: usize = 20_000;
/// Attempts remembered per network (older ones are forgotten first).
const PER_NETWORK: usize = 4_096;

/// Authentication attempts per network over the configured window: which
/// networks fail more than the configured share, with enough attempts to
/// mean it. Each network is reported once per cool-down.
#[derive(Debug)]
pub struct AuthWatch {
    block: BlockConfig,
    attempts: HashMap<IpNet, VecDeque<(i64, bool)>>,
    /// Network → when its last report stops counting (Unix seconds).
    reported: HashMap<IpNet, i64>,
}

impl AuthWatch {
    pub fn new(block: BlockConfig) -> AuthWatch {
        AuthWatch {
            block,
            attempts: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Notes an attempt from `ip` at `at` (Unix seconds); `ok` if its token
    /// was accepted. Returns the network if this attempt tips it over.
    pub fn note(&mut self, ip: IpAddr, ok: bool, at: i64) -> Option<FailingNetwork> {
        let network = network_of(ip, &self.block);
        let window = self.block.window.as_secs() as i64;
        if !self.attempts.contains_key(&network) && self.attempts.len() >= NETWORKS {
            self.prune(at - window);
        }
        let seen = self.attempts.entry(network).or_default();
        seen.push_back((at, ok));
        while seen.len() > PER_NETWORK || seen.front().is_some_and(|(t, _)| *t <= at - window) {
            seen.pop_front();
        }
        if ok {
            return None;
        }
        let attempts = seen.len() as u32;
        let failures = seen.iter().filter(|(_, ok)| !ok).count() as u32;
        let tipped = attempts >= self.block.min_attempts
            && f64::from(failures) > self.block.failure_share * f64::from(attempts);
        if !tipped || self.reported.get(&network).is_some_and(|until| *until > at) {
            return None;
        }
        self.reported
            .insert(network, at + self.block.cool_down.as_secs() as i64);
        Some(FailingNetwork {
            network,
            attempts,
            failures,
        })
    }

    /// Forgets attempts before `before`, then the quietest networks.
    fn prune(&mut self, before: i64) {
        self.attempts.retain(|_, seen| {
            seen.retain(|(t, _)| *t > before);
            !seen.is_empty()
        });
        self.reported.retain(|_, until| *until > before);
        if self.attempts.len() >= NETWORKS {
            let mut sizes: Vec<(usize, IpNet)> =
                self.attempts.iter().map(|(n, s)| (s.len(), *n)).collect();
            sizes.sort();
            for (_, network) in sizes.into_iter().take(NETWORKS / 10) {
                self.attempts.remove(&network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::response::config::baseline_rules;
    use crate::risk::{Level, Reason};

    fn assessed(level: Level, floor: Option<&str>, codes: &[&str]) -> Assessment {
        Assessment {
            score: 80,
            level,
            reasons: codes
                .iter()
                .map(|c| Reason::new(c, 50.0, (*c).to_owned()))
                .collect(),
            floor: floor.map(str::to_owned),
        }
    }

    #[test]
    fn the_baseline_answers_its_floors_and_nothing_else() {
        let rules = baseline_rules();
        let delete = for_call(
            &rules,
            &assessed(Level::High, Some("delete_spike"), &["delete_spike"]),
        );
        let actions: Vec<Action> = delete.iter().map(|p| p.action).collect();
        assert_eq!(actions, [Action::Suspend, Action::Incident]);
        assert_eq!(delete[0].rule, "mass-deletion");
        let grant = for_call(
            &rules,
            &assessed(
                Level::Critical,
                Some("privilege_grant_without_approval"),
                &["privilege_grant_without_approval"],
            ),
        );
        let actions: Vec<Action> = grant.iter().map(|p| p.action).collect();
        assert_eq!(actions, [Action::Revoke, Action::Incident]);
        let unusual = for_call(&rules, &assessed(Level::High, None, &["new_country"]));
        assert!(unusual.is_empty());
        // A delete spike below the floor is a finding, not the rule.
        let spike = for_call(&rules, &assessed(Level::High, None, &["delete_spike"]));
        assert!(spike.is_empty());
        let actions: Vec<Action> = for_auth_failures(&rules).iter().map(|p| p.action).collect();
        assert_eq!(actions, [Action::Block]);
    }

    #[test]
    fn an_action_two_rules_want_is_planned_once_enforcing_if_either_does() {
        let rules: Vec<Rule> = toml::from_str::<toml::Table>(
            r#"
            [[r]]
            name = "watch"
            on = "level:high"
            actions = ["incident", "suspend"]
            mode = "notify"
            [[r]]
            name = "stop"
            on = "floor:delete_spike"
            actions = ["suspend"]
            "#,
        )
        .unwrap()["r"]
            .clone()
            .try_into()
            .unwrap();
        let planned = for_call(&rules, &assessed(Level::High, Some("delete_spike"), &[]));
        assert_eq!(planned.len(), 2);
        assert_eq!(planned[0].action, Action::Incident);
        assert_eq!(planned[0].mode, Mode::Notify);
        assert_eq!(planned[1].action, Action::Suspend);
        assert_eq!(planned[1].mode, Mode::Enforce);
        assert_eq!(planned[1].rule, "stop");
        let below = for_call(&rules, &assessed(Level::Medium, None, &["new_ip"]));
        assert!(below.is_empty());
    }

    #[test]
    fn a_network_is_reported_once_failures_pass_the_share_with_enough_attempts() {
        let block = BlockConfig {
            min_attempts: 10,
            ..BlockConfig::default()
        };
        let mut watch = AuthWatch::new(block.clone());
        let bad: IpAddr = "198.51.100.7".parse().unwrap();
        // Half failing is not more than half.
        for i in 0..10 {
            assert_eq!(watch.note(bad, i % 2 == 0, 1_000 + i), None);
        }
        let tipped = watch.note(bad, false, 1_011).expect("reported");
        assert_eq!((tipped.attempts, tipped.failures), (11, 6));
        assert_eq!(tipped.network.to_string(), "198.51.100.7/32");
        // Once per cool-down.
        assert_eq!(watch.note(bad, false, 1_012), None);
        let later = 1_011 + block.cool_down.as_secs() as i64;
        // By then the window (10 min) has forgotten the earlier attempts:
        // one failure is too few to report again.
        assert_eq!(watch.note(bad, false, later), None);
        // Another address is its own network.
        let good: IpAddr = "203.0.113.9".parse().unwrap();
        for i in 0..30 {
            assert_eq!(watch.note(good, true, 1_000 + i), None);
        }
    }

    #[test]
    fn attempts_out_of_the_window_do_not_count() {
        let block = BlockConfig {
            min_attempts: 5,
            ..BlockConfig::default()
        };
        let window = block.window.as_secs() as i64;
        let mut watch = AuthWatch::new(block);
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        for i in 0..4 {
            assert_eq!(watch.note(ip, false, i), None);
        }
        // The four early failures have left the window.
        assert_eq!(watch.note(ip, false, window + 10), None);
        for i in 0..3 {
            assert_eq!(watch.note(ip, false, window + 11 + i), None);
        }
        assert!(watch.note(ip, false, window + 20).is_some());
    }

    #[test]
    fn networks_are_truncated_to_the_prefix() {
        let block = BlockConfig {
            prefix_v4: 24,
            prefix_v6: 64,
            ..BlockConfig::default()
        };
        assert_eq!(
            network_of("192.0.2.77".parse().unwrap(), &block).to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2:3::9".parse().unwrap(), &block).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
