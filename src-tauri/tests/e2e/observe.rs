//! Watching what the app shows in passing: a throttling proxy in front of the loopback registry,
//! so a pull lasts seconds, and a recorder in the page (a MutationObserver) that keeps every
//! state of the elements it watches, so a state that lasts a moment is seen for certain rather
//! than by luck of polling over WebDriver.

use serde_json::{Value, json};
/// The proxy in front of the registry (shared with the client's pull tests).
pub use zedops_testkit::throttle::throttling_proxy;

use crate::webdriver::WebDriver;

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
