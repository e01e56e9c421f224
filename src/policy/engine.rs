//! The engine: a validated policy set behind an atomic pointer, and the
//! evaluation of calls against it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision as CedarDecision, Effect as CedarEffect,
    Entities, Entity, EntityUid, PolicyId, PolicySet, Request, ValidationMode, Validator,
};
use cedar_policy_core::entities::Entities as CoreEntities;
use serde::Serialize;
use serde_json::Value;

use super::actions::Actions;
use super::closed::Closed;
use super::context;
use super::decision::{Advice, Alert, Decision, Effect, OperationDecision, Outcome, Shadow};
use super::error::{PolicyError, Problem};
use super::memo::{Key, Memo};
use super::request::{
    self, CallContext, JitFacts, OperationFacts, ResourceChain, RiskFacts, RolesByGroup, Types,
};
use super::residual;
use super::schema::{self, SchemaParts};
use super::scope::Hierarchy;
use super::slice::{Scope, Slicer};
use super::source::{self, PolicyInfo};
use super::{BUILTIN_SCHEMA, PolicyConfig};
use crate::identity::{Principal, PrincipalKind};

/// What a successful load found: recorded as the `policy_load` audit
/// record's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The policy-set hash (see [`hash_files`](super::hash_files)).
    pub hash: String,
    pub dir: PathBuf,
    /// The schema file, or `built-in`.
    pub schema: String,
    /// The `*.cedar` files, sorted.
    pub files: Vec<PathBuf>,
    pub policies: Vec<PolicyInfo>,
    /// Operations declared in the schema (the static file's and the
    /// catalog's).
    pub operations: usize,
    /// Validator warnings (e.g. a policy that can never apply) and unknown
    /// annotations; the set is loaded regardless.
    pub warnings: Vec<String>,
}

/// What [`Engine::entitlements`] finds a principal holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlements {
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

/// A validated policy set, not yet running (see [`Engine::stage`]).
pub struct Staged(Compiled);

impl Staged {
    /// What the set holds (the `policy_load` audit record's details).
    pub fn summary(&self) -> &Summary {
        &self.0.summary
    }
}

/// Policies of one kind of evaluation, whole (for validation and partial
/// evaluation), and split into permits and forbids: a decision evaluates
/// each half on its own, which tells "a forbid denied" from "no permit
/// applied" without evaluating anything twice.
pub(crate) struct Sets {
    all: PolicySet,
    permits: PolicySet,
    forbids: PolicySet,
    /// The same policies by scope: what a decision evaluates.
    slicer: Slicer,
}

impl Sets {
    fn of<'a>(
        policies: impl Iterator<Item = &'a cedar_policy::Policy> + Clone,
    ) -> Result<Self, String> {
        let mut all = PolicySet::new();
        let mut permits = PolicySet::new();
        let mut forbids = PolicySet::new();
        for p in policies.clone() {
            let half = match p.effect() {
                CedarEffect::Permit => &mut permits,
                CedarEffect::Forbid => &mut forbids,
            };
            half.add(p.clone()).map_err(|e| e.to_string())?;
            all.add(p.clone()).map_err(|e| e.to_string())?;
        }
        Ok(Sets {
            all,
            permits,
            forbids,
            slicer: Slicer::new(policies),
        })
    }
}

/// A loaded, validated policy set with its schema.
pub(crate) struct Compiled {
    pub summary: Summary,
    parts: SchemaParts,
    types: Types,
    /// The policies enforced: all but `@shadow` ones.
    enforced: Sets,
    /// All policies, when some are `@shadow`.
    full: Option<Sets>,
    info: HashMap<String, PolicyInfo>,
    /// The actions of the operations decided so far.
    actions: Actions,
    /// The principals decided so far, and the entity stores of their
    /// requests (see [`memo`](super::memo)).
    principals: Memo<PrincipalEntities>,
    stores: Memo<Store>,
    /// The scopes above the described resources of the stores built so
    /// far, closed (see [`closed`](super::closed)).
    scopes: Memo<Closed>,
    /// Stores of a principal's, an action's and closed scopes' entities,
    /// which stores on resources below those scopes extend.
    bases: Memo<CoreEntities>,
    /// The (operation, principal type, resource type, context shape)
    /// combinations Cedar validated against the schema.
    valid: Memo<()>,
}

/// Principals a set keeps per generation (at most twice that in all).
const MAX_PRINCIPALS: usize = 2048;
/// Entity stores a set keeps per generation (each a dozen or two
/// entities; at most twice that in all).
const MAX_STORES: usize = 1024;
/// Closed scopes above resources a set keeps per generation (one per
/// resource group and its tags, in the main).
const MAX_SCOPES: usize = 1024;
/// Base stores a set keeps per generation (one per principal, action and
/// resource group in use).
const MAX_BASES: usize = 1024;

/// Validated request shapes a set keeps per generation (a few per
/// operation in use).
const MAX_SHAPES: usize = 4096;

/// Loads, parses and strictly validates the policy set of `config`.
pub(crate) fn compile(
    config: &PolicyConfig,
    known_operations: &[(String, String)],
) -> Result<Compiled, PolicyError> {
    let (schema_file, schema_label, schema_source) = match &config.schema {
        Some(path) => (
            path.clone(),
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
                path: path.clone(),
                source,
            })?,
        ),
        None => (
            PathBuf::from("schemas/warden.cedarschema"),
            "built-in".to_owned(),
            BUILTIN_SCHEMA.to_owned(),
        ),
    };
    let parts = schema::build(&schema_file, &schema_source, known_operations)?;
    let types = Types::new().map_err(|message| PolicyError::Schema {
        file: schema_file.clone(),
        message,
    })?;
    self_check(&parts, &types).map_err(|message| PolicyError::Schema {
        file: schema_file.clone(),
        message: format!("it does not describe the requests Warden builds: {message}"),
    })?;

    let sources = source::read_dir(&config.dir)?;
    let info: HashMap<String, PolicyInfo> = sources
        .policies
        .iter()
        .map(|(_, i)| (i.id.clone(), i.clone()))
        .collect();
    let located = |id: &str, message: String| {
        let i = info.get(id);
        Problem {
            file: i.map(|i| i.file.clone()).unwrap_or_default(),
            line: i.map_or(0, |i| i.line),
            policy: Some(id.to_owned()),
            message,
        }
    };
    // Ids are unique by now, so adding cannot fail; report it if it does.
    let set_error = |message: String| {
        PolicyError::Invalid(vec![Problem {
            file: config.dir.clone(),
            line: 0,
            policy: None,
            message,
        }])
    };
    let full = Sets::of(sources.policies.iter().map(|(p, _)| p)).map_err(set_error)?;
    let result = Validator::new(parts.schema.clone()).validate(&full.all, ValidationMode::Strict);
    let problems: Vec<Problem> = result
        .validation_errors()
        .map(|e| located(e.policy_id().as_ref(), e.to_string()))
        .collect();
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    let mut warnings = sources.warnings;
    warnings.extend(
        result
            .validation_warnings()
            .map(|w| located(w.policy_id().as_ref(), w.to_string()).to_string()),
    );

    let shadowed = sources.policies.iter().any(|(_, i)| i.shadow);
    let (enforced, full) = if shadowed {
        let enforced = Sets::of(
            sources
                .policies
                .iter()
                .filter(|(_, i)| !i.shadow)
                .map(|(p, _)| p),
        )
        .map_err(set_error)?;
        if enforced.all.is_empty() {
            warnings.push("every policy is @shadow: every call is denied".into());
        }
        (enforced, Some(full))
    } else {
        (full, None)
    };

    let summary = Summary {
        hash: sources.hash,
        dir: config.dir.clone(),
        schema: schema_label,
        files: sources.files,
        policies: sources.policies.into_iter().map(|(_, i)| i).collect(),
        operations: parts.actions.operations(),
        warnings,
    };
    Ok(Compiled {
        summary,
        parts,
        types,
        enforced,
        full,
        info,
        actions: Actions::default(),
        principals: Memo::new(MAX_PRINCIPALS),
        stores: Memo::new(MAX_STORES),
        scopes: Memo::new(MAX_SCOPES),
        bases: Memo::new(MAX_BASES),
        valid: Memo::new(MAX_SHAPES),
    })
}

/// Checks that the schema's entity types and context accept what
/// [`request`] builds, so that a schema edit cannot make every request
/// fail at run time.
fn self_check(parts: &SchemaParts, types: &Types) -> Result<(), String> {
    use std::collections::BTreeMap;

    let mut user = Principal::anonymous(Some([192, 0, 2, 1].into()));
    user.groups.insert("g1".into());
    user.roles.insert("Reader".into());
    user.scopes.insert("access_as_user".into());
    user.client_app = Some("app".into());
    user.acrs.insert("c1".into());
    let mut app = Principal::anonymous(None);
    app.kind = PrincipalKind::Application;
    let mut entities: Vec<Entity> = Vec::new();
    for p in [&user, &app] {
        let (_, e) = request::principal_entities(types, p, &RolesByGroup::new())?;
        entities.extend(e);
    }
    let mut op = OperationFacts::new(
        "A/b/read",
        "read",
        "/subscriptions/s/resourcegroups/rg/providers/a.b/c/d",
    );
    op.location = Some("westeurope".into());
    op.tags = BTreeMap::from([("env".into(), "dev".into())]);
    op.resource_group_tags = BTreeMap::from([("env".into(), "dev".into())]);
    let hierarchy = Hierarchy::default();
    let (resource, _, e) = request::resource_entities(types, &op, &hierarchy)?;
    entities.extend(e.into_iter().map(Entity::from));
    let mg = OperationFacts::new(
        "A/b/read",
        "read",
        "/providers/microsoft.management/managementgroups/m",
    );
    entities.extend(
        request::resource_entities(types, &mg, &hierarchy)?
            .2
            .into_iter()
            .map(Entity::from),
    );
    let entities: HashMap<EntityUid, Entity> = entities.into_iter().map(|e| (e.uid(), e)).collect();
    Entities::from_entities(entities.into_values(), Some(&parts.schema))
        .map_err(|e| e.to_string())?;

    // A declared operation (there may be none) checks the context type.
    let Some(declared) = parts.actions.any_operation() else {
        return Ok(());
    };
    let mut full = CallContext::new("t", "s", chrono::Utc::now());
    full.user_agent = Some("ua".into());
    full.arguments = Some(serde_json::json!({ "ignored": 1 }));
    full.risk = Some(RiskFacts {
        score: 1,
        level: "low".into(),
        reasons: vec!["new_ip".into()],
    });
    full.jit = Some(JitFacts {
        grant_id: "g".into(),
        approver: "a".into(),
        expires: chrono::Utc::now(),
        role: Some("Owner".into()),
        scope: Some("/".into()),
        approvers: vec!["a".into()],
        operations: vec!["privileged".into()],
    });
    let minimal = CallContext::new("t", "s", chrono::Utc::now());
    for (principal, call) in [(&user, &full), (&app, &minimal)] {
        let (p, _) = request::principal_entities(types, principal, &RolesByGroup::new())?;
        let (context, _) = context::build(principal, call, &parts.args)?;
        Request::new(
            p,
            types.action(&declared)?,
            resource.clone(),
            context,
            Some(&parts.schema),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A request ready for Cedar.
struct Built {
    request: Request,
    /// Its entities and resource.
    store: Arc<Store>,
    /// What the request's slice of a set depends on.
    scope: Scope,
}

/// One evaluation of a call against one set of policies.
struct Evaluation {
    outcome: Outcome,
    errors: Vec<String>,
    alerts: Vec<Alert>,
}

/// The per-call facts shared by its operations.
struct Prepared {
    principal: Arc<PrincipalEntities>,
    /// The inputs of `principal` (the start of its stores' keys).
    principal_key: Key,
    context: Context,
    /// The context's shape (`None`: validated on every request).
    shape: Option<Key>,
}

/// A principal as Cedar sees it.
struct PrincipalEntities {
    uid: EntityUid,
    /// The principal entity, then its groups and roles.
    entities: Vec<Entity>,
    /// The same, closed (a part of its stores).
    closed: Closed,
    /// The uids of its groups and roles, sorted (part of a slice's key).
    parents: Vec<EntityUid>,
}

/// The entities of one request (principal, action, resource), and its
/// resource.
struct Store {
    entities: Entities,
    resource_uid: EntityUid,
    resource: String,
}

/// Every input of [`request::principal_entities`] but the set's constants.
fn principal_key(principal: &Principal) -> Key {
    let mut key = Key::default();
    key.str(match principal.kind {
        PrincipalKind::User => "user",
        PrincipalKind::Application => "application",
    })
    .str(&principal.tid)
    .str(&principal.oid)
    .str(&principal.display_name)
    .flag(principal.groups_overage)
    .strs(principal.groups.iter())
    .strs(principal.roles.iter())
    .strs(principal.scopes.iter());
    key
}

/// What an operation's action is built from.
fn operation_action_key(op: &OperationFacts) -> Key {
    let mut key = Key::default();
    key.str(&op.azure_op).str(&op.class);
    key
}

/// Every input of an operation's action and resource entities.
fn operation_key(op: &OperationFacts) -> Key {
    let mut key = operation_action_key(op);
    key.str(&op.resource_id)
        .opt(op.subscription.as_deref())
        .opt(op.resource_group.as_deref())
        .opt(op.resource_type.as_deref())
        .opt(op.name.as_deref())
        .opt(op.location.as_deref())
        .map(&op.tags)
        .map(&op.resource_group_tags);
    key
}

/// The policy engine. Cheap to share (`Arc<Engine>`); evaluation never
/// blocks on a reload.
pub struct Engine {
    config: PolicyConfig,
    hierarchy: Hierarchy,
    roles_by_group: RolesByGroup,
    operations: Mutex<Vec<(String, String)>>,
    current: ArcSwap<Compiled>,
    reloading: Mutex<()>,
    authorizer: Authorizer,
    /// Decisions evaluate slices of the set (off only where tests compare
    /// them with the whole set).
    slicing: std::sync::atomic::AtomicBool,
    /// Decisions reuse the principals and entity stores built before (off
    /// only where tests compare them with fresh builds).
    memo: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("dir", &self.config.dir)
            .field("hash", &self.hash())
            .finish_non_exhaustive()
    }
}

/// `[policy.roles]` inverted: group object id → roles.
pub(crate) fn roles_by_group(config: &PolicyConfig) -> Result<RolesByGroup, PolicyError> {
    let mut map = RolesByGroup::new();
    for (role, groups) in &config.roles {
        let key = format!("roles.{role}");
        if role.trim().is_empty() {
            return Err(PolicyError::Config {
                key,
                message: "a role name cannot be empty".into(),
            });
        }
        for group in groups {
            if group.trim().is_empty() {
                return Err(PolicyError::Config {
                    key,
                    message: "a group object id cannot be empty".into(),
                });
            }
            map.entry(group.trim().to_ascii_lowercase())
                .or_default()
                .push(role.clone());
        }
    }
    Ok(map)
}

impl Engine {
    /// Loads and validates the policy set. `known_operations` are the
    /// catalog's `(azure_op, class)` pairs; they are declared as actions
    /// (see "Actions" in the [module documentation](super)).
    pub fn load(
        config: &PolicyConfig,
        known_operations: &[(String, String)],
    ) -> Result<Self, PolicyError> {
        let hierarchy = Hierarchy::from_config(&config.management_groups)?;
        let roles_by_group = roles_by_group(config)?;
        let compiled = compile(config, known_operations)?;
        Ok(Engine {
            config: config.clone(),
            hierarchy,
            roles_by_group,
            operations: Mutex::new(known_operations.to_vec()),
            current: ArcSwap::from_pointee(compiled),
            reloading: Mutex::new(()),
            authorizer: Authorizer::new(),
            slicing: std::sync::atomic::AtomicBool::new(true),
            memo: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn slicing(&self) -> bool {
        self.slicing.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Evaluates the whole set for every decision (`false`) or slices of it
    /// (`true`, the default): for comparing the two.
    #[doc(hidden)]
    pub fn set_slicing(&self, on: bool) {
        self.slicing.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn memo(&self) -> bool {
        self.memo.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Builds every request's principal and entities afresh (`false`) or
    /// reuses what the set built for the same inputs (`true`, the default):
    /// for comparing the two.
    #[doc(hidden)]
    pub fn set_memo(&self, on: bool) {
        self.memo.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The arguments the running schema lets policies test
    /// (`context.args`), as names with ASCII case, `_` and `-` removed: the
    /// decision inputs a reviewer is shown.
    pub fn decision_inputs(&self) -> Vec<String> {
        self.current
            .load()
            .parts
            .args
            .iter()
            .map(|spec| spec.key.clone())
            .collect()
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The app roles `principal` holds for decisions (the token's, and
    /// those `[policy.roles]` confers on its groups) and the groups that
    /// confer some, both sorted: what its intent records name.
    pub fn entitlements(&self, principal: &Principal) -> Entitlements {
        let mut roles: std::collections::BTreeSet<String> = principal.roles.clone();
        let mut groups = std::collections::BTreeSet::new();
        for group in &principal.groups {
            if let Some(conferred) = self.roles_by_group.get(&group.to_ascii_lowercase()) {
                roles.extend(conferred.iter().cloned());
                groups.insert(group.clone());
            }
        }
        Entitlements {
            roles: roles.into_iter().collect(),
            groups: groups.into_iter().collect(),
        }
    }

    /// The hash of the running policy set.
    pub fn hash(&self) -> String {
        self.current.load().summary.hash.clone()
    }

    /// What the running set was loaded from.
    pub fn summary(&self) -> Summary {
        self.current.load().summary.clone()
    }

    /// Re-reads the policy files (and schema) and swaps the new set in
    /// atomically. On error the running set stays, untouched.
    pub fn reload(&self) -> Result<Summary, PolicyError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.swap(self.stage()?.0)
    }

    /// Re-reads and validates the policy files without running them: the
    /// caller records the [`Staged::summary`] (the `policy_load` audit
    /// record) and then [`Engine::install`]s it, so that no decision is
    /// made by a set the log does not know.
    pub fn stage(&self) -> Result<Staged, PolicyError> {
        let operations = self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Ok(Staged(compile(&self.config, &operations)?))
    }

    /// Runs a set from [`Engine::stage`] from the next decision on.
    pub fn install(&self, staged: Staged) -> Summary {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let summary = staged.0.summary.clone();
        self.current.store(Arc::new(staged.0));
        summary
    }

    /// Like [`Engine::reload`], with a new set of known operations (the
    /// catalog changed); kept for later reloads only if the load succeeds.
    pub fn reload_with_operations(
        &self,
        known_operations: &[(String, String)],
    ) -> Result<Summary, PolicyError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let summary = self.swap(compile(&self.config, known_operations)?)?;
        *self
            .operations
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = known_operations.to_vec();
        Ok(summary)
    }

    fn swap(&self, compiled: Compiled) -> Result<Summary, PolicyError> {
        let summary = compiled.summary.clone();
        self.current.store(Arc::new(compiled));
        Ok(summary)
    }

    /// Decides a call: allowed iff every operation is. Never fails: a call
    /// that cannot be evaluated is denied, with the reason in `errors`.
    /// Under the global shadow flag the call is allowed and the decision
    /// the policies made is in `shadow`.
    pub fn authorize(
        &self,
        principal: &Principal,
        operations: &[OperationFacts],
        call: &CallContext,
    ) -> Decision {
        self.decide(
            &self.current.load(),
            principal,
            operations,
            call,
            self.config.shadow,
        )
    }

    /// [`Engine::authorize`] ignoring the global shadow flag (policy tests
    /// check what the policies decide, not how they are deployed).
    pub(crate) fn authorize_enforcing(
        &self,
        principal: &Principal,
        operations: &[OperationFacts],
        call: &CallContext,
    ) -> Decision {
        self.decide(&self.current.load(), principal, operations, call, false)
    }

    fn decide(
        &self,
        c: &Compiled,
        principal: &Principal,
        operations: &[OperationFacts],
        call: &CallContext,
        global_shadow: bool,
    ) -> Decision {
        let hash = &c.summary.hash;
        if operations.is_empty() {
            return Decision::error(hash, "the call resolved to no Azure operation");
        }
        let built: Vec<Result<Built, String>> = match self.prepare(c, principal, call) {
            Ok(prepared) => operations
                .iter()
                .map(|op| self.build(c, &prepared, op))
                .collect(),
            Err(e) => operations.iter().map(|_| Err(e.clone())).collect(),
        };

        if global_shadow {
            // Policies are not enforced, but a call that cannot be evaluated
            // (its request cannot be built) is still denied: only what the
            // policies decide is shadowed.
            let would = self.evaluate(
                c,
                c.full.as_ref().unwrap_or(&c.enforced),
                operations,
                &built,
            );
            let mut build_errors = Vec::new();
            let enforced = Outcome::of(
                operations
                    .iter()
                    .zip(&built)
                    .map(|(op, b)| {
                        let effect = match b {
                            Ok(_) => Effect::Allow,
                            Err(e) => {
                                build_errors.push(format!("{}: {e}", op.azure_op));
                                Effect::Deny
                            }
                        };
                        OperationDecision {
                            azure_op: op.azure_op.clone(),
                            resource: resource_of(op, b),
                            effect,
                            advice: (effect == Effect::Deny).then_some(Advice::Deny),
                            policies: Vec::new(),
                        }
                    })
                    .collect(),
            );
            return Decision::new(
                enforced,
                hash.clone(),
                build_errors,
                would.alerts,
                Some(Shadow::new(true, would.outcome, would.errors)),
            );
        }

        let enforced = self.evaluate(c, &c.enforced, operations, &built);
        let shadow = c.full.as_ref().map(|full| {
            let would = self.evaluate(c, full, operations, &built);
            Shadow::new(false, would.outcome, would.errors)
        });
        Decision::new(
            enforced.outcome,
            hash.clone(),
            enforced.errors,
            enforced.alerts,
            shadow,
        )
    }

    fn prepare(
        &self,
        c: &Compiled,
        principal: &Principal,
        call: &CallContext,
    ) -> Result<Prepared, String> {
        let principal_key = principal_key(principal);
        let built = self.memoised(&c.principals, &principal_key, || {
            let (uid, entities) =
                request::principal_entities(&c.types, principal, &self.roles_by_group)?;
            let mut parents: Vec<EntityUid> = entities.iter().skip(1).map(Entity::uid).collect();
            parents.sort();
            parents.dedup();
            let closed = Closed::new(entities.iter().map(|e| e.as_ref().clone()))?;
            Ok(PrincipalEntities {
                uid,
                entities,
                closed,
                parents,
            })
        })?;
        let (context, shape) = context::build(principal, call, &c.parts.args)?;
        Ok(Prepared {
            principal: built,
            principal_key,
            context,
            shape,
        })
    }

    /// `build`'s value, from `memo` when it holds `key` (see
    /// [`Engine::set_memo`]).
    fn memoised<V: Send + Sync + 'static>(
        &self,
        memo: &Memo<V>,
        key: &Key,
        build: impl FnOnce() -> Result<V, String>,
    ) -> Result<Arc<V>, String> {
        if self.memo() {
            memo.get_or_build(key, build)
        } else {
            build().map(Arc::new)
        }
    }

    fn build(
        &self,
        c: &Compiled,
        prepared: &Prepared,
        op: &OperationFacts,
    ) -> Result<Built, String> {
        let action = c.actions.get(&c.parts, &c.types, &op.azure_op, &op.class)?;
        let principal = &prepared.principal;
        let key = prepared.principal_key.join(&operation_key(op));
        let store = self.memoised(&c.stores, &key, || {
            let chain = ResourceChain::new(op, &self.hierarchy)?;
            let (resource_uid, resource) = chain.target(&c.types)?;
            let entities = if self.memo() {
                // The scopes above the described resources are closed
                // once; the described ones, on top of them, per store.
                let above_key = chain.above();
                let above = self.memoised(&c.scopes, &above_key, || {
                    Closed::new(chain.entities(&c.types, chain.described()..chain.len())?)
                })?;
                let described = chain.entities(&c.types, 0..chain.described())?;
                match Closed::beneath(described, &above) {
                    Ok(described) => {
                        // What the principal, the action and the scopes
                        // above make is kept, and copied per resource.
                        let mut key = Key::default();
                        key.key(&prepared.principal_key)
                            .key(&operation_action_key(op))
                            .key(&above_key);
                        let base = self.memoised(&c.bases, &key, || {
                            Closed::base(&[&principal.closed, &action.closed, &above])
                        })?;
                        Closed::on(&base, &[&described])?
                    }
                    // Not a chain (never seen): closed whole, as Cedar would.
                    Err(_) => {
                        let resource = Closed::new(chain.entities(&c.types, 0..chain.len())?)?;
                        Closed::store(&[&principal.closed, &action.closed, &resource])?
                    }
                }
            } else {
                // Built whole and closed by Cedar, as the reference the
                // tests compare the reused parts with.
                request::entities(
                    principal
                        .entities
                        .iter()
                        .cloned()
                        .chain(action.entities.iter().cloned())
                        .chain(
                            chain
                                .entities(&c.types, 0..chain.len())?
                                .into_iter()
                                .map(Entity::from),
                        )
                        .collect(),
                )?
            };
            Ok(Store {
                entities,
                resource_uid,
                resource,
            })
        })?;
        let scope = Scope {
            principal_type: principal.uid.type_name().clone(),
            parents: principal.parents.clone(),
            action: action.uid.clone(),
            ancestors: action.ancestors.clone(),
        };
        let request = |schema| {
            Request::new(
                principal.uid.clone(),
                action.uid.clone(),
                store.resource_uid.clone(),
                prepared.context.clone(),
                schema,
            )
            .map_err(|e| format!("request: {e}"))
        };
        let schema = action.declared.then_some(&c.parts.schema);
        let request = match (schema, &prepared.shape) {
            // Whether a request validates depends on its action, the types
            // of its principal and resource, and its context's shape: Cedar
            // validates each combination once, and requests of a
            // combination it validated are built without validating again.
            (Some(schema), Some(shape)) if self.memo() => {
                let mut key = operation_action_key(op);
                key.str(&principal.uid.type_name().to_string())
                    .str(&store.resource_uid.type_name().to_string())
                    .key(shape);
                self.memoised(&c.valid, &key, || request(Some(schema)).map(drop))?;
                request(None)?
            }
            _ => request(schema)?,
        };
        Ok(Built {
            request,
            store,
            scope,
        })
    }

    fn evaluate(
        &self,
        c: &Compiled,
        sets: &Sets,
        operations: &[OperationFacts],
        built: &[Result<Built, String>],
    ) -> Evaluation {
        let mut errors = Vec::new();
        let mut alerts = BTreeSet::new();
        let mut decisions = Vec::with_capacity(operations.len());
        for (op, b) in operations.iter().zip(built) {
            let decision = match b {
                Ok(b) => self.evaluate_one(c, sets, op, b, &mut errors, &mut alerts),
                Err(e) => {
                    errors.push(format!("{}: {e}", op.azure_op));
                    OperationDecision {
                        azure_op: op.azure_op.clone(),
                        resource: resource_of(op, b),
                        effect: Effect::Deny,
                        advice: Some(Advice::Deny),
                        policies: Vec::new(),
                    }
                }
            };
            decisions.push(decision);
        }
        Evaluation {
            outcome: Outcome::of(decisions),
            errors,
            alerts: alerts.into_iter().collect(),
        }
    }

    /// One operation: Cedar's answer, made fail-closed, with advice and
    /// alerts.
    fn evaluate_one(
        &self,
        c: &Compiled,
        sets: &Sets,
        op: &OperationFacts,
        b: &Built,
        errors: &mut Vec<String>,
        alerts: &mut BTreeSet<Alert>,
    ) -> OperationDecision {
        // The policies whose scope may hold (`slice`): the same answer as
        // the whole set's, for less.
        let slice = self.slicing().then(|| sets.slicer.slice(&b.scope));
        let (permits, forbids) = match &slice {
            Some(Ok(slice)) => (&slice.permits, &slice.forbids),
            Some(Err(error)) => {
                tracing::warn!(target: "warden::policy", %error, "policy slice not built; the whole set is evaluated");
                (&sets.permits, &sets.forbids)
            }
            None => (&sets.permits, &sets.forbids),
        };
        // Cedar's decision over the whole slice is "allow iff some permit
        // is satisfied and no forbid is, and nothing failed"; evaluating
        // the permits and the forbids apart gives that decision and, on a
        // deny, the satisfied permits a step-up or an approval would let
        // through, each policy evaluated once.
        let mut failed = Vec::new();
        let mut satisfied = |set: &PolicySet, effect: CedarEffect| {
            let response = self
                .authorizer
                .is_authorized(&b.request, set, &b.store.entities);
            for error in response.diagnostics().errors() {
                let AuthorizationError::PolicyEvaluationError(e) = error;
                failed.push(e.policy_id().to_string());
                errors.push(format!("{}: {error}", op.azure_op));
            }
            // A set of one effect: Cedar allows iff one of its permits
            // holds, and names the forbids that hold when it denies.
            let holds = match effect {
                CedarEffect::Permit => response.decision() == CedarDecision::Allow,
                CedarEffect::Forbid => true,
            };
            if holds {
                sorted(response.diagnostics().reason().map(ToString::to_string))
            } else {
                Vec::new()
            }
        };
        let satisfied_permits = satisfied(permits, CedarEffect::Permit);
        let satisfied_forbids = satisfied(forbids, CedarEffect::Forbid);
        let allowed = !satisfied_permits.is_empty() && satisfied_forbids.is_empty();
        let reasons = if allowed {
            satisfied_permits.clone()
        } else {
            satisfied_forbids.clone()
        };
        for id in satisfied_permits.iter().chain(&satisfied_forbids) {
            if let Some(alert) = c.info.get(id).and_then(|i| i.alert.clone()) {
                alerts.insert(Alert {
                    policy: id.clone(),
                    alert,
                });
            }
        }

        let (effect, advice, policies) = if !failed.is_empty() {
            (Effect::Deny, Some(Advice::Deny), sorted(failed.into_iter()))
        } else if allowed {
            (Effect::Allow, None, reasons)
        } else if reasons.is_empty() || satisfied_permits.is_empty() {
            // No permit applies: neither step-up nor approval can help.
            (Effect::Deny, Some(Advice::Deny), reasons)
        } else {
            let advice = reasons
                .iter()
                .map(|id| {
                    c.info
                        .get(id)
                        .and_then(|i| i.advice)
                        .unwrap_or(Advice::Deny)
                })
                .max();
            (Effect::Deny, advice.or(Some(Advice::Deny)), reasons)
        };
        OperationDecision {
            azure_op: op.azure_op.clone(),
            resource: b.store.resource.clone(),
            effect,
            advice,
            policies,
        }
    }

    /// Whether `principal` could be allowed to perform all of `operations`
    /// (`(azure_op, class)`) together, on some resource in some context:
    /// the `tools/list` filter. Call it once per set of operations a tool
    /// call performs; for a tool whose operations depend on its arguments,
    /// list the tool if any alternative could be allowed.
    ///
    /// Method: Cedar partial evaluation with the principal and action known
    /// and the resource and context unknown, per operation. The operation
    /// can never be allowed when the partial decision is already deny (no
    /// permit can apply, or a forbid applies whatever the resource and
    /// context), when a policy fails whatever they are (errors deny), or
    /// when every permit left is a residual whose conditions are already
    /// decided false: Cedar leaves `<unknown> && false` unsimplified, so
    /// boolean constants are folded in the residuals (the NotActions of a
    /// custom role are caught this way). Forbids left as residuals (MFA,
    /// JIT, tags) may not apply, so they do not hide a tool: the caller may
    /// step up or obtain a grant. Under the global shadow flag everything
    /// could be allowed.
    pub fn could_be_allowed<A: AsRef<str>, C: AsRef<str>>(
        &self,
        principal: &Principal,
        operations: impl IntoIterator<Item = (A, C)>,
    ) -> bool {
        if self.config.shadow {
            return true;
        }
        let c = self.current.load();
        let Ok((principal_uid, principal_entities)) =
            request::principal_entities(&c.types, principal, &self.roles_by_group)
        else {
            return false;
        };
        let mut any = false;
        for (azure_op, class) in operations {
            any = true;
            if !self.could_allow_one(
                &c,
                &principal_uid,
                &principal_entities,
                azure_op.as_ref(),
                class.as_ref(),
            ) {
                return false;
            }
        }
        any
    }

    fn could_allow_one(
        &self,
        c: &Compiled,
        principal_uid: &EntityUid,
        principal_entities: &[Entity],
        azure_op: &str,
        class: &str,
    ) -> bool {
        let Ok(action) = c.actions.get(&c.parts, &c.types, azure_op, class) else {
            return false;
        };
        let Ok(entities) = request::entities(
            principal_entities
                .iter()
                .cloned()
                .chain(action.entities.iter().cloned())
                .collect(),
        ) else {
            return false;
        };
        let request = Request::builder()
            .principal(principal_uid.clone())
            .action(action.uid.clone())
            .build();
        let response = self
            .authorizer
            .is_authorized_partial(&request, &c.enforced.all, &entities);
        if response.definitely_errored().next().is_some() {
            return false;
        }
        match response.decision() {
            Some(CedarDecision::Deny) => false,
            Some(CedarDecision::Allow) => true,
            None => {
                response
                    .definitely_satisfied()
                    .any(|p| p.effect() == CedarEffect::Permit)
                    || response.nontrivial_residuals().any(|p| {
                        p.effect() == CedarEffect::Permit && !residual::never_satisfied(&p)
                    })
            }
        }
    }

    /// The decision on a call with the Cedar request of each operation
    /// (entities and context as JSON) and the text of the determining
    /// policies: `warden policy explain`.
    pub fn explain(
        &self,
        principal: &Principal,
        operations: &[OperationFacts],
        call: &CallContext,
    ) -> Explanation {
        let c = self.current.load();
        let decision = self.decide(&c, principal, operations, call, self.config.shadow);
        let prepared = self.prepare(&c, principal, call);
        let requests = operations
            .iter()
            .map(|op| {
                let built = prepared
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|p| self.build(&c, p, op));
                match built {
                    Ok(b) => ExplainedRequest {
                        azure_op: op.azure_op.clone(),
                        principal: b.request.principal().map(ToString::to_string),
                        action: b.request.action().map(ToString::to_string),
                        resource: b.request.resource().map(ToString::to_string),
                        context: b
                            .request
                            .context()
                            .and_then(|ctx| ctx.to_json_value().ok())
                            .unwrap_or(Value::Null),
                        entities: b.store.entities.to_json_value().unwrap_or(Value::Null),
                        error: None,
                    },
                    Err(e) => ExplainedRequest {
                        azure_op: op.azure_op.clone(),
                        principal: None,
                        action: None,
                        resource: None,
                        context: Value::Null,
                        entities: Value::Null,
                        error: Some(e),
                    },
                }
            })
            .collect();
        let mut ids: BTreeSet<&String> = decision.policies().iter().collect();
        if let Some(shadow) = decision.shadow() {
            ids.extend(shadow.outcome().policies());
        }
        let all = c.full.as_ref().unwrap_or(&c.enforced);
        let policies = ids
            .into_iter()
            .filter_map(|id| {
                let info = c.info.get(id)?;
                let text = all.all.policy(&PolicyId::new(id))?.to_string();
                Some(ExplainedPolicy {
                    info: info.clone(),
                    text,
                })
            })
            .collect();
        Explanation {
            decision,
            requests,
            policies,
        }
    }
}

/// See [`Engine::explain`].
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub decision: Decision,
    pub requests: Vec<ExplainedRequest>,
    pub policies: Vec<ExplainedPolicy>,
}

/// One operation as Cedar saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedRequest {
    pub azure_op: String,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    pub context: Value,
    /// Cedar entities JSON (principal, its groups and roles, the action and
    /// its groups, the resource and the scopes containing it).
    pub entities: Value,
    /// Why the request could not be built (the call is then denied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A determining policy, with its source.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainedPolicy {
    #[serde(flatten)]
    pub info: PolicyInfo,
    pub text: String,
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v.dedup();
    v
}

fn resource_of(op: &OperationFacts, built: &Result<Built, String>) -> String {
    match built {
        Ok(b) => b.store.resource.clone(),
        Err(_) => op.resource_id.to_ascii_lowercase(),
    }
}

/// Validates the policy set of `config` without starting an engine: the
/// `warden policy validate` command.
pub fn validate(
    config: &PolicyConfig,
    known_operations: &[(String, String)],
) -> Result<Summary, PolicyError> {
    Hierarchy::from_config(&config.management_groups)?;
    roles_by_group(config)?;
    Ok(compile(config, known_operations)?.summary)
}
