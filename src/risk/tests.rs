//! Unit tests of the features, the combination and the hard floors.

use super::baseline::RiskClass;
use super::*;
use std::net::IpAddr;

/// Monday 2026-11-02 00:00 UTC.
const MONDAY: i64 = 1_793_577_600;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

const SUB: &str = "11111111-1111-1111-1111-111111111111";

fn geo() -> GeoTable {
    GeoTable::parse(
        "network,country,asn\n10.0.0.0/16,NL,1136\n10.1.0.0/16,NL,33915\n10.9.0.0/16,KP,131279\n",
    )
    .expect("geo table")
}

fn risk() -> Risk {
    Risk::with_geo(RiskConfig::default(), geo())
}

fn op(azure_op: &str, class: RiskClass, group: &str) -> ObservedOp {
    ObservedOp {
        azure_op: azure_op.into(),
        class,
        subscription: Some(SUB.into()),
        resource_group: Some(group.into()),
    }
}

fn read() -> ObservedOp {
    op(
        "Microsoft.Compute/virtualMachines/read",
        RiskClass::Read,
        "rg-app",
    )
}

fn write() -> ObservedOp {
    op("Microsoft.Web/sites/write", RiskClass::Write, "rg-app")
}

fn delete() -> ObservedOp {
    op(
        "Microsoft.Compute/virtualMachines/delete",
        RiskClass::Delete,
        "rg-app",
    )
}

fn grant() -> ObservedOp {
    op(
        "Microsoft.Authorization/roleAssignments/write",
        RiskClass::Privileged,
        "rg-app",
    )
}

fn call(who: &str, at: i64, ip: &str, ops: Vec<ObservedOp>) -> Observation {
    Observation {
        tenant: "t".into(),
        principal: who.into(),
        peer: "user:Developer".into(),
        at,
        source_ip: Some(ip.parse::<IpAddr>().expect("ip")),
        operations: ops,
        cost: None,
    }
}

/// `days` weekdays of office-hours work (09:00-17:00 UTC): reads, writes,
/// and a couple of deletes on some days, from the office address.
fn office_worker(risk: &Risk, who: &str, start: i64, days: i64) {
    let mut day = 0;
    let mut worked = 0;
    while worked < days {
        let base = start + day * DAY;
        day += 1;
        if (day - 1) % 7 >= 5 {
            continue;
        }
        worked += 1;
        for h in 9..17 {
            for m in 0..3 {
                let at = base + h * HOUR + m * 900;
                let ops = if m == 2 { vec![write()] } else { vec![read()] };
                risk.learn(&call(who, at, "10.0.0.5", ops), Outcome::Succeeded);
            }
        }
        if worked % 3 == 0 {
            for m in 0..2 {
                let at = base + 15 * HOUR + 40 * 60 + m * 60;
                risk.learn(
                    &call(who, at, "10.0.0.5", vec![delete()]),
                    Outcome::Succeeded,
                );
            }
        }
    }
}

fn codes(a: &Assessment) -> Vec<&str> {
    a.reasons.iter().map(|r| r.code.as_str()).collect()
}

fn reason<'a>(a: &'a Assessment, code: &str) -> &'a Reason {
    a.reasons
        .iter()
        .find(|r| r.code == code)
        .unwrap_or_else(|| panic!("no {code} in {a:?}"))
}

#[test]
fn routine_calls_are_low() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let a = r.assess(&call(
        "alice",
        MONDAY + 21 * DAY + 10 * HOUR,
        "10.0.0.5",
        vec![read()],
    ));
    assert_eq!(a.level, Level::Low, "{a:?}");
    assert!(a.score < 10, "{a:?}");
}

#[test]
fn cold_start_is_judged_against_peers() {
    let r = risk();
    for who in ["p1", "p2", "p3", "p4"] {
        office_worker(&r, who, MONDAY, 10);
    }
    // A new developer doing what developers do, in office hours.
    let newcomer = call(
        "new",
        MONDAY + 15 * DAY + 10 * HOUR,
        "10.0.0.77",
        vec![write()],
    );
    let a = r.assess(&newcomer);
    assert_eq!(a.level, Level::Low, "{a:?}");
    // The same call by a newcomer at night is judged by the peers' hours.
    let night = call(
        "new",
        MONDAY + 15 * DAY + 3 * HOUR,
        "10.0.0.77",
        vec![write()],
    );
    let a = r.assess(&night);
    let hour = reason(&a, "unusual_hour");
    assert!(
        hour.text.contains("03:00 UTC") && hour.text.contains("its peers"),
        "{}",
        hour.text
    );
    // An operation no peer uses is called out, with how rare it is.
    let a = r.assess(&call(
        "new",
        MONDAY + 15 * DAY + 10 * HOUR,
        "10.0.0.77",
        vec![grant()],
    ));
    let first = reason(&a, "new_operation");
    assert_eq!(
        first.text,
        "first Microsoft.Authorization/roleAssignments/write by this principal; none of 4 peers has used it"
    );
}

#[test]
fn first_time_operation_and_resource_group() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 11 * HOUR;
    let a = r.assess(&call(
        "alice",
        at,
        "10.0.0.5",
        vec![op(
            "Microsoft.Sql/servers/write",
            RiskClass::Write,
            "rg-new",
        )],
    ));
    assert!(codes(&a).contains(&"new_operation"), "{a:?}");
    assert_eq!(
        reason(&a, "new_resource_group").text,
        "first call by this principal in resource group rg-new"
    );
    assert!(
        a.level <= Level::Medium,
        "a new project is not an alert: {a:?}"
    );
    let a = r.assess(&call(
        "alice",
        at,
        "10.0.0.5",
        vec![ObservedOp {
            subscription: Some("22222222-2222-2222-2222-222222222222".into()),
            ..read()
        }],
    ));
    assert_eq!(
        reason(&a, "new_subscription").text,
        "first call by this principal in subscription 22222222-2222-2222-2222-222222222222"
    );
}

#[test]
fn new_country_and_network() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 11 * HOUR;
    // Same network, another address: barely worth a mention.
    let a = r.assess(&call("alice", at, "10.0.0.99", vec![read()]));
    assert_eq!(reason(&a, "new_ip").text, "first call from 10.0.0.99");
    assert_eq!(reason(&a, "new_ip").score, 5);
    // Same country, another provider.
    let a = r.assess(&call("alice", at, "10.1.2.3", vec![read()]));
    assert_eq!(
        reason(&a, "new_network").text,
        "first call from network AS33915 (10.1.2.3)"
    );
    assert_eq!(a.level, Level::Low);
    // A country never seen: medium for a read...
    let a = r.assess(&call("alice", at, "10.9.0.1", vec![read()]));
    let country = reason(&a, "new_country");
    assert!(
        country.text.starts_with("first call from KP (10.9.0.1)"),
        "{}",
        country.text
    );
    assert_eq!(a.level, Level::Medium, "{a:?}");
    // ...and high for a privileged call, even after the first calls from there.
    r.learn(
        &call("alice", at, "10.9.0.1", vec![read()]),
        Outcome::Succeeded,
    );
    let a = r.assess(&call("alice", at + 600, "10.9.0.1", vec![grant()]));
    assert!(a.level >= Level::High, "{a:?}");
    assert!(
        reason(&a, "new_country").text.contains(
            "(granting access or weakening defences), first seen for this principal 0 h ago"
        ),
        "{a:?}"
    );
    // A day later the country is part of the baseline.
    let a = r.assess(&call("alice", at + 2 * DAY, "10.9.0.1", vec![read()]));
    assert!(!codes(&a).contains(&"new_country"), "{a:?}");
}

#[test]
fn unusual_hour_for_a_settled_principal() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let a = r.assess(&call(
        "alice",
        MONDAY + 22 * DAY + 3 * HOUR,
        "10.0.0.5",
        vec![read()],
    ));
    assert_eq!(
        reason(&a, "unusual_hour").text,
        "at 03:00 UTC on a Tuesday, when this principal is almost never active"
    );
    let a = r.assess(&call(
        "alice",
        MONDAY + 22 * DAY + 14 * HOUR,
        "10.0.0.5",
        vec![read()],
    ));
    assert!(!codes(&a).contains(&"unusual_hour"), "{a:?}");
}

#[test]
fn rate_spike_and_the_delete_floor() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let start = MONDAY + 21 * DAY + 10 * HOUR;
    let mut levels = Vec::new();
    for i in 0..14 {
        let c = call("alice", start + i * 60, "10.0.0.5", vec![delete()]);
        let a = r.assess(&c);
        levels.push((a.level, a.floor.clone()));
        if i == 13 {
            assert_eq!(
                reason(&a, "delete_spike").text,
                "14 deletes in the last hour; usually 2.0 in an hour with any"
            );
        }
        r.learn(&c, Outcome::Succeeded);
    }
    // The usual is 2 in an hour with deletes: 3 and 4 are within bounds...
    assert!(
        levels[..4].iter().all(|(l, _)| *l < Level::High),
        "{levels:?}"
    );
    // ...and more than five times the usual (11th) is high by the floor at the latest.
    let first_high = levels
        .iter()
        .position(|(l, _)| *l >= Level::High)
        .expect("high");
    assert!(first_high <= 10, "{levels:?}");
    assert_eq!(levels[13].1.as_deref(), Some("delete_spike"));
}

#[test]
fn delete_floor_needs_three_deletes() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 10 * HOUR;
    let a = r.assess(&call("alice", at, "10.0.0.5", vec![delete()]));
    assert_eq!(a.floor, None);
    assert!(!codes(&a).contains(&"delete_spike"));
}

#[test]
fn repeated_privileged_denials() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 10 * HOUR;
    let mut scores = Vec::new();
    for i in 0..4 {
        let c = call("alice", at + i * 3 * HOUR, "10.0.0.5", vec![grant()]);
        let a = r.assess(&c);
        scores.push(a.score);
        if i == 3 {
            assert_eq!(
                reason(&a, "repeated_denials").text,
                "3 privileged call(s) and 3 call(s) in all denied in the last 7 days, the latest 3 h ago"
            );
            assert!(a.level >= Level::High, "{a:?}");
        }
        r.learn(&c, Outcome::Denied);
    }
    assert!(scores.windows(2).all(|w| w[1] > w[0]), "{scores:?}");
    // Denials teach nothing normal: the operation is still a first.
    let b = r.baseline("t", "alice").expect("baseline");
    assert!(!b.ops.contains(baseline::key_hash(
        "Microsoft.Authorization/roleAssignments/write"
    )));
}

#[test]
fn cost_outlier_against_own_history() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 10 * HOUR;
    let create = || {
        op(
            "Microsoft.Compute/virtualMachines/write",
            RiskClass::Create,
            "rg-app",
        )
    };
    for i in 0..5 {
        let mut c = call("alice", at + i * 60, "10.0.0.5", vec![create()]);
        c.cost = Some(70.0);
        r.learn(&c, Outcome::Succeeded);
    }
    let mut c = call("alice", at + HOUR, "10.0.0.5", vec![create()]);
    c.cost = Some(45_760.0);
    let a = r.assess(&c);
    assert_eq!(
        reason(&a, "cost_outlier").text,
        "creates resources estimated at $45760/month, 654x this principal's typical $70"
    );
    assert!(a.level >= Level::High, "{a:?}");
    c.cost = Some(140.0);
    assert!(!codes(&r.assess(&c)).contains(&"cost_outlier"));
}

#[test]
fn dormant_account_returning() {
    let r = risk();
    office_worker(&r, "bob", MONDAY, 5);
    let back = MONDAY + 50 * DAY + 2 * HOUR;
    let c = call("bob", back, "10.0.0.5", vec![delete()]);
    let a = r.assess(&c);
    assert!(
        reason(&a, "dormant_account")
            .text
            .starts_with("account inactive for 4"),
        "{a:?}"
    );
    assert!(
        a.level >= Level::High,
        "a dormant account deleting at night: {a:?}"
    );
    r.learn(&c, Outcome::Held);
    // It stays flagged for a day after the return.
    let a = r.assess(&call("bob", back + 600, "10.0.0.5", vec![read()]));
    assert!(
        reason(&a, "dormant_account")
            .text
            .ends_with("it resumed 10 min ago"),
        "{a:?}"
    );
    let a = r.assess(&call(
        "bob",
        back + 2 * DAY + 10 * HOUR,
        "10.0.0.5",
        vec![read()],
    ));
    assert!(!codes(&a).contains(&"dormant_account"), "{a:?}");
}

#[test]
fn weakening_defences() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 10 * HOUR;
    let a = r.assess(&call(
        "alice",
        at,
        "10.0.0.5",
        vec![op(
            "Microsoft.Insights/diagnosticSettings/delete",
            RiskClass::Privileged,
            "rg-app",
        )],
    ));
    assert_eq!(
        reason(&a, "weakens_defences").text,
        "Microsoft.Insights/diagnosticSettings/delete weakens monitoring or guardrails"
    );
    assert!(a.level >= Level::High, "{a:?}");
}

#[test]
fn privilege_grant_without_approval_is_critical() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let mut a = r.assess(&call(
        "alice",
        MONDAY + 21 * DAY + 10 * HOUR,
        "10.0.0.5",
        vec![read()],
    ));
    a.unapproved_privilege_grant("Microsoft.Authorization/roleAssignments/write", 90);
    assert_eq!(a.level, Level::Critical);
    assert!(a.score >= 90);
    assert_eq!(a.reasons[0].code, "privilege_grant_without_approval");
    assert_eq!(a.floor.as_deref(), Some("privilege_grant_without_approval"));
    assert!(features::is_privilege_grant(
        "microsoft.authorization/roleassignments/write"
    ));
    assert!(!features::is_privilege_grant(
        "Microsoft.Authorization/roleAssignments/read"
    ));
}

#[test]
fn alerts_once_per_principal_hour() {
    let r = risk();
    let c = call("alice", MONDAY + 10 * HOUR, "10.0.0.5", vec![read()]);
    let high = Assessment {
        score: 80,
        level: Level::High,
        reasons: Vec::new(),
        floor: None,
    };
    let low = Assessment {
        score: 10,
        level: Level::Low,
        ..high.clone()
    };
    assert!(!r.alert_due(&c, &low));
    assert!(r.alert_due(&c, &high));
    assert!(!r.alert_due(
        &Observation {
            at: c.at + 1800,
            ..c.clone()
        },
        &high
    ));
    assert!(r.alert_due(
        &Observation {
            at: c.at + HOUR,
            ..c.clone()
        },
        &high
    ));
    assert!(r.alert_due(
        &Observation {
            principal: "bob".into(),
            ..c
        },
        &high
    ));
}

#[test]
fn baselines_round_trip_and_rebuild_peers() {
    let r = risk();
    for who in ["p1", "p2", "p3"] {
        office_worker(&r, who, MONDAY, 10);
    }
    let rows = r.take_dirty();
    assert_eq!(rows.len(), 3);
    assert!(r.take_dirty().is_empty(), "taken once");
    let sizes = r.state_sizes();
    assert!(sizes.iter().all(|&s| s < 16 * 1024), "{sizes:?}");

    let again = risk();
    assert_eq!(again.load(rows.clone()), 3);
    assert_eq!(again.baseline("t", "p1"), r.baseline("t", "p1"));
    // The peers were rebuilt: a newcomer's night call is judged by them.
    let night = call(
        "new",
        MONDAY + 15 * DAY + 3 * HOUR,
        "10.0.0.7",
        vec![read()],
    );
    assert_eq!(
        codes(&again.assess(&night)),
        codes(&r.assess(&night)),
        "same findings after a reload"
    );
    // A row that cannot be read is skipped, not fatal.
    assert_eq!(
        again.load(vec![("t/x".to_owned(), b"{not json".to_vec())]),
        0
    );
}

#[test]
fn config_is_validated() {
    let bad = RiskConfig {
        high: 30,
        ..RiskConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("risk.medium"));
    assert!(
        Risk::new(RiskConfig {
            geo: Some("/nonexistent/geo.csv".into()),
            ..RiskConfig::default()
        })
        .unwrap_err()
        .contains("risk.geo")
    );
}

#[test]
fn recurring_busy_hours_are_normal() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 10);
    // Last month's clean-up: twelve deletes in an hour.
    let cleanup = |r: &Risk, start: i64| {
        let mut last = None;
        for i in 0..12 {
            let c = call("alice", start + i * 120, "10.0.0.5", vec![delete()]);
            last = Some(r.assess(&c));
            r.learn(&c, Outcome::Succeeded);
        }
        last.expect("assessed")
    };
    let first = cleanup(&r, MONDAY + 15 * DAY + 11 * HOUR);
    assert_eq!(first.floor.as_deref(), Some("delete_spike"), "{first:?}");
    office_worker(&r, "alice", MONDAY + 16 * DAY, 15);
    // This month's: the busiest recent hour is part of normal now.
    let second = cleanup(&r, MONDAY + 37 * DAY + 11 * HOUR);
    assert_eq!(second.floor, None, "{second:?}");
    assert!(second.level < Level::High, "{second:?}");
}

#[test]
fn held_calls_count_when_retried() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 10 * HOUR;
    for i in 0..5 {
        r.learn(
            &call("alice", at + i, "10.0.0.5", vec![delete()]),
            Outcome::Held,
        );
    }
    let b = r.baseline("t", "alice").expect("baseline");
    assert_eq!(b.recent_count(RiskClass::Delete, at - HOUR), 0);
    r.learn(
        &call("alice", at + 10, "10.0.0.5", vec![delete()]),
        Outcome::Failed,
    );
    let b = r.baseline("t", "alice").expect("baseline");
    assert_eq!(
        b.recent_count(RiskClass::Delete, at - HOUR),
        1,
        "a failed attempt counts"
    );
}

#[test]
fn a_fresh_tenant_does_not_flag_its_first_busy_hour() {
    let r = risk();
    let at = MONDAY + 10 * HOUR;
    let mut worst = Level::Low;
    for i in 0..9 {
        let c = call("first", at + i * 30, "10.0.0.5", vec![write()]);
        worst = worst.max(r.assess(&c).level);
        r.learn(&c, Outcome::Succeeded);
    }
    assert!(worst < Level::Medium, "{worst:?}");
}

#[test]
fn deletes_and_privileged_calls_from_a_new_country_weigh_more() {
    let r = risk();
    office_worker(&r, "alice", MONDAY, 15);
    let at = MONDAY + 21 * DAY + 11 * HOUR;
    let a = r.assess(&call("alice", at, "10.9.0.1", vec![delete()]));
    let country = reason(&a, "new_country");
    assert_eq!(country.score, 50);
    assert!(country.text.contains("(a delete)"), "{}", country.text);
    let secret = op(
        "Microsoft.KeyVault/vaults/secrets/getSecret/action",
        RiskClass::Privileged,
        "rg-app",
    );
    let a = r.assess(&call("alice", at, "10.9.0.1", vec![secret]));
    assert!(
        reason(&a, "new_country")
            .text
            .contains("(a privileged call)"),
        "{a:?}"
    );
}

/// `calls` as journal events numbered from `first`.
fn journal(first: i64, calls: &[(Observation, Outcome)]) -> shared::Read {
    let events: Vec<(i64, shared::Event)> = calls
        .iter()
        .enumerate()
        .map(|(i, (observation, outcome))| {
            (
                first + i as i64,
                shared::Event {
                    observation: observation.clone(),
                    outcome: *outcome,
                },
            )
        })
        .collect();
    shared::Read {
        last: events.last().map_or(first - 1, |(id, _)| *id),
        events,
    }
}

#[test]
fn replaying_the_journal_learns_what_learning_directly_does_and_a_restart_replays_only_what_is_new()
{
    let start = MONDAY + 21 * DAY + 10 * HOUR;
    let calls: Vec<(Observation, Outcome)> = (0..12)
        .map(|i| {
            let ops = if i % 3 == 0 {
                vec![delete()]
            } else {
                vec![read()]
            };
            let outcome = match i % 4 {
                3 => Outcome::Denied,
                2 => Outcome::Failed,
                _ => Outcome::Succeeded,
            };
            (call("alice", start + i * 60, "10.0.0.5", ops), outcome)
        })
        .collect();
    let direct = risk();
    for (c, outcome) in &calls {
        direct.learn(c, *outcome);
    }
    // Another replica applies the same calls from the journal, in two reads.
    let replica = risk();
    replica.replay(journal(0, &calls[..5]));
    replica.replay(journal(5, &calls[5..]));
    let strip = |b: Option<baseline::Baseline>| b.map(|b| baseline::Baseline { event: None, ..b });
    assert_eq!(
        strip(replica.baseline("t", "alice")),
        strip(direct.baseline("t", "alice"))
    );
    assert_eq!(replica.baseline("t", "alice").unwrap().event, Some(11));
    let next = call("alice", start + 13 * 60, "10.0.0.5", vec![delete()]);
    assert_eq!(replica.assess(&next), direct.assess(&next));

    // A replica that starts loads the stored baseline (which learned up to
    // event 7) and replays the whole journal: events 0..=7 are skipped.
    let saved = risk();
    saved.replay(journal(0, &calls[..8]));
    let rows = saved.take_dirty();
    let restarted = risk();
    restarted.load(rows);
    restarted.replay(journal(0, &calls));
    assert_eq!(
        restarted.baseline("t", "alice"),
        replica.baseline("t", "alice"),
        "nothing learned twice, nothing lost"
    );
    assert_eq!(restarted.assess(&next), direct.assess(&next));
}
