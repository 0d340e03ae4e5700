//! A typed wrapper over one accepted WebSocket: frames in, frames out. Handlers never see raw
//! WebSocket messages, and every way a peer can misbehave arrives as one [`Incoming`] variant.
//! Also what both endpoints (agents and clients) do alike: accept an upgrade within the
//! relay's limits, receive the hello, and check its version and the message rate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use serde::Serialize;
use tracing::{Instrument, warn};
use zedops_protocol::{
    Envelope, ErrorCode, ErrorReply, Frame, HELLO_TIMEOUT, MAX_FRAME_BYTES, PROTOCOL_VERSION,
    ProtocolError, subject,
};

use crate::rate_limit::{MessageLimiter, Verdict};
use crate::state::AppState;

/// Bytes tungstenite reads from the socket at a time. Its default (128 KiB) would be held by
/// every idle connection; frames larger than this still arrive, in several reads.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Outgoing bytes buffered before a write is flushed.
pub const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Open WebSocket connections (agents and clients together) the relay accepts; more are
/// refused with 503 before the upgrade, so a flood cannot exhaust memory or descriptors.
pub const MAX_CONNECTIONS: usize = 20_000;

/// The answer to an upgrade over [`MAX_CONNECTIONS`].
pub fn too_many_connections() -> axum::response::Response {
    use axum::response::IntoResponse;
    let reply = zedops_protocol::ErrorReply::new(
        ErrorCode::RateLimited,
        format!("the relay is at its limit of {MAX_CONNECTIONS} connections; retry later"),
    );
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(reply),
    )
        .into_response()
}

/// Applies the relay's frame limits and buffer sizes to an upgrade.
pub fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
}

/// Accepts an upgrade from `addr`, to be served by `serve` inside `span` as a task the relay
/// tracks (so a shutdown waits for it), unless the relay is at [`MAX_CONNECTIONS`] or draining.
pub fn accept<F, Fut>(
    state: Arc<AppState>,
    addr: SocketAddr,
    ws: WebSocketUpgrade,
    span: tracing::Span,
    serve: F,
) -> axum::response::Response
where
    F: FnOnce(Arc<AppState>, Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if state.tasks.len() >= MAX_CONNECTIONS {
        tracing::warn!(%addr, "refused a connection: at the connection limit");
        return too_many_connections();
    }
    if state.hub.drain.is_draining() {
        return crate::draining::refuse_upgrade();
    }
    configure(ws).on_upgrade(move |ws| {
        let tasks = state.tasks.clone();
        tasks.track_future(serve(state, Socket::new(ws)).instrument(span))
    })
}

/// Lets the other ready tasks run once before a write. Under load the queue behind a frame was
/// usually empty at the moment of writing, the next answer a few microseconds from ready, so
/// nearly every frame went out in a system call (and a TCP segment) of its own: a third of the
/// relay's time routing `container.list` (BENCHMARKS.md). A lone frame waits one turn of the
/// scheduler, microseconds.
pub async fn step_aside() {
    tokio::task::yield_now().await;
}

/// What arrived from the peer.
pub enum Incoming {
    /// A well-formed frame.
    Frame(Frame),
    /// A text frame that does not decode; the connection stays usable.
    Invalid(ProtocolError),
    /// A message over [`MAX_FRAME_BYTES`]; the connection cannot continue.
    TooLarge,
    /// The peer closed the connection or it broke.
    Closed,
}

/// One peer's connection.
pub struct Socket {
    ws: WebSocket,
}

impl Socket {
    pub fn new(ws: WebSocket) -> Self {
        Self { ws }
    }

    /// The next thing the peer sent. Pings and pongs are handled underneath.
    /// Cancel-safe, so it can sit in a `select!`.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            match self.ws.recv().await {
                None => return Incoming::Closed,
                Some(Ok(Message::Text(text))) => {
                    return match Frame::decode(text.as_str()) {
                        Ok(frame) => Incoming::Frame(frame),
                        Err(e) => Incoming::Invalid(e),
                    };
                }
                Some(Ok(Message::Binary(_))) => {
                    return Incoming::Invalid(ProtocolError::Malformed(
                        "binary frames are not part of the protocol; send JSON text frames".into(),
                    ));
                }
                Some(Ok(Message::Close(_))) => return Incoming::Closed,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Err(e)) => {
                    use tokio_tungstenite::tungstenite::Error as WsError;
                    let inner = e.into_inner();
                    let error = inner.downcast_ref::<WsError>();
                    if matches!(error, Some(WsError::Utf8(_))) {
                        // RFC 6455 §8.1: a text frame that is not UTF-8 fails the connection
                        // with 1007 (invalid frame payload data).
                        let frame = CloseFrame {
                            code: close_code::INVALID,
                            reason: "text frames must be valid UTF-8".into(),
                        };
                        let _ = self.ws.send(Message::Close(Some(frame))).await;
                        return Incoming::Closed;
                    }
                    return if matches!(error, Some(WsError::Capacity(_))) {
                        Incoming::TooLarge
                    } else {
                        Incoming::Closed
                    };
                }
            }
        }
    }

    /// Sends one envelope.
    /// The peer's hello: its first frame, within [`HELLO_TIMEOUT`]. A malformed or oversize
    /// one, or none in time (refused saying `missing`), is refused here and `None` returned.
    pub async fn hello(mut self, missing: &str) -> Option<(Self, Frame)> {
        match tokio::time::timeout(HELLO_TIMEOUT, self.recv()).await {
            Ok(Incoming::Frame(frame)) => Some((self, frame)),
            Ok(Incoming::Invalid(e)) => {
                warn!(error = ?e, "refused a malformed hello");
                self.refuse(ErrorCode::InvalidRequest, e.to_string()).await;
                None
            }
            Ok(Incoming::TooLarge) => {
                self.refuse_too_large().await;
                None
            }
            Ok(Incoming::Closed) => None,
            Err(_) => {
                warn!("no hello within the deadline");
                self.refuse(ErrorCode::Unauthorized, missing).await;
                None
            }
        }
    }

    pub async fn send<T: Serialize>(
        &mut self,
        envelope: &Envelope<'_, T>,
    ) -> Result<(), axum::Error> {
        self.send_text(envelope.to_json()).await
    }

    /// Sends one already-encoded frame.
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), axum::Error> {
        self.ws.send(Message::Text(text.into().into())).await
    }

    /// Queues one already-encoded frame without writing it out: [`Socket::flush`] does. Lets a
    /// burst of ready frames leave in a few writes instead of one system call each.
    pub async fn feed_text(&mut self, text: String) -> Result<(), axum::Error> {
        use futures_util::SinkExt;
        self.ws.feed(Message::Text(text.into())).await
    }

    /// Writes out whatever [`Socket::feed_text`] queued.
    pub async fn flush(&mut self) -> Result<(), axum::Error> {
        use futures_util::SinkExt;
        self.ws.flush().await
    }

    /// Sends an error: to `reply` when the peer gave an inbox, else as an `error` frame.
    pub async fn send_error(
        &mut self,
        reply: Option<&str>,
        error: &ErrorReply,
    ) -> Result<(), axum::Error> {
        self.send(&Envelope::new(reply.unwrap_or(subject::ERROR), error))
            .await
    }

    /// Sends a ping so that dead peers are noticed and proxies keep the connection open.
    pub async fn ping(&mut self) -> Result<(), axum::Error> {
        self.ws.send(Message::Ping(Default::default())).await
    }

    /// Sends an `error` frame, then closes with `code`.
    pub async fn refuse(mut self, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        let _ = self
            .send_error(None, &ErrorReply::new(code, message.clone()))
            .await;
        let close = match code {
            ErrorCode::InvalidRequest => close_code::POLICY,
            ErrorCode::Unauthorized | ErrorCode::Forbidden => close_code::POLICY,
            ErrorCode::UnsupportedVersion => close_code::PROTOCOL,
            _ => close_code::NORMAL,
        };
        self.close(close, &message).await;
    }

    /// Closes with a code and a reason (truncated to what a close frame can carry).
    pub async fn close(mut self, code: u16, reason: &str) {
        let mut end = reason.len().min(120);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let frame = CloseFrame {
            code,
            reason: reason[..end].into(),
        };
        let _ = self.ws.send(Message::Close(Some(frame))).await;
    }

    /// What a connection's loop does with anything but a frame (a frame is given back to it
    /// untouched): a malformed frame is answered with its error and the connection goes on;
    /// one over the limit is refused and ends it, as does the peer closing (`None`). `peer`
    /// names the side in the log.
    pub async fn not_a_frame(mut self, incoming: Incoming, peer: &'static str) -> Option<Self> {
        match incoming {
            Incoming::Frame(_) => {}
            Incoming::Invalid(e) => {
                tracing::warn!(peer, error = ?e, "malformed frame");
                let _ = self.send_error(None, &e.to_reply()).await;
            }
            Incoming::TooLarge => {
                tracing::warn!(peer, "frame over the limit; closing");
                self.refuse_too_large().await;
                return None;
            }
            Incoming::Closed => return None,
        }
        Some(self)
    }

    /// Tells the peer its message was over the limit and closes with 1009 (message too big).
    pub async fn refuse_too_large(mut self) {
        let message = format!("frame exceeds the {MAX_FRAME_BYTES} byte limit");
        let _ = self
            .send_error(
                None,
                &ErrorReply::new(ErrorCode::InvalidRequest, message.clone()),
            )
            .await;
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: close_code::SIZE,
                reason: message.into(),
            })))
            .await;
        self.linger();
    }

    /// Keeps the socket open a moment after a close sent mid-message. The rest of the peer's
    /// oversize message is still arriving unread; closing the TCP connection on it would make
    /// the kernel answer with a reset, and a reset makes the peer's kernel throw away our
    /// error and close frames before the peer reads them. A bounded number linger at a time
    /// (past that the socket closes at once), each for at most [`LINGER`], off the caller's
    /// task so that the connection's own cleanup is not delayed.
    fn linger(self) {
        static LINGERING: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
            std::sync::LazyLock::new(|| {
                std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_LINGERING))
            });
        let Ok(permit) = LINGERING.clone().try_acquire_owned() else {
            return;
        };
        let ws = self.ws;
        tokio::spawn(async move {
            // Nothing more can be read: after the oversize error the stream is finished for
            // tungstenite, so the peer's own close cannot be seen. Holding is all there is.
            tokio::time::sleep(LINGER).await;
            drop(ws);
            drop(permit);
        });
    }
}

/// How long a socket closed for an oversize message stays open for the peer to read why.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// Sockets lingering at once; more close at once (a flood of oversize frames holds at most
/// this many for [`LINGER`]).
const MAX_LINGERING: usize = 256;

// ---- checks both endpoints apply ---------------------------------------------------------------

/// The `protocolVersion` a hello says, if it says one.
pub fn hello_version(hello: &Frame) -> Option<u32> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        protocol_version: Option<u32>,
    }
    serde_json::from_str::<Versioned>(hello.raw_data())
        .ok()
        .and_then(|v| v.protocol_version)
}

/// Refuses a hello from a protocol version this relay does not speak (it speaks
/// `MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION`) with a message naming both versions.
pub fn check_version(hello: &Frame) -> Result<(), ErrorReply> {
    match hello_version(hello) {
        Some(seen)
            if (zedops_protocol::MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&seen) =>
        {
            Ok(())
        }
        Some(other) => Err(ErrorReply::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this relay speaks protocol {} to {PROTOCOL_VERSION}, the peer speaks {other}; upgrade the older side",
                zedops_protocol::MIN_PROTOCOL_VERSION
            ),
        )),
        None => Err(ErrorReply::new(
            ErrorCode::InvalidRequest,
            "the hello has no protocolVersion",
        )),
    }
}

/// Applies the message rate limit to one incoming frame. Over the limit the peer is told
/// `RATE_LIMITED` (to the frame's inbox when it has one); a peer that keeps flooding is told so,
/// and the caller closes the connection on [`Verdict::Close`].
pub async fn rate_check(
    limiter: &mut MessageLimiter,
    socket: &mut Socket,
    incoming: &Incoming,
) -> Verdict {
    let was_limited = limiter.limited;
    let reply_to = match incoming {
        Incoming::Frame(frame) => frame.reply.as_deref(),
        _ => None,
    };
    let verdict = limiter.check();
    match verdict {
        Verdict::Allow => {}
        Verdict::Refuse => {
            if !was_limited {
                warn!("peer over its message rate limit; refusing with RATE_LIMITED");
            }
            let reply = crate::failure::rate_limited(
                "too many messages on this connection; slow down (the relay allows a sustained rate per connection with a short burst)",
                1,
            );
            let _ = socket.send_error(reply_to, &reply).await;
        }
        Verdict::Close => {
            warn!("peer kept flooding over its message rate limit; closing the connection");
            let reply = ErrorReply::new(
                ErrorCode::RateLimited,
                "too many messages after being told to slow down; closing this connection",
            );
            let _ = socket.send_error(None, &reply).await;
        }
    }
    verdict
}
