//! The audit record (schema: `schemas/audit-record.schema.json`) and its
//! canonical bytes (RFC 8785 JSON Canonicalization Scheme).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Principal;
use crate::store::Columns;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A tool call about to be executed (committed before it is).
    Intent,
    /// How a call ended.
    Outcome,
    /// The log (re)opened by a Warden process.
    LogStart,
    /// A policy set was loaded.
    PolicyLoad,
    /// The checkpoint signing key changed.
    KeyRotation,
    /// Proof of life while idle.
    Heartbeat,
    /// A JIT approval state change.
    Approval,
    /// A high-risk call was seen.
    RiskAlert,
    /// An authentication event: a sign-in, consent, token issue, refresh,
    /// revocation or refusal (`details.event`).
    Auth,
    /// A policy set proposed, approved or rejected for loading
    /// (`details.event`, `details.proposal_id`, `details.hash`).
    PolicyChange,
    /// An access review campaign started, decided, auto-removed or closed
    /// (`details.event`, `details.campaign_id`).
    AccessReview,
    /// An automatic response: a suspension, revocation or block made (or,
    /// in `notify` mode, one that would have been), or lifted
    /// (`details.action`, `details.mode`, `details.rule`; docs/RESPONSES.md).
    Response,
    /// An incident opened, acknowledged or closed (`details.event`,
    /// `details.incident_id`).
    Incident,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Intent => "intent",
            Kind::Outcome => "outcome",
            Kind::LogStart => "log_start",
            Kind::PolicyLoad => "policy_load",
            Kind::KeyRotation => "key_rotation",
            Kind::Heartbeat => "heartbeat",
            Kind::Approval => "approval",
            Kind::RiskAlert => "risk_alert",
            Kind::Auth => "auth",
            Kind::PolicyChange => "policy_change",
            Kind::AccessReview => "access_review",
            Kind::Response => "response",
            Kind::Incident => "incident",
        }
    }
}

/// Who made the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// How the caller signed in, when through Warden's OAuth facade
    /// (`oauth_facade`: `client_app` is then the facade's client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_app: Option<String>,
    /// The caller's groups that confer the roles in `roles`
    /// (`[policy.roles]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A guest (B2B) user of the tenant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
    /// `user` or `app`.
    pub kind: String,
    pub name: String,
    pub oid: String,
    /// The app roles the caller held for the decision (intent records):
    /// the token's `roles` and those `[policy.roles]` confers on its
    /// groups. What access reviews measure use against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    pub tid: String,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self {
            tid: p.tid.clone(),
            oid: p.oid.clone(),
            name: p.display_name.clone(),
            kind: p.kind.as_str().to_owned(),
            client_app: p.client_app.clone(),
            auth_path: p.grant.as_ref().map(|_| "oauth_facade".to_owned()),
            guest: p.guest,
            roles: Vec::new(),
            groups: Vec::new(),
        }
    }
}

/// An Azure operation a call performs, when resolution knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// e.g. `Microsoft.Compute/virtualMachines/delete`.
    pub azure_op: String,
    /// `read`, `write`, `delete`, `action`, `privileged` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// What the facts stage looked up about the resource before the call
    /// was decided: `completeness`, and the `location`, `tags`,
    /// `resource_group_tags` and `reason` it has.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub facts: Option<serde_json::Value>,
    /// Lower-cased ARM id of the narrowest known scope (the full id the
    /// facts stage placed the resource at, when it found it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// Writes `value` with every object's keys in byte order (serde_json keeps
/// objects in insertion order here), so that serde_json's output of a
/// record is canonical as written (see [`Record::canonical`]).
fn sorted<S: serde::Serializer>(value: &Option<Value>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => Sorted(value).serialize(serializer),
        None => serializer.serialize_none(),
    }
}

struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Sorted(value))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The tool returned a result.
    Ok,
    /// The tool returned a result flagged `isError`.
    ToolError,
    /// The call failed (upstream error, refused, transport failure).
    Error,
    /// The client or the upstream cancelled the call.
    Cancelled,
    /// The upstream did not answer within its call timeout (the call was
    /// cancelled upstream).
    Timeout,
    /// Warden stopped (crashed) before the call ended; written at the next start.
    Abandoned,
    /// Policy denied the call; it was not executed.
    Denied,
    /// A rate limit refused the call before it was resolved or decided
    /// (`[limits]`); it was not executed.
    RateLimited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::ToolError => "tool_error",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
            Status::Timeout => "timeout",
            Status::Abandoned => "abandoned",
            Status::Denied => "denied",
            Status::RateLimited => "rate_limited",
        }
    }
}

/// One audit record. Optional fields are left out when empty so that the
/// canonical bytes hold only what is known.
///
/// The fields of a record and of the structs in it are declared in the
/// order of their names, the order of canonical JSON, so that serde_json's
/// own output is already canonical (see [`Record::canonical`]; a test keeps
/// the order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Tool arguments after redaction.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub arguments: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_correlation_id: Option<String>,
    /// Shared by a call's intent and outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The authorization decision (policy stage), when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub decision: Option<Value>,
    /// Kind-specific facts of system records.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// UUIDv7.
    pub event_id: String,
    /// The JIT grant the call ran under (intent records): `request_id`,
    /// `grant_id`, `approvers`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub jit: Option<Value>,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<Actor>,
    /// The risk assessment (risk stage), when there is one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "sorted"
    )]
    pub risk: Option<Value>,
    /// Position in the log, from 0, contiguous; equals the Merkle leaf index.
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The tool as the client named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// RFC 3339 UTC with microseconds.
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The tool as the upstream names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Record {
    /// A record of `kind` stamped now; the log assigns `seq` when it is stored.
    pub fn new(kind: Kind) -> Self {
        Self {
            seq: 0,
            event_id: uuid::Uuid::now_v7().to_string(),
            ts: now(),
            kind,
            call_id: None,
            principal: None,
            source_ip: None,
            user_agent: None,
            session_id: None,
            tool: None,
            upstream: None,
            upstream_tool: None,
            operations: Vec::new(),
            decision: None,
            risk: None,
            jit: None,
            arguments: None,
            status: None,
            error: None,
            duration_us: None,
            azure_correlation_id: None,
            details: None,
        }
    }

    /// RFC 8785 canonical bytes: what is stored, hashed and exported.
    ///
    /// serde_json writes the fields in declaration order, which is name
    /// order, and maps sorted, so its output is canonical as written unless
    /// the record holds what it writes otherwise (a fraction, keys whose
    /// UTF-8 and UTF-16 orders differ, ...). One pass checks it
    /// ([`scan_canonical`]); when the pass cannot prove it, the full
    /// canonicalizer writes the record, which costs several times more.
    pub fn canonical(&self) -> Result<Vec<u8>, serde_json::Error> {
        let bytes = serde_json::to_vec(self)?;
        if proves_canonical(&bytes) {
            return Ok(bytes);
        }
        serde_json_canonicalizer::to_vec(self)
    }

    /// The decision's effect (`allow`/`deny`), for indexing and filters.
    /// The columns the store indexes this record by.
    pub fn columns(&self) -> Columns {
        Columns {
            ts: self.ts.clone(),
            kind: self.kind.as_str().to_owned(),
            call_id: self.call_id.clone(),
            principal_oid: self.principal.as_ref().map(|p| p.oid.clone()),
            tool: self.tool.clone(),
            decision: self.decision_effect(),
        }
    }

    pub fn decision_effect(&self) -> Option<String> {
        effect_of(self.decision.as_ref())
    }
}

fn effect_of(decision: Option<&Value>) -> Option<String> {
    decision
        .and_then(|d| d.get("effect"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// What [`Record::columns`] gives for the record `bytes` hold, reading only
/// the fields the columns copy (verification compares it with the stored
/// columns). `None` if the bytes do not hold such a record.
pub fn columns_of(bytes: &[u8]) -> Option<Columns> {
    #[derive(Deserialize)]
    struct Indexed {
        ts: String,
        // As written: `Kind::as_str` of the kinds this build knows.
        kind: String,
        #[serde(default)]
        call_id: Option<String>,
        #[serde(default)]
        principal: Option<IndexedActor>,
        #[serde(default)]
        tool: Option<String>,
        #[serde(default)]
        decision: Option<Value>,
    }
    #[derive(Deserialize)]
    struct IndexedActor {
        oid: String,
    }
    let r: Indexed = serde_json::from_slice(bytes).ok()?;
    Some(Columns {
        ts: r.ts,
        kind: r.kind,
        call_id: r.call_id,
        principal_oid: r.principal.map(|p| p.oid),
        tool: r.tool,
        decision: effect_of(r.decision.as_ref()),
    })
}

/// The current time as the log writes it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Whether `bytes` are exactly the canonical form of the JSON they hold.
pub fn is_canonical(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| serde_json_canonicalizer::to_vec(&v).ok())
        .is_some_and(|c| c == bytes)
}

/// The top-level fields the verifier reads from a record, borrowed from its
/// bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub seq: u64,
    /// `kind` when it is a string.
    pub kind: Option<&'a str>,
    /// `call_id` when it is a string.
    pub call_id: Option<&'a str>,
}

/// One pass over `bytes`, without allocating, that proves they are a JSON
/// object in RFC 8785 canonical form and reads its top-level `seq`, `kind`
/// and `call_id`.
///
/// `Some` means exactly what [`is_canonical`] would say (`true`) and what
/// parsing the record would read. `None` decides nothing: the bytes are not
/// canonical, not JSON, or use something this pass leaves to the full parse
/// (escapes in a key, a `seq` that is not a small integer, a `kind` or
/// `call_id` that is not a plain string, deep nesting); callers then take
/// the full parse and [`is_canonical`].
pub fn scan_canonical(bytes: &[u8]) -> Option<Fields<'_>> {
    // Outside strings canonical JSON is ASCII, so one check covers every
    // string's UTF-8.
    std::str::from_utf8(bytes).ok()?;
    let mut scan = Scanner { bytes, at: 0 };
    let mut top = Top::default();
    if scan.peek()? != b'{' {
        return None;
    }
    scan.object(0, Some(&mut top))?;
    if scan.at != bytes.len() {
        return None;
    }
    Some(Fields {
        seq: top.seq?,
        kind: top.kind,
        call_id: top.call_id,
    })
}

/// Nesting the scanner follows; deeper documents take the full parse
/// (whose own limit is 128).
const MAX_DEPTH: usize = 64;

/// The top-level fields found so far.
#[derive(Default)]
struct Top<'a> {
    seq: Option<u64>,
    kind: Option<&'a str>,
    call_id: Option<&'a str>,
}

/// Whether one pass over `bytes`, as [`scan_canonical`]'s, proves them a
/// JSON object in RFC 8785 canonical form; `false` decides nothing.
fn proves_canonical(bytes: &[u8]) -> bool {
    if std::str::from_utf8(bytes).is_err() {
        return false;
    }
    let mut scan = Scanner { bytes, at: 0 };
    scan.peek() == Some(b'{') && scan.object(0, None).is_some() && scan.at == bytes.len()
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }

    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
    }

    /// An object whose keys are unescaped and strictly ascending in UTF-16
    /// code units (RFC 8785 §3.2.3), so also free of duplicates.
    fn object(&mut self, depth: usize, mut top: Option<&mut Top<'a>>) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut previous: Option<&[u8]> = None;
        loop {
            let (key, escaped) = self.string()?;
            if escaped || previous.is_some_and(|p| !key_before(p, key)) {
                return None;
            }
            previous = Some(key);
            self.eat(b':')?;
            match top.as_deref_mut() {
                Some(top) if key == b"seq" => {
                    top.seq = Some(self.number()?.filter(|n| *n >= 0)? as u64)
                }
                Some(top) if key == b"kind" => top.kind = Some(self.plain_string()?),
                Some(top) if key == b"call_id" => top.call_id = Some(self.plain_string()?),
                _ => self.value(depth)?,
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, as `&str`.
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            (text, false) => std::str::from_utf8(text).ok(),
            (_, true) => None,
        }
    }

    /// A string in canonical form: raw UTF-8 except `"`, `\` and control
    /// characters, which are escaped exactly as RFC 8785 writes them. Returns
    /// the bytes between the quotes and whether they hold an escape.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at += plain_prefix(&self.bytes[self.at..]);
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => return Some((&self.bytes[start..self.at - 1], escaped)),
                b'\\' => {
                    escaped = true;
                    match self.peek()? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            // Only control characters without a short form.
                            let hex = self.bytes.get(self.at + 1..self.at + 5)?;
                            let low = match hex[3] {
                                d @ b'0'..=b'9' => d - b'0',
                                d @ b'a'..=b'f' => d - b'a' + 10,
                                _ => return None,
                            };
                            let code = match (hex[0], hex[1], hex[2]) {
                                (b'0', b'0', b'0') => low,
                                (b'0', b'0', b'1') => 0x10 + low,
                                _ => return None,
                            };
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// A number in canonical form. Integers of up to 2^53 (exact as
    /// doubles) are read here and returned; any other number is checked
    /// against what the canonicalizer writes for it.
    fn number(&mut self) -> Option<Option<i64>> {
        let start = self.at;
        let negative = self.eat(b'-').is_some();
        let digits = self.at;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.at += 1;
                }
            }
            _ => return None,
        }
        let int_end = self.at;
        let mut simple = true;
        if self.eat(b'.').is_some() {
            simple = false;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            simple = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits()?;
        }
        let token = &self.bytes[start..self.at];
        let count = int_end - digits;
        if simple && count <= 16 && !(negative && token == b"-0") {
            let mut n: i64 = 0;
            for d in &self.bytes[digits..int_end] {
                n = n * 10 + i64::from(d - b'0');
            }
            if n <= 1 << 53 {
                return Some(Some(if negative { -n } else { n }));
            }
        }
        // Rare in records: ask the canonicalizer itself.
        let value: Value = serde_json::from_slice(token).ok()?;
        let canonical = serde_json_canonicalizer::to_vec(&value).ok()?;
        (canonical == token).then_some(None)
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        (self.at > start).then_some(())
    }
}

/// How many leading bytes of `bytes` need no attention inside a string:
/// none of `"`, `\` or a control character. Eight bytes at a time.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit for each byte that is zero (exact for the first one).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // Bytes below 0x20: (b & 0xe0) == 0, i.e. zero after masking; then
        // bytes equal to `"` and `\`.
        let special = zero(x & (ONES * 0xe0))
            | zero(x ^ (ONES * b'"' as u64))
            | zero(x ^ (ONES * b'\\' as u64));
        if special != 0 {
            return at + (special.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at
}

/// Whether key `a` sorts strictly before key `b` (RFC 8785: by UTF-16 code
/// units; for ASCII that is byte order).
fn key_before(a: &[u8], b: &[u8]) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a < b;
    }
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(a), Ok(b)) => a.encode_utf16().lt(b.encode_utf16()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record with every field set.
    fn full_record(seed: &mut u64) -> Record {
        let mut text = || random_text(seed);
        let mut r = Record::new(Kind::Outcome);
        r.seq = 42;
        // As the gateway makes them (the one-pass check reads it plain).
        r.call_id = Some(uuid::Uuid::now_v7().to_string());
        r.principal = Some(Actor {
            auth_path: Some(text()),
            client_app: Some(text()),
            groups: vec![text(), text()],
            guest: true,
            kind: "user".into(),
            name: text(),
            oid: text(),
            roles: vec![text()],
            tid: text(),
        });
        r.source_ip = Some(text());
        r.user_agent = Some(text());
        r.session_id = Some(text());
        r.tool = Some(text());
        r.upstream = Some(text());
        r.upstream_tool = Some(text());
        r.operations = vec![Operation {
            azure_op: text(),
            class: Some(text()),
            resource_id: Some(text()),
            facts: Some(serde_json::json!({"completeness": text(), "tags": {"env": text()}})),
        }];
        r.decision = Some(serde_json::json!({"effect": "allow", "policies": [text()]}));
        r.risk = Some(serde_json::json!({"score": 12, "reasons": [text()]}));
        r.jit = Some(serde_json::json!({"grant_id": text()}));
        r.arguments = Some(serde_json::json!({"text": text(), "n": -3}));
        r.status = Some(Status::Ok);
        r.error = Some(text());
        r.duration_us = Some(1234);
        r.azure_correlation_id = Some(text());
        r.details = Some(serde_json::json!({"z": [1, 2], "a": {"b": null}}));
        r
    }

    /// A string from a small deterministic generator: mostly ASCII, at times
    /// quotes, backslashes, control characters, accents, private-use and
    /// astral characters (whose UTF-8 and UTF-16 orders differ).
    fn random_text(seed: &mut u64) -> String {
        const PIECES: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "-",
            "/",
            " ",
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{1f}",
            "é",
            "\u{e000}",
            "\u{ffff}",
            "😀",
            "\u{10000}",
            "vm-01",
            "Microsoft.Compute",
        ];
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let len = next() % 6;
        (0..len)
            .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
            .collect()
    }

    #[test]
    fn serde_json_writes_a_full_record_canonically() {
        // Fails when a field is declared out of name order: `canonical`
        // would then take the slow path for every record.
        let mut seed = 7;
        for _ in 0..50 {
            let mut r = full_record(&mut seed);
            // ASCII text only, which serde_json writes canonically.
            let ascii = serde_json::to_string(&r).unwrap();
            r = serde_json::from_str(&ascii.replace(|c: char| !c.is_ascii(), "x")).unwrap();
            let bytes = serde_json::to_vec(&r).unwrap();
            assert!(
                proves_canonical(&bytes) && scan_canonical(&bytes).is_some(),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn canonical_bytes_are_the_canonicalizers_whichever_path_writes_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let (mut direct, mut full) = (0, 0);
        for i in 0..3000 {
            let mut r = full_record(&mut seed);
            // Values the fast path cannot prove canonical: fractions,
            // large numbers, keys out of UTF-16 order.
            match i % 5 {
                0 => r.arguments = Some(serde_json::json!({"x": 1.5, "y": 1e21, "z": 0.1})),
                1 => {
                    let key = random_text(&mut seed);
                    r.details = Some(serde_json::json!({ key: 1, "\u{e000}": 2, "😀": 3 }))
                }
                2 => r.duration_us = Some(u64::MAX),
                // The sealer's placeholder number (2^53 - 1).
                3 => r.seq = (1 << 53) - 1,
                _ => {}
            }
            let expected = serde_json_canonicalizer::to_vec(&r).unwrap();
            assert_eq!(r.canonical().unwrap(), expected, "record {i}");
            if proves_canonical(&serde_json::to_vec(&r).unwrap()) {
                direct += 1;
            } else {
                full += 1;
            }
        }
        assert!(direct > 1500 && full > 500, "direct {direct}, full {full}");
    }

    #[test]
    fn columns_read_from_the_bytes_are_the_record_s_own() {
        let actor = Actor {
            tid: "t".into(),
            oid: "o-1".into(),
            name: "n".into(),
            kind: "user".into(),
            client_app: None,
            auth_path: None,
            guest: false,
            roles: Vec::new(),
            groups: Vec::new(),
        };
        let decisions = [
            None,
            Some(serde_json::json!({"effect": "deny", "policies": ["p"]})),
            Some(serde_json::json!({"effect": 1})),
            Some(serde_json::json!("allow")),
            Some(serde_json::json!({})),
        ];
        for kind in [Kind::Intent, Kind::Outcome, Kind::Auth, Kind::Heartbeat] {
            for decision in &decisions {
                let mut r = Record::new(kind);
                r.seq = 7;
                r.decision = decision.clone();
                if kind != Kind::Heartbeat {
                    r.call_id = Some("c-\"1\"".into());
                    r.principal = Some(actor.clone());
                    r.tool = Some("vm_ré".into());
                }
                let bytes = r.canonical().unwrap();
                assert_eq!(columns_of(&bytes), Some(r.columns()), "{r:?}");
            }
        }
        assert_eq!(columns_of(b"not json"), None);
        assert_eq!(columns_of(br#"{"kind":"intent"}"#), None, "no ts");
    }

    #[test]
    fn canonical_bytes_sort_keys_and_drop_empty_fields() {
        let mut r = Record::new(Kind::Heartbeat);
        r.seq = 7;
        r.event_id = "e".into();
        r.ts = "t".into();
        r.details = Some(serde_json::json!({"b": 1, "a": [true, null, 1.5e300]}));
        let bytes = r.canonical().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"details":{"a":[true,null,1.5e+300],"b":1},"event_id":"e","kind":"heartbeat","seq":7,"ts":"t"}"#
        );
        assert!(is_canonical(&bytes));
        assert!(!is_canonical(br#"{"seq":7, "kind":"heartbeat"}"#));
        let back: Record = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
    }

    /// What the full parse reads: `Some` fields exactly when the bytes are
    /// canonical and `seq` is a number `as_u64` reads.
    fn full_parse(bytes: &[u8]) -> Option<(u64, Option<String>, Option<String>)> {
        if !is_canonical(bytes) {
            return None;
        }
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let text = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
        Some((v.get("seq")?.as_u64()?, text("kind"), text("call_id")))
    }

    /// The scan proves nothing the full parse would not: whenever it says
    /// canonical, so does [`is_canonical`], with the same fields.
    fn assert_agrees(bytes: &[u8]) {
        if let Some(f) = scan_canonical(bytes) {
            let fields = (
                f.seq,
                f.kind.map(str::to_owned),
                f.call_id.map(str::to_owned),
            );
            assert_eq!(
                full_parse(bytes),
                Some(fields),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// Records in canonical form with what the scan must handle: escapes,
    /// non-ASCII text and keys (sorted by UTF-16 code units), numbers of
    /// every shape, nesting.
    fn samples() -> Vec<Vec<u8>> {
        let details = [
            serde_json::json!({"score": 12.5, "ratio": 0.1, "big": 1e21, "tiny": 1e-7,
                "huge": 12345678901234567890u64, "neg": -42, "zero": 0}),
            serde_json::json!({"text": "naïve \u{1F511} \"quoted\" back\\slash \n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} /"}),
            serde_json::json!({"\u{E000}": 1, "\u{1F511}": 2, "é": 3, "a": [], "b": {}}),
            serde_json::json!({"nested": [[[{"a": [true, false, null]}]]], "n": [1, -1, 2.5e-300]}),
        ];
        details
            .into_iter()
            .enumerate()
            .map(|(i, details)| {
                let mut r = Record::new(Kind::Intent);
                r.seq = 1000 + i as u64;
                // Fixed, so that the edits below find only what they aim at
                // (a random id once held "-42").
                r.event_id = format!("0193a000-0000-7000-8000-00000000000{i}");
                r.ts = "2026-12-06T17:20:12.000734Z".into();
                r.call_id = Some(format!("call-{i}"));
                r.tool = Some("vm_restart".into());
                r.details = Some(details);
                r.canonical().unwrap()
            })
            .collect()
    }

    #[test]
    fn the_scan_reads_canonical_records_as_the_full_parse_does() {
        for bytes in samples() {
            let scanned = scan_canonical(&bytes);
            assert!(scanned.is_some(), "{}", String::from_utf8_lossy(&bytes));
            assert_agrees(&bytes);
        }
    }

    #[test]
    fn the_scan_accepts_no_edit_the_full_parse_rejects() {
        // Every byte deleted, and every position given one of the bytes
        // that make JSON non-canonical or invalid; plus whole-token edits.
        let inserts: &[&[u8]] = &[
            b" ", b"\n", b",", b"0", b"-", b".", b"e", b"\"", b"\\", b"\\/", b"\\u0041",
            b"\\u00E9", b"\x01", b"\xff", b"}", b"]", b"{", b"[", b":", b"\xc3",
        ];
        let replacements: &[(&str, &str)] = &[
            ("\"call_id\"", "\"call_id\":\"x\",\"call_id\""),
            (
                "\"kind\":\"intent\"",
                "\"kind\":\"intent\",\"kind\":\"outcome\"",
            ),
            ("\"score\":12.5", "\"score\":12.50"),
            ("\"score\":12.5", "\"score\":1.25e1"),
            ("\"ratio\":0.1", "\"ratio\":.1"),
            ("\"big\":1e+21", "\"big\":1e21"),
            ("\"neg\":-42", "\"neg\":-042"),
            ("\"zero\":0", "\"zero\":-0"),
            ("\\n", "\\u000a"),
            ("\\u001f", "\\u001F"),
            ("\"seq\":1000", "\"seq\":1000.0"),
            ("\"seq\":1001", "\"seq\":\"1001\""),
            ("\"seq\":1002", "\"seq\":-1002"),
            ("\"a\":[]", "\"c\":[]"),
            ("\"é\":3", "\"\u{F000}\":3"),
            ("[true,", "[True,"),
        ];
        let mut applied = vec![false; replacements.len()];
        for bytes in samples() {
            for i in 0..bytes.len() {
                let mut edited = bytes.clone();
                edited.remove(i);
                assert_agrees(&edited);
                for insert in inserts {
                    let mut edited = bytes.clone();
                    edited.splice(i..i, insert.iter().copied());
                    assert_agrees(&edited);
                }
            }
            let text = String::from_utf8(bytes.clone()).unwrap();
            for (n, (from, to)) in replacements.iter().enumerate() {
                if text.contains(from) {
                    applied[n] = true;
                    let edited = text.replacen(from, to, 1);
                    assert!(scan_canonical(edited.as_bytes()).is_none(), "{edited}");
                    assert_agrees(edited.as_bytes());
                }
            }
        }
        let unused: Vec<_> = (replacements.iter().zip(&applied))
            .filter(|(_, applied)| !**applied)
            .map(|(edit, _)| edit.0)
            .collect();
        assert!(
            unused.is_empty(),
            "edits that found nothing to edit: {unused:?}"
        );
    }

    #[test]
    fn the_plain_prefix_stops_at_the_first_byte_that_needs_attention() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut bytes = text.to_vec();
                bytes[at] = special;
                // Past the last whole eight bytes the caller looks byte by byte.
                assert_eq!(plain_prefix(&bytes), at.min(32));
            }
        }
        assert_eq!(plain_prefix(text), 32);
        assert_eq!(plain_prefix("ééééé\u{7f}".as_bytes()), 8);
    }
}
