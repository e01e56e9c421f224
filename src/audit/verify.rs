//! Offline verification of an audit log (a store file or an export bundle).
//!
//! The verifier streams the records in order, recomputes every leaf hash and
//! the Merkle tree as it goes, and checks each checkpoint against the tree at
//! the checkpoint's size when the stream reaches it: memory stays bounded by
//! the number of checkpoints, not the number of records.
//!
//! The per-record work that needs no order (the leaf hash, the comparison
//! with the stored leaf hash, the canonical-form check and reading `seq`,
//! `kind` and `call_id`) is done on batches of records, on a second thread
//! when the machine has one, while the caller reads the next batch; the
//! rest (sequence numbers, the tree, checkpoints, open calls) is applied in
//! order on the caller's thread. Batches are bounded in records and bytes.
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
use std::ops::Range;
use std::sync::mpsc;
use std::thread;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;

use super::merkle::{Frontier, Hash, leaf_hash};
use super::note::{Checkpoint, Signature, SignedNote, VerifierKey};
use super::record::{columns_of, is_canonical, scan_canonical};
use super::trusted::{self, Trusted, TrustedResult};
use crate::store::Columns;

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
    /// Whether trusted checkpoints were given (`--trusted-checkpoint`,
    /// `--witness`); without them a rollback cannot be told apart.
    pub trusted_given: bool,
    /// What was found about each trusted checkpoint.
    pub trusted: Vec<TrustedResult>,
    /// For a subset bundle: what it is a subset of, and by which filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// For a subset bundle: the records proven by inclusion proofs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proven: Option<u64>,
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
    /// The roots of the checkpoints that verified, by size.
    verified_roots: BTreeMap<u64, Hash>,
    trusted: Trusted,
    open: HashMap<String, u64>,
    /// Records fed and not yet checked.
    batch: Batch,
    /// Records per batch.
    batch_records: usize,
    /// The thread checking batches, started with the first full batch.
    worker: Option<Worker>,
    /// Whether a worker may be started (more than one CPU).
    parallel: bool,
}

/// Records fed and not yet applied: their bytes and stored leaf hashes back
/// to back, and where each one ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    stored_leaves: Vec<u8>,
    entries: Vec<Entry>,
}

struct Entry {
    row_seq: Option<u64>,
    bytes: Range<usize>,
    stored_leaf: Option<Range<usize>>,
    /// The indexed columns stored with it (a store's rows; not a bundle's).
    columns: Option<Columns>,
}

/// Bytes after which a batch is checked even if it has fewer records.
const BATCH_BYTES: usize = 4 << 20;
/// Records per batch.
const BATCH_RECORDS: usize = 512;

impl Batch {
    fn push(
        &mut self,
        row_seq: Option<u64>,
        stored_leaf: Option<&[u8]>,
        columns: Option<&Columns>,
        bytes: &[u8],
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        let stored_leaf = stored_leaf.map(|leaf| {
            let start = self.stored_leaves.len();
            self.stored_leaves.extend_from_slice(leaf);
            start..self.stored_leaves.len()
        });
        self.entries.push(Entry {
            row_seq,
            bytes: start..self.bytes.len(),
            stored_leaf,
            columns: columns.cloned(),
        });
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.stored_leaves.clear();
        self.entries.clear();
    }

    fn is_full(&self, records: usize) -> bool {
        self.entries.len() >= records || self.bytes.len() >= BATCH_BYTES
    }

    /// The order-free checks of every record.
    fn check(&self) -> Vec<Checked> {
        self.entries
            .iter()
            .map(|entry| {
                let bytes = &self.bytes[entry.bytes.clone()];
                let leaf = leaf_hash(bytes);
                let leaf_matches = entry
                    .stored_leaf
                    .as_ref()
                    .is_none_or(|stored| self.stored_leaves[stored.clone()] == leaf);
                let fields = scan_canonical(bytes).map(|f| {
                    let offset = |text: &str| {
                        let start = text.as_ptr() as usize - bytes.as_ptr() as usize;
                        start..start + text.len()
                    };
                    Scanned {
                        seq: f.seq,
                        kind: match f.kind {
                            Some("intent") => KindTag::Intent,
                            Some("outcome") => KindTag::Outcome,
                            Some("key_rotation") => KindTag::KeyRotation,
                            _ => KindTag::Other,
                        },
                        call_id: f.call_id.map(offset),
                    }
                });
                Checked {
                    leaf,
                    leaf_matches,
                    fields,
                    columns_differ: entry
                        .columns
                        .as_ref()
                        .map(|stored| columns_differ(stored, bytes))
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}

/// What the order-free checks found about one record.
struct Checked {
    leaf: Hash,
    /// The stored leaf hash (if any) is the record's.
    leaf_matches: bool,
    /// Canonical, with these fields; `None` leaves the record to the full
    /// parse.
    fields: Option<Scanned>,
    /// The stored columns that are not what the record says.
    columns_differ: Vec<&'static str>,
}

/// The names of the `stored` columns that differ from the record's own
/// (none if the bytes hold no record: that is reported on its own).
fn columns_differ(stored: &Columns, bytes: &[u8]) -> Vec<&'static str> {
    let Some(signed) = columns_of(bytes) else {
        return Vec::new();
    };
    [
        ("ts", stored.ts == signed.ts),
        ("kind", stored.kind == signed.kind),
        ("call_id", stored.call_id == signed.call_id),
        (
            "principal_oid",
            stored.principal_oid == signed.principal_oid,
        ),
        ("tool", stored.tool == signed.tool),
        ("decision", stored.decision == signed.decision),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(name, _)| name)
    .collect()
}

struct Scanned {
    seq: u64,
    kind: KindTag,
    /// Where `call_id`'s text lies in the record's bytes.
    call_id: Option<Range<usize>>,
}

/// The kinds verification follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KindTag {
    Intent,
    Outcome,
    KeyRotation,
    Other,
}

/// A thread that checks batches handed to it, one at a time, in order.
struct Worker {
    jobs: Option<mpsc::SyncSender<Batch>>,
    done: mpsc::Receiver<(Batch, Vec<Checked>)>,
    thread: Option<thread::JoinHandle<()>>,
    /// Batches handed over and not yet taken back.
    busy: usize,
}

impl Worker {
    fn start() -> Option<Self> {
        let (jobs, inbox) = mpsc::sync_channel::<Batch>(1);
        let (outbox, done) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name("audit-verify".into())
            .spawn(move || {
                for batch in inbox {
                    let checked = batch.check();
                    if outbox.send((batch, checked)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            busy: 0,
        })
    }

    fn send(&mut self, batch: Batch) {
        self.jobs
            .as_ref()
            .expect("the worker runs until dropped")
            .send(batch)
            .unwrap_or_else(|_| self.failed());
        self.busy += 1;
    }

    /// The oldest batch handed over, checked.
    fn take(&mut self) -> Option<(Batch, Vec<Checked>)> {
        if self.busy == 0 {
            return None;
        }
        self.busy -= 1;
        Some(self.done.recv().unwrap_or_else(|_| self.failed()))
    }

    /// The worker stopped without answering: it panicked; so does the caller.
    fn failed(&mut self) -> ! {
        self.jobs = None;
        match self.thread.take().map(thread::JoinHandle::join) {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            _ => panic!("the audit verification thread stopped"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
            verified_roots: BTreeMap::new(),
            trusted: Trusted::none(),
            open: HashMap::new(),
            batch: Batch::default(),
            batch_records: BATCH_RECORDS,
            worker: None,
            parallel: thread::available_parallelism().is_ok_and(|n| n.get() > 1),
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

    /// Adds checkpoints the auditor trusts from outside the log (see
    /// [`super::trusted`]); call before the first record.
    pub fn trust(&mut self, checkpoints: Vec<CheckpointInput>) {
        debug_assert_eq!(self.frontier.size(), 0, "trust before the records");
        let log_size = self.pending.keys().next_back().copied().or(
            // Only the empty tree's checkpoints, already compared.
            (self.verified_size == 0 && self.checkpoints > 0).then_some(0),
        );
        self.trusted = Trusted::new(checkpoints, &self.origin, log_size, &mut self.problems);
        let key = self.key_for_size(0).clone();
        self.trusted
            .reach(0, &self.frontier.root(), &key, &mut self.problems);
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
        if self.trusted.wants(size) {
            let key = self.key_for_size(size).clone();
            self.trusted
                .reach(size, &self.frontier.root(), &key, &mut self.problems);
        }
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
                self.verified_roots.insert(size, root);
            }
        }
    }

    /// Feeds the next record. `row_seq` is the sequence number the store
    /// files it under, `stored_leaf` the leaf hash and `columns` the
    /// indexed columns stored beside it (`None` for a bundle, where only
    /// the record says).
    ///
    /// The record is checked with its batch; [`Verifier::finish`] checks
    /// what is left.
    pub fn record(
        &mut self,
        row_seq: Option<u64>,
        stored_leaf: Option<&[u8]>,
        columns: Option<&Columns>,
        bytes: &[u8],
    ) {
        self.batch.push(row_seq, stored_leaf, columns, bytes);
        if self.batch.is_full(self.batch_records) {
            self.dispatch();
        }
    }

    /// Hands the full batch to the worker (applying the one it finished
    /// meanwhile), or checks it here when there is no worker.
    fn dispatch(&mut self) {
        if self.worker.is_none() && self.parallel {
            self.worker = Worker::start();
        }
        let Some(worker) = self.worker.as_mut() else {
            let batch = std::mem::take(&mut self.batch);
            let checked = batch.check();
            self.apply(&batch, &checked);
            self.batch = batch;
            self.batch.clear();
            return;
        };
        // One batch queued behind the one being checked keeps the worker
        // busy while this thread applies and reads.
        worker.send(std::mem::take(&mut self.batch));
        if worker.busy > 1
            && let Some((mut batch, checked)) = worker.take()
        {
            self.apply(&batch, &checked);
            batch.clear();
            self.batch = batch;
        }
    }

    /// Checks and applies every record fed so far.
    fn drain(&mut self) {
        if let Some(worker) = self.worker.as_mut()
            && !self.batch.entries.is_empty()
        {
            worker.send(std::mem::take(&mut self.batch));
        }
        while let Some((batch, checked)) = self.worker.as_mut().and_then(Worker::take) {
            self.apply(&batch, &checked);
        }
        if !self.batch.entries.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let checked = batch.check();
            self.apply(&batch, &checked);
            self.batch = batch;
            self.batch.clear();
        }
    }

    /// Applies checked records in order.
    fn apply(&mut self, batch: &Batch, checked: &[Checked]) {
        for (entry, checked) in batch.entries.iter().zip(checked) {
            let bytes = &batch.bytes[entry.bytes.clone()];
            self.apply_one(entry.row_seq, bytes, checked);
        }
    }

    fn apply_one(&mut self, row_seq: Option<u64>, bytes: &[u8], checked: &Checked) {
        let Some(fields) = &checked.fields else {
            return self.apply_parsed(row_seq, bytes, checked);
        };
        let seq = row_seq.unwrap_or(fields.seq);
        self.sequence(seq);
        if fields.seq != seq {
            self.misfiled(seq, Some(fields.seq));
        } else {
            let call_id = fields.call_id.clone().map(|range| {
                std::str::from_utf8(&bytes[range]).expect("checked as UTF-8 with the record")
            });
            match (fields.kind, call_id) {
                (KindTag::Intent, Some(id)) => {
                    self.open.insert(id.to_owned(), seq);
                }
                (KindTag::Outcome, Some(id)) => {
                    self.open.remove(id);
                }
                (KindTag::KeyRotation, _) => {
                    let value: Value =
                        serde_json::from_slice(bytes).expect("checked as canonical JSON");
                    self.rotation(seq, &value);
                }
                _ => {}
            }
        }
        self.leaf(seq, checked);
    }

    /// A record the scan left undecided: parsed in full.
    fn apply_parsed(&mut self, row_seq: Option<u64>, bytes: &[u8], checked: &Checked) {
        let position = self.frontier.size();
        let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
        let embedded = parsed
            .as_ref()
            .and_then(|v| v.get("seq"))
            .and_then(Value::as_u64);
        let seq = row_seq.or(embedded).unwrap_or(position);
        self.sequence(seq);
        match &parsed {
            None => self.problem(Verdict::Invalid, Some((seq, seq)), None, "not JSON"),
            Some(_) if !is_canonical(bytes) => self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                "not in RFC 8785 canonical form",
            ),
            Some(_) if embedded != Some(seq) => self.misfiled(seq, embedded),
            Some(value) => self.facts(seq, value),
        }
        self.leaf(seq, checked);
    }

    /// Checks `seq` against the one expected next.
    fn sequence(&mut self, seq: u64) {
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
    }

    fn misfiled(&mut self, seq: u64, embedded: Option<u64>) {
        self.problem(
            Verdict::Invalid,
            Some((seq, seq)),
            None,
            format!(
                "the record says seq {} but is filed as {seq}",
                embedded.map_or_else(|| "nothing".to_owned(), |e| e.to_string())
            ),
        );
    }

    /// Compares the stored leaf hash, then adds the leaf to the tree and
    /// checks the checkpoints of the new size.
    fn leaf(&mut self, seq: u64, checked: &Checked) {
        if !checked.leaf_matches {
            // A naive edit pinpointed; a careful one is still caught by the roots.
            self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                "the record's bytes do not match the leaf hash stored with them (edited)",
            );
        }
        if !checked.columns_differ.is_empty() {
            // The signed bytes are intact, but what exports filter and
            // look records up by was changed.
            self.problem(
                Verdict::Invalid,
                Some((seq, seq)),
                None,
                format!(
                    "the stored column(s) {} do not match the signed record (edited)",
                    checked.columns_differ.join(", ")
                ),
            );
        }
        self.trusted.leaf(self.frontier.size(), &checked.leaf);
        self.frontier.push(checked.leaf);
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
        // After the problems of the records fed before it.
        self.drain();
        self.problem(Verdict::Invalid, None, None, reason);
    }

    pub fn finish(mut self) -> Report {
        self.drain();
        self.worker = None;
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
        let trusted_given = self.trusted.given();
        let trusted = std::mem::replace(&mut self.trusted, Trusted::none()).finish(
            records,
            &self.verified_roots,
            &mut self.problems,
        );
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
            trusted_given,
            trusted,
            subset: None,
            proven: None,
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
        if let (Some(subset), Some(proven)) = (&self.subset, self.proven) {
            out.push_str(&format!(
                "subset: {subset}; {proven} of {} records proven by inclusion proofs\n",
                self.records
            ));
        }
        out.push_str(&trusted::text(self.trusted_given, &self.trusted));
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::merkle::root_of;
    use crate::audit::note::Signer;
    use crate::audit::record::{Kind, Record};

    const ORIGIN: &str = "test.warden.example/audit";

    /// A stored row: the seq it is filed under, its bytes, its stored leaf.
    type Row = (u64, Vec<u8>, Vec<u8>);

    /// `n` canonical records, a call's intent then its outcome, with text
    /// that needs escapes, non-ASCII text and a fraction.
    fn log(n: u64) -> Vec<Row> {
        (0..n)
            .map(|seq| {
                let kind = if seq % 2 == 0 {
                    Kind::Intent
                } else {
                    Kind::Outcome
                };
                let mut r = Record::new(kind);
                r.seq = seq;
                r.call_id = Some(format!("call-{}", seq / 2));
                r.tool = Some("vm_restart".into());
                r.details = Some(json!({"score": 12.5, "note": "naïve \u{1F511} \"q\"\n\u{1}"}));
                let bytes = r.canonical().unwrap();
                let leaf = leaf_hash(&bytes).to_vec();
                (seq, bytes, leaf)
            })
            .collect()
    }

    /// Signed checkpoints of `rows` at `sizes`.
    fn checkpoints(signer: &Signer, rows: &[Row], sizes: &[u64]) -> Vec<CheckpointInput> {
        let leaves: Vec<Hash> = rows.iter().map(|r| leaf_hash(&r.1)).collect();
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let root = root_of(&leaves[..size as usize]);
                let body = Checkpoint {
                    origin: ORIGIN.into(),
                    size,
                    root,
                };
                CheckpointInput {
                    label: format!("#{}", i + 1),
                    note: signer.sign_note(&body.text()),
                    stored: Some((size, root.to_vec())),
                }
            })
            .collect()
    }

    /// Verifies `rows` in batches of `batch` records, on a worker thread or
    /// not; the report as JSON.
    fn verify(
        signer: &Signer,
        checkpoints: &[CheckpointInput],
        rows: &[Row],
        batch: usize,
        parallel: bool,
    ) -> Value {
        let mut v = Verifier::new(signer.verifier(), checkpoints.to_vec());
        v.batch_records = batch;
        v.parallel = parallel;
        for (seq, bytes, leaf) in rows {
            v.record(Some(*seq), Some(leaf), None, bytes);
        }
        serde_json::to_value(v.finish()).unwrap()
    }

    /// The verdicts of a report, in order.
    fn verdicts(report: &Value) -> Vec<String> {
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["verdict"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn batches_on_a_worker_report_exactly_what_one_record_at_a_time_does() {
        let signer = Signer::generate(ORIGIN).unwrap();
        let good = log(41);
        let sizes = [0, 8, 16, 40];
        let cps = checkpoints(&signer, &good, &sizes);
        type Tamper = fn(&mut Vec<Row>);
        let tampers: [(&str, Tamper, &[&str]); 9] = [
            ("untouched", |_| {}, &["UNVERIFIED-TAIL"]),
            (
                "edited with its leaf",
                |rows| {
                    rows[9].1 = String::from_utf8(rows[9].1.clone())
                        .unwrap()
                        .replace("vm_restart", "vm_deleted")
                        .into_bytes();
                    rows[9].2 = leaf_hash(&rows[9].1).to_vec();
                },
                // The roots at 16 and 40.
                &["INVALID", "INVALID", "UNVERIFIED-TAIL"],
            ),
            (
                "edited, leaf kept",
                |rows| rows[3].1[10] ^= 1,
                &[
                    "INVALID",
                    "INVALID",
                    "INVALID",
                    "INVALID",
                    "INVALID",
                    "UNVERIFIED-TAIL",
                ],
            ),
            (
                "not canonical",
                |rows| {
                    rows[20].1.insert(1, b' ');
                    rows[20].2 = leaf_hash(&rows[20].1).to_vec();
                },
                &["INVALID", "INVALID", "UNVERIFIED-TAIL"],
            ),
            (
                "not JSON",
                |rows| {
                    rows[5].1.truncate(10);
                    rows[5].2 = leaf_hash(&rows[5].1).to_vec();
                },
                &[
                    "INVALID",
                    "INVALID",
                    "INVALID",
                    "INVALID",
                    "UNVERIFIED-TAIL",
                ],
            ),
            (
                "filed under another seq",
                |rows| rows[40].0 = 41,
                &["GAP", "INVALID", "UNVERIFIED-TAIL"],
            ),
            (
                "deleted",
                |rows| {
                    rows.remove(12);
                },
                // 40 records are there: the root at 40 is compared, and wrong.
                &["GAP", "INVALID", "INVALID", "UNVERIFIED-TAIL"],
            ),
            (
                "truncated",
                |rows| rows.truncate(30),
                &["MISSING", "UNVERIFIED-TAIL"],
            ),
            (
                "outcome dropped from the end",
                |rows| rows.truncate(39),
                &["MISSING", "UNVERIFIED-TAIL"],
            ),
        ];
        for (name, tamper, expected) in tampers {
            let mut rows = good.clone();
            tamper(&mut rows);
            let reference = verify(&signer, &cps, &rows, usize::MAX, false);
            assert_eq!(verdicts(&reference), *expected, "{name}: {reference:#}");
            for (batch, parallel) in [(1, false), (3, false), (1, true), (3, true), (16, true)] {
                assert_eq!(
                    verify(&signer, &cps, &rows, batch, parallel),
                    reference,
                    "{name}: batches of {batch}, worker {parallel}"
                );
            }
        }
    }

    #[test]
    fn open_intents_are_the_calls_without_an_outcome() {
        let signer = Signer::generate(ORIGIN).unwrap();
        let mut rows = log(40);
        // Calls 3 and 7 lose their outcomes.
        rows.retain(|r| r.0 != 7 && r.0 != 15);
        let cps = checkpoints(&signer, &rows, &[]);
        let report = verify(&signer, &cps, &rows, 4, true);
        assert_eq!(
            report["open_intents"],
            json!([{"seq": 6, "call_id": "call-3"}, {"seq": 14, "call_id": "call-7"}])
        );
    }
}
