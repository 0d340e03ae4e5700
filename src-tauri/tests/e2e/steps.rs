//! Steps in the app that several parts of the end-to-end test take the same way: picking in a
//! `<select>`, opening a container's console and reading its terminal, screenshots.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::target_dir;
use crate::webdriver::WebDriver;

/// Generous: a cold WebKit start under Xvfb on 2 cores takes seconds.
const UI_WAIT: Duration = Duration::from_secs(60);

/// Picks `value` in a `<select>` as a person would (WebKitWebDriver does not click options).
pub async fn select(wd: &WebDriver, css: &str, value: &str) {
    wd.wait_for(&format!(r#"{css} option[value="{value}"]"#), UI_WAIT)
        .await;
    wd.execute(
        "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
         s.dispatchEvent(new Event('change', { bubbles: true }));",
        serde_json::json!([css, value]),
    )
    .await;
}

/// Saves what the window shows as `target/e2e/<name>`.
pub async fn shot(wd: &WebDriver, name: &str) {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), wd.screenshot().await).unwrap();
}

/// The terminal's screen text.
pub async fn terminal_text(wd: &WebDriver) -> String {
    wd.execute(
        r#"return document.querySelector('[data-testid="console-screen"] .xterm-rows')?.innerText ?? ''"#,
        serde_json::json!([]),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// In the open container's detail: the Console tab, connected as `kind` (`shell` or `attach`);
/// the terminal's input to type into.
pub async fn open_console(wd: &WebDriver, kind: &str) -> String {
    wd.click_when_shown(r#"[data-testid="tab-console"]"#, UI_WAIT)
        .await;
    select(wd, r#"[data-testid="console-kind"]"#, kind).await;
    wd.click_when_shown(r#"[data-testid="console-connect"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        r#"[data-testid="console-status"][data-phase="open"]"#,
        UI_WAIT,
    )
    .await;
    wd.wait_for(r#"[data-testid="console-screen"] textarea"#, UI_WAIT)
        .await
}

/// Waits until the terminal shows `needle`; `what` names it when it never does.
pub async fn wait_terminal(wd: &WebDriver, needle: &str, what: &str) {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let text = terminal_text(wd).await;
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never reached the terminal: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a recorded progress bar showed (see `observe::record` with `data-percent`): every
/// percentage and every text it drew, in order.
pub fn progress_bar(seen: &[Vec<Value>]) -> (Vec<u64>, Vec<String>) {
    let drawn = seen.iter().flatten();
    let percents = drawn
        .clone()
        .filter_map(|el| el["data-percent"].as_str()?.parse().ok())
        .collect();
    let texts = drawn
        .filter_map(|el| el["text"].as_str().map(str::to_string))
        .collect();
    (percents, texts)
}
