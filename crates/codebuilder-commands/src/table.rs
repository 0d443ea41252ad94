//! The table: every verb, the access it needs, its arguments, its usage and one line of help.
//! Parsing (`crate::words`), `help` and the admins' command line are all made from it.

/// What a key needs to run a verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Need {
    /// Any key: `help`, `apps` (which lists what the key may reach).
    Anyone,
    /// `read` access to the app: looks without changing anything, config names but not values.
    Read,
    /// `push` access to the app: changes what runs.
    Push,
    /// The app's owner or an admin: who may do what, and the app's end.
    Manage,
    /// An admin key: the key store.
    Admin,
}

impl Need {
    /// Who has it, for `help VERB`.
    pub fn holders(self) -> &'static str {
        match self {
            Self::Anyone => "any key",
            Self::Read => "read access to the app (its owner, collaborators, admins)",
            Self::Push => "push access to the app (its owner, push collaborators, admins)",
            Self::Manage => "the app's owner or an admin",
            Self::Admin => "an admin key",
        }
    }
}

/// One argument of a verb, as the usage line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// `APP`, always the first word after the verb.
    App,
    /// A git repository path as git sends it (`'APP'`, `'/APP.git'`).
    Repo,
    /// One word: `KEYNAME`, or `[NUMBER]` when optional.
    Word { name: &'static str, optional: bool },
    /// The remaining plain words: `KEY=VALUE...`, at least one unless optional.
    Words { name: &'static str, optional: bool },
    /// `--json`, `-f|--follow`: present or not.
    Flag {
        long: &'static str,
        short: Option<char>,
    },
    /// `--confirm APP`, `-n|--num N`: an option with a value (`--num 5` or `--num=5`).
    Value {
        long: &'static str,
        short: Option<char>,
        name: &'static str,
    },
    /// `-- COMMAND [ARGS...]`: every word after the app (after `--`, if given), as is.
    Rest,
}

/// One verb of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verb {
    /// As typed: `builds`, `config:set`, ...
    pub name: &'static str,
    pub need: Need,
    pub args: &'static [Arg],
    /// One line of help.
    pub help: &'static str,
    /// git's own commands: parsed here, not listed by `help` (git sends them, people don't).
    pub git: bool,
}

const JSON: Arg = Arg::Flag {
    long: "json",
    short: None,
};
const NO_DEPLOY: Arg = Arg::Flag {
    long: "no-deploy",
    short: None,
};

const fn verb(name: &'static str, need: Need, args: &'static [Arg], help: &'static str) -> Verb {
    Verb {
        name,
        need,
        args,
        help,
        git: false,
    }
}

/// Every verb, in the order `help` lists them.
pub const VERBS: &[Verb] = &[
    Verb {
        name: "git-receive-pack",
        need: Need::Push,
        args: &[Arg::Repo],
        help: "git push: receive commits, build and deploy the deploy branch",
        git: true,
    },
    Verb {
        name: "git-upload-pack",
        need: Need::Read,
        args: &[Arg::Repo],
        help: "git clone and git fetch",
        git: true,
    },
    verb(
        "help",
        Need::Anyone,
        &[Arg::Word {
            name: "COMMAND",
            optional: true,
        }],
        "List the commands, or show how to use one",
    ),
    // Apps.
    verb(
        "apps",
        Need::Anyone,
        &[JSON],
        "List the apps this key may reach (admins: all)",
    ),
    verb(
        "apps:info",
        Need::Read,
        &[Arg::App, JSON],
        "Show the app's owner, your role, deploy branch, last build and what runs",
    ),
    verb(
        "apps:destroy",
        Need::Manage,
        &[
            Arg::App,
            Arg::Value {
                long: "confirm",
                short: None,
                name: "APP",
            },
        ],
        "Remove the app and everything of it: release, namespace, repository, builds, images, cache",
    ),
    verb(
        "apps:transfer",
        Need::Manage,
        &[Arg::App, Arg::Word {
            name: "KEYNAME",
            optional: false,
        }],
        "Make another key the app's owner",
    ),
    // Access.
    verb(
        "access",
        Need::Manage,
        &[Arg::App, JSON],
        "List who may reach the app, and how",
    ),
    verb(
        "access:add",
        Need::Manage,
        &[
            Arg::App,
            Arg::Word {
                name: "KEYNAME",
                optional: false,
            },
            Arg::Flag {
                long: "read",
                short: None,
            },
        ],
        "Let a key push to the app (with --read: clone it and look only)",
    ),
    verb(
        "access:remove",
        Need::Manage,
        &[Arg::App, Arg::Word {
            name: "KEYNAME",
            optional: false,
        }],
        "Take a key's access to the app away",
    ),
    // Builds.
    verb(
        "builds",
        Need::Read,
        &[Arg::App, JSON],
        "List the app's builds, oldest first",
    ),
    verb(
        "builds:log",
        Need::Read,
        &[Arg::App, Arg::Word {
            name: "NUMBER",
            optional: true,
        }],
        "Show the whole log of a build (by default the last)",
    ),
    verb(
        "builds:cache:purge",
        Need::Push,
        &[Arg::App],
        "Empty the app's buildpack cache: its next build starts cold",
    ),
    verb(
        "rebuild",
        Need::Push,
        &[Arg::App, Arg::Word {
            name: "REVISION",
            optional: true,
        }],
        "Build and deploy a revision again (by default the deploy branch), as a push would",
    ),
    // Config vars and releases.
    verb(
        "config",
        Need::Read,
        &[Arg::App, JSON],
        "List the app's config vars (read access: their names only)",
    ),
    verb(
        "config:get",
        Need::Push,
        &[Arg::App, Arg::Word {
            name: "KEY",
            optional: false,
        }],
        "Print the value of one config var",
    ),
    verb(
        "config:set",
        Need::Push,
        &[
            Arg::App,
            Arg::Flag {
                long: "encoded",
                short: None,
            },
            NO_DEPLOY,
            Arg::Words {
                name: "KEY=VALUE",
                optional: false,
            },
        ],
        "Set config vars and deploy them as a new release; KEY alone reads its value from standard input, --encoded takes base64 values",
    ),
    verb(
        "config:unset",
        Need::Push,
        &[Arg::App, NO_DEPLOY, Arg::Words {
            name: "KEY",
            optional: false,
        }],
        "Remove config vars and deploy that as a new release",
    ),
    verb(
        "releases",
        Need::Read,
        &[Arg::App, JSON],
        "List the app's releases, oldest first",
    ),
    verb(
        "rollback",
        Need::Push,
        &[Arg::App, Arg::Word {
            name: "vN",
            optional: true,
        }],
        "Go back to release vN (by default the one before the current): its image and config",
    ),
    // Processes.
    verb(
        "ps",
        Need::Read,
        &[Arg::App, JSON],
        "List the app's process types, their pods and each pod's state",
    ),
    verb(
        "ps:scale",
        Need::Push,
        &[Arg::App, Arg::Words {
            name: "TYPE=COUNT",
            optional: false,
        }],
        "Set how many pods each process type runs, now and for every later deploy",
    ),
    verb(
        "logs",
        Need::Read,
        &[
            Arg::App,
            Arg::Value {
                long: "num",
                short: Some('n'),
                name: "N",
            },
            Arg::Flag {
                long: "tail",
                short: Some('t'),
            },
            Arg::Flag {
                long: "follow",
                short: Some('f'),
            },
            Arg::Value {
                long: "process",
                short: Some('p'),
                name: "TYPE",
            },
        ],
        "Show the last N (100) lines of each pod's log; -t or -f keeps following",
    ),
    verb(
        "quota:show",
        Need::Read,
        &[Arg::App, JSON],
        "Show the app's quota, what it uses of it, and its containers' default requests and limits",
    ),
    verb(
        "run",
        Need::Push,
        &[Arg::App, Arg::Rest],
        "Run a one-off command with the current release's image and config (no terminal)",
    ),
    // Keys.
    verb(
        "keys:add",
        Need::Admin,
        &[Arg::Word {
            name: "KEYNAME",
            optional: false,
        }],
        "Add the public key on standard input under a name",
    ),
    verb("keys:list", Need::Admin, &[JSON], "List the keys"),
    verb(
        "keys:remove",
        Need::Admin,
        &[Arg::Word {
            name: "KEYNAME|SHA256:FINGERPRINT",
            optional: false,
        }],
        "Remove a key",
    ),
];

impl Verb {
    /// The verb named `name`, if the table has one.
    pub fn find(name: &str) -> Option<&'static Verb> {
        VERBS.iter().find(|v| v.name == name)
    }

    /// The usage line, made from the arguments: `config:set APP [--encoded] ...`.
    pub fn usage(&self) -> String {
        let mut line = self.name.to_owned();
        for arg in self.args {
            line.push(' ');
            line.push_str(&match *arg {
                Arg::App => "APP".to_owned(),
                Arg::Repo => "'APP'".to_owned(),
                Arg::Word { name, optional } if optional => format!("[{name}]"),
                Arg::Word { name, .. } => name.to_owned(),
                Arg::Words { name, optional } if optional => format!("[{name}...]"),
                Arg::Words { name, .. } => format!("{name}..."),
                Arg::Flag { long, short } => format!("[{}]", option(long, short)),
                // apps:destroy's confirmation is asked for by the command itself, with the line
                // that says what it removes; the usage shows it as what is meant.
                Arg::Value {
                    long: "confirm",
                    name,
                    ..
                } => format!("--confirm {name}"),
                Arg::Value { long, short, name } => format!("[{} {name}]", option(long, short)),
                Arg::Rest => "-- COMMAND [ARGS...]".to_owned(),
            });
        }
        line
    }
}

fn option(long: &str, short: Option<char>) -> String {
    match short {
        Some(c) => format!("-{c}|--{long}"),
        None => format!("--{long}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_unique_and_each_app_comes_first() {
        for (i, verb) in VERBS.iter().enumerate() {
            assert!(
                VERBS[i + 1..].iter().all(|v| v.name != verb.name),
                "{}",
                verb.name
            );
            let app_at = verb.args.iter().position(|a| *a == Arg::App);
            assert!(matches!(app_at, None | Some(0)), "{}", verb.name);
            let needs_app = matches!(verb.need, Need::Read | Need::Push | Need::Manage);
            assert_eq!(
                needs_app,
                app_at.is_some() || verb.args.contains(&Arg::Repo),
                "{}",
                verb.name
            );
        }
    }

    #[test]
    fn usage_lines_come_from_the_arguments() {
        let usage = |name| Verb::find(name).unwrap().usage();
        assert_eq!(
            usage("config:set"),
            "config:set APP [--encoded] [--no-deploy] KEY=VALUE..."
        );
        assert_eq!(
            usage("logs"),
            "logs APP [-n|--num N] [-t|--tail] [-f|--follow] [-p|--process TYPE]"
        );
        assert_eq!(usage("apps:destroy"), "apps:destroy APP --confirm APP");
        assert_eq!(usage("run"), "run APP -- COMMAND [ARGS...]");
        assert_eq!(usage("builds:log"), "builds:log APP [NUMBER]");
        assert_eq!(usage("help"), "help [COMMAND]");
    }
}
