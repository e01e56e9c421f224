//! `warden serve`: the gateway on `warden.toml`, over HTTP or stdio.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use warden::app;
use warden::config::Config;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML).
    #[arg(long, short, env = "WARDEN_CONFIG", default_value = "warden.toml")]
    config: PathBuf,
    /// Serve one MCP session on stdin/stdout instead of HTTP.
    #[arg(long)]
    stdio: bool,
}

/// Runs until SIGTERM or Ctrl-C (or, on stdio, until the client closes the
/// session), then shuts down cleanly.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    super::init_logging();
    super::runtime()?.block_on(async move {
        super::ignore_file_size_signal();
        let shutdown = CancellationToken::new();
        super::cancel_on_signal(shutdown.clone());
        let running = if args.stdio {
            app::run_stdio(config, shutdown).await?
        } else {
            let listeners = app::Listeners::bind(&config).await?;
            app::run(config, listeners, shutdown).await?
        };
        running.wait().await
    })
}
