//! `warden dev`: the product on embedded defaults, and its helpers (`warden
//! dev token`, the sample upstream it starts).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use warden::app::dev::{DevListeners, DevOptions, RunningDev};
use warden::dev::azmcp;
use warden::identity::dev::{DevIssuer, TokenOptions};

use super::output::{errln, outln};

#[derive(clap::Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: Option<DevCommand>,
    /// Address of the gateway.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// Address of the local token issuer (discovery document, JWKS,
    /// authorization and token endpoints).
    #[arg(long, default_value = warden::dev::ISSUER_LISTEN)]
    issuer_listen: SocketAddr,
    /// Address of the ARM simulator the built-in Azure tools call.
    #[arg(long, default_value = warden::dev::ARM_LISTEN)]
    arm_listen: SocketAddr,
    /// Directory for all state of `warden dev` (issuer key included).
    #[arg(long, default_value = ".warden-dev", global = true)]
    data_dir: PathBuf,
    /// Directory of Cedar policies (default: DATA_DIR/policies, created
    /// with the baseline policies).
    #[arg(long)]
    policies: Option<PathBuf>,
    /// Register a redirect URI of the dev client with the issuer, for
    /// sign-ins through its authorization endpoint (repeatable; https, or
    /// http on a loopback host, where any port matches).
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Do not make Warden the MCP clients' OAuth authorization server (the
    /// facade in front of the dev issuer); clients then bring the dev
    /// issuer's tokens only.
    #[arg(long)]
    no_oauth: bool,
    /// The official Azure MCP Server's executable (azmcp), run behind
    /// Warden as the upstream `azmcp`, offline through the egress proxy
    /// (default: the copy scripts/install-test-deps.sh puts under .deps/
    /// in the working directory, else azmcp on PATH).
    #[arg(long, value_name = "PATH", conflicts_with = "no_azure_mcp")]
    azure_mcp: Option<PathBuf>,
    /// Do not run the Azure MCP Server, even when one is found.
    #[arg(long)]
    no_azure_mcp: bool,
    /// How the Azure MCP Server runs: `http`, one azmcp for every session,
    /// serving MCP over HTTP on a private Unix socket; or `stdio`, one
    /// azmcp per session (about 100 MB each).
    #[arg(long, value_name = "MODE", default_value = "http", value_parser = parse_serve)]
    azure_mcp_serve: azmcp::Serve,
}

/// `--azure-mcp-serve`: `http` or `stdio`.
fn parse_serve(value: &str) -> Result<azmcp::Serve, String> {
    match value {
        "http" => Ok(azmcp::Serve::Http),
        "stdio" => Ok(azmcp::Serve::Stdio),
        other => Err(format!(
            "{other:?}: `http` (one azmcp shared by every session) or `stdio` (one per session)"
        )),
    }
}

#[derive(clap::Subcommand)]
enum DevCommand {
    /// Print a token signed by the dev issuer.
    Token(Box<TokenArgs>),
    /// Serve the sample upstream on stdin/stdout (started by `warden dev`).
    #[command(hide = true)]
    SampleUpstream,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// User name (upn); for --app, the application's display name.
    #[arg(long, default_value = "dev-user")]
    user: String,
    /// Group object id or name (repeatable).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// App role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Mark the sign-in as multi-factor (v1 `amr` contains `mfa`).
    #[arg(long)]
    mfa: bool,
    /// Satisfied authentication context id, e.g. c1 (repeatable).
    #[arg(long)]
    acrs: Vec<String>,
    /// An app-only token (no user, no scopes).
    #[arg(long)]
    app: bool,
    /// Lifetime, e.g. 1h or 15m.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Base URL of the running dev issuer (it is the token's issuer).
    #[arg(long, default_value = "http://127.0.0.1:8788")]
    issuer_url: String,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    match args.command {
        Some(DevCommand::Token(token)) => mint(&args.data_dir, *token),
        Some(DevCommand::SampleUpstream) => {
            super::init_logging();
            super::runtime()?
                .block_on(warden::dev::sample::serve_stdio())
                .context("sample upstream")
        }
        None => dev(args),
    }
}

/// `warden dev token`.
fn mint(data_dir: &std::path::Path, args: TokenArgs) -> anyhow::Result<()> {
    let mut issuer = DevIssuer::load_or_create(data_dir)?;
    issuer.set_base_url(&args.issuer_url);
    let options = TokenOptions {
        user: args.user,
        groups: args.groups,
        roles: args.roles,
        mfa: args.mfa,
        acrs: args.acrs,
        app: args.app,
        ttl: args.ttl.into(),
        ..TokenOptions::default()
    };
    outln!("{}", issuer.mint(&options)?)?;
    Ok(())
}

/// `warden dev`: the dev issuer, the ARM simulator, the egress proxy and
/// the gateway until SIGTERM or Ctrl-C.
fn dev(args: DevArgs) -> anyhow::Result<()> {
    let azure_mcp = if args.no_azure_mcp {
        None
    } else {
        let cwd = std::env::current_dir().context("reading the working directory")?;
        azmcp::find(
            args.azure_mcp.as_deref(),
            &cwd,
            std::env::var_os("PATH").as_deref(),
        )
        .map_err(anyhow::Error::msg)?
    };
    let options = DevOptions {
        data_dir: args.data_dir,
        policies: args.policies,
        executable: std::env::current_exe().context("locating the warden executable")?,
        oauth: !args.no_oauth,
        azure_mcp: azure_mcp.as_ref().map(|found| found.path.clone()),
        azure_mcp_serve: args.azure_mcp_serve,
    };
    super::init_logging();
    super::runtime()?.block_on(async move {
        super::ignore_file_size_signal();
        let shutdown = CancellationToken::new();
        super::cancel_on_signal(shutdown.clone());
        let listeners =
            DevListeners::bind(args.listen, args.issuer_listen, args.arm_listen).await?;
        let running = warden::app::dev::start(options, listeners, shutdown).await?;
        for uri in &args.redirect_uris {
            if let Err(error) = running.issuer.allow_redirect(uri) {
                let _ = running.stop().await;
                return Err(error.into());
            }
        }
        banner(&running, !args.no_oauth);
        azure_mcp_banner(
            &running,
            azure_mcp.as_ref(),
            args.no_azure_mcp,
            args.azure_mcp_serve,
        );
        running.wait().await
    })
}

/// What `warden dev` prints once it serves.
fn banner(dev: &RunningDev, oauth_asked: bool) {
    // The mint command works as printed (pasted into a shell): this very
    // executable, and the running issuer's URL, which is the minted token's
    // issuer (the default URL is wrong with `--issuer-listen`).
    let warden = std::env::current_exe()
        .map(|exe| exe.display().to_string())
        .unwrap_or_else(|_| "warden".to_owned());
    let mint = format!(
        "{} dev token --issuer-url {} --data-dir {} --user alice --role Reader",
        shell_word(&warden),
        shell_word(&dev.issuer_url),
        shell_word(&dev.data_dir.display().to_string()),
    );
    let names: Vec<String> = dev
        .personas
        .iter()
        .map(|(p, _)| format!("{} ({})", p.name, p.roles.join(", ")))
        .collect();
    errln!(
        "warden dev\n  MCP:        {}\n  admin:      {}/admin/ (page), {}/admin/api/requests (API, warden jit)\n  issuer:     {}\n  ARM (sim):  {}\n  \
         state:      {}\n  policies:   {}\n  tokens:     {} in {}\n  \
         use one:    Authorization: Bearer $(jq -r .personas.developer.token {})\n  \
         mint more:  {mint}\n              (add --mfa for a multi-factor sign-in; --help for the rest)",
        dev.mcp_url,
        dev.base_url,
        dev.base_url,
        dev.issuer_url,
        dev.arm_url,
        dev.data_dir.display(),
        dev.policies.display(),
        names.join(", "),
        dev.dev_json.display(),
        dev.dev_json.display(),
    );
    match &dev.oauth_issuer {
        Some(issuer) => errln!(
            "  OAuth:      Warden is the authorization server ({issuer}, mode both; --no-oauth turns it off)\n  \
             clients:    point an MCP client at {}: the browser shows Warden's consent page,\n              \
             then the dev issuer's persona picker (the persona tokens above keep working)",
            dev.mcp_url,
        ),
        None if oauth_asked => errln!(
            "  OAuth:      off (Warden is the clients' authorization server only on a loopback --listen address)"
        ),
        None => {}
    }
    let redirect_uris = dev.issuer.redirect_uris();
    if !redirect_uris.is_empty() {
        errln!(
            "  sign-in:    {}/{}/oauth2/v2.0/authorize (client {}; redirect URIs {})",
            dev.issuer_url,
            warden::identity::dev::DEV_TENANT,
            warden::identity::dev::DEV_CONFIDENTIAL_CLIENT,
            redirect_uris.join(", "),
        );
    }
}

/// What `warden dev` prints about the egress proxy and the Azure MCP
/// Server.
fn azure_mcp_banner(
    dev: &RunningDev,
    found: Option<&azmcp::Found>,
    off: bool,
    serve: azmcp::Serve,
) {
    use warden::dev::proxy::{ARM_HOST, LOGIN_HOST, VAULT_SUFFIX};
    errln!(
        "  egress:     {} (HTTPS_PROXY; serves {ARM_HOST}, {LOGIN_HOST} and *{VAULT_SUFFIX}, \
         refuses the rest; CA {})",
        dev.proxy_url,
        dev.ca_file.display(),
    );
    match found {
        Some(found) => errln!(
            "  Azure MCP:  {} (from {}) as upstream {}: tools {}__<tool>, signed in as {}, \
             offline through the egress proxy; {}",
            found.path.display(),
            found.source,
            azmcp::UPSTREAM,
            azmcp::UPSTREAM,
            warden::identity::dev::DEV_AZMCP_CLIENT_NAME,
            match serve {
                azmcp::Serve::Http => "one azmcp for every session (--azure-mcp-serve http)",
                azmcp::Serve::Stdio => "one azmcp per session (--azure-mcp-serve stdio)",
            },
        ),
        None if off => errln!("  Azure MCP:  off (--no-azure-mcp)"),
        None => errln!(
            "  Azure MCP:  not found; to run the official Azure MCP Server behind Warden, run \
             {} or pass --azure-mcp PATH",
            azmcp::INSTALL_SCRIPT,
        ),
    }
}

/// `word` as one POSIX shell word: as it is when it needs no quoting, else
/// in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("http://127.0.0.1:8788"), "http://127.0.0.1:8788");
        assert_eq!(shell_word(".warden-dev"), ".warden-dev");
        assert_eq!(shell_word("/tmp/my dir"), "'/tmp/my dir'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
