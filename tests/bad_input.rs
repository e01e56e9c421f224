//! Malformed and hostile HTTP input gets the right status or JSON-RPC error,
//! and the gateway keeps serving everyone else.

mod common;

use common::*;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

fn post(
    warden: &InProcess,
    session: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new()
        .post(warden.url())
        .header(ACCEPT, ACCEPT_BOTH)
        .header(CONTENT_TYPE, "application/json")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request
}

/// Opens a session with raw HTTP and returns its id.
async fn open_session(warden: &InProcess) -> String {
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}
    });
    let response = post(warden, None, init.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert_eq!(
        messages(&body)[0]["result"]["serverInfo"]["name"],
        "demo-upstream"
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = post(warden, Some(&session), initialized.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    session
}

#[tokio::test]
async fn malformed_requests_get_clear_errors_and_others_keep_working() {
    let warden = InProcess::start("max_body_bytes = 65536", &demo_stdio("demo", "x"));
    let (good, _) = connect(&warden.url()).await;
    let session = open_session(&warden).await;

    // Malformed JSON.
    let response = post(
        &warden,
        Some(&session),
        "{\"jsonrpc\": \"2.0\", \"id\": 2, ",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400, "malformed JSON");
    let body = response.text().await.unwrap();
    assert!(
        body.contains("-32700") || body.to_lowercase().contains("parse"),
        "{body}"
    );

    // JSON-RPC batches were removed from MCP in 2025-06-18.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 3, "method": "ping"},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"}
    ]);
    let response = post(&warden, Some(&session), batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "batch");

    // Unknown method: relayed to the upstream, which answers method-not-found.
    let unknown = json!({"jsonrpc": "2.0", "id": 5, "method": "no/such/method", "params": {}});
    let response = post(&warden, Some(&session), unknown.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    let message = messages(&body);
    assert_eq!(message[0]["error"]["code"], -32601, "{status} {body}");

    // Missing session id on a non-initialize request.
    let list = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"});
    let response = post(&warden, None, list.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 400, "missing session id");

    // Unknown session id.
    let response = post(&warden, Some("no-such-session"), list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "unknown session id");

    // Oversized body.
    let big = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"text": "x".repeat(200_000)}}});
    let response = post(&warden, Some(&session), big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413, "oversized body");

    // Wrong Host header (DNS rebinding).
    let response = post(&warden, Some(&session), list.to_string())
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "wrong host");

    // A browser Origin that is not allowed.
    let response = post(&warden, Some(&session), list.to_string())
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "foreign origin");

    // A page of another port on the same host is another origin.
    let response = post(&warden, Some(&session), list.to_string())
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "another port's origin");

    // A same-origin page (a local client's UI) is accepted by default.
    let response = post(&warden, Some(&session), list.to_string())
        .header("origin", format!("http://127.0.0.1:{}", warden.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "same origin");

    // Unsupported media type.
    let response = reqwest::Client::new()
        .post(warden.url())
        .header(ACCEPT, ACCEPT_BOTH)
        .header(CONTENT_TYPE, "text/plain")
        .header("mcp-session-id", &session)
        .body(list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415, "content type");

    // The session that sent garbage still works, and so does everyone else.
    let response = post(&warden, Some(&session), list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(messages(&body)[0]["result"]["tools"].is_array(), "{body}");
    let echoed = call(&good, "echo", json!({"text": "still here"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "still here");

    // DELETE ends the session; it is then unknown.
    let response = reqwest::Client::new()
        .delete(warden.url())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let response = post(&warden, Some(&session), list.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "deleted session");
}

#[tokio::test]
async fn health_ready_and_metrics_endpoints() {
    let warden = InProcess::start("", &demo_stdio("demo", "x"));
    let health = reqwest::get(format!("{}/healthz", warden.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(format!("{}/readyz", warden.base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["upstreams"]["demo"]["ready"], true);

    let (client, _) = connect(&warden.url()).await;
    call(&client, "echo", json!({"text": "x"})).await.unwrap();
    let _ = call(&client, "fail", json!({})).await;
    let metrics = reqwest::get(format!("{}/metrics", warden.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"warden_mcp_requests_total{method="tools/call",outcome="ok"} 1"#,
        r#"warden_mcp_requests_total{method="tools/call",outcome="error"} 1"#,
        r#"warden_mcp_requests_total{method="initialize",outcome="ok"} 1"#,
        "warden_mcp_request_duration_seconds_count{method=\"tools/call\"} 2",
        "warden_sessions 1",
        "warden_upstream_children 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}
