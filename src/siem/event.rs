//! What the feed ships: the records read from the store, each with the
//! sequence number it is stored under, and the gaps found between them.
//! The sink formats (`asim`, `cef`, `ocsf`) map these; this module holds
//! what they share: reading a record's fields whatever its kind (a record
//! of a kind this build does not know is shipped too), and the summary
//! of a record as one line.

use serde_json::Value;

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
    /// `Some(true)` success, `Some(false)` failure, `None` not applicable.
    pub fn succeeded(&self) -> Option<bool> {
        match self.kind() {
            "outcome" => Some(self.str("status") == Some("ok")),
            "intent" => self.effect().map(|e| e == "allow"),
            "log_start" | "policy_load" | "key_rotation" | "heartbeat" | "approval" => Some(true),
            _ => None,
        }
    }

    /// Whether the record is about something a SIEM should look at: a
    /// denied or failed call, a risk alert.
    pub fn notable(&self) -> bool {
        self.kind() == "risk_alert" || self.succeeded() == Some(false)
    }

    /// A short title for the record's kind.
    pub fn title(&self) -> String {
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
            other => format!("Audit record: {other}"),
        }
    }

    /// One line about the record: the title, tool, operations and what
    /// was decided or went wrong.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.title()];
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
