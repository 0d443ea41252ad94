//! One build: lock the app, record it, build the image from the pushed tree, push it, deploy it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use codebuilder_core::settings::{ByteSize, DeployMode};
use codebuilder_core::{AppName, Home, Settings};

use crate::buildpack::{BuildpackBuild, Processes};
use crate::chart;
use crate::lock::AppLock;
use crate::records::{now, BuildRecord, BuildResult, Records};
use crate::retention::Retention;
use codebuilder_process::runner::{StepContext, StepError};
use codebuilder_process::{Output, QUICK};

/// How long a step may stay silent before the pusher gets a progress line: well under the
/// idle timeouts of common load balancers.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Time helm gets beyond its own rollout timeout to give up and roll back by itself.
const HELM_MARGIN: Duration = Duration::from_secs(60);

pub struct Build<'a> {
    pub settings: &'a Settings,
    pub home: &'a Home,
    pub app: AppName,
    /// Full object name of the commit to build.
    pub rev: String,
    /// Name of the key that pushed, or who ran `rerun`.
    pub pusher: String,
    pub output: &'a Output,
    pub cancel: Arc<AtomicBool>,
    /// For a push: the ref and the value it had when the push began. Checked once the lock
    /// is held, so that a push that waited for another one does not deploy over it.
    pub expected: Option<(String, String)>,
}

impl Build<'_> {
    fn repo(&self) -> PathBuf {
        self.home.repo(&self.app)
    }

    fn short(&self) -> &str {
        &self.rev[..7.min(self.rev.len())]
    }

    fn git(&self) -> Command {
        let mut command = Command::new("git");
        command.arg("--git-dir").arg(self.repo());
        command
    }

    /// Runs the build under the app's lock and keeps its record. The error, if any, is one
    /// line with the cause and the fix.
    pub fn run(&self) -> anyhow::Result<BuildRecord> {
        let records = Records::new(self.home, &self.app);
        let _lock = AppLock::acquire(self.home, &self.app, self.output, &self.cancel, || {
            records.running().map(|r| {
                format!(
                    "build {} of {} by {}",
                    r.number,
                    &r.rev[..7.min(r.rev.len())],
                    r.pusher
                )
            })
        })?;
        if let Some((reference, old)) = &self.expected {
            self.check_unmoved(reference, old)?;
        }
        let (mut record, log) = records.start(&self.rev, &self.pusher)?;
        self.output.tee(log);
        let outcome = self.steps(&mut record);
        record.finished_at = Some(now());
        record.result = match &outcome {
            Ok(()) => BuildResult::Succeeded,
            Err(_) if self.cancel.load(std::sync::atomic::Ordering::Relaxed) => {
                BuildResult::Cancelled
            }
            Err(_) => BuildResult::Failed,
        };
        record.error = outcome.as_ref().err().map(|e| format!("{e:#}"));
        // The outcome decides the push: once the image is out (and deployed), the refs must
        // move to name what runs, and a failed build keeps its own cause as the last line.
        // Bookkeeping errors from here on are warnings.
        let mut bookkeeping = vec![
            records.save(&record),
            records.prune(self.settings.keep_builds),
        ];
        if outcome.is_ok() {
            let retention = Retention {
                settings: self.settings,
                home: self.home,
                app: &self.app,
            };
            bookkeeping.push(retention.keep(&format!("git-{}", self.short())));
        }
        for error in bookkeeping.into_iter().filter_map(Result::err) {
            self.output.warning(&format!("{error:#}"));
        }
        if outcome.is_ok() && self.settings.deploy == DeployMode::None {
            self.output.step(&format!(
                "Done: {} {} is in the registry as {} (CODEBUILDER_DEPLOY=none)",
                self.app,
                self.short(),
                record.image.as_deref().unwrap_or_default()
            ));
        }
        outcome.map(|()| record)
    }

    fn steps(&self, record: &mut BuildRecord) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.settings.build_timeout;
        let step = StepContext {
            output: self.output,
            cancel: Arc::clone(&self.cancel),
            heartbeat: HEARTBEAT,
            show: Output::detail,
        };
        let settings = self.settings;
        let (app, short) = (&self.app, self.short());
        let image = format!("{}/{app}", settings.registry);
        let tagged = format!("{image}:git-{short}");
        let latest = format!("{image}:latest");
        // A Dockerfile wins; without one, buildpacks build the app.
        let processes = if self.tree_has("Dockerfile")? {
            self.dockerfile_build(&step, &[&tagged, &latest])?;
            None
        } else {
            let repo = self.repo();
            let buildpacks = BuildpackBuild {
                settings,
                home: self.home,
                app,
                repo: &repo,
                rev: &self.rev,
                step: &step,
                deadline,
            };
            Some(buildpacks.run(&[&tagged, &latest])?)
        };
        self.push(&step, deadline, &[&tagged, &latest])?;
        record.image = Some(tagged.clone());
        if settings.deploy == DeployMode::None {
            return Ok(());
        }
        self.deploy(&step, record, processes.as_ref())
    }

    /// `docker push` of each tag, the first one named to the pusher.
    fn push(&self, step: &StepContext, deadline: Instant, tags: &[&str]) -> anyhow::Result<()> {
        let settings = self.settings;
        self.output.step(&format!(
            "Pushing {}",
            tags.first().copied().unwrap_or_default()
        ));
        for reference in tags {
            let mut push = Command::new(&settings.docker);
            push.args(["push", reference]);
            // The push credentials reach `docker push` and nothing else: no build sees them.
            if let Some(auth) = &settings.registry_auth {
                push.env("DOCKER_CONFIG", auth);
            }
            step.run(vec![push], remaining(deadline), "pushing").map_err(|e| {
                explain(
                    e,
                    "docker push",
                    &format!("check that the registry {} is running and reachable (CODEBUILDER_REGISTRY)", settings.registry),
                    "CODEBUILDER_BUILD_TIMEOUT",
                )
            })?;
        }
        Ok(())
    }

    /// `git archive REV | docker build -`: the pushed tree streams into the build, never
    /// checked out on disk.
    fn dockerfile_build(&self, step: &StepContext, tags: &[&str]) -> anyhow::Result<()> {
        let settings = self.settings;
        self.output.step(&format!(
            "Building {} ({}) with Dockerfile",
            self.app,
            self.short()
        ));
        let mut archive = self.git();
        archive.args(["archive", "--format=tar", &self.rev]);
        let mut docker_build = Command::new(&settings.docker);
        docker_build.arg("build");
        for tag in tags {
            docker_build.args(["--tag", tag]);
        }
        // No --label: the classic builder runs each label as a step of its own, and the tag
        // already names the revision.
        if let Some(network) = &settings.build_network {
            docker_build.args(["--network", network]);
        }
        docker_build.arg("-");
        step.run_limited(
            vec![archive, docker_build],
            settings.build_timeout,
            "building",
            settings.max_context_size.bytes(),
        )
        .map_err(|e| {
            explain(
                e,
                "docker build",
                "fix the Dockerfile or the code, commit, and push again",
                "CODEBUILDER_BUILD_TIMEOUT",
            )
        })
    }

    /// `helm upgrade --install` of the app's own chart or the default one. A buildpack app's
    /// process types go to the chart as values: the default chart runs each of them.
    fn deploy(
        &self,
        step: &StepContext,
        record: &mut BuildRecord,
        processes: Option<&Processes>,
    ) -> anyhow::Result<()> {
        let (app, short) = (&self.app, self.short());
        let chart_dir = tempfile::Builder::new()
            .prefix("codebuilder-chart-")
            .tempdir()?;
        let own_chart = self.tree_has("chart/Chart.yaml")?;
        if own_chart {
            self.extract_chart(chart_dir.path())?;
        } else {
            chart::write_default(chart_dir.path(), app, record.number, short)?;
        }
        let values = processes
            .map(|p| chart::write_values(&p.values()))
            .transpose()?;
        let source = if own_chart {
            "the app's own chart"
        } else {
            "the default chart"
        };
        self.output.step(&format!(
            "Deploying release {} to namespace {app} with {source}",
            record.number
        ));
        let mut helm = self.helm_upgrade(chart_dir.path(), short, &record.pusher, record.number)?;
        if let Some(values) = &values {
            helm.arg("--values").arg(values.path());
        }
        step.run(vec![helm], self.settings.deploy_timeout + HELM_MARGIN, "deploying").map_err(|e| {
            explain(
                e,
                "helm upgrade",
                "check that the cluster is reachable (KUBECONFIG) and that the app's pods become ready (a failed rollout is rolled back)",
                "CODEBUILDER_DEPLOY_TIMEOUT",
            )
        })?;
        record.helm_revision = self.helm_revision();
        self.output.step(&format!("Done: {app} {short} is live"));
        Ok(())
    }

    fn check_unmoved(&self, reference: &str, old: &str) -> anyhow::Result<()> {
        let mut rev_parse = self.git();
        rev_parse.args(["rev-parse", "--verify", "--quiet", reference]);
        let current = codebuilder_process::run(rev_parse, QUICK)?.stdout_text();
        let unmoved = if old.bytes().all(|b| b == b'0') {
            current.is_empty()
        } else {
            current == old
        };
        if !unmoved {
            let branch = reference.trim_start_matches("refs/heads/");
            bail!("{branch} moved while this push waited: another push deployed {}; pull, then push again", &current[..7.min(current.len())]);
        }
        Ok(())
    }

    /// Whether the pushed tree has `path` (objects may still sit in git's push quarantine,
    /// which the environment of the hook makes readable).
    fn tree_has(&self, path: &str) -> anyhow::Result<bool> {
        let mut cat_file = self.git();
        cat_file.args(["cat-file", "-e", &format!("{}:{path}", self.rev)]);
        Ok(codebuilder_process::run(cat_file, QUICK)?.success())
    }

    fn extract_chart(&self, dir: &Path) -> anyhow::Result<()> {
        let mut archive = self.git();
        archive.args(["archive", "--format=tar", &self.rev, "chart"]);
        let output = codebuilder_process::run(archive, QUICK)
            .with_context(|| format!("cannot read chart/ from {}", self.short()))?;
        if !output.success() {
            bail!(
                "cannot read chart/ from {}: {}",
                self.short(),
                output.stderr_text()
            );
        }
        let staging = dir.join(".extract");
        tar::Archive::new(output.stdout.as_slice())
            .unpack(&staging)
            .context("cannot unpack chart/")?;
        for entry in std::fs::read_dir(staging.join("chart"))? {
            let entry = entry?;
            std::fs::rename(entry.path(), dir.join(entry.file_name()))?;
        }
        std::fs::remove_dir_all(&staging)?;
        Ok(())
    }

    fn helm_upgrade(
        &self,
        chart: &Path,
        short: &str,
        pusher: &str,
        number: u64,
    ) -> anyhow::Result<Command> {
        let settings = self.settings;
        let app = self.app.as_str();
        let mut helm = Command::new(&settings.helm);
        helm.args(["upgrade", "--install", app])
            .arg(chart)
            .args(["--namespace", app, "--create-namespace", "--wait"])
            .args([
                "--timeout",
                &format!("{}s", settings.deploy_timeout.as_secs()),
            ])
            .args([
                "--set-string",
                &format!("image.repository={}/{app}", settings.pull_registry),
            ])
            .args(["--set-string", &format!("image.tag=git-{short}")])
            .args([
                "--description",
                &format!("codebuilder build {number} of {short} by {pusher}"),
            ]);
        // A failed rollout goes back to the previous release; Helm 4 renamed the flag.
        helm.arg(if helm_major_version(&settings.helm)? >= 4 {
            "--rollback-on-failure"
        } else {
            "--atomic"
        });
        Ok(helm)
    }

    fn helm_revision(&self) -> Option<u64> {
        let app = self.app.as_str();
        let mut status = Command::new(&self.settings.helm);
        status.args(["status", app, "--namespace", app, "--output", "json"]);
        let output = codebuilder_process::run(status, QUICK).ok()?;
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        status.get("version")?.as_u64()
    }
}

fn helm_major_version(helm: &str) -> anyhow::Result<u32> {
    let mut version = Command::new(helm);
    version.args(["version", "--template", "{{.Version}}"]);
    let output = codebuilder_process::run(version, QUICK)
        .context("is helm installed? (CODEBUILDER_HELM)")?;
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "cannot tell the version of {helm} from {:?}",
                version.trim()
            )
        })
}

/// Time left before `deadline`, at least a second: the build's time limit covers all steps.
pub(crate) fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// Turns a failure of a pipeline fed by `git archive` into the one line the pusher reads
/// last: a broken archive explains the rest.
pub(crate) fn explain(
    error: StepError,
    what: &str,
    fix: &str,
    timeout_setting: &str,
) -> anyhow::Error {
    match error {
        StepError::Failed { program, status } if program == "git" => {
            anyhow!("reading the pushed tree failed ({status})")
        }
        other => explain_step(other, what, fix, timeout_setting),
    }
}

/// Turns a step's failure into the one line the pusher reads last: what failed and what to do.
pub(crate) fn explain_step(
    error: StepError,
    what: &str,
    fix: &str,
    timeout_setting: &str,
) -> anyhow::Error {
    match error {
        StepError::Failed { status, .. } => anyhow!("{what} failed ({status}): {fix}"),
        StepError::TimedOut(limit) => anyhow!("{what} took longer than {limit} and was stopped: raise {timeout_setting} if it needs longer"),
        StepError::Cancelled => anyhow!("{what} was cancelled: the push was interrupted"),
        StepError::TooLarge(limit) => anyhow!("{what} was stopped: the pushed tree is over the {} limit of a build context (CODEBUILDER_MAX_CONTEXT_SIZE): remove large files from the repository, or raise CODEBUILDER_MAX_CONTEXT_SIZE", ByteSize(limit)),
        StepError::Spawn { program, source } => anyhow!("cannot run {program}: {source} (is it installed?)"),
    }
}
