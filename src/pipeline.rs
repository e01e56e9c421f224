//! The spine: every `tools/call` passes through [`Pipeline::call_tool`], and
//! this is the only place that composes stages. Read top to bottom, it is
//! the order a call takes (see docs/ARCHITECTURE.md).
//!
//! The risk stage runs on both sides of execution: stage 3 scores the call
//! against the principal's baseline (`context.risk` for every decision, the
//! intent record's `risk`, the JIT request's risk) and raises a
//! `risk_alert` at most once per principal per hour; a privilege grant that
//! policy would let run without an approval is scored critical and decided
//! again; stage 9 teaches the baseline how the call ended. Baselines are
//! written to the store behind the calls ([`Pipeline::spawn_risk_flush`]).
//!
//! Policy sets are loaded here too (`policies.rs`): reloads, the record at
//! start, and change management's apply, rollback and break glass.

mod limited;
mod policies;
mod respond;

pub use policies::{LoadError, LoadRequest, Reload};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode, ToolAnnotations};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::approvals::engine::CallFacts;
use crate::approvals::tools as approval_tools;
use crate::approvals::{
    Approvals, Gate, OperationRef, Request, RiskAlert, Status as ApprovalStatus,
};
use crate::audit::record::{self, Actor, Kind, Record, Status};
use crate::audit::{Assessment, Audit, AuditError};
use crate::call::ToolCall;
use crate::catalog::{Catalog, Class, Resolution};
use crate::facts::{Completeness, Described, Lookup};
use crate::identity::{Authenticator, Principal, StepUp, UNAUTHORIZED};
use crate::limits::Limits;
use crate::metrics::{DecisionLabels, Metrics, Outcome};
use crate::policy::{Advice, CallContext, Decision, Effect, Engine, JitFacts, OperationFacts};
use crate::policy_change::PolicyChanges;
use crate::response::Responses;
use crate::risk::baseline::RiskClass;
use crate::risk::{self, Observation, ObservedOp, Risk};
use crate::store::{Guard, StoreError};

/// The stages a [`Pipeline`] composes.
pub struct Stages {
    pub metrics: Metrics,
    pub identity: Arc<Authenticator>,
    pub catalog: Arc<Catalog>,
    /// Resource facts (tags, location, resource group) looked up before
    /// policy decides.
    pub facts: Arc<Lookup>,
    pub policy: Arc<Engine>,
    pub approvals: Arc<Approvals>,
    pub audit: Arc<Audit>,
    pub risk: Arc<Risk>,
    /// Rate limits, checked before anything else.
    pub limits: Arc<Limits>,
    /// Automatic responses: suspensions checked first, the rules' actions
    /// after a call's outcome.
    pub responses: Arc<Responses>,
}

/// The composed call pipeline.
#[derive(Clone)]
pub struct Pipeline {
    metrics: Metrics,
    identity: Arc<Authenticator>,
    catalog: Arc<Catalog>,
    facts: Arc<Lookup>,
    policy: Arc<Engine>,
    approvals: Arc<Approvals>,
    audit: Arc<Audit>,
    risk: Arc<Risk>,
    /// Change management of the policy set: proposals, approvals, the
    /// files of loaded sets, the load lock.
    changes: Arc<PolicyChanges>,
    limits: Arc<Limits>,
    responses: Arc<Responses>,
}

/// The `state` namespace where replicas sharing a store note which
/// principal has had its risk alert of an hour.
const ALERTED: &str = "risk.alerted";

/// How a call whose findings the response rules answer ended.
struct Ran {
    /// Its intent and outcome records.
    seqs: Vec<u64>,
    succeeded: bool,
    result: Option<Value>,
}

/// What stage 3 found out about a call, kept for stage 9 to learn from.
struct Scored {
    observation: Observation,
    assessment: risk::Assessment,
}

impl Pipeline {
    pub fn new(stages: Stages) -> Self {
        let Stages {
            metrics,
            identity,
            catalog,
            facts,
            policy,
            approvals,
            audit,
            risk,
            limits,
            responses,
        } = stages;
        // Refused tokens reach the risk stage as they are recorded.
        let scorer = risk.clone();
        audit.on_auth_refusal(Box::new(move |source_ip, at| {
            scorer.auth_refused(source_ip, at)
        }));
        let changes = Arc::new(PolicyChanges::new(
            audit.clone(),
            policy.config().require_approval,
            approvals.config().approver_roles.clone(),
            approvals.config().auditor_roles.clone(),
        ));
        Self {
            metrics,
            identity,
            catalog,
            facts,
            policy,
            approvals,
            audit,
            risk,
            changes,
            limits,
            responses,
        }
    }

    pub fn audit(&self) -> &Arc<Audit> {
        &self.audit
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn identity(&self) -> &Arc<Authenticator> {
        &self.identity
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn facts(&self) -> &Arc<Lookup> {
        &self.facts
    }

    pub fn policy(&self) -> &Arc<Engine> {
        &self.policy
    }

    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.approvals
    }

    pub fn risk(&self) -> &Arc<Risk> {
        &self.risk
    }

    /// The rate limits (the front checks source addresses with them).
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Automatic responses: suspensions, blocks, incidents.
    pub fn responses(&self) -> &Arc<Responses> {
        &self.responses
    }

    /// Change management of the policy set.
    pub fn policy_changes(&self) -> &Arc<PolicyChanges> {
        &self.changes
    }

    /// Whether `principal` could ever be allowed to call the upstream tool
    /// `tool` (the `tools/list` filter): every operation a call of the tool
    /// performs without its optional arguments (see
    /// [`Catalog::baseline_operations_of`]) must be one the same policies
    /// could allow for some resource and context (see
    /// [`Engine::could_be_allowed`]).
    pub fn could_call(
        &self,
        principal: &Principal,
        tool: &str,
        annotations: Option<&ToolAnnotations>,
    ) -> bool {
        let operations = self.catalog.baseline_operations_of(tool, annotations);
        self.policy.could_be_allowed(
            principal,
            operations
                .iter()
                .map(|(op, class)| (op.as_str(), class.as_str())),
        )
    }

    /// Runs one tool call through every stage. `execute` performs the call
    /// (stage 7, the executor) and is only polled once all earlier stages
    /// have let the call through.
    ///
    /// The stages most calls never reach (refusals, approvals, alerts,
    /// responses) are awaited boxed: an async function's state is as large
    /// as the largest future it may await, and a call's whole state is
    /// copied when its task is made (52 KB before they were boxed, 17 KB
    /// after, in the lane's task).
    pub async fn call_tool(
        &self,
        call: &ToolCall,
        execute: impl Future<Output = Result<CallToolResponse, McpError>>,
    ) -> Result<CallToolResponse, McpError> {
        let started = Instant::now();

        // 1. authenticate: the front verified the bearer token; a call
        // cannot be built without a principal.
        let principal = call.principal.as_ref();

        // A suspended principal's calls are refused before anything else.
        if let Some(suspension) = self.responses.suspension(&principal.tid, &principal.oid) {
            return Box::pin(self.refuse_suspended(call, &suspension, started)).await;
        }

        // Rate limits (principal, principal and tool, client app): a call
        // over one is refused and recorded before it is resolved.
        if let Err(limited) = self.limits.admit_call(principal, &call.tool) {
            return Box::pin(self.rate_limited(call, &limited, started)).await;
        }

        // 2. resolve: the Azure operations and resources the call touches,
        //    then their facts (tags, location, resource group) from Azure:
        //    a resource found is placed at its full id.
        let resolving = Instant::now();
        let mut resolution = self.catalog.resolve(
            &call.upstream_tool,
            call.arguments.as_ref().unwrap_or(&Value::Null),
            call.annotations.as_ref(),
        );
        let resolved = resolving.elapsed();
        let described = self.facts.describe(&resolution).await;
        for (op, facts) in resolution.operations.iter_mut().zip(&described) {
            op.resource = facts.placed(&op.resource);
        }

        // 3. score: how unusual the call is for this principal (policy sees
        //    it as `context.risk`), unless `[risk]` is off; on a shared
        //    store, after learning what the other replicas saw.
        if self.risk.enabled()
            && let Err(error) = self.risk.catch_up().await
        {
            tracing::error!(%error, call_id = %call.call_id, "risk events of other replicas not read; scored with what this replica knows");
        }
        let mut scored = self.score(principal, call, &resolution);

        // 4. authorize: every operation must be allowed by Cedar.
        let deciding = Instant::now();
        let risk_now = scored.as_ref().map(|s| &s.assessment);
        let mut decision = self.authorize(principal, call, &resolution, &described, risk_now, None);
        self.metrics
            .policy_latency
            .observe((resolved + deciding.elapsed()).as_secs_f64());

        // 5. approve: a call policy wants approved runs only under a grant
        //    (decided again with it in `context.jit`); otherwise it waits
        //    for a security manager, as a JIT request.
        let mut grant = None;
        let mut held = None;
        if decision.advice() == Some(Advice::RequireApproval) {
            let facts = self.call_facts(call, &resolution, &decision, risk_now);
            match Box::pin(self.approvals.gate(principal, facts)).await {
                Ok(Gate::Granted { facts, request }) => {
                    decision = self.authorize(
                        principal,
                        call,
                        &resolution,
                        &described,
                        risk_now,
                        Some(facts),
                    );
                    grant = Some(request);
                }
                Ok(Gate::Held {
                    request, previous, ..
                }) => held = Some((request, previous)),
                Err(error) => {
                    tracing::error!(%error, call_id = %call.call_id, "JIT request not recorded");
                    decision.fail(format!(
                        "the approval request could not be recorded: {error}"
                    ));
                }
            }
        }

        // A privilege grant that would run without an approval is critical
        // whatever the baseline says, and is decided again as such.
        if let Some(scored) = &mut scored
            && decision.is_allowed()
            && grant.is_none()
            && let Some(op) = resolution
                .operations
                .iter()
                .find(|op| risk::features::is_privilege_grant(&op.azure_op))
        {
            scored
                .assessment
                .unapproved_privilege_grant(&op.azure_op, self.risk.config().critical);
            decision = self.authorize(
                principal,
                call,
                &resolution,
                &described,
                Some(&scored.assessment),
                None,
            );
        }
        // Held for a reviewer (not refused by one).
        let waiting =
            matches!(&held, Some((request, _)) if request.status == ApprovalStatus::Pending);
        if let Some(scored) = &scored {
            Box::pin(self.alert_if_due(
                principal,
                call,
                &resolution,
                &described,
                &decision,
                waiting,
                scored,
            ))
            .await;
        }

        // What the response rules want done once the call's records are
        // durable (carried out in `respond`, before the caller is answered).
        let planned = scored
            .as_ref()
            .map(|s| self.responses.plan(&s.assessment))
            .unwrap_or_default();

        let entitled = self.policy.entitlements(principal);
        let assessed = Assessment {
            operations: audited(&resolution, &described, self.audit.redactor()),
            decision: serde_json::to_value(&decision).ok(),
            risk: scored.as_ref().map(|s| s.assessment.to_value()),
            roles: entitled.roles,
            role_groups: entitled.groups,
            jit: grant.as_ref().map(|request| {
                json!({
                    "request_id": request.id,
                    "grant_id": request.grant.as_ref().map(|g| g.id.clone()),
                    "approvers": request.grant.as_ref().map(|g| g.approvers.clone()).unwrap_or_default(),
                })
            }),
        };
        if !decision.is_allowed() {
            let (answer, seqs) = Box::pin(self.refuse(
                call,
                principal,
                &decision,
                held,
                assessed,
                started,
                !planned.is_empty(),
            ))
            .await;
            let mut answer = answer;
            if let Some(scored) = &scored
                && !planned.is_empty()
            {
                let ran = Ran {
                    seqs,
                    succeeded: false,
                    result: None,
                };
                let taken =
                    Box::pin(self.respond(call, principal, &resolution, scored, planned, ran))
                        .await;
                answer = respond::telling_suspension(answer, principal, &taken);
            }
            // Waiting for a reviewer is an attempt; a refusal (by policy or
            // by a reviewer) is a denial.
            let learned = if waiting {
                risk::Outcome::Held
            } else {
                risk::Outcome::Denied
            };
            self.learn(scored.as_ref(), learned).await;
            return answer;
        }

        // 6. record intent: durable before anything runs, or the call is refused.
        let intent = match self.audit.intent(call, assessed).await {
            Ok(seq) => seq,
            Err(error) => {
                let refused = Err(McpError::internal_error(
                    format!("{error}; the call was not forwarded"),
                    Some(json!({ "reason": "audit_unavailable" })),
                ));
                self.record(call, &refused, started.elapsed());
                self.learn(scored.as_ref(), risk::Outcome::Failed).await;
                return refused;
            }
        };

        // A single-call grant is used up before the call runs (once).
        if let Some(request) = &grant
            && let Err(error) = self
                .approvals
                .consume(&request.id, &call.call_id, principal)
                .await
        {
            let refused = Ok(tool_error(format!(
                "The grant of JIT request {} could not be used: {error}. The call was not forwarded. (call {})",
                request.id, call.call_id
            )));
            self.audit.outcome(
                call,
                Status::Denied,
                Some(&error.to_string()),
                started.elapsed(),
                None,
            );
            self.record(call, &refused, started.elapsed());
            self.learn(scored.as_ref(), risk::Outcome::Denied).await;
            return refused;
        }

        // 7. execute
        let result = execute.await;

        // 8. record the outcome (durable before the responses, if any)
        let elapsed = started.elapsed();
        let (status, error) = status_of(&result);
        let correlation = azure_correlation_id(&result);
        if planned.is_empty() {
            self.audit
                .outcome(call, status, error.as_deref(), elapsed, correlation);
        } else {
            let outcome = Box::pin(self.audit.outcome_now(
                call,
                status,
                error.as_deref(),
                elapsed,
                correlation,
            ))
            .await
            .ok();
            if let Some(scored) = &scored {
                let ran = Ran {
                    seqs: std::iter::once(intent).chain(outcome).collect(),
                    succeeded: status == Status::Ok,
                    result: match &result {
                        Ok(CallToolResponse::Complete(done)) => serde_json::to_value(done).ok(),
                        _ => None,
                    },
                };
                Box::pin(self.respond(call, principal, &resolution, scored, planned, ran)).await;
            }
        }
        self.record(call, &result, elapsed);

        // 9. respond; the baseline learns how the call ended.
        self.learn(
            scored.as_ref(),
            match status {
                Status::Ok => risk::Outcome::Succeeded,
                Status::Denied => risk::Outcome::Denied,
                _ => risk::Outcome::Failed,
            },
        )
        .await;
        result
    }

    /// Stage 3: the call's risk (`None` when scoring is off), timed.
    fn score(
        &self,
        principal: &Principal,
        call: &ToolCall,
        resolution: &Resolution,
    ) -> Option<Scored> {
        if !self.risk.enabled() {
            return None;
        }
        let scoring = Instant::now();
        let observation = observation(principal, call, resolution);
        let assessment = self.risk.assess(&observation);
        self.metrics
            .risk_latency
            .observe(scoring.elapsed().as_secs_f64());
        Some(Scored {
            observation,
            assessment,
        })
    }

    /// Stage 9: the principal's baseline learns from the call (on a shared
    /// store, every replica's does, before the call is answered).
    async fn learn(&self, scored: Option<&Scored>, outcome: risk::Outcome) {
        if let Some(scored) = scored {
            self.risk.record(&scored.observation, outcome).await;
        }
    }

    /// Counts the call's final risk level and, at or above the alert level
    /// (once per principal per hour), writes a `risk_alert` record and
    /// tells the security managers. Neither holds up nor fails the call:
    /// a record that cannot be written is logged.
    #[allow(clippy::too_many_arguments)]
    async fn alert_if_due(
        &self,
        principal: &Principal,
        call: &ToolCall,
        resolution: &Resolution,
        described: &[Described],
        decision: &Decision,
        waiting: bool,
        scored: &Scored,
    ) {
        let assessment = &scored.assessment;
        self.metrics.risk_assessment(assessment.level.as_str());
        if !self.risk.alert_due(&scored.observation, assessment) {
            return;
        }
        let outcome = match (decision.is_allowed(), waiting) {
            (true, _) => "allowed",
            (false, true) => "held for approval",
            (false, false) => "denied",
        };
        let summary = assessment.summary();
        let mut r = Record::new(Kind::RiskAlert);
        r.call_id = Some(call.call_id.clone());
        r.principal = Some(Actor::from(principal));
        r.source_ip = principal.source_ip.map(|ip| ip.to_string());
        r.session_id = Some(call.session.clone());
        r.tool = Some(call.tool.clone());
        r.upstream = Some(call.upstream.clone());
        r.upstream_tool = Some(call.upstream_tool.clone());
        r.operations = audited(resolution, described, self.audit.redactor());
        r.risk = Some(assessment.to_value());
        r.details = Some(json!({ "summary": summary, "decision": outcome }));
        // Once per principal per hour on one replica; on a shared store,
        // once across the replicas: the first to record it alerts.
        let written = match self.risk.journal() {
            None => self.audit.append(r).await,
            Some(_) => {
                let hour = scored.observation.at.div_euclid(3600);
                let guard = Guard {
                    ns: ALERTED.into(),
                    key: format!("{}/{}@{hour}", principal.tid, principal.oid),
                    expected: None,
                    new: b"alerted".to_vec(),
                };
                let key = guard.key.clone();
                let written = self.audit.append_guarded(r, guard).await;
                if written.is_ok() {
                    // Forgotten (by `flush_risk`) once the hour is over.
                    let until = chrono::DateTime::from_timestamp((hour + 2) * 3600, 0);
                    let _ = self
                        .audit
                        .store()
                        .put_state(ALERTED, &key, b"alerted".to_vec(), until)
                        .await;
                }
                written
            }
        };
        match written {
            Err(AuditError::Store(StoreError::Conflict(_))) => return,
            Err(error) => {
                tracing::error!(%error, call_id = %call.call_id, "risk alert not recorded")
            }
            Ok(_) => {}
        }
        self.metrics.risk_alerts.inc();
        tracing::warn!(
            target: "warden::risk",
            tid = %principal.tid,
            oid = %principal.oid,
            principal = %principal.display_name,
            tool = %call.tool,
            call_id = %call.call_id,
            score = assessment.score,
            level = assessment.level.as_str(),
            decision = outcome,
            %summary,
            "risk alert"
        );
        let operations = operation_refs(resolution);
        self.approvals.notify_risk(RiskAlert {
            principal,
            tool: &call.tool,
            call_id: &call.call_id,
            operations: &operations,
            risk: format!("{} ({})", assessment.score, assessment.level.as_str()),
            reasons: assessment.reasons.iter().map(|r| r.text.clone()).collect(),
            decision: outcome,
            assessment: assessment.to_value(),
        });
    }

    /// Stage 4: the decision on every operation of the call, counted and
    /// its alerts raised. Policies see each resource's facts, and how
    /// complete the least known of them is (`context.facts`).
    fn authorize(
        &self,
        principal: &Principal,
        call: &ToolCall,
        resolution: &Resolution,
        described: &[Described],
        risk: Option<&risk::Assessment>,
        jit: Option<JitFacts>,
    ) -> Decision {
        let facts: Vec<OperationFacts> = resolution
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| operation_facts(op, described.get(i)))
            .collect();
        let mut context = CallContext::new(&call.upstream_tool, &call.session, chrono::Utc::now());
        context.facts = Completeness::least((0..resolution.operations.len()).map(|i| {
            described
                .get(i)
                .map_or(Completeness::Unavailable, |d| d.completeness)
        }));
        context.user_agent = call.user_agent.clone();
        context.arguments = call.arguments.clone();
        context.risk = risk.map(risk::Assessment::facts);
        context.jit = jit;
        let mut decision = self.policy.authorize(principal, &facts, &context);
        // An unresolvable call is denied whatever the policies say.
        if let Some(problem) = &resolution.problem {
            decision.fail(format!(
                "the call's resources cannot be resolved: {problem}"
            ));
        }
        self.metrics
            .policy_decisions
            .get_or_create(&DecisionLabels {
                effect: decision.effect().as_str().to_owned(),
                advice: decision.advice().map_or("none", Advice::as_str).to_owned(),
            })
            .inc();
        for alert in decision.alerts() {
            self.metrics
                .policy_alerts
                .get_or_create(&crate::metrics::AlertLabel {
                    alert: alert.alert.clone(),
                })
                .inc();
            tracing::warn!(
                target: "warden::alert",
                alert = %alert.alert,
                policy = %alert.policy,
                tid = %principal.tid,
                oid = %principal.oid,
                principal = %principal.display_name,
                tool = %call.tool,
                call_id = %call.call_id,
                effect = decision.effect().as_str(),
                "policy alert"
            );
        }
        if let Some(shadow) = decision.shadow().filter(|s| s.differs()) {
            tracing::info!(
                target: "warden::shadow",
                call_id = %call.call_id,
                tool = %call.tool,
                enforced = decision.effect().as_str(),
                shadow = shadow.outcome().effect().as_str(),
                policies = ?shadow.outcome().policies(),
                "shadow policies decide differently"
            );
        }
        decision
    }

    /// A denied call: recorded like any other (an intent carrying the
    /// decision, then an outcome `denied`) but never executed, and answered
    /// with what the caller can do about it.
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        call: &ToolCall,
        principal: &Principal,
        decision: &Decision,
        held: Option<(Request, Option<Box<Request>>)>,
        assessed: Assessment,
        started: Instant,
        followed: bool,
    ) -> (Result<CallToolResponse, McpError>, Vec<u64>) {
        let recorded = self.audit.intent(call, assessed).await;
        let why = denial_text(decision, &call.call_id);
        let answer = match (decision.advice(), held) {
            (_, Some((request, previous))) => Ok(tool_error(self.held_text(
                &request,
                previous.as_deref(),
                decision,
                &call.call_id,
            ))),
            (advice, None) => self.denial(advice, principal, call, decision, why).await,
        };
        let elapsed = started.elapsed();
        let mut seqs = Vec::new();
        match recorded {
            Ok(intent) if followed => {
                seqs.push(intent);
                let (_, text) = status_of(&answer);
                let outcome = self
                    .audit
                    .outcome_now(call, Status::Denied, text.as_deref(), elapsed, None)
                    .await;
                seqs.extend(outcome.ok());
            }
            Ok(_) => {
                let (_, text) = status_of(&answer);
                self.audit
                    .outcome(call, Status::Denied, text.as_deref(), elapsed, None);
            }
            // The call is refused whatever the log says; the log being
            // unavailable is reported by /readyz and refuses every call.
            Err(error) => {
                tracing::error!(%error, call_id = %call.call_id, "denied call not recorded")
            }
        }
        self.record(call, &answer, elapsed);
        (answer, seqs)
    }

    /// The answer to a denied call, by its advice.
    async fn denial(
        &self,
        advice: Option<Advice>,
        principal: &Principal,
        call: &ToolCall,
        decision: &Decision,
        why: String,
    ) -> Result<CallToolResponse, McpError> {
        match advice {
            Some(Advice::StepUp) => {
                let url = call.resource_metadata.as_deref().unwrap_or_default();
                match self.identity.step_up_mfa(principal, url).await {
                    StepUp::Challenge { www_authenticate } => Err(McpError::new(
                        ErrorCode(UNAUTHORIZED as i32),
                        format!("{why} Sign in again with multi-factor authentication and retry."),
                        Some(json!({
                            "reason": "insufficient_claims",
                            "www_authenticate": www_authenticate,
                            "policies": decision.policies(),
                        })),
                    )),
                    // A facade grant is marked too: its next request gets
                    // MCP's step-up challenge (403 insufficient_scope).
                    StepUp::Reauthorize { message } | StepUp::ToolError { message } => {
                        Ok(tool_error(format!("{why} {message}")))
                    }
                }
            }
            Some(Advice::RequireApproval) => Ok(tool_error(format!(
                "{why} It needs a just-in-time grant approved by a security manager."
            ))),
            _ => Ok(tool_error(why)),
        }
    }

    /// What stage 5 tells the approvals service about a call.
    fn call_facts<'a>(
        &self,
        call: &'a ToolCall,
        resolution: &Resolution,
        decision: &Decision,
        risk: Option<&risk::Assessment>,
    ) -> CallFacts<'a> {
        CallFacts {
            call_id: &call.call_id,
            tool: &call.tool,
            upstream: &call.upstream,
            upstream_tool: &call.upstream_tool,
            arguments: call.arguments.as_ref(),
            redacted: call
                .arguments
                .as_ref()
                .map(|a| self.audit.redactor().arguments(&call.tool, a))
                .unwrap_or(Value::Null),
            operations: operation_refs(resolution),
            policies: decision.policies().to_vec(),
            risk: risk.map(risk::Assessment::to_value),
            decision_inputs: self.policy.decision_inputs(),
        }
    }

    /// Answers a call of one of Warden's own tools
    /// ([`approval_tools::is_warden_tool`]). A time window asked for ahead
    /// is resolved against the catalog (the members of the action groups
    /// it names, for the two-person rule) and scored by the risk stage like
    /// a call, before the approvals service records it.
    pub async fn warden_tool(
        &self,
        principal: &Principal,
        name: &str,
        arguments: Option<Value>,
    ) -> CallToolResult {
        if name != approval_tools::REQUEST_ACCESS {
            return approval_tools::call(&self.approvals, principal, name, arguments).await;
        }
        let ask = match approval_tools::parse_request_access(arguments) {
            Ok(ask) => ask,
            Err(why) => return CallToolResult::error(vec![ContentBlock::text(why)]),
        };
        let members = self.window_members();
        let risk = self.risk.enabled().then(|| {
            self.risk
                .assess(&self.window_observation(principal, &ask))
                .to_value()
        });
        let requested = self
            .approvals
            .request_window(principal, ask, &members, risk)
            .await;
        approval_tools::window_answer(&self.approvals, requested)
    }

    /// Every operation Warden knows with its class, and the configured
    /// critical operations with theirs: what a window's action groups and
    /// patterns can reach.
    fn window_members(&self) -> Vec<(String, String)> {
        let mut members = self.catalog.operation_classes();
        for op in &self.approvals.config().critical_operations {
            if let Some(class) = self.catalog.classify(op) {
                members.push((op.clone(), class.as_str().to_owned()));
            }
        }
        members
    }

    /// A window as the risk stage sees it: each operation or group asked
    /// for, at the window's scope, now.
    fn window_observation(
        &self,
        principal: &Principal,
        ask: &crate::approvals::WindowAsk,
    ) -> Observation {
        let scope = crate::azure::ArmId::parse(&ask.scope).ok();
        let operations = ask
            .operations
            .iter()
            .map(|asked| {
                let class = Class::parse(asked)
                    .or_else(|| self.catalog.classify(asked))
                    .unwrap_or(Class::Write);
                ObservedOp {
                    azure_op: asked.clone(),
                    class: risk_class(class, false),
                    subscription: scope
                        .as_ref()
                        .and_then(|s| s.subscription().map(str::to_owned)),
                    resource_group: scope
                        .as_ref()
                        .and_then(|s| s.resource_group().map(str::to_owned)),
                }
            })
            .collect();
        observed(principal, operations, None)
    }

    /// The tool error of a call waiting for (or refused) approval: what was
    /// asked, its state, who may approve, when it lapses, where to look.
    fn held_text(
        &self,
        request: &Request,
        previous: Option<&Request>,
        decision: &Decision,
        call_id: &str,
    ) -> String {
        let config = self.approvals.config();
        let policies = decision
            .policies()
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let what = request
            .operations
            .iter()
            .map(|o| format!("{} on {}", o.azure_op, o.resource))
            .collect::<Vec<_>>()
            .join("; ");
        let status = match &config.public_url {
            Some(base) => format!(
                " Status: {}/admin/api/requests/{}.",
                base.trim_end_matches('/'),
                request.id
            ),
            None => format!(
                " Status: GET /admin/api/requests/{} on this Warden, or the access_status tool.",
                request.id
            ),
        };
        let state = match request.status {
            ApprovalStatus::Denied => {
                let by = request
                    .reviews
                    .iter()
                    .find(|r| !r.approve)
                    .map(|r| format!(" by {}: {}", r.reviewer.name, r.reason))
                    .unwrap_or_default();
                format!("was denied{by}. The call will not run")
            }
            _ => format!(
                "is pending since {} with {} of {} approval(s); approvers: holders of the app role {} \
                 (not the requester); it lapses at {} if nobody reviews it. Retry the same call, with \
                 the same arguments, once it is approved: it will run once",
                request
                    .created
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                request.approvals(),
                request.required_approvals,
                config.approver_roles.join(" or "),
                request
                    .lapses
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        };
        let justify = if request.status != ApprovalStatus::Pending {
            String::new()
        } else if request.awaiting_justification {
            format!(
                " Reviewers see the request only once you say why the call is needed: call the \
                 {} tool with request \"{}\" and a justification (and a ticket, if any).",
                approval_tools::JUSTIFY_REQUEST,
                request.id
            )
        } else if request.justification.is_empty() {
            format!(
                " Tell the reviewers why the call is needed with the {} tool (request \"{}\").",
                approval_tools::JUSTIFY_REQUEST,
                request.id
            )
        } else {
            String::new()
        };
        let earlier = previous
            .map(|p| {
                format!(
                    " Your earlier request {} for this call {} at {}; a new one is open.",
                    p.id,
                    p.status.as_str(),
                    p.updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_default();
        format!(
            "Held for approval: policy {policies} requires a just-in-time grant for {what}.{earlier} \
             JIT request {} {state}.{justify}{status} (call {call_id})",
            request.id
        )
    }

    /// Writes the risk baselines changed since the last flush to the store
    /// every `risk.flush_interval` until `stop`, then once more: learning
    /// happens behind the calls, and a crash loses at most one interval of
    /// it.
    pub fn spawn_risk_flush(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let pipeline = self.clone();
        tokio::spawn(async move {
            let every = pipeline.risk.config().flush_interval;
            loop {
                let stopping = tokio::select! {
                    () = stop.cancelled() => true,
                    () = tokio::time::sleep(every) => false,
                };
                // An idle replica keeps up with the others' learning too
                // (what it flushes is then never older than theirs).
                if let Err(error) = pipeline.risk.catch_up().await {
                    tracing::warn!(%error, "risk events of other replicas not read; tried again at the next flush");
                }
                // A failure is logged, and the baselines stay due.
                let _ = pipeline.flush_risk().await;
                if stopping {
                    return;
                }
            }
        })
    }

    /// Writes the baselines learned since the last flush; how many. Those
    /// that could not be written are due again at the next flush.
    pub async fn flush_risk(&self) -> Result<usize, StoreError> {
        let rows = self.risk.take_dirty();
        if rows.is_empty() {
            return Ok(0);
        }
        let keys: Vec<String> = rows.iter().map(|(key, _)| key.clone()).collect();
        match self.audit.store().save_baselines(rows).await {
            Ok(()) => {
                tracing::debug!(baselines = keys.len(), "risk baselines saved");
                // The journal keeps the last hour of events; older ones
                // are in the baselines just saved.
                if let Some(journal) = self.risk.journal() {
                    let now = chrono::Utc::now();
                    if let Err(error) = journal.prune(now.timestamp()).await {
                        tracing::warn!(%error, "old risk events not pruned; tried again at the next flush");
                    }
                    let _ = self.audit.store().purge_state(ALERTED, now).await;
                }
                Ok(keys.len())
            }
            Err(error) => {
                tracing::error!(%error, baselines = keys.len(), "risk baselines not saved; retried at the next flush");
                self.risk.mark_dirty(keys);
                Err(error)
            }
        }
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
            Err(e) if e.code == crate::executor::UPSTREAM_TIMEOUT => {
                (Outcome::timeout, Some(e.message.to_string()))
            }
            Err(e) => (Outcome::error, Some(e.message.to_string())),
        };
        self.metrics.observe("tools/call", outcome, elapsed);
        let p = &call.principal;
        let (tid, oid, who) = (p.tid.as_str(), p.oid.as_str(), p.display_name.as_str());
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
        Err(e) if e.code == crate::executor::UPSTREAM_TIMEOUT => {
            (Status::Timeout, Some(e.message.to_string()))
        }
        Err(e) if e.code == crate::executor::REQUEST_CANCELLED => {
            (Status::Cancelled, Some(e.message.to_string()))
        }
        Err(e) => (Status::Error, Some(e.message.to_string())),
    }
}

/// The Azure correlation id a built-in tool reports in its result's `_meta`.
fn azure_correlation_id(result: &Result<CallToolResponse, McpError>) -> Option<String> {
    match result {
        Ok(CallToolResponse::Complete(done)) => done
            .meta
            .as_ref()?
            .0
            .get(crate::executor::arm_tools::CORRELATION_META)?
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// A call as the risk stage sees it.
fn observation(principal: &Principal, call: &ToolCall, resolution: &Resolution) -> Observation {
    let cost = risk::cost::estimate(call.arguments.as_ref());
    let creates = cost.is_some() || call.upstream_tool.to_ascii_lowercase().contains("create");
    let operations = resolution
        .operations
        .iter()
        .map(|op| ObservedOp {
            azure_op: op.azure_op.clone(),
            class: risk_class(op.class, creates),
            subscription: op.resource.subscription.clone(),
            resource_group: op.resource.resource_group.clone(),
        })
        .collect();
    observed(principal, operations, cost)
}

/// What the risk stage sees of `principal` performing `operations` now.
fn observed(principal: &Principal, operations: Vec<ObservedOp>, cost: Option<f64>) -> Observation {
    Observation {
        tenant: principal.tid.clone(),
        principal: principal.oid.clone(),
        peer: risk::peer_group(principal.kind.as_str(), &principal.roles),
        at: chrono::Utc::now().timestamp(),
        source_ip: principal.source_ip,
        operations,
        cost,
    }
}

/// The risk stage's class of an operation: changes, actions and unknown
/// operations are writes, and a write that creates something billable (it
/// has a cost estimate, or its tool is named for creating) is a creation.
fn risk_class(class: Class, creates: bool) -> RiskClass {
    match class {
        Class::Read => RiskClass::Read,
        Class::Delete => RiskClass::Delete,
        Class::Privileged => RiskClass::Privileged,
        Class::Write | Class::Action | Class::Unknown if creates => RiskClass::Create,
        Class::Write | Class::Action | Class::Unknown => RiskClass::Write,
    }
}

/// The operations of a call as approvals name them.
fn operation_refs(resolution: &Resolution) -> Vec<OperationRef> {
    resolution
        .operations
        .iter()
        .map(|op| OperationRef {
            azure_op: op.azure_op.clone(),
            class: op.class.as_str().to_owned(),
            resource: op.resource.id.to_string(),
        })
        .collect()
}

/// How the operations appear in the audit record, with what the facts
/// stage found about each resource (secret-looking tags redacted).
fn audited(
    resolution: &Resolution,
    described: &[Described],
    redactor: &crate::audit::redact::Redactor,
) -> Vec<record::Operation> {
    resolution
        .operations
        .iter()
        .enumerate()
        .map(|(i, op)| record::Operation {
            azure_op: op.azure_op.clone(),
            class: Some(op.class.as_str().to_owned()),
            resource_id: Some(op.resource.id.to_string()),
            facts: described.get(i).map(|d| redactor.facts(&d.record())),
        })
        .collect()
}

/// An operation as policy sees it: the catalog's, with the location and
/// tags the facts stage found (the resource's, and its group's).
fn operation_facts(
    op: &crate::catalog::Operation,
    described: Option<&Described>,
) -> OperationFacts {
    let mut facts = OperationFacts::from(op);
    if let Some(found) = described.and_then(|d| d.facts.as_ref()) {
        facts.location = found.location.clone();
        facts.tags = found.tags.clone();
        facts.resource_group_tags = found.resource_group_tags.clone().unwrap_or_default();
    }
    facts
}

/// A tool result flagged `isError`, with one text.
fn tool_error(text: String) -> CallToolResponse {
    CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(text)]))
}

/// Why a call was denied, naming each denied operation and the policies
/// that denied it, for the caller (a person or a model) and the log.
fn denial_text(decision: &Decision, call_id: &str) -> String {
    let quoted = |ids: &[String]| {
        ids.iter()
            .map(|id| format!("\"{id}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut reasons: Vec<String> = decision
        .operations()
        .iter()
        .filter(|op| op.effect == Effect::Deny)
        .map(|op| {
            let errors = decision.errors();
            // A policy named in an error failed to evaluate; others denied.
            let failed = |id: &String| errors.iter().any(|e| e.contains(id.as_str()));
            let by = match op.policies.as_slice() {
                [] if errors.is_empty() => "no policy permits it".to_owned(),
                [] => "it could not be authorized".to_owned(),
                ids if ids.iter().any(failed) => {
                    format!("policy {} could not be evaluated", quoted(ids))
                }
                [one] => format!("forbidden by policy {}", quoted(std::slice::from_ref(one))),
                many => format!("forbidden by policies {}", quoted(many)),
            };
            format!("{} on {}: {by}", op.azure_op, op.resource)
        })
        .collect();
    if reasons.is_empty() {
        reasons.push("no operation could be authorized".to_owned());
    }
    let mut text = format!("Denied by Warden policy. {}.", reasons.join("; "));
    if !decision.errors().is_empty() {
        text.push_str(&format!(
            " The call is denied because: {}.",
            decision.errors().join("; ")
        ));
    }
    text.push_str(&format!(" (call {call_id})"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrincipalKind;

    fn principal() -> Principal {
        let mut p = Principal::anonymous(Some("203.0.113.7".parse().unwrap()));
        p.tid = "tenant-1".into();
        p.oid = "oid-1".into();
        p.kind = PrincipalKind::User;
        p.roles = ["Reader".to_owned(), "Contributor".to_owned()].into();
        p
    }

    fn call(upstream_tool: &str, arguments: Value) -> ToolCall {
        ToolCall {
            principal: Arc::new(principal()),
            session: "s".into(),
            tool: format!("azure__{upstream_tool}"),
            upstream: "azure".into(),
            upstream_tool: upstream_tool.into(),
            call_id: ToolCall::new_id(),
            arguments: Some(arguments),
            user_agent: None,
            annotations: None,
            resource_metadata: None,
        }
    }

    fn observe(upstream_tool: &str, arguments: Value) -> Observation {
        let catalog = Catalog::builtin().unwrap();
        let call = call(upstream_tool, arguments);
        let resolution =
            catalog.resolve(&call.upstream_tool, call.arguments.as_ref().unwrap(), None);
        observation(&principal(), &call, &resolution)
    }

    #[test]
    fn a_call_is_observed_with_its_principal_peers_scopes_and_cost() {
        let obs = observe(
            "compute_vm_create",
            json!({"subscription": "0000000A-0000-4000-8000-000000000001", "resource-group": "Dev-Web", "vm-name": "vm1",
                   "vm-size": "Standard_D4s_v5", "virtual-network": "v", "subnet": "s"}),
        );
        assert_eq!(
            (obs.tenant.as_str(), obs.principal.as_str()),
            ("tenant-1", "oid-1")
        );
        assert_eq!(obs.peer, "user:Contributor+Reader");
        assert_eq!(obs.source_ip, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(obs.cost, Some(140.0));
        let vm = &obs.operations[0];
        assert_eq!(vm.azure_op, "Microsoft.Compute/virtualMachines/write");
        assert_eq!(vm.class, RiskClass::Create, "a priced write creates");
        assert_eq!(
            vm.subscription.as_deref(),
            Some("0000000a-0000-4000-8000-000000000001")
        );
        assert_eq!(vm.resource_group.as_deref(), Some("dev-web"));
        assert!(obs.at > 1_700_000_000);

        let read = observe(
            "compute_vm_get",
            json!({"subscription": "s", "resource-group": "g", "vm-name": "vm1"}),
        );
        assert_eq!(read.cost, None);
        assert_eq!(read.operations[0].class, RiskClass::Read);
        let delete = observe(
            "compute_vm_delete",
            json!({"subscription": "s", "resource-group": "g", "vm-name": "vm1"}),
        );
        assert_eq!(delete.operations[0].class, RiskClass::Delete);
        // An unpriced update is a write; a tool named for creating creates.
        let update = observe(
            "compute_vm_update",
            json!({"subscription": "s", "resource-group": "g", "vm-name": "vm1"}),
        );
        assert_eq!(update.operations[0].class, RiskClass::Write);
        let disk = observe(
            "compute_disk_create",
            json!({"subscription": "s", "resource-group": "g", "disk-name": "d1"}),
        );
        assert_eq!(disk.cost, None);
        assert_eq!(disk.operations[0].class, RiskClass::Create);
    }

    #[test]
    fn catalog_classes_map_onto_risk_classes() {
        for (class, creates, expected) in [
            (Class::Read, true, RiskClass::Read),
            (Class::Write, false, RiskClass::Write),
            (Class::Action, false, RiskClass::Write),
            (Class::Unknown, false, RiskClass::Write),
            (Class::Write, true, RiskClass::Create),
            (Class::Action, true, RiskClass::Create),
            (Class::Delete, true, RiskClass::Delete),
            (Class::Privileged, true, RiskClass::Privileged),
        ] {
            assert_eq!(risk_class(class, creates), expected, "{class:?} {creates}");
        }
    }
}
