//! The HTTP listener of the front: accepts connections and serves the
//! router on them, holding against slow and hostile clients.
//!
//! - **Connection caps**: at most `max_connections` open connections, and
//!   `max_connections_per_address` from one address; a connection beyond
//!   either is closed at accept (counted by reason).
//! - **Header-read timeout**: a request head (request line and headers)
//!   must arrive within `header_read_timeout` of the connection waiting for
//!   it, so a slowloris client that trickles half a request is cut off,
//!   and so is a keep-alive connection that sends nothing more.
//! - **Idle timeout**: a connection on which nothing is read or written for
//!   `idle_timeout` is closed (a slow body, a client that stopped reading).
//!   Open SSE streams carry keep-alives and stay.
//! - **Head limits**: more than `max_headers` headers, or a head larger
//!   than `max_header_bytes`, gets 431.
//!
//! Each connection is served on its own task, so a slow client never delays
//! another one; `/healthz` and real clients are served while an attack runs.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// How long open connections get to finish when the front stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The limits of [`serve`], from `[server]`.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections: server.max_connections,
            max_connections_per_address: server.max_connections_per_address,
            max_header_bytes: server.max_header_bytes,
            max_headers: server.max_headers,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting, lets open connections finish (at most [`SHUTDOWN_GRACE`])
/// and returns. Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let slots = Arc::new(Slots::new(&limits));
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving
                    // the connections there are, try again shortly.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics.http_connection(&metrics.http_connections_refused, reason);
                tracing::debug!(%peer, reason, "connection refused at accept");
                drop(tcp);
                continue;
            }
        };
        connections.spawn(connection(
            tcp,
            peer,
            app.clone(),
            builder.clone(),
            limits.idle_timeout,
            metrics.clone(),
            shutdown.clone(),
            slot,
        ));
    }
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
    Ok(())
}

/// Serves one connection until it ends, idles out, or the front stops.
#[allow(clippy::too_many_arguments)]
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    idle_timeout: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
    _slot: Slot,
) {
    // Small SSE writes must not wait for delayed ACKs (~40 ms per message).
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    metrics.http_connections.inc();
    let activity = Activity::default();
    let io = TokioIo::new(Watched {
        inner: tcp,
        activity: activity.clone(),
    });
    let service = TowerToHyperService::new(tower::service_fn(
        move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request.map(axum::body::Body::new))
        },
    ));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    let reason = closed_reason(&*error);
                    if let Some(reason) = reason {
                        metrics.http_connection(&metrics.http_connections_closed, reason);
                    }
                    tracing::debug!(%peer, %error, reason, "connection ended with an error");
                }
                break;
            }
            () = activity.idle_for(idle_timeout) => {
                metrics.http_connection(&metrics.http_connections_closed, "idle_timeout");
                tracing::debug!(%peer, timeout = ?idle_timeout, "idle connection closed");
                break;
            }
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    metrics.http_connections.dec();
}

/// The `http_connections_closed` reason of a connection error, if it is
/// one the front caused (a client that merely went away is not counted).
fn closed_reason(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut source = Some(error);
    while let Some(error) = source {
        if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Some("header_timeout");
            }
            if hyper.is_parse() || hyper.is_parse_too_large() {
                return Some("bad_request");
            }
        }
        source = error.source();
    }
    None
}

/// When a connection last read or wrote anything.
#[derive(Clone)]
struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once nothing was read or written for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A stream that records its activity.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Open connections, in all and per address.
struct Slots {
    max: usize,
    per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open connection's place; freed when dropped.
struct Slot {
    slots: Arc<Slots>,
    address: IpAddr,
}

impl Slots {
    fn new(limits: &Limits) -> Self {
        Self {
            max: limits.max_connections,
            per_address: limits.max_connections_per_address,
            open: Mutex::new((0, HashMap::new())),
        }
    }

    fn take(self: &Arc<Self>, address: IpAddr) -> Result<Slot, &'static str> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let (total, by_address) = &mut *open;
        if *total >= self.max {
            return Err("limit");
        }
        let from_address = by_address.entry(address).or_insert(0);
        if *from_address >= self.per_address {
            return Err("address_limit");
        }
        *from_address += 1;
        *total += 1;
        Ok(Slot {
            slots: self.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (total, by_address) = &mut *open;
        *total -= 1;
        if let Some(count) = by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(30),
            max_connections: max,
            max_connections_per_address: per_address,
            max_header_bytes: 8192,
            max_headers: 10,
        }
    }

    #[test]
    fn slots_cap_all_connections_and_each_address() {
        let slots = Arc::new(Slots::new(&limits(3, 2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert_eq!(slots.take(a).err(), Some("address_limit"));
        let _b1 = slots.take(b).unwrap();
        assert_eq!(slots.take(b).err(), Some("limit"));
        drop(a1);
        let _b2 = slots.take(b).unwrap();
        assert_eq!(slots.take(a).err(), Some("limit"));
    }

    #[test]
    fn a_freed_address_leaves_no_entry() {
        let slots = Arc::new(Slots::new(&limits(3, 2)));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        drop(slots.take(a).unwrap());
        assert!(slots.open.lock().unwrap().1.is_empty());
        assert_eq!(slots.open.lock().unwrap().0, 0);
    }
}
