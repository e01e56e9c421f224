//! How a batch reaches a receiver: an HTTPS POST (Logs Ingestion API,
//! OCSF), or octet-counted syslog frames on a TCP or TLS connection kept
//! open between batches.
//!
//! A transport answers `Ok` only when the receiver took the batch: an HTTP
//! `2xx`, or for syslog, every byte written and flushed to the connection
//! (plain and TLS syslog have no acknowledgement; see docs/SIEM.md). A
//! failure says why, never with a token or a URL's query, and carries the
//! receiver's `Retry-After` when it sent one.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::delivery::{read_some, retry_after};

/// Why a batch was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub detail: String,
    /// The receiver's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(detail: impl Into<String>) -> Failure {
        Failure {
            detail: detail.into(),
            retry_after: None,
        }
    }
}

/// Sends batches to one receiver.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends one batch; `Ok` once the receiver took it.
    async fn send(&mut self, body: &[u8]) -> Result<(), Failure>;
}

/// How an HTTP transport authenticates.
pub enum Auth {
    None,
    /// A fixed bearer token (read from a file at start).
    Bearer(String),
    /// A token for `scope` from Warden's Azure credential, asked for (and
    /// cached by the credential) before every batch.
    Azure {
        credential: Arc<dyn TokenCredential>,
        scope: String,
    },
}

/// POSTs each batch as `application/json`.
pub struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
    /// Also send `x-ms-client-request-id` (Azure).
    azure: bool,
    /// Bounds the token request too (the HTTP client bounds the rest).
    timeout: Duration,
}

impl Http {
    /// `extra_roots`: PEM certificates trusted besides the system's.
    pub fn new(
        url: reqwest::Url,
        auth: Auth,
        timeout: Duration,
        extra_roots: Option<&[u8]>,
    ) -> Result<Http, String> {
        let azure = matches!(auth, Auth::Azure { .. });
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = extra_roots {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
            if certificates.is_empty() {
                return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
            }
            builder = builder.tls_certs_merge(certificates);
        }
        let client = builder
            .build()
            .map_err(|e| format!("an HTTP client: {e}"))?;
        Ok(Http {
            client,
            url,
            auth,
            azure,
            timeout,
        })
    }
}

/// A reqwest error without the URL (whose query may hold a secret).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut detail = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

#[async_trait::async_trait]
impl Transport for Http {
    async fn send(&mut self, body: &[u8]) -> Result<(), Failure> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Azure { credential, scope } => {
                let token = tokio::time::timeout(
                    self.timeout,
                    credential.get_token(&[scope.as_str()], None),
                )
                .await
                .map_err(|_| {
                    Failure::new(format!("no token for {scope} within {:?}", self.timeout))
                })?
                .map_err(|e| Failure::new(format!("no token for {scope}: {e}")))?;
                request = request.bearer_auth(token.token.secret());
            }
        }
        if self.azure {
            request = request.header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
        }
        let answer = request
            .send()
            .await
            .map_err(|e| Failure::new(describe(&e.without_url())))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let after = retry_after(answer.headers());
        let text = read_some(answer).await;
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(512)
            .collect();
        Err(Failure {
            detail: format!("answered {status}: {}", text.trim()),
            retry_after: after,
        })
    }
}

/// A connection to a syslog receiver.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Conn for T {}

/// Octet-counted syslog frames over TCP, or TLS (RFC 5425).
pub struct Syslog {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    conn: Option<Box<dyn Conn>>,
}

impl Syslog {
    /// Plain TCP to `host:port`.
    pub fn tcp(host: String, port: u16, timeout: Duration) -> Syslog {
        Syslog {
            host,
            port,
            tls: None,
            timeout,
            conn: None,
        }
    }

    /// TLS to `host:port`, the certificate checked for `server_name`
    /// against the system's roots and `extra_roots` (PEM).
    pub fn tls(
        host: String,
        port: u16,
        server_name: &str,
        extra_roots: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Syslog, String> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(pem) = extra_roots {
            let blocks =
                pem::parse_many(pem).map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
            let certificates: Vec<CertificateDer<'static>> = blocks
                .into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(|b| CertificateDer::from(b.into_contents()))
                .collect();
            if certificates.is_empty() {
                return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| format!("not usable as a root certificate: {e}"))?;
            }
        }
        if roots.is_empty() {
            return Err(
                "no trusted root certificates: the system has none; name the receiver's CA with ca"
                    .into(),
            );
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| format!("{server_name:?} cannot name a certificate: {e}"))?;
        Ok(Syslog {
            host,
            port,
            tls: Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name)),
            timeout,
            conn: None,
        })
    }

    async fn connect(&self) -> Result<Box<dyn Conn>, Failure> {
        let target = format!("{}:{}", self.host, self.port);
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| Failure::new(format!("cannot connect to {target}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Failure::new(format!("TLS with {target}: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// Whether the open connection still looks usable: the receiver has
    /// not closed it (an end of stream or an error is waiting).
    fn alive(conn: &mut Box<dyn Conn>) -> bool {
        let mut byte = [0u8; 64];
        match conn.read(&mut byte).now_or_never() {
            None => true,
            // The receiver said something (syslog receivers do not); keep going.
            Some(Ok(n)) if n > 0 => true,
            Some(_) => false,
        }
    }
}

#[async_trait::async_trait]
impl Transport for Syslog {
    async fn send(&mut self, body: &[u8]) -> Result<(), Failure> {
        if let Some(conn) = &mut self.conn
            && !Self::alive(conn)
        {
            self.conn = None;
        }
        let timeout = self.timeout;
        let attempt = async {
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => self.connect().await?,
            };
            let written = async {
                conn.write_all(body).await?;
                conn.flush().await
            }
            .await;
            match written {
                Ok(()) => Ok(conn),
                Err(e) => Err(Failure::new(format!(
                    "writing to {}:{}: {e}",
                    self.host, self.port
                ))),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(conn)) => {
                self.conn = Some(conn);
                Ok(())
            }
            Ok(Err(failure)) => Err(failure),
            Err(_) => Err(Failure::new(format!(
                "{}:{} did not take the batch within {timeout:?}",
                self.host, self.port
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[tokio::test]
    async fn syslog_reconnects_after_the_receiver_closed_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut syslog = Syslog::tcp("127.0.0.1".into(), port, Duration::from_secs(5));
        // First connection: read one line, then close.
        let server = tokio::spawn(async move {
            let mut lines = Vec::new();
            for _ in 0..2 {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut reader = tokio::io::BufReader::new(tcp);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                lines.push(line);
            }
            lines
        });
        syslog.send(b"3 one\n").await.unwrap();
        // Wait until the receiver closed the first connection.
        let conn = syslog.conn.as_mut().unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
        syslog.send(b"3 two\n").await.unwrap();
        assert_eq!(server.await.unwrap(), ["3 one\n", "3 two\n"]);
    }

    #[tokio::test]
    async fn a_refused_connection_and_an_http_error_are_failures_with_details() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut syslog = Syslog::tcp("127.0.0.1".into(), port, Duration::from_secs(5));
        let failure = syslog.send(b"1 x").await.unwrap_err();
        assert!(
            failure
                .detail
                .starts_with(&format!("cannot connect to 127.0.0.1:{port}")),
            "{failure:?}"
        );
        let app = axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "7")],
                "busy\nnow",
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/ingest?sig=secret",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut http = Http::new(
            url.parse().unwrap(),
            Auth::Bearer("t".into()),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let failure = http.send(b"[]").await.unwrap_err();
        assert_eq!(failure.detail, "answered 503 Service Unavailable: busy now");
        assert_eq!(failure.retry_after, Some(Duration::from_secs(7)));
    }
}
