//! A `tools/call` a rate limit refused (`[limits]`, checked first in
//! [`Pipeline::call_tool`]): recorded like a denied call, an intent then
//! an outcome `rate_limited`, but with no operations and no decision (it
//! was refused before it was resolved or decided), and answered with a
//! JSON-RPC error saying which limit and when to retry.

use std::time::Instant;

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResponse, ErrorCode};

use super::Pipeline;
use crate::audit::Assessment;
use crate::audit::record::Status;
use crate::call::ToolCall;
use crate::limits::{Limited, RATE_LIMITED};

impl Pipeline {
    /// Records and answers a call `limited` refused.
    pub(super) async fn rate_limited(
        &self,
        call: &ToolCall,
        limited: &Limited,
        started: Instant,
    ) -> Result<CallToolResponse, McpError> {
        let message = format!("{} (call {})", limited.message(), call.call_id);
        // The roles the caller held, so that reviews of the log see the
        // same entitlements on every intent of a principal.
        let entitled = self.policy.entitlements(&call.principal);
        let assessed = Assessment {
            operations: Vec::new(),
            decision: None,
            risk: None,
            roles: entitled.roles,
            role_groups: entitled.groups,
            jit: None,
        };
        let recorded = self.audit.intent(call, assessed).await;
        let answer = Err(McpError::new(
            ErrorCode(RATE_LIMITED),
            message.clone(),
            Some(limited.data()),
        ));
        let elapsed = started.elapsed();
        match recorded {
            Ok(_) => self
                .audit
                .outcome(call, Status::RateLimited, Some(&message), elapsed, None),
            // The call is refused whatever the log says; the log being
            // unavailable is reported by /readyz and refuses every call.
            Err(error) => {
                tracing::error!(%error, call_id = %call.call_id, "rate-limited call not recorded")
            }
        }
        self.record(call, &answer, elapsed);
        answer
    }
}
