//! The forced command sshd runs for every authenticated key. It is the only code between the
//! internet and a shell: it parses the command once, by the one command table
//! (codebuilder-commands), decides the key's access, and runs git with an argument vector or
//! hands the typed request to codebuilder-ops.

pub mod repo;
pub mod session;
