//! `warden check-config`: validate a configuration file (with its catalog,
//! policy set and risk table) and exit.

use std::path::PathBuf;

use anyhow::Context;
use warden::app;
use warden::config::Config;

use super::output::outln;

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file (TOML).
    file: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let file = args.file;
    let config = Config::load(&file)?;
    let (_, policy) = app::load_catalog_and_policy(&config)?;
    app::risk_stage(&config).with_context(|| file.display().to_string())?;
    let policies = policy.summary().policies.len();
    outln!(
        "{}: ok ({} upstream{}, {} polic{})",
        file.display(),
        config.upstreams.len(),
        if config.upstreams.len() == 1 { "" } else { "s" },
        policies,
        if policies == 1 { "y" } else { "ies" }
    )?;
    Ok(())
}
