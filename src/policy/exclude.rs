//! A policy set with principals taken out of the permits that grant them
//! a role or a group: the removals of an access review campaign, as a
//! change a security manager can read and apply.
//!
//! Excluding never widens: every permit whose principal scope is
//! `principal in AppRole::"<role>"` (or `in Group::"<id>"`) of a removal
//! gets one more condition, `unless { principal == User::"<tid>/<oid>" ||
//! ... }`, written just before its `;`, so it applies to a subset of the
//! requests it applied to. Everything else of the files (the permit's own
//! text, other policies, comments, blank lines) is kept byte for byte, so
//! the diff shows only the added conditions and a comment saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cedar_policy::{Effect as CedarEffect, Policy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::PolicyError;
use super::narrow::{self, Grantee, Permit};
use super::source::{read_dir, statement_spans};

/// A principal as Cedar names it: `User` or `ServicePrincipal`, with the
/// id `<tid>/<oid>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

impl Entity {
    /// The entity of a principal of kind `kind` (`user`, or `application`
    /// / `app` for a service principal).
    pub fn of(kind: &str, tid: &str, oid: &str) -> Entity {
        let kind = match kind {
            "application" | "app" | "service_principal" => "ServicePrincipal",
            _ => "User",
        };
        Entity {
            kind: kind.to_owned(),
            id: format!("{tid}/{oid}"),
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{:?}", self.kind, self.id)
    }
}

/// One permit narrowed: the principals it no longer grants to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exclusion {
    pub permit: Permit,
    pub principals: Vec<Entity>,
}

/// The set with the exclusions applied: every `*.cedar` file of the
/// directory (name, text), changed or not, and what changed.
#[derive(Debug, Clone, Serialize)]
pub struct Excluded {
    /// The hash of the set as read (see [`super::hash_files`]).
    pub base_hash: String,
    pub files: Vec<(String, String)>,
    pub changes: Vec<Exclusion>,
}

/// Takes `removals` (grantee → the principals it must no longer grant
/// to) out of the permits of the set in `dir`. `comment` says why, as
/// `//` lines above each narrowed permit. A grantee no permit grants to
/// changes nothing.
pub fn exclude(
    dir: &Path,
    removals: &BTreeMap<Grantee, BTreeSet<Entity>>,
    comment: impl Fn(&Grantee, &BTreeSet<Entity>) -> String,
) -> Result<Excluded, PolicyError> {
    let sources = read_dir(dir)?;
    let mut files = Vec::new();
    let mut changes = Vec::new();
    for path in &sources.files {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.clone(),
            source,
        })?;
        // Every statement of a file that loaded is one of its policies, in
        // the same order.
        let spans = statement_spans(&text);
        let policies = sources
            .policies
            .iter()
            .filter(|(_, info)| &info.file == path);
        let mut edits = Vec::new();
        for ((policy, info), (_, span)) in policies.zip(spans) {
            if policy.effect() != CedarEffect::Permit {
                continue;
            }
            let permit = narrow::permit(policy, info);
            let Some(principals) = removals.get(&permit.grantee).filter(|p| !p.is_empty()) else {
                continue;
            };
            let narrowed = unless_principals(&text[span.clone()], &info.id, principals)?;
            let note: String = comment(&permit.grantee, principals)
                .lines()
                .map(|l| format!("// {l}\n"))
                .collect();
            edits.push((span, format!("{note}{narrowed}")));
            changes.push(Exclusion {
                permit,
                principals: principals.iter().cloned().collect(),
            });
        }
        let mut out = text.clone();
        for (span, replacement) in edits.into_iter().rev() {
            out.replace_range(span, &replacement);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((name, out));
    }
    Ok(Excluded {
        base_hash: sources.hash,
        files,
        changes,
    })
}

/// `statement` (a policy's source, ending with `;`) with `unless {
/// principal == a || principal == b ... }` added before its `;`, checked
/// to parse to the same policy with one more condition.
fn unless_principals(
    statement: &str,
    id: &str,
    principals: &BTreeSet<Entity>,
) -> Result<String, PolicyError> {
    let problem = |message: String| PolicyError::Generated {
        policy: id.to_owned(),
        message,
    };
    let tests: Vec<String> = principals
        .iter()
        .map(|e| format!("principal == {e}"))
        .collect();
    let condition = match tests.as_slice() {
        [] => return Err(problem("no principal to exclude".into())),
        [one] => format!("unless {{ {one} }}"),
        many => format!("unless {{\n  {}\n}}", many.join(" ||\n  ")),
    };
    let body = statement
        .strip_suffix(';')
        .ok_or_else(|| problem("the policy does not end with `;`".into()))?;
    let text = format!("{}\n{condition};", body.trim_end());
    let before = Policy::parse(None, statement).map_err(|e| problem(e.to_string()))?;
    let after = Policy::parse(None, &text)
        .map_err(|e| problem(format!("the narrowed policy is not Cedar: {e}")))?;
    let conditions = |p: &Policy| -> Result<usize, PolicyError> {
        Ok(p.to_json()
            .map_err(|e| problem(e.to_string()))?
            .get("conditions")
            .and_then(Value::as_array)
            .map_or(0, Vec::len))
    };
    if conditions(&after)? != conditions(&before)? + 1 || after.effect() != before.effect() {
        return Err(problem(
            "the narrowed policy is not the original with one more condition".into(),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"// Readers.
@id("reader")
permit (principal in AppRole::"Reader", action in Action::"read", resource);

// Developers, with MFA.
@id("dev") permit (principal in AppRole::"Developer", action, resource) when { context.mfa }; @id("g") permit (principal in Group::"g1", action, resource);
@id("no-prod") forbid (principal, action, resource) when { resource has tags && resource.tags.hasTag("env") };
"#;

    #[test]
    fn only_the_permits_of_a_removal_change_and_the_rest_is_kept_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("p.cedar"), SET).expect("write");
        let bob = Entity::of("user", "t1", "bob");
        let app = Entity::of("application", "t1", "app1");
        let removals = BTreeMap::from([(
            Grantee::Role("Developer".into()),
            BTreeSet::from([bob.clone(), app.clone()]),
        )]);
        let out = exclude(dir.path(), &removals, |g, p| {
            format!("campaign c1: {} removed from {g}", p.len())
        })
        .expect("exclude");
        let text = &out.files[0].1;
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].permit.id, "dev");
        assert_eq!(out.changes[0].principals, [app, bob]);
        assert!(
            text.starts_with("// Readers.\n@id(\"reader\")\npermit (principal in AppRole::\"Reader\", action in Action::\"read\", resource);\n\n// Developers, with MFA.\n// campaign c1: 2 removed from role Developer\n"),
            "{text}"
        );
        assert!(
            text.contains(r#"principal == User::"t1/bob""#)
                && text.contains(r#"principal == ServicePrincipal::"t1/app1""#)
                && text.contains("unless"),
            "{text}"
        );
        assert!(
            text.contains(r#" @id("g") permit (principal in Group::"g1", action, resource);"#),
            "the policy after it on the same line is kept: {text}"
        );
        let parsed: cedar_policy::PolicySet = text.parse().expect("Cedar");
        assert_eq!(parsed.policies().count(), 4);
        // No removal, no change.
        let none = exclude(dir.path(), &BTreeMap::new(), |_, _| String::new()).expect("exclude");
        assert_eq!(none.files[0].1, SET);
        assert!(none.changes.is_empty());
    }
}
