//! Builds of repos without a Dockerfile, with Heroku buildpacks: the buildpacks run for real
//! inside a container of the stack's build image (`CODEBUILDER_BUILDER_IMAGE`), never on the
//! codebuilder host; the compiled /app then goes onto the stack's run image
//! (`CODEBUILDER_RUN_IMAGE`) with a launcher that starts the Procfile's `web` process on $PORT.
//! The app's cache (CACHE_DIR) persists between builds in a Docker volume of its own, which
//! only the unprivileged build user of the builder container writes.

mod config;
mod container;
mod fetch;
mod image;
pub mod processes;
mod select;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use codebuilder_core::{AppName, Home, ObjectId, Settings};

use crate::context;
use crate::dockerignore::IgnoreFile;
use crate::failure::{remaining, Failure};
use codebuilder_process::runner::{StepContext, StepError};
use codebuilder_process::Output;
use config::ConfigVars;
pub use container::cache_volume;
use container::{Builder, ContainerSpec, Outcome};
use fetch::Fetcher;
use image::ImageSpec;
pub use processes::Processes;
use processes::{parse_procfile, parse_release};
use select::Selection;

/// One buildpack build of `rev`, within the build's time limit.
pub struct BuildpackBuild<'a> {
    pub settings: &'a Settings,
    pub home: &'a Home,
    pub app: &'a AppName,
    /// The app's bare repository.
    pub repo: &'a Path,
    pub rev: &'a ObjectId,
    pub step: &'a StepContext<'a>,
    /// When the build's time is up (`CODEBUILDER_BUILD_TIMEOUT` from its start).
    pub deadline: Instant,
}

impl BuildpackBuild<'_> {
    fn remaining(&self) -> Duration {
        remaining(self.deadline)
    }

    /// Builds the image, tagged `tags`, and returns the app's process types for the deploy.
    pub fn run(&self, tags: &[&str]) -> anyhow::Result<Processes> {
        let config = ConfigVars::load(self.home, self.app)?;
        let selection = select::select(self.settings, &config, self.repo, self.rev.as_str())?;
        if selection.buildpacks.is_empty() {
            bail!(
                "{} has no Dockerfile at the root of the repository and no buildpack is configured: add a Dockerfile, or a .buildpacks file with the git URL of a buildpack, commit, and push again",
                self.rev.short()
            );
        }
        self.step.output.step(&format!(
            "Building {} ({}) with buildpacks",
            self.app,
            self.rev.short()
        ));
        // Dropped on every way out of here: the container and the committed image go.
        let builder = Builder::new(&self.settings.docker, self.home.root(), self.app.as_str());
        self.prepare(&builder, &selection, &config)?;
        self.compile(&builder, &selection)?;
        let processes = self.processes(&builder, &selection)?;
        self.make_image(&builder, &processes, tags)?;
        Ok(processes)
    }

    /// Fetches the buildpacks, creates the builder container and copies into it the builder
    /// script, the buildpacks and the config vars.
    fn prepare(
        &self,
        builder: &Builder,
        selection: &Selection,
        config: &ConfigVars,
    ) -> anyhow::Result<()> {
        let fetched = Fetcher {
            home: self.home,
            step: self.step,
            deadline: self.deadline,
            limit: self.settings.build_timeout,
        }
        .fetch_all(&selection.buildpacks)?;
        self.ensure_image(&self.settings.builder_image, "CODEBUILDER_BUILDER_IMAGE")?;
        builder.create(&ContainerSpec {
            image: &self.settings.builder_image,
            network: self.settings.build_network.as_deref(),
            rev: self.rev.as_str(),
            stack: &self.settings.stack,
            mode: selection.mode.as_arg(),
            names: selection.buildpacks.iter().map(|b| b.to_string()).collect(),
        })?;
        let bundle = tempfile::NamedTempFile::new().context("cannot create a temporary file")?;
        container::write_bundle(bundle.as_file(), &fetched, config)?;
        // The cached clones stay locked until they are in the container.
        builder
            .copy_in(bundle.path(), self.step, self.remaining())
            .map_err(|e| {
                self.explain(
                    e,
                    "copying the buildpacks into the builder container",
                    "check the Docker engine",
                )
            })
    }

    /// Pulls `image` when the engine does not have it, with the pull's output streamed.
    fn ensure_image(&self, image: &str, setting: &str) -> anyhow::Result<()> {
        if image::image_present(&self.settings.docker, image) {
            return Ok(());
        }
        self.step.output.step(&format!("Pulling {image}"));
        let mut pull = Command::new(&self.settings.docker);
        pull.args(["pull", image]);
        self.step
            .run(vec![pull], self.remaining(), "pulling")
            .map_err(|e| {
                self.explain(
                    e,
                    &format!("docker pull {image}"),
                    &format!("load the image into the Docker engine, or set {setting}"),
                )
            })
    }

    /// Runs the builder with the pushed tree on its stdin; the buildpacks' output streams to
    /// the pusher as they print it.
    fn compile(&self, builder: &Builder, selection: &Selection) -> anyhow::Result<()> {
        let ignore_list = context::ignore_list(
            self.repo,
            self.rev.as_str(),
            IgnoreFile::Slug,
            self.step.output,
        )?;
        let mut archive = Command::new("git");
        archive.arg("--git-dir").arg(self.repo).args([
            "archive",
            "--format=tar",
            self.rev.as_str(),
        ]);
        let mut source = vec![archive];
        if let Some(list) = &ignore_list {
            source.push(context::filter_command(list.path())?);
        }
        // Buildpacks print Heroku-style output themselves: keep their headers and indents.
        let step = StepContext {
            output: self.step.output,
            cancel: Arc::clone(&self.step.cancel),
            heartbeat: self.step.heartbeat,
            show: Output::heroku_line,
        };
        builder
            .compile(
                source,
                &step,
                self.remaining(),
                self.settings.max_context_size.bytes(),
            )
            .map_err(|e| match e {
                StepError::Failed { program, status } if context::is_filter(&program) => {
                    anyhow!(
                        "leaving out what .slugignore lists failed ({status}): see the line above"
                    )
                }
                e => self.compile_error(e, selection),
            })
    }

    /// The last line for a builder that stopped: what its exit status says, naming the
    /// buildpack at fault; or why the builder itself did not run.
    fn compile_error(&self, error: StepError, selection: &Selection) -> anyhow::Error {
        let outcome = match &error {
            StepError::Failed { program, status } if program != "git" => {
                status.code().and_then(Outcome::from_code)
            }
            _ => None,
        };
        match outcome {
            Some(Outcome::NoneDetected) => {
                let tried: Vec<String> = (0..selection.buildpacks.len())
                    .map(|index| selection.name(index))
                    .collect();
                anyhow!(
                    "no buildpack detected this app (tried {}): add a Dockerfile, or a .buildpacks file with the git URL of the buildpack to use, commit, and push again",
                    tried.join(", ")
                )
            }
            Some(Outcome::CompileFailed(index)) => anyhow!(
                "bin/compile of buildpack {} failed: fix the app (see the buildpack's output above), commit, and push again",
                selection.name(index)
            ),
            Some(Outcome::ReleaseFailed(index)) => anyhow!(
                "bin/release of buildpack {} failed: fix the buildpack, or pick another one",
                selection.name(index)
            ),
            None => self.explain(
                error,
                "the buildpack build",
                "check the builder image (CODEBUILDER_BUILDER_IMAGE) and the Docker engine",
            ),
        }
    }

    /// A step's failure as the pusher's last line.
    fn explain(&self, error: StepError, what: &str, fix: &str) -> anyhow::Error {
        Failure {
            what,
            fix,
            limit: self.settings.build_timeout,
        }
        .of_pushed_tree(error)
    }

    /// Reads the Procfile and bin/release output back and says what will run.
    fn processes(&self, builder: &Builder, selection: &Selection) -> anyhow::Result<Processes> {
        let results = builder.results()?;
        let output = self.step.output;
        output.step("Discovering process types");
        if let Some(procfile) = &results.procfile {
            let declared: Vec<String> = parse_procfile(procfile)?
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            output.detail(&format!(
                "Procfile declares types -> {}",
                list_or_none(&declared)
            ));
        }
        let mut releases = Vec::new();
        for (index, text) in &results.releases {
            let name = selection.name(*index);
            let release = parse_release(&name, text)?;
            let defaults: Vec<String> = release.process_types.keys().cloned().collect();
            output.detail(&format!(
                "Default types for buildpack {name} -> {}",
                list_or_none(&defaults)
            ));
            releases.push(release);
        }
        Ok(Processes::resolve(
            self.app,
            results.procfile.as_deref(),
            releases,
        )?)
    }

    /// Commits the builder container, then `docker build`s the run image plus its /app,
    /// tagged `tags`.
    fn make_image(
        &self,
        builder: &Builder,
        processes: &Processes,
        tags: &[&str],
    ) -> anyhow::Result<()> {
        let settings = self.settings;
        self.ensure_image(&settings.run_image, "CODEBUILDER_RUN_IMAGE")?;
        self.step
            .output
            .step(&format!("Making the image on {}", settings.run_image));
        builder.commit(self.step, self.remaining()).map_err(|e| {
            self.explain(
                e,
                "docker commit",
                "check the Docker engine and its disk space",
            )
        })?;
        let user = image::run_image_user(&settings.docker, &settings.run_image)?;
        let context = tempfile::Builder::new()
            .prefix("codebuilder-image-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        image::write_context(
            context.path(),
            &ImageSpec {
                run_image: &settings.run_image,
                compiled: &builder.compiled,
                user: user.as_deref(),
                web: processes.web(),
                config_vars: processes.config_vars(),
            },
        )?;
        let mut build = Command::new(&settings.docker);
        build.arg("build");
        for tag in tags {
            build.args(["--tag", tag]);
        }
        build
            .args([
                "--label",
                &format!("org.opencontainers.image.revision={}", self.rev),
            ])
            .arg(context.path());
        self.step
            .run(vec![build], self.remaining(), "building")
            .map_err(|e| {
                self.explain(
                    e,
                    "docker build of the app's image",
                    "check the run image (CODEBUILDER_RUN_IMAGE) and the Docker engine",
                )
            })
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}
