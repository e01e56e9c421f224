//! The spine: every `tools/call` passes through [`Pipeline::call_tool`], and
//! this is the only place that composes stages. Read top to bottom, it is
//! the order a call takes (see DESIGN.md §1).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ErrorData as McpError;
use rmcp::model::CallToolResponse;
use serde_json::Value;

use crate::audit::Audit;
use crate::audit::record::Status;
use crate::identity::Principal;
use crate::metrics::{Metrics, Outcome};

/// What the front knows about a tool call when it enters the pipeline.
#[derive(Debug, Clone)]
pub struct ToolCall {
    /// The verified caller, as the front authenticated it (`None` only if
    /// the front could not attach one, which the pipeline refuses).
    pub principal: Option<Arc<Principal>>,
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
}

impl ToolCall {
    /// A new call id.
    pub fn new_id() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

/// The composed call pipeline.
#[derive(Clone)]
pub struct Pipeline {
    metrics: Metrics,
    audit: Arc<Audit>,
}

impl Pipeline {
    pub fn new(metrics: Metrics, audit: Arc<Audit>) -> Self {
        Self { metrics, audit }
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    /// Runs one tool call through every stage. `execute` performs the call
    /// (stage 7, the executor) and is only polled once all earlier stages
    /// have let the call through.
    pub async fn call_tool(
        &self,
        call: &ToolCall,
        execute: impl Future<Output = Result<CallToolResponse, McpError>>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();

        // 1. authenticate: the front verified the bearer token; no principal, no call.
        if call.principal.is_none() {
            let refused = Err(McpError::invalid_request(
                "unauthenticated: the call carries no verified principal",
                None,
            ));
            self.record(call, &refused, started.elapsed());
            return refused;
        }

        // 6. record intent: durable before anything runs, or the call is refused.
        if let Err(error) = self.audit.intent(call).await {
            let refused = Err(McpError::internal_error(
                format!("{error}; the call was not forwarded"),
                Some(serde_json::json!({ "reason": "audit_unavailable" })),
            ));
            self.record(call, &refused, started.elapsed());
            return refused;
        }

        // 7. execute
        let result = execute.await;

        // 8. record the outcome
        let elapsed = started.elapsed();
        let (status, error) = status_of(&result);
        self.audit
            .outcome(call, status, error.as_deref(), elapsed, None);
        self.record(call, &result, elapsed);
        result
    }

    /// Metrics and the operational log line (the audit log is separate).
    fn record(
        &self,
        call: &ToolCall,
        result: &Result<CallToolResponse, McpError>,
        elapsed: Duration,
    ) {
        let (outcome, error) = match result {
            Ok(CallToolResponse::Complete(done)) if done.is_error == Some(true) => {
                (Outcome::tool_error, None)
            }
            Ok(_) => (Outcome::ok, None),
            Err(e) if e.code == crate::executor::REQUEST_CANCELLED => {
                (Outcome::cancelled, Some(e.message.to_string()))
            }
            Err(e) => (Outcome::error, Some(e.message.to_string())),
        };
        self.metrics.observe("tools/call", outcome, elapsed);
        let (tid, oid, who) = match &call.principal {
            Some(p) => (p.tid.as_str(), p.oid.as_str(), p.display_name.as_str()),
            None => ("", "", ""),
        };
        tracing::info!(
            target: "warden::call",
            tid,
            oid,
            principal = who,
            session = %call.session,
            tool = %call.tool,
            upstream = %call.upstream,
            upstream_tool = %call.upstream_tool,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            outcome = ?outcome,
            error = error.as_deref(),
            "tools/call"
        );
    }
}

/// The audit status of a finished call, and its error text.
fn status_of(result: &Result<CallToolResponse, McpError>) -> (Status, Option<String>) {
    match result {
        Ok(CallToolResponse::Complete(done)) if done.is_error == Some(true) => {
            let text = done
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            (Status::ToolError, (!text.is_empty()).then_some(text))
        }
        Ok(_) => (Status::Ok, None),
        Err(e) if e.code == crate::executor::REQUEST_CANCELLED => {
            (Status::Cancelled, Some(e.message.to_string()))
        }
        Err(e) => (Status::Error, Some(e.message.to_string())),
    }
}
