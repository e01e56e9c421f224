//! The facts of a call and their Cedar form: principal, action and resource
//! entities, and the context record.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cedar_policy::{Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use cedar_policy_core::ast::{self, PartialValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smol_str::SmolStr;

use super::memo::Key;
use super::schema::ResolvedAction;
use super::scope::{Hierarchy, Kind, Scope};
use crate::facts::Completeness;
use crate::identity::{Principal, PrincipalKind};

/// One Azure operation of a call, as the catalog resolved it. The
/// integrator maps `catalog::Operation` onto it (`class` as its snake_case
/// name); `location` and `tags` come from whatever knows the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationFacts {
    /// e.g. `Microsoft.Compute/virtualMachines/delete`, or the catalog's
    /// synthetic `Warden/tools/<tool>/<class>`.
    pub azure_op: String,
    /// `read`, `write`, `delete`, `action`, `privileged` or `unknown`.
    pub class: String,
    /// ARM id of the narrowest known scope, any case; `/` if none.
    #[serde(default = "root_scope")]
    pub resource_id: String,
    /// When given, must agree with `resource_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// When given, must agree with `resource_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// Informative (the catalog may name the targeted type while the id is
    /// its container); the entity's type is read from `resource_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Informative, like `resource_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Azure region of the resource, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Azure tags of the resource, when known (a nested resource: its
    /// top-level resource's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Azure tags of the resource group holding the resource (or of the
    /// group the operation targets), when known: the `ResourceGroup`
    /// entity's tags, `resource.rg` in policies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_group_tags: BTreeMap<String, String>,
}

fn root_scope() -> String {
    "/".into()
}

impl OperationFacts {
    /// An operation on the scope `resource_id`, with no other facts.
    pub fn new(azure_op: &str, class: &str, resource_id: &str) -> Self {
        OperationFacts {
            azure_op: azure_op.to_owned(),
            class: class.to_owned(),
            resource_id: resource_id.to_owned(),
            subscription: None,
            resource_group: None,
            resource_type: None,
            name: None,
            location: None,
            tags: BTreeMap::new(),
            resource_group_tags: BTreeMap::new(),
        }
    }
}

/// The risk stage's assessment (`context.risk`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskFacts {
    /// 0..100.
    pub score: i64,
    /// `low`, `medium`, `high` or `critical`.
    pub level: String,
    /// The codes of the findings behind the score (`new_country`,
    /// `delete_spike`, ...), strongest first.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// The JIT grant covering the call (`context.jit`), attached by the
/// approvals stage only when it matches the call (principal, operation,
/// scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JitFacts {
    pub grant_id: String,
    /// Object id of the approver.
    pub approver: String,
    pub expires: DateTime<Utc>,
    /// The eligible role activated, when the grant is a role activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// ARM id of the scope the grant covers (lower-cased into the context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Object ids of the approvers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    /// Operations, patterns or action groups the grant covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// What the pipeline knows of a call besides its principal and operations.
#[derive(Debug, Clone, PartialEq)]
pub struct CallContext {
    /// When the call is evaluated (`context.now`).
    pub now: DateTime<Utc>,
    /// The tool as the client called it.
    pub tool: String,
    /// MCP session id.
    pub session: String,
    pub user_agent: Option<String>,
    /// The call's arguments; those named in the schema's `Args` reach
    /// `context.args`.
    pub arguments: Option<Value>,
    pub risk: Option<RiskFacts>,
    pub jit: Option<JitFacts>,
    /// How much the facts stage knows of what the call touches
    /// (`context.facts`): the least complete of its operations.
    pub facts: Completeness,
}

impl CallContext {
    /// A context at `now` for `tool` with nothing else known: the
    /// resources' facts are `unavailable` until someone says otherwise.
    pub fn new(tool: &str, session: &str, now: DateTime<Utc>) -> Self {
        CallContext {
            now,
            tool: tool.to_owned(),
            session: session.to_owned(),
            user_agent: None,
            arguments: None,
            risk: None,
            jit: None,
            facts: Completeness::Unavailable,
        }
    }
}

/// How app roles are conferred by Entra group membership
/// (`[policy.roles]`): group object id (lower-cased) → roles.
pub(crate) type RolesByGroup = HashMap<String, Vec<String>>;

/// The entity type names of the schema, parsed once when policies load so
/// that building a request cannot fail on them.
#[derive(Debug, Clone)]
pub(crate) struct Types(HashMap<&'static str, EntityTypeName>);

impl Types {
    pub fn new() -> Result<Self, String> {
        let names = [
            "User",
            "ServicePrincipal",
            "Group",
            "AppRole",
            "Action",
            "Tenant",
            "ManagementGroup",
            "Subscription",
            "ResourceGroup",
            "Resource",
        ];
        let mut map = HashMap::new();
        for name in names {
            let parsed = name
                .parse::<EntityTypeName>()
                .map_err(|e| format!("entity type {name}: {e}"))?;
            map.insert(name, parsed);
        }
        Ok(Types(map))
    }

    /// The uid of an entity of one of the schema's types.
    fn uid(&self, type_name: &str, id: &str) -> Result<EntityUid, String> {
        let ty = self
            .0
            .get(type_name)
            .ok_or_else(|| format!("entity type {type_name} is not known"))?;
        Ok(EntityUid::from_type_name_and_id(
            ty.clone(),
            EntityId::new(id),
        ))
    }

    pub fn action(&self, name: &str) -> Result<EntityUid, String> {
        self.uid("Action", name)
    }
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(|s| string(s)))
}

/// The principal entity (`User` or `ServicePrincipal`, id `<tid>/<oid>`)
/// and its groups and app roles: the token's `roles`, plus the roles
/// `[policy.roles]` confers on the token's groups.
pub(crate) fn principal_entities(
    t: &Types,
    principal: &Principal,
    roles_by_group: &RolesByGroup,
) -> Result<(EntityUid, Vec<Entity>), String> {
    let type_name = match principal.kind {
        PrincipalKind::User => "User",
        PrincipalKind::Application => "ServicePrincipal",
    };
    let me = t.uid(type_name, &format!("{}/{}", principal.tid, principal.oid))?;
    let groups: BTreeSet<String> = principal
        .groups
        .iter()
        .map(|g| g.to_ascii_lowercase())
        .collect();
    let mut roles: BTreeSet<&str> = principal.roles.iter().map(String::as_str).collect();
    for group in &groups {
        if let Some(conferred) = roles_by_group.get(group) {
            roles.extend(conferred.iter().map(String::as_str));
        }
    }
    let parents: Vec<EntityUid> = groups
        .iter()
        .map(|g| t.uid("Group", g))
        .chain(roles.iter().map(|r| t.uid("AppRole", r)))
        .collect::<Result<_, _>>()?;
    let mut attrs = vec![
        ("tid".to_owned(), string(&principal.tid)),
        ("oid".to_owned(), string(&principal.oid)),
        ("display_name".to_owned(), string(&principal.display_name)),
        (
            "groups_overage".to_owned(),
            RestrictedExpression::new_bool(principal.groups_overage),
        ),
    ];
    if principal.kind == PrincipalKind::User {
        attrs.push(("scopes".to_owned(), strings(&principal.scopes)));
    }
    let mut entities = vec![
        Entity::new_with_tags(me.clone(), attrs, parents.iter().cloned(), [])
            .map_err(|e| format!("principal: {e}"))?,
    ];
    entities.extend(
        parents
            .into_iter()
            .map(|p| Entity::new_no_attrs(p, Default::default())),
    );
    Ok((me, entities))
}

/// The action entity and its groups.
pub(crate) fn action_entities(
    t: &Types,
    action: &ResolvedAction,
) -> Result<(EntityUid, Vec<Entity>), String> {
    let mut entities = Vec::with_capacity(action.entities.len());
    for (name, parents) in &action.entities {
        let parents = parents
            .iter()
            .map(|p| t.action(p))
            .collect::<Result<_, _>>()?;
        entities.push(Entity::new_no_attrs(t.action(name)?, parents));
    }
    Ok((t.action(&action.name)?, entities))
}

/// The resource entity (the narrowest scope of `resource_id`) and every
/// scope containing it. Location and tags belong to the narrowest scope
/// and the resources containing it (a nested resource is described by its
/// top-level resource); the resource group holding them has the
/// operation's `resource_group_tags`; every scope in a resource group
/// names it as `rg`.
///
/// The entities are built as Cedar's evaluated form (attribute values are
/// strings and an entity reference, which evaluate to themselves), so no
/// expression is evaluated per entity; `Entity::from` gives the API's type.
pub(crate) fn resource_entities(
    t: &Types,
    op: &OperationFacts,
    hierarchy: &Hierarchy,
) -> Result<(EntityUid, String, Vec<ast::Entity>), String> {
    let chain = ResourceChain::new(op, hierarchy)?;
    let (uid, id) = chain.target(t)?;
    Ok((uid, id, chain.entities(t, 0..chain.len())?))
}

/// A resource and the scopes containing it, target first, each with the
/// facts its entity is built from: the target and the resources it is
/// nested in (the *described* scopes) share the operation's location and
/// tags; a resource group above them has the resource group's tags.
pub(crate) struct ResourceChain<'a> {
    op: &'a OperationFacts,
    chain: Vec<Scope>,
    /// How many scopes, from the target, are described by the operation.
    described: usize,
    /// The resource group's place in the chain, and its id.
    group: Option<(usize, String)>,
}

impl<'a> ResourceChain<'a> {
    pub fn new(op: &'a OperationFacts, hierarchy: &Hierarchy) -> Result<Self, String> {
        let chain = hierarchy.chain(&op.resource_id)?;
        let target = &chain[0];
        let agree =
            |given: &Option<String>, known: &Option<String>, what: &str| match (given, known) {
                (Some(g), Some(k)) if !g.eq_ignore_ascii_case(k) => Err(format!(
                    "the operation's {what} {g:?} is not the one of its resource id {:?}",
                    op.resource_id
                )),
                (Some(g), None) => Err(format!(
                    "the operation names {what} {g:?} but its resource id {:?} has none",
                    op.resource_id
                )),
                _ => Ok(()),
            };
        agree(&op.subscription, &target.subscription_id, "subscription")?;
        agree(&op.resource_group, &target.resource_group, "resource group")?;
        // The target and the resources it is nested in share its facts.
        let described = chain
            .iter()
            .take_while(|s| s.kind == Kind::Resource)
            .count()
            .max(1);
        let group = chain
            .iter()
            .position(|s| s.kind == Kind::ResourceGroup)
            .map(|at| (at, chain[at].id.clone()));
        Ok(ResourceChain {
            op,
            chain,
            described,
            group,
        })
    }

    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// How many scopes, from the target, are described by the operation:
    /// the scopes above them are [`ResourceChain::above`].
    pub fn described(&self) -> usize {
        self.described
    }

    /// The target's uid and lower-cased id.
    pub fn target(&self, t: &Types) -> Result<(EntityUid, String), String> {
        let target = &self.chain[0];
        Ok((
            t.uid(target.kind.type_name(), &target.id)?,
            target.id.clone(),
        ))
    }

    /// The entities of the scopes at `range` of the chain.
    pub fn entities(
        &self,
        t: &Types,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<ast::Entity>, String> {
        let lower = |tags: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            tags.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
                .collect()
        };
        let mut entities = Vec::with_capacity(range.len());
        for i in range {
            let scope = &self.chain[i];
            let (location, tags) = if i < self.described {
                (
                    self.op.location.as_deref().map(str::to_ascii_lowercase),
                    lower(&self.op.tags),
                )
            } else if scope.kind == Kind::ResourceGroup {
                (None, lower(&self.op.resource_group_tags))
            } else {
                (None, BTreeMap::new())
            };
            let rg = self
                .group
                .as_ref()
                .filter(|(at, _)| i <= *at)
                .map(|(_, id)| id.as_str());
            entities.push(scope_entity(t, scope, location, tags, rg)?);
        }
        Ok(entities)
    }

    /// Every input of the entities above the described scopes: their
    /// scopes, field by field, and the resource group's tags when the group
    /// is among them (where its `rg` is, too).
    pub fn above(&self) -> Key {
        let above = &self.chain[self.described..];
        let mut key = Key::default();
        key.count(above.len());
        for scope in above {
            let (parent_kind, parent_id) = match &scope.parent {
                Some((kind, id)) => (Some(kind.type_name()), Some(id.as_str())),
                None => (None, None),
            };
            key.str(scope.kind.type_name())
                .str(&scope.id)
                .str(&scope.name)
                .str(&scope.resource_type)
                .opt(scope.subscription_id.as_deref())
                .opt(scope.resource_group.as_deref())
                .opt(parent_kind)
                .opt(parent_id);
        }
        match &self.group {
            Some((at, _)) if *at >= self.described => {
                key.flag(true).count(*at - self.described);
                key.map(&self.op.resource_group_tags)
            }
            _ => key.flag(false),
        };
        key
    }
}

fn scope_entity(
    t: &Types,
    scope: &Scope,
    location: Option<String>,
    tags: BTreeMap<String, String>,
    rg: Option<&str>,
) -> Result<ast::Entity, String> {
    let value = |s: &str| PartialValue::from(s);
    let mut attrs = vec![
        ("name".into(), value(&scope.name)),
        ("resource_type".into(), value(&scope.resource_type)),
    ];
    if let Some(rg) = rg {
        let uid: ast::EntityUID = t.uid("ResourceGroup", rg)?.into();
        attrs.push(("rg".into(), PartialValue::from(uid)));
    }
    let optional = [
        ("subscription_id", scope.subscription_id.as_deref()),
        ("resource_group", scope.resource_group.as_deref()),
        ("location", location.as_deref()),
    ];
    for (name, v) in optional {
        if let Some(v) = v {
            attrs.push((name.into(), value(v)));
        }
    }
    let parents = scope
        .parent
        .iter()
        .map(|(kind, id)| t.uid(kind.type_name(), id).map(ast::EntityUID::from))
        .collect::<Result<HashSet<_>, _>>()?;
    let tags = tags
        .into_iter()
        .map(|(k, v)| (SmolStr::from(k), PartialValue::from(v)));
    Ok(ast::Entity::new_with_attr_partial_value(
        t.uid(scope.kind.type_name(), &scope.id)?.into(),
        attrs,
        HashSet::new(),
        parents,
        tags,
    ))
}

/// Collects entities into a store (no schema: action entities of
/// undeclared operations are built here, and the builders above are tested
/// against the schema).
pub(crate) fn entities(all: Vec<Entity>) -> Result<Entities, String> {
    let mut unique: HashMap<EntityUid, Entity> = HashMap::new();
    for e in all {
        unique.entry(e.uid()).or_insert(e);
    }
    Entities::from_entities(unique.into_values(), None).map_err(|e| format!("entities: {e}"))
}

impl From<&crate::catalog::Operation> for OperationFacts {
    /// The facts the catalog resolved for one operation of a call.
    fn from(op: &crate::catalog::Operation) -> Self {
        OperationFacts {
            azure_op: op.azure_op.clone(),
            class: op.class.as_str().to_owned(),
            resource_id: op.resource.id.to_string(),
            subscription: op.resource.subscription.clone(),
            resource_group: op.resource.resource_group.clone(),
            resource_type: op.resource.resource_type.clone(),
            name: op.resource.name.clone(),
            location: None,
            tags: BTreeMap::new(),
            resource_group_tags: BTreeMap::new(),
        }
    }
}
