//! The smallest, fastest MCP server, for benchmarks: one tool, `echo {text}`.
//!
//! ```text
//! echo_upstream                       # MCP over stdio
//! echo_upstream --http 127.0.0.1:PORT # MCP Streamable HTTP at /mcp
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::serve::ListenerExt;
use clap::Parser;
use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};

static ECHO: LazyLock<Tool> = LazyLock::new(|| {
    let schema = serde_json::json!({
        "type": "object",
        "properties": { "text": { "type": "string" } },
        "required": ["text"],
    });
    Tool::new("echo", "Returns the text unchanged", object(schema))
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
});

#[derive(Clone, Copy)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("echo-upstream", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![ECHO.clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == "echo").then(|| ECHO.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if request.name != "echo" {
            return Err(McpError::invalid_params("tool not found", None));
        }
        let text = match request.arguments.as_ref().and_then(|args| args.get("text")) {
            Some(serde_json::Value::String(text)) => text.clone(),
            _ => return Err(McpError::invalid_params("`text` must be a string", None)),
        };
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

#[derive(Parser)]
#[command(about = "Minimal MCP upstream with one tool, echo")]
struct Cli {
    /// Serve MCP Streamable HTTP at /mcp on this address instead of stdio.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
}

async fn serve_http(addr: SocketAddr) -> anyhow::Result<()> {
    let mut config = StreamableHttpServerConfig::default();
    if !addr.ip().is_loopback() {
        config = config.disable_allowed_hosts();
    }
    let manager = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(|| Ok(Echo), manager, config);
    let app = axum::Router::new().nest_service("/mcp", service);
    // Without TCP_NODELAY, small SSE writes meet delayed ACKs: ~40 ms per call.
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().http {
        Some(addr) => serve_http(addr).await,
        None => {
            let service = Echo.serve(rmcp::transport::stdio_pipes()).await?;
            service.waiting().await?;
            Ok(())
        }
    }
}
