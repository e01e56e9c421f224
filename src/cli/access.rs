//! `warden access`: access reviews measured from the audit log, and
//! access review campaigns through a running Warden.

mod campaign;

use std::path::PathBuf;

use anyhow::Context;
use warden::policy::{Engine, PolicyConfig};
use warden::review::{self, Options, Period, Review, Usage};

use super::output::{errln, outln};

#[derive(clap::Subcommand)]
pub enum AccessCommand {
    /// Access review campaigns: reviewers keep or remove each principal's
    /// role; the outcome is a policy change proposal (through the admin
    /// API of a running Warden, as `warden jit`).
    Campaign(campaign::CampaignArgs),
    /// What each role and principal was allowed against what it used over
    /// the last DAYS days, dormant principals, and the risk factors of
    /// each; with --recommend, a narrowed policy set generated from use.
    Review(ReviewArgs),
}

/// `warden access review`.
#[derive(clap::Args)]
pub struct ReviewArgs {
    /// Days reviewed, up to --at.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// A Warden store: a SQLite file or a postgres:// URL.
    #[arg(long, conflicts_with = "bundle", required_unless_present = "bundle")]
    db: Option<String>,
    /// An export bundle directory (a whole-log bundle).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// The Warden configuration: its policy set, `[policy.roles]` and
    /// home tenants (`identity.tenants`).
    #[arg(long, conflicts_with = "policies")]
    config: Option<PathBuf>,
    /// The policy set to review against (when no --config).
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    /// The end of the period (RFC 3339 or YYYY-MM-DD; default now).
    #[arg(long)]
    at: Option<String>,
    /// A home tenant id (repeatable); others are foreign. Default: the
    /// configuration's tenants, else the tenant most principals have.
    #[arg(long = "home-tenant")]
    home_tenants: Vec<String>,
    /// Write the recommended least-privilege set, its tests and a diff
    /// into this new directory.
    #[arg(long)]
    recommend: Option<PathBuf>,
    /// Print the review (and recommendation) as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: AccessCommand) -> anyhow::Result<()> {
    match command {
        AccessCommand::Campaign(args) => campaign::run(args),
        AccessCommand::Review(args) => review(args),
    }
}

fn review(args: ReviewArgs) -> anyhow::Result<()> {
    let ReviewArgs {
        days,
        db,
        bundle,
        config,
        policies,
        at,
        home_tenants,
        recommend,
        json,
    } = args;
    let (policy_config, mut tenants) = match &config {
        Some(path) => {
            let config = warden::config::Config::load(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (config.policy.clone(), config.identity.tenants.clone())
        }
        None => (
            PolicyConfig {
                dir: policies,
                ..PolicyConfig::default()
            },
            Vec::new(),
        ),
    };
    if !home_tenants.is_empty() {
        tenants = home_tenants;
    }
    let to = match at {
        Some(text) => {
            warden::audit::export::parse_time(&text).map_err(|e| anyhow::anyhow!("--at: {e}"))?
        }
        None => chrono::Utc::now(),
    };
    let source = super::log_source(db, bundle)?;
    let catalog = warden::catalog::Catalog::builtin().context("loading the built-in catalog")?;
    let ops = catalog.operation_classes();
    let engine = Engine::load(&policy_config, &ops)
        .with_context(|| format!("loading the policy set {}", policy_config.dir.display()))?;
    let permits = warden::policy::narrow::permits(&policy_config.dir)?;

    let period = Period::days_before(to, days);
    let mut usage = Usage::new(period);
    source
        .for_each(|bytes| {
            usage.add(bytes);
            Ok(())
        })
        .with_context(|| format!("reading {source}"))?;
    let options = Options {
        period,
        home_tenants: tenants,
    };
    let review = Review::build(
        usage.clone(),
        &engine,
        &permits,
        &ops,
        &options,
        source.to_string(),
    );
    let recommendation = match &recommend {
        Some(out) => Some(
            review::recommend::recommend(&review, &usage, &engine, &policy_config, &ops, out)
                .with_context(|| format!("writing the recommendation into {}", out.display()))?,
        ),
        None => None,
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "review": review,
                "recommendation": recommendation,
            }))?
        )?;
    } else {
        outln!("{}", review::render::text(&review))?;
        if let Some(r) = &recommendation {
            outln!("{}", review::render::recommendation(r))?;
        }
    }
    if let Some(r) = &recommendation
        && !r.failed.is_empty()
    {
        errln!(
            "warden: {} generated case{} failed on the recommended set",
            r.failed.len(),
            if r.failed.len() == 1 { "" } else { "s" }
        );
        std::process::exit(1);
    }
    Ok(())
}
