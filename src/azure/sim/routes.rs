//! ARM semantics: one authenticated request with an `api-version` in, one
//! [`ArmResponse`] out. Everything here is synchronous and runs inside one
//! SQLite transaction (on a blocking thread): a request either applies
//! completely or, on an error response, not at all.
//!
//! Paths are matched case-insensitively, segment by segment, and
//! percent-decoded; ids are answered in canonical casing. Extension
//! resources (`…/providers/Microsoft.Authorization/roleAssignments`,
//! `…/providers/Microsoft.Resources/tags/default`,
//! `…/providers/Microsoft.Insights/eventtypes/…`) are recognised at the
//! last `providers` segment that introduces them, whatever scope precedes.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use serde_json::{Map, Value, json};
use tracing::{error, warn};

use sha2::{Digest, Sha256};

use super::filter::{self, Clause};
use super::graph;
use super::seed::{
    BUILT_IN_ROLES, BuiltInRole, LOCATIONS, TENANT_DEFAULT_DOMAIN, TENANT_DISPLAY_NAME,
    TENANT_DOMAINS, disk_properties,
};
use super::state::{
    self, DiagnosticSetting, Operation, RequestLog, Resource, ResourceGroup, RoleAssignment,
    Subscription,
};
use crate::azure::id::{ArmId, ScopeKind};

/// Type of virtual machines, the one type with power operations and LROs.
const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
/// Type of storage accounts (name rules are checked on PUT).
const STORAGE_TYPE: &str = "Microsoft.Storage/storageAccounts";
/// Type of VM scale sets (instances are derived from `sku.capacity`).
const VMSS_TYPE: &str = "Microsoft.Compute/virtualMachineScaleSets";
/// Type of managed disks (`managedBy` the VM they are attached to).
const DISK_TYPE: &str = "Microsoft.Compute/disks";
/// Type of key vaults (secrets live in their data plane).
pub(crate) const VAULT_TYPE: &str = "Microsoft.KeyVault/vaults";
/// Types whose `DELETE` is a long-running operation, as in Azure.
const ASYNC_DELETE_TYPES: [&str; 3] = [VM_TYPE, VMSS_TYPE, DISK_TYPE];
/// The api-versions Resource Graph accepts for `resources`.
const RESOURCE_GRAPH_API_VERSIONS: [&str; 7] = [
    "2024-04-01",
    "2022-10-01",
    "2021-06-01-preview",
    "2021-03-01",
    "2020-04-01-preview",
    "2019-04-01",
    "2018-09-01-preview",
];
/// How many rows a Resource Graph page holds unless `$top` says otherwise.
const RESOURCE_GRAPH_PAGE: usize = 100;
/// Resource types the simulator stores (generic GET/PUT/PATCH/DELETE and
/// lists); canonical casing.
const KNOWN_TYPES: [&str; 12] = [
    VM_TYPE,
    "Microsoft.Compute/virtualMachines/extensions",
    VMSS_TYPE,
    DISK_TYPE,
    STORAGE_TYPE,
    "Microsoft.KeyVault/vaults",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworks/subnets",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/publicIPAddresses",
    "Microsoft.Sql/servers",
];

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub lro_polls: u32,
    pub retry_after_secs: u64,
    /// `tenantId` of subscriptions and activity-log events.
    pub tenant_id: String,
}

/// Who called, from the validated token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub oid: String,
    pub tid: String,
    pub display_name: String,
    pub client_app: Option<String>,
    pub app: bool,
}

impl Caller {
    /// The activity log's `caller`: a user's object id, an application's
    /// app (client) id.
    pub fn name(&self) -> String {
        match (&self.client_app, self.app) {
            (Some(app), true) => app.clone(),
            _ => self.oid.clone(),
        }
    }

    fn claims(&self) -> Value {
        let mut claims = json!({
            "http://schemas.microsoft.com/identity/claims/objectidentifier": self.oid,
            "http://schemas.microsoft.com/identity/claims/tenantid": self.tid,
            "name": self.display_name,
            "idtyp": if self.app { "app" } else { "user" },
        });
        if let Some(app) = &self.client_app {
            claims["appid"] = json!(app);
        }
        claims
    }
}

/// One ARM request, authenticated and with an `api-version`.
#[derive(Debug, Clone)]
pub(crate) struct ArmRequest {
    pub method: Method,
    /// The raw (still percent-encoded) path, for logs and messages.
    pub path: String,
    /// The path's non-empty segments, percent-decoded.
    pub segments: Vec<String>,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    /// `http://host:port` the client used, for operation URLs.
    pub base_url: String,
    pub api_version: String,
    pub caller: Caller,
    pub correlation_id: String,
    pub client_request_id: Option<String>,
    pub client_ip: Option<String>,
    pub now: DateTime<Utc>,
}

impl ArmRequest {
    /// A query parameter, by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn time(&self) -> String {
        timestamp(self.now)
    }
}

/// What to answer; `mod.rs` adds the request-id headers.
#[derive(Debug, Clone)]
pub(crate) struct ArmResponse {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// The simulator has no route for the request (recorded in
    /// `/_sim/unserved`).
    pub unserved: bool,
}

impl ArmResponse {
    pub(crate) fn new(status: StatusCode, body: Option<Value>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
            unserved: false,
        }
    }

    fn ok(body: Value) -> Self {
        Self::new(StatusCode::OK, Some(body))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// An ARM error envelope.
    pub fn error(status: StatusCode, code: &str, message: &str) -> Self {
        Self::new(status, Some(error_body(code, message)))
    }
}

/// `{"error":{"code":…,"message":…}}`.
pub(crate) fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

/// Why a request failed: an ARM error to answer, or a database failure
/// (answered `500`).
#[derive(Debug)]
enum Failure {
    Arm(ArmResponse),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

type Outcome<T = ArmResponse> = Result<T, Failure>;

fn fail(status: StatusCode, code: &str, message: impl AsRef<str>) -> Failure {
    Failure::Arm(ArmResponse::error(status, code, message.as_ref()))
}

fn bad_request(code: &str, message: impl AsRef<str>) -> Failure {
    fail(StatusCode::BAD_REQUEST, code, message)
}

/// Marks an answer as one for a request the simulator does not serve.
fn unserved(failure: Failure) -> Failure {
    match failure {
        Failure::Arm(mut response) => {
            response.unserved = true;
            Failure::Arm(response)
        }
        other => other,
    }
}

/// Handles `request` in one transaction, then logs it.
pub(crate) fn dispatch(
    conn: &mut Connection,
    settings: &Settings,
    request: &ArmRequest,
) -> ArmResponse {
    let response = match run(conn, settings, request) {
        Ok(response) | Err(Failure::Arm(response)) => response,
        Err(Failure::Db(e)) => {
            error!(error = %e, path = %request.path, "ARM simulator: database error");
            ArmResponse::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The ARM simulator's database failed; see its log.",
            )
        }
    };
    let log = RequestLog {
        time: request.time(),
        method: request.method.to_string(),
        path: request.path.clone(),
        api_version: request.api_version.clone(),
        status: response.status.as_u16(),
        caller: request.caller.name(),
        correlation_id: request.correlation_id.clone(),
    };
    if let Err(e) = state::log_request(conn, &log) {
        warn!(error = %e, "ARM simulator: request not logged");
    }
    response
}

fn run(conn: &mut Connection, settings: &Settings, request: &ArmRequest) -> Outcome {
    let tx = conn.transaction()?;
    let response = Ctx {
        c: &tx,
        s: settings,
        r: request,
    }
    .route()?;
    tx.commit()?;
    Ok(response)
}

/// Extension resources recognised after a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extension {
    RoleAssignments,
    RoleDefinitions,
    Tags,
    Events,
    DiagnosticSettings,
    DiagnosticSettingsCategories,
}

/// The index of the `providers` segment that introduces an extension
/// resource, and which one (the last such segment wins).
fn extension_at(lc: &[&str]) -> Option<(usize, Extension)> {
    (2..lc.len().saturating_sub(2)).rev().find_map(|i| {
        if lc[i] != "providers" {
            return None;
        }
        let kind = match (lc[i + 1], lc[i + 2]) {
            ("microsoft.authorization", "roleassignments") => Extension::RoleAssignments,
            ("microsoft.authorization", "roledefinitions") => Extension::RoleDefinitions,
            ("microsoft.resources", "tags") => Extension::Tags,
            ("microsoft.insights", "eventtypes") => Extension::Events,
            ("microsoft.insights", "diagnosticsettings") => Extension::DiagnosticSettings,
            ("microsoft.insights", "diagnosticsettingscategories") => {
                Extension::DiagnosticSettingsCategories
            }
            _ => return None,
        };
        Some((i, kind))
    })
}

/// A scope that extension resources attach to.
#[derive(Debug, Clone)]
enum Scope {
    Subscription(Subscription),
    Group(Subscription, ResourceGroup),
    Resource(Subscription, ResourceGroup, Box<Resource>),
}

impl Scope {
    fn id(&self) -> String {
        match self {
            Scope::Subscription(s) => format!("/subscriptions/{}", s.id),
            Scope::Group(_, rg) => rg.id(),
            Scope::Resource(_, _, r) => r.id.clone(),
        }
    }

    fn subscription(&self) -> &Subscription {
        match self {
            Scope::Subscription(s) | Scope::Group(s, _) | Scope::Resource(s, _, _) => s,
        }
    }

    fn group(&self) -> Option<&ResourceGroup> {
        match self {
            Scope::Subscription(_) => None,
            Scope::Group(_, rg) | Scope::Resource(_, rg, _) => Some(rg),
        }
    }

    fn tags(&self) -> &Map<String, Value> {
        match self {
            Scope::Subscription(s) => &s.tags,
            Scope::Group(_, rg) => &rg.tags,
            Scope::Resource(_, _, r) => &r.tags,
        }
    }
}

/// What an activity-log event is about; stored with an async operation so
/// that its completion event says the same.
struct EventSpec<'a> {
    subscription: &'a str,
    resource_group: Option<&'a str>,
    resource_id: &'a str,
    resource_type: &'a str,
    operation: String,
}

struct Ctx<'a> {
    c: &'a Connection,
    s: &'a Settings,
    r: &'a ArmRequest,
}

impl Ctx<'_> {
    // -----------------------------------------------------------------------
    // Routing

    fn route(&self) -> Outcome {
        let seg = &self.r.segments;
        let lower: Vec<String> = seg.iter().map(|s| s.to_lowercase()).collect();
        let lc: Vec<&str> = lower.iter().map(String::as_str).collect();
        if let Some((at, kind)) = extension_at(&lc) {
            return self.extension(at, kind, &lc);
        }
        let m = &self.r.method;
        match lc.as_slice() {
            ["tenants"] => {
                self.allow(&[Method::GET])?;
                Ok(self.list_tenants())
            }
            ["providers", "microsoft.resourcegraph", "resources"] => {
                self.allow(&[Method::POST])?;
                self.resource_graph()
            }
            ["subscriptions"] => {
                self.allow(&[Method::GET])?;
                self.list_subscriptions()
            }
            ["subscriptions", _] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                Ok(ArmResponse::ok(self.render_subscription(&sub)))
            }
            ["subscriptions", _, "locations"] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                Ok(ArmResponse::ok(render_locations(&sub.id)))
            }
            ["subscriptions", _, "resourcegroups"] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                self.list_groups(&sub)
            }
            ["subscriptions", _, "resourcegroups", _] => {
                self.allow(&[
                    Method::GET,
                    Method::HEAD,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])?;
                let sub = self.subscription(&seg[1])?;
                match *m {
                    Method::PUT => self.put_group(&sub, &seg[3]),
                    Method::HEAD => match state::get_rg(self.c, &sub.id, &seg[3])? {
                        Some(_) => Ok(ArmResponse::new(StatusCode::NO_CONTENT, None)),
                        None => Ok(ArmResponse::new(StatusCode::NOT_FOUND, None)),
                    },
                    _ => {
                        let rg = self.group(&sub, &seg[3])?;
                        match *m {
                            Method::GET => Ok(ArmResponse::ok(render_group(&rg))),
                            Method::PATCH => self.patch_group(rg),
                            _ => self.delete_group(rg),
                        }
                    }
                }
            }
            ["subscriptions", _, "resources"] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                self.list_generic(&sub, None)
            }
            ["subscriptions", _, "resourcegroups", _, "resources"] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                let rg = self.group(&sub, &seg[3])?;
                self.list_generic(&sub, Some(&rg))
            }
            ["subscriptions", _, "operationresults", _] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                let op = self.poll(&sub, &seg[3])?;
                Ok(self.monitor_response(&op))
            }
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.compute",
                "locations",
                _,
                "operations",
                _,
            ] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                let op = self.poll(&sub, &seg[7])?;
                if self
                    .r
                    .param("monitor")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
                {
                    Ok(self.monitor_response(&op))
                } else {
                    Ok(self.status_response(&op))
                }
            }
            ["subscriptions", _, "providers", _, _] => {
                self.allow(&[Method::GET])?;
                let sub = self.subscription(&seg[1])?;
                let ty = self.canonical_type(&seg[3], &[seg[4].as_str()])?;
                self.list_of_type(&sub, None, ty)
            }
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                _,
                _,
                ..,
            ] => {
                let sub = self.subscription(&seg[1])?;
                let rg = self.group(&sub, &seg[3])?;
                self.provider(&sub, &rg, &seg[5], &seg[6..])
            }
            _ => Err(self.no_route()),
        }
    }

    fn allow(&self, methods: &[Method]) -> Outcome<()> {
        if methods.contains(&self.r.method) {
            return Ok(());
        }
        let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
        // A method the simulator does not handle on a path it knows may be
        // one Azure serves: recorded as unserved.
        Err(unserved(Failure::Arm(
            ArmResponse::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!(
                    "The requested resource does not support http method '{}'. The ARM simulator \
                     does not serve '{} {}' with API version '{}'.",
                    self.r.method, self.r.method, self.r.path, self.r.api_version
                ),
            )
            .with_header("allow", allow.join(", ")),
        )))
    }

    /// A request the simulator has no route for: ARM's answer for an
    /// unregistered provider, naming the request, and recorded as unserved.
    fn no_route(&self) -> Failure {
        unserved(fail(
            StatusCode::NOT_FOUND,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for '{} {}' and API version '{}'. \
                 The ARM simulator serves tenants, subscriptions, resource groups, resources \
                 (Microsoft.Compute, Microsoft.Storage, Microsoft.KeyVault, Microsoft.Network, \
                 Microsoft.Sql), role assignments and definitions, tags, diagnostic settings, \
                 Resource Graph and the activity log.",
                self.r.method, self.r.path, self.r.api_version
            ),
        ))
    }

    fn extension(&self, at: usize, kind: Extension, lc: &[&str]) -> Outcome {
        let seg = &self.r.segments;
        let scope = self.resolve_scope(&seg[..at])?;
        let tail = &seg[at + 3..];
        match (kind, tail.len()) {
            (Extension::RoleAssignments, 0) => {
                self.allow(&[Method::GET])?;
                self.list_role_assignments(&scope)
            }
            (Extension::RoleAssignments, 1) => {
                self.allow(&[Method::GET, Method::PUT, Method::DELETE])?;
                match self.r.method {
                    Method::GET => self.get_role_assignment(&scope, &tail[0]),
                    Method::PUT => self.put_role_assignment(&scope, &tail[0]),
                    _ => self.delete_role_assignment(&scope, &tail[0]),
                }
            }
            (Extension::RoleDefinitions, 0) => {
                self.allow(&[Method::GET])?;
                self.list_role_definitions(&scope)
            }
            (Extension::RoleDefinitions, 1) => {
                self.allow(&[Method::GET])?;
                self.get_role_definition(&scope, &tail[0])
            }
            (Extension::Tags, 1) => {
                self.allow(&[Method::GET, Method::PUT, Method::PATCH, Method::DELETE])?;
                self.tags(scope, &tail[0])
            }
            (Extension::Events, 2)
                if lc[at + 3..] == ["management", "values"]
                    && matches!(scope, Scope::Subscription(_)) =>
            {
                self.allow(&[Method::GET])?;
                self.list_events(scope.subscription())
            }
            (Extension::DiagnosticSettings, 0 | 1)
                if matches!(scope, Scope::Resource(..) | Scope::Subscription(_)) =>
            {
                match tail.first() {
                    None => {
                        self.allow(&[Method::GET])?;
                        self.list_diagnostic_settings(&scope)
                    }
                    Some(name) => {
                        self.allow(&[Method::GET, Method::PUT, Method::DELETE])?;
                        match self.r.method {
                            Method::GET => self.get_diagnostic_setting(&scope, name),
                            Method::PUT => self.put_diagnostic_setting(&scope, name),
                            _ => self.delete_diagnostic_setting(&scope, name),
                        }
                    }
                }
            }
            (Extension::DiagnosticSettingsCategories, 0 | 1)
                if matches!(scope, Scope::Resource(..)) =>
            {
                self.allow(&[Method::GET])?;
                self.diagnostic_categories(&scope, tail.first().map(String::as_str))
            }
            _ => Err(self.no_route()),
        }
    }

    /// A subscription, resource group or resource path.
    fn resolve_scope(&self, seg: &[String]) -> Outcome<Scope> {
        let id = ArmId::parse(&format!("/{}", seg.join("/"))).map_err(|_| self.no_route())?;
        // The id's segments in their casing: subscription, group, provider chain.
        match id.kind() {
            ScopeKind::Subscription => Ok(Scope::Subscription(self.subscription(&seg[1])?)),
            ScopeKind::ResourceGroup => {
                let sub = self.subscription(&seg[1])?;
                let rg = self.group(&sub, &seg[3])?;
                Ok(Scope::Group(sub, rg))
            }
            ScopeKind::Resource => {
                // Resources of a group only (not extension resources).
                let path = id
                    .provider_path()
                    .filter(|p| p.parent == ScopeKind::ResourceGroup)
                    .ok_or_else(|| self.no_route())?;
                let sub = self.subscription(&seg[1])?;
                let rg = self.group(&sub, &seg[3])?;
                let ty = self.canonical_type(path.namespace, &path.types)?;
                let id = canonical_id(&sub.id, &rg.name, ty, &path.names);
                match state::get_resource(self.c, &id)? {
                    Some(resource) => Ok(Scope::Resource(sub, rg, Box::new(resource))),
                    None => Err(resource_not_found(&rg.name, path.namespace, &seg[6..])),
                }
            }
            ScopeKind::Tenant | ScopeKind::ManagementGroup => Err(self.no_route()),
        }
    }

    /// The `{namespace}/{type}[/{child type}…]` of a request, in canonical
    /// casing, or the ARM error for an unknown namespace or type.
    fn canonical_type(&self, namespace: &str, types: &[&str]) -> Outcome<&'static str> {
        let wanted = format!("{namespace}/{}", types.join("/"));
        if let Some(ty) = KNOWN_TYPES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(&wanted))
        {
            return Ok(ty);
        }
        let namespace_known = KNOWN_TYPES.iter().any(|known| {
            known
                .split('/')
                .next()
                .is_some_and(|ns| ns.eq_ignore_ascii_case(namespace))
        });
        if namespace_known {
            Err(unserved(bad_request(
                "InvalidResourceType",
                format!(
                    "The resource type '{}' could not be found in the namespace '{namespace}' for api version '{}'. \
                     The ARM simulator does not serve '{} {}'.",
                    types.join("/"),
                    self.r.api_version,
                    self.r.method,
                    self.r.path
                ),
            )))
        } else {
            Err(unserved(fail(
                StatusCode::NOT_FOUND,
                "NoRegisteredProviderFound",
                format!(
                    "No registered resource provider found for namespace '{namespace}' and API version '{}' \
                     ('{} {}'). The ARM simulator serves: Microsoft.Compute, Microsoft.Storage, \
                     Microsoft.KeyVault, Microsoft.Network, Microsoft.Sql, Microsoft.Authorization, \
                     Microsoft.Resources, Microsoft.Insights, Microsoft.ResourceGraph.",
                    self.r.api_version, self.r.method, self.r.path
                ),
            )))
        }
    }

    fn subscription(&self, id: &str) -> Outcome<Subscription> {
        if !is_guid(id) {
            return Err(bad_request(
                "InvalidSubscriptionId",
                format!("The provided subscription identifier '{id}' is malformed or invalid."),
            ));
        }
        state::get_subscription(self.c, id)?.ok_or_else(|| {
            fail(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{id}' could not be found."),
            )
        })
    }

    fn group(&self, sub: &Subscription, name: &str) -> Outcome<ResourceGroup> {
        state::get_rg(self.c, &sub.id, name)?.ok_or_else(|| group_not_found(name))
    }

    /// Refuses writes under a resource group that is being deleted.
    fn writable(&self, rg: &ResourceGroup) -> Outcome<()> {
        if rg.deleting() {
            return Err(fail(
                StatusCode::CONFLICT,
                "ResourceGroupBeingDeleted",
                format!(
                    "The resource group '{}' is in deprovisioning state and cannot perform this operation.",
                    rg.name
                ),
            ));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Request helpers

    fn body_object(&self) -> Outcome<Map<String, Value>> {
        if self.r.body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad_request(
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: the request body is empty.",
            ));
        }
        let value: Value = serde_json::from_slice(&self.r.body).map_err(|e| {
            bad_request(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })?;
        match value {
            Value::Object(map) => Ok(map),
            _ => Err(bad_request(
                "InvalidRequestFormat",
                "Cannot deserialize the request content: a JSON object is expected.",
            )),
        }
    }

    /// `$filter`, parsed (empty when absent).
    fn filter(&self) -> Outcome<Vec<Clause>> {
        match self.r.param("$filter") {
            None => Ok(Vec::new()),
            Some(raw) if raw.trim().is_empty() => Ok(Vec::new()),
            Some(raw) => {
                filter::parse(raw).map_err(|e| bad_request("InvalidFilterInQueryString", e))
            }
        }
    }

    fn unsupported_clause(&self, clause: &Clause) -> Failure {
        bad_request(
            "InvalidFilterInQueryString",
            format!(
                "The $filter clause {clause:?} is not supported by this operation (filter: '{}').",
                self.r.param("$filter").unwrap_or_default()
            ),
        )
    }

    fn top(&self) -> Outcome<Option<usize>> {
        match self.r.param("$top") {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                bad_request(
                    "InvalidTopInQueryString",
                    format!("The value '{v}' of $top is not a valid integer."),
                )
            }),
        }
    }

    fn expand_has(&self, what: &str) -> bool {
        self.r.param("$expand").is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(what))
        })
    }

    /// A location name (display names accepted), normalised.
    fn location(&self, raw: &str, code: &str) -> Outcome<String> {
        let normalized: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_lowercase();
        if LOCATIONS.iter().any(|(name, _, _)| *name == normalized) {
            return Ok(normalized);
        }
        let available: Vec<&str> = LOCATIONS.iter().map(|(name, _, _)| *name).collect();
        Err(bad_request(
            code,
            format!(
                "The provided location '{raw}' is not available. List of available regions is '{}'.",
                available.join(",")
            ),
        ))
    }

    fn api_version_query(&self) -> String {
        format!("api-version={}", encode_query_value(&self.r.api_version))
    }

    // -----------------------------------------------------------------------
    // Subscriptions and resource groups

    fn render_subscription(&self, s: &Subscription) -> Value {
        let mut doc = json!({
            "id": format!("/subscriptions/{}", s.id),
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": s.id,
            "tenantId": self.s.tenant_id,
            "displayName": s.display_name,
            "state": s.state,
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
        });
        if !s.tags.is_empty() {
            doc["tags"] = Value::Object(s.tags.clone());
        }
        doc
    }

    fn list_subscriptions(&self) -> Outcome {
        let value: Vec<Value> = state::list_subscriptions(self.c)?
            .iter()
            .map(|s| self.render_subscription(s))
            .collect();
        Ok(ArmResponse::ok(json!({
            "value": value,
            "count": { "type": "Total", "value": value.len() },
        })))
    }

    fn list_groups(&self, sub: &Subscription) -> Outcome {
        let mut groups = state::list_rgs(self.c, &sub.id)?;
        let (tag_name, tag_value) = self.tag_filter(|clause| self.unsupported_clause(clause))?;
        if let Some(name) = tag_name {
            groups.retain(|rg| tag_matches(&rg.tags, &name, tag_value.as_deref()));
        }
        if let Some(top) = self.top()? {
            groups.truncate(top);
        }
        let value: Vec<Value> = groups.iter().map(render_group).collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    /// `tagName eq 'k' [and tagValue eq 'v']`; other clauses are refused
    /// with `other`.
    fn tag_filter(
        &self,
        other: impl Fn(&Clause) -> Failure,
    ) -> Outcome<(Option<String>, Option<String>)> {
        let mut name = None;
        let mut value = None;
        for clause in self.filter()? {
            match &clause {
                Clause::Compare {
                    field,
                    op,
                    value: v,
                } if op == "eq" && field == "tagname" => name = Some(v.clone()),
                Clause::Compare {
                    field,
                    op,
                    value: v,
                } if op == "eq" && field == "tagvalue" => value = Some(v.clone()),
                _ => return Err(other(&clause)),
            }
        }
        Ok((name, value))
    }

    fn put_group(&self, sub: &Subscription, name: &str) -> Outcome {
        validate_group_name(name)?;
        let body = self.body_object()?;
        let Some(raw_location) = body.get("location").and_then(Value::as_str) else {
            return Err(bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        };
        let location = self.location(raw_location, "LocationNotAvailableForResourceGroup")?;
        let tags = match body.get("tags") {
            None | Some(Value::Null) => Map::new(),
            Some(tags) => tag_map(tags)?,
        };
        let managed_by = body
            .get("managedBy")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let existing = state::get_rg(self.c, &sub.id, name)?;
        let (rg, status) = match existing {
            Some(existing) => {
                self.writable(&existing)?;
                if existing.location != location {
                    return Err(fail(
                        StatusCode::CONFLICT,
                        "InvalidResourceGroupLocation",
                        format!(
                            "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                            existing.location
                        ),
                    ));
                }
                (
                    ResourceGroup {
                        tags,
                        managed_by,
                        ..existing
                    },
                    StatusCode::OK,
                )
            }
            None => (
                ResourceGroup {
                    subscription: sub.id.clone(),
                    name: name.to_owned(),
                    location,
                    tags,
                    managed_by,
                    state: "Succeeded".into(),
                    created: self.r.time(),
                },
                StatusCode::CREATED,
            ),
        };
        state::put_rg(self.c, &rg)?;
        let id = rg.id();
        self.record_sync(
            &EventSpec {
                subscription: &sub.id,
                resource_group: Some(&rg.name),
                resource_id: &id,
                resource_type: "Microsoft.Resources/subscriptions/resourceGroups",
                operation: "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
            },
            status,
        )?;
        Ok(ArmResponse::new(status, Some(render_group(&rg))))
    }

    fn patch_group(&self, rg: ResourceGroup) -> Outcome {
        self.writable(&rg)?;
        let body = self.body_object()?;
        if let Some(raw) = body.get("location").and_then(Value::as_str) {
            let location = self.location(raw, "LocationNotAvailableForResourceGroup")?;
            if location != rg.location {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                        rg.location
                    ),
                ));
            }
        }
        let mut rg = rg;
        if let Some(tags) = body.get("tags").filter(|t| !t.is_null()) {
            rg.tags = tag_map(tags)?;
        }
        if let Some(managed_by) = body.get("managedBy") {
            rg.managed_by = managed_by.as_str().map(str::to_owned);
        }
        state::put_rg(self.c, &rg)?;
        let id = rg.id();
        self.record_sync(
            &EventSpec {
                subscription: &rg.subscription,
                resource_group: Some(&rg.name),
                resource_id: &id,
                resource_type: "Microsoft.Resources/subscriptions/resourceGroups",
                operation: "Microsoft.Resources/subscriptions/resourceGroups/write".into(),
            },
            StatusCode::OK,
        )?;
        Ok(ArmResponse::ok(render_group(&rg)))
    }

    /// `202` with a `Location` to poll (ARM's way for resource groups);
    /// the group and everything in it go when the operation completes.
    fn delete_group(&self, rg: ResourceGroup) -> Outcome {
        let id = rg.id();
        let op = match state::pending_operation(self.c, &id, "deleteGroup")? {
            Some(op) => op,
            None => {
                let mut rg = rg.clone();
                rg.state = "Deleting".into();
                state::put_rg(self.c, &rg)?;
                self.start_operation(
                    &rg.subscription,
                    &rg.location,
                    &id,
                    json!({ "kind": "deleteGroup", "subscription": rg.subscription, "group": rg.name }),
                    &EventSpec {
                        subscription: &rg.subscription,
                        resource_group: Some(&rg.name),
                        resource_id: &id,
                        resource_type: "Microsoft.Resources/subscriptions/resourceGroups",
                        operation: "Microsoft.Resources/subscriptions/resourceGroups/delete".into(),
                    },
                )?
            }
        };
        Ok(ArmResponse::new(StatusCode::ACCEPTED, None)
            .with_header("location", self.operation_result_url(&op))
            .with_header("retry-after", self.s.retry_after_secs.to_string()))
    }

    // -----------------------------------------------------------------------
    // Resources

    /// `GET …/resources`: id, name, type, location, tags (+ kind, sku).
    fn list_generic(&self, sub: &Subscription, rg: Option<&ResourceGroup>) -> Outcome {
        let mut items = state::list_resources(self.c, &sub.id, rg.map(|rg| rg.name.as_str()))?;
        let mut tag_name = None;
        let mut tag_value = None;
        for clause in self.filter()? {
            match &clause {
                Clause::Compare { field, op, value } if op == "eq" => match field.as_str() {
                    "resourcetype" => items.retain(|r| r.r#type.eq_ignore_ascii_case(value)),
                    "name" => items.retain(|r| r.name.eq_ignore_ascii_case(value)),
                    "location" => items.retain(|r| {
                        r.location
                            .as_deref()
                            .is_some_and(|l| l.eq_ignore_ascii_case(value))
                    }),
                    "resourcegroup" => items.retain(|r| r.rg_name.eq_ignore_ascii_case(value)),
                    "tagname" => tag_name = Some(value.clone()),
                    "tagvalue" => tag_value = Some(value.clone()),
                    _ => return Err(self.unsupported_clause(&clause)),
                },
                Clause::Call { name, args }
                    if name == "substringof"
                        && args.len() == 2
                        && args[1].eq_ignore_ascii_case("name") =>
                {
                    let needle = args[0].to_lowercase();
                    items.retain(|r| r.name.to_lowercase().contains(&needle));
                }
                _ => return Err(self.unsupported_clause(&clause)),
            }
        }
        if let Some(name) = tag_name {
            items.retain(|r| tag_matches(&r.tags, &name, tag_value.as_deref()));
        }
        if let Some(top) = self.top()? {
            items.truncate(top);
        }
        let value: Vec<Value> = items
            .iter()
            .map(|r| {
                let mut doc = render_summary(r);
                if self.expand_has("provisioningState") {
                    doc["provisioningState"] = json!(r.provisioning_state);
                }
                if self.expand_has("createdTime") {
                    doc["createdTime"] = json!(r.created);
                }
                if self.expand_has("changedTime") {
                    doc["changedTime"] = json!(r.changed);
                }
                doc
            })
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    /// Full documents of one top-level type, per subscription or group.
    fn list_of_type(&self, sub: &Subscription, rg: Option<&ResourceGroup>, ty: &str) -> Outcome {
        let mut items = state::list_resources(self.c, &sub.id, rg.map(|rg| rg.name.as_str()))?;
        items.retain(|r| r.r#type == ty);
        let instance_view = ty == VM_TYPE
            && (self.expand_has("instanceView")
                || self
                    .r
                    .param("statusOnly")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")));
        let value: Vec<Value> = items
            .iter()
            .map(|r| render_resource(r, instance_view))
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    /// `…/resourceGroups/{rg}/providers/{ns}/{rest…}`.
    fn provider(
        &self,
        sub: &Subscription,
        rg: &ResourceGroup,
        namespace: &str,
        rest: &[String],
    ) -> Outcome {
        if namespace.eq_ignore_ascii_case("Microsoft.Compute")
            && rest.len() >= 3
            && rest[0].eq_ignore_ascii_case("virtualMachineScaleSets")
            && rest[2].eq_ignore_ascii_case("virtualMachines")
        {
            return self.vmss_instances(sub, rg, rest);
        }
        let types: Vec<&str> = rest.iter().step_by(2).map(String::as_str).collect();
        let names: Vec<&str> = rest.iter().skip(1).step_by(2).map(String::as_str).collect();
        if rest.len().is_multiple_of(2) {
            self.allow(&[
                Method::GET,
                Method::HEAD,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])?;
            let ty = self.canonical_type(namespace, &types)?;
            let id = canonical_id(&sub.id, &rg.name, ty, &names);
            return match self.r.method {
                Method::PUT => self.put_resource(sub, rg, ty, &id, namespace, rest),
                Method::DELETE => self.delete_resource(rg, &id),
                _ => {
                    let Some(resource) = state::get_resource(self.c, &id)? else {
                        if self.r.method == Method::HEAD {
                            return Ok(ArmResponse::new(StatusCode::NOT_FOUND, None));
                        }
                        return Err(resource_not_found(&rg.name, namespace, rest));
                    };
                    match self.r.method {
                        Method::HEAD => Ok(ArmResponse::new(StatusCode::NO_CONTENT, None)),
                        Method::PATCH => self.patch_resource(rg, resource),
                        _ => Ok(ArmResponse::ok(render_resource(
                            &resource,
                            resource.r#type == VM_TYPE && self.expand_has("instanceView"),
                        ))),
                    }
                }
            };
        }
        // Odd: a collection (GET) or an action on a resource (POST).
        let (last, parent) = rest.split_last().expect("at least one segment");
        match self.r.method {
            Method::POST if !parent.is_empty() => {
                let parent_types: Vec<&str> = types[..types.len() - 1].to_vec();
                let ty = self.canonical_type(namespace, &parent_types)?;
                let id = canonical_id(&sub.id, &rg.name, ty, &names);
                let resource = state::get_resource(self.c, &id)?
                    .ok_or_else(|| resource_not_found(&rg.name, namespace, parent))?;
                if ty == VM_TYPE {
                    return self.vm_action(rg, resource, last);
                }
                // ARM resolves actions like child types.
                self.canonical_type(namespace, &types)?;
                Err(self.no_route())
            }
            Method::GET => {
                if parent.len() == 2
                    && last.eq_ignore_ascii_case("instanceView")
                    && self.canonical_type(namespace, &types[..1])? == VM_TYPE
                {
                    let id = canonical_id(&sub.id, &rg.name, VM_TYPE, &names);
                    let vm = state::get_resource(self.c, &id)?
                        .ok_or_else(|| resource_not_found(&rg.name, namespace, parent))?;
                    return Ok(ArmResponse::ok(instance_view(&vm)));
                }
                let ty = self.canonical_type(namespace, &types)?;
                if parent.is_empty() {
                    return self.list_of_type(sub, Some(rg), ty);
                }
                let parent_types: Vec<&str> = types[..types.len() - 1].to_vec();
                let parent_ty = self.canonical_type(namespace, &parent_types)?;
                let parent_id = canonical_id(&sub.id, &rg.name, parent_ty, &names);
                if state::get_resource(self.c, &parent_id)?.is_none() {
                    return Err(resource_not_found(&rg.name, namespace, parent));
                }
                let parent_lc = parent_id.to_lowercase();
                let mut items = state::list_resources(self.c, &sub.id, Some(&rg.name))?;
                items.retain(|r| r.r#type == ty && r.parent_lc.as_deref() == Some(&parent_lc));
                let value: Vec<Value> = items.iter().map(|r| render_resource(r, false)).collect();
                Ok(ArmResponse::ok(json!({ "value": value })))
            }
            _ => {
                self.allow(&[Method::GET])?;
                Err(self.no_route())
            }
        }
    }

    fn put_resource(
        &self,
        sub: &Subscription,
        rg: &ResourceGroup,
        ty: &'static str,
        id: &str,
        namespace: &str,
        rest: &[String],
    ) -> Outcome {
        self.writable(rg)?;
        let name = rest.last().map(String::as_str).unwrap_or_default();
        validate_resource_name(ty, name)?;
        let body = self.body_object()?;
        let parent = if rest.len() > 2 {
            let parent_rest = &rest[..rest.len() - 2];
            let parent_types: Vec<&str> =
                parent_rest.iter().step_by(2).map(String::as_str).collect();
            let parent_names: Vec<&str> = parent_rest
                .iter()
                .skip(1)
                .step_by(2)
                .map(String::as_str)
                .collect();
            let parent_ty = self.canonical_type(namespace, &parent_types)?;
            let parent_id = canonical_id(&sub.id, &rg.name, parent_ty, &parent_names);
            let Some(parent) = state::get_resource(self.c, &parent_id)? else {
                return Err(fail(
                    StatusCode::NOT_FOUND,
                    "ParentResourceNotFound",
                    format!(
                        "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                        parent_names.join("/")
                    ),
                ));
            };
            Some(parent)
        } else {
            None
        };
        let existing = state::get_resource(self.c, id)?;
        let location = match (body.get("location").and_then(Value::as_str), &parent) {
            (Some(raw), _) => Some(self.location(raw, "LocationNotAvailableForResourceType")?),
            (None, Some(parent)) => parent.location.clone(),
            (None, None) => {
                return Err(bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                ));
            }
        };
        if let Some(existing) = &existing {
            if existing.provisioning_state == "Deleting" {
                return Err(fail(
                    StatusCode::CONFLICT,
                    "OperationNotAllowed",
                    format!(
                        "The resource '{name}' is being deleted; only the delete operation can be retried."
                    ),
                ));
            }
            if existing.location.is_some() && existing.location != location {
                return Err(bad_request(
                    "InvalidResourceLocation",
                    format!(
                        "The resource '{name}' already exists in location '{}' in resource group '{}'. \
                         A resource with the same name cannot be created in location '{}'. \
                         Please select a new resource name.",
                        existing.location.as_deref().unwrap_or_default(),
                        rg.name,
                        location.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let tags = match body.get("tags") {
            None | Some(Value::Null) => Map::new(),
            Some(tags) => tag_map(tags)?,
        };
        let mut properties = match body.get("properties") {
            None | Some(Value::Null) => json!({}),
            Some(Value::Object(p)) => Value::Object(p.clone()),
            Some(_) => {
                return Err(bad_request(
                    "InvalidRequestFormat",
                    "Cannot deserialize the request content: 'properties' must be an object.",
                ));
            }
        };
        if let Some(p) = properties.as_object_mut() {
            p.remove("provisioningState");
            p.remove("instanceView");
        }
        let now = self.r.time();
        let is_vm = ty == VM_TYPE;
        if is_vm {
            let size = properties
                .pointer("/hardwareProfile/vmSize")
                .and_then(Value::as_str);
            if size.is_none_or(str::is_empty) {
                return Err(bad_request(
                    "InvalidParameter",
                    "Required parameter 'hardwareProfile.vmSize' is missing (null).",
                ));
            }
            let keep = |key: &str, default: Value| {
                existing
                    .as_ref()
                    .and_then(|e| e.properties.get(key).cloned())
                    .unwrap_or(default)
            };
            properties["vmId"] = keep("vmId", json!(uuid::Uuid::new_v4().to_string()));
            properties["timeCreated"] = keep("timeCreated", json!(now));
        }
        let status = if existing.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        let resource = Resource {
            id: existing
                .as_ref()
                .map(|e| e.id.clone())
                .unwrap_or_else(|| id.to_owned()),
            subscription: sub.id.clone(),
            rg_name: rg.name.clone(),
            parent_lc: parent.as_ref().map(|p| p.id.to_lowercase()),
            r#type: ty.to_owned(),
            name: existing
                .as_ref()
                .map(|e| e.name.clone())
                .unwrap_or_else(|| name.to_owned()),
            location,
            tags,
            kind: body.get("kind").and_then(Value::as_str).map(str::to_owned),
            sku: body.get("sku").filter(|s| !s.is_null()).cloned(),
            properties,
            provisioning_state: match (is_vm, existing.is_some()) {
                (false, _) => "Succeeded".into(),
                (true, false) => "Creating".into(),
                (true, true) => "Updating".into(),
            },
            power_state: existing.as_ref().and_then(|e| e.power_state.clone()),
            created: existing
                .as_ref()
                .map(|e| e.created.clone())
                .unwrap_or_else(|| now.clone()),
            changed: now,
            managed_by: existing.as_ref().and_then(|e| e.managed_by.clone()),
        };
        state::put_resource(self.c, &resource)?;
        let spec = EventSpec {
            subscription: &sub.id,
            resource_group: Some(&rg.name),
            resource_id: &resource.id,
            resource_type: ty,
            operation: format!("{ty}/write"),
        };
        let body = render_resource(&resource, false);
        if !is_vm {
            self.record_sync(&spec, status)?;
            return Ok(ArmResponse::new(status, Some(body)));
        }
        let op = self.start_operation(
            &sub.id,
            resource.location.as_deref().unwrap_or("westeurope"),
            &resource.id,
            json!({
                "kind": "provision",
                "resource": resource.id,
                "power": if existing.is_none() { Some("running") } else { None },
            }),
            &spec,
        )?;
        Ok(ArmResponse::new(status, Some(body))
            .with_header("azure-asyncoperation", self.async_operation_url(&op))
            .with_header("retry-after", self.s.retry_after_secs.to_string()))
    }

    fn patch_resource(&self, rg: &ResourceGroup, mut resource: Resource) -> Outcome {
        self.writable(rg)?;
        let body = self.body_object()?;
        if let Some(tags) = body.get("tags").filter(|t| !t.is_null()) {
            resource.tags = tag_map(tags)?;
        }
        match body.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(patch)) => {
                if let Some(properties) = resource.properties.as_object_mut() {
                    for (key, value) in patch {
                        if key != "provisioningState" && key != "instanceView" {
                            properties.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            Some(_) => {
                return Err(bad_request(
                    "InvalidRequestFormat",
                    "Cannot deserialize the request content: 'properties' must be an object.",
                ));
            }
        }
        if let Some(sku) = body.get("sku").filter(|s| !s.is_null()) {
            resource.sku = Some(sku.clone());
        }
        resource.changed = self.r.time();
        state::put_resource(self.c, &resource)?;
        self.record_sync(
            &EventSpec {
                subscription: &resource.subscription,
                resource_group: Some(&rg.name),
                resource_id: &resource.id,
                resource_type: &resource.r#type,
                operation: format!("{}/write", resource.r#type),
            },
            StatusCode::OK,
        )?;
        Ok(ArmResponse::ok(render_resource(&resource, false)))
    }

    /// Virtual machines, scale sets and disks: `202` +
    /// `Azure-AsyncOperation`; others: `200` at once. `204` when absent; an
    /// attached disk is refused (`409`).
    fn delete_resource(&self, rg: &ResourceGroup, id: &str) -> Outcome {
        self.writable(rg)?;
        let Some(mut resource) = state::get_resource(self.c, id)? else {
            return Ok(ArmResponse::new(StatusCode::NO_CONTENT, None));
        };
        if resource.r#type == DISK_TYPE
            && let Some(vm) = &resource.managed_by
        {
            return Err(fail(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!("Disk {} is attached to VM {vm}.", resource.name),
            ));
        }
        let spec = EventSpec {
            subscription: &rg.subscription,
            resource_group: Some(&rg.name),
            resource_id: &resource.id,
            resource_type: &resource.r#type,
            operation: format!("{}/delete", resource.r#type),
        };
        if !ASYNC_DELETE_TYPES.contains(&resource.r#type.as_str()) {
            state::delete_resource(self.c, &resource.id)?;
            self.record_sync(&spec, StatusCode::OK)?;
            return Ok(ArmResponse::new(StatusCode::OK, None));
        }
        let op = match state::pending_operation(self.c, &resource.id, "delete")? {
            Some(op) => op,
            None => {
                let op = self.start_operation(
                    &rg.subscription,
                    resource.location.as_deref().unwrap_or("westeurope"),
                    &resource.id,
                    json!({ "kind": "delete", "resource": resource.id }),
                    &spec,
                )?;
                resource.provisioning_state = "Deleting".into();
                resource.changed = self.r.time();
                state::put_resource(self.c, &resource)?;
                op
            }
        };
        Ok(self.accepted(&op))
    }

    /// `start`, `powerOff`, `deallocate`, `restart`: `202` and an async
    /// operation; the power state changes when the operation completes.
    fn vm_action(&self, rg: &ResourceGroup, vm: Resource, action: &str) -> Outcome {
        let (action, target) = match action.to_ascii_lowercase().as_str() {
            "start" => ("start", "running"),
            "poweroff" => ("powerOff", "stopped"),
            "deallocate" => ("deallocate", "deallocated"),
            "restart" => ("restart", "running"),
            _ => {
                return Err(bad_request(
                    "InvalidResourceType",
                    format!(
                        "The resource type 'virtualMachines/{action}' could not be found in the namespace \
                         'Microsoft.Compute' for api version '{}'. Supported actions: start, powerOff, \
                         deallocate, restart.",
                        self.r.api_version
                    ),
                ));
            }
        };
        self.writable(rg)?;
        if vm.provisioning_state == "Deleting" {
            return Err(fail(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation '{action}' is not allowed on VM '{}' since the VM is marked for deletion. \
                     You can only retry the Delete operation (or wait for an ongoing one to complete).",
                    vm.name
                ),
            ));
        }
        if action == "restart" && vm.power_state.as_deref() != Some("running") {
            return Err(fail(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation 'restart' is not allowed on VM '{}' since the VM is {}.",
                    vm.name,
                    vm.power_state.as_deref().unwrap_or("not running")
                ),
            ));
        }
        let op = self.start_operation(
            &rg.subscription,
            vm.location.as_deref().unwrap_or("westeurope"),
            &vm.id,
            json!({ "kind": "power", "resource": vm.id, "state": target }),
            &EventSpec {
                subscription: &rg.subscription,
                resource_group: Some(&rg.name),
                resource_id: &vm.id,
                resource_type: VM_TYPE,
                operation: format!("{VM_TYPE}/{action}/action"),
            },
        )?;
        Ok(self.accepted(&op))
    }

    // -----------------------------------------------------------------------
    // Async operations

    /// Records an operation in progress and its "Accepted" event.
    fn start_operation(
        &self,
        subscription: &str,
        location: &str,
        target: &str,
        action: Value,
        spec: &EventSpec<'_>,
    ) -> Outcome<Operation> {
        let op = Operation {
            id: uuid::Uuid::new_v4().to_string(),
            subscription: subscription.to_owned(),
            location: location.to_owned(),
            target_lc: target.to_lowercase(),
            polls_left: self.s.lro_polls,
            status: "InProgress".into(),
            action,
            event: self.event_context(spec),
            error: None,
            start_time: self.r.time(),
            end_time: None,
        };
        state::put_operation(self.c, &op)?;
        let doc = event_doc(
            &op.event,
            "Accepted",
            "Accepted",
            &op.id,
            self.r.now,
            &self.s.tenant_id,
        );
        state::insert_event(self.c, subscription, &doc)?;
        Ok(op)
    }

    /// `202` with `Azure-AsyncOperation`, `Location` and `Retry-After`.
    fn accepted(&self, op: &Operation) -> ArmResponse {
        ArmResponse::new(StatusCode::ACCEPTED, None)
            .with_header("azure-asyncoperation", self.async_operation_url(op))
            .with_header("location", self.monitor_url(op))
            .with_header("retry-after", self.s.retry_after_secs.to_string())
            .with_header("azure-asyncnotification", "Enabled")
    }

    fn operations_base(&self, op: &Operation) -> String {
        format!(
            "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{}/operations/{}",
            self.r.base_url, op.subscription, op.location, op.id
        )
    }

    fn async_operation_url(&self, op: &Operation) -> String {
        format!("{}?{}", self.operations_base(op), self.api_version_query())
    }

    fn monitor_url(&self, op: &Operation) -> String {
        format!(
            "{}?monitor=true&{}",
            self.operations_base(op),
            self.api_version_query()
        )
    }

    fn operation_result_url(&self, op: &Operation) -> String {
        format!(
            "{}/subscriptions/{}/operationresults/{}?{}",
            self.r.base_url,
            op.subscription,
            op.id,
            self.api_version_query()
        )
    }

    /// One poll: counts down, then completes the operation.
    fn poll(&self, sub: &Subscription, id: &str) -> Outcome<Operation> {
        let Some(mut op) = state::get_operation(self.c, id)?.filter(|op| op.subscription == sub.id)
        else {
            return Err(fail(
                StatusCode::NOT_FOUND,
                "OperationNotFound",
                format!("The operation '{id}' could not be found."),
            ));
        };
        if op.status == "InProgress" {
            if op.polls_left > 0 {
                op.polls_left -= 1;
            } else {
                self.complete(&mut op)?;
            }
            state::put_operation(self.c, &op)?;
        }
        Ok(op)
    }

    /// Applies what the operation does and records the final event.
    fn complete(&self, op: &mut Operation) -> Outcome<()> {
        let result = self.apply(&op.action)?;
        op.end_time = Some(self.r.time());
        let (status, sub_status) = match result {
            Ok(()) => ("Succeeded", ""),
            Err((code, message)) => {
                op.error = Some(json!({ "code": code, "message": message }));
                ("Failed", code)
            }
        };
        op.status = status.into();
        let doc = event_doc(
            &op.event,
            status,
            sub_status,
            &op.id,
            self.r.now,
            &self.s.tenant_id,
        );
        state::insert_event(self.c, &op.subscription, &doc)?;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn apply(&self, action: &Value) -> Outcome<Result<(), (&'static str, String)>> {
        let field = |name: &str| action.get(name).and_then(Value::as_str).unwrap_or_default();
        let now = self.r.time();
        match field("kind") {
            "power" | "provision" => {
                let Some(mut resource) = state::get_resource(self.c, field("resource"))? else {
                    return Ok(Err((
                        "ResourceNotFound",
                        format!("The Resource '{}' was not found.", field("resource")),
                    )));
                };
                if field("kind") == "power" {
                    resource.power_state = Some(field("state").to_owned());
                } else if let Some(power) = action.get("power").and_then(Value::as_str) {
                    // A new VM: running, with its OS disk.
                    resource.power_state = Some(power.to_owned());
                    self.create_os_disk(&mut resource)?;
                }
                resource.provisioning_state = "Succeeded".into();
                resource.changed = now;
                state::put_resource(self.c, &resource)?;
            }
            "delete" => {
                if let Some(vm) = state::get_resource(self.c, field("resource"))?
                    && vm.r#type == VM_TYPE
                {
                    self.release_disks(&vm)?;
                }
                state::delete_resource(self.c, field("resource"))?
            }
            "deleteGroup" => state::delete_rg(self.c, field("subscription"), field("group"))?,
            other => {
                return Ok(Err((
                    "InternalServerError",
                    format!("Unknown operation kind '{other}'."),
                )));
            }
        }
        Ok(Ok(()))
    }

    /// The `Azure-AsyncOperation` status document.
    fn status_response(&self, op: &Operation) -> ArmResponse {
        let mut doc = json!({ "name": op.id, "status": op.status, "startTime": op.start_time });
        if let Some(end) = &op.end_time {
            doc["endTime"] = json!(end);
        }
        if let Some(error) = &op.error {
            doc["error"] = error.clone();
        }
        let response = ArmResponse::ok(doc);
        if op.status == "InProgress" {
            response.with_header("retry-after", self.s.retry_after_secs.to_string())
        } else {
            response
        }
    }

    /// A `Location` poll: `202` while in progress, then `200` (or the
    /// operation's error).
    fn monitor_response(&self, op: &Operation) -> ArmResponse {
        match (op.status.as_str(), &op.error) {
            ("InProgress", _) => {
                let location = if op.action["kind"] == "deleteGroup" {
                    self.operation_result_url(op)
                } else {
                    self.monitor_url(op)
                };
                ArmResponse::new(StatusCode::ACCEPTED, None)
                    .with_header("location", location)
                    .with_header("retry-after", self.s.retry_after_secs.to_string())
            }
            (_, Some(error)) => {
                let status = if error["code"] == "ResourceNotFound" {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                ArmResponse::new(status, Some(json!({ "error": error })))
            }
            _ => ArmResponse::new(StatusCode::OK, None),
        }
    }

    // -----------------------------------------------------------------------
    // Role assignments and definitions

    fn list_role_assignments(&self, scope: &Scope) -> Outcome {
        let scope = ArmId::parse(&scope.id()).map_err(|_| self.no_route())?;
        let mut at_scope = false;
        let mut principal: Option<String> = None;
        for clause in self.filter()? {
            match &clause {
                Clause::Call { name, args } if name == "atscope" && args.is_empty() => {
                    at_scope = true
                }
                Clause::Call { name, args } if name == "assignedto" && args.len() == 1 => {
                    principal = Some(args[0].to_ascii_lowercase())
                }
                Clause::Compare { field, op, value } if field == "principalid" && op == "eq" => {
                    principal = Some(value.to_ascii_lowercase())
                }
                _ => return Err(self.unsupported_clause(&clause)),
            }
        }
        let value: Vec<Value> = state::list_role_assignments(self.c)?
            .into_iter()
            .filter(|ra| {
                let Ok(assigned) = ArmId::parse(&ra.scope) else {
                    return false;
                };
                // Inherited from this scope or above it; below it unless `atScope()`.
                let above = assigned.contains(&scope);
                let below = scope.contains(&assigned);
                (above || (below && !at_scope))
                    && principal.as_ref().is_none_or(|p| *p == ra.principal_id)
            })
            .map(|ra| render_role_assignment(&ra))
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    fn assignment_at(&self, scope: &Scope, name: &str) -> Outcome<Option<RoleAssignment>> {
        Ok(state::get_role_assignment(self.c, name)?
            .filter(|ra| ra.scope.eq_ignore_ascii_case(&scope.id())))
    }

    fn get_role_assignment(&self, scope: &Scope, name: &str) -> Outcome {
        match self.assignment_at(scope, name)? {
            Some(ra) => Ok(ArmResponse::ok(render_role_assignment(&ra))),
            None => Err(fail(
                StatusCode::NOT_FOUND,
                "RoleAssignmentNotFound",
                format!("The role assignment '{name}' is not found."),
            )),
        }
    }

    fn put_role_assignment(&self, scope: &Scope, name: &str) -> Outcome {
        if !is_guid(name) {
            return Err(bad_request(
                "InvalidRoleAssignmentId",
                format!(
                    "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
                ),
            ));
        }
        if let Some(rg) = scope.group() {
            self.writable(rg)?;
        }
        let body = self.body_object()?;
        let Some(props) = body.get("properties").and_then(Value::as_object) else {
            return Err(bad_request(
                "InvalidRequestFormat",
                "Cannot deserialize the request content: 'properties' (an object with roleDefinitionId and principalId) is required.",
            ));
        };
        let role_definition_id = props
            .get("roleDefinitionId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let role = parse_role_definition_id(role_definition_id).ok_or_else(|| {
            bad_request(
                "InvalidRoleDefinitionId",
                format!("The role definition ID '{role_definition_id}' is not valid."),
            )
        })?;
        if !BUILT_IN_ROLES.iter().any(|(id, ..)| *id == role) {
            return Err(bad_request(
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{role}' does not exist."),
            ));
        }
        let principal = props
            .get("principalId")
            .and_then(Value::as_str)
            .filter(|p| is_guid(p))
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| {
                bad_request(
                    "InvalidPrincipalId",
                    "A valid principal ID must be provided for role assignment.",
                )
            })?;
        let principal_type = match props.get("principalType").and_then(Value::as_str) {
            None => "User".to_owned(),
            Some(t) => ["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"]
                .iter()
                .find(|known| known.eq_ignore_ascii_case(t))
                .map(|known| (*known).to_owned())
                .ok_or_else(|| {
                    bad_request(
                        "InvalidPrincipalType",
                        format!(
                            "The principal type '{t}' is not valid; use User, Group, ServicePrincipal, ForeignGroup or Device."
                        ),
                    )
                })?,
        };
        let description = props
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let scope_id = scope.id();
        let existing = state::get_role_assignment(self.c, name)?;
        if let Some(existing) = existing {
            let same = existing.scope.eq_ignore_ascii_case(&scope_id)
                && existing.role_definition == role
                && existing.principal_id == principal;
            if !same {
                return Err(bad_request(
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                ));
            }
            return Ok(ArmResponse::ok(render_role_assignment(&existing)));
        }
        let duplicate = state::list_role_assignments(self.c)?.into_iter().any(|ra| {
            ra.scope.eq_ignore_ascii_case(&scope_id)
                && ra.role_definition == role
                && ra.principal_id == principal
        });
        if duplicate {
            return Err(fail(
                StatusCode::CONFLICT,
                "RoleAssignmentExists",
                "The role assignment already exists.",
            ));
        }
        let now = self.r.time();
        let ra = RoleAssignment {
            name: name.to_ascii_lowercase(),
            scope: scope_id,
            role_definition: role,
            principal_id: principal,
            principal_type,
            description,
            created_on: now.clone(),
            updated_on: now,
            created_by: self.r.caller.oid.clone(),
            updated_by: self.r.caller.oid.clone(),
        };
        state::put_role_assignment(self.c, &ra)?;
        let doc = render_role_assignment(&ra);
        self.record_assignment_event(scope, &ra, "write", StatusCode::CREATED)?;
        Ok(ArmResponse::new(StatusCode::CREATED, Some(doc)))
    }

    fn delete_role_assignment(&self, scope: &Scope, name: &str) -> Outcome {
        let Some(ra) = self.assignment_at(scope, name)? else {
            return Ok(ArmResponse::new(StatusCode::NO_CONTENT, None));
        };
        if let Some(rg) = scope.group() {
            self.writable(rg)?;
        }
        state::delete_role_assignment(self.c, &ra.name)?;
        self.record_assignment_event(scope, &ra, "delete", StatusCode::OK)?;
        Ok(ArmResponse::ok(render_role_assignment(&ra)))
    }

    fn record_assignment_event(
        &self,
        scope: &Scope,
        ra: &RoleAssignment,
        verb: &str,
        status: StatusCode,
    ) -> Outcome<()> {
        let id = role_assignment_id(ra);
        self.record_sync(
            &EventSpec {
                subscription: &scope.subscription().id,
                resource_group: scope.group().map(|rg| rg.name.as_str()),
                resource_id: &id,
                resource_type: "Microsoft.Authorization/roleAssignments",
                operation: format!("Microsoft.Authorization/roleAssignments/{verb}"),
            },
            status,
        )
    }

    fn list_role_definitions(&self, scope: &Scope) -> Outcome {
        let mut roles: Vec<_> = BUILT_IN_ROLES.iter().collect();
        for clause in self.filter()? {
            match &clause {
                Clause::Compare { field, op, value } if op == "eq" && field == "rolename" => {
                    roles.retain(|(_, name, ..)| name.eq_ignore_ascii_case(value))
                }
                Clause::Compare { field, op, value } if op == "eq" && field == "type" => {
                    if !value.eq_ignore_ascii_case("BuiltInRole") {
                        roles.clear();
                    }
                }
                _ => return Err(self.unsupported_clause(&clause)),
            }
        }
        let sub = &scope.subscription().id;
        let value: Vec<Value> = roles
            .into_iter()
            .map(|role| render_role_definition(sub, role))
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    fn get_role_definition(&self, scope: &Scope, id: &str) -> Outcome {
        let id = id.to_ascii_lowercase();
        match BUILT_IN_ROLES.iter().find(|(guid, ..)| *guid == id) {
            Some(role) => Ok(ArmResponse::ok(render_role_definition(
                &scope.subscription().id,
                role,
            ))),
            None => Err(fail(
                StatusCode::NOT_FOUND,
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{id}' does not exist."),
            )),
        }
    }

    // -----------------------------------------------------------------------
    // Tags

    fn tags(&self, scope: Scope, name: &str) -> Outcome {
        if !name.eq_ignore_ascii_case("default") {
            return Err(bad_request(
                "InvalidResourceName",
                format!("The tags resource name '{name}' is not valid; it must be 'default'."),
            ));
        }
        let id = format!("{}/providers/Microsoft.Resources/tags/default", scope.id());
        if self.r.method == Method::GET {
            return Ok(ArmResponse::ok(render_tags(&id, scope.tags())));
        }
        if let Some(rg) = scope.group() {
            self.writable(rg)?;
        }
        let current = scope.tags().clone();
        let (tags, verb) = match self.r.method {
            Method::DELETE => (Map::new(), "delete"),
            Method::PUT => {
                let body = self.body_object()?;
                (self.tags_in(&body)?, "write")
            }
            _ => {
                let body = self.body_object()?;
                let given = self.tags_in(&body)?;
                let operation = body
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let tags = match operation.to_ascii_lowercase().as_str() {
                    "merge" => {
                        let mut tags = current;
                        for (key, value) in given {
                            tags.retain(|k, _| !k.eq_ignore_ascii_case(&key));
                            tags.insert(key, value);
                        }
                        tags
                    }
                    "replace" => given,
                    "delete" => {
                        let mut tags = current;
                        tags.retain(|k, v| {
                            !given.iter().any(|(gk, gv)| {
                                gk.eq_ignore_ascii_case(k) && (gv.as_str() == Some("") || gv == v)
                            })
                        });
                        tags
                    }
                    _ => {
                        return Err(bad_request(
                            "InvalidRequestFormat",
                            format!(
                                "The tags operation '{operation}' is not valid; use Merge, Replace or Delete."
                            ),
                        ));
                    }
                };
                (tags, "write")
            }
        };
        if tags.len() > 50 {
            return Err(bad_request(
                "InvalidTagCount",
                "A resource can have at most 50 tags.",
            ));
        }
        self.store_tags(&scope, tags.clone())?;
        self.record_sync(
            &EventSpec {
                subscription: &scope.subscription().id,
                resource_group: scope.group().map(|rg| rg.name.as_str()),
                resource_id: &id,
                resource_type: "Microsoft.Resources/tags",
                operation: format!("Microsoft.Resources/tags/{verb}"),
            },
            StatusCode::OK,
        )?;
        Ok(ArmResponse::ok(render_tags(&id, &tags)))
    }

    /// `properties.tags` of a tags-resource body.
    fn tags_in(&self, body: &Map<String, Value>) -> Outcome<Map<String, Value>> {
        match body.get("properties").and_then(|p| p.get("tags")) {
            Some(tags) => tag_map(tags),
            None => Err(bad_request(
                "InvalidRequestFormat",
                "Cannot deserialize the request content: 'properties.tags' is required.",
            )),
        }
    }

    fn store_tags(&self, scope: &Scope, tags: Map<String, Value>) -> Outcome<()> {
        match scope {
            Scope::Subscription(s) => {
                state::put_subscription(self.c, &Subscription { tags, ..s.clone() })?
            }
            Scope::Group(_, rg) => state::put_rg(self.c, &ResourceGroup { tags, ..rg.clone() })?,
            Scope::Resource(_, _, r) => state::put_resource(
                self.c,
                &Resource {
                    tags,
                    changed: self.r.time(),
                    ..(**r).clone()
                },
            )?,
        }
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Activity log

    fn list_events(&self, sub: &Subscription) -> Outcome {
        if self.r.param("$filter").is_none_or(|f| f.trim().is_empty()) {
            return Err(bad_request(
                "BadRequest",
                "The $filter query parameter is required and must include eventTimestamp ge '<start time>'.",
            ));
        }
        let mut since: Option<DateTime<Utc>> = None;
        let mut until: Option<(DateTime<Utc>, bool)> = None;
        let mut equals: Vec<(&'static str, String)> = Vec::new();
        for clause in self.filter()? {
            let Clause::Compare { field, op, value } = &clause else {
                return Err(self.unsupported_clause(&clause));
            };
            let field_eq = |name: &'static str| -> Outcome<(&'static str, String)> {
                if op == "eq" {
                    Ok((name, value.clone()))
                } else {
                    Err(self.unsupported_clause(&clause))
                }
            };
            match field.as_str() {
                "eventtimestamp" => {
                    let time = parse_time(value).ok_or_else(|| {
                        bad_request(
                            "BadRequest",
                            format!("The eventTimestamp '{value}' in $filter is not a valid date and time."),
                        )
                    })?;
                    match op.as_str() {
                        "ge" | "gt" => since = Some(time),
                        "le" => until = Some((time, true)),
                        "lt" => until = Some((time, false)),
                        _ => return Err(self.unsupported_clause(&clause)),
                    }
                }
                "resourcegroupname" => equals.push(field_eq("resourceGroupName")?),
                "resourceid" | "resourceuri" => equals.push(field_eq("resourceId")?),
                "correlationid" => equals.push(field_eq("correlationId")?),
                "resourceprovider" => equals.push(field_eq("resourceProviderName")?),
                "status" => equals.push(field_eq("status")?),
                "caller" => equals.push(field_eq("caller")?),
                "levels" => equals.push(field_eq("level")?),
                _ => return Err(self.unsupported_clause(&clause)),
            }
        }
        let Some(since) = since else {
            return Err(bad_request(
                "BadRequest",
                "The $filter must include eventTimestamp ge '<start time>'.",
            ));
        };
        let select: Option<Vec<String>> = self.r.param("$select").map(|s| {
            s.split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .filter(|f| !f.is_empty())
                .collect()
        });
        let mut value = Vec::new();
        for event in state::list_events(self.c, &sub.id)? {
            let Some(time) = event["eventTimestamp"].as_str().and_then(parse_time) else {
                continue;
            };
            if time < since {
                continue;
            }
            if let Some((end, inclusive)) = until
                && (time > end || (!inclusive && time == end))
            {
                continue;
            }
            let matches = equals.iter().all(|(field, wanted)| {
                let actual = match &event[*field] {
                    Value::String(s) => s.as_str(),
                    other => other["value"].as_str().unwrap_or_default(),
                };
                actual.eq_ignore_ascii_case(wanted)
            });
            if !matches {
                continue;
            }
            value.push(match &select {
                None => event,
                Some(fields) => Value::Object(
                    event
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| fields.contains(&k.to_ascii_lowercase()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
            });
        }
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    /// What an event needs from this request, kept with async operations.
    fn event_context(&self, spec: &EventSpec<'_>) -> Value {
        json!({
            "subscriptionId": spec.subscription,
            "resourceGroupName": spec.resource_group,
            "resourceId": spec.resource_id,
            "resourceType": spec.resource_type,
            "operationName": spec.operation,
            "caller": self.r.caller.name(),
            "claims": self.r.caller.claims(),
            "correlationId": self.r.correlation_id,
            "clientRequestId": self.r.client_request_id,
            "clientIpAddress": self.r.client_ip,
            "method": self.r.method.as_str(),
            "apiVersion": self.r.api_version,
        })
    }

    /// Records the "Succeeded" event of a synchronous write.
    fn record_sync(&self, spec: &EventSpec<'_>, status: StatusCode) -> Outcome<()> {
        let sub_status = match status {
            StatusCode::CREATED => "Created",
            StatusCode::ACCEPTED => "Accepted",
            StatusCode::NO_CONTENT => "NoContent",
            _ => "OK",
        };
        let doc = event_doc(
            &self.event_context(spec),
            "Succeeded",
            sub_status,
            &uuid::Uuid::new_v4().to_string(),
            self.r.now,
            &self.s.tenant_id,
        );
        state::insert_event(self.c, spec.subscription, &doc)?;
        Ok(())
    }
}

impl Ctx<'_> {
    // -----------------------------------------------------------------------
    // Tenants

    /// `GET /tenants`: the simulator's directory tenant.
    fn list_tenants(&self) -> ArmResponse {
        let tenant = &self.s.tenant_id;
        ArmResponse::ok(json!({
            "value": [{
                "id": format!("/tenants/{tenant}"),
                "tenantId": tenant,
                "countryCode": "US",
                "displayName": TENANT_DISPLAY_NAME,
                "domains": TENANT_DOMAINS,
                "tenantCategory": "Home",
                "defaultDomain": TENANT_DEFAULT_DOMAIN,
                "tenantType": "AAD",
            }],
        }))
    }

    // -----------------------------------------------------------------------
    // Resource Graph

    /// `POST /providers/Microsoft.ResourceGraph/resources`: a query (see
    /// `graph.rs`) over the subscriptions asked for (all when none are).
    fn resource_graph(&self) -> Outcome {
        if !RESOURCE_GRAPH_API_VERSIONS.contains(&self.r.api_version.as_str()) {
            return Err(bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{}' is invalid. The supported versions are '{}'.",
                    self.r.api_version,
                    RESOURCE_GRAPH_API_VERSIONS.join(",")
                ),
            ));
        }
        let body = self.body_object()?;
        let Some(text) = body.get("query").and_then(Value::as_str) else {
            return Err(self.graph_error(
                "InvalidRequestContent",
                "The request content must have a 'query' string.",
            ));
        };
        if body
            .get("managementGroups")
            .and_then(Value::as_array)
            .is_some_and(|groups| !groups.is_empty())
        {
            return Err(self.graph_error(
                "InvalidRequestContent",
                "The ARM simulator has no management groups; query by 'subscriptions'.",
            ));
        }
        if body
            .get("facets")
            .and_then(Value::as_array)
            .is_some_and(|facets| !facets.is_empty())
        {
            return Err(self.graph_error(
                "InvalidRequestContent",
                "The ARM simulator does not compute 'facets'.",
            ));
        }
        let subscriptions = match body.get("subscriptions") {
            None | Some(Value::Null) => state::list_subscriptions(self.c)?,
            Some(Value::Array(ids)) => {
                let mut found = Vec::new();
                for id in ids {
                    let Some(id) = id.as_str() else {
                        return Err(self.graph_error(
                            "InvalidRequestContent",
                            "'subscriptions' must be an array of subscription ids.",
                        ));
                    };
                    if let Some(sub) = state::get_subscription(self.c, id)?
                        && !found.iter().any(|s: &Subscription| s.id == sub.id)
                    {
                        found.push(sub);
                    }
                }
                if found.is_empty() {
                    return Err(self.graph_error(
                        "NoValidSubscriptionsInQueryRequest",
                        "There are no valid subscriptions in the query request.",
                    ));
                }
                found
            }
            Some(_) => {
                return Err(self.graph_error(
                    "InvalidRequestContent",
                    "'subscriptions' must be an array of subscription ids.",
                ));
            }
        };
        let options = body.get("options").cloned().unwrap_or(Value::Null);
        let option_count = |name: &str, max: u64| -> Outcome<Option<usize>> {
            match options.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n <= max)
                    .map(|n| Some(n as usize))
                    .ok_or_else(|| {
                        self.graph_error(
                            "InvalidRequestContent",
                            &format!("The option '{name}' must be a whole number from 0 to {max}."),
                        )
                    }),
            }
        };
        let top = option_count("$top", 1000)?.unwrap_or(RESOURCE_GRAPH_PAGE);
        let mut skip = option_count("$skip", u64::from(u32::MAX))?.unwrap_or(0);
        if let Some(token) = options.get("$skipToken").and_then(Value::as_str) {
            skip = decode_skip_token(token).ok_or_else(|| {
                self.graph_error(
                    "InvalidRequestContent",
                    "The '$skipToken' is not one this service issued.",
                )
            })?;
        }
        let table_format = match options.get("resultFormat").and_then(Value::as_str) {
            None => false,
            Some(f) if f.eq_ignore_ascii_case("objectArray") => false,
            Some(f) if f.eq_ignore_ascii_case("table") => true,
            Some(f) => {
                return Err(self.graph_error(
                    "InvalidRequestContent",
                    &format!("The resultFormat '{f}' is not valid; use 'objectArray' or 'table'."),
                ));
            }
        };

        let query = graph::parse(text).map_err(|e| self.query_error(&e))?;
        let rows = self.graph_rows(query.table, &subscriptions)?;
        let columns: Vec<&str> = graph::COLUMNS.iter().map(|(c, _)| *c).collect();
        let out = graph::run(&query, &columns, rows).map_err(|e| self.query_error(&e))?;

        let total = out.rows.len();
        let end = skip.saturating_add(top).min(total);
        let page: Vec<Vec<Value>> = out.rows.get(skip.min(total)..end).unwrap_or(&[]).to_vec();
        let more = end < total;
        let pageable = out.columns.iter().any(|c| c == "id");
        let data = if table_format {
            let columns: Vec<Value> = out
                .columns
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let values = out.rows.iter().map(|row| row[i].clone());
                    json!({ "name": name, "type": graph::column_type(name, values) })
                })
                .collect();
            json!({ "columns": columns, "rows": page })
        } else {
            Value::Array(
                page.iter()
                    .map(|row| {
                        Value::Object(
                            out.columns
                                .iter()
                                .cloned()
                                .zip(row.iter().cloned())
                                .collect(),
                        )
                    })
                    .collect(),
            )
        };
        let count = end.saturating_sub(skip.min(total));
        let mut doc = json!({
            "totalRecords": total,
            "count": count,
            "data": data,
            "facets": [],
            "resultTruncated": if more && !pageable { "true" } else { "false" },
        });
        if more && pageable {
            doc["$skipToken"] = json!(encode_skip_token(end));
        }
        Ok(ArmResponse::ok(doc))
    }

    /// Resource Graph's `400`: `BadRequest` with one detail.
    fn graph_error(&self, code: &str, message: &str) -> Failure {
        Failure::Arm(ArmResponse::new(
            StatusCode::BAD_REQUEST,
            Some(json!({
                "error": {
                    "code": "BadRequest",
                    "message": format!(
                        "Please provide below info when asking for support: timestamp = {}, correlationId = {}.",
                        self.r.time(),
                        self.r.correlation_id
                    ),
                    "details": [{ "code": code, "message": message }],
                },
            })),
        ))
    }

    fn query_error(&self, error: &graph::QueryError) -> Failure {
        self.graph_error(
            "InvalidQuery",
            &format!(
                "Query is invalid. Please refer to the documentation for the Azure Resource Graph service \
                 and fix the error before retrying. {error}"
            ),
        )
    }

    /// The rows of `table` for `subscriptions`, in [`graph::COLUMNS`] order.
    fn graph_rows(
        &self,
        table: graph::Table,
        subscriptions: &[Subscription],
    ) -> Outcome<Vec<Vec<Value>>> {
        let tenant = &self.s.tenant_id;
        let mut rows = Vec::new();
        match table {
            graph::Table::Resources => {
                for sub in subscriptions {
                    for r in state::list_resources(self.c, &sub.id, None)? {
                        let mut properties = render_resource(&r, false)["properties"].take();
                        if let Some(power) =
                            r.power_state.as_deref().filter(|_| r.r#type == VM_TYPE)
                        {
                            properties["extended"] = json!({ "instanceView": { "powerState": {
                                "code": format!("PowerState/{power}"),
                                "displayStatus": format!("VM {power}"),
                            }}});
                        }
                        rows.push(graph_row(json!({
                            "id": r.id,
                            "name": r.name,
                            "type": r.r#type.to_lowercase(),
                            "tenantId": tenant,
                            "kind": r.kind,
                            "location": r.location,
                            "resourceGroup": r.rg_name.to_lowercase(),
                            "subscriptionId": r.subscription,
                            "managedBy": r.managed_by,
                            "sku": r.sku,
                            "properties": properties,
                            "tags": r.tags,
                        })));
                    }
                }
            }
            graph::Table::ResourceContainers => {
                for sub in subscriptions {
                    let doc = self.render_subscription(sub);
                    rows.push(graph_row(json!({
                        "id": doc["id"],
                        "name": sub.display_name,
                        "type": "microsoft.resources/subscriptions",
                        "tenantId": tenant,
                        "subscriptionId": sub.id,
                        "properties": {
                            "state": sub.state,
                            "subscriptionPolicies": doc["subscriptionPolicies"],
                            "managementGroupAncestorsChain": [],
                        },
                        "tags": sub.tags,
                    })));
                    for rg in state::list_rgs(self.c, &sub.id)? {
                        rows.push(graph_row(json!({
                            "id": rg.id(),
                            "name": rg.name,
                            "type": "microsoft.resources/subscriptions/resourcegroups",
                            "tenantId": tenant,
                            "location": rg.location,
                            "resourceGroup": rg.name.to_lowercase(),
                            "subscriptionId": rg.subscription,
                            "managedBy": rg.managed_by,
                            "properties": { "provisioningState": rg.state },
                            "tags": rg.tags,
                        })));
                    }
                }
            }
            graph::Table::AuthorizationResources => {
                for ra in state::list_role_assignments(self.c)? {
                    let Ok(scope) = ArmId::parse(&ra.scope) else {
                        continue;
                    };
                    let Some(sub) = scope
                        .subscription()
                        .filter(|s| subscriptions.iter().any(|x| x.id.eq_ignore_ascii_case(s)))
                    else {
                        continue;
                    };
                    let group = scope
                        .ancestor(ScopeKind::ResourceGroup)
                        .and_then(|a| a.display_name().map(str::to_lowercase));
                    rows.push(graph_row(json!({
                        "id": role_assignment_id(&ra),
                        "name": ra.name,
                        "type": "microsoft.authorization/roleassignments",
                        "tenantId": tenant,
                        "resourceGroup": group,
                        "subscriptionId": sub,
                        "properties": render_role_assignment(&ra)["properties"],
                    })));
                }
                for role in &BUILT_IN_ROLES {
                    let mut doc = render_role_definition("", role);
                    let id = format!(
                        "/providers/Microsoft.Authorization/RoleDefinitions/{}",
                        role.0
                    );
                    rows.push(graph_row(json!({
                        "id": id,
                        "name": role.0,
                        "type": "microsoft.authorization/roledefinitions",
                        "tenantId": tenant,
                        "properties": doc["properties"].take(),
                    })));
                }
            }
        }
        Ok(rows)
    }

    // -----------------------------------------------------------------------
    // Diagnostic settings

    fn list_diagnostic_settings(&self, scope: &Scope) -> Outcome {
        let value: Vec<Value> = state::list_diagnostic_settings(self.c, &scope.id())?
            .iter()
            .map(render_diagnostic_setting)
            .collect();
        Ok(ArmResponse::ok(json!({ "value": value })))
    }

    fn get_diagnostic_setting(&self, scope: &Scope, name: &str) -> Outcome {
        match state::get_diagnostic_setting(self.c, &scope.id(), name)? {
            Some(setting) => Ok(ArmResponse::ok(render_diagnostic_setting(&setting))),
            None => Err(fail(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("The diagnostic setting '{name}' doesn't exist."),
            )),
        }
    }

    /// Creates or replaces a diagnostic setting (`200` either way, as Azure
    /// Monitor answers).
    fn put_diagnostic_setting(&self, scope: &Scope, name: &str) -> Outcome {
        validate_resource_name("", name)?;
        if let Some(rg) = scope.group() {
            self.writable(rg)?;
        }
        let body = self.body_object()?;
        let Some(props) = body.get("properties").and_then(Value::as_object) else {
            return Err(bad_request(
                "BadRequest",
                "The request content must have 'properties' (destinations, logs and metrics).",
            ));
        };
        let mut destinations = 0;
        for field in [
            "storageAccountId",
            "workspaceId",
            "eventHubAuthorizationRuleId",
            "serviceBusRuleId",
            "marketplacePartnerId",
        ] {
            let Some(id) = props
                .get(field)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            destinations += 1;
            let parsed = ArmId::parse(id)
                .ok()
                .filter(|p| p.subscription().is_some() || p.as_str().starts_with("/providers/"));
            let Some(parsed) = parsed else {
                return Err(bad_request(
                    "LinkedInvalidPropertyId",
                    format!(
                        "Property id '{id}' at path 'properties.{field}' is invalid. Expect fully qualified \
                         resource Id that start with '/subscriptions/{{subscriptionId}}' or \
                         '/providers/{{resourceProviderNamespace}}/'."
                    ),
                ));
            };
            // A storage account in the simulated estate must exist.
            let in_estate = parsed
                .subscription()
                .map(|s| state::get_subscription(self.c, s))
                .transpose()?
                .flatten()
                .is_some();
            if field == "storageAccountId"
                && in_estate
                && state::get_resource(self.c, id)?.is_none_or(|r| r.r#type != STORAGE_TYPE)
            {
                return Err(bad_request(
                    "BadRequest",
                    format!("The storage account '{id}' could not be found."),
                ));
            }
        }
        if destinations == 0 {
            return Err(bad_request(
                "BadRequest",
                "A diagnostic setting needs at least one destination: storageAccountId, workspaceId, \
                 eventHubAuthorizationRuleId or marketplacePartnerId.",
            ));
        }
        let (log_categories, metric_categories) = diagnostic_categories_of(scope);
        for (list, categories) in [("logs", log_categories), ("metrics", &[][..])] {
            let Some(entries) = props.get(list) else {
                continue;
            };
            let Some(entries) = entries.as_array() else {
                return Err(bad_request(
                    "BadRequest",
                    format!("'properties.{list}' must be an array."),
                ));
            };
            for entry in entries {
                let category = entry.get("category").and_then(Value::as_str);
                let group = entry.get("categoryGroup").and_then(Value::as_str);
                let known = match (list, category, group) {
                    ("logs", Some(c), None) => {
                        categories.iter().any(|(k, _)| k.eq_ignore_ascii_case(c))
                    }
                    ("logs", None, Some(g)) => categories
                        .iter()
                        .any(|(_, groups)| groups.iter().any(|k| k.eq_ignore_ascii_case(g))),
                    ("metrics", Some(c), None) => {
                        metric_categories.iter().any(|k| k.eq_ignore_ascii_case(c))
                    }
                    _ => {
                        return Err(bad_request(
                            "BadRequest",
                            format!(
                                "Each entry of 'properties.{list}' names one 'category'{}.",
                                if list == "logs" {
                                    " or one 'categoryGroup'"
                                } else {
                                    ""
                                }
                            ),
                        ));
                    }
                };
                if !known {
                    return Err(bad_request(
                        "BadRequest",
                        format!(
                            "Category '{}' is not supported.",
                            category.or(group).unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        let scope_id = scope.id();
        let existing = state::get_diagnostic_setting(self.c, &scope_id, name)?;
        if existing.is_none() && state::list_diagnostic_settings(self.c, &scope_id)?.len() >= 5 {
            return Err(bad_request(
                "BadRequest",
                "A resource can have at most 5 diagnostic settings.",
            ));
        }
        let mut properties = Map::new();
        for field in [
            "storageAccountId",
            "serviceBusRuleId",
            "workspaceId",
            "eventHubAuthorizationRuleId",
            "eventHubName",
            "marketplacePartnerId",
            "logAnalyticsDestinationType",
        ] {
            properties.insert(
                field.into(),
                props.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        for list in ["logs", "metrics"] {
            properties.insert(list.into(), props.get(list).cloned().unwrap_or(json!([])));
        }
        let setting = DiagnosticSetting {
            scope: scope_id,
            name: existing.map(|e| e.name).unwrap_or_else(|| name.to_owned()),
            properties: Value::Object(properties),
        };
        state::put_diagnostic_setting(self.c, &setting)?;
        let doc = render_diagnostic_setting(&setting);
        self.record_diagnostic_event(scope, &doc, "write")?;
        Ok(ArmResponse::ok(doc))
    }

    /// `200` when it existed, `204` when not.
    fn delete_diagnostic_setting(&self, scope: &Scope, name: &str) -> Outcome {
        let Some(setting) = state::get_diagnostic_setting(self.c, &scope.id(), name)? else {
            return Ok(ArmResponse::new(StatusCode::NO_CONTENT, None));
        };
        if let Some(rg) = scope.group() {
            self.writable(rg)?;
        }
        state::delete_diagnostic_setting(self.c, &setting.scope, &setting.name)?;
        self.record_diagnostic_event(scope, &render_diagnostic_setting(&setting), "delete")?;
        Ok(ArmResponse::new(StatusCode::OK, None))
    }

    fn record_diagnostic_event(&self, scope: &Scope, doc: &Value, verb: &str) -> Outcome<()> {
        self.record_sync(
            &EventSpec {
                subscription: &scope.subscription().id,
                resource_group: scope.group().map(|rg| rg.name.as_str()),
                resource_id: doc["id"].as_str().unwrap_or_default(),
                resource_type: "Microsoft.Insights/diagnosticSettings",
                operation: format!("Microsoft.Insights/diagnosticSettings/{verb}"),
            },
            StatusCode::OK,
        )
    }

    /// `…/providers/Microsoft.Insights/diagnosticSettingsCategories[/{name}]`.
    fn diagnostic_categories(&self, scope: &Scope, name: Option<&str>) -> Outcome {
        let (logs, metrics) = diagnostic_categories_of(scope);
        let render = |category: &str, kind: &str, groups: &[&str]| {
            json!({
                "id": format!(
                    "{}/providers/microsoft.insights/diagnosticSettingsCategories/{category}",
                    scope.id()
                ),
                "type": "microsoft.insights/diagnosticSettingsCategories",
                "name": category,
                "properties": { "categoryType": kind, "categoryGroups": groups },
            })
        };
        let all: Vec<Value> = logs
            .iter()
            .map(|(c, groups)| render(c, "Logs", groups))
            .chain(metrics.iter().map(|c| render(c, "Metrics", &[])))
            .collect();
        match name {
            None => Ok(ArmResponse::ok(json!({ "value": all }))),
            Some(name) => all
                .into_iter()
                .find(|c| c["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                .map(ArmResponse::ok)
                .ok_or_else(|| {
                    fail(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFound",
                        format!("The diagnostic settings category '{name}' doesn't exist for this resource."),
                    )
                }),
        }
    }

    // -----------------------------------------------------------------------
    // Scale set instances and disks

    /// `…/virtualMachineScaleSets/{vmss}/virtualMachines[/{instance}[/instanceView]]`:
    /// instances `0` … `capacity - 1`, derived from the scale set.
    fn vmss_instances(&self, sub: &Subscription, rg: &ResourceGroup, rest: &[String]) -> Outcome {
        if self.r.method != Method::GET
            || rest.len() > 5
            || (rest.len() == 5 && !rest[4].eq_ignore_ascii_case("instanceView"))
        {
            return Err(self.no_route());
        }
        let id = canonical_id(&sub.id, &rg.name, VMSS_TYPE, &[rest[1].as_str()]);
        let vmss = state::get_resource(self.c, &id)?
            .ok_or_else(|| resource_not_found(&rg.name, "Microsoft.Compute", &rest[..2]))?;
        let capacity = vmss
            .sku
            .as_ref()
            .and_then(|s| s.get("capacity"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let Some(instance) = rest.get(3) else {
            let value: Vec<Value> = (0..capacity).map(|i| vmss_instance(&vmss, i)).collect();
            return Ok(ArmResponse::ok(json!({ "value": value })));
        };
        let Some(i) = instance.parse::<u64>().ok().filter(|i| *i < capacity) else {
            return Err(fail(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The entity was not found in this Azure location.",
            ));
        };
        let doc = vmss_instance(&vmss, i);
        if rest.len() == 5 {
            return Ok(ArmResponse::ok(doc["properties"]["instanceView"].clone()));
        }
        Ok(ArmResponse::ok(doc))
    }

    /// A new VM's OS disk (`properties.storageProfile.osDisk`), attached
    /// to it; the VM's document then names it.
    fn create_os_disk(&self, vm: &mut Resource) -> Outcome<()> {
        let os_disk = vm
            .properties
            .pointer("/storageProfile/osDisk")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let name = os_disk["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}_OsDisk_1_{}", vm.name, uuid::Uuid::new_v4().simple()));
        let id = canonical_id(&vm.subscription, &vm.rg_name, DISK_TYPE, &[name.as_str()]);
        let account_type = os_disk
            .pointer("/managedDisk/storageAccountType")
            .and_then(Value::as_str)
            .unwrap_or("Premium_LRS")
            .to_owned();
        if state::get_resource(self.c, &id)?.is_none() {
            let size = os_disk["diskSizeGB"].as_u64().unwrap_or(30) as u32;
            let now = self.r.time();
            state::put_resource(
                self.c,
                &Resource {
                    id: id.clone(),
                    subscription: vm.subscription.clone(),
                    rg_name: vm.rg_name.clone(),
                    parent_lc: None,
                    r#type: DISK_TYPE.to_owned(),
                    name: name.clone(),
                    location: vm.location.clone(),
                    tags: Map::new(),
                    kind: None,
                    sku: Some(
                        json!({ "name": account_type, "tier": account_type.split('_').next() }),
                    ),
                    properties: disk_properties(size, "Attached", Some("Linux"), &now),
                    provisioning_state: "Succeeded".into(),
                    power_state: None,
                    created: now.clone(),
                    changed: now,
                    managed_by: Some(vm.id.clone()),
                },
            )?;
        }
        if let Some(properties) = vm.properties.as_object_mut() {
            let storage = properties
                .entry("storageProfile")
                .or_insert_with(|| json!({}));
            let mut disk = os_disk;
            disk["name"] = json!(name);
            disk["createOption"] = disk
                .get("createOption")
                .cloned()
                .unwrap_or(json!("FromImage"));
            disk["deleteOption"] = disk.get("deleteOption").cloned().unwrap_or(json!("Detach"));
            disk["managedDisk"] = json!({ "id": id, "storageAccountType": account_type });
            storage["osDisk"] = disk;
        }
        Ok(())
    }

    /// A deleted VM's disks: deleted when its profile says
    /// `deleteOption: Delete`, else detached.
    fn release_disks(&self, vm: &Resource) -> Outcome<()> {
        let profile = vm.properties.get("storageProfile");
        let option_of = |disk: &str| {
            let os = profile.and_then(|p| p.get("osDisk")).into_iter();
            let data = profile
                .and_then(|p| p.get("dataDisks"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            os.chain(data)
                .find(|d| {
                    d["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(disk))
                })
                .and_then(|d| d["deleteOption"].as_str())
                .unwrap_or("Detach")
                .to_owned()
        };
        for mut disk in state::list_resources(self.c, &vm.subscription, None)? {
            let attached = disk.r#type == DISK_TYPE
                && disk
                    .managed_by
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(&vm.id));
            if !attached {
                continue;
            }
            if option_of(&disk.name).eq_ignore_ascii_case("Delete") {
                state::delete_resource(self.c, &disk.id)?;
            } else {
                disk.managed_by = None;
                disk.properties["diskState"] = json!("Unattached");
                disk.changed = self.r.time();
                state::put_resource(self.c, &disk)?;
            }
        }
        Ok(())
    }
}

/// A row of a Resource Graph table from a document with some of its
/// columns: the others are empty strings (text columns) or null.
fn graph_row(doc: Value) -> Vec<Value> {
    graph::COLUMNS
        .iter()
        .map(|(column, ty)| match doc.get(*column) {
            Some(value) if !value.is_null() => value.clone(),
            _ if *ty == "string" => json!(""),
            _ if *column == "tags" => json!({}),
            _ => Value::Null,
        })
        .collect()
}

fn encode_skip_token(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"simulatorOffset\":{offset}}}"))
}

fn decode_skip_token(token: &str) -> Option<usize> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    doc["simulatorOffset"].as_u64().map(|n| n as usize)
}

/// Log categories (with their groups) and metric categories of a
/// diagnostic setting's scope.
#[allow(clippy::type_complexity)]
fn diagnostic_categories_of(
    scope: &Scope,
) -> (
    &'static [(&'static str, &'static [&'static str])],
    &'static [&'static str],
) {
    const ALL_METRICS: &[&str] = &["AllMetrics"];
    match scope {
        Scope::Subscription(_) => (
            &[
                ("Administrative", &[]),
                ("Security", &[]),
                ("ServiceHealth", &[]),
                ("Alert", &[]),
                ("Recommendation", &[]),
                ("Policy", &[]),
                ("Autoscale", &[]),
                ("ResourceHealth", &[]),
            ],
            &[],
        ),
        Scope::Group(..) => (&[], &[]),
        Scope::Resource(_, _, r) => match r.r#type.as_str() {
            VAULT_TYPE => (
                &[
                    ("AuditEvent", &["audit", "allLogs"]),
                    ("AzurePolicyEvaluationDetails", &["allLogs"]),
                ],
                ALL_METRICS,
            ),
            STORAGE_TYPE => (&[], &["Transaction"]),
            "Microsoft.Network/networkSecurityGroups" => (
                &[
                    ("NetworkSecurityGroupEvent", &["allLogs"]),
                    ("NetworkSecurityGroupRuleCounter", &["allLogs"]),
                ],
                &[],
            ),
            "Microsoft.Network/publicIPAddresses" => (
                &[
                    ("DDoSProtectionNotifications", &["allLogs"]),
                    ("DDoSMitigationFlowLogs", &["allLogs"]),
                    ("DDoSMitigationReports", &["allLogs"]),
                ],
                ALL_METRICS,
            ),
            _ => (&[], ALL_METRICS),
        },
    }
}

fn render_diagnostic_setting(d: &DiagnosticSetting) -> Value {
    json!({
        "id": format!("{}/providers/microsoft.insights/diagnosticSettings/{}", d.scope, d.name),
        "type": "Microsoft.Insights/diagnosticSettings",
        "name": d.name,
        "properties": d.properties,
    })
}

/// Instance `i` of a scale set, as the Compute provider shows it.
fn vmss_instance(vmss: &Resource, i: u64) -> Value {
    let profile = vmss
        .properties
        .get("virtualMachineProfile")
        .cloned()
        .unwrap_or(json!({}));
    let prefix = profile
        .pointer("/osProfile/computerNamePrefix")
        .and_then(Value::as_str)
        .unwrap_or(&vmss.name)
        .to_owned();
    let size = vmss
        .sku
        .as_ref()
        .and_then(|s| s.get("name"))
        .cloned()
        .unwrap_or(Value::Null);
    let digest = Sha256::digest(format!("{}#{i}", vmss.id.to_lowercase()).as_bytes());
    let hex = hex::encode(&digest[..16]);
    let vm_id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let mut storage = profile.get("storageProfile").cloned().unwrap_or(json!({}));
    if storage.get("osDisk").is_some() {
        storage["osDisk"]["name"] = json!(format!("{}_{}_OsDisk_1_{}", vmss.name, i, &hex[..32]));
    }
    json!({
        "id": format!("{}/virtualMachines/{i}", vmss.id),
        "name": format!("{}_{i}", vmss.name),
        "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "location": vmss.location,
        "instanceId": i.to_string(),
        "sku": vmss.sku,
        "tags": vmss.tags,
        "properties": {
            "latestModelApplied": true,
            "vmId": vm_id,
            "hardwareProfile": { "vmSize": size },
            "storageProfile": storage,
            "osProfile": {
                "computerName": format!("{prefix}{}", base36(i, 6)),
                "adminUsername": profile.pointer("/osProfile/adminUsername"),
            },
            "provisioningState": vmss.provisioning_state,
            "timeCreated": vmss.created,
            "instanceView": {
                "platformUpdateDomain": i % 5,
                "platformFaultDomain": i % 5,
                "computerName": format!("{prefix}{}", base36(i, 6)),
                "statuses": [
                    { "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded", "time": vmss.changed },
                    { "code": "PowerState/running", "level": "Info", "displayStatus": "VM running" },
                ],
            },
        },
    })
}

/// `n` in base 36 (digits, then upper-case letters), zero-padded to `width`.
fn base36(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(
            std::char::from_digit((n % 36) as u32, 36)
                .unwrap_or('0')
                .to_ascii_uppercase(),
        );
        n /= 36;
    }
    while digits.len() < width {
        digits.push('0');
    }
    digits.iter().rev().collect()
}

/// The path of a served request with its names replaced by placeholders
/// (`/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{name}`),
/// in canonical casing where the simulator knows the segment.
pub(crate) fn path_pattern(segments: &[String]) -> String {
    let canonical = |segment: &str| -> String {
        let lc = segment.to_ascii_lowercase();
        KNOWN_TYPES
            .iter()
            .flat_map(|ty| ty.split('/'))
            .chain(PATH_WORDS)
            .find(|word| word.eq_ignore_ascii_case(&lc))
            .map(|word| (*word).to_owned())
            .unwrap_or_else(|| segment.to_owned())
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let lc = segments[i].to_ascii_lowercase();
        let placeholder = match lc.as_str() {
            "subscriptions" => Some("{subscriptionId}"),
            "resourcegroups" => Some("{resourceGroupName}"),
            "operationresults" => Some("{operationId}"),
            _ => None,
        };
        if let Some(placeholder) = placeholder {
            out.push(canonical(&segments[i]));
            if i + 1 < segments.len() {
                out.push(placeholder.to_owned());
            }
            i += 2;
            continue;
        }
        if lc != "providers" {
            out.push(canonical(&segments[i]));
            i += 1;
            continue;
        }
        out.push("providers".into());
        if let Some(namespace) = segments.get(i + 1) {
            out.push(canonical(namespace));
        }
        i += 2;
        // Type / name pairs up to the next `providers`.
        let mut previous_type = String::new();
        let mut is_type = true;
        while i < segments.len() && !segments[i].eq_ignore_ascii_case("providers") {
            let lc = segments[i].to_ascii_lowercase();
            if is_type {
                out.push(canonical(&segments[i]));
                previous_type = lc.clone();
                // `eventtypes/management/values` is all literal.
                if lc == "eventtypes" {
                    out.extend(segments[i + 1..].iter().map(|s| canonical(s)));
                    return format!("/{}", out.join("/"));
                }
            } else {
                out.push(match previous_type.as_str() {
                    "tags" if lc == "default" => "default".to_owned(),
                    "locations" => "{location}".to_owned(),
                    "operations" => "{operationId}".to_owned(),
                    _ => "{name}".to_owned(),
                });
            }
            is_type = !is_type;
            i += 1;
        }
    }
    format!("/{}", out.join("/"))
}

/// Path segments the simulator answers besides resource types, in their
/// canonical casing.
const PATH_WORDS: [&str; 25] = [
    "subscriptions",
    "resourceGroups",
    "providers",
    "tenants",
    "locations",
    "operations",
    "operationresults",
    "resources",
    "instanceView",
    "start",
    "powerOff",
    "deallocate",
    "restart",
    "Microsoft.Authorization",
    "roleAssignments",
    "roleDefinitions",
    "Microsoft.Resources",
    "tags",
    "Microsoft.Insights",
    "eventtypes",
    "management",
    "values",
    "diagnosticSettings",
    "diagnosticSettingsCategories",
    "Microsoft.ResourceGraph",
];

// ---------------------------------------------------------------------------
// Rendering

fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// RFC 3339, a date-time without zone (UTC), or a date (midnight UTC).
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// An activity-log event (the Azure Monitor `EventData` shape).
fn event_doc(
    ctx: &Value,
    status: &str,
    sub_status: &str,
    operation_id: &str,
    now: DateTime<Utc>,
    tenant: &str,
) -> Value {
    let event_id = uuid::Uuid::new_v4().to_string();
    // .NET ticks, as in real event ids.
    let ticks = now.timestamp_micros() * 10 + 621_355_968_000_000_000;
    let resource_id = ctx["resourceId"].as_str().unwrap_or_default();
    let operation = ctx["operationName"].as_str().unwrap_or_default();
    let provider = operation.split('/').next().unwrap_or_default();
    let time = timestamp(now);
    let localized = |v: &str| json!({ "value": v, "localizedValue": v });
    let mut doc = json!({
        "authorization": { "action": operation, "scope": resource_id },
        "caller": ctx["caller"],
        "channels": "Operation",
        "claims": ctx["claims"],
        "correlationId": ctx["correlationId"],
        "description": "",
        "eventDataId": event_id,
        "eventName": if status == "Started" {
            json!({ "value": "BeginRequest", "localizedValue": "Begin request" })
        } else {
            json!({ "value": "EndRequest", "localizedValue": "End request" })
        },
        "category": localized("Administrative"),
        "eventTimestamp": time,
        "id": format!("{resource_id}/events/{event_id}/ticks/{ticks}"),
        "level": if status == "Failed" { "Error" } else { "Informational" },
        "operationId": operation_id,
        "operationName": localized(operation),
        "resourceProviderName": localized(provider),
        "resourceType": localized(ctx["resourceType"].as_str().unwrap_or_default()),
        "resourceId": resource_id,
        "status": localized(status),
        "subStatus": localized(sub_status),
        "submissionTimestamp": time,
        "subscriptionId": ctx["subscriptionId"],
        "tenantId": tenant,
        "httpRequest": {
            "clientRequestId": ctx["clientRequestId"],
            "clientIpAddress": ctx["clientIpAddress"],
            "method": ctx["method"],
        },
        "properties": {
            "eventCategory": "Administrative",
            "entity": resource_id,
            "message": operation,
            "statusCode": sub_status,
            "apiVersion": ctx["apiVersion"],
        },
    });
    if let Some(rg) = ctx["resourceGroupName"].as_str() {
        doc["resourceGroupName"] = json!(rg);
    }
    doc
}

fn render_group(rg: &ResourceGroup) -> Value {
    let mut doc = json!({
        "id": rg.id(),
        "name": rg.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": rg.location,
        "properties": { "provisioningState": rg.state },
    });
    if !rg.tags.is_empty() {
        doc["tags"] = Value::Object(rg.tags.clone());
    }
    if let Some(managed_by) = &rg.managed_by {
        doc["managedBy"] = json!(managed_by);
    }
    doc
}

fn render_locations(subscription: &str) -> Value {
    let value: Vec<Value> = LOCATIONS
        .iter()
        .map(|(name, display, geography)| {
            json!({
                "id": format!("/subscriptions/{subscription}/locations/{name}"),
                "name": name,
                "type": "Region",
                "displayName": display,
                "regionalDisplayName": format!("({geography}) {display}"),
                "metadata": { "regionType": "Physical", "regionCategory": "Recommended", "geographyGroup": geography },
            })
        })
        .collect();
    json!({ "value": value })
}

/// An entry of `GET …/resources`.
fn render_summary(r: &Resource) -> Value {
    let mut doc = json!({ "id": r.id, "name": r.name, "type": r.r#type });
    if let Some(location) = &r.location {
        doc["location"] = json!(location);
    }
    if let Some(kind) = &r.kind {
        doc["kind"] = json!(kind);
    }
    if let Some(sku) = &r.sku {
        doc["sku"] = sku.clone();
    }
    if let Some(managed_by) = &r.managed_by {
        doc["managedBy"] = json!(managed_by);
    }
    if !r.tags.is_empty() {
        doc["tags"] = Value::Object(r.tags.clone());
    }
    doc
}

/// The full resource document (`properties.provisioningState` added; a
/// VM's `properties.instanceView` on request).
fn render_resource(r: &Resource, with_instance_view: bool) -> Value {
    let mut doc = render_summary(r);
    let mut properties = match &r.properties {
        Value::Object(p) => p.clone(),
        _ => Map::new(),
    };
    properties.insert("provisioningState".into(), json!(r.provisioning_state));
    if with_instance_view {
        properties.insert("instanceView".into(), instance_view(r));
    }
    doc["properties"] = Value::Object(properties);
    doc
}

fn instance_view(vm: &Resource) -> Value {
    let provisioning = vm.provisioning_state.to_ascii_lowercase();
    let mut statuses = vec![json!({
        "code": format!("ProvisioningState/{provisioning}"),
        "level": "Info",
        "displayStatus": if provisioning == "succeeded" {
            "Provisioning succeeded".to_owned()
        } else {
            vm.provisioning_state.clone()
        },
        "time": vm.changed,
    })];
    if let Some(power) = &vm.power_state {
        statuses.push(json!({
            "code": format!("PowerState/{power}"),
            "level": "Info",
            "displayStatus": format!("VM {power}"),
        }));
    }
    json!({
        "computerName": vm.name,
        "osName": "ubuntu",
        "osVersion": "22.04",
        "hyperVGeneration": "V2",
        "vmAgent": {
            "vmAgentVersion": "2.10.0.8",
            "statuses": [{
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Ready",
                "message": "Guest Agent is running",
            }],
        },
        "statuses": statuses,
    })
}

fn role_assignment_id(ra: &RoleAssignment) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{}",
        ra.scope, ra.name
    )
}

fn render_role_assignment(ra: &RoleAssignment) -> Value {
    let scope = ArmId::parse(&ra.scope).ok();
    let subscription = scope
        .as_ref()
        .and_then(ArmId::subscription)
        .unwrap_or_default();
    json!({
        "id": role_assignment_id(ra),
        "name": ra.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!(
                "/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{}",
                ra.role_definition
            ),
            "principalId": ra.principal_id,
            "principalType": ra.principal_type,
            "scope": ra.scope,
            "condition": null,
            "conditionVersion": null,
            "description": ra.description,
            "createdOn": ra.created_on,
            "updatedOn": ra.updated_on,
            "createdBy": ra.created_by,
            "updatedBy": ra.updated_by,
            "delegatedManagedIdentityResourceId": null,
        },
    })
}

fn render_role_definition(subscription: &str, role: &BuiltInRole) -> Value {
    let (guid, name, description, actions, data_actions) = role;
    json!({
        "id": format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        "name": guid,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": name,
            "type": "BuiltInRole",
            "description": description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": actions,
                "notActions": [],
                "dataActions": data_actions,
                "notDataActions": [],
            }],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2021-11-11T20:13:47.8628684Z",
            "createdBy": null,
            "updatedBy": null,
        },
    })
}

fn render_tags(id: &str, tags: &Map<String, Value>) -> Value {
    json!({
        "id": id,
        "name": "default",
        "type": "Microsoft.Resources/tags",
        "properties": { "tags": tags },
    })
}

// ---------------------------------------------------------------------------
// Validation and ids

/// The role definition GUID of `/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`
/// or `/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
fn parse_role_definition_id(id: &str) -> Option<String> {
    let id = ArmId::parse(id).ok()?;
    let at_subscription_or_root = id.parent().is_some_and(|p| {
        p.is_root() || p.subscription().is_some_and(is_guid) && p.kind() == ScopeKind::Subscription
    });
    let definition =
        id.resource_type().as_deref() == Some("microsoft.authorization/roledefinitions");
    let guid = id.name().filter(|g| is_guid(g))?;
    (definition && at_subscription_or_root).then(|| guid.to_owned())
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{t1}/{n1}…`;
/// `names` may be shorter than the type's segments (a parent).
fn canonical_id(subscription: &str, rg: &str, ty: &str, names: &[&str]) -> String {
    let mut parts = ty.split('/');
    let namespace = parts.next().unwrap_or_default();
    let mut id = format!("/subscriptions/{subscription}/resourceGroups/{rg}/providers/{namespace}");
    for (ty, name) in parts.zip(names) {
        id.push('/');
        id.push_str(ty);
        id.push('/');
        id.push_str(name);
    }
    id
}

fn group_not_found(name: &str) -> Failure {
    fail(
        StatusCode::NOT_FOUND,
        "ResourceGroupNotFound",
        format!("Resource group '{name}' could not be found."),
    )
}

fn resource_not_found(rg: &str, namespace: &str, rest: &[String]) -> Failure {
    fail(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{namespace}/{}' under resource group '{rg}' was not found. \
             For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            rest.join("/")
        ),
    )
}

fn validate_group_name(name: &str) -> Outcome<()> {
    let valid = !name.is_empty()
        && name.chars().count() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'));
    if valid {
        Ok(())
    } else {
        Err(bad_request(
            "InvalidResourceGroup",
            format!(
                "The provided resource group name '{name}' has these invalid characters or length: \
                 it must be 1-90 letters, digits, '-', '_', '.', '(' or ')' and not end with '.'."
            ),
        ))
    }
}

fn validate_resource_name(ty: &str, name: &str) -> Outcome<()> {
    if ty == STORAGE_TYPE {
        let valid = (3..=24).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(bad_request(
                "AccountNameInvalid",
                format!(
                    "{name} is not a valid storage account name. Storage account name must be between 3 and 24 \
                     characters in length and use numbers and lower-case letters only."
                ),
            ));
        }
    }
    let valid = !name.is_empty()
        && name.len() <= 260
        && !name.ends_with('.')
        && !name
            .chars()
            .any(|c| c.is_control() || "<>%&:\\?/#*".contains(c));
    if valid {
        Ok(())
    } else {
        Err(bad_request(
            "InvalidResourceName",
            format!("The resource name '{name}' is invalid."),
        ))
    }
}

/// A tags object: string values, names without reserved characters.
fn tag_map(value: &Value) -> Outcome<Map<String, Value>> {
    let Value::Object(map) = value else {
        return Err(bad_request(
            "InvalidRequestFormat",
            "Cannot deserialize the request content: 'tags' must be an object of strings.",
        ));
    };
    if map.len() > 50 {
        return Err(bad_request(
            "InvalidTagCount",
            "A resource can have at most 50 tags.",
        ));
    }
    for (name, value) in map {
        if name.is_empty() || name.chars().count() > 512 {
            return Err(bad_request(
                "InvalidTagNameLength",
                format!("The tag name '{name}' must be 1 to 512 characters long."),
            ));
        }
        if name
            .chars()
            .any(|c| c.is_control() || "<>%&\\?/".contains(c))
        {
            return Err(bad_request(
                "InvalidTagNameCharacters",
                format!(
                    "The tag names '{name}' have reserved characters '<,>,%,&,\\,?,/' or control characters."
                ),
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(bad_request(
                "InvalidRequestFormat",
                format!(
                    "Cannot deserialize the request content: the value of tag '{name}' must be a string."
                ),
            ));
        };
        if text.chars().count() > 256 {
            return Err(bad_request(
                "InvalidTagValueLength",
                format!("The value of tag '{name}' exceeds 256 characters."),
            ));
        }
    }
    Ok(map.clone())
}

/// Tag names match case-insensitively, values exactly.
fn tag_matches(tags: &Map<String, Value>, name: &str, value: Option<&str>) -> bool {
    tags.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case(name) && value.is_none_or(|value| v.as_str() == Some(value))
    })
}

pub(crate) use crate::identity::is_guid;

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_is_found_after_any_scope() {
        let path = |p: &str| -> Vec<String> { p.split('/').map(str::to_lowercase).collect() };
        let lc = path(
            "subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm/providers/microsoft.authorization/roleassignments/x",
        );
        let lc: Vec<&str> = lc.iter().map(String::as_str).collect();
        assert_eq!(extension_at(&lc), Some((8, Extension::RoleAssignments)));
        let lc = path("subscriptions/s/providers/microsoft.resources/tags/default");
        let lc: Vec<&str> = lc.iter().map(String::as_str).collect();
        assert_eq!(extension_at(&lc), Some((2, Extension::Tags)));
        let lc = path(
            "subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm",
        );
        let lc: Vec<&str> = lc.iter().map(String::as_str).collect();
        assert_eq!(extension_at(&lc), None);
    }

    #[test]
    fn role_definition_ids_in_both_forms() {
        let guid = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
        assert_eq!(
            parse_role_definition_id(&format!(
                "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/providers/Microsoft.Authorization/roleDefinitions/{guid}"
            ))
            .as_deref(),
            Some(guid)
        );
        assert_eq!(
            parse_role_definition_id(&format!(
                "/providers/Microsoft.Authorization/roleDefinitions/{}",
                guid.to_uppercase()
            ))
            .as_deref(),
            Some(guid)
        );
        assert_eq!(parse_role_definition_id("Reader"), None);
    }

    #[test]
    fn canonical_ids_interleave_types_and_names() {
        assert_eq!(
            canonical_id(
                "s",
                "rg",
                "Microsoft.Compute/virtualMachines/extensions",
                &["vm", "ext"]
            ),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/ext"
        );
        assert_eq!(
            canonical_id(
                "s",
                "rg",
                "Microsoft.Compute/virtualMachines/extensions",
                &["vm"]
            ),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        );
    }

    #[test]
    fn path_patterns_name_the_route() {
        let pattern = |path: &str| {
            let segments: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            path_pattern(&segments)
        };
        assert_eq!(pattern("/subscriptions"), "/subscriptions");
        assert_eq!(pattern("/tenants"), "/tenants");
        assert_eq!(
            pattern("/SUBSCRIPTIONS/abc/resourcegroups/Dev-Web"),
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
        );
        assert_eq!(
            pattern(
                "/subscriptions/s/resourceGroups/rg/providers/microsoft.compute/VIRTUALMACHINES/web-01/start"
            ),
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{name}/start"
        );
        assert_eq!(
            pattern(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/ext"
            ),
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{name}/extensions/{name}"
        );
        assert_eq!(
            pattern(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/microsoft.insights/diagnosticSettings/audit"
            ),
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults/{name}/providers/Microsoft.Insights/diagnosticSettings/{name}"
        );
        assert_eq!(
            pattern("/subscriptions/s/providers/Microsoft.Insights/eventtypes/management/values"),
            "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values"
        );
        assert_eq!(
            pattern(
                "/subscriptions/s/providers/Microsoft.Compute/locations/westeurope/operations/x"
            ),
            "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/operations/{operationId}"
        );
        assert_eq!(
            pattern("/subscriptions/s/operationresults/x"),
            "/subscriptions/{subscriptionId}/operationresults/{operationId}"
        );
        assert_eq!(
            pattern(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Resources/tags/default"
            ),
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Resources/tags/default"
        );
        assert_eq!(
            pattern("/providers/microsoft.resourcegraph/resources"),
            "/providers/Microsoft.ResourceGraph/resources"
        );
    }

    #[test]
    fn skip_tokens_round_trip() {
        assert_eq!(decode_skip_token(&encode_skip_token(42)), Some(42));
        assert_eq!(decode_skip_token("not base64!"), None);
        assert_eq!(base36(0, 6), "000000");
        assert_eq!(base36(35, 6), "00000Z");
        assert_eq!(base36(36, 2), "10");
    }

    #[test]
    fn times_in_filters() {
        assert!(parse_time("2024-05-01T10:00:00Z").is_some());
        assert!(parse_time("2024-05-01T10:00:00.1234567+02:00").is_some());
        assert!(parse_time("2024-05-01T10:00:00").is_some());
        assert!(parse_time("2024-05-01").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query_value("2024-07-01-preview"),
            "2024-07-01-preview"
        );
        assert_eq!(encode_query_value("a b&c"), "a%20b%26c");
    }
}
