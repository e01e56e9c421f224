//! `warden dev` with the official Azure MCP Server behind it: azmcp
//! (installed by `scripts/install-test-deps.sh`, found where `warden dev`
//! finds it) runs as the upstream `azmcp`, offline, through the egress
//! proxy: it signs in at the dev issuer as its own service principal and
//! calls the ARM simulator as `management.azure.com`. A persona's calls
//! go through Warden's pipeline like any other.

mod common;

use common::{call, connect_as, text};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::app::dev::{DevListeners, DevOptions};
use warden::identity::dev::{
    DEV_AZMCP_CLIENT, DEV_CONFIDENTIAL_CLIENT, DEV_TENANT, TokenOptions, service_principal_id,
};

/// The hosts azmcp 2.0.5 may try besides the ones it needs, all refused by
/// the proxy without harm: telemetry (Application Insights; both exporters
/// are off, so it should not come to that), and the remote MCP servers of
/// its registry, which it contacts at start (Microsoft Learn's and Azure AI
/// Foundry's).
fn is_expendable(host: &str) -> bool {
    host.ends_with(".applicationinsights.azure.com")
        || host.ends_with(".monitor.azure.com")
        || host == "dc.services.visualstudio.com"
        || host == "learn.microsoft.com"
        || host == "mcp.ai.azure.com"
}

#[tokio::test]
async fn azmcp_runs_behind_warden_dev_offline() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(azmcp) = warden::dev::azmcp::deps_path(root).filter(|p| p.is_file()) else {
        eprintln!(
            "skipped: no azmcp under .deps/ (run scripts/install-test-deps.sh, which CI always \
             runs)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The baseline policies, and a role allowed everything: its holder sees
    // every tool azmcp lists.
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    for (name, text) in warden::dev::BASELINE_POLICIES {
        std::fs::write(policies.join(name), text).unwrap();
    }
    std::fs::write(
        policies.join("azure-admin.cedar"),
        "@id(\"test-azure-admin\")\npermit (principal in AppRole::\"AzureAdmin\", action, resource);\n",
    )
    .unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let listeners = DevListeners::bind(any, any, any).await.unwrap();
    let running = warden::app::dev::start(
        DevOptions {
            data_dir: dir.path().join("dev"),
            policies: Some(policies),
            executable: env!("CARGO_BIN_EXE_warden").into(),
            oauth: true,
            azure_mcp: Some(azmcp.clone()),
            azure_mcp_serve: warden::dev::azmcp::Serve::Stdio,
        },
        listeners,
        CancellationToken::new(),
    )
    .await
    .expect("warden dev starts");

    // dev.json says how to run azmcp the same way by hand.
    let dev_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&running.dev_json).unwrap()).unwrap();
    assert_eq!(dev_json["proxy_url"], running.proxy_url.as_str());
    assert_eq!(
        dev_json["ca_file"],
        running.ca_file.display().to_string().as_str()
    );
    assert!(running.ca_file.is_file());
    let env = &dev_json["azmcp_env"];
    assert_eq!(env["HTTPS_PROXY"], running.proxy_url.as_str());
    assert_eq!(env["SSL_CERT_FILE"], dev_json["ca_file"]);
    assert_eq!(env["AZURE_TOKEN_CREDENTIALS"], "prod");
    assert_eq!(env["AZURE_TENANT_ID"], DEV_TENANT);
    assert_eq!(env["AZURE_CLIENT_ID"], DEV_AZMCP_CLIENT);
    assert_eq!(env["AZURE_MCP_COLLECT_TELEMETRY"], "false");
    assert_eq!(env["AZURE_MCP_COLLECT_TELEMETRY_MICROSOFT"], "false");
    let secret_file = dev_json["azure_mcp"]["secret_file"].as_str().unwrap();
    assert_eq!(
        env["AZURE_CLIENT_SECRET"],
        std::fs::read_to_string(secret_file).unwrap().trim()
    );
    assert_eq!(
        dev_json["azure_mcp"]["command"],
        azmcp.display().to_string().as_str()
    );

    // Every azmcp tool, namespaced, beside the built-in ones and the
    // sample's.
    let admin = running
        .issuer
        .mint(&TokenOptions {
            user: "ada.admin@contoso.dev".into(),
            roles: vec!["AzureAdmin".into()],
            mfa: true,
            ..TokenOptions::default()
        })
        .unwrap();
    let (client, _) = connect_as(&running.mcp_url, Some(&admin)).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    let azmcp_tools = names.iter().filter(|n| n.starts_with("azmcp__")).count();
    assert!(azmcp_tools >= 200, "{azmcp_tools} azmcp tools: {names:?}");
    for name in [
        "azure__arm_subscription_list",
        "sample__elicit_name",
        "azmcp__subscription_list",
        "azmcp__group_list",
        "azmcp__compute_vm_update",
    ] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    drop(client);

    // A persona's calls: the reader lists subscriptions and resource
    // groups through azmcp.
    let token = dev_json["personas"]["reader"]["token"].as_str().unwrap();
    let (client, _) = connect_as(&running.mcp_url, Some(token)).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"azmcp__group_list"), "{names:?}");
    assert!(
        !names.contains(&"azmcp__compute_vm_update"),
        "the reader's list holds no writes: {names:?}"
    );

    let subscriptions = call(&client, "azmcp__subscription_list", json!({}))
        .await
        .expect("subscription_list");
    let listed = text(&subscriptions);
    assert_ne!(subscriptions.is_error, Some(true), "{listed}");
    for (id, name) in warden::azure::sim::DEMO_SUBSCRIPTIONS {
        assert!(listed.contains(id) && listed.contains(name), "{listed}");
    }
    let groups = call(
        &client,
        "azmcp__group_list",
        json!({ "subscription": warden::azure::sim::DEV_SUBSCRIPTION }),
    )
    .await
    .expect("group_list");
    let listed = text(&groups);
    assert_ne!(groups.is_error, Some(true), "{listed}");
    assert!(
        listed.contains("dev-web") && listed.contains("dev-data"),
        "{listed}"
    );

    // The simulator's caller is azmcp's own service principal.
    let requests: Value = reqwest::get(format!("{}/_sim/requests?limit=50", running.arm_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let callers = |path: &str| -> Vec<String> {
        requests["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.eq_ignore_ascii_case(path))
            })
            .map(|r| r["caller"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let listing = callers("/subscriptions");
    assert!(!listing.is_empty(), "{requests}");
    assert!(
        listing.iter().all(|c| c == DEV_AZMCP_CLIENT),
        "{listing:?} (Warden's own is {DEV_CONFIDENTIAL_CLIENT})"
    );

    // Its service principal is a Contributor on the dev subscription.
    let arm_token = running
        .issuer
        .mint(&TokenOptions {
            user: "ada.admin@contoso.dev".into(),
            audience: Some(warden::azure::sim::ARM_AUDIENCE.into()),
            scopes: vec![warden::azure::sim::ARM_SCOPE.into()],
            ..TokenOptions::default()
        })
        .unwrap();
    let assignment: Value = reqwest::Client::new()
        .get(format!(
            "{}/subscriptions/{}/providers/Microsoft.Authorization/roleAssignments/{}\
             ?api-version=2022-04-01",
            running.arm_url,
            warden::azure::sim::DEV_SUBSCRIPTION,
            warden::app::dev::AZMCP_ROLE_ASSIGNMENT,
        ))
        .bearer_auth(arm_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let properties = &assignment["properties"];
    assert_eq!(
        properties["principalId"],
        service_principal_id(DEV_AZMCP_CLIENT).as_str(),
        "{assignment}"
    );
    assert_eq!(properties["principalType"], "ServicePrincipal");
    assert!(
        properties["roleDefinitionId"]
            .as_str()
            .is_some_and(|id| id.ends_with(warden::azure::sim::seed::ROLE_CONTRIBUTOR)),
        "{assignment}"
    );

    // Offline: the proxy served the issuer and ARM, and refused the rest,
    // none of which was needed.
    let hosts = running.proxy().hosts();
    let forwarded = |host: &str| {
        hosts
            .iter()
            .find(|h| h.host == host)
            .map_or(0, |h| h.forwarded)
    };
    assert!(forwarded("login.microsoftonline.com") > 0, "{hosts:?}");
    assert!(forwarded("management.azure.com") > 0, "{hosts:?}");
    for host in running.proxy().refused_hosts() {
        assert!(is_expendable(&host), "azmcp needed {host}: {hosts:?}");
    }
    common::azmcp_routes::check_azmcp_routes(&running.arm_url, DEV_AZMCP_CLIENT, "dev_azmcp").await;
    drop(client);
    running.stop().await.unwrap();
}
