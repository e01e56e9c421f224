//! The `warden` command line: config validation and the stdio front.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn warden() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warden"))
}

const STATE: &str = "[store]\npath = \"w.db\"\n[audit]\nsigning_key = \"s.key\"\nhmac_key = \"h.key\"\n\
     [policy]\ndir = \"policies\"\n";

fn check(text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    allow_all_policy(dir.path());
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, text).unwrap();
    let out = warden().arg("check-config").arg(&path).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_a_good_file() {
    let (ok, stdout, stderr) = check(&format!(
        "[identity]\ntenants = [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]\naudiences = [\"api://warden\"]\n\
         [upstreams.azure]\ncommand = \"azmcp\"\nargs = [\"server\", \"start\"]\n{STATE}",
    ));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok (1 upstream, 1 policy)"), "{stdout}");
}

#[test]
fn check_config_names_the_bad_key_and_line() {
    let (ok, _, stderr) = check(&format!(
        "[server]\nmax_sessions = 4\nmax_sesions = 5\n[upstreams.a]\ncommand = \"x\"\n[identity]\nallow_anonymous = true\n{STATE}",
    ));
    assert!(!ok);
    assert!(stderr.contains("warden.toml:3:"), "{stderr}");
    assert!(stderr.contains("max_sesions"), "{stderr}");

    let (ok, _, stderr) = check("[server]\nlisten = 8080\n[upstreams.a]\ncommand = \"x\"\n");
    assert!(!ok);
    assert!(
        stderr.contains("warden.toml:2:") && stderr.contains("invalid type"),
        "{stderr}"
    );

    let (ok, _, stderr) = check(&format!(
        "[identity]\nallow_anonymous = true\n[upstreams.a]\nargs = [\"x\"]\n{STATE}"
    ));
    assert!(!ok);
    assert!(
        stderr.contains("upstreams.a: missing `command`"),
        "{stderr}"
    );

    let (ok, _, stderr) = check("[upstreams.a]\ncommand = \"x\"\n");
    assert!(!ok);
    assert!(stderr.contains("missing field `identity`"), "{stderr}");

    let (ok, _, stderr) =
        check("[identity]\nallow_anonymous = true\n[upstreams.a]\ncommand = \"x\"\n");
    assert!(!ok);
    assert!(stderr.contains("missing field `store`"), "{stderr}");
}

#[test]
fn check_config_names_a_bad_risk_table_and_a_missing_geo_file() {
    let base =
        format!("[identity]\nallow_anonymous = true\n[upstreams.a]\ncommand = \"x\"\n{STATE}");
    let (ok, _, stderr) = check(&format!("{base}[risk]\nhigh = 95\n"));
    assert!(!ok);
    assert!(
        stderr.contains("risk.medium, risk.high, risk.critical"),
        "{stderr}"
    );

    let (ok, _, stderr) = check(&format!("{base}[risk]\ngeo = \"missing-geo.csv\"\n"));
    assert!(!ok);
    assert!(
        stderr.contains("warden.toml") && stderr.contains("risk.geo: cannot read"),
        "{stderr}"
    );
    assert!(stderr.contains("missing-geo.csv"), "{stderr}");

    let (ok, stdout, stderr) = check(&format!("{base}[risk]\nenabled = false\n"));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok (1 upstream"), "{stdout}");
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, "[server]\nlisten = \"not an address\"\n").unwrap();
    let out = warden()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warden.toml:2:"), "{stderr}");

    let missing = warden()
        .args(["serve", "--config", "/nonexistent/warden.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/warden.toml")
    );
}

#[tokio::test]
async fn stdio_front_relays_like_http() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        format!(
            "[identity]\nallow_anonymous = true\n{}{}{}",
            allow_all_policy(dir.path()),
            audit_tables(dir.path()),
            demo_stdio("demo", "stdio-front")
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    command.args(["serve", "--stdio", "--config"]).arg(&path);
    let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
    let handler = RecordingClient::default();
    let client = rmcp::ServiceExt::serve(handler.clone(), transport)
        .await
        .unwrap();
    assert_eq!(server_name(&client), "demo-upstream");
    let echoed = client
        .call_tool({
            let mut p = rmcp::model::CallToolRequestParams::new("echo");
            p.arguments = json!({"text": "over stdio"}).as_object().cloned();
            p
        })
        .await
        .unwrap();
    assert_eq!(text(&echoed), "over stdio");
    let mut p = rmcp::model::CallToolRequestParams::new("elicit_name");
    p.arguments = Some(Default::default());
    let answer = client.call_tool(p).await.unwrap();
    assert_eq!(text(&answer), "hello Ada");
}

/// `warden dev` on ports the system picks, with its state in `state`: the
/// child and its `dev.json` (written once the gateway serves).
fn warden_dev(state: &std::path::Path) -> (KillOnDrop, serde_json::Value) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["dev", "--listen", "127.0.0.1:0"])
            .args(["--issuer-listen", "127.0.0.1:0"])
            .args(["--arm-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(state)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dev_json = wait_for_dev_json(&mut child, &state.join("dev.json"));
    (child, dev_json)
}

/// Waits (60 s at most) for `warden dev` to write `path`.
fn wait_for_dev_json(child: &mut KillOnDrop, path: &std::path::Path) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("warden dev exited early ({status})");
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("warden dev wrote no {}", path.display());
}

#[tokio::test]
async fn the_walkthrough_passes_against_a_fresh_warden_dev() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("fresh");
    let (child, dev_json) = warden_dev(&state);
    let mcp_url = dev_json["mcp_url"].as_str().unwrap();
    let base = mcp_url.strip_suffix("/mcp").unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{dev_json}");
    assert_eq!(dev_json["admin_url"], format!("{base}/admin/api/requests"));
    assert_eq!(
        dev_json["pid"],
        child.id(),
        "dev.json is this run's: {dev_json}"
    );
    for persona in [
        "developer",
        "operator",
        "security-manager",
        "auditor",
        "reader",
    ] {
        assert!(
            dev_json["personas"][persona]["token"].as_str().is_some(),
            "{persona}: {dev_json}"
        );
    }
    let walkthrough = Command::new(dep("WARDEN_TEST_PYTHON"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/walkthrough.py"
        ))
        .arg("--dev-json")
        .arg(state.join("dev.json"))
        .args(["--warden", env!("CARGO_BIN_EXE_warden")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&walkthrough.stdout);
    assert!(
        walkthrough.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&walkthrough.stderr)
    );
    let mut steps = vec![
        "reader lists",
        "developer starts VM web-01 in dev-web",
        "developer may not delete VM web-02: Denied by Warden policy",
        "audit bundle exported and verified offline",
        "walkthrough passed",
    ];
    // The install script always installs the Azure MCP Server, and warden
    // dev finds it under .deps/: the walkthrough's azmcp steps must run.
    if deps().contains_key("WARDEN_TEST_AZMCP") {
        steps.extend([
            "reader lists the VMs of dev-web through the Azure MCP Server",
            "developer updates VM web-01 through azmcp after accepting its prompt",
            "developer may not delete VM web-02 through azmcp either",
            "security manager's Key Vault secret read through azmcp is held",
        ]);
    }
    for step in steps {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
}

#[tokio::test]
async fn warden_dev_serves_the_sample_upstream_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let (mut child, dev_json) = warden_dev(&state);
    let url = dev_json["mcp_url"].as_str().unwrap().to_owned();
    let issuer_url = dev_json["issuer_url"].as_str().unwrap();
    let unauthenticated = reqwest::Client::new()
        .post(&url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401, "dev mode authenticates too");
    let token = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "dev",
            "token",
            "--user",
            "alice",
            "--role",
            "Reader",
            "--issuer-url",
        ])
        .arg(issuer_url)
        .arg("--data-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    let (client, handler) = connect_as(&url, Some(token.trim())).await;
    // Two upstreams (the built-in Azure tools and the sample): Warden answers.
    assert_eq!(server_name(&client), "warden");
    let answer = call(&client, "sample__elicit_name", json!({}))
        .await
        .unwrap();
    assert_eq!(text(&answer), "hello Ada");
    assert_eq!(handler.seen().elicitations.len(), 1);
    assert!(dir.path().join("state").is_dir(), "data dir created");
    // The baseline policies decide: a reader may not run a tool that writes.
    assert!(state.join("policies/roles.cedar").is_file());
    let denied = call(&client, "sample__bump_counter", json!({}))
        .await
        .unwrap();
    assert!(
        text(&denied).contains("Warden/tools/bump_counter/write on /: no policy permits it"),
        "{}",
        text(&denied)
    );

    // The dev store's audit log verifies with the dev public key.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let verify = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "verify", "--db"])
        .arg(state.join("warden.db"))
        .arg("--key")
        .arg(state.join("audit.pub"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("OK: origin warden-dev/audit"), "{report}");
}

#[tokio::test]
async fn warden_dev_prints_a_mint_command_that_works_as_printed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Every port picked by the system: the issuer is not at its default URL.
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["dev", "--listen", "127.0.0.1:0"])
            .args(["--issuer-listen", "127.0.0.1:0"])
            .args(["--arm-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&state)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.stderr.take().unwrap();
    let (found, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(command) = line.trim_start().strip_prefix("mint more:") {
                let _ = found.send(command.trim().to_owned());
            }
        }
    });
    let command = printed
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("warden dev prints a mint command");
    let dev_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("dev.json")).unwrap()).unwrap();
    let issuer_url = dev_json["issuer_url"].as_str().unwrap();
    assert!(
        command.contains(&format!("--issuer-url {issuer_url}")),
        "{command}"
    );
    assert!(!command.contains('['), "no placeholders: {command}");

    // Pasted into a shell as printed, it mints a token the gateway accepts.
    let minted = Command::new("sh").args(["-c", &command]).output().unwrap();
    assert!(
        minted.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap();
    let response = reqwest::Client::new()
        .get(dev_json["admin_url"].as_str().unwrap())
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{command}");
    drop(child);
}

fn policies_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn policy_validate_test_and_explain() {
    let validate = warden()
        .args(["policy", "validate", "--policies"])
        .arg(policies_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&validate.stdout);
    assert!(
        validate.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    assert!(stdout.contains(": ok ("), "{stdout}");

    let test = warden()
        .args(["policy", "test"])
        .arg(policies_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success(), "{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    // The developer's custom role excludes VM deletes (a NotAction).
    let explain_with = |role: &str, mfa: bool, extra: &[&str]| {
        let mut cmd = warden();
        cmd.args(["policy", "explain", "--policies"])
            .arg(policies_dir())
            .args(["--tool", "compute_vm_delete", "--role", role, "--args"])
            .arg(
                json!({
                    "subscription": "11111111-1111-1111-1111-111111111111",
                    "resource-group": "dev-web",
                    "vm-name": "vm-1",
                })
                .to_string(),
            );
        if mfa {
            cmd.arg("--mfa");
        }
        cmd.args(extra);
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let explain = |role: &str, mfa: bool| explain_with(role, mfa, &[]);
    let developer = explain("Developer", true);
    assert_eq!(developer["decision"]["effect"], "deny", "{developer:#}");
    assert_eq!(
        developer["resolution"]["operations"][0]["azure_op"],
        "Microsoft.Compute/virtualMachines/delete"
    );
    assert_eq!(
        developer["resolution"]["operations"][0]["resource"]["id"],
        "/subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/dev-web/providers/microsoft.compute/virtualmachines/vm-1"
    );
    let contributor = explain("Contributor", false);
    assert_eq!(contributor["decision"]["effect"], "deny");
    assert_eq!(
        contributor["decision"]["advice"], "step_up",
        "{contributor:#}"
    );
    let with_mfa = explain("Contributor", true);
    assert_eq!(with_mfa["decision"]["effect"], "allow", "{with_mfa:#}");
    // Explain looks nothing up: the facts are what the command line says.
    let unknown = explain_with("Contributor", true, &["--facts", "unavailable"]);
    assert_eq!(
        unknown["decision"]["advice"], "require_approval",
        "{unknown:#}"
    );
    assert_eq!(
        unknown["decision"]["policies"],
        json!(["delete-without-facts-requires-jit"])
    );
    let prod_group = explain_with("Contributor", true, &["--group-tag", "env=prod"]);
    assert_eq!(
        prod_group["decision"]["policies"],
        json!(["prod-delete-requires-jit"]),
        "{prod_group:#}"
    );
}

#[test]
fn an_invalid_policy_is_named_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("typo.cedar"),
        "@id(\"typo\")\npermit (principal, action == Action::\"Microsoft.Compute/virtualMachinez/read\", resource);\n",
    )
    .unwrap();
    let out = warden()
        .args(["policy", "validate", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("typo.cedar:"), "{stderr}");
    assert!(stderr.contains("virtualMachinez"), "{stderr}");
}

/// Stdout for a child whose reader has already gone: every write to it
/// fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// Runs `command` with its stdout closed by its reader: its exit status and
/// its stderr, which must not report a panic or the broken pipe.
fn run_into_closed_pipe(mut command: Command) -> (std::process::ExitStatus, String) {
    let out = command
        .stdout(closed_pipe())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("broken pipe"), "{stderr}");
    (out.status, stderr)
}

/// The exit status of `make()` run as usual and run into a closed pipe
/// (which must not panic); they must agree.
fn same_status_into_a_closed_pipe(make: impl Fn() -> Command) -> std::process::ExitStatus {
    let usual = make().output().unwrap();
    let (closed, stderr) = run_into_closed_pipe(make());
    assert!(!usual.stdout.is_empty(), "the command prints something");
    assert_eq!(closed.code(), usual.status.code(), "{stderr}");
    closed
}

#[tokio::test]
async fn output_to_a_reader_that_closes_early_ends_quietly() {
    let explain = same_status_into_a_closed_pipe(|| {
        let mut explain = warden();
        explain
            .args(["policy", "explain", "--policies"])
            .arg(policies_dir())
            .args(["--tool", "compute_vm_get", "--role", "Reader"]);
        explain
    });
    assert!(explain.success());
    let test = same_status_into_a_closed_pipe(|| {
        let mut test = warden();
        test.args(["policy", "test", "--verbose"])
            .arg(policies_dir());
        test
    });
    assert!(test.success());

    let warden_serve = Warden::start("", &demo_stdio("demo", "pipe"));
    let (client, _) = connect(&warden_serve.url()).await;
    call(&client, "echo", json!({"text": "first"}))
        .await
        .unwrap();
    // A live log has records no checkpoint covers yet: verify fails (1)
    // either way.
    same_status_into_a_closed_pipe(|| {
        let mut verify = warden();
        verify
            .args(["audit", "verify", "--db"])
            .arg(warden_serve.db())
            .arg("--key")
            .arg(warden_serve.public_key());
        verify
    });
    let mut tail = warden();
    tail.args(["audit", "tail", "--from-seq", "0", "--db"])
        .arg(warden_serve.db());
    assert!(run_into_closed_pipe(tail).0.success(), "tail stops");

    // `warden audit tail | head -1`: the reader takes one line and goes;
    // the next record tail prints ends it.
    let mut tail = KillOnDrop(
        warden()
            .args(["audit", "tail", "--from-seq", "0", "--db"])
            .arg(warden_serve.db())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(tail.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.contains("\"seq\":0"), "{first}");
    call(&client, "echo", json!({"text": "second"}))
        .await
        .unwrap();
    let status = tail.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_stdio_with_a_closed_stdout_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        format!(
            "[identity]\nallow_anonymous = true\n{}{}{}",
            allow_all_policy(dir.path()),
            audit_tables(dir.path()),
            demo_stdio("demo", "closed-stdout")
        ),
    )
    .unwrap();
    let mut serve = warden()
        .args(["serve", "--stdio", "--config"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(closed_pipe())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "closed-stdout", "version": "0"}},
    });
    let mut stdin = serve.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{initialize}\n").as_bytes()).unwrap();
    // The answer cannot be written: the session ends, and Warden with it,
    // through its shutdown (a signal would have killed it instead).
    let out = serve.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.code().is_some(),
        "exited, not killed by a signal: {:?}",
        out.status
    );
    let verify = warden()
        .args(["audit", "verify", "--db"])
        .arg(dir.path().join("warden.db"))
        .arg("--key")
        .arg(dir.path().join("audit.pub"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
}
