//! Process metrics, served as Prometheus text on `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    pub method: String,
}

/// How an MCP request ended.
#[derive(
    Clone, Copy, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelValue,
)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Answered with a result.
    ok,
    /// A tool call that ran and reported `isError: true`.
    tool_error,
    /// Answered with a JSON-RPC error.
    error,
    /// Cancelled by the client.
    cancelled,
    /// The upstream did not answer within its call timeout.
    timeout,
}

/// All of Warden's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<MethodLabel, Histogram>,
    pub sessions: Gauge,
    pub sessions_refused: Counter,
    pub upstream_children: Gauge,
    pub auth_failures: Family<ReasonLabel, Counter>,
    pub session_binding_violations: Counter,
    pub audit_records: Family<KindLabel, Counter>,
    pub audit_write_failures: Family<KindLabel, Counter>,
    pub audit_writable: Gauge,
    /// 1 for the hash of the policy set this replica enforces.
    pub policy_set: Family<HashLabel, Gauge>,
    /// Other live replicas on this store enforcing a different policy set.
    pub replica_policy_mismatches: Gauge,
    pub audit_tree_size: Gauge,
    pub audit_checkpoints: Counter,
    /// Signed checkpoints offered to a witness (`audit::witness`), by
    /// witness (`1`, `2`, ... in configured order) and result: `published`,
    /// `failed` (refused, a conflicting checkpoint, or gave up after
    /// retries) or `dropped` (the witness's queue was full).
    pub audit_witness: Family<WitnessLabels, Counter>,
    /// Witness publishing attempts after the first, by witness.
    pub audit_witness_retries: Family<WitnessLabel, Counter>,
    pub audit_commit_batch: Histogram,
    pub audit_intent_latency: Histogram,
    pub policy_decisions: Family<DecisionLabels, Counter>,
    pub policy_loads: Family<LoadLabel, Counter>,
    pub policy_alerts: Family<AlertLabel, Counter>,
    pub policy_latency: Histogram,
    /// Webhook notifications (`approvals::notify`), one per notification
    /// and webhook, by result: `delivered`, `failed` (gave up after retries,
    /// or refused by the receiver), `dropped` (the queue was full).
    pub notifications: Family<NotificationLabel, Counter>,
    /// Webhook delivery attempts after the first.
    pub notification_retries: Counter,
    /// Tool calls scored by the risk stage, by final level.
    pub risk_assessments: Family<LevelLabel, Counter>,
    /// `risk_alert`s raised (once per principal per hour at most).
    pub risk_alerts: Counter,
    /// Automatic responses carried out (or, in `notify` mode, recorded), by
    /// action and mode.
    pub responses: Family<ResponseLabels, Counter>,
    /// Principals suspended now (this replica's view).
    pub responses_suspended: Gauge,
    /// Networks blocked now (this replica's view).
    pub responses_blocked: Gauge,
    /// Incidents opened.
    pub incidents_opened: Counter,
    /// Time to score a call (stage 3).
    pub risk_latency: Histogram,
    /// Time of one ARM or Resource Graph request looking resource facts up
    /// (a cache miss).
    pub facts_latency: Histogram,
    /// Facts cache lookups, by result: `hit` or `miss`.
    pub facts_cache: Family<ResultLabel, Counter>,
    /// Operations described by the facts stage, by completeness:
    /// `complete`, `partial`, `unavailable`.
    pub facts_described: Family<CompletenessLabel, Counter>,
    /// SIEM feed (`siem`): records shipped (taken by the receiver), by sink.
    pub siem_shipped: Family<SinkLabel, Counter>,
    /// SIEM feed: attempts to ship a batch that failed, by sink.
    pub siem_failures: Family<SinkLabel, Counter>,
    /// SIEM feed: attempts after the first for a batch, by sink.
    pub siem_retries: Family<SinkLabel, Counter>,
    /// SIEM feed: records in the store not shipped yet (the store's newest
    /// sequence number minus the sink's cursor), by sink.
    pub siem_lag: Family<SinkLabel, Gauge>,
    /// SIEM feed: the last sequence number shipped (-1: none yet), by sink.
    pub siem_cursor: Family<SinkLabel, Gauge>,
    /// SIEM feed: gaps in the sequence numbers found, by sink.
    pub siem_gaps: Family<SinkLabel, Counter>,
    /// SIEM feed: sequence numbers missing from the store, by sink.
    pub siem_missing: Family<SinkLabel, Counter>,
    /// Open HTTP connections on the front.
    pub http_connections: Gauge,
    /// Connections closed at accept, by reason: `limit` (all connections)
    /// or `address_limit` (connections from one address).
    pub http_connections_refused: Family<ReasonLabel, Counter>,
    /// Connections the front closed, by reason: `header_timeout` (the
    /// request head did not arrive in time), `idle_timeout` (nothing read
    /// or written for too long), `bad_request` (e.g. too many or too large
    /// headers).
    pub http_connections_closed: Family<ReasonLabel, Counter>,
    /// Rate limits (`[limits]`).
    pub limits: LimitMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LevelLabel {
    /// `low`, `medium`, `high` or `critical`.
    pub level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `hit` or `miss`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CompletenessLabel {
    /// `complete`, `partial` or `unavailable`.
    pub completeness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabel {
    /// `delivered`, `failed` or `dropped`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabels {
    /// The witness's place in `[[audit.witness]]`, from 1.
    pub witness: String,
    /// `published`, `failed` or `dropped`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabel {
    pub witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink's name in `[[siem.sink]]`.
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow` or `deny`.
    pub effect: String,
    /// The advice of a deny (`step_up`, `require_approval`, `deny`); `none`
    /// on allow.
    pub advice: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HashLabel {
    pub hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoadLabel {
    /// `ok`, `invalid` (the set was refused; the running one stays),
    /// `unapproved` (refused under `[policy] require_approval`: no security
    /// manager approved it) or `unrecorded` (valid, but its `policy_load`
    /// audit record could not be written, so it was not installed).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub action: String,
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabel {
    pub alert: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("warden");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "mcp_requests",
            "MCP requests from clients, by method and outcome",
            requests.clone(),
        );
        let latency = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ])
        });
        registry.register(
            "mcp_request_duration_seconds",
            "Time from receiving an MCP request to answering it",
            latency.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Open MCP client sessions", sessions.clone());
        let sessions_refused = Counter::default();
        registry.register(
            "sessions_refused",
            "Sessions refused because the session cap was reached",
            sessions_refused.clone(),
        );
        let upstream_children = Gauge::default();
        registry.register(
            "upstream_children",
            "Running upstream child processes",
            upstream_children.clone(),
        );
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "auth_failures",
            "Requests refused by authentication, by reason",
            auth_failures.clone(),
        );
        let session_binding_violations = Counter::default();
        registry.register(
            "session_binding_violations",
            "Requests on a session opened by another principal",
            session_binding_violations.clone(),
        );
        let audit_records = Family::<KindLabel, Counter>::default();
        registry.register(
            "audit_records",
            "Audit records made durable, by kind",
            audit_records.clone(),
        );
        let audit_write_failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written, by kind",
            audit_write_failures.clone(),
        );
        let audit_writable = Gauge::default();
        registry.register(
            "audit_writable",
            "1 while the audit log accepts writes; 0 while calls are refused (fail closed)",
            audit_writable.clone(),
        );
        let policy_set = Family::<HashLabel, Gauge>::default();
        registry.register(
            "policy_set",
            "1 for the hash of the policy set this replica enforces (0 for sets it enforced before)",
            policy_set.clone(),
        );
        let replica_policy_mismatches = Gauge::default();
        registry.register(
            "replica_policy_mismatches",
            "Other live replicas on this store that enforce a different policy set",
            replica_policy_mismatches.clone(),
        );
        let audit_tree_size = Gauge::default();
        registry.register(
            "audit_tree_size",
            "Records in the audit log's Merkle tree",
            audit_tree_size.clone(),
        );
        let audit_checkpoints = Counter::default();
        registry.register(
            "audit_checkpoints",
            "Signed checkpoints written",
            audit_checkpoints.clone(),
        );
        let audit_witness = Family::<WitnessLabels, Counter>::default();
        registry.register(
            "audit_witness_checkpoints",
            "Signed checkpoints offered to a witness, by witness and result: published, failed, dropped",
            audit_witness.clone(),
        );
        let audit_witness_retries = Family::<WitnessLabel, Counter>::default();
        registry.register(
            "audit_witness_retries",
            "Witness publishing attempts after the first, by witness",
            audit_witness_retries.clone(),
        );
        let audit_commit_batch =
            Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
        registry.register(
            "audit_commit_batch_records",
            "Records per durable group commit",
            audit_commit_batch.clone(),
        );
        let audit_intent_latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "audit_intent_duration_seconds",
            "Time to make a call's intent record durable",
            audit_intent_latency.clone(),
        );
        let policy_decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "policy_decisions",
            "Tool calls decided by policy, by effect and advice",
            policy_decisions.clone(),
        );
        let policy_loads = Family::<LoadLabel, Counter>::default();
        registry.register(
            "policy_loads",
            "Policy set loads and reloads, by result",
            policy_loads.clone(),
        );
        let policy_alerts = Family::<AlertLabel, Counter>::default();
        registry.register(
            "policy_alerts",
            "Alerts raised by @alert policies (e.g. break-glass use)",
            policy_alerts.clone(),
        );
        let policy_latency = Histogram::new([
            0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
        ]);
        registry.register(
            "policy_decision_duration_seconds",
            "Time to resolve a tool call's operations and decide it (stages 2 and 4)",
            policy_latency.clone(),
        );
        let notifications = Family::<NotificationLabel, Counter>::default();
        registry.register(
            "notifications",
            "Webhook notifications (one per notification and webhook), by result: delivered, failed, dropped",
            notifications.clone(),
        );
        // Every result is exported from the start, so alerts on a rate see 0.
        for result in ["delivered", "failed", "dropped"] {
            notifications
                .get_or_create(&NotificationLabel {
                    result: result.to_owned(),
                })
                .inc_by(0);
        }
        let notification_retries = Counter::default();
        registry.register(
            "notification_retries",
            "Webhook delivery attempts after the first",
            notification_retries.clone(),
        );
        let risk_assessments = Family::<LevelLabel, Counter>::default();
        registry.register(
            "risk_assessments",
            "Tool calls scored by the risk stage, by level",
            risk_assessments.clone(),
        );
        for level in ["low", "medium", "high", "critical"] {
            risk_assessments
                .get_or_create(&LevelLabel {
                    level: level.to_owned(),
                })
                .inc_by(0);
        }
        let risk_alerts = Counter::default();
        registry.register(
            "risk_alerts",
            "Risk alerts raised (at most one per principal per hour)",
            risk_alerts.clone(),
        );
        let responses = Family::<ResponseLabels, Counter>::default();
        registry.register(
            "responses",
            "Automatic responses carried out (mode enforce) or only recorded (mode notify), by action",
            responses.clone(),
        );
        let responses_suspended = Gauge::default();
        registry.register(
            "suspended_principals",
            "Principals suspended by a response, as this replica last read them",
            responses_suspended.clone(),
        );
        let responses_blocked = Gauge::default();
        registry.register(
            "blocked_networks",
            "Networks blocked by a response, as this replica last read them",
            responses_blocked.clone(),
        );
        let incidents_opened = Counter::default();
        registry.register(
            "incidents_opened",
            "Incidents opened by responses",
            incidents_opened.clone(),
        );
        let risk_latency = Histogram::new([
            0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01,
        ]);
        registry.register(
            "risk_score_duration_seconds",
            "Time to score a tool call (stage 3)",
            risk_latency.clone(),
        );
        let facts_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        registry.register(
            "facts_lookup_duration_seconds",
            "Time of one ARM or Resource Graph request looking resource facts up (a cache miss)",
            facts_latency.clone(),
        );
        let facts_cache = Family::<ResultLabel, Counter>::default();
        registry.register(
            "facts_cache",
            "Resource facts cache lookups, by result: hit, miss",
            facts_cache.clone(),
        );
        for result in ["hit", "miss"] {
            facts_cache
                .get_or_create(&ResultLabel {
                    result: result.to_owned(),
                })
                .inc_by(0);
        }
        let facts_described = Family::<CompletenessLabel, Counter>::default();
        registry.register(
            "facts_operations",
            "Operations whose resource facts were looked up, by completeness: complete, partial, unavailable",
            facts_described.clone(),
        );
        for completeness in ["complete", "partial", "unavailable"] {
            facts_described
                .get_or_create(&CompletenessLabel {
                    completeness: completeness.to_owned(),
                })
                .inc_by(0);
        }
        let http_connections = Gauge::default();
        registry.register(
            "http_connections",
            "Open HTTP connections on the front",
            http_connections.clone(),
        );
        let http_connections_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at accept because a connection cap was reached, by reason",
            http_connections_refused.clone(),
        );
        let siem_shipped = Family::<SinkLabel, Counter>::default();
        registry.register(
            "siem_shipped_records",
            "Audit records the SIEM feed shipped (taken by the receiver), by sink",
            siem_shipped.clone(),
        );
        let siem_failures = Family::<SinkLabel, Counter>::default();
        registry.register(
            "siem_failures",
            "SIEM feed attempts to ship a batch that failed, by sink",
            siem_failures.clone(),
        );
        let siem_retries = Family::<SinkLabel, Counter>::default();
        registry.register(
            "siem_retries",
            "SIEM feed attempts after the first for a batch, by sink",
            siem_retries.clone(),
        );
        let siem_lag = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "siem_lag_records",
            "Audit records not shipped yet (newest sequence number minus the cursor), by sink",
            siem_lag.clone(),
        );
        let siem_cursor = Family::<SinkLabel, Gauge>::default();
        registry.register(
            "siem_cursor",
            "The last sequence number the SIEM feed shipped (-1: none), by sink",
            siem_cursor.clone(),
        );
        let siem_gaps = Family::<SinkLabel, Counter>::default();
        registry.register(
            "siem_gaps",
            "Gaps in the audit log's sequence numbers the SIEM feed found, by sink",
            siem_gaps.clone(),
        );
        let siem_missing = Family::<SinkLabel, Counter>::default();
        registry.register(
            "siem_missing_records",
            "Sequence numbers missing from the audit log, found by the SIEM feed, by sink",
            siem_missing.clone(),
        );
        let http_connections_closed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_connections_closed",
            "HTTP connections the front closed (slow, idle or malformed clients), by reason",
            http_connections_closed.clone(),
        );
        let limits = LimitMetrics::register(&mut registry);
        Self {
            registry: Arc::new(registry),
            limits,
            http_connections,
            http_connections_refused,
            http_connections_closed,
            siem_shipped,
            siem_failures,
            siem_retries,
            siem_lag,
            siem_cursor,
            siem_gaps,
            siem_missing,
            risk_assessments,
            risk_alerts,
            responses,
            responses_suspended,
            responses_blocked,
            incidents_opened,
            risk_latency,
            facts_latency,
            facts_cache,
            facts_described,
            notifications,
            notification_retries,
            policy_latency,
            policy_decisions,
            policy_loads,
            policy_alerts,
            audit_records,
            audit_write_failures,
            audit_writable,
            policy_set,
            replica_policy_mismatches,
            audit_tree_size,
            audit_checkpoints,
            audit_witness,
            audit_witness_retries,
            audit_commit_batch,
            audit_intent_latency,
            auth_failures,
            session_binding_violations,
            requests,
            latency,
            sessions,
            sessions_refused,
            upstream_children,
        }
    }

    /// Counts a policy set load attempt.
    pub fn policy_load(&self, result: &str) {
        self.policy_loads
            .get_or_create(&LoadLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts a connection the front refused or closed, by reason.
    pub fn http_connection(&self, family: &Family<ReasonLabel, Counter>, reason: &str) {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &str, outcome: Outcome, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                outcome,
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one refused authentication.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn audit_record(&self, kind: &str) {
        self.audit_records
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn audit_write_failure(&self, kind: &str) {
        self.audit_write_failures
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one webhook notification by result (`delivered`, `failed`,
    /// `dropped`).
    /// Counts one checkpoint offered to witness `witness` (from 1) by result.
    pub fn witness(&self, witness: usize, result: &str) {
        self.audit_witness
            .get_or_create(&WitnessLabels {
                witness: witness.to_string(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Exports witness `witness`'s counters at 0, so alerts on a rate see them.
    pub fn witness_configured(&self, witness: usize) {
        for result in ["published", "failed", "dropped"] {
            self.audit_witness
                .get_or_create(&WitnessLabels {
                    witness: witness.to_string(),
                    result: result.to_owned(),
                })
                .inc_by(0);
        }
        self.audit_witness_retries
            .get_or_create(&WitnessLabel {
                witness: witness.to_string(),
            })
            .inc_by(0);
    }

    pub fn notification(&self, result: &str) {
        self.notifications
            .get_or_create(&NotificationLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one scored call by its level.
    pub fn risk_assessment(&self, level: &str) {
        self.risk_assessments
            .get_or_create(&LevelLabel {
                level: level.to_owned(),
            })
            .inc();
    }

    /// Counts one facts cache lookup (`hit` or `miss`).
    pub fn facts_cache(&self, result: &str) {
        self.facts_cache
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one operation described by the facts stage, by completeness.
    pub fn facts_described(&self, completeness: &str) {
        self.facts_described
            .get_or_create(&CompletenessLabel {
                completeness: completeness.to_owned(),
            })
            .inc();
    }

    fn sink(sink: &str) -> SinkLabel {
        SinkLabel {
            sink: sink.to_owned(),
        }
    }

    /// Exports SIEM sink `sink`'s metrics at 0, so alerts on a rate see them.
    pub fn siem_configured(&self, sink: &str) {
        let label = Self::sink(sink);
        for family in [
            &self.siem_shipped,
            &self.siem_failures,
            &self.siem_retries,
            &self.siem_gaps,
            &self.siem_missing,
        ] {
            family.get_or_create(&label).inc_by(0);
        }
        self.siem_lag.get_or_create(&label).set(0);
        self.siem_cursor.get_or_create(&label).set(-1);
    }

    /// Counts `records` shipped by SIEM sink `sink`.
    pub fn siem_shipped(&self, sink: &str, records: u64) {
        self.siem_shipped
            .get_or_create(&Self::sink(sink))
            .inc_by(records);
    }

    /// Counts one failed attempt of SIEM sink `sink`.
    pub fn siem_failure(&self, sink: &str) {
        self.siem_failures.get_or_create(&Self::sink(sink)).inc();
    }

    /// Counts one retry of SIEM sink `sink`.
    pub fn siem_retry(&self, sink: &str) {
        self.siem_retries.get_or_create(&Self::sink(sink)).inc();
    }

    /// Sets SIEM sink `sink`'s lag, in records.
    pub fn siem_lag(&self, sink: &str, records: i64) {
        self.siem_lag.get_or_create(&Self::sink(sink)).set(records);
    }

    /// Sets SIEM sink `sink`'s cursor (the last sequence number shipped).
    pub fn siem_cursor(&self, sink: &str, last: i64) {
        self.siem_cursor.get_or_create(&Self::sink(sink)).set(last);
    }

    /// Counts one gap of `missing` sequence numbers found by SIEM sink `sink`.
    pub fn siem_gap(&self, sink: &str, missing: u64) {
        let label = Self::sink(sink);
        self.siem_gaps.get_or_create(&label).inc();
        self.siem_missing.get_or_create(&label).inc_by(missing);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// `principal`, `principal_tool`, `client_app` or `source_address`.
    pub limit: String,
}

/// The rate limits' metrics (`src/limits/`).
#[derive(Clone)]
pub struct LimitMetrics {
    /// Requests refused by a rate limit, by limit.
    pub limited: Family<LimitLabel, Counter>,
    /// Buckets tracked, by limit (full buckets are forgotten).
    pub buckets: Family<LimitLabel, Gauge>,
    /// Tokens taken from this replica's buckets for what other replicas
    /// admitted (PostgreSQL), by limit.
    pub debited: Family<LimitLabel, Counter>,
    /// Buckets forgotten before they were full because a table was at
    /// `max_buckets`, by limit.
    pub evicted: Family<LimitLabel, Counter>,
    /// Rounds of the exchange with other replicas that failed.
    pub sync_failures: Counter,
    /// Rounds of the exchange with other replicas that succeeded.
    pub syncs: Counter,
}

impl LimitMetrics {
    const LIMITS: [&str; 4] = [
        "principal",
        "principal_tool",
        "client_app",
        "source_address",
    ];

    fn register(registry: &mut Registry) -> Self {
        let limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by limit: principal, principal_tool, client_app (tools/call), source_address (/mcp, before authentication)",
            limited.clone(),
        );
        let buckets = Family::<LimitLabel, Gauge>::default();
        registry.register(
            "rate_limit_buckets",
            "Rate limit buckets tracked (not full), by limit",
            buckets.clone(),
        );
        let debited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limit_debited",
            "Tokens taken from this replica's buckets for what other replicas admitted, by limit",
            debited.clone(),
        );
        let evicted = Family::<LimitLabel, Counter>::default();
        registry.register(
            "rate_limit_evicted",
            "Rate limit buckets forgotten before they were full (a table at max_buckets), by limit",
            evicted.clone(),
        );
        let sync_failures = Counter::default();
        registry.register(
            "rate_limit_sync_failures",
            "Rounds of the rate limits' exchange with other replicas that failed",
            sync_failures.clone(),
        );
        let syncs = Counter::default();
        registry.register(
            "rate_limit_syncs",
            "Rounds of the rate limits' exchange with other replicas that succeeded",
            syncs.clone(),
        );
        for limit in Self::LIMITS {
            let label = Self::label(limit);
            limited.get_or_create(&label).inc_by(0);
            buckets.get_or_create(&label).set(0);
            debited.get_or_create(&label).inc_by(0);
            evicted.get_or_create(&label).inc_by(0);
        }
        Self {
            limited,
            buckets,
            debited,
            evicted,
            sync_failures,
            syncs,
        }
    }

    fn label(limit: &str) -> LimitLabel {
        LimitLabel {
            limit: limit.to_owned(),
        }
    }

    /// Counts one request refused by `limit`.
    pub fn limited(&self, limit: &str) {
        self.limited.get_or_create(&Self::label(limit)).inc();
    }

    /// Sets how many buckets `limit` tracks.
    pub fn set_buckets(&self, limit: &str, buckets: i64) {
        self.buckets.get_or_create(&Self::label(limit)).set(buckets);
    }

    /// Counts `tokens` debited from `limit`'s buckets.
    pub fn debited(&self, limit: &str, tokens: u64) {
        self.debited
            .get_or_create(&Self::label(limit))
            .inc_by(tokens);
    }

    /// Counts `buckets` of `limit` evicted.
    pub fn evicted(&self, limit: &str, buckets: u64) {
        self.evicted
            .get_or_create(&Self::label(limit))
            .inc_by(buckets);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::new();
        metrics.observe("tools/call", Outcome::ok, Duration::from_millis(3));
        metrics.sessions.inc();
        let text = metrics.render();
        assert!(
            text.contains(r#"warden_mcp_requests_total{method="tools/call",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("warden_mcp_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("warden_sessions 1"), "{text}");
    }

    #[test]
    fn risk_levels_are_exported_from_the_start() {
        let metrics = Metrics::new();
        metrics.risk_assessment("high");
        metrics.risk_alerts.inc();
        metrics.risk_latency.observe(0.00002);
        let text = metrics.render();
        for line in [
            r#"warden_risk_assessments_total{level="low"} 0"#,
            r#"warden_risk_assessments_total{level="high"} 1"#,
            "warden_risk_alerts_total 1",
            "warden_risk_score_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}
