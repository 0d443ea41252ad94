//! App state: who owns each app and who else may use it, its config and scale, its lock, its
//! build records and the images it keeps.
//!
//! ```text
//! HOME/apps/APP.json   owner and access grants of APP (mode 0600)
//! HOME/apps/tmp/       where writers stage files before renaming them in
//! HOME/apps/.lock      held (flock) by writers only
//! HOME/apps/config/    each app's config vars (see `config`)
//! HOME/apps/formation/APP.json   the scale of APP's process types (`formation`)
//! HOME/builds/APP/     the build records and logs (`records`), the kept images (`images`)
//! HOME/locks/          one lock per app, held by what changes it (`lock`)
//! ```
//!
//! A key is named by its fingerprint and its name; a grant follows the fingerprint, so a key
//! removed and added again under the same name does not inherit what the old one had.
//! An app made before owners existed has no state: only admins reach it until one of them
//! gives it an owner (`apps:transfer`).

pub mod access;
pub mod commands;
pub mod config;
pub mod declared;
pub mod formation;
pub mod images;
pub mod level;
pub mod lock;
pub mod records;
pub mod repo;
pub mod store;

pub use access::{AppState, Grant, KeyId, Refusal, Role};
pub use config::{AppConfig, ConfigError, ConfigKey, ConfigStore, ConfigVars, ReleaseCause};
pub use declared::DeclaredGrant;
pub use level::Level;
pub use store::{AppError, AppStore};
