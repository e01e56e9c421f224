//! The demo estate written into a new simulator database: two
//! subscriptions of "Contoso", four resource groups, three virtual
//! machines (one with an extension) and their OS disks, a scale set, a
//! spare data disk, two storage accounts, a key vault with secrets and a
//! diagnostic setting, and two role assignments. Ids below are the
//! canonical ARM ids.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use super::state::{
    self, DiagnosticSetting, Resource, ResourceGroup, RoleAssignment, Secret, Subscription,
};
use crate::azure::id::{ArmId, ScopeKind};

/// The "Contoso Dev" subscription.
pub const DEV_SUBSCRIPTION: &str = "6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c";
/// The "Contoso Prod" subscription.
pub const PROD_SUBSCRIPTION: &str = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
/// `(subscription id, display name)` of the seeded subscriptions.
pub const DEMO_SUBSCRIPTIONS: [(&str, &str); 2] = [
    (DEV_SUBSCRIPTION, "Contoso Dev"),
    (PROD_SUBSCRIPTION, "Contoso Prod"),
];

/// Resource group `dev-web` (Contoso Dev, westeurope, `env=dev`).
pub const RG_DEV_WEB: &str =
    "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web";
/// Resource group `dev-data` (Contoso Dev, westeurope, `env=dev`).
pub const RG_DEV_DATA: &str =
    "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-data";
/// Resource group `prod-web` (Contoso Prod, japaneast, `env=prod`).
pub const RG_PROD_WEB: &str =
    "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/resourceGroups/prod-web";
/// Resource group `security` (Contoso Prod, westeurope, `env=prod`, `team=secops`).
pub const RG_SECURITY: &str =
    "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/resourceGroups/security";

/// VM `web-01` in `dev-web`, running, Standard_B2s.
pub const VM_WEB_01: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01";
/// VM `web-02` in `dev-web`, stopped, Standard_B2s.
pub const VM_WEB_02: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-02";
/// VM `prod-web-01` in `prod-web`, running, Standard_D4s_v5, `env=prod`.
pub const VM_PROD_WEB_01: &str = "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-01";
/// Extension `AzureMonitorLinuxAgent` of `web-01` (a nested child resource).
pub const VM_WEB_01_EXTENSION: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01/extensions/AzureMonitorLinuxAgent";
/// Storage account `devdata01` in `dev-data`.
pub const STORAGE_DEVDATA01: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-data/providers/Microsoft.Storage/storageAccounts/devdata01";
/// Storage account `prodlogs01` in `security`.
pub const STORAGE_PRODLOGS01: &str = "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/resourceGroups/security/providers/Microsoft.Storage/storageAccounts/prodlogs01";
/// Key vault `kv-security` in `security`.
pub const KEY_VAULT_SECURITY: &str = "/subscriptions/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b/resourceGroups/security/providers/Microsoft.KeyVault/vaults/kv-security";

/// Scale set `web-vmss` in `dev-web`: two Standard_B1s instances.
pub const VMSS_WEB: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachineScaleSets/web-vmss";
/// OS disk of `web-01`, attached (`managedBy` the VM; deleted with it).
pub const DISK_WEB_01_OS: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-web/providers/Microsoft.Compute/disks/web-01-osdisk";
/// Data disk `dev-data-disk01` in `dev-data`, attached to nothing.
pub const DISK_DEV_DATA_01: &str = "/subscriptions/6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c/resourceGroups/dev-data/providers/Microsoft.Compute/disks/dev-data-disk01";
/// Diagnostic setting of `kv-security`: audit logs to `prodlogs01`.
pub const DIAGNOSTIC_SETTING_KV_AUDIT: &str = "kv-security-audit";
/// The Key Vault data plane of `kv-security`.
pub const KEY_VAULT_SECURITY_URI: &str = "https://kv-security.vault.azure.net/";
/// A secret of `kv-security` with two versions.
pub const SECRET_DB_PASSWORD: &str = "db-password";
/// The current value of [`SECRET_DB_PASSWORD`] (a demo value).
pub const SECRET_DB_PASSWORD_VALUE: &str = "demo-Pa55w0rd-2";
/// A secret of `kv-security` that is disabled (reading it is refused).
pub const SECRET_LEGACY_TOKEN: &str = "legacy-token";

/// The directory tenant's name and domains, as `GET /tenants` shows them.
pub const TENANT_DISPLAY_NAME: &str = "Contoso";
pub const TENANT_DEFAULT_DOMAIN: &str = "contoso.dev";
pub const TENANT_DOMAINS: [&str; 2] = ["contoso.dev", "contoso.onmicrosoft.com"];

/// Built-in role definition GUIDs (the real Azure ones).
pub const ROLE_OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub const ROLE_CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub const ROLE_READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub const ROLE_VM_CONTRIBUTOR: &str = "9980e02c-c2be-4d73-94e8-173b1dc7cf3c";
pub const ROLE_USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
pub const ROLE_KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
pub const ROLE_STORAGE_BLOB_DATA_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";

/// `(guid, roleName, description, actions, dataActions)` of a built-in
/// role definition.
pub(crate) type BuiltInRole = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// The built-in role definitions the simulator serves.
pub(crate) const BUILT_IN_ROLES: [BuiltInRole; 7] = [
    (
        ROLE_OWNER,
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        &["*"],
        &[],
    ),
    (
        ROLE_CONTRIBUTOR,
        "Contributor",
        "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
        &["*"],
        &[],
    ),
    (
        ROLE_READER,
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        &["*/read"],
        &[],
    ),
    (
        ROLE_VM_CONTRIBUTOR,
        "Virtual Machine Contributor",
        "Create and manage virtual machines, manage disks, install and run software.",
        &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Compute/disks/*",
            "Microsoft.Network/networkInterfaces/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        &[],
    ),
    (
        ROLE_USER_ACCESS_ADMINISTRATOR,
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        &["*/read", "Microsoft.Authorization/*"],
        &[],
    ),
    (
        ROLE_KEY_VAULT_SECRETS_USER,
        "Key Vault Secrets User",
        "Read secret contents.",
        &[],
        &["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
    ),
    (
        ROLE_STORAGE_BLOB_DATA_READER,
        "Storage Blob Data Reader",
        "Read and list Azure Storage containers and blobs.",
        &["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
        &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
    ),
];

/// Principal holding Reader on the whole Contoso Dev subscription.
pub const DEMO_READER_PRINCIPAL: &str = "5d7a1c3e-0b2f-4e6a-8c9d-1f2e3a4b5c6d";
/// Principal holding Virtual Machine Contributor on `dev-web`.
pub const DEMO_VM_OPERATOR_PRINCIPAL: &str = "7e9b2d4f-1c3a-4b5d-9e0f-2a3b4c5d6e7f";
/// Name of the Reader assignment at the Contoso Dev subscription.
pub const ROLE_ASSIGNMENT_DEV_READER: &str = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
/// Name of the Virtual Machine Contributor assignment on `dev-web`.
pub const ROLE_ASSIGNMENT_DEV_WEB_VM_CONTRIBUTOR: &str = "1d2e3f4a-5b6c-4d7e-9f8a-0b1c2d3e4f5a";

/// Who "created" the seeded objects.
const SEED_CREATOR: &str = "00000000-0000-0000-0000-000000000000";

/// Locations the simulator accepts: `(name, display name, geography)`.
pub(crate) const LOCATIONS: [(&str, &str, &str); 14] = [
    ("westeurope", "West Europe", "Europe"),
    ("northeurope", "North Europe", "Europe"),
    ("francecentral", "France Central", "Europe"),
    ("germanywestcentral", "Germany West Central", "Europe"),
    ("swedencentral", "Sweden Central", "Europe"),
    ("uksouth", "UK South", "UK"),
    ("japaneast", "Japan East", "Asia Pacific"),
    ("japanwest", "Japan West", "Asia Pacific"),
    ("southeastasia", "Southeast Asia", "Asia Pacific"),
    ("australiaeast", "Australia East", "Asia Pacific"),
    ("eastus", "East US", "US"),
    ("eastus2", "East US 2", "US"),
    ("centralus", "Central US", "US"),
    ("westus2", "West US 2", "US"),
];

fn tags(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect()
}

/// Writes the demo estate (into an empty, freshly created schema).
pub(crate) fn seed(c: &Connection, now: DateTime<Utc>, tenant: &str) -> rusqlite::Result<()> {
    let created = now.to_rfc3339_opts(SecondsFormat::Micros, true);
    for (id, name) in DEMO_SUBSCRIPTIONS {
        state::put_subscription(
            c,
            &Subscription {
                id: id.to_owned(),
                display_name: name.to_owned(),
                state: "Enabled".into(),
                tags: Map::new(),
            },
        )?;
    }
    let groups = [
        (
            DEV_SUBSCRIPTION,
            "dev-web",
            "westeurope",
            tags(&[("env", "dev"), ("owner", "web-team")]),
        ),
        (
            DEV_SUBSCRIPTION,
            "dev-data",
            "westeurope",
            tags(&[("env", "dev")]),
        ),
        (
            PROD_SUBSCRIPTION,
            "prod-web",
            "japaneast",
            tags(&[("env", "prod")]),
        ),
        (
            PROD_SUBSCRIPTION,
            "security",
            "westeurope",
            tags(&[("env", "prod"), ("team", "secops")]),
        ),
    ];
    for (subscription, name, location, tags) in groups {
        state::put_rg(
            c,
            &ResourceGroup {
                subscription: subscription.to_owned(),
                name: name.to_owned(),
                location: location.to_owned(),
                tags,
                managed_by: None,
                state: "Succeeded".into(),
                created: created.clone(),
            },
        )?;
    }

    let resource = |id: &str, location: &str, tags: Map<String, Value>, properties: Value| {
        let (subscription, rg_name, r#type, name, parent_lc) = split_id(id);
        Resource {
            id: id.to_owned(),
            subscription,
            rg_name,
            parent_lc,
            r#type,
            name,
            location: Some(location.to_owned()),
            tags,
            kind: None,
            sku: None,
            properties,
            provisioning_state: "Succeeded".into(),
            power_state: None,
            created: created.clone(),
            changed: created.clone(),
            managed_by: None,
        }
    };

    let vms = [
        (
            VM_WEB_01,
            "westeurope",
            "Standard_B2s",
            "running",
            tags(&[("env", "dev"), ("role", "web")]),
        ),
        (
            VM_WEB_02,
            "westeurope",
            "Standard_B2s",
            "stopped",
            tags(&[("env", "dev"), ("role", "web")]),
        ),
        (
            VM_PROD_WEB_01,
            "japaneast",
            "Standard_D4s_v5",
            "running",
            tags(&[("env", "prod"), ("role", "web")]),
        ),
    ];
    for (id, location, size, power, tags) in vms {
        let name = id.rsplit('/').next().unwrap_or_default();
        let mut vm = resource(id, location, tags, vm_properties(name, size, &created));
        vm.power_state = Some(power.to_owned());
        state::put_resource(c, &vm)?;
    }
    state::put_resource(
        c,
        &resource(
            VM_WEB_01_EXTENSION,
            "westeurope",
            Map::new(),
            json!({
                "publisher": "Microsoft.Azure.Monitor",
                "type": "AzureMonitorLinuxAgent",
                "typeHandlerVersion": "1.0",
                "autoUpgradeMinorVersion": true,
                "enableAutomaticUpgrade": true,
            }),
        ),
    )?;

    for (id, location, sku, tags) in [
        (
            STORAGE_DEVDATA01,
            "westeurope",
            "Standard_LRS",
            tags(&[("env", "dev")]),
        ),
        (
            STORAGE_PRODLOGS01,
            "westeurope",
            "Standard_GRS",
            tags(&[("env", "prod"), ("team", "secops")]),
        ),
    ] {
        let name = id.rsplit('/').next().unwrap_or_default();
        let mut account = resource(
            id,
            location,
            tags,
            storage_properties(name, location, &created),
        );
        account.kind = Some("StorageV2".into());
        account.sku = Some(json!({ "name": sku, "tier": "Standard" }));
        state::put_resource(c, &account)?;
    }

    state::put_resource(
        c,
        &resource(
            KEY_VAULT_SECURITY,
            "westeurope",
            tags(&[("env", "prod"), ("team", "secops")]),
            json!({
                "sku": { "family": "A", "name": "standard" },
                "tenantId": tenant,
                "accessPolicies": [],
                "enabledForDeployment": false,
                "enabledForDiskEncryption": false,
                "enabledForTemplateDeployment": false,
                "enableSoftDelete": true,
                "softDeleteRetentionInDays": 90,
                "enableRbacAuthorization": true,
                "enablePurgeProtection": true,
                "publicNetworkAccess": "Disabled",
                "vaultUri": "https://kv-security.vault.azure.net/",
            }),
        ),
    )?;

    for (name, scope, role, principal) in [
        (
            ROLE_ASSIGNMENT_DEV_READER,
            format!("/subscriptions/{DEV_SUBSCRIPTION}"),
            ROLE_READER,
            DEMO_READER_PRINCIPAL,
        ),
        (
            ROLE_ASSIGNMENT_DEV_WEB_VM_CONTRIBUTOR,
            RG_DEV_WEB.to_owned(),
            ROLE_VM_CONTRIBUTOR,
            DEMO_VM_OPERATOR_PRINCIPAL,
        ),
    ] {
        state::put_role_assignment(
            c,
            &RoleAssignment {
                name: name.to_owned(),
                scope,
                role_definition: role.to_owned(),
                principal_id: principal.to_owned(),
                principal_type: "User".into(),
                description: None,
                created_on: created.clone(),
                updated_on: created.clone(),
                created_by: SEED_CREATOR.into(),
                updated_by: SEED_CREATOR.into(),
            },
        )?;
    }
    seed_v2(c, now)
}

/// Writes what schema version 2 added (disks, a scale set, diagnostic
/// settings, secrets), where their parents exist: into a new estate, or
/// into one created by version 1.
pub(crate) fn seed_v2(c: &Connection, now: DateTime<Utc>) -> rusqlite::Result<()> {
    let created = now.to_rfc3339_opts(SecondsFormat::Micros, true);
    let group_exists = |id: &str| -> rusqlite::Result<bool> {
        let (subscription, rg, ..) = split_id(id);
        Ok(state::get_rg(c, &subscription, &rg)?.is_some())
    };
    let resource = |id: &str, location: &str, tags: Map<String, Value>, properties: Value| {
        let (subscription, rg_name, r#type, name, parent_lc) = split_id(id);
        Resource {
            id: id.to_owned(),
            subscription,
            rg_name,
            parent_lc,
            r#type,
            name,
            location: Some(location.to_owned()),
            tags,
            kind: None,
            sku: None,
            properties,
            provisioning_state: "Succeeded".into(),
            power_state: None,
            created: created.clone(),
            changed: created.clone(),
            managed_by: None,
        }
    };

    // Each VM's OS disk, attached to it.
    for vm_id in [VM_WEB_01, VM_WEB_02, VM_PROD_WEB_01] {
        let Some(mut vm) = state::get_resource(c, vm_id)? else {
            continue;
        };
        let disk_id = format!(
            "{}/providers/Microsoft.Compute/disks/{}-osdisk",
            vm_id.split("/providers/").next().unwrap_or_default(),
            vm.name
        );
        let location = vm.location.clone().unwrap_or_else(|| "westeurope".into());
        let mut disk = resource(
            &disk_id,
            &location,
            Map::new(),
            disk_properties(30, "Attached", Some("Linux"), &created),
        );
        disk.sku = Some(json!({ "name": "Premium_LRS", "tier": "Premium" }));
        disk.managed_by = Some(vm.id.clone());
        state::put_resource(c, &disk)?;
        if let Some(managed) = vm
            .properties
            .pointer_mut("/storageProfile/osDisk/managedDisk")
        {
            managed["id"] = json!(disk_id);
            state::put_resource(c, &vm)?;
        }
    }
    if group_exists(DISK_DEV_DATA_01)? {
        let mut disk = resource(
            DISK_DEV_DATA_01,
            "westeurope",
            tags(&[("env", "dev")]),
            disk_properties(128, "Unattached", None, &created),
        );
        disk.sku = Some(json!({ "name": "Standard_LRS", "tier": "Standard" }));
        state::put_resource(c, &disk)?;
    }
    if group_exists(VMSS_WEB)? {
        let mut vmss = resource(
            VMSS_WEB,
            "westeurope",
            tags(&[("env", "dev"), ("role", "web")]),
            json!({
                "singlePlacementGroup": true,
                "orchestrationMode": "Uniform",
                "upgradePolicy": { "mode": "Manual" },
                "virtualMachineProfile": {
                    "osProfile": {
                        "computerNamePrefix": "webvmss",
                        "adminUsername": "azureuser",
                        "linuxConfiguration": { "disablePasswordAuthentication": true, "provisionVMAgent": true },
                        "allowExtensionOperations": true,
                    },
                    "storageProfile": {
                        "imageReference": {
                            "publisher": "Canonical",
                            "offer": "0001-com-ubuntu-server-jammy",
                            "sku": "22_04-lts-gen2",
                            "version": "latest",
                        },
                        "osDisk": {
                            "osType": "Linux",
                            "createOption": "FromImage",
                            "caching": "ReadWrite",
                            "managedDisk": { "storageAccountType": "Standard_LRS" },
                            "diskSizeGB": 30,
                        },
                    },
                    "networkProfile": { "networkInterfaceConfigurations": [] },
                },
                "overprovision": false,
                "doNotRunExtensionsOnOverprovisionedVMs": false,
                "platformFaultDomainCount": 5,
                "uniqueId": uuid::Uuid::new_v4().to_string(),
                "timeCreated": created,
            }),
        );
        vmss.sku = Some(json!({ "name": "Standard_B1s", "tier": "Standard", "capacity": 2 }));
        state::put_resource(c, &vmss)?;
    }

    if state::get_resource(c, KEY_VAULT_SECURITY)?.is_some() {
        if state::get_resource(c, STORAGE_PRODLOGS01)?.is_some() {
            state::put_diagnostic_setting(
                c,
                &DiagnosticSetting {
                    scope: KEY_VAULT_SECURITY.to_owned(),
                    name: DIAGNOSTIC_SETTING_KV_AUDIT.to_owned(),
                    properties: json!({
                        "storageAccountId": STORAGE_PRODLOGS01,
                        "logs": [{
                            "category": null,
                            "categoryGroup": "audit",
                            "enabled": true,
                            "retentionPolicy": { "enabled": false, "days": 0 },
                        }],
                        "metrics": [{
                            "category": "AllMetrics",
                            "enabled": true,
                            "retentionPolicy": { "enabled": false, "days": 0 },
                        }],
                    }),
                },
            )?;
        }
        let vault_lc = KEY_VAULT_SECURITY.to_lowercase();
        let at = now.timestamp();
        for (name, value, content_type, enabled, age_days) in [
            (
                SECRET_DB_PASSWORD,
                "demo-Pa55w0rd-1",
                "text/plain",
                true,
                30,
            ),
            (
                SECRET_DB_PASSWORD,
                SECRET_DB_PASSWORD_VALUE,
                "text/plain",
                true,
                1,
            ),
            (
                "storage-connection-string",
                "DefaultEndpointsProtocol=https;AccountName=prodlogs01;AccountKey=ZGVtby1rZXk=;EndpointSuffix=core.windows.net",
                "text/plain",
                true,
                7,
            ),
            (SECRET_LEGACY_TOKEN, "demo-legacy-token", "", false, 90),
        ] {
            let time = at - age_days * 86_400;
            state::insert_secret(
                c,
                &Secret {
                    vault_lc: vault_lc.clone(),
                    name: name.to_owned(),
                    version: uuid::Uuid::new_v4().simple().to_string(),
                    value: value.to_owned(),
                    content_type: (!content_type.is_empty()).then(|| content_type.to_owned()),
                    tags: tags(&[("owner", "secops")]),
                    enabled,
                    not_before: None,
                    expires: None,
                    created: time,
                    updated: time,
                    deleted: None,
                },
            )?;
        }
    }
    Ok(())
}

/// `properties` of a managed disk.
pub(crate) fn disk_properties(
    size_gb: u32,
    state: &str,
    os_type: Option<&str>,
    created: &str,
) -> Value {
    let mut properties = json!({
        "creationData": { "createOption": if os_type.is_some() { "FromImage" } else { "Empty" } },
        "diskSizeGB": size_gb,
        "diskSizeBytes": u64::from(size_gb) * 1024 * 1024 * 1024,
        "diskIOPSReadWrite": 500,
        "diskMBpsReadWrite": 60,
        "encryption": { "type": "EncryptionAtRestWithPlatformKey" },
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        "diskState": state,
        "uniqueId": uuid::Uuid::new_v4().to_string(),
        "timeCreated": created,
    });
    if let Some(os_type) = os_type {
        properties["osType"] = json!(os_type);
        properties["hyperVGeneration"] = json!("V2");
    }
    properties
}

/// `(subscription, resource group, type, name, parent id lower-cased)` of
/// a canonical resource id written in this file.
fn split_id(id: &str) -> (String, String, String, String, Option<String>) {
    // subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{t1}/{n1}[/{t2}/{n2}]
    let parsed = ArmId::parse(id).unwrap_or_else(|e| panic!("seeded id: {e}"));
    let part = |kind| {
        parsed
            .ancestor(kind)
            .and_then(|a| a.display_name().map(str::to_owned))
            .unwrap_or_default()
    };
    let path = parsed
        .provider_path()
        .unwrap_or_else(|| panic!("seeded id {id} names no resource"));
    let types = std::iter::once(path.namespace)
        .chain(path.types.iter().copied())
        .collect::<Vec<_>>()
        .join("/");
    let name = path.names.last().copied().unwrap_or_default().to_owned();
    let parent_lc = (path.names.len() > 1)
        .then(|| parsed.parent().map(|p| p.as_str().to_owned()))
        .flatten();
    (
        part(ScopeKind::Subscription),
        part(ScopeKind::ResourceGroup),
        types,
        name,
        parent_lc,
    )
}

/// `properties` of a seeded Linux VM (provisioning state and instance view
/// are added when it is rendered).
pub(crate) fn vm_properties(name: &str, size: &str, created: &str) -> Value {
    json!({
        "vmId": uuid::Uuid::new_v4().to_string(),
        "hardwareProfile": { "vmSize": size },
        "storageProfile": {
            "imageReference": {
                "publisher": "Canonical",
                "offer": "0001-com-ubuntu-server-jammy",
                "sku": "22_04-lts-gen2",
                "version": "latest",
            },
            "osDisk": {
                "osType": "Linux",
                "name": format!("{name}-osdisk"),
                "createOption": "FromImage",
                "caching": "ReadWrite",
                "managedDisk": { "storageAccountType": "Premium_LRS" },
                "deleteOption": "Delete",
                "diskSizeGB": 30,
            },
            "dataDisks": [],
        },
        "osProfile": {
            "computerName": name,
            "adminUsername": "azureuser",
            "linuxConfiguration": { "disablePasswordAuthentication": true, "provisionVMAgent": true },
            "allowExtensionOperations": true,
        },
        "diagnosticsProfile": { "bootDiagnostics": { "enabled": true } },
        "timeCreated": created,
    })
}

fn storage_properties(name: &str, location: &str, created: &str) -> Value {
    json!({
        "accessTier": "Hot",
        "allowBlobPublicAccess": false,
        "allowSharedKeyAccess": false,
        "minimumTlsVersion": "TLS1_2",
        "supportsHttpsTrafficOnly": true,
        "publicNetworkAccess": "Enabled",
        "encryption": {
            "keySource": "Microsoft.Storage",
            "services": { "blob": { "enabled": true, "keyType": "Account" }, "file": { "enabled": true, "keyType": "Account" } },
        },
        "primaryEndpoints": {
            "blob": format!("https://{name}.blob.core.windows.net/"),
            "queue": format!("https://{name}.queue.core.windows.net/"),
            "table": format!("https://{name}.table.core.windows.net/"),
            "file": format!("https://{name}.file.core.windows.net/"),
            "web": format!("https://{name}.z6.web.core.windows.net/"),
            "dfs": format!("https://{name}.dfs.core.windows.net/"),
        },
        "primaryLocation": location,
        "statusOfPrimary": "available",
        "creationTime": created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_consistent() {
        for id in [
            VM_WEB_01,
            VM_WEB_02,
            STORAGE_DEVDATA01,
            RG_DEV_WEB,
            RG_DEV_DATA,
        ] {
            assert!(
                id.starts_with(&format!("/subscriptions/{DEV_SUBSCRIPTION}/")),
                "{id}"
            );
        }
        for id in [
            VM_PROD_WEB_01,
            STORAGE_PRODLOGS01,
            KEY_VAULT_SECURITY,
            RG_PROD_WEB,
            RG_SECURITY,
        ] {
            assert!(
                id.starts_with(&format!("/subscriptions/{PROD_SUBSCRIPTION}/")),
                "{id}"
            );
        }
        assert!(VM_WEB_01.starts_with(RG_DEV_WEB));
        assert!(VM_PROD_WEB_01.starts_with(RG_PROD_WEB));
        assert!(KEY_VAULT_SECURITY.starts_with(RG_SECURITY));
        assert!(VM_WEB_01_EXTENSION.starts_with(VM_WEB_01));
    }

    #[test]
    fn split_id_reads_nested_ids() {
        let (s, rg, t, name, parent) = split_id(VM_WEB_01_EXTENSION);
        assert_eq!(s, DEV_SUBSCRIPTION);
        assert_eq!(rg, "dev-web");
        assert_eq!(t, "Microsoft.Compute/virtualMachines/extensions");
        assert_eq!(name, "AzureMonitorLinuxAgent");
        assert_eq!(parent.as_deref(), Some(VM_WEB_01.to_lowercase().as_str()));
        let (_, _, t, name, parent) = split_id(VM_WEB_01);
        assert_eq!(t, "Microsoft.Compute/virtualMachines");
        assert_eq!(name, "web-01");
        assert_eq!(parent, None);
    }
}
