//! Operating apps after the push: one module per group of commands. Each command validates
//! every name and value before anything runs, and fails with one line naming the cause and
//! the fix. Who may run what is decided before: by codebuilder-receive for ssh sessions
//! (`Operation::need`), and by the admin's own `kubectl exec` rights otherwise.

pub mod apps;
pub mod builds;
pub mod config;
pub mod destroy;
pub mod operation;
pub mod ps;
pub mod quota;
pub mod release;

pub use operation::{Need, Operation};
