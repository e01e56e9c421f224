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
    assert_eq!(names(&in_group.body), ["devdata01"]);

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
