//! Declarative policy tests (`policies/tests/*.toml`, `warden policy test`)
//! and the input of `warden policy explain`.
//!
//! A file holds `[[case]]` tables:
//!
//! ```toml
//! [[case]]
//! name = "developer restarts a VM in a dev-* resource group"
//! principal = { roles = ["Developer"], mfa = false }   # see PrincipalSpec
//! tool = "compute_vm_restart"                          # optional
//! arguments = { vmSize = "Standard_D2s_v3" }           # optional, → context.args
//! operation = { azure_op = "Microsoft.Compute/virtualMachines/restart/action", class = "action",
//!               resource_id = "/subscriptions/s1/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/vm1",
//!               tags = { env = "dev" },               # the resource's tags
//!               resource_group_tags = { env = "dev" } } # its group's; or operations = [ {...}, {...} ]
//! facts = "complete"                                   # optional: complete (default), partial, unavailable
//! jit = { grant_id = "g1", approver = "sec", expires = "2025-01-01T16:00:00Z" }  # optional
//! risk = { score = 10, level = "low" }                 # optional
//! now = "2025-01-01T12:00:00Z"                         # optional (tests default to this instant)
//! expect = { effect = "allow", policies = ["developer-custom-role"] }
//! ```
//!
//! A case describes its resources completely unless it says otherwise:
//! `facts` (`context.facts`) defaults to `complete`, so a case without
//! `tags` is a resource known to have none. Cases about what Warden does
//! when its lookup failed or found nothing set `facts = "unavailable"` or
//! `"partial"`.
//!
//! `expect` checks `effect`, and optionally `advice`, `policies` (the exact
//! set of determining policy ids), `alerts` (the exact set of alert names),
//! `errors` (whether evaluation failed) and `shadow_effect` (the decision
//! had the `@shadow` policies been enforced). Tests evaluate as if the
//! global shadow flag were off.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::decision::{Advice, Decision, Effect};
use super::engine::Engine;
use super::request::{CallContext, JitFacts, OperationFacts, RiskFacts};
use crate::facts::Completeness;
use crate::identity::{Principal, PrincipalKind};

/// `now` of a test case that does not set it, so results do not depend on
/// when tests run.
pub const DEFAULT_TEST_NOW: &str = "2025-01-01T12:00:00Z";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    case: Vec<Case>,
}

/// The caller of a case: the facts a validated token gives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalSpec {
    /// `user` (delegated token) or `application` (app-only).
    pub kind: PrincipalKindSpec,
    pub tid: String,
    pub oid: String,
    pub name: Option<String>,
    /// App roles (`roles` claim).
    pub roles: Vec<String>,
    /// Group object ids (`groups` claim).
    pub groups: Vec<String>,
    pub groups_overage: bool,
    /// Delegated scopes (`scp`).
    pub scopes: Vec<String>,
    pub client_app: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub mfa: bool,
    pub acrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKindSpec {
    #[default]
    User,
    Application,
}

impl Default for PrincipalSpec {
    fn default() -> Self {
        PrincipalSpec {
            kind: PrincipalKindSpec::User,
            tid: "00000000-0000-0000-0000-00000000000a".into(),
            oid: "00000000-0000-0000-0000-0000000000b1".into(),
            name: None,
            roles: Vec::new(),
            groups: Vec::new(),
            groups_overage: false,
            scopes: Vec::new(),
            client_app: None,
            source_ip: None,
            mfa: false,
            acrs: Vec::new(),
        }
    }
}

impl PrincipalSpec {
    pub fn principal(&self) -> Principal {
        let mut p = Principal::anonymous(self.source_ip);
        p.tid = self.tid.clone();
        p.oid = self.oid.clone();
        p.kind = match self.kind {
            PrincipalKindSpec::User => PrincipalKind::User,
            PrincipalKindSpec::Application => PrincipalKind::Application,
        };
        p.display_name = self.name.clone().unwrap_or_else(|| self.oid.clone());
        p.roles = self.roles.iter().cloned().collect();
        p.groups = self.groups.iter().cloned().collect();
        p.groups_overage = self.groups_overage;
        p.scopes = self.scopes.iter().cloned().collect();
        p.client_app = self.client_app.clone();
        p.mfa = self.mfa;
        p.acrs = self.acrs.iter().cloned().collect();
        p
    }
}

/// What a case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub effect: Effect,
    #[serde(default)]
    pub advice: Option<Advice>,
    #[serde(default)]
    pub policies: Option<Vec<String>>,
    #[serde(default)]
    pub alerts: Option<Vec<String>>,
    #[serde(default)]
    pub errors: Option<bool>,
    #[serde(default)]
    pub shadow_effect: Option<Effect>,
}

/// One call to decide, and what to expect of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub principal: PrincipalSpec,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default)]
    pub operation: Option<OperationFacts>,
    #[serde(default)]
    pub operations: Vec<OperationFacts>,
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    #[serde(default)]
    pub risk: Option<RiskFacts>,
    #[serde(default)]
    pub jit: Option<JitFacts>,
    #[serde(default)]
    pub session: Option<String>,
    /// `context.facts`; `complete` when not given (the case states the
    /// resources' facts).
    #[serde(default)]
    pub facts: Option<Completeness>,
    #[serde(default)]
    pub expect: Option<Expect>,
}

impl Case {
    /// The call of this case; `default_now` when it sets no `now`.
    pub fn request(
        &self,
        default_now: DateTime<Utc>,
    ) -> Result<(Principal, Vec<OperationFacts>, CallContext), String> {
        let operations: Vec<OperationFacts> = match (&self.operation, self.operations.is_empty()) {
            (Some(op), true) => vec![op.clone()],
            (None, false) => self.operations.clone(),
            (Some(_), false) => return Err("set `operation` or `operations`, not both".into()),
            (None, true) => return Err("the case has no `operation`".into()),
        };
        let tool = self.tool.clone().unwrap_or_else(|| "test-tool".into());
        let session = self
            .session
            .clone()
            .unwrap_or_else(|| "test-session".into());
        let mut call = CallContext::new(&tool, &session, self.now.unwrap_or(default_now));
        call.arguments = self.arguments.clone();
        call.risk = self.risk.clone();
        call.jit = self.jit.clone();
        call.facts = self.facts.unwrap_or(Completeness::Complete);
        Ok((self.principal.principal(), operations, call))
    }
}

/// Reads the `[[case]]` tables of a file.
pub fn read_cases(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: CaseFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file.case)
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// Empty when the case passed.
    pub failures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The outcome of a test run.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Hash of the policy set tested.
    pub policy_set: String,
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// Every case passed, and there was at least one.
    pub fn ok(&self) -> bool {
        !self.cases.is_empty() && self.failed() == 0
    }
}

/// Runs every case of every `*.toml` file in `dir` against the engine's
/// policy set. Unreadable files and cases without `expect` are failures.
pub fn run_tests(engine: &Engine, dir: &Path) -> TestReport {
    let mut report = TestReport {
        policy_set: engine.hash(),
        cases: Vec::new(),
    };
    let failure = |file: &Path, message: String| CaseResult {
        file: file.to_path_buf(),
        name: String::new(),
        failures: vec![message],
        decision: None,
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect(),
        Err(e) => {
            report
                .cases
                .push(failure(dir, format!("cannot read the test directory: {e}")));
            return report;
        }
    };
    files.sort();
    let default_now = DEFAULT_TEST_NOW
        .parse::<DateTime<Utc>>()
        .unwrap_or_else(|_| Utc::now());
    for file in files {
        let cases = match read_cases(&file) {
            Ok(cases) if cases.is_empty() => {
                report
                    .cases
                    .push(failure(&file, "no [[case]] in the file".into()));
                continue;
            }
            Ok(cases) => cases,
            Err(e) => {
                report.cases.push(failure(&file, e));
                continue;
            }
        };
        for (i, case) in cases.iter().enumerate() {
            let name = if case.name.is_empty() {
                format!("case {}", i + 1)
            } else {
                case.name.clone()
            };
            let mut result = CaseResult {
                file: file.clone(),
                name,
                failures: Vec::new(),
                decision: None,
            };
            match (case.request(default_now), &case.expect) {
                (Err(e), _) => result.failures.push(e),
                (Ok(_), None) => result.failures.push("the case has no `expect`".into()),
                (Ok((principal, operations, call)), Some(expect)) => {
                    let decision = engine.authorize_enforcing(&principal, &operations, &call);
                    result.failures = check(expect, &decision);
                    result.decision = Some(decision);
                }
            }
            report.cases.push(result);
        }
    }
    report
}

/// How `decision` differs from `expect`.
fn check(expect: &Expect, decision: &Decision) -> Vec<String> {
    let mut failures = Vec::new();
    let got = || {
        format!(
            "(got {}, advice {}, policies {:?}, errors {:?})",
            decision.effect().as_str(),
            decision.advice().map_or("none", Advice::as_str),
            decision.policies(),
            decision.errors()
        )
    };
    if decision.effect() != expect.effect {
        failures.push(format!(
            "effect: expected {} {}",
            expect.effect.as_str(),
            got()
        ));
    }
    if let Some(advice) = expect.advice
        && decision.advice() != Some(advice)
    {
        failures.push(format!("advice: expected {} {}", advice.as_str(), got()));
    }
    if let Some(policies) = &expect.policies {
        let want: BTreeSet<&String> = policies.iter().collect();
        let have: BTreeSet<&String> = decision.policies().iter().collect();
        if want != have {
            failures.push(format!("policies: expected {policies:?} {}", got()));
        }
    }
    if let Some(alerts) = &expect.alerts {
        let want: BTreeSet<&String> = alerts.iter().collect();
        let have: BTreeSet<&String> = decision.alerts().iter().map(|a| &a.alert).collect();
        if want != have {
            failures.push(format!("alerts: expected {alerts:?}, got {have:?}"));
        }
    }
    if let Some(errors) = expect.errors
        && errors == decision.errors().is_empty()
    {
        failures.push(format!(
            "errors: expected {}, got {:?}",
            if errors { "some" } else { "none" },
            decision.errors()
        ));
    }
    if let Some(effect) = expect.shadow_effect {
        let have = decision.shadow().map(|s| s.outcome().effect());
        if have != Some(effect) {
            failures.push(format!(
                "shadow_effect: expected {}, got {:?}",
                effect.as_str(),
                have.map(Effect::as_str)
            ));
        }
    }
    failures
}
