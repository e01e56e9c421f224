//! `warden dev` as a library: the dev issuer, the ARM simulator and the
//! gateway (in front of the built-in Azure tools and the sample upstream)
//! under one data directory, with a ready token per persona in
//! `DIR/dev.json`. The embedded configuration and the files are made by
//! [`crate::dev`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::azure::sim::{self, SimConfig, Simulator};
use crate::dev::{DevAzure, DevOAuth, Persona};
use crate::identity::dev::{DevIssuer, DevUser};
use crate::oauth::service::CALLBACK_PATH;

use super::{Listeners, Running};

/// What `warden dev` runs on.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// All state: the issuer's key, the store, the simulator's database,
    /// the audit keys, the policies (unless `policies`) and `dev.json`.
    pub data_dir: PathBuf,
    /// The policy directory (default `DATA_DIR/policies`, created with the
    /// baseline policies).
    pub policies: Option<PathBuf>,
    /// The `warden` executable, started as `warden dev sample-upstream`
    /// for the sample upstream.
    pub executable: PathBuf,
    /// Warden as the MCP clients' OAuth authorization server in front of
    /// the dev issuer (`[oauth] mode = "both"`; its pepper and key files
    /// under the data directory, Warden's callback registered at the
    /// issuer). Only on a loopback gateway address.
    pub oauth: bool,
}

/// The sockets of `warden dev`, bound by the caller.
#[derive(Debug)]
pub struct DevListeners {
    /// The gateway.
    pub gateway: TcpListener,
    /// The dev issuer (discovery document, JWKS, authorization and token
    /// endpoints).
    pub issuer: TcpListener,
    /// The ARM simulator.
    pub arm: TcpListener,
}

impl DevListeners {
    /// Binds the three addresses (port 0 picks a free one).
    pub async fn bind(
        gateway: SocketAddr,
        issuer: SocketAddr,
        arm: SocketAddr,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            gateway: TcpListener::bind(gateway)
                .await
                .with_context(|| format!("cannot listen on {gateway}"))?,
            issuer: TcpListener::bind(issuer)
                .await
                .with_context(|| format!("dev issuer cannot listen on {issuer}"))?,
            arm: TcpListener::bind(arm)
                .await
                .with_context(|| format!("ARM simulator cannot listen on {arm}"))?,
        })
    }
}

/// A started `warden dev`. Stop it with [`RunningDev::stop`].
#[derive(Debug)]
pub struct RunningDev {
    /// `http://ADDR/mcp`.
    pub mcp_url: String,
    /// `http://ADDR`, the gateway's base URL (admin API and pages, health).
    pub base_url: String,
    /// The dev issuer's base URL (the tokens' authority).
    pub issuer_url: String,
    /// The ARM simulator's base URL.
    pub arm_url: String,
    /// Warden's issuer when the OAuth facade is on (the gateway's base
    /// URL): MCP clients sign in through Warden's consent page and the dev
    /// issuer's persona picker.
    pub oauth_issuer: Option<String>,
    pub data_dir: PathBuf,
    /// The policy directory the gateway decides with.
    pub policies: PathBuf,
    /// `DATA_DIR/dev.json`: the URLs, the files and a token per persona.
    pub dev_json: PathBuf,
    /// A token for each persona, as in `dev.json`.
    pub personas: Vec<(Persona, String)>,
    /// The issuer (mints more tokens, e.g. `warden dev token`). It shares
    /// its state with the one being served: `issuer.allow_redirect(uri)`
    /// registers a redirect URI, `issuer.set_user_enabled(name, false)`
    /// disables a persona, both at once.
    pub issuer: DevIssuer,
    gateway: Running,
    simulator: Simulator,
    issuer_server: JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
}

impl RunningDev {
    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Cancels the shutdown token and waits for the shutdown to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the gateway has stopped (see [`super::Running::wait`]),
    /// then stops the simulator and the issuer.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.gateway.wait().await;
        self.simulator.shutdown().await;
        self.shutdown.cancel();
        let _ = self.issuer_server.await;
        result
    }
}

/// Starts `warden dev`: creates what is missing under the data directory
/// (issuer key and service client, audit keys, baseline policies), serves
/// the issuer and the simulator, starts the gateway, and writes `dev.json`.
/// Everything stops when `shutdown` is cancelled.
pub async fn start(
    options: DevOptions,
    listeners: DevListeners,
    shutdown: CancellationToken,
) -> anyhow::Result<RunningDev> {
    let DevOptions {
        data_dir,
        policies,
        executable,
        oauth,
    } = options;
    let issuer_url = base_url(&listeners.issuer)?;
    let gateway_addr = listeners.gateway.local_addr()?;
    let oauth_issuer = if oauth {
        DevOAuth::issuer_for(gateway_addr)
    } else {
        None
    };
    let prepared = {
        let data_dir = data_dir.clone();
        let issuer_url = issuer_url.clone();
        let oauth_issuer = oauth_issuer.clone();
        // Key generation and small files: off the runtime.
        tokio::task::spawn_blocking(move || {
            prepare(&data_dir, policies, &issuer_url, oauth_issuer.as_deref())
        })
        .await
        .context("preparing the data directory")??
    };
    let Prepared {
        issuer,
        client,
        policies,
        oauth,
    } = prepared;

    let issuer_app = issuer.router(&issuer_url);
    let issuer_listener = listeners.issuer;
    let issuer_stop = shutdown.clone();
    let issuer_server = tokio::spawn(async move {
        axum::serve(issuer_listener, issuer_app)
            .with_graceful_shutdown(async move { issuer_stop.cancelled().await })
            .await
    });
    let simulator = Simulator::serve(
        SimConfig::new(
            listeners.arm.local_addr()?,
            data_dir.join("arm-sim.db"),
            sim::dev_identity_config(&issuer, &issuer_url),
        ),
        listeners.arm,
    )
    .await
    .context("ARM simulator")?;
    let arm_url = simulator.base_url();

    let base = format!("http://{gateway_addr}");
    let started = async {
        let azure = DevAzure {
            arm_endpoint: arm_url.clone(),
            authority_host: issuer_url.clone(),
            client,
        };
        let config = crate::dev::config(
            gateway_addr,
            &executable,
            issuer.identity_config(&issuer_url),
            &data_dir,
            &policies,
            &azure,
            oauth.as_ref(),
        )?;
        let personas = crate::dev::persona_tokens(&issuer)?;
        let info = dev_info(&DevInfo {
            base: &base,
            issuer_url: &issuer_url,
            arm_url: &arm_url,
            data_dir: &data_dir,
            policies: &policies,
            personas: &personas,
            oauth: oauth.as_ref(),
        });
        let gateway = super::run(
            config,
            Listeners {
                http: listeners.gateway,
            },
            shutdown.clone(),
        )
        .await?;
        // Written once the gateway serves: a script that finds it can use it.
        match crate::dev::write_dev_json(&data_dir, &info) {
            Ok(dev_json) => anyhow::Ok((personas, dev_json, gateway)),
            Err(error) => {
                let _ = gateway.stop().await;
                Err(anyhow::Error::new(error)
                    .context(format!("writing {}/dev.json", data_dir.display())))
            }
        }
    };
    let (personas, dev_json, gateway) = match started.await {
        Ok(started) => started,
        Err(error) => {
            simulator.shutdown().await;
            shutdown.cancel();
            let _ = issuer_server.await;
            return Err(error);
        }
    };
    Ok(RunningDev {
        mcp_url: format!("{base}/mcp"),
        base_url: base,
        issuer_url,
        arm_url,
        oauth_issuer: oauth.map(|o| o.issuer),
        data_dir,
        policies,
        dev_json,
        personas,
        issuer,
        gateway,
        simulator,
        issuer_server,
        shutdown,
    })
}

/// What `start` makes under the data directory before anything listens.
struct Prepared {
    issuer: DevIssuer,
    client: crate::identity::dev::DevClient,
    policies: PathBuf,
    oauth: Option<DevOAuth>,
}

fn prepare(
    data_dir: &std::path::Path,
    policies: Option<PathBuf>,
    issuer_url: &str,
    oauth_issuer: Option<&str>,
) -> anyhow::Result<Prepared> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let mut issuer = DevIssuer::load_or_create(data_dir)?;
    issuer.set_base_url(issuer_url);
    // The personas are the dev tenant's users: they sign in at the
    // issuer's authorization endpoint (`login_hint` or its picker page).
    for persona in crate::dev::PERSONAS {
        issuer.add_user(DevUser {
            name: persona.name.to_owned(),
            user: persona.user.to_owned(),
            roles: persona.roles.iter().map(|r| (*r).to_owned()).collect(),
            mfa: persona.mfa,
            ..DevUser::default()
        })?;
    }
    let client = issuer.dev_client()?;
    crate::dev::ensure_audit_keys(data_dir)?;
    let policies = match policies {
        Some(dir) => dir,
        None => crate::dev::ensure_policies(data_dir).with_context(|| {
            format!(
                "cannot write the baseline policies under {}",
                data_dir.display()
            )
        })?,
    };
    let oauth = match oauth_issuer {
        Some(warden) => {
            let (pepper_file, key_file) =
                crate::dev::ensure_oauth_keys(data_dir).with_context(|| {
                    format!(
                        "cannot write the OAuth facade's keys under {}",
                        data_dir.display()
                    )
                })?;
            // Entra (the dev issuer) sends the browser back to Warden: the
            // facade's callback and the approvals page's sign-in.
            issuer.allow_redirect(&format!("{warden}{CALLBACK_PATH}"))?;
            issuer.allow_redirect(&format!("{warden}/admin/callback"))?;
            Some(DevOAuth {
                issuer: warden.to_owned(),
                pepper_file,
                key_file,
            })
        }
        None => None,
    };
    Ok(Prepared {
        issuer,
        client,
        policies,
        oauth,
    })
}

/// `http://ADDR` of a listener.
fn base_url(listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!("http://{}", listener.local_addr()?))
}

struct DevInfo<'a> {
    base: &'a str,
    issuer_url: &'a str,
    arm_url: &'a str,
    data_dir: &'a std::path::Path,
    policies: &'a std::path::Path,
    personas: &'a [(Persona, String)],
    oauth: Option<&'a DevOAuth>,
}

/// The contents of `dev.json`.
fn dev_info(info: &DevInfo<'_>) -> serde_json::Value {
    let DevInfo {
        base,
        issuer_url,
        arm_url,
        data_dir,
        policies,
        personas,
        oauth,
    } = info;
    serde_json::json!({
        "mcp_url": format!("{base}/mcp"),
        "admin_url": format!("{base}/admin/api/requests"),
        "admin_page_url": format!("{base}/admin/"),
        "issuer_url": issuer_url,
        "arm_url": arm_url,
        "arm_throttle_url": format!("{arm_url}/_sim/throttle?requests=N"),
        "pid": std::process::id(),
        "data_dir": data_dir,
        "store": data_dir.join("warden.db"),
        "audit_public_key": data_dir.join("audit.pub"),
        "policies": policies,
        "oauth": oauth.map(|o| serde_json::json!({
            "mode": "both",
            "issuer": o.issuer,
            "metadata_url": format!("{}/.well-known/oauth-authorization-server", o.issuer),
            "callback_url": format!("{}{CALLBACK_PATH}", o.issuer),
        })),
        "subscriptions": sim::DEMO_SUBSCRIPTIONS
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
    })
}
