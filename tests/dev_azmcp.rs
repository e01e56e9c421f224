//! `warden dev` with the official Azure MCP Server behind it: azmcp
//! (installed by `scripts/install-test-deps.sh`, found where `warden dev`
//! finds it) runs as the upstream `azmcp`, offline, through the egress
//! proxy: it signs in at the dev issuer as its own service principal and
//! calls the ARM simulator as `management.azure.com`. A persona's calls
//! go through Warden's pipeline like any other.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{call, connect_as, records, text, wait_for_records};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::app::dev::{DevListeners, DevOptions, RunningDev};
use warden::dev::azmcp::Serve;
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

/// azmcp as `scripts/install-test-deps.sh` installs it, if it did.
fn installed_azmcp() -> Option<PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = warden::dev::azmcp::deps_path(root).filter(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "skipped: no azmcp under .deps/ (run scripts/install-test-deps.sh, which CI always \
             runs)"
        );
    }
    found
}

/// `warden dev` in `dir` with azmcp run as `serve` says, the baseline
/// policies and a role allowed everything.
async fn start_dev(dir: &std::path::Path, azmcp: &std::path::Path, serve: Serve) -> RunningDev {
    // The baseline policies, and a role allowed everything: its holder sees
    // every tool azmcp lists.
    let policies = dir.join("policies");
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
    warden::app::dev::start(
        DevOptions {
            data_dir: dir.join("dev"),
            policies: Some(policies),
            executable: env!("CARGO_BIN_EXE_warden").into(),
            oauth: true,
            azure_mcp: Some(azmcp.to_owned()),
            azure_mcp_serve: serve,
        },
        listeners,
        CancellationToken::new(),
    )
    .await
    .expect("warden dev starts")
}

#[tokio::test]
async fn azmcp_runs_behind_warden_dev_offline() {
    let Some(azmcp) = installed_azmcp() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // One azmcp per session, over stdio.
    let running = start_dev(dir.path(), &azmcp, Serve::Stdio).await;

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

/// Long enough that only a hang would exceed it; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// The shared azmcp's process id, as `/readyz` reports it.
async fn shared_pid(base_url: &str) -> u32 {
    let ready: Value = reqwest::get(format!("{base_url}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detail = ready["upstreams"][warden::dev::azmcp::UPSTREAM]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    detail
        .strip_prefix("shared child (pid ")
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no shared azmcp in /readyz: {ready}"))
}

/// The processes whose parent is this test process (the in-process
/// Warden's children) and whose executable is `program`.
fn children_running(program: &std::path::Path) -> Vec<u32> {
    let me = std::process::id().to_string();
    let program = std::fs::canonicalize(program).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`; comm may hold spaces.
            let parent = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().nth(1));
            parent == Some(Some(me.as_str()))
                && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == program)
        })
        .collect()
}

#[tokio::test]
async fn one_shared_azmcp_serves_concurrent_sessions_and_a_crash_is_a_clear_error() {
    let Some(azmcp) = installed_azmcp() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let running = start_dev(dir.path(), &azmcp, Serve::Http).await;
    let first = shared_pid(&running.base_url).await;
    assert_eq!(
        children_running(&azmcp),
        [first],
        "one azmcp before any session"
    );

    // Four sessions at once, each listing and calling azmcp's tools.
    let dev_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&running.dev_json).unwrap()).unwrap();
    let token = |persona: &str| {
        dev_json["personas"][persona]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let tokens = [
        token("reader"),
        token("reader"),
        token("reader"),
        token("reader"),
    ];
    let sessions = tokens.iter().map(|token| {
        let url = running.mcp_url.clone();
        async move {
            let (client, _) = connect_as(&url, Some(token)).await;
            let tools = client.list_all_tools().await.expect("tools/list");
            assert!(
                tools.iter().any(|t| t.name == "azmcp__group_list"),
                "{} tools",
                tools.len()
            );
            let groups = call(
                &client,
                "azmcp__group_list",
                json!({ "subscription": warden::azure::sim::DEV_SUBSCRIPTION }),
            )
            .await
            .expect("group_list");
            (client, text(&groups), groups.is_error)
        }
    });
    let sessions = futures::future::join_all(sessions).await;
    for (_, listed, is_error) in &sessions {
        assert_ne!(*is_error, Some(true), "{listed}");
        assert!(
            listed.contains("dev-web") && listed.contains("dev-data"),
            "{listed}"
        );
    }
    // Still the one azmcp.
    assert_eq!(children_running(&azmcp), [first]);

    // Every call went through the pipeline: an intent, then an outcome.
    let db = dir.path().join("dev").join("warden.db");
    let all = wait_for_records(&db, |all| {
        all.iter()
            .filter(|r| r["kind"] == "outcome" && r["tool"] == "azmcp__group_list")
            .count()
            >= tokens.len()
    })
    .await;
    let intents: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "intent" && r["tool"] == "azmcp__group_list")
        .collect();
    assert_eq!(intents.len(), tokens.len(), "{all:?}");
    for intent in &intents {
        let outcome = all
            .iter()
            .find(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"])
            .unwrap_or_else(|| panic!("no outcome for {intent}"));
        assert_eq!(outcome["status"], "ok", "{outcome}");
    }

    // Offline in this mode too: nothing needed was refused.
    for host in running.proxy().refused_hosts() {
        assert!(is_expendable(&host), "azmcp needed {host}");
    }

    // azmcp dies: the sessions on it get a clear error, not a hang.
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (client, _, _) = &sessions[0];
    let error = tokio::time::timeout(
        HANG_GUARD,
        call(client, "azmcp__subscription_list", json!({})),
    )
    .await
    .expect("no hang once azmcp died")
    .expect_err("the dead azmcp is an error")
    .to_string();
    assert!(
        error.contains("upstream 'azmcp'") && error.contains("start a new session"),
        "{error}"
    );
    let failed = wait_for_records(&db, |all| {
        all.iter()
            .any(|r| r["kind"] == "outcome" && r["tool"] == "azmcp__subscription_list")
    })
    .await;
    assert!(
        failed.iter().any(|r| r["kind"] == "outcome"
            && r["tool"] == "azmcp__subscription_list"
            && r["status"] == "error"),
        "{:?}",
        records(&db)
    );

    // Warden starts azmcp again; a new session works on the new one.
    let (fresh, _) = connect_as(&running.mcp_url, Some(&tokens[0])).await;
    let subscriptions = call(&fresh, "azmcp__subscription_list", json!({}))
        .await
        .expect("subscription_list");
    assert_ne!(
        subscriptions.is_error,
        Some(true),
        "{}",
        text(&subscriptions)
    );
    let second = shared_pid(&running.base_url).await;
    assert_ne!(first, second);
    assert_eq!(children_running(&azmcp), [second]);

    drop(fresh);
    drop(sessions);
    running.stop().await.unwrap();
    assert_eq!(
        children_running(&azmcp),
        Vec::<u32>::new(),
        "azmcp stops with Warden"
    );
}
