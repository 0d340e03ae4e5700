//! Steps in the app that several parts of the end-to-end test take the same way: filling in
//! fields, picking in a `<select>`, opening a container's console and reading its terminal,
//! screenshots.

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

/// Types each value into the field with that `data-testid`, once the field is shown.
pub async fn fill_form(wd: &WebDriver, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        let css = format!(r#"[data-testid="{field}"]"#);
        wd.type_when_shown(&css, value, UI_WAIT).await;
    }
}

/// Types each value into the field with that `data-testid` inside the element `within`.
pub async fn fill_in(wd: &WebDriver, within: &str, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        let css = format!(r#"[data-testid="{field}"]"#);
        wd.type_into(&wd.find_in(within, &css).await, value).await;
    }
}

/// Saves what the window shows as `target/e2e/<name>`.
pub async fn shot(wd: &WebDriver, name: &str) {
    let dir = target_dir().join("e2e");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), wd.screenshot().await).unwrap();
}

/// The text the first element `css` matches shows, as the page lays it out (`innerText`: the
/// lines of a terminal or an editor); empty while there is none.
pub async fn shown_text(wd: &WebDriver, css: &str) -> String {
    wd.execute(
        "return document.querySelector(arguments[0])?.innerText ?? ''",
        serde_json::json!([css]),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Waits until the element `css` shows `needle`; fails with `failure` and what it shows when it
/// never does.
pub async fn wait_shown(wd: &WebDriver, css: &str, needle: &str, failure: &str) {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let text = shown_text(wd, css).await;
        if text.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{failure}: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The fleet view, its filter (returned) holding `text`.
pub async fn filter_fleet(wd: &WebDriver, text: &str) -> String {
    wd.click_when_shown(r#"[data-testid="nav-fleet"]"#, UI_WAIT)
        .await;
    let filter = wd
        .wait_for(r#"[data-testid="fleet-filter"]"#, UI_WAIT)
        .await;
    wd.type_into(&filter, text).await;
    filter
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
    wait_shown(
        wd,
        r#"[data-testid="console-screen"] .xterm-rows"#,
        needle,
        &format!("{what} never reached the terminal"),
    )
    .await;
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
