//! Everything MCP carries is relayed faithfully through a real `warden serve`
//! to real upstream processes, seen by a real rmcp client.
#![allow(deprecated)]

mod common;

use common::*;
use rmcp::model::*;
use rmcp::service::PeerRequestOptions;
use serde_json::json;

fn single() -> InProcess {
    InProcess::start("", &demo_stdio("demo", "solo"))
}

#[tokio::test]
async fn initialize_mirrors_the_upstream() {
    let warden = single();
    let (client, _) = connect(&warden.url()).await;
    let info = client.peer_info().expect("server info");
    let server = info.server_info.as_ref().expect("implementation");
    assert_eq!(server.name, "demo-upstream");
    assert_eq!(server.version, "1.2.3");
    assert_eq!(
        info.instructions.as_deref(),
        Some("Demo upstream for Warden tests")
    );
    let caps = &info.capabilities;
    assert!(caps.tools.is_some() && caps.prompts.is_some() && caps.completions.is_some());
    assert_eq!(
        caps.resources.as_ref().and_then(|r| r.subscribe),
        Some(true)
    );
    assert!(caps.logging.is_some());
    assert!(
        ["2025-06-18", "2025-11-25"].contains(&info.protocol_version.as_str()),
        "{}",
        info.protocol_version
    );
    client
        .send_request(ClientRequest::PingRequest(PingRequest::default()))
        .await
        .expect("ping answers");
}

#[tokio::test]
async fn tools_list_follows_the_upstream_pages_and_keeps_annotations() {
    let warden = single();
    let (client, _) = connect(&warden.url()).await;
    let first = client.list_tools(None).await.expect("first page");
    assert_eq!(first.tools.len(), 5, "upstream pages by 5");
    assert!(first.next_cursor.is_some(), "cursor relayed");
    let all = client.list_all_tools().await.expect("all pages");
    let names: Vec<_> = all.iter().map(|t| t.name.to_string()).collect();
    for expected in [
        "echo",
        "add",
        "progress",
        "elicit_name",
        "sample",
        "crash",
        "whoami",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} in {names:?}"
        );
    }
    let echo = all.iter().find(|t| t.name == "echo").expect("echo");
    assert_eq!(
        echo.annotations.as_ref().and_then(|a| a.read_only_hint),
        Some(true)
    );
    let crash = all.iter().find(|t| t.name == "crash").expect("crash");
    assert_eq!(
        crash.annotations.as_ref().and_then(|a| a.destructive_hint),
        Some(true)
    );
    assert!(echo.input_schema.get("properties").is_some());
}

#[tokio::test]
async fn tool_results_and_errors_come_back_unchanged() {
    let warden = single();
    let (client, _) = connect(&warden.url()).await;
    let echoed = call(&client, "echo", json!({"text": "héllo"}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "héllo");
    let sum = call(&client, "add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(text(&sum), "42");
    let failed = call(&client, "tool_error", json!({})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text(&failed), "tool failed on purpose");
    match call(&client, "fail", json!({})).await {
        Err(rmcp::ServiceError::McpError(error)) => {
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
            assert_eq!(error.message, "deliberate failure");
        }
        other => panic!("expected the upstream's JSON-RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn progress_arrives_with_the_clients_own_token() {
    let warden = single();
    let (client, handler) = connect(&warden.url()).await;
    let mut params = CallToolRequestParams::new("progress");
    params.arguments = json!({"steps": 3, "delay_ms": 50}).as_object().cloned();
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let result = handle.await_response().await.unwrap();
    let ServerResult::CallToolResult(result) = result else {
        panic!("unexpected {result:?}")
    };
    assert_eq!(text(&result), "done 3");
    eventually("3 progress notifications", || {
        handler.seen().progress.len() == 3
    })
    .await;
    let seen = handler.seen();
    assert!(seen.progress.iter().all(|p| p.progress_token == token));
    let steps: Vec<f64> = seen.progress.iter().map(|p| p.progress).collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0]);
    assert_eq!(seen.progress[2].message.as_deref(), Some("step 3"));
}

/// Warden with the sample upstream over Streamable HTTP, whose tool calls
/// Warden posts itself (`src/executor/post.rs`), and the upstream process.
fn remote() -> (InProcess, KillOnDrop) {
    let (upstream, port) = demo_http("remote");
    let warden = InProcess::start(
        "",
        &format!("[upstreams.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\n"),
    );
    (warden, KillOnDrop(upstream))
}

#[tokio::test]
async fn cancellation_reaches_the_upstream() {
    let warden = single();
    cancel_and_count(&warden.url()).await;
}

#[tokio::test]
async fn cancellation_reaches_an_http_upstream() {
    let (warden, _upstream) = remote();
    cancel_and_count(&warden.url()).await;
}

/// Cancels a call the upstream holds until cancelled, and sees the
/// upstream count the cancellation.
async fn cancel_and_count(url: &str) {
    let (client, _) = connect(url).await;
    let before = call(&client, "cancellations", json!({})).await.unwrap();
    assert_eq!(text(&before), "0");
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new(
                "wait_for_cancel",
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    handle
        .cancel(Some("user pressed stop".into()))
        .await
        .unwrap();
    let mut count = String::new();
    for _ in 0..100 {
        count = text(&call(&client, "cancellations", json!({})).await.unwrap());
        if count == "1" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count, "1", "the upstream saw the cancellation");
}

#[tokio::test]
async fn elicitation_sampling_and_roots_reach_the_calling_client() {
    let warden = single();
    let (client, handler) = connect(&warden.url()).await;
    let answer = call(&client, "elicit_name", json!({})).await.unwrap();
    assert_eq!(text(&answer), "hello Ada");
    assert_eq!(handler.seen().elicitations, vec!["What is your name?"]);

    let answer = call(&client, "sample", json!({"prompt": "meaning of life?"}))
        .await
        .unwrap();
    assert_eq!(text(&answer), "model said: 42");
    assert!(handler.seen().samplings[0].contains("meaning of life?"));

    let answer = call(&client, "list_roots", json!({})).await.unwrap();
    assert_eq!(text(&answer), "file:///work");
    assert_eq!(handler.seen().roots_requests, 1);
}

#[tokio::test]
async fn an_upstream_cancelling_its_own_request_reaches_the_client() {
    let warden = single();
    impatient_elicitation(&warden.url()).await;
}

#[tokio::test]
async fn an_http_upstream_cancelling_its_own_request_reaches_the_client() {
    let (warden, _upstream) = remote();
    impatient_elicitation(&warden.url()).await;
}

/// The upstream asks the client for a name on the call's stream, gives up
/// waiting and cancels its request; the client sees the cancellation.
async fn impatient_elicitation(url: &str) {
    let (client, handler) = connect(url).await;
    let answer = call(&client, "elicit_impatiently", json!({}))
        .await
        .unwrap();
    assert_eq!(text(&answer), "gave up waiting");
    eventually("the client saw the cancellation", || {
        handler.seen().cancelled_by_server == ["Quick, your name?"]
    })
    .await;
}

#[tokio::test]
async fn logging_level_and_messages_are_relayed() {
    let warden = single();
    let (client, handler) = connect(&warden.url()).await;
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .unwrap();
    let logged = call(
        &client,
        "log",
        json!({"level": "debug", "message": "deep detail"}),
    )
    .await
    .unwrap();
    assert_eq!(text(&logged), "logged");
    eventually("log message", || !handler.seen().logs.is_empty()).await;
    {
        let seen = handler.seen();
        assert_eq!(seen.logs[0].level, LoggingLevel::Debug);
        assert_eq!(seen.logs[0].logger.as_deref(), Some("demo"));
        assert_eq!(seen.logs[0].data, json!("deep detail"));
    }
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Error))
        .await
        .unwrap();
    let filtered = call(&client, "log", json!({"level": "info", "message": "noise"}))
        .await
        .unwrap();
    assert_eq!(text(&filtered), "filtered");
}

#[tokio::test]
async fn resources_templates_reads_and_subscriptions() {
    let warden = single();
    let (client, handler) = connect(&warden.url()).await;
    let resources = client.list_all_resources().await.unwrap();
    let uris: Vec<_> = resources.iter().map(|r| r.uri.clone()).collect();
    assert!(uris.contains(&"demo://greeting".to_owned()), "{uris:?}");
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "demo://items/{id}")
    );

    let read = client
        .read_resource(ReadResourceRequestParams::new("demo://items/7"))
        .await
        .unwrap();
    let contents = serde_json::to_value(&read.contents).unwrap();
    assert_eq!(contents[0]["text"], "item 7");
    assert_eq!(contents[0]["uri"], "demo://items/7");

    let missing = client
        .read_resource(ReadResourceRequestParams::new("demo://nope"))
        .await;
    assert!(
        missing.is_err(),
        "unknown resource is an error: {missing:?}"
    );

    client
        .subscribe(SubscribeRequestParams::new("demo://counter"))
        .await
        .unwrap();
    call(&client, "bump_counter", json!({})).await.unwrap();
    eventually("resource updated", || {
        handler
            .seen()
            .resource_updates
            .contains(&"demo://counter".to_owned())
    })
    .await;
    client
        .unsubscribe(UnsubscribeRequestParams::new("demo://counter"))
        .await
        .unwrap();
}

#[tokio::test]
async fn prompts_and_completion() {
    let warden = single();
    let (client, _) = connect(&warden.url()).await;
    let prompts = client.list_all_prompts().await.unwrap();
    assert!(prompts.iter().any(|p| p.name == "greet"));
    let mut params = GetPromptRequestParams::new("greet");
    params.arguments = json!({"name": "Ada"}).as_object().cloned();
    let prompt = client.get_prompt(params).await.unwrap();
    let message = serde_json::to_value(&prompt.messages[0]).unwrap();
    assert_eq!(message["content"]["text"], "Please greet Ada.");

    let completion = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("greet"),
            ArgumentInfo::new("name", "al"),
        ))
        .await
        .unwrap();
    assert_eq!(completion.completion.values, vec!["alice", "albert"]);
}

#[tokio::test]
async fn list_changed_notifications_are_relayed() {
    let warden = single();
    let (client, handler) = connect(&warden.url()).await;
    call(&client, "notify_changes", json!({})).await.unwrap();
    eventually("three list_changed notifications", || {
        let seen = handler.seen();
        seen.tool_list_changed >= 1
            && seen.prompt_list_changed >= 1
            && seen.resource_list_changed >= 1
    })
    .await;
}

#[tokio::test]
async fn each_session_gets_its_own_child() {
    let warden = single();
    let (a, _) = connect(&warden.url()).await;
    let (b, _) = connect(&warden.url()).await;
    let who_a = text(&call(&a, "whoami", json!({})).await.unwrap());
    let who_b = text(&call(&b, "whoami", json!({})).await.unwrap());
    assert!(who_a.contains("solo"), "{who_a}");
    assert_ne!(who_a, who_b, "different processes");
    let metrics = metric_lines(&warden.base(), &["warden_"]).await;
    assert!(metrics.contains("warden_upstream_children 2"), "{metrics}");
    assert!(metrics.contains("warden_sessions 2"), "{metrics}");
    assert!(
        metrics.contains(r#"warden_mcp_requests_total{method="tools/call",outcome="ok"} 2"#),
        "{metrics}"
    );
    drop(b.cancel().await);
    wait_for_metrics(
        &warden.base(),
        &["warden_upstream_children "],
        "warden_upstream_children 1",
    )
    .await;
}

#[tokio::test]
async fn several_upstreams_are_namespaced_and_routed_back() {
    let upstreams = format!(
        "{}{}",
        demo_stdio("one", "first"),
        demo_stdio("two", "second")
    );
    let warden = InProcess::start("", &upstreams);
    let (client, handler) = connect(&warden.url()).await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "warden");
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(instructions.contains("[one]") && instructions.contains("[two]"));

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(names.contains(&"one__echo".to_owned()) && names.contains(&"two__echo".to_owned()));
    let one = names.iter().filter(|n| n.starts_with("one__")).count();
    let two = names.iter().filter(|n| n.starts_with("two__")).count();
    assert!(
        one > 0 && one == two,
        "both upstreams listed fully: {names:?}"
    );
    let who = text(&call(&client, "two__whoami", json!({})).await.unwrap());
    assert!(who.contains("second"), "{who}");
    let answer = call(&client, "one__elicit_name", json!({})).await.unwrap();
    assert_eq!(text(&answer), "hello Ada");
    assert!(
        call(&client, "three__echo", json!({"text": "x"}))
            .await
            .is_err()
    );
    assert!(call(&client, "echo", json!({"text": "x"})).await.is_err());

    let read = client
        .read_resource(ReadResourceRequestParams::new("two+demo://greeting"))
        .await
        .unwrap();
    let contents = serde_json::to_value(&read.contents).unwrap();
    assert_eq!(contents[0]["text"], "hello from demo");
    assert_eq!(contents[0]["uri"], "two+demo://greeting");
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "one+demo://items/{id}")
    );

    let mut params = GetPromptRequestParams::new("two__greet");
    params.arguments = json!({"name": "Bo"}).as_object().cloned();
    let prompt = client.get_prompt(params).await.unwrap();
    let message = serde_json::to_value(&prompt.messages[0]).unwrap();
    assert_eq!(message["content"]["text"], "Please greet Bo.");
    let completion = client
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("one__greet"),
            ArgumentInfo::new("name", "b"),
        ))
        .await
        .unwrap();
    assert_eq!(completion.completion.values, vec!["bob"]);

    client
        .subscribe(SubscribeRequestParams::new("one+demo://counter"))
        .await
        .unwrap();
    call(&client, "one__bump_counter", json!({})).await.unwrap();
    eventually("namespaced resource update", || {
        handler
            .seen()
            .resource_updates
            .contains(&"one+demo://counter".to_owned())
    })
    .await;
}

#[tokio::test]
async fn remote_http_upstream_relays_nested_requests_and_progress() {
    let (mut upstream, port) = demo_http("remote");
    let warden = InProcess::start(
        "",
        &format!(
            "[upstreams.remote]\nurl = \"http://127.0.0.1:{port}/mcp\"\nheaders = {{ X-Demo = \"1\" }}\n"
        ),
    );
    let (client, handler) = connect(&warden.url()).await;
    let who = text(&call(&client, "whoami", json!({})).await.unwrap());
    assert!(who.contains("remote"), "{who}");
    let answer = call(&client, "elicit_name", json!({})).await.unwrap();
    assert_eq!(text(&answer), "hello Ada");
    let answer = call(&client, "sample", json!({"prompt": "hi"}))
        .await
        .unwrap();
    assert_eq!(text(&answer), "model said: 42");
    // The upstream answers right after its last progress (the order on the
    // wire is checked in tests/relay_streams.rs; this client's SDK handles
    // notifications on tasks of their own, hence `eventually`).
    let result = call(&client, "progress", json!({"steps": 2, "delay_ms": 0}))
        .await
        .unwrap();
    assert_eq!(text(&result), "done 2");
    eventually("progress over HTTP upstream", || {
        handler.seen().progress.len() == 2
    })
    .await;
    let ready = reqwest::get(format!("{}/readyz", warden.base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let _ = upstream.kill();
    let _ = upstream.wait();
}
