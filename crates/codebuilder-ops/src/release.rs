//! Releases: what `releases` lists and `rollback` goes back to, and the deploy a config change
//! makes. A release is a helm revision of the app; its number is what users see (`v3`).
//! The config vars are part of each release's values, rendered by the chart as the Secret
//! `APP-config`: `helm rollback` brings back a release's image and config together.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use codebuilder_apps::formation::Formation;
use codebuilder_apps::lock::AppLock;
use codebuilder_apps::records::Records;
use codebuilder_apps::{AppConfig, AppStore, ConfigKey, ConfigStore, ConfigVars, ReleaseCause};
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{Actor, AppName, Home, Settings};
use codebuilder_deploy::chart::Chart;
use codebuilder_deploy::{read_description, Cause, Deploy, Release, ReleaseValues, Trigger};
use codebuilder_process::{Output, StepContext, HEARTBEAT};
use serde_json::Value;

/// Who runs a command, and where: the one context of the commands that change a release.
pub struct Operator<'a> {
    pub home: &'a Home,
    pub settings: &'a Settings,
    pub app: AppName,
    /// The key of the session (CODEBUILDER_PUSHER), or an admin through `kubectl exec`.
    pub by: Actor,
    pub output: &'a Output,
    pub cancel: Arc<AtomicBool>,
}

impl Operator<'_> {
    /// Refuses an app that was never pushed (over ssh, access was checked before).
    pub fn check_app(&self) -> anyhow::Result<()> {
        let settings = self.settings;
        let apps = AppStore::new(
            self.home,
            &settings.namespace,
            settings.config_access.clone(),
        );
        Ok(apps.existing(&self.app)?)
    }

    /// Takes the app's lock, as a push does: one change of a release at a time. The app may
    /// have ended while this waited: its free name then gets nothing.
    pub fn lock(&self) -> anyhow::Result<AppLock> {
        let records = Records::new(self.home, &self.app);
        let lock = AppLock::acquire(self.home, &self.app, self.output, &self.cancel, || {
            records.describe_running()
        })?;
        self.check_app()?;
        Ok(lock)
    }

    fn step(&self) -> StepContext<'_> {
        StepContext {
            output: self.output,
            cancel: Arc::clone(&self.cancel),
            heartbeat: HEARTBEAT,
            show: Output::detail,
        }
    }

    /// Refuses a command about releases where nothing is deployed.
    pub fn check_deploys(&self) -> anyhow::Result<()> {
        if self.settings.deploy == DeployMode::None {
            bail!(
                "{} has no releases here: codebuilder does not deploy (CODEBUILDER_DEPLOY=none)",
                self.app
            );
        }
        Ok(())
    }

    /// Why a config change is only stored, if it is: no deploys, or no release yet.
    pub fn not_deployed(&self, deployer: &Deploy) -> anyhow::Result<Option<String>> {
        if self.settings.deploy == DeployMode::None {
            return Ok(Some("CODEBUILDER_DEPLOY=none".into()));
        }
        if deployer.current()?.is_none() {
            return Ok(Some(format!(
                "{} has no release yet; the next push deploys it",
                self.app
            )));
        }
        Ok(None)
    }

    /// Runs `act` with a deployer of the app.
    pub fn with_deployer<T>(
        &self,
        act: impl FnOnce(&Deploy) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let step = self.step();
        let deployer = Deploy {
            settings: self.settings,
            app: &self.app,
            output: self.output,
            step: &step,
        };
        act(&deployer)
    }

    /// Deploys the current release's image, process types and port again with `config`:
    /// a new release made by `cause`. Returns its number.
    pub fn redeploy(
        &self,
        deployer: &Deploy,
        config: &AppConfig,
        cause: &Cause,
    ) -> anyhow::Result<u64> {
        let app = &self.app;
        let Some((current, _)) = deployer.current()? else {
            bail!("{app} has no release to change: push it first");
        };
        let current_values = deployer.values(current)?;
        let Some(sha) = current_values.short() else {
            bail!(
                "release v{current} of {app} names no codebuilder image (image.tag {:?}): push the app again",
                current_values.image.tag
            );
        };
        let chart = Chart::at(self.settings, app, &self.home.repo(app), sha, sha)?;
        let next = deployer.prepare()?;
        // What the build set (the process types, the port, the release command), with the
        // config and the scale ps:scale keeps, for the process types the release has.
        let values = current_values.again(config.env()).scaled(
            Formation::load(self.home, app)?.counts(),
            &current_values.types(),
        );
        let cause = ReleaseCause {
            what: cause.to_string(),
            by: self.by.clone(),
        };
        let description = cause.to_string();
        ConfigStore::new(self.home).record_cause(app, next, cause)?;
        chart.ready_for(self.output, app, next, sha)?;
        deployer.run(&Release {
            chart: chart.dir.path(),
            values,
            description: &description,
            trigger: Trigger::ConfigChange,
            image_user: Some(current_values.image_user()),
        })
    }
}

/// `releases APP [--json]`: the app's releases, oldest first.
pub fn releases(op: &Operator, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    op.check_app()?;
    op.check_deploys()?;
    let stored = ConfigStore::new(op.home).load(&op.app)?;
    let history = op.with_deployer(|deployer| deployer.history())?;
    let rows: Vec<Value> = history
        .iter()
        .map(|entry| {
            let (what, by) = match stored.causes.get(&entry.revision) {
                Some(cause) => (cause.what.clone(), Some(cause.by.to_string())),
                None => {
                    let (what, by) = read_description(&entry.description);
                    (what, by.map(|by| by.to_string()))
                }
            };
            serde_json::json!({
                "version": entry.revision,
                "description": what,
                "by": by,
                "updated": entry.updated,
                "status": entry.status,
            })
        })
        .collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(out, "{} has no releases yet: push it to deploy it", op.app)?;
    }
    for row in &rows {
        let updated = row["updated"].as_str().unwrap_or_default();
        writeln!(
            out,
            "{:<6}{:<19}  {:<11} {} by {}",
            format!("v{}", row["version"].as_u64().unwrap_or_default()),
            updated.get(..19).unwrap_or(updated).replace('T', " "),
            row["status"].as_str().unwrap_or_default(),
            row["description"].as_str().unwrap_or_default(),
            row["by"].as_str().unwrap_or("unknown"),
        )?;
    }
    Ok(())
}

/// A release as users name it: `v3` (or `3`).
pub fn parse_version(text: &str) -> anyhow::Result<u64> {
    text.strip_prefix('v')
        .unwrap_or(text)
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0 && text.len() <= 12)
        .with_context(|| {
            format!("invalid release \"{text}\": name one as vN, as 'releases' lists them")
        })
}

/// `rollback APP [vN]`: goes back to release vN (default: the one before the current), its
/// image and its config; the config store follows.
pub fn rollback(op: &Operator, target: Option<u64>) -> anyhow::Result<()> {
    op.check_app()?;
    op.check_deploys()?;
    let app = &op.app;
    let _lock = op.lock()?;
    op.with_deployer(|deployer| {
        let Some((current, _)) = deployer.current()? else {
            bail!("{app} has no release to roll back: push it first");
        };
        let history = deployer.history()?;
        let target = match target {
            Some(target) => target,
            None if current > 1 => current - 1,
            None => bail!("{app} has only one release, v{current}: there is none to roll back to"),
        };
        if target == current {
            bail!("v{target} is the current release of {app}: name an earlier one ('releases {app}' lists them)");
        }
        if !history.iter().any(|entry| entry.revision == target) {
            bail!("{app} has no release v{target}: 'releases {app}' lists them");
        }
        let values = deployer.values(target)?;
        let mut config = ConfigStore::new(op.home).load(app)?;
        // A release made before config vars were part of releases leaves them as they are.
        if let Some(vars) = vars_of(&values)? {
            config.vars = vars;
        }
        op.output.step(&format!("Rolling back {app} to v{target}"));
        deployer.rollback(target, &values)?;
        // The rolled-back release's replicas are not the scale ps:scale keeps.
        deployer.keep_scale(Formation::load(op.home, app)?.counts());
        let made = deployer.current()?.map_or(current + 1, |(revision, _)| revision);
        let cause = ReleaseCause {
            what: format!("rollback to v{target}"),
            by: op.by.clone(),
        };
        config.causes.insert(made, cause);
        ConfigStore::new(op.home).save(app, &config)?;
        op.output.step(&format!(
            "Done: {app} release {made} is live (rollback to v{target}: its image and config)"
        ));
        Ok(())
    })
}

/// The config vars a release's values hold, checked; `None` for a release that did not carry
/// them.
fn vars_of(values: &ReleaseValues) -> anyhow::Result<Option<ConfigVars>> {
    let Some(config) = values.config() else {
        return Ok(None);
    };
    let mut vars = ConfigVars::new();
    for (key, value) in config {
        vars.insert(ConfigKey::parse(&key)?, value);
    }
    Ok(Some(vars))
}
