//! The controls file (`compliance/controls.toml`, built in; `--controls`
//! replaces it): each control, the standards it maps to, and the checks
//! that measure it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The built-in controls.
pub const BUILTIN: &str = include_str!("../../compliance/controls.toml");

/// A controls file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Controls {
    /// Standard key (`sox`) → its full name.
    pub standards: BTreeMap<String, String>,
    #[serde(rename = "control")]
    pub controls: Vec<Control>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Standard key → what the control means under it.
    pub refs: BTreeMap<String, String>,
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// A measure of [`super::evidence::MEASURES`].
    pub measure: String,
    /// `= N`, `>= N` or `<= N`; none: evidence only.
    #[serde(default)]
    pub expect: Option<String>,
    /// What the measure shows, for the report.
    pub evidence: String,
    /// The finding when the check fails; `{value}` is the measured value.
    #[serde(default)]
    pub finding: String,
}

/// A parsed `expect`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    Eq(f64),
    AtLeast(f64),
    AtMost(f64),
}

impl Expect {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (make, rest): (fn(f64) -> Expect, &str) = if let Some(rest) = text.strip_prefix(">=") {
            (Expect::AtLeast, rest)
        } else if let Some(rest) = text.strip_prefix("<=") {
            (Expect::AtMost, rest)
        } else if let Some(rest) = text.strip_prefix('=') {
            (Expect::Eq, rest)
        } else {
            return Err(format!("{text:?}: write \"= N\", \">= N\" or \"<= N\""));
        };
        let n: f64 = rest
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {:?} is not a number", rest.trim()))?;
        Ok(make(n))
    }

    pub fn holds(self, value: f64) -> bool {
        match self {
            Expect::Eq(n) => value == n,
            Expect::AtLeast(n) => value >= n,
            Expect::AtMost(n) => value <= n,
        }
    }
}

impl Controls {
    /// The full name of `standard`, or why the file has none.
    pub fn standard_name(&self, standard: &str) -> Result<&str, String> {
        self.standards
            .get(standard)
            .map(String::as_str)
            .ok_or_else(|| {
                format!(
                    "{standard:?} is not in the controls file (it has: {})",
                    self.standards
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Parses and checks a controls file: known measures, valid `expect`s,
    /// unique ids, refs to declared standards.
    pub fn parse(text: &str, measures: &[&str]) -> Result<Self, String> {
        let controls: Controls = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::BTreeSet::new();
        for c in &controls.controls {
            if !seen.insert(c.id.as_str()) {
                return Err(format!("control {}: the id is used twice", c.id));
            }
            for standard in c.refs.keys() {
                if !controls.standards.contains_key(standard) {
                    return Err(format!(
                        "control {}: standard {standard:?} is not declared in [standards]",
                        c.id
                    ));
                }
            }
            if c.checks.is_empty() {
                return Err(format!("control {}: it has no check", c.id));
            }
            for check in &c.checks {
                if !measures.contains(&check.measure.as_str()) {
                    return Err(format!(
                        "control {}: unknown measure {:?} (known: {})",
                        c.id,
                        check.measure,
                        measures.join(", ")
                    ));
                }
                if let Some(expect) = &check.expect {
                    Expect::parse(expect).map_err(|e| format!("control {}: {e}", c.id))?;
                }
            }
        }
        Ok(controls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_file_parses_and_names_known_measures() {
        let controls = Controls::parse(BUILTIN, super::super::evidence::MEASURES).expect("valid");
        let ids: Vec<&str> = controls.controls.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["IT-001", "IT-002", "IT-003", "IT-004"]);
        assert!(
            controls
                .controls
                .iter()
                .all(|c| c.refs.contains_key("sox") && c.refs.contains_key("iso27001"))
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let measures = &["a"];
        let base = "[standards]\nsox = \"SOX\"\n[[control]]\nid = \"C1\"\nname = \"n\"\nrefs = { sox = \"x\" }\n[[control.check]]\nevidence = \"e\"\n";
        let err = Controls::parse(&format!("{base}measure = \"b\"\n"), measures).unwrap_err();
        assert!(err.contains("unknown measure \"b\""), "{err}");
        let err = Controls::parse(
            &format!("{base}measure = \"a\"\nexpect = \"> 1\"\n"),
            measures,
        )
        .unwrap_err();
        assert!(err.contains("write \"= N\""), "{err}");
        let pci = format!("{base}measure = \"a\"\n").replace("sox = \"x\"", "pci = \"x\"");
        let err = Controls::parse(&pci, measures).unwrap_err();
        assert!(err.contains("pci"), "{err}");
        assert!(
            Controls::parse(
                &format!("{base}measure = \"a\"\nexpect = \">= 2\"\n"),
                measures
            )
            .is_ok()
        );
        assert_eq!(Expect::parse("<= 3").unwrap(), Expect::AtMost(3.0));
        assert!(Expect::parse(">= 1").unwrap().holds(1.0));
        assert!(!Expect::parse("= 0").unwrap().holds(2.0));
    }
}
