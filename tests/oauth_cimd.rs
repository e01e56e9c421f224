//! Client ID Metadata Documents end to end, over real HTTPS: a document
//! host with a certificate from a throwaway CA serves client documents on
//! loopback; Warden's facade (in front of the dev issuer, playing Entra ID)
//! trusts that CA through `oauth.cimd.ca_file` and reaches the host through
//! an `oauth.cimd.connect_to` pin, while the client ids stay
//! `https://clients.example.test/...` on the default port.
//!
//! The happy path goes from `/authorize` with the document URL as client id
//! through consent, the issuer's sign-in and `/token` to a tool call; every
//! refusal ends on Warden's own error page (never a redirect to the
//! client); the document host counts what it serves, which shows both the
//! cache and the fetches that never happen.

mod common;

use common::facade::{Pkce, pkce};

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use common::facade::{encode, hidden, location, python_json, query, set_cookie};
use common::issuer::Issuer;
use common::*;
use serde_json::{Value, json};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use warden::identity::dev::DevUser;

/// The document host: pinned to the test's server, and the name on its
/// certificate.
const HOST: &str = "clients.example.test";
/// Allowlisted, unpinned, and a `localhost` name: loopback, so refused.
const LOCAL_HOST: &str = "docs.localhost";
/// Not on the allowlist.
const FOREIGN_HOST: &str = "clients.example.org";
/// The redirect URI of the test client (any port on loopback matches the
/// documents' `http://127.0.0.1/callback`).
const REDIRECT: &str = "http://127.0.0.1:43210/callback";

fn document_url(path: &str) -> String {
    format!("https://{HOST}{path}")
}

/// A client's metadata document for `client_id`.
fn document(client_id: &str, name: &str, redirect_uris: &[&str]) -> String {
    json!({
        "client_id": client_id,
        "client_name": name,
        "client_uri": format!("https://{HOST}/"),
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// The document host

/// A throwaway CA (PEM, for `ca_file`) and a certificate it signed for
/// `host`, with its key.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn pki(host: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Warden CIMD test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec![host.to_owned()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, host);
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
    }
}

/// What the document host answers on a path.
#[derive(Clone)]
enum Answer {
    /// 200 with this body (with its length) and `Cache-Control`.
    Body(String, Option<&'static str>),
    /// 200 with this many bytes, streamed in chunks without a length.
    Stream(usize),
    /// 302 to this path.
    Redirect(&'static str),
}

#[derive(Clone, Default)]
struct Served {
    answers: Arc<HashMap<String, Answer>>,
    /// Every request: its `Host` and path.
    hits: Arc<Mutex<Vec<(String, String)>>>,
}

/// An HTTPS server on `127.0.0.1:<port 0>` answering from a table and
/// counting every request.
struct DocumentHost {
    address: SocketAddr,
    served: Served,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(served): State<Served>, request: Request) -> Response {
    let host = request
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = request.uri().path().to_owned();
    served.hits.lock().unwrap().push((host, path.clone()));
    let builder = Response::builder().header("content-type", "application/json");
    match served.answers.get(&path) {
        Some(Answer::Body(body, cache_control)) => {
            let builder = match cache_control {
                Some(value) => builder.header("cache-control", *value),
                None => builder,
            };
            builder.body(Body::from(body.clone())).unwrap()
        }
        Some(Answer::Stream(len)) => {
            let chunks = (0..len.div_ceil(1024)).map(|_| Ok::<_, Infallible>(vec![b' '; 1024]));
            builder
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        }
        Some(Answer::Redirect(to)) => Response::builder()
            .status(302)
            .header("location", *to)
            .body(Body::empty())
            .unwrap(),
        None => Response::builder().status(404).body(Body::empty()).unwrap(),
    }
}

impl DocumentHost {
    async fn start(pki: &Pki, answers: HashMap<String, Answer>) -> DocumentHost {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(pki.key.clone_key()))
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = Served {
            answers: Arc::new(answers),
            hits: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(served.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(app),
                    )
                    .await;
                });
            }
        });
        DocumentHost {
            address,
            served,
            task,
        }
    }

    /// How many requests asked for `path`.
    fn hits(&self, path: &str) -> usize {
        self.served
            .hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p == path)
            .count()
    }

    /// The `Host` of every request.
    fn hosts(&self) -> Vec<String> {
        let hits = self.served.hits.lock().unwrap();
        hits.iter().map(|(host, _)| host.clone()).collect()
    }
}

// ---------------------------------------------------------------------------
// Warden with the facade, trusting and reaching the document host

struct Facade {
    warden: InProcess,
    issuer: Issuer,
    host: DocumentHost,
    base: String,
    http: reqwest::Client,
    _files: tempfile::TempDir,
}

/// The `[oauth.cimd]` tables: the allowlist, and (if given) the CA file
/// and the pin of [`HOST`] to the document host.
fn cimd_tables(ca_file: Option<&std::path::Path>, pin: SocketAddr) -> String {
    let ca = ca_file
        .map(|path| format!("ca_file = {:?}\n", path.display().to_string()))
        .unwrap_or_default();
    format!(
        "[oauth.cimd]\nallowed_domains = [{HOST:?}, {LOCAL_HOST:?}]\n{ca}\
         [oauth.cimd.connect_to]\n{HOST:?} = \"{pin}\"\n"
    )
}

async fn facade(answers: Vec<(&str, Answer)>, trust_ca: bool) -> Facade {
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
    let pki = pki(HOST);
    let answers = answers
        .into_iter()
        .map(|(path, answer)| (path.to_owned(), answer))
        .collect();
    let host = DocumentHost::start(&pki, answers).await;
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("documents-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let tables = cimd_tables(trust_ca.then_some(ca_file.as_path()), host.address);
    let warden = common::facade::start_with(&issuer, &demo_stdio("demo", "cimd"), None, &tables);
    Facade {
        base: warden.base(),
        warden,
        issuer,
        host,
        http: common::facade::browser(),
        _files: files,
    }
}

impl Facade {
    /// `GET /authorize` for `client_id` and `redirect_uri`.
    async fn authorize(
        &self,
        client_id: &str,
        redirect_uri: &str,
        pkce: &Pkce,
    ) -> reqwest::Response {
        let url = format!(
            "{}/authorize?{}",
            self.base,
            encode(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("state", "client-state"),
                ("resource", &format!("{}/mcp", self.base)),
            ])
        );
        self.http.get(url).send().await.unwrap()
    }

    /// `/authorize` refused on Warden's error page (400, no redirect): the
    /// page's text.
    async fn refused(&self, client_id: &str, redirect_uri: &str) -> String {
        let response = self.authorize(client_id, redirect_uri, &pkce()).await;
        assert_eq!(response.status(), 400, "{client_id}");
        assert!(
            response.headers().get("location").is_none(),
            "{client_id}: an error page, not a redirect"
        );
        let page = response.text().await.unwrap();
        assert!(!page.contains("name=\"consent\""), "{page}");
        page
    }

    /// From the consent page through the issuer's sign-in to the code on
    /// the redirect to the client.
    async fn approve(&self, consent: reqwest::Response, user: &str) -> String {
        let csrf_cookie = set_cookie(&consent, "warden_oauth_csrf").expect("csrf cookie");
        let page = consent.text().await.unwrap();
        let decided = self
            .http
            .post(format!("{}/authorize/decision", self.base))
            .header("cookie", &csrf_cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[
                ("consent", hidden(&page, "consent")),
                ("csrf", hidden(&page, "csrf")),
                ("decision", "approve".into()),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), 302);
        let browser = set_cookie(&decided, "warden_oauth_browser").expect("browser cookie");
        let entra = location(&decided);
        assert!(entra.starts_with(&self.issuer.base), "{entra}");
        let signed = self
            .http
            .get(format!("{entra}&login_hint={user}"))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 302, "{:?}", signed.text().await);
        let back = self
            .http
            .get(location(&signed))
            .header("cookie", &browser)
            .send()
            .await
            .unwrap();
        assert_eq!(back.status(), 302);
        let to_client = location(&back);
        assert!(to_client.starts_with(REDIRECT), "{to_client}");
        let answer = query(&to_client);
        assert_eq!(answer["state"], "client-state");
        assert_eq!(answer["iss"], self.base);
        answer["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/token", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(form))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_signs_in_with_its_metadata_document_and_calls_a_tool() {
    let client_id = document_url("/apps/cimd-test.json");
    let f = facade(
        vec![(
            "/apps/cimd-test.json",
            Answer::Body(
                document(
                    &client_id,
                    "CIMD Test Client",
                    &["http://127.0.0.1/callback"],
                ),
                Some("max-age=3600"),
            ),
        )],
        true,
    )
    .await;
    let metadata: Value = f
        .http
        .get(format!("{}/.well-known/oauth-authorization-server", f.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    // The consent page names the client and the host of its document.
    let pkce = pkce();
    let consent = f.authorize(&client_id, REDIRECT, &pkce).await;
    assert_eq!(consent.status(), 200);
    let page = consent.text().await.unwrap();
    assert!(page.contains("CIMD Test Client"), "{page}");
    assert!(
        page.contains(&format!("described by a metadata document at {HOST}")),
        "{page}"
    );
    assert!(!page.contains("unverified"), "{page}");
    assert_eq!(f.host.hits("/apps/cimd-test.json"), 1);

    // Sign in; the document is fetched once for all of it (cached for its
    // max-age).
    let consent = f.authorize(&client_id, REDIRECT, &pkce).await;
    assert_eq!(consent.status(), 200);
    let code = f.approve(consent, "ada").await;
    let mcp = format!("{}/mcp", f.base);
    let (status, tokens) = f
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id.as_str()),
            ("code_verifier", pkce.verifier.as_str()),
            ("resource", mcp.as_str()),
        ])
        .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("wdn_at_"), "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert_eq!(
        f.host.hits("/apps/cimd-test.json"),
        1,
        "two authorizations, one fetch"
    );

    // A redirect URI the document does not list: the error page.
    let page = f.refused(&client_id, "https://evil.example/callback").await;
    assert!(
        page.contains("The redirect URI is not one the client registered"),
        "{page}"
    );
    assert_eq!(f.host.hits("/apps/cimd-test.json"), 1);

    // The MCP client calls with Warden's token.
    let (client, _) = connect_as(&f.warden.url(), Some(&access)).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "whoami"), "{tools:?}");
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    assert!(who.starts_with("tag=cimd "), "{who}");

    // The call's record names the document URL as the client.
    let intent = records(&f.warden.db())
        .into_iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "whoami")
        .expect("the whoami intent");
    assert_eq!(intent["principal"]["client_app"], client_id.as_str());
    assert_eq!(intent["principal"]["auth_path"], "oauth_facade");
    // Only the pinned name reached the document host.
    assert!(
        f.host.hosts().iter().all(|h| h == HOST),
        "{:?}",
        f.host.hosts()
    );
}

#[tokio::test]
async fn bad_documents_and_hosts_end_on_the_error_page() {
    let mismatch = document_url("/mismatch.json");
    let good = document_url("/good.json");
    let f = facade(
        vec![
            (
                "/mismatch.json",
                Answer::Body(
                    document(
                        &document_url("/other.json"),
                        "Impostor",
                        &["http://127.0.0.1/callback"],
                    ),
                    Some("max-age=3600"),
                ),
            ),
            (
                "/big.json",
                Answer::Body(format!("{{\"padding\": \"{}\"}}", "x".repeat(10_000)), None),
            ),
            ("/big-stream.json", Answer::Stream(64 * 1024)),
            ("/moved.json", Answer::Redirect("/good.json")),
            (
                "/good.json",
                Answer::Body(
                    document(&good, "Good Client", &["http://127.0.0.1/callback"]),
                    None,
                ),
            ),
        ],
        true,
    )
    .await;

    // The document names another client id; a failure is not cached.
    for round in 1..=2 {
        let page = f.refused(&mismatch, REDIRECT).await;
        assert!(page.contains("client_id is not its own URL"), "{page}");
        assert_eq!(f.host.hits("/mismatch.json"), round);
    }

    // Larger than max_bytes, with a length or streamed without one.
    for path in ["/big.json", "/big-stream.json"] {
        let page = f.refused(&document_url(path), REDIRECT).await;
        assert!(
            page.contains("the client metadata document is larger than 5120 bytes"),
            "{path}: {page}"
        );
        assert_eq!(f.host.hits(path), 1);
    }

    // A redirect is not followed.
    let page = f.refused(&document_url("/moved.json"), REDIRECT).await;
    assert!(
        page.contains("redirects (HTTP 302); redirects are not followed"),
        "{page}"
    );
    assert_eq!(f.host.hits("/moved.json"), 1);
    assert_eq!(
        f.host.hits("/good.json"),
        0,
        "the redirect was not followed"
    );

    // A host off the allowlist: refused before any lookup or fetch.
    let page = f
        .refused(&format!("https://{FOREIGN_HOST}/good.json"), REDIRECT)
        .await;
    assert!(
        page.contains(&format!(
            "client metadata documents from {FOREIGN_HOST} are not allowed"
        )),
        "{page}"
    );

    // An allowlisted host without a pin that resolves to loopback (a
    // `localhost` name): refused before connecting.
    let page = f
        .refused(&format!("https://{LOCAL_HOST}/good.json"), REDIRECT)
        .await;
    assert!(
        page.contains(&format!(
            "{LOCAL_HOST} resolves to 127.0.0.1, which is not a public address"
        )),
        "{page}"
    );

    // The pin does not change which URLs are accepted: an explicit port
    // (even the pinned one) is refused before any fetch.
    let page = f
        .refused(
            &format!("https://{HOST}:{}/good.json", f.host.address.port()),
            REDIRECT,
        )
        .await;
    assert!(page.contains("only the default port 443"), "{page}");

    // The document is fine, the redirect URI is not one it lists.
    let page = f.refused(&good, "https://evil.example/callback").await;
    assert!(
        page.contains("The redirect URI is not one the client registered"),
        "{page}"
    );
    assert_eq!(f.host.hits("/good.json"), 1);
    // Every request the host saw was for the pinned name.
    assert_eq!(f.host.hosts().len(), 6);
    assert!(
        f.host.hosts().iter().all(|h| h == HOST),
        "{:?}",
        f.host.hosts()
    );
}

/// The document host's certificate is trusted only because of `ca_file`:
/// without it the pinned connection is made, and the TLS handshake fails.
#[tokio::test]
async fn without_the_ca_file_the_document_host_is_not_trusted() {
    let client_id = document_url("/apps/cimd-test.json");
    let f = facade(
        vec![(
            "/apps/cimd-test.json",
            Answer::Body(
                document(
                    &client_id,
                    "CIMD Test Client",
                    &["http://127.0.0.1/callback"],
                ),
                None,
            ),
        )],
        false,
    )
    .await;
    let page = f.refused(&client_id, REDIRECT).await;
    assert!(
        page.contains("fetching the client metadata document failed")
            && page.contains("certificate"),
        "{page}"
    );
    assert_eq!(f.host.hits("/apps/cimd-test.json"), 0);
}

/// The official Python MCP SDK (`OAuthClientProvider(client_metadata_url=
/// ...)`) uses the document URL as its client id when the server
/// advertises `client_id_metadata_document_supported`, instead of
/// registering. Only Warden fetches the document (and only Warden trusts
/// the test CA).
#[tokio::test]
async fn the_python_sdk_signs_in_with_a_metadata_document() {
    let client_id = document_url("/apps/python-sdk.json");
    let f = facade(
        vec![(
            "/apps/python-sdk.json",
            Answer::Body(
                document(
                    &client_id,
                    "MCP Python SDK (metadata document)",
                    &["http://127.0.0.1/callback"],
                ),
                Some("max-age=600"),
            ),
        )],
        true,
    )
    .await;

    let report = python_json(
        "oauth_client.py",
        &[
            &f.warden.url(),
            "--persona",
            "ada",
            "--tool",
            "whoami",
            "--client-metadata-url",
            &client_id,
        ],
    )
    .await;

    assert_eq!(report["client_id"], client_id.as_str(), "{report}");
    assert_eq!(
        report["hops"],
        json!([
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
    assert_eq!(report["access_token_prefix"], "wdn_at_", "{report}");
    assert_eq!(report["refresh_token"], true, "{report}");
    assert_eq!(report["is_error"], false, "{report}");
    assert!(
        report["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("tag=cimd ")),
        "{report}"
    );
    // No registration happened; Warden fetched the document once.
    assert_eq!(f.host.hits("/apps/python-sdk.json"), 1);
    let events: Vec<(String, String)> = records(&f.warden.db())
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
            events.iter().any(|(e, c)| e == event && *c == client_id),
            "{event} for {client_id} in {events:?}"
        );
    }
}

/// rmcp's own OAuth client (`AuthorizationRequest::with_client_metadata_url`)
/// uses the document URL as its client id when Warden's metadata says
/// `client_id_metadata_document_supported`, instead of registering; Warden
/// fetches the document, and rmcp redeems the code and calls a tool.
#[tokio::test]
async fn rmcp_signs_in_with_a_metadata_document() {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::auth::{
        AuthClient, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    };
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let client_id = document_url("/apps/rmcp.json");
    let f = facade(
        vec![(
            "/apps/rmcp.json",
            Answer::Body(
                document(&client_id, "rmcp (metadata document)", &[REDIRECT]),
                Some("max-age=600"),
            ),
        )],
        true,
    )
    .await;
    let mcp = f.warden.url();

    let mut manager = AuthorizationManager::new(mcp.as_str()).await.unwrap();
    let metadata = manager
        .resolve_metadata()
        .await
        .expect("Warden's metadata")
        .metadata;
    assert_eq!(
        metadata.additional_fields["client_id_metadata_document_supported"],
        true
    );
    manager.set_metadata(metadata);
    let session = AuthorizationSession::new(
        manager,
        AuthorizationRequest::new(REDIRECT)
            .with_initial_scope_selection()
            .with_client_metadata_url(client_id.clone()),
    )
    .await
    .map_err(|(_, error)| error)
    .expect("rmcp builds the authorization URL with its document URL");
    let authorization_url = session.get_authorization_url().to_owned();
    assert_eq!(query(&authorization_url)["client_id"], client_id);

    let browsed = common::facade::browse(&f.base, &authorization_url, "ada").await;
    assert!(
        browsed
            .consent
            .contains(&format!("described by a metadata document at {HOST}")),
        "{}",
        browsed.consent
    );
    session
        .handle_callback_url(&browsed.to_client)
        .await
        .expect("rmcp redeems the code");
    let (stored_client, _) = session.get_credentials().await.unwrap();
    assert_eq!(stored_client, client_id);

    let client = RecordingClient::default()
        .serve(StreamableHttpClientTransport::with_client(
            AuthClient::new(reqwest::Client::new(), session.auth_manager),
            StreamableHttpClientTransportConfig::with_uri(mcp.clone()),
        ))
        .await
        .expect("rmcp connects with Warden's token");
    let who = call(&client, "whoami", json!({})).await.unwrap();
    assert_ne!(who.is_error, Some(true), "{who:?}");
    assert!(text(&who).starts_with("tag=cimd "), "{who:?}");
    client.cancel().await.unwrap();

    // No registration: Warden fetched the document (once), and the call is
    // recorded under the document URL as the client.
    assert_eq!(f.host.hits("/apps/rmcp.json"), 1);
    let intent = records(&f.warden.db())
        .into_iter()
        .find(|r| r["kind"] == "intent" && r["tool"] == "whoami")
        .expect("an intent");
    assert_eq!(intent["principal"]["client_app"], client_id.as_str());
}
