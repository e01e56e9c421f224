//! A policy set narrowed to what was used: every permit keeps only the
//! operations it actually allowed (an access review's recommendation).
//!
//! Narrowing never widens: a narrowed permit is the original with one more
//! condition, `when { action in [<the operations it allowed>] }`, so it
//! applies to a subset of the requests the original applied to; a permit
//! that allowed nothing is left out; forbids are kept as they are. A set
//! with fewer or narrower permits and the same forbids allows a subset of
//! what the running set allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cedar_policy::{
    ActionConstraint, Effect as CedarEffect, Policy, PolicyId, PrincipalConstraint,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::PolicyError;
use super::source::{PolicyInfo, read_dir};

/// Who a permit grants to, read from its principal scope.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// `principal in AppRole::"<role>"`.
    Role(String),
    /// `principal in Group::"<object id>"`.
    Group(String),
    /// `principal == <entity>`, or `in` another entity.
    Principal(String),
    /// No principal constraint (or only a type).
    Anyone,
}

impl std::fmt::Display for Grantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grantee::Role(role) => write!(f, "role {role}"),
            Grantee::Group(group) => write!(f, "group {group}"),
            Grantee::Principal(p) => write!(f, "principal {p}"),
            Grantee::Anyone => f.write_str("anyone"),
        }
    }
}

/// A permit of the set and who it grants to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permit {
    pub id: String,
    pub file: PathBuf,
    pub line: usize,
    pub grantee: Grantee,
    /// The actions and action groups its scope names (`read`,
    /// `Microsoft.Compute/virtualMachines/*`); `*` for every action.
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Carries `@alert`: every use is alerted (break glass).
    pub alerted: bool,
}

fn grantee(policy: &Policy) -> Grantee {
    let uid = match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => return Grantee::Anyone,
        PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) => uid,
        PrincipalConstraint::Eq(uid) => return Grantee::Principal(uid.to_string()),
    };
    let id = uid.id().unescaped().to_owned();
    match uid.type_name().to_string().as_str() {
        "AppRole" => Grantee::Role(id),
        "Group" => Grantee::Group(id),
        _ => Grantee::Principal(uid.to_string()),
    }
}

/// The enforced permits of the set in `dir` (not the `@shadow` ones), in
/// file order.
pub fn permits(dir: &Path) -> Result<Vec<Permit>, PolicyError> {
    Ok(read_dir(dir)?
        .policies
        .iter()
        .filter(|(policy, info)| policy.effect() == CedarEffect::Permit && !info.shadow)
        .map(|(policy, info)| permit(policy, info))
        .collect())
}

pub(crate) fn permit(policy: &Policy, info: &PolicyInfo) -> Permit {
    Permit {
        id: info.id.clone(),
        file: info.file.clone(),
        line: info.line,
        grantee: grantee(policy),
        actions: match policy.action_constraint() {
            ActionConstraint::Any => vec!["*".to_owned()],
            ActionConstraint::Eq(uid) => vec![uid.id().unescaped().to_owned()],
            ActionConstraint::In(uids) => {
                uids.iter().map(|u| u.id().unescaped().to_owned()).collect()
            }
        },
        description: info.description.clone(),
        alerted: info.alert.is_some(),
    }
}

/// What narrowing did to one permit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Kept, with only these operations.
    Narrowed {
        permit: Permit,
        operations: Vec<String>,
    },
    /// Left out: it allowed nothing in the period.
    Removed { permit: Permit },
}

/// A narrowed set: its files (name, Cedar text) and what changed.
#[derive(Debug, Clone, Serialize)]
pub struct Narrowed {
    pub files: Vec<(String, String)>,
    pub changes: Vec<Change>,
}

/// Narrows the set in `dir` to `used`: permit id → the operations (as the
/// schema spells them) the permit allowed. A permit missing from `used`
/// is removed; `@shadow` policies and forbids are kept as they are.
/// `header` opens each file (as `//` comments).
pub fn narrow(
    dir: &Path,
    used: &BTreeMap<String, BTreeSet<String>>,
    header: &str,
) -> Result<Narrowed, PolicyError> {
    let sources = read_dir(dir)?;
    let mut files: Vec<(String, Vec<String>)> = sources
        .files
        .iter()
        .map(|f| (file_name(f), Vec::new()))
        .collect();
    let mut changes = Vec::new();
    for (policy, info) in &sources.policies {
        let text = if policy.effect() == CedarEffect::Forbid || info.shadow {
            policy.to_string()
        } else {
            let permit = permit(policy, info);
            match used.get(&info.id).filter(|ops| !ops.is_empty()) {
                Some(ops) => {
                    let text = restricted(policy, &info.id, ops)?;
                    changes.push(Change::Narrowed {
                        permit,
                        operations: ops.iter().cloned().collect(),
                    });
                    text
                }
                None => {
                    changes.push(Change::Removed { permit });
                    format!(
                        "// Removed: @id(\"{}\") allowed nothing in the period reviewed.",
                        info.id
                    )
                }
            }
        };
        let name = file_name(&info.file);
        if let Some((_, texts)) = files.iter_mut().find(|(n, _)| *n == name) {
            texts.push(text);
        }
    }
    let comment: String = header.lines().map(|l| format!("// {l}\n")).collect();
    Ok(Narrowed {
        files: files
            .into_iter()
            .map(|(name, texts)| (name, format!("{comment}\n{}\n", texts.join("\n\n"))))
            .collect(),
        changes,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `policy` with `when { action in [ops] }` added, as formatted Cedar.
fn restricted(policy: &Policy, id: &str, ops: &BTreeSet<String>) -> Result<String, PolicyError> {
    let problem = |message: String| PolicyError::Generated {
        policy: id.to_owned(),
        message,
    };
    let mut est = policy.to_json().map_err(|e| problem(e.to_string()))?;
    let set: Vec<Value> = ops
        .iter()
        .map(|op| json!({"Value": {"__entity": {"type": "Action", "id": op}}}))
        .collect();
    let condition = json!({
        "kind": "when",
        "body": {"in": {"left": {"Var": "action"}, "right": {"Set": set}}}
    });
    match est.get_mut("conditions") {
        Some(Value::Array(conditions)) => conditions.push(condition),
        _ => {
            est["conditions"] = json!([condition]);
        }
    }
    let narrowed = Policy::from_json(Some(PolicyId::new(id)), est)
        .map_err(|e| problem(format!("the narrowed policy is not Cedar: {e}")))?;
    let text = narrowed.to_string();
    let config = cedar_policy_formatter::Config {
        line_width: 100,
        indent_width: 2,
    };
    Ok(cedar_policy_formatter::policies_str_to_pretty(&text, &config).unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(dir: &Path, text: &str) {
        std::fs::write(dir.join("p.cedar"), text).expect("write");
    }

    #[test]
    fn permits_are_narrowed_or_removed_and_forbids_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        set(
            dir.path(),
            r#"@id("reader") permit (principal in AppRole::"Reader", action in Action::"read", resource);
@id("dev") permit (principal in AppRole::"Developer", action, resource) when { context.mfa };
@id("nobody") permit (principal in Group::"g1", action, resource);
@id("no-prod") forbid (principal, action, resource) when { resource has tags && resource.tags.hasTag("env") };
"#,
        );
        let permits = permits(dir.path()).expect("permits");
        let grantees: Vec<_> = permits.iter().map(|p| p.grantee.clone()).collect();
        assert_eq!(
            grantees,
            [
                Grantee::Role("Reader".into()),
                Grantee::Role("Developer".into()),
                Grantee::Group("g1".into())
            ]
        );
        let used = BTreeMap::from([
            (
                "reader".to_owned(),
                BTreeSet::from(["Microsoft.Compute/virtualMachines/read".to_owned()]),
            ),
            (
                "dev".to_owned(),
                BTreeSet::from(["Microsoft.Compute/virtualMachines/start/action".to_owned()]),
            ),
        ]);
        let narrowed = narrow(dir.path(), &used, "generated").expect("narrow");
        let text = &narrowed.files[0].1;
        assert!(text.starts_with("// generated\n"), "{text}");
        assert!(
            text.contains(r#"Action::"Microsoft.Compute/virtualMachines/read""#),
            "{text}"
        );
        assert!(
            text.contains("context.mfa"),
            "the original condition stays: {text}"
        );
        assert!(text.contains(r#"// Removed: @id("nobody")"#), "{text}");
        assert!(
            text.contains(r#"forbid"#) && text.contains("no-prod"),
            "{text}"
        );
        assert!(
            matches!(&narrowed.changes[2], Change::Removed { permit } if permit.id == "nobody")
        );
        // The text parses back with the same ids.
        let parsed: cedar_policy::PolicySet = text.parse().expect("Cedar");
        assert_eq!(parsed.policies().count(), 3);
    }
}
