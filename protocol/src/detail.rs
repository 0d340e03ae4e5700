//! `container.inspect`: one container in detail (command, environment with secrets masked,
//! mounts, ports, restart policy, health log), for a detail view and `zedops inspect`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::payload::{Port, Validate};

/// Words in an environment variable's (or a command-line flag's) name that mark its value as
/// secret. Matched case-insensitively anywhere in the name (`DB_PASSWORD`, `steamApiKey`,
/// `RCON_PASS`, `MYSQL_ROOT_PASSWD`).
pub const SECRET_NAME_PARTS: &[&str] = &[
    "PASS",
    "PWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
    "AUTH",
    "SESSION",
    "COOKIE",
    "CERT",
    "DSN",
];

/// Short words that mark a secret only as a whole part of the name (split on `_`, `-`, `.` and
/// camelCase), since as substrings they are in too many plain words (`SPINDLE`, `UPWARD`):
/// `RCON_PW`, `ADMIN_PIN`, `rconPw`.
pub const SECRET_NAME_WORDS: &[&str] = &["PW", "PIN", "PWD", "PASSCODE", "OTP"];

/// What replaces a withheld secret inside a value that is otherwise shown (a URL's password, a
/// flag's value in a command).
pub const MASK: &str = "******";

/// True when an environment variable or a flag called `name` probably holds a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
        || name_words(name).any(|word| {
            SECRET_NAME_WORDS
                .iter()
                .any(|w| word.eq_ignore_ascii_case(w))
        })
}

/// The words of a name: split on `_`, `-`, `.` and where a lower-case letter meets an upper-case
/// one.
fn name_words(name: &str) -> impl Iterator<Item = &str> {
    let mut words = Vec::new();
    let mut start = 0;
    let bytes = name.as_bytes();
    for i in 0..bytes.len() {
        if matches!(bytes[i], b'_' | b'-' | b'.') {
            words.push(&name[start..i]);
            start = i + 1;
        } else if i > start && bytes[i].is_ascii_uppercase() && bytes[i - 1].is_ascii_lowercase() {
            words.push(&name[start..i]);
            start = i;
        }
    }
    words.push(&name[start..]);
    words.into_iter().filter(|w| !w.is_empty())
}

/// `text` with the password of every URL in it (`scheme://user:password@host`) replaced by
/// [`MASK`]; the rest (scheme, user, host, path) stays readable.
pub fn mask_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#` or whitespace; credentials end at its
        // last `@`.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at_sign) => {
                let userinfo = &authority[..at_sign];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A container's command with secrets withheld: the value of any flag whose name looks secret
/// (`--admin-password=x`, `--token x`, `-p=x`), any `NAME=value` word whose name does, and the
/// password of any URL. Words inside one argument (`sh -c "server --token x"`) count too.
pub fn mask_command(command: &[String]) -> Vec<String> {
    let mut masked = Vec::with_capacity(command.len());
    let mut mask_next = false;
    for arg in command {
        let (text, pending) = mask_words(arg, mask_next);
        mask_next = pending;
        masked.push(text);
    }
    masked
}

/// Masks the words of one argument; `mask_first` when the previous word was a secret flag
/// waiting for its value. Returns the text and whether its last word is such a flag.
fn mask_words(arg: &str, mut mask_first: bool) -> (String, bool) {
    let mut out = String::with_capacity(arg.len());
    let mut word_start = None;
    let flush = |out: &mut String, word: &str, mask_this: &mut bool| {
        if std::mem::take(mask_this) && !word.starts_with('-') {
            out.push_str(MASK);
            return;
        }
        let word = mask_url_credentials(word);
        match word.split_once('=') {
            Some((name, _)) if looks_secret(name.trim_start_matches('-')) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            Some(_) => out.push_str(&word),
            None => {
                // `--token x`: the next word is the value.
                *mask_this = word.starts_with('-') && looks_secret(word.trim_start_matches('-'));
                out.push_str(&word);
            }
        }
    };
    for (i, c) in arg.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = word_start.take() {
                flush(&mut out, &arg[start..i], &mut mask_first);
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        flush(&mut out, &arg[start..], &mut mask_first);
    }
    (out, mask_first)
}

/// One environment variable. A value that looks secret never leaves the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    /// `None` when masked (or the variable has no `=`).
    #[serde(default)]
    pub value: Option<String>,
    /// True when the value was withheld because the name looks secret.
    #[serde(default)]
    pub masked: bool,
}

impl EnvVar {
    /// `NAME=value` from Docker, masked when the name looks secret.
    pub fn from_docker(entry: &str) -> Self {
        let (name, value) = match entry.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (entry, None),
        };
        let masked = looks_secret(name);
        Self {
            name: name.to_string(),
            // A plain name can still hold a URL with a password (`DATABASE_URL`, `SMTP_URI`).
            value: if masked {
                None
            } else {
                value.map(mask_url_credentials)
            },
            masked,
        }
    }
}

/// A volume, bind mount or tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Host path or volume name.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    pub read_only: bool,
}

/// One run of the health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// The health check's state and its last runs (Docker keeps five).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Health {
    /// `healthy`, `unhealthy` or `starting`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<HealthCheck>,
}

/// `container.inspect` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDetail {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// The image's id (`sha256:…`).
    pub image_id: String,
    /// Entrypoint and command, as run.
    pub command: Vec<String>,
    /// RFC 3339.
    pub created: String,
    pub state: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The last exit code (0 while it has never exited).
    pub exit_code: Option<i64>,
    /// `no`, `always`, `unless-stopped`, `on-failure` (with `:N` for a retry limit).
    pub restart_policy: String,
    pub restart_count: i64,
    pub env: Vec<EnvVar>,
    pub mounts: Vec<Mount>,
    pub ports: Vec<Port>,
    pub labels: BTreeMap<String, String>,
    pub health: Option<Health>,
}

impl Validate for ContainerDetail {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_values_are_masked() {
        for secret in [
            "DB_PASSWORD=hunter2",
            "steamApiKey=abc",
            "RCON_PASS=x",
            "GITHUB_TOKEN=ghp_x",
            "AWS_SECRET_ACCESS_KEY=y",
        ] {
            let var = EnvVar::from_docker(secret);
            assert!(var.masked && var.value.is_none(), "{secret} was not masked");
            assert!(
                !serde_json::to_string(&var)
                    .unwrap()
                    .contains(secret.split_once('=').unwrap().1)
            );
        }
        let plain = EnvVar::from_docker("SERVER_NAME=pz=eu");
        assert_eq!(
            (plain.name.as_str(), plain.value.as_deref(), plain.masked),
            ("SERVER_NAME", Some("pz=eu"), false)
        );
        let bare = EnvVar::from_docker("DEBUG");
        assert_eq!((bare.value, bare.masked), (None, false));
    }

    #[test]
    fn short_secret_words_and_url_passwords_are_masked() {
        for secret in [
            "MYSQL_ROOT_PASSWORD=hunter2",
            "RCON_PW=hunter2",
            "ADMIN_PIN=hunter2",
            "rconPw=hunter2",
            "DB_PASSWD=hunter2",
        ] {
            let var = EnvVar::from_docker(secret);
            assert!(var.masked && var.value.is_none(), "{secret} was not masked");
        }
        for plain in [
            "PATH=/bin",
            "SERVER_NAME=pz",
            "SPINDLE=1",
            "UPWARD=1",
            "PING=1",
        ] {
            let var = EnvVar::from_docker(plain);
            assert!(!var.masked, "{plain} was masked");
        }
        let url = EnvVar::from_docker("DATABASE_URL=postgres://u:secret@h/db");
        assert_eq!(url.value.as_deref(), Some("postgres://u:******@h/db"));
        let smtp = EnvVar::from_docker("SMTP_URI=smtp://u:secret@h");
        assert_eq!(smtp.value.as_deref(), Some("smtp://u:******@h"));
        let several = mask_url_credentials("a=http://x:1@h b=https://h/p?q=x:y@z c=ftp://anon@h");
        assert_eq!(
            several,
            "a=http://x:******@h b=https://h/p?q=x:y@z c=ftp://anon@h"
        );
    }

    #[test]
    fn secrets_in_commands_are_masked() {
        let cmd =
            |args: &[&str]| mask_command(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert_eq!(
            cmd(&["server", "--admin-password=hunter2", "--port=8080"]),
            ["server", "--admin-password=******", "--port=8080"]
        );
        assert_eq!(
            cmd(&["server", "--token", "hunter2", "--verbose", "x"]),
            ["server", "--token", "******", "--verbose", "x"]
        );
        assert_eq!(
            cmd(&[
                "sh",
                "-c",
                "run --rcon-pw hunter2 --db postgres://u:hunter2@h/db"
            ]),
            [
                "sh",
                "-c",
                "run --rcon-pw ****** --db postgres://u:******@h/db"
            ]
        );
        assert_eq!(
            cmd(&["env", "API_KEY=hunter2", "x"]),
            ["env", "API_KEY=******", "x"]
        );
        assert_eq!(
            cmd(&["nginx", "-g", "daemon off;"]),
            ["nginx", "-g", "daemon off;"]
        );
    }
}
