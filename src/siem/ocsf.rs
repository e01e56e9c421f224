//! OCSF 1.3 events for the `ocsf` sink: `audit::export::ocsf` (API
//! Activity, class 6003, the same events `warden audit export --format
//! ocsf` writes), with the record's sequence number in
//! `metadata.sequence` and its leaf hash in `unmapped.leaf_hash`. A
//! record of a kind this build cannot read is shipped as an API Activity
//! of activity `Other` with the record in `unmapped.record`; a gap is an
//! API Activity `Other` with status `Failure`, severity `High` and
//! `unmapped.gap`.
//!
//! `response` and `incident` records (automatic responses) get their own
//! activity (a suspension or block `Update`, a revocation `Delete`, an
//! incident opened `Create`, acknowledged or closed `Update`), severity
//! (`High` for an incident opened, a principal suspended, a grant revoked,
//! a network blocked or a response that failed; `Medium` for what a rule
//! in notify mode would have done; else `Informational`), status, message
//! and `api.operation` (`response.suspend`, `incident.closed`, ...), with
//! `unmapped.incident_id` and `unmapped.incident_status`.

use serde_json::{Value, json};

use super::event::{Item, Stored, Urgency, gap_message};
use crate::audit::export;
use crate::audit::record::Record;

/// The event for `item`. With `whole` false, the record's arguments and
/// details are left out (`unmapped.truncated` is set), for a record too
/// large for one batch.
pub fn event(item: &Item, whole: bool) -> Value {
    match item {
        Item::Gap { first, last } => gap(*first, *last),
        Item::Record(stored) => {
            let mut event = match serde_json::from_value::<Record>(stored.value.clone()) {
                Ok(record) => export::ocsf(&record),
                Err(_) => unreadable(stored),
            };
            if stored.response_event().is_some() {
                response_fields(&mut event, stored);
            }
            event["metadata"]["sequence"] = json!(stored.seq);
            event["unmapped"]["leaf_hash"] = json!(hex::encode(&stored.leaf_hash));
            if !whole && let Some(unmapped) = event["unmapped"].as_object_mut() {
                for key in ["arguments", "details", "record"] {
                    unmapped.remove(key);
                }
                unmapped.insert("truncated".into(), json!(true));
            }
            event
        }
    }
}

/// What an OCSF reader needs of a `response` or `incident` record.
fn response_fields(event: &mut Value, r: &Stored) {
    let what = r.response_event().unwrap_or_default();
    let (activity_id, activity_name) = match (r.kind(), what) {
        ("incident", "opened") | ("response", "incident") => (1, "Create"),
        ("response", "revoke") => (4, "Delete"),
        _ => (3, "Update"),
    };
    let (severity_id, severity) = match r.urgency() {
        Urgency::High => (4, "High"),
        Urgency::Medium => (3, "Medium"),
        Urgency::Informational => (1, "Informational"),
    };
    event["activity_id"] = json!(activity_id);
    event["activity_name"] = json!(activity_name);
    event["type_uid"] = json!(600300 + activity_id);
    event["severity_id"] = json!(severity_id);
    event["severity"] = json!(severity);
    match r.succeeded() {
        Some(true) => {
            event["status_id"] = json!(1);
            event["status"] = json!("Success");
        }
        Some(false) => {
            event["status_id"] = json!(2);
            event["status"] = json!("Failure");
        }
        None => {}
    }
    event["message"] = json!(r.summary());
    event["api"]["operation"] = json!(format!("{}.{what}", r.kind()));
    event["unmapped"]["incident_id"] = json!(r.incident_id());
    if let Some(status) = r.response_result() {
        let key = if r.kind() == "incident" {
            "incident_status"
        } else {
            "result"
        };
        event["unmapped"][key] = json!(status);
    }
}

fn product() -> Value {
    json!({ "name": "Warden", "vendor_name": "Warden", "version": env!("CARGO_PKG_VERSION") })
}

/// A record `Record` cannot read (a newer kind): the common fields, and
/// the record whole.
fn unreadable(stored: &Stored) -> Value {
    let time = stored
        .str("ts")
        .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    other_activity(
        time,
        json!({
            "severity_id": 1,
            "status_id": 0,
            "status": "Unknown",
            "message": stored.summary(),
            "metadata": {
                "uid": stored.str("event_id"),
                "correlation_uid": stored.str("call_id"),
            },
            "api": { "operation": stored.kind() },
            "unmapped": { "kind": stored.kind(), "record": stored.value },
        }),
    )
}

fn gap(first: u64, last: u64) -> Value {
    other_activity(
        chrono::Utc::now().timestamp_millis(),
        json!({
            "severity_id": 4,
            "severity": "High",
            "status_id": 2,
            "status": "Failure",
            "message": gap_message(first, last),
            "metadata": {},
            "api": { "operation": "siem_gap" },
            "unmapped": {
                "kind": "siem_gap",
                "gap": { "first": first, "last": last, "count": last - first + 1 },
            },
        }),
    )
}

/// An OCSF API Activity event of activity "Other" at `time` (ms): the
/// class fields and Warden's metadata, with `fields` added (their
/// `metadata` merged into Warden's).
fn other_activity(time: i64, fields: Value) -> Value {
    let mut event = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": 99,
        "activity_name": "Other",
        "type_uid": 600399,
        "time": time,
        "metadata": {
            "version": "1.3.0",
            "log_name": "warden-audit",
            "product": product(),
        },
    });
    if let (Some(event), Value::Object(fields)) = (event.as_object_mut(), fields) {
        for (key, value) in fields {
            match (key.as_str(), value) {
                ("metadata", Value::Object(more)) => {
                    if let Some(Value::Object(metadata)) = event.get_mut("metadata") {
                        metadata.extend(more);
                    }
                }
                (_, value) => {
                    event.insert(key, value);
                }
            }
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::super::event::samples::*;
    use super::*;

    #[test]
    fn records_keep_the_export_mapping_and_carry_their_seq() {
        let outcome = event(&Item::Record(ok_outcome(12)), true);
        assert_eq!(outcome["class_uid"], 6003);
        assert_eq!(outcome["metadata"]["sequence"], 12);
        assert_eq!(outcome["status"], "Success");
        assert_eq!(outcome["actor"]["user"]["name"], "build-agent");
        assert_eq!(outcome["unmapped"]["leaf_hash"], "ab".repeat(32));
        let denied = event_of(denied_intent(13), false);
        assert_eq!(denied["unmapped"]["truncated"], true);
        assert!(denied["unmapped"].get("arguments").is_none());
        let unknown = event_of(unknown_kind(14), true);
        assert_eq!(unknown["activity_name"], "Other");
        assert_eq!(unknown["metadata"]["sequence"], 14);
        assert_eq!(unknown["unmapped"]["record"]["kind"], "future_kind");
        assert_eq!(unknown["metadata"]["version"], "1.3.0");
        assert_eq!(unknown["metadata"]["log_name"], "warden-audit");
        assert_eq!(unknown["class_uid"], 6003);
        let gap = event(&Item::Gap { first: 4, last: 4 }, true);
        assert_eq!(
            gap["unmapped"]["gap"],
            json!({"first": 4, "last": 4, "count": 1})
        );
        assert_eq!(gap["status"], "Failure");
        assert_eq!(gap["metadata"]["version"], "1.3.0");
        assert_eq!(gap["type_uid"], 600399);
    }

    #[test]
    fn responses_and_incidents_have_their_activity_severity_and_incident() {
        let suspended = event_of(suspended(30), true);
        assert_eq!(suspended["class_uid"], 6003);
        assert_eq!(suspended["activity_name"], "Update");
        assert_eq!(suspended["type_uid"], 600303);
        assert_eq!(suspended["severity"], "High");
        assert_eq!(suspended["severity_id"], 4);
        assert_eq!(suspended["status"], "Success");
        assert_eq!(suspended["api"]["operation"], "response.suspend");
        assert_eq!(suspended["unmapped"]["incident_id"], "INC-1");
        assert_eq!(suspended["unmapped"]["result"], "done");
        assert_eq!(suspended["actor"]["user"]["uid"], "o-1");
        assert_eq!(suspended["metadata"]["sequence"], 30);
        assert!(
            suspended["message"]
                .as_str()
                .unwrap()
                .starts_with("Principal suspended; target t-1/o-1"),
            "{suspended}"
        );
        let lifted = event_of(lifted(31), true);
        assert_eq!(lifted["severity"], "Informational");
        assert_eq!(lifted["api"]["operation"], "response.lift");
        let opened = event_of(incident(32, "opened"), true);
        assert_eq!(opened["activity_name"], "Create");
        assert_eq!(opened["type_uid"], 600301);
        assert_eq!(opened["severity"], "High");
        assert_eq!(opened["api"]["operation"], "incident.opened");
        assert_eq!(opened["unmapped"]["incident_id"], "INC-1");
        assert_eq!(opened["unmapped"]["incident_status"], "open");
        let closed = event_of(incident(33, "closed"), false);
        assert_eq!(closed["activity_name"], "Update");
        assert_eq!(closed["severity_id"], 1);
        assert_eq!(closed["unmapped"]["incident_status"], "closed");
        assert_eq!(closed["unmapped"]["truncated"], true);
    }

    fn event_of(stored: Stored, whole: bool) -> Value {
        event(&Item::Record(stored), whole)
    }
}
