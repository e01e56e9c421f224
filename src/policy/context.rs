//! The context of a request (`Context` in the schema), built as the value
//! Cedar would evaluate it to.
//!
//! Cedar's public API takes a context as expressions and evaluates them on
//! every request: each string, set and record is interpreted again, and
//! each `datetime("…")` and `ip("…")` call parsed again. Here the context is
//! built as that evaluated record directly (Cedar's own value types, with
//! its `From<ast::Context>` for the request), and the two extension values
//! are evaluated by Cedar's evaluator once per distinct input and kept: the
//! last `now` (to the millisecond) and the source addresses seen lately. A
//! test builds every shape of context both ways and compares them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cedar_policy::Context;
use cedar_policy_core::ast::{
    self, ExtensionFunction, Literal, PartialValue, Value as Evaluated, ValueKind,
};
use cedar_policy_core::extensions::Extensions;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use smol_str::SmolStr;

use super::memo::Key;
use super::request::CallContext;
use super::schema::{ArgKind, ArgSpec, arg_key};
use crate::identity::Principal;

/// The context record of a call by `principal`, and its [`shape`].
pub(crate) fn build(
    principal: &Principal,
    call: &CallContext,
    args: &[ArgSpec],
) -> Result<(Context, Option<Key>), String> {
    let mut pairs: BTreeMap<SmolStr, Evaluated> = BTreeMap::new();
    pairs.insert("now".into(), extension::now(&call.now)?);
    pairs.insert("mfa".into(), principal.mfa.into());
    pairs.insert("acrs".into(), strings(&principal.acrs));
    pairs.insert("tool".into(), string(&call.tool));
    pairs.insert("facts".into(), string(call.facts.as_str()));
    pairs.insert("args".into(), record(context_args(call, args)?));
    if let Some(ip) = principal.source_ip {
        pairs.insert("source_ip".into(), extension::ip(ip)?);
    }
    if let Some(app) = &principal.client_app {
        pairs.insert("client_app".into(), string(app));
    }
    if let Some(risk) = &call.risk {
        let risk = vec![
            ("score", risk.score.into()),
            ("level", string(&risk.level.to_ascii_lowercase())),
            ("reasons", strings(&risk.reasons)),
        ];
        pairs.insert("risk".into(), record(risk));
    }
    if let Some(jit) = &call.jit {
        let mut grant = vec![
            ("grant_id", string(&jit.grant_id)),
            ("approver", string(&jit.approver)),
            ("expires", extension::datetime(&millis(&jit.expires))?),
        ];
        if let Some(role) = &jit.role {
            grant.push(("role", string(role)));
        }
        if let Some(scope) = &jit.scope {
            grant.push(("scope", string(&scope.to_ascii_lowercase())));
        }
        if !jit.approvers.is_empty() {
            grant.push(("approvers", strings(&jit.approvers)));
        }
        if !jit.operations.is_empty() {
            grant.push(("operations", strings(&jit.operations)));
        }
        pairs.insert("jit".into(), record(grant));
    }
    let mut session = vec![("id", string(&call.session))];
    if let Some(agent) = &call.user_agent {
        session.push(("user_agent", string(agent)));
    }
    pairs.insert("session".into(), record(session));
    let shape = shape(&pairs);
    Ok((ast::Context::Value(Arc::new(pairs)).into(), shape))
}

/// The shape of a context: its attributes, recursively, and the kind of
/// each value (boolean, integer, string, the shapes in a set, record,
/// extension type). Contexts of one shape have one type: the schema's
/// types cannot tell apart two values of one kind (it has no singleton or
/// range types), so they validate against it alike, and a set validates a
/// shape once (see `Engine::build`). `None` when validity depends on a
/// value, not its kind: an entity reference (its type and, for an action or
/// an enumerated type, its id are checked).
fn shape(pairs: &BTreeMap<SmolStr, Evaluated>) -> Option<Key> {
    let mut key = Key::default();
    record_shape(pairs, &mut key)?;
    Some(key)
}

fn record_shape(pairs: &BTreeMap<SmolStr, Evaluated>, key: &mut Key) -> Option<()> {
    key.str("record").count(pairs.len());
    for (name, value) in pairs {
        key.str(name);
        value_shape(value, key)?;
    }
    Some(())
}

fn value_shape(value: &Evaluated, key: &mut Key) -> Option<()> {
    match value.value_kind() {
        ValueKind::Lit(Literal::Bool(_)) => key.str("bool"),
        ValueKind::Lit(Literal::Long(_)) => key.str("long"),
        ValueKind::Lit(Literal::String(_)) => key.str("string"),
        ValueKind::Lit(Literal::EntityUID(_)) => return None,
        ValueKind::Set(set) => {
            // The distinct shapes of its elements, in order.
            let mut kinds: Vec<Key> = Vec::with_capacity(1);
            for item in set.iter() {
                let mut kind = Key::default();
                value_shape(item, &mut kind)?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            kinds.sort();
            key.str("set").count(kinds.len());
            for kind in &kinds {
                key.key(kind);
            }
            key
        }
        ValueKind::Record(pairs) => {
            record_shape(pairs, key)?;
            key
        }
        ValueKind::ExtensionValue(extension) => {
            key.str("extension").str(&extension.typename().to_string())
        }
    };
    Some(())
}

fn string(s: &str) -> Evaluated {
    s.into()
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Evaluated {
    Evaluated::set(items.into_iter().map(|s| string(s)), None)
}

fn record(pairs: Vec<(&str, Evaluated)>) -> Evaluated {
    Evaluated::record(pairs, None)
}

/// A time as the context carries it: RFC 3339 to the millisecond.
fn millis(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The arguments of the call that fill `context.args`: those whose name
/// matches an `Args` attribute ignoring case, `_` and `-`. Strings are
/// lower-cased; `null` counts as absent; any other mismatch of type is an
/// error (so the call is denied rather than a policy silently not seeing
/// the argument).
fn context_args<'a>(
    call: &CallContext,
    specs: &'a [ArgSpec],
) -> Result<Vec<(&'a str, Evaluated)>, String> {
    let Some(Value::Object(arguments)) = &call.arguments else {
        return Ok(Vec::new());
    };
    let mut filled: BTreeMap<&str, (&str, Evaluated)> = BTreeMap::new();
    for (name, value) in arguments {
        let key = arg_key(name);
        let Some(spec) = specs.iter().find(|s| s.key == key) else {
            continue;
        };
        let wrong = |expected: &str| {
            format!(
                "argument {name:?} must be {expected} to be tested by policies (context.args.{})",
                spec.name
            )
        };
        let value = match (spec.kind, value) {
            (_, Value::Null) => continue,
            (ArgKind::String, Value::String(s)) => string(&s.to_ascii_lowercase()),
            (ArgKind::String, _) => return Err(wrong("a string")),
            (ArgKind::Long, Value::Number(n)) => {
                n.as_i64().ok_or_else(|| wrong("an integer"))?.into()
            }
            (ArgKind::Long, _) => return Err(wrong("an integer")),
            (ArgKind::Bool, Value::Bool(b)) => (*b).into(),
            (ArgKind::Bool, _) => return Err(wrong("a boolean")),
            (ArgKind::StringSet, Value::Array(items)) => {
                let items = items
                    .iter()
                    .map(|i| i.as_str().map(|s| string(&s.to_ascii_lowercase())))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| wrong("an array of strings"))?;
                Evaluated::set(items, None)
            }
            (ArgKind::StringSet, _) => return Err(wrong("an array of strings")),
        };
        if let Some((other, _)) = filled.insert(&spec.name, (name, value)) {
            return Err(format!(
                "arguments {other:?} and {name:?} both fill context.args.{}",
                spec.name
            ));
        }
    }
    Ok(filled
        .into_iter()
        .map(|(attr, (_, value))| (attr, value))
        .collect())
}

/// Extension values, evaluated by Cedar once per input and kept.
mod extension {
    use super::*;

    /// Addresses kept (then the cache starts again).
    const MAX_ADDRESSES: usize = 1024;

    static NOW: Mutex<Option<(String, Evaluated)>> = Mutex::new(None);
    static ADDRESSES: LazyLock<Mutex<HashMap<IpAddr, Evaluated>>> = LazyLock::new(Default::default);

    /// `datetime(now)`, at the precision the context carries.
    pub fn now(now: &DateTime<Utc>) -> Result<Evaluated, String> {
        let text = millis(now);
        let mut last = NOW.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, value)) = last.as_ref()
            && *at == text
        {
            return Ok(value.clone());
        }
        let value = datetime(&text)?;
        *last = Some((text, value.clone()));
        Ok(value)
    }

    /// `datetime(text)`.
    pub fn datetime(text: &str) -> Result<Evaluated, String> {
        construct(&DATETIME, text.to_owned())
    }

    /// `ip(address)`.
    pub fn ip(address: IpAddr) -> Result<Evaluated, String> {
        let mut known = ADDRESSES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = known.get(&address) {
            return Ok(value.clone());
        }
        if known.len() >= MAX_ADDRESSES {
            known.clear();
        }
        let value = construct(&IP, address.to_string())?;
        known.insert(address, value.clone());
        Ok(value)
    }

    /// Cedar's constructors of the two extension types, looked up once:
    /// the functions `datetime(...)` and `ip(...)` call in a policy.
    static DATETIME: LazyLock<&'static ExtensionFunction> =
        LazyLock::new(|| constructor("datetime"));
    static IP: LazyLock<&'static ExtensionFunction> = LazyLock::new(|| constructor("ip"));

    fn constructor(name: &str) -> &'static ExtensionFunction {
        let name = ast::Name::unqualified_name(name.parse().expect("an extension function's name"));
        Extensions::all_available()
            .func(&name)
            .expect("Cedar's extensions include datetime and ip")
    }

    /// What `constructor("text")` evaluates to.
    fn construct(constructor: &ExtensionFunction, text: String) -> Result<Evaluated, String> {
        match constructor.call(&[Evaluated::from(text)]) {
            Ok(PartialValue::Value(value)) => Ok(value),
            Ok(PartialValue::Residual(_)) => Err("context: an extension value is unknown".into()),
            Err(e) => Err(format!("context: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::request::{JitFacts, RiskFacts};
    use crate::policy::schema::ArgSpec;
    use cedar_policy::RestrictedExpression;

    /// The context as Cedar's API builds it from expressions: the
    /// reference the direct build must equal.
    fn through_cedar(principal: &Principal, call: &CallContext, args: &[ArgSpec]) -> Context {
        let string = |s: &str| RestrictedExpression::new_string(s.to_owned());
        let strings = |items: &mut dyn Iterator<Item = &String>| {
            RestrictedExpression::new_set(items.map(|s| string(s)).collect::<Vec<_>>())
        };
        let record = |pairs: Vec<(&str, RestrictedExpression)>| {
            RestrictedExpression::new_record(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .unwrap()
        };
        let datetime = |t: &DateTime<Utc>| RestrictedExpression::new_datetime(millis(t));
        let mut pairs = vec![
            ("now", datetime(&call.now)),
            ("mfa", RestrictedExpression::new_bool(principal.mfa)),
            ("acrs", strings(&mut principal.acrs.iter())),
            ("tool", string(&call.tool)),
            ("facts", string(call.facts.as_str())),
        ];
        let mut filled = Vec::new();
        if let Some(Value::Object(arguments)) = &call.arguments {
            for (name, value) in arguments {
                let Some(spec) = args.iter().find(|s| s.key == arg_key(name)) else {
                    continue;
                };
                let expr = match value {
                    Value::Null => continue,
                    Value::String(s) => string(&s.to_ascii_lowercase()),
                    Value::Number(n) => RestrictedExpression::new_long(n.as_i64().unwrap()),
                    Value::Bool(b) => RestrictedExpression::new_bool(*b),
                    Value::Array(items) => RestrictedExpression::new_set(
                        items
                            .iter()
                            .map(|i| string(&i.as_str().unwrap().to_ascii_lowercase())),
                    ),
                    Value::Object(_) => unreachable!("no object arguments here"),
                };
                filled.push((spec.name.as_str(), expr));
            }
        }
        pairs.push(("args", record(filled)));
        if let Some(ip) = principal.source_ip {
            pairs.push(("source_ip", RestrictedExpression::new_ip(ip.to_string())));
        }
        if let Some(app) = &principal.client_app {
            pairs.push(("client_app", string(app)));
        }
        if let Some(risk) = &call.risk {
            pairs.push((
                "risk",
                record(vec![
                    ("score", RestrictedExpression::new_long(risk.score)),
                    ("level", string(&risk.level.to_ascii_lowercase())),
                    ("reasons", strings(&mut risk.reasons.iter())),
                ]),
            ));
        }
        if let Some(jit) = &call.jit {
            let mut grant = vec![
                ("grant_id", string(&jit.grant_id)),
                ("approver", string(&jit.approver)),
                ("expires", datetime(&jit.expires)),
            ];
            if let Some(role) = &jit.role {
                grant.push(("role", string(role)));
            }
            if let Some(scope) = &jit.scope {
                grant.push(("scope", string(&scope.to_ascii_lowercase())));
            }
            if !jit.approvers.is_empty() {
                grant.push(("approvers", strings(&mut jit.approvers.iter())));
            }
            if !jit.operations.is_empty() {
                grant.push(("operations", strings(&mut jit.operations.iter())));
            }
            pairs.push(("jit", record(grant)));
        }
        let mut session = vec![("id", string(&call.session))];
        if let Some(agent) = &call.user_agent {
            session.push(("user_agent", string(agent)));
        }
        pairs.push(("session", record(session)));
        Context::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap()
    }

    fn spec(name: &str, kind: ArgKind) -> ArgSpec {
        ArgSpec {
            name: name.to_owned(),
            key: arg_key(name),
            kind,
        }
    }

    /// Calls of 32 shapes: with and without MFA, a source address (v4 or
    /// v6), a user agent, arguments, risk, a grant and its optional parts.
    fn cases() -> Vec<(Principal, CallContext)> {
        let t0: DateTime<Utc> = "2026-12-07T10:00:00.123456Z".parse().unwrap();
        (0..32u32)
            .map(|shape| {
                let mut principal = Principal::anonymous(None);
                principal.tid = "t1".into();
                principal.oid = "o1".into();
                principal.mfa = shape & 1 != 0;
                principal.acrs = ["c1".to_owned(), "c2".to_owned()].into();
                if shape & 2 != 0 {
                    principal.source_ip = Some(if shape & 4 != 0 {
                        "203.0.113.7".parse().unwrap()
                    } else {
                        "2001:db8::1".parse().unwrap()
                    });
                    principal.client_app = Some("app-1".into());
                }
                let mut call = CallContext::new("Tool.Name", "session-1", t0);
                call.now = t0 + chrono::Duration::milliseconds(i64::from(shape));
                if shape & 8 != 0 {
                    call.user_agent = Some("agent/1".into());
                    call.arguments = Some(serde_json::json!({
                        "VM-Size": "Standard_D2s", "capacity": 3, "force": true,
                        "zones": ["A", "b"], "other": {"x": 1}, "unset": null
                    }));
                    call.risk = Some(RiskFacts {
                        score: 55,
                        level: "HIGH".into(),
                        reasons: vec!["new_country".into()],
                    });
                }
                if shape & 16 != 0 {
                    call.jit = Some(JitFacts {
                        grant_id: "g1".into(),
                        approver: "a1".into(),
                        expires: t0 + chrono::Duration::hours(1),
                        role: (shape & 4 != 0).then(|| "Contributor".into()),
                        scope: Some("/Subscriptions/S1".into()),
                        approvers: vec!["a1".into(), "a2".into()],
                        operations: if shape & 1 != 0 {
                            vec!["Microsoft.Compute/virtualMachines/start/action".into()]
                        } else {
                            Vec::new()
                        },
                    });
                }
                (principal, call)
            })
            .collect()
    }

    #[test]
    fn the_direct_build_is_the_value_cedar_evaluates_the_expressions_to() {
        let args = [
            spec("vm_size", ArgKind::String),
            spec("capacity", ArgKind::Long),
            spec("force", ArgKind::Bool),
            spec("zones", ArgKind::StringSet),
        ];
        let mut cases_built = 0;
        for (shape, (principal, call)) in cases().iter().enumerate() {
            // Twice: the second build takes the kept extension values.
            for _ in 0..2 {
                let (direct, _) = build(principal, call, &args).unwrap();
                assert_eq!(
                    direct,
                    through_cedar(principal, call, &args),
                    "shape {shape}"
                );
                cases_built += 1;
            }
        }
        assert_eq!(cases_built, 64);
    }

    #[test]
    fn contexts_of_one_shape_validate_alike() {
        use std::collections::BTreeSet;
        use std::collections::btree_map::Entry;

        use cedar_policy::{EntityUid, Request, Schema};

        // The schema's context type, and variants that make an optional
        // attribute required or change the type of one.
        let variants = [
            ("", ""),
            ("source_ip?: ipaddr", "source_ip: ipaddr"),
            ("user_agent?: String", "user_agent: String"),
            ("reasons: Set<String>", "reasons: Set<Long>"),
            ("capacity?: Long", "capacity?: String"),
            ("operations?: Set<String>", "operations?: Set<Long>"),
            ("mfa: Bool", "mfa: Long"),
        ];
        let args = [
            spec("vm_size", ArgKind::String),
            spec("capacity", ArgKind::Long),
        ];
        let uid = |s: &str| -> EntityUid { s.parse().unwrap() };
        let mut answers = BTreeSet::new();
        let mut shared = 0;
        for (from, to) in variants {
            let schema = crate::policy::BUILTIN_SCHEMA;
            assert!(schema.contains(from), "{from}");
            let (schema, _) = Schema::from_cedarschema_str(&schema.replacen(from, to, 1)).unwrap();
            let mut by_shape: BTreeMap<Key, bool> = BTreeMap::new();
            for (principal, call) in cases() {
                // The same shape with other values.
                let mut other = (principal.clone(), call.clone());
                other.0.mfa = !principal.mfa;
                other.0.acrs = ["x".to_owned()].into();
                other.1.session = "session-2".into();
                other.1.tool = "Other".into();
                other.1.now = call.now + chrono::Duration::days(1);
                if let Some(risk) = &mut other.1.risk {
                    risk.score = 1;
                    risk.reasons = vec!["a".into(), "b".into()];
                }
                let mut keys = Vec::new();
                for (principal, call) in [(principal, call), other] {
                    let (context, shape) = build(&principal, &call, &args).unwrap();
                    let shape = shape.expect("no entity references");
                    let valid = Request::new(
                        uid(r#"User::"t1/o1""#),
                        uid(r#"Action::"Microsoft.Compute/virtualMachines/read""#),
                        uid(r#"Resource::"/r""#),
                        context,
                        Some(&schema),
                    )
                    .is_ok();
                    answers.insert(valid);
                    match by_shape.entry(shape.clone()) {
                        Entry::Vacant(slot) => {
                            slot.insert(valid);
                        }
                        Entry::Occupied(seen) => {
                            shared += 1;
                            assert_eq!(*seen.get(), valid, "{to}: {call:?}");
                        }
                    }
                    keys.push(shape);
                }
                assert_eq!(keys[0], keys[1], "other values, one shape");
            }
        }
        // Both answers occurred, and shapes were met more than once.
        assert_eq!(answers.len(), 2);
        assert!(shared >= 32 * variants.len(), "{shared}");
    }

    #[test]
    fn arguments_of_the_wrong_type_are_named() {
        let args = [spec("capacity", ArgKind::Long)];
        let principal = Principal::anonymous(None);
        let mut call = CallContext::new("tool", "s", Utc::now());
        call.arguments = Some(serde_json::json!({"capacity": "three"}));
        let error = build(&principal, &call, &args).unwrap_err();
        assert!(
            error.contains("argument \"capacity\" must be an integer"),
            "{error}"
        );
    }
}
