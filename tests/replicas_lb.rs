//! Three Warden processes on one PostgreSQL store behind a real load
//! balancer (Debian's HAProxy, which keeps each MCP session on its replica
//! by learning `Mcp-Session-Id` from responses), real MCP clients under
//! load, and one replica killed with SIGKILL mid-load.
//!
//! Afterwards: every call a client saw succeed has an intent and an
//! outcome; every call the upstream received has an intent; the dead
//! replica's interrupted calls were closed as `abandoned` by the others;
//! the shared log verifies; and the dead replica's clients carried on
//! after re-initializing through the balancer.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use warden::store::postgres::ScratchSchema;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HAProxy in front of `backends`, on its own port: round robin for new
/// sessions, then each session sticks to the replica that created it.
fn haproxy(dir: &std::path::Path, backends: &[u16]) -> (KillOnDrop, u16) {
    let port = free_port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("  server w{i} 127.0.0.1:{p} check\n"))
        .collect();
    let config = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n\
         \x20 option redispatch\n  retries 2\n\
         frontend mcp\n  bind 127.0.0.1:{port}\n  default_backend wardens\n\
         backend wardens\n  balance roundrobin\n\
         \x20 stick-table type string len 128 size 10k expire 30m\n\
         \x20 stick on req.hdr(mcp-session-id)\n\
         \x20 stick store-response res.hdr(mcp-session-id)\n\
         \x20 option httpchk GET /healthz\n  default-server inter 300ms fall 2 rise 2\n\
         {servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let child = std::process::Command::new(dep("WARDEN_TEST_HAPROXY"))
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy starts");
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// What one client did: the texts of the calls it saw succeed, and how
/// often it had to start a new session.
#[derive(Default, Debug)]
struct Worked {
    succeeded: Vec<String>,
    reinitialized: usize,
    after_kill: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_behind_haproxy_survive_a_kill_9_under_load() {
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let scratch = tempfile::tempdir().unwrap();
    let calls = scratch.path().join("calls.log");
    let upstreams = format!(
        "[upstreams.demo]\ncommand = {:?}\nenv = {{ DEMO_CALL_LOG = {calls:?} }}\n",
        example("demo_upstream").display().to_string()
    );
    let setup = Setup {
        server_extra: "",
        identity: "allow_anonymous = true",
        upstreams: &upstreams,
        audit_extra: "checkpoint_interval = \"300ms\"\n[audit.redaction.tools]\necho = [\"text\"]\n",
        policy: None,
    };
    let mut replicas: Vec<Warden> = Vec::new();
    for _ in 0..3 {
        let first = replicas.first().map(|r| r.dir.path());
        let dir = replicas::replica_dir(&setup, &schema.url(), first);
        replicas.push(Warden::launch_dir(dir));
    }
    let ports: Vec<u16> = replicas.iter().map(|w| w.port).collect();
    let (_haproxy, port) = haproxy(scratch.path(), &ports);
    let url = format!("http://127.0.0.1:{port}/mcp");

    // Load: eight clients through the balancer, each calling `echo` with
    // texts of its own; a failed call (its replica died) means a new
    // session, as the spec says a client does on 404.
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = tokio_util::sync::CancellationToken::new();
    let progress: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
        std::sync::Arc::new((0..8).map(|_| Default::default()).collect());
    let mut load = Vec::new();
    for worker in 0..8 {
        let (url, killed, stop, progress) =
            (url.clone(), killed.clone(), stop.clone(), progress.clone());
        load.push(tokio::spawn(async move {
            let mut worked = Worked::default();
            let mut client = connect(&url).await.0;
            for i in 0.. {
                if stop.is_cancelled() {
                    break;
                }
                let text = format!("w{worker}-{i}");
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    call(&client, "echo", json!({ "text": text })),
                )
                .await;
                match answer {
                    Ok(Ok(result)) if result.is_error != Some(true) => {
                        worked.succeeded.push(text);
                        if killed.load(std::sync::atomic::Ordering::SeqCst) {
                            worked.after_kill += 1;
                            progress[worker].fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    _ => {
                        worked.reinitialized += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        client = loop {
                            match tokio::time::timeout(Duration::from_secs(10), rmcp_connect(&url))
                                .await
                            {
                                Ok(Some(c)) => break c,
                                _ => tokio::time::sleep(Duration::from_millis(200)).await,
                            }
                        };
                    }
                }
            }
            worked
        }));
    }
    let received = || -> Vec<String> {
        std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while received().len() < 150 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replicas[1].kill();
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    // Until every client has made 20 calls since, on a new session if its
    // replica was the one killed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress
        .iter()
        .any(|p| p.load(std::sync::atomic::Ordering::SeqCst) < 20)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut worked = Vec::new();
    for worker in load {
        worked.push(worker.await.unwrap());
    }
    // Every client carried on after the kill, some after a new session.
    assert!(worked.iter().all(|w| w.after_kill > 0), "{worked:?}");
    assert!(worked.iter().any(|w| w.reinitialized > 0), "{worked:?}");

    // The survivors close the dead replica's interrupted calls.
    let reader =
        warden::store::Reader::open(warden::store::Location::Postgres(schema.url())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let by_call = loop {
        let mut by_call: HashMap<String, Vec<Value>> = HashMap::new();
        reader
            .for_each_record(0, |row| {
                let record: Value = serde_json::from_slice(&row.bytes).unwrap();
                if let Some(id) = record["call_id"].as_str() {
                    by_call.entry(id.to_owned()).or_default().push(record);
                }
                Ok(())
            })
            .unwrap();
        let open = by_call
            .values()
            .filter(|r| r.iter().all(|r| r["kind"] != "outcome"))
            .count();
        if open == 0 {
            break by_call;
        }
        assert!(Instant::now() < deadline, "{open} calls never closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let intents: HashMap<String, &Vec<Value>> = by_call
        .values()
        .filter_map(|records| {
            let intent = records.iter().find(|r| r["kind"] == "intent")?;
            Some((intent["arguments"]["text"].as_str()?.to_owned(), records))
        })
        .collect();
    // An outcome is written after the answer, so a call that succeeded on
    // the killed replica just before the kill may have only the outcome
    // the survivors gave it (`abandoned`); every other one says `ok`.
    let mut succeeded_then_abandoned = 0;
    for text in worked.iter().flat_map(|w| &w.succeeded) {
        let records = intents
            .get(text)
            .unwrap_or_else(|| panic!("{text} succeeded without an intent"));
        let outcomes: Vec<&Value> = records.iter().filter(|r| r["kind"] == "outcome").collect();
        assert_eq!(outcomes.len(), 1, "{text}: {records:?}");
        match outcomes[0]["status"].as_str() {
            Some("ok") => {}
            Some("abandoned") => succeeded_then_abandoned += 1,
            other => panic!("{text}: outcome {other:?}: {records:?}"),
        }
    }
    assert!(succeeded_then_abandoned <= 24, "{succeeded_then_abandoned}");
    let forwarded: HashSet<String> = received().into_iter().collect();
    for text in &forwarded {
        assert!(
            intents.contains_key(text),
            "{text} reached the upstream without an intent"
        );
    }
    let abandoned = by_call
        .values()
        .flatten()
        .filter(|r| r["status"] == "abandoned")
        .count();
    eprintln!(
        "{} calls forwarded, {} succeeded for clients ({succeeded_then_abandoned} of them \
         abandoned), {abandoned} abandoned, {} re-initializations",
        forwarded.len(),
        worked.iter().map(|w| w.succeeded.len()).sum::<usize>(),
        worked.iter().map(|w| w.reinitialized).sum::<usize>()
    );

    // The shared log verifies.
    let key = scratch.path().join("audit.pub");
    std::fs::copy(replicas[0].public_key(), &key).unwrap();
    for (i, replica) in replicas.iter_mut().enumerate() {
        if i != 1 {
            assert_eq!(replica.terminate().code(), Some(0), "{}", replica.log());
        }
    }
    let (_, report) = replicas::verify_db(&schema.url(), &key);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["open_intents"], json!([]), "{report:#}");
}

/// A new MCP session through the balancer, or `None` if it cannot be had
/// right now.
async fn rmcp_connect(url: &str) -> Option<Client> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    RecordingClient::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .ok()
}
