//! Operating apps after the push: one module per group of commands, the one end of an app
//! (`end`), and `dispatch`, which runs a typed command of the one command table
//! (codebuilder-commands). Each command fails with one line naming the cause and the fix. Who
//! may run what is decided before: by codebuilder-receive for ssh sessions, from the table's
//! needs, and by the admin's own `kubectl exec` rights otherwise; `apps:destroy` decides again
//! once it holds the app, and `builds`/`builds:log` once they pick the records to read.

pub mod apps;
pub mod builds;
pub mod config;
pub mod destroy;
pub mod dispatch;
pub mod end;
pub mod ps;
pub mod quota;
pub mod release;
