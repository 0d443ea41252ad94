//! What made a release, written as its helm description (`helm history` keeps it). The app's
//! config keeps each cause codebuilder made as data; helm's description is read back only for
//! releases the config has no cause for: helm records no author, so there the actor is part
//! of the text.

use std::fmt;

use codebuilder_core::Actor;

/// What made a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// A push or rebuild: build NUMBER of the short SHA.
    Build { number: u64, sha: String },
    /// `config:set` / `config:unset` of these names.
    Config {
        set: Vec<String>,
        unset: Vec<String>,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Build { number, sha } => write!(f, "build {number} of {sha}"),
            Cause::Config { set, unset } => {
                let mut parts = Vec::new();
                if !set.is_empty() {
                    parts.push(format!("set {}", set.join(", ")));
                }
                if !unset.is_empty() {
                    parts.push(format!("unset {}", unset.join(", ")));
                }
                write!(f, "config {}", parts.join("; "))
            }
        }
    }
}

/// A helm description taken apart: what made the release, and who (when codebuilder wrote
/// it). helm's own descriptions ("Install complete", "Rollback to 3") have no author.
pub fn read_description(description: &str) -> (String, Option<Actor>) {
    if let Some(revision) = description.strip_prefix("Rollback to ") {
        return (format!("rollback to v{revision}"), None);
    }
    match Actor::attributed(description) {
        Some((what, by)) => (what.to_owned(), Some(by)),
        None => (description.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_read_back() {
        let build = Cause::Build {
            number: 3,
            sha: "abc1234".into(),
        };
        assert_eq!(build.to_string(), "build 3 of abc1234");
        let config = Cause::Config {
            set: vec!["A".into(), "B".into()],
            unset: vec!["C".into()],
        };
        assert_eq!(config.to_string(), "config set A, B; unset C");
        assert_eq!(
            read_description("config set A, B; unset C by admin"),
            ("config set A, B; unset C".to_owned(), Some(Actor::Admin))
        );
        assert_eq!(
            read_description("build 3 of abc1234 by rebuild by admin"),
            (
                "build 3 of abc1234".to_owned(),
                Some(Actor::Rebuild { by: None })
            )
        );
        assert_eq!(
            read_description("Rollback to 2"),
            ("rollback to v2".to_owned(), None)
        );
        assert_eq!(
            read_description("Upgrade complete"),
            ("Upgrade complete".to_owned(), None)
        );
    }
}
