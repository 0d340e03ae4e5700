//! Desktop benchmarks, run by `scripts/bench-desktop` (figures in BENCHMARKS.md): the real app
//! under Xvfb, driven over WebDriver (tauri-driver + WebKitWebDriver) like the end-to-end test.
//!
//! - `cold_start`: from launching the app (signed in before, so it signs in silently from the
//!   keyring) to its first table painted, and to every online agent's containers listed, against
//!   a real relay, agent and containers.
//! - `filter_keystroke`: one keystroke in the fleet filter over 5,000 synthetic containers, in
//!   the app's own WebKitGTK window (`ui/bench.html` mounts the real FleetView), from keydown to
//!   the end of the next frame.
//!
//! They print figures and write JSON to `target/bench-desktop/`; nothing here asserts a time.

#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../e2e/webdriver.rs"]
mod webdriver;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use harness::{AppHome, Driver, require_desktop_parts, target_dir};
use serde_json::{Value, json};
use webdriver::WebDriver;
use zedops_protocol::Role;
use zedops_testkit::{TEST_PASSWORD, TestAgent, TestContainers, TestRelay};

const UI_WAIT: Duration = Duration::from_secs(60);
const BACKSPACE: &str = "\u{E003}";

fn runs(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(name: &str, values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let s = json!({
        "n": sorted.len(),
        "median_ms": percentile(&sorted, 50.0),
        "p95_ms": percentile(&sorted, 95.0),
        "min_ms": sorted[0],
        "max_ms": sorted[sorted.len() - 1],
    });
    println!(
        "{name}: median {:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms (n = {})",
        s["median_ms"].as_f64().unwrap(),
        s["p95_ms"].as_f64().unwrap(),
        s["min_ms"].as_f64().unwrap(),
        s["max_ms"].as_f64().unwrap(),
        sorted.len()
    );
    s
}

fn write_result(file: &str, value: &Value) {
    let dir = target_dir().join("bench-desktop");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
    println!("written to {}", path.display());
}

/// Epoch milliseconds of a performance mark in the page, once it is set.
const MARKS: &str = "const at = (n) => { const e = performance.getEntriesByName(n)[0]; \
     return e ? performance.timeOrigin + e.startTime : null; }; \
     return { origin: performance.timeOrigin, table: at('zedops:first-table'), \
     listed: at('zedops:containers-listed') };";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run scripts/bench-desktop"]
async fn cold_start() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let docker = harness::docker().await;
    let relay = TestRelay::builder().start().await;
    relay.login("bench-admin", Role::Admin).await;
    let mut containers = TestContainers::new(&docker);
    containers.sleeper("web").await;
    containers.sleeper("db").await;
    containers
        .create("batch", &TestContainers::SLEEP_CMD, false)
        .await;
    let _agent = TestAgent::builder(&relay)
        .name("bench-agent")
        .online()
        .await;

    let home = AppHome::new();
    let driver = Driver::start(&driver_bin, &home.env());
    let app = app_bin.to_str().unwrap();

    // Sign in once through the form (not measured); every start after that is silent.
    let wd = WebDriver::start(&driver.url, app).await;
    let field = wd.wait_for(r#"[data-testid="relay-url"]"#, UI_WAIT).await;
    wd.type_into(&field, &relay.url).await;
    let user = wd.wait_for(r#"[data-testid="username"]"#, UI_WAIT).await;
    wd.type_into(&user, "bench-admin").await;
    let password = wd.wait_for(r#"[data-testid="password"]"#, UI_WAIT).await;
    wd.type_into(&password, TEST_PASSWORD).await;
    wd.click_when_shown(r#"[data-testid="sign-in"]"#, UI_WAIT)
        .await;
    wd.wait_for(r#"[data-testid="agent-row"]"#, UI_WAIT).await;
    wd.quit().await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (mut window, mut table, mut listed) = (vec![], vec![], vec![]);
    for run in 0..runs("ZEDOPS_BENCH_STARTS", 10) {
        let launched = now_ms();
        let wd = WebDriver::start(&driver.url, app).await;
        wd.wait_for(r#"[data-testid="agent-row"]"#, UI_WAIT).await;
        let deadline = Instant::now() + UI_WAIT;
        let marks = loop {
            let marks = wd.execute(MARKS, json!([])).await;
            if marks["table"].is_number() && marks["listed"].is_number() {
                break marks;
            }
            assert!(
                Instant::now() < deadline,
                "the page never set its marks: {marks}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ms = |k: &str| marks[k].as_f64().unwrap() - launched;
        println!(
            "start {run}: page loading at {:.0} ms, first table painted at {:.0} ms, containers listed at {:.0} ms",
            ms("origin"),
            ms("table"),
            ms("listed")
        );
        window.push(ms("origin"));
        table.push(ms("table"));
        listed.push(ms("listed"));
        wd.quit().await;
        // Let the old process go before the next start.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let result = json!({
        "what": "launch of the app (`app`; ZEDOPS_DESKTOP_BIN picks another build) with a silent sign-in from the keyring, to: the page starting to load, the agents table painted, every online agent's containers listed",
        "app": app,
        "page_loading": summary("launch → page loading", &window),
        "first_table": summary("launch → first table painted", &table),
        "containers_listed": summary("launch → containers listed", &listed),
    });
    write_result("cold-start.json", &result);
    drop(driver);
    drop(containers);
}

/// What is typed: each query a key at a time, then erased a key at a time. Some narrow the
/// table to a few rows, some keep most of it.
const QUERIES: [&str; 6] = ["zomboid", "eu-1", "running", "web 4", "busybox", "2026"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run scripts/bench-desktop"]
async fn filter_keystroke() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let rows = runs("ZEDOPS_BENCH_ROWS", 5000);
    let rounds = runs("ZEDOPS_BENCH_ROUNDS", 4);
    let home = AppHome::new();
    let driver = Driver::start(&driver_bin, &home.env());
    let wd = WebDriver::start(&driver.url, app_bin.to_str().unwrap()).await;
    // The app's own page first (so the window is the app's), then the benchmark page beside it.
    wd.wait_for("#app *", UI_WAIT).await;
    let base = wd.url().await;
    let origin = base
        .find("://")
        .and_then(|i| base[i + 3..].find('/').map(|j| &base[..i + 3 + j]))
        .unwrap_or(&base)
        .to_string();
    // `ZEDOPS_BENCH_PAGE` (rows rendered) and `ZEDOPS_BENCH_VARIANT` (classes bench.html
    // styles) try table changes without rebuilding the app.
    let page = std::env::var("ZEDOPS_BENCH_PAGE").unwrap_or_default();
    let variant = std::env::var("ZEDOPS_BENCH_VARIANT").unwrap_or_default();
    wd.navigate(&format!(
        "{origin}/bench.html?rows={rows}&page={page}&variant={variant}"
    ))
    .await;
    // `ZEDOPS_BENCH_TARGET=bench-noop` types into a box that changes nothing else: the web
    // view's own floor for a keystroke to reach the screen.
    let target = std::env::var("ZEDOPS_BENCH_TARGET").unwrap_or_else(|_| "fleet-filter".into());
    let filter = wd
        .wait_for(&format!(r#"[data-testid="{target}"]"#), UI_WAIT)
        .await;
    let ready = wd
        .execute(
            "return window.zedopsBench && window.zedopsBench.rows",
            json!([]),
        )
        .await;
    assert_eq!(ready, json!(rows), "the benchmark page did not start");
    std::fs::create_dir_all(target_dir().join("bench-desktop")).unwrap();
    std::fs::write(
        target_dir().join("bench-desktop/fleet-5000.png"),
        wd.screenshot().await,
    )
    .unwrap();

    // One warm-up round (not counted), then the measured rounds.
    let mut keys: Vec<&str> = vec![];
    for _ in 0..=rounds {
        for q in QUERIES {
            keys.extend(q.split_inclusive(|_| true));
            keys.extend(std::iter::repeat_n(BACKSPACE, q.chars().count()));
        }
    }
    let warm_up = keys.len() / (rounds + 1);
    for (i, key) in keys.iter().enumerate() {
        wd.send_keys(&filter, key).await;
        // The page stamps its own times; asking for them is a script run on the page's thread,
        // so ask only once the keystroke is surely done (asking every few milliseconds landed
        // inside the measured frames and slowed them).
        tokio::time::sleep(Duration::from_millis(120)).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while wd
            .execute("return window.zedopsBench.samples.length", json!([]))
            .await
            .as_u64()
            .unwrap_or(0)
            < (i + 1) as u64
        {
            assert!(
                Instant::now() < deadline,
                "keystroke {i} was never measured"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let samples = wd
        .execute("return window.zedopsBench.samples", json!([]))
        .await;
    let samples = samples.as_array().expect("samples");
    assert_eq!(samples.len(), keys.len(), "one sample per keystroke");
    let measured: Vec<&Value> = samples[warm_up..].iter().collect();
    let ms: Vec<f64> = measured.iter().map(|s| s["ms"].as_f64().unwrap()).collect();
    let big: Vec<f64> = measured
        .iter()
        .filter(|s| s["matching"].as_u64().unwrap_or(0) >= 1000)
        .map(|s| s["ms"].as_f64().unwrap())
        .collect();
    let script: Vec<f64> = measured
        .iter()
        .map(|s| s["scriptMs"].as_f64().unwrap())
        .collect();
    let svelte: Vec<f64> = measured
        .iter()
        .map(|s| s["svelteMs"].as_f64().unwrap())
        .collect();
    let input: Vec<f64> = measured
        .iter()
        .map(|s| s["inputMs"].as_f64().unwrap())
        .collect();
    let filter_ms = wd
        .execute("return window.zedopsBench.filterMs", json!([]))
        .await
        .as_f64()
        .unwrap_or(-1.0);
    println!("{rows} rows, {} keystrokes measured", ms.len());
    println!("the filter pass alone over {rows} rows (no DOM), median of 30: {filter_ms:.2} ms");
    let all = summary("keystroke → next frame", &ms);
    let script = summary("keystroke → script done (before layout and paint)", &script);
    let svelte = summary(
        "keystroke → Svelte's update done (filter and DOM changes only)",
        &svelte,
    );
    let input = summary(
        "keystroke → input event (the web view's own key and editing work)",
        &input,
    );
    let large = (!big.is_empty()).then(|| summary("… when ≥ 1,000 rows still match", &big));
    write_result(
        &format!("filter-{rows}.json"),
        &json!({
            "what": "keydown in the fleet filter to the end of the next frame, real FleetView in the app's WebKitGTK window",
            "rows": rows,
            "queries": QUERIES,
            "all": all,
            "script_only": script,
            "to_input_event": input,
            "to_svelte_update_done": svelte,
            "filter_pass_ms": filter_ms,
            "at_least_1000_matching": large,
            "samples": measured,
        }),
    );
    wd.quit().await;
    drop(driver);
}
