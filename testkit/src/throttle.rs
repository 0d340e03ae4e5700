//! A throttling TCP proxy for tests that must watch a pull while it runs: put in front of the
//! loopback registry, it makes a pull of a few megabytes last seconds, and counts what it let
//! through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP proxy on loopback to `target` (a loopback port) that passes at most `rate` bytes a
/// second back from it (requests go through unthrottled), counting them. Returns the proxy's
/// port and the count of bytes passed back so far.
pub async fn throttling_proxy(target: u16, rate: u64) -> (u16, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let through = Arc::new(AtomicU64::new(0));
    let counter = through.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut up_read, mut up_write) = upstream.into_split();
                let ask = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut up_write).await;
                });
                // A chunk then a pause as long as the chunk takes at `rate`.
                let chunk = 16 * 1024;
                let pause = Duration::from_secs_f64(chunk as f64 / rate as f64);
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = match up_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    tokio::time::sleep(pause).await;
                }
                ask.abort();
            });
        }
    });
    (port, through)
}
