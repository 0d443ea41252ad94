//! The typed request: what a key asked for, every name and value already validated. This is
//! what runs a command; the words it was parsed from are never looked at again.

use std::fmt;

use codebuilder_apps::formation::ProcessType;
use codebuilder_apps::{ConfigKey, Level};
use codebuilder_core::names::printable;
use codebuilder_core::{AppName, Fingerprint, KeyName};
use serde::{Deserialize, Serialize};

use crate::table::Verb;

/// One command, as the table parsed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// `git push`.
    ReceivePack {
        app: AppName,
    },
    /// `git clone`, `git fetch`.
    UploadPack {
        app: AppName,
    },
    /// `verb`: a verb of the table.
    Help {
        verb: Option<String>,
    },
    Apps {
        json: bool,
    },
    AppsInfo {
        app: AppName,
        json: bool,
    },
    /// `confirmed`: `--confirm` named the app.
    AppsDestroy {
        app: AppName,
        confirmed: bool,
    },
    AppsTransfer {
        app: AppName,
        key: KeyName,
    },
    Access {
        app: AppName,
        json: bool,
    },
    AccessAdd {
        app: AppName,
        key: KeyName,
        level: Level,
    },
    AccessRemove {
        app: AppName,
        key: KeyName,
    },
    Builds {
        app: AppName,
        json: bool,
    },
    BuildsLog {
        app: AppName,
        number: Option<u64>,
    },
    CachePurge {
        app: AppName,
    },
    Rebuild {
        app: AppName,
        revision: Option<Revision>,
    },
    Config {
        app: AppName,
        json: bool,
    },
    ConfigGet {
        app: AppName,
        key: ConfigKey,
    },
    ConfigSet {
        app: AppName,
        values: ConfigValues,
        no_deploy: bool,
    },
    ConfigUnset {
        app: AppName,
        keys: Vec<ConfigKey>,
        no_deploy: bool,
    },
    Releases {
        app: AppName,
        json: bool,
    },
    Rollback {
        app: AppName,
        version: Option<u64>,
    },
    Ps {
        app: AppName,
        json: bool,
    },
    PsScale {
        app: AppName,
        scale: Vec<(ProcessType, u32)>,
    },
    Logs {
        app: AppName,
        lines: u32,
        follow: bool,
        process: Option<ProcessType>,
    },
    Run {
        app: AppName,
        command: Vec<String>,
    },
    QuotaShow {
        app: AppName,
        json: bool,
    },
    KeysAdd {
        name: KeyName,
    },
    KeysList {
        json: bool,
    },
    KeysRemove {
        key: KeyRef,
    },
}

impl Command {
    /// The app the command acts on, if it acts on one.
    pub fn app(&self) -> Option<&AppName> {
        match self {
            Self::ReceivePack { app }
            | Self::UploadPack { app }
            | Self::AppsInfo { app, .. }
            | Self::AppsDestroy { app, .. }
            | Self::AppsTransfer { app, .. }
            | Self::Access { app, .. }
            | Self::AccessAdd { app, .. }
            | Self::AccessRemove { app, .. }
            | Self::Builds { app, .. }
            | Self::BuildsLog { app, .. }
            | Self::CachePurge { app }
            | Self::Rebuild { app, .. }
            | Self::Config { app, .. }
            | Self::ConfigGet { app, .. }
            | Self::ConfigSet { app, .. }
            | Self::ConfigUnset { app, .. }
            | Self::Releases { app, .. }
            | Self::Rollback { app, .. }
            | Self::Ps { app, .. }
            | Self::PsScale { app, .. }
            | Self::Logs { app, .. }
            | Self::Run { app, .. }
            | Self::QuotaShow { app, .. } => Some(app),
            Self::Help { .. }
            | Self::Apps { .. }
            | Self::KeysAdd { .. }
            | Self::KeysList { .. }
            | Self::KeysRemove { .. } => None,
        }
    }

    /// The table's row for the command: its name, the access it needs, its usage.
    pub fn verb(&self) -> &'static Verb {
        let name = match self {
            Self::ReceivePack { .. } => "git-receive-pack",
            Self::UploadPack { .. } => "git-upload-pack",
            Self::Help { .. } => "help",
            Self::Apps { .. } => "apps",
            Self::AppsInfo { .. } => "apps:info",
            Self::AppsDestroy { .. } => "apps:destroy",
            Self::AppsTransfer { .. } => "apps:transfer",
            Self::Access { .. } => "access",
            Self::AccessAdd { .. } => "access:add",
            Self::AccessRemove { .. } => "access:remove",
            Self::Builds { .. } => "builds",
            Self::BuildsLog { .. } => "builds:log",
            Self::CachePurge { .. } => "builds:cache:purge",
            Self::Rebuild { .. } => "rebuild",
            Self::Config { .. } => "config",
            Self::ConfigGet { .. } => "config:get",
            Self::ConfigSet { .. } => "config:set",
            Self::ConfigUnset { .. } => "config:unset",
            Self::Releases { .. } => "releases",
            Self::Rollback { .. } => "rollback",
            Self::Ps { .. } => "ps",
            Self::PsScale { .. } => "ps:scale",
            Self::Logs { .. } => "logs",
            Self::Run { .. } => "run",
            Self::QuotaShow { .. } => "quota:show",
            Self::KeysAdd { .. } => "keys:add",
            Self::KeysList { .. } => "keys:list",
            Self::KeysRemove { .. } => "keys:remove",
        };
        Verb::find(name).expect("every command has its row in the table")
    }

    /// Whether the command reads its standard input (a key, a config value).
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self,
            Self::KeysAdd { .. }
                | Self::ConfigSet {
                    values: ConfigValues::Stdin(_),
                    ..
                }
        )
    }
}

/// The values of `config:set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigValues {
    /// `KEY=VALUE...`, decoded when `--encoded`.
    Given(Vec<(ConfigKey, String)>),
    /// `KEY` alone: the value is standard input, up to the config value limit.
    Stdin(ConfigKey),
}

/// A key as `keys:remove` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRef {
    Name(KeyName),
    Fingerprint(Fingerprint),
}

impl KeyRef {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Name(name) => name.as_str(),
            Self::Fingerprint(fingerprint) => fingerprint.as_str(),
        }
    }
}

/// A git revision as `rebuild` takes it: a commit, branch or tag name; never an option. git
/// itself decides whether it names a commit of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Revision(String);

/// The longest revision worth asking git about.
const MAX_REVISION: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a revision: name a commit, branch or tag that was pushed to the app")]
pub struct RevisionError(String);

impl Revision {
    pub fn parse(text: &str) -> Result<Self, RevisionError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_REVISION
            && !text.starts_with('-')
            && text.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(RevisionError(printable(text)));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Revision {
    type Error = RevisionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Revision> for String {
    fn from(value: Revision) -> Self {
        value.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command as codebuilder-receive hands it to codebuilder-ops once the key's access is
/// decided (in `REQUEST_ENV`, as JSON): the command, and whether the key has `read` access
/// only, and so sees config names but not values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub command: Command,
    pub read_only: bool,
}

/// The environment variable that carries a [`Request`] from receive to ops.
pub const REQUEST_ENV: &str = "CODEBUILDER_REQUEST";

/// The longest request an environment variable carries: Linux takes at most 128 KiB in one
/// (`MAX_ARG_STRLEN`), and values full of control characters grow sixfold as JSON.
const MAX_REQUEST: usize = 120 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("the values of this {0} are too large to pass on in one command: set them in several commands, or one from standard input ('config:set APP KEY < FILE')")]
pub struct RequestTooLarge(&'static str);

impl Request {
    /// The request as `REQUEST_ENV` carries it.
    pub fn to_env(&self) -> Result<String, RequestTooLarge> {
        let json = serde_json::to_string(self).expect("a request serializes");
        if json.len() > MAX_REQUEST {
            return Err(RequestTooLarge(self.command.verb().name));
        }
        Ok(json)
    }
}
