//! `warden risk`: evaluate anomaly scoring on synthetic traffic.

use anyhow::Context;
use warden::risk::eval::{self, EvalOptions};

use super::output::{errln, outln};

#[derive(clap::Subcommand)]
pub enum RiskCommand {
    /// Replay a synthetic month of traffic with injected incidents through
    /// the scoring code and report detection and false alarms; exit 0 when
    /// every run meets its targets, 1 otherwise.
    Eval {
        /// Seed of the (first) run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Number of runs, with seeds SEED, SEED+1, ...
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// Days of traffic measured per run (after four weeks of history).
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Principals per run.
        #[arg(long, default_value_t = 50)]
        principals: u32,
        /// Print the report as JSON (an array when several seeds run).
        #[arg(long)]
        json: bool,
    },
}

/// `warden risk eval`: runs seeds SEED..SEED+SEEDS, prints each report
/// (or one JSON document), exits 1 unless every run met its targets.
pub fn run(command: RiskCommand) -> anyhow::Result<()> {
    let RiskCommand::Eval {
        seed,
        seeds,
        days,
        principals,
        json,
    } = command;
    let last = seed
        .checked_add(seeds - 1)
        .context("--seed plus --seeds is too large")?;
    let reports = (seed..=last)
        .map(|seed| {
            eval::run(&EvalOptions {
                seed,
                days,
                principals,
            })
            .map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<eval::Report>>>()?;
    if json {
        let out = match reports.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        outln!("{out}")?;
    } else {
        for report in &reports {
            outln!("{}", report.text())?;
        }
    }
    let failed: Vec<&eval::Report> = reports.iter().filter(|r| !r.targets_met).collect();
    for report in &failed {
        errln!(
            "warden: risk eval: seed {} missed its targets: {}",
            report.seed,
            if report.missed.is_empty() {
                "see the report".to_owned()
            } else {
                report.missed.join("; ")
            }
        );
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
