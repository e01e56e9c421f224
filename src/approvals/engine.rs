//! The approvals engine: requests, reviews, grants and their rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use super::lifecycle::ApprovalError;
use super::lifecycle::{self, Event, Rules, effective, glob};
use super::model::{Ask, OperationRef, Party, Request, Status};
use super::notify::{Notification, Notifier, NotifyConfig};
use crate::audit::Audit;
use crate::audit::record::{Kind, Record};
use crate::azure::ArmId;
use crate::identity::Principal;
use crate::policy::JitFacts;

/// `[approvals]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// App roles whose holders may review (approve, deny, revoke).
    pub approver_roles: Vec<String>,
    /// A pending request lapses after this long (at most 24 h).
    #[serde(with = "humantime_serde")]
    pub pending_lapse: Duration,
    /// An approved single-call request must be used within this long.
    #[serde(with = "humantime_serde")]
    pub single_use_window: Duration,
    /// The longest time-window grant.
    #[serde(with = "humantime_serde")]
    pub max_window: Duration,
    /// Approvals a request needs.
    pub approvals: u32,
    /// Approvals a request for a critical operation needs.
    pub critical_approvals: u32,
    /// Operations (`*` patterns, any case) that are critical.
    pub critical_operations: Vec<String>,
    /// Public base URL of Warden (for the status links in tool errors);
    /// default: none (the request id only).
    pub public_url: Option<String>,
    /// Webhooks told of new requests and decisions.
    pub notify: NotifyConfig,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            approver_roles: vec!["SecurityManager".into()],
            pending_lapse: Duration::from_secs(3600),
            single_use_window: Duration::from_secs(15 * 60),
            max_window: Duration::from_secs(4 * 3600),
            approvals: 1,
            critical_approvals: 2,
            critical_operations: vec![
                "Microsoft.Authorization/roleAssignments/write".into(),
                "Microsoft.Authorization/policyAssignments/delete".into(),
                "Microsoft.Authorization/roleDefinitions/write".into(),
                "Microsoft.Insights/diagnosticSettings/delete".into(),
            ],
            public_url: None,
            notify: NotifyConfig::default(),
        }
    }
}

impl ApprovalsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.pending_lapse.is_zero() || self.pending_lapse > Duration::from_secs(24 * 3600) {
            return Err("approvals.pending_lapse: between 1s and 24h".into());
        }
        if self.single_use_window.is_zero() || self.max_window.is_zero() {
            return Err("approvals.single_use_window and max_window: more than 0s".into());
        }
        if self.approvals == 0 || self.critical_approvals < self.approvals {
            return Err(
                "approvals.approvals: at least 1, and critical_approvals at least as many".into(),
            );
        }
        if self.approver_roles.is_empty() {
            return Err("approvals.approver_roles: name at least one app role".into());
        }
        self.notify.validate()
    }
}

/// What stage 5 decided for a call policy wants approved.
#[derive(Debug, Clone)]
pub enum Gate {
    /// An approved grant covers the call: decide again with it in
    /// `context.jit`, and [`Approvals::consume`] it if the call runs.
    Granted { facts: JitFacts, request: Request },
    /// No grant: the request (new, or the one already open for this call)
    /// the caller must wait for.
    Held {
        request: Request,
        created: bool,
        /// The earlier request for the same call, when it ended without
        /// running it again (lapsed, expired, revoked, cancelled): the
        /// caller is told, and a new request is open.
        previous: Option<Box<Request>>,
    },
}

/// A list filter for the admin API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    pub status: Option<String>,
    /// Requester object id.
    pub requester: Option<String>,
    pub limit: Option<usize>,
}

/// The call a gate is asked about.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    pub tool: &'a str,
    pub upstream: &'a str,
    pub upstream_tool: &'a str,
    pub arguments: Option<&'a Value>,
    /// The arguments as the audit log shows them (redacted).
    pub redacted: Value,
    pub operations: Vec<OperationRef>,
    pub policies: Vec<String>,
    pub risk: Option<Value>,
}

/// A call the risk stage found risky, for the security managers
/// ([`Approvals::notify_risk`]).
#[derive(Debug, Clone)]
pub struct RiskAlert<'a> {
    pub principal: &'a Principal,
    pub tool: &'a str,
    pub call_id: &'a str,
    pub operations: &'a [OperationRef],
    /// Score and level, e.g. `82 (high)`.
    pub risk: String,
    /// Why, one sentence per finding, strongest first.
    pub reasons: Vec<String>,
    /// What became of the call: `allowed`, `held for approval`, `denied`.
    pub decision: &'a str,
    /// The whole assessment, for custom receivers.
    pub assessment: Value,
}

#[derive(Default)]
struct State {
    requests: BTreeMap<String, Request>,
    /// (tid, oid, upstream, upstream tool, args hash) → latest request id.
    by_call: HashMap<(String, String, String, String, String), String>,
}

/// The approvals service. Share it with `Arc`.
pub struct Approvals {
    config: ApprovalsConfig,
    audit: Arc<Audit>,
    state: tokio::sync::Mutex<State>,
    /// A copy of the requests for synchronous readers.
    snapshot: Mutex<BTreeMap<String, Request>>,
    notifier: Notifier,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// SHA-256 (hex) of the arguments' canonical JSON (`{}` when none).
pub fn args_hash(arguments: Option<&Value>) -> String {
    let empty = Value::Object(Default::default());
    let bytes = serde_json_canonicalizer::to_vec(arguments.unwrap_or(&empty)).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

fn party(p: &Principal) -> Party {
    Party {
        tid: p.tid.clone(),
        oid: p.oid.clone(),
        name: p.display_name.clone(),
    }
}

impl Approvals {
    /// Rebuilds the state from the `approval` records of the store at
    /// `store_path` (the last record of a request is its state).
    pub fn open(
        config: ApprovalsConfig,
        audit: Arc<Audit>,
        store_path: &std::path::Path,
        metrics: crate::metrics::Metrics,
    ) -> Result<Approvals, String> {
        config.validate()?;
        let mut state = State::default();
        if store_path.is_file() {
            let reader = crate::store::Reader::open(store_path).map_err(|e| e.to_string())?;
            reader
                .records_of_kind(Kind::Approval.as_str(), |bytes| {
                    let record: Record = match serde_json::from_slice(bytes) {
                        Ok(r) => r,
                        Err(_) => return Ok(()),
                    };
                    if let Some(request) = record
                        .details
                        .as_ref()
                        .and_then(|d| d.get("request"))
                        .and_then(|r| serde_json::from_value::<Request>(r.clone()).ok())
                    {
                        index(&mut state, &request);
                        state.requests.insert(request.id.clone(), request);
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
        }
        let snapshot = Mutex::new(state.requests.clone());
        let notifier = Notifier::start(config.notify.clone(), metrics);
        Ok(Approvals {
            config,
            audit,
            state: tokio::sync::Mutex::new(state),
            snapshot,
            notifier,
        })
    }

    pub fn config(&self) -> &ApprovalsConfig {
        &self.config
    }

    /// The lifecycle rules of `[approvals]`.
    fn rules(&self) -> Rules {
        Rules {
            approvals: self.config.approvals,
            critical_approvals: self.config.critical_approvals,
            pending_lapse: self.config.pending_lapse,
            single_use_window: self.config.single_use_window,
            max_window: self.config.max_window,
        }
    }

    /// Whether `principal` may review: an approver role, and MFA.
    pub fn check_reviewer(&self, principal: &Principal) -> Result<(), ApprovalError> {
        if !self
            .config
            .approver_roles
            .iter()
            .any(|r| principal.roles.contains(r))
        {
            return Err(ApprovalError::Forbidden(format!(
                "reviewing JIT requests needs the app role {}",
                self.config.approver_roles.join(" or ")
            )));
        }
        if !principal.mfa {
            return Err(ApprovalError::Forbidden(
                "reviewing JIT requests needs a multi-factor sign-in".into(),
            ));
        }
        Ok(())
    }

    pub fn is_reviewer(&self, principal: &Principal) -> bool {
        self.config
            .approver_roles
            .iter()
            .any(|r| principal.roles.contains(r))
    }

    /// Requests, newest first, as `principal` may see them: reviewers see
    /// all, others their own.
    pub fn list(&self, principal: &Principal, filter: &Filter) -> Vec<Request> {
        let now = Utc::now();
        let all = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let reviewer = self.is_reviewer(principal);
        let me = party(principal);
        let mut out: Vec<Request> = all
            .values()
            .filter(|r| reviewer || r.requester.same(&me))
            .filter(|r| {
                filter
                    .requester
                    .as_ref()
                    .is_none_or(|o| &r.requester.oid == o)
            })
            .map(|r| effective(r, now))
            .filter(|r| {
                filter
                    .status
                    .as_deref()
                    .is_none_or(|s| r.status.as_str() == s)
            })
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        out.truncate(filter.limit.unwrap_or(200).min(1000));
        out
    }

    /// One request, if `principal` may see it.
    pub fn get(&self, principal: &Principal, id: &str) -> Result<Request, ApprovalError> {
        let all = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let request = all
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        if !self.is_reviewer(principal) && !request.requester.same(&party(principal)) {
            return Err(ApprovalError::NotFound(id.to_owned()));
        }
        Ok(effective(request, Utc::now()))
    }

    /// Stage 5: a grant for this call, or the request it waits for.
    pub async fn gate(
        &self,
        principal: &Principal,
        call: CallFacts<'_>,
    ) -> Result<Gate, ApprovalError> {
        let now = Utc::now();
        let hash = args_hash(call.arguments);
        let key = (
            principal.tid.clone(),
            principal.oid.clone(),
            call.upstream.to_owned(),
            call.upstream_tool.to_owned(),
            hash.clone(),
        );
        let mut state = self.state.lock().await;
        self.sweep(&mut state, now).await?;
        if let Some(window) = state
            .requests
            .values()
            .find(|r| lifecycle::covers(r, &party(principal), &call.operations, now))
            .cloned()
        {
            let grant = window.grant.clone().ok_or_else(|| {
                ApprovalError::Conflict("approved request without a grant".into())
            })?;
            let (scope, operations) = match &window.ask {
                Ask::Window {
                    scope, operations, ..
                } => (Some(scope.clone()), operations.clone()),
                Ask::Call { .. } => (None, Vec::new()),
            };
            return Ok(Gate::Granted {
                facts: JitFacts {
                    grant_id: grant.id.clone(),
                    approver: grant.approvers.join(","),
                    expires: grant.expires,
                    role: None,
                    scope,
                    approvers: grant.approvers.clone(),
                    operations,
                },
                request: window,
            });
        }
        let mut previous = None;
        if let Some(existing) = state
            .by_call
            .get(&key)
            .and_then(|id| state.requests.get(id))
            .cloned()
        {
            match existing.status {
                Status::Approved => {
                    let grant = existing.grant.clone().ok_or_else(|| {
                        ApprovalError::Conflict("approved request without a grant".into())
                    })?;
                    let facts = JitFacts {
                        grant_id: grant.id.clone(),
                        approver: grant.approvers.join(","),
                        expires: grant.expires,
                        role: None,
                        scope: None,
                        approvers: grant.approvers.clone(),
                        operations: existing
                            .operations
                            .iter()
                            .map(|o| o.azure_op.clone())
                            .collect(),
                    };
                    return Ok(Gate::Granted {
                        facts,
                        request: existing,
                    });
                }
                Status::Pending | Status::Denied => {
                    return Ok(Gate::Held {
                        request: existing,
                        created: false,
                        previous: None,
                    });
                }
                Status::Consumed => {}
                _ => previous = Some(Box::new(existing)),
            }
        }
        let critical = call
            .operations
            .iter()
            .any(|op| self.is_critical(&op.azure_op));
        let mut request = self.new_request(
            principal,
            Ask::Call {
                tool: call.tool.to_owned(),
                upstream: call.upstream.to_owned(),
                upstream_tool: call.upstream_tool.to_owned(),
                args_hash: hash,
                arguments: call.redacted,
            },
            call.operations,
            critical,
            now,
        );
        request.policies = call.policies;
        request.risk = call.risk;
        self.record(&mut state, Event::Requested, &request, Some(principal))
            .await?;
        Ok(Gate::Held {
            request,
            created: true,
            previous,
        })
    }

    /// A request made ahead of time: `operations` (names, `*` patterns or
    /// action groups) at `scope` for `duration`.
    pub async fn request_window(
        &self,
        principal: &Principal,
        operations: Vec<String>,
        scope: &str,
        duration: Duration,
        justification: &str,
        ticket: Option<String>,
    ) -> Result<Request, ApprovalError> {
        let justification = justification.trim();
        if justification.is_empty() {
            return Err(ApprovalError::Invalid(
                "a justification is required: say why you need this access".into(),
            ));
        }
        let operations: Vec<String> = operations
            .into_iter()
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if operations.is_empty() {
            return Err(ApprovalError::Invalid(
                "name at least one operation, `*` pattern or action group (read, write, delete, action, privileged)".into(),
            ));
        }
        if duration.is_zero() || duration > self.config.max_window {
            return Err(ApprovalError::Invalid(format!(
                "the duration must be more than 0 and at most {}",
                humantime::format_duration(self.config.max_window)
            )));
        }
        let scope = ArmId::parse(scope).map_err(|e| {
            ApprovalError::Invalid(format!(
                "scope {scope:?} is not an ARM id (/subscriptions/<id>[/resourceGroups/<name>[/providers/...]]): {}",
                e.reason
            ))
        })?;
        if scope.is_root() {
            return Err(ApprovalError::Invalid(
                "a grant needs a scope below the tenant root: a subscription, resource group or resource".into(),
            ));
        }
        let now = Utc::now();
        let critical = operations.iter().any(|op| {
            self.is_critical(op) || self.config.critical_operations.iter().any(|p| glob(op, p))
        });
        let refs = operations
            .iter()
            .map(|op| OperationRef {
                azure_op: op.clone(),
                class: String::new(),
                resource: scope.to_string(),
            })
            .collect();
        let mut request = self.new_request(
            principal,
            Ask::Window {
                operations,
                scope: scope.to_string(),
                duration_secs: duration.as_secs(),
            },
            refs,
            critical,
            now,
        );
        request.justification = justification.to_owned();
        request.ticket = ticket;
        let mut state = self.state.lock().await;
        self.record(&mut state, Event::Requested, &request, Some(principal))
            .await?;
        Ok(request)
    }

    fn is_critical(&self, azure_op: &str) -> bool {
        self.config
            .critical_operations
            .iter()
            .any(|p| glob(p, azure_op))
    }

    /// A new pending request, needing the approvals its criticality asks.
    fn new_request(
        &self,
        principal: &Principal,
        ask: Ask,
        operations: Vec<OperationRef>,
        critical: bool,
        now: DateTime<Utc>,
    ) -> Request {
        lifecycle::open(
            uuid::Uuid::now_v7().to_string(),
            party(principal),
            ask,
            operations,
            critical,
            &self.rules(),
            now,
        )
    }

    /// Uses a single-call grant: after this the same call needs a new
    /// approval. Durable before it returns.
    pub async fn consume(
        &self,
        request_id: &str,
        call_id: &str,
        principal: &Principal,
    ) -> Result<(), ApprovalError> {
        let mut state = self.state.lock().await;
        let request = state
            .requests
            .get(request_id)
            .ok_or_else(|| ApprovalError::NotFound(request_id.to_owned()))?;
        match lifecycle::consume(request, call_id, Utc::now())? {
            Some(used) => {
                self.record(&mut state, Event::Consumed, &used, Some(principal))
                    .await
            }
            // A time window serves every call in it until it expires.
            None => Ok(()),
        }
    }

    /// A reviewer approves or denies. Separation of duties: an approver
    /// role, MFA, never one's own request, a reason, one review per
    /// reviewer; any denial ends it.
    pub async fn review(
        &self,
        id: &str,
        reviewer: &Principal,
        approve: bool,
        reason: &str,
    ) -> Result<Request, ApprovalError> {
        self.check_reviewer(reviewer)?;
        let now = Utc::now();
        let mut state = self.state.lock().await;
        let request = self.current(&mut state, id, now).await?;
        let (request, event) = lifecycle::review(
            &request,
            party(reviewer),
            approve,
            reason,
            uuid::Uuid::now_v7().to_string(),
            &self.rules(),
            now,
        )?;
        self.record(&mut state, event, &request, Some(reviewer))
            .await?;
        Ok(request)
    }

    /// A reviewer revokes a grant (or withdraws a pending request); the
    /// next call no longer finds it.
    pub async fn revoke(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<Request, ApprovalError> {
        self.check_reviewer(by)?;
        self.close(
            id,
            by,
            reason,
            Status::Revoked,
            &[Status::Approved, Status::Pending],
        )
        .await
    }

    /// The requester (or a reviewer) cancels a pending request.
    pub async fn cancel(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<Request, ApprovalError> {
        {
            let all = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            let request = all
                .get(id)
                .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
            if !request.requester.same(&party(by)) && !self.is_reviewer(by) {
                return Err(ApprovalError::Forbidden(
                    "only the requester or a reviewer may cancel a request".into(),
                ));
            }
        }
        self.close(id, by, reason, Status::Cancelled, &[Status::Pending])
            .await
    }

    async fn close(
        &self,
        id: &str,
        by: &Principal,
        reason: &str,
        to: Status,
        from: &[Status],
    ) -> Result<Request, ApprovalError> {
        let now = Utc::now();
        let mut state = self.state.lock().await;
        let request = self.current(&mut state, id, now).await?;
        let (request, event) = lifecycle::close(&request, to, from, reason, now)?;
        self.record(&mut state, event, &request, Some(by)).await?;
        Ok(request)
    }

    /// Request `id` as it stands at `now`, after recording what is due.
    async fn current(
        &self,
        state: &mut State,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Request, ApprovalError> {
        self.sweep(state, now).await?;
        state
            .requests
            .get(id)
            .cloned()
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))
    }

    /// Records the time-driven changes due at `now` (lapse, expiry).
    async fn sweep(&self, state: &mut State, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        let due: Vec<(Request, Event)> = state
            .requests
            .values()
            .filter_map(|r| lifecycle::due(r, now).map(|event| (effective(r, now), event)))
            .collect();
        for (request, event) in due {
            self.record(state, event, &request, None).await?;
        }
        Ok(())
    }

    /// Periodic sweep (lapses and expiries recorded even when idle).
    pub async fn tick(&self) -> Result<(), ApprovalError> {
        let mut state = self.state.lock().await;
        self.sweep(&mut state, Utc::now()).await
    }

    /// Records lapses and expiries every `every` until `stop` (decisions
    /// never wait for it: a lapsed or expired request is treated as such
    /// from the moment it is due).
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let approvals = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {
                        if let Err(error) = approvals.tick().await {
                            tracing::warn!(%error, "JIT lapses and expiries not recorded yet");
                        }
                    }
                }
            }
        })
    }

    /// Writes the change durably, then applies it.
    async fn record(
        &self,
        state: &mut State,
        event: Event,
        request: &Request,
        actor: Option<&Principal>,
    ) -> Result<(), ApprovalError> {
        let event_name = event.as_str();
        let mut record = Record::new(Kind::Approval);
        record.principal = actor.map(crate::audit::record::Actor::from);
        if let Ask::Call {
            tool,
            upstream,
            upstream_tool,
            ..
        } = &request.ask
        {
            record.tool = Some(tool.clone());
            record.upstream = Some(upstream.clone());
            record.upstream_tool = Some(upstream_tool.clone());
        }
        record.details = Some(json!({
            "event": event_name,
            "request_id": request.id,
            "request": request,
        }));
        self.audit
            .append(record)
            .await
            .map_err(|e| ApprovalError::Unavailable(e.to_string()))?;
        index(state, request);
        state.requests.insert(request.id.clone(), request.clone());
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.id.clone(), request.clone());
        tracing::info!(target: "warden::approvals", event = event_name, request = %request.id, status = request.status.as_str(), "JIT request");
        if event.is_notified() {
            self.notifier.notify(self.notification(event_name, request));
        }
        Ok(())
    }

    /// Tells the security managers of a risky call (`risk.alert`) through
    /// the same webhooks as JIT requests. Never blocks.
    pub fn notify_risk(&self, alert: RiskAlert<'_>) {
        let p = alert.principal;
        let join = |f: fn(&OperationRef) -> &str| {
            alert
                .operations
                .iter()
                .map(f)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut facts = vec![
            (
                "Principal".to_owned(),
                format!("{} ({})", p.display_name, p.oid),
            ),
            ("Tool".to_owned(), alert.tool.to_owned()),
            ("Operation".to_owned(), join(|o| o.azure_op.as_str())),
            ("Resource".to_owned(), join(|o| o.resource.as_str())),
            ("Risk".to_owned(), alert.risk.clone()),
            ("Decision".to_owned(), alert.decision.to_owned()),
        ];
        if !alert.reasons.is_empty() {
            facts.push(("Reasons".to_owned(), alert.reasons.join("; ")));
        }
        self.notifier.notify(Notification {
            event: "risk.alert".into(),
            title: format!("Risk alert: {} at {}", p.display_name, alert.risk),
            text: format!(
                "{} called {} ({}); the call was {}. Call {}.",
                p.display_name,
                alert.tool,
                join(|o| o.azure_op.as_str()),
                alert.decision,
                alert.call_id
            ),
            facts,
            link: None,
            details: json!({
                "call_id": alert.call_id,
                "principal": { "tid": p.tid, "oid": p.oid, "name": p.display_name },
                "tool": alert.tool,
                "operations": alert.operations,
                "decision": alert.decision,
                "risk": alert.assessment,
            }),
        });
    }

    /// Waits (at most `within`) until notifications are delivered.
    pub async fn flush_notifications(&self, within: Duration) -> bool {
        self.notifier.flush(within).await
    }

    /// The webhook message of a change.
    fn notification(&self, event: &str, request: &Request) -> Notification {
        let what = request
            .operations
            .iter()
            .map(|o| o.azure_op.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let title = match event {
            "requested" => format!("JIT request by {}: {what}", request.requester.name),
            other => format!("JIT request {other}: {what}"),
        };
        let mut facts = vec![
            ("Requester".to_owned(), request.requester.name.clone()),
            ("Operations".to_owned(), what.clone()),
            (
                "Resources".to_owned(),
                request
                    .operations
                    .iter()
                    .map(|o| o.resource.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("Status".to_owned(), request.status.as_str().to_owned()),
            (
                "Approvals".to_owned(),
                format!("{} of {}", request.approvals(), request.required_approvals),
            ),
        ];
        if !request.justification.is_empty() {
            facts.push(("Justification".to_owned(), request.justification.clone()));
        }
        if let Some(reason) = &request.closing_reason {
            facts.push(("Reason".to_owned(), reason.clone()));
        }
        if let Some(risk) = request.risk.as_ref().and_then(risk_fact) {
            facts.push(("Risk".to_owned(), risk));
        }
        Notification {
            event: format!("jit.{event}"),
            title,
            text: format!(
                "Request {} ({}), lapses {}.",
                request.id,
                request.status.as_str(),
                request
                    .lapses
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            facts,
            link: self.config.public_url.as_ref().map(|base| {
                format!(
                    "{}/admin/api/requests/{}",
                    base.trim_end_matches('/'),
                    request.id
                )
            }),
            details: json!({ "request": request }),
        }
    }
}

/// `82 (high)` from the risk stage's assessment of a held call.
fn risk_fact(risk: &Value) -> Option<String> {
    let score = risk.get("score")?.as_u64()?;
    let level = risk.get("level")?.as_str()?;
    Some(format!("{score} ({level})"))
}

fn index(state: &mut State, request: &Request) {
    if let Ask::Call {
        upstream,
        upstream_tool,
        args_hash,
        ..
    } = &request.ask
    {
        state.by_call.insert(
            (
                request.requester.tid.clone(),
                request.requester.oid.clone(),
                upstream.clone(),
                upstream_tool.clone(),
                args_hash.clone(),
            ),
            request.id.clone(),
        );
    }
}
