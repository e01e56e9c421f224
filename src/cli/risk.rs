//! `warden risk`: evaluate anomaly scoring on synthetic traffic, and
//! replay recorded history through scoring and the response rules.

use std::path::PathBuf;

use anyhow::Context;
use warden::response::ResponseConfig;
use warden::risk::eval::{self, EvalOptions};
use warden::risk::replay::{self, Format, Input};

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
        /// A warden.toml whose `[response]` rules the month is run
        /// through (default: the baseline rules); nothing else of it is
        /// read.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the report as JSON (an array when several seeds run).
        #[arg(long)]
        json: bool,
    },
    /// Replay recorded calls (Warden's audit export, Azure Activity Log
    /// exports, or the replay's own JSON Lines; docs/REPLAY.md) through the
    /// scoring and response code, in time order, and report the alerts and
    /// the responses that would have fired, per principal and hour. Exit 0
    /// once replayed; 2 when an input or the configuration is unreadable.
    Replay {
        /// A file of events (`-`: standard input) or a Warden export
        /// bundle directory; repeat, or list several, to merge them.
        #[arg(long = "events", value_name = "FILE", required = true, num_args = 1..)]
        events: Vec<PathBuf>,
        /// The inputs' format (`auto`: told from each one's first record).
        #[arg(long, value_enum, default_value_t = Format::Auto)]
        format: Format,
        /// A warden.toml whose `[risk]` and `[response]` apply (nothing
        /// else of it is read); default: the defaults and the baseline
        /// rules.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A geo table (CSV of network,country,asn) for countries and
        /// networks; overrides `risk.geo`.
        #[arg(long, value_name = "CSV")]
        geo: Option<PathBuf>,
        /// Print the report as JSON (docs/REPLAY.md).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `warden risk` subcommand.
pub fn run(command: RiskCommand) -> anyhow::Result<()> {
    match command {
        RiskCommand::Eval {
            seed,
            seeds,
            days,
            principals,
            config,
            json,
        } => run_eval(seed, seeds, days, principals, config, json),
        RiskCommand::Replay {
            events,
            format,
            config,
            geo,
            json,
        } => run_replay(events, format, config, geo, json),
    }
}

/// `warden risk replay`: prints the report (text or JSON); exit 2 on
/// unreadable input, nothing printed on stdout.
fn run_replay(
    events: Vec<PathBuf>,
    format: Format,
    config: Option<PathBuf>,
    geo: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    if events.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
        anyhow::bail!("--events: standard input (-) can be read once");
    }
    let mut options = replay::Options {
        geo,
        ..replay::Options::default()
    };
    if let Some(path) = &config {
        match replay::load_config(path) {
            Ok((risk, response)) => {
                options.risk = risk;
                options.response = response;
            }
            Err(error) => {
                errln!("warden: risk replay: --config {error}");
                std::process::exit(2);
            }
        }
    }
    let inputs: Vec<Input> = events.into_iter().map(Input::new).collect();
    let report = match replay::replay(&inputs, format, &options) {
        Ok(report) => report,
        Err(error) => {
            errln!("warden: risk replay: {error}");
            std::process::exit(2);
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!("{}", report.text().trim_end())?;
    }
    Ok(())
}

/// `warden risk eval`: runs seeds SEED..SEED+SEEDS, prints each report
/// (or one JSON document), exits 1 unless every run met its targets.
fn run_eval(
    seed: u64,
    seeds: u64,
    days: u32,
    principals: u32,
    config: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let response = match &config {
        Some(path) => {
            replay::load_config(path)
                .map_err(|e| anyhow::anyhow!("--config {e}"))?
                .1
        }
        None => ResponseConfig::default(),
    };
    let last = seed
        .checked_add(seeds - 1)
        .context("--seed plus --seeds is too large")?;
    let reports = (seed..=last)
        .map(|seed| {
            eval::run_with(
                &EvalOptions {
                    seed,
                    days,
                    principals,
                },
                &response,
            )
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
