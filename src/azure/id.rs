//! ARM resource ids, parsed once: the one type the catalog, policy scopes,
//! approvals and the ARM simulator share. It imports nothing else of
//! Warden.
//!
//! An [`ArmId`] is one of
//!
//! ```text
//! /                                                         the tenant root
//! /subscriptions/{s}                                        a subscription
//! /subscriptions/{s}/resourceGroups/{g}                     a resource group
//! /providers/Microsoft.Management/managementGroups/{m}      a management group
//! {scope}/providers/{Namespace}/{type}/{name}[/{type}/{name}...]
//!                                                           a resource (nested child
//!                                                           types follow their parent)
//! ```
//!
//! where `{scope}` is any of them, so that extension resources (a role
//! assignment on a VM, diagnostic settings, tags) are ids too. ARM ids
//! ignore case: ids compare, hash and serialize lower-cased (ASCII), and
//! [`ArmId::display`] keeps the casing they were given in.
//!
//! A segment (a name, type or namespace) must be non-empty, not `.` or
//! `..`, at most 1024 characters, and free of control characters and of
//! `/ \ ? # { } "`; a namespace has a `.` (`Microsoft.Compute`). One
//! trailing `/` is ignored.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest segment accepted.
pub const MAX_SEGMENT: usize = 1024;

/// The kind of scope an id names, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeKind {
    Tenant,
    ManagementGroup,
    Subscription,
    ResourceGroup,
    Resource,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Tenant => "tenant",
            ScopeKind::ManagementGroup => "management group",
            ScopeKind::Subscription => "subscription",
            ScopeKind::ResourceGroup => "resource group",
            ScopeKind::Resource => "resource",
        }
    }
}

/// Why a text is not an ARM id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an ARM resource id: {reason}")]
pub struct IdError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why `segment` cannot be one segment of an ARM id, if it cannot.
pub fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("it is empty")
    } else if segment == "." || segment == ".." {
        Some("it is a relative segment (`.` or `..`)")
    } else if segment.len() > MAX_SEGMENT {
        Some("it is longer than 1024 bytes")
    } else if segment.chars().any(char::is_control) {
        Some("it has a control character")
    } else if segment.contains(['/', '\\', '?', '#', '{', '}', '"']) {
        Some("it has one of / \\ ? # { } \"")
    } else {
        None
    }
}

/// Whether `segment` can be one segment (name, type, namespace) of an ARM id.
pub fn is_valid_segment(segment: &str) -> bool {
    segment_problem(segment).is_none()
}

/// One scope of an id: its kind, and how many segments name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Level {
    kind: ScopeKind,
    /// Segments up to and including this scope's name.
    end: usize,
    /// For a resource or management group: the index of the `providers`
    /// segment that starts its provider chain.
    provider: usize,
}

/// A parsed ARM resource id. Equality, order and hashing ignore case.
#[derive(Clone)]
pub struct ArmId {
    /// Lower-cased (ASCII): `/` or `/seg/seg...`, no trailing `/`.
    lower: String,
    /// The same in the casing it was given (same byte positions).
    display: String,
    /// Byte ranges of the segments in both strings.
    segments: Vec<Range<usize>>,
    /// The scopes the id passes through, outermost first (the tenant
    /// root is implied).
    levels: Vec<Level>,
}

/// A resource's provider chain: `providers/{namespace}/{type}/{name}` and
/// the nested child types and names after it, in the id's casing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPath<'a> {
    pub namespace: &'a str,
    /// The top-level type, then each child type.
    pub types: Vec<&'a str>,
    /// The name of each type, in the same order.
    pub names: Vec<&'a str>,
    /// The scope the chain hangs off (a resource for an extension
    /// resource).
    pub parent: ScopeKind,
}

/// How [`parse`] treats a trailing collection (a type without a name).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trailing {
    Refuse,
    /// The scope containing the collection stands for it.
    Enclosing,
}

impl ArmId {
    /// The tenant root, `/`.
    pub fn root() -> ArmId {
        ArmId {
            lower: "/".into(),
            display: "/".into(),
            segments: Vec::new(),
            levels: Vec::new(),
        }
    }

    /// Parses an ARM id strictly (see the [module documentation](self)).
    pub fn parse(text: &str) -> Result<ArmId, IdError> {
        parse(text, Trailing::Refuse)
    }

    /// Parses an ARM id that may end in a collection, which stands for
    /// the scope containing it:
    /// `/subscriptions/s/resourceGroups` is the subscription,
    /// `.../resourceGroups/g/providers/Microsoft.Compute/virtualMachines`
    /// the group, `.../virtualMachines/vm1/extensions` the VM, and
    /// `/providers/Microsoft.Compute` the tenant.
    pub fn parse_scope(text: &str) -> Result<ArmId, IdError> {
        parse(text, Trailing::Enclosing)
    }

    /// `/subscriptions/{subscription}`.
    pub fn for_subscription(subscription: &str) -> Result<ArmId, IdError> {
        ArmId::parse(&format!("/subscriptions/{subscription}"))
    }

    /// This subscription's resource group `group`.
    pub fn with_resource_group(&self, group: &str) -> Result<ArmId, IdError> {
        if self.kind() != ScopeKind::Subscription {
            return Err(IdError {
                text: format!("{}/resourceGroups/{group}", self.display),
                reason: "a resource group belongs to a subscription".into(),
            });
        }
        self.extend(&format!("resourceGroups/{group}"))
    }

    /// The resource `name` of type `namespace_type` (`Microsoft.Compute/virtualMachines`)
    /// in this scope (an extension resource if this is a resource).
    pub fn with_provider(&self, namespace_type: &str, name: &str) -> Result<ArmId, IdError> {
        self.extend(&format!("providers/{namespace_type}/{name}"))
    }

    /// The child resource `name` of type `child_type` (`subnets`) of this
    /// resource.
    pub fn with_child(&self, child_type: &str, name: &str) -> Result<ArmId, IdError> {
        if self.kind() != ScopeKind::Resource {
            return Err(IdError {
                text: format!("{}/{child_type}/{name}", self.display),
                reason: "a child type follows a resource".into(),
            });
        }
        self.extend(&format!("{child_type}/{name}"))
    }

    fn extend(&self, tail: &str) -> Result<ArmId, IdError> {
        let base = if self.is_root() { "" } else { &self.display };
        ArmId::parse(&format!("{base}/{tail}"))
    }

    /// The lower-cased id (what compares, and what Cedar and the audit log
    /// see).
    pub fn as_str(&self) -> &str {
        &self.lower
    }

    /// The id in the casing it was given.
    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn is_root(&self) -> bool {
        self.levels.is_empty()
    }

    /// What the id names.
    pub fn kind(&self) -> ScopeKind {
        self.levels.last().map_or(ScopeKind::Tenant, |l| l.kind)
    }

    fn segment(&self, i: usize) -> &str {
        &self.lower[self.segments[i].clone()]
    }

    fn segment_display(&self, i: usize) -> &str {
        &self.display[self.segments[i].clone()]
    }

    fn level(&self, kind: ScopeKind) -> Option<&Level> {
        self.levels.iter().find(|l| l.kind == kind)
    }

    /// The subscription id (lower-cased), at or below subscription scope.
    pub fn subscription(&self) -> Option<&str> {
        self.level(ScopeKind::Subscription).map(|_| self.segment(1))
    }

    /// The resource group name (lower-cased), at or below group scope.
    pub fn resource_group(&self) -> Option<&str> {
        self.level(ScopeKind::ResourceGroup)
            .map(|_| self.segment(3))
    }

    /// The management group name (lower-cased), at or below a management
    /// group named by the id.
    pub fn management_group(&self) -> Option<&str> {
        self.level(ScopeKind::ManagementGroup)
            .map(|_| self.segment(3))
    }

    /// The last name of the id (lower-cased): the resource, group,
    /// subscription or management group it names; `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.levels.last().map(|l| self.segment(l.end - 1))
    }

    /// [`ArmId::name`] in the casing it was given.
    pub fn display_name(&self) -> Option<&str> {
        self.levels.last().map(|l| self.segment_display(l.end - 1))
    }

    /// The scope of `kind` this id is in (itself if it is one).
    pub fn ancestor(&self, kind: ScopeKind) -> Option<ArmId> {
        if kind == ScopeKind::Tenant {
            return Some(ArmId::root());
        }
        let n = self.levels.iter().position(|l| l.kind == kind)?;
        Some(self.truncated(n + 1))
    }

    /// The lower-cased type of the resource or management group the id
    /// names: `microsoft.compute/virtualmachines`, child types joined
    /// (`microsoft.sql/servers/databases`), an extension resource's own
    /// (`microsoft.authorization/roleassignments`). `None` for the root,
    /// a subscription or a resource group.
    pub fn resource_type(&self) -> Option<String> {
        let level = self.levels.last()?;
        if !matches!(level.kind, ScopeKind::Resource | ScopeKind::ManagementGroup) {
            return None;
        }
        let p = level.provider;
        let mut ty = format!("{}/{}", self.segment(p + 1), self.segment(p + 2));
        // Child types are every other segment after the first name.
        let mut i = p + 4;
        while i < level.end {
            ty.push('/');
            ty.push_str(self.segment(i));
            i += 2;
        }
        Some(ty)
    }

    /// The provider chain of the resource the id names, in the id's
    /// casing; `None` unless it names a resource.
    pub fn provider_path(&self) -> Option<ProviderPath<'_>> {
        let level = self
            .levels
            .last()
            .filter(|l| l.kind == ScopeKind::Resource)?;
        let p = level.provider;
        let mut types = vec![self.segment_display(p + 2)];
        let mut names = vec![self.segment_display(p + 3)];
        let mut i = p + 4;
        while i + 1 < level.end {
            types.push(self.segment_display(i));
            names.push(self.segment_display(i + 1));
            i += 2;
        }
        let parent = self
            .levels
            .iter()
            .rev()
            .find(|l| l.end <= p)
            .map_or(ScopeKind::Tenant, |l| l.kind);
        Some(ProviderPath {
            namespace: self.segment_display(p + 1),
            types,
            names,
            parent,
        })
    }

    /// The scope directly containing this one: a child resource's parent,
    /// an extension resource's resource, a top-level resource's group
    /// (subscription, management group or root), a group's subscription;
    /// the root for a subscription (which management group holds it is
    /// not in the id) and for a management group. `None` for the root.
    pub fn parent(&self) -> Option<ArmId> {
        let n = self.levels.len();
        (n > 0).then(|| self.truncated(n - 1))
    }

    /// This id and every scope containing it, narrowest first, ending with
    /// the root.
    pub fn ancestors(&self) -> Vec<ArmId> {
        (0..=self.levels.len())
            .rev()
            .map(|n| self.truncated(n))
            .collect()
    }

    /// The id of its first `levels` scopes.
    fn truncated(&self, levels: usize) -> ArmId {
        if levels == 0 {
            return ArmId::root();
        }
        if levels == self.levels.len() {
            return self.clone();
        }
        let end = self.levels[levels - 1].end;
        let bytes = self.segments[end - 1].end;
        ArmId {
            lower: self.lower[..bytes].to_owned(),
            display: self.display[..bytes].to_owned(),
            segments: self.segments[..end].to_vec(),
            levels: self.levels[..levels].to_vec(),
        }
    }

    /// Whether `other` is this scope or inside it (the root contains
    /// everything).
    pub fn contains(&self, other: &ArmId) -> bool {
        let n = self.segments.len();
        n == 0
            || (other.segments.len() >= n
                && other.levels.iter().any(|l| l.end == n)
                && (0..n).all(|i| self.segment(i) == other.segment(i)))
    }
}

fn parse(text: &str, trailing: Trailing) -> Result<ArmId, IdError> {
    let error = |reason: &str| IdError {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = text.trim();
    let Some(body) = trimmed.strip_prefix('/') else {
        return Err(error("it does not start with `/`"));
    };
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        return Ok(ArmId::root());
    }
    let display = format!("/{body}");
    let lower = display.to_ascii_lowercase();
    let mut segments = Vec::new();
    let mut at = 1;
    for seg in body.split('/') {
        if let Some(problem) = segment_problem(seg) {
            return Err(error(&format!("segment {seg:?}: {problem}")));
        }
        segments.push(at..at + seg.len());
        at += seg.len() + 1;
    }
    let segs: Vec<&str> = segments.iter().map(|r| &lower[r.clone()]).collect();
    let levels = levels_of(&segs, trailing).map_err(|reason| error(&reason))?;
    // A trailing collection is dropped: the id is the scope containing it.
    let end = levels.last().map_or(0, |l| l.end);
    if end == 0 {
        return Ok(ArmId::root());
    }
    let bytes = segments[end - 1].end;
    segments.truncate(end);
    Ok(ArmId {
        lower: lower[..bytes].to_owned(),
        display: display[..bytes].to_owned(),
        segments,
        levels,
    })
}

/// The scopes `segs` (lower-cased) pass through.
fn levels_of(segs: &[&str], trailing: Trailing) -> Result<Vec<Level>, String> {
    let lenient = trailing == Trailing::Enclosing;
    let mut levels = Vec::new();
    let mut i = 0;
    match segs {
        ["subscriptions", _, ..] => {
            levels.push(Level {
                kind: ScopeKind::Subscription,
                end: 2,
                provider: 0,
            });
            i = 2;
            match segs.get(2..) {
                Some(["resourcegroups", _, ..]) => {
                    levels.push(Level {
                        kind: ScopeKind::ResourceGroup,
                        end: 4,
                        provider: 0,
                    });
                    i = 4;
                }
                Some(["resourcegroups"]) if lenient => return Ok(levels),
                Some(["resourcegroups"]) => {
                    return Err("`resourceGroups` has no group name".into());
                }
                _ => {}
            }
        }
        ["subscriptions"] if lenient => return Ok(levels),
        ["subscriptions"] => return Err("`subscriptions` has no subscription id".into()),
        [
            "providers",
            "microsoft.management",
            "managementgroups",
            _,
            ..,
        ] => {
            levels.push(Level {
                kind: ScopeKind::ManagementGroup,
                end: 4,
                provider: 0,
            });
            i = 4;
        }
        ["providers", ..] => {}
        _ => {
            return Err("expected /subscriptions/, /providers/ or a management group".to_owned());
        }
    }
    // Provider chains: providers/{ns}/{type}/{name}[/{type}/{name}...],
    // each possibly followed by an extension resource's own.
    while i < segs.len() {
        if segs[i] != "providers" {
            return Err(format!("expected `providers`, found {:?}", segs[i]));
        }
        let provider = i;
        match (segs.get(i + 1), segs.get(i + 2), segs.get(i + 3)) {
            (Some(ns), _, _) if !ns.contains('.') => {
                return Err(format!(
                    "{ns:?} is not a resource provider namespace (like Microsoft.Compute)"
                ));
            }
            (_, _, Some(_)) => {}
            _ if lenient => return Ok(levels),
            (None, _, _) => return Err("`providers` has no namespace".into()),
            (Some(_), None, _) => return Err("the namespace has no resource type".into()),
            (Some(_), Some(ty), None) => {
                return Err(format!("resource type {ty:?} has no name"));
            }
        }
        levels.push(Level {
            kind: ScopeKind::Resource,
            end: i + 4,
            provider,
        });
        i += 4;
        while i < segs.len() && segs[i] != "providers" {
            if i + 1 >= segs.len() {
                if lenient {
                    return Ok(levels);
                }
                return Err(format!("child type {:?} has no name", segs[i]));
            }
            levels.push(Level {
                kind: ScopeKind::Resource,
                end: i + 2,
                provider,
            });
            i += 2;
        }
    }
    Ok(levels)
}

impl fmt::Display for ArmId {
    /// The lower-cased id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lower)
    }
}

impl fmt::Debug for ArmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArmId({:?})", self.display)
    }
}

impl PartialEq for ArmId {
    fn eq(&self, other: &Self) -> bool {
        self.lower == other.lower
    }
}

impl Eq for ArmId {}

impl PartialEq<str> for ArmId {
    /// Compares with the lower-cased id, as given (not lower-cased).
    fn eq(&self, other: &str) -> bool {
        self.lower == other
    }
}

impl PartialEq<&str> for ArmId {
    fn eq(&self, other: &&str) -> bool {
        self.lower == *other
    }
}

impl PartialEq<String> for ArmId {
    fn eq(&self, other: &String) -> bool {
        self.lower == *other
    }
}

impl Hash for ArmId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.lower.hash(state);
    }
}

impl PartialOrd for ArmId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ArmId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.lower.cmp(&other.lower)
    }
}

impl FromStr for ArmId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ArmId::parse(s)
    }
}

impl Serialize for ArmId {
    /// As the lower-cased id.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.lower)
    }
}

impl<'de> Deserialize<'de> for ArmId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ArmId::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "0B1F6471-1BF0-4DDA-AEC3-111122223333";
    const SUB_LOWER: &str = "0b1f6471-1bf0-4dda-aec3-111122223333";

    fn id(text: &str) -> ArmId {
        ArmId::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn kinds(id: &ArmId) -> Vec<(ScopeKind, String)> {
        id.ancestors()
            .iter()
            .map(|a| (a.kind(), a.as_str().to_owned()))
            .collect()
    }

    #[test]
    fn ids_compare_ignoring_case_and_keep_their_casing_for_display() {
        let vm = id(&format!(
            "/subscriptions/{SUB}/resourceGroups/Dev-Web/providers/Microsoft.Compute/virtualMachines/Web-01"
        ));
        let same = id(&format!(
            "/SUBSCRIPTIONS/{SUB_LOWER}/resourcegroups/dev-web/providers/microsoft.compute/VIRTUALMACHINES/web-01/"
        ));
        assert_eq!(vm, same);
        assert_eq!(
            vm.as_str(),
            format!(
                "/subscriptions/{SUB_LOWER}/resourcegroups/dev-web/providers/microsoft.compute/virtualmachines/web-01"
            )
        );
        assert_eq!(
            vm.display(),
            format!(
                "/subscriptions/{SUB}/resourceGroups/Dev-Web/providers/Microsoft.Compute/virtualMachines/Web-01"
            )
        );
        assert_eq!(vm.to_string(), vm.as_str());
        let hashed: std::collections::HashSet<ArmId> = [vm.clone(), same].into();
        assert_eq!(hashed.len(), 1);
        assert_eq!(serde_json::to_value(&vm).unwrap(), vm.as_str());
        let back: ArmId = serde_json::from_value(serde_json::json!(vm.display())).unwrap();
        assert_eq!(back, vm);
        assert_eq!(vm.kind(), ScopeKind::Resource);
        assert_eq!(vm.subscription(), Some(SUB_LOWER));
        assert_eq!(vm.resource_group(), Some("dev-web"));
        assert_eq!(vm.name(), Some("web-01"));
        assert_eq!(
            vm.resource_type().as_deref(),
            Some("microsoft.compute/virtualmachines")
        );
    }

    #[test]
    fn subscription_group_and_management_group_scopes() {
        let root = id("/");
        assert!(root.is_root());
        assert_eq!(
            (root.kind(), root.as_str(), root.name()),
            (ScopeKind::Tenant, "/", None)
        );
        assert_eq!(root.parent(), None);
        assert_eq!(ArmId::root(), root);

        let sub = id(&format!("/subscriptions/{SUB}"));
        assert_eq!(sub.kind(), ScopeKind::Subscription);
        assert_eq!(
            (sub.subscription(), sub.resource_group()),
            (Some(SUB_LOWER), None)
        );
        assert_eq!(sub.resource_type(), None);
        assert_eq!(sub.parent(), Some(ArmId::root()));

        let rg = id(&format!("/subscriptions/{SUB}/resourceGroups/RG"));
        assert_eq!(rg.kind(), ScopeKind::ResourceGroup);
        assert_eq!(rg.name(), Some("rg"));
        assert_eq!(rg.parent(), Some(sub.clone()));
        assert_eq!(rg.display_name(), Some("RG"));
        assert_eq!(rg.ancestor(ScopeKind::Subscription), Some(sub.clone()));
        assert_eq!(rg.ancestor(ScopeKind::Tenant), Some(ArmId::root()));
        assert_eq!(sub.ancestor(ScopeKind::ResourceGroup), None);
        assert_eq!(sub.with_resource_group("RG").unwrap(), rg);

        let mg = id("/providers/Microsoft.Management/managementGroups/Root-MG");
        assert_eq!(mg.kind(), ScopeKind::ManagementGroup);
        assert_eq!(mg.management_group(), Some("root-mg"));
        assert_eq!(mg.subscription(), None);
        assert_eq!(
            mg.resource_type().as_deref(),
            Some("microsoft.management/managementgroups")
        );
        assert_eq!(mg.parent(), Some(ArmId::root()));
        let on_mg = id(
            "/providers/Microsoft.Management/managementGroups/Root-MG/providers/Microsoft.Authorization/roleAssignments/ra1",
        );
        assert_eq!(on_mg.parent(), Some(mg.clone()));
        assert_eq!(on_mg.management_group(), Some("root-mg"));

        // A tenant-level resource.
        let tenant_level = id("/providers/Microsoft.Billing/billingAccounts/b1");
        assert_eq!(tenant_level.kind(), ScopeKind::Resource);
        assert_eq!(tenant_level.parent(), Some(ArmId::root()));
    }

    #[test]
    fn nested_child_and_extension_resources() {
        let db = id(
            "/subscriptions/S1/resourceGroups/Dev-App/providers/Microsoft.Sql/servers/db1/databases/Orders",
        );
        assert_eq!(
            kinds(&db),
            [
                (
                    ScopeKind::Resource,
                    "/subscriptions/s1/resourcegroups/dev-app/providers/microsoft.sql/servers/db1/databases/orders".to_owned()
                ),
                (
                    ScopeKind::Resource,
                    "/subscriptions/s1/resourcegroups/dev-app/providers/microsoft.sql/servers/db1".to_owned()
                ),
                (ScopeKind::ResourceGroup, "/subscriptions/s1/resourcegroups/dev-app".to_owned()),
                (ScopeKind::Subscription, "/subscriptions/s1".to_owned()),
                (ScopeKind::Tenant, "/".to_owned()),
            ]
        );
        assert_eq!(
            db.resource_type().as_deref(),
            Some("microsoft.sql/servers/databases")
        );
        assert_eq!(db.name(), Some("orders"));
        let path = db.provider_path().unwrap();
        assert_eq!(path.namespace, "Microsoft.Sql");
        assert_eq!(path.types, ["servers", "databases"]);
        assert_eq!(path.names, ["db1", "Orders"]);
        assert_eq!(path.parent, ScopeKind::ResourceGroup);

        let ds = id(
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Insights/diagnosticSettings/ds",
        );
        assert_eq!(
            ds.resource_type().as_deref(),
            Some("microsoft.insights/diagnosticsettings")
        );
        let vm = ds.parent().unwrap();
        assert_eq!(
            vm.resource_type().as_deref(),
            Some("microsoft.compute/virtualmachines")
        );
        assert_eq!(ds.provider_path().unwrap().parent, ScopeKind::Resource);
        assert_eq!(ds.resource_group(), Some("rg"));

        let subnet = id("/subscriptions/s1/resourceGroups/rg")
            .with_provider("Microsoft.Network/virtualNetworks", "vnet")
            .and_then(|v| v.with_child("subnets", "Default"))
            .unwrap();
        assert_eq!(
            subnet.as_str(),
            "/subscriptions/s1/resourcegroups/rg/providers/microsoft.network/virtualnetworks/vnet/subnets/default"
        );
        assert_eq!(
            subnet.resource_type().as_deref(),
            Some("microsoft.network/virtualnetworks/subnets")
        );
    }

    #[test]
    fn scopes_contain_what_is_below_them() {
        let sub = id("/subscriptions/s1");
        let rg = id("/subscriptions/S1/resourceGroups/RG");
        let vm = id(
            "/subscriptions/s1/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        );
        let other_rg = id("/subscriptions/s1/resourcegroups/rg2");
        let prefix_only = id("/subscriptions/s1/resourcegroups/rg-2");
        assert!(ArmId::root().contains(&vm));
        assert!(sub.contains(&rg) && sub.contains(&vm) && rg.contains(&vm));
        assert!(rg.contains(&rg), "a scope contains itself");
        assert!(!rg.contains(&sub) && !vm.contains(&rg));
        assert!(!rg.contains(&other_rg) && !rg.contains(&prefix_only));
        assert!(!id("/subscriptions/s2").contains(&vm));
        assert!(!vm.contains(&ArmId::root()));
    }

    #[test]
    fn collections_stand_for_the_scope_containing_them() {
        for (text, scope) in [
            ("/subscriptions", "/"),
            ("/subscriptions/s1/resourceGroups", "/subscriptions/s1"),
            ("/subscriptions/s1/providers", "/subscriptions/s1"),
            (
                "/subscriptions/s1/providers/Microsoft.Compute",
                "/subscriptions/s1",
            ),
            (
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
                "/subscriptions/s1/resourcegroups/rg",
            ),
            (
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/extensions",
                "/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1",
            ),
            ("/providers/Microsoft.Compute", "/"),
        ] {
            assert_eq!(ArmId::parse_scope(text).unwrap().as_str(), scope, "{text}");
            assert!(ArmId::parse(text).is_err(), "strict: {text}");
        }
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for (bad, says) in [
            ("", "does not start with `/`"),
            ("subscriptions/x", "does not start with `/`"),
            ("/subscriptions", "no subscription id"),
            ("/subscriptions//resourceGroups/rg", "empty"),
            ("/subscriptions/x/resourceGroups", "no group name"),
            (
                "/subscriptions/x/providers/Microsoft.Compute/virtualMachines",
                "has no name",
            ),
            (
                "/subscriptions/x/resourceGroups/rg/vm",
                "expected `providers`",
            ),
            (
                "/subscriptions/x/providers/compute/virtualMachines/vm",
                "namespace",
            ),
            (
                "/subscriptions/x/resourceGroups/rg/providers/A.B/t/a/../../b",
                "relative",
            ),
            ("/subscriptions/x/resourceGroups/a?b", "/ \\ ? # { } \""),
            ("/subscriptions/x/resourceGroups/a#b", "/ \\ ? # { } \""),
            ("/subscriptions/x/resourceGroups/a\u{7}b", "control"),
            ("/subscriptions/x/resourceGroups/a\\b", "/ \\ ? # { } \""),
            ("/subscriptions/x/resourceGroups/a\"b", "/ \\ ? # { } \""),
            ("/subscriptions/x/resourceGroups/rg//", "empty"),
            ("/foo/bar", "expected /subscriptions/"),
            ("/subscriptions/s1/x/y", "expected `providers`"),
        ] {
            let error = ArmId::parse(bad).expect_err(bad);
            assert!(error.to_string().contains(says), "{bad}: {error}");
            assert!(error.to_string().contains("is not an ARM resource id"));
        }
        assert!(ArmId::parse(&format!("/subscriptions/{}", "x".repeat(1025))).is_err());
        assert!(ArmId::parse_scope("/subscriptions/s1/x/y").is_err());
        assert!(id("/").with_resource_group("rg").is_err());
        assert!(id("/subscriptions/s1").with_child("subnets", "x").is_err());
        assert!(
            id("/subscriptions/s1")
                .with_provider("A.B/t", "a/b")
                .is_err()
        );
    }

    #[test]
    fn segments() {
        for good in ["vm-01", "Contoso Production", "a.b", "ünïcode", "x%y"] {
            assert!(is_valid_segment(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a?b", "a#b", "a\nb", "{x}"] {
            assert!(!is_valid_segment(bad), "{bad}");
        }
    }
}
