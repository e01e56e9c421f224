//! Slicing a policy set by scope, so that a decision evaluates only the
//! policies that could apply to it.
//!
//! Cedar evaluates every policy of the set it is given, and most of a
//! large set's policies name other principals or other actions in their
//! scope (`permit (principal in Group::"team-7", action in
//! Action::"delete", ...)`). A policy whose principal or action scope does
//! not hold is false without evaluating its conditions, so it can neither
//! allow, forbid nor fail: leaving it out changes neither the decision,
//! nor the policies Cedar names, nor its errors. A slice keeps every policy
//! whose scope *may* hold for a request's principal and action, judged
//! conservatively:
//!
//! - principal `in E` or `is T in E`: kept if `E` is one of the principal's
//!   parents (its groups and app roles; they have no parents of their own),
//!   or if `E` is of the principal's own type (it may be the principal);
//!   `== E` is kept if `E` is of the principal's type; `is T` if `T` is;
//! - action `== A`: kept if `A` is the request's action; `in [A, ...]` if
//!   one of them is the action or one of its ancestors;
//! - resource scopes are left to Cedar.
//!
//! Slices depend only on the principal's type and parents and the action
//! and its ancestors, not on who the principal is, so they are cached by
//! those (at most
//! [`MAX_SLICES`], then the cache starts again); a reload builds new sets
//! with an empty cache. `tests.rs` checks slices against the whole set on
//! every baseline policy test case and on generated requests against a
//! thousand policies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cedar_policy::{
    ActionConstraint, Effect, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
};

/// Slices a set caches.
const MAX_SLICES: usize = 4096;

/// The policies a slice keeps for a request: its permits and its forbids,
/// each evaluated on its own.
pub(crate) struct Slice {
    pub permits: PolicySet,
    pub forbids: PolicySet,
}

/// What a request's slice depends on, and its cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    pub principal_type: EntityTypeName,
    /// The principal's parents, sorted.
    pub parents: Vec<EntityUid>,
    pub action: EntityUid,
    /// The action's ancestors, sorted. An operation of another class than
    /// the one its action is declared with has other ancestors, so these
    /// are part of the key.
    pub ancestors: Vec<EntityUid>,
}

/// A policy set's policies with their scopes, and its cached slices.
pub(crate) struct Slicer {
    policies: Vec<(Policy, PrincipalConstraint, ActionConstraint)>,
    cache: Mutex<HashMap<Scope, Arc<Slice>>>,
}

impl Slicer {
    pub(crate) fn new<'a>(policies: impl Iterator<Item = &'a Policy>) -> Slicer {
        Slicer {
            policies: policies
                .map(|p| (p.clone(), p.principal_constraint(), p.action_constraint()))
                .collect(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The slice for `scope`.
    pub(crate) fn slice(&self, scope: &Scope) -> Result<Arc<Slice>, String> {
        if let Some(found) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
        {
            return Ok(found.clone());
        }
        let mut permits = PolicySet::new();
        let mut forbids = PolicySet::new();
        for (policy, principal, action) in &self.policies {
            if principal_may_hold(principal, scope) && action_may_hold(action, scope) {
                let half = match policy.effect() {
                    Effect::Permit => &mut permits,
                    Effect::Forbid => &mut forbids,
                };
                half.add(policy.clone()).map_err(|e| e.to_string())?;
            }
        }
        let slice = Arc::new(Slice { permits, forbids });
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_SLICES {
            cache.clear();
        }
        cache.insert(scope.clone(), slice.clone());
        Ok(slice)
    }
}

/// Whether `entity` may be the principal or one of its parents.
fn may_contain(entity: &EntityUid, scope: &Scope) -> bool {
    entity.type_name() == &scope.principal_type || scope.parents.contains(entity)
}

fn principal_may_hold(constraint: &PrincipalConstraint, scope: &Scope) -> bool {
    match constraint {
        PrincipalConstraint::Any => true,
        PrincipalConstraint::In(entity) => may_contain(entity, scope),
        PrincipalConstraint::Eq(entity) => entity.type_name() == &scope.principal_type,
        PrincipalConstraint::Is(type_name) => type_name == &scope.principal_type,
        PrincipalConstraint::IsIn(type_name, entity) => {
            type_name == &scope.principal_type && may_contain(entity, scope)
        }
    }
}

fn action_may_hold(constraint: &ActionConstraint, scope: &Scope) -> bool {
    let is_or_above = |a: &EntityUid| a == &scope.action || scope.ancestors.contains(a);
    match constraint {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(action) => action == &scope.action,
        ActionConstraint::In(actions) => actions.iter().any(is_or_above),
    }
}
