//! The least-privilege recommendation of an access review: the running
//! set with every permit narrowed to the operations it allowed in the
//! period ([`crate::policy::narrow`]), `policy test` cases generated from
//! the period's calls, and a plain diff against the running set.
//!
//! The cases show both halves of the change on the running set's own
//! terms: each used operation (on a resource it ran on) is allowed by the
//! running set and still allowed by the recommendation; each unused
//! operation the running set allows a role is denied by the
//! recommendation. A case is only generated where the running set allows
//! the call in one of a few contexts (as is, with MFA, with MFA and a JIT
//! grant); operations it cannot show are counted, not hidden.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::usage::{Sample, Usage};
use super::{EntitlementReview, Review, resource_type};
use crate::policy::narrow::{self, Change, Grantee, Narrowed};
use crate::policy::{Effect, Engine, JitFacts, OperationFacts, PolicyConfig, TestReport};

/// Unused operations shown per role at most (the rest are counted).
pub const MAX_UNUSED_CASES: usize = 25;

/// A generated `policy test` case.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratedCase {
    pub name: String,
    pub principal: CasePrincipal,
    pub operation: OperationFacts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jit: Option<JitFacts>,
    pub expect: CaseExpect,
}

impl GeneratedCase {
    fn new(
        name: String,
        principal: &CasePrincipal,
        (operation, jit, mfa): (OperationFacts, Option<JitFacts>, bool),
        effect: Effect,
    ) -> Self {
        GeneratedCase {
            name,
            principal: CasePrincipal {
                mfa,
                ..principal.clone()
            },
            operation,
            jit,
            expect: CaseExpect { effect },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CasePrincipal {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub mfa: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseExpect {
    pub effect: Effect,
}

#[derive(Serialize)]
struct CaseFile<'a> {
    case: &'a [GeneratedCase],
}

/// What [`recommend`] made and checked.
#[derive(Debug, Serialize)]
pub struct Recommendation {
    pub dir: PathBuf,
    pub changes: Vec<Change>,
    /// The recommended set's hash, once it validated.
    pub policy_set: String,
    pub cases: usize,
    pub passed: usize,
    pub failed: Vec<String>,
    /// Used operations no case shows (the running set allowed none of the
    /// tried contexts on the recorded resource, or none was recorded).
    pub used_not_shown: usize,
    /// Unused operations left without a case (beyond the cap per role,
    /// or not allowed by the running set in any tried context).
    pub unused_not_shown: usize,
    /// Unified diff of the running set's files against the recommended.
    pub diff: String,
}

/// Why a recommendation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists and is not empty; choose a new directory")]
    NotEmpty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecommendError + '_ {
    move |source| RecommendError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the recommendation for `review` into `out` (a new or empty
/// directory): the narrowed `*.cedar` files, `tests/recommended.toml`,
/// `diff.patch` and `changes.json`. The directory is written beside `out`
/// and renamed into place, so it is whole or absent.
pub fn recommend(
    review: &Review,
    usage: &Usage,
    running: &Engine,
    config: &PolicyConfig,
    ops: &super::Operations,
    out: &Path,
) -> Result<Recommendation, RecommendError> {
    if out.exists() && std::fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(RecommendError::NotEmpty(out.to_path_buf()));
    }
    // The schema's spelling of each known operation.
    let spelling: BTreeMap<String, &str> = ops
        .iter()
        .map(|(op, _)| (op.to_ascii_lowercase(), op.as_str()))
        .collect();
    let class_of: BTreeMap<String, &str> = ops
        .iter()
        .map(|(op, class)| (op.to_ascii_lowercase(), class.as_str()))
        .collect();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (permit, by_op) in &review.attributed {
        for op in by_op.keys() {
            if let Some(canonical) = spelling.get(&op.to_ascii_lowercase()) {
                used.entry(permit.clone())
                    .or_default()
                    .insert((*canonical).to_owned());
            }
        }
    }
    let header = format!(
        "Recommended by `warden access review` from the audit log ({}), {} to {}.\n\
         Every permit keeps only the operations it allowed in that period;\n\
         permits that allowed nothing are removed; forbids are unchanged.",
        review.source,
        review.period.from.format("%Y-%m-%d"),
        review.period.to.format("%Y-%m-%d"),
    );
    let narrowed = narrow::narrow(&config.dir, &used, &header)?;

    // Cases on the running set's terms.
    let mut cases = Vec::new();
    let mut used_not_shown = 0;
    let mut unused_not_shown = 0;
    for entitlement in &review.entitlements {
        let Some(principal) = case_principal(&entitlement.grantee) else {
            continue;
        };
        let mut samples = Vec::new();
        for op in entitlement.used.keys() {
            let sample = entitlement
                .permits
                .iter()
                .find_map(|id| usage.samples.get(&(id.clone(), op.clone())));
            let canonical = spelling.get(&op.to_ascii_lowercase());
            match (sample, canonical) {
                (Some(sample), Some(canonical)) => {
                    match allowed_case(running, &principal, canonical, sample) {
                        Some(context) => {
                            cases.push(GeneratedCase::new(
                                format!("{}: used {canonical}, still allowed", entitlement.grantee),
                                &principal,
                                context,
                                Effect::Allow,
                            ));
                            samples.push(sample.clone());
                        }
                        None => used_not_shown += 1,
                    }
                }
                _ => used_not_shown += 1,
            }
        }
        let (shown, left) = unused_cases(running, entitlement, &principal, &samples, &class_of);
        unused_not_shown += left;
        cases.extend(shown);
    }

    // Written beside `out`, then renamed into place.
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".recommended-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let dir = staging.path();
    for (name, text) in &narrowed.files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let tests = dir.join("tests");
    std::fs::create_dir_all(&tests).map_err(io(&tests))?;
    let cases_path = tests.join("recommended.toml");
    let toml = toml::to_string(&CaseFile { case: &cases }).expect("cases serialize");
    std::fs::write(&cases_path, toml).map_err(io(&cases_path))?;

    // Validated, and its cases run, before it is offered.
    let recommended_config = PolicyConfig {
        dir: dir.to_path_buf(),
        ..config.clone()
    };
    let recommended = Engine::load(&recommended_config, ops)?;
    let report: TestReport = crate::policy::run_tests(&recommended, &tests);
    let diff = diff(&config.dir, &narrowed)?;
    let patch = dir.join("diff.patch");
    std::fs::write(&patch, &diff).map_err(io(&patch))?;
    let changes_path = dir.join("changes.json");
    std::fs::write(
        &changes_path,
        serde_json::to_vec_pretty(&narrowed.changes).expect("JSON"),
    )
    .map_err(io(&changes_path))?;
    if out.exists() {
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    let kept = staging.keep();
    std::fs::rename(&kept, out).map_err(io(out))?;
    Ok(Recommendation {
        dir: out.to_path_buf(),
        changes: narrowed.changes,
        policy_set: recommended.hash(),
        cases: report.cases.len(),
        passed: report.passed(),
        failed: report
            .cases
            .iter()
            .filter(|c| !c.passed())
            .map(|c| format!("{}: {}", c.name, c.failures.join("; ")))
            .collect(),
        used_not_shown,
        unused_not_shown,
        diff,
    })
}

fn case_principal(grantee: &Grantee) -> Option<CasePrincipal> {
    match grantee {
        Grantee::Role(role) => Some(CasePrincipal {
            roles: vec![role.clone()],
            groups: Vec::new(),
            mfa: false,
        }),
        Grantee::Group(group) => Some(CasePrincipal {
            roles: Vec::new(),
            groups: vec![group.clone()],
            mfa: false,
        }),
        Grantee::Principal(_) | Grantee::Anyone => None,
    }
}

fn facts_of(op: &str, class: &str, sample: &Sample, resource_id: &str) -> OperationFacts {
    let mut facts: OperationFacts = serde_json::from_value(serde_json::json!({
        "azure_op": op,
        "class": class,
        "resource_id": resource_id,
    }))
    .expect("operation facts");
    facts.location.clone_from(&sample.location);
    facts.tags.clone_from(&sample.tags);
    facts
        .resource_group_tags
        .clone_from(&sample.resource_group_tags);
    facts
}

/// The first context in which the running set allows `principal` to run
/// `op` on the sample's resource: as is, with MFA, with MFA and a JIT
/// grant. `(facts, jit, mfa)`.
fn allowed_case(
    running: &Engine,
    principal: &CasePrincipal,
    op: &str,
    sample: &Sample,
) -> Option<(OperationFacts, Option<JitFacts>, bool)> {
    let facts = facts_of(op, &sample.class, sample, &sample.resource_id);
    first_allowed(running, principal, &facts).map(|(jit, mfa)| (facts, jit, mfa))
}

fn first_allowed(
    running: &Engine,
    principal: &CasePrincipal,
    facts: &OperationFacts,
) -> Option<(Option<JitFacts>, bool)> {
    super::first_allowed(
        running,
        |mfa| {
            crate::policy::PrincipalSpec {
                roles: principal.roles.clone(),
                groups: principal.groups.clone(),
                mfa,
                ..Default::default()
            }
            .principal()
        },
        facts,
    )
}

/// Cases for the unused operations of `entitlement` the running set
/// allows: on a resource of the operation's type in a resource group its
/// holders worked in. `(cases, operations left without one)`.
fn unused_cases(
    running: &Engine,
    entitlement: &EntitlementReview,
    principal: &CasePrincipal,
    samples: &[Sample],
    class_of: &BTreeMap<String, &str>,
) -> (Vec<GeneratedCase>, usize) {
    let fallback = Sample {
        class: String::new(),
        resource_id: "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/review"
            .into(),
        ..Sample::default()
    };
    let sample = samples.first().unwrap_or(&fallback);
    let group = super::usage::scope_of(&sample.resource_id);
    let mut cases = Vec::new();
    let mut left = 0;
    for op in &entitlement.unused {
        if cases.len() >= MAX_UNUSED_CASES {
            left += 1;
            continue;
        }
        let class = class_of
            .get(&op.to_ascii_lowercase())
            .copied()
            .unwrap_or("unknown");
        let resource = resource_for(op, &group);
        let facts = facts_of(op, class, sample, &resource);
        match first_allowed(running, principal, &facts) {
            Some((jit, mfa)) => cases.push(GeneratedCase::new(
                format!(
                    "{}: unused {op}, allowed by the running set, now denied",
                    entitlement.grantee
                ),
                principal,
                (facts, jit, mfa),
                Effect::Deny,
            )),
            None => left += 1,
        }
    }
    (cases, left)
}

/// A resource `op` acts on, in the resource group `group`.
fn resource_for(op: &str, group: &str) -> String {
    let kind = resource_type(op);
    if kind.eq_ignore_ascii_case("Microsoft.Resources/subscriptions") {
        return group.to_owned();
    }
    format!("{group}/providers/{kind}/review-target")
}

/// A unified diff of the running set's files against the recommended ones.
fn diff(dir: &Path, narrowed: &Narrowed) -> Result<String, RecommendError> {
    let mut out = String::new();
    for (name, text) in &narrowed.files {
        let path = dir.join(name);
        let running = std::fs::read_to_string(&path).map_err(io(&path))?;
        let diff = similar::TextDiff::from_lines(&running, text);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("running/{name}"), &format!("recommended/{name}"))
                .to_string(),
        );
    }
    Ok(out)
}
