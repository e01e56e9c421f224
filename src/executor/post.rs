//! A `tools/call` on a Streamable HTTP upstream, posted by the task that
//! makes the call.
//!
//! Through the SDK's client a request crosses the connection's service
//! loop, the transport's worker and a task of its own per POST, and its
//! answer comes back the same way: several hand-offs between tasks, each a
//! thread wake-up, on every call. Here the calling task posts the call
//! itself, on the session the SDK opened (its session id and protocol
//! header, as the SDK last sent them, recorded by [`Recording`]), with the
//! SDK's own HTTP functions (the same headers, content-type checks and
//! size limits), and reads the answer itself. What else arrives on the
//! call's stream is handled as the SDK would:
//! - notifications go to the [`Downstream`] in the order they came, each
//!   before the answer;
//! - the upstream's requests (elicitation, sampling, roots) go to the
//!   downstream marked as arriving on this call's stream, each on a task
//!   of its own, and their answers are posted back; the upstream's
//!   cancellation of one cancels it; a ping is answered at once;
//! - a stream that ends without the answer is resumed with `Last-Event-ID`
//!   when it carried event ids (after the upstream's `retry`, or one second
//!   doubling), else the answer is lost;
//! - a session the upstream no longer knows (404) is renewed through the
//!   SDK, which re-initializes it where the upstream's configuration allows,
//!   and the call is posted once more on the new session; the upstream did
//!   not take the first POST.
//!
//! Waiting, cancellation and timeouts stay with the caller
//! ([`super::upstream::UpstreamConn`]), as for any request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ClientResult, GetExtensions, GetMeta, NumberOrString,
    ProgressToken, RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerNotification,
    ServerRequest, ServerResult,
};
use rmcp::service::{InboundStreamOrigin, Peer, RequestContext, RoleClient};
use rmcp::transport::common::client_side_sse::{ExponentialBackoff, SseRetryPolicy};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use tokio_util::sync::CancellationToken;

use super::upstream::{Downstream, UpstreamError};

type HttpError = StreamableHttpError<reqwest::Error>;
type Events = BoxStream<'static, Result<Sse, SseError>>;

/// How often a call's stream is resumed before its answer counts as lost.
const MAX_RESUMES: usize = 5;
/// How long the rest of a stream is read after its answer.
const DRAIN_FOR: Duration = Duration::from_millis(50);

/// The session the SDK holds with an upstream: its id and the headers sent
/// with it (the negotiated protocol version), as last sent by the SDK.
#[derive(Clone)]
struct Session {
    id: Arc<str>,
    headers: HashMap<HeaderName, HeaderValue>,
}

/// The SDK's HTTP client, remembering the session it posts on.
#[derive(Clone)]
pub(super) struct Recording {
    client: reqwest::Client,
    session: Arc<Mutex<Option<Session>>>,
}

impl Recording {
    pub(super) fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            session: Arc::default(),
        }
    }

    fn record(&self, session_id: &Option<Arc<str>>, headers: &HashMap<HeaderName, HeaderValue>) {
        if let Some(id) = session_id {
            let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
            if session
                .as_ref()
                .is_none_or(|s| s.id != *id || s.headers != *headers)
            {
                *session = Some(Session {
                    id: id.clone(),
                    headers: headers.clone(),
                });
            }
        }
    }

    fn session(&self) -> Option<Session> {
        self.session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl StreamableHttpClient for Recording {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.record(&session_id, &custom_headers);
        self.client
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.record(&session_id, &custom_headers);
        self.client
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.record(&session_id, &custom_headers);
        self.client
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        self.client
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<Events, HttpError> {
        self.client
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<Events, HttpError> {
        self.client
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

/// Posts calls on the session a [`Recording`] client remembers.
pub(super) struct DirectPost {
    upstream: Arc<str>,
    uri: Arc<str>,
    recording: Recording,
    downstream: Arc<dyn Downstream>,
    next_id: AtomicU64,
}

/// One call, ready to be posted.
pub(super) struct Prepared {
    pub(super) id: RequestId,
    pub(super) token: ProgressToken,
    message: ClientJsonRpcMessage,
}

impl DirectPost {
    pub(super) fn new(
        upstream: &str,
        uri: &str,
        recording: Recording,
        downstream: Arc<dyn Downstream>,
    ) -> Self {
        Self {
            upstream: upstream.into(),
            uri: uri.into(),
            recording,
            downstream,
            next_id: AtomicU64::new(1),
        }
    }

    /// Whether the SDK has a session to post on.
    pub(super) fn ready(&self) -> bool {
        self.recording.session().is_some()
    }

    /// The call as it will be posted, with an id and progress token of its
    /// own (strings, unlike the SDK's numbers, so the two never meet), and
    /// the client's `_meta` without its progress token.
    pub(super) fn prepare(&self, mut request: ClientRequest, meta: RequestMetaObject) -> Prepared {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("warden-{n}").into());
        let token = ProgressToken(NumberOrString::String(format!("warden-{n}").into()));
        let own = request.get_meta_mut();
        own.extend(meta);
        own.set_progress_token(token.clone());
        Prepared {
            message: ClientJsonRpcMessage::request(request, id.clone()),
            id,
            token,
        }
    }

    /// Posts `call` and reads its stream until the answer. `peer` is the
    /// SDK's connection, which renews an expired session.
    pub(super) async fn call(
        &self,
        call: Prepared,
        peer: &Peer<RoleClient>,
    ) -> Result<ServerResult, UpstreamError> {
        let mut renewed = false;
        loop {
            let session = self.recording.session().ok_or_else(|| self.closed())?;
            let posted = self
                .recording
                .client
                .post_message_with_response_limits(
                    self.uri.clone(),
                    call.message.clone(),
                    Some(session.id.clone()),
                    None,
                    session.headers.clone(),
                    StreamableHttpResponseLimits::default(),
                )
                .await;
            return match posted {
                Ok(StreamableHttpPostResponse::Json(message, _)) => {
                    match self.handle(message, &call.id, &session, peer, &[]).await {
                        Handled::Answer(answer) => *answer,
                        _ => Err(self.unexpected()),
                    }
                }
                Ok(StreamableHttpPostResponse::Sse(events, _)) => {
                    self.read(events, &call.id, &session, peer).await
                }
                // Accepted without an answer, or a kind of answer this SDK
                // version does not name.
                Ok(_) => Err(self.unexpected()),
                Err(StreamableHttpError::SessionExpired) if !renewed => {
                    renewed = true;
                    self.renew(&session, peer).await?;
                    continue;
                }
                Err(error) => Err(self.transport(error)),
            };
        }
    }

    /// Has the SDK renew the session the upstream forgot: its next request
    /// (a ping) meets the same 404 and re-initializes, where allowed.
    async fn renew(&self, expired: &Session, peer: &Peer<RoleClient>) -> Result<(), UpstreamError> {
        let ping = ClientRequest::PingRequest(rmcp::model::PingRequest::default());
        let renewed = peer.send_request(ping).await.is_ok()
            && self
                .recording
                .session()
                .is_some_and(|session| session.id != expired.id);
        if renewed {
            tracing::info!(upstream = %self.upstream, "upstream session renewed");
            Ok(())
        } else {
            Err(UpstreamError::Transport {
                upstream: self.upstream.to_string(),
                detail: "the upstream no longer knows this session (HTTP 404)".into(),
            })
        }
    }

    /// Reads a call's event stream until its answer, resuming it when it
    /// ends early with an event id to resume from.
    async fn read(
        &self,
        mut events: Events,
        id: &RequestId,
        session: &Session,
        peer: &Peer<RoleClient>,
    ) -> Result<ServerResult, UpstreamError> {
        // The upstream's requests in progress, to cancel when it asks or
        // when the call ends.
        let mut asked: Vec<(RequestId, CancellationToken)> = Vec::new();
        let mut last_event_id = None;
        let mut retry = None;
        let mut resumes = 0;
        let answer = loop {
            match events.next().await {
                Some(Ok(event)) => {
                    if let Some(event_id) = event.id {
                        last_event_id = Some(event_id);
                    }
                    if let Some(ms) = event.retry {
                        retry = Some(Duration::from_millis(ms));
                    }
                    // An event without data (a priming event, a keep-alive)
                    // carries nothing to handle.
                    let Some(data) = event.data.filter(|d| !d.trim().is_empty()) else {
                        continue;
                    };
                    let message = match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                        Ok(message) => message,
                        Err(error) => break Err(self.transport(error.into())),
                    };
                    asked.retain(|(_, ct)| !ct.is_cancelled());
                    match self.handle(message, id, session, peer, &asked).await {
                        Handled::Answer(answer) => break *answer,
                        Handled::Asked(request, ct) => asked.push((request, ct)),
                        Handled::Done => {}
                    }
                }
                Some(Err(error)) => break Err(self.transport(error.into())),
                None => {
                    let Some(from) = last_event_id.clone() else {
                        break Err(self.lost());
                    };
                    if resumes == MAX_RESUMES {
                        break Err(self.lost());
                    }
                    let wait = retry
                        .or_else(|| ExponentialBackoff::default().retry(resumes))
                        .unwrap_or(ExponentialBackoff::DEFAULT_DURATION);
                    resumes += 1;
                    tokio::time::sleep(wait).await;
                    events = match self
                        .recording
                        .client
                        .get_stream_with_max_sse_event_size(
                            self.uri.clone(),
                            Some(session.id.clone()),
                            Some(from),
                            None,
                            session.headers.clone(),
                            StreamableHttpResponseLimits::default().max_sse_event_size,
                        )
                        .await
                    {
                        Ok(events) => events,
                        Err(error) => break Err(self.transport(error)),
                    };
                }
            }
        };
        for (_, ct) in asked {
            ct.cancel();
        }
        drain(events);
        answer
    }

    /// One message on the call's stream: the answer, or what the SDK would
    /// do with anything else.
    async fn handle(
        &self,
        message: ServerJsonRpcMessage,
        id: &RequestId,
        session: &Session,
        peer: &Peer<RoleClient>,
        asked: &[(RequestId, CancellationToken)],
    ) -> Handled {
        match message {
            ServerJsonRpcMessage::Response(response) if response.id == *id => {
                Handled::Answer(Box::new(Ok(response.result)))
            }
            ServerJsonRpcMessage::Error(error) if error.id.as_ref().is_none_or(|e| e == id) => {
                Handled::Answer(Box::new(Err(UpstreamError::Upstream(error.error))))
            }
            ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_) => {
                tracing::debug!(upstream = %self.upstream, "an answer to another request on a call's stream, ignored");
                Handled::Done
            }
            ServerJsonRpcMessage::Notification(notification) => {
                match notification.notification {
                    ServerNotification::CancelledNotification(cancelled) => {
                        let cancelled = cancelled.params.request_id;
                        for (request, ct) in asked {
                            if Some(request) == cancelled.as_ref() {
                                ct.cancel();
                            }
                        }
                    }
                    notification => self.downstream.notify(&self.upstream, notification).await,
                }
                Handled::Done
            }
            ServerJsonRpcMessage::Request(request) => {
                let request_id = request.id;
                let mut request = request.request;
                let ct = CancellationToken::new();
                let mut context = RequestContext::new(request_id.clone(), peer.clone());
                context.ct = ct.clone();
                std::mem::swap(&mut context.meta, request.get_meta_mut());
                std::mem::swap(&mut context.extensions, request.extensions_mut());
                context
                    .extensions
                    .insert(InboundStreamOrigin::OutboundRequest(id.clone()));
                let downstream = self.downstream.clone();
                let upstream = self.upstream.clone();
                let asked = Handled::Asked(request_id.clone(), ct);
                let reply = Reply {
                    upstream: self.upstream.clone(),
                    uri: self.uri.clone(),
                    client: self.recording.client.clone(),
                    session: session.clone(),
                };
                tokio::spawn(async move {
                    let answer = match request {
                        // Ping is hop-by-hop: the gateway answers for its client.
                        ServerRequest::PingRequest(_) => Ok(ClientResult::empty(())),
                        request => downstream.request(&upstream, request, context).await,
                    };
                    reply.send(request_id, answer).await;
                });
                asked
            }
        }
    }

    fn closed(&self) -> UpstreamError {
        UpstreamError::Closed {
            upstream: self.upstream.to_string(),
        }
    }

    fn lost(&self) -> UpstreamError {
        UpstreamError::Lost {
            upstream: self.upstream.to_string(),
            method: "tools/call".into(),
        }
    }

    fn unexpected(&self) -> UpstreamError {
        UpstreamError::UnexpectedResponse {
            upstream: self.upstream.to_string(),
            method: "tools/call".into(),
        }
    }

    fn transport(&self, error: HttpError) -> UpstreamError {
        UpstreamError::Transport {
            upstream: self.upstream.to_string(),
            detail: error.to_string(),
        }
    }
}

/// Reads what is left of a call's stream after its answer, so that its
/// connection goes back to the pool instead of being closed: at once when
/// the stream has already ended (an upstream ends it right after the
/// answer), else on a task of its own for at most [`DRAIN_FOR`].
fn drain(mut events: Events) {
    use futures::FutureExt;
    loop {
        match events.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let _ =
            tokio::time::timeout(DRAIN_FOR, async { while events.next().await.is_some() {} }).await;
    });
}

/// What one message on a call's stream came to.
enum Handled {
    /// The call's answer (boxed: it is much larger than the others).
    Answer(Box<Result<ServerResult, UpstreamError>>),
    /// A request of the upstream's, now in progress.
    Asked(RequestId, CancellationToken),
    /// Nothing more to do.
    Done,
}

/// Posts the answer to one of the upstream's requests.
struct Reply {
    upstream: Arc<str>,
    uri: Arc<str>,
    client: reqwest::Client,
    session: Session,
}

impl Reply {
    async fn send(self, id: RequestId, answer: Result<ClientResult, rmcp::ErrorData>) {
        let message = match answer {
            Ok(result) => ClientJsonRpcMessage::response(result, id),
            Err(error) => ClientJsonRpcMessage::error(error, Some(id)),
        };
        let posted = self
            .client
            .post_message_with_response_limits(
                self.uri,
                message,
                Some(self.session.id),
                None,
                self.session.headers,
                StreamableHttpResponseLimits::default(),
            )
            .await;
        if let Err(error) = posted {
            tracing::warn!(upstream = %self.upstream, %error, "an answer to the upstream's request was not delivered");
        }
    }
}
