//! The deploy: `helm upgrade --install` of an app's image into the namespace of its name.
//!
//! - The namespace is codebuilder's (labelled when codebuilder made it) and the deploy runs
//!   as the app's own ServiceAccount, bound to that namespace only: a namespace or a helm
//!   release that codebuilder did not make is never deployed over.
//! - A release that an interrupted deploy left pending (helm killed during `--wait`) is
//!   recovered first, instead of failing every later push with "another operation is in
//!   progress".
//! - When the cluster says no, one line names the permission codebuilder's account lacks, or
//!   says the API server cannot be reached.
//! - When the new pods do not become ready, the pusher first sees why (their events and last
//!   log lines), then the previous release is rolled back and serves again.
//! - What a release would run is rendered and checked before anything is applied (and once,
//!   offline, before the image is built): its pods against the namespaces' Pod Security level
//!   (`podsecurity`), their requests against the app's quota (`quota`). The upgrade applies
//!   exactly what was checked.

mod cause;
pub mod chart;
mod diagnose;
mod helm;
pub mod job;
mod labels;
mod manifest;
pub mod podsecurity;
pub mod ps;
pub mod quota;
pub mod quota_state;
mod said;
pub mod teardown;
mod tenancy;
mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail};
use codebuilder_core::pod_security::{Control, Level};
use codebuilder_core::{AppName, Settings};
use codebuilder_process::{Output, StepContext, StepError, Tail, QUICK};

pub use crate::cause::{read_description, Cause};
use crate::helm::Helm;
use crate::podsecurity::Violation;
use crate::said::{explain_cluster_error, last_error_line, tool_error};
use crate::tenancy::Tenancy;
pub use crate::values::{Image, Process, ReleaseValues};

/// Time helm gets beyond its own rollout timeout to give up by itself.
const HELM_MARGIN: Duration = Duration::from_secs(60);

/// What to deploy.
pub struct Release<'a> {
    pub chart: &'a Path,
    /// The image, process types, port, scale, config vars and release phase, applied after
    /// the operator's values. The release phase (a command run once as a Job with the new
    /// image and config before the rollout; when it fails, nothing is rolled out) is kept in
    /// them, so that a config change or a rollback runs it again.
    pub values: ReleaseValues,
    /// What made this release, as `helm history` shows it.
    pub description: &'a str,
    pub trigger: Trigger,
    /// Who the image runs as; `None` before it is built.
    pub image_user: Option<ImageUser>,
}

/// Who an app's image runs as (its `USER`), which decides whether its pods can run as
/// non-root: the default chart then runs them as that uid, with no capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUser {
    Root,
    NonRoot(u32),
}

impl ImageUser {
    /// The uid, for a non-root user.
    pub fn uid(self) -> Option<u32> {
        match self {
            Self::Root => None,
            Self::NonRoot(uid) => Some(uid),
        }
    }
}

/// The uid a release is checked with before its image is built: `nobody`'s.
const NOBODY: u32 = 65534;

/// The refusal of an image that runs as root where the level needs non-root pods.
pub fn runs_as_root(app: &AppName, level: Level) -> anyhow::Error {
    anyhow!("{app} runs as root (its image has no USER, or USER root), which the {level} Pod Security level forbids: give the image a non-root USER, commit, and push again")
}

/// What a push of an image that runs as root is told, where the level lets it run.
pub fn root_warning(app: &AppName) -> String {
    format!("{app} runs as root (its image has no USER, or USER root): its pods cannot run under the restricted Pod Security level; a non-root USER in the image would let them")
}

/// What makes a release, as Heroku runs the release phase for each: the trigger decides
/// what a failed release phase tells the user to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A build's release: a push or a `rebuild`.
    Build,
    ConfigChange,
    Rollback,
}

impl Trigger {
    /// What to do after a failed release phase (which rolled nothing out).
    fn retry(self) -> &'static str {
        match self {
            Self::Build => "fix it, commit, and push again",
            Self::ConfigChange => {
                "the config change was not kept: fix the release command or the config, and set it again"
            }
            Self::Rollback => {
                "the rollback was not made: fix what the release command needs, or roll back to another release"
            }
        }
    }
}

/// The refusal of a release that breaks the level only with the operator's values.
pub(crate) fn operator_refusal(app: &AppName, violation: &Violation) -> anyhow::Error {
    anyhow!(
        "with the operator's values (CODEBUILDER_DEPLOY_VALUES), {app} {}: except {} in CODEBUILDER_POD_SECURITY_ALLOW, or change those values",
        violation.describe(),
        violation.control
    )
}

/// The Secret an app's config vars reach its processes through.
pub fn config_secret(app: &AppName) -> String {
    format!("{app}-config")
}

/// One release of an app, from `helm history`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HistoryEntry {
    pub revision: u64,
    pub updated: String,
    pub status: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub description: String,
}

pub struct Deploy<'a> {
    pub settings: &'a Settings,
    pub app: &'a AppName,
    pub output: &'a Output,
    pub step: &'a StepContext<'a>,
}

impl Deploy<'_> {
    fn helm(&self) -> Helm<'_> {
        Helm {
            settings: self.settings,
            app: self.app,
        }
    }

    fn tenancy(&self) -> Tenancy<'_> {
        Tenancy {
            settings: self.settings,
            app: self.app,
        }
    }

    /// Refuses, before anything is built, what cannot deploy: a namespace that is not
    /// codebuilder's or whose labels were loosened; a release whose pods break the Pod Security
    /// level or the quota, rendered offline. A cluster that cannot be asked is the deploy's to
    /// report, after the build.
    pub fn check(&self, release: &Release) -> anyhow::Result<()> {
        let tenancy = self.tenancy();
        if let Ok((namespace, labels)) = tenancy.lookup() {
            if let Some(refusal) = tenancy.refusal(namespace, &labels) {
                return Err(refusal);
            }
        }
        let operator_values = self.operator_values()?;
        let values = self.values_file(release)?;
        self.vet(release, operator_values, &[values.path()], false)?;
        Ok(())
    }

    /// The release's values as a file, with what codebuilder adds to every release: the
    /// Secret of the config vars, the image's non-root uid.
    fn values_file(&self, release: &Release) -> anyhow::Result<tempfile::NamedTempFile> {
        let mut values = release.values.clone();
        values.config_vars.get_or_insert_with(BTreeMap::new);
        values.config_secret = Some(config_secret(self.app));
        // Before the build, the release is checked as for an image that runs as a non-root
        // user, which the default chart confines the most; the image's own user is checked
        // once it is built.
        let user = release.image_user.unwrap_or(ImageUser::NonRoot(NOBODY));
        values.run_as_user = user.uid().map(u64::from);
        chart::write_values(&serde_json::to_value(values)?)
    }

    /// Renders `release` as its upgrade would (`online`: with the cluster's answers to
    /// `lookup`) and checks it; returns the manifest checked, which is what is applied.
    ///
    /// Twice when the operator gives values: without them, the app's chart is held to the
    /// level with no exception; with them, the operator's exceptions
    /// (`CODEBUILDER_POD_SECURITY_ALLOW`) apply. Then the pods must fit the app's quota.
    fn vet(
        &self,
        release: &Release,
        operator_values: Option<&Path>,
        own: &[&Path],
        online: bool,
    ) -> anyhow::Result<String> {
        let (app, settings) = (self.app, self.settings);
        let level = settings.pod_security;
        let allowed = &settings.pod_security_allow;
        let strict = self.render(release, own, online)?;
        let objects = self.read(&strict)?;
        if let Err(violation) = podsecurity::check(&objects, level, &[]) {
            if violation.control == Control::RunAsNonRoot
                && release.image_user == Some(ImageUser::Root)
            {
                return Err(runs_as_root(app, level));
            }
            let control = violation.control;
            let only_operator = if allowed.contains(&control) {
                format!(" (CODEBUILDER_POD_SECURITY_ALLOW excepts {control} for the operator's values only)")
            } else {
                String::new()
            };
            bail!(
                "the chart of {app} {}{only_operator}: {}, commit, and push again",
                violation.describe(),
                violation.fix()
            );
        }
        let (manifest, objects) = match operator_values {
            None => (strict, objects),
            Some(file) => {
                let values: Vec<&Path> = std::iter::once(file).chain(own.iter().copied()).collect();
                let full = self.render(release, &values, online)?;
                let objects = self.read(&full)?;
                podsecurity::check(&objects, level, allowed)
                    .map_err(|violation| operator_refusal(app, &violation))?;
                (full, objects)
            }
        };
        if let Some(limits) = &settings.app_quota {
            quota::check_fit(&objects, limits)
                .map_err(|e| anyhow!("the release of {app} {e}: {}", e.fix()))?;
        }
        Ok(manifest)
    }

    fn render(&self, release: &Release, values: &[&Path], online: bool) -> anyhow::Result<String> {
        let app = self.app;
        let template =
            self.helm()
                .template(release.chart, values, &release.values.image.tag, online);
        let out = codebuilder_process::run(template, QUICK)
            .map_err(|e| tool_error(e, "CODEBUILDER_HELM"))?;
        if !out.success() {
            let said = out.stderr_text();
            bail!(
                "{}",
                explain_cluster_error(&said).unwrap_or_else(|| format!(
                    "the chart of {app} does not render ({}): fix it, commit, and push again",
                    last_error_line(&said)
                ))
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn read(&self, manifest: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let app = self.app;
        manifest::read(manifest).map_err(|e| {
            anyhow!("the chart of {app} renders what codebuilder cannot check: {e}; fix it, commit, and push again")
        })
    }

    /// Refuses to roll back to a revision whose pods break the level as it is now (the
    /// operator may have raised it since).
    fn check_revision(&self, revision: u64, values: &ReleaseValues) -> anyhow::Result<()> {
        let (app, settings) = (self.app, self.settings);
        let objects = self.read(&self.helm().manifest(revision)?)?;
        let level = settings.pod_security;
        match podsecurity::check(&objects, level, &settings.pod_security_allow) {
            Ok(()) => Ok(()),
            Err(v) if v.control == Control::RunAsNonRoot && values.image_user() == ImageUser::Root => {
                Err(anyhow!("release v{revision} of {app} runs as root, which the {level} Pod Security level forbids: roll back to another release, or push a fix"))
            }
            Err(v) => Err(anyhow!(
                "release v{revision} of {app} {}: roll back to another release, or push a fix",
                v.describe()
            )),
        }
    }

    /// Makes the release ready for an upgrade (its namespace, a pending release recovered)
    /// and returns the revision the next deploy makes: the release number users see.
    pub fn prepare(&self) -> anyhow::Result<u64> {
        self.operator_values()?;
        self.tenancy().ensure()?;
        let helm = self.helm();
        let app = self.app;
        if let Some(state) = helm.state()? {
            if !helm.is_ours()? {
                bail!("the namespace {app} holds a helm release {app} that codebuilder did not make: push the app under another name, or have a cluster admin remove that release (helm uninstall {app} -n {app})");
            }
            if state.is_pending() {
                self.recover(state.status.as_str())?;
            }
        }
        Ok(helm.state()?.map_or(1, |s| s.revision + 1))
    }

    /// The release deployed now, if any: its revision and status.
    pub fn current(&self) -> anyhow::Result<Option<(u64, String)>> {
        Ok(self.helm().state()?.map(|s| (s.revision, s.status)))
    }

    /// The app's releases, oldest first.
    pub fn history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        self.helm().history_entries()
    }

    /// The values codebuilder gave `revision` (the image, process types, port, config vars).
    pub fn values(&self, revision: u64) -> anyhow::Result<ReleaseValues> {
        let app = self.app;
        serde_json::from_value(self.helm().values(revision)?).map_err(|e| {
            anyhow!("the values of release v{revision} of {app} are not codebuilder's ({e}): push the app again")
        })
    }

    /// Goes back to `revision` (its image and config), waiting for its pods; first runs the
    /// release command that revision kept, with its image and config. `values` are that
    /// revision's ([`Deploy::values`]).
    pub fn rollback(&self, revision: u64, values: &ReleaseValues) -> anyhow::Result<()> {
        let app = self.app;
        self.check_revision(revision, values)?;
        if let Some(command) = &values.release_command {
            let config = values.config().unwrap_or_default();
            self.release_phase(
                command,
                &values.image.tag,
                &config,
                Trigger::Rollback,
                values.image_user(),
            )?;
        }
        self.helm_step(self.helm().rollback(revision), "rolling back")
            .map_err(|why| anyhow!("the rollback of {app} to v{revision} failed ({why}): see 'releases {app}', and try again"))
    }

    /// Puts back the scale `ps:scale` keeps (`counts`: pods per process type) where a rollback
    /// restored the replicas of the release it went back to. A failure is the pusher's
    /// warning: the release itself is in place.
    pub fn keep_scale<'k>(&self, counts: impl IntoIterator<Item = (&'k str, u32)>) {
        let counts: Vec<(&str, u32)> = counts.into_iter().collect();
        if counts.is_empty() {
            return;
        }
        let pods = ps::AppPods {
            settings: self.settings,
            app: self.app,
        };
        if let Err(e) = pods.keep_scale(counts) {
            self.output
                .warning(&format!("cannot put back the scale of {}: {e:#}", self.app));
        }
    }

    /// Deploys `release` (after `prepare`) and returns its helm revision: checks what it
    /// would run, runs its release command, then applies what was checked. The error is one
    /// line: the cause and the fix.
    pub fn run(&self, release: &Release) -> anyhow::Result<u64> {
        let operator_values = self.operator_values()?;
        let helm = self.helm();
        let own = self.values_file(release)?;
        let manifest = self.vet(release, operator_values, &[own.path()], true)?;
        let checked = chart::flatten(&manifest, release.chart)?;
        if let Some(command) = &release.values.release_command {
            let user = release.image_user.unwrap_or(ImageUser::Root);
            self.release_phase(
                command,
                &release.values.image.tag,
                &release.values.config_vars.clone().unwrap_or_default(),
                release.trigger,
                user,
            )?;
        }
        let mut values: Vec<&Path> = operator_values.into_iter().collect();
        values.push(own.path());
        let upgrade = helm.upgrade(
            checked.path(),
            &values,
            &release.values.image.tag,
            release.description,
        );
        let tail = Tail::default();
        let outcome = self.step.run_keeping(
            vec![upgrade],
            self.settings.deploy_timeout + HELM_MARGIN,
            "deploying",
            &tail,
        );
        match outcome {
            Ok(()) => Ok(helm.state()?.map_or(0, |s| s.revision)),
            Err(StepError::Failed { .. } | StepError::TooLarge(_)) => {
                Err(self.failed(&tail.lines().join("\n")))
            }
            Err(StepError::TimedOut(limit)) => Err(anyhow!(
                "helm upgrade took longer than {limit} and was stopped: the next push recovers the release; raise CODEBUILDER_DEPLOY_TIMEOUT if the app needs longer to start"
            )),
            Err(StepError::Cancelled) => Err(anyhow!(
                "the deploy was cancelled: the push was interrupted; the next push recovers the release"
            )),
            Err(StepError::Spawn { program, source }) => Err(anyhow!(
                "cannot run {program}: {source} (is helm installed? CODEBUILDER_HELM)"
            )),
        }
    }

    /// Runs the release command with the new image; refuses the deploy when it fails.
    fn release_phase(
        &self,
        command: &str,
        image_tag: &str,
        config: &BTreeMap<String, String>,
        trigger: Trigger,
        user: ImageUser,
    ) -> anyhow::Result<()> {
        let app = self.app;
        self.output
            .step(&format!("Running the release command: {command}"));
        let image = format!("{}/{app}:{image_tag}", self.settings.pull_registry);
        let status = job::OneOff {
            settings: self.settings,
            app,
            kind: job::JobKind::Release,
            image: &image,
            command_line: command,
            config: Some(config),
            timeout: self.settings.deploy_timeout,
            user,
        }
        .run(self.step, &mut |line| {
            self.output.detail(line);
            true
        })
        .map_err(|e| {
            anyhow!(
                "{e:#}: the running release is untouched; {}",
                trigger.retry()
            )
        })?;
        if status != 0 {
            bail!(
                "the release command failed (exit status {status}): the running release is untouched; {}",
                trigger.retry()
            );
        }
        Ok(())
    }

    /// The operator's values file, checked before helm sees it.
    fn operator_values(&self) -> anyhow::Result<Option<&Path>> {
        let Some(file) = &self.settings.deploy_values else {
            return Ok(None);
        };
        if let Err(e) = std::fs::File::open(file) {
            bail!(
                "cannot read the values file {} ({e}): fix CODEBUILDER_DEPLOY_VALUES",
                file.display()
            );
        }
        Ok(Some(file))
    }

    /// Puts a release left `pending-*` back to its last good revision, or removes a first
    /// install that never finished.
    fn recover(&self, status: &str) -> anyhow::Result<()> {
        let helm = self.helm();
        let app = self.app;
        self.output.step(&format!(
            "Recovering {app}: an interrupted deploy left its release {status}"
        ));
        let (command, what) = match helm.last_good()? {
            Some(revision) => (
                helm.rollback(revision),
                format!("rolling back to revision {revision}"),
            ),
            None => (
                helm.uninstall(),
                "removing the unfinished first install".to_owned(),
            ),
        };
        self.output.detail(&what);
        self.helm_step(command, "recovering").map_err(|why| {
            anyhow!("cannot recover the release of {app} left {status} ({why}): run `helm rollback {app} -n {app}` by hand")
        })
    }

    /// Runs a helm command other than the upgrade as a step; on failure, what went wrong and
    /// helm's own error line.
    fn helm_step(&self, command: Command, activity: &str) -> Result<(), String> {
        let tail = Tail::default();
        self.step
            .run_keeping(
                vec![command],
                self.settings.deploy_timeout + HELM_MARGIN,
                activity,
                &tail,
            )
            .map_err(|e| format!("{e}: {}", last_error_line(&tail.lines().join("\n"))))
    }

    /// Explains a failed `helm upgrade` and puts the previous release back.
    fn failed(&self, said: &str) -> anyhow::Error {
        if let Some(line) = explain_cluster_error(said) {
            return anyhow!(line);
        }
        let app = self.app;
        let diagnosis = diagnose::not_ready_pods(self.settings, app);
        if !diagnosis.lines.is_empty() {
            self.output.step(&format!("Why {app} is not ready"));
            for line in &diagnosis.lines {
                self.output.detail(line);
            }
        }
        let restored = match self.roll_back() {
            Ok(restored) => restored,
            Err(e) => return e,
        };
        let cause = match diagnosis.reason {
            Some(reason) => format!("the new release did not become ready ({reason})"),
            None => format!("helm upgrade failed ({})", last_error_line(said)),
        };
        anyhow!("{cause}: {restored}; fix the app or its chart, commit, and push again")
    }

    /// Goes back to the last good revision after a failed upgrade; says what now runs.
    fn roll_back(&self) -> Result<&'static str, anyhow::Error> {
        let helm = self.helm();
        let app = self.app;
        let state = helm.state().map_err(|e| anyhow!("{e:#}"))?;
        if state.as_ref().is_none_or(|s| s.status == "deployed") {
            // Nothing was recorded (the chart did not render) or helm already went back.
            return Ok("nothing was changed");
        }
        let (command, restored) = match helm.last_good()? {
            Some(revision) => {
                self.output
                    .step(&format!("Rolling back {app} to revision {revision}"));
                (
                    helm.rollback(revision),
                    "the previous release is serving again",
                )
            }
            None => {
                self.output.step(&format!(
                    "Removing the first release of {app}, which never became ready"
                ));
                (helm.uninstall(), "nothing is deployed")
            }
        };
        self.helm_step(command, "rolling back").map_err(|why| {
            anyhow!("the deploy failed and so did the rollback ({why}): run `helm rollback {app} -n {app}` by hand")
        })?;
        Ok(restored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_cannot_start_names_its_setting_and_a_slow_one_its_own_reason() {
        let missing =
            codebuilder_process::run(Command::new("/nonexistent/kubectl"), Duration::from_secs(5))
                .unwrap_err();
        assert_eq!(
            tool_error(missing, "CODEBUILDER_KUBECTL").to_string(),
            "cannot run /nonexistent/kubectl: No such file or directory (os error 2) (is it installed? CODEBUILDER_KUBECTL)"
        );
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let slow = codebuilder_process::run(sleep, Duration::from_millis(100)).unwrap_err();
        assert_eq!(
            tool_error(slow, "CODEBUILDER_KUBECTL").to_string(),
            "sleep took longer than 100ms and was stopped"
        );
    }
}
