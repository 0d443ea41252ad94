//! The end of an app, whichever way it comes: `apps:destroy`, a push that deletes its last
//! ref, a first push that stores none. Held so that no push is in it and no build, rebuild or
//! release change of it runs, everything codebuilder keeps of it goes: its deployment, images,
//! build cache, build records and logs, repository, config vars, scale and state. The state
//! goes last, so that the app stays its owner's until then, and ending it again after a failed
//! step finishes the job. A free name carries nothing of its past.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use anyhow::{anyhow, bail, Context};
use codebuilder_apps::formation::Formation;
use codebuilder_apps::lock::AppLock;
use codebuilder_apps::records::Records;
use codebuilder_apps::{AppStore, ConfigStore};
use codebuilder_build::buildpack::cache_volume;
use codebuilder_build::retention::Retention;
use codebuilder_core::fsutil::remove_tree;
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_process::{Output, QUICK};
use nix::fcntl::{Flock, FlockArg};

/// How an app ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `apps:destroy`: everything goes, asked of the cluster, the registry and the engine
    /// whatever the app did.
    Destroyed,
    /// It holds no ref: its first push stored none, or its last ref was deleted. The records
    /// of its builds are kept apart for the keys that pushed them (`Records::keep_apart`).
    Emptied,
}

/// An app's repository held alone: no push is in it, and none gets in.
pub struct NoPush {
    _lock: Flock<File>,
}

impl NoPush {
    /// Holds `app`'s repository, or says `None` when a push is in it.
    pub fn take(home: &Home, app: &AppName) -> anyhow::Result<Option<Self>> {
        let (path, file) = home.open_repo_lock(app).with_context(|| {
            format!(
                "cannot open the lock of {app}'s repository in {}",
                home.locks_dir().display()
            )
        })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(Some(Self { _lock: lock })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => {
                Err(errno).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Holds the app for its end: waits for a running build of it (saying so on `output`)
    /// unless `cancel` is set meanwhile.
    pub fn hold(
        self,
        home: &Home,
        app: &AppName,
        output: &Output,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Hold> {
        let records = Records::new(home, app);
        let builds = AppLock::acquire(home, app, output, cancel, || records.describe_running())?;
        Ok(Hold {
            _pushes: self,
            _builds: builds,
        })
    }
}

/// An app held for its end: no push is in it (`NoPush`), and no build, rebuild or release
/// change of it runs (its build lock).
pub struct Hold {
    _pushes: NoPush,
    _builds: AppLock,
}

/// Ends `app`, held by `_hold`, saying each step on `output`. A step that fails stops it with
/// one line naming what could not be removed.
pub fn end(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    ending: Ending,
    _hold: &Hold,
    output: &Output,
) -> anyhow::Result<()> {
    let step = |what: &str, result: anyhow::Result<()>| {
        result.map_err(|e| {
            let cause = format!("{e:#}").replace('\n', "; ");
            anyhow!("cannot remove {what} of {app} ({cause}): nothing after it was removed: run 'apps:destroy {app} --confirm {app}' again to finish")
        })
    };
    let records = Records::new(home, app);
    // What an app leaves in the cluster, the registry and the engine comes from a build,
    // which starts with its record: an app that emptied without one asks none of them.
    if ending == Ending::Destroyed || home.builds_dir(app).is_dir() {
        if settings.deploy == DeployMode::Helm {
            step(
                "the deployment",
                codebuilder_deploy::teardown::remove(settings, app, output),
            )?;
        }
        output.step(&format!("Removing the images of {app}"));
        step(
            "the images",
            Retention {
                settings,
                home,
                app,
            }
            .remove_all(),
        )?;
        output.step(&format!("Removing the build cache of {app}"));
        step("the build cache", remove_cache(settings, home, app))?;
    }
    output.step(&format!("Removing the builds and the repository of {app}"));
    if ending == Ending::Emptied {
        step("the build records", records.keep_apart())?;
    }
    let builds = home.builds_dir(app);
    step(
        "the build records",
        remove_tree(&builds).with_context(|| format!("cannot remove {}", builds.display())),
    )?;
    let repo = home.repo(app);
    step(
        "the repository",
        remove_tree(&repo).with_context(|| format!("cannot remove {}", repo.display())),
    )?;
    step(
        "the config vars",
        ConfigStore::new(home).remove(app).map_err(Into::into),
    )?;
    step(
        "the scale",
        Formation::remove(home, app).map_err(Into::into),
    )?;
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    step("the state", apps.remove(app).map_err(Into::into))?;
    tracing::info!(%app, ?ending, "app ended");
    Ok(())
}

fn remove_cache(settings: &Settings, home: &Home, app: &AppName) -> anyhow::Result<()> {
    let volume = cache_volume(home.root(), app.as_str());
    let mut remove = Command::new(&settings.docker);
    remove.args(["volume", "rm", "--force", &volume]);
    let out = codebuilder_process::run(remove, QUICK)?;
    if !out.success() {
        bail!("docker volume rm {volume}: {}", out.stderr_text());
    }
    Ok(())
}
