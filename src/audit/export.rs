//! Exports for auditors and SIEMs, and verification of a store or bundle.
//!
//! - `bundle`: the whole log as evidence: `records.jsonl` (each line the
//!   exact canonical bytes), `checkpoints/<n>.txt` (signed notes),
//!   `public-key.txt` and `manifest.json` (SHA-256 of every file). It
//!   verifies with `warden audit verify --bundle`.
//! - `jsonl`: the (filtered) records, one per line.
//! - `csv`: one row per record, for sampling in a spreadsheet.
//! - `ocsf`: OCSF 1.3 API Activity (class 6003) events, one per line.
//!
//! Every file is written beside its final name and renamed into place, so
//! an interrupted export leaves nothing half-written.

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::note::VerifierKey;
use super::record::{Kind, Record};
use super::verify::{CheckpointInput, Report, Verifier};
use crate::store::{APPEND_ONLY_TRIGGERS, Location, Reader, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |error| ExportError::Io {
        path: path.to_owned(),
        error,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Bundle,
    Jsonl,
    Csv,
    Ocsf,
}

/// Which records an export keeps. A call's outcome goes with its intent:
/// filters on the decision or the tool select whole calls.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub principal: Option<String>,
    pub decision: Option<String>,
    pub tool: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.from.is_none()
            && self.to.is_none()
            && self.principal.is_none()
            && self.decision.is_none()
            && self.tool.is_none()
    }
}

/// Parses an RFC 3339 time or a plain date (midnight UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("{text:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
}

pub(super) struct Selector {
    filter: Filter,
    calls: HashSet<String>,
}

impl Selector {
    pub(super) fn new(filter: Filter) -> Self {
        Self {
            filter,
            calls: HashSet::new(),
        }
    }

    pub(super) fn keep(&mut self, r: &Record) -> bool {
        let f = &self.filter;
        if let Ok(ts) = DateTime::parse_from_rfc3339(&r.ts) {
            let ts = ts.with_timezone(&Utc);
            if f.from.is_some_and(|from| ts < from) || f.to.is_some_and(|to| ts >= to) {
                return false;
            }
        }
        if let Some(oid) = &f.principal
            && r.principal.as_ref().is_none_or(|p| &p.oid != oid)
        {
            return false;
        }
        if f.decision.is_none() && f.tool.is_none() {
            return true;
        }
        // Call-level filters: decided on the intent, inherited by the outcome.
        match (r.kind, &r.call_id) {
            (Kind::Intent, Some(id)) => {
                let decision_ok = f
                    .decision
                    .as_ref()
                    .is_none_or(|d| r.decision_effect().as_deref() == Some(d.as_str()));
                let tool_ok = f.tool.as_ref().is_none_or(|t| r.tool.as_ref() == Some(t));
                if decision_ok && tool_ok {
                    self.calls.insert(id.clone());
                    true
                } else {
                    false
                }
            }
            (Kind::Outcome, Some(id)) => self.calls.contains(id),
            _ => false,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub files: Vec<PathBuf>,
    pub records: u64,
    /// Records the filters matched that a subset bundle could not prove
    /// yet (after its checkpoint), and left out.
    pub left_out: u64,
}

/// Writes `path` through a temporary sibling and a rename.
pub(super) struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    out: std::io::BufWriter<fs::File>,
    hash: Sha256,
}

impl AtomicFile {
    pub(super) fn create(path: PathBuf) -> Result<Self, ExportError> {
        let tmp = path.with_extension(format!(
            "{}.partial",
            path.extension().and_then(|e| e.to_str()).unwrap_or("")
        ));
        let file = fs::File::create(&tmp).map_err(io(&tmp))?;
        Ok(Self {
            tmp,
            path,
            out: std::io::BufWriter::new(file),
            hash: Sha256::new(),
        })
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.hash.update(bytes);
        self.out.write_all(bytes).map_err(io(&self.tmp))
    }

    /// Flushes, fsyncs and renames into place; returns the SHA-256.
    pub(super) fn finish(self) -> Result<(PathBuf, String), ExportError> {
        let file = self.out.into_inner().map_err(|e| ExportError::Io {
            path: self.tmp.clone(),
            error: e.into_error(),
        })?;
        file.sync_all().map_err(io(&self.tmp))?;
        fs::rename(&self.tmp, &self.path).map_err(io(&self.path))?;
        Ok((self.path, hex::encode(self.hash.finalize())))
    }
}

/// Exports the store at `db` into `out`.
pub fn export(
    db: impl Into<Location>,
    out: &Path,
    format: Format,
    filter: Filter,
) -> Result<Exported, ExportError> {
    let reader = Reader::open(db)?;
    fs::create_dir_all(out).map_err(io(out))?;
    if format == Format::Bundle {
        if !filter.is_empty() {
            return super::subset::export(&reader, out, filter);
        }
        return bundle(&reader, out);
    }
    let name = match format {
        Format::Jsonl => "audit.jsonl",
        Format::Csv => "audit.csv",
        Format::Ocsf => "audit.ocsf.jsonl",
        Format::Bundle => unreachable!("handled above"),
    };
    let mut file = AtomicFile::create(out.join(name))?;
    if format == Format::Csv {
        file.write(&csv_line(
            CSV_COLUMNS.iter().map(|c| c.to_string()).collect(),
        )?)?;
    }
    let mut selector = Selector::new(filter);
    let mut count = 0u64;
    reader.for_each_record(0, |row| {
        let record: Record = serde_json::from_slice(&row.bytes).map_err(|e| {
            StoreError::Read(format!(
                "record seq {} is not a Warden record: {e}",
                row.seq
            ))
        })?;
        if !selector.keep(&record) {
            return Ok(());
        }
        count += 1;
        let write = |file: &mut AtomicFile, bytes: &[u8]| {
            file.write(bytes)
                .map_err(|e| StoreError::Read(e.to_string()))
        };
        match format {
            Format::Jsonl => {
                write(&mut file, &row.bytes)?;
                write(&mut file, b"\n")?;
            }
            Format::Ocsf => {
                let mut line = serde_json::to_vec(&ocsf(&record)).expect("JSON");
                line.push(b'\n');
                write(&mut file, &line)?;
            }
            Format::Csv => {
                let line =
                    csv_line(csv_row(&record)).map_err(|e| StoreError::Read(e.to_string()))?;
                write(&mut file, &line)?;
            }
            Format::Bundle => unreachable!("handled above"),
        }
        Ok(())
    })?;
    let (path, _) = file.finish()?;
    Ok(Exported {
        files: vec![path],
        records: count,
        left_out: 0,
    })
}

/// One CSV line (RFC 4180 quoting).
fn csv_line(fields: Vec<String>) -> Result<Vec<u8>, ExportError> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(&fields)
        .map_err(|e| ExportError::Invalid(e.to_string()))?;
    w.into_inner()
        .map_err(|e| ExportError::Invalid(e.to_string()))
}

const CSV_COLUMNS: [&str; 18] = [
    "seq",
    "ts",
    "kind",
    "call_id",
    "principal_oid",
    "principal_name",
    "principal_kind",
    "source_ip",
    "session_id",
    "tool",
    "upstream",
    "operations",
    "resources",
    "decision",
    "status",
    "error",
    "duration_us",
    "azure_correlation_id",
];

fn csv_row(r: &Record) -> Vec<String> {
    let principal = r.principal.as_ref();
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    vec![
        r.seq.to_string(),
        r.ts.clone(),
        r.kind.as_str().to_owned(),
        opt(&r.call_id),
        principal.map(|p| p.oid.clone()).unwrap_or_default(),
        principal.map(|p| p.name.clone()).unwrap_or_default(),
        principal.map(|p| p.kind.clone()).unwrap_or_default(),
        opt(&r.source_ip),
        opt(&r.session_id),
        opt(&r.tool),
        opt(&r.upstream),
        r.operations
            .iter()
            .map(|o| o.azure_op.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        r.operations
            .iter()
            .filter_map(|o| o.resource_id.as_deref())
            .collect::<Vec<_>>()
            .join(" "),
        r.decision_effect().unwrap_or_default(),
        r.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        opt(&r.error),
        r.duration_us.map(|d| d.to_string()).unwrap_or_default(),
        opt(&r.azure_correlation_id),
    ]
}

/// OCSF activity id from the ARM operation (`.../read`, `write`, `delete`).
fn activity(r: &Record) -> (u64, &'static str) {
    let op = r
        .operations
        .first()
        .map(|o| o.azure_op.to_ascii_lowercase());
    match op.as_deref() {
        None => (0, "Unknown"),
        Some(op) if op.ends_with("/read") => (2, "Read"),
        Some(op) if op.ends_with("/write") => (3, "Update"),
        Some(op) if op.ends_with("/delete") => (4, "Delete"),
        Some(_) => (99, "Other"),
    }
}

/// One OCSF 1.3 API Activity (6003) event for a record.
pub fn ocsf(r: &Record) -> Value {
    let (activity_id, activity_name) = match r.kind {
        Kind::Intent | Kind::Outcome => activity(r),
        _ => (99, "Other"),
    };
    let (status_id, status) = match (r.kind, r.status) {
        (Kind::Outcome, Some(super::record::Status::Ok)) => (1, "Success"),
        (Kind::Outcome, Some(_)) => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let time = DateTime::parse_from_rfc3339(&r.ts)
        .map(|t| t.timestamp_millis())
        .unwrap_or_default();
    let mut event = json!({
        "class_uid": 6003,
        "class_name": "API Activity",
        "category_uid": 6,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 600300 + activity_id,
        "time": time,
        "severity_id": if status_id == 2 { 3 } else { 1 },
        "status_id": status_id,
        "status": status,
        "metadata": {
            "version": "1.3.0",
            "uid": r.event_id,
            "correlation_uid": r.call_id,
            "sequence": r.seq,
            "log_name": "warden-audit",
            "product": { "name": "Warden", "vendor_name": "Warden", "version": env!("CARGO_PKG_VERSION") },
        },
        "api": {
            "operation": r.tool.clone().unwrap_or_else(|| r.kind.as_str().to_owned()),
            "service": { "name": r.upstream },
            "request": { "uid": r.call_id },
        },
        "unmapped": {
            "kind": r.kind.as_str(),
            "session_id": r.session_id,
            "upstream_tool": r.upstream_tool,
            "arguments": r.arguments,
            "decision": r.decision,
            "risk": r.risk,
            "duration_us": r.duration_us,
            "azure_correlation_id": r.azure_correlation_id,
            "details": r.details,
        },
    });
    if let Some(p) = &r.principal {
        event["actor"] = json!({
            "user": { "uid": p.oid, "name": p.name, "type": p.kind, "org": { "uid": p.tid } },
            "app_uid": p.client_app,
        });
    }
    if let Some(ip) = &r.source_ip {
        event["src_endpoint"] = json!({ "ip": ip });
    }
    if let Some(ua) = &r.user_agent {
        event["http_request"] = json!({ "user_agent": ua });
    }
    if let Some(e) = &r.error {
        event["api"]["response"] = json!({ "error": e });
        event["status_detail"] = json!(e);
    }
    if !r.operations.is_empty() {
        event["resources"] = r
            .operations
            .iter()
            .map(|o| json!({ "uid": o.resource_id, "type": o.azure_op }))
            .collect();
    }
    event
}

/// The public key the log names last (in `log_start` or `key_rotation`).
pub(super) fn named_key(record: &Value) -> Option<String> {
    let details = record.get("details")?;
    match record.get("kind")?.as_str()? {
        "log_start" => details.get("key")?.as_str().map(str::to_owned),
        "key_rotation" => details.get("new_key")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The files of a bundle as they are written, each with its SHA-256 for
/// the manifest (whole-log bundles here, subsets in [`super::subset`]).
pub(super) struct BundleFiles<'a> {
    out: &'a Path,
    files: Vec<PathBuf>,
    hashes: serde_json::Map<String, Value>,
}

impl<'a> BundleFiles<'a> {
    pub(super) fn new(out: &'a Path) -> Self {
        Self {
            out,
            files: Vec::new(),
            hashes: serde_json::Map::new(),
        }
    }

    /// Finishes `file` and lists it with its hash.
    pub(super) fn add(&mut self, file: AtomicFile) -> Result<(), ExportError> {
        let (path, hash) = file.finish()?;
        let name = path
            .strip_prefix(self.out)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        self.hashes.insert(name, Value::String(hash));
        self.files.push(path);
        Ok(())
    }

    /// Writes `relative` with `bytes` and lists it.
    pub(super) fn write(&mut self, relative: &str, bytes: &[u8]) -> Result<(), ExportError> {
        let path = self.out.join(relative);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut f = AtomicFile::create(path)?;
        f.write(bytes)?;
        self.add(f)
    }

    /// `public-key.txt` from the last key the log names (informational: a
    /// verifier trusts the key it is given, not this file).
    pub(super) fn public_key(&mut self, named: Option<String>) -> Result<VerifierKey, ExportError> {
        let key = named
            .and_then(|k| VerifierKey::parse(&k).ok())
            .ok_or_else(|| {
                ExportError::Invalid("the log names no public key (no log_start record)".into())
            })?;
        self.write("public-key.txt", format!("{}\n", key.encode()).as_bytes())?;
        Ok(key)
    }

    /// Writes `manifest.json`: `fields` plus the format, the creation time
    /// and every file's hash; the files written, the manifest last.
    pub(super) fn finish(
        mut self,
        mut fields: serde_json::Map<String, Value>,
    ) -> Result<Vec<PathBuf>, ExportError> {
        fields.insert("format".into(), json!(super::subset::BUNDLE_FORMAT));
        fields.insert("created".into(), json!(super::record::now()));
        fields.insert("files".into(), Value::Object(self.hashes));
        let mut f = AtomicFile::create(self.out.join("manifest.json"))?;
        f.write(&serde_json::to_vec_pretty(&Value::Object(fields)).expect("JSON"))?;
        let (path, _) = f.finish()?;
        self.files.push(path);
        Ok(self.files)
    }
}

fn bundle(reader: &Reader, out: &Path) -> Result<Exported, ExportError> {
    let mut bundle = BundleFiles::new(out);
    let mut records = AtomicFile::create(out.join("records.jsonl"))?;
    let mut count = 0u64;
    let mut key = None;
    reader.for_each_record(0, |row| {
        count += 1;
        if let Some(k) = serde_json::from_slice::<Value>(&row.bytes)
            .ok()
            .as_ref()
            .and_then(named_key)
        {
            key = Some(k);
        }
        records
            .write(&row.bytes)
            .and_then(|_| records.write(b"\n"))
            .map_err(|e| StoreError::Read(e.to_string()))
    })?;
    bundle.add(records)?;
    // There even without checkpoints: verify reads it.
    let dir = out.join("checkpoints");
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let checkpoints = reader.checkpoints()?;
    for (i, c) in checkpoints.iter().enumerate() {
        bundle.write(&format!("checkpoints/{:08}.txt", i + 1), c.note.as_bytes())?;
    }
    let key = bundle.public_key(key)?;
    let fields = json!({
        "origin": key.name(),
        "records": count,
        "checkpoints": checkpoints.len(),
    });
    let files = bundle.finish(fields.as_object().cloned().expect("an object"))?;
    Ok(Exported {
        files,
        records: count,
        left_out: 0,
    })
}

/// Verifies a store (a SQLite file or a PostgreSQL database) against the
/// trusted key and the `trusted` checkpoints.
pub fn verify_store(
    db: impl Into<Location>,
    key: VerifierKey,
    trusted: Vec<CheckpointInput>,
) -> Result<Report, ExportError> {
    let reader = Reader::open(db)?;
    let checkpoints = reader
        .checkpoints()?
        .into_iter()
        .enumerate()
        .map(|(i, c)| CheckpointInput {
            label: format!("#{}", i + 1),
            note: c.note,
            stored: Some((c.size, c.root)),
        })
        .collect();
    let mut verifier = Verifier::new(key, checkpoints);
    verifier.trust(trusted);
    reader.for_each_record_with_columns(0, |row| {
        verifier.record(
            Some(row.seq as u64),
            Some(&row.leaf_hash),
            row.columns.as_ref(),
            &row.bytes,
        );
        Ok(())
    })?;
    let triggers = reader.triggers()?;
    for t in APPEND_ONLY_TRIGGERS {
        if !triggers.iter().any(|name| name == t) {
            verifier.warn(format!(
                "the append-only trigger {t} is missing from the store"
            ));
        }
    }
    Ok(verifier.finish())
}

/// Reads the checkpoints an auditor trusts: the files given, and every
/// `*.checkpoint` file in each witness directory (as a directory witness
/// writes them, see [`super::witness`]). A witness directory without one is
/// an error: it was meant to be trusted and holds nothing to trust.
pub fn trusted_checkpoints(
    files: &[PathBuf],
    witness_dirs: &[PathBuf],
) -> Result<Vec<CheckpointInput>, ExportError> {
    let mut paths: Vec<PathBuf> = files.to_vec();
    for dir in witness_dirs {
        let mut found: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "checkpoint"))
            .collect();
        if found.is_empty() {
            return Err(ExportError::Invalid(format!(
                "witness directory {} holds no *.checkpoint files",
                dir.display()
            )));
        }
        found.sort();
        paths.extend(found);
    }
    paths
        .into_iter()
        .map(|path| {
            let note = fs::read_to_string(&path).map_err(io(&path))?;
            Ok(CheckpointInput {
                label: path.display().to_string(),
                note,
                stored: None,
            })
        })
        .collect()
}

/// Verifies an export bundle against the trusted key and the `trusted`
/// checkpoints: a whole-log bundle record by record, a subset bundle by
/// its inclusion proofs ([`super::subset`]).
pub fn verify_bundle(
    dir: &Path,
    key: VerifierKey,
    trusted: Vec<CheckpointInput>,
) -> Result<Report, ExportError> {
    let manifest_path = dir.join("manifest.json");
    let manifest: Value = fs::read(&manifest_path)
        .map_err(io(&manifest_path))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| {
                ExportError::Invalid(format!("{}: not JSON: {e}", manifest_path.display()))
            })
        })?;
    let listed = manifest
        .get("files")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut file_problems = Vec::new();
    for (name, hash) in &listed {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(bytes) if Some(hex::encode(Sha256::digest(&bytes)).as_str()) == hash.as_str() => {}
            Ok(_) => file_problems.push(format!("{name} does not match the manifest's SHA-256")),
            Err(e) => file_problems.push(format!("{name}: {e}")),
        }
    }
    if manifest.get("format").and_then(Value::as_str) != Some(super::subset::BUNDLE_FORMAT) {
        file_problems.push(format!(
            "manifest.json: the format is {}, not {:?}",
            manifest.get("format").unwrap_or(&Value::Null),
            super::subset::BUNDLE_FORMAT
        ));
    }
    if manifest.get("subset").is_some_and(|s| !s.is_null()) {
        return super::subset::verify(dir, key, &manifest, file_problems, trusted);
    }
    let checkpoint_dir = dir.join("checkpoints");
    let mut names: Vec<PathBuf> = match fs::read_dir(&checkpoint_dir) {
        Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => return Err(io(&checkpoint_dir)(e)),
    };
    names.sort();
    let mut checkpoints = Vec::new();
    for path in names {
        let rel = format!(
            "checkpoints/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if !listed.contains_key(&rel) {
            file_problems.push(format!("{rel} is not in the manifest"));
        }
        let note = fs::read_to_string(&path).map_err(io(&path))?;
        checkpoints.push(CheckpointInput {
            label: rel,
            note,
            stored: None,
        });
    }
    let bundled_key = fs::read_to_string(dir.join("public-key.txt")).unwrap_or_default();
    let trusted_key = key.encode();
    let mut verifier = Verifier::new(key, checkpoints);
    verifier.trust(trusted);
    for p in file_problems {
        verifier.invalid(p);
    }
    if bundled_key.trim() != trusted_key {
        verifier.warn("the bundle's public-key.txt is not the trusted key".to_string());
    }
    let records_path = dir.join("records.jsonl");
    let file = fs::File::open(&records_path).map_err(io(&records_path))?;
    let mut lines = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(io(&records_path))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        verifier.record(None, None, None, &line);
    }
    Ok(verifier.finish())
}
