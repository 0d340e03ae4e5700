//! A program on a pseudo-terminal of its own, as a person at a terminal runs it: a thread reads
//! what it prints into a channel, and keys go to the terminal's writer.

use std::io::{Read, Write};
use std::sync::mpsc;

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, SlavePty, native_pty_system};

/// A program started on a new pseudo-terminal.
pub struct PtyProcess {
    pub master: Box<dyn MasterPty + Send>,
    /// The terminal's other end. Kept, the line discipline stays up (and its settings readable)
    /// after the program exits; dropped, reading ends when the program does.
    pub slave: Box<dyn SlavePty + Send>,
    pub child: Box<dyn Child + Send + Sync>,
    /// Keys typed at the terminal.
    pub writer: Box<dyn Write + Send>,
    /// What the program prints, in the pieces the terminal delivers it.
    pub output: mpsc::Receiver<Vec<u8>>,
}

impl PtyProcess {
    /// Starts `cmd` on a pseudo-terminal of `rows` × `cols`.
    pub fn spawn(cmd: CommandBuilder, rows: u16, cols: u16) -> anyhow::Result<Self> {
        let pair = native_pty_system().openpty(size(rows, cols))?;
        let child = pair.slave.spawn_command(cmd)?;
        let mut reader = pair.master.try_clone_reader()?;
        let writer = pair.master.take_writer()?;
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            master: pair.master,
            slave: pair.slave,
            child,
            writer,
            output,
        })
    }
}

/// A terminal size of `rows` × `cols` characters.
pub fn size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}
