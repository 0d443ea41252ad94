//! Roles and grants, and the one rule that turns them into a key's role on an app.

use codebuilder_core::{AppName, Fingerprint, KeyName};
use serde::{Deserialize, Serialize};

use crate::declared::DeclaredGrant;
use crate::level::Level;

/// A key as grants name it: its identity (the fingerprint) and the name it had then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyId {
    pub name: KeyName,
    pub fingerprint: Fingerprint,
}

/// One stored grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub key: KeyId,
    pub level: Level,
}

/// What a key is to an app (admins are decided by the key store, not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Collaborator(Level),
}

/// Why a key may not do what it asked with an app: the lines every decision on access ends
/// with. `NoAccess` is the same whether or not the app exists, so that no one can probe for
/// app names.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("app {app} does not exist or key {key} has no access to it: ask its owner or an admin to run 'access:add {app} {key}'")]
    NoAccess { app: AppName, key: KeyName },
    #[error("key {key} has read access to {app} only, and {verb} needs push access: ask its owner or an admin to run 'access:add {app} {key}'")]
    ReadOnly {
        app: AppName,
        key: KeyName,
        /// What the key asked for: `git push`, `config:get`, ...
        verb: &'static str,
    },
    #[error("key {key} cannot manage {app}: only its owner or an admin can {what}")]
    NotManager {
        app: AppName,
        key: KeyName,
        /// What the key asked for: `change who has access to it`, `destroy it`.
        what: &'static str,
    },
    #[error("app {0} does not exist: push to it first")]
    NoSuchApp(AppName),
    #[error(
        "key {0} is not an admin key: only admins can manage keys (codebuilder-keys add --admin)"
    )]
    NotAdmin(KeyName),
}

/// The stored state of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppState {
    pub owner: KeyId,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Sorted by key name.
    #[serde(default)]
    pub access: Vec<Grant>,
}

impl AppState {
    /// The role of `key` (a session's verified name and fingerprint): owner, or the highest
    /// level a stored grant (same fingerprint) or a declared one (same name) gives it.
    pub fn role_of(&self, key: &KeyId, declared: &[DeclaredGrant]) -> Option<Role> {
        if self.owner.fingerprint == key.fingerprint {
            return Some(Role::Owner);
        }
        let stored = self
            .access
            .iter()
            .filter(|g| g.key.fingerprint == key.fingerprint)
            .map(|g| g.level);
        let declared = declared
            .iter()
            .filter(|g| g.key == key.name)
            .map(|g| g.level);
        stored.chain(declared).max().map(Role::Collaborator)
    }

    /// Grants `level` to `key`, replacing a grant it had.
    pub(crate) fn grant(&mut self, key: KeyId, level: Level) {
        self.access
            .retain(|g| g.key.fingerprint != key.fingerprint && g.key.name != key.name);
        self.access.push(Grant { key, level });
        self.access.sort_by(|a, b| a.key.name.cmp(&b.key.name));
    }

    /// Takes back the grant of the key named `name`; false if it had none.
    pub(crate) fn revoke(&mut self, name: &KeyName) -> bool {
        let before = self.access.len();
        self.access.retain(|g| &g.key.name != name);
        self.access.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn key(name: &str, tail: char) -> KeyId {
        KeyId {
            name: KeyName::parse(name).unwrap(),
            fingerprint: Fingerprint::parse(&format!("SHA256:{}", tail.to_string().repeat(43)))
                .unwrap(),
        }
    }

    #[test]
    fn roles_follow_fingerprints_and_declared_names() {
        let mut state = AppState {
            owner: key("alice", 'a'),
            created_at: 0,
            access: Vec::new(),
        };
        state.grant(key("bob", 'b'), Level::Read);
        state.grant(key("bob", 'b'), Level::Push);
        assert_eq!(state.access.len(), 1);
        let declared = [DeclaredGrant {
            key: KeyName::parse("carol").unwrap(),
            level: Level::Read,
            path: PathBuf::from("/declared"),
        }];
        assert_eq!(state.role_of(&key("alice", 'a'), &[]), Some(Role::Owner));
        assert_eq!(
            state.role_of(&key("bob", 'b'), &[]),
            Some(Role::Collaborator(Level::Push))
        );
        // Another key under bob's name gets nothing of bob's.
        assert_eq!(state.role_of(&key("bob", 'x'), &[]), None);
        assert_eq!(
            state.role_of(&key("carol", 'c'), &declared),
            Some(Role::Collaborator(Level::Read))
        );
        assert_eq!(state.role_of(&key("dave", 'd'), &declared), None);
        assert!(state.revoke(&KeyName::parse("bob").unwrap()));
        assert!(!state.revoke(&KeyName::parse("bob").unwrap()));
        assert_eq!(state.role_of(&key("bob", 'b'), &[]), None);
    }
}
