//! Residual check for `tools/list` filtering.
//!
//! Partial evaluation with the resource and context unknown leaves a
//! residual for each policy whose outcome depends on them. Cedar does not
//! simplify `<unknown> && false`, so a permit whose `unless` is already
//! decided by the principal and action (the NotActions of a custom role,
//! say) still shows as a residual. This module folds boolean constants in a
//! residual (its JSON form) to recognise such permits as unsatisfiable.

use cedar_policy::Policy;
use serde_json::Value;

/// Whether `residual` can never be satisfied, whatever the unknowns turn
/// out to be (it is false, or an error, which Warden denies anyway).
pub(crate) fn never_satisfied(residual: &Policy) -> bool {
    let Ok(json) = residual.to_json() else {
        return false;
    };
    let Some(conditions) = json.get("conditions").and_then(Value::as_array) else {
        return false;
    };
    conditions.iter().any(|c| {
        let body = c.get("body").map(constant);
        match c.get("kind").and_then(Value::as_str) {
            Some("when") => body == Some(Some(false)),
            Some("unless") => body == Some(Some(true)),
            _ => false,
        }
    })
}

/// The value of a boolean expression in Cedar's JSON form when it is
/// decided without the unknowns. `a && false` is `false` (or an error) for
/// any `a`, `a || true` is `true` (or an error); errors deny, so both count.
fn constant(expr: &Value) -> Option<bool> {
    let obj = expr.as_object()?;
    let (op, arg) = obj.iter().next()?;
    let side = |key: &str| arg.get(key).and_then(constant);
    match op.as_str() {
        "Value" => arg.as_bool(),
        "!" => side("arg").map(|b| !b),
        "&&" => match (side("left"), side("right")) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        "||" => match (side("left"), side("right")) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        "if-then-else" => match side("if") {
            Some(true) => side("then"),
            Some(false) => side("else"),
            None => match (side("then"), side("else")) {
                (Some(a), Some(b)) if a == b => Some(a),
                _ => None,
            },
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn folds_constants_around_unknowns() {
        let unknown = json!({ "unknown": [{ "Value": "resource" }] });
        assert_eq!(
            constant(&json!({ "&&": { "left": unknown, "right": { "Value": false } } })),
            Some(false)
        );
        assert_eq!(
            constant(&json!({ "&&": { "left": unknown, "right": { "Value": true } } })),
            None
        );
        assert_eq!(
            constant(
                &json!({ "||": { "left": unknown, "right": { "!": { "arg": { "Value": false } } } } })
            ),
            Some(true)
        );
        assert_eq!(
            constant(
                &json!({ "if-then-else": { "if": unknown, "then": { "Value": false }, "else": { "Value": false } } })
            ),
            Some(false)
        );
        assert_eq!(constant(&unknown), None);
    }

    #[test]
    fn residual_policies_with_a_false_condition_are_never_satisfied() {
        let p = |when: Value, kind: &str| {
            Policy::from_json(
                None,
                json!({
                    "effect": "permit",
                    "principal": { "op": "All" },
                    "action": { "op": "All" },
                    "resource": { "op": "All" },
                    "conditions": [{ "kind": kind, "body": when }],
                }),
            )
            .unwrap()
        };
        let has = json!({ "has": { "left": { "Var": "resource" }, "attr": "x" } });
        assert!(never_satisfied(&p(
            json!({ "&&": { "left": has, "right": { "Value": false } } }),
            "when"
        )));
        assert!(!never_satisfied(&p(has.clone(), "when")));
        assert!(never_satisfied(&p(
            json!({ "||": { "left": has, "right": { "Value": true } } }),
            "unless"
        )));
    }
}
