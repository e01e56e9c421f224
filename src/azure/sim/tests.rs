//! End-to-end tests: a dev issuer served over HTTP mints the tokens, the
//! simulator runs on a free loopback port with a SQLite file in a temporary
//! directory, and reqwest speaks to it as Warden's ARM client would.

use std::path::PathBuf;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::identity::dev::test_support::{Served, serve};
use crate::identity::dev::{DEV_CLIENT_APP, TokenOptions};

const API: &str = "2024-03-01";

struct Env {
    served: Served,
    dir: tempfile::TempDir,
}

impl Env {
    /// A dev issuer (one RSA key per test binary) on a free port.
    async fn new() -> Env {
        Env {
            served: serve().await,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("arm-sim.db")
    }

    async fn sim(&self, lro_polls: u32) -> Simulator {
        Simulator::start(SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db: self.db(),
            identity: dev_identity_config(&self.served.issuer, &self.served.base_url),
            lro_polls,
            retry_after_secs: 0,
        })
        .await
        .expect("start simulator")
    }

    /// An app-only ARM token (Warden's own identity).
    fn app_token(&self) -> String {
        self.served
            .issuer
            .mint(&TokenOptions {
                user: "warden-executor".into(),
                app: true,
                audience: Some(ARM_AUDIENCE.into()),
                ..TokenOptions::default()
            })
            .expect("mint")
    }

    async fn client(&self, sim: &Simulator) -> Arm {
        Arm {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            token: Some(self.app_token()),
            correlation: None,
        }
    }
}

/// A minimal ARM client.
struct Arm {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    correlation: Option<String>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

impl Arm {
    /// `path` relative to the base (with `api-version` added unless the
    /// path has a query), or an absolute URL used as is.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else if path.contains('?') {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?api-version={API}", self.base)
        };
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = &self.correlation {
            request = request.header("x-ms-correlation-request-id", id);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }
}

fn names(list: &Value) -> Vec<String> {
    list["value"]
        .as_array()
        .expect("value array")
        .iter()
        .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn power_state(vm: &Value) -> String {
    vm["properties"]["instanceView"]["statuses"]
        .as_array()
        .expect("statuses")
        .iter()
        .filter_map(|s| s["code"].as_str())
        .find_map(|code| code.strip_prefix("PowerState/"))
        .unwrap_or("none")
        .to_owned()
}

async fn vm_power(arm: &Arm, id: &str) -> String {
    let reply = arm
        .get(&format!("{id}?$expand=instanceView&api-version={API}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    power_state(&reply.body)
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let mut arm = env.client(&sim).await;
    arm.token = None;
    let reply = arm.get("/subscriptions").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "AuthenticationFailed");
    let challenge = reply.header("www-authenticate");
    assert!(
        challenge.starts_with("Bearer authorization_uri=\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(!reply.header("x-ms-request-id").is_empty());
    assert!(!reply.header("x-ms-correlation-request-id").is_empty());

    arm.token = Some("not-a-jwt".into());
    let reply = arm.get("/subscriptions").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "InvalidAuthenticationToken");

    // A token for another API (the dev audience) is not an ARM token.
    arm.token = Some(
        env.served
            .issuer
            .mint(&TokenOptions {
                app: true,
                ..TokenOptions::default()
            })
            .unwrap(),
    );
    let reply = arm.get("/subscriptions").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "InvalidAuthenticationTokenAudience");

    // A user token with ARM's scope is accepted.
    arm.token = Some(
        env.served
            .issuer
            .mint(&TokenOptions {
                user: "alice@contoso.example".into(),
                scopes: vec![ARM_SCOPE.into()],
                audience: Some("https://management.azure.com".into()),
                ..TokenOptions::default()
            })
            .unwrap(),
    );
    assert_eq!(arm.get("/subscriptions").await.status, StatusCode::OK);
    sim.shutdown().await;
}

#[tokio::test]
async fn api_version_is_required() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    let reply = arm
        .get(&format!("/subscriptions/{DEV_SUBSCRIPTION}?foo=bar"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        json!({"error": {
            "code": "MissingApiVersionParameter",
            "message": "The api-version query parameter (?api-version=) is required for all requests.",
        }})
    );
    // Any value is accepted, and recorded.
    let reply = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}?api-version=1999-01-01-preview"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let log = reqwest::get(format!("{}/_sim/requests?limit=1", sim.base_url()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(log["value"][0]["apiVersion"], "1999-01-01-preview");
    assert_eq!(log["value"][0]["status"], 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn lists_the_seeded_estate() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let mut arm = env.client(&sim).await;

    arm.correlation = Some("corr-list-1".into());
    let subs = arm.get("/subscriptions").await;
    assert_eq!(subs.status, StatusCode::OK);
    assert_eq!(subs.header("x-ms-correlation-request-id"), "corr-list-1");
    let value = subs.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    for (id, name) in DEMO_SUBSCRIPTIONS {
        let sub = value
            .iter()
            .find(|s| s["subscriptionId"] == id)
            .expect("seeded subscription");
        assert_eq!(sub["id"], format!("/subscriptions/{id}"));
        assert_eq!(sub["displayName"], name);
        assert_eq!(sub["state"], "Enabled");
        assert_eq!(sub["tenantId"], crate::identity::dev::DEV_TENANT);
    }
    arm.correlation = None;

    // Case-insensitive paths, canonical ids.
    let rg = arm
        .get(&format!(
            "/SUBSCRIPTIONS/{DEV_SUBSCRIPTION}/resourcegroups/DEV-WEB"
        ))
        .await;
    assert_eq!(rg.status, StatusCode::OK, "{}", rg.body);
    assert_eq!(rg.body["id"], RG_DEV_WEB);
    assert_eq!(rg.body["tags"]["env"], "dev");
    let groups = arm
        .get(&format!(
            "/subscriptions/{PROD_SUBSCRIPTION}/resourcegroups"
        ))
        .await;
    assert_eq!(names(&groups.body), ["prod-web", "security"]);
    let prod = arm
        .get(&format!(
            "/subscriptions/{PROD_SUBSCRIPTION}/resourcegroups?$filter=tagName eq 'team' and tagValue eq 'secops'&api-version={API}"
        ))
        .await;
    assert_eq!(names(&prod.body), ["security"]);

    let vms = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resources?$filter=resourceType eq 'microsoft.compute/VIRTUALMACHINES'&api-version={API}"
        ))
        .await;
    assert_eq!(vms.status, StatusCode::OK, "{}", vms.body);
    assert_eq!(names(&vms.body), ["web-01", "web-02"]);
    let first = &vms.body["value"][0];
    assert_eq!(first["id"], VM_WEB_01);
    assert_eq!(first["type"], "Microsoft.Compute/virtualMachines");
    assert_eq!(first["location"], "westeurope");
    assert_eq!(first["tags"]["env"], "dev");
    let in_group = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resourceGroups/dev-data/resources"
        ))
        .await;
    assert_eq!(names(&in_group.body), ["dev-data-disk01", "devdata01"]);

    let all_vms = arm
        .get(&format!(
            "/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachines"
        ))
        .await;
    assert_eq!(names(&all_vms.body), ["prod-web-01"]);
    assert_eq!(all_vms.body["value"][0]["tags"]["env"], "prod");
    let rg_vms = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resourceGroups/dev-web/providers/Microsoft.Compute/virtualMachines"
        ))
        .await;
    assert_eq!(names(&rg_vms.body), ["web-01", "web-02"]);

    let vm = arm.get(VM_WEB_01).await;
    assert_eq!(
        vm.body["properties"]["hardwareProfile"]["vmSize"],
        "Standard_B2s"
    );
    assert_eq!(vm.body["properties"]["provisioningState"], "Succeeded");
    assert!(vm.body["properties"]["instanceView"].is_null());
    assert_eq!(vm_power(&arm, VM_WEB_01).await, "running");
    assert_eq!(vm_power(&arm, VM_WEB_02).await, "stopped");
    let view = arm.get(&format!("{VM_WEB_02}/instanceView")).await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.body["statuses"][1]["code"], "PowerState/stopped");

    let accounts = arm
        .get(&format!(
            "/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Storage/storageAccounts"
        ))
        .await;
    assert_eq!(names(&accounts.body), ["prodlogs01"]);
    let account = arm.get(STORAGE_DEVDATA01).await;
    assert_eq!(account.body["kind"], "StorageV2");
    let vault = arm.get(&KEY_VAULT_SECURITY.to_uppercase()).await;
    assert_eq!(vault.status, StatusCode::OK, "{}", vault.body);
    assert_eq!(vault.body["id"], KEY_VAULT_SECURITY);
    assert_eq!(
        vault.body["properties"]["vaultUri"],
        "https://kv-security.vault.azure.net/"
    );
    let extension = arm.get(seed::VM_WEB_01_EXTENSION).await;
    assert_eq!(extension.status, StatusCode::OK);
    assert_eq!(
        extension.body["type"],
        "Microsoft.Compute/virtualMachines/extensions"
    );
    let extensions = arm.get(&format!("{VM_WEB_01}/extensions")).await;
    assert_eq!(names(&extensions.body), ["AzureMonitorLinuxAgent"]);

    let roles = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions"
        ))
        .await;
    let ids: Vec<&str> = roles.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for role in [
        seed::ROLE_OWNER,
        seed::ROLE_CONTRIBUTOR,
        seed::ROLE_READER,
        seed::ROLE_VM_CONTRIBUTOR,
    ] {
        assert!(ids.contains(&role), "{role}");
    }
    let reader = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName eq 'Reader'&api-version={API}"
        ))
        .await;
    assert_eq!(reader.body["value"][0]["properties"]["roleName"], "Reader");
    sim.shutdown().await;
}

#[tokio::test]
async fn vm_start_is_a_long_running_operation() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    assert_eq!(vm_power(&arm, VM_WEB_02).await, "stopped");

    let accepted = arm
        .send(Method::POST, &format!("{VM_WEB_02}/start"), None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.header("retry-after"), "0");
    let status_url = accepted.header("azure-asyncoperation").to_owned();
    assert!(
        status_url.starts_with(&format!(
            "{}/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Compute/locations/westeurope/operations/",
            sim.base_url()
        )),
        "{status_url}"
    );
    assert!(
        status_url.ends_with(&format!("api-version={API}")),
        "{status_url}"
    );
    let monitor_url = accepted.header("location").to_owned();
    assert!(monitor_url.contains("monitor=true"), "{monitor_url}");

    for _ in 0..2 {
        let poll = arm.get(&status_url).await;
        assert_eq!(poll.status, StatusCode::OK);
        assert_eq!(poll.body["status"], "InProgress");
        assert_eq!(poll.header("retry-after"), "0");
        assert_eq!(vm_power(&arm, VM_WEB_02).await, "stopped");
    }
    let done = arm.get(&status_url).await;
    assert_eq!(done.body["status"], "Succeeded", "{}", done.body);
    assert!(done.body["startTime"].is_string());
    assert!(done.body["endTime"].is_string());
    assert_eq!(vm_power(&arm, VM_WEB_02).await, "running");
    // Both URLs now report completion.
    let monitor = arm.get(&monitor_url).await;
    assert_eq!(monitor.status, StatusCode::OK);
    assert_eq!(arm.get(&status_url).await.body["status"], "Succeeded");

    // powerOff then deallocate, polled through Location.
    for (action, state) in [("powerOff", "stopped"), ("deallocate", "deallocated")] {
        let accepted = arm
            .send(Method::POST, &format!("{VM_WEB_02}/{action}"), None)
            .await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED);
        let location = accepted.header("location").to_owned();
        let mut polls = 0;
        loop {
            let poll = arm.get(&location).await;
            if poll.status != StatusCode::ACCEPTED {
                assert_eq!(poll.status, StatusCode::OK);
                break;
            }
            assert_eq!(poll.header("retry-after"), "0");
            polls += 1;
            assert!(polls <= 2, "too many polls");
        }
        assert_eq!(polls, 2);
        assert_eq!(vm_power(&arm, VM_WEB_02).await, state);
    }
    // Restarting a deallocated VM is refused.
    let refused = arm
        .send(Method::POST, &format!("{VM_WEB_02}/restart"), None)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "OperationNotAllowed");
    sim.shutdown().await;
}

#[tokio::test]
async fn vm_delete_is_a_long_running_operation() {
    let env = Env::new().await;
    let sim = env.sim(1).await;
    let arm = env.client(&sim).await;
    let accepted = arm.send(Method::DELETE, VM_WEB_01, None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let status_url = accepted.header("azure-asyncoperation").to_owned();
    let deleting = arm.get(VM_WEB_01).await;
    assert_eq!(deleting.body["properties"]["provisioningState"], "Deleting");
    let start = arm
        .send(Method::POST, &format!("{VM_WEB_01}/start"), None)
        .await;
    assert_eq!(start.status, StatusCode::CONFLICT);

    assert_eq!(arm.get(&status_url).await.body["status"], "InProgress");
    assert_eq!(arm.get(VM_WEB_01).await.status, StatusCode::OK);
    assert_eq!(arm.get(&status_url).await.body["status"], "Succeeded");

    let gone = arm.get(VM_WEB_01).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "ResourceNotFound");
    assert_eq!(
        arm.get(seed::VM_WEB_01_EXTENSION).await.status,
        StatusCode::NOT_FOUND
    );
    let again = arm.send(Method::DELETE, VM_WEB_01, None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_group_delete_is_polled_through_location() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    let rg_path = format!("/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/dev-web");

    let accepted = arm.send(Method::DELETE, &rg_path, None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert!(accepted.headers.get("azure-asyncoperation").is_none());
    let location = accepted.header("location").to_owned();
    assert!(
        location.starts_with(&format!(
            "{}/subscriptions/{DEV_SUBSCRIPTION}/operationresults/",
            sim.base_url()
        )),
        "{location}"
    );
    let rg = arm.get(&rg_path).await;
    assert_eq!(rg.body["properties"]["provisioningState"], "Deleting");
    let update = arm
        .send(
            Method::PUT,
            &rg_path,
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(update.status, StatusCode::CONFLICT);
    assert_eq!(update.code(), "ResourceGroupBeingDeleted");

    for _ in 0..2 {
        let poll = arm.get(&location).await;
        assert_eq!(poll.status, StatusCode::ACCEPTED);
        assert_eq!(poll.header("retry-after"), "0");
        assert_eq!(poll.header("location"), location);
        assert_eq!(arm.get(VM_WEB_01).await.status, StatusCode::OK);
    }
    assert_eq!(arm.get(&location).await.status, StatusCode::OK);

    let gone = arm.get(&rg_path).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "ResourceGroupNotFound");
    let vm = arm.get(VM_WEB_01).await;
    assert_eq!(vm.status, StatusCode::NOT_FOUND);
    assert_eq!(vm.code(), "ResourceGroupNotFound");
    let resources = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resources?$filter=resourceType eq 'Microsoft.Compute/virtualMachines'&api-version={API}"
        ))
        .await;
    assert_eq!(names(&resources.body), Vec::<String>::new());
    // The VM Contributor assignment on dev-web went with the group.
    let assignments = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments"
        ))
        .await;
    assert_eq!(names(&assignments.body), [seed::ROLE_ASSIGNMENT_DEV_READER]);

    // Re-create it: 201, then 200.
    let created = arm
        .send(
            Method::PUT,
            &rg_path,
            Some(json!({"location": "West Europe", "tags": {"env": "dev"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["location"], "westeurope");
    let updated = arm
        .send(
            Method::PUT,
            &rg_path,
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    let moved = arm
        .send(
            Method::PUT,
            &rg_path,
            Some(json!({"location": "japaneast"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT);
    assert_eq!(moved.code(), "InvalidResourceGroupLocation");
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_use_the_arm_envelope() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    let unknown_sub = "00000000-1111-2222-3333-444444444444";

    let reply = arm.get(&format!("/subscriptions/{unknown_sub}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "SubscriptionNotFound");
    let reply = arm.get("/subscriptions/not-a-guid/resourcegroups").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "InvalidSubscriptionId");
    let reply = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resourceGroups/nope"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "ResourceGroupNotFound");
    let reply = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Compute/virtualMachines/nope"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "ResourceNotFound");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "The Resource 'Microsoft.Compute/virtualMachines/nope' under resource group 'dev-web' was not found."
        ),
        "{message}"
    );
    let reply = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Contoso.Widgets/widgets/w1"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "NoRegisteredProviderFound");
    let reply = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Compute/widgets/w1"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "InvalidResourceType");
    let reply = arm.get("/nothing/here").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "NoRegisteredProviderFound");
    let reply = arm.send(Method::POST, RG_DEV_WEB, None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "MethodNotAllowed");

    // Bad bodies.
    let raw = arm
        .http
        .put(format!(
            "{}/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/new-rg?api-version={API}",
            sim.base_url()
        ))
        .bearer_auth(arm.token.as_deref().unwrap())
        .header("content-type", "application/json")
        .body("{\"location\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidRequestContent");
    let reply = arm
        .send(
            Method::PUT,
            &format!("/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/new-rg"),
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(reply.code(), "InvalidRequestFormat");
    let reply = arm
        .send(
            Method::PUT,
            &format!("/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/new-rg"),
            Some(json!({"tags": {}})),
        )
        .await;
    assert_eq!(reply.code(), "LocationRequired");
    let reply = arm
        .send(
            Method::PUT,
            &format!("/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/new-rg"),
            Some(json!({"location": "westeurope", "tags": {"a/b": "c"}})),
        )
        .await;
    assert_eq!(reply.code(), "InvalidTagNameCharacters");
    // Nothing was created by the failed requests.
    let reply = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/resourcegroups/new-rg"
        ))
        .await;
    assert_eq!(reply.code(), "ResourceGroupNotFound");
    let reply = arm
        .send(
            Method::PUT,
            &format!("{VM_WEB_01}/providers/Microsoft.Authorization/roleAssignments/not-a-guid"),
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.code(), "InvalidRoleAssignmentId");
    sim.shutdown().await;
}

#[tokio::test]
async fn role_assignments_are_created_conflict_and_deleted() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    let principal = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f";
    let name = "6f5e4d3c-2b1a-4f0e-9d8c-7b6a5f4e3d2c";
    let path = format!("{RG_DEV_WEB}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{}", seed::ROLE_READER),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }});

    let created = arm.send(Method::PUT, &path, Some(body.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["id"], path);
    assert_eq!(created.body["name"], name);
    assert_eq!(created.body["properties"]["scope"], RG_DEV_WEB);
    assert_eq!(
        created.body["properties"]["principalType"],
        "ServicePrincipal"
    );
    assert_eq!(
        created.body["properties"]["roleDefinitionId"],
        body["properties"]["roleDefinitionId"]
    );
    let fetched = arm.get(&path.to_lowercase()).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["properties"]["principalId"], principal);

    // The same assignment under another name.
    let other = format!(
        "{RG_DEV_WEB}/providers/Microsoft.Authorization/roleAssignments/7a6b5c4d-3e2f-4a1b-8c0d-9e8f7a6b5c4d"
    );
    let conflict = arm.send(Method::PUT, &other, Some(body.clone())).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.code(), "RoleAssignmentExists");
    // Same name, other role: not an update ARM allows.
    let mut changed = body.clone();
    changed["properties"]["roleDefinitionId"] = json!(format!(
        "/providers/Microsoft.Authorization/roleDefinitions/{}",
        seed::ROLE_OWNER
    ));
    let refused = arm.send(Method::PUT, &path, Some(changed)).await;
    assert_eq!(refused.code(), "RoleAssignmentUpdateNotPermitted");
    let mut unknown = body.clone();
    unknown["properties"]["roleDefinitionId"] = json!(format!(
        "/providers/Microsoft.Authorization/roleDefinitions/{principal}"
    ));
    let refused = arm.send(Method::PUT, &other, Some(unknown)).await;
    assert_eq!(refused.code(), "RoleDefinitionDoesNotExist");

    // Listing: by principal; atScope() at the subscription excludes the group's.
    let by_principal = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '{principal}'&api-version={API}"
        ))
        .await;
    assert_eq!(names(&by_principal.body), [name]);
    let at_group = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Authorization/roleAssignments"
        ))
        .await;
    assert_eq!(at_group.body["value"].as_array().unwrap().len(), 3);
    let at_sub = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()&api-version={API}"
        ))
        .await;
    assert_eq!(names(&at_sub.body), [seed::ROLE_ASSIGNMENT_DEV_READER]);

    let deleted = arm.send(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body["name"], name);
    let again = arm.send(Method::DELETE, &path, None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let missing = arm.get(&path).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "RoleAssignmentNotFound");
    // Now the other name can take it.
    let created = arm.send(Method::PUT, &other, Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED);
    sim.shutdown().await;
}

#[tokio::test]
async fn tags_are_merged_replaced_and_deleted() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    let path = format!("{VM_WEB_01}/providers/Microsoft.Resources/tags/default");

    let merged = arm
        .send(
            Method::PATCH,
            &path,
            Some(json!({"operation": "Merge", "properties": {"tags": {"owner": "alice", "ENV": "test"}}})),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.body);
    assert_eq!(merged.body["id"], path);
    assert_eq!(
        merged.body["properties"]["tags"],
        json!({"role": "web", "owner": "alice", "ENV": "test"})
    );
    let vm = arm.get(VM_WEB_01).await;
    assert_eq!(vm.body["tags"]["owner"], "alice");

    let deleted = arm
        .send(
            Method::PATCH,
            &path,
            Some(json!({"operation": "Delete", "properties": {"tags": {"owner": "bob", "role": ""}}})),
        )
        .await;
    assert_eq!(
        deleted.body["properties"]["tags"],
        json!({"owner": "alice", "ENV": "test"})
    );
    let replaced = arm
        .send(
            Method::PUT,
            &path,
            Some(json!({"properties": {"tags": {"cost-center": "42"}}})),
        )
        .await;
    assert_eq!(
        replaced.body["properties"]["tags"],
        json!({"cost-center": "42"})
    );
    let got = arm.get(&path).await;
    assert_eq!(got.body["properties"]["tags"], json!({"cost-center": "42"}));

    // Resource group and subscription scopes.
    let rg_tags = arm
        .send(
            Method::PATCH,
            &format!("{RG_PROD_WEB}/providers/Microsoft.Resources/tags/default"),
            Some(json!({"operation": "merge", "properties": {"tags": {"owner": "ops"}}})),
        )
        .await;
    assert_eq!(
        rg_tags.body["properties"]["tags"],
        json!({"env": "prod", "owner": "ops"})
    );
    assert_eq!(arm.get(RG_PROD_WEB).await.body["tags"]["owner"], "ops");
    let sub_tags = arm
        .send(
            Method::PATCH,
            &format!(
                "/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Resources/tags/default"
            ),
            Some(json!({"operation": "Replace", "properties": {"tags": {"tier": "gold"}}})),
        )
        .await;
    assert_eq!(sub_tags.status, StatusCode::OK);
    let sub = arm
        .get(&format!("/subscriptions/{PROD_SUBSCRIPTION}"))
        .await;
    assert_eq!(sub.body["tags"]["tier"], "gold");
    let bad = arm
        .send(
            Method::PATCH,
            &path,
            Some(json!({"operation": "Append", "properties": {"tags": {}}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let cleared = arm.send(Method::DELETE, &path, None).await;
    assert_eq!(cleared.body["properties"]["tags"], json!({}));
    sim.shutdown().await;
}

#[tokio::test]
async fn activity_log_records_writes() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let mut arm = env.client(&sim).await;
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    arm.correlation = Some("c0ffee00-0000-4000-8000-000000000001".into());
    let accepted = arm
        .send(Method::POST, &format!("{VM_WEB_02}/start"), None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let done = arm.get(accepted.header("azure-asyncoperation")).await;
    assert_eq!(done.body["status"], "Succeeded");
    arm.correlation = Some("c0ffee00-0000-4000-8000-000000000002".into());
    let tagged = arm
        .send(
            Method::PATCH,
            &format!("{RG_DEV_DATA}/providers/Microsoft.Resources/tags/default"),
            Some(json!({"operation": "Merge", "properties": {"tags": {"x": "y"}}})),
        )
        .await;
    assert_eq!(tagged.status, StatusCode::OK);
    arm.correlation = None;

    let events_path = format!(
        "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values"
    );
    let events = arm
        .get(&format!(
            "{events_path}?$filter=eventTimestamp ge '{since}'&api-version=2015-04-01"
        ))
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.body);
    let value = events.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 3, "{value:#?}");
    // Newest first: the tag write, then the start's completion, then its acceptance.
    assert_eq!(
        value[0]["operationName"]["value"],
        "Microsoft.Resources/tags/write"
    );
    assert_eq!(
        value[0]["correlationId"],
        "c0ffee00-0000-4000-8000-000000000002"
    );
    assert_eq!(value[0]["resourceGroupName"], "dev-data");
    let start = &value[1];
    assert_eq!(
        start["operationName"]["value"],
        "Microsoft.Compute/virtualMachines/start/action"
    );
    assert_eq!(start["status"]["value"], "Succeeded");
    assert_eq!(start["resourceId"], VM_WEB_02);
    assert_eq!(start["caller"], DEV_CLIENT_APP);
    assert_eq!(
        start["correlationId"],
        "c0ffee00-0000-4000-8000-000000000001"
    );
    assert!(start["eventTimestamp"].is_string());
    assert_eq!(start["subscriptionId"], DEV_SUBSCRIPTION);
    assert_eq!(value[2]["status"]["value"], "Accepted");
    assert_eq!(value[2]["correlationId"], start["correlationId"]);

    let in_group = arm
        .get(&format!(
            "{events_path}?$filter=eventTimestamp ge '{since}' and resourceGroupName eq 'DEV-WEB'&api-version=2015-04-01"
        ))
        .await;
    assert_eq!(in_group.body["value"].as_array().unwrap().len(), 2);
    let future = (chrono::Utc::now() + chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let none = arm
        .get(&format!(
            "{events_path}?$filter=eventTimestamp ge '{future}'&api-version=2015-04-01"
        ))
        .await;
    assert_eq!(none.body["value"], json!([]));
    let unfiltered = arm.get(&events_path).await;
    assert_eq!(unfiltered.status, StatusCode::BAD_REQUEST);
    // Reads are not recorded; the other subscription has nothing.
    let prod = arm
        .get(&format!(
            "/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values?$filter=eventTimestamp ge '{since}'&api-version=2015-04-01"
        ))
        .await;
    assert_eq!(prod.body["value"], json!([]));
    sim.shutdown().await;
}

#[tokio::test]
async fn throttling_answers_429_then_recovers() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let arm = env.client(&sim).await;
    sim.throttle(2);
    for _ in 0..2 {
        let reply = arm.get("/subscriptions").await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(reply.code(), "TooManyRequests");
        assert_eq!(reply.header("retry-after"), "0");
        assert!(!reply.header("x-ms-request-id").is_empty());
    }
    assert_eq!(arm.get("/subscriptions").await.status, StatusCode::OK);

    let control = reqwest::Client::new()
        .post(format!("{}/_sim/throttle?requests=1", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(control.status(), StatusCode::OK);
    assert_eq!(
        control.json::<Value>().await.unwrap()["throttledRequests"],
        1
    );
    let throttled = arm
        .send(Method::POST, &format!("{VM_WEB_01}/restart"), None)
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    let accepted = arm
        .send(Method::POST, &format!("{VM_WEB_01}/restart"), None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    sim.shutdown().await;
}

#[tokio::test]
async fn state_persists_across_restarts() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    let rg_path = format!("/subscriptions/{PROD_SUBSCRIPTION}/resourcegroups/Persist-RG");
    let created = arm
        .send(
            Method::PUT,
            &rg_path,
            Some(json!({"location": "japaneast", "tags": {"keep": "me"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let accepted = arm
        .send(Method::POST, &format!("{VM_PROD_WEB_01}/deallocate"), None)
        .await;
    assert_eq!(
        arm.get(accepted.header("azure-asyncoperation")).await.body["status"],
        "Succeeded"
    );
    let removed = arm.send(Method::DELETE, STORAGE_DEVDATA01, None).await;
    assert_eq!(removed.status, StatusCode::OK);
    // An operation left in progress survives too.
    let pending = arm
        .send(Method::POST, &format!("{VM_WEB_02}/start"), None)
        .await;
    let pending_url = pending.header("azure-asyncoperation").to_owned();
    sim.shutdown().await;

    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    let rg = arm.get(&rg_path.to_lowercase()).await;
    assert_eq!(rg.status, StatusCode::OK);
    assert_eq!(rg.body["name"], "Persist-RG");
    assert_eq!(
        rg.body["id"],
        format!("/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/Persist-RG")
    );
    assert_eq!(rg.body["tags"]["keep"], "me");
    assert_eq!(vm_power(&arm, VM_PROD_WEB_01).await, "deallocated");
    assert_eq!(
        arm.get(STORAGE_DEVDATA01).await.status,
        StatusCode::NOT_FOUND
    );
    // The old port is gone; the operation is found under the new base URL.
    let path = &pending_url[pending_url.find("/subscriptions/").unwrap()..];
    assert_eq!(arm.get(path).await.body["status"], "Succeeded");
    assert_eq!(vm_power(&arm, VM_WEB_02).await, "running");
    sim.shutdown().await;
}

#[tokio::test]
async fn virtual_machines_can_be_created() {
    let env = Env::new().await;
    let sim = env.sim(1).await;
    let arm = env.client(&sim).await;
    let id = format!("{RG_DEV_WEB}/providers/Microsoft.Compute/virtualMachines/web-03");
    let created = arm
        .send(
            Method::PUT,
            &id,
            Some(json!({
                "location": "westeurope",
                "tags": {"env": "dev"},
                "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}},
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["properties"]["provisioningState"], "Creating");
    let status_url = created.header("azure-asyncoperation").to_owned();
    assert_eq!(arm.get(&status_url).await.body["status"], "InProgress");
    assert_eq!(arm.get(&status_url).await.body["status"], "Succeeded");
    let vm = arm
        .get(&format!("{id}?$expand=instanceView&api-version={API}"))
        .await;
    assert_eq!(vm.body["properties"]["provisioningState"], "Succeeded");
    assert!(vm.body["properties"]["vmId"].is_string());
    assert_eq!(power_state(&vm.body), "running");
    let missing_size = arm
        .send(
            Method::PUT,
            &format!("{RG_DEV_WEB}/providers/Microsoft.Compute/virtualMachines/web-04"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(missing_size.status, StatusCode::BAD_REQUEST);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Tenants, Resource Graph, Key Vault, disks and scale sets, diagnostic
// settings, and the record of what was (not) served.

/// Resource Graph's api-version.
const GRAPH: &str = "2024-04-01";

impl Env {
    /// An app-only token for `audience`.
    fn token_for(&self, audience: &str) -> String {
        self.served
            .issuer
            .mint(&TokenOptions {
                user: "warden-executor".into(),
                app: true,
                audience: Some(audience.into()),
                ..TokenOptions::default()
            })
            .expect("mint")
    }
}

impl Arm {
    /// `POST /providers/Microsoft.ResourceGraph/resources` with `body`.
    async fn graph(&self, body: Value) -> Reply {
        self.graph_at(GRAPH, body).await
    }

    async fn graph_at(&self, api_version: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            &format!("/providers/Microsoft.ResourceGraph/resources?api-version={api_version}"),
            Some(body),
        )
        .await
    }

    /// A Key Vault data-plane request for vault `vault` (sent to the
    /// simulator with `Host: <vault>.vault.azure.net`), with `token`.
    async fn vault(
        &self,
        vault: &str,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self
            .http
            .request(method, format!("{}{path_and_query}", self.base))
            .header("host", format!("{vault}.vault.azure.net"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// The `name` of each row of a Resource Graph answer.
fn row_names(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {}", reply.body))
        .iter()
        .map(|row| row["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls an `Azure-AsyncOperation` URL until the operation ends.
async fn finish(arm: &Arm, accepted: &Reply) -> Value {
    let url = accepted.header("azure-asyncoperation").to_owned();
    for _ in 0..10 {
        let poll = arm.get(&url).await;
        if poll.body["status"] != "InProgress" {
            return poll.body;
        }
    }
    panic!("operation {url} did not end");
}

#[tokio::test]
async fn tenants_lists_the_directory_tenant() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    let reply = arm.get("/tenants?api-version=2022-12-01").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let tenant = crate::identity::dev::DEV_TENANT;
    assert_eq!(
        reply.body["value"],
        json!([{
            "id": format!("/tenants/{tenant}"),
            "tenantId": tenant,
            "countryCode": "US",
            "displayName": "Contoso",
            "domains": ["contoso.dev", "contoso.onmicrosoft.com"],
            "tenantCategory": "Home",
            "defaultDomain": "contoso.dev",
            "tenantType": "AAD",
        }])
    );
    let refused = arm
        .send(Method::POST, "/tenants?api-version=2022-12-01", None)
        .await;
    assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED);
    // Unauthenticated: ARM's 401.
    let mut anonymous = env.client(&sim).await;
    anonymous.token = None;
    assert_eq!(
        anonymous
            .get("/tenants?api-version=2022-12-01")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_graph_queries_the_estate() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;

    // azmcp's storage account listing, then by name.
    let reply = arm
        .graph(json!({
            "subscriptions": [PROD_SUBSCRIPTION],
            "query": "resources | where type =~ 'Microsoft.Storage/storageAccounts' | limit 50",
        }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["totalRecords"], 1);
    assert_eq!(reply.body["count"], 1);
    assert_eq!(reply.body["facets"], json!([]));
    assert_eq!(reply.body["resultTruncated"], "false");
    let row = &reply.body["data"][0];
    assert_eq!(row["id"], STORAGE_PRODLOGS01);
    assert_eq!(row["name"], "prodlogs01");
    assert_eq!(row["type"], "microsoft.storage/storageaccounts");
    assert_eq!(row["resourceGroup"], "security");
    assert_eq!(row["subscriptionId"], PROD_SUBSCRIPTION);
    assert_eq!(row["tenantId"], crate::identity::dev::DEV_TENANT);
    assert_eq!(row["kind"], "StorageV2");
    assert_eq!(row["location"], "westeurope");
    assert_eq!(row["managedBy"], "");
    assert_eq!(row["sku"]["name"], "Standard_GRS");
    assert_eq!(row["tags"]["team"], "secops");
    assert_eq!(row["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        row["properties"]["primaryEndpoints"]["blob"],
        "https://prodlogs01.blob.core.windows.net/"
    );
    for column in ["plan", "identity", "zones", "extendedLocation"] {
        assert!(row[column].is_null(), "{column}");
    }
    let by_name = arm
        .graph(json!({
            "subscriptions": [PROD_SUBSCRIPTION],
            "query": "resources | where type =~ 'Microsoft.Storage/storageAccounts' and name =~ 'PRODLOGS01' | limit 1",
        }))
        .await;
    assert_eq!(row_names(&by_name), ["prodlogs01"]);
    // No subscriptions: the whole tenant.
    let all = arm
        .graph(json!({"query": "resources | where type =~ 'microsoft.storage/storageaccounts' | order by name asc"}))
        .await;
    assert_eq!(row_names(&all), ["devdata01", "prodlogs01"]);

    // azmcp's role assignment listing.
    let assignments = arm
        .graph(json!({
            "subscriptions": [DEV_SUBSCRIPTION],
            "query": format!("authorizationresources | where type =~ 'Microsoft.Authorization/roleAssignments' and id contains '/subscriptions/{DEV_SUBSCRIPTION}' | limit 50"),
        }))
        .await;
    assert_eq!(assignments.status, StatusCode::OK, "{}", assignments.body);
    let rows = assignments.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let reader = rows
        .iter()
        .find(|r| r["name"] == seed::ROLE_ASSIGNMENT_DEV_READER)
        .expect("the Reader assignment");
    assert_eq!(reader["type"], "microsoft.authorization/roleassignments");
    assert_eq!(reader["subscriptionId"], DEV_SUBSCRIPTION);
    assert_eq!(
        reader["properties"]["principalId"],
        seed::DEMO_READER_PRINCIPAL
    );
    assert_eq!(
        reader["properties"]["scope"],
        format!("/subscriptions/{DEV_SUBSCRIPTION}")
    );
    let vm_contributor = rows
        .iter()
        .find(|r| r["name"] == seed::ROLE_ASSIGNMENT_DEV_WEB_VM_CONTRIBUTOR)
        .unwrap();
    assert_eq!(vm_contributor["resourceGroup"], "dev-web");
    let definitions = arm
        .graph(json!({"query": "authorizationresources | where type == 'microsoft.authorization/roledefinitions' and properties.roleName == 'Reader' | project id, name, properties.type"}))
        .await;
    assert_eq!(
        definitions.body["data"],
        json!([{
            "id": format!("/providers/Microsoft.Authorization/RoleDefinitions/{}", seed::ROLE_READER),
            "name": seed::ROLE_READER,
            "properties_type": "BuiltInRole",
        }])
    );

    // Resource containers: subscriptions and resource groups.
    let groups = arm
        .graph(json!({"query": "resourcecontainers | where type == 'microsoft.resources/subscriptions/resourcegroups' and tags['env'] == 'prod' | project name, subscriptionId | order by name asc"}))
        .await;
    assert_eq!(
        groups.body["data"],
        json!([
            {"name": "prod-web", "subscriptionId": PROD_SUBSCRIPTION},
            {"name": "security", "subscriptionId": PROD_SUBSCRIPTION},
        ])
    );
    let subscriptions = arm
        .graph(json!({"subscriptions": [DEV_SUBSCRIPTION], "query": "ResourceContainers | where type =~ 'Microsoft.Resources/subscriptions'"}))
        .await;
    assert_eq!(row_names(&subscriptions), ["Contoso Dev"]);
    assert_eq!(
        subscriptions.body["data"][0]["id"],
        format!("/subscriptions/{DEV_SUBSCRIPTION}")
    );

    // A VM's power state, as ARG extends it.
    let running = arm
        .graph(json!({"query": "resources | where type =~ 'microsoft.compute/virtualmachines' and properties.extended.instanceView.powerState.code == 'PowerState/running' | order by name asc | project name"}))
        .await;
    assert_eq!(row_names(&running), ["prod-web-01", "web-01"]);
    // Disks name the VM they are attached to.
    let attached = arm
        .graph(json!({"query": format!("resources | where type =~ 'Microsoft.Compute/disks' and managedBy =~ '{VM_WEB_01}' | project name")}))
        .await;
    assert_eq!(row_names(&attached), ["web-01-osdisk"]);

    // Backed by state: a new storage account shows up.
    let created = arm
        .send(
            Method::PUT,
            &format!("{RG_DEV_DATA}/providers/Microsoft.Storage/storageAccounts/newacct01"),
            Some(json!({"location": "westeurope", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "tags": {"env": "dev"}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let dev = arm
        .graph(json!({"subscriptions": [DEV_SUBSCRIPTION], "query": "resources | where type =~ 'Microsoft.Storage/storageAccounts' and tags.env == 'dev' | order by name asc"}))
        .await;
    assert_eq!(row_names(&dev), ["devdata01", "newacct01"]);

    // Older api-versions; the table format.
    for version in ["2021-03-01", "2022-10-01"] {
        let reply = arm
            .graph_at(
                version,
                json!({"query": "resources | where name == 'web-01' | project name, location", "options": {"resultFormat": "table"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{version}: {}", reply.body);
        assert_eq!(
            reply.body["data"],
            json!({
                "columns": [{"name": "name", "type": "string"}, {"name": "location", "type": "string"}],
                "rows": [["web-01", "westeurope"]],
            })
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn resource_graph_pages_and_refuses_like_azure() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    let query = "resources | where type =~ 'Microsoft.Compute/virtualMachines' | order by name asc";
    let first = arm
        .graph(json!({"query": query, "options": {"$top": 2}}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["totalRecords"], 3);
    assert_eq!(first.body["count"], 2);
    assert_eq!(first.body["resultTruncated"], "false");
    assert_eq!(row_names(&first), ["prod-web-01", "web-01"]);
    let token = first.body["$skipToken"].as_str().expect("a skip token");
    let second = arm
        .graph(json!({"query": query, "options": {"$top": 2, "$skipToken": token}}))
        .await;
    assert_eq!(row_names(&second), ["web-02"]);
    assert_eq!(second.body["count"], 1);
    assert!(second.body.get("$skipToken").is_none());
    let skipped = arm
        .graph(json!({"query": query, "options": {"$skip": 1, "$top": 1}}))
        .await;
    assert_eq!(row_names(&skipped), ["web-01"]);
    // Without an id column, rows cannot be paged: the result is truncated.
    let truncated = arm
        .graph(json!({"query": format!("{query} | project name"), "options": {"$top": 1}}))
        .await;
    assert_eq!(truncated.body["resultTruncated"], "true");
    assert!(truncated.body.get("$skipToken").is_none());

    // Queries the simulator does not run: ARG's 400, naming the part.
    let refused = arm
        .graph(json!({"query": "resources | summarize count() by type"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "BadRequest");
    let detail = &refused.body["error"]["details"][0];
    assert_eq!(detail["code"], "InvalidQuery");
    let message = detail["message"].as_str().unwrap();
    assert!(message.starts_with("Query is invalid."), "{message}");
    assert!(message.contains("'summarize' operator"), "{message}");
    for (query, part) in [
        (
            "resources | join kind=inner (resourcecontainers) on subscriptionId",
            "'join'",
        ),
        ("resources | mv-expand tags", "'mv-expand'"),
        ("resources | where tolower(name) == 'x'", "'tolower()'"),
        ("resources | where nope == 'x'", "'nope'"),
        ("securityresources", "'securityresources'"),
    ] {
        let reply = arm.graph(json!({"query": query})).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        let message = reply.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap();
        assert!(message.contains(part), "{query}: {message}");
    }
    let unknown = arm
        .graph(json!({"subscriptions": ["00000000-1111-2222-3333-444444444444"], "query": "resources"}))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.body["error"]["details"][0]["code"],
        "NoValidSubscriptionsInQueryRequest"
    );
    let no_query = arm
        .graph(json!({"subscriptions": [DEV_SUBSCRIPTION]}))
        .await;
    assert_eq!(no_query.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_query.code(), "BadRequest");
    let bad_top = arm
        .graph(json!({"query": "resources", "options": {"$top": 5000}}))
        .await;
    assert_eq!(bad_top.status, StatusCode::BAD_REQUEST);
    let bad_version = arm
        .graph_at("2099-01-01", json!({"query": "resources"}))
        .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_version.code(), "InvalidApiVersionParameter");
    let get = arm
        .get(&format!(
            "/providers/Microsoft.ResourceGraph/resources?api-version={GRAPH}"
        ))
        .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.header("allow"), "POST");
    // Only that method is unserved: refused queries are served answers.
    assert_eq!(
        sim.unserved(),
        [SimCall {
            method: "GET".into(),
            path: "/providers/Microsoft.ResourceGraph/resources".into(),
            api_version: GRAPH.into(),
            caller: DEV_CLIENT_APP.into(),
            count: 1,
        }]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn key_vault_serves_secrets() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    let vault_token = env.token_for(KEY_VAULT_RESOURCE);
    let token = Some(vault_token.as_str());
    let kv = "kv-security";

    // No token: Key Vault's challenge, which its clients answer.
    let challenge = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/db-password/?api-version=7.5",
            None,
            None,
        )
        .await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.header("www-authenticate"),
        format!(
            "Bearer authorization=\"{}/{}\", resource=\"https://vault.azure.net\"",
            env.served.base_url,
            crate::identity::dev::DEV_TENANT
        )
    );
    assert_eq!(challenge.code(), "Unauthorized");
    assert!(
        challenge.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10000")
    );
    // An ARM token is for another audience.
    let arm_token = env.app_token();
    let wrong = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/db-password?api-version=7.5",
            Some(&arm_token),
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("AKV10022")
    );
    assert!(wrong.headers.contains_key("www-authenticate"));
    // And a Key Vault token is not an ARM token.
    let mut with_vault_token = env.client(&sim).await;
    with_vault_token.token = Some(vault_token.clone());
    assert_eq!(
        with_vault_token.get("/subscriptions").await.code(),
        "InvalidAuthenticationTokenAudience"
    );

    // Read, as azmcp does (trailing slash, 7.5) and with 7.4.
    let secret = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/db-password/?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(secret.status, StatusCode::OK, "{}", secret.body);
    assert_eq!(secret.body["value"], SECRET_DB_PASSWORD_VALUE);
    assert_eq!(secret.body["contentType"], "text/plain");
    assert_eq!(secret.body["tags"]["owner"], "secops");
    let id = secret.body["id"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("https://kv-security.vault.azure.net/secrets/db-password/"),
        "{id}"
    );
    let attributes = &secret.body["attributes"];
    assert_eq!(attributes["enabled"], true);
    assert_eq!(attributes["recoveryLevel"], "Recoverable");
    assert_eq!(attributes["recoverableDays"], 90);
    assert!(attributes["created"].is_i64());
    assert!(!secret.header("x-ms-request-id").is_empty());
    let again = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/DB-PASSWORD?api-version=7.4",
            token,
            None,
        )
        .await;
    assert_eq!(again.body["id"], id.as_str());

    // Versions: the current one and an older one.
    let versions = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/db-password/versions?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(versions.status, StatusCode::OK, "{}", versions.body);
    let items = versions.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.get("value").is_none()));
    let old_id = items
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .find(|i| *i != id)
        .unwrap()
        .to_owned();
    let old_version = old_id.rsplit('/').next().unwrap();
    let old = arm
        .vault(
            kv,
            Method::GET,
            &format!("/secrets/db-password/{old_version}?api-version=7.5"),
            token,
            None,
        )
        .await;
    assert_eq!(old.body["value"], "demo-Pa55w0rd-1");

    // The list: latest versions, no values, paged by maxresults.
    let list = arm
        .vault(kv, Method::GET, "/secrets?api-version=7.5", token, None)
        .await;
    let ids: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "https://kv-security.vault.azure.net/secrets/db-password",
            "https://kv-security.vault.azure.net/secrets/legacy-token",
            "https://kv-security.vault.azure.net/secrets/storage-connection-string",
        ]
    );
    assert!(list.body["nextLink"].is_null());
    let page = arm
        .vault(
            kv,
            Method::GET,
            "/secrets?api-version=7.5&maxresults=2",
            token,
            None,
        )
        .await;
    assert_eq!(page.body["value"].as_array().unwrap().len(), 2);
    let next = page.body["nextLink"].as_str().expect("a next link");
    let rest = next
        .strip_prefix("https://kv-security.vault.azure.net:443")
        .unwrap_or_else(|| panic!("{next}"));
    let last = arm.vault(kv, Method::GET, rest, token, None).await;
    assert_eq!(last.body["value"].as_array().unwrap().len(), 1);
    assert!(last.body["nextLink"].is_null());

    // Set: a new secret, then a new version of it.
    let set = arm
        .vault(
            kv,
            Method::PUT,
            "/secrets/api-key?api-version=7.5",
            token,
            Some(json!({"value": "k1", "contentType": "text/plain", "tags": {"app": "web"}})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["value"], "k1");
    assert_eq!(set.body["tags"]["app"], "web");
    let updated = arm
        .vault(
            kv,
            Method::PUT,
            "/secrets/api-key?api-version=7.5",
            token,
            Some(json!({"value": "k2"})),
        )
        .await;
    assert_ne!(updated.body["id"], set.body["id"]);
    let current = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/api-key?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(current.body["value"], "k2");
    let bad_body = arm
        .vault(
            kv,
            Method::PUT,
            "/secrets/api-key?api-version=7.5",
            token,
            Some(json!({"contentType": "x"})),
        )
        .await;
    assert_eq!(bad_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_body.code(), "BadParameter");

    // Key Vault's errors.
    let missing = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/nope?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "SecretNotFound");
    let missing_version = arm
        .vault(
            kv,
            Method::GET,
            &format!("/secrets/db-password/{}?api-version=7.5", "0".repeat(32)),
            token,
            None,
        )
        .await;
    assert_eq!(missing_version.code(), "SecretNotFound");
    let disabled = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/legacy-token?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::FORBIDDEN);
    assert_eq!(
        disabled.body["error"]["innererror"]["code"],
        "SecretDisabled"
    );
    let bad_name = arm
        .vault(
            kv,
            Method::PUT,
            "/secrets/bad_name?api-version=7.5",
            token,
            Some(json!({"value": "x"})),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_name.code(), "BadParameter");
    let no_version = arm
        .vault(kv, Method::GET, "/secrets/db-password", token, None)
        .await;
    assert_eq!(no_version.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_version.code(), "BadParameter");
    let unknown_version = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/db-password?api-version=9.9",
            token,
            None,
        )
        .await;
    assert_eq!(unknown_version.status, StatusCode::BAD_REQUEST);
    let no_vault = arm
        .vault(
            "kv-nowhere",
            Method::GET,
            "/secrets?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(no_vault.status, StatusCode::NOT_FOUND);
    assert_eq!(no_vault.code(), "VaultNotFound");

    // Delete (soft), recover; the name stays taken meanwhile.
    let deleted = arm
        .vault(
            kv,
            Method::DELETE,
            "/secrets/api-key?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(
        deleted.body["recoveryId"],
        "https://kv-security.vault.azure.net/deletedsecrets/api-key"
    );
    assert!(deleted.body.get("value").is_none());
    assert!(
        deleted.body["scheduledPurgeDate"].as_i64().unwrap()
            > deleted.body["deletedDate"].as_i64().unwrap()
    );
    let gone = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/api-key?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(gone.code(), "SecretNotFound");
    let taken = arm
        .vault(
            kv,
            Method::PUT,
            "/secrets/api-key?api-version=7.5",
            token,
            Some(json!({"value": "k3"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(
        taken.body["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    let in_bin = arm
        .vault(
            kv,
            Method::GET,
            "/deletedsecrets?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(
        in_bin.body["value"][0]["recoveryId"],
        deleted.body["recoveryId"]
    );
    let purge = arm
        .vault(
            kv,
            Method::DELETE,
            "/deletedsecrets/api-key?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(purge.status, StatusCode::FORBIDDEN, "{}", purge.body);
    let recovered = arm
        .vault(
            kv,
            Method::POST,
            "/deletedsecrets/api-key/recover?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(recovered.status, StatusCode::OK, "{}", recovered.body);
    let back = arm
        .vault(
            kv,
            Method::GET,
            "/secrets/api-key?api-version=7.5",
            token,
            None,
        )
        .await;
    assert_eq!(back.body["value"], "k2");
    assert_eq!(
        arm.vault(
            kv,
            Method::GET,
            "/deletedsecrets/api-key?api-version=7.5",
            token,
            None
        )
        .await
        .code(),
        "SecretNotFound"
    );

    // What the data plane does not serve is recorded.
    let keys = arm
        .vault(kv, Method::GET, "/keys?api-version=7.5", token, None)
        .await;
    assert_eq!(keys.status, StatusCode::NOT_FOUND);
    let message = keys.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'GET https://kv-security.vault.azure.net/keys'"),
        "{message}"
    );
    assert!(message.contains("'7.5'"), "{message}");
    assert_eq!(
        sim.unserved(),
        [SimCall {
            method: "GET".into(),
            path: "https://kv-security.vault.azure.net/keys".into(),
            api_version: "7.5".into(),
            caller: DEV_CLIENT_APP.into(),
            count: 1,
        }]
    );
    let calls = sim.calls();
    let secret_gets = calls
        .iter()
        .find(|c| {
            c.method == "GET"
                && c.path == "https://{vaultName}.vault.azure.net/secrets/{secretName}"
                && c.api_version == "7.5"
        })
        .expect("secret reads recorded");
    assert!(secret_gets.count >= 4, "{calls:?}");

    // The vault's secrets go with it.
    let removed = arm.send(Method::DELETE, KEY_VAULT_SECURITY, None).await;
    assert_eq!(removed.status, StatusCode::OK);
    let after = arm
        .vault(kv, Method::GET, "/secrets?api-version=7.5", token, None)
        .await;
    assert_eq!(after.code(), "VaultNotFound");
    sim.shutdown().await;
}

#[tokio::test]
async fn disks_and_scale_sets() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    const COMPUTE: &str = "2024-11-01";
    const DISKS: &str = "2024-03-02";

    let disks = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Compute/disks?api-version={DISKS}"
        ))
        .await;
    assert_eq!(disks.status, StatusCode::OK, "{}", disks.body);
    assert_eq!(names(&disks.body), ["web-01-osdisk", "web-02-osdisk"]);
    assert_eq!(disks.body["value"][0]["managedBy"], VM_WEB_01);
    assert_eq!(
        disks.body["value"][0]["properties"]["diskState"],
        "Attached"
    );
    let vm = arm.get(VM_WEB_01).await;
    assert_eq!(
        vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"],
        DISK_WEB_01_OS
    );
    let all = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Compute/disks?api-version={DISKS}"
        ))
        .await;
    assert_eq!(
        names(&all.body),
        ["dev-data-disk01", "web-01-osdisk", "web-02-osdisk"]
    );

    // An attached disk cannot be deleted; a spare one can (asynchronously).
    let refused = arm
        .send(
            Method::DELETE,
            &format!("{DISK_WEB_01_OS}?api-version={DISKS}"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "OperationNotAllowed");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(VM_WEB_01)
    );
    let accepted = arm
        .send(
            Method::DELETE,
            &format!("{DISK_DEV_DATA_01}?api-version={DISKS}"),
            None,
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(finish(&arm, &accepted).await["status"], "Succeeded");
    assert_eq!(
        arm.get(DISK_DEV_DATA_01).await.status,
        StatusCode::NOT_FOUND
    );
    let absent = arm
        .send(
            Method::DELETE,
            &format!("{DISK_DEV_DATA_01}?api-version={DISKS}"),
            None,
        )
        .await;
    assert_eq!(absent.status, StatusCode::NO_CONTENT);

    // Deleting web-01 deletes its OS disk (deleteOption Delete).
    let accepted = arm.send(Method::DELETE, VM_WEB_01, None).await;
    assert_eq!(finish(&arm, &accepted).await["status"], "Succeeded");
    assert_eq!(arm.get(DISK_WEB_01_OS).await.status, StatusCode::NOT_FOUND);

    // A new VM gets an OS disk, detached (the default) when it goes.
    let web03 = format!("{RG_DEV_WEB}/providers/Microsoft.Compute/virtualMachines/web-03");
    let created = arm
        .send(
            Method::PUT,
            &format!("{web03}?api-version={COMPUTE}"),
            Some(json!({"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}, "storageProfile": {"osDisk": {"name": "web-03-os", "createOption": "FromImage"}}}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    finish(&arm, &created).await;
    let disk_id = format!("{RG_DEV_WEB}/providers/Microsoft.Compute/disks/web-03-os");
    let disk = arm.get(&disk_id).await;
    assert_eq!(disk.status, StatusCode::OK, "{}", disk.body);
    assert_eq!(disk.body["managedBy"], web03);
    let vm = arm.get(&web03).await;
    assert_eq!(
        vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"],
        disk_id
    );
    let accepted = arm.send(Method::DELETE, &web03, None).await;
    finish(&arm, &accepted).await;
    let detached = arm.get(&disk_id).await;
    assert_eq!(detached.status, StatusCode::OK);
    assert!(detached.body.get("managedBy").is_none());
    assert_eq!(detached.body["properties"]["diskState"], "Unattached");

    // Scale sets and their instances.
    let sets = arm
        .get(&format!(
            "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Compute/virtualMachineScaleSets?api-version={COMPUTE}"
        ))
        .await;
    assert_eq!(names(&sets.body), ["web-vmss"]);
    let vmss = arm.get(&format!("{VMSS_WEB}?api-version={COMPUTE}")).await;
    assert_eq!(vmss.status, StatusCode::OK, "{}", vmss.body);
    assert_eq!(vmss.body["sku"]["capacity"], 2);
    assert_eq!(vmss.body["properties"]["orchestrationMode"], "Uniform");
    let instances = arm
        .get(&format!("{VMSS_WEB}/virtualMachines?api-version={COMPUTE}"))
        .await;
    assert_eq!(instances.status, StatusCode::OK, "{}", instances.body);
    assert_eq!(names(&instances.body), ["web-vmss_0", "web-vmss_1"]);
    let one = arm
        .get(&format!(
            "{VMSS_WEB}/virtualMachines/1?api-version={COMPUTE}"
        ))
        .await;
    assert_eq!(one.body["instanceId"], "1");
    assert_eq!(one.body["id"], format!("{VMSS_WEB}/virtualMachines/1"));
    assert_eq!(
        one.body["properties"]["osProfile"]["computerName"],
        "webvmss000001"
    );
    assert_eq!(
        one.body["properties"]["hardwareProfile"]["vmSize"],
        "Standard_B1s"
    );
    let view = arm
        .get(&format!(
            "{VMSS_WEB}/virtualMachines/0/instanceView?api-version={COMPUTE}"
        ))
        .await;
    assert_eq!(view.body["statuses"][1]["code"], "PowerState/running");
    let missing = arm
        .get(&format!(
            "{VMSS_WEB}/virtualMachines/7?api-version={COMPUTE}"
        ))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "NotFound");
    // Scaling changes the instances.
    let scaled = arm
        .send(
            Method::PATCH,
            &format!("{VMSS_WEB}?api-version={COMPUTE}"),
            Some(json!({"sku": {"name": "Standard_B1s", "tier": "Standard", "capacity": 3}})),
        )
        .await;
    assert_eq!(scaled.status, StatusCode::OK, "{}", scaled.body);
    let instances = arm
        .get(&format!("{VMSS_WEB}/virtualMachines?api-version={COMPUTE}"))
        .await;
    assert_eq!(instances.body["value"].as_array().unwrap().len(), 3);
    let accepted = arm
        .send(
            Method::DELETE,
            &format!("{VMSS_WEB}?api-version={COMPUTE}"),
            None,
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(finish(&arm, &accepted).await["status"], "Succeeded");
    let gone = arm.get(VMSS_WEB).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "ResourceNotFound");
    let gone = arm
        .get(&format!("{VMSS_WEB}/virtualMachines?api-version={COMPUTE}"))
        .await;
    assert_eq!(gone.code(), "ResourceNotFound");
    sim.shutdown().await;
}

#[tokio::test]
async fn diagnostic_settings_are_listed_written_and_deleted() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;
    const MONITOR: &str = "2021-05-01-preview";
    let settings = format!("{KEY_VAULT_SECURITY}/providers/Microsoft.Insights/diagnosticSettings");

    let list = arm.get(&format!("{settings}?api-version={MONITOR}")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(names(&list.body), [seed::DIAGNOSTIC_SETTING_KV_AUDIT]);
    let seeded = &list.body["value"][0];
    assert_eq!(
        seeded["id"],
        format!(
            "{KEY_VAULT_SECURITY}/providers/microsoft.insights/diagnosticSettings/{}",
            seed::DIAGNOSTIC_SETTING_KV_AUDIT
        )
    );
    assert_eq!(seeded["type"], "Microsoft.Insights/diagnosticSettings");
    assert_eq!(seeded["properties"]["storageAccountId"], STORAGE_PRODLOGS01);
    assert_eq!(seeded["properties"]["logs"][0]["categoryGroup"], "audit");

    let workspace = format!(
        "/subscriptions/{PROD_SUBSCRIPTION}/resourceGroups/security/providers/Microsoft.OperationalInsights/workspaces/secops-law"
    );
    let path = format!("{settings}/to-law?api-version={MONITOR}");
    let created = arm
        .send(
            Method::PUT,
            &path,
            Some(json!({"properties": {"workspaceId": workspace, "logs": [{"category": "AuditEvent", "enabled": true}], "metrics": [{"category": "AllMetrics", "enabled": false}]}})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["name"], "to-law");
    assert_eq!(created.body["properties"]["workspaceId"], workspace);
    assert!(created.body["properties"]["storageAccountId"].is_null());
    let fetched = arm
        .get(&path.to_uppercase().replace("API-VERSION", "api-version"))
        .await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.body);
    assert_eq!(
        fetched.body["properties"]["logs"][0]["category"],
        "AuditEvent"
    );
    let list = arm.get(&format!("{settings}?api-version={MONITOR}")).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 2);

    // Azure Monitor's refusals.
    for (body, code, part) in [
        (
            json!({"properties": {"logs": []}}),
            "BadRequest",
            "destination",
        ),
        (
            json!({"properties": {"workspaceId": workspace, "logs": [{"category": "Nope", "enabled": true}]}}),
            "BadRequest",
            "Category 'Nope'",
        ),
        (
            json!({"properties": {"workspaceId": workspace, "metrics": [{"category": "Transaction", "enabled": true}]}}),
            "BadRequest",
            "Category 'Transaction'",
        ),
        (
            json!({"properties": {"storageAccountId": "prodlogs01"}}),
            "LinkedInvalidPropertyId",
            "properties.storageAccountId",
        ),
        (
            json!({"properties": {"storageAccountId": format!("{RG_SECURITY}/providers/Microsoft.Storage/storageAccounts/missing01")}}),
            "BadRequest",
            "could not be found",
        ),
        (json!({}), "BadRequest", "properties"),
    ] {
        let reply = arm.send(Method::PUT, &path, Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.code(), code, "{body}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(part), "{body}: {message}");
    }

    let categories = arm
        .get(&format!("{KEY_VAULT_SECURITY}/providers/Microsoft.Insights/diagnosticSettingsCategories?api-version={MONITOR}"))
        .await;
    assert_eq!(
        names(&categories.body),
        ["AuditEvent", "AzurePolicyEvaluationDetails", "AllMetrics"]
    );
    assert_eq!(
        categories.body["value"][0]["properties"]["categoryGroups"],
        json!(["audit", "allLogs"])
    );

    // Subscription scope: activity-log categories.
    let sub_setting = arm
        .send(
            Method::PUT,
            &format!("/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Insights/diagnosticSettings/activity?api-version={MONITOR}"),
            Some(json!({"properties": {"storageAccountId": STORAGE_PRODLOGS01, "logs": [{"category": "Administrative", "enabled": true}]}})),
        )
        .await;
    assert_eq!(sub_setting.status, StatusCode::OK, "{}", sub_setting.body);

    // Delete: 200, then 204; reading it is a 404.
    let deleted = arm.send(Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let again = arm.send(Method::DELETE, &path, None).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let missing = arm.get(&path).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "ResourceNotFound");

    // Writes are in the activity log.
    let since = (chrono::Utc::now() - chrono::Duration::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events = arm
        .get(&format!("/subscriptions/{PROD_SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values?$filter=eventTimestamp ge '{since}'&api-version=2017-03-01-preview"))
        .await;
    let operations: Vec<&str> = events.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operationName"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        [
            "Microsoft.Insights/diagnosticSettings/delete",
            "Microsoft.Insights/diagnosticSettings/write",
            "Microsoft.Insights/diagnosticSettings/write",
        ]
    );

    // Settings go with their resource.
    let removed = arm.send(Method::DELETE, KEY_VAULT_SECURITY, None).await;
    assert_eq!(removed.status, StatusCode::OK);
    let recreated = arm
        .send(
            Method::PUT,
            KEY_VAULT_SECURITY,
            Some(json!({"location": "westeurope", "properties": {}})),
        )
        .await;
    assert_eq!(recreated.status, StatusCode::CREATED);
    let list = arm.get(&format!("{settings}?api-version={MONITOR}")).await;
    assert_eq!(list.body["value"], json!([]));
    // Resource groups have none: not a route.
    let group = arm
        .get(&format!(
            "{RG_SECURITY}/providers/Microsoft.Insights/diagnosticSettings?api-version={MONITOR}"
        ))
        .await;
    assert_eq!(group.status, StatusCode::NOT_FOUND);
    assert_eq!(group.code(), "NoRegisteredProviderFound");
    sim.shutdown().await;
}

#[tokio::test]
async fn unserved_requests_and_served_calls_are_recorded() {
    let env = Env::new().await;
    let sim = env.sim(0).await;
    let arm = env.client(&sim).await;

    let sites = format!(
        "/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Web/sites?api-version=2023-12-01"
    );
    for _ in 0..2 {
        let reply = arm.get(&sites).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.code(), "NoRegisteredProviderFound");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "'GET /subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Web/sites'"
            )),
            "{message}"
        );
        assert!(message.contains("'2023-12-01'"), "{message}");
    }
    let snapshots = arm
        .get(&format!(
            "{RG_DEV_WEB}/providers/Microsoft.Compute/snapshots?api-version=2024-03-02"
        ))
        .await;
    assert_eq!(snapshots.code(), "InvalidResourceType");
    let nothing = arm
        .send(Method::DELETE, "/nothing/here?api-version=1", None)
        .await;
    assert_eq!(nothing.status, StatusCode::NOT_FOUND);
    // Refused before routing: not recorded.
    let mut anonymous = env.client(&sim).await;
    anonymous.token = None;
    anonymous.get("/elsewhere?api-version=1").await;
    arm.get("/elsewhere?without=api-version").await;

    let expected = vec![
        SimCall {
            method: "GET".into(),
            path: format!("/subscriptions/{DEV_SUBSCRIPTION}/providers/Microsoft.Web/sites"),
            api_version: "2023-12-01".into(),
            caller: DEV_CLIENT_APP.into(),
            count: 2,
        },
        SimCall {
            method: "GET".into(),
            path: format!("{RG_DEV_WEB}/providers/Microsoft.Compute/snapshots"),
            api_version: "2024-03-02".into(),
            caller: DEV_CLIENT_APP.into(),
            count: 1,
        },
        SimCall {
            method: "DELETE".into(),
            path: "/nothing/here".into(),
            api_version: "1".into(),
            caller: DEV_CLIENT_APP.into(),
            count: 1,
        },
    ];
    assert_eq!(sim.unserved(), expected);
    let listed: Vec<SimCall> = reqwest::get(format!("{}/_sim/unserved", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, expected);

    // Served calls, by route pattern.
    arm.get(&VM_WEB_01.to_lowercase()).await;
    arm.get(VM_WEB_02).await;
    arm.get(&format!(
        "{RG_DEV_WEB}/providers/Microsoft.Authorization/roleAssignments/{}",
        seed::ROLE_ASSIGNMENT_DEV_WEB_VM_CONTRIBUTOR
    ))
    .await;
    arm.graph(json!({"query": "resources | limit 1"})).await;
    let calls: Vec<SimCall> = reqwest::get(format!("{}/_sim/calls", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls, sim.calls());
    let find = |path: &str, api_version: &str| {
        calls
            .iter()
            .find(|c| c.path == path && c.api_version == api_version)
            .unwrap_or_else(|| panic!("{path} not in {calls:#?}"))
            .count
    };
    assert_eq!(
        find(
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/virtualMachines/{name}",
            API
        ),
        2
    );
    find(
        "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Authorization/roleAssignments/{name}",
        API,
    );
    assert_eq!(
        find("/providers/Microsoft.ResourceGraph/resources", GRAPH),
        1
    );
    assert!(
        calls
            .iter()
            .all(|c| c.method == "GET" || c.method == "POST")
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// Logs Ingestion

#[tokio::test]
async fn logs_ingestion_takes_rows_for_a_known_rule_and_stream_and_keeps_them() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let mut arm = env.client(&sim).await;
    arm.token = Some(env.token_for("https://monitor.azure.com"));
    let path = |dcr: &str, stream: &str| {
        format!("/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01")
    };
    let rows = json!([{"TimeGenerated": "2026-03-01T00:00:00Z", "WardenSeq": 0},
                      {"TimeGenerated": "2026-03-01T00:00:01Z", "WardenSeq": 1}]);
    let reply = arm
        .send(
            Method::POST,
            &path(DEV_DCR_IMMUTABLE_ID, DEV_DCR_STREAM),
            Some(rows.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let taken = sim.ingested();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].dcr_immutable_id, DEV_DCR_IMMUTABLE_ID);
    assert_eq!(taken[0].stream, DEV_DCR_STREAM);
    assert_eq!(taken[0].api_version, "2023-01-01");
    assert_eq!(Value::Array(taken[0].rows.clone()), rows);
    // The caller is the token's application.
    assert_eq!(taken[0].caller, crate::identity::dev::DEV_CLIENT_APP);
    assert!(
        sim.calls()
            .iter()
            .any(|c| c.path == ingestion::ROUTE && c.method == "POST"),
        "{:?}",
        sim.calls()
    );
    let listed: Value = reqwest::get(format!("{}/_sim/ingested", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["rows"], rows);

    // A rule added later is taken too.
    sim.add_data_collection_rule("dcr-00000000000000000000000000000abc", &["Custom-Other_CL"]);
    let reply = arm
        .send(
            Method::POST,
            &path("dcr-00000000000000000000000000000abc", "Custom-Other_CL"),
            Some(json!([{"a": 1}])),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(sim.ingested().len(), 2);
}

#[tokio::test]
async fn logs_ingestion_refuses_as_azure_does() {
    let env = Env::new().await;
    let sim = env.sim(2).await;
    let mut arm = env.client(&sim).await;
    let path = |dcr: &str, stream: &str| {
        format!("/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01")
    };
    let good = path(DEV_DCR_IMMUTABLE_ID, DEV_DCR_STREAM);
    let rows = Some(json!([{"WardenSeq": 0}]));

    // An ARM token is not a token for Azure Monitor.
    let reply = arm.send(Method::POST, &good, rows.clone()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(reply.code(), "InvalidAuthenticationTokenAudience");
    arm.token = None;
    let reply = arm.send(Method::POST, &good, rows.clone()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "AuthenticationFailed");

    arm.token = Some(env.token_for("https://monitor.azure.com/"));
    let reply = arm
        .send(
            Method::POST,
            &path("dcr-ffffffffffffffffffffffffffffffff", DEV_DCR_STREAM),
            rows.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.body,
        json!({"error": {"code": "NotFound", "message":
            "Data collection rule with immutable Id 'dcr-ffffffffffffffffffffffffffffffff' not found."}})
    );
    let reply = arm
        .send(
            Method::POST,
            &path(DEV_DCR_IMMUTABLE_ID, "Custom-Nope_CL"),
            rows.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "InvalidStream");
    let reply = arm
        .send(Method::POST, &good, Some(json!({"not": "an array"})))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "InvalidPayload");
    let reply = arm
        .send(
            Method::POST,
            &format!("/dataCollectionRules/{DEV_DCR_IMMUTABLE_ID}/streams/{DEV_DCR_STREAM}?x=1"),
            rows.clone(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "MissingApiVersionParameter");
    let big = json!([{"WardenRecord": "x".repeat(ingestion::MAX_BODY_BYTES)}]);
    let reply = arm.send(Method::POST, &good, Some(big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "ContentLengthLimitExceeded");

    // A receiver that is down for one request, then back.
    sim.fail_ingestion(1);
    let reply = arm.send(Method::POST, &good, rows.clone()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "ServiceUnavailable");
    assert_eq!(reply.header("retry-after"), "0");
    let reply = arm.send(Method::POST, &good, rows.clone()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(sim.ingested().len(), 1, "only the last request was taken");
    assert!(sim.unserved().is_empty(), "{:?}", sim.unserved());
}
