//! What a collaborator may do with an app: the level a stored grant or a declared one gives.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a collaborator may do: `read` clones and fetches; `push` also pushes, force-pushes,
/// deletes refs and purges the build cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Read,
    Push,
}

impl Level {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "push" => Some(Self::Push),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Push => "push",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
