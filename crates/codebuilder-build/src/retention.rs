//! Deleting the images an app no longer keeps (`codebuilder_apps::images` lists the kept
//! ones: the newest `CODEBUILDER_KEEP_IMAGES` builds). Older ones are deleted from the
//! registry (its manifest, by digest, unless a kept tag or `latest` names the same one) and
//! from the engine (`docker image rm` of the tag). A tag that could not be deleted stays in
//! the list and is tried again after the next build.

use std::process::Command;

use anyhow::bail;
use codebuilder_apps::images::ImageList;
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

    /// Records `tag` as the newest image and deletes those that fall out of the newest
    /// `CODEBUILDER_KEEP_IMAGES`. The error says what could not be deleted.
    pub fn keep(&self, tag: &str) -> anyhow::Result<()> {
        let list = ImageList {
            home: self.home,
            app: self.app,
        };
        let (tags, old) = list.with_newest(tag, self.settings.keep_images)?;
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
        list.write(&left)?;
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
