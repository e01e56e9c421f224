//! The SIEM feed of replicas sharing one PostgreSQL store: both run the
//! same sink, one ships at a time (the sink's cursor row names it), and
//! when it stops the other takes over from the cursor, so the receiver
//! gets every record of the shared log once, in order.

mod common;
#[path = "common/siem.rs"]
mod siem_support;

use common::*;
use serde_json::json;
use siem_support::*;
use warden::store::postgres::ScratchSchema;
use warden::store::{Location, Reader};

/// The shared log's sequence numbers.
fn stored(url: &str) -> Vec<u64> {
    let reader = Reader::open(Location::Postgres(url.to_owned())).unwrap();
    let mut seqs = Vec::new();
    reader
        .for_each_record(0, |row| {
            seqs.push(row.seq as u64);
            Ok(())
        })
        .unwrap();
    seqs
}

/// The last sequence number the sink's cursor row holds.
fn cursor(url: &str) -> Option<i64> {
    let reader = Reader::open(Location::Postgres(url.to_owned())).unwrap();
    let row = reader
        .state_entry(warden::siem::feed::NS, "ocsf", chrono::Utc::now())
        .unwrap()?;
    let cursor: warden::siem::feed::Cursor = serde_json::from_slice(&row).unwrap();
    Some(cursor.last)
}

/// How many outcomes the shared log holds.
fn outcomes(url: &str) -> usize {
    let reader = Reader::open(Location::Postgres(url.to_owned())).unwrap();
    let mut count = 0;
    reader
        .records_of_kind("outcome", |_| {
            count += 1;
            Ok(())
        })
        .unwrap();
    count
}

/// `n` echo calls through `replica`, each answered and its outcome stored.
async fn echo_calls(replica: &InProcess, url: &str, n: usize) {
    let before = outcomes(url);
    let (client, _) = connect(&replica.url()).await;
    for i in 0..n {
        let result = call(&client, "echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap();
        assert_ne!(result.is_error, Some(true), "{}", text(&result));
    }
    let _ = client.cancel().await;
    poll("the calls' outcomes", || {
        (outcomes(url) >= before + n).then_some(())
    })
    .await;
}

/// The feed's lines of the replicas' logs.
fn feed_logs(replicas: &[InProcess]) -> String {
    replicas
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.log()
                .lines()
                .filter(|l| l.contains("siem"))
                .map(|l| format!("replica {i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the receiver has every stored record; their sequence
/// numbers as shipped.
async fn everything(receiver: &Receiver, url: &str, replicas: &[InProcess]) -> Vec<u64> {
    let stored = stored(url);
    let last = *stored.last().unwrap();
    let shipped = poll("every record at the receiver", || {
        let seqs = ocsf_seqs(&receiver.events());
        seqs.contains(&Some(last)).then_some(seqs)
    })
    .await;
    let shipped: Vec<u64> = shipped.into_iter().map(Option::unwrap).collect();
    let expected: Vec<u64> = (0..shipped.len() as u64).collect();
    assert_eq!(
        shipped,
        expected,
        "shipped out of order or twice\n{}",
        feed_logs(replicas)
    );
    assert_eq!(shipped[..stored.len()], *stored);
    shipped
}

/// What replica `replica` shipped.
async fn shipped_by(replica: &InProcess) -> f64 {
    wait_for_metric(
        &replica.base(),
        "warden_siem_shipped_records_total{sink=\"ocsf\"}",
        |_| true,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ship_a_sink_one_at_a_time_and_take_over_from_the_cursor() {
    let schema =
        ScratchSchema::create(&replicas::postgres_admin()).expect("PostgreSQL at 127.0.0.1:5432");
    let url = schema.url();
    let receiver = Receiver::start(Mode::Take, None).await;
    let upstreams = format!(
        "{}[siem]\npoll_interval = \"50ms\"\nfirst_backoff = \"100ms\"\n\
         [[siem.sink]]\nkind = \"ocsf\"\nurl = {:?}\n",
        demo_stdio("demo", "siem"),
        receiver.url
    );
    let setup = Setup {
        server_extra: "",
        identity: "allow_anonymous = true",
        upstreams: &upstreams,
        audit_extra: "heartbeat_interval = \"1h\"\n",
        policy: None,
    };
    let mut replicas: Vec<InProcess> = Vec::new();
    for _ in 0..2 {
        let first = replicas.first().map(|r| r.dir.path());
        let dir = replicas::replica_dir(&setup, &url, first);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        replicas.push(InProcess::launch_dir(listener, dir));
    }
    echo_calls(&replicas[0], &url, 2).await;
    echo_calls(&replicas[1], &url, 2).await;
    let shipped = everything(&receiver, &url, &replicas).await;
    // One replica shipped it all; the other waited.
    let by: Vec<f64> = vec![
        shipped_by(&replicas[0]).await,
        shipped_by(&replicas[1]).await,
    ];
    assert!(
        by.contains(&0.0) && by.iter().sum::<f64>() >= shipped.len() as f64,
        "shipped by each replica: {by:?}\n{}",
        feed_logs(&replicas)
    );
    let holder = if by[0] > 0.0 { 0 } else { 1 };
    let other = 1 - holder;
    // Once its cursor is saved, the shipping replica stops; the other
    // takes the sink over from the cursor.
    let last = *shipped.last().unwrap() as i64;
    poll("the cursor saved", || {
        (cursor(&url) >= Some(last)).then_some(())
    })
    .await;
    replicas[holder].stop().unwrap();
    echo_calls(&replicas[other], &url, 2).await;
    let after = everything(&receiver, &url, &replicas).await;
    assert!(after.len() > shipped.len());
    assert!(shipped_by(&replicas[other]).await > 0.0);
    assert!(
        replicas[other].log().contains("siem: taking the sink over"),
        "{}",
        replicas[other].log()
    );
}
