//! Plain-text tables for people: aligned columns, `docker ps`-style ports, and no terminal
//! control characters from remote data.

use zedops_client::{AgentSummary, Container, Port};
use zedops_protocol::PullProgress;

/// Columns separated by at least two spaces, left-aligned, no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Remote text (image names, statuses, OS descriptions) with control characters replaced, so
/// that nothing an agent reports can move the cursor or recolour the terminal.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if is_unsafe(c) { '?' } else { c })
        .collect()
}

/// Characters a terminal may act on rather than show: C0 and C1 controls (ESC, CSI, BEL, …),
/// DEL, and the bidirectional overrides that make text display in another order than it reads.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A JSON text with every character a terminal may act on written as a `\u` escape. JSON's own
/// encoder escapes only C0 controls; DEL, C1 controls (U+009B is a one-byte CSI) and bidi
/// overrides can only occur inside strings, where the escape means the same character.
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn or_dash(value: Option<&str>) -> String {
    value
        .filter(|v| !v.is_empty())
        .map(clean)
        .unwrap_or_else(|| "-".to_string())
}

/// NAME, ID, STATUS, LAST SEEN, DOCKER, OS.
pub fn agents(agents: &[AgentSummary]) -> String {
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|agent| {
            let info = agent.info.as_ref();
            vec![
                clean(&agent.name),
                clean(&agent.id),
                if agent.online { "online" } else { "offline" }.to_string(),
                or_dash(agent.last_seen.as_deref()),
                or_dash(info.and_then(|i| i.docker_version.as_deref())),
                info.map(|i| clean(&format!("{}/{}", i.os, i.arch)))
                    .unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    render(
        &["NAME", "ID", "STATUS", "LAST SEEN", "DOCKER", "OS"],
        &rows,
    )
}

/// ID (12 characters), NAME, IMAGE, STATE, STATUS, PORTS.
pub fn containers(containers: &[Container]) -> String {
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            vec![
                clean(&c.id.chars().take(12).collect::<String>()),
                clean(c.display_name()),
                clean(&c.image),
                clean(&c.state),
                clean(&c.status),
                ports(&c.ports),
            ]
        })
        .collect();
    render(&["ID", "NAME", "IMAGE", "STATE", "STATUS", "PORTS"], &rows)
}

/// Ports as `docker ps` shows them: `0.0.0.0:8080->80/tcp, 53/udp`; IPv6 hosts in brackets.
pub fn ports(ports: &[Port]) -> String {
    let mut shown: Vec<String> = Vec::with_capacity(ports.len());
    for port in ports {
        let text = match (
            port.public_port,
            port.ip.as_deref().filter(|ip| !ip.is_empty()),
        ) {
            (Some(public), Some(ip)) if ip.contains(':') => {
                format!("[{ip}]:{public}->{}/{}", port.private_port, port.kind)
            }
            (Some(public), Some(ip)) => {
                format!("{ip}:{public}->{}/{}", port.private_port, port.kind)
            }
            (Some(public), None) => format!("{public}->{}/{}", port.private_port, port.kind),
            (None, _) => format!("{}/{}", port.private_port, port.kind),
        };
        let text = clean(&text);
        if !shown.contains(&text) {
            shown.push(text);
        }
    }
    shown.join(", ")
}

/// `pulling x:1: 3/5 layers, 12.5 MB of 40.1 MB`; `pulling x:1: starting` before the registry
/// has named any layer.
pub fn pull_summary(progress: &PullProgress) -> String {
    let image = clean(&progress.image);
    if progress.layers_total == 0 {
        return format!("pulling {image}: starting");
    }
    let mb = |b: u64| b as f64 / 1_000_000.0;
    format!(
        "pulling {image}: {}/{}, {:.1} MB of {:.1} MB",
        progress.layers_done,
        count(progress.layers_total, "layer", "layers"),
        mb(progress.current),
        mb(progress.total)
    )
}

/// `n` with its noun in the right number: `1 byte`, `2 bytes`, `0 containers`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// How long ago `unix` was at `now` (Unix seconds), in the largest whole unit (`3 days ago`).
pub fn ago(unix: i64, now: i64) -> String {
    let secs = (now - unix).max(0);
    let (n, unit) = match secs {
        s if s < 120 => (s, "seconds"),
        s if s < 7200 => (s / 60, "minutes"),
        s if s < 172_800 => (s / 3600, "hours"),
        s => (s / 86_400, "days"),
    };
    format!("{n} {unit} ago")
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use zedops_client::AgentInfo;

    use super::*;

    fn port(private: u16, public: Option<u16>, kind: &str, ip: Option<&str>) -> Port {
        Port {
            private_port: private,
            public_port: public,
            kind: kind.into(),
            ip: ip.map(String::from),
        }
    }

    #[test]
    fn counts_and_pull_lines_read_as_sentences() {
        assert_eq!(count(1u64, "byte", "bytes"), "1 byte");
        assert_eq!(count(0u64, "container", "containers"), "0 containers");
        assert_eq!(count(2u32, "layer", "layers"), "2 layers");
        let mut progress = PullProgress {
            image: "x:1".into(),
            layers: Vec::new(),
            layers_done: 0,
            layers_total: 0,
            current: 0,
            total: 0,
        };
        assert_eq!(pull_summary(&progress), "pulling x:1: starting");
        progress.layers_done = 1;
        progress.layers_total = 1;
        progress.current = 2_500_000;
        progress.total = 2_500_000;
        assert_eq!(
            pull_summary(&progress),
            "pulling x:1: 1/1 layer, 2.5 MB of 2.5 MB"
        );
    }

    #[test]
    fn ports_read_like_docker_ps() {
        assert_eq!(
            ports(&[
                port(80, Some(8080), "tcp", Some("0.0.0.0")),
                port(53, None, "udp", None)
            ]),
            "0.0.0.0:8080->80/tcp, 53/udp"
        );
        assert_eq!(
            ports(&[port(443, Some(8443), "tcp", None)]),
            "8443->443/tcp"
        );
        assert_eq!(
            ports(&[port(80, Some(8080), "tcp", Some("::"))]),
            "[::]:8080->80/tcp"
        );
        // Docker lists a port once per published address family; identical lines are shown once.
        assert_eq!(
            ports(&[
                port(80, Some(8080), "tcp", Some("0.0.0.0")),
                port(80, Some(8080), "tcp", Some("0.0.0.0"))
            ]),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(ports(&[]), "");
    }

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let table = render(
            &["ID", "NAME"],
            &[
                vec!["a".into(), "web".into()],
                vec!["bbbb".into(), String::new()],
            ],
        );
        assert_eq!(table, "ID    NAME\na     web\nbbbb\n");
    }

    #[test]
    fn container_rows_use_short_ids_and_clean_text() {
        let c = Container {
            id: "0123456789abcdef".repeat(4),
            names: vec!["/web".into()],
            image: "busybox\x1b[31m".into(),
            state: "running".into(),
            status: "Up 2 minutes".into(),
            created: 0,
            ports: vec![port(80, Some(8080), "tcp", Some("0.0.0.0"))],
            health: None,
            labels: BTreeMap::new(),
        };
        let table = containers(&[c]);
        let mut lines = table.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["ID", "NAME", "IMAGE", "STATE", "STATUS", "PORTS"]
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with(
                "0123456789ab  web   busybox?[31m  running  Up 2 minutes  0.0.0.0:8080->80/tcp"
            ),
            "{row}"
        );
    }

    #[test]
    fn agent_rows_show_status_and_dashes_for_unknowns() {
        let online = AgentSummary {
            id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
            name: "agent-1".into(),
            online: true,
            last_seen: Some("2026-04-20T10:00:00Z".into()),
            info: Some(AgentInfo {
                version: "0.1.0".into(),
                docker_version: Some("26.1.5".into()),
                engine_id: None,
                os: "linux".into(),
                arch: "x86_64".into(),
                hostname: None,
            }),
        };
        let never = AgentSummary {
            id: "x".into(),
            name: "agent-2".into(),
            online: false,
            last_seen: None,
            info: None,
        };
        let table = agents(&[online, never]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("NAME     ID"), "{table}");
        assert!(
            lines[1].contains("online")
                && lines[1].contains("26.1.5")
                && lines[1].ends_with("linux/x86_64")
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["agent-2", "x", "offline", "-", "-", "-"]
        );
    }

    #[test]
    fn terminal_controls_never_reach_the_terminal() {
        let evil = "web\u{1b}[2J\u{9b}31m\u{7}\u{7f}\u{202e}txt";
        assert_eq!(clean(evil), "web?[2J?31m???txt");
        let json = serde_json::to_string(&serde_json::json!({ "name": evil })).unwrap();
        let safe = json_for_terminal(&json);
        assert!(!safe.chars().any(is_unsafe), "{safe:?}");
        // The same value once decoded.
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["name"], evil);
    }
}
