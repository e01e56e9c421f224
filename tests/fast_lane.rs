//! The fast lane of `/mcp` (`src/gateway/lane.rs`), seen on the wire: a
//! plain `tools/call` is answered with one JSON body and recorded like any
//! other; one whose upstream reports progress gets it on a stream, then
//! its answer; everything the lane does not take still gets the SDK's stream;
//! the client can cancel a lane call; a client that goes away leaves
//! complete records; a deleted or idle session is gone on the lane too,
//! and a session in use on the lane only is not idle.

mod common;

use std::time::Duration;

use common::raw::{HUNG, Raw};
use common::*;
use serde_json::{Value, json};

/// A client that declares nothing an upstream could ask it.
fn plain() -> Value {
    json!({})
}

fn call(id: u64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// POSTs `message` and returns the answer's media type and its messages.
async fn exchange(raw: &Raw, message: &Value) -> (String, Vec<Value>) {
    let response = tokio::time::timeout(HUNG, raw.post(message))
        .await
        .expect("an answer in time");
    assert_eq!(response.status(), 200, "{message}");
    let media = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = tokio::time::timeout(HUNG, response.text())
        .await
        .expect("the whole body in time")
        .expect("a body");
    (media, messages(&body))
}

fn text(message: &Value) -> &str {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result in {message}"))
}

/// The outcome record of the (one) call of `tool`, once it is written.
async fn outcome_of(warden: &InProcess, tool: &str) -> Value {
    let is_it = |r: &Value| r["kind"] == "outcome" && r["tool"] == tool;
    wait_for_records(&warden.db(), |r| r.iter().any(is_it))
        .await
        .into_iter()
        .find(is_it)
        .unwrap_or_else(|| panic!("no outcome of {tool} recorded"))
}

fn warden(server_extra: &str) -> InProcess {
    InProcess::start(server_extra, &demo_stdio("demo", "lane"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_call_gets_one_json_body_and_its_records() {
    let warden = warden("");
    let raw = Raw::open_with(&warden.url(), plain()).await;
    let (media, answer) = exchange(&raw, &call(1, "echo", json!({"text": "lane"}))).await;
    assert_eq!(media, "application/json");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["jsonrpc"], "2.0");
    assert_eq!(answer[0]["id"], 1);
    assert_eq!(text(&answer[0]), "lane");

    // An error is a JSON-RPC error under the call's id.
    let (media, answer) = exchange(&raw, &call(2, "nope", json!({}))).await;
    assert_eq!(media, "application/json");
    assert_eq!(answer[0]["id"], 2);
    assert_eq!(answer[0]["error"]["code"], -32602, "{answer:?}");

    // The call has its intent and its outcome, as every call does.
    let outcome = outcome_of(&warden, "echo").await;
    let intent = records(&warden.db())
        .into_iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "echo")
        .expect("an intent");
    assert_eq!(intent["call_id"], outcome["call_id"]);
    assert_eq!(outcome["status"], "ok", "{outcome}");
    assert_eq!(intent["session_id"], raw.session.as_str(), "{intent}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_with_a_progress_token_gets_its_progress_then_its_answer() {
    let warden = warden("");
    let raw = Raw::open_with(&warden.url(), plain()).await;
    let with_token = |id: u64, steps: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "progress", "arguments": {"steps": steps, "delay_ms": 20},
                          "_meta": {"progressToken": format!("p-{id}")}}})
    };
    // No progress reported: one JSON body, as for any lane call (the SDK
    // would have answered on a stream).
    let (media, answer) = exchange(&raw, &with_token(1, 0)).await;
    assert_eq!(media, "application/json");
    assert_eq!(text(&answer[0]), "done 0");

    // Progress reported: a stream of it, in order and under the client's
    // token, then the answer; twice at once, each on its own stream.
    let (two, three) = (with_token(2, 3), with_token(3, 5));
    let (first, second) = tokio::join!(exchange(&raw, &two), exchange(&raw, &three));
    for ((media, seen), (id, steps)) in [first, second].into_iter().zip([(2, 3), (3, 5)]) {
        assert!(media.starts_with("text/event-stream"), "{media}");
        assert_eq!(seen.len(), steps + 1, "{seen:?}");
        for (n, progress) in seen[..steps].iter().enumerate() {
            assert_eq!(progress["method"], "notifications/progress", "{seen:?}");
            assert_eq!(progress["params"]["progressToken"], format!("p-{id}"));
            let step = progress["params"]["progress"].as_f64();
            assert_eq!(step, Some(n as f64 + 1.0), "{seen:?}");
        }
        assert_eq!(seen[steps]["id"], id);
        assert_eq!(text(&seen[steps]), format!("done {steps}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_lane_does_not_take_gets_the_sdks_stream() {
    let warden = warden("");
    let url = warden.url();
    let raw = Raw::open_with(&url, plain()).await;

    // A client that declared sampling: every call keeps the stream an
    // upstream's request could ride.
    let sampling = Raw::open_with(&url, json!({"sampling": {}})).await;
    let (media, answer) = exchange(&sampling, &call(1, "echo", json!({"text": "x"}))).await;
    assert!(media.starts_with("text/event-stream"), "{media}");
    assert_eq!(text(answer.last().unwrap()), "x");

    // An Accept without JSON: the SDK refuses it, as before.
    let refused = raw
        .http
        .post(&raw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &raw.session)
        .json(&call(3, "echo", json!({"text": "x"})))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);

    // With the lane off, a plain call is answered on a stream.
    let off = self::warden("fast_lane = false");
    let raw = Raw::open_with(&off.url(), plain()).await;
    let (media, answer) = exchange(&raw, &call(1, "echo", json!({"text": "off"}))).await;
    assert!(media.starts_with("text/event-stream"), "{media}");
    assert_eq!(text(answer.last().unwrap()), "off");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_a_lane_session_is_named() {
    let warden = InProcess::start("max_body_bytes = 4096", &demo_stdio("demo", "lane"));
    let raw = Raw::open_with(&warden.url(), plain()).await;
    let send = |body: String| {
        raw.http
            .post(&raw.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-session-id", &raw.session)
            .body(body)
            .send()
    };
    let answer = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("a JSON error");
        (status, body["error"]["code"].clone(), body)
    };
    let (status, code, body) = answer(send("{nope".into()).await.unwrap()).await;
    assert_eq!((status, code), (400, json!(-32700)), "{body}");
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "echo", "arguments": {"text": "x".repeat(8192)}}});
    let (status, code, body) = answer(send(big.to_string()).await.unwrap()).await;
    assert_eq!((status, code), (413, json!(-32600)), "{body}");
    // A call without a tool name is not the lane's: the SDK names the
    // missing field.
    let nameless = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {}});
    let response = send(nameless.to_string()).await.unwrap();
    let body = response.text().await.unwrap();
    let error = messages(&body)
        .into_iter()
        .find(|m| m["id"] == 2)
        .unwrap_or_else(|| panic!("an answer to id 2: {body}"));
    assert!(error["error"]["code"].is_i64(), "{error}");
    // The session still serves.
    let (_, answer) = exchange(&raw, &call(3, "echo", json!({"text": "fine"}))).await;
    assert_eq!(text(&answer[0]), "fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_cancels_a_lane_call() {
    let warden = warden("");
    let raw = Raw::open_with(&warden.url(), plain()).await;
    let waiting = {
        let http = raw.http.clone();
        let (url, session) = (raw.url.clone(), raw.session.clone());
        tokio::spawn(async move {
            http.post(url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session)
                .json(&call(9, "wait_for_cancel", json!({})))
                .send()
                .await
                .expect("the call")
                .text()
                .await
                .expect("its answer")
        })
    };
    // The intent is durable before the upstream runs: once it is there,
    // the call is in flight.
    wait_for_records(&warden.db(), |r| {
        r.iter()
            .any(|r| r["kind"] == "intent" && r["tool"] == "wait_for_cancel")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 9, "reason": "changed my mind"}});
    let accepted = raw.post(&cancel).await;
    assert_eq!(accepted.status(), 202);
    let body = tokio::time::timeout(HUNG, waiting)
        .await
        .expect("the cancelled call ends")
        .expect("the call task");
    let answer = messages(&body);
    assert_eq!(answer[0]["id"], 9, "{body}");
    assert_eq!(answer[0]["error"]["code"], -32800, "{body}");
    // The upstream saw the cancellation.
    let (_, count) = exchange(&raw, &call(10, "cancellations", json!({}))).await;
    assert_eq!(text(&count[0]), "1");
    let outcome = outcome_of(&warden, "wait_for_cancel").await;
    assert_eq!(outcome["status"], "cancelled", "{outcome}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_leaves_complete_records() {
    let warden = warden("");
    let raw = Raw::open_with(&warden.url(), plain()).await;
    // The client gives up long before the call ends.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        raw.post(&call(1, "progress", json!({"steps": 4, "delay_ms": 300}))),
    )
    .await;
    if let Ok(answered) = gave_up {
        let answered = answered.text().await;
        panic!("the call ended before the client gave up: {answered:?}");
    }
    // The same with a progress token: the client reads the first progress
    // of the call's stream, then goes away.
    let response = raw
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": "progress", "arguments": {"steps": 4, "delay_ms": 300},
                                 "_meta": {"progressToken": "p-2"}}}))
        .await;
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(HUNG, futures::StreamExt::next(&mut stream))
        .await
        .expect("the first progress in time")
        .expect("a first chunk")
        .expect("a chunk");
    let first = messages(&String::from_utf8_lossy(&first));
    assert_eq!(first[0]["method"], "notifications/progress", "{first:?}");
    drop(stream);
    // Both outcomes are recorded although their client went away.
    let outcomes = |r: &[Value]| {
        r.iter()
            .filter(|r| r["kind"] == "outcome" && r["tool"] == "progress")
            .cloned()
            .collect::<Vec<_>>()
    };
    let records = wait_for_records(&warden.db(), |r| outcomes(r).len() == 2).await;
    for outcome in outcomes(&records) {
        assert_eq!(outcome["status"], "ok", "{outcome}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_gone_from_the_lane_once_deleted_or_idle() {
    let warden = warden("session_idle_timeout = \"2s\"");
    let raw = Raw::open_with(&warden.url(), plain()).await;
    // Calls on the lane alone keep the session for twice its idle timeout.
    for n in 0..10 {
        let (media, answer) = exchange(&raw, &call(n, "echo", json!({"text": "here"}))).await;
        assert_eq!(media, "application/json", "call {n}");
        assert_eq!(text(&answer[0]), "here", "call {n}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Left idle, it ends: the next call is told the session is gone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let gone = raw.post(&call(20, "echo", json!({"text": "late"}))).await;
    assert_eq!(gone.status(), 404);

    // A deleted session is gone at once.
    let raw = Raw::open_with(&warden.url(), plain()).await;
    let (_, answer) = exchange(&raw, &call(1, "echo", json!({"text": "before"}))).await;
    assert_eq!(text(&answer[0]), "before");
    let deleted = raw
        .http
        .delete(&raw.url)
        .header("mcp-session-id", &raw.session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let gone = raw.post(&call(2, "echo", json!({"text": "after"}))).await;
    assert_eq!(gone.status(), 404);
}
