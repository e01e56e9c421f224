//! The feature-complete sample upstream as its own program, for the
//! integration tests and benchmarks (the same server `warden dev` runs; see
//! `warden::dev::sample`).
//!
//! ```text
//! demo_upstream                       # MCP over stdio
//! demo_upstream --http 127.0.0.1:PORT # MCP Streamable HTTP at /mcp; prints
//!                                     #   "demo_upstream listening on http://ADDR/mcp"
//!                                     #   (port 0: a free one)
//! demo_upstream --http-socket PATH    # MCP Streamable HTTP at /mcp on a
//!                                     #   Unix socket
//! ```
//!
//! `DEMO_TAG` (env) is echoed by the `whoami` tool so tests can tell
//! processes apart.

use std::io::IsTerminal;
use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Feature-rich MCP upstream for Warden's tests")]
struct Cli {
    /// Serve MCP Streamable HTTP at /mcp on this address instead of stdio.
    #[arg(long, value_name = "ADDR", conflicts_with = "http_socket")]
    http: Option<SocketAddr>,
    /// Serve MCP Streamable HTTP at /mcp on this Unix socket instead.
    #[arg(long, value_name = "PATH")]
    http_socket: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    if let Some(path) = cli.http_socket {
        return warden::dev::sample::serve_http_unix(&path).await;
    }
    match cli.http {
        Some(addr) => {
            warden::dev::sample::serve_http_then(addr, |bound| {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "demo_upstream listening on http://{bound}/mcp")?;
                stdout.flush()
            })
            .await
        }
        None => warden::dev::sample::serve_stdio().await,
    }
}
