//! Files the agent replaces whole (credentials, status, update state, journal entries, and what
//! install puts in place): the new content goes to a temporary file beside the old one, which is
//! synced and renamed over it, and the rename is synced too, so a crash leaves the old file or
//! the new one, never half of either.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` (in an existing directory) with `bytes`. On unix a new file is created with
/// `mode` (less the umask); `None` leaves the default permissions.
pub(crate) fn replace(path: &Path, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    replace_with(path, bytes, mode, |_| Ok(()))
}

/// [`replace`], with `finish` given the written temporary file before it is synced and renamed
/// (to set its exact mode or its owner). A failure removes the temporary file.
pub(crate) fn replace_with(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    finish: impl FnOnce(&fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a replaced file has a directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("a replaced file has a name"))?;
    let temp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    // A temp file left by a crash may have other permissions; start afresh so `mode` applies.
    let _ = fs::remove_file(&temp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if let Some(mode) = mode {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| finish(&file))
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, path));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    // Make the rename itself durable.
    fs::File::open(dir)?.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_with_the_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // A temp file a crash left behind, readable by all: replaced, not reused.
        let temp = dir.path().join(".state.json.tmp");
        fs::write(&temp, b"half").unwrap();
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o644)).unwrap();

        replace(&path, b"one", Some(0o600)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        replace(&path, b"two", None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!temp.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_finish_leaves_the_old_file_and_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit");
        replace(&path, b"old", None).unwrap();
        let err =
            replace_with(&path, b"new", None, |_| Err(io::Error::other("no owner"))).unwrap_err();
        assert_eq!(err.to_string(), "no owner");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
