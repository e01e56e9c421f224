//! Three Warden replicas on one PostgreSQL store (`[store] url`), each in
//! this process on its own port with its own demo upstream, sharing the
//! audit keys, the policies and the JIT approvals. The developer's call is
//! privileged (held for approval); requests are made, approved and used
//! through different replicas, and a single-use grant raced by all three
//! runs exactly once. The shared log verifies. A delete burst spread over
//! the replicas is held where it would be on one.

mod common;

use common::gate::{baseline_copy, shadow_policy};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::audit::KeyFiles;
use warden::store::postgres::ScratchSchema;

const CATALOG: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/runCommand/action"
class = "privileged"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const DEVELOPER_PRIVILEGED: &str = r#"
@id("test-developer-privileged")
permit (principal in AppRole::"Developer", action in Action::"privileged", resource)
when { resource has resource_group && resource.resource_group like "dev-*" };
"#;

/// How the replicas of a test are set up.
struct Options {
    catalog: &'static str,
    /// `[risk]` of every replica.
    risk: &'static str,
    /// Policies replica `i` enforces besides the baseline.
    extra: fn(usize) -> &'static str,
    /// Baseline policies recorded, not enforced (by id).
    shadowed: &'static [&'static str],
}

impl Default for Options {
    /// The privileged catalog, and risk scoring off: the race's repeated
    /// privileged calls would otherwise be scored critical.
    fn default() -> Self {
        Options {
            catalog: CATALOG,
            risk: "[risk]\nenabled = false\n",
            extra: |_| "",
            shadowed: &[],
        }
    }
}

struct Replicas {
    issuer: Issuer,
    replicas: Vec<InProcess>,
    calls: std::path::PathBuf,
    schema: ScratchSchema,
    _scratch: tempfile::TempDir,
}

impl Replicas {
    async fn start(n: usize) -> Replicas {
        let schema = ScratchSchema::create(&replicas::postgres_admin())
            .expect("PostgreSQL at 127.0.0.1:5432");
        let url = schema.url();
        Self::start_with(n, schema, &url, Options::default()).await
    }

    /// `n` replicas whose store URL is `url` (the schema's, or one through
    /// a forwarder), set up as `options` say.
    async fn start_with(n: usize, schema: ScratchSchema, url: &str, options: Options) -> Replicas {
        let Options {
            catalog: catalog_toml,
            risk,
            extra,
            shadowed,
        } = options;
        let issuer = Issuer::start().await;
        let scratch = tempfile::tempdir().unwrap();
        let catalog = scratch.path().join("catalog");
        std::fs::create_dir(&catalog).unwrap();
        std::fs::write(catalog.join("demo.toml"), catalog_toml).unwrap();
        let calls = scratch.path().join("calls.log");
        let upstreams = format!(
            "{risk}[catalog]\ndir = {catalog:?}\n[upstreams.demo]\ncommand = {:?}\n\
             env = {{ DEMO_CALL_LOG = {calls:?} }}\n",
            example("demo_upstream").display().to_string()
        );
        let identity = issuer.identity_toml();
        let mut replicas: Vec<InProcess> = Vec::new();
        for i in 0..n {
            let policies = baseline_copy(
                &scratch.path().join(format!("replica-{i}")),
                Some(&format!("{DEVELOPER_PRIVILEGED}{}", extra(i))),
            );
            for id in shadowed {
                shadow_policy(&policies, id);
            }
            let policy = format!("dir = {policies:?}\n");
            let setup = Setup {
                server_extra: "",
                identity: &identity,
                upstreams: &upstreams,
                audit_extra: "",
                policy: Some(&policy),
            };
            // One log: every replica signs with the first one's keys.
            let first = replicas.first().map(|r| r.dir.path());
            let dir = replicas::replica_dir(&setup, url, first);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            replicas.push(InProcess::launch_dir(listener, dir));
        }
        Replicas {
            issuer,
            replicas,
            calls,
            schema,
            _scratch: scratch,
        }
    }

    fn token(&self, user: &str, roles: &[&str]) -> String {
        self.issuer.mint(&warden::identity::dev::TokenOptions {
            user: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa: true,
            ..Default::default()
        })
    }

    async fn client(&self, replica: usize, token: &str) -> Client {
        connect_as(&self.replicas[replica].url(), Some(token))
            .await
            .0
    }

    /// `GET /admin/api/{path}` on `replica`: status and body.
    async fn get(&self, replica: usize, token: &str, path: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/admin/api/{path}",
                self.replicas[replica].base()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /admin/api/requests/{id}/approve` on `replica`.
    async fn approve(&self, replica: usize, token: &str, id: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/admin/api/requests/{id}/approve",
                self.replicas[replica].base()
            ))
            .bearer_auth(token)
            .json(&json!({ "reason": "ticket OPS-7" }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stops every replica; the schema and a copy of the log's public key
    /// outlive them.
    fn stop(self) -> Stopped {
        let keep = tempfile::tempdir().unwrap();
        let key = keep.path().join("audit.pub");
        std::fs::copy(
            KeyFiles::in_dir(self.replicas[0].dir.path()).public_key,
            &key,
        )
        .unwrap();
        drop(self.replicas);
        Stopped {
            schema: self.schema,
            key,
            _keep: keep,
        }
    }

    fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// What is left of stopped replicas: their store and the key to verify it.
struct Stopped {
    schema: ScratchSchema,
    key: std::path::PathBuf,
    _keep: tempfile::TempDir,
}

fn args(text: &str) -> Value {
    json!({
        "text": text,
        "subscription": "00000000-0000-4000-8000-000000000001",
        "resource-group": "dev-web",
        "vm": "web-01",
    })
}

#[tokio::test]
async fn a_request_made_approved_and_used_on_three_replicas_and_a_raced_grant_runs_once() {
    let r = Replicas::start(3).await;
    let developer = r.token("dave", &["Developer"]);
    let manager = r.token("sam", &["SecurityManager"]);
    let on: Vec<Client> = futures::future::join_all((0..3).map(|i| r.client(i, &developer))).await;

    // Made through A, approved through B, used through C.
    let held = call(&on[0], "echo", args("one")).await.unwrap();
    let message = text(&held);
    assert!(message.starts_with("Held for approval"), "{message}");
    let id = request_id(&message);
    // Every replica shows it at once (before their periodic sweep), in the
    // API and in the list.
    for replica in [1, 2] {
        let (status, shown) = r.get(replica, &manager, &format!("requests/{id}")).await;
        assert_eq!(status, 200, "{shown}");
        assert_eq!(shown["status"], "pending", "{shown}");
        let (_, listed) = r.get(replica, &manager, "requests").await;
        assert!(
            listed["requests"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q["id"] == id.as_str()),
            "{listed}"
        );
    }
    let (status, approved) = r.approve(1, &manager, &id).await;
    assert_eq!(status, 200, "{approved}");
    let ran = call(&on[2], "echo", args("one")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));
    assert_eq!(r.received(), ["one"]);
    // Used: A holds the same call again, as a new request.
    let again = call(&on[0], "echo", args("one")).await.unwrap();
    let second = request_id(&text(&again));
    assert_ne!(second, id);
    assert_eq!(r.received(), ["one"]);

    // A single-use grant raced by the three replicas runs exactly once,
    // round after round.
    for round in 0..8 {
        let text_of_round = format!("race-{round}");
        let held = call(&on[round % 3], "echo", args(&text_of_round))
            .await
            .unwrap();
        let id = request_id(&text(&held));
        let (status, approved) = r.approve((round + 1) % 3, &manager, &id).await;
        assert_eq!(status, 200, "{approved}");
        let results = futures::future::join_all(
            on.iter()
                .map(|client| call(client, "echo", args(&text_of_round))),
        )
        .await;
        let ran = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| r.is_error != Some(true)))
            .count();
        assert_eq!(ran, 1, "round {round}: {results:?}");
        let executed = r
            .received()
            .iter()
            .filter(|line| **line == text_of_round)
            .count();
        assert_eq!(executed, 1, "round {round}: {:?}", r.received());
    }
    drop(on);

    // The shared log verifies, with every replica's records.
    let Stopped { schema, key, _keep } = r.stop();
    let (_, report) = replicas::verify_db(&schema.url(), &key);
    assert_eq!(report["ok"], true, "{report:#}");
}

/// A TCP forwarder to the local PostgreSQL, which the test can cut (every
/// connection dropped, the port closed) and restore on the same port: the
/// database going away and coming back, as Warden sees it.
struct Forwarder {
    port: u16,
    stop: tokio_util::sync::CancellationToken,
}

impl Forwarder {
    async fn start(port: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut inbound, _)) = accepted else {
                    continue;
                };
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    else {
                        return;
                    };
                    tokio::select! {
                        () = stopped.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Forwarder { port, stop }
    }

    fn cut(&self) {
        self.stop.cancel();
    }
}

// Two workers: Warden starts synchronously (blocking one) while the
// forwarder, on this runtime, carries its first connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_closed_while_postgresql_is_away_and_recover_when_it_returns() {
    const READS: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let forwarder = Forwarder::start(0).await;
    let url = schema
        .url()
        .replace(":5432/", &format!(":{}/", forwarder.port));
    // Risk scoring on: its journal goes away and comes back too.
    let options = Options {
        catalog: READS,
        risk: "",
        ..Options::default()
    };
    let r = Replicas::start_with(1, schema, &url, options).await;
    let reader = r.token("rita", &["Reader"]);
    let client = r.client(0, &reader).await;
    let ran = call(&client, "echo", args("before")).await.unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text(&ran));

    // The database goes away: the call is refused with a clear error,
    // never forwarded, and /readyz says why.
    forwarder.cut();
    let refused = call(&client, "echo", args("during")).await;
    let error = format!("{refused:?}");
    assert!(refused.is_err(), "{error}");
    assert!(error.contains("audit_unavailable"), "{error}");
    assert!(error.contains("PostgreSQL"), "{error}");
    let ready = reqwest::get(format!("{}/readyz", r.replicas[0].base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["audit"]["ready"], false, "{body:#}");
    assert_eq!(r.received(), ["before"]);

    // It comes back: calls run again without a restart.
    let back = Forwarder::start(forwarder.port).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let attempt = call(&client, "echo", args("after")).await;
        if attempt.as_ref().is_ok_and(|a| a.is_error != Some(true)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never recovered: {attempt:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(r.received(), ["before", "after"]);
    let ready = reqwest::get(format!("{}/readyz", r.replicas[0].base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    drop(client);

    // The log verifies, and every call the upstream received has an intent
    // and an outcome; the refused one left none half-written.
    let Stopped { schema, key, _keep } = r.stop();
    drop(back);
    let store =
        warden::store::Reader::open(warden::store::Location::Postgres(schema.url())).unwrap();
    let mut calls = std::collections::HashMap::<String, Vec<String>>::new();
    store
        .for_each_record(0, |row| {
            let record: Value = serde_json::from_slice(&row.bytes).unwrap();
            if let Some(id) = record["call_id"].as_str() {
                calls
                    .entry(id.to_owned())
                    .or_default()
                    .push(record["kind"].as_str().unwrap_or_default().to_owned());
            }
            Ok(())
        })
        .unwrap();
    let complete = calls
        .values()
        .filter(|kinds| kinds.iter().any(|k| k == "intent") && kinds.iter().any(|k| k == "outcome"))
        .count();
    assert_eq!(complete, 2, "{calls:?}");
    // The risk journal has both calls that ran, learned as successes.
    let learned: Vec<Value> = store
        .risk_events_since(-1, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, event)| serde_json::from_slice(&event).unwrap())
        .collect();
    let succeeded = learned
        .iter()
        .filter(|e| e["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded, 2, "{learned:#?}");
    assert!(
        calls
            .values()
            .all(|kinds| kinds.iter().any(|k| k == "intent")),
        "{calls:?}"
    );
    let (_, report) = replicas::verify_db(&schema.url(), &key);
    assert_eq!(report["ok"], true, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_another_policy_set_says_so() {
    const STRICTER: &str = r#"
@id("test-stricter")
forbid (principal, action, resource) when { context has nothing };
"#;
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let options = Options {
        extra: |i| if i == 2 { STRICTER } else { "" },
        ..Options::default()
    };
    let r = Replicas::start_with(3, schema, &url, options).await;
    let ready = |i: usize| {
        let base = r.replicas[i].base();
        async move {
            reqwest::get(format!("{base}/readyz"))
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // Each replica announces itself every few seconds; wait until every
    // one has seen the other two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let reports = loop {
        let reports = futures::future::join_all((0..3).map(ready)).await;
        if reports.iter().all(|r| r["policy"]["replicas"] == 3) {
            break reports;
        }
        assert!(std::time::Instant::now() < deadline, "{reports:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let odd = reports[2]["policy"]["hash"].as_str().unwrap().to_owned();
    let usual = reports[0]["policy"]["hash"].as_str().unwrap().to_owned();
    assert_ne!(odd, usual);
    assert_eq!(reports[1]["policy"]["hash"], usual.as_str());
    for (i, report) in reports.iter().enumerate() {
        let policy = &report["policy"];
        assert_eq!(policy["agrees"], false, "{i}: {report:#}");
        let other = if i == 2 { &usual } else { &odd };
        assert!(
            policy["detail"].as_str().unwrap().contains(other.as_str()),
            "{i}: {report:#}"
        );
        // A difference is reported, not refused.
        assert_eq!(report["ready"], true, "{i}: {report:#}");
    }
    let metrics = reqwest::get(format!("{}/metrics", r.replicas[0].base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("warden_policy_set{{hash=\"{usual}\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains("warden_replica_policy_mismatches 1"),
        "{metrics}"
    );
}

/// `echo` deletes the VM its arguments name.
const DELETES: &str = r#"
[tools.echo]
op = "Microsoft.Compute/virtualMachines/delete"
class = "delete"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

/// Scoring on, with a `high` level a burst of deletes by a new principal
/// reaches within a few deletes (the baseline holds high risk for JIT).
const LOW_LEVELS: &str = "[risk]\nmedium = 20\nhigh = 25\ncritical = 90\n";

fn burst_options() -> Options {
    Options {
        catalog: DELETES,
        risk: LOW_LEVELS,
        // No Azure to look the VMs up in: the guardrail that holds deletes
        // of resources without facts would hold every one of them.
        shadowed: &["delete-without-facts-requires-jit"],
        ..Options::default()
    }
}

fn vm(name: &str) -> Value {
    json!({
        "text": name,
        "subscription": "00000000-0000-4000-8000-000000000001",
        "resource-group": "dev-web",
        "vm": name,
    })
}

/// Deletes VM after VM as carol, the `n`-th through `replica_of(n)`, until
/// one is held: its number (from 1), and the message.
async fn delete_until_held(r: &Replicas, replica_of: fn(usize) -> usize) -> (usize, String) {
    let carol = r.token("carol", &["Contributor"]);
    let mut clients = Vec::new();
    for i in 0..r.replicas.len() {
        clients.push(r.client(i, &carol).await);
    }
    for n in 1..=20 {
        let result = call(&clients[replica_of(n)], "echo", vm(&format!("vm-{n:02}")))
            .await
            .unwrap();
        if result.is_error == Some(true) {
            return (n, text(&result));
        }
    }
    panic!("twenty deletes in a row were never held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_burst_spread_over_three_replicas_is_held_where_one_would_hold_it_and_after_a_restart()
 {
    // On one replica, carol's burst is held at the k-th delete.
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let one = Replicas::start_with(1, schema, &url, burst_options()).await;
    let (k, _) = delete_until_held(&one, |_| 0).await;
    drop(one);
    assert!(
        k >= 3,
        "the burst is held at delete {k}: too early for spreading it to matter"
    );

    // Round-robin over three replicas, no replica sees more than a third
    // of it itself; the burst is still held at the k-th delete.
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let mut r = Replicas::start_with(3, schema, &url, burst_options()).await;
    let (held_at, message) = delete_until_held(&r, |n| n % 3).await;
    assert_eq!(held_at, k, "{message}");
    for part in [
        "Held for approval",
        "\"high-risk-requires-jit\"",
        "is pending",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let ran: Vec<String> = (1..k).map(|n| format!("vm-{n:02}")).collect();
    assert_eq!(
        r.received(),
        ran,
        "the held delete never reached the upstream"
    );
    // Two more through the other replicas: held too.
    let carol = r.token("carol", &["Contributor"]);
    for (i, name) in [(0, "vm-40"), (2, "vm-41")] {
        let client = r.client(i, &carol).await;
        let again = call(&client, "echo", vm(name)).await.unwrap();
        assert!(
            text(&again).contains("Held for approval"),
            "{}",
            text(&again)
        );
    }

    // Every replica stops; one starts again and remembers the burst: the
    // next delete, through it, is held at once.
    for replica in &mut r.replicas {
        replica.stop().unwrap();
    }
    r.replicas[1].restart();
    let carol = r.token("carol", &["Contributor"]);
    let client = r.client(1, &carol).await;
    let again = call(&client, "echo", vm("vm-50")).await.unwrap();
    assert_eq!(again.is_error, Some(true), "{}", text(&again));
    assert!(
        text(&again).contains("Held for approval"),
        "{}",
        text(&again)
    );
    assert_eq!(r.received(), ran);

    // Five high-risk calls through three replicas (one restarted), and one
    // risk alert per hour: the first replica to record it alerts.
    let store =
        warden::store::Reader::open(warden::store::Location::Postgres(url.clone())).unwrap();
    let mut alerts = Vec::new();
    store
        .records_of_kind("risk_alert", |bytes| {
            let record: Value = serde_json::from_slice(bytes).unwrap();
            alerts.push(record["ts"].as_str().unwrap()[..13].to_owned());
            Ok(())
        })
        .unwrap();
    assert!(!alerts.is_empty(), "the burst raised no alert");
    let hours: std::collections::BTreeSet<&String> = alerts.iter().collect();
    assert_eq!(
        hours.len(),
        alerts.len(),
        "more than one alert in an hour: {alerts:?}"
    );
}
