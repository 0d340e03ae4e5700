//! `zedops-agent install` / `uninstall` into a temporary root, with the real binary: the unit
//! passes `systemd-analyze verify` and is hardened, modes are right, the token is only in the
//! 0600 configuration, a second install changes nothing, other inputs converge, bad inputs are
//! refused before anything is written, and `uninstall --purge` leaves nothing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use installer::{
    agent, assert_token_only_in, mode, snapshot, text, verify_unit, verify_units, walk,
};

mod installer;

const TOKEN: &str = "zr_UnitTestToken-0123456789_abcdefghijklmnopqrstuvw";
const RELAY: &str = "https://relay.example.com";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

fn install(root: &Path, extra: &[&str]) -> std::process::Output {
    let root = root.to_str().unwrap();
    let mut args = vec!["install", "--relay", RELAY, "--root", root];
    args.extend_from_slice(extra);
    agent(&args)
}

/// Asserts that `text` (of the file `what`) has each of `lines` as a whole line.
fn assert_lines(what: &str, text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "{what} lacks {line}:\n{text}"
        );
    }
}

#[test]
fn installs_hardened_then_changes_nothing_then_purges_to_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let token_file = scratch.path().join("token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let ca = scratch.path().join("ca.pem");
    fs::write(&ca, CA_PEM).unwrap();
    let inputs = [
        "--token-file",
        token_file.to_str().unwrap(),
        "--name",
        "web-1",
        "--ca-file",
        ca.to_str().unwrap(),
    ];

    let out = install(&root, &inputs);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("would run: useradd --system"), "{said}");
    assert!(said.contains("would run: systemctl enable"), "{said}");

    let unit_path = root.join("etc/systemd/system/zedops-agent.service");
    let config_path = root.join("etc/zedops-agent/agent.env");
    let data_dir = root.join("var/lib/zedops-agent");
    let binary = root.join("usr/local/bin/zedops-agent");
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&config_path), 0o600);
    assert_eq!(mode(&unit_path), 0o644);
    assert_eq!(mode(&binary), 0o755);
    assert_eq!(
        fs::read(&binary).unwrap(),
        fs::read(installer::AGENT).unwrap()
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/zedops-agent/ca.pem")).unwrap(),
        CA_PEM
    );

    let unit = fs::read_to_string(&unit_path).unwrap();
    assert_lines(
        "unit",
        &unit,
        &[
            "User=zedops-agent",
            "EnvironmentFile=/etc/zedops-agent/agent.env",
            "ExecStart=/usr/local/bin/zedops-agent run",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/zedops-agent",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "Restart=on-failure",
            "RestartSec=5",
            "After=network-online.target docker.service",
            "Wants=network-online.target",
            "WantedBy=multi-user.target",
        ],
    );
    assert!(!unit.contains("User=root"));
    verify_unit(&root);

    let config = fs::read_to_string(&config_path).unwrap();
    assert_lines(
        "config",
        &config,
        &[
            "ZEDOPS_RELAY=https://relay.example.com",
            &format!("ZEDOPS_TOKEN={TOKEN}"),
            "ZEDOPS_NAME=web-1",
            "ZEDOPS_DATA_DIR=/var/lib/zedops-agent",
            "ZEDOPS_CA_FILE=/etc/zedops-agent/ca.pem",
        ],
    );
    // The token is in the private configuration and nowhere else: not in the unit, not in
    // any other file, not in what install printed.
    assert_token_only_in(&root, &config_path, TOKEN);
    assert!(!said.contains(TOKEN), "install printed the token");

    // The same inputs again: not one file touched.
    let before = snapshot(&root);
    let out = install(&root, &inputs);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nothing changed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&root), before, "a second install changed files");

    // Other inputs converge: a new name rewrites the configuration only; no --ca-file drops it.
    let out = install(
        &root,
        &[
            "--token-file",
            token_file.to_str().unwrap(),
            "--name",
            "web-2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = fs::read_to_string(&config_path).unwrap();
    assert!(
        config.contains("ZEDOPS_NAME=web-2") && !config.contains("ZEDOPS_CA_FILE"),
        "{config}"
    );
    assert!(!root.join("etc/zedops-agent/ca.pem").exists());
    assert_eq!(
        snapshot(&root).get(&unit_path),
        before.get(&unit_path),
        "the unit was rewritten"
    );
    assert_eq!(mode(&config_path), 0o600);

    // Once enrolled, the token is spent: a reinstall needs none and drops the old one.
    fs::write(data_dir.join("credentials.json"), "{}").unwrap();
    let out = install(&root, &["--name", "web-2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !fs::read_to_string(&config_path)
            .unwrap()
            .contains("ZEDOPS_TOKEN")
    );

    // Uninstall keeps the configuration and the credentials; --purge removes everything.
    let out = agent(&["uninstall", "--root", root.to_str().unwrap()]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("would run: systemctl disable --now zedops-agent.service"),
        "{said}"
    );
    assert!(!unit_path.exists() && !binary.exists());
    assert!(config_path.exists() && data_dir.join("credentials.json").exists());
    let out = agent(&["uninstall", "--root", root.to_str().unwrap(), "--purge"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("would run: userdel zedops-agent"), "{said}");
    assert_eq!(
        walk(&root),
        Vec::<std::path::PathBuf>::new(),
        "uninstall --purge left files behind"
    );
}

#[test]
fn bad_inputs_are_refused_before_anything_is_written() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    let root_arg = root.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["install", "--relay", RELAY, "--root", root_arg],
            "zedops-relay token create",
        ),
        (
            &[
                "install",
                "--relay",
                "http://relay.example.com",
                "--token",
                TOKEN,
                "--root",
                root_arg,
            ],
            "--insecure",
        ),
        (
            &[
                "install",
                "--relay",
                "ftp://relay",
                "--token",
                TOKEN,
                "--root",
                root_arg,
            ],
            "http(s) or ws(s)",
        ),
        (
            &[
                "install",
                "--relay",
                RELAY,
                "--token",
                "zr_x$(reboot)",
                "--root",
                root_arg,
            ],
            "token is malformed",
        ),
        (
            &[
                "install", "--relay", RELAY, "--token", TOKEN, "--name", "../etc", "--root",
                root_arg,
            ],
            "invalid --name",
        ),
        (
            &[
                "install",
                "--relay",
                RELAY,
                "--token",
                TOKEN,
                "--ca-file",
                "/nonexistent/ca.pem",
                "--root",
                root_arg,
            ],
            "cannot read --ca-file",
        ),
    ];
    for (args, expected) in cases {
        let out = agent(args);
        let said = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            said.contains(expected),
            "{args:?}: expected {expected:?} in: {said}"
        );
        assert!(!said.contains(TOKEN), "the token was printed: {said}");
    }
    assert!(!root.exists(), "a refused install wrote {:?}", walk(&root));

    // Plaintext to a remote relay is allowed when asked for, and the choice is kept.
    let out = agent(&[
        "install",
        "--relay",
        "http://relay.example.com",
        "--insecure",
        "--token",
        TOKEN,
        "--root",
        root_arg,
        "--no-start",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("not started (--no-start)") && !said.contains("would run: systemctl enable"),
        "{said}"
    );
    let config = fs::read_to_string(root.join("etc/zedops-agent/agent.env")).unwrap();
    assert!(config.contains("ZEDOPS_INSECURE=true"), "{config}");

    let out = agent(&["uninstall", "--root", root_arg, "--purge"]);
    assert!(out.status.success());
    let out = agent(&["uninstall", "--root", root_arg, "--purge"]);
    assert!(
        out.status.success() && text(&out.stderr).contains("nothing removed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_packaged_units_verify_and_are_hardened() {
    // The Debian packages' units, with stand-in binaries where the packages put theirs.
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path();
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd");
    fs::create_dir_all(root.join("lib/systemd/system")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    for name in ["zedops-agent", "zedops-relay"] {
        let unit = format!("{name}.service");
        fs::copy(
            packaging.join(&unit),
            root.join("lib/systemd/system").join(&unit),
        )
        .unwrap();
        let stand_in = root.join("usr/bin").join(name);
        fs::write(&stand_in, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&stand_in, fs::Permissions::from_mode(0o755)).unwrap();
    }
    verify_units(root, &["zedops-agent.service", "zedops-relay.service"]);
}
