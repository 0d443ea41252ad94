//! The bare repository of an app, created on its first push.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::{AppName, Home};
use codebuilder_keys::authorized::quotable_path;
use nix::fcntl::{Flock, FlockArg};

const ADVERTISE_PUSH_OPTIONS: &str = "receive.advertisePushOptions";

/// Name of the hook binary, installed beside `codebuilder-receive`.
pub const BUILD_BINARY: &str = "codebuilder-build";

/// The pre-receive hook: hands the pushed refs to `codebuilder-build hook`, nothing else.
pub fn hook_script(build: &Path, home: &Path) -> anyhow::Result<String> {
    Ok(format!(
        "#!/bin/sh\nexec {} --home {} hook\n",
        quotable_path(build)?,
        quotable_path(home)?
    ))
}

/// Returns the app's repository, creating it if this is its first push. Two first pushes
/// racing each other both succeed: each builds a repository aside and renames it into
/// place, and the loser discards its own. The hook is rewritten when it differs, so that an
/// upgrade that moves the binaries keeps old repositories working, and push options are
/// advertised in repositories made before they were.
pub fn ensure_repo(
    home: &Home,
    app: &AppName,
    hook: &str,
    initial_branch: &str,
) -> anyhow::Result<PathBuf> {
    let repo = home.repo(app);
    if !repo.is_dir() {
        let repos = home.repos_dir();
        home.ensure_dir(&repos)
            .with_context(|| format!("cannot create {}", repos.display()))?;
        let aside = tempfile::Builder::new()
            .prefix(&format!(".new-{app}-"))
            .tempdir_in(&repos)?;
        init_bare(aside.path(), initial_branch)?;
        install_hook(aside.path(), hook)?;
        fs::set_permissions(aside.path(), fs::Permissions::from_mode(0o755))?;
        match fs::rename(aside.path(), &repo) {
            Ok(()) => {
                // The directory now lives on as the repo; nothing is left to clean up.
                let _ = aside.keep();
                home.give_to_owner(&repo)?;
            }
            Err(e) if repo.is_dir() => tracing::debug!("another push created {app} first: {e}"),
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", repo.display())),
        }
    }
    install_hook(&repo, hook)?;
    advertise_push_options(&repo)?;
    Ok(repo)
}

/// A push session's hold on an app's repository. Every push holds it (shared) from before
/// the repository is made until git is done; the last one out removes a repository that
/// holds no ref, so that a connection that pushed nothing (or whose every ref was refused)
/// leaves no empty `APP.git` behind.
pub struct RepoUse {
    lock: Flock<fs::File>,
    repo: PathBuf,
}

impl RepoUse {
    pub fn enter(home: &Home, app: &AppName) -> anyhow::Result<Self> {
        let dir = home.locks_dir();
        home.ensure_dir(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{app}.repo"));
        let file = home
            .open_lock(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let lock = Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Self {
            lock,
            repo: home.repo(app),
        })
    }

    /// Lets go, and removes the repository if it has no ref and no other push is in it.
    pub fn leave(self) {
        let Ok(file) = self.lock.unlock() else {
            return;
        };
        let Ok(_alone) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            return;
        };
        if let Err(e) = remove_if_empty(&self.repo) {
            tracing::warn!("cannot remove the empty {}: {e:#}", self.repo.display());
        }
    }
}

fn remove_if_empty(repo: &Path) -> anyhow::Result<()> {
    if !repo.is_dir() {
        return Ok(());
    }
    let mut refs = Command::new("git");
    refs.arg("--git-dir")
        .arg(repo)
        .args(["for-each-ref", "--count=1", "--format=%(refname)"]);
    let refs = codebuilder_process::run(refs, codebuilder_process::QUICK)?;
    if !refs.success() || !refs.stdout.is_empty() {
        return Ok(());
    }
    // Renamed aside first, so that no one ever sees half a repository.
    let parent = repo.parent().context("a repository has a parent")?;
    let aside = tempfile::Builder::new()
        .prefix(".gone-")
        .tempdir_in(parent)?;
    let target = aside.path().join("repo");
    fs::rename(repo, &target)?;
    tracing::debug!("removed {}: nothing was pushed to it", repo.display());
    Ok(())
}

/// `git push -o OPTION` needs the repository to advertise push options.
fn advertise_push_options(repo: &Path) -> anyhow::Result<()> {
    let get = || {
        let mut get = Command::new("git");
        get.arg("--git-dir")
            .arg(repo)
            .args(["config", "--get", ADVERTISE_PUSH_OPTIONS]);
        codebuilder_process::run(get, codebuilder_process::QUICK)
            .map(|out| out.stdout_text() == "true")
            .context("is git installed?")
    };
    if get()? {
        return Ok(());
    }
    let mut set = Command::new("git");
    set.arg("--git-dir")
        .arg(repo)
        .args(["config", ADVERTISE_PUSH_OPTIONS, "true"]);
    // Another push may be setting it at the same time: what matters is that it is set.
    match git(set, "config", repo) {
        Err(_) if get()? => Ok(()),
        other => other,
    }
}

fn init_bare(dir: &Path, initial_branch: &str) -> anyhow::Result<()> {
    // An empty template: none of git's sample hooks, nothing but what we install.
    let mut init = Command::new("git");
    init.args(["init", "--quiet", "--bare", "--template="])
        .arg(format!("--initial-branch={initial_branch}"))
        .arg(dir);
    git(init, "init", dir)?;
    let mut config = Command::new("git");
    config
        .arg("--git-dir")
        .arg(dir)
        .args(["config", "receive.fsckObjects", "true"]);
    git(config, "config", dir)?;
    let mut config = Command::new("git");
    config
        .arg("--git-dir")
        .arg(dir)
        .args(["config", ADVERTISE_PUSH_OPTIONS, "true"]);
    git(config, "config", dir)
}

fn git(command: Command, what: &str, dir: &Path) -> anyhow::Result<()> {
    let done = codebuilder_process::run(command, codebuilder_process::QUICK)
        .context("is git installed?")?;
    if !done.success() {
        bail!(
            "git {what} failed for {}: {}",
            dir.display(),
            done.stderr_text()
        );
    }
    Ok(())
}

fn install_hook(repo: &Path, script: &str) -> io::Result<()> {
    let hooks = repo.join("hooks");
    let path = hooks.join("pre-receive");
    if fs::read_to_string(&path).is_ok_and(|current| current == script) {
        return Ok(());
    }
    fs::create_dir_all(&hooks)?;
    write_atomic(&path, script.as_bytes(), 0o755)
}
