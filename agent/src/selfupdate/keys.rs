//! The release keys an agent trusts and the check of a build's minisign signature against them.
//!
//! Trusted keys come from two places only, neither of which the relay can touch: the key
//! compiled into the binary (`ZEDOPS_RELEASE_KEY` at build time, set by `scripts/release`), and a
//! key file named in the agent's local configuration (`--trusted-key-file`, from the root-owned
//! `/etc/zedops-agent/agent.env` under systemd). A relay, compromised or not, can only offer
//! bytes and a signature; without the release key it cannot make a signature that verifies.

use std::path::Path;

use minisign_verify::{PublicKey, Signature, StreamVerifier};

/// The release key(s) compiled in: minisign public keys (base64, `RW…`), separated by spaces
/// or commas; unset in development builds, which then trust only a configured key file.
const COMPILED_IN: Option<&str> = option_env!("ZEDOPS_RELEASE_KEY");

/// Largest key file read: a minisign public key file is about 100 bytes.
const MAX_KEY_FILE: u64 = 16 * 1024;

/// The public keys a build must be signed by (any one of them).
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// The compiled-in key(s) plus those in `key_file` (a minisign `.pub` file: comment lines
    /// and one base64 key per line).
    pub fn load(key_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if let Some(text) = COMPILED_IN {
            keys.extend(parse_keys(text, "the compiled-in release key")?);
        }
        if let Some(path) = key_file {
            let meta = std::fs::metadata(path).map_err(|err| {
                anyhow::anyhow!("cannot read the trusted key file {}: {err}", path.display())
            })?;
            anyhow::ensure!(
                meta.len() <= MAX_KEY_FILE,
                "the trusted key file {} is too large for minisign public keys",
                path.display()
            );
            let text = std::fs::read_to_string(path).map_err(|err| {
                anyhow::anyhow!("cannot read the trusted key file {}: {err}", path.display())
            })?;
            keys.extend(parse_keys(&text, &path.display().to_string())?);
        }
        Ok(Self { keys })
    }

    /// Keys from text, for tests.
    pub fn from_text(text: &str) -> anyhow::Result<Self> {
        Ok(Self {
            keys: parse_keys(text, "the given keys")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Starts checking a build against `signature` (the `.minisig` text): the signature must be
    /// by a trusted key and its trusted comment must be exactly `expected_comment`. Feed the
    /// build's bytes to the returned verifier, then [`Verifier::finish`].
    pub fn verifier<'a>(
        &'a self,
        signature: &'a Signature,
        expected_comment: &str,
    ) -> Result<Verifier<'a>, String> {
        if self.keys.is_empty() {
            return Err(
                "this agent trusts no release key (built without ZEDOPS_RELEASE_KEY and no \
                 --trusted-key-file configured), so it installs no update"
                    .into(),
            );
        }
        let Some(key) = self
            .keys
            .iter()
            .find(|key| key.verify_stream(signature).is_ok())
        else {
            return Err("the build is not signed by a release key this agent trusts".into());
        };
        if signature.trusted_comment() != expected_comment {
            // The comment is covered by the signature; a mismatch means the relay announced
            // another version or platform than the release key signed.
            return Err(format!(
                "the signature is for {:?}, not {expected_comment:?}",
                printable(signature.trusted_comment())
            ));
        }
        let stream = key
            .verify_stream(signature)
            .map_err(|err| format!("cannot check the signature: {err}"))?;
        Ok(Verifier { stream })
    }
}

/// A signature check in progress over a build's bytes.
pub struct Verifier<'a> {
    stream: StreamVerifier<'a>,
}

impl Verifier<'_> {
    pub fn update(&mut self, bytes: &[u8]) {
        self.stream.update(bytes);
    }

    /// Whether the bytes fed are what the key signed (and the trusted comment with them).
    pub fn finish(mut self) -> Result<(), String> {
        self.stream
            .finalize()
            .map_err(|_| "the signature does not match the downloaded build".to_string())
    }
}

/// The trusted comment `scripts/release` signs: `zedops-agent <version> <os>-<arch>`.
pub fn release_comment(version: &str, platform: &str) -> String {
    format!("zedops-agent {version} {platform}")
}

/// Decodes a `.minisig` file's text.
pub fn decode_signature(text: &str) -> Result<Signature, String> {
    Signature::decode(text)
        .map_err(|err| format!("the signature is not a minisign signature: {err}"))
}

fn parse_keys(text: &str, source: &str) -> anyhow::Result<Vec<PublicKey>> {
    let keys = text
        .split([',', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|word| !word.is_empty())
        // A `.pub` file's first line is `untrusted comment: …`: its words are not keys.
        .filter(|word| word.starts_with("RW") && word.len() == 56)
        .map(|word| {
            PublicKey::from_base64(word)
                .map_err(|err| anyhow::anyhow!("{source} holds an unreadable key: {err}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(
        !keys.is_empty() || text.trim().is_empty(),
        "{source} holds no minisign public key (a line of 56 characters starting with RW)"
    );
    Ok(keys)
}

/// Text from the relay, shortened and without control characters, for messages and logs.
pub fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(120).collect()
}
