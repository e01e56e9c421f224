//! The `warden` command.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warden::audit::Audit;
use warden::azure::client::ArmClient;
use warden::catalog::Catalog;
use warden::config::Config;
use warden::executor::Builtins;
use warden::gateway::{self, Gateway};
use warden::identity::dev::{DevIssuer, TokenOptions};
use warden::identity::{Authenticator, Principal};
use warden::metrics::Metrics;
use warden::pipeline::{Pipeline, Stages};
use warden::policy::Engine;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Security gateway for MCP tool servers that manage Azure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short, env = "WARDEN_CONFIG", default_value = "warden.toml")]
        config: PathBuf,
        /// Serve one MCP session on stdin/stdout instead of HTTP.
        #[arg(long)]
        stdio: bool,
    },
    /// Run Warden on embedded defaults: the gateway, a local token issuer,
    /// and the sample upstream.
    Dev {
        #[command(subcommand)]
        command: Option<DevCommand>,
        /// Address of the gateway.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Address of the local token issuer (discovery document and JWKS).
        #[arg(long, default_value = warden::dev::ISSUER_LISTEN)]
        issuer_listen: SocketAddr,
        /// Address of the ARM simulator the built-in Azure tools call.
        #[arg(long, default_value = warden::dev::ARM_LISTEN)]
        arm_listen: SocketAddr,
        /// Directory for all state of `warden dev` (issuer key included).
        #[arg(long, default_value = ".warden-dev", global = true)]
        data_dir: PathBuf,
        /// Directory of Cedar policies (default: DATA_DIR/policies, created
        /// with the baseline policies).
        #[arg(long)]
        policies: Option<PathBuf>,
    },
    /// Cedar policies: validate, run the policy tests, explain a decision.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Just-in-time approvals: list, show, approve, deny, revoke, cancel
    /// (through the admin API of a running Warden).
    Jit {
        #[command(subcommand)]
        command: JitCommand,
        /// Base URL of Warden.
        #[arg(
            long,
            env = "WARDEN_URL",
            default_value = "http://127.0.0.1:8787",
            global = true
        )]
        url: String,
        /// Bearer token (a reviewer's to review).
        #[arg(long, env = "WARDEN_TOKEN", global = true, hide_env_values = true)]
        token: Option<String>,
    },
    /// The audit log: keys, verification, export, live tail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Anomaly scoring: evaluate it on synthetic traffic.
    Risk {
        #[command(subcommand)]
        command: RiskCommand,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Strictly validate the policy set against the schema (and the catalog's operations).
    Validate {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// A schema file replacing the built-in one.
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Run the declarative cases in DIR/tests/*.toml against the policies in DIR.
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Print every case, not only failures.
        #[arg(long)]
        verbose: bool,
    },
    /// Resolve a tool call to its Azure operations and show the decision,
    /// the determining policies and the advice (JSON).
    Explain {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The tool, as the upstream names it (e.g. compute_vm_delete).
        #[arg(long)]
        tool: String,
        /// The call's arguments (JSON object).
        #[arg(long, default_value = "{}")]
        args: String,
        /// Display name of the caller.
        #[arg(long, default_value = "explain-user")]
        user: String,
        /// App role of the caller (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Entra group object id of the caller (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The caller signed in with MFA.
        #[arg(long)]
        mfa: bool,
        /// An app-only caller.
        #[arg(long)]
        app: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Create a checkpoint signing key (named for the log's origin), its
    /// public key, and an HMAC key for redaction. Never overwrites.
    Keygen {
        /// The log's origin, e.g. warden.contoso.com/audit/prod-1 (no spaces or '+').
        #[arg(long)]
        origin: String,
        /// Where to write audit-signing.key, audit.pub and audit-hmac.key.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Only a signing key and its public key (for a key rotation).
        #[arg(long)]
        no_hmac: bool,
    },
    /// Verify a log offline; exit 0 when it verifies, 1 when it does not,
    /// 2 when it cannot be read.
    Verify {
        /// A Warden store file.
        #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
        db: Option<PathBuf>,
        /// An export bundle directory.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// The trusted public key file (audit.pub).
        #[arg(long)]
        key: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export records for auditors (bundle) or for SIEMs and sampling.
    Export {
        #[arg(long)]
        db: PathBuf,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum)]
        format: warden::audit::export::Format,
        /// From this time (RFC 3339 or YYYY-MM-DD, inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Until this time (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only this principal (object id).
        #[arg(long)]
        principal: Option<String>,
        /// Only calls with this decision (allow or deny).
        #[arg(long)]
        decision: Option<String>,
        /// Only calls to this tool.
        #[arg(long)]
        tool: Option<String>,
    },
    /// Print records as they are appended (JSON Lines), until interrupted.
    Tail {
        #[arg(long)]
        db: PathBuf,
        /// Start at this sequence number (default: only new records).
        #[arg(long)]
        from_seq: Option<u64>,
    },
}

#[derive(Subcommand)]
enum RiskCommand {
    /// Replay a synthetic month of traffic with injected incidents through
    /// the scoring code and report detection and false alarms; exit 0 when
    /// every run meets its targets, 1 otherwise.
    Eval {
        /// Seed of the (first) run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of runs, with seeds SEED, SEED+1, ...
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// Days of traffic measured per run (after four weeks of history).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Principals per run.
        #[arg(long, default_value_t = 50)]
        principals: u32,
        /// Print the report as JSON (an array when several seeds run).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JitCommand {
    /// Requests you may see (reviewers: all), newest first.
    List {
        /// pending, approved, denied, cancelled, lapsed, consumed, expired, revoked
        #[arg(long)]
        status: Option<String>,
    },
    /// One request, as JSON.
    Show { id: String },
    /// Approve a request (approver role and MFA; never your own).
    Approve {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke a grant: the next call no longer runs under it.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your pending request.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Print a token signed by the dev issuer.
    Token(Box<TokenArgs>),
    /// Serve the sample upstream on stdin/stdout (started by `warden dev`).
    #[command(hide = true)]
    SampleUpstream,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// User name (upn); for --app, the application's display name.
    #[arg(long, default_value = "dev-user")]
    user: String,
    /// Group object id or name (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// App role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Mark the sign-in as multi-factor (v1 `amr` contains `mfa`).
    #[arg(long)]
    mfa: bool,
    /// Satisfied authentication context id, e.g. c1 (repeatable).
    #[arg(long)]
    acrs: Vec<String>,
    /// An app-only token (no user, no scopes).
    #[arg(long)]
    app: bool,
    /// Lifetime, e.g. 1h or 15m.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Base URL of the running dev issuer (it is the token's issuer).
    #[arg(long, default_value = "http://127.0.0.1:8788")]
    issuer_url: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warden: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Audit { command } => audit_command(command),
        Command::Jit {
            command,
            url,
            token,
        } => runtime()?.block_on(jit_command(command, &url, token)),
        Command::Policy { command } => policy_command(command),
        Command::Risk { command } => risk_command(command),
        Command::CheckConfig { file } => {
            let config = Config::load(&file)?;
            let (_, policy) = load_catalog_and_policy(&config)?;
            risk_stage(&config).with_context(|| file.display().to_string())?;
            println!(
                "{}: ok ({} upstream{}, {} polic{})",
                file.display(),
                config.upstreams.len(),
                if config.upstreams.len() == 1 { "" } else { "s" },
                policy.summary().policies.len(),
                if policy.summary().policies.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            );
            Ok(())
        }
        Command::Serve { config, stdio } => {
            let config = Config::load(&config)?;
            init_logging();
            runtime()?.block_on(serve(config, stdio))
        }
        Command::Dev {
            command: Some(DevCommand::Token(args)),
            data_dir,
            ..
        } => {
            let mut issuer = DevIssuer::load_or_create(&data_dir)?;
            issuer.set_base_url(&args.issuer_url);
            let args = *args;
            let options = TokenOptions {
                user: args.user,
                groups: args.groups,
                roles: args.roles,
                mfa: args.mfa,
                acrs: args.acrs,
                app: args.app,
                ttl: args.ttl.into(),
                ..TokenOptions::default()
            };
            println!("{}", issuer.mint(&options)?);
            Ok(())
        }
        Command::Dev {
            command: Some(DevCommand::SampleUpstream),
            ..
        } => {
            init_logging();
            runtime()?
                .block_on(warden::dev::sample::serve_stdio())
                .context("sample upstream")
        }
        Command::Dev {
            command: None,
            listen,
            issuer_listen,
            arm_listen,
            data_dir,
            policies,
        } => dev(listen, issuer_listen, arm_listen, data_dir, policies),
    }
}

/// `warden dev`: the dev issuer, the ARM simulator and the gateway (with
/// the built-in Azure tools and the sample upstream) under one data dir,
/// and a ready token per persona in `DIR/dev.json`.
fn dev(
    listen: SocketAddr,
    issuer_listen: SocketAddr,
    arm_listen: SocketAddr,
    data_dir: PathBuf,
    policies: Option<PathBuf>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut issuer = DevIssuer::load_or_create(&data_dir)?;
    let issuer_url = format!("http://{issuer_listen}");
    issuer.set_base_url(&issuer_url);
    let client = issuer.dev_client()?;
    let executable = std::env::current_exe().context("locating the warden executable")?;
    warden::dev::ensure_audit_keys(&data_dir)?;
    let policies = match policies {
        Some(dir) => dir,
        None => warden::dev::ensure_policies(&data_dir).with_context(|| {
            format!(
                "cannot write the baseline policies under {}",
                data_dir.display()
            )
        })?,
    };
    let arm_url = format!("http://{arm_listen}");
    let azure = warden::dev::DevAzure {
        arm_endpoint: arm_url.clone(),
        authority_host: issuer_url.clone(),
        client,
    };
    let config = warden::dev::config(
        listen,
        &executable,
        issuer.identity_config(&issuer_url),
        &data_dir,
        &policies,
        &azure,
    )?;
    let personas = warden::dev::persona_tokens(&issuer)?;
    init_logging();
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(issuer_listen)
            .await
            .with_context(|| format!("dev issuer cannot listen on {issuer_listen}"))?;
        let issuer_app = issuer.router(&issuer_url);
        tokio::spawn(async move { axum::serve(listener, issuer_app).await });
        let simulator = warden::azure::sim::Simulator::start(warden::azure::sim::SimConfig::new(
            arm_listen,
            data_dir.join("arm-sim.db"),
            warden::azure::sim::dev_identity_config(&issuer, &issuer_url),
        ))
        .await
        .with_context(|| format!("ARM simulator on {arm_listen}"))?;
        let mcp_url = format!("http://{listen}/mcp");
        let admin_url = format!("http://{listen}/admin/api/requests");
        let info = serde_json::json!({
            "mcp_url": mcp_url,
            "admin_url": admin_url,
            "admin_page_url": format!("http://{listen}/admin/"),
            "issuer_url": issuer_url,
            "arm_url": simulator.base_url(),
            "arm_throttle_url": format!("{}/_sim/throttle?requests=N", simulator.base_url()),
            "pid": std::process::id(),
            "data_dir": data_dir,
            "store": data_dir.join("warden.db"),
            "audit_public_key": data_dir.join("audit.pub"),
            "policies": policies,
            "subscriptions": warden::azure::sim::DEMO_SUBSCRIPTIONS
                .iter()
                .map(|(id, name)| serde_json::json!({ "id": id, "name": name }))
                .collect::<Vec<_>>(),
            "personas": personas
                .iter()
                .map(|(p, token)| {
                    (
                        p.name.to_owned(),
                        serde_json::json!({
                            "user": p.user,
                            "roles": p.roles,
                            "mfa": p.mfa,
                            "token": token,
                        }),
                    )
                })
                .collect::<serde_json::Map<_, _>>(),
        });
        let dev_json = warden::dev::write_dev_json(&data_dir, &info)
            .with_context(|| format!("writing {}/dev.json", data_dir.display()))?;
        let names: Vec<String> = personas
            .iter()
            .map(|(p, _)| format!("{} ({})", p.name, p.roles.join(", ")))
            .collect();
        eprintln!(
            "warden dev\n  MCP:        {mcp_url}\n  admin:      http://{listen}/admin/ (page), {admin_url} (API, warden jit)\n  issuer:     {issuer_url}\n  ARM (sim):  {}\n  \
             state:      {}\n  policies:   {}\n  tokens:     {} in {}\n  \
             use one:    Authorization: Bearer $(jq -r .personas.developer.token {})\n  \
             mint more:  warden dev token --user alice --role Reader [--mfa] --data-dir {}",
            simulator.base_url(),
            data_dir.display(),
            policies.display(),
            names.join(", "),
            dev_json.display(),
            dev_json.display(),
            data_dir.display(),
        );
        let result = serve(config, false).await;
        simulator.shutdown().await;
        result
    })
}

/// `warden jit ...`: one call to the admin API; the answer printed as
/// JSON (list: one line per request).
async fn jit_command(command: JitCommand, url: &str, token: Option<String>) -> anyhow::Result<()> {
    let token = token.context("a token is needed: --token or WARDEN_TOKEN")?;
    let base = format!("{}/admin/api/requests", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match &command {
        JitCommand::List { status } => {
            let mut url = reqwest::Url::parse(&base).context("--url")?;
            if let Some(status) = status {
                url.query_pairs_mut().append_pair("status", status);
            }
            client.get(url)
        }
        JitCommand::Show { id } => client.get(format!("{base}/{id}")),
        JitCommand::Approve { id, reason }
        | JitCommand::Deny { id, reason }
        | JitCommand::Revoke { id, reason }
        | JitCommand::Cancel { id, reason } => {
            let action = match &command {
                JitCommand::Approve { .. } => "approve",
                JitCommand::Deny { .. } => "deny",
                JitCommand::Revoke { .. } => "revoke",
                _ => "cancel",
            };
            client
                .post(format!("{base}/{id}/{action}"))
                .json(&serde_json::json!({ "reason": reason }))
        }
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach Warden at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("{status}: {message}");
    }
    match (&command, body.get("requests").and_then(|r| r.as_array())) {
        (JitCommand::List { .. }, Some(requests)) => {
            for r in requests {
                println!(
                    "{}  {:<9}  {}  {}  {}",
                    r["id"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["requester"]["name"].as_str().unwrap_or_default(),
                    r["operations"]
                        .as_array()
                        .map(|ops| ops
                            .iter()
                            .filter_map(|o| o["azure_op"].as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    r["lapses"].as_str().unwrap_or_default(),
                );
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the async runtime")
}

/// Logs go to stderr (stdout may be the stdio MCP transport): JSON when
/// stderr is not a terminal. `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log that cannot be written (disk full, file-size limit) must not
    // take calls down: tracing's fallback report of a failed write is an
    // `eprint!`, which panics the logging task when stderr fails too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

async fn serve(config: Config, stdio: bool) -> anyhow::Result<()> {
    ignore_file_size_signal();
    let metrics = Metrics::new();
    let (catalog, policy) = load_catalog_and_policy(&config)?;
    let risk = Arc::new(risk_stage(&config)?);
    let audit = Audit::open(&config.store.path, config.audit.clone(), metrics.clone())
        .await
        .with_context(|| format!("opening the audit log {}", config.store.path.display()))?;
    tracing::info!(origin = audit.origin(), key = %audit.public_key().encode(), store = %config.store.path.display(), "audit log open");
    if risk.enabled() {
        let rows = audit
            .store()
            .reader()
            .and_then(|reader| reader.baselines())
            .with_context(|| {
                format!(
                    "reading the risk baselines from {}",
                    config.store.path.display()
                )
            })?;
        let stored = rows.len();
        let loaded = risk.load(rows);
        tracing::info!(
            baselines = loaded,
            unreadable = stored - loaded,
            "risk baselines loaded"
        );
    } else {
        tracing::info!("risk scoring is off ([risk] enabled = false)");
    }
    let approvals = warden::approvals::Approvals::open(
        config.approvals.clone(),
        audit.clone(),
        &config.store.path,
        metrics.clone(),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "loading JIT approvals from {}: {e}",
            config.store.path.display()
        )
    })?;
    let pipeline = Pipeline::new(Stages {
        identity: Authenticator::start(config.identity.clone(), reqwest::Client::new()),
        metrics,
        catalog: Arc::new(catalog),
        policy: Arc::new(policy),
        approvals: Arc::new(approvals),
        audit: audit.clone(),
        risk,
    });
    pipeline
        .record_initial_policies()
        .await
        .context("recording the policy set in the audit log")?;
    let summary = pipeline.policy().summary();
    tracing::info!(hash = %summary.hash, policies = summary.policies.len(), dir = %summary.dir.display(), "policy set loaded");
    let stop = CancellationToken::new();
    let maintenance = audit.spawn_maintenance(stop.clone());
    let watch = pipeline.spawn_policy_watch(stop.clone());
    let sweeper = pipeline
        .approvals()
        .spawn_sweeper(std::time::Duration::from_secs(5), stop.clone());
    let risk_flush = pipeline.spawn_risk_flush(stop.clone());
    let result = serve_fronts(config, stdio, pipeline).await;
    stop.cancel();
    let _ = maintenance.await;
    let _ = watch.await;
    let _ = sweeper.await;
    // Flushes the baselines one last time before the store closes.
    let _ = risk_flush.await;
    audit.close().await;
    audit.join_writer();
    result
}

/// The risk stage `[risk]` configures (its geo table read), with no
/// history yet.
fn risk_stage(config: &Config) -> anyhow::Result<warden::risk::Risk> {
    warden::risk::Risk::new(config.risk.clone()).map_err(anyhow::Error::msg)
}

/// The built-in servers `[azure]` enables: the ARM tools, with Warden's
/// own credential.
fn builtins(config: &Config) -> anyhow::Result<Builtins> {
    let Some(azure) = &config.azure else {
        return Ok(Builtins::default());
    };
    let credential =
        warden::azure::credential::build(&azure.credential).context("[azure.credential]")?;
    let client = ArmClient::new(azure.arm.clone(), credential)
        .map_err(|e| anyhow::anyhow!("[azure.arm]: {e}"))?;
    tracing::info!(endpoint = %azure.arm.endpoint, credential = azure.credential.credential.kind(), "Azure Resource Manager tools ready");
    Ok(Builtins::default().with_arm(Arc::new(client)))
}

/// The tool catalog (built in, or `[catalog] dir`) and the policy set,
/// validated against each other.
fn load_catalog_and_policy(config: &Config) -> anyhow::Result<(Catalog, Engine)> {
    let catalog = match &config.catalog.dir {
        Some(dir) => Catalog::load_dir(dir)
            .with_context(|| format!("loading the tool catalog {}", dir.display()))?,
        None => Catalog::builtin().context("loading the built-in tool catalog")?,
    };
    let policy = Engine::load(&config.policy, &catalog.operation_classes())
        .with_context(|| format!("loading the policy set {}", config.policy.dir.display()))?;
    Ok((catalog, policy))
}

/// A write past a file-size limit must fail with an error (and the call be
/// refused), not kill the process: handling SIGXFSZ turns it into EFBIG.
fn ignore_file_size_signal() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
        {
            tokio::spawn(async move { while signal.recv().await.is_some() {} });
        }
    }
}

async fn serve_fronts(config: Config, stdio: bool, pipeline: Pipeline) -> anyhow::Result<()> {
    let identity = pipeline.identity().clone();
    let builtins = builtins(&config)?;
    let gateway = Gateway::new(Arc::new(config), pipeline, builtins);
    if stdio {
        let principal = stdio_principal(&identity).await?;
        return gateway::serve_stdio(gateway, principal)
            .await
            .context("serving MCP on stdio");
    }
    let listen = gateway.config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let shutdown = CancellationToken::new();
    let limits = gateway::http::Limits::from(&gateway.config.server);
    let metrics = gateway.metrics.clone();
    let app = gateway::router(gateway, shutdown.clone());
    tracing::info!(address = %listener.local_addr()?, "warden listening; MCP at /mcp");
    let signalled = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        signalled.cancel();
    });
    gateway::http::serve(listener, app, limits, metrics, shutdown)
        .await
        .context("HTTP server failed")
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

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `warden risk eval`: runs seeds SEED..SEED+SEEDS, prints each report
/// (or one JSON document), exits 1 unless every run met its targets.
fn risk_command(command: RiskCommand) -> anyhow::Result<()> {
    use warden::risk::eval::{self, EvalOptions};
    let RiskCommand::Eval {
        seed,
        seeds,
        days,
        principals,
        json,
    } = command;
    let last = seed
        .checked_add(seeds - 1)
        .context("--seed plus --seeds is too large")?;
    let reports = (seed..=last)
        .map(|seed| {
            eval::run(&EvalOptions {
                seed,
                days,
                principals,
            })
            .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<eval::Report>>>()?;
    if json {
        let out = match reports.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        println!("{out}");
    } else {
        for report in &reports {
            println!("{}", report.text());
        }
    }
    let failed: Vec<&eval::Report> = reports.iter().filter(|r| !r.targets_met).collect();
    for report in &failed {
        eprintln!(
            "warden: risk eval: seed {} missed its targets: {}",
            report.seed,
            if report.missed.is_empty() {
                "see the report".to_owned()
            } else {
                report.missed.join("; ")
            }
        );
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Exit status of `warden audit verify` when the log does not verify.
const VERIFY_FAILED: u8 = 1;
/// Exit status of `warden audit verify` when it cannot read its inputs.
const VERIFY_UNREADABLE: u8 = 2;

fn audit_command(command: AuditCommand) -> anyhow::Result<()> {
    use warden::audit::export;
    match command {
        AuditCommand::Keygen {
            origin,
            dir,
            no_hmac,
        } => {
            let files = warden::audit::KeyFiles::in_dir(&dir);
            let key = warden::audit::keygen(&origin, &files, !no_hmac)?;
            println!("{}", key.encode());
            eprintln!(
                "wrote {} (secret), {}{}",
                files.signing_key.display(),
                files.public_key.display(),
                if no_hmac {
                    String::new()
                } else {
                    format!(" and {} (secret)", files.hmac_key.display())
                }
            );
            Ok(())
        }
        AuditCommand::Verify {
            db,
            bundle,
            key,
            json,
        } => {
            let report = warden::audit::load_verifier(&key)
                .map_err(anyhow::Error::from)
                .and_then(|key| match (&db, &bundle) {
                    (Some(db), _) => Ok(export::verify_store(db, key)?),
                    (None, Some(dir)) => Ok(export::verify_bundle(dir, key)?),
                    (None, None) => anyhow::bail!("give --db FILE or --bundle DIR"),
                });
            let report = match report {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("warden: cannot verify: {error:#}");
                    std::process::exit(VERIFY_UNREADABLE.into());
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.text());
            }
            if !report.ok {
                std::process::exit(VERIFY_FAILED.into());
            }
            Ok(())
        }
        AuditCommand::Export {
            db,
            out,
            format,
            from,
            to,
            principal,
            decision,
            tool,
        } => {
            let time = |t: Option<String>, flag: &str| {
                t.map(|t| export::parse_time(&t).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                    .transpose()
            };
            let filter = export::Filter {
                from: time(from, "from")?,
                to: time(to, "to")?,
                principal,
                decision,
                tool,
            };
            let done = export::export(&db, &out, format, filter)?;
            for file in &done.files {
                println!("{}", file.display());
            }
            eprintln!("exported {} records", done.records);
            Ok(())
        }
        AuditCommand::Tail { db, from_seq } => tail(&db, from_seq),
    }
}

/// Follows the store read-only, printing new records as JSON Lines.
fn tail(db: &std::path::Path, from_seq: Option<u64>) -> anyhow::Result<()> {
    use std::io::Write;
    let reader = warden::store::Reader::open(db)?;
    let mut next = match from_seq {
        Some(seq) => seq as i64,
        None => reader.max_seq()?.map_or(0, |m| m + 1),
    };
    let stdout = std::io::stdout();
    loop {
        let mut out = stdout.lock();
        reader.for_each_record(next, |row| {
            next = row.seq + 1;
            out.write_all(&row.bytes)
                .and_then(|_| out.write_all(b"\n"))
                .map_err(|e| warden::store::StoreError::Read(e.to_string()))
        })?;
        out.flush()?;
        drop(out);
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    use warden::policy::{self, CallContext, OperationFacts, PolicyConfig};
    let catalog = warden::catalog::Catalog::builtin().context("loading the built-in catalog")?;
    let operations = catalog.operation_classes();
    match command {
        PolicyCommand::Validate { policies, schema } => {
            let config = PolicyConfig {
                dir: policies,
                schema,
                ..PolicyConfig::default()
            };
            let summary = policy::validate(&config, &operations)?;
            for warning in &summary.warnings {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} policies in {} files, set {})",
                config.dir.display(),
                summary.policies.len(),
                summary.files.len(),
                summary.hash
            );
            Ok(())
        }
        PolicyCommand::Test { dir, verbose } => {
            let config = PolicyConfig {
                dir: dir.clone(),
                ..PolicyConfig::default()
            };
            let engine = policy::Engine::load(&config, &operations)?;
            let report = policy::run_tests(&engine, &dir.join("tests"));
            for case in &report.cases {
                if !case.passed() || verbose {
                    let mark = if case.passed() { "ok  " } else { "FAIL" };
                    println!("{mark} {}: {}", case.file.display(), case.name);
                    for failure in &case.failures {
                        println!("     {failure}");
                    }
                }
            }
            println!(
                "{} passed, {} failed (policy set {})",
                report.passed(),
                report.failed(),
                report.policy_set
            );
            if !report.ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Explain {
            policies,
            tool,
            args,
            user,
            roles,
            groups,
            mfa,
            app,
        } => {
            let arguments: serde_json::Value =
                serde_json::from_str(&args).context("--args is not JSON")?;
            anyhow::ensure!(arguments.is_object(), "--args must be a JSON object");
            let config = PolicyConfig {
                dir: policies,
                ..PolicyConfig::default()
            };
            let engine = policy::Engine::load(&config, &operations)?;
            let spec: policy::PrincipalSpec = serde_json::from_value(serde_json::json!({
                "kind": if app { "application" } else { "user" },
                "name": user,
                "roles": roles,
                "groups": groups,
                "mfa": mfa,
            }))
            .context("building the caller")?;
            let resolution = catalog.resolve(&tool, &arguments, None);
            let facts: Vec<OperationFacts> = resolution
                .operations
                .iter()
                .map(OperationFacts::from)
                .collect();
            let mut call = CallContext::new(&tool, "explain", chrono::Utc::now());
            call.arguments = Some(arguments);
            let explanation = engine.explain(&spec.principal(), &facts, &call);
            let out = serde_json::json!({
                "tool": tool,
                "resolution": resolution,
                "decision": explanation.decision,
                "requests": explanation.requests,
                "policies": explanation.policies,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}
