//! Filesystem rules sshd enforces, checked up front so that the failure says how to fix it
//! instead of every login failing with a line in sshd's log.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use codebuilder_core::Home;
use nix::unistd::{chown, User};

/// sshd runs `AuthorizedKeysCommand` only if the file and every directory up to `/` are owned
/// by root and writable by nobody else.
pub fn check_command_path(binary: &Path) -> anyhow::Result<()> {
    let fix = "install the codebuilder binaries into a root-owned directory such as /usr/local/lib/codebuilder (scripts/start.sh does)";
    let mut current = Some(binary);
    while let Some(path) = current {
        let meta =
            fs::metadata(path).with_context(|| format!("cannot inspect {}", path.display()))?;
        if meta.uid() != 0 {
            bail!(
                "sshd will not run {}: {} is not owned by root; {fix}",
                binary.display(),
                path.display()
            );
        }
        if meta.mode() & 0o022 != 0 {
            bail!(
                "sshd will not run {}: {} is writable by group or others; {fix}",
                binary.display(),
                path.display()
            );
        }
        current = path.parent();
    }
    Ok(())
}

/// Sessions run as the ssh user, so every directory above the home must let others through.
fn check_reachable(home: &Path, ssh_user: &str) -> anyhow::Result<()> {
    for dir in home.ancestors().skip(1) {
        let mode = fs::metadata(dir)
            .with_context(|| format!("cannot inspect {}", dir.display()))?
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "the {ssh_user} user cannot reach {}: {} is not searchable by others; choose a home outside it (for example /var/lib/codebuilder) or run chmod o+x {}",
                home.display(),
                dir.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Creates the home and its directories, owned by the ssh user so that sessions (which run
/// as that user) can create repos and write build records.
pub fn prepare_home(home: &Home, ssh_user: &str) -> anyhow::Result<()> {
    let root = home.root();
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    check_reachable(root, ssh_user)?;
    if nix::unistd::geteuid().is_root() {
        let user = User::from_name(ssh_user)?
            .with_context(|| format!("there is no user {ssh_user}: create it (useradd --create-home --shell /bin/sh {ssh_user}; usermod -p '*' {ssh_user})"))?;
        chown(root, Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot chown {}", root.display()))?;
    }
    for dir in [
        home.keys_dir(),
        home.keys_dir().join("fp"),
        home.keys_dir().join("name"),
        home.keys_dir().join("tmp"),
        home.repos_dir(),
        home.locks_dir(),
    ] {
        home.ensure_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Host keys stay root's: sessions run as the ssh user and must not read or replace them.
    let ssh = home.ssh_dir();
    fs::create_dir_all(&ssh).with_context(|| format!("cannot create {}", ssh.display()))?;
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755))?;
    Ok(())
}
