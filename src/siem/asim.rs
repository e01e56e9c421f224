//! Rows for Microsoft Sentinel / Log Analytics in the ASIM Audit Event
//! schema (version 0.1), plus Warden's own columns (`Warden*`), as the
//! Logs Ingestion API takes them: a JSON array of objects whose keys are
//! the columns of the data collection rule's stream ([`COLUMNS`]; the
//! table and rule are in docs/SIEM.md). Absent values are left out.

use serde_json::{Map, Value, json};

use super::event::{Device, Item, Stored, Urgency, gap_message};

/// The stream's columns and their types, in the order docs/SIEM.md lists
/// them: the data collection rule's `streamDeclarations` and the custom
/// table must declare exactly these.
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("EventCount", "int"),
    ("EventStartTime", "datetime"),
    ("EventEndTime", "datetime"),
    ("EventType", "string"),
    ("EventSubType", "string"),
    ("EventResult", "string"),
    ("EventResultDetails", "string"),
    ("EventSeverity", "string"),
    ("EventMessage", "string"),
    ("EventOriginalUid", "string"),
    ("EventOriginalType", "string"),
    ("EventProduct", "string"),
    ("EventProductVersion", "string"),
    ("EventVendor", "string"),
    ("EventSchema", "string"),
    ("EventSchemaVersion", "string"),
    ("Dvc", "string"),
    ("DvcHostname", "string"),
    ("DvcAction", "string"),
    ("Operation", "string"),
    ("Object", "string"),
    ("ObjectType", "string"),
    ("ActorUsername", "string"),
    ("ActorUsernameType", "string"),
    ("ActorUserId", "string"),
    ("ActorUserIdType", "string"),
    ("ActorUserType", "string"),
    ("ActorOriginalUserType", "string"),
    ("ActorScopeId", "string"),
    ("ActorSessionId", "string"),
    ("ActingAppId", "string"),
    ("HttpUserAgent", "string"),
    ("SrcIpAddr", "string"),
    ("TargetAppName", "string"),
    ("TargetAppType", "string"),
    ("RuleName", "string"),
    ("ThreatRiskLevel", "int"),
    ("ThreatOriginalRiskLevel", "string"),
    ("WardenSeq", "long"),
    ("WardenCallId", "string"),
    ("WardenKind", "string"),
    ("WardenDecision", "string"),
    ("WardenAdvice", "string"),
    ("WardenStatus", "string"),
    ("WardenTool", "string"),
    ("WardenUpstream", "string"),
    ("WardenUpstreamTool", "string"),
    ("WardenOperations", "dynamic"),
    ("WardenResources", "dynamic"),
    ("WardenDurationUs", "long"),
    ("WardenAzureCorrelationId", "string"),
    ("WardenAuthPath", "string"),
    ("WardenGapFirst", "long"),
    ("WardenGapLast", "long"),
    ("WardenLeafHash", "string"),
    ("WardenRecordTruncated", "boolean"),
    ("WardenRecord", "string"),
];

/// The ASIM schema and version the rows follow.
pub const SCHEMA: &str = "AuditEvent";
pub const SCHEMA_VERSION: &str = "0.1";

/// The row for `item`. With `whole` false, `WardenRecord` is left out and
/// `WardenRecordTruncated` set (for a record too large for one call).
pub fn row(item: &Item, device: &Device, whole: bool) -> Value {
    let mut row = Map::new();
    let mut set = |key: &str, value: Value| {
        if !value.is_null() {
            row.insert(key.to_owned(), value);
        }
    };
    set("EventCount", json!(1));
    set("EventVendor", json!("Warden"));
    set("EventProduct", json!("Warden"));
    set("EventProductVersion", json!(device.version));
    set("EventSchema", json!(SCHEMA));
    set("EventSchemaVersion", json!(SCHEMA_VERSION));
    set("Dvc", json!(device.hostname));
    set("DvcHostname", json!(device.hostname));
    match item {
        Item::Gap { first, last } => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for key in ["TimeGenerated", "EventStartTime", "EventEndTime"] {
                set(key, json!(now));
            }
            set("EventType", json!("Other"));
            set("EventSubType", json!("siem_gap"));
            set("EventResult", json!("Failure"));
            set(
                "EventResultDetails",
                json!("records missing from the audit log"),
            );
            set("EventSeverity", json!("High"));
            set("EventMessage", json!(gap_message(*first, *last)));
            set("Operation", json!("Audit log gap"));
            set("Object", json!("audit log"));
            set("ObjectType", json!("Other"));
            set("WardenKind", json!("siem_gap"));
            set("WardenGapFirst", json!(first));
            set("WardenGapLast", json!(last));
        }
        Item::Record(stored) => record_row(stored, whole, &mut set),
    }
    Value::Object(row)
}

fn record_row(r: &Stored, whole: bool, set: &mut impl FnMut(&str, Value)) {
    let ts = r.str("ts");
    for key in ["TimeGenerated", "EventStartTime", "EventEndTime"] {
        set(key, json!(ts));
    }
    let kind = r.kind();
    set("EventType", json!(event_type(r)));
    set("EventSubType", json!(kind));
    set("EventOriginalType", json!(kind));
    set("EventOriginalUid", json!(r.str("event_id")));
    set(
        "EventResult",
        json!(match r.succeeded() {
            Some(true) => "Success",
            Some(false) => "Failure",
            None => "NA",
        }),
    );
    set("EventResultDetails", json!(result_details(r)));
    set("EventSeverity", json!(severity(r)));
    set("EventMessage", json!(r.summary()));
    let ops = r.operations();
    let resources = r.resources();
    let operation = if let Some(operation) = response_operation(r) {
        operation.to_owned()
    } else if ops.is_empty() {
        r.str("tool").unwrap_or(kind).to_owned()
    } else {
        ops.join(", ")
    };
    set("Operation", json!(operation));
    let (object, object_type) = object(r, &resources);
    set("Object", json!(object));
    set("ObjectType", json!(object_type));
    if let Some(name) = r.principal("name") {
        set("ActorUsername", json!(name));
        set(
            "ActorUsernameType",
            json!(if name.contains('@') { "UPN" } else { "Simple" }),
        );
    }
    if let Some(oid) = r.principal("oid") {
        set("ActorUserId", json!(oid));
        set("ActorUserIdType", json!("AADID"));
    }
    if let Some(kind) = r.principal("kind") {
        set(
            "ActorUserType",
            json!(match kind {
                "user" => "Regular",
                "app" | "application" => "Service Principal",
                _ => "Other",
            }),
        );
        set("ActorOriginalUserType", json!(kind));
    }
    set("ActorScopeId", json!(r.principal("tid")));
    set("ActorSessionId", json!(r.str("session_id")));
    set("ActingAppId", json!(r.principal("client_app")));
    set("HttpUserAgent", json!(r.str("user_agent")));
    set("SrcIpAddr", json!(r.str("source_ip")));
    if let Some(upstream) = r.str("upstream") {
        set("TargetAppName", json!(upstream));
        set("TargetAppType", json!("Service"));
    }
    set(
        "DvcAction",
        json!(r.effect().map(|e| match e {
            "allow" => "Allow",
            _ => "Deny",
        })),
    );
    set(
        "RuleName",
        json!(
            r.policies()
                .or_else(|| { r.response_event().and(r.detail("rule")).map(str::to_owned) })
        ),
    );
    if let Some((score, level)) = r.risk() {
        set("ThreatRiskLevel", json!(score.min(100)));
        set("ThreatOriginalRiskLevel", json!(level));
    }
    set("WardenSeq", json!(r.seq));
    set("WardenCallId", json!(r.str("call_id")));
    set("WardenKind", json!(kind));
    set("WardenDecision", json!(r.effect()));
    set("WardenAdvice", json!(r.advice()));
    set("WardenStatus", json!(r.str("status")));
    set("WardenTool", json!(r.str("tool")));
    set("WardenUpstream", json!(r.str("upstream")));
    set("WardenUpstreamTool", json!(r.str("upstream_tool")));
    if !ops.is_empty() {
        set("WardenOperations", json!(ops));
    }
    if !resources.is_empty() {
        set("WardenResources", json!(resources));
    }
    set("WardenDurationUs", json!(r.value.get("duration_us")));
    set(
        "WardenAzureCorrelationId",
        json!(r.str("azure_correlation_id")),
    );
    set("WardenAuthPath", json!(r.principal("auth_path")));
    set("WardenLeafHash", json!(hex::encode(&r.leaf_hash)));
    if whole {
        set(
            "WardenRecord",
            json!(String::from_utf8_lossy(&r.bytes).into_owned()),
        );
    } else {
        set("WardenRecordTruncated", json!(true));
    }
}

/// ASIM's normalized `EventType` (`Set`, `Read`, `Create`, `Delete`,
/// `Execute`, ..., `Other`).
fn event_type(r: &Stored) -> &'static str {
    match r.kind() {
        "intent" | "outcome" | "risk_alert" => match r.first_class() {
            Some("read") => "Read",
            Some("write") => "Set",
            Some("delete") => "Delete",
            _ => "Execute",
        },
        "policy_load" | "key_rotation" | "approval" => "Set",
        "response" => match r.response_event() {
            Some("suspend" | "block") => "Disable",
            Some("lift" | "unblock") => "Enable",
            Some("revoke") => "Delete",
            Some("incident") => "Create",
            _ => "Other",
        },
        "incident" => match r.response_event() {
            Some("opened") => "Create",
            _ => "Set",
        },
        _ => "Other",
    }
}

/// The `Operation` of a `response` or `incident` record.
fn response_operation(r: &Stored) -> Option<&'static str> {
    let operation = match (r.kind(), r.response_event()?) {
        ("response", "suspend") => "Suspend principal",
        ("response", "lift") => "Lift suspension",
        ("response", "revoke") => "Revoke privilege grant",
        ("response", "block") => "Block network",
        ("response", "unblock") => "Unblock network",
        ("response", "incident") => "Open incident",
        ("incident", "opened") => "Open incident",
        ("incident", "acknowledged") => "Acknowledge incident",
        ("incident", "closed") => "Close incident",
        _ => "Automatic response",
    };
    Some(operation)
}

fn result_details(r: &Stored) -> Option<String> {
    match r.kind() {
        "outcome" => r.str("status").map(str::to_owned),
        "intent" => match (r.effect(), r.advice()) {
            (Some("deny"), Some(advice)) => Some(format!("deny ({advice})")),
            (effect, _) => effect.map(str::to_owned),
        },
        "response" | "incident" => r.response_result().map(str::to_owned),
        _ => r
            .detail("reason")
            .or_else(|| r.detail("event"))
            .map(str::to_owned),
    }
}

fn severity(r: &Stored) -> &'static str {
    match r.urgency() {
        Urgency::High => "High",
        Urgency::Medium => "Medium",
        Urgency::Informational => "Informational",
    }
}

/// ASIM `Object` and `ObjectType`.
fn object(r: &Stored, resources: &[&str]) -> (String, &'static str) {
    if let Some(resource) = resources.first() {
        return ((*resource).to_owned(), "Cloud Resource");
    }
    let kind = r.kind();
    if let (Some(event), Some(target)) = (r.response_event(), r.response_target()) {
        let object_type = match (kind, event) {
            ("response", "suspend" | "lift") => "Directory Service Object",
            ("response", "revoke") => "Cloud Resource",
            _ => "Other",
        };
        return (target, object_type);
    }
    match kind {
        "policy_load" => (
            r.detail("hash").unwrap_or("policy set").to_owned(),
            "Policy Rule",
        ),
        "key_rotation" => (
            r.detail("new_key").unwrap_or("signing key").to_owned(),
            "Configuration Atom",
        ),
        _ => {
            let object = r
                .str("tool")
                .or_else(|| r.detail("request_id"))
                .or_else(|| r.detail("client_id"))
                .unwrap_or("audit log");
            (object.to_owned(), "Other")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::samples::*;
    use super::*;

    fn declared(column: &str) -> &'static str {
        COLUMNS
            .iter()
            .find(|(name, _)| *name == column)
            .unwrap_or_else(|| panic!("{column} is not a declared column"))
            .1
    }

    /// Every value a row holds is declared, with a JSON type that fits.
    fn check_types(row: &Value) {
        for (column, value) in row.as_object().unwrap() {
            let fits = match declared(column) {
                "string" => value.is_string(),
                "datetime" => value
                    .as_str()
                    .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
                "int" | "long" => value.is_i64() || value.is_u64(),
                "boolean" => value.is_boolean(),
                "dynamic" => value.is_array() || value.is_object(),
                other => panic!("unknown type {other}"),
            };
            assert!(fits, "{column} = {value} is not a {}", declared(column));
        }
    }

    #[test]
    fn a_denied_intent_maps_to_an_audit_event() {
        let row = row(&Item::Record(denied_intent(41)), &device(), true);
        check_types(&row);
        for (column, expected) in [
            ("TimeGenerated", json!("2026-03-01T10:11:12.123456Z")),
            ("EventVendor", json!("Warden")),
            ("EventProduct", json!("Warden")),
            ("EventSchema", json!("AuditEvent")),
            ("EventSchemaVersion", json!("0.1")),
            ("EventType", json!("Delete")),
            ("EventSubType", json!("intent")),
            ("EventResult", json!("Failure")),
            ("EventResultDetails", json!("deny (require_approval)")),
            ("EventSeverity", json!("High")),
            (
                "Operation",
                json!("Microsoft.Compute/virtualMachines/delete"),
            ),
            ("ObjectType", json!("Cloud Resource")),
            ("ActorUsername", json!("alice@contoso.com")),
            ("ActorUsernameType", json!("UPN")),
            ("ActorUserId", json!("o-1")),
            ("ActorUserIdType", json!("AADID")),
            ("ActorUserType", json!("Regular")),
            ("ActorScopeId", json!("t-1")),
            ("SrcIpAddr", json!("203.0.113.7")),
            ("HttpUserAgent", json!("Claude|Code=1.0\\x")),
            ("TargetAppName", json!("azure")),
            ("DvcAction", json!("Deny")),
            ("Dvc", json!("warden-1")),
            ("RuleName", json!("delete-needs-jit")),
            ("ThreatRiskLevel", json!(72)),
            ("WardenSeq", json!(41)),
            ("WardenKind", json!("intent")),
            ("WardenDecision", json!("deny")),
            (
                "WardenOperations",
                json!(["Microsoft.Compute/virtualMachines/delete"]),
            ),
        ] {
            assert_eq!(row[column], expected, "{column}");
        }
        assert!(
            row["Object"]
                .as_str()
                .unwrap()
                .ends_with("virtualmachines/web-01")
        );
        let record: Value = serde_json::from_str(row["WardenRecord"].as_str().unwrap()).unwrap();
        assert_eq!(record["seq"], 41);
        assert_eq!(row["WardenLeafHash"], json!("ab".repeat(32)));
    }

    #[test]
    fn responses_and_incidents_name_their_action_incident_and_status() {
        let suspended = row(&Item::Record(suspended(30)), &device(), true);
        check_types(&suspended);
        for (column, expected) in [
            ("EventType", json!("Disable")),
            ("EventSubType", json!("response")),
            ("EventResult", json!("Success")),
            ("EventResultDetails", json!("done")),
            ("EventSeverity", json!("High")),
            ("Operation", json!("Suspend principal")),
            ("Object", json!("t-1/o-1")),
            ("ObjectType", json!("Directory Service Object")),
            ("RuleName", json!("mass-deletion")),
            ("ActorUsername", json!("alice@contoso.com")),
            ("WardenKind", json!("response")),
        ] {
            assert_eq!(suspended[column], expected, "{column}");
        }
        assert!(
            suspended["EventMessage"]
                .as_str()
                .unwrap()
                .contains("incident INC-1"),
            "{suspended}"
        );
        let lifted = row(&Item::Record(lifted(31)), &device(), true);
        check_types(&lifted);
        assert_eq!(lifted["EventType"], "Enable");
        assert_eq!(lifted["EventSeverity"], "Informational");
        assert_eq!(lifted["Operation"], "Lift suspension");
        let opened = row(&Item::Record(incident(32, "opened")), &device(), true);
        check_types(&opened);
        for (column, expected) in [
            ("EventType", json!("Create")),
            ("EventSubType", json!("incident")),
            ("EventResultDetails", json!("open")),
            ("EventSeverity", json!("High")),
            ("Operation", json!("Open incident")),
            ("Object", json!("INC-1")),
            ("ObjectType", json!("Other")),
            ("RuleName", json!("mass-deletion")),
        ] {
            assert_eq!(opened[column], expected, "{column}");
        }
        let closed = row(&Item::Record(incident(33, "closed")), &device(), true);
        check_types(&closed);
        assert_eq!(closed["EventType"], "Set");
        assert_eq!(closed["EventResultDetails"], "closed");
        assert_eq!(closed["EventSeverity"], "Informational");
        assert_eq!(closed["Object"], "INC-1");
    }

    #[test]
    fn outcomes_apps_unknown_kinds_and_gaps_fit_the_declaration() {
        let outcome = row(&Item::Record(ok_outcome(3)), &device(), true);
        check_types(&outcome);
        assert_eq!(outcome["EventResult"], "Success");
        assert_eq!(outcome["EventResultDetails"], "ok");
        assert_eq!(outcome["ActorUserType"], "Service Principal");
        assert_eq!(outcome["ActorUsernameType"], "Simple");
        assert_eq!(outcome["Operation"], "echo");
        assert_eq!(outcome["WardenDurationUs"], 1234);
        assert!(outcome.get("DvcAction").is_none());
        let unknown = row(&Item::Record(unknown_kind(4)), &device(), false);
        check_types(&unknown);
        assert_eq!(unknown["EventType"], "Other");
        assert_eq!(unknown["EventResult"], "NA");
        assert_eq!(unknown["WardenRecordTruncated"], true);
        assert!(unknown.get("WardenRecord").is_none());
        let gap = row(&Item::Gap { first: 5, last: 9 }, &device(), true);
        check_types(&gap);
        assert_eq!(gap["WardenKind"], "siem_gap");
        assert_eq!(gap["WardenGapFirst"], 5);
        assert_eq!(gap["WardenGapLast"], 9);
        assert_eq!(gap["EventResult"], "Failure");
    }

    /// docs/SIEM.md declares exactly these columns, in the data collection
    /// rule's stream and in the table of columns.
    #[test]
    fn the_documented_stream_declares_the_columns() {
        let doc = include_str!("../../docs/SIEM.md");
        let start = doc
            .find("   ```json\n   {\n     \"location\"")
            .expect("the rule's JSON in docs/SIEM.md");
        let block = &doc[start + "   ```json\n".len()..];
        let block = &block[..block.find("   ```\n").expect("the end of the rule's JSON")];
        let rule: Value = serde_json::from_str(block).expect("the rule is JSON");
        let declared: Vec<(String, String)> =
            rule["properties"]["streamDeclarations"]["Custom-WardenAudit_CL"]["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_owned(),
                        c["type"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
        let expected: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        assert_eq!(declared, expected);
        for (name, kind) in COLUMNS {
            assert!(
                doc.contains(&format!("| `{name}` | {kind} | ")),
                "{name} is not in the table of columns"
            );
        }
    }

    #[test]
    fn columns_are_unique_and_typed() {
        let mut names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        for (name, kind) in COLUMNS {
            assert!(
                ["string", "datetime", "int", "long", "boolean", "dynamic"].contains(kind),
                "{name}: {kind}"
            );
        }
    }
}
