//! Provable subsets: a bundle of the records an export's filters select,
//! each with an RFC 9162 inclusion proof against one signed checkpoint.
//!
//! An auditor asking "every call alice made in March" gets just those
//! records, and can prove each one is in the log exactly as signed, at its
//! place, without the rest of the log. What a subset cannot prove is that
//! nothing was left out: the manifest says the bundle is a subset, of which
//! log and by which filter, and `verify --bundle` reports it as such.
//!
//! Layout (beside the whole-log bundle's files):
//! - `records.jsonl`: the selected records, exact bytes, in log order;
//! - `proofs.jsonl`: line for line, `{"seq": n, "proof": [base64, ...]}`,
//!   the inclusion proof of record `n` (leaf `n`) in the checkpoint's tree;
//! - `checkpoints/00000001.txt`: that checkpoint, the newest in the store;
//! - `manifest.json`: with `"subset": {"of", "tree_size", "root", "filter",
//!   "records", "matched_after_checkpoint"}`. Records that match but came
//!   after the checkpoint cannot be proven yet and are left out (counted).
//!
//! The whole log's leaf hashes are held in memory to make the proofs
//! (about 64 bytes per record of the log).

use std::fs;
use std::io::BufRead;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use warden_tlog::merkle::{Hash, leaf_hash};
use warden_tlog::note::{Checkpoint, Signature, SignedNote, VerifierKey};
use warden_tlog::proof::{Tree, verify_inclusion};

use super::export::{
    AtomicFile, BundleFiles, ExportError, Exported, Filter, Selector, io, named_key,
};
use super::record::{Record, is_canonical};
use super::verify::{CheckpointInput, Problem, Report, Verdict};
use crate::store::{Reader, StoreError};

/// The manifest's format name for bundles (whole or subset).
pub(super) const BUNDLE_FORMAT: &str = "warden-audit-bundle/1";

fn filter_json(filter: &Filter) -> Value {
    json!({
        "from": filter.from.map(|t| t.to_rfc3339()),
        "to": filter.to.map(|t| t.to_rfc3339()),
        "principal": filter.principal,
        "decision": filter.decision,
        "tool": filter.tool,
    })
}

/// Writes a subset bundle of the records `filter` selects into `out`.
pub(super) fn export(reader: &Reader, out: &Path, filter: Filter) -> Result<Exported, ExportError> {
    let checkpoint = reader.last_checkpoint()?.ok_or_else(|| {
        ExportError::Invalid(
            "the log has no signed checkpoint yet, and a subset bundle proves its records \
             against one: let Warden checkpoint (every audit.checkpoint_interval, or on SIGUSR1)"
                .into(),
        )
    })?;
    let tree_size = checkpoint.size;
    let described = filter_json(&filter);
    let mut selector = Selector::new(filter);
    let mut leaves: Vec<Hash> = Vec::new();
    let mut selected: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut after = 0u64;
    let mut key = None;
    reader.for_each_record(0, |row| {
        let index = leaves.len() as u64;
        if row.seq as u64 != index {
            return Err(StoreError::Read(format!(
                "the store's sequence numbers skip from {} to {} (run `warden audit verify`)",
                index as i64 - 1,
                row.seq
            )));
        }
        let value: Value = serde_json::from_slice(&row.bytes)
            .map_err(|e| StoreError::Read(format!("record seq {} is not JSON: {e}", row.seq)))?;
        if let Some(k) = named_key(&value) {
            key = Some(k);
        }
        let record: Record = serde_json::from_value(value).map_err(|e| {
            StoreError::Read(format!(
                "record seq {} is not a Warden record: {e}",
                row.seq
            ))
        })?;
        if selector.keep(&record) {
            if index < tree_size {
                selected.push((index, row.bytes.clone()));
            } else {
                after += 1;
            }
        }
        leaves.push(leaf_hash(&row.bytes));
        Ok(())
    })?;
    if (leaves.len() as u64) < tree_size {
        return Err(ExportError::Invalid(format!(
            "the newest checkpoint covers {tree_size} records and the store holds {}: \
             the log is damaged (run `warden audit verify`)",
            leaves.len()
        )));
    }
    let tree = Tree::new(leaves);
    let root = tree
        .root(tree_size)
        .map_err(|e| ExportError::Invalid(e.to_string()))?;
    if root[..] != checkpoint.root[..] {
        return Err(ExportError::Invalid(format!(
            "the records do not hash to the newest checkpoint's root at size {tree_size}: \
             the log is damaged (run `warden audit verify`)"
        )));
    }

    let mut bundle = BundleFiles::new(out);
    let mut records = AtomicFile::create(out.join("records.jsonl"))?;
    let mut proofs = AtomicFile::create(out.join("proofs.jsonl"))?;
    for (index, bytes) in &selected {
        let proof = tree
            .inclusion_proof(*index, tree_size)
            .map_err(|e| ExportError::Invalid(e.to_string()))?;
        records.write(bytes)?;
        records.write(b"\n")?;
        let line = json!({
            "seq": index,
            "proof": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        });
        proofs.write(line.to_string().as_bytes())?;
        proofs.write(b"\n")?;
    }
    bundle.add(records)?;
    bundle.add(proofs)?;
    bundle.write("checkpoints/00000001.txt", checkpoint.note.as_bytes())?;
    let key = bundle.public_key(key)?;
    let fields = json!({
        "origin": key.name(),
        "records": selected.len(),
        "checkpoints": 1,
        "subset": {
            "of": key.name(),
            "tree_size": tree_size,
            "root": B64.encode(root),
            "filter": described,
            "records": selected.len(),
            "matched_after_checkpoint": after,
        },
    });
    let files = bundle.finish(fields.as_object().cloned().expect("an object"))?;
    Ok(Exported {
        files,
        records: selected.len() as u64,
        left_out: after,
    })
}

/// One problem of a subset bundle.
fn problem(verdict: Verdict, seq: Option<u64>, reason: impl Into<String>) -> Problem {
    Problem {
        verdict,
        seq_from: seq,
        seq_to: seq,
        checkpoint: None,
        reason: reason.into(),
    }
}

fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, ExportError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        lines.push(line.map_err(io(path))?);
    }
    Ok(lines)
}

/// Verifies a subset bundle: its one checkpoint against the trusted `key`,
/// and every record's inclusion proof against that checkpoint.
/// `file_problems` are what the manifest check found.
pub(super) fn verify(
    dir: &Path,
    key: VerifierKey,
    manifest: &Value,
    file_problems: Vec<String>,
    trusted: Vec<CheckpointInput>,
) -> Result<Report, ExportError> {
    let subset = &manifest["subset"];
    let origin = key.name().to_owned();
    let mut problems: Vec<Problem> = file_problems
        .into_iter()
        .map(|p| problem(Verdict::Invalid, None, p))
        .collect();
    let mut warnings = Vec::new();
    if subset["of"].as_str() != Some(origin.as_str()) {
        problems.push(problem(
            Verdict::Invalid,
            None,
            format!(
                "the manifest says this is a subset of {}, not of {origin:?}",
                subset["of"]
            ),
        ));
    }
    let note_path = dir.join("checkpoints").join("00000001.txt");
    let note_text = fs::read_to_string(&note_path).map_err(io(&note_path))?;
    let checkpoint = SignedNote::parse(&note_text).and_then(|note| {
        let body = Checkpoint::parse(&note.text)?;
        Ok((note, body))
    });
    let (size, root) = match checkpoint {
        Err(e) => {
            problems.push(problem(
                Verdict::Invalid,
                None,
                format!("the checkpoint: {e}"),
            ));
            (0, None)
        }
        Ok((note, body)) => {
            let mut good = true;
            if body.origin != origin {
                good = false;
                problems.push(problem(
                    Verdict::Invalid,
                    None,
                    format!(
                        "the checkpoint's origin {:?} is not {origin:?}",
                        body.origin
                    ),
                ));
            }
            if note.signed_by(&key) != Signature::Valid {
                good = false;
                problems.push(problem(
                    Verdict::Invalid,
                    None,
                    format!(
                        "the checkpoint is not signed by the trusted key {}+{}",
                        key.name(),
                        key.id_hex()
                    ),
                ));
            }
            if subset["tree_size"].as_u64() != Some(body.size) {
                problems.push(problem(
                    Verdict::Invalid,
                    None,
                    format!(
                        "the manifest's tree size {} is not the checkpoint's {}",
                        subset["tree_size"], body.size
                    ),
                ));
            }
            (body.size, good.then_some(body.root))
        }
    };
    let records = read_lines(&dir.join("records.jsonl"))?;
    let proofs = read_lines(&dir.join("proofs.jsonl"))?;
    if records.len() != proofs.len() {
        problems.push(problem(
            Verdict::Invalid,
            None,
            format!(
                "records.jsonl has {} lines and proofs.jsonl {}",
                records.len(),
                proofs.len()
            ),
        ));
    }
    if subset["records"].as_u64() != Some(records.len() as u64) {
        problems.push(problem(
            Verdict::Invalid,
            None,
            format!(
                "the manifest lists {} records and the bundle holds {}",
                subset["records"],
                records.len()
            ),
        ));
    }
    let mut proven = 0u64;
    let mut previous: Option<u64> = None;
    for (bytes, proof_line) in records.iter().zip(&proofs) {
        let line: Value = serde_json::from_slice(proof_line).unwrap_or(Value::Null);
        let Some(seq) = line["seq"].as_u64() else {
            problems.push(problem(
                Verdict::Invalid,
                None,
                "a proofs.jsonl line without a seq",
            ));
            continue;
        };
        if previous.is_some_and(|p| seq <= p) {
            problems.push(problem(
                Verdict::Invalid,
                Some(seq),
                "out of order or repeated in the subset",
            ));
        }
        previous = Some(seq);
        let embedded = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        if !is_canonical(bytes) || embedded != Some(seq) {
            problems.push(problem(
                Verdict::Invalid,
                Some(seq),
                "not a canonical record with this sequence number (edited)",
            ));
            continue;
        }
        let proof: Option<Vec<Hash>> = line["proof"].as_array().and_then(|hashes| {
            hashes
                .iter()
                .map(|h| {
                    B64.decode(h.as_str()?)
                        .ok()
                        .and_then(|b| Hash::try_from(b).ok())
                })
                .collect()
        });
        let Some(proof) = proof else {
            problems.push(problem(
                Verdict::Invalid,
                Some(seq),
                "the inclusion proof is not a list of base64 SHA-256 hashes",
            ));
            continue;
        };
        let Some(root) = &root else { continue };
        match verify_inclusion(&leaf_hash(bytes), seq, size, &proof, root) {
            Ok(()) => proven += 1,
            Err(e) => problems.push(problem(
                Verdict::Invalid,
                Some(seq),
                format!("not included in the checkpoint's tree of size {size}: {e}"),
            )),
        }
    }
    let bundled_key = fs::read_to_string(dir.join("public-key.txt")).unwrap_or_default();
    if bundled_key.trim() != key.encode() {
        warnings.push("the bundle's public-key.txt is not the trusted key".to_string());
    }
    let matched_after = subset["matched_after_checkpoint"].as_u64().unwrap_or(0);
    if matched_after > 0 {
        warnings.push(format!(
            "{matched_after} matching records came after the checkpoint and are not in the bundle"
        ));
    }
    let trusted_given = !trusted.is_empty();
    if trusted_given {
        warnings.push(
            "trusted checkpoints are compared with a store or a whole-log bundle; a subset \
             bundle proves its records against its own checkpoint only"
                .to_string(),
        );
    }
    Ok(Report {
        ok: problems.is_empty(),
        origin,
        records: records.len() as u64,
        checkpoints: 1,
        verified_size: if root.is_some() { size } else { 0 },
        problems,
        open_intents: Vec::new(),
        warnings,
        trusted_given,
        trusted: Vec::new(),
        subset: Some(format!(
            "a subset of {} (tree size {size}) selected by {}",
            subset["of"].as_str().unwrap_or("?"),
            subset["filter"]
        )),
        proven: Some(proven),
    })
}
