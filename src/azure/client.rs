//! The Azure Resource Manager REST client: bearer tokens from an
//! `azure_identity` credential, one correlation id per logical call,
//! retries with backoff (honouring `Retry-After`), long-running operations
//! polled to completion within a bound, and ARM error envelopes turned into
//! errors that say what Azure said.
//!
//! Retries: `429` always (the request was not processed); `5xx` and
//! transport errors for `GET`, `HEAD`, `PUT`, `PATCH` and `DELETE` (ARM
//! makes them idempotent) but not `POST`, which may have acted. A
//! `Retry-After` longer than `max_retry_after` fails the call at once with
//! the wait Azure asked for.
//!
//! Long-running operations: a `201`/`202` with `Azure-AsyncOperation` is
//! polled there until its `status` is `Succeeded`, `Failed` or `Canceled`
//! (then `Location`, if given, is read for the result); with only
//! `Location`, that URL is polled until it stops answering `202`. Polls wait
//! `Retry-After` (else `lro_poll_interval`) and stop at `lro_timeout`. Poll
//! URLs must be on the ARM endpoint's host, so the token never goes
//! elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// The correlation header ARM echoes and records in the activity log.
pub const CORRELATION_HEADER: &str = "x-ms-correlation-request-id";

/// `[azure.arm]`: where ARM is and how patient to be with it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArmConfig {
    /// The ARM endpoint: `https://management.azure.com` (public cloud),
    /// `https://management.usgovcloudapi.net`, `https://management.chinacloudapi.cn`.
    pub endpoint: String,
    /// The token audience; default: the endpoint with a trailing `/`.
    /// Tokens are requested for `<audience>.default`.
    pub audience: Option<String>,
    /// Limit of one HTTP exchange.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff; doubled each retry, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_delay: Duration,
    /// The longest `Retry-After` waited for; a longer one fails the call.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// How long a long-running operation may take.
    #[serde(with = "humantime_serde")]
    pub lro_timeout: Duration,
    /// Wait between polls when Azure gives no `Retry-After`.
    #[serde(with = "humantime_serde")]
    pub lro_poll_interval: Duration,
    /// `api-version` per resource type (lower-case `namespace/type`),
    /// overriding the built-in table.
    pub api_versions: BTreeMap<String, String>,
}

impl Default for ArmConfig {
    fn default() -> Self {
        ArmConfig {
            endpoint: "https://management.azure.com".into(),
            audience: None,
            timeout: Duration::from_secs(60),
            max_retries: 4,
            retry_delay: Duration::from_millis(800),
            max_retry_after: Duration::from_secs(60),
            lro_timeout: Duration::from_secs(600),
            lro_poll_interval: Duration::from_secs(5),
            api_versions: BTreeMap::new(),
        }
    }
}

impl ArmConfig {
    /// Checks the values (keys named as in `warden.toml`).
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| format!("azure.arm.endpoint: {:?} is not a URL: {e}", self.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "azure.arm.endpoint: {:?} must be an http(s) URL with a host",
                self.endpoint
            ));
        }
        if self.timeout.is_zero() || self.lro_timeout.is_zero() {
            return Err("azure.arm.timeout and lro_timeout must be more than 0s".into());
        }
        if self.max_retries > 10 {
            return Err("azure.arm.max_retries: at most 10".into());
        }
        Ok(())
    }

    /// The token scope: `<audience>.default`.
    pub fn scope(&self) -> String {
        let audience = self
            .audience
            .clone()
            .unwrap_or_else(|| format!("{}/", self.endpoint.trim_end_matches('/')));
        format!("{audience}.default")
    }
}

/// Built-in `api-version`s, by lower-case resource type.
const API_VERSIONS: &[(&str, &str)] = &[
    ("microsoft.resources/subscriptions", "2022-12-01"),
    ("microsoft.resources/resourcegroups", "2021-04-01"),
    ("microsoft.resources/resources", "2021-04-01"),
    ("microsoft.resources/tags", "2021-04-01"),
    ("microsoft.compute/virtualmachines", "2024-07-01"),
    ("microsoft.compute/disks", "2024-03-02"),
    ("microsoft.storage/storageaccounts", "2023-05-01"),
    ("microsoft.keyvault/vaults", "2023-07-01"),
    ("microsoft.network/virtualnetworks", "2024-05-01"),
    ("microsoft.authorization/roleassignments", "2022-04-01"),
    ("microsoft.authorization/roledefinitions", "2022-04-01"),
    ("microsoft.insights/eventtypes", "2015-04-01"),
];

/// A successful ARM answer (after retries and polling).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmResponse {
    pub status: u16,
    /// The JSON body (`null` when empty or not JSON).
    pub body: Value,
    /// The `x-ms-correlation-request-id` of the call (sent by Warden, echoed
    /// by ARM, recorded in Azure's activity log).
    pub correlation_id: String,
}

/// Why an ARM call failed. Every variant names the call and carries its
/// correlation id where one was sent.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArmError {
    #[error("{call}: Azure answered {status} {code}: {message}")]
    Api {
        call: String,
        status: u16,
        code: String,
        message: String,
        correlation_id: String,
    },
    #[error("{call}: no token for Azure Resource Manager: {detail}")]
    Credential { call: String, detail: String },
    #[error("{call}: {detail}")]
    Transport {
        call: String,
        detail: String,
        correlation_id: String,
    },
    #[error(
        "{call}: throttled by Azure, which asks to retry after {after:?} (more than the {limit:?} Warden waits)"
    )]
    Throttled {
        call: String,
        after: Duration,
        limit: Duration,
        correlation_id: String,
    },
    #[error(
        "{call}: the operation did not finish within {timeout:?} (it may still complete in Azure)"
    )]
    LroTimeout {
        call: String,
        timeout: Duration,
        correlation_id: String,
    },
    #[error("{call}: the operation ended {status}: {code}: {message}")]
    LroFailed {
        call: String,
        status: String,
        code: String,
        message: String,
        correlation_id: String,
    },
    #[error("{call}: {detail}")]
    Invalid { call: String, detail: String },
}

impl ArmError {
    /// The correlation id of the failed call, when a request was sent.
    pub fn correlation_id(&self) -> Option<&str> {
        match self {
            ArmError::Api { correlation_id, .. }
            | ArmError::Transport { correlation_id, .. }
            | ArmError::Throttled { correlation_id, .. }
            | ArmError::LroTimeout { correlation_id, .. }
            | ArmError::LroFailed { correlation_id, .. } => Some(correlation_id),
            ArmError::Credential { .. } | ArmError::Invalid { .. } => None,
        }
    }

    /// The HTTP status ARM answered, for an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The ARM client. Cheap to share (`Arc`).
pub struct ArmClient {
    config: ArmConfig,
    base: reqwest::Url,
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

/// One logical call: its method, path and correlation id.
struct Call<'a> {
    method: &'a Method,
    label: String,
    correlation_id: String,
}

impl ArmClient {
    pub fn new(config: ArmConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, String> {
        config.validate()?;
        let base = reqwest::Url::parse(&config.endpoint).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(ArmClient {
            config,
            base,
            http,
            credential,
        })
    }

    pub fn config(&self) -> &ArmConfig {
        &self.config
    }

    /// The `api-version` for a resource type (`Microsoft.Compute/virtualMachines`):
    /// the configured one, else the built-in table's.
    pub fn api_version(&self, resource_type: &str) -> Option<String> {
        let key = resource_type.to_ascii_lowercase();
        self.config.api_versions.get(&key).cloned().or_else(|| {
            API_VERSIONS
                .iter()
                .find(|(t, _)| *t == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Performs `method path?api-version=..&query` with `body`, retrying and
    /// polling as described in the module documentation.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<ArmResponse, ArmError> {
        let call = Call {
            method: &method,
            label: format!("{method} {path}"),
            correlation_id: uuid::Uuid::new_v4().to_string(),
        };
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(ArmError::Invalid {
                call: call.label,
                detail: "the path must start with `/` and carry no query string".into(),
            });
        }
        // Defence in depth: whatever built the path, a relative or empty
        // segment never reaches Azure (`a/../../b` would address another
        // resource than the one policy decided on).
        if let Some((segment, problem)) = path[1..]
            .split('/')
            .find_map(|s| crate::azure::id::segment_problem(s).map(|p| (s, p)))
        {
            return Err(ArmError::Invalid {
                call: call.label,
                detail: format!("the path segment {segment:?} is not valid: {problem}"),
            });
        }
        let mut url = self.base.clone();
        url.set_path(path);
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("api-version", api_version);
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let (status, headers, body) = self.send(&call, &method, url, body).await?;
        if (status == StatusCode::CREATED || status == StatusCode::ACCEPTED)
            && let Some(done) = self.follow(&call, &headers, status, body.clone()).await?
        {
            return Ok(done);
        }
        Ok(ArmResponse {
            status: status.as_u16(),
            body,
            correlation_id: call.correlation_id,
        })
    }

    /// One exchange with retries: the final status, headers and JSON body of
    /// a success; an error for anything else.
    async fn send(
        &self,
        call: &Call<'_>,
        method: &Method,
        url: reqwest::Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, Value), ArmError> {
        let idempotent = *method != Method::POST;
        let mut attempt = 0u32;
        loop {
            let token = self.token(call).await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token)
                .header(CORRELATION_HEADER, &call.correlation_id)
                .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
            if let Some(body) = body {
                request = request.json(body);
            }
            let wait = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let bytes = response.bytes().await.map_err(|e| ArmError::Transport {
                        call: call.label.clone(),
                        detail: format!("reading the answer: {e}"),
                        correlation_id: call.correlation_id.clone(),
                    })?;
                    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if status.is_success() {
                        return Ok((status, headers, json));
                    }
                    let retryable = status == StatusCode::TOO_MANY_REQUESTS
                        || (status.is_server_error() && idempotent);
                    if !retryable || attempt >= self.config.max_retries {
                        return Err(api_error(call, status, &json, &bytes));
                    }
                    match retry_after(&headers) {
                        Some(after) if after > self.config.max_retry_after => {
                            return Err(ArmError::Throttled {
                                call: call.label.clone(),
                                after,
                                limit: self.config.max_retry_after,
                                correlation_id: call.correlation_id.clone(),
                            });
                        }
                        Some(after) => after,
                        None => self.backoff(attempt),
                    }
                }
                Err(error) => {
                    // A request that never reached Azure may be retried
                    // whatever its method; one that may have, only if it is
                    // idempotent.
                    let unsent = error.is_connect();
                    if !(unsent || idempotent) || attempt >= self.config.max_retries {
                        return Err(ArmError::Transport {
                            call: call.label.clone(),
                            detail: transport_detail(&error),
                            correlation_id: call.correlation_id.clone(),
                        });
                    }
                    self.backoff(attempt)
                }
            };
            attempt += 1;
            tracing::debug!(call = %call.label, attempt, wait_ms = wait.as_millis() as u64, "retrying ARM request");
            tokio::time::sleep(wait).await;
        }
    }

    /// Polls a long-running operation to its end; `None` when the answer
    /// is not one.
    async fn follow(
        &self,
        call: &Call<'_>,
        headers: &HeaderMap,
        status: StatusCode,
        body: Value,
    ) -> Result<Option<ArmResponse>, ArmError> {
        let async_op = header_url(headers, "azure-asyncoperation");
        let location = header_url(headers, "location");
        if async_op.is_none() && location.is_none() {
            return Ok(None);
        }
        let started = Instant::now();
        let mut wait = retry_after(headers).unwrap_or(self.config.lro_poll_interval);
        if let Some(url) = async_op {
            let url = self.poll_url(call, &url)?;
            loop {
                self.pause(call, started, wait).await?;
                let (_, headers, state) = self.send(call, &Method::GET, url.clone(), None).await?;
                let status = state
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("InProgress")
                    .to_owned();
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => break,
                    "failed" | "canceled" | "cancelled" => {
                        let error = state.get("error").cloned().unwrap_or(Value::Null);
                        return Err(ArmError::LroFailed {
                            call: call.label.clone(),
                            status,
                            code: string_at(&error, "code").unwrap_or_else(|| "Unknown".into()),
                            message: string_at(&error, "message")
                                .unwrap_or_else(|| "no error details".into()),
                            correlation_id: call.correlation_id.clone(),
                        });
                    }
                    _ => wait = retry_after(&headers).unwrap_or(self.config.lro_poll_interval),
                }
            }
            // The result: at Location when given (POST actions), else the
            // resource itself for PUT/PATCH, else the operation's start.
            let result = match (&location, call.method) {
                (Some(url), _) => {
                    let url = self.poll_url(call, url)?;
                    let (status, _, body) = self.send(call, &Method::GET, url, None).await?;
                    (status.as_u16(), body)
                }
                _ => (status.as_u16(), body),
            };
            return Ok(Some(ArmResponse {
                status: if result.0 == 202 { 200 } else { result.0 },
                body: result.1,
                correlation_id: call.correlation_id.clone(),
            }));
        }
        let url = self.poll_url(call, location.as_deref().unwrap_or_default())?;
        loop {
            self.pause(call, started, wait).await?;
            let (status, headers, body) = self.send(call, &Method::GET, url.clone(), None).await?;
            if status != StatusCode::ACCEPTED {
                return Ok(Some(ArmResponse {
                    status: status.as_u16(),
                    body,
                    correlation_id: call.correlation_id.clone(),
                }));
            }
            wait = retry_after(&headers).unwrap_or(self.config.lro_poll_interval);
        }
    }

    /// Sleeps `wait` unless that would pass the operation's deadline.
    async fn pause(
        &self,
        call: &Call<'_>,
        started: Instant,
        wait: Duration,
    ) -> Result<(), ArmError> {
        let wait = wait.min(self.config.max_retry_after);
        if started.elapsed() + wait > self.config.lro_timeout {
            return Err(ArmError::LroTimeout {
                call: call.label.clone(),
                timeout: self.config.lro_timeout,
                correlation_id: call.correlation_id.clone(),
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// A poll URL from a header: absolute, and on the endpoint's host.
    fn poll_url(&self, call: &Call<'_>, url: &str) -> Result<reqwest::Url, ArmError> {
        let parsed = reqwest::Url::parse(url).or_else(|_| self.base.join(url));
        match parsed {
            Ok(u)
                if u.scheme() == self.base.scheme()
                    && u.host_str() == self.base.host_str()
                    && u.port_or_known_default() == self.base.port_or_known_default() =>
            {
                Ok(u)
            }
            _ => Err(ArmError::Invalid {
                call: call.label.clone(),
                detail: format!(
                    "Azure named a status URL {url:?} outside {}; not followed",
                    self.config.endpoint
                ),
            }),
        }
    }

    async fn token(&self, call: &Call<'_>) -> Result<String, ArmError> {
        let scope = self.config.scope();
        self.credential
            .get_token(&[scope.as_str()], None)
            .await
            .map(|t| t.token.secret().to_owned())
            .map_err(|e| ArmError::Credential {
                call: call.label.clone(),
                detail: e.to_string(),
            })
    }

    /// Exponential backoff with jitter: delay × 2^attempt × [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.retry_delay.saturating_mul(1 << attempt.min(6));
        let jitter: f64 = 0.5 + rand::random::<f64>();
        base.mul_f64(jitter).min(self.config.max_retry_after)
    }
}

/// The error of an ARM answer: its envelope `{"error":{"code","message"}}`
/// when it has one, else the status and the start of the body.
fn api_error(call: &Call<'_>, status: StatusCode, json: &Value, bytes: &[u8]) -> ArmError {
    let error = json.get("error").unwrap_or(json);
    let code = string_at(error, "code").unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("Error")
            .replace(' ', "")
    });
    let message = string_at(error, "message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(bytes);
        let text: String = text.chars().take(300).collect();
        if text.trim().is_empty() {
            "no error details".to_owned()
        } else {
            text
        }
    });
    ArmError::Api {
        call: call.label.clone(),
        status: status.as_u16(),
        code,
        message,
        correlation_id: call.correlation_id.clone(),
    }
}

fn string_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn header_url(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value: &HeaderValue = headers.get(reqwest::header::RETRY_AFTER)?;
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn transport_detail(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "Azure did not answer in time".to_owned()
    } else if error.is_connect() {
        format!("cannot connect to Azure Resource Manager: {error}")
    } else {
        format!("transport error: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::Router;
    use axum::http::StatusCode as Status;
    use axum::response::IntoResponse;
    use axum::routing::{any, get};

    /// A credential that hands out a fixed token (the real ones are tested
    /// against the dev issuer in `azure::credential`).
    #[derive(Debug)]
    struct Fixed;

    #[async_trait::async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Ok(azure_core::credentials::AccessToken::new(
                "t0ken",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    /// Serves `app` on a free loopback port; an ARM client for it.
    async fn client_for(app: Router, tweak: impl FnOnce(&mut ArmConfig)) -> ArmClient {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = ArmConfig {
            endpoint,
            retry_delay: Duration::from_millis(5),
            lro_poll_interval: Duration::from_millis(5),
            ..ArmConfig::default()
        };
        tweak(&mut config);
        ArmClient::new(config, Arc::new(Fixed)).unwrap()
    }

    /// A handler that fails with `status` for its first `failures` calls.
    fn flaky(status: u16, failures: u32, hits: Arc<AtomicU32>) -> axum::routing::MethodRouter {
        any(move || {
            let hits = hits.clone();
            async move {
                if hits.fetch_add(1, Ordering::SeqCst) < failures {
                    let body = r#"{"error":{"code":"ServiceUnavailable","message":"try again"}}"#;
                    (Status::from_u16(status).unwrap(), body).into_response()
                } else {
                    axum::Json(serde_json::json!({"name": "ok"})).into_response()
                }
            }
        })
    }

    #[tokio::test]
    async fn server_errors_are_retried_for_idempotent_methods_only() {
        let hits = Arc::new(AtomicU32::new(0));
        let client = client_for(
            Router::new().route("/x", flaky(503, 2, hits.clone())),
            |_| {},
        )
        .await;
        let got = client
            .request(Method::GET, "/x", "1", &[], None)
            .await
            .unwrap();
        assert_eq!((got.status, got.body["name"].as_str()), (200, Some("ok")));
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        // A POST may have acted: its 5xx is reported, not repeated.
        let hits = Arc::new(AtomicU32::new(0));
        let client = client_for(
            Router::new().route("/x", flaky(500, 1, hits.clone())),
            |_| {},
        )
        .await;
        let error = client
            .request(Method::POST, "/x", "1", &[], None)
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(500));
        assert!(
            error.to_string().contains("ServiceUnavailable: try again"),
            "{error}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // Retries stop at max_retries.
        let hits = Arc::new(AtomicU32::new(0));
        let client = client_for(
            Router::new().route("/x", flaky(503, 100, hits.clone())),
            |c| {
                c.max_retries = 2;
            },
        )
        .await;
        let error = client
            .request(Method::GET, "/x", "1", &[], None)
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(503));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_at_once() {
        let app = Router::new().route(
            "/x",
            get(|| async { (Status::TOO_MANY_REQUESTS, [("retry-after", "3600")], "{}") }),
        );
        let client = client_for(app, |_| {}).await;
        let error = client
            .request(Method::GET, "/x", "1", &[], None)
            .await
            .unwrap_err();
        assert!(matches!(error, ArmError::Throttled { .. }), "{error}");
        assert!(error.to_string().contains("retry after 3600s"), "{error}");
        assert!(error.correlation_id().is_some());
    }

    #[tokio::test]
    async fn long_running_operations_are_bounded_and_stay_on_the_endpoint() {
        // An operation that never finishes.
        let app = Router::new()
            .route(
                "/start",
                any(|| async { (Status::ACCEPTED, [("azure-asyncoperation", "/op")], "") }),
            )
            .route(
                "/op",
                get(|| async { axum::Json(serde_json::json!({"status": "InProgress"})) }),
            );
        let client = client_for(app, |c| c.lro_timeout = Duration::from_millis(200)).await;
        let error = client
            .request(Method::POST, "/start", "1", &[], None)
            .await
            .unwrap_err();
        assert!(matches!(error, ArmError::LroTimeout { .. }), "{error}");

        // A status URL elsewhere would receive the token: refused.
        let app = Router::new().route(
            "/start",
            any(|| async {
                (
                    Status::ACCEPTED,
                    [("location", "https://attacker.example/steal")],
                    "",
                )
            }),
        );
        let client = client_for(app, |_| {}).await;
        let error = client
            .request(Method::DELETE, "/start", "1", &[], None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("outside"), "{error}");

        // A failed operation reports Azure's error.
        let app = Router::new()
            .route(
                "/start",
                any(|| async { (Status::ACCEPTED, [("azure-asyncoperation", "/op")], "") }),
            )
            .route(
                "/op",
                get(|| async {
                    axum::Json(serde_json::json!({
                        "status": "Failed",
                        "error": {"code": "OSProvisioningTimedOut", "message": "took too long"}
                    }))
                }),
            );
        let client = client_for(app, |_| {}).await;
        let error = client
            .request(Method::PUT, "/start", "1", &[], None)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("ended Failed: OSProvisioningTimedOut: took too long"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn paths_with_a_query_no_leading_slash_or_a_bad_segment_are_refused() {
        let client = client_for(Router::new(), |_| {}).await;
        for path in [
            "subscriptions",
            "/subscriptions?x=1",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/a/../../b",
            "/subscriptions//resourceGroups",
            "/subscriptions/s/",
        ] {
            let error = client
                .request(Method::GET, path, "1", &[], None)
                .await
                .unwrap_err();
            assert!(matches!(error, ArmError::Invalid { .. }), "{path}: {error}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        headers.insert(
            "retry-after",
            HeaderValue::from_str(&later.to_rfc2822()).unwrap(),
        );
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn config_names_its_bad_values_and_builds_the_scope() {
        let config = ArmConfig::default();
        assert_eq!(config.scope(), "https://management.azure.com/.default");
        let bad = ArmConfig {
            endpoint: "management.azure.com".into(),
            ..ArmConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("azure.arm.endpoint"));
        let sovereign: ArmConfig = toml::from_str(
            "endpoint = \"https://management.chinacloudapi.cn\"\nlro_timeout = \"2m\"\n",
        )
        .unwrap();
        assert_eq!(
            sovereign.scope(),
            "https://management.chinacloudapi.cn/.default"
        );
        assert_eq!(sovereign.lro_timeout, Duration::from_secs(120));
        let err = toml::from_str::<ArmConfig>("endpont = \"x\"").unwrap_err();
        assert!(err.to_string().contains("endpont"), "{err}");
    }
}
