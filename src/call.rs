//! The tool call as the stages share it: built by the front once the
//! caller is authenticated, read by resolution, risk, policy, approvals and
//! the audit log. A leaf module: it depends on no stage.

use std::sync::Arc;

use rmcp::model::ToolAnnotations;
use serde_json::Value;

use crate::identity::Principal;

/// What the front knows about a tool call when it enters the pipeline.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The verified caller, as the front authenticated it.
    pub principal: Arc<Principal>,
    /// MCP session the call arrived on (`stdio` for the stdio front).
    pub session: String,
    /// The tool name as the client called it (namespaced if several upstreams).
    pub tool: String,
    /// The upstream that serves the tool.
    pub upstream: String,
    /// The tool name at the upstream.
    pub upstream_tool: String,
    /// Identifies the call across its audit records (UUIDv7).
    pub call_id: String,
    /// The call's arguments as the client sent them.
    pub arguments: Option<Value>,
    /// The HTTP `User-Agent` of the client, when there is one.
    pub user_agent: Option<String>,
    /// The tool's MCP annotations as its upstream lists them (resolution
    /// falls back on them for tools the catalog does not name).
    pub annotations: Option<ToolAnnotations>,
    /// Where the client finds the protected-resource metadata, for step-up
    /// challenges (`None` on stdio).
    pub resource_metadata: Option<String>,
}

impl ToolCall {
    /// A new call id.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}
