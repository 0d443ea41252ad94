//! Whether the Docker engine answers. Asked before a build, so that an engine that is down
//! or out of reach is named as the cause, not blamed on the app's Dockerfile or code. And
//! what it says of an image it has.

use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail};
use codebuilder_process::{RunError, QUICK};

/// A running engine answers `docker version` in well under a second.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// Where docker looks for the engine when DOCKER_HOST is not set.
const DEFAULT_ENGINE: &str = "unix:///var/run/docker.sock";

/// The error of a step that needed the engine: the engine's, if it stopped answering
/// meanwhile (a failed build or push is then not the app's or the registry's fault).
pub fn blame(docker: &str, step_error: anyhow::Error) -> anyhow::Error {
    check(docker).err().unwrap_or(step_error)
}

/// One field of `image`, which the engine has (`docker image inspect --format FORMAT`), as
/// text. `what` names the field in the error: `the user`, `the ports`.
pub fn inspect_image(
    docker: &str,
    image: &str,
    format: &str,
    what: &str,
) -> anyhow::Result<String> {
    let mut inspect = Command::new(docker);
    inspect.args(["image", "inspect", "--format", format, image]);
    let out = codebuilder_process::run(inspect, QUICK)?;
    if !out.success() {
        bail!(
            "cannot read {what} of {image}: {}: check the Docker engine",
            out.stderr_text()
        );
    }
    Ok(out.stdout_text())
}

/// Fails with one line naming the engine when `docker` cannot reach it.
pub fn check(docker: &str) -> anyhow::Result<()> {
    let mut version = Command::new(docker);
    version.args(["version", "--format", "{{.Server.Version}}"]);
    let engine = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_ENGINE.to_owned());
    let answer = match codebuilder_process::run(version, ANSWER_WITHIN) {
        Ok(answer) => answer,
        Err(RunError::Spawn { program, source }) => {
            bail!("cannot run {program}: {source}: install the docker CLI or set CODEBUILDER_DOCKER")
        }
        Err(RunError::TimedOut { limit, .. }) => bail!(
            "the Docker engine at {engine} did not answer within {limit}: check that dockerd runs and that DOCKER_HOST names it"
        ),
        Err(other) => return Err(anyhow!(other)),
    };
    if answer.success() {
        return Ok(());
    }
    if answer.stderr_text().contains("permission denied") {
        bail!("the Docker engine at {engine} refuses codebuilder (permission denied): add the ssh user to the docker group, or set DOCKER_HOST to an engine it may use");
    }
    bail!("the Docker engine at {engine} does not answer: is dockerd running? start it, or set DOCKER_HOST to a running engine")
}
