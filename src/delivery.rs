//! What every outbound delivery to a receiver Warden does not control
//! shares (approval webhooks, audit witnesses): checking a configured URL,
//! the wait between attempts, `Retry-After`, and reading a bounded part of
//! an answer.
//!
//! A receiver's URL may carry a secret (a webhook path, a SAS token): the
//! messages here name a URL by its host only.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::mpsc;

/// The longest wait between two attempts (backoff or `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How much of an answer's body is read (to log it, or to look inside).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// Parses a receiver's URL as configured under `key`: https, or http for a
/// loopback host. Errors name the key and the host, never the URL.
pub fn receiver_url(key: &str, raw: &str) -> Result<reqwest::Url, String> {
    let url =
        reqwest::Url::parse(raw.trim()).map_err(|e| format!("{key}: not an absolute URL ({e})"))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("{key}: the URL has no host"));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(host) => Ok(url),
        "http" => Err(format!(
            "{key}: must be an https URL (http is accepted only for a loopback \
             host: localhost, 127.0.0.1, [::1]); the host is {host}"
        )),
        other => Err(format!(
            "{key}: the scheme must be https (or http for a loopback host), not {other:?}"
        )),
    }
}

/// Checks a receiver's attempt settings, named under `key` (e.g.
/// `approvals.notify`): a timeout above zero, 1 to 20 attempts, a first
/// backoff of at most [`MAX_BACKOFF`].
pub fn check_attempts(
    key: &str,
    timeout: Duration,
    max_attempts: u32,
    first_backoff: Duration,
) -> Result<(), String> {
    if timeout.is_zero() {
        return Err(format!("{key}.timeout: must be more than 0s"));
    }
    if max_attempts == 0 || max_attempts > 20 {
        return Err(format!(
            "{key}.max_attempts: must be from 1 to 20, not {max_attempts}"
        ));
    }
    if first_backoff > MAX_BACKOFF {
        return Err(format!("{key}.first_backoff: at most 5m"));
    }
    Ok(())
}

/// `localhost`, `127.0.0.0/8` or `::1` (a URL's `host_str`, IPv6 in brackets).
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The first [`MAX_ANSWER_BYTES`] of an answer's body (the rest is not read).
pub async fn read_some(mut answer: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match answer.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The wait after attempt `attempt` (1-based): `first` × 2^(attempt-1) ×
/// a jitter in [0.5, 1.5), at most [`MAX_BACKOFF`].
pub fn backoff(first: Duration, attempt: u32) -> Duration {
    let base = first
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF);
    let jitter = 0.5 + rand::random::<f64>();
    base.mul_f64(jitter).min(MAX_BACKOFF)
}

/// The wait before the next attempt: the receiver's `Retry-After` if it
/// gave one (capped), else [`backoff`].
pub fn next_wait(after: Option<Duration>, first: Duration, attempt: u32) -> Duration {
    after
        .map(|a| a.min(MAX_BACKOFF))
        .unwrap_or_else(|| backoff(first, attempt))
}

/// Bounded queues, one per receiver, each drained in order by its own
/// task: a slow or hung receiver holds up only its own lane. Offering
/// never blocks; a full lane refuses the job.
pub struct Lanes<J> {
    senders: Vec<mpsc::Sender<J>>,
    outstanding: Arc<Outstanding>,
}

#[derive(Default)]
struct Outstanding {
    /// Jobs queued or being delivered, over all lanes.
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl<J: Send + 'static> Lanes<J> {
    /// Starts `lanes` tasks, each calling `deliver(lane, job)` for its jobs
    /// one at a time. Must be called within a Tokio runtime. The tasks end
    /// when the `Lanes` is dropped and their queues are drained.
    pub fn start<F, Fut>(lanes: usize, capacity: usize, deliver: F) -> Self
    where
        F: Fn(usize, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let outstanding = Arc::new(Outstanding::default());
        let deliver = Arc::new(deliver);
        let senders = (0..lanes)
            .map(|lane| {
                let (sender, mut queue) = mpsc::channel::<J>(capacity.max(1));
                let deliver = deliver.clone();
                let outstanding = outstanding.clone();
                tokio::spawn(async move {
                    while let Some(job) = queue.recv().await {
                        deliver(lane, job).await;
                        if outstanding.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                            outstanding.idle.notify_waiters();
                        }
                    }
                });
                sender
            })
            .collect();
        Self {
            senders,
            outstanding,
        }
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// Queues `job` on `lane`; false (and the job dropped) when the lane is
    /// full or gone.
    pub fn offer(&self, lane: usize, job: J) -> bool {
        self.outstanding.count.fetch_add(1, Ordering::AcqRel);
        match self.senders[lane].try_send(job) {
            Ok(()) => true,
            Err(_) => {
                if self.outstanding.count.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.outstanding.idle.notify_waiters();
                }
                false
            }
        }
    }

    /// Waits until every lane is drained, for at most `within`; whether
    /// they drained.
    pub async fn flush(&self, within: Duration) -> bool {
        let drained = async {
            loop {
                let idle = self.outstanding.idle.notified();
                if self.outstanding.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(within, drained).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let first = Duration::from_secs(1);
        for attempt in 1..=5 {
            let wait = backoff(first, attempt);
            let base = first * (1 << (attempt - 1));
            assert!(
                wait >= base / 2 && wait < base * 3 / 2,
                "{attempt}: {wait:?}"
            );
        }
        assert!(backoff(first, 30) <= MAX_BACKOFF);
        assert!(backoff(Duration::from_secs(200), 1) <= MAX_BACKOFF);
        assert_eq!(
            next_wait(Some(Duration::from_secs(7)), first, 3),
            Duration::from_secs(7)
        );
        assert_eq!(
            next_wait(Some(Duration::from_secs(7_000)), first, 1),
            MAX_BACKOFF
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        headers.insert("retry-after", later.to_rfc2822().parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30));
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn receiver_urls_are_https_or_loopback_and_errors_hide_the_url() {
        for ok in [
            "https://contoso.webhook.office.com/webhookb2/abc",
            "http://127.0.0.1:9000/hook",
            "http://localhost/hook",
            "http://[::1]:8080/",
        ] {
            assert!(receiver_url("k", ok).is_ok(), "{ok}");
        }
        let error = receiver_url("k[1]", "hooks.slack.com/services/T0/B0/secret").unwrap_err();
        assert!(error.starts_with("k[1]: not an absolute URL"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = receiver_url("k", "http://hooks.example.com/services/secret").unwrap_err();
        assert!(error.starts_with("k: must be an https URL"), "{error}");
        assert!(
            error.contains("hooks.example.com") && !error.contains("secret"),
            "{error}"
        );
        let error = receiver_url("k", "ftp://files.example.com/x").unwrap_err();
        assert!(error.starts_with("k: the scheme"), "{error}");
    }

    #[tokio::test]
    async fn lanes_deliver_in_order_refuse_when_full_and_flush() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (taken, mut taken_rx) = mpsc::unbounded_channel();
        let lanes = {
            let seen = seen.clone();
            let gate = gate.clone();
            Lanes::start(2, 2, move |lane, job: u32| {
                let seen = seen.clone();
                let gate = gate.clone();
                let taken = taken.clone();
                async move {
                    if lane == 1 {
                        // Lane 1 is stuck until the gate opens.
                        taken.send(job).unwrap();
                        gate.acquire().await.unwrap().forget();
                    }
                    seen.lock().unwrap().push((lane, job));
                }
            })
        };
        assert!(lanes.offer(1, 10));
        assert_eq!(taken_rx.recv().await, Some(10));
        // Lane 0 keeps up while lane 1 is stuck.
        for job in 0..5 {
            assert!(lanes.offer(0, job));
            while !seen.lock().unwrap().contains(&(0, job)) {
                tokio::task::yield_now().await;
            }
        }
        // Lane 1: two more fit its queue, the rest are refused.
        let offered: Vec<bool> = (11..15).map(|job| lanes.offer(1, job)).collect();
        assert_eq!(offered, vec![true, true, false, false]);
        assert!(!lanes.flush(Duration::from_millis(50)).await);
        gate.add_permits(3);
        assert!(lanes.flush(Duration::from_secs(5)).await);
        let seen = seen.lock().unwrap().clone();
        let lane = |n: usize| -> Vec<u32> {
            seen.iter()
                .filter(|(l, _)| *l == n)
                .map(|(_, j)| *j)
                .collect()
        };
        assert_eq!(lane(0), vec![0, 1, 2, 3, 4]);
        assert_eq!(lane(1), vec![10, 11, 12]);
    }
}
