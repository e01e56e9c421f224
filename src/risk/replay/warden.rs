//! Warden's own audit export as replay input: `warden audit export
//! --format jsonl` (`audit.jsonl`), or a bundle's `records.jsonl`
//! (schema: `schemas/audit-record.schema.json`).
//!
//! - An `intent` is a call: its principal (`tid`, `oid`, `name`, `kind`,
//!   `roles`), `source_ip`, `operations` (`azure_op`, `class`,
//!   `resource_id`), `arguments` (for the cost of what it creates) and
//!   `jit`. Its `outcome` (joined by `call_id`) says how it ended: `ok`
//!   succeeded; `denied` with advice `require_approval` was held for a
//!   reviewer, otherwise denied; `rate_limited` was never scored (left
//!   out); anything else, or no outcome, failed (activity only).
//! - A privilege grant ran without an approval when its intent has no
//!   `jit` grant and policy allowed it (or the live assessment carries the
//!   `privilege_grant_without_approval` floor: the pipeline applies it
//!   before policy decides again).
//! - An `auth` record is an authentication attempt from its `source_ip`:
//!   a `token_refused` refusal (aggregated ones count `details.count`,
//!   spread between `details.first` and `details.last`), or an accepted
//!   event (session start, sign-in). Other refusals are not attempts the
//!   response rules count.
//! - Every other kind (`risk_alert`, `response`, `approval`, ...) is what
//!   the live run concluded, not input: skipped.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{
    Auth, Bytes, Call, CallOp, Event, FieldError, InputError, Loaded, Origin, Place, What,
    for_each_line, parse_ip, parse_time,
};
use crate::catalog::Class;
use crate::risk::Outcome;
use crate::risk::features::is_privilege_grant;

#[derive(Deserialize)]
struct Record {
    ts: String,
    kind: String,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    principal: Option<Actor>,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    upstream_tool: Option<String>,
    #[serde(default)]
    operations: Vec<Op>,
    #[serde(default)]
    decision: Option<Value>,
    #[serde(default)]
    risk: Option<Value>,
    #[serde(default)]
    jit: Option<Value>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    details: Option<Value>,
}

#[derive(Deserialize)]
struct Actor {
    tid: String,
    oid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Deserialize)]
struct Op {
    azure_op: String,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

/// An intent waiting for its outcome.
struct Pending {
    at_ms: i64,
    line: u64,
    call: Call,
    held_advice: bool,
    allowed: bool,
    floored: bool,
    approved: bool,
}

/// Refusals of an aggregated record are spread over this many instants
/// at most.
const SPREAD: u64 = 60;

pub(super) fn load(file: &str, bytes: &Bytes, input: usize) -> Result<Loaded, InputError> {
    let mut records = 0u64;
    let mut skipped = 0u64;
    let mut events = Vec::new();
    let mut intents: Vec<Pending> = Vec::new();
    let mut by_call: HashMap<String, usize> = HashMap::new();
    let mut outcomes: HashMap<String, (String, Option<String>)> = HashMap::new();
    for_each_line(file, bytes, |line, text| {
        records += 1;
        let place = Some(Place::Line(line));
        let record: Record = super::from_json(text).map_err(|e| e.at(file, place))?;
        let at_ms = parse_time("ts", &record.ts).map_err(|e| e.at(file, place))?;
        let origin = Origin {
            input,
            place: Place::Line(line),
        };
        match record.kind.as_str() {
            "intent" => match intent(record, at_ms, line).map_err(|e| e.at(file, place))? {
                Some((call_id, pending)) => {
                    by_call.insert(call_id, intents.len());
                    intents.push(pending);
                }
                None => skipped += 1,
            },
            "outcome" => match (record.call_id, record.status) {
                (Some(id), Some(status)) => {
                    outcomes.insert(id, (status, record.error));
                }
                _ => skipped += 1,
            },
            "auth" => {
                let found = auth(&record, at_ms, origin).map_err(|e| e.at(file, place))?;
                if found.is_empty() {
                    skipped += 1;
                }
                events.extend(found);
            }
            _ => skipped += 1,
        }
        Ok(())
    })?;
    // Outcomes of calls the export left out.
    skipped += outcomes
        .keys()
        .filter(|id| !by_call.contains_key(*id))
        .count() as u64;
    let mut ids: Vec<(usize, String)> = by_call.into_iter().map(|(id, i)| (i, id)).collect();
    ids.sort();
    for (i, id) in ids {
        let p = &mut intents[i];
        let status = outcomes.get(&id);
        let outcome = match status.map(|(s, e)| (s.as_str(), e.as_deref())) {
            Some(("rate_limited", _)) => {
                skipped += 1;
                continue;
            }
            Some(("ok", _)) => Outcome::Succeeded,
            Some(("denied", error))
                if p.held_advice && !error.is_some_and(|e| e.contains(" was denied")) =>
            {
                Outcome::Held
            }
            Some(("denied", _)) => Outcome::Denied,
            _ => Outcome::Failed,
        };
        let grants = p
            .call
            .operations
            .iter()
            .any(|op| is_privilege_grant(&op.azure_op));
        p.call.outcome = outcome;
        p.call.unapproved_grant = grants && !p.approved && (p.allowed || p.floored);
        events.push(Event {
            at_ms: p.at_ms,
            origin: Origin {
                input,
                place: Place::Line(p.line),
            },
            what: What::Call(p.call.clone()),
        });
    }
    events.sort_by_key(|e| e.origin);
    Ok(Loaded {
        format: super::Format::Warden,
        records,
        skipped,
        events,
    })
}

/// The call an intent records (`None`: nothing to score).
fn intent(record: Record, at_ms: i64, line: u64) -> Result<Option<(String, Pending)>, FieldError> {
    let (Some(call_id), Some(actor)) = (record.call_id, record.principal) else {
        return Ok(None);
    };
    if record.operations.is_empty() {
        return Ok(None);
    }
    let source_ip = match &record.source_ip {
        Some(ip) => parse_ip("source_ip", ip)?,
        None => None,
    };
    let cost = crate::risk::cost::estimate(record.arguments.as_ref());
    let creates = cost.is_some()
        || record
            .upstream_tool
            .as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("create"));
    let operations = record
        .operations
        .iter()
        .map(|op| {
            let class = op
                .class
                .as_deref()
                .and_then(Class::parse)
                .unwrap_or(Class::Unknown);
            CallOp::new(
                &op.azure_op,
                super::risk_class(class, creates),
                op.resource_id.as_deref(),
            )
        })
        .collect();
    let decision = record.decision.as_ref();
    let effect = decision
        .and_then(|d| d.get("effect"))
        .and_then(Value::as_str);
    let advice = decision
        .and_then(|d| d.get("advice"))
        .and_then(Value::as_str);
    let floored = record
        .risk
        .as_ref()
        .and_then(|r| r.get("floor"))
        .and_then(Value::as_str)
        == Some("privilege_grant_without_approval");
    let approved = record.jit.as_ref().is_some_and(|j| !j.is_null());
    let call = Call {
        tenant: actor.tid,
        name: if actor.name.is_empty() {
            actor.oid.clone()
        } else {
            actor.name
        },
        principal: actor.oid,
        kind: match actor.kind.as_str() {
            "app" => "application".to_owned(),
            "" => "user".to_owned(),
            other => other.to_owned(),
        },
        roles: actor.roles,
        source_ip,
        operations,
        cost,
        outcome: Outcome::Failed,
        unapproved_grant: false,
    };
    Ok(Some((
        call_id,
        Pending {
            at_ms,
            line,
            call,
            held_advice: effect == Some("deny") && advice == Some("require_approval"),
            allowed: effect == Some("allow"),
            floored,
            approved,
        },
    )))
}

/// The attempts an `auth` record counts (none: not an attempt the rules
/// count, or no address).
fn auth(record: &Record, at_ms: i64, origin: Origin) -> Result<Vec<Event>, FieldError> {
    let details = record.details.as_ref();
    let event = details
        .and_then(|d| d.get("event"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let refused = event == "token_refused";
    if event.is_empty() || (event.ends_with("_refused") && !refused) {
        return Ok(Vec::new());
    }
    let Some(ip) = record.source_ip.as_deref() else {
        return Ok(Vec::new());
    };
    let Some(source_ip) = parse_ip("source_ip", ip)? else {
        return Ok(Vec::new());
    };
    let attempt = |at_ms: i64, count: u32| Event {
        at_ms,
        origin,
        what: What::Auth(Auth {
            source_ip,
            ok: !refused,
            count,
        }),
    };
    let count = details
        .and_then(|d| d.get("count"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let aggregated = details
        .and_then(|d| d.get("aggregated"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let time = |key: &str| -> Result<Option<i64>, FieldError> {
        match details.and_then(|d| d.get(key)).and_then(Value::as_str) {
            Some(t) => parse_time(&format!("details.{key}"), t).map(Some),
            None => Ok(None),
        }
    };
    let (first, last) = if aggregated {
        (time("first")?, time("last")?)
    } else {
        (None, None)
    };
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(vec![attempt(at_ms, count.min(u64::from(u32::MAX)) as u32)]);
    };
    Ok(spread(first, last.max(first), count)
        .into_iter()
        .map(|(at, n)| attempt(at, n))
        .collect())
}

/// `count` attempts spread evenly from `first` to `last` (milliseconds),
/// in at most [`SPREAD`] instants.
fn spread(first: i64, last: i64, count: u64) -> Vec<(i64, u32)> {
    let chunks = count.min(SPREAD);
    (0..chunks)
        .map(|i| {
            let n = count / chunks + u64::from(i < count % chunks);
            let at = if chunks == 1 {
                first
            } else {
                first + ((last - first) as i128 * i as i128 / (chunks - 1) as i128) as i64
            };
            (at, n.min(u64::from(u32::MAX)) as u32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::baseline::RiskClass;

    fn parse(text: &str) -> Result<Loaded, InputError> {
        load("audit.jsonl", &Bytes::Memory(text.as_bytes().to_vec()), 0)
    }

    const INTENT: &str = r#"{"seq":3,"event_id":"e3","ts":"2026-11-02T09:00:01.000000Z","kind":"intent","call_id":"c1","principal":{"tid":"t1","oid":"o1","name":"carol","kind":"user","roles":["Contributor"]},"source_ip":"10.0.0.7","tool":"demo_echo","upstream_tool":"echo","operations":[{"azure_op":"Microsoft.Compute/virtualMachines/delete","class":"delete","resource_id":"/subscriptions/s1/resourcegroups/g1/providers/microsoft.compute/virtualmachines/vm1"}],"decision":{"effect":"allow","policies":["p"],"policy_set":"h"},"risk":{"score":10,"level":"low","reasons":[]}}"#;

    #[test]
    fn an_intent_and_its_outcome_are_one_call() {
        let text = format!(
            "{INTENT}\n{}\n{}\n",
            r#"{"seq":4,"event_id":"e4","ts":"2026-11-02T09:00:01.500000Z","kind":"outcome","call_id":"c1","status":"ok"}"#,
            r#"{"seq":5,"event_id":"e5","ts":"2026-11-02T09:00:02.000000Z","kind":"risk_alert","call_id":"c1"}"#
        );
        let loaded = parse(&text).unwrap();
        assert_eq!((loaded.records, loaded.skipped), (3, 1));
        assert_eq!(loaded.events.len(), 1);
        let event = &loaded.events[0];
        assert_eq!(event.at(), 1_793_610_001);
        assert_eq!(event.origin.place, Place::Line(1));
        let What::Call(call) = &event.what else {
            panic!("not a call: {event:?}")
        };
        assert_eq!(call.key(), "t1/o1");
        assert_eq!(call.name, "carol");
        assert_eq!(call.roles, ["Contributor"]);
        assert_eq!(call.outcome, Outcome::Succeeded);
        assert!(!call.unapproved_grant);
        assert_eq!(call.source_ip, Some("10.0.0.7".parse().unwrap()));
        let op = &call.operations[0];
        assert_eq!(op.class, RiskClass::Delete);
        assert_eq!(op.subscription.as_deref(), Some("s1"));
        assert_eq!(op.resource_group.as_deref(), Some("g1"));
    }

    #[test]
    fn outcomes_decide_how_a_call_ended_and_grants_without_jit_are_unapproved() {
        let grant = INTENT
            .replace(
                "Microsoft.Compute/virtualMachines/delete",
                "Microsoft.Authorization/roleAssignments/write",
            )
            .replace("\"class\":\"delete\"", "\"class\":\"privileged\"");
        let held = grant.replace("\"c1\"", "\"c2\"").replace(
            r#""effect":"allow""#,
            r#""effect":"deny","advice":"require_approval""#,
        );
        let approved = grant
            .replace("\"c1\"", "\"c3\"")
            .replace(r#""risk":"#, r#""jit":{"request_id":"r1"},"risk":"#);
        let limited = INTENT.replace("\"c1\"", "\"c4\"");
        let text = [
            grant.clone(),
            r#"{"seq":1,"event_id":"x","ts":"2026-11-02T09:00:02Z","kind":"outcome","call_id":"c1","status":"tool_error"}"#.into(),
            held,
            r#"{"seq":2,"event_id":"y","ts":"2026-11-02T09:00:02Z","kind":"outcome","call_id":"c2","status":"denied","error":"Held for approval: JIT request r2 is pending"}"#.into(),
            approved,
            r#"{"seq":3,"event_id":"z","ts":"2026-11-02T09:00:02Z","kind":"outcome","call_id":"c3","status":"ok"}"#.into(),
            limited,
            r#"{"seq":4,"event_id":"w","ts":"2026-11-02T09:00:02Z","kind":"outcome","call_id":"c4","status":"rate_limited"}"#.into(),
        ]
        .join("\n");
        let loaded = parse(&text).unwrap();
        let calls: Vec<&Call> = loaded
            .events
            .iter()
            .map(|e| match &e.what {
                What::Call(c) => c,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(calls.len(), 3, "the rate-limited call is left out");
        assert_eq!(loaded.skipped, 1);
        assert_eq!(
            (calls[0].outcome, calls[0].unapproved_grant),
            (Outcome::Failed, true)
        );
        assert_eq!(
            (calls[1].outcome, calls[1].unapproved_grant),
            (Outcome::Held, false)
        );
        assert_eq!(
            (calls[2].outcome, calls[2].unapproved_grant),
            (Outcome::Succeeded, false)
        );
        assert_eq!(calls[0].operations[0].class, RiskClass::Privileged);
    }

    #[test]
    fn refusals_are_attempts_spread_over_their_interval() {
        let text = [
            r#"{"seq":1,"event_id":"a","ts":"2026-11-02T09:00:00Z","kind":"auth","source_ip":"203.0.113.9","details":{"event":"token_refused","count":1,"reason":"expired"}}"#,
            r#"{"seq":2,"event_id":"b","ts":"2026-11-02T09:01:00Z","kind":"auth","source_ip":"203.0.113.9","details":{"event":"token_refused","count":5,"aggregated":true,"first":"2026-11-02T09:00:10Z","last":"2026-11-02T09:00:50Z"}}"#,
            r#"{"seq":3,"event_id":"c","ts":"2026-11-02T09:02:00Z","kind":"auth","source_ip":"203.0.113.9","details":{"event":"session_started"}}"#,
            r#"{"seq":4,"event_id":"d","ts":"2026-11-02T09:03:00Z","kind":"auth","source_ip":"203.0.113.9","details":{"event":"sign_in_refused"}}"#,
            r#"{"seq":5,"event_id":"e","ts":"2026-11-02T09:03:00Z","kind":"auth","details":{"event":"token_refused"}}"#,
        ]
        .join("\n");
        let loaded = parse(&text).unwrap();
        let attempts: Vec<(i64, bool, u32)> = loaded
            .events
            .iter()
            .map(|e| match &e.what {
                What::Auth(a) => (e.at() % 3600, a.ok, a.count),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            attempts,
            [
                (0, false, 1),
                (10, false, 1),
                (20, false, 1),
                (30, false, 1),
                (40, false, 1),
                (50, false, 1),
                (120, true, 1)
            ]
        );
        assert_eq!(loaded.skipped, 2);
        assert_eq!(spread(0, 1000, 130).iter().map(|s| s.1).sum::<u32>(), 130);
    }

    #[test]
    fn bad_records_name_the_line_and_field() {
        let bad_ts = INTENT.replace("2026-11-02T09:00:01.000000Z", "yesterday");
        let e = parse(&format!("{INTENT}\n{bad_ts}")).unwrap_err();
        assert_eq!(e.place, Some(Place::Line(2)));
        assert_eq!(e.field.as_deref(), Some("ts"));
        assert!(
            e.to_string().starts_with("audit.jsonl:2: field `ts`: "),
            "{e}"
        );
        let bad_ip = INTENT.replace("10.0.0.7", "ten");
        let e = parse(&bad_ip).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("source_ip"));
        let bad_ops = INTENT.replace(r#""azure_op":"#, r#""azure_op":7,"x":"#);
        let e = parse(&bad_ops).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("operations[0].azure_op"), "{e}");
        let e = parse("{\"seq\": 1,").unwrap_err();
        assert!(e.message.contains("malformed JSON"), "{e}");
    }
}
