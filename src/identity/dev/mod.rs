//! A local token issuer that looks like Entra ID to [`Authenticator`]: it
//! serves a discovery document and a JWKS over HTTP and mints RS256 tokens
//! in the v1 and v2 formats. Local runs and tests validate its tokens with
//! the production code path, unchanged.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use warden::identity::{Authenticator, dev::{DevIssuer, TokenOptions}};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base_url = format!("http://{}", listener.local_addr()?);
//! let dir = std::path::PathBuf::from("data/dev-issuer");
//! let mut issuer = tokio::task::spawn_blocking(move || DevIssuer::load_or_create(&dir)).await??;
//! issuer.set_base_url(&base_url);
//! tokio::spawn(axum::serve(listener, issuer.router(&base_url)).into_future());
//! let auth = Authenticator::start(issuer.identity_config(&base_url), reqwest::Client::new());
//! let token = issuer.mint(&TokenOptions::default())?;
//! let principal = auth.authenticate(Some(&format!("Bearer {token}")), None).await?;
//! # let _ = principal; Ok(()) }
//! ```
//!
//! Base URL: the issuer needs its own public base URL for `iss`; set it once
//! with [`DevIssuer::set_base_url`] before [`DevIssuer::mint`]. `router` and
//! `identity_config` take it as a parameter; pass the same value.
//!
//! Token endpoint: the router also serves Entra's OAuth 2.0 token endpoint
//! for the client-credentials grant, for two registered confidential
//! clients, so that Warden's own Azure credential ([`DevIssuer::dev_client`];
//! `azure_identity`'s `ClientSecretCredential`, see
//! `crate::azure::credential`) fetches its tokens from this issuer over HTTP
//! exactly as it does from Entra, and so does the official Azure MCP Server
//! under `warden dev`, as a service principal of its own
//! ([`DevIssuer::azmcp_client`]; MSAL reaches the issuer as
//! `login.microsoftonline.com` through `warden dev`'s egress proxy, after
//! Entra's instance discovery, `instance.rs`).
//!
//! Sign-in: the same client can sign users in with Entra's
//! authorization-code flow (PKCE, OpenID Connect, refresh tokens), so that
//! code acting as a confidential client toward Entra runs offline against
//! this issuer unchanged:
//!
//! * the tenant's users are [`DevUser`]s ([`DevIssuer::add_user`]; `warden
//!   dev` adds its personas), disabled and enabled at runtime with
//!   [`DevIssuer::set_user_enabled`] (or over HTTP, [`admin`]);
//! * the client's redirect URIs are registered with
//!   [`DevIssuer::allow_redirect`] (`warden dev --redirect-uri`);
//! * besides its secret, the client may have certificate credentials
//!   ([`DevIssuer::add_client_certificate`]), which the token endpoint
//!   accepts as signed client assertions (`private_key_jwt`, see
//!   [`token`]);
//! * `GET /{tenant}/oauth2/v2.0/authorize` signs in the user named by
//!   `login_hint` at once, or shows a persona picker ([`authorize`]);
//! * the token endpoint redeems codes and refresh tokens ([`token`]).
//!
//! Codes, refresh tokens and pending sign-ins live in memory; every clone of a [`DevIssuer`] and every router made from it share
//! them, and the users and redirect URIs.
//!
//! [`Authenticator`]: super::Authenticator

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value, json};

use super::config::IdentityConfig;

pub mod admin;
pub mod authorize;
mod claims_request;
mod directory;
mod entra_error;
mod grants;
mod instance;
mod page;
mod scope;
pub mod token;

pub use directory::DevUser;

/// Tenant id of the dev issuer (a well-formed GUID, v4 layout).
pub const DEV_TENANT: &str = "11111111-2222-4333-8444-555555555555";
/// Audience of dev tokens, and the audience the dev config accepts.
pub const DEV_AUDIENCE: &str = "api://warden-dev";
/// Default client application id (`azp` / `appid`) of dev tokens.
pub const DEV_CLIENT_APP: &str = "22222222-3333-4444-8555-666666666666";
/// Default delegated scope of dev user tokens, required by the dev config.
pub const DEV_SCOPE: &str = "access_as_user";
/// The authentication context the dev issuer's tenant treats as MFA: a v2
/// token minted with `mfa` carries it in `acrs` (v2 access tokens have no
/// `amr`), and step-up challenges ask for it.
pub const DEV_MFA_AUTH_CONTEXT: &str = "c1";
/// File name of the persisted signing key inside the issuer directory.
pub const DEV_KEY_FILE: &str = "dev-issuer-key.pem";
/// Application (client) id of the confidential client registered with the
/// dev issuer: Warden's own identity toward Azure in dev (a service
/// principal with a client secret). See [`DevIssuer::dev_client`].
pub const DEV_CONFIDENTIAL_CLIENT: &str = "33333333-4444-4555-8666-777777777777";
/// Display name (`app_displayname`) of [`DEV_CONFIDENTIAL_CLIENT`].
pub const DEV_CONFIDENTIAL_CLIENT_NAME: &str = "warden-dev-service";
/// File name of [`DEV_CONFIDENTIAL_CLIENT`]'s secret inside the issuer
/// directory: the secret alone (no newline), mode 0600.
pub const DEV_CLIENT_SECRET_FILE: &str = "dev-client-secret";
/// Application (client) id of the dev tenant's second confidential client:
/// the service principal the official Azure MCP Server signs in as under
/// `warden dev` (client credentials with a secret only; no sign-ins). Its
/// tokens name it (`appid`, `app_displayname`, its own `oid`), so the ARM
/// simulator's callers tell its calls apart from Warden's built-in ones
/// ([`DEV_CONFIDENTIAL_CLIENT`]). See [`DevIssuer::azmcp_client`].
pub const DEV_AZMCP_CLIENT: &str = "66666666-7777-4888-9999-aaaaaaaaaaaa";
/// Display name (`app_displayname`) of [`DEV_AZMCP_CLIENT`].
pub const DEV_AZMCP_CLIENT_NAME: &str = "warden-dev-azure-mcp";
/// File name of [`DEV_AZMCP_CLIENT`]'s secret inside the issuer directory
/// (as [`DEV_CLIENT_SECRET_FILE`]).
pub const DEV_AZMCP_CLIENT_SECRET_FILE: &str = "dev-azmcp-client-secret";
/// `expires_in` (and `ext_expires_in`) of tokens from the token endpoint,
/// in seconds, as Entra answers for the client-credentials grant.
pub const DEV_TOKEN_LIFETIME_SECS: u64 = 3599;
/// Path under the base URL that plays `https://sts.windows.net` (v1 issuer
/// base): v1 tokens have `iss = {base_url}/sts/{tid}/`.
pub const DEV_V1_ISSUER_PATH: &str = "/sts";

const KEY_BITS: usize = 2048;

/// Failures of the dev issuer.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("dev issuer key {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("dev issuer key {path}: not a PKCS#8 RSA private key: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("dev issuer key: {0}")]
    Key(String),
    #[error("the dev issuer has no base URL; call DevIssuer::set_base_url first")]
    NoBaseUrl,
    #[error("signing the dev token failed: {0}")]
    Sign(String),
    #[error("dev client secret {path}: {source}")]
    ClientSecretIo { path: PathBuf, source: io::Error },
    #[error("dev client secret {path}: the file is empty; delete it to get a new secret")]
    EmptyClientSecret { path: PathBuf },
    #[error("redirect URI {uri:?} cannot be registered: {reason}")]
    RedirectUri { uri: String, reason: String },
    #[error(
        "dev user {0:?}: a user needs a name (letters, digits, '-', '_', '.', '@') and a user \
         principal name"
    )]
    BadUser(String),
    #[error("the dev tenant has no user named {0:?}")]
    UnknownUser(String),
    #[error("client certificate: {0}")]
    ClientCertificate(String),
}

/// Token format: v1 (`sts.windows.net`-style issuer, `appid`, `upn`, `amr`)
/// or v2 (`…/v2.0` issuer, `azp`, `preferred_username`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenVersion {
    V1,
    #[default]
    V2,
}

/// What to put in a dev token. `Default`: user `dev-user`, scope
/// `access_as_user`, one hour, v2, audience [`DEV_AUDIENCE`], client
/// [`DEV_CLIENT_APP`], no groups, roles, MFA or auth contexts.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// User name (`upn` / `preferred_username`); for an app-only token, the
    /// app's display name. `oid` is derived from it.
    pub user: String,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// v1: `amr = ["pwd","mfa"]` instead of `["pwd"]`; v2 access tokens carry
    /// no `amr`, so `acrs` gets [`DEV_MFA_AUTH_CONTEXT`] instead.
    pub mfa: bool,
    /// Satisfied authentication contexts (`acrs`), e.g. `["c1"]`.
    pub acrs: Vec<String>,
    /// App-only token: `idtyp = "app"`, `app_displayname`, no `scp`/`upn`.
    pub app: bool,
    pub ttl: Duration,
    /// Delegated scopes (`scp`, space-joined) of a user token. An empty list
    /// omits `scp`, which makes the token app-only for the validator.
    pub scopes: Vec<String>,
    /// `aud`; default [`DEV_AUDIENCE`].
    pub audience: Option<String>,
    pub version: TokenVersion,
    /// `azp` (v2) / `appid` (v1); default [`DEV_CLIENT_APP`].
    pub client_app: Option<String>,
    /// Merged last, overriding any claim; a `null` value removes the claim.
    pub extra: Map<String, Value>,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            user: "dev-user".into(),
            groups: Vec::new(),
            roles: Vec::new(),
            mfa: false,
            acrs: Vec::new(),
            app: false,
            ttl: Duration::from_secs(3600),
            scopes: vec![DEV_SCOPE.into()],
            audience: None,
            version: TokenVersion::V2,
            client_app: None,
            extra: Map::new(),
        }
    }
}

/// One signing key.
struct DevKey {
    kid: String,
    private: RsaPrivateKey,
    encoding: EncodingKey,
}

impl DevKey {
    fn new(private: RsaPrivateKey) -> Result<Self, DevError> {
        let public = RsaPublicKey::from(&private);
        let der = public
            .to_public_key_der()
            .map_err(|e| DevError::Key(e.to_string()))?;
        let pkcs1 = private
            .to_pkcs1_der()
            .map_err(|e| DevError::Key(e.to_string()))?;
        Ok(Self {
            kid: key_id(der.as_bytes()),
            encoding: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            private,
        })
    }

    fn jwk(&self) -> Value {
        let public = RsaPublicKey::from(&self.private);
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        })
    }
}

/// `kid`: the first 16 hex digits of SHA-256 over the DER
/// SubjectPublicKeyInfo (SHA-256 from `rsa::sha2`, the `sha2` crate that
/// `rsa` re-exports).
fn key_id(public_der: &[u8]) -> String {
    hex(&Sha256::digest(public_der)[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The dev issuer. Clones share their keys, so a router handed out before
/// [`rotate`](Self::rotate) publishes the new key too.
#[derive(Clone)]
pub struct DevIssuer {
    /// Published keys, oldest first; the last one signs.
    keys: Arc<RwLock<Vec<DevKey>>>,
    base_url: Option<String>,
    /// The directory given to `load_or_create` (key file, client secret).
    dir: PathBuf,
    /// Users and redirect URIs.
    directory: Arc<RwLock<directory::Directory>>,
    /// Pending sign-ins, authorization codes, refresh tokens.
    grants: Arc<grants::Grants<authorize::AuthorizeRequest>>,
}

/// The confidential client registered with the dev issuer, as a service
/// principal's credentials would be handed to Warden: its application id,
/// and a file holding its client secret (read it, never copy it into a
/// config file). The token endpoint accepts exactly this pair, with tenant
/// [`DEV_TENANT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevClient {
    /// [`DEV_CONFIDENTIAL_CLIENT`].
    pub client_id: String,
    /// `{dir}/dev-client-secret`: the secret alone, mode 0600.
    pub secret_file: PathBuf,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("kids", &self.kids())
            .field("base_url", &self.base_url)
            .field("dir", &self.dir)
            .field("directory", &*self.read_directory())
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Loads `dir/dev-issuer-key.pem` (PKCS#8 PEM), or generates an RSA
    /// 2048 key and writes it there with mode 0600. Creates `dir`.
    /// Blocking (file I/O, key generation): call it from
    /// `spawn_blocking` or before the runtime starts.
    pub fn load_or_create(dir: &Path) -> Result<DevIssuer, DevError> {
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| DevError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(DEV_KEY_FILE);
        let private = match fs::read_to_string(&path) {
            Ok(pem) => {
                warn_if_shared(&path);
                RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| DevError::BadKey {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let private = generate()?;
                let pem = private
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| DevError::Key(e.to_string()))?;
                match write_private(&path, pem.as_bytes()) {
                    Ok(()) => private,
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let pem = fs::read_to_string(&path).map_err(io_error(&path))?;
                        RsaPrivateKey::from_pkcs8_pem(&pem).map_err(|e| DevError::BadKey {
                            path: path.clone(),
                            message: e.to_string(),
                        })?
                    }
                    Err(e) => return Err(io_error(&path)(e)),
                }
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        Ok(DevIssuer {
            keys: Arc::new(RwLock::new(vec![DevKey::new(private)?])),
            base_url: None,
            dir: dir.to_owned(),
            directory: Arc::default(),
            grants: Arc::default(),
        })
    }

    /// The registered confidential client: [`DEV_CONFIDENTIAL_CLIENT`] and
    /// its secret file `dev-client-secret`, next to the key. The secret (32
    /// random bytes, base64url) is generated on first use and written with
    /// mode 0600; later calls, and other processes using the same
    /// directory, read the same file. Blocking (file I/O).
    pub fn dev_client(&self) -> Result<DevClient, DevError> {
        self.client_secret()?;
        Ok(DevClient {
            client_id: DEV_CONFIDENTIAL_CLIENT.to_owned(),
            secret_file: self.dir.join(DEV_CLIENT_SECRET_FILE),
        })
    }

    /// The second confidential client, for the official Azure MCP Server:
    /// [`DEV_AZMCP_CLIENT`] and its own secret file
    /// `dev-azmcp-client-secret`, made and kept as
    /// [`dev_client`](Self::dev_client)'s. The token endpoint gives it
    /// app-only tokens (client credentials) and nothing else. Blocking
    /// (file I/O).
    pub fn azmcp_client(&self) -> Result<DevClient, DevError> {
        self.secret_in(DEV_AZMCP_CLIENT_SECRET_FILE)?;
        Ok(DevClient {
            client_id: DEV_AZMCP_CLIENT.to_owned(),
            secret_file: self.dir.join(DEV_AZMCP_CLIENT_SECRET_FILE),
        })
    }

    /// The client secret of [`DEV_CONFIDENTIAL_CLIENT`], created on first
    /// use (see [`dev_client`](Self::dev_client)).
    fn client_secret(&self) -> Result<String, DevError> {
        self.secret_in(DEV_CLIENT_SECRET_FILE)
    }

    /// The secret in `file` under the issuer directory, created on first
    /// use (32 random bytes, base64url, mode 0600).
    fn secret_in(&self, file: &str) -> Result<String, DevError> {
        let path = self.dir.join(file);
        let io_error = |source| DevError::ClientSecretIo {
            path: path.clone(),
            source,
        };
        let secret = match fs::read_to_string(&path) {
            Ok(secret) => {
                warn_if_shared(&path);
                secret
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let secret = URL_SAFE_NO_PAD.encode(bytes);
                match write_private(&path, secret.as_bytes()) {
                    Ok(()) => secret,
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        fs::read_to_string(&path).map_err(io_error)?
                    }
                    Err(e) => return Err(io_error(e)),
                }
            }
            Err(e) => return Err(io_error(e)),
        };
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(DevError::EmptyClientSecret { path });
        }
        Ok(secret.to_owned())
    }

    /// Sets the public base URL (e.g. `http://127.0.0.1:8788`) used for `iss`.
    pub fn set_base_url(&mut self, base_url: &str) {
        self.base_url = Some(base_url.trim_end_matches('/').to_owned());
    }

    /// The base URL set with [`set_base_url`](Self::set_base_url).
    pub fn base_url(&self) -> Option<&str> {
        self.base_url.as_deref()
    }

    /// Key rotation: generates a new key (in memory only; the key file keeps
    /// the original), publishes it next to the old ones, and signs with it
    /// from now on. Returns the new `kid`. Blocking (key generation).
    pub fn rotate(&mut self) -> Result<String, DevError> {
        let key = DevKey::new(generate()?)?;
        let kid = key.kid.clone();
        self.write_keys().push(key);
        Ok(kid)
    }

    /// Stops publishing key `kid` (Entra retiring a key after a rotation):
    /// tokens it signed no longer verify once relying parties refresh their
    /// keys. The key that signs new tokens cannot be retired; `false` then,
    /// or when no key has that `kid`.
    pub fn retire(&mut self, kid: &str) -> bool {
        let mut keys = self.write_keys();
        match keys.iter().position(|k| k.kid == kid) {
            Some(i) if i + 1 < keys.len() => {
                keys.remove(i);
                true
            }
            _ => false,
        }
    }

    /// The `kid` that signs new tokens.
    pub fn kid(&self) -> String {
        self.read_keys()
            .last()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// Every published `kid`, oldest first.
    pub fn kids(&self) -> Vec<String> {
        self.read_keys().iter().map(|k| k.kid.clone()).collect()
    }

    /// The JWKS document (every published key).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.read_keys().iter().map(DevKey::jwk).collect::<Vec<_>>() })
    }

    /// Discovery, JWKS, the authorization and token endpoints for
    /// [`DEV_TENANT`], laid out like Entra, and the dev tenant's
    /// administration:
    ///
    /// * `GET /{tenant}/v2.0/.well-known/openid-configuration`
    /// * `GET /{tenant}/discovery/v2.0/keys`
    /// * `GET /common/discovery/instance`, MSAL's instance discovery
    ///   (`instance.rs`)
    /// * `GET /{tenant}/oauth2/v2.0/authorize` and the persona picker's
    ///   `POST /{tenant}/login` ([`authorize`])
    /// * `POST /{tenant}/oauth2/v2.0/token` (grants `client_credentials`,
    ///   `authorization_code`, `refresh_token`: [`token`])
    /// * `GET /_dev/users`, `POST /_dev/users/{name}/{disable|enable}`
    ///   ([`admin`])
    ///
    /// Other tenants get 404 (400 `AADSTS90002` from the token endpoint).
    ///
    /// The client-credentials grant is for [`dev_client`](Self::dev_client)
    /// and [`azmcp_client`](Self::azmcp_client), each with its own secret
    /// (in the form body, `client_secret_post`, as `azure_identity`
    /// sends it, or HTTP Basic). The request is
    /// `application/x-www-form-urlencoded` with `grant_type =
    /// client_credentials`, `client_id`, `client_secret` and `scope =
    /// {resource}/.default` (one scope). The answer is Entra's:
    /// `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,
    /// "access_token":…}`, an app-only token (`idtyp = app`, no `scp`, no
    /// `roles`) with `aud` = the scope without `/.default` (so
    /// `https://management.azure.com/.default` gives `aud =
    /// https://management.azure.com`, and `…azure.com//.default` the
    /// trailing-slash form, as in Entra), `tid` = [`DEV_TENANT`],
    /// `oid` = `sub` = [`service_principal_id`] of the client id,
    /// `azp`/`appid` = the client id, `app_displayname` its name. The token is v2 for [`DEV_AUDIENCE`] (an app registration that
    /// asks for v2 tokens) and v1 for any other resource (Microsoft's own
    /// APIs such as Azure Resource Manager get v1 tokens). Refusals are
    /// Entra's JSON errors (`error`, `error_description` starting with the
    /// AADSTS code, `error_codes`, …): unknown tenant 400
    /// `invalid_request` (AADSTS90002); a missing parameter 400
    /// `invalid_request` (AADSTS900144); another grant type 400
    /// `unsupported_grant_type` (AADSTS70003); no secret 401
    /// `invalid_client` (AADSTS7000218); an unknown client id 400
    /// `unauthorized_client` (AADSTS700016); a wrong secret 401
    /// `invalid_client` (AADSTS7000215); a scope that is not one
    /// `…/.default` 400 `invalid_scope` (AADSTS1002012).
    pub fn router(&self, base_url: &str) -> Router {
        let state = RouterState {
            issuer: self.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        };
        Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery_document),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(jwks_document))
            .route(
                "/common/discovery/instance",
                get(instance::instance_discovery),
            )
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::authorize))
            .route("/{tenant}/login", post(authorize::login))
            .route("/{tenant}/oauth2/v2.0/token", post(token::token_endpoint))
            .route("/_dev/users", get(admin::list_users))
            .route("/_dev/users/{name}/{action}", post(admin::set_enabled))
            .with_state(state)
    }

    /// A config that trusts this issuer at `base_url`: authority
    /// `base_url`, v1 issuer base `base_url/sts`, tenant [`DEV_TENANT`],
    /// audience [`DEV_AUDIENCE`], required scope `access_as_user`, no
    /// required app roles; everything else default.
    pub fn identity_config(&self, base_url: &str) -> IdentityConfig {
        let base = base_url.trim_end_matches('/');
        IdentityConfig {
            authority: base.to_owned(),
            v1_issuer_base: format!("{base}{DEV_V1_ISSUER_PATH}"),
            tenants: vec![DEV_TENANT.to_owned()],
            audiences: vec![DEV_AUDIENCE.to_owned()],
            required_scopes: vec![DEV_SCOPE.to_owned()],
            required_app_roles: Vec::new(),
            mfa_auth_contexts: vec![DEV_MFA_AUTH_CONTEXT.to_owned()],
            ..IdentityConfig::default()
        }
    }

    /// The claims [`mint`](Self::mint) would sign (with fresh `uti` and times).
    pub fn claims(&self, options: &TokenOptions) -> Result<Map<String, Value>, DevError> {
        let base = self.base_url.as_deref().ok_or(DevError::NoBaseUrl)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let oid = derived_guid("oid", &options.user);
        let client_app = options
            .client_app
            .clone()
            .unwrap_or_else(|| DEV_CLIENT_APP.to_owned());
        let mut claims = Map::new();
        let mut set = |name: &str, value: Value| {
            claims.insert(name.to_owned(), value);
        };
        set(
            "aud",
            json!(options.audience.as_deref().unwrap_or(DEV_AUDIENCE)),
        );
        set("iat", json!(now));
        set("nbf", json!(now));
        set("exp", json!(now + options.ttl.as_secs()));
        set("tid", json!(DEV_TENANT));
        set("oid", json!(oid));
        set("sub", json!(derived_guid("sub", &options.user)));
        set("uti", json!(random_id()));
        match options.version {
            TokenVersion::V2 => {
                set("iss", json!(format!("{base}/{DEV_TENANT}/v2.0")));
                set("ver", json!("2.0"));
                set("azp", json!(client_app));
                set("azpacr", json!("0"));
            }
            TokenVersion::V1 => {
                set(
                    "iss",
                    json!(format!("{base}{DEV_V1_ISSUER_PATH}/{DEV_TENANT}/")),
                );
                set("ver", json!("1.0"));
                set("appid", json!(client_app));
                set("appidacr", json!("0"));
            }
        }
        if options.app {
            set("idtyp", json!("app"));
            set("app_displayname", json!(options.user));
        } else {
            set("name", json!(options.user));
            match options.version {
                TokenVersion::V2 => set("preferred_username", json!(options.user)),
                TokenVersion::V1 => {
                    set("upn", json!(options.user));
                    set("unique_name", json!(options.user));
                    let amr = if options.mfa {
                        json!(["pwd", "mfa"])
                    } else {
                        json!(["pwd"])
                    };
                    set("amr", amr);
                }
            }
            if !options.scopes.is_empty() {
                set("scp", json!(options.scopes.join(" ")));
            }
        }
        if !options.roles.is_empty() {
            set("roles", json!(options.roles));
        }
        if !options.groups.is_empty() {
            set("groups", json!(options.groups));
        }
        let mut acrs = options.acrs.clone();
        if options.mfa
            && !options.app
            && options.version == TokenVersion::V2
            && !acrs.iter().any(|c| c == DEV_MFA_AUTH_CONTEXT)
        {
            acrs.push(DEV_MFA_AUTH_CONTEXT.to_owned());
        }
        if !acrs.is_empty() {
            set("acrs", json!(acrs));
        }
        for (name, value) in &options.extra {
            if value.is_null() {
                claims.remove(name);
            } else {
                claims.insert(name.clone(), value.clone());
            }
        }
        Ok(claims)
    }

    /// A signed token (RS256, `kid` of the current key). Needs
    /// [`set_base_url`](Self::set_base_url).
    pub fn mint(&self, options: &TokenOptions) -> Result<String, DevError> {
        let claims = self.claims(options)?;
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the current key.
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, DevError> {
        let keys = self.read_keys();
        let key = keys.last().ok_or(DevError::Key("no signing key".into()))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| DevError::Sign(e.to_string()))
    }

    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Vec<DevKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, Vec<DevKey>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn current_private_key(&self) -> Option<RsaPrivateKey> {
        self.read_keys().last().map(|k| k.private.clone())
    }
}

#[derive(Clone)]
struct RouterState {
    issuer: DevIssuer,
    base_url: String,
}

async fn discovery_document(
    State(state): State<RouterState>,
    UrlPath(tenant): UrlPath<String>,
) -> Response {
    if tenant != DEV_TENANT {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = &state.base_url;
    Json(json!({
        "issuer": format!("{base}/{tenant}/v2.0"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "tenant_region_scope": "DEV",
    }))
    .into_response()
}

async fn jwks_document(
    State(state): State<RouterState>,
    UrlPath(tenant): UrlPath<String>,
) -> Response {
    if tenant != DEV_TENANT {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(state.issuer.jwks()).into_response()
}

fn generate() -> Result<RsaPrivateKey, DevError> {
    RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).map_err(|e| DevError::Key(e.to_string()))
}

/// Logs a warning when the key file is readable by others.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "dev issuer key file has mode {mode:o}; it should be 600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes a new file readable by its owner only; fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A GUID derived from `kind` and `name` with SHA-256, stamped as a
/// version-8 (custom) UUID: stable across runs, distinct per user.
fn derived_guid(kind: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("warden-dev-{kind}:{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// The object id of a dev client's service principal
/// ([`DEV_CONFIDENTIAL_CLIENT`], [`DEV_AZMCP_CLIENT`]): the `oid` and `sub`
/// of its app-only tokens, and the principal ARM role assignments name.
pub fn service_principal_id(client_id: &str) -> String {
    derived_guid("sp", client_id)
}

/// 16 random bytes, base64url (the shape of Entra's `uti`).
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Test helpers shared with other modules' tests (the Azure credential
/// tests fetch tokens from a served dev issuer; sign-in tests drive the
/// authorization-code flow).
#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::test_support::{form, payload, post_token};
    use super::*;
    use crate::identity::config::is_guid;

    #[test]
    fn constants_are_well_formed() {
        assert!(is_guid(DEV_TENANT));
        assert!(is_guid(DEV_CLIENT_APP));
    }

    #[test]
    fn derived_ids_are_stable_guids() {
        let a = derived_guid("oid", "ada");
        assert!(is_guid(&a));
        assert_eq!(a, derived_guid("oid", "ada"));
        assert_ne!(a, derived_guid("oid", "bob"));
        assert_eq!(a.as_bytes()[14], b'8');
    }

    #[test]
    fn key_id_is_16_hex_digits() {
        let kid = key_id(b"abc");
        assert_eq!(kid.len(), 16);
        assert_eq!(kid, "ba7816bf8f01cfea");
    }

    #[test]
    fn confidential_client_id_is_well_formed() {
        assert!(is_guid(DEV_CONFIDENTIAL_CLIENT));
        assert_ne!(DEV_CONFIDENTIAL_CLIENT, DEV_CLIENT_APP);
    }

    #[tokio::test]
    async fn dev_client_secret_is_private_stable_and_shared_by_directory() {
        let (issuer, dir) = test_support::issuer_in_tempdir().await;
        let client = issuer.dev_client().unwrap();
        assert_eq!(client.client_id, DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(client.secret_file, dir.path().join(DEV_CLIENT_SECRET_FILE));
        let secret = fs::read_to_string(&client.secret_file).unwrap();
        assert_eq!(secret.len(), 43, "32 bytes, base64url");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&client.secret_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(issuer.dev_client().unwrap(), client);
        assert_eq!(fs::read_to_string(&client.secret_file).unwrap(), secret);
        let again = DevIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(again.client_secret().unwrap(), secret);

        fs::write(&client.secret_file, "\n").unwrap();
        let error = issuer.dev_client().unwrap_err();
        assert!(error.to_string().contains("the file is empty"), "{error}");
    }

    #[tokio::test]
    async fn token_endpoint_issues_app_only_tokens_for_the_requested_resource() {
        let served = test_support::serve().await;
        let secret = fs::read_to_string(served.issuer.dev_client().unwrap().secret_file).unwrap();
        let request = |scope: &'static str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEV_CONFIDENTIAL_CLIENT),
                ("client_secret", &secret),
                ("scope", scope),
            ])
        };

        let (status, body) = post_token(
            &served.base_url,
            DEV_TENANT,
            request("https://management.azure.com/.default"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let claims = payload(body["access_token"].as_str().unwrap());
        let base = &served.base_url;
        assert_eq!(claims["aud"], "https://management.azure.com");
        assert_eq!(claims["iss"], format!("{base}/sts/{DEV_TENANT}/"));
        assert_eq!(claims["ver"], "1.0");
        assert_eq!(claims["tid"], DEV_TENANT);
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["appid"], DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(claims["appidacr"], "1");
        assert_eq!(claims["app_displayname"], DEV_CONFIDENTIAL_CLIENT_NAME);
        assert_eq!(claims["oid"], claims["sub"]);
        assert!(is_guid(claims["oid"].as_str().unwrap()));
        let exp = claims["exp"].as_u64().unwrap();
        assert_eq!(exp - claims["iat"].as_u64().unwrap(), 3599);
        for absent in ["scp", "roles", "upn", "name", "azp"] {
            assert!(!claims.contains_key(absent), "{absent} in {claims:?}");
        }

        // `//.default`: the resource keeps its trailing slash.
        let (_, body) = post_token(
            base,
            DEV_TENANT,
            request("https://management.azure.com//.default"),
        )
        .await;
        let claims = payload(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], "https://management.azure.com/");

        // Warden's own dev API asks for v2 tokens.
        let (_, body) = post_token(base, DEV_TENANT, request("api://warden-dev/.default")).await;
        let claims = payload(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], DEV_AUDIENCE);
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["iss"], format!("{base}/{DEV_TENANT}/v2.0"));
        assert_eq!(claims["azp"], DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(claims["azpacr"], "1");
    }

    #[tokio::test]
    async fn the_azure_mcp_client_is_a_service_principal_of_its_own() {
        let served = test_support::serve().await;
        let warden = served.issuer.dev_client().unwrap();
        let azmcp = served.issuer.azmcp_client().unwrap();
        assert!(is_guid(DEV_AZMCP_CLIENT));
        assert_ne!(DEV_AZMCP_CLIENT, DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(azmcp.client_id, DEV_AZMCP_CLIENT);
        assert_eq!(
            azmcp.secret_file.file_name().unwrap(),
            DEV_AZMCP_CLIENT_SECRET_FILE
        );
        let warden_secret = fs::read_to_string(&warden.secret_file).unwrap();
        let secret = fs::read_to_string(&azmcp.secret_file).unwrap();
        assert_eq!(secret.len(), 43, "32 bytes, base64url");
        assert_ne!(secret, warden_secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&azmcp.secret_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(served.issuer.azmcp_client().unwrap(), azmcp, "kept");
        assert_eq!(fs::read_to_string(&azmcp.secret_file).unwrap(), secret);

        let base = &served.base_url;
        let request = |secret: &str, scope: &str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEV_AZMCP_CLIENT),
                ("client_secret", secret),
                ("scope", scope),
            ])
        };
        let (status, body) = post_token(
            base,
            DEV_TENANT,
            request(&secret, "https://management.azure.com/.default"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let claims = payload(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], "https://management.azure.com");
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["appid"], DEV_AZMCP_CLIENT);
        assert_eq!(claims["appidacr"], "1");
        assert_eq!(claims["app_displayname"], DEV_AZMCP_CLIENT_NAME);
        assert_eq!(claims["oid"], service_principal_id(DEV_AZMCP_CLIENT));
        assert_eq!(claims["sub"], claims["oid"]);
        assert_ne!(
            service_principal_id(DEV_AZMCP_CLIENT),
            service_principal_id(DEV_CONFIDENTIAL_CLIENT)
        );
        let (_, body) = post_token(
            base,
            DEV_TENANT,
            request(&secret, "https://vault.azure.net/.default"),
        )
        .await;
        let claims = payload(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], "https://vault.azure.net");

        // Warden's secret is not its secret, and it has no certificates.
        let (status, body) = post_token(
            base,
            DEV_TENANT,
            request(&warden_secret, "https://management.azure.com/.default"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_codes"], json!([7000215]), "{body}");
        let (status, body) = post_token(
            base,
            DEV_TENANT,
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DEV_AZMCP_CLIENT),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", "a.b.c"),
                ("scope", "https://management.azure.com/.default"),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error_codes"], json!([700027]), "{body}");
    }

    #[tokio::test]
    async fn token_endpoint_refuses_as_entra_does() {
        let served = test_support::serve().await;
        let secret = fs::read_to_string(served.issuer.dev_client().unwrap().secret_file).unwrap();
        let good = [
            ("grant_type", "client_credentials"),
            ("client_id", DEV_CONFIDENTIAL_CLIENT),
            ("client_secret", secret.as_str()),
            ("scope", "https://management.azure.com/.default"),
        ];
        let with = |name: &str, value: &'static str| {
            let pairs: Vec<(&str, &str)> = good
                .iter()
                .map(|&(k, v)| if k == name { (k, value) } else { (k, v) })
                .collect();
            form(&pairs)
        };
        let without = |name: &str| {
            let pairs: Vec<(&str, &str)> =
                good.iter().copied().filter(|&(k, _)| k != name).collect();
            form(&pairs)
        };
        let cases = [
            (
                "wrong secret",
                DEV_TENANT,
                with("client_secret", "not-the-secret"),
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
            ),
            (
                "unknown client",
                DEV_TENANT,
                with("client_id", "44444444-5555-4666-8777-888888888888"),
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
            ),
            (
                "no secret",
                DEV_TENANT,
                without("client_secret"),
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
            ),
            (
                "password grant",
                DEV_TENANT,
                with("grant_type", "password"),
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
            ),
            (
                "no grant type",
                DEV_TENANT,
                without("grant_type"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
            ),
            (
                "no client id",
                DEV_TENANT,
                without("client_id"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
            ),
            (
                "no scope",
                DEV_TENANT,
                without("scope"),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
            ),
            (
                "delegated scope",
                DEV_TENANT,
                with("scope", "https://management.azure.com/user_impersonation"),
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
            ),
            (
                "two scopes",
                DEV_TENANT,
                with(
                    "scope",
                    "api://a/.default https://management.azure.com/.default",
                ),
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1002012,
            ),
            (
                "other tenant",
                "99999999-2222-4333-8444-555555555555",
                form(&good),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
            ),
            (
                "not a form",
                DEV_TENANT,
                "{not a form".to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
            ),
        ];
        for (name, tenant, body, status, error, code) in cases {
            let (got_status, answer) = post_token(&served.base_url, tenant, body).await;
            assert_eq!(got_status, status, "{name}: {answer}");
            assert_eq!(answer["error"], error, "{name}: {answer}");
            assert_eq!(answer["error_codes"], json!([code]), "{name}: {answer}");
            let description = answer["error_description"].as_str().unwrap();
            assert!(
                description.starts_with(&format!("AADSTS{code}: ")),
                "{name}: {description}"
            );
            assert!(!description.contains(&secret), "{name}: secret echoed");
        }

        // A JSON body is not a form either.
        let response = reqwest::Client::new()
            .post(format!(
                "{}/{DEV_TENANT}/oauth2/v2.0/token",
                served.base_url
            ))
            .header("content-type", "application/json")
            .body(r#"{"grant_type":"client_credentials"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400);
    }
}
