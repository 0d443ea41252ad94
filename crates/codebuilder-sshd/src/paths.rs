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

/// A directory with nothing in it but a file system's `lost+found`.
fn is_empty_volume(dir: &Path) -> anyhow::Result<bool> {
    let mut entries =
        fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(entries.all(|e| e.is_ok_and(|e| e.file_name() == "lost+found")))
}

/// The ssh user, to hand what sessions write to, when we are root (otherwise everything is
/// ours already).
pub fn owner(ssh_user: &str) -> anyhow::Result<Option<User>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = User::from_name(ssh_user)?
        .with_context(|| format!("there is no user {ssh_user}: create it (useradd --create-home --shell /bin/sh {ssh_user}; usermod -p '*' {ssh_user})"))?;
    Ok(Some(user))
}

/// Creates the home and its directories, owned by the ssh user so that sessions (which run
/// as that user) can create repos and write build records. The home itself is handed to the
/// ssh user only when it is new or empty (a fresh volume): an existing directory with files
/// in it keeps its owner, and only the directories codebuilder makes in it are the user's.
pub fn prepare_home(home: &Home, ssh_user: &str) -> anyhow::Result<()> {
    let root = home.root();
    let take_root = !root.exists() || is_empty_volume(root)?;
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    check_reachable(root, ssh_user)?;
    let user = owner(ssh_user)?;
    let give = |dir: &Path| -> anyhow::Result<()> {
        if let Some(user) = &user {
            chown(dir, Some(user.uid), Some(user.gid))
                .with_context(|| format!("cannot chown {}", dir.display()))?;
        }
        Ok(())
    };
    if take_root {
        give(root)?;
    }
    // Every top-level directory sessions write in is made here: in a home the ssh user does
    // not own, they can make nothing at the top themselves.
    // App state says who may reach what: codebuilder's only.
    for (top, mode) in [
        (home.keys_dir(), 0o755),
        (home.repos_dir(), 0o755),
        (home.locks_dir(), 0o755),
        (root.join("builds"), 0o755),
        (root.join("freed"), 0o755),
        (root.join("buildpacks"), 0o755),
        (home.apps_dir(), 0o700),
        // Temporary files of sessions, among them release values with config vars.
        (home.tmp_dir(), 0o700),
    ] {
        if !top.is_dir() {
            fs::create_dir(&top).with_context(|| format!("cannot create {}", top.display()))?;
            fs::set_permissions(&top, fs::Permissions::from_mode(mode))?;
            give(&top)?;
        }
    }
    for dir in [
        home.keys_dir().join("fp"),
        home.keys_dir().join("name"),
        home.keys_dir().join("tmp"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root and the `git` user (scripts/deps.sh makes it), like the end-to-end tests.
    #[test]
    fn only_a_new_or_empty_home_is_handed_to_the_ssh_user() {
        let git = User::from_name("git").unwrap().expect("no git user");
        let base = tempfile::tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let owner = |p: &Path| fs::metadata(p).unwrap().uid();

        let new = base.path().join("new");
        prepare_home(&Home::new(&new), "git").unwrap();
        assert_eq!(owner(&new), git.uid.as_raw());

        let volume = base.path().join("volume");
        fs::create_dir_all(volume.join("lost+found")).unwrap();
        prepare_home(&Home::new(&volume), "git").unwrap();
        assert_eq!(owner(&volume), git.uid.as_raw());

        let used = base.path().join("used");
        fs::create_dir(&used).unwrap();
        fs::write(used.join("notes.txt"), "mine").unwrap();
        prepare_home(&Home::new(&used), "git").unwrap();
        assert_eq!(owner(&used), 0);
        for dir in [
            "keys",
            "keys/fp",
            "repos",
            "locks",
            "builds",
            "freed",
            "buildpacks",
            "apps",
        ] {
            assert_eq!(owner(&used.join(dir)), git.uid.as_raw(), "{dir}");
        }
        assert_eq!(owner(&used.join("ssh")), 0);
    }
}
