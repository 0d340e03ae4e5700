//! The agent installer the relay serves: `GET /install.sh` (a POSIX script with this relay's
//! public URL filled in), `GET /download/agent/<os>-<arch>` plus `….sha256` (agent binaries
//! from the `--downloads` directory, and their SHA-256 as the relay computed it at start),
//! `….minisig` (the release key's signature, `zedops-agent-<os>-<arch>.minisig` beside the
//! binary, made by `scripts/release`) and `GET /download/agent/version` (the release's version,
//! read from the signatures' trusted comments).
//!
//! The relay never checks signatures: it holds no key, and agents and `install.sh` trust only
//! the release key, not the relay. It only reads the version out of the signed comment
//! (`zedops-agent <version> <os>-<arch>`) so that it can say which release it serves.
//!
//! Checksums are computed once, at start, on purpose: a binary replaced or damaged on disk
//! afterwards no longer matches what the relay publishes, so the script refuses it instead of
//! installing a half-copied file. Replace the binaries, then restart the relay.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The platforms agents are served for, as `<os>-<arch>` (`uname -s`, `uname -m`, normalised).
pub const PLATFORMS: &[&str] = &["linux-x86_64", "linux-aarch64"];

/// The installer script; `@ZEDOPS_RELAY_URL@` is replaced by the relay's public URL.
const SCRIPT: &str = include_str!("../assets/install.sh");
const URL_PLACEHOLDER: &str = "@ZEDOPS_RELAY_URL@";
const KEY_PLACEHOLDER: &str = "@ZEDOPS_RELEASE_KEY@";
/// The release key the script checks signatures with where `minisign` is installed: the first
/// of `ZEDOPS_RELEASE_KEY` at build time (scripts/release sets it), none in development builds.
const RELEASE_KEY: &str = match option_env!("ZEDOPS_RELEASE_KEY") {
    Some(keys) => keys,
    None => "",
};

/// Bytes read from disk per chunk while streaming a binary.
const CHUNK: usize = 64 * 1024;

/// Largest signature file read; a minisign signature is about 300 bytes.
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// What the installer routes serve.
#[derive(Debug, Clone, Default)]
pub struct InstallerOptions {
    /// Directory holding `zedops-agent-<os>-<arch>` files (e.g. `zedops-agent-linux-x86_64`).
    pub downloads: Option<PathBuf>,
    /// The URL servers reach this relay at (`https://relay.example.com`), written into the
    /// script. Without it, each request's `Host` (and `X-Forwarded-Proto`) says.
    pub public_url: Option<String>,
}

/// The loaded installer: which binaries exist and their checksums.
#[derive(Debug)]
pub struct Installer {
    agents: Vec<Agent>,
    public_url: Option<String>,
    tls: bool,
}

#[derive(Debug)]
struct Agent {
    platform: &'static str,
    path: PathBuf,
    sha256: String,
    size: u64,
    /// The minisign signature's text, when `<binary>.minisig` is there.
    signature: Option<String>,
    /// The version the signature's trusted comment names.
    version: Option<String>,
}

/// What the relay announces about one platform's agent build: what `agent.update` tells the
/// agent to expect, and what the agent checks the download against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub platform: &'static str,
    /// The release version from the signature's trusted comment.
    pub version: String,
    pub sha256: String,
    pub size: u64,
}

impl Installer {
    /// Checks the options and hashes every agent binary present. `tls` says whether the relay
    /// itself serves https (then script URLs taken from `Host` are https too).
    pub async fn load(options: &InstallerOptions, tls: bool) -> anyhow::Result<Self> {
        let public_url = match &options.public_url {
            Some(url) => Some(check_public_url(url).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let mut agents = Vec::new();
        if let Some(dir) = &options.downloads {
            anyhow::ensure!(
                dir.is_dir(),
                "the downloads directory {} does not exist; create it and put the agent \
                 binaries (zedops-agent-linux-x86_64, zedops-agent-linux-aarch64) in it",
                dir.display()
            );
            for &platform in PLATFORMS {
                let path = dir.join(file_name(platform));
                if !path.is_file() {
                    continue;
                }
                let hashed = path.clone();
                let (sha256, size) = tokio::task::spawn_blocking(move || hash_file(&hashed))
                    .await
                    .context("hashing an agent binary")??;
                let signature = read_signature(&signature_path(&path))?;
                let version = match &signature {
                    Some(text) => Some(signed_version(text, platform).with_context(|| {
                        format!(
                            "{}: its trusted comment must be `zedops-agent <version> {platform}` \
                             (scripts/release writes it); sign the binary again",
                            signature_path(&path).display()
                        )
                    })?),
                    None => {
                        tracing::warn!(
                            platform,
                            path = %path.display(),
                            "agent binary without a signature (.minisig): agents cannot update \
                             to it; sign it with scripts/release"
                        );
                        None
                    }
                };
                tracing::info!(platform, %sha256, size, version = version.as_deref().unwrap_or("unsigned"), path = %path.display(), "serving agent download");
                agents.push(Agent {
                    platform,
                    path,
                    sha256,
                    size,
                    signature,
                    version,
                });
            }
            if agents.is_empty() {
                tracing::warn!(
                    dir = %dir.display(),
                    "no agent binaries to serve (expected zedops-agent-linux-x86_64 or \
                     zedops-agent-linux-aarch64); /install.sh will fail until they are there \
                     and the relay is restarted"
                );
            }
        }
        Ok(Self {
            agents,
            public_url,
            tls,
        })
    }

    /// The public URL, if one was configured.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// The SHA-256 (hex) published for `platform`, if its binary is served.
    pub fn sha256(&self, platform: &str) -> Option<&str> {
        self.agent(platform).map(|agent| agent.sha256.as_str())
    }

    /// The signed build served for `platform`, if there is one.
    pub fn build(&self, platform: &str) -> Option<Build> {
        let agent = self.agent(platform)?;
        Some(Build {
            platform: agent.platform,
            version: agent.version.clone()?,
            sha256: agent.sha256.clone(),
            size: agent.size,
        })
    }

    /// The release version served: the newest version among the signed builds.
    pub fn version(&self) -> Option<&str> {
        self.agents
            .iter()
            .filter_map(|agent| agent.version.as_deref())
            .max_by(|a, b| compare_versions(a, b))
    }

    fn agent(&self, platform: &str) -> Option<&Agent> {
        self.agents.iter().find(|agent| agent.platform == platform)
    }
}

/// The routes, with their own state so the rest of the relay's state is not involved.
pub fn router<S: Clone + Send + Sync + 'static>(installer: Arc<Installer>) -> Router<S> {
    Router::new()
        .route("/install.sh", axum::routing::get(install_script))
        .route("/download/agent/{file}", axum::routing::get(download))
        .with_state(installer)
}

/// The file name a platform's binary has in the downloads directory.
pub fn file_name(platform: &str) -> String {
    format!("zedops-agent-{platform}")
}

/// The one line that enrols a server (the protocol crate's, which the app prints too).
pub use zedops_protocol::install::install_command;

/// Checks a public URL for use in the script and the install command, where it is pasted into
/// shell code (the rule is the protocol crate's, which the app applies too). Returns it without
/// a trailing slash.
pub fn check_public_url(url: &str) -> Result<String, String> {
    zedops_protocol::install::shell_safe_public_url(url)
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the public URL {url:?} is not usable: give the http:// or https:// address servers \
                 reach this relay at, e.g. https://relay.example.com (letters, digits and - . _ ~ : / \
                 [ ] % @ only)"
            )
        })
}

async fn install_script(State(installer): State<Arc<Installer>>, headers: HeaderMap) -> Response {
    let url = match installer.public_url.clone() {
        Some(url) => url,
        None => match url_from_headers(&headers, installer.tls) {
            Some(url) => url,
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "cannot tell this relay's address from the request's Host header; \
                     start the relay with --public-url https://your-relay\n",
                );
            }
        },
    };
    let key = RELEASE_KEY
        .split([' ', ','])
        .find(|key| {
            key.len() == 56
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        })
        .unwrap_or("");
    let mut response = SCRIPT
        .replace(URL_PLACEHOLDER, &url)
        .replace(KEY_PLACEHOLDER, key)
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
    );
    no_store(response)
}

async fn download(
    State(installer): State<Arc<Installer>>,
    UrlPath(file): UrlPath<String>,
) -> Response {
    if file == "version" {
        return match installer.version() {
            Some(version) => no_store(format!("{version}\n").into_response()),
            None => text(
                StatusCode::NOT_FOUND,
                "this relay serves no signed agent release: its admin must put the binaries and \
                 their .minisig signatures from scripts/release in the --downloads directory and \
                 restart the relay\n",
            ),
        };
    }
    // Only exact known names: anything else, `..` and encoded slashes included, is not found.
    let (platform, part) = if let Some(platform) = file.strip_suffix(".sha256") {
        (platform, Part::Sha256)
    } else if let Some(platform) = file.strip_suffix(".minisig") {
        (platform, Part::Signature)
    } else {
        (file.as_str(), Part::Binary)
    };
    let Some(&platform) = PLATFORMS.iter().find(|&&known| known == platform) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no such download; agents are served for {}\n",
                PLATFORMS.join(", ")
            ),
        );
    };
    let Some(agent) = installer.agent(platform) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "this relay has no agent for {platform}: its admin must put {} in the \
                 --downloads directory and restart the relay\n",
                file_name(platform)
            ),
        );
    };
    match part {
        Part::Sha256 => {
            // sha256sum's format, so `sha256sum -c` accepts it next to the binary.
            let body = format!("{}  {}\n", agent.sha256, file_name(platform));
            return no_store(body.into_response());
        }
        Part::Signature => {
            return match &agent.signature {
                Some(signature) => no_store(signature.clone().into_response()),
                None => text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "this relay's agent for {platform} is not signed: its admin must put {}.minisig \
                         from scripts/release beside it and restart the relay\n",
                        file_name(platform)
                    ),
                ),
            };
        }
        Part::Binary => {}
    }
    match stream_file(&agent.path).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(%err, path = %agent.path.display(), "cannot serve an agent binary");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the relay cannot read this agent binary; see the relay's log\n",
            )
        }
    }
}

/// Which file of a platform's build a download asks for.
enum Part {
    Binary,
    Sha256,
    Signature,
}

/// Where a binary's minisign signature is: beside it, `.minisig` appended (minisign's default).
fn signature_path(binary: &Path) -> PathBuf {
    let mut name = binary.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// The signature file's text, if there is one; refused when it is too large to be one.
fn read_signature(path: &Path) -> anyhow::Result<Option<String>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    anyhow::ensure!(
        meta.len() <= MAX_SIGNATURE_BYTES,
        "{} is {} bytes, too large for a minisign signature; sign the binary again",
        path.display(),
        meta.len()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text))
}

/// The version named by a signature's trusted comment, `zedops-agent <version> <platform>`
/// (what `scripts/release` signs with). The comment is covered by the signature, so an agent
/// that verifies it knows the version and platform came from the release key too.
pub fn signed_version(signature: &str, platform: &str) -> anyhow::Result<String> {
    let comment = signature
        .lines()
        .find_map(|line| line.strip_prefix("trusted comment: "))
        .context("the signature has no trusted comment")?;
    let mut words = comment.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("zedops-agent"), Some(version), Some(signed_platform), None)
            if signed_platform == platform && is_version(version) =>
        {
            Ok(version.to_string())
        }
        _ => {
            anyhow::bail!("the trusted comment does not name a zedops-agent version for {platform}")
        }
    }
}

/// A semantic version (`MAJOR.MINOR.PATCH[-pre]`), at most 64 bytes.
fn is_version(text: &str) -> bool {
    text.len() <= 64 && semver::Version::parse(text).is_ok()
}

/// Semantic-version order (`0.10.0` after `0.9.3`, `0.2.0-rc.1` before `0.2.0`); only versions
/// that passed [`is_version`] reach here.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// The file as a streamed body, a chunk at a time, so large binaries cost little memory.
async fn stream_file(path: &Path) -> std::io::Result<Response> {
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            // End the stream after reporting: the client sees a cut-short body.
            Err(err) => Some((Err::<Bytes, _>(err), None)),
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(no_store(response))
}

/// `https://host[:port]` from the request: the relay's own TLS, else a proxy's
/// `X-Forwarded-Proto`, else http. `None` when the host is missing or not a plain host name.
fn url_from_headers(headers: &HeaderMap, tls: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b);
    if host.is_empty() || host.len() > 255 || !host.bytes().all(plain) {
        return None;
    }
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let scheme = if tls || forwarded_https {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{host}"))
}

/// The file's SHA-256 (hex) and size.
fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((hex::encode(hasher.finalize()), size))
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    no_store((status, body.into()).into_response())
}

/// The script names this relay and the checksums are this run's: neither may be cached.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_that_would_break_the_script_are_refused() {
        assert_eq!(
            check_public_url("https://relay.example.com/").unwrap(),
            "https://relay.example.com"
        );
        assert!(check_public_url("http://[::1]:7878/zedops").is_ok());
        for bad in [
            "relay.example.com",
            "ftp://x",
            "https://",
            "https:///x",
            "https://a'b",
            "https://a b",
            "https://a$(x)",
            "https://a;b",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_headers_are_checked_and_the_scheme_follows_tls_or_the_proxy() {
        let mut headers = HeaderMap::new();
        assert_eq!(url_from_headers(&headers, false), None);
        headers.insert(
            header::HOST,
            HeaderValue::from_static("relay.example.com:8443"),
        );
        assert_eq!(
            url_from_headers(&headers, false).unwrap(),
            "http://relay.example.com:8443"
        );
        assert_eq!(
            url_from_headers(&headers, true).unwrap(),
            "https://relay.example.com:8443"
        );
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(
            url_from_headers(&headers, false).unwrap(),
            "https://relay.example.com:8443"
        );
        headers.insert(header::HOST, HeaderValue::from_static("evil'$(reboot)"));
        assert_eq!(url_from_headers(&headers, false), None);
    }

    #[test]
    fn the_version_comes_from_the_trusted_comment_for_that_platform_only() {
        let signature = "untrusted comment: signature from minisign secret key\nRUQ...\n\
                         trusted comment: zedops-agent 0.2.0 linux-x86_64\nabc==\n";
        assert_eq!(signed_version(signature, "linux-x86_64").unwrap(), "0.2.0");
        assert!(signed_version(signature, "linux-aarch64").is_err());
        for bad in [
            "trusted comment: timestamp:1 file:zedops-agent",
            "trusted comment: zedops-agent 0.2.0 linux-x86_64 extra",
            "trusted comment: zedops-agent $(x) linux-x86_64",
            "no comment",
        ] {
            assert!(signed_version(bad, "linux-x86_64").is_err(), "{bad}");
        }
        assert_eq!(
            compare_versions("0.10.0", "0.9.3"),
            std::cmp::Ordering::Greater
        );
    }

    #[test]
    fn the_script_has_one_placeholder_in_quotes() {
        assert_eq!(SCRIPT.matches(URL_PLACEHOLDER).count(), 1);
        assert!(SCRIPT.contains(&format!("RELEASE_KEY='{KEY_PLACEHOLDER}'")));
        assert!(SCRIPT.contains(&format!("RELAY_URL='{URL_PLACEHOLDER}'")));
    }
}
