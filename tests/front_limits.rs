//! The HTTP front holds against slow and hostile clients: half-sent
//! requests are cut off by the header-read timeout, a stalled body by the
//! idle timeout, floods by the connection caps, oversized heads get 431,
//! and real clients are served all the while.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connections the attacker opens (more than one address may hold).
const SLOWLORIS: usize = 300;

/// A connection from `source` that sends half a request head and stops.
async fn half_request(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .expect("connect");
    stream
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
        .await
        .expect("half a request");
    stream
}

/// Waits until the server closes `stream` (EOF or reset), reading and
/// discarding anything it sends first (a 408 or 431 page).
async fn closed_by_server(mut stream: TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    let closing = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), closing)
        .await
        .expect("the server closed the connection within 60 s");
    seen
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slowloris_is_cut_off_while_clients_are_served() {
    let warden = Warden::start("header_read_timeout = \"2s\"\n", &demo_stdio("demo", "x"));
    // The attacker comes from 127.0.0.2, real clients from 127.0.0.1.
    let mut attack = Vec::new();
    for _ in 0..SLOWLORIS {
        attack.push(half_request("127.0.0.2", warden.port).await);
    }
    // While the attack holds its connections: health and a real MCP call.
    let health = reqwest::get(format!("{}/healthz", warden.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let (client, _) = connect(&warden.url()).await;
    let echoed = call(&client, "echo", json!({"text": "served"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "served");
    // Every attacking connection is closed by the server.
    let closed = futures::future::join_all(attack.into_iter().map(closed_by_server)).await;
    assert_eq!(closed.len(), SLOWLORIS);
    let metrics = reqwest::get(format!("{}/metrics", warden.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let timed_out = metric(
        &metrics,
        "warden_http_connections_closed_total{reason=\"header_timeout\"}",
    );
    let refused = metric(
        &metrics,
        "warden_http_connections_refused_total{reason=\"address_limit\"}",
    );
    assert_eq!(
        timed_out + refused,
        SLOWLORIS as u64,
        "each attacking connection was cut off by the header timeout or refused at accept:\n{metrics}"
    );
    assert!(
        timed_out >= 256,
        "the default per-address cap (256) held that many: {timed_out}"
    );
    // The real client's session lived through it.
    let echoed = call(&client, "echo", json!({"text": "still served"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "still served");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_is_closed_by_the_idle_timeout() {
    let warden = Warden::start("idle_timeout = \"1s\"\n", &demo_stdio("demo", "x"));
    let mut stream = TcpStream::connect(("127.0.0.1", warden.port))
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"",
        )
        .await
        .unwrap();
    closed_by_server(stream).await;
    wait_for_metrics(
        &warden.base(),
        &["warden_http_connections_closed_total{reason=\"idle_timeout\"}"],
        "warden_http_connections_closed_total{reason=\"idle_timeout\"} 1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_headers_or_too_large_a_head_get_431() {
    let warden = Warden::start(
        "max_headers = 20\nmax_header_bytes = 8192\n",
        &demo_stdio("demo", "x"),
    );
    let many: String = (0..40).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let large = format!("X-Large: {}\r\n", "a".repeat(10_000));
    for extra in [many, large] {
        let mut stream = TcpStream::connect(("127.0.0.1", warden.port))
            .await
            .unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = String::from_utf8_lossy(&closed_by_server(stream).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // An ordinary request is fine.
    let health = reqwest::get(format!("{}/healthz", warden.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_are_closed_at_accept() {
    let warden = Warden::start(
        "max_connections = 8\nmax_connections_per_address = 4\n",
        &demo_stdio("demo", "x"),
    );
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(half_request("127.0.0.3", warden.port).await);
    }
    // The fifth from that address is closed at once, with nothing sent.
    let fifth = half_request("127.0.0.3", warden.port).await;
    assert!(closed_by_server(fifth).await.is_empty());
    // Other addresses still get in.
    let health = reqwest::get(format!("{}/healthz", warden.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    wait_for_metrics(
        &warden.base(),
        &["warden_http_connections_refused_total{reason=\"address_limit\"}"],
        "warden_http_connections_refused_total{reason=\"address_limit\"} 1",
    )
    .await;
    drop(held);
}
