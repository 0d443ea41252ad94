//! Shared pieces of codebuilder: every string that reaches a path, a command line or sshd's
//! output passes through one of the validated types here first.

pub mod buildpack;
pub mod fsutil;
pub mod home;
pub mod main_support;
pub mod names;
pub mod pod_security;
pub mod quantity;
pub mod scratch;
pub mod settings;
pub mod sshd_quoting;
pub mod yaml;

pub use home::Home;
pub use names::{Actor, AppName, BranchName, Fingerprint, KeyName, NameError, ObjectId};
pub use settings::Settings;
