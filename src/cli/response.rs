//! `warden response`: the incidents, suspensions and blocks of automatic
//! responses, through the admin API of a running Warden (with `WARDEN_URL`
//! and `WARDEN_TOKEN` as `warden jit` takes them). Reading needs a security
//! manager's or an auditor's token; acting a security manager's, signed in
//! with MFA.

use anyhow::Context;
use serde_json::{Value, json};

use super::output::outln;

#[derive(clap::Args)]
pub struct ResponseArgs {
    #[command(subcommand)]
    command: ResponseCommand,
    /// Base URL of Warden.
    #[arg(
        long,
        env = "WARDEN_URL",
        default_value = "http://127.0.0.1:8787",
        global = true
    )]
    url: String,
    /// Bearer token: a security manager's (with MFA) to act, or an
    /// auditor's to read.
    #[arg(long, env = "WARDEN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Subcommand)]
enum ResponseCommand {
    /// Incidents, newest first: one line each (id, status, opened, title).
    Incidents {
        /// open, acknowledged or closed
        #[arg(long, value_parser = ["open", "acknowledged", "closed"])]
        status: Option<String>,
        /// The API's answer, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One incident: its triggering calls and their records, findings and
    /// the actions taken.
    Incident {
        id: String,
        /// The incident as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an incident: you are on it.
    Ack {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// Close an incident.
    Close {
        id: String,
        #[arg(long)]
        note: String,
    },
    /// The principals suspended: one line each (tid/oid, name, since, rule).
    Suspensions {
        /// The API's answer, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lift a suspension: the principal's next call runs.
    Lift {
        /// The suspended principal, TENANT/OBJECT-ID.
        principal: String,
        #[arg(long)]
        reason: String,
    },
    /// The networks blocked: one line each (network, until, rule).
    Blocks {
        /// The API's answer, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a block before its cool-down.
    Unblock {
        /// The blocked network, e.g. 192.0.2.7/32.
        network: String,
        #[arg(long)]
        reason: String,
    },
}

pub fn run(args: ResponseArgs) -> anyhow::Result<()> {
    super::runtime()?.block_on(request(args))
}

/// Sends one request; the answer, or an error naming what was wrong.
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

fn s<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

async fn request(args: ResponseArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .context("a token is needed: --token or WARDEN_TOKEN")?;
    let url = args.url.trim_end_matches('/').to_owned();
    let api = format!("{url}/admin/api");
    let client = reqwest::Client::new();
    let get = |path: &str| client.get(format!("{api}/{path}"));
    let post = |path: &str, body: Value| client.post(format!("{api}/{path}")).json(&body);
    let acknowledge = matches!(args.command, ResponseCommand::Ack { .. });
    match args.command {
        ResponseCommand::Incidents { status, json } => {
            let mut at = reqwest::Url::parse(&format!("{api}/incidents")).context("--url")?;
            if let Some(status) = &status {
                at.query_pairs_mut().append_pair("status", status);
            }
            let body = call(client.get(at), &token, &url).await?;
            if json {
                return print_json(&body);
            }
            let incidents = body["incidents"].as_array().cloned().unwrap_or_default();
            if incidents.is_empty() {
                outln!("no incidents")?;
            }
            for i in &incidents {
                outln!(
                    "{}  {:<12}  {}  {}",
                    s(i, "id"),
                    s(i, "status"),
                    s(i, "opened"),
                    s(i, "title")
                )?;
            }
        }
        ResponseCommand::Incident { id, json } => {
            let body = call(get(&format!("incidents/{id}")), &token, &url).await?;
            if json {
                return print_json(&body);
            }
            outln!("{}", incident_text(&body))?;
        }
        ResponseCommand::Ack { id, note } | ResponseCommand::Close { id, note } => {
            let action = if acknowledge { "acknowledge" } else { "close" };
            let body = call(
                post(&format!("incidents/{id}/{action}"), json!({ "note": note })),
                &token,
                &url,
            )
            .await?;
            outln!("incident {} is {}", s(&body, "id"), s(&body, "status"))?;
        }
        ResponseCommand::Suspensions { json } => {
            let body = call(get("suspensions"), &token, &url).await?;
            if json {
                return print_json(&body);
            }
            let suspensions = body["suspensions"].as_array().cloned().unwrap_or_default();
            if suspensions.is_empty() {
                outln!("no principal is suspended")?;
            }
            for x in &suspensions {
                outln!(
                    "{}/{}  {}  since {}  rule {}{}",
                    s(x, "tid"),
                    s(x, "oid"),
                    s(x, "name"),
                    s(x, "at"),
                    s(x, "rule"),
                    x["incident_id"]
                        .as_str()
                        .map(|id| format!("  {id}"))
                        .unwrap_or_default()
                )?;
            }
        }
        ResponseCommand::Lift { principal, reason } => {
            let body = call(
                post(
                    "suspensions/lift",
                    json!({ "principal": principal, "reason": reason }),
                ),
                &token,
                &url,
            )
            .await?;
            outln!(
                "the suspension of {} ({}/{}) is lifted",
                s(&body, "name"),
                s(&body, "tid"),
                s(&body, "oid")
            )?;
        }
        ResponseCommand::Blocks { json } => {
            let body = call(get("blocks"), &token, &url).await?;
            if json {
                return print_json(&body);
            }
            let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
            if blocks.is_empty() {
                outln!("no network is blocked")?;
            }
            for b in &blocks {
                outln!(
                    "{}  until {}  rule {}  {} of {} attempts failed",
                    s(b, "network"),
                    s(b, "until"),
                    s(b, "rule"),
                    b["failures"],
                    b["attempts"]
                )?;
            }
        }
        ResponseCommand::Unblock { network, reason } => {
            let body = call(
                post(
                    "blocks/unblock",
                    json!({ "network": network, "reason": reason }),
                ),
                &token,
                &url,
            )
            .await?;
            outln!("the block of {} is ended", s(&body, "network"))?;
        }
    }
    Ok(())
}

fn print_json(body: &Value) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(body)?)?;
    Ok(())
}

/// An incident as text: what a security manager reads first.
fn incident_text(i: &Value) -> String {
    let mut out = vec![
        format!("{}  {}", s(i, "id"), s(i, "status")),
        s(i, "title").to_owned(),
        format!(
            "opened {} by rule {} (record #{})",
            s(i, "opened"),
            s(i, "rule"),
            i["seq"]
        ),
    ];
    if let Some(p) = i.get("principal").filter(|p| p.is_object()) {
        out.push(format!(
            "principal {} ({}/{})",
            s(p, "name"),
            s(p, "tid"),
            s(p, "oid")
        ));
    }
    if let Some(ip) = i["source_ip"].as_str() {
        out.push(format!("source address {ip}"));
    }
    let list = |key: &str| i[key].as_array().cloned().unwrap_or_default();
    for f in list("findings") {
        out.push(format!("finding: {}", f.as_str().unwrap_or_default()));
    }
    for c in list("calls") {
        let seqs: Vec<String> = c["seqs"]
            .as_array()
            .map(|seqs| seqs.iter().map(|s| format!("#{s}")).collect())
            .unwrap_or_default();
        out.push(format!(
            "call {} ({}): records {}",
            s(&c, "call_id"),
            s(&c, "tool"),
            seqs.join(", ")
        ));
    }
    for a in list("actions") {
        let seq = a["seq"]
            .as_u64()
            .map(|seq| format!(" (record #{seq})"))
            .unwrap_or_default();
        out.push(format!(
            "action {} ({}): {}: {}{seq}",
            s(&a, "action"),
            s(&a, "mode"),
            s(&a, "result"),
            s(&a, "detail")
        ));
    }
    for (key, what) in [("acknowledged", "acknowledged"), ("closed", "closed")] {
        if let Some(act) = i.get(key).filter(|a| a.is_object()) {
            out.push(format!(
                "{what} by {} ({}) at {}: {}",
                s(act, "name"),
                s(act, "by"),
                s(act, "at"),
                s(act, "note")
            ));
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_reads_as_text() {
        let text = incident_text(&json!({
            "id": "INC-1", "status": "acknowledged", "title": "mass-deletion: delete_spike by carol",
            "opened": "2026-03-01T10:00:00Z", "rule": "mass-deletion", "seq": 44,
            "principal": {"tid": "t", "oid": "o", "name": "carol"},
            "calls": [{"call_id": "c-1", "tool": "echo", "seqs": [41, 42], "operations": []}],
            "findings": ["12 deletes in the last hour"],
            "actions": [{"action": "suspend", "mode": "enforce", "result": "done", "detail": "suspended carol", "seq": 43}],
            "acknowledged": {"by": "t/m", "name": "sam", "at": "2026-03-01T10:05:00Z", "note": "on it"},
        }));
        for line in [
            "INC-1  acknowledged",
            "principal carol (t/o)",
            "call c-1 (echo): records #41, #42",
            "action suspend (enforce): done: suspended carol (record #43)",
            "acknowledged by sam (t/m) at 2026-03-01T10:05:00Z: on it",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
    }
}
