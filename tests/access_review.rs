//! `warden access review` on a store with known usage: it finds exactly the
//! planted facts (use per role, the role a principal never needed, the
//! dormant principal, the guest, the foreign tenant, break-glass use), and
//! its recommended policy set validates, passes its generated tests, keeps
//! every used call allowed and never allows what the running set denies.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;

use common::planted::{self, ALICE, BOB, CAROL, DAVE, ERIN, FOREIGN, FRANK, HOME, Who};
use serde_json::Value;
use warden::policy::{CallContext, Engine, OperationFacts, PolicyConfig};

fn principal<'a>(review: &'a Value, who: &Who) -> &'a Value {
    review["principals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["oid"] == who.oid)
        .unwrap_or_else(|| panic!("{} is not in the review", who.name))
}

fn role<'a>(review: &'a Value, role: &str) -> &'a Value {
    review["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["grantee"]["kind"] == "role" && e["grantee"]["id"] == role)
        .unwrap_or_else(|| panic!("role {role} is not in the review"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn review(db: impl AsRef<OsStr>, out: Option<&Path>) -> Value {
    let db = db.as_ref();
    let mut args: Vec<&OsStr> = vec![
        "access".as_ref(),
        "review".as_ref(),
        "--days".as_ref(),
        "90".as_ref(),
        "--db".as_ref(),
        db,
        "--policies".as_ref(),
        planted::baseline().into_os_string().leak() as &OsStr,
        "--at".as_ref(),
        "2026-12-01T00:00:00Z".as_ref(),
        "--home-tenant".as_ref(),
        HOME.as_ref(),
        "--json".as_ref(),
    ];
    if let Some(out) = out {
        args.push("--recommend".as_ref());
        args.push(out.as_os_str());
    }
    let (code, stdout, stderr) = planted::warden(&args);
    assert_eq!(code, 0, "warden access review failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_finds_exactly_the_planted_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = planted::engine();
    let db = planted::write_store(tmp.path(), &engine, &planted::calls(), Vec::new()).await;
    let out = tmp.path().join("recommended");
    let report = review(&db, Some(&out));
    let r = &report["review"];

    assert_eq!(r["unreadable"], 0);
    let oids: BTreeSet<String> = r["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["oid"].as_str().unwrap().to_owned())
        .collect();
    let planted_oids: BTreeSet<String> = [&ALICE, &BOB, &CAROL, &DAVE, &ERIN, &FRANK]
        .iter()
        .map(|w| w.oid.to_owned())
        .collect();
    assert_eq!(oids, planted_oids);

    // Alice, a Developer: 8 allowed calls (start and read), 1 denied delete.
    let alice = principal(r, &ALICE);
    assert_eq!(
        (&alice["calls"], &alice["allowed"], &alice["denied"]),
        (&9.into(), &8.into(), &1.into())
    );
    assert_eq!(
        keys(&alice["operations"]),
        [
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Compute/virtualMachines/start/action"
        ]
    );
    assert_eq!(
        alice["operations"]["Microsoft.Compute/virtualMachines/start/action"]["calls"],
        4
    );
    assert_eq!(
        strings(&alice["operations"]["Microsoft.Compute/virtualMachines/read"]["scopes"]),
        [planted::DEV_RG]
    );
    assert_eq!(alice["unused_roles"], Value::Array(vec![]));
    assert_eq!(alice["dormant"], false);
    assert_eq!(alice["risk_factors"], Value::Array(vec![]));

    // The Developer role: exactly the two operations used; the rest of the
    // custom role (other VM and storage operations) unused.
    let developer = role(r, "Developer");
    assert_eq!(strings(&developer["permits"]), ["developer-custom-role"]);
    assert_eq!(
        strings(&developer["action_groups"]),
        [
            "Microsoft.Compute/virtualMachines/*",
            "Microsoft.Network/virtualNetworks/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Storage/storageAccounts/*"
        ]
    );
    assert_eq!(strings(&role(r, "Reader")["action_groups"]), ["read"]);
    assert_eq!(strings(&role(r, "Contributor")["action_groups"]), ["*"]);
    assert_eq!(
        keys(&developer["used"]),
        [
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Compute/virtualMachines/start/action"
        ]
    );
    let unused = strings(&developer["unused"]);
    assert!(
        unused.contains(&"Microsoft.Storage/storageAccounts/write".to_owned()),
        "{unused:?}"
    );
    assert!(
        !unused
            .iter()
            .any(|op| op.ends_with("/start/action") && op.contains("virtualMachines/")),
        "{unused:?}"
    );
    assert_eq!(
        developer["allowed"].as_u64().unwrap() as usize,
        unused.len() + 2
    );
    assert!(
        !unused.contains(&"Microsoft.Compute/virtualMachines/delete".to_owned()),
        "the NotActions stay out: {unused:?}"
    );

    // Bob holds Contributor and Reader, and only reads: Reader is the
    // narrowest grant of every call, so Contributor was never needed.
    let bob = principal(r, &BOB);
    assert_eq!(strings(&bob["unused_roles"]), ["Contributor"]);
    assert_eq!(strings(&bob["high_risk_roles"]), ["Contributor"]);
    assert_eq!(
        strings(&bob["risk_factors"]),
        ["holds the high-risk role Contributor"]
    );
    let contributor = role(r, "Contributor");
    assert_eq!(contributor["used"], serde_json::json!({}));
    assert_eq!(contributor["high_risk"], "Contributor is a high-risk role");
    let holders = contributor["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(
        (&holders[0]["oid"], &holders[0]["used"]),
        (&BOB.oid.into(), &0.into())
    );
    assert_eq!(role(r, "Reader")["high_risk"], Value::Null);

    // Carol: last active 120 days before the end, so dormant; her role unused.
    let carol = principal(r, &CAROL);
    assert_eq!(carol["dormant"], true);
    assert_eq!(carol["calls"], 0);
    assert_eq!(strings(&carol["unused_roles"]), ["Operator"]);
    assert_eq!(
        strings(&carol["risk_factors"]),
        ["no activity since 2026-08-03 (before the period from 2026-09-02)"]
    );
    assert_eq!(role(r, "Operator")["used"], serde_json::json!({}));

    // Dave is a guest, Erin of another tenant.
    assert_eq!(
        strings(&principal(r, &DAVE)["risk_factors"]),
        ["a guest (B2B) user"]
    );
    assert_eq!(principal(r, &DAVE)["guest"], true);
    assert_eq!(
        strings(&principal(r, &ERIN)["risk_factors"]),
        [format!("belongs to another tenant ({FOREIGN})")]
    );

    // Frank used break glass once.
    let frank = principal(r, &FRANK);
    assert_eq!(frank["alerts"]["break_glass"], 1);
    assert_eq!(
        strings(&frank["risk_factors"]),
        [
            "holds the high-risk role BreakGlass",
            "1 call raised the break_glass alert"
        ]
    );
    assert!(role(r, "BreakGlass")["privileged"].as_bool().unwrap());

    // The recommendation validated and its generated cases passed.
    let rec = &report["recommendation"];
    assert_eq!(rec["failed"], Value::Array(vec![]), "{rec:#}");
    assert!(rec["cases"].as_u64().unwrap() >= 8, "{rec:#}");
    assert_eq!(rec["passed"], rec["cases"]);
    let changes = rec["changes"].as_array().unwrap();
    let change = |id: &str| {
        changes
            .iter()
            .find(|c| c["permit"]["id"] == id)
            .unwrap_or_else(|| panic!("no change for {id}"))
    };
    assert_eq!(change("developer-custom-role")["change"], "narrowed");
    assert_eq!(
        strings(&change("developer-custom-role")["operations"]),
        [
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Compute/virtualMachines/start/action"
        ]
    );
    assert_eq!(
        strings(&change("reader-read")["operations"]),
        [
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.Storage/storageAccounts/read"
        ]
    );
    for removed in [
        "contributor",
        "operator-monitor",
        "operator-backup",
        "operator-scale",
        "security-manager",
    ] {
        assert_eq!(change(removed)["change"], "removed", "{removed}");
    }
    assert_eq!(
        strings(&change("break-glass")["operations"]),
        ["Microsoft.Authorization/roleAssignments/write"]
    );
    let diff = std::fs::read_to_string(out.join("diff.patch")).unwrap();
    assert!(
        diff.contains("--- running/roles.cedar") && diff.contains("+++ recommended/roles.cedar"),
        "{diff}"
    );
    assert!(
        diff.contains(r#"+// Removed: @id("contributor")"#),
        "{diff}"
    );
    let cases = std::fs::read_to_string(out.join("tests/recommended.toml")).unwrap();
    assert!(
        cases.contains(
            "unused Microsoft.Storage/storageAccounts/write, allowed by the running set, now denied"
        ),
        "{cases}"
    );

    // The generated set and tests stand on their own through the CLI.
    let (code, stdout, stderr) = planted::warden(&[
        "policy".as_ref(),
        "validate".as_ref(),
        "--policies".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) =
        planted::warden(&["policy".as_ref(), "test".as_ref(), out.as_os_str()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    never_wider(&engine, &out);

    // A second run into the same directory is refused, and changes nothing.
    let before = std::fs::read_to_string(out.join("roles.cedar")).unwrap();
    let mut args: Vec<&OsStr> = vec![
        "access".as_ref(),
        "review".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
    ];
    let baseline = planted::baseline();
    args.extend([
        "--policies".as_ref(),
        baseline.as_os_str(),
        "--recommend".as_ref(),
        out.as_os_str(),
    ]);
    let (code, _, stderr) = planted::warden(&args);
    assert_ne!(code, 0);
    assert!(stderr.contains("exists and is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("roles.cedar")).unwrap(),
        before
    );
}

/// 10,000 generated requests: whatever the recommended set allows, the
/// running set allows too.
fn never_wider(running: &Engine, recommended_dir: &Path) {
    let ops = warden::catalog::Catalog::builtin()
        .unwrap()
        .operation_classes();
    let recommended = Engine::load(
        &PolicyConfig {
            dir: recommended_dir.to_path_buf(),
            ..PolicyConfig::default()
        },
        &ops,
    )
    .expect("the recommended set loads");
    let roles = [
        "Reader",
        "Developer",
        "Operator",
        "Contributor",
        "SecurityManager",
        "BreakGlass",
    ];
    let groups = [planted::DEV_RG, planted::PROD_RG];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut allowed = 0;
    let mut narrowed = 0;
    for i in 0..10_000 {
        let mut p = planted::principal(&ALICE);
        p.roles = roles
            .iter()
            .filter(|_| next() % 3 == 0)
            .map(|r| (*r).to_owned())
            .collect();
        p.mfa = next() % 2 == 0;
        let (op, class) = &ops[(next() % ops.len() as u64) as usize];
        let rg = groups[(next() % 2) as usize];
        let mut facts: OperationFacts = serde_json::from_value(serde_json::json!({
            "azure_op": op, "class": class,
            "resource_id": planted::vm(rg, &format!("vm{}", next() % 3)),
        }))
        .unwrap();
        if next() % 2 == 0 {
            facts.tags.insert("env".into(), "dev".into());
        }
        let mut context = CallContext::new("t", "s", planted::at());
        context.facts = warden::facts::Completeness::Complete;
        let new = recommended.authorize(&p, std::slice::from_ref(&facts), &context);
        let old = running.authorize(&p, std::slice::from_ref(&facts), &context);
        if new.is_allowed() {
            allowed += 1;
            assert!(
                old.is_allowed(),
                "request {i}: the recommendation allows what the running set denies: {p:?} {facts:?}"
            );
        } else if old.is_allowed() {
            narrowed += 1;
        }
    }
    assert!(
        allowed > 0 && narrowed > 0,
        "the requests exercise both sets: {allowed} allowed, {narrowed} narrowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_store_is_reviewed_as_a_sqlite_one() {
    let engine = planted::engine();
    let schema =
        warden::store::postgres::ScratchSchema::create(&common::replicas::postgres_admin())
            .expect("PostgreSQL at 127.0.0.1:5432 (database test)");
    let pg_dir = tempfile::tempdir().unwrap();
    planted::write_log(
        pg_dir.path(),
        warden::store::Location::Postgres(schema.url()),
        &engine,
        &planted::calls(),
        Vec::new(),
    )
    .await;
    let lite_dir = tempfile::tempdir().unwrap();
    let db = planted::write_store(lite_dir.path(), &engine, &planted::calls(), Vec::new()).await;
    let pg = review(schema.url(), None);
    let lite = review(&db, None);
    for part in [
        "principals",
        "entitlements",
        "attributed",
        "period",
        "policy_set",
    ] {
        assert_eq!(pg["review"][part], lite["review"][part], "{part}");
    }
    assert_eq!(pg["review"]["principals"].as_array().unwrap().len(), 6);
}
