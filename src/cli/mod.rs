//! The subcommands of `warden`, one file per group. `main.rs` parses the
//! arguments and calls the group's `run`; the servers themselves are built
//! by [`warden::app`].

pub mod access;
pub mod audit;
pub mod check_config;
pub mod dev;
pub mod jit;
pub mod output;
pub mod policy;
pub mod policy_change;
pub mod report;
pub mod response;
pub mod risk;
pub mod serve;

use std::io::IsTerminal;

use anyhow::Context;

/// The log a report reads: `--db` (a SQLite file or a `postgres://` URL)
/// or `--bundle` (an export bundle directory).
pub fn log_source(
    db: Option<String>,
    bundle: Option<std::path::PathBuf>,
) -> anyhow::Result<warden::audit::source::Source> {
    use warden::audit::source::Source;
    match (db, bundle) {
        (Some(db), _) if db.is_empty() => {
            anyhow::bail!("--db: name a SQLite file or a postgres:// URL")
        }
        (Some(db), _) => Ok(Source::Store(warden::store::Location::parse(&db))),
        (None, Some(dir)) => Ok(Source::Bundle(dir)),
        (None, None) => anyhow::bail!("give --db or --bundle"),
    }
}

/// The runtime of the async subcommands.
///
/// Its threads get 8 MiB of stack instead of tokio's 2: a call's future
/// holds every stage's state, and unoptimised builds lay it out on the
/// stack several times over as it is polled. Only the pages touched are
/// resident.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .context("starting the async runtime")
}

/// Logs go to stderr (stdout may be the stdio MCP transport): JSON when
/// stderr is not a terminal. `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A log that cannot be written (disk full, file-size limit) must not
    // take calls down: tracing's fallback report of a failed write is an
    // `eprint!`, which panics the logging task when stderr fails too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// A write past a file-size limit must fail with an error (and the call be
/// refused), not kill the process: handling SIGXFSZ turns it into EFBIG.
pub fn ignore_file_size_signal() {
    #[cfg(target_os = "linux")]
    {
        const SIGXFSZ: i32 = 25;
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ))
        {
            tokio::spawn(async move { while signal.recv().await.is_some() {} });
        }
    }
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C (in the background).
pub fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
