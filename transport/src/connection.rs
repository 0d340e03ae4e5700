//! A WebSocket connection to the relay, split into a typed writer and reader of protocol frames.
//! Callers never touch raw WebSocket messages.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use zedops_protocol::{Envelope, Frame, MAX_FRAME_BYTES, ProtocolError};

use crate::TransportError;

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long dialling (TCP, TLS and the WebSocket upgrade) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The sending half.
pub struct FrameWriter {
    sink: SplitSink<Stream, Message>,
}

/// The receiving half.
pub struct FrameReader {
    stream: SplitStream<Stream>,
    /// When anything at all (frame, ping, pong) last arrived: pings prove the peer is alive
    /// even when it has nothing to say.
    last_activity: tokio::time::Instant,
}

/// The WebSocket settings both halves use: frames capped at the protocol limit.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// Why dialling `url` failed. A TLS handshake answered with plain HTTP (the record's content
/// type is not TLS) is said in plain words: the URL needs `http://`.
fn connect_error(url: &str, err: tokio_tungstenite::tungstenite::Error) -> TransportError {
    use tokio_tungstenite::tungstenite::Error;
    let plain_answer = match &err {
        Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .is_some_and(|tls| {
                matches!(
                    tls,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
                )
            }),
        _ => false,
    };
    match url.strip_prefix("wss://") {
        Some(rest) if plain_answer => {
            let host = rest.split('/').next().unwrap_or(rest);
            TransportError::NoTls {
                url: url.to_string(),
                plain: format!("http://{host}"),
            }
        }
        _ => TransportError::Connect {
            url: url.to_string(),
            source: Box::new(err),
        },
    }
}

/// Dials `url` (`ws://` or `wss://`), trusting `tls` for `wss://`.
pub async fn connect(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(FrameWriter, FrameReader), TransportError> {
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(websocket_config()),
        true,
        Some(Connector::Rustls(tls)),
    );
    let (ws, _response) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| TransportError::Timeout(CONNECT_TIMEOUT))?
        .map_err(|e| connect_error(url, e))?;
    let (sink, stream) = ws.split();
    Ok((
        FrameWriter { sink },
        FrameReader {
            stream,
            last_activity: tokio::time::Instant::now(),
        },
    ))
}

impl FrameWriter {
    /// Sends one envelope.
    pub async fn send<T: Serialize>(
        &mut self,
        envelope: &Envelope<'_, T>,
    ) -> Result<(), TransportError> {
        self.send_text(envelope.to_json()).await
    }

    /// Sends one already-encoded frame.
    pub async fn send_text(&mut self, text: String) -> Result<(), TransportError> {
        self.sink.send(Message::text(text)).await?;
        Ok(())
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

impl FrameReader {
    /// The next frame; `Ok(None)` when the relay closed the connection. Pings are answered by
    /// the WebSocket layer while reading. A frame that does not decode is returned as
    /// [`TransportError::Protocol`] and the connection stays usable.
    pub async fn recv(&mut self) -> Result<Option<Frame>, TransportError> {
        loop {
            let message = self.stream.next().await;
            if let Some(outcome) = self.take(message) {
                return outcome;
            }
        }
    }

    /// Like [`recv`](Self::recv), but fails with [`TransportError::Timeout`] once nothing at
    /// all, not even a ping, has arrived for `idle`: the peer or the path to it is dead.
    /// Cancel-safe, so it can sit in a `select!` beside other work.
    pub async fn recv_idle(&mut self, idle: Duration) -> Result<Option<Frame>, TransportError> {
        loop {
            let deadline = self.last_activity + idle;
            let Ok(message) = tokio::time::timeout_at(deadline, self.stream.next()).await else {
                return Err(TransportError::Timeout(idle));
            };
            if let Some(outcome) = self.take(message) {
                return outcome;
            }
        }
    }

    /// What one WebSocket message means to the caller; `None` for control messages, which only
    /// count as activity.
    fn take(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<Result<Option<Frame>, TransportError>> {
        let Some(message) = message else {
            return Some(Ok(None));
        };
        self.last_activity = tokio::time::Instant::now();
        match message {
            Err(e) => Some(Err(e.into())),
            Ok(Message::Text(text)) => {
                Some(Frame::decode(text.as_str()).map(Some).map_err(Into::into))
            }
            Ok(Message::Binary(_)) => Some(Err(ProtocolError::Malformed(
                "binary frames are not part of the protocol".into(),
            )
            .into())),
            Ok(Message::Close(_)) => Some(Ok(None)),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => None,
        }
    }

    /// Like [`recv`](Self::recv), but gives up after `timeout`.
    pub async fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Frame>, TransportError> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }
}

/// Sends the first frame of a connection (`agent.register`, `agent.auth` or `client.hello`) and
/// waits for the relay's welcome. A refusal comes back as [`TransportError::Refused`].
pub async fn hello<
    Req: Serialize,
    Resp: serde::de::DeserializeOwned + zedops_protocol::payload::Validate,
>(
    writer: &mut FrameWriter,
    reader: &mut FrameReader,
    subject: &str,
    request: &Req,
    welcome_subject: &str,
) -> Result<Resp, TransportError> {
    writer.send(&Envelope::new(subject, request)).await?;
    let frame = reader
        .recv_timeout(zedops_protocol::HELLO_TIMEOUT)
        .await?
        .ok_or(TransportError::Closed)?;
    if frame.subject == zedops_protocol::subject::ERROR {
        return Err(TransportError::Refused(frame.payload()?));
    }
    if frame.subject != welcome_subject {
        return Err(ProtocolError::Malformed(format!(
            "expected {welcome_subject}, got {}",
            frame.subject
        ))
        .into());
    }
    Ok(frame.payload()?)
}
