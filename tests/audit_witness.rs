//! Checkpoints published to witnesses over real HTTP: a write-once blob
//! store (`put`, as an Azure Blob container with a SAS token answers) and
//! a webhook, one that fails at first, one that holds a conflicting
//! checkpoint, and one that is not there.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use serde_json::Value;
use warden::audit::record::{Kind, Record};
use warden::audit::witness::WitnessConfig;
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen};
use warden::metrics::Metrics;
use warden::store::{Location, Reader};

const ORIGIN: &str = "warden.test/witness";

/// What the receiving end holds and saw.
#[derive(Default)]
struct Receiver {
    /// Blobs by name, written once.
    blobs: BTreeMap<String, Vec<u8>>,
    /// PUTs refused with 503 so far (the first of each name is).
    refused: BTreeMap<String, u32>,
    /// PUTs without the headers a write-once blob store needs.
    bad_puts: u32,
    hooks: Vec<Value>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn put_blob(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut r = shared.lock().unwrap();
    if query.get("sig").map(String::as_str) != Some("s3cret") {
        return StatusCode::FORBIDDEN;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("if-none-match") != Some("*") || header("x-ms-blob-type") != Some("BlockBlob") {
        r.bad_puts += 1;
        return StatusCode::BAD_REQUEST;
    }
    let refused = r.refused.entry(name.clone()).or_default();
    if *refused == 0 {
        *refused += 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if r.blobs.contains_key(&name) {
        return StatusCode::CONFLICT;
    }
    r.blobs.insert(name, body.to_vec());
    StatusCode::CREATED
}

async fn get_blob(
    State(shared): State<Shared>,
    Path(name): Path<String>,
) -> Result<Vec<u8>, StatusCode> {
    shared
        .lock()
        .unwrap()
        .blobs
        .get(&name)
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}

async fn hook(State(shared): State<Shared>, body: axum::Json<Value>) -> StatusCode {
    shared.lock().unwrap().hooks.push(body.0);
    StatusCode::NO_CONTENT
}

async fn serve(shared: Shared) -> SocketAddr {
    let app = Router::new()
        .route("/cps/{name}", put(put_blob).get(get_blob))
        .route("/hook", post(hook))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn witness(edit: impl FnOnce(&mut WitnessConfig)) -> WitnessConfig {
    let mut w = WitnessConfig::directory("unused");
    w.directory = None;
    w.first_backoff = Duration::from_millis(5);
    edit(&mut w);
    w
}

/// The counter `warden_audit_witness_<name>` for witness `n` (and result).
fn counter(metrics: &Metrics, name: &str, labels: &str) -> u64 {
    let text = metrics.render();
    let prefix = format!("warden_audit_witness_{name}_total{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_reach_put_and_webhook_witnesses_and_failures_are_counted() {
    let shared = Shared::default();
    let addr = serve(shared.clone()).await;
    // A checkpoint of size 1 (the log's first, `log_start`) is already
    // held with other bytes: a conflict the put witness must not overwrite.
    shared.lock().unwrap().blobs.insert(
        "00000000000000000001.checkpoint".into(),
        b"another view".to_vec(),
    );
    shared
        .lock()
        .unwrap()
        .refused
        .insert("00000000000000000001.checkpoint".into(), 1);
    // Nothing listens here.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);

    let tmp = tempfile::tempdir().unwrap();
    let files = KeyFiles::in_dir(tmp.path());
    keygen(ORIGIN, &files, true).unwrap();
    let mut config = AuditConfig::quiet(&files);
    config.witnesses = vec![
        witness(|w| w.put = Some(format!("http://{addr}/cps?sig=s3cret"))),
        witness(|w| w.webhook = Some(format!("http://{addr}/hook"))),
        witness(|w| {
            w.webhook = Some(format!("http://{gone_addr}/hook"));
            w.max_attempts = 2;
        }),
    ];
    for (i, w) in config.witnesses.iter().enumerate() {
        w.validate(i).unwrap();
    }
    let db = tmp.path().join("warden.db");
    let metrics = Metrics::new();
    let audit = Audit::open(&db, config, metrics.clone()).await.unwrap();
    for round in 0..3 {
        for _ in 0..4 {
            let mut r = Record::new(Kind::Heartbeat);
            r.details = Some(serde_json::json!({ "round": round }));
            audit.append(r).await.unwrap();
        }
        audit.checkpoint().await.unwrap();
    }
    // Closing signs the last checkpoint (none: nothing new) and waits for
    // the witnesses.
    audit.close().await;
    audit.join_writer();

    let stored: Vec<(u64, String)> = Reader::open(Location::Sqlite(db))
        .unwrap()
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|c| (c.size, c.note))
        .collect();
    let sizes: Vec<u64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(sizes, vec![1, 5, 9, 13], "the store's checkpoints");

    let r = shared.lock().unwrap();
    assert_eq!(r.bad_puts, 0);
    // The put witness holds every checkpoint but the conflicting one, as
    // signed, each after one refused attempt.
    for (size, note) in &stored {
        let name = format!("{size:020}.checkpoint");
        let held = r.blobs.get(&name).unwrap();
        if *size == 1 {
            assert_eq!(
                held, b"another view",
                "a held checkpoint is never overwritten"
            );
        } else {
            assert_eq!(held, note.as_bytes(), "size {size}");
        }
    }
    // The webhook received each one as JSON.
    let hooked: Vec<(u64, String)> = r
        .hooks
        .iter()
        .map(|h| {
            assert_eq!(h["origin"], ORIGIN);
            assert!(h["root"].as_str().is_some_and(|root| root.len() == 44));
            (
                h["size"].as_u64().unwrap(),
                h["checkpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(hooked, stored);
    drop(r);

    assert_eq!(
        counter(
            &metrics,
            "checkpoints",
            "witness=\"1\",result=\"published\""
        ),
        3
    );
    assert_eq!(
        counter(&metrics, "checkpoints", "witness=\"1\",result=\"failed\""),
        1
    );
    assert_eq!(counter(&metrics, "retries", "witness=\"1\""), 3);
    assert_eq!(
        counter(
            &metrics,
            "checkpoints",
            "witness=\"2\",result=\"published\""
        ),
        4
    );
    assert_eq!(
        counter(&metrics, "checkpoints", "witness=\"2\",result=\"failed\""),
        0
    );
    assert_eq!(
        counter(&metrics, "checkpoints", "witness=\"3\",result=\"failed\""),
        4
    );
    assert_eq!(counter(&metrics, "retries", "witness=\"3\""), 4);
    assert_eq!(
        counter(&metrics, "checkpoints", "witness=\"3\",result=\"dropped\""),
        0
    );
}
