//! Upstreams that crash, exit or are unreachable; session caps and idle
//! timeouts. Clients always get an answer, never a hang.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Long enough that only a hang would exceed it; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(10);

#[tokio::test]
async fn upstream_crash_mid_call_is_an_error_and_the_next_session_works() {
    let warden = InProcess::start("", &demo_stdio("demo", "x"));
    let (client, _) = connect(&warden.url()).await;
    let first_pid = text(&call(&client, "whoami", json!({})).await.unwrap());
    let crashed = tokio::time::timeout(HANG_GUARD, call(&client, "crash", json!({})))
        .await
        .expect("no hang on crash");
    let error = crashed.expect_err("a crashed upstream is an error");
    let message = error.to_string();
    assert!(message.contains("upstream 'demo'"), "{message}");
    // The same session now reports the dead upstream at once.
    let again = tokio::time::timeout(HANG_GUARD, call(&client, "echo", json!({"text": "x"})))
        .await
        .expect("no hang after crash");
    assert!(again.is_err());

    let (fresh, _) = connect(&warden.url()).await;
    let second_pid = text(&call(&fresh, "whoami", json!({})).await.unwrap());
    assert_ne!(first_pid, second_pid, "a new session gets a new child");
}

#[tokio::test]
async fn upstream_killed_from_outside_during_a_call() {
    let warden = InProcess::start("", &demo_stdio("demo", "x"));
    let (client, _) = connect(&warden.url()).await;
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    let pid: u32 = who
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("pid in {who:?}"));
    let pending = tokio::spawn(async move {
        let result = call(&client, "wait_for_cancel", json!({})).await;
        (client, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (_client, result) = tokio::time::timeout(HANG_GUARD, pending)
        .await
        .expect("no hang when the child is killed")
        .unwrap();
    let error = result.expect_err("killed upstream is an error");
    assert!(error.to_string().contains("upstream 'demo'"), "{error}");
}

#[tokio::test]
async fn unreachable_remote_upstream_is_a_clear_error_and_not_ready() {
    let dead = free_port();
    let warden = InProcess::start(
        "upstream_init_timeout = \"3s\"",
        &format!("[upstreams.remote]\nurl = \"http://127.0.0.1:{dead}/mcp\"\n"),
    );
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(warden.url());
    let outcome = tokio::time::timeout(
        HANG_GUARD,
        rmcp::ServiceExt::serve(RecordingClient::default(), transport),
    )
    .await
    .expect("initialize answers");
    let error = outcome.err().expect("initialize fails").to_string();
    assert!(error.contains("upstream 'remote'"), "{error}");

    let ready = reqwest::get(format!("{}/readyz", warden.base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["upstreams"]["remote"]["ready"], false);
    assert!(
        report["upstreams"]["remote"]["detail"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
}

#[tokio::test]
async fn upstream_that_cannot_start_is_named() {
    let warden = InProcess::start(
        "",
        "[upstreams.ghost]\ncommand = \"/nonexistent/warden-ghost\"\n",
    );
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(warden.url());
    let outcome = rmcp::ServiceExt::serve(RecordingClient::default(), transport).await;
    let error = outcome.err().expect("initialize fails").to_string();
    assert!(
        error.contains("upstream 'ghost' could not be started"),
        "{error}"
    );
    let ready = reqwest::get(format!("{}/readyz", warden.base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn session_cap_refuses_with_a_clear_error() {
    let warden = InProcess::start("max_sessions = 1", &demo_stdio("demo", "x"));
    let (first, _) = connect(&warden.url()).await;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(warden.url());
    let second = rmcp::ServiceExt::serve(RecordingClient::default(), transport).await;
    let error = second.err().expect("second session refused").to_string();
    assert!(error.contains("session limit reached"), "{error}");
    // The first session is unaffected; closing it frees the slot.
    call(&first, "echo", json!({"text": "x"})).await.unwrap();
    drop(first.cancel().await);
    let mut reopened = None;
    for _ in 0..100 {
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(warden.url());
        if let Ok(client) = rmcp::ServiceExt::serve(RecordingClient::default(), transport).await {
            reopened = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reopened = reopened.expect("slot freed after the first session closed");
    call(&reopened, "echo", json!({"text": "x"})).await.unwrap();
}

#[tokio::test]
async fn idle_sessions_are_closed_and_their_children_stopped() {
    let warden = InProcess::start("session_idle_timeout = \"1s\"", &demo_stdio("demo", "x"));
    let (client, _) = connect(&warden.url()).await;
    call(&client, "echo", json!({"text": "x"})).await.unwrap();
    wait_for_metrics(
        &warden.base(),
        &["warden_upstream_children ", "warden_sessions "],
        "warden_sessions 0,warden_upstream_children 0",
    )
    .await;
}

#[tokio::test]
async fn remote_upstream_dying_mid_call_is_an_error_not_a_hang() {
    let (mut upstream, port) = demo_http("dies");
    let warden = InProcess::start(
        "",
        &format!("[upstreams.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"),
    );
    let (client, _) = connect(&warden.url()).await;
    let pending = tokio::spawn(async move { call(&client, "wait_for_cancel", json!({})).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    upstream.kill().unwrap();
    upstream.wait().unwrap();
    let result = tokio::time::timeout(Duration::from_secs(25), pending)
        .await
        .expect("no hang when a remote upstream dies mid-call")
        .unwrap();
    let error = result.expect_err("a dead remote upstream is an error");
    assert!(error.to_string().contains("upstream 'remote'"), "{error}");
}
