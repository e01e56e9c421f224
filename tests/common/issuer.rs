//! The dev issuer (discovery, JWKS) served over HTTP by a test, minting
//! the tokens the test presents.

use std::path::Path;
use std::sync::OnceLock;

use warden::identity::dev::{
    DEV_AUDIENCE, DEV_KEY_FILE, DEV_MFA_AUTH_CONTEXT, DEV_SCOPE, DEV_TENANT, DEV_V1_ISSUER_PATH,
    DevIssuer, TokenOptions,
};

// ---------------------------------------------------------------------------

pub struct Issuer {
    pub issuer: DevIssuer,
    pub base: String,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    /// The shared test key in a new directory, served on a free loopback
    /// port.
    pub async fn start() -> Issuer {
        let (dir, mut issuer) = issuer_with_shared_key().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind issuer");
        let base = format!("http://{}", listener.local_addr().expect("issuer address"));
        issuer.set_base_url(&base);
        let app = issuer.router(&base);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Issuer {
            issuer,
            base,
            dir,
            server,
        }
    }

    /// The `[identity]` body that trusts this issuer.
    pub fn identity_toml(&self) -> String {
        identity_toml_for(&self.base)
    }

    pub fn mint(&self, options: &TokenOptions) -> String {
        self.issuer.mint(options).expect("mint")
    }

    /// A v2 user token with the required scope.
    pub fn token(&self, user: &str) -> String {
        self.mint(&TokenOptions {
            user: user.into(),
            ..TokenOptions::default()
        })
    }

    /// Publishes a new signing key (blocking key generation off the runtime).
    pub async fn rotate(&self) -> String {
        let mut issuer = self.issuer.clone();
        tokio::task::spawn_blocking(move || issuer.rotate())
            .await
            .expect("join")
            .expect("rotate")
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// RSA key generation takes seconds in a debug build, so every test's
/// issuer loads the same key (PKCS#8 PEM), generated once per test binary
/// by `DevIssuer::load_or_create`. Each test still gets its own directory
/// and its own HTTP server.
pub async fn issuer_with_shared_key() -> (tempfile::TempDir, DevIssuer) {
    static KEY_PEM: OnceLock<String> = OnceLock::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    let issuer = tokio::task::spawn_blocking(move || {
        let pem = KEY_PEM.get_or_init(|| {
            let scratch = tempfile::tempdir().expect("tempdir");
            DevIssuer::load_or_create(scratch.path()).expect("generate dev issuer key");
            std::fs::read_to_string(scratch.path().join(DEV_KEY_FILE)).expect("read key")
        });
        write_private(&path.join(DEV_KEY_FILE), pem);
        DevIssuer::load_or_create(&path)
    })
    .await
    .expect("join")
    .expect("dev issuer key");
    (dir, issuer)
}

/// Writes a key file readable by its owner only, as the issuer expects.
pub fn write_private(path: &Path, contents: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).expect("create key file");
    std::io::Write::write_all(&mut file, contents.as_bytes()).expect("write key file");
}

/// The `[identity]` body for an authority at `base` laid out like the dev
/// issuer (whose MFA sign-ins satisfy authentication context
/// [`DEV_MFA_AUTH_CONTEXT`]).
pub fn identity_toml_for(base: &str) -> String {
    format!(
        "tenants = [{DEV_TENANT:?}]\naudiences = [{DEV_AUDIENCE:?}]\nauthority = {base:?}\n\
         v1_issuer_base = {:?}\nrequired_scopes = [{DEV_SCOPE:?}]\n\
         mfa_auth_contexts = [{DEV_MFA_AUTH_CONTEXT:?}]\n",
        format!("{base}{DEV_V1_ISSUER_PATH}")
    )
}
