//! What a call's response stream carries, seen on the wire by a plain HTTP
//! client that never opens the standalone GET stream: every progress
//! notification before the result and in order, the upstream's requests
//! (elicitation, sampling, roots) on the call's own stream, and an error,
//! never a hang, when the upstream does not answer.

mod common;

use common::raw::Raw;
use common::*;
use serde_json::{Value, json};

/// Answers the sample upstream's requests as a user and a model would.
fn answer(request: &Value) -> Value {
    match request["method"].as_str() {
        Some("elicitation/create") => json!({"action": "accept", "content": {"name": "Ada"}}),
        Some("sampling/createMessage") => json!({
            "role": "assistant",
            "content": {"type": "text", "text": "42"},
            "model": "raw-model"
        }),
        Some("roots/list") => json!({"roots": [{"uri": "file:///work"}]}),
        other => panic!("unexpected request {other:?}"),
    }
}

fn result_text(message: &Value) -> String {
    message["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result in {message}"))
        .to_owned()
}

/// Warden with the sample upstream over stdio, or over HTTP (with the
/// upstream process, kept alive by the caller).
fn warden_with(kind: &str, upstream_extra: &str) -> (InProcess, Option<KillOnDrop>) {
    match kind {
        "stdio" => (
            InProcess::start(
                "",
                &format!("{}{upstream_extra}\n", demo_stdio("demo", kind)),
            ),
            None,
        ),
        _ => {
            let (child, port) = demo_http(kind);
            let upstream = format!(
                "[upstreams.demo]\nurl = \"http://127.0.0.1:{port}/mcp\"\n{upstream_extra}\n"
            );
            (InProcess::start("", &upstream), Some(KillOnDrop(child)))
        }
    }
}

const KINDS: [&str; 2] = ["stdio", "http"];

/// Calls per upstream kind, spread over this many concurrent sessions.
const CALLS: u64 = 400;
const SESSIONS: u64 = 8;
const STEPS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_progress_notification_precedes_the_result_in_order() {
    for kind in KINDS {
        let (warden, _upstream) = warden_with(kind, "");
        let url = warden.url();
        let sessions = (0..SESSIONS).map(|s| {
            let url = url.clone();
            tokio::spawn(async move {
                let raw = Raw::open(&url).await;
                let mut failures = Vec::new();
                for n in 0..CALLS / SESSIONS {
                    let id = 1 + n;
                    let token = format!("p-{s}-{n}");
                    let seen = raw
                        .call(
                            id,
                            "progress",
                            json!({"steps": STEPS, "delay_ms": 0}),
                            Some(&token),
                            answer,
                        )
                        .await;
                    let steps: Vec<f64> = seen
                        .iter()
                        .filter(|m| m["method"] == "notifications/progress")
                        .filter(|m| m["params"]["progressToken"] == token.as_str())
                        .filter_map(|m| m["params"]["progress"].as_f64())
                        .collect();
                    let last = seen.last().cloned().unwrap_or_default();
                    let want: Vec<f64> = (1..=STEPS).map(|s| s as f64).collect();
                    if steps != want || last["id"] != id || result_text(&last) != "done 5" {
                        failures.push(format!("{token}: {seen:?}"));
                    }
                }
                failures
            })
        });
        let mut failures = Vec::new();
        for session in futures::future::join_all(sessions).await {
            failures.extend(session.expect("session task"));
        }
        assert!(
            failures.is_empty(),
            "{kind} upstream: {} of {CALLS} calls lost or reordered progress, e.g. {}",
            failures.len(),
            failures[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_requests_ride_the_calls_own_stream() {
    for kind in KINDS {
        let (warden, _upstream) = warden_with(kind, "");
        let raw = Raw::open(&warden.url()).await;
        for (id, tool, arguments, method, expected) in [
            (
                1,
                "elicit_name",
                json!({}),
                "elicitation/create",
                "hello Ada",
            ),
            (
                2,
                "sample",
                json!({"prompt": "meaning of life?"}),
                "sampling/createMessage",
                "model said: 42",
            ),
            (3, "list_roots", json!({}), "roots/list", "file:///work"),
        ] {
            let seen = raw.call(id, tool, arguments, None, answer).await;
            assert!(
                seen.iter().any(|m| m["method"] == method),
                "{kind}: {tool}: the {method} request was not on the call's stream: {seen:?}"
            );
            let last = seen.last().expect("messages");
            assert_eq!(last["id"], id, "{kind}: {tool}: {seen:?}");
            assert_eq!(result_text(last), expected, "{kind}: {tool}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_upstream_never_answers_ends_with_a_timeout() {
    for kind in KINDS {
        let (warden, _upstream) = warden_with(kind, "timeout = \"1s\"");
        let raw = Raw::open(&warden.url()).await;
        let seen = raw.call(7, "hang", json!({}), None, answer).await;
        let last = seen.last().expect("an answer");
        assert_eq!(last["id"], 7, "{kind}: {seen:?}");
        let error = &last["error"];
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("upstream 'demo' did not answer tools/call within 1s"),
            "{kind}: {error}"
        );
        assert_eq!(error["data"]["reason"], "timeout", "{kind}: {error}");
        assert_eq!(error["data"]["upstream"], "demo", "{kind}: {error}");
        let records =
            wait_for_records(&warden.db(), |r| r.iter().any(|r| r["kind"] == "outcome")).await;
        let outcome = records
            .iter()
            .find(|r| r["kind"] == "outcome")
            .expect("an outcome record");
        assert_eq!(outcome["status"], "timeout", "{kind}: {outcome}");
        assert_eq!(outcome["tool"], "hang", "{kind}: {outcome}");
        // The session goes on: the next call is answered.
        let seen = raw
            .call(8, "echo", json!({"text": "still here"}), None, answer)
            .await;
        assert_eq!(result_text(seen.last().unwrap()), "still here", "{kind}");
    }
}

/// An HTTP upstream that answers everything but drops the response stream
/// of every `tools/call` without an answer (and without event ids, so
/// there is nothing to resume).
async fn forgetful_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    async fn mcp(body: axum::Json<Value>) -> Response {
        let message = body.0;
        let id = message["id"].clone();
        let json = |result: Value| {
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::HeaderName::from_static("mcp-session-id"),
                        "forgetful-1",
                    ),
                ],
                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            )
                .into_response()
        };
        match message["method"].as_str() {
            Some("initialize") => json(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "forgetful", "version": "1"}
            })),
            Some("tools/list") => json(json!({"tools": [{
                "name": "work",
                "inputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }]})),
            Some("tools/call") => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                ": accepted, then forgotten\n\n",
            )
                .into_response(),
            Some(_) if id.is_null() => StatusCode::ACCEPTED.into_response(),
            Some(_) => json(json!({})),
            None => StatusCode::ACCEPTED.into_response(),
        }
    }
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(mcp).get(|| async { StatusCode::METHOD_NOT_ALLOWED }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_the_upstream_loses_ends_with_an_error() {
    let (url, _server) = forgetful_upstream().await;
    let warden = InProcess::start(
        "",
        &format!("[upstreams.forgetful]\nurl = {url:?}\ntimeout = \"2s\"\n"),
    );
    let raw = Raw::open(&warden.url()).await;
    let seen = raw.call(3, "work", json!({}), None, answer).await;
    let last = seen.last().expect("an answer");
    assert_eq!(last["id"], 3, "{seen:?}");
    let message = last["error"]["message"].as_str().unwrap_or_default();
    let cause = "upstream 'forgetful' lost its answer to tools/call";
    assert!(message.contains(cause), "{last}");
    let records =
        wait_for_records(&warden.db(), |r| r.iter().any(|r| r["kind"] == "outcome")).await;
    let outcome = records.iter().find(|r| r["kind"] == "outcome").unwrap();
    assert_eq!(outcome["status"], "error", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap_or_default()
            .contains(cause),
        "{outcome}"
    );
    // The session and its upstream connection go on.
    let again = raw
        .post(&json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}))
        .await;
    let listed = messages(&again.text().await.unwrap());
    let tools = &listed.last().expect("a tools/list answer")["result"]["tools"];
    assert_eq!(tools[0]["name"], "work", "{listed:?}");
}

/// An HTTP upstream whose response streams end without an answer but
/// with event ids, and whose resumption (GET with `Last-Event-ID`) never
/// replays it.
async fn unreplaying_upstream() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Response};
    async fn post(body: axum::Json<Value>) -> Response {
        let message = body.0;
        let id = message["id"].clone();
        let json = |result: Value| {
            (
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::HeaderName::from_static("mcp-session-id"),
                        "unreplaying-1",
                    ),
                ],
                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            )
                .into_response()
        };
        match message["method"].as_str() {
            Some("initialize") => json(json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "unreplaying", "version": "1"}
            })),
            Some("tools/list") => json(json!({"tools": [{
                "name": "work",
                "inputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": true, "openWorldHint": false}
            }]})),
            Some("tools/call") => (
                [(header::CONTENT_TYPE, "text/event-stream")],
                "id: call-1\nretry: 100\ndata: \n\n",
            )
                .into_response(),
            Some(_) if id.is_null() => StatusCode::ACCEPTED.into_response(),
            Some(_) => json(json!({})),
            None => StatusCode::ACCEPTED.into_response(),
        }
    }
    // Resumption gets an open stream that never carries anything.
    async fn get() -> Response {
        let never = futures::stream::pending::<Result<String, std::io::Error>>();
        (
            [(header::CONTENT_TYPE, "text/event-stream")],
            axum::body::Body::from_stream(never),
        )
            .into_response()
    }
    let app = axum::Router::new().route("/mcp", axum::routing::post(post).get(get));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_never_replayed_ends_with_a_timeout() {
    let (url, _server) = unreplaying_upstream().await;
    let warden = InProcess::start(
        "",
        &format!("[upstreams.unreplaying]\nurl = {url:?}\ntimeout = \"2s\"\n"),
    );
    let raw = Raw::open(&warden.url()).await;
    let seen = raw.call(3, "work", json!({}), None, answer).await;
    let last = seen.last().expect("an answer");
    assert_eq!(last["id"], 3, "{seen:?}");
    let error = &last["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("upstream 'unreplaying' did not answer tools/call within 2s"),
        "{error}"
    );
    let records =
        wait_for_records(&warden.db(), |r| r.iter().any(|r| r["kind"] == "outcome")).await;
    let outcome = records.iter().find(|r| r["kind"] == "outcome").unwrap();
    assert_eq!(outcome["status"], "timeout", "{outcome}");
}

/// What a scripted HTTP upstream saw.
#[derive(Default)]
struct Seen {
    /// `initialize` requests, each answered with a session of its own.
    initializes: u64,
    /// The session id of each `tools/call` POST.
    calls_on: Vec<String>,
    /// The `Last-Event-ID` of each GET.
    resumed_from: Vec<Option<String>>,
    /// The last call's id and progress token.
    call: Option<(Value, Value)>,
}

type Shared = std::sync::Arc<std::sync::Mutex<Seen>>;

/// A scripted HTTP upstream with one tool, `work`. Each `initialize` opens
/// session `s-N`. When `forget_first` is set, anything but `initialize` on
/// a session older than the newest is refused with 404 (the upstream
/// forgot it).
/// A call's stream carries an event id and ends without the answer; a
/// GET resuming from that id replays a progress notification and then
/// the answer, `replayed`.
async fn scripted_upstream(forget_first: bool) -> (String, Shared) {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    async fn post(
        State((seen, forget_first)): State<(Shared, bool)>,
        headers: HeaderMap,
        body: axum::Json<Value>,
    ) -> Response {
        let message = body.0;
        let id = message["id"].clone();
        let session = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut seen = seen.lock().unwrap();
        let json = |session: String, result: Value| {
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (header::HeaderName::from_static("mcp-session-id"), session),
                ],
                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
            )
                .into_response()
        };
        let forgotten = forget_first && session != format!("s-{}", seen.initializes);
        if forgotten && message["method"] == "tools/call" {
            seen.calls_on.push(session.clone());
        }
        if forgotten && message["method"] != "initialize" {
            return StatusCode::NOT_FOUND.into_response();
        }
        match message["method"].as_str() {
            Some("initialize") => {
                seen.initializes += 1;
                let session = format!("s-{}", seen.initializes);
                json(
                    session,
                    json!({
                        "protocolVersion": "2025-11-25",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "scripted", "version": "1"}
                    }),
                )
            }
            Some("tools/list") => json(
                session,
                json!({"tools": [{
                    "name": "work",
                    "inputSchema": {"type": "object"},
                    "annotations": {"readOnlyHint": true, "openWorldHint": false}
                }]}),
            ),
            Some("tools/call") => {
                seen.calls_on.push(session.clone());
                let token = message["params"]["_meta"]["progressToken"].clone();
                seen.call = Some((id, token));
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    "id: e1\nretry: 50\ndata: \n\n",
                )
                    .into_response()
            }
            Some(_) if id.is_null() => StatusCode::ACCEPTED.into_response(),
            Some(_) => json(session, json!({})),
            None => StatusCode::ACCEPTED.into_response(),
        }
    }
    async fn get(State((seen, _)): State<(Shared, bool)>, headers: HeaderMap) -> Response {
        let from = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut seen = seen.lock().unwrap();
        seen.resumed_from.push(from.clone());
        match (from, seen.call.clone()) {
            (Some(from), Some((id, token))) if from == "e1" => {
                let progress = json!({
                    "jsonrpc": "2.0", "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": 1, "total": 1}
                });
                let answer = json!({
                    "jsonrpc": "2.0", "id": id,
                    "result": {"content": [{"type": "text", "text": "replayed"}]}
                });
                (
                    [(header::CONTENT_TYPE, "text/event-stream")],
                    format!("id: e2\ndata: {progress}\n\nid: e3\ndata: {answer}\n\n"),
                )
                    .into_response()
            }
            // The standalone stream is not offered.
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        }
    }
    let seen = Shared::default();
    let app = axum::Router::new()
        .route("/mcp", axum::routing::post(post).get(get))
        .with_state((seen.clone(), forget_first));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_stream_is_resumed_and_its_answer_and_progress_replayed() {
    let (url, seen) = scripted_upstream(false).await;
    let warden = InProcess::start(
        "",
        &format!("[upstreams.scripted]\nurl = {url:?}\ntimeout = \"10s\"\n"),
    );
    let raw = Raw::open(&warden.url()).await;
    let messages = raw.call(3, "work", json!({}), Some("mine"), answer).await;
    let last = messages.last().expect("an answer");
    assert_eq!(last["id"], 3, "{messages:?}");
    assert_eq!(result_text(last), "replayed", "{messages:?}");
    // The replayed progress reached the client with its own token, before
    // the answer.
    let progress: Vec<_> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 1, "{messages:?}");
    assert_eq!(progress[0]["params"]["progressToken"], "mine");
    let seen = seen.lock().unwrap();
    assert!(
        seen.resumed_from.contains(&Some("e1".to_owned())),
        "{:?}",
        seen.resumed_from
    );
    assert_eq!(seen.calls_on, ["s-1"]);
    // Posted by Warden itself (src/executor/post.rs), not by the SDK,
    // whose request ids are numbers.
    let (id, _) = seen.call.clone().expect("a call");
    assert!(
        id.as_str().is_some_and(|id| id.starts_with("warden-")),
        "{id}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_the_upstream_forgot_is_renewed_and_the_call_posted_again() {
    let (url, seen) = scripted_upstream(true).await;
    let warden = InProcess::start(
        "",
        &format!("[upstreams.scripted]\nurl = {url:?}\ntimeout = \"10s\"\n"),
    );
    let raw = Raw::open(&warden.url()).await;
    // The tool's annotations are learnt before the upstream forgets the
    // session, so the call is the first request to meet the 404.
    let listed = raw
        .post(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    assert!(listed.status().is_success());
    let _ = listed.text().await;
    seen.lock().unwrap().initializes += 1;
    let messages = raw.call(3, "work", json!({}), None, answer).await;
    let last = messages.last().expect("an answer");
    assert_eq!(result_text(last), "replayed", "{messages:?}");
    // The first POST went to the forgotten session and was refused; the
    // second, on the session the SDK opened again, was taken.
    let (calls_on, initializes) = {
        let seen = seen.lock().unwrap();
        (seen.calls_on.clone(), seen.initializes)
    };
    assert_eq!(calls_on, ["s-1", "s-3"], "initializes: {initializes}");
    let records =
        wait_for_records(&warden.db(), |r| r.iter().any(|r| r["kind"] == "outcome")).await;
    let outcomes: Vec<_> = records.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{records:?}");
    assert_eq!(outcomes[0]["status"], "ok", "{:?}", outcomes[0]);
}
