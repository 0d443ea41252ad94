//! Parsing of `SSH_ORIGINAL_COMMAND`: a whitelist, not a filter.

use codebuilder_apps::Level;
use codebuilder_core::{AppName, NameError};
use codebuilder_ops::{operation::APPS, Operation};

/// The longest command line worth reading; git's are a few dozen bytes.
const MAX_COMMAND: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `git push`: `git-receive-pack 'APP'`.
    ReceivePack(AppName),
    /// `git clone` / `git fetch`: `git-upload-pack 'APP'`.
    UploadPack(AppName),
    /// Admin: `keys:add NAME` with the key on standard input.
    KeysAdd { name: String },
    /// Admin: `keys:list [--json]`.
    KeysList { json: bool },
    /// Admin: `keys:remove NAME|SHA256:FP`.
    KeysRemove { key: String },
    /// `builds:cache:purge APP`: empty the app's buildpack cache.
    CachePurge(AppName),
    /// Owner or admin: `access APP [--json]`.
    Access { app: AppName, json: bool },
    /// Owner or admin: `access:add APP KEYNAME [--read]`.
    AccessAdd {
        app: AppName,
        key: String,
        level: Level,
    },
    /// Owner or admin: `access:remove APP KEYNAME`.
    AccessRemove { app: AppName, key: String },
    /// Owner or admin: `apps:transfer APP KEYNAME`.
    AppsTransfer { app: AppName, key: String },
    /// `apps [--json]`: the apps the key may reach, listed by codebuilder-ops, which checks
    /// the words after the verb.
    Apps { args: Vec<String> },
    /// An app command codebuilder-ops runs (`builds APP`, ...), with the words after the app,
    /// which codebuilder-ops checks before it does anything.
    Operate {
        op: &'static Operation,
        app: AppName,
        args: Vec<String>,
    },
}

impl Request {
    /// The app the request acts on, if it acts on one.
    pub fn app(&self) -> Option<&AppName> {
        match self {
            Self::ReceivePack(app)
            | Self::UploadPack(app)
            | Self::CachePurge(app)
            | Self::Access { app, .. }
            | Self::AccessAdd { app, .. }
            | Self::AccessRemove { app, .. }
            | Self::AppsTransfer { app, .. }
            | Self::Operate { app, .. } => Some(app),
            Self::KeysAdd { .. }
            | Self::KeysList { .. }
            | Self::KeysRemove { .. }
            | Self::Apps { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("codebuilder gives no shell access: push with 'git push' to ssh://git@HOST/APP")]
    NoCommand,
    #[error("the command is too long")]
    TooLong,
    #[error("the command contains control characters or non-ASCII text")]
    BadCharacters,
    #[error("command {0:?} is not allowed: only git push, git clone/fetch, builds:cache:purge, access, access:add, access:remove, apps:transfer, apps, the app commands (builds, apps:info, ...) and the admin keys:add, keys:list, keys:remove are")]
    NotAllowed(String),
    #[error("{verb} takes {expected}")]
    BadArguments {
        verb: &'static str,
        expected: &'static str,
    },
    #[error("{verb} needs the app it acts on: {usage}")]
    NoApp {
        verb: &'static str,
        usage: &'static str,
    },
    #[error(
        "{0:?} is not a repository path: expected an app name such as 'myapp' or '/myapp.git'"
    )]
    BadPath(String),
    #[error("{0}")]
    BadApp(#[from] NameError),
}

/// Parses the command a client sent. `own_namespace` is codebuilder's own namespace, never an app.
pub fn parse_request(command: Option<&str>, own_namespace: &str) -> Result<Request, RequestError> {
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
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    let shown = || codebuilder_core::names::printable(words[0]);
    let (verb, args) = match words.as_slice() {
        ["git", sub, rest @ ..] if matches!(*sub, "receive-pack" | "upload-pack") => {
            (format!("git-{sub}"), rest)
        }
        [verb, rest @ ..] => ((*verb).to_owned(), rest),
        [] => return Err(RequestError::NoCommand),
    };
    match (verb.as_str(), args) {
        ("git-receive-pack", [path]) => {
            Ok(Request::ReceivePack(parse_repo_path(path, own_namespace)?))
        }
        ("git-upload-pack", [path]) => {
            Ok(Request::UploadPack(parse_repo_path(path, own_namespace)?))
        }
        ("git-receive-pack" | "git-upload-pack", _) => Err(RequestError::BadArguments {
            verb: "git-receive-pack/git-upload-pack",
            expected: "exactly one repository path",
        }),
        ("keys:add", [name]) => Ok(Request::KeysAdd {
            name: (*name).to_owned(),
        }),
        ("keys:add", _) => Err(RequestError::BadArguments {
            verb: "keys:add",
            expected: "one key NAME, and the key on standard input",
        }),
        ("keys:list", []) => Ok(Request::KeysList { json: false }),
        ("keys:list", ["--json"]) => Ok(Request::KeysList { json: true }),
        ("keys:list", _) => Err(RequestError::BadArguments {
            verb: "keys:list",
            expected: "no argument, or --json",
        }),
        ("keys:remove", [key]) => Ok(Request::KeysRemove {
            key: (*key).to_owned(),
        }),
        ("keys:remove", _) => Err(RequestError::BadArguments {
            verb: "keys:remove",
            expected: "one key NAME or SHA256:FINGERPRINT",
        }),
        ("builds:cache:purge", [app]) => {
            Ok(Request::CachePurge(AppName::parse(app, own_namespace)?))
        }
        ("builds:cache:purge", _) => Err(RequestError::BadArguments {
            verb: "builds:cache:purge",
            expected: "one APP",
        }),
        ("access", [app]) => Ok(Request::Access {
            app: AppName::parse(app, own_namespace)?,
            json: false,
        }),
        ("access", [app, "--json"]) => Ok(Request::Access {
            app: AppName::parse(app, own_namespace)?,
            json: true,
        }),
        ("access", _) => Err(RequestError::BadArguments {
            verb: "access",
            expected: "one APP, and optionally --json",
        }),
        ("access:add", [app, key]) => Ok(Request::AccessAdd {
            app: AppName::parse(app, own_namespace)?,
            key: (*key).to_owned(),
            level: Level::Push,
        }),
        ("access:add", [app, key, "--read"]) => Ok(Request::AccessAdd {
            app: AppName::parse(app, own_namespace)?,
            key: (*key).to_owned(),
            level: Level::Read,
        }),
        ("access:add", _) => Err(RequestError::BadArguments {
            verb: "access:add",
            expected: "APP KEYNAME, and --read for clone-only access",
        }),
        ("access:remove", [app, key]) => Ok(Request::AccessRemove {
            app: AppName::parse(app, own_namespace)?,
            key: (*key).to_owned(),
        }),
        ("access:remove", _) => Err(RequestError::BadArguments {
            verb: "access:remove",
            expected: "APP KEYNAME",
        }),
        ("apps:transfer", [app, key]) => Ok(Request::AppsTransfer {
            app: AppName::parse(app, own_namespace)?,
            key: (*key).to_owned(),
        }),
        ("apps:transfer", _) => Err(RequestError::BadArguments {
            verb: "apps:transfer",
            expected: "APP KEYNAME",
        }),
        (APPS, args) => Ok(Request::Apps {
            args: args.iter().map(|w| (*w).to_owned()).collect(),
        }),
        (verb, args) => match (Operation::find(verb), args) {
            (Some(op), [app, rest @ ..]) => Ok(Request::Operate {
                op,
                app: AppName::parse(app, own_namespace)?,
                args: rest.iter().map(|w| (*w).to_owned()).collect(),
            }),
            (Some(op), []) => Err(RequestError::NoApp {
                verb: op.verb,
                usage: op.usage,
            }),
            (None, _) => Err(RequestError::NotAllowed(shown())),
        },
    }
}

/// Accepts the path forms git sends: `'APP'`, `'/APP'`, `'APP.git'`, `'/APP.git'`, quoted by
/// git's single-quote rule or bare.
fn parse_repo_path(word: &str, own_namespace: &str) -> Result<AppName, RequestError> {
    let bad = || RequestError::BadPath(codebuilder_core::names::printable(word));
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
    use proptest::prelude::*;

    fn parse(command: &str) -> Result<Request, RequestError> {
        parse_request(Some(command), "codebuilder")
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
                parse(command),
                Ok(Request::ReceivePack(app("myapp"))),
                "{command}"
            );
        }
        assert_eq!(
            parse("git-upload-pack '/my-app2.git'"),
            Ok(Request::UploadPack(app("my-app2")))
        );
        assert_eq!(
            parse("git upload-pack 'x'"),
            Ok(Request::UploadPack(app("x")))
        );
        assert_eq!(parse("keys:list"), Ok(Request::KeysList { json: false }));
        assert_eq!(
            parse("builds:cache:purge myapp"),
            Ok(Request::CachePurge(app("myapp")))
        );
        assert_eq!(
            parse("keys:list --json"),
            Ok(Request::KeysList { json: true })
        );
        assert_eq!(
            parse("keys:add bob"),
            Ok(Request::KeysAdd { name: "bob".into() })
        );
        assert_eq!(
            parse("access myapp --json"),
            Ok(Request::Access {
                app: app("myapp"),
                json: true
            })
        );
        assert_eq!(
            parse("access:add myapp bob --read"),
            Ok(Request::AccessAdd {
                app: app("myapp"),
                key: "bob".into(),
                level: Level::Read
            })
        );
        assert_eq!(
            parse("access:add myapp bob"),
            Ok(Request::AccessAdd {
                app: app("myapp"),
                key: "bob".into(),
                level: Level::Push
            })
        );
        assert_eq!(
            parse("access:remove myapp bob"),
            Ok(Request::AccessRemove {
                app: app("myapp"),
                key: "bob".into()
            })
        );
        assert_eq!(
            parse("apps:transfer myapp bob"),
            Ok(Request::AppsTransfer {
                app: app("myapp"),
                key: "bob".into()
            })
        );
        assert_eq!(
            parse("apps --json"),
            Ok(Request::Apps {
                args: vec!["--json".into()]
            })
        );
        assert_eq!(
            parse("apps:destroy myapp --confirm myapp"),
            Ok(Request::Operate {
                op: Operation::find("apps:destroy").unwrap(),
                app: app("myapp"),
                args: vec!["--confirm".into(), "myapp".into()]
            })
        );
        assert_eq!(
            parse("keys:remove SHA256:abc"),
            Ok(Request::KeysRemove {
                key: "SHA256:abc".into()
            })
        );
    }

    #[test]
    fn refuses_everything_else() {
        let long = format!("git-receive-pack '{}'", "a".repeat(54));
        let huge = "a".repeat(5000);
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
        ];
        for command in cases {
            assert!(parse(command).is_err(), "{command:?} was accepted");
        }
        assert_eq!(
            parse_request(None, "codebuilder"),
            Err(RequestError::NoCommand)
        );
        assert_eq!(parse("   "), Err(RequestError::NoCommand));
    }

    #[test]
    fn errors_are_one_line() {
        for command in [
            "git-receive-pack 'a\nb'",
            "x\ny",
            "git-receive-pack '\u{1b}[31m'",
        ] {
            assert!(!parse(command).unwrap_err().to_string().contains('\n'));
        }
    }

    proptest! {
        #[test]
        fn accepted_paths_are_plain_app_names(command in "(git-receive-pack|git-upload-pack|git receive-pack) [ -~]{0,70}") {
            if let Ok(Request::ReceivePack(app) | Request::UploadPack(app)) = parse(&command) {
                prop_assert!(app.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
        }

        #[test]
        fn never_panics(command in "\\PC{0,200}") {
            let _ = parse(&command);
        }
    }
}
