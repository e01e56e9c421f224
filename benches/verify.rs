//! Offline verification of the audit log: `verify_store` over a SQLite
//! store and `verify_bundle` over its export bundle.
//!
//! `cargo bench --bench verify` writes a log of 4,096 intents like real ones
//! (~700 bytes of canonical JSON each) with a signed checkpoint every 1,024
//! records, exports it as a bundle, and measures each verification of the
//! whole log (criterion reports the mean and records/s). Under
//! `cargo bench` each case is also timed one verification at a time and its
//! p50 and p99 printed.

mod support;
use support::percentiles;
#[path = "support/intent.rs"]
mod sample;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warden::audit::export::{Format, export, verify_bundle, verify_store};
use warden::audit::note::VerifierKey;
use warden::audit::record::Record;
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen, redact::RedactionConfig};
use warden::metrics::Metrics;
use warden::store::Location;

const RECORDS: u64 = 4096;
const CHECKPOINT_EVERY: u64 = 1024;

/// An intent of writer `w`, call `i`.
fn intent(audit: &Audit, w: u64, i: u64) -> Record {
    Record {
        call_id: Some(format!("call-{w}-{i}")),
        ..sample::intent(audit, w)
    }
}

/// Writes the log into `dir` (`warden.db`) and its bundle (`bundle/`);
/// returns the trusted key.
fn write_log(dir: &Path) -> VerifierKey {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let files = KeyFiles::in_dir(dir);
        keygen("bench.warden.example/audit", &files, true).unwrap();
        let config = AuditConfig {
            signing_key: files.signing_key,
            previous_signing_key: None,
            hmac_key: files.hmac_key,
            checkpoint_interval: Duration::from_secs(3600),
            heartbeat_interval: Duration::from_secs(3600),
            redaction: RedactionConfig::default(),
            auth_refusal_interval: std::time::Duration::from_secs(60),
            witnesses: Vec::new(),
        };
        let db = Location::Sqlite(dir.join("warden.db"));
        let audit = Audit::open(&db, config, Metrics::new()).await.unwrap();
        // Concurrent appends share commits; a checkpoint after each round.
        let writers = 64;
        let mut appended = 0;
        while appended < RECORDS {
            let round = CHECKPOINT_EVERY.min(RECORDS - appended);
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let audit = audit.clone();
                    tokio::spawn(async move {
                        for i in (w..round).step_by(writers as usize) {
                            audit.append(intent(&audit, w, appended + i)).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            appended += round;
            audit.checkpoint().await.unwrap();
        }
        let key = audit.public_key();
        audit.close().await;
        assert_eq!(
            Arc::strong_count(&audit),
            1,
            "the audit log is still shared"
        );
        audit.join_writer();
        export(&db, &dir.join("bundle"), Format::Bundle, Default::default()).unwrap();
        key
    })
}

fn verification(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let key = write_log(dir.path());
    let db = dir.path().join("warden.db");
    let bundle = dir.path().join("bundle");
    // The log opens with its own records (log_start, policy_load): count them.
    let records = verify_store(&db, key.clone(), Vec::new()).unwrap().records;
    let check = |report: warden::audit::verify::Report| {
        assert!(report.ok, "the log does not verify: {:?}", report.problems);
        assert_eq!(report.records, records);
    };
    let store = || check(verify_store(&db, key.clone(), Vec::new()).unwrap());
    let bundled = || check(verify_bundle(&bundle, key.clone(), Vec::new()).unwrap());
    let cases: [(&str, &dyn Fn()); 2] = [("store", &store), ("bundle", &bundled)];

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(records));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    for (name, run) in cases {
        run();
        group.bench_function(name, |b| b.iter(run));
        if std::env::args().any(|a| a == "--bench") {
            let (p50, p99) = percentiles(run);
            println!(
                "verify {name} ({records} records): p50 {:.2} ms, p99 {:.2} ms \
                 ({:.0} records/s at p50)",
                p50 * 1e3,
                p99 * 1e3,
                records as f64 / p50
            );
        }
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
