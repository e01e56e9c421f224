//! The approvals engine: requests, reviews, grants and their rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::facts::{self, Lookups};
pub use super::lifecycle::ApprovalError;
use super::lifecycle::{self, Event, Rules, Verdict, effective, glob};
use super::model::{Ask, Facts, OperationRef, Party, Request, Status};
use super::notify::{Notification, Notifier, NotifyConfig};
use crate::audit::record::{Kind, Record};
use crate::audit::{Audit, AuditError};
use crate::azure::ArmId;
use crate::identity::Principal;
use crate::policy::JitFacts;
use crate::store::{Guard, Reader, StoreError};

/// `[approvals]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// App roles whose holders may review (approve, deny, revoke).
    pub approver_roles: Vec<String>,
    /// App roles whose holders see every request and its history, read
    /// only (auditors).
    pub auditor_roles: Vec<String>,
    /// A held call's request is shown to reviewers only once its requester
    /// has given a justification (Warden's tool `justify_request`).
    pub require_justification: bool,
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
            auditor_roles: vec!["Auditor".into()],
            require_justification: false,
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

/// A list filter for the admin API and the page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    pub status: Option<String>,
    /// Requester object id.
    pub requester: Option<String>,
    /// Operation class of any of the request's operations (`delete`,
    /// `privileged`, ...).
    pub class: Option<String>,
    /// An ARM scope: requests about resources at or below it.
    pub scope: Option<String>,
    /// `created` (newest first, the default), `risk` (highest first),
    /// `lapses` (soonest first) or `requester`.
    pub sort: Option<String>,
    /// Requests to skip (pagination).
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

/// One page of a filtered list.
#[derive(Debug, Clone)]
pub struct Listing {
    pub requests: Vec<Request>,
    /// How many requests the filter matches in all.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// A time window asked for ahead (`request_access`).
#[derive(Debug, Clone)]
pub struct WindowAsk {
    /// Operation names, `*` patterns or action groups.
    pub operations: Vec<String>,
    pub scope: String,
    pub duration: Duration,
    pub justification: String,
    pub ticket: Option<String>,
}

/// The risk score of a request (0 when it was not scored).
pub fn risk_score(request: &Request) -> u64 {
    request
        .risk
        .as_ref()
        .and_then(|r| r.get("score"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// The call a gate is asked about.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    /// The call's id in the audit log.
    pub call_id: &'a str,
    pub tool: &'a str,
    pub upstream: &'a str,
    pub upstream_tool: &'a str,
    pub arguments: Option<&'a Value>,
    /// The arguments as the audit log shows them (redacted).
    pub redacted: Value,
    pub operations: Vec<OperationRef>,
    pub policies: Vec<String>,
    pub risk: Option<Value>,
    /// Decision inputs (see [`facts::Lookups`]), for the decoded facts
    /// reviewers are shown.
    pub decision_inputs: Vec<String>,
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
    /// Each request's version: the token of its latest change (`None` for
    /// requests last changed before versions were kept).
    versions: HashMap<String, String>,
    /// The sequence number after the last `approval` record applied.
    applied: i64,
}

/// The `state` namespace of the request versions every change is guarded
/// by (so replicas sharing a store change a request one at a time).
const VERSIONS: &str = "approvals.version";

/// How often a change is tried again after another replica changed the
/// same request first (each try starts from the other's change).
const RACE_RETRIES: usize = 5;

impl State {
    /// Applies the `approval` records of `reader` from `self.applied` on.
    fn catch_up(&mut self, reader: &crate::store::Reader) -> Result<(), StoreError> {
        let from = self.applied;
        let mut applied = from;
        reader.records_of_kind_since(Kind::Approval.as_str(), from, |seq, bytes| {
            applied = seq + 1;
            let Ok(record) = serde_json::from_slice::<Record>(bytes) else {
                return Ok(());
            };
            let details = record.details.as_ref();
            let Some(request) = details
                .and_then(|d| d.get("request"))
                .and_then(|r| serde_json::from_value::<Request>(r.clone()).ok())
            else {
                return Ok(());
            };
            match details
                .and_then(|d| d.get("version"))
                .and_then(Value::as_str)
            {
                Some(version) => self.versions.insert(request.id.clone(), version.to_owned()),
                None => self.versions.remove(&request.id),
            };
            index(self, &request);
            self.requests.insert(request.id.clone(), request);
            Ok(())
        })?;
        self.applied = applied;
        Ok(())
    }
}

/// The approvals service. Share it with `Arc`.
pub struct Approvals {
    config: ApprovalsConfig,
    audit: Arc<Audit>,
    /// Reads what other replicas recorded (reopened after an error).
    reader: Mutex<Option<crate::store::Reader>>,
    state: tokio::sync::Mutex<State>,
    /// A copy of the requests for synchronous readers.
    snapshot: Mutex<BTreeMap<String, Request>>,
    /// Decoded facts by request id (kept in the store beside the log).
    facts: Mutex<HashMap<String, Facts>>,
    /// Display names of principals Warden has seen, by object id.
    names: Mutex<HashMap<String, String>>,
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
    /// Rebuilds the state from the `approval` records of the audit log's
    /// store (the last record of a request is its state).
    pub fn open(
        config: ApprovalsConfig,
        audit: Arc<Audit>,
        metrics: crate::metrics::Metrics,
    ) -> Result<Approvals, String> {
        config.validate()?;
        let mut state = State::default();
        let reader = audit.store().reader().map_err(|e| e.to_string())?;
        let facts = stored_facts(&reader).map_err(|e| e.to_string())?;
        state.catch_up(&reader).map_err(|e| e.to_string())?;
        let snapshot = Mutex::new(state.requests.clone());
        let notifier = Notifier::start(config.notify.clone(), metrics);
        let mut names = HashMap::new();
        for request in state.requests.values() {
            let parties = std::iter::once(&request.requester)
                .chain(request.reviews.iter().map(|r| &r.reviewer));
            for party in parties {
                names.insert(party.oid.clone(), party.name.clone());
            }
        }
        Ok(Approvals {
            config,
            audit,
            reader: Mutex::new(Some(reader)),
            state: tokio::sync::Mutex::new(state),
            snapshot,
            facts: Mutex::new(facts),
            names: Mutex::new(names),
            notifier,
        })
    }

    pub fn config(&self) -> &ApprovalsConfig {
        &self.config
    }

    /// The store the audit log (and so every request's records) is in.
    pub fn store_location(&self) -> &crate::store::Location {
        self.audit.store().location()
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

    /// Whether `principal` may read every request and its history
    /// (auditors; read only).
    pub fn is_auditor(&self, principal: &Principal) -> bool {
        self.config
            .auditor_roles
            .iter()
            .any(|r| principal.roles.contains(r))
    }

    /// Whether `principal` may see `request`: its requester always; an
    /// auditor always; a reviewer unless it still awaits its requester's
    /// justification.
    fn may_see(&self, principal: &Principal, request: &Request) -> bool {
        request.requester.same(&party(principal))
            || self.is_auditor(principal)
            || (self.is_reviewer(principal) && !request.awaiting_justification)
    }

    /// Notes the display name of a principal Warden has seen sign in, to
    /// show it where a request names the principal by object id.
    pub fn saw(&self, principal: &Principal) {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.len() < 100_000 || names.contains_key(&principal.oid) {
            names.insert(principal.oid.clone(), principal.display_name.clone());
        }
    }

    /// The display name of object id `oid`, if Warden has seen it.
    pub fn name_of(&self, oid: &str) -> Option<String> {
        let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        names.get(oid).cloned()
    }

    /// The decoded facts reviewers are shown of request `id`.
    pub fn facts(&self, id: &str) -> Facts {
        let facts = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
        facts.get(id).cloned().unwrap_or_default()
    }

    /// Requests, newest first, as `principal` may see them: reviewers and
    /// auditors see all, others their own (at most `filter.limit`).
    /// Applies what other replicas recorded since the last look, so that
    /// the synchronous readers ([`Approvals::listing`], [`Approvals::get`])
    /// see it: the page, the API and the tools call it before they read. A
    /// failure is logged, and readers see what this replica last knew.
    pub async fn refresh(&self) {
        let mut state = self.state.lock().await;
        if let Err(error) = self.catch_up(&mut state) {
            tracing::warn!(%error, "JIT requests of other replicas not read; showing what this replica knows");
        }
    }

    pub fn list(&self, principal: &Principal, filter: &Filter) -> Vec<Request> {
        self.listing(principal, filter).requests
    }

    /// One page of the requests `principal` may see that match `filter`,
    /// sorted as it asks, with the total that match.
    pub fn listing(&self, principal: &Principal, filter: &Filter) -> Listing {
        let now = Utc::now();
        let all = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let scope = filter
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| ArmId::parse_scope(s).ok());
        let mut out: Vec<Request> =
            all.values()
                .filter(|r| self.may_see(principal, r))
                .filter(|r| {
                    filter
                        .requester
                        .as_ref()
                        .is_none_or(|o| o.is_empty() || &r.requester.oid == o)
                })
                .filter(|r| {
                    filter.class.as_deref().is_none_or(|c| {
                        c.is_empty()
                            || r.operations.iter().any(|o| o.class.eq_ignore_ascii_case(c))
                            || matches!(&r.ask, Ask::Window { operations, .. }
                            if operations.iter().any(|o| o.eq_ignore_ascii_case(c)))
                    })
                })
                .filter(|r| match &scope {
                    None => true,
                    // A scope that does not parse matches nothing.
                    Some(None) => false,
                    Some(Some(scope)) => r.operations.iter().any(|o| {
                        ArmId::parse_scope(&o.resource).is_ok_and(|id| scope.contains(&id))
                    }),
                })
                .map(|r| effective(r, now))
                .filter(|r| {
                    filter
                        .status
                        .as_deref()
                        .is_none_or(|s| s.is_empty() || r.status.as_str() == s)
                })
                .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        match filter.sort.as_deref() {
            Some("risk") => out.sort_by_key(|r| std::cmp::Reverse(risk_score(r))),
            Some("lapses") => out.sort_by_key(|r| match r.status {
                Status::Pending => (0, r.lapses),
                _ => (1, r.lapses),
            }),
            Some("requester") => out.sort_by_key(|r| r.requester.name.to_lowercase()),
            _ => {}
        }
        let total = out.len();
        let limit = filter.limit.unwrap_or(200).clamp(1, 1000);
        let offset = filter.offset.unwrap_or(0).min(total);
        let requests = out.into_iter().skip(offset).take(limit).collect();
        Listing {
            requests,
            total,
            offset,
            limit,
        }
    }

    /// One request, if `principal` may see it.
    pub fn get(&self, principal: &Principal, id: &str) -> Result<Request, ApprovalError> {
        let all = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        let request = all
            .get(id)
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        if !self.may_see(principal, request) {
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
        self.saw(principal);
        let critical = call
            .operations
            .iter()
            .any(|op| self.is_critical(&op.azure_op));
        let name_of = |oid: &str| self.name_of(oid);
        let shown = facts::of_call(
            call.arguments,
            &call.operations,
            &Lookups {
                decision_inputs: &call.decision_inputs,
                name_of: &name_of,
            },
        );
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
        request.call_id = Some(call.call_id.to_owned());
        request.awaiting_justification = self.config.require_justification;
        self.keep_facts(&mut request, shown).await?;
        self.record(&mut state, Event::Requested, &request, Some(principal))
            .await?;
        Ok(Gate::Held {
            request,
            created: true,
            previous,
        })
    }

    /// A request made ahead of time: `ask.operations` (names, `*`
    /// patterns or action groups) at `ask.scope` for `ask.duration`.
    /// `members` are the operations Warden knows with their classes: a
    /// window reaching any critical operation through them (the group
    /// `privileged` reaches role assignments) needs the critical number of
    /// approvals. `risk` is the risk stage's assessment of the window.
    pub async fn request_window(
        &self,
        principal: &Principal,
        ask: WindowAsk,
        members: &[(String, String)],
        risk: Option<Value>,
    ) -> Result<Request, ApprovalError> {
        let justification = ask.justification.trim();
        if justification.is_empty() {
            return Err(ApprovalError::Invalid(
                "a justification is required: say why you need this access".into(),
            ));
        }
        let operations = window_operations(ask.operations)?;
        let duration = ask.duration;
        if duration.is_zero() || duration > self.config.max_window {
            return Err(ApprovalError::Invalid(format!(
                "the duration must be more than 0 and at most {}",
                humantime::format_duration(self.config.max_window)
            )));
        }
        let scope = window_scope(&ask.scope)?;
        self.saw(principal);
        let now = Utc::now();
        let critical =
            lifecycle::window_is_critical(&operations, &self.config.critical_operations, members);
        let refs = operations
            .iter()
            .map(|op| OperationRef {
                azure_op: op.clone(),
                class: String::new(),
                resource: scope.to_string(),
            })
            .collect();
        let shown = facts::of_window(&operations, scope.as_str(), duration.as_secs(), members);
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
        request.ticket = ask.ticket.filter(|t| !t.trim().is_empty());
        request.risk = risk;
        let mut state = self.state.lock().await;
        self.keep_facts(&mut request, shown).await?;
        self.record(&mut state, Event::Requested, &request, Some(principal))
            .await?;
        Ok(request)
    }

    /// The requester gives a pending request its justification (and a
    /// ticket); a request held back for want of one reaches the reviewers.
    pub async fn justify(
        &self,
        id: &str,
        requester: &Principal,
        justification: &str,
        ticket: Option<&str>,
    ) -> Result<Request, ApprovalError> {
        let now = Utc::now();
        let mut state = self.state.lock().await;
        let request = self.current(&mut state, id, now).await?;
        if !request.requester.same(&party(requester)) {
            // Others' requests are not even named.
            return Err(ApprovalError::NotFound(id.to_owned()));
        }
        let was_held_back = request.awaiting_justification;
        let (request, event) =
            lifecycle::justify(&request, &party(requester), justification, ticket, now)?;
        self.record(&mut state, event, &request, Some(requester))
            .await?;
        if was_held_back {
            self.notifier
                .notify(self.notification("requested", &request));
        }
        Ok(request)
    }

    /// Stores the decoded facts of a new request (durably, before its
    /// first record) and notes their hash in it.
    async fn keep_facts(&self, request: &mut Request, shown: Facts) -> Result<(), ApprovalError> {
        if shown.is_empty() {
            return Ok(());
        }
        request.facts_hash = Some(shown.hash());
        let bytes = serde_json::to_vec(&shown).unwrap_or_default();
        self.audit
            .store()
            .save_facts(request.id.clone(), bytes)
            .await
            .map_err(|e| ApprovalError::Unavailable(e.to_string()))?;
        self.facts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.id.clone(), shown);
        Ok(())
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
        retrying(request_id, || {
            self.consume_once(request_id, call_id, principal)
        })
        .await
    }

    async fn consume_once(
        &self,
        request_id: &str,
        call_id: &str,
        principal: &Principal,
    ) -> Result<(), ApprovalError> {
        let mut state = self.state.lock().await;
        self.catch_up(&mut state)?;
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
        let verdict = Verdict {
            approve,
            reason,
            shown: None,
        };
        self.review_with(id, reviewer, verdict).await
    }

    /// [`Approvals::review`], saying which facts the reviewer was shown.
    pub async fn review_with(
        &self,
        id: &str,
        reviewer: &Principal,
        verdict: Verdict<'_>,
    ) -> Result<Request, ApprovalError> {
        self.check_reviewer(reviewer)?;
        self.saw(reviewer);
        retrying(id, || self.review_once(id, reviewer, verdict.clone())).await
    }

    async fn review_once(
        &self,
        id: &str,
        reviewer: &Principal,
        verdict: Verdict<'_>,
    ) -> Result<Request, ApprovalError> {
        let now = Utc::now();
        let mut state = self.state.lock().await;
        let request = self.current(&mut state, id, now).await?;
        let (request, event) = lifecycle::review(
            &request,
            party(reviewer),
            verdict,
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
        retrying(id, || self.close_once(id, by, reason, to, from)).await
    }

    async fn close_once(
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
        let (request, event) = lifecycle::close(&request, party(by), to, from, reason, now)?;
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

    /// Records the time-driven changes due at `now` (lapse, expiry), after
    /// applying what other replicas recorded (so a lapse is recorded once).
    async fn sweep(&self, state: &mut State, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        self.catch_up(state)?;
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

    /// Periodic sweep (lapses and expiries recorded even when idle, and
    /// other replicas' changes applied).
    pub async fn tick(&self) -> Result<(), ApprovalError> {
        retrying("(sweep)", || async {
            let mut state = self.state.lock().await;
            self.sweep(&mut state, Utc::now()).await
        })
        .await
    }

    /// Applies the changes other replicas recorded since the last call:
    /// before every decision, so a grant approved or used through another
    /// replica counts here at once.
    fn catch_up(&self, state: &mut State) -> Result<(), ApprovalError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if reader.is_none() {
            *reader = Some(
                self.audit
                    .store()
                    .reader()
                    .map_err(|e| ApprovalError::Unavailable(e.to_string()))?,
            );
        }
        let known = state.requests.len();
        let from = state.applied;
        let result = state.catch_up(reader.as_ref().expect("opened above"));
        if let Err(e) = result {
            // Reopen on the next call (the store may have restarted).
            *reader = None;
            return Err(ApprovalError::Unavailable(e.to_string()));
        }
        if state.applied == from {
            return Ok(());
        }
        // Some changes came from elsewhere: refresh what synchronous
        // readers see, the facts of new requests and the names.
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = state.requests.clone();
        if state.requests.len() != known {
            let facts = reader
                .as_ref()
                .map(stored_facts)
                .transpose()
                .map_err(|e| ApprovalError::Unavailable(e.to_string()))?
                .unwrap_or_default();
            self.facts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(facts);
        }
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        for request in state.requests.values() {
            let parties = std::iter::once(&request.requester)
                .chain(request.reviews.iter().map(|r| &r.reviewer));
            for party in parties {
                names
                    .entry(party.oid.clone())
                    .or_insert_with(|| party.name.clone());
            }
        }
        Ok(())
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
        // A call's request is filed under the call: the call's records and
        // its request's changes are found together.
        record.call_id = request.call_id.clone();
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
        // Guarded by the request's version: if another replica changed the
        // request since this one last read it, nothing is recorded.
        let version = uuid::Uuid::now_v7().to_string();
        record.details = Some(json!({
            "event": event_name,
            "request_id": request.id,
            "request": request,
            "version": version,
        }));
        let guard = Guard {
            ns: VERSIONS.into(),
            key: request.id.clone(),
            expected: state
                .versions
                .get(&request.id)
                .map(|v| v.clone().into_bytes()),
            new: version.clone().into_bytes(),
        };
        // The next catch-up reads this record again (harmless: the same
        // state), since other replicas' changes to other requests may sit
        // before it in the log.
        match self.audit.append_guarded(record, guard).await {
            Ok(_) => {}
            Err(AuditError::Store(StoreError::Conflict(_))) => {
                return Err(ApprovalError::Raced(request.id.clone()));
            }
            Err(e) => return Err(ApprovalError::Unavailable(e.to_string())),
        }
        state.versions.insert(request.id.clone(), version);
        index(state, request);
        state.requests.insert(request.id.clone(), request.clone());
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request.id.clone(), request.clone());
        tracing::info!(target: "warden::approvals", event = event_name, request = %request.id, status = request.status.as_str(), "JIT request");
        if event.is_notified() && !request.awaiting_justification {
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

    /// Tells the security managers of another security event (a policy
    /// set loaded by break glass) through the same webhooks. Never blocks.
    pub fn notify_security(&self, notification: Notification) {
        self.notifier.notify(notification);
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

/// The decoded facts of every JIT request in the store.
fn stored_facts(reader: &Reader) -> Result<HashMap<String, Facts>, StoreError> {
    let mut facts = HashMap::new();
    for (id, bytes) in reader.approval_facts()? {
        match serde_json::from_slice::<Facts>(&bytes) {
            Ok(f) => drop(facts.insert(id, f)),
            Err(error) => {
                tracing::warn!(request = %id, %error, "stored facts of a JIT request unreadable")
            }
        }
    }
    Ok(facts)
}

/// Runs `attempt` again while another replica keeps changing request `id`
/// first (each attempt starts by applying the other's change).
async fn retrying<T, F, Fut>(id: &str, mut attempt: F) -> Result<T, ApprovalError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApprovalError>>,
{
    for _ in 0..RACE_RETRIES {
        match attempt().await {
            Err(ApprovalError::Raced(_)) => continue,
            other => return other,
        }
    }
    Err(ApprovalError::Raced(id.to_owned()))
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

/// The operations of a window as asked, trimmed, at least one.
fn window_operations(asked: Vec<String>) -> Result<Vec<String>, ApprovalError> {
    let operations: Vec<String> = asked
        .into_iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if operations.is_empty() {
        return Err(ApprovalError::Invalid(
            "name at least one operation, `*` pattern or action group (read, write, delete, action, privileged)".into(),
        ));
    }
    Ok(operations)
}

/// The scope of a window: an ARM id below the tenant root.
fn window_scope(scope: &str) -> Result<ArmId, ApprovalError> {
    let id = ArmId::parse(scope).map_err(|e| {
        ApprovalError::Invalid(format!(
            "scope {scope:?} is not an ARM id (/subscriptions/<id>[/resourceGroups/<name>[/providers/...]]): {}",
            e.reason
        ))
    })?;
    if id.is_root() {
        return Err(ApprovalError::Invalid(
            "a grant needs a scope below the tenant root: a subscription, resource group or resource".into(),
        ));
    }
    Ok(id)
}
