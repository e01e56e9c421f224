//! Azure Activity Log exports as replay input.
//!
//! Three shapes, told apart by their first bytes:
//!
//! - the JSON array `az monitor activity-log list` writes (camelCase:
//!   `eventTimestamp`, `caller`, `claims`, `operationName.value`,
//!   `resourceId`, `status.value`, `subStatus.value`,
//!   `httpRequest.clientIpAddress`, `correlationId`,
//!   `authorization.action`, `category.value`);
//! - a diagnostic-settings export to a storage account or event hub:
//!   `{"records": [...]}`, or one record per line (`time`,
//!   `operationName`, `resultType`, `resultSignature`, `callerIpAddress`,
//!   `identity.claims`, `identity.authorization`, `resourceId`,
//!   `correlationId`, `category`);
//! - rows of the `AzureActivity` table (PascalCase: `TimeGenerated`,
//!   `OperationNameValue`, `ActivityStatusValue`, `Caller`,
//!   `CallerIpAddress`, `Claims_d`, `ResourceId`, `CorrelationId`,
//!   `CategoryValue`), as JSON Lines or an array.
//!
//! Keys are matched without regard to case. Only `Administrative` events
//! are calls (other categories, and events without a caller, are counted
//! as skipped). The events of one operation (same correlation id,
//! operation and resource: `Started`, `Accepted`, then `Succeeded` or
//! `Failed`) are one call at the time of the first, ending as the last
//! says; a failure with sub-status `Forbidden` is a denial, and an
//! operation never seen finishing counts as succeeded. The principal is
//! the token's object id (`claims`), else `caller`; its kind is
//! `application` when `idtyp` says so (or the token has an `appid` and no
//! user name); there are no app roles, so its peers are all principals
//! of its kind. The Activity Log knows nothing of Warden's approvals:
//! every privilege grant that ran counts as made without one.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{
    Bytes, Call, CallOp, Classifier, Event, FieldError, InputError, Loaded, Origin, Place, What,
    first_line, for_each_line, parse_ip, parse_time,
};
use crate::risk::Outcome;
use crate::risk::features::is_privilege_grant;

const OID: [&str; 2] = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
];
const TID: [&str; 2] = [
    "http://schemas.microsoft.com/identity/claims/tenantid",
    "tid",
];
const UPN: [&str; 3] = [
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "upn",
    "unique_name",
];

/// How far an operation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// `Started`, `Accepted`, or anything that is not an end.
    Open,
    Succeeded,
    Failed,
}

/// Who called.
#[derive(Debug, Clone, PartialEq)]
struct Who {
    tenant: String,
    oid: String,
    name: String,
    kind: &'static str,
}

/// One Activity Log event of an Administrative operation.
#[derive(Debug, Clone)]
struct Raw {
    at_ms: i64,
    place: Place,
    correlation: Option<String>,
    operation: String,
    resource: Option<String>,
    status: Status,
    forbidden: bool,
    ip: Option<IpAddr>,
    who: Option<Who>,
}

pub(super) fn load(
    file: &str,
    bytes: &Bytes,
    input: usize,
    classifier: &Classifier,
) -> Result<Loaded, InputError> {
    let mut records = 0u64;
    let mut skipped = 0u64;
    let mut raws: Vec<Raw> = Vec::new();
    let mut take = |place: Place, record: &Map<String, Value>| -> Result<(), InputError> {
        records += 1;
        match raw(record, place).map_err(|e| e.at(file, Some(place)))? {
            Some(r) => raws.push(r),
            None => skipped += 1,
        }
        Ok(())
    };
    let first = first_line(file, bytes)?;
    let lines = match &first {
        None => false,
        Some((_, text)) if text.starts_with('[') => false,
        Some((_, text)) => serde_json::from_str::<Value>(text).is_ok(),
    };
    if lines {
        // JSON Lines: a record per line, or a `{"records": [...]}` per line.
        for_each_line(file, bytes, |number, text| {
            let place = Place::Line(number);
            let value: Value = serde_json::from_str(text).map_err(|e| {
                FieldError::whole(format!("malformed JSON: {e}")).at(file, Some(place))
            })?;
            let Value::Object(record) = value else {
                return Err(FieldError::whole("expected a JSON object").at(file, Some(place)));
            };
            match record
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("records"))
            {
                Some((_, Value::Array(inner))) => {
                    for (i, r) in inner.iter().enumerate() {
                        let Value::Object(r) = r else {
                            return Err(FieldError::new(
                                &format!("records[{i}]"),
                                "expected a JSON object",
                            )
                            .at(file, Some(place)));
                        };
                        take(place, r).map_err(|mut e| {
                            e.field = Some(format!(
                                "records[{i}]{}",
                                e.field.map(|f| format!(".{f}")).unwrap_or_default()
                            ));
                            e
                        })?;
                    }
                    Ok(())
                }
                Some(_) => {
                    Err(FieldError::new("records", "expected an array").at(file, Some(place)))
                }
                None => take(place, &record),
            }
        })?;
    } else if first.is_some() {
        // One document: an array, or `{"records": [...]}`.
        let mut failed: Option<InputError> = None;
        let mut each = |index: u64, record: Map<String, Value>| -> Result<(), ()> {
            take(Place::Index(index), &record).map_err(|e| failed = Some(e))
        };
        let reader = bytes
            .reader()
            .map_err(|e| FieldError::whole(e.to_string()).at(file, None))?;
        let mut de = serde_json::Deserializer::from_reader(reader);
        let read = de::Deserializer::deserialize_any(&mut de, Stream { each: &mut each })
            .and_then(|()| de.end());
        if let Some(error) = failed {
            return Err(error);
        }
        read.map_err(|e| {
            FieldError::whole(if e.is_syntax() || e.is_eof() {
                format!("malformed JSON: {e}")
            } else {
                e.to_string()
            })
            .at(file, None)
        })?;
    }
    let events = collapse(raws, input, classifier);
    Ok(Loaded {
        format: super::Format::ActivityLog,
        records,
        skipped,
        events,
    })
}

/// Hands each record of an array, or of `{"records": [...]}`, to `each`
/// as it is read (a month of events is never held as JSON values).
struct Stream<'a> {
    each: &'a mut dyn FnMut(u64, Map<String, Value>) -> Result<(), ()>,
}

impl<'de> Visitor<'de> for Stream<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of Activity Log events, or {\"records\": [...]}")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let each = self.each;
        let mut index = 0u64;
        while let Some(record) = seq.next_element::<Map<String, Value>>()? {
            each(index, record).map_err(|()| de::Error::custom("the record above is not valid"))?;
            index += 1;
        }
        Ok(())
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
        let each = self.each;
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key.eq_ignore_ascii_case("records") {
                map.next_value_seed(Stream { each: &mut *each })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if found {
            Ok(())
        } else {
            Err(de::Error::custom("an object without a `records` array"))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Stream<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

/// The value of the first of `keys` present (any case).
fn get<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|k| map.get(*k)).or_else(|| {
        map.iter()
            .find(|(key, _)| keys.iter().any(|k| key.eq_ignore_ascii_case(k)))
            .map(|(_, v)| v)
    })
}

/// A string, or the `value` of a localizable string (`{"value": ...}`).
fn text(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => get(o, &["value"]).and_then(Value::as_str),
        _ => None,
    }
    .filter(|s| !s.trim().is_empty())
}

/// A string field of `map` (`None` when absent or empty); an error when it
/// is there but not a string.
fn string<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Result<Option<&'a str>, FieldError> {
    match get(map, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.trim().is_empty())),
        Some(value @ Value::Object(_)) => Ok(text(value)),
        Some(_) => Err(FieldError::new(keys[0], "expected a string")),
    }
}

/// An object field, also when given as JSON text (`Claims` in Log
/// Analytics rows).
fn object(
    map: &Map<String, Value>,
    keys: &[&str],
) -> Result<Option<Map<String, Value>>, FieldError> {
    match get(map, keys) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => Ok(Some(o)),
            _ => Err(FieldError::new(
                keys[0],
                "expected an object (or JSON text of one)",
            )),
        },
        Some(_) => Err(FieldError::new(keys[0], "expected an object")),
    }
}

/// The event in `record` (`None`: not an Administrative operation, or no
/// caller).
fn raw(record: &Map<String, Value>, place: Place) -> Result<Option<Raw>, FieldError> {
    if let Some(category) = string(record, &["category", "CategoryValue"])?
        && !category.eq_ignore_ascii_case("Administrative")
    {
        return Ok(None);
    }
    let Some(time) = string(record, &["eventTimestamp", "time", "TimeGenerated"])? else {
        return Err(FieldError::new(
            "eventTimestamp",
            "missing: an event needs eventTimestamp (az monitor activity-log list), time (diagnostic settings) or TimeGenerated",
        ));
    };
    let time_key = ["eventTimestamp", "time", "TimeGenerated"]
        .into_iter()
        .find(|k| get(record, &[k]).is_some())
        .unwrap_or("time");
    let at_ms = parse_time(time_key, time)?;
    let identity = object(record, &["identity"])?;
    let authorization = match object(record, &["authorization", "Authorization_d"])? {
        Some(a) => Some(a),
        None => match &identity {
            Some(i) => object(i, &["authorization"])?,
            None => None,
        },
    };
    let action = match &authorization {
        Some(a) => string(a, &["action"])?,
        None => None,
    };
    // Diagnostic settings write the operation in capitals; the
    // authorization's action names it as Azure's role definitions do.
    let operation = match (
        string(record, &["operationName", "OperationNameValue"])?,
        action,
    ) {
        (Some(op), Some(action)) if op.eq_ignore_ascii_case(action) => action.to_owned(),
        (Some(op), _) => op.to_owned(),
        (None, Some(action)) => action.to_owned(),
        (None, None) => {
            return Err(FieldError::new(
                "operationName",
                "missing: an event needs operationName (or authorization.action)",
            ));
        }
    };
    let status_text = match string(record, &["status", "ActivityStatusValue"])? {
        Some(s) => Some(s),
        None => string(record, &["resultType"])?,
    };
    let status = match status_text.map(str::to_ascii_lowercase).as_deref() {
        Some("succeeded" | "success") => Status::Succeeded,
        Some("failed" | "failure" | "canceled" | "cancelled") => Status::Failed,
        _ => Status::Open,
    };
    let forbidden = [
        string(record, &["subStatus", "ActivitySubstatusValue"])?,
        string(record, &["resultSignature"])?,
    ]
    .into_iter()
    .flatten()
    .any(|s| s.to_ascii_lowercase().contains("forbidden"));
    let claims = match object(record, &["claims", "Claims_d", "Claims"])? {
        Some(c) => Some(c),
        None => match &identity {
            Some(i) => object(i, &["claims"])?,
            None => None,
        },
    };
    let claim = |keys: &[&str]| -> Result<Option<String>, FieldError> {
        Ok(match &claims {
            Some(c) => string(c, keys)
                .map_err(|e| FieldError::new(&format!("claims.{}", keys[0]), e.message))?
                .map(str::to_owned),
            None => None,
        })
    };
    let ip = match object(record, &["httpRequest"])? {
        Some(http) => string(&http, &["clientIpAddress"])?.map(str::to_owned),
        None => None,
    }
    .or(string(record, &["callerIpAddress"])?.map(str::to_owned))
    .or(claim(&["ipaddr"])?);
    let ip = match ip {
        Some(ip) => parse_ip("callerIpAddress", &ip)?,
        None => None,
    };
    let caller = string(record, &["caller"])?.map(str::to_owned);
    let oid = claim(&OID)?.or_else(|| caller.clone());
    let who = match oid {
        None => None,
        Some(oid) => {
            let upn = claim(&UPN)?;
            let name = claim(&["name"])?;
            let kind = match claim(&["idtyp"])?.as_deref() {
                Some("app") => "application",
                Some(_) => "user",
                None if upn.is_none() && name.is_none() && claim(&["appid"])?.is_some() => {
                    "application"
                }
                None => "user",
            };
            let tenant = match claim(&TID)? {
                Some(t) => t,
                None => string(record, &["tenantId"])?
                    .unwrap_or_default()
                    .to_owned(),
            };
            Some(Who {
                tenant: tenant.to_ascii_lowercase(),
                name: upn.or(name).or(caller).unwrap_or_else(|| oid.clone()),
                oid: oid.to_ascii_lowercase(),
                kind,
            })
        }
    };
    if who.is_none() {
        return Ok(None);
    }
    Ok(Some(Raw {
        at_ms,
        place,
        correlation: string(record, &["correlationId"])?.map(str::to_ascii_lowercase),
        operation,
        resource: string(record, &["resourceId", "_ResourceId"])?.map(str::to_owned),
        status,
        forbidden,
        ip,
        who,
    }))
}

/// The operations' events as calls: one per (correlation id, operation,
/// resource), at its first event's time, ending as its last end says.
fn collapse(mut raws: Vec<Raw>, input: usize, classifier: &Classifier) -> Vec<Event> {
    // `az monitor activity-log list` lists the newest first.
    raws.sort_by_key(|r| (r.at_ms, r.place));
    let mut calls: Vec<(Raw, Option<Raw>)> = Vec::new();
    let mut open: HashMap<(String, String, String), usize> = HashMap::new();
    for r in raws {
        let key = r.correlation.clone().map(|c| {
            (
                c,
                r.operation.to_ascii_lowercase(),
                r.resource.clone().unwrap_or_default().to_ascii_lowercase(),
            )
        });
        let Some(key) = key else {
            let end = (r.status != Status::Open).then(|| r.clone());
            calls.push((r, end));
            continue;
        };
        match open.get(&key) {
            Some(&i) => {
                let (first, end) = &mut calls[i];
                if first.ip.is_none() {
                    first.ip = r.ip;
                }
                if r.status != Status::Open {
                    *end = Some(r);
                }
            }
            None => {
                open.insert(key, calls.len());
                let end = (r.status != Status::Open).then(|| r.clone());
                calls.push((r, end));
            }
        }
    }
    calls
        .into_iter()
        .filter_map(|(first, end)| {
            let who = first.who.clone()?;
            let outcome = match end.as_ref().map(|e| (e.status, e.forbidden)) {
                Some((Status::Failed, true)) => Outcome::Denied,
                Some((Status::Failed, false)) => Outcome::Failed,
                _ => Outcome::Succeeded,
            };
            let class = classifier.risk_class(&first.operation, false);
            let grants = is_privilege_grant(&first.operation);
            Some(Event {
                at_ms: first.at_ms,
                origin: Origin {
                    input,
                    place: first.place,
                },
                what: What::Call(Call {
                    tenant: who.tenant,
                    principal: who.oid,
                    name: who.name,
                    kind: who.kind.to_owned(),
                    roles: Vec::new(),
                    source_ip: first.ip,
                    operations: vec![CallOp::new(
                        &first.operation,
                        class,
                        first.resource.as_deref(),
                    )],
                    cost: None,
                    outcome,
                    unapproved_grant: grants && outcome != Outcome::Denied,
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::baseline::RiskClass;
    use serde_json::json;

    const OBJECT: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";
    const TENANT: &str = "http://schemas.microsoft.com/identity/claims/tenantid";

    fn parse(text: &str) -> Result<Loaded, InputError> {
        let classifier = Classifier::new().unwrap();
        load(
            "activity.json",
            &Bytes::Memory(text.as_bytes().to_vec()),
            0,
            &classifier,
        )
    }

    fn calls(loaded: &Loaded) -> Vec<&Call> {
        loaded
            .events
            .iter()
            .map(|e| match &e.what {
                What::Call(c) => c,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// An event as `az monitor activity-log list` writes it.
    fn az(time: &str, op: &str, status: &str, correlation: &str) -> Value {
        json!({
            "authorization": {"action": op, "scope": "/subscriptions/s1/resourceGroups/g1"},
            "caller": "alice@contoso.com",
            "category": {"value": "Administrative", "localizedValue": "Administrative"},
            "claims": {OBJECT: "OID-A", TENANT: "T1", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "alice@contoso.com", "appid": "04b07795"},
            "correlationId": correlation,
            "eventTimestamp": time,
            "httpRequest": {"clientIpAddress": "198.51.100.4", "method": "DELETE"},
            "operationName": {"value": op, "localizedValue": "Delete Virtual Machine"},
            "resourceId": "/subscriptions/s1/resourceGroups/G1/providers/Microsoft.Compute/virtualMachines/vm1",
            "status": {"value": status, "localizedValue": status},
            "subStatus": {"value": "", "localizedValue": ""},
            "submissionTimestamp": time
        })
    }

    #[test]
    fn az_events_of_one_operation_are_one_call_with_its_final_status() {
        let delete = "Microsoft.Compute/virtualMachines/delete";
        // Newest first, as az lists them.
        let events = json!([
            az("2026-11-02T09:00:05Z", delete, "Succeeded", "c1"),
            az("2026-11-02T09:00:03Z", delete, "Accepted", "c1"),
            az("2026-11-02T09:00:01Z", delete, "Started", "c1"),
            az("2026-11-02T09:10:00Z", "Microsoft.Compute/virtualMachines/start/action", "Failed", "c2"),
            {"category": {"value": "Policy"}, "eventTimestamp": "2026-11-02T09:00:00Z", "operationName": {"value": "Microsoft.Authorization/policies/audit/action"}},
        ]);
        let loaded = parse(&serde_json::to_string_pretty(&events).unwrap()).unwrap();
        assert_eq!((loaded.records, loaded.skipped), (5, 1));
        let calls = calls(&loaded);
        assert_eq!(calls.len(), 2);
        assert_eq!(loaded.events[0].at() % 3600, 1);
        assert_eq!(loaded.events[0].origin.place, Place::Index(2));
        let c = calls[0];
        assert_eq!((c.tenant.as_str(), c.principal.as_str()), ("t1", "oid-a"));
        assert_eq!(c.name, "alice@contoso.com");
        assert_eq!(c.kind, "user");
        assert_eq!(c.outcome, Outcome::Succeeded);
        assert_eq!(c.source_ip, Some("198.51.100.4".parse().unwrap()));
        assert_eq!(c.operations[0].class, RiskClass::Delete);
        assert_eq!(c.operations[0].resource_group.as_deref(), Some("g1"));
        assert_eq!(calls[1].outcome, Outcome::Failed);
        assert_eq!(calls[1].operations[0].class, RiskClass::Write);
    }

    #[test]
    fn diagnostic_records_and_log_analytics_rows_are_read_too() {
        let grant = "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE";
        let diagnostic = |time: &str, result: &str, signature: &str| {
            json!({
                "time": time, "resourceId": "/SUBSCRIPTIONS/S1/RESOURCEGROUPS/G1",
                "operationName": grant, "category": "Administrative",
                "resultType": result, "resultSignature": signature,
                "callerIpAddress": "2001:db8::5", "correlationId": "C9",
                "identity": {"authorization": {"action": grant},
                             "claims": {OBJECT: "sp-1", TENANT: "t1", "appid": "app-1", "idtyp": "app"}},
                "level": "Information"
            })
        };
        let lines = format!(
            "{}\n{}\n",
            diagnostic("2026-11-02T09:00:00.1Z", "Start", "Started."),
            diagnostic("2026-11-02T09:00:00.9Z", "Success", "Succeeded.Created"),
        );
        let loaded = parse(&lines).unwrap();
        let c = calls(&loaded);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, "application");
        assert_eq!(c[0].operations[0].class, RiskClass::Privileged);
        assert!(c[0].unapproved_grant);
        assert_eq!(loaded.events[0].origin.place, Place::Line(1));

        let wrapped = json!({"records": [
            diagnostic("2026-11-02T09:00:00Z", "Start", "Started."),
            diagnostic("2026-11-02T09:00:01Z", "Failure", "Failed.Forbidden"),
        ]});
        let loaded = parse(&serde_json::to_string_pretty(&wrapped).unwrap()).unwrap();
        let c = calls(&loaded);
        assert_eq!(c[0].outcome, Outcome::Denied);
        assert!(!c[0].unapproved_grant, "a refused grant did not run");

        let row = json!({
            "TimeGenerated": "2026-11-02T09:00:00Z", "OperationNameValue": "Microsoft.Web/sites/delete",
            "ActivityStatusValue": "Success", "Caller": "bob@contoso.com", "CallerIpAddress": "203.0.113.8",
            "Claims": serde_json::to_string(&json!({OBJECT: "OID-B", TENANT: "t1", "name": "Bob"})).unwrap(),
            "CategoryValue": "Administrative", "ResourceId": "/subscriptions/s1/resourceGroups/g2/providers/Microsoft.Web/sites/w",
            "CorrelationId": "x"
        });
        let loaded = parse(&row.to_string()).unwrap();
        let c = calls(&loaded);
        assert_eq!(
            (c[0].principal.as_str(), c[0].name.as_str()),
            ("oid-b", "Bob")
        );
        assert_eq!(c[0].operations[0].class, RiskClass::Delete);
    }

    #[test]
    fn bad_events_name_the_index_or_line_and_field() {
        let mut bad = az(
            "2026-11-02T09:00:01Z",
            "Microsoft.Compute/virtualMachines/delete",
            "Started",
            "c1",
        );
        bad["eventTimestamp"] = json!("02/11/2026 09:00");
        let good = az(
            "2026-11-02T09:00:01Z",
            "Microsoft.Compute/virtualMachines/delete",
            "Started",
            "c1",
        );
        let e = parse(&json!([good, bad]).to_string()).unwrap_err();
        assert_eq!(e.place, Some(Place::Index(1)));
        assert_eq!(e.field.as_deref(), Some("eventTimestamp"));
        assert!(
            e.to_string()
                .starts_with("activity.json[1]: field `eventTimestamp`: "),
            "{e}"
        );

        let mut no_op = az("2026-11-02T09:00:01Z", "x", "Started", "c1");
        no_op.as_object_mut().unwrap().remove("operationName");
        no_op.as_object_mut().unwrap().remove("authorization");
        let e = parse(&format!("{}\n", no_op)).unwrap_err();
        assert_eq!(e.place, Some(Place::Line(1)));
        assert_eq!(e.field.as_deref(), Some("operationName"));

        let mut bad_ip = az("2026-11-02T09:00:01Z", "a/b/write", "Started", "c1");
        bad_ip["httpRequest"]["clientIpAddress"] = json!("not-an-ip");
        let e = parse(&format!("{}\n{}", good_line(), bad_ip)).unwrap_err();
        assert_eq!(e.place, Some(Place::Line(2)));
        assert_eq!(e.field.as_deref(), Some("callerIpAddress"));

        let e = parse("[{\"time\": \"2026-11-02T09:00:00Z\",").unwrap_err();
        assert!(e.message.contains("malformed JSON"), "{e}");
    }

    fn good_line() -> String {
        az("2026-11-02T09:00:01Z", "a/b/write", "Started", "c0").to_string()
    }
}
