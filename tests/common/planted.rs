//! A store with known usage, for the access review and compliance tests:
//! calls of several principals at chosen times, each decided by the real
//! policy engine on the baseline policies (so the intent records carry the
//! decisions the pipeline would have made), with their outcomes, approval
//! and policy-load records, in a real SQLite store with a signed log.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use warden::audit::record::{Actor, Kind, Operation, Record, Status};
use warden::audit::{Audit, AuditConfig, KeyFiles, keygen};
use warden::identity::{Principal, PrincipalKind};
use warden::metrics::Metrics;
use warden::policy::{CallContext, Engine, JitFacts, OperationFacts, PolicyConfig};
use warden::store::Location;

pub const HOME: &str = "11111111-1111-4111-8111-111111111111";
pub const FOREIGN: &str = "99999999-9999-4999-8999-999999999999";
pub const DEV_RG: &str =
    "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourcegroups/dev-web";
pub const PROD_RG: &str =
    "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourcegroups/prod-web";

/// The end of the reviewed period.
pub fn at() -> DateTime<Utc> {
    "2026-12-01T00:00:00Z".parse().expect("time")
}

/// The repository's baseline policy set.
pub fn baseline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

pub fn engine() -> Engine {
    let ops = warden::catalog::Catalog::builtin()
        .expect("catalog")
        .operation_classes();
    Engine::load(
        &PolicyConfig {
            dir: baseline(),
            ..PolicyConfig::default()
        },
        &ops,
    )
    .expect("baseline policies")
}

pub struct Who {
    pub name: &'static str,
    pub oid: &'static str,
    pub tid: &'static str,
    pub roles: &'static [&'static str],
    pub guest: bool,
    pub mfa: bool,
}

pub const ALICE: Who = Who {
    name: "alice@contoso.com",
    oid: "a0000000-0000-4000-8000-000000000001",
    tid: HOME,
    roles: &["Developer"],
    guest: false,
    mfa: false,
};
pub const BOB: Who = Who {
    name: "bob@contoso.com",
    oid: "b0000000-0000-4000-8000-000000000002",
    tid: HOME,
    roles: &["Contributor", "Reader"],
    guest: false,
    mfa: false,
};
pub const CAROL: Who = Who {
    name: "carol@contoso.com",
    oid: "c0000000-0000-4000-8000-000000000003",
    tid: HOME,
    roles: &["Operator"],
    guest: false,
    mfa: false,
};
pub const DAVE: Who = Who {
    name: "dave_fabrikam.com#EXT#@contoso.com",
    oid: "d0000000-0000-4000-8000-000000000004",
    tid: HOME,
    roles: &["Reader"],
    guest: true,
    mfa: false,
};
pub const ERIN: Who = Who {
    name: "erin@fabrikam.com",
    oid: "e0000000-0000-4000-8000-000000000005",
    tid: FOREIGN,
    roles: &["Reader"],
    guest: false,
    mfa: false,
};
pub const FRANK: Who = Who {
    name: "frank-breakglass@contoso.com",
    oid: "f0000000-0000-4000-8000-000000000006",
    tid: HOME,
    roles: &["BreakGlass"],
    guest: false,
    mfa: true,
};

pub const GRACE: Who = Who {
    name: "grace-secops@contoso.com",
    oid: "90000000-0000-4000-8000-000000000007",
    tid: HOME,
    roles: &["SecurityManager"],
    guest: false,
    mfa: true,
};

pub fn principal(who: &Who) -> Principal {
    let mut p = Principal::anonymous(Some([10, 0, 0, 7].into()));
    p.tid = who.tid.into();
    p.oid = who.oid.into();
    p.display_name = who.name.into();
    p.kind = PrincipalKind::User;
    p.roles = who.roles.iter().map(|r| (*r).to_owned()).collect();
    p.scopes = BTreeSet::from(["user_impersonation".to_owned()]);
    p.mfa = who.mfa;
    p.guest = who.guest;
    p
}

/// A planted call.
pub struct Call {
    pub who: &'static Who,
    pub op: &'static str,
    pub class: &'static str,
    pub resource: String,
    pub tags: Vec<(&'static str, &'static str)>,
    pub days_ago: i64,
    /// Run under a JIT grant.
    pub jit: bool,
}

pub fn vm(rg: &str, name: &str) -> String {
    format!("{rg}/providers/microsoft.compute/virtualmachines/{name}")
}

/// The planted calls: what the access review must find.
pub fn calls() -> Vec<Call> {
    let call = |who: &'static Who,
                op: &'static str,
                class: &'static str,
                resource: String,
                days_ago: i64| Call {
        who,
        op,
        class,
        resource,
        tags: vec![("env", "dev")],
        days_ago,
        jit: false,
    };
    let mut calls = Vec::new();
    // Alice (Developer): starts and reads VMs in dev-web, and is denied a delete.
    for day in [3, 10, 20, 40] {
        calls.push(call(
            &ALICE,
            "Microsoft.Compute/virtualMachines/start/action",
            "action",
            vm(DEV_RG, "web1"),
            day,
        ));
        calls.push(call(
            &ALICE,
            "Microsoft.Compute/virtualMachines/read",
            "read",
            vm(DEV_RG, "web1"),
            day,
        ));
    }
    calls.push(call(
        &ALICE,
        "Microsoft.Compute/virtualMachines/delete",
        "delete",
        vm(DEV_RG, "web1"),
        5,
    ));
    // Bob (Contributor and Reader): only reads.
    for day in [1, 30, 60] {
        calls.push(call(
            &BOB,
            "Microsoft.Compute/virtualMachines/read",
            "read",
            vm(PROD_RG, "api1"),
            day,
        ));
    }
    // Carol (Operator): last seen 120 days ago.
    calls.push(call(
        &CAROL,
        "Microsoft.RecoveryServices/vaults/read",
        "read",
        format!("{PROD_RG}/providers/microsoft.recoveryservices/vaults/v1"),
        120,
    ));
    // Dave (a guest Reader) and Erin (a Reader of another tenant).
    calls.push(call(
        &DAVE,
        "Microsoft.Storage/storageAccounts/read",
        "read",
        format!("{DEV_RG}/providers/microsoft.storage/storageaccounts/st1"),
        7,
    ));
    calls.push(call(
        &ERIN,
        "Microsoft.Compute/virtualMachines/read",
        "read",
        vm(PROD_RG, "api1"),
        8,
    ));
    // Frank (break glass): a role assignment, with no approval.
    calls.push(Call {
        jit: false,
        ..call(
            &FRANK,
            "Microsoft.Authorization/roleAssignments/write",
            "privileged",
            format!("{PROD_RG}/providers/microsoft.authorization/roleassignments/ra1"),
            2,
        )
    });
    calls
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Writes `calls` (decided by `engine`) into a new store at `dir/audit.db`;
/// the key files are in `dir`. Returns the store's path.
pub async fn write_store(
    dir: &Path,
    engine: &Engine,
    calls: &[Call],
    extra: Vec<Record>,
) -> PathBuf {
    let db = dir.join("audit.db");
    write_log(dir, Location::Sqlite(db.clone()), engine, calls, extra).await;
    db
}

/// [`write_store`] into any store: a SQLite file or a PostgreSQL schema.
pub async fn write_log(
    dir: &Path,
    store: Location,
    engine: &Engine,
    calls: &[Call],
    extra: Vec<Record>,
) {
    let files = KeyFiles::in_dir(dir);
    keygen("planted.example/audit", &files, true).expect("keygen");
    // The planted calls are days apart: a log that proves it is alive
    // every 30 days has no silence among them.
    let mut config = AuditConfig::quiet(&files);
    config.heartbeat_interval = std::time::Duration::from_secs(30 * 86_400);
    // Every checkpoint also goes to a directory witness, `dir/witness`.
    config.witnesses = vec![warden::audit::witness::WitnessConfig::directory(
        dir.join("witness"),
    )];
    let audit = Audit::open(store, config, Metrics::new())
        .await
        .expect("open the log");
    let mut records = extra;
    for (i, c) in calls.iter().enumerate() {
        let t = at() - Duration::days(c.days_ago) + Duration::minutes(i as i64);
        records.extend(call_records(engine, c, t, i));
    }
    records.sort_by(|a, b| a.ts.cmp(&b.ts));
    for r in records {
        audit.append(r).await.expect("append");
    }
    audit.close().await;
    audit.join_writer();
}

/// A record of `kind` at `t` with `details`.
pub fn system_record(kind: Kind, t: DateTime<Utc>, details: Value) -> Record {
    let mut r = Record::new(kind);
    r.ts = ts(t);
    r.details = Some(details);
    r
}

/// The time `days` days before [`at`].
pub fn days_ago(days: i64) -> DateTime<Utc> {
    at() - Duration::days(days)
}

/// The intent and outcome of one call.
pub fn call_records(engine: &Engine, c: &Call, t: DateTime<Utc>, i: usize) -> Vec<Record> {
    let p = principal(c.who);
    let mut facts: OperationFacts = serde_json::from_value(json!({
        "azure_op": c.op, "class": c.class, "resource_id": c.resource,
    }))
    .expect("facts");
    facts.tags = c
        .tags
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let mut context = CallContext::new("planted-tool", "s-1", t);
    context.facts = warden::facts::Completeness::Complete;
    if c.jit {
        context.jit = Some(JitFacts {
            grant_id: format!("g{i}"),
            approver: "sec".into(),
            expires: t + Duration::hours(1),
            role: None,
            scope: None,
            approvers: vec!["sec".into()],
            operations: Vec::new(),
        });
    }
    let decision = engine.authorize(&p, std::slice::from_ref(&facts), &context);
    let entitled = engine.entitlements(&p);
    let mut actor = Actor::from(&p);
    actor.roles = entitled.roles;
    actor.groups = entitled.groups;
    let call_id = format!("call-{i:04}");
    let mut intent = Record::new(Kind::Intent);
    intent.ts = ts(t);
    intent.call_id = Some(call_id.clone());
    intent.principal = Some(actor.clone());
    intent.session_id = Some("s-1".into());
    intent.tool = Some("planted-tool".into());
    intent.upstream = Some("azure".into());
    intent.operations = vec![Operation {
        azure_op: c.op.into(),
        class: Some(c.class.into()),
        resource_id: Some(c.resource.clone()),
        facts: Some(json!({"completeness": "complete", "tags": {"env": "dev"}})),
    }];
    intent.decision = Some(serde_json::to_value(&decision).expect("decision"));
    if c.jit {
        intent.jit = Some(
            json!({"request_id": format!("req-{i}"), "grant_id": format!("g{i}"), "approvers": ["sec"]}),
        );
    }
    let mut outcome = Record::new(Kind::Outcome);
    outcome.ts = ts(t + Duration::milliseconds(40));
    outcome.call_id = Some(call_id);
    outcome.principal = Some(Actor::from(&p));
    outcome.session_id = Some("s-1".into());
    outcome.tool = Some("planted-tool".into());
    outcome.upstream = Some("azure".into());
    outcome.status = Some(if decision.is_allowed() {
        Status::Ok
    } else {
        Status::Denied
    });
    vec![intent, outcome]
}

/// Runs `warden` with `args`; (exit code, stdout, stderr).
pub fn warden(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JSON value at `path` (keys) of `v`.
pub fn at_path<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}
