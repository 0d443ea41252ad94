//! Words to a typed command: the one parser, for ssh sessions and the admins' command line
//! alike. A word is an argument of the verb's row or it is refused with the verb's usage line;
//! no word reaches another parser.

use base64ct::{Base64, Encoding};
use codebuilder_apps::config::check_value;
use codebuilder_apps::formation::{parse_scale, ProcessType, ScaleError};
use codebuilder_apps::{ConfigError, ConfigKey, Level};
use codebuilder_core::names::printable;
use codebuilder_core::{AppName, Fingerprint, KeyName, NameError};

use crate::command::{Command, ConfigValues, KeyRef, Revision, RevisionError};
use crate::table::{Arg, Verb};

/// The longest command line read: room for a 32 KiB config value as base64 (`--encoded`).
pub const MAX_COMMAND: usize = 64 * 1024;
/// Log lines of each pod that `logs` shows by default, and at most.
pub const DEFAULT_LOG_LINES: u32 = 100;
pub const MAX_LOG_LINES: u32 = 10_000;
/// Shells that `run` refuses without arguments: with no terminal they exit at once.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "fish", "busybox"];

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("codebuilder gives no shell access: push with 'git push' to ssh://git@HOST/APP, and run 'ssh git@HOST help' for the commands")]
    NoCommand,
    #[error("the command is longer than {MAX_COMMAND} bytes: for a long config value, run 'config:set APP KEY < FILE'")]
    TooLong,
    #[error("the command contains control characters or non-ASCII text: for such a config value, run 'config:set APP KEY < FILE' or use --encoded")]
    BadCharacters,
    #[error("unknown command {0}: 'help' lists the commands")]
    Unknown(String),
    #[error("{verb} needs {what}: usage: {usage}")]
    Missing {
        verb: &'static str,
        what: &'static str,
        usage: String,
    },
    #[error("{verb} does not take {word}: usage: {usage}")]
    Unexpected {
        verb: &'static str,
        word: String,
        usage: String,
    },
    #[error("{option} needs a value: usage: {usage}")]
    NoValue { option: String, usage: String },
    #[error("{0} is not a repository path: expected an app name such as 'myapp' or '/myapp.git'")]
    BadPath(String),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Scale(#[from] ScaleError),
    #[error(transparent)]
    Revision(#[from] RevisionError),
    #[error("{0}")]
    Value(String),
}

/// Parses the command line an ssh client sent (`SSH_ORIGINAL_COMMAND`). `own_namespace` is
/// codebuilder's own namespace, never an app.
pub fn parse_request(command: Option<&str>, own_namespace: &str) -> Result<Command, RequestError> {
    let command = command
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or(RequestError::NoCommand)?;
    if command.len() > MAX_COMMAND {
        return Err(RequestError::TooLong);
    }
    if !command.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(RequestError::BadCharacters);
    }
    let mut words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    // git sends `git-receive-pack 'APP'`; older clients `git receive-pack 'APP'`.
    let joined;
    if let ["git", sub @ ("receive-pack" | "upload-pack"), ..] = words.as_slice() {
        joined = format!("git-{sub}");
        words.splice(..2, [joined.as_str()]);
    }
    parse_words(&words, own_namespace)
}

/// Parses a verb and its words: a session's, or an admin's command line.
pub fn parse_words(words: &[&str], own_namespace: &str) -> Result<Command, RequestError> {
    let (first, rest) = words.split_first().ok_or(RequestError::NoCommand)?;
    let verb = Verb::find(first).ok_or_else(|| RequestError::Unknown(printable(first)))?;
    let matched = Matched::new(verb, rest)?;
    matched.command(own_namespace)
}

/// The words of one verb, sorted to its arguments.
struct Matched<'w> {
    verb: &'static Verb,
    /// The positional words, by the name of their argument (`APP` for the app).
    positional: Vec<(&'static str, &'w str)>,
    flags: Vec<&'static str>,
    values: Vec<(&'static str, &'w str)>,
    rest: Vec<String>,
}

impl<'w> Matched<'w> {
    fn new(verb: &'static Verb, words: &[&'w str]) -> Result<Self, RequestError> {
        let mut matched = Self {
            verb,
            positional: Vec::new(),
            flags: Vec::new(),
            values: Vec::new(),
            rest: Vec::new(),
        };
        let slots: Vec<Arg> = verb
            .args
            .iter()
            .copied()
            .filter(|a| !matches!(a, Arg::Flag { .. } | Arg::Value { .. }))
            .collect();
        let mut slot = 0;
        let mut words = words.iter().copied().peekable();
        while let Some(word) = words.next() {
            if slots.get(slot) == Some(&Arg::Rest) {
                // `run APP -- CMD`, or `run APP CMD`: the command is every word after it, as is.
                if word.starts_with('-') && word != "--" {
                    return Err(matched.unexpected(word));
                }
                if word != "--" {
                    matched.rest.push(word.to_owned());
                }
                matched.rest.extend(words.by_ref().map(str::to_owned));
                break;
            }
            if word.starts_with('-') && word.len() > 1 {
                matched.option(word, &mut words)?;
                continue;
            }
            match slots.get(slot) {
                Some(Arg::App) => matched.positional.push(("APP", word)),
                Some(Arg::Repo) => matched.positional.push(("REPO", word)),
                Some(Arg::Word { name, .. } | Arg::Words { name, .. }) => {
                    matched.positional.push((name, word))
                }
                _ => return Err(matched.unexpected(word)),
            }
            if !matches!(slots[slot], Arg::Words { .. }) {
                slot += 1;
            }
        }
        for arg in &slots {
            let what = match *arg {
                Arg::App | Arg::Repo => "the app it acts on",
                Arg::Word {
                    name,
                    optional: false,
                }
                | Arg::Words {
                    name,
                    optional: false,
                } => name,
                Arg::Rest => "a command",
                _ => continue,
            };
            let given = match arg {
                Arg::Rest => !matched.rest.is_empty(),
                Arg::App => matched.word("APP").is_some(),
                Arg::Repo => matched.word("REPO").is_some(),
                _ => matched.word(what).is_some(),
            };
            if !given {
                return Err(RequestError::Missing {
                    verb: verb.name,
                    what,
                    usage: verb.usage(),
                });
            }
        }
        Ok(matched)
    }

    /// `--long`, `--long=VALUE`, `--long VALUE`, `-s`, `-s VALUE`.
    fn option(
        &mut self,
        word: &'w str,
        words: &mut impl Iterator<Item = &'w str>,
    ) -> Result<(), RequestError> {
        let (name, inline) = match word.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            },
            None => (word.strip_prefix('-').unwrap_or(word), None),
        };
        let is_long = word.starts_with("--");
        let arg = self.verb.args.iter().find(|a| match **a {
            Arg::Flag { long, short } | Arg::Value { long, short, .. } => {
                if is_long {
                    long == name
                } else {
                    short.is_some_and(|c| name.len() == 1 && name.starts_with(c))
                }
            }
            _ => false,
        });
        let seen = |long| self.flags.contains(&long) || self.values.iter().any(|(l, _)| *l == long);
        match arg {
            Some(Arg::Flag { long, .. }) if inline.is_none() && !seen(long) => {
                self.flags.push(long);
                Ok(())
            }
            Some(Arg::Value { long, .. }) if !seen(long) => {
                let value = match inline {
                    Some(value) => value,
                    None => words.next().ok_or_else(|| RequestError::NoValue {
                        option: word.to_owned(),
                        usage: self.verb.usage(),
                    })?,
                };
                self.values.push((long, value));
                Ok(())
            }
            _ => Err(self.unexpected(word)),
        }
    }

    fn unexpected(&self, word: &str) -> RequestError {
        RequestError::Unexpected {
            verb: self.verb.name,
            word: printable(word),
            usage: self.verb.usage(),
        }
    }

    fn word(&self, name: &str) -> Option<&'w str> {
        self.positional
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| *w)
    }

    fn words(&self, name: &str) -> Vec<&'w str> {
        self.positional
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, w)| *w)
            .collect()
    }

    fn flag(&self, long: &str) -> bool {
        self.flags.contains(&long)
    }

    fn value(&self, long: &str) -> Option<&'w str> {
        self.values
            .iter()
            .find(|(l, _)| *l == long)
            .map(|(_, v)| *v)
    }

    fn app(&self, own_namespace: &str) -> Result<AppName, RequestError> {
        let word = self.word("APP").or(self.word("REPO")).unwrap_or_default();
        if self.word("REPO").is_some() {
            return parse_repo_path(word, own_namespace);
        }
        Ok(AppName::parse(word, own_namespace)?)
    }

    fn key(&self) -> Result<KeyName, RequestError> {
        Ok(KeyName::parse(self.word("KEYNAME").unwrap_or_default())?)
    }

    fn command(self, ns: &str) -> Result<Command, RequestError> {
        let json = self.flag("json");
        Ok(match self.verb.name {
            "git-receive-pack" => Command::ReceivePack { app: self.app(ns)? },
            "git-upload-pack" => Command::UploadPack { app: self.app(ns)? },
            "help" => Command::Help {
                verb: match self.word("COMMAND") {
                    Some(name) => Some(
                        Verb::find(name)
                            .filter(|v| !v.git)
                            .ok_or_else(|| RequestError::Unknown(printable(name)))?
                            .name
                            .to_owned(),
                    ),
                    None => None,
                },
            },
            "apps" => Command::Apps { json },
            "apps:info" => Command::AppsInfo {
                app: self.app(ns)?,
                json,
            },
            "apps:destroy" => {
                let app = self.app(ns)?;
                let confirmed = self.value("confirm") == Some(app.as_str());
                Command::AppsDestroy { app, confirmed }
            }
            "apps:transfer" => Command::AppsTransfer {
                app: self.app(ns)?,
                key: self.key()?,
            },
            "access" => Command::Access {
                app: self.app(ns)?,
                json,
            },
            "access:add" => Command::AccessAdd {
                app: self.app(ns)?,
                key: self.key()?,
                level: if self.flag("read") {
                    Level::Read
                } else {
                    Level::Push
                },
            },
            "access:remove" => Command::AccessRemove {
                app: self.app(ns)?,
                key: self.key()?,
            },
            "builds" => Command::Builds {
                app: self.app(ns)?,
                json,
            },
            "builds:log" => {
                let app = self.app(ns)?;
                let number = self
                    .word("NUMBER")
                    .map(|text| {
                        number(text, 1, u64::MAX).ok_or_else(|| {
                            RequestError::Value(format!(
                                "{} is not a build number: 'builds {app}' lists them",
                                printable(text)
                            ))
                        })
                    })
                    .transpose()?;
                Command::BuildsLog { app, number }
            }
            "builds:cache:purge" => Command::CachePurge { app: self.app(ns)? },
            "rebuild" => Command::Rebuild {
                app: self.app(ns)?,
                revision: self.word("REVISION").map(Revision::parse).transpose()?,
            },
            "config" => Command::Config {
                app: self.app(ns)?,
                json,
            },
            "config:get" => Command::ConfigGet {
                app: self.app(ns)?,
                key: ConfigKey::parse(self.word("KEY").unwrap_or_default())?,
            },
            "config:set" => Command::ConfigSet {
                app: self.app(ns)?,
                values: self.config_values()?,
                no_deploy: self.flag("no-deploy"),
            },
            "config:unset" => Command::ConfigUnset {
                app: self.app(ns)?,
                keys: self
                    .words("KEY")
                    .into_iter()
                    .map(ConfigKey::parse)
                    .collect::<Result<_, _>>()?,
                no_deploy: self.flag("no-deploy"),
            },
            "releases" => Command::Releases {
                app: self.app(ns)?,
                json,
            },
            "rollback" => Command::Rollback {
                app: self.app(ns)?,
                version: self.word("vN").map(release_version).transpose()?,
            },
            "ps" => Command::Ps {
                app: self.app(ns)?,
                json,
            },
            "ps:scale" => {
                let words: Vec<String> = self
                    .words("TYPE=COUNT")
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                Command::PsScale {
                    app: self.app(ns)?,
                    scale: parse_scale(&words)?,
                }
            }
            "logs" => Command::Logs {
                app: self.app(ns)?,
                lines: match self.value("num") {
                    Some(text) => number(text, 0, MAX_LOG_LINES.into())
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            RequestError::Value(format!(
                                "{} is not a number of lines: give 0 to {MAX_LOG_LINES}",
                                printable(text)
                            ))
                        })?,
                    None => DEFAULT_LOG_LINES,
                },
                follow: self.flag("tail") || self.flag("follow"),
                process: self.value("process").map(ProcessType::parse).transpose()?,
            },
            "run" => {
                let app = self.app(ns)?;
                check_not_a_bare_shell(&app, &self.rest)?;
                Command::Run {
                    app,
                    command: self.rest,
                }
            }
            "quota:show" => Command::QuotaShow {
                app: self.app(ns)?,
                json,
            },
            "keys:add" => Command::KeysAdd { name: self.key()? },
            "keys:list" => Command::KeysList { json },
            "keys:remove" => {
                let text = self.word("KEYNAME|SHA256:FINGERPRINT").unwrap_or_default();
                Command::KeysRemove {
                    key: if text.starts_with("SHA256:") {
                        KeyRef::Fingerprint(Fingerprint::parse(text)?)
                    } else {
                        KeyRef::Name(KeyName::parse(text)?)
                    },
                }
            }
            other => unreachable!("verb {other} of the table has no parser"),
        })
    }

    /// `KEY=VALUE...` (base64 values with `--encoded`), or `KEY` alone: the value on stdin.
    fn config_values(&self) -> Result<ConfigValues, RequestError> {
        let words = self.words("KEY=VALUE");
        let encoded = self.flag("encoded");
        if let [key] = words.as_slice() {
            if !key.contains('=') {
                if encoded {
                    return Err(RequestError::Value(
                        "--encoded is for KEY=VALUE: a value on standard input is taken as is"
                            .to_owned(),
                    ));
                }
                return Ok(ConfigValues::Stdin(ConfigKey::parse(key)?));
            }
        }
        let mut values = Vec::new();
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| {
                RequestError::Value(format!(
                    "{} is not KEY=VALUE: usage: {}",
                    printable(word),
                    self.verb.usage()
                ))
            })?;
            let key = ConfigKey::parse(key)?;
            let value = if encoded {
                decode(&key, value)?
            } else {
                value.to_owned()
            };
            check_value(&key, &value)?;
            values.push((key, value));
        }
        Ok(ConfigValues::Given(values))
    }
}

fn decode(key: &ConfigKey, value: &str) -> Result<String, RequestError> {
    let bytes = Base64::decode_vec(value).map_err(|_| {
        RequestError::Value(format!(
            "the value of {key} is not base64: with --encoded, give each value as `base64 -w0` prints it"
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        RequestError::Value(format!(
            "the value of {key} is not UTF-8 text once decoded: a config var holds text"
        ))
    })
}

/// A whole number in `min..=max`, digits only.
fn number(text: &str, min: u64, max: u64) -> Option<u64> {
    (text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<u64>().ok())
        .flatten()
        .filter(|n| (min..=max).contains(n))
}

/// A release as users name it: `v3` (or `3`).
fn release_version(text: &str) -> Result<u64, RequestError> {
    number(text.strip_prefix('v').unwrap_or(text), 1, 999_999_999_999).ok_or_else(|| {
        RequestError::Value(format!(
            "invalid release \"{}\": name one as vN, as 'releases' lists them",
            printable(text)
        ))
    })
}

/// `run APP bash`: over ssh there is no terminal, so a shell alone would read nothing and
/// exit at once, printing nothing.
fn check_not_a_bare_shell(app: &AppName, command: &[String]) -> Result<(), RequestError> {
    let [program] = command else {
        return Ok(());
    };
    let name = program.rsplit('/').next().unwrap_or(program);
    if SHELLS.contains(&name) {
        return Err(RequestError::Value(format!(
            "run has no terminal, so {} alone would exit at once: give it a command, e.g. 'run {app} -- {} -c \"ls -la\"'",
            printable(program),
            printable(program)
        )));
    }
    Ok(())
}

/// Accepts the path forms git sends: `'APP'`, `'/APP'`, `'APP.git'`, `'/APP.git'`, quoted by
/// git's single-quote rule or bare.
fn parse_repo_path(word: &str, own_namespace: &str) -> Result<AppName, RequestError> {
    let bad = || RequestError::BadPath(format!("{:?}", printable(word)));
    let unquoted = match word.strip_prefix('\'') {
        Some(rest) => rest.strip_suffix('\'').ok_or_else(bad)?,
        None => word,
    };
    if unquoted.starts_with('-') {
        return Err(bad());
    }
    let path = unquoted.strip_prefix('/').unwrap_or(unquoted);
    let name = path.strip_suffix(".git").unwrap_or(path);
    if name.contains(['/', '\'', '\\', '.']) || name.is_empty() {
        return Err(bad());
    }
    Ok(AppName::parse(name, own_namespace)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Request;
    use crate::table::VERBS;
    use proptest::prelude::*;

    fn parse(command: &str) -> Result<Command, RequestError> {
        parse_request(Some(command), "codebuilder")
    }

    fn refusal(command: &str) -> String {
        parse(command).unwrap_err().to_string()
    }

    fn app(name: &str) -> AppName {
        AppName::parse(name, "codebuilder").unwrap()
    }

    #[test]
    fn accepts_what_git_sends() {
        for command in [
            "git-receive-pack '/myapp'",
            "git-receive-pack 'myapp'",
            "git-receive-pack 'myapp.git'",
            "git-receive-pack '/myapp.git'",
            "git receive-pack 'myapp'",
            "git-receive-pack myapp",
        ] {
            assert_eq!(
                parse(command).unwrap(),
                Command::ReceivePack { app: app("myapp") },
                "{command}"
            );
        }
        assert_eq!(
            parse("git-upload-pack '/my-app2.git'").unwrap(),
            Command::UploadPack {
                app: app("my-app2")
            }
        );
        assert_eq!(
            parse("git upload-pack 'x'").unwrap(),
            Command::UploadPack { app: app("x") }
        );
    }

    #[test]
    fn parses_each_verb_into_typed_values() {
        let cases = [
            ("keys:list", Command::KeysList { json: false }),
            ("keys:list --json", Command::KeysList { json: true }),
            (
                "keys:add bob",
                Command::KeysAdd {
                    name: KeyName::parse("bob").unwrap(),
                },
            ),
            (
                "keys:remove SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                Command::KeysRemove {
                    key: KeyRef::Fingerprint(
                        Fingerprint::parse("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                            .unwrap(),
                    ),
                },
            ),
            (
                "builds:cache:purge myapp",
                Command::CachePurge { app: app("myapp") },
            ),
            (
                "access myapp --json",
                Command::Access {
                    app: app("myapp"),
                    json: true,
                },
            ),
            (
                "access:add myapp bob --read",
                Command::AccessAdd {
                    app: app("myapp"),
                    key: KeyName::parse("bob").unwrap(),
                    level: Level::Read,
                },
            ),
            (
                "access:add myapp bob",
                Command::AccessAdd {
                    app: app("myapp"),
                    key: KeyName::parse("bob").unwrap(),
                    level: Level::Push,
                },
            ),
            ("apps --json", Command::Apps { json: true }),
            (
                "apps:destroy myapp --confirm myapp",
                Command::AppsDestroy {
                    app: app("myapp"),
                    confirmed: true,
                },
            ),
            (
                "apps:destroy myapp --confirm=other",
                Command::AppsDestroy {
                    app: app("myapp"),
                    confirmed: false,
                },
            ),
            (
                "builds:log myapp 3",
                Command::BuildsLog {
                    app: app("myapp"),
                    number: Some(3),
                },
            ),
            (
                "rollback myapp v2",
                Command::Rollback {
                    app: app("myapp"),
                    version: Some(2),
                },
            ),
            (
                "logs myapp -t -n 5",
                Command::Logs {
                    app: app("myapp"),
                    lines: 5,
                    follow: true,
                    process: None,
                },
            ),
            (
                "logs myapp --num=0 --process web",
                Command::Logs {
                    app: app("myapp"),
                    lines: 0,
                    follow: false,
                    process: Some(ProcessType::parse("web").unwrap()),
                },
            ),
            (
                "logs myapp -f",
                Command::Logs {
                    app: app("myapp"),
                    lines: DEFAULT_LOG_LINES,
                    follow: true,
                    process: None,
                },
            ),
            (
                "run myapp -- ls -la --home /x",
                Command::Run {
                    app: app("myapp"),
                    command: vec!["ls".into(), "-la".into(), "--home".into(), "/x".into()],
                },
            ),
            (
                "run myapp sh -c id",
                Command::Run {
                    app: app("myapp"),
                    command: vec!["sh".into(), "-c".into(), "id".into()],
                },
            ),
            (
                "config:set myapp --no-deploy A=1 B=x=y",
                Command::ConfigSet {
                    app: app("myapp"),
                    values: ConfigValues::Given(vec![
                        (ConfigKey::parse("A").unwrap(), "1".into()),
                        (ConfigKey::parse("B").unwrap(), "x=y".into()),
                    ]),
                    no_deploy: true,
                },
            ),
            (
                "config:set myapp --encoded A=aGkgdGhlcmU=",
                Command::ConfigSet {
                    app: app("myapp"),
                    values: ConfigValues::Given(vec![(
                        ConfigKey::parse("A").unwrap(),
                        "hi there".into(),
                    )]),
                    no_deploy: false,
                },
            ),
            (
                "config:set myapp TLS_CERT",
                Command::ConfigSet {
                    app: app("myapp"),
                    values: ConfigValues::Stdin(ConfigKey::parse("TLS_CERT").unwrap()),
                    no_deploy: false,
                },
            ),
            ("help", Command::Help { verb: None }),
            (
                "help config:set",
                Command::Help {
                    verb: Some("config:set".into()),
                },
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(parse(command).unwrap(), expected, "{command}");
            // What receive hands on is what the runner reads back.
            let json = serde_json::to_string(&expected).unwrap();
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), expected);
        }
    }

    #[test]
    fn no_word_is_an_option_of_codebuilder_itself() {
        for verb in VERBS.iter().filter(|v| !v.git) {
            let app = if verb.args.contains(&Arg::App) {
                " app"
            } else {
                ""
            };
            for word in [
                "--home /tmp/x",
                "--home=/tmp/x",
                "--help",
                "-h",
                "--version",
                "-V",
                "--bogus",
                "--",
            ] {
                let command = format!("{}{app} {word}", verb.name);
                let Err(e) = parse(&command) else {
                    assert_eq!(verb.name, "run", "{command} was accepted");
                    continue;
                };
                let line = e.to_string();
                assert!(
                    line.ends_with(&format!("usage: {}", verb.usage())),
                    "{command}: {line}"
                );
            }
        }
        assert_eq!(
            refusal("builds:log myapp 1 --home /tmp/x"),
            "builds:log does not take --home: usage: builds:log APP [NUMBER]"
        );
        assert_eq!(
            refusal("builds:log myapp 1 --home=/tmp/x"),
            "builds:log does not take --home=/tmp/x: usage: builds:log APP [NUMBER]"
        );
        assert_eq!(
            refusal("config:set myapp --help"),
            "config:set does not take --help: usage: config:set APP [--encoded] [--no-deploy] KEY=VALUE..."
        );
        assert_eq!(
            refusal("run myapp --home /x"),
            "run does not take --home: usage: run APP -- COMMAND [ARGS...]"
        );
        // After `--`, run's words are the command in the app's pod, and nothing of ours.
        assert!(parse("run myapp -- --home /x").is_ok());
    }

    #[test]
    fn refusals_name_the_verb_and_its_usage() {
        assert_eq!(
            refusal("builds"),
            "builds needs the app it acts on: usage: builds APP [--json]"
        );
        assert_eq!(
            refusal("builds app --yaml"),
            "builds does not take --yaml: usage: builds APP [--json]"
        );
        assert_eq!(
            refusal("apps shop"),
            "apps does not take shop: usage: apps [--json]"
        );
        assert_eq!(
            refusal("apps:destroy shop --confirm"),
            "--confirm needs a value: usage: apps:destroy APP --confirm APP"
        );
        assert_eq!(
            refusal("logs shop --tail many"),
            "logs does not take many: usage: logs APP [-n|--num N] [-t|--tail] [-f|--follow] [-p|--process TYPE]"
        );
        assert_eq!(
            refusal("logs shop -n many"),
            "many is not a number of lines: give 0 to 10000"
        );
        assert_eq!(
            refusal("builds:log shop x1"),
            "x1 is not a build number: 'builds shop' lists them"
        );
        assert_eq!(
            refusal("rollback shop v0"),
            "invalid release \"v0\": name one as vN, as 'releases' lists them"
        );
        assert_eq!(
            refusal("run shop"),
            "run needs a command: usage: run APP -- COMMAND [ARGS...]"
        );
        assert_eq!(
            refusal("run shop -- bash"),
            "run has no terminal, so bash alone would exit at once: give it a command, e.g. 'run shop -- bash -c \"ls -la\"'"
        );
        assert_eq!(
            refusal("run shop /bin/sh"),
            "run has no terminal, so /bin/sh alone would exit at once: give it a command, e.g. 'run shop -- /bin/sh -c \"ls -la\"'"
        );
        assert_eq!(
            refusal("frobnicate x"),
            "unknown command frobnicate: 'help' lists the commands"
        );
        assert_eq!(
            refusal("help frobnicate"),
            "unknown command frobnicate: 'help' lists the commands"
        );
        assert_eq!(
            refusal("config:set shop A=1 B"),
            "B is not KEY=VALUE: usage: config:set APP [--encoded] [--no-deploy] KEY=VALUE..."
        );
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("git-receive-pack '{}'", "a".repeat(54));
        let huge = "a".repeat(MAX_COMMAND + 1);
        let cases: &[&str] = &[
            "id",
            "sh",
            "bash -i",
            "/bin/sh -c id",
            "scp -t /tmp",
            "git-upload-archive 'myapp'",
            "git-shell",
            "rsync --server",
            "internal-sftp",
            "git-receive-pack",
            "git-receive-pack 'a' 'b'",
            "git-receive-pack 'a' extra",
            "git-receive-pack '../etc'",
            "git-receive-pack '/../../etc/passwd'",
            "git-receive-pack '/a/b'",
            "git-receive-pack '~/app'",
            "git-receive-pack 'MyApp'",
            "git-receive-pack '-app'",
            "git-receive-pack '--help'",
            "git-upload-pack --upload-pack=touch",
            "git-receive-pack 'app;id'",
            "git-receive-pack 'app`id`'",
            "git-receive-pack '$(id)'",
            "git-receive-pack 'app' && id",
            "git-receive-pack 'app' | sh",
            "git-receive-pack 'app\"'",
            "git-receive-pack 'a'b'",
            "git-receive-pack 'app",
            "git-receive-pack app'",
            "git-receive-pack 'app\n'",
            "git-receive-pack 'app\0'",
            "git-receive-pack 'app\t'",
            "git-receive-pack 'äpp'",
            "git-receive-pack 'default'",
            "git-receive-pack 'kube-system'",
            "git-receive-pack 'kube-public'",
            "git-receive-pack 'codebuilder'",
            "git-receive-pack 'app.git.git'",
            "git-receive-pack '.git'",
            "git-receive-pack ''",
            "git-receive-pack '/'",
            "git-receive-pack 'app/'",
            "git-receive-pack 'a..b'",
            "git-receive-pack 'a.b'",
            "git-receive-pack 'a\\b'",
            &long,
            &huge,
            "keys:add",
            "keys:add a b",
            "keys:list --all",
            "keys:remove",
            "keys:nuke",
            "builds:cache:purge",
            "builds:cache:purge a b",
            "builds:cache:purge ../a",
            "builds:cache:purge 'a'",
            "builds:cache:purge codebuilder",
            "builds:cache:purge -a",
            "builds:cache:clear a",
            "access",
            "access a --all",
            "access kube-system",
            "access:add a",
            "access:add a b --write",
            "access:add a b --read x",
            "access:add ../a b",
            "access:remove a",
            "access:remove a b c",
            "apps:transfer a",
            "apps:transfer default b",
            "apps:info",
            "apps:info kube-system",
            "apps:destroy",
            "apps:destroy ../a --confirm ../a",
            "builds:log",
            "rebuild",
            "apps:list",
            "git status",
            "git receive-pack",
            "git -c core.sshCommand=x upload-pack 'a'",
            "env GIT_DIR=/ git-receive-pack 'a'",
            "config:set shop",
            "config:set shop --encoded A",
            "config:get shop",
            "ps:scale shop",
            "ps:scale shop web",
            "logs shop --num",
            "logs shop -n 10001",
            "logs shop --tail=1",
            "logs shop -f -f",
            "rebuild shop -x",
            "rebuild shop a b",
            "help help help",
            "help git-receive-pack",
        ];
        for command in cases {
            assert!(parse(command).is_err(), "{command:?} was accepted");
        }
        assert!(matches!(
            parse_request(None, "codebuilder"),
            Err(RequestError::NoCommand)
        ));
        assert!(matches!(parse("   "), Err(RequestError::NoCommand)));
    }

    #[test]
    fn a_request_too_large_for_the_environment_is_refused_whole() {
        let encoded = Base64::encode_string(&[1u8; 16 * 1024]);
        let line = format!("config:set shop --encoded A={encoded} B={encoded}");
        let command = parse(&line).unwrap();
        let request = Request {
            command,
            read_only: false,
        };
        assert_eq!(
            request.to_env().unwrap_err().to_string(),
            "the values of this config:set are too large to pass on in one command: set them in several commands, or one from standard input ('config:set APP KEY < FILE')"
        );
        let one = parse(&format!("config:set shop --encoded A={encoded}")).unwrap();
        let json = Request {
            command: one.clone(),
            read_only: true,
        }
        .to_env()
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Request>(&json).unwrap(),
            Request {
                command: one,
                read_only: true
            }
        );
    }

    #[test]
    fn a_refusal_from_a_value_type_is_said_once() {
        let error = anyhow::Error::from(parse("ps:scale shop web2").unwrap_err());
        assert_eq!(
            format!("{error:#}"),
            "\"web2\" is not TYPE=COUNT: name each process type with its number of pods, as in ps:scale APP web=2 worker=1"
        );
        let error = anyhow::Error::from(parse("config:set shop 1BAD=x").unwrap_err());
        assert_eq!(
            format!("{error:#}"),
            "invalid config var name \"1BAD\": use letters, digits and _, not starting with a digit, at most 128 characters"
        );
    }

    #[test]
    fn errors_are_one_line() {
        for command in [
            "git-receive-pack 'a\nb'",
            "x\ny",
            "git-receive-pack '\u{1b}[31m'",
        ] {
            assert!(!refusal(command).contains('\n'));
        }
    }

    proptest! {
        #[test]
        fn accepted_paths_are_plain_app_names(command in "(git-receive-pack|git-upload-pack|git receive-pack) [ -~]{0,70}") {
            if let Ok(Command::ReceivePack { app } | Command::UploadPack { app }) = parse(&command) {
                prop_assert!(app.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }

        #[test]
        fn never_panics(command in "\\PC{0,200}") {
            let _ = parse(&command);
        }

        #[test]
        fn any_words_never_panic(words in proptest::collection::vec("[ -~]{0,12}", 0..6), verb in 0..VERBS.len()) {
            let mut all = vec![VERBS[verb].name];
            all.extend(words.iter().map(String::as_str));
            let _ = parse_words(&all, "codebuilder");
        }
    }
}
