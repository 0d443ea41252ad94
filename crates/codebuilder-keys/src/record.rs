//! A key as codebuilder knows it: its name, fingerprint, public key and rights, and where it
//! comes from (the store, or the file of declared keys).

use std::path::PathBuf;
use std::time::UNIX_EPOCH;

use codebuilder_apps::KeyId;
use codebuilder_core::{Fingerprint, KeyName, NameError};
use serde::{Deserialize, Serialize};

use crate::keytext::{KeyError, PublicKeyEntry};

/// One key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub name: KeyName,
    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    pub fingerprint: Fingerprint,
    #[serde(rename = "type")]
    pub key_type: String,
    /// The key data, base64, as in an authorized_keys line.
    pub key: String,
    pub admin: bool,
    /// Seconds since the Unix epoch.
    pub added_at: u64,
    /// Where the key comes from; only stored keys are written here.
    #[serde(skip)]
    pub source: KeySource,
}

/// Where a key comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeySource {
    /// The store in the home, managed with `add` and `remove`.
    #[default]
    Store,
    /// A read-only file of declared keys (see `declared`).
    Config(PathBuf),
}

impl KeyRecord {
    /// The stored key, re-parsed: a record edited by hand cannot smuggle anything through.
    pub fn public_key(&self) -> Result<PublicKeyEntry, KeyError> {
        PublicKeyEntry::parse_parts(&self.key_type, &self.key)
    }

    /// The key as app grants name it.
    pub fn id(&self) -> Result<KeyId, NameError> {
        Ok(KeyId {
            name: self.name.clone(),
            fingerprint: self.fingerprint.clone(),
        })
    }

    pub fn added_at_rfc3339(&self) -> String {
        humantime::format_rfc3339_seconds(
            UNIX_EPOCH + std::time::Duration::from_secs(self.added_at),
        )
        .to_string()
    }
}
