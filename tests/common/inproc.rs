//! Warden in the test process: [`InProcess`] runs `warden::app::run` on a
//! listener bound to port 0, with the configuration [`Setup`] writes for the
//! process harness ([`super::Warden`]), on its own runtime and threads (so a
//! test that blocks its own runtime does not stall Warden).
//!
//! Use it unless the test is about the binary itself: its command line,
//! signals, `kill -9`, exit codes, process limits, or the stdio front.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden::app::{self, Listeners};
use warden::config::Config;

use super::{Served, Setup};

/// A Warden running in this process, stopped on drop.
pub struct InProcess {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Kept open while Warden is stopped, so the port stays this one's.
    listener: std::net::TcpListener,
    instance: Option<Instance>,
}

/// One run of Warden, from start to stop.
struct Instance {
    shutdown: CancellationToken,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Warden with `[server]` extras and upstream tables, without
    /// authentication (`allow_anonymous`).
    pub fn start(server_extra: &str, upstreams: &str) -> InProcess {
        Self::start_with_identity(server_extra, "allow_anonymous = true", upstreams)
    }

    /// Warden with `[server]` extras, the body of the `[identity]` table,
    /// and upstream tables.
    pub fn start_with_identity(server_extra: &str, identity: &str, upstreams: &str) -> InProcess {
        Self::start_with_audit(server_extra, identity, upstreams, "")
    }

    /// Like [`InProcess::start_with_identity`], with extra `[audit]` keys
    /// (and tables after them).
    pub fn start_with_audit(
        server_extra: &str,
        identity: &str,
        upstreams: &str,
        audit_extra: &str,
    ) -> InProcess {
        Self::launch(Setup {
            server_extra,
            identity,
            upstreams,
            audit_extra,
            policy: None,
        })
    }

    /// Like [`InProcess::start_with_identity`], deciding with the policy set
    /// the body of `[policy]` names instead of the test default.
    pub fn start_with_policy(
        server_extra: &str,
        identity: &str,
        upstreams: &str,
        policy: &str,
    ) -> InProcess {
        Self::launch(Setup {
            server_extra,
            identity,
            upstreams,
            audit_extra: "",
            policy: Some(policy),
        })
    }

    /// Warden on `setup`.
    pub fn launch(setup: Setup<'_>) -> InProcess {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        Self::launch_on(listener, setup)
    }

    /// Warden on `setup`, serving on `listener` (bound by the test, which
    /// needed its port in the configuration, e.g. for a public URL).
    pub fn launch_on(listener: std::net::TcpListener, setup: Setup<'_>) -> InProcess {
        Self::launch_dir(listener, setup.write())
    }

    /// Warden on the `warden.toml` in `dir` (written by [`Setup::write`]
    /// and perhaps edited since).
    pub fn launch_dir(listener: std::net::TcpListener, dir: tempfile::TempDir) -> InProcess {
        let port = listener.local_addr().expect("local address").port();
        let mut warden = InProcess {
            port,
            dir,
            listener,
            instance: None,
        };
        warden.run();
        warden
    }

    /// Starts Warden on the config file; panics with its log if it does not
    /// start.
    fn run(&mut self) {
        let config = Config::load(&self.config_path()).expect("the test config loads");
        let listener = self.listener.try_clone().expect("clone the listener");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let log = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("log file"),
        );
        let shutdown = CancellationToken::new();
        let (started, start) = mpsc::channel::<Result<(), String>>();
        let stop = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("warden-{}", self.port))
            .spawn(move || serve(config, listener, log, stop, started))
            .expect("spawn the Warden thread");
        let result = start.recv();
        self.instance = Some(Instance { shutdown, thread });
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("warden did not start: {error}\n{}", self.log()),
            Err(_) => {
                let outcome = self.stop();
                panic!("the Warden thread ended: {outcome:?}\n{}", self.log())
            }
        }
    }

    /// Stops Warden (as SIGTERM does: the front, the background tasks,
    /// then the audit log) and waits for it; its result.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(instance) = self.instance.take() else {
            return Ok(());
        };
        instance.shutdown.cancel();
        match instance.thread.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the Warden thread panicked"),
        }
    }

    /// Stops Warden and starts it again on the same config, store and
    /// port.
    pub fn restart(&mut self) {
        self.stop().expect("a clean stop before the restart");
        self.run();
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The store file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("warden.db")
    }

    /// The audit log's public key file.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("audit.pub")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("warden.toml")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything Warden logged so far (JSON lines, as the binary writes
    /// them when stderr is not a terminal).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("warden.log")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl Served for InProcess {
    fn url(&self) -> String {
        InProcess::url(self)
    }
}

/// The Warden thread: a runtime of its own whose threads log to `log`,
/// `app::run`, then waiting for the shutdown.
fn serve(
    config: Config,
    listener: std::net::TcpListener,
    log: Arc<std::fs::File>,
    shutdown: CancellationToken,
    started: mpsc::Sender<Result<(), String>>,
) -> anyhow::Result<()> {
    let _logging = tracing::subscriber::set_default(subscriber(log.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // Lives as long as the thread: the runtime's threads log here.
            std::mem::forget(tracing::subscriber::set_default(subscriber(log.clone())));
        })
        .build()?;
    runtime.block_on(async move {
        match start(config, &listener, shutdown).await {
            Ok(running) => {
                let _ = started.send(Ok(()));
                running.wait().await
            }
            Err(error) => {
                let _ = started.send(Err(format!("{error:#}")));
                Err(error)
            }
        }
    })
}

/// `app::run` on `listener`, retried while the store is still locked by
/// the previous run of the same Warden (its writer thread may end just
/// after the stop).
async fn start(
    config: Config,
    listener: &std::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<app::Running> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listeners = Listeners {
            http: tokio::net::TcpListener::from_std(listener.try_clone()?)?,
        };
        match app::run(config.clone(), listeners, shutdown.clone()).await {
            Err(error)
                if format!("{error:#}").contains("in use by another Warden process")
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            result => return result,
        }
    }
}

/// The subscriber of an in-process Warden: JSON lines into its log file,
/// at the level the process harness asks for.
fn subscriber(log: Arc<std::fs::File>) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,warden=debug"))
        .with_writer(log)
        .json()
        .finish()
}
