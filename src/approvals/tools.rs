//! Warden's own MCP tools for asking ahead: `request_access` (a time-window
//! grant request) and `access_status` (the caller's requests and grants).
//! The gateway lists them beside the upstreams' tools to every signed-in
//! caller and answers them itself; their names are reserved.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Approvals, Filter};
use crate::identity::Principal;

pub const REQUEST_ACCESS: &str = "request_access";
pub const ACCESS_STATUS: &str = "access_status";

/// Whether `name` is one of Warden's own tools.
pub fn is_warden_tool(name: &str) -> bool {
    name == REQUEST_ACCESS || name == ACCESS_STATUS
}

/// The tools as `tools/list` shows them.
pub fn list() -> Vec<Tool> {
    let request_schema = json!({
        "type": "object",
        "properties": {
            "operations": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Azure operations (Microsoft.Compute/virtualMachines/delete), patterns (Microsoft.Compute/virtualMachines/*) or action groups (read, write, delete, action, privileged)"
            },
            "scope": {"type": "string", "description": "ARM id of a subscription, resource group or resource"},
            "duration": {"type": "string", "description": "How long, e.g. 30m or 2h (at most the configured maximum, 4h by default)"},
            "justification": {"type": "string", "description": "Why the access is needed (required)"},
            "ticket": {"type": "string", "description": "Change or incident ticket, if any"}
        },
        "required": ["operations", "scope", "duration", "justification"],
        "additionalProperties": false
    });
    let status_schema = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let mut ask = ToolAnnotations::new();
    ask.read_only_hint = Some(false);
    ask.destructive_hint = Some(false);
    ask.open_world_hint = Some(false);
    let mut status = ToolAnnotations::new();
    status.read_only_hint = Some(true);
    status.open_world_hint = Some(false);
    vec![
        Tool::new(
            REQUEST_ACCESS,
            "Ask a security manager for just-in-time access: operations at a scope for a time window",
            Arc::new(request_schema.as_object().cloned().unwrap_or_default()),
        )
        .annotate(ask),
        Tool::new(
            ACCESS_STATUS,
            "Your just-in-time requests and grants, newest first",
            Arc::new(status_schema.as_object().cloned().unwrap_or_default()),
        )
        .annotate(status),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestAccess {
    operations: Operations,
    scope: String,
    duration: String,
    justification: String,
    #[serde(default)]
    ticket: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Operations {
    One(String),
    Many(Vec<String>),
}

fn error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

fn ok(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(
        serde_json::to_string_pretty(value).unwrap_or_default(),
    )])
}

/// Answers a call of one of Warden's own tools for `principal`.
pub async fn call(
    approvals: &Approvals,
    principal: &Principal,
    name: &str,
    arguments: Option<Value>,
) -> CallToolResult {
    match name {
        REQUEST_ACCESS => {
            let args: RequestAccess = match serde_json::from_value(
                arguments.unwrap_or_else(|| Value::Object(Default::default())),
            ) {
                Ok(args) => args,
                Err(e) => {
                    return error(format!(
                        "request_access needs operations, scope, duration and justification: {e}"
                    ));
                }
            };
            let duration: Duration = match humantime::parse_duration(args.duration.trim()) {
                Ok(d) => d,
                Err(e) => {
                    return error(format!(
                        "duration {:?} is not a duration like 30m or 2h: {e}",
                        args.duration
                    ));
                }
            };
            let operations = match args.operations {
                Operations::One(op) => vec![op],
                Operations::Many(ops) => ops,
            };
            match approvals
                .request_window(
                    principal,
                    operations,
                    &args.scope,
                    duration,
                    &args.justification,
                    args.ticket,
                )
                .await
            {
                Ok(request) => ok(&json!({
                    "request": request.id,
                    "status": request.status,
                    "operations": request.operations.iter().map(|o| &o.azure_op).collect::<Vec<_>>(),
                    "scope": request.operations.first().map(|o| &o.resource),
                    "required_approvals": request.required_approvals,
                    "approvers": approvals.config().approver_roles,
                    "lapses": request.lapses,
                    "next": "A security manager reviews it; once approved, calls of these operations in this scope run until the grant expires. See access_status.",
                })),
                Err(e) => error(e.to_string()),
            }
        }
        ACCESS_STATUS => {
            let filter = Filter {
                requester: Some(principal.oid.clone()),
                ..Filter::default()
            };
            let mine = approvals.list(principal, &filter);
            ok(&json!({ "requests": mine }))
        }
        other => error(format!("{other} is not a Warden tool")),
    }
}
