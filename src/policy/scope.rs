//! ARM ids → the chain of Azure scopes that contain them:
//! `Tenant ⊃ ManagementGroup ⊃ Subscription ⊃ ResourceGroup ⊃ Resource`.
//!
//! Ids are parsed as [`ArmId`]s. ARM ids are case-insensitive, Cedar ids
//! are not: everything here is lower-cased. Which management group holds a subscription is not in the
//! id; it comes from `[policy.management_groups]`.

use std::collections::{BTreeMap, HashMap};

use super::ManagementGroupConfig;
use super::error::PolicyError;
use crate::azure::id::{ArmId, ScopeKind, is_valid_segment};

/// The Cedar entity type of a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Tenant,
    ManagementGroup,
    Subscription,
    ResourceGroup,
    Resource,
}

impl From<ScopeKind> for Kind {
    fn from(kind: ScopeKind) -> Self {
        match kind {
            ScopeKind::Tenant => Kind::Tenant,
            ScopeKind::ManagementGroup => Kind::ManagementGroup,
            ScopeKind::Subscription => Kind::Subscription,
            ScopeKind::ResourceGroup => Kind::ResourceGroup,
            ScopeKind::Resource => Kind::Resource,
        }
    }
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Tenant => "Tenant",
            Kind::ManagementGroup => "ManagementGroup",
            Kind::Subscription => "Subscription",
            Kind::ResourceGroup => "ResourceGroup",
            Kind::Resource => "Resource",
        }
    }
}

/// One scope, as a Cedar entity: lower-cased id and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub kind: Kind,
    /// Lower-cased ARM id; `/` for the tenant.
    pub id: String,
    pub name: String,
    pub resource_type: String,
    pub subscription_id: Option<String>,
    pub resource_group: Option<String>,
    /// The scope directly containing this one (`None` for the tenant).
    pub parent: Option<(Kind, String)>,
}

pub(crate) const TENANT_ID: &str = "/";
const MG_PREFIX: &str = "/providers/microsoft.management/managementgroups/";

/// The management-group tree from configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hierarchy {
    /// Management group → its parent (`None`: directly under the tenant).
    parent_of_group: HashMap<String, Option<String>>,
    /// Subscription id → its management group.
    group_of_subscription: HashMap<String, String>,
}

impl Hierarchy {
    pub fn from_config(
        groups: &BTreeMap<String, ManagementGroupConfig>,
    ) -> Result<Self, PolicyError> {
        let error = |key: String, message: String| PolicyError::Config { key, message };
        let mut h = Hierarchy::default();
        for (name, group) in groups {
            let key = format!("management_groups.{name}");
            if !is_valid_segment(name) {
                return Err(error(key, "not a management group name".into()));
            }
            let parent = group.parent.as_ref().map(|p| p.to_ascii_lowercase());
            if let Some(p) = &parent
                && !groups.keys().any(|k| k.eq_ignore_ascii_case(p))
            {
                return Err(error(
                    format!("{key}.parent"),
                    format!("management group {p:?} is not configured"),
                ));
            }
            if h.parent_of_group
                .insert(name.to_ascii_lowercase(), parent)
                .is_some()
            {
                return Err(error(key, "configured twice (names ignore case)".into()));
            }
            for sub in &group.subscriptions {
                if !is_valid_segment(sub) {
                    return Err(error(
                        format!("{key}.subscriptions"),
                        format!("{sub:?} is not a subscription id"),
                    ));
                }
                if let Some(other) = h
                    .group_of_subscription
                    .insert(sub.to_ascii_lowercase(), name.to_ascii_lowercase())
                {
                    return Err(error(
                        format!("{key}.subscriptions"),
                        format!("subscription {sub:?} is also in management group {other:?}"),
                    ));
                }
            }
        }
        for name in h.parent_of_group.keys() {
            if h.ancestors(name).is_none() {
                return Err(error(
                    format!("management_groups.{name}.parent"),
                    "the parents form a cycle".into(),
                ));
            }
        }
        Ok(h)
    }

    /// The management groups above `group` (nearest first), or `None` on a
    /// cycle.
    fn ancestors(&self, group: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut next = self.parent_of_group.get(group).cloned().flatten();
        while let Some(g) = next {
            if g == group || out.contains(&g) {
                return None;
            }
            next = self.parent_of_group.get(&g).cloned().flatten();
            out.push(g);
        }
        Some(out)
    }

    /// The management group chain of `group` itself and above it, as scopes,
    /// ending with the tenant.
    fn group_chain(&self, group: &str, out: &mut Vec<Scope>) {
        let mut chain = vec![group.to_owned()];
        chain.extend(self.ancestors(group).unwrap_or_default());
        for (i, g) in chain.iter().enumerate() {
            let parent = match chain.get(i + 1) {
                Some(p) => (Kind::ManagementGroup, format!("{MG_PREFIX}{p}")),
                None => (Kind::Tenant, TENANT_ID.to_owned()),
            };
            out.push(Scope {
                kind: Kind::ManagementGroup,
                id: format!("{MG_PREFIX}{g}"),
                name: g.clone(),
                resource_type: "microsoft.management/managementgroups".into(),
                subscription_id: None,
                resource_group: None,
                parent: Some(parent),
            });
        }
        out.push(tenant());
    }

    /// The scope `id` names and every scope containing it, narrowest first,
    /// ending with the tenant. A trailing collection segment without a name
    /// (`.../resourcegroups/rg/providers/microsoft.compute/virtualmachines`)
    /// stands for the scope that contains the collection; an empty id is
    /// the tenant.
    pub fn chain(&self, id: &str) -> Result<Vec<Scope>, String> {
        if id.trim().is_empty() {
            return Ok(vec![tenant()]);
        }
        let id = ArmId::parse_scope(id).map_err(|e| e.to_string())?;
        // The management group above everything else: the id's own, or the
        // configured one of its subscription.
        let top_group = match id.management_group() {
            Some(group) => Some(group.to_owned()),
            None => id
                .subscription()
                .and_then(|sub| self.group_of_subscription.get(sub).cloned()),
        };
        let ancestors = id.ancestors();
        let mut out: Vec<Scope> = Vec::new();
        for (i, scope) in ancestors.iter().enumerate() {
            let kind = scope.kind();
            if matches!(kind, ScopeKind::Tenant | ScopeKind::ManagementGroup) {
                // Added below, with the configured groups above them.
                break;
            }
            let parent = match ancestors.get(i + 1) {
                Some(p) if p.is_root() => match &top_group {
                    Some(g) => (Kind::ManagementGroup, format!("{MG_PREFIX}{g}")),
                    None => (Kind::Tenant, TENANT_ID.to_owned()),
                },
                Some(p) => (p.kind().into(), p.as_str().to_owned()),
                None => (Kind::Tenant, TENANT_ID.to_owned()),
            };
            let resource_type = match kind {
                ScopeKind::Subscription => "microsoft.resources/subscriptions".to_owned(),
                ScopeKind::ResourceGroup => "microsoft.resources/resourcegroups".to_owned(),
                _ => scope.resource_type().unwrap_or_default(),
            };
            out.push(Scope {
                kind: kind.into(),
                id: scope.as_str().to_owned(),
                name: scope.name().unwrap_or(TENANT_ID).to_owned(),
                resource_type,
                subscription_id: scope.subscription().map(str::to_owned),
                resource_group: scope.resource_group().map(str::to_owned),
                parent: Some(parent),
            });
        }
        match top_group {
            Some(g) => self.group_chain(&g, &mut out),
            None => out.push(tenant()),
        }
        Ok(out)
    }
}

fn tenant() -> Scope {
    Scope {
        kind: Kind::Tenant,
        id: TENANT_ID.into(),
        name: TENANT_ID.into(),
        resource_type: "microsoft.resources/tenants".into(),
        subscription_id: None,
        resource_group: None,
        parent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(chain: &[Scope]) -> Vec<(&'static str, &str)> {
        chain
            .iter()
            .map(|s| (s.kind.type_name(), s.id.as_str()))
            .collect()
    }

    #[test]
    fn resource_chain_is_lower_cased_and_nested() {
        let h = Hierarchy::default();
        let chain = h
            .chain("/subscriptions/S1/resourceGroups/Dev-App/providers/Microsoft.Sql/servers/db1/databases/Orders")
            .unwrap();
        assert_eq!(
            ids(&chain),
            [
                (
                    "Resource",
                    "/subscriptions/s1/resourcegroups/dev-app/providers/microsoft.sql/servers/db1/databases/orders"
                ),
                (
                    "Resource",
                    "/subscriptions/s1/resourcegroups/dev-app/providers/microsoft.sql/servers/db1"
                ),
                ("ResourceGroup", "/subscriptions/s1/resourcegroups/dev-app"),
                ("Subscription", "/subscriptions/s1"),
                ("Tenant", "/"),
            ]
        );
        let db = &chain[0];
        assert_eq!(db.resource_type, "microsoft.sql/servers/databases");
        assert_eq!(db.name, "orders");
        assert_eq!(db.resource_group.as_deref(), Some("dev-app"));
        assert_eq!(db.subscription_id.as_deref(), Some("s1"));
        assert_eq!(db.parent.as_ref().unwrap().1, chain[1].id);
        assert_eq!(chain[2].resource_group.as_deref(), Some("dev-app"));
        assert_eq!(chain[3].parent, Some((Kind::Tenant, "/".into())));
    }

    #[test]
    fn extension_resources_and_collections() {
        let h = Hierarchy::default();
        let chain = h
            .chain("/subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1/providers/microsoft.insights/diagnosticsettings/ds")
            .unwrap();
        assert_eq!(
            chain[0].resource_type,
            "microsoft.insights/diagnosticsettings"
        );
        assert_eq!(chain[1].resource_type, "microsoft.compute/virtualmachines");
        let chain = h
            .chain(
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
            )
            .unwrap();
        assert_eq!(chain[0].kind, Kind::ResourceGroup);
        let chain = h.chain("/subscriptions/s1/resourceGroups").unwrap();
        assert_eq!(chain[0].kind, Kind::Subscription);
        assert_eq!(ids(&h.chain("/").unwrap()), [("Tenant", "/")]);
        assert_eq!(ids(&h.chain("").unwrap()), [("Tenant", "/")]);
        for bad in [
            "subscriptions/s1",
            "/subscriptions//x",
            "/foo/bar",
            "/subscriptions/s1/x/y",
        ] {
            assert!(h.chain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn management_groups_from_configuration() {
        let config = BTreeMap::from([
            (
                "Corp".to_owned(),
                ManagementGroupConfig {
                    parent: None,
                    subscriptions: vec![],
                },
            ),
            (
                "online".to_owned(),
                ManagementGroupConfig {
                    parent: Some("corp".into()),
                    subscriptions: vec!["S1".into()],
                },
            ),
        ]);
        let h = Hierarchy::from_config(&config).unwrap();
        let chain = h.chain("/subscriptions/s1/resourcegroups/rg").unwrap();
        assert_eq!(
            ids(&chain),
            [
                ("ResourceGroup", "/subscriptions/s1/resourcegroups/rg"),
                ("Subscription", "/subscriptions/s1"),
                (
                    "ManagementGroup",
                    "/providers/microsoft.management/managementgroups/online"
                ),
                (
                    "ManagementGroup",
                    "/providers/microsoft.management/managementgroups/corp"
                ),
                ("Tenant", "/"),
            ]
        );
        assert_eq!(
            chain[1].parent.as_ref().unwrap().1,
            "/providers/microsoft.management/managementgroups/online"
        );
        let chain = h
            .chain("/providers/Microsoft.Management/managementGroups/online")
            .unwrap();
        assert_eq!(chain.len(), 3);
        let chain = h
            .chain("/providers/Microsoft.Management/managementGroups/online/providers/Microsoft.Authorization/roleAssignments/ra1")
            .unwrap();
        assert_eq!(chain[0].kind, Kind::Resource);
        assert_eq!(
            chain[0].parent.as_ref().unwrap().1,
            "/providers/microsoft.management/managementgroups/online"
        );

        let cycle = BTreeMap::from([
            (
                "a".to_owned(),
                ManagementGroupConfig {
                    parent: Some("b".into()),
                    subscriptions: vec![],
                },
            ),
            (
                "b".to_owned(),
                ManagementGroupConfig {
                    parent: Some("a".into()),
                    subscriptions: vec![],
                },
            ),
        ]);
        assert!(Hierarchy::from_config(&cycle).is_err());
        let dangling = BTreeMap::from([(
            "a".to_owned(),
            ManagementGroupConfig {
                parent: Some("zz".into()),
                subscriptions: vec![],
            },
        )]);
        let err = Hierarchy::from_config(&dangling).err().unwrap();
        assert!(
            err.to_string().contains("management_groups.a.parent"),
            "{err}"
        );
    }
}
