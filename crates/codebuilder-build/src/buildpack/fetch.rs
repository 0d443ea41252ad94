//! Getting buildpacks onto the codebuilder host, as files only: a local directory is used as
//! it is; a git URL (or a local repository with a `#REF`) is cloned once into
//! `HOME/buildpacks/KEY` (KEY from the URL and ref), fetched again on later builds unless a
//! commit is pinned, and checked out at the ref. git only reads and writes files here: no
//! hook, no filter, no submodule runs, and nothing of the buildpack is executed on the host.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use codebuilder_core::buildpack::{Buildpack, BuildpackSource};
use codebuilder_core::{Home, ObjectId};
use codebuilder_process::runner::StepContext;
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::failure::{remaining, Failure};

/// A buildpack's files, ready to be copied into the builder container. A cached clone stays
/// locked until then, so that a parallel build of another app cannot check out another ref
/// under it.
pub struct Fetched {
    pub buildpack: Buildpack,
    pub dir: PathBuf,
    _lock: Option<Flock<File>>,
}

pub struct Fetcher<'a> {
    pub home: &'a Home,
    pub step: &'a StepContext<'a>,
    pub deadline: Instant,
    /// The build's time limit, as a timeout message names it.
    pub limit: Duration,
}

impl Fetcher<'_> {
    pub fn fetch_all(&self, buildpacks: &[Buildpack]) -> anyhow::Result<Vec<Fetched>> {
        buildpacks.iter().map(|b| self.fetch(b)).collect()
    }

    fn fetch(&self, buildpack: &Buildpack) -> anyhow::Result<Fetched> {
        match (buildpack.source(), buildpack.reference()) {
            (BuildpackSource::Local(dir), None) => {
                check_buildpack_dir(dir, buildpack)?;
                Ok(Fetched {
                    buildpack: buildpack.clone(),
                    dir: dir.clone(),
                    _lock: None,
                })
            }
            (BuildpackSource::Local(dir), Some(_)) => {
                self.cached_clone(buildpack, &dir.to_string_lossy(), true)
            }
            (BuildpackSource::Git(url), _) => self.cached_clone(buildpack, url, false),
        }
    }

    fn cached_clone(
        &self,
        buildpack: &Buildpack,
        location: &str,
        local: bool,
    ) -> anyhow::Result<Fetched> {
        let root = self.home.root().join("buildpacks");
        self.home
            .ensure_dir(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let key = cache_key(buildpack);
        let lock = self.lock(&root.join(format!("{key}.lock")))?;
        let dir = root.join(&key);
        self.step
            .output
            .step(&format!("Fetching buildpack {buildpack}"));
        let git = Git {
            step: self.step,
            local,
            deadline: self.deadline,
            limit: self.limit,
            buildpack,
        };
        if !dir.join(".git").is_dir() {
            // A directory without .git is a clone that was cut short.
            let partial = root.join(format!("{key}.partial"));
            for leftover in [&dir, &partial] {
                if leftover.exists() {
                    fs::remove_dir_all(leftover)
                        .with_context(|| format!("cannot remove {}", leftover.display()))?;
                }
            }
            let mut clone =
                git.command(None, &["clone", "--quiet", "--no-checkout", "--", location]);
            clone.arg(&partial);
            git.run(clone)?;
            fs::rename(&partial, &dir)
                .with_context(|| format!("cannot move the clone to {}", dir.display()))?;
        } else if !is_pinned_commit_present(&dir, buildpack.reference()) {
            git.run(git.command(
                Some(&dir),
                &["fetch", "--quiet", "--force", "--tags", "--prune", "origin"],
            ))?;
        }
        let commit = resolve(&dir, buildpack)?;
        git.run(git.command(
            Some(&dir),
            &["checkout", "--quiet", "--force", "--detach", &commit],
        ))?;
        give_tree_to_owner(self.home, &dir)
            .with_context(|| format!("cannot hand {} to the home's owner", dir.display()))?;
        check_buildpack_dir(&dir, buildpack)?;
        Ok(Fetched {
            buildpack: buildpack.clone(),
            dir,
            _lock: Some(lock),
        })
    }

    /// Waits for the clone's lock, giving up if the build is cancelled meanwhile.
    fn lock(&self, path: &Path) -> anyhow::Result<Flock<File>> {
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        self.home.give_to_owner(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((returned, nix::errno::Errno::EWOULDBLOCK)) => {
                    if self.step.cancel.load(Ordering::Relaxed) {
                        bail!("cancelled while waiting for another build to fetch a buildpack");
                    }
                    if Instant::now() > self.deadline {
                        bail!("waited too long for another build to fetch a buildpack: raise CODEBUILDER_BUILD_TIMEOUT if it needs longer");
                    }
                    file = returned;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, errno)) => {
                    return Err(errno).with_context(|| format!("cannot lock {}", path.display()))
                }
            }
        }
    }
}

/// git commands for one buildpack: only network transports (and `file` for the operator's
/// own local repositories), never a prompt, time left from the build's limit.
struct Git<'a> {
    step: &'a StepContext<'a>,
    local: bool,
    deadline: Instant,
    limit: Duration,
    buildpack: &'a Buildpack,
}

impl Git<'_> {
    fn command(&self, dir: Option<&Path>, args: &[&str]) -> Command {
        let mut command = outside_git();
        if let Some(dir) = dir {
            command.arg("-C").arg(dir);
        }
        command.args([
            "-c",
            "protocol.allow=never",
            "-c",
            "protocol.https.allow=always",
            "-c",
            "protocol.http.allow=always",
            "-c",
            "protocol.git.allow=always",
            "-c",
            "protocol.ssh.allow=always",
        ]);
        if self.local {
            command.args(["-c", "protocol.file.allow=always"]);
        }
        command.args(args).env("GIT_TERMINAL_PROMPT", "0");
        command
    }

    fn run(&self, command: Command) -> anyhow::Result<()> {
        self.step
            .run(
                vec![command],
                remaining(self.deadline),
                "fetching the buildpack",
            )
            .map_err(|e| {
                Failure {
                    what: &format!("fetching buildpack {}", self.buildpack),
                    fix: "check the buildpack's URL and #REF, and that the codebuilder host reaches it",
                    limit: self.limit,
                }
                .of_step(e)
            })
    }
}

/// A clone made or updated by root (an admin's `rebuild`) must stay writable for the home's
/// owner, who runs the builds of pushes.
fn give_tree_to_owner(home: &Home, path: &Path) -> std::io::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    home.give_to_owner(path)?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            give_tree_to_owner(home, &entry?.path())?;
        }
    }
    Ok(())
}

/// Where a URL and ref are cached: a hash, so that no part of the URL reaches a path.
fn cache_key(buildpack: &Buildpack) -> String {
    let digest = Sha256::digest(buildpack.as_str().as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// A pinned full commit id that the clone already has needs no network. The `#REF` was typed
/// by a person, in either case.
fn is_pinned_commit_present(dir: &Path, reference: Option<&str>) -> bool {
    reference
        .and_then(|r| ObjectId::parse_typed(r).ok())
        .is_some_and(|id| rev_parse(dir, &format!("{id}^{{commit}}")).is_some())
}

/// The commit to check out: a branch of origin, a tag, a commit id; or origin's default branch.
fn resolve(dir: &Path, buildpack: &Buildpack) -> anyhow::Result<String> {
    let candidates = match buildpack.reference() {
        Some(r) => vec![
            format!("refs/remotes/origin/{r}"),
            format!("refs/tags/{r}"),
            r.to_owned(),
        ],
        None => vec!["refs/remotes/origin/HEAD".to_owned()],
    };
    candidates
        .iter()
        .find_map(|c| rev_parse(dir, &format!("{c}^{{commit}}")))
        .with_context(|| match buildpack.reference() {
            Some(r) => {
                format!("buildpack {buildpack} has no branch, tag or commit {r}: fix the #REF")
            }
            None => format!("buildpack {buildpack} has no default branch: pin a #REF"),
        })
}

/// git, without the environment git gives the pre-receive hook (`GIT_DIR`,
/// `GIT_OBJECT_DIRECTORY`, `GIT_QUARANTINE_PATH`, ...): those name the app's repository and
/// its push quarantine, which a buildpack clone must neither read nor write.
fn outside_git() -> Command {
    let mut command = Command::new("git");
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(b"GIT_") {
            command.env_remove(name);
        }
    }
    command
}

fn rev_parse(dir: &Path, name: &str) -> Option<String> {
    let mut rev_parse = outside_git();
    rev_parse.arg("-C").arg(dir).args([
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        name,
    ]);
    let out = codebuilder_process::run(rev_parse, codebuilder_process::QUICK).ok()?;
    out.success().then(|| out.stdout_text())
}

/// A buildpack has at least `bin/detect` and `bin/compile` (the Heroku buildpack API).
fn check_buildpack_dir(dir: &Path, buildpack: &Buildpack) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("buildpack {buildpack} is not a directory on the codebuilder host: fix CODEBUILDER_BUILDPACKS");
    }
    for program in ["bin/detect", "bin/compile"] {
        if !dir.join(program).is_file() {
            bail!("buildpack {buildpack} has no {program}: it is not a Heroku buildpack (bin/detect, bin/compile, bin/release)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebuilder_core::buildpack::Origin;

    #[test]
    fn cache_keys_differ_by_ref_and_are_plain() {
        let a = Buildpack::parse("https://x/bp", Origin::App).unwrap();
        let b = Buildpack::parse("https://x/bp#v1", Origin::App).unwrap();
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_eq!(cache_key(&a).len(), 24);
        assert!(cache_key(&a).bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
