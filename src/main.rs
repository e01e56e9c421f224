//! The `warden` command: parses the arguments and runs the subcommand (see
//! `cli/`); the servers are built by `warden::app`.

mod cli;

use clap::{Parser, Subcommand};

use cli::output::errln;

/// mimalloc instead of the system allocator: a call allocates and frees
/// many small buffers across threads (JSON, Cedar values, HTTP), where
/// glibc's allocator spent about a quarter of Warden's CPU under load
/// (`BENCHMARKS.md`, "Where a call's time goes"). Built without its
/// transparent huge pages (`no_thp`): the first touch of a fresh 2 MiB
/// page stalled the call that made it for milliseconds (`BENCHMARKS.md`,
/// "No huge pages in the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Security gateway for MCP tool servers that manage Azure"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(cli::serve::ServeArgs),
    /// Run Warden on embedded defaults: the gateway, a local token issuer,
    /// and the sample upstream.
    Dev(cli::dev::DevArgs),
    /// Cedar policies: validate, run the policy tests, explain a decision;
    /// propose, approve, apply and roll back sets (through the admin API of
    /// a running Warden).
    Policy {
        #[command(subcommand)]
        command: cli::policy::PolicyCommand,
    },
    /// Just-in-time approvals: list, show, approve, deny, revoke, cancel
    /// (through the admin API of a running Warden).
    Jit(cli::jit::JitArgs),
    /// The audit log: keys, verification, export, live tail.
    Audit {
        #[command(subcommand)]
        command: cli::audit::AuditCommand,
    },
    /// Anomaly scoring: evaluate it on synthetic traffic, replay recorded
    /// history through it and the response rules.
    Risk {
        #[command(subcommand)]
        command: cli::risk::RiskCommand,
    },
    /// Automatic responses: incidents, suspended principals, blocked
    /// networks; acknowledge, close, lift, unblock (through the admin API
    /// of a running Warden).
    Response(cli::response::ResponseArgs),
    /// Access reviews: what roles and principals were allowed against
    /// what they used, and a least-privilege recommendation.
    Access {
        #[command(subcommand)]
        command: cli::access::AccessCommand,
    },
    /// Compliance reports from the audit log.
    Report {
        #[command(subcommand)]
        command: cli::report::ReportCommand,
    },
    /// Validate a configuration file and exit.
    CheckConfig(cli::check_config::CheckConfigArgs),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Dev(args) => cli::dev::run(args),
        Command::Policy { command } => cli::policy::run(command),
        Command::Jit(args) => cli::jit::run(args),
        Command::Audit { command } => cli::audit::run(command),
        Command::Risk { command } => cli::risk::run(command),
        Command::Response(args) => cli::response::run(args),
        Command::Access { command } => cli::access::run(command),
        Command::Report { command } => cli::report::run(command),
        Command::CheckConfig(args) => cli::check_config::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            errln!("warden: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
