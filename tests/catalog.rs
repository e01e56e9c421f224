//! The shipped catalog against the real Azure MCP Server (`@azure/mcp`
//! 2.0.5, installed by `scripts/install-test-deps.sh`, which
//! `scripts/test.sh` runs first): azmcp is started over stdio, its whole
//! `tools/list` is read with rmcp's client, and every tool must resolve from
//! the catalog or a rule.
//!
//! `WARDEN_WRITE_INVENTORY=1 cargo test --test catalog` rewrites
//! `schemas/catalog/azmcp.inventory.json` from the live server (after an
//! azmcp upgrade), then fails so that the new inventory gets reviewed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::dep;
use rmcp::ServiceExt;
use rmcp::model::Tool;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use warden::catalog::{Catalog, Class, Inventory, InventoryTool, Source};

/// The number of tools `azmcp server start --mode all` lists in 2.0.5.
const AZMCP_TOOLS: usize = 235;
const AZMCP_VERSION: &str = "2.0.5";

/// Starts azmcp as `.deps/paths.env` says and lists all its tools.
async fn azmcp_tools() -> (String, Vec<Tool>) {
    let azmcp = dep("WARDEN_TEST_AZMCP");
    assert!(
        std::path::Path::new(&azmcp).is_file(),
        "{azmcp} (WARDEN_TEST_AZMCP) is missing; rerun scripts/install-test-deps.sh"
    );
    assert_eq!(dep("WARDEN_TEST_AZMCP_VERSION"), AZMCP_VERSION);
    let mut command = tokio::process::Command::new(&azmcp);
    command.args(dep("WARDEN_TEST_AZMCP_ARGS").split_whitespace());
    for (key, value) in &common::deps() {
        if let Some(name) = key.strip_prefix("WARDEN_AZMCP_ENV_") {
            command.env(name, value);
        }
    }
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {azmcp}: {e}"));
    let listing = async {
        let client = ().serve(transport).await.expect("MCP initialize with azmcp");
        let version = client
            .peer_info()
            .and_then(|info| info.server_info.as_ref().map(|s| s.version.clone()))
            .unwrap_or_default();
        let tools = client
            .list_all_tools()
            .await
            .expect("tools/list from azmcp");
        let _ = client.cancel().await;
        (version, tools)
    };
    tokio::time::timeout(Duration::from_secs(120), listing)
        .await
        .expect("azmcp answered initialize and tools/list within 120 s")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_azmcp_tool_resolves_from_the_catalog() {
    let (version, tools) = azmcp_tools().await;
    assert_eq!(version, AZMCP_VERSION, "azmcp's version");
    assert_eq!(
        tools.len(),
        AZMCP_TOOLS,
        "azmcp {AZMCP_VERSION} lists {AZMCP_TOOLS} tools"
    );
    let catalog = Catalog::builtin().unwrap_or_else(|e| panic!("builtin catalog: {e}"));

    // The inventory the catalog was checked against is the live tools/list.
    let live = Inventory {
        server: "Azure MCP Server".into(),
        version: version.clone(),
        tools: tools.iter().map(InventoryTool::from_tool).collect(),
    };
    if std::env::var_os("WARDEN_WRITE_INVENTORY").is_some() {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schemas/catalog/azmcp.inventory.json");
        std::fs::write(&path, live.to_file_text()).expect("write inventory");
        panic!("wrote {}: review it, rebuild and run again", path.display());
    }
    // The azmcp inventory alone (the catalog also holds Warden's built-in tools').
    let azmcp: warden::catalog::Inventory =
        serde_json::from_str(include_str!("../schemas/catalog/azmcp.inventory.json"))
            .expect("azmcp inventory");
    let shipped: BTreeMap<&str, &InventoryTool> =
        azmcp.tools.iter().map(|t| (t.name.as_str(), t)).collect();
    let listed: BTreeMap<&str, &InventoryTool> =
        live.tools.iter().map(|t| (t.name.as_str(), t)).collect();
    let added: Vec<&str> = listed
        .keys()
        .filter(|n| !shipped.contains_key(*n))
        .copied()
        .collect();
    let removed: Vec<&str> = shipped
        .keys()
        .filter(|n| !listed.contains_key(*n))
        .copied()
        .collect();
    let changed: Vec<&str> = listed
        .iter()
        .filter(|(n, t)| shipped.get(*n).is_some_and(|s| s != *t))
        .map(|(n, _)| *n)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "schemas/catalog/azmcp.inventory.json differs from azmcp's tools/list (rerun with \
         WARDEN_WRITE_INVENTORY=1): new {added:?}, gone {removed:?}, changed {changed:?}"
    );

    let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_class: BTreeMap<Class, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for tool in &tools {
        let name = tool.name.as_ref();
        let resolution = catalog.resolve(name, &json!({}), tool.annotations.as_ref());
        let classes = resolution.classes();
        let source = match resolution.source {
            Source::Catalog => "catalog",
            Source::Rule => "rule",
            Source::Annotations => "annotations",
            Source::Unknown => "unknown",
        };
        *by_source.entry(source).or_default() += 1;
        for class in &classes {
            *by_class.entry(*class).or_default() += 1;
        }
        if !matches!(resolution.source, Source::Catalog | Source::Rule) {
            failures.push(format!(
                "{name}: resolved from {source}, not the catalog or a rule"
            ));
        }
        if classes.contains(&Class::Unknown) {
            failures.push(format!("{name}: class unknown ({:?})", resolution.problem));
        }
        let annotations = tool.annotations.as_ref();
        if annotations.and_then(|a| a.destructive_hint) == Some(true)
            && classes.iter().all(|c| *c == Class::Read)
        {
            failures.push(format!("{name}: destructiveHint but only reads"));
        }
        let secret = tool
            .meta
            .as_ref()
            .and_then(|m| m.get("SecretHint"))
            .is_some_and(|v| v == &json!(true));
        // azmcp's SecretHint marks tools that handle secrets: a read-only
        // one returns secret values (privileged); the others take secret
        // arguments (redacted in the audit log) and keep their RBAC class.
        let read_only = annotations.and_then(|a| a.read_only_hint) == Some(true);
        if secret && read_only && !classes.contains(&Class::Privileged) {
            failures.push(format!("{name}: reads secrets but resolves to {classes:?}"));
        }
        if catalog.operations_of(name, annotations).is_empty() {
            failures.push(format!("{name}: operations_of is empty"));
        }
    }
    let live_names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for (entry, origin) in catalog.explicit_tools() {
        // The azmcp-*.toml files; warden-arm.toml holds Warden's own tools.
        if !live_names.contains(entry) && origin.file.contains("azmcp-") {
            failures.push(format!(
                "{}:{}: entry for {entry}, which azmcp does not list",
                origin.file, origin.line
            ));
        }
    }
    println!(
        "azmcp {version}: {} tools; by source {by_source:?}; tools per class {by_class:?}",
        tools.len()
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        by_source.get("catalog").copied().unwrap_or(0) > 0
            && by_source.get("rule").copied().unwrap_or(0) > 0
    );
}
