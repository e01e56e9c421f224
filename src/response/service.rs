//! [`Responses`]: carrying out what the rules want, and what security
//! managers do about it afterwards (lift, unblock, acknowledge, close).
//!
//! Every change is a `response` or `incident` record committed with its
//! `state` entry (see [`super::state`]); every one is told to the
//! webhooks. This replica's view of suspensions and blocks is kept in
//! memory, so a call or a request pays a map lookup; it is read again from
//! the store every `[response] refresh`, which is how long another replica
//! may take to enforce what this one decided.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use ipnet::IpNet;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::config::{Action, Mode, ResponseConfig, Rule};
use super::plan::{self, AuthWatch, FailingNetwork, Planned};
use super::revoke;
use super::state::{
    self, Act, BLOCKED, Block, INCIDENTS, Incident, IncidentStatus, SUSPENDED, Suspension, Taken,
    TriggeringCall,
};
use crate::approvals::notify::Notification;
use crate::audit::record::{Actor, Kind, Record};
use crate::audit::{Audit, AuditError};
use crate::azure::client::ArmClient;
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::risk::Assessment;
use crate::store::{Guard, StoreError};

/// How responses tell the security managers (the approvals' webhooks).
pub type Notify = Arc<dyn Fn(Notification) + Send + Sync>;

/// Why a security manager's action on a response was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("{0}")]
    NotFound(String),
    /// The thing is not in a state the action applies to (already lifted,
    /// closed, ...).
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the change could not be recorded: {0}")]
    Audit(#[from] AuditError),
    #[error("the store could not be read: {0}")]
    Store(#[from] StoreError),
}

/// A call whose findings the rules answer, once its intent and outcome are
/// durable.
pub struct Triggered<'a> {
    pub principal: &'a Principal,
    pub call_id: &'a str,
    pub tool: &'a str,
    /// Its intent and outcome records.
    pub seqs: Vec<u64>,
    /// `(azure_op, resource id)` of each operation.
    pub operations: Vec<(String, String)>,
    pub assessment: &'a Assessment,
    pub planned: Vec<Planned>,
    /// It ran and succeeded (so what it did can be undone).
    pub succeeded: bool,
    /// Its result, where what it created is named.
    pub result: Option<Value>,
}

/// The response stage.
pub struct Responses {
    config: ResponseConfig,
    rules: Vec<Rule>,
    audit: Arc<Audit>,
    arm: Option<Arc<ArmClient>>,
    notify: Notify,
    metrics: Metrics,
    /// Base URL of the approvals page, for links.
    public_url: Option<String>,
    suspended: RwLock<HashMap<String, Suspension>>,
    blocked: RwLock<Vec<(IpNet, i64, Block)>>,
    watch: Mutex<AuthWatch>,
    /// Counts this replica's own changes to its view, so that a refresh
    /// whose read began before one of them does not undo it.
    changes: AtomicU64,
}

impl std::fmt::Debug for Responses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responses")
            .field("config", &self.config)
            .finish()
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn actor(principal: &Principal) -> Value {
    json!({ "tid": principal.tid, "oid": principal.oid, "name": principal.display_name })
}

impl Responses {
    pub fn new(
        config: ResponseConfig,
        audit: Arc<Audit>,
        arm: Option<Arc<ArmClient>>,
        notify: Notify,
        metrics: Metrics,
        public_url: Option<String>,
    ) -> Responses {
        let rules = config.rules();
        let watch = Mutex::new(AuthWatch::new(config.block.clone()));
        Responses {
            config,
            rules,
            audit,
            arm,
            notify,
            metrics,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            suspended: RwLock::default(),
            blocked: RwLock::default(),
            watch,
            changes: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &ResponseConfig {
        &self.config
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// What the rules want for a scored call (nothing when responses are off).
    pub fn plan(&self, assessment: &Assessment) -> Vec<Planned> {
        if !self.enabled() {
            return Vec::new();
        }
        plan::for_call(&self.rules, assessment)
    }

    /// The principal's suspension, if one is in force (this replica's view).
    pub fn suspension(&self, tid: &str, oid: &str) -> Option<Suspension> {
        self.suspended
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&Suspension::key(tid, oid))
            .cloned()
    }

    /// The block `ip` falls under, if one is in force (this replica's view).
    pub fn block_of(&self, ip: IpAddr) -> Option<Block> {
        let now = now().timestamp();
        self.blocked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(net, until, _)| *until > now && net.contains(&ip))
            .map(|(_, _, block)| block.clone())
    }

    /// Reads the suspensions and blocks in force from the store.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let changes = self.changes.load(Ordering::Acquire);
        let (suspended, blocked) = self
            .audit
            .store()
            .read(|reader| {
                let at = now();
                Ok((reader.state(SUSPENDED, at)?, reader.state(BLOCKED, at)?))
            })
            .await?;
        let suspended: HashMap<String, Suspension> = suspended
            .into_iter()
            .filter_map(|(key, bytes)| {
                state::decode::<Suspension>(SUSPENDED, &key, &bytes).map(|s| (key, s))
            })
            .filter(|(_, s)| s.active())
            .collect();
        let blocked: Vec<(IpNet, i64, Block)> = blocked
            .into_iter()
            .filter_map(|(key, bytes)| state::decode::<Block>(BLOCKED, &key, &bytes))
            .filter(|b| b.lifted.is_none())
            .filter_map(|b| {
                let net = b.network.parse::<IpNet>().ok()?;
                let until = chrono::DateTime::parse_from_rfc3339(&b.until)
                    .ok()?
                    .timestamp();
                Some((net, until, b))
            })
            .collect();
        // A change this replica made while the read was under way may be
        // missing from it: the next refresh reads again.
        if self.changes.load(Ordering::Acquire) != changes {
            return Ok(());
        }
        *self
            .suspended
            .write()
            .unwrap_or_else(PoisonError::into_inner) = suspended;
        *self.blocked.write().unwrap_or_else(PoisonError::into_inner) = blocked;
        self.gauges();
        Ok(())
    }

    /// After this replica changed its view itself.
    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        self.gauges();
    }

    /// Sets the gauges from this replica's view.
    fn gauges(&self) {
        let suspended = self
            .suspended
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let blocked = self
            .blocked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        self.metrics.responses_suspended.set(suspended as i64);
        self.metrics.responses_blocked.set(blocked as i64);
    }

    /// Reads the store every `refresh` until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.refresh);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(error) = this.refresh().await {
                            tracing::error!(%error, "suspensions and blocks not read; keeping what this replica knew");
                        }
                    }
                }
            }
        })
    }

    fn link(&self, anchor: &str) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}/approvals#{anchor}"))
    }

    fn counted(&self, action: Action, mode: Mode) {
        self.metrics
            .responses
            .get_or_create(&crate::metrics::ResponseLabels {
                action: action.as_str().to_owned(),
                mode: mode.as_str().to_owned(),
            })
            .inc();
    }

    // ---- calls ---------------------------------------------------------

    /// Carries out what the rules planned for a call whose records are
    /// durable: suspensions and revocations first, then the incident that
    /// lists them. Returns what was done.
    pub async fn respond(&self, t: Triggered<'_>) -> Vec<Taken> {
        let mut taken = Vec::new();
        let incident = t.planned.iter().find(|p| p.action == Action::Incident);
        let incident_id = incident.map(|_| format!("INC-{}", uuid::Uuid::now_v7()));
        for p in t.planned.iter().filter(|p| p.action != Action::Incident) {
            let done = match p.action {
                Action::Suspend => self.suspend(&t, p, incident_id.as_deref()).await,
                Action::Revoke => self.revoke(&t, p, incident_id.as_deref()).await,
                Action::Block | Action::Incident => continue,
            };
            self.counted(p.action, p.mode);
            taken.push(done);
        }
        if let (Some(p), Some(id)) = (incident, incident_id) {
            let calls = vec![TriggeringCall {
                call_id: t.call_id.to_owned(),
                tool: t.tool.to_owned(),
                seqs: t.seqs.clone(),
                operations: t.operations.iter().map(|(op, _)| op.clone()).collect(),
            }];
            let title = format!(
                "{}: {} by {}",
                p.rule,
                t.assessment
                    .reasons
                    .first()
                    .map_or("a finding", |r| r.code.as_str()),
                t.principal.display_name
            );
            self.open_incident(
                id,
                p,
                title,
                Some(actor(t.principal)),
                t.principal.source_ip.map(|ip| ip.to_string()),
                calls,
                t.assessment
                    .reasons
                    .iter()
                    .map(|r| r.text.clone())
                    .collect(),
                taken.clone(),
            )
            .await;
            self.counted(Action::Incident, p.mode);
        }
        taken
    }

    fn response_record(&self, t: &Triggered<'_>, details: Value) -> Record {
        let mut r = Record::new(Kind::Response);
        r.call_id = Some(t.call_id.to_owned());
        r.principal = Some(Actor::from(t.principal));
        r.source_ip = t.principal.source_ip.map(|ip| ip.to_string());
        r.tool = Some(t.tool.to_owned());
        r.risk = Some(t.assessment.to_value());
        r.details = Some(details);
        r
    }

    async fn suspend(&self, t: &Triggered<'_>, p: &Planned, incident: Option<&str>) -> Taken {
        let name = &t.principal.display_name;
        let reason = t.assessment.summary();
        let details = |result: &str| {
            json!({
                "action": "suspend", "mode": p.mode.as_str(), "rule": p.rule,
                "trigger": p.trigger, "result": result,
                "target": Suspension::key(&t.principal.tid, &t.principal.oid),
                "calls": [{ "call_id": t.call_id, "seqs": t.seqs }],
                "incident_id": incident, "reason": reason,
            })
        };
        if p.mode == Mode::Notify {
            return self
                .record_only(
                    self.response_record(t, details("would")),
                    p,
                    format!("would have suspended {name}"),
                    "would",
                )
                .await;
        }
        let key = Suspension::key(&t.principal.tid, &t.principal.oid);
        let current = match self.state_entry(SUSPENDED, &key).await {
            Ok(current) => current,
            Err(error) => return failed(p, format!("suspending {name}: {error}")),
        };
        if let Some(bytes) = &current
            && state::decode::<Suspension>(SUSPENDED, &key, bytes).is_some_and(|s| s.active())
        {
            return taken(p, "already", format!("{name} was already suspended"), None);
        }
        let record = self.response_record(t, details("done"));
        let mut suspension = Suspension {
            tid: t.principal.tid.clone(),
            oid: t.principal.oid.clone(),
            name: name.clone(),
            rule: p.rule.clone(),
            reason,
            at: rfc3339(now()),
            call_id: t.call_id.to_owned(),
            seq: 0,
            incident_id: incident.map(str::to_owned),
            lifted: None,
        };
        let guard = Guard {
            ns: SUSPENDED.into(),
            key: key.clone(),
            expected: current,
            new: state::encode(&suspension),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(seq) => {
                suspension.seq = seq;
                // The entry learns its record's number (the record could
                // not name itself before it was stored).
                if let Err(error) = self
                    .audit
                    .store()
                    .put_state(SUSPENDED, &key, state::encode(&suspension), None)
                    .await
                {
                    tracing::error!(%error, principal = %key, "the suspension's record number was not stored");
                }
                self.suspended
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, suspension.clone());
                self.changed();
                tracing::warn!(target: "warden::response", tid = %t.principal.tid, oid = %t.principal.oid, principal = %name, rule = %p.rule, call_id = %t.call_id, "principal suspended");
                let detail = format!(
                    "suspended {name}: every call is refused until a security manager lifts it"
                );
                (self.notify)(Notification {
                    event: "response.suspended".into(),
                    title: format!("Suspended: {name}"),
                    text: format!(
                        "Warden suspended {name} ({}) under rule {}: {}. Every call is refused until a security manager lifts the suspension.",
                        t.principal.oid, p.rule, suspension.reason
                    ),
                    facts: vec![
                        ("Principal".into(), format!("{name} ({})", t.principal.oid)),
                        ("Rule".into(), p.rule.clone()),
                        ("Call".into(), t.call_id.to_owned()),
                    ],
                    link: self.link(incident.unwrap_or("suspensions")),
                    details: json!({ "suspension": suspension, "seq": seq }),
                });
                taken(p, "done", detail, Some(seq))
            }
            Err(AuditError::Store(StoreError::Conflict(_))) => taken(
                p,
                "already",
                format!("{name} was suspended by another replica"),
                None,
            ),
            Err(error) => failed(p, format!("suspending {name}: {error}")),
        }
    }

    async fn revoke(&self, t: &Triggered<'_>, p: &Planned, incident: Option<&str>) -> Taken {
        let resources: Vec<Value> = t
            .operations
            .iter()
            .map(|(_, resource)| Value::String(resource.clone()))
            .collect();
        let mut sources: Vec<&Value> = resources.iter().collect();
        if let Some(result) = &t.result {
            sources.push(result);
        }
        let ids = if t.succeeded {
            revoke::assignment_ids(&sources)
        } else {
            Vec::new()
        };
        let base = |result: &str, outcomes: Value| {
            json!({
                "action": "revoke", "mode": p.mode.as_str(), "rule": p.rule,
                "trigger": p.trigger, "result": result, "target": ids,
                "calls": [{ "call_id": t.call_id, "seqs": t.seqs }],
                "incident_id": incident, "outcomes": outcomes,
            })
        };
        if !t.succeeded {
            return self
                .record_only(
                    self.response_record(t, base("skipped", Value::Null)),
                    p,
                    "the grant did not run; nothing to revoke".into(),
                    "skipped",
                )
                .await;
        }
        if ids.is_empty() {
            return self
                .record_only(
                    self.response_record(t, base("failed", json!(["no role assignment id in the call's result; revoke it by hand"]))),
                    p,
                    "the role assignment the call created could not be found in its result; revoke it by hand".into(),
                    "failed",
                )
                .await;
        }
        if p.mode == Mode::Notify {
            return self
                .record_only(
                    self.response_record(t, base("would", Value::Null)),
                    p,
                    format!("would have deleted {}", ids.join(", ")),
                    "would",
                )
                .await;
        }
        let Some(arm) = &self.arm else {
            return self
                .record_only(
                    self.response_record(t, base("failed", json!(["no [azure] credential to revoke with"]))),
                    p,
                    format!("{} could not be revoked: Warden has no [azure] credential; revoke it by hand", ids.join(", ")),
                    "failed",
                )
                .await;
        };
        let mut outcomes = Vec::new();
        let mut all = true;
        for id in &ids {
            match revoke::delete_assignment(arm, id).await {
                Ok(done) => outcomes.push(done),
                Err(error) => {
                    all = false;
                    outcomes.push(format!("{id} NOT revoked: {error}"));
                }
            }
        }
        let result = if all { "done" } else { "failed" };
        let detail = outcomes.join("; ");
        let done = self
            .record_only(
                self.response_record(t, base(result, json!(outcomes))),
                p,
                detail.clone(),
                result,
            )
            .await;
        tracing::warn!(target: "warden::response", tid = %t.principal.tid, oid = %t.principal.oid, call_id = %t.call_id, result, %detail, "privilege grant revoked");
        (self.notify)(Notification {
            event: if all {
                "response.revoked"
            } else {
                "response.revoke_failed"
            }
            .into(),
            title: format!(
                "{}: {}",
                if all { "Revoked" } else { "Revocation FAILED" },
                t.principal.display_name
            ),
            text: format!(
                "{} ran {} without an approval (rule {}). {detail}.",
                t.principal.display_name, t.tool, p.rule
            ),
            facts: vec![
                (
                    "Principal".into(),
                    format!("{} ({})", t.principal.display_name, t.principal.oid),
                ),
                ("Call".into(), t.call_id.to_owned()),
            ],
            link: self.link(incident.unwrap_or("incidents")),
            details: json!({ "call_id": t.call_id, "assignments": ids, "outcomes": outcomes, "seq": done.seq }),
        });
        done
    }

    /// Appends `record` (a response that changes no state) and says what
    /// it did; a notify-mode response is told to the webhooks too.
    async fn record_only(
        &self,
        record: Record,
        p: &Planned,
        detail: String,
        result: &str,
    ) -> Taken {
        match self.audit.append(record).await {
            Ok(seq) => {
                if p.mode == Mode::Notify {
                    (self.notify)(Notification {
                        event: format!("response.would_{}", p.action.as_str()),
                        title: format!(
                            "Would have answered rule {} ({})",
                            p.rule,
                            p.action.as_str()
                        ),
                        text: format!("Rule {} is in notify mode: {detail}.", p.rule),
                        facts: vec![("Rule".into(), p.rule.clone())],
                        link: None,
                        details: json!({ "seq": seq, "rule": p.rule, "action": p.action }),
                    });
                }
                taken(p, result, detail, Some(seq))
            }
            Err(error) => failed(p, format!("{detail}; its record was not written: {error}")),
        }
    }

    async fn state_entry(
        &self,
        ns: &'static str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.audit
            .store()
            .read(move |reader| reader.state_entry(ns, &key, now()))
            .await
    }

    // ---- incidents -----------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    async fn open_incident(
        &self,
        id: String,
        p: &Planned,
        title: String,
        principal: Option<Value>,
        source_ip: Option<String>,
        calls: Vec<TriggeringCall>,
        findings: Vec<String>,
        actions: Vec<Taken>,
    ) -> Option<Incident> {
        let mut incident = Incident {
            id: id.clone(),
            status: IncidentStatus::Open,
            opened: rfc3339(now()),
            rule: p.rule.clone(),
            title,
            principal,
            source_ip,
            calls,
            findings,
            actions,
            seq: 0,
            acknowledged: None,
            closed: None,
        };
        if p.mode == Mode::Notify {
            let mut record = Record::new(Kind::Response);
            record.details = Some(json!({
                "action": "incident", "mode": "notify", "rule": p.rule, "trigger": p.trigger,
                "result": "would", "incident": incident,
            }));
            let _ = self
                .record_only(
                    record,
                    p,
                    format!("would have opened incident {}", incident.title),
                    "would",
                )
                .await;
            return None;
        }
        let mut record = Record::new(Kind::Incident);
        record.details = Some(json!({
            "event": "opened", "incident_id": id, "status": "open", "rule": p.rule,
            "title": incident.title, "principal": incident.principal,
            "source_ip": incident.source_ip, "calls": incident.calls,
            "findings": incident.findings, "actions": incident.actions,
        }));
        let guard = Guard {
            ns: INCIDENTS.into(),
            key: id.clone(),
            expected: None,
            new: state::encode(&incident),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(seq) => {
                incident.seq = seq;
                // The entry learns its record's number (the record could
                // not name itself before it was stored).
                let _ = self
                    .audit
                    .store()
                    .put_state(INCIDENTS, &id, state::encode(&incident), None)
                    .await;
                self.metrics.incidents_opened.inc();
                self.tell_incident(&incident, "opened", None);
                Some(incident)
            }
            Err(error) => {
                tracing::error!(%error, incident = %id, "incident not recorded");
                None
            }
        }
    }

    fn tell_incident(&self, incident: &Incident, event: &str, act: Option<&Act>) {
        let mut facts = vec![
            ("Incident".to_owned(), incident.id.clone()),
            ("Rule".to_owned(), incident.rule.clone()),
            ("Status".to_owned(), incident.status.as_str().to_owned()),
        ];
        if let Some(p) = &incident.principal {
            facts.push((
                "Principal".into(),
                format!(
                    "{} ({})",
                    p["name"].as_str().unwrap_or(""),
                    p["oid"].as_str().unwrap_or("")
                ),
            ));
        }
        for a in &incident.actions {
            facts.push((format!("Action: {}", a.action), a.detail.clone()));
        }
        let text = match act {
            Some(act) => format!(
                "{} {event} incident {}: {}",
                act.name, incident.id, act.note
            ),
            None => format!(
                "{}. Findings: {}. Calls: {}.",
                incident.title,
                incident.findings.join("; "),
                incident
                    .calls
                    .iter()
                    .map(|c| format!("{} (records {:?})", c.call_id, c.seqs))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        (self.notify)(Notification {
            event: format!("incident.{event}"),
            title: format!("Incident {event}: {}", incident.title),
            text,
            facts,
            link: self.link(&incident.id),
            details: json!({ "incident": incident }),
        });
    }

    /// One incident by id (from the store).
    pub async fn incident(&self, id: &str) -> Result<Incident, ResponseError> {
        let bytes = self
            .state_entry(INCIDENTS, id)
            .await?
            .ok_or_else(|| ResponseError::NotFound(format!("no incident {id}")))?;
        state::decode(INCIDENTS, id, &bytes)
            .ok_or_else(|| ResponseError::State(format!("incident {id} cannot be read")))
    }

    /// Incidents, newest first; only those in `status` if given.
    pub async fn incidents(
        &self,
        status: Option<IncidentStatus>,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows = self
            .audit
            .store()
            .read(|reader| reader.state(INCIDENTS, now()))
            .await?;
        let mut all: Vec<Incident> = rows
            .into_iter()
            .filter_map(|(key, bytes)| state::decode::<Incident>(INCIDENTS, &key, &bytes))
            .filter(|i| status.is_none_or(|s| i.status == s))
            .collect();
        all.sort_by(|a, b| b.opened.cmp(&a.opened).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    /// Moves an incident to `acknowledged` or `closed` with a note.
    pub async fn update_incident(
        &self,
        id: &str,
        to: IncidentStatus,
        act: Act,
    ) -> Result<Incident, ResponseError> {
        if act.note.trim().is_empty() {
            return Err(ResponseError::Invalid("a note is required".into()));
        }
        let bytes = self
            .state_entry(INCIDENTS, id)
            .await?
            .ok_or_else(|| ResponseError::NotFound(format!("no incident {id}")))?;
        let mut incident: Incident = state::decode(INCIDENTS, id, &bytes)
            .ok_or_else(|| ResponseError::State(format!("incident {id} cannot be read")))?;
        let event = match (incident.status, to) {
            (IncidentStatus::Closed, _) => {
                return Err(ResponseError::State(format!(
                    "incident {id} is already closed"
                )));
            }
            (IncidentStatus::Acknowledged, IncidentStatus::Acknowledged) => {
                return Err(ResponseError::State(format!(
                    "incident {id} is already acknowledged"
                )));
            }
            (_, IncidentStatus::Acknowledged) => {
                incident.acknowledged = Some(act.clone());
                "acknowledged"
            }
            (_, IncidentStatus::Closed) => {
                incident.closed = Some(act.clone());
                "closed"
            }
            (_, IncidentStatus::Open) => {
                return Err(ResponseError::Invalid(
                    "an incident cannot be reopened".into(),
                ));
            }
        };
        incident.status = to;
        let mut record = Record::new(Kind::Incident);
        record.details = Some(json!({
            "event": event, "incident_id": id, "status": to.as_str(), "rule": incident.rule,
            "by": act.by, "name": act.name, "note": act.note,
        }));
        let guard = Guard {
            ns: INCIDENTS.into(),
            key: id.to_owned(),
            expected: Some(bytes),
            new: state::encode(&incident),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(_) => {
                self.tell_incident(&incident, event, Some(&act));
                Ok(incident)
            }
            Err(AuditError::Store(StoreError::Conflict(_))) => Err(ResponseError::State(format!(
                "incident {id} was changed by someone else meanwhile; reload and try again"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    // ---- suspensions ---------------------------------------------------

    /// Every suspension in force (from the store).
    pub async fn suspensions(&self) -> Result<Vec<Suspension>, StoreError> {
        let rows = self
            .audit
            .store()
            .read(|reader| reader.state(SUSPENDED, now()))
            .await?;
        let mut all: Vec<Suspension> = rows
            .into_iter()
            .filter_map(|(key, bytes)| state::decode::<Suspension>(SUSPENDED, &key, &bytes))
            .filter(Suspension::active)
            .collect();
        all.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(all)
    }

    /// Lifts the suspension of `tid/oid` (a security manager, with a reason).
    pub async fn lift(&self, key: &str, act: Act) -> Result<Suspension, ResponseError> {
        if act.note.trim().is_empty() {
            return Err(ResponseError::Invalid("a reason is required".into()));
        }
        let bytes = self
            .state_entry(SUSPENDED, key)
            .await?
            .ok_or_else(|| ResponseError::NotFound(format!("{key} is not suspended")))?;
        let mut suspension: Suspension =
            state::decode(SUSPENDED, key, &bytes).ok_or_else(|| {
                ResponseError::State(format!("the suspension of {key} cannot be read"))
            })?;
        if !suspension.active() {
            return Err(ResponseError::State(format!("{key} is not suspended")));
        }
        suspension.lifted = Some(act.clone());
        let mut record = Record::new(Kind::Response);
        record.principal = Some(Actor {
            tid: suspension.tid.clone(),
            oid: suspension.oid.clone(),
            name: suspension.name.clone(),
            kind: "user".into(),
            client_app: None,
            auth_path: None,
            guest: false,
            roles: Vec::new(),
            groups: Vec::new(),
        });
        record.details = Some(json!({
            "action": "lift", "mode": "enforce", "rule": suspension.rule, "result": "done",
            "target": key, "by": act.by, "name": act.name, "reason": act.note,
            "incident_id": suspension.incident_id, "suspended_by_seq": suspension.seq,
        }));
        let guard = Guard {
            ns: SUSPENDED.into(),
            key: key.to_owned(),
            expected: Some(bytes),
            new: state::encode(&suspension),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(seq) => {
                self.suspended
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(key);
                self.changed();
                tracing::warn!(target: "warden::response", principal = %key, by = %act.by, "suspension lifted");
                (self.notify)(Notification {
                    event: "response.lifted".into(),
                    title: format!("Suspension lifted: {}", suspension.name),
                    text: format!(
                        "{} lifted the suspension of {}: {}",
                        act.name, suspension.name, act.note
                    ),
                    facts: vec![("Principal".into(), key.to_owned())],
                    link: None,
                    details: json!({ "suspension": suspension, "seq": seq }),
                });
                Ok(suspension)
            }
            Err(AuditError::Store(StoreError::Conflict(_))) => Err(ResponseError::State(format!(
                "the suspension of {key} was changed by someone else meanwhile"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    // ---- addresses -----------------------------------------------------

    /// Notes an authentication attempt at the front (`ok`: its token was
    /// accepted). An address whose attempts tip the `auth_failures` rule
    /// is answered in the background.
    pub fn auth_attempt(self: &Arc<Self>, ip: IpAddr, ok: bool) {
        if !self.enabled() {
            return;
        }
        let tipped = self
            .watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .note(ip, ok, now().timestamp());
        if let Some(failing) = tipped {
            let planned = plan::for_auth_failures(&self.rules);
            if planned.is_empty() {
                return;
            }
            let this = self.clone();
            tokio::spawn(async move { this.answer_failing(failing, planned).await });
        }
    }

    async fn answer_failing(&self, failing: FailingNetwork, planned: Vec<Planned>) {
        let network = failing.network.to_string();
        let mut taken_all = Vec::new();
        for p in planned.iter().filter(|p| p.action == Action::Block) {
            taken_all.push(self.block(&failing, p).await);
            self.counted(p.action, p.mode);
        }
        if let Some(p) = planned.iter().find(|p| p.action == Action::Incident) {
            self.open_incident(
                format!("INC-{}", uuid::Uuid::now_v7()),
                p,
                format!("{}: authentication failing from {network}", p.rule),
                None,
                Some(network.clone()),
                Vec::new(),
                vec![format!(
                    "{} of {} authentication attempts from {network} failed within {}",
                    failing.failures,
                    failing.attempts,
                    humantime::format_duration(self.config.block.window)
                )],
                taken_all,
            )
            .await;
            self.counted(Action::Incident, p.mode);
        }
    }

    async fn block(&self, failing: &FailingNetwork, p: &Planned) -> Taken {
        let network = failing.network.to_string();
        let at = now();
        let until = at
            + chrono::Duration::from_std(self.config.block.cool_down)
                .unwrap_or_else(|_| chrono::Duration::minutes(15));
        let mut block = Block {
            network: network.clone(),
            rule: p.rule.clone(),
            attempts: failing.attempts,
            failures: failing.failures,
            at: rfc3339(at),
            until: rfc3339(until),
            seq: 0,
            lifted: None,
        };
        let result = if p.mode == Mode::Notify {
            "would"
        } else {
            "done"
        };
        let mut record = Record::new(Kind::Response);
        record.source_ip = Some(network.clone());
        record.details = Some(json!({
            "action": "block", "mode": p.mode.as_str(), "rule": p.rule, "trigger": p.trigger,
            "result": result, "target": network, "attempts": failing.attempts,
            "failures": failing.failures, "until": block.until,
        }));
        let sentence = format!(
            "{} of {} authentication attempts from {network} failed",
            failing.failures, failing.attempts
        );
        if p.mode == Mode::Notify {
            return self
                .record_only(
                    record,
                    p,
                    format!("would have blocked {network}: {sentence}"),
                    "would",
                )
                .await;
        }
        let seq = match self.audit.append(record).await {
            Ok(seq) => seq,
            Err(error) => return failed(p, format!("blocking {network}: {error}")),
        };
        block.seq = seq;
        if let Err(error) = self
            .audit
            .store()
            .put_state(BLOCKED, &network, state::encode(&block), Some(until))
            .await
        {
            tracing::error!(%error, %network, "the block could not be shared with the other replicas");
        }
        self.blocked
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push((failing.network, until.timestamp(), block.clone()));
        self.changed();
        tracing::warn!(target: "warden::response", %network, attempts = failing.attempts, failures = failing.failures, until = %block.until, "network blocked");
        (self.notify)(Notification {
            event: "response.blocked".into(),
            title: format!("Blocked: {network}"),
            text: format!(
                "{sentence}; every request from it is refused until {}.",
                block.until
            ),
            facts: vec![
                ("Network".into(), network.clone()),
                ("Rule".into(), p.rule.clone()),
                ("Until".into(), block.until.clone()),
            ],
            link: self.link("blocks"),
            details: json!({ "block": block }),
        });
        taken(
            p,
            "done",
            format!("blocked {network} until {}: {sentence}", block.until),
            Some(seq),
        )
    }

    /// Blocks in force (from the store).
    pub async fn blocks(&self) -> Result<Vec<Block>, StoreError> {
        let rows = self
            .audit
            .store()
            .read(|reader| reader.state(BLOCKED, now()))
            .await?;
        let mut all: Vec<Block> = rows
            .into_iter()
            .filter_map(|(key, bytes)| state::decode::<Block>(BLOCKED, &key, &bytes))
            .filter(|b| b.lifted.is_none())
            .collect();
        all.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(all)
    }

    /// Ends a block before its cool-down (a security manager, with a reason).
    pub async fn unblock(&self, network: &str, act: Act) -> Result<Block, ResponseError> {
        if act.note.trim().is_empty() {
            return Err(ResponseError::Invalid("a reason is required".into()));
        }
        let net: IpNet = network.parse().map_err(|_| {
            ResponseError::Invalid(format!("{network:?} is not a network such as 192.0.2.7/32"))
        })?;
        let key = net.to_string();
        let bytes = self
            .state_entry(BLOCKED, &key)
            .await?
            .ok_or_else(|| ResponseError::NotFound(format!("{key} is not blocked")))?;
        let mut block: Block = state::decode(BLOCKED, &key, &bytes)
            .ok_or_else(|| ResponseError::State(format!("the block of {key} cannot be read")))?;
        if block.lifted.is_some() {
            return Err(ResponseError::State(format!("{key} is not blocked")));
        }
        block.lifted = Some(act.clone());
        let mut record = Record::new(Kind::Response);
        record.source_ip = Some(key.clone());
        record.details = Some(json!({
            "action": "unblock", "mode": "enforce", "rule": block.rule, "result": "done",
            "target": key, "by": act.by, "name": act.name, "reason": act.note,
            "blocked_by_seq": block.seq,
        }));
        let guard = Guard {
            ns: BLOCKED.into(),
            key: key.clone(),
            expected: Some(bytes),
            new: state::encode(&block),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(_) => {
                self.blocked
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|(n, _, _)| *n != net);
                self.changed();
                (self.notify)(Notification {
                    event: "response.unblocked".into(),
                    title: format!("Unblocked: {key}"),
                    text: format!("{} ended the block of {key}: {}", act.name, act.note),
                    facts: vec![("Network".into(), key.clone())],
                    link: None,
                    details: json!({ "block": block }),
                });
                Ok(block)
            }
            Err(AuditError::Store(StoreError::Conflict(_))) => Err(ResponseError::State(format!(
                "the block of {key} was changed by someone else meanwhile"
            ))),
            Err(error) => Err(error.into()),
        }
    }
}

fn taken(p: &Planned, result: &str, detail: String, seq: Option<u64>) -> Taken {
    Taken {
        action: p.action.as_str().to_owned(),
        mode: p.mode.as_str().to_owned(),
        result: result.to_owned(),
        detail,
        seq,
    }
}

fn failed(p: &Planned, detail: String) -> Taken {
    tracing::error!(target: "warden::response", action = p.action.as_str(), rule = %p.rule, %detail, "response failed");
    taken(p, "failed", detail, None)
}
