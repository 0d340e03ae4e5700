//! The relay's accept loop: every TCP connection is counted from `accept` to close (through a
//! WebSocket upgrade too), capped globally and per client address before anything is read, and
//! served as HTTP/1.1 with a deadline on the TLS handshake and on every request's headers (which
//! also closes keep-alive connections left idle). Slow or silent peers therefore hold a bounded
//! number of descriptors for a bounded time. At the global cap, a new connection closes the
//! oldest one that has not sent a whole request yet (as nginx drains reusable connections), so
//! silent connections from many addresses cannot keep real users out until they time out.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Default cap on open connections (HTTP and WebSocket, any state).
pub const MAX_CONNECTIONS: usize = 20_000;
/// Default cap on open connections from one client address (trusted proxies are exempt).
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// Default time a peer has for the TLS handshake and for each request's headers, and the
/// longest an HTTP connection may sit idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time a request has to arrive whole and be answered (the body of a login included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a write may make no progress (the peer stopped reading) before the connection
/// is closed, HTTP and WebSocket alike.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Descriptors kept free for the database, the listener and the rest when the connection cap
/// is derived from the process's descriptor limit.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Largest request head a connection buffers (hyper's default is ~400 KiB per connection).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How often a refusal is logged at most while refusals continue.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The connection bounds of a running relay.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections at most (lowered to what the descriptor limit allows).
    pub max: usize,
    /// Open connections from one address at most.
    pub per_address: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub send_timeout: Duration,
    /// Peers whose forwarding headers are believed and who are not capped per address.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max: MAX_CONNECTIONS,
            per_address: MAX_CONNECTIONS_PER_ADDRESS,
            header_timeout: HEADER_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            send_timeout: SEND_TIMEOUT,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The most connections the descriptor limit `nofile` leaves room for.
pub fn connections_for_descriptors(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(nofile / 2);
    usize::try_from(usable).unwrap_or(usize::MAX)
}

/// The current soft descriptor limit, if the platform has one.
pub fn descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft descriptor limit to the hard one (systemd and shells start most services
/// at 1,024, which a busy relay outgrows). Returns the limit in force afterwards.
pub fn raise_descriptor_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // Under a seccomp filter that forbids setrlimit the limit stays as it is.
        rlimit::increase_nofile_limit(u64::MAX)
            .ok()
            .or_else(descriptor_limit)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Counts open connections in total and per address.
pub struct Counter {
    max: usize,
    per_address: usize,
    trusted: Vec<IpNet>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Connections that have not sent a whole request yet, oldest first: closed to make room.
    waiting: BTreeMap<u64, CancellationToken>,
    next_id: u64,
    refused: u64,
    drained: u64,
    last_warn: Option<Instant>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    Address,
}

impl Counter {
    pub fn new(max: usize, per_address: usize, trusted: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_address,
            trusted,
            open: Mutex::default(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().expect("counter lock").total
    }

    /// Admits a connection from `ip`, or says which cap is full. At the global cap the oldest
    /// connection still waiting for its first request is told to close (its place frees when
    /// it has), and this one is admitted.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let ip = ip.to_canonical();
        let capped = !self.trusted.iter().any(|net| net.contains(&ip));
        let mut open = self.open.lock().expect("counter lock");
        let full = if capped && open.by_address.get(&ip).copied().unwrap_or(0) >= self.per_address {
            Some(Full::Address)
        } else if open.total >= self.max {
            match open.waiting.pop_first() {
                Some((_, close)) => {
                    close.cancel();
                    open.drained += 1;
                    None
                }
                None => Some(Full::Total),
            }
        } else {
            None
        };
        if let Some(full) = full {
            open.refused += 1;
            let now = Instant::now();
            if open
                .last_warn
                .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
            {
                warn!(
                    %ip,
                    cap = ?full,
                    refused = open.refused,
                    drained = open.drained,
                    open = open.total,
                    "refusing connections: at the connection limit"
                );
                open.last_warn = Some(now);
                open.refused = 0;
                open.drained = 0;
            }
            return Err(full);
        }
        open.total += 1;
        if capped {
            *open.by_address.entry(ip).or_default() += 1;
        }
        let id = open.next_id;
        open.next_id += 1;
        let close = CancellationToken::new();
        open.waiting.insert(id, close.clone());
        Ok(Slot {
            counter: self.clone(),
            ip: capped.then_some(ip),
            id,
            close,
        })
    }

    /// The connection `id` sent a whole request: it is no longer drained to make room.
    fn mark_active(&self, id: u64) {
        self.open.lock().expect("counter lock").waiting.remove(&id);
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    counter: Arc<Counter>,
    ip: Option<IpAddr>,
    id: u64,
    /// Cancelled when the connection is drained to make room.
    close: CancellationToken,
}

impl Slot {
    /// The connection sent a whole request: it is no longer drained to make room.
    fn active(&self) -> Active {
        Active {
            counter: self.counter.clone(),
            id: self.id,
        }
    }
}

/// Marks a connection as having sent a request (see [`Slot::active`]).
#[derive(Clone)]
struct Active {
    counter: Arc<Counter>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().expect("counter lock");
        open.waiting.remove(&self.id);
        open.total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = open.by_address.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&ip);
            }
        }
    }
}

/// A stream that holds its connection's [`Slot`] for as long as it lives, so a connection
/// upgraded to a WebSocket stays counted, and fails a write that makes no progress for the send
/// timeout, so a peer that stops reading cannot hold its connection (and what waits to be
/// written to it) for ever.
pub struct Counted<S> {
    inner: S,
    _slot: Slot,
    send_timeout: Duration,
    /// Armed while writes are pending; reset by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Counted<S> {
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.send_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts and serves connections until `shutdown` flips, then gives open HTTP requests
/// `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: &ConnectionLimits,
    counter: Arc<Counter>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let http = Arc::new(http);
    let handshake_timeout = limits.header_timeout;
    let connections = TaskTracker::new();
    let mut last_accept_warn: Option<Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory for a moment: the connection waits in the
                    // backlog; accepting again at once would only spin.
                    if last_accept_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        warn!(%e, "cannot accept a connection; retrying");
                        last_accept_warn = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(slot) = counter.admit(peer.ip()) else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (active, drained) = (slot.active(), slot.close.clone());
        let stream = Counted {
            inner: tcp,
            _slot: slot,
            send_timeout: limits.send_timeout,
            stalled: None,
        };
        let (router, http, tls, shutdown) =
            (router.clone(), http.clone(), tls.clone(), shutdown.clone());
        connections.spawn(async move {
            let serve = async {
                match tls {
                    None => {
                        serve_connection(stream, peer, router, &http, active, shutdown, grace).await
                    }
                    Some(tls) => {
                        match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                serve_connection(
                                    stream, peer, router, &http, active, shutdown, grace,
                                )
                                .await
                            }
                            Ok(Err(e)) => debug!(%peer, %e, "TLS handshake failed"),
                            Err(_) => debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = drained.cancelled() => debug!(%peer, "closed to make room: no request yet"),
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        info!("closing HTTP connections still open after the shutdown grace period");
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    http: &hyper::server::conn::http1::Builder,
    active: Active,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        active.counter.mark_active(active.id);
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            Ok::<_, Infallible>(
                tower::ServiceExt::oneshot(router, request)
                    .await
                    .unwrap_or_else(|never| match never {}),
            )
        }
    });
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests from one peer end that connection only.
        debug!(%peer, %e, "HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_are_capped_in_total_and_per_address_and_freed_on_drop() {
        let counter = Counter::new(3, 2, vec!["10.0.0.0/8".parse().unwrap()]);
        let a1 = counter.admit(ip("192.0.2.1")).unwrap();
        let a2 = counter.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(counter.admit(ip("192.0.2.1")).err(), Some(Full::Address));
        assert_eq!(
            counter.admit(ip("::ffff:192.0.2.1")).err(),
            Some(Full::Address),
            "an IPv4-mapped address counts as the IPv4 one"
        );
        // A trusted proxy is not capped per address, only in total.
        let p = counter.admit(ip("10.0.0.5")).unwrap();
        assert_eq!(counter.open(), 3);
        // Every connection has sent a request: at the cap, the next one is refused.
        for slot in [&a1, &a2, &p] {
            let active = slot.active();
            active.counter.mark_active(active.id);
        }
        assert_eq!(counter.admit(ip("10.0.0.5")).err(), Some(Full::Total));
        drop(a1);
        assert_eq!(counter.open(), 2);
        let _a3 = counter.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(counter.open(), 3);
    }

    #[test]
    fn at_the_cap_the_oldest_connection_without_a_request_makes_room() {
        let counter = Counter::new(2, 10, Vec::new());
        let silent = counter.admit(ip("192.0.2.1")).unwrap();
        let busy = counter.admit(ip("192.0.2.2")).unwrap();
        let active = busy.active();
        active.counter.mark_active(active.id);
        let newcomer = counter
            .admit(ip("192.0.2.3"))
            .expect("a silent one makes room");
        assert!(
            silent.close.is_cancelled(),
            "the silent connection is told to close"
        );
        assert!(!busy.close.is_cancelled() && !newcomer.close.is_cancelled());
        drop(silent);
        assert_eq!(counter.open(), 2);
    }

    #[test]
    fn the_descriptor_limit_leaves_room_for_the_relay_itself() {
        assert_eq!(connections_for_descriptors(1024), 896);
        assert_eq!(connections_for_descriptors(65536), 65408);
        assert_eq!(connections_for_descriptors(100), 50);
    }
}
