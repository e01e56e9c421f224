//! What the feed ships: the records read from the store, each with the
//! sequence number it is stored under, and the gaps found between them.
//! The sink formats (`asim`, `cef`, `ocsf`) map these; this module holds
//! what they share: reading a record's fields whatever its kind (a record
//! of a kind this build does not know is shipped too), and the summary
//! of a record as one line.

use serde_json::Value;

/// How urgently a record asks for a person, whatever the sink: each sink
/// maps it onto its own severity scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    Informational,
    Medium,
    High,
}

/// One thing to ship.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A stored record.
    Record(Stored),
    /// Sequence numbers `first..=last` are missing from the store: nothing
    /// was stored under them (or what was has been removed).
    Gap { first: u64, last: u64 },
}

/// A record as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The sequence number the record is stored under.
    pub seq: u64,
    /// Its Merkle leaf hash, `SHA-256(0x00 ‖ bytes)`.
    pub leaf_hash: Vec<u8>,
    /// Its canonical bytes (RFC 8785), exactly as signed.
    pub bytes: Vec<u8>,
    /// The same, parsed (`Null` if the bytes are not JSON).
    pub value: Value,
}

impl Stored {
    pub fn new(seq: u64, leaf_hash: Vec<u8>, bytes: Vec<u8>) -> Stored {
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Stored {
            seq,
            leaf_hash,
            bytes,
            value,
        }
    }

    /// A string field of the record.
    pub fn str(&self, field: &str) -> Option<&str> {
        self.value.get(field).and_then(Value::as_str)
    }

    /// A string field of the record's principal.
    pub fn principal(&self, field: &str) -> Option<&str> {
        self.value
            .get("principal")
            .and_then(|p| p.get(field))
            .and_then(Value::as_str)
    }

    pub fn kind(&self) -> &str {
        self.str("kind").unwrap_or("unknown")
    }

    /// The decision's effect (`allow` / `deny`).
    pub fn effect(&self) -> Option<&str> {
        self.value
            .get("decision")
            .and_then(|d| d.get("effect"))
            .and_then(Value::as_str)
    }

    /// The decision's advice on a deny (`deny`, `step_up`, `require_approval`).
    pub fn advice(&self) -> Option<&str> {
        self.value
            .get("decision")
            .and_then(|d| d.get("advice"))
            .and_then(Value::as_str)
    }

    /// The policies that decided, comma-separated.
    pub fn policies(&self) -> Option<String> {
        let policies: Vec<&str> = self
            .value
            .get("decision")
            .and_then(|d| d.get("policies"))
            .and_then(Value::as_array)?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        (!policies.is_empty()).then(|| policies.join(","))
    }

    /// The operations' Azure operations, in order.
    pub fn operations(&self) -> Vec<&str> {
        self.operation_field("azure_op")
    }

    /// The operations' resource ids, in order (those that have one).
    pub fn resources(&self) -> Vec<&str> {
        self.operation_field("resource_id")
    }

    /// The first operation's class (`read`, `write`, `delete`, `action`,
    /// `privileged`, `unknown`).
    pub fn first_class(&self) -> Option<&str> {
        self.value
            .get("operations")
            .and_then(Value::as_array)
            .and_then(|ops| ops.first())
            .and_then(|op| op.get("class"))
            .and_then(Value::as_str)
    }

    fn operation_field(&self, field: &str) -> Vec<&str> {
        self.value
            .get("operations")
            .and_then(Value::as_array)
            .map(|ops| {
                ops.iter()
                    .filter_map(|op| op.get(field).and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The risk score (0 to 100) and level, when the call was scored.
    pub fn risk(&self) -> Option<(u64, &str)> {
        let risk = self.value.get("risk")?;
        Some((
            risk.get("score").and_then(Value::as_u64)?,
            risk.get("level").and_then(Value::as_str).unwrap_or(""),
        ))
    }

    pub fn detail(&self, field: &str) -> Option<&str> {
        self.value
            .get("details")
            .and_then(|d| d.get(field))
            .and_then(Value::as_str)
    }

    /// How the record ended, for sinks that have a success/failure field:
    /// `Some(true)` success, `Some(false)` failure, `None` not applicable
    /// (a response only recorded in notify mode, or skipped).
    pub fn succeeded(&self) -> Option<bool> {
        match self.kind() {
            "outcome" => Some(self.str("status") == Some("ok")),
            "intent" => self.effect().map(|e| e == "allow"),
            "log_start" | "policy_load" | "key_rotation" | "heartbeat" | "approval"
            | "incident" => Some(true),
            "response" => match self.detail("result") {
                Some("done" | "already") => Some(true),
                Some("failed") => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The incident a `response` or `incident` record is about.
    pub fn incident_id(&self) -> Option<&str> {
        self.detail("incident_id")
    }

    /// What a `response` record did (`suspend`, `revoke`, `block`,
    /// `incident` in notify mode, `lift`, `unblock`) or what happened to
    /// an incident (`opened`, `acknowledged`, `closed`).
    pub fn response_event(&self) -> Option<&str> {
        match self.kind() {
            "response" => self.detail("action"),
            "incident" => self.detail("event"),
            _ => None,
        }
    }

    /// How a `response` ended (`done`, `failed`, `already`, `would`,
    /// `skipped`), or an incident's status after the record.
    pub fn response_result(&self) -> Option<&str> {
        match self.kind() {
            "response" => self.detail("result"),
            "incident" => self.detail("status"),
            _ => None,
        }
    }

    /// What a `response` acted on: `tid/oid`, a network, role assignment
    /// ids (space-separated); an incident's id.
    pub fn response_target(&self) -> Option<String> {
        if self.kind() == "incident" {
            return self.incident_id().map(str::to_owned);
        }
        match self.value.get("details")?.get("target")? {
            Value::String(target) => Some(target.clone()),
            Value::Array(ids) => {
                let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).collect();
                (!ids.is_empty()).then(|| ids.join(" "))
            }
            _ => None,
        }
    }

    /// How urgent the record is: a risk alert, a call scored `high` or
    /// `critical`, an incident opened, a principal suspended, a grant
    /// revoked, a network blocked, or a response that failed: `High`; a
    /// denied or failed call, or what a rule in notify mode would have
    /// done: `Medium`; the rest (a suspension lifted, a block ended, an
    /// incident acknowledged or closed): `Informational`.
    pub fn urgency(&self) -> Urgency {
        if let Some(event) = self.response_event() {
            return match (self.kind(), event, self.detail("result")) {
                ("incident", "opened", _) => Urgency::High,
                ("incident", _, _) => Urgency::Informational,
                (_, _, Some("failed")) => Urgency::High,
                (_, "suspend" | "revoke" | "block", Some("done")) => Urgency::High,
                (_, _, Some("would")) => Urgency::Medium,
                (_, "lift" | "unblock", _) | (_, _, Some("already" | "skipped")) => {
                    Urgency::Informational
                }
                _ => Urgency::Medium,
            };
        }
        let risky = matches!(self.risk(), Some((_, "high" | "critical")));
        if self.kind() == "risk_alert" || risky {
            Urgency::High
        } else if self.notable() {
            Urgency::Medium
        } else {
            Urgency::Informational
        }
    }

    /// What a `response` or `incident` record tells, in a few words
    /// ("Principal suspended", "Incident closed").
    fn response_title(&self) -> Option<String> {
        let event = self.response_event()?;
        if self.kind() == "incident" {
            return Some(format!("Incident {event}"));
        }
        let result = self.detail("result").unwrap_or("");
        let title = match (event, result) {
            ("suspend", "done") => "Principal suspended",
            ("revoke", "done") => "Privilege grant revoked",
            ("block", "done") => "Network blocked",
            ("lift", _) => "Suspension lifted",
            ("unblock", _) => "Network block ended",
            ("suspend", "already") => "Principal already suspended",
            ("suspend", "failed") => "Suspension FAILED",
            ("revoke", "failed") => "Revocation FAILED",
            ("block", "failed") => "Block FAILED",
            ("revoke", "skipped") => "Revocation skipped",
            (action, "would") => {
                return Some(format!(
                    "Response not enforced (notify mode): would {action}"
                ));
            }
            (action, result) => return Some(format!("Automatic response: {action} {result}")),
        };
        Some(title.to_owned())
    }

    /// The rest of a `response` or `incident` record's line: its target,
    /// incident, rule and who acted and why.
    fn response_summary(&self, parts: &mut Vec<String>) {
        if self.kind() == "incident" {
            parts.extend(self.incident_id().map(str::to_owned));
            parts.extend(self.detail("status").map(|s| format!("status {s}")));
            parts.extend(self.detail("title").map(str::to_owned));
        } else {
            parts.extend(self.response_target().map(|t| format!("target {t}")));
            parts.extend(self.incident_id().map(|i| format!("incident {i}")));
        }
        if let Some(rule) = self.detail("rule") {
            match self.detail("mode") {
                Some(mode) => parts.push(format!("rule {rule} ({mode})")),
                None => parts.push(format!("rule {rule}")),
            }
        }
        let why = self.detail("note").or_else(|| self.detail("reason"));
        match (self.detail("name"), why) {
            (Some(name), why) => parts.push(format!("by {name}: {}", why.unwrap_or(""))),
            (None, Some(why)) => parts.push(why.to_owned()),
            (None, None) => {}
        }
    }

    /// Whether the record is about something a SIEM should look at: a
    /// denied or failed call, a risk alert.
    pub fn notable(&self) -> bool {
        self.kind() == "risk_alert" || self.succeeded() == Some(false)
    }

    /// A short title for the record's kind.
    pub fn title(&self) -> String {
        if let Some(title) = self.response_title() {
            return title;
        }
        match self.kind() {
            "intent" => match self.effect() {
                Some("allow") => "Tool call allowed".into(),
                _ => "Tool call denied".into(),
            },
            "outcome" => format!(
                "Tool call ended: {}",
                self.str("status").unwrap_or("unknown")
            ),
            "log_start" => "Audit log opened".into(),
            "policy_load" => "Policy set loaded".into(),
            "key_rotation" => "Audit signing key rotated".into(),
            "heartbeat" => "Audit log heartbeat".into(),
            "approval" => "JIT approval changed".into(),
            "risk_alert" => "Risk alert".into(),
            "auth" => "Authentication event".into(),
            "response" => "Automatic response".into(),
            "incident" => "Incident changed".into(),
            other => format!("Audit record: {other}"),
        }
    }

    /// One line about the record: the title, tool, operations and what
    /// was decided or went wrong.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.title()];
        if matches!(self.kind(), "response" | "incident") {
            self.response_summary(&mut parts);
            return parts.join("; ");
        }
        if let Some(tool) = self.str("tool") {
            parts.push(format!("tool {tool}"));
        }
        let ops = self.operations();
        if !ops.is_empty() {
            parts.push(ops.join(" "));
        }
        if let Some(advice) = self.advice() {
            parts.push(format!("advice {advice}"));
        }
        if let Some(event) = self.detail("event") {
            parts.push(event.to_owned());
        }
        if let Some(error) = self.str("error") {
            parts.push(error.to_owned());
        }
        parts.join("; ")
    }
}

impl Item {
    /// The last sequence number the item accounts for.
    pub fn last_seq(&self) -> u64 {
        match self {
            Item::Record(stored) => stored.seq,
            Item::Gap { last, .. } => *last,
        }
    }
}

/// The description of a gap, as logged and shipped.
pub fn gap_message(first: u64, last: u64) -> String {
    let count = last - first + 1;
    if count == 1 {
        format!("the audit log has no record with sequence number {first}")
    } else {
        format!("the audit log has no records with sequence numbers {first} to {last} ({count})")
    }
}

/// What the sinks say about the Warden that ships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub hostname: String,
    pub pid: u32,
    pub version: &'static str,
}

impl Device {
    /// `hostname`, else the machine's host name.
    pub fn new(hostname: Option<&str>) -> Device {
        Device {
            hostname: hostname.map(str::to_owned).unwrap_or_else(machine_hostname),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The kernel's host name (printable ASCII only), else `warden`.
fn machine_hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .find(|name| {
            !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
        })
        .unwrap_or_else(|| "warden".to_owned())
}

#[cfg(test)]
pub(crate) mod samples {
    use super::*;
    use serde_json::json;

    /// An intent of a denied VM delete, by a user, with risk.
    pub fn denied_intent(seq: u64) -> Stored {
        record(
            seq,
            json!({
                "seq": seq,
                "event_id": "0190f0a0-0000-7000-8000-000000000001",
                "ts": "2026-03-01T10:11:12.123456Z",
                "kind": "intent",
                "call_id": "0190f0a0-0000-7000-8000-0000000000c1",
                "principal": {"tid": "t-1", "oid": "o-1", "name": "alice@contoso.com", "kind": "user", "client_app": "app-1"},
                "source_ip": "203.0.113.7",
                "user_agent": "Claude|Code=1.0\\x",
                "session_id": "s-1",
                "tool": "arm_vm_delete",
                "upstream": "azure",
                "upstream_tool": "vm_delete",
                "operations": [{"azure_op": "Microsoft.Compute/virtualMachines/delete", "class": "delete",
                                "resource_id": "/subscriptions/s/resourcegroups/g/providers/microsoft.compute/virtualmachines/web-01"}],
                "decision": {"effect": "deny", "advice": "require_approval", "policies": ["delete-needs-jit"], "operations": []},
                "risk": {"score": 72, "level": "high", "reasons": []},
                "arguments": {"vm-name": "web-01"},
            }),
        )
    }

    /// An outcome `ok` by an application.
    pub fn ok_outcome(seq: u64) -> Stored {
        record(
            seq,
            json!({
                "seq": seq,
                "event_id": "0190f0a0-0000-7000-8000-000000000002",
                "ts": "2026-03-01T10:11:13.000001Z",
                "kind": "outcome",
                "call_id": "0190f0a0-0000-7000-8000-0000000000c2",
                "principal": {"tid": "t-1", "oid": "o-2", "name": "build-agent", "kind": "app"},
                "tool": "echo",
                "upstream": "demo",
                "status": "ok",
                "duration_us": 1234,
                "azure_correlation_id": "corr-1",
            }),
        )
    }

    /// The `response` record of a principal suspended under a rule.
    pub fn suspended(seq: u64) -> Stored {
        record(
            seq,
            json!({
                "seq": seq,
                "event_id": "0190f0a0-0000-7000-8000-000000000003",
                "ts": "2026-03-01T10:11:15Z",
                "kind": "response",
                "call_id": "0190f0a0-0000-7000-8000-0000000000c1",
                "principal": {"tid": "t-1", "oid": "o-1", "name": "alice@contoso.com", "kind": "user"},
                "source_ip": "203.0.113.7",
                "tool": "arm_vm_delete",
                "risk": {"score": 70, "level": "high", "reasons": []},
                "details": {"action": "suspend", "mode": "enforce", "rule": "mass-deletion",
                            "trigger": "floor:delete_spike", "result": "done", "target": "t-1/o-1",
                            "incident_id": "INC-1", "reason": "12 deletes in the last hour"},
            }),
        )
    }

    /// The `response` record of a security manager lifting that suspension.
    pub fn lifted(seq: u64) -> Stored {
        record(
            seq,
            json!({
                "seq": seq,
                "event_id": "0190f0a0-0000-7000-8000-000000000004",
                "ts": "2026-03-01T10:30:00Z",
                "kind": "response",
                "principal": {"tid": "t-1", "oid": "o-1", "name": "alice@contoso.com", "kind": "user"},
                "details": {"action": "lift", "mode": "enforce", "rule": "mass-deletion", "result": "done",
                            "target": "t-1/o-1", "by": "t-1/o-9", "name": "sam", "reason": "cleared with alice",
                            "incident_id": "INC-1", "suspended_by_seq": 12},
            }),
        )
    }

    /// An `incident` record: opened, acknowledged or closed.
    pub fn incident(seq: u64, event: &str) -> Stored {
        let mut details = json!({"event": event, "incident_id": "INC-1", "rule": "mass-deletion",
                                 "status": if event == "opened" { "open" } else { event }});
        if event == "opened" {
            details["title"] = json!("mass-deletion: delete_spike by alice@contoso.com");
        } else {
            details["by"] = json!("t-1/o-9");
            details["name"] = json!("sam");
            details["note"] = json!("on it");
        }
        record(
            seq,
            json!({"seq": seq, "event_id": format!("e-{seq}"), "ts": "2026-03-01T10:11:16Z",
                   "kind": "incident", "details": details}),
        )
    }

    /// A record of a kind this build does not know.
    pub fn unknown_kind(seq: u64) -> Stored {
        record(
            seq,
            json!({"seq": seq, "event_id": "e", "ts": "2026-03-01T10:11:14Z", "kind": "future_kind"}),
        )
    }

    pub fn record(seq: u64, value: Value) -> Stored {
        let bytes = serde_json_canonicalizer::to_vec(&value).unwrap();
        Stored::new(seq, vec![0xab; 32], bytes)
    }

    pub fn device() -> Device {
        Device {
            hostname: "warden-1".into(),
            pid: 4242,
            version: "0.1.0",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::*;
    use super::*;

    #[test]
    fn responses_and_incidents_have_their_urgency_title_and_ids() {
        let suspended = suspended(20);
        assert_eq!(suspended.urgency(), Urgency::High);
        assert_eq!(suspended.title(), "Principal suspended");
        assert_eq!(suspended.succeeded(), Some(true));
        assert_eq!(suspended.incident_id(), Some("INC-1"));
        assert_eq!(suspended.response_target().as_deref(), Some("t-1/o-1"));
        assert_eq!(
            suspended.summary(),
            "Principal suspended; target t-1/o-1; incident INC-1; rule mass-deletion (enforce); 12 deletes in the last hour"
        );
        let lifted = lifted(21);
        assert_eq!(lifted.urgency(), Urgency::Informational);
        assert_eq!(lifted.title(), "Suspension lifted");
        assert!(
            lifted.summary().ends_with("by sam: cleared with alice"),
            "{}",
            lifted.summary()
        );
        let opened = incident(22, "opened");
        assert_eq!(opened.urgency(), Urgency::High);
        assert_eq!(opened.title(), "Incident opened");
        assert_eq!(
            opened.summary(),
            "Incident opened; INC-1; status open; mass-deletion: delete_spike by alice@contoso.com; rule mass-deletion"
        );
        let closed = incident(23, "closed");
        assert_eq!(closed.urgency(), Urgency::Informational);
        assert_eq!(closed.response_result(), Some("closed"));
        assert!(closed.summary().contains("INC-1; status closed"));
        assert!(closed.summary().ends_with("by sam: on it"));
        // Notify mode is worth a look; a failed revocation is urgent.
        let mut would = suspended.value.clone();
        would["details"]["result"] = "would".into();
        would["details"]["mode"] = "notify".into();
        let would = record(24, would);
        assert_eq!(would.urgency(), Urgency::Medium);
        assert_eq!(would.succeeded(), None);
        assert_eq!(
            would.title(),
            "Response not enforced (notify mode): would suspend"
        );
        let mut failed = suspended.value.clone();
        failed["details"]["action"] = "revoke".into();
        failed["details"]["result"] = "failed".into();
        failed["details"]["target"] = serde_json::json!(["/ra/1", "/ra/2"]);
        let failed = record(25, failed);
        assert_eq!(failed.urgency(), Urgency::High);
        assert_eq!(failed.title(), "Revocation FAILED");
        assert_eq!(failed.succeeded(), Some(false));
        assert_eq!(failed.response_target().as_deref(), Some("/ra/1 /ra/2"));
        // The rest keep theirs.
        assert_eq!(denied_intent(1).urgency(), Urgency::High);
        assert_eq!(ok_outcome(2).urgency(), Urgency::Informational);
    }

    #[test]
    fn fields_are_read_whatever_the_kind() {
        let intent = denied_intent(7);
        assert_eq!(intent.kind(), "intent");
        assert_eq!(intent.effect(), Some("deny"));
        assert_eq!(intent.advice(), Some("require_approval"));
        assert_eq!(intent.policies().as_deref(), Some("delete-needs-jit"));
        assert_eq!(intent.first_class(), Some("delete"));
        assert_eq!(intent.risk(), Some((72, "high")));
        assert_eq!(intent.succeeded(), Some(false));
        assert!(intent.notable());
        assert!(
            intent
                .summary()
                .starts_with("Tool call denied; tool arm_vm_delete")
        );
        let unknown = unknown_kind(8);
        assert_eq!(unknown.title(), "Audit record: future_kind");
        assert_eq!(unknown.succeeded(), None);
        assert_eq!(Item::Gap { first: 3, last: 5 }.last_seq(), 5);
        assert_eq!(
            gap_message(3, 5),
            "the audit log has no records with sequence numbers 3 to 5 (3)"
        );
    }
}
