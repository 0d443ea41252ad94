//! The scale the app's users asked for (`ps:scale APP web=2 worker=1`): how many pods of
//! each process type. Kept in `HOME/apps/formation/APP.json` (mode 0600) and applied by every
//! deploy, so that a push or a rollback never puts back the chart's defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use codebuilder_core::fsutil::{remove_durably, write_atomic};
use codebuilder_core::{AppName, Home};

/// Most pods of one process type `ps:scale` sets.
pub const MAX_REPLICAS: u32 = 50;
/// Kubernetes label values and the names derived from them (`APP-TYPE`).
const MAX_NAME: usize = 63;
const FILE_MODE: u32 = 0o600;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("\"{0}\" is not TYPE=COUNT: name each process type with its number of pods, as in ps:scale APP web=2 worker=1")]
    Syntax(String),
    #[error("\"{0}\" is not a process type: use lowercase letters, digits and -, starting with a letter, as in the Procfile")]
    BadType(String),
    #[error(
        "{kind}={count} is more than {MAX_REPLICAS} pods: scale {kind} to at most {MAX_REPLICAS}"
    )]
    TooMany { kind: String, count: String },
    #[error("ps:scale names no process type: say how many pods each type runs, as in ps:scale APP web=2 worker=1")]
    Empty,
    #[error("ps:scale names {0} twice: name each process type once")]
    Twice(String),
}

/// A process type: a Procfile name that can be a Kubernetes name and label value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProcessType(String);

impl ProcessType {
    /// The one rule for a process type's shape, whatever its length: a lowercase letter, then
    /// lowercase letters, digits and `-`, not ending in `-`. The Procfile's reader checks the
    /// length against the app's name itself (`APP-TYPE` names a Deployment).
    pub fn has_shape(text: &str) -> bool {
        text.starts_with(|c: char| c.is_ascii_lowercase())
            && !text.ends_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    pub fn parse(text: &str) -> Result<Self, ScaleError> {
        if Self::has_shape(text) && text.len() < MAX_NAME {
            Ok(Self(text.to_owned()))
        } else {
            Err(ScaleError::BadType(codebuilder_core::names::printable(
                text,
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProcessType {
    type Error = ScaleError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ProcessType> for String {
    fn from(value: ProcessType) -> Self {
        value.0
    }
}

impl fmt::Display for ProcessType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads `web=2 worker=1`: each type once, each count 0..=MAX_REPLICAS.
pub fn parse_scale(args: &[String]) -> Result<Vec<(ProcessType, u32)>, ScaleError> {
    if args.is_empty() {
        return Err(ScaleError::Empty);
    }
    let mut wanted: Vec<(ProcessType, u32)> = Vec::new();
    for arg in args {
        let printable = codebuilder_core::names::printable(arg);
        let Some((kind, count)) = arg.split_once('=') else {
            return Err(ScaleError::Syntax(printable));
        };
        let kind = ProcessType::parse(kind)?;
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ScaleError::Syntax(printable));
        }
        let number = count.parse::<u32>().ok().filter(|n| *n <= MAX_REPLICAS);
        let Some(number) = number else {
            return Err(ScaleError::TooMany {
                kind: kind.to_string(),
                count: count.chars().take(12).collect(),
            });
        };
        if wanted.iter().any(|(k, _)| *k == kind) {
            return Err(ScaleError::Twice(kind.to_string()));
        }
        wanted.push((kind, number));
    }
    Ok(wanted)
}

/// The pods wanted of each process type that was ever scaled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formation(BTreeMap<String, u32>);

fn path(home: &Home, app: &AppName) -> PathBuf {
    home.apps_dir()
        .join("formation")
        .join(format!("{app}.json"))
}

impl Formation {
    /// The stored scale of `app`; empty when it was never scaled.
    pub fn load(home: &Home, app: &AppName) -> io::Result<Self> {
        let path = path(home, app);
        let unreadable = |kind, e: &dyn std::fmt::Display| {
            io::Error::new(
                kind,
                format!("cannot read the scale of {app} ({}): {e}", path.display()),
            )
        };
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Self)
                .map_err(|e| unreadable(io::ErrorKind::InvalidData, &e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(unreadable(e.kind(), &e)),
        }
    }

    /// Stores the formation of `app` (one atomic rename); callers hold the app's lock.
    pub fn save(&self, home: &Home, app: &AppName) -> io::Result<()> {
        let path = path(home, app);
        if let Some(dir) = path.parent() {
            home.ensure_dir(dir)?;
        }
        let text = serde_json::to_vec(&self.0).map_err(io::Error::other)?;
        write_atomic(&path, &text, FILE_MODE)?;
        home.give_to_owner(&path)
    }

    /// Forgets the formation of `app` (the app ends); callers hold the app's lock.
    pub fn remove(home: &Home, app: &AppName) -> io::Result<()> {
        remove_durably(&path(home, app))
    }

    pub fn set(&mut self, kind: &ProcessType, count: u32) {
        self.0.insert(kind.as_str().to_owned(), count);
    }

    /// Pods wanted of `kind`, if it was scaled.
    pub fn get(&self, kind: &str) -> Option<u32> {
        self.0.get(kind).copied()
    }

    /// Pods wanted of each process type that was scaled.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.0.iter().map(|(kind, count)| (kind.as_str(), *count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn scale_is_parsed_and_refused_with_one_line() {
        let parsed = parse_scale(&args(&["web=2", "worker=0"])).unwrap();
        assert_eq!(parsed[0], (ProcessType::parse("web").unwrap(), 2));
        assert_eq!(parsed[1].1, 0);
        let refusal = |words: &[&str]| parse_scale(&args(words)).unwrap_err().to_string();
        assert_eq!(
            refusal(&["web:2"]),
            "\"web:2\" is not TYPE=COUNT: name each process type with its number of pods, as in ps:scale APP web=2 worker=1"
        );
        assert_eq!(refusal(&["web=-1"]), refusal(&["web=-1"]));
        assert!(refusal(&["web=x"]).starts_with("\"web=x\" is not TYPE=COUNT"));
        assert_eq!(
            refusal(&["Web=1"]),
            "\"Web\" is not a process type: use lowercase letters, digits and -, starting with a letter, as in the Procfile"
        );
        assert_eq!(
            refusal(&["web=51"]),
            "web=51 is more than 50 pods: scale web to at most 50"
        );
        assert_eq!(
            refusal(&["web=99999999999999999999"]),
            "web=999999999999 is more than 50 pods: scale web to at most 50"
        );
        assert_eq!(
            refusal(&["web=1", "web=2"]),
            "ps:scale names web twice: name each process type once"
        );
        assert!(refusal(&[]).starts_with("ps:scale names no process type"));
    }

    #[test]
    fn stored_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let app = AppName::parse("myapp", "codebuilder").unwrap();
        assert_eq!(Formation::load(&home, &app).unwrap(), Formation::default());
        let mut formation = Formation::default();
        formation.set(&ProcessType::parse("web").unwrap(), 3);
        formation.save(&home, &app).unwrap();
        assert_eq!(Formation::load(&home, &app).unwrap().get("web"), Some(3));
    }
}
