//! Just enough of the W3C WebDriver protocol to drive the app through tauri-driver: sessions,
//! finding elements by CSS, clicking, typing, reading attributes and text, running scripts,
//! screenshots.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often a wait re-reads the page.
const POLL: Duration = Duration::from_millis(100);

pub struct WebDriver {
    http: reqwest::Client,
    base: String,
    session: String,
}

impl WebDriver {
    /// Starts the app (a new session) through the driver listening at `base`.
    pub async fn start(base: &str, application: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A hung driver fails the test instead of stalling it; a cold app start takes seconds.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let caps = json!({"capabilities": {"alwaysMatch": {"tauri:options": {"application": application}}}});
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("tauri-driver answers")
            .json()
            .await
            .expect("a JSON answer");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        Self {
            http,
            base: base.to_string(),
            session,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        match answer["value"].get("error") {
            Some(error) => Err(format!("{error}: {}", answer["value"]["message"])),
            None => Ok(answer["value"].clone()),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Every element matching `css`, now.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await
            .unwrap_or_default();
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(first) = self.find_all(css).await.into_iter().next() {
                return first;
            }
            assert!(
                Instant::now() < deadline,
                "nothing matched {css} within {timeout:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.find_all(css).await.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{css} still present after {timeout:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Finds `css` inside element `parent`.
    pub async fn find_in(&self, parent: &str, css: &str) -> String {
        let found = self
            .post(
                &format!("/element/{parent}/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await
            .unwrap_or_else(|e| panic!("{css} in {parent}: {e}"));
        found[ELEMENT].as_str().expect("an element").to_string()
    }

    /// Waits (up to `timeout`) until an element matches `css`, then clicks it.
    pub async fn click_when_shown(&self, css: &str, timeout: Duration) {
        let element = self.wait_for(css, timeout).await;
        self.click(&element).await;
    }

    /// Waits (up to `timeout`) until an element matches `css`, then returns its text.
    pub async fn text_when_shown(&self, css: &str, timeout: Duration) -> String {
        let element = self.wait_for(css, timeout).await;
        self.text(&element).await
    }

    /// Waits (up to `timeout`) until an input matches `css`, then replaces its text with `text`.
    pub async fn type_when_shown(&self, css: &str, text: &str, timeout: Duration) {
        let element = self.wait_for(css, timeout).await;
        self.type_into(&element, text).await;
    }

    pub async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await
            .expect("click");
    }

    /// Types `text` at the end of an input, one key event per character (`\u{E003}` is Backspace).
    pub async fn send_keys(&self, element: &str, text: &str) {
        self.post(&format!("/element/{element}/value"), json!({"text": text}))
            .await
            .expect("type");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page, returns its value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .expect("url")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Opens `url` in the window.
    pub async fn navigate(&self, url: &str) {
        self.post("/url", json!({"url": url}))
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Empties an input.
    pub async fn clear(&self, element: &str) {
        self.post(&format!("/element/{element}/clear"), json!({}))
            .await
            .expect("clear");
    }

    /// Replaces the text of an input.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.clear(element).await;
        self.send_keys(element, text).await;
    }

    pub async fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .await
            .expect("text")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn enabled(&self, element: &str) -> bool {
        self.get(&format!("/element/{element}/enabled"))
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let data = self.get("/screenshot").await.expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64"))
            .expect("PNG bytes")
    }

    /// Ends the session, which closes the app.
    pub async fn quit(self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }
}
