//! Rate limits (`[limits]`) against a real Warden: concurrent calls of one
//! principal get exactly the bucket's burst and then a JSON-RPC error
//! saying which limit and when to retry, each recorded as `rate_limited`;
//! the per-tool limit leaves other tools alone and other principals are
//! unaffected; a flood from one address gets 429 before authentication
//! while another address is served; and two replicas on PostgreSQL share
//! a principal's bucket within the documented bound.
//!
//! Buckets refill one token an hour, so what a test admits is exact.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::store::postgres::ScratchSchema;

/// The JSON-RPC error code of a rate-limited call.
const RATE_LIMITED: i32 = -32029;

/// What one tools/call came to.
#[derive(Debug)]
enum Answer {
    Ok,
    Limited { limit: String, retry_after_s: u64 },
}

async fn answer(client: &Client, tool: &str) -> Answer {
    let args = match tool {
        "add" => json!({"a": 1, "b": 2}),
        "whoami" => json!({}),
        _ => json!({"text": "hi"}),
    };
    match call(client, tool, args).await {
        Ok(result) => {
            assert_ne!(result.is_error, Some(true), "{result:?}");
            Answer::Ok
        }
        Err(rmcp::ServiceError::McpError(error)) => {
            assert_eq!(error.code.0, RATE_LIMITED, "{error:?}");
            let data = error.data.clone().expect("the error has data");
            assert_eq!(data["reason"], "rate_limited", "{data}");
            let limit = data["limit"].as_str().unwrap().to_owned();
            assert!(
                error.message.contains(&format!("\"{limit}\""))
                    && error.message.contains("Retry after"),
                "the message names the limit and when to retry: {}",
                error.message
            );
            Answer::Limited {
                limit,
                retry_after_s: data["retry_after_s"].as_u64().expect("retry_after_s"),
            }
        }
        Err(other) => panic!("{tool}: {other}"),
    }
}

/// `n` concurrent calls of `tool`: how many were admitted, and the limits
/// (with their waits) that refused the others.
async fn spend(client: &Client, tool: &str, n: usize) -> (usize, Vec<(String, u64)>) {
    let answers = futures::future::join_all((0..n).map(|_| answer(client, tool))).await;
    let mut admitted = 0;
    let mut refused = Vec::new();
    for a in answers {
        match a {
            Answer::Ok => admitted += 1,
            Answer::Limited {
                limit,
                retry_after_s,
            } => refused.push((limit, retry_after_s)),
        }
    }
    (admitted, refused)
}

/// The value of the `/metrics` line that starts with `series`.
async fn metric(base: &str, series: &str) -> f64 {
    metric_lines(base, &[series])
        .await
        .split(',')
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `/metrics` until `series` reaches `at_least` (20 s at most).
async fn wait_for_metric(base: &str, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = metric(base, series).await;
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stayed at {value} (wanted {at_least})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn limits_table(principal_burst: u64, tool_burst: u64, extra: &str) -> String {
    format!(
        "[limits]\n\
         principal = {{ rate = 1, per = \"1h\", burst = {principal_burst} }}\n\
         principal_tool = {{ rate = 1, per = \"1h\", burst = {tool_burst} }}\n\
         client_app = {{ rate = 100000, per = \"1m\", burst = 100000 }}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_get_the_burst_then_a_retry_after_and_every_refusal_is_recorded() {
    let issuer = Issuer::start().await;
    let upstreams = format!("{}{}", demo_stdio("demo", "x"), limits_table(25, 10, ""));
    let warden = InProcess::start_with_identity("", &issuer.identity_toml(), &upstreams);
    let (alice, _) = connect_as(&warden.url(), Some(&issuer.token("alice"))).await;

    // 40 at once: exactly the tool's burst of 10 run.
    let (admitted, refused) = spend(&alice, "echo", 40).await;
    assert_eq!(admitted, 10, "{refused:?}");
    assert_eq!(refused.len(), 30);
    for (limit, retry_after_s) in &refused {
        assert_eq!(limit, "principal_tool");
        assert!(
            (1..=3600).contains(retry_after_s),
            "one token an hour: {retry_after_s}"
        );
    }

    // Other tools are not limited by echo's bucket; the principal's
    // bucket (25) counts them all.
    let (admitted, refused) = spend(&alice, "add", 10).await;
    assert_eq!((admitted, refused.len()), (10, 0), "{refused:?}");
    let (admitted, refused) = spend(&alice, "whoami", 6).await;
    assert_eq!(admitted, 5, "{refused:?}");
    assert_eq!(refused[0].0, "principal");

    // Another principal is unaffected.
    let (bob, _) = connect_as(&warden.url(), Some(&issuer.token("bob"))).await;
    assert!(matches!(answer(&bob, "echo").await, Answer::Ok));

    // Every refusal is recorded: an intent without a decision, then an
    // outcome `rate_limited` naming the limit.
    let db = warden.db();
    // (Outcomes are written behind the answers: wait for all of them.)
    let outcomes = |all: &[Value], status: &str| {
        all.iter()
            .filter(|r| r["kind"] == "outcome" && r["status"] == status)
            .count()
    };
    let records = wait_for_records(&db, |all| {
        outcomes(all, "rate_limited") >= 31 && outcomes(all, "ok") >= 26
    })
    .await;
    let limited: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "outcome" && r["status"] == "rate_limited")
        .collect();
    assert_eq!(limited.len(), 31);
    for outcome in &limited {
        let error = outcome["error"].as_str().unwrap();
        assert!(error.contains("Rate limited by Warden"), "{error}");
        let intent = records
            .iter()
            .find(|r| r["kind"] == "intent" && r["call_id"] == outcome["call_id"])
            .expect("an intent for each limited call");
        assert!(intent.get("decision").is_none(), "{intent}");
        assert_eq!(intent["principal"]["oid"], outcome["principal"]["oid"]);
    }
    let echo_limited = limited.iter().filter(|r| r["tool"] == "echo").count();
    assert_eq!(echo_limited, 30);
    // Admitted calls ran and ended `ok`: 10 + 10 + 5 + Bob's 1.
    assert_eq!(outcomes(&records, "ok"), 26);

    // The records follow the published schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("schemas/audit-record.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for record in &records {
        assert!(validator.is_valid(record), "{record}");
    }

    // /metrics counts each refusal by limit, and the buckets tracked.
    let base = warden.base();
    assert_eq!(
        metric(&base, "warden_rate_limited_total{limit=\"principal_tool\"}").await,
        30.0
    );
    assert_eq!(
        metric(&base, "warden_rate_limited_total{limit=\"principal\"}").await,
        1.0
    );
    assert_eq!(
        metric(&base, "warden_rate_limited_total{limit=\"source_address\"}").await,
        0.0
    );
    // Alice's principal bucket, her three tools' and Bob's two (the
    // gauge is set by the sweep, every sync_interval).
    wait_for_metric(
        &base,
        "warden_rate_limit_buckets{limit=\"principal_tool\"}",
        4.0,
    )
    .await;
    assert_eq!(
        metric(&base, "warden_rate_limit_buckets{limit=\"principal\"}").await,
        2.0
    );
}

/// A client whose connections come from `source` (Linux routes all of
/// 127/8 to the loopback interface).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_address_gets_429_before_authentication_while_others_are_served() {
    let issuer = Issuer::start().await;
    let upstreams = format!(
        "{}[limits]\nsource_address = {{ rate = 1, per = \"1h\", burst = 10 }}\n",
        demo_stdio("demo", "x")
    );
    let warden = InProcess::start_with_identity("", &issuer.identity_toml(), &upstreams);
    let flooder = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for i in 0..40 {
        let mut request = flooder
            .post(warden.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
        // Half with a bad token, half with none.
        if i % 2 == 0 {
            request = request.bearer_auth("not-a-token");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=3600).contains(&retry_after), "{retry_after}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], RATE_LIMITED, "{body}");
            assert_eq!(
                body["error"]["data"],
                json!({"reason": "rate_limited", "limit": "source_address", "retry_after_s": retry_after})
            );
        }
        statuses.push(status);
    }
    assert!(
        statuses[..10].iter().all(|s| *s == 401),
        "the first 10 reach authentication: {statuses:?}"
    );
    assert!(
        statuses[10..].iter().all(|s| *s == 429),
        "the rest are refused before it: {statuses:?}"
    );

    // Another address is served: a whole session with a valid token.
    let (client, _) = connect_as(&warden.url(), Some(&issuer.token("carol"))).await;
    let echoed = call(&client, "echo", json!({"text": "served"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "served");

    // The 429s never reached authentication (only the 10 were refused
    // there), and are counted.
    let base = warden.base();
    let auth_failures: f64 = metric_lines(&base, &["warden_auth_failures_total"])
        .await
        .split(',')
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(auth_failures, 10.0);
    assert_eq!(
        metric(&base, "warden_rate_limited_total{limit=\"source_address\"}").await,
        30.0
    );
    // Logged, but not once per request.
    let logged = warden
        .log()
        .lines()
        .filter(|l| l.contains("over the source_address rate limit") && l.contains("127.0.0.2"))
        .count();
    assert!((1..30).contains(&logged), "logged {logged} times");
}

/// A replica on the shared store at `url`, with the first one's audit keys.
fn replica(
    issuer: &Issuer,
    url: &str,
    first: Option<&std::path::Path>,
    upstreams: &str,
) -> InProcess {
    let identity = issuer.identity_toml();
    let setup = Setup {
        server_extra: "",
        identity: &identity,
        upstreams,
        audit_extra: "",
        policy: None,
    };
    let dir = replicas::replica_dir(&setup, url, first);
    InProcess::launch_dir(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_a_principals_bucket_within_the_bound() {
    const BURST: usize = 10;
    const REPLICAS: usize = 2;
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let issuer = Issuer::start().await;
    // Risk scoring off: a burst of identical calls is not what is tested.
    let upstreams = format!(
        "[risk]\nenabled = false\n{}{}",
        demo_stdio("demo", "x"),
        limits_table(BURST as u64, 1000, "sync_interval = \"200ms\"\n")
    );
    let first = replica(&issuer, &url, None, &upstreams);
    let second = replica(&issuer, &url, Some(first.dir()), &upstreams);
    let bases = [first.base(), second.base()];
    // Each replica has read the others' totals once (what was admitted
    // before a replica started is not debited).
    for base in &bases {
        wait_for_metric(base, "warden_rate_limit_syncs_total", 1.0).await;
    }

    // Spent on one replica, then on the other: the second debited what the
    // first admitted and admits nothing more.
    let alice = issuer.token("alice");
    let (on_first, _) = connect_as(&first.url(), Some(&alice)).await;
    let (admitted, _) = spend(&on_first, "echo", BURST + 5).await;
    assert_eq!(admitted, BURST);
    wait_for_metric(
        &bases[1],
        "warden_rate_limit_debited_total{limit=\"principal\"}",
        BURST as f64,
    )
    .await;
    let (on_second, _) = connect_as(&second.url(), Some(&alice)).await;
    let (admitted, refused) = spend(&on_second, "echo", BURST).await;
    assert_eq!(admitted, 0, "{refused:?}");
    assert!(refused.iter().all(|(limit, _)| limit == "principal"));

    // Spent on both at once: the total stays within the bound,
    // burst + (N - 1) x (burst + 2 x rate x sync_interval), here 2 x burst
    // (a token an hour refills nothing in 400 ms).
    let bound = BURST + (REPLICAS - 1) * BURST;
    let bob = issuer.token("bob");
    let (bob_first, _) = connect_as(&first.url(), Some(&bob)).await;
    let (bob_second, _) = connect_as(&second.url(), Some(&bob)).await;
    let (a, b) = tokio::join!(
        spend(&bob_first, "echo", 2 * BURST),
        spend(&bob_second, "echo", 2 * BURST)
    );
    let admitted = a.0 + b.0;
    assert!(
        (BURST..=bound).contains(&admitted),
        "{admitted} admitted across the replicas (bound {bound})"
    );
    // Once each replica has debited what the other admitted (the second
    // had Alice's burst already), neither admits more.
    let series = "warden_rate_limit_debited_total{limit=\"principal\"}";
    wait_for_metric(&bases[0], series, b.0 as f64).await;
    wait_for_metric(&bases[1], series, (BURST + a.0) as f64).await;
    for client in [&bob_first, &bob_second] {
        let (more, refused) = spend(client, "echo", 5).await;
        assert_eq!(more, 0, "{refused:?}");
    }

    // The refusals are in the shared log.
    let reader =
        warden::store::Reader::open(warden::store::Location::Postgres(url.clone())).unwrap();
    let mut limited = 0;
    reader
        .for_each_record(0, |row| {
            let record: Value = serde_json::from_slice(&row.bytes).unwrap();
            if record["kind"] == "outcome" && record["status"] == "rate_limited" {
                limited += 1;
            }
            Ok(())
        })
        .unwrap();
    assert!(limited > 0);
    drop(reader);
    drop((first, second));
}
