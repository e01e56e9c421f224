//! Unit tests of the catalog: templates, widening, lower-casing, fallback,
//! multi-operation tools, load errors; and the shipped catalog against the
//! shipped azmcp inventory (the live server is checked by tests/catalog.rs).

use std::collections::BTreeSet;

use rmcp::model::ToolAnnotations;
use serde_json::{Value, json};

use super::template::{host_name, is_guid, parse_arm_id};
use super::*;

const SUB: &str = "0B1F6471-1BF0-4DDA-AEC3-111122223333";
const SUB_LOWER: &str = "0b1f6471-1bf0-4dda-aec3-111122223333";

fn builtin() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog: {e}"))
}

fn read_only() -> Option<ToolAnnotations> {
    Some(ToolAnnotations::new().read_only(true).destructive(false))
}

/// Loads catalog files given as (name, text) and the azmcp inventory.
fn load(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    let inventory = vec![(
        "azmcp.inventory.json".to_owned(),
        include_str!("../../schemas/catalog/azmcp.inventory.json").to_owned(),
    )];
    file::load(&files, &inventory)
}

fn load_err(files: &[(&str, &str)]) -> String {
    match load(files) {
        Ok(_) => panic!("loaded: {files:?}"),
        Err(e) => e.to_string(),
    }
}

fn one(resolution: &Resolution) -> &Operation {
    assert_eq!(resolution.operations.len(), 1, "{resolution:#?}");
    &resolution.operations[0]
}

// --- The shipped catalog ----------------------------------------------------

#[test]
fn builtin_files_are_the_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/catalog");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("schemas/catalog")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml") || n.ends_with(".inventory.json"))
        .collect();
    on_disk.sort();
    let mut shipped: Vec<String> = BUILTIN_FILES
        .iter()
        .chain(BUILTIN_INVENTORIES)
        .map(|(n, _)| (*n).to_owned())
        .collect();
    shipped.sort();
    assert_eq!(
        shipped, on_disk,
        "BUILTIN_FILES must list every catalog file"
    );

    let from_dir = Catalog::load_dir(&dir).expect("load_dir");
    let names = |c: &Catalog| {
        c.explicit_tools()
            .map(|(n, _)| n.to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&from_dir), names(&builtin()));
    assert_eq!(from_dir.actions(), builtin().actions());
}

#[test]
fn every_inventory_tool_resolves_from_catalog_or_rule() {
    let catalog = builtin();
    assert!(
        catalog.inventory().len() > 200,
        "the azmcp inventory is loaded"
    );
    for tool in catalog.inventory() {
        if catalog
            .entries
            .get(&tool.name)
            .is_some_and(|e| e.arm.is_some())
        {
            // A raw ARM request needs its method and path (tested in
            // executor::arm_tools).
            continue;
        }
        let annotations = tool.annotations();
        let resolution = catalog.resolve(&tool.name, &json!({}), annotations.as_ref());
        assert!(
            matches!(resolution.source, Source::Catalog | Source::Rule),
            "{} resolves from {:?}",
            tool.name,
            resolution.source
        );
        assert!(!resolution.operations.is_empty(), "{}", tool.name);
        assert!(
            resolution.problem.is_none(),
            "{}: {:?}",
            tool.name,
            resolution.problem
        );
        let classes = resolution.classes();
        assert!(!classes.contains(&Class::Unknown), "{}", tool.name);
        if tool.destructive == Some(true) {
            assert!(
                classes.iter().any(|c| *c != Class::Read),
                "{} is destructive but resolves to {classes:?}",
                tool.name
            );
        }
        // A read-only SecretHint tool returns secret values; the others
        // take secret arguments and keep their RBAC class.
        if tool.secret && tool.read_only == Some(true) {
            assert!(
                classes.contains(&Class::Privileged),
                "{} reads secrets but resolves to {classes:?}",
                tool.name
            );
        }
        let listed: BTreeSet<(String, Class)> = catalog
            .operations_of(&tool.name, annotations.as_ref())
            .into_iter()
            .collect();
        for op in &resolution.operations {
            assert!(
                listed.contains(&(op.azure_op.clone(), op.class)),
                "{}: {op:?}",
                tool.name
            );
        }
    }
}

#[test]
fn every_explicit_entry_names_an_inventory_tool() {
    let catalog = builtin();
    let names: BTreeSet<&str> = catalog
        .inventory()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    for (tool, origin) in catalog.explicit_tools() {
        assert!(
            names.contains(tool),
            "{tool} ({}:{})",
            origin.file,
            origin.line
        );
    }
}

// --- Resource ids -----------------------------------------------------------

#[test]
fn builds_lower_cased_resource_ids() {
    let r = builtin().resolve(
        "compute_vm_delete",
        &json!({"subscription": SUB, "resource-group": "Dev-RG", "vm-name": "Web-01"}),
        None,
    );
    assert_eq!(r.source, Source::Catalog);
    let op = one(&r);
    assert_eq!(op.azure_op, "Microsoft.Compute/virtualMachines/delete");
    assert_eq!(op.class, Class::Delete, "class from the operation's suffix");
    assert_eq!(
        op.resource,
        Resource {
            id: crate::azure::ArmId::parse(&format!(
                "/subscriptions/{SUB_LOWER}/resourcegroups/dev-rg/providers/microsoft.compute/virtualmachines/web-01"
            ))
            .unwrap(),
            subscription: Some(SUB_LOWER.into()),
            resource_group: Some("dev-rg".into()),
            resource_type: Some("microsoft.compute/virtualmachines".into()),
            name: Some("web-01".into()),
            group_name: Some("dev-rg".into()),
            names: vec!["web-01".into()],
        }
    );
    assert!(!op.resource.subscription_is_name());
}

#[test]
fn child_resources_join_their_types() {
    let r = builtin().resolve(
        "eventhubs_eventhub_consumergroup_delete",
        &json!({"subscription": SUB, "resource-group": "rg", "namespace": "NS", "eventhub": "Hub", "consumer-group": "CG"}),
        None,
    );
    let op = one(&r);
    assert_eq!(
        op.resource.id,
        format!(
            "/subscriptions/{SUB_LOWER}/resourcegroups/rg/providers/microsoft.eventhub/namespaces/ns/eventhubs/hub/consumergroups/cg"
        )
    );
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.eventhub/namespaces/eventhubs/consumergroups")
    );
    assert_eq!(op.resource.name.as_deref(), Some("cg"));
}

#[test]
fn missing_resource_group_widens_to_the_subscription() {
    // Key Vault tools take no resource group at all.
    let r = builtin().resolve(
        "keyvault_secret_get",
        &json!({"subscription": SUB, "vault": "Prod-KV", "secret": "DbPassword"}),
        None,
    );
    let op = one(&r);
    assert_eq!(op.class, Class::Privileged);
    assert_eq!(op.resource.id, format!("/subscriptions/{SUB_LOWER}"));
    assert_eq!(op.resource.resource_group, None);
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.keyvault/vaults/secrets")
    );
    assert_eq!(op.resource.name.as_deref(), Some("dbpassword"));
    // The vault is still named, for the facts lookup to find it.
    assert_eq!(op.resource.names, ["prod-kv", "dbpassword"]);
    assert_eq!(op.resource.group_name, None);

    // A subscription given by name keeps the id at its scope, while the
    // group and the names the arguments give are kept beside it.
    let r = builtin().resolve(
        "compute_vm_delete",
        &json!({"subscription": "Contoso Prod", "resource-group": "Prod-Web", "vm-name": "Web-01"}),
        None,
    );
    let op = one(&r);
    assert_eq!(op.resource.id, "/subscriptions/contoso prod");
    assert_eq!(op.resource.resource_group, None);
    assert_eq!(op.resource.group_name.as_deref(), Some("prod-web"));
    assert_eq!(op.resource.names, ["web-01"]);

    // An optional resource group left out.
    let r = builtin().resolve(
        "compute_disk_update",
        &json!({"subscription": SUB, "disk-name": "d1"}),
        None,
    );
    let op = one(&r);
    assert_eq!(op.resource.id, format!("/subscriptions/{SUB_LOWER}"));
    assert_eq!(op.resource.name.as_deref(), Some("d1"));
}

#[test]
fn missing_names_widen_to_the_parent() {
    let catalog = builtin();
    let r = catalog.resolve(
        "compute_vm_get",
        &json!({"subscription": SUB, "resource-group": "RG"}),
        None,
    );
    let op = one(&r);
    assert_eq!(
        op.resource.id,
        format!("/subscriptions/{SUB_LOWER}/resourcegroups/rg")
    );
    assert_eq!(op.resource.resource_type, None);
    assert_eq!(op.resource.name, None);

    // A wildcard name names several disks: the group is the scope.
    let r = catalog.resolve(
        "compute_disk_get",
        &json!({"subscription": SUB, "resource-group": "RG", "disk-name": "win_Os*"}),
        None,
    );
    assert_eq!(
        one(&r).resource.id,
        format!("/subscriptions/{SUB_LOWER}/resourcegroups/rg")
    );

    // Only the namespace of an event hub: the namespace is the scope.
    let r = catalog.resolve(
        "eventhubs_eventhub_get",
        &json!({"subscription": SUB, "resource-group": "rg", "namespace": "ns"}),
        None,
    );
    let op = one(&r);
    assert!(
        op.resource
            .id
            .as_str()
            .ends_with("/providers/microsoft.eventhub/namespaces/ns"),
        "{op:?}"
    );
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.eventhub/namespaces")
    );
}

#[test]
fn missing_subscription_is_the_root_scope() {
    let r = builtin().resolve(
        "compute_vm_get",
        &json!({"resource-group": "RG", "vm-name": "vm"}),
        None,
    );
    let op = one(&r);
    assert_eq!(op.resource.id, "/");
    assert_eq!(op.resource.subscription, None);
    assert_eq!(op.resource.resource_group, None, "agrees with the id");
    assert_eq!(op.resource.name.as_deref(), Some("vm"));
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.compute/virtualmachines")
    );
}

#[test]
fn subscription_names_stay_at_subscription_scope() {
    let r = builtin().resolve(
        "compute_vm_delete",
        &json!({"subscription": "Contoso Production", "resource-group": "rg", "vm-name": "vm"}),
        None,
    );
    let op = one(&r);
    assert_eq!(op.resource.id, "/subscriptions/contoso production");
    assert_eq!(
        op.resource.subscription.as_deref(),
        Some("contoso production")
    );
    assert!(op.resource.subscription_is_name());
    assert_eq!(op.resource.resource_group, None, "agrees with the id");
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.compute/virtualmachines")
    );
    assert_eq!(op.resource.name.as_deref(), Some("vm"));

    // The same rule for ARM ids given whole.
    let id = parse_arm_id(
        "/subscriptions/Dev/resourceGroups/rg/providers/Microsoft.Insights/workbooks/w",
    )
    .unwrap();
    assert_eq!(id.id, "/subscriptions/dev");
    assert_eq!(id.resource_group, None);
    assert_eq!(id.name.as_deref(), Some("w"));
}

#[test]
fn arm_ids_parse_strictly() {
    let vm = format!(
        "/subscriptions/{SUB}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM/providers/Microsoft.Insights/diagnosticSettings/DS/"
    );
    let r = parse_arm_id(&vm).unwrap();
    assert_eq!(
        r.id,
        format!(
            "/subscriptions/{SUB_LOWER}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm/providers/microsoft.insights/diagnosticsettings/ds"
        )
    );
    assert_eq!(
        r.resource_type.as_deref(),
        Some("microsoft.insights/diagnosticsettings")
    );
    assert_eq!(parse_arm_id("/").unwrap(), Resource::root());
    let mg = parse_arm_id("/providers/Microsoft.Management/managementGroups/Root-MG").unwrap();
    assert_eq!(
        mg.id,
        "/providers/microsoft.management/managementgroups/root-mg"
    );
    assert_eq!(mg.subscription, None);
    for bad in [
        "",
        "subscriptions/x",
        "/subscriptions",
        "/subscriptions//resourceGroups/rg",
        "/subscriptions/x/resourceGroups",
        "/subscriptions/x/providers/Microsoft.Compute/virtualMachines",
        "/subscriptions/x/resourceGroups/rg/vm",
        "/subscriptions/x/providers/compute/virtualMachines/vm",
    ] {
        assert_eq!(parse_arm_id(bad), None, "{bad}");
    }
    assert!(
        is_guid(SUB) && !is_guid("contoso") && !is_guid("0b1f6471-1bf0-4dda-aec3-11112222333g")
    );
}

#[test]
fn host_names_give_resource_names() {
    assert_eq!(
        host_name("https://MyAcs.unitedstates.communication.azure.com/").as_deref(),
        Some("myacs")
    );
    assert_eq!(
        host_name("myns.servicebus.windows.net").as_deref(),
        Some("myns")
    );
    assert_eq!(
        host_name("https://kv.vault.azure.net:443/secrets/x").as_deref(),
        Some("kv")
    );
    assert_eq!(host_name("plainname").as_deref(), Some("plainname"));
    // Not an Azure domain: kept whole, so it cannot pass for an Azure name.
    assert_eq!(
        host_name("https://myacs.evil.example/").as_deref(),
        Some("myacs.evil.example")
    );
    assert_eq!(
        host_name("https://myacs.communication.azure.com@evil.example/").as_deref(),
        Some("evil.example")
    );
    assert_eq!(host_name("https:///x"), None);
    assert_eq!(host_name("bad host"), None);
}

#[test]
fn endpoint_arguments_name_the_resource() {
    let catalog = builtin();
    let r = catalog.resolve(
        "communication_email_send",
        &json!({"endpoint": "https://Contoso-ACS.communication.azure.com", "from": "a", "to": "b"}),
        read_only().as_ref(),
    );
    assert_eq!(
        r.source,
        Source::Catalog,
        "the entry wins over the read-only annotation"
    );
    let op = one(&r);
    assert_eq!(op.class, Class::Action);
    assert_eq!(op.resource.id, "/");
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.communication/communicationservices")
    );
    assert_eq!(op.resource.name.as_deref(), Some("contoso-acs"));
}

// --- Alternatives, arrays, conditions, multi-operation tools ----------------

#[test]
fn multi_operation_tools_authorize_every_operation() {
    let catalog = builtin();
    let r = catalog.resolve(
        "compute_vm_create",
        &json!({"subscription": SUB, "resource-group": "rg", "vm-name": "vm1", "location": "eastus",
                "admin-username": "azureuser", "virtual-network": "vnet1", "subnet": "default"}),
        None,
    );
    let ops: Vec<(&str, Class)> = r
        .operations
        .iter()
        .map(|o| (o.azure_op.as_str(), o.class))
        .collect();
    assert!(
        ops.contains(&("Microsoft.Compute/virtualMachines/write", Class::Write)),
        "{ops:?}"
    );
    assert!(ops.contains(&(
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        Class::Action
    )));
    assert!(ops.contains(&("Microsoft.Network/networkInterfaces/write", Class::Write)));
    let subnet = r
        .operations
        .iter()
        .find(|o| o.azure_op.ends_with("subnets/join/action"))
        .unwrap();
    assert_eq!(
        subnet.resource.resource_type.as_deref(),
        Some("microsoft.network/virtualnetworks/subnets")
    );
    assert_eq!(subnet.resource.name.as_deref(), Some("default"));

    // A rename: the old database moves, the new one is written.
    let r = catalog.resolve(
        "sql_db_rename",
        &json!({"subscription": SUB, "resource-group": "rg", "server": "s", "database": "old", "new-database-name": "new"}),
        None,
    );
    let names: Vec<(&str, Option<&str>)> = r
        .operations
        .iter()
        .map(|o| (o.azure_op.as_str(), o.resource.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("Microsoft.Sql/servers/databases/move/action", Some("old")),
            ("Microsoft.Sql/servers/databases/write", Some("new"))
        ]
    );
}

#[test]
fn id_arrays_give_one_operation_per_id() {
    let ids = [
        format!("/subscriptions/{SUB}/resourceGroups/a/providers/Microsoft.Insights/workbooks/W1"),
        format!("/subscriptions/{SUB}/resourceGroups/b/providers/Microsoft.Insights/workbooks/W2"),
    ];
    let r = builtin().resolve("workbooks_delete", &json!({"workbook-ids": ids}), None);
    assert_eq!(r.operations.len(), 2);
    assert!(r.operations.iter().all(|o| o.class == Class::Delete));
    assert_eq!(
        r.operations[1].resource.resource_group.as_deref(),
        Some("b")
    );
    assert_eq!(r.operations[1].resource.name.as_deref(), Some("w2"));

    // One id that is not an ARM id makes the whole call unknown.
    let r = builtin().resolve(
        "workbooks_delete",
        &json!({"workbook-ids": [ids[0].clone(), "w3"]}),
        None,
    );
    assert_eq!(one(&r).class, Class::Unknown);
}

#[test]
fn alternatives_apply_when_their_argument_is_given() {
    let catalog = builtin();
    let pool_id = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DesktopVirtualization/hostPools/P1"
    );
    let by_id = catalog.resolve(
        "virtualdesktop_hostpool_host_list",
        &json!({"hostpool-resource-id": pool_id}),
        None,
    );
    assert_eq!(one(&by_id).resource.name.as_deref(), Some("p1"));

    let by_name = catalog.resolve(
        "virtualdesktop_hostpool_host_list",
        &json!({"subscription": SUB, "resource-group": "rg", "hostpool": "P2"}),
        None,
    );
    assert_eq!(one(&by_name).resource.name.as_deref(), Some("p2"));

    // Both given: azmcp uses the id, but both are authorized.
    let both = catalog.resolve(
        "virtualdesktop_hostpool_host_list",
        &json!({"subscription": SUB, "resource-group": "rg", "hostpool": "P2", "hostpool-resource-id": pool_id}),
        None,
    );
    let names: Vec<_> = both
        .operations
        .iter()
        .map(|o| o.resource.name.as_deref())
        .collect();
    assert_eq!(names, [Some("p1"), Some("p2")]);

    // Neither: the last alternative, widened.
    let neither = catalog.resolve(
        "virtualdesktop_hostpool_host_list",
        &json!({"subscription": SUB}),
        None,
    );
    assert_eq!(
        one(&neither).resource.id,
        format!("/subscriptions/{SUB_LOWER}")
    );

    // One argument, a name or an id.
    let metrics = |resource: &str| {
        catalog.resolve(
            "monitor_metrics_query",
            &json!({"subscription": SUB, "resource-group": "rg", "resource": resource,
                    "resource-type": "Microsoft.Storage/storageAccounts", "metric-names": "x", "metric-namespace": "y"}),
            None,
        )
    };
    let named = metrics("acct");
    assert_eq!(
        one(&named).resource.id,
        format!(
            "/subscriptions/{SUB_LOWER}/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acct"
        )
    );
    let by_id = metrics(&format!(
        "/subscriptions/{SUB}/resourceGroups/other/providers/Microsoft.Web/sites/app"
    ));
    assert_eq!(
        one(&by_id).resource.resource_group.as_deref(),
        Some("other")
    );

    // Kusto: a cluster name and a cluster URI are both authorized.
    let kusto = catalog.resolve(
        "kusto_query",
        &json!({"subscription": SUB, "cluster": "a", "cluster-uri": "https://b.westeurope.kusto.windows.net", "database": "db", "query": "T"}),
        None,
    );
    let names: Vec<_> = kusto
        .operations
        .iter()
        .map(|o| (o.resource.id.as_str(), o.resource.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            (format!("/subscriptions/{SUB_LOWER}").as_str(), Some("db")),
            ("/", Some("db"))
        ]
    );
    // Only one of them: only that one.
    let kusto = catalog.resolve(
        "kusto_query",
        &json!({"subscription": SUB, "cluster": "a", "database": "db", "query": "T"}),
        None,
    );
    assert_eq!(
        one(&kusto).resource.id,
        format!("/subscriptions/{SUB_LOWER}")
    );
    let kusto = catalog.resolve(
        "kusto_sample",
        &json!({"subscription": SUB, "cluster-uri": "https://b.westeurope.kusto.windows.net", "database": "db", "table": "T"}),
        None,
    );
    let op = one(&kusto);
    assert_eq!(
        (op.resource.id.as_str(), op.resource.name.as_deref()),
        ("/", Some("db"))
    );
    assert_eq!(
        op.resource.resource_type.as_deref(),
        Some("microsoft.kusto/clusters/databases")
    );
}

#[test]
fn unless_picks_the_subscription_only_without_a_scope() {
    let catalog = builtin();
    let scope = format!("/subscriptions/{SUB}/resourceGroups/Dev");
    let r = catalog.resolve(
        "policy_assignment_list",
        &json!({"subscription": SUB, "scope": scope}),
        None,
    );
    assert_eq!(
        one(&r).resource.id,
        format!("/subscriptions/{SUB_LOWER}/resourcegroups/dev")
    );
    let r = catalog.resolve(
        "policy_assignment_list",
        &json!({"subscription": SUB}),
        None,
    );
    assert_eq!(one(&r).resource.id, format!("/subscriptions/{SUB_LOWER}"));
    let r = catalog.resolve("policy_assignment_list", &json!({}), None);
    assert_eq!(one(&r).resource.id, "/");
}

#[test]
fn conditional_operations_need_their_argument() {
    let catalog = builtin();
    let base = json!({"subscription": SUB, "resource-group": "rg", "name": "fs",
                      "subnet-id": format!("/subscriptions/{SUB}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/s")});
    let ops = |args: &Value| -> Vec<String> {
        catalog
            .resolve("managedlustre_fs_create", args, None)
            .operations
            .into_iter()
            .map(|o| o.azure_op)
            .collect()
    };
    assert!(!ops(&base).iter().any(|o| o.contains("assign")));
    let mut with_identity = base.clone();
    with_identity["user-assigned-identity-id"] = json!(format!(
        "/subscriptions/{SUB}/resourceGroups/id/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"
    ));
    let r = catalog.resolve("managedlustre_fs_create", &with_identity, None);
    let assign = r
        .operations
        .iter()
        .find(|o| o.azure_op.contains("assign"))
        .expect("assign op");
    assert_eq!(assign.class, Class::Privileged);
    assert_eq!(assign.resource.name.as_deref(), Some("u"));
    // operations_of lists it whatever the arguments.
    assert!(
        catalog
            .operations_of("managedlustre_fs_create", None)
            .iter()
            .any(|(o, c)| o.contains("assign") && *c == Class::Privileged)
    );
}

#[test]
fn invalid_argument_values_make_the_call_unknown() {
    let catalog = builtin();
    for args in [
        json!({"subscription": SUB, "resource-group": "rg", "vm-name": "a/../b"}),
        json!({"subscription": SUB, "resource-group": "rg", "vm-name": {"x": 1}}),
        json!({"subscription": SUB, "resource-group": "rg", "vm-name": ["a", "b"]}),
        json!({"subscription": "x?y", "resource-group": "rg", "vm-name": "a"}),
    ] {
        let r = catalog.resolve("compute_vm_delete", &args, None);
        assert_eq!(r.source, Source::Catalog);
        let op = one(&r);
        assert_eq!(op.class, Class::Unknown, "{args}");
        assert_eq!(op.azure_op, "Warden/tools/compute_vm_delete/unknown");
        assert_eq!(op.resource, Resource::root());
        assert!(
            r.problem.as_deref().is_some_and(|p| p.contains("argument")),
            "{r:?}"
        );
    }
    // Empty strings and nulls are missing values, not invalid ones.
    let r = catalog.resolve(
        "compute_vm_delete",
        &json!({"subscription": SUB, "resource-group": "", "vm-name": null}),
        None,
    );
    assert_eq!(one(&r).resource.id, format!("/subscriptions/{SUB_LOWER}"));
    // Arguments that are not an object count as none.
    let r = catalog.resolve("compute_vm_delete", &Value::Null, None);
    assert_eq!(one(&r).resource.id, "/");
}

// --- Rules and annotation fallback ------------------------------------------

#[test]
fn rules_apply_only_to_read_only_tools() {
    let catalog = builtin();
    let args = json!({"subscription": SUB, "resource-group": "rg", "registry": "Reg"});
    let r = catalog.resolve("acr_registry_repository_list", &args, read_only().as_ref());
    assert_eq!(r.source, Source::Rule);
    let op = one(&r);
    assert_eq!(op.azure_op, "Microsoft.ContainerRegistry/registries/read");
    assert_eq!(op.class, Class::Read);
    assert_eq!(op.resource.name.as_deref(), Some("reg"));

    // Without annotations a rule cannot vouch for the tool.
    let r = catalog.resolve("acr_registry_repository_list", &args, None);
    assert_eq!((r.source, one(&r).class), (Source::Unknown, Class::Unknown));
    // A tool that matches a rule but says it is destructive.
    let destructive = ToolAnnotations::new().read_only(false).destructive(true);
    let r = catalog.resolve("acr_registry_purge", &args, Some(&destructive));
    assert_eq!(
        (r.source, one(&r).class),
        (Source::Annotations, Class::Delete)
    );
}

#[test]
fn annotation_fallback_for_unknown_tools() {
    let catalog = builtin();
    let args = json!({"subscription": SUB, "resource-group": "RG"});
    let cases = [
        (
            Some(ToolAnnotations::new().read_only(true)),
            Class::Read,
            Source::Annotations,
        ),
        (
            Some(ToolAnnotations::new().read_only(false).destructive(false)),
            Class::Write,
            Source::Annotations,
        ),
        (
            Some(ToolAnnotations::new().destructive(false)),
            Class::Write,
            Source::Annotations,
        ),
        (
            Some(ToolAnnotations::new().read_only(false).destructive(true)),
            Class::Delete,
            Source::Annotations,
        ),
        // MCP: destructiveHint defaults to true when a tool is not read-only.
        (
            Some(ToolAnnotations::new().read_only(false)),
            Class::Delete,
            Source::Annotations,
        ),
        // Contradictory hints: the more dangerous reading wins.
        (
            Some(ToolAnnotations::new().read_only(true).destructive(true)),
            Class::Delete,
            Source::Annotations,
        ),
        (
            Some(ToolAnnotations::with_title("no hints")),
            Class::Unknown,
            Source::Unknown,
        ),
        (None, Class::Unknown, Source::Unknown),
    ];
    for (annotations, class, source) in cases {
        let r = catalog.resolve("newservice_thing_do", &args, annotations.as_ref());
        assert_eq!(r.source, source, "{annotations:?}");
        let op = one(&r);
        assert_eq!(op.class, class, "{annotations:?}");
        assert_eq!(
            op.azure_op,
            format!("Warden/tools/newservice_thing_do/{}", class.as_str())
        );
        assert_eq!(
            op.resource.id,
            format!("/subscriptions/{SUB_LOWER}/resourcegroups/rg")
        );
        assert_eq!(
            catalog.operations_of("newservice_thing_do", annotations.as_ref()),
            [(op.azure_op.clone(), class)]
        );
    }
}

#[test]
fn operations_of_lists_each_operation_once() {
    let catalog = builtin();
    let ops = catalog.operations_of("compute_vm_create", None);
    let unique: BTreeSet<_> = ops.iter().collect();
    assert_eq!(unique.len(), ops.len());
    assert!(ops.len() >= 5, "{ops:?}");
    assert_eq!(
        catalog.operations_of("functions_language_list", read_only().as_ref()),
        [("Warden/guidance/read".to_owned(), Class::Read)]
    );
    let actions = catalog.actions();
    assert_eq!(
        actions["Microsoft.Compute/virtualMachines/write"],
        BTreeSet::from([Class::Write])
    );
    assert_eq!(
        actions["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
        BTreeSet::from([Class::Privileged])
    );
}

#[test]
fn class_table_and_overrides() {
    let files = [
        (
            "c.toml",
            "[classes]\nprivileged = [\"*/listKeys/action\"]\nread = [\"Microsoft.X/*/check/action\"]\n",
        ),
        (
            "t.toml",
            "[tools.eventgrid_topic_list]\nop = \"Microsoft.EventGrid/topics/listKeys/action\"\n\
             [tools.eventgrid_subscription_list]\nop = \"Microsoft.X/y/check/action\"\n\
             [tools.eventgrid_events_publish]\nop = \"Microsoft.EventGrid/events/send/action\"\nclass = \"write\"\n\
             [tools.grafana_list]\nop = \"Microsoft.Dashboard/grafana/LISTKEYS/action\"\nclass = \"read\"\n",
        ),
    ];
    let catalog = load(&files).unwrap_or_else(|e| panic!("{e}"));
    let class = |tool: &str| one(&catalog.resolve(tool, &json!({}), None)).class;
    assert_eq!(class("eventgrid_topic_list"), Class::Privileged);
    assert_eq!(class("eventgrid_subscription_list"), Class::Read);
    assert_eq!(class("eventgrid_events_publish"), Class::Write);
    assert_eq!(
        class("grafana_list"),
        Class::Read,
        "an entry's class wins over the table"
    );
}

#[test]
fn glob_patterns() {
    assert!(glob_match("acr_*", "acr_registry_list"));
    assert!(glob_match("*_list", "acr_registry_list"));
    assert!(glob_match(
        "*best*practices*",
        "get_azure_bestpractices_get"
    ));
    assert!(glob_match("a*b*c", "axxbyyc"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("acr_*", "aks_cluster_get"));
    assert!(!glob_match("compute_vm_*", "compute_vmss_get"));
    assert!(!glob_match("a*b", "ab_c"));
}

// --- Load errors --------------------------------------------------------------

#[test]
fn load_errors_name_file_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        // (file text, expected line, expected part of the message)
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nresorce = \"/\"\n",
            "bad.toml:3:",
            "unknown field `resorce`",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nresource = \"/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}\"\n",
            "bad.toml:3: tools.compute_vm_get.resource:",
            "`vm` is not an argument of compute_vm_get",
        ),
        (
            "\n[tools.compute_vm_gett]\nop = \"Microsoft.Compute/virtualMachines/read\"\n",
            "bad.toml:2: tools.compute_vm_gett:",
            "no such tool in the inventory",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nresource = \"/subscriptions/{subscription}/providers/Microsoft.Compute\"\n",
            "bad.toml:3: tools.compute_vm_get.resource:",
            "needs a namespace and a type",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nresource = \"subscriptions/{subscription}\"\n",
            "bad.toml:3:",
            "must be `/`",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nresource = \"/subscriptions/{subscription|lower}\"\n",
            "bad.toml:3:",
            "unknown filter",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/peek\"\n",
            "bad.toml:2: tools.compute_vm_get.op:",
            "give `class`",
        ),
        (
            "[tools.compute_vm_get]\nop = \"virtualMachines read\"\n",
            "bad.toml:2: tools.compute_vm_get.op:",
            "malformed operation",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nclass = \"unknown\"\n",
            "bad.toml:3: tools.compute_vm_get.class:",
            "cannot be given",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nclass = \"sneaky\"\n",
            "bad.toml:3:",
            "unknown variant `sneaky`",
        ),
        (
            "[tools.compute_vm_get]\nresource = \"/\"\n",
            "bad.toml:1: tools.compute_vm_get:",
            "missing `op`",
        ),
        (
            "[tools.managedlustre_fs_create]\nop = \"Microsoft.ManagedIdentity/userAssignedIdentities/assign/action\"\nresource = \"{user-assigned-identity-id}\"\nwhen = [\"user-assigned-identity-id\"]\n",
            "bad.toml:1: tools.managedlustre_fs_create:",
            "a call giving [] (of the `when`/`unless` arguments) would resolve to no operation",
        ),
        (
            "[[tools.policy_assignment_list.ops]]\nop = \"Microsoft.Authorization/policyAssignments/read\"\nresource = \"{scope}\"\nwhen = [\"scope\"]\n[[tools.policy_assignment_list.ops]]\nop = \"Microsoft.Authorization/policyAssignments/read\"\nunless = [\"subscription\"]\n",
            "bad.toml:1: tools.policy_assignment_list:",
            "a call giving [\"subscription\"]",
        ),
        (
            "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\nunless = [\"vm\"]\n",
            "bad.toml:3: tools.compute_vm_get.unless:",
            "`vm` is not an argument of compute_vm_get",
        ),
        (
            "\n\n[[rules]]\ntools = [\"acr_*\"]\nop = \"Microsoft.ContainerRegistry/registries/write\"\n",
            "bad.toml:3: rules[0]:",
            "rules are for read-only tools",
        ),
        (
            "[[rules]]\ntools = [\"nosuchservice_*\"]\nop = \"Microsoft.X/y/read\"\n",
            "bad.toml:2: rules[0].tools:",
            "match no read-only tool",
        ),
        (
            "[classes]\nprivileged = [\"Microsoft.X/ y\"]\n",
            "bad.toml:2: classes.privileged:",
            "malformed operation",
        ),
        ("[tools.compute_vm_get\nop = 1\n", "bad.toml:1:", ""),
    ];
    for (text, location, message) in cases {
        let err = load_err(&[("bad.toml", text)]);
        assert!(err.starts_with(location), "expected {location}: {err}");
        assert!(err.contains(message), "expected {message:?}: {err}");
    }
}

#[test]
fn a_tool_has_one_entry_across_files() {
    let entry = "[tools.compute_vm_get]\nop = \"Microsoft.Compute/virtualMachines/read\"\n";
    let err = load_err(&[("a.toml", entry), ("b.toml", &format!("\n{entry}"))]);
    assert!(err.starts_with("b.toml:2: tools.compute_vm_get:"), "{err}");
    assert!(err.contains("already has an entry at a.toml:1"), "{err}");
}

#[test]
fn without_an_inventory_names_are_checked_for_form_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mine.toml"),
        "[tools.my_tool]\nop = \"Contoso.Widgets/widgets/delete\"\nresource = \"/subscriptions/{sub}/resourceGroups/{rg}/providers/Contoso.Widgets/widgets/{w}\"\n",
    )
    .unwrap();
    let catalog = Catalog::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let r = catalog.resolve("my_tool", &json!({"sub": SUB, "rg": "G", "w": "W"}), None);
    assert_eq!(
        one(&r).resource.id,
        format!("/subscriptions/{SUB_LOWER}/resourcegroups/g/providers/contoso.widgets/widgets/w")
    );
    assert!(catalog.inventory().is_empty());

    // Errors from load_dir name the file's path.
    std::fs::write(
        dir.path().join("zz.toml"),
        "[tools.\"bad name\"]\nop = \"A.B/c/read\"\n",
    )
    .unwrap();
    let err = Catalog::load_dir(dir.path()).unwrap_err().to_string();
    let expected = format!(
        "{}:1: tools.bad name:",
        dir.path().join("zz.toml").display()
    );
    assert!(err.starts_with(&expected), "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        Catalog::load_dir(empty.path()),
        Err(CatalogError::Empty { .. })
    ));
    assert!(matches!(
        Catalog::load_dir(&empty.path().join("missing")),
        Err(CatalogError::Io { .. })
    ));
}
