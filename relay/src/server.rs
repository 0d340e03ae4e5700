//! The relay server: options, the HTTP/WebSocket router, TLS, and shutdown. The state every
//! connection shares is [`crate::state::AppState`] (re-exported here).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::accept::{ConnectionLimits, Counter};
use crate::download::{Installer, InstallerOptions};
use crate::hub::Hub;
pub use crate::shutdown::ShutdownHandle;
pub use crate::state::{AppState, Timeouts};
use crate::store::{SessionLifetimes, Store};
use crate::{agent_endpoint, client_endpoint, download, http_api};

/// How long shutdown waits for open connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How to run a relay.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (`127.0.0.1:7878`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// SQLite file path or `sqlite://` URL.
    pub db: String,
    /// PEM certificate chain and private key; both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub timeouts: Timeouts,
    /// What `/install.sh` and `/download/agent/…` serve (nothing to download by default).
    pub installer: InstallerOptions,
    /// Messages per second per connection and requests in flight per agent.
    pub limits: crate::rate_limit::Limits,
}

/// Bounds on what peers can make the relay hold before they authenticate, and how long device
/// sessions live; [`Server::new`] uses the defaults.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Connection caps and HTTP timeouts.
    pub connections: ConnectionLimits,
    /// Passwords checked at once at most.
    pub max_login_checks: usize,
    pub sessions: SessionLifetimes,
}

impl Default for Guards {
    fn default() -> Self {
        Self {
            connections: ConnectionLimits::default(),
            max_login_checks: crate::login_limit::default_max_checks(),
            sessions: SessionLifetimes::default(),
        }
    }
}

/// A bound, ready relay. [`listen`](Server::listen) serves until shut down.
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connection_limits: ConnectionLimits,
    handle: ShutdownHandle,
    installer: Arc<Installer>,
}

/// Drains a running relay, then stops it (see [`crate::drain`]).
#[derive(Clone)]
pub struct DrainHandle {
    state: Arc<AppState>,
    handle: ShutdownHandle,
}

impl DrainHandle {
    /// Refuses new connections and requests, waits up to `timeout` for the requests in
    /// flight, then closes every connection (1001, going away) and stops accepting.
    pub async fn drain(&self, timeout: Duration) {
        crate::drain::drain(&self.state, &self.handle, timeout).await;
    }
}

impl Server {
    /// Opens the database (running migrations), loads TLS material and binds the address.
    pub async fn new(options: Options) -> anyhow::Result<Self> {
        Self::new_with(options, Guards::default()).await
    }

    /// [`new`](Self::new) with other connection bounds and session lifetimes. The connection
    /// cap is lowered to what the process's descriptor limit leaves room for.
    pub async fn new_with(options: Options, guards: Guards) -> anyhow::Result<Self> {
        let store = Store::open(&options.db)
            .await
            .with_context(|| format!("opening database {}", crate::store::redacted(&options.db)))?;
        let tls = match &options.tls {
            Some((cert, key)) => Some(load_tls(cert, key)?),
            None => None,
        };
        let installer = Arc::new(Installer::load(&options.installer, tls.is_some()).await?);
        // tokio's bind sets SO_REUSEADDR, so a restarted relay can take its port back at once.
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?
            .into_std()?;
        let (tx, rx) = watch::channel(false);
        let mut connection_limits = guards.connections;
        if let Some(nofile) = crate::accept::descriptor_limit() {
            let fits = crate::accept::connections_for_descriptors(nofile);
            if fits < connection_limits.max {
                tracing::warn!(
                    descriptors = nofile,
                    connections = fits,
                    "the descriptor limit caps connections below the configured maximum; raise LimitNOFILE"
                );
                connection_limits.max = fits;
            }
        }
        let connections = Counter::new(
            connection_limits.max,
            connection_limits.per_address,
            connection_limits.trusted_proxies.clone(),
        );
        let state = Arc::new(AppState {
            store,
            hub: Hub::new(options.limits.agent_in_flight)
                .with_stream_limits(options.limits.agent_streams, options.limits.user_streams),
            timeouts: options.timeouts,
            shutdown: rx,
            tasks: TaskTracker::new(),
            login_limit: crate::login_limit::LoginLimiter::new(guards.max_login_checks),
            limits: options.limits,
            trusted_proxies: connection_limits.trusted_proxies.clone(),
            sessions: guards.sessions,
            connections,
            installer: installer.clone(),
            registry_key: crate::registry_key::RegistryKey::for_db(&options.db),
            agent_updates: Default::default(),
        });
        let handle = ShutdownHandle::new(tx);
        Ok(Self {
            state,
            listener,
            tls,
            connection_limits,
            handle,
            installer,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The base URL clients and agents use (`http://127.0.0.1:PORT`, or `https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr())
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Drains then stops this relay from elsewhere (`SIGTERM`; see [`crate::drain`]).
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            state: self.state.clone(),
            handle: self.handle.clone(),
        }
    }

    /// The database, for administration in the same process (tests, benchmarks).
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// Joins a cluster of relays over NATS (see [`crate::cluster`]); before [`listen`](Self::listen).
    pub async fn join_cluster(
        &self,
        options: &crate::cluster::ClusterOptions,
    ) -> anyhow::Result<()> {
        crate::cluster::join(&self.state, options).await
    }

    /// The live state, for tests and benchmarks that wait on connections.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until [`ShutdownHandle::shutdown`], then waits briefly for connections to close.
    pub async fn listen(self) -> anyhow::Result<()> {
        let limits = self.connection_limits.clone();
        let app = router(
            self.state.clone(),
            self.installer.clone(),
            limits.request_timeout,
        );
        tracing::info!(
            addr = %self.local_addr(),
            tls = self.tls.is_some(),
            max_connections = limits.max,
            max_connections_per_address = limits.per_address,
            header_timeout = ?limits.header_timeout,
            login_checks = self.state.login_limit.max_checks(),
            "relay listening"
        );
        if self.tls.is_none() && !self.local_addr().ip().is_loopback() {
            // Fine behind a TLS proxy on the same network; a mistake anywhere else.
            tracing::warn!(
                addr = %self.local_addr(),
                "serving plain HTTP on an address other machines can reach: passwords and tokens \
                 cross the network unencrypted unless a TLS proxy is in front; give --tls-cert \
                 and --tls-key, or listen on 127.0.0.1 behind the proxy"
            );
        }
        tokio::spawn(crate::revocation::watch(self.state.clone()));
        self.listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        crate::accept::serve(
            listener,
            app,
            self.tls,
            &limits,
            self.state.connections.clone(),
            self.state.shutdown.clone(),
            SHUTDOWN_GRACE,
        )
        .await;
        self.state.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.state.tasks.wait()).await;
        // The connections' last answers and departures for the other relays of a cluster.
        self.state.hub.flush_cluster(SHUTDOWN_GRACE).await;
        self.state.store.close().await;
        tracing::info!("relay stopped");
        Ok(())
    }
}

fn router(state: Arc<AppState>, installer: Arc<Installer>, request_timeout: Duration) -> Router {
    Router::new()
        .merge(download::router(installer))
        .route("/healthz", get(http_api::healthz))
        .route("/readyz", get(http_api::readyz))
        .route("/api/login", post(http_api::login))
        .route("/api/logout", post(http_api::logout))
        .route("/ws/agent", any(agent_endpoint::upgrade))
        .route("/ws/client", any(client_endpoint::upgrade))
        .layer(DefaultBodyLimit::max(http_api::MAX_BODY_BYTES))
        // A request must arrive whole and be answered in time (a WebSocket upgrade is answered
        // at once; the socket then lives on its own).
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => axum::http::StatusCode::REQUEST_TIMEOUT.into_response(),
                }
            },
        ))
        .with_state(state)
}

/// Reads a PEM certificate chain and key into a rustls server configuration (HTTP/1.1 only:
/// WebSockets do not run over HTTP/2 here).
fn load_tls(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let cert_pem = std::fs::read(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?;
    let key_pem =
        std::fs::read(key).with_context(|| format!("reading TLS key {}", key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no PEM certificate in {}",
        cert.display()
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("parsing TLS key {}", key.display()))?
        .with_context(|| format!("no PEM private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match or are unsupported")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
