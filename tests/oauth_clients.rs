//! Real MCP clients' OAuth implementations through Warden's authorization-
//! server facade (the dev issuer plays Entra ID over real HTTP). The clients
//! are installed, pinned, by `scripts/install-test-deps.sh`.
//!
//! The official Python MCP SDK's `OAuthClientProvider` discovers Warden from
//! the 401, registers dynamically, and runs the authorization-code flow with
//! PKCE; `tests/interop/oauth_client.py` plays the browser (consent page,
//! the issuer's sign-in with `login_hint`, Warden's callback) and reads the
//! code off the redirect to the client's loopback URI.

mod common;

use common::facade::python_json;
use common::issuer::Issuer;
use common::*;
use serde_json::Value;
use warden::identity::dev::DevUser;

#[tokio::test]
async fn the_python_sdk_signs_in_through_the_facade_and_calls_a_tool() {
    let issuer = Issuer::start().await;
    issuer
        .issuer
        .add_user(DevUser {
            name: "ada".into(),
            user: "ada@contoso.dev".into(),
            roles: vec!["Reader".into()],
            groups: Vec::new(),
            mfa: true,
            disabled: false,
        })
        .unwrap();
    let warden = common::facade::start(&issuer, &demo_stdio("demo", "sdk-oauth"), None);

    let report = python_json(
        "oauth_client.py",
        &[&warden.url(), "--persona", "ada", "--tool", "whoami"],
    )
    .await;

    // The browser went through Warden's consent page, the issuer's sign-in
    // and Warden's callback, in that order.
    assert_eq!(
        report["hops"],
        serde_json::json!([
            "GET warden /authorize 200",
            "POST warden /authorize/decision 302",
            format!(
                "GET issuer /{}/oauth2/v2.0/authorize 302",
                warden::identity::dev::DEV_TENANT
            ),
            "GET warden /oauth/callback 302",
            "-> client redirect URI (not fetched)",
        ]),
        "{report}"
    );
    // Dynamic registration, and Warden's own tokens (never Entra's).
    let client_id = report["client_id"].as_str().expect("client id");
    assert!(client_id.starts_with("wdc_"), "{report}");
    assert_eq!(report["access_token_prefix"], "wdn_at_", "{report}");
    assert_eq!(report["refresh_token"], true, "{report}");
    assert_eq!(report["scope"], "mcp", "{report}");
    // The MCP session with that token: the tools, and a call that succeeded.
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
    assert_eq!(report["is_error"], false, "{report}");
    assert!(
        report["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("tag=sdk-oauth ")),
        "{report}"
    );

    // The sign-in and the token issue are authentication records, for
    // this client.
    let events: Vec<(String, String)> = records(&warden.db())
        .into_iter()
        .filter(|r| r["kind"] == "auth")
        .map(|r| {
            let details = &r["details"];
            (
                details["event"].as_str().unwrap_or_default().to_owned(),
                details["client_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for event in ["signed_in", "token_issued"] {
        assert!(
            events.iter().any(|(e, c)| e == event && c == client_id),
            "{event} for {client_id} in {events:?}"
        );
    }
}

/// `warden dev` has the facade on: a real client signs in as a persona
/// through Warden's consent page and the dev issuer, and the persona's
/// role decides (a reader lists resource groups of the ARM simulator).
#[tokio::test]
async fn the_python_sdk_signs_in_to_warden_dev_as_a_persona() {
    use tokio_util::sync::CancellationToken;
    use warden::app::dev::{DevListeners, DevOptions};
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let listeners = DevListeners::bind(any, any, any).await.unwrap();
    let running = warden::app::dev::start(
        DevOptions {
            data_dir: dir.path().join("dev"),
            policies: None,
            executable: env!("CARGO_BIN_EXE_warden").into(),
            oauth: true,
            azure_mcp: None,
            azure_mcp_serve: warden::dev::azmcp::Serve::Http,
        },
        listeners,
        CancellationToken::new(),
    )
    .await
    .expect("warden dev starts");
    assert_eq!(
        running.oauth_issuer.as_deref(),
        Some(running.base_url.as_str())
    );
    let dev_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&running.dev_json).unwrap()).unwrap();
    assert_eq!(dev_json["oauth"]["issuer"], running.base_url.as_str());
    let subscription = dev_json["subscriptions"][0]["id"].as_str().unwrap();
    let arguments = serde_json::json!({ "subscription": subscription }).to_string();

    let report = python_json(
        "oauth_client.py",
        &[
            &running.mcp_url,
            "--persona",
            "reader",
            "--tool",
            "azure__arm_group_list",
            "--arguments",
            &arguments,
        ],
    )
    .await;
    assert_eq!(report["access_token_prefix"], "wdn_at_", "{report}");
    assert_eq!(report["is_error"], false, "{report}");
    assert!(
        report["text"]
            .as_str()
            .is_some_and(|t| t.contains("dev-web")),
        "{report}"
    );
    running.stop().await.unwrap();
}
