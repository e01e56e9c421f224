//! OCSF 1.3 events for the `ocsf` sink: `audit::export::ocsf` (API
//! Activity, class 6003, the same events `warden audit export --format
//! ocsf` writes), with the record's sequence number in
//! `metadata.sequence` and its leaf hash in `unmapped.leaf_hash`. A
//! record of a kind this build cannot read is shipped as an API Activity
//! of activity `Other` with the record in `unmapped.record`; a gap is an
//! API Activity `Other` with status `Failure`, severity `High` and
//! `unmapped.gap`.

use serde_json::{Value, json};

use super::event::{Item, Stored, gap_message};
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

    fn event_of(stored: Stored, whole: bool) -> Value {
        event(&Item::Record(stored), whole)
    }
}
