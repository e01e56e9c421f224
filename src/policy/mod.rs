//! Cedar authorization (docs/ARCHITECTURE.md, the Cedar model): load and strictly validate the
//! policy set, hot-reload it atomically, decide calls, filter `tools/list`.
//!
//! # API
//!
//! - [`PolicyConfig`] — the `[policy]` table of `warden.toml`.
//! - [`Engine::load`]`(&config, known_operations)` — `known_operations` are
//!   the catalog's `(azure_op, class)` pairs. Fails with a [`PolicyError`]
//!   naming file and line.
//! - [`Engine::reload`] / [`Engine::reload_with_operations`] — re-read and
//!   swap atomically; on error the running set is kept. Both return the
//!   [`Summary`] (hash, files, policies, warnings) for the `policy_load`
//!   audit record; [`Engine::hash`] is the running set's hash.
//! - [`Engine::authorize`]`(&principal, &[OperationFacts], &CallContext)`
//!   → [`Decision`] (serde; it is the audit record's `decision`).
//! - [`Engine::could_be_allowed`]`(&principal, [(azure_op, class)])` — the
//!   `tools/list` filter.
//! - [`Engine::explain`], [`validate`], [`run_tests`] — `warden policy
//!   explain|validate|test`.
//!
//! # Entities
//!
//! The schema is `schemas/warden.cedarschema` (built into the binary;
//! `[policy] schema` overrides it).
//!
//! - **Principals**: `User` (delegated token) or `ServicePrincipal`
//!   (app-only), id `"<tid>/<oid>"`, attributes `tid`, `oid`,
//!   `display_name` (never decide on it), `groups_overage`, `scopes` (users).
//!   A principal is `in` `Group::"<object id>"` for each group of its token,
//!   and `in` `AppRole::"<role>"` for each app role: the token's `roles`,
//!   plus roles conferred by Entra group membership through
//!   `[policy.roles]` (`Developer = ["<group object id>", ...]`). Policies
//!   name roles, not group ids: `principal in AppRole::"Developer"`. App
//!   roles are the recommended source (stable names, assigned on the
//!   enterprise app, never lost to groups overage); the mapping serves
//!   organisations that manage access with groups. Under groups overage the
//!   token has no groups, so group-conferred roles are absent (deny).
//! - **Resources**: `Tenant ⊃ ManagementGroup ⊃ Subscription ⊃
//!   ResourceGroup ⊃ Resource` (a nested resource is also in its parent
//!   resource), ids are lower-cased ARM ids (`Tenant::"/"`). The request's
//!   resource is the operation's narrowest known scope; every scope
//!   containing it is in the entity store, so `resource in
//!   ResourceGroup::"/subscriptions/s1/resourcegroups/dev-web"` works.
//!   Every scope type has `name`, `resource_type`, and optional
//!   `subscription_id`, `resource_group`, `location` (all lower-cased),
//!   `rg` (the `ResourceGroup` entity the scope is in), and tags (keys and
//!   values lower-cased): the operation's `tags` and `location` on the
//!   targeted scope and the resources it is nested in, its
//!   `resource_group_tags` on the resource group.
//!   Which management group holds a subscription comes from
//!   `[policy.management_groups]`.
//! - **Context**: `now`, `mfa`, `acrs`, `source_ip?`, `client_app?`,
//!   `tool`, `facts` (`complete`, `partial` or `unavailable`: how much the
//!   facts stage found of the call's resources; [`CallContext::new`] says
//!   `unavailable`), `args`, `risk?` (the risk stage), `jit?` (the grant
//!   covering the call, from the approvals stage), `session`. `args` holds the call
//!   arguments whose name matches an attribute of the schema's `Args` type
//!   ignoring case, `_` and `-` (`vmSize` fills `args.vm_size`), strings
//!   lower-cased; to let policies test another argument, declare it in
//!   `Args`. An argument of the wrong type denies the call.
//!
//! # Actions
//!
//! Actions are Azure RBAC operation strings, declared in the schema:
//!
//! - the static file declares the class groups `read`, `write`, `delete`,
//!   `action`, `privileged`, `unknown`, and the operations policies name
//!   (the policy vocabulary, so policies validate whatever the catalog
//!   holds);
//! - at load the engine adds the catalog's operations (`known_operations`,
//!   in the class groups the catalog gives them), and Azure wildcard
//!   groups: `"A/b/c"` is in `"A/b/*"`, which is in `"A/*"`; so `action in
//!   Action::"Microsoft.Compute/virtualMachines/*"` means what it means in
//!   an Azure custom role. Operation names match ignoring case (the static
//!   file's spelling wins). A policy naming an undeclared operation or group
//!   fails validation (typos are caught).
//! - the class is a fact of each call, not of the operation (the catalog
//!   makes a VM write `privileged` when it sets a password): a request's
//!   action entity is built per call, in the class group of the call's
//!   class, its wildcard groups, and any other group the schema declares
//!   for it.
//! - an operation unknown to the schema (the catalog's synthetic
//!   `Warden/tools/<tool>/<class>`, or one learnt after load) is evaluated
//!   the same way: class and wildcard policies apply (the baseline denies
//!   class `unknown`); no policy can name it, and its request is not
//!   schema-validated (the context and entities are the same as for
//!   declared operations, which are; the schema is checked against what
//!   Warden builds at every load).
//!
//! # Policies
//!
//! `<dir>/*.cedar` (not recursive). Every policy has `@id("...")` (unique;
//! it is the id in decisions and the audit log). `@advice("step_up" |
//! "require_approval" | "deny")` on a forbid says what a deny by it asks of
//! the pipeline (default `deny`). `@shadow` makes a policy evaluated and
//! recorded but not enforced; `[policy] shadow = true` does so for the
//! whole set. `@alert("<name>")` raises an alert whenever the policy is
//! satisfied, whatever the decision (break-glass use). `@description` is
//! free text. Other annotations are warned about. The set is strictly
//! validated against the schema; every problem is reported with file and
//! line, and an invalid set never replaces the running one. The policy-set
//! hash is SHA-256 over the files' names and bytes, sorted by name.
//!
//! # Decisions
//!
//! Fail closed, by construction: a request that cannot be built (bad
//! resource id, argument of the wrong type, unknown class, resource facts
//! contradicting the id), any policy evaluation error, and any error the
//! pipeline adds with [`Decision::fail`] (the call's resources cannot be
//! resolved) deny with advice `deny` and the reason in `errors`, whatever
//! the policy set says. A [`Decision`]'s fields are private and every way
//! of making one keeps this rule, so no decision says `allow` while it
//! carries an error. Under the global shadow flag policies are not
//! enforced, but a request that cannot be built still denies; what the
//! policies would have decided, with their evaluation errors, is in
//! `shadow`. A call is allowed iff all its operations are. On a deny
//! the advice is `deny` when no permit applies (neither step-up nor
//! approval can help), else the strongest `@advice` of the forbids that
//! applied (`deny` > `step_up` > `require_approval`). Alerts come from
//! satisfied `@alert` policies, whatever the decision. `shadow` records
//! what the shadowed policies (or, under the global flag, all policies)
//! would have decided.
//!
//! # `tools/list`
//!
//! See [`Engine::could_be_allowed`]: partial evaluation with resource and
//! context unknown, plus a residual check, per operation.
//!
//! # Wiring
//!
//! - Start: `Engine::load(&config.policy, &ops)` with `ops` the catalog's
//!   `actions()` flattened to `(azure_op, class.as_str())` pairs; write a
//!   `policy_load` audit record with the [`Summary`]. Reload (SIGHUP, admin
//!   API) the same way; a failed reload is logged and the old set runs on.
//! - Stage 4: each `catalog::Operation` (its resource placed by the facts
//!   stage) becomes an [`OperationFacts`] (`resource.id` → `resource_id`,
//!   `class.as_str()`; tags, location and the group's tags from the facts
//!   stage), the call a [`CallContext`] (`facts` the least complete
//!   operation's, `risk` after stage 3, `jit` once approvals found a
//!   grant). On deny: `advice` `step_up` → claims
//!   challenge or tool error, `require_approval` → JIT request (then
//!   re-authorize with the grant), `deny` → refuse. `alerts` are signalled
//!   whatever the effect. The [`Decision`] is the audit record's
//!   `decision`.

mod actions;
mod cases;
mod closed;
mod context;
mod decision;
mod engine;
mod error;
pub mod exclude;
mod memo;
pub mod narrow;
mod request;
mod residual;
mod schema;
mod scope;
mod slice;
mod source;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cases::{
    Case, CaseResult, DEFAULT_TEST_NOW, Expect, PrincipalKindSpec, PrincipalSpec, TestReport,
    read_cases, run_tests,
};
pub use decision::{Advice, Alert, Decision, Effect, OperationDecision, Outcome, Shadow};
pub use engine::{
    Engine, Entitlements, ExplainedPolicy, ExplainedRequest, Explanation, Staged, Summary, validate,
};
pub use error::{PolicyError, Problem};
pub use request::{CallContext, JitFacts, OperationFacts, RiskFacts};
pub use schema::{CLASSES, class_of};
pub use source::{PolicyInfo, fingerprint, hash_files};

/// `schemas/warden.cedarschema`, built in: the schema used when
/// `[policy] schema` is not set.
pub const BUILTIN_SCHEMA: &str = include_str!("../../schemas/warden.cedarschema");

/// `[policy]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of the `*.cedar` policy files (its `tests/` holds the
    /// policy tests).
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// A Cedar-format schema file replacing the built-in one.
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// Evaluate and record decisions, but enforce no policy: every call is
    /// allowed unless it cannot be evaluated (see "Decisions" in the
    /// module documentation).
    #[serde(default)]
    pub shadow: bool,
    /// App roles conferred by Entra group membership: role name → group
    /// object ids.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// The management-group tree (not in ARM ids): name → parent and
    /// subscriptions.
    #[serde(default)]
    pub management_groups: BTreeMap<String, ManagementGroupConfig>,
    /// How often the policy files are checked for changes (a changed set
    /// is reloaded as on SIGHUP); `0s` checks only on SIGHUP.
    #[serde(default = "default_watch_interval", with = "humantime_serde")]
    pub watch_interval: Duration,
    /// Change management (docs/POLICY-CHANGES.md): only a set a second
    /// security manager approved is loaded. A reload (SIGHUP, a file
    /// change) of any other set is refused and recorded, and so is a start
    /// on one, unless no set was ever approved (a first deployment) or
    /// break glass loaded it. Off by default (`warden dev`, tests).
    #[serde(default)]
    pub require_approval: bool,
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(2)
}

impl PolicyConfig {
    /// Makes `dir` and `schema` relative to `base` (the config file's folder).
    pub fn resolve(&mut self, base: &Path) {
        if self.dir.is_relative() {
            self.dir = base.join(&self.dir);
        }
        if let Some(schema) = &mut self.schema
            && schema.is_relative()
        {
            *schema = base.join(&*schema);
        }
    }

    /// Checks what does not need the files (those are checked at load).
    pub fn validate(&self) -> Result<(), String> {
        if self.dir.as_os_str().is_empty() {
            return Err("policy.dir: must name a directory of *.cedar files".into());
        }
        if !self.watch_interval.is_zero() && self.watch_interval < Duration::from_millis(100) {
            return Err("policy.watch_interval: must be 0s (off) or at least 100ms".into());
        }
        Ok(())
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("policies")
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: default_dir(),
            schema: None,
            shadow: false,
            roles: BTreeMap::new(),
            management_groups: BTreeMap::new(),
            watch_interval: default_watch_interval(),
            require_approval: false,
        }
    }
}

/// One management group of `[policy.management_groups]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementGroupConfig {
    /// The parent management group; none: directly under the tenant root.
    #[serde(default)]
    pub parent: Option<String>,
    /// Subscription ids directly in this management group.
    #[serde(default)]
    pub subscriptions: Vec<String>,
}
