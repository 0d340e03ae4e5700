//! `recv_idle` against a real WebSocket peer: pings keep a quiet connection alive, and true
//! silence is reported as a timeout.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use zedops_transport::{TransportError, client_config, connect};

#[tokio::test]
async fn pings_count_as_life_and_silence_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        // Pings only, for 600 ms, then one frame, then silence while keeping the socket open.
        for _ in 0..12 {
            ws.send(Message::Ping(Default::default())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ws.send(Message::text(r#"{"subject":"agent.heartbeat","data":{}}"#))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let (_writer, mut reader) = connect(&format!("ws://{addr}/"), client_config(None).unwrap())
        .await
        .unwrap();
    let idle = Duration::from_millis(300);
    let frame = reader
        .recv_idle(idle)
        .await
        .expect("pings keep the connection alive")
        .unwrap();
    assert_eq!(frame.subject, "agent.heartbeat");
    assert!(matches!(
        reader.recv_idle(idle).await,
        Err(TransportError::Timeout(_))
    ));
    peer.abort();
}
