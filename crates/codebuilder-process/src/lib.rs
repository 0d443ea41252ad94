//! The one door for every program codebuilder runs (git, docker, helm, ssh-keygen, sshd):
//! always an argument vector, never a shell string; always a process group of its own that is
//! stopped as a whole; always a deadline; stdin closed unless input is given.
//!
//! - [`capture`] runs one command to its end and keeps its output (a `git rev-parse`, a
//!   `docker image inspect`), or hands it over as it comes (a `git archive` unpacked on the
//!   fly).
//! - [`runner`] runs a build step's pipeline and streams its lines to the pusher through
//!   [`output::Output`], stopping it on cancel or timeout.
//! - [`group::companion`] starts the one process that lives as long as codebuilder-sshd (its
//!   log relay).

pub mod capture;
pub mod group;
pub mod output;
pub mod runner;

pub use capture::{run, run_reading, run_with_input, Captured, RunError, QUICK};
pub use output::Output;
pub use runner::{StepContext, StepError, Tail, HEARTBEAT};
