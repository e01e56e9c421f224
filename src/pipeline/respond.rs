//! Automatic responses in the pipeline (`[response]`, docs/RESPONSES.md).
//!
//! A suspended principal's calls are refused before anything else, and
//! recorded like a denied call. A call whose findings a rule answers has
//! its outcome written durably first; then the responses run (suspend,
//! revoke, incident), each with its own record, before the caller is
//! answered, so the caller's next call already meets the suspension.

use std::time::Instant;

use rmcp::ErrorData as McpError;
use rmcp::model::CallToolResponse;
use serde_json::json;

use super::{Pipeline, Ran, Scored, tool_error};
use crate::audit::Assessment;
use crate::audit::record::Status;
use crate::call::ToolCall;
use crate::catalog::Resolution;
use crate::identity::Principal;
use crate::policy::Decision;
use crate::response::Triggered;
use crate::response::plan::Planned;
use crate::response::state::{Suspension, Taken};

impl Pipeline {
    /// Records and answers a call of a suspended principal: an intent whose
    /// decision is a deny naming the suspension, and an outcome `denied`.
    pub(super) async fn refuse_suspended(
        &self,
        call: &ToolCall,
        suspension: &Suspension,
        started: Instant,
    ) -> Result<CallToolResponse, McpError> {
        let incident = suspension
            .incident_id
            .as_deref()
            .map(|id| format!(", incident {id}"))
            .unwrap_or_default();
        let why = format!(
            "{} is suspended by Warden since {} (rule {}{incident}): {}. Every call is refused until a security manager lifts the suspension. (call {})",
            suspension.name, suspension.at, suspension.rule, suspension.reason, call.call_id
        );
        let decision = Decision::error(
            &self.policy.summary().hash,
            format!("the principal is suspended (rule {})", suspension.rule),
        );
        let entitled = self.policy.entitlements(&call.principal);
        let assessed = Assessment {
            operations: Vec::new(),
            decision: serde_json::to_value(&decision).ok().map(|mut d| {
                d["suspended"] = json!({
                    "rule": suspension.rule, "since": suspension.at,
                    "incident_id": suspension.incident_id, "seq": suspension.seq,
                });
                d
            }),
            risk: None,
            roles: entitled.roles,
            role_groups: entitled.groups,
            jit: None,
        };
        let recorded = self.audit.intent(call, assessed).await;
        let answer = Ok(tool_error(why.clone()));
        let elapsed = started.elapsed();
        match recorded {
            Ok(_) => self
                .audit
                .outcome(call, Status::Denied, Some(&why), elapsed, None),
            Err(error) => {
                tracing::error!(%error, call_id = %call.call_id, "suspended principal's call not recorded")
            }
        }
        self.record(call, &answer, elapsed);
        answer
    }

    /// Carries out what the rules `planned` for a call whose intent and
    /// outcome are durable (`ran.seqs`); what was done.
    pub(super) async fn respond(
        &self,
        call: &ToolCall,
        principal: &Principal,
        resolution: &Resolution,
        scored: &Scored,
        planned: Vec<Planned>,
        ran: Ran,
    ) -> Vec<Taken> {
        let taken = self
            .responses
            .respond(Triggered {
                principal,
                call_id: &call.call_id,
                tool: &call.tool,
                seqs: ran.seqs,
                operations: resolution
                    .operations
                    .iter()
                    .map(|op| (op.azure_op.clone(), op.resource.id.display().to_owned()))
                    .collect(),
                assessment: &scored.assessment,
                planned,
                succeeded: ran.succeeded,
                result: ran.result,
            })
            .await;
        for t in &taken {
            tracing::info!(target: "warden::response", call_id = %call.call_id, action = %t.action, mode = %t.mode, result = %t.result, detail = %t.detail, "response");
        }
        taken
    }
}

/// A refusal's text, telling the caller that a response has just
/// suspended them (before the closing "(call …)", which clients and the
/// log read the call id from). Anything else is returned as it was.
pub(super) fn telling_suspension(
    answer: Result<CallToolResponse, McpError>,
    principal: &Principal,
    taken: &[Taken],
) -> Result<CallToolResponse, McpError> {
    if !taken
        .iter()
        .any(|t| t.action == "suspend" && t.result == "done")
    {
        return answer;
    }
    let Ok(CallToolResponse::Complete(result)) = &answer else {
        return answer;
    };
    let Some(text) = result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .filter(|_| result.is_error == Some(true))
    else {
        return answer;
    };
    let sentence = format!(
        " Warden has suspended {} for this: every further call is refused until a security manager lifts the suspension.",
        principal.display_name
    );
    let text = match text.rfind(" (call ") {
        Some(at) => format!("{}{sentence}{}", &text[..at], &text[at..]),
        None => format!("{text}{sentence}"),
    };
    Ok(tool_error(text))
}
