//! The campaigns service: starts campaigns from the audit log, records
//! decisions, applies deadlines and closes campaigns with their proposal
//! (docs/CAMPAIGNS.md).
//!
//! State is event-sourced from the log, like JIT approvals: every change
//! is an `access_review` record (`details.event`, `details.campaign_id`,
//! `details.version`) appended with [`Audit::append_guarded`] under the
//! campaign's version in the store's `state` table (namespace
//! `review.campaign.version`), so that of several replicas sharing a
//! store exactly one records each change; the others catch up from the
//! records and try again on what they find. A deadline is applied by the
//! background check of every replica ([`Campaigns::spawn_checker`]) and
//! by any read after it: whichever comes first records it, once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::campaign::{self, Ask, Campaign, CampaignError, Closed, Event, Person, Scope, Summary};
use super::proposal::{self, Proposal};
use super::{Options, Period, Review, Usage};
use crate::audit::record::{Actor, Kind, Record};
use crate::audit::{Audit, AuditError};
use crate::catalog::Catalog;
use crate::identity::Principal;
use crate::policy::Engine;
use crate::store::{Guard, Reader, StoreError};

/// `[review]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// How often `warden serve` applies the campaigns' deadlines.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// App roles whose holders (with MFA) start and close campaigns.
    pub manager_roles: Vec<String>,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            check_interval: Duration::from_secs(60),
            manager_roles: vec!["SecurityManager".into()],
        }
    }
}

impl ReviewConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.check_interval < Duration::from_millis(100) {
            return Err("review.check_interval: at least 100ms".into());
        }
        if self.manager_roles.iter().all(|r| r.trim().is_empty()) {
            return Err("review.manager_roles: name at least one app role".into());
        }
        Ok(())
    }
}

/// What the service is built from.
pub struct Parts {
    pub config: ReviewConfig,
    /// `[approvals] approver_roles`: who decides items.
    pub reviewer_roles: Vec<String>,
    /// `[approvals] auditor_roles`: who reads campaigns besides.
    pub auditor_roles: Vec<String>,
    /// `[identity] tenants`: principals of others are foreign.
    pub home_tenants: Vec<String>,
    pub audit: Arc<Audit>,
    /// The running policy set.
    pub policy: Arc<Engine>,
    pub catalog: Arc<Catalog>,
}

/// What a security manager asks to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAsk {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub principals: Vec<String>,
    /// RFC 3339.
    pub deadline: DateTime<Utc>,
    #[serde(default)]
    pub auto_remove_undecided: bool,
    /// Days of the log the evidence covers (default 90).
    #[serde(default)]
    pub days: Option<u32>,
}

/// Days of evidence when the ask names none.
pub const DEFAULT_DAYS: u32 = 90;

/// The furthest deadline, from the start.
const MAX_DEADLINE_DAYS: i64 = 366;

/// The `state` namespace of the campaign versions every change is guarded
/// by.
const VERSIONS: &str = "review.campaign.version";

/// How often a change is tried again after another replica changed the
/// same campaign first.
const RACE_RETRIES: usize = 5;

#[derive(Default)]
struct State {
    campaigns: BTreeMap<String, Campaign>,
    /// Each campaign's version: the token of its latest change.
    versions: HashMap<String, String>,
    /// The versions applied (a record read again is not applied twice).
    applied_versions: HashSet<String>,
    /// The sequence number after the last `access_review` record read.
    applied: i64,
}

impl State {
    /// Applies the `access_review` records of `reader` from `self.applied`
    /// on.
    fn catch_up(&mut self, reader: &Reader) -> Result<(), StoreError> {
        let mut applied = self.applied;
        reader.records_of_kind_since(Kind::AccessReview.as_str(), self.applied, |seq, bytes| {
            applied = seq + 1;
            let Ok(record) = serde_json::from_slice::<Record>(bytes) else {
                return Ok(());
            };
            let Some(details) = record.details.as_ref() else {
                return Ok(());
            };
            let (Some(id), Some(version)) = (
                details.get("campaign_id").and_then(Value::as_str),
                details.get("version").and_then(Value::as_str),
            ) else {
                return Ok(());
            };
            if self.applied_versions.contains(version) {
                return Ok(());
            }
            let Some(event) = Event::parse(details) else {
                tracing::warn!(target: "warden::review", campaign = id, "an access_review record this build does not read was skipped");
                return Ok(());
            };
            if let Some(next) = event.apply(self.campaigns.get(id)) {
                self.campaigns.insert(id.to_owned(), next);
            }
            self.versions.insert(id.to_owned(), version.to_owned());
            self.applied_versions.insert(version.to_owned());
            Ok(())
        })?;
        self.applied = applied;
        Ok(())
    }
}

/// The campaigns service. Share it with `Arc`.
pub struct Campaigns {
    config: ReviewConfig,
    reviewer_roles: Vec<String>,
    auditor_roles: Vec<String>,
    home_tenants: Vec<String>,
    audit: Arc<Audit>,
    policy: Arc<Engine>,
    catalog: Arc<Catalog>,
    /// Reads what other replicas recorded (reopened after an error).
    reader: Mutex<Option<Reader>>,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for Campaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaigns").finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> CampaignError {
    CampaignError::Unavailable(e.to_string())
}

impl Campaigns {
    /// Rebuilds the campaigns from the `access_review` records of the
    /// audit log's store.
    pub fn open(parts: Parts) -> Result<Campaigns, String> {
        parts.config.validate()?;
        let reader = parts.audit.store().reader().map_err(|e| e.to_string())?;
        let mut state = State::default();
        state.catch_up(&reader).map_err(|e| e.to_string())?;
        Ok(Campaigns {
            config: parts.config,
            reviewer_roles: parts.reviewer_roles,
            auditor_roles: parts.auditor_roles,
            home_tenants: parts.home_tenants,
            audit: parts.audit,
            policy: parts.policy,
            catalog: parts.catalog,
            reader: Mutex::new(Some(reader)),
            state: tokio::sync::Mutex::new(state),
        })
    }

    pub fn config(&self) -> &ReviewConfig {
        &self.config
    }

    /// Whether `p` holds one of `roles`: the token's roles and those
    /// `[policy.roles]` confers on its groups.
    fn holds(&self, p: &Principal, roles: &[String]) -> bool {
        let held = self.policy.entitlements(p).roles;
        roles.iter().any(|r| held.contains(r))
    }

    /// Whether `p` may start and close campaigns: a manager role, and MFA.
    pub fn check_manager(&self, p: &Principal) -> Result<(), CampaignError> {
        if !self.holds(p, &self.config.manager_roles) {
            return Err(CampaignError::Forbidden(format!(
                "starting and closing access reviews needs the app role {}",
                self.config.manager_roles.join(" or ")
            )));
        }
        if !p.mfa {
            return Err(CampaignError::Forbidden(
                "starting and closing access reviews needs a multi-factor sign-in".into(),
            ));
        }
        Ok(())
    }

    /// Whether `p` may decide items: a reviewer role, and MFA.
    pub fn check_reviewer(&self, p: &Principal) -> Result<(), CampaignError> {
        if !self.holds(p, &self.reviewer_roles) {
            return Err(CampaignError::Forbidden(format!(
                "deciding access reviews needs the app role {}",
                self.reviewer_roles.join(" or ")
            )));
        }
        if !p.mfa {
            return Err(CampaignError::Forbidden(
                "deciding access reviews needs a multi-factor sign-in".into(),
            ));
        }
        Ok(())
    }

    /// Whether `p` may read campaigns: managers, reviewers and auditors.
    pub fn may_read(&self, p: &Principal) -> bool {
        self.holds(p, &self.config.manager_roles)
            || self.holds(p, &self.reviewer_roles)
            || self.holds(p, &self.auditor_roles)
    }

    fn check_reader(&self, p: &Principal) -> Result<(), CampaignError> {
        if self.may_read(p) {
            Ok(())
        } else {
            Err(CampaignError::Forbidden(
                "access reviews are for security managers, reviewers and auditors".into(),
            ))
        }
    }

    /// Starts a campaign over `ask`'s scope: its items are computed from
    /// the audit log's last `days` days against the running policy set.
    pub async fn start(&self, by: &Principal, ask: StartAsk) -> Result<Campaign, CampaignError> {
        self.check_manager(by)?;
        let now = Utc::now();
        let scope = Scope {
            roles: ask.roles,
            groups: ask.groups,
            principals: ask.principals,
        }
        .cleaned()?;
        let title = ask.title.trim().to_owned();
        if title.len() > 200 {
            return Err(CampaignError::Invalid(
                "the title is too long (at most 200 bytes)".into(),
            ));
        }
        if ask.deadline <= now {
            return Err(CampaignError::Invalid(
                "the deadline must be in the future".into(),
            ));
        }
        if ask.deadline > now + chrono::Duration::days(MAX_DEADLINE_DAYS) {
            return Err(CampaignError::Invalid(format!(
                "the deadline must be within {MAX_DEADLINE_DAYS} days"
            )));
        }
        let days = ask.days.unwrap_or(DEFAULT_DAYS);
        if !(1..=3650).contains(&days) {
            return Err(CampaignError::Invalid("days: between 1 and 3650".into()));
        }
        let period = Period::days_before(now, days);
        let evidence = self.evidence(period, scope.clone()).await?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let campaign = Campaign {
            id: id.clone(),
            title,
            scope,
            deadline: ask.deadline,
            auto_remove_undecided: ask.auto_remove_undecided,
            created: now,
            created_by: Person::of(by),
            reviewer_roles: self.reviewer_roles.clone(),
            days,
            period,
            policy_set: evidence.policy_set,
            items: evidence.items,
            not_found: evidence.not_found,
            closed: None,
        };
        let mut state = self.state.lock().await;
        self.catch_up(&mut state)?;
        self.record(
            &mut state,
            &id,
            &Event::Started(Box::new(campaign)),
            Some(by),
        )
        .await
    }

    /// The items of `scope` over `period`, read from the store and judged
    /// against the running set (off the async runtime: it reads the whole
    /// log).
    async fn evidence(&self, period: Period, scope: Scope) -> Result<Evidence, CampaignError> {
        let store = self.audit.store().clone();
        let policy = self.policy.clone();
        let catalog = self.catalog.clone();
        let home_tenants = self.home_tenants.clone();
        tokio::task::spawn_blocking(move || {
            let mut usage = Usage::new(period);
            let reader = store.reader().map_err(unavailable)?;
            reader
                .for_each_record(0, |row| {
                    usage.add(&row.bytes);
                    Ok(())
                })
                .map_err(unavailable)?;
            let config = policy.config();
            let permits = crate::policy::narrow::permits(&config.dir)
                .map_err(|e| unavailable(format!("reading the policy set: {e}")))?;
            let ops = catalog.operation_classes();
            let options = Options {
                period,
                home_tenants,
            };
            let review = Review::build(
                usage.clone(),
                &policy,
                &permits,
                &ops,
                &options,
                store.location().to_string(),
            );
            let (items, not_found) =
                campaign::items(&review, &usage, &permits, &config.roles, &scope);
            Ok(Evidence {
                policy_set: policy.hash(),
                items,
                not_found,
            })
        })
        .await
        .map_err(unavailable)?
    }

    /// Every campaign, newest first, with the deadlines due applied.
    pub async fn list(&self, who: &Principal) -> Result<Vec<Summary>, CampaignError> {
        self.check_reader(who)?;
        let now = Utc::now();
        let state = self.settled(now).await?;
        let mut out: Vec<Summary> = state
            .campaigns
            .values()
            .map(|c| Summary::of(c, now))
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Campaign `id`, with its deadline applied if it passed.
    pub async fn get(&self, who: &Principal, id: &str) -> Result<Campaign, CampaignError> {
        self.check_reader(who)?;
        let state = self.settled(Utc::now()).await?;
        state
            .campaigns
            .get(id)
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    /// The proposal of closed campaign `id`.
    pub async fn proposal(&self, who: &Principal, id: &str) -> Result<Proposal, CampaignError> {
        let campaign = self.get(who, id).await?;
        match campaign.closed {
            Some(closed) => Ok(closed.proposal),
            None => Err(CampaignError::Conflict(format!(
                "campaign {id} is not closed yet: its proposal is made when it closes"
            ))),
        }
    }

    /// A reviewer decides an item (see [`campaign::decide`] for the rules).
    pub async fn decide(
        &self,
        who: &Principal,
        id: &str,
        ask: Ask<'_>,
    ) -> Result<Campaign, CampaignError> {
        self.check_reviewer(who)?;
        retrying(id, || async {
            let now = Utc::now();
            let mut state = self.state.lock().await;
            self.settle(&mut state, now).await?;
            let campaign = state.campaigns.get(id).ok_or_else(|| not_found(id))?;
            let event = campaign::decide(campaign, &Person::of(who), &ask, now)?;
            self.record(&mut state, id, &event, Some(who)).await
        })
        .await
    }

    /// A security manager closes a campaign whose items are all decided
    /// (or whose deadline passed): the proposal is made and recorded.
    pub async fn close(&self, who: &Principal, id: &str) -> Result<Campaign, CampaignError> {
        self.check_manager(who)?;
        retrying(id, || async {
            let now = Utc::now();
            let mut state = self.state.lock().await;
            self.settle(&mut state, now).await?;
            let campaign = state.campaigns.get(id).ok_or_else(|| not_found(id))?;
            let why = campaign::closable(campaign, now)?;
            let closed = self.closing(campaign, why, Some(who), now).await?;
            self.record(&mut state, id, &Event::Closed(Box::new(closed)), Some(who))
                .await
        })
        .await
    }

    /// Applies the deadlines due (and what other replicas recorded).
    pub async fn tick(&self) -> Result<(), CampaignError> {
        retrying("(deadlines)", || async {
            let mut state = self.state.lock().await;
            self.settle(&mut state, Utc::now()).await
        })
        .await
    }

    /// Applies the deadlines every `[review] check_interval` until `stop`.
    pub fn spawn_checker(
        self: &Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let campaigns = self.clone();
        let every = self.config.check_interval;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {
                        if let Err(error) = campaigns.tick().await {
                            tracing::warn!(target: "warden::review", %error, "access review deadlines not applied yet");
                        }
                    }
                }
            }
        })
    }

    /// The state with the deadlines due at `now` applied.
    async fn settled(
        &self,
        now: DateTime<Utc>,
    ) -> Result<tokio::sync::MutexGuard<'_, State>, CampaignError> {
        let mut last = None;
        for _ in 0..RACE_RETRIES {
            let mut state = self.state.lock().await;
            match self.settle(&mut state, now).await {
                Ok(()) => return Ok(state),
                Err(CampaignError::Raced(id)) => last = Some(id),
                Err(e) => return Err(e),
            }
        }
        Err(CampaignError::Raced(last.unwrap_or_default()))
    }

    /// Catches up, then records what the deadlines due at `now` do: the
    /// undecided items decided, then the campaign closed with its
    /// proposal.
    async fn settle(&self, state: &mut State, now: DateTime<Utc>) -> Result<(), CampaignError> {
        self.catch_up(state)?;
        let due: Vec<String> = state
            .campaigns
            .values()
            .filter(|c| c.is_open() && now >= c.deadline)
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            let campaign = state
                .campaigns
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found(&id))?;
            for event in campaign::due(&campaign, now) {
                self.record(state, &id, &event, None).await?;
            }
            let campaign = state
                .campaigns
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found(&id))?;
            let why = campaign::closable(&campaign, now)?;
            let closed = self.closing(&campaign, why, None, now).await?;
            self.record(state, &id, &Event::Closed(Box::new(closed)), None)
                .await?;
        }
        Ok(())
    }

    /// How `campaign` closes: its counts and its proposal against the
    /// running set.
    async fn closing(
        &self,
        campaign: &Campaign,
        why: String,
        by: Option<&Principal>,
        now: DateTime<Utc>,
    ) -> Result<Closed, CampaignError> {
        let policy = self.policy.clone();
        let ops = self.catalog.operation_classes();
        let closing = campaign.clone();
        let proposal = tokio::task::spawn_blocking(move || {
            proposal::build(&closing, &policy, policy.config(), &ops, now)
        })
        .await
        .map_err(unavailable)?;
        if let Some(error) = &proposal.error {
            tracing::warn!(target: "warden::review", campaign = %campaign.id, %error, "the campaign's proposal is not a valid policy set");
        }
        Ok(Closed {
            at: now,
            by: by.map(Person::of),
            why,
            counts: campaign.counts(),
            proposal,
        })
    }

    fn catch_up(&self, state: &mut State) -> Result<(), CampaignError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if reader.is_none() {
            *reader = Some(self.audit.store().reader().map_err(unavailable)?);
        }
        let result = state.catch_up(reader.as_ref().expect("opened above"));
        if let Err(e) = result {
            // Reopened on the next call (the store may have restarted).
            *reader = None;
            return Err(unavailable(e));
        }
        Ok(())
    }

    /// Writes the change durably, guarded by the campaign's version, then
    /// applies it; the campaign after it.
    async fn record(
        &self,
        state: &mut State,
        id: &str,
        event: &Event,
        actor: Option<&Principal>,
    ) -> Result<Campaign, CampaignError> {
        let next = event
            .apply(state.campaigns.get(id))
            .ok_or_else(|| not_found(id))?;
        let version = uuid::Uuid::now_v7().to_string();
        let mut details = event.details();
        if let Some(map) = details.as_object_mut() {
            map.insert("campaign_id".into(), id.into());
            map.insert("version".into(), version.clone().into());
        }
        let mut record = Record::new(Kind::AccessReview);
        record.principal = actor.map(Actor::from);
        record.details = Some(details);
        let guard = Guard {
            ns: VERSIONS.into(),
            key: id.to_owned(),
            expected: state.versions.get(id).map(|v| v.clone().into_bytes()),
            new: version.clone().into_bytes(),
        };
        match self.audit.append_guarded(record, guard).await {
            Ok(_) => {}
            Err(AuditError::Store(StoreError::Conflict(_))) => {
                return Err(CampaignError::Raced(id.to_owned()));
            }
            Err(e) => return Err(unavailable(e)),
        }
        state.versions.insert(id.to_owned(), version.clone());
        state.applied_versions.insert(version);
        state.campaigns.insert(id.to_owned(), next.clone());
        tracing::info!(target: "warden::review", event = event.name(), campaign = %id, "access review");
        Ok(next)
    }
}

struct Evidence {
    policy_set: String,
    items: Vec<campaign::Item>,
    not_found: Vec<String>,
}

fn not_found(id: &str) -> CampaignError {
    CampaignError::NotFound(format!("no access review campaign {id}"))
}

/// Runs `attempt` again while another replica keeps changing campaign `id`
/// first (each attempt starts by applying the other's change).
async fn retrying<T, F, Fut>(id: &str, mut attempt: F) -> Result<T, CampaignError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CampaignError>>,
{
    for _ in 0..RACE_RETRIES {
        match attempt().await {
            Err(CampaignError::Raced(_)) => continue,
            other => return other,
        }
    }
    Err(CampaignError::Raced(id.to_owned()))
}
