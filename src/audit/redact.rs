//! Redaction before hashing: tool arguments are kept in the clear only when
//! their name is allowlisted as non-secret (for every tool, or for one tool)
//! and their value does not look like a secret; everything else becomes
//! `hmac-sha256:<hex>` under a key of its own, so equal values can still be
//! correlated by someone who holds the key, and nobody can read them.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

/// Argument names kept in the clear for every tool unless configured
/// otherwise: resource identifiers, names, regions, SKUs and sizes.
pub const DEFAULT_PLAIN: &[&str] = &[
    "subscription",
    "subscription_id",
    "resource_group",
    "resource_id",
    "resource_type",
    "resource_name",
    "name",
    "vm_name",
    "vm",
    "account",
    "account_name",
    "vault",
    "vault_name",
    "server",
    "database",
    "container",
    "location",
    "region",
    "sku",
    "size",
    "vm_size",
    "tier",
    "kind",
    "tenant",
    "namespace",
    "api_version",
    "method",
];

/// `[audit.redaction]` in warden.toml.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Argument names kept in the clear for every tool (replaces the default).
    #[serde(default = "default_plain")]
    pub plain: Vec<String>,
    /// More argument names kept in the clear, per tool (as the client names it).
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<String>>,
}

fn default_plain() -> Vec<String> {
    DEFAULT_PLAIN.iter().map(|s| s.to_string()).collect()
}

impl Default for RedactionConfig {
    fn default() -> Self {
        Self {
            plain: default_plain(),
            tools: BTreeMap::new(),
        }
    }
}

/// `resourceGroup`, `resource-group` and `resource_group` are one name.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

pub struct Redactor {
    key: Vec<u8>,
    plain: BTreeSet<String>,
    tools: BTreeMap<String, BTreeSet<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("plain", &self.plain)
            .field("tools", &self.tools)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    pub fn new(key: Vec<u8>, config: &RedactionConfig) -> Self {
        Self {
            key,
            plain: config.plain.iter().map(|n| normalize(n)).collect(),
            tools: config
                .tools
                .iter()
                .map(|(tool, names)| (tool.clone(), names.iter().map(|n| normalize(n)).collect()))
                .collect(),
        }
    }

    /// `hmac-sha256:<hex>` of the value's canonical JSON.
    pub fn digest(&self, value: &Value) -> String {
        let bytes = serde_json_canonicalizer::to_vec(value).unwrap_or_default();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        mac.update(&bytes);
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    fn is_plain(&self, tool: &str, name: &str) -> bool {
        let name = normalize(name);
        if secret_name(&name) {
            return false;
        }
        self.plain.contains(&name) || self.tools.get(tool).is_some_and(|t| t.contains(&name))
    }

    /// The arguments of a call to `tool`, redacted.
    pub fn arguments(&self, tool: &str, arguments: &Value) -> Value {
        self.value(tool, arguments, false)
    }

    fn value(&self, tool: &str, value: &Value, plain: bool) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.value(tool, v, self.is_plain(tool, k))))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.value(tool, v, plain)).collect())
            }
            Value::Null => Value::Null,
            Value::String(s) if plain && !looks_secret(s) => value.clone(),
            Value::Number(_) | Value::Bool(_) if plain => value.clone(),
            other => Value::String(self.digest(other)),
        }
    }

    /// A resource's facts as the audit record keeps them (see
    /// `facts::Described::record`): in the clear, since they are what
    /// policy decided on, except tag values that hold secrets (by their
    /// name or their look), which are digested, and the reason, screened as
    /// an error text is.
    pub fn facts(&self, facts: &Value) -> Value {
        let mut out = facts.clone();
        for key in ["tags", "resource_group_tags"] {
            if let Some(Value::Object(tags)) = out.get_mut(key) {
                for (name, value) in tags.iter_mut() {
                    if value.as_str().is_none_or(|text| is_secret(name, text)) {
                        *value = Value::String(self.digest(value));
                    }
                }
            }
        }
        if let Some(reason) = facts.get("reason").and_then(Value::as_str) {
            out["reason"] = Value::String(self.message(reason));
        }
        out
    }

    /// A free-text message (an error) kept unless it looks like it holds a
    /// secret; bounded in length.
    pub fn message(&self, text: &str) -> String {
        if looks_secret(text) {
            return self.digest(&Value::String(text.to_owned()));
        }
        const MAX: usize = 2000;
        match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    }
}

/// Whether the argument `name` with value `value` holds a secret, which the
/// log always redacts and no page shows: its name says so (`password`,
/// `token`, `connection-string`, ...) or its value looks like one.
pub fn is_secret(name: &str, value: &str) -> bool {
    secret_name(&normalize(name)) || looks_secret(value)
}

/// Argument names that always hold secrets (normalized form).
fn secret_name(normalized: &str) -> bool {
    const SECRET: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "accountkey",
        "privatekey",
        "credential",
        "connectionstring",
        "sas",
        "signature",
        "certificate",
    ];
    SECRET.iter().any(|s| normalized.contains(s))
}

/// Values that look like secrets whatever their name: JWTs, storage and
/// Service Bus keys, SAS signatures, PEM blocks, connection strings with
/// credentials, URLs with a password, and long opaque key-like strings.
pub fn looks_secret(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    const MARKERS: &[&str] = &[
        "accountkey=",
        "sharedaccesskey=",
        "sharedaccesssignature=",
        "sig=",
        "password=",
        "pwd=",
        "client_secret=",
        "clientsecret=",
        "apikey=",
        "api_key=",
        "access_token=",
        "-----begin",
        "bearer ",
    ];
    if MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    if value
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .any(is_jwt)
    {
        return true;
    }
    if url_with_password(value) {
        return true;
    }
    // A long run of base64/hex characters (keys, tokens) that is not a
    // path such as an ARM resource id.
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+/=_-".contains(c)))
        .any(|word| {
            word.len() >= 40
                && word.chars().any(|c| c.is_ascii_digit())
                && word.chars().any(|c| c.is_ascii_alphabetic())
                && !word.starts_with('/')
                && word.matches('/').count() < 3
        })
}

fn is_jwt(word: &str) -> bool {
    let mut parts = word.split('.');
    let header = parts.next().unwrap_or_default();
    let payload = parts.next();
    header.starts_with("eyJ")
        && payload.is_some_and(|p| p.len() > 2)
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.=".contains(c))
}

fn url_with_password(value: &str) -> bool {
    value.split_whitespace().any(|word| {
        word.split_once("://").is_some_and(|(_, rest)| {
            let authority = rest.split('/').next().unwrap_or_default();
            authority
                .split_once('@')
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        let mut config = RedactionConfig::default();
        config.tools.insert("echo".into(), vec!["message".into()]);
        Redactor::new(b"test-key".to_vec(), &config)
    }

    #[test]
    fn resource_facts_stay_in_the_clear_but_secret_looking_tags() {
        let r = redactor();
        let facts = json!({
            "completeness": "complete",
            "location": "westeurope",
            "tags": {"env": "prod", "deploy-token": "abc", "conn": "Server=x;Password=hunter2"},
            "resource_group_tags": {"env": "prod"},
        });
        let out = r.facts(&facts);
        assert_eq!(out["completeness"], "complete");
        assert_eq!(out["location"], "westeurope");
        assert_eq!(out["tags"]["env"], "prod");
        assert_eq!(out["resource_group_tags"]["env"], "prod");
        for hidden in [&out["tags"]["deploy-token"], &out["tags"]["conn"]] {
            assert!(
                hidden.as_str().unwrap().starts_with("hmac-sha256:"),
                "{hidden}"
            );
        }
        let unavailable = json!({"completeness": "unavailable", "reason": "Azure answered 503"});
        assert_eq!(r.facts(&unavailable), unavailable);
    }

    #[test]
    fn allowlisted_names_stay_and_the_rest_is_hmac() {
        let r = redactor();
        let out = r.arguments(
            "vm_create",
            &json!({
                "subscription": "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
                "resource-group": "rg-web",
                "vm-name": "web-01",
                "location": "westeurope",
                "admin-password": "hunter2hunter2",
                "custom-data": "#!/bin/sh\necho hi",
                "count": 3,
                "tags": {"name": "web", "owner": "alice@example.com"},
                "nothing": null
            }),
        );
        assert_eq!(out["subscription"], "0b1f6471-1bf0-4dda-aec3-cb9272f09590");
        assert_eq!(out["resource-group"], "rg-web");
        assert_eq!(out["vm-name"], "web-01");
        assert_eq!(out["location"], "westeurope");
        assert_eq!(out["tags"]["name"], "web");
        assert_eq!(out["nothing"], Value::Null);
        for hidden in [
            &out["admin-password"],
            &out["custom-data"],
            &out["count"],
            &out["tags"]["owner"],
        ] {
            assert!(
                hidden.as_str().unwrap().starts_with("hmac-sha256:"),
                "{hidden}"
            );
        }
        // Deterministic under one key, different under another, 3 ≠ "3".
        assert_eq!(r.digest(&json!(3)), r.digest(&json!(3)));
        assert_ne!(r.digest(&json!(3)), r.digest(&json!("3")));
        let other = Redactor::new(b"other".to_vec(), &RedactionConfig::default());
        assert_ne!(other.digest(&json!(3)), r.digest(&json!(3)));
    }

    #[test]
    fn secret_looking_values_are_redacted_even_when_allowlisted() {
        let r = redactor();
        let secrets = [
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;EndpointSuffix=core.windows.net",
            "https://a.blob.core.windows.net/c?sv=2022-11-02&sig=abcdef%3D",
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
            "Server=tcp:db;Database=x;User ID=u;Password=p4ss;",
            "postgres://admin:s3cret@db.example.com/app",
            "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=Zm9vYmFy",
            "Kx9sd8f7G6h5J4k3L2m1N0pQ9rS8tU7vW6xY5zA4bC3dE2fG1hI0jK9lM8nO7pQ==",
        ];
        for secret in secrets {
            let out = r.arguments("echo", &json!({ "message": secret, "name": secret }));
            assert!(
                out["message"].as_str().unwrap().starts_with("hmac-sha256:"),
                "{secret}"
            );
            assert!(
                out["name"].as_str().unwrap().starts_with("hmac-sha256:"),
                "{secret}"
            );
        }
        let out = r.arguments(
            "echo",
            &json!({ "message": "hello world", "client-secret": "x" }),
        );
        assert_eq!(out["message"], "hello world");
        assert!(
            out["client-secret"]
                .as_str()
                .unwrap()
                .starts_with("hmac-sha256:")
        );
        // Resource ids are not mistaken for keys.
        let id = "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        assert!(!looks_secret(id));
        assert!(
            r.message("upstream said: AccountKey=abc")
                .starts_with("hmac-sha256:")
        );
        assert_eq!(r.message("not found"), "not found");
    }
}
