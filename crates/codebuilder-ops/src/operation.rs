//! The app commands, by the name users type over ssh and on the command line, and the access
//! each needs: the one table codebuilder-receive authorizes with.

/// What a key needs on an app to run a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Looks without changing anything (`read` access).
    Read,
    /// Changes what runs (`push` access).
    Push,
    /// Changes who may do what, or removes the app: its owner and admins.
    Manage,
}

/// One app command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// As typed: `builds`, `config:set`, ...
    pub verb: &'static str,
    pub need: Need,
    /// A usage line for the refusal of bad arguments.
    pub usage: &'static str,
}

/// Every app command codebuilder-ops runs.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        verb: "builds",
        need: Need::Read,
        usage: "builds APP [--json]",
    },
    // Apps and their builds (apps.rs, builds.rs); `apps` itself takes no app (APPS).
    Operation {
        verb: "apps:info",
        need: Need::Read,
        usage: "apps:info APP [--json]",
    },
    Operation {
        verb: "apps:destroy",
        need: Need::Manage,
        usage: "apps:destroy APP --confirm APP",
    },
    Operation {
        verb: "builds:log",
        need: Need::Read,
        usage: "builds:log APP [NUMBER]",
    },
    Operation {
        verb: "rebuild",
        need: Need::Push,
        usage: "rebuild APP [REVISION]",
    },
    // Config vars and releases.
    Operation {
        verb: "config",
        need: Need::Read,
        usage: "config APP [--json]",
    },
    Operation {
        verb: "config:get",
        need: Need::Read,
        usage: "config:get APP KEY",
    },
    Operation {
        verb: "config:set",
        need: Need::Push,
        usage: "config:set APP [--encoded] KEY=VALUE... [--no-deploy]",
    },
    Operation {
        verb: "config:unset",
        need: Need::Push,
        usage: "config:unset APP KEY... [--no-deploy]",
    },
    Operation {
        verb: "releases",
        need: Need::Read,
        usage: "releases APP [--json]",
    },
    Operation {
        verb: "rollback",
        need: Need::Push,
        usage: "rollback APP [vN]",
    },
    // Processes (ps.rs).
    Operation {
        verb: "ps",
        need: Need::Read,
        usage: "ps APP [--json]",
    },
    Operation {
        verb: "ps:scale",
        need: Need::Push,
        usage: "ps:scale APP TYPE=COUNT...",
    },
    Operation {
        verb: "logs",
        need: Need::Read,
        usage: "logs APP [--tail N] [-f] [--process TYPE]",
    },
    Operation {
        verb: "run",
        need: Need::Push,
        usage: "run APP -- COMMAND [ARGS...]",
    },
    Operation {
        verb: "quota:show",
        need: Need::Read,
        usage: "quota:show APP [--json]",
    },
];

/// `apps [--json]`: the one command without an app; every key may run it, and sees the apps
/// it may reach.
pub const APPS: &str = "apps";

impl Operation {
    /// The command named `verb`, if there is one.
    pub fn find(verb: &str) -> Option<&'static Operation> {
        OPERATIONS.iter().find(|op| op.verb == verb)
    }
}
