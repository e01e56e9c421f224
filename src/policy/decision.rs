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

/// The result of evaluating a call against one set of policies. Built only
/// by [`Outcome::of`], so its effect always agrees with its operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RecordedOutcome")]
pub struct Outcome {
    /// Allow iff every operation is allowed.
    effect: Effect,
    /// On deny: the strongest advice of the denied operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advice: Option<Advice>,
    /// The determining policies of the decision: of every operation on
    /// allow, of the denied ones on deny (sorted, unique).
    policies: Vec<String>,
    operations: Vec<OperationDecision>,
}

/// An [`Outcome`] as serialized: read back through [`Outcome::of`], so
/// that a record cannot make an inconsistent one.
#[derive(Deserialize)]
struct RecordedOutcome {
    operations: Vec<OperationDecision>,
}

impl From<RecordedOutcome> for Outcome {
    fn from(recorded: RecordedOutcome) -> Self {
        Outcome::of(recorded.operations)
    }
}

impl Outcome {
    /// Combines the decisions on a call's operations: allowed iff there is
    /// at least one and every one is allowed.
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

    /// The outcome when the call could not be evaluated: every operation is
    /// denied with advice `deny`. An operation the policies allowed keeps
    /// no determining policy (its permits did not decide the deny).
    fn failed(self) -> Self {
        let operations = self
            .operations
            .into_iter()
            .map(|mut op| {
                if op.effect == Effect::Allow {
                    op.policies.clear();
                }
                op.effect = Effect::Deny;
                op.advice = Some(Advice::Deny);
                op
            })
            .collect();
        Outcome::of(operations)
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// On deny: what the deny asks of the pipeline.
    pub fn advice(&self) -> Option<Advice> {
        self.advice
    }

    /// Determining policy ids (sorted, unique).
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    /// The decision on each operation, in the call's order.
    pub fn operations(&self) -> &[OperationDecision] {
        &self.operations
    }
}

/// What shadow evaluation found: the decision had the shadow policies (or,
/// under the global shadow flag, all policies) been enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// `true`: the global shadow flag is set and policies are not enforced;
    /// `false`: the set has `@shadow` policies.
    global: bool,
    #[serde(flatten)]
    outcome: Outcome,
    /// The evaluation errors of the shadowed evaluation (they would have
    /// denied the call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    /// Whether the enforced decision differs (effect or advice).
    differs: bool,
}

impl Shadow {
    /// What the shadowed evaluation decided; whether it differs from the
    /// enforced decision is worked out by the [`Decision`] holding it.
    pub(crate) fn new(global: bool, outcome: Outcome, errors: Vec<String>) -> Self {
        let outcome = if errors.is_empty() {
            outcome
        } else {
            outcome.failed()
        };
        Shadow {
            global,
            outcome,
            errors,
            differs: false,
        }
    }

    pub fn global(&self) -> bool {
        self.global
    }

    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    pub fn differs(&self) -> bool {
        self.differs
    }
}

/// The authorization decision on a call. Serialized into the audit record
/// (`decision`): `{effect, advice?, policies, operations, policy_set,
/// errors?, alerts?, shadow?}`.
///
/// Fail closed by construction: a decision that carries an error (the
/// call's resources could not be resolved, its request could not be
/// built, a policy failed to evaluate) is a deny with advice `deny`,
/// whatever the policies said. Its fields are private: it is made only
/// by the engine, and [`Decision::fail`] can only make it stricter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RecordedDecision")]
pub struct Decision {
    /// The enforced decision.
    #[serde(flatten)]
    outcome: Outcome,
    /// Hash of the policy set that decided (see `policy_load` records).
    policy_set: String,
    /// Why the call could not be evaluated, if it could not (it is then
    /// denied with advice `deny`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    errors: Vec<String>,
    /// Alerts raised by satisfied `@alert` policies (e.g. break-glass use);
    /// the pipeline must signal them (risk alert record, security
    /// notification) whatever the effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    alerts: Vec<Alert>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shadow: Option<Shadow>,
}

/// A [`Decision`] as serialized: read back through [`Decision::new`], so
/// that a record cannot make an allow that carries an error.
#[derive(Deserialize)]
struct RecordedDecision {
    #[serde(flatten)]
    outcome: Outcome,
    policy_set: String,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    alerts: Vec<Alert>,
    #[serde(default)]
    shadow: Option<Shadow>,
}

impl From<RecordedDecision> for Decision {
    fn from(r: RecordedDecision) -> Self {
        Decision::new(r.outcome, r.policy_set, r.errors, r.alerts, r.shadow)
    }
}

impl Decision {
    /// The decision the engine made: denied with advice `deny` if there is
    /// any error.
    pub(crate) fn new(
        outcome: Outcome,
        policy_set: impl Into<String>,
        errors: Vec<String>,
        alerts: Vec<Alert>,
        shadow: Option<Shadow>,
    ) -> Self {
        let outcome = if errors.is_empty() {
            outcome
        } else {
            outcome.failed()
        };
        let mut decision = Decision {
            outcome,
            policy_set: policy_set.into(),
            errors,
            alerts,
            shadow,
        };
        decision.compare_shadow();
        decision
    }

    /// A deny that no policy made: the request could not be evaluated.
    pub fn error(policy_set: &str, error: impl Into<String>) -> Self {
        Decision::new(
            Outcome::of(Vec::new()),
            policy_set,
            vec![error.into()],
            Vec::new(),
            None,
        )
    }

    /// Records an error found outside the engine (the call's resources
    /// could not be resolved, its approval could not be recorded, ...):
    /// from now on the decision is a deny with advice `deny`.
    pub fn fail(&mut self, error: impl Into<String>) {
        self.errors.push(error.into());
        let outcome = std::mem::replace(&mut self.outcome, Outcome::of(Vec::new()));
        self.outcome = outcome.failed();
        self.compare_shadow();
    }

    fn compare_shadow(&mut self) {
        if let Some(shadow) = &mut self.shadow {
            shadow.differs = shadow.outcome.effect != self.outcome.effect
                || shadow.outcome.advice != self.outcome.advice;
        }
    }

    /// The enforced decision.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub fn effect(&self) -> Effect {
        self.outcome.effect
    }

    pub fn is_allowed(&self) -> bool {
        self.outcome.is_allowed()
    }

    pub fn advice(&self) -> Option<Advice> {
        self.outcome.advice
    }

    /// Determining policy ids.
    pub fn policies(&self) -> &[String] {
        &self.outcome.policies
    }

    /// The decision on each operation.
    pub fn operations(&self) -> &[OperationDecision] {
        &self.outcome.operations
    }

    /// Hash of the policy set that decided.
    pub fn policy_set(&self) -> &str {
        &self.policy_set
    }

    /// Why the call could not be evaluated (empty when it was).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Alerts raised by satisfied `@alert` policies.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// What shadowed policies would have decided, when there are any.
    pub fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
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
    #[test]
    fn a_decision_with_an_error_is_a_deny_with_advice_deny() {
        let permitted = Outcome::of(vec![op(Effect::Allow, None, &["everyone"])]);
        assert!(permitted.is_allowed());
        let d = Decision::new(
            permitted.clone(),
            "h",
            vec!["request: bad".into()],
            Vec::new(),
            None,
        );
        assert_eq!((d.effect(), d.advice()), (Effect::Deny, Some(Advice::Deny)));
        assert!(
            d.policies().is_empty(),
            "a permit does not determine a deny"
        );
        assert_eq!(d.operations()[0].effect, Effect::Deny);
        assert_eq!(d.operations()[0].advice, Some(Advice::Deny));

        // An error found later denies too, whatever the advice was.
        let mut d = Decision::new(permitted, "h", Vec::new(), Vec::new(), None);
        assert!(d.is_allowed());
        d.fail("the call's resources cannot be resolved: x");
        assert_eq!((d.effect(), d.advice()), (Effect::Deny, Some(Advice::Deny)));
        assert_eq!(d.errors(), ["the call's resources cannot be resolved: x"]);
        let held = Outcome::of(vec![op(
            Effect::Deny,
            Some(Advice::RequireApproval),
            &["jit"],
        )]);
        let mut d = Decision::new(held, "h", Vec::new(), Vec::new(), None);
        d.fail("the approval request could not be recorded");
        assert_eq!(d.advice(), Some(Advice::Deny));
        assert_eq!(d.policies(), ["jit"], "a forbid that applied still decided");

        let d = Decision::error("h", "no operation");
        assert_eq!((d.effect(), d.advice()), (Effect::Deny, Some(Advice::Deny)));
        assert_eq!(d.policy_set(), "h");
    }

    #[test]
    fn a_record_cannot_make_an_allow_that_carries_an_error() {
        let forged = serde_json::json!({
            "effect": "allow",
            "policies": ["everyone"],
            "operations": [{
                "azure_op": "A/b/read", "resource": "/", "effect": "allow", "policies": ["everyone"]
            }],
            "policy_set": "h",
            "errors": ["the call's resources cannot be resolved: x"],
        });
        let d: Decision = serde_json::from_value(forged).unwrap();
        assert_eq!((d.effect(), d.advice()), (Effect::Deny, Some(Advice::Deny)));
        // Nor an effect its operations do not support.
        let inconsistent = serde_json::json!({
            "effect": "allow",
            "policies": [],
            "operations": [{"azure_op": "A/b/read", "resource": "/", "effect": "deny", "advice": "step_up", "policies": ["mfa"]}],
            "policy_set": "h",
        });
        let d: Decision = serde_json::from_value(inconsistent).unwrap();
        assert_eq!(
            (d.effect(), d.advice()),
            (Effect::Deny, Some(Advice::StepUp))
        );
        assert_eq!(d.policies(), ["mfa"]);
    }

    #[test]
    fn whether_the_shadow_differs_follows_the_enforced_decision() {
        let allowed = || Outcome::of(vec![op(Effect::Allow, None, &["everyone"])]);
        let shadow = Shadow::new(false, allowed(), Vec::new());
        let mut d = Decision::new(allowed(), "h", Vec::new(), Vec::new(), Some(shadow));
        assert!(!d.shadow().unwrap().differs());
        d.fail("x");
        assert!(d.shadow().unwrap().differs());
        // A shadowed evaluation error would have denied.
        let shadow = Shadow::new(true, allowed(), vec!["p: overflow".into()]);
        assert_eq!(shadow.outcome().effect(), Effect::Deny);
        assert_eq!(shadow.errors(), ["p: overflow"]);
    }
}
