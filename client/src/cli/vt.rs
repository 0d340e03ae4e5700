//! The Windows console as a VT terminal for `zedops exec -t` and `zedops attach`, as `docker exec
//! -it` sets it: the remote terminal's escape sequences (colours, cursor moves) are drawn rather
//! than printed, and with `-i` keys such as the arrows are read as the VT sequences a remote
//! shell understands. Both console modes are put back as they were when the guard is dropped.
//! Elsewhere terminals are VT terminals already, and the guard does nothing.

/// The console in VT mode while this lives (Windows); nothing elsewhere.
pub struct VtMode {
    #[cfg(windows)]
    restore: Vec<(crossterm_winapi::ConsoleMode, u32)>,
}

#[cfg(windows)]
mod windows {
    use crossterm_winapi::{ConsoleMode, Handle};

    /// Output: escape sequences are interpreted; a line feed only moves down (the remote
    /// terminal sends `\r\n` itself), as in Docker's CLI.
    const ENABLE_VIRTUAL_TERMINAL_PROCESSING: u32 = 0x0004;
    const DISABLE_NEWLINE_AUTO_RETURN: u32 = 0x0008;
    /// Input: keys that have no character (arrows, Home, F1…) arrive as VT sequences.
    const ENABLE_VIRTUAL_TERMINAL_INPUT: u32 = 0x0200;

    /// Adds `flags` to the mode of the console behind `handle`; the mode before, to restore.
    fn add(handle: std::io::Result<Handle>, flags: u32) -> std::io::Result<(ConsoleMode, u32)> {
        let console = ConsoleMode::from(handle?);
        let before = console.mode()?;
        console.set_mode(before | flags)?;
        Ok((console, before))
    }

    pub fn enter(input: bool) -> Vec<(ConsoleMode, u32)> {
        let mut restore = Vec::new();
        // The active screen buffer and the console's input (CONOUT$, CONIN$), as crossterm's raw
        // mode uses: standard handles may be redirected while the console is still the terminal.
        match add(
            Handle::current_out_handle(),
            ENABLE_VIRTUAL_TERMINAL_PROCESSING | DISABLE_NEWLINE_AUTO_RETURN,
        ) {
            Ok(done) => restore.push(done),
            Err(err) => eprintln!(
                "zedops: this console cannot draw the remote terminal's colours and cursor moves \
                 ({err}); use Windows Terminal or Windows 10 1809 or newer"
            ),
        }
        if input {
            match add(Handle::current_in_handle(), ENABLE_VIRTUAL_TERMINAL_INPUT) {
                Ok(done) => restore.push(done),
                Err(err) => eprintln!(
                    "zedops: this console cannot send arrow and function keys to the remote \
                     terminal ({err}); use Windows Terminal or Windows 10 1809 or newer"
                ),
            }
        }
        restore
    }
}

impl VtMode {
    /// Turns VT output on, and VT input too when `input` (keystrokes go to the remote terminal).
    /// A console without VT support is said once on stderr; the session goes on without it.
    pub fn enter(input: bool) -> Self {
        #[cfg(windows)]
        return Self {
            restore: windows::enter(input),
        };
        #[cfg(not(windows))]
        {
            let _ = input;
            Self {}
        }
    }
}

impl Drop for VtMode {
    fn drop(&mut self) {
        // The input mode was read before raw mode was entered: the console ends as it was
        // found whichever of this guard and raw mode's is dropped first.
        #[cfg(windows)]
        for (console, before) in self.restore.drain(..).rev() {
            let _ = console.set_mode(before);
        }
    }
}
