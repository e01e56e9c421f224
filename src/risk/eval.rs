//! `warden risk eval`: a synthetic month of traffic with injected
//! incidents, replayed through the real scoring code.

use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    pub seed: u64,
    pub days: u32,
    pub principals: u32,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            seed: 1,
            days: 30,
            principals: 50,
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub seed: u64,
    pub days: u32,
    pub principals: u32,
    pub targets_met: bool,
}

impl Report {
    /// The report for people.
    pub fn text(&self) -> String {
        format!("seed {}: {} days, {} principals", self.seed, self.days, self.principals)
    }
}

/// Generates the traffic and replays it.
pub fn run(options: &EvalOptions) -> Report {
    Report {
        seed: options.seed,
        days: options.days,
        principals: options.principals,
        targets_met: false,
    }
}
