//! `warden policy propose|proposals|show|approve|reject|apply|rollback|load`:
//! policy change management through the admin API of a running Warden
//! (docs/POLICY-CHANGES.md), with `WARDEN_URL` and `WARDEN_TOKEN` as
//! `warden jit` takes them.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};
use warden::policy_change::FileSet;

use super::output::outln;

/// Where Warden is, and who asks.
#[derive(clap::Args, Debug, Clone)]
pub struct Remote {
    /// Base URL of Warden.
    #[arg(long, env = "WARDEN_URL", default_value = "http://127.0.0.1:8787")]
    url: String,
    /// Bearer token: a security manager's (MFA), or break glass's to load.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChangeCommand {
    /// Propose the policy set in DIR (its *.cedar files and tests/*.toml)
    /// to a running Warden, which validates it, runs its tests and diffs it
    /// against the running set.
    Propose {
        #[arg(long, default_value = "policies")]
        dir: PathBuf,
        /// What the change is for (shown to the approver, recorded).
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Policy proposals, newest first, and the running set.
    Proposals {
        #[command(flatten)]
        remote: Remote,
    },
    /// One proposal: its status, test results and diff.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Approve a proposal (a security manager other than its proposer).
    Approve {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reject a proposal.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Write an approved proposal into the policy directory and load it.
    Apply {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Restore and load the policy set loaded before the running one.
    Rollback {
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Load the set in the policy directory whatever its approval
    /// (break glass: recorded, alerted, a finding).
    Load {
        /// Required: this load is break glass.
        #[arg(long, required = true)]
        break_glass: bool,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        remote: Remote,
    },
}

pub fn run(command: ChangeCommand) -> anyhow::Result<()> {
    super::runtime()?.block_on(request(command))
}

async fn request(command: ChangeCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let (remote, request) = match &command {
        ChangeCommand::Propose { dir, note, remote } => {
            let set = FileSet::read(dir)
                .with_context(|| format!("reading the policy set in {}", dir.display()))?;
            anyhow::ensure!(
                !set.files.is_empty(),
                "{}: no *.cedar policy files",
                dir.display()
            );
            let body = json!({ "files": set.files, "tests": set.tests, "note": note });
            (remote, client.post(remote.api("proposals")).json(&body))
        }
        ChangeCommand::Proposals { remote } => (remote, client.get(remote.api("proposals"))),
        ChangeCommand::Show { id, remote } => {
            (remote, client.get(remote.api(&format!("proposals/{id}"))))
        }
        ChangeCommand::Approve { id, reason, remote } => (
            remote,
            client
                .post(remote.api(&format!("proposals/{id}/approve")))
                .json(&json!({ "reason": reason })),
        ),
        ChangeCommand::Reject { id, reason, remote } => (
            remote,
            client
                .post(remote.api(&format!("proposals/{id}/reject")))
                .json(&json!({ "reason": reason })),
        ),
        ChangeCommand::Apply { id, remote } => (
            remote,
            client.post(remote.api(&format!("proposals/{id}/apply"))),
        ),
        ChangeCommand::Rollback { reason, remote } => (
            remote,
            client
                .post(remote.api("rollback"))
                .json(&json!({ "reason": reason })),
        ),
        ChangeCommand::Load { reason, remote, .. } => (
            remote,
            client
                .post(remote.api("load"))
                .json(&json!({ "reason": reason })),
        ),
    };
    let token = remote
        .token
        .clone()
        .context("a token is needed: --token or WARDEN_TOKEN")?;
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach Warden at {}", remote.url))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = &body["error"];
        let mut message = error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        for problem in error["problems"].as_array().into_iter().flatten() {
            message.push_str(&format!(
                "\n  {}:{}: {}{}",
                problem["file"].as_str().unwrap_or_default(),
                problem["line"],
                problem["policy"]
                    .as_str()
                    .map(|id| format!("policy `{id}`: "))
                    .unwrap_or_default(),
                problem["message"].as_str().unwrap_or_default(),
            ));
        }
        anyhow::bail!("{status}: {message}");
    }
    match command {
        ChangeCommand::Propose { .. } => {
            print_proposal(&body, false)?;
            let failed = body["test_results"]["failed"].as_u64().unwrap_or(0);
            let passed = body["test_results"]["passed"].as_u64().unwrap_or(0);
            if failed > 0 || passed == 0 {
                anyhow::bail!(
                    "proposal {} is kept, but it cannot be approved: its tests did not pass",
                    body["id"].as_str().unwrap_or_default()
                );
            }
        }
        ChangeCommand::Proposals { .. } => print_list(&body)?,
        ChangeCommand::Show { .. } => print_proposal(&body, true)?,
        ChangeCommand::Approve { .. } | ChangeCommand::Reject { .. } => {
            outln!(
                "proposal {} is {} (set {})",
                body["id"].as_str().unwrap_or_default(),
                body["status"].as_str().unwrap_or_default(),
                body["hash"].as_str().unwrap_or_default(),
            )?;
        }
        ChangeCommand::Apply { .. } => {
            outln!(
                "proposal {} applied: policy set {} loaded ({} policies)",
                body["proposal"]["id"].as_str().unwrap_or_default(),
                body["loaded"]["hash"].as_str().unwrap_or_default(),
                body["loaded"]["policies"],
            )?;
        }
        ChangeCommand::Rollback { .. } => {
            outln!(
                "rolled back: policy set {} loaded ({} policies)",
                body["loaded"]["hash"].as_str().unwrap_or_default(),
                body["loaded"]["policies"],
            )?;
        }
        ChangeCommand::Load { .. } => {
            outln!(
                "break glass: policy set {} loaded ({} policies); recorded and alerted",
                body["loaded"]["hash"].as_str().unwrap_or_default(),
                body["loaded"]["policies"],
            )?;
        }
    }
    Ok(())
}

impl Remote {
    fn api(&self, path: &str) -> String {
        format!("{}/admin/api/policy/{path}", self.url.trim_end_matches('/'))
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// A proposal's head (and its failures and diff when `full`).
fn print_proposal(p: &Value, full: bool) -> anyhow::Result<()> {
    outln!("proposal  {}", text(p, "id"))?;
    outln!("status    {}", text(p, "status"))?;
    outln!(
        "proposer  {} ({})",
        text(&p["proposer"], "name"),
        text(&p["proposer"], "oid")
    )?;
    if let Some(by) = p["approved"]["by"].as_object() {
        outln!(
            "approver  {} ({})",
            by.get("name").and_then(Value::as_str).unwrap_or_default(),
            by.get("oid").and_then(Value::as_str).unwrap_or_default()
        )?;
    }
    if !text(p, "note").is_empty() {
        outln!("note      {}", text(p, "note"))?;
    }
    outln!(
        "set       {} (against {})",
        text(p, "hash"),
        text(p, "base")
    )?;
    outln!(
        "tests     {} passed, {} failed",
        p["test_results"]["passed"],
        p["test_results"]["failed"]
    )?;
    let summary = &p["diff_summary"];
    outln!(
        "changes   +{} -{} lines; added {}, removed {}, changed {}",
        summary["lines_added"],
        summary["lines_removed"],
        names(&summary["added"]),
        names(&summary["removed"]),
        names(&summary["changed"]),
    )?;
    for failure in p["test_failures"].as_array().into_iter().flatten() {
        outln!("FAIL      {}", failure.as_str().unwrap_or_default())?;
    }
    for warning in p["warnings"].as_array().into_iter().flatten() {
        outln!("warning   {}", warning.as_str().unwrap_or_default())?;
    }
    if full {
        outln!("")?;
        outln!("{}", text(p, "diff").trim_end())?;
    }
    Ok(())
}

fn names(list: &Value) -> String {
    let names: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

fn print_list(body: &Value) -> anyhow::Result<()> {
    let running = &body["running"];
    let approval = match running["approval"]["proposal_id"].as_str() {
        Some(id) => format!("approved as proposal {id}"),
        None => "not approved".into(),
    };
    outln!(
        "running set {} ({approval}; require_approval {})",
        text(running, "hash"),
        body["require_approval"]
    )?;
    for p in body["proposals"].as_array().into_iter().flatten() {
        outln!(
            "{}  {:<8}  {}  {} passed, {} failed  {}  {}",
            text(p, "id"),
            text(p, "status"),
            text(&p["proposer"], "name"),
            p["test_results"]["passed"],
            p["test_results"]["failed"],
            text(p, "hash"),
            text(p, "note"),
        )?;
    }
    Ok(())
}
