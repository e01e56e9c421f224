//! Test harness: a real `warden serve` process on a free port, real upstream
//! processes from `examples/`, and a real rmcp client that records what the
//! gateway relays to it.
#![allow(dead_code, deprecated)]

pub mod azmcp_routes;
pub mod facade;
pub mod gate;
pub mod inproc;
pub mod issuer;
pub mod planted;
pub mod raw;
pub mod replicas;

pub use inproc::InProcess;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use rmcp::model::*;
use rmcp::service::{NotificationContext, RequestContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData as McpError, ServiceExt};

/// Path of a binary built from `examples/`, building the examples once.
pub fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--examples", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
    let warden = PathBuf::from(env!("CARGO_BIN_EXE_warden"));
    warden
        .parent()
        .expect("target dir")
        .join("examples")
        .join(name)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until `child` listens on `port`: panics if it exits first or after
/// 60 s (generous: a loaded CI machine runs many tests at once).
pub fn wait_for_port(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the process meant to listen on port {port} exited ({status})");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on port {port}");
}

/// The demo upstream serving Streamable HTTP on a port it picks; kill it
/// when done.
pub fn demo_http(tag: &str) -> (Child, u16) {
    let mut command = Command::new(example("demo_upstream"));
    command.env("DEMO_TAG", tag);
    let (child, url) = spawn_listening(command, "demo_upstream");
    (child, port_of(&url))
}

/// Starts `command` (an example server) with `--http 127.0.0.1:0` and
/// reads the address it bound from its first stdout line,
/// `"{name} listening on {url}"`: no port is picked ahead, so none is raced
/// for. Panics if it exits or stays silent for 60 s.
pub fn spawn_listening(mut command: Command, name: &str) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .args(["--http", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name} printed no address"));
    let url = line
        .trim()
        .strip_prefix(&format!("{name} listening on "))
        .unwrap_or_else(|| panic!("unexpected first line from {name}: {line:?}"))
        .to_owned();
    (child, url)
}

/// The port of `http://HOST:PORT/...`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// The JSON-RPC messages in a response body (plain JSON or SSE `data:` lines).
pub fn messages(body: &str) -> Vec<serde_json::Value> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        return vec![value];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// The `server_info.name` a client was given at initialize.
pub fn server_name(client: &Client) -> String {
    client
        .peer_info()
        .and_then(|info| info.server_info.as_ref().map(|s| s.name.clone()))
        .unwrap_or_default()
}

/// The `/metrics` lines that start with one of `prefixes`, joined by `,`.
pub async fn metric_lines(base: &str, prefixes: &[&str]) -> String {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Polls `/metrics` until [`metric_lines`] equals `expected` (10 s at most).
pub async fn wait_for_metrics(base: &str, prefixes: &[&str], expected: &str) {
    let mut last = String::new();
    for _ in 0..200 {
        last = metric_lines(base, prefixes).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last, expected);
}

/// A `[upstreams.NAME]` table for the demo upstream over stdio.
pub fn demo_stdio(name: &str, tag: &str) -> String {
    format!(
        "[upstreams.{name}]\ncommand = {:?}\nenv = {{ DEMO_TAG = {tag:?} }}\n",
        example("demo_upstream").display().to_string()
    )
}

/// Paths written by `scripts/install-test-deps.sh` into `.deps/paths.env`.
pub fn deps() -> std::collections::HashMap<String, String> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".deps/paths.env");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/install-test-deps.sh (scripts/test.sh does) first",
            file.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// One entry of [`deps`]; panics naming it if missing.
pub fn dep(name: &str) -> String {
    deps().remove(name).unwrap_or_else(|| {
        panic!("{name} missing from .deps/paths.env; rerun scripts/install-test-deps.sh")
    })
}

/// The origin of the audit logs of test Wardens.
pub const AUDIT_ORIGIN: &str = "warden.test/audit";

/// Creates audit keys in `dir` (as `warden audit keygen` does) and returns
/// the `[store]` and `[audit]` tables that use them (the store is
/// `dir/warden.db`); more `[audit]` keys may follow the returned text.
pub fn audit_tables(dir: &Path) -> String {
    warden::audit::keygen(AUDIT_ORIGIN, &warden::audit::KeyFiles::in_dir(dir), true)
        .expect("audit keygen");
    "[store]\npath = \"warden.db\"\n\
     [audit]\nsigning_key = \"audit-signing.key\"\nhmac_key = \"audit-hmac.key\"\n"
        .to_owned()
}

/// The test default policy set: every call is allowed (tests of relaying,
/// audit and faults are not about policy).
pub const ALLOW_ALL_POLICY: &str =
    "@id(\"test-allow-all\")\npermit (principal, action, resource);\n";

/// Writes the allow-all policy set to `dir/policies` and returns the
/// `[policy]` table that uses it.
pub fn allow_all_policy(dir: &Path) -> String {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).expect("policy dir");
    std::fs::write(policies.join("allow.cedar"), ALLOW_ALL_POLICY).expect("write policy");
    "[policy]\ndir = \"policies\"\n".to_owned()
}

/// The body of a `[policy]` table that uses the repository's baseline
/// policies.
pub fn baseline_policy() -> String {
    format!(
        "dir = {:?}\n",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    )
}

/// What a test Warden starts with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup<'a> {
    /// More `[server]` keys.
    pub server_extra: &'a str,
    /// The body of `[identity]`.
    pub identity: &'a str,
    /// `[upstreams.NAME]` tables (and any other tables).
    pub upstreams: &'a str,
    /// More `[audit]` keys, and tables after them (e.g.
    /// `[audit.redaction.tools]`).
    pub audit_extra: &'a str,
    /// The body of `[policy]`; `None`: [`ALLOW_ALL_POLICY`].
    pub policy: Option<&'a str>,
}

impl Setup<'_> {
    /// A new directory with audit keys (made as by `warden audit keygen`),
    /// the policy set when it is the default, and `warden.toml`, whose
    /// store is `warden.db` there and whose `listen` is port 0.
    pub fn write(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = audit_tables(dir.path());
        let policy = match self.policy {
            Some(body) => format!("[policy]\n{body}\n"),
            None => allow_all_policy(dir.path()),
        };
        // `[audit]` extras may end in their own tables, so `[policy]` goes first.
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[identity]\n{}\n{policy}{state}{}\n{}",
            self.server_extra, self.identity, self.audit_extra, self.upstreams
        );
        std::fs::write(dir.path().join("warden.toml"), config).expect("write config");
        dir
    }
}

/// The port in the last "warden listening" line of a Warden's JSON log.
fn listening_port(log: &str) -> Option<u16> {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["fields"]["message"] == "warden listening; MCP at /mcp")?["fields"]
        ["address"]
        .as_str()?
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|address| address.port())
}

/// What the shared helpers need of a running Warden, in its own process
/// ([`Warden`]) or in this one ([`InProcess`]).
pub trait Served {
    /// Its MCP endpoint.
    fn url(&self) -> String;
}

impl Served for Warden {
    fn url(&self) -> String {
        Warden::url(self)
    }
}

/// A running `warden serve`, killed on drop.
pub struct Warden {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    stderr_path: PathBuf,
}

impl Warden {
    /// Starts Warden with `[server]` extras and upstream tables, without
    /// authentication (`allow_anonymous`); waits until it listens.
    pub fn start(server_extra: &str, upstreams: &str) -> Warden {
        Self::start_with_identity(server_extra, "allow_anonymous = true", upstreams)
    }

    /// Starts Warden with `[server]` extras, the body of the `[identity]`
    /// table, and upstream tables.
    pub fn start_with_identity(server_extra: &str, identity: &str, upstreams: &str) -> Warden {
        Self::start_with_audit(server_extra, identity, upstreams, "")
    }

    /// Like [`Warden::start_with_identity`], with extra `[audit]` keys (and
    /// tables after them, e.g. `[audit.redaction.tools]`). The audit keys are
    /// made by `warden audit keygen` in Warden's directory; the store is
    /// `warden.db` there.
    pub fn start_with_audit(
        server_extra: &str,
        identity: &str,
        upstreams: &str,
        audit_extra: &str,
    ) -> Warden {
        Self::launch(server_extra, identity, upstreams, audit_extra, None)
    }

    /// Like [`Warden::start_with_identity`], deciding with the policy set
    /// the body of `[policy]` names (e.g. [`baseline_policy`]) instead of
    /// the test default, which allows every call.
    pub fn start_with_policy(
        server_extra: &str,
        identity: &str,
        upstreams: &str,
        policy: &str,
    ) -> Warden {
        Self::launch(server_extra, identity, upstreams, "", Some(policy))
    }

    fn launch(
        server_extra: &str,
        identity: &str,
        upstreams: &str,
        audit_extra: &str,
        policy: Option<&str>,
    ) -> Warden {
        let dir = Setup {
            server_extra,
            identity,
            upstreams,
            audit_extra,
            policy,
        }
        .write();
        Self::launch_dir(dir)
    }

    /// Starts Warden on the `warden.toml` in `dir` (written by
    /// [`Setup::write`] and perhaps edited since); waits until it listens.
    pub fn launch_dir(dir: tempfile::TempDir) -> Warden {
        let stderr_path = dir.path().join("warden.log");
        let config_path = dir.path().join("warden.toml");
        let mut warden = Warden {
            child: Self::spawn(&config_path, &stderr_path),
            port: 0,
            dir,
            stderr_path,
        };
        warden.wait_healthy();
        warden
    }

    fn spawn(config_path: &Path, stderr_path: &Path) -> Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_path)
            .expect("log file");
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--config"])
            .arg(config_path)
            .env("RUST_LOG", "info,warden=debug")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn warden")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills Warden with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops Warden with SIGTERM (a clean shutdown) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for warden")
    }

    /// Starts Warden again on the same config and store (on a new port:
    /// use [`Warden::url`] again).
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.config_path(), &self.stderr_path);
        self.wait_healthy();
    }

    /// The store file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("warden.db")
    }

    /// The audit log's public key file.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("audit.pub")
    }

    /// Waits until the process logs the address it listens on (it binds
    /// port 0: no other process can take the port between a pick and the
    /// bind), and connects to it.
    fn wait_healthy(&mut self) {
        let started = self.log().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("warden exited early ({status}): {}", self.log());
            }
            if let Some(port) = listening_port(&self.log()[started..]) {
                self.port = port;
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("warden did not start: {}", self.log());
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Warden logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("warden.toml")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that is stopped when the test ends, even by a panic:
/// SIGTERM first, so a Warden stops what it started (a shared upstream
/// child outlives a SIGKILLed Warden), then SIGKILL after 5 s.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if terminated {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the client saw from the server side, besides responses.
#[derive(Default, Debug)]
pub struct Seen {
    pub progress: Vec<ProgressNotificationParam>,
    pub logs: Vec<LoggingMessageNotificationParam>,
    pub resource_updates: Vec<String>,
    pub tool_list_changed: usize,
    pub prompt_list_changed: usize,
    pub resource_list_changed: usize,
    pub elicitations: Vec<String>,
    pub samplings: Vec<String>,
    pub roots_requests: usize,
    /// Requests the server cancelled while this client was still answering.
    pub cancelled_by_server: Vec<String>,
}

/// An MCP client that answers elicitation ("Ada", or a decline when
/// `declines`), sampling ("42") and roots (`file:///work`), and records
/// every notification.
#[derive(Clone, Default)]
pub struct RecordingClient {
    pub seen: Arc<Mutex<Seen>>,
    /// Answer every elicitation with `decline`, as a user who says no.
    pub declines: bool,
}

impl RecordingClient {
    /// A client whose user declines every elicitation.
    pub fn declining() -> Self {
        Self {
            declines: true,
            ..Self::default()
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("seen lock")
    }
}

impl ClientHandler for RecordingClient {
    fn get_info(&self) -> ClientConfig {
        let capabilities = ClientCapabilities::builder()
            .enable_roots()
            .enable_sampling()
            .enable_elicitation()
            .build();
        ClientConfig::new(capabilities, Implementation::new("warden-tests", "0.0.1"))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let prompt = serde_json::to_string(&params.messages).unwrap_or_default();
        self.seen().samplings.push(prompt);
        Ok(CreateMessageResult::new(
            SamplingMessage::new(Role::Assistant, SamplingMessageContentBlock::text("42")),
            "test-model".into(),
        ))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.seen().roots_requests += 1;
        Ok(ListRootsResult::new(vec![Root::new("file:///work")]))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let message = serde_json::to_value(&request)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default();
        self.seen().elicitations.push(message.clone());
        if message.starts_with("Quick") {
            // A slow user: wait until the server gives up and cancels.
            context.ct.cancelled().await;
            self.seen().cancelled_by_server.push(message);
            return Err(McpError::internal_error("cancelled", None));
        }
        if self.declines {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        }
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(serde_json::json!({ "name": "Ada" })))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen().progress.push(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen().logs.push(params);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen().resource_updates.push(params.uri);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.seen().tool_list_changed += 1;
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.seen().prompt_list_changed += 1;
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.seen().resource_list_changed += 1;
    }
}

pub type Client = RunningService<RoleClient, RecordingClient>;

/// Connects a recording client to `url` (Streamable HTTP).
pub async fn connect(url: &str) -> (Client, RecordingClient) {
    connect_as(url, None).await
}

/// Connects a recording client to `url` with an optional bearer token.
pub async fn connect_as(url: &str, token: Option<&str>) -> (Client, RecordingClient) {
    connect_with(url, token, RecordingClient::default()).await
}

/// Connects `handler` to `url` with an optional bearer token.
pub async fn connect_with(
    url: &str,
    token: Option<&str>,
    handler: RecordingClient,
) -> (Client, RecordingClient) {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let client = handler
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("client connects through warden");
    (client, handler)
}

/// The text of a tool result's first content block.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// Calls `name` with JSON `args`.
pub async fn call(
    client: &Client,
    name: &str,
    args: serde_json::Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = args.as_object().cloned();
    client.call_tool(params).await
}

/// Polls `check` until it holds or 10 s pass.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Every record in the store, in order.
pub fn records(db: &Path) -> Vec<serde_json::Value> {
    let reader = warden::store::Reader::open(db).unwrap();
    let mut out = Vec::new();
    reader
        .for_each_record(0, |row| {
            out.push(serde_json::from_slice(&row.bytes).unwrap());
            Ok(())
        })
        .unwrap();
    out
}

/// Polls the store until `done` holds for its records (20 s at most).
pub async fn wait_for_records(
    db: &Path,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = records(db);
        if done(&all) || Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The request id a held call's tool error names.
pub fn request_id(message: &str) -> String {
    let start = message
        .find("JIT request ")
        .unwrap_or_else(|| panic!("no request id in {message}"))
        + "JIT request ".len();
    message[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A webhook receiver on loopback: its URL and the JSON bodies it received.
pub async fn webhook() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let bodies = bodies.clone();
            async move {
                bodies.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}
