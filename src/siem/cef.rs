//! Syslog messages for SIEMs: RFC 5424 headers around an ArcSight Common
//! Event Format (CEF) message, framed by octet counting (RFC 6587) for TCP
//! and TLS.
//!
//! ```text
//! 187 <109>1 2026-03-01T10:11:12.123456Z warden-1 warden 4242 intent - CEF:0|Warden|Warden|0.1.0|intent|Tool call denied|5|rt=1772359872123 cn1=41 cn1Label=seq ...
//! ```
//!
//! The CEF header escapes `\` and `|` (a line break becomes a space); an
//! extension value escapes `\` and `=`, writes line breaks as `\n` and
//! `\r`, and turns other control characters into spaces, so a message is
//! always one line. The extension keys and their labels are listed in
//! docs/SIEM.md; every record carries its sequence number as
//! `cn1=<seq> cn1Label=seq`.

use std::net::IpAddr;

use super::event::{Device, Item, Stored, Urgency, gap_message};

/// The CEF header fields before the event's own.
const VENDOR: &str = "Warden";
const PRODUCT: &str = "Warden";

/// A header field, escaped.
pub fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value, escaped.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The CEF message for `item`.
pub fn message(item: &Item, device: &Device) -> String {
    let mut ext = Extension::default();
    let (signature, name, severity) = match item {
        Item::Gap { first, last } => {
            ext.add("rt", chrono::Utc::now().timestamp_millis().to_string());
            ext.add("cat", "siem_gap");
            ext.labelled("flexNumber1", "gapFirst", first.to_string());
            ext.labelled("flexNumber2", "gapLast", last.to_string());
            ext.add("cnt", (last - first + 1).to_string());
            ext.add("msg", gap_message(*first, *last));
            ("siem_gap".to_owned(), "Audit log gap".to_owned(), 9)
        }
        Item::Record(r) => {
            record_extension(r, &mut ext);
            (r.kind().to_owned(), r.title(), severity(r))
        }
    };
    ext.add("dvchost", device.hostname.clone());
    ext.add("dvcpid", device.pid.to_string());
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        escape_header(VENDOR),
        escape_header(PRODUCT),
        escape_header(device.version),
        escape_header(&signature),
        escape_header(&name),
        severity,
        ext.text
    )
}

fn record_extension(r: &Stored, ext: &mut Extension) {
    if let Some(ms) = r
        .str("ts")
        .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
        .map(|t| t.timestamp_millis())
    {
        ext.add("rt", ms.to_string());
    }
    ext.labelled("cn1", "seq", r.seq.to_string());
    ext.opt("externalId", r.str("event_id"));
    ext.add("cat", r.kind());
    ext.labelled_opt("cs1", "callId", r.str("call_id"));
    ext.labelled_opt("cs2", "tool", r.str("tool"));
    let ops = r.operations();
    if !ops.is_empty() {
        ext.labelled("cs3", "operations", ops.join(" "));
    }
    let resources = r.resources();
    if !resources.is_empty() {
        ext.labelled("cs4", "resources", resources.join(" "));
    }
    match (r.policies(), r.response_event().and(r.detail("rule"))) {
        (Some(policies), _) => ext.labelled("cs5", "policies", policies),
        // A response's or incident's rule takes the policies' field.
        (None, Some(rule)) => ext.labelled("cs5", "responseRule", rule),
        (None, None) => {}
    }
    ext.labelled_opt("cs6", "tenantId", r.principal("tid"));
    ext.opt("suser", r.principal("name"));
    ext.opt("suid", r.principal("oid"));
    match r.str("source_ip").map(|ip| (ip, ip.parse::<IpAddr>())) {
        Some((ip, Ok(IpAddr::V4(_)))) => ext.add("src", ip),
        Some((ip, Ok(IpAddr::V6(_)))) => ext.labelled("c6a2", "sourceIPv6Address", ip),
        _ => {}
    }
    ext.opt("requestClientApplication", r.str("user_agent"));
    ext.opt("destinationServiceName", r.str("upstream"));
    // A response's action (`suspend`, `lift`, ...) or what happened to an
    // incident (`opened`, ...), and how it ended or the incident's status.
    ext.opt("act", r.effect().or_else(|| r.response_event()));
    ext.opt("reason", r.advice());
    ext.opt("outcome", r.str("status").or_else(|| r.response_result()));
    if let Some((score, _)) = r.risk() {
        ext.labelled("cn2", "riskScore", score.to_string());
    }
    if let Some(us) = r.value.get("duration_us").and_then(|d| d.as_u64()) {
        ext.labelled("cn3", "durationUs", us.to_string());
    }
    ext.labelled_opt(
        "flexString1",
        "azureCorrelationId",
        r.str("azure_correlation_id"),
    );
    ext.labelled_opt("flexString2", "incidentId", r.incident_id());
    ext.add("msg", r.summary());
}

/// CEF severity, 0 to 10.
fn severity(r: &Stored) -> u8 {
    match r.urgency() {
        Urgency::High => 7,
        Urgency::Medium => 5,
        Urgency::Informational => 2,
    }
}

/// The RFC 5424 severity (0 emergency … 7 debug).
fn syslog_severity(item: &Item) -> u8 {
    match item {
        Item::Gap { .. } => 2,
        Item::Record(r) => match severity(r) {
            7.. => 4,
            5.. => 5,
            _ => 6,
        },
    }
}

/// The RFC 5424 message for `item` (without framing).
pub fn syslog_message(item: &Item, device: &Device, facility: u8) -> String {
    let pri = u16::from(facility) * 8 + u16::from(syslog_severity(item));
    let timestamp = match item {
        Item::Record(r) => r
            .str("ts")
            .filter(|ts| chrono::DateTime::parse_from_rfc3339(ts).is_ok())
            .map(str::to_owned),
        Item::Gap { .. } => None,
    }
    .unwrap_or_else(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let msgid: String = match item {
        Item::Record(r) => r.kind(),
        Item::Gap { .. } => "siem_gap",
    }
    .chars()
    .filter(|c| c.is_ascii_graphic())
    .take(32)
    .collect();
    let msgid = if msgid.is_empty() { "-".into() } else { msgid };
    let hostname: String = device.hostname.chars().take(255).collect();
    format!(
        "<{pri}>1 {timestamp} {hostname} warden {} {msgid} - {}",
        device.pid,
        message(item, device)
    )
}

/// One octet-counted frame (RFC 6587 section 3.4.1): `LEN SP MSG`.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// Extension `key=value` pairs, space-separated.
#[derive(Default)]
struct Extension {
    text: String,
}

impl Extension {
    fn add(&mut self, key: &str, value: impl AsRef<str>) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(key);
        self.text.push('=');
        self.text.push_str(&escape_value(value.as_ref()));
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.add(key, value);
        }
    }

    /// A custom field and its label (`cs1=… cs1Label=…`).
    fn labelled(&mut self, key: &str, label: &str, value: impl AsRef<str>) {
        self.add(key, value);
        self.add(&format!("{key}Label"), label);
    }

    fn labelled_opt(&mut self, key: &str, label: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.labelled(key, label, value);
        }
    }
}

/// A CEF message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The seven header fields, unescaped (the first is the version).
    pub header: Vec<String>,
    /// The extension's pairs, unescaped, in order.
    pub extension: Vec<(String, String)>,
}

impl Parsed {
    /// The value of extension key `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a CEF message back. For tests and tools; `None` if it is not CEF.
pub fn parse(message: &str) -> Option<Parsed> {
    let rest = message.strip_prefix("CEF:")?;
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = rest.chars();
    while header.len() < 7 {
        match chars.next()? {
            '\\' => field.push(chars.next()?),
            '|' => header.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    let extension: String = chars.collect();
    // Keys are the words just before an unescaped `=`; a value runs to the
    // space before the next key.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut key: Option<String> = None;
    let mut value = String::new();
    let mut word = String::new();
    let mut escaped = false;
    for c in extension.chars() {
        if escaped {
            let unescaped = match c {
                'n' => '\n',
                'r' => '\r',
                c => c,
            };
            value.push(unescaped);
            word.push(unescaped);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' => {
                // `word` is the new key; what came before it is the old value.
                if let Some(previous) = key.take() {
                    let end = value.len() - word.len();
                    let old = value[..end].trim_end().to_owned();
                    pairs.push((previous, old));
                }
                key = Some(std::mem::take(&mut word));
                value.clear();
            }
            ' ' => {
                value.push(' ');
                word.clear();
            }
            c => {
                value.push(c);
                word.push(c);
            }
        }
    }
    if let Some(previous) = key {
        pairs.push((previous, value));
    }
    Some(Parsed {
        header,
        extension: pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::event::samples::*;
    use super::*;

    #[test]
    fn escaping_follows_the_cef_rules() {
        assert_eq!(escape_header("a|b\\c\nd"), "a\\|b\\\\c d");
        assert_eq!(escape_value("a=b\\c\nd\re|f\tg"), "a\\=b\\\\c\\nd\\re|f g");
    }

    #[test]
    fn a_record_is_one_line_of_cef_with_its_seq() {
        let message = message(&Item::Record(denied_intent(41)), &device());
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("CEF:0|Warden|Warden|0.1.0|intent|Tool call denied|7|rt=1772359872123 cn1=41 cn1Label=seq "),
            "{message}"
        );
        let parsed = parse(&message).unwrap();
        assert_eq!(parsed.header[0], "0");
        assert_eq!(parsed.header[4], "intent");
        let get = |key: &str| {
            parsed
                .get(key)
                .unwrap_or_else(|| panic!("no {key} in {parsed:?}"))
        };
        assert_eq!(get("cn1"), "41");
        assert_eq!(get("cn1Label"), "seq");
        // The user agent holds `|`, `=` and `\`: escaped, and read back whole.
        assert_eq!(get("requestClientApplication"), "Claude|Code=1.0\\x");
        assert!(message.contains("requestClientApplication=Claude|Code\\=1.0\\\\x "));
        assert_eq!(get("suser"), "alice@contoso.com");
        assert_eq!(get("src"), "203.0.113.7");
        assert_eq!(get("act"), "deny");
        assert_eq!(get("reason"), "require_approval");
        assert_eq!(get("cs3"), "Microsoft.Compute/virtualMachines/delete");
        assert_eq!(get("cn2"), "72");
        assert_eq!(get("dvchost"), "warden-1");
        assert!(get("msg").starts_with("Tool call denied; tool arm_vm_delete"));
    }

    #[test]
    fn header_fields_are_escaped_and_gaps_have_their_own_event() {
        let odd = record(
            3,
            serde_json::json!({"seq": 3, "event_id": "e", "ts": "2026-03-01T00:00:00Z",
                               "kind": "a|b\\c", "error": "line1\nline2 x=y"}),
        );
        let message = message(&Item::Record(odd), &device());
        assert!(
            message.contains("|a\\|b\\\\c|Audit record: a\\|b\\\\c|"),
            "{message}"
        );
        let parsed = parse(&message).unwrap();
        assert_eq!(parsed.header[4], "a|b\\c");
        let msg = parsed.get("msg").unwrap();
        assert!(msg.ends_with("line1\nline2 x=y"), "{msg}");
        let gap = message_of_gap();
        let parsed = parse(&gap).unwrap();
        assert_eq!(parsed.header[4], "siem_gap");
        assert_eq!(parsed.header[6], "9");
        assert_eq!(parsed.get("flexNumber1"), Some("5"));
        assert_eq!(parsed.get("flexNumber2"), Some("6"));
        assert_eq!(parsed.get("cnt"), Some("2"));
        assert_eq!(parsed.get("cn1"), None);
    }

    fn message_of_gap() -> String {
        message(&Item::Gap { first: 5, last: 6 }, &device())
    }

    #[test]
    fn responses_and_incidents_carry_their_action_incident_and_status() {
        let text = message(&Item::Record(suspended(30)), &device());
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.header[4], "response");
        assert_eq!(parsed.header[5], "Principal suspended");
        assert_eq!(parsed.header[6], "7");
        assert_eq!(parsed.get("act"), Some("suspend"));
        assert_eq!(parsed.get("outcome"), Some("done"));
        assert_eq!(parsed.get("flexString2"), Some("INC-1"));
        assert_eq!(parsed.get("flexString2Label"), Some("incidentId"));
        assert_eq!(parsed.get("cs5"), Some("mass-deletion"));
        assert_eq!(parsed.get("cs5Label"), Some("responseRule"));
        let lifted = parse(&message(&Item::Record(lifted(31)), &device())).unwrap();
        assert_eq!(lifted.header[5], "Suspension lifted");
        assert_eq!(lifted.header[6], "2");
        assert_eq!(lifted.get("act"), Some("lift"));
        let opened = parse(&message(&Item::Record(incident(32, "opened")), &device())).unwrap();
        assert_eq!(opened.header[4], "incident");
        assert_eq!(opened.header[5], "Incident opened");
        assert_eq!(opened.header[6], "7");
        assert_eq!(opened.get("act"), Some("opened"));
        assert_eq!(opened.get("outcome"), Some("open"));
        assert_eq!(opened.get("flexString2"), Some("INC-1"));
        let closed = parse(&message(&Item::Record(incident(33, "closed")), &device())).unwrap();
        assert_eq!(closed.header[5], "Incident closed");
        assert_eq!(closed.header[6], "2");
        assert_eq!(closed.get("outcome"), Some("closed"));
        // The syslog severity follows: warning for the suspension, informational after.
        let text = syslog_message(&Item::Record(suspended(30)), &device(), 13);
        assert!(text.starts_with("<108>1 "), "{text}");
        let text = syslog_message(&Item::Record(incident(33, "closed")), &device(), 13);
        assert!(text.starts_with("<110>1 "), "{text}");
    }

    #[test]
    fn syslog_frames_count_octets() {
        let text = syslog_message(&Item::Record(ok_outcome(9)), &device(), 13);
        assert!(
            text.starts_with(
                "<110>1 2026-03-01T10:11:13.000001Z warden-1 warden 4242 outcome - CEF:0|"
            ),
            "{text}"
        );
        let denied = syslog_message(&Item::Record(denied_intent(1)), &device(), 13);
        assert!(denied.starts_with("<108>1 "), "{denied}");
        let framed = frame("héllo");
        assert_eq!(framed, b"6 h\xc3\xa9llo");
    }
}
