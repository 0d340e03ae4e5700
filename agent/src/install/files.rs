//! File operations that change nothing when the file is already as wanted, so a second install
//! with the same inputs leaves every file, its mtime included, untouched.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// A user and group id to give a file to.
pub type Owner = (u32, u32);

/// Makes `path` a regular file with exactly `content`, `mode` and (if given) `owner`. Returns
/// whether anything changed. A new content is written to a temporary file beside it and renamed
/// over it, so a crash leaves the old file or the new one, and a running binary can be replaced.
pub fn write(path: &Path, content: &[u8], mode: u32, owner: Option<Owner>) -> anyhow::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == content.len() as u64 => {
            let current =
                fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if current == content {
                return set_mode_and_owner(path, &meta, mode, owner);
            }
        }
        Ok(meta) if meta.is_dir() => {
            anyhow::bail!(
                "{} is a directory; move it away and run again",
                path.display()
            )
        }
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("cannot inspect {}", path.display())),
    }
    crate::replace::replace_with(path, content, Some(mode), |file| {
        // The umask may have taken bits off the mode given at creation.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
        Ok(())
    })
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Makes `path` a directory with `mode` and (if given) `owner`, creating missing parents with
/// the usual 0755. Returns whether anything changed.
pub fn dir(path: &Path, mode: u32, owner: Option<Owner>) -> anyhow::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => set_mode_and_owner(path, &meta, mode, owner),
        Ok(_) => anyhow::bail!(
            "{} exists but is not a directory; move it away and run again",
            path.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            fs::DirBuilder::new()
                .mode(mode)
                .create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let meta = fs::symlink_metadata(path)?;
            set_mode_and_owner(path, &meta, mode, owner)?;
            Ok(true)
        }
        Err(err) => Err(err).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// Gives everything inside `dir` to `owner` (an earlier `zedops-agent run` as root may have
/// left root-owned credentials the service user could not read). Returns whether anything
/// changed. Symbolic links are changed themselves, never followed.
pub fn chown_tree(dir: &Path, owner: Owner) -> anyhow::Result<bool> {
    let mut changed = false;
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)?;
        if (meta.uid(), meta.gid()) != owner {
            std::os::unix::fs::lchown(&path, Some(owner.0), Some(owner.1))
                .with_context(|| format!("cannot change the owner of {}", path.display()))?;
            changed = true;
        }
        if meta.is_dir() {
            changed |= chown_tree(&path, owner)?;
        }
    }
    Ok(changed)
}

/// Removes a file if it is there. Returns whether it was.
pub fn remove_file(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes a directory and everything in it if it is there. Returns whether it was.
pub fn remove_tree(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes the empty directories between `path` and `stop` (exclusive), deepest first: what an
/// install into a prefix created and nothing else uses.
pub fn prune_empty_parents(path: &Path, stop: &Path) {
    let mut current = path.parent();
    while let Some(dir) = current {
        if dir == stop || !dir.starts_with(stop) || fs::remove_dir(dir).is_err() {
            break;
        }
        current = dir.parent();
    }
}

fn set_mode_and_owner(
    path: &Path,
    meta: &fs::Metadata,
    mode: u32,
    owner: Option<Owner>,
) -> anyhow::Result<bool> {
    let mut changed = false;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot change the mode of {}", path.display()))?;
        changed = true;
    }
    if let Some((uid, gid)) = owner
        && (meta.uid(), meta.gid()) != (uid, gid)
    {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot change the owner of {}", path.display()))?;
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_once_then_leaves_alone_and_repairs_modes() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a/b/c.env");
        dir(file.parent().unwrap(), 0o755, None).unwrap();
        assert!(write(&file, b"x=1\n", 0o600, None).unwrap());
        assert_eq!(mode(&file), 0o600);
        let before = fs::metadata(&file).unwrap().modified().unwrap();
        assert!(!write(&file, b"x=1\n", 0o600, None).unwrap());
        assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), before);

        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(write(&file, b"x=1\n", 0o600, None).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert!(write(&file, b"x=2\n", 0o600, None).unwrap());
        assert_eq!(fs::read(&file).unwrap(), b"x=2\n");
        assert_eq!(
            fs::read_dir(file.parent().unwrap()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn directories_get_their_mode_and_pruning_stops_at_the_root() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("var/lib/x");
        assert!(dir(&data, 0o700, None).unwrap());
        assert_eq!(mode(&data), 0o700);
        assert!(!dir(&data, 0o700, None).unwrap());
        assert!(remove_tree(&data).unwrap());
        assert!(!remove_tree(&data).unwrap());
        prune_empty_parents(&data, root.path());
        assert!(root.path().exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
