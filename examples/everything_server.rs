//! The reference "everything" server for the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, run by `tests/conformance.rs`),
//! written with rmcp. It implements every tool, resource, prompt and
//! behaviour the suite's server scenarios ask for, under the names they ask
//! for (`test_simple_text`, `test://static-text`, `test_simple_prompt`, ...).
//!
//! ```text
//! everything_server                        # MCP over stdio (one session)
//! everything_server --http 127.0.0.1:0     # MCP Streamable HTTP at /mcp; prints
//!                                          #   "everything_server listening on http://ADDR/mcp"
//! ```
//!
//! Over HTTP it validates `Host` (loopback names only) and `Origin` (only the
//! loopback origins, any port) against DNS rebinding, sends SSE priming
//! events, and `test_reconnection` closes its own POST stream mid-call so
//! the client has to resume it with `Last-Event-ID` (SEP-1699).
// Logging and resources/subscribe are deprecated in rmcp (SEP-2577), but the
// suite's scenarios exercise them.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use clap::Parser;
use futures::StreamExt;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};

/// A 1x1 PNG (one red pixel), base64.
const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP4z8DwHwAFAAH/VscvDQAAAABJRU5ErkJggg==";
/// A WAV file with a header and one silent 16-bit sample, base64.
const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==";

const STATIC_TEXT_URI: &str = "test://static-text";
const STATIC_BINARY_URI: &str = "test://static-binary";
const WATCHED_URI: &str = "test://watched-resource";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

/// The SSE `retry` this server asks for, in priming events and when it closes
/// a stream on purpose: short, so resuming clients do not wait long.
const SSE_RETRY: Duration = Duration::from_millis(500);

/// Words `completion/complete` offers for prompt arguments.
const COMPLETIONS: [&str; 6] = ["paris", "park", "party", "test", "testing", "tested"];

/// The tool list: (name, description, input schema).
static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
    let none = || json!({ "type": "object", "properties": {} });
    let string_arg = |name: &str, description: &str| {
        json!({
            "type": "object",
            "properties": { name: { "type": "string", "description": description } },
            "required": [name],
        })
    };
    [
        (
            "test_simple_text",
            "Answers with one text block",
            none(),
        ),
        (
            "test_image_content",
            "Answers with one image block (a 1x1 PNG)",
            none(),
        ),
        (
            "test_audio_content",
            "Answers with one audio block (a tiny WAV)",
            none(),
        ),
        (
            "test_embedded_resource",
            "Answers with one embedded text resource",
            none(),
        ),
        (
            "test_multiple_content_types",
            "Answers with a text, an image and an embedded resource",
            none(),
        ),
        (
            "test_tool_with_logging",
            "Sends three info log messages 50 ms apart while it runs",
            none(),
        ),
        (
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100, 50 ms apart, to the request's progress token",
            none(),
        ),
        (
            "test_error_handling",
            "Fails: a tool result with isError set",
            none(),
        ),
        (
            "test_reconnection",
            "Closes its own SSE response stream mid-call (HTTP only) and answers after the client resumes it (SEP-1699)",
            none(),
        ),
        (
            "test_sampling",
            "Asks the client's model to answer the prompt (sampling/createMessage)",
            string_arg("prompt", "The prompt to send to the model"),
        ),
        (
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create)",
            string_arg("message", "The message to show the user"),
        ),
        (
            "test_elicitation_sep1034_defaults",
            "Asks the user for a form whose fields all have defaults (SEP-1034)",
            none(),
        ),
        (
            "test_elicitation_sep1330_enums",
            "Asks the user for a form with the five kinds of enum fields (SEP-1330)",
            none(),
        ),
        (
            "json_schema_2020_12_tool",
            "Takes arguments described with JSON Schema 2020-12 keywords ($schema, $defs, additionalProperties)",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {
                    "address": {
                        "type": "object",
                        "properties": {
                            "street": { "type": "string" },
                            "city": { "type": "string" },
                        },
                    },
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" },
                },
                "additionalProperties": false,
            }),
        ),
    ]
    .into_iter()
    .map(|(name, description, schema)| Tool::new(name, description, object(schema)))
    .collect()
});

/// The form of `test_elicitation`.
fn contact_form() -> Value {
    json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "The user's name" },
            "email": { "type": "string", "description": "The user's email address" },
        },
        "required": ["username", "email"],
    })
}

/// The form of `test_elicitation_sep1034_defaults`: a default for every
/// primitive type.
fn defaults_form() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "User name", "default": "John Doe" },
            "age": { "type": "integer", "description": "User age", "default": 30 },
            "score": { "type": "number", "description": "User score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "User status",
                "enum": ["active", "inactive", "pending"],
                "default": "active",
            },
            "verified": { "type": "boolean", "description": "Verification status", "default": true },
        },
        "required": [],
    })
}

/// The form of `test_elicitation_sep1330_enums`: untitled and titled single
/// select, the legacy `enumNames`, untitled and titled multi-select.
fn enums_form() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("{prefix}{}", i + 1), "title": title }))
            .collect::<Vec<_>>()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": {
                "type": "string",
                "description": "Pick one",
                "enum": ["option1", "option2", "option3"],
            },
            "titledSingle": {
                "type": "string",
                "description": "Pick one (titled)",
                "oneOf": titled("value", ["First Option", "Second Option", "Third Option"]),
            },
            "legacyEnum": {
                "type": "string",
                "description": "Pick one (legacy enumNames)",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {
                "type": "array",
                "description": "Pick one to three",
                "minItems": 1,
                "maxItems": 3,
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
            },
            "titledMulti": {
                "type": "array",
                "description": "Pick one to three (titled)",
                "minItems": 1,
                "maxItems": 3,
                "items": { "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"]) },
            },
        },
        "required": [],
    })
}

/// Severity rank of a log level (debug lowest).
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

fn text_result(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(text)]).into()
}

fn error_result(text: impl Into<String>) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(text)]).into()
}

fn internal(what: &str, error: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("{what}: {error}"), None)
}

/// A string argument of a tool call, required.
fn string_argument(request: &CallToolRequestParams, name: &str) -> Result<String, McpError> {
    match request.arguments.as_ref().and_then(|args| args.get(name)) {
        Some(Value::String(value)) => Ok(value.clone()),
        _ => Err(McpError::invalid_params(
            format!("argument {name:?} (a string) is required"),
            None,
        )),
    }
}

/// A form elicitation with a schema given as JSON.
fn form_elicitation(message: &str, schema: Value) -> Result<ElicitRequestParams, McpError> {
    let requested_schema: ElicitationSchema =
        serde_json::from_value(schema).map_err(|e| internal("elicitation schema", e))?;
    Ok(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: message.to_owned(),
        requested_schema,
    })
}

/// The JSON-RPC id as text (numbers in decimal), for matching ids across
/// layers.
fn request_id_text(id: &RequestId) -> String {
    match id {
        NumberOrString::Number(n) => n.to_string(),
        NumberOrString::String(s) => s.to_string(),
    }
}

/// What the HTTP front knows that a tool needs to close its own SSE stream
/// and to know when the client resumed it.
struct HttpStreams {
    sessions: Arc<LocalSessionManager>,
    seen: Mutex<SeenStreams>,
    changed: tokio::sync::Notify,
}

/// Streams are rmcp's numbers `N` of POST response streams, read from SSE
/// event ids `INDEX/N`.
#[derive(Default)]
struct SeenStreams {
    /// (session id, JSON-RPC id of a `test_reconnection` call) -> the stream
    /// answering it.
    calls: HashMap<(String, String), u64>,
    /// (session id, stream) for each stream a client resumed with a GET and
    /// `Last-Event-ID`.
    resumed: HashSet<(String, u64)>,
}

impl HttpStreams {
    fn seen(&self) -> MutexGuard<'_, SeenStreams> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, update: impl FnOnce(&mut SeenStreams)) {
        update(&mut self.seen());
        self.changed.notify_waiters();
    }

    /// Waits until `check` finds what it looks for, `limit` at most.
    async fn wait_for<T>(
        &self,
        limit: Duration,
        mut check: impl FnMut(&mut SeenStreams) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if let Some(found) = check(&mut self.seen()) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return None;
            }
        }
    }

    /// Closes the POST response stream of the call `context` is handling and
    /// waits (10 s at most) until the client resumes it with a GET and
    /// `Last-Event-ID`, so the answer goes to the resumed stream: rmcp keeps
    /// a stream's messages for a resume only while its call is running.
    async fn close_own_stream(&self, context: &RequestContext<RoleServer>) -> Result<(), String> {
        let parts = context
            .extensions
            .get::<axum::http::request::Parts>()
            .ok_or("no HTTP request")?;
        let session = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("no Mcp-Session-Id")?
            .to_owned();
        let call = (session.clone(), request_id_text(&context.id));
        let stream = self
            .wait_for(Duration::from_secs(5), |seen| seen.calls.remove(&call))
            .await
            .ok_or("the call's stream is unknown")?;
        let handle = self
            .sessions
            .sessions
            .read()
            .await
            .get(session.as_str())
            .cloned()
            .ok_or("no such session")?;
        handle
            .close_sse_stream(stream, Some(SSE_RETRY))
            .await
            .map_err(|e| e.to_string())?;
        let resumed = (session, stream);
        self.wait_for(Duration::from_secs(10), |seen| {
            seen.resumed.remove(&resumed).then_some(())
        })
        .await
        .ok_or_else(|| "the client did not resume the stream within 10 s".to_owned())
    }
}

/// One MCP session's state (a handler is built per session).
#[derive(Clone)]
struct Everything {
    min_level: Arc<AtomicU8>,
    subscriptions: Arc<Mutex<HashSet<String>>>,
    http: Option<Arc<HttpStreams>>,
}

impl Everything {
    fn new(http: Option<Arc<HttpStreams>>) -> Self {
        Everything {
            min_level: Arc::new(AtomicU8::new(rank(LoggingLevel::Debug))),
            subscriptions: Arc::default(),
            http,
        }
    }

    fn subscriptions(&self) -> MutexGuard<'_, HashSet<String>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a log message if its level passes `logging/setLevel`.
    async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, message: &str) {
        if rank(level) < self.min_level.load(Ordering::SeqCst) {
            return;
        }
        let message = LoggingMessageNotificationParam::new(level, message.into())
            .with_logger("everything-server");
        if let Err(error) = peer.notify_logging_message(message).await {
            tracing::warn!(%error, "log notification not sent");
        }
    }

    async fn logging_tool(&self, peer: &Peer<RoleServer>) -> CallToolResponse {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, step) in steps.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.log(peer, LoggingLevel::Info, step).await;
        }
        text_result("Tool with logging executed successfully")
    }

    async fn progress_tool(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let token = context.meta.get_progress_token();
        for (i, progress) in [0u32, 50, 100].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let Some(token) = &token {
                let update = ProgressNotificationParam::new(token.clone(), f64::from(progress))
                    .with_total(100.0)
                    .with_message(format!("Completed step {progress} of 100"));
                context
                    .peer
                    .notify_progress(update)
                    .await
                    .map_err(|e| internal("progress notification", e))?;
            }
        }
        // The result follows the last notification at once, as in the
        // suite's own reference server: a relay must keep them in order.
        let token = token.map(|t| match t.0 {
            NumberOrString::Number(n) => n.to_string(),
            NumberOrString::String(s) => s.to_string(),
        });
        Ok(text_result(
            token.unwrap_or_else(|| "no progress token".into()),
        ))
    }

    async fn reconnection_tool(&self, context: &RequestContext<RoleServer>) -> CallToolResponse {
        if let Some(http) = &self.http
            && let Err(error) = http.close_own_stream(context).await
        {
            return error_result(format!("could not close the SSE stream: {error}"));
        }
        // Over stdio there is no stream to close; the call just answers.
        text_result(
            "Reconnection test completed successfully. If you received this, \
             the client properly reconnected after stream closure.",
        )
    }

    async fn sampling_tool(
        &self,
        request: &CallToolRequestParams,
        peer: &Peer<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let prompt = string_argument(request, "prompt")?;
        let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
        Ok(match peer.create_message(params).await {
            Ok(reply) => {
                let text = reply
                    .message
                    .content
                    .first()
                    .and_then(|block| block.as_text())
                    .map(|text| text.text.clone())
                    .unwrap_or_default();
                text_result(format!("LLM response: {text}"))
            }
            Err(error) => error_result(format!("Sampling failed: {error}")),
        })
    }

    async fn elicitation_tool(
        &self,
        peer: &Peer<RoleServer>,
        message: &str,
        schema: Value,
    ) -> Result<CallToolResponse, McpError> {
        let params = form_elicitation(message, schema)?;
        Ok(match peer.create_elicitation(params).await {
            Ok(answer) => {
                let action = serde_json::to_value(&answer.action).unwrap_or(Value::Null);
                let action = action.as_str().unwrap_or("unknown");
                let content = answer.content.unwrap_or_else(|| json!({}));
                text_result(format!(
                    "Elicitation completed: action={action}, content={content}"
                ))
            }
            Err(error) => error_result(format!("Elicitation failed: {error}")),
        })
    }
}

impl ServerHandler for Everything {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_logging()
            .enable_completions()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                "warden-everything-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Implements what the MCP conformance suite's server scenarios ask for",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(TOOLS.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        TOOLS.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let peer = &context.peer;
        Ok(match request.name.as_ref() {
            "test_simple_text" => text_result("This is a simple text response for testing."),
            "test_image_content" => {
                CallToolResult::success(vec![ContentBlock::image(PNG_BASE64, "image/png")]).into()
            }
            "test_audio_content" => {
                CallToolResult::success(vec![ContentBlock::audio(WAV_BASE64, "audio/wav")]).into()
            }
            "test_embedded_resource" => {
                let resource = ResourceContents::text(
                    "This is an embedded resource content.",
                    "test://embedded-resource",
                )
                .with_mime_type("text/plain");
                CallToolResult::success(vec![ContentBlock::resource(resource)]).into()
            }
            "test_multiple_content_types" => {
                let resource = ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json");
                CallToolResult::success(vec![
                    ContentBlock::text("Multiple content types test:"),
                    ContentBlock::image(PNG_BASE64, "image/png"),
                    ContentBlock::resource(resource),
                ])
                .into()
            }
            "test_tool_with_logging" => self.logging_tool(peer).await,
            "test_tool_with_progress" => self.progress_tool(&context).await?,
            "test_error_handling" => {
                error_result("This tool intentionally returns an error for testing")
            }
            "test_reconnection" => self.reconnection_tool(&context).await,
            "test_sampling" => self.sampling_tool(&request, peer).await?,
            "test_elicitation" => {
                let message = string_argument(&request, "message")?;
                self.elicitation_tool(peer, &message, contact_form())
                    .await?
            }
            "test_elicitation_sep1034_defaults" => {
                let message = "Please review and update the form fields with defaults";
                self.elicitation_tool(peer, message, defaults_form())
                    .await?
            }
            "test_elicitation_sep1330_enums" => {
                let message = "Please select options from the enum fields";
                self.elicitation_tool(peer, message, enums_form()).await?
            }
            "json_schema_2020_12_tool" => {
                let args = Value::Object(request.arguments.clone().unwrap_or_default());
                text_result(format!("JSON Schema 2020-12 tool called with: {args}"))
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown tool {other:?}"),
                    None,
                ));
            }
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(vec![
            Resource::new(STATIC_TEXT_URI, "static-text")
                .with_title("Static Text Resource")
                .with_description("A static text resource")
                .with_mime_type("text/plain"),
            Resource::new(STATIC_BINARY_URI, "static-binary")
                .with_title("Static Binary Resource")
                .with_description("A static binary resource (a 1x1 PNG)")
                .with_mime_type("image/png"),
            Resource::new(WATCHED_URI, "watched-resource")
                .with_title("Watched Resource")
                .with_description("A resource clients may subscribe to")
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template = ResourceTemplate::new(
            format!("{TEMPLATE_PREFIX}{{id}}{TEMPLATE_SUFFIX}"),
            "template",
        )
        .with_title("Resource Template")
        .with_description("Data for an id, substituted into the URI")
        .with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![template]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = request.uri;
        let contents = match uri.as_str() {
            STATIC_TEXT_URI => {
                ResourceContents::text("This is the content of the static text resource.", &uri)
                    .with_mime_type("text/plain")
            }
            STATIC_BINARY_URI => {
                ResourceContents::blob(PNG_BASE64, &uri).with_mime_type("image/png")
            }
            WATCHED_URI => ResourceContents::text("Watched resource content", &uri)
                .with_mime_type("text/plain"),
            other => {
                let id = other
                    .strip_prefix(TEMPLATE_PREFIX)
                    .and_then(|rest| rest.strip_suffix(TEMPLATE_SUFFIX))
                    .filter(|id| !id.is_empty() && !id.contains('/'));
                let Some(id) = id else {
                    let message = format!("no resource {uri}");
                    return Err(McpError::resource_not_found(message, None));
                };
                let data =
                    json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
                ResourceContents::text(data.to_string(), &uri).with_mime_type("application/json")
            }
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let message = format!("Subscribed to resource: {}", request.uri);
        self.subscriptions().insert(request.uri);
        self.log(&context.peer, LoggingLevel::Info, &message).await;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let message = format!("Unsubscribed from resource: {}", request.uri);
        self.subscriptions().remove(&request.uri);
        self.log(&context.peer, LoggingLevel::Info, &message).await;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let argument = |name: &str, description: &str| {
            PromptArgument::new(name)
                .with_description(description)
                .with_required(true)
        };
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new(
                "test_simple_prompt",
                Some("A prompt without arguments"),
                None,
            )
            .with_title("Simple Test Prompt"),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with two required arguments"),
                Some(vec![
                    argument("arg1", "First test argument"),
                    argument("arg2", "Second test argument"),
                ]),
            )
            .with_title("Prompt With Arguments"),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt that embeds a resource"),
                Some(vec![argument(
                    "resourceUri",
                    "URI of the resource to embed",
                )]),
            )
            .with_title("Prompt With Embedded Resource"),
            Prompt::new(
                "test_prompt_with_image",
                Some("A prompt that includes an image"),
                None,
            )
            .with_title("Prompt With Image"),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let argument = |name: &str| {
            request
                .arguments
                .as_ref()
                .and_then(|args| args.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    McpError::invalid_params(format!("argument {name:?} is required"), None)
                })
        };
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => {
                let (arg1, arg2) = (argument("arg1")?, argument("arg2")?);
                vec![PromptMessage::new_text(
                    Role::User,
                    format!("Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"),
                )]
            }
            "test_prompt_with_embedded_resource" => {
                let uri = argument("resourceUri")?;
                let resource =
                    ResourceContents::text("Embedded resource content for testing.", uri)
                        .with_mime_type("text/plain");
                vec![
                    PromptMessage::new(Role::User, ContentBlock::resource(resource)),
                    PromptMessage::new_text(
                        Role::User,
                        "Please process the embedded resource above.",
                    ),
                ]
            }
            "test_prompt_with_image" => vec![
                PromptMessage::new(Role::User, ContentBlock::image(PNG_BASE64, "image/png")),
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                let message = format!("unknown prompt {other:?}");
                return Err(McpError::invalid_params(message, None));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let typed = request.argument.value.to_lowercase();
        let values = COMPLETIONS
            .iter()
            .filter(|word| word.starts_with(&typed))
            .map(|word| (*word).to_owned())
            .collect();
        let completion =
            CompletionInfo::with_all_values(values).map_err(|e| internal("completion", e))?;
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.min_level.store(rank(request.level), Ordering::SeqCst);
        Ok(())
    }
}

/// The JSON-RPC id of a POST body that calls `test_reconnection`.
fn reconnection_call_id(body: &[u8]) -> Option<String> {
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("method")? != "tools/call"
        || message.pointer("/params/name")? != "test_reconnection"
    {
        return None;
    }
    match message.get("id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The rmcp stream number `N` of an SSE event id `INDEX/N`.
fn stream_of_event_id(id: &str) -> Option<u64> {
    id.trim().split_once('/')?.1.parse().ok()
}

/// The stream number of the first SSE `id:` line in `bytes`.
fn stream_number(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix("id:"))
        .find_map(stream_of_event_id)
}

/// Notes which SSE stream answers each `test_reconnection` call, so the
/// tool can close it (rmcp tells a handler its session, not its stream), and
/// which streams clients resume.
async fn track_reconnection_streams(
    State(http): State<Arc<HttpStreams>>,
    request: Request,
    next: Next,
) -> Response {
    // (A block: a borrow of the request must not live across an await.)
    let (session, last_event_id) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header("mcp-session-id"), header("last-event-id"))
    };
    let Some(session) = session else {
        return next.run(request).await;
    };
    if request.method() == axum::http::Method::GET {
        let stream = last_event_id.as_deref().and_then(stream_of_event_id);
        let response = next.run(request).await;
        // rmcp has switched the stream over to this response by now.
        if let Some(stream) = stream
            && response.status().is_success()
        {
            http.record(|seen| {
                seen.resumed.insert((session, stream));
            });
        }
        return response;
    }
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(body) => body,
        Err(_) => return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let call = reconnection_call_id(&body);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let Some(call) = call else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let mut head = Vec::new();
    let mut found = false;
    let body = body.into_data_stream().inspect(move |chunk| {
        if found {
            return;
        }
        if let Ok(chunk) = chunk {
            head.extend_from_slice(chunk);
        }
        if let Some(stream) = stream_number(&head) {
            found = true;
            http.record(|seen| {
                seen.calls.insert((session.clone(), call.clone()), stream);
            });
        }
    });
    Response::from_parts(parts, Body::from_stream(body))
}

async fn serve_http(addr: SocketAddr) -> anyhow::Result<()> {
    let mut config = StreamableHttpServerConfig::default().with_sse_retry(Some(SSE_RETRY));
    if addr.ip().is_loopback() {
        // DNS-rebinding defence: loopback Host names (rmcp's default) and
        // loopback Origins only, any port.
        config = config
            .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
            .enforce_origin_validation();
    } else {
        config = config.disable_allowed_hosts();
    }
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.sse_retry = Some(SSE_RETRY);
    let sessions = Arc::new(sessions);
    let http = Arc::new(HttpStreams {
        sessions: sessions.clone(),
        seen: Mutex::default(),
        changed: tokio::sync::Notify::new(),
    });
    let handler_http = http.clone();
    let service = StreamableHttpService::new(
        move || Ok(Everything::new(Some(handler_http.clone()))),
        sessions,
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", service).layer(
        axum::middleware::from_fn_with_state(http, track_reconnection_streams),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "everything_server listening on http://{bound}/mcp")?;
    stdout.flush()?;
    drop(stdout);
    // Without TCP_NODELAY, small SSE writes meet delayed ACKs: ~40 ms each.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

#[derive(Parser)]
#[command(about = "The MCP conformance suite's everything server, in Rust")]
struct Cli {
    /// Serve MCP Streamable HTTP at /mcp on this address (port 0: any free
    /// port) instead of stdio; the bound URL is printed on stdout.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match Cli::parse().http {
        Some(addr) => serve_http(addr).await,
        None => {
            let service = Everything::new(None)
                .serve(rmcp::transport::stdio())
                .await?;
            service.waiting().await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The elicitation forms reach the wire exactly as written: rmcp's typed
    /// schema keeps every keyword the suite checks.
    #[test]
    fn elicitation_forms_round_trip() {
        for form in [contact_form(), defaults_form(), enums_form()] {
            let schema: ElicitationSchema = serde_json::from_value(form.clone()).unwrap();
            assert_eq!(serde_json::to_value(&schema).unwrap(), form);
        }
    }

    #[test]
    fn json_schema_2020_12_keywords_are_kept() {
        let tool = TOOLS
            .iter()
            .find(|t| t.name == "json_schema_2020_12_tool")
            .unwrap();
        let schema = &tool.input_schema;
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert!(schema["$defs"]["address"].is_object());
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn stream_numbers_come_from_sse_event_ids() {
        assert_eq!(stream_number(b"id: 0/7\nretry: 500\ndata:\n\n"), Some(7));
        assert_eq!(stream_number(b"id: 3\ndata: {}\n\n"), None);
        assert_eq!(stream_number(b"data: {}\n"), None);
        assert_eq!(stream_of_event_id("2/7"), Some(7));
        assert_eq!(stream_of_event_id("2"), None);
    }

    #[test]
    fn only_test_reconnection_calls_are_tracked() {
        let call = |name: &str, id: Value| {
            serde_json::to_vec(&json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name },
            }))
            .unwrap()
        };
        assert_eq!(
            reconnection_call_id(&call("test_reconnection", json!(1))),
            Some("1".into())
        );
        assert_eq!(
            reconnection_call_id(&call("test_reconnection", json!("a"))),
            Some("a".into())
        );
        assert_eq!(
            reconnection_call_id(&call("test_simple_text", json!(1))),
            None
        );
    }
}
