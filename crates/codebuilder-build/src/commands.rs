//! The `codebuilder-build` commands: the hook git runs, and what admins run by hand; and the
//! rebuild codebuilder-ops runs.

use std::io;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_apps::lock::AppLock;
use codebuilder_apps::records::Records;
use codebuilder_apps::repo::has_branch;
use codebuilder_apps::Refusal;
use codebuilder_core::{Actor, AppName, Fingerprint, Home, ObjectId, Settings};
use codebuilder_process::Output;

use crate::build::Build;
use crate::hook::{app_of_repo, check_whole_history, plan, point_head_at, read_updates};
use crate::options::PushOptions;

/// `codebuilder-build hook`: git's pre-receive hook, run inside the app's bare repository.
pub fn hook(home: &Home, input: impl io::BufRead) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    // Before anything runs: an unknown option refuses the whole push.
    let options = PushOptions::from_env()?;
    let cancel = codebuilder_core::main_support::stop_flag()?;
    let repo = std::env::current_dir().context("cannot tell which repository the hook runs in")?;
    let app = app_of_repo(&repo, &settings.namespace)?;
    let updates = read_updates(input)?;
    let app_repo = home.repo(&app);
    let plan = plan(&updates, &settings, |branch| has_branch(&app_repo, branch))?;
    check_whole_history(&app_repo, &updates)?;
    let output = Output::stdout();
    for name in &plan.stored {
        output.step(&format!(
            "Stored {name} (not deployed: {app} deploys from {})",
            plan.deploy_branch
        ));
    }
    for name in &plan.deleted {
        output.step(&format!("Deleted {name}"));
    }
    if let Some(deploy) = plan.deploy {
        // Set by codebuilder-receive for the key the session authenticated with.
        let pusher = Actor::key_or(
            std::env::var("CODEBUILDER_PUSHER").ok().as_deref(),
            Actor::Unknown,
        )?;
        let pusher_fingerprint = std::env::var("CODEBUILDER_PUSHER_FINGERPRINT")
            .ok()
            .and_then(|fp| Fingerprint::parse(&fp).ok());
        Build {
            settings: &settings,
            home,
            app,
            expected: Some((deploy.name.clone(), deploy.old.clone())),
            rev: deploy.new,
            pusher,
            pusher_fingerprint,
            output: &output,
            cancel,
            options,
        }
        .run()?;
    }
    // An app that deploys from master: clones check out master, not a missing main.
    if plan.deploy_branch != settings.deploy_branch.as_str() {
        if let Err(e) = point_head_at(&app_repo, &plan.deploy_branch) {
            tracing::warn!("{e:#}");
        }
    }
    Ok(())
}

/// Builds and deploys REV of `app` (its deploy branch by default) again without a push, for
/// `pusher`: what `rebuild APP [REV]` runs (over ssh, or at `kubectl exec`).
pub fn rebuild(
    home: &Home,
    app: &str,
    rev: Option<&str>,
    pusher: Actor,
    pusher_fingerprint: Option<Fingerprint>,
) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let cancel = codebuilder_core::main_support::stop_flag()?;
    let app = AppName::parse(app, &settings.namespace)?;
    let repo = home.repo(&app);
    if !repo.is_dir() {
        return Err(Refusal::NoSuchApp(app).into());
    }
    let wanted = match rev {
        Some(rev) => rev.to_owned(),
        None if has_branch(&repo, settings.deploy_branch.as_str()) => {
            format!("refs/heads/{}", settings.deploy_branch)
        }
        None if has_branch(&repo, "master") => "refs/heads/master".to_owned(),
        None => bail!(
            "app {app} has no {} branch to rebuild: push it first, or name a revision",
            settings.deploy_branch
        ),
    };
    if wanted.starts_with('-') || wanted.len() > 256 {
        bail!(
            "{} is not a revision: name a commit, branch or tag of {app}",
            codebuilder_core::names::printable(&wanted)
        );
    }
    let mut rev_parse = Command::new("git");
    rev_parse.arg("--git-dir").arg(&repo).args([
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        &format!("{wanted}^{{commit}}"),
    ]);
    let resolved = codebuilder_process::run(rev_parse, codebuilder_process::QUICK)?;
    if !resolved.success() {
        bail!(
            "{} is not a commit of {app}: name a commit, branch or tag that was pushed to it",
            codebuilder_core::names::printable(&wanted)
        );
    }
    let rev = ObjectId::parse(&resolved.stdout_text())?;
    let output = Output::stdout();
    Build {
        settings: &settings,
        home,
        app,
        rev,
        pusher,
        pusher_fingerprint,
        output: &output,
        cancel,
        expected: None,
        options: PushOptions::default(),
    }
    .run()?;
    Ok(())
}

/// `codebuilder-build chart APP DIR`: writes the default chart, to start an app's own `chart/` from.
pub fn write_chart(app: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = AppName::parse(app, &settings.namespace)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: give a new or empty directory",
            dir.display()
        );
    }
    codebuilder_deploy::chart::write_default(dir, &app, 1, "0000000")
}

/// `codebuilder-build cache purge APP` (and `ssh git@HOST builds:cache:purge APP`): empties
/// APP's buildpack cache, after any running build of APP, so that its next build starts cold.
pub fn cache_purge(home: &Home, app: &str) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let app = AppName::parse(app, &settings.namespace)?;
    if !home.repo(&app).is_dir() {
        return Err(Refusal::NoSuchApp(app).into());
    }
    let cancel = codebuilder_core::main_support::stop_flag()?;
    let output = Output::stdout();
    let records = Records::new(home, &app);
    let _lock = AppLock::acquire(home, &app, &output, &cancel, || records.describe_running())?;
    crate::engine::check(&settings.docker)?;
    let volume = crate::buildpack::cache_volume(home.root(), app.as_str());
    let mut inspect = std::process::Command::new(&settings.docker);
    inspect.args(["volume", "inspect", &volume]);
    if !codebuilder_process::run(inspect, codebuilder_process::QUICK)?.success() {
        output.step(&format!("The build cache of {app} is already empty"));
        return Ok(());
    }
    let mut remove = std::process::Command::new(&settings.docker);
    remove.args(["volume", "rm", "--force", &volume]);
    let removed = codebuilder_process::run(remove, codebuilder_process::QUICK)?;
    if !removed.success() {
        bail!(
            "cannot remove the cache volume {volume}: {}: check the Docker engine (DOCKER_HOST)",
            removed.stderr_text()
        );
    }
    output.step(&format!("Emptied the build cache of {app}"));
    Ok(())
}
