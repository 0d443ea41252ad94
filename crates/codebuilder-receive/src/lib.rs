//! The forced command sshd runs for every authenticated key. It is the only code between the
//! internet and a shell: it accepts a short whitelist of requests, each with a validated app
//! name, and executes git with an argument vector.

pub mod repo;
pub mod request;
pub mod session;

pub use request::{parse_request, Request, RequestError};
