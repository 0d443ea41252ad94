//! Dockerfile builds with the engine's BuildKit: which docker CLI can drive it, and how its
//! plain progress output reads under a `-----> ` step.
//!
//! The docker CLI up to 20.10 (Debian bookworm's docker.io, what the image ships) has
//! BuildKit's client built in and uses it with `DOCKER_BUILDKIT=1`. From 23.0 on, `docker
//! build` with BuildKit goes through the buildx plugin, and fails without it.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_process::{Output, QUICK};

/// The first major version of the docker CLI that needs buildx for BuildKit builds.
const BUILDX_FROM: u32 = 23;

/// Checks that `docker` can build with BuildKit; the error is the one line the pusher reads.
pub fn check_cli(docker: &str) -> anyhow::Result<()> {
    let mut version = Command::new(docker);
    version.arg("--version");
    let output = codebuilder_process::run(version, QUICK).with_context(|| {
        format!("cannot run {docker}: is the docker CLI installed? (CODEBUILDER_DOCKER)")
    })?;
    let text = output.stdout_text();
    let Some(cli) = cli_version(&text) else {
        bail!(
            "cannot tell the version of the docker CLI {docker} from {:?}: set CODEBUILDER_DOCKER to a docker CLI",
            codebuilder_core::names::printable(&text)
        );
    };
    if needs_buildx(cli) {
        let mut buildx = Command::new(docker);
        buildx.args(["buildx", "version"]);
        let found = codebuilder_process::run(buildx, QUICK).is_ok_and(|out| out.success());
        if !found {
            bail!("the docker CLI {docker} ({cli}) builds with BuildKit only through the buildx plugin, which is missing: install it (Debian: docker-buildx; Docker's packages: docker-buildx-plugin), or set CODEBUILDER_DOCKER to a docker CLI with BuildKit built in (20.10, Debian bookworm's docker.io)");
        }
    }
    Ok(())
}

/// `20.10.24+dfsg1` from `Docker version 20.10.24+dfsg1, build 297e128`.
fn cli_version(text: &str) -> Option<&str> {
    let version = text
        .strip_prefix("Docker version ")?
        .split(',')
        .next()?
        .trim();
    major(version).map(|_| version)
}

fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

fn needs_buildx(version: &str) -> bool {
    major(version).is_some_and(|major| major >= BUILDX_FROM)
}

/// What a BuildKit build printed, as the pusher reads it: the Dockerfile's steps with their
/// output, `CACHED` and `DONE` lines, every error; BuildKit's internal steps (loading the
/// context, exporting the image) and the steps' digests are folded unless `verbose`.
pub struct Progress {
    verbose: bool,
    /// The name of each step (`#3 [deps 2/4] RUN ...`) by its number.
    steps: HashMap<u32, String>,
    frontend: Option<String>,
}

impl Progress {
    pub fn new(verbose: bool) -> Self {
        Self {
            verbose,
            steps: HashMap::new(),
            frontend: None,
        }
    }

    /// The frontend image of a `# syntax=` line that BuildKit could not get, if that was it.
    pub fn missing_frontend(&self) -> Option<&str> {
        self.frontend.as_deref()
    }

    /// Shows `line` under the step unless it is folded; says whether it was shown.
    pub fn show(&mut self, output: &Output, line: &str) -> bool {
        let shown = self.keep(line);
        if shown {
            output.detail(line);
        }
        shown
    }

    fn keep(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return false;
        }
        let Some((number, rest)) = step_line(line) else {
            // Not a step's line: the error summary at the end, warnings.
            return true;
        };
        let name = self.steps.entry(number).or_insert_with(|| rest.to_owned());
        let own = is_dockerfile_step(name);
        if rest.starts_with("ERROR") {
            if let Some(image) = name.strip_prefix("resolve image config for ") {
                self.frontend = Some(image.to_owned());
            }
            return true;
        }
        if self.verbose {
            return true;
        }
        if rest.starts_with("sha256:") {
            return false;
        }
        own
    }
}

/// `(3, "[deps 2/4] RUN ...")` from `#3 [deps 2/4] RUN ...`.
fn step_line(line: &str) -> Option<(u32, &str)> {
    let (number, rest) = line.strip_prefix('#')?.split_once(' ')?;
    Some((number.parse().ok()?, rest))
}

/// A step of the Dockerfile (`[2/3] RUN ...`, `[build 1/4] COPY ...`), not one of BuildKit's
/// own (`[internal] load ...`, `copy /context /`, `exporting to image`).
fn is_dockerfile_step(name: &str) -> bool {
    name.starts_with('[') && !name.starts_with("[internal]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebuilder_process::output::Screen;

    #[test]
    fn versions() {
        assert_eq!(
            cli_version("Docker version 20.10.24+dfsg1, build 297e128"),
            Some("20.10.24+dfsg1")
        );
        assert_eq!(
            cli_version("Docker version 28.2.2, build e6534b4"),
            Some("28.2.2")
        );
        assert_eq!(cli_version("podman version 4.3.1"), None);
        assert_eq!(cli_version("Docker version x, build y"), None);
        assert!(!needs_buildx("20.10.24+dfsg1"));
        assert!(needs_buildx("23.0.0"));
        assert!(needs_buildx("28.2.2"));
    }

    const BUILD: &str = "#1 [internal] load remote build context
#1 sha256:0033df9b985ffa67c0d67321a1ba444890eedbad54d990e39ef0f06c7531fa5d
#1 DONE 0.0s

#2 copy /context /
#2 DONE 0.1s

#3 [deps 1/2] COPY busybox /bin/busybox
#3 sha256:b66bf230a289d26e121c4f274ae27bf8823788e4e8c7c14513937e99a534aa2e
#3 CACHED

#4 [deps 2/2] RUN --mount=type=cache,target=/cache make
#4 0.156 hi
#4 DONE 0.7s

#5 exporting to image
#5 exporting layers 0.1s done
#5 naming to 127.0.0.1:5000/app:git-abc1234 done
#5 DONE 0.1s
";

    fn shown(verbose: bool, text: &str) -> (String, Progress) {
        let captured = Screen::default();
        let output = Output::new(Box::new(captured.clone()));
        let mut progress = Progress::new(verbose);
        for line in text.lines() {
            progress.show(&output, line);
        }
        let text = captured.text();
        (text, progress)
    }

    #[test]
    fn folds_internal_steps_unless_verbose() {
        let (text, _) = shown(false, BUILD);
        assert_eq!(
            text,
            "       #3 [deps 1/2] COPY busybox /bin/busybox
       #3 CACHED
       #4 [deps 2/2] RUN --mount=type=cache,target=/cache make
       #4 0.156 hi
       #4 DONE 0.7s
"
        );
        let (text, _) = shown(true, BUILD);
        assert_eq!(
            text.lines().count(),
            BUILD.lines().filter(|l| !l.is_empty()).count()
        );
    }

    #[test]
    fn names_a_missing_frontend() {
        let (text, progress) = shown(
            false,
            "#3 resolve image config for docker.io/docker/dockerfile:1.4
#3 ERROR: failed to do request: no such host
------
 > resolve image config for docker.io/docker/dockerfile:1.4:
------
failed to solve with frontend dockerfile.v0: failed to do request
",
        );
        assert_eq!(
            progress.missing_frontend(),
            Some("docker.io/docker/dockerfile:1.4")
        );
        assert!(
            text.starts_with("       #3 ERROR: failed to do request"),
            "{text}"
        );
        let (_, progress) = shown(false, "#2 [1/2] RUN false\n#2 ERROR: exit code: 1\n");
        assert_eq!(progress.missing_frontend(), None);
    }
}
