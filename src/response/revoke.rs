//! Undoing a privilege grant: finding the role assignments a call created
//! and deleting them through ARM with Warden's own credential.

use reqwest::Method;
use serde_json::Value;

use crate::azure::client::ArmClient;
use crate::azure::id::ArmId;

/// What a role assignment's id holds, lower-cased.
const MARKER: &str = "/providers/microsoft.authorization/roleassignments/";
/// The API version used when `[azure]` names none for role assignments.
const API_VERSION: &str = "2022-04-01";

/// The ids of role assignments named in `value` (a call's result, its
/// operations' resources): every string holding one, and every string that
/// is JSON holding one, searched all the way down. Sorted, without
/// duplicates, compared without case.
pub fn assignment_ids(values: &[&Value]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for value in values {
        walk(value, &mut found, 0);
    }
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|id| seen.insert(id.to_ascii_lowercase()));
    found.sort_by_key(|id| id.to_ascii_lowercase());
    found
}

fn walk(value: &Value, found: &mut Vec<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    match value {
        Value::String(text) => {
            if text.len() > 2
                && (text.starts_with('{') || text.starts_with('['))
                && let Ok(inner) = serde_json::from_str::<Value>(text)
            {
                walk(&inner, found, depth + 1);
                return;
            }
            found.extend(ids_in(text));
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, found, depth + 1)),
        Value::Object(map) => map.values().for_each(|v| walk(v, found, depth + 1)),
        _ => {}
    }
}

/// Role assignment ids in free text: each runs from its leading `/` to the
/// first character that cannot be part of an id.
fn ids_in(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut ids = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(MARKER).map(|i| i + from) {
        let stop = |c: char| {
            c.is_whitespace() || matches!(c, '"' | '\'' | '?' | '#' | ',' | ')' | '<' | '>')
        };
        let start = lower[..at].rfind(stop).map_or(0, |i| i + 1);
        let end = lower[at + MARKER.len()..]
            .find(stop)
            .map_or(lower.len(), |i| i + at + MARKER.len());
        let candidate = text[start..end].trim_end_matches(['.', ';']);
        if let Ok(id) = ArmId::parse(candidate)
            && id.display().to_ascii_lowercase().contains(MARKER)
            && !id
                .display()
                .to_ascii_lowercase()
                .ends_with(MARKER.trim_end_matches('/'))
        {
            ids.push(id.display().to_owned());
        }
        from = at + MARKER.len();
    }
    ids
}

/// Deletes the role assignment `id` through ARM. `Ok` with a sentence when
/// it is gone (deleted now, or already absent).
pub async fn delete_assignment(arm: &ArmClient, id: &str) -> Result<String, String> {
    let version = arm
        .api_version("Microsoft.Authorization/roleAssignments")
        .unwrap_or_else(|| API_VERSION.to_owned());
    match arm.request(Method::DELETE, id, &version, &[], None).await {
        Ok(response) if response.status == 204 => Ok(format!(
            "{id} was already gone (correlation id {})",
            response.correlation_id
        )),
        Ok(response) => Ok(format!(
            "deleted {id} (correlation id {})",
            response.correlation_id
        )),
        Err(error) if error.status() == Some(404) => Ok(format!("{id} was already gone")),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg-dev-web/providers/Microsoft.Authorization/roleAssignments/6f1c0d4e-0000-4000-8000-00000000a001";

    #[test]
    fn ids_are_found_in_structured_and_textual_results() {
        let structured = json!({ "structuredContent": { "id": ID, "name": "6f1c0d4e" } });
        assert_eq!(assignment_ids(&[&structured]), [ID]);
        let text =
            json!({ "content": [{ "type": "text", "text": json!({"id": ID}).to_string() }] });
        assert_eq!(assignment_ids(&[&text]), [ID]);
        let prose = json!(format!("Created {ID}. Done"));
        assert_eq!(assignment_ids(&[&prose]), [ID]);
        // The same id in another case is one id.
        let twice = json!([ID, ID.to_ascii_lowercase()]);
        assert_eq!(assignment_ids(&[&twice]).len(), 1);
    }

    #[test]
    fn lists_and_other_resources_are_not_assignments() {
        let list = json!(
            "/subscriptions/00000000-0000-4000-8000-000000000001/providers/Microsoft.Authorization/roleAssignments"
        );
        let vm = json!(
            "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm"
        );
        assert!(assignment_ids(&[&list, &vm]).is_empty());
    }
}
