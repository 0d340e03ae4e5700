//! The one line that enrols a server (it runs the relay's install script with a registration
//! token), and the rule for the relay address pasted into it: kept beside the wire types so that
//! every program that prints the command prints the same one.

/// The one line that enrols a server: downloads the script from `public_url` and runs it with
/// the token in its environment (never in a process's arguments, which `ps` shows to everyone);
/// the script elevates itself with sudo when not run as root. `public_url` must have passed
/// [`shell_safe_public_url`].
pub fn install_command(public_url: &str, token: &str) -> String {
    format!("curl -fsSL {public_url}/install.sh | ZEDOPS_TOKEN={token} sh")
}

/// `url` without surrounding white space and trailing slashes, when it can be pasted into shell
/// code: `http(s)://`, a host, and only characters that mean nothing to a shell inside quotes
/// or a command line. `None` otherwise.
pub fn shell_safe_public_url(url: &str) -> Option<&str> {
    let trimmed = url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~:/[]%@".contains(&b);
    (!rest.is_empty() && !rest.starts_with('/') && rest.bytes().all(plain)).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shell_safe_http_urls_pass_trimmed() {
        assert_eq!(
            shell_safe_public_url(" https://relay.example.com/ "),
            Some("https://relay.example.com")
        );
        assert_eq!(shell_safe_public_url("wss://relay.example.com"), None);
        assert_eq!(shell_safe_public_url("https://x/`id`"), None);
        assert_eq!(
            install_command("https://r.example", "tok"),
            "curl -fsSL https://r.example/install.sh | ZEDOPS_TOKEN=tok sh"
        );
    }
}
