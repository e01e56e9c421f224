//! Bearer-token validation: the first use of a token (every check,
//! including the RS256 signature) against its next uses (served from the
//! verified-token cache until its `exp`).
//!
//! `cargo bench --bench token` runs the dev issuer on loopback (its JWKS is
//! fetched once, as Entra's would be), mints a token, and measures
//! `Authenticator::authenticate` with the cache off (every call the full
//! validation) and on. Under `cargo bench` each case is also timed one call
//! at a time and its p50 and p99 printed.

mod support;
use support::percentiles;

use std::net::IpAddr;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::identity::Authenticator;
use warden::identity::dev::{DevIssuer, TokenOptions};

/// The dev issuer on loopback and an authenticator trusting it, with a
/// verified-token cache of `cache` entries.
fn authenticator(rt: &tokio::runtime::Runtime, cache: usize) -> (Arc<Authenticator>, String) {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap().keep();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut issuer = tokio::task::spawn_blocking(move || DevIssuer::load_or_create(&dir))
            .await
            .unwrap()
            .unwrap();
        issuer.set_base_url(&base);
        let router = issuer.router(&base);
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut config = issuer.identity_config(&base);
        config.token_cache = cache;
        let auth = Authenticator::start(config, reqwest::Client::new());
        auth.refresh_keys().await;
        assert_eq!(auth.ready(), Ok(()));
        let token = issuer.mint(&TokenOptions::default()).unwrap();
        (auth, format!("Bearer {token}"))
    })
}

fn validation(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let peer = Some(IpAddr::from([127, 0, 0, 1]));
    let mut group = c.benchmark_group("token");
    for (name, cache) in [("first use (cache off)", 0), ("cached", 10_000)] {
        let (auth, header) = authenticator(&rt, cache);
        let check = || {
            rt.block_on(auth.authenticate(Some(&header), peer))
                .expect("the token is valid")
        };
        check();
        group.bench_function(name, |b| b.iter(check));
        if std::env::args().any(|a| a == "--bench") {
            let (p50, p99) = percentiles(|| {
                check();
            });
            println!(
                "token {name}: p50 {:.1} µs, p99 {:.1} µs",
                p50 * 1e6,
                p99 * 1e6
            );
        }
    }
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
