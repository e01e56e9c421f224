//! The egress proxy of `warden dev`: how a program with fixed Azure hosts
//! (the official Azure MCP Server has no setting for another ARM endpoint
//! or authority) runs offline against the ARM simulator and the dev issuer.
//!
//! The program is given `HTTPS_PROXY=http://127.0.0.1:<port>` and trusts
//! the dev CA (`SSL_CERT_FILE`). The proxy:
//!
//! * listens on `127.0.0.1`, on a port the system picks: [`EgressProxy::start`]
//!   takes no address, so it cannot listen anywhere else;
//! * answers `CONNECT host:port` for the hosts it serves ([`Routes`]) with
//!   `200`, then terminates TLS with a certificate for those hosts signed by
//!   the dev CA ([`DevCa`], kept in the data directory across runs) and
//!   forwards each request over plain HTTP, path and query unchanged,
//!   `Host` set to the host the client asked for:
//!   `management.azure.com` and `<vault>.vault.azure.net` to the simulator
//!   (which tells Key Vault requests apart by their `Host`),
//!   `login.microsoftonline.com` to the dev issuer. The port in `CONNECT`
//!   is ignored (MSAL may name another one);
//! * refuses every other host with `403`, logs and counts it
//!   ([`EgressProxy::hosts`]): nothing leaves the machine, telemetry
//!   included;
//! * forwards a plain-HTTP request in absolute form (`GET http://host/…`)
//!   only for a host it serves, and refuses anything else;
//! * never forwards the simulator's and issuer's own control paths
//!   (`/_sim/…`, `/_dev/…`), which the real hosts do not have.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use chrono::{Datelike as _, Utc};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use x509_cert::der::{Decode as _, DecodePem as _};

/// Azure Resource Manager's host.
pub const ARM_HOST: &str = "management.azure.com";
/// Entra ID's host (the public cloud's authority).
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
/// The DNS suffix of Key Vault data planes (`<vault>.vault.azure.net`).
pub const VAULT_SUFFIX: &str = ".vault.azure.net";

/// The dev CA's certificate in the data directory (PEM): what clients of
/// the proxy trust (`SSL_CERT_FILE`).
pub const CA_CERT_FILE: &str = "dev-ca.pem";
/// The dev CA's private key in the data directory (PKCS#8 PEM, mode 0600).
pub const CA_KEY_FILE: &str = "dev-ca-key.pem";

/// How long a new dev CA is valid.
const CA_DAYS: i64 = 3650;
/// A dev CA with less time left than this is replaced.
const CA_RENEW_DAYS: i64 = 30;
/// How long the proxy's own certificate is valid (a new one each start).
const LEAF_DAYS: i64 = 365;

/// Failures of the dev CA and the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dev CA: {0}")]
    Certificate(String),
    #[error("egress proxy TLS: {0}")]
    Tls(String),
    #[error("egress proxy cannot listen on 127.0.0.1: {0}")]
    Bind(std::io::Error),
}

fn certificate_error(error: impl std::fmt::Display) -> ProxyError {
    ProxyError::Certificate(error.to_string())
}

/// The dev CA: a certificate authority made for `warden dev` on first use
/// and kept in the data directory ([`CA_CERT_FILE`], [`CA_KEY_FILE`]), so a
/// client configured to trust it keeps working across runs. Its name
/// constraints limit it to the hosts the proxy serves.
pub struct DevCa {
    cert_file: PathBuf,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// Unix time after which the CA is no longer valid.
    not_after: u64,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

/// Sets a certificate's validity: from midnight UTC `from` days from
/// today to midnight UTC `to` days from today.
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) {
    let date = |offset: i64| {
        let date = (Utc::now() + chrono::Duration::days(offset)).date_naive();
        // A month and a day always fit in a byte.
        rcgen::date_time_ymd(
            date.year(),
            u8::try_from(date.month()).unwrap_or(1),
            u8::try_from(date.day()).unwrap_or(1),
        )
    };
    params.not_before = date(from);
    params.not_after = date(to);
}

/// The CA's certificate parameters: the same for a new CA and for one read
/// back (the issuer of the proxy's certificate must name the CA exactly).
fn ca_params(days: Option<i64>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Warden dev");
    params
        .distinguished_name
        .push(DnType::CommonName, "Warden dev egress proxy CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName(ARM_HOST.to_owned()),
            GeneralSubtree::DnsName(LOGIN_HOST.to_owned()),
            GeneralSubtree::DnsName(VAULT_SUFFIX.trim_start_matches('.').to_owned()),
        ],
        excluded_subtrees: Vec::new(),
    });
    if let Some(days) = days {
        set_validity(&mut params, -1, days);
    }
    params
}

impl DevCa {
    /// Reads the dev CA from `dir`, or makes a new one there when there is
    /// none (or it expires within 30 days, or its files do not match).
    /// Blocking (file I/O, key generation).
    pub fn load_or_create(dir: &Path) -> Result<DevCa, ProxyError> {
        let cert_file = dir.join(CA_CERT_FILE);
        let key_file = dir.join(CA_KEY_FILE);
        match Self::load(&cert_file, &key_file) {
            Ok(Some(ca)) => return Ok(ca),
            Ok(None) => {}
            Err(reason) => warn!(
                file = %cert_file.display(),
                %reason,
                "the dev CA cannot be used; making a new one (clients must trust the new file)"
            ),
        }
        Self::create(dir, cert_file, &key_file)
    }

    /// The CA in the two files; `None` when either is missing.
    fn load(cert_file: &Path, key_file: &Path) -> Result<Option<DevCa>, String> {
        let read = |path: &Path| match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        };
        let (Some(cert_pem), Some(key_pem)) = (read(cert_file)?, read(key_file)?) else {
            return Ok(None);
        };
        let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("its key: {e}"))?;
        let stored = x509_cert::Certificate::from_pem(cert_pem.as_bytes())
            .map_err(|e| format!("its certificate: {e}"))?;
        // The certificate these parameters and this key make names the same
        // subject and key as the stored one, or the files do not belong
        // together.
        let params = ca_params(None);
        let template = params
            .self_signed(&key)
            .map_err(|e| format!("its key: {e}"))?;
        let template = x509_cert::Certificate::from_der(template.der())
            .map_err(|e| format!("its key: {e}"))?;
        if template.tbs_certificate.subject != stored.tbs_certificate.subject
            || template.tbs_certificate.subject_public_key_info
                != stored.tbs_certificate.subject_public_key_info
        {
            return Err("the certificate and the key do not belong together".into());
        }
        let not_after = stored
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs();
        let renew_at = Utc::now().timestamp() + CA_RENEW_DAYS * 86_400;
        if i64::try_from(not_after).unwrap_or(i64::MAX) < renew_at {
            return Err("it expires within 30 days".into());
        }
        let der = x509_cert::der::Encode::to_der(&stored).map_err(|e| e.to_string())?;
        Ok(Some(DevCa {
            cert_file: cert_file.to_owned(),
            cert_der: CertificateDer::from(der),
            issuer: Issuer::new(params, key),
            not_after,
        }))
    }

    fn create(dir: &Path, cert_file: PathBuf, key_file: &Path) -> Result<DevCa, ProxyError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ProxyError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key = KeyPair::generate().map_err(certificate_error)?;
        let params = ca_params(Some(CA_DAYS));
        let certificate = params.self_signed(&key).map_err(certificate_error)?;
        let not_after = u64::try_from(params.not_after.unix_timestamp()).unwrap_or_default();
        write_file(key_file, key.serialize_pem().as_bytes(), true).map_err(io(key_file))?;
        write_file(&cert_file, certificate.pem().as_bytes(), false).map_err(io(&cert_file))?;
        info!(file = %cert_file.display(), "made the dev CA of warden dev's egress proxy");
        Ok(DevCa {
            cert_file,
            cert_der: certificate.der().clone(),
            issuer: Issuer::new(params, key),
            not_after,
        })
    }

    /// The CA certificate's file (PEM), for `SSL_CERT_FILE`.
    pub fn cert_file(&self) -> &Path {
        &self.cert_file
    }

    /// The CA certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// A new certificate for the hosts the proxy serves (its key made now),
    /// with the CA's certificate after it.
    fn leaf(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ProxyError> {
        let names = vec![
            ARM_HOST.to_owned(),
            LOGIN_HOST.to_owned(),
            format!("*{VAULT_SUFFIX}"),
        ];
        let mut params = CertificateParams::new(names).map_err(certificate_error)?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Warden dev egress proxy");
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let ca_days_left =
            (i64::try_from(self.not_after).unwrap_or(i64::MAX) - Utc::now().timestamp()) / 86_400;
        set_validity(&mut params, -1, LEAF_DAYS.min(ca_days_left - 1));
        let key = KeyPair::generate().map_err(certificate_error)?;
        let leaf = params
            .signed_by(&key, &self.issuer)
            .map_err(certificate_error)?;
        Ok((
            vec![leaf.der().clone(), self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        ))
    }
}

/// Writes `contents` to `path` through a staging file (mode 0600 when
/// `private`), replacing what was there.
fn write_file(path: &Path, contents: &[u8], private: bool) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = path.with_file_name(format!(".{name}.new"));
    let _ = std::fs::remove_file(&staging);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&staging)?;
    std::io::Write::write_all(&mut file, contents)?;
    file.sync_all()?;
    std::fs::rename(&staging, path)
}

/// Where the proxy sends the hosts it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    /// The ARM simulator: `management.azure.com` and `*.vault.azure.net`.
    pub arm: SocketAddr,
    /// The dev issuer: `login.microsoftonline.com`.
    pub login: SocketAddr,
}

impl Routes {
    /// Where requests for `host` (a normalized host name, see [`host_of`])
    /// go; `None` for a host the proxy refuses.
    pub fn target(&self, host: &str) -> Option<SocketAddr> {
        if host == ARM_HOST {
            return Some(self.arm);
        }
        if host == LOGIN_HOST {
            return Some(self.login);
        }
        // One DNS label before the suffix, as the certificate's wildcard
        // covers.
        let vault = host.strip_suffix(VAULT_SUFFIX)?;
        let label = !vault.is_empty()
            && vault.len() <= 63
            && vault
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        label.then_some(self.arm)
    }
}

/// A host name as the proxy compares it: lower case, without a trailing
/// dot or IPv6 brackets.
pub fn host_of(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// What the proxy did for one host since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostTally {
    pub host: String,
    /// Requests forwarded (to the simulator or the issuer).
    pub forwarded: u64,
    /// Connections and requests refused (a host the proxy does not serve).
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Tally {
    hosts: Mutex<BTreeMap<String, HostTally>>,
}

impl Tally {
    /// Counts one refusal of `host`; the count so far.
    fn refused(&self, host: &str) -> u64 {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = hosts.entry(host.to_owned()).or_insert_with(|| HostTally {
            host: host.to_owned(),
            ..HostTally::default()
        });
        entry.refused += 1;
        entry.refused
    }

    fn forwarded(&self, host: &str) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(host.to_owned())
            .or_insert_with(|| HostTally {
                host: host.to_owned(),
                ..HostTally::default()
            })
            .forwarded += 1;
    }

    fn snapshot(&self) -> Vec<HostTally> {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.values().cloned().collect()
    }
}

/// The shared state of the proxy's connections.
struct Shared {
    routes: Routes,
    acceptor: TlsAcceptor,
    tally: Tally,
    shutdown: CancellationToken,
}

/// A running egress proxy. It stops when the token given to
/// [`start`](Self::start) is cancelled; [`wait`](Self::wait) joins it.
#[derive(Debug)]
pub struct EgressProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// Listens on `127.0.0.1` (a port the system picks) and serves until
    /// `shutdown` is cancelled, with a new certificate signed by `ca`.
    pub async fn start(
        ca: &DevCa,
        routes: Routes,
        shutdown: CancellationToken,
    ) -> Result<EgressProxy, ProxyError> {
        let (chain, key) = ca.leaf()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProxyError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| ProxyError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(ProxyError::Bind)?;
        let addr = listener.local_addr().map_err(ProxyError::Bind)?;
        let shared = Arc::new(Shared {
            routes,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            tally: Tally::default(),
            shutdown,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(EgressProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`, for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on (always `127.0.0.1`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every host asked for since start, with what the proxy did, by name.
    pub fn hosts(&self) -> Vec<HostTally> {
        self.shared.tally.snapshot()
    }

    /// The hosts refused since start, by name.
    pub fn refused_hosts(&self) -> Vec<String> {
        self.hosts()
            .into_iter()
            .filter(|h| h.refused > 0)
            .map(|h| h.host)
            .collect()
    }

    /// Waits until the proxy has stopped (its shutdown token cancelled).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, _) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "dev proxy: accept failed");
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = {
                let shared = shared.clone();
                hyper::service::service_fn(move |request| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(front(shared, request).await) }
                })
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                result = connection => {
                    if let Err(error) = result {
                        debug!(%error, "dev proxy: client connection ended");
                    }
                }
            }
        });
    }
}

/// A request on the proxy's own port: `CONNECT`, or plain HTTP in absolute
/// form.
async fn front(shared: Arc<Shared>, mut request: Request<Incoming>) -> Response<Body> {
    if request.method() == Method::CONNECT {
        let Some(authority) = request.uri().authority().cloned() else {
            return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let host = host_of(authority.host());
        let Some(target) = shared.routes.target(&host) else {
            return refuse(&shared, &host, authority.port_u16());
        };
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let upgraded = match upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => {
                    debug!(%error, %host, "dev proxy: CONNECT without a tunnel");
                    return;
                }
            };
            let tls = match shared.acceptor.accept(TokioIo::new(upgraded)).await {
                Ok(tls) => tls,
                Err(error) => {
                    warn!(
                        %error,
                        %host,
                        "dev proxy: TLS handshake failed (does the client trust the dev CA?)"
                    );
                    return;
                }
            };
            let service = {
                let shared = shared.clone();
                let host = host.clone();
                hyper::service::service_fn(move |request| {
                    let (shared, host) = (shared.clone(), host.clone());
                    async move {
                        Ok::<_, Infallible>(forward(&shared, &host, target, true, request).await)
                    }
                })
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                () = shared.shutdown.cancelled() => {}
                result = connection => {
                    if let Err(error) = result {
                        debug!(%error, %host, "dev proxy: tunnel ended");
                    }
                }
            }
        });
        return Response::new(Body::empty());
    }
    let uri = request.uri();
    match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(host)) => {
            let (host, port) = (host_of(host), uri.port_u16());
            match shared.routes.target(&host) {
                Some(target) => forward(&shared, &host, target, false, request).await,
                None => refuse(&shared, &host, port),
            }
        }
        (Some(_), Some(host)) => refuse(&shared, &host_of(host), uri.port_u16()),
        _ => text(
            StatusCode::BAD_REQUEST,
            "this is warden dev's egress proxy: send CONNECT host:port, or a request for an \
             absolute http:// URL",
        ),
    }
}

/// `403` for a host the proxy does not serve, logged and counted.
fn refuse(shared: &Shared, host: &str, port: Option<u16>) -> Response<Body> {
    let count = shared.tally.refused(host);
    if count == 1 {
        info!(
            %host,
            port,
            "dev proxy: refused a host it does not serve (warden dev stays offline)"
        );
    } else {
        debug!(%host, port, count, "dev proxy: refused again");
    }
    text(
        StatusCode::FORBIDDEN,
        &format!(
            "warden dev's egress proxy does not serve {host}: it serves {ARM_HOST}, {LOGIN_HOST} \
             and *{VAULT_SUFFIX} only"
        ),
    )
}

/// Headers that belong to one hop, not to the request or answer.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sends `request` (for `host`) over plain HTTP to `target` and relays the
/// answer, both streamed.
async fn forward(
    shared: &Shared,
    host: &str,
    target: SocketAddr,
    tls: bool,
    request: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/_sim/") || lower.starts_with("/_dev/") {
        return text(StatusCode::NOT_FOUND, "not served through the proxy");
    }
    parts.uri = match Uri::try_from(path.as_str()) {
        Ok(uri) => uri,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad request target"),
    };
    parts.version = http::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let Ok(host_value) = HeaderValue::from_str(host) else {
        return text(StatusCode::BAD_REQUEST, "bad host");
    };
    parts.headers.insert(header::HOST, host_value);
    if tls {
        parts.headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static("https"),
        );
    }
    shared.tally.forwarded(host);
    let method = parts.method.clone();
    let answer = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|e| e.to_string())
    };
    match answer.await {
        Ok(response) => {
            debug!(%host, %method, %path, status = response.status().as_u16(), "dev proxy: forwarded");
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => {
            warn!(%host, %target, %error, "dev proxy: the local service did not answer");
            text(
                StatusCode::BAD_GATEWAY,
                &format!("warden dev's service for {host} did not answer: {error}"),
            )
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::extract::Request as AxumRequest;
    use serde_json::{Value, json};

    /// What a local service received, as it answers it.
    async fn received(
        axum::extract::State(name): axum::extract::State<&'static str>,
        request: AxumRequest,
    ) -> axum::Json<Value> {
        let (parts, body) = request.into_parts();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (host, proto) = (header("host"), header("x-forwarded-proto"));
        let method = parts.method.to_string();
        let target = parts.uri.to_string();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        axum::Json(json!({
            "service": name,
            "host": host,
            "proto": proto,
            "method": method,
            "target": target,
            "body": String::from_utf8_lossy(&body),
        }))
    }

    /// A local service answering every request with what it received.
    async fn echo(name: &'static str) -> SocketAddr {
        let app = axum::Router::new().fallback(received).with_state(name);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, app).into_future());
        addr
    }

    struct Setup {
        _dir: tempfile::TempDir,
        ca: DevCa,
        proxy: EgressProxy,
        shutdown: CancellationToken,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::load_or_create(dir.path()).unwrap();
        let routes = Routes {
            arm: echo("arm").await,
            login: echo("login").await,
        };
        let shutdown = CancellationToken::new();
        let proxy = EgressProxy::start(&ca, routes, shutdown.clone())
            .await
            .unwrap();
        Setup {
            _dir: dir,
            ca,
            proxy,
            shutdown,
        }
    }

    /// A client that goes through the proxy and trusts only `ca`.
    fn client(proxy: &EgressProxy, ca: &Path) -> reqwest::Client {
        let pem = std::fs::read(ca).unwrap();
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(proxy.url()).unwrap())
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn mapped_hosts_are_forwarded_to_their_service_with_their_host() {
        let Setup {
            _dir,
            ca,
            proxy,
            shutdown,
        } = setup().await;
        assert!(proxy.local_addr().ip().is_loopback(), "{proxy:?}");
        assert!(proxy.url().starts_with("http://127.0.0.1:"));
        let http = client(&proxy, ca.cert_file());
        let get = |url: &'static str| {
            let http = http.clone();
            async move {
                let response = http.get(url).send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                response.json::<Value>().await.unwrap()
            }
        };

        let arm = get("https://management.azure.com/subscriptions?api-version=2022-12-01").await;
        assert_eq!(arm["service"], "arm");
        assert_eq!(arm["host"], ARM_HOST);
        assert_eq!(arm["proto"], "https");
        assert_eq!(arm["target"], "/subscriptions?api-version=2022-12-01");

        // The port of CONNECT is ignored.
        let login = http
            .post("https://login.microsoftonline.com:28443/t/oauth2/v2.0/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(login["service"], "login");
        assert_eq!(login["host"], LOGIN_HOST);
        assert_eq!(login["method"], "POST");
        assert_eq!(login["target"], "/t/oauth2/v2.0/token");
        assert_eq!(login["body"], "grant_type=client_credentials");

        let vault =
            get("https://kv-security.vault.azure.net/secrets/db-password?api-version=7.5").await;
        assert_eq!(vault["service"], "arm");
        assert_eq!(vault["host"], "kv-security.vault.azure.net");
        assert_eq!(vault["target"], "/secrets/db-password?api-version=7.5");

        // Plain HTTP in absolute form, for a host the proxy serves.
        let plain = get("http://management.azure.com/subscriptions").await;
        assert_eq!(plain["service"], "arm");
        assert_eq!(plain["proto"], Value::Null);

        // The local services' control paths are not the real hosts'.
        let control = http
            .get("https://management.azure.com/_sim/requests")
            .send()
            .await
            .unwrap();
        assert_eq!(control.status(), 404);

        let hosts = proxy.hosts();
        let tally = |host: &str| hosts.iter().find(|h| h.host == host).cloned().unwrap();
        assert_eq!(tally(ARM_HOST).forwarded, 2, "{hosts:?}");
        assert_eq!(tally(LOGIN_HOST).forwarded, 1);
        assert!(proxy.refused_hosts().is_empty(), "{hosts:?}");
        shutdown.cancel();
        proxy.wait().await;
    }

    #[tokio::test]
    async fn other_hosts_are_refused_logged_and_counted() {
        let Setup {
            _dir,
            ca,
            proxy,
            shutdown,
        } = setup().await;
        let http = client(&proxy, ca.cert_file());
        for url in [
            "https://westus-0.in.applicationinsights.azure.com/v2.1/track",
            "https://management.azure.com.evil.example/",
            "https://a.b.vault.azure.net/secrets",
            "https://127.0.0.1/",
        ] {
            let error = http.get(url).send().await.unwrap_err();
            assert!(error.is_connect(), "{url}: {error:?}");
        }
        // Twice, counted twice.
        let _ = http
            .get("https://westus-0.in.applicationinsights.azure.com/again")
            .send()
            .await;
        let refused = http.get("http://example.org/").send().await.unwrap();
        assert_eq!(refused.status(), 403);
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("does not serve example.org"),
            "the refusal names the host"
        );

        // A raw CONNECT gets the 403 itself.
        let mut tcp = TcpStream::connect(proxy.local_addr()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(
            &mut tcp,
            b"CONNECT dc.services.visualstudio.com:443 HTTP/1.1\r\nHost: dc.services.visualstudio.com:443\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = vec![0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut answer)
            .await
            .unwrap();
        assert_eq!(&answer, b"HTTP/1.1 403");

        // Not a proxy request at all.
        let direct = reqwest::get(format!("{}/subscriptions", proxy.url()))
            .await
            .unwrap();
        assert_eq!(direct.status(), 400);

        let hosts = proxy.hosts();
        assert_eq!(
            proxy.refused_hosts(),
            [
                "127.0.0.1",
                "a.b.vault.azure.net",
                "dc.services.visualstudio.com",
                "example.org",
                "management.azure.com.evil.example",
                "westus-0.in.applicationinsights.azure.com",
            ],
            "{hosts:?}"
        );
        let insights = hosts
            .iter()
            .find(|h| h.host.ends_with("applicationinsights.azure.com"))
            .unwrap();
        assert_eq!((insights.refused, insights.forwarded), (2, 0));
        shutdown.cancel();
        proxy.wait().await;
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_dev_ca_gets_no_connection() {
        let Setup {
            _dir,
            proxy,
            shutdown,
            ..
        } = setup().await;
        let other = tempfile::tempdir().unwrap();
        let stranger = DevCa::load_or_create(other.path()).unwrap();
        let http = client(&proxy, stranger.cert_file());
        let error = http
            .get("https://management.azure.com/subscriptions")
            .send()
            .await
            .unwrap_err();
        assert!(error.is_connect(), "{error:?}");
        assert!(proxy.hosts().iter().all(|h| h.forwarded == 0), "{proxy:?}");
        shutdown.cancel();
        proxy.wait().await;
    }

    #[test]
    fn the_dev_ca_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::load_or_create(dir.path()).unwrap();
        let cert = std::fs::read_to_string(ca.cert_file()).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        let key_file = dir.path().join(CA_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = DevCa::load_or_create(dir.path()).unwrap();
        assert_eq!(again.certificate(), ca.certificate());
        assert_eq!(std::fs::read_to_string(again.cert_file()).unwrap(), cert);
        again.leaf().unwrap();

        // A key that is not the certificate's: a new CA.
        let other = tempfile::tempdir().unwrap();
        DevCa::load_or_create(other.path()).unwrap();
        std::fs::copy(other.path().join(CA_KEY_FILE), &key_file).unwrap();
        let replaced = DevCa::load_or_create(dir.path()).unwrap();
        assert_ne!(replaced.certificate(), ca.certificate());
        let reloaded = DevCa::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.certificate(), replaced.certificate());
    }

    #[test]
    fn routes_name_the_served_hosts_only() {
        let arm: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let login: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let routes = Routes { arm, login };
        assert_eq!(routes.target(&host_of("Management.Azure.com.")), Some(arm));
        assert_eq!(routes.target(LOGIN_HOST), Some(login));
        assert_eq!(routes.target("kv-security.vault.azure.net"), Some(arm));
        for refused in [
            "vault.azure.net",
            ".vault.azure.net",
            "a.b.vault.azure.net",
            "kv_x.vault.azure.net",
            "login.microsoft.com",
            "management.azure.com.example",
            "graph.microsoft.com",
            "localhost",
        ] {
            assert_eq!(routes.target(refused), None, "{refused}");
        }
    }
}
