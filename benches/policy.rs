//! Decision latency of the Cedar policy engine.
//!
//! `cargo bench --bench policy` measures `Engine::authorize` for three calls
//! (a reader's VM read, a developer's VM start in `dev-*`, a contributor's
//! delete that needs MFA) with the baseline policies of `policies/`, and with
//! the baseline plus 100 and 1,000 generated policies (per-resource-group
//! permits and forbids of the kind a large tenant accumulates, all
//! validated against the same schema).
//!
//! Decisions reuse the entities a set built for the same principal and
//! resource facts (`src/policy/memo.rs`), so each case is measured as a
//! repeated call; `reader-read-unseen-resource` is the Reader's read on a
//! resource never seen before, whose entity store is built each time.
//!
//! Criterion reports the mean of batches; under `cargo bench` each case is
//! then also timed one decision at a time (5,000 decisions) and its p50 and
//! p99 printed, since a gateway's budget is about the slow calls.

mod support;
use support::percentiles;

use std::path::Path;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use warden::catalog::Catalog;
use warden::policy::{CallContext, Engine, OperationFacts, PolicyConfig, PrincipalSpec};

/// The allocator the `warden` binary runs with (`src/main.rs`): decisions
/// allocate many small values, and production's allocator is what counts.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUB: &str = "11111111-1111-1111-1111-111111111111";

/// A policy directory with the baseline and `extra` generated policies.
fn policies(extra: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(baseline).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut generated = String::new();
    for i in 0..extra {
        let group = format!("/subscriptions/{SUB}/resourcegroups/team-{i}");
        if i % 4 == 3 {
            generated.push_str(&format!(
                "@id(\"generated-forbid-{i}\")\n@advice(\"deny\")\n\
                 forbid (principal in AppRole::\"Developer\", action in Action::\"delete\", \
                 resource in ResourceGroup::\"{group}\");\n"
            ));
        } else {
            generated.push_str(&format!(
                "@id(\"generated-permit-{i}\")\n\
                 permit (principal in Group::\"team-{i}\", \
                 action in Action::\"Microsoft.Compute/virtualMachines/*\", \
                 resource in ResourceGroup::\"{group}\");\n"
            ));
        }
    }
    std::fs::write(dir.path().join("generated.cedar"), generated).unwrap();
    dir
}

fn operation(op: &str, class: &str, group: &str) -> OperationFacts {
    serde_json::from_value(serde_json::json!({
        "azure_op": op,
        "class": class,
        "resource_id": format!(
            "/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/vm-1"
        ),
    }))
    .unwrap()
}

fn caller(roles: &[&str], mfa: bool) -> warden::identity::Principal {
    let spec: PrincipalSpec =
        serde_json::from_value(serde_json::json!({ "roles": roles, "mfa": mfa })).unwrap();
    spec.principal()
}

fn decisions(c: &mut Criterion) {
    let operations = Catalog::builtin().unwrap().operation_classes();
    let calls = [
        (
            "reader-read",
            caller(&["Reader"], false),
            operation("Microsoft.Compute/virtualMachines/read", "read", "prod-web"),
        ),
        (
            "developer-start-dev",
            caller(&["Developer"], false),
            operation(
                "Microsoft.Compute/virtualMachines/start/action",
                "action",
                "dev-web",
            ),
        ),
        (
            "contributor-delete-no-mfa",
            caller(&["Contributor"], false),
            operation(
                "Microsoft.Compute/virtualMachines/delete",
                "delete",
                "dev-web",
            ),
        ),
    ];
    // `cargo bench` passes --bench; `cargo test --benches` runs each case once.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mut group = c.benchmark_group("authorize");
    for extra in [0usize, 100, 1000] {
        let dir = policies(extra);
        let config = PolicyConfig {
            dir: dir.path().to_owned(),
            ..PolicyConfig::default()
        };
        let engine = Engine::load(&config, &operations).unwrap();
        for (name, principal, op) in &calls {
            // As in production with [azure]: the resource was looked up.
            let mut context = CallContext::new("bench_tool", "bench", Utc::now());
            context.facts = warden::facts::Completeness::Complete;
            let ops = std::slice::from_ref(op);
            // The decision must be the baseline's, whatever the set size.
            let decision = engine.authorize(principal, ops, &context);
            assert_eq!(
                serde_json::to_value(decision.effect()).unwrap(),
                if *name == "contributor-delete-no-mfa" {
                    "deny"
                } else {
                    "allow"
                },
                "{name}"
            );
            group.bench_with_input(
                BenchmarkId::new(*name, format!("baseline+{extra}")),
                &(),
                |b, _| b.iter(|| engine.authorize(principal, ops, &context)),
            );
            if benchmarking {
                let (p50, p99) = percentiles(|| {
                    std::hint::black_box(engine.authorize(principal, ops, &context));
                });
                println!(
                    "authorize/{name}/baseline+{extra}: p50 {:.1} µs, p99 {:.1} µs (5,000 single decisions)",
                    p50 * 1e6,
                    p99 * 1e6
                );
            }
        }
        // A resource the set has not seen: its entity store is built (the
        // principal's entities are reused), as on every first call on it.
        let (name, principal, op) = &calls[0];
        let context = CallContext::new("bench_tool", "bench", Utc::now());
        let mut n = 0u64;
        let mut fresh = || {
            n += 1;
            let mut op = op.clone();
            op.resource_id = format!("{}-{n}", op.resource_id);
            [op]
        };
        group.bench_with_input(
            BenchmarkId::new(
                format!("{name}-unseen-resource"),
                format!("baseline+{extra}"),
            ),
            &(),
            |b, _| b.iter(|| engine.authorize(principal, &fresh(), &context)),
        );
        if benchmarking {
            let (p50, p99) = percentiles(|| {
                let ops = fresh();
                std::hint::black_box(engine.authorize(principal, &ops, &context));
            });
            println!(
                "authorize/{name}-unseen-resource/baseline+{extra}: p50 {:.1} µs, p99 {:.1} µs (5,000 single decisions)",
                p50 * 1e6,
                p99 * 1e6
            );
        }
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
