//! A running Warden, as a library: [`run`] builds every stage from a
//! [`Config`], composes them into the [`Pipeline`] and serves the gateway on
//! listeners the caller bound; [`dev`] does the same for `warden dev`.
//!
//! The `warden` binary only parses arguments, binds the configured
//! addresses, turns SIGTERM and Ctrl-C into a cancelled shutdown token and
//! calls these functions; integration tests call them in-process on port 0.
//!
//! Shutdown, whatever triggers it (the token, the stdio client closing its
//! session, the HTTP server failing), runs in this order: the front stops
//! (open MCP sessions are cancelled, HTTP connections drained), then the
//! audit maintenance, SIEM feed, policy watch, approvals sweeper, access
//! review deadline check and risk flush tasks are stopped and joined (the
//! flush writes the baselines one last time),
//! then the audit log is closed (pending outcomes written, a final
//! checkpoint signed) and its writer joined.

pub mod dev;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::approvals::Approvals;
use crate::audit::Audit;
use crate::azure::client::ArmClient;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::executor::{Builtins, SharedServers};
use crate::facts::{ArmSource, Lookup};
use crate::gateway::{self, Gateway};
use crate::identity::{Authenticator, Principal};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Stages};
use crate::policy::Engine;
use crate::response::Responses;
use crate::risk::{self, Risk};
use crate::store::Location;

/// How often the approvals sweeper lapses and expires requests.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The sockets Warden serves on, bound by the caller (tests bind port 0).
#[derive(Debug)]
pub struct Listeners {
    /// The HTTP front: `/mcp`, `/.well-known/oauth-protected-resource`,
    /// `/healthz`, `/readyz`, `/metrics` and `/admin/`.
    pub http: TcpListener,
}

impl Listeners {
    /// Binds `[server] listen`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let listen = config.server.listen;
        let http = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        Ok(Self { http })
    }
}

/// A started Warden. Stop it with [`Running::stop`], or cancel the
/// shutdown token it was started with and [`Running::wait`].
#[derive(Debug)]
pub struct Running {
    http_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    done: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// The address the HTTP front listens on (`None` on stdio).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The token that stops this Warden when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Cancels the shutdown token and waits for the shutdown to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until Warden has stopped (see the module documentation for
    /// what stops it) and every task is joined. The error is the front's,
    /// if it failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("the Warden task failed")?
    }
}

/// Starts Warden on `config`: the stages, the background tasks, and the
/// HTTP front on `listeners`, until `shutdown` is cancelled. Returns once
/// Warden serves; an error means it never did (and everything it had
/// started is stopped again).
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    start(config, Front::Http(listeners.http), shutdown).await
}

/// Starts Warden on `config` serving one MCP session on this process's
/// stdin/stdout, for the caller whose token is in `WARDEN_TOKEN`. The
/// session ends when the client closes it or `shutdown` is cancelled.
pub async fn run_stdio(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    start(config, Front::Stdio, shutdown).await
}

/// The tool catalog (built in, or `[catalog] dir`) and the policy set,
/// validated against each other.
pub fn load_catalog_and_policy(config: &Config) -> anyhow::Result<(Catalog, Engine)> {
    let catalog = match &config.catalog.dir {
        Some(dir) => Catalog::load_dir(dir)
            .with_context(|| format!("loading the tool catalog {}", dir.display()))?,
        None => Catalog::builtin().context("loading the built-in tool catalog")?,
    };
    let policy = Engine::load(&config.policy, &catalog.operation_classes())
        .with_context(|| format!("loading the policy set {}", config.policy.dir.display()))?;
    Ok((catalog, policy))
}

/// The risk stage `[risk]` configures (its geo table read), with no
/// history yet.
pub fn risk_stage(config: &Config) -> anyhow::Result<Risk> {
    Risk::new(config.risk.clone()).map_err(anyhow::Error::msg)
}

/// Warden's own access to Azure Resource Manager, when `[azure]` is
/// configured: one client with Warden's credential, shared by the built-in
/// ARM tools and the resource facts lookup.
pub fn arm_client(config: &Config) -> anyhow::Result<Option<Arc<ArmClient>>> {
    let Some(azure) = &config.azure else {
        return Ok(None);
    };
    let credential =
        crate::azure::credential::build(&azure.credential).context("[azure.credential]")?;
    let client = ArmClient::new(azure.arm.clone(), credential)
        .map_err(|e| anyhow::anyhow!("[azure.arm]: {e}"))?;
    tracing::info!(endpoint = %azure.arm.endpoint, credential = azure.credential.credential.kind(), "Azure Resource Manager access ready (built-in tools, resource facts)");
    Ok(Some(Arc::new(client)))
}

/// The built-in servers `[azure]` enables: the ARM tools, with Warden's
/// own credential.
pub fn builtins(arm: Option<Arc<ArmClient>>) -> Builtins {
    match arm {
        Some(client) => Builtins::default().with_arm(client),
        None => Builtins::default(),
    }
}

/// The resource facts stage: lookups through `arm` (Warden's own access to
/// ARM); without it every resource's facts are `unavailable`.
pub fn facts_stage(config: &Config, arm: Option<Arc<ArmClient>>, metrics: &Metrics) -> Lookup {
    match arm {
        Some(client) => Lookup::new(
            config.facts.clone(),
            Arc::new(ArmSource::new(client)),
            metrics.clone(),
        ),
        None => {
            tracing::warn!(
                "no [azure] access: resource facts (tags, location) cannot be looked up, so \
                 every call's facts are `unavailable` (the baseline holds deletes for a JIT grant)"
            );
            Lookup::off(metrics.clone())
        }
    }
}

/// Where the gateway serves MCP.
enum Front {
    Http(TcpListener),
    Stdio,
}

/// The tasks that run beside the front, and the log they write to.
struct Background {
    stop: CancellationToken,
    maintenance: JoinHandle<()>,
    watch: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    risk_flush: JoinHandle<()>,
    /// The SIEM feed's sinks (`[siem]`), when there are any.
    siem: Option<JoinHandle<()>>,
    /// This replica's announcements in the store (and its view of the
    /// others, which the gateway's `/readyz` reads).
    replicas: Arc<crate::replicas::Registry>,
    announce: JoinHandle<()>,
    /// The access review campaigns' deadline check, once they are open.
    campaigns: Option<JoinHandle<()>>,
    /// The rate limits' sweep (and, on PostgreSQL, their exchange with
    /// the other replicas).
    limits: JoinHandle<()>,
    /// Re-reads the suspensions and blocks every replica made.
    responses: JoinHandle<()>,
    audit: Arc<Audit>,
}

impl Background {
    fn spawn(pipeline: &Pipeline, siem: Option<crate::siem::Feed>) -> Self {
        let stop = CancellationToken::new();
        let audit = pipeline.audit().clone();
        let siem = siem.map(|feed| {
            feed.spawn(
                audit.store().clone(),
                pipeline.metrics().clone(),
                stop.clone(),
            )
        });
        let replicas = Arc::new(crate::replicas::Registry::new(
            audit.store().clone(),
            pipeline.policy().clone(),
            pipeline.metrics().clone(),
        ));
        Self {
            announce: replicas.spawn(stop.clone()),
            replicas,
            maintenance: audit.spawn_maintenance(stop.clone()),
            siem,
            watch: pipeline.spawn_policy_watch(stop.clone()),
            sweeper: pipeline
                .approvals()
                .spawn_sweeper(SWEEP_INTERVAL, stop.clone()),
            risk_flush: pipeline.spawn_risk_flush(stop.clone()),
            limits: pipeline
                .limits()
                .spawn(audit.store().location(), stop.clone()),
            responses: pipeline.responses().spawn_refresh(stop.clone()),
            campaigns: None,
            audit,
            stop,
        }
    }

    /// Stops and joins the tasks, then closes the audit log.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.maintenance.await;
        // The feed lets go of its sinks while the store is open.
        if let Some(siem) = self.siem {
            let _ = siem.await;
        }
        let _ = self.watch.await;
        let _ = self.sweeper.await;
        let _ = self.limits.await;
        let _ = self.responses.await;
        if let Some(campaigns) = self.campaigns {
            let _ = campaigns.await;
        }
        // Withdraws this replica's announcement while the store is open,
        // then lets go of the store (the writer stops once every handle is
        // gone).
        let _ = self.announce.await;
        drop(self.replicas);
        // Flushes the baselines one last time before the store closes.
        let _ = self.risk_flush.await;
        self.audit.close().await;
        self.audit.join_writer();
    }
}

async fn start(
    config: Config,
    front: Front,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let arm = arm_client(&config)?;
    // The SIEM sinks are built (files read, credentials made) before the
    // audit log opens, so a bad one stops the start with nothing to undo.
    let siem = crate::siem::Feed::prepare(&config).context("[siem]")?;
    let pipeline = pipeline(&config, arm.clone()).await?;
    let mut background = Background::spawn(&pipeline, siem);
    let campaigns = match open_campaigns(&config, &pipeline) {
        Ok(campaigns) => campaigns,
        Err(error) => {
            drop(pipeline);
            background.stop().await;
            return Err(error);
        }
    };
    background.campaigns = Some(campaigns.spawn_checker(background.stop.clone()));
    let replicas = background.replicas.clone();
    let serving = match serve_front(
        config,
        front,
        pipeline,
        arm,
        replicas,
        campaigns,
        shutdown.clone(),
    )
    .await
    {
        Ok(serving) => serving,
        Err(error) => {
            background.stop().await;
            return Err(error);
        }
    };
    let http_addr = serving.http_addr;
    let done = tokio::spawn(async move {
        let result = match serving.task.await {
            Ok(result) => result,
            Err(error) => Err(anyhow::Error::new(error).context("the front failed")),
        };
        background.stop().await;
        result
    });
    Ok(Running {
        http_addr,
        shutdown,
        done,
    })
}

/// The access review campaigns (`[review]`), rebuilt from the log.
fn open_campaigns(
    config: &Config,
    pipeline: &Pipeline,
) -> anyhow::Result<Arc<crate::review::campaigns::Campaigns>> {
    let campaigns = crate::review::campaigns::Campaigns::open(crate::review::campaigns::Parts {
        config: config.review.clone(),
        reviewer_roles: config.approvals.approver_roles.clone(),
        auditor_roles: config.approvals.auditor_roles.clone(),
        home_tenants: config.identity.tenants.clone(),
        audit: pipeline.audit().clone(),
        policy: pipeline.policy().clone(),
        catalog: pipeline.catalog().clone(),
    })
    .map_err(|e| anyhow::anyhow!("loading access review campaigns: {e}"))?;
    Ok(Arc::new(campaigns))
}

/// Every stage, from `config`, composed; the policy set's load recorded.
async fn pipeline(config: &Config, arm: Option<Arc<ArmClient>>) -> anyhow::Result<Pipeline> {
    let metrics = Metrics::new();
    let (catalog, policy) = load_catalog_and_policy(config)?;
    let risk = Arc::new(risk_stage(config)?);
    let store = config.store.location();
    let audit = Audit::open(&store, config.audit.clone(), metrics.clone())
        .await
        .with_context(|| format!("opening the audit log {store}"))?;
    if let Some(readers) = config.store.readers {
        audit.store().set_readers(readers);
    }
    tracing::info!(origin = audit.origin(), key = %audit.public_key().encode(), %store, "audit log open");
    let facts = Arc::new(facts_stage(config, arm.clone(), &metrics));
    let stages = Composed {
        metrics,
        catalog,
        facts,
        policy,
        risk,
        arm,
    };
    let composed = compose(config, audit.clone(), stages).await;
    if composed.is_err() {
        // Nothing else holds the log once `compose` gave up.
        audit.close().await;
        audit.join_writer();
    }
    composed
}

/// The stages built before the audit log opens.
struct Composed {
    metrics: Metrics,
    catalog: Catalog,
    facts: Arc<Lookup>,
    policy: Engine,
    risk: Arc<Risk>,
    /// Warden's own ARM client (responses revoke with it).
    arm: Option<Arc<ArmClient>>,
}

/// The stages around an open audit log, composed.
async fn compose(config: &Config, audit: Arc<Audit>, stages: Composed) -> anyhow::Result<Pipeline> {
    let Composed {
        metrics,
        catalog,
        facts,
        policy,
        risk,
        arm,
    } = stages;
    let store = config.store.location();
    if risk.enabled() {
        let shared = matches!(store, Location::Postgres(_));
        let reader = audit
            .store()
            .reader()
            .with_context(|| format!("reading the risk baselines from {store}"))?;
        // On a shared store the journal is read before the baselines, so
        // that no event a baseline has not learned is pruned in between.
        let journal = shared
            .then(|| risk::shared::read_since(&reader, -1))
            .transpose()
            .with_context(|| format!("reading the risk events from {store}"))?;
        let rows = reader
            .baselines()
            .with_context(|| format!("reading the risk baselines from {store}"))?;
        let stored = rows.len();
        let loaded = risk.load(rows);
        tracing::info!(
            baselines = loaded,
            unreadable = stored - loaded,
            "risk baselines loaded"
        );
        if let Some(read) = journal {
            tracing::info!(
                events = read.events.len(),
                "risk events of the replicas replayed"
            );
            risk.replay(read);
            risk.share(risk::shared::Journal::new(audit.store().clone()));
        }
    } else {
        tracing::info!("risk scoring is off ([risk] enabled = false)");
    }
    let approvals = Approvals::open(config.approvals.clone(), audit.clone(), metrics.clone())
        .map_err(|e| anyhow::anyhow!("loading JIT approvals from {store}: {e}"))?;
    let limits = Arc::new(Limits::new(config.limits.clone(), metrics.clone()));
    let approvals = Arc::new(approvals);
    let notifier = approvals.clone();
    let responses = Arc::new(Responses::new(
        config.response.clone(),
        audit.clone(),
        arm,
        Arc::new(move |notification| notifier.notify_security(notification)),
        metrics.clone(),
        config.approvals.public_url.clone(),
    ));
    responses
        .refresh()
        .await
        .with_context(|| format!("reading suspensions and blocks from {store}"))?;
    let pipeline = Pipeline::new(Stages {
        identity: Authenticator::start(config.identity.clone(), reqwest::Client::new()),
        metrics,
        limits,
        responses,
        catalog: Arc::new(catalog),
        facts,
        policy: Arc::new(policy),
        approvals,
        audit,
        risk,
    });
    pipeline
        .record_initial_policies()
        .await
        .with_context(|| format!("the policy set {}", config.policy.dir.display()))?;
    let summary = pipeline.policy().summary();
    tracing::info!(hash = %summary.hash, policies = summary.policies.len(), dir = %summary.dir.display(), "policy set loaded");
    Ok(pipeline)
}

/// A front that serves until it ends.
struct Serving {
    http_addr: Option<SocketAddr>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn serve_front(
    config: Config,
    front: Front,
    pipeline: Pipeline,
    arm: Option<Arc<ArmClient>>,
    replicas: Arc<crate::replicas::Registry>,
    campaigns: Arc<crate::review::campaigns::Campaigns>,
    shutdown: CancellationToken,
) -> anyhow::Result<Serving> {
    let identity = pipeline.identity().clone();
    let (facade, page_entra) = oauth_facade(&config, &pipeline)?.unzip();
    // What can fail is done before the shared children start.
    let front = match front {
        Front::Stdio => Ready::Stdio(Box::new(stdio_principal(&identity).await?)),
        Front::Http(listener) => {
            let address = listener.local_addr().context("the HTTP listener")?;
            Ready::Http(listener, address)
        }
    };
    let upstreams: Vec<_> = config
        .upstreams
        .iter()
        .map(|(name, upstream)| (name.clone(), upstream.kind()))
        .collect();
    let shared = SharedServers::start(
        &upstreams,
        config.server.upstream_init_timeout,
        pipeline.metrics(),
    )
    .await
    .map_err(anyhow::Error::msg)?;
    let builtins = builtins(arm).with_shared(shared.clone());
    let gateway = Gateway::new(Arc::new(config), pipeline, builtins, replicas);
    match front {
        Ready::Stdio(principal) => {
            let task = tokio::spawn(async move {
                // Warden's own tokens are accepted while the facade lives.
                let _facade = facade;
                let served = gateway::serve_stdio(gateway, *principal, shutdown)
                    .await
                    .context("serving MCP on stdio");
                shared.stop().await;
                served
            });
            Ok(Serving {
                http_addr: None,
                task,
            })
        }
        Ready::Http(listener, address) => {
            let limits = gateway::http::Limits::from(&gateway.config.server);
            let metrics = gateway.metrics.clone();
            let mut router = gateway::router(gateway, shutdown.clone(), page_entra, campaigns);
            if let Some(facade) = facade {
                router = router.merge(crate::oauth::routes::router(facade));
            }
            tracing::info!(%address, "warden listening; MCP at /mcp");
            let task = tokio::spawn(async move {
                let served = gateway::http::serve(listener, router, limits, metrics, shutdown)
                    .await
                    .context("HTTP server failed");
                shared.stop().await;
                served
            });
            Ok(Serving {
                http_addr: Some(address),
                task,
            })
        }
    }
}

/// A front about to serve: the stdio caller authenticated, or the HTTP
/// listener and its address.
enum Ready {
    Stdio(Box<Principal>),
    Http(TcpListener, SocketAddr),
}

/// Warden as the clients' authorization server (`[oauth]`, unless off):
/// its keys, its Entra leg, and its state from the store. Warden's own
/// access tokens are then accepted beside Entra's, and the
/// protected-resource metadata names Warden. The approvals page signs in
/// through the same Entra client, called back at `{issuer}/admin/callback`.
fn oauth_facade(
    config: &Config,
    pipeline: &Pipeline,
) -> anyhow::Result<
    Option<(
        Arc<crate::oauth::service::OAuthService>,
        crate::admin::EntraSignIn,
    )>,
> {
    use crate::oauth::{entra, seal, service, tokens};
    let oauth = &config.oauth;
    if !oauth.enabled() {
        return Ok(None);
    }
    let file = |path: &Option<std::path::PathBuf>, key: &str| {
        path.clone()
            .ok_or_else(|| anyhow::anyhow!("oauth.{key}: required when mode is not off"))
    };
    let pepper = tokens::Pepper::load(&file(&oauth.pepper_file, "pepper_file")?)
        .map_err(|e| anyhow::anyhow!("oauth.pepper_file: {e}"))?;
    let keys = seal::KeyRing::load(&file(&oauth.key_file, "key_file")?)
        .map_err(|e| anyhow::anyhow!("oauth.key_file: {e}"))?;
    let credential =
        oauth.entra.credential.as_ref().ok_or_else(|| {
            anyhow::anyhow!("oauth.entra.credential: required when mode is not off")
        })?;
    let credential = entra::ClientCredential::from_config(credential)
        .map_err(|e| anyhow::anyhow!("oauth.entra.credential: {e}"))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("an HTTP client for Entra ID")?;
    let upstream = Arc::new(
        entra::Entra::new(&oauth.entra, credential, http)
            .map_err(|e| anyhow::anyhow!("oauth.entra: {e}"))?,
    );
    // The document source reads `oauth.cimd.ca_file` now: a bad one stops
    // the start.
    let cimd = if oauth.cimd.enabled {
        let source = crate::oauth::cimd::HttpsSource::from_config(&oauth.cimd)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some(crate::oauth::cimd::CimdFetcher::new(
            crate::oauth::cimd::CimdPolicy::from(&oauth.cimd),
            Arc::new(source),
        ))
    } else {
        None
    };
    let issuer = oauth
        .parsed_issuer()
        .ok_or_else(|| anyhow::anyhow!("oauth.issuer: required when mode is not off"))?;
    // The approvals page's sign-ins in progress are sealed with the same
    // key ring (and purpose) as the facade's own verifiers.
    let sealer = keys.sealer(seal::Purpose::UpstreamToken);
    let facade = service::OAuthService::open(service::Parts {
        config: oauth.clone(),
        mcp_url: issuer.endpoint("/mcp"),
        pepper,
        keys,
        upstream: upstream.clone(),
        identity: pipeline.identity().clone(),
        audit: pipeline.audit().clone(),
        cimd,
        step_up_acr: config.identity.mfa_auth_contexts.first().cloned(),
    })
    .map_err(|e| anyhow::anyhow!("oauth: {e}"))?;
    let facade = Arc::new(facade);
    let opaque: Arc<dyn crate::identity::OpaqueTokens> = facade.clone();
    pipeline.identity().accept_opaque(&opaque);
    tracing::info!(issuer = %issuer.as_str(), mode = ?oauth.mode, "OAuth facade on: Warden is the clients' authorization server");
    let page = crate::admin::EntraSignIn {
        entra: upstream,
        callback: issuer.endpoint("/admin/callback"),
        sealer,
    };
    Ok(Some((facade, page)))
}

/// The stdio front has no HTTP request to carry a token: the caller's token
/// comes from `WARDEN_TOKEN` and is validated once, at start, by the same
/// path as HTTP requests.
async fn stdio_principal(identity: &Authenticator) -> anyhow::Result<Principal> {
    let token = std::env::var("WARDEN_TOKEN").ok();
    let header = token.map(|t| format!("Bearer {t}"));
    if !identity.config().allow_anonymous {
        identity.refresh_keys().await;
    }
    identity
        .authenticate(header.as_deref(), None)
        .await
        .map_err(|e| anyhow::anyhow!("WARDEN_TOKEN: {e} ({})", e.reason()))
}
