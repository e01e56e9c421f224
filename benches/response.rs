//! What rate limits and automatic responses add to every call and request.
//!
//! `cargo bench --bench response` measures, for a tenant of 10,000
//! principals already known to the buckets:
//! - `Limits::admit_call` (principal, principal and tool, client app
//!   buckets: the check at the top of every `tools/call`);
//! - `Limits::admit_address` (the front's check of every `/mcp` request);
//! - `response::plan::for_call` with the baseline rules (after scoring, on
//!   every scored call);
//! - `AuthWatch::note` (every authentication attempt at the front).
//!
//! Under `cargo bench` each case is also timed one call at a time (5,000
//! calls) and its p50 and p99 printed.

mod support;
use support::percentiles;

use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use warden::identity::Principal;
use warden::limits::{Limits, LimitsConfig};
use warden::metrics::Metrics;
use warden::response::config::{BlockConfig, baseline_rules};
use warden::response::plan::{AuthWatch, for_call};
use warden::risk::{Assessment, Level, Reason};

const PRINCIPALS: usize = 10_000;

fn principal(i: usize) -> Principal {
    let mut p = Principal::anonymous(None);
    p.tid = "tenant".into();
    p.oid = format!("00000000-0000-4000-8000-{i:012}");
    p.client_app = Some(format!("app-{}", i % 20));
    p
}

fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8))
}

fn bench(c: &mut Criterion) {
    let limits = Limits::new(LimitsConfig::default(), Metrics::new());
    let principals: Vec<Principal> = (0..PRINCIPALS).map(principal).collect();
    for p in &principals {
        limits
            .admit_call(p, "arm_vm_get")
            .expect("under the defaults");
    }
    let mut i = 0;
    let mut next = || {
        i = (i + 7919) % PRINCIPALS;
        i
    };
    let mut call = || {
        let who = &principals[next()];
        let _ = limits.admit_call(who, "arm_vm_get");
    };
    let (p50, p99) = percentiles(&mut call);
    println!(
        "limits admit_call: p50 {:.2} µs, p99 {:.2} µs",
        p50 * 1e6,
        p99 * 1e6
    );
    c.bench_function("limits admit_call (10k principals)", |b| b.iter(&mut call));

    let mut j = 0;
    let mut request = || {
        j = (j + 7919) % PRINCIPALS;
        let _ = limits.admit_address(address(j));
    };
    let (p50, p99) = percentiles(&mut request);
    println!(
        "limits admit_address: p50 {:.2} µs, p99 {:.2} µs",
        p50 * 1e6,
        p99 * 1e6
    );
    c.bench_function("limits admit_address (10k addresses)", |b| {
        b.iter(&mut request)
    });

    let rules = baseline_rules();
    let routine = Assessment {
        score: 12,
        level: Level::Low,
        reasons: vec![Reason::new("unusual_hour", 12.0, "at 03:00".into())],
        floor: None,
    };
    let burst = Assessment {
        score: 74,
        level: Level::High,
        reasons: vec![Reason::new("delete_spike", 60.0, "9 deletes".into())],
        floor: Some("delete_spike".into()),
    };
    for (name, assessment) in [("routine", &routine), ("delete floor", &burst)] {
        let mut plan = || std::hint::black_box(for_call(&rules, assessment));
        let (p50, p99) = percentiles(|| {
            plan();
        });
        println!(
            "plan for_call ({name}): p50 {:.2} µs, p99 {:.2} µs",
            p50 * 1e6,
            p99 * 1e6
        );
        c.bench_function(&format!("response plan ({name})"), |b| b.iter(&mut plan));
    }

    let mut watch = AuthWatch::new(BlockConfig::default());
    let mut at = 1_800_000_000_i64;
    let mut k = 0;
    let mut attempt = || {
        k = (k + 7919) % PRINCIPALS;
        at += 1;
        std::hint::black_box(watch.note(address(k), k % 3 != 0, at / 100));
    };
    let (p50, p99) = percentiles(&mut attempt);
    println!(
        "auth watch note: p50 {:.2} µs, p99 {:.2} µs",
        p50 * 1e6,
        p99 * 1e6
    );
    c.bench_function("auth watch note (10k addresses)", |b| b.iter(&mut attempt));
}

criterion_group!(benches, bench);
criterion_main!(benches);
