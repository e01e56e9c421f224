//! The Key Vault data plane (`https://<vault>.vault.azure.net`), secrets
//! only, for the key vaults of the simulated estate.
//!
//! A client reaches it through a proxy that forwards `*.vault.azure.net`
//! to the simulator keeping the `Host` header; `mod.rs` sends every request
//! whose `Host` is `<vault>.vault.azure.net` here. Tokens must be for Key
//! Vault (`aud` `https://vault.azure.net`); a request without one gets
//! Key Vault's challenge, `401` with `WWW-Authenticate: Bearer
//! authorization="<authority>/<tenant>", resource="https://vault.azure.net"`,
//! which Key Vault clients answer by fetching a token for that resource.
//!
//! Served, with `api-version` 7.x (and `2016-10-01`):
//!
//! | Method | Path |
//! |---|---|
//! | GET | `/secrets` (`maxresults` 1–25, `$skiptoken`) |
//! | GET PUT DELETE | `/secrets/{name}` (PUT: a new version; DELETE: soft delete) |
//! | GET | `/secrets/{name}/versions`, `/secrets/{name}/{version}` |
//! | GET | `/deletedsecrets`, `/deletedsecrets/{name}` |
//! | DELETE | `/deletedsecrets/{name}` (purge; refused under purge protection) |
//! | POST | `/deletedsecrets/{name}/recover` |
//!
//! Errors use Key Vault's envelope `{"error":{"code","message"}}`
//! (`SecretNotFound`, `BadParameter`, `Conflict` with `innererror`
//! `ObjectIsDeletedButRecoverable`, `Forbidden` with `SecretDisabled`).
//! Any valid caller may do anything (as for ARM, role assignments are not
//! enforced). Secrets go with their vault when it is deleted through ARM.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use serde_json::{Map, Value, json};
use tracing::{error, warn};

use super::routes::{ArmResponse, error_body};
use super::state::{self, RequestLog, Resource, Secret};
use super::{Shared, header, is_token_safe, parse_query, percent_decode};
use crate::identity::AuthError;

/// The resource Key Vault tokens are for, as its challenge names it.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Every `aud` Key Vault accepts.
pub const KEY_VAULT_AUDIENCES: [&str; 2] = ["https://vault.azure.net", "https://vault.azure.net/"];

/// The data plane's DNS suffix.
const HOST_SUFFIX: &str = ".vault.azure.net";

/// The newest api-version, named when another one is refused.
const LATEST_API_VERSION: &str = "7.6";

/// Largest page of a list (`maxresults`), also the default.
const MAX_RESULTS: usize = 25;

/// The vault a `Host` header value names (`kv-security.vault.azure.net`,
/// with or without a port), lower-cased.
pub(crate) fn vault_of_host(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(name, _)| name.to_owned())
        .unwrap_or(host);
    let vault = host.strip_suffix(HOST_SUFFIX)?;
    let valid = (3..=24).contains(&vault.len())
        && vault
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| vault.to_owned())
}

/// Whether Key Vault knows `version` (`7.0` … `7.6`, their previews,
/// `2016-10-01`, `2025-07-01`).
fn api_version_known(version: &str) -> bool {
    if matches!(version, "2016-10-01" | "2025-07-01") {
        return true;
    }
    let (release, preview) = match version.split_once("-preview") {
        Some((release, rest)) => (
            release,
            rest.is_empty()
                || rest
                    .strip_prefix('.')
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        ),
        None => (version, true),
    };
    preview
        && release
            .strip_prefix("7.")
            .is_some_and(|minor| matches!(minor, "0" | "1" | "2" | "3" | "4" | "5" | "6"))
}

/// One authenticated Key Vault request with a known `api-version`.
#[derive(Debug, Clone)]
pub(crate) struct VaultRequest {
    pub method: Method,
    /// The vault's name, from `Host`.
    pub vault: String,
    /// `https://<vault>.vault.azure.net` + the raw path, for logs.
    pub url: String,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    pub api_version: String,
    pub caller: String,
    pub correlation_id: String,
    pub now: DateTime<Utc>,
}

impl VaultRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What `dispatch` answers: the response and, for a served request, its
/// path pattern.
pub(crate) struct VaultOutcome {
    pub response: ArmResponse,
    pub pattern: Option<String>,
}

/// Every request for `<vault>.vault.azure.net`.
pub(crate) async fn serve(
    shared: &Shared,
    peer: SocketAddr,
    vault: String,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = header(headers, "x-ms-client-request-id").filter(|v| is_token_safe(v));
    let response = answer(shared, peer, vault, method, uri, headers, body).await;
    http_response(response, &request_id, client_request_id.as_deref())
}

async fn answer(
    shared: &Shared,
    peer: SocketAddr,
    vault: String,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> ArmResponse {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match shared
        .vault_auth
        .authenticate(authorization, Some(peer.ip()))
        .await
    {
        Ok(principal) => principal,
        Err(e) => {
            return auth_failure(
                &shared.authorization_uri,
                &e,
                headers.contains_key(axum::http::header::AUTHORIZATION),
            );
        }
    };
    let query = parse_query(uri.query().unwrap_or_default());
    let api_version = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(api_version) = api_version else {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI is missing the required query parameter 'api-version'.",
        );
    };
    if !api_version_known(&api_version) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!(
                "The specified version ({api_version}) is not recognized. Consider using the latest \
                 supported version ({LATEST_API_VERSION})."
            ),
        );
    }
    let mut segments = Vec::new();
    for raw in uri.path().split('/').filter(|s| !s.is_empty()) {
        match percent_decode(raw) {
            Some(segment) => segments.push(segment),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The request URI is not valid percent-encoded UTF-8.",
                );
            }
        }
    }
    let caller = match (&principal.client_app, principal.kind) {
        (Some(app), crate::identity::PrincipalKind::Application) => app.clone(),
        _ => principal.oid.clone(),
    };
    let request = VaultRequest {
        method,
        url: format!("https://{vault}{HOST_SUFFIX}{}", uri.path()),
        vault,
        segments,
        query,
        body,
        api_version,
        caller,
        correlation_id: header(headers, "x-ms-correlation-request-id")
            .filter(|v| is_token_safe(v))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        now: Utc::now(),
    };
    let db = shared.db.clone();
    let (method, url, api_version, caller) = (
        request.method.to_string(),
        request.url.clone(),
        request.api_version.clone(),
        request.caller.clone(),
    );
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conn = db.lock().unwrap_or_else(|e| e.into_inner());
        dispatch(&mut conn, &request)
    })
    .await;
    match outcome {
        Ok(outcome) => {
            shared.note(
                &method,
                outcome.pattern.as_deref().unwrap_or(&url),
                &api_version,
                &caller,
                outcome.pattern.is_none(),
            );
            outcome.response
        }
        Err(e) => {
            error!(error = %e, "Key Vault simulator: request task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "The simulator failed to handle the request; see its log.",
            )
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> ArmResponse {
    ArmResponse::new(status, Some(error_body(code, message)))
}

/// `401` with Key Vault's challenge (or `403`/`503`).
fn auth_failure(authorization_uri: &str, e: &AuthError, header_sent: bool) -> ArmResponse {
    let (status, code, message) = match e {
        AuthError::Missing(_) if !header_sent => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "AKV10000: Request is missing a Bearer or PoP token.".to_owned(),
        ),
        AuthError::BadAudience(detail) => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("AKV10022: Invalid audience ({detail}). Expected {KEY_VAULT_RESOURCE}."),
        ),
        AuthError::ClientNotAllowed(_)
        | AuthError::InsufficientScope(_)
        | AuthError::GroupsOverage => (
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("The caller is not authorized to perform this operation: {e}."),
        ),
        AuthError::KeysUnavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("Tokens cannot be validated right now: {e}."),
        ),
        _ => (
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("The access token is not valid: {e}."),
        ),
    };
    let response = error(status, code, &message);
    if status == StatusCode::UNAUTHORIZED {
        response.with_header(
            "www-authenticate",
            format!(
                "Bearer authorization=\"{authorization_uri}\", resource=\"{KEY_VAULT_RESOURCE}\""
            ),
        )
    } else {
        response
    }
}

fn http_response(
    response: ArmResponse,
    request_id: &str,
    client_request_id: Option<&str>,
) -> Response {
    super::azure_http_response(
        response,
        request_id,
        client_request_id,
        &[
            ("x-ms-keyvault-service-version", "1.9.0.0"),
            (
                "x-ms-keyvault-network-info",
                "conn_type=Ipv4;act_addr_fam=InterNetwork;",
            ),
        ],
    )
}

// ---------------------------------------------------------------------------
// Semantics (synchronous, one transaction)

/// Handles `request` in one transaction, then logs it.
pub(crate) fn dispatch(conn: &mut Connection, request: &VaultRequest) -> VaultOutcome {
    let outcome = match run(conn, request) {
        Ok(outcome) => outcome,
        Err(e) => {
            error!(error = %e, url = %request.url, "Key Vault simulator: database error");
            VaultOutcome {
                response: error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "The simulator's database failed; see its log.",
                ),
                pattern: route_pattern(request),
            }
        }
    };
    let log = RequestLog {
        time: request.now.to_rfc3339_opts(SecondsFormat::Micros, true),
        method: request.method.to_string(),
        path: request.url.clone(),
        api_version: request.api_version.clone(),
        status: outcome.response.status.as_u16(),
        caller: request.caller.clone(),
        correlation_id: request.correlation_id.clone(),
    };
    if let Err(e) = state::log_request(conn, &log) {
        warn!(error = %e, "Key Vault simulator: request not logged");
    }
    outcome
}

/// Why a request failed: Key Vault's answer (the transaction is rolled
/// back), or a database failure.
enum Failure {
    Answer(ArmResponse),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Db(e)
    }
}

type Outcome<T = ArmResponse> = Result<T, Failure>;

/// The served route of `request` as a pattern, or `None` when there is
/// none.
fn route_pattern(request: &VaultRequest) -> Option<String> {
    let lc: Vec<String> = request
        .segments
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let lc: Vec<&str> = lc.iter().map(String::as_str).collect();
    let m = &request.method;
    let path = match (lc.as_slice(), m) {
        (["secrets"], &Method::GET) => "/secrets",
        (["secrets", _], &Method::GET | &Method::PUT | &Method::DELETE) => "/secrets/{secretName}",
        (["secrets", _, "versions"], &Method::GET) => "/secrets/{secretName}/versions",
        (["secrets", _, _], &Method::GET) => "/secrets/{secretName}/{secretVersion}",
        (["deletedsecrets"], &Method::GET) => "/deletedsecrets",
        (["deletedsecrets", _], &Method::GET | &Method::DELETE) => "/deletedsecrets/{secretName}",
        (["deletedsecrets", _, "recover"], &Method::POST) => "/deletedsecrets/{secretName}/recover",
        _ => return None,
    };
    Some(format!("https://{{vaultName}}{HOST_SUFFIX}{path}"))
}

fn run(conn: &mut Connection, request: &VaultRequest) -> rusqlite::Result<VaultOutcome> {
    let Some(pattern) = route_pattern(request) else {
        return Ok(VaultOutcome {
            response: error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!(
                    "The simulator's Key Vault does not serve '{} {}' with api-version '{}'. It serves \
                     secrets: GET /secrets, GET PUT DELETE /secrets/{{name}}, GET /secrets/{{name}}/versions, \
                     GET /secrets/{{name}}/{{version}}, GET /deletedsecrets[/{{name}}], DELETE \
                     /deletedsecrets/{{name}}, POST /deletedsecrets/{{name}}/recover.",
                    request.method, request.url, request.api_version
                ),
            ),
            pattern: None,
        });
    };
    let tx = conn.transaction()?;
    let answer = |response| VaultOutcome {
        response,
        pattern: Some(pattern.clone()),
    };
    let response = match Vault::find(&tx, request)? {
        Ok(vault) => match vault.route() {
            Ok(response) => response,
            Err(Failure::Answer(response)) => return Ok(answer(response)),
            Err(Failure::Db(e)) => return Err(e),
        },
        Err(response) => return Ok(answer(response)),
    };
    tx.commit()?;
    Ok(answer(response))
}

/// A refusal (the transaction is rolled back).
fn refuse(status: StatusCode, code: &str, message: impl AsRef<str>) -> Failure {
    Failure::Answer(error(status, code, message.as_ref()))
}

/// Key Vault's answer for a secret that is not there.
fn not_found(what: &str) -> Failure {
    refuse(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        format!(
            "A secret with (name/id) {what} was not found in this key vault. If you recently deleted \
             this secret you may be able to recover it using the correct recovery command. For help \
             resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

/// One vault of the estate, handling one request.
struct Vault<'a> {
    c: &'a Connection,
    r: &'a VaultRequest,
    resource: Resource,
    /// `https://<vault>.vault.azure.net`, without a trailing slash.
    base: String,
}

impl<'a> Vault<'a> {
    /// The vault named by `Host`, or the answer when there is none.
    fn find(c: &'a Connection, r: &'a VaultRequest) -> rusqlite::Result<Result<Self, ArmResponse>> {
        let Some(resource) = state::find_vault(c, &r.vault)? else {
            return Ok(Err(error(
                StatusCode::NOT_FOUND,
                "VaultNotFound",
                &format!(
                    "The key vault '{}' does not exist in the simulated estate.",
                    r.vault
                ),
            )));
        };
        let base = resource.properties["vaultUri"]
            .as_str()
            .map(|uri| uri.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{}{HOST_SUFFIX}", r.vault));
        Ok(Ok(Vault {
            c,
            r,
            resource,
            base,
        }))
    }

    fn vault_lc(&self) -> String {
        self.resource.id.to_lowercase()
    }

    fn route(&self) -> Outcome {
        let seg = &self.r.segments;
        let lc = |i: usize| seg[i].to_ascii_lowercase();
        match (lc(0).as_str(), seg.len(), &self.r.method) {
            ("secrets", 1, _) => self.list(false),
            ("secrets", 2, &Method::GET) => self.get(&seg[1], None),
            ("secrets", 2, &Method::PUT) => self.set(&seg[1]),
            ("secrets", 2, _) => self.delete(&seg[1]),
            ("secrets", 3, _) if lc(2) == "versions" => self.versions(&seg[1]),
            ("secrets", 3, _) => self.get(&seg[1], Some(&seg[2])),
            ("deletedsecrets", 1, _) => self.list(true),
            ("deletedsecrets", 2, &Method::GET) => self.get_deleted(&seg[1]),
            ("deletedsecrets", 2, _) => self.purge(&seg[1]),
            _ => self.recover(&seg[1]),
        }
    }

    // Rendering

    /// `(recoveryLevel, recoverableDays)` of the vault's settings.
    fn recovery(&self) -> (&'static str, Option<i64>) {
        let p = &self.resource.properties;
        let soft_delete = p["enableSoftDelete"].as_bool().unwrap_or(true);
        let purge_protection = p["enablePurgeProtection"].as_bool().unwrap_or(false);
        let days = p["softDeleteRetentionInDays"].as_i64().unwrap_or(90);
        match (soft_delete, purge_protection) {
            (false, _) => ("Purgeable", None),
            (true, false) => ("Recoverable+Purgeable", Some(days)),
            (true, true) => ("Recoverable", Some(days)),
        }
    }

    fn attributes(&self, s: &Secret) -> Value {
        let (level, days) = self.recovery();
        let mut attributes = json!({
            "enabled": s.enabled,
            "created": s.created,
            "updated": s.updated,
            "recoveryLevel": level,
        });
        if let Some(days) = days {
            attributes["recoverableDays"] = json!(days);
        }
        if let Some(nbf) = s.not_before {
            attributes["nbf"] = json!(nbf);
        }
        if let Some(exp) = s.expires {
            attributes["exp"] = json!(exp);
        }
        attributes
    }

    /// A `SecretItem` (lists) or, with the value, a `SecretBundle`.
    fn render(&self, s: &Secret, with_version: bool, with_value: bool) -> Value {
        let id = if with_version {
            format!("{}/secrets/{}/{}", self.base, s.name, s.version)
        } else {
            format!("{}/secrets/{}", self.base, s.name)
        };
        let mut doc = json!({ "id": id, "attributes": self.attributes(s) });
        if with_value {
            doc = json!({ "value": s.value, "id": id, "attributes": self.attributes(s) });
        }
        if let Some(content_type) = &s.content_type {
            doc["contentType"] = json!(content_type);
        }
        if !s.tags.is_empty() {
            doc["tags"] = Value::Object(s.tags.clone());
        }
        doc
    }

    /// A `DeletedSecretBundle` / `DeletedSecretItem` (no value).
    fn render_deleted(&self, s: &Secret, with_version: bool) -> Value {
        let mut doc = self.render(s, with_version, false);
        let deleted = s.deleted.unwrap_or(s.updated);
        let (_, days) = self.recovery();
        doc["recoveryId"] = json!(format!("{}/deletedsecrets/{}", self.base, s.name));
        doc["deletedDate"] = json!(deleted);
        doc["scheduledPurgeDate"] = json!(deleted + days.unwrap_or(0) * 86_400);
        doc
    }

    // Operations

    fn versions_of(&self, name: &str) -> Outcome<Vec<Secret>> {
        validate_name(name)?;
        let versions = state::secret_versions(self.c, &self.vault_lc(), name)?;
        if versions.is_empty() || versions.iter().any(|v| v.deleted.is_some()) {
            return Err(not_found(name));
        }
        Ok(versions)
    }

    fn get(&self, name: &str, version: Option<&str>) -> Outcome {
        let versions = self.versions_of(name)?;
        let secret = match version {
            None => versions.last(),
            Some(v) => versions.iter().find(|s| s.version.eq_ignore_ascii_case(v)),
        };
        let Some(secret) = secret else {
            return Err(not_found(&format!(
                "{name}/{}",
                version.unwrap_or_default()
            )));
        };
        if !secret.enabled {
            return Err(Failure::Answer(ArmResponse::new(
                StatusCode::FORBIDDEN,
                Some(json!({ "error": {
                    "code": "Forbidden",
                    "message": "Operation get is not allowed on a disabled secret.",
                    "innererror": { "code": "SecretDisabled" },
                }})),
            )));
        }
        Ok(ArmResponse::new(
            StatusCode::OK,
            Some(self.render(secret, true, true)),
        ))
    }

    fn set(&self, name: &str) -> Outcome {
        validate_name(name)?;
        let body: Value = serde_json::from_slice(&self.r.body).map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                format!("The request body is not valid JSON: {e}."),
            )
        })?;
        let Some(value) = body.get("value").and_then(Value::as_str) else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "Property 'value' is required and must be a string.",
            ));
        };
        if value.len() > 25 * 1024 {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The secret value exceeds 25 KB.",
            ));
        }
        let tags = match body.get("tags") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(tags)) if tags.values().all(Value::is_string) => tags.clone(),
            Some(_) => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "Property 'tags' must be an object of strings.",
                ));
            }
        };
        let attributes = body.get("attributes").cloned().unwrap_or(Value::Null);
        let time = |field: &str| -> Outcome<Option<i64>> {
            match attributes.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        format!("Attribute '{field}' must be a Unix time in seconds."),
                    )
                }),
            }
        };
        let existing = state::secret_versions(self.c, &self.vault_lc(), name)?;
        if existing.iter().any(|s| s.deleted.is_some()) {
            return Err(Failure::Answer(ArmResponse::new(
                StatusCode::CONFLICT,
                Some(json!({ "error": {
                    "code": "Conflict",
                    "message": format!(
                        "Secret {name} is currently in a deleted but recoverable state, and its name cannot be \
                         reused; in this state, the secret can only be recovered or purged."
                    ),
                    "innererror": { "code": "ObjectIsDeletedButRecoverable" },
                }})),
            )));
        }
        let now = self.r.now.timestamp();
        let secret = Secret {
            vault_lc: self.vault_lc(),
            name: existing
                .first()
                .map(|s| s.name.clone())
                .unwrap_or_else(|| name.to_owned()),
            version: uuid::Uuid::new_v4().simple().to_string(),
            value: value.to_owned(),
            content_type: body
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_owned),
            tags,
            enabled: attributes
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            not_before: time("nbf")?,
            expires: time("exp")?,
            created: now,
            updated: now,
            deleted: None,
        };
        state::insert_secret(self.c, &secret)?;
        Ok(ArmResponse::new(
            StatusCode::OK,
            Some(self.render(&secret, true, true)),
        ))
    }

    fn delete(&self, name: &str) -> Outcome {
        let versions = self.versions_of(name)?;
        let mut latest = versions.last().cloned().ok_or_else(|| not_found(name))?;
        let (level, _) = self.recovery();
        let when = self.r.now.timestamp();
        if level == "Purgeable" {
            state::purge_secret(self.c, &self.vault_lc(), name)?;
        } else {
            state::set_secret_deleted(self.c, &self.vault_lc(), name, Some(when))?;
        }
        latest.deleted = Some(when);
        let mut doc = self.render_deleted(&latest, true);
        if level == "Purgeable" {
            for field in ["recoveryId", "deletedDate", "scheduledPurgeDate"] {
                if let Some(map) = doc.as_object_mut() {
                    map.remove(field);
                }
            }
        }
        Ok(ArmResponse::new(StatusCode::OK, Some(doc)))
    }

    fn versions(&self, name: &str) -> Outcome {
        let versions = self.versions_of(name)?;
        let items: Vec<Value> = versions
            .iter()
            .map(|s| self.render(s, true, false))
            .collect();
        self.page(items, &format!("secrets/{name}/versions"))
    }

    fn list(&self, deleted: bool) -> Outcome {
        let secrets = state::latest_secrets(self.c, &self.vault_lc(), deleted)?;
        let items: Vec<Value> = secrets
            .iter()
            .map(|s| {
                if deleted {
                    self.render_deleted(s, false)
                } else {
                    self.render(s, false, false)
                }
            })
            .collect();
        self.page(items, if deleted { "deletedsecrets" } else { "secrets" })
    }

    /// One page of `items` (`maxresults`, `$skiptoken`), with `nextLink`.
    fn page(&self, items: Vec<Value>, path: &str) -> Outcome {
        let max = match self.r.param("maxresults") {
            None => MAX_RESULTS,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_RESULTS).contains(n))
                .ok_or_else(|| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "BadParameter",
                        format!("maxresults must be a number from 1 to {MAX_RESULTS}, not '{v}'."),
                    )
                })?,
        };
        let skip = match self.r.param("$skiptoken") {
            None => 0,
            Some(token) => token.parse::<usize>().map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "BadParameter",
                    "The $skiptoken is not one this vault issued.",
                )
            })?,
        };
        let end = skip.saturating_add(max).min(items.len());
        let page = items.get(skip.min(end)..end).unwrap_or(&[]).to_vec();
        let next = (end < items.len()).then(|| {
            let host = self.base.trim_start_matches("https://");
            format!(
                "https://{host}:443/{path}?api-version={}&$skiptoken={end}&maxresults={max}",
                self.r.api_version
            )
        });
        Ok(ArmResponse::new(
            StatusCode::OK,
            Some(json!({ "value": page, "nextLink": next })),
        ))
    }

    fn deleted_versions(&self, name: &str) -> Outcome<Vec<Secret>> {
        validate_name(name)?;
        let versions = state::secret_versions(self.c, &self.vault_lc(), name)?;
        if versions.is_empty() || versions.iter().any(|v| v.deleted.is_none()) {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "SecretNotFound",
                format!("Deleted Secret not found: {name}"),
            ));
        }
        Ok(versions)
    }

    fn get_deleted(&self, name: &str) -> Outcome {
        let versions = self.deleted_versions(name)?;
        let latest = versions.last().ok_or_else(|| not_found(name))?;
        Ok(ArmResponse::new(
            StatusCode::OK,
            Some(self.render_deleted(latest, true)),
        ))
    }

    fn purge(&self, name: &str) -> Outcome {
        self.deleted_versions(name)?;
        if self.recovery().0 == "Recoverable" {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "Operation \"purge\" is not allowed because purge protection is enabled for this vault. \
                     Key Vault service will automatically purge '{name}' after the retention period has passed."
                ),
            ));
        }
        state::purge_secret(self.c, &self.vault_lc(), name)?;
        Ok(ArmResponse::new(StatusCode::NO_CONTENT, None))
    }

    fn recover(&self, name: &str) -> Outcome {
        let versions = self.deleted_versions(name)?;
        state::set_secret_deleted(self.c, &self.vault_lc(), name, None)?;
        let mut latest = versions.last().cloned().ok_or_else(|| not_found(name))?;
        latest.deleted = None;
        Ok(ArmResponse::new(
            StatusCode::OK,
            Some(self.render(&latest, true, false)),
        ))
    }
}

/// Secret names: 1–127 letters, digits and dashes.
fn validate_name(name: &str) -> Outcome<()> {
    let valid = (1..=127).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(refuse(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!(
                "The request URI contains an invalid name: {name}. Secret names are 1-127 letters, \
                 digits and dashes."
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_from_hosts() {
        assert_eq!(
            vault_of_host("kv-security.vault.azure.net").as_deref(),
            Some("kv-security")
        );
        assert_eq!(
            vault_of_host("KV-Security.Vault.Azure.Net:443").as_deref(),
            Some("kv-security")
        );
        assert_eq!(vault_of_host("management.azure.com"), None);
        assert_eq!(vault_of_host("127.0.0.1:8789"), None);
        assert_eq!(vault_of_host(".vault.azure.net"), None);
        assert_eq!(vault_of_host("a.b.vault.azure.net"), None);
    }

    #[test]
    fn known_api_versions() {
        for v in [
            "7.4",
            "7.5",
            "7.6",
            "7.0",
            "7.3-preview",
            "7.6-preview.2",
            "2016-10-01",
        ] {
            assert!(api_version_known(v), "{v}");
        }
        for v in ["7.9", "8.0", "2024-03-01", "7.5-preview.x", "7", ""] {
            assert!(!api_version_known(v), "{v}");
        }
    }

    #[test]
    fn secret_names() {
        assert!(validate_name("db-password").is_ok());
        assert!(validate_name(&"a".repeat(127)).is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("db_password").is_err());
        assert!(validate_name(&"a".repeat(128)).is_err());
    }
}
