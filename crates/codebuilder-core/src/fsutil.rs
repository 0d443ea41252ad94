//! Writes that are all or nothing: a `kill -9` at any moment leaves the old file or the new
//! one, never a half-written one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `contents` to `path` through a temporary file in the same directory, fsyncs it,
/// renames it into place and fsyncs the directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_via(parent_of(path), path, contents, mode)
}

/// Like `write_atomic`, with the temporary file in `staging` (on the same filesystem as
/// `path`): a writer killed mid-write leaves its debris there, where sweeping it is cheap,
/// rather than among thousands of files.
pub fn write_atomic_via(staging: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = staged(staging, contents, mode, |_| Ok(()))?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent_of(path))
}

/// Like `write_atomic_via`, but only if `path` does not exist yet (`AlreadyExists` if it
/// does), and with `prepare` run on the staged file's path before it appears under `path`
/// (to hand it to its owner, say).
pub fn create_atomic_via(
    staging: &Path,
    path: &Path,
    contents: &[u8],
    mode: u32,
    prepare: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = staged(staging, contents, mode, prepare)?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(parent_of(path))
}

fn staged(
    staging: &Path,
    contents: &[u8],
    mode: u32,
    prepare: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<tempfile::NamedTempFile> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(staging)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    prepare(tmp.path())?;
    Ok(tmp)
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes `path`, treating "already gone" as success, and makes the removal durable.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Removes the directory `dir` and everything in it, treating "already gone" as success. It
/// is renamed aside first (into a temporary directory beside it), so that no one ever sees
/// half of it under its name.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let aside = tempfile::Builder::new()
        .prefix(".gone-")
        .tempdir_in(parent_of(dir))?;
    match fs::rename(dir, aside.path().join("tree")) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent_of(dir))?;
    aside.close()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_durably(&path).unwrap();
        remove_durably(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_tree_goes_whole() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"x").unwrap();
        remove_tree(&tree).unwrap();
        remove_tree(&tree).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn create_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        create_atomic_via(dir.path(), &path, b"one", 0o600, |_| Ok(())).unwrap();
        let again = create_atomic_via(dir.path(), &path, b"two", 0o600, |_| Ok(()));
        assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let failed = create_atomic_via(dir.path(), &dir.path().join("g"), b"x", 0o600, |_| {
            Err(io::Error::other("no"))
        });
        assert!(failed.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"one");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
