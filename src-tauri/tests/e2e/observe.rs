//! Watching what the app shows in passing: a throttling proxy in front of the loopback registry,
//! so a pull lasts seconds, and a recorder in the page (a MutationObserver) that keeps every
//! state of the elements it watches, so a state that lasts a moment is seen for certain rather
//! than by luck of polling over WebDriver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::webdriver::WebDriver;

/// A TCP proxy to the registry on `target` passing at most `rate` bytes a second back to
/// Docker, counting them: a pull through it lasts long enough to be watched.
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

/// Records in the page, under `key`, every new state of the elements matching `css`: for each
/// one, its `attrs` and its text, each time any of them changes (a MutationObserver sees every
/// DOM update, however short-lived).
pub async fn record(wd: &WebDriver, key: &str, css: &str, attrs: &[&str]) {
    wd.execute(
        r#"
        const [key, css, attrs] = arguments;
        window.__seen = window.__seen || {};
        const seen = (window.__seen[key] = []);
        let last = '';
        const look = () => {
          const now = JSON.stringify(Array.from(document.querySelectorAll(css)).map((el) =>
            Object.fromEntries([...attrs.map((a) => [a, el.getAttribute(a)]), ['text', el.textContent.trim()]])));
          if (now !== last) { last = now; seen.push(JSON.parse(now)); }
        };
        new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
        look();
        "#,
        json!([key, css, attrs]),
    )
    .await;
}

/// What [`record`] saw under `key`: one array of element states per change.
pub async fn recorded(wd: &WebDriver, key: &str) -> Vec<Vec<Value>> {
    let seen = wd
        .execute(
            "return (window.__seen || {})[arguments[0]] || [];",
            json!([key]),
        )
        .await;
    serde_json::from_value(seen).expect("recorded states")
}
