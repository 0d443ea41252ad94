//! Which images of an app are kept: the newest `CODEBUILDER_KEEP_IMAGES` builds, each the
//! `git-SHORT` tag its push made, in the order they were pushed (`HOME/builds/APP/images.txt`,
//! one tag per line, newest last). They are the rollback store. Older ones are deleted from the
//! registry (its manifest, by digest, unless a kept tag or `latest` names the same one) and
//! from the engine (`docker image rm` of the tag). A tag that could not be deleted stays in
//! the list and is tried again after the next build.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::{AppName, Home, Settings};
use codebuilder_process::QUICK;

use crate::registry::RegistryApi;

pub struct Retention<'a> {
    pub settings: &'a Settings,
    pub home: &'a Home,
    pub app: &'a AppName,
}

impl Retention<'_> {
    fn api(&self) -> anyhow::Result<RegistryApi<'_>> {
        RegistryApi::new(
            &self.settings.registry,
            self.settings.registry_auth.as_deref(),
        )
    }

    fn list_path(&self) -> PathBuf {
        self.home.builds_dir(self.app).join("images.txt")
    }

    fn read_list(&self) -> anyhow::Result<Vec<String>> {
        let path = self.list_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|tag| is_build_tag(tag))
                .map(String::from)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Records `tag` as the newest image and deletes those that fall out of the newest
    /// `CODEBUILDER_KEEP_IMAGES`. The error says what could not be deleted.
    pub fn keep(&self, tag: &str) -> anyhow::Result<()> {
        if !is_build_tag(tag) {
            bail!("{tag:?} is not a build's tag");
        }
        let mut tags = self.read_list()?;
        tags.retain(|t| t != tag);
        tags.push(tag.to_owned());
        let excess = tags.len().saturating_sub(self.settings.keep_images);
        let old: Vec<String> = tags.drain(..excess).collect();
        let mut failures = Vec::new();
        let mut left = Vec::new();
        if !old.is_empty() {
            match self.kept_digests(&tags) {
                Ok(kept) => {
                    for tag in old {
                        if let Err(e) = self.delete(&tag, &kept) {
                            failures.push(format!("{tag}: {e:#}"));
                            left.push(tag);
                        }
                    }
                }
                Err(e) => {
                    failures.push(format!("{e:#}"));
                    left = old;
                }
            }
        }
        left.extend(tags);
        let text: String = left.iter().map(|t| format!("{t}\n")).collect();
        let path = self.list_path();
        write_atomic(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !failures.is_empty() {
            bail!(
                "old images of {} were not all deleted ({}): they are tried again after the next build",
                self.app,
                failures.join("; ")
            );
        }
        Ok(())
    }

    /// Deletes every image of the app, whatever its tag: from the registry (each manifest a
    /// tag names) and from the engine (each tag of the app's repository). For `apps:destroy`.
    pub fn remove_all(&self) -> anyhow::Result<()> {
        let api = self.api()?;
        let repository = self.app.as_str();
        for tag in api.tags(repository)? {
            if let Some(digest) = api.digest(repository, &tag)? {
                api.delete(repository, &digest)?;
            }
        }
        let image = format!("{}/{}", self.settings.registry, self.app);
        let mut list = Command::new(&self.settings.docker);
        list.args(["image", "ls", "--format", "{{.Tag}}", &image]);
        let listed = codebuilder_process::run(list, QUICK)?;
        if !listed.success() {
            bail!("docker image ls {image}: {}", listed.stderr_text());
        }
        let tags: Vec<String> = listed
            .stdout_text()
            .lines()
            .filter(|tag| *tag != "<none>" && !tag.is_empty())
            .map(|tag| format!("{image}:{tag}"))
            .collect();
        if !tags.is_empty() {
            let mut remove = Command::new(&self.settings.docker);
            remove.args(["image", "rm"]).args(&tags);
            let out = codebuilder_process::run(remove, QUICK)?;
            if !out.success() {
                bail!("docker image rm {}: {}", tags.join(" "), out.stderr_text());
            }
        }
        Ok(())
    }

    /// The manifests that must stay: those of the kept tags and of `latest`.
    fn kept_digests(&self, kept: &[String]) -> anyhow::Result<Vec<String>> {
        let api = self.api()?;
        let mut digests = Vec::new();
        for tag in kept.iter().map(String::as_str).chain(["latest"]) {
            if let Some(digest) = api.digest(self.app.as_str(), tag)? {
                digests.push(digest);
            }
        }
        Ok(digests)
    }

    fn delete(&self, tag: &str, kept: &[String]) -> anyhow::Result<()> {
        let api = self.api()?;
        if let Some(digest) = api.digest(self.app.as_str(), tag)? {
            if !kept.contains(&digest) {
                api.delete(self.app.as_str(), &digest)?;
            }
        }
        let image = format!("{}/{}:{tag}", self.settings.registry, self.app);
        let mut remove = Command::new(&self.settings.docker);
        remove.args(["image", "rm", &image]);
        let out = codebuilder_process::run(remove, QUICK)?;
        if !out.success() && !out.stderr_text().contains("No such image") {
            bail!("docker image rm {image}: {}", out.stderr_text());
        }
        Ok(())
    }
}

/// `git-` and a short or full commit name: the tags builds make.
fn is_build_tag(tag: &str) -> bool {
    tag.strip_prefix("git-").is_some_and(|hex| {
        (7..=40).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tags() {
        assert!(is_build_tag("git-abc1234"));
        assert!(!is_build_tag("latest"));
        assert!(!is_build_tag("git-abc"));
        assert!(!is_build_tag("git-abc1234/../x"));
    }
}
