//! Which images of an app are kept: the `git-SHORT` tags its builds pushed, in the order they
//! were pushed (`HOME/builds/APP/images.txt`, one tag per line, newest last). They are the
//! rollback store; what falls out of the newest `CODEBUILDER_KEEP_IMAGES` is deleted by the
//! build's retention, and a tag that could not be deleted stays listed, to be tried again.

use std::path::PathBuf;

use anyhow::{bail, Context};
use codebuilder_core::fsutil::write_atomic;
use codebuilder_core::{AppName, Home};

/// The list of an app's kept images.
pub struct ImageList<'a> {
    pub home: &'a Home,
    pub app: &'a AppName,
}

impl ImageList<'_> {
    fn path(&self) -> PathBuf {
        self.home.builds_dir(self.app).join("images.txt")
    }

    /// The kept tags, oldest first.
    pub fn read(&self) -> anyhow::Result<Vec<String>> {
        let path = self.path();
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

    /// The list with `tag` as the newest, split into the newest `keep` and the older ones
    /// beyond them (to delete). Nothing is written: [`ImageList::write`] keeps the outcome.
    pub fn with_newest(
        &self,
        tag: &str,
        keep: usize,
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        if !is_build_tag(tag) {
            bail!("{tag:?} is not a build's tag");
        }
        let mut tags = self.read()?;
        tags.retain(|t| t != tag);
        tags.push(tag.to_owned());
        let excess = tags.len().saturating_sub(keep);
        let old = tags.drain(..excess).collect();
        Ok((tags, old))
    }

    /// Keeps `tags` (oldest first) as the list.
    pub fn write(&self, tags: &[String]) -> anyhow::Result<()> {
        let text: String = tags.iter().map(|t| format!("{t}\n")).collect();
        let path = self.path();
        write_atomic(&path, text.as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", path.display()))
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

    #[test]
    fn the_newest_are_kept_and_the_older_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let app = AppName::parse("shop", "codebuilder").unwrap();
        let list = ImageList {
            home: &home,
            app: &app,
        };
        std::fs::create_dir_all(home.builds_dir(&app)).unwrap();
        list.write(&["git-1111111".into(), "git-2222222".into()])
            .unwrap();
        let (kept, old) = list.with_newest("git-3333333", 2).unwrap();
        assert_eq!(kept, ["git-2222222", "git-3333333"]);
        assert_eq!(old, ["git-1111111"]);
        assert!(list.with_newest("latest", 2).is_err());
    }
}
