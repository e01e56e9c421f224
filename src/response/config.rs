//! `[response]` in `warden.toml`: which findings trigger which actions,
//! in which mode, and how addresses are blocked.
//!
//! ```toml
//! [response]
//! enabled = true
//! refresh = "2s"           # how often a replica reads others' suspensions and blocks
//!
//! [[response.rules]]
//! name = "mass-deletion"
//! on = "floor:delete_spike"  # floor:<floor>, a risk reason code, level:high, level:critical, or auth_failures
//! actions = ["suspend", "incident"]
//! mode = "enforce"         # or "notify": record what would have been done, do nothing
//!
//! [response.block]
//! window = "10m"           # authentication attempts counted per address
//! min_attempts = 20        # fewer attempts never block
//! failure_share = 0.5      # block when more than this share failed
//! cool_down = "15m"        # how long a block lasts
//! prefix_v4 = 32           # block the address (32) or its network (e.g. 24)
//! prefix_v6 = 128
//! ```
//!
//! Without `[[response.rules]]` the baseline applies ([`baseline_rules`]):
//! the mass-deletion rule suspends the principal and opens an incident,
//! a privilege grant that ran without an approval is revoked and opens an
//! incident, and an address whose authentication attempts mostly fail is
//! blocked. All three enforce.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::risk::Level;

/// `[response]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// Respond at all (default true). Off: findings are scored and alerted
    /// as before, and nothing is suspended, revoked or blocked.
    pub enabled: bool,
    /// How often a replica on a shared store reads the suspensions and
    /// blocks the others made: the bound on how late another replica
    /// enforces them.
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// The rules; absent: [`baseline_rules`].
    pub rules: Option<Vec<Rule>>,
    pub block: BlockConfig,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: true,
            refresh: Duration::from_secs(2),
            rules: None,
            block: BlockConfig::default(),
        }
    }
}

/// `[response.block]`: when and for how long an address is blocked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockConfig {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub min_attempts: u32,
    pub failure_share: f64,
    #[serde(with = "humantime_serde")]
    pub cool_down: Duration,
    pub prefix_v4: u8,
    pub prefix_v6: u8,
}

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            window: Duration::from_secs(600),
            min_attempts: 20,
            failure_share: 0.5,
            cool_down: Duration::from_secs(900),
            prefix_v4: 32,
            prefix_v6: 128,
        }
    }
}

/// One rule: a finding and what answers it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Named in records, notifications and incidents.
    pub name: String,
    pub on: Trigger,
    pub actions: Vec<Action>,
    #[serde(default)]
    pub mode: Mode,
}

/// What a rule answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A hard floor that raised a call's level (`floor:delete_spike`: more
    /// than five times the usual deletes in an hour;
    /// `floor:privilege_grant_without_approval`).
    Floor(String),
    /// A risk reason code among a call's findings (`new_country`,
    /// `delete_spike` at any strength, ...).
    Reason(String),
    /// A call scored at or above a level.
    Level(Level),
    /// An address whose authentication attempts mostly fail
    /// ([`BlockConfig`]).
    AuthFailures,
}

impl Trigger {
    pub fn parse(text: &str) -> Result<Trigger, String> {
        let text = text.trim();
        if text == "auth_failures" {
            return Ok(Trigger::AuthFailures);
        }
        let code = |code: &str| {
            !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if let Some(floor) = text.strip_prefix("floor:") {
            return match floor {
                "delete_spike" | "privilege_grant_without_approval" => {
                    Ok(Trigger::Floor(floor.to_owned()))
                }
                other => Err(format!(
                    "`floor:{other}`: the floors are delete_spike and privilege_grant_without_approval"
                )),
            };
        }
        let text = text.strip_prefix("reason:").unwrap_or(text);
        if let Some(level) = text.strip_prefix("level:") {
            return match level {
                "medium" => Ok(Trigger::Level(Level::Medium)),
                "high" => Ok(Trigger::Level(Level::High)),
                "critical" => Ok(Trigger::Level(Level::Critical)),
                other => Err(format!(
                    "`level:{other}`: the level is one of medium, high, critical"
                )),
            };
        }
        if code(text) {
            return Ok(Trigger::Reason(text.to_owned()));
        }
        Err(format!(
            "{text:?} is not a trigger: use floor:delete_spike, floor:privilege_grant_without_approval, a risk reason code (e.g. new_country), level:high, level:critical or auth_failures"
        ))
    }

    pub fn as_string(&self) -> String {
        match self {
            Trigger::Floor(floor) => format!("floor:{floor}"),
            Trigger::Reason(code) => code.clone(),
            Trigger::Level(level) => format!("level:{}", level.as_str()),
            Trigger::AuthFailures => "auth_failures".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Trigger::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Trigger {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

/// What a response does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse every further call of the principal until a security manager
    /// lifts the suspension.
    Suspend,
    /// Undo the privilege grant the call made, through ARM with Warden's
    /// own credential.
    Revoke,
    /// Refuse every request from the address (or its network) for the
    /// cool-down.
    Block,
    /// Open an incident for a security manager to acknowledge and close.
    Incident,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Revoke => "revoke",
            Action::Block => "block",
            Action::Incident => "incident",
        }
    }
}

/// Whether a rule acts or only says what it would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Records (and notifies) what the rule would have done.
    Notify,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Notify => "notify",
        }
    }
}

/// The rules that apply without `[[response.rules]]` (the anomaly rules of
/// the requirements): mass deletion suspends, an unapproved privilege grant
/// is revoked, failing authentication blocks the address.
pub fn baseline_rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "mass-deletion".into(),
            on: Trigger::Floor("delete_spike".into()),
            actions: vec![Action::Suspend, Action::Incident],
            mode: Mode::Enforce,
        },
        Rule {
            name: "unapproved-privilege-grant".into(),
            on: Trigger::Floor("privilege_grant_without_approval".into()),
            actions: vec![Action::Revoke, Action::Incident],
            mode: Mode::Enforce,
        },
        Rule {
            name: "authentication-failures".into(),
            on: Trigger::AuthFailures,
            actions: vec![Action::Block],
            mode: Mode::Enforce,
        },
    ]
}

impl ResponseConfig {
    /// The rules in force: configured, or the baseline.
    pub fn rules(&self) -> Vec<Rule> {
        self.rules.clone().unwrap_or_else(baseline_rules)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.refresh.is_zero() || self.refresh > Duration::from_secs(60) {
            return Err("response.refresh: more than 0s and at most 60s".into());
        }
        let b = &self.block;
        if b.window < Duration::from_secs(10) {
            return Err("response.block.window: at least 10s".into());
        }
        if b.min_attempts == 0 {
            return Err("response.block.min_attempts: at least 1".into());
        }
        if !(b.failure_share > 0.0 && b.failure_share < 1.0) {
            return Err("response.block.failure_share: between 0 and 1 (exclusive)".into());
        }
        if b.cool_down < Duration::from_secs(1) {
            return Err("response.block.cool_down: at least 1s".into());
        }
        if !(8..=32).contains(&b.prefix_v4) {
            return Err("response.block.prefix_v4: 8 to 32".into());
        }
        if !(32..=128).contains(&b.prefix_v6) {
            return Err("response.block.prefix_v6: 32 to 128".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, rule) in self.rules().iter().enumerate() {
            let at = format!("response.rules[{i}] ({:?})", rule.name);
            if rule.name.trim().is_empty() {
                return Err(format!("response.rules[{i}].name: must not be empty"));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(format!("{at}: the name is used by another rule"));
            }
            if rule.actions.is_empty() {
                return Err(format!("{at}.actions: name at least one action"));
            }
            let auth = rule.on == Trigger::AuthFailures;
            for action in &rule.actions {
                let fits = match action {
                    Action::Block => auth,
                    Action::Suspend | Action::Revoke => !auth,
                    Action::Incident => true,
                };
                if !fits {
                    return Err(format!(
                        "{at}.actions: `{}` does not answer `{}` (block answers auth_failures; suspend and revoke answer a call's findings)",
                        action.as_str(),
                        rule.on.as_string()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ResponseConfig, String> {
        let config: ResponseConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn the_baseline_applies_without_rules() {
        let config = parse("").unwrap();
        let rules = config.rules();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].on, Trigger::Floor("delete_spike".into()));
        assert_eq!(rules[0].actions, [Action::Suspend, Action::Incident]);
        assert!(rules.iter().all(|r| r.mode == Mode::Enforce));
    }

    #[test]
    fn rules_parse_with_their_modes_and_triggers() {
        let config = parse(
            r#"
            [[rules]]
            name = "critical"
            on = "level:critical"
            actions = ["incident"]
            mode = "notify"
            [[rules]]
            name = "bad-logins"
            on = "auth_failures"
            actions = ["block", "incident"]
            "#,
        )
        .unwrap();
        let rules = config.rules();
        assert_eq!(rules[0].on, Trigger::Level(Level::Critical));
        assert_eq!(rules[0].mode, Mode::Notify);
        assert_eq!(rules[1].mode, Mode::Enforce);
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let cases = [
            (
                "[[rules]]\nname='x'\non='level:low'\nactions=['incident']",
                "level is one of",
            ),
            (
                "[[rules]]\nname='x'\non='Delete Spike'\nactions=['incident']",
                "is not a trigger",
            ),
            (
                "[[rules]]\nname='x'\non='floor:new_ip'\nactions=['incident']",
                "the floors are",
            ),
            (
                "[[rules]]\nname='x'\non='auth_failures'\nactions=['suspend']",
                "`suspend` does not answer `auth_failures`",
            ),
            (
                "[[rules]]\nname='x'\non='delete_spike'\nactions=['block']",
                "`block` does not answer",
            ),
            (
                "[[rules]]\nname='x'\non='delete_spike'\nactions=[]",
                "name at least one action",
            ),
            (
                "[[rules]]\nname='x'\non='delete_spike'\nactions=['incident']\n[[rules]]\nname='x'\non='new_country'\nactions=['incident']",
                "used by another rule",
            ),
            (
                "[[rules]]\nname='x'\non='delete_spike'\nactions=['shout']",
                "unknown variant",
            ),
            ("[block]\nfailure_share = 1.5", "failure_share"),
            ("[block]\nprefix_v4 = 40", "prefix_v4"),
            ("refresh = \"0s\"", "response.refresh"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
