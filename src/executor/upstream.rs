//! One MCP client connection to one upstream server: a child process over
//! stdio, a remote Streamable HTTP endpoint, a shared child serving
//! Streamable HTTP (see [`super::shared`]), or a built-in server.
//!
//! The connection knows nothing of the client session it serves; what the
//! upstream asks of the client (elicitation, sampling, roots, notifications)
//! goes to a [`Downstream`], which the gateway implements.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{
    ClientConfig, ClientNotification, ClientRequest, ClientResult, ErrorCode, Implementation,
    JsonRpcMessage, JsonRpcNotification, ProgressToken, RequestId, RequestMetaObject, ServerConfig,
    ServerNotification, ServerRequest, ServerResult,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestContext, RoleClient, RunningService,
    RxJsonRpcMessage, Service, ServiceError, TxJsonRpcMessage,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{IntoTransport, StreamableHttpClientTransport, TokioChildProcess, Transport};
use rmcp::{ErrorData as McpError, serve_client};
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::post::{DirectPost, Recording};
use super::shared::Generation;
use crate::config::UpstreamKind;
use crate::metrics::Metrics;

/// Environment variables a stdio child inherits from Warden; everything else
/// must be set explicitly in the upstream's `env` table.
pub(super) const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER"];

/// JSON-RPC code for a request the client cancelled (the code LSP uses;
/// MCP defines none).
pub const REQUEST_CANCELLED: ErrorCode = ErrorCode(-32800);

/// JSON-RPC code for a request its upstream did not answer in time
/// (an implementation-defined server error, -32000 to -32099).
pub const UPSTREAM_TIMEOUT: ErrorCode = ErrorCode(-32001);

/// How often a remote upstream is pinged while a request to it is pending.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long such a ping may take before the upstream counts as lost.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a failed request to a shared child waits to learn whether the
/// child exited (which explains the failure better).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What an upstream connection needs from the client session it serves.
pub trait Downstream: Send + Sync + 'static {
    /// A request the upstream sends to the client (elicitation, sampling,
    /// roots, or anything custom).
    fn request(
        &self,
        upstream: &str,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> BoxFuture<'_, Result<ClientResult, McpError>>;

    /// A notification from the upstream (progress, log message, list changed,
    /// resource updated, ...).
    fn notify(&self, upstream: &str, notification: ServerNotification) -> BoxFuture<'_, ()>;
}

/// Why an upstream could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream '{upstream}' could not be started: {detail}")]
    Start { upstream: String, detail: String },
    #[error("upstream '{upstream}' did not finish initialize within {timeout:?}")]
    InitTimeout { upstream: String, timeout: Duration },
    #[error(
        "upstream '{upstream}' is unavailable: the connection closed (the server exited or crashed); start a new session"
    )]
    Closed { upstream: String },
    #[error(
        "upstream '{upstream}' is unavailable: its shared server stopped ({detail}); Warden starts it again, start a new session"
    )]
    SharedExited { upstream: String, detail: String },
    #[error("upstream '{upstream}' gave an unexpected answer to {method}")]
    UnexpectedResponse { upstream: String, method: String },
    #[error("upstream '{upstream}' transport failure: {detail}")]
    Transport { upstream: String, detail: String },
    /// The upstream's own JSON-RPC error, relayed unchanged.
    #[error("{0}")]
    Upstream(McpError),
    #[error(
        "upstream '{upstream}' lost its answer to {method}: it closed the response stream without one, and left nothing to resume; whether the call ran upstream is unknown"
    )]
    Lost { upstream: String, method: String },
    #[error(
        "upstream '{upstream}' did not answer {method} within {after:?} (the upstream's call timeout); the call was abandoned upstream"
    )]
    Timeout {
        upstream: String,
        method: String,
        after: Duration,
    },
    #[error("request cancelled by the client")]
    Cancelled,
}

impl UpstreamError {
    /// The JSON-RPC error a client sees for this failure.
    pub fn into_mcp(self) -> McpError {
        match self {
            UpstreamError::Upstream(error) => error,
            UpstreamError::Cancelled => McpError::new(REQUEST_CANCELLED, "request cancelled", None),
            UpstreamError::Timeout { ref upstream, .. } => {
                let data = serde_json::json!({ "reason": "timeout", "upstream": upstream });
                McpError::new(UPSTREAM_TIMEOUT, self.to_string(), Some(data))
            }
            other => McpError::internal_error(other.to_string(), None),
        }
    }
}

/// A live MCP client session with one upstream.
/// Buffer of the in-process pipe to a built-in server.
const BUILTIN_PIPE_BYTES: usize = 1 << 20;

pub struct UpstreamConn {
    name: String,
    /// Remote upstreams are pinged while a request is pending: a server that
    /// dies mid-call leaves no closed pipe to notice.
    remote: bool,
    /// Longest wait for the answer to one request.
    call_timeout: Duration,
    service: RunningService<RoleClient, UpstreamClient>,
    info: ServerConfig,
    _child: Option<ChildCount>,
    /// The run of the shared child this connection is on (`serve = "http"`).
    shared: Option<Arc<Generation>>,
    /// Tool calls posted by the calling task (Streamable HTTP upstreams).
    post: Option<DirectPost>,
}

/// Counts a running child in `/metrics` for as long as it lives.
pub(super) struct ChildCount(Metrics);

impl ChildCount {
    pub(super) fn new(metrics: &Metrics) -> Self {
        metrics.upstream_children.inc();
        Self(metrics.clone())
    }
}

impl Drop for ChildCount {
    fn drop(&mut self) {
        self.0.upstream_children.dec();
    }
}

impl UpstreamConn {
    /// Starts (stdio) or connects to (HTTP) the upstream and performs the MCP
    /// handshake with `client_info`, the client's own initialize parameters.
    pub async fn connect(
        name: &str,
        kind: &UpstreamKind,
        client_info: ClientConfig,
        downstream: Arc<dyn Downstream>,
        timeouts: Timeouts,
        metrics: &Metrics,
        builtins: &super::Builtins,
    ) -> Result<Self, UpstreamError> {
        let handler = UpstreamClient {
            name: name.to_owned(),
            client_info,
            downstream: downstream.clone(),
        };
        let start = |detail: String| UpstreamError::Start {
            upstream: name.to_owned(),
            detail,
        };
        // A shared child is waited for (it may be starting again) before
        // the handshake's own time starts.
        let shared = match kind {
            UpstreamKind::Shared { .. } => {
                let server = builtins
                    .shared()
                    .get(name)
                    .ok_or_else(|| start("its shared child was never started".to_owned()))?;
                Some(server.ready(timeouts.init).await.map_err(start)?)
            }
            _ => None,
        };
        let handshake = async {
            match kind {
                UpstreamKind::Stdio {
                    command,
                    args,
                    env,
                    cwd,
                } => {
                    let mut cmd = tokio::process::Command::new(command);
                    cmd.args(args).env_clear();
                    for key in INHERITED_ENV {
                        if let Some(value) = std::env::var_os(key) {
                            cmd.env(key, value);
                        }
                    }
                    cmd.envs(env);
                    if let Some(cwd) = cwd {
                        cmd.current_dir(cwd);
                    }
                    let (transport, stderr) = TokioChildProcess::builder(cmd)
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| start(format!("{}: {e}", command.display())))?;
                    let child = ChildCount::new(metrics);
                    if let Some(stderr) = stderr {
                        tokio::spawn(log_stderr(name.to_owned(), stderr));
                    }
                    let service = Box::pin(serve_client(
                        handler,
                        InOrder::new(name, downstream.clone(), transport),
                    ))
                    .await
                    .map_err(|e| start(e.to_string()))?;
                    Ok((service, Some(child), None))
                }
                UpstreamKind::Builtin { builtin } => {
                    // An in-process server on one end of a pipe, the
                    // gateway's client on the other: the same MCP exchange
                    // as with any upstream.
                    let (ours, theirs) = tokio::io::duplex(BUILTIN_PIPE_BYTES);
                    builtins.start(builtin, theirs).map_err(start)?;
                    let ours = IntoTransport::<RoleClient, std::io::Error, _>::into_transport(ours);
                    let service = Box::pin(serve_client(
                        handler,
                        InOrder::new(name, downstream.clone(), ours),
                    ))
                    .await
                    .map_err(|e| start(e.to_string()))?;
                    Ok((service, None, None))
                }
                UpstreamKind::Shared { .. } => {
                    let generation = shared.as_ref().expect("waited for above");
                    // A restarted child does not know this session: the
                    // session fails instead of starting over unseen.
                    let config =
                        StreamableHttpClientTransportConfig::with_uri(generation.url.as_str())
                            .reinit_on_expired_session(false);
                    let client = Recording::new(generation.client.clone());
                    let post = DirectPost::new(
                        name,
                        generation.url.as_str(),
                        client.clone(),
                        downstream.clone(),
                    );
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    let service = Box::pin(serve_client(
                        handler,
                        InOrder::new(name, downstream.clone(), transport),
                    ))
                    .await
                    .map_err(|e| start(format!("{}: {e}", generation.url)))?;
                    Ok((service, None, Some(post)))
                }
                UpstreamKind::Http { url, headers } => {
                    let headers: HashMap<_, _> = headers
                        .iter()
                        .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
                        .collect();
                    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                        .custom_headers(headers);
                    let client = Recording::new(http_client());
                    let post =
                        DirectPost::new(name, url.as_str(), client.clone(), downstream.clone());
                    let transport = StreamableHttpClientTransport::with_client(client, config);
                    let service = Box::pin(serve_client(
                        handler,
                        InOrder::new(name, downstream.clone(), transport),
                    ))
                    .await
                    .map_err(|e| start(format!("{url}: {e}")))?;
                    Ok((service, None, Some(post)))
                }
            }
        };
        let (service, child, post) = tokio::time::timeout(timeouts.init, handshake)
            .await
            .map_err(|_| UpstreamError::InitTimeout {
                upstream: name.to_owned(),
                timeout: timeouts.init,
            })??;
        let peer_info = service
            .peer()
            .peer_info()
            .ok_or_else(|| start("no initialize result".into()))?;
        let mut info = ServerConfig::new(peer_info.capabilities.clone());
        info.protocol_version = peer_info.protocol_version.clone();
        info.server_info = peer_info
            .server_info
            .clone()
            .unwrap_or_else(|| Implementation::new(name, "unknown"));
        info.instructions = peer_info.instructions.clone();
        info.meta = peer_info.meta.clone();
        Ok(Self {
            name: name.to_owned(),
            remote: matches!(
                kind,
                UpstreamKind::Http { .. } | UpstreamKind::Shared { .. }
            ),
            call_timeout: timeouts.call,
            service,
            info,
            _child: child,
            shared,
            post,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The upstream's initialize result (capabilities, server info, instructions).
    pub fn info(&self) -> &ServerConfig {
        &self.info
    }

    /// Sends `request` with the client's `_meta` (without its progress token:
    /// the connection assigns its own). `sent` sees the upstream request id
    /// and progress token before any reply can arrive, so the caller can
    /// route progress and nested requests back. `ct` cancels the request
    /// upstream, and so does the upstream's call timeout (the upstream is
    /// told the request is cancelled, and the caller gets
    /// [`UpstreamError::Timeout`]): no request waits forever, even for an
    /// answer the upstream lost.
    pub async fn request(
        &self,
        request: ClientRequest,
        meta: RequestMetaObject,
        ct: &CancellationToken,
        sent: impl FnOnce(&RequestId, &ProgressToken),
    ) -> Result<ServerResult, UpstreamError> {
        if let Some(error) = self.shared_exited() {
            return Err(error);
        }
        match self.exchange(request, meta, ct, sent).await {
            Err(
                error @ (UpstreamError::Transport { .. }
                | UpstreamError::Closed { .. }
                | UpstreamError::Lost { .. }),
            ) => Err(self.explain(error).await),
            result => result,
        }
    }

    /// A connection failure on a shared child that is exiting is reported
    /// as its exit: its supervisor learns of it a moment after the socket
    /// closes.
    async fn explain(&self, error: UpstreamError) -> UpstreamError {
        let Some(generation) = &self.shared else {
            return error;
        };
        match tokio::time::timeout(EXIT_GRACE, generation.exited.cancelled()).await {
            Ok(()) => UpstreamError::SharedExited {
                upstream: self.name.clone(),
                detail: generation.exit_reason(),
            },
            Err(_) => error,
        }
    }

    async fn exchange(
        &self,
        request: ClientRequest,
        mut meta: RequestMetaObject,
        ct: &CancellationToken,
        sent: impl FnOnce(&RequestId, &ProgressToken),
    ) -> Result<ServerResult, UpstreamError> {
        let method = request.method().to_owned();
        meta.remove("progressToken");
        let peer = self.service.peer();
        // A tool call on a Streamable HTTP upstream is posted by this task
        // ([`DirectPost`]); anything else goes through the SDK.
        if let Some(post) = &self.post
            && matches!(request, ClientRequest::CallToolRequest(_))
            && post.ready()
        {
            let call = post.prepare(request, meta);
            sent(&call.id, &call.token);
            let id = call.id.clone();
            // Boxed: the call's future is large, and the pipeline's future
            // holds this one.
            let call = Box::pin(post.call(call, peer));
            return self.wait(&method, ct, id, call).await;
        }
        let options = PeerRequestOptions::no_options().with_meta(meta);
        let handle = peer
            .send_cancellable_request(request, options)
            .await
            .map_err(|e| self.service_error(e))?;
        sent(&handle.id, &handle.progress_token);
        let id = handle.id.clone();
        let response = async {
            handle.await_response().await.map_err(|e| match e {
                // The connection lives on: only this request's response
                // stream ended, with nothing to resume.
                ServiceError::TransportClosed if !self.is_closed() => UpstreamError::Lost {
                    upstream: self.name.clone(),
                    method: method.clone(),
                },
                e => self.service_error(e),
            })
        };
        self.wait(&method, ct, id, response).await
    }

    /// Waits for the answer to request `id`, unless the client cancels it,
    /// the upstream's call timeout passes (then the upstream is told the
    /// request is cancelled), or the upstream is lost.
    async fn wait(
        &self,
        method: &str,
        ct: &CancellationToken,
        id: RequestId,
        response: impl Future<Output = Result<ServerResult, UpstreamError>>,
    ) -> Result<ServerResult, UpstreamError> {
        let peer = self.service.peer();
        let deadline = tokio::time::sleep(self.call_timeout);
        tokio::select! {
            response = response => response,
            () = ct.cancelled() => {
                cancel(peer, id).await;
                Err(UpstreamError::Cancelled)
            }
            () = deadline => {
                tracing::warn!(upstream = %self.name, %method, timeout = ?self.call_timeout, "upstream request timed out");
                cancel(peer, id).await;
                Err(UpstreamError::Timeout {
                    upstream: self.name.clone(),
                    method: method.to_owned(),
                    after: self.call_timeout,
                })
            }
            error = self.lost(), if self.remote => Err(error),
            error = self.shared_exit() => Err(error),
        }
    }

    /// The error for a request on a shared child that has exited.
    fn shared_exited(&self) -> Option<UpstreamError> {
        let generation = self.shared.as_ref()?;
        generation
            .exited
            .is_cancelled()
            .then(|| UpstreamError::SharedExited {
                upstream: self.name.clone(),
                detail: generation.exit_reason(),
            })
    }

    /// Resolves once the shared child this connection is on exits; never
    /// for any other upstream.
    async fn shared_exit(&self) -> UpstreamError {
        match &self.shared {
            Some(generation) => {
                generation.exited.cancelled().await;
                tracing::warn!(upstream = %self.name, "shared upstream child exited during a request");
                UpstreamError::SharedExited {
                    upstream: self.name.clone(),
                    detail: generation.exit_reason(),
                }
            }
            None => std::future::pending().await,
        }
    }

    /// Resolves once a remote upstream stops answering pings (checked every
    /// [`LIVENESS_INTERVAL`], each ping allowed [`LIVENESS_TIMEOUT`]).
    async fn lost(&self) -> UpstreamError {
        loop {
            tokio::time::sleep(LIVENESS_INTERVAL).await;
            let ping = ClientRequest::PingRequest(rmcp::model::PingRequest::default());
            let options = PeerRequestOptions::with_timeout(LIVENESS_TIMEOUT);
            let answer = match self
                .service
                .peer()
                .send_request_with_option(ping, options)
                .await
            {
                Ok(handle) => handle.await_response().await,
                Err(error) => Err(error),
            };
            match answer {
                Ok(_) | Err(ServiceError::McpError(_)) => continue,
                Err(error) => {
                    tracing::warn!(upstream = %self.name, %error, "remote upstream stopped answering");
                    return UpstreamError::Transport {
                        upstream: self.name.clone(),
                        detail: format!("stopped answering during the call ({error})"),
                    };
                }
            }
        }
    }

    /// Sends a notification to the upstream; a closed connection is ignored
    /// (the next request reports it).
    pub async fn notify(&self, notification: ClientNotification) {
        if let Err(error) = self.service.peer().send_notification(notification).await {
            tracing::debug!(upstream = %self.name, %error, "notification not delivered");
        }
    }

    /// True once the upstream's transport has closed (child exited).
    pub fn is_closed(&self) -> bool {
        self.service.peer().is_transport_closed()
            || self
                .shared
                .as_ref()
                .is_some_and(|g| g.exited.is_cancelled())
    }

    fn service_error(&self, error: ServiceError) -> UpstreamError {
        let upstream = self.name.clone();
        match error {
            ServiceError::McpError(error) => UpstreamError::Upstream(error),
            ServiceError::TransportClosed => UpstreamError::Closed { upstream },
            ServiceError::UnexpectedResponse => UpstreamError::UnexpectedResponse {
                upstream,
                method: "request".into(),
            },
            ServiceError::Cancelled { .. } => UpstreamError::Cancelled,
            other => UpstreamError::Transport {
                upstream,
                detail: other.to_string(),
            },
        }
    }
}

/// The HTTP client of remote upstreams, shared by all of them: pooled
/// keep-alive connections with `TCP_NODELAY` (a new connection per request
/// costs about a millisecond on loopback), and no redirects: an upstream is
/// reached at its configured URL or not at all.
pub(super) fn http_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default()
        })
        .clone()
}

/// Tells a peer that request `id` is cancelled.
pub(crate) async fn cancel<R: rmcp::service::ServiceRole>(
    peer: &rmcp::service::Peer<R>,
    id: RequestId,
) where
    R::Not: From<rmcp::model::CancelledNotification>,
{
    let notification =
        rmcp::model::CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
            Some(id),
            Some("cancelled by the other side of the gateway".into()),
        ));
    if let Err(error) = peer.send_notification(notification.into()).await {
        tracing::debug!(%error, "cancellation not delivered");
    }
}

async fn log_stderr(upstream: String, stderr: tokio::process::ChildStderr) {
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "warden::upstream", upstream = %upstream, "{line}");
    }
}

/// How long an upstream may take: to start and answer `initialize`, and to
/// answer any one request after that.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub init: Duration,
    pub call: Duration,
}

/// The upstream's transport, delivering its notifications to the
/// [`Downstream`] in the order they arrive, each before anything the
/// upstream sent after it (the answer to a call above all).
///
/// The SDK handles every notification on a task of its own, so a progress
/// notification sent just before a result could reach the client after it,
/// or find its call's routing already gone. Here the next message is read
/// only once the previous notification was handed to the client's session.
/// `receive` stays cancel-safe: a delivery in progress is kept and resumed
/// by the next `receive`. Cancellations stay with the SDK, which needs them
/// to cancel the upstream's own requests.
struct InOrder<T> {
    inner: T,
    upstream: Arc<str>,
    downstream: Arc<dyn Downstream>,
    delivering: Option<BoxFuture<'static, ()>>,
}

impl<T> InOrder<T> {
    fn new(upstream: &str, downstream: Arc<dyn Downstream>, inner: T) -> Self {
        Self {
            inner,
            upstream: upstream.into(),
            downstream,
            delivering: None,
        }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for InOrder<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            if let Some(delivery) = self.delivering.as_mut() {
                delivery.await;
                self.delivering = None;
            }
            match self.inner.receive().await? {
                JsonRpcMessage::Notification(JsonRpcNotification { notification, .. })
                    if !matches!(notification, ServerNotification::CancelledNotification(_)) =>
                {
                    let downstream = self.downstream.clone();
                    let upstream = self.upstream.clone();
                    self.delivering = Some(Box::pin(async move {
                        downstream.notify(&upstream, notification).await;
                    }));
                }
                message => return Some(message),
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// The client half that the upstream talks to.
struct UpstreamClient {
    name: String,
    client_info: ClientConfig,
    downstream: Arc<dyn Downstream>,
}

impl Service<RoleClient> for UpstreamClient {
    async fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        match request {
            // Ping is hop-by-hop: the gateway answers for its client.
            ServerRequest::PingRequest(_) => Ok(ClientResult::empty(())),
            request => self.downstream.request(&self.name, request, context).await,
        }
    }

    async fn handle_notification(
        &self,
        notification: ServerNotification,
        _context: NotificationContext<RoleClient>,
    ) -> Result<(), McpError> {
        // Every other notification went to the downstream in order, from
        // the transport ([`InOrder`]). Cancellation of the upstream's own
        // requests is handled by the SDK (it cancels the request context the
        // downstream waits on).
        if !matches!(notification, ServerNotification::CancelledNotification(_)) {
            self.downstream.notify(&self.name, notification).await;
        }
        Ok(())
    }

    fn get_info(&self) -> ClientConfig {
        self.client_info.clone()
    }
}
