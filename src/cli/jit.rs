//! `warden jit`: just-in-time approvals through the admin API of a running
//! Warden.

use anyhow::Context;

use super::output::outln;

#[derive(clap::Args)]
pub struct JitArgs {
    #[command(subcommand)]
    command: JitCommand,
    /// Base URL of Warden.
    #[arg(
        long,
        env = "WARDEN_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// Bearer token (a reviewer's to review).
    #[arg(long, env = "WARDEN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum JitCommand {
    /// Requests you may see (reviewers: all), newest first.
    List {
        /// pending, approved, denied, cancelled, lapsed, consumed, expired, revoked
        #[arg(long)]
        status: Option<String>,
    },
    /// One request, as JSON.
    Show { id: String },
    /// Approve a request (approver role and MFA; never your own).
    Approve {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Deny a request.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Revoke a grant: the next call no longer runs under it.
    Revoke {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Withdraw your pending request.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

pub fn run(args: JitArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(request(args.command, &args.url, args.token))
}

/// One call to the admin API; the answer printed as JSON (list: one line
/// per request).
async fn request(command: JitCommand, url: &str, token: Option<String>) -> anyhow::Result<()> {
    let token = token.context("a token is needed: --token or WARDEN_TOKEN")?;
    let base = format!("{}/admin/api/requests", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let request = match &command {
        JitCommand::List { status } => {
            let mut url = reqwest::Url::parse(&base).context("--url")?;
            if let Some(status) = status {
                url.query_pairs_mut().append_pair("status", status);
            }
            client.get(url)
        }
        JitCommand::Show { id } => client.get(format!("{base}/{id}")),
        JitCommand::Approve { id, reason }
        | JitCommand::Deny { id, reason }
        | JitCommand::Revoke { id, reason }
        | JitCommand::Cancel { id, reason } => {
            let action = match &command {
                JitCommand::Approve { .. } => "approve",
                JitCommand::Deny { .. } => "deny",
                JitCommand::Revoke { .. } => "revoke",
                _ => "cancel",
            };
            client
                .post(format!("{base}/{id}/{action}"))
                .json(&serde_json::json!({ "reason": reason }))
        }
    };
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach Warden at {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("{status}: {message}");
    }
    match (&command, body.get("requests").and_then(|r| r.as_array())) {
        (JitCommand::List { .. }, Some(requests)) => {
            for r in requests {
                outln!(
                    "{}  {:<9}  {}  {}  {}",
                    r["id"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    r["requester"]["name"].as_str().unwrap_or_default(),
                    r["operations"]
                        .as_array()
                        .map(|ops| ops
                            .iter()
                            .filter_map(|o| o["azure_op"].as_str())
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    r["lapses"].as_str().unwrap_or_default(),
                )?;
            }
        }
        _ => outln!("{}", serde_json::to_string_pretty(&body)?)?,
    }
    Ok(())
}
