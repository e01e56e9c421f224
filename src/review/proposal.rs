//! The outcome of a closed campaign: a policy change proposal, never an
//! edit of the running files. Each removal (principal, role) becomes a
//! narrowed permit: every permit granting the role gets `unless {
//! principal == User::"<tid>/<oid>" }` ([`crate::policy::exclude`]), the
//! rest of the set byte for byte as it runs. Generated `policy test`
//! cases show the change on the running set's own terms: each removed
//! principal is denied a call the role allowed it (a call of the log, or
//! one the running set allows the role), and the kept holders and any
//! other holder of the role are still allowed it.
//!
//! The proposed set is validated (loaded as Warden would load it, from a
//! scratch directory) and its cases run, with the running set's own tests
//! beside them, before it is recorded; the files travel in the
//! `campaign_closed` record, for a security manager to submit
//! (`warden access campaign proposal ID --out DIR`, then `warden policy
//! propose --dir DIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::campaign::{Campaign, Example, Item, Person};
use crate::policy::exclude::{Entity, exclude};
use crate::policy::narrow::Grantee;
use crate::policy::{Effect, Engine, JitFacts, OperationFacts, PolicyConfig, TestReport};

/// The generated cases' file in the proposed set.
pub fn cases_file(campaign_id: &str) -> String {
    format!("tests/campaign-{campaign_id}.toml")
}

/// One principal taken out of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    pub item: String,
    pub principal: Person,
    pub role: String,
    /// The Cedar entity excluded.
    pub entity: Entity,
    /// The permits narrowed for it (none: no permit of the set grants the
    /// role, so nothing changes for it).
    pub permits: Vec<String>,
}

/// One narrowed permit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub permit: String,
    pub file: String,
    pub role: String,
    pub excluded: Vec<Entity>,
}

/// A file of the proposed set, by its path in the set's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub path: String,
    pub text: String,
}

/// How a set of `policy test` cases fared on the proposed set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tests {
    pub cases: usize,
    pub passed: usize,
    /// `<name>: <why>` of each failed case.
    pub failed: Vec<String>,
}

impl Tests {
    fn of(report: &TestReport) -> Tests {
        Tests {
            cases: report.cases.len(),
            passed: report.passed(),
            failed: report
                .cases
                .iter()
                .filter(|c| !c.passed())
                .map(|c| format!("{}: {}", c.name, c.failures.join("; ")))
                .collect(),
        }
    }
}

/// A campaign's policy change proposal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The hash of the running set the proposal changes, as read.
    pub base_policy_set: String,
    /// The proposed set's hash, once it loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_set: Option<String>,
    pub removals: Vec<Removal>,
    pub changes: Vec<Change>,
    /// The proposed set, a whole policy directory: its `*.cedar` files,
    /// the running set's `tests/*.toml` and the generated cases
    /// ([`cases_file`]). Empty when nothing is removed.
    pub files: Vec<File>,
    /// Unified diff of the running set against the proposed one.
    pub diff: String,
    /// The generated cases on the proposed set.
    pub tests: Tests,
    /// The running set's own tests (its `tests/`) on the proposed set.
    pub running_tests: Tests,
    /// Removals no case shows, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_shown: Vec<String>,
    /// Why the proposed set could not be made or does not load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Proposal {
    /// Validated, and every generated and running case passed.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.policy_set.is_some()
            && self.tests.failed.is_empty()
            && self.running_tests.failed.is_empty()
    }
}

/// A resource group for cases when the log holds no call of a role.
const FALLBACK_GROUP: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/review";

/// Allowed operations of a role tried for a case when the log holds none.
const FALLBACK_TRIES: usize = 200;

/// The proposal of `campaign` (closed or closing at `now`) against the set
/// `running` runs from `config`, over the catalog's `ops`.
pub fn build(
    campaign: &Campaign,
    running: &Engine,
    config: &PolicyConfig,
    ops: &[(String, String)],
    now: DateTime<Utc>,
) -> Proposal {
    let mut proposal = Proposal {
        base_policy_set: running.hash(),
        ..Proposal::default()
    };
    let mut by_role: BTreeMap<Grantee, BTreeSet<Entity>> = BTreeMap::new();
    for item in campaign.removals() {
        let entity = Entity::of(
            &item.principal.kind,
            &item.principal.tid,
            &item.principal.oid,
        );
        by_role
            .entry(Grantee::Role(item.role.clone()))
            .or_default()
            .insert(entity);
    }
    if by_role.is_empty() {
        return proposal;
    }
    let names: BTreeMap<Entity, &str> = campaign
        .removals()
        .map(|i| {
            (
                Entity::of(&i.principal.kind, &i.principal.tid, &i.principal.oid),
                i.principal.name.as_str(),
            )
        })
        .collect();
    let comment = |grantee: &Grantee, excluded: &BTreeSet<Entity>| {
        let who: Vec<&str> = excluded
            .iter()
            .map(|e| names.get(e).copied().unwrap_or(e.id.as_str()))
            .collect();
        format!(
            "Access review campaign {} ({}): removed from {grantee}: {}.",
            campaign.id,
            now.format("%Y-%m-%d"),
            who.join(", ")
        )
    };
    let excluded = match exclude(&config.dir, &by_role, comment) {
        Ok(excluded) => excluded,
        Err(e) => {
            proposal.error = Some(format!("the running set could not be narrowed: {e}"));
            return proposal;
        }
    };
    proposal.base_policy_set = excluded.base_hash.clone();
    for change in &excluded.changes {
        if let Grantee::Role(role) = &change.permit.grantee {
            proposal.changes.push(Change {
                permit: change.permit.id.clone(),
                file: change
                    .permit
                    .file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                role: role.clone(),
                excluded: change.principals.clone(),
            });
        }
    }
    for item in campaign.removals() {
        let entity = Entity::of(
            &item.principal.kind,
            &item.principal.tid,
            &item.principal.oid,
        );
        proposal.removals.push(Removal {
            item: item.id.clone(),
            principal: item.principal.clone(),
            role: item.role.clone(),
            permits: proposal
                .changes
                .iter()
                .filter(|c| c.role == item.role && c.excluded.contains(&entity))
                .map(|c| c.permit.clone())
                .collect(),
            entity,
        });
    }

    let (cases, not_shown) = cases(campaign, running, ops);
    proposal.not_shown = not_shown;
    let cases_path = cases_file(&campaign.id);
    let cases_text = format!(
        "# Generated for access review campaign {}: each removed principal is denied\n\
         # a call its role allowed it; the kept holders, and any other holder, keep it.\n\n{}",
        campaign.id,
        toml::to_string(&CaseFile { case: &cases }).unwrap_or_default()
    );
    for (name, text) in &excluded.files {
        proposal.files.push(File {
            path: name.clone(),
            text: text.clone(),
        });
    }
    // The running set's own tests travel with it: the proposed set is a
    // whole policy directory, which replaces the running one when applied.
    match running_tests(&config.dir, &cases_path) {
        Ok(tests) => proposal.files.extend(tests),
        Err(e) => {
            proposal.error = Some(e);
            return proposal;
        }
    }
    proposal.files.push(File {
        path: cases_path.clone(),
        text: cases_text.clone(),
    });
    proposal.diff = diff(&config.dir, &excluded.files, &cases_path, &cases_text);

    // Validated and tested from a scratch directory, as Warden would load it.
    let checked = check(&proposal.files, &cases_path, config, ops);
    match checked {
        Ok((hash, tests, running_tests)) => {
            proposal.policy_set = Some(hash);
            proposal.tests = tests;
            proposal.running_tests = running_tests;
        }
        Err(e) => proposal.error = Some(e),
    }
    proposal
}

/// The `tests/*.toml` files of the running set (all but one named
/// `skip`), sorted.
fn running_tests(dir: &Path, skip: &str) -> Result<Vec<File>, String> {
    let tests = dir.join("tests");
    if !tests.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(&tests).map_err(|e| format!("{}: {e}", tests.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", tests.display()))?
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let relative = format!("tests/{name}");
        if !path.is_file() || !name.ends_with(".toml") || name.starts_with('.') || relative == skip
        {
            continue;
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(File {
            path: relative,
            text,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Loads `files` as a policy set (the running configuration's schema and
/// roles) and runs its tests: the generated cases (`cases_path`) and the
/// running set's own, told apart.
fn check(
    files: &[File],
    cases_path: &str,
    config: &PolicyConfig,
    ops: &[(String, String)],
) -> Result<(String, Tests, Tests), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
    for file in files {
        let path = scratch.path().join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let proposed_config = PolicyConfig {
        dir: scratch.path().to_path_buf(),
        ..config.clone()
    };
    let proposed = Engine::load(&proposed_config, ops)
        .map_err(|e| format!("the proposed set does not load: {e}"))?;
    let report = crate::policy::run_tests(&proposed, &scratch.path().join("tests"));
    let generated = scratch.path().join(cases_path);
    let (mine, theirs): (Vec<_>, Vec<_>) = report
        .cases
        .iter()
        .cloned()
        .partition(|c| c.file == generated);
    let part = |cases: Vec<crate::policy::CaseResult>| {
        Tests::of(&TestReport {
            policy_set: report.policy_set.clone(),
            cases,
        })
    };
    Ok((proposed.hash(), part(mine), part(theirs)))
}

#[derive(Serialize)]
struct CaseFile<'a> {
    case: &'a [Case],
}

/// A generated `policy test` case.
#[derive(Debug, Clone, Serialize)]
struct Case {
    name: String,
    principal: CasePrincipal,
    operation: OperationFacts,
    #[serde(skip_serializing_if = "Option::is_none")]
    jit: Option<JitFacts>,
    expect: CaseExpect,
}

#[derive(Debug, Clone, Serialize)]
struct CasePrincipal {
    kind: String,
    tid: String,
    oid: String,
    name: String,
    roles: Vec<String>,
    mfa: bool,
}

impl CasePrincipal {
    fn of(person: &Person, role: &str) -> CasePrincipal {
        CasePrincipal {
            kind: if person.kind == "application" {
                "application".into()
            } else {
                "user".into()
            },
            tid: person.tid.clone(),
            oid: person.oid.clone(),
            name: person.name.clone(),
            roles: vec![role.to_owned()],
            mfa: false,
        }
    }

    fn spec(&self, mfa: bool) -> crate::policy::PrincipalSpec {
        crate::policy::PrincipalSpec {
            kind: if self.kind == "application" {
                crate::policy::PrincipalKindSpec::Application
            } else {
                crate::policy::PrincipalKindSpec::User
            },
            tid: self.tid.clone(),
            oid: self.oid.clone(),
            name: Some(self.name.clone()),
            roles: self.roles.clone(),
            mfa,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct CaseExpect {
    effect: Effect,
}

/// The cases of the proposal, and the removals no case shows.
fn cases(
    campaign: &Campaign,
    running: &Engine,
    ops: &[(String, String)],
) -> (Vec<Case>, Vec<String>) {
    let removed_roles: BTreeSet<&str> = campaign.removals().map(|i| i.role.as_str()).collect();
    let mut cases = Vec::new();
    let mut not_shown = Vec::new();
    for role in removed_roles {
        let of_role: Vec<&Item> = campaign.items.iter().filter(|i| i.role == role).collect();
        // The examples of the log, the removed principal's own first.
        let logged: Vec<&Example> = of_role.iter().filter_map(|i| i.example.as_ref()).collect();
        let peer = Person {
            tid: of_role
                .first()
                .map(|i| i.principal.tid.clone())
                .unwrap_or_default(),
            oid: format!("campaign-{}-peer", campaign.id),
            name: format!("another holder of {role}"),
            kind: "user".into(),
        };
        let mut shown_for_peer = false;
        for item in &of_role {
            let removed =
                item.decision.as_ref().map(|d| d.decision) == Some(super::campaign::Choice::Remove);
            let principal = CasePrincipal::of(&item.principal, role);
            let examples = item.example.iter().chain(logged.iter().copied());
            let found = examples
                .filter_map(|e| allowed(running, &principal, e))
                .next()
                .or_else(|| fallback(running, &principal, role, ops));
            let Some((facts, jit, mfa)) = found else {
                if removed {
                    not_shown.push(format!(
                        "item {}: the running set allows {} nothing through {role} that a case can show",
                        item.id, item.principal.name
                    ));
                }
                continue;
            };
            let op = facts.azure_op.clone();
            let (name, effect) = if removed {
                (
                    format!(
                        "campaign {} item {}: {} removed from {role}: {op} now denied",
                        campaign.id, item.id, item.principal.name
                    ),
                    Effect::Deny,
                )
            } else {
                (
                    format!(
                        "campaign {} item {}: {} keeps {role}: {op} still allowed",
                        campaign.id, item.id, item.principal.name
                    ),
                    Effect::Allow,
                )
            };
            cases.push(Case {
                name,
                principal: CasePrincipal { mfa, ..principal },
                operation: facts.clone(),
                jit: jit.clone(),
                expect: CaseExpect { effect },
            });
            if removed && !shown_for_peer {
                shown_for_peer = true;
                cases.push(Case {
                    name: format!(
                        "campaign {}: another holder of {role} keeps {op}",
                        campaign.id
                    ),
                    principal: CasePrincipal {
                        mfa,
                        ..CasePrincipal::of(&peer, role)
                    },
                    operation: facts,
                    jit,
                    expect: CaseExpect {
                        effect: Effect::Allow,
                    },
                });
            }
        }
    }
    (cases, not_shown)
}

fn facts_of(example: &Example, resource_id: &str) -> Option<OperationFacts> {
    let mut facts: OperationFacts = serde_json::from_value(serde_json::json!({
        "azure_op": example.azure_op,
        "class": if example.class.is_empty() { "unknown" } else { example.class.as_str() },
        "resource_id": resource_id,
    }))
    .ok()?;
    facts.location.clone_from(&example.location);
    facts.tags.clone_from(&example.tags);
    facts
        .resource_group_tags
        .clone_from(&example.resource_group_tags);
    Some(facts)
}

/// The example as a case, in the first context the running set allows the
/// principal it in: as is, with MFA, with MFA and a JIT grant.
fn allowed(
    running: &Engine,
    principal: &CasePrincipal,
    example: &Example,
) -> Option<(OperationFacts, Option<JitFacts>, bool)> {
    let facts = facts_of(example, &example.resource_id)?;
    first_allowed(running, principal, &facts).map(|(jit, mfa)| (facts, jit, mfa))
}

/// A call the running set allows `principal` through `role` when the log
/// holds none: one of the role's allowed operations on a resource of its
/// type.
fn fallback(
    running: &Engine,
    principal: &CasePrincipal,
    role: &str,
    ops: &[(String, String)],
) -> Option<(OperationFacts, Option<JitFacts>, bool)> {
    let class_of: BTreeMap<&str, &str> =
        ops.iter().map(|(o, c)| (o.as_str(), c.as_str())).collect();
    super::allowed_operations(running, &Grantee::Role(role.to_owned()), ops)
        .into_iter()
        .take(FALLBACK_TRIES)
        .find_map(|op| {
            let example = Example {
                class: class_of
                    .get(op.as_str())
                    .copied()
                    .unwrap_or("unknown")
                    .to_owned(),
                resource_id: resource_for(&op),
                azure_op: op,
                ..Example::default()
            };
            allowed(running, principal, &example)
        })
}

/// A resource `op` acts on, in the fallback resource group.
fn resource_for(op: &str) -> String {
    let kind = super::resource_type(op);
    if kind.eq_ignore_ascii_case("Microsoft.Resources/subscriptions") {
        return FALLBACK_GROUP.to_owned();
    }
    format!("{FALLBACK_GROUP}/providers/{kind}/review-target")
}

fn first_allowed(
    running: &Engine,
    principal: &CasePrincipal,
    facts: &OperationFacts,
) -> Option<(Option<JitFacts>, bool)> {
    super::first_allowed(running, |mfa| principal.spec(mfa).principal(), facts)
}

/// A unified diff of the running files against the proposed ones, and the
/// new cases file.
fn diff(dir: &Path, files: &[(String, String)], cases_path: &str, cases: &str) -> String {
    let mut out = String::new();
    for (name, text) in files {
        let running = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        if running == *text {
            continue;
        }
        out.push_str(
            &similar::TextDiff::from_lines(&running, text)
                .unified_diff()
                .context_radius(3)
                .header(&format!("running/{name}"), &format!("proposed/{name}"))
                .to_string(),
        );
    }
    out.push_str(
        &similar::TextDiff::from_lines("", cases)
            .unified_diff()
            .context_radius(3)
            .header("/dev/null", &format!("proposed/{cases_path}"))
            .to_string(),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::review::campaign::{Choice, ItemDecision, Scope};
    use crate::review::usage::Period;

    fn person(name: &str, kind: &str) -> Person {
        Person {
            tid: "t1".into(),
            oid: format!("oid-{name}"),
            name: name.into(),
            kind: kind.into(),
        }
    }

    fn item(id: &str, who: Person, role: &str, decision: Choice, example: Example) -> Item {
        Item {
            id: id.into(),
            principal: who,
            role: role.into(),
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
            example: Some(example),
            decision: Some(ItemDecision {
                decision,
                reason: "r".into(),
                reviewer: None,
                at: "2026-01-01T00:00:00Z".parse().unwrap(),
                auto: false,
            }),
            overridden: Vec::new(),
        }
    }

    #[test]
    fn removals_become_narrowed_permits_whose_generated_cases_pass() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
        let config = PolicyConfig {
            dir,
            ..PolicyConfig::default()
        };
        let ops = crate::catalog::Catalog::builtin()
            .unwrap()
            .operation_classes();
        let running = Engine::load(&config, &ops).unwrap();
        let vm = "/subscriptions/s1/resourcegroups/dev-web/providers/microsoft.compute/virtualmachines/web1";
        let start = Example {
            azure_op: "Microsoft.Compute/virtualMachines/start/action".into(),
            class: "action".into(),
            resource_id: vm.into(),
            tags: BTreeMap::from([("env".to_owned(), "dev".to_owned())]),
            ..Example::default()
        };
        let read = Example {
            azure_op: "Microsoft.Compute/virtualMachines/read".into(),
            class: "read".into(),
            resource_id: vm.into(),
            ..Example::default()
        };
        let at: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let campaign = Campaign {
            id: "c1".into(),
            title: String::new(),
            scope: Scope::default(),
            deadline: at,
            auto_remove_undecided: true,
            created: at,
            created_by: person("grace", "user"),
            reviewer_roles: Vec::new(),
            days: 90,
            period: Period::days_before(at, 90),
            policy_set: String::new(),
            items: vec![
                item(
                    "1",
                    person("alice", "user"),
                    "Developer",
                    Choice::Keep,
                    start.clone(),
                ),
                item(
                    "2",
                    person("bob", "user"),
                    "Developer",
                    Choice::Remove,
                    start,
                ),
                item(
                    "3",
                    person("app1", "application"),
                    "Reader",
                    Choice::Remove,
                    read,
                ),
            ],
            not_found: Vec::new(),
            closed: None,
        };
        let proposal = build(&campaign, &running, &config, &ops, at);
        assert!(proposal.ok(), "{proposal:#?}");
        let changed: Vec<(&str, &str)> = proposal
            .changes
            .iter()
            .map(|c| (c.permit.as_str(), c.role.as_str()))
            .collect();
        assert_eq!(
            changed,
            [
                ("reader-read", "Reader"),
                ("developer-custom-role", "Developer")
            ]
        );
        assert_eq!(proposal.removals.len(), 2);
        assert_eq!(proposal.removals[1].entity.kind, "ServicePrincipal");
        // Bob denied, another developer and alice allowed; the app denied,
        // another reader allowed.
        assert_eq!(proposal.tests.cases, 5, "{:#?}", proposal.files.last());
        assert_eq!(proposal.tests.passed, 5);
        assert!(proposal.running_tests.cases > 0);
        assert!(
            proposal
                .diff
                .contains(r#"+    principal == User::"t1/oid-bob""#)
                || proposal.diff.contains(r#"principal == User::"t1/oid-bob""#),
            "{}",
            proposal.diff
        );
        assert!(
            proposal
                .diff
                .contains("+++ proposed/tests/campaign-c1.toml")
        );
        // Nothing removed, nothing proposed.
        let mut kept = campaign.clone();
        kept.items.truncate(1);
        let none = build(&kept, &running, &config, &ops, at);
        assert!(none.files.is_empty() && none.changes.is_empty() && none.diff.is_empty());
    }
}
