//! The relay server: options, shared state, the HTTP/WebSocket router, TLS, and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::download::{Installer, InstallerOptions};
use crate::hub::Hub;
use crate::store::Store;
use crate::{agent_endpoint, client_endpoint, download, http_api};

/// How long shutdown waits for open connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Timeouts the relay applies; defaults from the protocol, shorter in tests.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub list: Duration,
    pub operation: Duration,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            list: zedops_protocol::LIST_TIMEOUT,
            operation: zedops_protocol::OPERATION_TIMEOUT,
            heartbeat_interval: zedops_protocol::HEARTBEAT_INTERVAL,
            heartbeat_timeout: zedops_protocol::HEARTBEAT_TIMEOUT,
        }
    }
}

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

/// What every connection task shares.
pub struct AppState {
    pub store: Store,
    pub hub: Hub,
    pub timeouts: Timeouts,
    /// Flips to `true` when the relay shuts down; connection tasks close their sockets.
    pub shutdown: watch::Receiver<bool>,
    /// Every connection task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Failed logins, for brute-force protection.
    pub login_limit: crate::login_limit::LoginLimiter,
    /// Per-connection message rate and per-agent request limits.
    pub limits: crate::rate_limit::Limits,
}

/// A bound, ready relay. [`listen`](Server::listen) serves until shut down.
pub struct Server {
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    handle: ShutdownHandle,
    installer: Arc<Installer>,
}

/// Stops a running relay from elsewhere.
#[derive(Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
    http: axum_server::Handle,
}

impl ShutdownHandle {
    /// Closes every connection and stops accepting new ones.
    pub fn shutdown(&self) {
        let _ = self.tx.send(true);
        self.http.graceful_shutdown(Some(SHUTDOWN_GRACE));
    }
}

impl Server {
    /// Opens the database (running migrations), loads TLS material and binds the address.
    pub async fn new(options: Options) -> anyhow::Result<Self> {
        let store = Store::open(&options.db)
            .await
            .with_context(|| format!("opening database {}", options.db))?;
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
        let state = Arc::new(AppState {
            store,
            hub: Hub::new(options.limits.agent_in_flight),
            timeouts: options.timeouts,
            shutdown: rx,
            tasks: TaskTracker::new(),
            login_limit: Default::default(),
            limits: options.limits,
        });
        let handle = ShutdownHandle {
            tx: Arc::new(tx),
            http: axum_server::Handle::new(),
        };
        Ok(Self {
            state,
            listener,
            tls,
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

    /// The database, for administration in the same process (tests, benchmarks).
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// The live state, for tests and benchmarks that wait on connections.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until [`ShutdownHandle::shutdown`], then waits briefly for connections to close.
    pub async fn listen(self) -> anyhow::Result<()> {
        let app = router(self.state.clone(), self.installer.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(addr = %self.local_addr(), tls = self.tls.is_some(), "relay listening");
        tokio::spawn(crate::revocation::watch(self.state.clone()));
        match self.tls {
            Some(tls) => {
                axum_server::from_tcp_rustls(self.listener, tls)
                    .handle(self.handle.http)
                    .serve(app)
                    .await?
            }
            None => {
                axum_server::from_tcp(self.listener)
                    .handle(self.handle.http)
                    .serve(app)
                    .await?
            }
        }
        self.state.tasks.close();
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.state.tasks.wait()).await;
        self.state.store.close().await;
        tracing::info!("relay stopped");
        Ok(())
    }
}

fn router(state: Arc<AppState>, installer: Arc<Installer>) -> Router {
    Router::new()
        .merge(download::router(installer))
        .route("/healthz", get(http_api::healthz))
        .route("/api/login", post(http_api::login))
        .route("/api/logout", post(http_api::logout))
        .route("/ws/agent", any(agent_endpoint::upgrade))
        .route("/ws/client", any(client_endpoint::upgrade))
        .layer(DefaultBodyLimit::max(http_api::MAX_BODY_BYTES))
        .with_state(state)
}

/// Reads a PEM certificate chain and key into a rustls server configuration (HTTP/1.1 only:
/// WebSockets do not run over HTTP/2 here).
fn load_tls(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<RustlsConfig> {
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
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
