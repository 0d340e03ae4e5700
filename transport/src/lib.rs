//! The dialling side of the ZedOps wire, shared by the agent and the client: mapping a relay base
//! URL to its endpoints, TLS trust (system roots plus an optional private CA), a typed WebSocket
//! connection that speaks [`zedops_protocol`] frames, and reconnect backoff; and the token bucket
//! with which the relay limits each connection and the agent paces itself to that limit.

pub mod backoff;
pub mod connection;
pub mod endpoint;
mod error_text;
pub mod tls;
pub mod token_bucket;

pub use backoff::Backoff;
pub use connection::{FrameReader, FrameWriter, connect, hello, websocket_config};
pub use endpoint::{RelayUrl, host_is_loopback};
pub use error_text::error_chain;
pub use tls::client_config;
pub use token_bucket::TokenBucket;

/// Everything that can go wrong while dialling or talking to the relay.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid relay URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "refusing plaintext {scheme}:// to {host}, which is not this machine: use https:// (wss://), \
         or pass --insecure if you accept that tokens cross the network unencrypted"
    )]
    PlaintextRefused { scheme: String, host: String },
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot reach the relay at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// A `https://`/`wss://` URL (or one without a scheme, taken as `https://`) reached a relay
    /// that speaks plain HTTP.
    #[error(
        "the relay at {url} answered without TLS; if it runs without --tls-cert (on loopback or \
         behind a proxy), give its URL as {plain}"
    )]
    NoTls { url: String, plain: String },
    #[error("connection to the relay failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the relay sent a frame this version cannot read: {0}")]
    Protocol(#[from] zedops_protocol::ProtocolError),
    #[error("the relay did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the relay closed the connection")]
    Closed,
    #[error("the relay refused: {0}")]
    Refused(zedops_protocol::ErrorReply),
}

impl TransportError {
    /// How long the relay asked the dialler to wait before the next attempt: a WebSocket
    /// upgrade answered 503 with `Retry-After` in seconds, as a draining relay answers ("try
    /// again in a second, through the load balancer, to another relay"). None for every other
    /// failure, whose retries keep their exponential backoff. At most [`backoff::MAX_DELAY`].
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use tokio_tungstenite::tungstenite::Error;
        // An upgrade's answer only comes back from dialling (`connect`), never mid-connection.
        let Self::Connect { source, .. } = self else {
            return None;
        };
        let Error::Http(response) = source.as_ref() else {
            return None;
        };
        if response.status()
            != tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE
        {
            return None;
        }
        let seconds: u64 = response
            .headers()
            .get(tokio_tungstenite::tungstenite::http::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(std::time::Duration::from_secs(seconds).min(backoff::MAX_DELAY))
    }
}
