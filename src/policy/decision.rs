//! The authorization decision, as the pipeline acts on it and the audit log
//! records it.

use serde::{Deserialize, Serialize};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// What a deny asks of the pipeline, from the `@advice` of the forbid
/// policies that denied.
///
/// When several apply, the strongest wins: `deny` over `step_up` over
/// `require_approval` (an approval is only requested after a step-up,
/// since JIT requests themselves require MFA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    /// Ask for a JIT approval; retry with the grant in `context.jit`.
    RequireApproval,
    /// Ask the user to sign in again with MFA (claims challenge or tool
    /// error), then retry.
    StepUp,
    /// Nothing the caller can do makes this call allowed.
    Deny,
}

impl Advice {
    pub fn as_str(self) -> &'static str {
        match self {
            Advice::RequireApproval => "require_approval",
            Advice::StepUp => "step_up",
            Advice::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "require_approval" => Some(Advice::RequireApproval),
            "step_up" => Some(Advice::StepUp),
            "deny" => Some(Advice::Deny),
            _ => None,
        }
    }
}

/// An alert raised by a satisfied `@alert` policy, whatever the decision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Alert {
    /// The policy id.
    pub policy: String,
    /// The alert name (`@alert("<name>")`, else the policy id).
    pub alert: String,
}

/// The decision on one operation of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationDecision {
    pub azure_op: String,
    /// The Cedar resource: the lower-cased ARM id.
    pub resource: String,
    pub effect: Effect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// The determining policies: the satisfied permits on allow; on deny the
    /// satisfied forbids (none: no permit applied), or, after an evaluation
    /// error, the policies that failed.
    pub policies: Vec<String>,
}

/// The result of evaluating a call against one set of policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Allow iff every operation is allowed.
    pub effect: Effect,
    /// On deny: the strongest advice of the denied operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// The determining policies of the decision: of every operation on
    /// allow, of the denied ones on deny (sorted, unique).
    pub policies: Vec<String>,
    pub operations: Vec<OperationDecision>,
}

impl Outcome {
    /// Combines the decisions on a call's operations.
    pub(crate) fn of(operations: Vec<OperationDecision>) -> Self {
        let denied: Vec<&OperationDecision> = operations
            .iter()
            .filter(|o| o.effect == Effect::Deny)
            .collect();
        let (effect, advice, deciding): (_, _, Vec<&OperationDecision>) = if operations.is_empty() {
            (Effect::Deny, Some(Advice::Deny), Vec::new())
        } else if denied.is_empty() {
            (Effect::Allow, None, operations.iter().collect())
        } else {
            let advice = denied.iter().filter_map(|o| o.advice).max();
            (Effect::Deny, advice.or(Some(Advice::Deny)), denied)
        };
        let mut policies: Vec<String> = deciding
            .iter()
            .flat_map(|o| o.policies.iter().cloned())
            .collect();
        policies.sort();
        policies.dedup();
        Outcome {
            effect,
            advice,
            policies,
            operations,
        }
    }
}

/// What shadow evaluation found: the decision had the shadow policies (or,
/// under the global shadow flag, all policies) been enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// `true`: the global shadow flag is set and nothing is enforced;
    /// `false`: the set has `@shadow` policies.
    pub global: bool,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Whether the enforced decision differs (effect or advice).
    pub differs: bool,
}

/// The authorization decision on a call. Serialized into the audit record
/// (`decision`): `{effect, advice?, policies, operations, policy_set,
/// errors?, alerts?, shadow?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The enforced decision.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Hash of the policy set that decided (see `policy_load` records).
    pub policy_set: String,
    /// Why evaluation failed, if it did (the call is then denied with
    /// advice `deny`): request-building errors and policy evaluation errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Alerts raised by satisfied `@alert` policies (e.g. break-glass use);
    /// the pipeline must signal them (risk alert record, security
    /// notification) whatever the effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
}

impl Decision {
    pub fn effect(&self) -> Effect {
        self.outcome.effect
    }

    pub fn is_allowed(&self) -> bool {
        self.outcome.effect == Effect::Allow
    }

    pub fn advice(&self) -> Option<Advice> {
        self.outcome.advice
    }

    /// Determining policy ids.
    pub fn policies(&self) -> &[String] {
        &self.outcome.policies
    }

    /// A deny that no policy made: the request could not be evaluated.
    pub fn error(policy_set: &str, error: impl Into<String>) -> Self {
        Decision {
            outcome: Outcome::of(Vec::new()),
            policy_set: policy_set.to_owned(),
            errors: vec![error.into()],
            alerts: Vec::new(),
            shadow: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(effect: Effect, advice: Option<Advice>, policies: &[&str]) -> OperationDecision {
        OperationDecision {
            azure_op: "A/b/read".into(),
            resource: "/".into(),
            effect,
            advice,
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn a_call_is_allowed_only_if_every_operation_is() {
        let o = Outcome::of(vec![
            op(Effect::Allow, None, &["b", "a"]),
            op(Effect::Allow, None, &["a"]),
        ]);
        assert_eq!((o.effect, o.advice), (Effect::Allow, None));
        assert_eq!(o.policies, ["a", "b"]);
        let o = Outcome::of(vec![
            op(Effect::Allow, None, &["reader"]),
            op(Effect::Deny, Some(Advice::RequireApproval), &["jit"]),
            op(Effect::Deny, Some(Advice::StepUp), &["mfa"]),
        ]);
        assert_eq!((o.effect, o.advice), (Effect::Deny, Some(Advice::StepUp)));
        assert_eq!(o.policies, ["jit", "mfa"]);
        let o = Outcome::of(Vec::new());
        assert_eq!((o.effect, o.advice), (Effect::Deny, Some(Advice::Deny)));
    }

    #[test]
    fn serializes_flat_with_effect_for_the_audit_record() {
        let d = Decision {
            outcome: Outcome::of(vec![op(Effect::Deny, Some(Advice::StepUp), &["mfa"])]),
            policy_set: "h".into(),
            errors: Vec::new(),
            alerts: vec![Alert {
                policy: "bg".into(),
                alert: "break_glass".into(),
            }],
            shadow: None,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["effect"], "deny");
        assert_eq!(v["advice"], "step_up");
        assert_eq!(v["policies"], serde_json::json!(["mfa"]));
        assert_eq!(v["policy_set"], "h");
        assert_eq!(v["alerts"][0]["alert"], "break_glass");
        assert!(v.get("errors").is_none() && v.get("shadow").is_none());
        let back: Decision = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }
}
