//! The ARM routes the Azure MCP Server called through the simulator.

use serde_json::Value;

/// Where each test writes its list; `scripts/test.sh` prints their union.
pub fn routes_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("azmcp-routes")
}

/// Lists every `(method, path pattern, api-version)` the simulator at
/// `arm_url` served to azmcp's service principal (`caller`), on stderr and
/// in `routes_dir()/<test>.txt`, and fails if the simulator answered any
/// request, azmcp's or anyone's, as one it does not serve.
pub async fn check_azmcp_routes(arm_url: &str, caller: &str, test: &str) {
    let get = |path: &'static str| async move {
        reqwest::get(format!("{arm_url}{path}"))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .json::<Value>()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let calls = get("/_sim/calls").await;
    let unserved = get("/_sim/unserved").await;
    let line = |c: &Value| {
        format!(
            "{} {} api-version={}",
            c["method"].as_str().unwrap_or_default(),
            c["path"].as_str().unwrap_or_default(),
            c["api_version"].as_str().unwrap_or_default()
        )
    };
    let mut routes: Vec<String> = calls
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["caller"] == caller)
        .map(line)
        .collect();
    routes.sort();
    routes.dedup();
    assert!(!routes.is_empty(), "azmcp called nothing: {calls:#}");
    let unknown: Vec<String> = unserved
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("UNSERVED {} (caller {})", line(c), c["caller"]))
        .collect();
    let text: String = routes
        .iter()
        .chain(&unknown)
        .map(|l| format!("{l}\n"))
        .collect();
    eprint!("azmcp called (from the simulator's ledger):\n{text}");
    let dir = routes_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{test}.txt")), &text).unwrap();
    assert!(
        unknown.is_empty(),
        "the simulator did not serve: {unknown:#?}"
    );
}
