//! Webhook notifications for security managers: new JIT requests, their
//! decisions and risk alerts (`risk.alert`), posted to Microsoft Teams,
//! Slack or any receiver that accepts JSON.
//!
//! [`Notifier::start`] spawns one delivery task per webhook, each reading its
//! own bounded queue; [`Notifier::notify`] never blocks or awaits: it puts the
//! notification on every webhook's queue with `try_send`, and a full queue
//! drops it (counted `dropped`, logged). A webhook delivers its notifications
//! one at a time, in order (a request is announced before its decision),
//! and a slow or hung webhook holds up only its own queue. Each attempt is
//! bounded by `timeout`; network errors, `429` (honouring `Retry-After`) and
//! `5xx` are retried up to `max_attempts` in all, after `first_backoff`
//! doubled per retry with jitter and capped at 5 minutes; any other answer
//! but `2xx` fails at once. Redirects are not followed. [`Notifier::flush`]
//! waits for the queues to drain (shutdown, tests).
//!
//! Metrics: `warden_notifications_total{result="delivered"|"failed"|"dropped"}`
//! (one per notification and webhook) and `warden_notification_retries_total`.
//! Webhook URLs carry secrets: logs and configuration errors name a webhook
//! by its index and host only.
//!
//! # Configuration
//!
//! ```toml
//! [approvals.notify]
//! webhooks = ["https://contoso.webhook.office.com/webhookb2/...", "https://hooks.slack.com/services/..."]
//! timeout = "10s"        # one HTTP attempt
//! max_attempts = 6       # attempts in all, the first included
//! first_backoff = "1s"   # doubled per retry, with jitter, at most 5m
//! queue = 1024           # notifications waiting per webhook; beyond it they are dropped
//! ```
//!
//! # Payload
//!
//! One JSON body serves every receiver. A Teams incoming webhook reads the
//! legacy `MessageCard` keys (`text` as Markdown) and ignores the rest; a
//! Slack incoming webhook shows `blocks` (all `plain_text`, so nothing a
//! requester wrote is read as Slack markup), uses the top-level `text` for
//! notifications, and ignores the rest; a custom receiver reads `warden`.
//! Strings are sent as they are (nothing is HTML-escaped). For the
//! [`Notification`]
//!
//! ```text
//! event: "jit.requested"
//! title: "JIT request: delete VM web-02"
//! text:  "alice@contoso.com asks to delete a virtual machine in dev-web."
//! facts: [("Operation", "Microsoft.Compute/virtualMachines/delete"), ("Risk", "72 (high)")]
//! link:  Some("https://warden.example.com/approvals/3f2c")
//! details: {"request_id": "3f2c"}
//! ```
//!
//! the body is:
//!
//! ```json
//! {
//!   "@type": "MessageCard",
//!   "@context": "https://schema.org/extensions",
//!   "summary": "JIT request: delete VM web-02",
//!   "themeColor": "FFB900",
//!   "title": "JIT request: delete VM web-02",
//!   "text": "alice@contoso.com asks to delete a virtual machine in dev-web.",
//!   "sections": [{"facts": [
//!     {"name": "Operation", "value": "Microsoft.Compute/virtualMachines/delete"},
//!     {"name": "Risk", "value": "72 (high)"}
//!   ]}],
//!   "potentialAction": [{"@type": "OpenUri", "name": "Review",
//!     "targets": [{"os": "default", "uri": "https://warden.example.com/approvals/3f2c"}]}],
//!   "blocks": [
//!     {"type": "header", "text": {"type": "plain_text", "text": "JIT request: delete VM web-02"}},
//!     {"type": "section", "text": {"type": "plain_text", "text": "alice@contoso.com asks to delete a virtual machine in dev-web."}},
//!     {"type": "section", "fields": [
//!       {"type": "plain_text", "text": "Operation\nMicrosoft.Compute/virtualMachines/delete"},
//!       {"type": "plain_text", "text": "Risk\n72 (high)"}
//!     ]},
//!     {"type": "actions", "elements": [{"type": "button", "action_id": "warden_review",
//!       "text": {"type": "plain_text", "text": "Review"},
//!       "url": "https://warden.example.com/approvals/3f2c"}]},
//!     {"type": "context", "elements": [{"type": "plain_text", "text": "Warden · jit.requested"}]}
//!   ],
//!   "warden": {"event": "jit.requested", "details": {"request_id": "3f2c"}}
//! }
//! ```
//!
//! `themeColor` follows the event: `jit.requested` amber, `jit.approved`
//! green, `jit.denied` and `jit.revoked` red, `risk.*` dark red, others
//! blue. Keys without content are left out (`potentialAction` and the
//! Slack button without a link, `sections` and the fields without facts,
//! the header or text block when empty). Slack's limits are kept: the
//! header is cut to 150 characters, the text block to 3,000, each field to
//! 2,000, ten fields per section. A body over Teams' 28 KB limit is sent
//! with `warden.details` replaced by `null` and `"details_omitted": true`.
//!
//! Teams' legacy connectors answer `200` even when they refuse a message,
//! with a body like `Webhook message delivery failed with error: Microsoft
//! Teams endpoint returned HTTP error 429 ...`; such a body is treated as
//! the status it names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, warn};

use crate::delivery::{check_attempts, next_wait, read_some, receiver_url, retry_after};
use crate::metrics::Metrics;

/// Teams rejects connector messages over 28 KB.
const MAX_BODY_BYTES: usize = 27 * 1024;
/// Slack's limits (Block Kit reference).
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_TEXT_CHARS: usize = 3000;
const SLACK_FIELD_CHARS: usize = 2000;
const SLACK_FIELDS_PER_SECTION: usize = 10;
const SLACK_URL_CHARS: usize = 3000;
/// 50 blocks at most: header, text, actions, context and 46 of facts.
const SLACK_FIELD_SECTIONS: usize = 46;

/// `[approvals.notify]` in `warden.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Webhook URLs (Teams, Slack or custom receivers); https unless the
    /// host is loopback. Empty: no notifications.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Limit of one HTTP attempt.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts in all, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First wait before a retry; doubled each retry, with jitter, at most
    /// 5 minutes.
    #[serde(default = "default_first_backoff", with = "humantime_serde")]
    pub first_backoff: Duration,
    /// Notifications waiting per webhook; more are dropped (and counted).
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_attempts() -> u32 {
    6
}
fn default_first_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_queue() -> usize {
    1024
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: Vec::new(),
            timeout: default_timeout(),
            max_attempts: default_max_attempts(),
            first_backoff: default_first_backoff(),
            queue: default_queue(),
        }
    }
}

impl NotifyConfig {
    /// Checks the values (keys named as in `warden.toml`). Messages never
    /// repeat a webhook URL, which carries a secret.
    pub fn validate(&self) -> Result<(), String> {
        for (i, raw) in self.webhooks.iter().enumerate() {
            receiver_url(&format!("approvals.notify.webhooks[{i}]"), raw)?;
        }
        check_attempts(
            "approvals.notify",
            self.timeout,
            self.max_attempts,
            self.first_backoff,
        )?;
        if self.queue == 0 {
            return Err("approvals.notify.queue: must be at least 1".into());
        }
        Ok(())
    }
}

/// One thing to tell the security managers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notification {
    /// What happened: `jit.requested`, `jit.approved`, `jit.denied`,
    /// `jit.revoked`, `risk.alert`, ...
    pub event: String,
    /// One line, shown as the card's title (Slack: the header).
    pub title: String,
    /// The body (Teams reads it as Markdown; Slack shows it as plain text).
    pub text: String,
    /// Name/value pairs (requester, operation, resource, risk, ...).
    pub facts: Vec<(String, String)>,
    /// Where to review it (the approvals page), shown as a "Review" button.
    pub link: Option<String>,
    /// Anything for custom receivers, sent as `warden.details`.
    pub details: Value,
}

impl Notification {
    /// The JSON body posted to every webhook (see the module documentation).
    pub fn payload(&self) -> Value {
        let summary = [&self.title, &self.text, &self.event]
            .into_iter()
            .find(|s| !s.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| "Warden notification".to_owned());
        let text = if self.text.trim().is_empty() {
            summary.clone()
        } else {
            self.text.clone()
        };
        let mut body = serde_json::Map::new();
        body.insert("@type".into(), json!("MessageCard"));
        body.insert("@context".into(), json!("https://schema.org/extensions"));
        body.insert("summary".into(), json!(summary));
        body.insert("themeColor".into(), json!(theme_color(&self.event)));
        body.insert("title".into(), json!(self.title));
        body.insert("text".into(), json!(text));
        if !self.facts.is_empty() {
            let facts: Vec<Value> = self
                .facts
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            body.insert("sections".into(), json!([{ "facts": facts }]));
        }
        if let Some(link) = &self.link {
            body.insert(
                "potentialAction".into(),
                json!([{
                    "@type": "OpenUri",
                    "name": "Review",
                    "targets": [{"os": "default", "uri": link}],
                }]),
            );
        }
        body.insert("blocks".into(), Value::Array(self.slack_blocks()));
        body.insert(
            "warden".into(),
            json!({"event": self.event, "details": self.details}),
        );
        Value::Object(body)
    }

    /// Slack Block Kit blocks, every text `plain_text` and within Slack's
    /// limits (a `plain_text` must not be empty).
    fn slack_blocks(&self) -> Vec<Value> {
        let mut blocks = Vec::new();
        if !self.title.trim().is_empty() {
            blocks.push(json!({
                "type": "header",
                "text": plain(clip(&self.title, SLACK_HEADER_CHARS)),
            }));
        }
        if !self.text.trim().is_empty() {
            blocks.push(json!({
                "type": "section",
                "text": plain(clip(&self.text, SLACK_TEXT_CHARS)),
            }));
        }
        for chunk in self
            .facts
            .chunks(SLACK_FIELDS_PER_SECTION)
            .take(SLACK_FIELD_SECTIONS)
        {
            let fields: Vec<Value> = chunk
                .iter()
                .map(|(name, value)| {
                    let name = if name.trim().is_empty() { "-" } else { name };
                    let value = if value.trim().is_empty() { "-" } else { value };
                    plain(clip(&format!("{name}\n{value}"), SLACK_FIELD_CHARS))
                })
                .collect();
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        if let Some(link) = self
            .link
            .as_ref()
            .filter(|l| !l.is_empty() && l.chars().count() <= SLACK_URL_CHARS)
        {
            blocks.push(json!({
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "action_id": "warden_review",
                    "text": plain("Review".to_owned()),
                    "url": link,
                }],
            }));
        }
        let event = if self.event.is_empty() {
            "notification"
        } else {
            &self.event
        };
        blocks.push(json!({
            "type": "context",
            "elements": [plain(clip(&format!("Warden · {event}"), SLACK_FIELD_CHARS))],
        }));
        blocks
    }

    /// The bytes posted: the payload, without `warden.details` if the whole
    /// would pass Teams' size limit.
    fn body(&self) -> Vec<u8> {
        let mut payload = self.payload();
        let bytes = payload.to_string().into_bytes();
        if bytes.len() <= MAX_BODY_BYTES || self.details.is_null() {
            return bytes;
        }
        payload["warden"]["details"] = Value::Null;
        payload["warden"]["details_omitted"] = Value::Bool(true);
        payload.to_string().into_bytes()
    }
}

fn plain(text: String) -> Value {
    json!({"type": "plain_text", "text": text})
}

/// At most `max` characters; a cut string ends with `…`.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn theme_color(event: &str) -> &'static str {
    match event {
        "jit.requested" => "FFB900",
        "jit.approved" => "107C10",
        "jit.denied" | "jit.revoked" => "D13438",
        e if e.starts_with("risk.") => "A4262C",
        _ => "0078D4",
    }
}

/// Sends notifications to the configured webhooks; cheap to clone. A
/// notifier without webhooks (or [`Notifier::disabled`]) does nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "webhooks",
                &self.inner.as_ref().map_or(0, |i| i.queues.len()),
            )
            .finish()
    }
}

struct Inner {
    /// One queue per webhook, read by that webhook's delivery task.
    queues: Vec<(Arc<Target>, mpsc::Sender<Arc<Job>>)>,
    shared: Arc<Shared>,
}

/// What the delivery tasks share with the notifier (not the queues: the
/// tasks end when every notifier clone is gone).
struct Shared {
    client: Result<reqwest::Client, String>,
    config: NotifyConfig,
    metrics: Metrics,
    /// Notifications queued or being delivered, over all webhooks.
    outstanding: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Shared {
    fn finished(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// A webhook, as logs name it (never its full URL).
struct Target {
    url: String,
    label: String,
}

struct Job {
    event: String,
    body: Vec<u8>,
}

impl Notifier {
    /// A notifier that does nothing.
    pub fn disabled() -> Notifier {
        Notifier { inner: None }
    }

    /// Starts one delivery task per webhook of `config` (which should have
    /// passed [`NotifyConfig::validate`]). Must be called within a Tokio
    /// runtime when webhooks are configured.
    pub fn start(config: NotifyConfig, metrics: Metrics) -> Notifier {
        if config.webhooks.is_empty() {
            return Notifier::disabled();
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the HTTP client could not be built: {e}"));
        if let Err(e) = &client {
            tracing::error!("approvals.notify: {e}; every notification will fail");
        }
        let capacity = config.queue.max(1);
        let webhooks = config.webhooks.clone();
        let shared = Arc::new(Shared {
            client,
            config,
            metrics,
            outstanding: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
        });
        let queues = webhooks
            .into_iter()
            .enumerate()
            .map(|(index, url)| {
                let url = url.trim().to_owned();
                let host = reqwest::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "?".to_owned());
                let target = Arc::new(Target {
                    url,
                    label: format!("webhooks[{index}] ({host})"),
                });
                let (tx, rx) = mpsc::channel(capacity);
                tokio::spawn(deliver_queue(shared.clone(), target.clone(), rx));
                (target, tx)
            })
            .collect();
        Notifier {
            inner: Some(Arc::new(Inner { queues, shared })),
        }
    }

    /// Queues `notification` for every webhook; never blocks. Where a
    /// webhook's queue is full, the notification is dropped for that webhook
    /// (counted `dropped`, logged).
    pub fn notify(&self, notification: Notification) {
        let Some(inner) = &self.inner else {
            return;
        };
        let job = Arc::new(Job {
            body: notification.body(),
            event: notification.event,
        });
        let shared = &inner.shared;
        for (target, queue) in &inner.queues {
            shared.outstanding.fetch_add(1, Ordering::AcqRel);
            let why = match queue.try_send(job.clone()) {
                Ok(()) => continue,
                Err(TrySendError::Full(_)) => "its queue is full",
                Err(TrySendError::Closed(_)) => "its delivery task has stopped",
            };
            shared.finished();
            shared.metrics.notification("dropped");
            warn!(
                event = %job.event,
                webhook = %target.label,
                "notify: notification dropped: {why}"
            );
        }
    }

    /// Waits until every queued notification has been delivered or given
    /// up, or `within` has passed; true when nothing is left.
    pub async fn flush(&self, within: Duration) -> bool {
        let Some(inner) = &self.inner else {
            return true;
        };
        let shared = &inner.shared;
        let drained = async {
            loop {
                let idle = shared.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if shared.outstanding.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }
}

/// One webhook's delivery task: its notifications one at a time, in order.
async fn deliver_queue(
    shared: Arc<Shared>,
    target: Arc<Target>,
    mut queue: mpsc::Receiver<Arc<Job>>,
) {
    while let Some(job) = queue.recv().await {
        let result = deliver(&shared, &target, &job).await;
        shared
            .metrics
            .notification(if result { "delivered" } else { "failed" });
        shared.finished();
    }
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    /// Worth another attempt, after the wait given (else the backoff).
    Retry(Option<Duration>, String),
    /// Refused: another attempt would fare no better.
    Refused(String),
}

/// Delivers one notification to one webhook; true when it was accepted.
async fn deliver(shared: &Shared, target: &Target, job: &Job) -> bool {
    let client = match &shared.client {
        Ok(client) => client,
        Err(e) => {
            warn!(event = %job.event, webhook = %target.label, "notify: not delivered: {e}");
            return false;
        }
    };
    let max_attempts = shared.config.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let outcome = match client
            .post(&target.url)
            .header(CONTENT_TYPE, "application/json")
            .body(job.body.clone())
            .send()
            .await
        {
            Ok(answer) => judge(answer).await,
            Err(e) if e.is_builder() => Attempt::Refused(e.without_url().to_string()),
            Err(e) if e.is_timeout() => Attempt::Retry(
                None,
                format!("no answer within {:?}", shared.config.timeout),
            ),
            Err(e) => Attempt::Retry(None, e.without_url().to_string()),
        };
        match outcome {
            Attempt::Delivered => {
                debug!(event = %job.event, webhook = %target.label, attempt, "notify: delivered");
                return true;
            }
            Attempt::Refused(reason) => {
                warn!(
                    event = %job.event,
                    webhook = %target.label,
                    attempt,
                    "notify: not delivered, refused: {reason}"
                );
                return false;
            }
            Attempt::Retry(_, reason) if attempt >= max_attempts => {
                warn!(
                    event = %job.event,
                    webhook = %target.label,
                    attempts = attempt,
                    "notify: not delivered, giving up: {reason}"
                );
                return false;
            }
            Attempt::Retry(after, reason) => {
                let wait = next_wait(after, shared.config.first_backoff, attempt);
                debug!(
                    event = %job.event,
                    webhook = %target.label,
                    attempt,
                    "notify: retrying in {wait:?}: {reason}"
                );
                tokio::time::sleep(wait).await;
                shared.metrics.notification_retries.inc();
                attempt += 1;
            }
        }
    }
}

/// Judges a webhook's answer by its status (and, for `2xx`, a Teams error
/// wrapped in the body).
async fn judge(answer: reqwest::Response) -> Attempt {
    let status = answer.status();
    let after = retry_after(answer.headers());
    let body = read_some(answer).await;
    let status = if status.is_success() {
        match teams_wrapped_status(&body) {
            Some(wrapped) => wrapped,
            None => return Attempt::Delivered,
        }
    } else {
        status
    };
    let reason = format!("answered {status}: {}", clip(body.trim(), 200));
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Attempt::Retry(after, reason)
    } else {
        Attempt::Refused(reason)
    }
}

/// The status a Teams connector names in a `200` body that reports a
/// failure (`... returned HTTP error 429 with ContextId ...`); `400` when it
/// reports a failure without one.
fn teams_wrapped_status(body: &str) -> Option<StatusCode> {
    const MARK: &str = "returned HTTP error ";
    if !body.starts_with("Webhook message delivery failed") {
        return None;
    }
    let code = body.find(MARK).and_then(|at| {
        let digits: String = body[at + MARK.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok()
    });
    Some(
        code.and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Mutex;
    use std::time::Instant;

    use axum::extract::State;
    use axum::response::{IntoResponse, Response};

    /// How a test receiver answers one request.
    #[derive(Clone)]
    enum Reply {
        Status(u16),
        /// A status with a `Retry-After` header.
        RetryAfter(u16, &'static str),
        /// A status with a body.
        Body(u16, &'static str),
        /// Never answers (sleeps for ten minutes).
        Hang,
    }

    /// A real HTTP receiver on 127.0.0.1; answers request n with
    /// `replies[n]` (the last one repeats) and records every body.
    struct Receiver {
        url: String,
        state: Arc<ReceiverState>,
    }

    struct ReceiverState {
        replies: Vec<Reply>,
        hits: Mutex<Vec<(Instant, Value)>>,
        hit: tokio::sync::Notify,
    }

    impl Receiver {
        async fn start(replies: Vec<Reply>) -> Receiver {
            let state = Arc::new(ReceiverState {
                replies,
                hits: Mutex::new(Vec::new()),
                hit: tokio::sync::Notify::new(),
            });
            let app = axum::Router::new()
                .route("/hook", axum::routing::post(receive))
                .with_state(state.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook", listener.local_addr().unwrap());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Receiver { url, state }
        }

        fn hits(&self) -> Vec<(Instant, Value)> {
            self.state.hits.lock().unwrap().clone()
        }

        /// Waits (at most 30 s) until `n` requests have arrived.
        async fn wait_for(&self, n: usize) {
            let arrived = async {
                loop {
                    let hit = self.state.hit.notified();
                    tokio::pin!(hit);
                    hit.as_mut().enable();
                    if self.state.hits.lock().unwrap().len() >= n {
                        return;
                    }
                    hit.await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), arrived)
                .await
                .unwrap_or_else(|_| panic!("{n} requests did not arrive"));
        }
    }

    async fn receive(State(state): State<Arc<ReceiverState>>, body: axum::body::Bytes) -> Response {
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let n = {
            let mut hits = state.hits.lock().unwrap();
            hits.push((Instant::now(), json));
            hits.len() - 1
        };
        state.hit.notify_waiters();
        let reply = state.replies[n.min(state.replies.len() - 1)].clone();
        let status = |code: u16| StatusCode::from_u16(code).unwrap();
        match reply {
            Reply::Status(code) => (status(code), "").into_response(),
            Reply::RetryAfter(code, after) => {
                (status(code), [("retry-after", after)], "slow down").into_response()
            }
            Reply::Body(code, body) => (status(code), body).into_response(),
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(600)).await;
                (status(200), "late").into_response()
            }
        }
    }

    fn config(webhooks: Vec<String>) -> NotifyConfig {
        NotifyConfig {
            webhooks,
            timeout: Duration::from_secs(5),
            max_attempts: 4,
            first_backoff: Duration::from_millis(1),
            queue: 16,
        }
    }

    /// A counter's value from the Prometheus text (`name{labels}` as written).
    fn counter(metrics: &Metrics, series: &str) -> u64 {
        let text = metrics.render();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
            .trim()
            .parse::<f64>()
            .unwrap() as u64
    }

    fn results(metrics: &Metrics) -> (u64, u64, u64, u64) {
        (
            counter(metrics, r#"warden_notifications_total{result="delivered"}"#),
            counter(metrics, r#"warden_notifications_total{result="failed"}"#),
            counter(metrics, r#"warden_notifications_total{result="dropped"}"#),
            counter(metrics, "warden_notification_retries_total"),
        )
    }

    fn request_notification() -> Notification {
        Notification {
            event: "jit.requested".into(),
            title: "JIT request: delete VM web-02".into(),
            text: "alice@contoso.com asks to delete a virtual machine in dev-web.".into(),
            facts: vec![
                (
                    "Operation".into(),
                    "Microsoft.Compute/virtualMachines/delete".into(),
                ),
                ("Risk".into(), "72 (high)".into()),
            ],
            link: Some("https://warden.example.com/approvals/3f2c".into()),
            details: json!({"request_id": "3f2c"}),
        }
    }

    #[tokio::test]
    async fn retries_server_errors_then_delivers_the_card() {
        let receiver = Receiver::start(vec![
            Reply::Status(500),
            Reply::Status(503),
            Reply::Status(200),
        ])
        .await;
        let metrics = Metrics::new();
        let notifier = Notifier::start(config(vec![receiver.url.clone()]), metrics.clone());
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_secs(30)).await);

        let hits = receiver.hits();
        assert_eq!(hits.len(), 3, "two 5xx answers, then 200");
        assert_eq!(results(&metrics), (1, 0, 0, 2));
        assert!(
            hits.iter().all(|(_, body)| *body == hits[0].1),
            "same body each attempt"
        );
        let body = &hits[2].1;
        assert_eq!(body["@type"], "MessageCard");
        assert_eq!(body["@context"], "https://schema.org/extensions");
        assert_eq!(body["title"], "JIT request: delete VM web-02");
        assert_eq!(body["summary"], "JIT request: delete VM web-02");
        assert_eq!(
            body["text"],
            "alice@contoso.com asks to delete a virtual machine in dev-web."
        );
        assert_eq!(
            body["sections"][0]["facts"][0],
            json!({"name": "Operation", "value": "Microsoft.Compute/virtualMachines/delete"})
        );
        assert_eq!(
            body["potentialAction"][0]["targets"][0]["uri"],
            "https://warden.example.com/approvals/3f2c"
        );
        assert_eq!(body["blocks"][0]["type"], "header");
        assert_eq!(
            body["warden"],
            json!({"event": "jit.requested", "details": {"request_id": "3f2c"}})
        );
    }

    #[tokio::test]
    async fn honours_retry_after_on_429() {
        let receiver = Receiver::start(vec![Reply::RetryAfter(429, "1"), Reply::Status(200)]).await;
        let metrics = Metrics::new();
        let notifier = Notifier::start(config(vec![receiver.url.clone()]), metrics.clone());
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_secs(30)).await);

        let hits = receiver.hits();
        assert_eq!(hits.len(), 2);
        assert_eq!(results(&metrics), (1, 0, 0, 1));
        // The backoff is 1 ms; only the receiver's `Retry-After: 1` explains
        // a second between the attempts.
        assert!(
            hits[1].0 - hits[0].0 >= Duration::from_millis(950),
            "retried after {:?}",
            hits[1].0 - hits[0].0
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let receiver = Receiver::start(vec![Reply::Status(500)]).await;
        let metrics = Metrics::new();
        let mut config = config(vec![receiver.url.clone()]);
        config.max_attempts = 3;
        let notifier = Notifier::start(config, metrics.clone());
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_secs(30)).await);

        assert_eq!(receiver.hits().len(), 3);
        assert_eq!(results(&metrics), (0, 1, 0, 2));
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let receiver = Receiver::start(vec![Reply::Body(400, "invalid_payload")]).await;
        let metrics = Metrics::new();
        let notifier = Notifier::start(config(vec![receiver.url.clone()]), metrics.clone());
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_secs(30)).await);

        assert_eq!(receiver.hits().len(), 1);
        assert_eq!(results(&metrics), (0, 1, 0, 0));
    }

    #[tokio::test]
    async fn teams_errors_wrapped_in_200_are_not_deliveries() {
        // Teams connectors answer 200 with the real status in the body.
        let throttled = Receiver::start(vec![
            Reply::Body(
                200,
                "Webhook message delivery failed with error: Microsoft Teams endpoint returned \
                 HTTP error 429 with ContextId tcid=0,server=msgapi,cv=x.0..",
            ),
            Reply::Body(200, "1"),
        ])
        .await;
        let too_large = Receiver::start(vec![Reply::Body(
            200,
            "Webhook message delivery failed with error: Microsoft Teams endpoint returned \
             HTTP error 413 with ContextId tcid=0..",
        )])
        .await;
        let metrics = Metrics::new();
        let notifier = Notifier::start(
            config(vec![throttled.url.clone(), too_large.url.clone()]),
            metrics.clone(),
        );
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_secs(30)).await);

        assert_eq!(throttled.hits().len(), 2, "a wrapped 429 is retried");
        assert_eq!(too_large.hits().len(), 1, "a wrapped 413 is not");
        assert_eq!(results(&metrics), (1, 1, 0, 1));
    }

    #[tokio::test]
    async fn a_hung_webhook_holds_up_no_other() {
        let hung = Receiver::start(vec![Reply::Hang]).await;
        let fine = Receiver::start(vec![Reply::Status(200)]).await;
        let metrics = Metrics::new();
        let mut config = config(vec![hung.url.clone(), fine.url.clone()]);
        // Far longer than the test waits for the other webhook.
        config.timeout = Duration::from_secs(120);
        let notifier = Notifier::start(config, metrics.clone());
        for _ in 0..3 {
            notifier.notify(request_notification());
        }
        hung.wait_for(1).await;
        fine.wait_for(3).await;

        assert_eq!(fine.hits().len(), 3);
        assert_eq!(
            hung.hits().len(),
            1,
            "the hung webhook's queue waits its turn"
        );
        // The third answer has arrived; its count follows.
        tokio::time::timeout(Duration::from_secs(30), async {
            while results(&metrics).0 < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("three deliveries counted");
        let (delivered, failed, dropped, _) = results(&metrics);
        assert_eq!((delivered, failed, dropped), (3, 0, 0));
        assert!(
            !notifier.flush(Duration::from_millis(50)).await,
            "the hung webhook's notifications are still outstanding"
        );
    }

    #[tokio::test]
    async fn a_hung_delivery_ends_at_the_timeout() {
        let hung = Receiver::start(vec![Reply::Hang]).await;
        let metrics = Metrics::new();
        let mut config = config(vec![hung.url.clone()]);
        config.timeout = Duration::from_millis(200);
        config.max_attempts = 2;
        let notifier = Notifier::start(config, metrics.clone());
        notifier.notify(request_notification());

        // The receiver sleeps ten minutes per request; only the timeout
        // ends the two attempts.
        assert!(notifier.flush(Duration::from_secs(60)).await);
        assert_eq!(hung.hits().len(), 2);
        assert_eq!(results(&metrics), (0, 1, 0, 1));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let receiver = Receiver::start(vec![Reply::Status(200)]).await;
        let metrics = Metrics::new();
        let mut config = config(vec![receiver.url.clone()]);
        config.queue = 1;
        let notifier = Notifier::start(config, metrics.clone());
        // The test runtime is single-threaded: the delivery task does not
        // run before this test awaits, so the queue of one fills at once.
        for _ in 0..3 {
            notifier.notify(request_notification());
        }
        assert_eq!(results(&metrics), (0, 0, 2, 0));
        assert!(notifier.flush(Duration::from_secs(30)).await);
        assert_eq!(receiver.hits().len(), 1);
        assert_eq!(results(&metrics), (1, 0, 2, 0));
    }

    #[tokio::test]
    async fn without_webhooks_nothing_happens() {
        let metrics = Metrics::new();
        let notifier = Notifier::start(NotifyConfig::default(), metrics.clone());
        notifier.notify(request_notification());
        assert!(notifier.flush(Duration::from_millis(1)).await);
        assert_eq!(results(&metrics), (0, 0, 0, 0));
        assert!(Notifier::disabled().flush(Duration::ZERO).await);
    }

    #[test]
    fn payload_is_the_documented_example() {
        let expected = json!({
          "@type": "MessageCard",
          "@context": "https://schema.org/extensions",
          "summary": "JIT request: delete VM web-02",
          "themeColor": "FFB900",
          "title": "JIT request: delete VM web-02",
          "text": "alice@contoso.com asks to delete a virtual machine in dev-web.",
          "sections": [{"facts": [
            {"name": "Operation", "value": "Microsoft.Compute/virtualMachines/delete"},
            {"name": "Risk", "value": "72 (high)"}
          ]}],
          "potentialAction": [{"@type": "OpenUri", "name": "Review",
            "targets": [{"os": "default", "uri": "https://warden.example.com/approvals/3f2c"}]}],
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "JIT request: delete VM web-02"}},
            {"type": "section", "text": {"type": "plain_text", "text": "alice@contoso.com asks to delete a virtual machine in dev-web."}},
            {"type": "section", "fields": [
              {"type": "plain_text", "text": "Operation\nMicrosoft.Compute/virtualMachines/delete"},
              {"type": "plain_text", "text": "Risk\n72 (high)"}
            ]},
            {"type": "actions", "elements": [{"type": "button", "action_id": "warden_review",
              "text": {"type": "plain_text", "text": "Review"},
              "url": "https://warden.example.com/approvals/3f2c"}]},
            {"type": "context", "elements": [{"type": "plain_text", "text": "Warden · jit.requested"}]}
          ],
          "warden": {"event": "jit.requested", "details": {"request_id": "3f2c"}}
        });
        assert_eq!(request_notification().payload(), expected);
    }

    #[test]
    fn payload_keeps_slack_limits_and_leaves_out_empty_parts() {
        let notification = Notification {
            event: "risk.alert".into(),
            title: "x".repeat(400),
            text: String::new(),
            facts: (0..25)
                .map(|i| {
                    (
                        format!("fact {i}"),
                        if i == 3 {
                            String::new()
                        } else {
                            "v".repeat(5000)
                        },
                    )
                })
                .collect(),
            link: None,
            details: Value::Null,
        };
        let body = notification.payload();
        assert_eq!(body["themeColor"], "A4262C");
        assert!(body.get("potentialAction").is_none());
        assert_eq!(body["text"], body["title"], "Teams and Slack need a text");
        let blocks = body["blocks"].as_array().unwrap();
        let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["header", "section", "section", "section", "context"]
        );
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            SLACK_HEADER_CHARS
        );
        let fields: Vec<&Value> = blocks[1..4]
            .iter()
            .flat_map(|b| b["fields"].as_array().unwrap())
            .collect();
        assert_eq!(fields.len(), 25);
        assert!(
            blocks[1..4]
                .iter()
                .all(|b| b["fields"].as_array().unwrap().len() <= 10)
        );
        assert!(fields.iter().all(|f| {
            let text = f["text"].as_str().unwrap();
            !text.is_empty() && text.chars().count() <= SLACK_FIELD_CHARS
        }));
        assert_eq!(fields[3]["text"], "fact 3\n-");
    }

    #[test]
    fn oversized_details_are_left_out_of_the_body() {
        let mut notification = request_notification();
        notification.details = json!({"blob": "z".repeat(40_000)});
        let body: Value = serde_json::from_slice(&notification.body()).unwrap();
        assert_eq!(body["warden"]["details"], Value::Null);
        assert_eq!(body["warden"]["details_omitted"], true);
        let small: Value = serde_json::from_slice(&request_notification().body()).unwrap();
        assert_eq!(small, request_notification().payload());
    }

    #[test]
    fn config_defaults_and_toml() {
        let config: NotifyConfig = toml::from_str("").unwrap();
        assert_eq!(config, NotifyConfig::default());
        assert_eq!(config.timeout, Duration::from_secs(10));
        assert_eq!(config.max_attempts, 6);
        assert_eq!(config.first_backoff, Duration::from_secs(1));
        assert_eq!(config.queue, 1024);
        assert!(config.validate().is_ok());

        let config: NotifyConfig = toml::from_str(
            r#"
            webhooks = ["https://hooks.slack.com/services/T0/B0/x"]
            timeout = "3s"
            first_backoff = "250ms"
            "#,
        )
        .unwrap();
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.first_backoff, Duration::from_millis(250));
        assert!(config.validate().is_ok());

        let unknown = toml::from_str::<NotifyConfig>("retries = 3").unwrap_err();
        assert!(unknown.to_string().contains("retries"), "{unknown}");
    }

    #[test]
    fn config_validation_names_the_key() {
        let check = |webhooks: &[&str]| {
            NotifyConfig {
                webhooks: webhooks.iter().map(|s| s.to_string()).collect(),
                ..NotifyConfig::default()
            }
            .validate()
        };
        assert!(
            check(&[
                "https://contoso.webhook.office.com/webhookb2/abc",
                "http://127.0.0.1:9000/hook",
                "http://localhost/hook",
                "http://[::1]:8080/",
            ])
            .is_ok()
        );

        let error = check(&[
            "https://ok.example.com/",
            "hooks.slack.com/services/T0/B0/secret",
        ])
        .unwrap_err();
        assert!(
            error.starts_with("approvals.notify.webhooks[1]: not an absolute URL"),
            "{error}"
        );
        assert!(
            !error.contains("secret"),
            "the URL is not repeated: {error}"
        );

        let error = check(&["http://hooks.example.com/services/secret"]).unwrap_err();
        assert!(
            error.starts_with("approvals.notify.webhooks[0]: must be an https URL"),
            "{error}"
        );
        assert!(
            error.contains("hooks.example.com") && !error.contains("secret"),
            "{error}"
        );

        let error = check(&["ftp://files.example.com/x"]).unwrap_err();
        assert!(
            error.starts_with("approvals.notify.webhooks[0]: the scheme"),
            "{error}"
        );

        let invalid = |edit: fn(&mut NotifyConfig)| {
            let mut config = NotifyConfig::default();
            edit(&mut config);
            config.validate().unwrap_err()
        };
        assert!(invalid(|c| c.timeout = Duration::ZERO).starts_with("approvals.notify.timeout"));
        assert!(invalid(|c| c.max_attempts = 0).starts_with("approvals.notify.max_attempts"));
        assert!(invalid(|c| c.queue = 0).starts_with("approvals.notify.queue"));
        assert!(
            invalid(|c| c.first_backoff = Duration::from_secs(600))
                .starts_with("approvals.notify.first_backoff")
        );
    }
}
