//! `warden dev` as a library: the dev issuer, the ARM simulator, the egress
//! proxy and the gateway (in front of the built-in Azure tools, the sample
//! upstream and, when given, the official Azure MCP Server) under one data
//! directory, with a ready token per persona in `DIR/dev.json`. The
//! embedded configuration and the files are made by [`crate::dev`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::azure::sim::{self, SimConfig, Simulator};
use crate::dev::azmcp;
use crate::dev::proxy::{self, DevCa, EgressProxy, Routes};
use crate::dev::{DevAzure, DevAzureMcp, DevOAuth, Persona};
use crate::identity::dev::{
    DEV_AZMCP_CLIENT_NAME, DEV_CONFIDENTIAL_CLIENT, DEV_CONFIDENTIAL_CLIENT_NAME, DEV_TENANT,
    DevClient, DevIssuer, DevUser, TokenOptions, TokenVersion, service_principal_id,
};
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
    /// The official Azure MCP Server's executable (`azmcp`), run behind
    /// Warden as the upstream `azmcp` (tools `azmcp__<tool>`), offline:
    /// through the egress proxy, signed in as its own service principal.
    /// `None`: no such upstream.
    pub azure_mcp: Option<PathBuf>,
    /// How it runs: one azmcp shared by every session, serving HTTP on a
    /// private Unix socket (`Serve::Http`, the `warden dev` default), or
    /// one per session over stdio (`Serve::Stdio`).
    pub azure_mcp_serve: azmcp::Serve,
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
    /// The egress proxy's URL (`http://127.0.0.1:<port>`, for
    /// `HTTPS_PROXY`).
    pub proxy_url: String,
    /// The dev CA's certificate, which the egress proxy's certificate
    /// chains to (for `SSL_CERT_FILE`).
    pub ca_file: PathBuf,
    /// The Azure MCP Server run as the upstream `azmcp`, if any.
    pub azure_mcp: Option<PathBuf>,
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
    proxy: EgressProxy,
    issuer_server: JoinHandle<std::io::Result<()>>,
    shutdown: CancellationToken,
}

impl RunningDev {
    /// The egress proxy: what it forwarded and refused, by host.
    pub fn proxy(&self) -> &EgressProxy {
        &self.proxy
    }

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
    /// then stops the simulator, the issuer and the egress proxy.
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.gateway.wait().await;
        self.simulator.shutdown().await;
        self.shutdown.cancel();
        let _ = self.issuer_server.await;
        self.proxy.wait().await;
        result
    }
}

/// Starts `warden dev`: creates what is missing under the data directory
/// (issuer key and service clients, dev CA, audit keys, baseline policies),
/// serves the issuer, the simulator and the egress proxy, grants the Azure
/// MCP Server's service principal Contributor on the dev subscription,
/// starts the gateway, and writes `dev.json`. Everything stops when
/// `shutdown` is cancelled.
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
        azure_mcp,
        azure_mcp_serve,
    } = options;
    let issuer_url = base_url(&listeners.issuer)?;
    let issuer_addr = reachable(listeners.issuer.local_addr()?);
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
        azmcp_client,
        azmcp_secret,
        ca,
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
        let routes = Routes {
            arm: reachable(simulator.local_addr()),
            login: issuer_addr,
        };
        let proxy = EgressProxy::start(&ca, routes, shutdown.clone())
            .await
            .context("egress proxy")?;
        let proxy_url = proxy.url();
        let azmcp_env = azmcp::environment(&azmcp::Offline {
            proxy_url: &proxy_url,
            ca_file: ca.cert_file(),
            tenant_id: DEV_TENANT,
            client_id: &azmcp_client.client_id,
            client_secret: &azmcp_secret,
        });
        grant_contributor(&issuer, &arm_url, &azmcp_client).await;
        let azure = DevAzure {
            arm_endpoint: arm_url.clone(),
            authority_host: issuer_url.clone(),
            client,
            azure_mcp: azure_mcp.clone().map(|command| DevAzureMcp {
                command,
                env: azmcp_env.clone(),
                serve: azure_mcp_serve,
            }),
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
            proxy_url: &proxy_url,
            ca_file: ca.cert_file(),
            azure_mcp: azure_mcp.as_deref(),
            azmcp_client: &azmcp_client,
            azmcp_env: &azmcp_env,
            azmcp_serve: azure_mcp_serve,
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
            Ok(dev_json) => anyhow::Ok((personas, dev_json, gateway, proxy)),
            Err(error) => {
                let _ = gateway.stop().await;
                Err(anyhow::Error::new(error)
                    .context(format!("writing {}/dev.json", data_dir.display())))
            }
        }
    };
    let (personas, dev_json, gateway, proxy) = match started.await {
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
        proxy_url: proxy.url(),
        ca_file: ca.cert_file().to_owned(),
        azure_mcp,
        oauth_issuer: oauth.map(|o| o.issuer),
        data_dir,
        policies,
        dev_json,
        personas,
        issuer,
        gateway,
        simulator,
        proxy,
        issuer_server,
        shutdown,
    })
}

/// An address to connect to for a listener bound to `addr`: the loopback
/// address instead of an unspecified one.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The name (a GUID) of the role assignment that makes the Azure MCP
/// Server's service principal a Contributor on the dev subscription.
pub const AZMCP_ROLE_ASSIGNMENT: &str = "2e3f4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b";

/// Makes the Azure MCP Server's service principal a Contributor on the dev
/// subscription in the simulator, as an administrator would in Azure: a
/// role assignment put by Warden's own service principal (the simulator
/// answers the same assignment again with 200 and records it once). The
/// simulator enforces no roles; the assignment says what the service
/// principal is meant to do and shows in role assignment lists. A failure
/// is logged and `warden dev` goes on.
async fn grant_contributor(issuer: &DevIssuer, arm_url: &str, azmcp: &DevClient) {
    let mut extra = serde_json::Map::new();
    let warden = service_principal_id(DEV_CONFIDENTIAL_CLIENT);
    extra.insert("oid".into(), serde_json::json!(warden));
    extra.insert("sub".into(), serde_json::json!(warden));
    let token = issuer.mint(&TokenOptions {
        user: DEV_CONFIDENTIAL_CLIENT_NAME.to_owned(),
        app: true,
        scopes: Vec::new(),
        audience: Some(sim::ARM_AUDIENCE.to_owned()),
        client_app: Some(DEV_CONFIDENTIAL_CLIENT.to_owned()),
        version: TokenVersion::V1,
        ttl: Duration::from_secs(300),
        extra,
        ..TokenOptions::default()
    });
    let subscription = format!("/subscriptions/{}", sim::DEV_SUBSCRIPTION);
    let body = serde_json::json!({
        "properties": {
            "roleDefinitionId": format!(
                "{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
                sim::seed::ROLE_CONTRIBUTOR
            ),
            "principalId": service_principal_id(&azmcp.client_id),
            "principalType": "ServicePrincipal",
            "description": format!("{DEV_AZMCP_CLIENT_NAME}: the Azure MCP Server behind warden dev"),
        }
    });
    let url = format!(
        "{arm_url}{subscription}/providers/Microsoft.Authorization/roleAssignments/\
         {AZMCP_ROLE_ASSIGNMENT}?api-version=2022-04-01"
    );
    let answer = async {
        let token = token.map_err(|e| e.to_string())?;
        let response = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?
            .put(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "{status}: {}",
                response.text().await.unwrap_or_default()
            ))
        }
    };
    if let Err(error) = answer.await {
        tracing::warn!(
            %error,
            "warden dev: could not make the Azure MCP Server's service principal a Contributor \
             on the dev subscription"
        );
    }
}

/// What `start` makes under the data directory before anything listens.
struct Prepared {
    issuer: DevIssuer,
    client: DevClient,
    /// The Azure MCP Server's service principal, and its secret.
    azmcp_client: DevClient,
    azmcp_secret: String,
    ca: DevCa,
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
    let azmcp_client = issuer.azmcp_client()?;
    let azmcp_secret = std::fs::read_to_string(&azmcp_client.secret_file)
        .with_context(|| format!("reading {}", azmcp_client.secret_file.display()))?
        .trim()
        .to_owned();
    let ca = DevCa::load_or_create(data_dir)?;
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
        azmcp_client,
        azmcp_secret,
        ca,
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
    proxy_url: &'a str,
    ca_file: &'a std::path::Path,
    azure_mcp: Option<&'a std::path::Path>,
    azmcp_client: &'a DevClient,
    azmcp_env: &'a std::collections::BTreeMap<String, String>,
    azmcp_serve: azmcp::Serve,
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
        proxy_url,
        ca_file,
        azure_mcp,
        azmcp_client,
        azmcp_env,
        azmcp_serve,
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
        "proxy_url": proxy_url,
        "ca_file": ca_file,
        "proxied_hosts": [
            proxy::ARM_HOST,
            proxy::LOGIN_HOST,
            format!("*{}", proxy::VAULT_SUFFIX),
        ],
        "azure_mcp": {
            "command": azure_mcp,
            "upstream": azmcp::UPSTREAM,
            "tool_prefix": format!("{}__", azmcp::UPSTREAM),
            "serve": match azmcp_serve {
                azmcp::Serve::Http => "http",
                azmcp::Serve::Stdio => "stdio",
            },
            "args": match azmcp_serve {
                azmcp::Serve::Http => &azmcp::HTTP_ARGS[..],
                azmcp::Serve::Stdio => &azmcp::ARGS[..],
            },
            "http_env": match azmcp_serve {
                azmcp::Serve::Http => serde_json::json!(azmcp::HTTP_ENV
                    .iter()
                    .copied()
                    .collect::<std::collections::BTreeMap<_, _>>()),
                azmcp::Serve::Stdio => serde_json::Value::Null,
            },
            "client_id": azmcp_client.client_id,
            "secret_file": azmcp_client.secret_file,
        },
        "azmcp_env": azmcp_env,
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
