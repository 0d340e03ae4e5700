//! The local terminal of `zedops exec -t` and `zedops attach`: raw mode (restored on every
//! way out, a panic included), its size and its resizes (SIGWINCH; polled on Windows, which has
//! no such signal), and Docker-style detach keys (`ctrl-p,ctrl-q`).

use std::io::IsTerminal;

use zedops_protocol::{MAX_TERM_SIDE, TermSize};

/// Raw mode on the local terminal while this lives: keystrokes go to the remote process as they
/// are typed (Ctrl-C included, as byte 0x03), nothing is echoed locally.
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Enters raw mode; the terminal is restored when the guard is dropped, and by a panic.
    pub fn enter() -> std::io::Result<Self> {
        crossterm::terminal::enable_raw_mode()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A panic message printed in raw mode would staircase and leave the shell unusable.
            let _ = crossterm::terminal::disable_raw_mode();
            previous(info);
        }));
        Ok(Self { _private: () })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(err) = crossterm::terminal::disable_raw_mode() {
            eprintln!("zedops: could not restore the terminal ({err}); run `reset`");
        }
    }
}

/// Whether stdin is a terminal (raw mode needs one).
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The local terminal's size, when there is a terminal.
pub fn size() -> Option<TermSize> {
    let (cols, rows) = crossterm::terminal::size().ok()?;
    (cols > 0 && rows > 0).then(|| TermSize {
        cols: cols.min(MAX_TERM_SIDE),
        rows: rows.min(MAX_TERM_SIDE),
    })
}

/// Tells when the local terminal changed size.
pub struct Resizes {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
    #[cfg(not(unix))]
    tick: tokio::time::Interval,
    last: Option<TermSize>,
}

impl Resizes {
    pub fn new(current: Option<TermSize>) -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .ok(),
            #[cfg(not(unix))]
            tick: tokio::time::interval(std::time::Duration::from_millis(250)),
            last: current,
        }
    }

    /// The next new size (never returns when there is no way to learn of one).
    pub async fn next(&mut self) -> TermSize {
        loop {
            #[cfg(unix)]
            match &mut self.signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
            #[cfg(not(unix))]
            self.tick.tick().await;
            if let Some(now) = size()
                && Some(now) != self.last
            {
                self.last = Some(now);
                return now;
            }
        }
    }
}

/// Ends this process on SIGTERM or SIGHUP (unix) with the shell's code for it, so the terminal
/// is restored by the caller first: resolves with the exit code to use.
pub async fn terminated() -> i32 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => 128 + 15,
            _ = hup.recv() => 128 + 1,
        }
    }
    #[cfg(not(unix))]
    std::future::pending().await
}

/// The default detach sequence, as Docker's.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses Docker's detach-key syntax: comma-separated keys, each a single character or
/// `ctrl-<c>` with `<c>` one of `a`…`z`, `@`, `[`, `\`, `]`, `^`, `_`.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let mut keys = Vec::new();
    for key in spec.split(',') {
        let key = key.trim();
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                c @ b'a'..=b'z' => c - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(format!("unknown key {key:?}")),
            },
            None if key.len() == 1 && key.is_ascii() => key.as_bytes()[0],
            _ => {
                return Err(format!(
                    "unknown key {key:?}: use a character or ctrl-<a-z, @, [, \\, ], ^, _>, comma-separated (e.g. ctrl-p,ctrl-q)"
                ));
            }
        };
        keys.push(byte);
    }
    if keys.is_empty() {
        return Err("name at least one key".into());
    }
    Ok(keys)
}

/// Watches typed bytes for the detach sequence, as Docker's escape proxy does: bytes that may
/// begin the sequence are held back until it is complete (detach, never sent) or broken (sent
/// as typed).
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Bytes held back as a possible start of the sequence.
    pub fn held(&self) -> usize {
        self.matched
    }

    /// Takes typed bytes; returns those to send and whether the sequence was completed.
    pub fn feed(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(bytes.len() + self.matched);
        for &b in bytes {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // Broken: what was held goes out as typed, and this byte may start a new attempt.
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_dockers() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-\\").unwrap(),
            vec![0, b'a', 28]
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("meta-x").is_err());
        assert!(parse_detach_keys("").is_err());
    }

    #[test]
    fn the_sequence_detaches_and_other_bytes_pass_as_typed() {
        let mut scanner = DetachScanner::new(vec![16, 17]);
        assert_eq!(scanner.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        // Split over two reads, held in between.
        assert_eq!(scanner.feed(&[b'x', 16]), (b"x".to_vec(), false));
        assert_eq!(scanner.held(), 1);
        assert_eq!(scanner.feed(&[17, b'y']), (vec![], true));
        // A broken start is sent as typed; a second ctrl-p starts over.
        let mut scanner = DetachScanner::new(vec![16, 17]);
        assert_eq!(scanner.feed(&[16, b'a']), (vec![16, b'a'], false));
        assert_eq!(scanner.feed(&[16, 16, 17]), (vec![16], true));
    }
}
