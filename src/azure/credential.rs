//! Warden's own credential toward Azure: which `azure_identity` credential
//! fetches the tokens Warden presents to Azure Resource Manager, chosen by
//! configuration and built by [`build`].
//!
//! ```toml
//! [azure.credential]                       # the table name is the caller's
//! kind = "client_secret"                   # client_secret | client_certificate | workload_identity | managed_identity | azure_cli | chain
//! tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
//! client_id = "00000000-0000-0000-0000-000000000000"
//! secret_file = "/run/secrets/warden-client-secret"   # the secret alone; never the secret itself in the config
//! authority_host = "https://login.microsoftonline.us" # optional: sovereign cloud, or a local issuer
//! ```
//!
//! Kinds (every field not shown as required is optional):
//!
//! * `client_secret`: a service principal with a client secret. Required:
//!   `tenant_id`, `client_id`, `secret_file` (a file holding the secret,
//!   surrounding whitespace ignored, as a Kubernetes secret volume or a
//!   systemd credential provides it; read once by [`build`]).
//! * `client_certificate`: a service principal with a certificate
//!   credential. Required: `tenant_id`, `client_id`, `certificate_file` (PEM:
//!   the certificate and, unless `private_key_file` names another file, its
//!   unencrypted RSA private key). Both are read once by [`build`], which
//!   checks that they belong together; every token request then presents a
//!   new client assertion signed with the key (PS256, `x5t#S256`: see
//!   [`super::certificate`]), through the SDK's
//!   `ClientAssertionCredential`.
//! * `workload_identity`: Entra Workload ID (AKS): `tenant_id`,
//!   `client_id` and `token_file` default to `AZURE_TENANT_ID`,
//!   `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE`, which the
//!   workload-identity webhook sets.
//! * `managed_identity`: the system-assigned identity, or the user-assigned
//!   one with `client_id` (IMDS on a VM, the App Service endpoint there).
//! * `azure_cli`: whoever is logged in with `az login` (`tenant_id` to pick
//!   a tenant), for a developer's machine.
//! * `chain`: workload identity, then managed identity, then Azure CLI;
//!   the first that produces a token is used from then on (see
//!   [`CredentialConfig::Chain`]). The default.
//!
//! `authority_host` is the Entra authority the `client_secret`,
//! `client_certificate` and `workload_identity` credentials (also inside
//! `chain`) talk to (and, for a certificate, the `aud` of its assertions:
//! `{authority_host}/{tenant_id}/oauth2/v2.0/token`): absent,
//! the SDK's default applies (`AZURE_AUTHORITY_HOST`, else
//! `https://login.microsoftonline.com`); sovereign clouds set
//! `https://login.microsoftonline.us` or `https://login.chinacloudapi.cn`.
//! It must be `https://host[:port]` with no path; plain `http://` is
//! accepted only for a loopback host (`127.0.0.0/8`, `::1`, `localhost`),
//! which is how `warden dev` and the tests point the production credential
//! at the local token issuer ([`crate::identity::dev`]). It is refused for
//! `managed_identity` and `azure_cli`, which do not use it.
//!
//! **Plain HTTP to a loopback authority.** `azure_identity` 1.x refuses any
//! authority host that is not `https` (`get_authority_host`: "authority
//! host doesn't use HTTPS scheme"), from the config and from
//! `AZURE_AUTHORITY_HOST` alike. For a loopback `http://127.0.0.1:PORT`,
//! [`build`] therefore hands the SDK `https://127.0.0.1:PORT` and gives the
//! credential's pipeline a transport (`ClientOptions::transport`, the
//! SDK's extension point for HTTP clients) that sends requests for exactly
//! that origin over plain HTTP through the SDK's default client, and every
//! other request unchanged. Everything else (request building, retries,
//! response parsing, the token cache) is the SDK's production code.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{AsyncRawResponse, ClientOptions, HttpClient, Request, Transport, Url};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use serde::Deserialize;

use super::certificate::ClientCertificate;

/// Which credential Warden uses toward Azure (the `kind` key).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// A service principal with a client secret, read from `secret_file`.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        /// A file holding the secret alone (surrounding whitespace ignored).
        secret_file: PathBuf,
    },
    /// A service principal with a certificate credential: the
    /// certificate and its RSA private key in PEM ([`super::certificate`]).
    ClientCertificate {
        tenant_id: String,
        client_id: String,
        /// The certificate (the first PEM `CERTIFICATE` block) and, unless
        /// `private_key_file` is set, its private key.
        certificate_file: PathBuf,
        /// The private key, when it is not in `certificate_file`.
        private_key_file: Option<PathBuf>,
    },
    /// Entra Workload ID: a federated Kubernetes service-account token.
    /// Each field defaults to its environment variable (`AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`), as in the SDK.
    WorkloadIdentity {
        tenant_id: Option<String>,
        client_id: Option<String>,
        token_file: Option<PathBuf>,
    },
    /// A managed identity: system-assigned, or the user-assigned identity
    /// with this client id.
    ManagedIdentity { client_id: Option<String> },
    /// The Azure CLI's signed-in account (`az account get-access-token`).
    AzureCli { tenant_id: Option<String> },
    /// Workload identity (if its environment is set), then managed
    /// identity, then the Azure CLI, tried in turn until one produces a
    /// token; that one is used from then on, so Warden never switches
    /// identities mid-run. The managed-identity attempt is bounded by
    /// [`CHAIN_MANAGED_IDENTITY_PROBE`] while the chain is still choosing,
    /// so a machine without IMDS moves on quickly. (`azure_identity` 1.x
    /// has no `DefaultAzureCredential` nor `ChainedTokenCredential`; this is
    /// that chain, for a server.)
    Chain {},
}

impl Default for CredentialConfig {
    fn default() -> Self {
        CredentialConfig::Chain {}
    }
}

impl CredentialConfig {
    /// The `kind` value, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            CredentialConfig::ClientSecret { .. } => "client_secret",
            CredentialConfig::ClientCertificate { .. } => "client_certificate",
            CredentialConfig::WorkloadIdentity { .. } => "workload_identity",
            CredentialConfig::ManagedIdentity { .. } => "managed_identity",
            CredentialConfig::AzureCli { .. } => "azure_cli",
            CredentialConfig::Chain {} => "chain",
        }
    }

    /// Makes the kind's files (`secret_file`, `certificate_file`,
    /// `private_key_file`, `token_file`) relative to `base` (the folder of
    /// the configuration file).
    pub fn resolve_files(&mut self, base: &Path) {
        let files: Vec<&mut PathBuf> = match self {
            CredentialConfig::ClientSecret { secret_file, .. } => vec![secret_file],
            CredentialConfig::ClientCertificate {
                certificate_file,
                private_key_file,
                ..
            } => std::iter::once(certificate_file)
                .chain(private_key_file.as_mut())
                .collect(),
            CredentialConfig::WorkloadIdentity { token_file, .. } => {
                token_file.as_mut().into_iter().collect()
            }
            _ => Vec::new(),
        };
        for path in files {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

/// The credential table: the kind and its fields ([`CredentialConfig`],
/// flattened, so `kind` sits next to them) plus `authority_host`, which
/// applies to several kinds. Unknown keys are refused (by the kind's
/// fields).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct CredentialSettings {
    #[serde(flatten)]
    pub credential: CredentialConfig,
    /// Entra authority for `client_secret`, `workload_identity` and
    /// `chain`: `https://host[:port]`, or `http://` to a loopback host (a
    /// local token issuer). Default: the SDK's (`AZURE_AUTHORITY_HOST`,
    /// else `https://login.microsoftonline.com`).
    #[serde(default)]
    pub authority_host: Option<String>,
}

/// How long the chain waits for a managed-identity token while it is still
/// choosing a credential (IMDS answers in milliseconds where it exists).
pub const CHAIN_MANAGED_IDENTITY_PROBE: Duration = Duration::from_secs(5);

/// Why [`build`] could not make a credential. Messages name the setting
/// (`authority_host`, `secret_file`, …) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("azure credential secret_file {path}: the file does not exist")]
    SecretFileMissing { path: PathBuf },
    #[error("azure credential secret_file {path}: cannot read it: {source}")]
    SecretFileUnreadable { path: PathBuf, source: io::Error },
    #[error("azure credential secret_file {path}: the file is empty")]
    SecretFileEmpty { path: PathBuf },
    /// The certificate or its key cannot be used (names the setting and
    /// the file).
    #[error("azure credential {0}")]
    Certificate(#[from] super::certificate::CertificateError),
    #[error("azure credential {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("azure credential authority_host {value:?}: {reason}")]
    BadAuthorityHost { value: String, reason: String },
    #[error(
        "azure credential authority_host does not apply to kind = {kind:?}: {reason}; remove it"
    )]
    AuthorityHostNotApplicable {
        kind: &'static str,
        reason: &'static str,
    },
    /// The SDK refused to build the credential (e.g. a workload-identity
    /// setting neither configured nor in the environment).
    #[error("azure credential kind = {kind:?}: {source}")]
    Sdk {
        kind: &'static str,
        source: azure_core::Error,
    },
}

/// Builds the credential `settings` describe. Reads the secret file (and
/// the workload-identity token file) now, so a missing file stops start-up
/// with a clear error; blocking (file I/O), call it at start-up or from
/// `spawn_blocking`. No token is requested until the first `get_token`.
pub fn build(settings: &CredentialSettings) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    let authority = settings
        .authority_host
        .as_deref()
        .map(Authority::parse)
        .transpose()?;
    let kind = settings.credential.kind();
    let sdk = |source| CredentialError::Sdk { kind, source };
    match &settings.credential {
        CredentialConfig::ClientSecret {
            tenant_id,
            client_id,
            secret_file,
        } => {
            require("tenant_id", tenant_id)?;
            require("client_id", client_id)?;
            let secret = read_secret(secret_file)?;
            let options = ClientSecretCredentialOptions {
                client_options: client_options(authority.as_ref()),
            };
            let credential = ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret),
                Some(options),
            )
            .map_err(sdk)?;
            Ok(credential)
        }
        CredentialConfig::ClientCertificate {
            tenant_id,
            client_id,
            certificate_file,
            private_key_file,
        } => {
            require("tenant_id", tenant_id)?;
            require("client_id", client_id)?;
            let certificate =
                ClientCertificate::load(certificate_file, private_key_file.as_deref())?;
            // The assertion's `aud` is the token endpoint the SDK posts
            // to: the configured authority (before any https rewrite),
            // else the SDK's default.
            let host = match &authority {
                Some(authority) => authority.configured.clone(),
                None => std::env::var("AZURE_AUTHORITY_HOST")
                    .ok()
                    .filter(|h| !h.trim().is_empty())
                    .unwrap_or_else(|| "https://login.microsoftonline.com".to_owned()),
            };
            let assertion = CertificateAssertion {
                certificate: Arc::new(certificate),
                client_id: client_id.clone(),
                audience: format!(
                    "{}/{tenant_id}/oauth2/v2.0/token",
                    host.trim_end_matches('/')
                ),
            };
            let options = ClientAssertionCredentialOptions {
                client_options: client_options(authority.as_ref()),
            };
            let credential = ClientAssertionCredential::new(
                tenant_id.clone(),
                client_id.clone(),
                assertion,
                Some(options),
            )
            .map_err(sdk)?;
            Ok(credential)
        }
        CredentialConfig::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            let credential = workload_identity(
                tenant_id.clone(),
                client_id.clone(),
                token_file.clone(),
                authority.as_ref(),
            )
            .map_err(sdk)?;
            Ok(credential)
        }
        CredentialConfig::ManagedIdentity { client_id } => {
            if authority.is_some() {
                return Err(CredentialError::AuthorityHostNotApplicable {
                    kind,
                    reason: "managed identity tokens come from the host's identity endpoint \
                             (IMDS, App Service), not from an authority",
                });
            }
            if let Some(id) = client_id {
                require("client_id", id)?;
            }
            Ok(managed_identity(client_id.clone()).map_err(sdk)?)
        }
        CredentialConfig::AzureCli { tenant_id } => {
            if authority.is_some() {
                return Err(CredentialError::AuthorityHostNotApplicable {
                    kind,
                    reason: "the Azure CLI uses the cloud it is logged in to (`az cloud set`)",
                });
            }
            if let Some(id) = tenant_id {
                require("tenant_id", id)?;
            }
            Ok(azure_cli(tenant_id.clone()).map_err(sdk)?)
        }
        CredentialConfig::Chain {} => {
            let unavailable = |e: azure_core::Error| e.to_string();
            let sources = vec![
                ChainSource {
                    name: "workload identity",
                    credential: workload_identity(None, None, None, authority.as_ref())
                        .map(|c| c as Arc<dyn TokenCredential>)
                        .map_err(unavailable),
                    probe_timeout: None,
                },
                ChainSource {
                    name: "managed identity",
                    credential: managed_identity(None)
                        .map(|c| c as Arc<dyn TokenCredential>)
                        .map_err(unavailable),
                    probe_timeout: Some(CHAIN_MANAGED_IDENTITY_PROBE),
                },
                ChainSource {
                    name: "Azure CLI",
                    credential: azure_cli(None)
                        .map(|c| c as Arc<dyn TokenCredential>)
                        .map_err(unavailable),
                    probe_timeout: None,
                },
            ];
            Ok(Arc::new(ChainCredential::new(sources)))
        }
    }
}

fn require(field: &'static str, value: &str) -> Result<(), CredentialError> {
    if value.trim().is_empty() {
        return Err(CredentialError::Invalid {
            field,
            message: "must not be empty".into(),
        });
    }
    Ok(())
}

/// The secret in `path`, surrounding whitespace removed.
fn read_secret(path: &Path) -> Result<String, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => CredentialError::SecretFileMissing {
            path: path.to_owned(),
        },
        _ => CredentialError::SecretFileUnreadable {
            path: path.to_owned(),
            source,
        },
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(CredentialError::SecretFileEmpty {
            path: path.to_owned(),
        });
    }
    Ok(secret.to_owned())
}

/// Signs a new client assertion for every token request of a
/// `client_certificate` credential.
struct CertificateAssertion {
    certificate: Arc<ClientCertificate>,
    client_id: String,
    /// The token endpoint (`aud`).
    audience: String,
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("certificate", &self.certificate)
            .field("client_id", &self.client_id)
            .field("audience", &self.audience)
            .finish()
    }
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<azure_core::http::ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        self.certificate
            .assertion(&self.client_id, &self.audience)
            .map_err(|message| azure_core::Error::with_message(ErrorKind::Credential, message))
    }
}

fn workload_identity(
    tenant_id: Option<String>,
    client_id: Option<String>,
    token_file: Option<PathBuf>,
    authority: Option<&Authority>,
) -> azure_core::Result<Arc<WorkloadIdentityCredential>> {
    WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(authority),
        },
        client_id,
        tenant_id,
        token_file_path: token_file,
    }))
}

fn managed_identity(
    client_id: Option<String>,
) -> azure_core::Result<Arc<ManagedIdentityCredential>> {
    ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(UserAssignedId::ClientId),
        client_options: ClientOptions::default(),
    }))
}

fn azure_cli(tenant_id: Option<String>) -> azure_core::Result<Arc<AzureCliCredential>> {
    AzureCliCredential::new(Some(AzureCliCredentialOptions {
        subscription: None,
        tenant_id,
        executor: None,
    }))
}

/// A validated `authority_host`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    /// The value as configured, without a trailing `/`.
    configured: String,
    /// What the SDK gets: always `https://host[:port]`.
    sdk_host: String,
    /// Set for a loopback `http://` authority: the transport that sends
    /// the SDK's `https://` requests for that origin over plain HTTP.
    plain_http: Option<LoopbackPlainHttp>,
}

impl Authority {
    fn parse(value: &str) -> Result<Authority, CredentialError> {
        let bad = |reason: &str| CredentialError::BadAuthorityHost {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(value).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain a user name or password"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        if url.path() != "/" {
            return Err(bad(
                "must be a scheme and host only, with no path (the credential adds \
                 /{tenant}/oauth2/v2.0/token), e.g. https://login.microsoftonline.us",
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(bad("has no host"));
        };
        match url.scheme() {
            "https" => Ok(Authority {
                configured: value.trim_end_matches('/').to_owned(),
                sdk_host: url.as_str().trim_end_matches('/').to_owned(),
                plain_http: None,
            }),
            "http" => {
                if !is_loopback(host) {
                    return Err(bad(
                        "plain http is accepted only for a loopback token issuer \
                         (127.0.0.1, ::1, localhost); use https",
                    ));
                }
                let port = url.port_or_known_default().unwrap_or(80);
                Ok(Authority {
                    configured: value.trim_end_matches('/').to_owned(),
                    sdk_host: format!("https://{host}:{port}"),
                    plain_http: Some(LoopbackPlainHttp {
                        host: host.to_owned(),
                        port,
                        inner: azure_core::http::new_http_client(None),
                    }),
                })
            }
            _ => Err(bad("must be an https:// URL")),
        }
    }
}

/// `host` as `Url::host_str` gives it (IPv6 in brackets, names lower-case).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

/// The pipeline options of a credential that talks to `authority`.
fn client_options(authority: Option<&Authority>) -> ClientOptions {
    let mut options = ClientOptions::default();
    if let Some(authority) = authority {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = authority.sdk_host.clone();
        options.cloud = Some(Arc::new(CloudConfiguration::Custom(cloud)));
        if let Some(plain) = &authority.plain_http {
            options.transport = Some(Transport::new(Arc::new(plain.clone())));
        }
    }
    options
}

/// The SDK's HTTP client, except that requests for `https://{host}:{port}`
/// (a loopback authority the SDK was told is `https`) go out as
/// `http://{host}:{port}`. Requests for any other origin pass unchanged.
#[derive(Clone)]
struct LoopbackPlainHttp {
    host: String,
    port: u16,
    inner: Arc<dyn HttpClient>,
}

impl PartialEq for LoopbackPlainHttp {
    fn eq(&self, other: &Self) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl Eq for LoopbackPlainHttp {}

impl fmt::Debug for LoopbackPlainHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackPlainHttp")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl LoopbackPlainHttp {
    fn is_target(&self, url: &Url) -> bool {
        url.scheme() == "https"
            && url.host_str() == Some(self.host.as_str())
            && url.port_or_known_default() == Some(self.port)
    }
}

#[async_trait::async_trait]
impl HttpClient for LoopbackPlainHttp {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        if !self.is_target(request.url()) {
            return self.inner.execute_request(request).await;
        }
        let mut plain = request.clone();
        let url = plain.url_mut();
        // https → http is always allowed between special schemes; the port
        // is set again because the default port differs.
        if url.set_scheme("http").is_err() || url.set_port(Some(self.port)).is_err() {
            return Err(azure_core::Error::with_message(
                ErrorKind::Other,
                format!("cannot send {} over plain HTTP", request.url()),
            ));
        }
        self.inner.execute_request(&plain).await
    }
}

/// One member of [`ChainCredential`]: a credential, or why it could not be
/// built (e.g. workload identity without its environment).
struct ChainSource {
    name: &'static str,
    credential: Result<Arc<dyn TokenCredential>, String>,
    /// Bound on this member's attempts while the chain is choosing.
    probe_timeout: Option<Duration>,
}

/// Tries its members in order until one produces a token, then sticks to
/// that member (see [`CredentialConfig::Chain`]).
struct ChainCredential {
    sources: Vec<ChainSource>,
    /// Index of the chosen member; `usize::MAX` while none is.
    chosen: AtomicUsize,
}

const NONE_CHOSEN: usize = usize::MAX;

impl ChainCredential {
    fn new(sources: Vec<ChainSource>) -> ChainCredential {
        ChainCredential {
            sources,
            chosen: AtomicUsize::new(NONE_CHOSEN),
        }
    }
}

impl fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.sources.iter().map(|s| s.name).collect();
        let chosen = self.sources.get(self.chosen.load(Ordering::Relaxed));
        f.debug_struct("ChainCredential")
            .field("sources", &names)
            .field("chosen", &chosen.map(|s| s.name))
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(source) = self.sources.get(self.chosen.load(Ordering::Relaxed))
            && let Ok(credential) = &source.credential
        {
            return credential.get_token(scopes, options).await;
        }
        let mut failures = Vec::new();
        for (index, source) in self.sources.iter().enumerate() {
            let credential = match &source.credential {
                Ok(credential) => credential,
                Err(reason) => {
                    failures.push(format!("{}: not configured: {reason}", source.name));
                    continue;
                }
            };
            let attempt = credential.get_token(scopes, options.clone());
            let result = match source.probe_timeout {
                Some(limit) => match tokio::time::timeout(limit, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(azure_core::Error::with_message(
                        ErrorKind::Credential,
                        format!("no answer within {}", humantime::format_duration(limit)),
                    )),
                },
                None => attempt.await,
            };
            match result {
                Ok(token) => {
                    self.chosen.store(index, Ordering::Relaxed);
                    tracing::info!(
                        credential = source.name,
                        "azure credential chain: using {}",
                        source.name
                    );
                    return Ok(token);
                }
                Err(error) => failures.push(format!("{}: {error}", source.name)),
            }
        }
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!(
                "no credential in the chain produced a token:\n- {}",
                failures.join("\n- ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;

    use azure_core::Bytes;
    use azure_core::http::StatusCode as AzureStatus;
    use azure_core::http::headers::Headers;
    use azure_core::time::OffsetDateTime;

    use super::*;
    use crate::identity::dev::test_support;
    use crate::identity::dev::{DEV_CONFIDENTIAL_CLIENT, DEV_TENANT};
    use crate::identity::{Authenticator, PrincipalKind};

    const ARM_SCOPE: &str = "https://management.azure.com/.default";

    fn parse(text: &str) -> Result<CredentialSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_kind_parses() {
        let settings = parse(
            r#"
            kind = "client_secret"
            tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
            client_id = "00000000-1111-4222-8333-444444444444"
            secret_file = "/run/secrets/warden"
            authority_host = "https://login.microsoftonline.us"
            "#,
        )
        .unwrap();
        assert_eq!(
            settings,
            CredentialSettings {
                credential: CredentialConfig::ClientSecret {
                    tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
                    client_id: "00000000-1111-4222-8333-444444444444".into(),
                    secret_file: "/run/secrets/warden".into(),
                },
                authority_host: Some("https://login.microsoftonline.us".into()),
            }
        );
        assert_eq!(
            parse(r#"kind = "workload_identity""#).unwrap().credential,
            CredentialConfig::WorkloadIdentity {
                tenant_id: None,
                client_id: None,
                token_file: None,
            }
        );
        assert_eq!(
            parse(
                "kind = \"workload_identity\"\ntoken_file = \"/var/run/token\"\nclient_id = \"c\""
            )
            .unwrap()
            .credential,
            CredentialConfig::WorkloadIdentity {
                tenant_id: None,
                client_id: Some("c".into()),
                token_file: Some("/var/run/token".into()),
            }
        );
        assert_eq!(
            parse("kind = \"managed_identity\"\nclient_id = \"c\"")
                .unwrap()
                .credential,
            CredentialConfig::ManagedIdentity {
                client_id: Some("c".into())
            }
        );
        assert_eq!(
            parse(r#"kind = "azure_cli""#).unwrap().credential,
            CredentialConfig::AzureCli { tenant_id: None }
        );
        let chain = parse(r#"kind = "chain""#).unwrap();
        assert_eq!(chain, CredentialSettings::default());
        assert_eq!(chain.credential.kind(), "chain");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let cases = [
            // The secret itself is never accepted in the config text.
            (
                "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nsecret = \"s\"",
                "unknown field `secret`",
            ),
            (
                "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"",
                "missing field `secret_file`",
            ),
            (
                "kind = \"chain\"\ntenant_id = \"t\"",
                "unknown field `tenant_id`",
            ),
            (
                "kind = \"managed_identity\"\nclientid = \"c\"",
                "unknown field `clientid`",
            ),
            ("kind = \"default\"", "unknown variant `default`"),
            ("tenant_id = \"t\"", "missing field `kind`"),
            ("kind = \"azure_cli\"\nauthority_host = 3", "authority_host"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn authority_host_rules() {
        let https = Authority::parse("https://login.microsoftonline.us/").unwrap();
        assert_eq!(https.sdk_host, "https://login.microsoftonline.us");
        assert_eq!(https.plain_http, None);
        let custom_port = Authority::parse("https://login.example.com:8443").unwrap();
        assert_eq!(custom_port.sdk_host, "https://login.example.com:8443");

        for (value, sdk_host, host, port) in [
            (
                "http://127.0.0.1:8788",
                "https://127.0.0.1:8788",
                "127.0.0.1",
                8788,
            ),
            ("http://127.9.0.1", "https://127.9.0.1:80", "127.9.0.1", 80),
            ("http://[::1]:9/", "https://[::1]:9", "[::1]", 9),
            ("http://LocalHost:1", "https://localhost:1", "localhost", 1),
        ] {
            let authority = Authority::parse(value).unwrap();
            assert_eq!(authority.sdk_host, sdk_host, "{value}");
            let plain = authority.plain_http.expect("plain http transport");
            assert_eq!((plain.host.as_str(), plain.port), (host, port), "{value}");
        }

        for (value, reason) in [
            (
                "http://login.example.com",
                "plain http is accepted only for a loopback",
            ),
            (
                "http://10.0.0.1:8788",
                "plain http is accepted only for a loopback",
            ),
            ("login.microsoftonline.com", "not a URL"),
            ("ftp://127.0.0.1", "must be an https:// URL"),
            ("https://login.microsoftonline.com/tenant", "no path"),
            ("https://login.microsoftonline.com/?x=1", "query"),
            (
                "https://user:pw@login.microsoftonline.com",
                "user name or password",
            ),
        ] {
            let error = Authority::parse(value).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("azure credential authority_host {value:?}: ")),
                "{error}"
            );
            assert!(error.contains(reason), "{value}: {error}");
        }
    }

    #[test]
    fn build_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let client_secret = |secret_file: &Path| CredentialSettings {
            credential: CredentialConfig::ClientSecret {
                tenant_id: DEV_TENANT.into(),
                client_id: DEV_CONFIDENTIAL_CLIENT.into(),
                secret_file: secret_file.to_owned(),
            },
            authority_host: None,
        };
        let message = |settings: &CredentialSettings| build(settings).unwrap_err().to_string();

        assert_eq!(
            message(&client_secret(&missing)),
            format!(
                "azure credential secret_file {}: the file does not exist",
                missing.display()
            )
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        assert_eq!(
            message(&client_secret(&empty)),
            format!(
                "azure credential secret_file {}: the file is empty",
                empty.display()
            )
        );
        let error = message(&client_secret(dir.path()));
        assert!(error.contains("cannot read it"), "{error}");

        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut settings = client_secret(&secret);
        settings.authority_host = Some("http://login.example.com".into());
        assert!(message(&settings).contains("plain http is accepted only for a loopback"));
        if let CredentialConfig::ClientSecret { tenant_id, .. } = &mut settings.credential {
            *tenant_id = " ".into();
        }
        settings.authority_host = None;
        assert_eq!(
            message(&settings),
            "azure credential tenant_id: must not be empty"
        );
        if let CredentialConfig::ClientSecret { tenant_id, .. } = &mut settings.credential {
            *tenant_id = "not a tenant!".into();
        }
        let error = message(&settings);
        assert!(
            error.starts_with("azure credential kind = \"client_secret\": invalid tenant ID"),
            "{error}"
        );

        for credential in [
            CredentialConfig::ManagedIdentity { client_id: None },
            CredentialConfig::AzureCli { tenant_id: None },
        ] {
            let kind = credential.kind();
            let settings = CredentialSettings {
                credential,
                authority_host: Some("https://login.microsoftonline.us".into()),
            };
            let error = message(&settings);
            assert!(
                error.starts_with(&format!(
                    "azure credential authority_host does not apply to kind = {kind:?}"
                )),
                "{error}"
            );
        }

        let token_file = dir.path().join("no-token");
        let settings = CredentialSettings {
            credential: CredentialConfig::WorkloadIdentity {
                tenant_id: Some(DEV_TENANT.into()),
                client_id: Some(DEV_CONFIDENTIAL_CLIENT.into()),
                token_file: Some(token_file.clone()),
            },
            authority_host: None,
        };
        let error = message(&settings);
        assert!(
            error.starts_with("azure credential kind = \"workload_identity\": ")
                && error.contains(&token_file.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn other_kinds_build_without_contacting_anything() {
        for credential in [
            CredentialConfig::ManagedIdentity {
                client_id: Some(DEV_CONFIDENTIAL_CLIENT.into()),
            },
            CredentialConfig::AzureCli {
                tenant_id: Some(DEV_TENANT.into()),
            },
            CredentialConfig::Chain {},
        ] {
            let settings = CredentialSettings {
                credential,
                authority_host: None,
            };
            build(&settings).unwrap();
        }
    }

    /// Records the URLs it is asked for and answers 200.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl HttpClient for Recorder {
        async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
            self.0.lock().unwrap().push(request.url().to_string());
            Ok(AsyncRawResponse::from_bytes(
                AzureStatus::Ok,
                Headers::default(),
                Bytes::from_static(b"{}"),
            ))
        }
    }

    #[tokio::test]
    async fn loopback_transport_downgrades_only_its_origin() {
        let recorder = Arc::new(Recorder::default());
        let transport = LoopbackPlainHttp {
            host: "127.0.0.1".into(),
            port: 8788,
            inner: recorder.clone(),
        };
        for url in [
            "https://127.0.0.1:8788/t/oauth2/v2.0/token",
            "https://127.0.0.1:8789/t/oauth2/v2.0/token",
            "https://management.azure.com/subscriptions?api-version=1",
            "http://169.254.169.254/metadata/identity/oauth2/token",
        ] {
            let request = Request::new(Url::parse(url).unwrap(), azure_core::http::Method::Get);
            transport.execute_request(&request).await.unwrap();
        }
        let port_80 = LoopbackPlainHttp {
            host: "127.0.0.1".into(),
            port: 80,
            inner: recorder.clone(),
        };
        let request = Request::new(
            Url::parse("https://127.0.0.1:80/t").unwrap(),
            azure_core::http::Method::Get,
        );
        port_80.execute_request(&request).await.unwrap();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            [
                "http://127.0.0.1:8788/t/oauth2/v2.0/token",
                "https://127.0.0.1:8789/t/oauth2/v2.0/token",
                "https://management.azure.com/subscriptions?api-version=1",
                "http://169.254.169.254/metadata/identity/oauth2/token",
                "http://127.0.0.1/t",
            ]
        );
    }

    /// A chain member that fails or answers `token`, counting its calls.
    #[derive(Debug)]
    struct Fake {
        token: Option<&'static str>,
        delay: Duration,
        calls: AtomicU32,
    }

    impl Fake {
        fn new(token: Option<&'static str>) -> Arc<Fake> {
            Arc::new(Fake {
                token,
                delay: Duration::ZERO,
                calls: AtomicU32::new(0),
            })
        }
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            match self.token {
                Some(token) => Ok(AccessToken::new(
                    token,
                    OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
                )),
                None => Err(azure_core::Error::with_message(
                    ErrorKind::Credential,
                    "fake failure",
                )),
            }
        }
    }

    fn source(
        name: &'static str,
        credential: &Arc<Fake>,
        probe_timeout: Option<Duration>,
    ) -> ChainSource {
        ChainSource {
            name,
            credential: Ok(credential.clone() as Arc<dyn TokenCredential>),
            probe_timeout,
        }
    }

    #[tokio::test]
    async fn chain_uses_the_first_member_that_answers_and_sticks_to_it() {
        let failing = Fake::new(None);
        let slow = Arc::new(Fake {
            token: Some("slow"),
            delay: Duration::from_secs(30),
            calls: AtomicU32::new(0),
        });
        let good = Fake::new(Some("good"));
        let unused = Fake::new(Some("unused"));
        let chain = ChainCredential::new(vec![
            ChainSource {
                name: "absent",
                credential: Err("no tenant ID specified".into()),
                probe_timeout: None,
            },
            source("failing", &failing, None),
            source("slow", &slow, Some(Duration::from_millis(50))),
            source("good", &good, None),
            source("unused", &unused, None),
        ]);
        let token = chain.get_token(&[ARM_SCOPE], None).await.unwrap();
        assert_eq!(token.token.secret(), "good");
        assert!(format!("{chain:?}").contains("chosen: Some(\"good\")"));
        chain.get_token(&[ARM_SCOPE], None).await.unwrap();
        assert_eq!(failing.calls.load(Ordering::SeqCst), 1);
        assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
        assert_eq!(good.calls.load(Ordering::SeqCst), 2);
        assert_eq!(unused.calls.load(Ordering::SeqCst), 0);

        let all_fail = ChainCredential::new(vec![
            ChainSource {
                name: "workload identity",
                credential: Err("no tenant ID specified".into()),
                probe_timeout: None,
            },
            source("managed identity", &slow, Some(Duration::from_millis(50))),
            source("Azure CLI", &failing, None),
        ]);
        let error = all_fail.get_token(&[ARM_SCOPE], None).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no credential in the chain produced a token:\n\
             - workload identity: not configured: no tenant ID specified\n\
             - managed identity: no answer within 50ms\n\
             - Azure CLI: fake failure"
        );
    }

    /// The production client-secret credential against the dev issuer over
    /// real HTTP; its token is then validated by the production
    /// [`Authenticator`] as an app-only principal.
    #[tokio::test]
    async fn client_secret_credential_gets_an_arm_token_from_the_dev_issuer() {
        let served = test_support::serve().await;
        let client = served.issuer.dev_client().unwrap();
        let settings: CredentialSettings = toml::from_str(&format!(
            "kind = \"client_secret\"\ntenant_id = {DEV_TENANT:?}\nclient_id = {:?}\n\
             secret_file = {:?}\nauthority_host = {:?}\n",
            client.client_id,
            client.secret_file.display().to_string(),
            served.base_url,
        ))
        .unwrap();
        let credential = build(&settings).unwrap();
        let token = credential.get_token(&[ARM_SCOPE], None).await.unwrap();
        let lifetime = token.expires_on - OffsetDateTime::now_utc();
        assert!(
            (3590..=3599).contains(&lifetime.whole_seconds()),
            "{lifetime}"
        );
        // The SDK caches it.
        let again = credential.get_token(&[ARM_SCOPE], None).await.unwrap();
        assert_eq!(again.token.secret(), token.token.secret());

        // Entra (and the dev issuer) derive the resource by removing
        // `/.default`: the audience has no trailing slash.
        let mut config = served.issuer.identity_config(&served.base_url);
        config.audiences = vec!["https://management.azure.com".into()];
        assert_eq!(config.validate(), Ok(()));
        let bearer = format!("Bearer {}", token.token.secret());

        // An app-only token without app roles is refused by default (any
        // application in a tenant can get one) ...
        let strict = Authenticator::start(config.clone(), reqwest::Client::new());
        strict.refresh_keys().await;
        let refused = strict.authenticate(Some(&bearer), None).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("allow_app_tokens_without_roles"),
            "{refused}"
        );

        // ... and accepted where configuration says so, as ARM (the
        // simulator) does.
        config.allow_app_tokens_without_roles = true;
        let auth = Authenticator::start(config, reqwest::Client::new());
        auth.refresh_keys().await;
        let principal = auth.authenticate(Some(&bearer), None).await.unwrap();
        assert_eq!(principal.kind, PrincipalKind::Application);
        assert_eq!(principal.tid, DEV_TENANT);
        assert_eq!(
            principal.client_app.as_deref(),
            Some(DEV_CONFIDENTIAL_CLIENT)
        );
        assert!(principal.roles.is_empty());
        assert!(principal.scopes.is_empty());
    }

    /// The production assertion credential with a certificate, against
    /// the dev issuer over real HTTP: the issuer verifies the assertion
    /// and says the client used a certificate.
    #[tokio::test]
    async fn client_certificate_credential_gets_an_arm_token_from_the_dev_issuer() {
        let served = test_support::serve().await;
        let generated = crate::azure::certificate::test_support::rsa();
        served
            .issuer
            .add_client_certificate(&generated.certificate_pem)
            .unwrap();
        let file = served.dir.path().join("warden.pem");
        std::fs::write(&file, generated.combined_pem()).unwrap();
        let settings: CredentialSettings = toml::from_str(&format!(
            "kind = \"client_certificate\"\ntenant_id = {DEV_TENANT:?}\nclient_id = \
             {DEV_CONFIDENTIAL_CLIENT:?}\ncertificate_file = {:?}\nauthority_host = {:?}\n",
            file.display().to_string(),
            served.base_url,
        ))
        .unwrap();
        let credential = build(&settings).unwrap();
        let token = credential.get_token(&[ARM_SCOPE], None).await.unwrap();
        let claims = test_support::payload(token.token.secret());
        assert_eq!(claims["aud"], "https://management.azure.com");
        assert_eq!(claims["appid"], DEV_CONFIDENTIAL_CLIENT);
        assert_eq!(claims["appidacr"], "2");

        // A certificate the application does not have: Entra's refusal.
        let stranger = served.dir.path().join("stranger.pem");
        std::fs::write(
            &stranger,
            crate::azure::certificate::test_support::rsa().combined_pem(),
        )
        .unwrap();
        let mut settings = settings;
        if let CredentialConfig::ClientCertificate {
            certificate_file, ..
        } = &mut settings.credential
        {
            *certificate_file = stranger;
        }
        let error = build(&settings)
            .unwrap()
            .get_token(&[ARM_SCOPE], None)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("AADSTS700027"), "{error}");

        // Files are checked when the credential is built.
        let absent = served.dir.path().join("absent.pem");
        if let CredentialConfig::ClientCertificate {
            certificate_file, ..
        } = &mut settings.credential
        {
            *certificate_file = absent.clone();
        }
        assert_eq!(
            build(&settings).unwrap_err().to_string(),
            format!(
                "azure credential certificate_file {}: the file does not exist",
                absent.display()
            )
        );
    }

    #[test]
    fn credential_files_resolve_against_the_config_folder() {
        let base = Path::new("/etc/warden");
        let mut certificate: CredentialConfig = toml::from_str(
            "kind = \"client_certificate\"\ntenant_id = \"t\"\nclient_id = \"c\"\n\
             certificate_file = \"certs/warden.pem\"\nprivate_key_file = \"/run/key.pem\"\n",
        )
        .unwrap();
        certificate.resolve_files(base);
        assert_eq!(
            certificate,
            CredentialConfig::ClientCertificate {
                tenant_id: "t".into(),
                client_id: "c".into(),
                certificate_file: "/etc/warden/certs/warden.pem".into(),
                private_key_file: Some("/run/key.pem".into()),
            }
        );
        let mut secret: CredentialConfig = toml::from_str(
            "kind = \"client_secret\"\ntenant_id = \"t\"\nclient_id = \"c\"\nsecret_file = \"s\"\n",
        )
        .unwrap();
        secret.resolve_files(base);
        assert!(
            matches!(&secret, CredentialConfig::ClientSecret { secret_file, .. }
                if secret_file == Path::new("/etc/warden/s"))
        );
        // Unknown keys are refused for the new kind too.
        assert!(
            toml::from_str::<CredentialConfig>(
                "kind = \"client_certificate\"\ntenant_id = \"t\"\nclient_id = \"c\"\n\
                 certificate_file = \"x\"\npassword = \"p\"\n",
            )
            .is_err()
        );
    }

    #[tokio::test]
    async fn client_secret_credential_with_a_wrong_secret_fails_clearly() {
        let served = test_support::serve().await;
        let client = served.issuer.dev_client().unwrap();
        let wrong = served.dir.path().join("wrong-secret");
        std::fs::write(&wrong, "not-the-secret\n").unwrap();
        let settings = CredentialSettings {
            credential: CredentialConfig::ClientSecret {
                tenant_id: DEV_TENANT.into(),
                client_id: client.client_id,
                secret_file: wrong,
            },
            authority_host: Some(served.base_url.clone()),
        };
        let credential = build(&settings).unwrap();
        let error = credential
            .get_token(&[ARM_SCOPE], None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret provided."
            ),
            "{error}"
        );
        assert!(!error.contains("not-the-secret"), "{error}");
    }
}
