//! End to end, the Files tab's editor and file operations and the Console tab's attach, in the
//! real app against a real relay, agent and containers: a CRLF config file with a BOM opened in
//! the editor, changed on the server in between (the editor says so; Reload shows the server's
//! version), one line changed and saved, read back with `docker exec cat` byte for byte (BOM, CRLF
//! and mode kept); a file dropped into the tab is uploaded, a folder made, a file deleted, each
//! checked in the container; the console of a container that answers its stdin, typed into.

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use zedops_testkit::TestContainers;

use crate::harness::{self, require_desktop_parts};
use crate::session::relay_agent_and_app;
use crate::steps::{filter_fleet, open_console, shot, wait_shown, wait_terminal};
use crate::webdriver::WebDriver;

const AGENT: &str = "e2e-files";
const USER: &str = "e2e-files-admin";
const UI_WAIT: Duration = Duration::from_secs(60);

/// The config file as a Windows editor leaves it: UTF-8 with a BOM, CRLF line endings.
const CONFIG: &[u8] = b"\xef\xbb\xbfPVP=true\r\nMaxPlayers=32\r\nPauseEmpty=true\r\n";
/// What someone else changes on the server while the file is open in the app.
const CHANGED: &[u8] =
    b"\xef\xbb\xbfPVP=true\r\nMaxPlayers=32\r\nPauseEmpty=true\r\nPublic=false\r\n";
/// After the app's edit of the second line on top of that change.
const SAVED: &[u8] =
    b"\xef\xbb\xbfPVP=true\r\nMaxPlayers=64\r\nPauseEmpty=true\r\nPublic=false\r\n";

/// Runs `sh -c script` in the container (the docker CLI, as a person would check); its stdout.
fn docker_sh(container: &str, script: &str) -> Vec<u8> {
    let out = std::process::Command::new("docker")
        .args(["exec", container, "sh", "-c", script])
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker exec {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Writes `bytes` to `path` in the container (through `docker exec -i … cat`).
fn docker_write(container: &str, path: &str, bytes: &[u8]) {
    use std::io::Write;
    let mut child = std::process::Command::new("docker")
        .args([
            "exec",
            "-i",
            container,
            "sh",
            "-c",
            &format!("cat > {path}"),
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the docker CLI runs");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success(), "writing {path}");
}

/// Opens the container's detail from the fleet view, filtered to it (the engine may run many
/// other containers, and the table draws only the rows in view).
async fn open_container(wd: &WebDriver, name: &str) {
    filter_fleet(wd, name).await;
    let row = wd
        .wait_for(
            &format!(r#"[data-testid="container-row"][data-container-name="{name}"][data-state="running"]"#),
            UI_WAIT,
        )
        .await;
    wd.click(&wd.find_in(&row, r#"[data-testid="open-container"]"#).await)
        .await;
    wd.wait_for(
        &format!(r#"[data-testid="container-detail"][data-container-name="{name}"]"#),
        UI_WAIT,
    )
    .await;
}

/// Clicks into the Files tab's directory `name` (a row of the current directory).
async fn open_dir(wd: &WebDriver, name: &str, path: &str) {
    wd.click_when_shown(
        &format!(r#"[data-testid="file-row"][data-name="{name}"] [data-testid="file-open"]"#),
        UI_WAIT,
    )
    .await;
    wd.wait_for(
        &format!(r#"[data-testid="files-tab"][data-path="{path}"]"#),
        UI_WAIT,
    )
    .await;
}

/// The open editor holding nothing unsaved: as read from the server, or once saved.
const EDITOR_SAVED: &str = r#"[data-testid="file-editor"][data-dirty="false"]"#;

/// The second line in the open editor.
const SECOND_LINE: &str = r#"[data-testid="file-editor"] .cm-content .cm-line:nth-child(2)"#;

/// Changes line 2 of the open editor from `MaxPlayers=32` to `MaxPlayers=64` with real clicks
/// and keystrokes into CodeMirror: a click on the line (right of its text puts the caret at its
/// end), two Backspaces, then the digits.
async fn edit_second_line(wd: &WebDriver) {
    let content = wd
        .wait_for(
            r#"[data-testid="file-editor"][data-phase="open"] .cm-content"#,
            UI_WAIT,
        )
        .await;
    let line = wd.wait_for(SECOND_LINE, UI_WAIT).await;
    assert_eq!(wd.text(&line).await, "MaxPlayers=32");
    wd.click(&line).await;
    wd.send_keys(&content, "\u{E003}\u{E003}64").await;
    wd.wait_for(r#"[data-testid="file-editor"][data-dirty="true"]"#, UI_WAIT)
        .await;
    let line = wd.wait_for(SECOND_LINE, UI_WAIT).await;
    assert_eq!(
        wd.text(&line).await,
        "MaxPlayers=64",
        "the keystrokes changed line 2"
    );
}

pub async fn edit_upload_mkdir_delete_and_attach() {
    let (driver_bin, app_bin) = require_desktop_parts();
    let docker = harness::docker().await;
    let mut containers = TestContainers::new(&docker);
    let server = containers.sleeper("files").await;
    docker_sh(&server, "mkdir -p /srv/zomboid");
    docker_write(&server, "/srv/zomboid/servertest.ini", CONFIG);
    docker_sh(&server, "chmod 600 /srv/zomboid/servertest.ini");
    // A game-server-like console: it answers each line of its stdin.
    let answering = containers
        .create_with(
            "answering",
            ContainerCreateBody {
                cmd: Some(
                    ["/bin/sh", "-c", "while read l; do echo \"heard: $l\"; done"]
                        .map(String::from)
                        .to_vec(),
                ),
                tty: Some(true),
                open_stdin: Some(true),
                ..Default::default()
            },
            true,
        )
        .await;
    let (_relay, _agent, app) = relay_agent_and_app(&driver_bin, &app_bin, USER, AGENT).await;
    let wd = &app.wd;
    open_container(wd, &server).await;

    // The editor opens the config file, saying which format it keeps.
    wd.click_when_shown(r#"[data-testid="tab-files"]"#, UI_WAIT)
        .await;
    open_dir(wd, "srv", "/srv").await;
    open_dir(wd, "zomboid", "/srv/zomboid").await;
    wd.click_when_shown(
        r#"[data-testid="file-row"][data-name="servertest.ini"] [data-testid="file-edit"]"#,
        UI_WAIT,
    )
    .await;
    let format = wd
        .wait_for(r#"[data-testid="editor-format"]"#, UI_WAIT)
        .await;
    assert_eq!(
        wd.text(&format).await,
        "UTF-8 with BOM, CRLF (Windows) line endings"
    );

    // Someone changes the file on the server meanwhile: Save says so instead of writing.
    edit_second_line(wd).await;
    docker_write(&server, "/srv/zomboid/servertest.ini", CHANGED);
    wd.click_when_shown(r#"[data-testid="editor-save"]"#, UI_WAIT)
        .await;
    let conflict = wd
        .wait_for(r#"[data-testid="editor-conflict"]"#, UI_WAIT)
        .await;
    let said = wd.text(&conflict).await;
    assert!(
        said.contains("/srv/zomboid/servertest.ini was changed on the server since you opened it"),
        "the editor says the file changed: {said}"
    );
    shot(wd, "editor-conflict.png").await;
    assert_eq!(
        docker_sh(&server, "cat /srv/zomboid/servertest.ini"),
        CHANGED,
        "nothing was written over the server's change"
    );
    // Reload shows the server's version (the new last line), then the edit is made again on it.
    wd.click(
        &wd.find_in(&conflict, r#"[data-testid="editor-reload"]"#)
            .await,
    )
    .await;
    wd.wait_gone(r#"[data-testid="editor-conflict"]"#, UI_WAIT)
        .await;
    wd.wait_for(EDITOR_SAVED, UI_WAIT).await;
    wait_shown(
        wd,
        r#"[data-testid="file-editor"] .cm-content"#,
        "Public=false",
        "Reload did not show the server's version",
    )
    .await;
    edit_second_line(wd).await;
    wd.click_when_shown(r#"[data-testid="editor-save"]"#, UI_WAIT)
        .await;
    wd.wait_for(EDITOR_SAVED, UI_WAIT).await;
    assert!(
        wd.find_all(r#"[data-testid="editor-conflict"]"#)
            .await
            .is_empty(),
        "no conflict when the file is as it was read"
    );
    shot(wd, "editor.png").await;
    assert_eq!(
        String::from_utf8_lossy(&docker_sh(&server, "cat /srv/zomboid/servertest.ini")),
        String::from_utf8_lossy(SAVED),
        "docker exec cat reads the one line changed, BOM and CRLF kept"
    );
    assert_eq!(docker_sh(&server, "cat /srv/zomboid/servertest.ini"), SAVED);
    assert_eq!(
        docker_sh(&server, "stat -c %a /srv/zomboid/servertest.ini"),
        b"600\n",
        "the file's mode is kept"
    );
    wd.click_when_shown(r#"[data-testid="editor-close"]"#, UI_WAIT)
        .await;

    // Upload by dropping a file (binary bytes) into the tab.
    wd.wait_for(
        r#"[data-testid="files-tab"][data-path="/srv/zomboid"]"#,
        UI_WAIT,
    )
    .await;
    wd.execute(
        "const bytes = new Uint8Array(300).map((_, i) => (i * 7) & 255); \
         const dt = new DataTransfer(); dt.items.add(new File([bytes], 'mods.bin')); \
         document.querySelector('.dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
        serde_json::json!([]),
    )
    .await;
    wd.wait_for(
        r#"[data-testid="file-row"][data-name="mods.bin"][data-kind="file"]"#,
        UI_WAIT,
    )
    .await;
    let want: Vec<u8> = (0..300u32).map(|i| ((i * 7) & 255) as u8).collect();
    assert_eq!(
        docker_sh(&server, "cat /srv/zomboid/mods.bin"),
        want,
        "the dropped file's bytes are in the container"
    );

    // A new folder.
    wd.click_when_shown(r#"[data-testid="files-mkdir"]"#, UI_WAIT)
        .await;
    wd.type_when_shown(r#"[data-testid="files-mkdir-name"]"#, "backups", UI_WAIT)
        .await;
    wd.click_when_shown(r#"[data-testid="files-mkdir-create"]"#, UI_WAIT)
        .await;
    wd.wait_for(
        r#"[data-testid="file-row"][data-name="backups"][data-kind="dir"]"#,
        UI_WAIT,
    )
    .await;
    docker_sh(&server, "test -d /srv/zomboid/backups");

    // Delete, after the confirmation.
    let row = wd
        .wait_for(r#"[data-testid="file-row"][data-name="mods.bin"]"#, UI_WAIT)
        .await;
    wd.click(&wd.find_in(&row, r#"[data-testid="file-delete"]"#).await)
        .await;
    wd.click_when_shown(
        r#"[data-testid="file-row"][data-name="mods.bin"] [data-testid="file-delete-confirm"]"#,
        UI_WAIT,
    )
    .await;
    wd.wait_gone(r#"[data-testid="file-row"][data-name="mods.bin"]"#, UI_WAIT)
        .await;
    docker_sh(&server, "test ! -e /srv/zomboid/mods.bin");
    shot(wd, "files-ops.png").await;

    // The console of a container that answers its stdin: what it says back is on the screen.
    open_container(wd, &answering).await;
    let input = open_console(wd, "attach").await;
    // "heard:" is not typed: it can only come from the container.
    wd.send_keys(&input, "servermsg-hello\u{E007}").await;
    wait_terminal(wd, "heard: servermsg-hello", "the container's answer").await;
    shot(wd, "attach.png").await;
    wd.click_when_shown(r#"[data-testid="console-disconnect"]"#, UI_WAIT)
        .await;
    app.close().await;
    drop(containers);
}
