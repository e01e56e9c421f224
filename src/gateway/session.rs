//! One client session: the MCP server the client talks to, relaying to the
//! session's own upstream connections and back.
//!
//! Requests from the client are routed to an upstream by name (see
//! [`Names`]); `tools/call` goes through the [`Pipeline`]. Requests and
//! notifications from an upstream come back through the session's [`Relay`],
//! which knows which client request caused them.

// Logging, sampling and roots are deprecated by SEP-2577 in the SDK, but they
// are part of the protocol revisions this front serves and must be relayed.
#![allow(deprecated)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use rmcp::model::*;
use rmcp::service::{
    InboundStreamOrigin, NotificationContext, OriginatingRequestId, Peer, PeerRequestOptions,
    RequestContext, RoleClient, RoleServer, ServiceError,
};
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio::sync::{Mutex, OnceCell, OwnedSemaphorePermit, Semaphore};

use super::lane::Opening;
use super::names::Names;
use crate::approvals::tools as approval_tools;
use crate::call::ToolCall;
use crate::config::{Config, UpstreamKind};
use crate::executor::{Builtins, Downstream, Timeouts, UpstreamConn, UpstreamError, cancel};
use crate::identity::{Authenticator, Principal};
use crate::metrics::{Metrics, Outcome};
use crate::pipeline::Pipeline;

/// What every session shares: configuration, the pipeline, metrics and the
/// session cap.
pub struct Gateway {
    pub config: Arc<Config>,
    pub identity: Arc<Authenticator>,
    pub pipeline: Pipeline,
    pub metrics: Metrics,
    upstreams: Vec<(String, UpstreamKind)>,
    names: Names,
    slots: Arc<Semaphore>,
    builtins: Builtins,
    /// The replicas on this store and their policy sets.
    pub replicas: Arc<crate::replicas::Registry>,
}

impl Gateway {
    pub fn new(
        config: Arc<Config>,
        pipeline: Pipeline,
        builtins: Builtins,
        replicas: Arc<crate::replicas::Registry>,
    ) -> Arc<Self> {
        let identity = pipeline.identity().clone();
        let metrics = pipeline.metrics().clone();
        let upstreams: Vec<_> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| (name.clone(), upstream.kind()))
            .collect();
        let names = Names::new(upstreams.iter().map(|(name, _)| name.clone()).collect());
        Arc::new(Self {
            replicas,
            pipeline,
            builtins,
            slots: Arc::new(Semaphore::new(config.server.max_sessions)),
            identity,
            config,
            metrics,
            upstreams,
            names,
        })
    }

    /// The configured upstreams, in namespace order.
    pub fn upstreams(&self) -> &[(String, UpstreamKind)] {
        &self.upstreams
    }

    /// The shared children of `serve = "http"` upstreams.
    pub fn shared(&self) -> &crate::executor::SharedServers {
        self.builtins.shared()
    }

    /// A new, not yet initialized HTTP session; each request brings its
    /// principal from the HTTP front.
    pub fn session(self: &Arc<Self>) -> Session {
        Session {
            gateway: self.clone(),
            state: Arc::new(OnceCell::new()),
            principal: None,
        }
    }

    /// A session for the stdio front, whose one principal was authenticated
    /// when the process started.
    pub fn stdio_session(self: &Arc<Self>, principal: Principal) -> Session {
        Session {
            gateway: self.clone(),
            state: Arc::new(OnceCell::new()),
            principal: Some(Arc::new(principal)),
        }
    }
}

/// The MCP server half of one client session.
pub struct Session {
    gateway: Arc<Gateway>,
    /// Shared with the fast lane, which holds it weakly: the session's
    /// state lives as long as the SDK keeps the session.
    state: Arc<OnceCell<Connected>>,
    /// The stdio front's principal; HTTP requests carry their own.
    principal: Option<Arc<Principal>>,
}

/// A session after `initialize`: its upstream connections.
pub(super) struct Connected {
    upstreams: Vec<UpstreamConn>,
    relay: Arc<Relay>,
    info: ServerConfig,
    /// Whether its `tools/call` requests may take the fast lane: the client
    /// declared no capability (sampling, elicitation, tasks) through which
    /// an upstream could ask it something on the stream of a call.
    lane: bool,
    _slot: OwnedSemaphorePermit,
    _open: OpenSession,
}

/// Counts an open session in `/metrics` for as long as it lives.
struct OpenSession(Metrics);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.sessions.dec();
    }
}

/// Protocol versions the front speaks: every revision with an `initialize`
/// handshake up to 2025-11-25.
pub(super) fn supported_versions() -> &'static [ProtocolVersion] {
    ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25)
}

impl Session {
    /// The session of a fast-lane request: the HTTP session whose state is
    /// `state`.
    pub(super) fn on_lane(gateway: Arc<Gateway>, state: Arc<OnceCell<Connected>>) -> Session {
        Session {
            gateway,
            state,
            principal: None,
        }
    }

    /// The context the SDK would give a request of this session: `parts`
    /// (with the verified principal in their extensions), the request's
    /// `id` and `_meta`, cancelled through `ct`.
    pub(super) fn lane_context(
        &self,
        id: RequestId,
        meta: RequestMetaObject,
        ct: tokio_util::sync::CancellationToken,
        parts: http::request::Parts,
    ) -> Option<RequestContext<RoleServer>> {
        let connected = self.state.get()?;
        let mut context = RequestContext::new(id, connected.relay.front.clone());
        context.ct = ct;
        context.meta = meta;
        context.extensions.insert(parts);
        Some(context)
    }

    /// Sends the progress of the lane call whose client token is `token`
    /// to `sink`, until [`Session::unwatch_progress`] (the lane answers
    /// that call on a stream of its own, not the SDK's).
    pub(super) async fn watch_progress(&self, token: ProgressToken, sink: LaneProgress) {
        if let Ok(connected) = self.connected() {
            let mut inflight = connected.relay.inflight.lock().await;
            inflight.lane_progress.insert(token, sink);
        }
    }

    /// Stops sending `token`'s progress to `sink` (unless a later call with
    /// the same token took it over).
    pub(super) async fn unwatch_progress(&self, token: &ProgressToken, sink: &LaneProgress) {
        if let Ok(connected) = self.connected() {
            let mut inflight = connected.relay.inflight.lock().await;
            if inflight
                .lane_progress
                .get(token)
                .is_some_and(|watching| watching.same_channel(sink))
            {
                inflight.lane_progress.remove(token);
            }
        }
    }

    fn connected(&self) -> Result<&Connected, McpError> {
        self.state
            .get()
            .ok_or_else(|| McpError::invalid_request("session is not initialized", None))
    }

    async fn connect(
        &self,
        params: &InitializeRequestParams,
        front: Peer<RoleServer>,
    ) -> Result<Connected, McpError> {
        let gateway = &self.gateway;
        let slot = gateway.slots.clone().try_acquire_owned().map_err(|_| {
            gateway.metrics.sessions_refused.inc();
            McpError::internal_error(
                format!(
                    "session limit reached: this gateway serves at most {} concurrent sessions; \
                     close an idle session or retry later",
                    gateway.config.server.max_sessions
                ),
                None,
            )
        })?;
        let relay = Arc::new(Relay {
            front,
            names: gateway.names.clone(),
            inflight: Mutex::new(Inflight::default()),
            tools: std::sync::Mutex::new(HashMap::new()),
        });
        let init = gateway.config.server.upstream_init_timeout;
        let connects = gateway.upstreams.iter().map(|(name, kind)| {
            let call = gateway.config.call_timeout(name);
            UpstreamConn::connect(
                name,
                kind,
                params.clone(),
                relay.clone(),
                Timeouts { init, call },
                &gateway.metrics,
                &gateway.builtins,
            )
        });
        let upstreams = futures::future::try_join_all(connects).await.map_err(|e| {
            tracing::warn!(error = %e, "session initialize failed");
            e.into_mcp()
        })?;
        let info = merged_info(&upstreams);
        gateway.metrics.sessions.inc();
        let capabilities = &params.capabilities;
        let lane = capabilities.sampling.is_none()
            && capabilities.elicitation.is_none()
            && !capabilities.supports_tasks();
        Ok(Connected {
            upstreams,
            relay,
            info,
            lane,
            _slot: slot,
            _open: OpenSession(gateway.metrics.clone()),
        })
    }

    /// Sends `request` to upstream `index` on behalf of the client request
    /// in `context`, remembering the mapping so progress and nested requests
    /// find their way back, and cancelling upstream if the client cancels.
    async fn forward(
        &self,
        index: usize,
        request: ClientRequest,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let connected = self.connected()?;
        let upstream = &connected.upstreams[index];
        let relay = &connected.relay;
        let client_token = context.meta.get_progress_token();
        let mut registered = None;
        let inflight = relay.inflight.lock().await;
        let result = upstream
            .request(request, context.meta.clone(), &context.ct, |id, token| {
                let mut inflight = inflight;
                inflight
                    .calls
                    .insert((index, id.clone()), context.id.clone());
                if let Some(client_token) = client_token {
                    inflight
                        .upstream_progress
                        .insert((index, token.clone()), client_token);
                }
                registered = Some((id.clone(), token.clone()));
            })
            .await;
        if let Some((id, token)) = registered {
            let mut inflight = relay.inflight.lock().await;
            inflight.calls.remove(&(index, id));
            inflight.upstream_progress.remove(&(index, token));
        }
        result.map_err(UpstreamError::into_mcp)
    }

    /// Runs a request handler, counting it in `/metrics`.
    async fn observed<T>(
        &self,
        method: &str,
        handler: impl Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        let started = Instant::now();
        let result = handler.await;
        let outcome = if result.is_ok() {
            Outcome::ok
        } else {
            Outcome::error
        };
        self.gateway
            .metrics
            .observe(method, outcome, started.elapsed());
        result
    }

    /// One page of a list that spans every upstream (tools, prompts,
    /// resources, templates). `has` says whether an upstream offers the list;
    /// `request` builds the upstream request; `rename` picks the page out of
    /// the upstream's answer and renames its items.
    async fn list_page<T: Page>(
        &self,
        params: Option<PaginatedRequestParams>,
        context: &RequestContext<RoleServer>,
        has: impl Fn(&ServerCapabilities) -> bool,
        request: impl Fn(PaginatedRequestParams) -> ClientRequest,
        rename: impl Fn(ServerResult, usize, &Names) -> Option<T>,
    ) -> Result<T, McpError> {
        let names = &self.gateway.names;
        let connected = self.connected()?;
        let (index, cursor) = names.route_cursor(params.and_then(|p| p.cursor).as_deref())?;
        if !has(&connected.upstreams[index].info().capabilities) {
            let mut page = T::default();
            *page.next_cursor() = names.next_cursor(index, None);
            return Ok(page);
        }
        let mut upstream_params = PaginatedRequestParams::default();
        upstream_params.cursor = cursor;
        let result = self
            .forward(index, request(upstream_params), context)
            .await?;
        let mut page = rename(result, index, names).ok_or_else(|| unexpected(index, names))?;
        let next = page.next_cursor().take();
        *page.next_cursor() = names.next_cursor(index, next);
        Ok(page)
    }

    fn route<'a>(&self, name: &'a str, what: &str) -> Result<(usize, &'a str), McpError> {
        self.gateway
            .names
            .route(name)
            .ok_or_else(|| McpError::invalid_params(format!("unknown {what}: {name}"), None))
    }

    fn route_uri<'a>(&self, uri: &'a str) -> Result<(usize, &'a str), McpError> {
        self.gateway
            .names
            .route_uri(uri)
            .ok_or_else(|| McpError::resource_not_found(format!("unknown resource: {uri}"), None))
    }

    /// The verified caller of this request.
    fn principal(&self, context: &RequestContext<RoleServer>) -> Option<Arc<Principal>> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Arc<Principal>>().cloned())
            .or_else(|| self.principal.clone())
    }

    fn user_agent(context: &RequestContext<RoleServer>) -> Option<String> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(http::header::USER_AGENT))
            .and_then(|ua| ua.to_str().ok())
            .map(str::to_owned)
    }

    /// The session label used in logs: the `Mcp-Session-Id` over HTTP.
    fn label(context: &RequestContext<RoleServer>) -> String {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|id| id.to_str().ok())
            .unwrap_or("stdio")
            .to_owned()
    }

    /// Keeps the annotations of listed tools for resolution.
    fn remember_tools(&self, tools: &[Tool]) {
        let Some(connected) = self.state.get() else {
            return;
        };
        let mut known = connected.relay.tools();
        for tool in tools {
            if let Some((index, inner)) = self.gateway.names.route(&tool.name) {
                known.insert((index, inner.to_owned()), tool.annotations.clone());
            }
        }
    }

    /// The annotations of upstream `index`'s tool `inner`: as last listed,
    /// else (a client may call a tool without listing) from a fresh listing
    /// of that upstream. Not needed for tools the catalog names. `None`
    /// when the upstream does not list the tool: the call then resolves to
    /// class `unknown`.
    async fn annotations(
        &self,
        index: usize,
        inner: &str,
        context: &RequestContext<RoleServer>,
    ) -> Option<ToolAnnotations> {
        let connected = self.state.get()?;
        let key = (index, inner.to_owned());
        if let Some(known) = connected.relay.tools().get(&key) {
            return known.clone();
        }
        if self.gateway.pipeline.catalog().has_entry(inner) {
            return None;
        }
        let upstream = &connected.upstreams[index];
        let mut cursor = None;
        for _ in 0..MAX_LISTING_PAGES {
            let mut params = PaginatedRequestParams::default();
            params.cursor = cursor;
            let request = ClientRequest::ListToolsRequest(RequestOptionalParam::with_param(params));
            let page = match upstream
                .request(
                    request,
                    RequestMetaObject::default(),
                    &context.ct,
                    |_, _| {},
                )
                .await
            {
                Ok(ServerResult::ListToolsResult(page)) => page,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(upstream = upstream.name(), %error, "listing tools for their annotations failed");
                    break;
                }
            };
            let mut known = connected.relay.tools();
            for tool in &page.tools {
                known.insert((index, tool.name.to_string()), tool.annotations.clone());
            }
            drop(known);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        connected.relay.tools().get(&key).cloned().flatten()
    }

    /// The protected-resource metadata URL step-up challenges name.
    fn resource_metadata(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        let parts = context.extensions.get::<http::request::Parts>()?;
        Some(super::auth::resource_urls(&self.gateway, &parts.headers).1)
    }

    async fn notify_all(&self, notification: ClientNotification) {
        if let Some(connected) = self.state.get() {
            for upstream in &connected.upstreams {
                upstream.notify(notification.clone()).await;
            }
        }
    }
}

/// Most pages of an upstream's tool list read to find one tool's annotations.
const MAX_LISTING_PAGES: usize = 100;

/// A page of a paginated list result.
trait Page: Default {
    fn next_cursor(&mut self) -> &mut Option<String>;
}

macro_rules! page {
    ($($result:ty),*) => {$(
        impl Page for $result {
            fn next_cursor(&mut self) -> &mut Option<String> {
                &mut self.next_cursor
            }
        }
    )*};
}

page!(
    ListToolsResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult
);

fn unexpected(index: usize, names: &Names) -> McpError {
    UpstreamError::UnexpectedResponse {
        upstream: names.upstream(index).to_owned(),
        method: "request".into(),
    }
    .into_mcp()
}

/// The initialize result the client sees: the upstream's own with one
/// upstream; with several, the union of their capabilities under Warden's
/// name.
fn merged_info(upstreams: &[UpstreamConn]) -> ServerConfig {
    if let [only] = upstreams {
        return only.info().clone();
    }
    let mut capabilities = serde_json::Value::Object(Default::default());
    for upstream in upstreams {
        if let Ok(theirs) = serde_json::to_value(&upstream.info().capabilities) {
            merge_json(&mut capabilities, theirs);
        }
    }
    let mut info = ServerConfig::new(serde_json::from_value(capabilities).unwrap_or_default());
    info.server_info = Implementation::new("warden", env!("CARGO_PKG_VERSION"));
    let instructions: Vec<String> = upstreams
        .iter()
        .filter_map(|u| {
            let text = u.info().instructions.as_deref()?;
            Some(format!("[{}] {text}", u.name()))
        })
        .collect();
    info.instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    info.protocol_version = upstreams
        .iter()
        .map(|u| u.info().protocol_version.clone())
        .min_by(|a, b| a.as_str().cmp(b.as_str()))
        .unwrap_or_default();
    info
}

/// Deep-merges JSON objects; `true` wins over `false`.
fn merge_json(into: &mut serde_json::Value, from: serde_json::Value) {
    use serde_json::Value;
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (Value::Bool(into), Value::Bool(from)) => *into |= from,
        _ => {}
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        self.state
            .get()
            .map(|c| c.info.clone())
            .unwrap_or_else(|| ServerConfig::new(ServerCapabilities::default()))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(supported_versions())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.observed("initialize", async {
            context.peer.set_peer_info(request.clone());
            let connected = self.connect(&request, context.peer.clone()).await?;
            let info = connected.info.clone();
            let lane = connected.lane;
            self.state
                .set(connected)
                .map_err(|_| McpError::invalid_request("session is already initialized", None))?;
            // An HTTP session whose client can be answered without a
            // stream is offered to the fast lane, which opens it under the
            // id the SDK gives the session, before the client learns it.
            let opening = context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Opening>());
            if let Some(opening) = opening
                && lane
            {
                opening.offer(Arc::downgrade(&self.state));
            }
            Ok(info)
        })
        .await
    }

    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), McpError> {
        self.observed("ping", async { Ok(()) }).await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        self.observed("tools/list", async {
            let mut page = self
                .list_page(
                    request,
                    &context,
                    |caps| caps.tools.is_some(),
                    |p| ClientRequest::ListToolsRequest(RequestOptionalParam::with_param(p)),
                    |result, index, names| match result {
                        ServerResult::ListToolsResult(mut page) => {
                            for tool in &mut page.tools {
                                tool.name = names.outward(index, &tool.name).into();
                            }
                            Some(page)
                        }
                        _ => None,
                    },
                )
                .await?;
            self.remember_tools(&page.tools);
            let principal = self.principal(&context);
            let pipeline = &self.gateway.pipeline;
            page.tools.retain(|tool| {
                let Some(principal) = &principal else {
                    return false;
                };
                let Some((_, inner)) = self.gateway.names.route(&tool.name) else {
                    return false;
                };
                pipeline.could_call(principal, inner, tool.annotations.as_ref())
            });
            // Warden's own tools (asking for access ahead) close the list.
            if page.next_cursor.is_none() && principal.is_some() {
                page.tools.extend(approval_tools::list());
            }
            Ok(page)
        })
        .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();
        if approval_tools::is_warden_tool(&request.name) {
            let Some(principal) = self.principal(&context) else {
                return Err(McpError::invalid_request(
                    "unauthenticated: the call carries no verified principal",
                    None,
                ));
            };
            let arguments = request.arguments.clone().map(serde_json::Value::Object);
            let result = self
                .gateway
                .pipeline
                .warden_tool(&principal, &request.name, arguments)
                .await;
            let outcome = if result.is_error == Some(true) {
                Outcome::tool_error
            } else {
                Outcome::ok
            };
            self.gateway
                .metrics
                .observe("tools/call", outcome, started.elapsed());
            return Ok(CallToolResponse::Complete(result));
        }
        let (index, inner) = match self.route(&request.name, "tool") {
            Ok(route) => route,
            Err(error) => {
                let metrics = &self.gateway.metrics;
                metrics.observe("tools/call", Outcome::error, started.elapsed());
                return Err(error);
            }
        };
        let Some(principal) = self.principal(&context) else {
            // The front authenticates every request before it reaches a
            // session; a call without a principal never enters the pipeline.
            let metrics = &self.gateway.metrics;
            metrics.observe("tools/call", Outcome::error, started.elapsed());
            return Err(McpError::invalid_request(
                "unauthenticated: the call carries no verified principal",
                None,
            ));
        };
        let call = ToolCall {
            principal,
            session: Self::label(&context),
            tool: request.name.to_string(),
            upstream: self.gateway.names.upstream(index).to_owned(),
            upstream_tool: inner.to_owned(),
            call_id: ToolCall::new_id(),
            arguments: request.arguments.clone().map(serde_json::Value::Object),
            user_agent: Self::user_agent(&context),
            annotations: self.annotations(index, inner, &context).await,
            resource_metadata: self.resource_metadata(&context),
        };
        let mut upstream_request = request.clone();
        upstream_request.name = Cow::Owned(inner.to_owned());
        // Boxed, as the pipeline's rarer stages are: a call's future is
        // moved whole when its task is made, and the forward's state
        // (16 KB) would otherwise be part of it from the start.
        let execute = Box::pin(async {
            let request = ClientRequest::CallToolRequest(Request::new(upstream_request));
            match self.forward(index, request, &context).await? {
                ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
                ServerResult::CreateTaskResult(task) => Ok(CallToolResponse::Task(task)),
                ServerResult::InputRequiredResult(input) => {
                    Ok(CallToolResponse::InputRequired(input))
                }
                _ => Err(unexpected(index, &self.gateway.names)),
            }
        });
        self.gateway.pipeline.call_tool(&call, execute).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        self.observed(
            "prompts/list",
            self.list_page(
                request,
                &context,
                |caps| caps.prompts.is_some(),
                |p| ClientRequest::ListPromptsRequest(RequestOptionalParam::with_param(p)),
                |result, index, names| match result {
                    ServerResult::ListPromptsResult(mut page) => {
                        for prompt in &mut page.prompts {
                            prompt.name = names.outward(index, &prompt.name);
                        }
                        Some(page)
                    }
                    _ => None,
                },
            ),
        )
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        self.observed("prompts/get", async {
            let (index, inner) = self.route(&request.name, "prompt")?;
            let mut upstream_request = request.clone();
            upstream_request.name = inner.to_owned();
            let request = ClientRequest::GetPromptRequest(Request::new(upstream_request));
            match self.forward(index, request, &context).await? {
                ServerResult::GetPromptResult(result) => Ok(GetPromptResponse::Complete(result)),
                ServerResult::InputRequiredResult(input) => {
                    Ok(GetPromptResponse::InputRequired(input))
                }
                _ => Err(unexpected(index, &self.gateway.names)),
            }
        })
        .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        self.observed(
            "resources/list",
            self.list_page(
                request,
                &context,
                |caps| caps.resources.is_some(),
                |p| ClientRequest::ListResourcesRequest(RequestOptionalParam::with_param(p)),
                |result, index, names| match result {
                    ServerResult::ListResourcesResult(mut page) => {
                        for resource in &mut page.resources {
                            resource.uri = names.outward_uri(index, &resource.uri);
                        }
                        Some(page)
                    }
                    _ => None,
                },
            ),
        )
        .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        self.observed(
            "resources/templates/list",
            self.list_page(
                request,
                &context,
                |caps| caps.resources.is_some(),
                |p| {
                    ClientRequest::ListResourceTemplatesRequest(RequestOptionalParam::with_param(p))
                },
                |result, index, names| match result {
                    ServerResult::ListResourceTemplatesResult(mut page) => {
                        for template in &mut page.resource_templates {
                            template.uri_template =
                                names.outward_uri(index, &template.uri_template);
                        }
                        Some(page)
                    }
                    _ => None,
                },
            ),
        )
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        self.observed("resources/read", async {
            let (index, inner) = self.route_uri(&request.uri)?;
            let mut upstream_request = request.clone();
            upstream_request.uri = inner.to_owned();
            let request = ClientRequest::ReadResourceRequest(Request::new(upstream_request));
            match self.forward(index, request, &context).await? {
                ServerResult::ReadResourceResult(mut result) => {
                    for content in &mut result.contents {
                        rename_contents(content, index, &self.gateway.names);
                    }
                    Ok(ReadResourceResponse::Complete(result))
                }
                ServerResult::InputRequiredResult(input) => {
                    Ok(ReadResourceResponse::InputRequired(input))
                }
                _ => Err(unexpected(index, &self.gateway.names)),
            }
        })
        .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.observed("resources/subscribe", async {
            let (index, inner) = self.route_uri(&request.uri)?;
            let mut upstream_request = request.clone();
            upstream_request.uri = inner.to_owned();
            let request = ClientRequest::SubscribeRequest(Request::new(upstream_request));
            self.forward(index, request, &context).await.map(drop)
        })
        .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.observed("resources/unsubscribe", async {
            let (index, inner) = self.route_uri(&request.uri)?;
            let mut upstream_request = request.clone();
            upstream_request.uri = inner.to_owned();
            let request = ClientRequest::UnsubscribeRequest(Request::new(upstream_request));
            self.forward(index, request, &context).await.map(drop)
        })
        .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        self.observed("completion/complete", async {
            let mut upstream_request = request.clone();
            let index = match &mut upstream_request.r#ref {
                Reference::Prompt(prompt) => {
                    let (index, inner) = self.route(&prompt.name, "prompt")?;
                    prompt.name = inner.to_owned();
                    index
                }
                Reference::Resource(resource) => {
                    let (index, inner) = self.route_uri(&resource.uri)?;
                    resource.uri = inner.to_owned();
                    index
                }
                _ => {
                    return Err(McpError::invalid_params(
                        "unsupported completion reference",
                        None,
                    ));
                }
            };
            let request = ClientRequest::CompleteRequest(Request::new(upstream_request));
            match self.forward(index, request, &context).await? {
                ServerResult::CompleteResult(result) => Ok(result),
                _ => Err(unexpected(index, &self.gateway.names)),
            }
        })
        .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.observed("logging/setLevel", async {
            let connected = self.connected()?;
            for (index, upstream) in connected.upstreams.iter().enumerate() {
                if upstream.info().capabilities.logging.is_some() {
                    let request = ClientRequest::SetLevelRequest(Request::new(request.clone()));
                    self.forward(index, request, &context).await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        let method = request.method.clone();
        self.observed(&method.clone(), async {
            if self.gateway.upstreams.len() != 1 {
                return Err(McpError::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("method not found: {method} (cannot be routed with several upstreams)"),
                    None,
                ));
            }
            match self
                .forward(0, ClientRequest::CustomRequest(request), &context)
                .await?
            {
                ServerResult::CustomResult(result) => Ok(result),
                other => serde_json::to_value(other)
                    .map(CustomResult)
                    .map_err(|e| McpError::internal_error(e.to_string(), None)),
            }
        })
        .await
    }

    async fn on_progress(
        &self,
        notification: ProgressNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        // Progress from the client about a request an upstream sent it.
        let Some(connected) = self.state.get() else {
            return;
        };
        let route = connected
            .relay
            .inflight
            .lock()
            .await
            .client_progress
            .get(&notification.progress_token)
            .cloned();
        if let Some((index, token)) = route {
            let mut params = notification;
            params.progress_token = token;
            connected.upstreams[index]
                .notify(ClientNotification::ProgressNotification(Notification::new(
                    params,
                )))
                .await;
        }
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        self.notify_all(ClientNotification::RootsListChangedNotification(
            RootsListChangedNotification::default(),
        ))
        .await;
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleServer>,
    ) {
        self.notify_all(ClientNotification::CustomNotification(notification))
            .await;
    }

    async fn on_initialized(&self, _context: NotificationContext<RoleServer>) {
        // Each upstream connection completed its own handshake already.
    }
}

fn rename_contents(content: &mut ResourceContents, index: usize, names: &Names) {
    match content {
        ResourceContents::TextResourceContents { uri, .. }
        | ResourceContents::BlobResourceContents { uri, .. } => {
            *uri = names.outward_uri(index, uri);
        }
        _ => {}
    }
}

/// Which client request an upstream's traffic belongs to.
#[derive(Default)]
struct Inflight {
    /// (upstream, upstream request id) → the client's request id.
    calls: HashMap<(usize, RequestId), RequestId>,
    /// (upstream, progress token we gave the upstream) → the client's token.
    upstream_progress: HashMap<(usize, ProgressToken), ProgressToken>,
    /// Progress token we gave the client for an upstream's request →
    /// (upstream, the upstream's token).
    client_progress: HashMap<ProgressToken, (usize, ProgressToken)>,
    /// The client's progress token of a fast-lane call → where the lane
    /// takes its progress (it answers the call on a stream of its own).
    lane_progress: HashMap<ProgressToken, LaneProgress>,
}

/// Where a fast-lane call's progress goes (see [`Session::watch_progress`]).
pub(super) type LaneProgress = tokio::sync::mpsc::Sender<ProgressNotification>;

impl Inflight {
    /// The client request an upstream request most likely belongs to: the
    /// one its HTTP stream names, or else the only call in flight on that
    /// upstream (stdio carries no association).
    fn origin(&self, index: usize, stream: Option<&InboundStreamOrigin>) -> Option<RequestId> {
        if let Some(InboundStreamOrigin::OutboundRequest(id)) = stream {
            return self.calls.get(&(index, id.clone())).cloned();
        }
        let mut on_upstream = self.calls.iter().filter(|((i, _), _)| *i == index);
        match (on_upstream.next(), on_upstream.next()) {
            (Some((_, front)), None) => Some(front.clone()),
            _ => None,
        }
    }
}

/// Carries an upstream's requests and notifications to the client.
struct Relay {
    front: Peer<RoleServer>,
    names: Names,
    inflight: Mutex<Inflight>,
    /// The annotations of each upstream tool seen in a `tools/list` (the
    /// catalog falls back on them), forgotten when the upstream says its
    /// list changed.
    tools: std::sync::Mutex<HashMap<(usize, String), Option<ToolAnnotations>>>,
}

impl Relay {
    fn tools(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(usize, String), Option<ToolAnnotations>>> {
        self.tools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Relay {
    fn index(&self, upstream: &str) -> usize {
        self.names.index_of(upstream).unwrap_or(0)
    }

    async fn relay_request(
        &self,
        upstream: &str,
        mut request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let index = self.index(upstream);
        let origin = self
            .inflight
            .lock()
            .await
            .origin(index, context.extensions.get::<InboundStreamOrigin>());
        if let Some(origin) = origin {
            request
                .extensions_mut()
                .insert(OriginatingRequestId(origin));
        }
        let mut meta = context.meta.clone();
        let upstream_token = meta.get_progress_token();
        meta.remove("progressToken");
        // Sent from a task of its own: inside this handler the SDK would
        // replace the originating request id set above with the upstream's
        // own request id (a task-local that does not cross `spawn`), and the
        // client would get the request on its GET stream, or never, instead
        // of on the stream of the call that caused it.
        let front = self.front.clone();
        let options = PeerRequestOptions::no_options().with_meta(meta);
        let handle =
            tokio::spawn(async move { front.send_cancellable_request(request, options).await })
                .await
                .map_err(|e| {
                    McpError::internal_error(format!("relaying the request failed: {e}"), None)
                })?
                .map_err(client_error)?;
        let token = handle.progress_token.clone();
        if let Some(upstream_token) = upstream_token {
            self.inflight
                .lock()
                .await
                .client_progress
                .insert(token.clone(), (index, upstream_token));
        }
        let peer = handle.peer.clone();
        let id = handle.id.clone();
        let result = tokio::select! {
            response = handle.await_response() => response.map_err(client_error),
            () = context.ct.cancelled() => {
                cancel(&peer, id).await;
                Err(UpstreamError::Cancelled.into_mcp())
            }
        };
        self.inflight.lock().await.client_progress.remove(&token);
        result
    }

    async fn relay_notification(&self, upstream: &str, notification: ServerNotification) {
        let index = self.index(upstream);
        let notification = match notification {
            ServerNotification::ProgressNotification(mut progress) => {
                let key = (index, progress.params.progress_token.clone());
                let (client_token, lane) = {
                    let inflight = self.inflight.lock().await;
                    // Progress for a request whose client asked for none is dropped.
                    let Some(client_token) = inflight.upstream_progress.get(&key).cloned() else {
                        return;
                    };
                    let lane = inflight.lane_progress.get(&client_token).cloned();
                    (client_token, lane)
                };
                progress.params.progress_token = client_token;
                // A lane call's progress rides the lane's own answer.
                if let Some(lane) = lane {
                    // An error means the client stopped reading the answer.
                    let _ = lane.send(progress).await;
                    return;
                }
                ServerNotification::ProgressNotification(progress)
            }
            ServerNotification::ToolListChangedNotification(changed) => {
                self.tools().retain(|(i, _), _| *i != index);
                ServerNotification::ToolListChangedNotification(changed)
            }
            ServerNotification::ResourceUpdatedNotification(mut updated) => {
                updated.params.uri = self.names.outward_uri(index, &updated.params.uri);
                ServerNotification::ResourceUpdatedNotification(updated)
            }
            ServerNotification::LoggingMessageNotification(mut message) => {
                if self.names.namespaced() {
                    message.params.logger = Some(match message.params.logger.take() {
                        Some(logger) => format!("{upstream}/{logger}"),
                        None => upstream.to_owned(),
                    });
                }
                ServerNotification::LoggingMessageNotification(message)
            }
            other => other,
        };
        if let Err(error) = self.front.send_notification(notification).await {
            tracing::debug!(%error, upstream, "notification not delivered to the client");
        }
    }
}

/// The client's answer to a relayed request, as the upstream should see it.
fn client_error(error: ServiceError) -> McpError {
    match error {
        ServiceError::McpError(error) => error,
        ServiceError::TransportClosed => {
            McpError::internal_error("the client disconnected from the gateway", None)
        }
        other => McpError::internal_error(format!("client did not answer: {other}"), None),
    }
}

impl Downstream for Relay {
    fn request(
        &self,
        upstream: &str,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> BoxFuture<'_, Result<ClientResult, McpError>> {
        let upstream = upstream.to_owned();
        Box::pin(async move { self.relay_request(&upstream, request, context).await })
    }

    fn notify(&self, upstream: &str, notification: ServerNotification) -> BoxFuture<'_, ()> {
        let upstream = upstream.to_owned();
        Box::pin(async move { self.relay_notification(&upstream, notification).await })
    }
}
