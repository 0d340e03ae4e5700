//! The relay's WebSocket endpoints spoken by hand, for tests that send what no real client or
//! agent would: raw frames as JSON, the close code when the relay hangs up, and a fake agent
//! that enrols and then answers (or does not answer) whatever the test wants.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use zedops_protocol::PROTOCOL_VERSION;

use crate::TestRelay;

/// A raw WebSocket to the relay.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the relay may take to answer a well-behaved peer: a liveness deadline, not a
/// performance claim.
pub const LIVENESS: Duration = Duration::from_secs(10);

/// Opens a WebSocket to `path` (`/ws/client`, `/ws/agent`) of the relay.
pub async fn dial(relay: &TestRelay, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}{path}", relay.addr))
        .await
        .expect("websocket connects")
        .0
}

/// Sends `value` as one text frame.
pub async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string()))
        .await
        .expect("send");
}

/// The next text frame as JSON (pings and pongs skipped), or how the connection ended: the
/// relay's close code, or `None` when it reset or closed without one. Panics when nothing
/// comes within [`LIVENESS`].
pub async fn next_frame(ws: &mut Ws) -> Result<Value, Option<u16>> {
    loop {
        let msg = tokio::time::timeout(LIVENESS, ws.next())
            .await
            .expect("relay answers within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                return Ok(serde_json::from_str(t.as_str()).expect("relay sends JSON"));
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// The next text frame as JSON, or `None` when the connection ended or stayed silent for
/// [`LIVENESS`].
pub async fn next_text(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(LIVENESS, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Sends a hello `frame` and asserts that the answer's subject is `welcome`; returns it.
pub async fn hello(ws: &mut Ws, frame: Value, welcome: &str) -> Value {
    send(ws, frame).await;
    let answer = next_text(ws).await.expect("welcome");
    assert_eq!(answer["subject"], welcome, "{answer}");
    answer
}

/// A WebSocket on `/ws/client` past `client.hello` with this device token.
pub async fn client_hello(relay: &TestRelay, token: &str) -> Ws {
    let mut ws = dial(relay, "/ws/client").await;
    let frame = json!({"subject": "client.hello",
        "data": {"protocolVersion": PROTOCOL_VERSION, "token": token}});
    hello(&mut ws, frame, "client.welcome").await;
    ws
}

/// A fake agent: a raw WebSocket that enrolled with the relay.
pub struct FakeAgent {
    pub ws: Ws,
    pub id: String,
    pub token: String,
}

impl FakeAgent {
    /// Enrols as `name` with a fresh registration token; the relay's refusal is the error.
    pub async fn enrol(relay: &TestRelay, name: &str) -> Result<FakeAgent, Value> {
        let mut ws = dial(relay, "/ws/agent").await;
        let frame = json!({"subject": "agent.register", "data": {"protocolVersion": PROTOCOL_VERSION,
            "registrationToken": relay.registration_token().await, "name": name,
            "info": {"version": "0", "os": "linux", "arch": "x86_64"}}});
        send(&mut ws, frame).await;
        let answer = next_text(&mut ws).await.expect("an answer to the hello");
        if answer["subject"] != "agent.welcome" {
            return Err(answer);
        }
        Ok(FakeAgent {
            ws,
            id: answer["data"]["agentId"].as_str().unwrap().to_string(),
            token: answer["data"]["token"].as_str().unwrap().to_string(),
        })
    }

    /// Reconnects with the credentials an earlier [`enrol`](Self::enrol) got.
    pub async fn auth(relay: &TestRelay, id: &str, token: &str) -> FakeAgent {
        let mut ws = dial(relay, "/ws/agent").await;
        let frame = json!({"subject": "agent.auth", "data": {"protocolVersion": PROTOCOL_VERSION,
            "agentId": id, "token": token, "info": {"version": "0", "os": "linux", "arch": "x86_64"}}});
        hello(&mut ws, frame, "agent.welcome").await;
        FakeAgent {
            ws,
            id: id.to_string(),
            token: token.to_string(),
        }
    }

    /// Sends one frame to the relay.
    pub async fn send(&mut self, value: Value) {
        send(&mut self.ws, value).await;
    }

    /// The next request from the relay (pings skipped), or `None` when the connection ended.
    pub async fn request(&mut self) -> Option<Value> {
        next_text(&mut self.ws).await
    }

    /// The next request with this subject (others, such as the relay's own `registry.logins`
    /// after a connect, are left unanswered); panics when the connection ends first.
    pub async fn request_for(&mut self, subject: &str) -> Value {
        loop {
            let frame = self
                .request()
                .await
                .unwrap_or_else(|| panic!("no {subject} reached the agent"));
            if frame["subject"] == subject {
                return frame;
            }
        }
    }
}
