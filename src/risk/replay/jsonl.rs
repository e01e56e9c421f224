//! The replay's own input format: JSON Lines, one event per line, for
//! history kept anywhere else (a SIEM query, another gateway's log).
//! Reference (docs/REPLAY.md):
//!
//! ```json
//! {"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "tid/oid",
//!  "roles": ["Developer"], "operation": "Microsoft.Compute/virtualMachines/delete",
//!  "resource": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1",
//!  "source_ip": "198.51.100.7", "outcome": "succeeded"}
//! {"time": "2026-11-02T09:00:01Z", "kind": "auth", "source_ip": "203.0.113.9", "outcome": "failed"}
//! ```
//!
//! - `time` (required): RFC 3339.
//! - `kind` (required): `user` or `app` for a call, `auth` for an
//!   authentication attempt.
//! - A call: `principal` (required) is `"tid/oid"` or `{"tid", "oid",
//!   "name"}`; `operation` (required) an Azure operation; `roles` its app
//!   roles (its peer group, default none); `resource` an ARM id;
//!   `source_ip`; `outcome` `succeeded` (default), `failed`, `denied` or
//!   `held`; `approved` (default false) whether a privilege grant ran
//!   with an approval; `class` (`read`, `write`, `create`, `delete`,
//!   `privileged`) overrides the class the operation's name gives.
//! - An attempt: `source_ip` (required), `outcome` `ok` or `failed`
//!   (required), `count` (default 1) for several at once; `principal` is
//!   allowed and not used.
//!
//! Unknown fields are errors, so a misspelt `aproved` is not silently
//! ignored.

use serde::Deserialize;
use serde_json::Value;

use super::{
    Auth, Bytes, Call, CallOp, Classifier, Event, FieldError, InputError, Loaded, Origin, Place,
    What, for_each_line, parse_ip, parse_time,
};
use crate::risk::Outcome;
use crate::risk::baseline::RiskClass;
use crate::risk::features::is_privilege_grant;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    principal: Option<Value>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    approved: Option<bool>,
    #[serde(default)]
    count: Option<u32>,
}

pub(super) fn load(
    file: &str,
    bytes: &Bytes,
    input: usize,
    classifier: &Classifier,
) -> Result<Loaded, InputError> {
    let mut records = 0u64;
    let mut events = Vec::new();
    for_each_line(file, bytes, |number, text| {
        records += 1;
        let place = Place::Line(number);
        let event = parse(text, classifier).map_err(|e| e.at(file, Some(place)))?;
        events.push(Event {
            at_ms: event.0,
            origin: Origin { input, place },
            what: event.1,
        });
        Ok(())
    })?;
    Ok(Loaded {
        format: super::Format::Jsonl,
        records,
        skipped: 0,
        events,
    })
}

/// One line: its time (Unix milliseconds) and event.
fn parse(text: &str, classifier: &Classifier) -> Result<(i64, What), FieldError> {
    let line: Line = super::from_json(text)?;
    let time = line
        .time
        .as_deref()
        .ok_or_else(|| FieldError::new("time", "missing (an RFC 3339 time)"))?;
    let at_ms = parse_time("time", time)?;
    let kind = line
        .kind
        .as_deref()
        .ok_or_else(|| FieldError::new("kind", "missing (user, app or auth)"))?;
    let source_ip = match &line.source_ip {
        Some(ip) => parse_ip("source_ip", ip)?,
        None => None,
    };
    let kind = match kind {
        "user" => "user",
        "app" => "application",
        "auth" => {
            let source_ip = source_ip.ok_or_else(|| {
                FieldError::new(
                    "source_ip",
                    "missing: an attempt needs the address it came from",
                )
            })?;
            let ok = match line.outcome.as_deref() {
                Some("ok") => true,
                Some("failed") => false,
                Some(other) => {
                    return Err(FieldError::new(
                        "outcome",
                        format!("{other:?}: an attempt's outcome is ok or failed"),
                    ));
                }
                None => return Err(FieldError::new("outcome", "missing (ok or failed)")),
            };
            let count = line.count.unwrap_or(1);
            if count == 0 {
                return Err(FieldError::new("count", "at least 1"));
            }
            for (field, given) in [
                ("operation", line.operation.is_some()),
                ("resource", line.resource.is_some()),
                ("approved", line.approved.is_some()),
                ("class", line.class.is_some()),
                ("roles", !line.roles.is_empty()),
            ] {
                if given {
                    return Err(FieldError::new(
                        field,
                        "not a field of an attempt (kind auth)",
                    ));
                }
            }
            return Ok((
                at_ms,
                What::Auth(Auth {
                    source_ip,
                    ok,
                    count,
                }),
            ));
        }
        other => {
            return Err(FieldError::new(
                "kind",
                format!("unknown kind {other:?}: one of user, app, auth"),
            ));
        }
    };
    if line.count.is_some() {
        return Err(FieldError::new(
            "count",
            "only attempts (kind auth) have a count",
        ));
    }
    let (tenant, oid, name) = principal(line.principal.as_ref())?;
    let operation = line
        .operation
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .ok_or_else(|| FieldError::new("operation", "missing (an Azure operation)"))?;
    let outcome = match line.outcome.as_deref() {
        None | Some("succeeded") => Outcome::Succeeded,
        Some("failed") => Outcome::Failed,
        Some("denied") => Outcome::Denied,
        Some("held") => Outcome::Held,
        Some(other) => {
            return Err(FieldError::new(
                "outcome",
                format!("{other:?}: a call's outcome is succeeded, failed, denied or held"),
            ));
        }
    };
    let class = match line.class.as_deref() {
        None => classifier.risk_class(operation, false),
        Some(name) => RiskClass::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .ok_or_else(|| {
                FieldError::new(
                    "class",
                    format!("{name:?}: one of read, write, create, delete, privileged"),
                )
            })?,
    };
    if let Some(resource) = &line.resource
        && let Err(e) = crate::azure::ArmId::parse_scope(resource)
    {
        return Err(FieldError::new("resource", format!("not an ARM id: {e}")));
    }
    let approved = line.approved.unwrap_or(false);
    let ran = matches!(outcome, Outcome::Succeeded | Outcome::Failed);
    Ok((
        at_ms,
        What::Call(Call {
            tenant,
            principal: oid,
            name,
            kind: kind.to_owned(),
            roles: line.roles,
            source_ip,
            operations: vec![CallOp::new(operation, class, line.resource.as_deref())],
            cost: None,
            outcome,
            unapproved_grant: is_privilege_grant(operation) && !approved && ran,
        }),
    ))
}

/// `"tid/oid"` or `{"tid", "oid", "name"}`: tenant, object id, name.
fn principal(value: Option<&Value>) -> Result<(String, String, String), FieldError> {
    let bad = || {
        FieldError::new(
            "principal",
            "expected \"tid/oid\" or {\"tid\": ..., \"oid\": ..., \"name\": ...}",
        )
    };
    match value {
        None => Err(FieldError::new("principal", "missing (\"tid/oid\")")),
        Some(Value::String(s)) => {
            let (tid, oid) = s.split_once('/').ok_or_else(bad)?;
            if tid.trim().is_empty() || oid.trim().is_empty() || oid.contains('/') {
                return Err(bad());
            }
            Ok((tid.trim().into(), oid.trim().into(), oid.trim().into()))
        }
        Some(Value::Object(o)) => {
            if let Some(key) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "tid" | "oid" | "name"))
            {
                return Err(FieldError::new(
                    &format!("principal.{key}"),
                    "unknown field (tid, oid, name)",
                ));
            }
            let field = |key: &str| -> Result<Option<String>, FieldError> {
                match o.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().into())),
                    Some(_) => Err(FieldError::new(
                        &format!("principal.{key}"),
                        "expected a non-empty string",
                    )),
                }
            };
            let tid = field("tid")?.ok_or_else(|| FieldError::new("principal.tid", "missing"))?;
            let oid = field("oid")?.ok_or_else(|| FieldError::new("principal.oid", "missing"))?;
            let name = field("name")?.unwrap_or_else(|| oid.clone());
            Ok((tid, oid, name))
        }
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Loaded, InputError> {
        let classifier = Classifier::new().unwrap();
        load(
            "events.jsonl",
            &Bytes::Memory(text.as_bytes().to_vec()),
            0,
            &classifier,
        )
    }

    #[test]
    fn calls_and_attempts_round_trip() {
        let text = r#"
{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t1/o1", "roles": ["Developer"], "operation": "Microsoft.Compute/virtualMachines/delete", "resource": "/subscriptions/s1/resourceGroups/g1/providers/Microsoft.Compute/virtualMachines/vm1", "source_ip": "198.51.100.7", "outcome": "failed"}
{"time": "2026-11-02T10:00:00+01:00", "kind": "app", "principal": {"tid": "t1", "oid": "o2", "name": "deployer"}, "operation": "Microsoft.Authorization/roleAssignments/write"}

{"time": "2026-11-02T09:00:01Z", "kind": "app", "principal": "t1/o2", "operation": "Microsoft.Authorization/roleAssignments/write", "approved": true}
{"time": "2026-11-02T09:00:02Z", "kind": "user", "principal": "t1/o1", "operation": "Microsoft.Compute/virtualMachines/write", "class": "create"}
{"time": "2026-11-02T09:00:03Z", "kind": "auth", "source_ip": "203.0.113.9", "outcome": "failed", "count": 3}
"#;
        let loaded = load_text(text).unwrap();
        assert_eq!(loaded.records, 5);
        assert_eq!(loaded.events[1].origin.place, Place::Line(3));
        assert_eq!(
            loaded.events[1].at(),
            loaded.events[0].at(),
            "offsets are read"
        );
        let What::Call(first) = &loaded.events[0].what else {
            panic!()
        };
        assert_eq!(first.key(), "t1/o1");
        assert_eq!(first.kind, "user");
        assert_eq!(first.roles, ["Developer"]);
        assert_eq!(first.outcome, Outcome::Failed);
        assert_eq!(first.operations[0].class, RiskClass::Delete);
        assert_eq!(first.operations[0].subscription.as_deref(), Some("s1"));
        let What::Call(grant) = &loaded.events[1].what else {
            panic!()
        };
        assert_eq!(
            (grant.kind.as_str(), grant.name.as_str()),
            ("application", "deployer")
        );
        assert_eq!(grant.operations[0].class, RiskClass::Privileged);
        assert!(grant.unapproved_grant);
        let What::Call(approved) = &loaded.events[2].what else {
            panic!()
        };
        assert!(!approved.unapproved_grant);
        let What::Call(create) = &loaded.events[3].what else {
            panic!()
        };
        assert_eq!(create.operations[0].class, RiskClass::Create);
        assert_eq!(
            loaded.events[4].what,
            What::Auth(Auth {
                source_ip: "203.0.113.9".parse().unwrap(),
                ok: false,
                count: 3
            })
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_field() {
        let good = r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o", "operation": "a/b/read"}"#;
        let cases = [
            (
                r#"{"time": "2026-11-02 09:00", "kind": "user", "principal": "t/o", "operation": "a/b/read"}"#,
                "time",
                "is not an RFC 3339 time",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "robot", "principal": "t/o", "operation": "a/b/read"}"#,
                "kind",
                "unknown kind \"robot\"",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "nobody", "operation": "a/b/read"}"#,
                "principal",
                "expected \"tid/oid\"",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o"}"#,
                "operation",
                "missing",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o", "operation": "a/b/read", "outcome": "ok"}"#,
                "outcome",
                "succeeded, failed, denied or held",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "auth", "source_ip": "1.2.3.4", "outcome": "succeeded"}"#,
                "outcome",
                "ok or failed",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "auth", "outcome": "failed"}"#,
                "source_ip",
                "missing",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o", "operation": "a/b/read", "aproved": true}"#,
                "aproved",
                "unknown field `aproved`",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": "t/o", "operation": "a/b/read", "roles": "Reader"}"#,
                "roles",
                "invalid type",
            ),
            (
                r#"{"time": "2026-11-02T09:00:00Z", "kind": "user", "principal": {"tid": "t"}, "operation": "a/b/read"}"#,
                "principal.oid",
                "missing",
            ),
        ];
        for (line, field, message) in cases {
            let e = load_text(&format!("{good}\n\n{line}\n")).unwrap_err();
            assert_eq!(e.place, Some(Place::Line(3)), "{e}");
            assert_eq!(e.field.as_deref().unwrap_or_default(), field, "{e}");
            assert!(e.message.contains(message), "{e}");
            assert!(e.to_string().starts_with("events.jsonl:3"), "{e}");
        }
        let e = load_text(&format!("{good}\n{{\"time\": \n")).unwrap_err();
        assert_eq!(e.place, Some(Place::Line(2)));
        assert!(e.message.starts_with("malformed JSON"), "{e}");
    }
}
