//! The bare repository of an app, created on its first push.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use codebuilder_apps::AppStore;
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::sshd_quoting::quotable_path;
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_ops::end::{end, Ending, NoPush};
use codebuilder_process::Output;
use nix::fcntl::{Flock, FlockArg};

/// Settings every app repository has: `git push -o` needs push options advertised, and a
/// reflog of every ref update lets an admin undo a force push or find a deleted branch's
/// commits (`git --git-dir HOME/repos/APP.git reflog show refs/heads/main`).
const REPO_CONFIG: &[(&str, &str)] = &[
    ("receive.advertisePushOptions", "true"),
    ("core.logAllRefUpdates", "always"),
];

pub use codebuilder_core::main_support::BUILD_BINARY;

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
/// upgrade that moves the binaries keeps old repositories working, and `REPO_CONFIG` is
/// set in repositories made before it was.
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
    ensure_config(&repo)?;
    Ok(repo)
}

/// A push session's hold on an app's repository. Every push holds it (shared) from before
/// the repository is made until git is done; the last one out ends an app whose repository
/// holds no ref (its first push stored none, or its last ref was deleted), so that a name
/// without refs is free and carries nothing of its past.
pub struct RepoUse {
    lock: Flock<fs::File>,
    app: AppName,
}

impl RepoUse {
    pub fn enter(home: &Home, app: &AppName) -> anyhow::Result<Self> {
        let (path, file) = home.open_repo_lock(app).with_context(|| {
            format!(
                "cannot open the lock of {app}'s repository in {}",
                home.locks_dir().display()
            )
        })?;
        let lock = Flock::lock(file, FlockArg::LockShared)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Self {
            lock,
            app: app.clone(),
        })
    }

    /// Lets go, and when no other push is in it and the app holds no ref, ends it (under its
    /// locks, waiting for a build of it that runs). Nothing of this reaches the client: a
    /// failure is logged, and the app stays its owner's until a later session ends it.
    pub fn leave(self, home: &Home, settings: &Settings, apps: &AppStore) {
        let Self { lock, app } = self;
        drop(lock);
        let quiet = Output::new(Box::new(io::sink()));
        // The push is over: its end is not cancelled when the client goes.
        let never = AtomicBool::new(false);
        let ended = NoPush::take(home, &app).and_then(|alone| {
            let Some(alone) = alone else {
                return Ok(());
            };
            let exists = apps.state(&app)?.is_some() || home.repo(&app).is_dir();
            if !exists || has_refs(&home.repo(&app))? {
                return Ok(());
            }
            let hold = alone.hold(home, &app, &quiet, &never)?;
            end(home, settings, &app, Ending::Emptied, &hold, &quiet)
        });
        if let Err(e) = ended {
            tracing::warn!("cannot end {app}, which holds no ref: {e:#}");
        }
    }
}

/// Whether `repo` holds a ref; a repository that was never made holds none.
fn has_refs(repo: &Path) -> anyhow::Result<bool> {
    if !repo.is_dir() {
        return Ok(false);
    }
    let mut refs = Command::new("git");
    refs.arg("--git-dir")
        .arg(repo)
        .args(["for-each-ref", "--count=1", "--format=%(refname)"]);
    let refs = codebuilder_process::run(refs, codebuilder_process::QUICK)?;
    if !refs.success() {
        bail!(
            "git for-each-ref failed in {}: {}",
            repo.display(),
            refs.stderr_text()
        );
    }
    Ok(!refs.stdout.is_empty())
}

/// Sets what `REPO_CONFIG` says where it is not set yet (repositories made before it was).
fn ensure_config(repo: &Path) -> anyhow::Result<()> {
    for (key, value) in REPO_CONFIG {
        let get = || {
            let mut get = Command::new("git");
            get.arg("--git-dir")
                .arg(repo)
                .args(["config", "--get", key]);
            codebuilder_process::run(get, codebuilder_process::QUICK)
                .map(|out| out.stdout_text() == *value)
                .context("is git installed?")
        };
        if get()? {
            continue;
        }
        // Another push may be setting it at the same time: what matters is that it is set.
        match set_config(repo, key, value) {
            Err(_) if get()? => {}
            other => other?,
        }
    }
    Ok(())
}

fn set_config(repo: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    let mut set = Command::new("git");
    set.arg("--git-dir").arg(repo).args(["config", key, value]);
    git(set, "config", repo)
}

fn init_bare(dir: &Path, initial_branch: &str) -> anyhow::Result<()> {
    // An empty template: none of git's sample hooks, nothing but what we install.
    let mut init = Command::new("git");
    init.args(["init", "--quiet", "--bare", "--template="])
        .arg(format!("--initial-branch={initial_branch}"))
        .arg(dir);
    git(init, "init", dir)?;
    set_config(dir, "receive.fsckObjects", "true")?;
    for (key, value) in REPO_CONFIG {
        set_config(dir, key, value)?;
    }
    Ok(())
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
