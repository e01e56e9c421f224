//! An access review campaign on two Warden replicas sharing one
//! PostgreSQL store: a campaign started through one replica is decided
//! through the other, and when its deadline passes both replicas' checks
//! (every 100 ms) and reads through both race to apply it; the guarded
//! appends let exactly one of each record through: one `auto_removed` per
//! undecided item and one `campaign_closed`, which both replicas show.

mod common;

use std::time::Duration;

use common::gate::baseline_copy;
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use warden::store::postgres::ScratchSchema;
use warden::store::{Location, Reader};

const CATALOG: &str = r#"
[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

fn read_vm() -> Value {
    json!({"a": 1, "b": 2, "subscription": "00000000-0000-4000-8000-000000000001",
           "resource-group": "prod-web", "vm": "web-01"})
}

/// Every `access_review` record of the store, in order.
fn reviews(url: &str) -> Vec<Value> {
    let reader = Reader::open(Location::Postgres(url.to_owned())).unwrap();
    let mut out = Vec::new();
    reader
        .records_of_kind("access_review", |bytes| {
            out.push(serde_json::from_slice(bytes).unwrap());
            Ok(())
        })
        .unwrap();
    out
}

async fn api(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}/admin/api/{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_applied_once_by_racing_replicas() {
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let issuer = Issuer::start().await;
    let scratch = tempfile::tempdir().unwrap();
    let catalog = scratch.path().join("catalog");
    std::fs::create_dir(&catalog).unwrap();
    std::fs::write(catalog.join("demo.toml"), CATALOG).unwrap();
    let upstreams = format!(
        "[risk]\nenabled = false\n[review]\ncheck_interval = \"100ms\"\n\
         [catalog]\ndir = {catalog:?}\n[upstreams.demo]\ncommand = {:?}\n",
        example("demo_upstream").display().to_string()
    );
    let identity = issuer.identity_toml();
    let mut replicas: Vec<InProcess> = Vec::new();
    for i in 0..2 {
        let policies = baseline_copy(&scratch.path().join(format!("replica-{i}")), None);
        let policy = format!("dir = {policies:?}\n");
        let setup = Setup {
            server_extra: "",
            identity: &identity,
            upstreams: &upstreams,
            audit_extra: "",
            policy: Some(&policy),
        };
        let first = replicas.first().map(|r| r.dir.path());
        let dir = replicas::replica_dir(&setup, &url, first);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        replicas.push(InProcess::launch_dir(listener, dir));
    }
    let token = |user: &str, roles: &[&str]| {
        issuer.mint(&warden::identity::dev::TokenOptions {
            user: user.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa: true,
            ..Default::default()
        })
    };

    // Three readers read, one through each replica and one more.
    for (i, user) in ["bob", "carol", "dave"].iter().enumerate() {
        let client = connect_as(&replicas[i % 2].url(), Some(&token(user, &["Reader"])))
            .await
            .0;
        let result = call(&client, "add", read_vm()).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{}", text(&result));
        client.cancel().await.unwrap();
    }

    // Started through replica 0, decided through replica 1.
    let grace = token("grace", &["SecurityManager"]);
    let rita = token("rita", &["SecurityManager"]);
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(4);
    let (status, campaign) = api(
        &replicas[0].base(),
        &grace,
        reqwest::Method::POST,
        "campaigns",
        Some(json!({"roles": ["Reader"], "deadline": deadline.to_rfc3339(), "auto_remove_undecided": true})),
    )
    .await;
    assert_eq!(status, 201, "{campaign}");
    let id = campaign["id"].as_str().unwrap().to_owned();
    let names: Vec<&str> = campaign["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["principal"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bob", "carol", "dave"]);
    let (status, body) = api(
        &replicas[1].base(),
        &rita,
        reqwest::Method::POST,
        &format!("campaigns/{id}/items/1/decide"),
        Some(json!({"decision": "keep", "reason": "bob is on call"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // At the deadline, both replicas' checks race, and so do reads
    // through both.
    let wait = (deadline - chrono::Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let (base0, base1) = (replicas[0].base(), replicas[1].base());
    let path = format!("campaigns/{id}");
    let (a, b) = tokio::join!(
        api(&base0, &rita, reqwest::Method::GET, &path, None),
        api(&base1, &grace, reqwest::Method::GET, &path, None),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    for campaign in [&a.1, &b.1] {
        assert!(campaign["closed"].is_object(), "{campaign:#}");
        assert_eq!(campaign["closed"]["counts"]["auto_removed"], 2);
    }
    assert_eq!(
        a.1["closed"], b.1["closed"],
        "both replicas show the same close"
    );
    // A few more checks of both replicas go by: nothing more is recorded.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events: Vec<(String, String)> = reviews(&url)
        .iter()
        .map(|r| {
            (
                r["details"]["event"].as_str().unwrap().to_owned(),
                r["details"]["item"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("campaign_started", ""),
        ("decided", "1"),
        ("auto_removed", "2"),
        ("auto_removed", "3"),
        ("campaign_closed", ""),
    ]
    .iter()
    .map(|(e, i)| ((*e).to_owned(), (*i).to_owned()))
    .collect();
    assert_eq!(events, expected);
    let (status, answer) = api(
        &base1,
        &rita,
        reqwest::Method::GET,
        &format!("{path}/proposal"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["ok"], true, "{answer:#}");
    for replica in &mut replicas {
        replica.stop().unwrap();
    }
}
