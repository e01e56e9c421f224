//! Authentication events end to end: a real Warden with dev tokens, a
//! spray of bad tokens at `/mcp` over real HTTP, then a real MCP session.
//! The audit log holds the refusals aggregated (every one counted, no
//! token kept), the session start with who and from where, and the risk
//! stage scores the next call from that address with the failures.

mod common;

use common::gate::{Gate, baseline_copy};
use common::*;
use serde_json::{Value, json};

const CATALOG: &str = r#"
[tools.add]
op = "Microsoft.Compute/virtualMachines/read"
class = "read"
resource = "/subscriptions/{subscription}/resourceGroups/{resource-group}/providers/Microsoft.Compute/virtualMachines/{vm}"
"#;

const SUB: &str = "00000000-0000-4000-8000-000000000001";

/// Posts an MCP `initialize` with `authorization`; the status.
async fn knock(url: &str, authorization: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("authorization", authorization)
        .header("user-agent", "tokenspray/1.0")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn refusals<'a>(records: &'a [Value], reason: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| {
            r["kind"] == "auth"
                && r["details"]["event"] == "token_refused"
                && r["details"]["reason"] == reason
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_counted_aggregated_and_scored_and_sessions_are_recorded() {
    let scratch = tempfile::tempdir().unwrap();
    let policies = baseline_copy(scratch.path(), None);
    // Twenty refusals in a row would block the address (the baseline
    // `auth_failures` rule, tests/responses.rs); this test is about how they
    // are recorded and scored, so the address stays open.
    let mut gate = Gate::start_in_process(
        CATALOG,
        &format!("dir = {policies:?}\n"),
        "[response.block]\nmin_attempts = 1000\n",
    )
    .await;
    let url = gate.warden.url();

    // Twelve copies of a token that is not a JWT, and eight tokens whose
    // signatures were tampered with, each a different one.
    for _ in 0..12 {
        assert_eq!(knock(&url, "Bearer not-a-jwt").await, 401);
    }
    let mut forged = Vec::new();
    for i in 0..8 {
        // Mallory's claims under the signature of another token.
        let token = gate.token(&format!("mallory{i}"), &["Reader"], true);
        let other = gate.token(&format!("trent{i}"), &["Reader"], true);
        let (signed, _) = token.rsplit_once('.').unwrap();
        let (_, signature) = other.rsplit_once('.').unwrap();
        let token = format!("{signed}.{signature}");
        assert_eq!(knock(&url, &format!("Bearer {token}")).await, 401);
        forged.push(token);
    }

    // Then a real session from the same address.
    let dana = gate.client("dana", &["Reader"], true).await;
    let args =
        json!({"text": "x", "subscription": SUB, "resource-group": "dev-web", "vm": "web-01"});
    let result = call(&dana, "add", args).await.unwrap();
    // Twenty refusals from this address make the call high-risk (70 at
    // least), and the baseline policy holds high-risk calls for approval.
    assert_eq!(result.is_error, Some(true), "{}", text(&result));
    assert!(
        text(&result).contains("\"high-risk-requires-jit\""),
        "{}",
        text(&result)
    );
    dana.cancel().await.unwrap();

    // Stopping closes the log, which records the open tallies.
    gate.warden.stop().unwrap();
    let records = records(&gate.warden.db());

    // Each (reason, address, client) is recorded at once the first time,
    // and the rest of the interval as one tally: every refusal counted.
    for (reason, total, distinct) in [("malformed", 12, 1), ("bad_signature", 8, 7)] {
        let found = refusals(&records, reason);
        assert_eq!(found.len(), 2, "{reason}: {found:#?}");
        let (first, tally) = (found[0], found[1]);
        assert_eq!(first["details"]["count"], 1, "{first}");
        assert!(
            first["details"]["token_hash"]
                .as_str()
                .is_some_and(|h| h.starts_with("hmac-sha256:")),
            "{first}"
        );
        assert_eq!(tally["details"]["aggregated"], true, "{tally}");
        assert!(tally["details"]["interval_start"].is_string(), "{tally}");
        assert_eq!(tally["details"]["count"], total - 1, "{tally}");
        assert_eq!(tally["details"]["distinct_tokens"], distinct, "{tally}");
        assert_eq!(
            tally["details"]["token_hashes"].as_array().unwrap().len(),
            distinct,
            "{tally}"
        );
        for r in [first, tally] {
            assert_eq!(r["source_ip"], "127.0.0.1", "{r}");
            assert_eq!(r["user_agent"], "tokenspray/1.0", "{r}");
            assert_eq!(r["details"]["surface"], "mcp", "{r}");
        }
    }
    // No token is ever kept, only its keyed hash.
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains("not-a-jwt"));
    for token in &forged {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !all.contains(signature),
            "a token's signature is in the log"
        );
    }

    // The session start: who, from where, with what, how.
    let started: Vec<&Value> = records
        .iter()
        .filter(|r| r["kind"] == "auth" && r["details"]["event"] == "session_started")
        .collect();
    assert_eq!(started.len(), 1, "{started:#?}");
    let started = started[0];
    assert_eq!(started["principal"]["name"], "dana", "{started}");
    assert_eq!(started["source_ip"], "127.0.0.1");
    assert_eq!(started["details"]["auth_path"], "entra_token");
    assert!(started["principal"]["client_app"].is_string(), "{started}");
    // (rmcp's client sends no User-Agent; the refusals above show it kept.)
    let session = started["session_id"].as_str().unwrap();
    // The call is on that session, and its score names the failures.
    assert!(
        intent_level_at_least_high(&records),
        "dana's call is high-risk"
    );
    let intent = records
        .iter()
        .find(|r| r["kind"] == "intent" && r["principal"]["name"] == "dana")
        .expect("dana's call");
    assert_eq!(intent["session_id"], session);
    let reasons = intent["risk"]["reasons"].as_array().unwrap();
    let refused = reasons
        .iter()
        .find(|r| r["code"] == "refused_tokens")
        .unwrap_or_else(|| panic!("no refused_tokens in {}", intent["risk"]));
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .starts_with("20 refused token(s) from 127.0.0.1"),
        "{refused}"
    );
}

fn intent_level_at_least_high(records: &[Value]) -> bool {
    records
        .iter()
        .filter(|r| r["kind"] == "intent" && r["principal"]["name"] == "dana")
        .all(|r| matches!(r["risk"]["level"].as_str(), Some("high" | "critical")))
}
