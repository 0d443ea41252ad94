//! What a buildpack app runs: its process types (the Procfile, over the defaults that the
//! buildpacks' `bin/release` declares) and the config vars `bin/release` sets. All of it comes
//! out of the builder container, so all of it is untrusted: process types become Kubernetes
//! names, commands and values become image and chart data, and each is checked here first.

use std::collections::BTreeMap;

use codebuilder_apps::formation::ProcessType;
use codebuilder_core::{yaml, AppName};
use serde_json::Value;

use super::config::is_var_name;

/// Longest command line of a process type.
const MAX_COMMAND: usize = 4096;
/// Longest config var value from bin/release.
const MAX_VALUE: usize = 32 * 1024;
/// Kubernetes label values and the names derived from them.
const MAX_NAME: usize = 63;
/// The process type that runs once per deploy, before the rollout (Heroku's release phase).
pub const RELEASE: &str = "release";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "Procfile line {0} is not \"TYPE: COMMAND\": fix the Procfile, commit, and push again"
    )]
    BadLine(usize),
    #[error("Procfile declares {0} twice: keep one line per process type, commit, and push again")]
    Duplicate(String),
    #[error("process type \"{0}\" cannot be a Kubernetes name: use lowercase letters, digits and -, starting with a letter, in the Procfile, commit, and push again")]
    BadType(String),
    #[error("process type {kind} makes the name {app}-{kind} longer than {MAX_NAME} characters: use a shorter process type")]
    TooLong { app: String, kind: String },
    #[error("the command of process type {0} is empty, longer than {MAX_COMMAND} bytes or has control characters: fix it, commit, and push again")]
    BadCommand(String),
    #[error(
        "bin/release of buildpack {buildpack} printed invalid YAML ({reason}): fix the buildpack"
    )]
    BadRelease { buildpack: String, reason: String },
    #[error("bin/release of buildpack {buildpack} sets config var \"{name}\", whose name or value cannot be an environment variable: fix the buildpack")]
    BadConfigVar { buildpack: String, name: String },
    #[error("the app has no web process: add a Procfile with a line such as \"web: COMMAND\" (the command listens on $PORT), commit, and push again")]
    NoWeb,
}

/// What one buildpack's `bin/release` declared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Release {
    pub config_vars: BTreeMap<String, String>,
    pub process_types: BTreeMap<String, String>,
}

/// Reads `bin/release` output: YAML with `config_vars` and `default_process_types` maps (and
/// `addons`, which codebuilder ignores).
pub fn parse_release(buildpack: &str, text: &str) -> Result<Release, ProcessError> {
    let bad = |reason: String| ProcessError::BadRelease {
        buildpack: buildpack.to_owned(),
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Release::default());
    }
    let value = yaml::document(text).map_err(|e| bad(e.to_string()))?;
    if !matches!(value, Value::Object(_) | Value::Null) {
        return Err(bad("not a mapping".into()));
    }
    let map = |key: &str| -> Result<BTreeMap<String, String>, ProcessError> {
        match value.get(key) {
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(Value::Object(entries)) => entries
                .iter()
                .map(|(k, v)| match scalar(v) {
                    Some(v) => Ok((k.clone(), v)),
                    None => Err(bad(format!("{key} holds more than names and plain values"))),
                })
                .collect(),
            Some(_) => Err(bad(format!("{key} is not a mapping"))),
        }
    };
    let release = Release {
        config_vars: map("config_vars")?,
        process_types: map("default_process_types")?,
    };
    for (name, value) in &release.config_vars {
        if !is_var_name(name) || value.len() > MAX_VALUE || has_control(value) {
            return Err(ProcessError::BadConfigVar {
                buildpack: buildpack.to_owned(),
                name: codebuilder_core::names::printable(name),
            });
        }
    }
    Ok(release)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a Procfile: `TYPE: COMMAND` lines; blank lines and `#` comments are skipped.
pub fn parse_procfile(text: &str) -> Result<Vec<(String, String)>, ProcessError> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((kind, command)) = line.split_once(':') else {
            return Err(ProcessError::BadLine(number + 1));
        };
        let kind = kind.trim();
        if kind.is_empty()
            || !kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            return Err(ProcessError::BadLine(number + 1));
        }
        if entries.iter().any(|(k, _)| k == kind) {
            return Err(ProcessError::Duplicate(kind.to_owned()));
        }
        entries.push((kind.to_owned(), command.trim().to_owned()));
    }
    Ok(entries)
}

/// The app's process types, checked: `web` is always there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processes {
    types: BTreeMap<String, String>,
    config_vars: BTreeMap<String, String>,
}

impl Processes {
    /// The buildpacks' defaults in order (a later buildpack overrides an earlier one), then
    /// the Procfile over them, as Heroku does.
    pub fn resolve(
        app: &AppName,
        procfile: Option<&str>,
        releases: Vec<Release>,
    ) -> Result<Self, ProcessError> {
        let mut types = BTreeMap::new();
        let mut config_vars = BTreeMap::new();
        for release in releases {
            types.extend(release.process_types);
            config_vars.extend(release.config_vars);
        }
        if let Some(procfile) = procfile {
            types.extend(parse_procfile(procfile)?);
        }
        for (kind, command) in &types {
            check_type(app, kind)?;
            if command.is_empty() || command.len() > MAX_COMMAND || has_control(command) {
                return Err(ProcessError::BadCommand(kind.clone()));
            }
        }
        if !types.contains_key("web") {
            return Err(ProcessError::NoWeb);
        }
        Ok(Self { types, config_vars })
    }

    /// The command of the web process: the image's start command.
    pub fn web(&self) -> &str {
        self.types.get("web").map_or("", String::as_str)
    }

    /// The process types that run as Deployments: all but `release`.
    pub fn names(&self) -> Vec<&str> {
        self.types
            .keys()
            .map(String::as_str)
            .filter(|kind| *kind != RELEASE)
            .collect()
    }

    /// The command of the release phase (the Procfile's `release:`), run once per deploy.
    pub fn release(&self) -> Option<&str> {
        self.types.get(RELEASE).map(String::as_str)
    }

    /// Config vars that bin/release set: defaults in the image's environment.
    pub fn config_vars(&self) -> &BTreeMap<String, String> {
        &self.config_vars
    }

    /// Every type but `release`, with its command: the release's `processes.TYPE.command`.
    pub fn commands(&self) -> impl Iterator<Item = (&str, &str)> {
        self.types
            .iter()
            .filter(|(kind, _)| *kind != RELEASE)
            .map(|(kind, command)| (kind.as_str(), command.as_str()))
    }
}

/// A process type names a Deployment (`APP-TYPE`), a container and a label value.
fn check_type(app: &AppName, kind: &str) -> Result<(), ProcessError> {
    if !ProcessType::has_shape(kind) {
        return Err(ProcessError::BadType(codebuilder_core::names::printable(
            kind,
        )));
    }
    if app.as_str().len() + 1 + kind.len() > MAX_NAME {
        return Err(ProcessError::TooLong {
            app: app.to_string(),
            kind: kind.to_owned(),
        });
    }
    Ok(())
}

/// Tabs are fine in a command; newlines and other control characters are not.
fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppName {
        AppName::parse("myapp", "codebuilder").unwrap()
    }

    #[test]
    fn procfile_over_release_defaults() {
        let release = parse_release(
            "bp",
            "---\naddons: []\nconfig_vars:\n  LANG: en_US.UTF-8\n  WORKERS: 4\ndefault_process_types:\n  web: bin/server --port $PORT\n  console: bin/console\n",
        )
        .unwrap();
        assert_eq!(release.config_vars["WORKERS"], "4");
        let quoted = parse_release("bp", "config_vars: {ZIP: 01234, PIN: '0042', RATE: 1.50}\n");
        assert_eq!(
            quoted.unwrap().config_vars,
            BTreeMap::from([
                ("PIN".into(), "0042".into()),
                ("RATE".into(), "1.5".into()),
                ("ZIP".into(), "01234".into())
            ])
        );
        let processes = Processes::resolve(
            &app(),
            Some("# processes\nweb: bin/web -p $PORT\r\n\nworker:   bin/worker --queue 'a b'\n"),
            vec![release],
        )
        .unwrap();
        assert_eq!(processes.web(), "bin/web -p $PORT");
        assert_eq!(processes.names(), ["console", "web", "worker"]);
        assert_eq!(processes.release(), None);
        let migrating =
            Processes::resolve(&app(), Some("web: a\nrelease: rake db:migrate"), vec![]).unwrap();
        assert_eq!(migrating.release(), Some("rake db:migrate"));
        assert_eq!(migrating.names(), ["web"]);
        assert_eq!(migrating.commands().collect::<Vec<_>>(), [("web", "a")]);
        assert_eq!(processes.config_vars()["LANG"], "en_US.UTF-8");
        assert!(processes
            .commands()
            .any(|c| c == ("worker", "bin/worker --queue 'a b'")));
        // Without a Procfile, the defaults run.
        let release = parse_release("bp", "default_process_types:\n  web: bin/server\n").unwrap();
        let processes = Processes::resolve(&app(), None, vec![release]).unwrap();
        assert_eq!(processes.web(), "bin/server");
        assert_eq!(parse_release("bp", "").unwrap(), Release::default());
    }

    #[test]
    fn refusals() {
        let resolve = |procfile: &str| Processes::resolve(&app(), Some(procfile), vec![]);
        assert_eq!(resolve("worker: run"), Err(ProcessError::NoWeb));
        assert_eq!(resolve("web run"), Err(ProcessError::BadLine(1)));
        assert_eq!(
            resolve("web: a\nweb: b"),
            Err(ProcessError::Duplicate("web".into()))
        );
        assert_eq!(
            resolve("web: a\nWorker: b"),
            Err(ProcessError::BadType("Worker".into()))
        );
        assert_eq!(
            resolve("web: a\nmy_worker: b"),
            Err(ProcessError::BadType("my_worker".into()))
        );
        assert_eq!(resolve("web:"), Err(ProcessError::BadCommand("web".into())));
        assert_eq!(
            resolve("web: a\u{1b}[2J"),
            Err(ProcessError::BadCommand("web".into()))
        );
        let long = format!("web: a\n{}: b", "w".repeat(60));
        assert!(matches!(resolve(&long), Err(ProcessError::TooLong { .. })));
        for bad in [
            "just text",
            "config_vars: [a]",
            "config_vars:\n  A: [1]",
            "{",
            "config_vars:\n  A-B: x",
            "config_vars:\n  A: \"x\\ny\"",
            "config_vars:\n  ~: x",
            "config_vars:\n  A: 1\n  A: 2",
        ] {
            assert!(parse_release("bp", bad).is_err(), "{bad}");
        }
    }
}
