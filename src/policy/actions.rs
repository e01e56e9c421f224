//! The Cedar form of an operation's action, built once per policy set.
//!
//! Which action entity an operation is, its groups and its ancestors depend
//! only on the operation, its class and the schema, yet building them
//! (resolving wildcard groups by name, parsing every uid) costs more than
//! a decision's evaluation. A set keeps what it built for each
//! `(class, operation)` it has seen, at most [`MAX_ACTIONS`] (then it starts
//! again); a reload builds a new set with an empty cache. Failures are not
//! kept: the operation is resolved again next time and fails the same way.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use cedar_policy::{Entity, EntityUid};

use super::closed::Closed;
use super::request::{self, Types};
use super::schema::SchemaParts;

/// Operations a set keeps.
const MAX_ACTIONS: usize = 4096;

/// One operation's action.
pub(crate) struct Action {
    /// Whether the schema declares it (the request is then validated).
    pub declared: bool,
    pub uid: EntityUid,
    /// The action entity and its groups.
    pub entities: Vec<Entity>,
    /// The same, closed (a part of its requests' stores).
    pub closed: Closed,
    /// Its ancestors, sorted (part of a slice's key).
    pub ancestors: Vec<EntityUid>,
}

/// The actions a set has built: class → operation (as called) → action.
#[derive(Default)]
pub(crate) struct Actions {
    built: Mutex<HashMap<String, HashMap<String, Arc<Action>>>>,
}

impl Actions {
    /// The action of `azure_op` in `class`.
    pub fn get(
        &self,
        parts: &SchemaParts,
        types: &Types,
        azure_op: &str,
        class: &str,
    ) -> Result<Arc<Action>, String> {
        if let Some(found) = self
            .lock()
            .get(class)
            .and_then(|operations| operations.get(azure_op))
        {
            return Ok(found.clone());
        }
        let action = Arc::new(build(parts, types, azure_op, class)?);
        let mut built = self.lock();
        if built.values().map(HashMap::len).sum::<usize>() >= MAX_ACTIONS {
            built.clear();
        }
        built
            .entry(class.to_owned())
            .or_default()
            .insert(azure_op.to_owned(), action.clone());
        Ok(action)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Arc<Action>>>> {
        self.built.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn build(
    parts: &SchemaParts,
    types: &Types,
    azure_op: &str,
    class: &str,
) -> Result<Action, String> {
    let resolved = parts.actions.resolve(azure_op, class)?;
    let (uid, entities) = request::action_entities(types, &resolved)?;
    let ancestors = resolved
        .entities
        .iter()
        .flat_map(|(name, parents)| std::iter::once(name).chain(parents))
        .map(|name| types.action(name))
        .collect::<Result<BTreeSet<_>, _>>()?
        .into_iter()
        .filter(|a| a != &uid)
        .collect();
    let closed = Closed::new(entities.iter().map(|e| e.as_ref().clone()))?;
    Ok(Action {
        declared: resolved.declared,
        uid,
        entities,
        closed,
        ancestors,
    })
}
