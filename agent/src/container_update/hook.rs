//! The pre-update hook: the `zedops.update.hook` label's command, run in the old container
//! before it is stopped (e.g. a warning to a game server's players), then the
//! `zedops.update.hook-wait` label's seconds of waiting. The command is split into words like a
//! shell would (quotes and backslashes) but run without one, so a container without a shell can
//! have a hook too; `sh -c '…'` gives one when wanted.

use std::collections::HashMap;

use zedops_protocol::{
    LABEL_UPDATE_HOOK, LABEL_UPDATE_HOOK_WAIT, MAX_HOOK_WAIT_SECS, MAX_SPEC_VALUE_LEN,
};

/// A container's hook, as its labels give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The label as written.
    pub command: String,
    pub argv: Vec<String>,
    pub wait_secs: u32,
}

/// The hook the labels name, `Ok(None)` when there is none, or why the labels are wrong.
pub fn from_labels(labels: &HashMap<String, String>) -> Result<Option<Hook>, String> {
    let wait = match labels.get(LABEL_UPDATE_HOOK_WAIT) {
        None => 0,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(secs) if secs <= MAX_HOOK_WAIT_SECS => secs,
            _ => {
                return Err(format!(
                    "label {LABEL_UPDATE_HOOK_WAIT} must be a number of seconds from 0 to {MAX_HOOK_WAIT_SECS}"
                ));
            }
        },
    };
    let Some(command) = labels
        .get(LABEL_UPDATE_HOOK)
        .filter(|c| !c.trim().is_empty())
    else {
        return Ok(None);
    };
    if command.len() > MAX_SPEC_VALUE_LEN {
        return Err(format!(
            "label {LABEL_UPDATE_HOOK} is longer than {MAX_SPEC_VALUE_LEN} bytes"
        ));
    }
    let argv = split(command).ok_or_else(|| {
        format!("label {LABEL_UPDATE_HOOK} has an unclosed quote; fix the label on the container")
    })?;
    Ok(Some(Hook {
        command: command.clone(),
        argv,
        wait_secs: wait,
    }))
}

/// Splits `text` into words as a POSIX shell would, for quotes and backslashes only (no
/// variables, globs or operators); `None` for an unclosed quote.
fn split(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn commands_split_like_a_shell_would() {
        assert_eq!(
            split(r#"rcon-cli say "restart in 60 s" 'it''s' a\ b"#).unwrap(),
            vec!["rcon-cli", "say", "restart in 60 s", "its", "a b"]
        );
        assert_eq!(
            split("sh -c 'echo \"hi\"'").unwrap(),
            vec!["sh", "-c", "echo \"hi\""]
        );
        assert_eq!(split("echo ''").unwrap(), vec!["echo", ""]);
        assert_eq!(split("echo 'open"), None);
    }

    #[test]
    fn labels_give_the_hook_and_a_bounded_wait() {
        assert_eq!(from_labels(&labels(&[])).unwrap(), None);
        let hook = from_labels(&labels(&[
            (LABEL_UPDATE_HOOK, "echo warn"),
            (LABEL_UPDATE_HOOK_WAIT, "5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((hook.argv.len(), hook.wait_secs), (2, 5));
        for bad in ["601", "-1", "soon"] {
            let err = from_labels(&labels(&[
                (LABEL_UPDATE_HOOK, "echo warn"),
                (LABEL_UPDATE_HOOK_WAIT, bad),
            ]))
            .unwrap_err();
            assert!(err.contains("0 to 600"), "{err}");
        }
    }
}
