//! The facts stage against a fake ARM: placing resources, completeness,
//! the cache (TTL, negative answers, size bound, single flight), timeouts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::json;
use tokio::sync::Semaphore;

use super::*;
use crate::catalog::{Catalog, Resolution};

const PROD: &str = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b";
const DEV: &str = "6b4f8c2a-1d3e-4f5a-9b7c-0d1e2f3a4b5c";

fn id(text: &str) -> ArmId {
    ArmId::parse(text).unwrap()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What the fake ARM holds and how it behaves.
#[derive(Default)]
struct State {
    scopes: Mutex<Vec<Found>>,
    subscriptions: Vec<Subscription>,
    gets: AtomicUsize,
    finds: AtomicUsize,
    lists: AtomicUsize,
    /// Every request fails.
    failing: AtomicBool,
    /// Requests wait for a permit (none: they answer at once).
    gate: Option<Arc<Semaphore>>,
    /// Requests that have started.
    started: Arc<tokio::sync::Notify>,
}

#[derive(Clone)]
struct Fake(Arc<State>);

impl Fake {
    fn estate() -> State {
        let scope = |text: &str, location: &str, t: &[(&str, &str)]| Found {
            id: id(text),
            resource_type: id(text).resource_type(),
            location: Some(location.to_owned()),
            tags: tags(t),
        };
        State {
            scopes: Mutex::new(vec![
                scope(&format!("/subscriptions/{PROD}"), "", &[("owner", "ops")]),
                scope(&format!("/subscriptions/{DEV}"), "", &[]),
                scope(
                    &format!("/subscriptions/{PROD}/resourceGroups/prod-web"),
                    "japaneast",
                    &[("env", "prod")],
                ),
                scope(
                    &format!(
                        "/subscriptions/{PROD}/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-01"
                    ),
                    "japaneast",
                    &[("env", "prod"), ("role", "web")],
                ),
                scope(
                    &format!("/subscriptions/{DEV}/resourceGroups/dev-web"),
                    "westeurope",
                    &[("env", "dev")],
                ),
                scope(
                    &format!(
                        "/subscriptions/{DEV}/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines/web-01"
                    ),
                    "westeurope",
                    &[],
                ),
                scope(
                    &format!("/subscriptions/{PROD}/resourceGroups/security"),
                    "westeurope",
                    &[("env", "prod")],
                ),
                scope(
                    &format!(
                        "/subscriptions/{PROD}/resourceGroups/security/providers/Microsoft.KeyVault/vaults/kv-security"
                    ),
                    "westeurope",
                    &[("env", "prod"), ("team", "secops")],
                ),
                // Two storage accounts of one name in two subscriptions.
                scope(
                    &format!(
                        "/subscriptions/{PROD}/resourceGroups/security/providers/Microsoft.Storage/storageAccounts/logs"
                    ),
                    "westeurope",
                    &[],
                ),
                scope(
                    &format!(
                        "/subscriptions/{DEV}/resourceGroups/dev-web/providers/Microsoft.Storage/storageAccounts/logs"
                    ),
                    "westeurope",
                    &[],
                ),
            ]),
            subscriptions: vec![
                Subscription {
                    id: PROD.into(),
                    display_name: "Contoso Prod".into(),
                },
                Subscription {
                    id: DEV.into(),
                    display_name: "Contoso Dev".into(),
                },
            ],
            ..State::default()
        }
    }

    fn new() -> Fake {
        Fake(Arc::new(Fake::estate()))
    }

    /// Requests wait for permits of the returned semaphore.
    fn gated() -> (Fake, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let state = State {
            gate: Some(gate.clone()),
            ..Fake::estate()
        };
        (Fake(Arc::new(state)), gate)
    }

    fn gets(&self) -> usize {
        self.0.gets.load(Ordering::SeqCst)
    }

    fn finds(&self) -> usize {
        self.0.finds.load(Ordering::SeqCst)
    }

    /// Waits for the gate (if any) and says whether to fail.
    fn answer<T: Send + 'static>(
        &self,
        counter: &AtomicUsize,
        compute: impl FnOnce(&State) -> T + Send + 'static,
    ) -> BoxFuture<'static, Result<T, String>> {
        counter.fetch_add(1, Ordering::SeqCst);
        let state = self.0.clone();
        async move {
            state.started.notify_one();
            if let Some(gate) = &state.gate {
                gate.acquire().await.expect("gate open").forget();
            }
            if state.failing.load(Ordering::SeqCst) {
                return Err("Azure answered 503 ServiceUnavailable: try again".into());
            }
            Ok(compute(&state))
        }
        .boxed()
    }
}

impl Source for Fake {
    fn get(&self, at: &ArmId) -> BoxFuture<'static, Result<Option<Found>, String>> {
        let at = at.clone();
        self.answer(&self.0.gets, move |state| {
            state
                .scopes
                .lock()
                .unwrap()
                .iter()
                .find(|f| f.id == at)
                .cloned()
        })
    }

    fn find(&self, find: &Find) -> BoxFuture<'static, Result<Vec<Found>, String>> {
        let find = find.clone();
        self.answer(&self.0.finds, move |state| {
            state
                .scopes
                .lock()
                .unwrap()
                .iter()
                .filter(|f| {
                    f.id.kind() == ScopeKind::Resource
                        && f.id.name() == Some(find.name.as_str())
                        && find
                            .resource_type
                            .as_ref()
                            .is_none_or(|t| f.resource_type.as_ref() == Some(t))
                        && find
                            .subscription
                            .as_deref()
                            .is_none_or(|s| f.id.subscription() == Some(s))
                        && find
                            .resource_group
                            .as_deref()
                            .is_none_or(|g| f.id.resource_group() == Some(g))
                })
                .cloned()
                .collect()
        })
    }

    fn subscriptions(&self) -> BoxFuture<'static, Result<Vec<Subscription>, String>> {
        self.answer(&self.0.lists, |state| state.subscriptions.clone())
    }
}

fn lookup_with(fake: &Fake, config: FactsConfig) -> Lookup {
    Lookup::new(config, Arc::new(fake.clone()), Metrics::new())
}

fn lookup(fake: &Fake) -> Lookup {
    lookup_with(fake, FactsConfig::default())
}

fn resolve(tool: &str, arguments: serde_json::Value) -> Resolution {
    Catalog::builtin().unwrap().resolve(tool, &arguments, None)
}

async fn one(lookup: &Lookup, tool: &str, arguments: serde_json::Value) -> Described {
    let resolution = resolve(tool, arguments);
    let mut described = lookup.describe(&resolution).await;
    assert_eq!(described.len(), 1, "{described:?}");
    described.remove(0)
}

fn vm(subscription: &str, group: &str, name: &str) -> serde_json::Value {
    json!({"subscription": subscription, "resource-group": group, "vm-name": name})
}

#[tokio::test]
async fn a_resource_named_by_its_full_id_gets_its_tags_location_and_group_tags() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    let d = one(
        &lookup,
        "arm_vm_delete",
        vm(PROD, "prod-web", "prod-web-01"),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    let facts = d.facts.unwrap();
    assert_eq!(
        facts.id,
        id(&format!(
            "/subscriptions/{PROD}/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-01"
        ))
    );
    assert_eq!(facts.resource_group(), Some("prod-web"));
    assert_eq!(facts.location.as_deref(), Some("japaneast"));
    assert_eq!(facts.tags, tags(&[("env", "prod"), ("role", "web")]));
    assert_eq!(
        facts.resource_group_tags,
        Some(tags(&[("env", "prod")])),
        "the group's tags are kept apart from the resource's"
    );
    assert_eq!(
        facts.resource_type.as_deref(),
        Some("microsoft.compute/virtualmachines")
    );
    // The VM, then its group.
    assert_eq!(fake.gets(), 2);

    // An untagged VM in a group tagged env=dev.
    let d = one(&lookup, "arm_vm_delete", vm(DEV, "dev-web", "web-01")).await;
    assert_eq!(d.completeness, Completeness::Complete);
    let facts = d.facts.unwrap();
    assert!(facts.tags.is_empty());
    assert_eq!(facts.resource_group_tags, Some(tags(&[("env", "dev")])));
}

#[tokio::test]
async fn a_resource_named_without_its_group_is_placed_through_resource_graph() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    // The Azure MCP Server names a secret by vault and secret only.
    let resolution = resolve(
        "keyvault_secret_get",
        json!({"subscription": PROD, "vault": "kv-security", "secret": "DbPassword"}),
    );
    let op = &resolution.operations[0];
    assert_eq!(op.resource.id, format!("/subscriptions/{PROD}"));
    let d = lookup.describe(&resolution).await.remove(0);
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    let facts = d.facts.clone().unwrap();
    let vault = format!(
        "/subscriptions/{PROD}/resourceGroups/security/providers/Microsoft.KeyVault/vaults/kv-security"
    );
    assert_eq!(facts.id, id(&format!("{vault}/secrets/dbpassword")));
    // A nested resource is described by its top-level resource.
    assert_eq!(facts.tags, tags(&[("env", "prod"), ("team", "secops")]));
    assert_eq!(facts.resource_group_tags, Some(tags(&[("env", "prod")])));
    assert_eq!(fake.finds(), 1);

    // The operation's resource becomes the full id, with its group.
    let placed = d.placed(&op.resource);
    assert_eq!(placed.id, facts.id);
    assert_eq!(placed.subscription.as_deref(), Some(PROD));
    assert_eq!(placed.resource_group.as_deref(), Some("security"));
    assert_eq!(
        placed.resource_type.as_deref(),
        Some("microsoft.keyvault/vaults/secrets")
    );
    assert_eq!(placed.name.as_deref(), Some("dbpassword"));

    // Without a subscription: every subscription Warden sees.
    let d = one(
        &lookup,
        "keyvault_secret_get",
        json!({"vault": "KV-Security", "secret": "s"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    assert_eq!(
        d.facts.unwrap().id,
        id(&format!("{vault}/secrets/s")),
        "found by name whatever its case"
    );
}

#[tokio::test]
async fn a_name_that_matches_several_resources_is_not_guessed() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    let d = one(&lookup, "storage_account_get", json!({"account": "logs"})).await;
    assert_eq!(d.completeness, Completeness::Unavailable, "{d:?}");
    assert!(d.facts.is_none());
    assert!(
        d.reason.as_deref().unwrap().contains("2 resources match"),
        "{d:?}"
    );
    // In one subscription, the name is one account.
    let d = one(
        &lookup,
        "storage_account_get",
        json!({"subscription": DEV, "account": "logs"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    assert_eq!(d.facts.unwrap().resource_group(), Some("dev-web"));
}

#[tokio::test]
async fn a_subscription_given_by_name_is_resolved_to_its_id() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    let resolution = resolve(
        "compute_vm_delete",
        json!({"subscription": "Contoso Prod", "resource-group": "prod-web", "vm-name": "prod-web-01"}),
    );
    let d = lookup.describe(&resolution).await.remove(0);
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    let placed = d.placed(&resolution.operations[0].resource);
    assert_eq!(
        placed.id,
        id(&format!(
            "/subscriptions/{PROD}/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-01"
        ))
    );
    assert_eq!(placed.subscription.as_deref(), Some(PROD));
    assert_eq!(d.facts.unwrap().tags["env"], "prod");

    let d = one(
        &lookup,
        "compute_vm_delete",
        json!({"subscription": "Contoso Staging", "resource-group": "g", "vm-name": "v"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Unavailable);
    assert!(
        d.reason.unwrap().contains("no subscription named"),
        "unknown names are not guessed"
    );
}

#[tokio::test]
async fn what_does_not_exist_yet_is_described_by_its_parent_scope() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    // A VM created in an existing group: the group's tags, partial.
    let d = one(
        &lookup,
        "arm_vm_delete",
        vm(PROD, "prod-web", "prod-web-99"),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Partial, "{d:?}");
    let facts = d.facts.unwrap();
    assert!(facts.tags.is_empty());
    assert_eq!(facts.location, None);
    assert_eq!(facts.resource_group_tags, Some(tags(&[("env", "prod")])));
    assert!(d.reason.unwrap().contains("does not exist"));

    // A resource group created: nothing above it has tags looked up.
    let d = one(
        &lookup,
        "arm_group_create",
        json!({"subscription": DEV, "resource-group": "dev-new", "location": "westeurope"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Partial, "{d:?}");
    assert_eq!(d.facts.unwrap().resource_group_tags, None);

    // An existing group targeted as such: its own tags, complete.
    let d = one(
        &lookup,
        "arm_group_delete",
        json!({"subscription": PROD, "resource-group": "prod-web"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    let facts = d.facts.unwrap();
    assert_eq!(facts.tags, tags(&[("env", "prod")]));
    assert_eq!(facts.resource_group_tags, Some(tags(&[("env", "prod")])));
    assert_eq!(facts.location.as_deref(), Some("japaneast"));

    // A name Resource Graph does not know.
    let d = one(
        &lookup,
        "keyvault_secret_get",
        json!({"subscription": PROD, "vault": "kv-nowhere", "secret": "s"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Partial, "{d:?}");
}

#[tokio::test]
async fn scopes_targeted_as_such_are_looked_up_and_the_root_needs_nothing() {
    let fake = Fake::new();
    let lookup = lookup(&fake);
    let d = one(&lookup, "arm_group_list", json!({"subscription": PROD})).await;
    assert_eq!(d.completeness, Completeness::Complete, "{d:?}");
    assert_eq!(d.facts.unwrap().tags, tags(&[("owner", "ops")]));
    let d = one(&lookup, "arm_subscription_list", json!({})).await;
    assert_eq!(d.completeness, Completeness::Complete);
    let gets = fake.gets();
    assert_eq!(gets, 1, "the tenant root is not looked up");
    // A subscription Warden's identity cannot see.
    let d = one(
        &lookup,
        "arm_group_list",
        json!({"subscription": "00000000-0000-4000-8000-0000000000ff"}),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Unavailable);
    assert!(d.reason.unwrap().contains("not visible"));
}

#[tokio::test]
async fn failures_and_missing_access_leave_the_facts_unavailable_and_are_not_cached() {
    let fake = Fake::new();
    fake.0.failing.store(true, Ordering::SeqCst);
    let lookup = lookup(&fake);
    let d = one(
        &lookup,
        "arm_vm_delete",
        vm(PROD, "prod-web", "prod-web-01"),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Unavailable);
    assert!(d.facts.is_none());
    assert!(d.reason.unwrap().contains("503"));
    assert_eq!(lookup.cached(), 0);
    fake.0.failing.store(false, Ordering::SeqCst);
    let d = one(
        &lookup,
        "arm_vm_delete",
        vm(PROD, "prod-web", "prod-web-01"),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Complete);

    // No ARM access at all.
    let off = Lookup::off(Metrics::new());
    assert!(!off.enabled());
    let d = one(&off, "arm_vm_delete", vm(PROD, "prod-web", "prod-web-01")).await;
    assert_eq!(d.completeness, Completeness::Unavailable);
    assert!(d.reason.unwrap().contains("[azure]"));
    // The tenant root needs no lookup, so no access either.
    let d = one(&off, "arm_subscription_list", json!({})).await;
    assert_eq!(d.completeness, Completeness::Complete);

    // A call whose resources cannot be resolved is not looked up.
    let resolution = resolve("arm_vm_delete", vm(PROD, "prod-web", "a/../b"));
    assert!(resolution.problem.is_some());
    let d = lookup.describe(&resolution).await.remove(0);
    assert_eq!(d.completeness, Completeness::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn answers_are_cached_for_the_ttl() {
    let fake = Fake::new();
    let config = FactsConfig {
        ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(10),
        ..FactsConfig::default()
    };
    let lookup = lookup_with(&fake, config);
    let metrics = lookup.metrics.clone();
    let args = vm(PROD, "prod-web", "prod-web-01");
    one(&lookup, "arm_vm_delete", args.clone()).await;
    assert_eq!(fake.gets(), 2);
    tokio::time::advance(Duration::from_secs(59)).await;
    let d = one(&lookup, "arm_vm_delete", args.clone()).await;
    assert_eq!(d.completeness, Completeness::Complete);
    assert_eq!(fake.gets(), 2, "cached within the TTL");
    tokio::time::advance(Duration::from_secs(2)).await;
    one(&lookup, "arm_vm_delete", args.clone()).await;
    assert_eq!(fake.gets(), 4, "looked up again after the TTL");
    let text = metrics.render();
    for line in [
        r#"warden_facts_cache_total{result="hit"} 2"#,
        r#"warden_facts_cache_total{result="miss"} 4"#,
        r#"warden_facts_operations_total{completeness="complete"} 3"#,
        "warden_facts_lookup_duration_seconds_count 4",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn not_found_is_cached_for_the_shorter_negative_ttl() {
    let fake = Fake::new();
    let lookup = lookup_with(
        &fake,
        FactsConfig {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            ..FactsConfig::default()
        },
    );
    let missing = vm(PROD, "prod-web", "prod-web-99");
    let d = one(&lookup, "arm_vm_delete", missing.clone()).await;
    assert_eq!(d.completeness, Completeness::Partial);
    assert_eq!(fake.gets(), 2, "the VM (404), then its group");
    tokio::time::advance(Duration::from_secs(4)).await;
    one(&lookup, "arm_vm_delete", missing.clone()).await;
    assert_eq!(fake.gets(), 2, "not found is remembered for a while");
    tokio::time::advance(Duration::from_secs(2)).await;
    one(&lookup, "arm_vm_delete", missing.clone()).await;
    assert_eq!(
        fake.gets(),
        3,
        "the VM is asked for again, its group is still cached"
    );

    // Once the VM exists, a fresh lookup finds it.
    fake.0.scopes.lock().unwrap().push(Found {
        id: id(&format!(
            "/subscriptions/{PROD}/resourceGroups/prod-web/providers/Microsoft.Compute/virtualMachines/prod-web-99"
        )),
        resource_type: Some("microsoft.compute/virtualmachines".into()),
        location: Some("japaneast".into()),
        tags: tags(&[("env", "prod")]),
    });
    tokio::time::advance(Duration::from_secs(6)).await;
    let d = one(&lookup, "arm_vm_delete", missing).await;
    assert_eq!(d.completeness, Completeness::Complete);

    // Resource Graph finding nothing is negative too.
    let ask = json!({"subscription": PROD, "vault": "kv-nowhere", "secret": "s"});
    one(&lookup, "keyvault_secret_get", ask.clone()).await;
    one(&lookup, "keyvault_secret_get", ask.clone()).await;
    assert_eq!(fake.finds(), 1);
    tokio::time::advance(Duration::from_secs(6)).await;
    one(&lookup, "keyvault_secret_get", ask).await;
    assert_eq!(fake.finds(), 2);
}

#[tokio::test]
async fn the_cache_holds_at_most_max_entries() {
    let fake = Fake::new();
    let lookup = lookup_with(
        &fake,
        FactsConfig {
            max_entries: 2,
            ..FactsConfig::default()
        },
    );
    for (subscription, group) in [(PROD, "prod-web"), (DEV, "dev-web"), (PROD, "security")] {
        let d = one(
            &lookup,
            "arm_group_get",
            json!({"subscription": subscription, "resource-group": group}),
        )
        .await;
        assert_eq!(d.completeness, Completeness::Complete);
        assert!(lookup.cached() <= 2, "{} entries", lookup.cached());
    }
    assert_eq!(fake.gets(), 3);
    // The first answer made room for the third: asked for again.
    one(
        &lookup,
        "arm_group_get",
        json!({"subscription": PROD, "resource-group": "prod-web"}),
    )
    .await;
    assert_eq!(fake.gets(), 4);
    assert_eq!(lookup.cached(), 2);
}

#[tokio::test]
async fn concurrent_identical_lookups_share_one_request() {
    let (fake, gate) = Fake::gated();
    let lookup = Arc::new(lookup(&fake));
    let first = {
        let lookup = lookup.clone();
        tokio::spawn(async move {
            one(
                &lookup,
                "arm_group_get",
                json!({"subscription": PROD, "resource-group": "prod-web"}),
            )
            .await
        })
    };
    // The first request reached ARM and waits there.
    fake.0.started.notified().await;
    assert_eq!(lookup.cache.in_flight(), 1);
    let second = one(
        &lookup,
        "arm_group_get",
        json!({"subscription": PROD, "resource-group": "prod-web"}),
    );
    tokio::pin!(second);
    assert!(
        futures::poll!(&mut second).is_pending(),
        "the second lookup waits for the first request"
    );
    gate.add_permits(1);
    let (a, b) = (first.await.unwrap(), second.await);
    assert_eq!(a, b);
    assert_eq!(a.completeness, Completeness::Complete);
    assert_eq!(fake.gets(), 1, "one request for both");
    assert_eq!(lookup.cache.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_lookup_that_takes_too_long_is_unavailable() {
    // Requests never answer; the clock moves on by itself while idle.
    let (fake, _gate) = Fake::gated();
    let lookup = lookup_with(
        &fake,
        FactsConfig {
            timeout: Duration::from_secs(3),
            ..FactsConfig::default()
        },
    );
    let d = one(
        &lookup,
        "arm_vm_delete",
        vm(PROD, "prod-web", "prod-web-01"),
    )
    .await;
    assert_eq!(d.completeness, Completeness::Unavailable, "{d:?}");
    assert!(d.reason.unwrap().contains("longer than 3s"));
}

#[test]
fn the_least_complete_operation_sets_the_call_s_completeness() {
    use Completeness::*;
    assert_eq!(Completeness::least([]), Complete);
    assert_eq!(Completeness::least([Complete, Partial]), Partial);
    assert_eq!(
        Completeness::least([Partial, Unavailable, Complete]),
        Unavailable
    );
    assert_eq!(
        serde_json::to_value(Partial).unwrap(),
        json!("partial"),
        "as policies and records name it"
    );
}

#[test]
fn config_is_checked() {
    let config: FactsConfig = toml::from_str(
        "ttl = \"30s\"\nnegative_ttl = \"5s\"\nmax_entries = 100\ntimeout = \"2s\"\n",
    )
    .unwrap();
    assert_eq!(config.ttl, Duration::from_secs(30));
    assert!(config.validate().is_ok());
    let bad = FactsConfig {
        negative_ttl: Duration::from_secs(120),
        ..FactsConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("facts.negative_ttl"));
    let none = FactsConfig {
        max_entries: 0,
        ..FactsConfig::default()
    };
    assert!(none.validate().unwrap_err().contains("facts.max_entries"));
    assert!(toml::from_str::<FactsConfig>("tll = \"1s\"").is_err());
}

#[test]
fn nested_resources_split_into_their_top_level_resource_and_children() {
    let resolution = resolve(
        "keyvault_secret_get",
        json!({"vault": "kv1", "secret": "s1"}),
    );
    let (top_type, top_name, children) = split(&resolution.operations[0].resource).unwrap();
    assert_eq!(top_type.as_deref(), Some("microsoft.keyvault/vaults"));
    assert_eq!(top_name, "kv1");
    assert_eq!(children, [("secrets".to_owned(), "s1".to_owned())]);
}
