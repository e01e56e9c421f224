//! rmcp's own OAuth client (the official Rust MCP SDK, feature `auth`)
//! through Warden's authorization-server facade, the dev issuer playing
//! Entra ID over real HTTP:
//!
//! - an [`AuthClient`] without credentials connects to `/mcp` and gets
//!   Warden's 401; its `WWW-Authenticate` challenge seeds rmcp's discovery
//!   (protected-resource metadata, then Warden's RFC 8414 document);
//! - [`AuthorizationSession`] registers dynamically at Warden's `/register`
//!   and builds the authorization URL (PKCE S256, `state`, `resource`, the
//!   challenge's scopes);
//! - the test plays the browser for that URL (Warden's consent page, the
//!   decision with its CSRF double submit, the issuer's sign-in with
//!   `login_hint`, Warden's callback) and hands the redirect to the client's
//!   URI back to rmcp, which checks `state` and `iss` and redeems the code
//!   at Warden's `/token`;
//! - rmcp's Streamable HTTP transport over the authorized [`AuthClient`]
//!   lists tools and calls one; then rmcp refreshes through its manager and
//!   the same session calls again with the rotated tokens.
//!
//! Client ID Metadata Documents: rmcp 3.11 supports them
//! (`AuthorizationRequest::with_client_metadata_url`, used when the server's
//! metadata says `client_id_metadata_document_supported`, which Warden's
//! does); `tests/oauth_cimd.rs` signs rmcp in with a document served over
//! HTTPS. Without one rmcp registers dynamically, as below.

mod common;

use common::facade::{browse, query};
use common::issuer::Issuer;
use common::*;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{
    AuthClient, AuthorizationManager, AuthorizationMetadataSource, AuthorizationRequest,
    AuthorizationSession, OAuthTokenResponse,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use warden::identity::dev::{DEV_TENANT, DevUser};

/// The client's loopback redirect URI. Nothing listens there: the browser
/// stand-in reads the code off the last redirect instead of following it.
const REDIRECT: &str = "http://127.0.0.1:53683/callback";

/// A token answer as JSON (the standard fields by name).
fn token_json(tokens: &OAuthTokenResponse) -> Value {
    serde_json::to_value(tokens).unwrap()
}

#[tokio::test]
async fn rmcp_signs_in_through_the_facade_calls_a_tool_and_refreshes() {
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
    let warden = common::facade::start(&issuer, &demo_stdio("demo", "rmcp-oauth"), None);
    let base = warden.base();
    let mcp = warden.url();
    let transport_config = || StreamableHttpClientTransportConfig::with_uri(mcp.clone());

    // Without credentials rmcp's AuthClient sends no token, and the 401's
    // challenge is where its authorization starts.
    let unauthorized = AuthorizationManager::new(mcp.as_str()).await.unwrap();
    let Err(refused) = RecordingClient::default()
        .serve(StreamableHttpClientTransport::with_client(
            AuthClient::new(reqwest::Client::new(), unauthorized),
            transport_config(),
        ))
        .await
    else {
        panic!("a session without a token");
    };
    assert!(refused.is_authorization_required(), "{refused}");
    let challenge = refused
        .auth_challenge()
        .unwrap_or_else(|| panic!("no challenge in {refused}"))
        .to_owned();
    assert!(
        challenge.contains(&format!(
            r#"resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#
        )),
        "{challenge}"
    );

    // Discovery from the challenge: the protected-resource metadata names
    // Warden, whose RFC 8414 document rmcp reads.
    let mut manager = AuthorizationManager::new(mcp.as_str()).await.unwrap();
    let resolution = manager
        .resolve_metadata_from_challenge(Some(&challenge))
        .await
        .unwrap();
    assert_eq!(
        resolution.source,
        AuthorizationMetadataSource::ProtectedResourceMetadata
    );
    let metadata = resolution.metadata;
    assert_eq!(metadata.issuer.as_deref(), Some(base.as_str()));
    assert_eq!(metadata.authorization_endpoint, format!("{base}/authorize"));
    assert_eq!(metadata.token_endpoint, format!("{base}/token"));
    assert_eq!(
        metadata.registration_endpoint.as_deref(),
        Some(format!("{base}/register").as_str())
    );
    assert_eq!(
        metadata.code_challenge_methods_supported,
        Some(vec!["S256".to_owned()])
    );
    assert_eq!(
        metadata.additional_fields["client_id_metadata_document_supported"],
        true
    );
    manager.set_metadata(metadata);

    // Dynamic registration at Warden, and the authorization URL.
    let session = AuthorizationSession::new(
        manager,
        AuthorizationRequest::new(REDIRECT)
            .with_initial_scope_selection()
            .with_client_name("rmcp (Warden interop)"),
    )
    .await
    .map_err(|(_, error)| error)
    .expect("rmcp registers and builds the authorization URL");
    let authorization_url = session.get_authorization_url().to_owned();
    assert!(
        authorization_url.starts_with(&format!("{base}/authorize?")),
        "{authorization_url}"
    );
    let asked = query(&authorization_url);
    let client_id = asked["client_id"].clone();
    assert!(client_id.starts_with("wdc_"), "{client_id}");
    assert_eq!(asked["response_type"], "code");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["redirect_uri"], REDIRECT);
    assert_eq!(asked["resource"], mcp);
    assert_eq!(asked["scope"], "mcp offline_access");

    // The browser: consent, the issuer's sign-in, Warden's callback, in
    // that order, ending at the client's redirect URI.
    let browsed = browse(&base, &authorization_url, "ada").await;
    assert!(
        browsed.consent.contains("unverified"),
        "{}",
        browsed.consent
    );
    assert_eq!(
        browsed.hops,
        [
            "GET warden /authorize 200".to_owned(),
            "POST warden /authorize/decision 302".to_owned(),
            format!("GET issuer /{DEV_TENANT}/oauth2/v2.0/authorize 302"),
            "GET warden /oauth/callback 302".to_owned(),
        ]
    );
    assert!(
        browsed.to_client.starts_with(&format!("{REDIRECT}?")),
        "{}",
        browsed.to_client
    );
    let answer = query(&browsed.to_client);
    assert_eq!(answer["state"], asked["state"]);
    assert_eq!(answer["iss"], base);

    // rmcp checks state and iss and redeems the code at Warden's /token.
    let tokens = token_json(
        &session
            .handle_callback_url(&browsed.to_client)
            .await
            .expect("rmcp redeems the code"),
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("wdn_at_"), "{tokens}");
    assert!(refresh.starts_with("wdn_rt_"), "{tokens}");
    assert_eq!(tokens["scope"], "mcp", "{tokens}");
    let (stored_client, _) = session.get_credentials().await.unwrap();
    assert_eq!(stored_client, client_id);

    // rmcp's Streamable HTTP transport with the authorized client.
    let authorized = AuthClient::new(reqwest::Client::new(), session.auth_manager);
    let manager = authorized.auth_manager.clone();
    let client = RecordingClient::default()
        .serve(StreamableHttpClientTransport::with_client(
            authorized,
            transport_config(),
        ))
        .await
        .expect("rmcp connects with Warden's token");
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        ["echo", "whoami"]
            .iter()
            .all(|name| tools.iter().any(|t| t.name == *name)),
        "{tools:?}"
    );
    let who = call(&client, "whoami", json!({})).await.unwrap();
    assert_ne!(who.is_error, Some(true), "{who:?}");
    assert!(text(&who).starts_with("tag=rmcp-oauth "), "{who:?}");

    // Refresh through rmcp: both tokens rotate, and the same session goes
    // on with the new access token.
    let rotated = token_json(
        &manager
            .lock()
            .await
            .refresh_token()
            .await
            .expect("rmcp refreshes"),
    );
    let newer_access = rotated["access_token"].as_str().unwrap().to_owned();
    let newer_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert!(newer_access.starts_with("wdn_at_"), "{rotated}");
    assert!(newer_refresh.starts_with("wdn_rt_"), "{rotated}");
    assert_ne!(newer_access, access);
    assert_ne!(newer_refresh, refresh);
    assert_eq!(
        manager.lock().await.get_access_token().await.unwrap(),
        newer_access
    );
    let again = call(&client, "whoami", json!({})).await.unwrap();
    assert_ne!(again.is_error, Some(true), "{again:?}");
    client.cancel().await.unwrap();

    // Both calls were ada's, through the facade, as rmcp's registered client.
    let records = records(&warden.db());
    let intents: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["tool"] == "whoami")
        .collect();
    assert_eq!(intents.len(), 2, "{intents:?}");
    for intent in intents {
        let principal = &intent["principal"];
        assert_eq!(principal["name"], "ada@contoso.dev", "{principal}");
        assert_eq!(principal["tid"], DEV_TENANT, "{principal}");
        assert_eq!(principal["client_app"], client_id.as_str(), "{principal}");
        assert_eq!(principal["auth_path"], "oauth_facade", "{principal}");
    }
    let events: Vec<&str> = records
        .iter()
        .filter(|r| r["kind"] == "auth" && r["details"]["client_id"] == client_id.as_str())
        .filter_map(|r| r["details"]["event"].as_str())
        .collect();
    for event in ["signed_in", "token_issued", "token_refreshed"] {
        assert!(events.contains(&event), "{event} in {events:?}");
    }
}
