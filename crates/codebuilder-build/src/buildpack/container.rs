//! The builder container: one per build, named after the app and the home, so that a build
//! can remove what a killed predecessor left (builds of one app are serialized by its lock).
//! It is created, filled with the builder script, the buildpacks and the config vars
//! (`docker cp`, which works with a remote engine too), started with the pushed tree on its
//! standard input, read back, committed, and always removed: on success, failure, timeout or
//! cancel alike (`docker run` killed by the runner would leave its container running).
//!
//! The buildpacks run as an unprivileged user ([`BUILD_USER`], Herokuish's uid) with no
//! capabilities and no way to gain privileges: a set-id program they make runs as that user
//! only, and they can make no device. The app's cache is a Docker volume of its own
//! (`codebuilder-cache-APP-HASH`), owned by that user, kept under the engine's root-only data
//! directory: nothing the buildpacks leave in it is on a path of the codebuilder host.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use super::config::ConfigVars;
use super::fetch::Fetched;
use codebuilder_process::runner::{StepContext, StepError};

const SCRIPT: &str = include_str!("builder.sh");
/// The user the buildpacks run as (uid:gid), in the container only: Herokuish's
/// unprivileged build user, which no host account is expected to have.
pub const BUILD_USER: &str = "32767:32767";
/// Where the cache volume is mounted in the builder container (CACHE_DIR).
const CACHE_MOUNT: &str = "/tmp/cache";
/// Largest tar of results (Procfile, bin/release outputs) read back from the container.
const MAX_RESULTS: u64 = 4 * 1024 * 1024;

/// What the builder script's exit status says, when it is not plain failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    NoneDetected,
    CompileFailed(usize),
    ReleaseFailed(usize),
}

impl Outcome {
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            240 => Some(Self::NoneDetected),
            200..=215 => Some(Self::CompileFailed((code - 200) as usize)),
            220..=235 => Some(Self::ReleaseFailed((code - 220) as usize)),
            _ => None,
        }
    }
}

/// Files the builder left for the host.
#[derive(Debug, Default)]
pub struct Results {
    pub procfile: Option<String>,
    /// bin/release output by buildpack index, in order.
    pub releases: Vec<(usize, String)>,
}

pub struct Builder<'a> {
    docker: &'a str,
    name: String,
    /// The app's cache volume, kept between builds.
    cache: String,
    /// Tag of the committed container, the source of the final image's /app.
    pub compiled: String,
}

/// How the container is made.
pub struct ContainerSpec<'a> {
    pub image: &'a str,
    pub network: Option<&'a str>,
    pub rev: &'a str,
    /// The stack's name, $STACK to the buildpacks.
    pub stack: &'a str,
    pub mode: &'a str,
    pub names: Vec<String>,
}

/// The names of what a build of `app` from `home` makes in the engine: unique per home, so
/// that several codebuilders can share one engine, and stable per app, so that a leftover
/// (or the cache) is found by the next build.
struct Names {
    container: String,
    compiled: String,
    cache: String,
}

fn names(home: &Path, app: &str) -> Names {
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    let hash: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Names {
        container: format!("codebuilder-build-{app}-{hash}"),
        compiled: format!("codebuilder-compiled/{app}:{hash}"),
        cache: format!("codebuilder-cache-{app}-{hash}"),
    }
}

/// The engine volume that holds `app`'s buildpack cache.
pub fn cache_volume(home: &Path, app: &str) -> String {
    names(home, app).cache
}

impl<'a> Builder<'a> {
    /// Nothing is created yet; from here on, dropping the builder removes what was.
    pub fn new(docker: &'a str, home: &Path, app: &str) -> Self {
        let names = names(home, app);
        Self {
            docker,
            name: names.container,
            cache: names.cache,
            compiled: names.compiled,
        }
    }

    fn docker(&self) -> Command {
        Command::new(self.docker)
    }

    /// The app's cache volume, made on its first build and handed to [`BUILD_USER`] by a
    /// one-off container that may change owners and nothing else.
    fn ensure_cache(&self, image: &str) -> anyhow::Result<()> {
        let mut inspect = self.docker();
        inspect.args(["volume", "inspect", "--format", "{{.Name}}", &self.cache]);
        if codebuilder_process::run(inspect, codebuilder_process::QUICK)?.success() {
            return Ok(());
        }
        let mut create = self.docker();
        create.args(["volume", "create", &self.cache]);
        let out = codebuilder_process::run(create, codebuilder_process::QUICK)?;
        if !out.success() {
            bail!(
                "cannot create the cache volume {}: {}: check the Docker engine",
                self.cache,
                out.stderr_text()
            );
        }
        let mut chown = self.docker();
        chown
            .args(["run", "--rm", "--network", "none", "--user", "0:0"])
            .args(["--cap-drop", "ALL", "--cap-add", "CHOWN"])
            .args(["--security-opt", "no-new-privileges"])
            .args(["--entrypoint", "chown"])
            .args([
                "--mount",
                &format!("type=volume,source={},target={CACHE_MOUNT}", self.cache),
            ])
            .args([image, BUILD_USER, CACHE_MOUNT]);
        let out = codebuilder_process::run(chown, codebuilder_process::QUICK)?;
        if !out.success() {
            let mut remove = self.docker();
            remove.args(["volume", "rm", &self.cache]);
            let _ = codebuilder_process::run(remove, codebuilder_process::QUICK);
            bail!(
                "cannot prepare the cache volume {} with {image} ({}): check CODEBUILDER_BUILDER_IMAGE",
                self.cache,
                out.stderr_text()
            );
        }
        Ok(())
    }

    /// Creates the container (removing a leftover of the same name first): the buildpacks
    /// run as [`BUILD_USER`], without capabilities or a way to gain privileges, with the
    /// app's cache volume as CACHE_DIR. /app and /codebuilder/out come with the bundle,
    /// owned by that user.
    pub fn create(&self, spec: &ContainerSpec) -> anyhow::Result<()> {
        self.remove();
        self.ensure_cache(spec.image)?;
        let mut create = self.docker();
        create
            .args(["create", "--name", &self.name, "--interactive"])
            .args(["--user", BUILD_USER])
            .args(["--cap-drop", "ALL"])
            .args(["--security-opt", "no-new-privileges"])
            .args(["--entrypoint", "/bin/bash"])
            .args([
                "--mount",
                &format!("type=volume,source={},target={CACHE_MOUNT}", self.cache),
            ])
            .args(["--env", "HOME=/app"])
            // As Heroku sets them for bin/detect, bin/compile and bin/release.
            .args(["--env", &format!("STACK={}", spec.stack)])
            .args(["--env", &format!("SOURCE_VERSION={}", spec.rev)]);
        if let Some(network) = spec.network {
            create.args(["--network", network]);
        }
        create
            .arg(spec.image)
            .args(["/codebuilder/builder.sh", spec.mode])
            .args(&spec.names);
        let out = codebuilder_process::run(create, codebuilder_process::QUICK)?;
        if !out.success() {
            bail!(
                "cannot create the builder container from {} ({}): check CODEBUILDER_BUILDER_IMAGE",
                spec.image,
                out.stderr_text()
            );
        }
        Ok(())
    }

    /// Copies the bundle (a tar of /codebuilder) into the container.
    pub fn copy_in(
        &self,
        bundle: &Path,
        step: &StepContext,
        timeout: Duration,
    ) -> Result<(), StepError> {
        // The runner gives a pipeline's first command no stdin: `cat` feeds `docker cp -`.
        let mut cat = Command::new("cat");
        cat.arg(bundle);
        let mut copy = self.docker();
        copy.args(["cp", "-", &format!("{}:/", self.name)]);
        step.run(vec![cat, copy], timeout, "copying the buildpacks")
    }

    /// Starts the builder with `source` (commands piped into one another, printing the tree as
    /// tar) on its stdin, stopped past `limit` bytes of it.
    pub fn compile(
        &self,
        mut source: Vec<Command>,
        step: &StepContext,
        timeout: Duration,
        limit: u64,
    ) -> Result<(), StepError> {
        let mut start = self.docker();
        start.args(["start", "--attach", "--interactive", &self.name]);
        source.push(start);
        step.run_limited(source, timeout, "compiling", limit)
    }

    /// Reads what the builder left in /codebuilder/out, within a size limit: the container's
    /// files are written by the buildpacks, so they are untrusted.
    pub fn results(&self) -> anyhow::Result<Results> {
        let too_large = || {
            anyhow::anyhow!("the buildpacks left more than {MAX_RESULTS} bytes of Procfile and bin/release output: fix the buildpack")
        };
        let mut copy = self.docker();
        copy.args(["cp", &format!("{}:/codebuilder/out", self.name), "-"]);
        let out = match codebuilder_process::run(copy, codebuilder_process::QUICK) {
            Err(codebuilder_process::RunError::TooMuchOutput { .. }) => return Err(too_large()),
            other => other?,
        };
        if out.stdout.len() as u64 > MAX_RESULTS {
            return Err(too_large());
        }
        if !out.success() {
            bail!(
                "cannot read the results of the build: {}",
                out.stderr_text()
            );
        }
        parse_results(&out.stdout)
    }

    /// Commits the container: its /app becomes the source of the final image.
    pub fn commit(&self, step: &StepContext, timeout: Duration) -> Result<(), StepError> {
        let mut commit = self.docker();
        commit.args(["commit", &self.name, &self.compiled]);
        step.run(vec![commit], timeout, "saving the compiled app")
    }

    fn remove(&self) {
        let mut remove = self.docker();
        remove.args(["rm", "--force", &self.name]);
        let _ = codebuilder_process::run(remove, codebuilder_process::QUICK);
    }
}

impl Drop for Builder<'_> {
    /// Nothing of the build outlives it: a cancelled or timed-out build's container is still
    /// running here (killing `docker start` does not stop it), and is killed and removed.
    fn drop(&mut self) {
        self.remove();
        let mut remove_image = self.docker();
        remove_image.args(["image", "rm", &self.compiled]);
        let _ = codebuilder_process::run(remove_image, codebuilder_process::QUICK);
    }
}

/// `out/Procfile` and `out/release-I.yml` from the tar `docker cp` prints.
fn parse_results(archive: &[u8]) -> anyhow::Result<Results> {
    let mut results = Results::default();
    let mut entries = tar::Archive::new(archive);
    for entry in entries
        .entries()
        .context("cannot read the results of the build")?
    {
        let mut entry = entry.context("cannot read the results of the build")?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(name) = path.strip_prefix("out/") else {
            continue;
        };
        let mut text = String::new();
        if entry.read_to_string(&mut text).is_err() {
            bail!("{name} from the build is not UTF-8 text: fix it");
        }
        if name == "Procfile" {
            results.procfile = Some(text);
        } else if let Some(index) = name
            .strip_prefix("release-")
            .and_then(|rest| rest.strip_suffix(".yml"))
            .and_then(|index| index.parse().ok())
        {
            results.releases.push((index, text));
        }
    }
    results.releases.sort_by_key(|(index, _)| *index);
    Ok(results)
}

/// Writes the tar that `copy_in` sends: /codebuilder/builder.sh, /codebuilder/buildpacks/I
/// (without their .git) and /codebuilder/env/NAME, all root's and read-only to the build;
/// /app and /codebuilder/out, the build user's (`docker cp` keeps the owners of the tar).
pub fn write_bundle(file: &File, buildpacks: &[Fetched], env: &ConfigVars) -> anyhow::Result<()> {
    let dirs: Vec<(&Path, String)> = buildpacks
        .iter()
        .map(|f| (f.dir.as_path(), f.buildpack.to_string()))
        .collect();
    write_bundle_of(file, &dirs, env)
}

fn write_bundle_of(
    file: &File,
    buildpacks: &[(&Path, String)],
    env: &ConfigVars,
) -> anyhow::Result<()> {
    let mut tar = tar::Builder::new(file);
    tar.follow_symlinks(false);
    // Owned by root, whoever owns the buildpack's files here.
    tar.mode(tar::HeaderMode::Deterministic);
    let (uid, gid) = BUILD_USER.split_once(':').expect("BUILD_USER is uid:gid");
    for dir in ["app", "codebuilder/out"] {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        header.set_uid(uid.parse()?);
        header.set_gid(gid.parse()?);
        tar.append_data(&mut header, dir, std::io::empty())?;
    }
    append_file(&mut tar, "codebuilder/builder.sh", SCRIPT.as_bytes(), 0o755)?;
    for (index, (dir, name)) in buildpacks.iter().enumerate() {
        append_tree(
            &mut tar,
            dir,
            &format!("codebuilder/buildpacks/{index}"),
            true,
        )
        .with_context(|| format!("cannot read buildpack {name}"))?;
    }
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    tar.append_data(&mut dir, "codebuilder/env", std::io::empty())?;
    for (name, value) in env.iter() {
        append_file(&mut tar, &format!("codebuilder/env/{name}"), value, 0o644)?;
    }
    tar.finish()?;
    Ok(())
}

fn append_file(
    tar: &mut tar::Builder<&File>,
    name: &str,
    data: &[u8],
    mode: u32,
) -> anyhow::Result<()> {
    let mut header = header(tar::EntryType::Regular, mode, data.len() as u64);
    tar.append_data(&mut header, name, data)?;
    Ok(())
}

/// A header of an entry owned by root.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Appends `dir` as `name`, symlinks as symlinks, in a stable order.
fn append_tree(
    tar: &mut tar::Builder<&File>,
    dir: &Path,
    name: &str,
    top: bool,
) -> anyhow::Result<()> {
    tar.append_dir(name, dir)?;
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_name = entry.file_name();
        if top && file_name == ".git" {
            continue;
        }
        let child = format!("{name}/{}", file_name.to_string_lossy());
        if entry.file_type()?.is_dir() {
            append_tree(tar, &entry.path(), &child, false)?;
        } else {
            tar.append_path_with_name(entry.path(), &child)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses() {
        assert_eq!(Outcome::from_code(240), Some(Outcome::NoneDetected));
        assert_eq!(Outcome::from_code(201), Some(Outcome::CompileFailed(1)));
        assert_eq!(Outcome::from_code(220), Some(Outcome::ReleaseFailed(0)));
        assert_eq!(Outcome::from_code(1), None);
        assert_eq!(Outcome::from_code(137), None);
    }

    #[test]
    fn names_are_per_home_and_app() {
        let Names {
            container,
            compiled,
            cache,
        } = names(Path::new("/var/lib/codebuilder"), "web");
        assert!(cache.starts_with("codebuilder-cache-web-"), "{cache}");
        assert!(
            container.starts_with("codebuilder-build-web-"),
            "{container}"
        );
        assert!(
            compiled.starts_with("codebuilder-compiled/web:"),
            "{compiled}"
        );
        assert_ne!(
            names(Path::new("/srv/codebuilder"), "web").container,
            container
        );
    }

    #[test]
    fn bundle_and_results_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let buildpack = dir.path().join("bp");
        std::fs::create_dir_all(buildpack.join("bin")).unwrap();
        std::fs::create_dir_all(buildpack.join(".git")).unwrap();
        std::fs::write(buildpack.join("bin/compile"), "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("compile", buildpack.join("bin/detect")).unwrap();
        let bundle = tempfile::tempfile().unwrap();
        write_bundle_of(
            &bundle,
            &[(buildpack.as_path(), "bp".into())],
            &ConfigVars::default(),
        )
        .unwrap();
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(&bundle);
        use std::io::Seek;
        (&bundle).rewind().unwrap();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let owner = entry.header().uid().unwrap();
            names.push(format!(
                "{} {owner}",
                entry.path().unwrap().to_string_lossy()
            ));
        }
        assert_eq!(
            names,
            [
                "app 32767",
                "codebuilder/out 32767",
                "codebuilder/builder.sh 0",
                "codebuilder/buildpacks/0 0",
                "codebuilder/buildpacks/0/bin 0",
                "codebuilder/buildpacks/0/bin/compile 0",
                "codebuilder/buildpacks/0/bin/detect 0",
                "codebuilder/env 0",
            ]
        );

        let mut out = tar::Builder::new(Vec::new());
        for (name, text) in [
            ("out/release-1.yml", "b"),
            ("out/Procfile", "web: x"),
            ("out/release-0.yml", "a"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            out.append_data(&mut header, name, text.as_bytes()).unwrap();
        }
        let results = parse_results(&out.into_inner().unwrap()).unwrap();
        assert_eq!(results.procfile.as_deref(), Some("web: x"));
        assert_eq!(results.releases, [(0, "a".to_owned()), (1, "b".to_owned())]);
    }
}
