//! The Azure Monitor Logs Ingestion API of a data collection endpoint
//! (`https://<dce>.<region>.ingest.monitor.azure.com`), which Warden's
//! SIEM feed ships to (`log_analytics` sinks):
//!
//! `POST /dataCollectionRules/{dcrImmutableId}/streams/{streamName}?api-version=2023-01-01`
//! with a JSON array of objects; `204 No Content` when taken.
//!
//! The simulator knows the data collection rules of its estate (the demo
//! rule [`DEV_DCR_IMMUTABLE_ID`] with the stream [`DEV_DCR_STREAM`], and
//! those a test adds with [`super::Simulator::add_data_collection_rule`]),
//! in memory, and keeps every batch it took ([`super::Simulator::ingested`],
//! `GET /_sim/ingested`), in order, so tests read back what was shipped.
//!
//! In order, a request is answered:
//!
//! - `429 TooManyRequests` with `Retry-After` while the simulator is
//!   throttled ([`super::Simulator::throttle`], shared with ARM);
//! - `503 ServiceUnavailable` with `Retry-After` for the next requests
//!   [`super::Simulator::fail_ingestion`] names (a receiver that is down);
//! - `401`/`403` as for ARM when the bearer token is missing or not valid
//!   for Azure Monitor (`aud` `https://monitor.azure.com`, the token of
//!   scope `https://monitor.azure.com/.default`);
//! - `400 MissingApiVersionParameter` without an `api-version`;
//! - `404 NotFound`, `Data collection rule with immutable Id '<id>' not
//!   found.`, for a rule it does not know (Azure's answer);
//! - `400 InvalidStream` for a stream the rule does not declare;
//! - `413 ContentLengthLimitExceeded` for a body over 1 MB;
//! - `400 InvalidPayload` for a body that is not a JSON array of objects
//!   (a compressed body, `Content-Encoding: gzip`, is not decoded);
//! - `204 No Content` otherwise, the rows kept.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use super::routes::ArmResponse;
use super::{Shared, auth_failure, azure_http_response, header, is_token_safe, parse_query};
use crate::identity::PrincipalKind;

/// The immutable id of the demo estate's data collection rule.
pub const DEV_DCR_IMMUTABLE_ID: &str = "dcr-7a2e41c0b3d54f6e9a8b1c2d3e4f5a6b";

/// The stream of the demo rule (a custom table `WardenAudit_CL`).
pub const DEV_DCR_STREAM: &str = "Custom-WardenAudit_CL";

/// Every `aud` the Logs Ingestion API accepts.
pub const MONITOR_AUDIENCES: [&str; 2] =
    ["https://monitor.azure.com", "https://monitor.azure.com/"];

/// The largest body taken (1 MB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The route's pattern, as [`super::Simulator::calls`] names it.
pub const ROUTE: &str = "/dataCollectionRules/{dcrImmutableId}/streams/{streamName}";

/// One batch the simulator took.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ingested {
    /// The rule's immutable id, as the request named it.
    pub dcr_immutable_id: String,
    pub stream: String,
    pub api_version: String,
    /// Who sent it (an application's app id, a user's object id).
    pub caller: String,
    /// The rows, in the order sent.
    pub rows: Vec<Value>,
}

/// The rules and what was ingested.
#[derive(Debug, Default)]
pub(crate) struct Ingestion {
    /// Immutable id (lower-case) → its streams.
    rules: BTreeMap<String, Vec<String>>,
    pub(crate) ingested: Vec<Ingested>,
    /// Requests still to fail with 503.
    pub(crate) fail_next: u32,
}

impl Ingestion {
    /// The demo rule.
    pub(crate) fn seeded() -> Ingestion {
        let mut ingestion = Ingestion::default();
        ingestion.add_rule(DEV_DCR_IMMUTABLE_ID, &[DEV_DCR_STREAM]);
        ingestion
    }

    pub(crate) fn add_rule(&mut self, immutable_id: &str, streams: &[&str]) {
        self.rules.insert(
            immutable_id.to_ascii_lowercase(),
            streams.iter().map(|s| (*s).to_owned()).collect(),
        );
    }
}

/// Whether `path` is the Logs Ingestion API's.
pub(super) fn is_ingestion_path(path: &str) -> bool {
    path.get(..21)
        .is_some_and(|start| start.eq_ignore_ascii_case("/dataCollectionRules/"))
}

fn error(status: StatusCode, code: &str, message: &str) -> ArmResponse {
    ArmResponse::error(status, code, message)
}

/// A Logs Ingestion request.
pub(super) async fn serve(
    shared: &Shared,
    peer: SocketAddr,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = header(headers, "x-ms-client-request-id").filter(|v| is_token_safe(v));
    let response = answer(shared, peer, method, uri, headers, body).await;
    azure_http_response(response, &request_id, client_request_id.as_deref(), &[])
}

async fn answer(
    shared: &Shared,
    peer: SocketAddr,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> ArmResponse {
    let retry_after = shared.settings.retry_after_secs;
    let throttled = shared
        .throttle
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if throttled {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!(
                "Too many requests (simulated throttling). Please retry after {retry_after} seconds."
            ),
        )
        .with_header("retry-after", retry_after.to_string());
    }
    let failing = {
        let mut ingestion = shared.ingestion.lock().unwrap_or_else(|e| e.into_inner());
        let failing = ingestion.fail_next > 0;
        ingestion.fail_next = ingestion.fail_next.saturating_sub(1);
        failing
    };
    if failing {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            &format!(
                "The service is temporarily unavailable (simulated). Please retry after {retry_after} seconds."
            ),
        )
        .with_header("retry-after", retry_after.to_string());
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let principal = match shared
        .monitor_auth
        .authenticate(authorization, Some(peer.ip()))
        .await
    {
        Ok(principal) => principal,
        Err(e) => return auth_failure(shared, &e, headers.contains_key(AUTHORIZATION)),
    };
    let caller = match (&principal.client_app, principal.kind) {
        (Some(app), PrincipalKind::Application) => app.clone(),
        _ => principal.oid.clone(),
    };
    let query = parse_query(uri.query().unwrap_or_default());
    let Some(api_version) = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let segments: Vec<String> = uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| super::percent_decode(s).unwrap_or_else(|| s.to_owned()))
        .collect();
    let [_, dcr, streams, stream] = segments.as_slice() else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!(
                "No route for {method} {}: the Logs Ingestion API is POST {ROUTE}.",
                uri.path()
            ),
        );
    };
    if !streams.eq_ignore_ascii_case("streams") {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("No route for {method} {}.", uri.path()),
        );
    }
    if method != Method::POST {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The Logs Ingestion API takes POST, not {method}."),
        );
    }
    let declared = {
        let ingestion = shared.ingestion.lock().unwrap_or_else(|e| e.into_inner());
        ingestion.rules.get(&dcr.to_ascii_lowercase()).cloned()
    };
    let Some(declared) = declared else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Data collection rule with immutable Id '{dcr}' not found."),
        );
    };
    if !declared.iter().any(|s| s == stream) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidStream",
            &format!(
                "Stream '{stream}' is not declared in data collection rule with immutable Id '{dcr}'."
            ),
        );
    }
    if body.len() > MAX_BODY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ContentLengthLimitExceeded",
            &format!(
                "Maximum allowed content length: {MAX_BODY_BYTES} bytes (1 MB). Provided content length: {} bytes.",
                body.len()
            ),
        );
    }
    let encoded =
        header(headers, "content-encoding").filter(|e| !e.eq_ignore_ascii_case("identity"));
    let rows = match (&encoded, serde_json::from_slice::<Value>(&body)) {
        (None, Ok(Value::Array(rows))) if rows.iter().all(Value::is_object) => rows,
        (Some(encoding), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPayload",
                &format!("The simulator does not decode Content-Encoding {encoding}."),
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidPayload",
                "The request body must be a JSON array of objects.",
            );
        }
    };
    shared.note("POST", ROUTE, &api_version, &caller, false);
    shared
        .ingestion
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ingested
        .push(Ingested {
            dcr_immutable_id: dcr.clone(),
            stream: stream.clone(),
            api_version,
            caller,
            rows,
        });
    ArmResponse::new(StatusCode::NO_CONTENT, None)
}
