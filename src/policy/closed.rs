//! A request's entity store, assembled from parts whose transitive closure
//! is already computed.
//!
//! Cedar computes the transitive closure of a store's hierarchy when it
//! builds the store, over every entity in it; for a request on a resource
//! not seen before that was a quarter of the decision. A request's store is
//! the union of three parts with no edge between them, because their
//! entity types are disjoint and each part's parents are of its own types:
//!
//! - the principal and its groups and roles (`User` or `ServicePrincipal`,
//!   `Group`, `AppRole`);
//! - the action and its action groups (`Action`);
//! - the resource and the scopes containing it (the scope types).
//!
//! The closure of such a union is the union of the parts' closures. Each
//! part is closed by Cedar's own `compute_tc` (which also rejects a cycle):
//! the principal's and the action's once, when they are built and kept.
//! The resource's part is itself two layers: the scopes above the described
//! resources (a resource group, its subscription, management groups, the
//! tenant), closed by Cedar once per set of their facts and kept; and the
//! described resources (the target and what it is nested in), closed per
//! store on top of them ([`Closed::beneath`]: a new entity's ancestors are
//! its parents and theirs, which are already known). The store is then
//! assembled from shared entities, telling Cedar the closure is done; the
//! store of the principal's, the action's and the scopes' parts is kept
//! too ([`Closed::base`]), and a store on a new resource below the same
//! scopes copies it and adds only the described resources ([`Closed::on`]).
//! A test compares stores built these ways with stores Cedar closes whole.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use cedar_policy::Entities;
use cedar_policy_core::ast;
use cedar_policy_core::entities::{Entities as CoreEntities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use cedar_policy_core::transitive_closure::compute_tc;

/// Entities with their ancestors closed: every ancestor, within the set,
/// of each entity is listed on it.
pub(crate) struct Closed(Vec<Arc<ast::Entity>>);

impl Closed {
    /// `entities` (the first of each uid kept, as a store keeps it), with
    /// their ancestors closed by Cedar.
    pub fn new(entities: impl IntoIterator<Item = ast::Entity>) -> Result<Self, String> {
        let mut by_uid: HashMap<ast::EntityUID, ast::Entity> = HashMap::new();
        for entity in entities {
            if let Entry::Vacant(slot) = by_uid.entry(entity.uid().clone()) {
                slot.insert(entity);
            }
        }
        compute_tc(&mut by_uid, true)
            .map_err(|e| format!("entities: the hierarchy has a cycle: {e}"))?;
        Ok(Closed(by_uid.into_values().map(Arc::new).collect()))
    }

    /// `entities` closed on top of `above`, which must be closed: each
    /// entity's parents are in `above`, among the entities after it, or
    /// nowhere in either (then they are ancestors without ancestors of
    /// their own, as in a store). Refuses, where Cedar's closure of the
    /// union could differ, an entity whose parent comes before it (or is
    /// itself), a uid in both or twice, and an entity of `above` with one
    /// of `entities` among its ancestors.
    pub fn beneath(mut entities: Vec<ast::Entity>, above: &Closed) -> Result<Closed, String> {
        let refuse = |why: &str, uid: &ast::EntityUID| {
            Err(format!("entities: {uid} cannot be closed on top: {why}"))
        };
        for (i, entity) in entities.iter().enumerate() {
            let uid = entity.uid();
            if entities[..i].iter().any(|e| e.uid() == uid) {
                return refuse("it is given twice", uid);
            }
            if above.find(uid).is_some() {
                return refuse("it is also above", uid);
            }
            if above.0.iter().any(|a| a.is_descendant_of(uid)) {
                return refuse("an entity above descends from it", uid);
            }
        }
        for i in (0..entities.len()).rev() {
            let (before, after) = entities.split_at_mut(i);
            let (entity, after) = after.split_first_mut().expect("i is in range");
            let mut inherited = Vec::new();
            for parent in entity.parents() {
                if before.iter().any(|e| e.uid() == parent) || entity.uid() == parent {
                    return refuse("a parent of it comes before it", entity.uid());
                }
                if let Some(closed) = after.iter().find(|e| e.uid() == parent) {
                    inherited.extend(closed.ancestors().cloned());
                } else if let Some(closed) = above.find(parent) {
                    inherited.extend(closed.ancestors().cloned());
                }
            }
            for ancestor in inherited {
                entity.add_indirect_ancestor(ancestor);
            }
        }
        Ok(Closed(entities.into_iter().map(Arc::new).collect()))
    }

    fn find(&self, uid: &ast::EntityUID) -> Option<&ast::Entity> {
        self.0.iter().find(|e| e.uid() == uid).map(Arc::as_ref)
    }

    /// The store holding `parts`, which must be closed parts of a request
    /// with no edge between them (see the module's documentation), or
    /// layers of one closed on top of each other.
    pub fn store(parts: &[&Closed]) -> Result<Entities, String> {
        Self::base(parts).map(Entities::from)
    }

    /// [`Closed::store`] as Cedar's own value, to be kept and extended
    /// with [`Closed::on`].
    pub fn base(parts: &[&Closed]) -> Result<CoreEntities, String> {
        Self::add(CoreEntities::new(), parts)
    }

    /// The store holding `base`'s parts and `parts`, under the same
    /// conditions as [`Closed::store`]. Copying a kept base is cheaper
    /// than hashing its entities into a new store again, and gives the
    /// same store.
    pub fn on(base: &CoreEntities, parts: &[&Closed]) -> Result<Entities, String> {
        Self::add(base.clone(), parts).map(Entities::from)
    }

    fn add(store: CoreEntities, parts: &[&Closed]) -> Result<CoreEntities, String> {
        store
            .add_entities(
                parts.iter().flat_map(|p| p.0.iter().cloned()),
                None::<&NoEntitiesSchema>,
                TCComputation::AssumeAlreadyComputed,
                Extensions::all_available(),
            )
            .map_err(|e| format!("entities: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use cedar_policy::Entity;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::identity::{Principal, PrincipalKind};
    use crate::policy::ManagementGroupConfig;
    use crate::policy::actions::Actions;
    use crate::policy::request::{self, OperationFacts, RolesByGroup, Types};
    use crate::policy::schema;
    use crate::policy::scope::Hierarchy;

    /// Scopes of every shape: the tenant, management groups, subscriptions
    /// in and out of one, resource groups, resources, nested and extension
    /// resources.
    fn scope(rng: &mut impl Rng, i: usize) -> String {
        let sub = ["s1", "s2", "s3"][rng.gen_range(0..3)];
        let rg = format!(
            "/subscriptions/{sub}/resourceGroups/rg-{}",
            rng.gen_range(0..3)
        );
        let vm = format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm{i}");
        match rng.gen_range(0..9) {
            0 => "/".to_owned(),
            1 => "/providers/Microsoft.Management/managementGroups/child".to_owned(),
            2 => format!("/subscriptions/{sub}"),
            3 => rg,
            4 => format!("{vm}/extensions/ext{i}"),
            5 => format!("{vm}/providers/Microsoft.Authorization/roleAssignments/ra{i}"),
            _ => vm,
        }
    }

    #[test]
    fn stores_from_closed_parts_equal_stores_cedar_closes_whole() {
        let operations: Vec<(String, String)> = crate::catalog::Catalog::builtin()
            .unwrap()
            .operation_classes();
        let parts = schema::build(
            Path::new("schemas/warden.cedarschema"),
            crate::policy::BUILTIN_SCHEMA,
            &operations,
        )
        .unwrap();
        let types = Types::new().unwrap();
        let actions = Actions::default();
        let hierarchy = Hierarchy::from_config(&BTreeMap::from([
            (
                "root".to_owned(),
                ManagementGroupConfig {
                    parent: None,
                    subscriptions: Vec::new(),
                },
            ),
            (
                "child".to_owned(),
                ManagementGroupConfig {
                    parent: Some("root".into()),
                    subscriptions: vec!["s1".into(), "s2".into()],
                },
            ),
        ]))
        .unwrap();
        let roles_by_group = RolesByGroup::from([
            ("g1".to_owned(), vec!["Developer".to_owned()]),
            (
                "g2".to_owned(),
                vec!["Reader".to_owned(), "Operator".to_owned()],
            ),
        ]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(41);
        let mut sizes = std::collections::BTreeSet::new();
        for i in 0..2_000 {
            let mut principal = Principal::anonymous(None);
            principal.oid = format!("o{}", rng.gen_range(0..5));
            if rng.gen_bool(0.2) {
                principal.kind = PrincipalKind::Application;
            }
            for (role, p) in [("Reader", 0.4), ("Developer", 0.3), ("Contributor", 0.2)] {
                if rng.gen_bool(p) {
                    principal.roles.insert(role.into());
                }
            }
            for group in ["g1", "g2", "G1", "team-7"] {
                if rng.gen_bool(0.3) {
                    principal.groups.insert(group.into());
                }
            }
            let (op, class) = &operations[rng.gen_range(0..operations.len())];
            let mut facts = OperationFacts::new(op, class, &scope(&mut rng, i));
            if rng.gen_bool(0.5) {
                facts.tags.insert("Env".into(), "Prod".into());
                facts.location = Some("WestEurope".into());
            }
            if rng.gen_bool(0.5) {
                facts
                    .resource_group_tags
                    .insert("owner".into(), "ops".into());
            }

            let (_, principal_entities) =
                request::principal_entities(&types, &principal, &roles_by_group).unwrap();
            let action = actions.get(&parts, &types, op, class).unwrap();
            let (_, _, resource_entities) =
                request::resource_entities(&types, &facts, &hierarchy).unwrap();
            let whole = request::entities(
                principal_entities
                    .iter()
                    .cloned()
                    .chain(action.entities.iter().cloned())
                    .chain(resource_entities.iter().cloned().map(Entity::from))
                    .collect(),
            )
            .unwrap();
            let principal_part =
                Closed::new(principal_entities.iter().map(|e| e.as_ref().clone())).unwrap();
            // The resource's part closed whole, and in two layers.
            let resource_part = Closed::new(resource_entities).unwrap();
            let chain = request::ResourceChain::new(&facts, &hierarchy).unwrap();
            let above = Closed::new(
                chain
                    .entities(&types, chain.described()..chain.len())
                    .unwrap(),
            )
            .unwrap();
            let described = Closed::beneath(
                chain.entities(&types, 0..chain.described()).unwrap(),
                &above,
            )
            .unwrap();
            let base = Closed::base(&[&principal_part, &action.closed, &above]).unwrap();
            for assembled in [
                Closed::store(&[&principal_part, &action.closed, &resource_part]).unwrap(),
                Closed::store(&[&principal_part, &action.closed, &above, &described]).unwrap(),
                Closed::on(&base, &[&described]).unwrap(),
            ] {
                assert!(
                    whole.as_ref().deep_eq(assembled.as_ref()),
                    "request {i}: {principal:?} {facts:?}\nwhole: {}\nassembled: {}",
                    whole.to_json_value().unwrap(),
                    assembled.to_json_value().unwrap()
                );
            }
            sizes.insert(whole.iter().count());
        }
        // Hierarchies of many depths were compared.
        assert!(sizes.len() > 5, "{sizes:?}");
    }

    #[test]
    fn entities_close_on_top_of_a_closed_part_as_cedar_closes_them_whole() {
        let uid = |id: &str| -> ast::EntityUID { format!("Group::\"{id}\"").parse().unwrap() };
        let node = |id: &str, parents: &[&str]| {
            ast::Entity::new_with_attr_partial_value(
                uid(id),
                [],
                Default::default(),
                parents.iter().map(|p| uid(p)).collect(),
                [],
            )
        };
        // Above: top <- mid <- low, and `side` with a parent nowhere.
        let above_nodes = || {
            vec![
                node("low", &["mid"]),
                node("mid", &["top"]),
                node("top", &[]),
                node("side", &["elsewhere"]),
            ]
        };
        let above = Closed::new(above_nodes()).unwrap();
        let whole = |entities: Vec<ast::Entity>| {
            let all = entities.into_iter().chain(above_nodes()).map(Entity::from);
            request::entities(all.collect()).unwrap()
        };
        // A chain beneath `low` whose ends have a second parent: `a` one
        // above (`side`, itself under a parent nowhere), `c` one nowhere.
        let layered = vec![
            node("a", &["b", "side"]),
            node("b", &["c"]),
            node("c", &["low", "ghost"]),
        ];
        let closed = Closed::beneath(layered.clone(), &above).unwrap();
        let store = Closed::store(&[&above, &closed]).unwrap();
        assert!(
            whole(layered).as_ref().deep_eq(store.as_ref()),
            "{}",
            store.to_json_value().unwrap()
        );
        let a = closed.find(&uid("a")).unwrap();
        for ancestor in ["b", "c", "low", "mid", "top", "ghost", "side", "elsewhere"] {
            assert!(a.is_descendant_of(&uid(ancestor)), "{ancestor}");
        }

        // Refused: where the union's closure is not the layers'.
        for (entities, why) in [
            (vec![node("a", &["b"]), node("b", &["a"])], "comes before"),
            (vec![node("a", &["a"])], "comes before"),
            (vec![node("b", &["c"]), node("a", &["b"])], "comes before"),
            (vec![node("a", &[]), node("a", &[])], "twice"),
            (vec![node("mid", &[])], "also above"),
            (vec![node("elsewhere", &[])], "descends from it"),
        ] {
            let error = Closed::beneath(entities, &above).err().expect("refused");
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn a_cycle_within_a_part_is_an_error() {
        let uid = |id: &str| -> ast::EntityUID { format!("Group::\"{id}\"").parse().unwrap() };
        let node = |id: &str, parent: &str| {
            ast::Entity::new_with_attr_partial_value(
                uid(id),
                [],
                Default::default(),
                [uid(parent)].into_iter().collect(),
                [],
            )
        };
        let error = Closed::new([node("a", "b"), node("b", "a")])
            .err()
            .expect("a cycle is refused");
        assert!(error.contains("cycle"), "{error}");
    }
}
