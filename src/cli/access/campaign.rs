//! `warden access campaign`: access review campaigns through the admin API
//! of a running Warden (docs/CAMPAIGNS.md), with `WARDEN_URL` and
//! `WARDEN_TOKEN` as `warden jit` takes them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::output::{errln, outln};

#[derive(clap::Args)]
pub struct CampaignArgs {
    #[command(subcommand)]
    command: CampaignCommand,
    /// Base URL of Warden.
    #[arg(
        long,
        env = "WARDEN_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// Bearer token: a security manager's to start and close, a
    /// reviewer's to decide (both with MFA).
    #[arg(long, env = "WARDEN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand)]
enum CampaignCommand {
    /// Start a campaign: one item per principal and role in scope, with
    /// the evidence of the audit log's last DAYS days.
    Start {
        /// A role in scope (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A group (object id) in scope: the roles `[policy.roles]` confers
        /// through it (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// A principal (object id, or TENANT/OID) in scope: every role it
        /// holds (repeatable).
        #[arg(long = "principal")]
        principals: Vec<String>,
        /// When undecided items are settled: RFC 3339, YYYY-MM-DD, or a
        /// duration from now (`14d`, `90s`).
        #[arg(long)]
        deadline: String,
        /// Remove undecided items at the deadline (else they are kept).
        #[arg(long)]
        auto_remove: bool,
        /// Days of the audit log the evidence covers.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
        #[arg(long, default_value = "")]
        title: String,
    },
    /// Every campaign, newest first.
    List,
    /// One campaign: its items, their evidence and decisions.
    Show {
        id: String,
        /// The campaign as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep or remove an item, with a reason (a reviewer, never about
    /// yourself).
    Decide {
        id: String,
        item: String,
        /// keep or remove
        #[arg(value_parser = ["keep", "remove"])]
        decision: String,
        #[arg(long)]
        reason: String,
        /// Replace another reviewer's decision.
        #[arg(long = "override")]
        overrides: bool,
    },
    /// Close a campaign whose items are all decided: its proposal is made.
    Close { id: String },
    /// Write a closed campaign's proposed policy set into DIR (a new or
    /// empty directory), for `warden policy propose --dir DIR`.
    Proposal {
        id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(args: CampaignArgs) -> anyhow::Result<()> {
    crate::cli::runtime()?.block_on(request(args))
}

/// `14d`, `90s` from now, or an RFC 3339 time or date.
fn deadline(text: &str) -> anyhow::Result<String> {
    let at = match humantime::parse_duration(text) {
        Ok(after) => chrono::Utc::now() + chrono::Duration::from_std(after)?,
        Err(_) => warden::audit::export::parse_time(text)
            .map_err(|e| anyhow::anyhow!("--deadline: {e}, nor a duration like 14d"))?,
    };
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn call(request: reqwest::RequestBuilder, token: &str, url: &str) -> anyhow::Result<Value> {
    let response = request
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach Warden at {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| body.to_string());
        anyhow::bail!("{status}: {message}");
    }
    Ok(body)
}

async fn request(args: CampaignArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .context("a token is needed: --token or WARDEN_TOKEN")?;
    let url = args.url.trim_end_matches('/').to_owned();
    let base = format!("{url}/admin/api/campaigns");
    let client = reqwest::Client::new();
    match args.command {
        CampaignCommand::Start {
            roles,
            groups,
            principals,
            deadline: at,
            auto_remove,
            days,
            title,
        } => {
            let body = json!({
                "title": title,
                "roles": roles,
                "groups": groups,
                "principals": principals,
                "deadline": deadline(&at)?,
                "auto_remove_undecided": auto_remove,
                "days": days,
            });
            let campaign = call(client.post(&base).json(&body), &token, &url).await?;
            outln!("{}", render(&campaign))?;
        }
        CampaignCommand::List => {
            let list = call(client.get(&base), &token, &url).await?;
            for c in list["campaigns"].as_array().into_iter().flatten() {
                let counts = &c["counts"];
                let items = counts["items"].as_u64().unwrap_or(0);
                let undecided = counts["undecided"].as_u64().unwrap_or(0);
                outln!(
                    "{}  {:<6}  deadline {}  decided {}/{}  {}",
                    c["id"].as_str().unwrap_or_default(),
                    c["status"].as_str().unwrap_or_default(),
                    c["deadline"].as_str().unwrap_or_default(),
                    items - undecided,
                    items,
                    scope(&c["scope"]),
                )?;
            }
        }
        CampaignCommand::Show { id, json } => {
            let campaign = call(client.get(format!("{base}/{id}")), &token, &url).await?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&campaign)?)?;
            } else {
                outln!("{}", render(&campaign))?;
            }
        }
        CampaignCommand::Decide {
            id,
            item,
            decision,
            reason,
            overrides,
        } => {
            let body = json!({ "decision": decision, "reason": reason, "override": overrides });
            let campaign = call(
                client
                    .post(format!("{base}/{id}/items/{item}/decide"))
                    .json(&body),
                &token,
                &url,
            )
            .await?;
            let decided = campaign["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["id"] == item.as_str());
            match decided {
                Some(i) => outln!("{}", item_line(i))?,
                None => outln!("{}", render(&campaign))?,
            }
        }
        CampaignCommand::Close { id } => {
            let campaign = call(client.post(format!("{base}/{id}/close")), &token, &url).await?;
            outln!("{}", render(&campaign))?;
        }
        CampaignCommand::Proposal { id, out } => {
            let answer = call(client.get(format!("{base}/{id}/proposal")), &token, &url).await?;
            write_proposal(&id, &answer, &out)?;
        }
    }
    Ok(())
}

fn scope(s: &Value) -> String {
    let list = |key: &str| -> Vec<String> {
        s[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut parts = Vec::new();
    for (key, label) in [
        ("roles", "roles"),
        ("groups", "groups"),
        ("principals", "principals"),
    ] {
        let names = list(key);
        if !names.is_empty() {
            parts.push(format!("{label} {}", names.join(",")));
        }
    }
    parts.join("; ")
}

fn item_line(i: &Value) -> String {
    let decision = match i.get("decision").filter(|d| !d.is_null()) {
        Some(d) => format!(
            "{} ({}): {}",
            d["decision"].as_str().unwrap_or_default(),
            d["reviewer"]["name"].as_str().unwrap_or("the deadline"),
            d["reason"].as_str().unwrap_or_default()
        ),
        None => "undecided".to_owned(),
    };
    format!(
        "#{:<3} {:<28} {:<18} suggest {:<6} {}",
        i["id"].as_str().unwrap_or_default(),
        i["principal"]["name"].as_str().unwrap_or_default(),
        i["role"].as_str().unwrap_or_default(),
        i["suggestion"].as_str().unwrap_or_default(),
        decision
    )
}

/// A campaign as text: what it is, then one line per item.
fn render(c: &Value) -> String {
    let mut out = format!(
        "campaign {}{}\nscope     {}\ndeadline  {} (undecided items {} then)\nstarted   {} by {}\nevidence  the last {} days of the audit log\n",
        c["id"].as_str().unwrap_or_default(),
        c["title"]
            .as_str()
            .map(|t| format!(": {t}"))
            .unwrap_or_default(),
        scope(&c["scope"]),
        c["deadline"].as_str().unwrap_or_default(),
        if c["auto_remove_undecided"].as_bool() == Some(true) {
            "removed"
        } else {
            "kept"
        },
        c["created"].as_str().unwrap_or_default(),
        c["created_by"]["name"].as_str().unwrap_or_default(),
        c["days"],
    );
    if let Some(closed) = c.get("closed").filter(|v| !v.is_null()) {
        let p = &closed["proposal"];
        out.push_str(&format!(
            "closed    {}: {}; proposal: {} removal(s), {}\n",
            closed["at"].as_str().unwrap_or_default(),
            closed["why"].as_str().unwrap_or_default(),
            p["removals"].as_array().map_or(0, Vec::len),
            match p["error"].as_str() {
                Some(e) => format!("not valid: {e}"),
                None => format!(
                    "generated tests {}/{} passed",
                    p["tests"]["passed"], p["tests"]["cases"]
                ),
            }
        ));
    }
    out.push('\n');
    for i in c["items"].as_array().into_iter().flatten() {
        out.push_str(&item_line(i));
        out.push('\n');
    }
    out
}

/// Writes the proposed set of `answer` (`{ok, proposal}`) into `out`, a
/// new or empty directory, with `diff.patch` beside its files.
fn write_proposal(id: &str, answer: &Value, out: &Path) -> anyhow::Result<()> {
    let proposal = &answer["proposal"];
    let files = proposal["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        outln!("campaign {id} removed nobody: the running set stands; nothing to propose")?;
        return Ok(());
    }
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| out.display().to_string())?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} exists and is not empty; choose a new directory",
            out.display()
        );
    }
    for file in &files {
        let path = file["path"].as_str().unwrap_or_default();
        let text = file["text"].as_str().unwrap_or_default();
        // Only plain names, in the directory or its tests/.
        let relative = Path::new(path);
        let plain = relative.components().all(|c| {
            matches!(c, std::path::Component::Normal(name) if !name.to_string_lossy().starts_with('.'))
        });
        if !plain || relative.components().count() > 2 {
            anyhow::bail!("the proposal names a file outside its directory: {path:?}");
        }
        let target = out.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        std::fs::write(&target, text).with_context(|| target.display().to_string())?;
    }
    let diff = out.join("diff.patch");
    std::fs::write(&diff, proposal["diff"].as_str().unwrap_or_default())
        .with_context(|| diff.display().to_string())?;
    outln!(
        "wrote the proposed set of campaign {id} ({} files and diff.patch) into {}",
        files.len(),
        out.display()
    )?;
    for change in proposal["changes"].as_array().into_iter().flatten() {
        outln!(
            "  {} ({}): no longer for {}",
            change["permit"].as_str().unwrap_or_default(),
            change["role"].as_str().unwrap_or_default(),
            change["excluded"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| format!(
                    "{}::{:?}",
                    e["type"].as_str().unwrap_or_default(),
                    e["id"].as_str().unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    outln!(
        "generated tests {}/{} passed; the running set's tests {}/{} passed",
        proposal["tests"]["passed"],
        proposal["tests"]["cases"],
        proposal["running_tests"]["passed"],
        proposal["running_tests"]["cases"]
    )?;
    if answer["ok"].as_bool() != Some(true) {
        errln!(
            "warden: the proposal does not validate or some tests fail: {}",
            proposal["error"].as_str().unwrap_or("see the test results")
        );
        std::process::exit(1);
    }
    outln!(
        "submit it with: warden policy propose --dir {}",
        out.display()
    )?;
    Ok(())
}
