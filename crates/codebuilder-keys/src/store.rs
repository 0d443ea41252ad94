//! The key store on disk:
//!
//! ```text
//! HOME/keys/fp/<sha256-hex>.json   one record per key: the truth
//! HOME/keys/name/<name>            the hex fingerprint of the key of that name: an index
//! HOME/keys/tmp/                    where writers stage files before renaming them in
//! HOME/keys/.lock                  held (flock) by writers only
//! ```
//!
//! Each write is one atomic rename, so a crash leaves either the old or the new record. The
//! name index is written before a record and removed after it, and it is trusted only when
//! the record it points to carries the same name: a crash between the two steps leaves at
//! worst a stale index entry, which counts as free.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use codebuilder_apps::KeyId;
use codebuilder_core::fsutil::{remove_durably, write_atomic_via};
use codebuilder_core::{Fingerprint, Home, KeyName};
use nix::fcntl::{Flock, FlockArg};

use crate::keytext::{fingerprint_to_hex, PublicKeyEntry};
use crate::record::{KeyRecord, KeySource};

/// A declared key that is not served, because its name is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub record: KeyRecord,
    pub reason: ConflictReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictReason {
    /// A stored key has the name.
    Stored,
    /// An earlier line of the file has the name.
    Declared,
}

impl Conflict {
    pub fn reason_text(&self) -> String {
        let by = match self.reason {
            ConflictReason::Stored => "a stored key",
            ConflictReason::Declared => "an earlier declared key",
        };
        format!(
            "declared key {} ({}) is not served: its name is taken by {by}",
            self.record.name, self.record.fingerprint
        )
    }
}

/// How a user names a key to remove: by name or by fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySelector {
    Name(KeyName),
    Fingerprint(String),
}

impl KeySelector {
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.starts_with("SHA256:") {
            fingerprint_to_hex(text)
                .map(|_| Self::Fingerprint(text.to_owned()))
                .ok_or_else(|| StoreError::BadFingerprint(codebuilder_core::names::printable(text)))
        } else {
            Ok(Self::Name(
                KeyName::parse(text).map_err(|e| StoreError::Invalid(e.to_string()))?,
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a key named {0} already exists: remove it first or choose another name")]
    NameTaken(KeyName),
    #[error("this key is already stored as {name} ({fingerprint})")]
    KeyExists {
        name: KeyName,
        fingerprint: Fingerprint,
    },
    #[error("no key {0} is stored: 'codebuilder-keys list' shows the stored keys")]
    NotFound(String),
    #[error("key {name} comes from {path} (a ConfigMap or Secret): change it there")]
    Declared { name: KeyName, path: PathBuf },
    #[error("{0:?} is not a SHA256 fingerprint as 'ssh-keygen -lf' prints it")]
    BadFingerprint(String),
    #[error("{0}")]
    Invalid(String),
    #[error("key store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}

pub struct KeyStore {
    home: Home,
    /// Read-only file of declared keys, merged in at lookup time.
    config_keys: Option<PathBuf>,
}

impl KeyStore {
    pub fn new(home: &Home) -> Self {
        Self {
            home: home.clone(),
            config_keys: None,
        }
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Also serves the keys declared in `path` (a mounted ConfigMap or Secret).
    pub fn with_config_keys(mut self, path: Option<PathBuf>) -> Self {
        self.config_keys = path;
        self
    }

    /// The declared keys that are served: those whose name no stored key and no earlier
    /// declared line has.
    fn declared(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.declared_split()?.0)
    }

    /// The declared keys that are skipped, with why: a declared key never gets the rights of
    /// another key that has its name. Each is also logged.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        let conflicts = self.declared_split()?.1;
        for conflict in &conflicts {
            if let KeySource::Config(path) = &conflict.record.source {
                tracing::warn!("{}: skipped: {}", path.display(), conflict.reason_text());
            }
        }
        Ok(conflicts)
    }

    fn declared_split(&self) -> Result<(Vec<KeyRecord>, Vec<Conflict>), StoreError> {
        let Some(path) = &self.config_keys else {
            return Ok((Vec::new(), Vec::new()));
        };
        let mut served: Vec<KeyRecord> = Vec::new();
        let mut skipped = Vec::new();
        for record in crate::declared::read(path).map_err(io_at(path))? {
            let reason = if self.stored_by_name(&record.name)?.is_some() {
                Some(ConflictReason::Stored)
            } else if served.iter().any(|r| r.name == record.name) {
                Some(ConflictReason::Declared)
            } else {
                None
            };
            match reason {
                Some(reason) => skipped.push(Conflict { record, reason }),
                None => served.push(record),
            }
        }
        Ok((served, skipped))
    }

    fn record_path(&self, hex: &str) -> PathBuf {
        self.home.keys_dir().join("fp").join(format!("{hex}.json"))
    }

    fn name_path(&self, name: &KeyName) -> PathBuf {
        self.home.keys_dir().join("name").join(name.as_str())
    }

    fn read_record(&self, hex: &str) -> Result<Option<KeyRecord>, StoreError> {
        let path = self.record_path(hex);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(path)(e)),
        };
        let record: KeyRecord = serde_json::from_slice(&bytes)
            .map_err(|e| io_at(&path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        Ok(Some(record))
    }

    /// The record for `key`, if stored or declared. A stored key costs one file read,
    /// however many keys there are: sshd calls this on every connection.
    pub fn lookup(&self, key: &PublicKeyEntry) -> Result<Option<KeyRecord>, StoreError> {
        let matches =
            |record: &KeyRecord| record.key_type == key.key_type() && record.key == key.base64();
        if let Some(record) = self.read_record(&key.fingerprint_hex())?.filter(matches) {
            return Ok(Some(record));
        }
        Ok(self.declared()?.into_iter().find(matches))
    }

    /// The record of the key named `name`, stored or declared.
    /// The key named `name` as app grants name it (the access commands take it).
    pub fn key_id(&self, name: &KeyName) -> anyhow::Result<KeyId> {
        let record = self.by_name(name)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no key {name} is stored: 'codebuilder-keys list' shows the stored keys"
            )
        })?;
        Ok(record.id()?)
    }

    pub fn by_name(&self, name: &KeyName) -> Result<Option<KeyRecord>, StoreError> {
        if let Some(record) = self.stored_by_name(name)? {
            return Ok(Some(record));
        }
        Ok(self
            .declared()?
            .into_iter()
            .find(|record| &record.name == name))
    }

    fn stored_by_name(&self, name: &KeyName) -> Result<Option<KeyRecord>, StoreError> {
        let path = self.name_path(name);
        let hex = match fs::read_to_string(&path) {
            Ok(hex) => hex,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(path)(e)),
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self
            .read_record(&hex)?
            .filter(|record| &record.name == name))
    }

    /// Takes the writers' lock; readers never wait for it.
    fn lock(&self) -> Result<Flock<File>, StoreError> {
        let dir = self.home.keys_dir();
        for sub in [
            dir.clone(),
            dir.join("fp"),
            dir.join("name"),
            dir.join("tmp"),
        ] {
            self.home.ensure_dir(&sub).map_err(io_at(&sub))?;
        }
        let path = dir.join(".lock");
        let file = self.home.open_lock(&path).map_err(io_at(&path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_at(&path)(errno.into()))?;
        // Writers stage their files in tmp/ and only under this lock, so whatever is in tmp/
        // now is what a writer killed mid-write left behind.
        let staging = dir.join("tmp");
        for entry in fs::read_dir(&staging).map_err(io_at(&staging))?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        Ok(lock)
    }

    pub fn add(
        &self,
        name: KeyName,
        key: &PublicKeyEntry,
        admin: bool,
    ) -> Result<KeyRecord, StoreError> {
        let _lock = self.lock()?;
        let hex = key.fingerprint_hex();
        if let Some(existing) = self.read_record(&hex)? {
            return Err(StoreError::KeyExists {
                name: existing.name,
                fingerprint: existing.fingerprint,
            });
        }
        if let Some(existing) = self
            .declared()?
            .into_iter()
            .find(|r| r.fingerprint == key.fingerprint())
        {
            return Err(StoreError::KeyExists {
                name: existing.name,
                fingerprint: existing.fingerprint,
            });
        }
        if self.by_name(&name)?.is_some() {
            return Err(StoreError::NameTaken(name));
        }
        let record = KeyRecord {
            name,
            fingerprint: key.fingerprint(),
            key_type: key.key_type().to_owned(),
            key: key.base64(),
            admin,
            added_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            source: KeySource::Store,
        };
        let json = serde_json::to_vec_pretty(&record).expect("a key record always serializes");
        self.write(&self.name_path(&record.name), hex.as_bytes())?;
        self.write(&self.record_path(&hex), &json)?;
        Ok(record)
    }

    fn write(&self, path: &PathBuf, contents: &[u8]) -> Result<(), StoreError> {
        let staging = self.home.keys_dir().join("tmp");
        write_atomic_via(&staging, path, contents, 0o644).map_err(io_at(path))?;
        self.home.give_to_owner(path).map_err(io_at(path))
    }

    pub fn remove(&self, selector: &KeySelector) -> Result<KeyRecord, StoreError> {
        let _lock = self.lock()?;
        let stored = match selector {
            KeySelector::Name(name) => self.stored_by_name(name)?,
            KeySelector::Fingerprint(fp) => {
                self.read_record(&fingerprint_to_hex(fp).unwrap_or_default())?
            }
        };
        if stored.is_none() {
            let declared = self.declared()?.into_iter().find(|r| match selector {
                KeySelector::Name(name) => &r.name == name,
                KeySelector::Fingerprint(fp) => r.fingerprint.as_str() == fp,
            });
            if let Some(KeyRecord {
                name,
                source: KeySource::Config(path),
                ..
            }) = declared
            {
                return Err(StoreError::Declared { name, path });
            }
        }
        let record = stored.ok_or_else(|| {
            StoreError::NotFound(match selector {
                KeySelector::Name(name) => name.to_string(),
                KeySelector::Fingerprint(fp) => fp.clone(),
            })
        })?;
        let hex = fingerprint_to_hex(record.fingerprint.as_str()).unwrap_or_default();
        let path = self.record_path(&hex);
        remove_durably(&path).map_err(io_at(path))?;
        let path = self.name_path(&record.name);
        remove_durably(&path).map_err(io_at(path))?;
        Ok(record)
    }

    /// Every stored and declared key, sorted by name.
    pub fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records = self.stored()?;
        records.extend(self.declared()?);
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    fn stored(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let dir = self.home.keys_dir().join("fp");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(dir)(e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at(&dir))?;
            let file_name = entry.file_name();
            let Some(hex) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(record) = self.read_record(hex)? {
                records.push(record);
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/ alice";
    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA8QyjcuTMGx+T0Qj1jrQBI506T6ElrD94MeN1tHSizm bob";

    #[test]
    fn a_record_keeps_its_json_form() {
        let json = r#"{"name":"alice","fingerprint":"SHA256:7PfG+CQNEIZ2WnpeJvdjwT5T5SU8r7LQb7G6Lt49RzQ","type":"ssh-ed25519","key":"AAAAC3NzaC1lZDI1NTE5AAAAIN5Z04v93e8zqPpJzI9/bmL3plM9SUlV28HtcUsE0mX/","admin":false,"added_at":7}"#;
        let record: KeyRecord = serde_json::from_str(json).unwrap();
        assert_eq!(
            record.fingerprint,
            PublicKeyEntry::parse_text(ALICE).unwrap().fingerprint()
        );
        assert_eq!(serde_json::to_string(&record).unwrap(), json);
        let damaged = json.replace("SHA256:7PfG", "SHA256:7P\"G");
        assert!(serde_json::from_str::<KeyRecord>(&damaged).is_err());
    }

    fn store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(&Home::new(dir.path()));
        (dir, store)
    }

    fn name(n: &str) -> KeyName {
        KeyName::parse(n).unwrap()
    }

    #[test]
    fn add_lookup_remove() {
        let (_dir, store) = store();
        let alice = PublicKeyEntry::parse_text(ALICE).unwrap();
        let bob = PublicKeyEntry::parse_text(BOB).unwrap();
        store.add(name("alice"), &alice, true).unwrap();
        assert_eq!(store.lookup(&alice).unwrap().unwrap().name, name("alice"));
        assert!(store.lookup(&bob).unwrap().is_none());
        assert!(matches!(
            store.add(name("alice2"), &alice, false),
            Err(StoreError::KeyExists { .. })
        ));
        assert!(matches!(
            store.add(name("alice"), &bob, false),
            Err(StoreError::NameTaken(_))
        ));
        store.add(name("bob"), &bob, false).unwrap();
        assert_eq!(
            store
                .list()
                .unwrap()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        let removed = store
            .remove(&KeySelector::parse(alice.fingerprint().as_str()).unwrap())
            .unwrap();
        assert_eq!(removed.name, name("alice"));
        assert!(store.lookup(&alice).unwrap().is_none());
        store.remove(&KeySelector::parse("bob").unwrap()).unwrap();
        assert!(matches!(
            store.remove(&KeySelector::parse("bob").unwrap()),
            Err(StoreError::NotFound(_))
        ));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn stale_name_index_counts_as_free() {
        let (dir, store) = store();
        let alice = PublicKeyEntry::parse_text(ALICE).unwrap();
        // A crash after the index was written but before the record was.
        fs::create_dir_all(dir.path().join("keys/name")).unwrap();
        fs::write(dir.path().join("keys/name/alice"), alice.fingerprint_hex()).unwrap();
        assert!(store.by_name(&name("alice")).unwrap().is_none());
        store.add(name("alice"), &alice, false).unwrap();
        assert!(store.by_name(&name("alice")).unwrap().is_some());
    }

    #[test]
    fn declared_keys_are_served_but_not_removable() {
        let (dir, store) = store();
        let config = dir.path().join("declared");
        fs::write(&config, format!("ops:admin {ALICE}\n")).unwrap();
        let store = store.with_config_keys(Some(config));
        let alice = PublicKeyEntry::parse_text(ALICE).unwrap();
        let found = store.lookup(&alice).unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.admin), ("ops", true));
        assert!(store.by_name(&name("ops")).unwrap().is_some());
        assert!(matches!(
            store.remove(&KeySelector::parse("ops").unwrap()),
            Err(StoreError::Declared { .. })
        ));
        assert!(matches!(
            store.add(name("again"), &alice, false),
            Err(StoreError::KeyExists { .. })
        ));
        let bob = PublicKeyEntry::parse_text(BOB).unwrap();
        assert!(matches!(
            store.add(name("ops"), &bob, false),
            Err(StoreError::NameTaken(_))
        ));
        store.add(name("bob"), &bob, false).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn declared_keys_never_take_a_taken_name() {
        let (dir, store) = store();
        let alice = PublicKeyEntry::parse_text(ALICE).unwrap();
        let bob = PublicKeyEntry::parse_text(BOB).unwrap();
        store.add(name("ops"), &alice, false).unwrap();
        let config = dir.path().join("declared");
        fs::write(
            &config,
            format!("ops:admin {BOB}\ndev {BOB}\ndev:admin {ALICE}\n"),
        )
        .unwrap();
        let store = store.with_config_keys(Some(config));
        let ops = store.by_name(&name("ops")).unwrap().unwrap();
        assert_eq!(
            (ops.fingerprint.clone(), ops.admin),
            (alice.fingerprint(), false)
        );
        // bob's key is served under its first free declared name, never as the stored ops.
        let found = store.lookup(&bob).unwrap().unwrap();
        assert_eq!((found.name.as_str(), found.admin), ("dev", false));
        let conflicts: Vec<_> = store
            .conflicts()
            .unwrap()
            .into_iter()
            .map(|c| (c.record.name.to_string(), c.reason))
            .collect();
        assert_eq!(
            conflicts,
            [
                ("ops".to_string(), ConflictReason::Stored),
                ("dev".to_string(), ConflictReason::Declared)
            ]
        );
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn bad_selectors() {
        assert!(matches!(
            KeySelector::parse("SHA256:nope"),
            Err(StoreError::BadFingerprint(_))
        ));
        assert!(matches!(
            KeySelector::parse("Bad Name"),
            Err(StoreError::Invalid(_))
        ));
    }
}
