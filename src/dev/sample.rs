//! The sample upstream: a small MCP server that exercises everything MCP
//! carries (tools with progress, cancellation, elicitation, sampling, roots
//! and logging; paginated lists; resources with subscriptions and templates;
//! prompts; completion). `warden dev` runs it behind the gateway, and the
//! integration tests drive it through `examples/demo_upstream.rs`.
//!
//! `DEMO_TAG` (env) is echoed by the `whoami` tool so tests can tell
//! processes apart; `crash` exits the process to simulate a failing upstream.
// `DEMO_CALL_LOG` (env) names a file to which `echo` appends each text it
// receives, so tests can compare what reached the upstream with the audit log.
// Logging, sampling, roots and resources/subscribe are deprecated in rmcp
// (SEP-2577) but are exactly what this server exists to exercise.
#![allow(deprecated)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::{ElicitationError, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceExt, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

const PAGE_SIZE: usize = 5;
const GREETING_URI: &str = "demo://greeting";
const COUNTER_URI: &str = "demo://counter";
const ITEM_PREFIX: &str = "demo://items/";
const NAMES: [&str; 3] = ["alice", "albert", "bob"];

/// Process-wide: how many `wait_for_cancel` calls were cancelled.
static CANCELLATIONS: AtomicU64 = AtomicU64::new(0);
/// Process-wide value of `demo://counter`.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// State of one MCP session (one handler is built per session).
struct Session {
    /// Rank (see `rank`) of the level last set by logging/setLevel.
    min_level: AtomicU8,
    subscriptions: Mutex<HashSet<String>>,
}

#[derive(Clone)]
struct Demo {
    tools: ToolRouter<Demo>,
    session: Arc<Session>,
}

#[derive(Deserialize, JsonSchema)]
struct TextArgs {
    text: String,
}

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Deserialize, JsonSchema)]
struct ProgressArgs {
    steps: u32,
    delay_ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct PromptArgs {
    prompt: String,
}

#[derive(Deserialize, JsonSchema)]
struct LogArgs {
    level: LoggingLevel,
    message: String,
}

/// The form `elicit_name` asks the client to fill in.
#[derive(Deserialize, JsonSchema)]
struct NameForm {
    name: String,
}
rmcp::elicit_safe!(NameForm);

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

fn internal(what: &str, error: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("{what}: {error}"), None)
}

fn tool_failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// One page of `items` starting at `cursor` (a decimal offset), and the
/// cursor of the next page if there is one.
fn page<T>(items: Vec<T>, cursor: Option<&str>) -> Result<(Vec<T>, Option<String>), McpError> {
    let start = match cursor {
        None => 0,
        Some(cursor) => cursor
            .parse::<usize>()
            .ok()
            .filter(|start| *start <= items.len())
            .ok_or_else(|| McpError::invalid_params(format!("invalid cursor {cursor:?}"), None))?,
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((
        items.into_iter().skip(start).take(PAGE_SIZE).collect(),
        next,
    ))
}

impl Demo {
    fn new() -> Self {
        Demo {
            tools: Self::tool_router(),
            session: Arc::new(Session {
                min_level: AtomicU8::new(rank(LoggingLevel::Info)),
                subscriptions: Mutex::default(),
            }),
        }
    }

    fn subscriptions(&self) -> MutexGuard<'_, HashSet<String>> {
        let subscriptions = self.session.subscriptions.lock();
        subscriptions.unwrap_or_else(PoisonError::into_inner)
    }
}

#[tool_router]
impl Demo {
    #[tool(
        description = "Returns the text unchanged",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn echo(&self, Parameters(args): Parameters<TextArgs>) -> String {
        record_call(&args.text);
        args.text
    }

    #[tool(
        description = "Adds two numbers",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(
        description = "Sends `steps` progress notifications, each followed by `delay_ms`",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps, delay_ms }): Parameters<ProgressArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        // rmcp moves the request's `_meta` (with `progressToken`) into the context.
        let token = context.meta.get_progress_token();
        for step in 1..=steps {
            if let Some(token) = &token {
                let update = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step}"));
                context
                    .peer
                    .notify_progress(update)
                    .await
                    .map_err(|e| internal("progress notification", e))?;
            }
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        Ok(format!("done {steps}"))
    }

    #[tool(
        description = "Waits until the client cancels the call (30 s at most)",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn wait_for_cancel(&self, cancelled: CancellationToken) -> String {
        tokio::select! {
            () = cancelled.cancelled() => {
                CANCELLATIONS.fetch_add(1, Ordering::SeqCst);
                "cancelled".to_owned()
            }
            () = tokio::time::sleep(Duration::from_secs(30)) => "not cancelled".to_owned(),
        }
    }

    #[tool(
        description = "Never answers: a hung server (waits an hour, and ignores cancellation)",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn hang(&self) -> String {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "woke up".to_owned()
    }

    #[tool(
        description = "How many calls this process saw cancelled",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn cancellations(&self) -> String {
        CANCELLATIONS.load(Ordering::SeqCst).to_string()
    }

    #[tool(
        description = "Asks the user for their name (elicitation)",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn elicit_name(&self, peer: Peer<RoleServer>) -> CallToolResult {
        let text = match peer.elicit::<NameForm>("What is your name?").await {
            Ok(Some(form)) => format!("hello {}", form.name),
            Err(ElicitationError::UserDeclined) => "declined".to_owned(),
            Ok(None) | Err(ElicitationError::UserCancelled) => "cancelled".to_owned(),
            Err(error) => return tool_failure(format!("elicitation failed: {error}")),
        };
        CallToolResult::success(vec![ContentBlock::text(text)])
    }

    #[tool(
        description = "Asks for a name but gives up after 200 ms, cancelling the request (server-to-client cancellation)",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn elicit_impatiently(&self, peer: Peer<RoleServer>) -> CallToolResult {
        let answer = peer
            .elicit_with_timeout::<NameForm>("Quick, your name?", Some(Duration::from_millis(200)))
            .await;
        let text = match answer {
            Ok(Some(form)) => format!("hello {}", form.name),
            Err(ElicitationError::Service(rmcp::ServiceError::Timeout { .. })) => {
                "gave up waiting".to_owned()
            }
            Ok(None) => "cancelled".to_owned(),
            Err(error) => format!("elicitation failed: {error}"),
        };
        CallToolResult::success(vec![ContentBlock::text(text)])
    }

    #[tool(
        description = "Asks the client's model to answer the prompt (sampling)",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn sample(
        &self,
        Parameters(PromptArgs { prompt }): Parameters<PromptArgs>,
        peer: Peer<RoleServer>,
    ) -> CallToolResult {
        let request =
            CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
        match peer.create_message(request).await {
            Ok(reply) => {
                let text = reply
                    .message
                    .content
                    .first()
                    .and_then(|block| block.as_text())
                    .map(|text| text.text.as_str())
                    .unwrap_or_default();
                CallToolResult::success(vec![ContentBlock::text(format!("model said: {text}"))])
            }
            Err(error) => tool_failure(format!("sampling failed: {error}")),
        }
    }

    #[tool(
        description = "Lists the client's roots, comma-separated",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_roots(&self, peer: Peer<RoleServer>) -> CallToolResult {
        match peer.list_roots().await {
            Ok(result) => {
                let uris: Vec<String> = result.roots.into_iter().map(|root| root.uri).collect();
                CallToolResult::success(vec![ContentBlock::text(uris.join(","))])
            }
            Err(error) => tool_failure(format!("roots/list failed: {error}")),
        }
    }

    #[tool(
        description = "Sends a log message if the level passes logging/setLevel",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn log(
        &self,
        Parameters(LogArgs { level, message }): Parameters<LogArgs>,
        peer: Peer<RoleServer>,
    ) -> Result<String, McpError> {
        if rank(level) < self.session.min_level.load(Ordering::SeqCst) {
            return Ok("filtered".to_owned());
        }
        let notification =
            LoggingMessageNotificationParam::new(level, message.into()).with_logger("demo");
        peer.notify_logging_message(notification)
            .await
            .map_err(|e| internal("log notification", e))?;
        Ok("logged".to_owned())
    }

    #[tool(
        description = "Exits the process with code 3 before answering",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = false
        )
    )]
    fn crash(&self) -> String {
        std::process::exit(3)
    }

    #[tool(
        description = "Answers with a JSON-RPC invalid_params error",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn fail(&self) -> Result<String, McpError> {
        Err(McpError::invalid_params("deliberate failure", None))
    }

    #[tool(
        description = "Answers with a tool result marked isError",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn tool_error(&self) -> CallToolResult {
        tool_failure("tool failed on purpose".to_owned())
    }

    #[tool(
        description = "Increments demo://counter and notifies subscribers",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn bump_counter(&self, peer: Peer<RoleServer>) -> Result<String, McpError> {
        let value = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
        if self.subscriptions().contains(COUNTER_URI) {
            peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(COUNTER_URI))
                .await
                .map_err(|e| internal("resource update notification", e))?;
        }
        Ok(value.to_string())
    }

    #[tool(
        description = "Sends tools, prompts and resources list_changed notifications",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn notify_changes(&self, peer: Peer<RoleServer>) -> Result<String, McpError> {
        peer.notify_tool_list_changed()
            .await
            .map_err(|e| internal("tools/list_changed", e))?;
        peer.notify_prompt_list_changed()
            .await
            .map_err(|e| internal("prompts/list_changed", e))?;
        peer.notify_resource_list_changed()
            .await
            .map_err(|e| internal("resources/list_changed", e))?;
        Ok("notified".to_owned())
    }

    #[tool(
        description = "Lists the names of the HTTP headers of this request (Streamable HTTP only), sorted, comma-separated",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn request_headers(&self, context: RequestContext<RoleServer>) -> String {
        let Some(parts) = context.extensions.get::<axum::http::request::Parts>() else {
            return "not http".to_owned();
        };
        let mut names: Vec<&str> = parts.headers.keys().map(|name| name.as_str()).collect();
        names.sort_unstable();
        names.join(",")
    }

    #[tool(
        description = "Tells DEMO_TAG and the process id",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    fn whoami(&self) -> String {
        let tag = std::env::var("DEMO_TAG").unwrap_or_else(|_| "none".to_owned());
        format!("tag={tag} pid={}", std::process::id())
    }
}

impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("demo-upstream", "1.2.3"))
            .with_instructions("Demo upstream for Warden tests")
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let cursor = request.as_ref().and_then(|r| r.cursor.as_deref());
        let (tools, next_cursor) = page(self.tools.list_all(), cursor)?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next_cursor;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).cloned()
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(GREETING_URI, "greeting").with_mime_type("text/plain"),
            Resource::new(COUNTER_URI, "counter").with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new(format!("{ITEM_PREFIX}{{id}}"), "item")
            .with_mime_type("text/plain");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let text = match uri.as_str() {
            GREETING_URI => "hello from demo".to_owned(),
            COUNTER_URI => COUNTER.load(Ordering::SeqCst).to_string(),
            other => match other.strip_prefix(ITEM_PREFIX) {
                Some(id) if !id.is_empty() => format!("item {id}"),
                _ => {
                    let message = format!("no resource {uri}");
                    return Err(McpError::resource_not_found(message, None));
                }
            },
        };
        let contents = ResourceContents::text(text, uri).with_mime_type("text/plain");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions().insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions().remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let name = PromptArgument::new("name")
            .with_description("Who to greet")
            .with_required(true);
        let greet = Prompt::new("greet", Some("Greets someone"), Some(vec![name]));
        Ok(ListPromptsResult::with_all_items(vec![greet]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if request.name != "greet" {
            let message = format!("no prompt {:?}", request.name);
            return Err(McpError::invalid_params(message, None));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("name"))
            .and_then(|name| name.as_str())
            .ok_or_else(|| McpError::invalid_params("argument 'name' is required", None))?;
        let message = PromptMessage::new_text(Role::User, format!("Please greet {name}."));
        Ok(GetPromptResult::new(vec![message])
            .with_description("Greets someone")
            .into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let typed = &request.argument.value;
        let values =
            if request.r#ref.as_prompt_name() == Some("greet") && request.argument.name == "name" {
                NAMES
                    .iter()
                    .filter(|name| name.starts_with(typed.as_str()))
                    .map(|name| (*name).to_owned())
                    .collect()
            } else {
                Vec::new()
            };
        let completion =
            CompletionInfo::with_all_values(values).map_err(|e| internal("completion", e))?;
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.session
            .min_level
            .store(rank(request.level), Ordering::SeqCst);
        Ok(())
    }
}

/// Serves MCP Streamable HTTP at `/mcp` on `addr` until the process ends.
pub async fn serve_http(addr: SocketAddr) -> std::io::Result<()> {
    serve_http_then(addr, |_| Ok(())).await
}

/// The sample upstream over MCP Streamable HTTP at `/mcp` on the Unix
/// socket `path` (made here), until the process ends.
pub async fn serve_http_unix(path: &std::path::Path) -> std::io::Result<()> {
    let service = StreamableHttpService::new(
        || Ok(Demo::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::UnixListener::bind(path)?;
    tracing::info!(socket = %path.display(), "sample upstream: MCP at /mcp");
    axum::serve(listener, app).await?;
    Ok(())
}

/// [`serve_http`], calling `bound` with the address actually bound (port
/// 0 picks a free one) before serving: a caller learns the port without
/// picking one ahead and racing others for it.
pub async fn serve_http_then(
    addr: SocketAddr,
    bound: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    if !addr.ip().is_loopback() {
        // Reachable under other names than localhost: accept any Host header.
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        || Ok(Demo::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    // Without TCP_NODELAY, small SSE writes meet delayed ACKs: ~40 ms per call.
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "sample upstream: MCP at /mcp");
    bound(listener.local_addr()?)?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

/// Serves one MCP session on stdin/stdout until the client closes it.
pub async fn serve_stdio() -> std::io::Result<()> {
    let service = Demo::new()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(std::io::Error::other)?;
    service.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

/// Appends `text` to the file named by `DEMO_CALL_LOG`, if set.
fn record_call(text: &str) {
    use std::io::Write;
    if let Some(path) = std::env::var_os("DEMO_CALL_LOG") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            // One write per line, so concurrent calls never interleave.
            let _ = file.write_all(format!("{text}\n").as_bytes());
        }
    }
}
