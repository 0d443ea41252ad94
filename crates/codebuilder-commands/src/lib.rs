//! The one command table. Every verb a key holder may send over ssh, and an admin may run
//! with `kubectl exec ... codebuilder-ops`, is a row here: the access it needs, its arguments
//! and their types, its usage line and one line of help. Words are parsed once, here, into a
//! typed [`Command`]; what runs a command gets that value, never the words. No word chooses
//! codebuilder's home or a setting: those come from the environment codebuilder set.

pub mod command;
pub mod help;
pub mod table;
pub mod words;

pub use command::{Command, ConfigValues, KeyRef, Request, RequestTooLarge, Revision, REQUEST_ENV};
pub use table::{Need, Verb, VERBS};
pub use words::{parse_request, parse_words, RequestError};
