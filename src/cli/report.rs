//! `warden report`: compliance reports from the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use warden::audit::source::Source;
use warden::policy::{Engine, PolicyConfig};
use warden::report::{Controls, MEASURES, Report, RoleUse, html};
use warden::review::Usage;

use super::output::outln;

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Html,
}

#[derive(clap::Subcommand)]
pub enum ReportCommand {
    /// Per control of a standard: status, evidence with the records behind
    /// it, findings, and the compliance rate (docs/COMPLIANCE.md).
    Compliance {
        /// A standard of the controls file: sox or iso27001 with the
        /// built-in controls.
        #[arg(long)]
        standard: String,
        /// 2026-Q4, 2026-11, 2026, or FROM..TO.
        #[arg(long)]
        period: String,
        /// A Warden store: a SQLite file or a postgres:// URL.
        #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
        db: Option<String>,
        /// An export bundle directory (a whole-log bundle).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The trusted public key (audit.pub): the log is verified with it.
        #[arg(long)]
        key: Option<PathBuf>,
        /// A directory witness whose checkpoints are counted as witnessed
        /// (and trusted by the verification). Repeatable.
        #[arg(long = "witness", value_name = "DIR")]
        witnesses: Vec<PathBuf>,
        /// A controls file replacing the built-in one.
        #[arg(long)]
        controls: Option<PathBuf>,
        /// The policy set, to measure unused permissions per role.
        #[arg(long)]
        policies: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Write the report to this file (whole or not at all) instead of
        /// standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Records the appendix of an HTML report lists at most.
const APPENDIX: usize = 500;

pub fn run(command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Compliance {
        standard,
        period,
        db,
        bundle,
        key,
        witnesses,
        controls,
        policies,
        format,
        out,
    } = command;
    let controls_text = match &controls {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => warden::report::controls::BUILTIN.to_owned(),
    };
    let controls = Controls::parse(&controls_text, MEASURES).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            controls
                .as_deref()
                .map_or("the built-in controls".into(), |p| p.display().to_string())
        )
    })?;
    controls
        .standard_name(&standard)
        .map_err(|e| anyhow::anyhow!("--standard: {e}"))?;
    let (period, label) =
        warden::report::parse_period(&period).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
    let source = super::log_source(db, bundle)?;

    // Witnessed checkpoints, and the verification with the trusted key.
    let witnessed = if witnesses.is_empty() {
        None
    } else {
        Some(
            warden::audit::export::trusted_checkpoints(&[], &witnesses)?
                .into_iter()
                .map(|c| c.note)
                .collect::<Vec<_>>(),
        )
    };
    let verified = match &key {
        Some(key) => {
            let verifier = warden::audit::load_verifier(key)
                .with_context(|| format!("reading {}", key.display()))?;
            let trusted = warden::audit::export::trusted_checkpoints(&[], &witnesses)?;
            let report = match &source {
                Source::Store(location) => {
                    warden::audit::export::verify_store(location.clone(), verifier, trusted)?
                }
                Source::Bundle(dir) => {
                    warden::audit::export::verify_bundle(dir, verifier, trusted)?
                }
            };
            let summary = if report.ok {
                format!(
                    "{} records and {} checkpoints verified",
                    report.records, report.checkpoints
                )
            } else {
                format!(
                    "{} problem{}: {}",
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" },
                    report
                        .problems
                        .iter()
                        .take(3)
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            };
            Some((report.ok, summary))
        }
        None => None,
    };

    let (fold, usage) = warden::report::read(&source, period, policies.is_some())
        .with_context(|| format!("reading {source}"))?;
    let checkpoints = source
        .checkpoints()
        .with_context(|| format!("reading the checkpoints of {source}"))?;
    let evidence = fold.finish(&checkpoints, verified, witnessed.as_deref());

    let roles = match (&policies, usage) {
        (Some(dir), Some(usage)) => roles(dir, usage, &source)?,
        _ => Vec::new(),
    };
    let report = Report::build(
        &controls,
        &standard,
        period,
        label,
        source.to_string(),
        evidence,
        roles,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let bytes = match format {
        Format::Text => report.text().into_bytes(),
        Format::Json => {
            let mut b = serde_json::to_vec_pretty(&report)?;
            b.push(b'\n');
            b
        }
        Format::Html => html::page(&report, &appendix(&source, &report)?).into_bytes(),
    };
    match out {
        Some(path) => write_whole(&path, &bytes),
        None => {
            outln!("{}", String::from_utf8_lossy(&bytes).trim_end())?;
            Ok(())
        }
    }
}

/// Used and unused operations per role, from an access review of the period.
fn roles(dir: &Path, usage: Usage, source: &Source) -> anyhow::Result<Vec<RoleUse>> {
    let config = PolicyConfig {
        dir: dir.to_path_buf(),
        ..PolicyConfig::default()
    };
    let ops = warden::catalog::Catalog::builtin()
        .context("loading the built-in catalog")?
        .operation_classes();
    let engine = Engine::load(&config, &ops)
        .with_context(|| format!("loading the policy set {}", dir.display()))?;
    let permits = warden::policy::narrow::permits(dir)?;
    Ok(warden::report::role_use(
        usage, &engine, &permits, &ops, source,
    ))
}

/// The records the checks point to, read again from the source.
fn appendix(source: &Source, report: &Report) -> anyhow::Result<BTreeMap<u64, html::Brief>> {
    let wanted: BTreeSet<u64> = report
        .controls
        .iter()
        .flat_map(|c| c.checks.iter().flat_map(|k| k.seqs.iter().copied()))
        .take(APPENDIX)
        .collect();
    let mut listed = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(listed);
    }
    source.for_each(|bytes| {
        if let Ok(record) = serde_json::from_slice::<serde_json::Value>(bytes)
            && let Some(seq) = record["seq"].as_u64()
            && wanted.contains(&seq)
        {
            listed.insert(seq, html::brief(&record));
        }
        Ok(())
    })?;
    Ok(listed)
}

/// Writes `bytes` to `path` through a temporary file beside it.
fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
