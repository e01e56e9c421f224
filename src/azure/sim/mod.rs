//! An Azure Resource Manager (ARM) simulator, for `warden dev` and tests.
//!
//! Azure cannot be reached from development and CI machines, so Warden
//! ships this HTTP server that behaves like `https://management.azure.com`
//! (and the Key Vault data plane, `https://<vault>.vault.azure.net`) on the
//! wire for the operations Warden and the Azure MCP Server use. Warden's
//! real ARM client (retries on 5xx/429 honouring `Retry-After`, LRO
//! polling of `Azure-AsyncOperation` and `Location`) talks to it
//! unchanged.
//!
//! ```no_run
//! # async fn demo(identity: warden::identity::IdentityConfig) -> Result<(), warden::azure::sim::SimError> {
//! use warden::azure::sim::{SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::new(
//!     "127.0.0.1:0".parse().unwrap(),
//!     "data/arm-sim.db".into(),
//!     identity, // e.g. warden::azure::sim::dev_identity_config(&issuer, &issuer_url)
//! ))
//! .await?;
//! println!("ARM at {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # State
//!
//! The simulator owns one SQLite file ([`SimConfig::db`], WAL), separate
//! from Warden's store: it holds the simulated estate, Key Vault secrets,
//! pending async operations and the activity log, so state survives a
//! restart. A new file is seeded with the demo estate of [`seed`]:
//! subscriptions [`DEMO_SUBSCRIPTIONS`], resource groups `dev-web`,
//! `dev-data` (Contoso Dev), `prod-web`, `security` (Contoso Prod), VMs
//! `web-01` (running), `web-02` (stopped), `prod-web-01` (running) with
//! their OS disks, scale set `web-vmss` (2 instances), spare disk
//! `dev-data-disk01`, storage accounts `devdata01`, `prodlogs01`, key vault
//! `kv-security` (secrets `db-password` in two versions,
//! `storage-connection-string`, the disabled `legacy-token`; a diagnostic
//! setting sending its audit logs to `prodlogs01`) and two role
//! assignments. A file of schema version 1 is upgraded in place (and given
//! what version 2 seeds). Delete the file to start over.
//!
//! # Wire behaviour
//!
//! * **Authentication**: every ARM request needs `Authorization: Bearer`,
//!   validated by [`Authenticator`] with [`SimConfig::identity`] (for the
//!   dev issuer, [`dev_identity_config`]). Missing or invalid: `401`,
//!   `WWW-Authenticate: Bearer authorization_uri="…", error="invalid_token",
//!   error_description="…"` and `AuthenticationFailed` /
//!   `InvalidAuthenticationToken` (or `…Audience`, `…Tenant`,
//!   `ExpiredAuthenticationToken`). Any valid caller may do anything: role
//!   assignments are data, not enforced.
//! * **`api-version`** is required on every ARM request
//!   (`400 MissingApiVersionParameter`); any value is accepted, recorded in
//!   the request log and the activity log, and echoed in operation URLs.
//! * **Headers**: every response has `x-ms-request-id` (new GUID),
//!   `x-ms-correlation-request-id` (the request's, else a new GUID),
//!   `x-ms-client-request-id` (echoed), `x-ms-routing-request-id` and
//!   `x-ms-ratelimit-remaining-subscription-reads|writes`.
//! * **Errors** use the ARM envelope `{"error":{"code","message"}}`.
//! * **Paths** match case-insensitively; ids come back in canonical casing.
//! * **Async operations**: VM `start|powerOff|deallocate|restart` and VM
//!   `DELETE` answer `202` with `Azure-AsyncOperation` (status document),
//!   `Location` (`…?monitor=true`: `202` until done, then `200`) and
//!   `Retry-After`; VM `PUT` answers `201`/`200` with
//!   `Azure-AsyncOperation`. Resource-group `DELETE` answers `202` with a
//!   `Location` only (`/subscriptions/{s}/operationresults/{id}`). An
//!   operation stays `InProgress` for [`SimConfig::lro_polls`] polls (of
//!   either URL); the next poll applies it (power state, deletion) and
//!   answers `Succeeded`. Nothing changes until then: a client that never
//!   polls never sees the effect.
//! * **Throttling**: [`Simulator::throttle`] or
//!   `POST /_sim/throttle?requests=N` (loopback clients only, no token)
//!   makes the next `N` ARM requests fail with `429 TooManyRequests` and
//!   `Retry-After: {retry_after_secs}`.
//! * **Request log**: `GET /_sim/requests?limit=N` (loopback only) lists
//!   the last requests served (method, path, `api-version`, status,
//!   caller, correlation id), newest first.
//! * **What was asked**: every request that reaches routing (authenticated,
//!   with an `api-version`) is counted. One the simulator has no route for
//!   is answered `404 NoRegisteredProviderFound` (or `400
//!   InvalidResourceType` for an unknown type of a known namespace, `405
//!   MethodNotAllowed` for a method it does not handle on a known path, Key
//!   Vault's `404 NotFound` on its data plane) naming the method, path and
//!   `api-version`, and listed by [`Simulator::unserved`] and `GET
//!   /_sim/unserved` (`[{method, path, api_version, caller, count}]`,
//!   `caller` as the activity log's, the path as
//!   sent); served requests are listed by [`Simulator::calls`] and `GET
//!   /_sim/calls` with the route's pattern as `path`
//!   (`/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{name}`,
//!   `https://{vaultName}.vault.azure.net/secrets/{secretName}`). Both
//!   are kept in memory since start, in the order first seen, and
//!   loopback only. A test that drives a client (such as the Azure MCP
//!   Server) through the simulator asserts `unserved()` is empty to know
//!   nothing it needed was missing.
//! * **Key Vault** (`keyvault.rs`): a request whose `Host` is
//!   `<vault>.vault.azure.net` (as a forwarding proxy sends it) goes to the
//!   vault's data plane, which wants tokens for `https://vault.azure.net`
//!   ([`KEY_VAULT_AUDIENCES`], validated like ARM tokens) and answers a
//!   request without one with Key Vault's challenge: `401`,
//!   `WWW-Authenticate: Bearer authorization="<authority>/<tenant>",
//!   resource="https://vault.azure.net"`.
//! * **Logs Ingestion** (`ingestion.rs`): `POST
//!   /dataCollectionRules/{dcrImmutableId}/streams/{streamName}` is a data
//!   collection endpoint of Azure Monitor, taking tokens for
//!   `https://monitor.azure.com` ([`MONITOR_AUDIENCES`]): the demo rule
//!   [`DEV_DCR_IMMUTABLE_ID`] (stream [`DEV_DCR_STREAM`]) and those
//!   [`Simulator::add_data_collection_rule`] adds; an unknown rule is
//!   Azure's `404 NotFound` (`Data collection rule with immutable Id '…'
//!   not found.`), an undeclared stream `400 InvalidStream`. What it took
//!   is kept in memory: [`Simulator::ingested`], `GET /_sim/ingested`;
//!   [`Simulator::fail_ingestion`] makes the next requests fail with `503`.
//!
//! # Routes (all with `?api-version=`)
//!
//! | Method | Path |
//! |---|---|
//! | GET | `/tenants` (the directory tenant: `Contoso`, `contoso.dev`) |
//! | GET | `/subscriptions`, `/subscriptions/{s}`, `/subscriptions/{s}/locations` |
//! | GET | `/subscriptions/{s}/resourcegroups` (`$filter=tagName eq 'k' and tagValue eq 'v'`, `$top`) |
//! | GET HEAD PUT PATCH DELETE | `/subscriptions/{s}/resourcegroups/{rg}` |
//! | GET | `/subscriptions/{s}/resources`, `/subscriptions/{s}/resourceGroups/{rg}/resources` (`$filter` on `resourceType`, `name`, `location`, `resourceGroup`, `tagName`/`tagValue`, `substringof('x', name)`; `$top`; `$expand=provisioningState,createdTime,changedTime`) |
//! | GET | `/subscriptions/{s}/providers/{ns}/{type}` (e.g. all VMs, scale sets, disks or storage accounts; VMs take `$expand=instanceView` / `statusOnly=true`) |
//! | GET | `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}[/{name}/{child type}]` (lists) |
//! | GET HEAD PUT PATCH DELETE | `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{child type}/{child}]` |
//! | GET | `…/Microsoft.Compute/virtualMachines/{vm}/instanceView`; `…/{vm}?$expand=instanceView` |
//! | POST | `…/Microsoft.Compute/virtualMachines/{vm}/start|powerOff|deallocate|restart` |
//! | GET | `…/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines[/{instance}[/instanceView]]` (instances `0` … `capacity - 1`) |
//! | GET | `/subscriptions/{s}/providers/Microsoft.Compute/locations/{loc}/operations/{id}[?monitor=true]` |
//! | GET | `/subscriptions/{s}/operationresults/{id}` |
//! | GET | `{scope}/providers/Microsoft.Authorization/roleAssignments` (`$filter=atScope()`, `principalId eq '…'`, `assignedTo('…')`) |
//! | GET PUT DELETE | `{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}` |
//! | GET | `{scope}/providers/Microsoft.Authorization/roleDefinitions[/{guid}]` (`$filter=roleName eq '…'`) |
//! | GET PUT PATCH DELETE | `{scope}/providers/Microsoft.Resources/tags/default` |
//! | GET | `{resource or subscription}/providers/Microsoft.Insights/diagnosticSettings` |
//! | GET PUT DELETE | `{resource or subscription}/providers/Microsoft.Insights/diagnosticSettings/{name}` (a destination required, categories checked, at most 5) |
//! | GET | `{resource}/providers/Microsoft.Insights/diagnosticSettingsCategories[/{name}]` |
//! | GET | `/subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values?$filter=eventTimestamp ge '…'[ and …]` |
//! | POST | `/providers/Microsoft.ResourceGraph/resources` (api-version `2024-04-01`, `2022-10-01`, `2021-03-01`, …; see below) |
//! | POST | `/dataCollectionRules/{dcrImmutableId}/streams/{streamName}` (Logs Ingestion, api-version `2023-01-01`; see `ingestion.rs`) |
//! | POST | `/_sim/throttle?requests=N` (no `api-version`, no token, loopback only) |
//! | GET | `/_sim/requests?limit=N`, `/_sim/calls`, `/_sim/unserved`, `/_sim/ingested` (likewise) |
//!
//! `{scope}` is a subscription, resource group or resource id. Resource
//! types stored: `Microsoft.Compute/virtualMachines[/extensions]`,
//! `Microsoft.Compute/virtualMachineScaleSets`, `Microsoft.Compute/disks`,
//! `Microsoft.Storage/storageAccounts`, `Microsoft.KeyVault/vaults`,
//! `Microsoft.Network/{virtualNetworks[/subnets], networkInterfaces,
//! networkSecurityGroups, publicIPAddresses}`, `Microsoft.Sql/servers`.
//! VM, scale set and disk `DELETE`s are long-running operations; other
//! `PUT`/`PATCH`/`DELETE`s complete at once (`201`/`200`, `200`, `204` when
//! absent). A disk attached to a VM (`managedBy`) cannot be deleted (`409
//! OperationNotAllowed`); a VM's deletion deletes the disks its profile
//! marks `deleteOption: Delete` and detaches the others; a new VM gets an
//! OS disk. Deleting a resource deletes its role assignments, diagnostic
//! settings and (a vault) secrets.
//!
//! **Resource Graph** runs the KQL subset of `graph.rs` (a table, then
//! `where`, `project`, `project-away`, `extend`, `order by`, `limit` /
//! `take`; comparison, string and `in` operators, `and`/`or`) over the
//! tables `resources`, `resourcecontainers` (subscriptions and resource
//! groups) and `authorizationresources` (role assignments, built-in role
//! definitions) of the subscriptions in the body (all when it names none),
//! with ARG's columns (`type` and `resourceGroup` lower-cased). It answers
//! `{totalRecords, count, data, facets: [], resultTruncated}` (`data` an
//! object array, or `{columns, rows}` with `options.resultFormat =
//! "table"`), pages by `options.$top` (default 100) / `$skip` /
//! `$skipToken`, and refuses anything else with ARG's `400` (`BadRequest`
//! with an `InvalidQuery` detail naming the unsupported part).
//!
//! Every write the simulator performs is recorded in the activity log
//! (`operationName`, `caller` = the token's `oid`, or its app id for an
//! app-only token, `correlationId`, `status` `Accepted` then
//! `Succeeded` for async operations), newest first.

mod filter;
mod graph;
pub mod ingestion;
mod keyvault;
mod routes;
pub mod seed;
mod state;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, HOST};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rusqlite::Connection;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

use crate::identity::dev::{DEV_SCOPE, DEV_TENANT, DevIssuer};
use crate::identity::{AuthError, Authenticator, IdentityConfig, PrincipalKind};

use routes::{ArmRequest, ArmResponse, Caller, Settings};

pub use ingestion::{DEV_DCR_IMMUTABLE_ID, DEV_DCR_STREAM, Ingested, MONITOR_AUDIENCES};
pub use keyvault::{KEY_VAULT_AUDIENCES, KEY_VAULT_RESOURCE};
pub use seed::{
    DEMO_SUBSCRIPTIONS, DEV_SUBSCRIPTION, DISK_DEV_DATA_01, DISK_WEB_01_OS, KEY_VAULT_SECURITY,
    KEY_VAULT_SECURITY_URI, PROD_SUBSCRIPTION, RG_DEV_DATA, RG_DEV_WEB, RG_PROD_WEB, RG_SECURITY,
    SECRET_DB_PASSWORD, SECRET_DB_PASSWORD_VALUE, STORAGE_DEVDATA01, STORAGE_PRODLOGS01,
    VM_PROD_WEB_01, VM_WEB_01, VM_WEB_02, VMSS_WEB,
};

/// The audience of ARM tokens (`https://management.azure.com/.default`).
pub const ARM_AUDIENCE: &str = "https://management.azure.com/";

/// Every `aud` real ARM accepts, as [`dev_identity_config`] sets them.
pub const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com/",
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
];

/// ARM's delegated scope (`scp`) in user tokens.
pub const ARM_SCOPE: &str = "user_impersonation";

/// How to run a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Listen address; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// The simulator's own SQLite file, created and seeded if new.
    pub db: PathBuf,
    /// How bearer tokens are validated (see [`dev_identity_config`]).
    pub identity: IdentityConfig,
    /// How many status polls an async operation stays `InProgress`
    /// (default 2).
    pub lro_polls: u32,
    /// `Retry-After` of throttled and async responses, in seconds
    /// (default 1).
    pub retry_after_secs: u64,
}

impl SimConfig {
    /// `lro_polls` 2, `retry_after_secs` 1.
    pub fn new(listen: SocketAddr, db: PathBuf, identity: IdentityConfig) -> Self {
        Self {
            listen,
            db,
            identity,
            lro_polls: 2,
            retry_after_secs: 1,
        }
    }
}

/// The identity settings for ARM tokens minted by the dev issuer served at
/// `issuer_base_url`: [`DevIssuer::identity_config`] with audiences
/// [`ARM_AUDIENCES`], user tokens needing [`ARM_SCOPE`] or the dev scope,
/// and app-only tokens accepted without app roles.
pub fn dev_identity_config(issuer: &DevIssuer, issuer_base_url: &str) -> IdentityConfig {
    let mut config = issuer.identity_config(issuer_base_url);
    config.audiences = ARM_AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
    config.required_scopes = vec![ARM_SCOPE.to_owned(), DEV_SCOPE.to_owned()];
    config.required_app_roles.clear();
    // ARM authorizes by RBAC role assignments, not app roles: a service
    // principal's token for it carries none.
    config.allow_app_tokens_without_roles = true;
    config
}

/// The identity settings for Azure Monitor tokens (the Logs Ingestion
/// API): `arm`'s (as [`dev_identity_config`] makes them) with the
/// audiences [`MONITOR_AUDIENCES`]. The simulator derives them itself.
pub fn monitor_identity_config(arm: &IdentityConfig) -> IdentityConfig {
    let mut config = arm.clone();
    config.audiences = MONITOR_AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
    config
}

/// The identity settings for Key Vault tokens: `arm`'s (as
/// [`dev_identity_config`] makes them) with the audiences
/// [`KEY_VAULT_AUDIENCES`]. The simulator derives them itself.
pub fn vault_identity_config(arm: &IdentityConfig) -> IdentityConfig {
    let mut config = arm.clone();
    config.audiences = KEY_VAULT_AUDIENCES
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    config
}

/// A kind of request the simulator received, and how often: in
/// [`Simulator::calls`] by route (`path` a pattern such as
/// `/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}`),
/// in [`Simulator::unserved`] as sent (`path` the request's own).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SimCall {
    pub method: String,
    pub path: String,
    pub api_version: String,
    /// Who asked: the token's app (client) id for an application, its
    /// object id for a user (as the activity log's `caller`).
    pub caller: String,
    pub count: u64,
}

/// What the simulator was asked since it started.
#[derive(Debug, Default)]
struct Ledger {
    calls: Vec<SimCall>,
    unserved: Vec<SimCall>,
}

impl Ledger {
    fn note(list: &mut Vec<SimCall>, asked: SimCall) {
        match list.iter_mut().find(|c| {
            c.method == asked.method
                && c.path == asked.path
                && c.api_version == asked.api_version
                && c.caller == asked.caller
        }) {
            Some(call) => call.count += 1,
            None => list.push(asked),
        }
    }
}

/// Why the simulator did not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("ARM simulator: {0}")]
    Config(String),
    #[error("ARM simulator: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ARM simulator database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "ARM simulator database {path}: schema version {version} is not supported (expected {}); delete the file to start over",
        state::SCHEMA_VERSION
    )]
    Schema { path: PathBuf, version: i64 },
    #[error("ARM simulator: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("ARM simulator: {0}")]
    Task(String),
}

/// A running simulator. Stop it with [`shutdown`](Self::shutdown);
/// dropping it stops the server too, without waiting.
pub struct Simulator {
    base_url: String,
    local_addr: SocketAddr,
    throttle: Arc<AtomicU32>,
    ledger: Arc<Mutex<Ledger>>,
    ingestion: Arc<Mutex<ingestion::Ingestion>>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What every request handler shares.
#[derive(Clone)]
struct Shared {
    db: Arc<Mutex<Connection>>,
    auth: Arc<Authenticator>,
    /// Validates Key Vault tokens (`aud` `https://vault.azure.net`).
    vault_auth: Arc<Authenticator>,
    /// Validates Azure Monitor tokens (`aud` `https://monitor.azure.com`)
    /// for the Logs Ingestion API.
    monitor_auth: Arc<Authenticator>,
    /// Data collection rules and what was ingested through them.
    ingestion: Arc<Mutex<ingestion::Ingestion>>,
    ledger: Arc<Mutex<Ledger>>,
    throttle: Arc<AtomicU32>,
    settings: Arc<Settings>,
    base_url: String,
    /// `authorization_uri` of `WWW-Authenticate` challenges.
    authorization_uri: String,
}

impl Shared {
    /// Records a request that reached routing: served (`path` its route's
    /// pattern) or not (`path` as sent).
    fn note(&self, method: &str, path: &str, api_version: &str, caller: &str, unserved: bool) {
        let asked = SimCall {
            method: method.to_owned(),
            path: path.to_owned(),
            api_version: api_version.to_owned(),
            caller: caller.to_owned(),
            count: 1,
        };
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if unserved {
            info!(%method, %path, %api_version, %caller, "ARM simulator: request not served");
            Ledger::note(&mut ledger.unserved, asked);
        } else {
            Ledger::note(&mut ledger.calls, asked);
        }
    }
}

impl Simulator {
    /// Opens (creating and seeding if new) the database, binds the
    /// listener and serves in the background.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        Self::start_on(config, None).await
    }

    /// Like [`Simulator::start`], on a listener the caller bound
    /// ([`SimConfig::listen`] is not used).
    pub async fn serve(
        config: SimConfig,
        listener: tokio::net::TcpListener,
    ) -> Result<Simulator, SimError> {
        Self::start_on(config, Some(listener)).await
    }

    async fn start_on(
        config: SimConfig,
        listener: Option<tokio::net::TcpListener>,
    ) -> Result<Simulator, SimError> {
        config.identity.validate().map_err(SimError::Config)?;
        let tenant = config
            .identity
            .tenants
            .first()
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_else(|| DEV_TENANT.to_owned());
        let db_path = config.db.clone();
        let seed_tenant = tenant.clone();
        let conn = tokio::task::spawn_blocking(move || state::open(&db_path, &seed_tenant))
            .await
            .map_err(|e| SimError::Task(format!("opening the database: {e}")))??;
        let listener = match listener {
            Some(listener) => listener,
            None => tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|source| SimError::Listen {
                    addr: config.listen,
                    source,
                })?,
        };
        let mut local_addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;
        if local_addr.ip().is_unspecified() {
            local_addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let base_url = format!("http://{local_addr}");
        let authorization_uri = format!(
            "{}/{tenant}",
            config.identity.authority.trim_end_matches('/')
        );
        let throttle = Arc::new(AtomicU32::new(0));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let ingestion = Arc::new(Mutex::new(ingestion::Ingestion::seeded()));
        let shared = Shared {
            db: Arc::new(Mutex::new(conn)),
            vault_auth: Authenticator::start(
                vault_identity_config(&config.identity),
                reqwest::Client::new(),
            ),
            monitor_auth: Authenticator::start(
                monitor_identity_config(&config.identity),
                reqwest::Client::new(),
            ),
            ingestion: ingestion.clone(),
            auth: Authenticator::start(config.identity, reqwest::Client::new()),
            ledger: ledger.clone(),
            throttle: throttle.clone(),
            settings: Arc::new(Settings {
                lro_polls: config.lro_polls,
                retry_after_secs: config.retry_after_secs,
                tenant_id: tenant,
            }),
            base_url: base_url.clone(),
            authorization_uri,
        };
        let app = Router::new()
            .route("/_sim/throttle", post(sim_throttle))
            .route("/_sim/requests", get(sim_requests))
            .route("/_sim/calls", get(sim_calls))
            .route("/_sim/unserved", get(sim_unserved))
            .route("/_sim/ingested", get(sim_ingested))
            .fallback(arm)
            .with_state(shared);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let result = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
            if let Err(e) = result {
                error!(error = %e, "ARM simulator: server failed");
            }
        });
        info!(base_url = %base_url, db = %config.db.display(), "ARM simulator listening");
        Ok(Simulator {
            base_url,
            local_addr,
            throttle,
            ledger,
            ingestion,
            stop: Some(stop),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT`: ARM's `https://management.azure.com`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next `requests` ARM requests get `429 TooManyRequests` with
    /// `Retry-After` (replaces any count still pending; 0 stops throttling).
    pub fn throttle(&self, requests: u32) {
        self.throttle.store(requests, Ordering::SeqCst);
    }

    /// The requests served since start, by method, route pattern and
    /// `api-version`, in the order first seen (also `GET /_sim/calls`).
    pub fn calls(&self) -> Vec<SimCall> {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .clone()
    }

    /// The requests the simulator has no route for, since start, by method,
    /// path and `api-version`, in the order first seen (also
    /// `GET /_sim/unserved`). A test that drives a client through the
    /// simulator can assert this is empty.
    pub fn unserved(&self) -> Vec<SimCall> {
        self.ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unserved
            .clone()
    }

    /// Declares a data collection rule with immutable id `immutable_id`
    /// and `streams` for the Logs Ingestion API (replacing one of the same
    /// id). The demo rule [`DEV_DCR_IMMUTABLE_ID`] is there from the start.
    pub fn add_data_collection_rule(&self, immutable_id: &str, streams: &[&str]) {
        self.ingestion
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add_rule(immutable_id, streams);
    }

    /// The next `requests` Logs Ingestion requests get `503
    /// ServiceUnavailable` with `Retry-After` (replaces any count still
    /// pending; 0 stops failing).
    pub fn fail_ingestion(&self, requests: u32) {
        self.ingestion
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_next = requests;
    }

    /// Every batch the Logs Ingestion API took, in the order taken (also
    /// `GET /_sim/ingested`).
    pub fn ingested(&self) -> Vec<Ingested> {
        self.ingestion
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ingested
            .clone()
    }

    /// Stops accepting requests and waits (up to 5 s) for those in flight.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// Every ARM request.
async fn arm(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(vault) = header(&headers, HOST.as_str())
        .as_deref()
        .and_then(keyvault::vault_of_host)
    {
        return keyvault::serve(&shared, peer, vault, method, &uri, &headers, body).await;
    }
    if ingestion::is_ingestion_path(uri.path()) {
        return ingestion::serve(&shared, peer, method, &uri, &headers, body).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = header(&headers, "x-ms-correlation-request-id")
        .filter(|v| is_token_safe(v))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client_request_id = header(&headers, "x-ms-client-request-id").filter(|v| is_token_safe(v));
    let write = !matches!(method, Method::GET | Method::HEAD);
    let response = handle(
        &shared,
        peer,
        method,
        &uri,
        &headers,
        body,
        &correlation_id,
        client_request_id.clone(),
    )
    .await;
    debug!(status = response.status.as_u16(), path = %uri.path(), "ARM simulator request");
    http_response(
        response,
        &request_id,
        &correlation_id,
        client_request_id.as_deref(),
        write,
    )
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    correlation_id: &str,
    client_request_id: Option<String>,
) -> ArmResponse {
    let retry_after = shared.settings.retry_after_secs;
    let throttled = shared
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if throttled {
        let kind = if matches!(method, Method::GET | Method::HEAD) {
            "read"
        } else {
            "write"
        };
        return ArmResponse::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!(
                "Number of {kind} requests exceeded the limit (simulated throttling). \
                 Please try again after '{retry_after}' seconds."
            ),
        )
        .with_header("retry-after", retry_after.to_string());
    }

    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = match shared
        .auth
        .authenticate(authorization, Some(peer.ip()))
        .await
    {
        Ok(principal) => principal,
        Err(e) => return auth_failure(shared, &e, headers.contains_key(AUTHORIZATION)),
    };

    let query = parse_query(uri.query().unwrap_or_default());
    let api_version = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(api_version) = api_version else {
        return ArmResponse::error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let mut segments = Vec::new();
    for raw in uri.path().split('/').filter(|s| !s.is_empty()) {
        match percent_decode(raw) {
            Some(segment) => segments.push(segment),
            None => {
                return ArmResponse::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestUri",
                    "The request URI path is not valid percent-encoded UTF-8.",
                );
            }
        }
    }
    let base_url = header(headers, HOST.as_str())
        .filter(|host| is_token_safe(host) && !host.contains('/'))
        .map(|host| format!("http://{host}"))
        .unwrap_or_else(|| shared.base_url.clone());
    let request = ArmRequest {
        method,
        path: uri.path().to_owned(),
        segments,
        query,
        body,
        base_url,
        api_version,
        caller: Caller {
            oid: principal.oid.clone(),
            tid: principal.tid.clone(),
            display_name: principal.display_name.clone(),
            client_app: principal.client_app.clone(),
            app: principal.kind == PrincipalKind::Application,
        },
        correlation_id: correlation_id.to_owned(),
        client_request_id,
        client_ip: Some(peer.ip().to_string()),
        now: chrono::Utc::now(),
    };
    let db = shared.db.clone();
    let settings = shared.settings.clone();
    let pattern = routes::path_pattern(&request.segments);
    let (method, path, api_version, caller) = (
        request.method.to_string(),
        request.path.clone(),
        request.api_version.clone(),
        request.caller.name(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conn = db.lock().unwrap_or_else(|e| e.into_inner());
        routes::dispatch(&mut conn, &settings, &request)
    })
    .await;
    match outcome {
        Ok(response) => {
            let path = if response.unserved { &path } else { &pattern };
            shared.note(&method, path, &api_version, &caller, response.unserved);
            response
        }
        Err(e) => {
            error!(error = %e, "ARM simulator: request task failed");
            ArmResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The ARM simulator failed to handle the request; see its log.",
            )
        }
    }
}

/// `401` (or `403`/`503`) with ARM's codes and challenge.
fn auth_failure(shared: &Shared, error: &AuthError, header_sent: bool) -> ArmResponse {
    let (status, code, message) = match error {
        AuthError::Missing(_) if !header_sent => (
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".to_owned(),
        ),
        AuthError::Missing(_) => (
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format."
                .to_owned(),
        ),
        AuthError::Expired => (
            StatusCode::UNAUTHORIZED,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.".to_owned(),
        ),
        AuthError::BadAudience(detail) => (
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource ({detail}). \
                 It should exactly match with one of the allowed audiences '{}'.",
                shared.auth.config().audiences.join("','")
            ),
        ),
        AuthError::BadIssuer(_) | AuthError::BadTenant(_) => (
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenTenant",
            format!("The access token is from the wrong issuer: {error}."),
        ),
        AuthError::ClientNotAllowed(_)
        | AuthError::InsufficientScope(_)
        | AuthError::GroupsOverage => (
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            format!("The client does not have authorization to perform this request: {error}."),
        ),
        AuthError::KeysUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("Tokens cannot be validated right now: {error}."),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            format!("The access token is invalid: {error}."),
        ),
    };
    let response = ArmResponse::error(status, code, &message);
    match status {
        StatusCode::UNAUTHORIZED => {
            let description = if header_sent {
                message.clone()
            } else {
                "The authentication failed because of missing 'Authorization' header.".to_owned()
            };
            let description: String = description
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect();
            response.with_header(
                "www-authenticate",
                format!(
                    "Bearer authorization_uri=\"{}\", error=\"invalid_token\", error_description=\"{description}\"",
                    shared.authorization_uri
                ),
            )
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            response.with_header("retry-after", shared.settings.retry_after_secs.to_string())
        }
        _ => response,
    }
}

fn http_response(
    response: ArmResponse,
    request_id: &str,
    correlation_id: &str,
    client_request_id: Option<&str>,
    write: bool,
) -> Response {
    let routing = format!(
        "SIMULATOR:{}:{request_id}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let rate_limit = if write {
        ("x-ms-ratelimit-remaining-subscription-writes", "1199")
    } else {
        ("x-ms-ratelimit-remaining-subscription-reads", "11999")
    };
    azure_http_response(
        response,
        request_id,
        client_request_id,
        &[
            ("x-ms-correlation-request-id", correlation_id),
            ("x-ms-routing-request-id", &routing),
            rate_limit,
        ],
    )
}

/// `response` as HTTP with the headers every Azure answer carries (no
/// caching, `x-ms-request-id`, the client's `x-ms-client-request-id`
/// echoed), then the service's own `extra`, then the response's headers.
pub(crate) fn azure_http_response(
    response: ArmResponse,
    request_id: &str,
    client_request_id: Option<&str>,
    extra: &[(&'static str, &str)],
) -> Response {
    let mut http = match &response.body {
        Some(body) => {
            let mut http = Response::new(Body::from(body.to_string()));
            http.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            http
        }
        None => Response::new(Body::empty()),
    };
    *http.status_mut() = response.status;
    let headers = http.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(name, value);
        }
    };
    set("cache-control", "no-cache");
    set("pragma", "no-cache");
    set("expires", "-1");
    set("x-ms-request-id", request_id);
    if let Some(id) = client_request_id {
        set("x-ms-client-request-id", id);
    }
    for (name, value) in extra {
        set(name, value);
    }
    for (name, value) in &response.headers {
        set(name, value);
    }
    http
}

/// `POST /_sim/throttle?requests=N`.
async fn sim_throttle(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Response {
    if !peer.ip().is_loopback() {
        return control_forbidden();
    }
    let query = parse_query(uri.query().unwrap_or_default());
    let requests = query
        .iter()
        .find(|(k, _)| k == "requests")
        .and_then(|(_, v)| v.parse::<u32>().ok());
    let Some(requests) = requests else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(routes::error_body(
                "InvalidRequestUri",
                "Use POST /_sim/throttle?requests=N with N a non-negative integer.",
            )),
        )
            .into_response();
    };
    shared.throttle.store(requests, Ordering::SeqCst);
    info!(requests, "ARM simulator: throttling the next requests");
    axum::Json(json!({
        "throttledRequests": requests,
        "retryAfterSeconds": shared.settings.retry_after_secs,
    }))
    .into_response()
}

/// `GET /_sim/requests?limit=N`: the last ARM requests, newest first.
async fn sim_requests(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
) -> Response {
    if !peer.ip().is_loopback() {
        return control_forbidden();
    }
    let limit = parse_query(uri.query().unwrap_or_default())
        .iter()
        .find(|(k, _)| k == "limit")
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .unwrap_or(50)
        .min(1000);
    let db = shared.db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let conn = db.lock().unwrap_or_else(|e| e.into_inner());
        state::recent_requests(&conn, limit)
    })
    .await;
    match rows {
        Ok(Ok(rows)) => {
            let value: Vec<_> = rows
                .into_iter()
                .map(|r| {
                    json!({
                        "time": r.time,
                        "method": r.method,
                        "path": r.path,
                        "apiVersion": r.api_version,
                        "status": r.status,
                        "caller": r.caller,
                        "correlationId": r.correlation_id,
                    })
                })
                .collect();
            axum::Json(json!({ "value": value })).into_response()
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(routes::error_body(
                "InternalServerError",
                "The request log could not be read.",
            )),
        )
            .into_response(),
    }
}

/// `GET /_sim/calls`: [`Simulator::calls`] as a JSON array.
async fn sim_calls(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() {
        return control_forbidden();
    }
    let calls = shared
        .ledger
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .calls
        .clone();
    axum::Json(calls).into_response()
}

/// `GET /_sim/ingested`: [`Simulator::ingested`] as a JSON array.
async fn sim_ingested(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() {
        return control_forbidden();
    }
    let ingested = shared
        .ingestion
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ingested
        .clone();
    axum::Json(ingested).into_response()
}

/// `GET /_sim/unserved`: [`Simulator::unserved`] as a JSON array.
async fn sim_unserved(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() {
        return control_forbidden();
    }
    let unserved = shared
        .ledger
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unserved
        .clone();
    axum::Json(unserved).into_response()
}

fn control_forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(routes::error_body(
            "Forbidden",
            "The simulator's /_sim endpoints only answer loopback clients.",
        )),
    )
        .into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Visible ASCII, at most 200 characters: safe to echo in a header.
fn is_token_safe(value: &str) -> bool {
    value.len() <= 200 && value.bytes().all(|b| b.is_ascii_graphic())
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                percent_decode(&s).unwrap_or(s)
            };
            (decode(key), decode(value))
        })
        .collect()
}

/// `%XX` escapes decoded; `None` when the result is not UTF-8. A `%` not
/// followed by two hex digits is kept as is.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}
