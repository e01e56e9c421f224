//! Trusted checkpoints: tree heads an auditor holds from outside the log
//! (a witness's copy, an earlier audit's report), against which the log
//! must be an append-only extension.
//!
//! Without them, verification proves only that the log agrees with its own
//! checkpoints: someone who can write to the store can delete the newest
//! records together with the checkpoints that cover them, and what is left
//! still verifies. A trusted checkpoint of size `m` catches that:
//!
//! - while the records stream past, the tree of the first `m` records must
//!   have the trusted root (else `INVALID`: the log was rewritten);
//! - a log with fewer than `m` records is `MISSING` the rest (rolled back
//!   or truncated);
//! - from the largest trusted checkpoint to the log's largest checkpoint,
//!   an RFC 9162 consistency proof is built from the records as they pass
//!   (only the O(log n) subtree hashes it needs are kept) and checked with
//!   [`warden_tlog::proof::verify_consistency`]. The report carries it, so
//!   anyone holding just the two checkpoints can check it again.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use warden_tlog::merkle::Hash;
use warden_tlog::note::{Checkpoint, Signature, SignedNote, VerifierKey};
use warden_tlog::proof::{Collector, consistency_ranges, verify_consistency};

use super::verify::{CheckpointInput, Problem, Verdict};

/// What verification found out about one trusted checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedResult {
    /// Where it came from (its file).
    pub label: String,
    pub size: u64,
    pub status: TrustStatus,
    /// The consistency proof from this checkpoint to the log's largest
    /// checkpoint (for the largest trusted checkpoint, when the log has a
    /// larger one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<ConsistencyProof>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustStatus {
    /// The log's first `size` records have the trusted root.
    Consistent,
    /// They do not: the log was rewritten behind the checkpoint.
    Inconsistent,
    /// The log has fewer than `size` records.
    Missing,
    /// Not a checkpoint of this log signed by its key.
    Unusable,
}

impl std::fmt::Display for TrustStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrustStatus::Consistent => "consistent",
            TrustStatus::Inconsistent => "INCONSISTENT",
            TrustStatus::Missing => "MISSING",
            TrustStatus::Unusable => "UNUSABLE",
        })
    }
}

/// An RFC 9162 consistency proof between two tree heads (base64 hashes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub old_root: String,
    pub new_size: u64,
    pub new_root: String,
    pub hashes: Vec<String>,
}

struct Entry {
    label: String,
    body: Checkpoint,
    note: SignedNote,
}

/// The proof being gathered while the records stream past.
struct Gathering {
    old_size: u64,
    new_size: u64,
    collector: Collector,
}

/// The trusted checkpoints of one verification.
pub(super) struct Trusted {
    given: bool,
    /// Checkpoints still to compare, by size.
    pending: BTreeMap<u64, Vec<Entry>>,
    results: Vec<TrustedResult>,
    /// The roots of the trusted checkpoints found consistent, by size.
    consistent: BTreeMap<u64, Hash>,
    gathering: Option<Gathering>,
}

fn trusted_label(label: &str) -> String {
    format!("trusted {label}")
}

impl Trusted {
    pub(super) fn none() -> Self {
        Self {
            given: false,
            pending: BTreeMap::new(),
            results: Vec::new(),
            consistent: BTreeMap::new(),
            gathering: None,
        }
    }

    /// Reads `inputs` (problems for the ones that are not checkpoints of
    /// `origin`). `log_size` is the size of the log's largest checkpoint,
    /// which the consistency proof leads to.
    pub(super) fn new(
        inputs: Vec<CheckpointInput>,
        origin: &str,
        log_size: Option<u64>,
        problems: &mut Vec<Problem>,
    ) -> Self {
        let mut trusted = Self::none();
        trusted.given = !inputs.is_empty();
        for input in inputs {
            let parsed = SignedNote::parse(&input.note).and_then(|note| {
                let body = Checkpoint::parse(&note.text)?;
                Ok((note, body))
            });
            let unusable = |reason: String, problems: &mut Vec<Problem>| {
                problems.push(Problem {
                    verdict: Verdict::Invalid,
                    seq_from: None,
                    seq_to: None,
                    checkpoint: Some(trusted_label(&input.label)),
                    reason,
                });
            };
            match parsed {
                Err(e) => {
                    unusable(e.to_string(), problems);
                    trusted.results.push(TrustedResult {
                        label: input.label.clone(),
                        size: 0,
                        status: TrustStatus::Unusable,
                        proof: None,
                    });
                }
                Ok((_, body)) if body.origin != origin => {
                    unusable(
                        format!(
                            "origin {:?} is not this log's origin {origin:?}",
                            body.origin
                        ),
                        problems,
                    );
                    trusted.results.push(TrustedResult {
                        label: input.label.clone(),
                        size: body.size,
                        status: TrustStatus::Unusable,
                        proof: None,
                    });
                }
                Ok((note, body)) => {
                    trusted.pending.entry(body.size).or_default().push(Entry {
                        label: input.label,
                        body,
                        note,
                    });
                }
            }
        }
        let largest = trusted.pending.keys().next_back().copied();
        if let (Some(old_size), Some(new_size)) = (largest, log_size)
            && 0 < old_size
            && old_size < new_size
        {
            let ranges = consistency_ranges(old_size, new_size)
                .expect("0 < old size < new size is a valid pair");
            trusted.gathering = Some(Gathering {
                old_size,
                new_size,
                collector: Collector::new(ranges),
            });
        }
        trusted
    }

    pub(super) fn given(&self) -> bool {
        self.given
    }

    /// Whether a trusted checkpoint has this size.
    pub(super) fn wants(&self, size: u64) -> bool {
        self.pending.contains_key(&size)
    }

    /// Feeds leaf `index` of the log.
    pub(super) fn leaf(&mut self, index: u64, leaf: &Hash) {
        if let Some(g) = &mut self.gathering {
            g.collector.push(index, leaf);
        }
    }

    /// Compares the trusted checkpoints of `size` with the log's tree of
    /// that size (`root`), signed by `key` (the key in effect at `size`).
    pub(super) fn reach(
        &mut self,
        size: u64,
        root: &Hash,
        key: &VerifierKey,
        problems: &mut Vec<Problem>,
    ) {
        let Some(entries) = self.pending.remove(&size) else {
            return;
        };
        for entry in entries {
            let label = trusted_label(&entry.label);
            let problem = |verdict, seqs: Option<(u64, u64)>, reason: String| Problem {
                verdict,
                seq_from: seqs.map(|s| s.0),
                seq_to: seqs.map(|s| s.1),
                checkpoint: Some(label.clone()),
                reason,
            };
            let status = if entry.note.signed_by(key) != Signature::Valid {
                problems.push(problem(
                    Verdict::Invalid,
                    None,
                    format!(
                        "not signed by the log's key in effect at size {size}, {}+{}",
                        key.name(),
                        key.id_hex()
                    ),
                ));
                TrustStatus::Unusable
            } else if entry.body.root != *root {
                problems.push(problem(
                    Verdict::Invalid,
                    (size > 0).then(|| (0, size - 1)),
                    format!(
                        "the log's first {size} records do not hash to this trusted \
                         checkpoint's root: the log was rewritten behind it (rolled back \
                         and grown again, or edited)"
                    ),
                ));
                TrustStatus::Inconsistent
            } else {
                self.consistent.insert(size, entry.body.root);
                TrustStatus::Consistent
            };
            self.results.push(TrustedResult {
                label: entry.label,
                size,
                status,
                proof: None,
            });
        }
    }

    /// Reports what the log never reached, and checks the consistency
    /// proof against the log's checkpoint roots that verified (`verified`,
    /// by size). `records` is the number of records in the log.
    pub(super) fn finish(
        mut self,
        records: u64,
        verified: &BTreeMap<u64, Hash>,
        problems: &mut Vec<Problem>,
    ) -> Vec<TrustedResult> {
        for (size, entries) in std::mem::take(&mut self.pending) {
            for entry in entries {
                problems.push(Problem {
                    verdict: Verdict::Missing,
                    seq_from: Some(records),
                    seq_to: Some(size - 1),
                    checkpoint: Some(trusted_label(&entry.label)),
                    reason: format!(
                        "this trusted checkpoint vouches for {size} records and the log \
                         holds {records}: records were removed (rolled back or truncated)"
                    ),
                });
                self.results.push(TrustedResult {
                    label: entry.label,
                    size,
                    status: TrustStatus::Missing,
                    proof: None,
                });
            }
        }
        if let Some(g) = self.gathering.take() {
            let old_root = self.consistent.get(&g.old_size);
            let new_root = verified.get(&g.new_size);
            if let (Some(old_root), Some(new_root), Some(hashes)) =
                (old_root, new_root, g.collector.finish())
            {
                match verify_consistency(g.old_size, g.new_size, old_root, new_root, &hashes) {
                    Ok(()) => {
                        let proof = ConsistencyProof {
                            old_size: g.old_size,
                            old_root: B64.encode(old_root),
                            new_size: g.new_size,
                            new_root: B64.encode(new_root),
                            hashes: hashes.iter().map(|h| B64.encode(h)).collect(),
                        };
                        for result in &mut self.results {
                            if result.size == g.old_size && result.status == TrustStatus::Consistent
                            {
                                result.proof = Some(proof.clone());
                            }
                        }
                    }
                    Err(e) => problems.push(Problem {
                        verdict: Verdict::Invalid,
                        seq_from: None,
                        seq_to: None,
                        checkpoint: None,
                        reason: format!(
                            "the consistency proof from trusted size {} to checkpoint size {} \
                             does not verify: {e}",
                            g.old_size, g.new_size
                        ),
                    }),
                }
            }
        }
        self.results
            .sort_by(|a, b| (a.size, &a.label).cmp(&(b.size, &b.label)));
        self.results
    }
}

/// The report's lines about trusted checkpoints.
pub(super) fn text(given: bool, results: &[TrustedResult]) -> String {
    if !given {
        return "note: no trusted checkpoint was given: this proves the log agrees with its own \
                checkpoints, not that it is the log a witness saw (a rollback to an earlier \
                checkpoint would pass); give --witness DIR or --trusted-checkpoint FILE\n"
            .to_owned();
    }
    let mut out = String::new();
    for r in results {
        out.push_str(&format!(
            "trusted checkpoint {} (size {}): {}",
            r.label, r.size, r.status
        ));
        if let Some(p) = &r.proof {
            out.push_str(&format!(
                ", proven an append-only prefix of checkpoint size {} by a consistency proof of {} hashes",
                p.new_size,
                p.hashes.len()
            ));
        }
        out.push('\n');
    }
    out
}
