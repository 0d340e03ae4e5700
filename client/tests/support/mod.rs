//! A scripted fake relay (WebSocket and HTTP) on port 0 for the client's own tests.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use zedops_client::{ClientEvent, ConnectOptions};

pub type Ws = WebSocketStream<TcpStream>;

/// Accepts WebSocket connections on port 0 and hands each to the test.
pub struct FakeRelay {
    pub url: String,
    pub connections: mpsc::UnboundedReceiver<Ws>,
}

impl FakeRelay {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, connections) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        let _ = tx.send(ws);
                    }
                });
            }
        });
        Self { url, connections }
    }

    pub async fn next(&mut self) -> Ws {
        tokio::time::timeout(Duration::from_secs(10), self.connections.recv())
            .await
            .expect("the client dialled")
            .unwrap()
    }

    pub fn options(&self, token: &str) -> ConnectOptions {
        ConnectOptions {
            relay: self.url.clone(),
            token: token.into(),
            ca_file: None,
            insecure: false,
        }
    }

    /// Accepts the next connection's hello and welcomes it.
    pub async fn accept(&mut self, role: &str) -> Ws {
        let mut ws = self.next().await;
        let hello = recv(&mut ws).await.expect("a hello");
        assert_eq!(hello["subject"], "client.hello");
        assert_eq!(hello["data"]["token"], "tok-1");
        assert_eq!(
            hello["data"]["protocolVersion"],
            zedops_protocol::PROTOCOL_VERSION
        );
        send(
            &mut ws,
            json!({"subject": "client.welcome", "data": {"protocolVersion": zedops_protocol::PROTOCOL_VERSION, "user": "alice", "role": role}}),
        )
        .await;
        ws
    }

    /// Accepts the next connection's hello and refuses it like a relay does.
    pub async fn refuse(&mut self, code: &str) {
        let mut ws = self.next().await;
        recv(&mut ws).await.expect("a hello");
        send(
            &mut ws,
            json!({"subject": "error", "data": {"errorCode": code, "error": "session revoked"}}),
        )
        .await;
        let _ = ws.close(None).await;
    }
}

pub async fn send(ws: &mut Ws, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

pub async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Answers a request on its inbox.
pub async fn answer(ws: &mut Ws, request: &Value, data: Value) {
    let inbox = request["reply"].as_str().expect("requests carry an inbox");
    assert!(inbox.starts_with("_INBOX."), "{inbox}");
    send(ws, json!({"subject": inbox, "data": data})).await;
}

pub async fn next_event(events: &mut broadcast::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event in time")
        .unwrap()
}

/// One canned HTTP answer per connection; hands the request text to the test.
pub async fn fake_http(
    status: &'static str,
    body: &'static str,
) -> (String, mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let n = tcp.read(&mut buf).await.unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0usize);
                    if request.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                }
            }
            let _ = tx.send(String::from_utf8_lossy(&request).to_string());
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (url, rx)
}

/// The binary with a clean environment: no token, relay or config from the machine running the tests.
pub fn zedops(config_dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_zedops"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ZEDOPS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ZEDOPS_CONFIG_DIR", config_dir)
        .env_remove("RUST_LOG");
    cmd
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

pub async fn run(cmd: &mut tokio::process::Command, stdin: &str) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}
