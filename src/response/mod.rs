//! Automatic responses: what Warden does about a finding beyond scoring
//! it (docs/RESPONSES.md).
//!
//! * [`config`]: `[response]`, the rules (a finding → actions, enforcing or
//!   only notifying) and the baseline.
//! * [`plan`]: what the rules want for a call or a failing network, from
//!   findings alone; the live pipeline and `warden risk replay` share it.
pub mod config;
pub mod plan;
pub mod revoke;
pub mod service;
pub mod state;

pub use config::{Action, Mode, ResponseConfig, Rule, Trigger};
pub use service::{Notify, ResponseError, Responses, Triggered};
