//! What the SIEM feed tests receive with: a real rsyslogd (Debian's,
//! installed by `scripts/install-test-deps.sh`) started by the test as a
//! TCP or TLS syslog receiver writing every message to a file, an OCSF
//! receiver over HTTP or HTTPS whose answers the test switches (take,
//! refuse with a status, hang), a throwaway CA, and polling with a bound.
//!
//! Included by the SIEM tests with `#[path = "common/siem.rs"]`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long a test waits for what the feed ships (generous: a loaded
/// machine runs many tests at once).
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `check` every 50 ms until it returns `Some`, for at most
/// [`PATIENCE`]; panics naming `what` (and the last state `describe`
/// gives) otherwise.
pub async fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check() {
            return found;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the metric line that starts with `series` (name and
/// labels, e.g. `warden_siem_cursor{sink="ocsf"}`), if it is there.
pub async fn metric(base: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `/metrics` until `series` satisfies `ok`; its value.
pub async fn wait_for_metric(base: &str, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + PATIENCE;
    let mut last = None;
    loop {
        last = metric(base, series).await.or(last);
        if let Some(value) = last
            && ok(value)
        {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {series}: last {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// A throwaway CA

/// A CA (PEM) and a certificate it signed for `localhost` and 127.0.0.1,
/// with its key; also written to `ca.pem`, `cert.pem` and `key.pem` in
/// `dir`.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.use_authority_key_identifier_extension = true;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
            dir,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .unwrap()
    }
}

// ---------------------------------------------------------------------------
// rsyslogd

/// A real rsyslogd receiving syslog over TCP (octet counting, as imtcp
/// accepts it by default) or TLS (the gtls driver), writing each message
/// as a line (`%rawmsg%`) to a file. Killed on drop.
pub struct Rsyslog {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

impl Rsyslog {
    /// Starts rsyslogd listening on 127.0.0.1: on `port`, or on a port it
    /// picks (`None`); with TLS when `pki` is given. Returns once it
    /// listens.
    pub fn start(port: Option<u16>, pki: Option<&Pki>) -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let tls_global = match pki {
            Some(pki) => format!(
                "\n       defaultNetstreamDriverCAFile=\"{}\"\n       defaultNetstreamDriverCertFile=\"{}\"\n       defaultNetstreamDriverKeyFile=\"{}\"",
                pki.dir.path().join("ca.pem").display(),
                pki.dir.path().join("cert.pem").display(),
                pki.dir.path().join("key.pem").display(),
            ),
            None => String::new(),
        };
        let module = match pki {
            Some(_) => {
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")"
            }
            None => "module(load=\"imtcp\")",
        };
        let config = format!(
            "global(workDirectory=\"{work}\" maxMessageSize=\"64k\"{tls_global})\n\
             {module}\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\" listenPortFileName=\"{port_file}\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
            work = path("work"),
            port = port.unwrap_or(0),
            port_file = path("port"),
            out = path("out.log"),
        );
        std::fs::write(dir.path().join("rsyslog.conf"), config).unwrap();
        let child = Command::new(crate::common::dep("WARDEN_TEST_RSYSLOGD"))
            .arg("-n")
            .arg("-f")
            .arg(dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
            .spawn()
            .expect("start rsyslogd");
        let mut rsyslog = Rsyslog {
            dir,
            child: Some(child),
            port: 0,
        };
        rsyslog.port = rsyslog.wait_listening(port);
        rsyslog
    }

    /// The port rsyslogd listens on: the one it wrote once it listened
    /// (it writes it only for a port it picked), or `port` once it accepts
    /// a connection there.
    fn wait_listening(&mut self, port: Option<u16>) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let port_file = self.dir.path().join("port");
        loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|p| p.trim().parse::<u16>().ok())
                .filter(|p| *p != 0)
            {
                return port;
            }
            if let Some(port) = port
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("rsyslogd exited ({status}): {}", self.output());
            }
            if Instant::now() > deadline {
                panic!("rsyslogd does not listen: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What rsyslogd printed.
    pub fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stdout.txt"), read("stderr.txt"))
    }

    /// The messages received so far, one per line.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("out.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stops rsyslogd (and waits for it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The CEF message of an RFC 5424 line (what follows the header's seven
/// fields: PRI+VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID,
/// STRUCTURED-DATA `-`).
pub fn cef_of(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..7 {
        rest = rest
            .split_once(' ')
            .unwrap_or_else(|| panic!("not an RFC 5424 line: {line}"))
            .1;
    }
    rest
}

/// The extension value `key` of a CEF message.
pub fn cef_field(cef: &str, key: &str) -> Option<String> {
    warden::siem::cef::parse(cef)?.get(key).map(str::to_owned)
}

// ---------------------------------------------------------------------------
// An OCSF receiver

/// What the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `200`, the batch kept.
    Take,
    /// This status, the batch not kept.
    Refuse(u16),
    /// No answer at all, ever (the connection stays open).
    Hang,
}

#[derive(Debug)]
struct Received {
    mode: Mode,
    /// The events of every batch taken, in order.
    events: Vec<Value>,
    attempts: u64,
    hung: u64,
    authorization: Vec<String>,
}

/// An HTTP(S) server on 127.0.0.1 taking OCSF batches (JSON arrays).
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn take(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = {
        let mut received = received.lock().unwrap();
        received.attempts += 1;
        if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            received.authorization.push(value.to_owned());
        }
        if received.mode == Mode::Hang {
            received.hung += 1;
        }
        received.mode
    };
    match mode {
        Mode::Take => {
            let Ok(Value::Array(events)) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "not a JSON array").into_response();
            };
            received.lock().unwrap().events.extend(events);
            StatusCode::OK.into_response()
        }
        Mode::Refuse(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Mode::Hang => std::future::pending().await,
    }
}

impl Receiver {
    /// A receiver in `mode`, over HTTPS with `pki`'s certificate, else
    /// plain HTTP.
    pub async fn start(mode: Mode, pki: Option<&Pki>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received {
            mode,
            events: Vec::new(),
            attempts: 0,
            hung: 0,
            authorization: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(take)
            .with_state(received.clone());
        let (task, url) = match pki {
            None => (
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
                format!("http://127.0.0.1:{}/ingest", address.port()),
            ),
            Some(pki) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(pki.server_config()));
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
                (task, format!("https://localhost:{}/ingest", address.port()))
            }
        };
        Receiver {
            url,
            received,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.received.lock().unwrap().mode = mode;
    }

    /// Every event of the batches taken, in order.
    pub fn events(&self) -> Vec<Value> {
        self.received.lock().unwrap().events.clone()
    }

    /// Requests received, whatever the answer.
    pub fn attempts(&self) -> u64 {
        self.received.lock().unwrap().attempts
    }

    /// Requests left without an answer.
    pub fn hung(&self) -> u64 {
        self.received.lock().unwrap().hung
    }

    /// The `Authorization` headers received.
    pub fn authorization(&self) -> Vec<String> {
        self.received.lock().unwrap().authorization.clone()
    }
}

/// The sequence numbers of OCSF events (`metadata.sequence`), in order;
/// a gap event counts as `None`.
pub fn ocsf_seqs(events: &[Value]) -> Vec<Option<u64>> {
    events
        .iter()
        .map(|e| e["metadata"]["sequence"].as_u64())
        .collect()
}

/// The sequence numbers of the store's records, in order.
pub fn stored_seqs(db: &Path) -> Vec<u64> {
    crate::common::records(db)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}
