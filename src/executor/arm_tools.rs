//! Warden's built-in Azure tools: an MCP server inside Warden that performs
//! Azure Resource Manager calls itself, with Warden's own identity, through
//! [`ArmClient`]. It is served to the gateway as an upstream like any other
//! (`[upstreams.NAME] builtin = "arm"`), so every call passes the same
//! pipeline: the catalog (`schemas/catalog/warden-arm.toml`) names each
//! tool's operations and resources, policy decides, the audit log records.
//!
//! Each result is the ARM answer as JSON text. Its `_meta` carries the
//! call's `x-ms-correlation-request-id` under [`CORRELATION_META`], which
//! the pipeline copies into the outcome audit record. ARM errors are tool
//! errors (`isError: true`) that quote Azure's code and message.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::azure::client::{ArmClient, ArmError, ArmResponse};
use crate::azure::id::{ArmId, segment_problem};

/// The `_meta` key of a result's Azure correlation id.
pub const CORRELATION_META: &str = "warden/azureCorrelationId";

/// The built-in tools' name in `[upstreams.NAME] builtin = "..."`.
pub const BUILTIN_NAME: &str = crate::config::BUILTIN_ARM;

#[derive(Debug, Deserialize, JsonSchema)]
struct SubscriptionArgs {
    /// Subscription id (GUID).
    subscription: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct GroupArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Resource group name.
    #[serde(rename = "resource-group")]
    resource_group: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct GroupCreateArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Resource group name.
    #[serde(rename = "resource-group")]
    resource_group: String,
    /// Azure region, e.g. `westeurope`.
    location: String,
    /// Tags to set.
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ScopeListArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Resource group name; all of the subscription when absent.
    #[serde(rename = "resource-group", default)]
    resource_group: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ResourceListArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Resource group name; all of the subscription when absent.
    #[serde(rename = "resource-group", default)]
    resource_group: Option<String>,
    /// Only resources of this type, e.g. `Microsoft.Compute/virtualMachines`.
    #[serde(rename = "resource-type", default)]
    resource_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ResourceGetArgs {
    /// Full ARM resource id.
    #[serde(rename = "resource-id")]
    resource_id: String,
    /// API version; default: Warden's table for the resource type.
    #[serde(rename = "api-version", default)]
    api_version: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct VmArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Resource group name.
    #[serde(rename = "resource-group")]
    resource_group: String,
    /// Virtual machine name.
    #[serde(rename = "vm-name")]
    vm_name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct RoleAssignmentListArgs {
    /// Scope: a subscription, resource group or resource id.
    scope: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct RoleAssignmentCreateArgs {
    /// Scope: a subscription, resource group or resource id.
    scope: String,
    /// Role definition: a full id or the role's GUID.
    #[serde(rename = "role-definition-id")]
    role_definition_id: String,
    /// Object id of the user, group or service principal.
    #[serde(rename = "principal-id")]
    principal_id: String,
    /// `User`, `Group` or `ServicePrincipal`.
    #[serde(rename = "principal-type", default)]
    principal_type: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct RoleAssignmentDeleteArgs {
    /// Scope of the assignment.
    scope: String,
    /// The assignment's name (a GUID).
    #[serde(rename = "assignment-name")]
    assignment_name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ActivityLogArgs {
    /// Subscription id (GUID).
    subscription: String,
    /// Only events of this resource group.
    #[serde(rename = "resource-group", default)]
    resource_group: Option<String>,
    /// How far back, in hours (default 24, at most 2160).
    #[serde(default)]
    hours: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct TagsArgs {
    /// Full ARM id of the resource, resource group or subscription.
    #[serde(rename = "resource-id")]
    resource_id: String,
    /// Tags to merge, replace or delete.
    tags: BTreeMap<String, String>,
    /// `merge` (default), `replace` or `delete`.
    #[serde(default)]
    operation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
struct ArmRequestArgs {
    /// `GET`, `PUT`, `PATCH`, `DELETE` or `POST`.
    method: String,
    /// ARM path without host or query, e.g.
    /// `/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>/start`.
    path: String,
    /// The `api-version` query parameter.
    #[serde(rename = "api-version")]
    api_version: String,
    /// JSON body for PUT, PATCH and POST.
    #[serde(default)]
    body: Option<Value>,
}

/// The built-in tools' MCP server (one per session, sharing the client).
#[derive(Clone)]
pub struct ArmTools {
    client: Arc<ArmClient>,
    tools: ToolRouter<ArmTools>,
}

impl std::fmt::Debug for ArmTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmTools").finish_non_exhaustive()
    }
}

impl ArmTools {
    pub fn new(client: Arc<ArmClient>) -> Self {
        ArmTools {
            client,
            tools: Self::tool_router(),
        }
    }

    /// Every tool this server lists.
    pub fn tool_list() -> Vec<Tool> {
        Self::tool_router().list_all()
    }

    /// The api-version of a resource type, or why there is none.
    fn version(&self, resource_type: &str) -> Result<String, String> {
        self.client
            .api_version(resource_type)
            .ok_or_else(|| format!("no api-version known for {resource_type}; pass `api-version`"))
    }

    /// Sends one ARM request. `path` and `api_version` are what the tool
    /// built from its arguments, or why it could not: a bad argument is a
    /// tool error and no request is sent.
    async fn call(
        &self,
        method: Method,
        path: Result<String, String>,
        api_version: Result<String, String>,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> CallToolResult {
        let (path, api_version) = match (path, api_version) {
            (Ok(path), Ok(v)) => (path, v),
            (Err(message), _) | (_, Err(message)) => return failure(message),
        };
        let answer = self
            .client
            .request(method, &path, &api_version, query, body.as_ref())
            .await;
        outcome(answer)
    }
}

/// A tool result from an ARM answer or error.
fn outcome(answer: Result<ArmResponse, ArmError>) -> CallToolResult {
    let (mut result, correlation) = match answer {
        Ok(response) => {
            let text = match &response.body {
                Value::Null => json!({ "status": response.status }).to_string(),
                body => serde_json::to_string_pretty(body).unwrap_or_default(),
            };
            (
                CallToolResult::success(vec![ContentBlock::text(text)]),
                Some(response.correlation_id),
            )
        }
        Err(error) => {
            let correlation = error.correlation_id().map(str::to_owned);
            (failure(error.to_string()), correlation)
        }
    };
    if let Some(id) = correlation {
        let mut meta = JsonObject::new();
        meta.insert(CORRELATION_META.to_owned(), Value::String(id));
        result.meta = Some(MetaObject(meta));
    }
    result
}

fn failure(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// `value` of the argument `argument` as one ARM id segment (a name), or a
/// message that names the argument and what is wrong. Names are checked
/// before any URL is built, whatever policy decided: a name such as
/// `a/../../b` never reaches Azure as a path.
fn segment<'a>(argument: &str, value: &'a str) -> Result<&'a str, String> {
    match segment_problem(value) {
        None => Ok(value),
        Some(problem) => Err(format!(
            "`{argument}` {value:?} is not a valid Azure name: {problem}"
        )),
    }
}

/// The ARM id given in the argument `argument`, parsed strictly.
fn id_arg(argument: &str, value: &str) -> Result<ArmId, String> {
    ArmId::parse(value).map_err(|e| format!("`{argument}`: {e}"))
}

fn group_id(subscription: &str, group: &str) -> Result<ArmId, String> {
    let subscription = segment("subscription", subscription)?;
    let group = segment("resource-group", group)?;
    ArmId::for_subscription(subscription)
        .and_then(|s| s.with_resource_group(group))
        .map_err(|e| e.to_string())
}

fn group_path(subscription: &str, group: &str) -> Result<String, String> {
    group_id(subscription, group).map(|id| id.display().to_owned())
}

fn vm_path(args: &VmArgs) -> Result<String, String> {
    let name = segment("vm-name", &args.vm_name)?;
    group_id(&args.subscription, &args.resource_group)?
        .with_provider("Microsoft.Compute/virtualMachines", name)
        .map(|id| id.display().to_owned())
        .map_err(|e| e.to_string())
}

fn scope_path(subscription: &str, group: Option<&str>) -> Result<String, String> {
    match group {
        Some(group) => group_path(subscription, group),
        None => ArmId::for_subscription(segment("subscription", subscription)?)
            .map(|id| id.display().to_owned())
            .map_err(|e| e.to_string()),
    }
}

/// A role assignment scope: a subscription, resource group or resource id
/// (management groups and the tenant root are ARM scopes too).
fn scope_arg(scope: &str) -> Result<ArmId, String> {
    let trimmed = scope.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(ArmId::root());
    }
    id_arg("scope", trimmed)
}

/// The path under `scope` (which has no trailing `/`, or is the root).
fn under(scope: &ArmId, tail: &str) -> String {
    if scope.is_root() {
        format!("/{tail}")
    } else {
        format!("{}/{tail}", scope.display())
    }
}

/// The resource type of an ARM id (`Microsoft.Compute/virtualMachines`,
/// `Microsoft.Resources/resourceGroups`, ...), for its api-version.
fn type_of(id: &str) -> String {
    let segs: Vec<&str> = id.trim_matches('/').split('/').collect();
    match segs
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
    {
        Some(i) if segs.len() > i + 2 => {
            let mut types = vec![segs[i + 1].to_owned()];
            types.extend(segs[i + 2..].iter().step_by(2).map(|s| (*s).to_owned()));
            types.join("/")
        }
        _ if segs.len() > 2 => "Microsoft.Resources/resourceGroups".to_owned(),
        _ => "Microsoft.Resources/subscriptions".to_owned(),
    }
}

/// An ARM path given whole (`arm_request`): it starts with `/`, carries no
/// query, and each of its segments is a valid ARM segment.
fn arm_path(path: &str) -> Result<&str, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`path` {path:?} must start with `/`"));
    };
    if path.contains(['?', '#']) {
        return Err(format!(
            "`path` {path:?} must carry no query string; pass `api-version` on its own"
        ));
    }
    for part in rest.split('/') {
        if let Some(problem) = segment_problem(part) {
            return Err(format!(
                "`path` {path:?} has a segment {part:?} that is not valid: {problem}"
            ));
        }
    }
    Ok(path)
}

const ROLE_ASSIGNMENTS: &str = "Microsoft.Authorization/roleAssignments";

#[tool_router]
impl ArmTools {
    #[tool(
        description = "List the Azure subscriptions Warden's identity can see",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_subscription_list(&self) -> CallToolResult {
        let v = self.version("Microsoft.Resources/subscriptions");
        self.call(Method::GET, Ok("/subscriptions".into()), v, &[], None)
            .await
    }

    #[tool(
        description = "List the resource groups of a subscription",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_group_list(&self, Parameters(a): Parameters<SubscriptionArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Resources/resourceGroups");
        let path = segment("subscription", &a.subscription)
            .map(|subscription| format!("/subscriptions/{subscription}/resourcegroups"));
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "Get a resource group",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_group_get(&self, Parameters(a): Parameters<GroupArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Resources/resourceGroups");
        let path = group_path(&a.subscription, &a.resource_group);
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "Create (or update) a resource group",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn arm_group_create(&self, Parameters(a): Parameters<GroupCreateArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Resources/resourceGroups");
        let path = group_path(&a.subscription, &a.resource_group);
        let body = json!({ "location": a.location, "tags": a.tags });
        self.call(Method::PUT, path, v, &[], Some(body)).await
    }

    #[tool(
        description = "Delete a resource group and every resource in it (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn arm_group_delete(&self, Parameters(a): Parameters<GroupArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Resources/resourceGroups");
        let path = group_path(&a.subscription, &a.resource_group);
        self.call(Method::DELETE, path, v, &[], None).await
    }

    #[tool(
        description = "List the resources of a subscription or resource group, optionally of one type",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_resource_list(
        &self,
        Parameters(a): Parameters<ResourceListArgs>,
    ) -> CallToolResult {
        let v = self.version("Microsoft.Resources/resources");
        let path = scope_path(&a.subscription, a.resource_group.as_deref())
            .map(|scope| format!("{scope}/resources"));
        let filter = a
            .resource_type
            .map(|t| format!("resourceType eq '{}'", t.replace('\'', "")));
        let query: Vec<(&str, &str)> = filter.iter().map(|f| ("$filter", f.as_str())).collect();
        self.call(Method::GET, path, v, &query, None).await
    }

    #[tool(
        description = "Get any resource by its ARM id",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_resource_get(&self, Parameters(a): Parameters<ResourceGetArgs>) -> CallToolResult {
        let id = id_arg("resource-id", &a.resource_id);
        let v = match a.api_version {
            Some(v) => Ok(v),
            None => self.version(&type_of(&a.resource_id)),
        };
        let path = id.map(|id| id.display().to_owned());
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "List virtual machines of a subscription or resource group",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_vm_list(&self, Parameters(a): Parameters<ScopeListArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Compute/virtualMachines");
        let path = scope_path(&a.subscription, a.resource_group.as_deref())
            .map(|scope| format!("{scope}/providers/Microsoft.Compute/virtualMachines"));
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "Get a virtual machine with its power state",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_vm_get(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Compute/virtualMachines");
        self.call(
            Method::GET,
            vm_path(&a),
            v,
            &[("$expand", "instanceView")],
            None,
        )
        .await
    }

    #[tool(
        description = "Start a virtual machine (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_vm_start(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        self.vm_action(&a, "start").await
    }

    #[tool(
        description = "Power off a virtual machine, still billed for compute (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_vm_power_off(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        self.vm_action(&a, "powerOff").await
    }

    #[tool(
        description = "Stop and deallocate a virtual machine (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_vm_deallocate(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        self.vm_action(&a, "deallocate").await
    }

    #[tool(
        description = "Restart a virtual machine (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_vm_restart(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        self.vm_action(&a, "restart").await
    }

    #[tool(
        description = "Delete a virtual machine (waits for Azure to finish)",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn arm_vm_delete(&self, Parameters(a): Parameters<VmArgs>) -> CallToolResult {
        let v = self.version("Microsoft.Compute/virtualMachines");
        self.call(Method::DELETE, vm_path(&a), v, &[], None).await
    }

    #[tool(
        description = "List storage accounts of a subscription or resource group",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_storage_account_list(
        &self,
        Parameters(a): Parameters<ScopeListArgs>,
    ) -> CallToolResult {
        let v = self.version("Microsoft.Storage/storageAccounts");
        let path = scope_path(&a.subscription, a.resource_group.as_deref())
            .map(|scope| format!("{scope}/providers/Microsoft.Storage/storageAccounts"));
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "List role assignments at a scope (and inherited ones)",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_role_assignment_list(
        &self,
        Parameters(a): Parameters<RoleAssignmentListArgs>,
    ) -> CallToolResult {
        let v = self.version(ROLE_ASSIGNMENTS);
        let path = scope_arg(&a.scope)
            .map(|scope| under(&scope, &format!("providers/{ROLE_ASSIGNMENTS}")));
        self.call(Method::GET, path, v, &[], None).await
    }

    #[tool(
        description = "Assign a role to a principal at a scope",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_role_assignment_create(
        &self,
        Parameters(a): Parameters<RoleAssignmentCreateArgs>,
    ) -> CallToolResult {
        let v = self.version(ROLE_ASSIGNMENTS);
        let scope = match scope_arg(&a.scope) {
            Ok(scope) => scope,
            Err(message) => return failure(message),
        };
        let role = if a.role_definition_id.starts_with('/') {
            id_arg("role-definition-id", &a.role_definition_id).map(|id| id.display().to_owned())
        } else {
            segment("role-definition-id", &a.role_definition_id).map(|role| {
                let at = ArmId::root();
                let subscription = scope
                    .ancestor(crate::azure::id::ScopeKind::Subscription)
                    .unwrap_or(at);
                under(
                    &subscription,
                    &format!("providers/Microsoft.Authorization/roleDefinitions/{role}"),
                )
            })
        };
        let role = match role {
            Ok(role) => role,
            Err(message) => return failure(message),
        };
        let mut properties = json!({ "roleDefinitionId": role, "principalId": a.principal_id });
        if let Some(kind) = a.principal_type {
            properties["principalType"] = Value::String(kind);
        }
        let name = uuid::Uuid::new_v4();
        let path = Ok(under(
            &scope,
            &format!("providers/{ROLE_ASSIGNMENTS}/{name}"),
        ));
        self.call(
            Method::PUT,
            path,
            v,
            &[],
            Some(json!({ "properties": properties })),
        )
        .await
    }

    #[tool(
        description = "Remove a role assignment",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn arm_role_assignment_delete(
        &self,
        Parameters(a): Parameters<RoleAssignmentDeleteArgs>,
    ) -> CallToolResult {
        let v = self.version(ROLE_ASSIGNMENTS);
        let path = scope_arg(&a.scope).and_then(|scope| {
            let name = segment("assignment-name", &a.assignment_name)?;
            Ok(under(
                &scope,
                &format!("providers/{ROLE_ASSIGNMENTS}/{name}"),
            ))
        });
        self.call(Method::DELETE, path, v, &[], None).await
    }

    #[tool(
        description = "Query the activity log (management events) of a subscription or resource group",
        annotations(read_only_hint = true, open_world_hint = true)
    )]
    async fn arm_activity_log_query(
        &self,
        Parameters(a): Parameters<ActivityLogArgs>,
    ) -> CallToolResult {
        let hours = a.hours.unwrap_or(24).clamp(1, 2160);
        let since = chrono::Utc::now() - chrono::Duration::hours(i64::from(hours));
        let mut filter = format!(
            "eventTimestamp ge '{}'",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        if let Some(group) = &a.resource_group {
            filter.push_str(&format!(
                " and resourceGroupName eq '{}'",
                group.replace('\'', "")
            ));
        }
        let v = self.version("Microsoft.Insights/eventtypes");
        let path = segment("subscription", &a.subscription).map(|subscription| {
            format!(
                "/subscriptions/{subscription}/providers/Microsoft.Insights/eventtypes/management/values"
            )
        });
        self.call(Method::GET, path, v, &[("$filter", filter.as_str())], None)
            .await
    }

    #[tool(
        description = "Merge, replace or delete tags of a resource, resource group or subscription",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            open_world_hint = true
        )
    )]
    async fn arm_tags_set(&self, Parameters(a): Parameters<TagsArgs>) -> CallToolResult {
        let operation = match a
            .operation
            .as_deref()
            .unwrap_or("merge")
            .to_ascii_lowercase()
            .as_str()
        {
            "merge" => "Merge",
            "replace" => "Replace",
            "delete" => "Delete",
            other => {
                return failure(format!(
                    "operation {other:?} is not one of merge, replace, delete"
                ));
            }
        };
        let v = self.version("Microsoft.Resources/tags");
        let path = id_arg("resource-id", a.resource_id.trim_end_matches('/'))
            .map(|id| under(&id, "providers/Microsoft.Resources/tags/default"));
        let body = json!({ "operation": operation, "properties": { "tags": a.tags } });
        self.call(Method::PATCH, path, v, &[], Some(body)).await
    }

    #[tool(
        description = "Send any Azure Resource Manager request; it is authorized as the operation \
                       its method and path name (e.g. POST .../virtualMachines/x/start is \
                       Microsoft.Compute/virtualMachines/start/action)",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            open_world_hint = true
        )
    )]
    async fn arm_request(&self, Parameters(a): Parameters<ArmRequestArgs>) -> CallToolResult {
        let method = match a.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "POST" => Method::POST,
            other => return failure(format!("method {other:?} is not an ARM method")),
        };
        let path = arm_path(&a.path).map(str::to_owned);
        self.call(method, path, Ok(a.api_version), &[], a.body)
            .await
    }
}

impl ArmTools {
    async fn vm_action(&self, a: &VmArgs, action: &str) -> CallToolResult {
        let v = self.version("Microsoft.Compute/virtualMachines");
        let path = vm_path(a).map(|vm| format!("{vm}/{action}"));
        self.call(Method::POST, path, v, &[], None).await
    }
}

#[tool_handler(router = self.tools)]
impl ServerHandler for ArmTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warden-arm", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Azure Resource Manager tools run by Warden with its own identity. Ids are ARM \
                 ids (/subscriptions/<id>/resourceGroups/<name>/...).",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Inventory, InventoryTool, Source};

    const INVENTORY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/catalog/warden-arm.inventory.json"
    );

    /// The inventory the catalog is checked against is the tools this
    /// server lists (`WARDEN_WRITE_INVENTORY=1` rewrites it).
    #[test]
    fn the_catalog_inventory_is_the_tool_list() {
        let listed = Inventory {
            server: "warden-arm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            tools: ArmTools::tool_list()
                .iter()
                .map(InventoryTool::from_tool)
                .collect(),
        };
        let text = listed.to_file_text();
        if std::env::var_os("WARDEN_WRITE_INVENTORY").is_some() {
            std::fs::write(INVENTORY, &text).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(INVENTORY).unwrap(),
            text,
            "schemas/catalog/warden-arm.inventory.json is stale: rerun with WARDEN_WRITE_INVENTORY=1"
        );
    }

    /// Every built-in tool has an explicit catalog entry, and the
    /// destructive ones never resolve to a read.
    #[test]
    fn every_tool_has_a_catalog_entry() {
        let catalog = Catalog::builtin().unwrap();
        for tool in ArmTools::tool_list() {
            assert!(
                catalog.has_entry(&tool.name),
                "{} has no catalog entry",
                tool.name
            );
            let destructive = tool
                .annotations
                .as_ref()
                .and_then(|a| a.destructive_hint)
                .unwrap_or(false);
            let args = json!({
                "subscription": "00000000-0000-4000-8000-000000000001",
                "resource-group": "dev-web",
                "vm-name": "web-01",
                "scope": "/subscriptions/00000000-0000-4000-8000-000000000001",
                "resource-id": "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/dev-web",
                "assignment-name": "6f1c0d4e-0000-4000-8000-00000000a001",
                "method": "DELETE",
                "path": "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/dev-web",
                "api-version": "2021-04-01",
            });
            let resolution = catalog.resolve(&tool.name, &args, tool.annotations.as_ref());
            assert_eq!(resolution.source, Source::Catalog, "{}", tool.name);
            assert!(
                resolution.problem.is_none(),
                "{}: {:?}",
                tool.name,
                resolution.problem
            );
            if destructive {
                assert!(
                    resolution
                        .operations
                        .iter()
                        .all(|o| o.class != crate::catalog::Class::Read),
                    "{} is destructive but resolves to a read",
                    tool.name
                );
            }
        }
    }

    #[test]
    fn arm_requests_resolve_to_the_operation_they_name() {
        let catalog = Catalog::builtin().unwrap();
        let vm = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01";
        let cases = [
            ("POST", format!("{vm}/start"), "Microsoft.Compute/virtualMachines/start/action", "action"),
            ("DELETE", vm.to_owned(), "Microsoft.Compute/virtualMachines/delete", "delete"),
            (
                "PUT",
                "/subscriptions/00000000-0000-4000-8000-000000000001/providers/Microsoft.Authorization/roleAssignments/6f1c0d4e-0000-4000-8000-00000000a001".to_owned(),
                "Microsoft.Authorization/roleAssignments/write",
                "privileged",
            ),
        ];
        for (method, path, op, class) in cases {
            let r = catalog.resolve(
                "arm_request",
                &json!({"method": method, "path": path, "api-version": "2024-07-01"}),
                None,
            );
            assert_eq!(r.operations.len(), 1);
            assert_eq!(r.operations[0].azure_op, op);
            assert_eq!(r.operations[0].class.as_str(), class, "{op}");
        }
        let bad = catalog.resolve(
            "arm_request",
            &json!({"method": "GET", "path": "https://evil.example/subscriptions", "api-version": "1"}),
            None,
        );
        assert_eq!(bad.operations[0].class, crate::catalog::Class::Unknown);
        assert!(bad.problem.unwrap().contains("must start with `/`"));
    }

    #[test]
    fn resource_types_of_ids() {
        assert_eq!(
            type_of(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v"
            ),
            "Microsoft.Compute/virtualMachines"
        );
        assert_eq!(
            type_of(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a/blobServices/default"
            ),
            "Microsoft.Storage/storageAccounts/blobServices"
        );
        assert_eq!(
            type_of("/subscriptions/s/resourceGroups/g"),
            "Microsoft.Resources/resourceGroups"
        );
        assert_eq!(
            type_of("/subscriptions/s"),
            "Microsoft.Resources/subscriptions"
        );
    }

    fn vm(subscription: &str, group: &str, name: &str) -> VmArgs {
        VmArgs {
            subscription: subscription.into(),
            resource_group: group.into(),
            vm_name: name.into(),
        }
    }

    const SUB: &str = "00000000-0000-4000-8000-000000000001";

    /// Names that are not one ARM segment are refused, naming the
    /// argument, before any URL exists.
    #[test]
    fn names_that_are_not_arm_segments_are_refused_before_a_url_is_built() {
        assert_eq!(
            vm_path(&vm(SUB, "dev-web", "web-01")).unwrap(),
            format!(
                "/subscriptions/{SUB}/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01"
            )
        );
        for (args, argument) in [
            (vm(SUB, "dev-web", "a/../../b"), "vm-name"),
            (vm(SUB, "dev-web", "a/b/c"), "vm-name"),
            (vm(SUB, "dev-web", ".."), "vm-name"),
            (vm(SUB, "dev-web", ""), "vm-name"),
            (vm(SUB, "dev-web", "web?x=1"), "vm-name"),
            (vm(SUB, "..", "web-01"), "resource-group"),
            (vm(SUB, "a/b", "web-01"), "resource-group"),
            (vm("s/../x", "dev-web", "web-01"), "subscription"),
        ] {
            let error = vm_path(&args).unwrap_err();
            assert!(error.starts_with(&format!("`{argument}`")), "{error}");
        }
        assert!(
            scope_path("..", None)
                .unwrap_err()
                .contains("`subscription`")
        );
        assert!(
            group_path(SUB, "rg\\x")
                .unwrap_err()
                .contains("`resource-group`")
        );
    }

    #[test]
    fn ids_and_scopes_are_parsed_strictly() {
        let scope = scope_arg(&format!("/subscriptions/{SUB}/")).unwrap();
        assert_eq!(
            under(&scope, "providers/Microsoft.Authorization/roleAssignments"),
            format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments")
        );
        assert_eq!(
            under(&scope_arg("/").unwrap(), "providers/x"),
            "/providers/x"
        );
        for bad in [
            format!("/subscriptions/{SUB}/resourceGroups/../x"),
            format!("/subscriptions/{SUB}/resourceGroups//x"),
            "subscriptions/x".to_owned(),
        ] {
            assert!(scope_arg(&bad).unwrap_err().starts_with("`scope`"), "{bad}");
            assert!(id_arg("resource-id", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_paths_are_checked_segment_by_segment() {
        let good = format!(
            "/subscriptions/{SUB}/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01/start"
        );
        assert_eq!(arm_path(&good).unwrap(), good);
        for (bad, says) in [
            (
                format!("/subscriptions/{SUB}/resourceGroups/dev-web/../prod"),
                "relative",
            ),
            (format!("/subscriptions/{SUB}//resourceGroups"), "empty"),
            (format!("/subscriptions/{SUB}/"), "empty"),
            (format!("subscriptions/{SUB}"), "must start with `/`"),
            (format!("/subscriptions/{SUB}?api-version=1"), "no query"),
        ] {
            let error = arm_path(&bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
