//! Lookup latency of the resource-facts stage.
//!
//! `cargo bench --bench facts` measures `Lookup::describe` (stage 2) with
//! the production source: [`ArmSource`] over Warden's [`ArmClient`], whose
//! client-secret credential (`azure_identity`) gets its token from the dev
//! issuer, against the ARM simulator over loopback HTTP. Issuer and
//! simulator run on the same tokio runtime (as many worker threads as
//! cores) as the lookups, which are driven with `Runtime::block_on`.
//!
//! The cases, each one operation:
//!
//! - `miss/vm-by-id`: `arm_vm_get` of `dev-web/web-01`, named by its full
//!   id: a GET of the VM and a GET of its resource group;
//! - `miss/vault-by-name`: `keyvault_secret_get` of a secret of
//!   `kv-security`, named without its resource group: a Resource Graph
//!   query by type and name, then a GET of the vault it placed and a GET
//!   of the vault's resource group;
//! - `hit/vm-by-id`: the first case again, answered from the cache.
//!
//! What is timed for a miss: `Lookup::new` (an empty cache; two empty maps,
//! no I/O) and `describe` on it, so every ARM request of the lookup is
//! made. The `ArmClient` is shared across runs, as in the gateway: its
//! token is cached (fetched once, before timing) and its HTTP connections
//! to the simulator are kept alive. For a hit, `describe` on one Lookup
//! whose cache already holds the answers (`ttl` of an hour, so nothing
//! expires while measuring). Under `cargo bench` each case is also timed
//! one call at a time (5,000 calls after 500 warm-up ones) and its p50 and
//! p99 printed. Every case is checked before timing: one operation,
//! `complete`, with the seeded tags of the resource and of its group, and
//! the number of ARM requests it makes (none for a hit).

mod support;
use support::percentiles;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tokio::runtime::Runtime;
use warden::azure::AzureConfig;
use warden::azure::client::ArmClient;
use warden::azure::sim::{self, SimConfig, Simulator};
use warden::catalog::{Catalog, Resolution};
use warden::facts::{ArmSource, Completeness, FactsConfig, Lookup, Source};
use warden::identity::dev::{DEV_TENANT, DevIssuer};
use warden::metrics::Metrics;

/// The dev issuer and the ARM simulator on loopback, and Warden's ARM
/// client toward the simulator with the dev confidential client's secret.
struct Estate {
    sim: Simulator,
    client: Arc<ArmClient>,
    _dir: tempfile::TempDir,
}

async fn estate() -> Estate {
    let dir = tempfile::tempdir().unwrap();
    let issuer_dir = dir.path().join("issuer");
    // RSA key generation is blocking (and slow in a debug build).
    let mut issuer = tokio::task::spawn_blocking(move || DevIssuer::load_or_create(&issuer_dir))
        .await
        .unwrap()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    issuer.set_base_url(&base);
    let app = issuer.router(&base);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sim = Simulator::start(SimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("arm-sim.db"),
        sim::dev_identity_config(&issuer, &base),
    ))
    .await
    .unwrap();
    let app_client = issuer.dev_client().unwrap();
    // `[azure]` as `warden dev` writes it.
    let azure: AzureConfig = toml::from_str(&format!(
        "[arm]\nendpoint = {:?}\naudience = {:?}\n\
         [credential]\nkind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\n\
         secret_file = {:?}\nauthority_host = {:?}\n",
        sim.base_url(),
        sim::ARM_AUDIENCE,
        app_client.client_id,
        app_client.secret_file.display().to_string(),
        base,
    ))
    .unwrap();
    azure.validate().unwrap();
    let credential = warden::azure::credential::build(&azure.credential).unwrap();
    let client = Arc::new(ArmClient::new(azure.arm, credential).unwrap());
    Estate {
        sim,
        client,
        _dir: dir,
    }
}

/// ARM requests the simulator has served so far.
fn requests(sim: &Simulator) -> u64 {
    sim.calls().iter().map(|c| c.count).sum()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A case: what the call names, and what its facts must be.
struct Case {
    name: &'static str,
    resolution: Resolution,
    tags: BTreeMap<String, String>,
    group_tags: BTreeMap<String, String>,
    /// ARM requests of a miss.
    requests: u64,
}

/// One `describe`, checked: one operation, complete, with the expected
/// tags.
async fn describe_checked(lookup: &Lookup, case: &Case) {
    let described = lookup.describe(&case.resolution).await;
    assert_eq!(described.len(), 1, "{}: {described:?}", case.name);
    let d = &described[0];
    assert_eq!(
        d.completeness,
        Completeness::Complete,
        "{}: {d:?}",
        case.name
    );
    let facts = d.facts.as_ref().unwrap();
    assert_eq!(facts.tags, case.tags, "{}: {facts:?}", case.name);
    assert_eq!(
        facts.resource_group_tags.as_ref(),
        Some(&case.group_tags),
        "{}: {facts:?}",
        case.name
    );
}

fn lookups(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let estate = rt.block_on(estate());
    let catalog = Catalog::builtin().unwrap();
    let vm = Case {
        name: "vm-by-id",
        resolution: catalog.resolve(
            "arm_vm_get",
            &json!({"subscription": sim::DEV_SUBSCRIPTION, "resource-group": "dev-web", "vm-name": "web-01"}),
            None,
        ),
        tags: tags(&[("env", "dev"), ("role", "web")]),
        group_tags: tags(&[("env", "dev"), ("owner", "web-team")]),
        requests: 2,
    };
    let vault = Case {
        name: "vault-by-name",
        resolution: catalog.resolve(
            "keyvault_secret_get",
            &json!({"subscription": sim::PROD_SUBSCRIPTION, "vault": "kv-security", "secret": "db-password"}),
            None,
        ),
        tags: tags(&[("env", "prod"), ("team", "secops")]),
        group_tags: tags(&[("env", "prod"), ("team", "secops")]),
        requests: 3,
    };
    let source: Arc<dyn Source> = Arc::new(ArmSource::new(estate.client.clone()));
    let metrics = Metrics::new();
    let config = FactsConfig {
        ttl: Duration::from_secs(3600),
        ..FactsConfig::default()
    };
    let fresh = || Lookup::new(config.clone(), source.clone(), metrics.clone());

    // The cases are what they claim to be; the first lookup also fetches
    // the client's token.
    for case in [&vm, &vault] {
        rt.block_on(describe_checked(&fresh(), case));
        let before = requests(&estate.sim);
        rt.block_on(describe_checked(&fresh(), case));
        assert_eq!(
            requests(&estate.sim) - before,
            case.requests,
            "ARM requests of a miss of {}",
            case.name
        );
    }
    let cached = fresh();
    rt.block_on(describe_checked(&cached, &vm));
    let before = requests(&estate.sim);
    rt.block_on(describe_checked(&cached, &vm));
    assert_eq!(requests(&estate.sim), before, "a hit asks ARM nothing");

    let benchmarking = std::env::args().any(|a| a == "--bench");
    let print = |name: &str, (p50, p99): (f64, f64)| {
        println!(
            "facts/{name}: p50 {:.1} µs, p99 {:.1} µs (5,000 single calls)",
            p50 * 1e6,
            p99 * 1e6
        );
    };
    let mut group = c.benchmark_group("facts");
    for case in [&vm, &vault] {
        group.bench_function(format!("miss/{}", case.name), |b| {
            b.iter(|| rt.block_on(fresh().describe(&case.resolution)))
        });
        if benchmarking {
            let times = percentiles(|| {
                std::hint::black_box(rt.block_on(fresh().describe(&case.resolution)));
            });
            print(&format!("miss/{}", case.name), times);
        }
    }
    let before = requests(&estate.sim);
    group.bench_function("hit/vm-by-id", |b| {
        b.iter(|| rt.block_on(cached.describe(&vm.resolution)))
    });
    if benchmarking {
        let times = percentiles(|| {
            std::hint::black_box(rt.block_on(cached.describe(&vm.resolution)));
        });
        print("hit/vm-by-id", times);
    }
    group.finish();
    // Every timed hit was one: no ARM request while they ran.
    assert_eq!(requests(&estate.sim), before, "the hits asked ARM");
    rt.block_on(describe_checked(&cached, &vm));
    assert!(
        estate.sim.unserved().is_empty(),
        "{:?}",
        estate.sim.unserved()
    );
    rt.block_on(estate.sim.shutdown());
}

criterion_group!(benches, lookups);
criterion_main!(benches);
