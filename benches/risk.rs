//! Scoring latency of the risk stage.
//!
//! `cargo bench --bench risk` measures `Risk::assess` (stage 3) and
//! `Risk::learn` (stage 9) for a tenant of 200 principals with four weeks
//! of office-hours history each: a routine read, the tenth delete of a
//! burst, and a role assignment from a country the principal never used.
//! Under `cargo bench` each case is also timed one call at a time (5,000
//! calls) and its p50 and p99 printed. `warden risk eval` reports the same
//! latency over a whole synthetic month.

mod support;
use support::percentiles;

use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::risk::baseline::RiskClass;
use warden::risk::{GeoTable, Level, Observation, ObservedOp, Outcome, Risk, RiskConfig};

/// Monday 2026-11-02 00:00 UTC.
const MONDAY: i64 = 1_793_577_600;
const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

fn op(azure_op: &str, class: RiskClass, group: usize) -> ObservedOp {
    ObservedOp {
        azure_op: azure_op.into(),
        class,
        subscription: Some("sub-dev".into()),
        resource_group: Some(format!("rg-team{}", group % 12)),
    }
}

fn call(who: usize, at: i64, ip: &str, ops: Vec<ObservedOp>) -> Observation {
    Observation {
        tenant: "tenant".into(),
        principal: format!("p{who}"),
        peer: warden::risk::peer_group("user", ["Developer"]),
        at,
        source_ip: Some(ip.parse::<IpAddr>().unwrap()),
        operations: ops,
        cost: None,
    }
}

const OPS: [(&str, RiskClass); 6] = [
    ("Microsoft.Compute/virtualMachines/read", RiskClass::Read),
    ("Microsoft.Web/sites/read", RiskClass::Read),
    ("Microsoft.Storage/storageAccounts/read", RiskClass::Read),
    ("Microsoft.Web/sites/write", RiskClass::Write),
    (
        "Microsoft.Compute/virtualMachines/start/action",
        RiskClass::Write,
    ),
    (
        "Microsoft.Compute/virtualMachines/delete",
        RiskClass::Delete,
    ),
];

fn tenant() -> Risk {
    let geo = GeoTable::parse("network,country,asn\n10.0.0.0/16,NL,1136\n10.9.0.0/16,BR,28573\n")
        .unwrap();
    let risk = Risk::with_geo(RiskConfig::default(), geo);
    for day in 0..28 {
        if day % 7 >= 5 {
            continue;
        }
        for who in 0..200 {
            for i in 0..30 {
                let at = MONDAY + day * DAY + 9 * HOUR + i * 900 + who as i64;
                let (name, class) = OPS[(i as usize + who) % OPS.len()];
                let ip = format!("10.0.{}.{}", who / 250, who % 250 + 1);
                risk.learn(
                    &call(who, at, &ip, vec![op(name, class, who)]),
                    Outcome::Succeeded,
                );
            }
        }
    }
    risk
}

fn scoring(c: &mut Criterion) {
    let risk = tenant();
    let at = MONDAY + 29 * DAY + 10 * HOUR;
    let routine = call(7, at, "10.0.0.8", vec![op(OPS[0].0, OPS[0].1, 7)]);
    let burst = call(8, at + 600, "10.0.0.9", vec![op(OPS[5].0, OPS[5].1, 8)]);
    for i in 0..9 {
        risk.learn(
            &call(8, at + i * 60, "10.0.0.9", vec![op(OPS[5].0, OPS[5].1, 8)]),
            Outcome::Succeeded,
        );
    }
    let grant = call(
        9,
        at,
        "10.9.0.1",
        vec![op(
            "Microsoft.Authorization/roleAssignments/write",
            RiskClass::Privileged,
            9,
        )],
    );
    // The cases are what they claim to be.
    assert_eq!(risk.assess(&routine).level, Level::Low);
    assert!(risk.assess(&burst).level >= Level::High);
    assert!(risk.assess(&grant).level >= Level::High);

    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut group = c.benchmark_group("risk");
    for (name, obs) in [
        ("routine-read", &routine),
        ("delete-burst", &burst),
        ("grant-from-new-country", &grant),
    ] {
        group.bench_function(format!("assess/{name}"), |b| b.iter(|| risk.assess(obs)));
        if benchmarking {
            let (p50, p99) = percentiles(|| {
                std::hint::black_box(risk.assess(obs));
            });
            println!(
                "risk/assess/{name}: p50 {:.1} µs, p99 {:.1} µs (5,000 single calls)",
                p50 * 1e6,
                p99 * 1e6
            );
        }
    }
    let mut t = at + DAY;
    group.bench_function("learn/routine-read", |b| {
        b.iter(|| {
            t += 1;
            risk.learn(
                &Observation {
                    at: t,
                    ..routine.clone()
                },
                Outcome::Succeeded,
            )
        })
    });
    group.finish();
    let sizes = risk.state_sizes();
    println!(
        "risk/state: {} principals, mean {} B, max {} B per principal",
        sizes.len(),
        sizes.iter().sum::<usize>() / sizes.len().max(1),
        sizes.iter().max().unwrap_or(&0)
    );
}

criterion_group!(benches, scoring);
criterion_main!(benches);
