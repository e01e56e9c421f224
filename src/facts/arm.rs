//! Facts from Azure Resource Manager, through Warden's [`ArmClient`] (its
//! own credential, retries, timeouts): GETs of ids whose type has a known
//! `api-version`, and Resource Graph queries for the rest.
//!
//! Resource Graph is asked as the Azure MCP Server finds a resource it was
//! given by name: `POST /providers/Microsoft.ResourceGraph/resources` with
//! `resources | where type =~ '<type>' and name =~ '<name>'`, in the
//! subscription when it is known, projecting `id, resourceGroup, location,
//! tags, type`.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Find, Found, Source, Subscription};
use crate::azure::ArmId;
use crate::azure::client::ArmClient;
use crate::azure::id::ScopeKind;

/// The Resource Graph API version Warden speaks.
const GRAPH_API_VERSION: &str = "2022-10-01";
/// The Resource Graph query endpoint.
const GRAPH_PATH: &str = "/providers/Microsoft.ResourceGraph/resources";
/// The columns every query projects.
const PROJECT: &str = "project id, resourceGroup, location, tags, type";
/// Enough rows to tell one match from several.
const MOST_ROWS: usize = 10;

/// The production [`Source`]: ARM and Resource Graph with Warden's own
/// credential.
#[derive(Debug, Clone)]
pub struct ArmSource {
    client: Arc<ArmClient>,
}

impl ArmSource {
    pub fn new(client: Arc<ArmClient>) -> ArmSource {
        ArmSource { client }
    }
}

impl Source for ArmSource {
    fn get(&self, id: &ArmId) -> BoxFuture<'static, Result<Option<Found>, String>> {
        let client = self.client.clone();
        let id = id.clone();
        async move {
            let resource_type = match id.kind() {
                ScopeKind::Subscription => Some("microsoft.resources/subscriptions".to_owned()),
                ScopeKind::ResourceGroup => Some("microsoft.resources/resourcegroups".to_owned()),
                _ => id.resource_type(),
            };
            let version = resource_type.as_deref().and_then(|t| client.api_version(t));
            let Some(version) = version else {
                // No api-version known for the type: Resource Graph knows
                // every tracked resource by id.
                let query = format!(
                    "resources | where id =~ '{}' | {PROJECT} | limit 1",
                    kql(id.display())
                );
                let rows = graph(&client, None, &query).await?;
                return Ok(rows.into_iter().next());
            };
            match client
                .request(Method::GET, id.display(), &version, &[], None)
                .await
            {
                Ok(answer) => Ok(Some(found(&answer.body, &id))),
                Err(error) if error.status() == Some(404) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        }
        .boxed()
    }

    fn find(&self, find: &Find) -> BoxFuture<'static, Result<Vec<Found>, String>> {
        let client = self.client.clone();
        let find = find.clone();
        async move {
            let query = find_query(&find);
            graph(&client, find.subscription.as_deref(), &query).await
        }
        .boxed()
    }

    fn subscriptions(&self) -> BoxFuture<'static, Result<Vec<Subscription>, String>> {
        let client = self.client.clone();
        async move {
            let version = client
                .api_version("microsoft.resources/subscriptions")
                .unwrap_or_else(|| "2022-12-01".to_owned());
            let answer = client
                .request(Method::GET, "/subscriptions", &version, &[], None)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer.body["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    Some(Subscription {
                        id: s["subscriptionId"].as_str()?.to_ascii_lowercase(),
                        display_name: s["displayName"].as_str()?.to_owned(),
                    })
                })
                .collect())
        }
        .boxed()
    }
}

/// The Resource Graph query of a [`Find`].
pub(crate) fn find_query(find: &Find) -> String {
    let mut clauses = Vec::new();
    if let Some(ty) = &find.resource_type {
        clauses.push(format!("type =~ '{}'", kql(ty)));
    }
    clauses.push(format!("name =~ '{}'", kql(&find.name)));
    if let Some(subscription) = &find.subscription {
        clauses.push(format!("subscriptionId =~ '{}'", kql(subscription)));
    }
    if let Some(group) = &find.resource_group {
        clauses.push(format!("resourceGroup =~ '{}'", kql(group)));
    }
    format!(
        "resources | where {} | {PROJECT} | limit {MOST_ROWS}",
        clauses.join(" and ")
    )
}

/// A KQL single-quoted string's content.
fn kql(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

/// Runs a Resource Graph query: its rows as [`Found`]s (rows without a
/// valid id are skipped).
async fn graph(
    client: &ArmClient,
    subscription: Option<&str>,
    query: &str,
) -> Result<Vec<Found>, String> {
    let mut body = json!({
        "query": query,
        "options": { "resultFormat": "objectArray" },
    });
    if let Some(subscription) = subscription {
        body["subscriptions"] = json!([subscription]);
    }
    let answer = client
        .request(
            Method::POST,
            GRAPH_PATH,
            GRAPH_API_VERSION,
            &[],
            Some(&body),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows(&answer.body)
        .into_iter()
        .filter_map(|row| {
            let id = ArmId::parse(row.get("id")?.as_str()?).ok()?;
            Some(found(&row, &id))
        })
        .collect())
}

/// The rows of a Resource Graph answer, as objects (`objectArray`, or the
/// `table` format's columns and rows).
fn rows(body: &Value) -> Vec<Value> {
    match &body["data"] {
        Value::Array(rows) => rows.clone(),
        Value::Object(table) => {
            let columns: Vec<&str> = table
                .get("columns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| c["name"].as_str().unwrap_or_default())
                .collect();
            table
                .get("rows")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_array)
                .map(|row| {
                    Value::Object(
                        columns
                            .iter()
                            .zip(row)
                            .map(|(c, v)| ((*c).to_owned(), v.clone()))
                            .collect(),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// A resource, group or subscription as ARM or Resource Graph describes
/// it, under `id` (in the document's casing when it names the same id).
fn found(doc: &Value, id: &ArmId) -> Found {
    let id = doc["id"]
        .as_str()
        .and_then(|text| ArmId::parse(text).ok())
        .filter(|parsed| parsed == id)
        .unwrap_or_else(|| id.clone());
    let tags: BTreeMap<String, String> = doc["tags"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            Some((k.clone(), value))
        })
        .collect();
    Found {
        resource_type: doc["type"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .or_else(|| id.resource_type()),
        location: doc["location"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
        tags,
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_their_values_and_ask_for_a_few_rows() {
        let query = find_query(&Find {
            resource_type: Some("microsoft.keyvault/vaults".into()),
            name: "o'brien".into(),
            subscription: Some("9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b".into()),
            resource_group: None,
        });
        assert_eq!(
            query,
            "resources | where type =~ 'microsoft.keyvault/vaults' and name =~ 'o\\'brien' \
             and subscriptionId =~ '9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b' \
             | project id, resourceGroup, location, tags, type | limit 10"
        );
    }

    #[test]
    fn answers_are_read_in_both_result_formats() {
        let id = "/subscriptions/s/resourceGroups/Prod/providers/Microsoft.KeyVault/vaults/kv1";
        let objects = json!({"data": [
            {"id": id, "resourceGroup": "Prod", "location": "westeurope", "tags": {"env": "prod", "n": 1}, "type": "microsoft.keyvault/vaults"},
            {"id": "not an id"}
        ]});
        let table = json!({"data": {
            "columns": [{"name": "id"}, {"name": "location"}, {"name": "tags"}, {"name": "type"}],
            "rows": [[id, "westeurope", {"env": "prod", "n": 1}, "Microsoft.KeyVault/vaults"]]
        }});
        for body in [objects, table] {
            let found: Vec<Found> = rows(&body)
                .iter()
                .filter_map(|row| {
                    let parsed = ArmId::parse(row["id"].as_str()?).ok()?;
                    Some(found(row, &parsed))
                })
                .collect();
            assert_eq!(found.len(), 1, "{body}");
            let vault = &found[0];
            assert_eq!(vault.id.display(), id);
            assert_eq!(vault.location.as_deref(), Some("westeurope"));
            assert_eq!(vault.tags["env"], "prod");
            assert_eq!(vault.tags["n"], "1");
            assert_eq!(
                vault.resource_type.as_deref(),
                Some("microsoft.keyvault/vaults")
            );
        }
    }
}
