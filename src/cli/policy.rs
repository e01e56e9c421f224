//! `warden policy`: validate the policy set, run its tests, explain a
//! decision; propose, approve, apply and roll back sets through a running
//! Warden (`policy_change.rs`).

use std::path::PathBuf;

use anyhow::Context;
use warden::policy::{self, CallContext, OperationFacts, PolicyConfig};

use super::output::{errln, outln};

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Strictly validate the policy set against the schema (and the catalog's operations).
    Validate {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// A schema file replacing the built-in one.
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Run the declarative cases in DIR/tests/*.toml against the policies in DIR.
    Test {
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Print every case, not only failures.
        #[arg(long)]
        verbose: bool,
    },
    /// Resolve a tool call to its Azure operations and show the decision,
    /// the determining policies and the advice (JSON).
    Explain {
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The tool, as the upstream names it (e.g. compute_vm_delete).
        #[arg(long)]
        tool: String,
        /// The call's arguments (JSON object).
        #[arg(long, default_value = "{}")]
        args: String,
        /// Display name of the caller.
        #[arg(long, default_value = "explain-user")]
        user: String,
        /// App role of the caller (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Entra group object id of the caller (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The caller signed in with MFA.
        #[arg(long)]
        mfa: bool,
        /// An app-only caller.
        #[arg(long)]
        app: bool,
        /// How much is known of the resources (`context.facts`): complete
        /// (the tags given are all the resource has), partial or
        /// unavailable. Explain does not look anything up in Azure.
        #[arg(long, default_value = "complete", value_parser = ["complete", "partial", "unavailable"])]
        facts: String,
        /// A tag of the resource, KEY=VALUE (repeatable).
        #[arg(long = "tag", value_parser = tag)]
        tags: Vec<(String, String)>,
        /// A tag of the resource's group, KEY=VALUE (repeatable).
        #[arg(long = "group-tag", value_parser = tag)]
        group_tags: Vec<(String, String)>,
    },
    #[command(flatten)]
    Change(super::policy_change::ChangeCommand),
}

/// `KEY=VALUE`.
fn tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let catalog = warden::catalog::Catalog::builtin().context("loading the built-in catalog")?;
    let operations = catalog.operation_classes();
    match command {
        PolicyCommand::Change(change) => super::policy_change::run(change),
        PolicyCommand::Validate { policies, schema } => {
            let config = PolicyConfig {
                dir: policies,
                schema,
                ..PolicyConfig::default()
            };
            let summary = policy::validate(&config, &operations)?;
            for warning in &summary.warnings {
                errln!("warning: {warning}");
            }
            outln!(
                "{}: ok ({} policies in {} files, set {})",
                config.dir.display(),
                summary.policies.len(),
                summary.files.len(),
                summary.hash
            )?;
            Ok(())
        }
        PolicyCommand::Test { dir, verbose } => {
            let config = PolicyConfig {
                dir: dir.clone(),
                ..PolicyConfig::default()
            };
            let engine = policy::Engine::load(&config, &operations)?;
            let report = policy::run_tests(&engine, &dir.join("tests"));
            for case in &report.cases {
                if !case.passed() || verbose {
                    let mark = if case.passed() { "ok  " } else { "FAIL" };
                    outln!("{mark} {}: {}", case.file.display(), case.name)?;
                    for failure in &case.failures {
                        outln!("     {failure}")?;
                    }
                }
            }
            outln!(
                "{} passed, {} failed (policy set {})",
                report.passed(),
                report.failed(),
                report.policy_set
            )?;
            if !report.ok() {
                std::process::exit(1);
            }
            Ok(())
        }
        PolicyCommand::Explain {
            policies,
            tool,
            args,
            user,
            roles,
            groups,
            mfa,
            app,
            facts: completeness,
            tags,
            group_tags,
        } => {
            let arguments: serde_json::Value =
                serde_json::from_str(&args).context("--args is not JSON")?;
            anyhow::ensure!(arguments.is_object(), "--args must be a JSON object");
            let config = PolicyConfig {
                dir: policies,
                ..PolicyConfig::default()
            };
            let engine = policy::Engine::load(&config, &operations)?;
            let spec: policy::PrincipalSpec = serde_json::from_value(serde_json::json!({
                "kind": if app { "application" } else { "user" },
                "name": user,
                "roles": roles,
                "groups": groups,
                "mfa": mfa,
            }))
            .context("building the caller")?;
            let resolution = catalog.resolve(&tool, &arguments, None);
            let facts: Vec<OperationFacts> = resolution
                .operations
                .iter()
                .map(|op| {
                    let mut facts = OperationFacts::from(op);
                    facts.tags = tags.iter().cloned().collect();
                    facts.resource_group_tags = group_tags.iter().cloned().collect();
                    facts
                })
                .collect();
            let mut call = CallContext::new(&tool, "explain", chrono::Utc::now());
            call.arguments = Some(arguments);
            call.facts =
                serde_json::from_value(serde_json::json!(completeness)).context("--facts")?;
            let explanation = engine.explain(&spec.principal(), &facts, &call);
            let out = serde_json::json!({
                "tool": tool,
                "resolution": resolution,
                "decision": explanation.decision,
                "requests": explanation.requests,
                "policies": explanation.policies,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?)?;
            Ok(())
        }
    }
}
