//! The agent's local policy: the last gate before Docker. Whatever the relay sends (a relay may
//! be compromised, or bypassed by anyone holding the agent's connection), the agent refuses
//! settings that would hand a container the server: privileged mode, added capabilities, host
//! devices, the host's network, PID or IPC namespace, the Docker socket, and bind mounts outside
//! the directories the person who installed the agent allowed (`--allow-bind DIR`, repeatable,
//! none by default). Each refusal names the field, with `POLICY_DENIED`.

use std::path::{Component, Path, PathBuf};

use zedops_protocol::{ContainerSpec, ErrorCode, VolumeKind};

/// Where Docker's socket usually lives; a bind of it (or of a directory holding it) is always
/// refused, whatever `--allow-bind` says.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// What this server's owner allows beyond the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPolicy {
    /// Directories under which bind mounts are allowed (canonical when they exist).
    allow_bind: Vec<PathBuf>,
    /// The engine's own socket when it is not in a usual place (`--docker-host unix:///…`).
    extra_socket: Option<PathBuf>,
}

/// A refusal: the field and why, as a sentence for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this server's ZedOps agent refuses {field}: {reason}")]
pub struct Denied {
    pub field: String,
    pub reason: String,
}

impl Denied {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The protocol code of every refusal.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::PolicyDenied
    }
}

impl LocalPolicy {
    /// A policy allowing binds under `allow_bind` (each must be an absolute path). Directories
    /// are resolved through symbolic links now, so a link inside them cannot lead out.
    pub fn new(allow_bind: &[PathBuf], docker_host: Option<&str>) -> anyhow::Result<Self> {
        let mut dirs = Vec::new();
        for dir in allow_bind {
            anyhow::ensure!(
                dir.is_absolute(),
                "--allow-bind {} must be an absolute path",
                dir.display()
            );
            anyhow::ensure!(
                dir.components().all(|c| c != Component::ParentDir),
                "--allow-bind {} may not contain ..",
                dir.display()
            );
            dirs.push(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()));
        }
        let extra_socket = docker_host
            .and_then(|h| h.strip_prefix("unix://"))
            .map(PathBuf::from);
        Ok(Self {
            allow_bind: dirs,
            extra_socket,
        })
    }

    /// The directories binds are allowed under.
    pub fn allowed_binds(&self) -> &[PathBuf] {
        &self.allow_bind
    }

    /// Refuses the first setting of `spec` this server does not allow.
    pub fn check(&self, spec: &ContainerSpec) -> Result<(), Denied> {
        if spec.privileged {
            return Err(Denied::new(
                "privileged",
                "privileged containers control the whole server; remove `privileged` from the template",
            ));
        }
        if let Some(cap) = spec.cap_add.first() {
            return Err(Denied::new(
                "capAdd",
                format!(
                    "added capabilities ({}) are not allowed; remove `capAdd` from the template",
                    printable(cap)
                ),
            ));
        }
        if !spec.devices.is_empty() {
            return Err(Denied::new(
                "devices",
                "host devices are not allowed; remove `devices` from the template",
            ));
        }
        if spec.pid_mode.is_some() {
            return Err(Denied::new(
                "pidMode",
                "sharing a PID namespace is not allowed; remove `pidMode` from the template",
            ));
        }
        if spec.ipc_mode.is_some() {
            return Err(Denied::new(
                "ipcMode",
                "sharing an IPC namespace is not allowed; remove `ipcMode` from the template",
            ));
        }
        if let Some(network) = &spec.network
            && (network == "host" || network.starts_with("container:"))
        {
            return Err(Denied::new(
                "network",
                "the host's or another container's network is not allowed; publish ports instead",
            ));
        }
        for (i, volume) in spec.volumes.iter().enumerate() {
            if volume.kind == VolumeKind::Bind {
                self.check_bind(i, Path::new(&volume.source))?;
            }
        }
        Ok(())
    }

    fn check_bind(&self, index: usize, source: &Path) -> Result<(), Denied> {
        let field = format!("volumes[{index}].source");
        // Docker follows links in a bind's source; so does this check. A path that does not
        // exist yet is checked as written (Docker refuses to bind a missing source anyway).
        let resolved = std::fs::canonicalize(source).unwrap_or_else(|_| lexical(source));
        let shown = printable(&source.to_string_lossy());
        if self.is_docker_socket(source) || self.is_docker_socket(&resolved) {
            return Err(Denied::new(
                field,
                format!(
                    "{shown} is or holds the Docker socket, which would give the container the whole server"
                ),
            ));
        }
        if self.allow_bind.iter().any(|dir| resolved.starts_with(dir)) {
            return Ok(());
        }
        let allowed = if self.allow_bind.is_empty() {
            "none are allowed on this server (its owner can start the agent with --allow-bind DIR)"
                .to_string()
        } else {
            let dirs: Vec<String> = self
                .allow_bind
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            format!("binds are allowed only under {}", dirs.join(", "))
        };
        // A link (or ..) that leads out of an allowed directory reads as inside it: say where
        // it goes.
        let leads = if resolved != lexical(source) {
            format!(
                " (which resolves to {})",
                printable(&resolved.to_string_lossy())
            )
        } else {
            String::new()
        };
        Err(Denied::new(
            field,
            format!("bind mount of {shown}{leads}: {allowed}; use a named volume instead"),
        ))
    }

    /// True when `path` is a Docker socket or a directory above one.
    fn is_docker_socket(&self, path: &Path) -> bool {
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("docker.sock"))
        {
            return true;
        }
        DOCKER_SOCKETS
            .iter()
            .map(Path::new)
            .chain(self.extra_socket.as_deref())
            .any(|socket| {
                let real = std::fs::canonicalize(socket).unwrap_or_else(|_| socket.to_path_buf());
                socket.starts_with(path) || real.starts_with(path)
            })
    }
}

/// `path` without `.` components (the protocol already refused `..`).
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// Text from the relay, safe to put in a message and a log line: control characters escaped, cut.
fn printable(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 200 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use zedops_protocol::VolumeSpec;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        }
    }

    fn bind(source: &str) -> ContainerSpec {
        let mut s = spec();
        s.volumes.push(VolumeSpec {
            kind: VolumeKind::Bind,
            source: source.into(),
            target: "/data".into(),
            read_only: false,
        });
        s
    }

    fn field(policy: &LocalPolicy, spec: &ContainerSpec) -> String {
        policy.check(spec).unwrap_err().field
    }

    #[test]
    fn dangerous_settings_are_refused_by_name() {
        let policy = LocalPolicy::default();
        assert!(policy.check(&spec()).is_ok());
        let with = |f: fn(&mut ContainerSpec)| {
            let mut s = spec();
            f(&mut s);
            s
        };
        type Change = fn(&mut ContainerSpec);
        let refused: [(Change, &str); 7] = [
            (|s| s.privileged = true, "privileged"),
            (|s| s.cap_add = vec!["SYS_ADMIN".into()], "capAdd"),
            (|s| s.devices = vec!["/dev/sda".into()], "devices"),
            (|s| s.pid_mode = Some("host".into()), "pidMode"),
            (|s| s.ipc_mode = Some("host".into()), "ipcMode"),
            (|s| s.network = Some("host".into()), "network"),
            (|s| s.network = Some("container:x".into()), "network"),
        ];
        for (change, name) in refused {
            assert_eq!(field(&policy, &with(change)), name);
        }
        assert!(
            policy
                .check(&with(|s| s.network = Some("bridge".into())))
                .is_ok()
        );
        let err = policy
            .check(&with(|s| s.privileged = true))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("this server's ZedOps agent refuses privileged: "),
            "{err}"
        );
    }

    #[test]
    fn binds_only_inside_the_allowed_directories_and_never_the_socket() {
        let none = LocalPolicy::default();
        let err = none.check(&bind("/srv/games")).unwrap_err();
        assert_eq!(err.field, "volumes[0].source");
        assert!(err.reason.contains("--allow-bind"), "{}", err.reason);

        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("games");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::create_dir(allowed.join("pz")).unwrap();
        let policy = LocalPolicy::new(std::slice::from_ref(&allowed), None).unwrap();
        let inside = allowed.join("pz");
        assert!(policy.check(&bind(inside.to_str().unwrap())).is_ok());
        assert!(policy.check(&bind(allowed.to_str().unwrap())).is_ok());
        // A sibling whose name starts the same is outside.
        let sibling = root.path().join("games2");
        std::fs::create_dir(&sibling).unwrap();
        assert!(policy.check(&bind(sibling.to_str().unwrap())).is_err());
        // A link inside the allowed directory that leads out is outside.
        std::os::unix::fs::symlink("/etc", allowed.join("etc")).unwrap();
        let link = allowed.join("etc");
        assert_eq!(
            field(&policy, &bind(link.to_str().unwrap())),
            "volumes[0].source"
        );
        let said = policy
            .check(&bind(link.to_str().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("etc (which resolves to /etc): binds are allowed only under"),
            "{said}"
        );
        // The Docker socket and the directories above it, even when / is allowed.
        let everything = LocalPolicy::new(&[PathBuf::from("/")], None).unwrap();
        for socket in [
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var/run",
            "/run",
            "/",
        ] {
            let err = everything.check(&bind(socket)).unwrap_err();
            assert!(
                err.reason.contains("Docker socket"),
                "{socket}: {}",
                err.reason
            );
        }
        assert!(everything.check(&bind("/srv/x")).is_ok());
        let custom =
            LocalPolicy::new(&[PathBuf::from("/")], Some("unix:///srv/d/engine.sock")).unwrap();
        assert!(custom.check(&bind("/srv/d")).is_err());
        assert!(LocalPolicy::new(&[PathBuf::from("relative")], None).is_err());
    }
}
