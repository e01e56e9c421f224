//! The buckets' arithmetic on a clock the tests move.

use std::sync::atomic::AtomicU64;

use super::*;

const SECOND: u64 = 1_000_000_000;

/// A clock that moves only when told.
#[derive(Default)]
struct Manual(AtomicU64);

impl Manual {
    fn advance(&self, nanos: u64) {
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Clock for Manual {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn rate(rate: u64, per: u64, burst: u64) -> Rate {
    Rate {
        rate,
        per: Duration::from_secs(per),
        burst: Some(burst),
        enabled: true,
    }
}

fn off() -> Rate {
    Rate {
        enabled: false,
        ..rate(1, 60, 1)
    }
}

/// Limits on a manual clock: the given call limits, addresses off.
fn call_limits(
    principal: Rate,
    principal_tool: Rate,
    client_app: Rate,
) -> (Limits, Arc<Manual>, Metrics) {
    let config = LimitsConfig {
        principal,
        principal_tool,
        client_app,
        source_address: off(),
        ..LimitsConfig::default()
    };
    with_config(config)
}

fn with_config(config: LimitsConfig) -> (Limits, Arc<Manual>, Metrics) {
    let clock = Arc::new(Manual::default());
    let metrics = Metrics::new();
    let limits = Limits::with_clock(config, metrics.clone(), clock.clone());
    (limits, clock, metrics)
}

fn principal(oid: &str, app: Option<&str>) -> Principal {
    let mut p = Principal::anonymous(None);
    p.tid = "tenant".into();
    p.oid = oid.into();
    p.client_app = app.map(str::to_owned);
    p
}

#[test]
fn a_bucket_gives_its_burst_then_one_token_per_interval() {
    // 60 a minute: one token a second; 3 at once.
    let spec = Spec::new(&rate(60, 60, 3));
    let mut tat = 0;
    for _ in 0..3 {
        assert_eq!(spec.wait(tat, 0), None);
        tat = spec.take(tat, 0, 1);
    }
    assert_eq!(tat, 3 * SECOND);
    assert_eq!(
        spec.wait(tat, 0),
        Some(SECOND),
        "the 4th waits one interval"
    );
    assert_eq!(spec.wait(tat, SECOND / 2), Some(SECOND / 2));
    assert_eq!(spec.wait(tat, SECOND), None, "one token came back");
    // Idle long enough, the bucket is full again: `burst` at once, no more.
    let now = 100 * SECOND;
    assert!(tat <= now, "a full bucket's tat is in the past");
    for _ in 0..3 {
        assert_eq!(spec.wait(tat, now), None);
        tat = spec.take(tat, now, 1);
    }
    assert_eq!(spec.wait(tat, now), Some(SECOND));
}

#[test]
fn a_debit_goes_into_debt_and_lengthens_the_wait() {
    let spec = Spec::new(&rate(60, 60, 3));
    // A full bucket debited 5 tokens: 2 more than it holds.
    let tat = spec.take(0, 0, 5);
    assert_eq!(tat, 5 * SECOND);
    assert_eq!(
        spec.wait(tat, 0),
        Some(3 * SECOND),
        "2 s of debt, then 1 s for a token"
    );
    assert_eq!(spec.wait(tat, 3 * SECOND), None);
    // Debt adds up from where the bucket is, not from now.
    let deeper = spec.take(tat, SECOND, 4);
    assert_eq!(deeper, 9 * SECOND);
    assert_eq!(spec.wait(deeper, SECOND), Some(6 * SECOND));
}

#[test]
fn slow_rates_and_large_bursts_do_not_overflow() {
    // The slowest refill the configuration allows: a year.
    let spec = Spec::new(&rate(1, 86_400, 366));
    let tat = spec.take(u64::MAX - 5, u64::MAX - 10, 1_000_000);
    assert_eq!(tat, u64::MAX, "saturates");
    assert!(spec.wait(tat, 0).is_some());
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    let limited = |nanos| Limited {
        limit: Limit::PrincipalTool,
        retry_after: Duration::from_nanos(nanos),
        rate: rate(120, 60, 40),
    };
    assert_eq!(limited(1).retry_after_s(), 1);
    assert_eq!(limited(0).retry_after_s(), 1);
    assert_eq!(limited(SECOND).retry_after_s(), 1);
    assert_eq!(limited(SECOND + 1).retry_after_s(), 2);
    assert_eq!(limited(2 * SECOND + SECOND / 2).retry_after_s(), 3);
    let l = limited(2 * SECOND + SECOND / 2);
    assert_eq!(
        l.data(),
        json!({"reason": "rate_limited", "limit": "principal_tool", "retry_after_s": 3})
    );
    let message = l.message();
    for part in [
        "calls of this tool by this principal",
        "\"principal_tool\"",
        "120 per 1m",
        "40 at once",
        "Retry after 3 s",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
}

#[test]
fn a_call_takes_from_every_limit_or_from_none() {
    let (limits, clock, metrics) = call_limits(rate(60, 60, 5), rate(60, 60, 2), off());
    let alice = principal("alice", None);
    assert_eq!(limits.admit_call(&alice, "a"), Ok(()));
    assert_eq!(limits.admit_call(&alice, "a"), Ok(()));
    let refused = limits.admit_call(&alice, "a").unwrap_err();
    assert_eq!(refused.limit, Limit::PrincipalTool);
    assert_eq!(refused.retry_after, Duration::from_secs(1));
    // Another tool is not limited by that one; the principal's limit
    // counts both (the refused call took nothing: 2 + 3 = 5).
    for _ in 0..2 {
        assert_eq!(limits.admit_call(&alice, "b"), Ok(()));
    }
    assert_eq!(limits.admit_call(&alice, "c"), Ok(()));
    let refused = limits.admit_call(&alice, "d").unwrap_err();
    assert_eq!(refused.limit, Limit::Principal);
    // Another principal is unaffected.
    assert_eq!(limits.admit_call(&principal("bob", None), "a"), Ok(()));
    // A second later one token each came back.
    clock.advance(SECOND);
    assert_eq!(limits.admit_call(&alice, "a"), Ok(()));
    assert_eq!(
        limits.admit_call(&alice, "b").unwrap_err().limit,
        Limit::Principal
    );
    let text = metrics.render();
    for line in [
        r#"warden_rate_limited_total{limit="principal_tool"} 1"#,
        r#"warden_rate_limited_total{limit="principal"} 2"#,
        r#"warden_rate_limited_total{limit="client_app"} 0"#,
        r#"warden_rate_limited_total{limit="source_address"} 0"#,
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn the_refusal_names_the_longest_wait() {
    // The principal's bucket refills slowly (1 a minute), the tool's fast.
    let (limits, _, _) = call_limits(rate(1, 60, 1), rate(60, 60, 1), off());
    let alice = principal("alice", None);
    assert_eq!(limits.admit_call(&alice, "a"), Ok(()));
    let refused = limits.admit_call(&alice, "a").unwrap_err();
    assert_eq!(refused.limit, Limit::Principal);
    assert_eq!(refused.retry_after, Duration::from_secs(60));
}

#[test]
fn a_client_app_is_limited_within_its_tenant() {
    let (limits, _, _) = call_limits(rate(60, 60, 100), rate(60, 60, 100), rate(60, 60, 3));
    for user in ["a", "b", "c"] {
        assert_eq!(
            limits.admit_call(&principal(user, Some("app")), "t"),
            Ok(())
        );
    }
    let refused = limits
        .admit_call(&principal("d", Some("app")), "t")
        .unwrap_err();
    assert_eq!(refused.limit, Limit::ClientApp);
    assert_eq!(
        limits.admit_call(&principal("d", Some("other")), "t"),
        Ok(())
    );
    assert_eq!(limits.admit_call(&principal("d", None), "t"), Ok(()));
    let mut elsewhere = principal("d", Some("app"));
    elsewhere.tid = "another-tenant".into();
    assert_eq!(limits.admit_call(&elsewhere, "t"), Ok(()));
}

#[test]
fn addresses_are_limited_by_host_and_ipv6_by_its_64() {
    let config = LimitsConfig {
        source_address: rate(60, 60, 2),
        ..LimitsConfig::default()
    };
    let (limits, _, _) = with_config(config);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for _ in 0..2 {
        assert_eq!(limits.admit_address(ip("192.0.2.1")), Ok(()));
    }
    let refused = limits.admit_address(ip("192.0.2.1")).unwrap_err();
    assert_eq!(refused.limit, Limit::SourceAddress);
    // The same address mapped into IPv6 is the same host.
    assert!(limits.admit_address(ip("::ffff:192.0.2.1")).is_err());
    assert_eq!(limits.admit_address(ip("192.0.2.2")), Ok(()));
    // One /64 is one bucket.
    assert_eq!(limits.admit_address(ip("2001:db8:0:1::1")), Ok(()));
    assert_eq!(limits.admit_address(ip("2001:db8:0:1:ffff::2")), Ok(()));
    assert!(limits.admit_address(ip("2001:db8:0:1::3")).is_err());
    assert_eq!(limits.admit_address(ip("2001:db8:0:2::1")), Ok(()));
    assert_eq!(
        Key::address(ip("::ffff:192.0.2.1")),
        Key::address(ip("192.0.2.1"))
    );
}

#[test]
fn refusals_are_noted_once_a_minute_per_key() {
    let config = LimitsConfig {
        source_address: rate(1, 3600, 1),
        ..LimitsConfig::default()
    };
    let (limits, clock, _) = with_config(config);
    let key = Key::address("192.0.2.1".parse().unwrap());
    let spec = limits.spec(Limit::SourceAddress).unwrap();
    assert!(limits.admit(&[(key, spec)]).is_ok());
    assert!(matches!(limits.admit(&[(key, spec)]), Err((_, true))));
    assert!(matches!(limits.admit(&[(key, spec)]), Err((_, false))));
    clock.advance(59 * SECOND);
    assert!(matches!(limits.admit(&[(key, spec)]), Err((_, false))));
    clock.advance(SECOND);
    assert!(matches!(limits.admit(&[(key, spec)]), Err((_, true))));
}

#[test]
fn off_means_never_refused() {
    let config = LimitsConfig {
        enabled: false,
        principal: rate(1, 3600, 1),
        source_address: rate(1, 3600, 1),
        ..LimitsConfig::default()
    };
    let (limits, _, _) = with_config(config);
    let alice = principal("alice", Some("app"));
    for _ in 0..10 {
        assert_eq!(limits.admit_call(&alice, "t"), Ok(()));
        assert_eq!(limits.admit_address("192.0.2.1".parse().unwrap()), Ok(()));
    }
    assert_eq!(limits.buckets(), 0);
    // The principal's limit off, the tool's on (one call of each tool).
    let (limits, _, _) = call_limits(off(), rate(60, 60, 1), off());
    for i in 0..10 {
        assert_eq!(limits.admit_call(&alice, &format!("t{i}")), Ok(()));
    }
    assert_eq!(
        limits.admit_call(&alice, "t0").unwrap_err().limit,
        Limit::PrincipalTool
    );
}

#[test]
fn full_buckets_are_forgotten() {
    let (limits, clock, metrics) = call_limits(rate(60, 60, 10), rate(60, 60, 10), off());
    let alice = principal("alice", None);
    for _ in 0..3 {
        limits.admit_call(&alice, "a").unwrap();
    }
    limits.sweep();
    assert_eq!(limits.buckets(), 2);
    let text = metrics.render();
    assert!(
        text.contains(r#"warden_rate_limit_buckets{limit="principal"} 1"#),
        "{text}"
    );
    // Three tokens come back in three seconds: the buckets are full.
    clock.advance(3 * SECOND - 1);
    limits.sweep();
    assert_eq!(limits.buckets(), 2, "not yet full");
    clock.advance(1);
    limits.sweep();
    assert_eq!(limits.buckets(), 0);
    assert!(
        metrics
            .render()
            .contains(r#"warden_rate_limit_buckets{limit="principal"} 0"#)
    );
}

#[test]
fn a_full_table_forgets_the_buckets_closest_to_full_first() {
    let config = LimitsConfig {
        source_address: rate(1, 3600, 5),
        max_buckets: 100,
        ..LimitsConfig::default()
    };
    let (limits, _, metrics) = with_config(config);
    // A flooder empties its bucket...
    let flooder: IpAddr = "198.51.100.7".parse().unwrap();
    while limits.admit_address(flooder).is_ok() {}
    // ... then many addresses make one request each.
    for i in 0..1000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        assert_eq!(limits.admit_address(ip), Ok(()));
        assert!(limits.buckets() <= 100);
    }
    assert!(
        limits.admit_address(flooder).is_err(),
        "the emptiest bucket is kept"
    );
    assert!(
        !metrics
            .render()
            .contains(r#"warden_rate_limit_evicted_total{limit="source_address"} 0"#)
    );
}

#[test]
fn what_is_admitted_is_drained_for_publishing_and_others_are_debited() {
    let (limits, _, metrics) = call_limits(rate(60, 60, 10), rate(60, 60, 10), off());
    limits.shared.store(true, Ordering::Relaxed);
    let alice = principal("alice", None);
    for _ in 0..3 {
        limits.admit_call(&alice, "a").unwrap();
    }
    let mut taken = limits.drain();
    taken.sort_by_key(|(k, _)| k.limit.code());
    let principal_key = Key::new(Limit::Principal, &["tenant", "alice"]);
    assert_eq!(
        taken,
        vec![
            (principal_key, 3),
            (Key::new(Limit::PrincipalTool, &["tenant", "alice", "a"]), 3)
        ]
    );
    assert!(limits.drain().is_empty(), "drained once");
    // Not published: given back, and drained with what comes next.
    limits.restore(taken);
    limits.admit_call(&alice, "b").unwrap();
    let drained: u64 = limits
        .drain()
        .iter()
        .filter(|(k, _)| *k == principal_key)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(drained, 4);
    // Another replica admitted 20 for alice: 4 + 20 taken of 10, so the
    // bucket is 14 in debt, plus one interval for the next token.
    limits.debit(&[(principal_key, 20)]);
    let refused = limits.admit_call(&alice, "c").unwrap_err();
    assert_eq!(refused.limit, Limit::Principal);
    assert_eq!(refused.retry_after, Duration::from_secs(15));
    // A key this replica never saw is made in debt.
    let bob = Key::new(Limit::Principal, &["tenant", "bob"]);
    limits.debit(&[(bob, 12)]);
    assert_eq!(
        limits
            .admit_call(&principal("bob", None), "a")
            .unwrap_err()
            .retry_after,
        Duration::from_secs(3)
    );
    assert!(
        metrics
            .render()
            .contains(r#"warden_rate_limit_debited_total{limit="principal"} 32"#)
    );
}

#[test]
fn keys_round_trip_through_bytes_and_differ_by_parts() {
    let key = Key::new(Limit::PrincipalTool, &["t", "o", "tool"]);
    assert_eq!(Key::from_bytes(&key.to_bytes()), Some(key));
    assert_eq!(key.to_bytes().len(), 17);
    assert_eq!(Key::from_bytes(&[9; 17]), None);
    assert_eq!(Key::from_bytes(&[1; 5]), None);
    assert_ne!(
        Key::new(Limit::PrincipalTool, &["t", "o/x", "y"]),
        Key::new(Limit::PrincipalTool, &["t", "o", "x/y"])
    );
    assert_ne!(
        Key::new(Limit::Principal, &["t", "o"]),
        Key::new(Limit::ClientApp, &["t", "o"])
    );
}

#[test]
fn the_front_answers_429_with_retry_after() {
    let limited = Limited {
        limit: Limit::SourceAddress,
        retry_after: Duration::from_millis(1500),
        rate: rate(1200, 60, 300),
    };
    let response = limited.http_response();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["content-type"], "application/json");
}

mod config {
    use std::path::Path;

    use crate::config::Config;

    const REST: &str = "[identity]\nallow_anonymous = true\n[store]\npath = \"w.db\"\n\
        [audit]\nsigning_key = \"s.key\"\nhmac_key = \"h.key\"\n[policy]\ndir = \"p\"\n\
        [upstreams.a]\ncommand = \"x\"\n";

    fn parse(limits: &str) -> Result<Config, String> {
        Config::parse(&format!("{limits}\n{REST}"), Path::new("warden.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_on_and_generous() {
        let config = parse("").unwrap();
        assert_eq!(config.limits, super::LimitsConfig::default());
        assert!(config.limits.enabled);
        assert_eq!(config.limits.principal.burst(), 1_000);
        let config = parse("[limits]\nprincipal = { rate = 10 }\n").unwrap();
        let principal = config.limits.principal;
        assert_eq!(
            (principal.rate, principal.per.as_secs(), principal.burst()),
            (10, 60, 10),
            "per defaults to a minute, burst to the rate"
        );
        let config = parse(
            "[limits]\nprincipal_tool = { rate = 1, per = \"1h\", burst = 3 }\n\
             source_address = { enabled = false }\nsync_interval = \"250ms\"\n",
        )
        .unwrap();
        assert_eq!(config.limits.principal_tool.per.as_secs(), 3600);
        assert!(!config.limits.source_address.enabled);
        assert_eq!(config.limits.sync_interval.as_millis(), 250);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            ("principal = { rate = 0 }", "limits.principal.rate"),
            (
                "principal_tool = { rate = 5, per = \"10ms\" }",
                "limits.principal_tool.per",
            ),
            (
                "client_app = { rate = 5, per = \"2d\" }",
                "limits.client_app.per",
            ),
            (
                "source_address = { rate = 5, burst = 0 }",
                "limits.source_address.burst",
            ),
            (
                "principal = { rate = 5000000, per = \"1s\" }",
                "limits.principal.rate",
            ),
            ("sync_interval = \"10ms\"", "limits.sync_interval"),
            ("max_buckets = 5", "limits.max_buckets"),
            (
                "principal = { rate = 1, per = \"1d\", burst = 400 }",
                "limits.principal.burst",
            ),
        ] {
            let err = parse(&format!("[limits]\n{text}\n")).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
        // Unknown keys and wrong types: TOML's error, with the line.
        let err = parse("[limits]\nprincipal = { rate = 5, burts = 3 }\n").unwrap_err();
        assert!(
            err.contains("burts") && err.contains("warden.toml:2"),
            "{err}"
        );
        let err = parse("[limits]\nper_principal = 3\n").unwrap_err();
        assert!(err.contains("per_principal"), "{err}");
        let err = parse("[limits]\nprincipal = { rate = \"many\" }\n").unwrap_err();
        assert!(err.contains("warden.toml:2"), "{err}");
    }
}

#[test]
fn the_log_reads_a_rate_limited_call_as_refused_by_no_policy() {
    use crate::audit::record::{Actor, Kind, Record, Status};
    let mut alice = principal("alice", None);
    alice.roles = ["Reader".to_owned()].into();
    let mut intent = Record::new(Kind::Intent);
    intent.seq = 0;
    intent.call_id = Some("c1".into());
    intent.principal = Some(Actor::from(&alice));
    if let Some(actor) = &mut intent.principal {
        actor.roles = vec!["Reader".into()];
    }
    intent.tool = Some("echo".into());
    let mut outcome = Record::new(Kind::Outcome);
    outcome.seq = 1;
    outcome.call_id = Some("c1".into());
    outcome.principal = Some(Actor::from(&alice));
    outcome.status = Some(Status::RateLimited);
    let now = chrono::Utc::now();
    let period = crate::review::Period {
        from: now - chrono::Duration::days(1),
        to: now + chrono::Duration::days(1),
    };
    let bytes = |r: &Record| serde_json::to_vec(r).unwrap();

    // The compliance report: a denied call of its day, under "rate limit".
    let mut fold = crate::report::evidence::Fold::new(period);
    fold.add(&bytes(&intent));
    fold.add(&bytes(&outcome));
    let evidence = fold.finish(&[], None, None);
    assert_eq!(evidence.calls, 1);
    let day = evidence.calls_per_day.values().next().unwrap();
    assert_eq!((day.allowed, day.denied), (0, 1));
    assert_eq!(
        evidence.denials_by_policy,
        [("rate limit".to_owned(), 1)].into()
    );
    assert_eq!(evidence.measures["calls_without_outcome"].value, Some(0.0));

    // An access review: activity with the caller's roles, not a call a
    // policy allowed or denied.
    let mut usage = crate::review::Usage::new(period);
    usage.add(&bytes(&intent));
    usage.add(&bytes(&outcome));
    let used = &usage.principals[&("tenant".to_owned(), "alice".to_owned())];
    assert_eq!((used.calls, used.allowed, used.denied), (0, 0, 0));
    assert!(used.last_activity.is_some());
    assert!(used.roles.contains("Reader"));
}
