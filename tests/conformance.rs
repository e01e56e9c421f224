//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! pinned and installed into `.deps/` by `scripts/install-test-deps.sh`, run
//! with the Node 22 installed beside it) against our reference server,
//! `examples/everything_server.rs`:
//!
//! - directly, over Streamable HTTP;
//! - through Warden, with the server as a stdio upstream;
//! - through Warden, with the server as a Streamable HTTP upstream.
//!
//! Warden runs with its default `[server]` settings (only `listen` is set),
//! anonymous identity and an allow-all policy. The scenarios are the ones
//! `conformance list --server` names (the whole suite, pending scenarios
//! too); none is exempt: rmcp supports everything they ask for, so the
//! direct run must pass every one. Every scenario that passes directly must
//! also pass through both Warden paths.
//!
//! A scenario passes when the suite recorded its checks and none of them is
//! a `FAILURE` (warnings and infos do not fail, as in the suite's own exit
//! code). The suite writes each scenario's checks to
//! `<output dir>/server-<scenario>-<timestamp>/checks.json`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A run of the suite that has not finished by then is stopped, and the
/// scenarios it did not get to are reported as failed. Not a timing
/// assertion: a guard against a relay that hangs (the suite's client waits
/// 60 s for each answer).
const SUITE_LIMIT: Duration = Duration::from_secs(300);

/// The installed suite: `node cli ...`.
struct Suite {
    node: String,
    cli: String,
}

impl Suite {
    fn installed() -> Suite {
        let suite = Suite {
            node: dep("WARDEN_TEST_NODE22"),
            cli: dep("WARDEN_TEST_CONFORMANCE"),
        };
        for file in [&suite.node, &suite.cli] {
            assert!(
                Path::new(file).is_file(),
                "{file} is missing; rerun scripts/install-test-deps.sh"
            );
        }
        suite
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.node);
        command.arg(&self.cli).env("NO_COLOR", "1");
        command
    }

    /// Every server scenario the suite has, in its order.
    fn server_scenarios(&self) -> Vec<String> {
        let output = self
            .command()
            .args(["list", "--server"])
            .output()
            .expect("run conformance list --server");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "conformance list --server failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        // Lines are `  - name [spec versions]`.
        let scenarios: Vec<String> = stdout
            .lines()
            .filter_map(|line| line.trim().strip_prefix("- "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        assert!(
            !scenarios.is_empty(),
            "conformance list --server named no scenario:\n{stdout}"
        );
        scenarios
    }

    /// Runs every server scenario against `url`; `out` receives the suite's
    /// result files and its console output.
    fn run(&self, label: &str, url: &str, scenarios: &[String], out: &Path) -> Run {
        std::fs::create_dir_all(out).expect("suite output dir");
        let console = out.join("console.txt");
        let log = std::fs::File::create(&console).expect("console file");
        let mut child = KillOnDrop(
            self.command()
                .args(["server", "--suite", "all", "--url", url, "--output-dir"])
                .arg(out)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("console file"))
                .stderr(log)
                .spawn()
                .expect("start the conformance suite"),
        );
        let started = Instant::now();
        let mut stopped = false;
        while child.try_wait().expect("wait for the suite").is_none() {
            if started.elapsed() > SUITE_LIMIT {
                let _ = child.kill();
                stopped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.wait();
        let mut outcomes = read_results(out);
        for scenario in scenarios {
            outcomes.entry(scenario.clone()).or_insert_with(|| {
                let why = if stopped {
                    format!(
                        "stopped after {} s before it finished",
                        SUITE_LIMIT.as_secs()
                    )
                } else {
                    "it wrote no checks".to_owned()
                };
                Outcome::Failed(vec![format!(
                    "no result: {why} (console: {})",
                    console.display()
                )])
            });
        }
        Run {
            label: label.to_owned(),
            outcomes,
            seconds: started.elapsed().as_secs_f64(),
            console: std::fs::read_to_string(&console).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// With `[check id] message` of each check that warned.
    Passed(Vec<String>),
    /// `[check id] message` of each failed check.
    Failed(Vec<String>),
}

impl Outcome {
    fn passed(&self) -> bool {
        matches!(self, Outcome::Passed(_))
    }
}

/// One run of the suite against one path.
struct Run {
    label: String,
    outcomes: BTreeMap<String, Outcome>,
    seconds: f64,
    console: String,
}

impl Run {
    fn outcome(&self, scenario: &str) -> &Outcome {
        &self.outcomes[scenario]
    }

    /// One line per failed scenario of `scenarios`, with the suite's messages.
    fn failures(&self, scenarios: &[&String]) -> Vec<String> {
        scenarios
            .iter()
            .filter_map(|scenario| match self.outcome(scenario) {
                Outcome::Passed(_) => None,
                Outcome::Failed(checks) => Some(format!(
                    "{}: {scenario} failed: {}",
                    self.label,
                    checks.join(" | ")
                )),
            })
            .collect()
    }
}

/// The outcome of each scenario in the suite's output dir.
fn read_results(out: &Path) -> BTreeMap<String, Outcome> {
    let mut outcomes = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("suite output dir").flatten() {
        let dir = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = scenario_of_result_dir(&dir) else {
            continue;
        };
        let file = entry.path().join("checks.json");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let checks: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a list of checks: {e}", file.display()));
        let with_status = |status: &str| -> Vec<String> {
            checks
                .iter()
                .filter(|check| check["status"] == status)
                .map(|check| {
                    let message = check["errorMessage"]
                        .as_str()
                        .or(check["description"].as_str())
                        .unwrap_or("(no message)");
                    format!("[{}] {message}", check["id"].as_str().unwrap_or("?"))
                })
                .collect()
        };
        let failed = with_status("FAILURE");
        let outcome = if failed.is_empty() {
            Outcome::Passed(with_status("WARNING"))
        } else {
            Outcome::Failed(failed)
        };
        outcomes.insert(scenario.to_owned(), outcome);
    }
    outcomes
}

/// `server-<scenario>-<ISO timestamp with : and . as ->` -> `<scenario>`.
fn scenario_of_result_dir(dir: &str) -> Option<&str> {
    const STAMP: usize = "-2026-01-01T00-00-00-000Z".len();
    let rest = dir.strip_prefix("server-")?;
    let cut = rest.len().checked_sub(STAMP)?;
    let (scenario, stamp) = rest.split_at(cut);
    let digits = stamp.bytes().filter(u8::is_ascii_digit).count();
    (stamp.starts_with('-') && stamp.ends_with('Z') && digits == 17).then_some(scenario)
}

/// The everything server over Streamable HTTP on a port of its own choosing.
struct HttpServer {
    _child: KillOnDrop,
    url: String,
}

fn everything_http() -> HttpServer {
    let (child, url) = spawn_listening(
        Command::new(example("everything_server")),
        "everything_server",
    );
    HttpServer {
        _child: KillOnDrop(child),
        url,
    }
}

/// Warden's WARN and ERROR log lines (the last 20), to explain a failure.
fn warden_warnings(warden: &Warden) -> String {
    let log = warden.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
        .collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// scenario | outcome per run (`pass*`: passed with warnings, listed below
/// the table), for the report.
fn table(scenarios: &[String], runs: &[&Run]) -> String {
    let width = scenarios.iter().map(String::len).max().unwrap_or(0);
    let mut out = format!("{:width$}", "scenario");
    for run in runs {
        out += &format!(" | {:>14}", run.label);
    }
    out.push('\n');
    for scenario in scenarios {
        out += &format!("{scenario:width$}");
        for run in runs {
            let mark = match run.outcome(scenario) {
                Outcome::Passed(warnings) if warnings.is_empty() => "pass",
                Outcome::Passed(_) => "pass*",
                Outcome::Failed(_) => "FAIL",
            };
            out += &format!(" | {mark:>14}");
        }
        out.push('\n');
    }
    for run in runs {
        for (scenario, outcome) in &run.outcomes {
            if let Outcome::Passed(warnings) = outcome {
                for warning in warnings {
                    out += &format!("{}: {scenario} warned: {warning}\n", run.label);
                }
            }
        }
    }
    for run in runs {
        out += &format!("{}: {:.1} s\n", run.label, run.seconds);
    }
    out
}

fn output_dir(root: &tempfile::TempDir, name: &str) -> PathBuf {
    root.path().join(name)
}

#[test]
fn the_reference_server_passes_every_server_scenario() {
    let suite = Suite::installed();
    let scenarios = suite.server_scenarios();
    let server = everything_http();
    let out = tempfile::tempdir().expect("tempdir");
    let run = suite.run(
        "direct",
        &server.url,
        &scenarios,
        &output_dir(&out, "direct"),
    );
    let all: Vec<&String> = scenarios.iter().collect();
    let failures = run.failures(&all);
    assert!(
        failures.is_empty(),
        "the everything server fails scenarios directly:\n{}\n\n{}\nsuite console:\n{}",
        failures.join("\n"),
        table(&scenarios, &[&run]),
        run.console
    );
}

#[test]
fn warden_passes_every_scenario_the_server_passes_directly() {
    let suite = Suite::installed();
    let scenarios = suite.server_scenarios();
    let direct_server = everything_http();
    let upstream_server = everything_http();
    let stdio_upstream = format!(
        "[upstreams.everything]\ncommand = {:?}\n",
        example("everything_server").display().to_string()
    );
    let http_upstream = format!("[upstreams.everything]\nurl = {:?}\n", upstream_server.url);
    // Default `[server]` settings; `Warden::start` sets anonymous identity
    // and the allow-all test policy.
    let via_stdio = Warden::start("", &stdio_upstream);
    let via_http = Warden::start("", &http_upstream);

    let out = tempfile::tempdir().expect("tempdir");
    let paths = [
        ("direct", direct_server.url.clone()),
        ("warden+stdio", via_stdio.url()),
        ("warden+http", via_http.url()),
    ];
    // The three runs are independent sessions on independent servers.
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|(label, url)| {
                let (suite, scenarios, dir) = (&suite, &scenarios, output_dir(&out, label));
                scope.spawn(move || suite.run(label, url, scenarios, &dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("suite run"))
            .collect()
    });
    let [direct, stdio, http] = &runs[..] else {
        unreachable!("three paths")
    };

    let baseline: Vec<&String> = scenarios
        .iter()
        .filter(|s| direct.outcome(s).passed())
        .collect();
    assert!(
        !baseline.is_empty(),
        "the direct run passed no scenario, so there is nothing to compare:\n{}",
        direct.console
    );
    let mut failures = stdio.failures(&baseline);
    failures.extend(http.failures(&baseline));
    let report = table(&scenarios, &[direct, stdio, http]);
    if failures.is_empty() {
        eprintln!("{report}");
    }
    assert!(
        failures.is_empty(),
        "scenarios that pass directly fail through Warden:\n{}\n\n{report}\n\
         warden (stdio upstream) warnings:\n{}\n\nwarden (http upstream) warnings:\n{}",
        failures.join("\n"),
        warden_warnings(&via_stdio),
        warden_warnings(&via_http),
    );
}

#[test]
fn result_dirs_name_their_scenario() {
    assert_eq!(
        scenario_of_result_dir("server-tools-call-simple-text-2026-12-04T21-20-10-879Z"),
        Some("tools-call-simple-text")
    );
    assert_eq!(
        scenario_of_result_dir("server-ping-2026-12-04T21-20-10-879Z"),
        Some("ping")
    );
    assert_eq!(scenario_of_result_dir("console.txt"), None);
    assert_eq!(scenario_of_result_dir("server-ping"), None);
}
