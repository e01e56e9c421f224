//! Offline verification of an audit log (a store file or an export bundle).
//!
//! The verifier streams the records in order, recomputes every leaf hash and
//! the Merkle tree as it goes, and checks each checkpoint against the tree at
//! the checkpoint's size when the stream reaches it: memory stays bounded by
//! the number of checkpoints, not the number of records.
//!
//! Verdicts:
//! - `INVALID`: bytes that are not what was signed (an edited, inserted or
//!   reordered record; a forged, altered, re-signed, foreign-origin,
//!   conflicting or shrinking checkpoint);
//! - `MISSING`: records a valid checkpoint covers that are not there
//!   (deleted or truncated);
//! - `GAP`: sequence numbers that skip;
//! - `UNVERIFIED-TAIL`: records after the last valid checkpoint, which no
//!   signature vouches for yet.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;

use super::merkle::{Frontier, Hash, leaf_hash};
use super::note::{Checkpoint, Signature, SignedNote, VerifierKey};
use super::record::is_canonical;

/// The text a key signs to endorse its successor (in `key_rotation` records).
pub fn rotation_message(origin: &str, new_key: &str) -> String {
    format!("warden audit key rotation\n{origin}\n{new_key}\n")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "INVALID")]
    Invalid,
    #[serde(rename = "MISSING")]
    Missing,
    #[serde(rename = "GAP")]
    Gap,
    #[serde(rename = "UNVERIFIED-TAIL")]
    UnverifiedTail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Invalid => "INVALID",
            Verdict::Missing => "MISSING",
            Verdict::Gap => "GAP",
            Verdict::UnverifiedTail => "UNVERIFIED-TAIL",
        })
    }
}

/// One problem, with the sequence numbers (inclusive range) and/or the
/// checkpoint it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_to: Option<u64>,
    /// The checkpoint's label (`#<n>` in stored order, from 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.verdict)?;
        match (self.seq_from, self.seq_to) {
            (Some(a), Some(b)) if a == b => write!(f, " seq {a}")?,
            (Some(a), Some(b)) => write!(f, " seq {a}..{b}")?,
            _ => {}
        }
        if let Some(c) = &self.checkpoint {
            write!(f, " checkpoint {c}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A call whose intent has no outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenIntent {
    pub seq: u64,
    pub call_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub origin: String,
    pub records: u64,
    pub checkpoints: usize,
    /// The size of the largest checkpoint that verified.
    pub verified_size: u64,
    pub problems: Vec<Problem>,
    /// Informational: calls with an intent and no outcome.
    pub open_intents: Vec<OpenIntent>,
    /// Informational: things worth knowing that prove nothing either way.
    pub warnings: Vec<String>,
}

/// A checkpoint as read from the store or a bundle.
#[derive(Debug, Clone)]
pub struct CheckpointInput {
    pub label: String,
    pub note: String,
    /// The size and root the store indexed it by (a bundle has none).
    pub stored: Option<(u64, Vec<u8>)>,
}

struct Pending {
    label: String,
    body: Checkpoint,
    note: SignedNote,
    /// Signature and origin already checked (root still to compare).
    authentic: bool,
}

pub struct Verifier {
    origin: String,
    /// The key in effect and where the next key takes over: (first seq, key).
    keys: Vec<(u64, VerifierKey)>,
    frontier: Frontier,
    expected_seq: u64,
    problems: Vec<Problem>,
    warnings: Vec<String>,
    /// Checkpoints by size, compared when the stream reaches their size.
    pending: BTreeMap<u64, Vec<Pending>>,
    checkpoints: usize,
    verified_size: u64,
    /// The size up to which records matched the last good checkpoint.
    matched_size: u64,
    open: HashMap<String, u64>,
}

impl Verifier {
    /// `key` is the trusted public key; the log's origin is its name.
    pub fn new(key: VerifierKey, checkpoints: Vec<CheckpointInput>) -> Self {
        let mut v = Self {
            origin: key.name().to_owned(),
            keys: vec![(0, key)],
            frontier: Frontier::new(),
            expected_seq: 0,
            problems: Vec::new(),
            warnings: Vec::new(),
            pending: BTreeMap::new(),
            checkpoints: checkpoints.len(),
            verified_size: 0,
            matched_size: 0,
            open: HashMap::new(),
        };
        v.load_checkpoints(checkpoints);
        // A checkpoint of the empty tree is compared before any record.
        v.reach(0);
        v
    }

    fn problem(
        &mut self,
        verdict: Verdict,
        seqs: Option<(u64, u64)>,
        checkpoint: Option<&str>,
        reason: impl Into<String>,
    ) {
        self.problems.push(Problem {
            verdict,
            seq_from: seqs.map(|s| s.0),
            seq_to: seqs.map(|s| s.1),
            checkpoint: checkpoint.map(str::to_owned),
            reason: reason.into(),
        });
    }

    fn load_checkpoints(&mut self, checkpoints: Vec<CheckpointInput>) {
        let mut previous_size: Option<u64> = None;
        let mut roots: BTreeMap<u64, (String, Hash)> = BTreeMap::new();
        for input in checkpoints {
            let label = input.label;
            let parsed = SignedNote::parse(&input.note).and_then(|note| {
                let body = Checkpoint::parse(&note.text)?;
                Ok((note, body))
            });
            let (note, body) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    self.problem(Verdict::Invalid, None, Some(&label), e.to_string());
                    continue;
                }
            };
            if let Some((size, root)) = &input.stored
                && (*size != body.size || root[..] != body.root[..])
            {
                self.problem(
                    Verdict::Invalid,
                    None,
                    Some(&label),
                    format!(
                        "the stored size/root ({size}) differ from the signed note ({})",
                        body.size
                    ),
                );
            }
            if let Some(previous) = previous_size
                && body.size < previous
            {
                self.problem(
                    Verdict::Invalid,
                    None,
                    Some(&label),
                    format!("the tree size goes down, from {previous} to {}", body.size),
                );
            }
            previous_size = Some(previous_size.map_or(body.size, |p| p.max(body.size)));
            if let Some((other, root)) = roots.get(&body.size)
                && *root != body.root
            {
                self.problem(
                    Verdict::Invalid,
                    None,
                    Some(&label),
                    format!(
                        "conflicts with checkpoint {other}: same size {} and another root (split view)",
                        body.size
                    ),
                );
            }
            roots
                .entry(body.size)
                .or_insert_with(|| (label.clone(), body.root));
            let mut authentic = true;
            if body.origin != self.origin {
                authentic = false;
                self.problem(
                    Verdict::Invalid,
                    None,
                    Some(&label),
                    format!(
                        "origin {:?} is not this log's origin {:?}",
                        body.origin, self.origin
                    ),
                );
            }
            self.pending.entry(body.size).or_default().push(Pending {
                label,
                body,
                note,
                authentic,
            });
        }
    }

    fn key_for_size(&self, size: u64) -> &VerifierKey {
        // The checkpoint covering records 0..size-1 is signed by the key in
        // effect at its last record.
        let last = size.saturating_sub(1);
        &self
            .keys
            .iter()
            .rev()
            .find(|(from, _)| *from <= last)
            .expect("the trusted key starts at 0")
            .1
    }

    /// Checks every checkpoint of the current tree size.
    fn reach(&mut self, size: u64) {
        let Some(list) = self.pending.remove(&size) else {
            return;
        };
        let root = self.frontier.root();
        for p in list {
            let key = self.key_for_size(size).clone();
            let mut good = p.authentic;
            let signature_problem = match p.note.signed_by(&key) {
                Signature::Valid => None,
                Signature::Invalid => Some(format!(
                    "the signature of {}+{} does not verify (altered)",
                    key.name(),
                    key.id_hex()
                )),
                Signature::Absent => Some(format!(
                    "not signed by the trusted key {}+{} (signed by {})",
                    key.name(),
                    key.id_hex(),
                    p.note.signers().join(", ")
                )),
            };
            if let Some(reason) = signature_problem {
                good = false;
                self.problem(Verdict::Invalid, None, Some(&p.label), reason);
            }
            if p.body.root != root {
                good = false;
                let from = self.matched_size.min(size.saturating_sub(1));
                self.problem(
                    Verdict::Invalid,
                    (size > 0).then_some((from, size - 1)),
                    Some(&p.label),
                    format!(
                        "the records do not hash to the checkpoint's root at size {size} \
                         (a record in this range was edited, inserted, removed or reordered)"
                    ),
                );
            }
            if good {
                self.verified_size = self.verified_size.max(size);
                self.matched_size = self.matched_size.max(size);
            }
        }
    }

    /// Feeds the next record. `row_seq` is the sequence number the store
    /// files it under and `stored_leaf` the leaf hash stored beside it
    /// (`None` for a bundle, where only the record says).
    pub fn record(&mut self, row_seq: Option<u64>, stored_leaf: Option<&[u8]>, bytes: &[u8]) {
        let position = self.frontier.size();
        let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
        let embedded = parsed
            .as_ref()
            .and_then(|v| v.get("seq"))
            .and_then(Value::as_u64);
        let seq = row_seq.or(embedded).unwrap_or(position);
        if seq > self.expected_seq {
            self.problem(
                Verdict::Gap,
                Some((self.expected_seq, seq - 1)),
                None,
                format!(
                    "sequence numbers skip from {} to {seq}",
                    self.expected_seq.wrapping_sub(1)
                ),
            );
        } else if seq < self.expected_seq {
            self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                format!(
                    "sequence number {seq} again or out of order after {}",
                    self.expected_seq - 1
                ),
            );
        }
        self.expected_seq = seq.max(self.expected_seq) + 1;
        match &parsed {
            None => self.problem(Verdict::Invalid, Some((seq, seq)), None, "not JSON"),
            Some(_) if !is_canonical(bytes) => self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                "not in RFC 8785 canonical form",
            ),
            Some(_) if embedded != Some(seq) => self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                format!(
                    "the record says seq {} but is filed as {seq}",
                    embedded.map_or_else(|| "nothing".to_owned(), |e| e.to_string())
                ),
            ),
            Some(value) => self.facts(seq, value),
        }
        let leaf = leaf_hash(bytes);
        if stored_leaf.is_some_and(|stored| stored != leaf) {
            // A naive edit pinpointed; a careful one is still caught by the roots.
            self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                "the record's bytes do not match the leaf hash stored with them (edited)",
            );
        }
        self.frontier.push(leaf);
        self.reach(self.frontier.size());
    }

    fn facts(&mut self, seq: u64, value: &Value) {
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let call_id = value.get("call_id").and_then(Value::as_str);
        match (kind, call_id) {
            ("intent", Some(id)) => {
                self.open.insert(id.to_owned(), seq);
            }
            ("outcome", Some(id)) => {
                self.open.remove(id);
            }
            ("key_rotation", _) => self.rotation(seq, value),
            _ => {}
        }
    }

    fn rotation(&mut self, seq: u64, value: &Value) {
        let details = value.get("details");
        let field = |name: &str| {
            details
                .and_then(|d| d.get(name))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let current = self.keys.last().expect("a key").1.clone();
        let new_key = VerifierKey::parse(&field("new_key"));
        let endorsement = B64.decode(field("endorsement")).unwrap_or_default();
        match new_key {
            Ok(new_key)
                if field("old_key") == current.encode()
                    && new_key.name() == self.origin
                    && current.verify_bytes(
                        rotation_message(&self.origin, &new_key.encode()).as_bytes(),
                        &endorsement,
                    ) =>
            {
                self.keys.push((seq + 1, new_key));
            }
            _ => self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                format!(
                    "key rotation not endorsed by the key in effect {}+{}",
                    current.name(),
                    current.id_hex()
                ),
            ),
        }
    }

    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    pub fn invalid(&mut self, reason: impl Into<String>) {
        self.problem(Verdict::Invalid, None, None, reason);
    }

    pub fn finish(mut self) -> Report {
        let records = self.frontier.size();
        for (size, list) in std::mem::take(&mut self.pending) {
            for p in list {
                self.problem(
                    Verdict::Missing,
                    Some((records, size - 1)),
                    Some(&p.label),
                    format!(
                        "the checkpoint covers {size} records and the log holds {records} \
                         (deleted or truncated)"
                    ),
                );
            }
        }
        if records > self.verified_size {
            self.problem(
                Verdict::UnverifiedTail,
                Some((self.verified_size, records - 1)),
                None,
                "no valid checkpoint covers these records yet",
            );
        }
        let mut open_intents: Vec<OpenIntent> = self
            .open
            .into_iter()
            .map(|(call_id, seq)| OpenIntent { seq, call_id })
            .collect();
        open_intents.sort_by_key(|o| o.seq);
        Report {
            ok: self.problems.is_empty(),
            origin: self.origin,
            records,
            checkpoints: self.checkpoints,
            verified_size: self.verified_size,
            problems: self.problems,
            open_intents,
            warnings: self.warnings,
        }
    }
}

impl Report {
    /// The human-readable report `warden audit verify` prints.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            out.push_str(&format!("{p}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for o in &self.open_intents {
            out.push_str(&format!(
                "note: intent seq {} (call {}) has no outcome\n",
                o.seq, o.call_id
            ));
        }
        out.push_str(&format!(
            "{}: origin {}, {} records, {} checkpoints, verified through size {}\n",
            if self.ok { "OK" } else { "FAILED" },
            self.origin,
            self.records,
            self.checkpoints,
            self.verified_size
        ));
        out
    }
}
