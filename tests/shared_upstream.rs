//! A shared upstream child (`serve = "http"`): one process, started with
//! Warden, serving every client session over Streamable HTTP, each session
//! on an MCP session of its own. Calls still go through the pipeline (an
//! audit intent and outcome each), what the child asks of a client reaches
//! the client whose call caused it, and a child that dies fails its calls
//! at once and is started again for new sessions.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Long enough that only a hang would exceed it; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

/// The demo upstream as one shared child, on a free TCP port (`{addr}`),
/// or on a Unix socket its argument names (`{socket}`).
fn shared_demo(listen: &str) -> String {
    let (listen, args) = match listen {
        "tcp" => ("tcp", r#"["--http", "{addr}"]"#),
        _ => ("unix", r#"["--http-socket", "{socket}"]"#),
    };
    format!(
        "[upstreams.demo]\ncommand = {:?}\nargs = {args}\nenv = {{ DEMO_TAG = \"shared\" }}\n\
         serve = \"http\"\nlisten = \"{listen}\"\n",
        example("demo_upstream").display().to_string()
    )
}

/// The process id `whoami` names.
fn pid_of(who: &str) -> u32 {
    who.split(|c: char| !c.is_ascii_digit())
        .rfind(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("pid in {who:?}"))
}

#[tokio::test]
async fn one_child_serves_concurrent_sessions_each_with_its_own_client_requests() {
    let warden = InProcess::start("", &shared_demo("tcp"));
    // Three sessions at once; the second one's user declines elicitations.
    let mut sessions = Vec::new();
    for handler in [
        RecordingClient::default(),
        RecordingClient::declining(),
        RecordingClient::default(),
    ] {
        sessions.push(connect_with(&warden.url(), None, handler).await);
    }
    let calls = sessions.iter().map(|(client, _)| async move {
        let who = text(&call(client, "whoami", json!({})).await.expect("whoami"));
        let name = text(
            &call(client, "elicit_name", json!({}))
                .await
                .expect("elicit"),
        );
        (who, name)
    });
    let answers = futures::future::join_all(calls).await;

    // One process answered every session.
    let pids: Vec<u32> = answers.iter().map(|(who, _)| pid_of(who)).collect();
    assert!(
        answers.iter().all(|(who, _)| who.contains("tag=shared")),
        "{answers:?}"
    );
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    wait_for_metrics(
        &warden.base(),
        &["warden_upstream_children"],
        "warden_upstream_children 1",
    )
    .await;

    // Each elicitation reached the client whose call asked for it, and only
    // that one: the declining user's call was declined, the others' were
    // answered.
    let names: Vec<&str> = answers.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["hello Ada", "declined", "hello Ada"]);
    for (client, handler) in &sessions {
        assert_eq!(
            handler.seen().elicitations,
            ["What is your name?"],
            "{:?}",
            client.peer_info()
        );
    }

    // Every call went through the pipeline: an intent and an outcome each.
    let records = wait_for_records(&warden.db(), |all| {
        all.iter().filter(|r| r["kind"] == "outcome").count() >= 6
    })
    .await;
    for tool in ["whoami", "elicit_name"] {
        let intents: Vec<_> = records
            .iter()
            .filter(|r| r["kind"] == "intent" && r["tool"] == tool)
            .collect();
        assert_eq!(intents.len(), 3, "{tool}: {records:?}");
        for intent in intents {
            assert!(
                records
                    .iter()
                    .any(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"]),
                "{tool}: no outcome for {intent}"
            );
        }
    }

    // /readyz reports the shared child.
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", warden.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let demo = &ready["upstreams"]["demo"];
    assert_eq!(demo["ready"], true, "{ready}");
    assert!(
        demo["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&format!("pid {}", pids[0]))),
        "{ready}"
    );
}

#[tokio::test]
async fn a_crashed_shared_child_fails_its_calls_at_once_and_is_started_again() {
    let warden = InProcess::start("", &shared_demo("unix"));
    let (waiting, _) = connect(&warden.url()).await;
    let (crashing, _) = connect(&warden.url()).await;
    let first = pid_of(&text(&call(&waiting, "whoami", json!({})).await.unwrap()));

    // One session's call waits in the child while another's kills it.
    let pending = tokio::spawn(async move {
        let result = call(&waiting, "wait_for_cancel", json!({})).await;
        (waiting, result)
    });
    let crashed = tokio::time::timeout(HANG_GUARD, call(&crashing, "crash", json!({})))
        .await
        .expect("no hang on the crash");
    let error = crashed
        .expect_err("a crashed child is an error")
        .to_string();
    assert!(error.contains("upstream 'demo'"), "{error}");
    let (waiting, result) = tokio::time::timeout(HANG_GUARD, pending)
        .await
        .expect("no hang for the call in flight on the crashed child")
        .unwrap();
    let error = result.expect_err("the call in flight fails").to_string();
    assert!(
        error.contains("upstream 'demo'") && error.contains("shared server stopped"),
        "{error}"
    );
    assert!(error.contains("exit status: 3"), "{error}");

    // The sessions that were on it report it, at once.
    let again = tokio::time::timeout(HANG_GUARD, call(&waiting, "whoami", json!({})))
        .await
        .expect("no hang after the crash")
        .expect_err("the old session's upstream is gone")
        .to_string();
    assert!(again.contains("start a new session"), "{again}");

    // A new session gets the child started again.
    let (fresh, _) = connect(&warden.url()).await;
    let second = pid_of(&text(&call(&fresh, "whoami", json!({})).await.unwrap()));
    assert_ne!(first, second, "a new child serves new sessions");

    // The calls' outcomes are recorded as errors.
    let records = wait_for_records(&warden.db(), |all| {
        all.iter()
            .filter(|r| r["kind"] == "outcome" && r["status"] == "error")
            .count()
            >= 2
    })
    .await;
    for tool in ["crash", "wait_for_cancel"] {
        let intent = records
            .iter()
            .find(|r| r["kind"] == "intent" && r["tool"] == tool)
            .unwrap_or_else(|| panic!("no intent for {tool}: {records:?}"));
        let outcome = records
            .iter()
            .find(|r| r["kind"] == "outcome" && r["call_id"] == intent["call_id"])
            .unwrap_or_else(|| panic!("no outcome for {tool}: {records:?}"));
        assert_eq!(outcome["status"], "error", "{outcome}");
    }
}

#[tokio::test]
async fn a_shared_child_that_cannot_serve_stops_warden_from_starting() {
    let dir = Setup {
        server_extra: "upstream_init_timeout = \"5s\"",
        identity: "allow_anonymous = true",
        upstreams: "[upstreams.demo]\ncommand = \"false\"\nargs = [\"{addr}\"]\n\
                    serve = \"http\"\nlisten = \"tcp\"\n",
        ..Setup::default()
    }
    .write();
    let config = warden::config::Config::load(&dir.path().join("warden.toml")).unwrap();
    let listeners = warden::app::Listeners::bind(&config).await.unwrap();
    let error = warden::app::run(
        config,
        listeners,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect_err("Warden does not start without its shared child")
    .to_string();
    assert!(
        error.contains("upstream 'demo'") && error.contains("exited before it served"),
        "{error}"
    );
}
