//! Shared upstream children (`serve = "http"`): one child per upstream,
//! started with Warden and supervised by it, serving MCP Streamable HTTP on
//! a private address; every client session opens its own MCP session on it
//! (see [`super::UpstreamConn`]), so what the child asks of a client still
//! reaches the session that caused it.
//!
//! The supervisor starts the child with the address substituted for
//! `{socket}` or `{addr}` in its arguments and environment, waits until the
//! address answers HTTP, and then watches it. A child that exits fails the
//! calls in flight on it at once ([`Generation::exited`]) and every later
//! request of the sessions that were on it; the supervisor starts it again
//! after a backoff, and new sessions use the new child. On shutdown the
//! child is killed and its socket directory removed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::upstream::{ChildCount, INHERITED_ENV, http_client};
use crate::config::{Listen, UpstreamKind};
use crate::metrics::Metrics;

/// The first wait before a child that exited (or never served) is started
/// again; it doubles with each failure in a row, up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that served this long before it exited starts the backoff anew.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// How often a starting child's address is tried.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How long one such try may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of a child's stderr kept to explain why it did not start.
const STDERR_TAIL: usize = 5;
/// The longest Unix socket path (`sun_path` is 108 bytes on Linux).
const MAX_SOCKET_PATH: usize = 100;

/// The shared children of every `serve = "http"` upstream, by upstream
/// name. Cheap to clone; empty by default.
#[derive(Clone, Default)]
pub struct SharedServers {
    servers: Arc<HashMap<String, Arc<Shared>>>,
}

impl std::fmt::Debug for SharedServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.servers.keys()).finish()
    }
}

impl SharedServers {
    /// Starts the child of every shared upstream among `upstreams` and
    /// waits until each serves, at most `startup` each (they start side by
    /// side). An error names the upstream and why its first run did not
    /// serve; every child started is stopped again.
    pub async fn start(
        upstreams: &[(String, UpstreamKind)],
        startup: Duration,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let mut servers = HashMap::new();
        for (name, kind) in upstreams {
            let UpstreamKind::Shared {
                command,
                args,
                env,
                cwd,
                listen,
                mcp_path,
            } = kind
            else {
                continue;
            };
            let address = match listen {
                Listen::Unix => match socket_dir(name) {
                    Ok(dir) => Address::Unix { dir },
                    Err(error) => {
                        Self {
                            servers: Arc::new(servers),
                        }
                        .stop()
                        .await;
                        return Err(error);
                    }
                },
                Listen::Tcp => Address::Tcp,
            };
            let spec = Spec {
                name: name.clone(),
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                placeholder: listen.placeholder(),
                address,
                mcp_path: mcp_path.clone(),
            };
            servers.insert(name.clone(), Shared::spawn(spec, startup, metrics.clone()));
        }
        let started = Self {
            servers: Arc::new(servers),
        };
        let waits = started.servers.values().map(|shared| async move {
            shared
                .first_run()
                .await
                .map_err(|error| format!("upstream '{}': {error}", shared.name))
        });
        if let Err(error) = futures::future::try_join_all(waits).await {
            started.stop().await;
            return Err(error);
        }
        Ok(started)
    }

    /// The shared child of upstream `name`, if it has one.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Shared>> {
        self.servers.get(name)
    }

    /// For `/readyz`: whether upstream `name`'s child serves now (and
    /// where), or why not. `None` if it has no shared child.
    pub fn readiness(&self, name: &str) -> Option<Result<String, String>> {
        let shared = self.servers.get(name)?;
        Some(match &*shared.state.borrow() {
            State::Up(generation) => Ok(format!(
                "shared child (pid {}) serving at {}",
                generation
                    .pid
                    .map_or_else(|| "?".to_owned(), |p| p.to_string()),
                generation.address
            )),
            State::Starting => Err("shared child starting".to_owned()),
            State::Down(reason) => Err(format!("shared child down ({reason}); restarting")),
            State::Stopped => Err("stopped".to_owned()),
        })
    }

    /// Stops every child (killed, then waited for) and removes its socket
    /// directory. Sessions still on a child get an error naming it.
    pub async fn stop(&self) {
        for shared in self.servers.values() {
            shared.stop.cancel();
        }
        for shared in self.servers.values() {
            let task = shared.task.lock().expect("supervisor lock").take();
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }
}

/// One shared upstream child and its supervisor.
pub(crate) struct Shared {
    name: String,
    state: watch::Receiver<State>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Where a shared child is in its life.
#[derive(Clone)]
enum State {
    /// Started, not yet serving.
    Starting,
    /// Serving.
    Up(Arc<Generation>),
    /// Exited or never served; the supervisor starts it again after a
    /// backoff.
    Down(String),
    /// Warden is stopping.
    Stopped,
}

/// One run of a shared child: where it serves, and whether it still does.
pub(crate) struct Generation {
    /// The MCP endpoint (`http://localhost/PATH` on a Unix socket).
    pub url: String,
    /// The HTTP client that reaches it: the socket's own, or the pooled
    /// client of every remote upstream on TCP.
    pub client: reqwest::Client,
    /// Cancelled when this run of the child has exited.
    pub exited: CancellationToken,
    /// How it exited, set before `exited` is cancelled.
    pub exit: OnceLock<String>,
    pid: Option<u32>,
    /// The socket path or `127.0.0.1:PORT`.
    address: String,
}

impl Generation {
    /// How this run of the child exited (once [`Self::exited`]).
    pub fn exit_reason(&self) -> String {
        self.exit
            .get()
            .cloned()
            .unwrap_or_else(|| "exited".to_owned())
    }
}

impl Shared {
    fn spawn(spec: Spec, startup: Duration, metrics: Metrics) -> Arc<Self> {
        let (tx, state) = watch::channel(State::Starting);
        let stop = CancellationToken::new();
        let name = spec.name.clone();
        let task = tokio::spawn(supervise(spec, tx, stop.clone(), metrics, startup));
        Arc::new(Self {
            name,
            state,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// How the first run went: serving, or why not (the launch itself is
    /// bounded by the startup time).
    async fn first_run(&self) -> Result<(), String> {
        let mut state = self.state.clone();
        let first = state
            .wait_for(|s| !matches!(s, State::Starting))
            .await
            .map_err(|_| "its shared child's supervisor is gone".to_owned())?;
        match &*first {
            State::Up(_) => Ok(()),
            State::Down(reason) => Err(format!("its shared child did not serve: {reason}")),
            State::Starting | State::Stopped => {
                Err("its shared child is stopped: Warden is shutting down".to_owned())
            }
        }
    }

    /// The child's current run, once it serves (waiting at most `within`).
    pub async fn ready(&self, within: Duration) -> Result<Arc<Generation>, String> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| matches!(s, State::Up(_) | State::Stopped));
        match tokio::time::timeout(within, wait).await {
            Ok(Ok(state)) => match &*state {
                State::Up(generation) => Ok(generation.clone()),
                _ => Err("its shared child is stopped: Warden is shutting down".to_owned()),
            },
            Ok(Err(_)) => Err("its shared child's supervisor is gone".to_owned()),
            Err(_) => Err(match &*self.state.borrow() {
                State::Down(reason) => format!(
                    "its shared child is not serving ({reason}); Warden keeps restarting it"
                ),
                _ => format!("its shared child did not serve within {within:?}"),
            }),
        }
    }
}

/// Where a shared child listens.
enum Address {
    /// A socket in `dir` (mode 0700, made by Warden).
    Unix { dir: PathBuf },
    /// A free port on 127.0.0.1, picked anew for each run.
    Tcp,
}

/// How to start a shared child.
struct Spec {
    name: String,
    command: PathBuf,
    args: Vec<String>,
    env: std::collections::BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    placeholder: &'static str,
    address: Address,
    mcp_path: String,
}

impl Spec {
    fn socket(dir: &Path) -> PathBuf {
        dir.join("mcp.sock")
    }
}

/// A private directory for upstream `name`'s socket: made here, mode 0700,
/// under the temporary directory.
fn socket_dir(name: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!(
        "warden-{}-{name}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    let socket = Spec::socket(&dir);
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(format!(
            "upstream '{name}': the socket path {} is too long for a Unix socket; set TMPDIR to \
             a shorter directory or use listen = \"tcp\"",
            socket.display()
        ));
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("upstream '{name}': cannot make {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A child that serves, and what counts it.
struct Started {
    child: tokio::process::Child,
    generation: Arc<Generation>,
    _count: ChildCount,
}

async fn supervise(
    spec: Spec,
    state: watch::Sender<State>,
    stop: CancellationToken,
    metrics: Metrics,
    startup: Duration,
) {
    let name = spec.name.clone();
    let mut failures: u32 = 0;
    loop {
        let began = Instant::now();
        let launched = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            launched = launch(&spec, startup, &metrics) => launched,
        };
        match launched {
            Ok(mut started) => {
                let generation = started.generation.clone();
                tracing::info!(upstream = %name, pid = ?generation.pid, address = %generation.address, "shared upstream child serving");
                state.send_replace(State::Up(generation.clone()));
                let status = tokio::select! {
                    status = started.child.wait() => Some(status),
                    () = stop.cancelled() => None,
                };
                let Some(status) = status else {
                    let _ = generation.exit.set("stopped with Warden".to_owned());
                    generation.exited.cancel();
                    let _ = started.child.kill().await;
                    break;
                };
                let reason = match status {
                    Ok(status) => format!("the child exited: {status}"),
                    Err(error) => format!("the child could not be waited for: {error}"),
                };
                let _ = generation.exit.set(reason.clone());
                generation.exited.cancel();
                tracing::warn!(upstream = %name, pid = ?generation.pid, %reason, "shared upstream child exited; its sessions fail, and it is started again");
                state.send_replace(State::Down(reason));
                if began.elapsed() >= HEALTHY_RUN {
                    failures = 0;
                }
            }
            Err(reason) => {
                tracing::warn!(upstream = %name, %reason, "shared upstream child did not serve");
                state.send_replace(State::Down(reason));
            }
        }
        failures = failures.saturating_add(1);
        let backoff = BACKOFF_MIN
            .saturating_mul(1 << failures.min(10).saturating_sub(1))
            .min(BACKOFF_MAX);
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => break,
        }
    }
    state.send_replace(State::Stopped);
    if let Address::Unix { dir } = &spec.address {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Starts one run of the child and waits until its address answers HTTP
/// (any status), at most `startup`.
async fn launch(spec: &Spec, startup: Duration, metrics: &Metrics) -> Result<Started, String> {
    let (address, url, client) = match &spec.address {
        Address::Unix { dir } => {
            let socket = Spec::socket(dir);
            match std::fs::remove_file(&socket) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", socket.display())),
            }
            let client = reqwest::Client::builder()
                .unix_socket(socket.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| format!("an HTTP client for {}: {e}", socket.display()))?;
            (
                socket.display().to_string(),
                format!("http://localhost{}", spec.mcp_path),
                client,
            )
        }
        Address::Tcp => {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port on 127.0.0.1: {e}"))?
                .port();
            (
                format!("127.0.0.1:{port}"),
                format!("http://127.0.0.1:{port}{}", spec.mcp_path),
                http_client(),
            )
        }
    };
    let fill = |value: &String| value.replace(spec.placeholder, &address);
    let mut command = tokio::process::Command::new(&spec.command);
    command
        .args(spec.args.iter().map(fill))
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for key in INHERITED_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, fill(v))));
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", spec.command.display()))?;
    let count = ChildCount::new(metrics);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(log_lines(spec.name.clone(), stdout, None));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_lines(spec.name.clone(), stderr, Some(tail.clone())));
    }
    let last_words = || {
        let tail = tail.lock().expect("stderr tail");
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "; its stderr ended: {}",
                Vec::from(tail.clone()).join(" | ")
            )
        }
    };
    let deadline = Instant::now() + startup;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // Let the last lines of stderr arrive.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!(
                    "the child exited before it served ({status}){}",
                    last_words()
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("the child could not be waited for: {e}")),
        }
        let probe = client
            .get(&url)
            .header(http::header::ACCEPT, "text/event-stream")
            .timeout(PROBE_TIMEOUT)
            .send()
            .await;
        if probe.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the child did not serve HTTP at {address} within {startup:?}{}",
                last_words()
            ));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    let generation = Arc::new(Generation {
        url,
        client,
        exited: CancellationToken::new(),
        exit: OnceLock::new(),
        pid: child.id(),
        address,
    });
    Ok(Started {
        child,
        generation,
        _count: count,
    })
}

/// Logs a child's output line by line, keeping the last lines in `tail`.
async fn log_lines(
    upstream: String,
    output: impl tokio::io::AsyncRead + Unpin,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut lines = tokio::io::BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "warden::upstream", upstream = %upstream, "{line}");
        if let Some(tail) = &tail {
            let mut tail = tail.lock().expect("stderr tail");
            if tail.len() == STDERR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
