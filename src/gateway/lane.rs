//! The fast lane of `/mcp`: a `tools/call` on an initialized HTTP session
//! is answered with one JSON body, without the SDK's session worker.
//!
//! Through the SDK a request crosses its session worker, the session's
//! service loop and a handler task, and its answer comes back the same
//! way as a server-sent event stream. A tool call needs none of that when
//! nothing but its answer can come back on its stream, so the lane runs
//! the session's own `call_tool` (the same pipeline, records and relay)
//! from the HTTP handler and answers `application/json`, which Streamable
//! HTTP lets a server answer any request with.
//!
//! A session's lane opens when the SDK answers its `initialize`, before
//! the client learns the session's id. A request takes the lane only when
//! all of these hold; anything else goes to the SDK unchanged, which
//! answers it as before:
//! - a `POST` with a session id the SDK still holds, whose client declared
//!   neither sampling, elicitation nor tasks (nothing an upstream could ask
//!   it on the call's stream);
//! - `Accept` naming both `application/json` and `text/event-stream`,
//!   `Content-Type: application/json`, and an `MCP-Protocol-Version`, if
//!   any, this front speaks;
//! - the body is one `tools/call` request without per-request protocol
//!   metadata, or the cancellation of a call on the lane.
//!
//! A call with a progress token is answered the same way unless the
//! upstream reports progress before it answers: then the lane answers
//! with a stream of its own, the progress (in the order the upstream sent
//! it) and then the answer, as the SDK would.
//!
//! A lane call runs on a task of its own, so a client that goes away does
//! not cut a call between its records. Since the SDK's worker sees no lane
//! traffic, the lane tells it the session is in use (an empty event) at
//! least four times per idle timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientNotification, ClientRequest, ErrorData, GetMeta,
    JsonRpcMessage, ProgressNotification, RequestId, RequestMetaObject, ServerJsonRpcMessage,
    ServerNotification, ServerResult,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::sync::{OnceCell, mpsc};
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use super::Gateway;
use super::auth::SESSION_HEADER;
use super::session::{Connected, Session, supported_versions};

/// No real request-wise channel has this id: closing it is an event that
/// changes nothing but the worker's idle clock.
const NO_CHANNEL: u64 = u64::MAX;

/// The open lanes, by session id.
pub struct Lanes {
    gateway: Arc<Gateway>,
    sessions: Arc<LocalSessionManager>,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    /// How often the SDK's worker is told a lane session is in use.
    touch_every: Duration,
    max_body_bytes: usize,
    /// Prune lanes of ended sessions when the map grows beyond this.
    prune_above: usize,
    epoch: Instant,
}

/// One session's lane.
struct Lane {
    state: Weak<OnceCell<Connected>>,
    /// The lane's calls in flight, to cancel on the client's word.
    calls: Mutex<HashMap<RequestId, CancellationToken>>,
    /// When the worker was last told (milliseconds since `epoch`).
    touched: AtomicU64,
}

impl Lane {
    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, CancellationToken>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lanes {
    pub fn new(gateway: Arc<Gateway>, sessions: Arc<LocalSessionManager>) -> Arc<Self> {
        let server = &gateway.config.server;
        // The SDK's worker ends a session after this long without news.
        let touch_every = server.session_idle_timeout / 4;
        let max_body_bytes = server.max_body_bytes;
        let prune_above = server.max_sessions.saturating_mul(2).max(16);
        Arc::new(Self {
            gateway,
            sessions,
            lanes: Mutex::new(HashMap::new()),
            touch_every,
            max_body_bytes,
            prune_above,
            epoch: Instant::now(),
        })
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Lane>>> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Opens the lane of session `id`, whose state is `state`, unless
    /// `server.fast_lane` is off.
    pub(super) fn open(&self, id: &str, state: Weak<OnceCell<Connected>>) {
        if !self.gateway.config.server.fast_lane {
            return;
        }
        let lane = Arc::new(Lane {
            state,
            calls: Mutex::new(HashMap::new()),
            touched: AtomicU64::new(self.now_ms()),
        });
        let mut lanes = self.lanes();
        lanes.insert(id.to_owned(), lane);
        if lanes.len() > self.prune_above {
            lanes.retain(|_, lane| lane.state.strong_count() > 0);
        }
    }

    /// The lane of session `id`, if it is open and the SDK still holds
    /// the session (telling its worker the session is in use when due).
    async fn lane(&self, id: &str) -> Option<Arc<Lane>> {
        let lane = self.lanes().get(id).cloned()?;
        let session = self.sessions.sessions.read().await.get(id).cloned();
        let Some(session) = session else {
            self.lanes().remove(id);
            return None;
        };
        let now = self.now_ms();
        let touched = lane.touched.load(Ordering::Relaxed);
        let every = u64::try_from(self.touch_every.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(touched) >= every
            && lane
                .touched
                .compare_exchange(touched, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // An error means the worker has ended; the call below then
            // fails as the session's state is gone.
            let _ = session.close_request_wise_channel(NO_CHANNEL).await;
        }
        Some(lane)
    }
}

/// Where `initialize` offers its session to the lane (see
/// [`Session`]'s `initialize`), for the lane to open it under the id the
/// SDK gives the session, before the client is answered.
#[derive(Clone, Default)]
pub(super) struct Opening(Arc<Mutex<Option<Weak<OnceCell<Connected>>>>>);

impl Opening {
    pub(super) fn offer(&self, state: Weak<OnceCell<Connected>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }

    fn take(&self) -> Option<Weak<OnceCell<Connected>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The `/mcp` middleware, between authentication and the body screen.
pub async fn serve(State(lanes): State<Arc<Lanes>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(id) = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return opening(&lanes, request, next).await;
    };
    if !plain(request.headers()) {
        return next.run(request).await;
    }
    let Some(lane) = lanes.lane(&id).await else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, lanes.max_body_bytes).await else {
        return super::jsonrpc::too_large(lanes.max_body_bytes);
    };
    let fallback = |parts, bytes| next.run(Request::from_parts(parts, Body::from(bytes)));
    let message = super::message::client_message(&bytes);
    match message {
        Some(JsonRpcMessage::Request(mut request)) => {
            // The SDK keeps a request's `_meta` beside its parameters.
            let meta = std::mem::take(request.request.get_meta_mut());
            match request.request {
                ClientRequest::CallToolRequest(call) if on_lane(&meta, &call.params) => {
                    // A lane outlives its session's state only while the SDK
                    // ends the session; the SDK answers then.
                    let Some(state) = lane.state.upgrade() else {
                        return fallback(parts, bytes).await;
                    };
                    let session = Session::on_lane(lanes.gateway.clone(), state);
                    call_tool(session, &lane, request.id, meta, call.params, parts).await
                }
                _ => fallback(parts, bytes).await,
            }
        }
        Some(JsonRpcMessage::Notification(notification)) => {
            if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
                && let Some(request_id) = &cancelled.params.request_id
                && let Some(ct) = lane.calls().get(request_id)
            {
                ct.cancel();
                return StatusCode::ACCEPTED.into_response();
            }
            fallback(parts, bytes).await
        }
        _ => fallback(parts, bytes).await,
    }
}

/// A `POST` without a session (an `initialize`): a session the SDK opens
/// on it, and `initialize` offers, gets its lane before the answer leaves.
async fn opening(lanes: &Lanes, mut request: Request, next: Next) -> Response {
    let opening = Opening::default();
    request.extensions_mut().insert(opening.clone());
    let response = next.run(request).await;
    let opened = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok());
    if let (Some(id), Some(state)) = (opened, opening.take()) {
        lanes.open(id, state);
    }
    response
}

/// How many progress notifications of one lane call may wait for its
/// client to read them before the upstream's are held back.
const PROGRESS_QUEUE: usize = 64;

/// The outcome of a lane call's task.
type Joined = Result<Result<CallToolResponse, ErrorData>, JoinError>;

/// Runs one lane call to its end and answers it: as one JSON-RPC message,
/// or, once the upstream reports progress the client asked for, as a
/// stream of that progress ending with the answer.
async fn call_tool(
    session: Session,
    lane: &Arc<Lane>,
    id: RequestId,
    meta: RequestMetaObject,
    params: CallToolRequestParams,
    parts: http::request::Parts,
) -> Response {
    let ct = CancellationToken::new();
    let progress_token = meta.get_progress_token();
    let Some(context) = session.lane_context(id.clone(), meta, ct.clone(), parts) else {
        let error = ErrorData::invalid_request("session is not initialized", None);
        return json(ServerJsonRpcMessage::error(error, Some(id)));
    };
    let (sink, mut progress) = mpsc::channel(PROGRESS_QUEUE);
    if let Some(token) = &progress_token {
        session.watch_progress(token.clone(), sink.clone()).await;
    }
    lane.calls().insert(id.clone(), ct);
    // On a task of its own: a client that goes away does not stop a call
    // between its intent and its outcome.
    let mut task = {
        let lane = lane.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = session.call_tool(params, context).await;
            if let Some(token) = &progress_token {
                session.unwatch_progress(token, &sink).await;
            }
            lane.calls().remove(&id);
            result
        })
    };
    // The upstream's progress is handed over before its answer is read,
    // so progress reported before the answer is queued by the time the
    // task ends.
    let first = tokio::select! {
        biased;
        Some(first) = progress.recv() => first,
        joined = &mut task => {
            // Ended: whatever progress it reported is queued already.
            let queued = drain(&mut progress);
            if queued.is_empty() {
                return json(answer(joined, id));
            }
            return event_stream(Body::from(ended(queued, joined, id)));
        }
    };
    let events = futures::stream::unfold(
        (Some(first), Some((progress, task, id))),
        |(first, rest)| async move {
            if let Some(first) = first {
                return Some((event(&notification(first)), (None, rest)));
            }
            let (mut progress, mut task, id) = rest?;
            tokio::select! {
                biased;
                Some(next) = progress.recv() => {
                    Some((event(&notification(next)), (None, Some((progress, task, id)))))
                }
                joined = &mut task => {
                    let queued = drain(&mut progress);
                    Some((ended(queued, joined, id), (None, None)))
                }
            }
        },
    )
    .map(Ok::<_, std::convert::Infallible>);
    event_stream(Body::from_stream(events))
}

/// The progress events still queued for a call that has ended.
fn drain(progress: &mut mpsc::Receiver<ProgressNotification>) -> Vec<u8> {
    let mut events = Vec::new();
    while let Ok(next) = progress.try_recv() {
        events.extend(event(&notification(next)));
    }
    events
}

/// The end of a call's event stream: its last progress, then its answer.
fn ended(mut queued: Vec<u8>, joined: Joined, id: RequestId) -> Vec<u8> {
    queued.extend(event(&answer(joined, id)));
    queued
}

fn event_stream(body: Body) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The JSON-RPC answer to call `id`, from its task's outcome.
fn answer(joined: Joined, id: RequestId) -> ServerJsonRpcMessage {
    match joined {
        Ok(Ok(response)) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
        Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
        Err(error) => {
            let error = ErrorData::internal_error(format!("the call's task failed: {error}"), None);
            ServerJsonRpcMessage::error(error, Some(id))
        }
    }
}

fn notification(progress: ProgressNotification) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::notification(ServerNotification::ProgressNotification(progress))
}

/// `message` as one server-sent event.
fn event(message: &ServerJsonRpcMessage) -> Vec<u8> {
    let data = serde_json::to_string(message).unwrap_or_else(|error| {
        let message = format!("a message could not be serialized: {error}");
        serde_json::json!({"jsonrpc": "2.0", "id": null,
                           "error": {"code": super::jsonrpc::INTERNAL_ERROR, "message": message}})
        .to_string()
    });
    format!("data: {data}\n\n").into_bytes()
}

fn json(message: ServerJsonRpcMessage) -> Response {
    match serde_json::to_vec(&message) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(error) => super::jsonrpc::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            super::jsonrpc::INTERNAL_ERROR,
            &format!("the answer could not be serialized: {error}"),
        ),
    }
}

/// Whether a call's parameters leave nothing to send back but its answer
/// and its progress: no per-request protocol metadata, no answers to an
/// earlier `input_required`.
fn on_lane(meta: &RequestMetaObject, params: &CallToolRequestParams) -> bool {
    let plain = |meta: &RequestMetaObject| {
        meta.keys()
            .all(|key| !key.starts_with("io.modelcontextprotocol/"))
    };
    plain(meta)
        && params.meta.as_ref().is_none_or(plain)
        && params.input_responses.is_none()
        && params.request_state.is_none()
}

/// Whether the headers are those of a plain MCP `POST` this front speaks:
/// both media types accepted (without weights), a JSON body, and a known
/// protocol version if one is named.
fn plain(headers: &HeaderMap) -> bool {
    let essence = |value: &str| -> Option<String> {
        let (essence, params) = value.split_once(';').unwrap_or((value, ""));
        (!params.contains("q=")).then(|| essence.trim().to_ascii_lowercase())
    };
    let mut json = false;
    let mut sse = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for range in value.split(',') {
            match essence(range).as_deref() {
                Some("application/json") => json = true,
                Some("text/event-stream") => sse = true,
                Some(_) => {}
                None => return false,
            }
        }
    }
    let content_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(essence)
        .is_some_and(|e| e == "application/json");
    let version_known = match headers.get("mcp-protocol-version") {
        None => true,
        Some(value) => value
            .to_str()
            .is_ok_and(|v| supported_versions().iter().any(|known| known.as_str() == v)),
    };
    json && sse && content_json && version_known && !headers.contains_key("last-event-id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[tokio::test]
    async fn an_ended_call_answers_after_the_progress_still_queued() {
        use rmcp::model::{
            CallToolResult, ContentBlock, NumberOrString, ProgressNotificationParam, ProgressToken,
        };
        let (sink, mut progress) = mpsc::channel(PROGRESS_QUEUE);
        let token = ProgressToken(NumberOrString::String("p-7".into()));
        for step in [1.0, 2.0] {
            let param = ProgressNotificationParam::new(token.clone(), step);
            sink.send(ProgressNotification::new(param)).await.unwrap();
        }
        let done = CallToolResult::success(vec![ContentBlock::text("done")]);
        let body = ended(
            drain(&mut progress),
            Ok(Ok(done.into())),
            RequestId::Number(7),
        );
        let body = String::from_utf8(body).unwrap();
        let events: Vec<serde_json::Value> = body
            .split_terminator("\n\n")
            .map(|event| {
                let data = event
                    .strip_prefix("data: ")
                    .expect("one data line per event");
                serde_json::from_str(data).unwrap()
            })
            .collect();
        assert_eq!(events.len(), 3, "{body}");
        for (event, step) in events.iter().zip([1.0, 2.0]) {
            assert_eq!(event["method"], "notifications/progress", "{body}");
            assert_eq!(event["params"]["progressToken"], "p-7");
            assert_eq!(event["params"]["progress"].as_f64(), Some(step));
        }
        assert_eq!(events[2]["id"], 7);
        assert_eq!(events[2]["result"]["content"][0]["text"], "done", "{body}");
        // Nothing queued: nothing before the answer.
        let failed = Err(ErrorData::internal_error("boom", None));
        let body = ended(drain(&mut progress), Ok(failed), RequestId::Number(8));
        let body = String::from_utf8(body).unwrap();
        assert!(
            body.starts_with("data: {") && body.ends_with("}\n\n"),
            "{body}"
        );
        assert_eq!(body.matches("data: ").count(), 1, "{body}");
        assert!(body.contains("\"boom\""), "{body}");
    }

    #[test]
    fn only_plain_posts_take_the_lane() {
        let accept = ("accept", "application/json, text/event-stream");
        let json = ("content-type", "application/json");
        assert!(plain(&headers(&[accept, json])));
        assert!(plain(&headers(&[
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
            ("content-type", "application/json; charset=utf-8"),
            ("mcp-protocol-version", "2025-06-18"),
        ])));
        // One media type only, weights, another body, an unknown version,
        // a resumption: the SDK answers.
        assert!(!plain(&headers(&[("accept", "application/json"), json])));
        assert!(!plain(&headers(&[
            ("accept", "application/json;q=0, text/event-stream"),
            json
        ])));
        assert!(!plain(&headers(&[accept, ("content-type", "text/plain")])));
        assert!(!plain(&headers(&[accept])));
        assert!(!plain(&headers(&[
            accept,
            json,
            ("mcp-protocol-version", "1999-01-01")
        ])));
        assert!(!plain(&headers(&[accept, json, ("last-event-id", "3")])));
    }

    /// Whether a `tools/call` with `params` (as the client sends them)
    /// takes the lane, read the way the lane reads it.
    fn takes_lane(params: serde_json::Value) -> bool {
        let message = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params
        });
        let bytes = serde_json::to_vec(&message).unwrap();
        let Some(JsonRpcMessage::Request(mut request)) =
            super::super::message::client_message(&bytes)
        else {
            panic!("not a request");
        };
        let meta = std::mem::take(request.request.get_meta_mut());
        let ClientRequest::CallToolRequest(call) = request.request else {
            panic!("not a call");
        };
        on_lane(&meta, &call.params)
    }

    #[test]
    fn only_calls_with_nothing_but_an_answer_take_the_lane() {
        use serde_json::json;
        assert!(takes_lane(json!({"name": "echo"})));
        assert!(takes_lane(
            json!({"name": "echo", "arguments": {"a": 1}, "_meta": {"trace": "x"}})
        ));
        assert!(takes_lane(
            json!({"name": "echo", "_meta": {"progressToken": 7}})
        ));
        assert!(!takes_lane(json!({
            "name": "echo",
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
        })));
        assert!(!takes_lane(json!({"name": "echo", "requestState": "s"})));
    }
}
