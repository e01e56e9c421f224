//! Interoperability with the official SDKs and servers: the Python MCP SDK
//! as a client through Warden, and the official Azure MCP Server as a stdio
//! upstream. Both are installed, pinned, by `scripts/install-test-deps.sh`
//! (which `scripts/test.sh` runs first).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(name)
}

/// Runs a Python interop script and parses the JSON it prints.
fn run_python(script_name: &str, args: &[&str]) -> Value {
    let output = Command::new(dep("WARDEN_TEST_PYTHON"))
        .arg(script(script_name))
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script_name} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script_name} printed no JSON ({e}): {stdout}\n{stderr}"))
}

#[test]
fn python_sdk_client_through_warden() {
    let warden = InProcess::start("", &demo_stdio("demo", "python"));
    let report = run_python("py_client.py", &[&warden.url()]);
    assert_eq!(report["server_name"], "demo-upstream");
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"echo") && tools.contains(&"whoami"),
        "{tools:?}"
    );
    assert!(tools.len() > 5, "all pages were followed: {tools:?}");
    assert_eq!(report["echo"], "from python");
    assert_eq!(report["resource"], "hello from demo");
    assert_eq!(report["prompt"], "Please greet Ada.");
}

#[test]
fn azure_mcp_server_as_a_stdio_upstream() {
    let azmcp = dep("WARDEN_TEST_AZMCP");
    let env = deps()
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("WARDEN_AZMCP_ENV_")
                .map(|k| (k.to_owned(), v))
        })
        .map(|(k, v)| format!("{k} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let upstream = format!(
        "[upstreams.azure]\ncommand = {azmcp:?}\nargs = [\"server\", \"start\", \"--mode\", \"all\"]\nenv = {{ {env} }}\n"
    );
    let warden = InProcess::start("upstream_init_timeout = \"60s\"", &upstream);

    // The same server directly, for comparison.
    let direct = run_python("azmcp_probe.py", &["--stdio", &azmcp]);
    let through = run_python("azmcp_probe.py", &[&warden.url()]);

    assert_eq!(through["server_name"], direct["server_name"]);
    // Warden closes the list with its own tools (asking for JIT access).
    let warden_tools = ["access_status", "justify_request", "request_access"];
    let (own, relayed): (Vec<Value>, Vec<Value>) = through["tools"]
        .as_array()
        .unwrap()
        .iter()
        .cloned()
        .partition(|t| warden_tools.contains(&t["name"].as_str().unwrap_or_default()));
    assert_eq!(own.len(), warden_tools.len(), "{own:?}");
    let count = through["tool_count"].as_u64().expect("tool count");
    assert!(count >= 200, "all of azmcp's tools: {count}");
    assert_eq!(
        Some(count - warden_tools.len() as u64),
        direct["tool_count"].as_u64()
    );
    assert_eq!(
        Value::Array(relayed),
        direct["tools"],
        "names and annotations arrive intact"
    );
    let annotated = through["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["annotations"]["readOnlyHint"].is_boolean())
        .count();
    assert!(annotated > 100, "annotations present: {annotated}");

    // A call that needs Azure fails inside the upstream; the client sees the
    // upstream's own answer, not a transport failure or a hang.
    let call = &through["call"];
    let direct_call = &direct["call"];
    assert_eq!(
        call["is_error"], direct_call["is_error"],
        "{call} vs {direct_call}"
    );
    assert_eq!(call["jsonrpc_error"], direct_call["jsonrpc_error"]);
    assert!(
        call["is_error"] == true || call["jsonrpc_error"].is_object(),
        "the call failed for lack of credentials: {call}"
    );
    assert!(call["transport_error"].is_null(), "{call}");
}
