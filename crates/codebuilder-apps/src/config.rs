//! An app's config vars: what its processes get as environment variables, and its buildpack
//! compiles as ENV_DIR.
//!
//! ```text
//! HOME/apps/config/APP.json   {"vars": {"KEY": "VALUE", ...}, "causes": {"4": {"what": "config set A", "by": "alice"}}}  (0600)
//! HOME/apps/config/tmp/       where writers stage a file before renaming it in
//! ```
//!
//! Each write replaces the whole file (temporary file, fsync, rename, fsync of the directory):
//! a writer killed at any moment leaves the old vars or the new ones. Writers hold the app's
//! lock (a deploy follows every change); readers never wait.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use codebuilder_core::fsutil::{remove_durably, write_atomic_via};
use codebuilder_core::{Actor, AppName, Home};
use serde::{Deserialize, Serialize};

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;
/// Longest name, as Heroku allows.
pub const MAX_KEY: usize = 128;
/// Largest value: a config var holds a value, not a file.
pub const MAX_VALUE: usize = 32 * 1024;
/// Most vars per app.
pub const MAX_VARS: usize = 256;
/// The config var naming, comma-separated, the config vars a Dockerfile build gets as
/// `--build-arg`s.
pub const BUILD_ARGS: &str = "CODEBUILDER_BUILD_ARGS";

/// A config var's name: what a shell accepts as a variable name, at most `MAX_KEY` bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConfigKey(String);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid config var name \"{0}\": use letters, digits and _, not starting with a digit, at most {MAX_KEY} characters")]
    BadKey(String),
    #[error(
        "config var {0} is longer than {MAX_VALUE} bytes: a config var holds a value, not a file"
    )]
    TooLong(ConfigKey),
    #[error("config var {0} holds a NUL byte, which no environment variable can: leave it out")]
    Nul(ConfigKey),
    #[error("{0} would have more than {MAX_VARS} config vars: unset some first")]
    TooMany(AppName),
    #[error(
        "{BUILD_ARGS} names {0}, which is not a config var name: list names, separated by commas"
    )]
    BadBuildArg(String),
    #[error("{BUILD_ARGS} names {0}, which is not set: set it with config:set, or remove it from {BUILD_ARGS}")]
    MissingBuildArg(ConfigKey),
    #[error("config of {} is damaged ({source}): fix or remove the file", path.display())]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("config of {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl ConfigKey {
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        let valid = name.len() <= MAX_KEY
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(ConfigError::BadKey(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ConfigKey {
    type Error = ConfigError;
    fn try_from(name: String) -> Result<Self, ConfigError> {
        Self::parse(&name)
    }
}

impl From<ConfigKey> for String {
    fn from(key: ConfigKey) -> String {
        key.0
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Config vars by name.
pub type ConfigVars = BTreeMap<ConfigKey, String>;

/// Checks that `value` may be stored under `key`.
pub fn check_value(key: &ConfigKey, value: &str) -> Result<(), ConfigError> {
    if value.len() > MAX_VALUE {
        return Err(ConfigError::TooLong(key.clone()));
    }
    if value.contains('\0') {
        return Err(ConfigError::Nul(key.clone()));
    }
    Ok(())
}

/// What is stored for one app.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppConfig {
    pub vars: ConfigVars,
    /// What made each release codebuilder made, by helm revision: helm replaces a failed
    /// release's description with its error, and writes its own for rollbacks.
    #[serde(default)]
    pub causes: BTreeMap<u64, ReleaseCause>,
}

/// What made a release, and who: kept as data, so that `releases` needs no text taken apart.
/// Its `Display` is the release's helm description, `WHAT by ACTOR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredCause")]
pub struct ReleaseCause {
    /// `build 3 of abc1234`, `config set A`, `rollback to v2`.
    pub what: String,
    pub by: Actor,
}

/// A cause as a config file holds it: as data, or as the description earlier versions kept
/// (`config set A by alice`), read here once, so that their files still load.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredCause {
    Data { what: String, by: Actor },
    Text(String),
}

impl From<StoredCause> for ReleaseCause {
    fn from(stored: StoredCause) -> Self {
        match stored {
            StoredCause::Data { what, by } => Self { what, by },
            StoredCause::Text(text) => match Actor::attributed(&text) {
                Some((what, by)) => Self {
                    what: what.to_owned(),
                    by,
                },
                // Earlier versions always wrote an actor; a hand-edited cause still loads.
                None => Self {
                    what: text,
                    by: Actor::Unknown,
                },
            },
        }
    }
}

impl fmt::Display for ReleaseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.by.attribute(&self.what))
    }
}

impl AppConfig {
    /// The vars as environment variables, by name.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .map(|(key, value)| (key.0.clone(), value.clone()))
            .collect()
    }

    /// The vars `CODEBUILDER_BUILD_ARGS` marks as build-time, with their values.
    pub fn build_args(&self) -> Result<Vec<(&ConfigKey, &str)>, ConfigError> {
        let Some(list) = self
            .vars
            .iter()
            .find(|(k, _)| k.0 == BUILD_ARGS)
            .map(|(_, v)| v)
        else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                let key = ConfigKey::parse(name)
                    .map_err(|_| ConfigError::BadBuildArg(name.to_owned()))?;
                self.vars
                    .get_key_value(&key)
                    .map(|(key, value)| (key, value.as_str()))
                    .ok_or(ConfigError::MissingBuildArg(key))
            })
            .collect()
    }
}

pub struct ConfigStore {
    home: Home,
}

impl ConfigStore {
    pub fn new(home: &Home) -> Self {
        Self { home: home.clone() }
    }

    fn dir(&self) -> PathBuf {
        self.home.apps_dir().join("config")
    }

    fn path(&self, app: &AppName) -> PathBuf {
        self.dir().join(format!("{app}.json"))
    }

    fn io_at(&self, app: &AppName) -> impl FnOnce(io::Error) -> ConfigError {
        let path = self.path(app);
        move |source| ConfigError::Io { path, source }
    }

    /// The app's config; empty for an app that has none.
    pub fn load(&self, app: &AppName) -> Result<AppConfig, ConfigError> {
        let path = self.path(app);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AppConfig::default()),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|source| ConfigError::Damaged { path, source })
    }

    /// Replaces the app's config. The caller holds the app's lock.
    pub fn save(&self, app: &AppName, config: &AppConfig) -> Result<(), ConfigError> {
        if config.vars.len() > MAX_VARS {
            return Err(ConfigError::TooMany(app.clone()));
        }
        for (key, value) in &config.vars {
            check_value(key, value)?;
        }
        let staging = self.dir().join("tmp");
        let path = self.path(app);
        let json = serde_json::to_vec_pretty(config).expect("config serializes");
        self.home
            .ensure_dir(&staging)
            .and_then(|()| fs::set_permissions(self.dir(), fs::Permissions::from_mode(DIR_MODE)))
            .and_then(|()| write_atomic_via(&staging, &path, &json, FILE_MODE))
            .and_then(|()| self.home.give_to_owner(&path))
            .map_err(self.io_at(app))
    }

    /// Records what makes release `revision` (before it is made). The caller holds the app's
    /// lock.
    pub fn record_cause(
        &self,
        app: &AppName,
        revision: u64,
        cause: ReleaseCause,
    ) -> Result<(), ConfigError> {
        let mut config = self.load(app)?;
        config.causes.insert(revision, cause);
        self.save(app, &config)
    }

    /// Forgets the app's config (the app is being destroyed).
    pub fn remove(&self, app: &AppName) -> Result<(), ConfigError> {
        remove_durably(&self.path(app)).map_err(self.io_at(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["PATH", "_X", "a1_B", &"A".repeat(MAX_KEY)] {
            assert!(ConfigKey::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä", &"A".repeat(MAX_KEY + 1)] {
            assert!(ConfigKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_args_are_the_vars_marked() {
        let mut config = AppConfig::default();
        let key = |k: &str| ConfigKey::parse(k).unwrap();
        config.vars.insert(key("A"), "1".into());
        config.vars.insert(key("B"), "x y".into());
        assert!(config.build_args().unwrap().is_empty());
        config.vars.insert(key(BUILD_ARGS), "B, A,".into());
        let args: Vec<(String, &str)> = config
            .build_args()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(args, [("B".to_owned(), "x y"), ("A".to_owned(), "1")]);
        config.vars.insert(key(BUILD_ARGS), "A,C".into());
        assert!(matches!(
            config.build_args(),
            Err(ConfigError::MissingBuildArg(k)) if k.as_str() == "C"
        ));
        config.vars.insert(key(BUILD_ARGS), "A-B".into());
        assert!(matches!(
            config.build_args(),
            Err(ConfigError::BadBuildArg(_))
        ));
    }

    #[test]
    fn causes_are_data_and_earlier_text_still_loads() {
        let alice = Actor::Key(codebuilder_core::KeyName::parse("alice").unwrap());
        let earlier = r#"{"vars": {}, "causes": {
            "1": "build 1 of abc1234 by alice",
            "2": "config set A, B; unset C by admin",
            "3": "build 2 of abc1234 by rebuild by alice",
            "4": "rollback to v1 by unknown",
            "5": "upgraded by hand, with helm"
        }}"#;
        let config: AppConfig = serde_json::from_str(earlier).unwrap();
        let read: Vec<(&str, String)> = config
            .causes
            .values()
            .map(|c| (c.what.as_str(), c.by.to_string()))
            .collect();
        assert_eq!(
            read,
            [
                ("build 1 of abc1234", "alice".to_owned()),
                ("config set A, B; unset C", "admin".to_owned()),
                ("build 2 of abc1234", "rebuild by alice".to_owned()),
                ("rollback to v1", "unknown".to_owned()),
                ("upgraded by hand, with helm", "unknown".to_owned()),
            ]
        );
        assert_eq!(config.causes[&1].by, alice);
        assert_eq!(
            config.causes[&3].to_string(),
            "build 2 of abc1234 by rebuild by alice"
        );
        let written = serde_json::to_value(&config).unwrap();
        assert_eq!(
            written["causes"]["2"],
            serde_json::json!({"what": "config set A, B; unset C", "by": "admin"})
        );
        assert_eq!(
            serde_json::from_value::<AppConfig>(written).unwrap(),
            config
        );
    }

    #[test]
    fn stored_privately_and_read_back() {
        let root = tempfile::tempdir().unwrap();
        let home = Home::new(root.path());
        let store = ConfigStore::new(&home);
        let app = AppName::parse("web", "codebuilder").unwrap();
        assert_eq!(store.load(&app).unwrap(), AppConfig::default());
        let mut config = AppConfig::default();
        config
            .vars
            .insert(ConfigKey::parse("GREETING").unwrap(), "a b=c \"d\"".into());
        store.save(&app, &config).unwrap();
        assert_eq!(store.load(&app).unwrap(), config);
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.path(&app)), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        config
            .vars
            .insert(ConfigKey::parse("BIG").unwrap(), "x".repeat(MAX_VALUE + 1));
        assert!(matches!(
            store.save(&app, &config),
            Err(ConfigError::TooLong(_))
        ));
        store.remove(&app).unwrap();
        assert_eq!(store.load(&app).unwrap(), AppConfig::default());
    }
}
