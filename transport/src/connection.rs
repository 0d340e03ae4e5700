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
}

/// The WebSocket settings both halves use: frames capped at the protocol limit.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
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
        .map_err(|e| TransportError::Connect { url: url.to_string(), source: Box::new(e) })?;
    let (sink, stream) = ws.split();
    Ok((FrameWriter { sink }, FrameReader { stream }))
}

impl FrameWriter {
    /// Sends one envelope.
    pub async fn send<T: Serialize>(&mut self, envelope: &Envelope<'_, T>) -> Result<(), TransportError> {
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
            let Some(message) = self.stream.next().await else { return Ok(None) };
            match message? {
                Message::Text(text) => return Ok(Some(Frame::decode(text.as_str())?)),
                Message::Binary(_) => {
                    return Err(ProtocolError::Malformed("binary frames are not part of the protocol".into()).into());
                }
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// Like [`recv`](Self::recv), but gives up after `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Frame>, TransportError> {
        tokio::time::timeout(timeout, self.recv()).await.map_err(|_| TransportError::Timeout(timeout))?
    }
}

/// Sends the first frame of a connection (`agent.register`, `agent.auth` or `client.hello`) and
/// waits for the relay's welcome. A refusal comes back as [`TransportError::Refused`].
pub async fn hello<Req: Serialize, Resp: serde::de::DeserializeOwned + zedops_protocol::payload::Validate>(
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
        return Err(ProtocolError::Malformed(format!("expected {welcome_subject}, got {}", frame.subject)).into());
    }
    Ok(frame.payload()?)
}
