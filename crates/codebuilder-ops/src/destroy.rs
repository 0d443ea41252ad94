//! `apps:destroy APP --confirm APP`: removes an app and everything codebuilder keeps of it,
//! with no push or build of it running. Steps run in an order that keeps the app reachable
//! by its owner until the last one (its state), so that running the command again after a
//! failed step finishes the job.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context};
use codebuilder_apps::{AppStore, ConfigStore};
use codebuilder_build::buildpack::cache_volume;
use codebuilder_build::lock::AppLock;
use codebuilder_build::records::Records;
use codebuilder_build::retention::Retention;
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_process::{Output, QUICK};
use nix::fcntl::{Flock, FlockArg};

/// The one line that says how to confirm.
fn confirm_line(app: &AppName) -> String {
    format!("apps:destroy removes {app}, its repository, builds, images and deployment for good: to confirm, run 'apps:destroy {app} --confirm {app}'")
}

/// Destroys `app` once `confirmed` (`--confirm` named it).
pub fn destroy(
    home: &Home,
    settings: &Settings,
    app: &AppName,
    confirmed: bool,
    output: &Output,
) -> anyhow::Result<()> {
    if !confirmed {
        bail!("{}", confirm_line(app));
    }
    let apps = AppStore::new(home, &settings.namespace, settings.config_access.clone());
    if apps.state(app)?.is_none() && !home.repo(app).is_dir() {
        bail!("app {app} does not exist: 'apps' lists the apps you can reach");
    }
    let _pushes = no_push_in(home, app)?;
    let cancel = codebuilder_core::main_support::stop_flag()?;
    let records = Records::new(home, app);
    let _lock = AppLock::acquire(home, app, output, &cancel, || records.describe_running())?;
    let again = || {
        format!("nothing after it was removed: run 'apps:destroy {app} --confirm {app}' again to finish")
    };
    let step = |what: &str, result: anyhow::Result<()>| {
        result.map_err(|e| {
            let cause = format!("{e:#}").replace('\n', "; ");
            anyhow!("cannot remove {what} of {app} ({cause}): {}", again())
        })
    };
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
    output.step(&format!("Removing the builds and the repository of {app}"));
    step("the build records", remove_dir(&home.builds_dir(app)))?;
    step("the repository", remove_dir(&home.repo(app)))?;
    step(
        "the config vars",
        ConfigStore::new(home).remove(app).map_err(Into::into),
    )?;
    step("the state", apps.remove(app).map_err(Into::into))?;
    output.step(&format!("Destroyed {app}"));
    Ok(())
}

/// Holds the app's repository for itself: pushes hold it shared while they run.
fn no_push_in(home: &Home, app: &AppName) -> anyhow::Result<Flock<File>> {
    let (path, file) = home.open_repo_lock(app).with_context(|| {
        format!(
            "cannot open the lock of {app}'s repository in {}",
            home.locks_dir().display()
        )
    })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            bail!("a push to {app} is in progress: run 'apps:destroy {app} --confirm {app}' again when it has ended")
        }
        Err((_, errno)) => Err(errno).with_context(|| format!("cannot lock {}", path.display())),
    }
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

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
}
