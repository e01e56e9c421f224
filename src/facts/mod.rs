//! Resource facts for policy (pipeline stage 2, after the catalog): what
//! each operation of a call touches, looked up in Azure Resource Manager
//! with Warden's own credential before the call is authorized
//! (docs/ARCHITECTURE.md, "Resource facts").
//!
//! The catalog names a resource as far as the call's arguments go: a full
//! ARM id for Warden's built-in tools, but often only a type and a name for
//! the Azure MCP Server's (a Key Vault, a storage account, named without
//! its resource group). [`Lookup::describe`] places each operation's
//! resource and reads its facts:
//!
//! - a resource with a full id: a GET of the id (its top-level resource for
//!   a nested or extension resource), or a Resource Graph query by id when
//!   no `api-version` is known for its type;
//! - a resource named without its group (or under a subscription given by
//!   display name): a Resource Graph query by type and name
//!   (`resources | where type =~ 'T' and name =~ 'n'`), in its subscription
//!   when known. One match places it (its full id becomes the operation's
//!   resource); several are ambiguous;
//! - a resource group or a subscription the call targets as such: a GET of
//!   it; the tenant root and management groups have nothing to look up;
//! - the resource group holding a resource: a GET of the group, for its
//!   tags. Azure does not inherit tags; policies see the resource's own
//!   tags on the resource and the group's on the `ResourceGroup` entity
//!   (`resource.rg`), and decide which to trust.
//!
//! A nested resource (a secret, a blob container, a VM extension) is
//! described by its top-level resource (the vault, the account, the VM):
//! Resource Graph does not track most child resources, and their container
//! is what tags describe.
//!
//! Every operation gets a [`Completeness`]:
//!
//! - [`Completeness::Complete`]: everything was looked up;
//! - [`Completeness::Partial`]: the resource does not exist (a create, or
//!   a name nothing matches): the facts are its parent scope's (the
//!   group's tags), its own tags are unknown;
//! - [`Completeness::Unavailable`]: no lookup (no ARM access configured, a
//!   call whose resources cannot be resolved), or it failed: an error, a
//!   timeout, Warden's identity cannot see the scope, several resources
//!   match the name.
//!
//! Policies see it as `context.facts` (the least complete of the call's
//! operations); the baseline treats anything but `complete` as unknown,
//! never as "no tags".
//!
//! Answers are cached (`[facts]`: `ttl`, a shorter `negative_ttl` for "not
//! found", `max_entries`); failures are not. Concurrent identical lookups
//! share one request to ARM. Each operation's lookup is bounded by
//! `timeout`.

mod arm;
mod cache;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::azure::ArmId;
use crate::azure::id::ScopeKind;
use crate::catalog::{Resolution, Resource};
use crate::identity::is_guid;
use crate::metrics::Metrics;

pub use arm::ArmSource;
use cache::{Cache, Key, Value};

/// `[facts]` in `warden.toml`: how long answers are kept, how many, and how
/// long a lookup may take.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FactsConfig {
    /// How long a resource, group or subscription found is remembered.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long "not found" is remembered (shorter: the resource may be
    /// about to exist).
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Most answers kept; beyond it the ones closest to expiring go first.
    pub max_entries: usize,
    /// The longest one operation's lookup may take; beyond it its facts
    /// are `unavailable`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for FactsConfig {
    fn default() -> Self {
        FactsConfig {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_entries: 10_000,
            timeout: Duration::from_secs(5),
        }
    }
}

impl FactsConfig {
    /// Checks the values (keys named as in `warden.toml`).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_entries == 0 {
            return Err("facts.max_entries: at least 1".into());
        }
        if self.timeout.is_zero() {
            return Err("facts.timeout: must be more than 0s".into());
        }
        if self.negative_ttl > self.ttl {
            return Err("facts.negative_ttl: at most facts.ttl".into());
        }
        Ok(())
    }
}

/// How much is known about what an operation touches (`context.facts`).
/// Ordered from most to least known.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Completeness {
    /// The resource (or scope) was found and every fact looked up.
    Complete,
    /// The resource does not exist: the facts are its parent scope's.
    Partial,
    /// Nothing could be looked up.
    #[default]
    Unavailable,
}

impl Completeness {
    pub fn as_str(self) -> &'static str {
        match self {
            Completeness::Complete => "complete",
            Completeness::Partial => "partial",
            Completeness::Unavailable => "unavailable",
        }
    }

    /// The least complete of `all`; `Complete` when there are none.
    pub fn least(all: impl IntoIterator<Item = Completeness>) -> Completeness {
        all.into_iter().max().unwrap_or(Completeness::Complete)
    }
}

/// What Azure says about one scope: a resource, resource group or
/// subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: ArmId,
    /// Lower-cased, e.g. `microsoft.compute/virtualmachines`.
    pub resource_type: Option<String>,
    pub location: Option<String>,
    /// As Azure has them.
    pub tags: BTreeMap<String, String>,
}

/// A subscription Warden's identity can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscription id (a GUID, lower-cased).
    pub id: String,
    pub display_name: String,
}

/// A Resource Graph search for a resource named without its full id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Find {
    /// The top-level type (`microsoft.keyvault/vaults`), when known.
    pub resource_type: Option<String>,
    pub name: String,
    /// Every subscription visible to Warden's identity when `None`.
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
}

/// Where facts come from. The production source is [`ArmSource`] (ARM and
/// Resource Graph through Warden's [`crate::azure::client::ArmClient`]).
pub trait Source: Send + Sync + 'static {
    /// The scope at `id` (a top-level resource, a resource group or a
    /// subscription); `None` when ARM says it does not exist.
    fn get(&self, id: &ArmId) -> BoxFuture<'static, Result<Option<Found>, String>>;
    /// Every resource matching `find` (a few at most).
    fn find(&self, find: &Find) -> BoxFuture<'static, Result<Vec<Found>, String>>;
    /// The subscriptions visible to Warden's identity.
    fn subscriptions(&self) -> BoxFuture<'static, Result<Vec<Subscription>, String>>;
}

/// The facts of what one operation touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The operation's resource, placed: its full id (with its resource
    /// group) once found; the id the call names when it does not exist.
    pub id: ArmId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The resource's own tags (a nested resource: its top-level
    /// resource's; a resource group or subscription targeted as such: its
    /// own).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// The tags of the resource group holding it (or of the group itself),
    /// when it is in one and the group was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_group_tags: Option<BTreeMap<String, String>>,
}

impl Facts {
    /// A scope with nothing known but its id.
    fn bare(id: &ArmId) -> Facts {
        Facts {
            id: id.clone(),
            resource_type: None,
            location: None,
            tags: BTreeMap::new(),
            resource_group_tags: None,
        }
    }

    pub fn subscription(&self) -> Option<&str> {
        self.id.subscription()
    }

    pub fn resource_group(&self) -> Option<&str> {
        self.id.resource_group()
    }
}

/// What the lookup made of one operation's resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Described {
    pub completeness: Completeness,
    /// `None` when unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    /// Why the facts are not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Described {
    fn complete(facts: Facts) -> Described {
        Described {
            completeness: Completeness::Complete,
            facts: Some(facts),
            reason: None,
        }
    }

    fn partial(facts: Facts, reason: String) -> Described {
        Described {
            completeness: Completeness::Partial,
            facts: Some(facts),
            reason: Some(reason),
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> Described {
        Described {
            completeness: Completeness::Unavailable,
            facts: None,
            reason: Some(reason.into()),
        }
    }

    /// The audit record's `facts` of the operation: its completeness,
    /// location, tags, resource group's tags and, when not complete, why.
    pub fn record(&self) -> serde_json::Value {
        let mut record = serde_json::json!({ "completeness": self.completeness.as_str() });
        if let Some(facts) = &self.facts {
            if let Some(location) = &facts.location {
                record["location"] = location.clone().into();
            }
            if !facts.tags.is_empty() {
                record["tags"] = serde_json::json!(facts.tags);
            }
            if let Some(group) = &facts.resource_group_tags {
                record["resource_group_tags"] = serde_json::json!(group);
            }
        }
        if let Some(reason) = &self.reason {
            record["reason"] = reason.clone().into();
        }
        record
    }

    /// `resource` as the lookup placed it: its full id once found (with the
    /// subscription and group that id names); unchanged otherwise.
    pub fn placed(&self, resource: &Resource) -> Resource {
        let Some(facts) = &self.facts else {
            return resource.clone();
        };
        if facts.id == resource.id {
            return resource.clone();
        }
        Resource {
            id: facts.id.clone(),
            subscription: facts.subscription().map(str::to_owned),
            resource_group: facts.resource_group().map(str::to_owned),
            resource_type: resource.resource_type.clone(),
            name: resource.name.clone(),
            group_name: facts
                .resource_group()
                .map(str::to_owned)
                .or_else(|| resource.group_name.clone()),
            names: resource.names.clone(),
        }
    }
}

/// The facts stage. Cheap to share (`Arc`).
pub struct Lookup {
    source: Option<Arc<dyn Source>>,
    cache: Cache,
    config: FactsConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup")
            .field("enabled", &self.source.is_some())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Lookup {
    /// Looks facts up in `source`.
    pub fn new(config: FactsConfig, source: Arc<dyn Source>, metrics: Metrics) -> Lookup {
        Lookup {
            source: Some(source),
            cache: Cache::new(&config),
            config,
            metrics,
        }
    }

    /// No access to ARM: every operation's facts are `unavailable`.
    pub fn off(metrics: Metrics) -> Lookup {
        let config = FactsConfig::default();
        Lookup {
            source: None,
            cache: Cache::new(&config),
            config,
            metrics,
        }
    }

    /// Whether facts are looked up at all.
    pub fn enabled(&self) -> bool {
        self.source.is_some()
    }

    /// Answers in the cache now (expired ones included until evicted).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The facts of each operation of `resolution`, in order.
    pub async fn describe(&self, resolution: &Resolution) -> Vec<Described> {
        let described = if let Some(problem) = &resolution.problem {
            let why = format!("the call's resources cannot be resolved: {problem}");
            resolution
                .operations
                .iter()
                .map(|_| Described::unavailable(why.clone()))
                .collect()
        } else {
            let lookups = resolution.operations.iter().map(|op| async {
                match tokio::time::timeout(self.config.timeout, self.describe_one(&op.resource))
                    .await
                {
                    Ok(described) => described,
                    Err(_) => Described::unavailable(format!(
                        "looking {} up took longer than {:?}",
                        op.resource.id, self.config.timeout
                    )),
                }
            });
            futures::future::join_all(lookups).await
        };
        for d in &described {
            self.metrics.facts_described(d.completeness.as_str());
        }
        described
    }

    /// The facts of one resource as the catalog named it.
    async fn describe_one(&self, resource: &Resource) -> Described {
        let id = &resource.id;
        let named = resource.name.is_some() && id.kind() != ScopeKind::Resource;
        // The tenant root and management groups carry no tags to look up.
        if id.kind() == ScopeKind::ManagementGroup
            || (id.is_root() && !named && resource.group_name.is_none())
        {
            return Described::complete(Facts::bare(id));
        }
        if self.source.is_none() {
            return Described::unavailable(
                "Warden has no access to Azure Resource Manager ([azure]) to look resources up",
            );
        }
        if id.kind() == ScopeKind::Resource {
            return self.resource_at(id).await;
        }
        let subscription = match resource.subscription.as_deref() {
            Some(s) if is_guid(s) => Some(s.to_ascii_lowercase()),
            Some(name) => match self.subscription_named(name).await {
                Ok(id) => Some(id),
                Err(reason) => return Described::unavailable(reason),
            },
            None => None,
        };
        let group = resource
            .resource_group
            .clone()
            .or_else(|| resource.group_name.clone());
        if named {
            return self.named(resource, subscription, group).await;
        }
        let scope = match (&subscription, &group) {
            (Some(s), Some(g)) => {
                ArmId::for_subscription(s).and_then(|sub| sub.with_resource_group(g))
            }
            (Some(s), None) => ArmId::for_subscription(s),
            (None, _) => {
                return Described::unavailable(
                    "the call names a resource group without its subscription",
                );
            }
        };
        match scope {
            Ok(scope) if scope.kind() == ScopeKind::ResourceGroup => self.group_scope(&scope).await,
            Ok(scope) => self.subscription_scope(&scope).await,
            Err(e) => Described::unavailable(e.to_string()),
        }
    }

    /// A resource with a full id: its top-level resource looked up, and
    /// its group's tags; if it does not exist, its group's facts.
    async fn resource_at(&self, id: &ArmId) -> Described {
        let Some(top) = id.ancestor(ScopeKind::Resource) else {
            return Described::unavailable(format!("{id} names no resource"));
        };
        let group = id.ancestor(ScopeKind::ResourceGroup);
        let resource_type = id.resource_type();
        match self.get(&top).await {
            Err(reason) => Described::unavailable(reason),
            Ok(Some(found)) => {
                let resource_group_tags = match &group {
                    Some(g) => match self.get(g).await {
                        Ok(found) => found.map(|g| g.tags),
                        Err(reason) => return Described::unavailable(reason),
                    },
                    None => None,
                };
                Described::complete(Facts {
                    id: id.clone(),
                    resource_type,
                    location: found.location,
                    tags: found.tags,
                    resource_group_tags,
                })
            }
            Ok(None) => {
                let mut facts = Facts::bare(id);
                facts.resource_type = resource_type;
                let Some(group) = group else {
                    return Described::partial(facts, format!("{top} does not exist"));
                };
                match self.get(&group).await {
                    Err(reason) => Described::unavailable(reason),
                    Ok(Some(g)) => {
                        facts.resource_group_tags = Some(g.tags);
                        Described::partial(
                            facts,
                            format!("{top} does not exist: the facts are its resource group's"),
                        )
                    }
                    Ok(None) => Described::partial(
                        facts,
                        format!("neither {top} nor its resource group exists"),
                    ),
                }
            }
        }
    }

    /// A resource named without its full id: placed through Resource Graph
    /// (or by building its id when subscription and group are known).
    async fn named(
        &self,
        resource: &Resource,
        subscription: Option<String>,
        group: Option<String>,
    ) -> Described {
        let name = resource.name.clone().unwrap_or_default();
        let (top_type, top_name, children) = match split(resource) {
            Ok(split) => split,
            Err(reason) => return Described::unavailable(reason),
        };
        if let (Some(s), Some(g), Some(t)) = (&subscription, &group, &top_type) {
            let id = ArmId::for_subscription(s)
                .and_then(|sub| sub.with_resource_group(g))
                .and_then(|rg| rg.with_provider(t, &top_name))
                .and_then(|top| with_children(top, &children));
            return match id {
                Ok(id) => self.resource_at(&id).await,
                Err(e) => Described::unavailable(e.to_string()),
            };
        }
        let find = Find {
            resource_type: top_type.clone(),
            name: top_name.clone(),
            subscription: subscription.clone(),
            resource_group: group,
        };
        let what = match &top_type {
            Some(t) => format!("{t} named {top_name:?}"),
            None => format!("resource named {top_name:?}"),
        };
        let mut found = match self.find(find).await {
            Ok(found) => found,
            Err(reason) => return Described::unavailable(reason),
        };
        match found.len() {
            0 => {
                let mut facts = Facts::bare(&resource.id);
                facts.resource_type = resource.resource_type.clone();
                Described::partial(
                    facts,
                    format!("no {what} was found (Resource Graph) for {name:?}"),
                )
            }
            1 => {
                let top = found.remove(0);
                match with_children(top.id.clone(), &children) {
                    Ok(id) => self.resource_at(&id).await,
                    Err(e) => Described::unavailable(e.to_string()),
                }
            }
            n => Described::unavailable(format!(
                "{n} resources match ({what}{}): which one the tool acts on is not known",
                subscription
                    .map(|s| format!(" in subscription {s}"))
                    .unwrap_or_default()
            )),
        }
    }

    /// A resource group the call targets as such (or acts in).
    async fn group_scope(&self, id: &ArmId) -> Described {
        match self.get(id).await {
            Err(reason) => Described::unavailable(reason),
            Ok(Some(group)) => Described::complete(Facts {
                id: id.clone(),
                resource_type: Some("microsoft.resources/resourcegroups".into()),
                location: group.location,
                resource_group_tags: Some(group.tags.clone()),
                tags: group.tags,
            }),
            Ok(None) => Described::partial(
                Facts::bare(id),
                format!("resource group {id} does not exist"),
            ),
        }
    }

    /// A subscription the call targets as such (or acts in).
    async fn subscription_scope(&self, id: &ArmId) -> Described {
        match self.get(id).await {
            Err(reason) => Described::unavailable(reason),
            Ok(Some(subscription)) => Described::complete(Facts {
                id: id.clone(),
                resource_type: Some("microsoft.resources/subscriptions".into()),
                location: None,
                tags: subscription.tags,
                resource_group_tags: None,
            }),
            Ok(None) => Described::unavailable(format!(
                "subscription {id} is not visible to Warden's identity"
            )),
        }
    }

    /// The id of the one subscription whose display name is `name`.
    async fn subscription_named(&self, name: &str) -> Result<String, String> {
        let all = match self
            .ask(Key::Subscriptions, |source| {
                source
                    .subscriptions()
                    .map(|r| r.map(Value::Subscriptions))
                    .boxed()
            })
            .await?
        {
            Value::Subscriptions(all) => all,
            _ => return Err("the subscriptions could not be listed".into()),
        };
        let matching: Vec<&Subscription> = all
            .iter()
            .filter(|s| s.display_name.eq_ignore_ascii_case(name))
            .collect();
        match matching.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(format!(
                "no subscription named {name:?} is visible to Warden's identity"
            )),
            many => Err(format!(
                "{} subscriptions are named {name:?}: which one the tool acts on is not known",
                many.len()
            )),
        }
    }

    async fn get(&self, id: &ArmId) -> Result<Option<Found>, String> {
        let key = Key::Get(id.as_str().to_owned());
        let id = id.clone();
        match self
            .ask(key, move |source| {
                source.get(&id).map(|r| r.map(Value::Get)).boxed()
            })
            .await?
        {
            Value::Get(found) => Ok(found),
            _ => Err("unexpected cached answer".into()),
        }
    }

    async fn find(&self, find: Find) -> Result<Vec<Found>, String> {
        let key = Key::Find(find.clone());
        match self
            .ask(key, move |source| {
                source.find(&find).map(|r| r.map(Value::Find)).boxed()
            })
            .await?
        {
            Value::Find(found) => Ok(found),
            _ => Err("unexpected cached answer".into()),
        }
    }

    /// The cached answer for `key`, else `fetch`'s (shared with concurrent
    /// identical lookups, timed, and cached unless it failed).
    async fn ask(
        &self,
        key: Key,
        fetch: impl FnOnce(&dyn Source) -> BoxFuture<'static, Result<Value, String>>,
    ) -> Result<Value, String> {
        let Some(source) = &self.source else {
            return Err("no Azure Resource Manager access".into());
        };
        if let Some(hit) = self.cache.get(&key) {
            self.metrics.facts_cache("hit");
            return Ok(hit);
        }
        self.metrics.facts_cache("miss");
        let latency = self.metrics.facts_latency.clone();
        self.cache
            .fetch(key, || {
                let request = fetch(source.as_ref());
                async move {
                    let started = std::time::Instant::now();
                    let answer = request.await;
                    latency.observe(started.elapsed().as_secs_f64());
                    answer
                }
            })
            .await
    }
}

/// A named resource's top-level type and name, and the child types and
/// names below it (`microsoft.keyvault/vaults/secrets` with names
/// `[kv1, s1]` → `microsoft.keyvault/vaults`, `kv1`, `[(secrets, s1)]`).
type Split = (Option<String>, String, Vec<(String, String)>);

fn split(resource: &Resource) -> Result<Split, String> {
    let name = resource.name.clone().unwrap_or_default();
    let Some(ty) = &resource.resource_type else {
        return Ok((None, name, Vec::new()));
    };
    let segments: Vec<&str> = ty.split('/').collect();
    if segments.len() < 2 {
        return Err(format!("{ty:?} is not a resource type"));
    }
    let depth = segments.len() - 1;
    let names = if resource.names.len() == depth {
        resource.names.clone()
    } else if depth == 1 {
        vec![name]
    } else {
        return Err(format!(
            "the {ty} is named without the resources it belongs to"
        ));
    };
    let top_type = format!("{}/{}", segments[0], segments[1]);
    let children = segments[2..]
        .iter()
        .zip(&names[1..])
        .map(|(t, n)| ((*t).to_owned(), n.clone()))
        .collect();
    Ok((Some(top_type), names[0].clone(), children))
}

fn with_children(
    top: ArmId,
    children: &[(String, String)],
) -> Result<ArmId, crate::azure::id::IdError> {
    children
        .iter()
        .try_fold(top, |id, (ty, name)| id.with_child(ty, name))
}
