//! The Azure RBAC operation of a raw ARM request, named the way Azure's
//! role definitions name it: `DELETE .../virtualMachines/vm1` is
//! `Microsoft.Compute/virtualMachines/delete`, `POST .../virtualMachines/vm1/start`
//! is `Microsoft.Compute/virtualMachines/start/action`.
//!
//! Rules:
//!
//! - The operation's type is read from the last `providers/<Namespace>`
//!   segment of the path (extension resources such as role assignments on a
//!   VM name their own provider), followed by every child type after it:
//!   `.../providers/Microsoft.Storage/storageAccounts/sa/blobServices/default`
//!   is `Microsoft.Storage/storageAccounts/blobServices`.
//! - Without a provider, the type is `Microsoft.Resources/...` with the path's
//!   types: `/subscriptions/s/resourceGroups/rg` is
//!   `Microsoft.Resources/subscriptions/resourceGroups`, `/subscriptions/s/resources`
//!   `Microsoft.Resources/subscriptions/resources`, `/tenants`
//!   `Microsoft.Resources/tenants`.
//! - The verb: `GET`/`HEAD` → `read`, `PUT`/`PATCH` → `write`, `DELETE` →
//!   `delete`, `POST` → `<last segment>/action` when the path ends with a
//!   segment after a resource name (`.../vm1/start`), else `action`.
//!   Under `GET`, a path ending in a type (a collection, or a sub-resource
//!   such as `instanceView`) reads that type.
//! - The resource is the narrowest scope the path names in full (a
//!   collection's or an action's parent), lower-cased like every catalog
//!   resource.
//!
//! A path that is not a plain ARM path (a host, a query string, `..`, an
//! empty segment, a name that cannot be part of an ARM id) is refused, and
//! the call resolves to class `unknown`.

use super::Resource;
use super::template::parse_arm_id;

/// The operation and resource of one ARM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmOperation {
    pub azure_op: String,
    pub resource: Resource,
}

/// Derives the RBAC operation and resource of `method path` (the path
/// without host and query: `/subscriptions/...`).
pub fn operation_of(method: &str, path: &str) -> Result<ArmOperation, String> {
    let method = method.trim().to_ascii_uppercase();
    let verb = match method.as_str() {
        "GET" | "HEAD" => Verb::Read,
        "PUT" | "PATCH" => Verb::Write,
        "DELETE" => Verb::Delete,
        "POST" => Verb::Post,
        other => {
            return Err(format!(
                "method {other:?} is not an ARM method (GET, HEAD, PUT, PATCH, DELETE, POST)"
            ));
        }
    };
    let segs = segments(path)?;

    // The types named after the last provider (or, without one, the
    // Microsoft.Resources hierarchy), and how many segments name a resource
    // in full.
    let (namespace, start) = match segs
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
    {
        Some(i) => {
            let namespace = segs
                .get(i + 1)
                .ok_or_else(|| format!("{path:?} ends at `providers` without a namespace"))?;
            if !namespace.contains('.') {
                return Err(format!(
                    "{namespace:?} in {path:?} is not a resource provider namespace (like Microsoft.Compute)"
                ));
            }
            ((*namespace).to_owned(), i + 2)
        }
        None => ("Microsoft.Resources".to_owned(), 0),
    };
    let rest = &segs[start..];
    // rest = type, name, type, name, ... [, trailing type or action]
    let trailing = rest.len() % 2 == 1;
    let mut types: Vec<&str> = rest.iter().step_by(2).copied().collect();
    let suffix = match verb {
        Verb::Read => "read".to_owned(),
        Verb::Write => "write".to_owned(),
        Verb::Delete => "delete".to_owned(),
        // `.../vm1/start`, `/subscriptions/s/providers/Microsoft.Compute/register`
        Verb::Post if trailing && (rest.len() > 1 || start > 0) => {
            let action = types.pop().unwrap_or_default();
            format!("{action}/action")
        }
        Verb::Post => "action".to_owned(),
    };
    let types = types.join("/");
    let azure_op = if types.is_empty() {
        format!("{namespace}/{suffix}")
    } else {
        format!("{namespace}/{types}/{suffix}")
    };
    // The resource: every complete type/name pair; without one, the scope
    // the provider segment hangs off.
    let pairs = rest.len() / 2;
    let end = if pairs == 0 {
        start.saturating_sub(2)
    } else {
        start + 2 * pairs
    };
    let scope = format!("/{}", segs[..end].join("/"));
    let resource = parse_arm_id(&scope).ok_or_else(|| {
        format!("path {path:?} names a scope that is not a valid ARM id: {scope:?}")
    })?;
    Ok(ArmOperation { azure_op, resource })
}

#[derive(Clone, Copy)]
enum Verb {
    Read,
    Write,
    Delete,
    Post,
}

/// The path's segments, checked.
fn segments(path: &str) -> Result<Vec<&str>, String> {
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(format!(
            "path {path:?} must start with `/` (an ARM path such as /subscriptions/<id>/resourceGroups/<name>, without host)"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(format!(
            "path {path:?} must not carry a query string or fragment (api-version is its own argument)"
        ));
    }
    let body = path.trim_start_matches('/').trim_end_matches('/');
    if body.is_empty() {
        return Err("path `/` names no ARM resource".to_owned());
    }
    let segs: Vec<&str> = body.split('/').collect();
    for seg in &segs {
        if seg.is_empty() || *seg == "." || *seg == ".." {
            return Err(format!("path {path:?} has an empty or relative segment"));
        }
        if seg.contains(['%', '\\']) || seg.chars().any(char::is_whitespace) {
            return Err(format!(
                "path {path:?} has a segment that cannot be part of an ARM id: {seg:?}"
            ));
        }
    }
    Ok(segs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str) -> (String, String) {
        let o = operation_of(method, path).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (o.azure_op, o.resource.id.to_string())
    }

    const RG: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/dev-web";
    const RG_ID: &str =
        "/subscriptions/00000000-0000-4000-8000-000000000001/resourcegroups/dev-web";
    const SUB: &str = "/subscriptions/00000000-0000-4000-8000-000000000001";

    #[test]
    fn real_paths_name_their_rbac_operations() {
        let vm = format!("{RG}/providers/Microsoft.Compute/virtualMachines/vm1");
        let vm_id = format!("{RG_ID}/providers/microsoft.compute/virtualmachines/vm1");
        let table: Vec<(&str, String, &str, String)> = vec![
            // Resources and their verbs.
            (
                "GET",
                vm.clone(),
                "Microsoft.Compute/virtualMachines/read",
                vm_id.clone(),
            ),
            (
                "PUT",
                vm.clone(),
                "Microsoft.Compute/virtualMachines/write",
                vm_id.clone(),
            ),
            (
                "PATCH",
                vm.clone(),
                "Microsoft.Compute/virtualMachines/write",
                vm_id.clone(),
            ),
            (
                "DELETE",
                vm.clone(),
                "Microsoft.Compute/virtualMachines/delete",
                vm_id.clone(),
            ),
            // POST actions.
            (
                "POST",
                format!("{vm}/start"),
                "Microsoft.Compute/virtualMachines/start/action",
                vm_id.clone(),
            ),
            (
                "POST",
                format!("{vm}/powerOff"),
                "Microsoft.Compute/virtualMachines/powerOff/action",
                vm_id.clone(),
            ),
            (
                "post",
                format!("{vm}/deallocate"),
                "Microsoft.Compute/virtualMachines/deallocate/action",
                vm_id.clone(),
            ),
            (
                "POST",
                format!("{RG}/providers/Microsoft.Storage/storageAccounts/sa1/listKeys"),
                "Microsoft.Storage/storageAccounts/listKeys/action",
                format!("{RG_ID}/providers/microsoft.storage/storageaccounts/sa1"),
            ),
            (
                "POST",
                format!("{SUB}/providers/Microsoft.Compute/register"),
                "Microsoft.Compute/register/action",
                SUB.to_ascii_lowercase(),
            ),
            // Collections and sub-resources read their type.
            (
                "GET",
                format!("{RG}/providers/Microsoft.Compute/virtualMachines"),
                "Microsoft.Compute/virtualMachines/read",
                RG_ID.to_owned(),
            ),
            (
                "GET",
                format!("{vm}/instanceView"),
                "Microsoft.Compute/virtualMachines/instanceView/read",
                vm_id.clone(),
            ),
            // Nested child resources.
            (
                "PUT",
                format!(
                    "{RG}/providers/Microsoft.Storage/storageAccounts/sa1/blobServices/default/containers/logs"
                ),
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                format!(
                    "{RG_ID}/providers/microsoft.storage/storageaccounts/sa1/blobservices/default/containers/logs"
                ),
            ),
            (
                "DELETE",
                format!("{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
                "Microsoft.Network/virtualNetworks/subnets/delete",
                format!("{RG_ID}/providers/microsoft.network/virtualnetworks/vnet/subnets/default"),
            ),
            // Role assignments at subscription, group and resource scope.
            (
                "PUT",
                format!(
                    "{SUB}/providers/Microsoft.Authorization/roleAssignments/6f1c0d4e-0000-4000-8000-00000000a001"
                ),
                "Microsoft.Authorization/roleAssignments/write",
                format!(
                    "{}/providers/microsoft.authorization/roleassignments/6f1c0d4e-0000-4000-8000-00000000a001",
                    SUB.to_ascii_lowercase()
                ),
            ),
            (
                "DELETE",
                format!(
                    "{RG}/providers/Microsoft.Authorization/roleAssignments/6f1c0d4e-0000-4000-8000-00000000a001"
                ),
                "Microsoft.Authorization/roleAssignments/delete",
                format!(
                    "{RG_ID}/providers/microsoft.authorization/roleassignments/6f1c0d4e-0000-4000-8000-00000000a001"
                ),
            ),
            (
                "GET",
                format!("{RG}/providers/Microsoft.Authorization/roleAssignments"),
                "Microsoft.Authorization/roleAssignments/read",
                RG_ID.to_owned(),
            ),
            (
                "PUT",
                format!(
                    "{vm}/providers/Microsoft.Authorization/roleAssignments/6f1c0d4e-0000-4000-8000-00000000a002"
                ),
                "Microsoft.Authorization/roleAssignments/write",
                format!(
                    "{vm_id}/providers/microsoft.authorization/roleassignments/6f1c0d4e-0000-4000-8000-00000000a002"
                ),
            ),
            // Diagnostic settings on a resource (an extension resource).
            (
                "DELETE",
                format!("{vm}/providers/Microsoft.Insights/diagnosticSettings/to-law"),
                "Microsoft.Insights/diagnosticSettings/delete",
                format!("{vm_id}/providers/microsoft.insights/diagnosticsettings/to-law"),
            ),
            // The Microsoft.Resources hierarchy.
            (
                "GET",
                "/subscriptions".to_owned(),
                "Microsoft.Resources/subscriptions/read",
                "/".to_owned(),
            ),
            (
                "GET",
                SUB.to_owned(),
                "Microsoft.Resources/subscriptions/read",
                SUB.to_ascii_lowercase(),
            ),
            (
                "GET",
                format!("{SUB}/resourcegroups"),
                "Microsoft.Resources/subscriptions/resourcegroups/read",
                SUB.to_ascii_lowercase(),
            ),
            (
                "PUT",
                RG.to_owned(),
                "Microsoft.Resources/subscriptions/resourceGroups/write",
                RG_ID.to_owned(),
            ),
            (
                "DELETE",
                RG.to_owned(),
                "Microsoft.Resources/subscriptions/resourceGroups/delete",
                RG_ID.to_owned(),
            ),
            (
                "GET",
                format!("{RG}/resources"),
                "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
                RG_ID.to_owned(),
            ),
            (
                "PATCH",
                format!("{RG}/providers/Microsoft.Resources/tags/default"),
                "Microsoft.Resources/tags/write",
                format!("{RG_ID}/providers/microsoft.resources/tags/default"),
            ),
            (
                "GET",
                "/providers/Microsoft.Management/managementGroups/platform".to_owned(),
                "Microsoft.Management/managementGroups/read",
                "/providers/microsoft.management/managementgroups/platform".to_owned(),
            ),
        ];
        for (method, path, want_op, want_resource) in table {
            assert_eq!(
                op(method, &path),
                (want_op.to_owned(), want_resource),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn paths_that_are_not_plain_arm_paths_are_refused() {
        for (method, path, says) in [
            (
                "GET",
                "https://management.azure.com/subscriptions",
                "must start with `/`",
            ),
            (
                "GET",
                "/subscriptions?api-version=2022-12-01",
                "query string",
            ),
            ("GET", "/subscriptions/s1/../s2", "relative segment"),
            ("GET", "/subscriptions//resourceGroups", "empty"),
            ("GET", "/", "names no ARM resource"),
            ("TRACE", "/subscriptions", "not an ARM method"),
            ("GET", "/subscriptions/s1/providers", "without a namespace"),
            (
                "GET",
                "/subscriptions/s1/providers/compute/vms/x",
                "not a resource provider namespace",
            ),
            (
                "GET",
                "/subscriptions/s1/resourceGroups/a%2Fb",
                "cannot be part of an ARM id",
            ),
        ] {
            let error = operation_of(method, path).unwrap_err();
            assert!(error.contains(says), "{method} {path}: {error}");
        }
    }
}
