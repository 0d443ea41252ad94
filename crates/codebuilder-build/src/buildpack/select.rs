//! Which buildpacks a build tries, and how. In order of precedence, as on Heroku and Dokku:
//! the app's `BUILDPACK_URL` config var (one buildpack), the `.buildpacks` file of the pushed
//! tree (several, each compiling in turn, like heroku-buildpack-multi), the operator's
//! `CODEBUILDER_BUILDPACKS` (the first that detects the app compiles it).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::buildpack::{Buildpack, Origin};
use codebuilder_core::names::printable;
use codebuilder_core::Settings;

use super::config::ConfigVars;

/// At most this many buildpacks in one build (the builder's exit status names one by index).
pub const MAX_BUILDPACKS: usize = 16;
/// Largest `.buildpacks` file read.
const MAX_LIST: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Detect each in turn; the first that passes compiles the app.
    First,
    /// Every buildpack whose detect passes compiles the app, in order.
    All,
}

impl Mode {
    /// The word the builder script takes.
    pub fn as_arg(self) -> &'static str {
        match self {
            Mode::First => "first",
            Mode::All => "all",
        }
    }
}

#[derive(Debug)]
pub struct Selection {
    pub buildpacks: Vec<Buildpack>,
    pub mode: Mode,
}

impl Selection {
    /// How messages name buildpack number `index` (the builder reports them by index).
    pub fn name(&self, index: usize) -> String {
        self.buildpacks
            .get(index)
            .map_or_else(|| format!("number {index}"), ToString::to_string)
    }
}

/// Picks the buildpacks for `rev`. An empty list means nothing is configured anywhere.
pub fn select(
    settings: &Settings,
    config: &ConfigVars,
    repo: &Path,
    rev: &str,
) -> anyhow::Result<Selection> {
    if let Some(url) = config.get("BUILDPACK_URL") {
        let url = String::from_utf8_lossy(url);
        let buildpack = Buildpack::parse(url.trim(), Origin::App).map_err(|e| {
            anyhow::anyhow!(
                "the config var BUILDPACK_URL=\"{}\" {e}: set it to the git URL of a buildpack",
                printable(url.trim())
            )
        })?;
        return Ok(Selection {
            buildpacks: vec![buildpack],
            mode: Mode::First,
        });
    }
    if let Some(list) = read_blob(repo, rev, ".buildpacks")? {
        return Ok(Selection {
            buildpacks: parse_list(&list)?,
            mode: Mode::All,
        });
    }
    if settings.buildpacks.len() > MAX_BUILDPACKS {
        bail!("CODEBUILDER_BUILDPACKS names more than {MAX_BUILDPACKS} buildpacks: name fewer");
    }
    Ok(Selection {
        buildpacks: settings.buildpacks.clone(),
        mode: Mode::First,
    })
}

/// A `.buildpacks` file: one URL per line; blank lines and `#` comments are skipped.
pub fn parse_list(text: &str) -> anyhow::Result<Vec<Buildpack>> {
    let mut buildpacks = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let buildpack = Buildpack::parse(line, Origin::App).map_err(|e| {
            anyhow::anyhow!(
                ".buildpacks line {}: \"{}\" {e}: fix .buildpacks, commit, and push again",
                number + 1,
                printable(line)
            )
        })?;
        buildpacks.push(buildpack);
    }
    if buildpacks.is_empty() {
        bail!(
            ".buildpacks names no buildpack: add a buildpack git URL to it, commit, and push again"
        );
    }
    if buildpacks.len() > MAX_BUILDPACKS {
        bail!(".buildpacks names more than {MAX_BUILDPACKS} buildpacks: name fewer, commit, and push again");
    }
    Ok(buildpacks)
}

/// The text of `path` in the pushed tree, if it is a file there.
fn read_blob(repo: &Path, rev: &str, path: &str) -> anyhow::Result<Option<String>> {
    let object = format!("{rev}:{path}");
    let git = |args: &[&str]| {
        let mut git = Command::new("git");
        git.arg("--git-dir").arg(repo).args(args);
        codebuilder_process::run(git, codebuilder_process::QUICK)
    };
    let kind = git(&["cat-file", "-t", &object])?;
    if !kind.success() || kind.stdout_text() != "blob" {
        return Ok(None);
    }
    let size: u64 = git(&["cat-file", "-s", &object])?
        .stdout_text()
        .parse()
        .with_context(|| format!("cannot tell the size of {path}"))?;
    if size > MAX_LIST {
        bail!("{path} is larger than {MAX_LIST} bytes: list one buildpack URL per line");
    }
    let blob = git(&["cat-file", "blob", &object])?;
    if !blob.success() {
        bail!("cannot read {path} from the pushed tree");
    }
    String::from_utf8(blob.stdout)
        .map(Some)
        .with_context(|| format!("{path} is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpacks_file() {
        let list = parse_list(
            "# ours\nhttps://github.com/heroku/heroku-buildpack-nodejs#v200\n\n  git://127.0.0.1/x.git  \n",
        )
        .unwrap();
        let names: Vec<&str> = list.iter().map(Buildpack::as_str).collect();
        assert_eq!(
            names,
            [
                "https://github.com/heroku/heroku-buildpack-nodejs#v200",
                "git://127.0.0.1/x.git"
            ]
        );
        let err = parse_list("https://x/ok\n/var/lib/codebuilder/keys\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with(".buildpacks line 2: \"/var/lib/codebuilder/keys\" is a local path"),
            "{err}"
        );
        assert!(parse_list("\n# nothing\n").is_err());
        assert!(parse_list(&"https://x/bp\n".repeat(MAX_BUILDPACKS + 1)).is_err());
    }
}
