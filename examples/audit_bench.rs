//! Benchmark of Warden's audit log on a real SQLite file.
//!
//! ```text
//! cargo run --release --example audit_bench -- --seconds 5 [--dir DIR] [--writers 1,16,64]
//! cargo run --release --example audit_bench -- --postgres postgres://postgres@127.0.0.1:5432/test [--replicas 3]
//! ```
//!
//! With `--postgres`, the store is a fresh schema in that database (dropped
//! at the end) and `--replicas` Audit instances, each with its own store
//! writer and connection, append to the one shared log (writer `w` uses
//! replica `w % replicas`), as Warden replicas do.
//!
//! It makes fresh keys and a fresh store in a temporary folder (under `--dir`
//! when given, to choose the filesystem; removed at the end), then measures:
//!
//! 1. Appends: for each writer count, that many tokio tasks each loop
//!    `audit.append(intent).await` for `--seconds` (every append returns only
//!    once its record is fsync'd by the store's group commit). Reported:
//!    records/s, per-append latency p50/p99 (µs) and mean records per commit
//!    (records / commits, from `warden_audit_commit_batch_records_count`).
//!    A checkpoint is signed after each round; all rounds share one log.
//! 2. Verify: after `close` and `join_writer`, the store's rows read and
//!    dropped (the floor of what verifying it costs), then `verify_store`
//!    over the whole file against the public key (the program fails if it
//!    does not verify).
//! 3. Export: `export` in each format (jsonl, csv, ocsf, bundle), each into a
//!    fresh folder, and `verify_bundle` over the bundle.
//!
//! Records are intents like real ones: a principal, a session, a tool, and
//! redacted arguments (~700 bytes of canonical JSON). Results are printed as
//! Markdown tables followed by one JSON line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use uuid::Uuid;
use warden::audit::export::{Format, export, verify_bundle, verify_store};
use warden::audit::record::{Kind, Record};
use warden::audit::verify::Report;
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen, redact::RedactionConfig};
use warden::metrics::Metrics;
use warden::store::postgres::ScratchSchema;
use warden::store::{Location, Reader};

#[path = "../benches/support/intent.rs"]
mod sample;

#[derive(Parser)]
#[command(about = "Benchmark of the audit log: appends, verify, export")]
struct Cli {
    /// Wall time of each append round, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Folder to make the temporary store in (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Concurrent writers of each append round.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    writers: Vec<usize>,
    /// A PostgreSQL database (whose user may create schemas) to use instead
    /// of a SQLite file.
    #[arg(long)]
    postgres: Option<String>,
    /// Replicas appending to the PostgreSQL store.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
}

/// The `_count` and `_sum` of the commit batch histogram.
fn commits(metrics: &Metrics) -> (u64, f64) {
    let text = metrics.render();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("warden_audit_commit_batch_records_count") as u64,
        value("warden_audit_commit_batch_records_sum"),
    )
}

/// One writer's intent template; `next` stamps a fresh call from it.
fn template(audit: &Audit, writer: usize) -> Record {
    sample::intent(audit, writer as u64)
}

fn next(template: &Record) -> Record {
    let fresh = Record::new(Kind::Intent);
    Record {
        event_id: fresh.event_id,
        ts: fresh.ts,
        // Time-ordered, as the gateway makes them (`Call::new_id`).
        call_id: Some(Uuid::now_v7().to_string()),
        ..template.clone()
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

/// One append round: `writers` tasks appending until `wall` has passed.
async fn append_round(
    audits: &[Arc<Audit>],
    metrics: &Metrics,
    writers: usize,
    wall: Duration,
) -> anyhow::Result<Value> {
    let (commits_before, sum_before) = commits(metrics);
    let start = Instant::now();
    let deadline = start + wall;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let audit = audits[w % audits.len()].clone();
            let intent = template(&audit, w);
            tokio::spawn(async move {
                let mut latency = new_histogram();
                while Instant::now() < deadline {
                    let record = next(&intent);
                    let t = Instant::now();
                    audit.append(record).await?;
                    latency.saturating_record(t.elapsed().as_micros() as u64);
                }
                anyhow::Ok(latency)
            })
        })
        .collect();
    let mut latency = new_histogram();
    for task in tasks {
        latency.add(task.await??)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let (commits_after, sum_after) = commits(metrics);
    let records = latency.len();
    let commits = commits_after - commits_before;
    ensure!(
        (sum_after - sum_before) as u64 == records,
        "the commit histogram counted {} records, the writers {records}",
        sum_after - sum_before
    );
    audits[0].checkpoint().await?;
    Ok(json!({
        "writers": writers,
        "records": records,
        "seconds": secs,
        "records_per_s": records as f64 / secs,
        "p50_us": latency.value_at_quantile(0.50),
        "p99_us": latency.value_at_quantile(0.99),
        "commits": commits,
        "records_per_commit": records as f64 / commits.max(1) as f64,
    }))
}

/// Times `f`, which returns how many records it went through.
fn timed(name: &str, f: impl FnOnce() -> anyhow::Result<u64>) -> anyhow::Result<Value> {
    let start = Instant::now();
    let records = f()?;
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "step": name,
        "records": records,
        "seconds": secs,
        "records_per_s": records as f64 / secs,
    }))
}

/// A verification's record count, or an error if it found problems.
fn verified(report: Report) -> anyhow::Result<u64> {
    ensure!(report.ok, "verification failed: {:?}", report.problems);
    Ok(report.records)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let parent = cli.dir.unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| parent.display().to_string())?;
    let work = tempfile::Builder::new()
        .prefix("audit-bench-")
        .tempdir_in(&parent)?;
    let files = KeyFiles::in_dir(work.path());
    keygen("bench.warden.example/audit", &files, true)?;
    let config = AuditConfig {
        signing_key: files.signing_key,
        previous_signing_key: None,
        hmac_key: files.hmac_key,
        checkpoint_interval: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(60),
        redaction: RedactionConfig::default(),
        auth_refusal_interval: std::time::Duration::from_secs(60),
        witnesses: Vec::new(),
    };
    let schema = match &cli.postgres {
        Some(admin) => Some(ScratchSchema::create(admin).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let db = match &schema {
        Some(schema) => Location::Postgres(schema.url()),
        None => Location::Sqlite(work.path().join("warden.db")),
    };
    ensure!(
        cli.replicas >= 1 && (cli.replicas == 1 || schema.is_some()),
        "--replicas needs --postgres (a SQLite file has one writer)"
    );
    // One registry for all replicas: the commit histogram counts them all.
    let metrics = Metrics::new();
    let mut audits = Vec::new();
    for _ in 0..cli.replicas {
        audits.push(Audit::open(&db, config.clone(), metrics.clone()).await?);
    }
    let record_bytes = next(&template(&audits[0], 0)).canonical()?.len();

    let mut appends = Vec::new();
    for &writers in &cli.writers {
        let wall = Duration::from_secs(cli.seconds);
        appends.push(append_round(&audits, &metrics, writers, wall).await?);
    }

    let key = audits[0].public_key();
    for audit in audits {
        audit.close().await;
        ensure!(
            Arc::strong_count(&audit) == 1,
            "the audit log is still shared"
        );
        audit.join_writer();
    }
    let db_bytes = db
        .sqlite_path()
        .and_then(|path| std::fs::metadata(path).ok())
        .map_or(0, |m| m.len());

    // What verify_store cannot go below: reading the rows it checks.
    let mut offline = vec![timed("read store (rows only)", || {
        let mut rows = 0;
        Reader::open(&db)?.for_each_record(0, |_| {
            rows += 1;
            Ok(())
        })?;
        Ok(rows)
    })?];
    offline.push(timed("verify store", || {
        verified(verify_store(&db, key.clone(), Vec::new())?)
    })?);
    for (name, format) in [
        ("jsonl", Format::Jsonl),
        ("csv", Format::Csv),
        ("ocsf", Format::Ocsf),
        ("bundle", Format::Bundle),
    ] {
        let out = work.path().join(format!("export-{name}"));
        let step = format!("export {name}");
        offline.push(timed(&step, || {
            Ok(export(&db, &out, format, Default::default())?.records)
        })?);
        if format == Format::Bundle {
            offline.push(timed("verify bundle", || {
                verified(verify_bundle(&out, key.clone(), Vec::new())?)
            })?);
        }
    }

    println!(
        "store: {db} ({} replica(s); record ≈ {record_bytes} B canonical JSON, store file {:.1} MiB)\n",
        cli.replicas,
        db_bytes as f64 / 1048576.0
    );
    println!("| writers | records | records/s | p50 µs | p99 µs | records/commit |");
    println!("|--:|--:|--:|--:|--:|--:|");
    for a in &appends {
        println!(
            "| {} | {} | {:.0} | {} | {} | {:.1} |",
            a["writers"],
            a["records"],
            a["records_per_s"].as_f64().unwrap_or(0.0),
            a["p50_us"],
            a["p99_us"],
            a["records_per_commit"].as_f64().unwrap_or(0.0)
        );
    }
    println!("\n| step | records | seconds | records/s |");
    println!("|---|--:|--:|--:|");
    for o in &offline {
        println!(
            "| {} | {} | {:.3} | {:.0} |",
            o["step"].as_str().unwrap_or(""),
            o["records"],
            o["seconds"].as_f64().unwrap_or(0.0),
            o["records_per_s"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "\n{}",
        json!({
            "dir": parent,
            "seconds": cli.seconds,
            "record_bytes": record_bytes,
            "store_bytes": db_bytes,
            "appends": appends,
            "offline": offline,
        })
    );
    Ok(())
}
