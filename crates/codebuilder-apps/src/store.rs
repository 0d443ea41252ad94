//! The app state on disk. Writers hold `apps/.lock` and replace a whole file with one atomic
//! rename; readers never wait.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use codebuilder_core::fsutil::{create_atomic_via, remove_durably, remove_tree, write_atomic_via};
use codebuilder_core::{AppName, Home, KeyName};
use nix::fcntl::{Flock, FlockArg};

use crate::access::{AppState, KeyId, Refusal};
use crate::declared::{self, DeclaredGrant};
use crate::level::Level;

/// App state is readable by codebuilder only: it says who may reach what.
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("app {0} already has an owner")]
    Exists(AppName),
    #[error("app {0} has no owner yet (it predates owners): give it one first with 'apps:transfer {0} KEYNAME'")]
    NoOwner(AppName),
    #[error("key {key} owns {app}: to give the app away, use 'apps:transfer {app} KEYNAME'")]
    IsOwner { app: AppName, key: KeyName },
    #[error("key {key} has no access to {app} to remove: 'access {app}' lists who has")]
    NotGranted { app: AppName, key: KeyName },
    #[error("the access of key {key} to {app} is declared in {} (a ConfigMap or Secret): change it there", path.display())]
    Declared {
        app: AppName,
        key: KeyName,
        path: PathBuf,
    },
    #[error("key {key} already owns {app}")]
    AlreadyOwner { app: AppName, key: KeyName },
    #[error("app state {}: {source}", path.display())]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("app state {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> AppError {
    let path = path.into();
    move |source| AppError::Io { path, source }
}

pub struct AppStore {
    home: Home,
    /// codebuilder's own namespace, which no app name may be.
    namespace: String,
    /// Read-only file of declared access, merged in at lookup time.
    declared: Option<PathBuf>,
}

impl AppStore {
    pub fn new(home: &Home, namespace: &str, declared: Option<PathBuf>) -> Self {
        Self {
            home: home.clone(),
            namespace: namespace.to_owned(),
            declared,
        }
    }

    fn path(&self, app: &AppName) -> PathBuf {
        self.home.apps_dir().join(format!("{app}.json"))
    }

    /// The stored state of `app`; `None` for an app that does not exist or predates owners.
    /// Whether `app` exists: something was pushed to it, or a push recorded its owner. The
    /// one answer to "does it exist"; who may see that it does is [`AppState::role_of`]'s.
    pub fn exists(&self, app: &AppName) -> Result<bool, AppError> {
        Ok(self.home.repo(app).is_dir() || self.state(app)?.is_some())
    }

    /// Refuses an app that does not exist, in the one wording ([`Refusal::NoSuchApp`]).
    pub fn existing(&self, app: &AppName) -> Result<(), AppError> {
        if !self.exists(app)? {
            return Err(Refusal::NoSuchApp(app.clone()).into());
        }
        Ok(())
    }

    pub fn state(&self, app: &AppName) -> Result<Option<AppState>, AppError> {
        let path = self.path(app);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| AppError::Damaged { path, source })
    }

    /// The grants the operator's file declares for `app`.
    pub fn declared(&self, app: &AppName) -> Result<Vec<DeclaredGrant>, AppError> {
        match &self.declared {
            Some(path) => declared::read(path, app, &self.namespace).map_err(io_at(path)),
            None => Ok(Vec::new()),
        }
    }

    /// Records `owner` as the owner of the new app `app`; `Exists` if it has one already.
    /// A new app starts with nothing of an earlier one of its name: the build records that
    /// one left to the keys that pushed it (`Home::freed_builds_dir`) go.
    pub fn create(&self, app: &AppName, owner: KeyId) -> Result<AppState, AppError> {
        let _lock = self.lock()?;
        let freed = self.home.freed_builds_dir(app);
        remove_tree(&freed).map_err(io_at(freed))?;
        let state = AppState {
            owner,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            access: Vec::new(),
        };
        let path = self.path(app);
        let staging = self.home.apps_dir().join("tmp");
        match create_atomic_via(&staging, &path, &to_json(&state), FILE_MODE, |staged| {
            self.give_to_owner(staged)
        }) {
            Ok(()) => Ok(state),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(AppError::Exists(app.clone()))
            }
            Err(e) => Err(io_at(path)(e)),
        }
    }

    /// Lets `key` read or push to `app`.
    pub fn grant(&self, app: &AppName, key: KeyId, level: Level) -> Result<(), AppError> {
        let _lock = self.lock()?;
        let mut state = self
            .state(app)?
            .ok_or_else(|| AppError::NoOwner(app.clone()))?;
        if state.owner.fingerprint == key.fingerprint {
            return Err(AppError::IsOwner {
                app: app.clone(),
                key: key.name,
            });
        }
        state.grant(key, level);
        self.write(app, &state)
    }

    /// Takes back what the stored grants give the key named `name`.
    pub fn revoke(&self, app: &AppName, name: &KeyName) -> Result<(), AppError> {
        let _lock = self.lock()?;
        let mut state = self
            .state(app)?
            .ok_or_else(|| AppError::NoOwner(app.clone()))?;
        if &state.owner.name == name {
            return Err(AppError::IsOwner {
                app: app.clone(),
                key: name.clone(),
            });
        }
        if !state.revoke(name) {
            if let Some(declared) = self.declared(app)?.into_iter().find(|g| &g.key == name) {
                return Err(AppError::Declared {
                    app: app.clone(),
                    key: name.clone(),
                    path: declared.path,
                });
            }
            return Err(AppError::NotGranted {
                app: app.clone(),
                key: name.clone(),
            });
        }
        self.write(app, &state)
    }

    /// Makes `owner` the owner of `app`. The previous owner keeps push access, as a
    /// collaborator, until someone removes it; an app without an owner gets its first.
    /// Returns the previous owner.
    pub fn transfer(&self, app: &AppName, owner: KeyId) -> Result<Option<KeyId>, AppError> {
        let _lock = self.lock()?;
        let Some(mut state) = self.state(app)? else {
            drop(_lock);
            self.create(app, owner)?;
            return Ok(None);
        };
        if state.owner.fingerprint == owner.fingerprint {
            return Err(AppError::AlreadyOwner {
                app: app.clone(),
                key: owner.name,
            });
        }
        state.revoke(&owner.name);
        state
            .access
            .retain(|g| g.key.fingerprint != owner.fingerprint);
        let previous = std::mem::replace(&mut state.owner, owner);
        state.grant(previous.clone(), Level::Push);
        self.write(app, &state)?;
        Ok(Some(previous))
    }

    /// Forgets `app` (its repository is gone).
    pub fn remove(&self, app: &AppName) -> Result<(), AppError> {
        let _lock = self.lock()?;
        let path = self.path(app);
        remove_durably(&path).map_err(io_at(path))
    }

    fn write(&self, app: &AppName, state: &AppState) -> Result<(), AppError> {
        let path = self.path(app);
        let staging = self.home.apps_dir().join("tmp");
        write_atomic_via(&staging, &path, &to_json(state), FILE_MODE).map_err(io_at(&path))?;
        self.give_to_owner(&path).map_err(io_at(path))
    }

    fn give_to_owner(&self, path: &Path) -> io::Result<()> {
        self.home.give_to_owner(path)
    }

    /// Takes the writers' lock, making the directories first, and sweeps what a writer
    /// killed mid-write left in `tmp/` (writers stage there only under this lock).
    fn lock(&self) -> Result<Flock<File>, AppError> {
        let dir = self.home.apps_dir();
        let staging = dir.join("tmp");
        for sub in [&dir, &staging] {
            if !sub.is_dir() {
                self.home.ensure_dir(sub).map_err(io_at(sub))?;
                fs::set_permissions(sub, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io_at(sub))?;
            }
        }
        let path = dir.join(".lock");
        let file = self.home.open_lock(&path).map_err(io_at(&path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_at(&path)(errno.into()))?;
        for entry in fs::read_dir(&staging).map_err(io_at(&staging))?.flatten() {
            let _ = fs::remove_file(entry.path());
        }
        Ok(lock)
    }
}

fn to_json(state: &AppState) -> Vec<u8> {
    serde_json::to_vec_pretty(state).expect("an app state always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use codebuilder_core::Fingerprint;
    use std::os::unix::fs::MetadataExt;

    fn key(name: &str, tail: char) -> KeyId {
        KeyId {
            name: KeyName::parse(name).unwrap(),
            fingerprint: Fingerprint::parse(&format!("SHA256:{}", tail.to_string().repeat(43)))
                .unwrap(),
        }
    }

    fn app(name: &str) -> AppName {
        AppName::parse(name, "codebuilder").unwrap()
    }

    fn store(dir: &Path) -> AppStore {
        AppStore::new(&Home::new(dir), "codebuilder", None)
    }

    #[test]
    fn create_grant_revoke_transfer() {
        let dir = tempfile::tempdir().unwrap();
        let apps = store(dir.path());
        let shop = app("shop");
        assert_eq!(apps.state(&shop).unwrap(), None);
        // What an earlier app of the name left to the key that pushed it goes.
        let freed = dir.path().join("freed/shop");
        fs::create_dir_all(&freed).unwrap();
        fs::write(freed.join("000001.json"), "{}").unwrap();
        apps.create(&shop, key("alice", 'a')).unwrap();
        assert!(!freed.exists());
        assert!(matches!(
            apps.create(&shop, key("bob", 'b')),
            Err(AppError::Exists(_))
        ));
        apps.grant(&shop, key("bob", 'b'), Level::Read).unwrap();
        assert!(matches!(
            apps.grant(&shop, key("alice", 'a'), Level::Read),
            Err(AppError::IsOwner { .. })
        ));
        let state = apps.state(&shop).unwrap().unwrap();
        assert_eq!(state.owner, key("alice", 'a'));
        assert_eq!(state.access.len(), 1);

        let previous = apps.transfer(&shop, key("bob", 'b')).unwrap();
        assert_eq!(previous, Some(key("alice", 'a')));
        let state = apps.state(&shop).unwrap().unwrap();
        assert_eq!(state.owner, key("bob", 'b'));
        assert_eq!(state.access.len(), 1);
        assert_eq!(state.access[0].key, key("alice", 'a'));
        assert_eq!(state.access[0].level, Level::Push);
        assert!(matches!(
            apps.transfer(&shop, key("bob", 'b')),
            Err(AppError::AlreadyOwner { .. })
        ));

        let alice = KeyName::parse("alice").unwrap();
        apps.revoke(&shop, &alice).unwrap();
        assert!(matches!(
            apps.revoke(&shop, &alice),
            Err(AppError::NotGranted { .. })
        ));
        assert!(matches!(
            apps.revoke(&shop, &KeyName::parse("bob").unwrap()),
            Err(AppError::IsOwner { .. })
        ));

        // Readable by codebuilder only; nothing staged is left behind.
        let path = dir.path().join("apps/shop.json");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(dir.path().join("apps")).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(
            fs::read_dir(dir.path().join("apps/tmp")).unwrap().count(),
            0
        );
        apps.remove(&shop).unwrap();
        assert_eq!(apps.state(&shop).unwrap(), None);
    }

    #[test]
    fn legacy_apps_get_an_owner_by_transfer_only() {
        let dir = tempfile::tempdir().unwrap();
        let apps = store(dir.path());
        let old = app("old");
        assert!(matches!(
            apps.grant(&old, key("bob", 'b'), Level::Push),
            Err(AppError::NoOwner(_))
        ));
        assert_eq!(apps.transfer(&old, key("bob", 'b')).unwrap(), None);
        assert_eq!(apps.state(&old).unwrap().unwrap().owner, key("bob", 'b'));
        assert!(apps.state(&old).unwrap().unwrap().access.is_empty());
    }

    #[test]
    fn declared_access_is_merged_and_not_removable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("declared");
        fs::write(&file, "shop carol read\n").unwrap();
        let apps = AppStore::new(&Home::new(dir.path()), "codebuilder", Some(file));
        let shop = app("shop");
        apps.create(&shop, key("alice", 'a')).unwrap();
        let declared = apps.declared(&shop).unwrap();
        let state = apps.state(&shop).unwrap().unwrap();
        assert_eq!(
            state.role_of(&key("carol", 'c'), &declared),
            Some(crate::Role::Collaborator(Level::Read))
        );
        let error = apps
            .revoke(&shop, &KeyName::parse("carol").unwrap())
            .unwrap_err();
        assert!(matches!(error, AppError::Declared { .. }));
        assert!(error
            .to_string()
            .starts_with("the access of key carol to shop is declared in "));
    }

    #[test]
    fn a_damaged_state_is_an_error_not_an_empty_app() {
        let dir = tempfile::tempdir().unwrap();
        let apps = store(dir.path());
        fs::create_dir_all(dir.path().join("apps")).unwrap();
        fs::write(dir.path().join("apps/shop.json"), "{").unwrap();
        assert!(matches!(
            apps.state(&app("shop")),
            Err(AppError::Damaged { .. })
        ));
    }
}
