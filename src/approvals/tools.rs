//! Warden's own MCP tools for asking: `request_access` (a time-window
//! grant request), `justify_request` (a justification and ticket for a
//! held call's request) and `access_status` (the caller's requests and
//! grants). The gateway lists them beside the upstreams' tools to every
//! signed-in caller and the pipeline answers them; their names are
//! reserved.
//!
//! A held call is justified through `justify_request` rather than through
//! an extra argument of the call itself: the call's arguments stay exactly
//! what the upstream receives (and what the grant is bound to), and a
//! justification can be given or improved after the call was held.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApprovalError, Approvals, Filter, Request, WindowAsk};
use crate::identity::Principal;

pub const REQUEST_ACCESS: &str = "request_access";
pub const JUSTIFY_REQUEST: &str = "justify_request";
pub const ACCESS_STATUS: &str = "access_status";

/// Whether `name` is one of Warden's own tools.
pub fn is_warden_tool(name: &str) -> bool {
    name == REQUEST_ACCESS || name == JUSTIFY_REQUEST || name == ACCESS_STATUS
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
    let justify_schema = json!({
        "type": "object",
        "properties": {
            "request": {"type": "string", "description": "The id of the JIT request the held call's error named"},
            "justification": {"type": "string", "description": "Why the call is needed (shown to the reviewers)"},
            "ticket": {"type": "string", "description": "Change or incident ticket, if any"}
        },
        "required": ["request", "justification"],
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
        .annotate(ask.clone()),
        Tool::new(
            JUSTIFY_REQUEST,
            "Say why a call that Warden held for approval is needed (and give a ticket); reviewers see it",
            Arc::new(justify_schema.as_object().cloned().unwrap_or_default()),
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
#[serde(deny_unknown_fields)]
struct JustifyRequest {
    request: String,
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

/// The window a `request_access` call asks for, or what is wrong with its
/// arguments.
pub fn parse_request_access(arguments: Option<Value>) -> Result<WindowAsk, String> {
    let args: RequestAccess =
        serde_json::from_value(arguments.unwrap_or_else(|| Value::Object(Default::default())))
            .map_err(|e| {
                format!("request_access needs operations, scope, duration and justification: {e}")
            })?;
    let duration: Duration = humantime::parse_duration(args.duration.trim()).map_err(|e| {
        format!(
            "duration {:?} is not a duration like 30m or 2h: {e}",
            args.duration
        )
    })?;
    Ok(WindowAsk {
        operations: match args.operations {
            Operations::One(op) => vec![op],
            Operations::Many(ops) => ops,
        },
        scope: args.scope,
        duration,
        justification: args.justification,
        ticket: args.ticket,
    })
}

/// The answer to `request_access`: the new request, or why not.
pub fn window_answer(
    approvals: &Approvals,
    requested: Result<Request, ApprovalError>,
) -> CallToolResult {
    match requested {
        Ok(request) => ok(&json!({
            "request": request.id,
            "status": request.status,
            "operations": request.operations.iter().map(|o| &o.azure_op).collect::<Vec<_>>(),
            "scope": request.operations.first().map(|o| &o.resource),
            "required_approvals": request.required_approvals,
            "critical": request.critical,
            "risk": request.risk,
            "approvers": approvals.config().approver_roles,
            "lapses": request.lapses,
            "next": "A security manager reviews it; once approved, calls of these operations in this scope run until the grant expires. See access_status.",
        })),
        Err(e) => error(e.to_string()),
    }
}

/// Answers `justify_request` and `access_status` for `principal`
/// (`request_access` needs the risk stage: the pipeline answers it with
/// [`parse_request_access`] and [`window_answer`]).
pub async fn call(
    approvals: &Approvals,
    principal: &Principal,
    name: &str,
    arguments: Option<Value>,
) -> CallToolResult {
    match name {
        JUSTIFY_REQUEST => {
            let args: JustifyRequest = match serde_json::from_value(
                arguments.unwrap_or_else(|| Value::Object(Default::default())),
            ) {
                Ok(args) => args,
                Err(e) => {
                    return error(format!(
                        "justify_request needs request (the id the held call named) and justification: {e}"
                    ));
                }
            };
            match approvals
                .justify(
                    &args.request,
                    principal,
                    &args.justification,
                    args.ticket.as_deref(),
                )
                .await
            {
                Ok(request) => ok(&json!({
                    "request": request.id,
                    "status": request.status,
                    "justification": request.justification,
                    "ticket": request.ticket,
                    "next": "The reviewers see it with the request. Call the tool again, with the same arguments, once it is approved.",
                })),
                Err(e) => error(e.to_string()),
            }
        }
        ACCESS_STATUS => {
            let filter = Filter {
                requester: Some(principal.oid.clone()),
                ..Filter::default()
            };
            approvals.refresh().await;
            let mine = approvals.list(principal, &filter);
            ok(&json!({ "requests": mine }))
        }
        other => error(format!("{other} is not a Warden tool")),
    }
}
