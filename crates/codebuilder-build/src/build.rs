//! One build: lock the app, record it, build the image from the pushed tree, push it, deploy it.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use codebuilder_apps::formation::Formation;
use codebuilder_apps::lock::AppLock;
use codebuilder_apps::records::{now, BuildRecord, BuildResult, Records};
use codebuilder_apps::{ConfigStore, Refusal, ReleaseCause};
use codebuilder_core::pod_security::Level;
use codebuilder_core::settings::DeployMode;
use codebuilder_core::{Actor, AppName, Fingerprint, Home, ObjectId, Settings};
use codebuilder_deploy::chart::Chart;
use codebuilder_deploy::{
    root_warning, runs_as_root, Cause, Deploy, ImageUser, Release, ReleaseValues, Trigger,
};
use codebuilder_process::runner::{StepContext, StepError};
use codebuilder_process::{Output, HEARTBEAT, QUICK};

use crate::buildkit::{self, Progress};
use crate::buildpack::processes::{parse_procfile, RELEASE};
use crate::buildpack::{BuildpackBuild, Processes};
use crate::context;
use crate::dockerignore::IgnoreFile;
use crate::failure::{remaining, Failure};
use crate::options::PushOptions;
use crate::retention::Retention;

/// How long after a build git may still be storing that push's refs.
const PREVIOUS_PUSH_GRACE: Duration = Duration::from_secs(10);

pub struct Build<'a> {
    pub settings: &'a Settings,
    pub home: &'a Home,
    pub app: AppName,
    /// The commit to build.
    pub rev: ObjectId,
    /// Who pushed, or who ran `rebuild`.
    pub pusher: Actor,
    /// Fingerprint of the key that pushed.
    pub pusher_fingerprint: Option<Fingerprint>,
    pub output: &'a Output,
    pub cancel: Arc<AtomicBool>,
    /// For a push: the ref and the value it had when the push began. Checked once the lock
    /// is held, so that a push that waited for another one does not deploy over it.
    pub expected: Option<(String, ObjectId)>,
    /// What the pusher asked for with `git push -o`.
    pub options: PushOptions,
}

impl Build<'_> {
    fn repo(&self) -> PathBuf {
        self.home.repo(&self.app)
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
            records.describe_running()
        })?;
        // A rebuild that waited for the lock may find the app ended meanwhile: its name then
        // gets no record.
        if !self.repo().is_dir() {
            return Err(Refusal::NoSuchApp(self.app.clone()).into());
        }
        if let Some((reference, old)) = &self.expected {
            self.await_previous_ref_update(&records, reference, old)?;
            self.check_unmoved(reference, old)?;
        }
        let (mut record, log) =
            records.start(&self.rev, &self.pusher, self.pusher_fingerprint.as_ref())?;
        self.output.tee(log);
        let outcome = self.steps(&mut record);
        record.finished_at = Some(now());
        record.result = match &outcome {
            Ok(_) => BuildResult::Succeeded,
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
            bookkeeping.push(retention.keep(&format!("git-{}", self.rev.short())));
        }
        for error in bookkeeping.into_iter().filter_map(Result::err) {
            self.output.warning(&format!("{error:#}"));
        }
        // `Done` only once the record says so.
        outcome.map(|done| {
            self.output.step(&done);
            record
        })
    }

    /// The build's steps; on success, the line that says where the build ended.
    fn steps(&self, record: &mut BuildRecord) -> anyhow::Result<String> {
        let deadline = Instant::now() + self.settings.build_timeout;
        let step = StepContext {
            output: self.output,
            cancel: Arc::clone(&self.cancel),
            heartbeat: HEARTBEAT,
            show: Output::detail,
        };
        let settings = self.settings;
        let (app, short) = (&self.app, self.rev.short());
        crate::engine::check(&settings.docker)?;
        let deploying = settings.deploy != DeployMode::None && !self.options.skip_deploy;
        // Refused before anything is built: an app's chart/ with links or over the limits, a
        // namespace that is not codebuilder's or was loosened, a release whose pods break the
        // Pod Security level or the quota.
        let chart = if deploying {
            let chart = self.chart()?;
            self.check_release(&step, &chart)?;
            Some(chart)
        } else {
            None
        };
        // One tag, one push: the chart and rollbacks name images by revision, so nothing
        // needs a `latest` that would cost a second push.
        let tagged = format!("{}/{app}:git-{short}", settings.registry);
        // A Dockerfile wins; without one, buildpacks build the app.
        let (processes, port) = if self.tree_has("Dockerfile")? {
            self.dockerfile_build(&step, &tagged)
                .map_err(|e| crate::engine::blame(&settings.docker, e))?;
            let port = crate::exposed::of_image(&settings.docker, &tagged)?;
            if let Some(port) = &port {
                self.output.step(&port.line);
            }
            (None, port.map(|p| p.port))
        } else {
            if self.options.no_cache {
                self.output.step(&format!("no-cache: buildpack builds keep their cache; empty it with builds:cache:purge {app}"));
            }
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
            let processes = buildpacks
                .run(&[&tagged])
                .map_err(|e| crate::engine::blame(&settings.docker, e))?;
            (Some(processes), None)
        };
        let user = match &chart {
            Some(chart) => Some(self.image_user(&tagged, chart)?),
            None => None,
        };
        self.push(&step, deadline, &tagged)
            .map_err(|e| crate::engine::blame(&settings.docker, e))?;
        record.image = Some(tagged.clone());
        let (Some(chart), Some(user)) = (chart, user) else {
            let reason = if settings.deploy == DeployMode::None {
                "CODEBUILDER_DEPLOY=none"
            } else {
                "deploy skipped: git push -o skip-deploy"
            };
            return Ok(format!(
                "Done: {app} {short} is in the registry as {tagged} ({reason})"
            ));
        };
        self.deploy(&step, record, processes.as_ref(), port, &chart, user)?;
        Ok(format!("Done: {app} {short} is live"))
    }

    /// Checks the release before the build, as far as it is known: the default chart or the
    /// app's own, the operator's values, the config vars, the web process's scale.
    fn check_release(&self, step: &StepContext, chart: &Chart) -> anyhow::Result<()> {
        let app = &self.app;
        let config = ConfigStore::new(self.home).load(app)?.env();
        let formation = Formation::load(self.home, app)?;
        let values = ReleaseValues::of_build(self.rev.short())
            .again(config)
            .scaled(formation.counts(), &["web"]);
        self.deployer(step).check(&Release {
            chart: chart.dir.path(),
            values,
            description: "",
            trigger: Trigger::Build,
            image_user: None,
        })
    }

    /// Who the built image runs as. With the default chart, an image that runs as root is
    /// refused under the restricted level, and the pusher is told once under the others.
    fn image_user(&self, image: &str, chart: &Chart) -> anyhow::Result<ImageUser> {
        let settings = self.settings;
        let user = crate::user::of_image(&settings.docker, image)?;
        if user == ImageUser::Root && !chart.own {
            if settings.pod_security == Level::Restricted {
                return Err(runs_as_root(&self.app, settings.pod_security));
            }
            self.output.warning(&root_warning(&self.app));
        }
        Ok(user)
    }

    /// `docker push` of the image's one tag.
    fn push(&self, step: &StepContext, deadline: Instant, reference: &str) -> anyhow::Result<()> {
        let settings = self.settings;
        self.output.step(&format!("Pushing {reference}"));
        let mut push = Command::new(&settings.docker);
        push.args(["push", reference]);
        // The push credentials reach `docker push` and nothing else: no build sees them.
        if let Some(auth) = &settings.registry_auth {
            push.env("DOCKER_CONFIG", auth);
        }
        step.run(vec![push], remaining(deadline), "pushing").map_err(|e| {
            Failure {
                what: "docker push",
                fix: &format!("check that the registry {} is running and reachable (CODEBUILDER_REGISTRY)", settings.registry),
                limit: settings.build_timeout,
            }
            .of_pushed_tree(e)
        })
    }

    /// `git archive REV | docker build -` with BuildKit: the pushed tree streams into the
    /// build as a tar, never checked out on disk; through `codebuilder-build context-filter`
    /// when the tree has a `.dockerignore`.
    fn dockerfile_build(&self, step: &StepContext, tag: &str) -> anyhow::Result<()> {
        let settings = self.settings;
        buildkit::check_cli(&settings.docker)?;
        self.output.step(&format!(
            "Building {} ({}) with Dockerfile",
            self.app,
            self.rev.short()
        ));
        let ignore_file = context::ignore_list(
            &self.repo(),
            self.rev.as_str(),
            IgnoreFile::Docker,
            self.output,
        )?;
        let mut archive = self.git();
        archive.args(["archive", "--format=tar", self.rev.as_str()]);
        let mut docker_build = Command::new(&settings.docker);
        docker_build
            .env("DOCKER_BUILDKIT", "1")
            .args(["build", "--progress=plain", "--tag", tag]);
        if self.options.no_cache {
            docker_build.arg("--no-cache");
        }
        if let Some(network) = &settings.build_network {
            docker_build.args(["--network", network]);
        }
        // Values as arguments, never as docker's own environment (PATH, DOCKER_HOST...).
        let config = ConfigStore::new(self.home).load(&self.app)?;
        for (key, value) in config.build_args()? {
            docker_build
                .arg("--build-arg")
                .arg(format!("{key}={value}"));
        }
        docker_build.arg("-");
        let mut pipeline = vec![archive];
        if let Some(list) = &ignore_file {
            pipeline.push(context::filter_command(list.path())?);
        }
        pipeline.push(docker_build);
        let mut progress = Progress::new(self.options.verbose);
        let built = step.run_lines(
            pipeline,
            settings.build_timeout,
            "building",
            Some(settings.max_context_size.bytes()),
            &mut |line| progress.show(self.output, line),
        );
        built.map_err(|e| match (progress.missing_frontend(), e) {
            (_, StepError::Failed { program, status }) if context::is_filter(&program) => {
                anyhow!("filtering the build context with .dockerignore failed ({status}): see the line above")
            }
            (Some(image), _) => anyhow!("the Dockerfile's `# syntax=` line needs the frontend image {image}, which the builder cannot pull: remove the line (the built-in frontend runs RUN --mount and multi-stage builds), or make the image reachable"),
            (None, e) => Failure {
                what: "docker build",
                fix: "fix the Dockerfile or the code, commit, and push again",
                limit: settings.build_timeout,
            }
            .of_pushed_tree(e),
        })
    }

    fn chart(&self) -> anyhow::Result<Chart> {
        Chart::at(
            self.settings,
            &self.app,
            &self.repo(),
            self.rev.as_str(),
            self.rev.short(),
        )
    }

    /// `helm upgrade --install` of the app's own chart or the default one. A buildpack app's
    /// process types go to the chart as values: the default chart runs each of them. A
    /// Dockerfile app's exposed port is the `port` value, for its own chart too.
    fn deploy(
        &self,
        step: &StepContext,
        record: &mut BuildRecord,
        processes: Option<&Processes>,
        port: Option<u16>,
        chart: &Chart,
        user: ImageUser,
    ) -> anyhow::Result<()> {
        let (app, short) = (&self.app, self.rev.short());
        let types = processes.map_or_else(|| vec!["web"], Processes::names);
        let formation = Formation::load(self.home, app)?;
        // A Dockerfile app's release phase comes from its Procfile, if it has one.
        let release_command = match processes {
            Some(processes) => processes.release().map(str::to_owned),
            None => self.procfile_release()?,
        };
        let store = ConfigStore::new(self.home);
        let mut values = ReleaseValues::of_build(short)
            .again(store.load(app)?.env())
            .scaled(formation.counts(), &types);
        values.port = port;
        values.release_command = release_command;
        if let Some(processes) = processes {
            for (kind, command) in processes.commands() {
                values.processes.entry(kind.to_owned()).or_default().command =
                    Some(command.to_owned());
            }
        }
        let deployer = self.deployer(step);
        let next = deployer.prepare()?;
        let cause = ReleaseCause {
            what: Cause::Build {
                number: record.number,
                sha: short.to_owned(),
            }
            .to_string(),
            by: record.pusher.clone(),
        };
        let description = cause.to_string();
        store.record_cause(app, next, cause)?;
        chart.ready_for(self.output, app, next, short)?;
        let deployed = deployer.run(&Release {
            chart: chart.dir.path(),
            values,
            description: &description,
            trigger: Trigger::Build,
            image_user: Some(user),
        });
        if deployed.is_err() {
            // A rollback put back the replicas of the release it went back to.
            deployer.keep_scale(formation.counts());
        }
        let revision = deployed?;
        record.helm_revision = Some(revision);
        Ok(())
    }

    /// The `release:` command of the pushed tree's Procfile, if any.
    fn procfile_release(&self) -> anyhow::Result<Option<String>> {
        let mut cat_file = self.git();
        cat_file.args(["cat-file", "blob", &format!("{}:Procfile", self.rev)]);
        let read = codebuilder_process::run(cat_file, QUICK)?;
        if !read.success() {
            return Ok(None);
        }
        let entries = parse_procfile(&String::from_utf8_lossy(&read.stdout))?;
        let Some((_, command)) = entries.into_iter().find(|(kind, _)| kind == RELEASE) else {
            return Ok(None);
        };
        if command.is_empty() || command.chars().any(|c| c.is_control() && c != '\t') {
            bail!("the command of process type release is empty or has control characters: fix the Procfile, commit, and push again");
        }
        Ok(Some(command))
    }

    fn deployer<'s>(&'s self, step: &'s StepContext<'s>) -> Deploy<'s> {
        Deploy {
            settings: self.settings,
            app: &self.app,
            output: self.output,
            step,
        }
    }

    /// What `reference` names now, if it exists.
    fn current(&self, reference: &str) -> anyhow::Result<Option<ObjectId>> {
        let mut rev_parse = self.git();
        rev_parse.args(["rev-parse", "--verify", "--quiet", reference]);
        let out = codebuilder_process::run(rev_parse, QUICK)?;
        if !out.success() {
            return Ok(None);
        }
        Ok(Some(ObjectId::parse(&out.stdout_text())?))
    }

    /// The push that held the lock before this one released it when its hook ended, but git
    /// stores that push's refs only afterwards. When the last build succeeded moments ago for
    /// a revision the branch does not name yet, git gets that moment, so that the check that
    /// the branch did not move sees the other push's update instead of building over it.
    fn await_previous_ref_update(
        &self,
        records: &Records,
        reference: &str,
        old: &ObjectId,
    ) -> anyhow::Result<()> {
        let Some(last) = records.list()?.pop() else {
            return Ok(());
        };
        let recent = last
            .finished_at
            .is_some_and(|t| now() <= t + PREVIOUS_PUSH_GRACE.as_secs());
        // A rebuild moves no ref: nothing to wait for.
        let rebuilt = last.pusher.is_rebuild();
        if last.result != BuildResult::Succeeded || !recent || rebuilt || last.rev == *old {
            return Ok(());
        }
        let deadline = Instant::now() + PREVIOUS_PUSH_GRACE;
        while self.current(reference)?.as_ref() == Some(old) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn check_unmoved(&self, reference: &str, old: &ObjectId) -> anyhow::Result<()> {
        let current = self.current(reference)?;
        let expected = (!old.is_zero()).then_some(old);
        if current.as_ref() != expected {
            let branch = reference.trim_start_matches("refs/heads/");
            let deployed = current.as_ref().map_or("", ObjectId::short);
            bail!("{branch} moved while this push waited: another push deployed {deployed}; pull, then push again");
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
}
