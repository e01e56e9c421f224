//! Engine tests with real files: the baseline policy cases, fail-closed
//! evaluation, reload, shadow mode and the `tools/list` filter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;
use crate::identity::{Principal, PrincipalKind};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn baseline_config() -> PolicyConfig {
    PolicyConfig {
        dir: repo("policies"),
        ..PolicyConfig::default()
    }
}

/// The operations of the built-in tool catalog, as the integrator passes
/// them (one pair per class an operation carries).
fn catalog_operations() -> Vec<(String, String)> {
    crate::catalog::Catalog::builtin()
        .expect("the built-in catalog loads")
        .operation_classes()
}

fn now() -> DateTime<Utc> {
    DEFAULT_TEST_NOW
        .parse()
        .expect("DEFAULT_TEST_NOW is RFC 3339")
}

fn user(roles: &[&str], mfa: bool) -> Principal {
    let mut p = Principal::anonymous(None);
    p.tid = "t1".into();
    p.oid = "o1".into();
    p.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    p.mfa = mfa;
    p
}

/// A call whose resources' facts are known (as a policy case's are unless
/// it says otherwise).
fn call() -> CallContext {
    let mut call = CallContext::new("tool", "session-1", now());
    call.facts = crate::facts::Completeness::Complete;
    call
}

const DEV_VM: &str =
    "/subscriptions/s1/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/vm1";

/// A temporary policy directory with the given files.
fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write policy");
    }
    dir
}

fn config_for(dir: &Path) -> PolicyConfig {
    PolicyConfig {
        dir: dir.to_path_buf(),
        ..PolicyConfig::default()
    }
}

fn report_failures(report: &TestReport) -> String {
    report
        .cases
        .iter()
        .filter(|c| !c.passed())
        .map(|c| {
            format!(
                "{} / {}: {}",
                c.file.display(),
                c.name,
                c.failures.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn baseline_policy_cases_pass() {
    let engine = Engine::load(&baseline_config(), &[]).expect("baseline loads");
    let report = run_tests(&engine, &repo("policies/tests"));
    assert!(report.ok(), "{}", report_failures(&report));
    assert!(report.cases.len() >= 80, "{} cases", report.cases.len());
    assert!(
        engine.summary().warnings.is_empty(),
        "{:?}",
        engine.summary().warnings
    );
}

#[test]
fn baseline_policy_cases_pass_with_the_catalog_operations() {
    let operations = catalog_operations();
    assert!(operations.len() > 100);
    let engine = Engine::load(&baseline_config(), &operations).expect("baseline loads");
    assert!(engine.summary().operations >= operations.len() / 2);
    let report = run_tests(&engine, &repo("policies/tests"));
    assert!(report.ok(), "{}", report_failures(&report));
    // The same policy files give the same hash whatever the operations.
    let plain = validate(&baseline_config(), &[]).expect("validates");
    assert_eq!(plain.hash, engine.hash());
    let ids: Vec<&str> = plain.policies.iter().map(|p| p.id.as_str()).collect();
    for id in [
        "reader-read",
        "developer-custom-role",
        "operator-monitor",
        "operator-backup",
        "operator-scale",
        "security-manager",
        "contributor",
        "break-glass",
        "unknown-operation-denied",
        "mfa-for-delete-and-privileged",
        "privileged-requires-jit",
        "prod-delete-requires-jit",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

#[test]
fn a_failing_case_is_reported() {
    let engine = Engine::load(&baseline_config(), &[]).expect("baseline loads");
    let tests = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        tests.path().join("wrong.toml"),
        r#"
[[case]]
name = "reader deletes"
principal = { roles = ["Reader"], mfa = true }
operation = { azure_op = "Microsoft.Compute/virtualMachines/delete", class = "delete", resource_id = "/" }
expect = { effect = "allow", policies = ["reader-read"] }

[[case]]
name = "no expectation"
operation = { azure_op = "Microsoft.Compute/virtualMachines/read", class = "read" }
"#,
    )
    .expect("write");
    std::fs::write(tests.path().join("broken.toml"), "[[case]\n").expect("write");
    let report = run_tests(&engine, tests.path());
    assert_eq!((report.passed(), report.failed()), (0, 3));
    let text = report_failures(&report);
    assert!(text.contains("effect: expected allow"), "{text}");
    assert!(
        text.contains("policies: expected [\"reader-read\"]"),
        "{text}"
    );
    assert!(text.contains("no `expect`"), "{text}");
    assert!(text.contains("broken.toml"), "{text}");
}

#[test]
fn an_evaluation_error_denies() {
    // The forbid overflows on large capacities: Cedar skips an erroring
    // policy (and would allow); Warden denies.
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("everyone") permit (principal, action, resource);

@id("capacity-limit")
forbid (principal, action, resource)
when { context.args has capacity && context.args.capacity * 1000000000000 > 5000000000000 };
"#,
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let op = [OperationFacts::new(
        "Microsoft.Compute/virtualMachineScaleSets/write",
        "write",
        DEV_VM,
    )];

    let mut small = call();
    small.arguments = Some(json!({ "capacity": 3 }));
    let d = engine.authorize(&user(&[], false), &op, &small);
    assert!(d.is_allowed(), "{d:?}");

    let mut large = call();
    large.arguments = Some(json!({ "capacity": 10_000_000 }));
    let d = engine.authorize(&user(&[], false), &op, &large);
    assert_eq!(d.effect(), Effect::Deny);
    assert_eq!(d.advice(), Some(Advice::Deny));
    assert_eq!(d.policies(), ["capacity-limit"]);
    assert!(d.errors()[0].contains("capacity-limit"), "{:?}", d.errors());
    assert!(d.errors()[0].contains("overflow"), "{:?}", d.errors());
}

#[test]
fn a_request_that_cannot_be_built_denies() {
    let engine = Engine::load(&baseline_config(), &[]).expect("loads");
    let reader = user(&["Reader"], false);
    let read = OperationFacts::new("Microsoft.Compute/virtualMachines/read", "read", DEV_VM);
    assert!(
        engine
            .authorize(&reader, std::slice::from_ref(&read), &call())
            .is_allowed()
    );

    let mut bad_arg = call();
    bad_arg.arguments = Some(json!({ "VM-Size": ["a"] }));
    let d = engine.authorize(&reader, std::slice::from_ref(&read), &bad_arg);
    assert_eq!((d.effect(), d.advice()), (Effect::Deny, Some(Advice::Deny)));
    assert!(
        d.errors()[0].contains("context.args.vm_size"),
        "{:?}",
        d.errors()
    );

    let mut twice = call();
    twice.arguments = Some(json!({ "vmSize": "a", "vm_size": "b" }));
    let d = engine.authorize(&reader, std::slice::from_ref(&read), &twice);
    assert!(
        !d.is_allowed() && d.errors()[0].contains("both fill"),
        "{:?}",
        d.errors()
    );

    let d = engine.authorize(&reader, &[], &call());
    assert!(!d.is_allowed() && !d.errors().is_empty());
    assert_eq!(d.policy_set(), engine.hash());
}

/// A policy set that permits everything and has no `forbid` on class
/// `unknown`: whatever denies below, no policy did.
fn permit_all() -> (tempfile::TempDir, Engine) {
    let dir = policy_dir(&[(
        "all.cedar",
        "@id(\"everything\")\npermit (principal, action, resource);\n",
    )]);
    let engine = Engine::load(&config_for(dir.path()), &catalog_operations()).expect("loads");
    (dir, engine)
}

fn assert_failed_closed(d: &Decision, says: &str) {
    assert_eq!(
        (d.effect(), d.advice()),
        (Effect::Deny, Some(Advice::Deny)),
        "{d:?}"
    );
    assert!(!d.is_allowed());
    assert!(
        d.errors().iter().any(|e| e.contains(says)),
        "expected an error saying {says:?}: {:?}",
        d.errors()
    );
    assert!(
        d.operations()
            .iter()
            .all(|op| op.effect == Effect::Deny && op.advice == Some(Advice::Deny)),
        "{d:?}"
    );
    assert!(
        !d.policies().contains(&"everything".to_owned()),
        "a permit does not determine a deny: {d:?}"
    );
}

#[test]
fn an_unresolvable_call_is_denied_without_an_unknown_forbid() {
    let (_dir, engine) = permit_all();
    let reader = user(&["Reader"], false);
    let catalog = crate::catalog::Catalog::builtin().expect("the built-in catalog loads");
    let resolution = catalog.resolve(
        "arm_vm_get",
        &json!({
            "subscription": "00000000-0000-4000-8000-000000000001",
            "resource-group": "dev-web",
            "vm-name": "a/../../b",
        }),
        None,
    );
    let problem = resolution
        .problem
        .clone()
        .expect("the name cannot be resolved");
    let facts: Vec<OperationFacts> = resolution
        .operations
        .iter()
        .map(|op| OperationFacts::new(&op.azure_op, op.class.as_str(), op.resource.id.as_str()))
        .collect();
    let mut d = engine.authorize(&reader, &facts, &call());
    assert!(d.is_allowed(), "the set alone permits the fallback: {d:?}");
    assert_eq!(d.policies(), ["everything"]);

    d.fail(format!(
        "the call's resources cannot be resolved: {problem}"
    ));
    assert_failed_closed(&d, "cannot be resolved");
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(
        (v["effect"].as_str(), v["advice"].as_str()),
        (Some("deny"), Some("deny"))
    );
    assert_eq!(v["operations"][0]["effect"], "deny");

    // Under the global shadow flag too.
    let (dir, _) = permit_all();
    let shadowed = Engine::load(
        &PolicyConfig {
            shadow: true,
            ..config_for(dir.path())
        },
        &[],
    )
    .expect("loads");
    let mut d = shadowed.authorize(&reader, &facts, &call());
    assert!(d.is_allowed());
    d.fail("the call's resources cannot be resolved: x");
    assert_failed_closed(&d, "cannot be resolved");
    let shadow = d.shadow().expect("shadow outcome");
    assert_eq!(shadow.outcome().effect(), Effect::Allow);
    assert!(shadow.differs(), "the enforced decision is now a deny");
}

#[test]
fn a_call_whose_entities_cannot_be_built_is_denied_without_an_unknown_forbid() {
    let (dir, engine) = permit_all();
    let reader = user(&["Reader"], false);
    let read = |resource: &str| {
        OperationFacts::new("Microsoft.Compute/virtualMachines/read", "read", resource)
    };
    let good = read(DEV_VM);
    assert!(
        engine
            .authorize(&reader, std::slice::from_ref(&good), &call())
            .is_allowed()
    );

    // The resource id is not an ARM id: no resource entity.
    let d = engine.authorize(&reader, &[read("/foo/bar")], &call());
    assert_failed_closed(&d, "is not an ARM resource id");
    // The operation's facts contradict its id.
    let mut contradicting = good.clone();
    contradicting.subscription = Some("s2".into());
    let d = engine.authorize(&reader, &[contradicting], &call());
    assert_failed_closed(&d, "is not the one of its resource id");
    // The class is none Warden knows: no action entity.
    let d = engine.authorize(
        &reader,
        &[OperationFacts::new(
            "Microsoft.Compute/virtualMachines/read",
            "sideways",
            DEV_VM,
        )],
        &call(),
    );
    assert_failed_closed(&d, "sideways");
    // An argument policies test has the wrong type: no context.
    let mut bad_arg = call();
    bad_arg.arguments = Some(json!({ "location": 42 }));
    let d = engine.authorize(&reader, std::slice::from_ref(&good), &bad_arg);
    assert_failed_closed(&d, "context.args.location");
    // One operation that cannot be built denies the whole call, and the
    // other operation's permit does not determine the deny.
    let d = engine.authorize(&reader, &[good.clone(), read("/foo/bar")], &call());
    assert_failed_closed(&d, "is not an ARM resource id");
    assert!(d.policies().is_empty(), "{d:?}");

    // Under the global shadow flag, policies are not enforced but a request
    // that cannot be built still denies.
    let shadowed = Engine::load(
        &PolicyConfig {
            shadow: true,
            ..config_for(dir.path())
        },
        &[],
    )
    .expect("loads");
    assert!(
        shadowed
            .authorize(&reader, std::slice::from_ref(&good), &call())
            .is_allowed()
    );
    let d = shadowed.authorize(&reader, &[good, read("/foo/bar")], &call());
    assert_failed_closed(&d, "is not an ARM resource id");
    let shadow = d.shadow().expect("shadow outcome");
    assert!(shadow.global());
    assert!(!shadow.errors().is_empty());
    assert_eq!(shadow.outcome().effect(), Effect::Deny);
}

#[test]
fn reload_with_an_invalid_policy_keeps_the_old_set() {
    let dir = policy_dir(&[(
        "a.cedar",
        "@id(\"readers\")\npermit (principal in AppRole::\"Reader\", action in Action::\"read\", resource);\n",
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let first = engine.hash();
    let reader = user(&["Reader"], false);
    let write = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/write",
        "write",
        DEV_VM,
    )];
    let read = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/read",
        "read",
        DEV_VM,
    )];
    assert!(engine.authorize(&reader, &read, &call()).is_allowed());
    assert!(!engine.authorize(&reader, &write, &call()).is_allowed());

    // A syntax error on line 3 of a new file.
    let b = dir.path().join("b.cedar");
    std::fs::write(
        &b,
        "// writers\n\n@id(\"writers\") permit (principal, action in Action::\"write\" resource);\n",
    )
    .expect("write");
    let err = engine.reload().expect_err("invalid set");
    assert!(
        err.to_string().contains(&format!("{}:3:", b.display())),
        "{err}"
    );
    assert_eq!(engine.hash(), first);
    assert!(!engine.authorize(&reader, &write, &call()).is_allowed());
    assert!(engine.authorize(&reader, &read, &call()).is_allowed());

    // Parses, but fails strict validation (no such attribute), on line 2.
    std::fs::write(
        &b,
        "\n@id(\"writers\")\npermit (principal, action in Action::\"write\", resource)\nwhen { resource.owner == \"me\" };\n",
    )
    .expect("write");
    let err = engine.reload().expect_err("invalid set");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}:2: policy `writers`", b.display())),
        "{text}"
    );
    assert!(text.contains("owner"), "{text}");
    assert_eq!(engine.hash(), first);

    // A policy without @id is a load error too.
    std::fs::write(&b, "permit (principal, action, resource);\n").expect("write");
    let err = engine.reload().expect_err("no @id");
    assert!(err.to_string().contains("no @id"), "{err}");
    assert_eq!(engine.hash(), first);

    // Fixed: the new set replaces the old one.
    std::fs::write(
        &b,
        "@id(\"writers\") permit (principal, action in Action::\"write\", resource);\n",
    )
    .expect("write");
    let summary = engine.reload().expect("valid set");
    assert_ne!(summary.hash, first);
    assert_eq!(engine.hash(), summary.hash);
    assert_eq!(summary.policies.len(), 2);
    assert_eq!(summary.files.len(), 2);
    let d = engine.authorize(&reader, &write, &call());
    assert!(d.is_allowed());
    assert_eq!(d.policies(), ["writers"]);
    assert_eq!(d.policy_set(), summary.hash);
}

#[test]
fn an_empty_or_missing_directory_does_not_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = Engine::load(&config_for(dir.path()), &[]).expect_err("empty");
    assert!(matches!(err, PolicyError::Empty(_)), "{err}");
    let err = Engine::load(&config_for(&dir.path().join("nope")), &[]).expect_err("missing");
    assert!(matches!(err, PolicyError::Io { .. }), "{err}");
}

#[test]
fn policies_must_name_declared_actions() {
    let dir = policy_dir(&[(
        "typo.cedar",
        "@id(\"typo\")\npermit (principal, action == Action::\"Microsoft.Compute/virtualMachine/read\", resource);\n",
    )]);
    let err = Engine::load(&config_for(dir.path()), &[]).expect_err("undeclared action");
    assert!(
        err.to_string().contains("typo.cedar:1: policy `typo`"),
        "{err}"
    );
    // Declared by the catalog's operations, it validates.
    let ops = [(
        "Microsoft.Compute/virtualMachine/read".to_owned(),
        "read".to_owned(),
    )];
    assert!(Engine::load(&config_for(dir.path()), &ops).is_ok());
}

#[test]
fn a_shadow_policy_is_recorded_not_enforced() {
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("everyone") permit (principal, action, resource);
@id("no-writes") @shadow @advice("require_approval")
forbid (principal, action in Action::"write", resource);
"#,
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let write = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/write",
        "write",
        DEV_VM,
    )];
    let d = engine.authorize(&user(&[], false), &write, &call());
    assert!(d.is_allowed());
    assert_eq!(d.policies(), ["everyone"]);
    let shadow = d.shadow().expect("shadow outcome");
    assert!(!shadow.global() && shadow.differs());
    assert_eq!(shadow.outcome().effect(), Effect::Deny);
    assert_eq!(shadow.outcome().advice(), Some(Advice::RequireApproval));
    assert_eq!(shadow.outcome().policies(), ["no-writes"]);

    let read = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/read",
        "read",
        DEV_VM,
    )];
    let d = engine.authorize(&user(&[], false), &read, &call());
    assert!(!d.shadow().expect("shadow outcome").differs());
}

#[test]
fn global_shadow_allows_and_records_what_policies_decided() {
    let config = PolicyConfig {
        shadow: true,
        ..baseline_config()
    };
    let engine = Engine::load(&config, &[]).expect("loads");
    let delete = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/delete",
        "delete",
        DEV_VM,
    )];
    let d = engine.authorize(&user(&["Reader"], false), &delete, &call());
    assert!(d.is_allowed());
    assert!(d.policies().is_empty());
    let shadow = d.shadow().expect("shadow outcome");
    assert!(shadow.global() && shadow.differs());
    assert_eq!(shadow.outcome().effect(), Effect::Deny);
    assert_eq!(
        shadow.outcome().policies(),
        ["mfa-for-delete-and-privileged"]
    );
    // Nothing is hidden from tools/list either.
    assert!(engine.could_be_allowed(
        &user(&[], false),
        [("Microsoft.Compute/virtualMachines/delete", "delete")]
    ));
    // Policy tests still check what the policies decide.
    let report = run_tests(&engine, &repo("policies/tests"));
    assert!(report.ok(), "{}", report_failures(&report));
}

#[test]
fn tools_list_filter_hides_what_can_never_be_allowed() {
    let engine = Engine::load(&baseline_config(), &catalog_operations()).expect("loads");
    let can = |roles: &[&str], ops: &[(&str, &str)]| {
        engine.could_be_allowed(&user(roles, false), ops.iter().copied())
    };
    let vm = |verb: &str| format!("Microsoft.Compute/virtualMachines/{verb}");

    // Reader: reads only.
    assert!(can(&["Reader"], &[(&vm("read"), "read")]));
    assert!(!can(&["Reader"], &[(&vm("write"), "write")]));
    assert!(!can(&["Reader"], &[(&vm("delete"), "delete")]));
    // All operations of a call must be possible.
    assert!(!can(
        &["Reader"],
        &[(&vm("read"), "read"), (&vm("write"), "write")]
    ));
    assert!(!can(&["Reader"], &[]));

    // Developer: the NotActions are never allowed, although the permit's
    // scope condition is unknown without a resource (residual check).
    assert!(can(&["Developer"], &[(&vm("write"), "write")]));
    assert!(can(&["Developer"], &[(&vm("restart/action"), "action")]));
    assert!(!can(&["Developer"], &[(&vm("delete"), "delete")]));
    assert!(!can(
        &["Developer"],
        &[("Microsoft.Storage/storageAccounts/delete", "delete")]
    ));
    // Possible after step-up (MFA unknown) and approval (grant unknown).
    assert!(can(
        &["Developer"],
        &[(
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "privileged"
        )]
    ));
    assert!(!can(
        &["Developer"],
        &[(
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "privileged"
        )]
    ));

    // Contributor: deletes possible (MFA, grant), privileged never.
    assert!(can(&["Contributor"], &[(&vm("delete"), "delete")]));
    assert!(!can(
        &["Contributor"],
        &[(
            "Microsoft.Authorization/roleAssignments/write",
            "privileged"
        )]
    ));
    assert!(can(
        &["SecurityManager"],
        &[(
            "Microsoft.Authorization/roleAssignments/write",
            "privileged"
        )]
    ));

    // Unknown tools are hidden from everyone, break glass included.
    assert!(!can(
        &["BreakGlass"],
        &[("Warden/tools/mystery/unknown", "unknown")]
    ));
    assert!(can(&["BreakGlass"], &[(&vm("delete"), "delete")]));
    assert!(!can(&[], &[(&vm("read"), "read")]));
    assert!(!can(&["Reader"], &[(&vm("read"), "sideways")]));
}

#[test]
fn tools_list_filter_hides_tools_whose_policies_always_fail() {
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("everyone") permit (principal, action, resource);
@id("broken") forbid (principal, action, resource) when { 9223372036854775807 + 1 > 0 };
"#,
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let d = engine.authorize(
        &user(&[], false),
        &[OperationFacts::new(
            "Microsoft.Compute/virtualMachines/read",
            "read",
            DEV_VM,
        )],
        &call(),
    );
    assert!(!d.is_allowed() && d.policies() == ["broken"]);
    assert!(!engine.could_be_allowed(
        &user(&[], false),
        [("Microsoft.Compute/virtualMachines/read", "read")]
    ));
}

#[test]
fn roles_can_be_conferred_by_group_membership() {
    let config = PolicyConfig {
        roles: BTreeMap::from([(
            "Developer".to_owned(),
            vec!["6F1C0E3A-0000-4000-8000-00000000DEV1".to_owned()],
        )]),
        ..baseline_config()
    };
    let engine = Engine::load(&config, &[]).expect("loads");
    let write = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/write",
        "write",
        DEV_VM,
    )];
    let mut member = user(&[], false);
    member
        .groups
        .insert("6f1c0e3a-0000-4000-8000-00000000dev1".into());
    let d = engine.authorize(&member, &write, &call());
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.policies(), ["developer-custom-role"]);
    assert!(engine.could_be_allowed(
        &member,
        [("Microsoft.Compute/virtualMachines/write", "write")]
    ));

    // Groups overage: the group set is unknown, so no role is conferred.
    let mut overage = user(&[], false);
    overage.groups_overage = true;
    assert!(!engine.authorize(&overage, &write, &call()).is_allowed());

    let bad = PolicyConfig {
        roles: BTreeMap::from([("Developer".to_owned(), vec![" ".to_owned()])]),
        ..baseline_config()
    };
    let err = Engine::load(&bad, &[]).expect_err("empty group id");
    assert!(err.to_string().contains("roles.Developer"), "{err}");
}

#[test]
fn management_groups_and_groups_are_ancestors() {
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("corp-readers")
permit (
  principal in Group::"a1b2c3d4-0000-4000-8000-000000000001",
  action in Action::"read",
  resource in ManagementGroup::"/providers/microsoft.management/managementgroups/corp"
);
"#,
    )]);
    let config = PolicyConfig {
        management_groups: BTreeMap::from([
            (
                "corp".to_owned(),
                ManagementGroupConfig {
                    parent: None,
                    subscriptions: vec![],
                },
            ),
            (
                "online".to_owned(),
                ManagementGroupConfig {
                    parent: Some("corp".into()),
                    subscriptions: vec!["S1".into()],
                },
            ),
        ]),
        ..config_for(dir.path())
    };
    let engine = Engine::load(&config, &[]).expect("loads");
    let mut member = user(&[], false);
    member
        .groups
        .insert("A1B2C3D4-0000-4000-8000-000000000001".into());
    let read = |id: &str| {
        [OperationFacts::new(
            "Microsoft.Compute/virtualMachines/read",
            "read",
            id,
        )]
    };
    assert!(
        engine
            .authorize(&member, &read(DEV_VM), &call())
            .is_allowed()
    );
    let other =
        "/subscriptions/s2/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/vm1";
    assert!(
        !engine
            .authorize(&member, &read(other), &call())
            .is_allowed()
    );
    assert!(
        !engine
            .authorize(&user(&[], false), &read(DEV_VM), &call())
            .is_allowed()
    );
}

#[test]
fn policies_see_arguments_risk_time_and_source() {
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("everyone") permit (principal, action, resource);

@id("no-big-vms") @advice("deny")
forbid (principal, action, resource)
when { context.args has vm_size && context.args.vm_size like "standard_m*" };

@id("west-europe-only")
forbid (principal, action, resource)
when { context.args has location && context.args.location != "westeurope" };

@id("risky")
forbid (principal, action, resource)
when { context has risk && context.risk.score >= 80 };

@id("office-hours") @advice("require_approval")
forbid (principal, action, resource)
when { context.now.toTime() < duration("8h") };

@id("corporate-network")
forbid (principal, action, resource)
when { context has source_ip && !context.source_ip.isInRange(ip("10.0.0.0/8")) };

@id("tagged") @alert("tagged-resource")
forbid (principal, action, resource)
when { resource.hasTag("owner") && resource.getTag("owner") == "legal" && resource has location && resource.location == "japaneast" };
"#,
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let op = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/write",
        "write",
        DEV_VM,
    )];
    let decide = |principal: &Principal, c: &CallContext, op: &[OperationFacts]| {
        let d = engine.authorize(principal, op, c);
        (d.effect(), d.policies().to_vec())
    };
    let p = user(&[], false);
    assert_eq!(
        decide(&p, &call(), &op),
        (Effect::Allow, vec!["everyone".into()])
    );

    let mut c = call();
    c.arguments = Some(json!({ "vmSize": "Standard_M128s", "Location": "WestEurope" }));
    assert_eq!(
        decide(&p, &c, &op),
        (Effect::Deny, vec!["no-big-vms".into()])
    );
    c.arguments = Some(json!({ "vm-size": "Standard_D2s_v3", "location": "eastus" }));
    assert_eq!(
        decide(&p, &c, &op),
        (Effect::Deny, vec!["west-europe-only".into()])
    );

    let mut c = call();
    c.risk = Some(RiskFacts {
        score: 90,
        level: "High".into(),
        reasons: vec!["new_country".into()],
    });
    assert_eq!(decide(&p, &c, &op), (Effect::Deny, vec!["risky".into()]));

    let mut c = call();
    c.now = "2025-01-01T03:00:00Z".parse().expect("time");
    let d = engine.authorize(&p, &op, &c);
    assert_eq!(
        (d.effect(), d.advice()),
        (Effect::Deny, Some(Advice::RequireApproval))
    );

    let outside = Principal {
        source_ip: Some([203, 0, 113, 9].into()),
        ..user(&[], false)
    };
    assert_eq!(
        decide(&outside, &call(), &op),
        (Effect::Deny, vec!["corporate-network".into()])
    );
    let inside = Principal {
        source_ip: Some([10, 1, 2, 3].into()),
        ..user(&[], false)
    };
    assert_eq!(decide(&inside, &call(), &op).0, Effect::Allow);

    let mut tagged = op[0].clone();
    tagged.tags = BTreeMap::from([("Owner".to_owned(), "Legal".to_owned())]);
    tagged.location = Some("JapanEast".into());
    let d = engine.authorize(&p, &[tagged], &call());
    assert_eq!(d.policies(), ["tagged"]);
    assert_eq!(
        d.alerts(),
        [Alert {
            policy: "tagged".into(),
            alert: "tagged-resource".into()
        }]
    );
}

#[test]
fn service_principals_and_users_are_distinct_entities() {
    let dir = policy_dir(&[(
        "p.cedar",
        r#"
@id("apps-read") permit (principal is ServicePrincipal, action in Action::"read", resource);
@id("one-user") permit (principal == User::"t1/o1", action, resource);
"#,
    )]);
    let engine = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    let write = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/write",
        "write",
        DEV_VM,
    )];
    let read = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/read",
        "read",
        DEV_VM,
    )];
    let app = Principal {
        kind: PrincipalKind::Application,
        ..user(&[], false)
    };
    assert!(engine.authorize(&app, &read, &call()).is_allowed());
    assert!(!engine.authorize(&app, &write, &call()).is_allowed());
    assert!(
        engine
            .authorize(&user(&[], false), &write, &call())
            .is_allowed()
    );
    let other = Principal {
        oid: "o2".into(),
        ..user(&[], false)
    };
    assert!(!engine.authorize(&other, &write, &call()).is_allowed());
}

#[test]
fn missing_facts_are_unknown_never_no_tags() {
    use crate::facts::Completeness;
    let engine = Engine::load(&baseline_config(), &[]).expect("loads");
    let contributor = user(&["Contributor"], true);
    let delete = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/delete",
        "delete",
        DEV_VM,
    )];
    // A context nobody said anything about: the facts are unavailable.
    let unknown = CallContext::new("tool", "session-1", now());
    assert_eq!(unknown.facts, Completeness::Unavailable);
    let d = engine.authorize(&contributor, &delete, &unknown);
    assert_eq!(d.effect(), Effect::Deny);
    assert_eq!(d.advice(), Some(Advice::RequireApproval));
    assert_eq!(d.policies(), ["delete-without-facts-requires-jit"]);
    for (facts, allowed) in [
        (Completeness::Complete, true),
        (Completeness::Partial, false),
        (Completeness::Unavailable, false),
    ] {
        let mut context = call();
        context.facts = facts;
        assert_eq!(
            engine
                .authorize(&contributor, &delete, &context)
                .is_allowed(),
            allowed,
            "{facts:?}"
        );
        // Reads do not depend on it.
        let read = [OperationFacts::new(
            "Microsoft.Compute/virtualMachines/read",
            "read",
            DEV_VM,
        )];
        assert!(engine.authorize(&contributor, &read, &context).is_allowed());
    }
}

#[test]
fn the_resource_group_s_tags_are_on_the_group_every_scope_in_it_names() {
    let engine = Engine::load(&baseline_config(), &[]).expect("loads");
    let contributor = user(&["Contributor"], true);
    // An untagged VM extension, nested in an untagged VM, in a group tagged
    // env=prod.
    let mut op = OperationFacts::new(
        "Microsoft.Compute/virtualMachines/extensions/delete",
        "delete",
        "/subscriptions/s1/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/vm1/extensions/agent",
    );
    op.resource_group_tags = BTreeMap::from([("Env".into(), "Prod".into())]);
    let d = engine.authorize(&contributor, std::slice::from_ref(&op), &call());
    assert_eq!(d.advice(), Some(Advice::RequireApproval), "{d:?}");
    assert_eq!(d.policies(), ["prod-delete-requires-jit"]);
    // The group's tags are not the resource's: a forbid on the resource's
    // own tags does not see them.
    let dir = policy_dir(&[(
        "p.cedar",
        "@id(\"all\")\npermit (principal, action, resource);\n\
         @id(\"own-tag\")\nforbid (principal, action, resource) when { resource.hasTag(\"env\") };\n",
    )]);
    let own = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    assert!(
        own.authorize(&contributor, std::slice::from_ref(&op), &call())
            .is_allowed()
    );
    // The resource the extension is nested in carries the same facts.
    let dir = policy_dir(&[(
        "p.cedar",
        "@id(\"all\")\npermit (principal, action, resource);\n\
         @id(\"parent-tag\")\nforbid (principal, action, resource) when { \
         Resource::\"/subscriptions/s1/resourcegroups/prod-web/providers/microsoft.compute/virtualmachines/vm1\".hasTag(\"env\") };\n",
    )]);
    let parent = Engine::load(&config_for(dir.path()), &[]).expect("loads");
    assert!(
        parent
            .authorize(&contributor, std::slice::from_ref(&op), &call())
            .is_allowed()
    );
    op.tags = BTreeMap::from([("env".into(), "dev".into())]);
    assert!(
        !parent
            .authorize(&contributor, std::slice::from_ref(&op), &call())
            .is_allowed()
    );
}

#[test]
fn the_decision_is_the_audit_record_decision() {
    let engine = Engine::load(&baseline_config(), &[]).expect("loads");
    let op = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/delete",
        "delete",
        DEV_VM,
    )];
    let d = engine.authorize(&user(&["Contributor"], false), &op, &call());
    let mut record = crate::audit::record::Record::new(crate::audit::record::Kind::Intent);
    record.decision = Some(serde_json::to_value(&d).expect("serializes"));
    assert_eq!(record.decision_effect().as_deref(), Some("deny"));
    let v = record.decision.as_ref().expect("decision");
    assert_eq!(v["advice"], "step_up");
    assert_eq!(v["policies"], json!(["mfa-for-delete-and-privileged"]));
    assert_eq!(v["policy_set"], engine.hash());
    assert_eq!(v["operations"][0]["resource"], DEV_VM.to_ascii_lowercase());
    let back: Decision = serde_json::from_value(v.clone()).expect("deserializes");
    assert_eq!(back, d);
}

#[test]
fn explain_shows_the_cedar_request_and_the_determining_policies() {
    let engine = Engine::load(&baseline_config(), &[]).expect("loads");
    let cases = read_cases(&repo("policies/tests/developer.toml")).expect("cases");
    let case = &cases[0];
    let (principal, operations, call) = case.request(now()).expect("request");
    let e = engine.explain(&principal, &operations, &call);
    assert!(e.decision.is_allowed());
    let r = &e.requests[0];
    assert_eq!(
        r.action.as_deref(),
        Some("Action::\"Microsoft.Compute/virtualMachines/restart/action\"")
    );
    assert!(
        r.resource
            .as_deref()
            .is_some_and(|s| s.contains("/resourcegroups/dev-web/"))
    );
    assert_eq!(r.context["tool"], "compute_vm_restart");
    let entities = r.entities.as_array().expect("entities");
    assert!(entities.iter().any(|e| e["uid"]["type"] == "ResourceGroup"));
    assert!(
        entities
            .iter()
            .any(|e| e["uid"]["id"] == "Microsoft.Compute/virtualMachines/*")
    );
    assert_eq!(e.policies.len(), 1);
    assert_eq!(e.policies[0].info.id, "developer-custom-role");
    assert!(e.policies[0].text.contains("dev-*"));
    assert!(e.policies[0].info.file.ends_with("roles.cedar"));
}

#[test]
fn the_built_in_schema_is_the_schema_file() {
    let file = std::fs::read_to_string(repo("schemas/warden.cedarschema")).expect("schema");
    assert_eq!(file, BUILTIN_SCHEMA);
    let config = PolicyConfig {
        schema: Some(repo("schemas/warden.cedarschema")),
        ..baseline_config()
    };
    assert_eq!(
        validate(&config, &[]).expect("validates").schema,
        repo("schemas/warden.cedarschema").display().to_string()
    );
}

#[test]
fn a_schema_that_does_not_fit_the_requests_is_rejected() {
    let schema_dir = tempfile::tempdir().expect("temp dir");
    let path = schema_dir.path().join("s.cedarschema");
    std::fs::write(
        &path,
        BUILTIN_SCHEMA.replace("  tool: String,\n", "  tool: Long,\n"),
    )
    .expect("write");
    let config = PolicyConfig {
        schema: Some(path.clone()),
        ..baseline_config()
    };
    let err = Engine::load(&config, &[]).expect_err("context mismatch");
    assert!(
        err.to_string().contains("does not describe the requests"),
        "{err}"
    );
    std::fs::write(
        &path,
        BUILTIN_SCHEMA.replace(
            "  resource_type: String,\n",
            "  resource_type: String,\n  owner: String,\n",
        ),
    )
    .expect("write");
    let err = Engine::load(&config, &[]).expect_err("entity mismatch");
    assert!(
        err.to_string().contains("does not describe the requests"),
        "{err}"
    );
}

#[test]
fn config_is_strict_toml() {
    let config: PolicyConfig = toml::from_str(
        r#"
dir = "policies"
shadow = true
[roles]
Developer = ["g1"]
[management_groups.corp]
subscriptions = ["s1"]
"#,
    )
    .expect("parses");
    assert!(config.shadow);
    assert_eq!(config.roles["Developer"], ["g1"]);
    assert_eq!(config.management_groups["corp"].subscriptions, ["s1"]);
    assert!(toml::from_str::<PolicyConfig>("dir = \"p\"\nshadwo = true\n").is_err());
    assert_eq!(
        toml::from_str::<PolicyConfig>("").expect("defaults"),
        PolicyConfig::default()
    );
}

#[test]
fn the_engine_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let engine = std::sync::Arc::new(Engine::load(&baseline_config(), &[]).expect("loads"));
    shared(&engine);
    let op = [OperationFacts::new(
        "Microsoft.Compute/virtualMachines/read",
        "read",
        DEV_VM,
    )];
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            let op = op.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert!(
                        engine
                            .authorize(&user(&["Reader"], false), &op, &call())
                            .is_allowed()
                    );
                    engine.reload().expect("reloads");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
}

#[test]
fn baseline_policy_cases_pass_evaluating_the_whole_set_too() {
    let engine = Engine::load(&baseline_config(), &catalog_operations()).expect("baseline loads");
    engine.set_slicing(false);
    let report = run_tests(&engine, &repo("policies/tests"));
    assert!(report.ok(), "{}", report_failures(&report));
}

/// The baseline and `n` policies of the kind a large tenant accumulates:
/// permits per team group and resource group, forbids per role and action
/// group, and a few per user.
fn large_policy_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(repo("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let roles = ["Reader", "Developer", "Contributor", "Operator"];
    let groups = [
        "read",
        "write",
        "delete",
        "privileged",
        "Microsoft.Compute/virtualMachines/*",
    ];
    let mut text = String::new();
    for i in 0..n {
        let rg = format!("/subscriptions/s1/resourcegroups/team-{}", i % 50);
        text.push_str(&match i % 5 {
            0 | 1 => format!(
                "@id(\"gen-{i}\")\npermit (principal in Group::\"team-{}\", action in Action::\"{}\", resource in ResourceGroup::\"{rg}\");\n",
                i % 200,
                groups[i % groups.len()]
            ),
            2 => format!(
                "@id(\"gen-{i}\")\n@advice(\"deny\")\nforbid (principal in AppRole::\"{}\", action in Action::\"{}\", resource in ResourceGroup::\"{rg}\");\n",
                roles[i % roles.len()],
                groups[i % groups.len()]
            ),
            3 => format!(
                "@id(\"gen-{i}\")\npermit (principal == User::\"t1/o{}\", action, resource in ResourceGroup::\"{rg}\") when {{ context.mfa }};\n",
                i % 30
            ),
            _ => format!(
                "@id(\"gen-{i}\")\n@advice(\"require_approval\")\nforbid (principal is User, action == Action::\"Microsoft.Compute/virtualMachines/delete\", resource) when {{ resource has rg && resource.rg == ResourceGroup::\"{rg}\" }} unless {{ context has jit }};\n"
            ),
        });
    }
    std::fs::write(dir.path().join("generated.cedar"), text).unwrap();
    dir
}

/// An engine on the baseline and `extra` generated policies, with the
/// catalog's operations, and a seeded random source for requests.
fn generated_setup(
    extra: usize,
    seed: u64,
) -> (
    tempfile::TempDir,
    Vec<(String, String)>,
    Engine,
    rand::rngs::StdRng,
) {
    use rand::SeedableRng;
    let dir = large_policy_dir(extra);
    let config = PolicyConfig {
        dir: dir.path().to_owned(),
        ..PolicyConfig::default()
    };
    let operations = catalog_operations();
    let engine = Engine::load(&config, &operations).expect("the generated set loads");
    (
        dir,
        operations,
        engine,
        rand::rngs::StdRng::seed_from_u64(seed),
    )
}

/// A user with a random subset of `roles`, random MFA, one of `oids` object
/// ids, and one time in ten an application instead.
fn random_principal(rng: &mut impl rand::Rng, roles: &[&str], oids: u32) -> Principal {
    let chosen: Vec<&str> = roles
        .iter()
        .filter(|_| rng.gen_bool(0.3))
        .copied()
        .collect();
    let mut principal = user(&chosen, rng.gen_bool(0.5));
    principal.oid = format!("o{}", rng.gen_range(0..oids));
    if rng.gen_bool(0.1) {
        principal.kind = PrincipalKind::Application;
    }
    principal
}

#[test]
fn slices_decide_as_the_whole_set_on_generated_requests_against_a_thousand_policies() {
    use rand::Rng;
    let (_dir, operations, engine, mut rng) = generated_setup(1000, 17);
    let roles = [
        "Reader",
        "Developer",
        "Contributor",
        "Operator",
        "SecurityManager",
        "BreakGlass",
    ];
    let groups = ["rg-dev", "rg-prod", "rg-shared", "team-9"];
    let mut differences = Vec::new();
    let mut allowed = 0;
    for i in 0..10_000 {
        let mut principal = random_principal(&mut rng, &roles, 40);
        principal.groups = (0..rng.gen_range(0..3))
            .map(|_| {
                if rng.gen_bool(0.5) {
                    format!("team-{}", rng.gen_range(0..200))
                } else {
                    groups[rng.gen_range(0..groups.len())].to_owned()
                }
            })
            .collect();
        let ops: Vec<OperationFacts> = (0..rng.gen_range(1..3))
            .map(|_| {
                let (op, class) = &operations[rng.gen_range(0..operations.len())];
                let rg = match rng.gen_range(0..3) {
                    0 => format!("team-{}", rng.gen_range(0..60)),
                    1 => "dev-web".to_owned(),
                    _ => "prod-db".to_owned(),
                };
                OperationFacts::new(
                    op,
                    class,
                    &format!("/subscriptions/s1/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm{i}"),
                )
            })
            .collect();
        let mut call = call();
        if rng.gen_bool(0.2) {
            call.jit = Some(JitFacts {
                grant_id: format!("r{i}"),
                approver: "sam".into(),
                expires: now() + chrono::Duration::hours(1),
                role: None,
                scope: None,
                approvers: vec!["sam".into()],
                operations: Vec::new(),
            });
        }
        engine.set_slicing(true);
        let sliced = engine.authorize(&principal, &ops, &call);
        engine.set_slicing(false);
        let whole = engine.authorize(&principal, &ops, &call);
        if sliced.is_allowed() {
            allowed += 1;
        }
        if serde_json::to_value(&sliced).unwrap() != serde_json::to_value(&whole).unwrap() {
            differences.push((i, sliced, whole));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differ, first: {:#?}",
        differences.len(),
        differences.first()
    );
    // The generated requests exercise both answers.
    assert!(
        (500..9_500).contains(&allowed),
        "{allowed} of 10,000 allowed"
    );
}

#[test]
fn memoised_principals_and_stores_decide_as_fresh_builds() {
    // Requests drawn from small pools, so that most reuse a principal or a
    // store built before, while neighbours differ in one input only (the
    // same oid with other roles, groups, kind or name; the same resource
    // with other tags, group tags or location).
    use rand::Rng;
    let (_dir, operations, engine, mut rng) = generated_setup(200, 29);
    let roles = ["Reader", "Developer", "Contributor", "BreakGlass"];
    let deletes: Vec<&(String, String)> = operations
        .iter()
        .filter(|(_, class)| class == "delete")
        .collect();
    let mut differences = Vec::new();
    let mut outcomes = std::collections::BTreeSet::new();
    for i in 0..6_000 {
        let mut principal = random_principal(&mut rng, &roles, 4);
        principal.display_name = format!("name-{}", rng.gen_range(0..2));
        principal.groups = (0..rng.gen_range(0..2))
            .map(|_| format!("team-{}", rng.gen_range(0..3)))
            .collect();
        let (op, class) = if rng.gen_bool(0.5) {
            deletes[rng.gen_range(0..deletes.len())]
        } else {
            &operations[rng.gen_range(0..operations.len())]
        };
        let rg = format!("team-{}", rng.gen_range(0..3));
        let mut facts = OperationFacts::new(
            op,
            class,
            &format!(
                "/subscriptions/s1/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm{}",
                rng.gen_range(0..3)
            ),
        );
        for tags in [&mut facts.tags, &mut facts.resource_group_tags] {
            if rng.gen_bool(0.5) {
                let env = if rng.gen_bool(0.5) { "prod" } else { "dev" };
                tags.insert("env".into(), env.into());
            }
        }
        if rng.gen_bool(0.3) {
            facts.location = Some("westeurope".into());
        }
        let mut call = call();
        call.facts = crate::facts::Completeness::Complete;
        engine.set_memo(true);
        let memoised = engine.authorize(&principal, std::slice::from_ref(&facts), &call);
        engine.set_memo(false);
        let fresh = engine.authorize(&principal, std::slice::from_ref(&facts), &call);
        let (m, f) = (
            serde_json::to_value(&memoised).unwrap(),
            serde_json::to_value(&fresh).unwrap(),
        );
        outcomes.insert(memoised.is_allowed());
        if m != f {
            differences.push((i, m, f));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differ, first: {:#?}",
        differences.len(),
        differences.first()
    );
    assert_eq!(outcomes.len(), 2, "both answers are exercised");
}
