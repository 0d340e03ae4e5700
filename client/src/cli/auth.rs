//! `zedops login` and `zedops logout`: device token into and out of the OS keyring.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Args;
use clap::builder::BoolishValueParser;
use zedops_client::{ClientError, ErrorCode, store};

use super::{CliError, CliResult, Global, blocking, print_stdout, relay, token, usage_error};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Relay user name
    #[arg(long, env = "ZEDOPS_USER", value_name = "NAME")]
    user: String,
    /// Read the password from the first line of stdin
    #[arg(long, env = "ZEDOPS_PASSWORD_STDIN", value_parser = BoolishValueParser::new())]
    password_stdin: bool,
    /// Read the password from the first line of this file
    #[arg(long, env = "ZEDOPS_PASSWORD_FILE", value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Print the device token on stdout instead of storing it in the keyring (for ZEDOPS_TOKEN on
    /// headless machines)
    #[arg(long, env = "ZEDOPS_PRINT_TOKEN", value_parser = BoolishValueParser::new())]
    print_token: bool,
}

pub async fn login(global: &Global, args: LoginArgs) -> CliResult {
    let Some(relay) = relay(global).await? else {
        usage_error(&["login"], "login needs --relay URL (or ZEDOPS_RELAY)")
    };
    let password = if args.password_stdin {
        read_password(std::io::stdin().lock(), "stdin")?
    } else if let Some(path) = &args.password_file {
        read_password_file(path)?
    } else {
        usage_error(
            &["login"],
            "give the password with --password-stdin or --password-file FILE",
        )
    };
    let session = zedops_client::login(
        &relay,
        &args.user,
        &password,
        global.ca_file.as_deref(),
        global.insecure,
    )
    .await?;
    drop(password);
    let canonical = store::keyring_user(&relay)?;
    if args.print_token {
        print_stdout(&format!("{}\n", session.token))?;
    } else {
        let (key, token) = (canonical.clone(), session.token.clone());
        if let Err(err) = blocking(move || store::save_token(&key, &token)).await {
            // An unstorable token would be an orphan session at the relay: end it.
            let _ = zedops_client::logout(
                &relay,
                &session.token,
                global.ca_file.as_deref(),
                global.insecure,
            )
            .await;
            return Err(CliError::new(
                err.code,
                format!(
                    "{}; or log in with --print-token and keep the token yourself",
                    err.message
                ),
            ));
        }
    }
    let config = store::Config {
        relay: Some(canonical.clone()),
        user: Some(session.user.clone()),
    };
    blocking(move || store::save_config(&config)).await?;
    eprintln!(
        "Logged in to {canonical} as {} ({})",
        session.user, session.role
    );
    Ok(())
}

pub async fn logout(global: &Global) -> CliResult {
    let relay = relay(global)
        .await?
        .ok_or(ClientError::NotLoggedIn { relay: None })?;
    let canonical = store::keyring_user(&relay)?;
    let Some(token) = token(&relay).await? else {
        eprintln!("Not logged in to {canonical}; nothing to do");
        return Ok(());
    };
    match zedops_client::logout(&relay, &token, global.ca_file.as_deref(), global.insecure).await {
        Ok(()) => {}
        // The relay no longer knows the session: the goal is reached.
        Err(err) if err.error_code() == Some(ErrorCode::Unauthorized) => {}
        Err(err @ (ClientError::RelayUnreachable { .. } | ClientError::Disconnected { .. })) => {
            eprintln!(
                "warning: could not end the session at the relay ({err}); the token is deleted here \
             but stays valid at the relay until it expires or an admin revokes it"
            )
        }
        Err(err) => return Err(err.into()),
    }
    // A ZEDOPS_TOKEN session was never in the keyring (and headless machines may have none).
    if !super::token_from_env() {
        let key = canonical.clone();
        blocking(move || store::delete_token(&key)).await?;
    }
    let mut config = blocking(store::load_config).await?;
    if config.relay.as_deref() == Some(canonical.as_str()) {
        config.user = None;
        blocking(move || store::save_config(&config)).await?;
    }
    eprintln!("Logged out of {canonical}");
    Ok(())
}

/// The first line of `input`, without its line ending. Nothing else is trimmed: spaces may be
/// part of a password.
pub(super) fn read_password(mut input: impl BufRead, source: &str) -> Result<String, CliError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(|e| {
        CliError::new(
            "INVALID_INPUT",
            format!("cannot read the password from {source}: {e}"),
        )
    })?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(CliError::new(
            "INVALID_INPUT",
            format!("the password from {source} is empty: give it as the first line"),
        ));
    }
    Ok(password.to_string())
}

pub(super) fn read_password_file(path: &Path) -> Result<String, CliError> {
    let file = std::fs::File::open(path).map_err(|e| {
        CliError::new(
            "INVALID_INPUT",
            format!("cannot read the password file {}: {e}", path.display()),
        )
    })?;
    read_password(std::io::BufReader::new(file), &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_line_and_keeps_inner_spaces() {
        assert_eq!(
            read_password(&b"s3cret pass \nnext"[..], "stdin").unwrap(),
            "s3cret pass "
        );
        assert_eq!(read_password(&b"pw\r\n"[..], "stdin").unwrap(), "pw");
        assert_eq!(read_password(&b"pw"[..], "stdin").unwrap(), "pw");
        assert_eq!(
            read_password(&b"\n"[..], "stdin").unwrap_err().code,
            "INVALID_INPUT"
        );
        assert_eq!(
            read_password(&b""[..], "stdin").unwrap_err().code,
            "INVALID_INPUT"
        );
    }
}
