use std::net::IpAddr;

use super::*;
use crate::response::config::{Trigger, baseline_rules};

const T0: i64 = 1_793_610_000_000; // 2026-11-02T09:00:00Z

fn call(who: &str, at_ms: i64, op: &str, class: RiskClass, outcome: Outcome) -> Event {
    Event {
        at_ms,
        origin: Origin {
            input: 0,
            place: Place::Line(0),
        },
        what: What::Call(Call {
            tenant: "t".into(),
            principal: who.into(),
            name: who.into(),
            kind: "user".into(),
            roles: Vec::new(),
            source_ip: Some("198.51.100.1".parse().unwrap()),
            operations: vec![CallOp::new(
                op,
                class,
                Some(
                    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm",
                ),
            )],
            cost: None,
            outcome,
            unapproved_grant: super::super::features::is_privilege_grant(op),
        }),
    }
}

fn delete(who: &str, at_ms: i64) -> Event {
    call(
        who,
        at_ms,
        "Microsoft.Compute/virtualMachines/delete",
        RiskClass::Delete,
        Outcome::Succeeded,
    )
}

fn attempt(ip: &str, at_ms: i64, ok: bool) -> Event {
    Event {
        at_ms,
        origin: Origin {
            input: 0,
            place: Place::Line(0),
        },
        what: What::Auth(Auth {
            source_ip: ip.parse().unwrap(),
            ok,
            count: 1,
        }),
    }
}

/// Three weeks in which `who` and three peers delete a VM or two a day:
/// a history against which ten deletes in minutes are a spike.
fn history(engine: &mut Engine, who: &str) -> i64 {
    let start = T0 - 21 * 86_400_000;
    let mut steps = Vec::new();
    for day in 0..21 {
        for (n, principal) in [who, "p1", "p2", "p3"].into_iter().enumerate() {
            for k in 0..(1 + (day + n as i64) % 2) {
                let at = start + day * 86_400_000 + (n as i64 * 3600 + k * 600) * 1000;
                steps.push(engine.step(&delete(principal, at)));
            }
        }
    }
    assert!(
        steps.iter().all(|s| actions(s).is_empty()),
        "ordinary deletes"
    );
    start
}

fn engine(rules: Vec<Rule>) -> Engine {
    let response = ResponseConfig {
        rules: Some(rules),
        ..ResponseConfig::default()
    };
    Engine::new(Risk::new(RiskConfig::default()).unwrap(), &response)
}

fn actions(step: &Step) -> Vec<(Action, Mode)> {
    match step {
        Step::Call { fired, .. } | Step::Auth { fired, .. } => fired
            .iter()
            .map(|f| (f.planned.action, f.planned.mode))
            .collect(),
        Step::Stopped(_) => Vec::new(),
    }
}

#[test]
fn an_enforced_suspension_stops_the_principals_later_calls_only() {
    let mut engine = engine(baseline_rules());
    history(&mut engine, "mallory");
    let mut steps = Vec::new();
    for i in 0..10 {
        steps.push(engine.step(&delete("mallory", T0 + i * 20_000)));
    }
    let first = steps
        .iter()
        .position(|s| !actions(s).is_empty())
        .expect("the burst is answered");
    assert_eq!(
        actions(&steps[first]),
        [
            (Action::Suspend, Mode::Enforce),
            (Action::Incident, Mode::Enforce)
        ]
    );
    assert!(first >= 2, "the first deletes are ordinary: {first}");
    for s in &steps[first + 1..] {
        assert_eq!(s, &Step::Stopped(Stop::Suspended));
    }
    // Nobody lifts it: a day later, still stopped; others are not.
    assert_eq!(
        engine.step(&delete("mallory", T0 + 86_400_000)),
        Step::Stopped(Stop::Suspended)
    );
    assert!(matches!(
        engine.step(&delete("alice", T0 + 86_400_000)),
        Step::Call { .. }
    ));
}

#[test]
fn notify_mode_stops_nothing_and_says_what_enforcing_would_have() {
    let mut rules = baseline_rules();
    for rule in &mut rules {
        rule.mode = Mode::Notify;
    }
    let mut engine = engine(rules);
    history(&mut engine, "mallory");
    let steps: Vec<Step> = (0..10)
        .map(|i| engine.step(&delete("mallory", T0 + i * 20_000)))
        .collect();
    assert!(steps.iter().all(|s| matches!(s, Step::Call { .. })));
    let answered: Vec<usize> = (0..10)
        .filter(|&i| !actions(&steps[i]).is_empty())
        .collect();
    assert!(!answered.is_empty(), "the burst is answered");
    // Each call the rule answers says what it would have done, as live.
    for &i in &answered {
        assert_eq!(
            actions(&steps[i]),
            [
                (Action::Suspend, Mode::Notify),
                (Action::Incident, Mode::Notify)
            ]
        );
    }
    for s in &steps[answered[0] + 1..] {
        let Step::Call { would_stop, .. } = s else {
            panic!()
        };
        assert_eq!(*would_stop, Some(Stop::Suspended));
    }
}

#[test]
fn a_block_stops_the_network_for_its_cool_down() {
    let mut engine = engine(baseline_rules());
    let bad = "203.0.113.9";
    let mut tipped = None;
    for i in 0..25 {
        let step = engine.step(&attempt(bad, T0 + i * 1000, false));
        if !actions(&step).is_empty() {
            tipped = Some((i, step));
            break;
        }
    }
    let (i, step) = tipped.expect("20 failures block");
    assert_eq!(i, 19);
    let Step::Auth { fired, .. } = &step else {
        panic!()
    };
    assert_eq!(fired[0].planned.action, Action::Block);
    let network = fired[0].network.as_ref().unwrap();
    assert_eq!(network.network.to_string(), "203.0.113.9/32");
    assert_eq!((network.attempts, network.failures), (20, 20));
    let blocked: IpNet = "203.0.113.9/32".parse().unwrap();
    // Within the cool-down (15 min): attempts and calls from it are stopped.
    let at = T0 + 19_000;
    assert_eq!(
        engine.step(&attempt(bad, at + 60_000, true)),
        Step::Stopped(Stop::Blocked(blocked))
    );
    let mut from_bad = delete("alice", at + 600_000);
    if let What::Call(c) = &mut from_bad.what {
        c.source_ip = Some(bad.parse::<IpAddr>().unwrap());
    }
    assert_eq!(
        engine.step(&from_bad),
        Step::Stopped(Stop::Blocked(blocked))
    );
    // Another address is not blocked; after the cool-down, neither is it.
    assert!(matches!(
        engine.step(&attempt("203.0.113.10", at + 60_000, false)),
        Step::Auth { .. }
    ));
    assert!(matches!(
        engine.step(&attempt(bad, at + 900_000, true)),
        Step::Auth { .. }
    ));
}

#[test]
fn a_grant_is_revoked_only_if_it_ran_and_only_without_an_approval() {
    let grant = "Microsoft.Authorization/roleAssignments/write";
    let mut engine = engine(baseline_rules());
    let failed = engine.step(&call(
        "eve",
        T0,
        grant,
        RiskClass::Privileged,
        Outcome::Failed,
    ));
    assert_eq!(actions(&failed), [(Action::Incident, Mode::Enforce)]);
    let Step::Call {
        assessment, alert, ..
    } = &failed
    else {
        panic!()
    };
    assert_eq!(assessment.level, crate::risk::Level::Critical);
    assert_eq!(
        assessment.floor.as_deref(),
        Some("privilege_grant_without_approval")
    );
    assert!(alert);
    let ran = engine.step(&call(
        "eve",
        T0 + 7_200_000,
        grant,
        RiskClass::Privileged,
        Outcome::Succeeded,
    ));
    assert_eq!(
        actions(&ran),
        [
            (Action::Revoke, Mode::Enforce),
            (Action::Incident, Mode::Enforce)
        ]
    );
    let mut approved = call(
        "frank",
        T0,
        grant,
        RiskClass::Privileged,
        Outcome::Succeeded,
    );
    if let What::Call(c) = &mut approved.what {
        c.unapproved_grant = false;
    }
    assert!(actions(&engine.step(&approved)).is_empty());
}

#[test]
fn without_responses_nothing_fires_and_nothing_stops() {
    let response = ResponseConfig {
        enabled: false,
        ..ResponseConfig::default()
    };
    let mut engine = Engine::new(Risk::new(RiskConfig::default()).unwrap(), &response);
    assert!(engine.rules().is_empty());
    for i in 0..15 {
        let step = engine.step(&delete("mallory", T0 + i * 10_000));
        assert!(matches!(&step, Step::Call { fired, would_stop: None, .. } if fired.is_empty()));
    }
    // Rules for levels apply to any call at or above them.
    let rules = vec![Rule {
        name: "watch".into(),
        on: Trigger::Level(crate::risk::Level::Critical),
        actions: vec![Action::Incident],
        mode: Mode::Notify,
    }];
    let mut engine = engine_with(rules);
    let step = engine.step(&call(
        "eve",
        T0,
        "Microsoft.Authorization/roleAssignments/write",
        RiskClass::Privileged,
        Outcome::Succeeded,
    ));
    assert_eq!(actions(&step), [(Action::Incident, Mode::Notify)]);
}

fn engine_with(rules: Vec<Rule>) -> Engine {
    engine(rules)
}

#[test]
fn config_tables_are_read_alone_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"x\"\n[risk]\nhigh = 50\ngeo = \"geo.csv\"\n[response.block]\nmin_attempts = 5\n\
         [[response.rules]]\nname = \"n\"\non = \"delete_spike\"\nactions = [\"suspend\"]\nmode = \"notify\"\n",
    )
    .unwrap();
    let (risk, response) = load_config(&path).unwrap();
    assert_eq!(risk.high, 50);
    assert_eq!(risk.geo, Some(dir.path().join("geo.csv")));
    assert_eq!(response.block.min_attempts, 5);
    assert_eq!(response.rules()[0].mode, Mode::Notify);
    std::fs::write(&path, "[risk]\nhigh = 50\nhihg = 3\n").unwrap();
    let e = load_config(&path).unwrap_err();
    assert!(e.contains("warden.toml:3:") && e.contains("hihg"), "{e}");
    std::fs::write(&path, "[response.block]\nfailure_share = 2.0\n").unwrap();
    let e = load_config(&path).unwrap_err();
    assert!(e.contains("failure_share"), "{e}");
}

#[test]
fn formats_are_told_from_the_first_record() {
    let cases = [
        ("[\n {\"eventTimestamp\": \"x\"}\n]", Format::ActivityLog),
        ("{\n \"records\": []\n}", Format::ActivityLog),
        ("{\"records\": []}\n", Format::ActivityLog),
        (
            "\n{\"time\": \"x\", \"resultType\": \"Start\"}\n",
            Format::ActivityLog,
        ),
        (
            "{\"seq\": 0, \"kind\": \"log_start\", \"ts\": \"x\"}\n",
            Format::Warden,
        ),
        ("{\"time\": \"x\", \"kind\": \"auth\"}\n", Format::Jsonl),
        ("", Format::Jsonl),
    ];
    for (text, expected) in cases {
        let bytes = Bytes::Memory(text.as_bytes().to_vec());
        assert_eq!(detect("f", &bytes).unwrap(), expected, "{text}");
    }
    let e = detect("f", &Bytes::Memory(b"{\"a\": 1}\n".to_vec())).unwrap_err();
    assert!(e.to_string().contains("give --format"), "{e}");
    let e = detect("f", &Bytes::Memory(b"hello\n".to_vec())).unwrap_err();
    assert!(e.to_string().starts_with("f:1: malformed JSON"), "{e}");
}

#[test]
fn replay_merges_inputs_in_time_order_and_reports_per_principal_and_hour() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let attempts = dir.path().join("auth.jsonl");
    let mut lines = Vec::new();
    for day in 1..=21 {
        for who in ["m", "p1", "p2", "p3"] {
            lines.push(format!(
                r#"{{"time": "2026-10-{day:02}T10:00:00Z", "kind": "user", "principal": "t/{who}", "operation": "Microsoft.Compute/virtualMachines/delete"}}"#
            ));
        }
    }
    for i in 0..10 {
        lines.push(format!(
            r#"{{"time": "2026-11-02T09:{:02}:00Z", "kind": "user", "principal": {{"tid": "t", "oid": "m", "name": "mallory"}}, "operation": "Microsoft.Compute/virtualMachines/delete", "resource": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm{i}"}}"#,
            i
        ));
    }
    std::fs::write(&calls, lines.join("\n")).unwrap();
    std::fs::write(
        &attempts,
        r#"{"time": "2026-11-02T08:00:00Z", "kind": "auth", "source_ip": "203.0.113.9", "outcome": "failed", "count": 30}
{"time": "2026-11-02T08:05:00Z", "kind": "auth", "source_ip": "203.0.113.9", "outcome": "failed"}"#,
    )
    .unwrap();
    let report = replay(
        &[Input::new(&calls), Input::new(&attempts)],
        Format::Auto,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(report.first.as_deref(), Some("2026-10-01T10:00:00Z"));
    let s = &report.summary;
    assert_eq!((s.events, s.calls, s.auth_attempts), (96, 94, 31));
    assert_eq!(s.events_stopped_by_blocks, 1);
    assert_eq!(s.principals_suspended, 1);
    assert_eq!(s.scored + s.calls_stopped_by_suspension, 94);
    assert!(s.calls_stopped_by_suspension > 0);
    assert_eq!(report.principals.len(), 1);
    let p = &report.principals[0];
    assert_eq!(p.name, "mallory");
    assert_eq!(p.hours[0].hour, "2026-11-02T09:00:00Z");
    let actions: Vec<&str> = p.hours[0]
        .responses
        .iter()
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(actions, ["suspend", "incident"]);
    assert!(p.hours[0].responses[0].source.contains("calls.jsonl:"));
    assert_eq!(report.networks[0].network, "203.0.113.9/32");
    assert_eq!(report.networks[0].hours[0].responses[0].attempts, Some(20));
    let text = report.text();
    assert!(text.contains("mallory (t/m)"), "{text}");
    assert!(
        text.contains("suspend (rule mass-deletion, enforce)"),
        "{text}"
    );
    assert!(
        text.contains("network 203.0.113.9/32: 1 events stopped by its block"),
        "{text}"
    );

    // A bad line anywhere: nothing is reported, the error names it.
    std::fs::write(
        &attempts,
        "{\"time\": \"2026-11-02T08:00:00Z\", \"kind\": \"bot\"}",
    )
    .unwrap();
    let e = replay(
        &[Input::new(&calls), Input::new(&attempts)],
        Format::Jsonl,
        &Options::default(),
    )
    .unwrap_err();
    assert!(
        e.ends_with("auth.jsonl:1: field `kind`: unknown kind \"bot\": one of user, app, auth"),
        "{e}"
    );
}
