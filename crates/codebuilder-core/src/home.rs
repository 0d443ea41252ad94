//! The one state directory: keys, repos, build records, host keys. Everything that survives a
//! restart lives below it, so a pod needs exactly one volume.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::names::AppName;

/// Default state directory inside the image; `--home` or `CODEBUILDER_HOME` override it.
pub const DEFAULT_HOME: &str = "/var/lib/codebuilder";

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    pub fn repos_dir(&self) -> PathBuf {
        self.root.join("repos")
    }

    pub fn repo(&self, app: &AppName) -> PathBuf {
        self.repos_dir().join(format!("{app}.git"))
    }

    /// Who owns each app and who else may use it (see `codebuilder-apps`).
    pub fn apps_dir(&self) -> PathBuf {
        self.root.join("apps")
    }

    pub fn builds_dir(&self, app: &AppName) -> PathBuf {
        self.root.join("builds").join(app.as_str())
    }

    /// The build records an app that ended without `apps:destroy` (its first push stored
    /// no ref, or its last ref was deleted) left to the keys that pushed them, until the
    /// name is taken again.
    pub fn freed_builds_dir(&self, app: &AppName) -> PathBuf {
        self.root.join("freed").join(app.as_str())
    }

    /// Each process's folder for temporary files (`tmp/PID`, see `scratch`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// The lock file of `app`'s repository (`locks/APP.repo`), opened (made if missing): a
    /// push holds it shared while it runs, `apps:destroy` exclusively. The path names it in
    /// errors.
    pub fn open_repo_lock(&self, app: &AppName) -> io::Result<(PathBuf, fs::File)> {
        let dir = self.locks_dir();
        self.ensure_dir(&dir)?;
        let path = dir.join(format!("{app}.repo"));
        let file = self.open_lock(&path)?;
        Ok((path, file))
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.root.join("ssh")
    }

    /// The socket an ssh session's processes send their log lines to, for codebuilder-sshd's
    /// relay to write them to codebuilder's log (see `main_support`).
    pub fn log_socket(&self) -> PathBuf {
        self.ssh_dir().join("log.sock")
    }

    /// Creates `dir` (and its parents) world-readable. When run as root (an admin through
    /// `kubectl exec`), hands new directories to the owner of the directory they are made in,
    /// so that the unprivileged ssh user can still write where it must.
    pub fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root && parent.starts_with(&self.root) {
                self.ensure_dir(parent)?;
            }
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", dir.display()),
                ))
            }
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        self.give_to_owner(dir)
    }

    /// Opens (creating it if needed) a file to `flock`. An flock needs no write access, so a
    /// lock file that root created stays usable by the ssh user, and the other way round.
    pub fn open_lock(&self, path: &Path) -> io::Result<fs::File> {
        match fs::File::open(path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let file = fs::File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)?;
                self.give_to_owner(path)?;
                Ok(file)
            }
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot open {}: {e}", path.display()),
            )),
        }
    }

    /// Hands `path` to the owner of the directory it is in, when we are root and they differ.
    /// The home's own directories belong to the ssh user (`codebuilder-sshd` makes them), the
    /// home itself keeps the owner it had if it existed before.
    pub fn give_to_owner(&self, path: &Path) -> io::Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let owner = fs::metadata(path.parent().unwrap_or(&self.root))?;
        let current = fs::symlink_metadata(path)?;
        if current.uid() != owner.uid() || current.gid() != owner.gid() {
            std::os::unix::fs::lchown(path, Some(owner.uid()), Some(owner.gid()))?;
        }
        Ok(())
    }
}
